//! The customer's client connection (`jumpgate assist`): the same TLS
//! port and ALPN as agents, a hello of its own ([`AssistHello`]) proving
//! an ephemeral key and spending the download's single-use ticket (or, to
//! reconnect, naming its support session with the same key), then a
//! multiplexed connection like an agent's: technicians' sub-sessions are
//! streams opened to it, and stream 0 carries [`AssistMsg`]s.

use std::time::Duration;

use base64::Engine;
use bytes::BytesMut;
use jumpgate_net::handshake;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_proto::assist::{AssistMsg, ParticipantRole, Rights, SupportState};
use jumpgate_proto::control::{self, AssistHello, AssistWelcome, Control, Reject, RejectCode};
use jumpgate_proto::mux::{Role, reset_code};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use super::live::{Init, LiveSupport, Person};
use super::{SupportError, crypto, session};
use crate::ids;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, sql};

/// How long a support session waits for its client to come back.
pub(crate) const RECONNECT_GRACE: Duration = Duration::from_secs(120);

/// How long a downloaded client's ticket works.
pub(crate) const TICKET_TTL: Duration = Duration::from_secs(10 * 60);

/// What the rest of the connection needs from the hello.
struct Joined {
    id: String,
    queue: String,
    customer: String,
    init: Init,
}

fn reject(code: RejectCode, message: &str) -> Reject {
    Reject {
        code,
        message: message.to_owned(),
    }
}

const NO_TICKET: &str = "This support link has expired or was already used. Go back to the \
     support page and start again for a new one.";

/// Serves a customer's client until its connection ends.
pub(crate) async fn serve<T>(
    st: AppState,
    mut tls: T,
    exporter: [u8; control::AUTH_EXPORTER_LEN],
    peer: std::net::SocketAddr,
    hello: AssistHello,
    leftover: BytesMut,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let joined = match Box::pin(check(&st, &hello, &exporter, peer)).await {
        Ok(j) => j,
        Err(r) => {
            tracing::info!(%peer, code = ?r.code, reason = %r.message, "customer client refused");
            let _ = handshake::write_control(&mut tls, &Control::Reject(r)).await;
            let _ = tls.shutdown().await;
            return;
        }
    };
    let site = super::portal::load(&st.db)
        .await
        .map(|i| i.site_name)
        .unwrap_or_default();
    let welcome = Control::AssistWelcome(AssistWelcome {
        version: control::negotiate(&hello.versions).unwrap_or(1),
        support_id: joined.id.clone(),
        heartbeat_secs: st.config.agent_heartbeat.as_secs() as u32,
        site,
        queue: joined.queue.clone(),
        customer: joined.customer.clone(),
    });
    if handshake::write_control(&mut tls, &welcome).await.is_err() {
        return;
    }
    crate::listener::authenticated();
    let span = tracing::info_span!("assist", support = %joined.id);
    run(st, tls, joined, peer, leftover).instrument(span).await;
}

/// Verifies the hello and spends the ticket (or recognises the key).
async fn check(
    st: &AppState,
    hello: &AssistHello,
    exporter: &[u8],
    peer: std::net::SocketAddr,
) -> Result<Joined, Reject> {
    if control::negotiate(&hello.versions).is_none() {
        return Err(reject(
            RejectCode::UnsupportedVersion,
            "this support app is too old or too new for this site; download it again",
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(&hello.public_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| reject(RejectCode::Malformed, "malformed public key"))?;
    let sig = b64
        .decode(&hello.signature)
        .map_err(|_| reject(RejectCode::BadSignature, "signature is not base64"))?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
        .verify(&control::assist_auth_message(&key, exporter), &sig)
        .map_err(|_| reject(RejectCode::BadSignature, "signature does not verify"))?;
    let info = crate::agents::reported::details(
        &hello.info.hostname,
        &hello.info.os,
        &hello.info.arch,
        &hello.info.agent_version,
    );
    let result = match (&hello.ticket, &hello.support_id) {
        (Some(ticket), None) => join(st, ticket, &key, &info, peer).await,
        (None, Some(id)) => rejoin(st, id, &key, &info).await,
        _ => return Err(reject(RejectCode::Malformed, "a ticket or a support id")),
    };
    match result {
        Ok(Some(j)) => Ok(j),
        Ok(None) => Err(reject(RejectCode::InvalidTicket, NO_TICKET)),
        Err(e) => {
            tracing::error!(error = %e, "cannot check a customer client's ticket");
            Err(reject(
                RejectCode::Malformed,
                "the site could not check this support link; try again",
            ))
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    queue: String,
    group_name: String,
    state: String,
    joined_at: Option<i64>,
    owner_id: Option<String>,
    owner_name: Option<String>,
    accepted_at: Option<i64>,
    wrapped_key: String,
    customer_sealed: Vec<u8>,
    rights_used: String,
}

macro_rules! returning {
    () => {
        " RETURNING id, queue, group_name, state, joined_at, owner_id, owner_name, accepted_at,
                    wrapped_key, customer_sealed, rights_used"
    };
}

/// First connection: the ticket is spent, the session waits in its queue.
async fn join(
    st: &AppState,
    ticket: &str,
    key: &[u8],
    info: &jumpgate_api_types::EndpointDetails,
    peer: std::net::SocketAddr,
) -> Result<Option<Joined>, SupportError> {
    let now = ids::now_ms();
    let info_json = serde_json::to_string(info).unwrap_or_default();
    let mut w = st.db.write().await?;
    let q = concat!(
        "UPDATE support_sessions SET state = 'waiting', joined_at = $1, ticket_hash = NULL,
                client_key = $2, client_info = $3, peer = $4
          WHERE ticket_hash = $5 AND state = 'pending' AND ticket_expires_at > $1",
        returning!()
    );
    let row: Option<SessionRow> = sql!(w, |c| sqlx::query_as(q)
        .bind(now)
        .bind(key)
        .bind(&info_json)
        .bind(peer.ip().to_string())
        .bind(ids::token_hash(ticket))
        .fetch_optional(&mut *c)
        .await)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let customer = customer_of(st, &row);
    w.audit(
        AuditEvent::new(
            session::customer_actor(&customer),
            AuditAction::SupportJoin,
            &row.id,
        )
        .detail(format!(
            "queue={} host={} addr={}",
            row.queue,
            info.hostname,
            peer.ip()
        ))
        .group(&row.group_name),
    )
    .await?;
    w.commit().await?;
    Ok(Some(joined(row, customer, info)))
}

/// A reconnection: the same session, proved by the same key.
async fn rejoin(
    st: &AppState,
    id: &str,
    key: &[u8],
    info: &jumpgate_api_types::EndpointDetails,
) -> Result<Option<Joined>, SupportError> {
    let mut c = st.db.conn().await?;
    let q = "SELECT id, queue, group_name, state, joined_at, owner_id, owner_name, accepted_at,
                    wrapped_key, customer_sealed, rights_used, client_key
               FROM support_sessions WHERE id = $1 AND state IN ('waiting', 'active')";
    let found: Option<SessionRowWithKey> = sql!(c, |c| sqlx::query_as(q)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    let Some(found) = found else {
        return Ok(None);
    };
    let same = found
        .client_key
        .as_deref()
        .is_some_and(|k| aws_lc_rs::constant_time::verify_slices_are_equal(k, key).is_ok());
    if !same {
        return Ok(None);
    }
    let row = found.row;
    let customer = customer_of(st, &row);
    Ok(Some(joined(row, customer, info)))
}

#[derive(sqlx::FromRow)]
struct SessionRowWithKey {
    #[sqlx(flatten)]
    row: SessionRow,
    client_key: Option<Vec<u8>>,
}

fn customer_of(st: &AppState, row: &SessionRow) -> String {
    crypto::shown_field(
        &st.keys,
        &row.id,
        &row.wrapped_key,
        "customer",
        &row.customer_sealed,
    )
}

fn joined(row: SessionRow, customer: String, info: &jumpgate_api_types::EndpointDetails) -> Joined {
    let state = if row.state == "active" {
        SupportState::Active
    } else {
        SupportState::Waiting
    };
    let people = match (row.owner_id, row.owner_name) {
        (Some(user_id), Some(name)) => vec![Person {
            user_id,
            name,
            role: ParticipantRole::Owner,
            joined_at_ms: row.accepted_at.unwrap_or_default(),
        }],
        _ => Vec::new(),
    };
    let used: Rights = serde_json::from_str::<Vec<String>>(&row.rights_used)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    Joined {
        id: row.id,
        queue: row.queue.clone(),
        customer,
        init: Init {
            queue: row.queue,
            group: row.group_name,
            hostname: (!info.hostname.is_empty()).then(|| info.hostname.clone()),
            state,
            joined_at_ms: row.joined_at.unwrap_or_default(),
            people,
            chat_seq: 0,
            grant_seq: 0,
            used,
        },
    }
}

/// The highest chat and grant numbers stored for `id` (a session that
/// comes live again continues them).
async fn sequences(st: &AppState, id: &str) -> Result<(u64, u64), sqlx::Error> {
    let mut c = st.db.conn().await?;
    let (chat, grants): (i64, i64) = sql!(c, |c| sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM support_messages WHERE support_id = $1),
                (SELECT COALESCE(MAX(seq), 0) FROM support_grants WHERE support_id = $1)"
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await)?;
    Ok((chat as u64, grants as u64))
}

async fn run<T>(
    st: AppState,
    tls: T,
    mut joined: Joined,
    peer: std::net::SocketAddr,
    leftover: BytesMut,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = DriverConfig {
        ping_interval: None,
        idle_timeout: st.config.agent_heartbeat * 3,
        ..DriverConfig::default()
    };
    let (handle, mut events, driver) = match mux::start(tls, Role::Gateway, &leftover, cfg) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(error = %e, "customer client sent garbage after its hello");
            return;
        }
    };
    let id = joined.id.clone();
    match sequences(&st, &id).await {
        Ok((chat, grants)) => {
            joined.init.chat_seq = chat;
            joined.init.grant_seq = grants;
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the support session's sequences"),
    }
    let agent = LiveSupport::agent_id(&id);
    let registered = st
        .agents
        .local()
        .insert(agent.clone(), handle.clone(), peer);
    let joined_waiting = joined.init.state == SupportState::Waiting;
    let joined_queue = joined.init.queue.clone();
    let conn = st.support_hub.live.attach(&id, joined.init, handle.clone());
    st.support_hub.live.with(&id, |l| {
        l.told_position = None;
        l.send(AssistMsg::Status {
            state: l.state,
            queue: l.queue.clone(),
            position: None,
        });
        l.send(l.participants_msg());
    });
    tracing::info!(%peer, "customer client connected");
    session::publish(&st, &id).await;
    if joined_waiting {
        super::assign::spawn(&st, joined_queue);
    }

    let customer = joined.customer.clone();
    let st2 = st.clone();
    let id2 = id.clone();
    let handle_events = async move {
        while let Some(ev) = events.recv().await {
            match ev {
                MuxEvent::Control(Control::Assist(msg)) => {
                    session::from_client(&st2, &id2, &customer, msg).await;
                }
                MuxEvent::Control(other) => tracing::debug!(?other, "ignoring control message"),
                MuxEvent::Stream(s) => s.reset(reset_code::REFUSED),
                MuxEvent::GoAway { code, reason } => {
                    tracing::info!(code, %reason, "customer client is going away");
                }
            }
        }
    };
    let (result, ()) = tokio::join!(driver, handle_events);
    st.agents.local().remove(&agent, registered);
    match result {
        Ok(()) => tracing::info!("customer client disconnected"),
        Err(e) => tracing::info!(reason = %e, "customer client connection ended"),
    }
    if st.support_hub.live.detach(&id, conn) {
        // Its sub-sessions end; the session waits for the client a while.
        st.sessions.changed();
        session::publish(&st, &id).await;
        let st = st.clone();
        st.tasks.clone().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_GRACE) => {}
                () = st.shutdown.cancelled() => return,
            }
            let back = st
                .support_hub
                .live
                .with(&id, |l| l.online())
                .unwrap_or(true);
            if !back {
                let _ =
                    session::end(&st, &id, "(gateway)", "the customer's client disconnected").await;
            }
        });
    }
}
