//! Keys for data at rest: a root key wraps one key-encryption key (KEK) per
//! [`Purpose`], and each KEK wraps data keys (one per recording, per secret,
//! ...). Only wrapped data keys are ever stored next to the data.
//!
//! The root key lives in `<data dir>/keys/root.key` (mode 0600, in a 0700
//! directory), created on first start. Wrapping is AES-256-GCM with a random
//! 96-bit nonce and the purpose and KEK version as associated data, so a
//! wrapped key moved to another purpose does not unwrap.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

/// Length of every key (AES-256).
pub(crate) const KEY_LEN: usize = 32;

/// What a key-encryption key protects.
#[allow(
    dead_code,
    reason = "the database, vault and blob keys arrive with issue #6"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Purpose {
    Database,
    Recordings,
    Vault,
    Blobs,
}

impl Purpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Recordings => "recordings",
            Self::Vault => "vault",
            Self::Blobs => "blobs",
        }
    }
}

/// Why a key could not be loaded, made or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("key file {path} must be {KEY_LEN} bytes and mode 0600 or stricter")]
    BadKeyFile { path: String },
    #[error("wrapped key is malformed")]
    Malformed,
    #[error("wrapped key does not open with the {0} key (wrong key, or altered)")]
    Unwrap(&'static str),
    #[error("the system random generator failed")]
    Random,
}

/// A plaintext data key. Never logged; overwritten on drop.
pub(crate) struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
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
}

impl From<String> for WrappedKey {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The site's keys, shared by every component that stores data.
#[derive(Clone)]
pub(crate) struct Keyring(Arc<Inner>);

struct Inner {
    root: [u8; KEY_LEN],
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// Current KEK version (rotation adds versions).
const KEK_VERSION: u32 = 1;

impl Keyring {
    /// Loads the root key of `data_dir`, creating it on first use.
    pub(crate) fn open(data_dir: &Path) -> Result<Self, KeyError> {
        let dir = data_dir.join("keys");
        let path = dir.join("root.key");
        let io = |cause| KeyError::Io {
            path: path.display().to_string(),
            cause,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let rng = SystemRandom::new();
        let root = match fs::read(&path) {
            Ok(bytes) => read_root(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_root(&path, &rng)?,
            Err(e) => return Err(io(e)),
        };
        Ok(Self(Arc::new(Inner { root, rng })))
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
        let kek = self.kek(purpose, KEK_VERSION)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.0.rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut sealed = key.0.to_vec();
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(purpose, KEK_VERSION).as_bytes()),
            &mut sealed,
        )
        .map_err(|_| KeyError::Random)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(WrappedKey(format!(
            "{}:v{KEK_VERSION}:{}",
            purpose.as_str(),
            B64.encode(blob)
        )))
    }

    /// The data key inside `wrapped`.
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
        let kek = self.kek(purpose, version)?;
        let mut buf = sealed.to_vec();
        let plain = kek
            .open_in_place(nonce, Aad::from(aad(purpose, version).as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unwrap(purpose.as_str()))?;
        let mut key = DataKey([0; KEY_LEN]);
        key.0.copy_from_slice(plain);
        buf.fill(0);
        Ok(key)
    }

    /// The KEK of `purpose` at `version`, derived from the root key.
    fn kek(&self, purpose: Purpose, version: u32) -> Result<LessSafeKey, KeyError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"jumpgate kek");
        let prk = salt.extract(&self.0.root);
        let info = aad(purpose, version);
        let info = [info.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| KeyError::Random)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

fn aad(purpose: Purpose, version: u32) -> String {
    format!("jumpgate:{}:v{version}", purpose.as_str())
}

fn read_root(path: &Path, bytes: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
    let bad = || KeyError::BadKeyFile {
        path: path.display().to_string(),
    };
    let mode = fs::metadata(path)
        .map_err(|cause| KeyError::Io {
            path: path.display().to_string(),
            cause,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(bad());
    }
    bytes.try_into().map_err(|_| bad())
}

fn create_root(path: &PathBuf, rng: &SystemRandom) -> Result<[u8; KEY_LEN], KeyError> {
    let mut root = [0u8; KEY_LEN];
    rng.fill(&mut root).map_err(|_| KeyError::Random)?;
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(&root).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_round_trip_and_stay_bound_to_their_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let (key, wrapped) = ring.new_data_key(Purpose::Recordings).unwrap();
        assert!(wrapped.as_str().starts_with("recordings:v1:"));
        let back = ring.unwrap(Purpose::Recordings, &wrapped).unwrap();
        assert_eq!(back.as_bytes(), key.as_bytes());
        assert!(matches!(
            ring.unwrap(Purpose::Vault, &wrapped),
            Err(KeyError::Unwrap("vault"))
        ));

        // Reopening finds the same root key.
        let again = Keyring::open(dir.path()).unwrap();
        let back = again.unwrap(Purpose::Recordings, &wrapped).unwrap();
        assert_eq!(back.as_bytes(), key.as_bytes());

        // A flipped bit is refused, not silently accepted.
        let mut s = wrapped.as_str().to_owned();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.unwrap(Purpose::Recordings, &WrappedKey(s)).is_err());
    }

    #[test]
    fn another_sites_root_key_does_not_unwrap() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (_, wrapped) = Keyring::open(a.path())
            .unwrap()
            .new_data_key(Purpose::Recordings)
            .unwrap();
        let other = Keyring::open(b.path()).unwrap();
        assert!(matches!(
            other.unwrap(Purpose::Recordings, &wrapped),
            Err(KeyError::Unwrap(_))
        ));
    }

    #[test]
    fn a_readable_root_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::open(dir.path()).unwrap();
        let path = dir.path().join("keys/root.key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keyring::open(dir.path()),
            Err(KeyError::BadKeyFile { .. })
        ));
    }
}
