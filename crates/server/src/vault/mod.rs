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
//! Every read of a value and every change is recorded in the audit log, in
//! the change's own transaction (a read: before the value is answered);
//! failures are recorded by the HTTP layer (`http`). Values never are.

pub(crate) mod http;
pub(crate) mod schema;

use std::collections::BTreeMap;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::keys::stored::{self, StoredKey, WrappedKeys};
use crate::keys::{KeyError, Keyring, Purpose, WrappedKey, now_ms};
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

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

async fn setting(e: &mut dyn Exec, key: &str) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(&mut *c)
    .await)
}

/// Fixes the site's retention on first start (the configured one, or the
/// default) and refuses a configuration that asks for another later.
pub(crate) async fn fix_retention(
    db: &Store,
    configured: Option<Duration>,
) -> Result<u32, VaultError> {
    let configured_days = configured.map(|d| u32::try_from(d.as_secs() / 86_400).unwrap_or(90));
    let mut w = db.write().await?;
    match setting(&mut w, RETENTION_KEY).await? {
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
            sql!(w, |c| sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
            )
            .bind(RETENTION_KEY)
            .bind(days.to_string())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            w.commit().await?;
            Ok(days)
        }
    }
}

async fn settings_in(e: &mut dyn Exec) -> Result<Settings, VaultError> {
    let retention_days = setting(e, RETENTION_KEY)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RETENTION_DAYS);
    let purge_protection = setting(e, PROTECTION_KEY).await?.as_deref() == Some("true");
    Ok(Settings {
        retention_days,
        purge_protection,
    })
}

pub(crate) async fn settings(db: &Store) -> Result<Settings, VaultError> {
    settings_in(&mut db.conn().await?).await
}

/// Enables purge protection (idempotent; audited when it changes);
/// `false` is refused once enabled. Answers whether it changed.
pub(crate) async fn set_purge_protection(
    db: &Store,
    enable: bool,
    actor: &str,
) -> Result<bool, VaultError> {
    let mut w = db.write().await?;
    let current = settings_in(&mut w).await?.purge_protection;
    match (current, enable) {
        (true, false) => Err(VaultError::ProtectionIrreversible),
        (false, false) | (true, true) => Ok(false),
        (false, true) => {
            sql!(w, |c| sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, 'true')
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
            .bind(PROTECTION_KEY)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            w.audit(
                AuditEvent::new(actor, AuditAction::VaultPurgeProtection, "site").detail("enabled"),
            )
            .await?;
            w.commit().await?;
            Ok(true)
        }
    }
}

/// Stores `value` as the next version of `name` (creating the secret),
/// audited as done by `actor`.
pub(crate) async fn put(
    db: &Store,
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
    let mut w = db.write().await?;
    let row: Option<(Option<i64>,)> = sql!(w, |c| sqlx::query_as(
        "SELECT deleted_at FROM vault_secrets WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)?;
    match row {
        Some((Some(_),)) => return Err(VaultError::Deleted(name.to_owned())),
        Some((None,)) => {
            sql!(w, |c| sqlx::query(
                "UPDATE vault_secrets SET updated_at = $1 WHERE name = $2"
            )
            .bind(now)
            .bind(name)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        None => {
            sql!(w, |c| sqlx::query(
                "INSERT INTO vault_secrets (name, created_at, updated_at) VALUES ($1, $2, $3)"
            )
            .bind(name)
            .bind(now)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        }
    }
    let latest: Option<i64> = sql!(w, |c| sqlx::query_scalar(
        "SELECT MAX(version) FROM vault_versions WHERE name = $1"
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await)?;
    let version = u32::try_from(latest.unwrap_or(0) + 1).map_err(|_| VaultError::Corrupt)?;
    let (key, wrapped) = keys.new_data_key(Purpose::Vault)?;
    let (nonce, sealed) = key.seal(value_aad(name, version).as_bytes(), value)?;
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO vault_versions (name, version, created_at, created_by, wrapped_key, nonce, ciphertext)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(name)
    .bind(i64::from(version))
    .bind(now)
    .bind(actor)
    .bind(wrapped.as_str())
    .bind(&nonce[..])
    .bind(&sealed)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    w.audit(
        AuditEvent::new(actor, AuditAction::VaultPut, name).detail(format!("version={version}")),
    )
    .await?;
    w.commit().await?;
    Ok(version)
}

/// The value of `name` at `version` (default: the latest), its read
/// audited as done by `actor` (no value without its audit entry). Deleted
/// secrets are not readable until recovered.
pub(crate) async fn get(
    db: &Store,
    keys: &Keyring,
    name: &str,
    version: Option<u32>,
    actor: &str,
) -> Result<(u32, Zeroizing<Vec<u8>>), VaultError> {
    get_as(db, keys, name, version, actor, "").await
}

/// [`get`], its audit entry's detail saying why (`injected target=…`: the
/// gateway read it for a jump point on `actor`'s behalf; the value never
/// reached `actor`).
pub(crate) async fn get_as(
    db: &Store,
    keys: &Keyring,
    name: &str,
    version: Option<u32>,
    actor: &str,
    why: &str,
) -> Result<(u32, Zeroizing<Vec<u8>>), VaultError> {
    validate_name(name)?;
    let mut c = db.conn().await?;
    let secret = info_in(&mut c, name).await?;
    if secret.deleted_at_ms.is_some() {
        return Err(VaultError::Deleted(name.to_owned()));
    }
    let version = version.unwrap_or(secret.latest_version);
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sql!(c, |c| {
        sqlx::query_as(
        "SELECT wrapped_key, nonce, ciphertext FROM vault_versions WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(i64::from(version))
    .fetch_optional(&mut *c)
    .await
    })?;
    drop(c);
    let (wrapped, nonce, ciphertext) = row.ok_or_else(|| VaultError::NoVersion {
        name: name.to_owned(),
        version,
    })?;
    let key = keys.unwrap(Purpose::Vault, &WrappedKey::from(wrapped))?;
    let buf = key
        .open(value_aad(name, version).as_bytes(), &nonce, &ciphertext)
        .map_err(|_| VaultError::Corrupt)?;
    db.audit_now(
        AuditEvent::new(actor, AuditAction::VaultRead, name).detail(if why.is_empty() {
            format!("version={version}")
        } else {
            format!("version={version} {why}")
        }),
    )
    .await?;
    Ok((version, buf))
}

/// A `vault_secrets` row as the `SECRET…` statements select it (with its
/// latest version).
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

const SECRET_BY_NAME: &str = "SELECT s.name, (SELECT COALESCE(MAX(version), 0) FROM vault_versions v WHERE v.name = s.name), s.created_at, s.updated_at, s.deleted_at, s.purge_after
     FROM vault_secrets s WHERE s.name = $1";
const SECRETS_LIVE: &str = "SELECT s.name, (SELECT COALESCE(MAX(version), 0) FROM vault_versions v WHERE v.name = s.name), s.created_at, s.updated_at, s.deleted_at, s.purge_after
     FROM vault_secrets s WHERE s.deleted_at IS NULL ORDER BY s.name";
const SECRETS_DELETED: &str = "SELECT s.name, (SELECT COALESCE(MAX(version), 0) FROM vault_versions v WHERE v.name = s.name), s.created_at, s.updated_at, s.deleted_at, s.purge_after
     FROM vault_secrets s WHERE s.deleted_at IS NOT NULL ORDER BY s.name";

async fn info_in(e: &mut dyn Exec, name: &str) -> Result<SecretInfo, VaultError> {
    let row: Option<SecretRow> = sql!(e, |c| sqlx::query_as(SECRET_BY_NAME)
        .bind(name)
        .fetch_optional(&mut *c)
        .await)?;
    row.map(secret_from_row)
        .ok_or_else(|| VaultError::NotFound(name.to_owned()))
}

#[cfg(test)]
pub(crate) async fn info(db: &Store, name: &str) -> Result<SecretInfo, VaultError> {
    info_in(&mut db.conn().await?, name).await
}

/// Live secrets, or (with `deleted`) the soft-deleted ones, by name.
pub(crate) async fn list(db: &Store, deleted: bool) -> Result<Vec<SecretInfo>, VaultError> {
    let q = if deleted {
        SECRETS_DELETED
    } else {
        SECRETS_LIVE
    };
    let mut c = db.conn().await?;
    let rows: Vec<SecretRow> = sql!(c, |c| sqlx::query_as(q).fetch_all(&mut *c).await)?;
    Ok(rows.into_iter().map(secret_from_row).collect())
}

pub(crate) async fn versions(db: &Store, name: &str) -> Result<Vec<VersionInfo>, VaultError> {
    validate_name(name)?;
    let mut c = db.conn().await?;
    info_in(&mut c, name).await?;
    let rows: Vec<(i64, i64, String)> = sql!(c, |c| {
        sqlx::query_as(
        "SELECT version, created_at, created_by FROM vault_versions WHERE name = $1 ORDER BY version",
    )
    .bind(name)
    .fetch_all(&mut *c)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(v, at, by)| VersionInfo {
            version: u32::try_from(v).unwrap_or(0),
            created_at_ms: at,
            created_by: by,
        })
        .collect())
}

/// Soft-deletes `name` (audited as done by `actor`): recoverable until
/// `now + retention`.
pub(crate) async fn delete(
    db: &Store,
    name: &str,
    now: i64,
    actor: &str,
) -> Result<SecretInfo, VaultError> {
    validate_name(name)?;
    let mut w = db.write().await?;
    let s = info_in(&mut w, name).await?;
    if s.deleted_at_ms.is_some() {
        return Err(VaultError::Deleted(name.to_owned()));
    }
    let days = settings_in(&mut w).await?.retention_days;
    let until = now + i64::from(days) * DAY_MS;
    sql!(w, |c| {
        sqlx::query(
        "UPDATE vault_secrets SET deleted_at = $1, purge_after = $2 WHERE name = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(until)
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    let s = info_in(&mut w, name).await?;
    w.audit(
        AuditEvent::new(actor, AuditAction::VaultDelete, name)
            .detail(format!("recoverable until {}", crate::ids::rfc3339(until))),
    )
    .await?;
    w.commit().await?;
    Ok(s)
}

/// Brings a soft-deleted secret back, every version intact (audited as
/// done by `actor`).
pub(crate) async fn recover(db: &Store, name: &str, actor: &str) -> Result<SecretInfo, VaultError> {
    validate_name(name)?;
    let mut w = db.write().await?;
    let s = info_in(&mut w, name).await?;
    if s.deleted_at_ms.is_none() {
        return Err(VaultError::NotDeleted(name.to_owned()));
    }
    sql!(w, |c| sqlx::query(
        "UPDATE vault_secrets SET deleted_at = NULL, purge_after = NULL WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let s = info_in(&mut w, name).await?;
    w.audit(AuditEvent::new(actor, AuditAction::VaultRecover, name))
        .await?;
    w.commit().await?;
    Ok(s)
}

/// Removes a soft-deleted secret and all its versions for good (audited
/// as done by `actor`). Refused before the end of its retention when
/// purge protection is on.
pub(crate) async fn purge(db: &Store, name: &str, now: i64, actor: &str) -> Result<(), VaultError> {
    purge_audited(
        db,
        name,
        now,
        AuditEvent::new(actor, AuditAction::VaultPurge, name),
    )
    .await
}

async fn purge_audited(
    db: &Store,
    name: &str,
    now: i64,
    event: AuditEvent,
) -> Result<(), VaultError> {
    validate_name(name)?;
    let mut w = db.write().await?;
    let s = info_in(&mut w, name).await?;
    let Some(purge_after) = s.purge_after_ms.filter(|_| s.deleted_at_ms.is_some()) else {
        return Err(VaultError::NotDeleted(name.to_owned()));
    };
    if settings_in(&mut w).await?.purge_protection && now < purge_after {
        return Err(VaultError::PurgeProtected {
            name: name.to_owned(),
            until: crate::ids::rfc3339(purge_after),
        });
    }
    sql!(w, |c| sqlx::query(
        "DELETE FROM vault_secrets WHERE name = $1 AND deleted_at IS NOT NULL"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(event).await?;
    w.commit().await?;
    Ok(())
}

/// Purges deleted secrets whose retention ended (the key task runs it).
pub(crate) async fn expire(db: &Store) {
    let now = now_ms();
    let names: Result<Vec<String>, sqlx::Error> = async {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_scalar(
            "SELECT name FROM vault_secrets WHERE deleted_at IS NOT NULL AND purge_after <= $1",
        )
        .bind(now)
        .fetch_all(&mut *c)
        .await)
    }
    .await;
    let names = names.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list expired vault secrets");
        Vec::new()
    });
    for name in names {
        let event = AuditEvent::new("(vault retention)", AuditAction::VaultPurge, &name)
            .detail("retention ended");
        if let Err(e) = purge_audited(db, &name, now, event).await {
            tracing::warn!(secret = %name, error = %e, "cannot purge an expired vault secret");
        }
    }
}

/// The vault's wrapped data keys (one per secret version), for the key
/// sweep and key status (`keys::stored`). A key's id is `NAME/VERSION`
/// (names hold no `/`); keys are listed by name, then version.
pub(crate) struct StoredKeys;

fn parse_key_id(id: &str) -> (&str, i64) {
    match id.rsplit_once('/') {
        Some((name, v)) => (name, v.parse().unwrap_or(i64::MIN)),
        None => (id, i64::MIN),
    }
}

#[async_trait::async_trait]
impl WrappedKeys for StoredKeys {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn purpose(&self) -> Purpose {
        Purpose::Vault
    }

    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
        stored::count_like(
            e,
            Purpose::Vault,
            versions,
            "SELECT COUNT(*) FROM vault_versions",
            "SELECT COUNT(*) FROM vault_versions WHERE wrapped_key LIKE $1",
        )
        .await
    }

    async fn stale_after(
        &self,
        e: &mut dyn Exec,
        current: u32,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, sqlx::Error> {
        let (name, version) = parse_key_id(after);
        let rows: Vec<(String, i64, String)> = sql!(e, |c| sqlx::query_as(
            "SELECT name, version, wrapped_key FROM vault_versions
              WHERE (name > $1 OR (name = $1 AND version > $2)) AND wrapped_key NOT LIKE $3
              ORDER BY name, version LIMIT $4",
        )
        .bind(name)
        .bind(version)
        .bind(stored::like_version(Purpose::Vault, current))
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(name, v, w)| StoredKey::new(format!("{name}/{v}"), w))
            .collect())
    }

    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error> {
        let (name, version) = parse_key_id(id);
        let n = sql!(e, |c| {
            sqlx::query(
            "UPDATE vault_versions SET wrapped_key = $1 WHERE name = $2 AND version = $3 AND wrapped_key = $4",
        )
        .bind(new.as_str())
        .bind(name)
        .bind(version)
        .bind(old.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests;
