//! User accounts: records, names, creation, changes and deletion.

use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};

use super::*;

/// A user account as stored.
#[derive(Clone, Debug)]
pub(crate) struct UserRecord {
    pub(crate) id: UserId,
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) role: String,
    pub(crate) groups: Vec<String>,
    pub(super) password_hash: String,
    pub(crate) password_changed_at: i64,
    pub(crate) lock: AccountLock,
    pub(super) totp_secret: Option<Vec<u8>>,
    pub(super) totp_pending: Option<Vec<u8>>,
    pub(super) totp_last_step: Option<i64>,
    pub(crate) created_at: i64,
}

impl UserRecord {
    pub(crate) fn mfa_enabled(&self) -> bool {
        self.totp_secret.is_some()
    }

    pub(crate) fn to_api(&self) -> api::User {
        let now = ids::now_ms();
        api::User {
            username: self.username.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            groups: self.groups.clone(),
            mfa_enabled: self.mfa_enabled(),
            locked_until: self
                .lock
                .locked_until_ms
                .filter(|_| self.lock.is_locked(now))
                .map(ids::rfc3339),
            created_at: ids::rfc3339(self.created_at),
            password_changed_at: ids::rfc3339(self.password_changed_at),
        }
    }
}

pub(super) fn user_record(r: &sqlx::sqlite::SqliteRow) -> UserRecord {
    UserRecord {
        id: UserId(r.get("id")),
        username: r.get("username"),
        email: r.get("email"),
        role: r.get("role"),
        groups: json_list(&r.get::<String, _>("groups")),
        password_hash: r.get("password_hash"),
        password_changed_at: r.get("password_changed_at"),
        lock: AccountLock {
            failed: r.get::<i64, _>("failed_logins") as u32,
            locked_until_ms: r.get("locked_until"),
        },
        totp_secret: r.get("totp_secret"),
        totp_pending: r.get("totp_pending"),
        totp_last_step: r.get("totp_last_step"),
        created_at: r.get("created_at"),
    }
}

/// Finds a user by name, ignoring case (`Alice` logs in as `alice`). An
/// exact match comes first: accounts that clashed before names became
/// case-insensitive (schema 6, `name_clash`) are only found by their exact
/// name.
pub(crate) async fn find_user(
    db: &SqlitePool,
    username: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT * FROM users
         WHERE username = ?1 OR (lower(username) = lower(?1) AND name_clash = 0)
         ORDER BY username = ?1 DESC LIMIT 1",
    )
    .bind(username)
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(user_record))
}

/// Names no account may take: the gateway's own actors in the audit log
/// (`jumpgate`, `(gateway start)`...) and a machine's superuser, which a
/// reader would take for something other than a person's account.
pub(crate) const RESERVED_USER_NAMES: [&str; 4] = ["jumpgate", "gateway", "system", "root"];

/// Checks a new user's name: valid characters and length, not reserved,
/// not a role's name unless the user holds that role (a technician called
/// `admin` would mislead whoever reads the audit log), and not taken in any
/// case.
///
/// # Errors
/// [`IdentityError::InvalidName`] or [`IdentityError::UserExists`].
pub(super) async fn check_new_user_name(
    db: &SqlitePool,
    name: &str,
    role: &str,
) -> Result<(), IdentityError> {
    ids::validate_name("user", name).map_err(IdentityError::InvalidName)?;
    if let Some(r) = RESERVED_USER_NAMES
        .iter()
        .find(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(IdentityError::InvalidName(format!(
            "the user name `{r}` is reserved (the audit log would pass it off as the gateway or a superuser); choose another"
        )));
    }
    check_role_name_rule(db, name, role).await?;
    let taken: Option<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE lower(username) = lower(?) LIMIT 1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    match taken {
        Some(existing) => Err(IdentityError::UserExists(existing)),
        None => Ok(()),
    }
}

/// A user named like a role (`admin`, `auditor`...) must hold that role.
pub(super) async fn check_role_name_rule(
    db: &SqlitePool,
    name: &str,
    role: &str,
) -> Result<(), IdentityError> {
    let role_named: Option<String> =
        sqlx::query_scalar("SELECT name FROM roles WHERE lower(name) = lower(?)")
            .bind(name)
            .fetch_optional(db)
            .await?;
    match role_named {
        Some(r) if r != role => Err(IdentityError::InvalidName(format!(
            "a user named `{name}` must hold the `{r}` role (a name equal to a role's would mislead whoever reads the audit log); choose another name"
        ))),
        _ => Ok(()),
    }
}

/// Accounts kept from before user names became case-insensitive that clash
/// with an older one (`Alice` next to `alice`): each as `name (clashes with
/// older)`. The gateway names them at start so an administrator can remove
/// them; they log in only with their exact name.
pub(crate) async fn name_clashes(db: &SqlitePool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.username, (SELECT o.username FROM users o
                             WHERE lower(o.username) = lower(u.username) AND o.name_clash = 0)
         FROM users u WHERE u.name_clash = 1 ORDER BY u.username",
    )
    .fetch_all(db)
    .await
}

pub(crate) async fn get_user(db: &SqlitePool, username: &str) -> Result<UserRecord, IdentityError> {
    find_user(db, username)
        .await?
        .ok_or_else(|| IdentityError::UnknownUser(username.to_owned()))
}

pub(crate) async fn user_by_id(db: &SqlitePool, id: &UserId) -> Result<UserRecord, IdentityError> {
    sqlx::query("SELECT * FROM users WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(user_record)
        .ok_or(IdentityError::Unauthenticated)
}

pub(crate) async fn list_users(db: &SqlitePool) -> Result<Vec<UserRecord>, sqlx::Error> {
    Ok(sqlx::query("SELECT * FROM users ORDER BY username")
        .fetch_all(db)
        .await?
        .iter()
        .map(user_record)
        .collect())
}

/// Checks that `groups` are `*` or existing endpoint groups.
pub(crate) async fn check_groups(db: &SqlitePool, groups: &[String]) -> Result<(), IdentityError> {
    for g in groups {
        if g == "*" {
            continue;
        }
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM groups WHERE name = ?")
            .bind(g)
            .fetch_optional(db)
            .await?;
        if exists.is_none() {
            return Err(IdentityError::Invalid(format!(
                "unknown group {} (create it first, or use `*` for all groups)",
                ids::echo(g)
            )));
        }
    }
    Ok(())
}

pub(super) async fn check_role(db: &SqlitePool, role: &str) -> Result<(), IdentityError> {
    match rbac::role_permissions(db, role).await? {
        Some(_) => Ok(()),
        None => Err(IdentityError::UnknownRole(ids::echo(role))),
    }
}

pub(super) fn check_email(email: &str) -> Result<(), IdentityError> {
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid(format!(
            "{} is not an email address",
            ids::echo(email)
        )))
    }
}

/// A new account.
pub(crate) struct NewUser<'a> {
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
    pub(crate) role: &'a str,
    pub(crate) groups: &'a [String],
    pub(crate) email: Option<&'a str>,
}

/// Creates a user, enforcing the site's password policy.
///
/// # Errors
/// Invalid name, email, role or group; weak password; existing user.
pub(crate) async fn create_user(
    db: &SqlitePool,
    u: &NewUser<'_>,
    audit: &Audit<'_>,
) -> Result<UserId, IdentityError> {
    check_role(db, u.role).await?;
    check_new_user_name(db, u.username, u.role).await?;
    check_groups(db, u.groups).await?;
    // An administrator without groups could manage everyone but reach no
    // endpoint: give the built-in admin role every group unless told otherwise.
    let all = ["*".to_owned()];
    let groups = if u.role == "admin" && u.groups.is_empty() {
        &all[..]
    } else {
        u.groups
    };
    if let Some(e) = u.email.filter(|e| !e.is_empty()) {
        check_email(e)?;
    }
    let policy = settings::load(db).await?.password;
    let violations = password::check(&policy, u.username, u.password);
    if !violations.is_empty() {
        return Err(IdentityError::WeakPassword(password::describe(&violations)));
    }
    let hash = hash_password(u.password.to_owned()).await?;
    let id = UserId::generate();
    let now = ids::now_ms();
    let mut tx = crate::store::begin_write(db).await?;
    let res = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, created_at, email, groups, password_changed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.as_str())
    .bind(u.username)
    .bind(&hash)
    .bind(u.role)
    .bind(now)
    .bind(u.email.filter(|e| !e.is_empty()))
    .bind(to_json(groups))
    .bind(now)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(IdentityError::UserExists(u.username.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES (?, ?, ?)",
    )
    .bind(id.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(id)
}

/// Changes role, groups or email.
pub(crate) async fn update_user(
    db: &SqlitePool,
    username: &str,
    u: &api::UpdateUser,
    actor: &str,
) -> Result<UserRecord, IdentityError> {
    let user = get_user(db, username).await?;
    if let Some(role) = &u.role {
        check_role(db, role).await?;
        if user.role == "admin" && role != "admin" {
            ensure_another_admin(db, &user.id).await?;
        }
        check_role_name_rule(db, &user.username, role).await?;
    }
    if let Some(groups) = &u.groups {
        check_groups(db, groups).await?;
    }
    if let Some(e) = u.email.as_deref().filter(|e| !e.is_empty()) {
        check_email(e)?;
    }
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("UPDATE users SET role = COALESCE(?, role), groups = COALESCE(?, groups), email = CASE WHEN ? IS NULL THEN email WHEN ? = '' THEN NULL ELSE ? END WHERE id = ?")
        .bind(u.role.as_deref())
        .bind(u.groups.as_deref().map(to_json))
        .bind(u.email.as_deref())
        .bind(u.email.as_deref())
        .bind(u.email.as_deref())
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await?;
    let role = u.role.as_deref().unwrap_or(&user.role);
    let groups = u.groups.as_deref().unwrap_or(&user.groups).join(",");
    Audit::new(actor, "user-update", &user.username)
        .detail(format!("role={role} groups={groups}"))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    get_user(db, &user.username).await
}

/// Refuses to remove the last administrator (nobody could manage the site).
pub(super) async fn ensure_another_admin(
    db: &SqlitePool,
    except: &UserId,
) -> Result<(), IdentityError> {
    let others: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND id <> ?")
            .bind(except.as_str())
            .fetch_one(db)
            .await?;
    if others == 0 {
        return Err(IdentityError::Conflict(
            "this is the last admin: make another user admin first".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn delete_user(
    db: &SqlitePool,
    username: &str,
    audit: &Audit<'_>,
) -> Result<(), IdentityError> {
    let user = get_user(db, username).await?;
    if user.role == "admin" {
        ensure_another_admin(db, &user.id).await?;
    }
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn unlock(
    db: &SqlitePool,
    id: &UserId,
    audit: &Audit<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit.append(&mut tx).await?;
    tx.commit().await
}
