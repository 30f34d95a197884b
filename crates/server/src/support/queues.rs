//! Support queues: a team of technicians (members) and the endpoint group
//! whose permissions govern the queue's sessions.

use jumpgate_api_types::support as api;

use super::SupportError;
use crate::ids;
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

/// Waiting customers a queue takes when none is configured.
pub(crate) const DEFAULT_MAX_WAITING: u32 = 200;
/// The most a queue may be configured to take.
pub(crate) const MAX_WAITING_LIMIT: u32 = 10_000;

/// One queue, with its members' user ids and names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Queue {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) group: String,
    pub(crate) public: bool,
    pub(crate) auto_assign: bool,
    pub(crate) max_waiting: u32,
    /// (user id, username), by username.
    pub(crate) members: Vec<(String, String)>,
}

impl Queue {
    pub(crate) fn to_api(&self) -> api::Queue {
        api::Queue {
            name: self.name.clone(),
            description: self.description.clone(),
            group: self.group.clone(),
            public: self.public,
            auto_assign: self.auto_assign,
            max_waiting: self.max_waiting,
            members: self.members.iter().map(|(_, n)| n.clone()).collect(),
            available: Vec::new(),
        }
    }

    pub(crate) fn has_member(&self, user_id: &str) -> bool {
        self.members.iter().any(|(id, _)| id == user_id)
    }
}

type QueueRow = (String, String, String, i64, i64, i64);

fn from_row(r: QueueRow, members: Vec<(String, String)>) -> Queue {
    Queue {
        name: r.0,
        description: r.1,
        group: r.2,
        public: r.3 != 0,
        auto_assign: r.4 != 0,
        max_waiting: u32::try_from(r.5).unwrap_or(DEFAULT_MAX_WAITING),
        members,
    }
}

async fn members_of(e: &mut dyn Exec, queue: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT m.user_id, u.username FROM support_queue_members m
           JOIN users u ON u.id = m.user_id
          WHERE m.queue = $1 ORDER BY u.username"
    )
    .bind(queue)
    .fetch_all(&mut *c)
    .await)
}

/// One queue.
pub(crate) async fn get_in(e: &mut dyn Exec, name: &str) -> Result<Option<Queue>, sqlx::Error> {
    let row: Option<QueueRow> = sql!(e, |c| sqlx::query_as(
        "SELECT name, description, group_name, public, auto_assign, max_waiting
           FROM support_queues WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    match row {
        Some(r) => {
            let members = members_of(e, name).await?;
            Ok(Some(from_row(r, members)))
        }
        None => Ok(None),
    }
}

/// One queue.
pub(crate) async fn get(db: &Store, name: &str) -> Result<Option<Queue>, sqlx::Error> {
    let mut c = db.conn().await?;
    get_in(&mut c, name).await
}

/// Every queue, by name.
pub(crate) async fn list(db: &Store) -> Result<Vec<Queue>, sqlx::Error> {
    let mut c = db.conn().await?;
    list_in(&mut c).await
}

/// Every queue, by name, within a transaction (or on a connection).
pub(crate) async fn list_in(c: &mut dyn Exec) -> Result<Vec<Queue>, sqlx::Error> {
    let rows: Vec<QueueRow> = sql!(c, |c| sqlx::query_as(
        "SELECT name, description, group_name, public, auto_assign, max_waiting
           FROM support_queues ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)?;
    let all: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
        "SELECT m.queue, m.user_id, u.username FROM support_queue_members m
           JOIN users u ON u.id = m.user_id ORDER BY u.username"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let members = all
                .iter()
                .filter(|(q, _, _)| *q == r.0)
                .map(|(_, id, n)| (id.clone(), n.clone()))
                .collect();
            from_row(r, members)
        })
        .collect())
}

/// The user ids of `names`, in order; an unknown name is an error.
async fn member_ids(
    e: &mut dyn Exec,
    names: &[String],
) -> Result<Vec<(String, String)>, SupportError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for n in names {
        let found: Option<(String, String)> = sql!(e, |c| sqlx::query_as(
            "SELECT id, username FROM users
              WHERE username = $1 OR (lower(username) = lower($1) AND name_clash = 0)
              ORDER BY CASE WHEN username = $1 THEN 0 ELSE 1 END LIMIT 1"
        )
        .bind(n)
        .fetch_optional(&mut *c)
        .await)?;
        let Some(found) = found else {
            return Err(SupportError::Invalid(format!(
                "members: no user named `{n}`"
            )));
        };
        if !out.iter().any(|(id, _)| *id == found.0) {
            out.push(found);
        }
    }
    Ok(out)
}

async fn set_members(
    e: &mut dyn Exec,
    queue: &str,
    members: &[(String, String)],
    now: i64,
) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "DELETE FROM support_queue_members WHERE queue = $1"
    )
    .bind(queue)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    for (id, _) in members {
        sql!(e, |c| sqlx::query(
            "INSERT INTO support_queue_members (queue, user_id, added_at) VALUES ($1, $2, $3)"
        )
        .bind(queue)
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

fn check_max_waiting(n: u32) -> Result<u32, SupportError> {
    if (1..=MAX_WAITING_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(SupportError::Invalid(format!(
            "max_waiting: {n} is not between 1 and {MAX_WAITING_LIMIT}"
        )))
    }
}

async fn check_group(e: &mut dyn Exec, group: &str) -> Result<(), SupportError> {
    if crate::agents::groups::exists(e, group).await? {
        Ok(())
    } else {
        Err(SupportError::Invalid(format!(
            "group: no endpoint group named `{group}`"
        )))
    }
}

/// Creates a queue with its members (`queue-create`).
///
/// # Errors
/// An invalid name, description or limit, an unknown group or member, an
/// existing queue, or the store failed.
pub(crate) async fn create(
    db: &Store,
    req: &api::CreateQueue,
    actor: &str,
) -> Result<Queue, SupportError> {
    ids::validate_name("queue", &req.name).map_err(SupportError::Invalid)?;
    ids::validate_description("queue", &req.description).map_err(SupportError::Invalid)?;
    let max_waiting = check_max_waiting(req.max_waiting.unwrap_or(DEFAULT_MAX_WAITING))?;
    let mut w = db.write().await?;
    check_group(&mut w, &req.group).await?;
    if get_in(&mut w, &req.name).await?.is_some() {
        return Err(SupportError::Exists(format!(
            "queue `{}` already exists",
            req.name
        )));
    }
    let members = member_ids(&mut w, &req.members).await?;
    let now = ids::now_ms();
    sql!(w, |c| sqlx::query(
        "INSERT INTO support_queues
             (name, description, group_name, public, auto_assign, max_waiting, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(&req.name)
    .bind(&req.description)
    .bind(&req.group)
    .bind(i64::from(req.public))
    .bind(i64::from(req.auto_assign))
    .bind(i64::from(max_waiting))
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    set_members(&mut w, &req.name, &members, now).await?;
    let names: Vec<&str> = members.iter().map(|(_, n)| n.as_str()).collect();
    w.audit(
        AuditEvent::new(actor, AuditAction::QueueCreate, &req.name)
            .detail(format!(
                "group={} members={} auto_assign={}",
                req.group,
                names.join(","),
                req.auto_assign
            ))
            .group(&req.group),
    )
    .await?;
    let q = get_in(&mut w, &req.name)
        .await?
        .ok_or_else(|| SupportError::UnknownQueue(req.name.clone()))?;
    w.commit().await?;
    Ok(q)
}

/// Changes what `req` gives (`queue-update`, naming what changed).
///
/// # Errors
/// No such queue, an invalid value, or the store failed.
pub(crate) async fn update(
    db: &Store,
    name: &str,
    req: &api::UpdateQueue,
    actor: &str,
) -> Result<Queue, SupportError> {
    if let Some(d) = &req.description {
        ids::validate_description("queue", d).map_err(SupportError::Invalid)?;
    }
    let max_waiting = req.max_waiting.map(check_max_waiting).transpose()?;
    let mut w = db.write().await?;
    let Some(before) = get_in(&mut w, name).await? else {
        return Err(SupportError::UnknownQueue(name.to_owned()));
    };
    if let Some(g) = &req.group {
        check_group(&mut w, g).await?;
    }
    let members = match &req.members {
        Some(m) => Some(member_ids(&mut w, m).await?),
        None => None,
    };
    let mut changed = Vec::new();
    if req
        .description
        .as_ref()
        .is_some_and(|d| *d != before.description)
    {
        changed.push("description".to_owned());
    }
    if let Some(g) = req.group.as_ref().filter(|g| **g != before.group) {
        changed.push(format!("group={}->{g}", before.group));
    }
    if let Some(p) = req.public.filter(|p| *p != before.public) {
        changed.push(format!("public={p}"));
    }
    if let Some(a) = req.auto_assign.filter(|a| *a != before.auto_assign) {
        changed.push(format!("auto_assign={a}"));
    }
    if let Some(m) = max_waiting.filter(|m| *m != before.max_waiting) {
        changed.push(format!("max_waiting={m}"));
    }
    if let Some(m) = &members {
        let mut now: Vec<&str> = m.iter().map(|(_, n)| n.as_str()).collect();
        let mut was: Vec<&str> = before.members.iter().map(|(_, n)| n.as_str()).collect();
        now.sort_unstable();
        was.sort_unstable();
        if now != was {
            changed.push(format!("members={}", now.join(",")));
        }
    }
    if changed.is_empty() {
        return Ok(before);
    }
    sql!(w, |c| sqlx::query(
        "UPDATE support_queues SET description = COALESCE($1, description),
                group_name = COALESCE($2, group_name), public = COALESCE($3, public),
                auto_assign = COALESCE($4, auto_assign), max_waiting = COALESCE($5, max_waiting)
          WHERE name = $6"
    )
    .bind(req.description.as_deref())
    .bind(req.group.as_deref())
    .bind(req.public.map(i64::from))
    .bind(req.auto_assign.map(i64::from))
    .bind(max_waiting.map(i64::from))
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if let Some(m) = &members {
        set_members(&mut w, name, m, ids::now_ms()).await?;
    }
    let group = req.group.clone().unwrap_or_else(|| before.group.clone());
    let mut event = AuditEvent::new(actor, AuditAction::QueueUpdate, name)
        .detail(changed.join(" "))
        .group(&before.group);
    if group != before.group {
        event = event.group(group);
    }
    w.audit(event).await?;
    let after = get_in(&mut w, name)
        .await?
        .ok_or_else(|| SupportError::UnknownQueue(name.to_owned()))?;
    w.commit().await?;
    Ok(after)
}

/// Deletes a queue (`queue-delete`); its waiting customers stay in their
/// sessions' history, which names the queue.
///
/// # Errors
/// No such queue, or the store failed.
pub(crate) async fn delete(db: &Store, name: &str, actor: &str) -> Result<(), SupportError> {
    let mut w = db.write().await?;
    let Some(q) = get_in(&mut w, name).await? else {
        return Err(SupportError::UnknownQueue(name.to_owned()));
    };
    sql!(w, |c| sqlx::query(
        "DELETE FROM support_queue_members WHERE queue = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "DELETE FROM support_queues WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(AuditEvent::new(actor, AuditAction::QueueDelete, name).group(&q.group))
        .await?;
    w.commit().await?;
    Ok(())
}
