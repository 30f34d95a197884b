//! Attended support: queues, session keys, support sessions, and the
//! public portal's calls (which need no login).

use jumpgate_api_types::support as api;

use crate::{Client, ClientError, percent_encode};

fn queue(name: &str) -> String {
    format!("/api/v1/queues/{}", percent_encode(name))
}

impl Client {
    /// A session key for a customer to type at the portal.
    pub async fn create_support_key(
        &self,
        req: &api::CreateSupportKey,
    ) -> Result<api::SupportKey, ClientError> {
        self.post_json("/api/v1/support/keys", req).await
    }

    /// Support sessions in the caller's groups, newest first.
    pub async fn support_sessions(
        &self,
        queue: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<api::SupportSessionRow>, ClientError> {
        let mut q = Vec::new();
        if let Some(name) = queue {
            q.push(format!("queue={}", percent_encode(name)));
        }
        if let Some(n) = limit {
            q.push(format!("limit={n}"));
        }
        let tail = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get_json(&format!("/api/v1/support/sessions{tail}"))
            .await
    }

    pub async fn queues(&self) -> Result<Vec<api::Queue>, ClientError> {
        self.get_json("/api/v1/queues").await
    }

    pub async fn create_queue(&self, req: &api::CreateQueue) -> Result<api::Queue, ClientError> {
        self.post_json("/api/v1/queues", req).await
    }

    pub async fn update_queue(
        &self,
        name: &str,
        req: &api::UpdateQueue,
    ) -> Result<api::Queue, ClientError> {
        self.patch_json(&queue(name), req).await
    }

    pub async fn delete_queue(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&queue(name)).await
    }

    pub async fn portal_settings(&self) -> Result<api::PortalSettings, ClientError> {
        self.get_json("/api/v1/portal/settings").await
    }

    pub async fn put_portal_settings(
        &self,
        req: &api::PortalSettings,
    ) -> Result<api::PortalSettings, ClientError> {
        self.put_json("/api/v1/portal/settings", req).await
    }

    /// What the public portal shows (no login needed).
    pub async fn portal_info(&self) -> Result<api::PortalInfo, ClientError> {
        self.get_json("/api/v1/portal").await
    }

    /// Redeems a session key as the portal does (no login needed).
    pub async fn portal_redeem(&self, key: &str) -> Result<api::PortalDownload, ClientError> {
        let req = api::RedeemKey { key: key.into() };
        self.post_json("/api/v1/portal/key", &req).await
    }

    /// The portal's request form (no login needed).
    pub async fn portal_request(
        &self,
        req: &api::HelpRequest,
    ) -> Result<api::PortalDownload, ClientError> {
        self.post_json("/api/v1/portal/requests", req).await
    }
}
