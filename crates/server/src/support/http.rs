//! Attended support's routes: the public portal's (no login), the
//! technicians' session keys, queues and the portal's branding.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::support as api;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{SupportError, assign, download, history, hub, keys, portal, queues, session};
use crate::api::{ApiError, ApiJson, PeerAddr};
use crate::ids;
use crate::rbac::{Action, Caller};
use crate::state::{Api, AppState};

impl From<SupportError> for ApiError {
    fn from(e: SupportError) -> Self {
        use SupportError as E;
        match e {
            E::InvalidKey => Self::not_found(ErrorCode::InvalidSessionKey, e.to_string()),
            E::RateLimited(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                e.to_string(),
            ),
            E::UnknownQueue(_) => Self::not_found(ErrorCode::UnknownQueue, e.to_string()),
            E::QueueFull => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::QueueFull,
                e.to_string(),
            ),
            E::UnknownSession(_) => {
                Self::not_found(ErrorCode::UnknownSupportSession, e.to_string())
            }
            E::NotLive(_) | E::Offline => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::CustomerOffline,
                e.to_string(),
            ),
            E::AlreadyTaken(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::AlreadyTaken, e.to_string())
            }
            E::Invalid(_) => Self::bad_request(e.to_string()),
            E::Exists(_) => Self::conflict(e.to_string()),
            E::Forbidden(_) => Self::forbidden(e.to_string()),
            E::Binary(_) | E::Random | E::Keys(_) | E::Pepper(_) | E::Db(_) => Self::internal(e),
        }
    }
}

/// A 429 with `Retry-After`.
fn limited(wait: std::time::Duration) -> Response {
    let mut res = ApiError::from(SupportError::RateLimited(wait)).into_response();
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::{Public, Site};
    let api = super::page::routes(api);
    api.get("/api/v1/portal", Public, portal_info)
        .get("/portal/logo", Public, portal_logo)
        .post("/api/v1/portal/key", Public, redeem_key)
        .post("/api/v1/portal/requests", Public, request_help)
        .get("/portal/download/{token}", Public, download_client)
        .get(
            "/api/v1/portal/settings",
            Site(Action::ReadSettings),
            get_settings,
        )
        .put(
            "/api/v1/portal/settings",
            Site(Action::WriteSettings),
            put_settings,
        )
        .post(
            "/api/v1/support/keys",
            Site(Action::HandleSupport),
            create_key,
        )
        .get(
            "/api/v1/support/sessions",
            Site(Action::ReadSupportSessions),
            list_sessions,
        )
        .get("/api/v1/support/events", Site(Action::ReadQueues), events)
        .get(
            "/api/v1/support/sessions/{id}",
            Site(Action::HandleSupport),
            get_session,
        )
        .get(
            "/api/v1/support/sessions/{id}/connect",
            Site(Action::HandleSupport),
            crate::sessions::http::connect_support,
        )
        .post(
            "/api/v1/support/sessions/{id}/accept",
            Site(Action::HandleSupport),
            accept_session,
        )
        .post(
            "/api/v1/support/sessions/{id}/chat",
            Site(Action::HandleSupport),
            send_chat,
        )
        .post(
            "/api/v1/support/sessions/{id}/rights",
            Site(Action::HandleSupport),
            ask_right,
        )
        .get(
            "/api/v1/support/sessions/{id}/transcript",
            Site(Action::ReadSupportSessions),
            get_transcript,
        )
        .post(
            "/api/v1/support/sessions/{id}/transfer",
            Site(Action::HandleSupport),
            transfer_session,
        )
        .post(
            "/api/v1/support/sessions/{id}/invite",
            Site(Action::HandleSupport),
            invite_technician,
        )
        .delete(
            "/api/v1/support/sessions/{id}/participants/{user}",
            Site(Action::HandleSupport),
            remove_participant,
        )
        .post(
            "/api/v1/support/sessions/{id}/end",
            Site(Action::HandleSupport),
            end_session,
        )
        .get("/api/v1/queues", Site(Action::ReadQueues), list_queues)
        .post("/api/v1/queues", Site(Action::WriteQueues), create_queue)
        .patch(
            "/api/v1/queues/{name}",
            Site(Action::WriteQueues),
            update_queue,
        )
        .delete(
            "/api/v1/queues/{name}",
            Site(Action::WriteQueues),
            delete_queue,
        )
}

async fn portal_info(State(st): State<AppState>) -> Result<Json<api::PortalInfo>, ApiError> {
    Ok(Json(portal::info(&st.db).await?))
}

async fn portal_logo(State(st): State<AppState>) -> Result<Response, ApiError> {
    match portal::logo(&st.db).await? {
        Some((bytes, kind)) => Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response()),
        None => Err(ApiError::not_found(ErrorCode::NotFound, "no logo is set")),
    }
}

fn download(p: &keys::Pending) -> api::PortalDownload {
    api::PortalDownload {
        download: format!("/portal/download/{}", p.download),
        expires_at: ids::rfc3339(p.expires_at_ms),
    }
}

/// A key typed at the portal. The per-address limit is taken first, then
/// the site-wide limit of wrong keys (given back when the key was right).
async fn redeem_key(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    ApiJson(req): ApiJson<api::RedeemKey>,
) -> Result<Response, ApiError> {
    let now = Instant::now();
    let limits = &st.support_limits;
    if let Err(wait) = limits.key_attempts.check(peer.ip(), now) {
        return Ok(limited(wait));
    }
    // Taken before the key is verified (so concurrent guesses cannot all
    // pass on the last token), given back when the key was right.
    if let Err(wait) = limits.key_failures.check(SITE, now) {
        tracing::warn!("session key guessing: the site-wide limit of wrong keys is reached");
        return Ok(limited(wait));
    }
    let addr = peer.ip().to_string();
    match keys::redeem(&st.db, &st.keys, &req.key, &addr).await {
        Ok(p) => {
            limits.key_failures.refund(SITE);
            announce(&st, &p).await;
            Ok(Json(download(&p)).into_response())
        }
        Err(SupportError::InvalidKey) => {
            keys::audit_failure(&st.db, &addr).await?;
            Err(SupportError::InvalidKey.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The one bucket of the site-wide limit.
const SITE: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

async fn request_help(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    ApiJson(req): ApiJson<api::HelpRequest>,
) -> Result<Response, ApiError> {
    if let Err(wait) = st.support_limits.requests.check(peer.ip(), Instant::now()) {
        return Ok(limited(wait));
    }
    let p = keys::request_help(
        &st.db,
        &st.keys,
        &req.name,
        &req.problem,
        &req.queue,
        &peer.ip().to_string(),
    )
    .await?;
    announce(&st, &p).await;
    Ok((StatusCode::CREATED, Json(download(&p))).into_response())
}

/// Tells the technicians' event streams about a new support session.
async fn announce(st: &AppState, p: &keys::Pending) {
    match hub::session(&st.db, &st.keys, p.id.as_str()).await {
        Ok(Some(s)) => {
            let queue = s.queue.clone();
            st.support_hub.publish(
                &queue,
                api::SupportEvent::Session {
                    session: Box::new(s),
                },
            );
        }
        Ok(None) => {}
        // The session is stored; a stream that missed it shows it on its
        // next snapshot.
        Err(e) => tracing::warn!(support = %p.id, error = %e, "cannot announce a support session"),
    }
}

/// How often an idle event stream gets a comment line (keeps proxies from
/// closing it, and tells the client the gateway is there).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn sse_event(e: &api::SupportEvent) -> Event {
    let name = match e {
        api::SupportEvent::Snapshot { .. } => "snapshot",
        api::SupportEvent::Session { .. } => "session",
        api::SupportEvent::Left { .. } => "left",
        api::SupportEvent::Chat { .. } => "chat",
        api::SupportEvent::Invite { .. } => "invite",
    };
    Event::default()
        .event(name)
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// The sessions of `visible` queues not over, with their live parts.
async fn snapshot(
    st: &AppState,
    visible: &std::collections::BTreeSet<String>,
) -> Result<api::SupportEvent, SupportError> {
    let mut sessions = hub::open_sessions(&st.db, &st.keys, visible).await?;
    for s in &mut sessions {
        super::session::fill_live(st, s);
    }
    Ok(api::SupportEvent::Snapshot { sessions })
}

/// `GET /api/v1/support/events`: a snapshot of the subscriber's queues,
/// then every change as it happens (server-sent events). A subscriber that
/// falls behind gets a fresh snapshot.
async fn events(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let in_group = |g: &str| who.groups.contains(g);
    let visible = match who.user_id() {
        Some(id) => hub::visible_queues(&st.db, id.as_str(), &in_group).await?,
        // An API client (a reporting tool) sees every queue of its groups.
        None => queues::list(&st.db)
            .await?
            .into_iter()
            .filter(|q| in_group(&q.group))
            .map(|q| q.name)
            .collect(),
    };
    // Subscribed before the snapshot is read: nothing falls in between.
    let rx = st.support_hub.subscribe();
    let first = snapshot(&st, &visible).await?;
    let user = who.user_id().map(|u| u.as_str().to_owned());
    // Available for automatic assignment while the stream is open.
    let here = st.support_hub.presence.arrive(&who);
    if here.is_some() {
        let st = st.clone();
        let who = who.clone();
        st.tasks
            .clone()
            .spawn(async move { assign::arrived(&st, &who).await });
    }
    let user = (user, here);
    let state = (rx, Some(first), st.clone(), visible, user);
    let stream = futures_util::stream::unfold(
        state,
        |(mut rx, pending, st, visible, user)| async move {
            if let Some(e) = pending {
                return Some((Ok(sse_event(&e)), (rx, None, st, visible, user)));
            }
            loop {
                match rx.recv().await {
                    Ok(p)
                        if match &p.audience {
                            None => visible.contains(&p.queue),
                            // Addressed to some users (chat, invitations):
                            // wherever their queue is.
                            Some(a) => user.0.as_ref().is_some_and(|u| a.contains(u)),
                        } =>
                    {
                        return Some((Ok(sse_event(&p.event)), (rx, None, st, visible, user)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => match snapshot(&st, &visible)
                        .await
                    {
                        Ok(e) => return Some((Ok(sse_event(&e)), (rx, None, st, visible, user))),
                        Err(e) => {
                            tracing::warn!(error = %e, "support events: cannot read a snapshot; closing the stream");
                            return None;
                        }
                    },
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

async fn get_settings(State(st): State<AppState>) -> Result<Json<api::PortalSettings>, ApiError> {
    Ok(Json(portal::load(&st.db).await?))
}

async fn put_settings(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::PortalSettings>,
) -> Result<Json<api::PortalSettings>, ApiError> {
    Ok(Json(portal::save(&st.db, req, &who.name).await?))
}

async fn create_key(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateSupportKey>,
) -> Result<(StatusCode, Json<api::SupportKey>), ApiError> {
    let Some(user_id) = who.user_id() else {
        return Err(ApiError::forbidden(
            "session keys are made by technicians, not API clients",
        ));
    };
    let ttl = match req.ttl.as_deref() {
        Some(t) => keys::parse_ttl(t)?,
        None => keys::DEFAULT_TTL,
    };
    let in_group = |g: &str| who.groups.contains(g);
    let creator = keys::Creator {
        user_id: user_id.as_str(),
        name: &who.name,
        in_group: &in_group,
    };
    let k = keys::create_key(&st.db, &st.keys, &creator, req.queue.as_deref(), ttl).await?;
    Ok((
        StatusCode::CREATED,
        Json(api::SupportKey {
            key: k.key,
            expires_at: ids::rfc3339(k.expires_at_ms),
            queue: Some(k.queue),
        }),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    queue: Option<String>,
    /// RFC 3339: only sessions requested before.
    before: Option<String>,
    limit: Option<u32>,
}

/// Support sessions of the caller's groups, newest first.
async fn list_sessions(
    State(st): State<AppState>,
    Caller(who): Caller,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Json<Vec<api::SupportSessionRow>>, ApiError> {
    let before = match q.before.as_deref() {
        Some(b) => Some(
            ids::parse_rfc3339(b)
                .ok_or_else(|| ApiError::bad_request(ids::bad_time("before", b)))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=history::LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {}",
            history::LIMIT_MAX
        )));
    }
    let rows = history::list(
        &st.db,
        &st.keys,
        &who.read_scope(),
        q.queue.as_deref(),
        before,
        limit,
    )
    .await?;
    Ok(Json(rows))
}

/// The queues of the caller's groups.
async fn list_queues(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Vec<api::Queue>>, ApiError> {
    Ok(Json(
        queues::list(&st.db)
            .await?
            .iter()
            .filter(|q| who.groups.contains(&q.group))
            .map(|q| {
                let mut api = q.to_api();
                api.available = st.support_hub.presence.available_in(q);
                api
            })
            .collect(),
    ))
}

async fn create_queue(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateQueue>,
) -> Result<(StatusCode, Json<api::Queue>), ApiError> {
    let q = queues::create(&st.db, &req, &who.name).await?;
    Ok((StatusCode::CREATED, Json(q.to_api())))
}

async fn update_queue(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::UpdateQueue>,
) -> Result<Json<api::Queue>, ApiError> {
    let q = queues::update(&st.db, &name, &req, &who.name).await?;
    if q.auto_assign {
        // Members may have been added, or assignment turned on.
        assign::spawn(&st, q.name.clone());
    }
    Ok(Json(q.to_api()))
}

async fn delete_queue(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    queues::delete(&st.db, &name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /portal/download/{token}`: the customer's client with its trailer.
/// An unknown, used-up or expired link answers like an invalid key.
async fn download_client(
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    Ok(download::serve(&st, &token).await?)
}

/// Whether the caller may see support session `id` (its group is
/// theirs); one that is not theirs does not exist for them.
async fn in_scope(st: &AppState, who: &crate::rbac::Subject, id: &str) -> Result<(), ApiError> {
    let group = session::group_of(&st.db, id).await?;
    if who.groups.contains(&group) {
        Ok(())
    } else {
        Err(SupportError::UnknownSession(id.to_owned()).into())
    }
}

async fn get_session(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<api::SupportSession>, ApiError> {
    in_scope(&st, &who, &id).await?;
    Ok(Json(session::view(&st, &id).await?))
}

async fn accept_session(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<api::SupportSession>, ApiError> {
    session::accept(&st, &id, &who).await?;
    Ok(Json(session::view(&st, &id).await?))
}

async fn send_chat(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::SendChat>,
) -> Result<(StatusCode, Json<api::ChatLine>), ApiError> {
    in_scope(&st, &who, &id).await?;
    let line = session::technician_chat(&st, &id, &who, &req.text).await?;
    Ok((StatusCode::CREATED, Json(line)))
}

async fn ask_right(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::AskRight>,
) -> Result<Json<api::SupportSession>, ApiError> {
    let right: jumpgate_proto::assist::Right = req.right.parse().map_err(ApiError::bad_request)?;
    in_scope(&st, &who, &id).await?;
    session::ask(&st, &id, &who, right).await?;
    Ok(Json(session::view(&st, &id).await?))
}

async fn end_session(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    in_scope(&st, &who, &id).await?;
    session::technician_end(&st, &id, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn transfer_session(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::TransferSupport>,
) -> Result<Json<api::SupportSession>, ApiError> {
    let to = match (req.user, req.queue) {
        (Some(u), None) => session::TransferTo::User(u),
        (None, Some(q)) => session::TransferTo::Queue(q),
        _ => {
            return Err(ApiError::bad_request(
                "give either `user` (a technician) or `queue`",
            ));
        }
    };
    in_scope(&st, &who, &id).await?;
    session::transfer(&st, &id, &who, to).await?;
    Ok(Json(session::view(&st, &id).await?))
}

async fn invite_technician(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::InviteTechnician>,
) -> Result<Json<api::SupportSession>, ApiError> {
    in_scope(&st, &who, &id).await?;
    session::invite(&st, &id, &who, &req.user, &req.role).await?;
    Ok(Json(session::view(&st, &id).await?))
}

async fn remove_participant(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    in_scope(&st, &who, &id).await?;
    session::remove(&st, &id, &who, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_transcript(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<api::ChatLine>>, ApiError> {
    in_scope(&st, &who, &id).await?;
    Ok(Json(session::transcript(&st, &id, &who).await?))
}
