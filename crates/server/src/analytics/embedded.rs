//! The embedded analytics store: `<data dir>/analytics.db`, a SQLCipher
//! file of its own next to the main store, encrypted with a data key of
//! its own (`<data dir>/analytics.key`: the key wrapped under the
//! `database` KEK of the keyring, re-wrapped under the current KEK at start
//! and within a minute of a rotation, [`KeyWrap`]). The write identity is one connection that inserts; the read
//! identity is a pool opened read-only (`SQLITE_OPEN_READONLY`, i.e.
//! `mode=ro`, and `PRAGMA query_only`): SQLite itself refuses its writes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::reports::{self, Group};
use super::{AnalyticsError, Event};
use crate::keys::{DataKey, Keyring, Purpose, WrappedKey};

/// The analytics file.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("analytics.db")
}

/// The file holding the analytics file's wrapped key.
pub(crate) fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("analytics.key")
}

/// The table, as on PostgreSQL (`pg::SCHEMA`): one flat row per event.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS analytics_events (
        id      TEXT PRIMARY KEY,
        at      INTEGER NOT NULL,
        day     TEXT NOT NULL,
        kind    TEXT NOT NULL,
        action  TEXT NOT NULL,
        actor   TEXT NOT NULL,
        target  TEXT NOT NULL,
        grp     TEXT NOT NULL,
        outcome TEXT NOT NULL,
        rule    TEXT NOT NULL,
        program TEXT NOT NULL,
        value   INTEGER,
        detail  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS analytics_events_kind_at ON analytics_events(kind, at);
    CREATE TABLE IF NOT EXISTS analytics_rollup (
        report  TEXT NOT NULL,
        day     TEXT NOT NULL,
        k1      TEXT NOT NULL,
        k2      TEXT NOT NULL,
        k3      TEXT NOT NULL,
        n       INTEGER NOT NULL,
        vsum    INTEGER,
        vn      INTEGER NOT NULL,
        vmax    INTEGER,
        PRIMARY KEY (report, day, k1, k2, k3)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS analytics_meta (
        key     TEXT PRIMARY KEY,
        value   TEXT NOT NULL
    );
";

/// Rows per multi-row `INSERT` (13 parameters each: far below SQLite's
/// limit of 32,766); a full chunk's statement text is always the same, so
/// it is prepared once per connection (sqlx's statement cache).
const CHUNK: usize = 250;
/// Rollup rows per multi-row upsert (9 parameters each).
const ROLLUP_CHUNK: usize = 250;

/// `(?, ?, …), (…), …`: `rows` groups of `cols` parameters. Anonymous
/// parameters: sqlx looks each parameter's name up when binding, and
/// SQLite's lookup of a numbered name walks the list of names (binding
/// thousands of `?NNN` was quadratic: 75 % of the writer's time).
fn values(rows: usize, cols: usize) -> String {
    let group = format!("({})", vec!["?"; cols].join(", "));
    vec![group; rows].join(", ")
}

/// The events of a chunk, the ids already stored skipped; answers the ids
/// it did store (`RETURNING` names only the rows inserted).
fn events_insert(rows: usize) -> String {
    format!(
        "INSERT INTO analytics_events
           (id, at, day, kind, action, actor, target, grp, outcome, rule, program, value, detail)
         VALUES {} ON CONFLICT DO NOTHING RETURNING id",
        values(rows, 13)
    )
}

/// Rollup rows added to what is stored.
fn rollup_upsert(rows: usize) -> String {
    format!(
        "INSERT INTO analytics_rollup ({}) VALUES {} {}",
        reports::ROLLUP_COLUMNS,
        values(rows, 9),
        reports::ROLLUP_MERGE
    )
}

/// The analytics file's key: made and wrapped on first use, unwrapped
/// afterwards (and re-wrapped when the `database` KEK was rotated since).
///
/// # Errors
/// The key file cannot be read or written, does not unwrap, or is missing
/// while the analytics file exists (it could not be opened again).
pub(crate) fn key(data_dir: &Path, keys: &Keyring) -> Result<DataKey, AnalyticsError> {
    let kp = key_path(data_dir);
    let io = |cause| AnalyticsError::Io {
        path: kp.display().to_string(),
        cause,
    };
    match std::fs::read_to_string(&kp) {
        Ok(text) => {
            let stored = WrappedKey::from(text.trim().to_owned());
            let key = match keys.unwrap(Purpose::Database, &stored) {
                Ok(key) => key,
                // The `database` KEK it was wrapped under is gone: a
                // rotation retires the old version at once, and this
                // gateway stopped before re-wrapping the file (see
                // [`KeyWrap`]). The analytics file is a copy of the main
                // store's events: it is set aside and shipped again from
                // the start, not lost.
                Err(crate::keys::KeyError::UnknownVersion { version, .. }) => {
                    return rebuild(data_dir, keys, version);
                }
                Err(e) => return Err(e.into()),
            };
            let current = keys.wrap(Purpose::Database, &key)?;
            if current.version() != stored.version() {
                jumpgate_net::fs::write_private_atomic(&kp, current.as_str().as_bytes())
                    .map_err(io)?;
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if path(data_dir).exists() {
                return Err(AnalyticsError::Config(format!(
                    "{} is missing but {} exists: restore the key file from your backup (or move the analytics file away to start a new one)",
                    kp.display(),
                    path(data_dir).display()
                )));
            }
            let (key, wrapped) = keys.new_data_key(Purpose::Database)?;
            jumpgate_net::fs::write_private_atomic(&kp, wrapped.as_str().as_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// A new analytics file and key in place of one whose key no longer
/// opens (wrapped under retired `database` KEK version `version`): the
/// old file is renamed `analytics.db.unreadable-<ms>` (with its `-wal` and
/// `-shm`), and the shipper's cursor is removed so that every event the
/// main store still holds is shipped again.
fn rebuild(data_dir: &Path, keys: &Keyring, version: u32) -> Result<DataKey, AnalyticsError> {
    let db = path(data_dir);
    let aside = format!("unreadable-{}", crate::ids::now_ms());
    tracing::warn!(
        file = %db.display(),
        kek_version = version,
        "the analytics key was wrapped under a retired database key version: the analytics file is set aside and its events shipped again from the main store"
    );
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}.{aside}", db.display()));
            std::fs::rename(&from, &to).map_err(|cause| AnalyticsError::Io {
                path: from.display().to_string(),
                cause,
            })?;
        }
    }
    let cursor = super::shipper::cursor_path(data_dir);
    match std::fs::remove_file(&cursor) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(cause) => {
            return Err(AnalyticsError::Io {
                path: cursor.display().to_string(),
                cause,
            });
        }
    }
    let kp = key_path(data_dir);
    let (key, wrapped) = keys.new_data_key(Purpose::Database)?;
    jumpgate_net::fs::write_private_atomic(&kp, wrapped.as_str().as_bytes()).map_err(|cause| {
        AnalyticsError::Io {
            path: kp.display().to_string(),
            cause,
        }
    })?;
    Ok(key)
}

fn options(path: &Path, key: &DataKey) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str("sqlite://")?
        // Never log statements: the first is the `PRAGMA key`.
        .disable_statement_logging()
        .pragma("key", key.sqlcipher_literal().to_string())
        .filename(path)
        .busy_timeout(Duration::from_secs(10)))
}

/// Keeps `analytics.key` wrapped under the `database` KEK in force while
/// the gateway runs: the rotation sweep does not know this file, so the
/// shipper checks now and then ([`Writer::maintain`]) and re-wraps it after
/// a rotation, long before the old KEK can be retired.
#[derive(Debug)]
pub(crate) struct KeyWrap {
    data_dir: PathBuf,
    keys: Keyring,
    key: DataKey,
}

impl KeyWrap {
    pub(crate) fn new(data_dir: &Path, keys: &Keyring, key: DataKey) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            keys: keys.clone(),
            key,
        }
    }

    /// Re-wraps the key when the KEK rotated; answers whether it did.
    ///
    /// # Errors
    /// The key file cannot be read or written, or the keyring fails.
    pub(crate) fn check(&self) -> Result<bool, AnalyticsError> {
        let kp = key_path(&self.data_dir);
        let io = |cause| AnalyticsError::Io {
            path: kp.display().to_string(),
            cause,
        };
        let stored = WrappedKey::from(std::fs::read_to_string(&kp).map_err(io)?.trim().to_owned());
        let current = self.keys.wrap(Purpose::Database, &self.key)?;
        if current.version() == stored.version() {
            return Ok(false);
        }
        jumpgate_net::fs::write_private_atomic(&kp, current.as_str().as_bytes()).map_err(io)?;
        Ok(true)
    }
}

/// The write identity of the embedded store.
#[derive(Debug)]
pub(crate) struct Writer {
    pool: SqlitePool,
    path: PathBuf,
    key_wrap: Option<KeyWrap>,
}

impl Writer {
    /// Opens (creating) the file and its table.
    ///
    /// # Errors
    /// The file cannot be created or the key does not open it.
    pub(crate) async fn open(path: &Path, key: &DataKey) -> Result<Self, AnalyticsError> {
        let opts = options(path, key)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A batch is acknowledged (the cursor moves) only once it is
            // durable.
            .synchronous(SqliteSynchronous::Full)
            // 64 MiB of decrypted pages: the hot ends of the id and
            // (kind, at) indexes and of the rollup stay in memory as the
            // file grows.
            .pragma("cache_size", "-65536");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        set_private(path);
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        rebuild_rollups(&pool).await?;
        Ok(Self {
            pool,
            path: path.to_owned(),
            key_wrap: None,
        })
    }

    /// The writer keeps the key file wrapped under the current KEK.
    pub(crate) fn with_key_wrap(mut self, kw: KeyWrap) -> Self {
        self.key_wrap = Some(kw);
        self
    }

    /// Upkeep between batches: the key file's wrap.
    pub(crate) fn maintain(&self) {
        if let Some(kw) = &self.key_wrap {
            match kw.check() {
                Ok(true) => {
                    tracing::info!("analytics key re-wrapped under the current database KEK")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot re-wrap the analytics key"),
            }
        }
    }

    /// Inserts a batch in one transaction: the events whose ids are not
    /// stored yet, and their counts into the day rollups (aggregated here,
    /// then one multi-row upsert per chunk).
    ///
    /// # Errors
    /// The file is unavailable.
    pub(crate) async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        let mut tx = self.pool.begin().await?;
        let mut stored: std::collections::HashSet<String> =
            std::collections::HashSet::with_capacity(events.len());
        for chunk in events.chunks(CHUNK) {
            let mut q =
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(events_insert(chunk.len())));
            for e in chunk {
                q = q
                    .bind(&e.id)
                    .bind(e.at)
                    .bind(e.day())
                    .bind(&e.kind)
                    .bind(&e.action)
                    .bind(&e.actor)
                    .bind(&e.target)
                    .bind(&e.grp)
                    .bind(&e.outcome)
                    .bind(&e.rule)
                    .bind(&e.program)
                    .bind(e.value)
                    .bind(&e.detail);
            }
            stored.extend(q.fetch_all(&mut *tx).await?);
        }
        // Only what was stored now is counted (a resent id is not; an id
        // twice in the batch was stored once, the first).
        let fresh = events.iter().filter(|e| stored.remove(&e.id));
        let rows = reports::rollup_rows(fresh);
        for chunk in rows.chunks(ROLLUP_CHUNK) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(rollup_upsert(chunk.len())));
            for r in chunk {
                q = q
                    .bind(r.report)
                    .bind(&r.day)
                    .bind(&r.k[0])
                    .bind(&r.k[1])
                    .bind(&r.k[2])
                    .bind(r.n)
                    .bind(r.vsum)
                    .bind(r.vn)
                    .bind(r.vmax);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        format!("embedded:{}", self.path.display())
    }

    /// Runs a statement as the write identity (tests).
    #[cfg(test)]
    pub(crate) async fn execute_for_tests(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }

    pub(crate) async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// Rebuilds the day rollups from the stored events when they were made
/// for another set of reports (or never: a file from before the rollups),
/// in one transaction.
async fn rebuild_rollups(pool: &SqlitePool) -> Result<(), AnalyticsError> {
    let fp = reports::rollup_fingerprint();
    let stored: Option<String> = sqlx::query_scalar(reports::ROLLUP_META)
        .fetch_optional(pool)
        .await?;
    if stored.as_deref() == Some(fp) {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM analytics_rollup")
        .execute(&mut *tx)
        .await?;
    for add in reports::rollup_adds("analytics_events") {
        sqlx::query(sqlx::AssertSqlSafe(add))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO analytics_meta (key, value) VALUES ('rollup', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(fp)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if stored.is_some() {
        tracing::info!(
            ms = t.elapsed().as_millis() as u64,
            "analytics: the reports changed; day rollups rebuilt from the stored events"
        );
    }
    Ok(())
}

/// The file and its WAL are the site's data: owner only.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// The read identity of the embedded store: read-only connections.
#[derive(Debug)]
pub(crate) struct Reader {
    pool: SqlitePool,
}

impl Reader {
    /// Opens the file read-only (it must exist: the writer made it).
    ///
    /// # Errors
    /// The file is missing or the key does not open it.
    pub(crate) async fn open(path: &Path, key: &DataKey) -> Result<Self, AnalyticsError> {
        let opts = options(path, key)?
            .read_only(true)
            .pragma("query_only", "ON")
            .pragma("cache_size", "-16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    /// Runs a report query.
    ///
    /// # Errors
    /// The file is unavailable.
    pub(crate) async fn query(&self, q: &reports::Query<'_>) -> Result<Vec<Group>, AnalyticsError> {
        let stored: Option<String> = sqlx::query_scalar(reports::ROLLUP_META)
            .fetch_optional(&self.pool)
            .await?;
        reports::fetch_groups(&self.pool, q.spec, reports::plan(q, stored.as_deref())).await
    }

    /// Runs a statement as the read identity (tests: proof that writes
    /// are refused by SQLite, not only by the type).
    #[cfg(test)]
    pub(crate) async fn execute_for_tests(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }

    /// Runs `q` over the events, never the rollups (tests: the rollups'
    /// answers are compared with it).
    #[cfg(test)]
    pub(crate) async fn query_events_for_tests(
        &self,
        q: &reports::Query<'_>,
    ) -> Result<Vec<Group>, AnalyticsError> {
        reports::fetch_groups(&self.pool, q.spec, reports::sql(q)).await
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
