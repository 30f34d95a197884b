//! A policy compiled for one endpoint, and the decision for one program.
//!
//! Compiling drops the rules whose endpoint groups do not include this
//! endpoint, indexes applications by exact path (a hash map) and puts the
//! glob paths in one [`RegexSet`], and keeps each application's rules in
//! policy order. Deciding is then: the applications whose path matches
//! (one lookup plus one set match), filtered by hash and arguments, and
//! among their rules the first in policy order whose people match the
//! caller — first match wins, as in a firewall.

use std::collections::HashMap;
use std::time::Duration;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::policy::{Action, DEFAULT_APPROVAL_TIMEOUT, Policy, Proof, Scope, parse_timeout};

/// Who asks (on the endpoint: from the socket's peer credentials).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// Local user name.
    pub user: String,
    /// The user's local groups (primary and supplementary), by name.
    pub groups: Vec<String>,
}

/// What they want to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// Absolute path, resolved.
    pub path: String,
    /// SHA-256 of the file (lowercase hex); `None` when unknown (a what-if
    /// without it: hash-pinned applications do not match).
    pub sha256: Option<String>,
    /// Arguments, without the program itself.
    pub args: Vec<String>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The rule that matched; `None`: the policy's default.
    pub rule: Option<String>,
    /// The application the rule matched through.
    pub application: Option<String>,
    /// How long to wait for an approval (`elevate-with-approval`).
    pub approval_timeout: Duration,
}

impl Decision {
    /// "rule `x`" or "no rule matched; the default is block" — for
    /// messages to the person who asked.
    pub fn explain(&self) -> String {
        match &self.rule {
            Some(r) => format!("rule `{r}` ({})", self.action),
            None => format!("no rule matched; the default is {}", self.action),
        }
    }
}

/// An admin session the caller may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminGrant {
    pub rule: String,
    pub max_minutes: u32,
    pub needs: Proof,
}

#[derive(Debug)]
struct App {
    name: String,
    sha256: Option<String>,
    args: Option<Regex>,
    /// Indexes into `Engine::rules`, ascending (policy order).
    rules: Vec<usize>,
}

#[derive(Debug)]
struct CompiledRule {
    name: String,
    action: Action,
    users: Vec<String>,
    groups: Vec<String>,
    approval_timeout: Duration,
}

impl CompiledRule {
    fn applies_to(&self, caller: &Caller) -> bool {
        people_match(&self.users, &self.groups, caller)
    }
}

fn people_match(users: &[String], groups: &[String], caller: &Caller) -> bool {
    (users.is_empty() && groups.is_empty())
        || users.contains(&caller.user)
        || groups.iter().any(|g| caller.groups.iter().any(|c| c == g))
}

fn endpoint_match(scope: &Scope, endpoint_groups: &[String]) -> bool {
    scope.endpoint_groups.is_empty()
        || scope
            .endpoint_groups
            .iter()
            .any(|g| endpoint_groups.iter().any(|e| e == g))
}

/// A policy ready to decide on one endpoint.
#[derive(Debug)]
pub struct Engine {
    default: Action,
    apps: Vec<App>,
    rules: Vec<CompiledRule>,
    /// Exact path → applications.
    exact: HashMap<String, Vec<usize>>,
    /// Glob paths, one pattern per entry of `glob_apps`.
    globs: RegexSet,
    glob_apps: Vec<usize>,
    admin: Vec<(Scope, AdminGrant)>,
}

/// The anchored, size-limited regex of an application's `args`.
///
/// # Errors
/// Not a valid regular expression, or too big once compiled.
pub fn args_regex(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// A glob over absolute paths as a regex: `**` any characters, `*` any
/// characters but `/`, `?` one character but `/`; everything else literal.
fn glob_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

impl Engine {
    /// Compiles a **validated** policy for an endpoint in `endpoint_groups`.
    /// (Parts of an invalid policy that cannot compile never match.)
    pub fn compile(policy: &Policy, endpoint_groups: &[String]) -> Self {
        let mut apps: Vec<App> = Vec::with_capacity(policy.applications.len());
        let mut by_name = HashMap::with_capacity(policy.applications.len());
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut glob_patterns = Vec::new();
        let mut glob_apps = Vec::new();
        for a in &policy.applications {
            let i = apps.len();
            by_name.insert(a.name.as_str(), i);
            let args = match &a.args {
                Some(re) => match args_regex(re) {
                    Ok(r) => Some(r),
                    // Validation refuses this; never match rather than
                    // match everything.
                    Err(_) => continue,
                },
                None => None,
            };
            if is_glob(&a.path) {
                glob_patterns.push(glob_regex(&a.path));
                glob_apps.push(i);
            } else {
                exact.entry(a.path.clone()).or_default().push(i);
            }
            apps.push(App {
                name: a.name.clone(),
                sha256: a.sha256.clone(),
                args,
                rules: Vec::new(),
            });
        }
        let globs = RegexSetBuilder::new(&glob_patterns)
            .size_limit(64 << 20)
            .build()
            .unwrap_or_else(|_| {
                glob_apps.clear();
                RegexSet::empty()
            });
        let mut rules = Vec::new();
        for r in &policy.rules {
            if !endpoint_match(&r.scope, endpoint_groups) {
                continue;
            }
            let idx = rules.len();
            rules.push(CompiledRule {
                name: r.name.clone(),
                action: r.action,
                users: r.scope.users.clone(),
                groups: r.scope.groups.clone(),
                approval_timeout: r
                    .approval_timeout
                    .as_deref()
                    .and_then(|t| parse_timeout(t).ok())
                    .unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
            });
            for name in &r.applications {
                if let Some(&a) = by_name.get(name.as_str())
                    && let Some(app) = apps.get_mut(a)
                    && app.rules.last() != Some(&idx)
                {
                    app.rules.push(idx);
                }
            }
        }
        let admin = policy
            .admin_sessions
            .iter()
            .filter(|s| endpoint_match(&s.scope, endpoint_groups))
            .map(|s| {
                (
                    s.scope.clone(),
                    AdminGrant {
                        rule: s.name.clone(),
                        max_minutes: s.max_minutes,
                        needs: s.needs,
                    },
                )
            })
            .collect();
        Self {
            default: policy.default,
            apps,
            rules,
            exact,
            globs,
            glob_apps,
            admin,
        }
    }

    /// The decision for `caller` running `program`.
    pub fn decide(&self, caller: &Caller, program: &Program) -> Decision {
        let joined = program.args.join(" ");
        let mut best: Option<(usize, usize)> = None; // (rule, app)
        let mut consider = |a: usize| {
            let Some(app) = self.apps.get(a) else { return };
            if let Some(want) = &app.sha256
                && program.sha256.as_deref() != Some(want.as_str())
            {
                return;
            }
            if let Some(re) = &app.args
                && !re.is_match(&joined)
            {
                return;
            }
            // Rules are in policy order: the first that applies is this
            // application's best; only an earlier one elsewhere beats it.
            for &r in &app.rules {
                if best.is_some_and(|(b, _)| b <= r) {
                    break;
                }
                if self
                    .rules
                    .get(r)
                    .is_some_and(|rule| rule.applies_to(caller))
                {
                    best = Some((r, a));
                    break;
                }
            }
        };
        if let Some(list) = self.exact.get(&program.path) {
            for &a in list {
                consider(a);
            }
        }
        if !self.glob_apps.is_empty() {
            for m in self.globs.matches(&program.path).iter() {
                if let Some(&a) = self.glob_apps.get(m) {
                    consider(a);
                }
            }
        }
        match best.and_then(|(r, a)| Some((self.rules.get(r)?, self.apps.get(a)?))) {
            Some((rule, app)) => Decision {
                action: rule.action,
                rule: Some(rule.name.clone()),
                application: Some(app.name.clone()),
                approval_timeout: rule.approval_timeout,
            },
            None => Decision {
                action: self.default,
                rule: None,
                application: None,
                approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            },
        }
    }

    /// The first admin session rule that applies to `caller`.
    pub fn admin_session(&self, caller: &Caller) -> Option<AdminGrant> {
        self.admin
            .iter()
            .find(|(scope, _)| people_match(&scope.users, &scope.groups, caller))
            .map(|(_, g)| g.clone())
    }

    /// How many rules apply on this endpoint.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Application, Rule};

    fn sample() -> Policy {
        Policy::from_yaml(crate::policy::tests::SAMPLE).unwrap()
    }

    fn caller(user: &str, groups: &[&str]) -> Caller {
        Caller {
            user: user.into(),
            groups: groups.iter().map(|g| (*g).into()).collect(),
        }
    }

    fn program(path: &str, args: &[&str]) -> Program {
        Program {
            path: path.into(),
            sha256: None,
            args: args.iter().map(|a| (*a).into()).collect(),
        }
    }

    #[test]
    fn first_matching_rule_wins_and_the_default_applies_otherwise() {
        let p = sample();
        let linux = Engine::compile(&p, &["linux".into()]);
        let d = linux.decide(
            &caller("bob", &["staff"]),
            &program("/usr/bin/apt", &["update"]),
        );
        assert_eq!(
            (d.action, d.rule.as_deref(), d.application.as_deref()),
            (Action::ElevateWithReason, Some("helpdesk-apt"), Some("apt"))
        );
        // Arguments outside the pattern: no match → default.
        let d = linux.decide(
            &caller("bob", &["staff"]),
            &program("/usr/bin/apt", &["purge", "x"]),
        );
        assert_eq!((d.action, d.rule.as_deref()), (Action::Block, None));
        assert_eq!(d.explain(), "no rule matched; the default is block");
        // Not in `staff`.
        let d = linux.decide(
            &caller("eve", &["users"]),
            &program("/usr/bin/apt", &["update"]),
        );
        assert_eq!(d.action, Action::Block);
        // Another endpoint group: the rule is not there at all.
        let other = Engine::compile(&p, &["windows".into()]);
        let d = other.decide(
            &caller("bob", &["staff"]),
            &program("/usr/bin/apt", &["update"]),
        );
        assert_eq!(d.action, Action::Block);
        // Everyone may elevate `id`.
        let d = other.decide(&caller("eve", &[]), &program("/usr/bin/id", &["-u"]));
        assert_eq!(
            (d.action, d.rule.as_deref()),
            (Action::Elevate, Some("id-for-all"))
        );
    }

    #[test]
    fn globs_match_within_one_component_and_timeouts_carry() {
        let e = Engine::compile(&sample(), &[]);
        let d = e.decide(&caller("x", &[]), &program("/usr/sbin/reboot", &[]));
        assert_eq!(d.action, Action::ElevateWithApproval);
        assert_eq!(d.approval_timeout, Duration::from_secs(300));
        let d = e.decide(&caller("x", &[]), &program("/usr/sbin/sub/reboot", &[]));
        assert_eq!(d.action, Action::Block);
        assert_eq!(glob_regex("/opt/**/bin/?.sh"), r"^/opt/.*/bin/[^/]\.sh$");
    }

    #[test]
    fn a_pinned_hash_must_match() {
        let mut p = sample();
        p.applications[1].sha256 = Some("ab".repeat(32));
        let e = Engine::compile(&p, &[]);
        let mut prog = program("/usr/bin/id", &[]);
        assert_eq!(e.decide(&caller("x", &[]), &prog).action, Action::Block);
        prog.sha256 = Some("ab".repeat(32));
        assert_eq!(e.decide(&caller("x", &[]), &prog).action, Action::Elevate);
        prog.sha256 = Some("cd".repeat(32));
        assert_eq!(e.decide(&caller("x", &[]), &prog).action, Action::Block);
    }

    #[test]
    fn an_earlier_rule_through_another_application_wins() {
        let mut p = Policy {
            default: Action::Block,
            applications: vec![
                Application {
                    name: "any-bin".into(),
                    path: "/usr/bin/*".into(),
                    sha256: None,
                    args: None,
                    package: None,
                },
                Application {
                    name: "vim".into(),
                    path: "/usr/bin/vim".into(),
                    sha256: None,
                    args: None,
                    package: None,
                },
            ],
            rules: Vec::new(),
            admin_sessions: Vec::new(),
        };
        let rule = |name: &str, app: &str, action| Rule {
            name: name.into(),
            applications: vec![app.into()],
            scope: Scope::default(),
            action,
            approval_timeout: None,
        };
        p.rules = vec![
            rule("audit-all", "any-bin", Action::AuditOnly),
            rule("vim", "vim", Action::Elevate),
        ];
        p.validate().unwrap();
        let e = Engine::compile(&p, &[]);
        let d = e.decide(&caller("x", &[]), &program("/usr/bin/vim", &[]));
        assert_eq!(d.rule.as_deref(), Some("audit-all"));
        p.rules.reverse();
        let e = Engine::compile(&p, &[]);
        let d = e.decide(&caller("x", &[]), &program("/usr/bin/vim", &[]));
        assert_eq!(d.rule.as_deref(), Some("vim"));
    }

    #[test]
    fn admin_sessions_by_group() {
        let e = Engine::compile(&sample(), &[]);
        assert_eq!(e.admin_session(&caller("x", &["users"])), None);
        let g = e.admin_session(&caller("x", &["oncall"])).unwrap();
        assert_eq!(
            (g.rule.as_str(), g.max_minutes, g.needs),
            ("oncall", 30, Proof::Reason)
        );
    }
}
