//! Endpoint privilege management (`/api/v1/epm/…`; the table is in
//! `jumpgate_api_types::epm`).

use http::Method;
use jumpgate_api_types::epm as api;

use crate::{Client, ClientError, percent_encode};

/// The live elevation requests (`GET /api/v1/epm/requests/events`,
/// server-sent events), one [`api::ElevationRequest`] at a time.
#[derive(Debug)]
pub struct EpmRequestEvents {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

/// Longest event line kept.
const MAX_EVENT: usize = 1024 * 1024;

impl EpmRequestEvents {
    /// The next request that appeared or changed; `None` when the gateway
    /// closed the stream.
    ///
    /// # Errors
    /// The connection broke, or an event was not a request.
    pub async fn next(&mut self) -> Result<Option<api::ElevationRequest>, ClientError> {
        use http_body_util::BodyExt;
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(data) = line.strip_prefix("data:") {
                    let e = serde_json::from_str(data.trim_start()).map_err(|e| {
                        ClientError::Protocol(format!("an elevation request is not JSON: {e}"))
                    })?;
                    return Ok(Some(e));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(ClientError::Protocol("an EPM event is too long".into()));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!(
                        "the EPM request stream broke off: {e}"
                    )));
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl Client {
    /// The draft policy and its revision.
    pub async fn epm_policy(&self) -> Result<api::PolicyDoc, ClientError> {
        self.get_json("/api/v1/epm/policy").await
    }

    /// The draft policy as YAML (`jg epm policy export`).
    pub async fn epm_policy_yaml(&self) -> Result<String, ClientError> {
        let body = self
            .request(Method::GET, "/api/v1/epm/policy?format=yaml", None)
            .await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| ClientError::Protocol("the policy's YAML is not UTF-8".into()))
    }

    /// Saves the draft if it is still at `revision` (409 `conflict`
    /// otherwise; 400 `invalid_policy` naming every bad field).
    pub async fn epm_put_policy(
        &self,
        revision: u64,
        policy: &api::Policy,
    ) -> Result<api::PolicyDoc, ClientError> {
        let doc = api::PolicyDoc {
            revision,
            policy: policy.clone(),
            updated_by: String::new(),
            updated_at: String::new(),
        };
        self.put_json("/api/v1/epm/policy", &doc).await
    }

    /// The gateway's validation of `policy` (no problems: valid).
    pub async fn epm_validate(
        &self,
        policy: &api::Policy,
    ) -> Result<api::PolicyProblems, ClientError> {
        let doc = api::PolicyDoc {
            revision: 0,
            policy: policy.clone(),
            updated_by: String::new(),
            updated_at: String::new(),
        };
        self.post_json("/api/v1/epm/policy/validate", &doc).await
    }

    /// What would happen (the draft, or `q.published`: the last bundle).
    pub async fn epm_test(&self, q: &api::WhatIf) -> Result<api::WhatIfAnswer, ClientError> {
        self.post_json("/api/v1/epm/test", q).await
    }

    /// Publishes the draft as the next bundle.
    pub async fn epm_publish(&self) -> Result<api::PublishedBundle, ClientError> {
        self.post_empty("/api/v1/epm/publish").await
    }

    pub async fn epm_bundles(&self) -> Result<Vec<api::PublishedBundle>, ClientError> {
        self.get_json("/api/v1/epm/bundles").await
    }

    /// Every endpoint's accepted version.
    pub async fn epm_status(&self) -> Result<Vec<api::EndpointPolicyStatus>, ClientError> {
        self.get_json("/api/v1/epm/status").await
    }

    /// Events after the cursor `after` (an event id; 0: from the start),
    /// of one endpoint or all.
    pub async fn epm_events(
        &self,
        endpoint: Option<&str>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<api::EpmEventRow>, ClientError> {
        let mut path = format!("/api/v1/epm/events?after={after}&limit={limit}");
        if let Some(e) = endpoint {
            path.push_str(&format!("&endpoint={}", percent_encode(e)));
        }
        self.get_json(&path).await
    }

    /// Elevation requests of the caller's groups (`state`: `pending`, …).
    pub async fn epm_requests(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<api::ElevationRequest>, ClientError> {
        let path = match state {
            Some(s) => format!("/api/v1/epm/requests?state={}", percent_encode(s)),
            None => "/api/v1/epm/requests".to_owned(),
        };
        self.get_json(&path).await
    }

    /// Follows elevation requests as they appear and change.
    pub async fn epm_request_events(&self) -> Result<EpmRequestEvents, ClientError> {
        use http_body_util::{BodyExt, Full, Limited};
        let req = self
            .builder(Method::GET, "/api/v1/epm/requests/events")
            .body(Full::new(bytes::Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (res, _) = self.send(req).await?;
        let status = res.status();
        if !status.is_success() {
            let body = Limited::new(res.into_body(), crate::MAX_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
                .to_bytes();
            return Err(crate::api_error(status, &body));
        }
        Ok(EpmRequestEvents {
            body: res.into_body(),
            buf: Vec::new(),
        })
    }

    /// Approves (or with `approved` false, denies) request `id`.
    pub async fn epm_decide(
        &self,
        id: &str,
        approved: bool,
        comment: &str,
    ) -> Result<api::ElevationRequest, ClientError> {
        let verb = if approved { "approve" } else { "deny" };
        let path = format!("/api/v1/epm/requests/{}/{verb}", percent_encode(id));
        let body = api::DecideRequest {
            comment: comment.to_owned(),
        };
        self.post_json(&path, &body).await
    }

    /// The response to an endpoint's offline challenge.
    pub async fn epm_code(
        &self,
        endpoint: &str,
        challenge: &str,
    ) -> Result<api::CodeResponse, ClientError> {
        let body = api::CodeRequest {
            endpoint: endpoint.to_owned(),
            challenge: challenge.to_owned(),
        };
        self.post_json("/api/v1/epm/code", &body).await
    }

    pub async fn epm_signing_keys(&self) -> Result<Vec<api::SigningKeyInfo>, ClientError> {
        self.get_json("/api/v1/epm/signing-keys").await
    }

    /// A new signing key; the previous one stays trusted.
    pub async fn epm_rotate_signing_key(&self) -> Result<api::SigningKeyInfo, ClientError> {
        self.post_empty("/api/v1/epm/signing-keys/rotate").await
    }
}
