//! Background upkeep: the audit chain's head is anchored outside the
//! database every few seconds, retention removes recordings and audit
//! entries older than the site keeps them, and delivered webhook
//! deliveries older than `[retention] webhook_deliveries_days`, hourly, and
//! deleted vault
//! secrets whose retention ended are purged every minute, and support
//! sessions get their upkeep every minute ([`crate::support::upkeep`]),
//! the whole audit chain is verified every `[audit] verify_every` (a broken
//! chain gets an `audit-verify` entry that alerts can mail), and endpoints
//! offline longer than `[agents] offline_after` are reported
//! ([`crate::agents::watch`]). Each removal is itself audited. Every job runs only while this gateway holds its
//! [`Lease`](crate::lease::Lease).

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::lease::{Job, run_held};
use crate::state::AppState;
use crate::store::audit::{AuditAction, AuditEvent};
use crate::{agents, events, ids, recordings, support};

const ANCHOR_EVERY: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const VAULT_EXPIRY_EVERY: Duration = Duration::from_secs(60);
/// The period of a job whose setting is off (its branch is disabled).
const IDLE: Duration = Duration::from_secs(86_400);

/// What one retention pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expired {
    pub(crate) recordings: u64,
    pub(crate) audit_entries: u64,
    /// Delivered webhook deliveries (not audited: a queue's history, not
    /// a record; the audit entries they carried stay).
    pub(crate) webhook_deliveries: u64,
}

/// Removes what is older than the configured retention, as of `now_ms`.
pub(crate) async fn sweep(
    db: &crate::store::Store,
    blobs: &crate::blobs::Blobs,
    data_dir: &Path,
    config: &Config,
    now_ms: i64,
) -> Result<Expired, Box<dyn std::error::Error + Send + Sync>> {
    let mut out = Expired::default();
    if let Some(keep) = config.recording_retention {
        let cutoff = now_ms - keep.as_millis() as i64;
        // `expire` records its own entry, in the same transaction.
        out.recordings = recordings::expire(db, blobs, data_dir, cutoff).await?;
    }
    if let Some(keep) = config.audit_retention {
        // `expire` records its own entry, in the same transaction.
        let anchored = events::read_anchor(data_dir)?.map(|(id, _)| id);
        out.audit_entries = events::expire(db, now_ms - keep.as_millis() as i64, anchored).await?;
    }
    let keep = config.webhook_delivery_retention.as_millis() as i64;
    out.webhook_deliveries = crate::notify::webhooks::expire_delivered(db, now_ms - keep).await?;
    Ok(out)
}

/// Walks the whole audit chain; a break not reported yet (`reported`: the
/// last one, by entry and reason) gets an `audit-verify` entry with
/// outcome `failure`, which alert rules and webhooks pick up.
async fn verify_audit(st: &AppState, reported: &mut Option<(i64, String)>) {
    let anchor = match events::read_anchor(&st.config.data_dir) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit anchor; verifying without it");
            None
        }
    };
    match events::verify(&st.db, anchor).await {
        Ok(Ok(intact)) => {
            tracing::info!(entries = intact.entries, "audit chain verified");
            *reported = None;
        }
        Ok(Err(broken)) => {
            tracing::error!(%broken, "the audit chain does not verify");
            let key = (broken.id, broken.reason.clone());
            if reported.as_ref() == Some(&key) {
                return;
            }
            let entry = AuditEvent::new(VERIFY_ACTOR, AuditAction::AuditVerify, "audit-log")
                .outcome("failure")
                .detail(broken.to_string());
            match st.db.audit_now(entry).await {
                Ok(()) => *reported = Some(key),
                Err(e) => tracing::error!(error = %e, "cannot record the audit chain's break"),
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot verify the audit chain"),
    }
}

/// Who records a broken chain.
const VERIFY_ACTOR: &str = "(gateway)";

/// Runs until the gateway stops accepting work.
pub(crate) async fn run(st: AppState) {
    let lease = &*st.lease;
    let mut anchored = None;
    let mut anchor = tokio::time::interval(ANCHOR_EVERY);
    let mut retention = tokio::time::interval(RETENTION_EVERY);
    let mut vault_expiry = tokio::time::interval(VAULT_EXPIRY_EVERY);
    let mut support = tokio::time::interval(support::upkeep::EVERY);
    let started = tokio::time::Instant::now();
    let started_ms = ids::now_ms();
    let verify_every = st.config.audit_verify_every;
    let mut verify = tokio::time::interval(verify_every.unwrap_or(IDLE));
    verify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut broken_reported: Option<(i64, String)> = None;
    let offline_after = st.config.endpoint_offline_after;
    let mut watch = tokio::time::interval(offline_after.map_or(IDLE, agents::watch::every));
    loop {
        tokio::select! {
            () = st.shutdown.cancelled() => return,
            _ = anchor.tick() => {
                run_held(lease, Job::AuditAnchor, ANCHOR_EVERY * 3, async {
                    match events::write_anchor(&st.db, &st.config.data_dir, anchored).await {
                        Ok(a) => anchored = a,
                        Err(e) => tracing::warn!(error = %e, "cannot anchor the audit log's head"),
                    }
                })
                .await;
            }
            _ = retention.tick() => {
                run_held(lease, Job::Retention, RETENTION_EVERY * 2, async {
                    match sweep(&st.db, &st.blobs, &st.config.data_dir, &st.config, ids::now_ms()).await {
                        Ok(x) if x != Expired::default() => tracing::info!(
                            recordings = x.recordings,
                            audit_entries = x.audit_entries,
                            webhook_deliveries = x.webhook_deliveries,
                            "retention removed expired data"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "retention pass failed"),
                    }
                })
                .await;
            }
            _ = vault_expiry.tick() => {
                run_held(
                    lease,
                    Job::VaultExpiry,
                    VAULT_EXPIRY_EVERY * 2,
                    crate::vault::expire(&st.db),
                )
                .await;
            }
            _ = verify.tick(), if verify_every.is_some() => {
                // As long as a walk of a long chain may take, at least.
                let ttl = verify_every.unwrap_or(IDLE).max(Duration::from_secs(600)) * 2;
                run_held(lease, Job::AuditVerify, ttl, verify_audit(&st, &mut broken_reported)).await;
            }
            _ = watch.tick(), if offline_after.is_some() => {
                let after = offline_after.unwrap_or(IDLE);
                run_held(lease, Job::EndpointWatch, agents::watch::every(after) * 3, async {
                    match agents::watch::pass(&st, started_ms, after).await {
                        Ok((0, 0)) => {}
                        Ok((offline, online)) => {
                            tracing::info!(offline, online, "endpoint offline reports written");
                        }
                        Err(e) => tracing::warn!(error = %e, "endpoint offline watch failed"),
                    }
                })
                .await;
            }
            _ = support.tick() => {
                run_held(
                    lease,
                    Job::SupportUpkeep,
                    support::upkeep::EVERY * 2,
                    support::upkeep::run(&st, started.elapsed()),
                )
                .await;
            }
        }
    }
}
