//! What an enrolled agent keeps in its state directory:
//! `agent.key` (Ed25519 PKCS#8, mode 0600) and `agent.json` (identity).

use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The agent's enrolled identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub agent_id: String,
    pub endpoint: String,
    pub group: String,
    /// The gateway it enrolled with, reused when `--server` is not given.
    pub server: String,
    /// The pinned fingerprint it enrolled with, if any.
    #[serde(default)]
    pub ca_fingerprint: Option<String>,
    /// SHA-256 (hex) of the re-enrollment token this agent last used, so a
    /// restart with the same `--reenroll` token does not try it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reenrolled_with: Option<String>,
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::State {
        path: path.display().to_string(),
        cause: source,
    }
}

impl StateDir {
    /// Opens (creating, mode 0700) the state directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        jumpgate_net::fs::create_private_dir(dir).map_err(io(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("agent.key")
    }

    fn identity_path(&self) -> PathBuf {
        self.dir.join("agent.json")
    }

    /// The enrolled identity and key, if enrolled.
    ///
    /// # Errors
    /// Files exist but are unreadable or corrupt.
    pub fn load(&self) -> Result<Option<(Identity, Ed25519KeyPair)>, AgentError> {
        let id_path = self.identity_path();
        if !id_path.exists() {
            return Ok(None);
        }
        let text = fs::read(&id_path).map_err(io(&id_path))?;
        let identity: Identity =
            serde_json::from_slice(&text).map_err(|e| AgentError::Corrupt {
                path: id_path.display().to_string(),
                reason: e.to_string(),
            })?;
        let key_path = self.key_path();
        let der = fs::read(&key_path).map_err(io(&key_path))?;
        let key = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| AgentError::Corrupt {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((identity, key)))
    }

    /// Creates the key pair used to enroll (kept until enrollment succeeds, so
    /// a failed enrollment can be retried without a new key).
    ///
    /// # Errors
    /// The key cannot be generated or written.
    pub fn pending_key(&self) -> Result<Ed25519KeyPair, AgentError> {
        let path = self.key_path();
        if let Ok(der) = fs::read(&path)
            && let Ok(k) = Ed25519KeyPair::from_pkcs8(&der)
        {
            return Ok(k);
        }
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AgentError::KeyGeneration)?;
        write_private(&path, doc.as_ref())?;
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| AgentError::KeyGeneration)
    }

    fn replacement_key_path(&self) -> PathBuf {
        self.dir.join("agent.key.new")
    }

    /// The new key pair for a re-enrollment, kept beside the current key
    /// until the gateway accepted it (so a failed attempt can be retried
    /// with the same key, and the current key keeps working meanwhile).
    ///
    /// # Errors
    /// The key cannot be generated or written.
    pub fn replacement_key(&self) -> Result<Ed25519KeyPair, AgentError> {
        let path = self.replacement_key_path();
        if let Ok(der) = fs::read(&path)
            && let Ok(k) = Ed25519KeyPair::from_pkcs8(&der)
        {
            return Ok(k);
        }
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AgentError::KeyGeneration)?;
        write_private(&path, doc.as_ref())?;
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| AgentError::KeyGeneration)
    }

    /// The gateway accepted the replacement key: it becomes the key.
    ///
    /// # Errors
    /// The file cannot be renamed.
    pub fn adopt_replacement_key(&self) -> Result<(), AgentError> {
        let (from, to) = (self.replacement_key_path(), self.key_path());
        fs::rename(&from, &to).map_err(io(&to))?;
        // The rename itself must survive a crash.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// Records a successful enrollment.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, identity: &Identity) -> Result<(), AgentError> {
        let json = serde_json::to_vec_pretty(identity).unwrap_or_default();
        write_private(&self.identity_path(), &json)
    }
}

/// The public half, as the enrollment API wants it.
pub fn public_key_b64(key: &Ed25519KeyPair) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), AgentError> {
    jumpgate_net::fs::write_private_atomic(path, data).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_and_identity_persist_privately() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(&dir.path().join("s")).unwrap();
        assert!(sd.load().unwrap().is_none());
        let k1 = sd.pending_key().unwrap();
        let k2 = sd.pending_key().unwrap();
        assert_eq!(
            k1.public_key().as_ref(),
            k2.public_key().as_ref(),
            "retry reuses the key"
        );
        let id = Identity {
            agent_id: "ep_1".into(),
            endpoint: "web".into(),
            group: "default".into(),
            server: "https://127.0.0.1:1".into(),
            ca_fingerprint: None,
            reenrolled_with: None,
        };
        sd.save(&id).unwrap();
        let (loaded, key) = sd.load().unwrap().unwrap();
        assert_eq!(loaded, id);
        assert_eq!(key.public_key().as_ref(), k1.public_key().as_ref());
        let mode = fs::metadata(dir.path().join("s/agent.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_replacement_key_is_kept_apart_until_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        let old = sd.pending_key().unwrap();
        let new = sd.replacement_key().unwrap();
        assert_ne!(old.public_key().as_ref(), new.public_key().as_ref());
        // A retry reuses the replacement; the current key is untouched.
        let again = sd.replacement_key().unwrap();
        assert_eq!(again.public_key().as_ref(), new.public_key().as_ref());
        assert_eq!(
            sd.pending_key().unwrap().public_key().as_ref(),
            old.public_key().as_ref()
        );
        sd.adopt_replacement_key().unwrap();
        assert_eq!(
            sd.pending_key().unwrap().public_key().as_ref(),
            new.public_key().as_ref()
        );
        assert!(!dir.path().join("agent.key.new").exists());
        let mode = fs::metadata(dir.path().join("agent.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("agent.json"), b"{nope").unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains("agent.json"), "{err}");
    }
}
