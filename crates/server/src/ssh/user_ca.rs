//! The SSH user CA (issue #16): an Ed25519 key, kept in the key hierarchy
//! as the host key is (its seed sealed, bound to its id, under a data key
//! the `ssh` KEK wraps; the rotation sweep re-wraps it: [`USER_CAS`]). It
//! signs the short-lived user certificates `jg login` asks for
//! (`certs`), and the front door accepts certificates it signed. Made on
//! first use; its public half is also written to
//! `<data dir>/ssh_user_ca.pub` (`jumpgate admin fingerprint
//! --ssh-user-ca`) and served at `GET /api/v1/ssh/user-ca`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::SshError;
use super::host_key::PURPOSE;
use crate::ids::random_bytes;
use crate::keys::stored::TableKeys;
use crate::keys::{Keyring, WrappedKey, now_ms};
use crate::store::{Store, sql};

/// The user CA's data keys, for the rotation sweep and key status.
pub(crate) const USER_CAS: TableKeys = TableKeys {
    name: "ssh user CA",
    purpose: PURPOSE,
    count_all: "SELECT COUNT(*) FROM ssh_user_cas",
    count_like: "SELECT COUNT(*) FROM ssh_user_cas WHERE wrapped_key LIKE $1",
    stale_after: "SELECT id, wrapped_key FROM ssh_user_cas
          WHERE id > $1 AND wrapped_key NOT LIKE $2 ORDER BY id LIMIT $3",
    replace: "UPDATE ssh_user_cas SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3",
};

/// The file beside the data that holds the CA's public half.
pub(crate) fn public_file(data_dir: &Path) -> PathBuf {
    data_dir.join("ssh_user_ca.pub")
}

fn sealed_aad(id: &str) -> Vec<u8> {
    format!("jumpgate:ssh-user-ca:{id}").into_bytes()
}

/// The user CA, made (and stored) if there is none; its public half is
/// (re)written to [`public_file`] when `data_dir` is given.
///
/// # Errors
/// The store, the key hierarchy, or a damaged stored key.
pub(crate) async fn load_or_create(
    db: &Store,
    keys: &Keyring,
    data_dir: Option<&Path>,
) -> Result<PrivateKey, SshError> {
    let key = match read(db, keys).await? {
        Some(k) => k,
        None => {
            let seed = zeroize::Zeroizing::new(random_bytes::<32>());
            let id = format!("uca_{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()));
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
                "INSERT INTO ssh_user_cas (id, public_key, wrapped_key, sealed, created_at)
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
            tracing::info!(
                fingerprint = %super::host_key::fingerprint(key.public_key()),
                "SSH user CA created"
            );
            // Two gateways making one at once agree on the first stored.
            read(db, keys)
                .await?
                .ok_or_else(|| SshError::Key("the new user CA vanished".into()))?
        }
    };
    if let Some(dir) = data_dir {
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| SshError::Key(e.to_string()))?;
        let path = public_file(dir);
        crate::site::write_public(&path, format!("{public}\n").as_bytes())
            .map_err(|e| SshError::Key(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(key)
}

fn from_seed(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(seed))
}

/// The oldest stored CA, opened.
async fn read(db: &Store, keys: &Keyring) -> Result<Option<PrivateKey>, SshError> {
    let row: Option<(String, String, Vec<u8>)> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(
            "SELECT id, wrapped_key, sealed FROM ssh_user_cas ORDER BY created_at, id LIMIT 1"
        )
        .fetch_optional(&mut *c)
        .await)?
    };
    let Some((id, wrapped, sealed)) = row else {
        return Ok(None);
    };
    let data_key = keys.unwrap(PURPOSE, &WrappedKey::from(wrapped))?;
    if sealed.len() < 12 {
        return Err(SshError::Key(format!("user CA {id} is damaged")));
    }
    let (nonce, ct) = sealed.split_at(12);
    let seed = data_key
        .open(&sealed_aad(&id), nonce, ct)
        .map_err(|_| SshError::Key(format!("user CA {id} does not open")))?;
    let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| SshError::Key(format!("user CA {id} is damaged")))?,
    );
    Ok(Some(from_seed(&seed)))
}
