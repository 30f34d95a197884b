//! Access requests with approval, and groups' approval settings.

use http::Method;
use jumpgate_api_types::access as api;

use crate::{Client, ClientError, percent_encode};

impl Client {
    /// Requests the caller may see (`state`: only those in it).
    pub async fn access_requests(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<api::AccessRequest>, ClientError> {
        match state {
            Some(s) => {
                self.get_json(&format!(
                    "/api/v1/access-requests?state={}",
                    percent_encode(s)
                ))
                .await
            }
            None => self.get_json("/api/v1/access-requests").await,
        }
    }

    pub async fn access_request(&self, id: &str) -> Result<api::AccessRequest, ClientError> {
        self.get_json(&format!("/api/v1/access-requests/{}", percent_encode(id)))
            .await
    }

    pub async fn request_access(
        &self,
        new: &api::NewAccessRequest,
    ) -> Result<api::AccessRequest, ClientError> {
        self.post_json("/api/v1/access-requests", new).await
    }

    /// `verb`: `approve`, `deny` or `cancel`.
    pub async fn decide_access(
        &self,
        id: &str,
        verb: &str,
        reason: Option<String>,
    ) -> Result<api::AccessRequest, ClientError> {
        let path = format!("/api/v1/access-requests/{}/{verb}", percent_encode(id));
        if verb == "cancel" {
            self.post_empty(&path).await
        } else {
            self.post_json(&path, &api::DecideAccess { reason }).await
        }
    }

    pub async fn approval_policy(&self, group: &str) -> Result<api::ApprovalPolicy, ClientError> {
        self.get_json(&format!(
            "/api/v1/groups/{}/approval",
            percent_encode(group)
        ))
        .await
    }

    pub async fn set_approval_policy(
        &self,
        group: &str,
        p: &api::SetApprovalPolicy,
    ) -> Result<api::ApprovalPolicy, ClientError> {
        let path = format!("/api/v1/groups/{}/approval", percent_encode(group));
        self.put_json(&path, p).await
    }

    pub async fn remove_approval_policy(&self, group: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/groups/{}/approval", percent_encode(group));
        self.request(Method::DELETE, &path, None).await.map(drop)
    }
}
