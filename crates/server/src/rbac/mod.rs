//! The one place where access is decided: (subject, action, resource) →
//! [`Decision`]. Every API route (through the route table in `api`) and every
//! session open asks here; every `Forbid` is recorded as a security event.
//!
//! # Model
//! - A **role** is a set of [`Permission`]s. Endpoint permissions (`view`,
//!   `shell`, `exec`, `files`, `forward`, `desktop-view`, `desktop-control`,
//!   `support`, `monitor-sessions`, `epm-approve`) apply to the endpoint **groups** the
//!   holder is assigned (a support queue belongs to a group); site
//!   permissions (`manage-users`, `manage-endpoints`, `view-audit`,
//!   `epm-manage`, `reports-read`) apply
//!   site-wide (`reports-read` shows a holder limited to some groups only
//!   their rows; `view-audit` implies it).
//! - A **subject** is a user (role + groups) or an OAuth2 API client (role +
//!   groups + scopes). A `read`-scoped token is refused every write.
//! - A user whose token is restricted (MFA enrollment or password change
//!   required) may only fix that, read itself and log out.

pub(crate) mod http;
pub(crate) mod schema;
pub(crate) mod store;

pub(crate) use http::{Access, Caller, denied};
pub(crate) use store::role_permissions;

use std::collections::{BTreeMap, BTreeSet};

use jumpgate_proto::session::SessionKind;

use crate::ids::UserId;

/// A right. Names are part of the API (`view`, `manage-users`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Permission {
    View,
    Shell,
    Exec,
    Files,
    Forward,
    ManageUsers,
    ManageEndpoints,
    ViewAudit,
    /// List vault secrets and their versions (never a value).
    VaultRead,
    /// Read a vault secret's value through the vault API (a checkout).
    /// Using a target whose credential is in the vault needs only the
    /// session right on the target's group: the value goes to the jump
    /// point, never to the technician.
    VaultCheckout,
    /// Store, delete and recover vault secrets.
    VaultWrite,
    /// Purge deleted vault secrets for good (never before the retention
    /// ends once purge protection is on).
    VaultPurge,
    /// Watch an endpoint's screen.
    DesktopView,
    /// Drive an endpoint's keyboard, mouse and clipboard (with
    /// `desktop-view`, which opening the session needs).
    DesktopControl,
    /// Attended support: create session keys, take customers from the
    /// queues one is a member of, work in support sessions.
    Support,
    /// Watch any live session in one's groups, read-only, without being
    /// invited (supervisors).
    MonitorSessions,
    /// Endpoint privilege management: edit, test and publish the policy,
    /// rotate its signing key, read every endpoint's EPM events (site-wide).
    EpmManage,
    /// Approve or deny elevation requests and give offline codes, for
    /// endpoints of one's groups.
    EpmApprove,
    /// Read the reports of the analytics store (site-wide; a role limited
    /// to some groups sees their rows only). `view-audit` implies it.
    ReportsRead,
    /// Mail alert rules and the SMTP test (site-wide).
    ManageAlerts,
    /// Add, remove and replay webhook subscriptions (outbound events;
    /// site-wide).
    ManageWebhooks,
}

impl Permission {
    pub(crate) const ALL: [Self; 21] = [
        Self::View,
        Self::Shell,
        Self::Exec,
        Self::Files,
        Self::Forward,
        Self::ManageUsers,
        Self::ManageEndpoints,
        Self::ViewAudit,
        Self::VaultRead,
        Self::VaultCheckout,
        Self::VaultWrite,
        Self::VaultPurge,
        Self::DesktopView,
        Self::DesktopControl,
        Self::Support,
        Self::MonitorSessions,
        Self::EpmManage,
        Self::EpmApprove,
        Self::ReportsRead,
        Self::ManageAlerts,
        Self::ManageWebhooks,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Shell => "shell",
            Self::Exec => "exec",
            Self::Files => "files",
            Self::Forward => "forward",
            Self::ManageUsers => "manage-users",
            Self::ManageEndpoints => "manage-endpoints",
            Self::ViewAudit => "view-audit",
            Self::VaultRead => "vault-read",
            Self::VaultCheckout => "vault-checkout",
            Self::VaultWrite => "vault-write",
            Self::VaultPurge => "vault-purge",
            Self::DesktopView => "desktop-view",
            Self::DesktopControl => "desktop-control",
            Self::Support => "support",
            Self::MonitorSessions => "monitor-sessions",
            Self::EpmManage => "epm-manage",
            Self::EpmApprove => "epm-approve",
            Self::ReportsRead => "reports-read",
            Self::ManageAlerts => "manage-alerts",
            Self::ManageWebhooks => "manage-webhooks",
        }
    }

    /// The permission a session kind needs.
    pub(crate) fn for_session(kind: SessionKind) -> Self {
        match kind {
            SessionKind::Shell => Self::Shell,
            SessionKind::Exec => Self::Exec,
            SessionKind::Upload | SessionKind::Download => Self::Files,
            SessionKind::Forward => Self::Forward,
            SessionKind::Desktop => Self::DesktopView,
        }
    }
}

impl std::str::FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown permission `{s}` (expected one of: {})",
                    all.join(", ")
                )
            })
    }
}

/// Parses and de-duplicates permission names.
pub(crate) fn parse_permissions(names: &[String]) -> Result<BTreeSet<Permission>, String> {
    names.iter().map(|n| n.parse()).collect()
}

pub(crate) fn permission_names(set: &BTreeSet<Permission>) -> Vec<String> {
    set.iter().map(|p| p.as_str().to_owned()).collect()
}

/// The endpoint groups a subject's endpoint permissions apply to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Groups {
    All,
    Some(BTreeSet<String>),
}

impl Groups {
    /// From the stored list, where `*` means every group.
    pub(crate) fn from_list(list: &[String]) -> Self {
        if list.iter().any(|g| g == "*") {
            Self::All
        } else {
            Self::Some(list.iter().cloned().collect())
        }
    }

    pub(crate) fn to_list(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Some(s) => s.iter().cloned().collect(),
        }
    }

    pub(crate) fn contains(&self, group: &str) -> bool {
        match self {
            Self::All => true,
            Self::Some(s) => s.contains(group),
        }
    }
}

/// OAuth2 scopes of the credential in use. Users' own sessions have both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scopes {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

impl Scopes {
    pub(crate) const FULL: Self = Self {
        read: true,
        write: true,
    };

    /// Parses `read`/`write` names.
    pub(crate) fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut s = Self {
            read: false,
            write: false,
        };
        for n in names {
            match n.as_ref() {
                "read" => s.read = true,
                "write" => s.write = true,
                other => return Err(format!("unknown scope `{other}` (expected read or write)")),
            }
        }
        Ok(s)
    }

    pub(crate) fn names(self) -> Vec<String> {
        let mut v = Vec::new();
        if self.read {
            v.push("read".to_owned());
        }
        if self.write {
            v.push("write".to_owned());
        }
        v
    }
}

/// What a user's session may still do before the account is in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restriction {
    None,
    /// The role requires MFA and none is enrolled.
    MfaEnrollment,
    /// The password expired.
    PasswordChange,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubjectKind {
    User(UserId),
    ApiClient { client_id: String },
}

/// Who is asking, with everything the decision needs.
#[derive(Clone, Debug)]
pub(crate) struct Subject {
    /// User name or API client name (for events).
    pub(crate) name: String,
    pub(crate) kind: SubjectKind,
    pub(crate) role: String,
    pub(crate) permissions: BTreeSet<Permission>,
    pub(crate) groups: Groups,
    pub(crate) scopes: Scopes,
    pub(crate) restriction: Restriction,
    /// The approval requirements of groups and the subject's active
    /// access grants, read on each request (`access::load`).
    pub(crate) approvals: Approvals,
}

/// Groups whose permissions need an approved access request (their
/// `approval` setting), and the subject's grants active when it was
/// loaded. Holding a gated permission through a role is not enough on such
/// a group: a grant covering it is needed too (`access`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Approvals {
    /// Group → the permissions that need a grant there.
    pub(crate) gated: BTreeMap<String, BTreeSet<Permission>>,
    pub(crate) grants: Vec<ActiveGrant>,
}

/// An approved access request, active now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActiveGrant {
    /// The access request's id.
    pub(crate) request: String,
    pub(crate) group: String,
    /// One endpoint of the group (its id) only; `None`: the whole group.
    pub(crate) endpoint: Option<String>,
    pub(crate) permissions: BTreeSet<Permission>,
    /// When it ends (ms since the epoch).
    pub(crate) until: i64,
}

impl Approvals {
    /// Whether `p` on `group` needs a grant.
    pub(crate) fn gates(&self, group: &str, p: Permission) -> bool {
        self.gated.get(group).is_some_and(|ps| ps.contains(&p))
    }

    /// The grant that allows `p` on `group` (on endpoint `endpoint` when
    /// known) where the group gates it; `None` when none does or none is
    /// needed.
    pub(crate) fn covering(
        &self,
        group: &str,
        endpoint: Option<&str>,
        p: Permission,
    ) -> Option<&ActiveGrant> {
        if !self.gates(group, p) {
            return None;
        }
        self.grants.iter().find(|g| {
            g.group == group
                && g.permissions.contains(&p)
                && match &g.endpoint {
                    None => true,
                    Some(id) => endpoint == Some(id.as_str()),
                }
        })
    }

    fn allows(&self, group: &str, endpoint: Option<&str>, p: Permission) -> bool {
        !self.gates(group, p) || self.covering(group, endpoint, p).is_some()
    }
}

impl Subject {
    pub(crate) fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    pub(crate) fn user_id(&self) -> Option<&UserId> {
        match &self.kind {
            SubjectKind::User(id) => Some(id),
            SubjectKind::ApiClient { .. } => None,
        }
    }

    /// The endpoint groups whose records (sessions, recordings, audit
    /// entries) the subject may read.
    pub(crate) fn read_scope(&self) -> ReadScope {
        match &self.groups {
            Groups::All => ReadScope::All,
            Groups::Some(s) => ReadScope::Groups(s.iter().cloned().collect()),
        }
    }

    /// Whether the subject may see endpoints of `group`.
    pub(crate) fn can_view(&self, group: &str) -> bool {
        authorize(self, Action::ViewEndpoint, Resource::Endpoint { group }) == Decision::Allow
    }
}

/// Which endpoint groups' records a subject may read: sessions,
/// recordings and endpoint-related audit entries each carry the group of
/// their endpoint *at the time* (see `store`, schema 6), and every read of
/// them is filtered by this scope in the query itself.
///
/// - `All` (the subject holds `*`): every row, site-wide ones included.
/// - `Groups`: only rows of those groups. Site-wide rows (user, role,
///   settings, key and vault administration, logins) and rows whose group
///   is unknown (their endpoint was gone before groups were recorded) are
///   for holders of all groups only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadScope {
    All,
    Groups(Vec<String>),
}

impl ReadScope {
    /// Whether a row of `group` (`None`: a site-wide row) is in scope.
    pub(crate) fn allows(&self, group: Option<&str>) -> bool {
        match (self, group) {
            (Self::All, _) => true,
            (Self::Groups(gs), Some(g)) => gs.iter().any(|x| x == g),
            (Self::Groups(_), None) => false,
        }
    }

    /// The scope as a query parameter: `NULL` for every row, else a JSON
    /// array of group names (read with `json_each`). Queries write it as
    /// `(?n IS NULL OR endpoint_group IN (SELECT value FROM json_each(?n)))`.
    pub(crate) fn sql_param(&self) -> Option<String> {
        match self {
            Self::All => None,
            Self::Groups(gs) => Some(serde_json::to_string(gs).unwrap_or_else(|_| "[]".into())),
        }
    }
}

/// What a subject wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    // Self-service: a user's own account.
    ReadSelf,
    ChangeOwnPassword,
    ManageOwnMfa,
    /// List one's own SSH public keys (the SSH front door).
    ReadOwnSshKeys,
    /// Add or remove one's own SSH public keys.
    ManageOwnSshKeys,
    Logout,
    // Endpoints.
    ListEndpoints,
    ViewEndpoint,
    OpenSession(SessionKind),
    /// Input to a desktop session (asked when one is opened with control).
    ControlDesktop,
    // Site administration.
    ReadUsers,
    WriteUsers,
    ReadRoles,
    WriteRoles,
    ReadApiClients,
    WriteApiClients,
    ReadGroups,
    WriteGroups,
    WriteEndpoints,
    ReadSessionLog,
    ReadRecordings,
    #[allow(dead_code, reason = "the web console's session page (issue #5)")]
    TerminateSession,
    ReadSettings,
    WriteSettings,
    // The vault.
    ReadSecrets,
    ReadSecretValue,
    WriteSecrets,
    PurgeSecrets,
    // Attended support.
    /// See queues and their waiting customers (filtered per group).
    ReadQueues,
    /// Create session keys, accept, chat, ask rights, transfer, invite.
    HandleSupport,
    /// The history of support sessions (filtered per group).
    ReadSupportSessions,
    /// Create, change and delete queues.
    WriteQueues,
    /// Watch a live session one does not take part in.
    #[allow(dead_code, reason = "attended support's routes (issue #13) land next")]
    WatchSession,
    // Endpoint privilege management.
    /// Read the policy, its bundles and the agents' status; what-if tests.
    ReadEpmPolicy,
    /// Change, publish the policy; rotate its signing key.
    WriteEpmPolicy,
    /// Read EPM events (site-wide: `epm-manage` or `view-audit`, checked by
    /// the handler; routed as `epm-manage`'s read).
    ReadEpmEvents,
    /// See, approve and deny elevation requests, and give offline codes,
    /// on endpoints of one's groups (results filtered per group).
    ApproveElevation,
    /// Approve or deny one request, give an offline code or ask a what-if
    /// about one endpoint (`epm-approve` on its group).
    DecideElevation,
    // The Package Manager (part of EPM: `epm-manage`).
    /// List packages, publishers, settings, assignments and results.
    ReadPackages,
    /// Upload, delete, assign packages; manage publisher keys and settings.
    WritePackages,
    /// Query endpoints' installed packages (rows of one's groups).
    ReadInventory,
    // Reports.
    /// Run the reports of the analytics store.
    ReadReports,
    // Access requests with approval (`access`).
    /// Ask for access to a group or endpoint one can view (the handler
    /// checks the target's group).
    RequestAccess,
    /// List one's own requests and those one may decide.
    ReadAccessRequests,
    /// Approve, deny or cancel a request (the handler checks that the
    /// caller is an approver of its group, or its requester).
    DecideAccess,
    // Mail alerts.
    /// List alert rules and the mail queue's state.
    ReadAlerts,
    /// Add and remove alert rules; send a test mail.
    WriteAlerts,
    // Outbound events.
    /// List webhook subscriptions and their deliveries.
    ReadWebhooks,
    /// Add, remove subscriptions, rotate their secrets, replay deliveries.
    WriteWebhooks,
}

enum Requirement {
    /// Any user, about their own account.
    SelfService,
    /// A site permission.
    Site(Permission),
    /// An endpoint permission on the resource's group.
    Endpoint(Permission),
    /// An endpoint permission on some group (results are filtered per group).
    AnyGroup(Permission),
}

impl Action {
    fn requirement(self) -> Requirement {
        use Permission as P;
        use Requirement as R;
        match self {
            Self::ReadSelf
            | Self::ChangeOwnPassword
            | Self::ManageOwnMfa
            | Self::ReadOwnSshKeys
            | Self::ManageOwnSshKeys
            | Self::Logout => R::SelfService,
            Self::ListEndpoints => R::AnyGroup(P::View),
            Self::ViewEndpoint => R::Endpoint(P::View),
            Self::OpenSession(kind) => R::Endpoint(P::for_session(kind)),
            Self::ControlDesktop => R::Endpoint(P::DesktopControl),
            Self::ReadUsers
            | Self::WriteUsers
            | Self::ReadRoles
            | Self::WriteRoles
            | Self::ReadApiClients
            | Self::WriteApiClients
            | Self::ReadSettings
            | Self::WriteSettings => R::Site(P::ManageUsers),
            Self::ReadGroups => R::AnyGroup(P::View),
            Self::WriteGroups | Self::WriteEndpoints => R::Site(P::ManageEndpoints),
            Self::ReadSessionLog | Self::ReadRecordings => R::Site(P::ViewAudit),
            Self::TerminateSession => R::Site(P::ManageEndpoints),
            Self::ReadSecrets => R::Site(P::VaultRead),
            Self::ReadSecretValue => R::Site(P::VaultCheckout),
            Self::WriteSecrets => R::Site(P::VaultWrite),
            Self::PurgeSecrets => R::Site(P::VaultPurge),
            Self::ReadQueues | Self::HandleSupport | Self::ReadSupportSessions => {
                R::AnyGroup(P::Support)
            }
            Self::WriteQueues => R::Site(P::ManageEndpoints),
            Self::WatchSession => R::Endpoint(P::MonitorSessions),
            Self::ReadEpmPolicy | Self::WriteEpmPolicy | Self::ReadEpmEvents => {
                R::Site(P::EpmManage)
            }
            Self::ApproveElevation => R::AnyGroup(P::EpmApprove),
            Self::DecideElevation => R::Endpoint(P::EpmApprove),
            Self::ReadPackages | Self::WritePackages => R::Site(P::EpmManage),
            Self::ReadInventory => R::AnyGroup(P::View),
            Self::ReadReports => R::Site(P::ReportsRead),
            Self::RequestAccess => R::AnyGroup(P::View),
            Self::ReadAccessRequests | Self::DecideAccess => R::SelfService,
            Self::ReadAlerts | Self::WriteAlerts => R::Site(P::ManageAlerts),
            Self::ReadWebhooks | Self::WriteWebhooks => R::Site(P::ManageWebhooks),
        }
    }

    /// Whether the action changes state (needs the `write` scope).
    pub(crate) fn is_write(self) -> bool {
        matches!(
            self,
            Self::ChangeOwnPassword
                | Self::ManageOwnMfa
                | Self::ManageOwnSshKeys
                | Self::OpenSession(_)
                | Self::ControlDesktop
                | Self::WriteUsers
                | Self::WriteRoles
                | Self::WriteApiClients
                | Self::WriteGroups
                | Self::WriteEndpoints
                | Self::WriteSettings
                | Self::TerminateSession
                | Self::WriteSecrets
                | Self::PurgeSecrets
                | Self::HandleSupport
                | Self::WriteQueues
                | Self::WriteEpmPolicy
                | Self::DecideElevation
                | Self::WritePackages
                | Self::RequestAccess
                | Self::DecideAccess
                | Self::WriteAlerts
                | Self::WriteWebhooks
        )
    }

    /// The action's name in the audit log (denials) and the route table.
    /// These strings are stored: they never change (frozen by a test).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ReadSelf => "read-self",
            Self::ChangeOwnPassword => "change-own-password",
            Self::ManageOwnMfa => "manage-own-mfa",
            Self::ReadOwnSshKeys => "read-own-ssh-keys",
            Self::ManageOwnSshKeys => "manage-own-ssh-keys",
            Self::Logout => "logout",
            Self::ListEndpoints => "list-endpoints",
            Self::ViewEndpoint => "view-endpoint",
            Self::OpenSession(SessionKind::Shell) => "open-session:shell",
            Self::OpenSession(SessionKind::Exec) => "open-session:exec",
            Self::OpenSession(SessionKind::Upload) => "open-session:upload",
            Self::OpenSession(SessionKind::Download) => "open-session:download",
            Self::OpenSession(SessionKind::Forward) => "open-session:forward",
            Self::OpenSession(SessionKind::Desktop) => "open-session:desktop",
            Self::ControlDesktop => "control-desktop",
            Self::ReadUsers => "read-users",
            Self::WriteUsers => "write-users",
            Self::ReadRoles => "read-roles",
            Self::WriteRoles => "write-roles",
            Self::ReadApiClients => "read-api-clients",
            Self::WriteApiClients => "write-api-clients",
            Self::ReadGroups => "read-groups",
            Self::WriteGroups => "write-groups",
            Self::WriteEndpoints => "write-endpoints",
            Self::ReadSessionLog => "read-session-log",
            Self::ReadRecordings => "read-recordings",
            Self::TerminateSession => "terminate-session",
            Self::ReadSettings => "read-settings",
            Self::WriteSettings => "write-settings",
            Self::ReadSecrets => "read-secrets",
            Self::ReadSecretValue => "read-secret-value",
            Self::WriteSecrets => "write-secrets",
            Self::PurgeSecrets => "purge-secrets",
            Self::ReadQueues => "read-queues",
            Self::HandleSupport => "handle-support",
            Self::ReadSupportSessions => "read-support-sessions",
            Self::WriteQueues => "write-queues",
            Self::WatchSession => "watch-session",
            Self::ReadEpmPolicy => "read-epm-policy",
            Self::WriteEpmPolicy => "write-epm-policy",
            Self::ReadEpmEvents => "read-epm-events",
            Self::ApproveElevation => "approve-elevation",
            Self::DecideElevation => "decide-elevation",
            Self::ReadPackages => "read-packages",
            Self::WritePackages => "write-packages",
            Self::ReadInventory => "read-inventory",
            Self::ReadReports => "read-reports",
            Self::RequestAccess => "request-access",
            Self::ReadAccessRequests => "read-access-requests",
            Self::DecideAccess => "decide-access",
            Self::ReadAlerts => "read-alerts",
            Self::WriteAlerts => "write-alerts",
            Self::ReadWebhooks => "read-webhooks",
            Self::WriteWebhooks => "write-webhooks",
        }
    }
}

/// What the action is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource<'a> {
    Site,
    Endpoint {
        group: &'a str,
    },
    /// One endpoint known by its id (session opens and re-checks): a grant
    /// for that endpoint alone counts here, not only one for its group.
    OneEndpoint {
        group: &'a str,
        id: &'a str,
    },
}

/// Why access was refused. The API maps each to its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    MissingPermission(Permission),
    OutsideGroups,
    InsufficientScope,
    MfaEnrollmentRequired,
    PasswordChangeRequired,
    UsersOnly,
    /// The group requires an approved access request for the permission
    /// and no active grant covers it.
    ApprovalRequired(Permission),
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingPermission(p) => {
                write!(f, "your role lacks the `{}` permission", p.as_str())
            }
            Self::OutsideGroups => f.write_str("the endpoint is outside your groups"),
            Self::InsufficientScope => f.write_str("the token's scope does not allow this"),
            Self::MfaEnrollmentRequired => {
                f.write_str("your role requires MFA: enroll it first (jg mfa enroll)")
            }
            Self::PasswordChangeRequired => {
                f.write_str("your password expired: change it first (jg passwd)")
            }
            Self::UsersOnly => f.write_str("only users can do this, not API clients"),
            Self::ApprovalRequired(p) => write!(
                f,
                "the endpoint's group requires an approved access request for `{}` (jg access request)",
                p.as_str()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    Forbid(Denial),
}

/// The decision. Pure: no I/O, table-tested below.
pub(crate) fn authorize(subject: &Subject, action: Action, resource: Resource<'_>) -> Decision {
    use Decision::{Allow, Forbid};
    match subject.restriction {
        Restriction::None => {}
        Restriction::MfaEnrollment => {
            if !matches!(
                action,
                Action::ReadSelf | Action::ManageOwnMfa | Action::Logout
            ) {
                return Forbid(Denial::MfaEnrollmentRequired);
            }
        }
        Restriction::PasswordChange => {
            if !matches!(
                action,
                Action::ReadSelf | Action::ChangeOwnPassword | Action::Logout
            ) {
                return Forbid(Denial::PasswordChangeRequired);
            }
        }
    }
    let scope_ok = if action.is_write() {
        subject.scopes.write
    } else {
        subject.scopes.read
    };
    if !scope_ok {
        return Forbid(Denial::InsufficientScope);
    }
    match action.requirement() {
        Requirement::SelfService => match subject.kind {
            SubjectKind::User(_) => Allow,
            SubjectKind::ApiClient { .. } => Forbid(Denial::UsersOnly),
        },
        Requirement::Site(p) | Requirement::AnyGroup(p) => {
            // Reports summarise the audit log, which `view-audit` reads
            // whole: its holders (the built-in admin and auditor roles
            // among them) read reports too.
            if subject.has(p)
                || (p == Permission::ReportsRead && subject.has(Permission::ViewAudit))
            {
                Allow
            } else {
                Forbid(Denial::MissingPermission(p))
            }
        }
        Requirement::Endpoint(p) => {
            if !subject.has(p) {
                return Forbid(Denial::MissingPermission(p));
            }
            let (group, endpoint) = match resource {
                Resource::Endpoint { group } => (group, None),
                Resource::OneEndpoint { group, id } => (group, Some(id)),
                // An endpoint permission asked about the site as a whole is a
                // programming error; refuse rather than guess.
                Resource::Site => return Forbid(Denial::OutsideGroups),
            };
            if !subject.groups.contains(group) {
                Forbid(Denial::OutsideGroups)
            } else if !subject.approvals.allows(group, endpoint, p) {
                Forbid(Denial::ApprovalRequired(p))
            } else {
                Allow
            }
        }
    }
}

#[cfg(test)]
mod tests;
