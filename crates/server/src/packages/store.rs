//! The domain's rows: uploads, publisher keys, assignments, results and
//! inventories.

use jumpgate_proto::packages::{InventoryReport, TaskResult};

use crate::keys::now_ms;
use crate::store::{Exec, Store, WriteTx, sql};

/// An uploaded package as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackageRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) architecture: String,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) publisher: Option<String>,
    pub(crate) description: String,
    pub(crate) depends: String,
    pub(crate) blob_key: String,
    pub(crate) manifest_key: String,
    pub(crate) manifest_sha256: String,
    pub(crate) key_id: String,
    pub(crate) uploaded_by: String,
    pub(crate) uploaded_at: i64,
}

type RawPackage = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
);

fn package(r: RawPackage) -> PackageRow {
    PackageRow {
        id: r.0,
        name: r.1,
        version: r.2,
        architecture: r.3,
        sha256: r.4,
        size: u64::try_from(r.5).unwrap_or(0),
        publisher: r.6,
        description: r.7,
        depends: r.8,
        blob_key: r.9,
        manifest_key: r.10,
        manifest_sha256: r.11,
        key_id: r.12,
        uploaded_by: r.13,
        uploaded_at: r.14,
    }
}

macro_rules! packages {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, version, architecture, sha256, size, publisher, description, depends,
                    blob_key, manifest_key, manifest_sha256, key_id, uploaded_by, uploaded_at
             FROM packages ",
            $rest
        )
    };
}

/// Every upload (of `name`), in no particular order.
pub(crate) async fn packages(
    e: &mut dyn Exec,
    name: Option<&str>,
) -> Result<Vec<PackageRow>, sqlx::Error> {
    let rows: Vec<RawPackage> = match name {
        Some(n) => sql!(e, |c| sqlx::query_as(packages!("WHERE name = $1"))
            .bind(n)
            .fetch_all(&mut *c)
            .await)?,
        None => sql!(e, |c| sqlx::query_as(packages!(
            "ORDER BY name LIMIT 10000"
        ))
        .fetch_all(&mut *c)
        .await)?,
    };
    Ok(rows.into_iter().map(package).collect())
}

pub(crate) async fn package_by_id(
    e: &mut dyn Exec,
    id: &str,
) -> Result<Option<PackageRow>, sqlx::Error> {
    let r: Option<RawPackage> = sql!(e, |c| sqlx::query_as(packages!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(r.map(package))
}

pub(crate) async fn package_by_identity(
    e: &mut dyn Exec,
    name: &str,
    version: &str,
    architecture: &str,
) -> Result<Option<PackageRow>, sqlx::Error> {
    let r: Option<RawPackage> = sql!(e, |c| sqlx::query_as(packages!(
        "WHERE name = $1 AND version = $2 AND architecture = $3"
    ))
    .bind(name)
    .bind(version)
    .bind(architecture)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(r.map(package))
}

pub(crate) async fn insert_package(w: &mut WriteTx, p: &PackageRow) -> Result<(), sqlx::Error> {
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO packages (id, name, version, architecture, sha256, size, publisher, description,
             depends, blob_key, manifest_key, manifest_sha256, key_id, uploaded_by, uploaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.version)
    .bind(&p.architecture)
    .bind(&p.sha256)
    .bind(i64::try_from(p.size).unwrap_or(i64::MAX))
    .bind(&p.publisher)
    .bind(&p.description)
    .bind(&p.depends)
    .bind(&p.blob_key)
    .bind(&p.manifest_key)
    .bind(&p.manifest_sha256)
    .bind(&p.key_id)
    .bind(&p.uploaded_by)
    .bind(p.uploaded_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub(crate) async fn delete_package(w: &mut WriteTx, id: &str) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query("DELETE FROM packages WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// A trusted publisher key: (name, key id, public key, added_by, added_at).
pub(crate) type PublisherRow = (String, String, String, String, i64);

pub(crate) async fn publishers(e: &mut dyn Exec) -> Result<Vec<PublisherRow>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT name, key_id, public_key, added_by, added_at FROM package_publishers ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)
}

/// Adds a publisher; `false` when the name or key id is taken.
pub(crate) async fn add_publisher(w: &mut WriteTx, p: &PublisherRow) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query(
        "INSERT INTO package_publishers (name, key_id, public_key, added_by, added_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
    )
    .bind(&p.0)
    .bind(&p.1)
    .bind(&p.2)
    .bind(&p.3)
    .bind(p.4)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub(crate) async fn remove_publisher(w: &mut WriteTx, name: &str) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query(
        "DELETE FROM package_publishers WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// An assignment: (group, package, action, version, updated_by, updated_at).
pub(crate) type AssignmentRow = (String, String, String, Option<String>, String, i64);

pub(crate) async fn assignments(
    e: &mut dyn Exec,
    group: Option<&str>,
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    match group {
        Some(g) => sql!(e, |c| sqlx::query_as(
            "SELECT group_name, package, action, version, updated_by, updated_at
             FROM package_assignments WHERE group_name = $1 ORDER BY package"
        )
        .bind(g)
        .fetch_all(&mut *c)
        .await),
        None => sql!(e, |c| sqlx::query_as(
            "SELECT group_name, package, action, version, updated_by, updated_at
             FROM package_assignments ORDER BY group_name, package"
        )
        .fetch_all(&mut *c)
        .await),
    }
}

pub(crate) async fn put_assignment(w: &mut WriteTx, a: &AssignmentRow) -> Result<(), sqlx::Error> {
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO package_assignments (group_name, package, action, version, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (group_name, package) DO UPDATE SET action = excluded.action,
             version = excluded.version, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at"
    )
    .bind(&a.0)
    .bind(&a.1)
    .bind(&a.2)
    .bind(&a.3)
    .bind(&a.4)
    .bind(a.5)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub(crate) async fn delete_assignment(
    w: &mut WriteTx,
    group: &str,
    package: &str,
) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query(
        "DELETE FROM package_assignments WHERE group_name = $1 AND package = $2"
    )
    .bind(group)
    .bind(package)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Whether an assignment pins `name` at `version`.
pub(crate) async fn pinned(
    e: &mut dyn Exec,
    name: &str,
    version: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT group_name FROM package_assignments
         WHERE package = $1 AND version = $2 AND action = 'install' LIMIT 1"
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *c)
    .await)
}

pub(crate) async fn group_exists(e: &mut dyn Exec, group: &str) -> Result<bool, sqlx::Error> {
    let n: Option<i64> = sql!(e, |c| sqlx::query_scalar(
        // BIGINT on both engines (PostgreSQL's bare `1` is INT4).
        "SELECT CAST(1 AS BIGINT) FROM groups WHERE name = $1"
    )
    .bind(group)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(n.is_some())
}

/// Stores what an agent reported of its tasks.
pub(crate) async fn record_results(
    db: &Store,
    agent: &str,
    results: &[TaskResult],
) -> Result<(), sqlx::Error> {
    if results.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut w = db.write().await?;
    for r in results {
        let output = jumpgate_proto::packages::bound_output(&r.output);
        let message: String = r.message.chars().take(2000).collect();
        sql!(w, |c| sqlx::query(
            "INSERT INTO package_results (agent_id, package, action, version, outcome, message,
                 output, attempts, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (agent_id, package) DO UPDATE SET action = excluded.action,
                 version = excluded.version, outcome = excluded.outcome,
                 message = excluded.message, output = excluded.output,
                 attempts = excluded.attempts, updated_at = excluded.updated_at"
        )
        .bind(agent)
        .bind(&r.name)
        .bind(r.action.as_str())
        .bind(&r.version)
        .bind(r.outcome.as_str())
        .bind(&message)
        .bind(&output)
        .bind(i64::from(r.attempts))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        let message: String = message.chars().take(500).collect();
        add_event(
            &mut w,
            agent,
            &r.name,
            r.action.as_str(),
            r.version.as_deref(),
            r.outcome.as_str(),
            &message,
            now,
        )
        .await?;
    }
    w.commit().await
}

/// One row of `package_events` (the analytics shipper's source).
#[allow(clippy::too_many_arguments)]
async fn add_event(
    w: &mut WriteTx,
    agent: &str,
    package: &str,
    action: &str,
    version: Option<&str>,
    outcome: &str,
    message: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sql!(w, |c| sqlx::query(
        "INSERT INTO package_events (agent_id, package, action, version, outcome, message, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(agent)
    .bind(package)
    .bind(action)
    .bind(version)
    .bind(outcome)
    .bind(message)
    .bind(at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records that `agent` was sent `tasks` (each `pending` until it
/// answers): the compliance report counts an endpoint told but silent.
pub(crate) async fn record_pending(
    db: &Store,
    agent: &str,
    tasks: &[jumpgate_proto::packages::PackageTask],
) -> Result<(), sqlx::Error> {
    if tasks.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut w = db.write().await?;
    for t in tasks {
        add_event(
            &mut w,
            agent,
            &t.name,
            t.action.as_str(),
            t.version.as_deref(),
            "pending",
            "",
            now,
        )
        .await?;
    }
    w.commit().await
}

/// A `package_events` row with its endpoint: (id, endpoint name, group,
/// package, action, version, outcome, message, at).
pub(crate) type EventRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
);

/// `package_events` after row `after`, oldest first (the shipper's
/// source).
pub(crate) async fn events_after(
    db: &Store,
    after: i64,
    limit: u32,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT v.id, COALESCE(e.name, v.agent_id), COALESCE(e.group_name, ''), v.package,
                v.action, v.version, v.outcome, v.message, v.at
         FROM package_events v LEFT JOIN endpoints e ON e.id = v.agent_id
         WHERE v.id > $1 ORDER BY v.id LIMIT $2"
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await)
}

/// A result row with its endpoint: (endpoint, group, agent id, package,
/// action, version, outcome, message, output, attempts, updated_at).
pub(crate) type ResultRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
);

pub(crate) async fn results(db: &Store) -> Result<Vec<ResultRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT e.name, e.group_name, r.agent_id, r.package, r.action, r.version, r.outcome,
                r.message, r.output, r.attempts, r.updated_at
         FROM package_results r JOIN endpoints e ON e.id = r.agent_id
         WHERE e.revoked_at IS NULL
         ORDER BY e.name, r.package LIMIT 20000"
    )
    .fetch_all(&mut *c)
    .await)
}

/// The inventory revision the gateway holds for `agent`.
pub(crate) async fn inventory_revision(
    db: &Store,
    agent: &str,
) -> Result<Option<u64>, sqlx::Error> {
    let mut c = db.conn().await?;
    let r: Option<i64> = sql!(c, |c| sqlx::query_scalar(
        "SELECT revision FROM package_inventory_agents WHERE agent_id = $1"
    )
    .bind(agent)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(r.and_then(|r| u64::try_from(r).ok()))
}

/// Applies an inventory report: a full list replaces what was stored; a
/// diff is applied only on top of the revision it was made from (`since`),
/// else it is ignored (`false`: ask again for the full list).
pub(crate) async fn apply_inventory(
    db: &Store,
    agent: &str,
    since: Option<u64>,
    report: &InventoryReport,
) -> Result<bool, sqlx::Error> {
    let mut w = db.write().await?;
    let held: Option<i64> = sql!(w, |c| sqlx::query_scalar(
        "SELECT revision FROM package_inventory_agents WHERE agent_id = $1"
    )
    .bind(agent)
    .fetch_optional(&mut *c)
    .await)?;
    let held = held.and_then(|r| u64::try_from(r).ok());
    if !report.full && (held.is_none() || held != since) {
        return Ok(false);
    }
    if report.full {
        sql!(w, |c| sqlx::query(
            "DELETE FROM package_inventory WHERE agent_id = $1"
        )
        .bind(agent)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    for (name, arch) in &report.removed {
        sql!(w, |c| {
            sqlx::query(
            "DELETE FROM package_inventory WHERE agent_id = $1 AND package = $2 AND architecture = $3"
        )
        .bind(agent)
        .bind(name)
        .bind(arch)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    for p in &report.packages {
        sql!(w, |c| {
            sqlx::query(
            "INSERT INTO package_inventory (agent_id, package, architecture, version)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (agent_id, package, architecture) DO UPDATE SET version = excluded.version"
        )
        .bind(agent)
        .bind(&p.name)
        .bind(&p.architecture)
        .bind(&p.version)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    let revision = i64::try_from(report.revision).unwrap_or(i64::MAX);
    sql!(w, |c| sqlx::query(
        "INSERT INTO package_inventory_agents (agent_id, revision, reported_at) VALUES ($1, $2, $3)
         ON CONFLICT (agent_id) DO UPDATE SET revision = excluded.revision,
             reported_at = excluded.reported_at"
    )
    .bind(agent)
    .bind(revision)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.commit().await?;
    Ok(true)
}

/// An inventory row: (endpoint, group, package, version, architecture,
/// reported_at).
pub(crate) type InventoryRow = (String, String, String, String, String, i64);

/// Installed packages, of `package` and/or on `endpoint` (at least one is
/// given), at most `limit` rows.
pub(crate) async fn inventory(
    db: &Store,
    package: Option<&str>,
    endpoint: Option<&str>,
    limit: i64,
) -> Result<Vec<InventoryRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT e.name, e.group_name, i.package, i.version, i.architecture, a.reported_at
         FROM package_inventory i
         JOIN endpoints e ON e.id = i.agent_id
         JOIN package_inventory_agents a ON a.agent_id = i.agent_id
         WHERE e.revoked_at IS NULL
           AND ($1 IS NULL OR i.package = $1)
           AND ($2 IS NULL OR e.name = $2)
         ORDER BY e.name, i.package, i.architecture LIMIT $3"
    )
    .bind(package)
    .bind(endpoint)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}
