//! Agentless targets and jump points.

use http::Method;
use jumpgate_api_types::targets as api;

use crate::{Client, ClientError, percent_encode};

impl Client {
    /// Targets the caller may see, by name.
    pub async fn targets(&self) -> Result<Vec<api::Target>, ClientError> {
        self.get_json("/api/v1/targets").await
    }

    pub async fn target(&self, name: &str) -> Result<api::Target, ClientError> {
        self.get_json(&format!("/api/v1/targets/{}", percent_encode(name)))
            .await
    }

    pub async fn target_add(&self, new: &api::NewTarget) -> Result<api::Target, ClientError> {
        self.post_json("/api/v1/targets", new).await
    }

    pub async fn target_remove(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/targets/{}", percent_encode(name));
        self.request(Method::DELETE, &path, None).await.map(drop)
    }

    /// Re-pins an SSH target's host key (or goes back to trust on first use).
    pub async fn target_set_host_key(
        &self,
        name: &str,
        req: &api::SetHostKey,
    ) -> Result<api::Target, ClientError> {
        let path = format!("/api/v1/targets/{}/host-key", percent_encode(name));
        self.put_json(&path, req).await
    }

    /// Marks (or unmarks) endpoint `name` as a jump point, reaching the
    /// destinations `allow` lists (`None`: any).
    pub async fn set_jump_point(
        &self,
        name: &str,
        on: bool,
        allow: Option<Vec<String>>,
    ) -> Result<api::JumpPointState, ClientError> {
        let path = format!("/api/v1/endpoints/{}/jump-point", percent_encode(name));
        self.put_json(&path, &api::JumpPoint { on, allow }).await
    }

    /// The jump points (of the caller's groups) and what each may reach.
    pub async fn jump_points(&self) -> Result<Vec<api::JumpPointState>, ClientError> {
        self.get_json("/api/v1/jump-points").await
    }
}
