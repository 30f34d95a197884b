//! Reports over the analytics store (`/api/v1/reports/…`).

use http::Method;
use jumpgate_api_types::reports as api;

use crate::{Client, ClientError, percent_encode};

/// Filters of [`Client::report`]: times are RFC 3339 or `YYYY-MM-DD`.
#[derive(Clone, Debug, Default)]
pub struct ReportFilter<'a> {
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub group: Option<&'a str>,
    pub user: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

fn report_path(name: &str, f: &ReportFilter<'_>, format: &str) -> String {
    let mut q = vec![format!("format={format}")];
    for (k, v) in [
        ("since", f.since),
        ("until", f.until),
        ("group", f.group),
        ("user", f.user),
        ("endpoint", f.endpoint),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", percent_encode(v)));
        }
    }
    format!("/api/v1/reports/{}?{}", percent_encode(name), q.join("&"))
}

impl Client {
    /// The reports the gateway offers.
    pub async fn reports(&self) -> Result<Vec<api::ReportInfo>, ClientError> {
        self.get_json("/api/v1/reports").await
    }

    /// One report as a table.
    pub async fn report(
        &self,
        name: &str,
        f: &ReportFilter<'_>,
    ) -> Result<api::Report, ClientError> {
        self.get_json(&report_path(name, f, "json")).await
    }

    /// One report as CSV, as the gateway wrote it.
    pub async fn report_csv(
        &self,
        name: &str,
        f: &ReportFilter<'_>,
    ) -> Result<String, ClientError> {
        let body = self
            .request(Method::GET, &report_path(name, f, "csv"), None)
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
