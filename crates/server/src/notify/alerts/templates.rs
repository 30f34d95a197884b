//! Alert mail's subject and body: templates filled with an audit entry's
//! fields, and only those named in [`FIELDS`].
//!
//! The allow-list is what keeps secrets and session content out of mail:
//! a template can only name an entry's own fields, and an audit entry
//! never holds a password, a secret's value or session output (the vault
//! records names and versions, recording search the size of the text).

use crate::notify::Entry;

/// The placeholders a template may use.
pub(crate) const FIELDS: [&str; 9] = [
    "action", "actor", "target", "outcome", "at", "groups", "detail", "id", "rule",
];

/// Subject when the rule gives none.
pub(crate) const DEFAULT_SUBJECT: &str = "[Jumpgate] {action}: {target} ({outcome})";

/// Body when the rule gives none.
pub(crate) const DEFAULT_BODY: &str = "Jumpgate recorded an event that alert rule {rule} watches.

Action:  {action}
Actor:   {actor}
Target:  {target}
Outcome: {outcome}
At:      {at}
Groups:  {groups}
Detail:  {detail}

Audit entry #{id}.
";

/// Longest template accepted, in bytes.
const MAX_LEN: usize = 4000;

/// Checks a template: a known placeholder in each `{…}`, braces paired.
///
/// # Errors
/// What is wrong, naming the placeholder.
pub(crate) fn check(template: &str) -> Result<(), String> {
    if template.len() > MAX_LEN {
        return Err(format!("templates are at most {MAX_LEN} bytes"));
    }
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without its `{`".to_owned());
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "a `{` without its `}`".to_owned())?;
        let name = &after[..close];
        if !FIELDS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (expected one of: {})",
                FIELDS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// `template` filled with `entry`'s fields (a checked template; an
/// unknown placeholder is left as written).
pub(crate) fn render(template: &str, entry: &Entry, rule: &str) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match value(&after[..close], entry, rule) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn value(name: &str, entry: &Entry, rule: &str) -> Option<String> {
    Some(match name {
        "action" => entry.action.clone(),
        "actor" => entry.actor.clone(),
        "target" => entry.target.clone(),
        "outcome" => entry.outcome.clone(),
        "at" => crate::ids::rfc3339(entry.at),
        "groups" => {
            let g = entry.group_names();
            if g.is_empty() {
                "(site)".to_owned()
            } else {
                g.join(", ")
            }
        }
        "detail" => entry.detail.clone(),
        "id" => entry.id.to_string(),
        "rule" => rule.to_owned(),
        _ => return None,
    })
}

/// A subject on one line (a header cannot hold a line break).
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: 42,
            at: 0,
            actor: "lucy".into(),
            action: "lockout".into(),
            target: "lucy".into(),
            outcome: "locked".into(),
            detail: "locked for 900 s".into(),
            groups: Some(r#"["default"]"#.into()),
        }
    }

    #[test]
    fn templates_name_only_the_entry_fields() {
        assert!(check(DEFAULT_SUBJECT).is_ok());
        assert!(check(DEFAULT_BODY).is_ok());
        let e = check("{password}").unwrap_err();
        assert!(e.contains("unknown placeholder `{password}`"), "{e}");
        assert!(check("{action").is_err());
        assert!(check("action}").is_err());
        assert_eq!(
            render(
                "{action} {target} {outcome} {groups} #{id} {rule}",
                &entry(),
                "r1"
            ),
            "lockout lucy locked default #42 r1"
        );
        assert_eq!(render("at {at}", &entry(), "r"), "at 1970-01-01T00:00:00Z");
        assert_eq!(one_line("a\r\nBcc: x@y"), "a  Bcc: x@y");
    }
}
