//! Endpoints and their agents: enrollment, the registry of live agent
//! connections and the directory that locates them (`directory`), system
//! streams to agents (`system`), and the endpoint records in the store.

mod conn;
pub(crate) mod directory;
pub(crate) mod groups;
pub(crate) mod http;
pub(crate) mod listing;
pub(crate) mod reported;
pub(crate) mod schema;
pub(crate) mod system;
pub(crate) mod watch;

pub(crate) use conn::serve_agent;
pub(crate) use directory::{AgentDirectory, Location};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::ids::{self, AgentId};
use crate::store::{AuditAction, AuditEvent, Store, sql};
use base64::Engine;
use jumpgate_api_types as api;
use jumpgate_net::mux::MuxHandle;

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
    /// An agentless target reached through this record's agent (its jump
    /// point): `name` and `group` are the target's, `id` the jump point's
    /// (see [`crate::targets::resolve`]). `None` for an endpoint.
    pub(crate) target: Option<Box<crate::targets::Target>>,
}

impl EndpointRecord {
    /// The customer's client of support session `id` as sessions see it:
    /// reached under the session's own agent id, filed under its queue's
    /// endpoint `group`; it has no row in `endpoints`.
    pub(crate) fn support_client(id: &str, group: &str) -> Self {
        Self {
            id: crate::support::live::LiveSupport::agent_id(id),
            name: format!("support:{id}"),
            group: group.to_owned(),
            public_key: Vec::new(),
            details: api::EndpointDetails::default(),
            enrolled_at: 0,
            last_seen: None,
            revoked: false,
            conflict: None,
            target: None,
        }
    }

    /// The support session this is the customer's client of (see
    /// [`Self::support_client`]), `None` for an enrolled endpoint.
    pub(crate) fn support_id(&self) -> Option<&str> {
        self.name
            .strip_prefix("support:")
            .filter(|id| *id == self.id.as_str() && self.public_key.is_empty())
    }
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

/// The columns of an endpoint row (see [`Row`]), as a literal: query
/// text must be a constant.
macro_rules! endpoint_columns {
    () => {
        "id, name, group_name, public_key, hostname, os, arch, agent_version, \
         enrolled_at, last_seen, revoked_at, conflict_at, conflict_count, conflict_peer"
    };
}

/// An `endpoints` row as both engines return it.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    group_name: String,
    public_key: Vec<u8>,
    hostname: String,
    os: String,
    arch: String,
    agent_version: String,
    enrolled_at: i64,
    last_seen: Option<i64>,
    revoked_at: Option<i64>,
    conflict_at: Option<i64>,
    conflict_count: i64,
    conflict_peer: Option<String>,
}

impl From<Row> for EndpointRecord {
    fn from(r: Row) -> Self {
        EndpointRecord {
            id: AgentId(r.id),
            name: r.name,
            group: r.group_name,
            public_key: r.public_key,
            details: api::EndpointDetails {
                hostname: r.hostname,
                os: r.os,
                arch: r.arch,
                agent_version: r.agent_version,
            },
            enrolled_at: r.enrolled_at,
            last_seen: r.last_seen,
            revoked: r.revoked_at.is_some(),
            conflict: r.conflict_at.map(|last_at| Conflict {
                last_at,
                count: r.conflict_count,
                newcomer: r.conflict_peer.unwrap_or_default(),
            }),
            target: None,
        }
    }
}

/// `SELECT <every column> FROM endpoints <rest>`.
macro_rules! select_endpoints {
    ($rest:literal) => {
        concat!("SELECT ", endpoint_columns!(), " FROM endpoints ", $rest)
    };
}

pub(crate) async fn find_by_id(
    db: &Store,
    id: &AgentId,
) -> Result<Option<EndpointRecord>, sqlx::Error> {
    let mut c = db.conn().await?;
    let row: Option<Row> = sql!(c, |c| sqlx::query_as(select_endpoints!("WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(Into::into))
}

/// The live (not revoked) endpoint of that name.
pub(crate) async fn find_by_name(
    db: &Store,
    name: &str,
) -> Result<Option<EndpointRecord>, sqlx::Error> {
    let mut c = db.conn().await?;
    let row: Option<Row> = sql!(c, |c| sqlx::query_as(select_endpoints!(
        "WHERE name = $1 AND revoked_at IS NULL"
    ))
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(Into::into))
}

/// Records that the agent is (or was just) connected, with fresh details.
pub(crate) async fn touch(
    db: &Store,
    id: &AgentId,
    details: Option<&api::EndpointDetails>,
) -> Result<(), sqlx::Error> {
    let cleaned = details.map(|d| reported::details(&d.hostname, &d.os, &d.arch, &d.agent_version));
    let now = ids::now_ms();
    let mut c = db.write_conn().await?;
    match &cleaned {
        Some(d) => sql!(c, |c| {
            sqlx::query(
            "UPDATE endpoints SET last_seen = $1, hostname = $2, os = $3, arch = $4, agent_version = $5
             WHERE id = $6",
        )
        .bind(now)
        .bind(&d.hostname)
        .bind(&d.os)
        .bind(&d.arch)
        .bind(&d.agent_version)
        .bind(id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?,
        None => sql!(c, |c| sqlx::query(
            "UPDATE endpoints SET last_seen = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
    };
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
/// enrollment leaves the token unspent (the caller audits the refusal). A
/// token bound to an endpoint (re-enrollment) gives that endpoint the new
/// key instead: the old key stops working, and the endpoint's conflict mark
/// is cleared.
pub(crate) async fn enroll(db: &Store, req: &api::EnrollRequest) -> Result<Enrolled, EnrollError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(req.public_key.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or(EnrollError::InvalidKey)?;
    let hash = ids::token_hash(&req.token);
    let now = ids::now_ms();
    let d = &req.details;
    let d = reported::details(&d.hostname, &d.os, &d.arch, &d.agent_version);
    let mut w = db.write().await?;
    let token: Option<(String, i64, Option<i64>, Option<String>)> = sql!(w, |c| {
        sqlx::query_as(
        "SELECT group_name, expires_at, used_at, endpoint_id FROM enroll_tokens WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&mut *c)
    .await
    })?;
    let (group, expires_at, used_at, bound) = token.ok_or(EnrollError::UnknownToken)?;
    if used_at.is_some() {
        return Err(EnrollError::TokenSpent);
    }
    if expires_at <= now {
        return Err(EnrollError::TokenExpired);
    }
    let (id, name, group, rekeyed) = match bound {
        Some(bound) => {
            let ep: Option<(String, String)> = sql!(w, |c| {
                sqlx::query_as(
                "UPDATE endpoints SET public_key = $1, hostname = $2, os = $3, arch = $4, agent_version = $5,
                        conflict_at = NULL, conflict_count = 0, conflict_peer = NULL
                 WHERE id = $6 AND revoked_at IS NULL RETURNING name, group_name",
            )
            .bind(&key)
            .bind(&d.hostname)
            .bind(&d.os)
            .bind(&d.arch)
            .bind(&d.agent_version)
            .bind(&bound)
            .fetch_optional(&mut *c)
            .await
            })?;
            let (name, group) = ep.ok_or(EnrollError::EndpointGone)?;
            let id = AgentId(bound);
            (id.clone(), name, group, Some(id))
        }
        None => {
            ids::validate_name("endpoint", &req.name).map_err(EnrollError::InvalidName)?;
            // The token outlived its group (deleted while the token was
            // pending): the group comes back, so the endpoint never lands
            // in a group that does not exist.
            groups::ensure(&mut w, &group, now).await?;
            // Writers are serialised: the name checked here is still free
            // at the insert (checked first, so PostgreSQL's transaction is
            // not aborted by a unique violation).
            let taken: Option<String> = sql!(w, |c| sqlx::query_scalar(
                "SELECT id FROM endpoints WHERE name = $1 AND revoked_at IS NULL"
            )
            .bind(&req.name)
            .fetch_optional(&mut *c)
            .await)?;
            if taken.is_some() {
                return Err(EnrollError::NameTaken(req.name.clone()));
            }
            let id = AgentId::generate();
            sql!(w, |c| {
                sqlx::query(
                "INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
            })?;
            (id, req.name.clone(), group, None)
        }
    };
    let spent = sql!(w, |c| {
        sqlx::query(
        "UPDATE enroll_tokens SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL"
    )
    .bind(now)
    .bind(id.as_str())
    .bind(&hash)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    if spent != 1 {
        return Err(EnrollError::TokenSpent);
    }
    let event = if rekeyed.is_some() {
        AuditEvent::new(&name, AuditAction::EndpointReenroll, &name).detail(format!(
            "group={group} new key; the old key no longer works"
        ))
    } else {
        AuditEvent::new(&name, AuditAction::Enroll, &name).detail(format!("group={group}"))
    };
    w.audit(event.group(&group)).await?;
    w.commit().await?;
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
    db: &Store,
    name: &str,
    ttl: std::time::Duration,
    actor: &str,
) -> Result<Option<crate::identity::EnrollToken>, sqlx::Error> {
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    let mut w = db.write().await?;
    let ep: Option<(String, String)> = sql!(w, |c| sqlx::query_as(
        "SELECT id, group_name FROM endpoints WHERE name = $1 AND revoked_at IS NULL"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    let Some((id, group)) = ep else {
        return Ok(None);
    };
    sql!(w, |c| sqlx::query(
        "UPDATE enroll_tokens SET expires_at = $1
         WHERE endpoint_id = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(&id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let token = ids::random_token("jge");
    sql!(w, |c| sqlx::query(
        "INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at, endpoint_id)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ids::token_hash(&token))
    .bind(&group)
    .bind(now)
    .bind(expires_at_ms)
    .bind(&id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(actor, AuditAction::EndpointReenrollToken, name)
            .detail(format!("valid until {}", ids::rfc3339(expires_at_ms)))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    Ok(Some(crate::identity::EnrollToken {
        token,
        expires_at_ms,
    }))
}

/// Records a refused second connection of `endpoint`'s identity: the
/// endpoint's conflict mark and an `endpoint-conflict` audit entry with
/// both source addresses, together. Returns the refusals so far.
pub(crate) async fn record_conflict(
    db: &Store,
    endpoint: &EndpointRecord,
    connected: std::net::SocketAddr,
    newcomer: std::net::SocketAddr,
) -> Result<i64, sqlx::Error> {
    let mut w = db.write().await?;
    let count: i64 = sql!(w, |c| {
        sqlx::query_scalar(
        "UPDATE endpoints SET conflict_at = $1, conflict_count = conflict_count + 1, conflict_peer = $2
         WHERE id = $3 RETURNING conflict_count",
    )
    .bind(ids::now_ms())
    .bind(newcomer.to_string())
    .bind(endpoint.id.as_str())
    .fetch_one(&mut *c)
    .await
    })?;
    w.audit(
        AuditEvent::new(&endpoint.name, AuditAction::EndpointConflict, &endpoint.name)
            .outcome("refused")
            .detail(format!(
                "a second agent with this identity: connected={connected} refused={newcomer} count={count}"
            ))
            .group(&endpoint.group),
    )
    .await?;
    w.commit().await?;
    Ok(count)
}

/// Moves the live endpoint `name` to the existing group `group`, with its
/// `endpoint-group` audit entry (by `actor`, filed under both groups: the
/// endpoint's history stays with the group it happened in). Returns the
/// endpoint as it is now.
///
/// # Errors
/// No such endpoint or group, or the store failed.
pub(crate) async fn set_group(
    db: &Store,
    name: &str,
    group: &str,
    actor: &str,
) -> Result<EndpointRecord, MoveError> {
    let mut w = db.write().await?;
    if !groups::exists(&mut w, group).await? {
        return Err(MoveError::UnknownGroup(group.to_owned()));
    }
    let from: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "SELECT group_name FROM endpoints WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    let Some(from) = from else {
        return Err(MoveError::UnknownEndpoint(name.to_owned()));
    };
    let row: Row = sql!(w, |c| {
        sqlx::query_as(concat!(
        "UPDATE endpoints SET group_name = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING ",
        endpoint_columns!()
    ))
    .bind(group)
    .bind(name)
    .fetch_one(&mut *c)
    .await
    })?;
    w.audit(
        AuditEvent::new(actor, AuditAction::EndpointGroup, name)
            .detail(format!("from={from} group={group}"))
            .groups([from.as_str(), group]),
    )
    .await?;
    w.commit().await?;
    Ok(row.into())
}

/// Why an endpoint was not moved to another group.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MoveError {
    #[error("no endpoint named `{0}`")]
    UnknownEndpoint(String),
    #[error("unknown group {} (create it first)", ids::echo(.0))]
    UnknownGroup(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Marks an endpoint revoked, with its audit entry (by `actor`, detail
/// from `detail`) in the same transaction. Returns its id, or `None` if no
/// live endpoint has that name.
pub(crate) async fn revoke(
    db: &Store,
    name: &str,
    actor: &str,
    detail: impl FnOnce(&AgentId) -> String,
) -> Result<Option<AgentId>, sqlx::Error> {
    let mut w = db.write().await?;
    let row: Option<(String, String)> = sql!(w, |c| sqlx::query_as(
        "UPDATE endpoints SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL
         RETURNING id, group_name",
    )
    .bind(ids::now_ms())
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    let Some((id, group)) = row else {
        return Ok(None);
    };
    let id = AgentId(id);
    w.audit(
        AuditEvent::new(actor, AuditAction::EndpointRevoke, name)
            .detail(detail(&id))
            .group(group),
    )
    .await?;
    w.commit().await?;
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

    /// The agents connected right now (for a notification to all: EPM).
    pub(crate) fn ids(&self) -> Vec<AgentId> {
        self.read().keys().cloned().collect()
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

#[cfg(test)]
pub(crate) mod tests;
