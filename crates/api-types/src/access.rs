//! Access requests with approval (`/api/v1/access-requests*`) and groups'
//! approval settings (`/api/v1/groups/{name}/approval`).

use serde::{Deserialize, Serialize};

/// A group's approval setting: which of its permissions need an approved
/// access request, who approves, and how many approvals are needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    pub group: String,
    /// Permission names (`all` is shown expanded).
    pub permissions: Vec<String>,
    /// `role:NAME` and `user:NAME` entries.
    pub approvers: Vec<String>,
    /// 1 or 2.
    pub approvals: u8,
}

/// `PUT /api/v1/groups/{name}/approval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetApprovalPolicy {
    /// Session permission names (`shell`, `files`, …) or `["all"]`.
    pub permissions: Vec<String>,
    /// `role:NAME` or `user:NAME` entries.
    pub approvers: Vec<String>,
    /// 1 or 2.
    pub approvals: u8,
}

/// `POST /api/v1/access-requests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    /// A group or an endpoint: `NAME`, `group:NAME` or `endpoint:NAME`.
    pub target: String,
    /// The permissions asked (default: every one the group requires
    /// approval for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// How long the grant lasts once approved, in seconds (at most the
    /// site's `auth.access_max_window`).
    pub window_secs: u64,
    /// Why (e.g. a ticket number): plain text, at most 200 characters.
    pub reason: String,
}

/// `POST /api/v1/access-requests/{id}/approve|deny`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDecision {
    pub approver: String,
    /// `approve` or `deny`.
    pub decision: String,
    pub reason: String,
    pub at: String,
}

/// What an elevation request (kind `elevation`) asks to run: an endpoint
/// user's EPM approval request (`/api/v1/epm/requests` shows the same
/// request by the same id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElevationAsked {
    /// The user on the endpoint, as the endpoint reported them.
    pub user: String,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub sha256: String,
    /// The policy rule that asks for approval.
    pub rule: String,
}

/// An access request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    /// `access` (a technician asks for a grant) or `elevation` (an
    /// endpoint's user asks to run a program elevated: see `elevation`).
    pub kind: String,
    /// A user; for an elevation, `USER@ENDPOINT` as the endpoint reported.
    pub requester: String,
    pub group: String,
    /// One endpoint of the group only (`None`: the whole group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub permissions: Vec<String>,
    pub window_secs: u64,
    pub reason: String,
    /// `pending`, `active`, `expired`, `denied` or `cancelled`; an
    /// elevation is `pending`, `approved`, `denied` or `expired`.
    pub state: String,
    pub approvals_required: u8,
    pub decisions: Vec<AccessDecision>,
    pub created_at: String,
    /// When an active grant ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// When the last decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// When it expired, was denied or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Whether the caller may approve or deny it now.
    #[serde(default)]
    pub can_decide: bool,
    /// When a pending request expires, if it has its own end (an
    /// elevation: when the caller on the endpoint stops waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Kind `elevation`: the program asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<ElevationAsked>,
}
