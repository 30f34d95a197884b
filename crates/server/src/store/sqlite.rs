//! The embedded engine: SQLCipher (encrypted SQLite) connection pool,
//! conversion of unencrypted files, re-keying and migrations.
//!
//! The database is SQLCipher: every page of the file (and of its WAL) is
//! encrypted with the database data key from the keyring (`keys`), given as
//! a raw key so no KDF runs per connection. A database written before
//! encryption is converted in place on first open ([`open_encrypted`]).
//!
//! Migrations are the registry's SQLite versions (`migrations::Schema`,
//! handed in by the caller), each applied inside a transaction;
//! `schema_version` records how far a database has come.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::{ConnectOptions, SqlitePool};

use crate::keys::DataKey;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::migrations::Schema;
use super::{Engine, StoreError};

/// Opens with a fixed test key (unit tests of other modules).
#[cfg(test)]
pub(crate) async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    open_encrypted(path, &crate::keys::DataKey::for_tests(7)).await
}

/// [`open_with_key`] with every domain's schema (tests).
#[cfg(test)]
pub(crate) async fn open_encrypted(path: &Path, key: &DataKey) -> Result<SqlitePool, StoreError> {
    open_with_key(path, key, crate::schema::SCHEMA).await
}

/// How sqlx names a SQLite connection's worker thread
/// (`sqlx-sqlite-worker-N`), as Linux keeps it (15 bytes).
const WORKER_THREAD: &str = "sqlx-sqlite-wor";

/// The sqlx SQLite worker threads of this process still running (Linux;
/// elsewhere none are seen).
fn worker_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|name| name.starts_with(WORKER_THREAD))
        .count()
}

/// Waits, at most `limit`, for every sqlx SQLite worker thread to end: for
/// the very end of the process, once its runtime is gone. A connection
/// dropped without being closed (a task cut short by the runtime's end, a
/// connection sqlx was still opening when its pool closed) is closed by
/// its worker thread after the fact; SQLCipher frees its private heap at
/// `exit()`, and a worker still inside `sqlite3_close` then touches freed
/// memory (SIGSEGV after the work is done). A worker that stays (a
/// connection nobody dropped) is idle and harmless: the wait ends at
/// `limit`. Returns how many were still running then.
pub fn wait_for_workers(limit: Duration) -> usize {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = worker_threads();
        if left == 0 || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first 16 bytes of an unencrypted SQLite file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Opens (creating if needed) the database encrypted with `key` and brings
/// its schema up to `schema`. An unencrypted database (from a Jumpgate
/// before encryption) is first converted to an encrypted one.
///
/// # Errors
/// The key does not open the file, the file cannot be opened, or a
/// migration failed (nothing is half-applied).
pub(crate) async fn open_with_key(
    path: &Path,
    key: &DataKey,
    schema: Schema,
) -> Result<SqlitePool, StoreError> {
    quiet_sqlcipher().await;
    let mut head = [0u8; 16];
    let plain = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == PLAIN_HEADER;
    if plain {
        encrypt_plain(path, key).await?;
    }
    private_files(path)?;
    let pool = connect(path, key).await.map_err(|e| wrong_key(e, path))?;
    migrate(&pool, path, schema).await.map_err(|e| match e {
        StoreError::Sqlx(e) => wrong_key(e, path),
        other => other,
    })?;
    Ok(pool)
}

/// The database and its WAL and shared-memory files are the owner's only,
/// whatever the data directory's or the process's permissions: a new
/// database file is created 0600 (SQLite gives its WAL and shm files the
/// database file's mode), and existing ones wider than that are narrowed.
fn private_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |p: &Path, e: std::io::Error| StoreError::File {
        path: p.display().to_string(),
        cause: e,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(path, e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let p = Path::new(&name);
        let Ok(meta) = std::fs::metadata(p) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io(p, e))?;
        }
    }
    Ok(())
}

/// SQLCipher logs a failed HMAC check (a wrong key) to stderr; the error
/// returned says it clearly already. The log level is process-wide.
async fn quiet_sqlcipher() {
    let Ok(opts) = SqliteConnectOptions::from_str("sqlite::memory:") else {
        return;
    };
    if let Ok(mut c) = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await {
        let _ = sqlx::query("PRAGMA cipher_log_level = NONE")
            .execute(&mut c)
            .await;
        let _ = sqlx::Connection::close(c).await;
    }
}

/// SQLite code 26 (`SQLITE_NOTADB`): what SQLCipher answers for a wrong key.
fn wrong_key(e: sqlx::Error, path: &Path) -> StoreError {
    let notadb = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "26");
    if notadb {
        StoreError::WrongKey {
            path: path.display().to_string(),
        }
    } else {
        StoreError::Sqlx(e)
    }
}

/// Converts an unencrypted database to SQLCipher with `sqlcipher_export`,
/// into a new file that replaces the old one only once complete.
async fn encrypt_plain(path: &Path, key: &DataKey) -> Result<(), StoreError> {
    let convert = |cause| StoreError::Convert {
        path: path.display().to_string(),
        cause,
    };
    let tmp = path.with_extension("db.encrypting");
    let _ = std::fs::remove_file(&tmp);
    // `create_if_missing`: ATTACH creates the new file with the main
    // database's open flags.
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .disable_statement_logging();
    let mut c: sqlx::SqliteConnection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await?;
    let literal = key.sqlcipher_literal();
    // ATTACH's KEY takes the raw-key text without the outer quotes.
    let raw = literal.trim_matches('"').to_owned();
    let raw = zeroize::Zeroizing::new(raw);
    sqlx::query("ATTACH DATABASE ? AS encrypted KEY ?")
        .bind(tmp.display().to_string())
        .bind(raw.as_str())
        .execute(&mut c)
        .await?;
    sqlx::query("SELECT sqlcipher_export('encrypted')")
        .execute(&mut c)
        .await?;
    sqlx::query("DETACH DATABASE encrypted")
        .execute(&mut c)
        .await?;
    sqlx::Connection::close(c).await?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(convert)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
    std::fs::rename(&tmp, path).map_err(convert)?;
    tracing::info!(path = %path.display(), "encrypted the database (it was unencrypted)");
    Ok(())
}

/// Opens the site's database with the keyring's database key. After a
/// database rotation, `rekey` (the gateway at start-up, when nothing else
/// has the file open) re-encrypts the file with the next key first. A file
/// already re-encrypted by a start that crashed before the keyring said so
/// is recognised and the keyring completed. Returns the pool and whether the
/// file was re-keyed now (the caller audits it).
///
/// # Errors
/// Neither key opens the file; keys or database unusable.
pub(crate) async fn open_site(
    path: &Path,
    keys: &crate::keys::Keyring,
    rekey: bool,
    schema: Schema,
) -> Result<(SqlitePool, bool), StoreError> {
    let current = keys.database_key()?;
    match open_with_key(path, &current, schema).await {
        Ok(pool) => {
            let Some(next) = keys.database_key_next()?.filter(|_| rekey) else {
                return Ok((pool, false));
            };
            pool.close().await;
            let started = std::time::Instant::now();
            rekey_file(path, &current, &next).await?;
            keys.promote_database_key()?;
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "database re-encrypted with its new key"
            );
            let pool = open_with_key(path, &next, schema).await?;
            Ok((pool, true))
        }
        Err(StoreError::WrongKey { path: p }) => {
            let Some(next) = keys.database_key_next()? else {
                return Err(StoreError::WrongKey { path: p });
            };
            let pool = open_with_key(path, &next, schema).await?;
            keys.promote_database_key()?;
            Ok((pool, false))
        }
        Err(e) => Err(e),
    }
}

/// `PRAGMA rekey` on a single connection (nothing else may have the file
/// open). The rollback journal makes it all-or-nothing.
async fn rekey_file(path: &Path, old: &DataKey, new: &DataKey) -> Result<(), StoreError> {
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        .pragma("key", old.sqlcipher_literal().to_string())
        .filename(path)
        .disable_statement_logging();
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
    // WAL content goes back into the file, and the rekey runs under a
    // rollback journal.
    sqlx::query("PRAGMA journal_mode = DELETE")
        .execute(&mut c)
        .await?;
    let sql = zeroize::Zeroizing::new(format!("PRAGMA rekey = {}", &*new.sqlcipher_literal()));
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await?;
    sqlx::Connection::close(c).await?;
    Ok(())
}

/// How often [`Checkpointer`] copies the WAL back into the database file.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Bytes the WAL file is truncated to when SQLite starts it over.
const WAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// Checkpoints the WAL in the background, on a connection of its own,
/// every [`CHECKPOINT_EVERY`]: `PASSIVE`, so it never waits for readers or
/// holds up writers (they go on appending to the WAL meanwhile). The WAL
/// therefore holds about a second of writes (more while a long read keeps
/// its pages: the next checkpoint copies them). Stopped by [`Checkpointer::stop`]
/// (the gateway's ordered shutdown, before its last full checkpoint) or
/// when the last handle of its store is dropped.
pub(crate) struct Checkpointer {
    stop: tokio_util::sync::CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing the database `pool` opens (without a runtime,
    /// e.g. a store made outside one, nothing is started and SQLite's last
    /// connection checkpoints when it closes).
    pub(crate) fn start(pool: &SqlitePool) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(checkpoints(pool.connect_options(), stop.clone())));
        Self {
            stop,
            task: std::sync::Mutex::new(task),
        }
    }

    /// Stops checkpointing and waits for a checkpoint under way.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn checkpoints(
    options: std::sync::Arc<SqliteConnectOptions>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut conn: Option<sqlx::SqliteConnection> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        if conn.is_none() {
            match <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&*options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the database's checkpoint connection");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *c)
            .await
        {
            tracing::warn!(error = %e, "database checkpoint failed");
            conn = None;
        }
    }
    if let Some(c) = conn
        && let Err(e) = sqlx::Connection::close(c).await
    {
        tracing::debug!(error = %e, "cannot close the database's checkpoint connection");
    }
}

/// How long a writer waits for another to finish (SQLite's busy timeout,
/// and the store's own queue of writers: `super::WriteGate`).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(path: &Path, key: &DataKey) -> Result<SqlitePool, sqlx::Error> {
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        // sqlx logs every statement at debug level, the `PRAGMA key` it
        // runs on each new connection included: never.
        .disable_statement_logging()
        // SQLCipher needs the key before anything reads the file; sqlx
        // sends `key` first whatever the order here.
        .pragma("key", key.sqlcipher_literal().to_string())
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable across process crashes; FULL adds an fsync
        // per commit so that acknowledged writes survive power loss too.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // `jumpgate admin` writes while the server runs.
        .busy_timeout(BUSY_TIMEOUT)
        // No checkpoint inside a committing writer (SQLite's default runs
        // one in the commit that takes the WAL past 1000 pages, and every
        // writer queued behind it waits): [`Checkpointer`] does them in the
        // background. The WAL file is cut back to this size when it is
        // reused after a burst.
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
        // 256 KiB of page cache per pooled connection (SQLite's default is
        // 2 MiB): a gateway's working set is small, and its memory is what
        // bounds how many agents one machine holds.
        .pragma("cache_size", "-256");
    // SQLite has one writer at a time; more connections only add caches.
    SqlitePoolOptions::new()
        .max_connections(4)
        // An embedded file does not drop its connections: no ping (a round
        // trip to the connection's thread) before each use.
        .test_before_acquire(false)
        .connect_with(opts)
        .await
}

/// Starts a transaction that will write. SQLite cannot upgrade a deferred
/// (read) transaction to a write while another connection writes — it fails
/// at once with "database is locked" instead of waiting — so write
/// transactions take the write lock up front and wait for it.
pub(crate) async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

async fn migrate(pool: &SqlitePool, path: &Path, schema: Schema) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    let current = current.unwrap_or(0);
    let known = schema.latest(Engine::Sqlite);
    if current > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    for version in schema
        .versions(Engine::Sqlite)
        .iter()
        .skip(current as usize)
    {
        for sql in &version.sql {
            // The migrations are constants of the domains, not input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
            .bind(version.number)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let pool = open(&path).await.unwrap();
        sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('u', 'n', 'h', 'admin', 0)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let pool = open(&path).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(v, crate::schema::SCHEMA.latest(Engine::Sqlite));
    }

    /// Concurrent read-then-write transactions all succeed (they queue on
    /// the write lock instead of failing with "database is locked").
    #[tokio::test]
    async fn concurrent_write_transactions_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("j.db")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..32 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = begin_write(&pool).await?;
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await?;
                tokio::task::yield_now().await;
                sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?, ?, 'h', 'admin', ?)")
                    .bind(format!("u{i}"))
                    .bind(format!("user{i}"))
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 32);
    }

    /// Schema 6 on a database of schema 5: rows get the group of their
    /// endpoint as it is now (none when the endpoint is gone), audit entries
    /// about endpoints too, site-wide entries stay without; clashing user
    /// names are kept, the younger flagged, and no new clash can be made.
    #[tokio::test]
    async fn schema_8_back_fills_groups_and_flags_clashing_user_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let pool = connect(&path, &DataKey::for_tests(7)).await.unwrap();
        {
            let mut tx = begin_write(&pool).await.unwrap();
            sqlx::query("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                .execute(&mut *tx)
                .await
                .unwrap();
            for v in &crate::schema::SCHEMA.versions(Engine::Sqlite)[..5] {
                for sql in &v.sql {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                    .bind(v.number)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
                 VALUES ('ep_w', 'web-1', 'web', x'00', '', '', '', '', 1);
             INSERT INTO session_events (id, user_id, username, endpoint_id, endpoint_name, kind, target, started_at, outcome)
                 VALUES ('ses_w', 'u', 'alice', 'ep_w', 'web-1', 'exec', 'ls', 1, 'ok'),
                        ('ses_gone', 'u', 'alice', 'ep_gone', 'old-1', 'exec', 'ls', 1, 'ok');
             INSERT INTO recordings (id, session_id, username, endpoint_name, started_at, width, height, input_recorded, wrapped_key, file)
                 VALUES ('rec_w', 'ses_w', 'alice', 'web-1', 1, 80, 24, 0, 'k', 'rec_w.jgrec');
             INSERT INTO events (at, actor, action, target, outcome, detail) VALUES
                 (1, 'alice', 'session-open:exec', 'web-1', 'open', 'ls'),
                 (2, 'alice', 'session-open:exec', 'old-1', 'open', 'ls'),
                 (3, 'alice', 'login', 'alice', 'ok', ''),
                 (4, 'root', 'recording-view', 'rec_w', 'ok', ''),
                 (5, 'root', 'group-create', 'db', 'ok', '');
             INSERT INTO users (id, username, password_hash, role, created_at)
                 VALUES ('u1', 'alice', 'h', 'technician', 1), ('u2', 'Alice', 'h', 'technician', 2),
                        ('u3', 'bob', 'h', 'admin', 3);",
        )
        .execute(&pool)
        .await
        .unwrap();
        migrate(&pool, &path, crate::schema::SCHEMA).await.unwrap();

        let groups: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, endpoint_group FROM session_events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            groups,
            [
                ("ses_gone".to_owned(), None),
                ("ses_w".to_owned(), Some("web".to_owned()))
            ]
        );
        let rec: Option<String> = sqlx::query_scalar("SELECT endpoint_group FROM recordings")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rec.as_deref(), Some("web"));
        let events: Vec<Option<String>> =
            sqlx::query_scalar("SELECT groups FROM events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            events,
            [
                Some(r#"["web"]"#.to_owned()),
                None,
                None,
                Some(r#"["web"]"#.to_owned()),
                Some(r#"["db"]"#.to_owned()),
            ]
        );
        let clash: Vec<(String, i64)> =
            sqlx::query_as("SELECT username, name_clash FROM users ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            clash,
            [
                ("alice".to_owned(), 0),
                ("Alice".to_owned(), 1),
                ("bob".to_owned(), 0)
            ]
        );
        let again = sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('u4', 'BOB', 'h', 'admin', 4)")
            .execute(&pool)
            .await;
        assert!(again.is_err(), "{again:?}");
        let clashes = crate::identity::name_clashes(&crate::store::Store::sqlite(pool.clone()))
            .await
            .unwrap();
        assert_eq!(clashes, [("Alice".to_owned(), "alice".to_owned())]);
    }

    /// No writer's commit checkpoints the WAL (the control: the database
    /// file keeps its size however much is written); the store's
    /// background checkpoints copy it into the file, and stop with it.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background_not_by_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let pool = open(&path).await.unwrap();
        sqlx::query("CREATE TABLE t (v BLOB NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        // Far past SQLite's default auto-checkpoint (1000 pages).
        for _ in 0..1200 {
            sqlx::query("INSERT INTO t (v) VALUES (randomblob(4000))")
                .execute(&pool)
                .await
                .unwrap();
        }
        assert_eq!(size(), before, "a writer checkpointed the WAL");
        let store = crate::store::Store::sqlite(pool);
        // Until everything written is in the file (a checkpoint copies
        // pages as it goes: the file grows while it runs).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while size() <= 1200 * 4000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never checkpointed (the file has {} bytes)",
                size()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let pool = open(&path).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES (999)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert!(matches!(
            open(&path).await,
            Err(StoreError::TooNew { found: 999, .. })
        ));
    }

    #[tokio::test]
    async fn the_file_is_encrypted_and_a_wrong_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let key = DataKey::for_tests(1);
        let pool = open_encrypted(&path, &key).await.unwrap();
        sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at, email) VALUES ('u', 'n', 'h', 'admin', 0, 'known.person@example.com')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let raw = std::fs::read(&path).unwrap();
        assert_ne!(&raw[..16], PLAIN_HEADER);
        assert!(!raw.windows(11).any(|w| w == b"known.perso"));
        let err = open_encrypted(&path, &DataKey::for_tests(2))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("does not open with this site's database key")
        );
        // The right key still opens it: nothing was lost.
        let pool = open_encrypted(&path, &key).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn an_unencrypted_database_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut c: sqlx::SqliteConnection =
            <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
                .await
                .unwrap();
        sqlx::raw_sql("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('plain-before');")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::Connection::close(c).await.unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..16], PLAIN_HEADER);

        let pool = open_encrypted(&path, &DataKey::for_tests(3)).await.unwrap();
        let v: String = sqlx::query_scalar("SELECT v FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(v, "plain-before");
        pool.close().await;
        let raw = std::fs::read(&path).unwrap();
        assert_ne!(&raw[..16], PLAIN_HEADER);
        assert!(!raw.windows(12).any(|w| w == b"plain-before"));
    }

    /// A database rotation re-encrypts the file at the next start with the
    /// next key; a crash after the re-encryption but before the keyring
    /// said so is completed at the following open, by any process.
    #[tokio::test]
    async fn database_rotation_rekeys_the_file_at_the_next_start() {
        use crate::keys::{Keyring, Purpose};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let keys = Keyring::open(dir.path()).unwrap();
        let (pool, _) = open_site(&path, &keys, true, crate::schema::SCHEMA)
            .await
            .unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES ('k', 'kept')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let old = keys.database_key().unwrap();
        keys.rotate(&[Purpose::Database]).unwrap();
        let next = keys.database_key_next().unwrap().unwrap();
        assert_ne!(old.as_bytes(), next.as_bytes());

        // Without rekey (an admin process): still the old key.
        let (pool, _) = open_site(&path, &keys, false, crate::schema::SCHEMA)
            .await
            .unwrap();
        pool.close().await;
        assert!(keys.database_key_next().unwrap().is_some());

        // A crash right after the re-encryption: the keyring still names
        // the old key as current.
        rekey_file(&path, &old, &next).await.unwrap();
        assert!(matches!(
            open_encrypted(&path, &old).await,
            Err(StoreError::WrongKey { .. })
        ));
        let again = Keyring::open(dir.path()).unwrap();
        let (pool, _) = open_site(&path, &again, false, crate::schema::SCHEMA)
            .await
            .unwrap();
        let v: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'k'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(v, "kept");
        pool.close().await;
        assert!(again.database_key_next().unwrap().is_none());
        assert_eq!(again.database_key().unwrap().as_bytes(), next.as_bytes());

        // The normal path: rotate, start (rekey), data intact, old key useless.
        again.rotate(&[Purpose::Database]).unwrap();
        let third = again.database_key_next().unwrap().unwrap();
        let (pool, _) = open_site(&path, &again, true, crate::schema::SCHEMA)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE value = 'kept'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
        pool.close().await;
        assert!(open_encrypted(&path, &next).await.is_err());
        assert!(open_encrypted(&path, &third).await.is_ok());
    }
}
