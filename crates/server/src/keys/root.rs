//! Where the root key comes from. The root key only ever seals and opens
//! the key-encryption keys in the keyring file; it never touches data.
//!
//! [`RootKey`] is the plug-in point: a key file (the default, created on a
//! new site) and an environment variable are implemented here. A cloud KMS
//! (AWS KMS `Encrypt`/`Decrypt`, Azure Key Vault `wrapKey`/`unwrapKey`,
//! Vault Transit, an HSM over PKCS#11) implements the same two calls, and
//! the root key then never leaves it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use zeroize::Zeroizing;

use super::{KEY_LEN, KeyError, Purpose};

/// The environment variable holding the root key (64 hex digits, or the
/// base64 of 32 bytes). When set it wins over the key file.
pub const ROOT_KEY_ENV: &str = "JUMPGATE_ROOT_KEY";

/// Seals and opens key-encryption keys. Implementations must be
/// authenticated encryption: `open` fails on any altered byte and on the
/// wrong `aad`.
pub(crate) trait RootKey: Send + Sync {
    /// Where the key comes from, for error messages (never the key).
    fn describe(&self) -> String;
    /// Encrypts `plain`, bound to `aad`.
    ///
    /// # Errors
    /// The key source failed.
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Decrypts what `seal` made with the same `aad`.
    ///
    /// # Errors
    /// Not sealed by this key, or altered.
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// Version-1 KEKs of sites made before the keyring file existed were
    /// derived from a local root key (HKDF); `None` for keys that cannot
    /// derive (a KMS), whose first KEKs are random.
    fn legacy_kek(&self, _purpose: Purpose) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        None
    }
}

/// A root key held in this process's memory (from a file or the environment).
pub(crate) struct LocalRoot {
    key: Zeroizing<[u8; KEY_LEN]>,
    from: String,
    rng: SystemRandom,
}

impl LocalRoot {
    fn new(key: Zeroizing<[u8; KEY_LEN]>, from: String) -> Self {
        Self {
            key,
            from,
            rng: SystemRandom::new(),
        }
    }

    /// A fresh random root key that will live in `path` (for messages).
    ///
    /// # Errors
    /// The system random generator failed.
    pub(crate) fn generate(path: &Path) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| KeyError::Random)?;
        Ok(Self::new(key, format!("key file {}", path.display())))
    }

    /// The new root key an operator supplies for a rotation: a file of mode
    /// 0600 or stricter holding either the 32 raw bytes (like `root.key`)
    /// or the text [`ROOT_KEY_ENV`] takes (64 hex digits or base64).
    ///
    /// # Errors
    /// The file cannot be read, is readable by others, or holds no key.
    pub(crate) fn from_new_key_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(fs::read(path).map_err(|cause| KeyError::Io {
            path: path.display().to_string(),
            cause,
        })?);
        let mode = fs::metadata(path)
            .map_err(|cause| KeyError::Io {
                path: path.display().to_string(),
                cause,
            })?
            .permissions()
            .mode();
        let bad = || KeyError::BadNewKeyFile(path.display().to_string());
        if mode & 0o077 != 0 {
            return Err(bad());
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() == KEY_LEN {
            key.copy_from_slice(&bytes);
        } else {
            let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
            let parsed = Self::from_env_value(text).map_err(|_| bad())?;
            key.copy_from_slice(&parsed.key[..]);
        }
        if key.iter().all(|b| *b == 0) {
            return Err(bad());
        }
        Ok(Self::new(key, format!("new key file {}", path.display())))
    }

    /// The same key, described as coming from `from` (never the key).
    pub(crate) fn described_as(mut self, from: String) -> Self {
        self.from = from;
        self
    }

    fn aead(&self) -> Result<LessSafeKey, KeyError> {
        let k = UnboundKey::new(&AES_256_GCM, &self.key[..]).map_err(|_| KeyError::Random)?;
        Ok(LessSafeKey::new(k))
    }

    /// A root key from the text of [`ROOT_KEY_ENV`].
    ///
    /// # Errors
    /// Not 64 hex digits or base64 of exactly 32 bytes.
    pub(crate) fn from_env_value(value: &str) -> Result<Self, KeyError> {
        let v = value.trim();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        let ok = if v.len() == 2 * KEY_LEN && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, out) in key.iter_mut().enumerate() {
                *out = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad_env())?;
            }
            true
        } else {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(v))
                    .map_err(|_| bad_env())?,
            );
            if decoded.len() == KEY_LEN {
                key.copy_from_slice(&decoded);
                true
            } else {
                false
            }
        };
        if !ok || key.iter().all(|b| *b == 0) {
            return Err(bad_env());
        }
        Ok(Self::new(
            key,
            format!("environment variable {ROOT_KEY_ENV}"),
        ))
    }
}

fn bad_env() -> KeyError {
    KeyError::BadRootKey(format!(
        "{ROOT_KEY_ENV} must be 64 hex digits or the base64 of 32 random bytes (e.g. `openssl rand -hex 32`)"
    ))
}

impl RootKey for LocalRoot {
    fn describe(&self) -> String {
        self.from.clone()
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buf = plain.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KeyError::Malformed);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let n = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| KeyError::WrongRoot(self.describe()))?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    fn legacy_kek(&self, purpose: Purpose) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        // What the single-version keyring did: HKDF-SHA256(root, info).
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"jumpgate kek");
        let prk = salt.extract(&self.key[..]);
        let info = super::aad(purpose, 1);
        let info = [info.as_bytes()];
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        prk.expand(&info, hkdf::HKDF_SHA256)
            .ok()?
            .fill(&mut out[..])
            .ok()?;
        Some(out)
    }
}

/// The site's root key: [`ROOT_KEY_ENV`] when set, else the key file
/// `<data dir>/keys/root.key`, created only for a new site (no keyring yet).
///
/// # Errors
/// The variable is malformed; the file is missing for an existing site, has
/// the wrong size or is readable by others.
pub(crate) fn site_root(data_dir: &Path) -> Result<Box<dyn RootKey>, KeyError> {
    if let Ok(v) = std::env::var(ROOT_KEY_ENV) {
        return Ok(Box::new(LocalRoot::from_env_value(&v)?));
    }
    site_root_file_only(data_dir)
}

/// The root key file of `data_dir` (see [`site_root`]).
pub(crate) fn site_root_file_only(data_dir: &Path) -> Result<Box<dyn RootKey>, KeyError> {
    let dir = data_dir.join("keys");
    let path = dir.join("root.key");
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    jumpgate_net::fs::create_private_dir(&dir).map_err(io)?;
    match fs::read(&path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            read_root(&path, &bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join(super::KEYRING_FILE).exists() {
                return Err(KeyError::MissingRoot(path.display().to_string()));
            }
            create_root(&path)
        }
        Err(e) => Err(io(e)),
    }
}

/// The root key in the key file `path` (32 raw bytes, mode 0600).
///
/// # Errors
/// Unreadable, the wrong size, or readable by others.
pub(crate) fn read_root_file(path: &Path) -> Result<Box<dyn RootKey>, KeyError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    })?);
    read_root(path, &bytes)
}

/// Writes `key` to the new file `path` (mode 0600), fsyncs it and its
/// directory. Fails if `path` exists.
///
/// # Errors
/// The file cannot be created or written.
pub(crate) fn write_key_file(path: &Path, key: &LocalRoot) -> Result<(), KeyError> {
    write_new_private(path, &key.key[..])?;
    sync_dir(path)
}

/// Creates `path` (it must not exist) with mode 0600 from the start, writes
/// `bytes` and fsyncs the file (not its directory).
///
/// # Errors
/// The file exists or cannot be written.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
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
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// fsyncs the directory holding `path`, so a create or rename in it lasts.
pub(crate) fn sync_dir(path: &Path) -> Result<(), KeyError> {
    jumpgate_net::fs::sync_parent(path).map_err(|cause| KeyError::Io {
        path: path.parent().unwrap_or(path).display().to_string(),
        cause,
    })
}

fn read_root(path: &Path, bytes: &[u8]) -> Result<Box<dyn RootKey>, KeyError> {
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
    if mode & 0o077 != 0 || bytes.len() != KEY_LEN {
        return Err(bad());
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(bytes);
    Ok(Box::new(LocalRoot::new(
        key,
        format!("key file {}", path.display()),
    )))
}

fn create_root(path: &Path) -> Result<Box<dyn RootKey>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut key[..])
        .map_err(|_| KeyError::Random)?;
    write_new_private(path, &key[..])?;
    Ok(Box::new(LocalRoot::new(
        key,
        format!("key file {}", path.display()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_validated() {
        // The decoded bytes are the key, not merely "something parsed".
        let hex = "0123456789abcdef".repeat(4);
        let expected: Vec<u8> = (0..32)
            .map(|i| [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef][i % 8])
            .collect();
        assert_eq!(
            &LocalRoot::from_env_value(&hex).unwrap().key[..],
            &expected[..]
        );
        assert_eq!(
            &LocalRoot::from_env_value(&hex.to_uppercase()).unwrap().key[..],
            &expected[..]
        );
        let random: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(5))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&random);
        assert_eq!(
            &LocalRoot::from_env_value(&b64).unwrap().key[..],
            &random[..]
        );
        // Unpadded base64 and surrounding white space (a pasted value) too.
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&random);
        assert_eq!(
            &LocalRoot::from_env_value(&format!(" {unpadded}\n"))
                .unwrap()
                .key[..],
            &random[..]
        );
        for bad in ["", "abc", &"ab".repeat(31), &"00".repeat(32), "zz"] {
            let err = LocalRoot::from_env_value(bad).err().unwrap().to_string();
            assert!(err.contains(ROOT_KEY_ENV), "{err}");
        }
    }

    #[test]
    fn sealed_kek_opens_only_with_the_same_key_and_aad() {
        let a = LocalRoot::from_env_value(&"11".repeat(32)).unwrap();
        let b = LocalRoot::from_env_value(&"22".repeat(32)).unwrap();
        let s = a.seal(b"x", b"secret kek").unwrap();
        assert_eq!(&a.open(b"x", &s).unwrap()[..], b"secret kek");
        assert!(matches!(a.open(b"y", &s), Err(KeyError::WrongRoot(_))));
        assert!(matches!(b.open(b"x", &s), Err(KeyError::WrongRoot(_))));
    }
}
