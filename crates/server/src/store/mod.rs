//! The store layer: one handle ([`Store`]) over the site's database, on one
//! of two engines.
//!
//! - **SQLite** (embedded default): a SQLCipher file in the data directory,
//!   encrypted as a whole ([`sqlite`]).
//! - **PostgreSQL** (larger sites): a server the operator runs
//!   ([`postgres`]); secrets are encrypted by the domains themselves under
//!   the key hierarchy, on both engines (see `docs/security.md`).
//!
//! Domains own their tables and are the only code with SQL for them (the
//! owner of each table is listed in `ARCHITECTURE.md`). They write SQL once,
//! in the dialect both engines share (`$1` placeholders, `ON CONFLICT`,
//! 64-bit integers, no `rowid`), and run it through [`sql!`], which compiles
//! the same statement for each engine's connection type. Where the engines
//! differ (JSON functions), the domain picks the text by [`Exec::engine`].
//!
//! Every audited change has one shape:
//!
//! ```text
//! let mut w = store.write().await?;   // SQLite: BEGIN IMMEDIATE; PostgreSQL: a savepoint in a batch holding the write lock
//! …domain writes through `sql!(w, …)`…
//! w.audit(AuditEvent::new(actor, AuditAction::UserCreate, &name)).await?;
//! w.commit().await?;
//! ```
//!
//! and an entry that must exist even when the action fails is written with
//! [`Store::audit_now`] (its own transaction).
//!
//! On PostgreSQL the writers of one gateway share a transaction, each in a
//! savepoint of its own, so that one COMMIT (one WAL flush) settles many of
//! them ([`group`]); a writer's `commit()` still returns only once its
//! writes are durable.

pub(crate) mod audit;
pub(crate) mod group;
pub mod migrate;
pub(crate) mod migrations;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use sqlx::{PgPool, SqlitePool};

pub(crate) use audit::{AuditAction, AuditEvent};
/// A database URL as it may be shown (its password replaced).
pub use postgres::redacted as redacted_url;
pub use sqlite::wait_for_workers as wait_for_sqlite_workers;
#[cfg(test)]
#[allow(
    unused_imports,
    reason = "TRANSITIONAL: for tests not yet on `tests::engines`"
)]
pub(crate) use sqlite::{open, open_encrypted};

/// Where a site's database is.
#[derive(Clone, Debug)]
pub(crate) enum Location<'a> {
    /// The embedded SQLCipher file, encrypted with the keyring's database
    /// key; `rekey`: re-encrypt it now if a database key rotation waits
    /// (the gateway at start-up, when nothing else has the file open).
    Sqlite {
        path: std::path::PathBuf,
        keys: &'a crate::keys::Keyring,
        rekey: bool,
    },
    /// A PostgreSQL database (`postgres://…`).
    Postgres { url: &'a str, max_connections: u32 },
}

/// Opens the site's database and brings its schema up to `schema` (every
/// domain's, `crate::schema::SCHEMA`). A SQLite file re-keyed by this open
/// gets its `keys-rekey` audit entry.
///
/// # Errors
/// The database cannot be opened, decrypted, reached or migrated.
pub(crate) async fn open_site(
    at: Location<'_>,
    schema: migrations::Schema,
) -> Result<Store, StoreError> {
    match at {
        Location::Sqlite { path, keys, rekey } => {
            let (pool, rekeyed) = sqlite::open_site(&path, keys, rekey, schema).await?;
            let store = Store::sqlite(pool);
            if rekeyed {
                store
                    .audit_or_log(AuditEvent::new(
                        "(gateway start)",
                        AuditAction::KeysRekey,
                        "database",
                    ))
                    .await;
            }
            Ok(store)
        }
        Location::Postgres {
            url,
            max_connections,
        } => Ok(Store::postgres(
            postgres::open(url, max_connections, schema).await?,
        )),
    }
}

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// SQLCipher could not decrypt the file with the key given.
    #[error(
        "the database {path} does not open with this site's database key: the keyring or root key belongs to another site, or the file is not a Jumpgate database"
    )]
    WrongKey { path: String },
    #[error("converting the unencrypted database {path}: {cause}")]
    Convert { path: String, cause: std::io::Error },
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("{path}: {cause}")]
    File { path: String, cause: std::io::Error },
    #[error(
        "the database at {path} was written by a newer Jumpgate (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    /// The PostgreSQL URL is not one this gateway can use.
    #[error("database URL: {0}")]
    Url(String),
    /// The PostgreSQL server could not be reached or refused the login.
    #[error("cannot connect to the PostgreSQL database {target}: {cause}")]
    Connect { target: String, cause: sqlx::Error },
}

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The site's database. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Woken after every commit, so readers of the audit chain after a
    /// cursor (`notify`) see new entries at once instead of at their next
    /// poll.
    committed: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Clone)]
enum Db {
    /// The pool, the gate its writers pass one at a time, and its
    /// background checkpoints.
    Sqlite(
        SqlitePool,
        std::sync::Arc<WriteGate>,
        std::sync::Arc<sqlite::Checkpointer>,
    ),
    /// The pool, and the batches its write transactions share.
    Postgres(PgPool, std::sync::Arc<group::Batcher>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine())
            .finish()
    }
}

/// A constant of this file: the key of PostgreSQL's advisory lock that
/// serialises writers (what SQLite's single writer gives for free).
const PG_WRITE_LOCK: i64 = 0x6a75_6d70_6761_7465; // "jumpgate"

/// SQLite's writer: one connection kept for writes, used by one writer at
/// a time, in the order they asked.
///
/// SQLite admits one writer. Writers on pooled connections meet on its lock:
/// a second `BEGIN IMMEDIATE` gets `SQLITE_BUSY`, and its busy handler
/// sleeps and retries (1, 2, 5, 10 ms …), so a writer arriving just after
/// another waits for the sleep, not for the commit; and a connection that
/// writes after another drops its page cache (SQLCipher then decrypts the
/// pages again). Here writers queue for the one connection, each starts the
/// moment the one before it ends, and that connection's cache stays warm.
/// Readers keep the pool (WAL: they never wait for the writer); writers
/// from other processes (`jumpgate admin`) are still kept apart by SQLite's
/// lock and its busy timeout.
pub(crate) struct WriteGate {
    writer: std::sync::Arc<tokio::sync::Mutex<Writer>>,
    options: std::sync::Arc<sqlx::sqlite::SqliteConnectOptions>,
    /// How long a writer waits for its turn: as long as SQLite's busy
    /// timeout, so that a writer nested inside another (a bug) fails as it
    /// would on SQLite's lock instead of waiting forever.
    wait: std::time::Duration,
}

/// The writer's connection (made at the first write) and whether a
/// transaction is open on it.
#[derive(Default)]
struct Writer {
    conn: Option<sqlx::SqliteConnection>,
    in_transaction: bool,
}

impl Writer {
    /// Ends a transaction left open. When the rollback fails (a commit
    /// cancelled half-way may have ended it already), the connection is
    /// closed instead, which ends whatever it had open, and the next turn
    /// makes a new one.
    async fn roll_back(&mut self) {
        if !std::mem::take(&mut self.in_transaction) {
            return;
        }
        let Some(c) = self.conn.as_mut() else { return };
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *c).await {
            tracing::debug!(error = %e, "the writer's rollback failed; its connection is closed instead");
            self.conn = None;
        }
    }
}

impl WriteGate {
    fn new(pool: &SqlitePool, wait: std::time::Duration) -> Self {
        Self {
            writer: std::sync::Arc::default(),
            options: pool.connect_options(),
            wait,
        }
    }

    /// Waits for the writer's connection, ready for a new statement.
    async fn turn(&self) -> Result<Turn, sqlx::Error> {
        let mut w = tokio::time::timeout(self.wait, self.writer.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        // A writer that ended without its rollback having run.
        w.roll_back().await;
        if w.conn.is_none() {
            let c =
                <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&self.options).await?;
            w.conn = Some(c);
        }
        Ok(Turn(Some(w)))
    }

    async fn close(&self) {
        let taken = self.writer.lock().await.conn.take();
        if let Some(c) = taken
            && let Err(e) = sqlx::Connection::close(c).await
        {
            tracing::warn!(error = %e, "cannot close the database's writer connection");
        }
    }
}

/// A writer's turn on SQLite's writer connection (see [`WriteGate`]).
/// Given back when dropped; a transaction left open is rolled back first.
pub(crate) struct Turn(Option<tokio::sync::OwnedMutexGuard<Writer>>);

impl Turn {
    fn writer(&mut self) -> &mut Writer {
        self.0
            .as_mut()
            .expect("a turn holds the writer until dropped")
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.writer()
            .conn
            .as_mut()
            .expect("the writer's connection is made before its turn is given")
    }

    async fn execute(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(statement).execute(self.conn()).await.map(drop)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(mut w) = self.0.take() else { return };
        if !w.in_transaction {
            return;
        }
        // Rolled back now, before the next writer's turn (which would
        // otherwise do it); without a runtime, the next turn does.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { w.roll_back().await });
        }
    }
}

impl Store {
    pub(crate) fn sqlite(pool: SqlitePool) -> Self {
        Self::sqlite_with_gate(pool, sqlite::BUSY_TIMEOUT)
    }

    /// [`Store::sqlite`] whose writers wait `wait` at most for their turn.
    pub(crate) fn sqlite_with_gate(pool: SqlitePool, wait: std::time::Duration) -> Self {
        let gate = std::sync::Arc::new(WriteGate::new(&pool, wait));
        let checkpoints = std::sync::Arc::new(sqlite::Checkpointer::start(&pool));
        Self {
            db: Db::Sqlite(pool, gate, checkpoints),
            committed: std::sync::Arc::default(),
        }
    }

    pub(crate) fn postgres(pool: PgPool) -> Self {
        Self {
            db: Db::Postgres(pool.clone(), std::sync::Arc::new(group::Batcher::new(pool))),
            committed: std::sync::Arc::default(),
        }
    }

    pub fn engine(&self) -> Engine {
        match self.db {
            Db::Sqlite(..) => Engine::Sqlite,
            Db::Postgres(..) => Engine::Postgres,
        }
    }

    /// Begins a write transaction. Writers are serialised on both engines
    /// (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: one writer at a time on a
    /// batch's transaction, which holds a transaction-scoped advisory lock:
    /// see [`group`]), so a domain's read-check-write inside one
    /// transaction sees no concurrent writer, and the audit chain's head is
    /// read and extended by one writer at a time.
    ///
    /// # Errors
    /// The database could not begin the transaction.
    pub(crate) async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        match &self.db {
            Db::Sqlite(_, gate, _) => {
                let mut turn = gate.turn().await?;
                turn.execute("BEGIN IMMEDIATE").await?;
                turn.writer().in_transaction = true;
                Ok(WriteTx {
                    tx: WriteKind::Writer(turn),
                    head: None,
                    committed: self.committed.clone(),
                })
            }
            Db::Postgres(_, batches) => Ok(WriteTx {
                tx: WriteKind::Batched(batches.begin().await?),
                head: None,
                committed: self.committed.clone(),
            }),
        }
    }

    /// A connection for one statement that writes but needs no audit entry
    /// (a session's progress, an agent's last contact). On SQLite it is the
    /// writer connection, for a turn among the writers ([`WriteGate`])
    /// instead of a meeting with them on SQLite's lock; on PostgreSQL a
    /// pooled connection, as [`Store::conn`] gives.
    ///
    /// # Errors
    /// No connection could be had.
    pub(crate) async fn write_conn(&self) -> Result<WriteConn, sqlx::Error> {
        Ok(match &self.db {
            Db::Sqlite(_, gate, _) => WriteConn::Writer(gate.turn().await?),
            Db::Postgres(p, _) => WriteConn::Pooled(PoolConn::Postgres(p.acquire().await?)),
        })
    }

    /// A write transaction of its own, never shared with other writers
    /// (on SQLite the same as [`Store::write`]): for bulk work such as
    /// `migrate-store`'s copy, which would hold up a batch.
    ///
    /// # Errors
    /// The database could not begin the transaction.
    pub(crate) async fn write_alone(&self) -> Result<WriteTx, sqlx::Error> {
        match &self.db {
            Db::Sqlite(..) => self.write().await,
            Db::Postgres(p, _) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(WriteTx {
                    tx: WriteKind::Own(tx),
                    head: None,
                    committed: self.committed.clone(),
                })
            }
        }
    }

    /// Woken after each commit of a write transaction (on any of this
    /// store's handles): what a reader of the audit chain waits on between
    /// polls. A wake-up is a hint, never a guarantee (another process may
    /// write), so such readers still poll.
    pub(crate) fn committed(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// Writers in the batch now gathering (PostgreSQL; tests).
    #[cfg(test)]
    pub(crate) fn batch_members(&self) -> usize {
        match &self.db {
            Db::Sqlite(..) => 0,
            Db::Postgres(_, b) => b.open_members(),
        }
    }

    /// A read-only snapshot: every read in it sees the same state (for
    /// reads that must agree with each other, such as verifying the audit
    /// chain while retention runs). Dropped or [`ReadTx::end`]ed, it
    /// changes nothing.
    ///
    /// # Errors
    /// The database could not begin the transaction.
    pub(crate) async fn snapshot(&self) -> Result<ReadTx, sqlx::Error> {
        match &self.db {
            Db::Sqlite(p, ..) => Ok(ReadTx {
                tx: Tx::Sqlite(p.begin().await?),
            }),
            Db::Postgres(p, _) => Ok(ReadTx {
                tx: Tx::Postgres(
                    p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .await?,
                ),
            }),
        }
    }

    /// A pooled connection for reads (and single-statement writes that
    /// need no audit entry).
    ///
    /// # Errors
    /// No connection could be had.
    pub(crate) async fn conn(&self) -> Result<PoolConn, sqlx::Error> {
        Ok(match &self.db {
            Db::Sqlite(p, ..) => PoolConn::Sqlite(p.acquire().await?),
            Db::Postgres(p, _) => PoolConn::Postgres(p.acquire().await?),
        })
    }

    /// Writes an audit entry in its own transaction: for entries that must
    /// exist whether or not the action they describe succeeded (a failed
    /// login, a denial, a session that ended).
    ///
    /// # Errors
    /// The write failed (callers that go on anyway use
    /// [`Store::audit_or_log`]).
    pub(crate) async fn audit_now(&self, event: AuditEvent) -> Result<(), sqlx::Error> {
        let r = async {
            let mut w = self.write().await?;
            w.audit_ref(&event).await?;
            w.commit().await
        }
        .await;
        if let Err(e) = &r {
            tracing::error!(error = %e, actor = %event.actor, action = %event.action.as_str(), target = %event.target, "could not record an audit event");
        }
        r
    }

    /// [`Store::audit_now`] for paths that end the same way whether or not
    /// the write succeeds (a denial is refused anyway; a closed session is
    /// closed): the failure is logged.
    pub(crate) async fn audit_or_log(&self, event: AuditEvent) {
        let _ = self.audit_now(event).await;
    }

    /// Stops SQLite's background checkpoints (the gateway's ordered
    /// shutdown, before its last full checkpoint); nothing on PostgreSQL.
    pub(crate) async fn stop_checkpoints(&self) {
        if let Db::Sqlite(_, _, c) = &self.db {
            c.stop().await;
        }
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(p, gate, checkpoints) => {
                checkpoints.stop().await;
                gate.close().await;
                p.close().await;
            }
            Db::Postgres(p, _) => p.close().await,
        }
    }

    /// Runs one statement as it is, outside every domain's rules: for tests
    /// that play an attacker with database access (and tools). Returns the
    /// rows affected.
    ///
    /// # Errors
    /// The statement failed.
    #[doc(hidden)]
    pub async fn execute_unchecked(&self, statement: &'static str) -> Result<u64, sqlx::Error> {
        let mut c = self.conn().await?;
        sql!(c, |c| sqlx::query(statement)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
    }

    /// The SQLite pool, for the engine-specific work of [`sqlite`] (re-key,
    /// integrity checks). `None` on PostgreSQL.
    pub(crate) fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite(p, ..) => Some(p),
            Db::Postgres(..) => None,
        }
    }
}

/// A connection of either engine, as [`sql!`] hands it to a statement.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

/// Something statements run on: a write transaction, a snapshot or a
/// pooled connection.
pub(crate) trait Exec: Send {
    fn exec_conn(&mut self) -> Conn<'_>;
    #[allow(dead_code, reason = "for domains whose SQL differs per engine")]
    fn engine(&self) -> Engine;
}

/// Runs one statement (or a few) on whichever engine `$e` is on: the body
/// is compiled once per engine with `$c` bound to that engine's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`; pass it as `&mut *$c`).
///
/// ```ignore
/// let n: i64 = sql!(w, |c| sqlx::query_scalar("SELECT COUNT(*) FROM users")
///     .fetch_one(&mut *c).await)?;
/// // `execute` answers differ per engine: keep the count only.
/// let gone = sql!(w, |c| sqlx::query("DELETE FROM t WHERE id = $1").bind(id)
///     .execute(&mut *c).await.map(|r| r.rows_affected()))?;
/// ```
macro_rules! sql {
    ($e:expr, |$c:ident| $body:expr) => {
        match {
            #[allow(unused_imports)]
            use $crate::store::Exec as _;
            ($e).exec_conn()
        } {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use sql;

/// A read-only snapshot's transaction, on either engine.
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(&mut *t),
            Tx::Postgres(t) => Conn::Postgres(&mut *t),
        }
    }

    #[allow(dead_code, reason = "for domains whose SQL differs per engine")]
    fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }
}

/// A write transaction (see [`Store::write`]). Dropped without
/// [`WriteTx::commit`], it rolls back: the action and its audit entries
/// commit together or not at all.
pub(crate) struct WriteTx {
    tx: WriteKind,
    /// The chain's head after this transaction's last entry (outside a
    /// batch, which carries its own).
    head: group::Head,
    /// The store's commit signal ([`Store::committed`]).
    committed: std::sync::Arc<tokio::sync::Notify>,
}

enum WriteKind {
    /// A transaction on SQLite's writer connection.
    Writer(Turn),
    /// A transaction of its own on PostgreSQL ([`Store::write_alone`]).
    Own(sqlx::Transaction<'static, sqlx::Postgres>),
    /// A savepoint in a batch (PostgreSQL).
    Batched(group::Member),
}

impl WriteTx {
    /// Appends an audit entry to the chain inside this transaction.
    ///
    /// # Errors
    /// The write failed (the transaction should be dropped).
    pub(crate) async fn audit(&mut self, event: AuditEvent) -> Result<(), sqlx::Error> {
        self.audit_ref(&event).await
    }

    async fn audit_ref(&mut self, event: &AuditEvent) -> Result<(), sqlx::Error> {
        match &mut self.tx {
            WriteKind::Writer(t) => {
                audit::append(&mut Conn::Sqlite(t.conn()), &mut self.head, event).await
            }
            WriteKind::Own(tx) => {
                audit::append(&mut Conn::Postgres(tx), &mut self.head, event).await
            }
            WriteKind::Batched(m) => {
                let (mut conn, head) = m.parts();
                audit::append(&mut conn, head, event).await
            }
        }
    }

    /// Returns once the transaction is durable (on PostgreSQL, once the
    /// batch it is part of has committed).
    ///
    /// # Errors
    /// The commit failed: nothing of the transaction was written.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            WriteKind::Writer(mut t) => {
                // A failed COMMIT leaves the transaction open: the turn's
                // drop rolls it back.
                t.execute("COMMIT").await?;
                t.writer().in_transaction = false;
            }
            WriteKind::Own(t) => t.commit().await?,
            WriteKind::Batched(m) => m.commit().await?,
        }
        self.committed.notify_waiters();
        Ok(())
    }
}

impl Exec for WriteTx {
    fn exec_conn(&mut self) -> Conn<'_> {
        match &mut self.tx {
            WriteKind::Writer(t) => Conn::Sqlite(t.conn()),
            WriteKind::Own(tx) => Conn::Postgres(tx),
            WriteKind::Batched(m) => m.parts().0,
        }
    }
    fn engine(&self) -> Engine {
        match &self.tx {
            WriteKind::Writer(_) => Engine::Sqlite,
            WriteKind::Own(_) | WriteKind::Batched(_) => Engine::Postgres,
        }
    }
}

/// A read-only snapshot (see [`Store::snapshot`]).
pub(crate) struct ReadTx {
    tx: Tx,
}

impl ReadTx {
    /// Ends the snapshot (a rollback: it wrote nothing).
    ///
    /// # Errors
    /// The database failed to end it.
    pub(crate) async fn end(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }
}

impl Exec for ReadTx {
    fn exec_conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }
    fn engine(&self) -> Engine {
        self.tx.engine()
    }
}

/// A connection for a single-statement write (see [`Store::write_conn`]).
pub(crate) enum WriteConn {
    /// SQLite's writer connection, for this statement's turn.
    Writer(Turn),
    Pooled(PoolConn),
}

impl Exec for WriteConn {
    fn exec_conn(&mut self) -> Conn<'_> {
        match self {
            WriteConn::Writer(t) => Conn::Sqlite(t.conn()),
            WriteConn::Pooled(c) => c.exec_conn(),
        }
    }
    fn engine(&self) -> Engine {
        match self {
            WriteConn::Writer(_) => Engine::Sqlite,
            WriteConn::Pooled(c) => c.engine(),
        }
    }
}

/// A pooled connection (see [`Store::conn`]).
pub(crate) enum PoolConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl Exec for PoolConn {
    fn exec_conn(&mut self) -> Conn<'_> {
        match self {
            PoolConn::Sqlite(c) => Conn::Sqlite(&mut *c),
            PoolConn::Postgres(c) => Conn::Postgres(&mut *c),
        }
    }
    fn engine(&self) -> Engine {
        match self {
            PoolConn::Sqlite(_) => Engine::Sqlite,
            PoolConn::Postgres(_) => Engine::Postgres,
        }
    }
}

impl Exec for Conn<'_> {
    fn exec_conn(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
    fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tls_tests;
