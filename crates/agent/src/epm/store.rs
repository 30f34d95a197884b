//! What the agent keeps for EPM under its state directory, in `epm/`
//! (mode 0700, every file 0600, each replaced atomically: write a
//! temporary file, fsync, rename, fsync the directory):
//!
//! - `current.jgpol`: the last bundle accepted, used after a restart even
//!   with the gateway unreachable (verified again when loaded);
//! - `trust.json`: the signing keys that bundle was verified with and the
//!   endpoint groups it was compiled for;
//! - `accepted`: the highest bundle version ever accepted, in decimal
//!   (rollback protection: a lower version is refused even if signed);
//! - `code.key`: this endpoint's offline-code secret (32 raw bytes);
//! - `events/`: the event journal ([`super::journal`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jumpgate_proto::epm::TrustedKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Why the EPM store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("EPM state {path}: {cause}")]
    Io {
        path: String,
        #[source]
        cause: io::Error,
    },
    #[error("EPM state {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |cause| StoreError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// The keys and groups that go with the current bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub groups: Vec<String>,
}

/// The `epm/` directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`, created (mode 0700) with its first file: an
    /// agent that never had a policy leaves no trace in its state directory.
    ///
    /// # Errors
    /// None yet; kept for a store that checks `dir` when opened.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the event journal lives.
    pub fn events_dir(&self) -> PathBuf {
        self.dir.join("events")
    }

    fn read_opt(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        jumpgate_net::fs::create_private_dir(&self.dir).map_err(io_at(&self.dir))?;
        let path = self.dir.join(name);
        jumpgate_net::fs::write_private_atomic(&path, data).map_err(io_at(&path))
    }

    fn corrupt(&self, name: &str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.dir.join(name).display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The highest version ever accepted.
    ///
    /// # Errors
    /// Unreadable or not a number.
    pub fn accepted(&self) -> Result<Option<u64>, StoreError> {
        match self.read_opt("accepted")? {
            None => Ok(None),
            Some(b) => String::from_utf8_lossy(&b)
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| self.corrupt("accepted", e)),
        }
    }

    /// The current bundle's bytes and what goes with them.
    ///
    /// # Errors
    /// Unreadable or corrupt files.
    pub fn current(&self) -> Result<Option<(Vec<u8>, Trust)>, StoreError> {
        let Some(bytes) = self.read_opt("current.jgpol")? else {
            return Ok(None);
        };
        let trust = match self.read_opt("trust.json")? {
            Some(t) => serde_json::from_slice(&t).map_err(|e| self.corrupt("trust.json", e))?,
            None => Trust::default(),
        };
        Ok(Some((bytes, trust)))
    }

    /// Makes `bytes` (verified, version `version`) the current bundle. The
    /// bundle is written before the version, so a crash in between leaves
    /// a bundle newer than `accepted`, which still loads.
    ///
    /// # Errors
    /// A write failed; the previous bundle may still be current.
    pub fn accept(&self, version: u64, bytes: &[u8], trust: &Trust) -> Result<(), StoreError> {
        self.save_trust(trust)?;
        self.write("current.jgpol", bytes)?;
        self.raise_accepted(version)
    }

    /// Records `version` as accepted unless a higher one already is.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn raise_accepted(&self, version: u64) -> Result<(), StoreError> {
        if self.accepted()?.is_some_and(|a| a >= version) {
            return Ok(());
        }
        self.write("accepted", format!("{version}\n").as_bytes())
    }

    /// Replaces the keys and groups of the current bundle (a notice for
    /// the same bundle with new groups).
    ///
    /// # Errors
    /// The file could not be written.
    pub fn save_trust(&self, trust: &Trust) -> Result<(), StoreError> {
        self.write(
            "trust.json",
            &serde_json::to_vec_pretty(trust).unwrap_or_default(),
        )
    }

    /// The offline-code secret.
    ///
    /// # Errors
    /// Unreadable.
    pub fn code_secret(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.read_opt("code.key")?.map(Zeroizing::new))
    }

    /// Saves the offline-code secret (when it changed).
    ///
    /// # Errors
    /// The file could not be written.
    pub fn save_code_secret(&self, secret: &[u8]) -> Result<(), StoreError> {
        if self
            .code_secret()?
            .is_some_and(|old| old.as_slice() == secret)
        {
            return Ok(());
        }
        self.write("code.key", secret)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_store_keeps_the_bundle_its_trust_the_version_and_the_secret_privately() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("epm");
        let store = Store::open(&dir).unwrap();
        assert!(!dir.exists(), "created with its first file");
        assert_eq!(store.accepted().unwrap(), None);
        assert!(store.current().unwrap().is_none());
        assert!(store.code_secret().unwrap().is_none());
        let trust = Trust {
            keys: vec![TrustedKey {
                id: "pk_1".into(),
                public_key: "AAAA".into(),
            }],
            groups: vec!["linux".into()],
        };
        store.accept(3, b"bundle-3", &trust).unwrap();
        store.save_code_secret(&[7; 32]).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.accepted().unwrap(), Some(3));
        let (bytes, t) = store.current().unwrap().unwrap();
        assert_eq!(bytes, b"bundle-3");
        assert_eq!(t, trust);
        assert_eq!(store.code_secret().unwrap().unwrap().as_slice(), &[7; 32]);
        // The accepted version never goes down.
        store.raise_accepted(2).unwrap();
        assert_eq!(store.accepted().unwrap(), Some(3));
        for name in ["accepted", "current.jgpol", "trust.json", "code.key"] {
            let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::write(dir.join("accepted"), b"x").unwrap();
        assert!(matches!(store.accepted(), Err(StoreError::Corrupt { .. })));
    }
}
