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

mod root;
pub(crate) mod stored;
pub(crate) mod sweep;

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
}

impl Purpose {
    pub(crate) const ALL: [Self; 4] = [Self::Database, Self::Recordings, Self::Vault, Self::Blobs];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Recordings => "recordings",
            Self::Vault => "vault",
            Self::Blobs => "blobs",
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
    #[error("unknown key purpose `{0}` (expected database, recordings, vault or blobs)")]
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

/// The keyring file: per purpose, every KEK version sealed by the root key,
/// and the database key wrapped by the current database KEK (the database
/// cannot hold its own key).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: u32,
    purposes: BTreeMap<String, PurposeKeys>,
    database_key: String,
    /// After a database rotation: the next SQLCipher key, wrapped like
    /// `database_key`. The gateway re-encrypts the file with it
    /// (`PRAGMA rekey`) at its next start, while nothing else has the
    /// database open, then makes it `database_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database_key_next: Option<String>,
    /// The root key's rotations: absent until the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root: Option<RootInfo>,
}

/// How often, and when last, the root key was rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RootInfo {
    /// 0 for the site's first root key, +1 per rotation.
    pub(crate) generation: u32,
    pub(crate) rotated_at_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurposeKeys {
    current: u32,
    versions: Vec<KekEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KekEntry {
    version: u32,
    created_at_ms: i64,
    /// The KEK sealed by the root key; erased when the version is retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at_ms: Option<i64>,
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

fn kek_aad(purpose: Purpose, version: u32) -> String {
    format!("jumpgate:kek:{}:v{version}", purpose.as_str())
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
        let keyring = data_dir.join("keys").join(KEYRING_FILE);
        let has_database = fs::metadata(crate::app::db_path(data_dir)).is_ok_and(|m| m.len() > 0);
        if has_database
            && matches!(fs::symlink_metadata(&keyring), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            return Err(KeyError::MissingKeyring(keyring.display().to_string()));
        }
        Ok(())
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
    ) -> Result<Self, KeyringOpenError> {
        let keyring = data_dir.join("keys").join(KEYRING_FILE);
        if matches!(fs::symlink_metadata(&keyring), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            let probe = crate::store::open_site(crate::store::Location::Postgres {
                url,
                max_connections: 2,
            })
            .await?;
            let holds_site = crate::events::has_entries(&probe).await;
            probe.close().await;
            if holds_site? {
                return Err(KeyError::MissingKeyring(keyring.display().to_string()).into());
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
                let file = parse_keyring(&path, &bytes)?;
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

    /// A fresh data key and its wrapped form under `purpose`'s current KEK.
    pub(crate) fn new_data_key(&self, purpose: Purpose) -> Result<(DataKey, WrappedKey), KeyError> {
        let mut key = DataKey([0; KEY_LEN]);
        self.0.rng.fill(&mut key.0).map_err(|_| KeyError::Random)?;
        let wrapped = self.wrap(purpose, &key)?;
        Ok((key, wrapped))
    }

    /// Wraps an existing data key under `purpose`'s current KEK.
    pub(crate) fn wrap(&self, purpose: Purpose, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let st = self.read();
        let version = st.current(purpose);
        let kek = st
            .keks
            .get(&(purpose, version))
            .ok_or(KeyError::UnknownVersion {
                purpose: purpose.as_str(),
                version,
            })?;
        wrap_with(&self.0.rng, kek, purpose, version, key)
    }

    /// The data key inside `wrapped`, whatever KEK version (not yet
    /// retired) wrapped it.
    pub(crate) fn unwrap(
        &self,
        purpose: Purpose,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let mut parts = wrapped.0.splitn(3, ':');
        let (Some(p), Some(v), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::Malformed);
        };
        if p != purpose.as_str() {
            return Err(KeyError::Unwrap(purpose.as_str()));
        }
        let version: u32 = v
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or(KeyError::Malformed)?;
        let blob = B64.decode(b).map_err(|_| KeyError::Malformed)?;
        if blob.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
            return Err(KeyError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed)?;
        let st = self.read();
        let kek = st
            .keks
            .get(&(purpose, version))
            .ok_or(KeyError::UnknownVersion {
                purpose: purpose.as_str(),
                version,
            })?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = kek
            .open_in_place(nonce, Aad::from(aad(purpose, version).as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unwrap(purpose.as_str()))?;
        let mut key = DataKey([0; KEY_LEN]);
        key.0.copy_from_slice(plain);
        Ok(key)
    }

    /// The SQLCipher key of the site's database.
    pub(crate) fn database_key(&self) -> Result<DataKey, KeyError> {
        let wrapped = WrappedKey(self.read().file.database_key.clone());
        self.unwrap(Purpose::Database, &wrapped)
    }

    /// The SQLCipher key the database file is to be re-encrypted with, if a
    /// database rotation is waiting for the next start.
    pub(crate) fn database_key_next(&self) -> Result<Option<DataKey>, KeyError> {
        let Some(w) = self.read().file.database_key_next.clone() else {
            return Ok(None);
        };
        self.unwrap(Purpose::Database, &WrappedKey(w)).map(Some)
    }

    /// Makes the next database key the current one: the file has been
    /// re-encrypted with it.
    pub(crate) fn promote_database_key(&self) -> Result<(), KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = self.read().file.clone();
        let Some(next) = file.database_key_next.take() else {
            return Ok(());
        };
        file.database_key = next;
        self.store(&file)?;
        self.write().file = file;
        Ok(())
    }

    /// The version new wraps of `purpose` use.
    pub(crate) fn current_version(&self, purpose: Purpose) -> u32 {
        self.read().current(purpose)
    }

    /// Every KEK version of `purpose`, oldest first.
    pub(crate) fn versions(&self, purpose: Purpose) -> Vec<KekInfo> {
        self.read()
            .file
            .purposes
            .get(purpose.as_str())
            .map(|pk| {
                pk.versions
                    .iter()
                    .map(|e| KekInfo {
                        version: e.version,
                        created_at_ms: e.created_at_ms,
                        retired: e.sealed.is_none(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Versions older than the current one that are not retired yet: what
    /// the sweep still has to move keys off.
    pub(crate) fn old_live_versions(&self, purpose: Purpose) -> Vec<u32> {
        let current = self.current_version(purpose);
        self.versions(purpose)
            .into_iter()
            .filter(|v| !v.retired && v.version != current)
            .map(|v| v.version)
            .collect()
    }

    /// Adds a new current KEK version to each of `purposes`; new wraps use
    /// it at once. The database key is re-wrapped in the same keyring write
    /// (it is the only key the database KEK wraps), so old database KEK
    /// versions are retired right away. Answers the new versions.
    pub(crate) fn rotate(&self, purposes: &[Purpose]) -> Result<Vec<(Purpose, u32)>, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_ms();
        let mut file = self.read().file.clone();
        let mut new_keks = Vec::new();
        let mut out = Vec::new();
        let mut retire_db = Vec::new();
        for &p in purposes {
            let pk = file
                .purposes
                .get_mut(p.as_str())
                .ok_or(KeyError::UnknownPurpose(p.as_str().to_owned()))?;
            let version = pk
                .versions
                .iter()
                .map(|e| e.version)
                .max()
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| KeyError::BadKeyring {
                    path: self.0.path.display().to_string(),
                    message: format!("no {} key version number is left", p.as_str()),
                })?;
            let mut raw = Zeroizing::new([0u8; KEY_LEN]);
            self.0
                .rng
                .fill(&mut raw[..])
                .map_err(|_| KeyError::Random)?;
            let sealed = self.root().seal(kek_aad(p, version).as_bytes(), &raw[..])?;
            pk.versions.push(KekEntry {
                version,
                created_at_ms: now,
                sealed: Some(B64.encode(sealed)),
                retired_at_ms: None,
            });
            pk.current = version;
            let kek = aead_key(&raw[..])?;
            if p == Purpose::Database {
                // Both database keys move to the new KEK at once. A next
                // key already waiting is kept: the file may already be
                // re-encrypted with it (crash before it was made current).
                let db_key = self.database_key()?;
                file.database_key = wrap_with(&self.0.rng, &kek, p, version, &db_key)?.0;
                let next = match self.database_key_next()? {
                    Some(k) => k,
                    None => {
                        let mut k = DataKey([0; KEY_LEN]);
                        self.0.rng.fill(&mut k.0).map_err(|_| KeyError::Random)?;
                        k
                    }
                };
                file.database_key_next = Some(wrap_with(&self.0.rng, &kek, p, version, &next)?.0);
                for e in &mut pk.versions {
                    if e.version != version && e.sealed.is_some() {
                        e.sealed = None;
                        e.retired_at_ms = Some(now);
                        retire_db.push(e.version);
                    }
                }
            }
            new_keks.push(((p, version), kek));
            out.push((p, version));
        }
        self.store(&file)?;
        let mut st = self.write();
        st.file = file;
        for (k, kek) in new_keks {
            st.keks.insert(k, kek);
        }
        for v in retire_db {
            st.keks.remove(&(Purpose::Database, v));
        }
        Ok(out)
    }

    /// Retires `version` of `purpose`: its sealed KEK is erased from the
    /// keyring file, so keys still wrapped by it can no longer be opened.
    /// The caller has checked that none are stored. The current version is
    /// never retired.
    pub(crate) fn retire(&self, purpose: Purpose, version: u32) -> Result<bool, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = self.read().file.clone();
        let Some(pk) = file.purposes.get_mut(purpose.as_str()) else {
            return Ok(false);
        };
        if pk.current == version {
            return Ok(false);
        }
        let Some(e) = pk
            .versions
            .iter_mut()
            .find(|e| e.version == version && e.sealed.is_some())
        else {
            return Ok(false);
        };
        e.sealed = None;
        e.retired_at_ms = Some(now_ms());
        self.store(&file)?;
        let mut st = self.write();
        st.file = file;
        st.keks.remove(&(purpose, version));
        Ok(true)
    }

    /// When the root key was last rotated (`None`: never).
    pub(crate) fn root_info(&self) -> Option<RootInfo> {
        self.read().file.root
    }

    /// Where the root key in use comes from (never the key).
    pub(crate) fn root_source(&self) -> String {
        self.root().describe()
    }

    /// Whether the root key in use is the site's key file (a rotation then
    /// makes the new key itself; otherwise the operator supplies it).
    pub(crate) fn root_is_key_file(&self) -> bool {
        self.0.root_file.is_some()
    }

    /// Re-seals every KEK in the keyring under a new root key. The KEKs
    /// themselves, and so every wrapped data key, stay as they are; this
    /// process keeps working with them throughout.
    ///
    /// With the site's key file, `new` may be `None` (a random key is made)
    /// and the protocol is, each step durable (file and directory fsync'd)
    /// before the next:
    ///
    /// 1. write the new key to `keys/root.key.new` (mode 0600);
    /// 2. write the keyring re-sealed under the new key to
    ///    `keyring.json.tmp` and rename it over `keyring.json` (the
    ///    commit point);
    /// 3. rename `root.key.new` over `root.key`.
    ///
    /// A crash leaves `root.key.new` behind only between steps 1 and 3;
    /// [`Keyring::open`] then tries the keyring with `root.key`: if it opens,
    /// the crash was before the commit point and `root.key.new` is deleted
    /// (rolled back); else, if it opens with `root.key.new`, that file is
    /// renamed over `root.key` (rolled forward). So the site always opens.
    ///
    /// When the root key came from [`ROOT_KEY_ENV`] (or a caller), `new`
    /// is required, and only step 2 happens: the operator sets the variable
    /// to the new key before the next start.
    ///
    /// Answers the new root generation.
    pub(crate) fn rotate_root(&self, new: Option<LocalRoot>) -> Result<RootInfo, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = match (&self.0.root_file, new) {
            (_, Some(k)) => k,
            (Some(path), None) => LocalRoot::generate(path)?,
            (None, None) => return Err(KeyError::NewRootNeeded),
        };
        let new = match &self.0.root_file {
            Some(path) => new.described_as(format!("key file {}", path.display())),
            None => new.described_as(self.root().describe()),
        };
        let mut file = self.read().file.clone();
        // Re-seal every live KEK; the new key must differ from the old.
        {
            let old = self.root();
            for p in Purpose::ALL {
                let Some(pk) = file.purposes.get_mut(p.as_str()) else {
                    continue;
                };
                for e in &mut pk.versions {
                    let Some(sealed) = &e.sealed else { continue };
                    let blob = B64.decode(sealed).map_err(|_| KeyError::Malformed)?;
                    let aad = kek_aad(p, e.version);
                    if new.open(aad.as_bytes(), &blob).is_ok() {
                        return Err(KeyError::SameRoot);
                    }
                    let raw = old.open(aad.as_bytes(), &blob)?;
                    e.sealed = Some(B64.encode(new.seal(aad.as_bytes(), &raw)?));
                }
            }
        }
        let info = RootInfo {
            generation: file.root.map_or(0, |r| r.generation).saturating_add(1),
            rotated_at_ms: now_ms(),
        };
        file.root = Some(info);
        match &self.0.root_file {
            Some(root_path) => {
                let next = root_path.with_file_name(ROOT_NEW_FILE);
                if next.exists() {
                    return Err(KeyError::RotationPending(next.display().to_string()));
                }
                // Step 1.
                root::write_key_file(&next, &new)?;
                // Step 2, the commit point. On failure `root.key.new` stays:
                // whether the rename happened is for `open` to find out.
                self.store(&file)?;
                // Step 3. From the commit point the keyring on disk needs
                // the new key: this process uses it even if step 3 fails
                // (the next open then finishes it).
                let step3 = finish_root_file(&next, root_path, &new);
                self.install(new, file);
                step3?;
            }
            None => {
                self.store(&file)?;
                self.install(new, file);
            }
        }
        Ok(info)
    }

    fn install(&self, new: LocalRoot, file: KeyringFile) {
        *self
            .0
            .root
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Box::new(new);
        self.write().file = file;
    }

    /// Writes `file` as the keyring, unless another process re-sealed the
    /// file on disk under another root key since this one read it: then
    /// writing would put back KEKs sealed by a root key that is gone.
    fn store(&self, file: &KeyringFile) -> Result<(), KeyError> {
        let path = &self.0.path;
        let bytes = fs::read(path).map_err(|cause| KeyError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        let on_disk = parse_keyring(path, &bytes)?;
        if on_disk.root != self.read().file.root {
            return Err(KeyError::ChangedOnDisk(path.display().to_string()));
        }
        write_atomically(path, file)
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

/// Step 3 of a root rotation: `root.key.new` becomes `root.key`. Should
/// another process's open have rolled step 1 back meanwhile (it saw the
/// keyring still under the old key just before the commit point), the new
/// key is written again from memory first.
fn finish_root_file(next: &Path, root_path: &Path, new: &LocalRoot) -> Result<(), KeyError> {
    let io = |cause| KeyError::Io {
        path: root_path.display().to_string(),
        cause,
    };
    match fs::rename(next, root_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            root::write_key_file(next, new)?;
            fs::rename(next, root_path).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    root::sync_dir(root_path)
}

fn parse_keyring(path: &Path, bytes: &[u8]) -> Result<KeyringFile, KeyError> {
    serde_json::from_slice(bytes).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Every live KEK of `file`, opened with `root`.
fn unseal_all(
    path: &Path,
    file: &KeyringFile,
    root: &dyn RootKey,
) -> Result<HashMap<(Purpose, u32), LessSafeKey>, KeyError> {
    let mut keks = HashMap::new();
    for p in Purpose::ALL {
        let Some(pk) = file.purposes.get(p.as_str()) else {
            return Err(KeyError::BadKeyring {
                path: path.display().to_string(),
                message: format!("no {} keys", p.as_str()),
            });
        };
        let mut seen = std::collections::BTreeSet::new();
        for e in &pk.versions {
            // Rotation numbers the next version after the highest one.
            if e.version == 0 || e.version == u32::MAX || !seen.insert(e.version) {
                return Err(KeyError::BadKeyring {
                    path: path.display().to_string(),
                    message: format!(
                        "{} key version {} is out of range or repeated",
                        p.as_str(),
                        e.version
                    ),
                });
            }
            if let Some(sealed) = &e.sealed {
                let kek = unseal(root, p, e.version, sealed)?;
                keks.insert((p, e.version), kek);
            }
        }
        if !keks.contains_key(&(p, pk.current)) {
            return Err(KeyError::BadKeyring {
                path: path.display().to_string(),
                message: format!("the current {} key is missing", p.as_str()),
            });
        }
    }
    Ok(keks)
}

/// Finishes or rolls back a root key rotation a crash interrupted: see the
/// protocol on [`Keyring::rotate_root`]. Nothing to do without
/// `keys/root.key.new`.
fn recover_root_rotation(data_dir: &Path) -> Result<(), KeyError> {
    let dir = data_dir.join("keys");
    let next = dir.join(ROOT_NEW_FILE);
    if !next.exists() {
        return Ok(());
    }
    let ring = dir.join(KEYRING_FILE);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |cause: std::io::Error| KeyError::Io { path, cause }
    };
    let bytes = match fs::read(&ring) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No keyring: nothing was sealed by either key yet.
            fs::remove_file(&next).map_err(io(&next))?;
            return root::sync_dir(&next);
        }
        Err(e) => return Err(io(&ring)(e)),
    };
    let file = parse_keyring(&ring, &bytes)?;
    let old = root::site_root_file_only(data_dir)?;
    match unseal_all(&ring, &file, old.as_ref()) {
        Ok(_) => {
            // Crash before the commit point: roll back.
            fs::remove_file(&next).map_err(io(&next))?;
            tracing::warn!("an interrupted root key rotation was rolled back");
            return root::sync_dir(&next);
        }
        Err(KeyError::WrongRoot(_)) => {}
        Err(e) => return Err(e),
    }
    let new = root::read_root_file(&next)?;
    match unseal_all(&ring, &file, new.as_ref()) {
        Ok(_) => {
            // Crash after the commit point: roll forward.
            let root_path = dir.join(ROOT_FILE);
            fs::rename(&next, &root_path).map_err(io(&root_path))?;
            tracing::warn!("an interrupted root key rotation was completed");
            root::sync_dir(&root_path)
        }
        Err(KeyError::WrongRoot(_)) => Err(KeyError::WrongRoot(old.describe())),
        Err(e) => Err(e),
    }
}

fn aead_key(raw: &[u8]) -> Result<LessSafeKey, KeyError> {
    let k = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| KeyError::Malformed)?;
    Ok(LessSafeKey::new(k))
}

fn unseal(
    root: &dyn RootKey,
    purpose: Purpose,
    version: u32,
    sealed: &str,
) -> Result<LessSafeKey, KeyError> {
    let blob = B64.decode(sealed).map_err(|_| KeyError::Malformed)?;
    let raw = root.open(kek_aad(purpose, version).as_bytes(), &blob)?;
    aead_key(&raw)
}

fn wrap_with(
    rng: &SystemRandom,
    kek: &LessSafeKey,
    purpose: Purpose,
    version: u32,
    key: &DataKey,
) -> Result<WrappedKey, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let mut sealed = Zeroizing::new(key.0.to_vec());
    kek.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(purpose, version).as_bytes()),
        &mut *sealed,
    )
    .map_err(|_| KeyError::Random)?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    Ok(WrappedKey(format!(
        "{}:v{version}:{}",
        purpose.as_str(),
        B64.encode(blob)
    )))
}

/// A new keyring: version 1 of every KEK (derived from a local root key
/// as the single-version keyring did, so keys it wrapped still open;
/// random otherwise) and a random database key.
fn new_keyring(root: &dyn RootKey, rng: &SystemRandom) -> Result<State, KeyError> {
    let now = now_ms();
    let mut purposes = BTreeMap::new();
    let mut keks = HashMap::new();
    for p in Purpose::ALL {
        let raw = match root.legacy_kek(p) {
            Some(k) => k,
            None => {
                let mut k = Zeroizing::new([0u8; KEY_LEN]);
                rng.fill(&mut k[..]).map_err(|_| KeyError::Random)?;
                k
            }
        };
        let sealed = root.seal(kek_aad(p, 1).as_bytes(), &raw[..])?;
        purposes.insert(
            p.as_str().to_owned(),
            PurposeKeys {
                current: 1,
                versions: vec![KekEntry {
                    version: 1,
                    created_at_ms: now,
                    sealed: Some(B64.encode(sealed)),
                    retired_at_ms: None,
                }],
            },
        );
        keks.insert((p, 1), aead_key(&raw[..])?);
    }
    let mut db_key = DataKey([0; KEY_LEN]);
    rng.fill(&mut db_key.0).map_err(|_| KeyError::Random)?;
    let database_key = wrap_with(
        rng,
        &keks[&(Purpose::Database, 1)],
        Purpose::Database,
        1,
        &db_key,
    )?
    .0;
    Ok(State {
        file: KeyringFile {
            format: 1,
            purposes,
            database_key,
            database_key_next: None,
            root: None,
        },
        keks,
    })
}

/// Writes the keyring so that a crash leaves either the old or the new
/// file, never a torn one: temporary file (0600), fsync, rename, fsync dir.
fn write_atomically(path: &Path, file: &KeyringFile) -> Result<(), KeyError> {
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    jumpgate_net::fs::write_private_atomic(path, &text).map_err(io)
}

/// Like [`write_atomically`], but only if no keyring exists yet (`false`:
/// one does). Two processes starting a new site agree on one keyring.
fn create_atomically(path: &Path, file: &KeyringFile) -> Result<bool, KeyError> {
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    let mut tag = [0u8; 8];
    SystemRandom::new()
        .fill(&mut tag)
        .map_err(|_| KeyError::Random)?;
    let tmp = path.with_extension(format!("json.new-{}", u64::from_le_bytes(tag)));
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    root::write_new_private(&tmp, &text)?;
    // link(2) fails if the target exists, unlike rename(2).
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

fn aad(purpose: Purpose, version: u32) -> String {
    format!("jumpgate:{}:v{version}", purpose.as_str())
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
