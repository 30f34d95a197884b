//! The bodies a subscription receives, one per audit entry
//! (`docs/webhooks.md` shows each):
//!
//! - `json`: the entry itself (`id` is the audit entry's id, stable across
//!   retries and replays, for receivers' idempotency);
//! - `servicenow`: a ServiceNow incident (Table API `incident` record);
//! - `jira`: a Jira issue (`POST /rest/api/3/issue`, description in ADF).

use serde_json::{Value, json};

use crate::ids::rfc3339;
use crate::notify::Entry;

/// A subscription's payload format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    ServiceNow,
    Jira,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::ServiceNow => "servicenow",
            Self::Jira => "jira",
        }
    }

    /// # Errors
    /// Not one of the formats (the message lists them).
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "servicenow" => Ok(Self::ServiceNow),
            "jira" => Ok(Self::Jira),
            _ => Err(format!("format `{s}`: expected json, servicenow or jira")),
        }
    }
}

/// Format options kept with the subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Options {
    /// Jira: the project's key (required for `jira`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) jira_project: Option<String>,
    /// Jira: the issue type's name [default: `Task`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) jira_issue_type: Option<String>,
    /// ServiceNow: the incident's category [default: `security`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) servicenow_category: Option<String>,
}

/// The entry's groups as JSON.
fn groups(e: &Entry) -> Vec<String> {
    e.group_names()
}

/// One line saying what happened.
fn summary(e: &Entry) -> String {
    let mut s = format!("Jumpgate: {} by {}", e.action, e.actor);
    if !e.target.is_empty() {
        s.push_str(&format!(" on {}", e.target));
    }
    if e.outcome != "ok" {
        s.push_str(&format!(" ({})", e.outcome));
    }
    s
}

/// The entry's fields as text lines.
fn lines(e: &Entry) -> Vec<String> {
    let mut out = vec![
        format!("Action: {}", e.action),
        format!("Actor: {}", e.actor),
        format!("Target: {}", e.target),
        format!("Outcome: {}", e.outcome),
        format!("At: {}", rfc3339(e.at)),
        format!("Audit entry: {}", e.id),
    ];
    let g = groups(e);
    if !g.is_empty() {
        out.push(format!("Groups: {}", g.join(", ")));
    }
    if !e.detail.is_empty() {
        out.push(format!("Detail: {}", e.detail));
    }
    out
}

/// Outcomes that call for quick attention (ServiceNow urgency 1/2).
fn urgent(e: &Entry) -> bool {
    matches!(e.outcome.as_str(), "denied" | "failed" | "refused")
        || matches!(e.action.as_str(), "lockout" | "audit-verify")
}

/// The body of `e` in `format`.
pub(crate) fn body(format: Format, options: &Options, e: &Entry) -> Vec<u8> {
    let v = match format {
        Format::Json => json!({
            "id": e.id,
            "action": e.action,
            "actor": e.actor,
            "target": e.target,
            "outcome": e.outcome,
            "at": rfc3339(e.at),
            "detail": e.detail,
            "groups": groups(e),
        }),
        Format::ServiceNow => json!({
            "short_description": summary(e),
            "description": lines(e).join("\n"),
            "urgency": if urgent(e) { "2" } else { "3" },
            "category": options.servicenow_category.as_deref().unwrap_or("security"),
            "correlation_id": format!("jumpgate-{}", e.id),
        }),
        Format::Jira => {
            let paragraphs: Vec<Value> = lines(e)
                .into_iter()
                .map(|l| json!({"type": "paragraph", "content": [{"type": "text", "text": l}]}))
                .collect();
            json!({
                "fields": {
                    "project": {"key": options.jira_project.as_deref().unwrap_or("")},
                    "summary": summary(e),
                    "description": {"type": "doc", "version": 1, "content": paragraphs},
                    "issuetype": {"name": options.jira_issue_type.as_deref().unwrap_or("Task")},
                    "labels": ["jumpgate", format!("jumpgate-{}", e.action.replace(':', "-")), format!("jumpgate-entry-{}", e.id)],
                }
            })
        }
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Format, Options, body};
    use crate::notify::Entry;

    fn entry() -> Entry {
        Entry {
            id: 42,
            at: 1_700_000_000_000,
            actor: "alice".into(),
            action: "session-open:shell".into(),
            target: "web-01".into(),
            outcome: "denied".into(),
            detail: "from 10.0.0.1".into(),
            groups: Some(r#"["web"]"#.into()),
        }
    }

    #[test]
    fn each_format_carries_the_entry() {
        let e = entry();
        let j: serde_json::Value =
            serde_json::from_slice(&body(Format::Json, &Options::default(), &e)).unwrap();
        assert_eq!(j["id"], 42);
        assert_eq!(j["action"], "session-open:shell");
        assert_eq!(j["groups"][0], "web");
        assert_eq!(j["at"], "2023-11-14T22:13:20Z");
        let s: serde_json::Value =
            serde_json::from_slice(&body(Format::ServiceNow, &Options::default(), &e)).unwrap();
        assert_eq!(s["correlation_id"], "jumpgate-42");
        assert_eq!(s["urgency"], "2");
        assert_eq!(s["category"], "security");
        assert!(s["description"].as_str().unwrap().contains("Actor: alice"));
        let opts = Options {
            jira_project: Some("SEC".into()),
            ..Options::default()
        };
        let ji: serde_json::Value = serde_json::from_slice(&body(Format::Jira, &opts, &e)).unwrap();
        assert_eq!(ji["fields"]["project"]["key"], "SEC");
        assert_eq!(ji["fields"]["issuetype"]["name"], "Task");
        assert_eq!(ji["fields"]["description"]["type"], "doc");
        assert_eq!(ji["fields"]["labels"][1], "jumpgate-session-open-shell");
        assert!(Format::parse("xml").unwrap_err().contains("servicenow"));
    }
}
