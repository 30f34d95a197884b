//! Passwords and logins: hashing, the login check with lockout and rate
//! limiting, password changes, and how failed logins are recorded.

use sqlx::SqlitePool;

use super::*;

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
pub(super) async fn verify_password(password: String, phc: String) -> bool {
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
pub(super) fn dummy_hash() -> &'static str {
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

pub(super) async fn store_lock(
    db: &SqlitePool,
    id: &UserId,
    lock: AccountLock,
) -> Result<(), sqlx::Error> {
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
pub(super) const FINGERPRINT_KEY: &str = "audit.fingerprint-key";

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

pub(super) async fn fingerprint_key(db: &SqlitePool) -> Result<Vec<u8>, sqlx::Error> {
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

pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
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

pub(super) async fn fail(
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
