//! Keys for data at rest, in three levels:
//!
//! ```text
//! root key (key file | JUMPGATE_ROOT_KEY | a KMS via `RootKey`)
//!   └─ seals the KEKs in <data dir>/keys/keyring.json, one set per Purpose,
//!      each KEK versioned (v1, v2, ...; one current version per purpose)
//!        └─ a KEK wraps data keys (one per recording, per secret version,
//!           and the one SQLCipher key of the database)
//!             └─ a data key encrypts data
//! ```
//!
//! Only wrapped data keys are stored next to the data. Wrapping is
//! AES-256-GCM with a random 96-bit nonce and the purpose and KEK version
//! as associated data, so a wrapped key moved to another purpose does not
//! unwrap. Rotation (`rotate`) adds a KEK version that new wraps use at
//! once; older versions stay usable until the sweep (`sweep`) has re-wrapped
//! every stored key, and are then retired (their sealed KEK is erased from
//! the keyring file). See docs/security.md.

mod file;
mod root;
mod rotation;
pub(crate) mod schema;
pub(crate) mod stored;
pub(crate) mod sweep;
mod wrap;

use file::*;
use rotation::*;
use wrap::*;

use std::collections::{BTreeMap, HashMap};
use std::fs;
#[cfg(test)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use root::ROOT_KEY_ENV;
pub(crate) use root::{LocalRoot, RootKey, read_root_file};

/// Length of every key (AES-256).
pub(crate) const KEY_LEN: usize = 32;

/// The keyring file, next to the root key file in `<data dir>/keys/`.
pub(crate) const KEYRING_FILE: &str = "keyring.json";

/// The root key file, in `<data dir>/keys/`.
pub(crate) const ROOT_FILE: &str = "root.key";

/// The next root key during a root key rotation (see [`Keyring::rotate_root`]).
pub(crate) const ROOT_NEW_FILE: &str = "root.key.new";

/// What a key-encryption key protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Purpose {
    Database,
    Recordings,
    Vault,
    Blobs,
    /// Endpoint privilege management: policy signing keys, the offline-code
    /// key and the bundle route's key (`epm`). Added after the others: a
    /// keyring written before it gets its first version when it is opened.
    Policy,
    /// Search inside recordings: the key of the blind index's words
    /// (`recordings::search`). Added after `Policy`, the same way.
    Search,
    /// The SSH front door: the gateway's SSH host key (`ssh::host_key`).
    /// Added after `Search`, the same way.
    Ssh,
}

impl Purpose {
    pub(crate) const ALL: [Self; 7] = [
        Self::Database,
        Self::Recordings,
        Self::Vault,
        Self::Blobs,
        Self::Policy,
        Self::Search,
        Self::Ssh,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Recordings => "recordings",
            Self::Vault => "vault",
            Self::Blobs => "blobs",
            Self::Policy => "policy",
            Self::Search => "search",
            Self::Ssh => "ssh",
        }
    }
}

impl std::str::FromStr for Purpose {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| KeyError::UnknownPurpose(s.to_owned()))
    }
}

/// Why [`Keyring::open_for_postgres`] failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringOpenError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot read the database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Why a key could not be loaded, made or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file or keyring file cannot be read or written.
    #[error("key file {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// The root key file has the wrong size or lax permissions.
    #[error("key file {path} must be {KEY_LEN} bytes and mode 0600 or stricter")]
    BadKeyFile { path: String },
    /// The root key given is not a key.
    #[error("invalid root key: {0}")]
    BadRootKey(String),
    /// The site has a keyring but its root key file is gone.
    #[error(
        "the root key file {0} is missing but this site already has a keyring: restore the file from your backup, or set {ROOT_KEY_ENV} if the site was created with it"
    )]
    MissingRoot(String),
    /// The site has a database but its keyring file is gone.
    #[error(
        "the keyring file {0} is missing but this site already has a database: restore keys/keyring.json from your backup (nothing was written)"
    )]
    MissingKeyring(String),
    /// The keyring was sealed by another root key.
    #[error(
        "the keyring does not open with the root key from {0}: wrong root key (another site's, or {ROOT_KEY_ENV} set/unset by mistake?), or an altered keyring file"
    )]
    WrongRoot(String),
    /// The keyring file is not one this build can read.
    #[error("keyring file {path} is unreadable: {message}")]
    BadKeyring { path: String, message: String },
    #[error("wrapped key is malformed")]
    Malformed,
    #[error("wrapped key does not open with the {0} key (wrong key, or altered)")]
    Unwrap(&'static str),
    /// The wrapped key names a KEK version the keyring no longer has.
    #[error("no {purpose} key version {version} in the keyring (retired, or from another site)")]
    UnknownVersion { purpose: &'static str, version: u32 },
    #[error(
        "unknown key purpose `{0}` (expected database, recordings, vault, blobs, policy or search)"
    )]
    UnknownPurpose(String),
    #[error("the system random generator failed")]
    Random,
    /// The new root key file for a rotation is unusable.
    #[error(
        "new root key file {0} must be mode 0600 or stricter and hold 32 raw bytes, 64 hex digits or the base64 of 32 random bytes (e.g. `openssl rand -hex 32`)"
    )]
    BadNewKeyFile(String),
    /// The root key comes from the environment: the operator supplies the next one.
    #[error(
        "the root key comes from {ROOT_KEY_ENV}: give the new key with --new-key-file FILE (mode 0600), then set {ROOT_KEY_ENV} to it before the next start"
    )]
    NewRootNeeded,
    /// The new root key is the one in use.
    #[error("the new root key is the root key in use: give a new random key")]
    SameRoot,
    /// A root key rotation was interrupted in this process.
    #[error(
        "{0} exists: an interrupted root key rotation is pending; restart the gateway (or run any `jumpgate admin` command with it stopped) to finish it"
    )]
    RotationPending(String),
    /// The keyring file on disk was re-sealed by another process.
    #[error(
        "the keyring file {0} was changed by another process (root key rotated?): restart the gateway"
    )]
    ChangedOnDisk(String),
}

/// A plaintext data key. Never logged; overwritten on drop.
pub(crate) struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as SQLCipher's raw-key literal `"x'HEX'"` (no KDF runs).
    pub(crate) fn sqlcipher_literal(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 5));
        s.push_str("\"x'");
        for b in self.0 {
            s.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
        s.push_str("'\"");
        s
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn for_tests(byte: u8) -> Self {
        Self([byte; KEY_LEN])
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A data key wrapped by a KEK, in its stored text form
/// `<purpose>:v<version>:<base64 nonce‖ciphertext‖tag>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WrappedKey(String);

impl WrappedKey {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The KEK version that wrapped this key (`None`: malformed).
    pub(crate) fn version(&self) -> Option<u32> {
        self.0.split(':').nth(1)?.strip_prefix('v')?.parse().ok()
    }
}

impl From<String> for WrappedKey {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How often, and when last, the root key was rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RootInfo {
    /// 0 for the site's first root key, +1 per rotation.
    pub(crate) generation: u32,
    pub(crate) rotated_at_ms: i64,
}

/// One KEK version, for status reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KekInfo {
    pub(crate) version: u32,
    pub(crate) created_at_ms: i64,
    pub(crate) retired: bool,
}

/// The site's keys, shared by every component that stores data.
#[derive(Clone)]
pub(crate) struct Keyring(Arc<Inner>);

struct Inner {
    rng: SystemRandom,
    /// Replaced by [`Keyring::rotate_root`].
    root: RwLock<Box<dyn RootKey>>,
    /// `<data dir>/keys/root.key` when the root key came from that file
    /// (not from [`ROOT_KEY_ENV`] or a caller).
    root_file: Option<PathBuf>,
    path: PathBuf,
    state: RwLock<State>,
    /// Serializes changes of the keyring file (rotation, retirement).
    writer: Mutex<()>,
}

struct State {
    file: KeyringFile,
    keks: HashMap<(Purpose, u32), LessSafeKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// The keyring file's path (for messages) when it does not exist.
fn missing_keyring(data_dir: &Path) -> Option<String> {
    let keyring = data_dir.join("keys").join(KEYRING_FILE);
    matches!(fs::symlink_metadata(&keyring), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        .then(|| keyring.display().to_string())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Keyring {
    /// Opens the keyring of `data_dir` with the site's root key
    /// ([`ROOT_KEY_ENV`] or `keys/root.key`), creating both on first use.
    /// A root key rotation a crash interrupted is finished or rolled back
    /// first (see [`Keyring::rotate_root`]).
    pub(crate) fn open(data_dir: &Path) -> Result<Self, KeyError> {
        Self::refuse_missing_keyring(data_dir)?;
        if std::env::var(ROOT_KEY_ENV).is_ok() {
            let root = root::site_root(data_dir)?;
            return Self::open_inner(data_dir, root, None);
        }
        recover_root_rotation(data_dir)?;
        let root = root::site_root_file_only(data_dir)?;
        Self::open_inner(data_dir, root, Some(data_dir.join("keys").join(ROOT_FILE)))
    }

    /// A new keyring is made for a new site only: with a database already there
    /// (not empty), a missing keyring is lost, and a new one would only make
    /// the database look like another site's. Nothing is written then.
    fn refuse_missing_keyring(data_dir: &Path) -> Result<(), KeyError> {
        let has_database = fs::metadata(crate::app::db_path(data_dir)).is_ok_and(|m| m.len() > 0);
        match missing_keyring(data_dir) {
            Some(keyring) if has_database => Err(KeyError::MissingKeyring(keyring)),
            _ => Ok(()),
        }
    }

    /// [`Keyring::open`] for a site whose database is on PostgreSQL: there
    /// is no database file in `data_dir` to tell a new site from one whose
    /// keyring was lost, so the database is asked (its audit log) before a
    /// keyring is made. Nothing is written when it is refused.
    ///
    /// # Errors
    /// As [`Keyring::open`]; [`KeyError::MissingKeyring`] when the keyring
    /// file is gone and the database holds a site.
    pub(crate) async fn open_for_postgres(
        data_dir: &Path,
        url: &str,
        schema: crate::store::migrations::Schema,
    ) -> Result<Self, KeyringOpenError> {
        if let Some(keyring) = missing_keyring(data_dir) {
            let probe = crate::store::open_site(
                crate::store::Location::Postgres {
                    url,
                    max_connections: 2,
                },
                schema,
            )
            .await?;
            let holds_site = crate::events::has_entries(&probe).await;
            probe.close().await;
            if holds_site? {
                return Err(KeyError::MissingKeyring(keyring).into());
            }
        }
        Ok(Self::open(data_dir)?)
    }

    /// Opens (or creates) the keyring of `data_dir` sealed by `root`.
    pub(crate) fn open_with(data_dir: &Path, root: Box<dyn RootKey>) -> Result<Self, KeyError> {
        Self::refuse_missing_keyring(data_dir)?;
        Self::open_inner(data_dir, root, None)
    }

    fn open_inner(
        data_dir: &Path,
        root: Box<dyn RootKey>,
        root_file: Option<PathBuf>,
    ) -> Result<Self, KeyError> {
        let dir = data_dir.join("keys");
        let path = dir.join(KEYRING_FILE);
        let io = |cause| KeyError::Io {
            path: dir.display().to_string(),
            cause,
        };
        jumpgate_net::fs::create_private_dir(&dir).map_err(io)?;
        let rng = SystemRandom::new();
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let mut file = parse_keyring(&path, &bytes)?;
                if add_missing_purposes(&mut file, root.as_ref(), &rng)? {
                    write_atomically(&path, &file)?;
                }
                let keks = unseal_all(&path, &file, root.as_ref())?;
                State { file, keks }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = new_keyring(root.as_ref(), &rng)?;
                if !create_atomically(&path, &state.file)? {
                    // Another process (gateway or admin) made it first:
                    // theirs is the site's keyring.
                    return Self::open_inner(data_dir, root, root_file);
                }
                state
            }
            Err(e) => {
                return Err(KeyError::Io {
                    path: path.display().to_string(),
                    cause: e,
                });
            }
        };
        Ok(Self(Arc::new(Inner {
            rng,
            root: RwLock::new(root),
            root_file,
            path,
            state: RwLock::new(state),
            writer: Mutex::new(()),
        })))
    }

    fn root(&self) -> std::sync::RwLockReadGuard<'_, Box<dyn RootKey>> {
        self.0
            .root
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.0
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn current(&self, purpose: Purpose) -> u32 {
        self.file
            .purposes
            .get(purpose.as_str())
            .map_or(1, |pk| pk.current)
    }
}

#[cfg(test)]
mod tests;

/// What the fuzz targets in `fuzz/` drive (cargo feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use super::*;

    /// The root key fuzz inputs are sealed with (never a real site's).
    const ROOT_HEX: &str = "0707070707070707070707070707070707070707070707070707070707070707";

    fn root() -> Box<dyn RootKey> {
        Box::new(LocalRoot::from_env_value(ROOT_HEX).expect("a valid root key"))
    }

    /// A valid keyring file under the fuzz root key (a corpus seed).
    pub(crate) fn seed() -> Vec<u8> {
        let state = new_keyring(root().as_ref(), &SystemRandom::new()).expect("a new keyring");
        serde_json::to_vec_pretty(&state.file).expect("a serializable keyring")
    }

    /// Opens `bytes` as `keys/keyring.json` the way [`Keyring::open`] does
    /// and, when it opens, uses it: wraps and unwraps a key of every
    /// purpose, rotates and retires. `dir` is a scratch directory.
    pub(crate) fn keyring(dir: &Path, bytes: &[u8]) {
        let path = dir.join(KEYRING_FILE);
        let Ok(file) = parse_keyring(&path, bytes) else {
            return;
        };
        let root = root();
        let Ok(keks) = unseal_all(&path, &file, root.as_ref()) else {
            return;
        };
        // `store` compares with the file on disk before it writes.
        fs::write(&path, bytes).expect("writing the scratch keyring");
        let ring = Keyring(Arc::new(Inner {
            rng: SystemRandom::new(),
            root: RwLock::new(root),
            root_file: None,
            path,
            state: RwLock::new(State { file, keks }),
            writer: Mutex::new(()),
        }));
        let _ = ring.database_key();
        let _ = ring.database_key_next();
        let _ = ring.root_info();
        let check = |ring: &Keyring| {
            for p in Purpose::ALL {
                let (key, wrapped) = ring
                    .new_data_key(p)
                    .expect("wrapping under the current KEK");
                let back = ring
                    .unwrap(p, &wrapped)
                    .expect("a key wrapped here unwraps");
                assert_eq!(back.as_bytes(), key.as_bytes());
                assert_eq!(wrapped.version(), Some(ring.current_version(p)));
            }
        };
        check(&ring);
        if ring.rotate(&Purpose::ALL).is_ok() {
            check(&ring);
        }
        for p in Purpose::ALL {
            for v in ring.old_live_versions(p) {
                let _ = ring.retire(p, v);
            }
        }
        check(&ring);
    }

    /// A root key as an operator writes it (`JUMPGATE_ROOT_KEY`, a new key file).
    pub(crate) fn root_key_text(text: &str) {
        let _ = LocalRoot::from_env_value(text);
    }
}
