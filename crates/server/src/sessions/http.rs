//! `GET /api/v1/endpoints/{name}/connect?kind=K` (HTTP upgrade to the
//! session protocol, or to a WebSocket for the web console),
//! `GET /api/v1/sessions` and `POST /api/v1/sessions/{id}/terminate`.
//!
//! Only the HTTP side lives here: the route, the upgrade and the WebSocket
//! pump. The session itself is [`SessionService`]'s (`open.rs`).

use axum::Json;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use jumpgate_api_types as api;
use jumpgate_proto::session::SessionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tracing::Instrument;

use super::open::{NotAuthorized, OPEN_TIMEOUT, SessionService, Ticket};
use crate::agents;
use crate::api::ApiError;
use crate::ids;
use crate::rbac::Action;
use crate::rbac::{Access, Caller, denied};
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    api.get(
        "/api/v1/endpoints/{name}/connect",
        Access::PerEndpoint,
        connect,
    )
    .get(
        "/api/v1/sessions",
        Access::Site(Action::ReadSessionLog),
        list,
    )
    .get("/api/v1/sessions/{id}/watch", Access::PerEndpoint, watch)
    .post(
        "/api/v1/sessions/{id}/terminate",
        Access::Site(Action::TerminateSession),
        terminate,
    )
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ConnectQuery {
    kind: String,
}

/// `GET /api/v1/sessions` query: filters like the other lists, and
/// paging by `before=<session id>` (the last row of the previous page).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    endpoint: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    active: Option<bool>,
    before: Option<String>,
    limit: Option<i64>,
}

/// Most rows one page may hold (and the default).
const MAX_PAGE: i64 = 1000;

fn time_param(key: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|s| ids::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request(ids::bad_time(key, s))))
        .transpose()
}

/// Session rows newest first, in the caller's groups (`rbac::ReadScope`).
async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<api::SessionEvent>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since_ms = time_param("since", q.since.as_deref())?;
    let until_ms = time_param("until", q.until.as_deref())?;
    if let Some(k) = q.kind.as_deref() {
        k.parse::<SessionKind>()
            .map_err(|e| ApiError::bad_request(format!("kind: {e}")))?;
    }
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let scope = who.read_scope();
    let before = match q.before.as_deref() {
        None => None,
        Some(id) => {
            let at = super::cursor(&st.db, &scope, id).await?.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "before: no session `{id}` (use the id of the last row of the previous page)"
                ))
            })?;
            Some((at, id))
        }
    };
    let f = super::Filter {
        scope: &scope,
        endpoint: q.endpoint.as_deref(),
        user: q.user.as_deref(),
        kind: q.kind.as_deref(),
        since_ms,
        until_ms,
        active: q.active,
        before,
        limit,
    };
    Ok(Json(super::list(&st.db, &f).await?))
}

async fn connect(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ConnectQuery>,
    Caller(who): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let kind: SessionKind = q.kind.parse().map_err(ApiError::bad_request)?;
    let unknown = || {
        ApiError::not_found(
            api::ErrorCode::UnknownEndpoint,
            format!("no endpoint named `{name}`"),
        )
    };
    let endpoint = agents::find_by_name(&st.db, &name)
        .await?
        .ok_or_else(unknown)?;
    let service = SessionService::new(st.clone());
    let credential =
        crate::identity::Credential::of(crate::api::session_token(&headers).unwrap_or_default());
    let ticket = match service.authorize(&who, &endpoint, kind, credential).await {
        Ok(t) => t,
        Err(NotAuthorized::Db(e)) => return Err(e.into()),
        Err(NotAuthorized::Denied(why)) => {
            let action = Action::OpenSession(kind);
            let err = denied(
                &st,
                &who,
                action,
                &endpoint.name,
                Some(&endpoint.group),
                why,
            )
            .await;
            // Endpoints the caller may not even see do not exist for them.
            return Err(if who.can_view(&endpoint.group) {
                err
            } else {
                unknown()
            });
        }
    };
    start(st, service, ticket, &headers, req).await
}

/// Runs an authorized session on the connection's upgrade (`jg`) or
/// WebSocket (the console).
async fn start(
    st: AppState,
    service: SessionService,
    ticket: Ticket,
    headers: &HeaderMap,
    mut req: Request,
) -> Result<Response, ApiError> {
    let endpoint = ticket.endpoint().clone();
    // Access is decided before anything else is said about the request.
    let wants_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(api::SESSION_UPGRADE));
    let websocket = wants_websocket(headers);
    if !wants_upgrade && !websocket {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            api::ErrorCode::UpgradeRequired,
            format!("this endpoint needs `Upgrade: {}`", api::SESSION_UPGRADE),
        ));
    }
    // An agent held by another gateway is not reachable from here (yet).
    if st.agents.locate(&endpoint.id).local().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            api::ErrorCode::EndpointOffline,
            format!("endpoint `{}` is offline", endpoint.name),
        ));
    }
    if st.shutdown.is_cancelled() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            api::ErrorCode::ShuttingDown,
            "the gateway is shutting down",
        ));
    }
    let span = session_span(&ticket, None);
    if websocket {
        // The console's browser: the same session, carried over a WebSocket.
        return accept_websocket(st, service, ticket, req).await;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    st.tasks.spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    service.accept(ticket, TokioIo::new(upgraded)).await;
                }
                Err(e) => tracing::info!(error = %e, "session upgrade failed"),
            }
        }
        .instrument(span),
    );
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, api::SESSION_UPGRADE)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// `GET /api/v1/support/sessions/{id}/connect?kind=K`: a technician's
/// sub-session of attended support (the customer's screen, a shell as the
/// customer, files in their home), on the customer's client: only for the
/// owner or a participant, only with the right the customer allowed (the
/// client checks it again), only while the client is connected.
pub(crate) async fn connect_support(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ConnectQuery>,
    Caller(who): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    use jumpgate_proto::assist::ParticipantRole as R;
    let kind: SessionKind = q.kind.parse().map_err(ApiError::bad_request)?;
    let Some(right) = crate::support::right_for(kind) else {
        return Err(ApiError::bad_request(format!(
            "{kind} sessions are not part of attended support"
        )));
    };
    let Some(user_id) = who.user_id().map(|u| u.as_str().to_owned()) else {
        return Err(ApiError::forbidden(
            "API clients do not join support sessions",
        ));
    };
    let found = st.support_hub.live.with(&id, |l| {
        (
            l.group.clone(),
            l.role_of(&user_id),
            l.online(),
            l.granted.contains(right),
        )
    });
    let unknown = || {
        ApiError::not_found(
            api::ErrorCode::UnknownSupportSession,
            format!("no live support session `{id}`"),
        )
    };
    let Some((group, role, online, granted)) = found else {
        return Err(unknown());
    };
    if !who.groups.contains(&group) {
        return Err(unknown());
    }
    if !matches!(role, Some(R::Owner | R::Participant)) {
        return Err(ApiError::forbidden(format!(
            "you do not work on support session `{id}` (accept it, or be invited)"
        )));
    }
    if !online {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            api::ErrorCode::CustomerOffline,
            "the customer's client is not connected",
        ));
    }
    if !granted {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            api::ErrorCode::RightNotGranted,
            format!(
                "the customer has not allowed \"{}\"; ask for it first",
                right.label()
            ),
        ));
    }
    let endpoint = agents::EndpointRecord::support_client(&id, &group);
    let service = SessionService::new(st.clone());
    let credential =
        crate::identity::Credential::of(crate::api::session_token(&headers).unwrap_or_default());
    let ticket = match service.authorize(&who, &endpoint, kind, credential).await {
        Ok(t) => t.for_support(&id, &user_id),
        Err(NotAuthorized::Db(e)) => return Err(e.into()),
        Err(NotAuthorized::Denied(why)) => {
            let action = Action::OpenSession(kind);
            return Err(denied(&st, &who, action, &endpoint.name, Some(&group), why).await);
        }
    };
    start(st, service, ticket, &headers, req).await
}

/// The span of one session's task.
fn session_span(t: &Ticket, transport: Option<&'static str>) -> tracing::Span {
    let (user, endpoint, kind) = (&t.subject().name, &t.endpoint().name, t.kind());
    match transport {
        None => tracing::info_span!("session", %user, %endpoint, %kind),
        Some(transport) => tracing::info_span!("session", %user, %endpoint, %kind, transport),
    }
}

// --- Web console: sessions over a WebSocket ------------------------------

/// Largest WebSocket message the console may send: one session message of
/// the largest size plus its header.
const WS_MAX_MESSAGE: usize = jumpgate_proto::session::MAX_PAYLOAD + 64;

/// Buffer between the WebSocket pump and the session task, each way.
const WS_BUFFER: usize = 64 * 1024;

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accepts the console's WebSocket (already authenticated, authorized and
/// origin-checked) and runs the very same session as `jg`'s upgrade: the
/// binary messages carry the bytes of the session message stream.
async fn accept_websocket(
    st: AppState,
    service: SessionService,
    ticket: Ticket,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &st)
        .await
        .map_err(|r| ApiError::bad_request(r.body_text()))?;
    let span = session_span(&ticket, Some("websocket"));
    let tasks = st.tasks.clone();
    Ok(ws
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_failed_upgrade(|e| tracing::info!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let (session_end, pump_end) = tokio::io::duplex(WS_BUFFER);
            tasks.spawn(pump(socket, pump_end).instrument(span.clone()));
            tasks.spawn(
                async move {
                    service.accept(ticket, session_end).await;
                }
                .instrument(span),
            );
            std::future::ready(())
        }))
}

/// Moves bytes between a WebSocket and one end of a duplex pipe whose other
/// end is the session: binary messages in, session bytes out. The browser's
/// close is the technician's half-close; the session's end closes the
/// WebSocket.
async fn pump(mut ws: WebSocket, mut io: DuplexStream) {
    let mut buf = vec![0u8; WS_BUFFER];
    loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if io.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    tracing::info!("console sent a text message; closing the session");
                    break;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    let _ = io.shutdown().await;
                    // Let the session say its last words (exit status,
                    // file result) before the pipe goes away.
                    let _ = tokio::time::timeout(OPEN_TIMEOUT, drain(&mut io, &mut ws, &mut buf)).await;
                    return;
                }
            },
            n = io.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    let _ = ws.send(Message::Close(None)).await;
                    return;
                }
                Ok(n) => {
                    let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if ws.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
}

async fn drain(io: &mut DuplexStream, ws: &mut WebSocket, buf: &mut [u8]) {
    while let Ok(n) = io.read(buf).await {
        if n == 0 {
            return;
        }
        let data = bytes::Bytes::copy_from_slice(&buf[..n]);
        if ws.send(Message::Binary(data)).await.is_err() {
            return;
        }
    }
}

async fn terminate(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let unknown = || {
        ApiError::not_found(
            api::ErrorCode::UnknownSession,
            format!("no live session `{id}`"),
        )
    };
    // Sessions of groups outside the caller's do not exist for them.
    let group = super::group_of(&st.db, &id).await?.flatten();
    if !who.read_scope().allows(group.as_deref()) {
        return Err(unknown());
    }
    let control = st.session_control();
    if !control.is_live(&id).await {
        return Err(unknown());
    }
    // Audited before it takes effect.
    st.db
        .audit_now(AuditEvent::new(&who.name, AuditAction::SessionTerminate, &id).groups(group))
        .await?;
    control
        .stop(&id, &format!("terminated by {}", who.name))
        .await;
    tracing::info!(session = %id, by = %who.name, "session terminated");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/sessions/{id}/watch` (`Upgrade: jumpgate-session/1`): a
/// live terminal session's output, read-only, for a holder of
/// `monitor-sessions` on its group — from the last 64 KiB on, until the
/// session ends. Nothing the watcher sends reaches the session. Audited
/// (`session-watch`) when it starts and when it stops.
async fn watch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Caller(who): Caller,
    headers: HeaderMap,
    mut req: Request,
) -> Result<Response, ApiError> {
    use crate::rbac::{Decision, Resource};
    let unknown = || {
        ApiError::not_found(
            api::ErrorCode::NotFound,
            format!("no live terminal session `{id}` to watch"),
        )
    };
    // Who holds monitor-sessions nowhere is refused before anything is
    // said about the session.
    if !who
        .permissions
        .contains(&crate::rbac::Permission::MonitorSessions)
    {
        return Err(ApiError::forbidden(
            "watching sessions needs the monitor-sessions permission",
        ));
    }
    let w = st.sessions.watches.get(&id).ok_or_else(unknown)?;
    let resource = Resource::Endpoint { group: &w.group };
    if let Decision::Forbid(why) = crate::rbac::authorize(&who, Action::WatchSession, resource) {
        let err = denied(&st, &who, Action::WatchSession, &id, Some(&w.group), why).await;
        return Err(if who.can_view(&w.group) {
            err
        } else {
            unknown()
        });
    }
    let wants_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(api::SESSION_UPGRADE));
    if !wants_upgrade {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            api::ErrorCode::UpgradeRequired,
            format!("this endpoint needs `Upgrade: {}`", api::SESSION_UPGRADE),
        ));
    }
    let (backlog, rx) = w.subscribe();
    let detail = format!(
        "session={id} endpoint={} technician={} as=supervisor",
        w.endpoint, w.technician
    );
    let group = w.group.clone();
    // The watcher must not keep the session's output channel open.
    drop(w);
    st.db
        .audit_now(
            AuditEvent::new(&who.name, AuditAction::SessionWatch, &id)
                .outcome("started")
                .detail(&detail)
                .group(&group),
        )
        .await?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (db, name) = (st.db.clone(), who.name.clone());
    let span = tracing::info_span!("watch", session = %id, user = %who.name);
    st.tasks.spawn(
        async move {
            let sent = match on_upgrade.await {
                Ok(upgraded) => relay_watch(TokioIo::new(upgraded), backlog, rx).await,
                Err(e) => {
                    tracing::info!(error = %e, "watch upgrade failed");
                    0
                }
            };
            db.audit_or_log(
                AuditEvent::new(&name, AuditAction::SessionWatch, &id)
                    .outcome("stopped")
                    .detail(format!("{detail} bytes={sent}"))
                    .group(&group),
            )
            .await;
        }
        .instrument(span),
    );
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, api::SESSION_UPGRADE)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// Sends the watcher `Accepted`, the catch-up, then the live output until
/// the session ends (`Closed`) or the watcher leaves; what the watcher
/// sends is read and dropped. Returns the output bytes sent.
async fn relay_watch<S>(
    io: S,
    backlog: bytes::Bytes,
    mut rx: tokio::sync::broadcast::Receiver<jumpgate_proto::session::SessionMsg>,
) -> u64
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use jumpgate_proto::session::{Accepted, SessionMsg};
    use tokio::sync::broadcast::error::RecvError;
    let (r, w) = tokio::io::split(io);
    let mut out = jumpgate_net::session::MsgStream::new(w);
    let mut input = jumpgate_net::session::MsgStream::new(r);
    let mut sent = backlog.len() as u64;
    let start = [
        SessionMsg::Accepted(Accepted::default()),
        SessionMsg::Stdout(backlog),
    ];
    for m in &start {
        if out.write_msg(m).await.is_err() {
            return 0;
        }
    }
    let reason = loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(m) => {
                    if let SessionMsg::Stdout(b) | SessionMsg::Stderr(b) = &m {
                        sent += b.len() as u64;
                    }
                    if out.write_msg(&m).await.is_err() {
                        return sent;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let note = format!("\r\n[jumpgate: {n} messages skipped: this watcher fell behind]\r\n");
                    if out.write_msg(&SessionMsg::Stderr(note.into())).await.is_err() {
                        return sent;
                    }
                }
                Err(RecvError::Closed) => break "the watched session ended",
            },
            // Read-only: input is dropped; the watcher leaving ends the watch.
            m = input.read_msg() => match m {
                Ok(Some(_)) => {}
                _ => return sent,
            },
        }
    };
    let _ = out
        .write_msg(&SessionMsg::Closed {
            reason: reason.to_owned(),
        })
        .await;
    let _ = out.shutdown().await;
    sent
}
