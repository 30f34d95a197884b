//! Events from agents (`Control::EpmEvents`): stored once per
//! `(agent, seq)` (`ON CONFLICT DO NOTHING`: an agent resends what was not
//! acknowledged after a reconnect), then acknowledged with
//! `Control::EpmAck { through }`, the highest sequence number of the batch
//! (all of the batch is stored by then). `approval-requested` events become
//! pending requests, pushed live to technicians ([`super::Epm`]).

use jumpgate_net::mux::MuxHandle;
use jumpgate_proto::control::Control;
use jumpgate_proto::epm::{EpmEventBatch, EpmEventKind};

use super::store::{self, RequestRow};
use crate::agents::reported;
use crate::ids::AgentId;
use crate::keys::now_ms;
use crate::state::AppState;
use crate::store::sql;

/// How long a pending request waits for a technician when its event does
/// not say (an agent older than `timeout_secs`).
pub(crate) const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// Events accepted in one batch (a control frame holds fewer).
const MAX_BATCH: usize = 4096;
/// Longest stored text of an event field.
const FIELD_MAX: usize = 1024;

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
                    new_requests.push(row);
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
