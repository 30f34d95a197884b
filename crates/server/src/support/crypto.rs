//! What a support session keeps secret: the customer's name, problem and
//! comment, and the chat, sealed with AES-256-GCM under the session's own
//! data key (wrapped by the `Recordings` KEK, like a recording's); and the
//! pepper that session keys are hashed with (wrapped by the `Vault` KEK).
//! Both are swept by the key rotation ([`SessionKeys`], [`PepperKey`]).

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::keys::stored::{self, StoredKey, WrappedKeys};
use crate::keys::{DataKey, KeyError, Keyring, Purpose, WrappedKey};
use crate::store::{Exec, sql};

/// The KEK purpose of support sessions' data keys.
pub(crate) const SESSION_KEY_PURPOSE: Purpose = Purpose::Recordings;
/// The KEK purpose of the session-key pepper.
pub(crate) const PEPPER_PURPOSE: Purpose = Purpose::Vault;

/// Seals `plain` as `nonce ‖ ciphertext ‖ tag`, bound to `aad` (which
/// names the row and field, so a sealed value cannot be moved).
pub(crate) fn seal(key: &DataKey, aad: &str, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError::Random)?;
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_bytes()).map_err(|_| KeyError::Malformed)?,
    );
    let mut body = plain.to_vec();
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut body,
    )
    .map_err(|_| KeyError::Malformed)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens what [`seal`] made with the same `aad`.
pub(crate) fn open(key: &DataKey, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(KeyError::Malformed);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed)?;
    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_bytes()).map_err(|_| KeyError::Malformed)?,
    );
    let mut body = body.to_vec();
    let plain = aead
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
        .map_err(|_| KeyError::Malformed)?;
    Ok(plain.to_vec())
}

/// The associated data of a support session's sealed field.
pub(crate) fn field_aad(support_id: &str, field: &str) -> String {
    format!("jumpgate support v1\0{support_id}\0{field}")
}

/// The pepper's data key, made (and stored wrapped) on first use. Several
/// gateways may race to make it: the first stored one wins and every
/// gateway reads it back.
pub(crate) async fn pepper(e: &mut dyn Exec, keys: &Keyring) -> Result<DataKey, PepperError> {
    if let Some(w) = read_pepper(e).await? {
        return Ok(keys.unwrap(PEPPER_PURPOSE, &WrappedKey::from(w))?);
    }
    let (_, wrapped) = keys.new_data_key(PEPPER_PURPOSE)?;
    sql!(e, |c| sqlx::query(
        "INSERT INTO support_pepper (name, wrapped_key) VALUES ('keys', $1)
         ON CONFLICT (name) DO NOTHING"
    )
    .bind(wrapped.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let stored = read_pepper(e).await?.ok_or(PepperError::Missing)?;
    Ok(keys.unwrap(PEPPER_PURPOSE, &WrappedKey::from(stored))?)
}

async fn read_pepper(e: &mut dyn Exec) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT wrapped_key FROM support_pepper WHERE name = 'keys'"
    )
    .fetch_optional(&mut *c)
    .await)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PepperError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("the session-key pepper vanished while it was being made")]
    Missing,
}

/// Support sessions' data keys (by support session id).
pub(crate) struct SessionKeys;

#[async_trait::async_trait]
impl WrappedKeys for SessionKeys {
    fn name(&self) -> &'static str {
        "support sessions"
    }

    fn purpose(&self) -> Purpose {
        SESSION_KEY_PURPOSE
    }

    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
        stored::count_like(
            e,
            SESSION_KEY_PURPOSE,
            versions,
            "SELECT COUNT(*) FROM support_sessions",
            "SELECT COUNT(*) FROM support_sessions WHERE wrapped_key LIKE $1",
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
        let rows: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
            "SELECT id, wrapped_key FROM support_sessions
              WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(stored::like_version(SESSION_KEY_PURPOSE, current))
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, w)| StoredKey::new(id, w))
            .collect())
    }

    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error> {
        let n = sql!(e, |c| sqlx::query(
            "UPDATE support_sessions SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3"
        )
        .bind(new.as_str())
        .bind(id)
        .bind(old.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

/// The session-key pepper (one row).
pub(crate) struct PepperKey;

#[async_trait::async_trait]
impl WrappedKeys for PepperKey {
    fn name(&self) -> &'static str {
        "support key pepper"
    }

    fn purpose(&self) -> Purpose {
        PEPPER_PURPOSE
    }

    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
        stored::count_like(
            e,
            PEPPER_PURPOSE,
            versions,
            "SELECT COUNT(*) FROM support_pepper",
            "SELECT COUNT(*) FROM support_pepper WHERE wrapped_key LIKE $1",
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
        let rows: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
            "SELECT name, wrapped_key FROM support_pepper
              WHERE name > $1 AND wrapped_key NOT LIKE $2 ORDER BY name LIMIT $3",
        )
        .bind(after)
        .bind(stored::like_version(PEPPER_PURPOSE, current))
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, w)| StoredKey::new(id, w))
            .collect())
    }

    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error> {
        let n = sql!(e, |c| sqlx::query(
            "UPDATE support_pepper SET wrapped_key = $1 WHERE name = $2 AND wrapped_key = $3"
        )
        .bind(new.as_str())
        .bind(id)
        .bind(old.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
