//! The PostgreSQL engine: connection pool (TLS with certificate
//! verification when the URL asks for it) and migrations.
//!
//! The URL is libpq's: `postgres://USER[:PASSWORD]@HOST:PORT/DB?sslmode=verify-full&sslrootcert=/path/ca.pem`.
//! `sslmode=verify-full` checks the server's certificate chain against
//! `sslrootcert` (or the bundled public roots) and its host name;
//! `verify-ca` checks the chain only; `require` encrypts without checking
//! (not recommended). The password can also come from `PGPASSWORD`. The URL
//! is never logged with its password ([`redacted`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::migrations::Schema;
use super::{Engine, StoreError};

/// Key of the advisory lock that keeps two gateways starting at once from
/// migrating the same database together.
const MIGRATE_LOCK: i64 = 0x6a67_6d69_6772_6174; // "jgmigrat"

/// `url` with its password replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // Query parameters may carry a password too.
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Checks the shape of a database URL (scheme, host, database name)
/// without connecting.
///
/// # Errors
/// What is wrong with it, in words.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| {
        format!(
            "`{}` is not a URL ({e}); expected postgres://USER@HOST:PORT/DATABASE",
            redacted(url)
        )
    })?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "`{}`: only PostgreSQL URLs (postgres://USER@HOST:PORT/DATABASE) are supported; \
             leave the database unset for the embedded encrypted SQLite",
            redacted(url)
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{}` names no host", redacted(url)));
    }
    if u.path().trim_start_matches('/').is_empty() {
        return Err(format!(
            "`{}` names no database (…/DATABASE)",
            redacted(url)
        ));
    }
    PgConnectOptions::from_str(url).map_err(|e| format!("`{}`: {e}", redacted(url)))?;
    Ok(())
}

/// Connects to the database at `url` and brings its schema up to
/// `schema`.
///
/// # Errors
/// Bad URL, the server refused or could not be reached, or a migration
/// failed (nothing is half-applied).
pub(crate) async fn open(
    url: &str,
    max_connections: u32,
    schema: Schema,
) -> Result<PgPool, StoreError> {
    check_url(url).map_err(StoreError::Url)?;
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Url(format!("`{}`: {e}", redacted(url))))?
        // Statements are logged at debug level by default: never, they
        // carry hashes and wrapped keys as parameters.
        .disable_statement_logging()
        .application_name("jumpgate")
        // The server's NOTICEs (`CREATE … IF NOT EXISTS` skipping an
        // existing table at every start) are not the operator's concern;
        // warnings and errors still come through.
        .options([("client_min_messages", "warning")]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
        .map_err(|cause| StoreError::Connect {
            target: redacted(url),
            cause,
        })?;
    migrate(&pool, url, schema).await?;
    Ok(pool)
}

async fn migrate(pool: &PgPool, url: &str, schema: Schema) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, domain TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    let current = current.unwrap_or(0);
    let known = schema.latest(Engine::Postgres);
    if current > known {
        return Err(StoreError::TooNew {
            path: redacted(url),
            found: current,
            known,
        });
    }
    for version in schema
        .versions(Engine::Postgres)
        .iter()
        .skip(current as usize)
    {
        for sql in &version.sql {
            // The migrations are constants of the domains, not input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO schema_version (version, domain, applied_at) VALUES ($1, $2, $3)")
            .bind(version.number)
            .bind(&version.domains)
            .bind(crate::ids::now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Test databases: a fresh, empty database on the server named by
/// `JUMPGATE_TEST_POSTGRES` (a superuser URL that `./scripts/test`
/// provides), or `None` when it is unset.
#[cfg(test)]
pub(crate) mod testdb {
    /// A fresh database's URL, or `None` (and a `skipped:` line) when no
    /// test server was given.
    pub(crate) async fn fresh(test: &str) -> Option<String> {
        let Ok(admin) = std::env::var("JUMPGATE_TEST_POSTGRES") else {
            eprintln!("skipped ({test}): JUMPGATE_TEST_POSTGRES unset");
            return None;
        };
        let name = format!(
            "jg_unit_{}",
            crate::ids::random_bytes::<8>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to JUMPGATE_TEST_POSTGRES");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create test database");
        let mut u = url::Url::parse(&admin).expect("JUMPGATE_TEST_POSTGRES is a URL");
        u.set_path(&name);
        Some(u.to_string())
    }
}
