//! Outbound events: webhook subscriptions and their deliveries
//! (`/api/v1/webhooks*`, permission `manage-webhooks`).

use serde::{Deserialize, Serialize};

/// A subscription as the API shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    /// Audit actions, each optionally `:outcome`-filtered, or `all`.
    pub events: Vec<String>,
    /// Endpoint groups an entry must concern (empty: any entry).
    #[serde(default)]
    pub groups: Vec<String>,
    /// `json`, `servicenow` or `jira`.
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_issue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicenow_category: Option<String>,
    /// Whether the subscription trusts its own CA (else the system's roots).
    #[serde(default)]
    pub custom_ca: bool,
    /// Whether deliveries carry an `Authorization` header (its value is
    /// never shown back).
    #[serde(default)]
    pub auth_header: bool,
    /// How long a delivery is retried before it is dead.
    pub retry_for_secs: u64,
    pub created_at: String,
    pub created_by: String,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub dead: u64,
}

/// `POST /api/v1/webhooks`. Its `Debug` leaves out the `Authorization`
/// header's value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Default: `wh-` and random characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `https://…` (plain `http://` only to a loopback address).
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Default: `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_issue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicenow_category: Option<String>,
    /// CA certificate(s), PEM, the receiver's chain must lead to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The `Authorization` header value sent with each delivery (`Bearer
    /// …`, `Basic …`): stored sealed like the signing secret, never shown
    /// back nor logged. At most 4096 visible ASCII characters and spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<String>,
    /// Default: 86400 (24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for_secs: Option<u64>,
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("groups", &self.groups)
            .field("format", &self.format)
            .field("jira_project", &self.jira_project)
            .field("jira_issue_type", &self.jira_issue_type)
            .field("servicenow_category", &self.servicenow_category)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("auth_header", &self.auth_header.as_ref().map(|_| "(set)"))
            .field("retry_for_secs", &self.retry_for_secs)
            .finish()
    }
}

/// `PUT /api/v1/webhooks/{name}/auth-header`: the `Authorization` header
/// value every delivery of the subscription carries from now on (a new
/// token, another account), replacing the one it had, if any. `DELETE` on
/// the same path removes it. Stored sealed, never shown back nor logged;
/// at most 4096 visible ASCII characters and spaces. Its `Debug` leaves
/// out the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuth {
    pub auth_header: String,
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("auth_header", &"(set)")
            .finish()
    }
}

/// The answer to `add` and `rotate-secret`: the secret, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    pub webhook: Webhook,
    /// The HMAC-SHA256 key receivers check `Jumpgate-Signature` with.
    pub secret: String,
}

/// One delivery of a subscription's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub subscription: String,
    /// The audit entry's id (`Jumpgate-Event-Id`).
    pub entry_id: i64,
    pub action: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
    /// A pending delivery: when it is next tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
}

/// `POST /api/v1/webhooks/deliveries/replay`: dead deliveries to queue
/// again (by id, or every dead one, optionally of one subscription).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<i64>,
    #[serde(default)]
    pub all_dead: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
}

/// How many deliveries a replay queued again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    pub count: u64,
}
