//! Telling the outside world what happened: readers of the audit chain
//! after a durable cursor (design: `docs/design/17-alerts.md`).
//!
//! Everything a site is told about (a lockout, a denied session, an
//! elevation, a grant that expired) is an audited action first. A
//! [`Consumer`] (mail alerts, webhooks) reads the chain after its cursor
//! and turns entries into rows of its own durable queue, **in one write
//! transaction that also advances its cursor** (`notify_cursors`): an entry
//! is queued exactly once across restarts, and with several gateways only
//! the holder of the consumer's lease takes entries (a second taker would
//! find the cursor moved and roll back). Sending from that queue is the
//! consumer's own worker, so a slow SMTP server or a dead web service never
//! holds up the action it reports, nor the reading of the chain.
//!
//! ```text
//! domains ── WriteTx … audit ── commit ──► events (hash chain) ──wake──┐
//!                                              │ read after the cursor   │
//!                                              ▼                         │
//!                           Consumer::take(tx, entries) ◄────────────────┘
//!                           queue rows + cursor, one commit
//!                                              │ Consumer::taken (wake its worker)
//!                                              ▼
//!                                  the consumer's worker sends
//! ```
//!
//! A new consumer starts at the chain's head: history is not replayed.

pub(crate) mod alerts;
pub(crate) mod schema;
pub(crate) mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::lease::{Job, Lease};
use crate::store::{Exec, Store, WriteTx, sql};

/// An audit entry as consumers read it.
pub(crate) use crate::store::audit::Row as Entry;

/// Entries read per round.
pub(crate) const BATCH: u32 = 500;
/// Poll when no commit woke the reader (entries written by another
/// gateway or an `admin` command wake nothing here).
const POLL: Duration = Duration::from_secs(1);
/// Backoff bounds while the store fails or a consumer refuses a batch.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a round's lease is asked for.
const LEASE_TTL: Duration = Duration::from_secs(15);
/// First wait before a failed send (a mail, a webhook delivery) is tried
/// again, and the longest wait between two tries.
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(1);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(600);

/// The wait before the next try of something sent (a mail, a webhook
/// delivery) after `failures` failed tries: 1 s after the first, doubling
/// (2 s, 4 s, …) up to 10 minutes. The consumers' workers share it, so
/// mail and webhooks retry on the same schedule (docs/webhooks.md).
pub(crate) fn retry_after(failures: i64) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    (RETRY_FIRST * (1u32 << exp)).min(RETRY_MAX)
}

/// What a consumer's `take` returns.
pub(crate) type TakeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'a>>;

/// A reader of the audit chain: turns entries into rows of its own queue.
pub(crate) trait Consumer: Send + Sync + 'static {
    /// Its cursor's key in `notify_cursors`. Stable: another name starts
    /// again at the chain's head.
    fn name(&self) -> &'static str;

    /// The lease under which it takes entries (one gateway at a time).
    fn job(&self) -> Job;

    /// Queues what `entries` (oldest first, consecutive after the cursor)
    /// call for, inside `tx`. The cursor moves past them in the same
    /// transaction once this returns `Ok`; an error rolls back everything,
    /// and the same entries come again after a backoff.
    fn take<'a>(&'a self, tx: &'a mut WriteTx, entries: &'a [Entry]) -> TakeFuture<'a>;

    /// After a `take` committed: wake the workers that send.
    fn taken(&self) {}
}

/// A consumer's cursor (`None`: it never ran on this site).
///
/// # Errors
/// The read failed.
pub(crate) async fn cursor(e: &mut impl Exec, consumer: &str) -> Result<Option<i64>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT last_id FROM notify_cursors WHERE consumer = $1"
    )
    .bind(consumer)
    .fetch_optional(&mut *c)
    .await)
}

/// Places a consumer that never ran at the chain's head; answers its
/// cursor.
async fn start(db: &Store, consumer: &str) -> Result<i64, sqlx::Error> {
    let mut tx = db.write().await?;
    let head = crate::store::audit::last_id(&mut tx).await?;
    sql!(tx, |c| sqlx::query(
        "INSERT INTO notify_cursors (consumer, last_id) VALUES ($1, $2)
             ON CONFLICT (consumer) DO NOTHING"
    )
    .bind(consumer)
    .bind(head)
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    let at = cursor(&mut tx, consumer).await?.unwrap_or(head);
    tx.commit().await?;
    Ok(at)
}

/// One round: gives the consumer the entries after its cursor (at most
/// [`BATCH`]) and moves the cursor past them, in one transaction. Answers
/// how many entries were taken (0 when caught up, or when another gateway
/// moved the cursor meanwhile).
///
/// # Errors
/// The store failed or the consumer refused the batch; the cursor is
/// where it was.
pub(crate) async fn take_once(db: &Store, consumer: &dyn Consumer) -> Result<usize, sqlx::Error> {
    let name = consumer.name();
    let from = match cursor(&mut db.conn().await?, name).await? {
        Some(at) => at,
        None => start(db, name).await?,
    };
    let entries = crate::store::audit::after(db, from, BATCH).await?;
    let Some(last) = entries.last().map(|e| e.id) else {
        return Ok(0);
    };
    let mut tx = db.write().await?;
    // Compare and set: another taker that got here first made this batch
    // its own; this one rolls back.
    let moved = sql!(tx, |c| sqlx::query(
        "UPDATE notify_cursors SET last_id = $1 WHERE consumer = $2 AND last_id = $3"
    )
    .bind(last)
    .bind(name)
    .bind(from)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if moved != 1 {
        return Ok(0);
    }
    consumer.take(&mut tx, &entries).await?;
    tx.commit().await?;
    consumer.taken();
    Ok(entries.len())
}

/// A consumer's reading loop, until `stop`: a round after each commit on
/// this store (and each [`POLL`]), while this gateway holds the
/// consumer's lease; backoff while rounds fail.
pub(crate) async fn run(
    db: Store,
    lease: Arc<dyn Lease>,
    consumer: Arc<dyn Consumer>,
    stop: CancellationToken,
) {
    let wake = db.committed();
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    loop {
        // Registered before the round reads, so a commit during it is not
        // missed.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let round = if lease.hold(consumer.job(), LEASE_TTL).await {
            take_once(&db, &*consumer).await
        } else {
            Ok(0)
        };
        let wait = match round {
            Ok(n) => {
                if failing {
                    tracing::info!(consumer = consumer.name(), "audit entries taken again");
                    failing = false;
                }
                backoff = BACKOFF_MIN;
                if n >= BATCH as usize {
                    continue;
                }
                POLL
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(consumer = consumer.name(), error = %e, "cannot take audit entries; retrying (they wait in the chain)");
                    failing = true;
                }
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                // No early wake: a failing round waits its backoff.
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(w) => {}
                }
                continue;
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = &mut woken => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests;
