//! Analytics: every event of the site (sessions, attended support,
//! elevation, the audit log with its failed logins) copied into a store of
//! its own for reports, by two identities that cannot do each other's job:
//!
//! - the **write identity** ([`AnalyticsWriter`]) belongs to the gateway's
//!   logging pipeline (`shipper`): it inserts events and has no query
//!   method;
//! - the **read identity** ([`AnalyticsReader`]) is used only by reports
//!   (`reports`, `http`): it runs queries and has no write method.
//!
//! Three engines (`[analytics] backend`):
//!
//! | engine | write identity | read identity |
//! |---|---|---|
//! | `embedded` (default) | the gateway's connection to `<data dir>/analytics.db`, a SQLCipher file of its own (key: a data key wrapped under the `database` KEK, in `<data dir>/analytics.key`) | a second pool opened `mode=ro` with `PRAGMA query_only` |
//! | `postgres` | a role with `INSERT` on the event table only (`jumpgate admin analytics init`) | a role with `SELECT` only: its URL can be handed to an outside reporting tool |
//! | `opensearch` | a user allowed `_bulk` (create) on the index | a user allowed `_search` on the index |
//!
//! Delivery is at least once with idempotent ids: the shipper reads the
//! main store's append-only sources after a durable cursor
//! (`<data dir>/analytics-cursor.json`), writes a batch, and only then
//! advances the cursor; the store ignores an id it already holds
//! (`ON CONFLICT DO NOTHING`, OpenSearch `create` with `_id`). A restart or
//! an unreachable store therefore loses nothing and duplicates nothing.

pub(crate) mod embedded;
pub(crate) mod http;
pub(crate) mod opensearch;
pub(crate) mod pg;
pub(crate) mod reports;
pub(crate) mod shipper;

use std::path::Path;
use std::sync::Arc;

use crate::config::AnalyticsConfig;

pub use pg::{InitRoles, init_postgres};

/// Why the analytics store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The database (embedded or PostgreSQL) refused or failed.
    #[error("analytics database: {0}")]
    Db(#[from] sqlx::Error),
    /// The embedded file's key could not be made or unwrapped.
    #[error("analytics key: {0}")]
    Keys(#[from] crate::keys::KeyError),
    /// A file (key, password, cursor) could not be read or written.
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// The OpenSearch/Elasticsearch cluster could not be reached.
    #[error("analytics cluster {url}: {message}")]
    Http { url: String, message: String },
    /// The cluster answered with an error.
    #[error("analytics cluster answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// A setting is unusable (found when opening).
    #[error("analytics: {0}")]
    Config(String),
}

/// One event as the analytics store keeps it: a flat row that every
/// engine stores the same way, and every report reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Event {
    /// Idempotent id: `audit:<entry id>`, `epm:<event row id>`. The same
    /// source row always gives the same id.
    pub(crate) id: String,
    /// When it happened, ms since the epoch (UTC).
    pub(crate) at: i64,
    /// `session`, `support`, `elevation`, `epm`, `login` or `audit`.
    pub(crate) kind: String,
    /// What within the kind (`shell`, `accept`, `block`, an audit action).
    pub(crate) action: String,
    /// Who: the technician, the endpoint's user, the account.
    pub(crate) actor: String,
    /// What: the endpoint, the support session, the audit target.
    pub(crate) target: String,
    /// The endpoint group, `""` for site-wide events.
    pub(crate) grp: String,
    pub(crate) outcome: String,
    /// The EPM rule that matched (elevation).
    pub(crate) rule: String,
    /// The program (elevation).
    pub(crate) program: String,
    /// A number: a support wait in ms, a rating, an exit code.
    pub(crate) value: Option<i64>,
    pub(crate) detail: String,
}

impl Event {
    /// The UTC day of `at`, `YYYY-MM-DD` (stored, so every engine groups
    /// by day the same way).
    pub(crate) fn day(&self) -> String {
        day_of(self.at)
    }
}

/// `YYYY-MM-DD` of a time in ms (UTC).
pub(crate) fn day_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The write identity: inserts events, idempotently. Has no query method.
#[derive(Debug)]
pub(crate) enum AnalyticsWriter {
    Embedded(embedded::Writer),
    Postgres(pg::Writer),
    OpenSearch(opensearch::Writer),
}

impl AnalyticsWriter {
    /// Stores `events`; ids already stored are skipped. All or nothing is
    /// acknowledged: an error means the batch is sent again.
    ///
    /// # Errors
    /// The store is unreachable or refused the batch.
    pub(crate) async fn insert(&self, events: &[Event]) -> Result<(), AnalyticsError> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Self::Embedded(w) => w.insert(events).await,
            Self::Postgres(w) => w.insert(events).await,
            Self::OpenSearch(w) => w.insert(events).await,
        }
    }

    /// Names the store for the cursor file and logs (no secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Embedded(w) => w.describe(),
            Self::Postgres(w) => w.describe(),
            Self::OpenSearch(w) => w.describe(),
        }
    }

    /// Upkeep the shipper runs now and then (the embedded key's wrap).
    pub(crate) fn maintain(&self) {
        if let Self::Embedded(w) = self {
            w.maintain();
        }
    }

    /// Closes connections (shutdown, after the last batch).
    pub(crate) async fn close(&self) {
        match self {
            Self::Embedded(w) => w.close().await,
            Self::Postgres(w) => w.close().await,
            Self::OpenSearch(_) => {}
        }
    }
}

/// The read identity: runs report queries. Has no write method.
#[derive(Debug)]
pub(crate) enum AnalyticsReader {
    Embedded(embedded::Reader),
    Postgres(pg::Reader),
    OpenSearch(opensearch::Reader),
}

impl AnalyticsReader {
    /// Runs one report query.
    ///
    /// # Errors
    /// The store is unreachable or refused the query.
    pub(crate) async fn query(
        &self,
        q: &reports::Query<'_>,
    ) -> Result<Vec<reports::Group>, AnalyticsError> {
        match self {
            Self::Embedded(r) => r.query(q).await,
            Self::Postgres(r) => r.query(q).await,
            Self::OpenSearch(r) => r.query(q).await,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Embedded(r) => r.close().await,
            Self::Postgres(r) => r.close().await,
            Self::OpenSearch(_) => {}
        }
    }
}

/// What the gateway's state holds: the read identity for reports (the
/// write identity belongs to the shipper task alone).
#[derive(Clone, Debug, Default)]
pub(crate) struct Reports(Option<Arc<AnalyticsReader>>);

impl Reports {
    pub(crate) fn new(reader: AnalyticsReader) -> Self {
        Self(Some(Arc::new(reader)))
    }

    pub(crate) fn reader(&self) -> Option<&AnalyticsReader> {
        self.0.as_deref()
    }
}

/// Opens both identities of the configured store. The embedded file is
/// created (and its key made) on first use; the reader opens it read-only
/// once the writer has.
///
/// # Errors
/// The store cannot be opened, a password file cannot be read.
pub(crate) async fn open(
    config: &AnalyticsConfig,
    data_dir: &Path,
    keys: &crate::keys::Keyring,
) -> Result<(AnalyticsWriter, AnalyticsReader), AnalyticsError> {
    match config {
        AnalyticsConfig::Embedded => {
            let key = embedded::key(data_dir, keys)?;
            let path = embedded::path(data_dir);
            let w = embedded::Writer::open(&path, &key).await?;
            let r = embedded::Reader::open(&path, &key).await?;
            let w = w.with_key_wrap(embedded::KeyWrap::new(data_dir, keys, key));
            Ok((AnalyticsWriter::Embedded(w), AnalyticsReader::Embedded(r)))
        }
        AnalyticsConfig::Postgres {
            write_url,
            write_password_file,
            read_url,
            read_password_file,
        } => {
            let wpw = read_secret(write_password_file.as_deref())?;
            let rpw = read_secret(read_password_file.as_deref())?;
            let w = pg::Writer::open(write_url, wpw.as_deref().map(String::as_str))?;
            let r = pg::Reader::open(read_url, rpw.as_deref().map(String::as_str))?;
            Ok((AnalyticsWriter::Postgres(w), AnalyticsReader::Postgres(r)))
        }
        AnalyticsConfig::OpenSearch(c) => {
            let wpw = read_secret(Some(c.write_password_file.as_path()))?.unwrap_or_default();
            let rpw = read_secret(Some(c.read_password_file.as_path()))?.unwrap_or_default();
            let w = opensearch::Writer::new(c, &wpw)?;
            let r = opensearch::Reader::new(c, &rpw)?;
            Ok((
                AnalyticsWriter::OpenSearch(w),
                AnalyticsReader::OpenSearch(r),
            ))
        }
    }
}

/// The first line of a secret file, trimmed (`None` without a file).
fn read_secret(path: Option<&Path>) -> Result<Option<zeroize::Zeroizing<String>>, AnalyticsError> {
    let Some(path) = path else { return Ok(None) };
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|cause| {
        AnalyticsError::Io {
            path: path.display().to_string(),
            cause,
        }
    })?);
    Ok(Some(zeroize::Zeroizing::new(
        text.lines().next().unwrap_or("").trim().to_owned(),
    )))
}

/// What the benchmark (`jumpgate-bench --analytics`) drives: the two
/// identities of each engine over synthetic events.
pub mod bench {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::{AnalyticsError, AnalyticsReader, AnalyticsWriter, Event, embedded, pg, reports};

    /// Events `from..from + n` of `total` generated from `seed`: a year of
    /// a site with 200 technicians, 5,000 endpoints in 50 groups; a mix of
    /// sessions, logins (a third failed), elevations (a fifth denied),
    /// support and other audit entries. In time order as the shipper sends
    /// them (event `i` at `i / total` of the year, give or take a slot).
    #[must_use]
    pub fn synthetic(from: u64, n: usize, total: u64, seed: u64) -> Vec<EventRow> {
        let mut x = seed ^ 0x9e37_79b9_7f4a_7c15 ^ from;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let start = 1_735_689_600_000_i64; // 2025-01-01
        let year: u64 = 365 * 86_400_000;
        let slot = (year / total.max(1)).max(1);
        (0..n as u64)
            .map(|i| {
                let r = next();
                let at = start
                    + i64::try_from(((from + i) * slot + r % slot).min(year - 1)).unwrap_or(0);
                let tech = format!("tech-{}", next() % 200);
                let ep = next() % 5000;
                let endpoint = format!("host-{ep}");
                let grp = format!("group-{}", ep % 50);
                let pick = next() % 100;
                let (kind, action, outcome, rule, program, value) = match pick {
                    0..=24 => ("session", "shell", "ok", "", "".to_owned(), None),
                    25..=34 => (
                        "login",
                        "login",
                        if next() % 3 == 0 { "failed" } else { "ok" },
                        "",
                        String::new(),
                        None,
                    ),
                    35..=49 => (
                        "elevation",
                        "elevate",
                        if next() % 5 == 0 { "denied" } else { "allowed" },
                        "rule",
                        format!("/usr/bin/prog-{}", next() % 300),
                        None,
                    ),
                    50..=54 => (
                        "support",
                        "accept",
                        "ok",
                        "",
                        String::new(),
                        Some(i64::try_from(next() % 600_000).unwrap_or(0)),
                    ),
                    55..=57 => (
                        "support",
                        "rated",
                        "rated",
                        "",
                        String::new(),
                        Some(i64::try_from(1 + next() % 5).unwrap_or(1)),
                    ),
                    _ => ("audit", "recording-view", "ok", "", String::new(), None),
                };
                EventRow(Event {
                    id: format!("bench:{}", from + i),
                    at,
                    kind: kind.into(),
                    action: action.into(),
                    actor: tech,
                    target: endpoint,
                    grp,
                    outcome: outcome.into(),
                    rule: if rule.is_empty() {
                        String::new()
                    } else {
                        format!("rule-{}", next() % 40)
                    },
                    program,
                    value,
                    detail: String::new(),
                })
            })
            .collect()
    }

    /// An event for the benchmark (opaque).
    #[derive(Clone, Debug)]
    pub struct EventRow(Event);

    /// A store opened for the benchmark: both identities.
    #[derive(Debug)]
    pub struct Bench {
        writer: AnalyticsWriter,
        reader: AnalyticsReader,
    }

    impl Bench {
        /// The embedded file in `dir` (a fixed benchmark key).
        ///
        /// # Errors
        /// The file cannot be made.
        pub async fn embedded(dir: &Path) -> Result<Self, AnalyticsError> {
            // A site's keyring in `dir`, and the analytics key as a site
            // makes it.
            let keys = crate::keys::Keyring::open(dir)?;
            let key = embedded::key(dir, &keys)?;
            let path = embedded::path(dir);
            let writer = AnalyticsWriter::Embedded(embedded::Writer::open(&path, &key).await?);
            let reader = AnalyticsReader::Embedded(embedded::Reader::open(&path, &key).await?);
            Ok(Self { writer, reader })
        }

        /// PostgreSQL: `jumpgate admin analytics init` on `admin_url` with
        /// roles suffixed by `tag`, then the two roles' connections.
        ///
        /// # Errors
        /// The server refused.
        pub async fn postgres(admin_url: &str, tag: &str) -> Result<Self, AnalyticsError> {
            let (w, r) = (format!("jg_bench_w_{tag}"), format!("jg_bench_r_{tag}"));
            let init = pg::init_postgres(admin_url, &w, "bench-w", &r, "bench-r").await?;
            Ok(Self {
                writer: AnalyticsWriter::Postgres(pg::Writer::open(
                    &init.write_url,
                    Some("bench-w"),
                )?),
                reader: AnalyticsReader::Postgres(pg::Reader::open(
                    &init.read_url,
                    Some("bench-r"),
                )?),
            })
        }

        /// Inserts `events` in batches of `batch` (the shipper's batch is
        /// 1000) with the write identity; the time it took.
        ///
        /// # Errors
        /// The store failed.
        pub async fn ingest(
            &self,
            events: &[EventRow],
            batch: usize,
        ) -> Result<Duration, AnalyticsError> {
            let rows: Vec<Event> = events.iter().map(|e| e.0.clone()).collect();
            let t = Instant::now();
            for chunk in rows.chunks(batch.max(1)) {
                self.writer.insert(chunk).await?;
            }
            Ok(t.elapsed())
        }

        /// Runs report `name` with the read identity over `[since, until)`
        /// (ms; `None`: unbounded), of one group or all; its time and row
        /// count.
        ///
        /// # Errors
        /// Unknown report, or the store failed.
        pub async fn report(
            &self,
            name: &str,
            since: Option<i64>,
            until: Option<i64>,
            group: Option<&str>,
        ) -> Result<(Duration, usize), AnalyticsError> {
            let spec = reports::find(name)
                .ok_or_else(|| AnalyticsError::Config(format!("no report {name}")))?;
            let mut q = reports::Query::all(spec);
            q.since = since;
            q.until = until;
            q.group = group;
            let t = Instant::now();
            let mut g = self.reader.query(&q).await?;
            reports::sort(spec, &mut g);
            let table = reports::table(spec, &g);
            Ok((t.elapsed(), table.rows.len()))
        }

        /// Every report's name.
        #[must_use]
        pub fn report_names() -> Vec<&'static str> {
            reports::REPORTS.iter().map(|s| s.name).collect()
        }

        pub async fn close(&self) {
            self.writer.close().await;
            self.reader.close().await;
        }
    }
}

#[cfg(test)]
mod tests;
