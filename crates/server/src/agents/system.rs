//! System streams to agents ([`jumpgate_proto::system`]): the gateway asks
//! an agent something on its own behalf — fresh endpoint details today;
//! policy and package notifications next. Not a technician session: no
//! subject, no access decision, no session row, no recording. What a
//! system stream changes is audited as a system action (actor
//! [`SYSTEM_ACTOR`]).
//!
//! [`send`] opens a stream to the agent wherever the [`AgentDirectory`]
//! says it is, sends the topic and a payload of up to 16 MiB (in chunks,
//! under the stream's flow control, far beyond a control frame's 64 KiB),
//! and returns the agent's reply.

use std::time::Duration;

use bytes::Bytes;
use jumpgate_api_types::EndpointDetails;
use jumpgate_net::system::{ReadError, read_message, write_message};
use jumpgate_proto::control::AgentInfo;
use jumpgate_proto::system::{Head, MAX_BODY, Reply, Request, Status, Topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AgentDirectory, EndpointRecord, Location, reported};
use crate::ids::{AgentId, GatewayId};
use crate::store::{AuditAction, AuditEvent};

/// Who system actions are audited as.
pub(crate) const SYSTEM_ACTOR: &str = "(system)";

/// How long one exchange may take, request and reply: enough for 16 MiB
/// each way over a slow link.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(120);

/// Why a system request got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SystemError {
    #[error("the endpoint is offline")]
    Offline,
    #[error("the endpoint is connected to another gateway ({0})")]
    Elsewhere(GatewayId),
    #[error("a payload of {0} bytes exceeds the limit of {MAX_BODY}")]
    TooLarge(usize),
    #[error("cannot open a stream to the agent: {0}")]
    Open(#[source] std::io::Error),
    #[error("sending the request failed: {0}")]
    Send(#[source] std::io::Error),
    #[error("reading the reply failed: {0}")]
    Read(#[from] ReadError),
    #[error("the agent answered with a request")]
    NotAReply,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The agent answered, but not `ok`.
    #[error("the agent answered {status:?}: {message}")]
    Refused { status: Status, message: String },
}

/// The agent's answer.
#[derive(Debug)]
pub(crate) struct SystemReply {
    pub(crate) status: Status,
    /// Why, when not `ok` (cleaned: it comes from the endpoint).
    pub(crate) message: String,
    pub(crate) body: Bytes,
}

impl SystemReply {
    /// The body of an `ok` reply.
    ///
    /// # Errors
    /// [`SystemError::Refused`] for any other status.
    pub(crate) fn ok(self) -> Result<Bytes, SystemError> {
        match self.status {
            Status::Ok => Ok(self.body),
            status => Err(SystemError::Refused {
                status,
                message: self.message,
            }),
        }
    }
}

/// Sends `payload` on `topic` to the agent of endpoint `id` and waits for
/// its reply (at most `timeout`).
///
/// # Errors
/// The agent is not reachable from here, the payload is over the limit,
/// the stream failed, or the agent broke the protocol.
pub(crate) async fn send(
    agents: &dyn AgentDirectory,
    id: &AgentId,
    topic: Topic,
    payload: Bytes,
    timeout: Duration,
) -> Result<SystemReply, SystemError> {
    if payload.len() > MAX_BODY {
        return Err(SystemError::TooLarge(payload.len()));
    }
    let handle = match agents.locate(id) {
        Location::Local(h) => h,
        Location::Remote(gw) => return Err(SystemError::Elsewhere(gw)),
        Location::Offline => return Err(SystemError::Offline),
    };
    let mut stream = handle.open().map_err(SystemError::Open)?;
    let exchange = async {
        let head = Head::Request(Request {
            topic: topic.as_str().to_owned(),
            size: 0,
        });
        write_message(&mut stream, head, &payload)
            .await
            .map_err(SystemError::Send)?;
        stream.shutdown().await.map_err(SystemError::Send)?;
        let (head, body) = read_message(&mut stream, &[], MAX_BODY).await?;
        let Head::Reply(Reply {
            status, message, ..
        }) = head
        else {
            return Err(SystemError::NotAReply);
        };
        // The agent's end follows its reply: wait for it (briefly), so the
        // stream closes cleanly rather than by a reset.
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
        })
        .await;
        Ok(SystemReply {
            status,
            message: reported::text(&message, reported::MESSAGE_MAX),
            body,
        })
    };
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(SystemError::Timeout(timeout)),
    };
    match &result {
        Ok(r) => tracing::info!(
            endpoint_id = %id, %topic, bytes_out = payload.len(), bytes_in = r.body.len(),
            status = ?r.status, elapsed_ms = started.elapsed().as_millis() as u64,
            "system request answered"
        ),
        Err(e) => tracing::info!(endpoint_id = %id, %topic, error = %e, "system request failed"),
    }
    result
}

/// Why fresh facts could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FactsError {
    #[error("no enrolled endpoint named `{0}`")]
    UnknownEndpoint(String),
    #[error(transparent)]
    System(#[from] SystemError),
    #[error("the agent's facts do not parse: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Fresh details of an endpoint, and whether they differed from the stored
/// ones.
#[derive(Debug)]
pub(crate) struct Facts {
    pub(crate) details: EndpointDetails,
    pub(crate) changed: bool,
}

/// Asks the agent of endpoint `name` for its details now (`facts`) and
/// stores them; a change is audited (see [`apply_facts`]).
///
/// # Errors
/// No such endpoint, the agent did not answer, or the store failed.
pub(crate) async fn refresh_facts(
    db: &crate::store::Store,
    agents: &dyn AgentDirectory,
    name: &str,
) -> Result<Facts, FactsError> {
    let endpoint = super::find_by_name(db, name)
        .await?
        .ok_or_else(|| FactsError::UnknownEndpoint(name.to_owned()))?;
    let body = send(agents, &endpoint.id, Topic::Facts, Bytes::new(), TIMEOUT)
        .await?
        .ok()?;
    let info: AgentInfo = serde_json::from_slice(&body)
        .map_err(|e| FactsError::Invalid(reported::text(&e.to_string(), reported::MESSAGE_MAX)))?;
    Ok(apply_facts(db, &endpoint, &info).await?)
}

/// Stores what an agent reported about its endpoint (cleaned, see
/// [`reported`]). When it differs from what was stored, an
/// `endpoint-details` entry by [`SYSTEM_ACTOR`] names each change.
pub(crate) async fn apply_facts(
    db: &crate::store::Store,
    endpoint: &EndpointRecord,
    info: &AgentInfo,
) -> Result<Facts, sqlx::Error> {
    let fresh = reported::details(&info.hostname, &info.os, &info.arch, &info.agent_version);
    let old = &endpoint.details;
    let changes: Vec<String> = [
        ("hostname", &old.hostname, &fresh.hostname),
        ("os", &old.os, &fresh.os),
        ("arch", &old.arch, &fresh.arch),
        ("agent_version", &old.agent_version, &fresh.agent_version),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(field, a, b)| format!("{field}: {a} -> {b}"))
    .collect();
    super::touch(db, &endpoint.id, Some(&fresh)).await?;
    if !changes.is_empty() {
        let event = AuditEvent::new(SYSTEM_ACTOR, AuditAction::EndpointDetails, &endpoint.name)
            .group(&endpoint.group)
            .detail(changes.join("; "));
        db.audit_now(event).await?;
    }
    Ok(Facts {
        details: fresh,
        changed: !changes.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changed_facts_are_stored_and_audited_as_a_system_action_and_unchanged_ones_are_not() {
        for (db, _dir) in crate::store::tests::engines("system_facts").await {
            facts_on(db).await;
        }
    }

    async fn facts_on(db: crate::store::Store) {
        let token = crate::agents::tests::token(&db, "lab", Duration::from_secs(600)).await;
        let reported = EndpointDetails {
            hostname: "web-1".into(),
            os: "Debian 12".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
        };
        super::super::enroll(
            &db,
            &jumpgate_api_types::EnrollRequest {
                token,
                name: "web-1".into(),
                public_key: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    [7u8; 32],
                ),
                details: reported.clone(),
            },
        )
        .await
        .unwrap();
        let entries = |db: crate::store::Store| async move {
            let mut c = db.conn().await.unwrap();
            let rows: Vec<(String, String, String)> = crate::store::sql!(c, |c| sqlx::query_as(
                "SELECT actor, target, detail FROM events WHERE action = 'endpoint-details'",
            )
            .fetch_all(&mut *c)
            .await)
            .unwrap();
            rows
        };
        let ep = super::super::find_by_name(&db, "web-1")
            .await
            .unwrap()
            .unwrap();

        // The same details: stored, nothing audited.
        let same = AgentInfo {
            hostname: "web-1".into(),
            os: "Debian 12".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
        };
        let f = apply_facts(&db, &ep, &same).await.unwrap();
        assert!(!f.changed);
        assert!(entries(db.clone()).await.is_empty());

        // An upgrade (and a hostile host name, cleaned before it is kept).
        let upgraded = AgentInfo {
            hostname: "web-1\x1b[2J".into(),
            os: "Debian 13".into(),
            ..same
        };
        let f = apply_facts(&db, &ep, &upgraded).await.unwrap();
        assert!(f.changed);
        assert_eq!(f.details.os, "Debian 13");
        assert!(!f.details.hostname.contains('\x1b'));
        let stored = super::super::find_by_name(&db, "web-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.details, f.details);
        let audit = entries(db.clone()).await;
        assert_eq!(audit.len(), 1, "{audit:?}");
        let (actor, target, detail) = &audit[0];
        assert_eq!(actor, SYSTEM_ACTOR);
        assert_eq!(target, "web-1");
        assert!(detail.contains("os: Debian 12 -> Debian 13"), "{detail}");
        assert!(
            detail.contains("hostname: web-1 -> web-1\u{FFFD}[2J"),
            "{detail}"
        );
        assert!(!detail.contains("arch"), "{detail}");
        // The chain still verifies with the system entry in it.
        assert!(crate::events::verify(&db, None).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_offline_endpoint_or_an_oversized_payload_is_refused_before_anything_is_sent() {
        let dir = super::super::directory::single_node();
        let id = AgentId("ep_none".into());
        assert!(matches!(
            send(&*dir, &id, Topic::Facts, Bytes::new(), TIMEOUT).await,
            Err(SystemError::Offline)
        ));
        let big = Bytes::from(vec![0u8; MAX_BODY + 1]);
        assert!(matches!(
            send(&*dir, &id, Topic::Echo, big, TIMEOUT).await,
            Err(SystemError::TooLarge(_))
        ));
    }
}
