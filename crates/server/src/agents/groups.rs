//! Endpoint groups: the `groups` table's one owner. Every endpoint is in
//! one group; users and API clients are given groups (their `groups`
//! lists, kept by `identity`), and access to endpoints follows them.
//!
//! A group is deleted only when nothing refers to it any more: no live
//! endpoint is in it and no user or API client holds it. A membership left
//! behind would wait, inert, for a group of the same name to be created
//! again and then silently grant access to it.

use jumpgate_proto::session::ConsentMode;

use crate::ids;
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

/// A group and how many live endpoints it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) endpoints: u64,
    /// How the person at its endpoints takes part in a desktop session.
    pub(crate) consent: ConsentMode,
}

/// A consent mode as given to the API (`prompt`, `notify`, `none`).
///
/// # Errors
/// Any other text, named in the message.
pub(crate) fn parse_consent(s: &str) -> Result<ConsentMode, GroupError> {
    s.parse::<ConsentMode>().map_err(GroupError::Invalid)
}

/// A stored consent mode; a value this build does not know (a row edited
/// by hand) is the strictest, `prompt`.
fn stored_consent(s: &str) -> ConsentMode {
    s.parse().unwrap_or(ConsentMode::Prompt)
}

/// The consent mode of group `name` (`prompt` when there is no such group:
/// the person at the endpoint is asked).
pub(crate) async fn consent_of(db: &Store, name: &str) -> Result<ConsentMode, sqlx::Error> {
    let mut c = db.conn().await?;
    let found: Option<String> = sql!(c, |c| sqlx::query_scalar(
        "SELECT consent FROM groups WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(found.as_deref().map_or(ConsentMode::Prompt, stored_consent))
}

/// Why a group was not created or deleted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupError {
    #[error("{0}")]
    Invalid(String),
    #[error("group `{0}` already exists")]
    Exists(String),
    #[error("no group named `{0}`")]
    NotFound(String),
    #[error("group `{name}` still holds {count} endpoint(s); move them first")]
    HasEndpoints { name: String, count: i64 },
    #[error("group `{name}` still holds {count} target(s); remove them first")]
    HasTargets { name: String, count: i64 },
    #[error(
        "group `{name}` is still given to {}; remove it from them first",
        .holders.join(", ")
    )]
    HasMembers { name: String, holders: Vec<String> },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Whether the group exists.
pub(crate) async fn exists(e: &mut dyn Exec, name: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT name FROM groups WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(found.is_some())
}

/// Creates the group with no description if it does not exist (groups
/// named by enrollment tokens come into being with them).
pub(crate) async fn ensure(e: &mut dyn Exec, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "INSERT INTO groups (name, description, created_at) VALUES ($1, '', $2)
         ON CONFLICT (name) DO NOTHING"
    )
    .bind(name)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every group, by name, with its count of live endpoints.
pub(crate) async fn list(db: &Store) -> Result<Vec<Group>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<(String, String, i64, String)> = sql!(c, |c| {
        sqlx::query_as(
        "SELECT g.name, g.description,
                (SELECT COUNT(*) FROM endpoints e WHERE e.group_name = g.name AND e.revoked_at IS NULL),
                g.consent
         FROM groups g ORDER BY g.name",
    )
    .fetch_all(&mut *c)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(name, description, n, consent)| Group {
            name,
            description,
            endpoints: n.max(0) as u64,
            consent: stored_consent(&consent),
        })
        .collect())
}

/// One group with its count of live endpoints.
async fn get_in(e: &mut dyn Exec, name: &str) -> Result<Option<Group>, sqlx::Error> {
    let row: Option<(String, String, i64, String)> = sql!(e, |c| {
        sqlx::query_as(
        "SELECT g.name, g.description,
                (SELECT COUNT(*) FROM endpoints e WHERE e.group_name = g.name AND e.revoked_at IS NULL),
                g.consent
         FROM groups g WHERE g.name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await
    })?;
    Ok(row.map(|(name, description, n, consent)| Group {
        name,
        description,
        endpoints: n.max(0) as u64,
        consent: stored_consent(&consent),
    }))
}

/// Changes a group's description and/or consent mode, with its
/// `group-update` entry by `actor` naming what changed (from → to).
///
/// # Errors
/// No such group, an invalid value, or the store failed.
pub(crate) async fn update(
    db: &Store,
    name: &str,
    description: Option<&str>,
    consent: Option<ConsentMode>,
    actor: &str,
) -> Result<Group, GroupError> {
    if let Some(d) = description {
        ids::validate_description("group", d).map_err(GroupError::Invalid)?;
    }
    let mut w = db.write().await?;
    let Some(before) = get_in(&mut w, name).await? else {
        return Err(GroupError::NotFound(name.to_owned()));
    };
    let mut changed = Vec::new();
    if let Some(d) = description
        && d != before.description
    {
        changed.push("description".to_owned());
    }
    if let Some(m) = consent
        && m != before.consent
    {
        changed.push(format!(
            "consent={}->{}",
            before.consent.as_str(),
            m.as_str()
        ));
    }
    if changed.is_empty() {
        return Ok(before);
    }
    sql!(w, |c| sqlx::query(
        "UPDATE groups SET description = COALESCE($1, description), consent = COALESCE($2, consent)
          WHERE name = $3"
    )
    .bind(description)
    .bind(consent.map(ConsentMode::as_str))
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(actor, AuditAction::GroupUpdate, name)
            .detail(changed.join(" "))
            .group(name),
    )
    .await?;
    let after = get_in(&mut w, name)
        .await?
        .ok_or_else(|| GroupError::NotFound(name.to_owned()))?;
    w.commit().await?;
    Ok(after)
}

/// Creates a group, with its `group-create` entry by `actor`.
///
/// # Errors
/// An invalid name or description, an existing group, or the store failed.
pub(crate) async fn create(
    db: &Store,
    name: &str,
    description: &str,
    consent: ConsentMode,
    actor: &str,
) -> Result<Group, GroupError> {
    ids::validate_name("group", name).map_err(GroupError::Invalid)?;
    ids::validate_description("group", description).map_err(GroupError::Invalid)?;
    let mut w = db.write().await?;
    // Writers are serialised: checked, then inserted, with no other writer
    // in between (and no unique violation aborting PostgreSQL's transaction).
    if exists(&mut w, name).await? {
        return Err(GroupError::Exists(name.to_owned()));
    }
    sql!(w, |c| sqlx::query(
        "INSERT INTO groups (name, description, created_at, consent) VALUES ($1, $2, $3, $4)"
    )
    .bind(name)
    .bind(description)
    .bind(ids::now_ms())
    .bind(consent.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(actor, AuditAction::GroupCreate, name)
            .detail(format!("consent={}", consent.as_str()))
            .group(name),
    )
    .await?;
    w.commit().await?;
    Ok(Group {
        name: name.to_owned(),
        description: description.to_owned(),
        endpoints: 0,
        consent,
    })
}

/// Deletes a group that nothing refers to, with its `group-delete` entry
/// by `actor`. Refused, and the refusal audited, while live endpoints are
/// in it or users or API clients hold it (a membership left behind would
/// grant access again to a group of the same name created later).
///
/// # Errors
/// No such group, it is still in use, or the store failed.
pub(crate) async fn delete(db: &Store, name: &str, actor: &str) -> Result<(), GroupError> {
    let mut w = db.write().await?;
    if !exists(&mut w, name).await? {
        return Err(GroupError::NotFound(name.to_owned()));
    }
    let count: i64 = sql!(w, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM endpoints WHERE group_name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await)?;
    let targets = crate::targets::count_in_group(&mut w, name).await?;
    let refused = if count > 0 {
        Some(GroupError::HasEndpoints {
            name: name.to_owned(),
            count,
        })
    } else if targets > 0 {
        Some(GroupError::HasTargets {
            name: name.to_owned(),
            count: targets,
        })
    } else {
        let holders = crate::identity::members::holding_group(&mut w, name).await?;
        (!holders.is_empty()).then(|| GroupError::HasMembers {
            name: name.to_owned(),
            holders,
        })
    };
    if let Some(why) = refused {
        drop(w);
        db.audit_now(
            AuditEvent::new(actor, AuditAction::GroupDelete, name)
                .outcome("refused")
                .detail(why.to_string())
                .group(name),
        )
        .await?;
        return Err(why);
    }
    sql!(w, |c| sqlx::query("DELETE FROM groups WHERE name = $1")
        .bind(name)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    // Its approval setting goes with it (a group created later under the
    // same name starts without one).
    crate::access::remove_policy(&mut w, name).await?;
    w.audit(AuditEvent::new(actor, AuditAction::GroupDelete, name).group(name))
        .await?;
    w.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
