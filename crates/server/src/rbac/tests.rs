use super::*;

fn subject(perms: &[Permission], groups: &[&str]) -> Subject {
    Subject {
        name: "s".into(),
        kind: SubjectKind::User(UserId("usr_x".into())),
        role: "r".into(),
        permissions: perms.iter().copied().collect(),
        groups: Groups::from_list(&groups.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>()),
        scopes: Scopes::FULL,
        restriction: Restriction::None,
        approvals: Default::default(),
    }
}

const WEB: Resource<'static> = Resource::Endpoint { group: "web" };
const DB: Resource<'static> = Resource::Endpoint { group: "db" };

#[test]
fn endpoint_permissions_apply_only_inside_the_subjects_groups() {
    let tech = subject(&[Permission::View, Permission::Shell], &["web"]);
    assert_eq!(
        authorize(&tech, Action::OpenSession(SessionKind::Shell), WEB),
        Decision::Allow
    );
    assert_eq!(
        authorize(&tech, Action::OpenSession(SessionKind::Shell), DB),
        Decision::Forbid(Denial::OutsideGroups)
    );
    assert_eq!(
        authorize(&tech, Action::OpenSession(SessionKind::Exec), WEB),
        Decision::Forbid(Denial::MissingPermission(Permission::Exec))
    );
    assert!(tech.can_view("web") && !tech.can_view("db"));
    let everywhere = subject(&[Permission::Forward], &["*"]);
    assert_eq!(
        authorize(&everywhere, Action::OpenSession(SessionKind::Forward), DB),
        Decision::Allow
    );
}

#[test]
fn session_kinds_map_to_their_permissions() {
    let files = subject(&[Permission::Files], &["*"]);
    for kind in SessionKind::ALL {
        let expected = matches!(kind, SessionKind::Upload | SessionKind::Download);
        assert_eq!(
            authorize(&files, Action::OpenSession(kind), WEB) == Decision::Allow,
            expected,
            "{kind}"
        );
    }
}

#[test]
fn watching_a_desktop_and_controlling_it_are_separate_rights() {
    let viewer = subject(&[Permission::DesktopView], &["web"]);
    let controller = subject(
        &[Permission::DesktopView, Permission::DesktopControl],
        &["web"],
    );
    let open = Action::OpenSession(SessionKind::Desktop);
    assert_eq!(authorize(&viewer, open, WEB), Decision::Allow);
    assert_eq!(
        authorize(&viewer, Action::ControlDesktop, WEB),
        Decision::Forbid(Denial::MissingPermission(Permission::DesktopControl))
    );
    assert_eq!(
        authorize(&controller, Action::ControlDesktop, WEB),
        Decision::Allow
    );
    assert_eq!(
        authorize(&controller, Action::ControlDesktop, DB),
        Decision::Forbid(Denial::OutsideGroups)
    );
    // A shell right does not show the screen.
    let shell = subject(&[Permission::Shell, Permission::DesktopControl], &["*"]);
    assert_eq!(
        authorize(&shell, open, WEB),
        Decision::Forbid(Denial::MissingPermission(Permission::DesktopView))
    );
}

#[test]
fn site_permissions_ignore_groups() {
    let admin = subject(&[Permission::ManageUsers], &[]);
    assert_eq!(
        authorize(&admin, Action::WriteUsers, Resource::Site),
        Decision::Allow
    );
    assert_eq!(
        authorize(&admin, Action::WriteGroups, Resource::Site),
        Decision::Forbid(Denial::MissingPermission(Permission::ManageEndpoints))
    );
    let auditor = subject(&[Permission::ViewAudit], &[]);
    assert_eq!(
        authorize(&auditor, Action::ReadSessionLog, Resource::Site),
        Decision::Allow
    );
}

#[test]
fn read_scoped_tokens_are_refused_every_write() {
    let mut client = subject(&Permission::ALL, &["*"]);
    client.kind = SubjectKind::ApiClient {
        client_id: "jgc_1".into(),
    };
    client.scopes = Scopes::parse(&["read"]).unwrap();
    for action in [
        Action::ReadUsers,
        Action::ListEndpoints,
        Action::ReadSessionLog,
    ] {
        assert_eq!(
            authorize(&client, action, Resource::Site),
            Decision::Allow,
            "{action:?}"
        );
    }
    for action in [
        Action::WriteUsers,
        Action::WriteRoles,
        Action::WriteEndpoints,
        Action::WriteSettings,
    ] {
        assert_eq!(
            authorize(&client, action, Resource::Site),
            Decision::Forbid(Denial::InsufficientScope),
            "{action:?}"
        );
    }
    assert_eq!(
        authorize(&client, Action::OpenSession(SessionKind::Shell), WEB),
        Decision::Forbid(Denial::InsufficientScope)
    );
    // Self-service is for people.
    client.scopes = Scopes::FULL;
    assert_eq!(
        authorize(&client, Action::ChangeOwnPassword, Resource::Site),
        Decision::Forbid(Denial::UsersOnly)
    );
}

#[test]
fn restricted_sessions_may_only_fix_the_account() {
    let mut s = subject(&Permission::ALL, &["*"]);
    s.restriction = Restriction::MfaEnrollment;
    assert_eq!(
        authorize(&s, Action::ManageOwnMfa, Resource::Site),
        Decision::Allow
    );
    assert_eq!(
        authorize(&s, Action::Logout, Resource::Site),
        Decision::Allow
    );
    assert_eq!(
        authorize(&s, Action::ListEndpoints, Resource::Site),
        Decision::Forbid(Denial::MfaEnrollmentRequired)
    );
    s.restriction = Restriction::PasswordChange;
    assert_eq!(
        authorize(&s, Action::ChangeOwnPassword, Resource::Site),
        Decision::Allow
    );
    assert_eq!(
        authorize(&s, Action::ManageOwnMfa, Resource::Site),
        Decision::Forbid(Denial::PasswordChangeRequired)
    );
}

#[test]
fn names_parse_and_print() {
    for p in Permission::ALL {
        assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
    }
    assert!(
        "root"
            .parse::<Permission>()
            .unwrap_err()
            .contains("manage-users")
    );
    assert!(Scopes::parse(&["admin"]).is_err());
    assert_eq!(Scopes::parse(&["write", "read"]).unwrap(), Scopes::FULL);
    assert_eq!(Groups::from_list(&["*".into(), "web".into()]), Groups::All);
}

/// Action names are stored in the audit log (denials): frozen here, and
/// checked against the names the `Debug`-derived scheme used to give them.
#[test]
fn action_names_are_frozen() {
    use Action as A;
    use SessionKind as K;
    let frozen = [
        (A::ReadSelf, "read-self"),
        (A::ChangeOwnPassword, "change-own-password"),
        (A::ManageOwnMfa, "manage-own-mfa"),
        (A::ReadOwnSshKeys, "read-own-ssh-keys"),
        (A::ManageOwnSshKeys, "manage-own-ssh-keys"),
        (A::Logout, "logout"),
        (A::ListEndpoints, "list-endpoints"),
        (A::ViewEndpoint, "view-endpoint"),
        (A::OpenSession(K::Shell), "open-session:shell"),
        (A::OpenSession(K::Exec), "open-session:exec"),
        (A::OpenSession(K::Upload), "open-session:upload"),
        (A::OpenSession(K::Download), "open-session:download"),
        (A::OpenSession(K::Forward), "open-session:forward"),
        (A::OpenSession(K::Desktop), "open-session:desktop"),
        (A::ControlDesktop, "control-desktop"),
        (A::ReadUsers, "read-users"),
        (A::WriteUsers, "write-users"),
        (A::ReadRoles, "read-roles"),
        (A::WriteRoles, "write-roles"),
        (A::ReadApiClients, "read-api-clients"),
        (A::WriteApiClients, "write-api-clients"),
        (A::ReadGroups, "read-groups"),
        (A::WriteGroups, "write-groups"),
        (A::WriteEndpoints, "write-endpoints"),
        (A::ReadSessionLog, "read-session-log"),
        (A::ReadRecordings, "read-recordings"),
        (A::TerminateSession, "terminate-session"),
        (A::ReadSettings, "read-settings"),
        (A::WriteSettings, "write-settings"),
        (A::ReadSecrets, "read-secrets"),
        (A::ReadSecretValue, "read-secret-value"),
        (A::WriteSecrets, "write-secrets"),
        (A::PurgeSecrets, "purge-secrets"),
        (A::ReadQueues, "read-queues"),
        (A::HandleSupport, "handle-support"),
        (A::ReadSupportSessions, "read-support-sessions"),
        (A::WriteQueues, "write-queues"),
        (A::WatchSession, "watch-session"),
        (A::ReadEpmPolicy, "read-epm-policy"),
        (A::WriteEpmPolicy, "write-epm-policy"),
        (A::ReadEpmEvents, "read-epm-events"),
        (A::ApproveElevation, "approve-elevation"),
        (A::DecideElevation, "decide-elevation"),
        (A::ReadPackages, "read-packages"),
        (A::WritePackages, "write-packages"),
        (A::ReadInventory, "read-inventory"),
        (A::ReadReports, "read-reports"),
        (A::RequestAccess, "request-access"),
        (A::ReadAccessRequests, "read-access-requests"),
        (A::DecideAccess, "decide-access"),
        (A::ReadAlerts, "read-alerts"),
        (A::WriteAlerts, "write-alerts"),
        (A::ReadWebhooks, "read-webhooks"),
        (A::WriteWebhooks, "write-webhooks"),
    ];
    // The names the previous, Debug-derived `Action::name` gave.
    let derived = |a: Action| match a {
        A::OpenSession(k) => format!("open-session:{k}"),
        other => {
            let mut out = String::new();
            for (i, c) in format!("{other:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        }
    };
    for (action, name) in frozen {
        assert_eq!(action.as_str(), name, "{action:?}");
        assert_eq!(derived(action), name, "{action:?}");
    }
    // Every variant is in the table: a new one must be added (the match
    // fails to compile until it is named here).
    for (action, _) in frozen {
        match action {
            A::ReadSelf
            | A::ChangeOwnPassword
            | A::ManageOwnMfa
            | A::ReadOwnSshKeys
            | A::ManageOwnSshKeys
            | A::Logout
            | A::ListEndpoints
            | A::ViewEndpoint
            | A::OpenSession(_)
            | A::ControlDesktop
            | A::ReadUsers
            | A::WriteUsers
            | A::ReadRoles
            | A::WriteRoles
            | A::ReadApiClients
            | A::WriteApiClients
            | A::ReadGroups
            | A::WriteGroups
            | A::WriteEndpoints
            | A::ReadSessionLog
            | A::ReadRecordings
            | A::TerminateSession
            | A::ReadSettings
            | A::WriteSettings
            | A::ReadSecrets
            | A::ReadSecretValue
            | A::WriteSecrets
            | A::PurgeSecrets
            | A::ReadQueues
            | A::HandleSupport
            | A::ReadSupportSessions
            | A::WriteQueues
            | A::WatchSession
            | A::ReadEpmPolicy
            | A::WriteEpmPolicy
            | A::ReadEpmEvents
            | A::ApproveElevation
            | A::DecideElevation
            | A::ReadPackages
            | A::WritePackages
            | A::ReadInventory
            | A::ReadReports
            | A::RequestAccess
            | A::ReadAccessRequests
            | A::DecideAccess => {}
            A::ReadAlerts | A::WriteAlerts => {}
            A::ReadWebhooks | A::WriteWebhooks => {}
        }
    }
}

/// Attended support: `support` is a group permission (a queue belongs to a
/// group), watching others' sessions needs `monitor-sessions` on the
/// session's group, and changing queues is endpoint administration.
#[test]
fn support_actions_need_their_permissions() {
    let tech = subject(&[Permission::View, Permission::Support], &["helpdesk"]);
    for a in [
        Action::ReadQueues,
        Action::HandleSupport,
        Action::ReadSupportSessions,
    ] {
        assert_eq!(
            authorize(&tech, a, Resource::Site),
            Decision::Allow,
            "{a:?}"
        );
    }
    assert_eq!(
        authorize(&tech, Action::WriteQueues, Resource::Site),
        Decision::Forbid(Denial::MissingPermission(Permission::ManageEndpoints))
    );
    let watch =
        |s: &Subject, group| authorize(s, Action::WatchSession, Resource::Endpoint { group });
    assert_eq!(
        watch(&tech, "helpdesk"),
        Decision::Forbid(Denial::MissingPermission(Permission::MonitorSessions))
    );
    let sup = subject(&[Permission::MonitorSessions], &["helpdesk"]);
    assert_eq!(watch(&sup, "helpdesk"), Decision::Allow);
    assert_eq!(
        watch(&sup, "servers"),
        Decision::Forbid(Denial::OutsideGroups)
    );
    let mut read_only = subject(&Permission::ALL, &["*"]);
    read_only.scopes = Scopes {
        read: true,
        write: false,
    };
    assert_eq!(
        authorize(&read_only, Action::HandleSupport, Resource::Site),
        Decision::Forbid(Denial::InsufficientScope)
    );
    assert_eq!(
        authorize(&read_only, Action::ReadQueues, Resource::Site),
        Decision::Allow
    );
}

/// Reports: `reports-read`, or `view-audit` (reports summarise the audit
/// log its holders read whole); nothing else grants them.
#[test]
fn reports_need_reports_read_or_view_audit() {
    use Permission as P;
    for (perms, allowed) in [
        (vec![P::ReportsRead], true),
        (vec![P::ViewAudit], true),
        (vec![P::ManageUsers, P::EpmManage, P::Shell], false),
    ] {
        let s = subject(&perms, &[]);
        let d = authorize(&s, Action::ReadReports, Resource::Site);
        assert_eq!(d == Decision::Allow, allowed, "{perms:?}: {d:?}");
    }
}

/// On a group requiring approval for a permission, the role's permission
/// is not enough: an active grant covering it is needed, for the whole
/// group or for that one endpoint; other permissions and groups are as
/// before.
#[test]
fn gated_permissions_need_a_covering_grant() {
    use SessionKind as K;
    let mut tech = subject(
        &[Permission::View, Permission::Shell, Permission::Exec],
        &["web", "db"],
    );
    tech.approvals
        .gated
        .insert("web".into(), [Permission::Shell].into_iter().collect());
    let shell = Action::OpenSession(K::Shell);
    let one = Resource::OneEndpoint {
        group: "web",
        id: "ep_1",
    };
    let other = Resource::OneEndpoint {
        group: "web",
        id: "ep_2",
    };
    let gated = Decision::Forbid(Denial::ApprovalRequired(Permission::Shell));
    assert_eq!(authorize(&tech, shell, WEB), gated);
    assert_eq!(authorize(&tech, shell, one), gated);
    // Not gated: another permission, another group, viewing.
    assert_eq!(
        authorize(&tech, Action::OpenSession(K::Exec), WEB),
        Decision::Allow
    );
    assert_eq!(authorize(&tech, shell, DB), Decision::Allow);
    assert!(tech.can_view("web"));
    // A grant for one endpoint covers that endpoint only.
    tech.approvals.grants.push(ActiveGrant {
        request: "acc_1".into(),
        group: "web".into(),
        endpoint: Some("ep_1".into()),
        permissions: [Permission::Shell].into_iter().collect(),
        until: i64::MAX,
    });
    assert_eq!(authorize(&tech, shell, one), Decision::Allow);
    assert_eq!(authorize(&tech, shell, other), gated);
    assert_eq!(authorize(&tech, shell, WEB), gated);
    assert_eq!(
        tech.approvals
            .covering("web", Some("ep_1"), Permission::Shell)
            .map(|g| g.request.as_str()),
        Some("acc_1")
    );
    // A grant for the group covers every endpoint of it, for its
    // permissions only; it never widens the subject's groups or role.
    tech.approvals.grants[0].endpoint = None;
    assert_eq!(authorize(&tech, shell, other), Decision::Allow);
    assert_eq!(authorize(&tech, shell, WEB), Decision::Allow);
    tech.groups = Groups::from_list(&["db".into()]);
    assert_eq!(
        authorize(&tech, shell, WEB),
        Decision::Forbid(Denial::OutsideGroups)
    );
    tech.groups = Groups::All;
    tech.permissions.remove(&Permission::Shell);
    assert_eq!(
        authorize(&tech, shell, WEB),
        Decision::Forbid(Denial::MissingPermission(Permission::Shell))
    );
}
