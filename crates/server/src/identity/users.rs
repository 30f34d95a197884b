//! User accounts: records, names, creation, changes and deletion.

use jumpgate_api_types as api;

use super::lockout::AccountLock;
use super::login::hash_password;
use super::{IdentityError, json_list, password, settings, to_json};
use crate::ids::{self, UserId};
use crate::rbac;
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

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
    /// Sealed under the site's keys (see `second_factor`).
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

/// `SELECT <the columns of [`UserRow`]> FROM users` and the rest of the
/// statement, as one literal.
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, email, role, groups, password_hash, password_changed_at,
                    failed_logins, locked_until, totp_secret, totp_pending, totp_last_step, created_at
               FROM users ",
            $rest
        )
    };
}

/// A `users` row as both engines return it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    role: String,
    groups: String,
    password_hash: String,
    password_changed_at: i64,
    failed_logins: i64,
    locked_until: Option<i64>,
    totp_secret: Option<Vec<u8>>,
    totp_pending: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(r: UserRow) -> Self {
        Self {
            id: UserId(r.id),
            username: r.username,
            email: r.email,
            role: r.role,
            groups: json_list(&r.groups),
            password_hash: r.password_hash,
            password_changed_at: r.password_changed_at,
            lock: AccountLock {
                failed: u32::try_from(r.failed_logins).unwrap_or(u32::MAX),
                locked_until_ms: r.locked_until,
            },
            totp_secret: r.totp_secret,
            totp_pending: r.totp_pending,
            totp_last_step: r.totp_last_step,
            created_at: r.created_at,
        }
    }
}

/// Finds a user by name, ignoring case (`Alice` logs in as `alice`). An
/// exact match comes first: accounts that clashed before names became
/// case-insensitive (schema 6, `name_clash`) are only found by their exact
/// name.
pub(crate) async fn find_user(
    db: &Store,
    username: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let q = select_users!(
        "WHERE username = $1 OR (lower(username) = lower($1) AND name_clash = 0)
         ORDER BY CASE WHEN username = $1 THEN 0 ELSE 1 END LIMIT 1"
    );
    let mut c = db.conn().await?;
    let row: Option<UserRow> = sql!(c, |c| sqlx::query_as(q)
        .bind(username)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(UserRecord::from))
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
async fn check_new_user_name(
    e: &mut dyn Exec,
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
    check_role_name_rule(e, name, role).await?;
    let taken: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT username FROM users WHERE lower(username) = lower($1) LIMIT 1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    match taken {
        Some(existing) => Err(IdentityError::UserExists(existing)),
        None => Ok(()),
    }
}

/// A user named like a role (`admin`, `auditor`...) must hold that role.
async fn check_role_name_rule(
    e: &mut dyn Exec,
    name: &str,
    role: &str,
) -> Result<(), IdentityError> {
    let role_named: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT name FROM roles WHERE lower(name) = lower($1)"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
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
pub(crate) async fn name_clashes(db: &Store) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<(String, Option<String>)> = sql!(c, |c| sqlx::query_as(
        "SELECT u.username, (SELECT o.username FROM users o
                             WHERE lower(o.username) = lower(u.username) AND o.name_clash = 0)
         FROM users u WHERE u.name_clash = 1 ORDER BY u.username",
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(name, older)| (name, older.unwrap_or_default()))
        .collect())
}

pub(crate) async fn get_user(db: &Store, username: &str) -> Result<UserRecord, IdentityError> {
    find_user(db, username)
        .await?
        .ok_or_else(|| IdentityError::UnknownUser(username.to_owned()))
}

pub(crate) async fn user_by_id(db: &Store, id: &UserId) -> Result<UserRecord, IdentityError> {
    let q = select_users!("WHERE id = $1");
    let mut c = db.conn().await?;
    let row: Option<UserRow> = sql!(c, |c| sqlx::query_as(q)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await)?;
    row.map(UserRecord::from)
        .ok_or(IdentityError::Unauthenticated)
}

pub(crate) async fn list_users(db: &Store) -> Result<Vec<UserRecord>, sqlx::Error> {
    let q = select_users!("ORDER BY username");
    let mut c = db.conn().await?;
    let rows: Vec<UserRow> = sql!(c, |c| sqlx::query_as(q).fetch_all(&mut *c).await)?;
    Ok(rows.into_iter().map(UserRecord::from).collect())
}

/// Checks that `groups` are `*` or existing endpoint groups.
pub(crate) async fn check_groups(e: &mut dyn Exec, groups: &[String]) -> Result<(), IdentityError> {
    for g in groups {
        if g == "*" {
            continue;
        }
        let exists: Option<String> = sql!(e, |c| sqlx::query_scalar(
            "SELECT name FROM groups WHERE name = $1"
        )
        .bind(g)
        .fetch_optional(&mut *c)
        .await)?;
        if exists.is_none() {
            return Err(IdentityError::Invalid(format!(
                "unknown group {} (create it first, or use `*` for all groups)",
                ids::echo(g)
            )));
        }
    }
    Ok(())
}

pub(super) async fn check_role(e: &mut dyn Exec, role: &str) -> Result<(), IdentityError> {
    match rbac::store::role_permissions_in(e, role).await? {
        Some(_) => Ok(()),
        None => Err(IdentityError::UnknownRole(ids::echo(role))),
    }
}

fn check_email(email: &str) -> Result<(), IdentityError> {
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

/// Creates a user, enforcing the site's password policy; `audit` (a
/// `user-create` entry) commits with it.
///
/// # Errors
/// Invalid name, email, role or group; weak password; existing user.
pub(crate) async fn create_user(
    db: &Store,
    u: &NewUser<'_>,
    audit: AuditEvent,
) -> Result<UserId, IdentityError> {
    if let Some(e) = u.email.filter(|e| !e.is_empty()) {
        check_email(e)?;
    }
    {
        let mut c = db.conn().await?;
        check_role(&mut c, u.role).await?;
        check_new_user_name(&mut c, u.username, u.role).await?;
        check_groups(&mut c, u.groups).await?;
    }
    // An administrator without groups could manage everyone but reach no
    // endpoint: give the built-in admin role every group unless told otherwise.
    let all = ["*".to_owned()];
    let groups = if u.role == "admin" && u.groups.is_empty() {
        &all[..]
    } else {
        u.groups
    };
    let policy = settings::load(db).await?.password;
    let violations = password::check(&policy, u.username, u.password);
    if !violations.is_empty() {
        return Err(IdentityError::WeakPassword(password::describe(&violations)));
    }
    let hash = hash_password(u.password.to_owned()).await?;
    let id = UserId::generate();
    let now = ids::now_ms();
    let mut w = db.write().await?;
    let res = sql!(w, |c| {
        sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, created_at, email, groups, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(u.username)
    .bind(&hash)
    .bind(u.role)
    .bind(now)
    .bind(u.email.filter(|e| !e.is_empty()))
    .bind(to_json(groups))
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    });
    match res {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(IdentityError::UserExists(u.username.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    sql!(w, |c| sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES ($1, $2, $3)",
    )
    .bind(id.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(id)
}

/// Changes role, groups or email (audited as `user-update` by `actor`).
pub(crate) async fn update_user(
    db: &Store,
    username: &str,
    u: &api::UpdateUser,
    actor: &str,
) -> Result<UserRecord, IdentityError> {
    let user = get_user(db, username).await?;
    if let Some(e) = u.email.as_deref().filter(|e| !e.is_empty()) {
        check_email(e)?;
    }
    // The checks run in the write transaction: no concurrent change (the
    // last other admin demoted, a group deleted) slips between them and
    // the update.
    let mut w = db.write().await?;
    if let Some(role) = &u.role {
        check_role(&mut w, role).await?;
        if user.role == "admin" && role != "admin" {
            ensure_another_admin(&mut w, &user.id).await?;
        }
        check_role_name_rule(&mut w, &user.username, role).await?;
    }
    if let Some(groups) = &u.groups {
        check_groups(&mut w, groups).await?;
    }
    let groups_json = u.groups.as_deref().map(to_json);
    sql!(w, |c| sqlx::query(
        "UPDATE users SET role = COALESCE($1, role), groups = COALESCE($2, groups),
                email = CASE WHEN $3 IS NULL THEN email WHEN $3 = '' THEN NULL ELSE $3 END
          WHERE id = $4"
    )
    .bind(u.role.as_deref())
    .bind(groups_json.as_deref())
    .bind(u.email.as_deref())
    .bind(user.id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let role = u.role.as_deref().unwrap_or(&user.role);
    let groups = u.groups.as_deref().unwrap_or(&user.groups).join(",");
    w.audit(
        AuditEvent::new(actor, AuditAction::UserUpdate, &user.username)
            .detail(format!("role={role} groups={groups}")),
    )
    .await?;
    w.commit().await?;
    get_user(db, &user.username).await
}

/// Refuses to remove the last administrator (nobody could manage the site).
async fn ensure_another_admin(e: &mut dyn Exec, except: &UserId) -> Result<(), IdentityError> {
    let others: i64 = sql!(e, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND id <> $1"
    )
    .bind(except.as_str())
    .fetch_one(&mut *c)
    .await)?;
    if others == 0 {
        return Err(IdentityError::Conflict(
            "this is the last admin: make another user admin first".into(),
        ));
    }
    Ok(())
}

/// Deletes a user (their sessions, password history and recovery codes go
/// with them); `audit` commits with it.
pub(crate) async fn delete_user(
    db: &Store,
    username: &str,
    audit: AuditEvent,
) -> Result<(), IdentityError> {
    let user = get_user(db, username).await?;
    let mut w = db.write().await?;
    if user.role == "admin" {
        ensure_another_admin(&mut w, &user.id).await?;
    }
    sql!(w, |c| sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user.id.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(())
}

/// Lifts a lockout; `audit` commits with it.
pub(crate) async fn unlock(db: &Store, id: &UserId, audit: AuditEvent) -> Result<(), sqlx::Error> {
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1"
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await
}
