//! Events from agents (`Control::EpmEvents`): stored once per
//! `(agent, seq)` (`ON CONFLICT DO NOTHING`: an agent resends what was not
//! acknowledged after a reconnect), then acknowledged with
//! `Control::EpmAck { through }`, the highest sequence number of the batch
//! (all of the batch is stored by then). `approval-requested` events become
//! pending requests, pushed live to technicians ([`super::Epm`]), and
//! access requests of kind `elevation` (same id, same transaction,
//! audited `access-request`: `access::create_elevation`).
//!
//! A `decision` event whose action was `block` (a rule's, or the default's)
//! is audited `epm-blocked` (actor: the endpoint's user as reported;
//! target: the endpoint; detail: rule, count, program; outcome `blocked`),
//! at most once per (endpoint, program, rule) per [`BLOCKED_FOLD_MS`]: the
//! first blocked launch writes an entry at once; those within the next
//! minute are only counted (`epm_blocked.folded`), and the next entry for
//! that key carries them in `count=` (this launch included) with `since=`
//! (the previous entry's time). A burst followed by silence therefore shows
//! its total on the next blocked launch of that program; every launch is
//! in `GET /api/v1/epm/events` regardless.

use jumpgate_net::mux::MuxHandle;
use jumpgate_proto::control::Control;
use jumpgate_proto::epm::{EpmEventBatch, EpmEventKind, Outcome};

use super::store::{self, RequestRow};
use crate::agents::{EndpointRecord, reported};
use crate::ids::AgentId;
use crate::keys::now_ms;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, WriteTx, sql};

/// How long a pending request waits for a technician when its event does
/// not say (an agent older than `timeout_secs`).
pub(crate) const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// Events accepted in one batch (a control frame holds fewer).
const MAX_BATCH: usize = 4096;
/// Longest stored text of an event field.
const FIELD_MAX: usize = 1024;
/// `epm-blocked` entries: at most one per (endpoint, program, rule) in
/// this long; the launches blocked meanwhile are counted into the next.
pub(crate) const BLOCKED_FOLD_MS: i64 = 60 * 1000;
/// A fold row whose last entry is older than this is dropped (its count,
/// if any, stays in the events).
const BLOCKED_KEEP_MS: i64 = 24 * 3600 * 1000;

/// Whether an event is a launch the policy blocked.
fn is_blocked(k: &EpmEventKind) -> bool {
    matches!(k, EpmEventKind::Decision { action, outcome: Outcome::Denied, .. } if action == "block")
}

/// What storing a batch did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Events new to the store.
    pub(crate) new: usize,
    /// The acknowledgement sent (`None`: empty batch).
    pub(crate) through: Option<u64>,
}

/// Stores a batch from `agent` and answers what to acknowledge.
///
/// # Errors
/// The store failed: nothing is acknowledged, the agent sends it again.
pub(crate) async fn store_batch(
    st: &AppState,
    agent: &AgentId,
    batch: &EpmEventBatch,
) -> Result<Stored, sqlx::Error> {
    let events = &batch.events[..batch.events.len().min(MAX_BATCH)];
    let now = now_ms();
    let mut new_requests = Vec::new();
    // The endpoint's name and group, for access requests and audit entries.
    let endpoint = if events
        .iter()
        .any(|e| matches!(e.kind, EpmEventKind::ApprovalRequested { .. }) || is_blocked(&e.kind))
    {
        crate::agents::find_by_id(&st.db, agent).await?
    } else {
        None
    };
    let mut w = st.db.write().await?;
    let mut new = 0;
    for e in events {
        if !store::insert_event(&mut w, agent.as_str(), e, now).await? {
            continue;
        }
        new += 1;
        match &e.kind {
            EpmEventKind::ApprovalRequested {
                request,
                user,
                program,
                sha256,
                args,
                rule,
                reason,
                timeout_secs,
                ..
            } => {
                // Expires when the caller stops waiting (the rule's
                // timeout, at most a day), else after the default.
                let ttl = match *timeout_secs {
                    0 => REQUEST_TTL_MS,
                    t => i64::try_from(t.min(24 * 3600) * 1000).unwrap_or(REQUEST_TTL_MS),
                };
                let row = RequestRow {
                    id: reported::text(request, 64),
                    agent_id: agent.0.clone(),
                    seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
                    username: reported::text(user, 256),
                    program: reported::text(program, FIELD_MAX),
                    sha256: reported::text(sha256, 64),
                    args: serde_json::to_string(
                        &args
                            .iter()
                            .take(256)
                            .map(|a| reported::text(a, FIELD_MAX))
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_else(|_| "[]".into()),
                    reason: reported::text(reason, FIELD_MAX),
                    rule: reported::text(rule, 256),
                    state: "pending".into(),
                    decided_by: None,
                    decided_at: None,
                    comment: None,
                    created_at: now,
                    expires_at: now + ttl,
                };
                if store::insert_request(&mut w, &row).await? {
                    if let Some(ep) = &endpoint {
                        let asked = crate::access::Elevation {
                            user: row.username.clone(),
                            program: row.program.clone(),
                            args: serde_json::from_str(&row.args).unwrap_or_default(),
                            sha256: row.sha256.clone(),
                            rule: row.rule.clone(),
                        };
                        crate::access::create_elevation(
                            &mut w,
                            crate::access::NewElevation {
                                id: &row.id,
                                agent_id: agent.as_str(),
                                endpoint: &ep.name,
                                group: &ep.group,
                                reason: &row.reason,
                                asked,
                                created_at: row.created_at,
                                expires_at: row.expires_at,
                            },
                        )
                        .await?;
                    }
                    new_requests.push(row);
                }
            }
            EpmEventKind::Decision {
                user,
                program,
                action,
                rule,
                outcome: Outcome::Denied,
                ..
            } if action == "block" => {
                if let Some(ep) = &endpoint {
                    let launch = Blocked {
                        user: &reported::text(user, 256),
                        program: &reported::text(program, FIELD_MAX),
                        rule: &reported::text(rule, 256),
                    };
                    blocked(&mut w, ep, &launch, now).await?;
                }
            }
            EpmEventKind::BundleAccepted { version } => {
                let v = i64::try_from(*version).unwrap_or(i64::MAX);
                sql!(w, |c| sqlx::query(
                    "INSERT INTO epm_agents (agent_id, accepted_version, dropped, updated_at)
                     VALUES ($1, $2, 0, $3)
                     ON CONFLICT (agent_id) DO UPDATE SET
                        accepted_version = CASE WHEN epm_agents.accepted_version IS NULL
                            OR epm_agents.accepted_version < excluded.accepted_version
                            THEN excluded.accepted_version ELSE epm_agents.accepted_version END,
                        last_refusal = NULL, updated_at = excluded.updated_at"
                )
                .bind(agent.as_str())
                .bind(v)
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))?;
            }
            EpmEventKind::BundleRefused { version, why } => {
                let why = format!("version {version}: {}", reported::text(why, 200));
                sql!(w, |c| sqlx::query(
                    "INSERT INTO epm_agents (agent_id, last_refusal, dropped, updated_at)
                     VALUES ($1, $2, 0, $3)
                     ON CONFLICT (agent_id) DO UPDATE SET
                        last_refusal = excluded.last_refusal, updated_at = excluded.updated_at"
                )
                .bind(agent.as_str())
                .bind(&why)
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))?;
            }
            _ => {}
        }
    }
    if batch.dropped > 0 {
        let dropped = i64::try_from(batch.dropped).unwrap_or(i64::MAX);
        sql!(w, |c| sqlx::query(
            "INSERT INTO epm_agents (agent_id, dropped, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id) DO UPDATE SET
                dropped = CASE WHEN excluded.dropped > epm_agents.dropped
                    THEN excluded.dropped ELSE epm_agents.dropped END,
                updated_at = excluded.updated_at"
        )
        .bind(agent.as_str())
        .bind(dropped)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    w.commit().await?;
    for r in new_requests {
        st.epm.publish(r);
    }
    Ok(Stored {
        new,
        through: events.iter().map(|e| e.seq).max(),
    })
}

/// A launch the policy blocked.
struct Blocked<'a> {
    user: &'a str,
    program: &'a str,
    rule: &'a str,
}

/// The fold row's key of (agent, program, rule).
fn fold_key(agent: &str, program: &str, rule: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [agent, program, rule] {
        ctx.update(part.as_bytes());
        ctx.update(b"\0");
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Audits a blocked launch `epm-blocked`, or counts it into the next entry
/// when its key had one within [`BLOCKED_FOLD_MS`].
async fn blocked(
    w: &mut WriteTx,
    ep: &EndpointRecord,
    b: &Blocked<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let key = fold_key(ep.id.as_str(), b.program, b.rule);
    let row: Option<(i64, i64)> = sql!(w, |c| sqlx::query_as(
        "SELECT last_entry_at, folded FROM epm_blocked WHERE key = $1"
    )
    .bind(&key)
    .fetch_optional(&mut *c)
    .await)?;
    if let Some((last, _)) = row
        && now - last < BLOCKED_FOLD_MS
    {
        sql!(w, |c| sqlx::query(
            "UPDATE epm_blocked SET folded = folded + 1 WHERE key = $1"
        )
        .bind(&key)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        return Ok(());
    }
    sql!(w, |c| sqlx::query(
        "DELETE FROM epm_blocked WHERE last_entry_at < $1"
    )
    .bind(now - BLOCKED_KEEP_MS)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO epm_blocked (key, last_entry_at, folded) VALUES ($1, $2, 0)
         ON CONFLICT (key) DO UPDATE SET last_entry_at = excluded.last_entry_at, folded = 0"
    )
    .bind(&key)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    // This launch and those folded since the previous entry.
    let (count, since) = match row {
        Some((last, folded)) if folded > 0 => {
            (folded + 1, format!(" since={}", crate::ids::rfc3339(last)))
        }
        _ => (1, String::new()),
    };
    let rule = if b.rule.is_empty() {
        "(default)"
    } else {
        b.rule
    };
    w.audit(
        AuditEvent::new(b.user, AuditAction::EpmBlocked, &ep.name)
            .outcome("blocked")
            .detail(format!(
                "rule={rule} count={count}{since} program={}",
                crate::store::audit::bound(b.program, 200)
            ))
            .group(ep.group.clone()),
    )
    .await
}

/// The connection's handling of `Control::EpmEvents`: store, then
/// acknowledge on `handle`.
pub(crate) async fn on_events(
    st: &AppState,
    agent: &AgentId,
    handle: &MuxHandle,
    batch: EpmEventBatch,
) {
    match store_batch(st, agent, &batch).await {
        Ok(Stored {
            through: Some(through),
            ..
        }) => handle.send_control(&Control::EpmAck { through }),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(endpoint_id = %agent, error = %e, "cannot store EPM events; the agent sends them again");
        }
    }
}
