//! Which database engine a test gateway runs on, and the PostgreSQL
//! databases the tests create for themselves.
//!
//! - `JUMPGATE_TEST_POSTGRES`: a superuser URL of a PostgreSQL server the
//!   tests may create databases on (`./scripts/test` starts one with
//!   `scripts/postgres` and sets it). Each gateway on PostgreSQL gets a
//!   fresh database `jg_<random>` on it, dropped when the test is done
//!   with it.
//! - `JUMPGATE_TEST_ENGINE=sqlite|postgres`: the engine of gateways whose
//!   test did not choose one (SQLite when unset), so that the whole
//!   end-to-end suite can run on either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;

/// The superuser URL of the PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "JUMPGATE_TEST_POSTGRES";
/// The engine of gateways whose test did not choose one.
pub const ENGINE_ENV: &str = "JUMPGATE_TEST_ENGINE";

/// A database engine of the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The embedded, encrypted SQLite in the data directory (the default).
    Sqlite,
    /// A database on the PostgreSQL server of `JUMPGATE_TEST_POSTGRES`.
    Postgres,
}

impl Engine {
    /// Both engines, SQLite first.
    pub const ALL: [Self; 2] = [Self::Sqlite, Self::Postgres];

    /// `JUMPGATE_TEST_ENGINE`, SQLite when unset.
    ///
    /// # Panics
    /// An unknown engine name, or `postgres` without
    /// `JUMPGATE_TEST_POSTGRES` (asking for PostgreSQL and silently getting
    /// SQLite would pass for a PostgreSQL run).
    #[must_use]
    pub fn from_env() -> Self {
        let engine = match std::env::var(ENGINE_ENV).as_deref() {
            Err(_) | Ok("" | "sqlite") => Self::Sqlite,
            Ok("postgres") => Self::Postgres,
            Ok(other) => panic!("{ENGINE_ENV}={other}: expected `sqlite` or `postgres`"),
        };
        if engine == Self::Postgres && postgres_server().is_none() {
            panic!(
                "{ENGINE_ENV}=postgres needs {POSTGRES_ENV} (a superuser URL; `scripts/postgres start DIR` prints one)"
            );
        }
        engine
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `JUMPGATE_TEST_POSTGRES`, when set.
#[must_use]
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
}

/// Runs `body` once per engine: SQLite, then PostgreSQL, which is skipped
/// with a `skipped: JUMPGATE_TEST_POSTGRES unset` line when no server is
/// given. A failure names the engine it happened on.
///
/// ```ignore
/// for_each_engine(async |engine| {
///     let site = Site::builder().engine(engine).start().await;
///     // ...
/// })
/// .await;
/// ```
pub async fn for_each_engine(body: impl AsyncFn(Engine)) {
    for engine in Engine::ALL {
        if engine == Engine::Postgres && postgres_server().is_none() {
            println!("skipped: {POSTGRES_ENV} unset (the PostgreSQL run of this test)");
            continue;
        }
        println!("engine: {engine}");
        let guard = NameOnPanic(engine);
        body(engine).await;
        std::mem::forget(guard);
    }
}

/// Says which engine a failing body ran on (dropped only by a panic).
struct NameOnPanic(Engine);

impl Drop for NameOnPanic {
    fn drop(&mut self) {
        eprintln!("(the failure above happened on the {} engine)", self.0);
    }
}

/// A fresh, empty database of its own on the test PostgreSQL server,
/// dropped (its connections ended) when this value is.
#[derive(Debug)]
pub struct PgDatabase {
    /// The URL to give the gateway (`--database`).
    pub url: String,
    /// The database's name, `jg_<random>`.
    pub name: String,
    server: String,
}

impl PgDatabase {
    /// A new database on `JUMPGATE_TEST_POSTGRES`; `None` when it is unset.
    ///
    /// # Panics
    /// The server cannot be reached or refuses `CREATE DATABASE`.
    pub async fn create() -> Option<Self> {
        Some(Self::create_on(&postgres_server()?).await)
    }

    /// A new database on the server of the superuser URL `server`.
    ///
    /// # Panics
    /// The server cannot be reached or refuses `CREATE DATABASE`.
    pub async fn create_on(server: &str) -> Self {
        let mut random = [0u8; 8];
        aws_lc_rs::rand::fill(&mut random).expect("random bytes");
        let name = format!(
            "jg_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV} ({server}): {e}"));
        // The name is ours (`jg_` and hex digits): nothing to quote.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {server}: {e}"));
        let _ = conn.close().await;
        Self {
            url: with_database(server, &name),
            name,
            server: server.to_owned(),
        }
    }

    /// How many tables the database holds (in schema `public`): proof
    /// that a gateway given this database really uses it.
    ///
    /// # Panics
    /// The database cannot be reached.
    pub async fn table_count(&self) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        n
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // a thread with a runtime of its own drops the database.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&server).await.ok()?;
                // FORCE: a gateway killed a moment ago may still hold
                // connections.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: test database {} was not dropped", self.name);
        }
    }
}

/// `server` (`postgres://USER@HOST:PORT/DB?QUERY`) naming database `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The engine each data directory's gateway runs on, so that a gateway
/// started again on a site's data directory (a restart, by the site or by
/// a test) finds the same database.
#[derive(Clone, Debug)]
enum Backing {
    Sqlite,
    Postgres(Weak<PgDatabase>),
}

static BACKINGS: Mutex<Option<HashMap<PathBuf, Backing>>> = Mutex::new(None);

fn lookup(data_dir: &Path) -> Option<Backing> {
    BACKINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()?
        .get(data_dir)
        .cloned()
}

fn register(data_dir: &Path, backing: Backing) {
    BACKINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_default()
        .insert(data_dir.to_owned(), backing);
}

/// The database of the gateway on `data_dir`: the one it had, or for a
/// data directory seen for the first time, one for `engine` (default:
/// [`Engine::from_env`]). `None`: SQLite.
pub(crate) async fn database_for(
    data_dir: &Path,
    engine: Option<Engine>,
) -> Option<Arc<PgDatabase>> {
    match lookup(data_dir) {
        Some(Backing::Sqlite) if engine != Some(Engine::Postgres) => return None,
        Some(Backing::Postgres(db)) if engine != Some(Engine::Sqlite) => {
            if let Some(db) = db.upgrade() {
                return Some(db);
            }
        }
        _ => {}
    }
    match engine.unwrap_or_else(Engine::from_env) {
        Engine::Sqlite => {
            register(data_dir, Backing::Sqlite);
            None
        }
        Engine::Postgres => {
            let db = Arc::new(PgDatabase::create().await.unwrap_or_else(|| {
                panic!(
                    "a PostgreSQL gateway needs {POSTGRES_ENV}; tests that want both engines use for_each_engine, which skips PostgreSQL without it"
                )
            }));
            register(data_dir, Backing::Postgres(Arc::downgrade(&db)));
            Some(db)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "jg_1"),
            "postgres://postgres@127.0.0.1:5432/jg_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=require", "jg_1"),
            "postgres://u:p@h:1/jg_1?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "jg_1"),
            "postgres://u@h:1/jg_1"
        );
    }
}
