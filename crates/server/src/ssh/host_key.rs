//! The gateway's SSH host key, kept in the key hierarchy: an Ed25519 seed
//! sealed (AES-256-GCM, bound to the key's id) under a data key that the
//! `ssh` KEK wraps; the rotation sweep re-wraps it ([`HOST_KEYS`]). Made on
//! the first start; its public half is also written to
//! `<data dir>/ssh_host_ed25519_key.pub` (public), which `jumpgate admin
//! fingerprint --ssh` reads without opening the database.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

use super::SshError;
use crate::ids::random_bytes;
use crate::keys::stored::TableKeys;
use crate::keys::{Keyring, Purpose, WrappedKey, now_ms};
use crate::store::{Store, sql};

/// The purpose whose KEK wraps the host key's data key.
pub(crate) const PURPOSE: Purpose = Purpose::Ssh;

/// The host keys' data keys, for the rotation sweep and key status.
pub(crate) const HOST_KEYS: TableKeys = TableKeys {
    name: "ssh host keys",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM ssh_host_keys",
    count_like: "SELECT COUNT(*) FROM ssh_host_keys WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM ssh_host_keys
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE ssh_host_keys SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

/// The file beside the data that holds the host key's public half.
pub(crate) fn public_file(data_dir: &Path) -> PathBuf {
    data_dir.join("ssh_host_ed25519_key.pub")
}

fn sealed_aad(id: &str) -> Vec<u8> {
    format!("jumpgate:ssh-host-key:{id}").into_bytes()
}

/// The host key as OpenSSH shows its fingerprint (`SHA256:…`).
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The gateway's host key, made (and stored) if there is none; its public
/// half is (re)written to [`public_file`].
///
/// # Errors
/// The store, the key hierarchy, or a damaged stored key.
pub(crate) async fn load_or_create(
    db: &Store,
    keys: &Keyring,
    data_dir: &Path,
) -> Result<PrivateKey, SshError> {
    let key = match read(db, keys).await? {
        Some(k) => k,
        None => {
            let seed = zeroize::Zeroizing::new(random_bytes::<32>());
            let id = format!("hk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()));
            let key = from_seed(&seed);
            let public = key
                .public_key()
                .to_openssh()
                .map_err(|e| SshError::Key(e.to_string()))?;
            let (data_key, wrapped) = keys.new_data_key(PURPOSE)?;
            let (nonce, ct) = data_key.seal(&sealed_aad(&id), seed.as_slice())?;
            let mut sealed = nonce.to_vec();
            sealed.extend_from_slice(&ct);
            let mut w = db.write().await?;
            sql!(w, |c| sqlx::query(
                "INSERT INTO ssh_host_keys (id, public_key, wrapped_key, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $5)"
            )
            .bind(&id)
            .bind(&public)
            .bind(wrapped.as_str())
            .bind(&sealed)
            .bind(now_ms())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            w.commit().await?;
            tracing::info!(fingerprint = %fingerprint(key.public_key()), "SSH host key created");
            // Two gateways starting at once agree on the first stored.
            read(db, keys)
                .await?
                .ok_or_else(|| SshError::Key("the new host key vanished".into()))?
        }
    };
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| SshError::Key(e.to_string()))?;
    let path = public_file(data_dir);
    crate::site::write_public(&path, format!("{public}\n").as_bytes())
        .map_err(|e| SshError::Key(format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

fn from_seed(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(seed))
}

/// The oldest stored host key, opened.
async fn read(db: &Store, keys: &Keyring) -> Result<Option<PrivateKey>, SshError> {
    let row: Option<(String, String, Vec<u8>)> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(
            "SELECT id, wrapped_key, sealed FROM ssh_host_keys ORDER BY created_at, id LIMIT 1"
        )
        .fetch_optional(&mut *c)
        .await)?
    };
    let Some((id, wrapped, sealed)) = row else {
        return Ok(None);
    };
    let data_key = keys.unwrap(PURPOSE, &WrappedKey::from(wrapped))?;
    if sealed.len() < 12 {
        return Err(SshError::Key(format!("host key {id} is damaged")));
    }
    let (nonce, ct) = sealed.split_at(12);
    let seed = data_key
        .open(&sealed_aad(&id), nonce, ct)
        .map_err(|_| SshError::Key(format!("host key {id} does not open")))?;
    let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| SshError::Key(format!("host key {id} is damaged")))?,
    );
    let key = from_seed(&seed);
    Ok(Some(key))
}
