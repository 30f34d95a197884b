//! One agent connection: handshake (version, identity proof), then the
//! multiplexed connection until either side ends it.

use std::time::Duration;

use base64::Engine;
use bytes::BytesMut;
use jumpgate_api_types::EndpointDetails;
use jumpgate_net::handshake;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_proto::control::{
    self, AUTH_EXPORTER_LEN, AgentInfo, Control, Hello, Reject, RejectCode, Welcome,
};
use jumpgate_proto::mux::{Role, reset_code};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use super::EndpointRecord;
use crate::ids::AgentId;
use crate::state::AppState;

/// Time an agent has to send its `Hello` after the TLS handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the known connection of an agent has to answer a ping when a
/// second connection with the same identity arrives. It answers: the
/// newcomer is a clone and is refused. It does not: it is a dead
/// connection the agent is replacing.
const LIVENESS_DEADLINE: Duration = Duration::from_secs(3);

/// Longest agent id the gateway looks up (its own are about 30 characters).
const AGENT_ID_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no hello within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Proto(#[from] jumpgate_proto::ProtoError),
    #[error("rejected: {}", .0.message)]
    Rejected(Reject),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn reject(code: RejectCode, message: impl Into<String>) -> HandshakeError {
    HandshakeError::Rejected(Reject {
        code,
        message: message.into(),
    })
}

/// What the rest of an agent connection needs from its handshake.
struct Accepted {
    id: AgentId,
    name: String,
    /// The endpoint's group (EPM notices name it).
    group: String,
    details: EndpointDetails,
    version: u16,
    /// Bytes read past the hello.
    leftover: BytesMut,
}

/// Serves an agent connection (ALPN `jumpgate-agent/1`) until it ends.
pub(crate) async fn serve_agent<T>(
    st: AppState,
    mut tls: T,
    exporter: [u8; AUTH_EXPORTER_LEN],
    peer: std::net::SocketAddr,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed, so its state (the hello, the endpoint record, database
    // queries) is freed once done instead of being laid out beside the
    // connection's state for the connection's whole life: memory per idle
    // agent is what bounds a gateway.
    let mut buf = BytesMut::new();
    let first = match tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut tls, &mut buf)).await {
        Err(_) => Err(HandshakeError::Timeout(HELLO_TIMEOUT)),
        Ok(r) => r,
    };
    let hello = match first {
        Ok(First::Agent(h)) => Ok(h),
        Ok(First::Assist(h)) => {
            // A customer's client (attended support), not an agent.
            Box::pin(crate::support::assist::serve(
                st, tls, exporter, peer, h, buf,
            ))
            .await;
            return;
        }
        Err(e) => Err(e),
    };
    let Some(accepted) = Box::pin(handshake(&st, &mut tls, exporter, peer, hello, buf)).await
    else {
        return;
    };
    // A verified agent leaves the unauthenticated connections' limits.
    crate::listener::authenticated();
    let span = tracing::info_span!("agent", endpoint = %accepted.name, id = %accepted.id);
    run_connection(st, tls, accepted, peer)
        .instrument(span)
        .await;
}

/// Checks the hello read, answers welcome or reject.
async fn handshake<T>(
    st: &AppState,
    tls: &mut T,
    exporter: [u8; AUTH_EXPORTER_LEN],
    peer: std::net::SocketAddr,
    hello: Result<Hello, HandshakeError>,
    buf: BytesMut,
) -> Option<Accepted>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let checked = match hello {
        Err(e) => Err(e),
        Ok(hello) => match check_hello(st, hello, &exporter).await {
            Ok((endpoint, hello)) => check_unique(st, endpoint, peer).await.map(|e| (e, hello)),
            Err(e) => Err(e),
        },
    };
    let (endpoint, hello) = match checked {
        Ok(v) => v,
        Err(HandshakeError::Rejected(r)) => {
            tracing::info!(%peer, code = ?r.code, reason = %r.message, "agent refused");
            let _ = handshake::write_control(tls, &Control::Reject(r)).await;
            let _ = tls.shutdown().await;
            return None;
        }
        Err(e) => {
            // Unauthenticated noise (scanners, broken clients): debug level.
            tracing::debug!(%peer, error = %e, "agent handshake failed");
            return None;
        }
    };
    let version = control::negotiate(&hello.versions).unwrap_or(1);
    let welcome = Control::Welcome(Welcome {
        version,
        endpoint: endpoint.name.clone(),
        heartbeat_secs: st.config.agent_heartbeat.as_secs() as u32,
    });
    if let Err(e) = handshake::write_control(tls, &welcome).await {
        tracing::debug!(%peer, error = %e, "agent left during handshake");
        return None;
    }
    Some(Accepted {
        id: endpoint.id,
        name: endpoint.name,
        group: endpoint.group,
        details: details(&hello.info),
        version,
        leftover: buf,
    })
}

/// The first message on an agent-ALPN connection.
enum First {
    Agent(Hello),
    Assist(jumpgate_proto::control::AssistHello),
}

async fn read_hello<T: AsyncRead + Unpin>(
    tls: &mut T,
    buf: &mut BytesMut,
) -> Result<First, HandshakeError> {
    use handshake::ControlReadError as E;
    match handshake::read_control_frame(tls, buf).await {
        Ok(Control::Hello(h)) => Ok(First::Agent(h)),
        Ok(Control::AssistHello(h)) => Ok(First::Assist(h)),
        Ok(_) => Err(reject(
            RejectCode::Malformed,
            "the first message must be a hello",
        )),
        Err(E::Io(e)) => Err(e.into()),
        Err(E::Frame(e)) => Err(e.into()),
        Err(E::NotControl) => Err(reject(
            RejectCode::Malformed,
            "the first frame must be a hello",
        )),
        Err(E::TooLarge) => Err(reject(RejectCode::Malformed, "hello too large")),
        Err(E::Message(e)) => Err(reject(RejectCode::Malformed, e.to_string())),
    }
}

async fn check_hello(
    st: &AppState,
    hello: Hello,
    exporter: &[u8],
) -> Result<(EndpointRecord, Hello), HandshakeError> {
    if control::negotiate(&hello.versions).is_none() {
        return Err(reject(
            RejectCode::UnsupportedVersion,
            format!(
                "agent speaks protocol versions {:?}, gateway speaks {:?}; upgrade the older side",
                hello.versions,
                control::SUPPORTED_VERSIONS
            ),
        ));
    }
    let well_formed = !hello.agent_id.is_empty()
        && hello.agent_id.len() <= AGENT_ID_MAX
        && hello
            .agent_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !well_formed {
        return Err(reject(RejectCode::Malformed, "malformed agent id"));
    }
    let id = AgentId(hello.agent_id.clone());
    let Some(endpoint) = super::find_by_id(&st.db, &id).await? else {
        return Err(reject(
            RejectCode::UnknownAgent,
            "this agent is not enrolled at this site",
        ));
    };
    if endpoint.revoked {
        return Err(reject(
            RejectCode::Revoked,
            "this endpoint was revoked by an administrator",
        ));
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&hello.signature)
        .map_err(|_| reject(RejectCode::BadSignature, "signature is not base64"))?;
    let msg = control::auth_message(&hello.agent_id, exporter);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ED25519,
        &endpoint.public_key,
    )
    .verify(&msg, &sig)
    .map_err(|_| {
        reject(
            RejectCode::BadSignature,
            "signature does not verify with the endpoint's key (was the endpoint \
             re-enrolled with a new key? then this copy of the agent is no longer valid)",
        )
    })?;
    Ok((endpoint, hello))
}

/// One live connection per identity. A second agent proving the same key
/// while the known connection answers a ping is a clone (a copied state
/// directory, a stolen key): it is refused, audited, and the endpoint is
/// marked in conflict, so the endpoint keeps its connection and sessions
/// instead of the two agents replacing each other. A known connection that
/// does not answer is a dead one the agent is replacing: the newcomer is
/// accepted.
async fn check_unique(
    st: &AppState,
    endpoint: EndpointRecord,
    peer: std::net::SocketAddr,
) -> Result<EndpointRecord, HandshakeError> {
    let Some((known, known_peer)) = st.agents.local().connected(&endpoint.id) else {
        return Ok(endpoint);
    };
    if !known.probe(LIVENESS_DEADLINE).await {
        tracing::info!(
            endpoint = %endpoint.name, %peer, previous = %known_peer,
            "the agent's previous connection does not answer; the new one replaces it"
        );
        return Ok(endpoint);
    }
    let count = super::record_conflict(&st.db, &endpoint, known_peer, peer).await?;
    tracing::warn!(
        endpoint = %endpoint.name, connected = %known_peer, refused = %peer, count,
        "refused a second agent with the same identity while the connected one answers; \
         the agent's state directory was copied or its key stolen: re-enroll the endpoint \
         (jg admin endpoints reenroll {})",
        endpoint.name
    );
    Err(reject(
        RejectCode::Conflict,
        format!(
            "another agent with the identity of endpoint `{}` is connected and answering, so \
             this one is refused. Its state directory (agent key) exists twice: run only one \
             copy, or ask an administrator to re-enroll the endpoint \
             (jg admin endpoints reenroll {}) and start the legitimate agent with that token \
             and --reenroll",
            endpoint.name, endpoint.name
        ),
    ))
}

/// What the agent reports, cleaned (see [`super::reported`]).
fn details(info: &AgentInfo) -> EndpointDetails {
    super::reported::details(&info.hostname, &info.os, &info.arch, &info.agent_version)
}

async fn run_connection<T>(st: AppState, tls: T, accepted: Accepted, peer: std::net::SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        id,
        group,
        details: reported,
        version,
        leftover,
        ..
    } = accepted;
    let cfg = DriverConfig {
        ping_interval: None,
        // Three missed heartbeats and the agent is considered gone.
        idle_timeout: st.config.agent_heartbeat * 3,
        ..DriverConfig::default()
    };
    let started = mux::start(tls, Role::Gateway, &leftover, cfg);
    drop(leftover);
    let (handle, mut events, driver) = match started {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "agent sent garbage after its hello");
            return;
        }
    };
    if let Err(e) = Box::pin(super::touch(&st.db, &id, Some(&reported))).await {
        tracing::warn!(error = %e, "could not record agent details");
    }
    drop(reported);
    let epm_handle = handle.clone();
    let conn = st.agents.local().insert(id.clone(), handle, peer);
    tracing::info!(%peer, version, "agent connected");
    // EPM: tell the agent the current policy bundle (it may have been
    // offline when it was published).
    st.tasks.spawn(crate::epm::notify::on_connect(
        st.clone(),
        id.clone(),
        group.clone(),
    ));
    // Packages: the group's assignments (or just the inventory).
    st.tasks.spawn(crate::packages::notify::on_connect(
        st.clone(),
        id.clone(),
        group,
    ));

    let db = st.db.clone();
    let events_id = id.clone();
    let epm_st = st.clone();
    let handle_events = async move {
        while let Some(ev) = events.recv().await {
            match ev {
                MuxEvent::Control(Control::AgentInfo(info)) => {
                    // Boxed: rare, and not worth space in every idle connection.
                    if let Err(e) =
                        Box::pin(super::touch(&db, &events_id, Some(&details(&info)))).await
                    {
                        tracing::warn!(error = %e, "could not record agent details");
                    }
                }
                MuxEvent::Control(Control::EpmEvents(batch)) => {
                    // In order, one batch at a time: the ack follows the store.
                    Box::pin(crate::epm::ingest::on_events(
                        &epm_st,
                        &events_id,
                        &epm_handle,
                        batch,
                    ))
                    .await;
                }
                MuxEvent::Control(Control::PackagesChanged { revision }) => {
                    epm_st.tasks.spawn(crate::packages::notify::on_changed(
                        epm_st.clone(),
                        events_id.clone(),
                        revision,
                    ));
                }
                MuxEvent::Control(other) => tracing::debug!(?other, "ignoring control message"),
                // Agents do not open streams towards the gateway (yet).
                MuxEvent::Stream(s) => s.reset(reset_code::REFUSED),
                MuxEvent::GoAway { code, reason } => {
                    tracing::info!(code, %reason, "agent is going away");
                }
            }
        }
    };
    let (result, ()) = tokio::join!(driver, handle_events);
    st.agents.local().remove(&id, conn);
    if let Err(e) = Box::pin(super::touch(&st.db, &id, None)).await {
        tracing::warn!(error = %e, "could not record last-seen time");
    }
    match result {
        Ok(()) => tracing::info!("agent disconnected"),
        Err(e) => tracing::info!(reason = %e, "agent connection ended"),
    }
}
