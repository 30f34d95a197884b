//! An entry point for the `bench/` harness (not an API): audited writes
//! through the store layer, as every domain makes them. It sits above the
//! store (it opens sites with their keys and verifies the audit chain with
//! `events`), so it is not part of `store/`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::store::{AuditAction, AuditEvent, Location, Store, StoreError, open_site, sql};

/// Where the benchmark writes.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A new site's embedded SQLCipher database in this (empty) data
    /// directory, keys made as for a new site.
    Sqlite(&'a Path),
    /// An empty PostgreSQL database.
    Postgres(&'a str),
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub writers: usize,
    pub commits: u64,
    pub elapsed: Duration,
    /// Latency of one audited write (begin → write → audit → commit).
    pub p50: Duration,
    pub p99: Duration,
    /// The audit chain verified after the run: its length.
    pub chain: u64,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens `target` as the gateway would (`max_connections` on
/// PostgreSQL).
///
/// # Errors
/// The store cannot be opened.
pub async fn open(target: Target<'_>, max_connections: u32) -> Result<Store, StoreError> {
    match target {
        Target::Sqlite(dir) => {
            let keys = crate::keys::Keyring::open(dir)?;
            open_site(
                Location::Sqlite {
                    path: crate::app::db_path(dir),
                    keys: &keys,
                    rekey: false,
                },
                crate::schema::SCHEMA,
            )
            .await
        }
        Target::Postgres(url) => {
            open_site(
                Location::Postgres {
                    url,
                    max_connections,
                },
                crate::schema::SCHEMA,
            )
            .await
        }
    }
}

/// `writers` tasks each making audited writes for `duration`: begin, a
/// domain row (a new group), its audit entry, commit. The chain is
/// verified at the end.
///
/// # Errors
/// A write failed, or the chain did not verify.
pub async fn audited_writes(
    store: &Store,
    writers: usize,
    duration: Duration,
) -> Result<Figures, Box<dyn std::error::Error + Send + Sync>> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let name = format!("bench-{writers}-{w}-{i}");
                let mut tx = store.write().await?;
                sql!(tx, |c| sqlx::query(
                    "INSERT INTO groups (name, description, created_at) VALUES ($1, '', $2)"
                )
                .bind(&name)
                .bind(crate::ids::now_ms())
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))?;
                tx.audit(
                    AuditEvent::new("bench", AuditAction::GroupCreate, &name).group(name.clone()),
                )
                .await?;
                tx.commit().await?;
                lat.push(t.elapsed());
                i += 1;
            }
            Ok::<_, sqlx::Error>(lat)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let chain = crate::events::verify(store, None)
        .await?
        .map_err(|b| format!("the audit chain does not verify: {b}"))?;
    Ok(Figures {
        writers,
        commits: lat.len() as u64,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
        chain: chain.entries,
    })
}

/// A new, empty database `jg_bench_<random>` on the PostgreSQL server of
/// `server_url` (a role allowed to create databases); its URL.
///
/// # Errors
/// The server cannot be reached or refuses.
pub async fn scratch_database(server_url: &str) -> Result<String, StoreError> {
    let name = format!(
        "jg_bench_{}",
        crate::ids::random_bytes::<6>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(server_url)
        .await
        .map_err(|cause| StoreError::Connect {
            target: crate::store::redacted_url(server_url),
            cause,
        })?;
    // The name is ours: letters, digits and `_`.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await?;
    let _ = sqlx::Connection::close(c).await;
    let mut u = url::Url::parse(server_url).map_err(|e| StoreError::Url(e.to_string()))?;
    u.set_path(&name);
    Ok(u.to_string())
}

/// Drops a database made by [`scratch_database`].
///
/// # Errors
/// The server cannot be reached or refuses.
pub async fn drop_scratch_database(server_url: &str, db_url: &str) -> Result<(), StoreError> {
    let u = url::Url::parse(db_url).map_err(|e| StoreError::Url(e.to_string()))?;
    let name = u.path().trim_start_matches('/');
    if !name.starts_with("jg_bench_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(StoreError::Url(format!("{name} is not a scratch database")));
    }
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(server_url)
        .await
        .map_err(|cause| StoreError::Connect {
            target: crate::store::redacted_url(server_url),
            cause,
        })?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    let _ = sqlx::Connection::close(c).await;
    Ok(())
}

pub use crate::recordings::search::bench::Figures as SearchFigures;

/// Search inside recordings (`examples/recording_search.rs`): `n` sealed
/// terminal recordings of about `kib` KiB written into a new site at
/// `data_dir` (its database there, or the empty PostgreSQL database at
/// `postgres`), indexed, then searched `searches` times per query.
///
/// # Errors
/// The site cannot be made, or writing, indexing or searching failed.
pub async fn recording_search(
    data_dir: &Path,
    postgres: Option<&str>,
    n: usize,
    kib: usize,
    searches: usize,
) -> Result<SearchFigures, Box<dyn std::error::Error + Send + Sync>> {
    let keys = crate::keys::Keyring::open(data_dir)?;
    let store = match postgres {
        None => {
            open_site(
                Location::Sqlite {
                    path: crate::app::db_path(data_dir),
                    keys: &keys,
                    rekey: false,
                },
                crate::schema::SCHEMA,
            )
            .await?
        }
        Some(url) => {
            open_site(
                Location::Postgres {
                    url,
                    max_connections: 8,
                },
                crate::schema::SCHEMA,
            )
            .await?
        }
    };
    let blobs = crate::blobs::open(&crate::config::BlobsConfig::Local, data_dir).await?;
    let figures =
        crate::recordings::search::bench::run(&store, &keys, &blobs, data_dir, n, kib, searches)
            .await;
    store.close().await;
    figures
}
