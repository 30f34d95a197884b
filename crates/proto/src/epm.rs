//! Endpoint privilege management on the wire: what the gateway tells an
//! agent about policies and approvals (system stream bodies, JSON), and the
//! decision events an agent reports (control messages, JSON).
//!
//! ```text
//! gateway                                              agent
//!   | system stream `epm-policy`: PolicyNotice --------> |  fetch the bundle from blob storage,
//!   | <------------------------------------ PolicyAck    |  verify, switch
//!   | system stream `epm-decision`: ApprovalDecision --> |  a waiting `jumpgate elevate` goes on
//!   | <------------------------------ Control::EpmEvents |  journal order, ids = per-agent seq
//!   | Control::EpmAck{through} ------------------------> |  the journal forgets up to `through`
//! ```
//!
//! Events are idempotent by `(agent, seq)`: an agent resends everything not
//! acknowledged after a reconnect, and the gateway stores each once.

use serde::{Deserialize, Serialize};

/// Largest `Control::EpmEvents` payload a sender builds (a control frame
/// carries at most 64 KiB).
pub const MAX_EVENTS_PAYLOAD: usize = 48 * 1024;

/// A public policy-signing key the agent is to trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// `pk_…`, as named in a bundle's header.
    pub id: String,
    /// The raw 32-byte Ed25519 public key, base64 (standard, padded).
    pub public_key: String,
}

/// Body of the `epm-policy` system stream: the current bundle and what the
/// agent needs to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyNotice {
    /// Site-wide bundle version; 0 = nothing published yet.
    pub version: u64,
    /// SHA-256 of the whole bundle file, lowercase hex.
    pub sha256: String,
    /// Size of the bundle file in bytes.
    pub size: u64,
    /// Where to download it: a short-lived signed blob-storage URL, or the
    /// gateway's signed route (an absolute `https://` URL either way; a
    /// relative `/epm/…` path means "on the gateway this agent is connected
    /// to").
    pub url: String,
    /// The signing keys to trust (current and not yet retired).
    pub keys: Vec<TrustedKey>,
    /// The endpoint groups this endpoint is in (rules name them).
    pub groups: Vec<String>,
    /// This endpoint's offline-code secret, base64 (32 bytes).
    pub code_secret: String,
}

/// Reply body of `epm-policy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyAck {
    /// The version the agent runs after handling the notice.
    pub accepted: Option<u64>,
    /// Why the announced bundle was refused (the old policy stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Body of the `epm-decision` system stream: a technician answered an
/// approval request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    /// The request id (`er_…`) from the `approval-requested` event.
    pub request: String,
    pub approved: bool,
    /// Who decided (user name).
    pub by: String,
    #[serde(default)]
    pub comment: String,
}

/// What an elevation attempt ended as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The program ran (elevated, or as the caller for `audit-only`).
    Allowed,
    /// Refused: blocked, unmatched, no reason given, approval denied or
    /// timed out, wrong code.
    Denied,
    /// Allowed, but it could not be started.
    Failed,
}

/// One thing the endpoint reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EpmEventKind {
    /// An elevation was decided (and, if allowed, run).
    Decision {
        user: String,
        uid: u32,
        program: String,
        sha256: String,
        args: Vec<String>,
        /// The action that applied (`elevate`, `block`, …).
        action: String,
        /// The rule that matched; empty when the default applied.
        rule: String,
        outcome: Outcome,
        /// The caller's reason, when one was asked for or given.
        #[serde(default)]
        reason: String,
        /// Why it was denied or failed, in words.
        #[serde(default)]
        detail: String,
        /// The program's exit code, when it ran to its end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// An elevated program that was allowed (a `decision` event with
    /// outcome `allowed`, written before it started) ended.
    Exited {
        user: String,
        uid: u32,
        program: String,
        rule: String,
        /// Its exit code (128 + the signal when a signal ended it).
        exit_code: i32,
    },
    /// A rule needs a technician's approval; the caller waits.
    ApprovalRequested {
        /// `er_…`, the id technicians approve.
        request: String,
        user: String,
        uid: u32,
        program: String,
        sha256: String,
        args: Vec<String>,
        rule: String,
        #[serde(default)]
        reason: String,
        /// How long the caller waits (the rule's `approval_timeout`), in
        /// seconds; the gateway expires the request then. 0: not said
        /// (an older agent): the gateway's default.
        #[serde(default)]
        timeout_secs: u64,
    },
    /// A bundle was verified and is now in force.
    BundleAccepted { version: u64 },
    /// A bundle was refused; the previous policy stays.
    BundleRefused { version: u64, why: String },
    /// A time-boxed admin session started or ended.
    AdminSession {
        user: String,
        uid: u32,
        minutes: u32,
        #[serde(default)]
        reason: String,
        rule: String,
        ended: bool,
    },
}

/// An event with its place in the endpoint's journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpmEvent {
    /// Per-agent sequence number, from 1, never reused.
    pub seq: u64,
    /// When it happened on the endpoint (RFC 3339, UTC).
    pub at: String,
    #[serde(flatten)]
    pub kind: EpmEventKind,
}

/// Payload of `Control::EpmEvents`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpmEventBatch {
    /// In journal order.
    pub events: Vec<EpmEvent>,
    /// Events the journal had to drop (full) since it started counting.
    #[serde(default)]
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_their_kind_inline() {
        let e = EpmEvent {
            seq: 7,
            at: "2026-12-02T05:00:00Z".into(),
            kind: EpmEventKind::BundleRefused {
                version: 3,
                why: "bad signature".into(),
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"seq":7,"at":"2026-12-02T05:00:00Z","kind":"bundle-refused","version":3,"why":"bad signature"}"#
        );
        assert_eq!(serde_json::from_str::<EpmEvent>(&json).unwrap(), e);
    }
}
