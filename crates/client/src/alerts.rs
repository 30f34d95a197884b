//! Mail alerts: rules and the SMTP test.

use http::Method;
use jumpgate_api_types::alerts as api;

use crate::{Client, ClientError, percent_encode};

impl Client {
    /// Every alert rule with its mail queue's counts.
    pub async fn alert_rules(&self) -> Result<Vec<api::AlertRule>, ClientError> {
        self.get_json("/api/v1/alert-rules").await
    }

    pub async fn alert_rule_add(
        &self,
        new: &api::NewAlertRule,
    ) -> Result<api::AlertRule, ClientError> {
        self.post_json("/api/v1/alert-rules", new).await
    }

    pub async fn alert_rule_remove(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/alert-rules/{}", percent_encode(name));
        self.request(Method::DELETE, &path, None).await.map(drop)
    }

    /// Sends a test mail through the gateway's `[smtp]` now.
    pub async fn smtp_test(&self, to: &str) -> Result<api::SmtpTestSent, ClientError> {
        self.post_json("/api/v1/smtp/test", &api::SmtpTest { to: to.to_owned() })
            .await
    }
}
