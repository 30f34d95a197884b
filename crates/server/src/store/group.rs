//! Group commit of write transactions on PostgreSQL.
//!
//! Writers are serialised (the audit chain is one line, and a domain's
//! read-check-write sees no concurrent writer), and on PostgreSQL the
//! serialising lock is transaction-scoped: held until COMMIT has flushed
//! the WAL. One writer per transaction would thus pay one flush each, in
//! turn, with no two flushes shared.
//!
//! Instead the writers of this gateway share a **batch**: one transaction
//! on one pooled connection that took the write lock
//! (`pg_advisory_xact_lock`) when it began, so several gateways (and
//! `jumpgate admin`) still write one at a time, batch by batch. Each writer
//! ([`Member`]) has the connection to itself from [`Batcher::begin`] to its
//! commit, inside a savepoint:
//!
//! - its statements run as they would in a transaction of its own, after
//!   (and seeing) those of the writers before it in the batch;
//! - a failing statement, or a writer dropped without commit, rolls back to
//!   its savepoint: its own writes and audit entries go, the others' stay;
//! - its commit releases the savepoint, hands the connection to the next
//!   writer and waits: the last writer of the batch to finish leaves the
//!   batch to a task that COMMITs it (one flush for all of them) and tells
//!   every writer that committed the outcome. A writer's commit returns
//!   `Ok` only once the batch's COMMIT succeeded; a failed COMMIT is an
//!   error for each of them (and none of their writes happened).
//!
//! While a batch commits, the next one gathers the writers that arrive
//! meanwhile: it takes a connection and waits on the write lock, which it
//! gets once the COMMIT before it is durable. The chain's head is read once
//! per batch and then carried from entry to entry (the lock keeps every
//! other writer out).

use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{OwnedMutexGuard, watch};

use super::{Conn, PG_WRITE_LOCK};

/// Most writers one batch admits. Each is a subtransaction, and PostgreSQL
/// keeps up to 64 of a transaction's subtransaction ids in shared memory
/// before every other session's snapshots get slower; a bound also caps
/// how long the first writer of a batch waits for the last.
pub(crate) const MAX_MEMBERS: usize = 32;

/// The chain's head as a batch has written it: `(id, hash)`.
pub(crate) type Head = Option<(i64, Vec<u8>)>;

/// The batches of one store (one per gateway process).
pub(crate) struct Batcher {
    pool: PgPool,
    /// The batch new writers join, until it is full or committing.
    open: Mutex<Option<Arc<Batch>>>,
}

struct Batch {
    /// The batch's connection and transaction: held by one writer at a time.
    slot: Arc<tokio::sync::Mutex<Slot>>,
    members: Mutex<Members>,
    /// The COMMIT's outcome, once known.
    outcome: watch::Sender<Option<Result<(), String>>>,
}

#[derive(Default)]
struct Members {
    /// Writers that joined.
    joined: usize,
    /// Writers that joined and have not finished (committed or given up).
    active: usize,
    /// No writer may join any more (the batch commits, or it broke).
    closed: bool,
}

#[derive(Default)]
struct Slot {
    /// `None` until the first writer began the transaction.
    conn: Option<PoolConnection<Postgres>>,
    /// The transaction cannot be used any more: why.
    failed: Option<String>,
    /// The writer before left its savepoint unreleased: roll back to it
    /// before anything else.
    rollback: bool,
    /// The chain's head as written by the released writers and by the
    /// writer holding the slot.
    head: Head,
    /// The head as of the savepoint (restored by a rollback to it).
    head_at_savepoint: Head,
}

/// Begins the batch's transaction: the write lock, then the first writer's
/// savepoint, in one round trip.
fn begin_sql() -> String {
    format!("BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK}); SAVEPOINT w")
}
/// A writer's commit: its savepoint released, the next writer's set.
const RELEASE: &str = "RELEASE SAVEPOINT w; SAVEPOINT w";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT w";
/// `SELECT 1` first: in a transaction that is in error, PostgreSQL answers
/// a COMMIT with a rollback and no error; the `SELECT` fails instead (and
/// the rest of the string is not run).
const COMMIT: &str = "SELECT 1; COMMIT";
const ROLLBACK_COMMIT: &str = "ROLLBACK TO SAVEPOINT w; SELECT 1; COMMIT";

fn batch_error(why: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the write transaction's batch failed: {why}"
    )))
}

impl Batcher {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            open: Mutex::new(None),
        }
    }

    /// The open batch, joined (a new one when there is none, or it is full
    /// or committing).
    fn join(&self) -> Arc<Batch> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = open.as_ref() {
            let mut m = b.members.lock().unwrap_or_else(|p| p.into_inner());
            if !m.closed && m.joined < MAX_MEMBERS {
                m.joined += 1;
                m.active += 1;
                return Arc::clone(b);
            }
        }
        let b = Arc::new(Batch {
            slot: Arc::new(tokio::sync::Mutex::new(Slot::default())),
            members: Mutex::new(Members {
                joined: 1,
                active: 1,
                closed: false,
            }),
            outcome: watch::Sender::new(None),
        });
        *open = Some(Arc::clone(&b));
        b
    }

    /// Joins a batch and waits for its connection: the caller's statements
    /// run from now on inside its own savepoint.
    ///
    /// # Errors
    /// The batch's transaction could not begin or is broken.
    pub(crate) async fn begin(&self) -> Result<Member, sqlx::Error> {
        // A member from the start: dropped at any await below, it still
        // counts itself out of the batch.
        let mut m = Member {
            batch: self.join(),
            slot: None,
            released: false,
            finished: false,
        };
        let mut slot = Arc::clone(&m.batch.slot).lock_owned().await;
        let ready = prepare(&self.pool, &mut slot).await;
        m.slot = Some(slot);
        if ready.is_err() {
            // Broken: no writer joins it any more.
            m.batch
                .members
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .closed = true;
        }
        ready.map(|()| m)
    }

    /// Writers in the open batch (tests wait on it to arrange a batch).
    #[cfg(test)]
    pub(crate) fn open_members(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.as_ref().map_or(0, |b| {
            let m = b.members.lock().unwrap_or_else(|p| p.into_inner());
            if m.closed { 0 } else { m.active }
        })
    }
}

/// Makes the batch's transaction ready for the next writer.
async fn prepare(pool: &PgPool, slot: &mut Slot) -> Result<(), sqlx::Error> {
    if let Some(why) = &slot.failed {
        return Err(batch_error(why));
    }
    if slot.conn.is_none() {
        let began = async {
            let mut c = pool.acquire().await?;
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(begin_sql()))
                .execute(&mut *c)
                .await
            {
                // Not back into the pool half-begun.
                c.close_on_drop();
                return Err(e);
            }
            Ok(c)
        }
        .await;
        match began {
            Ok(c) => slot.conn = Some(c),
            Err(e) => {
                slot.failed = Some(e.to_string());
                return Err(e);
            }
        }
    }
    if slot.rollback {
        let conn = slot.conn.as_mut().expect("begun above");
        if let Err(e) = sqlx::raw_sql(ROLLBACK).execute(&mut **conn).await {
            slot.failed = Some(e.to_string());
            return Err(e);
        }
        slot.rollback = false;
        slot.head = slot.head_at_savepoint.clone();
    }
    Ok(())
}

/// One writer in a batch (see the module doc). Dropped without
/// [`Member::commit`], its writes are rolled back to its savepoint.
pub(crate) struct Member {
    batch: Arc<Batch>,
    /// The batch's connection, while this writer holds it.
    slot: Option<OwnedMutexGuard<Slot>>,
    /// Its savepoint was released: its writes are the batch's.
    released: bool,
    finished: bool,
}

impl Member {
    /// The batch's connection, and the chain head as the batch has it.
    pub(crate) fn parts(&mut self) -> (Conn<'_>, &mut Head) {
        let slot = &mut **self.slot.as_mut().expect("held until commit");
        let conn = slot
            .conn
            .as_mut()
            .expect("begun before the member is handed out");
        (Conn::Postgres(conn), &mut slot.head)
    }

    /// Releases this writer's savepoint into the batch and waits for the
    /// batch's COMMIT.
    ///
    /// # Errors
    /// The savepoint could not be released (this writer's writes are
    /// rolled back), or the batch's COMMIT failed (none of its writes
    /// happened).
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        {
            let slot = &mut **self.slot.as_mut().expect("held until commit");
            let conn = slot.conn.as_mut().expect("begun");
            sqlx::raw_sql(RELEASE).execute(&mut **conn).await?;
            slot.head_at_savepoint = slot.head.clone();
            self.released = true;
        }
        let mut outcome = self.batch.outcome.subscribe();
        self.finish();
        let done = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| batch_error("its commit was abandoned"))?;
        match &*done {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(batch_error(why)),
            None => unreachable!("waited for Some"),
        }
    }

    /// Leaves the batch: hands the connection on (marked for a rollback to
    /// the savepoint unless it was released) and, as the last writer,
    /// starts the batch's COMMIT.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(mut slot) = self.slot.take()
            && !self.released
        {
            slot.rollback = true;
        }
        let last = {
            let mut m = self.batch.members.lock().unwrap_or_else(|p| p.into_inner());
            m.active -= 1;
            if m.active == 0 {
                // From now on no writer joins: the COMMIT starts once.
                m.closed = true;
            }
            m.active == 0
        };
        if last {
            let batch = Arc::clone(&self.batch);
            // A task of its own: the COMMIT completes (and every writer
            // learns its outcome) whatever happens to this writer's future.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(commit_batch(batch));
                }
                // No runtime (process exit): the connection is dropped,
                // which rolls the transaction back; writers waiting learn
                // that it was abandoned.
                Err(_) => drop(batch),
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.finish();
    }
}

/// COMMITs a batch whose writers have all finished, and tells them.
async fn commit_batch(batch: Arc<Batch>) {
    let mut guard = batch.slot.lock().await;
    let slot = &mut *guard;
    let sql = if slot.rollback {
        ROLLBACK_COMMIT
    } else {
        COMMIT
    };
    let outcome = match (&slot.failed, slot.conn.as_mut()) {
        (Some(why), _) => Err(why.clone()),
        // No writer began it.
        (None, None) => Ok(()),
        (None, Some(conn)) => sqlx::raw_sql(sql)
            .execute(&mut **conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    if let Some(mut conn) = slot.conn.take() {
        if outcome.is_err() {
            // Its transaction's state is unknown: not back into the pool.
            conn.close_on_drop();
        }
        drop(conn);
    }
    if let Err(why) = &outcome {
        tracing::error!(error = %why, "a batch of write transactions failed to commit");
    }
    batch.outcome.send_replace(Some(outcome));
}
