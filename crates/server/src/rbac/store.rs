//! Roles as stored: a name, a description and a set of permissions.

use std::collections::BTreeSet;

use jumpgate_api_types as api;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{Permission, parse_permissions, permission_names};
use crate::ids;

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoleError {
    #[error("no role named `{0}`")]
    Unknown(String),
    #[error("role `{0}` already exists")]
    Exists(String),
    #[error("`{0}` is a built-in role and cannot be changed or deleted")]
    Builtin(String),
    #[error("role `{0}` is assigned to {1} user(s) or API client(s); reassign them first")]
    InUse(String, i64),
    #[error("the site requires MFA for role `{0}` (mfa_required_roles); remove it there first")]
    InPolicy(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

fn role(row: &sqlx::sqlite::SqliteRow) -> api::Role {
    let perms: Vec<String> =
        serde_json::from_str(&row.get::<String, _>("permissions")).unwrap_or_default();
    api::Role {
        name: row.get("name"),
        description: row.get("description"),
        permissions: perms,
        builtin: row.get::<i64, _>("builtin") != 0,
    }
}

/// The permissions of a role; `None` if there is no such role. Names in the
/// database that this build does not know are ignored (never widen access).
pub(crate) async fn role_permissions(
    db: &SqlitePool,
    name: &str,
) -> Result<Option<BTreeSet<Permission>>, sqlx::Error> {
    let json: Option<String> = sqlx::query_scalar("SELECT permissions FROM roles WHERE name = ?")
        .bind(name)
        .fetch_optional(db)
        .await?;
    Ok(json.map(|j| {
        serde_json::from_str::<Vec<String>>(&j)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }))
}

pub(crate) async fn list(db: &SqlitePool) -> Result<Vec<api::Role>, sqlx::Error> {
    Ok(
        sqlx::query("SELECT * FROM roles ORDER BY builtin DESC, name")
            .fetch_all(db)
            .await?
            .iter()
            .map(role)
            .collect(),
    )
}

async fn get<'e>(db: impl sqlx::SqliteExecutor<'e>, name: &str) -> Result<api::Role, RoleError> {
    sqlx::query("SELECT * FROM roles WHERE name = ?")
        .bind(name)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(role)
        .ok_or_else(|| RoleError::Unknown(name.to_owned()))
}

fn checked_permissions(names: &[String]) -> Result<String, RoleError> {
    if names.is_empty() {
        return Err(RoleError::Invalid(
            "a role needs at least one permission".into(),
        ));
    }
    let set = parse_permissions(names).map_err(RoleError::Invalid)?;
    Ok(serde_json::to_string(&permission_names(&set)).unwrap_or_default())
}

// Changes take a connection inside the caller's write transaction, so the
// change and its audit entry commit together.

pub(crate) async fn create(
    db: &mut SqliteConnection,
    r: &api::CreateRole,
) -> Result<api::Role, RoleError> {
    ids::validate_name("role", &r.name).map_err(RoleError::Invalid)?;
    ids::validate_description("role", &r.description).map_err(RoleError::Invalid)?;
    let perms = checked_permissions(&r.permissions)?;
    // Names that differ only in case would pass one for the other; a role
    // named like a user would pass the user off as holding it.
    let same: Option<String> =
        sqlx::query_scalar("SELECT name FROM roles WHERE lower(name) = lower(?)")
            .bind(&r.name)
            .fetch_optional(&mut *db)
            .await?;
    if let Some(existing) = same {
        return Err(RoleError::Exists(existing));
    }
    let user: Option<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE lower(username) = lower(?)")
            .bind(&r.name)
            .fetch_optional(&mut *db)
            .await?;
    if let Some(user) = user {
        return Err(RoleError::Invalid(format!(
            "a user is named `{user}`: a role may not take a user's name (it would pass them off as holding it)"
        )));
    }
    let res = sqlx::query(
        "INSERT INTO roles (name, description, permissions, builtin) VALUES (?, ?, ?, 0)",
    )
    .bind(&r.name)
    .bind(&r.description)
    .bind(perms)
    .execute(&mut *db)
    .await;
    match res {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(RoleError::Exists(r.name.clone()))
        }
        Err(e) => Err(e.into()),
        Ok(_) => get(db, &r.name).await,
    }
}

pub(crate) async fn update(
    db: &mut SqliteConnection,
    name: &str,
    u: &api::UpdateRole,
) -> Result<api::Role, RoleError> {
    let current = get(&mut *db, name).await?;
    if current.builtin {
        return Err(RoleError::Builtin(name.to_owned()));
    }
    if let Some(d) = &u.description {
        ids::validate_description("role", d).map_err(RoleError::Invalid)?;
    }
    let perms = u
        .permissions
        .as_deref()
        .map(checked_permissions)
        .transpose()?;
    sqlx::query("UPDATE roles SET description = COALESCE(?, description), permissions = COALESCE(?, permissions) WHERE name = ?")
        .bind(u.description.as_deref())
        .bind(perms)
        .bind(name)
        .execute(&mut *db)
        .await?;
    get(db, name).await
}

pub(crate) async fn delete(db: &mut SqliteConnection, name: &str) -> Result<(), RoleError> {
    let current = get(&mut *db, name).await?;
    if current.builtin {
        return Err(RoleError::Builtin(name.to_owned()));
    }
    let users: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM users WHERE role = ?) + (SELECT COUNT(*) FROM api_clients WHERE role = ?)")
        .bind(name)
        .bind(name)
        .fetch_one(&mut *db)
        .await?;
    if users > 0 {
        return Err(RoleError::InUse(name.to_owned(), users));
    }
    if crate::identity::settings::load(&mut *db)
        .await?
        .mfa_required(name)
    {
        return Err(RoleError::InPolicy(name.to_owned()));
    }
    sqlx::query("DELETE FROM roles WHERE name = ?")
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}
