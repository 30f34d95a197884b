//! The endpoint list (`GET /api/v1/endpoints`, `jg endpoints`, the
//! console's Endpoints page), served from an in-memory copy of the live
//! endpoints that is checked against the store on every request.
//!
//! Every change to `endpoints` (enrollment, revocation, a new group, a
//! connection's `last_seen`, a conflict; on any gateway of the site, or an
//! admin command) bumps the endpoint list's revision in the same
//! transaction (triggers, schema 11). A list request reads the revision —
//! one small query — and uses the copy when it is the copy's; otherwise it
//! reads every live endpoint again (in the table's stored order, sorted
//! here), and concurrent requests wait for that one read. Filters, scope
//! and paging then run over the sorted copy, and the response is written
//! straight from it: each row holds its JSON, made when the copy is read,
//! but for what changes without the row (whether the agent is connected,
//! and then the time shown as `last_seen`), so a list of thousands is
//! written by copying bytes, not by encoding every value again.
//!
//! The revision is read *before* the rows: a change committed in between
//! makes the copy newer than its revision, which costs one extra read on
//! the next request, never a stale list. (The other order could keep a
//! missed change until the next one.)

use std::sync::Arc;

use jumpgate_api_types as api;

use crate::ids::{self, AgentId};
use crate::rbac::ReadScope;
use crate::store::{Engine, Store, sql};

/// What a list request asks for, besides the `online` filter (which is
/// not in the store: the caller applies it).
#[derive(Debug)]
pub(crate) struct ListFilter<'a> {
    /// The caller's groups: rows outside it are never shown.
    pub(crate) scope: &'a ReadScope,
    /// Names containing this text, in any case.
    pub(crate) name: Option<&'a str>,
    /// Only this group.
    pub(crate) group: Option<&'a str>,
    /// Paging: only names after this one (the last of the previous page).
    pub(crate) after: Option<&'a str>,
}

/// A live endpoint as the list shows it, its timestamps already in the
/// API's text form.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub(crate) id: AgentId,
    pub(crate) name: String,
    /// `name` in lower case (the name filter matches any case).
    name_lower: String,
    pub(crate) group: String,
    pub(crate) hostname: String,
    pub(crate) os: String,
    pub(crate) arch: String,
    pub(crate) agent_version: String,
    pub(crate) enrolled_at: String,
    pub(crate) last_seen: Option<String>,
    pub(crate) conflict: Option<api::EndpointConflict>,
    /// The row's JSON ([`View`]) up to `"online":`…
    json_head: Box<str>,
    /// …its `last_seen` value when offline…
    json_last_seen: Box<str>,
    /// …and from `,"enrolled_at":` to the end.
    json_tail: Box<str>,
}

/// A row as the store gives it.
#[derive(Debug, serde::Deserialize, sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    group_name: String,
    hostname: String,
    os: String,
    arch: String,
    agent_version: String,
    enrolled_at: i64,
    last_seen: Option<i64>,
    conflict_at: Option<i64>,
    conflict_count: i64,
    conflict_peer: Option<String>,
}

impl From<Row> for Listed {
    fn from(r: Row) -> Self {
        let mut listed = Self {
            id: AgentId(r.id),
            name_lower: r.name.to_ascii_lowercase(),
            name: r.name,
            group: r.group_name,
            hostname: r.hostname,
            os: r.os,
            arch: r.arch,
            agent_version: r.agent_version,
            enrolled_at: ids::rfc3339(r.enrolled_at),
            last_seen: r.last_seen.map(ids::rfc3339),
            conflict: r.conflict_at.map(|at| api::EndpointConflict {
                last_at: ids::rfc3339(at),
                count: r.conflict_count.max(0) as u64,
                newcomer: r.conflict_peer.unwrap_or_default(),
            }),
            json_head: Box::default(),
            json_last_seen: Box::default(),
            json_tail: Box::default(),
        };
        listed.encode();
        listed
    }
}

impl Listed {
    /// Fills the row's JSON pieces from its [`View`] as an offline endpoint.
    /// Every `"` inside a JSON string is escaped, so the keys are found
    /// where they are keys.
    fn encode(&mut self) {
        // Serializing borrowed strings into a String cannot fail.
        let json = serde_json::to_string(&View::new(self, false, "")).unwrap_or_default();
        let (Some(online), Some(enrolled)) =
            (json.find(",\"online\":"), json.find(",\"enrolled_at\":"))
        else {
            return;
        };
        let last_seen = json[online..enrolled]
            .find(",\"last_seen\":")
            .map_or(enrolled, |at| online + at + ",\"last_seen\":".len());
        self.json_head = json[..=online].into();
        self.json_last_seen = json[last_seen..enrolled].into();
        self.json_tail = json[enrolled..].into();
    }

    /// Appends the row's JSON (the same bytes as its [`View`] serialized
    /// by `serde_json`) to `out`; `now_json` is the current time as a JSON
    /// string, shown as `last_seen` when `online`.
    pub(crate) fn write_json(&self, online: bool, now_json: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(self.json_head.as_bytes());
        out.extend_from_slice(if online {
            b"\"online\":true,\"last_seen\":"
        } else {
            b"\"online\":false,\"last_seen\":"
        });
        let last_seen = if online {
            now_json
        } else {
            &self.json_last_seen
        };
        out.extend_from_slice(last_seen.as_bytes());
        out.extend_from_slice(self.json_tail.as_bytes());
    }

    /// How many bytes [`Listed::write_json`] appends, about.
    pub(crate) fn json_len(&self) -> usize {
        self.json_head.len() + self.json_last_seen.len() + self.json_tail.len() + 40
    }
}

/// The copy of the list at one revision: every live endpoint, by name.
#[derive(Debug)]
struct Copy {
    revision: i64,
    rows: Arc<[Listed]>,
}

/// The gateway's copy of the endpoint list (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct EndpointList {
    copy: tokio::sync::Mutex<Option<Copy>>,
}

impl EndpointList {
    /// Every live endpoint, by name, as the store holds them now.
    pub(crate) async fn rows(&self, db: &Store) -> Result<Arc<[Listed]>, sqlx::Error> {
        let revision = revision(db).await?;
        let mut copy = self.copy.lock().await;
        if let Some(c) = &*copy
            && c.revision == revision
        {
            return Ok(c.rows.clone());
        }
        let rows = load(db).await?;
        *copy = Some(Copy {
            revision,
            rows: rows.clone(),
        });
        Ok(rows)
    }
}

/// The endpoint list's revision: it changes whenever a row of `endpoints`
/// does (schema 11's triggers).
pub(crate) async fn revision(db: &Store) -> Result<i64, sqlx::Error> {
    let mut c = db.conn().await?;
    let q = match db.engine() {
        Engine::Sqlite => "SELECT COALESCE(SUM(rev), 0) FROM endpoint_revisions",
        Engine::Postgres => "SELECT COALESCE(SUM(rev), 0)::BIGINT FROM endpoint_revisions",
    };
    sql!(c, |c| sqlx::query_scalar(q).fetch_one(&mut *c).await)
}

/// Every live endpoint, read in the table's stored order and sorted by
/// name here (byte order, the same on both engines).
///
/// On SQLite the engine packs the rows into one JSON array of arrays: a
/// list of thousands is then one value to move out of the engine, not a
/// dozen per row (each a copy handed across threads). Reading the table
/// in its stored order (`NOT INDEXED`, no `ORDER BY`) decrypts each of
/// SQLCipher's pages once; following the name index, or sorting whole
/// rows in the engine, costs several times as much. PostgreSQL sends rows
/// faster than it builds JSON, so there the rows are read as they are.
async fn load(db: &Store) -> Result<Arc<[Listed]>, sqlx::Error> {
    let mut c = db.conn().await?;
    let mut rows: Vec<Row> = match db.engine() {
        Engine::Sqlite => {
            let json: String = sql!(c, |c| sqlx::query_scalar(
                "SELECT json_group_array(json_array(id, name, group_name, hostname, os, arch, \
                 agent_version, enrolled_at, last_seen, conflict_at, conflict_count, \
                 conflict_peer)) FROM endpoints NOT INDEXED WHERE revoked_at IS NULL"
            )
            .fetch_one(&mut *c)
            .await)?;
            drop(c);
            serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        }
        Engine::Postgres => sql!(c, |c| sqlx::query_as(
            "SELECT id, name, group_name, hostname, os, arch, agent_version, enrolled_at, \
             last_seen, conflict_at, conflict_count, conflict_peer \
             FROM endpoints WHERE revoked_at IS NULL"
        )
        .fetch_all(&mut *c)
        .await)?,
    };
    rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(rows.into_iter().map(Listed::from).collect())
}

/// The rows of `rows` (sorted by name) that pass the filter, in order.
pub(crate) fn page<'r, 'f>(
    rows: &'r [Listed],
    f: &'f ListFilter<'f>,
) -> impl Iterator<Item = &'r Listed> + use<'r, 'f> {
    let start = f
        .after
        .map_or(0, |a| rows.partition_point(|r| r.name.as_str() <= a));
    let needle = f.name.map(str::to_lowercase);
    rows[start..].iter().filter(move |r| {
        f.scope.allows(Some(&r.group))
            && f.group.is_none_or(|g| r.group == g)
            && needle.as_deref().is_none_or(|n| r.name_lower.contains(n))
    })
}

/// One endpoint of the response, borrowed from the copy: the same JSON as
/// [`api::Endpoint`] (a test holds them equal).
#[derive(serde::Serialize)]
pub(crate) struct View<'a> {
    id: &'a str,
    name: &'a str,
    group: &'a str,
    online: bool,
    last_seen: Option<&'a str>,
    enrolled_at: &'a str,
    hostname: &'a str,
    os: &'a str,
    arch: &'a str,
    agent_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'a api::EndpointConflict>,
}

impl<'a> View<'a> {
    /// `now` is the time shown as `last_seen` of a connected endpoint.
    pub(crate) fn new(r: &'a Listed, online: bool, now: &'a str) -> Self {
        Self {
            id: r.id.as_str(),
            name: &r.name,
            group: &r.group,
            online,
            last_seen: if online {
                Some(now)
            } else {
                r.last_seen.as_deref()
            },
            enrolled_at: &r.enrolled_at,
            hostname: &r.hostname,
            os: &r.os,
            arch: &r.arch,
            agent_version: &r.agent_version,
            conflict: r.conflict.as_ref(),
        }
    }
}

/// Every live endpoint passing `f`, by name, read through a fresh copy
/// (tests of the filters; the gateway keeps one [`EndpointList`]).
#[cfg(test)]
pub(crate) async fn list_page(
    db: &Store,
    f: &ListFilter<'_>,
    limit: Option<usize>,
) -> Result<Vec<Listed>, sqlx::Error> {
    let rows = EndpointList::default().rows(db).await?;
    Ok(page(&rows, f)
        .take(limit.unwrap_or(usize::MAX))
        .cloned()
        .collect())
}
