//! The policy's keys, each protected by the key hierarchy under purpose
//! `policy`:
//!
//! - **Signing keys** (`epm_signing_keys`): Ed25519, ids `pk_…`. The PKCS#8
//!   document is sealed (AES-256-GCM, bound to the key's id) under a data
//!   key; the data key is stored wrapped by the current `policy` KEK and
//!   re-wrapped by the rotation sweep ([`SIGNING_KEYS`]). The newest key
//!   not retired signs; it and the one before it are trusted by agents
//!   (a rotation keeps the previous key trusted until every agent took a
//!   bundle signed by the new one: the next rotation retires it).
//! - **Site keys** (`epm_site_keys`): random data keys, wrapped the same
//!   way ([`SITE_KEYS`]): `code` derives each endpoint's offline-code
//!   secret, `bundle-url` signs the gateway's bundle download route.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jumpgate_epm::bundle::SigningKey;
use jumpgate_proto::epm::TrustedKey;

use super::EpmError;
use crate::ids::random_bytes;
use crate::keys::stored::TableKeys;
use crate::keys::{DataKey, Keyring, Purpose, WrappedKey, now_ms};
use crate::store::{Exec, Store, sql};

/// The purpose whose KEKs wrap every key of this module.
pub(crate) const PURPOSE: Purpose = Purpose::Policy;

/// The site key that derives endpoints' offline-code secrets.
pub(crate) const CODE_KEY: &str = "code";
/// The site key of the gateway's signed bundle route.
pub(crate) const URL_KEY: &str = "bundle-url";

/// How many signing keys agents trust: the current one and the one before.
const TRUSTED: i64 = 2;

/// The signing keys' data keys, for the rotation sweep and key status.
pub(crate) const SIGNING_KEYS: TableKeys = TableKeys {
    name: "epm signing keys",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM epm_signing_keys",
    count_like: "SELECT COUNT(*) FROM epm_signing_keys WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM epm_signing_keys
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE epm_signing_keys SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

/// The site keys, for the rotation sweep and key status.
pub(crate) const SITE_KEYS: TableKeys = TableKeys {
    name: "epm site keys",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM epm_site_keys",
    count_like: "SELECT COUNT(*) FROM epm_site_keys WHERE wrapped_key LIKE $1",
    stale_after: "SELECT name, wrapped_key FROM epm_site_keys
          WHERE name > $1 AND wrapped_key NOT LIKE $2 ORDER BY name LIMIT $3",
    replace: "UPDATE epm_site_keys SET wrapped_key = $1 WHERE name = $2 AND wrapped_key = $3",
};

/// The site key `name`, made on first use (two gateways making it at once
/// agree on the one stored first).
pub(crate) async fn site_key(
    e: &mut dyn Exec,
    keys: &Keyring,
    name: &str,
) -> Result<DataKey, EpmError> {
    if let Some(w) = read_site_key(e, name).await? {
        return Ok(keys.unwrap(PURPOSE, &WrappedKey::from(w))?);
    }
    let (_, wrapped) = keys.new_data_key(PURPOSE)?;
    sql!(e, |c| sqlx::query(
        "INSERT INTO epm_site_keys (name, wrapped_key) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING"
    )
    .bind(name)
    .bind(wrapped.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let stored = read_site_key(e, name)
        .await?
        .ok_or_else(|| EpmError::Corrupt(format!("site key {name} vanished")))?;
    Ok(keys.unwrap(PURPOSE, &WrappedKey::from(stored))?)
}

async fn read_site_key(e: &mut dyn Exec, name: &str) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT wrapped_key FROM epm_site_keys WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await)
}

fn sealed_aad(id: &str) -> Vec<u8> {
    format!("jumpgate:epm-signing-key:{id}").into_bytes()
}

/// Makes a new signing key and stores it (sealed); it signs from now on.
/// Keys older than the one it replaces are retired (no longer trusted).
/// Answers its id.
pub(crate) async fn add_signing_key(e: &mut dyn Exec, keys: &Keyring) -> Result<String, EpmError> {
    let id = format!("pk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()));
    let (key, pkcs8) = SigningKey::generate(&id).map_err(|e| EpmError::Bundle(e.to_string()))?;
    let (data_key, wrapped) = keys.new_data_key(PURPOSE)?;
    let (nonce, ct) = data_key.seal(&sealed_aad(&id), &pkcs8)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ct);
    let now = now_ms();
    sql!(e, |c| sqlx::query(
        "INSERT INTO epm_signing_keys (id, public_key, wrapped_key, sealed, created_at)
         VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(&id)
    .bind(key.public_key_b64())
    .bind(wrapped.as_str())
    .bind(&sealed)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    // Keep this one and the one before it trusted; retire the rest.
    sql!(e, |c| sqlx::query(
        "UPDATE epm_signing_keys SET retired_at = $1
         WHERE retired_at IS NULL AND id NOT IN (
             SELECT id FROM epm_signing_keys WHERE retired_at IS NULL
             ORDER BY created_at DESC, id DESC LIMIT $2)"
    )
    .bind(now)
    .bind(TRUSTED)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(id)
}

/// The key that signs (the newest not retired), made if there is none.
pub(crate) async fn current_signing_key(
    e: &mut dyn Exec,
    keys: &Keyring,
) -> Result<SigningKey, EpmError> {
    let row = newest(e).await?;
    let (id, wrapped, sealed) = match row {
        Some(r) => r,
        None => {
            add_signing_key(e, keys).await?;
            newest(e)
                .await?
                .ok_or_else(|| EpmError::Corrupt("the new signing key vanished".into()))?
        }
    };
    let data_key = keys.unwrap(PURPOSE, &WrappedKey::from(wrapped))?;
    if sealed.len() < 12 {
        return Err(EpmError::Corrupt(format!("signing key {id} is damaged")));
    }
    let (nonce, ct) = sealed.split_at(12);
    let pkcs8 = data_key
        .open(&sealed_aad(&id), nonce, ct)
        .map_err(|_| EpmError::Corrupt(format!("signing key {id} does not open")))?;
    SigningKey::from_pkcs8(&id, &pkcs8).map_err(|e| EpmError::Bundle(e.to_string()))
}

async fn newest(e: &mut dyn Exec) -> Result<Option<(String, String, Vec<u8>)>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT id, wrapped_key, sealed FROM epm_signing_keys WHERE retired_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT 1"
    )
    .fetch_optional(&mut *c)
    .await)
}

/// The public keys agents trust (newest first).
pub(crate) async fn trusted(e: &mut dyn Exec) -> Result<Vec<TrustedKey>, sqlx::Error> {
    let rows: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
        "SELECT id, public_key FROM epm_signing_keys WHERE retired_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT $1"
    )
    .bind(TRUSTED)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, public_key)| TrustedKey { id, public_key })
        .collect())
}

/// The site's offline-code key.
pub(crate) async fn code_key(db: &Store, keys: &Keyring) -> Result<DataKey, EpmError> {
    let mut c = db.conn().await?;
    site_key(&mut c, keys, CODE_KEY).await
}

/// Every signing key's public key, retired ones too (the gateway reading
/// back an old bundle).
pub(crate) async fn all_public(e: &mut dyn Exec) -> Result<Vec<TrustedKey>, sqlx::Error> {
    let rows: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
        "SELECT id, public_key FROM epm_signing_keys ORDER BY created_at DESC, id DESC"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, public_key)| TrustedKey { id, public_key })
        .collect())
}

/// Every signing key: (id, public key, created_at, retired_at), newest
/// first.
pub(crate) async fn list(
    e: &mut dyn Exec,
) -> Result<Vec<(String, String, i64, Option<i64>)>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT id, public_key, created_at, retired_at FROM epm_signing_keys
         ORDER BY created_at DESC, id DESC"
    )
    .fetch_all(&mut *c)
    .await)
}
