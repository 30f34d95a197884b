//! Live sessions are decided again whenever access may have changed: the
//! credential each was opened with is authenticated again and the subject
//! authorized again for the session's kind on the endpoint as it is now
//! (through the very `identity::authenticate` + `rbac::authorize` path that
//! opened it). A session the new state no longer allows is stopped at once:
//! the technician is told why (`Closed{reason}`), and the end is audited.
//!
//! Triggers: every state-changing API request ([`after_change`]), an
//! endpoint's revocation (control socket), a new session (closing the race
//! with a change made while it opened), the earliest credential expiry among
//! live sessions, and a safety sweep every [`SWEEP_EVERY`] (changes made
//! with `jumpgate admin` straight into the database, clocks).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::Grant;
use crate::agents::{self, EndpointRecord};
use crate::identity::{self, Credential, IdentityError};
use crate::ids::{self, AgentId};
use crate::rbac::{self, Action, Decision, Resource, Subject};
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};

/// The safety sweep's period.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Margin after a credential's expiry before the sweep that ends it.
const EXPIRY_MARGIN: Duration = Duration::from_millis(50);

/// Who the audit log names as ending a session for lack of access.
const ACTOR: &str = "(gateway)";

/// Middleware: after every request that may change state (any method but
/// `GET`, `HEAD`, `OPTIONS`; failed logins included, as they may lock an
/// account), live sessions are decided again. Coalesced: many changes in a
/// burst cost one re-check.
pub(crate) async fn after_change(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let res = next.run(req).await;
    if writes && st.sessions.len() > 0 {
        st.sessions.changed();
    }
    res
}

/// The background task: re-checks on a poke, at the earliest expiry, and
/// every [`SWEEP_EVERY`]; ends with the gateway.
pub(crate) async fn run(st: AppState) {
    loop {
        let wait = st
            .sessions
            .earliest_expiry()
            .map_or(SWEEP_EVERY, |at| {
                let ms = at.saturating_sub(ids::now_ms()).max(0) as u64;
                Duration::from_millis(ms) + EXPIRY_MARGIN
            })
            .min(SWEEP_EVERY);
        tokio::select! {
            () = st.shutdown.cancelled() => return,
            () = st.sessions.changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        recheck(&st).await;
    }
}

/// Decides every live session again and stops those no longer allowed;
/// returns how many were stopped. A database failure stops nothing (the
/// next sweep tries again).
pub(crate) async fn recheck(st: &AppState) -> usize {
    let _one_at_a_time = st.sessions.rechecking.lock().await;
    let live = st.sessions.snapshot();
    if live.is_empty() {
        return 0;
    }
    // Each credential and endpoint is looked up once per sweep.
    let mut subjects: HashMap<Credential, Result<Subject, String>> = HashMap::new();
    let mut endpoints: HashMap<AgentId, Option<EndpointRecord>> = HashMap::new();
    let mut stopped = 0;
    for (id, grant) in live {
        let verdict = match decide(st, &grant, &mut subjects, &mut endpoints).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, session = %id, "cannot re-check a live session; keeping it until the next sweep");
                continue;
            }
        };
        let Some(why) = verdict else { continue };
        // A session under an access grant that ended says so plainly.
        let grant_ended = match &grant.access_request {
            Some(request) => crate::access::ended(&st.db, request).await.ok().flatten(),
            None => None,
        };
        let (why, reason) = match grant_ended {
            Some(ended) => (ended.clone(), ended),
            None => (why.clone(), format!("access revoked: {why}")),
        };
        let detail = format!(
            "session={id} subject={} endpoint={} kind={} reason={why}",
            grant.subject_name, grant.endpoint_name, grant.kind
        );
        // Audited before it takes effect, like a termination.
        // Filed under the group the session was opened in, like its other
        // entries (group-limited auditors see it).
        let group = super::group_of(&st.db, id.as_str())
            .await
            .ok()
            .flatten()
            .flatten();
        st.db
            .audit_or_log(
                AuditEvent::new(ACTOR, AuditAction::SessionRevoke, id.as_str())
                    .detail(detail)
                    .groups(group),
            )
            .await;
        tracing::info!(session = %id, subject = %grant.subject_name, endpoint = %grant.endpoint_name, reason = %why, "live session no longer allowed; stopping it");
        st.session_control().stop(id.as_str(), &reason).await;
        stopped += 1;
    }
    stopped
}

/// `Ok(None)`: still allowed; `Ok(Some(why))`: not any more.
async fn decide(
    st: &AppState,
    grant: &Grant,
    subjects: &mut HashMap<Credential, Result<Subject, String>>,
    endpoints: &mut HashMap<AgentId, Option<EndpointRecord>>,
) -> Result<Option<String>, IdentityError> {
    if !subjects.contains_key(&grant.credential) {
        let found = match identity::authenticate_credential(&st.db, &grant.credential).await {
            Ok(s) => Ok(s),
            Err(IdentityError::Unauthenticated) => Err(identity::why_unauthenticated(
                &st.db,
                &grant.credential,
                &grant.subject,
                grant.expires_at,
            )
            .await?),
            Err(e) => return Err(e),
        };
        subjects.insert(grant.credential.clone(), found);
    }
    let subject = match &subjects[&grant.credential] {
        Ok(s) => s,
        Err(why) => return Ok(Some(why.clone())),
    };
    if let Some((support_id, user_id)) = &grant.support {
        // A customer's client has no endpoint row: the support hub knows.
        let Some(right) = crate::support::right_for(grant.kind) else {
            return Ok(Some(format!(
                "{} sessions are not part of attended support",
                grant.kind
            )));
        };
        if let Some(why) = st
            .support_hub
            .live
            .still_allowed(support_id, user_id, right)
        {
            return Ok(Some(why));
        }
        let Some(group) = st.support_hub.live.with(support_id, |l| l.group.clone()) else {
            return Ok(Some("the support session ended".into()));
        };
        let resource = Resource::Endpoint { group: &group };
        return Ok(
            match rbac::authorize(subject, Action::OpenSession(grant.kind), resource) {
                Decision::Allow => None,
                Decision::Forbid(denial) => Some(denial.to_string()),
            },
        );
    }
    if let Some(name) = &grant.target {
        // A target is decided on its own group; its jump point's
        // revocation ends it too.
        let Some(t) = crate::targets::find(&st.db, name).await? else {
            return Ok(Some(format!("target `{name}` was removed")));
        };
        if !endpoints.contains_key(&t.via) {
            let found = agents::find_by_id(&st.db, &t.via).await?;
            endpoints.insert(t.via.clone(), found);
        }
        match &endpoints[&t.via] {
            None => return Ok(Some(format!("jump point `{}` was removed", t.via_name))),
            Some(e) if e.revoked => {
                return Ok(Some(format!("jump point `{}` was revoked", e.name)));
            }
            Some(_) => {}
        }
        let resource = Resource::Endpoint { group: &t.group };
        return Ok(
            match rbac::authorize(subject, Action::OpenSession(grant.kind), resource) {
                Decision::Allow => None,
                Decision::Forbid(denial) => Some(denial.to_string()),
            },
        );
    }
    if !endpoints.contains_key(&grant.endpoint_id) {
        let found = agents::find_by_id(&st.db, &grant.endpoint_id).await?;
        endpoints.insert(grant.endpoint_id.clone(), found);
    }
    let endpoint = match &endpoints[&grant.endpoint_id] {
        None => {
            return Ok(Some(format!(
                "endpoint `{}` was removed",
                grant.endpoint_name
            )));
        }
        Some(e) if e.revoked => {
            return Ok(Some(format!("endpoint `{}` was revoked", e.name)));
        }
        Some(e) => e,
    };
    let resource = Resource::OneEndpoint {
        group: &endpoint.group,
        id: endpoint.id.as_str(),
    };
    Ok(
        match rbac::authorize(subject, Action::OpenSession(grant.kind), resource) {
            Decision::Allow => None,
            Decision::Forbid(denial) => Some(denial.to_string()),
        },
    )
}
