//! Attended support: the public portal's bodies (no login), and the
//! technicians' queues, keys and support sessions.
//!
//! | method & path | auth | body → answer |
//! |---|---|---|
//! | `GET  /api/v1/portal` | none | → [`PortalInfo`] |
//! | `POST /api/v1/portal/key` | none | [`RedeemKey`] → [`PortalDownload`] (one `invalid_session_key` answer for unknown, used and expired keys) |
//! | `POST /api/v1/portal/requests` | none | [`HelpRequest`] → [`PortalDownload`] |
//! | `GET  /portal/download/{download}` | none | the customer client, its trailer naming the site |
//! | `POST /api/v1/support/keys` | `support` | [`CreateSupportKey`] → [`SupportKey`] |
//! | `GET  /api/v1/support/events[?available=1]` | `support` | `text/event-stream` of [`SupportEvent`] |
//! | `POST /api/v1/support/sessions/{id}/accept` | `support` | → [`SupportSession`] (409 `already_taken`) |
//! | `POST /api/v1/support/sessions/{id}/chat` | `support` | [`SendChat`] → 204 |
//! | `POST /api/v1/support/sessions/{id}/rights` | `support` | [`AskRight`] → 202 (the customer answers) |
//! | `POST /api/v1/support/sessions/{id}/transfer` | `support` | [`TransferSupport`] → 204 |
//! | `POST /api/v1/support/sessions/{id}/invite` | `support` | [`InviteTechnician`] → 204 |
//! | `POST /api/v1/support/sessions/{id}/join` | `support` / `monitor-sessions` | → [`SupportSession`] |
//! | `DELETE /api/v1/support/sessions/{id}/participants/{user}` | `support` | → 204 |
//! | `POST /api/v1/support/sessions/{id}/end` | `support` | → 204 |
//! | `POST /api/v1/support/sessions/{id}/pin` | `support` | [`PinEndpoint`] → 202 |
//! | `GET  /api/v1/support/sessions?queue=&since=&until=&before=&limit=` | `support` | → `Vec<`[`SupportSessionRow`]`>` |
//! | `GET  /api/v1/support/sessions/{id}` | `support` | → [`SupportSession`] |
//! | `GET  /api/v1/support/sessions/{id}/transcript` | `view-audit` | → `Vec<`[`ChatLine`]`>` |
//! | `GET  /api/v1/support/sessions/{id}/connect?kind=K` | `support` + the kind's permission | upgrade, as an endpoint's connect |
//! | `GET  /api/v1/sessions/{id}/watch` | `monitor-sessions` or a participant | upgrade: the live session, read-only |
//! | `GET/POST /api/v1/queues`, `PATCH/DELETE /api/v1/queues/{name}` | `support` / `manage-endpoints` | [`Queue`], [`CreateQueue`], [`UpdateQueue`] |
//! | `GET/PUT /api/v1/portal/settings` | `manage-users` | [`PortalSettings`] |
//!
//! Rights, roles and chat lines are `jumpgate_proto::assist`'s wire names:
//! rights `view`, `control`, `clipboard`, `shell`, `files`; roles `owner`,
//! `participant`, `observer`, `supervisor`.

use serde::{Deserialize, Serialize};

/// The kinds of right a technician asks a customer for.
pub const RIGHTS: [&str; 5] = ["view", "control", "clipboard", "shell", "files"];

/// What the portal shows anyone: the site's look and its public queues.
/// Nothing about technicians, endpoints or how many people wait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalInfo {
    pub site_name: String,
    pub texts: PortalTexts,
    pub colors: PortalColors,
    pub has_logo: bool,
    pub queues: Vec<PortalQueue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalQueue {
    pub name: String,
    pub description: String,
}

/// The portal's texts (plain text, no markup).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalTexts {
    #[serde(default)]
    pub welcome: String,
    #[serde(default)]
    pub key_help: String,
    #[serde(default)]
    pub form_help: String,
    #[serde(default)]
    pub privacy: String,
}

/// The portal's colours, each `#rrggbb`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalColors {
    pub primary: String,
    pub background: String,
    pub text: String,
}

impl Default for PortalColors {
    fn default() -> Self {
        Self {
            primary: "#1f6feb".into(),
            background: "#f6f8fa".into(),
            text: "#1f2328".into(),
        }
    }
}

/// `GET/PUT /api/v1/portal/settings`: the portal's branding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    pub site_name: String,
    #[serde(default)]
    pub colors: PortalColors,
    #[serde(default)]
    pub texts: PortalTexts,
    /// A PNG or JPEG, base64 (standard), 64 KiB at most; `None` for none.
    /// On `PUT`, absent keeps the current logo and `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
}

/// `POST /api/v1/portal/key`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemKey {
    /// The digits the technician read out; spaces and dashes are ignored.
    pub key: String,
}

/// `POST /api/v1/portal/requests`: someone asks for help without a key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpRequest {
    pub name: String,
    pub problem: String,
    pub queue: String,
}

/// The portal's answer to a key or a request: where to download the
/// customer client from, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalDownload {
    /// The path of the download (`/portal/download/…`), on the portal's host.
    pub download: String,
    pub expires_at: String,
}

/// `POST /api/v1/support/keys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSupportKey {
    /// The queue the session lands in; `None`: straight to the key's creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// How long the key is valid: `90s`, `15m`, `2h` (5 s to 24 h; 15 min
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A new session key: shown once, never stored in clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportKey {
    /// The digits grouped for reading aloud (`123 456 7890`).
    pub key: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// A support queue: a team of technicians and the endpoint group that
/// scopes its sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    pub description: String,
    /// The endpoint group whose permissions govern the queue's sessions.
    pub group: String,
    /// Shown on the portal's request form.
    pub public: bool,
    /// New customers go to an available member in turn.
    pub auto_assign: bool,
    pub max_waiting: u32,
    /// Member usernames.
    pub members: Vec<String>,
    /// Members following the queue live right now (the console's Support
    /// page or `jg support queue --watch` open): those automatic
    /// assignment chooses from. Filled in lists only.
    #[serde(default)]
    pub available: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub group: String,
    #[serde(default = "yes")]
    pub public: bool,
    #[serde(default)]
    pub auto_assign: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<u32>,
    #[serde(default)]
    pub members: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `PATCH /api/v1/queues/{name}`: what is given changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateQueue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<u32>,
    /// Replaces the member list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// `POST …/chat`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendChat {
    pub text: String,
}

/// `POST …/rights`: ask the customer for one right.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRight {
    /// One of [`RIGHTS`].
    pub right: String,
}

/// `POST …/transfer`: to one technician or back to a queue.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSupport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// `POST …/invite`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteTechnician {
    pub user: String,
    /// `participant` or `observer`.
    #[serde(rename = "as")]
    pub role: String,
}

/// `POST …/pin`: make the customer's machine an enrolled endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEndpoint {
    pub group: String,
}

/// Someone on the technicians' side of a support session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportParticipant {
    pub username: String,
    /// `owner`, `participant`, `observer` or `supervisor`.
    pub role: String,
    pub joined_at: String,
}

/// One chat line of a support session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub seq: u64,
    pub at: String,
    /// `customer`, `technician` or `system`.
    pub from_kind: String,
    pub from: String,
    pub text: String,
}

/// A live (or recent) support session as its technicians see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportSession {
    pub id: String,
    pub queue: String,
    /// `pending` (download not run yet), `waiting`, `active` or `ended`.
    pub state: String,
    /// `key` or `form`.
    pub origin: String,
    pub customer: String,
    pub problem: String,
    /// The technician a key session goes to straight away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_user: Option<String>,
    pub requested_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub participants: Vec<SupportParticipant>,
    /// The rights the customer has granted now.
    pub granted: Vec<String>,
    /// Rights asked and not answered yet.
    pub asked: Vec<String>,
    /// Whether the customer's client is connected.
    pub online: bool,
    /// The customer's machine, as its client reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The customer's screen as technicians of this session show it now:
    /// one entry per live desktop sub-session. The others join one with
    /// `GET /api/v1/sessions/{session}/watch` (participants drive it while
    /// the customer allows `control`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screens: Vec<SupportScreen>,
}

/// A live desktop sub-session of a support session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportScreen {
    /// The sub-session's id (what `…/sessions/{id}/watch` takes).
    pub session: String,
    /// The technician who opened it.
    pub technician: String,
}

/// One row of `GET /api/v1/support/sessions` (history and reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportSessionRow {
    pub id: String,
    pub queue: String,
    pub state: String,
    pub origin: String,
    pub customer: String,
    pub requested_at: String,
    /// Joined → accepted, in seconds (`None` while nobody accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
    /// Accepted → ended, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    pub technicians: Vec<String>,
    pub rights_used: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// One event of `GET /api/v1/support/events` (the SSE `event:` name is
/// `type`; `data:` is this JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupportEvent {
    /// Everything the subscriber may see, at connect and after a lag.
    Snapshot { sessions: Vec<SupportSession> },
    /// A support session appeared or changed (waiting, accepted, rights,
    /// participants, online).
    Session { session: Box<SupportSession> },
    /// A support session left the subscriber's view (ended, transferred
    /// away, no longer visible).
    Left { id: String, reason: String },
    /// A chat line in a session the subscriber takes part in.
    Chat { id: String, line: ChatLine },
    /// The subscriber was invited to a session.
    Invite {
        id: String,
        by: String,
        role: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_type_and_rights_are_the_protocol_names() {
        let e = SupportEvent::Left {
            id: "sup_1".into(),
            reason: "ended".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"left","id":"sup_1","reason":"ended"}"#
        );
        assert_eq!(RIGHTS, ["view", "control", "clipboard", "shell", "files"]);
        let q: CreateQueue =
            serde_json::from_str(r#"{"name":"helpdesk","group":"default"}"#).unwrap();
        assert!(q.public && !q.auto_assign && q.members.is_empty());
        assert!(serde_json::from_str::<RedeemKey>(r#"{"key":"1","x":1}"#).is_err());
    }
}
