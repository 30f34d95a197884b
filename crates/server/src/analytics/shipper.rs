//! The logging pipeline: copies the site's events into the analytics store
//! with the write identity, at least once, with idempotent ids.
//!
//! Sources are the main store's append-only records, read after a cursor:
//!
//! - the audit log (`events`, by entry id): sessions opened, attended
//!   support (request, accept — with the customer's wait —, rating, end),
//!   logins (failed ones included) and every other audited action;
//! - the EPM events endpoints reported (`epm_events`, by row id): elevation
//!   decisions with their rule, program and outcome;
//! - the Package Manager's per-endpoint records (`package_events`, by row
//!   id): each task sent (`pending`) and each result (installed, removed,
//!   unchanged, refused, failed) with the version afterwards.
//!
//! A batch is written to the analytics store first; only then is the
//! cursor advanced and saved (`<data dir>/analytics-cursor.json`, replaced
//! atomically and fsynced). A crash in between sends the batch again, and
//! the store skips ids it holds. While the store is unreachable the cursor
//! stays put and the shipper retries with backoff (1 s doubling to 10 s);
//! nothing is kept in memory that the main store does not hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AnalyticsWriter, Event};
use crate::store::{Store, sql};

/// Events read per source and batch.
pub(crate) const BATCH: u32 = 1000;
/// Pause between polls once caught up.
const POLL: Duration = Duration::from_millis(500);
/// Backoff bounds while the store is unreachable.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often the writer's upkeep runs (the embedded key's wrap).
const UPKEEP: Duration = Duration::from_secs(60);
/// How long the shutdown's last flush may take.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Where each source was shipped up to, and into which store.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Cursor {
    /// The store the positions belong to ([`AnalyticsWriter::describe`]):
    /// another store starts from the beginning.
    pub(crate) store: String,
    /// Last audit entry id shipped.
    pub(crate) audit: i64,
    /// Last EPM event row id shipped.
    pub(crate) epm: i64,
    /// Last `package_events` row id shipped (absent in cursors from
    /// before the package source: from the start).
    #[serde(default)]
    pub(crate) packages: i64,
}

/// The cursor file.
pub(crate) fn cursor_path(data_dir: &Path) -> PathBuf {
    data_dir.join("analytics-cursor.json")
}

impl Cursor {
    /// The saved cursor for `store` (from the start when none, or when it
    /// was for another store).
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub(crate) fn load(path: &Path, store: &str) -> std::io::Result<Self> {
        let fresh = Self {
            store: store.to_owned(),
            ..Self::default()
        };
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Self>(&bytes) {
                Ok(c) if c.store == store => Ok(c),
                Ok(_) => Ok(fresh),
                Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh),
            Err(e) => Err(e),
        }
    }

    /// Saves it durably (atomic replace, fsynced).
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        jumpgate_net::fs::write_private_atomic(path, &bytes)
    }
}

/// An audit entry as the shipper reads it.
pub(crate) use crate::store::audit::Row as AuditRow;

/// Audit entries after `after`, oldest first.
async fn audit_after(db: &Store, after: i64, limit: u32) -> Result<Vec<AuditRow>, sqlx::Error> {
    crate::store::audit::after(db, after, limit).await
}

/// A support session's request time and technician, for the wait of
/// `support-accept` and the technician of a rating.
async fn support_facts(db: &Store, id: &str) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT requested_at, owner_name FROM support_sessions WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// The value of `key=` in an audit detail (`rating=4 comment_bytes=0`).
fn detail_value<'a>(detail: &'a str, key: &str) -> Option<&'a str> {
    detail
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// An audit entry as an analytics event (the support facts looked up by
/// the caller for support entries).
pub(crate) fn from_audit(r: &AuditRow, support: Option<&(i64, Option<String>)>) -> Event {
    let grp = r
        .groups
        .as_deref()
        .and_then(|g| serde_json::from_str::<Vec<String>>(g).ok())
        .and_then(|g| g.into_iter().next())
        .unwrap_or_default();
    let mut e = Event {
        id: format!("audit:{}", r.id),
        at: r.at,
        kind: "audit".into(),
        action: r.action.clone(),
        actor: r.actor.clone(),
        target: r.target.clone(),
        grp,
        outcome: r.outcome.clone(),
        rule: String::new(),
        program: String::new(),
        value: None,
        detail: r.detail.clone(),
    };
    if let Some(kind) = r.action.strip_prefix("session-open:") {
        e.kind = "session".into();
        e.action = kind.to_owned();
    } else if r.action == "login" {
        e.kind = "login".into();
        e.action = "login".into();
    } else if let Some(step) = r.action.strip_prefix("support-") {
        let technician = support.and_then(|(_, owner)| owner.clone());
        match (step, r.outcome.as_str()) {
            ("request", _) => {
                e.kind = "support".into();
                e.action = "request".into();
            }
            ("accept", _) => {
                e.kind = "support".into();
                e.action = "accept".into();
                e.value = support.map(|(requested, _)| (r.at - requested).max(0));
            }
            ("end", "rated") => {
                e.kind = "support".into();
                e.action = "rated".into();
                e.value = detail_value(&r.detail, "rating").and_then(|v| v.parse().ok());
                if let Some(t) = technician {
                    e.actor = t;
                }
            }
            ("end", _) => {
                e.kind = "support".into();
                e.action = "end".into();
            }
            _ => {}
        }
    }
    e
}

/// An EPM event row (`epm::store::events`: id, endpoint, seq, at, body,
/// group) as an analytics event.
pub(crate) fn from_epm(row: &crate::epm::store::EventRow) -> Event {
    use jumpgate_proto::epm::{EpmEvent, EpmEventKind};
    let (id, endpoint, _seq, at, body, group) = row;
    let at_ms = crate::ids::parse_rfc3339(at).unwrap_or(0);
    let mut e = Event {
        id: format!("epm:{id}"),
        at: at_ms,
        kind: "epm".into(),
        action: String::new(),
        actor: String::new(),
        target: endpoint.clone(),
        grp: group.clone(),
        outcome: String::new(),
        rule: String::new(),
        program: String::new(),
        value: None,
        detail: String::new(),
    };
    let Ok(ev) = serde_json::from_str::<EpmEvent>(body) else {
        e.action = "unreadable".into();
        return e;
    };
    match ev.kind {
        EpmEventKind::Decision {
            user,
            program,
            action,
            rule,
            outcome,
            detail,
            exit_code,
            ..
        } => {
            e.kind = "elevation".into();
            e.action = action;
            e.actor = user;
            e.program = program;
            e.rule = rule;
            e.outcome = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            e.detail = detail;
            e.value = exit_code.map(i64::from);
        }
        EpmEventKind::Exited {
            user,
            program,
            rule,
            exit_code,
            ..
        } => {
            e.action = "exited".into();
            e.actor = user;
            e.program = program;
            e.rule = rule;
            e.value = Some(i64::from(exit_code));
        }
        EpmEventKind::ApprovalRequested {
            user,
            program,
            rule,
            reason,
            ..
        } => {
            e.action = "approval-requested".into();
            e.actor = user;
            e.program = program;
            e.rule = rule;
            e.detail = reason;
        }
        EpmEventKind::BundleAccepted { version } => {
            e.action = "bundle-accepted".into();
            e.value = i64::try_from(version).ok();
        }
        EpmEventKind::BundleRefused { version, why } => {
            e.action = "bundle-refused".into();
            e.value = i64::try_from(version).ok();
            e.detail = why;
        }
        EpmEventKind::AdminSession {
            user,
            minutes,
            rule,
            ended,
            ..
        } => {
            e.action = if ended {
                "admin-session-end".into()
            } else {
                "admin-session".into()
            };
            e.actor = user;
            e.rule = rule;
            e.value = Some(i64::from(minutes));
        }
    }
    e
}

/// A Package Manager record (`packages::store::events_after`) as an
/// analytics event: kind `package`, the task's action, the endpoint and its
/// group, the package as `program`, the outcome, the version afterwards
/// (or asked, for `pending`) as `detail`.
pub(crate) fn from_package(row: &crate::packages::store::EventRow) -> Event {
    let (id, endpoint, group, package, action, version, outcome, _message, at) = row;
    Event {
        id: format!("package:{id}"),
        at: *at,
        kind: "package".into(),
        action: action.clone(),
        actor: String::new(),
        target: endpoint.clone(),
        grp: group.clone(),
        outcome: outcome.clone(),
        rule: String::new(),
        program: package.clone(),
        value: None,
        detail: version.clone().unwrap_or_default(),
    }
}

/// Why a shipping round stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShipError {
    #[error("reading the main store: {0}")]
    Source(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] super::AnalyticsError),
    #[error("cursor file: {0}")]
    Cursor(std::io::Error),
}

/// One round: at most one batch per source. Returns how many events were
/// shipped (a full batch means more may be waiting).
///
/// # Errors
/// A source or the store failed; the cursor is where it was.
pub(crate) async fn ship_once(
    db: &Store,
    writer: &AnalyticsWriter,
    cursor: &mut Cursor,
    path: &Path,
) -> Result<usize, ShipError> {
    let rows = audit_after(db, cursor.audit, BATCH).await?;
    let mut shipped = 0;
    if let Some(last) = rows.last().map(|r| r.id) {
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let facts = if matches!(r.action.as_str(), "support-accept" | "support-end") {
                support_facts(db, &r.target).await?
            } else {
                None
            };
            events.push(from_audit(r, facts.as_ref()));
        }
        writer.insert(&events).await?;
        cursor.audit = last;
        cursor.save(path).map_err(ShipError::Cursor)?;
        shipped += events.len();
    }
    let rows = crate::epm::store::events(db, None, cursor.epm, BATCH).await?;
    if let Some(last) = rows.last().map(|r| r.0) {
        let events: Vec<Event> = rows.iter().map(from_epm).collect();
        writer.insert(&events).await?;
        cursor.epm = last;
        cursor.save(path).map_err(ShipError::Cursor)?;
        shipped += events.len();
    }
    let rows = crate::packages::store::events_after(db, cursor.packages, BATCH).await?;
    if let Some(last) = rows.last().map(|r| r.0) {
        let events: Vec<Event> = rows.iter().map(from_package).collect();
        writer.insert(&events).await?;
        cursor.packages = last;
        cursor.save(path).map_err(ShipError::Cursor)?;
        shipped += events.len();
    }
    Ok(shipped)
}

/// The shipper task: runs until `stop`, then flushes what is waiting (for
/// at most [`FLUSH_GRACE`]) and closes the write identity.
pub(crate) async fn run(
    db: Store,
    writer: AnalyticsWriter,
    data_dir: PathBuf,
    stop: CancellationToken,
) {
    let path = cursor_path(&data_dir);
    let store = writer.describe();
    let mut cursor = match Cursor::load(&path, &store) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "analytics cursor unreadable; starting from the beginning (the store skips what it holds)");
            Cursor {
                store: store.clone(),
                ..Cursor::default()
            }
        }
    };
    tracing::info!(store = %store, audit = cursor.audit, epm = cursor.epm, packages = cursor.packages, "analytics shipper started");
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let mut upkeep = std::time::Instant::now();
    writer.maintain();
    loop {
        if upkeep.elapsed() >= UPKEEP {
            writer.maintain();
            upkeep = std::time::Instant::now();
        }
        let wait = match ship_once(&db, &writer, &mut cursor, &path).await {
            Ok(n) => {
                if failing {
                    tracing::info!(store = %store, "analytics store reachable again; shipping resumed");
                    failing = false;
                }
                backoff = BACKOFF_MIN;
                if n > 0 {
                    tracing::debug!(events = n, "analytics events shipped");
                }
                if n >= BATCH as usize {
                    Duration::ZERO
                } else {
                    POLL
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(store = %store, error = %e, "cannot ship analytics events; retrying (nothing is lost: they wait in the main store)");
                    failing = true;
                }
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                w
            }
        };
        if stop.is_cancelled() {
            break;
        }
        if !wait.is_zero() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
    // The last events of the stopping gateway (its shutdown's audit
    // entries included): while the store answers and within the grace.
    let _ = tokio::time::timeout(FLUSH_GRACE, async {
        while let Ok(n) = ship_once(&db, &writer, &mut cursor, &path).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    writer.close().await;
    tracing::info!(
        audit = cursor.audit,
        epm = cursor.epm,
        packages = cursor.packages,
        "analytics shipper stopped"
    );
}
