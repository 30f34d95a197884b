//! The policy model, its YAML form and its validation.
//!
//! A policy names **applications** (a path or a glob, optionally pinned
//! to a SHA-256 and an argument pattern), **rules** that give an action to
//! some applications for some people on some endpoints (first match wins,
//! like a firewall), **admin sessions** (root for a bounded time), and the
//! **default** for programs no rule matches. See docs/design/14-epm.md §1.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens when a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Run as root.
    Elevate,
    /// Run as root once the caller gives a reason.
    ElevateWithReason,
    /// Run as root once a technician approves (online).
    ElevateWithApproval,
    /// Run as root once the caller types the response a technician read
    /// them for the endpoint's challenge (works offline).
    ElevateWithCode,
    /// Refuse.
    Block,
    /// Run as the caller (not root), and record it.
    AuditOnly,
}

impl Action {
    pub const ALL: [Self; 6] = [
        Self::Elevate,
        Self::ElevateWithReason,
        Self::ElevateWithApproval,
        Self::ElevateWithCode,
        Self::Block,
        Self::AuditOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Elevate => "elevate",
            Self::ElevateWithReason => "elevate-with-reason",
            Self::ElevateWithApproval => "elevate-with-approval",
            Self::ElevateWithCode => "elevate-with-code",
            Self::Block => "block",
            Self::AuditOnly => "audit-only",
        }
    }

    /// Whether the program runs as root when the action's proof is given.
    pub fn elevates(self) -> bool {
        !matches!(self, Self::Block | Self::AuditOnly)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action `{s}` (expected one of: {})", action_names()))
    }
}

fn action_names() -> String {
    Action::ALL.map(Action::as_str).join(", ")
}

/// What an admin session needs before it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    Reason,
    Approval,
    Code,
}

impl Proof {
    /// The elevation action that asks for the same proof.
    pub fn action(self) -> Action {
        match self {
            Self::Reason => Action::ElevateWithReason,
            Self::Approval => Action::ElevateWithApproval,
            Self::Code => Action::ElevateWithCode,
        }
    }
}

/// A program the policy talks about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Unique; rules refer to it.
    pub name: String,
    /// Absolute path, or a glob over absolute paths (`*` within one path
    /// component, `**` across components, `?` one character).
    pub path: String,
    /// The file must hash to this (lowercase hex); `None`: any content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A regular expression the arguments, joined by single spaces, must
    /// match as a whole; `None`: any arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// The Debian package that owns the program (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// Who a rule or an admin session applies to. Empty lists mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Endpoint groups (as on the gateway); empty: every endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_groups: Vec<String>,
    /// Local user names; with `groups`, the rule applies to a caller named
    /// here **or** in one of the groups. Both empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Local group names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Gives an action to some applications within a scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; named in decisions and events.
    pub name: String,
    /// Names from [`Policy::applications`].
    pub applications: Vec<String>,
    #[serde(flatten)]
    pub scope: Scope,
    pub action: Action,
    /// How long a caller waits for an approval (`elevate-with-approval`
    /// only), e.g. `10m`; default 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout: Option<String>,
}

/// Root for a bounded time (`jumpgate elevate --admin-session 15m`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSession {
    pub name: String,
    #[serde(flatten)]
    pub scope: Scope,
    /// Longest session, 1 to 1440 minutes.
    pub max_minutes: u32,
    /// What the caller must give first.
    pub needs: Proof,
}

/// A whole policy: what an endpoint enforces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The action for programs no rule matches.
    pub default: Action,
    #[serde(default)]
    pub applications: Vec<Application>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_sessions: Vec<AdminSession>,
}

impl Default for Policy {
    /// Nothing is elevated: the policy of a site that has not written one.
    fn default() -> Self {
        Self {
            default: Action::Block,
            applications: Vec::new(),
            rules: Vec::new(),
            admin_sessions: Vec::new(),
        }
    }
}

/// One bad field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `rules[3].action`, `applications[0].path`, … (`` for the document).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a policy was refused: every bad field, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Most rules, applications or admin sessions in one policy.
pub const MAX_ITEMS: usize = 100_000;
/// Longest name, path or pattern.
pub const MAX_TEXT: usize = 4096;
/// Default wait for an approval.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for an approval.
pub const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl Policy {
    /// Parses YAML (or JSON, which is YAML) and validates it.
    ///
    /// # Errors
    /// A syntax error (with its line and column) or the bad fields.
    pub fn from_yaml(text: &str) -> Result<Self, Problems> {
        let policy: Self = serde_norway::from_str(text).map_err(|e| {
            let field = yaml_error_field(&e.to_string());
            Problems(vec![Problem {
                field,
                message: e.to_string(),
            }])
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// The YAML form (what `jg epm policy export` writes).
    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings cannot fail.
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Checks every field; lists all problems, not just the first.
    ///
    /// # Errors
    /// The bad fields.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Vec::new();
        let mut push = |field: String, message: String| p.push(Problem { field, message });
        for (what, n) in [
            ("applications", self.applications.len()),
            ("rules", self.rules.len()),
            ("admin_sessions", self.admin_sessions.len()),
        ] {
            if n > MAX_ITEMS {
                push(
                    what.into(),
                    format!("at most {MAX_ITEMS} entries (has {n})"),
                );
            }
        }
        let mut apps = std::collections::HashSet::new();
        for (i, a) in self.applications.iter().enumerate() {
            let at = |f: &str| format!("applications[{i}].{f}");
            if let Err(m) = check_name(&a.name) {
                push(at("name"), m);
            } else if !apps.insert(a.name.as_str()) {
                push(at("name"), format!("`{}` is defined twice", a.name));
            }
            if let Err(m) = check_path(&a.path) {
                push(at("path"), m);
            }
            if let Some(h) = &a.sha256
                && !(h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            {
                push(at("sha256"), "must be 64 lowercase hex digits".into());
            }
            if let Some(re) = &a.args {
                if re.len() > MAX_TEXT {
                    push(at("args"), format!("longer than {MAX_TEXT} characters"));
                } else if let Err(e) = crate::engine::args_regex(re) {
                    push(at("args"), format!("invalid regular expression: {e}"));
                }
            }
            if let Some(pkg) = &a.package
                && (pkg.is_empty() || pkg.len() > 255)
            {
                push(at("package"), "must be 1 to 255 characters".into());
            }
        }
        let mut rules = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = |f: &str| format!("rules[{i}].{f}");
            if let Err(m) = check_name(&r.name) {
                push(at("name"), m);
            } else if !rules.insert(r.name.as_str()) {
                push(at("name"), format!("`{}` is defined twice", r.name));
            }
            if r.applications.is_empty() {
                push(at("applications"), "names no application".into());
            }
            for (j, name) in r.applications.iter().enumerate() {
                if !apps.contains(name.as_str()) {
                    push(
                        format!("rules[{i}].applications[{j}]"),
                        format!("no application named `{name}`"),
                    );
                }
            }
            check_scope(&r.scope, &|f| format!("rules[{i}].{f}"), &mut push);
            match (&r.approval_timeout, r.action) {
                (Some(_), a) if a != Action::ElevateWithApproval => push(
                    at("approval_timeout"),
                    "only for action elevate-with-approval".into(),
                ),
                (Some(t), _) => {
                    if let Err(m) = parse_timeout(t) {
                        push(at("approval_timeout"), m);
                    }
                }
                (None, _) => {}
            }
        }
        let mut sessions = std::collections::HashSet::new();
        for (i, s) in self.admin_sessions.iter().enumerate() {
            let at = |f: &str| format!("admin_sessions[{i}].{f}");
            if let Err(m) = check_name(&s.name) {
                push(at("name"), m);
            } else if !sessions.insert(s.name.as_str()) {
                push(at("name"), format!("`{}` is defined twice", s.name));
            }
            if !(1..=1440).contains(&s.max_minutes) {
                push(at("max_minutes"), "must be 1 to 1440".into());
            }
            check_scope(&s.scope, &|f| format!("admin_sessions[{i}].{f}"), &mut push);
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Problems(p))
        }
    }
}

/// Parses an approval timeout (`90s`, `10m`, `2h`).
///
/// # Errors
/// Not a duration, zero, or longer than a day.
pub fn parse_timeout(t: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(t).map_err(|e| format!("`{t}`: {e}"))?;
    if d.is_zero() || d > MAX_APPROVAL_TIMEOUT {
        return Err(format!("`{t}`: must be more than 0 and at most 24h"));
    }
    Ok(d)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ' | '+'))
    {
        return Err(format!(
            "`{name}`: only letters, digits, spaces and - _ . + are allowed"
        ));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must be absolute (start with /)"));
    }
    if path.len() > MAX_TEXT {
        return Err(format!("longer than {MAX_TEXT} characters"));
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return Err(format!("`{path}` must not contain . or .. components"));
    }
    if path.contains('\0') {
        return Err("must not contain NUL".into());
    }
    Ok(())
}

fn check_scope(scope: &Scope, at: &dyn Fn(&str) -> String, push: &mut impl FnMut(String, String)) {
    for (what, list) in [
        ("endpoint_groups", &scope.endpoint_groups),
        ("users", &scope.users),
        ("groups", &scope.groups),
    ] {
        for (j, v) in list.iter().enumerate() {
            if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control() || c == ':') {
                push(
                    format!("{}[{j}]", at(what)),
                    format!("`{v}` is not a valid name"),
                );
            }
        }
    }
}

/// serde_norway names the field in its message (`rules[1].action: unknown
/// variant …`); pull it out so the caller gets it as a field.
fn yaml_error_field(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((head, _))
            if !head.contains(' ')
                && head
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_') =>
        {
            head.to_owned()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
default: block
applications:
  - name: apt
    path: /usr/bin/apt
    args: "^(update|install [a-z0-9.+-]+)$"
    package: apt
  - name: id
    path: /usr/bin/id
  - name: sbin
    path: /usr/sbin/*
rules:
  - name: helpdesk-apt
    applications: [apt]
    endpoint_groups: [linux]
    groups: [staff]
    action: elevate-with-reason
  - name: id-for-all
    applications: [id]
    action: elevate
  - name: sbin-approval
    applications: [sbin]
    action: elevate-with-approval
    approval_timeout: 5m
admin_sessions:
  - name: oncall
    groups: [oncall]
    max_minutes: 30
    needs: reason
"#;

    #[test]
    fn yaml_round_trips() {
        let p = Policy::from_yaml(SAMPLE).unwrap();
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].scope.groups, ["staff"]);
        assert_eq!(p.admin_sessions[0].needs, Proof::Reason);
        let again = Policy::from_yaml(&p.to_yaml()).unwrap();
        assert_eq!(again, p);
        // JSON is YAML too.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(Policy::from_yaml(&json).unwrap(), p);
    }

    #[test]
    fn validation_names_every_bad_field() {
        let mut p = Policy::from_yaml(SAMPLE).unwrap();
        p.applications[0].path = "usr/bin/apt".into();
        p.applications[1].sha256 = Some("ABC".into());
        p.applications[2].args = Some("(".into());
        p.rules[1].applications.push("aptt".into());
        p.rules[0].approval_timeout = Some("5m".into());
        p.rules[2].approval_timeout = Some("2d".into());
        p.rules[2].name = "helpdesk-apt".into();
        p.admin_sessions[0].max_minutes = 0;
        let fields: Vec<String> = p
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "applications[0].path",
                "applications[1].sha256",
                "applications[2].args",
                "rules[0].approval_timeout",
                "rules[1].applications[1]",
                "rules[2].name",
                "rules[2].approval_timeout",
                "admin_sessions[0].max_minutes",
            ]
        );
    }

    #[test]
    fn yaml_errors_name_the_field() {
        let bad = SAMPLE.replace("action: elevate\n", "action: elevated\n");
        let e = Policy::from_yaml(&bad).unwrap_err();
        assert_eq!(e.0[0].field, "rules[1].action", "{e}");
        assert!(e.0[0].message.contains("elevated"), "{e}");
        let unknown = SAMPLE.replace("    package: apt\n", "    pakage: apt\n");
        let e = Policy::from_yaml(&unknown).unwrap_err();
        assert!(e.0[0].field.starts_with("applications[0]"), "{e}");
        let syntax = Policy::from_yaml("default: [").unwrap_err();
        assert!(syntax.to_string().contains("line"), "{syntax}");
    }
}
