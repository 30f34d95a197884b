//! Outbound events: webhook subscriptions and deliveries.

use http::Method;
use jumpgate_api_types::webhooks as api;

use crate::{Client, ClientError, percent_encode};

impl Client {
    pub async fn webhooks(&self) -> Result<Vec<api::Webhook>, ClientError> {
        self.get_json("/api/v1/webhooks").await
    }

    /// Adds a subscription; the answer holds its secret (shown once).
    pub async fn webhook_add(
        &self,
        new: &api::NewWebhook,
    ) -> Result<api::WebhookSecret, ClientError> {
        self.post_json("/api/v1/webhooks", new).await
    }

    pub async fn webhook_remove(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/webhooks/{}", percent_encode(name));
        self.request(Method::DELETE, &path, None).await.map(drop)
    }

    pub async fn webhook_rotate_secret(
        &self,
        name: &str,
    ) -> Result<api::WebhookSecret, ClientError> {
        let path = format!("/api/v1/webhooks/{}/rotate-secret", percent_encode(name));
        self.post_empty(&path).await
    }

    /// Sets the `Authorization` header a subscription's deliveries carry
    /// (`Some`), or removes it (`None`); the subscription as it is now.
    pub async fn webhook_set_auth(
        &self,
        name: &str,
        value: Option<&str>,
    ) -> Result<api::Webhook, ClientError> {
        let path = format!("/api/v1/webhooks/{}/auth-header", percent_encode(name));
        match value {
            Some(v) => {
                let body = api::WebhookAuth {
                    auth_header: v.to_owned(),
                };
                self.put_json(&path, &body).await
            }
            None => {
                let answer = self.request(Method::DELETE, &path, None).await?;
                crate::decode(&answer)
            }
        }
    }

    /// Deliveries, newest first: of one subscription or all, dead only.
    pub async fn webhook_deliveries(
        &self,
        subscription: Option<&str>,
        dead: bool,
    ) -> Result<Vec<api::Delivery>, ClientError> {
        let mut path = format!("/api/v1/webhooks/deliveries?dead={dead}");
        if let Some(s) = subscription {
            path.push_str(&format!("&subscription={}", percent_encode(s)));
        }
        self.get_json(&path).await
    }

    pub async fn webhook_replay(&self, req: &api::Replay) -> Result<api::Replayed, ClientError> {
        self.post_json("/api/v1/webhooks/deliveries/replay", req)
            .await
    }
}
