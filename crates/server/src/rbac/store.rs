//! Roles as stored: a name, a description and a set of permissions.

use std::collections::BTreeSet;

use jumpgate_api_types as api;

use super::{Permission, parse_permissions, permission_names};
use crate::ids;
use crate::store::{Exec, Store, sql};

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

/// A `roles` row as both engines return it.
#[derive(sqlx::FromRow)]
struct RoleRow {
    name: String,
    description: String,
    permissions: String,
    builtin: i64,
}

impl From<RoleRow> for api::Role {
    fn from(r: RoleRow) -> Self {
        Self {
            name: r.name,
            description: r.description,
            permissions: serde_json::from_str(&r.permissions).unwrap_or_default(),
            builtin: r.builtin != 0,
        }
    }
}

/// The permissions of a role; `None` if there is no such role. Names in the
/// database that this build does not know are ignored (never widen access).
pub(crate) async fn role_permissions(
    db: &Store,
    name: &str,
) -> Result<Option<BTreeSet<Permission>>, sqlx::Error> {
    role_permissions_in(&mut db.conn().await?, name).await
}

/// [`role_permissions`] inside a transaction.
pub(crate) async fn role_permissions_in(
    e: &mut dyn Exec,
    name: &str,
) -> Result<Option<BTreeSet<Permission>>, sqlx::Error> {
    let json: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT permissions FROM roles WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(json.as_deref().map(stored_permissions))
}

/// A role's permissions as stored (a JSON array of names; unknown names
/// are left out).
pub(crate) fn stored_permissions(json: &str) -> BTreeSet<Permission> {
    serde_json::from_str::<Vec<String>>(json)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub(crate) async fn list(db: &Store) -> Result<Vec<api::Role>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<RoleRow> = sql!(c, |c| sqlx::query_as(
        "SELECT name, description, permissions, builtin FROM roles ORDER BY builtin DESC, name"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(api::Role::from).collect())
}

async fn get(e: &mut dyn Exec, name: &str) -> Result<api::Role, RoleError> {
    let row: Option<RoleRow> = sql!(e, |c| sqlx::query_as(
        "SELECT name, description, permissions, builtin FROM roles WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    row.map(api::Role::from)
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

// Changes run inside the caller's write transaction (`Store::write`), so
// the checks, the change and its audit entry commit together.

pub(crate) async fn create(e: &mut dyn Exec, r: &api::CreateRole) -> Result<api::Role, RoleError> {
    ids::validate_name("role", &r.name).map_err(RoleError::Invalid)?;
    ids::validate_description("role", &r.description).map_err(RoleError::Invalid)?;
    let perms = checked_permissions(&r.permissions)?;
    // Names that differ only in case would pass one for the other; a role
    // named like a user would pass the user off as holding it.
    let same: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT name FROM roles WHERE lower(name) = lower($1)"
    )
    .bind(&r.name)
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(existing) = same {
        return Err(RoleError::Exists(existing));
    }
    let user: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT username FROM users WHERE lower(username) = lower($1)"
    )
    .bind(&r.name)
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(user) = user {
        return Err(RoleError::Invalid(format!(
            "a user is named `{user}`: a role may not take a user's name (it would pass them off as holding it)"
        )));
    }
    let res = sql!(e, |c| sqlx::query(
        "INSERT INTO roles (name, description, permissions, builtin) VALUES ($1, $2, $3, 0)",
    )
    .bind(&r.name)
    .bind(&r.description)
    .bind(&perms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()));
    match res {
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            Err(RoleError::Exists(r.name.clone()))
        }
        Err(err) => Err(err.into()),
        Ok(_) => get(e, &r.name).await,
    }
}

pub(crate) async fn update(
    e: &mut dyn Exec,
    name: &str,
    u: &api::UpdateRole,
) -> Result<api::Role, RoleError> {
    let current = get(e, name).await?;
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
    sql!(e, |c| sqlx::query(
        "UPDATE roles SET description = COALESCE($1, description),
                permissions = COALESCE($2, permissions) WHERE name = $3"
    )
    .bind(u.description.as_deref())
    .bind(perms.as_deref())
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    get(e, name).await
}

pub(crate) async fn delete(e: &mut dyn Exec, name: &str) -> Result<(), RoleError> {
    let current = get(e, name).await?;
    if current.builtin {
        return Err(RoleError::Builtin(name.to_owned()));
    }
    let users: i64 = sql!(e, |c| sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM users WHERE role = $1)
              + (SELECT COUNT(*) FROM api_clients WHERE role = $1)"
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await)?;
    if users > 0 {
        return Err(RoleError::InUse(name.to_owned(), users));
    }
    if crate::identity::settings::load_in(e)
        .await?
        .mfa_required(name)
    {
        return Err(RoleError::InPolicy(name.to_owned()));
    }
    sql!(e, |c| sqlx::query("DELETE FROM roles WHERE name = $1")
        .bind(name)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
