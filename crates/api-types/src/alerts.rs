//! Mail alerts (`/api/v1/alert-rules`, `/api/v1/smtp/test`): rules that
//! turn audit entries into mail (`manage-alerts`).
//!
//! | route | permission | body → answer |
//! |---|---|---|
//! | `GET /api/v1/alert-rules` | `manage-alerts` | → `[`[`AlertRule`]`]` |
//! | `POST /api/v1/alert-rules` | `manage-alerts` | [`NewAlertRule`] → [`AlertRule`] |
//! | `DELETE /api/v1/alert-rules/{name}` | `manage-alerts` | → 204 |
//! | `POST /api/v1/smtp/test` | `manage-alerts` | [`SmtpTest`] → [`SmtpTestSent`] |

use serde::{Deserialize, Serialize};

/// A rule as the API shows it, with its mail queue's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub name: String,
    /// Audit actions it reacts to (`lockout`, `session-open:*`, …).
    pub events: Vec<String>,
    /// Only entries with this outcome (`denied`, `failed`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Only entries concerning one of these endpoint groups (the entry's
    /// groups, as `jg audit` shows them); empty: any entry.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Users whose email gets the mail.
    #[serde(default)]
    pub users: Vec<String>,
    /// Roles whose members' emails get the mail.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Addresses that get the mail.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The approvers of an access request's group get the mail (for
    /// `access-*` entries: their group's approval setting names them).
    #[serde(default)]
    pub approvers: bool,
    /// `each` (a mail per entry) or `digest`.
    pub mode: String,
    /// `digest`: the window, in seconds (it opens at its first entry).
    pub digest_every_secs: u64,
    /// Mails (entries, in `digest` mode) queued per hour at most.
    pub max_per_hour: u32,
    pub subject: String,
    pub body: String,
    pub created_by: String,
    pub created_at: String,
    /// Mails delivered.
    pub sent: u64,
    /// Mails (or digest entries) waiting.
    pub waiting: u64,
    /// Entries the rate limit held back.
    pub limited: u64,
    /// Mails given up after their retries.
    pub dead: u64,
}

/// `POST /api/v1/alert-rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlertRule {
    pub name: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Only entries concerning one of these endpoint groups (existing
    /// groups; empty: any entry; site-wide entries concern none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The approvers of an access request's group (`access-*` entries).
    #[serde(default)]
    pub approvers: bool,
    /// Set (`15m`, `1h`; 10 s to 1 day): one digest mail per window
    /// instead of a mail per entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_every: Option<String>,
    /// Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
    /// A template: `{action}`, `{actor}`, `{target}`, `{outcome}`, `{at}`,
    /// `{groups}`, `{detail}`, `{id}`, `{rule}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `POST /api/v1/smtp/test`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpTest {
    pub to: String,
}

/// The mail server accepted the test mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpTestSent {
    pub to: String,
    /// The server's answer to the message.
    pub reply: String,
}
