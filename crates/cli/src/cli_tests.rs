//! Command-line parsing of the account and administration commands.

use clap::Parser;

use crate::args::{Groups, MaxAge, Permissions, RoleList, Scopes};
use crate::commands::admin::AdminCommand as A;
use crate::commands::admin::api_clients::ApiClientsCommand as C;
use crate::commands::admin::endpoints::EndpointsCommand as E;
use crate::commands::admin::groups::GroupsCommand as G;
use crate::commands::admin::roles::RolesCommand as R;
use crate::commands::admin::settings::SettingsCommand as S;
use crate::commands::admin::users::UsersCommand as U;
use crate::commands::mfa::MfaCommand as M;
use crate::{Cli, Command};

fn parse(args: &[&str]) -> Command {
    let argv = std::iter::once("jg").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// The error clap prints for `args`.
fn fails(args: &[&str]) -> String {
    let argv = std::iter::once("jg").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} parsed: {:?}", cli.command),
        Err(e) => e.to_string(),
    }
}

fn admin(args: &[&str]) -> A {
    let argv: Vec<&str> = std::iter::once("admin")
        .chain(args.iter().copied())
        .collect();
    match parse(&argv) {
        Command::Admin { command } => command,
        other => panic!("{other:?}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn login_takes_an_optional_totp() {
    let Command::Login { user, totp, .. } = parse(&["login", "--user", "al", "--totp", "123456"])
    else {
        panic!()
    };
    assert_eq!(user, "al");
    assert_eq!(totp.map(|c| c.0).as_deref(), Some("123456"));
    assert!(matches!(
        parse(&["login", "--user", "al"]),
        Command::Login { totp: None, .. }
    ));
    assert!(fails(&["login", "--user", "al", "--totp"]).contains("--totp"));
}

#[test]
fn whoami_and_passwd() {
    assert!(matches!(
        parse(&["whoami", "--json"]),
        Command::Whoami { json: true }
    ));
    assert!(matches!(
        parse(&["whoami"]),
        Command::Whoami { json: false }
    ));
    let Command::Passwd {
        password_file,
        current_password_file,
    } = parse(&[
        "passwd",
        "--password-file",
        "new.txt",
        "--current-password-file",
        "-",
    ])
    else {
        panic!()
    };
    assert_eq!(password_file.unwrap().to_str(), Some("new.txt"));
    assert_eq!(current_password_file.unwrap().to_str(), Some("-"));
    assert!(matches!(
        parse(&["passwd"]),
        Command::Passwd {
            password_file: None,
            current_password_file: None
        }
    ));
}

#[test]
fn mfa_subcommands() {
    let mfa = |args: &[&str]| {
        let argv: Vec<&str> = std::iter::once("mfa").chain(args.iter().copied()).collect();
        match parse(&argv) {
            Command::Mfa { command } => command,
            other => panic!("{other:?}"),
        }
    };
    let M::Enroll { code, qr_file } = mfa(&["enroll", "--code", "123456", "--qr-file", "q.svg"])
    else {
        panic!()
    };
    assert_eq!(code.map(|c| c.0).as_deref(), Some("123456"));
    assert_eq!(qr_file.unwrap().to_str(), Some("q.svg"));
    assert!(matches!(
        mfa(&["enroll"]),
        M::Enroll {
            code: None,
            qr_file: None
        }
    ));
    assert!(matches!(
        mfa(&["confirm", "--code", "1"]),
        M::Confirm { code: Some(_) }
    ));
    assert!(
        matches!(mfa(&["disable", "--code", "AAAA-BBBB-CCCC"]), M::Disable { code: Some(c) } if c.0 == "AAAA-BBBB-CCCC")
    );
    assert!(matches!(
        mfa(&["recovery-codes", "--code", "1", "--json"]),
        M::RecoveryCodes {
            code: Some(_),
            json: true
        }
    ));
    assert!(fails(&["mfa", "reset"]).contains("unrecognized subcommand"));
}

#[test]
fn admin_users() {
    assert!(matches!(
        admin(&["users", "list", "--json"]),
        A::Users {
            command: U::List { json: true }
        }
    ));
    assert!(matches!(
        admin(&["users", "show", "bob"]),
        A::Users { command: U::Show { name, json: false } } if name == "bob"
    ));
    let A::Users {
        command:
            U::Create {
                name,
                role,
                groups,
                email,
                password_file,
                json,
            },
    } = admin(&[
        "users",
        "create",
        "bob",
        "--role",
        "technician",
        "--groups",
        "prod, lab",
        "--email",
        "bob@example.com",
        "--password-file",
        "-",
    ])
    else {
        panic!()
    };
    assert_eq!((name.as_str(), role.as_str()), ("bob", "technician"));
    assert_eq!(groups, Some(Groups(strings(&["prod", "lab"]))));
    assert_eq!(email.as_deref(), Some("bob@example.com"));
    assert_eq!(password_file.unwrap().to_str(), Some("-"));
    assert!(!json);

    assert!(fails(&["admin", "users", "create", "bob"]).contains("--role"));
    let err = fails(&[
        "admin", "users", "create", "bob", "--role", "x", "--groups", "",
    ]);
    assert!(err.contains("the group list is empty"), "{err}");
    let err = fails(&[
        "admin", "users", "create", "bob", "--role", "x", "--groups", "*,prod",
    ]);
    assert!(err.contains("cannot be combined"), "{err}");

    let A::Users {
        command: U::Update { name, changes, .. },
    } = admin(&["users", "update", "bob", "--email", "", "--groups", "*"])
    else {
        panic!()
    };
    assert_eq!(name, "bob");
    assert_eq!(changes.role, None);
    assert_eq!(changes.email.as_deref(), Some(""));
    assert_eq!(changes.groups, Some(Groups(strings(&["*"]))));
    let err = fails(&["admin", "users", "update", "bob"]);
    assert!(err.contains("required"), "{err}");
    assert!(fails(&["admin", "users", "update", "bob", "--json"]).contains("required"));

    for (sub, check) in [
        (
            "delete",
            (|c: &U| matches!(c, U::Delete { .. })) as fn(&U) -> bool,
        ),
        ("set-password", |c| {
            matches!(
                c,
                U::SetPassword {
                    password_file: None,
                    ..
                }
            )
        }),
        ("revoke-sessions", |c| matches!(c, U::RevokeSessions { .. })),
        ("unlock", |c| matches!(c, U::Unlock { .. })),
        ("reset-mfa", |c| matches!(c, U::ResetMfa { .. })),
    ] {
        let A::Users { command } = admin(&["users", sub, "bob"]) else {
            panic!("{sub}")
        };
        assert!(check(&command), "{sub}: {command:?}");
        assert!(fails(&["admin", "users", sub]).contains("<NAME>"), "{sub}");
    }
}

#[test]
fn admin_roles_pass_permissions_through() {
    let A::Roles {
        command:
            R::Create {
                name,
                permissions,
                description,
                ..
            },
    } = admin(&[
        "roles",
        "create",
        "ops",
        "--permissions",
        "view,shell,fly",
        "--description",
        "Operations",
    ])
    else {
        panic!()
    };
    assert_eq!(name, "ops");
    assert_eq!(permissions, Permissions(strings(&["view", "shell", "fly"])));
    assert_eq!(description, "Operations");
    assert!(fails(&["admin", "roles", "create", "ops"]).contains("--permissions"));
    let err = fails(&["admin", "roles", "create", "ops", "--permissions", ""]);
    assert!(err.contains("the permission list is empty"), "{err}");
    let A::Roles {
        command: R::Update { changes, .. },
    } = admin(&["roles", "update", "ops", "--description", "x"])
    else {
        panic!()
    };
    assert_eq!(
        (changes.description.as_deref(), changes.permissions),
        (Some("x"), None)
    );
    assert!(fails(&["admin", "roles", "update", "ops"]).contains("required"));
    assert!(matches!(
        admin(&["roles", "delete", "ops"]),
        A::Roles { command: R::Delete { name } } if name == "ops"
    ));
    assert!(matches!(
        admin(&["roles", "list"]),
        A::Roles {
            command: R::List { json: false }
        }
    ));
}

#[test]
fn admin_groups_and_endpoints() {
    assert!(matches!(
        admin(&["groups", "list", "--json"]),
        A::Groups {
            command: G::List { json: true }
        }
    ));
    assert!(matches!(
        admin(&["groups", "create", "lab"]),
        A::Groups { command: G::Create { name, description, .. } } if name == "lab" && description.is_empty()
    ));
    assert!(matches!(
        admin(&["groups", "create", "racks", "--consent", "none"]),
        A::Groups { command: G::Create { consent: Some(c), .. } } if c == "none"
    ));
    assert!(matches!(
        admin(&["groups", "update", "lab", "--consent", "notify"]),
        A::Groups { command: G::Update { name, consent: Some(c), description: None, .. } }
            if name == "lab" && c == "notify"
    ));
    assert!(fails(&["admin", "groups", "create", "lab", "--consent", "ask"]).contains("prompt"));
    assert!(matches!(
        admin(&["groups", "delete", "lab"]),
        A::Groups { command: G::Delete { name } } if name == "lab"
    ));
    assert!(matches!(
        admin(&["endpoints", "set-group", "web-01", "prod"]),
        A::Endpoints { command: E::SetGroup { endpoint, group, .. } }
            if endpoint == "web-01" && group == "prod"
    ));
    assert!(fails(&["admin", "endpoints", "set-group", "web-01"]).contains("<GROUP>"));
    assert!(matches!(
        admin(&["endpoints", "revoke", "web-01"]),
        A::Endpoints { command: E::Revoke { endpoint } } if endpoint == "web-01"
    ));
    let A::Endpoints {
        command: E::EnrollToken { group, ttl, json },
    } = admin(&[
        "endpoints",
        "enroll-token",
        "--group",
        "prod",
        "--ttl",
        "1h",
    ])
    else {
        panic!()
    };
    assert_eq!(
        (group.as_deref(), ttl.as_deref(), json),
        (Some("prod"), Some("1h"), false)
    );
    assert!(matches!(
        admin(&["endpoints", "enroll-token"]),
        A::Endpoints {
            command: E::EnrollToken {
                group: None,
                ttl: None,
                ..
            }
        }
    ));
    let err = fails(&["admin", "endpoints", "enroll-token", "--ttl", "soon"]);
    assert!(err.contains("not a duration"), "{err}");
}

#[test]
fn admin_api_clients_check_scopes() {
    let A::ApiClients {
        command:
            C::Create {
                name,
                scopes,
                role,
                groups,
                ..
            },
    } = admin(&[
        "api-clients",
        "create",
        "ci",
        "--scopes",
        "read,write",
        "--role",
        "auditor",
        "--groups",
        "*",
    ])
    else {
        panic!()
    };
    assert_eq!(name, "ci");
    assert_eq!(scopes, Scopes(strings(&["read", "write"])));
    assert_eq!(role, "auditor");
    assert_eq!(groups, Some(Groups(strings(&["*"]))));
    let base = ["admin", "api-clients", "create", "ci", "--role", "r"];
    let err = fails(&[&base[..], &["--scopes", "read,admin"]].concat());
    assert!(
        err.contains("unknown scope `admin`: the scopes are read and write"),
        "{err}"
    );
    let err = fails(&[&base[..], &["--scopes", ""]].concat());
    assert!(err.contains("the scope list is empty"), "{err}");
    assert!(fails(&base).contains("--scopes"));
    assert!(matches!(
        admin(&["api-clients", "rotate", "ci", "--json"]),
        A::ApiClients { command: C::Rotate { name, json: true } } if name == "ci"
    ));
    assert!(matches!(
        admin(&["api-clients", "delete", "ci"]),
        A::ApiClients { command: C::Delete { name } } if name == "ci"
    ));
    assert!(matches!(
        admin(&["api-clients", "list"]),
        A::ApiClients {
            command: C::List { json: false }
        }
    ));
}

#[test]
fn admin_settings() {
    assert!(matches!(
        admin(&["settings", "show", "--json"]),
        A::Settings {
            command: S::Show { json: true }
        }
    ));
    let A::Settings {
        command: S::Set { changes, json },
    } = admin(&[
        "settings",
        "set",
        "--password-min-length",
        "14",
        "--password-min-classes",
        "3",
        "--password-history",
        "0",
        "--password-max-age-days",
        "never",
        "--lockout-threshold",
        "10",
        "--lockout-duration",
        "1h30m",
        "--mfa-required-roles",
        "none",
    ])
    else {
        panic!()
    };
    assert!(!json);
    assert_eq!(changes.password_min_length, Some(14));
    assert_eq!(changes.password_min_classes, Some(3));
    assert_eq!(changes.password_history, Some(0));
    assert_eq!(changes.password_max_age_days, Some(MaxAge::Never));
    assert_eq!(changes.lockout_threshold, Some(10));
    assert_eq!(changes.lockout_duration, Some(5400));
    assert_eq!(changes.mfa_required_roles, Some(RoleList(vec![])));

    let A::Settings {
        command: S::Set { changes, .. },
    } = admin(&[
        "settings",
        "set",
        "--password-max-age-days",
        "90",
        "--mfa-required-roles",
        "admin,technician",
    ])
    else {
        panic!()
    };
    assert_eq!(changes.password_max_age_days, Some(MaxAge::Days(90)));
    assert_eq!(
        changes.mfa_required_roles,
        Some(RoleList(strings(&["admin", "technician"])))
    );
    assert_eq!(changes.password_min_length, None);

    assert!(fails(&["admin", "settings", "set"]).contains("required"));
    assert!(fails(&["admin", "settings", "set", "--json"]).contains("required"));
    for bad in [
        ["--password-min-classes", "5"],
        ["--lockout-duration", "15"],
        ["--password-max-age-days", "sometimes"],
        ["--mfa-required-roles", ""],
        ["--password-min-length", "-1"],
    ] {
        let argv = [&["admin", "settings", "set"][..], &bad[..]].concat();
        assert!(fails(&argv).contains(bad[0]), "{bad:?}");
    }
}

#[test]
fn audit_flags() {
    let Command::Audit {
        since,
        user,
        limit,
        json,
    } = parse(&[
        "audit",
        "--since",
        "2026-11-23T12:00:00+02:00",
        "--user",
        "alice",
        "--limit",
        "50",
        "--json",
    ])
    else {
        panic!()
    };
    assert_eq!(since.as_deref(), Some("2026-11-23T10:00:00Z"));
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(limit, Some(50));
    assert!(json);
    assert!(matches!(
        parse(&["audit"]),
        Command::Audit {
            since: None,
            user: None,
            limit: None,
            json: false
        }
    ));
    assert!(matches!(
        parse(&["audit", "--limit", "10000"]),
        Command::Audit {
            limit: Some(10_000),
            ..
        }
    ));

    // A relative --since is sent as the RFC 3339 time that long ago.
    let before = time::OffsetDateTime::now_utc();
    let Command::Audit { since, .. } = parse(&["audit", "--since", "2h"]) else {
        panic!()
    };
    let after = time::OffsetDateTime::now_utc();
    let since = since.unwrap();
    assert!(since.ends_with('Z'), "{since}");
    let at = time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let two_hours = time::Duration::hours(2);
    assert!(
        before - two_hours <= at && at <= after - two_hours,
        "{since}"
    );

    for bad in [
        &["audit", "--since", "yesterday"][..],
        &["audit", "--since", "2026-11-23"],
    ] {
        let err = fails(bad);
        assert!(
            err.contains("--since") && err.contains("neither an RFC 3339 time"),
            "{err}"
        );
    }
    for bad in ["0", "10001", "-1", "many"] {
        let err = fails(&["audit", &format!("--limit={bad}")]);
        assert!(err.contains("--limit"), "{bad}: {err}");
    }
    assert!(fails(&["audit", "--limit", "0"]).contains("1..=10000"));
}

/// Every positional argument of every command says what it is in `--help`.
#[test]
fn every_positional_argument_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_positionals() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} <{}>", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&Cli::command(), "jg", &mut missing);
    assert!(
        missing.is_empty(),
        "positional arguments without help: {missing:#?}"
    );
    // And it is what `--help` shows.
    let help = Cli::command()
        .find_subcommand_mut("shell")
        .unwrap()
        .render_help()
        .to_string();
    assert!(help.contains("The endpoint's name"), "{help}");
}

#[test]
fn epm_test_takes_the_command_after_the_double_dash() {
    use crate::commands::epm::EpmCommand as P;
    let Command::Epm { command } = parse(&[
        "epm",
        "test",
        "--endpoint",
        "web-01",
        "--user",
        "bob",
        "--group",
        "staff",
        "--",
        "/usr/bin/apt",
        "install",
        "-y",
        "curl",
    ]) else {
        panic!("not epm");
    };
    let P::Test {
        endpoint,
        user,
        groups,
        command,
        published,
        ..
    } = command
    else {
        panic!("not test: {command:?}");
    };
    assert_eq!((endpoint.as_str(), user.as_str()), ("web-01", "bob"));
    assert_eq!(groups, ["staff"]);
    assert_eq!(command, ["/usr/bin/apt", "install", "-y", "curl"]);
    assert!(!published);
    assert!(fails(&["epm", "test", "--endpoint", "e", "--user", "u"]).contains("CMD"));
}
