//! The Package Manager on the wire (issue #15): what the gateway tells an
//! agent to install or remove (system stream bodies, JSON), what the agent
//! answers, and its inventory of installed packages.
//!
//! ```text
//! gateway                                                  agent
//!   | system stream `packages`: PackageNotice -------------> |  per task: already so? else fetch the
//!   |                                                        |  manifest + .deb from blob storage,
//!   |                                                        |  verify, dpkg -i / dpkg -r
//!   | <------------------- PackageAck {results, inventory}   |
//!   | <------------------ Control::PackagesChanged{revision} |  dpkg's status file changed
//!   | system stream `package-inventory`: InventoryRequest -> |
//!   | <-------------------------------------- InventoryReport|  a diff since the gateway's revision,
//!   |                                                        |  or the full list
//! ```
//!
//! Notices carry URLs and hashes, never packages: the agent downloads the
//! manifest and the `.deb` directly from blob storage (or the gateway's
//! signed route for a local store) and trusts neither until the manifest's
//! signature (by a key of [`PackageNotice::keys`]) and the hashes check.

use serde::{Deserialize, Serialize};

use crate::epm::TrustedKey;

/// Largest installer output an agent reports per task (bytes of UTF-8,
/// the end kept when cut).
pub const MAX_OUTPUT: usize = 16 * 1024;

/// Body of the `packages` system stream: the desired state of this
/// endpoint's assigned packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageNotice {
    /// The signing keys manifests must be signed by (the EPM keys).
    pub keys: Vec<TrustedKey>,
    pub tasks: Vec<PackageTask>,
    /// The inventory revision the gateway holds for this agent (the
    /// acknowledgement's inventory is a diff from it when the agent still
    /// knows it).
    #[serde(default)]
    pub inventory_since: Option<u64>,
}

/// What to do about one package name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskAction {
    /// Installed at [`PackageTask::version`] (upgraded or downgraded to
    /// it when another version is installed).
    Install,
    /// Not installed.
    Remove,
}

impl TaskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Remove => "remove",
        }
    }
}

/// One package's desired state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageTask {
    /// The package name (`Package:`).
    pub name: String,
    pub action: TaskAction,
    /// The version to have (install only).
    #[serde(default)]
    pub version: Option<String>,
    /// The uploads of that version, one per architecture (install only):
    /// the agent takes its own architecture's, else `all`'s.
    #[serde(default)]
    pub candidates: Vec<PackageRef>,
}

/// Where one uploaded `.deb` and its manifest are, and what they must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRef {
    /// `pkg_…`.
    pub id: String,
    pub architecture: String,
    /// SHA-256 of the `.deb` (lowercase hex); the manifest says it too.
    pub sha256: String,
    pub size: u64,
    /// The manifest: a signed blob-storage URL, or a relative `/packages/…`
    /// path on the gateway this agent is connected to.
    pub manifest_url: String,
    /// SHA-256 of the manifest file.
    pub manifest_sha256: String,
    /// The `.deb`, likewise.
    pub url: String,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskOutcome {
    /// Installed (or upgraded/downgraded) now.
    Installed,
    /// Removed now.
    Removed,
    /// Already as asked: nothing done.
    Unchanged,
    /// The download or its verification failed: nothing was touched.
    Refused,
    /// The installer failed (its output says why); see
    /// [`TaskResult::message`] for what was rolled back.
    Failed,
}

impl TaskOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Removed => "removed",
            Self::Unchanged => "unchanged",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// What became of one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub name: String,
    pub action: TaskAction,
    /// The version installed afterwards (`None`: not installed).
    #[serde(default)]
    pub version: Option<String>,
    pub outcome: TaskOutcome,
    /// A line for people: what was done, or why not.
    #[serde(default)]
    pub message: String,
    /// The installer's output (stdout and stderr), at most [`MAX_OUTPUT`].
    #[serde(default)]
    pub output: String,
    /// Attempts made (downloads are retried with backoff).
    #[serde(default)]
    pub attempts: u32,
}

/// Reply body of `packages`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageAck {
    pub results: Vec<TaskResult>,
    /// The inventory after the tasks.
    #[serde(default)]
    pub inventory: Option<InventoryReport>,
}

/// Body of the `package-inventory` system stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRequest {
    /// The revision the gateway holds (`None`: nothing; send it all).
    #[serde(default)]
    pub since: Option<u64>,
}

/// One installed package (`dpkg-query -W`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// The endpoint's installed packages: all of them (`full`), or what
/// changed since [`InventoryRequest::since`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReport {
    /// Increases whenever the set changes.
    pub revision: u64,
    /// `packages` is everything installed (else: added or changed ones).
    pub full: bool,
    pub packages: Vec<InstalledPackage>,
    /// `(name, architecture)` no longer installed (diffs only).
    #[serde(default)]
    pub removed: Vec<(String, String)>,
}

/// Cuts installer output to [`MAX_OUTPUT`] bytes, keeping the end (where
/// the error is), on a character boundary.
pub fn bound_output(s: &str) -> String {
    if s.len() <= MAX_OUTPUT {
        return s.to_owned();
    }
    let mut start = s.len() - (MAX_OUTPUT - 20);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[… cut …]\n{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_and_acks_round_trip_as_json() {
        let n = PackageNotice {
            keys: vec![TrustedKey {
                id: "pk_1".into(),
                public_key: "AAAA".into(),
            }],
            tasks: vec![PackageTask {
                name: "jg-hello".into(),
                action: TaskAction::Install,
                version: Some("1.0-1".into()),
                candidates: vec![PackageRef {
                    id: "pkg_1".into(),
                    architecture: "all".into(),
                    sha256: "ab".into(),
                    size: 3,
                    manifest_url: "/packages/pkg_1/manifest?x".into(),
                    manifest_sha256: "cd".into(),
                    url: "https://bucket/x".into(),
                }],
            }],
            inventory_since: Some(4),
        };
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains(r#""action":"install""#), "{json}");
        assert_eq!(serde_json::from_str::<PackageNotice>(&json).unwrap(), n);
        let ack = PackageAck {
            results: vec![TaskResult {
                name: "jg-hello".into(),
                action: TaskAction::Remove,
                version: None,
                outcome: TaskOutcome::Unchanged,
                message: String::new(),
                output: String::new(),
                attempts: 0,
            }],
            inventory: None,
        };
        let json = serde_json::to_string(&ack).unwrap();
        assert!(json.contains(r#""outcome":"unchanged""#), "{json}");
        assert_eq!(serde_json::from_str::<PackageAck>(&json).unwrap(), ack);
    }

    #[test]
    fn output_is_bounded_keeping_the_end() {
        let long = format!("{}the error", "é".repeat(20_000));
        let cut = bound_output(&long);
        assert!(cut.len() <= MAX_OUTPUT, "{}", cut.len());
        assert!(cut.ends_with("the error"));
        assert_eq!(bound_output("short"), "short");
    }
}
