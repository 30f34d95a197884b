//! The Ed25519 keys the gateway keeps in the key hierarchy for SSH: the
//! host key ([`Kind::HostKey`]) and the user CA ([`Kind::UserCa`]). Each
//! is a seed sealed (AES-256-GCM, bound to the key's id and kind) under a
//! data key the `ssh` KEK wraps, in a table of its own that the rotation
//! sweep re-wraps (`HOST_KEYS`, `USER_CAS`). The oldest stored key is the
//! one in use; several gateways making one at once agree on it.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::SshError;
use super::host_key::{PURPOSE, fingerprint};
use crate::ids::random_bytes;
use crate::keys::{Keyring, WrappedKey, now_ms};
use crate::store::{Store, sql};

/// Which stored key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    HostKey,
    UserCa,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Self::HostKey => "host key",
            Self::UserCa => "user CA",
        }
    }

    fn new_id(self) -> String {
        let prefix = match self {
            Self::HostKey => "hk",
            Self::UserCa => "uca",
        };
        format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()))
    }

    /// What the sealed seed is bound to (its id, and which key it is).
    fn aad(self, id: &str) -> Vec<u8> {
        match self {
            Self::HostKey => format!("jumpgate:ssh-host-key:{id}"),
            Self::UserCa => format!("jumpgate:ssh-user-ca:{id}"),
        }
        .into_bytes()
    }

    fn insert_sql(self) -> &'static str {
        match self {
            Self::HostKey => {
                "INSERT INTO ssh_host_keys (id, public_key, wrapped_key, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $5)"
            }
            Self::UserCa => {
                "INSERT INTO ssh_user_cas (id, public_key, wrapped_key, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $5)"
            }
        }
    }

    fn oldest_sql(self) -> &'static str {
        match self {
            Self::HostKey => {
                "SELECT id, wrapped_key, sealed FROM ssh_host_keys ORDER BY created_at, id LIMIT 1"
            }
            Self::UserCa => {
                "SELECT id, wrapped_key, sealed FROM ssh_user_cas ORDER BY created_at, id LIMIT 1"
            }
        }
    }
}

/// The stored key of `kind`, made (and stored) if there is none; its
/// public half is (re)written to `public_file` when one is given.
///
/// # Errors
/// The store, the key hierarchy, or a damaged stored key.
pub(crate) async fn load_or_create(
    db: &Store,
    keys: &Keyring,
    kind: Kind,
    public_file: Option<&Path>,
) -> Result<PrivateKey, SshError> {
    let key = match read(db, keys, kind).await? {
        Some(k) => k,
        None => {
            create(db, keys, kind).await?;
            // Two gateways making one at once agree on the first stored.
            read(db, keys, kind)
                .await?
                .ok_or_else(|| SshError::Key(format!("the new {} vanished", kind.what())))?
        }
    };
    if let Some(path) = public_file {
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| SshError::Key(e.to_string()))?;
        crate::site::write_public(path, format!("{public}\n").as_bytes())
            .map_err(|e| SshError::Key(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(key)
}

async fn create(db: &Store, keys: &Keyring, kind: Kind) -> Result<(), SshError> {
    let seed = zeroize::Zeroizing::new(random_bytes::<32>());
    let id = kind.new_id();
    let key = from_seed(&seed);
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| SshError::Key(e.to_string()))?;
    let (data_key, wrapped) = keys.new_data_key(PURPOSE)?;
    let (nonce, ct) = data_key.seal(&kind.aad(&id), seed.as_slice())?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ct);
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(kind.insert_sql())
        .bind(&id)
        .bind(&public)
        .bind(wrapped.as_str())
        .bind(&sealed)
        .bind(now_ms())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    w.commit().await?;
    tracing::info!(fingerprint = %fingerprint(key.public_key()), "SSH {} created", kind.what());
    Ok(())
}

fn from_seed(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(seed))
}

/// The oldest stored key of `kind`, opened.
async fn read(db: &Store, keys: &Keyring, kind: Kind) -> Result<Option<PrivateKey>, SshError> {
    let row: Option<(String, String, Vec<u8>)> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(kind.oldest_sql())
            .fetch_optional(&mut *c)
            .await)?
    };
    let Some((id, wrapped, sealed)) = row else {
        return Ok(None);
    };
    let what = kind.what();
    let data_key = keys.unwrap(PURPOSE, &WrappedKey::from(wrapped))?;
    if sealed.len() < 12 {
        return Err(SshError::Key(format!("{what} {id} is damaged")));
    }
    let (nonce, ct) = sealed.split_at(12);
    let seed = data_key
        .open(&kind.aad(&id), nonce, ct)
        .map_err(|_| SshError::Key(format!("{what} {id} does not open")))?;
    let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| SshError::Key(format!("{what} {id} is damaged")))?,
    );
    Ok(Some(from_seed(&seed)))
}
