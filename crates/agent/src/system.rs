//! The agent's side of system streams ([`jumpgate_proto::system`]): the
//! gateway asks on its own behalf, not a technician's; one handler per
//! topic.
//!
//! - `facts`: this machine's details, fresh ([`crate::agent_info`]).
//! - `echo`: the request body back, only when the agent was started for it
//!   ([`SystemOptions::echo`], for tests of the system channel).
//! - `epm-policy`: a policy notice; the bundle is fetched, verified and put
//!   in force ([`crate::epm::Epm::handle_notice`]), the reply a `PolicyAck`.
//! - `epm-decision`: a technician's answer to an approval request; `Ok` if
//!   the request was waiting, `Invalid` if not.
//! - `packages`: the desired state of assigned packages; downloaded,
//!   verified, installed or removed ([`crate::packages::Packages`]), the
//!   reply a `PackageAck` with the results and inventory.
//! - `package-inventory`: the installed packages (a diff or all).
//!
//! A topic this build does not know gets [`Status::UnknownTopic`], so a
//! newer gateway learns it must wait for a newer agent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jumpgate_net::system::{ReadError, read_message, write_message};
use jumpgate_proto::system::{Head, MAX_BODY, Reply, Status, Topic};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// System streams served at once per connection (each may hold a body of
/// up to [`MAX_BODY`]); more wait.
pub(crate) const CONCURRENT: usize = 2;

/// Settings of the system stream handlers.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    /// Answer the `echo` topic (tests of the system channel only).
    pub echo: bool,
    /// Limit on receiving a request whole.
    pub read_timeout: Duration,
    /// How long to wait for the gateway's end of the stream once the reply
    /// is sent (so the reply is never overtaken by a reset).
    pub linger: Duration,
    /// EPM, when this agent runs it (an enrolled agent always does).
    pub epm: Option<Arc<crate::epm::Epm>>,
    /// The Package Manager, likewise.
    pub packages: Option<Arc<crate::packages::Packages>>,
    /// Serve the target topics (`target-host-key`, `target-rotate`): this
    /// agent agreed to be a jump point (`--jump-point`).
    pub jump_point: bool,
    /// Its own list of destinations (`--jump-point-allow`).
    pub jump_point_allow: jumpgate_net::allow::AllowList,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self {
            echo: false,
            read_timeout: Duration::from_secs(60),
            linger: Duration::from_secs(5),
            epm: None,
            packages: None,
            jump_point: false,
            jump_point_allow: jumpgate_net::allow::AllowList::any(),
        }
    }
}

/// Why a system stream was not served to its end.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("no whole request within {0:?}")]
    Timeout(Duration),
    #[error("a system stream must start with a request, not a reply")]
    NotARequest,
    #[error("sending the reply failed: {0}")]
    Write(#[source] std::io::Error),
}

/// Serves one system stream whose first bytes (`first`) were read by the
/// dispatcher: reads the request whole, runs the topic's handler, sends
/// the reply and ends the stream.
///
/// # Errors
/// The stream broke, timed out or did not hold a valid request.
pub(crate) async fn serve<S>(
    mut stream: S,
    first: Bytes,
    opts: &SystemOptions,
) -> Result<(), SystemError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = read_message(&mut stream, &first, MAX_BODY);
    let (head, body) = match tokio::time::timeout(opts.read_timeout, read).await {
        Ok(r) => r?,
        Err(_) => return Err(SystemError::Timeout(opts.read_timeout)),
    };
    let Head::Request(req) = head else {
        return Err(SystemError::NotARequest);
    };
    let bytes_in = body.len();
    let (reply, out) = match (req.topic.parse::<Topic>(), &opts.epm, &opts.packages) {
        (Ok(Topic::EpmPolicy), Some(epm), _) => epm_policy(epm, &body).await,
        (Ok(Topic::EpmDecision), Some(epm), _) => epm_decision(epm, &body),
        (Ok(Topic::Packages), _, Some(p)) => packages(p, &body).await,
        (Ok(Topic::PackageInventory), _, Some(p)) => package_inventory(p, &body).await,
        (Ok(Topic::TargetHostKey), _, _) if opts.jump_point => {
            target_host_key(&body, &opts.jump_point_allow).await
        }
        (Ok(Topic::TargetRotate), _, _) if opts.jump_point => {
            target_rotate(&body, &opts.jump_point_allow).await
        }
        _ => handle(&req.topic, body, opts),
    };
    tracing::info!(
        topic = %clean(&req.topic),
        bytes_in,
        bytes_out = out.len(),
        status = ?reply.status,
        "system request served"
    );
    write_message(&mut stream, Head::Reply(reply), &out)
        .await
        .map_err(SystemError::Write)?;
    stream.shutdown().await.map_err(SystemError::Write)?;
    // The gateway half-closed after its request; wait (bounded) for that
    // end so that dropping the stream closes it cleanly.
    let mut rest = [0u8; 64];
    let _ = tokio::time::timeout(opts.linger, async {
        while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok(())
}

/// A topic name from the gateway, fit for a log line: bounded, and no
/// character that could drive a terminal.
fn clean(topic: &str) -> String {
    topic
        .chars()
        .take(64)
        .map(|c| {
            if jumpgate_proto::text::is_unsafe_char(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn reply(status: Status, message: String) -> Reply {
    Reply {
        status,
        message,
        size: 0,
    }
}

async fn epm_policy(epm: &Arc<crate::epm::Epm>, body: &[u8]) -> (Reply, Bytes) {
    let notice: jumpgate_proto::epm::PolicyNotice = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return (
                reply(Status::Invalid, format!("not a policy notice: {e}")),
                Bytes::new(),
            );
        }
    };
    let ack = epm.handle_notice(notice).await;
    let out = serde_json::to_vec(&ack).unwrap_or_default();
    (reply(Status::Ok, String::new()), out.into())
}

async fn packages(p: &Arc<crate::packages::Packages>, body: &[u8]) -> (Reply, Bytes) {
    let notice: jumpgate_proto::packages::PackageNotice = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return (
                reply(Status::Invalid, format!("not a package notice: {e}")),
                Bytes::new(),
            );
        }
    };
    let ack = p.handle_notice(notice).await;
    let out = serde_json::to_vec(&ack).unwrap_or_default();
    (reply(Status::Ok, String::new()), out.into())
}

/// `target-host-key`: the key an SSH target offers (trust on first use).
async fn target_host_key(body: &[u8], local: &jumpgate_net::allow::AllowList) -> (Reply, Bytes) {
    use jumpgate_proto::target::{HostKeyReply, HostKeyRequest};
    let req: HostKeyRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                reply(Status::Invalid, format!("not a host key request: {e}")),
                Bytes::new(),
            );
        }
    };
    let reach = match crate::target::Reach::new(req.allowed.as_deref(), local) {
        Ok(r) => r,
        Err(e) => return (reply(Status::Failed, e.to_string()), Bytes::new()),
    };
    match crate::target::offered_host_key(&req.host, req.port, &reach).await {
        Ok(host_key) => {
            let out = serde_json::to_vec(&HostKeyReply { host_key }).unwrap_or_default();
            (reply(Status::Ok, String::new()), out.into())
        }
        Err(e) => (reply(Status::Failed, e.to_string()), Bytes::new()),
    }
}

/// `target-rotate`: a new password on an SSH target's account. The
/// request holds two secrets: it is neither logged nor kept.
async fn target_rotate(body: &[u8], local: &jumpgate_net::allow::AllowList) -> (Reply, Bytes) {
    let req: jumpgate_proto::target::RotateRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        // serde's message could quote the body: not repeated.
        Err(_) => {
            return (
                reply(Status::Invalid, "not a rotation request".into()),
                Bytes::new(),
            );
        }
    };
    match crate::target::rotate(&req.login, &req.new_password, local).await {
        Ok(()) => (reply(Status::Ok, String::new()), Bytes::new()),
        Err(e) => (reply(Status::Failed, e.to_string()), Bytes::new()),
    }
}

async fn package_inventory(p: &Arc<crate::packages::Packages>, body: &[u8]) -> (Reply, Bytes) {
    let req: jumpgate_proto::packages::InventoryRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                reply(Status::Invalid, format!("not an inventory request: {e}")),
                Bytes::new(),
            );
        }
    };
    let report = p.handle_inventory(req).await;
    let out = serde_json::to_vec(&report).unwrap_or_default();
    (reply(Status::Ok, String::new()), out.into())
}

fn epm_decision(epm: &crate::epm::Epm, body: &[u8]) -> (Reply, Bytes) {
    let decision: jumpgate_proto::epm::ApprovalDecision = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => {
            return (
                reply(Status::Invalid, format!("not an approval decision: {e}")),
                Bytes::new(),
            );
        }
    };
    if epm.handle_decision(decision) {
        (reply(Status::Ok, String::new()), Bytes::new())
    } else {
        (
            reply(Status::Invalid, "no request of that id is waiting".into()),
            Bytes::new(),
        )
    }
}

/// The reply (head and body) for a request.
fn handle(topic: &str, body: Bytes, opts: &SystemOptions) -> (Reply, Bytes) {
    let reply = |status, message: String| Reply {
        status,
        message,
        size: 0,
    };
    match topic.parse::<Topic>() {
        Ok(Topic::Facts) if !body.is_empty() => (
            reply(Status::Invalid, "facts takes an empty request".into()),
            Bytes::new(),
        ),
        Ok(Topic::Facts) => {
            // Serializing a plain struct cannot fail.
            let facts = serde_json::to_vec(&crate::agent_info()).unwrap_or_default();
            (reply(Status::Ok, String::new()), facts.into())
        }
        Ok(Topic::Echo) if opts.echo => (reply(Status::Ok, String::new()), body),
        _ => (
            reply(
                Status::UnknownTopic,
                format!("this agent does not serve the topic `{}`", clean(topic)),
            ),
            Bytes::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use jumpgate_proto::control::AgentInfo;
    use jumpgate_proto::system::Request;

    use super::*;

    /// Sends a request to `serve` over an in-memory stream; the reply.
    async fn ask(topic: &str, body: Bytes, opts: SystemOptions) -> (Reply, Bytes) {
        let (mut gw, agent) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { serve(agent, Bytes::new(), &opts).await });
        let req = Head::Request(Request {
            topic: topic.into(),
            size: 0,
        });
        write_message(&mut gw, req, &body).await.unwrap();
        gw.shutdown().await.unwrap();
        let (head, out) = read_message(&mut gw, &[], MAX_BODY).await.unwrap();
        server.await.unwrap().unwrap();
        let Head::Reply(reply) = head else {
            panic!("not a reply");
        };
        (reply, out)
    }

    #[tokio::test]
    async fn facts_are_this_machines_details() {
        let (reply, body) = ask("facts", Bytes::new(), SystemOptions::default()).await;
        assert_eq!(reply.status, Status::Ok);
        let info: AgentInfo = serde_json::from_slice(&body).unwrap();
        assert_eq!(info, crate::agent_info());
        assert!(!info.agent_version.is_empty());
        let (reply, _) = ask("facts", Bytes::from_static(b"x"), SystemOptions::default()).await;
        assert_eq!(reply.status, Status::Invalid);
    }

    #[tokio::test]
    async fn echo_is_served_only_when_enabled_and_unknown_topics_are_answered() {
        let body: Bytes = (0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>().into();
        let (reply, _) = ask("echo", body.clone(), SystemOptions::default()).await;
        assert_eq!(reply.status, Status::UnknownTopic);
        let opts = SystemOptions {
            echo: true,
            ..SystemOptions::default()
        };
        let (reply, out) = ask("echo", body.clone(), opts).await;
        assert_eq!(reply.status, Status::Ok);
        assert_eq!(out, body);
        let (reply, _) = ask("policy\x1b[2J", Bytes::new(), SystemOptions::default()).await;
        assert_eq!(reply.status, Status::UnknownTopic);
        assert!(reply.message.contains("policy"), "{}", reply.message);
        assert!(!reply.message.contains('\x1b'), "{}", reply.message);
    }
}
