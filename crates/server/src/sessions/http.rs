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
    let service = SessionService::new(st.clone());
    let endpoint = service.lookup(&name).await?.ok_or_else(unknown)?;
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

// --- Watching a live session ---------------------------------------------

/// Who a watcher is to the watched session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WatchAs {
    /// `monitor-sessions` on the session's group: read-only.
    Supervisor,
    /// An observer of the support session: read-only.
    Observer,
    /// The owner or a participant of the support session: may drive the
    /// owner's desktop while the customer allows `control`.
    Participant,
}

impl WatchAs {
    fn as_str(self) -> &'static str {
        match self {
            Self::Supervisor => "supervisor",
            Self::Observer => "observer",
            Self::Participant => "participant",
        }
    }
}

/// `GET /api/v1/sessions/{id}/watch` (`Upgrade: jumpgate-session/1` for
/// `jg`, a WebSocket for the console): a live shell, exec or desktop
/// session as its endpoint sends it, for a holder of `monitor-sessions` on
/// its group, or for an observer or participant of the support session it
/// belongs to — `Accepted`, a catch-up (a terminal's last 64 KiB; a
/// desktop's size, control state and cursor, then its next stream start),
/// then live until the session ends. Read-only: what the watcher sends is
/// dropped (`Ping` is answered), except that a support participant's
/// `Pointer`/`Wheel`/`Key`/`InputReset` reach the owner's desktop while the
/// customer allows `control` (decided again for each message). Audited
/// (`session-watch`) when it starts and when it stops; a participant
/// starting and stopping to drive is a `desktop-control` entry
/// (`input-from=<user>`).
async fn watch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Caller(who): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    use crate::rbac::{Decision, Permission, Resource};
    use jumpgate_proto::assist::ParticipantRole as R;
    let unknown = || {
        ApiError::not_found(
            api::ErrorCode::NotFound,
            format!("no live session `{id}` to watch"),
        )
    };
    let refused = || ApiError::forbidden("watching sessions needs the monitor-sessions permission");
    let supervisor = who.has(Permission::MonitorSessions);
    let Some(w) = st.sessions.watches.get(&id) else {
        // Who may watch nothing is told nothing about the session.
        return Err(if supervisor { unknown() } else { refused() });
    };
    // Observers and participants of the support session it belongs to.
    let role = match (&w.support, who.user_id()) {
        (Some(sid), Some(user)) if who.groups.contains(&w.group) => st
            .support_hub
            .live
            .with(sid, |l| {
                (l.group == w.group).then(|| l.role_of(user.as_str()))
            })
            .flatten()
            .flatten(),
        _ => None,
    };
    let watch_as = match role {
        Some(R::Owner | R::Participant) => WatchAs::Participant,
        Some(R::Observer) => WatchAs::Observer,
        // Joined the support session as its supervisor: read-only.
        Some(R::Supervisor) => WatchAs::Supervisor,
        None if !supervisor => return Err(refused()),
        None => {
            let resource = Resource::Endpoint { group: &w.group };
            if let Decision::Forbid(why) =
                crate::rbac::authorize(&who, Action::WatchSession, resource)
            {
                let err = denied(&st, &who, Action::WatchSession, &id, Some(&w.group), why).await;
                return Err(if who.can_view(&w.group) {
                    err
                } else {
                    unknown()
                });
            }
            WatchAs::Supervisor
        }
    };
    let wants_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(api::SESSION_UPGRADE));
    let websocket = wants_websocket(&headers);
    if !wants_upgrade && !websocket {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            api::ErrorCode::UpgradeRequired,
            format!("this endpoint needs `Upgrade: {}`", api::SESSION_UPGRADE),
        ));
    }
    // A participant drives only with the right to control a desktop of
    // the group (as for their own sub-sessions), and only while the
    // customer allows it (decided per message).
    let driver = match (&w.support, who.user_id(), w.inject()) {
        (Some(sid), Some(user), Some(inject)) if watch_as == WatchAs::Participant => {
            let resource = Resource::Endpoint { group: &w.group };
            (crate::rbac::authorize(&who, Action::ControlDesktop, resource) == Decision::Allow)
                .then(|| Driver {
                    st: st.clone(),
                    support: sid.clone(),
                    user_id: user.as_str().to_owned(),
                    name: who.name.clone(),
                    session: id.clone(),
                    endpoint: w.endpoint.clone(),
                    group: w.group.clone(),
                    inject: inject.clone(),
                    driving: false,
                    passed: 0,
                })
        }
        _ => None,
    };
    let (catch_up, rx) = w.subscribe();
    let feed = Feed {
        catch_up,
        rx,
        desktop: w.is_desktop(),
        refresh: w.inject(),
        driver,
    };
    let support = w
        .support
        .as_deref()
        .map(|s| format!(" support={s}"))
        .unwrap_or_default();
    let detail = format!(
        "session={id} endpoint={} technician={} as={}{support}",
        w.endpoint,
        w.technician,
        watch_as.as_str()
    );
    let group = w.group.clone();
    // A supervisor watching a customer's machine is shown to the customer
    // (invited observers and participants are listed already).
    let shown = match (&w.support, who.user_id()) {
        (Some(sid), Some(user)) if watch_as == WatchAs::Supervisor => {
            Some((sid.clone(), user.as_str().to_owned(), who.name.clone()))
        }
        _ => None,
    };
    // The watcher must not keep the session's output channel open.
    drop(w);
    if let Some((sid, user, name)) = &shown {
        crate::support::session::supervisor_watch(&st, sid, user, name, true).await;
    }
    st.db
        .audit_now(
            AuditEvent::new(&who.name, AuditAction::SessionWatch, &id)
                .outcome("started")
                .detail(&detail)
                .group(&group),
        )
        .await?;
    let (db, name) = (st.db.clone(), who.name.clone());
    let span = tracing::info_span!("watch", session = %id, user = %who.name);
    let st2 = st.clone();
    let done = move |sent: u64| async move {
        if let Some((sid, user, name)) = &shown {
            crate::support::session::supervisor_watch(&st2, sid, user, name, false).await;
        }
        db.audit_or_log(
            AuditEvent::new(&name, AuditAction::SessionWatch, &id)
                .outcome("stopped")
                .detail(format!("{detail} bytes={sent}"))
                .group(&group),
        )
        .await;
    };
    if websocket {
        let (mut parts, _) = req.into_parts();
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &st)
            .await
            .map_err(|r| ApiError::bad_request(r.body_text()))?;
        let tasks = st.tasks.clone();
        return Ok(ws
            .max_message_size(WS_MAX_MESSAGE)
            .max_frame_size(WS_MAX_MESSAGE)
            .on_failed_upgrade(|e| tracing::info!(error = %e, "watch websocket upgrade failed"))
            .on_upgrade(move |socket| {
                let (watch_end, pump_end) = tokio::io::duplex(WS_BUFFER);
                tasks.spawn(pump(socket, pump_end).instrument(span.clone()));
                tasks.spawn(
                    async move { done(relay_watch(watch_end, feed).await).await }.instrument(span),
                );
                std::future::ready(())
            }));
    }
    let mut req = req;
    let on_upgrade = hyper::upgrade::on(&mut req);
    st.tasks.spawn(
        async move {
            let sent = match on_upgrade.await {
                Ok(upgraded) => relay_watch(TokioIo::new(upgraded), feed).await,
                Err(e) => {
                    tracing::info!(error = %e, "watch upgrade failed");
                    0
                }
            };
            done(sent).await;
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

/// What one watcher is sent, and where its refreshes and input go.
struct Feed {
    catch_up: Vec<jumpgate_proto::session::SessionMsg>,
    rx: tokio::sync::broadcast::Receiver<jumpgate_proto::session::SessionMsg>,
    desktop: bool,
    /// The session's injector (desktop), for refresh requests.
    refresh: Option<tokio::sync::mpsc::Sender<jumpgate_proto::session::SessionMsg>>,
    /// A support participant who may drive the owner's desktop.
    driver: Option<Driver>,
}

/// A support participant's input to the owner's desktop: passed while the
/// customer allows `control` and the participant still takes part
/// ([`crate::support::live::LiveSupport::still_allowed`], asked for each
/// message and every second), with one `desktop-control` entry when they
/// start driving and one when they stop.
struct Driver {
    st: AppState,
    support: String,
    user_id: String,
    name: String,
    session: String,
    endpoint: String,
    group: String,
    inject: tokio::sync::mpsc::Sender<jumpgate_proto::session::SessionMsg>,
    driving: bool,
    /// Input messages passed since they started driving.
    passed: u64,
}

impl Driver {
    fn not_allowed(&self) -> Option<String> {
        let control = jumpgate_proto::assist::Right::Control;
        self.st
            .support_hub
            .live
            .still_allowed(&self.support, &self.user_id, control)
    }

    async fn audit(&self, outcome: &str, more: &str) {
        let event = AuditEvent::new(&self.name, AuditAction::DesktopControl, &self.endpoint)
            .outcome(outcome)
            .detail(format!(
                "session={} support={} input-from={}{more}",
                self.session, self.support, self.name
            ))
            .group(&self.group);
        self.st.db.audit_or_log(event).await;
    }

    /// One input message from the participant: passed, or dropped (`false`).
    async fn input(&mut self, msg: jumpgate_proto::session::SessionMsg) -> bool {
        if let Some(why) = self.not_allowed() {
            self.stop(&why).await;
            return false;
        }
        if !self.driving {
            self.driving = true;
            self.passed = 0;
            self.audit("started", "").await;
        }
        self.passed += 1;
        self.inject.send(msg).await.is_ok()
    }

    /// Stops driving if the participant may no longer.
    async fn recheck(&mut self) {
        if self.driving
            && let Some(why) = self.not_allowed()
        {
            self.stop(&why).await;
        }
    }

    /// Stops driving (keys and buttons held are released), audited.
    async fn stop(&mut self, why: &str) {
        if !std::mem::replace(&mut self.driving, false) {
            return;
        }
        let _ = self
            .inject
            .try_send(jumpgate_proto::session::SessionMsg::InputReset);
        let why = why.replace(char::is_whitespace, "-");
        self.audit("stopped", &format!(" inputs={} why={why}", self.passed))
            .await;
    }
}

/// Sends the watcher `Accepted`, the catch-up, then the session live until
/// it ends (`Closed`) or the watcher leaves. A desktop watcher's video
/// starts at a stream start (asked for with `Refresh` when it joins and
/// when it falls behind); its `Ping`s are answered here, its `FrameAck`s
/// ignored (the owner paces the encoder). What else the watcher sends is
/// dropped, except a driving participant's input. Returns the output
/// bytes sent (terminal output, video payload).
async fn relay_watch<S>(io: S, feed: Feed) -> u64
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use jumpgate_proto::desktop::DesktopCommand;
    use jumpgate_proto::session::{Accepted, SessionMsg};
    use tokio::sync::broadcast::error::RecvError;
    let Feed {
        catch_up,
        mut rx,
        desktop,
        refresh,
        mut driver,
    } = feed;
    let ask_refresh = || {
        if let Some(r) = &refresh {
            let _ = r.try_send(SessionMsg::DesktopCommand(DesktopCommand::Refresh));
        }
    };
    let (r, w) = tokio::io::split(io);
    let mut out = jumpgate_net::session::MsgStream::new(w);
    let mut input = jumpgate_net::session::MsgStream::new(r);
    let mut sent = 0u64;
    let count = |m: &SessionMsg| match m {
        SessionMsg::Stdout(b) | SessionMsg::Stderr(b) => b.len() as u64,
        SessionMsg::Video(v) => v.data.len() as u64,
        _ => 0,
    };
    for m in std::iter::once(SessionMsg::Accepted(Accepted::default())).chain(catch_up) {
        sent += count(&m);
        if out.write_msg(&m).await.is_err() {
            return 0;
        }
    }
    // A desktop watcher draws from the next stream start on.
    let mut synced = !desktop;
    if desktop {
        ask_refresh();
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(m) => {
                    if let SessionMsg::Video(v) = &m {
                        synced |= crate::sessions::watch::starts_stream(&v.data);
                        if !synced {
                            continue;
                        }
                    }
                    sent += count(&m);
                    if out.write_msg(&m).await.is_err() {
                        break None;
                    }
                }
                Err(RecvError::Lagged(n)) if desktop => {
                    tracing::debug!(skipped = n, "desktop watcher fell behind; waiting for a keyframe");
                    synced = false;
                    ask_refresh();
                }
                Err(RecvError::Lagged(n)) => {
                    let note = format!("\r\n[jumpgate: {n} messages skipped: this watcher fell behind]\r\n");
                    if out.write_msg(&SessionMsg::Stderr(note.into())).await.is_err() {
                        break None;
                    }
                }
                Err(RecvError::Closed) => break Some("the watched session ended"),
            },
            m = input.read_msg() => match m {
                Ok(Some(SessionMsg::Ping(n))) => {
                    if out.write_msg(&SessionMsg::Pong(n)).await.is_err() {
                        break None;
                    }
                }
                Ok(Some(SessionMsg::DesktopCommand(DesktopCommand::Refresh))) if desktop => {
                    ask_refresh();
                }
                Ok(Some(
                    m @ (SessionMsg::Pointer(_)
                    | SessionMsg::Wheel(_)
                    | SessionMsg::Key(_)
                    | SessionMsg::InputReset),
                )) => {
                    if let Some(d) = driver.as_mut() {
                        d.input(m).await;
                    }
                }
                // Read-only: anything else is dropped (a watcher's
                // `FrameAck`s among it: the owner paces the encoder).
                Ok(Some(_)) => {}
                // The watcher leaving ends the watch.
                _ => break None,
            },
            _ = tick.tick(), if driver.is_some() => {
                if let Some(d) = driver.as_mut() {
                    d.recheck().await;
                }
            }
        }
    };
    if let Some(d) = driver.as_mut() {
        d.stop("the watch ended").await;
    }
    if let Some(reason) = reason {
        let _ = out
            .write_msg(&SessionMsg::Closed {
                reason: reason.to_owned(),
            })
            .await;
        let _ = out.shutdown().await;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::tap::SessionTap;
    use crate::sessions::watch::{Watch, WatchTap};
    use jumpgate_proto::desktop::{DesktopCommand, FrameAck, Pointer, Video};
    use jumpgate_proto::session::SessionMsg;

    fn video(seq: u32, start: bool) -> SessionMsg {
        // A codec packet's first byte: 1 = StreamStart, 2 = Video.
        let data = if start { vec![1, 0, 0] } else { vec![2, 0, 0] };
        SessionMsg::Video(Video {
            seq,
            data: data.into(),
        })
    }

    async fn read(w: &mut jumpgate_net::session::MsgStream<tokio::io::DuplexStream>) -> SessionMsg {
        tokio::time::timeout(std::time::Duration::from_secs(30), w.read_msg())
            .await
            .expect("a message in time")
            .unwrap()
            .expect("not the end")
    }

    /// A desktop watcher: video only from a stream start on (a refresh
    /// asked when it joins); its ping answered, its acknowledgements and
    /// input going nowhere; when it falls behind, a refresh asked again
    /// and nothing drawn until the next stream start — never a packet
    /// after a gap.
    #[tokio::test]
    async fn a_desktop_watcher_starts_at_a_stream_start_and_skips_to_the_next_when_behind() {
        let w = Watch::desktop("default", "desk", "tina");
        let mut injector = w.injector().unwrap();
        let tap = WatchTap(std::sync::Arc::clone(&w));
        // Before the watcher: a stream that began earlier.
        tap.on_down(&video(1, true)).await;
        let (catch_up, rx) = w.subscribe();
        let feed = Feed {
            catch_up,
            rx,
            desktop: true,
            refresh: w.inject(),
            driver: None,
        };
        let (ours, theirs) = tokio::io::duplex(1024);
        let task = tokio::spawn(relay_watch(theirs, feed));
        let mut me = jumpgate_net::session::MsgStream::new(ours);
        assert!(matches!(read(&mut me).await, SessionMsg::Accepted(_)));
        let refresh = SessionMsg::DesktopCommand(DesktopCommand::Refresh);
        assert_eq!(injector.next().await, refresh, "asked when it joined");
        // Deltas of the old stream are not drawable: skipped.
        tap.on_down(&video(2, false)).await;
        tap.on_down(&video(3, true)).await;
        tap.on_down(&video(4, false)).await;
        assert_eq!(read(&mut me).await, video(3, true));
        assert_eq!(read(&mut me).await, video(4, false));
        // Its ping is answered; its acknowledgement and pointer go nowhere.
        me.write_msg(&SessionMsg::FrameAck(FrameAck { seq: 4 }))
            .await
            .unwrap();
        me.write_msg(&SessionMsg::Pointer(Pointer::default()))
            .await
            .unwrap();
        me.write_msg(&SessionMsg::Ping(7)).await.unwrap();
        assert_eq!(read(&mut me).await, SessionMsg::Pong(7));

        // It stops reading while 400 deltas pass: more than are kept.
        for seq in 100..500 {
            tap.on_down(&video(seq, false)).await;
        }
        tap.on_down(&video(1000, true)).await;
        tap.on_down(&video(1001, false)).await;
        let mut seen = Vec::new();
        loop {
            match read(&mut me).await {
                SessionMsg::Video(v) => {
                    seen.push(v.seq);
                    if v.seq == 1001 {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        let tail = &seen[seen.len() - 2..];
        assert_eq!(tail, [1000, 1001], "{seen:?}");
        let before: Vec<u32> = seen[..seen.len() - 2].to_vec();
        let contiguous: Vec<u32> = (100..100 + before.len() as u32).collect();
        assert_eq!(before, contiguous, "never a packet after a gap");
        assert!(before.len() < 400, "it fell behind: {}", before.len());
        assert_eq!(injector.next().await, refresh, "asked again when behind");
        assert!(injector.next().now_or_never_pending(), "nothing injected");

        // The session ends: so does the watch, with the reason.
        drop(tap);
        drop(w);
        assert!(matches!(read(&mut me).await, SessionMsg::Closed { .. }));
        task.await.unwrap();
    }

    trait NowOrNever {
        fn now_or_never_pending(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        /// Whether the future is still pending when first polled.
        fn now_or_never_pending(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_pending()
        }
    }
}
