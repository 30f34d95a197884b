//! The second factor as stored: TOTP enrollment and checks (with replay
//! protection) and one-time recovery codes. The algorithms are in `mfa`.

use sqlx::SqlitePool;

use super::*;

/// Checks a TOTP code (with replay protection) or spends a recovery code.
pub(super) async fn check_second_factor(
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

pub(super) fn unix_secs() -> u64 {
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

pub(super) async fn replace_recovery_codes(
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
