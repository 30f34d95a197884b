//! Attended support: queues, session keys, support sessions, and the
//! public portal's calls (which need no login).

use jumpgate_api_types::support as api;

use crate::{Client, ClientError, percent_encode};

fn session(id: &str, tail: &str) -> String {
    format!("/api/v1/support/sessions/{}{tail}", percent_encode(id))
}

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

    /// One support session as its technicians see it.
    pub async fn support_session(&self, id: &str) -> Result<api::SupportSession, ClientError> {
        self.get_json(&session(id, "")).await
    }

    /// A support session's chat (for those taking part, or auditors).
    pub async fn support_transcript(&self, id: &str) -> Result<Vec<api::ChatLine>, ClientError> {
        self.get_json(&session(id, "/transcript")).await
    }

    /// Takes a waiting customer.
    pub async fn accept_support(&self, id: &str) -> Result<api::SupportSession, ClientError> {
        self.post_json(&session(id, "/accept"), &serde_json::json!({}))
            .await
    }

    /// Writes to the customer.
    pub async fn support_chat(&self, id: &str, text: &str) -> Result<api::ChatLine, ClientError> {
        let req = api::SendChat { text: text.into() };
        self.post_json(&session(id, "/chat"), &req).await
    }

    /// Asks the customer for a right (`view`, `control`, `clipboard`,
    /// `shell`, `files`).
    pub async fn ask_support_right(
        &self,
        id: &str,
        right: &str,
    ) -> Result<api::SupportSession, ClientError> {
        let req = api::AskRight {
            right: right.into(),
        };
        self.post_json(&session(id, "/rights"), &req).await
    }

    /// Hands a support session to another technician (`user`) or back to a
    /// queue.
    pub async fn transfer_support(
        &self,
        id: &str,
        req: &api::TransferSupport,
    ) -> Result<api::SupportSession, ClientError> {
        self.post_json(&session(id, "/transfer"), req).await
    }

    /// Invites a technician as `participant` or `observer`.
    pub async fn invite_support(
        &self,
        id: &str,
        user: &str,
        role: &str,
    ) -> Result<api::SupportSession, ClientError> {
        let req = api::InviteTechnician {
            user: user.into(),
            role: role.into(),
        };
        self.post_json(&session(id, "/invite"), &req).await
    }

    /// Removes someone from a support session (or leaves it: your own name).
    pub async fn remove_support_participant(
        &self,
        id: &str,
        user: &str,
    ) -> Result<(), ClientError> {
        self.delete(&session(
            id,
            &format!("/participants/{}", percent_encode(user)),
        ))
        .await
    }

    /// Ends a support session.
    pub async fn end_support(&self, id: &str) -> Result<(), ClientError> {
        self.request(
            http::Method::POST,
            &session(id, "/end"),
            Some(b"{}".to_vec()),
        )
        .await
        .map(drop)
    }

    /// Offers the customer to make their machine an enrolled endpoint of
    /// `group` (pin as unattended): 202 once the offer is on its way; the
    /// customer answers in their window.
    pub async fn pin_support(&self, id: &str, group: &str) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&api::PinEndpoint {
            group: group.into(),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.request(http::Method::POST, &session(id, "/pin"), Some(body))
            .await
            .map(drop)
    }

    /// Opens a sub-session of `kind` on the customer's machine (the
    /// customer must have allowed its right).
    pub async fn connect_support(
        &self,
        id: &str,
        kind: jumpgate_proto::session::SessionKind,
    ) -> Result<crate::SessionIo, ClientError> {
        self.upgrade(&session(id, &format!("/connect?kind={}", kind.as_str())))
            .await
    }

    /// Downloads `path` (the portal's client download) into `to`; returns
    /// the bytes written.
    pub async fn download_to(&self, path: &str, to: &std::path::Path) -> Result<u64, ClientError> {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let req = self
            .builder(http::Method::GET, path)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (res, _) = self.send(req).await?;
        let status = res.status();
        let mut body = res.into_body();
        if !status.is_success() {
            let bytes = http_body_util::Limited::new(body, crate::MAX_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
                .to_bytes();
            return Err(crate::api_error(status, &bytes));
        }
        let io = |e: std::io::Error| ClientError::Protocol(format!("{}: {e}", to.display()));
        let mut file = tokio::fs::File::create(to).await.map_err(io)?;
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(format!("download: {e}")))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data).await.map_err(io)?;
                n += data.len() as u64;
            }
        }
        file.flush().await.map_err(io)?;
        Ok(n)
    }

    /// The portal's request form (no login needed).
    pub async fn portal_request(
        &self,
        req: &api::HelpRequest,
    ) -> Result<api::PortalDownload, ClientError> {
        self.post_json("/api/v1/portal/requests", req).await
    }
}

/// The technicians' live support events (`GET /api/v1/support/events`,
/// server-sent events), one [`api::SupportEvent`] at a time.
pub type SupportEvents = crate::sse::EventStream<api::SupportEvent>;

impl Client {
    /// Follows the support queues the caller is a member of: first a
    /// snapshot, then every change.
    ///
    /// # Errors
    /// Refused, or the gateway could not be reached.
    pub async fn support_events(&self) -> Result<SupportEvents, ClientError> {
        self.event_stream("/api/v1/support/events").await
    }
}
