//! The one place where access is decided: (subject, action, resource) →
//! [`Decision`]. Every API route and every session open asks here.
//!
//! For now the built-in roles decide alone: admins may do anything,
//! technicians may list endpoints, auditors may read the session log. Roles
//! granting rights on endpoint groups replace this table in the RBAC work.

use jumpgate_proto::session::SessionKind;

use crate::identity::{Principal, Role};

/// What a caller wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    ListEndpoints,
    OpenSession(SessionKind),
    ViewSessionLog,
}

/// What it wants to do it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource<'a> {
    Site,
    Endpoint { group: &'a str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    Forbid,
}

pub(crate) fn authorize(subject: &Principal, action: Action, _resource: Resource<'_>) -> Decision {
    let allowed = match subject.role {
        Role::Admin => true,
        Role::Technician => matches!(action, Action::ListEndpoints),
        Role::Auditor => matches!(action, Action::ListEndpoints | Action::ViewSessionLog),
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Forbid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn who(role: Role) -> Principal {
        Principal {
            user_id: UserId("usr_x".into()),
            username: "x".into(),
            role,
        }
    }

    #[test]
    fn the_role_table() {
        let ep = Resource::Endpoint { group: "default" };
        for kind in SessionKind::ALL {
            let open = Action::OpenSession(kind);
            assert_eq!(authorize(&who(Role::Admin), open, ep), Decision::Allow);
            assert_eq!(
                authorize(&who(Role::Technician), open, ep),
                Decision::Forbid
            );
            assert_eq!(authorize(&who(Role::Auditor), open, ep), Decision::Forbid);
        }
        for role in [Role::Admin, Role::Technician, Role::Auditor] {
            assert_eq!(
                authorize(&who(role), Action::ListEndpoints, Resource::Site),
                Decision::Allow
            );
        }
        assert_eq!(
            authorize(
                &who(Role::Technician),
                Action::ViewSessionLog,
                Resource::Site
            ),
            Decision::Forbid
        );
        assert_eq!(
            authorize(&who(Role::Auditor), Action::ViewSessionLog, Resource::Site),
            Decision::Allow
        );
    }
}
