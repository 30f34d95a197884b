//! Endpoint privilege management: the policy, what-if, publishing, events
//! and approval requests (`/api/v1/epm/…`). Design: docs/design/14-epm.md.
//!
//! | method & path | auth | body → answer |
//! |---|---|---|
//! | `GET  /api/v1/epm/policy[?format=yaml]` | `epm-manage` | → [`PolicyDoc`] (or the YAML text) |
//! | `PUT  /api/v1/epm/policy` | `epm-manage` | [`PolicyDoc`] (or YAML, `Content-Type: application/yaml`, with `If-Match: <revision>`) → [`PolicyDoc`]; 400 `invalid_policy` with [`PolicyProblems`]; 409 `conflict` on a stale revision |
//! | `POST /api/v1/epm/policy/validate` | `epm-manage` | [`PolicyDoc`] or YAML → [`PolicyProblems`] (empty: valid) |
//! | `POST /api/v1/epm/test` | `epm-manage` or `epm-approve` | [`WhatIf`] → [`WhatIfAnswer`] |
//! | `POST /api/v1/epm/publish` | `epm-manage` | → [`PublishedBundle`] |
//! | `GET  /api/v1/epm/bundles` | `epm-manage` | → `Vec<`[`PublishedBundle`]`>` newest first |
//! | `GET  /api/v1/epm/status` | `epm-manage` | → `Vec<`[`EndpointPolicyStatus`]`>` |
//! | `GET  /api/v1/epm/events?endpoint=&after=&limit=` | `epm-manage` or `view-audit` | → `Vec<`[`EpmEventRow`]`>` oldest first after the cursor |
//! | `GET  /api/v1/epm/requests?state=` | `epm-approve` | → `Vec<`[`ElevationRequest`]`>` (within the caller's groups) |
//! | `GET  /api/v1/epm/requests/events` | `epm-approve` | `text/event-stream` of [`ElevationRequest`] as they appear and change |
//! | `POST /api/v1/epm/requests/{id}/approve` / `deny` | `epm-approve` on the endpoint's group | [`DecideRequest`] → [`ElevationRequest`]; 409 `conflict` when no longer pending |
//! | `POST /api/v1/epm/code` | `epm-approve` on the endpoint's group | [`CodeRequest`] → [`CodeResponse`] |
//! | `POST /api/v1/epm/signing-keys/rotate` | `epm-manage` | → [`SigningKeyInfo`] |
//! | `GET  /api/v1/epm/signing-keys` | `epm-manage` | → `Vec<`[`SigningKeyInfo`]`>` |
//! | `GET  /epm/bundles/{version}?expires=&sig=` | signed URL, no login | the bundle file (filesystem blob backend only) |

use serde::{Deserialize, Serialize};

pub use jumpgate_epm::policy::Policy;

/// The draft policy and its revision (optimistic concurrency).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyDoc {
    /// Increases with every save; send the one you read back with `PUT`.
    pub revision: u64,
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
}

/// Why a policy is not valid: one entry per bad field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyProblems {
    pub problems: Vec<PolicyProblem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyProblem {
    /// The field's path, e.g. `rules[3].action`.
    pub field: String,
    pub message: String,
}

/// A what-if question: what would happen if this user ran this command on
/// this endpoint?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIf {
    pub endpoint: String,
    /// Local user name on the endpoint.
    pub user: String,
    /// The user's local groups (the gateway cannot know them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The program (absolute path) and its arguments.
    pub command: Vec<String>,
    /// The program's SHA-256 (hex) if known; rules pinned to a hash do not
    /// match without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Ask the last published bundle instead of the draft.
    #[serde(default)]
    pub published: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIfAnswer {
    /// `elevate`, `elevate-with-reason`, `elevate-with-approval`,
    /// `elevate-with-code`, `block`, `audit-only`.
    pub action: String,
    /// The rule that matched; `None`: the default applied.
    pub rule: Option<String>,
    pub application: Option<String>,
    /// The endpoint groups the decision used.
    pub endpoint_groups: Vec<String>,
    /// Which policy answered: `draft` or `v<version>`.
    pub policy: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedBundle {
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    /// The signing key's id (`pk_…`).
    pub key: String,
    pub published_by: String,
    pub published_at: String,
    /// Agents connected when it was published (told at once).
    #[serde(default)]
    pub notified: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPolicyStatus {
    pub endpoint: String,
    pub online: bool,
    /// The version the endpoint said it runs.
    pub accepted_version: Option<u64>,
    /// The last refusal (version and why), if the newest bundle was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<String>,
    /// Events the endpoint's journal dropped (full) — should stay 0.
    pub dropped_events: u64,
}

/// One stored EPM event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpmEventRow {
    /// Cursor for `after=` (gateway-wide, increasing).
    pub id: u64,
    pub endpoint: String,
    /// The endpoint's own sequence number.
    pub seq: u64,
    /// When it happened on the endpoint.
    pub at: String,
    /// The event as the endpoint reported it (`kind` and its fields; see
    /// `jumpgate_proto::epm::EpmEventKind`).
    pub event: serde_json::Value,
}

/// An elevation waiting for (or answered by) a technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElevationRequest {
    /// `er_…`
    pub id: String,
    pub endpoint: String,
    pub user: String,
    pub program: String,
    pub args: Vec<String>,
    pub sha256: String,
    pub rule: String,
    pub reason: String,
    /// `pending`, `approved`, `denied`, `expired`.
    pub state: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecideRequest {
    #[serde(default)]
    pub comment: String,
}

/// Ask for the response to an endpoint's offline challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRequest {
    pub endpoint: String,
    /// As the endpoint shows it (`ABCD-EFGH-JK`; case, spaces and dashes
    /// do not matter).
    pub challenge: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeResponse {
    /// Ten digits, shown as `12345-67890`.
    pub response: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    /// `pk_…`
    pub id: String,
    /// Raw Ed25519 public key, base64.
    pub public_key: String,
    pub created_at: String,
    /// `current`, `previous` (still trusted), `retired`.
    pub state: String,
}
