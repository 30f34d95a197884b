//! Alert rules (`alert_rules`): which audit entries call for mail, to
//! whom, how often. Adding and removing one is audited
//! (`alert-rule-add`, `alert-rule-remove`).
//!
//! The rate limit is a token bucket per rule: `max_per_hour` tokens,
//! refilled evenly over the hour, one taken per entry queued; its state is
//! stored with the rule and changed in the transaction that queues the
//! mail, so it holds across restarts and gateways.

use std::collections::BTreeMap;
use std::time::Duration;

use jumpgate_api_types::alerts as api;
use serde::{Deserialize, Serialize};

use super::templates;
use crate::notify::Entry;
use crate::store::audit::{AuditAction, AuditEvent};
use crate::store::{Exec, Store, sql};

/// Default rate limit: mails (or digest entries) per hour.
pub(crate) const DEFAULT_MAX_PER_HOUR: u32 = 60;
const MAX_MAX_PER_HOUR: u32 = 100_000;
const DIGEST_MIN: Duration = Duration::from_secs(10);
const DIGEST_MAX: Duration = Duration::from_secs(86_400);
const HOUR_MS: i64 = 3_600_000;
/// Recipients per rule, at most (of each kind).
const MAX_RECIPIENTS: usize = 100;

/// Why a rule could not be added, removed or used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AlertError {
    /// The request is not a valid rule (the message names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("an alert rule named `{0}` already exists")]
    NameTaken(String),
    #[error("no alert rule named `{0}`")]
    NotFound(String),
    /// The mail server is not configured or refused (never a password).
    #[error("{0}")]
    Smtp(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Who gets a rule's mail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recipients {
    #[serde(default)]
    pub(crate) users: Vec<String>,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    #[serde(default)]
    pub(crate) addresses: Vec<String>,
    /// The approvers of the entry's group (access requests: the group's
    /// approval setting names them, as roles or users).
    #[serde(default)]
    pub(crate) approvers: bool,
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) events: Vec<String>,
    pub(crate) outcome: Option<String>,
    /// Endpoint groups an entry must concern (one of them); empty: any.
    pub(crate) groups: Vec<String>,
    pub(crate) recipients: Recipients,
    /// 0: a mail per entry; else the digest window in seconds.
    pub(crate) digest_secs: i64,
    pub(crate) max_per_hour: i64,
    pub(crate) tokens_milli: i64,
    pub(crate) refilled_at: i64,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
}

type RuleRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    String,
);

const SELECT_RULES: &str =
    "SELECT name, events, outcome, recipients, mode, digest_secs, max_per_hour,
        tokens_milli, refilled_at, subject, body, created_by, created_at, groups
   FROM alert_rules ORDER BY name";

fn from_row(r: RuleRow) -> Rule {
    Rule {
        name: r.0,
        events: serde_json::from_str(&r.1).unwrap_or_default(),
        outcome: r.2,
        groups: serde_json::from_str(&r.13).unwrap_or_default(),
        recipients: serde_json::from_str(&r.3).unwrap_or_default(),
        digest_secs: if r.4 == "digest" { r.5 } else { 0 },
        max_per_hour: r.6,
        tokens_milli: r.7,
        refilled_at: r.8,
        subject: r.9,
        body: r.10,
        created_by: r.11,
        created_at: r.12,
    }
}

impl Rule {
    /// Whether `entry` calls for this rule's mail: its action is one of the
    /// rule's events (`prefix*` matches a prefix), if the rule names one,
    /// its outcome is that outcome, and if the rule names groups, the entry
    /// concerns one of them (site-wide entries concern none).
    pub(crate) fn matches(&self, entry: &Entry) -> bool {
        let action = self.events.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => entry.action.starts_with(prefix),
            None => *e == entry.action,
        });
        action
            && self.outcome.as_ref().is_none_or(|o| *o == entry.outcome)
            && (self.groups.is_empty()
                || entry.group_names().iter().any(|g| self.groups.contains(g)))
    }

    /// Takes a token from the bucket as of `now_ms` (refilled first);
    /// `false`: the rate limit holds this one back.
    pub(crate) fn take_token(&mut self, now_ms: i64) -> bool {
        let cap = self.max_per_hour * 1000;
        let elapsed = (now_ms - self.refilled_at).max(0);
        // Tokens (in thousandths) gained: max_per_hour per hour.
        let gained = elapsed.saturating_mul(self.max_per_hour) * 1000 / HOUR_MS;
        if gained > 0 {
            self.tokens_milli = (self.tokens_milli + gained).min(cap);
            // Keep the remainder of the time not yet turned into a token.
            self.refilled_at = if self.tokens_milli >= cap {
                now_ms
            } else {
                self.refilled_at + gained * HOUR_MS / (self.max_per_hour * 1000)
            };
        } else if self.tokens_milli >= cap {
            self.refilled_at = now_ms;
        }
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }

    pub(crate) fn dto(&self, counts: Counts) -> api::AlertRule {
        api::AlertRule {
            name: self.name.clone(),
            events: self.events.clone(),
            outcome: self.outcome.clone(),
            groups: self.groups.clone(),
            users: self.recipients.users.clone(),
            roles: self.recipients.roles.clone(),
            addresses: self.recipients.addresses.clone(),
            approvers: self.recipients.approvers,
            mode: if self.digest_secs > 0 {
                "digest"
            } else {
                "each"
            }
            .to_owned(),
            digest_every_secs: u64::try_from(self.digest_secs).unwrap_or(0),
            max_per_hour: u32::try_from(self.max_per_hour).unwrap_or(0),
            subject: self.subject.clone(),
            body: self.body.clone(),
            created_by: self.created_by.clone(),
            created_at: crate::ids::rfc3339(self.created_at),
            sent: counts.sent,
            waiting: counts.waiting,
            limited: counts.limited,
            dead: counts.dead,
        }
    }
}

/// A rule's mail queue, counted by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) waiting: u64,
    pub(crate) limited: u64,
    pub(crate) dead: u64,
}

fn valid_event(e: &str) -> bool {
    let body = e.strip_suffix('*').unwrap_or(e);
    !e.is_empty()
        && e.len() <= 64
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':')
}

/// Checks a new rule: its name, events, recipients, window, limit and
/// templates (the message names the field).
fn validate(req: &api::NewAlertRule) -> Result<(), AlertError> {
    let bad = |m: String| Err(AlertError::Invalid(m));
    if let Err(e) = crate::ids::validate_name("alert rule", &req.name) {
        return bad(format!("name: {e}"));
    }
    if req.events.is_empty() {
        return bad("events: at least one audit action (e.g. lockout, open-session:*)".into());
    }
    if let Some(e) = req.events.iter().find(|e| !valid_event(e)) {
        return bad(format!(
            "events: `{e}` is not an audit action name (lowercase, digits, `-`, `:`, a final `*`)"
        ));
    }
    if req
        .outcome
        .as_deref()
        .is_some_and(|o| o.is_empty() || o.len() > 64)
    {
        return bad("outcome: 1 to 64 characters".into());
    }
    if req.groups.len() > MAX_RECIPIENTS {
        return bad(format!("groups: at most {MAX_RECIPIENTS}"));
    }
    if let Some(g) = req
        .groups
        .iter()
        .find(|g| crate::ids::validate_name("group", g).is_err())
    {
        return bad(format!("groups: `{g}` is not a group name"));
    }
    if req.users.is_empty() && req.roles.is_empty() && req.addresses.is_empty() && !req.approvers {
        return bad("recipients: at least one user, role, address or the approvers".into());
    }
    if req.approvers
        && !req
            .events
            .iter()
            .any(|e| e.starts_with("access-") || e == "*")
    {
        return bad(
            "approvers: only for access request events (access-request, access-approve, …)".into(),
        );
    }
    for (what, list) in [
        ("users", &req.users),
        ("roles", &req.roles),
        ("addresses", &req.addresses),
    ] {
        if list.len() > MAX_RECIPIENTS {
            return bad(format!("{what}: at most {MAX_RECIPIENTS}"));
        }
    }
    if let Some(a) = req
        .addresses
        .iter()
        .find(|a| a.parse::<lettre::Address>().is_err())
    {
        return bad(format!("addresses: `{a}` is not a mail address"));
    }
    if let Some(d) = &req.digest_every {
        let every = humantime::parse_duration(d)
            .map_err(|e| AlertError::Invalid(format!("digest_every: `{d}`: {e}")))?;
        if !(DIGEST_MIN..=DIGEST_MAX).contains(&every) {
            return bad("digest_every: between 10s and 1d".into());
        }
    }
    if let Some(n) = req.max_per_hour
        && !(1..=MAX_MAX_PER_HOUR).contains(&n)
    {
        return bad(format!("max_per_hour: 1 to {MAX_MAX_PER_HOUR}"));
    }
    for (what, t) in [("subject", &req.subject), ("body", &req.body)] {
        if let Some(t) = t
            && let Err(e) = templates::check(t)
        {
            return bad(format!("{what}: {e}"));
        }
    }
    Ok(())
}

/// Adds a rule (audited).
///
/// # Errors
/// Invalid, a name taken, an unknown user or role, or the store failed.
pub(crate) async fn add(
    db: &Store,
    req: &api::NewAlertRule,
    actor: &str,
) -> Result<Rule, AlertError> {
    validate(req)?;
    let mut tx = db.write().await?;
    for u in &req.users {
        let n: i64 = sql!(tx, |c| sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE username = $1"
        )
        .bind(u)
        .fetch_one(&mut *c)
        .await)?;
        if n == 0 {
            return Err(AlertError::Invalid(format!("users: no user `{u}`")));
        }
    }
    for g in &req.groups {
        if !crate::agents::groups::exists(&mut tx, g).await? {
            return Err(AlertError::Invalid(format!("groups: no group `{g}`")));
        }
    }
    for r in &req.roles {
        let n: i64 = sql!(tx, |c| sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM roles WHERE name = $1"
        )
        .bind(r)
        .fetch_one(&mut *c)
        .await)?;
        if n == 0 {
            return Err(AlertError::Invalid(format!("roles: no role `{r}`")));
        }
    }
    let now = crate::ids::now_ms();
    let max_per_hour = i64::from(req.max_per_hour.unwrap_or(DEFAULT_MAX_PER_HOUR));
    let digest_secs = match &req.digest_every {
        Some(d) => humantime::parse_duration(d).map_or(0, |d| d.as_secs() as i64),
        None => 0,
    };
    let rule = Rule {
        name: req.name.clone(),
        events: req.events.clone(),
        outcome: req.outcome.clone(),
        groups: {
            let mut g = req.groups.clone();
            g.sort();
            g.dedup();
            g
        },
        recipients: Recipients {
            users: req.users.clone(),
            roles: req.roles.clone(),
            addresses: req.addresses.clone(),
            approvers: req.approvers,
        },
        digest_secs,
        max_per_hour,
        tokens_milli: max_per_hour * 1000,
        refilled_at: now,
        subject: req
            .subject
            .clone()
            .unwrap_or_else(|| templates::DEFAULT_SUBJECT.to_owned()),
        body: req
            .body
            .clone()
            .unwrap_or_else(|| templates::DEFAULT_BODY.to_owned()),
        created_by: actor.to_owned(),
        created_at: now,
    };
    let events = serde_json::to_string(&rule.events).unwrap_or_default();
    let recipients = serde_json::to_string(&rule.recipients).unwrap_or_default();
    let groups = serde_json::to_string(&rule.groups).unwrap_or_else(|_| "[]".into());
    let mode = if digest_secs > 0 { "digest" } else { "each" };
    let inserted = sql!(tx, |c| sqlx::query(
        "INSERT INTO alert_rules (name, events, outcome, recipients, mode, digest_secs,
             max_per_hour, tokens_milli, refilled_at, subject, body, created_by, created_at,
             groups)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (name) DO NOTHING"
    )
    .bind(&rule.name)
    .bind(&events)
    .bind(&rule.outcome)
    .bind(&recipients)
    .bind(mode)
    .bind(rule.digest_secs)
    .bind(rule.max_per_hour)
    .bind(rule.tokens_milli)
    .bind(rule.refilled_at)
    .bind(&rule.subject)
    .bind(&rule.body)
    .bind(&rule.created_by)
    .bind(rule.created_at)
    .bind(&groups)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Err(AlertError::NameTaken(rule.name));
    }
    let mut detail = format!(
        "events={} mode={mode} users={} roles={} addresses={} max_per_hour={max_per_hour}",
        rule.events.join(","),
        rule.recipients.users.len(),
        rule.recipients.roles.len(),
        rule.recipients.addresses.len(),
    );
    if !rule.groups.is_empty() {
        detail.push_str(&format!(" groups={}", rule.groups.join(",")));
    }
    tx.audit(
        AuditEvent::new(actor, AuditAction::AlertRuleAdd, &rule.name)
            .detail(detail)
            .groups(&rule.groups),
    )
    .await?;
    tx.commit().await?;
    Ok(rule)
}

/// Every rule, by name.
///
/// # Errors
/// The read failed.
pub(crate) async fn all(e: &mut impl Exec) -> Result<Vec<Rule>, sqlx::Error> {
    let rows: Vec<RuleRow> = sql!(e, |c| sqlx::query_as(SELECT_RULES).fetch_all(&mut *c).await)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Every rule with its queue's counts.
///
/// # Errors
/// The read failed.
pub(crate) async fn list(db: &Store) -> Result<Vec<(Rule, Counts)>, sqlx::Error> {
    let mut c = db.conn().await?;
    let rules = all(&mut c).await?;
    let rows: Vec<(String, String, i64)> = sql!(c, |c| sqlx::query_as(
        "SELECT rule, state, CAST(COUNT(*) AS BIGINT) FROM alert_mail GROUP BY rule, state"
    )
    .fetch_all(&mut *c)
    .await)?;
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for (rule, state, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let c = counts.entry(rule).or_default();
        match state.as_str() {
            "sent" => c.sent += n,
            "pending" | "digest" => c.waiting += n,
            "limited" => c.limited += n,
            "dead" => c.dead += n,
            _ => {}
        }
    }
    Ok(rules
        .into_iter()
        .map(|r| {
            let c = counts.get(&r.name).copied().unwrap_or_default();
            (r, c)
        })
        .collect())
}

/// Removes a rule (audited). Mail it already queued is still sent.
///
/// # Errors
/// No such rule, or the store failed.
pub(crate) async fn remove(db: &Store, name: &str, actor: &str) -> Result<(), AlertError> {
    let mut tx = db.write().await?;
    let n = sql!(tx, |c| sqlx::query(
        "DELETE FROM alert_rules WHERE name = $1"
    )
    .bind(name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(AlertError::NotFound(name.to_owned()));
    }
    tx.audit(AuditEvent::new(actor, AuditAction::AlertRuleRemove, name))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a rule's bucket after entries took tokens.
pub(crate) async fn save_bucket(e: &mut impl Exec, rule: &Rule) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "UPDATE alert_rules SET tokens_milli = $1, refilled_at = $2 WHERE name = $3"
    )
    .bind(rule.tokens_milli)
    .bind(rule.refilled_at)
    .bind(&rule.name)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// The mail addresses of a rule's recipients now: the users' emails, the
/// members' of the roles, the addresses; de-duplicated, in order. Users
/// without an email are skipped.
pub(crate) async fn addresses(
    e: &mut impl Exec,
    r: &Recipients,
) -> Result<Vec<String>, sqlx::Error> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |a: String| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
            out.push(a);
        }
    };
    for u in &r.users {
        let email: Option<Option<String>> = sql!(e, |c| sqlx::query_scalar(
            "SELECT email FROM users WHERE username = $1"
        )
        .bind(u)
        .fetch_optional(&mut *c)
        .await)?;
        if let Some(Some(a)) = email {
            push(a);
        }
    }
    for role in &r.roles {
        let emails: Vec<Option<String>> = sql!(e, |c| sqlx::query_scalar(
            "SELECT email FROM users WHERE role = $1 ORDER BY username"
        )
        .bind(role)
        .fetch_all(&mut *c)
        .await)?;
        for a in emails.into_iter().flatten() {
            push(a);
        }
    }
    for a in &r.addresses {
        push(a.clone());
    }
    Ok(out)
}

/// The mail addresses of the approvers of `groups` (their approval
/// settings' `role:` members and `user:`s), excluding `requester`: who is
/// told about an access request.
pub(crate) async fn approver_addresses(
    e: &mut impl Exec,
    groups: &[String],
    requester: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut r = Recipients::default();
    for g in groups {
        if let Some(p) = crate::access::policy(e, g).await? {
            for a in p.approvers {
                match a.split_once(':') {
                    Some(("role", role)) => r.roles.push(role.to_owned()),
                    Some(("user", u)) if u != requester => r.users.push(u.to_owned()),
                    _ => {}
                }
            }
        }
    }
    let mut out = addresses(e, &r).await?;
    // A requester in an approving role is not asked to decide their own.
    if !r.roles.is_empty() {
        let own: Option<Option<String>> = sql!(e, |c| sqlx::query_scalar(
            "SELECT email FROM users WHERE username = $1"
        )
        .bind(requester)
        .fetch_optional(&mut *c)
        .await)?;
        if let Some(Some(own)) = own {
            out.retain(|a| !a.eq_ignore_ascii_case(&own));
        }
    }
    Ok(out)
}

/// The mail addresses of the users who may decide an elevation request
/// on `groups`: those whose role holds `epm-approve` and whose groups
/// include one of them, except `actor` (the approver who just acted; an
/// elevation's requester is no console user, so nobody else is left out).
pub(crate) async fn elevation_approver_addresses(
    e: &mut impl Exec,
    groups: &[String],
    actor: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, String, Option<String>)> = sql!(e, |c| {
        sqlx::query_as(
            "SELECT u.username, u.email, u.groups, r.permissions
               FROM users u LEFT JOIN roles r ON r.name = u.role
              WHERE u.email IS NOT NULL ORDER BY u.username",
        )
        .fetch_all(&mut *c)
        .await
    })?;
    let mut out: Vec<String> = Vec::new();
    for (name, email, user_groups, permissions) in rows {
        let Some(email) = email else { continue };
        let holds = permissions
            .as_deref()
            .map(crate::rbac::store::stored_permissions)
            .is_some_and(|p| p.contains(&crate::rbac::Permission::EpmApprove));
        let list: Vec<String> = serde_json::from_str(&user_groups).unwrap_or_default();
        let scope = crate::rbac::Groups::from_list(&list);
        if name == actor || !holds || !groups.iter().any(|g| scope.contains(g)) {
            continue;
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&email)) {
            out.push(email);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(events: &[&str], outcome: Option<&str>, per_hour: i64) -> Rule {
        Rule {
            name: "r".into(),
            events: events.iter().map(|&e| e.to_owned()).collect(),
            outcome: outcome.map(str::to_owned),
            groups: Vec::new(),
            recipients: Recipients::default(),
            digest_secs: 0,
            max_per_hour: per_hour,
            tokens_milli: per_hour * 1000,
            refilled_at: 0,
            subject: String::new(),
            body: String::new(),
            created_by: String::new(),
            created_at: 0,
        }
    }

    fn entry(action: &str, outcome: &str) -> Entry {
        Entry {
            id: 1,
            at: 0,
            actor: "a".into(),
            action: action.into(),
            target: "t".into(),
            outcome: outcome.into(),
            detail: String::new(),
            groups: None,
        }
    }

    #[test]
    fn a_rule_matches_its_actions_prefixes_and_outcome() {
        let r = rule(&["lockout", "open-session:*"], None, 1);
        assert!(r.matches(&entry("lockout", "locked")));
        assert!(r.matches(&entry("open-session:shell", "denied")));
        assert!(!r.matches(&entry("login", "ok")));
        let r = rule(&["open-session:*"], Some("denied"), 1);
        assert!(r.matches(&entry("open-session:exec", "denied")));
        assert!(!r.matches(&entry("open-session:exec", "ok")));
    }

    #[test]
    fn a_rule_with_groups_matches_only_entries_about_one_of_them() {
        let mut r = rule(&["session-open:*"], None, 1);
        r.groups = vec!["prod".into(), "pci".into()];
        let about = |groups: Option<&str>| Entry {
            groups: groups.map(str::to_owned),
            ..entry("session-open:shell", "ok")
        };
        assert!(r.matches(&about(Some(r#"["pci"]"#))));
        assert!(r.matches(&about(Some(r#"["web","prod"]"#))));
        assert!(!r.matches(&about(Some(r#"["web"]"#))));
        assert!(!r.matches(&about(Some("[]"))));
        // A site-wide entry concerns no group.
        assert!(!r.matches(&about(None)));
        // The action still has to match.
        assert!(!r.matches(&Entry {
            groups: Some(r#"["prod"]"#.into()),
            ..entry("login", "ok")
        }));
        // Without groups: any entry.
        r.groups.clear();
        assert!(r.matches(&about(None)));
    }

    #[test]
    fn the_bucket_holds_back_what_exceeds_the_rate_and_refills_evenly() {
        let mut r = rule(&["x"], None, 2);
        assert!(r.take_token(0));
        assert!(r.take_token(0));
        assert!(!r.take_token(1000));
        // Half an hour gives one token back at 2 per hour.
        assert!(r.take_token(HOUR_MS / 2));
        assert!(!r.take_token(HOUR_MS / 2 + 1));
        // A long pause fills it to its capacity, no more.
        assert!(r.take_token(100 * HOUR_MS));
        assert!(r.take_token(100 * HOUR_MS));
        assert!(!r.take_token(100 * HOUR_MS));
    }

    #[test]
    fn invalid_rules_are_refused_naming_the_field() {
        let ok = api::NewAlertRule {
            name: "lockouts".into(),
            events: vec!["lockout".into()],
            addresses: vec!["sec@example.com".into()],
            ..Default::default()
        };
        assert!(validate(&ok).is_ok());
        let cases: Vec<(api::NewAlertRule, &str)> = vec![
            (
                api::NewAlertRule {
                    events: vec![],
                    ..ok.clone()
                },
                "events:",
            ),
            (
                api::NewAlertRule {
                    events: vec!["Lock out".into()],
                    ..ok.clone()
                },
                "events:",
            ),
            (
                api::NewAlertRule {
                    addresses: vec![],
                    ..ok.clone()
                },
                "recipients:",
            ),
            (
                api::NewAlertRule {
                    addresses: vec!["not an address".into()],
                    ..ok.clone()
                },
                "addresses:",
            ),
            (
                api::NewAlertRule {
                    digest_every: Some("1s".into()),
                    ..ok.clone()
                },
                "digest_every:",
            ),
            (
                api::NewAlertRule {
                    max_per_hour: Some(0),
                    ..ok.clone()
                },
                "max_per_hour:",
            ),
            (
                api::NewAlertRule {
                    groups: vec!["not a group!".into()],
                    ..ok.clone()
                },
                "groups:",
            ),
            (
                api::NewAlertRule {
                    body: Some("{password}".into()),
                    ..ok
                },
                "body:",
            ),
        ];
        for (req, field) in cases {
            let e = validate(&req).unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
    }
}
