//! The gateway's SSH host key, kept in the key hierarchy (`stored_key`: an
//! Ed25519 seed sealed, bound to the key's id, under a data key that the
//! `ssh` KEK wraps; the rotation sweep re-wraps it: [`HOST_KEYS`]). Made on
//! the first start; its public half is also written to
//! `<data dir>/ssh_host_ed25519_key.pub` (public), which `jumpgate admin
//! fingerprint --ssh` reads without opening the database.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PrivateKey, PublicKey};

use super::SshError;
use super::stored_key::Kind;
use crate::keys::stored::TableKeys;
use crate::keys::{Keyring, Purpose};
use crate::store::Store;

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
    let file = public_file(data_dir);
    super::stored_key::load_or_create(db, keys, Kind::HostKey, Some(&file)).await
}
