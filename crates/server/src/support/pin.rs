//! Pin as unattended (issue #13 item 7): with the customer's consent (and
//! an administrator's password on their machine), the owner of a live
//! support session turns the customer's machine into an enrolled endpoint
//! of a group they pick.
//!
//! `POST /api/v1/support/sessions/{id}/pin {group}` makes a 10-minute
//! single-use enrollment token for that group (the same function, the same
//! right and the same `enroll-token-create` audit entry as
//! `POST /api/v1/enroll-tokens`) and offers it to the customer's client
//! (`AssistMsg::PinOffer`). The client asks the customer; on Allow it runs
//! `jumpgate agent install` as root (through `pkexec`) and answers
//! `PinResult`. Both the offer and the outcome are audited (`support-pin`)
//! and told to the technicians as system lines of the session's chat.
//!
//! The offer waiting for its answer is kept per support session in this
//! gateway's memory (single node, like the live fold).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use jumpgate_api_types::support as api;
use jumpgate_proto::assist::{AssistMsg, ChatFrom, ParticipantRole};

use super::SupportError;
use super::session::{self, customer_actor};
use crate::api::{ApiError, ApiJson};
use crate::ids;
use crate::rbac::{self, Action, Caller, Decision, Resource, Subject};
use crate::state::{Api, AppState};
use crate::store::{AuditAction, AuditEvent};

/// How long the enrollment token of an offer works.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(600);

/// How long an unanswered offer is remembered after its token expired
/// (a client that installs slowly still has its outcome recorded).
const FORGET_AFTER: Duration = Duration::from_secs(300);

/// Longest outcome text kept from the client.
const MESSAGE_MAX: usize = 300;

/// The first words of the chat line of each outcome (`jg support pin
/// --wait` and the console look for them).
pub(crate) const INSTALLED: &str = "Permanent remote access installed";
pub(crate) const NOT_INSTALLED: &str = "Permanent remote access was not installed";

/// An offer waiting for the customer's answer.
#[derive(Clone, Debug)]
struct Offer {
    technician: String,
    group: String,
    expires_at_ms: i64,
}

/// Offers by support session id (ids are random: gateways sharing a
/// process in tests never meet).
static OFFERS: LazyLock<Mutex<HashMap<String, Offer>>> = LazyLock::new(Mutex::default);

fn offers() -> std::sync::MutexGuard<'static, HashMap<String, Offer>> {
    OFFERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets offers long past their token's end.
fn prune(all: &mut HashMap<String, Offer>, now_ms: i64) {
    let grace = FORGET_AFTER.as_millis() as i64;
    all.retain(|_, o| o.expires_at_ms + grace > now_ms);
}

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::Site;
    api.post(
        "/api/v1/support/sessions/{id}/pin",
        Site(Action::HandleSupport),
        pin,
    )
}

/// `POST …/{id}/pin`: 202 once the offer is on its way to the customer.
async fn pin(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::PinEndpoint>,
) -> Result<StatusCode, ApiError> {
    offer(&st, &id, &who, &req.group).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Refuses (audited, as the route guard does) what `who` may not do to
/// `group`: making an enrollment token needs what `POST
/// /api/v1/enroll-tokens` needs (`write-endpoints`), and the group must be
/// one of theirs (they see the endpoint it becomes).
async fn check_rights(st: &AppState, who: &Subject, id: &str, group: &str) -> Result<(), ApiError> {
    let target = format!("/api/v1/support/sessions/{id}/pin");
    let checks = [
        (Action::WriteEndpoints, Resource::Site),
        (Action::ViewEndpoint, Resource::Endpoint { group }),
    ];
    for (action, resource) in checks {
        if let Decision::Forbid(why) = rbac::authorize(who, action, resource) {
            return Err(rbac::http::denied(st, who, action, &target, Some(group), why).await);
        }
    }
    Ok(())
}

/// Makes the token and offers it to the customer's client.
///
/// # Errors
/// Unknown session (or not in the caller's groups), a bad group name, not
/// the owner, the client offline, an offer already waiting, missing
/// rights (403, audited), store.
async fn offer(st: &AppState, id: &str, who: &Subject, group: &str) -> Result<(), ApiError> {
    let session_group = session::group_of(&st.db, id).await?;
    if !who.groups.contains(&session_group) {
        return Err(SupportError::UnknownSession(id.to_owned()).into());
    }
    ids::validate_name("group", group).map_err(SupportError::Invalid)?;
    let user = who
        .user_id()
        .map(|u| u.as_str().to_owned())
        .ok_or_else(|| {
            SupportError::Forbidden("pinning is for technicians, not API clients".into())
        })?;
    let (role, online) = st
        .support_hub
        .live
        .with(id, |l| (l.role_of(&user), l.online()))
        .ok_or_else(|| SupportError::NotLive(id.to_owned()))?;
    if role != Some(ParticipantRole::Owner) {
        return Err(SupportError::Forbidden(
            "only the session's owner offers permanent access".into(),
        )
        .into());
    }
    if !online {
        return Err(SupportError::Offline.into());
    }
    check_rights(st, who, id, group).await?;
    let now = ids::now_ms();
    {
        let mut all = offers();
        prune(&mut all, now);
        if all.get(id).is_some_and(|o| o.expires_at_ms > now) {
            return Err(SupportError::Exists(
                "an offer of permanent access waits for the customer's answer already".into(),
            )
            .into());
        }
    }
    let audit = AuditEvent::new(&who.name, AuditAction::EnrollTokenCreate, group)
        .detail(format!("count=1 support={id}"))
        .group(group);
    let token = crate::identity::create_enroll_tokens(&st.db, group, TOKEN_TTL, 1, audit)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no enrollment token was made"))?;
    let mut w = st.db.write().await.map_err(SupportError::Db)?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::SupportPin, id)
            .outcome("offered")
            .detail(format!("group={group}"))
            .group(&session_group),
    )
    .await
    .map_err(SupportError::Db)?;
    w.commit().await.map_err(SupportError::Db)?;
    offers().insert(
        id.to_owned(),
        Offer {
            technician: who.name.clone(),
            group: group.to_owned(),
            expires_at_ms: token.expires_at_ms,
        },
    );
    let msg = AssistMsg::PinOffer {
        group: group.to_owned(),
        technician: who.name.clone(),
        server: st.origins.first().cloned().unwrap_or_default(),
        fingerprint: st.fingerprint.clone(),
        token: token.token,
    };
    st.support_hub.live.with(id, |l| l.send(msg));
    let text = format!(
        "{} offered to install permanent remote access on this computer (group {group}).",
        who.name
    );
    let _ = session::chat_line(st, id, ChatFrom::System, "", &text).await;
    Ok(())
}

/// `PinResult` from the customer's client: audited and told to everyone
/// in the session. One without a waiting offer is ignored.
///
/// # Errors
/// Store.
pub(crate) async fn result(
    st: &AppState,
    id: &str,
    customer: &str,
    ok: bool,
    message: &str,
) -> Result<(), SupportError> {
    let Some(offer) = offers().remove(id) else {
        tracing::info!(support = %id, "a pin result without an offer; ignored");
        return Ok(());
    };
    let message = crate::agents::reported::text(message.trim(), MESSAGE_MAX);
    let session_group = session::group_of(&st.db, id).await?;
    let mut w = st.db.write().await?;
    w.audit(
        AuditEvent::new(customer_actor(customer), AuditAction::SupportPin, id)
            .outcome(if ok { "installed" } else { "not-installed" })
            .detail(format!(
                "group={} offered_by={} message={message}",
                offer.group, offer.technician
            ))
            .group(&session_group),
    )
    .await?;
    w.commit().await?;
    tracing::info!(support = %id, ok, group = %offer.group, "pin result");
    let text = if ok {
        format!("{INSTALLED} (group {}): {message}", offer.group)
    } else {
        format!("{NOT_INSTALLED}: {message}")
    };
    session::chat_line(st, id, ChatFrom::System, "", &text).await?;
    Ok(())
}
