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
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await?;
    migrate(&pool, path).await?;
    Ok(pool)
}

async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
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
