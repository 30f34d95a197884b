//! Agentless targets (issue #16): SSH and TCP hosts reached through a
//! **jump point**, an endpoint whose administrator marked it so (table
//! `jump_points`, `jg endpoints jump-point NAME on`) and whose agent agreed
//! (`jumpgate agent --jump-point`). A target lives in an endpoint group
//! like an endpoint, so the session rights on that group decide who may
//! use it; nobody needs `vault-checkout` to use one.
//!
//! ```text
//! jg shell db-01 ─► SessionService (resolve: endpoints, then targets)
//!   ─► authorize on the target's group ─► event row, audit, recording
//!   ─► open_target: jump point marked? host key pinned (or fetched once
//!      and stored: trust on first use, audited) ─► the credential read from
//!      the vault for this connection ─► OpenTarget to the jump point over
//!      its TLS connection ─► relay, as for an endpoint
//!   ─► after the session: rotation (optional), audited either way
//! ```
//!
//! The secret goes only into the `OpenTarget` message (and a rotation's
//! request); it is never logged, stored elsewhere, or put in an error.
//!
//! A jump point reaches the destinations its administrator allows (`jg
//! endpoints jump-point NAME on --allow 10.0.0.0/8 --allow
//! db.internal:5432`; no list: any, as before lists existed). A target
//! whose address the list cannot allow is refused when added, and every
//! session checks again (the list may have changed). A host name only
//! address rules could allow is decided where it resolves: the list goes
//! to the jump point with each connection, and the agent connects only to
//! addresses it allows (and its own `--jump-point-allow` list allows), so
//! a name cannot smuggle in an outside address.

pub(crate) mod http;
pub(crate) mod schema;

use std::time::Duration;

use base64::Engine;
use jumpgate_api_types::targets as api;
use jumpgate_net::allow::{AllowList, Verdict};
use jumpgate_proto::system::Topic;
use jumpgate_proto::target::{
    HostKeyReply, HostKeyRequest, RotateRequest, SshLogin, TargetAddress, TargetCredential,
};
use zeroize::Zeroizing;

use crate::agents::{self, EndpointRecord, groups};
use crate::ids::{self, AgentId};
use crate::keys::now_ms;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Store, sql};

/// Limit on the jump point's answer to a host key or rotation request.
const SYSTEM_TIMEOUT: Duration = Duration::from_secs(45);

/// What a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ssh,
    Tcp,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Tcp => "tcp",
        }
    }
}

/// A target as stored.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) group: String,
    /// The jump point's endpoint id and name.
    pub(crate) via: AgentId,
    pub(crate) via_name: String,
    pub(crate) kind: Kind,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    /// The vault secret's name.
    pub(crate) credential: String,
    /// The pinned host key (OpenSSH text), once known.
    pub(crate) host_key: Option<String>,
    pub(crate) tofu: bool,
    pub(crate) rotate: bool,
    pub(crate) created_at: i64,
}

impl Target {
    pub(crate) fn dto(&self) -> api::Target {
        let ssh = self.kind == Kind::Ssh;
        api::Target {
            name: self.name.clone(),
            group: self.group.clone(),
            via: self.via_name.clone(),
            kind: self.kind.as_str().to_owned(),
            host: self.host.clone(),
            port: self.port,
            user: ssh.then(|| self.user.clone()),
            credential: ssh.then(|| self.credential.clone()),
            host_key_fingerprint: self.host_key.as_deref().and_then(|k| fingerprint(k).ok()),
            trust_on_first_use: self.tofu,
            rotate_after_use: self.rotate,
            created_at: ids::rfc3339(self.created_at),
        }
    }
}

/// Why a target change was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0}")]
    Invalid(String),
    #[error("the name `{0}` is taken (by an endpoint or a target)")]
    NameTaken(String),
    #[error("no target named `{0}`")]
    NotFound(String),
    #[error("no endpoint named `{0}`")]
    UnknownEndpoint(String),
    #[error("unknown group {} (create it first)", ids::echo(.0))]
    UnknownGroup(String),
    #[error("endpoint `{0}` is not a jump point (mark it with `jg endpoints jump-point {0} on`)")]
    NotJumpPoint(String),
    #[error(
        "{dest} is outside jump point `{via}`'s allowed destinations ({allow}): \
         `jg endpoints jump-point {via} on --allow …` sets them"
    )]
    Outside {
        dest: String,
        via: String,
        allow: String,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Why a target session could not be opened (the technician is told).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("endpoint `{0}` is no longer a jump point")]
    NotJumpPoint(String),
    #[error("{dest} is outside jump point `{via}`'s allowed destinations ({allow})")]
    Outside {
        dest: String,
        via: String,
        allow: String,
    },
    #[error("target `{0}` has no pinned host key (add it with --host-key or --trust-on-first-use)")]
    NoHostKey(String),
    #[error("cannot learn the host key of target `{0}`: {1}")]
    HostKey(String, String),
    #[error("cannot read the credential of target `{0}` from the vault")]
    Credential(String),
    #[error("the gateway's store failed")]
    Db(#[from] sqlx::Error),
}

/// A target row with its jump point's name.
type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);

macro_rules! select_targets {
    ($rest:literal) => {
        concat!(
            "SELECT t.name, t.group_name, t.via, e.name, t.kind, t.host, t.port, t.username, \
             t.credential, t.host_key, t.tofu, t.rotate, t.created_at \
             FROM targets t JOIN endpoints e ON e.id = t.via ",
            $rest
        )
    };
}

fn from_row(r: Row) -> Target {
    Target {
        name: r.0,
        group: r.1,
        via: AgentId(r.2),
        via_name: r.3,
        kind: if r.4 == "tcp" { Kind::Tcp } else { Kind::Ssh },
        host: r.5,
        port: u16::try_from(r.6).unwrap_or(0),
        user: r.7,
        credential: r.8,
        host_key: r.9,
        tofu: r.10 != 0,
        rotate: r.11 != 0,
        created_at: r.12,
    }
}

/// The target named `name`.
pub(crate) async fn find(db: &Store, name: &str) -> Result<Option<Target>, sqlx::Error> {
    let mut c = db.conn().await?;
    let row: Option<Row> = sql!(c, |c| sqlx::query_as(select_targets!("WHERE t.name = $1"))
        .bind(name)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(from_row))
}

/// Every target, by name.
pub(crate) async fn list(db: &Store) -> Result<Vec<Target>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<Row> = sql!(c, |c| sqlx::query_as(select_targets!("ORDER BY t.name"))
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// What sessions open by name: a live endpoint, else a target (reached
/// through its jump point's agent, filed under its own group). Every entry
/// point (`jg`, the console, the SSH front door) looks names up here.
///
/// # Errors
/// The store failed.
pub(crate) async fn resolve(db: &Store, name: &str) -> Result<Option<EndpointRecord>, sqlx::Error> {
    if let Some(e) = agents::find_by_name(db, name).await? {
        return Ok(Some(e));
    }
    let Some(t) = find(db, name).await? else {
        return Ok(None);
    };
    let Some(via) = agents::find_by_id(db, &t.via).await? else {
        return Ok(None);
    };
    Ok(Some(EndpointRecord {
        id: via.id,
        name: t.name.clone(),
        group: t.group.clone(),
        public_key: Vec::new(),
        details: Default::default(),
        enrolled_at: t.created_at,
        last_seen: via.last_seen,
        revoked: via.revoked,
        conflict: None,
        target: Some(Box::new(t)),
    }))
}

/// How many targets are in group `group` (a group holding any is not
/// deleted).
pub(crate) async fn count_in_group(
    e: &mut dyn crate::store::Exec,
    group: &str,
) -> Result<i64, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM targets WHERE group_name = $1"
    )
    .bind(group)
    .fetch_one(&mut *c)
    .await)
}

/// A stored allow list (a JSON array; NULL: any). A list that no longer
/// parses allows nothing (fail closed) and is logged.
fn stored_allow(text: Option<&str>) -> AllowList {
    let Some(text) = text else {
        return AllowList::any();
    };
    let rules: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    AllowList::parse(Some(rules)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a jump point's stored allow list is unreadable: it allows nothing");
        AllowList::nothing()
    })
}

/// The destinations the endpoint `id` may reach as a jump point (`None`:
/// not a jump point).
pub(crate) async fn jump_point_allow(
    db: &Store,
    id: &AgentId,
) -> Result<Option<AllowList>, sqlx::Error> {
    let mut c = db.conn().await?;
    let found: Option<(String, Option<String>)> = sql!(c, |c| sqlx::query_as(
        "SELECT endpoint_id, allow FROM jump_points WHERE endpoint_id = $1"
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await)?;
    Ok(found.map(|(_, a)| stored_allow(a.as_deref())))
}

/// Every jump point: its endpoint's name and group, and its list.
pub(crate) async fn jump_points(
    db: &Store,
) -> Result<Vec<(String, String, AllowList)>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<(String, String, Option<String>)> = sql!(c, |c| sqlx::query_as(
        "SELECT e.name, e.group_name, j.allow FROM jump_points j \
         JOIN endpoints e ON e.id = j.endpoint_id ORDER BY e.name"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(n, g, a)| (n, g, stored_allow(a.as_deref())))
        .collect())
}

/// `HOST:PORT` as shown (a bracketed IPv6 literal).
fn dest(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A jump point after a change: its list, and the targets through it the
/// list can no longer allow.
#[derive(Debug)]
pub(crate) struct JumpPointSet {
    pub(crate) allow: AllowList,
    pub(crate) outside: Vec<String>,
}

/// Marks (or unmarks) the endpoint `name` as a jump point reaching the
/// destinations `allow` lists (`None`: any; replaces the list it had),
/// audited with the list.
///
/// # Errors
/// No such endpoint, a list with a bad rule, a list with `off`, or the
/// store failed.
pub(crate) async fn set_jump_point(
    db: &Store,
    name: &str,
    on: bool,
    allow: Option<&[String]>,
    actor: &str,
) -> Result<JumpPointSet, TargetError> {
    if !on && allow.is_some() {
        return Err(TargetError::Invalid(
            "allowed destinations go with `on`".into(),
        ));
    }
    let rules = AllowList::parse(allow).map_err(TargetError::Invalid)?;
    let endpoint = agents::find_by_name(db, name)
        .await?
        .ok_or_else(|| TargetError::UnknownEndpoint(name.to_owned()))?;
    let stored = rules
        .rules()
        .map(|r| serde_json::to_string(&r).unwrap_or_default());
    let mut w = db.write().await?;
    if on {
        sql!(w, |c| sqlx::query(
            "INSERT INTO jump_points (endpoint_id, marked_at, marked_by, allow) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (endpoint_id) DO UPDATE SET allow = excluded.allow"
        )
        .bind(endpoint.id.as_str())
        .bind(now_ms())
        .bind(actor)
        .bind(stored.as_deref())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    } else {
        sql!(w, |c| sqlx::query(
            "DELETE FROM jump_points WHERE endpoint_id = $1"
        )
        .bind(endpoint.id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    let mut entry = AuditEvent::new(actor, AuditAction::JumpPoint, name)
        .outcome(if on { "on" } else { "off" })
        .group(&endpoint.group);
    if on {
        entry = entry.detail(format!("allow={rules}"));
    }
    w.audit(entry).await?;
    w.commit().await?;
    let outside = if on {
        list(db)
            .await?
            .into_iter()
            .filter(|t| t.via == endpoint.id && rules.verdict(&t.host, t.port) == Verdict::Refused)
            .map(|t| t.name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(JumpPointSet {
        allow: rules,
        outside,
    })
}

/// `HOST[:PORT]` (a bracketed IPv6 literal too), `default_port` when none.
fn host_port(s: &str, default_port: Option<u16>, what: &str) -> Result<(String, u16), TargetError> {
    let bad = || TargetError::Invalid(format!("{what}: expected HOST:PORT, got {}", ids::echo(s)));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_owned(), Some(p)),
            None if after.is_empty() => (h.to_owned(), None),
            None => return Err(bad()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
            _ => (s.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default_port.ok_or_else(bad)?,
    };
    if host.is_empty()
        || host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(bad());
    }
    Ok((host, port))
}

/// The `SHA256:…` fingerprint of an OpenSSH public key line, as
/// `ssh-keygen -l` shows it; checks the line's form on the way.
///
/// # Errors
/// Not `TYPE BASE64 [COMMENT]` with a key blob of that type.
pub(crate) fn fingerprint(key: &str) -> Result<String, TargetError> {
    let bad = || {
        TargetError::Invalid(
            "host key: expected an OpenSSH public key (`ssh-ed25519 AAAA…`)".into(),
        )
    };
    let mut words = key.split_whitespace();
    let (Some(kind), Some(b64)) = (words.next(), words.next()) else {
        return Err(bad());
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    // The blob starts with the key type as an SSH string.
    let len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(bad)?;
    if blob.get(4..4 + len) != Some(kind.as_bytes()) {
        return Err(bad());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &blob);
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref());
    Ok(format!("SHA256:{b64}"))
}

/// Adds a target, audited.
///
/// # Errors
/// See [`TargetError`].
pub(crate) async fn add(
    db: &Store,
    req: &api::NewTarget,
    actor: &str,
) -> Result<Target, TargetError> {
    ids::validate_name("target", &req.name).map_err(TargetError::Invalid)?;
    let group = req.group.clone().unwrap_or_else(|| "default".to_owned());
    let (kind, (host, port)) = match (&req.ssh, &req.tcp) {
        (Some(s), None) => (Kind::Ssh, host_port(s, Some(22), "--ssh")?),
        (None, Some(t)) => (Kind::Tcp, host_port(t, None, "--tcp")?),
        _ => {
            return Err(TargetError::Invalid(
                "give exactly one of --ssh HOST[:PORT] and --tcp HOST:PORT".into(),
            ));
        }
    };
    let (user, credential, host_key) = match kind {
        Kind::Ssh => {
            let user = req
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| TargetError::Invalid("an SSH target needs --user".into()))?;
            if user.len() > 64 || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(TargetError::Invalid(
                    "--user: not a valid account name".into(),
                ));
            }
            let credential = req.credential.clone().ok_or_else(|| {
                TargetError::Invalid("an SSH target needs --credential VAULT_NAME".into())
            })?;
            crate::vault::validate_name(&credential)
                .map_err(|e| TargetError::Invalid(format!("--credential: {e}")))?;
            let host_key = match (&req.host_key, req.trust_on_first_use) {
                (Some(k), false) => {
                    fingerprint(k)?;
                    Some(k.trim().to_owned())
                }
                (None, true) => None,
                _ => {
                    return Err(TargetError::Invalid(
                        "an SSH target needs exactly one of --host-key KEY and --trust-on-first-use"
                            .into(),
                    ));
                }
            };
            (user, credential, host_key)
        }
        Kind::Tcp => {
            if req.user.is_some()
                || req.credential.is_some()
                || req.host_key.is_some()
                || req.trust_on_first_use
                || req.rotate_after_use
            {
                return Err(TargetError::Invalid(
                    "a TCP target takes no --user, --credential, --host-key, --trust-on-first-use or --rotate-after-use".into(),
                ));
            }
            (String::new(), String::new(), None)
        }
    };
    if agents::find_by_name(db, &req.name).await?.is_some() {
        return Err(TargetError::NameTaken(req.name.clone()));
    }
    let via = agents::find_by_name(db, &req.via)
        .await?
        .ok_or_else(|| TargetError::UnknownEndpoint(req.via.clone()))?;
    let Some(allow) = jump_point_allow(db, &via.id).await? else {
        return Err(TargetError::NotJumpPoint(req.via.clone()));
    };
    if allow.verdict(&host, port) == Verdict::Refused {
        return Err(TargetError::Outside {
            dest: dest(&host, port),
            via: via.name.clone(),
            allow: allow.to_string(),
        });
    }
    let now = now_ms();
    let mut w = db.write().await?;
    if !groups::exists(&mut w, &group).await? {
        return Err(TargetError::UnknownGroup(group));
    }
    let taken: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "SELECT name FROM targets WHERE name = $1"
    )
    .bind(&req.name)
    .fetch_optional(&mut *c)
    .await)?;
    if taken.is_some() {
        return Err(TargetError::NameTaken(req.name.clone()));
    }
    sql!(w, |c| sqlx::query(
        "INSERT INTO targets (name, group_name, via, kind, host, port, username, credential, \
         host_key, tofu, rotate, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )
    .bind(&req.name)
    .bind(&group)
    .bind(via.id.as_str())
    .bind(kind.as_str())
    .bind(&host)
    .bind(i64::from(port))
    .bind(&user)
    .bind(&credential)
    .bind(host_key.as_deref())
    .bind(i64::from(req.trust_on_first_use))
    .bind(i64::from(req.rotate_after_use))
    .bind(now)
    .bind(actor)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let mut detail = format!("via={} {}={host}:{port}", via.name, kind.as_str());
    if kind == Kind::Ssh {
        detail.push_str(&format!(" user={user} credential={credential}"));
        match &host_key {
            Some(k) => detail.push_str(&format!(" host-key={}", fingerprint(k)?)),
            None => detail.push_str(" host-key=trust-on-first-use"),
        }
        if req.rotate_after_use {
            detail.push_str(" rotate-after-use");
        }
    }
    w.audit(
        AuditEvent::new(actor, AuditAction::TargetAdd, &req.name)
            .detail(detail)
            .group(&group),
    )
    .await?;
    w.commit().await?;
    find(db, &req.name)
        .await?
        .ok_or_else(|| TargetError::NotFound(req.name.clone()))
}

/// Re-pins SSH target `name`'s host key (a host rebuilt or its key
/// rotated), or forgets it for trust on first use; audited
/// `target-host-key` with the old and new fingerprints. Sessions already
/// open keep their connection; the next one checks the new key.
///
/// # Errors
/// No such target, a TCP target, not exactly one of key and TOFU, a bad
/// key, the store.
pub(crate) async fn set_host_key(
    db: &Store,
    name: &str,
    req: &api::SetHostKey,
    actor: &str,
) -> Result<Target, TargetError> {
    let t = find(db, name)
        .await?
        .ok_or_else(|| TargetError::NotFound(name.to_owned()))?;
    if t.kind != Kind::Ssh {
        return Err(TargetError::Invalid(format!(
            "`{name}` is a TCP target: it has no host key"
        )));
    }
    let new = match (&req.host_key, req.trust_on_first_use) {
        (Some(k), false) => {
            fingerprint(k)?;
            Some(k.trim().to_owned())
        }
        (None, true) => None,
        _ => {
            return Err(TargetError::Invalid(
                "give exactly one of KEY and --trust-on-first-use".into(),
            ));
        }
    };
    let was = match &t.host_key {
        Some(k) => fingerprint(k).unwrap_or_else(|_| "unreadable".into()),
        None => "none".into(),
    };
    let now_fp = match &new {
        Some(k) => fingerprint(k)?,
        None => "trust-on-first-use".into(),
    };
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "UPDATE targets SET host_key = $1, tofu = $2 WHERE name = $3"
    )
    .bind(new.as_deref())
    .bind(i64::from(req.trust_on_first_use))
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(actor, AuditAction::TargetHostKey, name)
            .outcome("set")
            .detail(format!("host-key={now_fp} was={was}"))
            .group(&t.group),
    )
    .await?;
    w.commit().await?;
    find(db, name)
        .await?
        .ok_or_else(|| TargetError::NotFound(name.to_owned()))
}

/// Removes a target, audited.
///
/// # Errors
/// No such target, or the store failed.
pub(crate) async fn remove(db: &Store, name: &str, actor: &str) -> Result<(), TargetError> {
    let t = find(db, name)
        .await?
        .ok_or_else(|| TargetError::NotFound(name.to_owned()))?;
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query("DELETE FROM targets WHERE name = $1")
        .bind(name)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    w.audit(AuditEvent::new(actor, AuditAction::TargetRemove, name).group(&t.group))
        .await?;
    w.commit().await?;
    Ok(())
}

/// Where the jump point connects for a session on `t` by `actor`: checks
/// the jump point, pins the host key (learning it first with trust on
/// first use, audited), and reads the credential from the vault for this
/// one connection (the read audited as an injection, never the value).
///
/// # Errors
/// See [`OpenError`]; none carries the secret.
pub(crate) async fn address_for(
    st: &AppState,
    t: &Target,
    actor: &str,
) -> Result<TargetAddress, OpenError> {
    let Some(allow) = jump_point_allow(&st.db, &t.via).await? else {
        return Err(OpenError::NotJumpPoint(t.via_name.clone()));
    };
    // The list may have changed since the target was added.
    if allow.verdict(&t.host, t.port) == Verdict::Refused {
        return Err(OpenError::Outside {
            dest: dest(&t.host, t.port),
            via: t.via_name.clone(),
            allow: allow.to_string(),
        });
    }
    let allowed = allow.rules();
    if t.kind == Kind::Tcp {
        return Ok(TargetAddress::Tcp {
            host: t.host.clone(),
            port: t.port,
            allowed,
        });
    }
    let host_key = match &t.host_key {
        Some(k) => k.clone(),
        None if t.tofu => first_use_key(st, t, actor, allowed.clone()).await?,
        None => return Err(OpenError::NoHostKey(t.name.clone())),
    };
    let credential = checkout(st, t, actor).await?;
    Ok(TargetAddress::Ssh(SshLogin {
        host: t.host.clone(),
        port: t.port,
        user: t.user.clone(),
        host_key,
        credential,
        allowed,
    }))
}

/// The credential's latest version as the jump point gets it. Its read is
/// audited (`vault-read`, detail `injected target=…`).
async fn checkout(st: &AppState, t: &Target, actor: &str) -> Result<TargetCredential, OpenError> {
    let why = format!("injected target={}", t.name);
    let (_, value) = crate::vault::get_as(&st.db, &st.keys, &t.credential, None, actor, &why)
        .await
        .map_err(|e| {
            // The vault's errors name the secret, never its value.
            tracing::warn!(target = %t.name, error = %e, "cannot read a target's credential");
            OpenError::Credential(t.name.clone())
        })?;
    let text = Zeroizing::new(
        String::from_utf8(value.to_vec()).map_err(|_| OpenError::Credential(t.name.clone()))?,
    );
    Ok(if text.trim_start().starts_with("-----BEGIN") {
        TargetCredential::PrivateKey(text.to_string())
    } else {
        // A value stored from a file may end with its line break.
        let pw = text.strip_suffix('\n').unwrap_or(&text);
        TargetCredential::Password(pw.strip_suffix('\r').unwrap_or(pw).to_owned())
    })
}

/// Trust on first use: the jump point asks the host for its key; the
/// first one is stored (only while none is) and audited.
async fn first_use_key(
    st: &AppState,
    t: &Target,
    actor: &str,
    allowed: Option<Vec<String>>,
) -> Result<String, OpenError> {
    let req = HostKeyRequest {
        host: t.host.clone(),
        port: t.port,
        allowed,
    };
    let body = serde_json::to_vec(&req).unwrap_or_default();
    let reply = agents::system::send(
        st.agents.as_ref(),
        &t.via,
        Topic::TargetHostKey,
        body.into(),
        SYSTEM_TIMEOUT,
    )
    .await
    .and_then(agents::system::SystemReply::ok)
    .map_err(|e| OpenError::HostKey(t.name.clone(), e.to_string()))?;
    let key: HostKeyReply = serde_json::from_slice(&reply)
        .map_err(|e| OpenError::HostKey(t.name.clone(), e.to_string()))?;
    let print = fingerprint(&key.host_key)
        .map_err(|e| OpenError::HostKey(t.name.clone(), e.to_string()))?;
    let mut w = st.db.write().await?;
    let stored = sql!(w, |c| sqlx::query(
        "UPDATE targets SET host_key = $1 WHERE name = $2 AND host_key IS NULL"
    )
    .bind(key.host_key.trim())
    .bind(&t.name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if stored == 1 {
        w.audit(
            AuditEvent::new(actor, AuditAction::TargetHostKey, &t.name)
                .outcome("trusted")
                .detail(format!("first use: fingerprint={print}"))
                .group(&t.group),
        )
        .await?;
        w.commit().await?;
        return Ok(key.host_key.trim().to_owned());
    }
    drop(w);
    // Another session stored one first: that one is pinned.
    find(&st.db, &t.name)
        .await?
        .and_then(|t| t.host_key)
        .ok_or_else(|| OpenError::NoHostKey(t.name.clone()))
}

/// A changed host key refused by the jump point: audited with both
/// fingerprints (its message names them).
pub(crate) async fn host_key_refused(db: &Store, t: &Target, actor: &str, message: &str) {
    db.audit_or_log(
        AuditEvent::new(actor, AuditAction::TargetHostKey, &t.name)
            .outcome("denied")
            .detail(message.chars().take(400).collect::<String>())
            .group(&t.group),
    )
    .await;
}

/// After a session on `t`: a new random password set on the target account
/// by the jump point, stored as the secret's next version. A failure keeps
/// the old version and is audited as one ([`rotation_failed`] is the hook
/// for alerts).
pub(crate) async fn rotate_after_use(st: &AppState, t: &Target) {
    let actor = "(system)";
    let result = rotate(st, t).await;
    let entry = AuditEvent::new(actor, AuditAction::TargetRotate, &t.name).group(&t.group);
    match result {
        Ok(version) => {
            tracing::info!(target = %t.name, version, "target password rotated");
            st.db
                .audit_or_log(
                    entry
                        .outcome("ok")
                        .detail(format!("credential={} version={version}", t.credential)),
                )
                .await;
        }
        Err(why) => {
            tracing::error!(target = %t.name, %why, "target password rotation failed; the old version is kept");
            st.db
                .audit_or_log(
                    entry
                        .outcome("failed")
                        .detail(format!("credential={} {why}", t.credential)),
                )
                .await;
            rotation_failed(t, &why);
        }
    }
}

/// The hook for alerting on a failed rotation (alerts come with a later
/// issue): today the audit entry and an error log line are all.
fn rotation_failed(_t: &Target, _why: &str) {}

async fn rotate(st: &AppState, t: &Target) -> Result<u32, String> {
    if t.kind != Kind::Ssh {
        return Err("only SSH targets have a password to rotate".into());
    }
    let address = address_for(st, t, "(system)")
        .await
        .map_err(|e| e.to_string())?;
    let TargetAddress::Ssh(login) = address else {
        return Err("not an SSH target".into());
    };
    if !matches!(login.credential, TargetCredential::Password(_)) {
        return Err("only a password credential can be rotated".into());
    }
    let new_password = Zeroizing::new(new_password());
    let req = RotateRequest {
        login,
        new_password: new_password.to_string(),
    };
    let body = Zeroizing::new(serde_json::to_vec(&req).unwrap_or_default());
    drop(req);
    agents::system::send(
        st.agents.as_ref(),
        &t.via,
        Topic::TargetRotate,
        bytes::Bytes::copy_from_slice(&body),
        SYSTEM_TIMEOUT,
    )
    .await
    .and_then(agents::system::SystemReply::ok)
    .map_err(|e| e.to_string())?;
    crate::vault::put(
        &st.db,
        &st.keys,
        &t.credential,
        new_password.as_bytes(),
        "(system)",
    )
    .await
    .map_err(|e| format!("the new password was set but could not be stored: {e}"))
}

/// 24 random letters and digits (about 143 bits).
fn new_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let bytes = ids::random_bytes::<24>();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_ports() {
        assert_eq!(host_port("db", Some(22), "x").unwrap(), ("db".into(), 22));
        assert_eq!(
            host_port("db:2222", Some(22), "x").unwrap(),
            ("db".into(), 2222)
        );
        assert_eq!(host_port("[::1]:5", None, "x").unwrap(), ("::1".into(), 5));
        assert!(host_port("db", None, "--tcp").is_err());
        assert!(host_port("db:0", None, "x").is_err());
        assert!(host_port("d b:1", None, "x").is_err());
    }

    #[test]
    fn fingerprints_are_those_ssh_keygen_shows() {
        // `ssh-keygen -l -f` of this key prints this fingerprint.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";
        assert_eq!(
            fingerprint(key).unwrap(),
            "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
        );
        assert!(
            fingerprint(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
            )
            .is_err()
        );
        assert!(fingerprint("nonsense").is_err());
    }

    #[test]
    fn new_passwords_differ() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
