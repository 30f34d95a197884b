//! What a support session keeps secret: the customer's name, problem and
//! comment, and the chat, sealed with AES-256-GCM under the session's own
//! data key (wrapped by the `Recordings` KEK, like a recording's); and the
//! pepper that session keys are hashed with (wrapped by the `Vault` KEK).
//! Both are swept by the key rotation ([`SessionKeys`], [`PepperKey`]).

use aws_lc_rs::aead::NONCE_LEN;

use crate::keys::stored::TableKeys;
use crate::keys::{DataKey, KeyError, Keyring, Purpose, WrappedKey};
use crate::store::{Exec, sql};

/// The KEK purpose of support sessions' data keys.
pub(crate) const SESSION_KEY_PURPOSE: Purpose = Purpose::Recordings;
/// The KEK purpose of the session-key pepper.
pub(crate) const PEPPER_PURPOSE: Purpose = Purpose::Vault;

/// Seals `plain` as `nonce ‖ ciphertext ‖ tag` ([`DataKey::seal`]), bound
/// to `aad` (which names the row and field, so a sealed value cannot be
/// moved).
pub(crate) fn seal(key: &DataKey, aad: &str, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (nonce, sealed) = key.seal(aad.as_bytes(), plain)?;
    Ok([&nonce[..], &sealed].concat())
}

/// Opens what [`seal`] made with the same `aad`.
pub(crate) fn open(key: &DataKey, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (nonce, body) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or(KeyError::Malformed)?;
    Ok(key.open(aad.as_bytes(), nonce, body)?.to_vec())
}

/// The associated data of a support session's sealed field.
pub(crate) fn field_aad(support_id: &str, field: &str) -> String {
    format!("jumpgate support v1\0{support_id}\0{field}")
}

/// A sealed field of support session `id` as technicians see it, opened
/// with the session's wrapped key: `?` (and an error in the log) when it
/// does not open, so a damaged row is shown, not hidden.
pub(crate) fn shown_field(
    keys: &Keyring,
    id: &str,
    wrapped: &str,
    field: &str,
    sealed: &[u8],
) -> String {
    let plain = keys
        .unwrap(SESSION_KEY_PURPOSE, &WrappedKey::from(wrapped.to_owned()))
        .and_then(|k| open(&k, &field_aad(id, field), sealed));
    match plain {
        Ok(p) => String::from_utf8_lossy(&p).into_owned(),
        Err(e) => {
            tracing::error!(support = %id, field, error = %e, "a support session's sealed field does not open");
            "?".to_owned()
        }
    }
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
pub(crate) const SESSION_KEYS: TableKeys = TableKeys {
    name: "support sessions",
    purpose: SESSION_KEY_PURPOSE,
    count_all: "SELECT COUNT(*) FROM support_sessions",
    count_like: "SELECT COUNT(*) FROM support_sessions WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM support_sessions
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE support_sessions SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

/// The session-key pepper (one row, by name).
pub(crate) const PEPPER_KEY: TableKeys = TableKeys {
    name: "support key pepper",
    purpose: PEPPER_PURPOSE,
    count_all: "SELECT COUNT(*) FROM support_pepper",
    count_like: "SELECT COUNT(*) FROM support_pepper WHERE wrapped_key LIKE $1",
    stale_after: "SELECT name, wrapped_key FROM support_pepper
          WHERE name > $1 AND wrapped_key NOT LIKE $2 ORDER BY name LIMIT $3",
    replace: "UPDATE support_pepper SET wrapped_key = $1 WHERE name = $2 AND wrapped_key = $3",
};
