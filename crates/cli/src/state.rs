//! The login state file, `$JG_HOME/session.json` (default
//! `$HOME/.config/jumpgate/session.json`). It holds a bearer token, so the
//! directory is 0700 and the file 0600, and the token never reaches a log.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "session.json";

/// What `jg login` remembers for the following commands.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// `https://host:port`.
    pub(crate) server: String,
    /// Pinned SHA-256 of the gateway's CA, lowercase hex; absent when the
    /// system roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_fingerprint: Option<String>,
    pub(crate) username: String,
    pub(crate) token: String,
    pub(crate) expires_at: String,
    pub(crate) role: String,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("server", &self.server)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("username", &self.username)
            .field("token", &"MASKED")
            .field("expires_at", &self.expires_at)
            .field("role", &self.role)
            .finish()
    }
}

/// The state directory: `jg_home` (the `JG_HOME` variable) if set and
/// non-empty, else `$HOME/.config/jumpgate`.
pub(crate) fn dir(jg_home: Option<OsString>, home: Option<OsString>) -> anyhow::Result<PathBuf> {
    if let Some(d) = jg_home.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("jumpgate")),
        None => bail!("cannot locate the state directory: set JG_HOME or HOME"),
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the state; `None` when there is none.
pub(crate) fn load(dir: &Path) -> anyhow::Result<Option<State>> {
    let p = path(dir);
    let text = match fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let state = serde_json::from_slice(&text)
        .with_context(|| format!("{} is corrupt; run jg login again", p.display()))?;
    Ok(Some(state))
}

/// Writes the state atomically: a 0600 temporary file, fsynced, renamed over
/// the old one, so a crash never leaves a half-written or world-readable token.
pub(crate) fn save(dir: &Path, state: &State) -> anyhow::Result<()> {
    jumpgate_net::fs::create_private_dir(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let final_path = path(dir);
    let mut json = serde_json::to_vec_pretty(state).context("encoding the state")?;
    json.push(b'\n');
    jumpgate_net::fs::write_private_atomic(&final_path, &json)
        .with_context(|| format!("writing {}", final_path.display()))
}

/// Deletes the state; `false` if there was none.
pub(crate) fn remove(dir: &Path) -> anyhow::Result<bool> {
    let p = path(dir);
    match fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("deleting {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sample() -> State {
        State {
            server: "https://gw.example:8443".into(),
            ca_fingerprint: Some("ab".repeat(32)),
            username: "alice".into(),
            token: "secret-token".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
            role: "technician".into(),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn state_roundtrips_with_private_permissions() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("nested").join("jg");
        assert_eq!(load(&dir).unwrap(), None);

        save(&dir, &sample()).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(sample()));
        assert_eq!(mode(&dir.join("session.json")), 0o600);
        assert_eq!(mode(&dir), 0o700);

        let mut other = sample();
        other.ca_fingerprint = None;
        other.username = "bob".into();
        save(&dir, &other).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(other));
        let text = fs::read_to_string(dir.join("session.json")).unwrap();
        assert!(!text.contains("ca_fingerprint"), "{text}");
        // Only the final file remains.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        assert!(remove(&dir).unwrap());
        assert!(!remove(&dir).unwrap());
        assert_eq!(load(&dir).unwrap(), None);
    }

    #[test]
    fn existing_loose_permissions_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let file = root.path().join("session.json");
        fs::write(&file, "{}").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        save(root.path(), &sample()).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(root.path()), 0o700);
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("session.json"), "{not json").unwrap();
        let err = load(root.path()).unwrap_err();
        assert!(format!("{err:#}").contains("jg login"), "{err:#}");
    }

    #[test]
    fn jg_home_wins_over_home() {
        assert_eq!(
            dir(Some("/tmp/jg".into()), Some("/home/a".into())).unwrap(),
            PathBuf::from("/tmp/jg")
        );
        assert_eq!(
            dir(None, Some("/home/a".into())).unwrap(),
            PathBuf::from("/home/a/.config/jumpgate")
        );
        assert_eq!(
            dir(Some("".into()), Some("/home/a".into())).unwrap(),
            PathBuf::from("/home/a/.config/jumpgate")
        );
        assert!(dir(None, None).is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let dbg = format!("{:?}", sample());
        // The other fields are shown (the check can fail), the token is not.
        assert!(dbg.contains("alice") && dbg.contains("gw.example"), "{dbg}");
        assert!(!dbg.contains("secret-token"), "{dbg}");
    }
}
