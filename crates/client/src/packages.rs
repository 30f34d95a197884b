//! The Package Manager (`/api/v1/packages/…`): uploads, publisher keys,
//! settings, assignments, per-endpoint results and inventories.

use bytes::Bytes;
use http::Method;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Full, Limited};
use jumpgate_api_types::packages as api;

use crate::{Client, ClientError, api_error, decode, percent_encode};

/// Filter of [`Client::package_inventory`].
#[derive(Clone, Debug, Default)]
pub struct InventoryFilter<'a> {
    pub package: Option<&'a str>,
    /// A constraint such as `< 3.0.11`.
    pub version: Option<&'a str>,
    pub group: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

impl Client {
    /// Uploads a `.deb` (with its publisher's minisign signature file, if
    /// any). Answers the package and whether it is new (`false`: the same
    /// file was uploaded before).
    pub async fn package_upload(
        &self,
        deb: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<(api::PackageInfo, bool), ClientError> {
        use base64::Engine as _;
        let mut b = self
            .builder(Method::POST, "/api/v1/packages")
            .header(CONTENT_TYPE, "application/vnd.debian.binary-package");
        if let Some(sig) = signature {
            b = b.header(
                api::SIGNATURE_HEADER,
                base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()),
            );
        }
        let req = b
            .body(Full::new(Bytes::from(deb)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (res, sender) = self.send(req).await?;
        let status = res.status();
        let body = Limited::new(res.into_body(), crate::MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
            .to_bytes();
        self.idle.put(sender);
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok((decode(&body)?, status == http::StatusCode::CREATED))
    }

    /// Uploaded packages (of `name`), by name, newest version first.
    pub async fn packages(&self, name: Option<&str>) -> Result<Vec<api::PackageInfo>, ClientError> {
        self.get_json(&format!("/api/v1/packages{}", query(&[("name", name)])))
            .await
    }

    pub async fn package(&self, id: &str) -> Result<api::PackageInfo, ClientError> {
        self.get_json(&format!("/api/v1/packages/{}", percent_encode(id)))
            .await
    }

    pub async fn package_delete(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/packages/{}", percent_encode(id)))
            .await
    }

    pub async fn package_publishers(&self) -> Result<Vec<api::PublisherKeyInfo>, ClientError> {
        self.get_json("/api/v1/packages/publishers").await
    }

    pub async fn package_publisher_add(
        &self,
        req: &api::AddPublisher,
    ) -> Result<api::PublisherKeyInfo, ClientError> {
        self.post_json("/api/v1/packages/publishers", req).await
    }

    pub async fn package_publisher_remove(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!(
            "/api/v1/packages/publishers/{}",
            percent_encode(name)
        ))
        .await
    }

    pub async fn package_settings(&self) -> Result<api::PackageSettings, ClientError> {
        self.get_json("/api/v1/packages/settings").await
    }

    pub async fn package_put_settings(
        &self,
        s: &api::PackageSettings,
    ) -> Result<api::PackageSettings, ClientError> {
        self.put_json("/api/v1/packages/settings", s).await
    }

    pub async fn package_assignments(&self) -> Result<Vec<api::Assignment>, ClientError> {
        self.get_json("/api/v1/packages/assignments").await
    }

    /// Assigns (the group's connected endpoints are told at once).
    pub async fn package_assign(
        &self,
        req: &api::AssignRequest,
    ) -> Result<api::AssignAnswer, ClientError> {
        self.put_json("/api/v1/packages/assignments", req).await
    }

    pub async fn package_unassign(&self, group: &str, package: &str) -> Result<(), ClientError> {
        self.delete(&format!(
            "/api/v1/packages/assignments/{}/{}",
            percent_encode(group),
            percent_encode(package)
        ))
        .await
    }

    /// What endpoints last did about their packages.
    pub async fn package_status(
        &self,
        endpoint: Option<&str>,
        package: Option<&str>,
    ) -> Result<Vec<api::EndpointPackageStatus>, ClientError> {
        self.get_json(&format!(
            "/api/v1/packages/status{}",
            query(&[("endpoint", endpoint), ("package", package)])
        ))
        .await
    }

    /// Installed packages on endpoints.
    pub async fn package_inventory(
        &self,
        f: &InventoryFilter<'_>,
    ) -> Result<Vec<api::InventoryRow>, ClientError> {
        self.get_json(&format!(
            "/api/v1/packages/inventory{}",
            query(&[
                ("package", f.package),
                ("version", f.version),
                ("group", f.group),
                ("endpoint", f.endpoint),
            ])
        ))
        .await
    }
}
