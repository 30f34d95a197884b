//! The embedded SQLite database: connection pool and schema migrations.
//!
//! Migrations are plain SQL kept in this file and applied in order inside a
//! transaction; `schema_version` records how far a database has come.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error(
        "the database at {path} was written by a newer Jumpgate (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

const MIGRATIONS: &[&str] = &[
    // 1: users, login tokens, enrollment tokens, endpoints, session events.
    r"
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE auth_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX auth_tokens_user ON auth_tokens(user_id);
    CREATE TABLE enroll_tokens (
        token_hash BLOB PRIMARY KEY,
        group_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER,
        used_by    TEXT
    );
    CREATE TABLE endpoints (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        group_name    TEXT NOT NULL,
        public_key    BLOB NOT NULL,
        hostname      TEXT NOT NULL,
        os            TEXT NOT NULL,
        arch          TEXT NOT NULL,
        agent_version TEXT NOT NULL,
        enrolled_at   INTEGER NOT NULL,
        last_seen     INTEGER,
        revoked_at    INTEGER
    );
    -- A revoked endpoint's name may be enrolled again.
    CREATE UNIQUE INDEX endpoints_live_name ON endpoints(name) WHERE revoked_at IS NULL;
    CREATE TABLE session_events (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        username      TEXT NOT NULL,
        endpoint_id   TEXT,
        endpoint_name TEXT NOT NULL,
        kind          TEXT NOT NULL,
        target        TEXT NOT NULL,
        started_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        bytes_up      INTEGER NOT NULL DEFAULT 0,
        bytes_down    INTEGER NOT NULL DEFAULT 0,
        outcome       TEXT NOT NULL
    );
    CREATE INDEX session_events_started ON session_events(started_at);
    ",
    // 2: identity and access — roles, endpoint groups, password policy state,
    // lockout, MFA, API clients, site settings, security events.
    r#"
    CREATE TABLE roles (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,          -- JSON array of permission names
        builtin     INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO roles (name, description, permissions, builtin) VALUES
        ('admin', 'Full control of the site',
         '["view","shell","exec","files","forward","manage-users","manage-endpoints","view-audit"]', 1),
        ('technician', 'Remote access to endpoints in the user''s groups',
         '["view","shell","exec","files","forward"]', 1),
        ('auditor', 'Reads endpoints in the user''s groups and the session log',
         '["view","view-audit"]', 1);

    CREATE TABLE groups (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL
    );
    INSERT INTO groups (name, description, created_at)
        SELECT DISTINCT group_name, '', 0 FROM endpoints;
    INSERT OR IGNORE INTO groups (name, description, created_at)
        VALUES ('default', 'Endpoints enrolled without a group', 0);

    ALTER TABLE users ADD COLUMN email TEXT;
    -- JSON array of endpoint groups; ["*"] is every group.
    ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN locked_until INTEGER;
    ALTER TABLE users ADD COLUMN totp_secret BLOB;
    ALTER TABLE users ADD COLUMN totp_pending BLOB;
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
    -- Accounts created before groups existed keep the access they had.
    UPDATE users SET groups = '["*"]', password_changed_at = created_at;

    CREATE TABLE password_history (
        user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        password_hash TEXT NOT NULL,
        changed_at    INTEGER NOT NULL
    );
    CREATE INDEX password_history_user ON password_history(user_id, changed_at);
    INSERT INTO password_history (user_id, password_hash, changed_at)
        SELECT id, password_hash, created_at FROM users;

    CREATE TABLE recovery_codes (
        user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash BLOB NOT NULL,
        used_at   INTEGER,
        PRIMARY KEY (user_id, code_hash)
    );

    -- Unused since schema 2's code: a session's restriction is decided on
    -- every request from the account and the site policy.
    ALTER TABLE auth_tokens ADD COLUMN restricted TEXT;

    CREATE TABLE api_clients (
        client_id         TEXT PRIMARY KEY,
        name              TEXT NOT NULL UNIQUE,
        secret_hash       TEXT NOT NULL,
        scopes            TEXT NOT NULL,   -- JSON array: read, write
        role              TEXT NOT NULL,
        groups            TEXT NOT NULL,   -- JSON array
        created_at        INTEGER NOT NULL,
        secret_rotated_at INTEGER NOT NULL
    );
    CREATE TABLE client_tokens (
        token_hash BLOB PRIMARY KEY,
        client_id  TEXT NOT NULL REFERENCES api_clients(client_id) ON DELETE CASCADE,
        scopes     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL            -- JSON
    );

    -- Security events (logins, denials, account and role changes). The
    -- audit work turns this into a hash-chained, verifiable log.
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_at ON events(at);
    "#,
    // 3: the security events become a hash chain (see `events`).
    r"
    ALTER TABLE events ADD COLUMN prev_hash BLOB;
    ALTER TABLE events ADD COLUMN hash BLOB;
    ",
    // 4: shell session recordings (see `recordings`), and the checkpoints
    // that keep the audit chain verifiable after retention removes its
    // oldest entries.
    r"
    CREATE TABLE recordings (
        id             TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL,
        username       TEXT NOT NULL,
        endpoint_name  TEXT NOT NULL,
        started_at     INTEGER NOT NULL,
        ended_at       INTEGER,
        duration_ms    INTEGER NOT NULL DEFAULT 0,
        width          INTEGER NOT NULL,
        height         INTEGER NOT NULL,
        input_recorded INTEGER NOT NULL,
        -- 1 when the recording stopped without its final chunk (a gateway
        -- crash, a write failure): it plays up to its last sealed chunk.
        interrupted    INTEGER NOT NULL DEFAULT 0,
        -- The recording's data key, wrapped by the recordings KEK (`keys`).
        wrapped_key    TEXT NOT NULL,
        -- File name under <data dir>/recordings/.
        file           TEXT NOT NULL
    );
    CREATE INDEX recordings_started ON recordings(started_at);
    CREATE TABLE audit_checkpoints (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        -- The first entry kept; entries before it were expired.
        first_id    INTEGER NOT NULL,
        -- The hash of the last expired entry, which `first_id` chains to.
        anchor_hash BLOB NOT NULL
    );
    ",
];

/// Opens (creating if needed) the database and brings its schema up to date.
///
/// # Errors
/// The file cannot be opened, or a migration failed (nothing is half-applied).
pub(crate) async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable across process crashes; FULL adds an fsync
        // per commit so that acknowledged writes survive power loss too.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // `jumpgate admin` writes while the server runs.
        .busy_timeout(Duration::from_secs(10))
        // 256 KiB of page cache per pooled connection (SQLite's default is
        // 2 MiB): a gateway's working set is small, and its memory is what
        // bounds how many agents one machine holds.
        .pragma("cache_size", "-256");
    // SQLite has one writer at a time; more connections only add caches.
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?;
    migrate(&pool, path).await?;
    Ok(pool)
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

async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    let current = current.unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        // The migrations are constants of this file, not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
            .bind(i as i64 + 1)
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
        assert_eq!(v, MIGRATIONS.len() as i64);
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
}
