//! The second factor as stored: TOTP enrollment and checks (with replay
//! protection), one-time recovery codes, and the sealing of TOTP secrets.
//! The algorithms are in `mfa`.
//!
//! # TOTP secrets at rest
//!
//! A TOTP secret is what an attacker needs to pass the second factor, so
//! it is never stored in the clear, on either engine (a PostgreSQL
//! operator reads the database, SQLCipher does not help there): each
//! secret (active or pending) is AES-256-GCM under its own data key, bound
//! to its user's id, and the data key is wrapped by the vault KEK of the
//! keyring (`keys`). The column holds
//!
//! ```text
//! "jgtotp1\0" ‖ len(wrapped key) (u16 BE) ‖ wrapped key ‖ nonce (12) ‖ ciphertext ‖ tag
//! ```
//!
//! where the wrapped key is the keyring's text form, naming its KEK
//! version, so a key rotation re-wraps it ([`reseal_totp_secrets`]) without
//! touching the secret. Recovery codes are stored as SHA-256 only.
//!
//! Sites from before sealing hold plain 20-byte secrets: they are still
//! read, and sealed at the gateway's next start ([`reseal_totp_secrets`]).

use std::collections::BTreeMap;

use aws_lc_rs::aead::NONCE_LEN;

use super::{IdentityError, UserRecord, mfa};
use crate::ids::{self, UserId};
use crate::keys::{KeyError, Keyring, Purpose, WrappedKey};
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

/// The key purpose whose KEK wraps TOTP secrets' data keys: the vault's
/// (secrets the gateway keeps for its users).
pub(crate) const TOTP_KEY_PURPOSE: Purpose = Purpose::Vault;

const SEALED_MAGIC: &[u8; 8] = b"jgtotp1\0";

/// A stored secret column (`totp_secret` or `totp_pending`).
type Blob = Option<Vec<u8>>;

fn totp_aad(user: &UserId) -> String {
    format!("jumpgate:totp:{}", user.as_str())
}

/// Seals `secret` of `user` under a fresh data key (see the module doc).
fn seal(keys: &Keyring, user: &UserId, secret: &mfa::TotpSecret) -> Result<Vec<u8>, KeyError> {
    let (key, wrapped) = keys.new_data_key(TOTP_KEY_PURPOSE)?;
    seal_with(&key, &wrapped, user, secret)
}

fn seal_with(
    key: &crate::keys::DataKey,
    wrapped: &WrappedKey,
    user: &UserId,
    secret: &mfa::TotpSecret,
) -> Result<Vec<u8>, KeyError> {
    let (nonce, sealed) = key.seal(totp_aad(user).as_bytes(), secret.as_bytes())?;
    let w = wrapped.as_str().as_bytes();
    let len = u16::try_from(w.len()).map_err(|_| KeyError::Malformed)?;
    let mut out = Vec::with_capacity(SEALED_MAGIC.len() + 2 + w.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(SEALED_MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(w);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// A stored TOTP secret, as it is in its column.
enum Stored<'a> {
    /// From before sealing: the 20 bytes themselves.
    Plain(mfa::TotpSecret),
    Sealed {
        wrapped: WrappedKey,
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
}

fn parse(blob: &[u8]) -> Result<Stored<'_>, KeyError> {
    let Some(rest) = blob.strip_prefix(SEALED_MAGIC) else {
        return mfa::TotpSecret::from_bytes(blob)
            .map(Stored::Plain)
            .ok_or(KeyError::Malformed);
    };
    let (len, rest) = rest.split_at_checked(2).ok_or(KeyError::Malformed)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (wrapped, rest) = rest.split_at_checked(len).ok_or(KeyError::Malformed)?;
    let wrapped = std::str::from_utf8(wrapped).map_err(|_| KeyError::Malformed)?;
    let (nonce, ciphertext) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(KeyError::Malformed)?;
    Ok(Stored::Sealed {
        wrapped: WrappedKey::from(wrapped.to_owned()),
        nonce,
        ciphertext,
    })
}

/// The TOTP secret of `user` stored as `blob` (sealed, or plain from
/// before sealing).
fn open(keys: &Keyring, user: &UserId, blob: &[u8]) -> Result<mfa::TotpSecret, KeyError> {
    match parse(blob)? {
        Stored::Plain(s) => Ok(s),
        Stored::Sealed {
            wrapped,
            nonce,
            ciphertext,
        } => {
            let key = keys.unwrap(TOTP_KEY_PURPOSE, &wrapped)?;
            let plain = key
                .open(totp_aad(user).as_bytes(), nonce, ciphertext)
                .map_err(|_| KeyError::Unwrap(TOTP_KEY_PURPOSE.as_str()))?;
            mfa::TotpSecret::from_bytes(&plain).ok_or(KeyError::Malformed)
        }
    }
}

/// `blob` sealed under the current KEK: `None` if it already is; a plain
/// secret is sealed, a sealed one re-wrapped (its data key, not the secret).
fn resealed(keys: &Keyring, user: &UserId, blob: &[u8]) -> Result<Option<Vec<u8>>, KeyError> {
    let current = keys.current_version(TOTP_KEY_PURPOSE);
    match parse(blob)? {
        Stored::Plain(s) => seal(keys, user, &s).map(Some),
        Stored::Sealed { wrapped, .. } if wrapped.version() == Some(current) => Ok(None),
        Stored::Sealed { wrapped, .. } => {
            // Opened first: a blob that does not open is left as it is
            // (and keeps its KEK version live) rather than re-wrapped.
            let secret = open(keys, user, blob)?;
            let key = keys.unwrap(TOTP_KEY_PURPOSE, &wrapped)?;
            let fresh = keys.wrap(TOTP_KEY_PURPOSE, &key)?;
            seal_with(&key, &fresh, user, &secret).map(Some)
        }
    }
}

/// Seals the TOTP secrets stored in the clear (sites from before sealing)
/// and re-wraps those whose data key is wrapped by an older KEK version
/// than the current one (after a rotation of [`TOTP_KEY_PURPOSE`]).
/// Answers how many were rewritten. Secrets that do not open are left as
/// they are and logged (they keep their KEK version live: see
/// [`totp_key_versions`]).
///
/// The gateway runs it at start; the key sweep runs it before it retires
/// an old version of [`TOTP_KEY_PURPOSE`].
///
/// # Errors
/// The database failed.
pub(crate) async fn reseal_totp_secrets(db: &Store, keys: &Keyring) -> Result<u64, sqlx::Error> {
    let mut w = db.write().await?;
    let rows: Vec<(String, Blob, Blob)> = sql!(w, |c| sqlx::query_as(
        "SELECT id, totp_secret, totp_pending FROM users
          WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut n = 0;
    for (id, secret, pending) in rows {
        let user = UserId(id);
        for (column, blob) in [("totp_secret", secret), ("totp_pending", pending)] {
            let Some(blob) = blob else { continue };
            let fresh = match resealed(keys, &user, &blob) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(user = %user.as_str(), column, error = %e, "a stored TOTP secret does not open; left as it is");
                    continue;
                }
            };
            let q = if column == "totp_secret" {
                "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3"
            } else {
                "UPDATE users SET totp_pending = $1 WHERE id = $2 AND totp_pending = $3"
            };
            n += sql!(w, |c| sqlx::query(q)
                .bind(&fresh)
                .bind(user.as_str())
                .bind(&blob)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected()))?;
        }
    }
    w.commit().await?;
    Ok(n)
}

/// How many stored TOTP secrets each KEK version of [`TOTP_KEY_PURPOSE`]
/// wraps (key 0: secrets still stored in the clear). A version with a
/// count here must not be retired.
///
/// # Errors
/// The database failed.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "for the key sweep's status and retirement check")
)]
pub(crate) async fn totp_key_versions(db: &Store) -> Result<BTreeMap<u32, u64>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rows: Vec<(Blob, Blob)> = sql!(c, |c| sqlx::query_as(
        "SELECT totp_secret, totp_pending FROM users
          WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL"
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut out = BTreeMap::new();
    for blob in rows.into_iter().flat_map(|(a, b)| [a, b]).flatten() {
        let version = match parse(&blob) {
            Ok(Stored::Plain(_)) => Some(0),
            Ok(Stored::Sealed { wrapped, .. }) => wrapped.version(),
            Err(_) => None,
        };
        if let Some(v) = version {
            *out.entry(v).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// Checks a TOTP code (with replay protection) or spends a recovery code
/// (audited with the spending, in one transaction).
pub(super) async fn check_second_factor(
    db: &Store,
    keys: &Keyring,
    user: &UserRecord,
    code: &str,
) -> Result<bool, IdentityError> {
    let Some(blob) = user.totp_secret.as_deref() else {
        return Ok(false);
    };
    if mfa::looks_like_recovery_code(code) {
        let mut w = db.write().await?;
        let spent = sql!(w, |c| sqlx::query(
            "UPDATE recovery_codes SET used_at = $1
              WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL"
        )
        .bind(ids::now_ms())
        .bind(user.id.as_str())
        .bind(mfa::recovery_code_hash(code))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        if spent != 1 {
            return Ok(false);
        }
        w.audit(
            AuditEvent::new(&user.username, AuditAction::Mfa, &user.username)
                .outcome("recovery-code-used"),
        )
        .await?;
        w.commit().await?;
        return Ok(true);
    }
    let secret = open(keys, &user.id, blob)?;
    let now = unix_secs();
    let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
    let Some(step) = mfa::verify(&secret, code, now, last) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    // Conditional on the step we read, so two concurrent logins cannot both
    // spend the same code.
    let mut c = db.conn().await?;
    let updated = sql!(c, |c| sqlx::query(
        "UPDATE users SET totp_last_step = $1
          WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)"
    )
    .bind(step)
    .bind(user.id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(updated == 1)
}

pub(super) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts TOTP enrollment: a new pending secret, stored sealed (the active
/// one, if any, stays in force until the new one is confirmed).
pub(crate) async fn begin_totp(
    db: &Store,
    keys: &Keyring,
    user: &UserRecord,
) -> Result<mfa::TotpSecret, IdentityError> {
    let secret = mfa::TotpSecret::generate();
    let sealed = seal(keys, &user.id, &secret)?;
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE users SET totp_pending = $1 WHERE id = $2"
    )
    .bind(&sealed)
    .bind(user.id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(secret)
}

/// Confirms the pending secret with a code from the app: MFA is on (which
/// lifts an MFA-enrollment restriction at once), new recovery codes are
/// issued; `audit` commits with it.
pub(crate) async fn confirm_totp(
    db: &Store,
    keys: &Keyring,
    user: &UserRecord,
    code: &str,
    audit: AuditEvent,
) -> Result<Vec<String>, IdentityError> {
    let no_enrollment =
        || IdentityError::Invalid("no MFA enrollment in progress: start one first".into());
    let pending = user.totp_pending.as_deref().ok_or_else(no_enrollment)?;
    let secret = open(keys, &user.id, pending)?;
    let Some(step) = mfa::verify(&secret, code, unix_secs(), None) else {
        return Err(IdentityError::WrongCode);
    };
    let codes = mfa::generate_recovery_codes();
    let mut w = db.write().await?;
    // Only the pending secret the code was checked against becomes active
    // (a second enrollment started meanwhile replaced it: start again).
    let switched = sql!(w, |c| sqlx::query(
        "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1
          WHERE id = $2 AND totp_pending = $3"
    )
    .bind(i64::try_from(step).unwrap_or(i64::MAX))
    .bind(user.id.as_str())
    .bind(pending)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if switched != 1 {
        return Err(IdentityError::Conflict(
            "the MFA enrollment changed meanwhile (started again elsewhere?): start it again"
                .into(),
        ));
    }
    replace_recovery_codes(&mut w, &user.id, &codes).await?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(codes)
}

async fn replace_recovery_codes(
    w: &mut dyn Exec,
    id: &UserId,
    codes: &[String],
) -> Result<(), sqlx::Error> {
    sql!(w, |c| sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1"
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    for code in codes {
        sql!(w, |c| sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)"
        )
        .bind(id.as_str())
        .bind(mfa::recovery_code_hash(code))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Verifies a code of the user's current factor (for disabling MFA or
/// regenerating codes).
pub(crate) async fn require_second_factor(
    db: &Store,
    keys: &Keyring,
    user: &UserRecord,
    code: &str,
) -> Result<(), IdentityError> {
    if !user.mfa_enabled() {
        return Err(IdentityError::Invalid(
            "MFA is not enabled on this account".into(),
        ));
    }
    if check_second_factor(db, keys, user, code).await? {
        Ok(())
    } else {
        Err(IdentityError::WrongCode)
    }
}

/// New recovery codes (the old ones stop working); `audit` commits with it.
pub(crate) async fn new_recovery_codes(
    db: &Store,
    user: &UserRecord,
    audit: AuditEvent,
) -> Result<Vec<String>, IdentityError> {
    let codes = mfa::generate_recovery_codes();
    let mut w = db.write().await?;
    replace_recovery_codes(&mut w, &user.id, &codes).await?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(codes)
}

/// Turns MFA off (user with a code, or an administrator resetting it);
/// `audit` commits with it.
pub(crate) async fn disable_mfa(
    db: &Store,
    id: &UserId,
    audit: AuditEvent,
) -> Result<(), IdentityError> {
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL
          WHERE id = $1"
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1"
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(())
}

/// Stored TOTP secrets as wrapped keys (`keys::stored`), so that the key
/// sweep re-wraps them and never retires a vault KEK version one of them
/// still needs. A key's id is `USERID/secret` or `USERID/pending` (user
/// ids hold no `/`); keys are listed by user id, then column. A secret
/// still stored in the clear (before sealing) counts as under no version
/// (it keeps old versions live until the start seals it).
pub(crate) struct TotpKeys;

const COLUMNS: [&str; 2] = ["secret", "pending"];

fn totp_key_id(id: &str) -> (&str, usize) {
    match id.rsplit_once('/') {
        Some((user, "secret")) => (user, 0),
        Some((user, _)) => (user, 1),
        None => (id, 0),
    }
}

#[async_trait::async_trait]
impl crate::keys::stored::WrappedKeys for TotpKeys {
    fn name(&self) -> &'static str {
        "identity (TOTP)"
    }

    fn purpose(&self) -> Purpose {
        TOTP_KEY_PURPOSE
    }

    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
        let rows: Vec<(Blob, Blob)> = sql!(e, |c| sqlx::query_as(
            "SELECT totp_secret, totp_pending FROM users
              WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL"
        )
        .fetch_all(&mut *c)
        .await)?;
        let mut out = BTreeMap::new();
        for blob in rows.into_iter().flat_map(|(a, b)| [a, b]).flatten() {
            let v = match parse(&blob) {
                Ok(Stored::Sealed { wrapped, .. }) => {
                    wrapped.version().filter(|v| versions.contains(v))
                }
                _ => None,
            };
            *out.entry(v).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn stale_after(
        &self,
        e: &mut dyn Exec,
        current: u32,
        after: &str,
        limit: u32,
    ) -> Result<Vec<crate::keys::stored::StoredKey>, sqlx::Error> {
        let (user, column) = if after.is_empty() {
            ("", 2)
        } else {
            totp_key_id(after)
        };
        let mut out = Vec::new();
        let mut from = user.to_owned();
        loop {
            let rows: Vec<(String, Blob, Blob)> = sql!(e, |c| sqlx::query_as(
                "SELECT id, totp_secret, totp_pending FROM users
                  WHERE id >= $1 AND (totp_secret IS NOT NULL OR totp_pending IS NOT NULL)
                  ORDER BY id LIMIT $2"
            )
            .bind(&from)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&mut *c)
            .await)?;
            let Some(last) = rows.last().map(|r| r.0.clone()) else {
                return Ok(out);
            };
            for (id, secret, pending) in rows {
                for (i, blob) in [secret, pending].into_iter().enumerate() {
                    // Skip what the cursor has passed.
                    if id == user && (column == 2 || i <= column) {
                        continue;
                    }
                    let Some(blob) = blob else { continue };
                    let Ok(Stored::Sealed { wrapped, .. }) = parse(&blob) else {
                        continue;
                    };
                    if wrapped.version() == Some(current) {
                        continue;
                    }
                    out.push(crate::keys::stored::StoredKey::new(
                        format!("{id}/{}", COLUMNS[i]),
                        wrapped.as_str().to_owned(),
                    ));
                    if out.len() >= limit as usize {
                        return Ok(out);
                    }
                }
            }
            if last == from {
                return Ok(out);
            }
            from = last;
        }
    }

    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error> {
        let (user, column) = totp_key_id(id);
        let (select, update) = if column == 0 {
            (
                "SELECT totp_secret FROM users WHERE id = $1",
                "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3",
            )
        } else {
            (
                "SELECT totp_pending FROM users WHERE id = $1",
                "UPDATE users SET totp_pending = $1 WHERE id = $2 AND totp_pending = $3",
            )
        };
        let blob: Option<Blob> = sql!(e, |c| sqlx::query_scalar(select)
            .bind(user)
            .fetch_optional(&mut *c)
            .await)?;
        let Some(Some(blob)) = blob else {
            return Ok(false);
        };
        let Ok(Stored::Sealed {
            wrapped,
            nonce,
            ciphertext,
        }) = parse(&blob)
        else {
            return Ok(false);
        };
        if wrapped != *old {
            return Ok(false);
        }
        // Same data key, nonce and ciphertext: only its wrap changes.
        let w = new.as_str().as_bytes();
        let Ok(len) = u16::try_from(w.len()) else {
            return Ok(false);
        };
        let mut fresh =
            Vec::with_capacity(SEALED_MAGIC.len() + 2 + w.len() + nonce.len() + ciphertext.len());
        fresh.extend_from_slice(SEALED_MAGIC);
        fresh.extend_from_slice(&len.to_be_bytes());
        fresh.extend_from_slice(w);
        fresh.extend_from_slice(nonce);
        fresh.extend_from_slice(ciphertext);
        let n = sql!(e, |c| sqlx::query(update)
            .bind(&fresh)
            .bind(user)
            .bind(&blob)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
