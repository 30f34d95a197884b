//! Who is calling: user accounts, passwords (Argon2id, site policy,
//! history, expiry), brute-force protection, TOTP MFA, login session tokens,
//! OAuth2 API clients, and one-time enrollment tokens for agents.
//!
//! Tokens are 256-bit random strings; only their SHA-256 is stored, so a
//! database leak yields no usable token. User session tokens start `jgs_`,
//! API client access tokens `jga_`.

pub(crate) mod clients;
mod clients_http;
pub(crate) mod http;
pub(crate) mod lockout;
pub(crate) mod members;
pub(crate) mod mfa;
pub(crate) mod password;
pub(crate) mod settings;

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};

use self::lockout::{AccountLock, RateLimiter};
use self::settings::SecuritySettings;
use crate::events::Audit;
use crate::ids::{self, UserId};
use crate::rbac::{self, Groups, Restriction, Scopes, Subject, SubjectKind};

/// Identity failures. `InvalidCredentials` deliberately does not say whether
/// the user exists or is locked.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid username or password (or the account is temporarily locked)")]
    InvalidCredentials,
    #[error("this account uses MFA: a valid TOTP code or recovery code is required")]
    MfaRequired,
    #[error("too many login attempts from your address; retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("missing, invalid or expired session token")]
    Unauthenticated,
    #[error("a user named `{0}` already exists (user names are not case-sensitive)")]
    UserExists(String),
    #[error("no user named `{0}`")]
    UnknownUser(String),
    /// The role as shown by `ids::echo` (quoted, bounded).
    #[error("unknown role {0}")]
    UnknownRole(String),
    #[error("{0}")]
    InvalidName(String),
    /// The text comes from `password::describe` ("password rejected: ...").
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the code is not valid")]
    WrongCode,
    #[error("password hashing failed")]
    Hash,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

async fn hash_password(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| IdentityError::Hash)
    })
    .await
    .map_err(|_| IdentityError::Hash)?
}

/// Verifies in constant time (Argon2's comparison) on a blocking thread.
async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against for unknown or locked
/// users so that every failed login costs the same time.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let pw = ids::random_token("dummy");
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// A user account as stored.
#[derive(Clone, Debug)]
pub(crate) struct UserRecord {
    pub(crate) id: UserId,
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) role: String,
    pub(crate) groups: Vec<String>,
    password_hash: String,
    pub(crate) password_changed_at: i64,
    pub(crate) lock: AccountLock,
    totp_secret: Option<Vec<u8>>,
    totp_pending: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
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

fn user_record(r: &sqlx::sqlite::SqliteRow) -> UserRecord {
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
async fn check_new_user_name(db: &SqlitePool, name: &str, role: &str) -> Result<(), IdentityError> {
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
async fn check_role_name_rule(
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

async fn check_role(db: &SqlitePool, role: &str) -> Result<(), IdentityError> {
    match rbac::role_permissions(db, role).await? {
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
async fn ensure_another_admin(db: &SqlitePool, except: &UserId) -> Result<(), IdentityError> {
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

/// Sets a new password under the site policy (history included), and ends
/// every session of the user.
pub(crate) async fn set_password(
    db: &SqlitePool,
    user: &UserRecord,
    new: &str,
    audit: &Audit<'_>,
) -> Result<(), IdentityError> {
    let policy = settings::load(db).await?.password;
    let violations = password::check(&policy, &user.username, new);
    if !violations.is_empty() {
        return Err(IdentityError::WeakPassword(password::describe(&violations)));
    }
    let previous: Vec<String> =
        sqlx::query_scalar("SELECT password_hash FROM password_history WHERE user_id = ? ORDER BY changed_at DESC LIMIT 24")
            .bind(user.id.as_str())
            .fetch_all(db)
            .await?;
    if password::reused(&policy, new, previous).await {
        let v = [password::Violation::Reused {
            history: policy.history,
        }];
        return Err(IdentityError::WeakPassword(password::describe(&v)));
    }
    let hash = hash_password(new.to_owned()).await?;
    let now = ids::now_ms();
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("UPDATE users SET password_hash = ?, password_changed_at = ?, failed_logins = 0, locked_until = NULL WHERE id = ?")
        .bind(&hash)
        .bind(now)
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES (?, ?, ?)",
    )
    .bind(user.id.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM auth_tokens WHERE user_id = ?")
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends every session of a user.
pub(crate) async fn revoke_sessions(
    db: &SqlitePool,
    id: &UserId,
    audit: Audit<'_>,
) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let n = sqlx::query("DELETE FROM auth_tokens WHERE user_id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    audit
        .detail(format!("{n} session(s)"))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n)
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

async fn store_lock(db: &SqlitePool, id: &UserId, lock: AccountLock) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?")
        .bind(i64::from(lock.failed))
        .bind(lock.locked_until_ms)
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// A login session.
#[derive(Clone)]
pub(crate) struct LoginSession {
    pub(crate) token: String,
    pub(crate) user: UserRecord,
    pub(crate) expires_at_ms: i64,
    pub(crate) restriction: Restriction,
}

/// Login attempts allowed per source address: a burst, then per minute.
pub(crate) fn login_rate_limiter() -> RateLimiter {
    RateLimiter::new(10, 20)
}

/// What a login attempt carries.
pub(crate) struct Attempt<'a> {
    pub(crate) ip: IpAddr,
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
    pub(crate) second_factor: Option<&'a str>,
}

/// Checks a login attempt and issues a session token.
///
/// Every failure but a missing second factor counts towards the account's
/// lockout; unknown, wrong and locked all answer the same after the same work.
pub(crate) async fn login(
    db: &SqlitePool,
    limiter: &RateLimiter,
    a: &Attempt<'_>,
    ttl: Duration,
) -> Result<LoginSession, IdentityError> {
    limiter
        .check(a.ip, tokio::time::Instant::now())
        .map_err(IdentityError::RateLimited)?;
    let settings = settings::load(db).await?;
    let user = find_user(db, a.username).await?;
    let now = ids::now_ms();
    let locked = user.as_ref().is_some_and(|u| u.lock.is_locked(now));
    let stored = match &user {
        Some(u) if !locked => u.password_hash.clone(),
        _ => dummy_hash().to_owned(),
    };
    let password_ok = verify_password(a.password.to_owned(), stored).await;
    let Some(user) = user else {
        // What was typed may be a password typed into the wrong field: it
        // is never stored. A keyed fingerprint lets equal attempts be
        // correlated without revealing the text.
        let who = unknown_user_label(db, a.username).await?;
        crate::events::record(db, &who, "login", &who, "failed", "unknown user").await?;
        return Err(IdentityError::InvalidCredentials);
    };
    if locked || !password_ok {
        if !locked {
            fail(db, &settings, &user, now, "wrong password").await?;
        } else {
            crate::events::record(
                db,
                &user.username,
                "login",
                &user.username,
                "failed",
                "account locked",
            )
            .await?;
        }
        return Err(IdentityError::InvalidCredentials);
    }
    if user.mfa_enabled() {
        let Some(code) = a.second_factor.filter(|c| !c.trim().is_empty()) else {
            return Err(IdentityError::MfaRequired);
        };
        if !check_second_factor(db, &user, code).await? {
            fail(db, &settings, &user, now, "wrong second factor").await?;
            return Err(IdentityError::MfaRequired);
        }
    }
    if user.lock != AccountLock::default() {
        store_lock(db, &user.id, user.lock.after_success()).await?;
    }
    let restriction = restriction_for(
        &settings,
        &user.role,
        user.password_changed_at,
        user.mfa_enabled(),
        now,
    );
    // Audited before the session exists: no unaudited session, ever.
    crate::events::record(db, &user.username, "login", &user.username, "ok", "").await?;
    let token = ids::random_token("jgs");
    let expires_at_ms = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(ids::token_hash(&token))
    .bind(user.id.as_str())
    .bind(now)
    .bind(expires_at_ms)
    .execute(db)
    .await?;
    // Expired tokens are dead weight; sweep them opportunistically.
    sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= ?")
        .bind(now)
        .execute(db)
        .await?;
    Ok(LoginSession {
        token,
        user,
        expires_at_ms,
        restriction,
    })
}

/// The settings key of the site's fingerprint key (32 random bytes, hex),
/// made on first use; it lives in the encrypted database.
const FINGERPRINT_KEY: &str = "audit.fingerprint-key";

/// How an unknown login name is recorded: `unknown user (fingerprint
/// 3f2a…)`, an HMAC-SHA256 of the typed text keyed by a per-site secret
/// (so it cannot be reversed by guessing, even for short texts, without
/// the database), cut to 12 hex digits. The same text always gives the
/// same fingerprint on a site.
pub(crate) async fn unknown_user_label(
    db: &SqlitePool,
    typed: &str,
) -> Result<String, sqlx::Error> {
    let key = fingerprint_key(db).await?;
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        typed.as_bytes(),
    );
    let hex: String = tag.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("unknown user (fingerprint {hex})"))
}

async fn fingerprint_key(db: &SqlitePool) -> Result<Vec<u8>, sqlx::Error> {
    let stored = |v: Option<String>| {
        v.and_then(|s| serde_json::from_str::<String>(&s).ok())
            .and_then(|h| decode_hex(&h))
            .filter(|k| k.len() == 32)
    };
    let get = || {
        sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = ?")
            .bind(FINGERPRINT_KEY)
            .fetch_optional(db)
    };
    if let Some(k) = stored(get().await?) {
        return Ok(k);
    }
    let fresh: String = ids::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // A concurrent first use may win: then its key is the one.
    sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)")
        .bind(FINGERPRINT_KEY)
        .bind(serde_json::to_string(&fresh).unwrap_or_default())
        .execute(db)
        .await?;
    stored(get().await?).ok_or_else(|| sqlx::Error::Protocol("fingerprint key unreadable".into()))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Re-checks a signed-in user's password (before changing it): rate
/// limited and counted towards lockout like a login.
pub(crate) async fn check_current_password(
    db: &SqlitePool,
    limiter: &RateLimiter,
    ip: IpAddr,
    user: &UserRecord,
    password: &str,
) -> Result<(), IdentityError> {
    limiter
        .check(ip, tokio::time::Instant::now())
        .map_err(IdentityError::RateLimited)?;
    let settings = settings::load(db).await?;
    let now = ids::now_ms();
    if user.lock.is_locked(now) {
        return Err(IdentityError::InvalidCredentials);
    }
    if verify_password(password.to_owned(), user.password_hash.clone()).await {
        return Ok(());
    }
    fail(db, &settings, user, now, "wrong current password").await?;
    Err(IdentityError::InvalidCredentials)
}

async fn fail(
    db: &SqlitePool,
    s: &SecuritySettings,
    user: &UserRecord,
    now: i64,
    why: &str,
) -> Result<(), IdentityError> {
    let lock = user.lock.after_failure(&s.lockout, now);
    store_lock(db, &user.id, lock).await?;
    crate::events::record(db, &user.username, "login", &user.username, "failed", why).await?;
    if lock.is_locked(now) {
        tracing::warn!(user = %user.username, "account locked after repeated failed logins");
        let detail = format!("locked for {} s", s.lockout.duration_secs);
        crate::events::record(
            db,
            &user.username,
            "lockout",
            &user.username,
            "locked",
            &detail,
        )
        .await?;
    }
    Ok(())
}

/// A presented bearer token as the gateway keeps it: its SHA-256 (never the
/// token itself) and which table it lives in. Live sessions keep theirs, so
/// they can be authenticated again whenever access may have changed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Credential {
    hash: Vec<u8>,
    api_client: bool,
}

impl Credential {
    pub(crate) fn of(token: &str) -> Self {
        Self {
            hash: ids::token_hash(token),
            api_client: token.starts_with("jga_"),
        }
    }

    /// When the token expires (ms since the epoch); `None` if it no longer
    /// exists.
    pub(crate) async fn expires_at(&self, db: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
        let sql = if self.api_client {
            "SELECT expires_at FROM client_tokens WHERE token_hash = ?"
        } else {
            "SELECT expires_at FROM auth_tokens WHERE token_hash = ?"
        };
        sqlx::query_scalar(sql)
            .bind(&self.hash)
            .fetch_optional(db)
            .await
    }
}

/// Never prints the hash either: it identifies a live credential.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("api_client", &self.api_client)
            .finish_non_exhaustive()
    }
}

/// Resolves a bearer token (a user session or an API client access token).
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens.
pub(crate) async fn authenticate(db: &SqlitePool, token: &str) -> Result<Subject, IdentityError> {
    authenticate_credential(db, &Credential::of(token)).await
}

/// [`authenticate`] for a token known by its hash: the same checks, for the
/// request that opens a session and every later re-check of that session.
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens and
/// locked accounts.
pub(crate) async fn authenticate_credential(
    db: &SqlitePool,
    cred: &Credential,
) -> Result<Subject, IdentityError> {
    if cred.api_client {
        return clients::authenticate(db, &cred.hash).await;
    }
    let row = live_token_row(
        db,
        "SELECT u.id, u.username, u.role, u.groups, u.password_changed_at, u.locked_until, u.totp_secret IS NOT NULL AS mfa
         FROM auth_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ? AND t.expires_at > ?",
        &cred.hash,
    )
    .await?;
    // A locked account (repeated failed logins) is locked everywhere: its
    // open sessions end too.
    if row
        .get::<Option<i64>, _>("locked_until")
        .is_some_and(|until| until > ids::now_ms())
    {
        return Err(IdentityError::Unauthenticated);
    }
    let role: String = row.get("role");
    // Decided on every request, not fixed at login: a policy that starts to
    // require MFA (or a password that expires) takes effect on sessions
    // already open.
    let settings = settings::load(db).await?;
    let restriction = restriction_for(
        &settings,
        &role,
        row.get("password_changed_at"),
        row.get("mfa"),
        ids::now_ms(),
    );
    let kind = SubjectKind::User(UserId(row.get("id")));
    subject(
        db,
        &row,
        row.get("username"),
        kind,
        role,
        Scopes::FULL,
        restriction,
    )
    .await
}

/// Why a credential that authenticated before no longer does, in words for
/// its holder. `expires_at` is the token's expiry as known when it last
/// worked (the row of an expired token may be gone by now).
pub(crate) async fn why_unauthenticated(
    db: &SqlitePool,
    cred: &Credential,
    who: &SubjectKind,
    expires_at: Option<i64>,
) -> Result<String, sqlx::Error> {
    let now = ids::now_ms();
    let expires_at = cred.expires_at(db).await?.or(expires_at);
    let expired = expires_at.is_some_and(|t| t <= now);
    Ok(match who {
        SubjectKind::User(id) => {
            let locked: Option<Option<i64>> =
                sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                    .bind(id.as_str())
                    .fetch_optional(db)
                    .await?;
            match locked {
                None => "your account was deleted".to_owned(),
                Some(Some(until)) if until > now => {
                    "your account is locked after repeated failed logins".to_owned()
                }
                Some(_) if expired => "your login session expired: log in again".to_owned(),
                Some(_) => {
                    "your login session was revoked (sessions revoked, password changed or logged out)"
                        .to_owned()
                }
            }
        }
        SubjectKind::ApiClient { client_id } => {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM api_clients WHERE client_id = ?")
                    .bind(client_id)
                    .fetch_optional(db)
                    .await?;
            match exists {
                None => "the API client was deleted".to_owned(),
                Some(_) if expired => "the API client's access token expired".to_owned(),
                Some(_) => "the API client's access token was revoked".to_owned(),
            }
        }
    })
}

/// What a user's session may do before the account is in order: an expired
/// password must be changed first, then a role's required MFA enrolled.
fn restriction_for(
    settings: &SecuritySettings,
    role: &str,
    password_changed_at: i64,
    mfa_enabled: bool,
    now: i64,
) -> Restriction {
    if password::expired(&settings.password, password_changed_at, now) {
        Restriction::PasswordChange
    } else if settings.mfa_required(role) && !mfa_enabled {
        Restriction::MfaEnrollment
    } else {
        Restriction::None
    }
}

/// The row of a live (unexpired) token, found by the SHA-256 of the
/// presented token; `sql` selects it with the hash and the time as binds.
pub(crate) async fn live_token_row(
    db: &SqlitePool,
    sql: &'static str,
    token_hash: &[u8],
) -> Result<sqlx::sqlite::SqliteRow, IdentityError> {
    sqlx::query(sql)
        .bind(token_hash)
        .bind(ids::now_ms())
        .fetch_optional(db)
        .await?
        .ok_or(IdentityError::Unauthenticated)
}

/// A subject with its role's permissions and the `groups` column of `row`.
pub(crate) async fn subject(
    db: &SqlitePool,
    row: &sqlx::sqlite::SqliteRow,
    name: String,
    kind: SubjectKind,
    role: String,
    scopes: Scopes,
    restriction: Restriction,
) -> Result<Subject, IdentityError> {
    Ok(Subject {
        name,
        kind,
        permissions: rbac::role_permissions(db, &role).await?.unwrap_or_default(),
        role,
        groups: Groups::from_list(&json_list(&row.get::<String, _>("groups"))),
        scopes,
        restriction,
    })
}

/// Revokes one session token.
pub(crate) async fn logout(db: &SqlitePool, token: &str) -> Result<(), IdentityError> {
    sqlx::query("DELETE FROM auth_tokens WHERE token_hash = ?")
        .bind(ids::token_hash(token))
        .execute(db)
        .await?;
    Ok(())
}

// --- MFA ---------------------------------------------------------------

/// Checks a TOTP code (with replay protection) or spends a recovery code.
async fn check_second_factor(
    db: &SqlitePool,
    user: &UserRecord,
    code: &str,
) -> Result<bool, IdentityError> {
    let Some(secret) = user
        .totp_secret
        .as_deref()
        .and_then(mfa::TotpSecret::from_bytes)
    else {
        return Ok(false);
    };
    if mfa::looks_like_recovery_code(code) {
        let spent = sqlx::query("UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL")
            .bind(ids::now_ms())
            .bind(user.id.as_str())
            .bind(mfa::recovery_code_hash(code))
            .execute(db)
            .await?;
        if spent.rows_affected() == 1 {
            crate::events::record(
                db,
                &user.username,
                "mfa",
                &user.username,
                "recovery-code-used",
                "",
            )
            .await?;
        }
        return Ok(spent.rows_affected() == 1);
    }
    let now = unix_secs();
    let last = user.totp_last_step.map(|s| s as u64);
    let Some(step) = mfa::verify(&secret, code, now, last) else {
        return Ok(false);
    };
    // Conditional on the step we read, so two concurrent logins cannot both
    // spend the same code.
    let updated = sqlx::query("UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)")
        .bind(step as i64)
        .bind(user.id.as_str())
        .bind(step as i64)
        .execute(db)
        .await?;
    Ok(updated.rows_affected() == 1)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts TOTP enrollment: a new pending secret (the active one, if any,
/// stays in force until the new one is confirmed).
pub(crate) async fn begin_totp(
    db: &SqlitePool,
    user: &UserRecord,
) -> Result<mfa::TotpSecret, IdentityError> {
    let secret = mfa::TotpSecret::generate();
    sqlx::query("UPDATE users SET totp_pending = ? WHERE id = ?")
        .bind(secret.as_bytes())
        .bind(user.id.as_str())
        .execute(db)
        .await?;
    Ok(secret)
}

/// Confirms the pending secret with a code from the app: MFA is on (which
/// lifts an MFA-enrollment restriction at once), new recovery codes are
/// issued.
pub(crate) async fn confirm_totp(
    db: &SqlitePool,
    user: &UserRecord,
    code: &str,
    audit: &Audit<'_>,
) -> Result<Vec<String>, IdentityError> {
    let Some(secret) = user
        .totp_pending
        .as_deref()
        .and_then(mfa::TotpSecret::from_bytes)
    else {
        return Err(IdentityError::Invalid(
            "no MFA enrollment in progress: start one first".into(),
        ));
    };
    let Some(step) = mfa::verify(&secret, code, unix_secs(), None) else {
        return Err(IdentityError::WrongCode);
    };
    let codes = mfa::generate_recovery_codes();
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ? WHERE id = ?")
        .bind(step as i64)
        .bind(user.id.as_str())
        .execute(&mut *tx)
        .await?;
    replace_recovery_codes(&mut tx, &user.id, &codes).await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(codes)
}

async fn replace_recovery_codes(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &UserId,
    codes: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    for c in codes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
            .bind(id.as_str())
            .bind(mfa::recovery_code_hash(c))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Verifies a code of the user's current factor (for disabling MFA or
/// regenerating codes).
pub(crate) async fn require_second_factor(
    db: &SqlitePool,
    user: &UserRecord,
    code: &str,
) -> Result<(), IdentityError> {
    if !user.mfa_enabled() {
        return Err(IdentityError::Invalid(
            "MFA is not enabled on this account".into(),
        ));
    }
    if check_second_factor(db, user, code).await? {
        Ok(())
    } else {
        Err(IdentityError::WrongCode)
    }
}

pub(crate) async fn new_recovery_codes(
    db: &SqlitePool,
    user: &UserRecord,
    audit: &Audit<'_>,
) -> Result<Vec<String>, IdentityError> {
    let codes = mfa::generate_recovery_codes();
    let mut tx = crate::store::begin_write(db).await?;
    replace_recovery_codes(&mut tx, &user.id, &codes).await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns MFA off (user with a code, or an administrator resetting it).
pub(crate) async fn disable_mfa(
    db: &SqlitePool,
    id: &UserId,
    audit: &Audit<'_>,
) -> Result<(), IdentityError> {
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

// --- enrollment tokens ---------------------------------------------------

/// A new one-time enrollment token.
#[derive(Clone)]
pub(crate) struct EnrollToken {
    pub(crate) token: String,
    pub(crate) expires_at_ms: i64,
}

/// Creates a one-time enrollment token for endpoints of `group`, creating
/// the group if it does not exist yet.
///
/// # Errors
/// Invalid group name or database failure.
pub(crate) async fn create_enroll_tokens(
    db: &SqlitePool,
    group: &str,
    ttl: Duration,
    count: u32,
    audit: &Audit<'_>,
) -> Result<Vec<EnrollToken>, IdentityError> {
    ids::validate_name("group", group).map_err(IdentityError::InvalidName)?;
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    // The tokens and their one audit entry commit together.
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("INSERT OR IGNORE INTO groups (name, description, created_at) VALUES (?, '', ?)")
        .bind(group)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let token = ids::random_token("jge");
        sqlx::query("INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(ids::token_hash(&token))
            .bind(group)
            .bind(now)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
        out.push(EnrollToken {
            token,
            expires_at_ms,
        });
    }
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests;
