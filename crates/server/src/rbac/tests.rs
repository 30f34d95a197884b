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
    assert_eq!(Action::WriteApiClients.name(), "write-api-clients");
    assert_eq!(
        Action::OpenSession(SessionKind::Shell).name(),
        "open-session:shell"
    );
    assert!(Scopes::parse(&["admin"]).is_err());
    assert_eq!(Scopes::parse(&["write", "read"]).unwrap(), Scopes::FULL);
    assert_eq!(Groups::from_list(&["*".into(), "web".into()]), Groups::All);
}
