//! Passwords and logins: hashing, the login check with lockout and rate
//! limiting, password changes, and how failed logins are recorded.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::lockout::{AccountLock, RateLimiter};
use super::settings::SecuritySettings;
use super::{
    IdentityError, UserRecord, check_second_factor, find_user, password, restriction_for, settings,
};
use crate::ids::{self, UserId};
use crate::keys::Keyring;
use crate::rbac::Restriction;
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

pub(super) async fn hash_password(password: String) -> Result<String, IdentityError> {
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

/// Sets a new password under the site policy (history included), and ends
/// every session of the user; `audit` commits with it.
pub(crate) async fn set_password(
    db: &Store,
    user: &UserRecord,
    new: &str,
    audit: AuditEvent,
) -> Result<(), IdentityError> {
    let policy = settings::load(db).await?.password;
    let violations = password::check(&policy, &user.username, new);
    if !violations.is_empty() {
        return Err(IdentityError::WeakPassword(password::describe(&violations)));
    }
    let previous: Vec<String> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE user_id = $1
              ORDER BY changed_at DESC LIMIT 24"
        )
        .bind(user.id.as_str())
        .fetch_all(&mut *c)
        .await)?
    };
    if password::reused(&policy, new, previous).await {
        let v = [password::Violation::Reused {
            history: policy.history,
        }];
        return Err(IdentityError::WeakPassword(password::describe(&v)));
    }
    let hash = hash_password(new.to_owned()).await?;
    let now = ids::now_ms();
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, failed_logins = 0,
                locked_until = NULL WHERE id = $3"
    )
    .bind(&hash)
    .bind(now)
    .bind(user.id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES ($1, $2, $3)",
    )
    .bind(user.id.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "DELETE FROM auth_tokens WHERE user_id = $1"
    )
    .bind(user.id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(())
}

async fn store_lock(e: &mut dyn Exec, id: &UserId, lock: AccountLock) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3"
    )
    .bind(i64::from(lock.failed))
    .bind(lock.locked_until_ms)
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
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

fn login_failed(who: &str, why: &str) -> AuditEvent {
    AuditEvent::new(who, AuditAction::Login, who)
        .outcome("failed")
        .detail(why)
}

/// Checks a login attempt and issues a session token (`keys` open the
/// account's TOTP secret).
///
/// Every failure but a missing second factor counts towards the account's
/// lockout; unknown, wrong and locked all answer the same after the same work.
/// Failures are audited on their own (they happened even though nothing
/// else did); a success is audited in the transaction that makes the
/// session, so no session exists without its entry.
pub(crate) async fn login(
    db: &Store,
    keys: &Keyring,
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
        db.audit_now(login_failed(&who, "unknown user")).await?;
        return Err(IdentityError::InvalidCredentials);
    };
    if locked || !password_ok {
        if locked {
            db.audit_now(login_failed(&user.username, "account locked"))
                .await?;
        } else {
            fail(db, &settings, &user, "wrong password").await?;
        }
        return Err(IdentityError::InvalidCredentials);
    }
    if user.mfa_enabled() {
        let Some(code) = a.second_factor.filter(|c| !c.trim().is_empty()) else {
            return Err(IdentityError::MfaRequired);
        };
        if !check_second_factor(db, keys, &user, code).await? {
            fail(db, &settings, &user, "wrong second factor").await?;
            return Err(IdentityError::MfaRequired);
        }
    }
    let restriction = restriction_for(
        &settings,
        &user.role,
        user.password_changed_at,
        user.mfa_enabled(),
        now,
    );
    issue(db, user, restriction, ttl, None).await
}

/// Stores a new session token for `user` (and clears a lockout count),
/// with its `login` audit entry (`detail`: how, when not the password
/// form), in one commit.
async fn issue(
    db: &Store,
    user: UserRecord,
    restriction: Restriction,
    ttl: Duration,
    detail: Option<&str>,
) -> Result<LoginSession, IdentityError> {
    let now = ids::now_ms();
    let token = ids::random_token("jgs");
    let expires_at_ms = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut w = db.write().await?;
    if user.lock != AccountLock::default() {
        store_lock(&mut w, &user.id, user.lock.after_success()).await?;
    }
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(ids::token_hash(&token))
    .bind(user.id.as_str())
    .bind(now)
    .bind(expires_at_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    // Expired tokens are dead weight; sweep them opportunistically.
    sql!(w, |c| sqlx::query(
        "DELETE FROM auth_tokens WHERE expires_at <= $1"
    )
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let mut entry = AuditEvent::new(&user.username, AuditAction::Login, &user.username);
    if let Some(d) = detail {
        entry = entry.detail(d);
    }
    w.audit(entry).await?;
    w.commit().await?;
    Ok(LoginSession {
        token,
        user,
        expires_at_ms,
        restriction,
    })
}

/// A login with an SSH public key (the SSH front door): the client proved
/// the key by its signature and the key is registered to `user`. A locked
/// account is refused (audited like a password login's); otherwise a
/// session token is issued as for a password login, its `login` entry
/// saying how (`detail`).
///
/// # Errors
/// [`IdentityError::InvalidCredentials`] for a locked account.
pub(crate) async fn login_with_key(
    db: &Store,
    user: UserRecord,
    ttl: Duration,
    detail: &str,
) -> Result<LoginSession, IdentityError> {
    let now = ids::now_ms();
    if user.lock.is_locked(now) {
        db.audit_now(login_failed(&user.username, "account locked"))
            .await?;
        return Err(IdentityError::InvalidCredentials);
    }
    let settings = settings::load(db).await?;
    let restriction = restriction_for(
        &settings,
        &user.role,
        user.password_changed_at,
        user.mfa_enabled(),
        now,
    );
    issue(db, user, restriction, ttl, Some(detail)).await
}

/// The settings key of the site's fingerprint key (32 random bytes, hex),
/// made on first use; it lives in the database (see `docs/security.md`).
const FINGERPRINT_KEY: &str = "audit.fingerprint-key";

/// How an unknown login name is recorded: `unknown user (fingerprint
/// 3f2a…)`, an HMAC-SHA256 of the typed text keyed by a per-site secret
/// (so it cannot be reversed by guessing, even for short texts, without
/// the database), cut to 12 hex digits. The same text always gives the
/// same fingerprint on a site.
pub(crate) async fn unknown_user_label(db: &Store, typed: &str) -> Result<String, sqlx::Error> {
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

async fn fingerprint_key(db: &Store) -> Result<Vec<u8>, sqlx::Error> {
    let stored = |v: Option<String>| {
        v.and_then(|s| serde_json::from_str::<String>(&s).ok())
            .and_then(|h| decode_hex(&h))
            .filter(|k| k.len() == 32)
    };
    let mut c = db.conn().await?;
    let get = "SELECT value FROM settings WHERE key = $1";
    let found: Option<String> = sql!(c, |c| sqlx::query_scalar(get)
        .bind(FINGERPRINT_KEY)
        .fetch_optional(&mut *c)
        .await)?;
    if let Some(k) = stored(found) {
        return Ok(k);
    }
    let fresh: String = ids::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // A concurrent first use may win: then its key is the one.
    sql!(c, |c| sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
    )
    .bind(FINGERPRINT_KEY)
    .bind(serde_json::to_string(&fresh).unwrap_or_default())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let found: Option<String> = sql!(c, |c| sqlx::query_scalar(get)
        .bind(FINGERPRINT_KEY)
        .fetch_optional(&mut *c)
        .await)?;
    stored(found).ok_or_else(|| sqlx::Error::Protocol("fingerprint key unreadable".into()))
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
    db: &Store,
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
    fail(db, &settings, user, "wrong current password").await?;
    Err(IdentityError::InvalidCredentials)
}

/// Counts a failed attempt towards the account's lockout, with its audit
/// entries (and a `lockout` one when it locks the account), in one
/// transaction. The count is read in that transaction, so concurrent
/// failures each count.
async fn fail(
    db: &Store,
    s: &SecuritySettings,
    user: &UserRecord,
    why: &str,
) -> Result<(), IdentityError> {
    let mut w = db.write().await?;
    let now = ids::now_ms();
    let current: Option<(i64, Option<i64>)> = sql!(w, |c| sqlx::query_as(
        "SELECT failed_logins, locked_until FROM users WHERE id = $1"
    )
    .bind(user.id.as_str())
    .fetch_optional(&mut *c)
    .await)?;
    let before = current.map_or(user.lock, |(failed, until)| AccountLock {
        failed: u32::try_from(failed).unwrap_or(u32::MAX),
        locked_until_ms: until,
    });
    let lock = before.after_failure(&s.lockout, now);
    store_lock(&mut w, &user.id, lock).await?;
    w.audit(login_failed(&user.username, why)).await?;
    // Only the failure that locks the account records the lockout (a
    // concurrent one may have locked it already).
    if lock.is_locked(now) && !before.is_locked(now) {
        tracing::warn!(user = %user.username, "account locked after repeated failed logins");
        w.audit(
            AuditEvent::new(&user.username, AuditAction::Lockout, &user.username)
                .outcome("locked")
                .detail(format!("locked for {} s", s.lockout.duration_secs)),
        )
        .await?;
    }
    w.commit().await?;
    Ok(())
}
