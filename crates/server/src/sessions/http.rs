//! `GET /api/v1/endpoints/{name}/connect?kind=K` (HTTP upgrade to the
//! session protocol, or to a WebSocket for the web console),
//! `GET /api/v1/sessions` and `POST /api/v1/sessions/{id}/terminate`.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use jumpgate_api_types as api;
use jumpgate_proto::mux::reset_code;
use jumpgate_proto::session::{Refusal, RefusalCode, SessionKind, SessionMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tracing::Instrument;

use super::relay::{self, Observer, RelayEnd};
use super::{NewEvent, record_end, record_start};
use crate::agents::{self, EndpointRecord};
use crate::api::{Access, Api, ApiError, Caller, denied};
use crate::ids;
use crate::rbac::{self, Action, Decision, Resource, Subject, SubjectKind};
use crate::state::AppState;

/// Time allowed for each side's opening message.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

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
    .post(
        "/api/v1/sessions/{id}/terminate",
        Access::Site(Action::TerminateSession),
        terminate,
    )
}

#[derive(Debug, serde::Deserialize)]
struct ConnectQuery {
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
    mut req: Request,
) -> Result<Response, ApiError> {
    let kind: SessionKind = q.kind.parse().map_err(ApiError::bad_request)?;
    let unknown = || ApiError::not_found("unknown_endpoint", format!("no endpoint named `{name}`"));
    let endpoint = agents::find_by_name(&st.db, &name)
        .await?
        .ok_or_else(unknown)?;
    let action = Action::OpenSession(kind);
    let resource = Resource::Endpoint {
        group: &endpoint.group,
    };
    if let Decision::Forbid(why) = rbac::authorize(&who, action, resource) {
        record_start(&st.db, &event(&who, &endpoint, kind, "", "denied")).await?;
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
    // Access is decided before anything else is said about the request.
    let wants_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(api::SESSION_UPGRADE));
    let websocket = wants_websocket(&headers);
    if !wants_upgrade && !websocket {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("this endpoint needs `Upgrade: {}`", api::SESSION_UPGRADE),
        ));
    }
    if !st.agents.is_online(&endpoint.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_offline",
            format!("endpoint `{}` is offline", endpoint.name),
        ));
    }
    if st.shutdown.is_cancelled() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the gateway is shutting down",
        ));
    }
    // What the session is decided on again whenever access may change.
    let grant = super::Grant {
        credential: crate::identity::Credential::of(
            crate::api::session_token(&headers).unwrap_or_default(),
        ),
        subject: who.kind.clone(),
        subject_name: who.name.clone(),
        endpoint_id: endpoint.id.clone(),
        endpoint_name: endpoint.name.clone(),
        kind,
        expires_at: None,
    };
    if websocket {
        // The console's browser: the same session, carried over a WebSocket.
        return accept_websocket(st, who, grant, endpoint, kind, req).await;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let principal = who.clone();
    let span =
        tracing::info_span!("session", user = %principal.name, endpoint = %endpoint.name, %kind);
    let task_state = st.clone();
    st.tasks.spawn(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    run(
                        task_state,
                        principal,
                        grant,
                        endpoint,
                        kind,
                        TokioIo::new(upgraded),
                    )
                    .await
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

fn event<'a>(
    p: &'a Subject,
    e: &'a EndpointRecord,
    kind: SessionKind,
    target: &'a str,
    outcome: &'a str,
) -> NewEvent<'a> {
    NewEvent {
        user_id: match &p.kind {
            SubjectKind::User(id) => id.as_str(),
            SubjectKind::ApiClient { client_id } => client_id,
        },
        username: &p.name,
        endpoint_id: Some(e.id.as_str()),
        endpoint_name: &e.name,
        endpoint_group: &e.group,
        kind: kind.as_str(),
        target,
        outcome,
    }
}

/// Reads one session message.
async fn read_msg<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<Option<SessionMsg>> {
    loop {
        if let Some(m) = SessionMsg::decode(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            return Ok(Some(m));
        }
        if r.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, code: RefusalCode, message: String) {
    let msg = SessionMsg::Refused(Refusal { code, message }).to_bytes();
    let _ = w.write_all(&msg).await;
    let _ = w.shutdown().await;
}

/// One upgraded session: open exchange, event row, relay, final event.
async fn run<C>(
    st: AppState,
    p: Subject,
    mut grant: super::Grant,
    endpoint: EndpointRecord,
    kind: SessionKind,
    mut client: C,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut cbuf = BytesMut::new();
    let request = match tokio::time::timeout(OPEN_TIMEOUT, read_msg(&mut client, &mut cbuf)).await {
        Ok(Ok(Some(SessionMsg::Open(r)))) if r.kind() == kind => r,
        other => {
            // The message's type only: its content may be keystrokes or file data.
            let got = match &other {
                Ok(Ok(Some(m))) => m.name().to_owned(),
                Ok(Ok(None)) => "end of stream".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "nothing in time".to_owned(),
            };
            tracing::info!(%got, "technician did not open the session properly");
            let msg = format!("the first message must open a {kind} session");
            refuse(&mut client, RefusalCode::InvalidRequest, msg).await;
            return;
        }
    };
    let target = request.target();
    // The event is durable before anything reaches the endpoint.
    let id = match record_start(&st.db, &event(&p, &endpoint, kind, &target, "open")).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot record session event; refusing the session");
            let msg = "the gateway could not record the session".to_owned();
            refuse(&mut client, RefusalCode::Failed, msg).await;
            return;
        }
    };
    let audited = crate::events::record_in_groups(
        &st.db,
        &[&endpoint.group],
        &p.name,
        &format!("session-open:{kind}"),
        &endpoint.name,
        "open",
        &target,
    )
    .await;
    if audited.is_err() {
        let msg = "the gateway could not record the session".to_owned();
        refuse(&mut client, RefusalCode::Failed, msg).await;
        let _ = record_end(&st.db, &id, 0, 0, "error: audit log unavailable").await;
        return;
    }
    grant.expires_at = match grant.credential.expires_at(&st.db).await {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the credential's expiry; the periodic re-check covers it");
            None
        }
    };
    let stop = st.sessions.register(id.clone(), grant);
    let recorder = match start_recording(&st, &p, &endpoint, &request, &id, &stop).await {
        Ok(r) => r,
        Err(e) => {
            st.sessions.remove(&id);
            tracing::error!(error = %e, "cannot start the session recording; refusing the session");
            let msg = "the gateway could not record the session".to_owned();
            refuse(&mut client, RefusalCode::Failed, msg).await;
            let _ = record_end(&st.db, &id, 0, 0, "error: recording unavailable").await;
            return;
        }
    };
    let observer = Observer {
        recorder,
        ..Observer::default()
    };
    let relay = open_and_relay(&st, &endpoint, request, &mut client, cbuf, &stop, &observer);
    let outcome = with_progress(&st, &id, &observer, relay).await;
    st.sessions.remove(&id);
    // Ends the recording (its writer seals the last chunk).
    let Observer {
        counters,
        recorder,
        transfer,
    } = observer;
    drop(recorder);
    let up = counters.up.into_inner();
    let down = counters.down.into_inner();
    // The target (a command line, a path) stays out of the plain log: it
    // may hold secrets, and the encrypted audit log has it.
    tracing::info!(session = %id, %outcome, up, down, "session ended");
    if let Err(e) = record_end(&st.db, &id, up, down, &outcome).await {
        tracing::error!(error = %e, session = %id, "cannot record session end");
    }
    let mut detail = format!("session={id} up={up} down={down}");
    let transfer = transfer.into_inner().unwrap_or_else(|e| e.into_inner());
    detail.push_str(&transfer_detail(&transfer));
    crate::events::record_in_groups_or_log(
        &st.db,
        &[&endpoint.group],
        &p.name,
        &format!("session-close:{kind}"),
        &endpoint.name,
        &outcome,
        &detail,
    )
    .await;
}

/// Runs `relay`, writing the session's progress every few seconds while
/// bytes move (in its own task: the relay never waits for the database), so
/// that a crash loses at most those seconds of its duration and bytes.
async fn with_progress(
    st: &AppState,
    id: &crate::ids::SessionId,
    observer: &Observer,
    relay: impl std::future::Future<Output = String>,
) -> String {
    use std::sync::atomic::Ordering;
    tokio::pin!(relay);
    let mut tick = tokio::time::interval(super::PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (0, 0);
    loop {
        tokio::select! {
            outcome = &mut relay => return outcome,
            _ = tick.tick() => {
                let now = (
                    observer.counters.up.load(Ordering::Relaxed),
                    observer.counters.down.load(Ordering::Relaxed),
                );
                if now != last {
                    last = now;
                    let (db, id) = (st.db.clone(), id.clone());
                    st.tasks.spawn(async move {
                        if let Err(e) = super::record_progress(&db, &id, now.0, now.1).await {
                            tracing::warn!(error = %e, session = %id, "cannot record session progress");
                        }
                    });
                }
            }
        }
    }
}

async fn open_and_relay<C>(
    st: &AppState,
    endpoint: &EndpointRecord,
    request: jumpgate_proto::session::SessionRequest,
    client: &mut C,
    cbuf: BytesMut,
    stop: &super::StopHandle,
    observer: &Observer,
) -> String
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let kind = request.kind();
    let stream = st.agents.get(&endpoint.id).map(|h| h.open());
    let mut agent = match stream {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            refuse(
                client,
                RefusalCode::Failed,
                format!("cannot reach the endpoint: {e}"),
            )
            .await;
            return format!("error: {e}");
        }
        None => {
            refuse(
                client,
                RefusalCode::Failed,
                "the endpoint went offline".into(),
            )
            .await;
            return "error: endpoint offline".into();
        }
    };
    if let Err(e) = agent.write_all(&SessionMsg::Open(request).to_bytes()).await {
        refuse(
            client,
            RefusalCode::Failed,
            format!("cannot reach the endpoint: {e}"),
        )
        .await;
        return format!("error: {e}");
    }
    let mut abuf = BytesMut::new();
    let reply = tokio::time::timeout(OPEN_TIMEOUT, read_msg(&mut agent, &mut abuf)).await;
    let accepted = match reply {
        Ok(Ok(Some(m @ SessionMsg::Accepted(_)))) => m,
        Ok(Ok(Some(SessionMsg::Refused(mut r)))) => {
            // The endpoint's words: untrusted, cleaned before they are
            // stored or shown.
            r.message =
                crate::agents::reported::text(&r.message, crate::agents::reported::MESSAGE_MAX);
            let outcome = format!("refused: {}", r.message);
            let m = SessionMsg::Refused(r);
            let _ = client.write_all(&m.to_bytes()).await;
            let _ = client.shutdown().await;
            return outcome;
        }
        other => {
            agent.reset(reset_code::INTERNAL);
            let why = match other {
                Err(_) => "the endpoint did not answer in time".to_owned(),
                Ok(Err(e)) => format!("the endpoint failed: {e}"),
                Ok(Ok(m)) => format!(
                    "the endpoint answered out of turn ({})",
                    m.as_ref().map_or("end of stream", SessionMsg::name)
                ),
            };
            refuse(client, RefusalCode::Failed, why.clone()).await;
            return format!("error: {why}");
        }
    };
    if let Err(e) = client.write_all(&accepted.to_bytes()).await {
        return format!("error: technician side: {e}");
    }
    let pending = relay::Pending {
        up: cbuf,
        down: abuf,
    };
    let reason = || stop.reason().to_owned();
    match relay::relay(
        client,
        &mut agent,
        pending,
        kind.is_framed(),
        &stop.token,
        reason,
        observer,
    )
    .await
    {
        RelayEnd::Completed => "ok".into(),
        RelayEnd::Stopped => {
            agent.reset(reset_code::TERMINATED);
            format!("terminated: {}", stop.reason())
        }
        RelayEnd::Failed(e) => format!("error: {e}"),
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
    who: Subject,
    grant: super::Grant,
    endpoint: EndpointRecord,
    kind: SessionKind,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &st)
        .await
        .map_err(|r| ApiError::bad_request(r.body_text()))?;
    let span = tracing::info_span!("session", user = %who.name, endpoint = %endpoint.name, %kind, transport = "websocket");
    let tasks = st.tasks.clone();
    Ok(ws
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_failed_upgrade(|e| tracing::info!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let (session_end, pump_end) = tokio::io::duplex(WS_BUFFER);
            tasks.spawn(pump(socket, pump_end).instrument(span.clone()));
            tasks.spawn(run(st, who, grant, endpoint, kind, session_end).instrument(span));
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
    let unknown = || ApiError::not_found("unknown_session", format!("no live session `{id}`"));
    // Sessions of groups outside the caller's do not exist for them.
    let group = super::group_of(&st.db, &id).await?.flatten();
    if !who.read_scope().allows(group.as_deref()) {
        return Err(unknown());
    }
    let Some(handle) = st.sessions.get(&id) else {
        return Err(unknown());
    };
    // Audited before it takes effect.
    let groups: Vec<&str> = group.as_deref().into_iter().collect();
    crate::events::record_in_groups(
        &st.db,
        &groups,
        &who.name,
        "session-terminate",
        &id,
        "ok",
        "",
    )
    .await?;
    handle.stop(&format!("terminated by {}", who.name));
    tracing::info!(session = %id, by = %who.name, "session terminated");
    Ok(StatusCode::NO_CONTENT)
}

/// Shell and exec sessions are recorded; the recording exists, durable,
/// before anything reaches the endpoint.
async fn start_recording(
    st: &AppState,
    p: &Subject,
    endpoint: &EndpointRecord,
    request: &jumpgate_proto::session::SessionRequest,
    id: &crate::ids::SessionId,
    stop: &super::StopHandle,
) -> Result<Option<crate::recordings::Recorder>, crate::recordings::RecordingError> {
    use jumpgate_proto::session::SessionRequest as R;
    let (width, height, term, command) = match request {
        R::Shell { term, cols, rows } => (*cols, *rows, term.as_str(), String::new()),
        R::Exec { command } => (80, 24, "", command.join(" ")),
        _ => return Ok(None),
    };
    let meta = crate::recordings::Meta {
        session_id: id,
        username: &p.name,
        endpoint: &endpoint.name,
        endpoint_group: &endpoint.group,
        width,
        height,
        term,
        command: &command,
    };
    crate::recordings::Recorder::start(
        &st.db,
        &st.keys,
        crate::recordings::Files {
            blobs: st.blobs.clone(),
            data_dir: st.config.data_dir.clone(),
        },
        st.config.record_keystrokes,
        &meta,
        stop.clone(),
        &st.tasks,
    )
    .await
    .map(Some)
}

/// The audit words for a file transfer: the size and SHA-256 the gateway
/// computed over the data that crossed it, whether the sender's own claim
/// matches, and (uploads) whether the endpoint confirmed the same digest.
fn transfer_detail(t: &relay::Transfer) -> String {
    let mut out = String::new();
    if let Some((size, sha)) = &t.crossed {
        out.push_str(&format!(" size={size} sha256={sha}"));
        if let Some(c) = &t.claimed
            && (c.sha256 != *sha || c.size != *size)
        {
            out.push_str(&format!(
                " sender_claimed_size={} sender_claimed_sha256={} mismatch",
                c.size,
                // The sender may be the endpoint: its claim is untrusted text.
                crate::agents::reported::text(&c.sha256, 64)
            ));
        }
        if let Some(r) = &t.result {
            let confirmed = r.ok && (r.sha256.is_empty() || r.sha256 == *sha);
            out.push_str(if confirmed {
                " verified=yes"
            } else {
                " verified=no"
            });
        }
    }
    out
}
