//! Endpoints and their agents: enrollment, the registry of live agent
//! connections and the directory that locates them (`directory`), system
//! streams to agents (`system`), and the endpoint records in the store.

mod conn;
pub(crate) mod directory;
pub(crate) mod http;
pub(crate) mod reported;
pub(crate) mod system;

pub(crate) use conn::serve_agent;
pub(crate) use directory::{AgentDirectory, Location};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use jumpgate_api_types as api;
use jumpgate_net::mux::MuxHandle;
use sqlx::{Row, SqlitePool};

use crate::ids::{self, AgentId};

/// An endpoint as stored.
#[derive(Clone, Debug)]
pub(crate) struct EndpointRecord {
    pub(crate) id: AgentId,
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) public_key: Vec<u8>,
    pub(crate) details: api::EndpointDetails,
    pub(crate) enrolled_at: i64,
    pub(crate) last_seen: Option<i64>,
    pub(crate) revoked: bool,
    /// Refused second connections of this identity, if any.
    pub(crate) conflict: Option<Conflict>,
}

/// Second connections of one endpoint's identity, refused while the known
/// connection answered (a copied state directory or a stolen key).
#[derive(Clone, Debug)]
pub(crate) struct Conflict {
    pub(crate) last_at: i64,
    pub(crate) count: i64,
    /// Source address of the latest refused connection.
    pub(crate) newcomer: String,
}

fn record(row: &sqlx::sqlite::SqliteRow) -> EndpointRecord {
    EndpointRecord {
        id: AgentId(row.get("id")),
        name: row.get("name"),
        group: row.get("group_name"),
        public_key: row.get("public_key"),
        details: api::EndpointDetails {
            hostname: row.get("hostname"),
            os: row.get("os"),
            arch: row.get("arch"),
            agent_version: row.get("agent_version"),
        },
        enrolled_at: row.get("enrolled_at"),
        last_seen: row.get("last_seen"),
        revoked: row.get::<Option<i64>, _>("revoked_at").is_some(),
        conflict: row
            .get::<Option<i64>, _>("conflict_at")
            .map(|last_at| Conflict {
                last_at,
                count: row.get("conflict_count"),
                newcomer: row
                    .get::<Option<String>, _>("conflict_peer")
                    .unwrap_or_default(),
            }),
    }
}

pub(crate) async fn find_by_id(
    db: &SqlitePool,
    id: &AgentId,
) -> Result<Option<EndpointRecord>, sqlx::Error> {
    Ok(sqlx::query("SELECT * FROM endpoints WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(record))
}

/// The live (not revoked) endpoint of that name.
pub(crate) async fn find_by_name(
    db: &SqlitePool,
    name: &str,
) -> Result<Option<EndpointRecord>, sqlx::Error> {
    Ok(
        sqlx::query("SELECT * FROM endpoints WHERE name = ? AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(db)
            .await?
            .as_ref()
            .map(record),
    )
}

pub(crate) async fn list(db: &SqlitePool) -> Result<Vec<EndpointRecord>, sqlx::Error> {
    Ok(
        sqlx::query("SELECT * FROM endpoints WHERE revoked_at IS NULL ORDER BY name")
            .fetch_all(db)
            .await?
            .iter()
            .map(record)
            .collect(),
    )
}

/// Records that the agent is (or was just) connected, with fresh details.
pub(crate) async fn touch(
    db: &SqlitePool,
    id: &AgentId,
    details: Option<&api::EndpointDetails>,
) -> Result<(), sqlx::Error> {
    let cleaned = details.map(|d| reported::details(&d.hostname, &d.os, &d.arch, &d.agent_version));
    match &cleaned {
        Some(d) => sqlx::query(
            "UPDATE endpoints SET last_seen = ?, hostname = ?, os = ?, arch = ?, agent_version = ? WHERE id = ?",
        )
        .bind(ids::now_ms())
        .bind(&d.hostname)
        .bind(&d.os)
        .bind(&d.arch)
        .bind(&d.agent_version)
        .bind(id.as_str()),
        None => sqlx::query("UPDATE endpoints SET last_seen = ? WHERE id = ?")
            .bind(ids::now_ms())
            .bind(id.as_str()),
    }
    .execute(db)
    .await?;
    Ok(())
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("unknown enrollment token")]
    UnknownToken,
    #[error("enrollment token already used")]
    TokenSpent,
    #[error("enrollment token expired")]
    TokenExpired,
    #[error(
        "an endpoint named `{0}` is already enrolled; pick another --name or revoke the old endpoint"
    )]
    NameTaken(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("public key must be 32 bytes of Ed25519, base64-encoded")]
    InvalidKey,
    #[error("the endpoint this re-enrollment token was made for no longer exists (revoked?)")]
    EndpointGone,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// What an accepted enrollment did.
#[derive(Debug)]
pub(crate) struct Enrolled {
    pub(crate) response: api::EnrollResponse,
    /// A re-enrollment: an existing endpoint got a new key, and a live
    /// connection made with the old key must be cut.
    pub(crate) rekeyed: Option<AgentId>,
}

/// Spends a one-time token and registers the endpoint, atomically: a refused
/// enrollment leaves the token unspent. A token bound to an endpoint
/// (re-enrollment) gives that endpoint the new key instead: the old key
/// stops working, and the endpoint's conflict mark is cleared.
pub(crate) async fn enroll(
    db: &SqlitePool,
    req: &api::EnrollRequest,
) -> Result<Enrolled, EnrollError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(req.public_key.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or(EnrollError::InvalidKey)?;
    let hash = ids::token_hash(&req.token);
    let now = ids::now_ms();
    let d = &req.details;
    let d = reported::details(&d.hostname, &d.os, &d.arch, &d.agent_version);
    let mut tx = crate::store::begin_write(db).await?;
    let row = sqlx::query(
        "SELECT group_name, expires_at, used_at, endpoint_id FROM enroll_tokens WHERE token_hash = ?",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EnrollError::UnknownToken)?;
    if row.get::<Option<i64>, _>("used_at").is_some() {
        return Err(EnrollError::TokenSpent);
    }
    if row.get::<i64, _>("expires_at") <= now {
        return Err(EnrollError::TokenExpired);
    }
    let (id, name, group, rekeyed) = match row.get::<Option<String>, _>("endpoint_id") {
        Some(bound) => {
            let ep = sqlx::query(
                "UPDATE endpoints SET public_key = ?, hostname = ?, os = ?, arch = ?, agent_version = ?,
                        conflict_at = NULL, conflict_count = 0, conflict_peer = NULL
                 WHERE id = ? AND revoked_at IS NULL RETURNING name, group_name",
            )
            .bind(&key)
            .bind(&d.hostname)
            .bind(&d.os)
            .bind(&d.arch)
            .bind(&d.agent_version)
            .bind(&bound)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(EnrollError::EndpointGone)?;
            let id = AgentId(bound);
            (
                id.clone(),
                ep.get::<String, _>("name"),
                ep.get::<String, _>("group_name"),
                Some(id),
            )
        }
        None => {
            ids::validate_name("endpoint", &req.name).map_err(EnrollError::InvalidName)?;
            let group: String = row.get("group_name");
            // The token outlived its group (deleted while the token was
            // pending): the group comes back, so the endpoint never lands
            // in a group that does not exist.
            sqlx::query(
                "INSERT OR IGNORE INTO groups (name, description, created_at) VALUES (?, '', ?)",
            )
            .bind(&group)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let id = AgentId::generate();
            let inserted = sqlx::query(
                "INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(&req.name)
            .bind(&group)
            .bind(&key)
            .bind(&d.hostname)
            .bind(&d.os)
            .bind(&d.arch)
            .bind(&d.agent_version)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(EnrollError::NameTaken(req.name.clone()));
                }
                other => {
                    other?;
                }
            }
            (id, req.name.clone(), group, None)
        }
    };
    let spent = sqlx::query("UPDATE enroll_tokens SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL")
        .bind(now)
        .bind(id.as_str())
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    if spent.rows_affected() != 1 {
        return Err(EnrollError::TokenSpent);
    }
    let (action, detail) = if rekeyed.is_some() {
        (
            "endpoint-reenroll",
            format!("group={group} new key; the old key no longer works"),
        )
    } else {
        ("enroll", format!("group={group}"))
    };
    crate::events::append_in_groups(&mut tx, &[&group], &name, action, &name, "ok", &detail)
        .await?;
    tx.commit().await?;
    Ok(Enrolled {
        response: api::EnrollResponse {
            agent_id: id.0,
            endpoint: name,
            group,
        },
        rekeyed,
    })
}

/// Makes a one-time token bound to the live endpoint `name`: the agent
/// that enrolls with it gives the endpoint a new key (see [`enroll`]). An
/// unused earlier re-enrollment token of the endpoint stops working. The
/// token and its audit entry (by `actor`) commit together. `None` if no
/// live endpoint has that name.
pub(crate) async fn create_reenroll_token(
    db: &SqlitePool,
    name: &str,
    ttl: std::time::Duration,
    actor: &str,
) -> Result<Option<crate::identity::EnrollToken>, sqlx::Error> {
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    let mut tx = crate::store::begin_write(db).await?;
    let Some(ep) =
        sqlx::query("SELECT id, group_name FROM endpoints WHERE name = ? AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(None);
    };
    let id: String = ep.get("id");
    let group: String = ep.get("group_name");
    sqlx::query(
        "UPDATE enroll_tokens SET expires_at = ? WHERE endpoint_id = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(now)
    .bind(&id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let token = ids::random_token("jge");
    sqlx::query(
        "INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at, endpoint_id) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(ids::token_hash(&token))
    .bind(&group)
    .bind(now)
    .bind(expires_at_ms)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    crate::events::append_in_groups(
        &mut tx,
        &[&group],
        actor,
        "endpoint-reenroll-token",
        name,
        "ok",
        &format!("valid until {}", ids::rfc3339(expires_at_ms)),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(crate::identity::EnrollToken {
        token,
        expires_at_ms,
    }))
}

/// Records a refused second connection of `endpoint`'s identity: the
/// endpoint's conflict mark and an `endpoint-conflict` audit entry with
/// both source addresses, together. Returns the refusals so far.
pub(crate) async fn record_conflict(
    db: &SqlitePool,
    endpoint: &EndpointRecord,
    connected: std::net::SocketAddr,
    newcomer: std::net::SocketAddr,
) -> Result<i64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let count: i64 = sqlx::query_scalar(
        "UPDATE endpoints SET conflict_at = ?, conflict_count = conflict_count + 1, conflict_peer = ?
         WHERE id = ? RETURNING conflict_count",
    )
    .bind(ids::now_ms())
    .bind(newcomer.to_string())
    .bind(endpoint.id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    crate::events::append_in_groups(
        &mut tx,
        &[&endpoint.group],
        &endpoint.name,
        "endpoint-conflict",
        &endpoint.name,
        "refused",
        &format!(
            "a second agent with this identity: connected={connected} refused={newcomer} count={count}"
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(count)
}

/// Marks an endpoint revoked, with its audit entry (by `actor`, detail
/// from `detail`) in the same transaction. Returns its id, or `None` if no
/// live endpoint has that name.
pub(crate) async fn revoke(
    db: &SqlitePool,
    name: &str,
    actor: &str,
    detail: impl FnOnce(&AgentId) -> String,
) -> Result<Option<AgentId>, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let row = sqlx::query(
        "UPDATE endpoints SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING id, group_name",
    )
    .bind(ids::now_ms())
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, group)) = row.map(|r| (AgentId(r.get("id")), r.get::<String, _>("group_name")))
    else {
        return Ok(None);
    };
    let detail = detail(&id);
    crate::events::append_in_groups(
        &mut tx,
        &[&group],
        actor,
        "endpoint-revoke",
        name,
        "ok",
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Agents connected to this gateway right now; the single-node
/// [`AgentDirectory`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    inner: Arc<RwLock<HashMap<AgentId, Connected>>>,
    next_conn: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Connected {
    conn: u64,
    handle: MuxHandle,
    /// Where the connection comes from.
    peer: std::net::SocketAddr,
}

impl Registry {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<AgentId, Connected>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<AgentId, Connected>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; an older connection of the same agent is
    /// closed (the handshake checked that it no longer answers).
    pub(crate) fn insert(&self, id: AgentId, handle: MuxHandle, peer: std::net::SocketAddr) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let old = self.write().insert(id, Connected { conn, handle, peer });
        if let Some(old) = old {
            old.handle.close(
                jumpgate_proto::control::go_away_code::REPLACED,
                "replaced by a newer connection of the same agent",
            );
        }
        conn
    }

    /// Forgets the connection `conn` (not a newer one of the same agent).
    pub(crate) fn remove(&self, id: &AgentId, conn: u64) {
        let mut map = self.write();
        if map.get(id).is_some_and(|c| c.conn == conn) {
            map.remove(id);
        }
    }

    fn get(&self, id: &AgentId) -> Option<MuxHandle> {
        self.read().get(id).map(|c| c.handle.clone())
    }

    /// The agent's live connection and where it comes from.
    pub(crate) fn connected(&self, id: &AgentId) -> Option<(MuxHandle, std::net::SocketAddr)> {
        self.read().get(id).map(|c| (c.handle.clone(), c.peer))
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// Closes the agent's live connection, if any.
    pub(crate) fn disconnect(&self, id: &AgentId, code: u32, reason: &str) -> bool {
        match self.write().remove(id) {
            Some(c) => {
                c.handle.close(code, reason);
                true
            }
            None => false,
        }
    }

    /// Closes every agent connection (shutdown); returns their handles so the
    /// caller can wait for them to finish.
    pub(crate) fn close_all(&self, code: u32, reason: &str) -> Vec<MuxHandle> {
        let drained: Vec<_> = self.write().drain().map(|(_, c)| c.handle).collect();
        for h in &drained {
            h.close(code, reason);
        }
        drained
    }
}
