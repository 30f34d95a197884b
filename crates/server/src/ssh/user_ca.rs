//! The SSH user CA (issue #16): an Ed25519 key, kept in the key hierarchy
//! as the host key is (its seed sealed, bound to its id, under a data key
//! the `ssh` KEK wraps; the rotation sweep re-wraps it: [`USER_CAS`]). It
//! signs the short-lived user certificates `jg login` asks for
//! (`certs`), and the front door accepts certificates it signed. Made on
//! first use; its public half is also written to
//! `<data dir>/ssh_user_ca.pub` (`jumpgate admin fingerprint
//! --ssh-user-ca`) and served at `GET /api/v1/ssh/user-ca`.

use std::path::{Path, PathBuf};

use russh::keys::PrivateKey;

use super::SshError;
use super::host_key::PURPOSE;
use super::stored_key::Kind;
use crate::keys::Keyring;
use crate::keys::stored::TableKeys;
use crate::store::Store;

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
    let file = data_dir.map(public_file);
    super::stored_key::load_or_create(db, keys, Kind::UserCa, file.as_deref()).await
}
