//! The vault: named secrets (endpoint and host credentials, API secrets),
//! versioned and envelope-encrypted. Each version has its own data key,
//! wrapped by the vault KEK (`keys`); the value is AES-256-GCM under that
//! key, bound to the secret's name and version.
//!
//! Deleting is a soft delete: the secret stays, hidden, for the site's
//! retention (7 to 90 days, fixed once set) and can be recovered. Purging
//! removes it for good. Once **purge protection** is enabled (it cannot be
//! disabled), nobody can purge a deleted secret before its retention ends;
//! the gateway purges it itself afterwards ([`expire`]).
//!
//! Every read of a value and every change is recorded in the audit log by
//! the HTTP layer (`http`); values never are.

pub(crate) mod http;

use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sqlx::SqlitePool;
use zeroize::Zeroizing;

use crate::keys::{KeyError, Keyring, Purpose, WrappedKey, now_ms};

/// Largest secret value accepted.
pub(crate) const MAX_VALUE: usize = 64 * 1024;
const DAY_MS: i64 = 86_400_000;
const RETENTION_KEY: &str = "vault.retention_days";
const PROTECTION_KEY: &str = "vault.purge_protection";
/// Retention of a site that never chose one.
pub(crate) const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    #[error(
        "invalid secret name {0}: use 1 to 128 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    InvalidName(String),
    #[error("the secret value is empty")]
    Empty,
    #[error("the secret value is larger than {MAX_VALUE} bytes")]
    TooLarge,
    #[error("no secret named `{0}`")]
    NotFound(String),
    #[error("secret `{name}` has no version {version}")]
    NoVersion { name: String, version: u32 },
    #[error("secret `{0}` is deleted: recover it first (jg vault recover {0})")]
    Deleted(String),
    #[error("secret `{0}` is not deleted: delete it before purging")]
    NotDeleted(String),
    #[error(
        "secret `{name}` cannot be purged before its retention ends ({until}): purge protection is enabled on this site, and nobody can purge earlier"
    )]
    PurgeProtected { name: String, until: String },
    #[error("purge protection cannot be disabled once enabled")]
    ProtectionIrreversible,
    #[error(
        "vault.retention is fixed for this site at {stored} days; the configuration asks for {configured} days"
    )]
    RetentionFixed { stored: u32, configured: u32 },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("a stored secret does not decrypt (altered?)")]
    Corrupt,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretInfo {
    pub(crate) name: String,
    pub(crate) latest_version: u32,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) deleted_at_ms: Option<i64>,
    pub(crate) purge_after_ms: Option<i64>,
}

/// One version of a secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionInfo {
    pub(crate) version: u32,
    pub(crate) created_at_ms: i64,
    pub(crate) created_by: String,
}

/// The vault's site settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) retention_days: u32,
    pub(crate) purge_protection: bool,
}

pub(crate) fn validate_name(name: &str) -> Result<(), VaultError> {
    let ok = (1..=128).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidName(crate::ids::echo(name)))
    }
}

fn value_aad(name: &str, version: u32) -> String {
    format!("jumpgate:vault:{name}:v{version}")
}

async fn setting(db: &SqlitePool, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
        .bind(key)
        .fetch_optional(db)
        .await
}

/// Fixes the site's retention on first start (the configured one, or the
/// default) and refuses a configuration that asks for another later.
pub(crate) async fn fix_retention(
    db: &SqlitePool,
    configured: Option<Duration>,
) -> Result<u32, VaultError> {
    let configured_days = configured.map(|d| u32::try_from(d.as_secs() / 86_400).unwrap_or(90));
    match setting(db, RETENTION_KEY).await? {
        Some(v) => {
            let stored: u32 = v.parse().unwrap_or(DEFAULT_RETENTION_DAYS);
            match configured_days {
                Some(c) if c != stored => Err(VaultError::RetentionFixed {
                    stored,
                    configured: c,
                }),
                _ => Ok(stored),
            }
        }
        None => {
            let days = configured_days.unwrap_or(DEFAULT_RETENTION_DAYS);
            sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)")
                .bind(RETENTION_KEY)
                .bind(days.to_string())
                .execute(db)
                .await?;
            Ok(days)
        }
    }
}

pub(crate) async fn settings(db: &SqlitePool) -> Result<Settings, VaultError> {
    let retention_days = setting(db, RETENTION_KEY)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RETENTION_DAYS);
    let purge_protection = setting(db, PROTECTION_KEY).await?.as_deref() == Some("true");
    Ok(Settings {
        retention_days,
        purge_protection,
    })
}

/// Enables purge protection (idempotent); `false` is refused once enabled.
pub(crate) async fn set_purge_protection(
    db: &SqlitePool,
    enable: bool,
) -> Result<bool, VaultError> {
    let current = settings(db).await?.purge_protection;
    match (current, enable) {
        (true, false) => Err(VaultError::ProtectionIrreversible),
        (false, false) => Ok(false),
        (_, true) => {
            sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES (?, 'true')")
                .bind(PROTECTION_KEY)
                .execute(db)
                .await?;
            Ok(!current)
        }
    }
}

/// Stores `value` as the next version of `name` (creating the secret).
pub(crate) async fn put(
    db: &SqlitePool,
    keys: &Keyring,
    name: &str,
    value: &[u8],
    actor: &str,
) -> Result<u32, VaultError> {
    validate_name(name)?;
    if value.is_empty() {
        return Err(VaultError::Empty);
    }
    if value.len() > MAX_VALUE {
        return Err(VaultError::TooLarge);
    }
    let now = now_ms();
    let mut tx = crate::store::begin_write(db).await?;
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT deleted_at FROM vault_secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    match row {
        Some((Some(_),)) => return Err(VaultError::Deleted(name.to_owned())),
        Some((None,)) => {
            sqlx::query("UPDATE vault_secrets SET updated_at = ? WHERE name = ?")
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO vault_secrets (name, created_at, updated_at) VALUES (?, ?, ?)",
            )
            .bind(name)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    let latest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM vault_versions WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    let version = u32::try_from(latest.unwrap_or(0) + 1).map_err(|_| VaultError::Corrupt)?;
    let (key, wrapped) = keys.new_data_key(Purpose::Vault)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError::Random)?;
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_bytes()).map_err(|_| VaultError::Corrupt)?,
    );
    let mut sealed = value.to_vec();
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(value_aad(name, version).as_bytes()),
        &mut sealed,
    )
    .map_err(|_| VaultError::Corrupt)?;
    sqlx::query(
        "INSERT INTO vault_versions (name, version, created_at, created_by, wrapped_key, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(name)
    .bind(i64::from(version))
    .bind(now)
    .bind(actor)
    .bind(wrapped.as_str())
    .bind(&nonce[..])
    .bind(&sealed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

/// The value of `name` at `version` (default: the latest). Deleted
/// secrets are not readable until recovered.
pub(crate) async fn get(
    db: &SqlitePool,
    keys: &Keyring,
    name: &str,
    version: Option<u32>,
) -> Result<(u32, Zeroizing<Vec<u8>>), VaultError> {
    validate_name(name)?;
    let secret = info(db, name).await?;
    if secret.deleted_at_ms.is_some() {
        return Err(VaultError::Deleted(name.to_owned()));
    }
    let version = version.unwrap_or(secret.latest_version);
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT wrapped_key, nonce, ciphertext FROM vault_versions WHERE name = ? AND version = ?",
    )
    .bind(name)
    .bind(i64::from(version))
    .fetch_optional(db)
    .await?;
    let (wrapped, nonce, ciphertext) = row.ok_or_else(|| VaultError::NoVersion {
        name: name.to_owned(),
        version,
    })?;
    let key = keys.unwrap(Purpose::Vault, &WrappedKey::from(wrapped))?;
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_bytes()).map_err(|_| VaultError::Corrupt)?,
    );
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| VaultError::Corrupt)?;
    let mut buf = Zeroizing::new(ciphertext);
    let n = aead
        .open_in_place(
            nonce,
            Aad::from(value_aad(name, version).as_bytes()),
            &mut buf,
        )
        .map_err(|_| VaultError::Corrupt)?
        .len();
    buf.truncate(n);
    Ok((version, buf))
}

/// A `vault_secrets` row as [`SECRET_COLUMNS`] selects it.
type SecretRow = (String, i64, i64, i64, Option<i64>, Option<i64>);

fn secret_from_row(r: SecretRow) -> SecretInfo {
    SecretInfo {
        name: r.0,
        latest_version: u32::try_from(r.1).unwrap_or(0),
        created_at_ms: r.2,
        updated_at_ms: r.3,
        deleted_at_ms: r.4,
        purge_after_ms: r.5,
    }
}

const SECRET_COLUMNS: &str = "s.name, (SELECT COALESCE(MAX(version), 0) FROM vault_versions v WHERE v.name = s.name), s.created_at, s.updated_at, s.deleted_at, s.purge_after";

pub(crate) async fn info(db: &SqlitePool, name: &str) -> Result<SecretInfo, VaultError> {
    let row: Option<SecretRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SECRET_COLUMNS} FROM vault_secrets s WHERE s.name = ?"
    )))
    .bind(name)
    .fetch_optional(db)
    .await?;
    row.map(secret_from_row)
        .ok_or_else(|| VaultError::NotFound(name.to_owned()))
}

/// Live secrets, or (with `deleted`) the soft-deleted ones, by name.
pub(crate) async fn list(db: &SqlitePool, deleted: bool) -> Result<Vec<SecretInfo>, VaultError> {
    let cond = if deleted {
        "s.deleted_at IS NOT NULL"
    } else {
        "s.deleted_at IS NULL"
    };
    let rows: Vec<SecretRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SECRET_COLUMNS} FROM vault_secrets s WHERE {cond} ORDER BY s.name"
    )))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(secret_from_row).collect())
}

pub(crate) async fn versions(db: &SqlitePool, name: &str) -> Result<Vec<VersionInfo>, VaultError> {
    validate_name(name)?;
    info(db, name).await?;
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT version, created_at, created_by FROM vault_versions WHERE name = ? ORDER BY version",
    )
    .bind(name)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(v, at, by)| VersionInfo {
            version: u32::try_from(v).unwrap_or(0),
            created_at_ms: at,
            created_by: by,
        })
        .collect())
}

/// Soft-deletes `name`: recoverable until `now + retention`.
pub(crate) async fn delete(
    db: &SqlitePool,
    name: &str,
    now: i64,
) -> Result<SecretInfo, VaultError> {
    validate_name(name)?;
    let s = info(db, name).await?;
    if s.deleted_at_ms.is_some() {
        return Err(VaultError::Deleted(name.to_owned()));
    }
    let days = settings(db).await?.retention_days;
    sqlx::query(
        "UPDATE vault_secrets SET deleted_at = ?, purge_after = ? WHERE name = ? AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(now + i64::from(days) * DAY_MS)
    .bind(name)
    .execute(db)
    .await?;
    info(db, name).await
}

/// Brings a soft-deleted secret back, every version intact.
pub(crate) async fn recover(db: &SqlitePool, name: &str) -> Result<SecretInfo, VaultError> {
    validate_name(name)?;
    let s = info(db, name).await?;
    if s.deleted_at_ms.is_none() {
        return Err(VaultError::NotDeleted(name.to_owned()));
    }
    sqlx::query("UPDATE vault_secrets SET deleted_at = NULL, purge_after = NULL WHERE name = ?")
        .bind(name)
        .execute(db)
        .await?;
    info(db, name).await
}

/// Removes a soft-deleted secret and all its versions for good. Refused
/// before the end of its retention when purge protection is on.
pub(crate) async fn purge(db: &SqlitePool, name: &str, now: i64) -> Result<(), VaultError> {
    validate_name(name)?;
    let s = info(db, name).await?;
    let Some(purge_after) = s.purge_after_ms.filter(|_| s.deleted_at_ms.is_some()) else {
        return Err(VaultError::NotDeleted(name.to_owned()));
    };
    if settings(db).await?.purge_protection && now < purge_after {
        return Err(VaultError::PurgeProtected {
            name: name.to_owned(),
            until: crate::ids::rfc3339(purge_after),
        });
    }
    sqlx::query("DELETE FROM vault_secrets WHERE name = ? AND deleted_at IS NOT NULL")
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}

/// Purges deleted secrets whose retention ended (the key task runs it).
pub(crate) async fn expire(db: &SqlitePool) {
    let now = now_ms();
    let names: Result<Vec<String>, _> = sqlx::query_scalar(
        "SELECT name FROM vault_secrets WHERE deleted_at IS NOT NULL AND purge_after <= ?",
    )
    .bind(now)
    .fetch_all(db)
    .await;
    for name in names.unwrap_or_default() {
        if purge(db, &name, now).await.is_ok() {
            crate::events::record_or_log(
                db,
                "(vault retention)",
                "vault-purge",
                &name,
                "ok",
                "retention ended",
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests;
