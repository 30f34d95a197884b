//! The PostgreSQL analytics store: the event table, and two roles made by
//! `jumpgate admin analytics init` ([`init_postgres`]): the write role may
//! only `INSERT` into it, the read role may only `SELECT` from it. The
//! gateway connects as each with its own URL (and password file); the read
//! role's URL can be handed to an outside reporting tool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::reports::{self, Group};
use super::{AnalyticsError, Event};
use crate::store::postgres::redacted;

/// The table and its index, made by [`init_postgres`] as the owner.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS analytics_events (
        id      TEXT PRIMARY KEY,
        at      BIGINT NOT NULL,
        day     TEXT NOT NULL,
        kind    TEXT NOT NULL,
        action  TEXT NOT NULL,
        actor   TEXT NOT NULL,
        target  TEXT NOT NULL,
        grp     TEXT NOT NULL,
        outcome TEXT NOT NULL,
        rule    TEXT NOT NULL,
        program TEXT NOT NULL,
        value   BIGINT,
        detail  TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS analytics_events_kind_at ON analytics_events(kind, at);
    CREATE TABLE IF NOT EXISTS analytics_rollup (
        report  TEXT NOT NULL,
        day     TEXT NOT NULL,
        k1      TEXT NOT NULL,
        k2      TEXT NOT NULL,
        k3      TEXT NOT NULL,
        n       BIGINT NOT NULL,
        vsum    BIGINT,
        vn      BIGINT NOT NULL,
        vmax    BIGINT,
        PRIMARY KEY (report, day, k1, k2, k3)
    );
    CREATE TABLE IF NOT EXISTS analytics_meta (
        key     TEXT PRIMARY KEY,
        value   TEXT NOT NULL
    );
";

/// The day rollups' trigger: after each `INSERT` statement on the events,
/// the rows it really inserted (its transition table `new_rows`: a resent
/// id skipped by `ON CONFLICT DO NOTHING` is not in it) are added to every
/// report's rollup. `SECURITY DEFINER`: it runs as the function's owner
/// (the database owner who ran `jumpgate admin analytics init`), so the
/// write role keeps `INSERT` on the events as its only right and cannot
/// touch the rollups itself.
fn trigger_sql() -> String {
    let adds: Vec<String> = reports::rollup_adds("new_rows")
        .into_iter()
        .map(|a| format!("{a};"))
        .collect();
    format!(
        "CREATE OR REPLACE FUNCTION analytics_rollup_add() RETURNS trigger
           LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $f$
         BEGIN
           {}
           RETURN NULL;
         END $f$;
         REVOKE ALL ON FUNCTION analytics_rollup_add() FROM PUBLIC;
         DROP TRIGGER IF EXISTS analytics_rollup_add ON analytics_events;
         CREATE TRIGGER analytics_rollup_add AFTER INSERT ON analytics_events
           REFERENCING NEW TABLE AS new_rows
           FOR EACH STATEMENT EXECUTE FUNCTION analytics_rollup_add();",
        adds.join("\n")
    )
}

/// A batch in one statement (arrays unnested): one round trip. `ON
/// CONFLICT DO NOTHING` without a conflict target needs only `INSERT`.
const INSERT: &str = "INSERT INTO analytics_events
    (id, at, day, kind, action, actor, target, grp, outcome, rule, program, value, detail)
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::bigint[], $13::text[])
    ON CONFLICT DO NOTHING";

fn options(url: &str, password: Option<&str>) -> Result<PgConnectOptions, AnalyticsError> {
    crate::store::postgres::check_url(url).map_err(AnalyticsError::Config)?;
    let mut o = PgConnectOptions::from_str(url)
        .map_err(|e| AnalyticsError::Config(format!("`{}`: {e}", redacted(url))))?
        .disable_statement_logging()
        .application_name("jumpgate-analytics")
        .options([("client_min_messages", "warning")]);
    if let Some(p) = password {
        o = o.password(p);
    }
    Ok(o)
}

/// A pool that connects when first used (the store may be down at start:
/// the shipper keeps the events until it is back).
fn lazy_pool(opts: PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(opts)
}

/// The write role's connection.
#[derive(Debug)]
pub(crate) struct Writer {
    pool: PgPool,
    url: String,
}

impl Writer {
    /// # Errors
    /// The URL is not a PostgreSQL URL.
    pub(crate) fn open(url: &str, password: Option<&str>) -> Result<Self, AnalyticsError> {
        Ok(Self {
            pool: lazy_pool(options(url, password)?, 2),
            url: redacted(url),
        })
    }

    /// Inserts a batch in one statement.
    ///
    /// # Errors
    /// The server is unreachable or refused.
    pub(crate) async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        let col = |f: fn(&Event) -> String| events.iter().map(f).collect::<Vec<String>>();
        sqlx::query(INSERT)
            .bind(col(|e| e.id.clone()))
            .bind(events.iter().map(|e| e.at).collect::<Vec<i64>>())
            .bind(col(Event::day))
            .bind(col(|e| e.kind.clone()))
            .bind(col(|e| e.action.clone()))
            .bind(col(|e| e.actor.clone()))
            .bind(col(|e| e.target.clone()))
            .bind(col(|e| e.grp.clone()))
            .bind(col(|e| e.outcome.clone()))
            .bind(col(|e| e.rule.clone()))
            .bind(col(|e| e.program.clone()))
            .bind(events.iter().map(|e| e.value).collect::<Vec<Option<i64>>>())
            .bind(col(|e| e.detail.clone()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        format!("postgres:{}", self.url)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// The read role's connection.
#[derive(Debug)]
pub(crate) struct Reader {
    pool: PgPool,
}

impl Reader {
    /// # Errors
    /// The URL is not a PostgreSQL URL.
    pub(crate) fn open(url: &str, password: Option<&str>) -> Result<Self, AnalyticsError> {
        Ok(Self {
            pool: lazy_pool(options(url, password)?, 4),
        })
    }

    /// # Errors
    /// The server is unreachable or refused.
    pub(crate) async fn query(&self, q: &reports::Query<'_>) -> Result<Vec<Group>, AnalyticsError> {
        // A store made before the rollups (no `analytics_meta`, or another
        // fingerprint) is read from its events until `jumpgate admin
        // analytics init` runs again.
        let stored: Option<String> = match sqlx::query_scalar(reports::ROLLUP_META)
            .fetch_optional(&self.pool)
            .await
        {
            Ok(v) => v,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => None,
            Err(e) => return Err(e.into()),
        };
        reports::fetch_groups(&self.pool, q.spec, reports::plan(q, stored.as_deref())).await
    }

    /// Runs `q` over the events, never the rollups (tests: the trigger's
    /// rollups are compared with it).
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

/// What [`init_postgres`] made.
#[derive(Debug)]
pub struct InitRoles {
    /// The database, as `host:port/db` (no credentials).
    pub database: String,
    /// The write role's URL (no password).
    pub write_url: String,
    /// The read role's URL (no password).
    pub read_url: String,
}

/// Checks a role name: lower-case letters, digits and `_`, not starting
/// with a digit, at most 63 characters (never quoted: it is an identifier
/// we also put into URLs).
fn check_role(name: &str) -> Result<(), AnalyticsError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(AnalyticsError::Config(format!(
            "role name `{name}`: use lower-case letters, digits and _ (at most 63, not starting with a digit)"
        )))
    }
}

/// `jumpgate admin analytics init`: as the database's owner (`admin_url`),
/// creates the event table and the two roles (or resets their passwords
/// and rights when they exist): `writer` may only `INSERT` into the event
/// table, `reader` may only `SELECT` from it and its day rollups. The
/// rollups are kept by a trigger owned by the caller ([`trigger_sql`]), and
/// rebuilt from the events when the reports changed. Idempotent.
///
/// # Errors
/// Bad URL or role names, the server refused (the caller is not allowed to
/// create roles, …).
pub async fn init_postgres(
    admin_url: &str,
    writer: &str,
    writer_password: &str,
    reader: &str,
    reader_password: &str,
) -> Result<InitRoles, AnalyticsError> {
    check_role(writer)?;
    check_role(reader)?;
    if writer == reader {
        return Err(AnalyticsError::Config(
            "the write and read roles must differ: each identity has its own".into(),
        ));
    }
    let opts = options(admin_url, None)?;
    let mut conn = opts.connect().await?;
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    // No insert between the rollups' rebuild and the trigger taking over
    // (the gateway waits, and retries if it times out).
    sqlx::raw_sql("LOCK TABLE analytics_events IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(trigger_sql()))
        .execute(&mut *tx)
        .await?;
    let fp = reports::rollup_fingerprint();
    let stored: Option<String> = sqlx::query_scalar(reports::ROLLUP_META)
        .fetch_optional(&mut *tx)
        .await?;
    if stored.as_deref() != Some(fp) {
        sqlx::raw_sql("DELETE FROM analytics_rollup")
            .execute(&mut *tx)
            .await?;
        for add in reports::rollup_adds("analytics_events") {
            sqlx::raw_sql(sqlx::AssertSqlSafe(add))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO analytics_meta (key, value) VALUES ('rollup', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(fp)
        .execute(&mut *tx)
        .await?;
    }
    for (role, password) in [(writer, writer_password), (reader, reader_password)] {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&mut *tx)
                .await?;
        // The server quotes the name and the password (`format`'s %I and
        // %L): nothing of ours is spliced into SQL text.
        let verb = if exists { "ALTER" } else { "CREATE" };
        let stmt: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT format('{verb} ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L', $1::text, $2::text)"
        )))
        .bind(role)
        .bind(password)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await?;
        // Whatever it held before: only what is granted below.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REVOKE ALL ON analytics_events, analytics_rollup, analytics_meta FROM {role}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE ALL ON analytics_events, analytics_rollup, analytics_meta FROM PUBLIC;
         GRANT CONNECT ON DATABASE {db} TO {writer}, {reader};
         GRANT USAGE ON SCHEMA public TO {writer}, {reader};
         GRANT INSERT ON analytics_events TO {writer};
         GRANT SELECT ON analytics_events, analytics_rollup, analytics_meta TO {reader};",
        db = current_database(&mut tx).await?,
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut u = url::Url::parse(admin_url)
        .map_err(|e| AnalyticsError::Config(format!("{}: {e}", redacted(admin_url))))?;
    let _ = u.set_password(None);
    let with_user = |role: &str| {
        let mut u = u.clone();
        let _ = u.set_username(role);
        u.to_string()
    };
    let write_url = with_user(writer);
    let read_url = with_user(reader);
    Ok(InitRoles {
        database: format!(
            "{}:{}{}",
            u.host_str().unwrap_or(""),
            u.port().unwrap_or(5432),
            u.path()
        ),
        write_url,
        read_url,
    })
}

/// The current database's name, quoted as an identifier by the server.
async fn current_database(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT quote_ident(current_database())")
        .fetch_one(&mut **tx)
        .await
}
