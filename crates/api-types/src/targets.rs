//! Agentless targets reached through jump points (`/api/v1/targets`,
//! `/api/v1/endpoints/{name}/jump-point`).

use serde::{Deserialize, Serialize};

/// A target as the API shows it (never its credential's value: only the
/// vault secret's name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub group: String,
    /// The jump point (an endpoint's name) that reaches it.
    pub via: String,
    /// `ssh` or `tcp`.
    pub kind: String,
    pub host: String,
    pub port: u16,
    /// SSH targets: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SSH targets: the vault secret holding its password or private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// SSH targets: the pinned host key's SHA-256 fingerprint (`None`
    /// until first use with trust on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_fingerprint: Option<String>,
    #[serde(default)]
    pub trust_on_first_use: bool,
    #[serde(default)]
    pub rotate_after_use: bool,
    pub created_at: String,
}

/// `POST /api/v1/targets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    pub name: String,
    /// Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub via: String,
    /// `HOST[:PORT]` of an SSH server (port 22 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<String>,
    /// `HOST:PORT` of a TCP service (forwarding only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The host key to pin, OpenSSH public-key text (`ssh-ed25519 AAAA…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(default)]
    pub trust_on_first_use: bool,
    #[serde(default)]
    pub rotate_after_use: bool,
}

/// `PUT /api/v1/targets/{name}/host-key`: re-pin an SSH target's host key
/// (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetHostKey {
    /// The host key to pin, OpenSSH public-key text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Forget the pinned key and trust the one offered on next use.
    #[serde(default)]
    pub trust_on_first_use: bool,
}

/// `PUT /api/v1/endpoints/{name}/jump-point`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JumpPoint {
    pub on: bool,
    /// The destinations it may reach (`10.0.0.0/8`, `db.internal:5432`,
    /// `*.corp.example:22`, `[fd00::/8]:22`); left out: any. Replaces the
    /// list it had. Only with `on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
}

/// The answer to a jump-point change, and `GET /api/v1/jump-points`' rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JumpPointState {
    pub endpoint: String,
    pub on: bool,
    /// The destinations it may reach, canonical (`None`: any).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Targets through it whose address its list no longer allows (their
    /// sessions are refused until the list or the target changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<String>,
}
