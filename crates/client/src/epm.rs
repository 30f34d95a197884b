//! Endpoint privilege management (`/api/v1/epm/…`): the policy, what-if,
//! publishing, events, approval requests and offline codes.

use http::{Method, StatusCode};
use jumpgate_api_types::epm as api;

use crate::sse::EventStream;
use crate::{Client, ClientError, decode, percent_encode};

/// Filter of [`Client::epm_events`].
#[derive(Clone, Debug, Default)]
pub struct EpmEventFilter<'a> {
    pub endpoint: Option<&'a str>,
    /// Only events after this cursor ([`api::EpmEventRow::id`]).
    pub after: Option<u64>,
    pub limit: Option<u32>,
}

impl Client {
    /// The draft policy and its revision.
    pub async fn epm_policy(&self) -> Result<api::PolicyDoc, ClientError> {
        self.get_json("/api/v1/epm/policy").await
    }

    /// The draft policy as YAML (what `jg epm policy export` writes).
    pub async fn epm_policy_yaml(&self) -> Result<String, ClientError> {
        let body = self
            .request(Method::GET, "/api/v1/epm/policy?format=yaml", None)
            .await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| ClientError::Protocol("the policy's YAML is not UTF-8".into()))
    }

    /// Saves the draft; `doc.revision` must be the one read (else 409).
    pub async fn epm_put_policy(
        &self,
        doc: &api::PolicyDoc,
    ) -> Result<api::PolicyDoc, ClientError> {
        self.put_json("/api/v1/epm/policy", doc).await
    }

    /// The gateway's verdict on a policy (empty: valid).
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
        let (status, body) = self
            .raw(
                Method::POST,
                "/api/v1/epm/policy/validate",
                Some("application/json"),
                serde_json::to_vec(&doc).map_err(|e| ClientError::Protocol(e.to_string()))?,
            )
            .await?;
        if (status.is_success() || status == StatusCode::BAD_REQUEST)
            && let Ok(p) = serde_json::from_slice::<api::PolicyProblems>(&body)
        {
            return Ok(p);
        }
        Err(crate::api_error(status, &body))
    }

    /// What would happen (draft, or the last published bundle).
    pub async fn epm_test(&self, q: &api::WhatIf) -> Result<api::WhatIfAnswer, ClientError> {
        self.post_json("/api/v1/epm/test", q).await
    }

    /// Signs the draft as the next bundle and tells the endpoints.
    pub async fn epm_publish(&self) -> Result<api::PublishedBundle, ClientError> {
        self.post_empty("/api/v1/epm/publish").await
    }

    /// Published bundles, newest first.
    pub async fn epm_bundles(&self) -> Result<Vec<api::PublishedBundle>, ClientError> {
        self.get_json("/api/v1/epm/bundles").await
    }

    /// Which version each endpoint runs.
    pub async fn epm_status(&self) -> Result<Vec<api::EndpointPolicyStatus>, ClientError> {
        self.get_json("/api/v1/epm/status").await
    }

    /// Stored events, oldest first after the cursor.
    pub async fn epm_events(
        &self,
        f: &EpmEventFilter<'_>,
    ) -> Result<Vec<api::EpmEventRow>, ClientError> {
        let mut q = Vec::new();
        if let Some(e) = f.endpoint {
            q.push(format!("endpoint={}", percent_encode(e)));
        }
        if let Some(a) = f.after {
            q.push(format!("after={a}"));
        }
        if let Some(l) = f.limit {
            q.push(format!("limit={l}"));
        }
        let tail = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get_json(&format!("/api/v1/epm/events{tail}")).await
    }

    /// Approval requests (`state`: `pending`, `approved`, `denied`,
    /// `expired`; `None`: all).
    pub async fn epm_requests(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<api::ElevationRequest>, ClientError> {
        let tail = state
            .map(|s| format!("?state={}", percent_encode(s)))
            .unwrap_or_default();
        self.get_json(&format!("/api/v1/epm/requests{tail}")).await
    }

    /// Approval requests as they appear and change.
    pub async fn epm_request_events(
        &self,
    ) -> Result<EventStream<api::ElevationRequest>, ClientError> {
        self.event_stream("/api/v1/epm/requests/events").await
    }

    /// Approves (`approve`) or denies a waiting request.
    pub async fn epm_decide(
        &self,
        id: &str,
        approve: bool,
        comment: &str,
    ) -> Result<api::ElevationRequest, ClientError> {
        let verb = if approve { "approve" } else { "deny" };
        let body = api::DecideRequest {
            comment: comment.to_owned(),
        };
        self.post_json(
            &format!("/api/v1/epm/requests/{}/{verb}", percent_encode(id)),
            &body,
        )
        .await
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

    pub async fn epm_rotate_signing_key(&self) -> Result<api::SigningKeyInfo, ClientError> {
        let body = self
            .request(Method::POST, "/api/v1/epm/signing-keys/rotate", None)
            .await?;
        decode(&body)
    }
}
