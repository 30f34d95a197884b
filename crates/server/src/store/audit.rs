//! Audit entries as the store writes them: the typed vocabulary of actions
//! ([`AuditAction`]), one entry ([`AuditEvent`]), and the append to the
//! hash chain (the `events` table, owned by the `events` domain, which
//! verifies, expires, anchors and lists it).
//!
//! Each entry carries the hash of the previous one; its own hash covers its
//! id, time and fields and that previous hash:
//!
//! ```text
//! hash(n) = SHA-256("jumpgate audit v1" ‖ hash(n-1) ‖ id ‖ at ‖ len‖actor ‖ len‖action ‖ …)
//! ```
//!
//! The append reads the chain's head (or takes it from the entry its
//! transaction or batch wrote last) and inserts the next id inside a write
//! transaction ([`super::Store::write`]), which admits one writer at a time
//! on both engines: the chain stays one total order with any number of
//! concurrent writers (and, on PostgreSQL, any number of gateways).

use jumpgate_proto::session::SessionKind;

use super::{Exec, sql};
use crate::ids;

pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// What an audit entry records. The stored names ([`AuditAction::as_str`])
/// are evidence that outlives this build: they are frozen by a test, and a
/// variant is never renamed on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "TRANSITIONAL: domains move to the typed actions one by one"
)]
pub(crate) enum AuditAction {
    // Identity.
    Login,
    Lockout,
    UserCreate,
    UserUpdate,
    UserDelete,
    UserUnlock,
    PasswordChange,
    PasswordReset,
    SessionsRevoke,
    MfaEnable,
    MfaDisable,
    MfaReset,
    MfaRecoveryCodes,
    RecoveryCodeUsed,
    RoleCreate,
    RoleUpdate,
    RoleDelete,
    SettingsChange,
    ApiClientCreate,
    ApiClientDelete,
    ApiClientRotate,
    // Groups and endpoints.
    GroupCreate,
    GroupUpdate,
    GroupDelete,
    EnrollTokenCreate,
    Enroll,
    EndpointRevoke,
    EndpointGroup,
    EndpointConflict,
    EndpointReenroll,
    EndpointReenrollToken,
    /// An endpoint's facts (host name, OS, …) changed; by `(system)`.
    EndpointDetails,
    /// An endpoint was marked (`on`) or unmarked (`off`) as a jump point.
    JumpPoint,
    /// An agentless target was added, changed or removed.
    TargetAdd,
    TargetRemove,
    /// A target's host key: stored on first use (`trusted`), or a changed
    /// key refused (`denied`, naming both fingerprints).
    TargetHostKey,
    /// A target account's password was rotated after use (or the rotation
    /// failed and the old version was kept).
    TargetRotate,
    // Sessions and recordings.
    SessionOpen(SessionKind),
    SessionClose(SessionKind),
    SessionTerminate,
    SessionRevoke,
    RecordingView,
    RecordingsExpire,
    /// A search inside recordings: the size of the text and the
    /// recordings found, never the text (it may be a secret someone typed).
    RecordingSearch,
    /// Who has control of a desktop session changed (the agent's
    /// `ControlState`, the endpoint user's decisions included).
    DesktopControl,
    /// Clipboard text crossed a desktop session (its size only).
    DesktopClipboard,
    // Attended support.
    /// A support session key was made (its queue and lifetime; never the key).
    SupportKeyCreate,
    /// Wrong session keys from one address, counted per minute.
    SupportKeyFailed,
    /// A customer redeemed a key or sent the portal's request form.
    SupportRequest,
    /// The customer's client connected (or reconnected).
    SupportJoin,
    /// A technician (or automatic assignment) took a support session.
    SupportAccept,
    /// A support session went to another technician or queue.
    SupportTransfer,
    /// A technician joined, left or was removed (outcome `joined:observer`, `left`, `removed`).
    SupportParticipant,
    /// A right was asked, allowed, denied, revoked or reset.
    SupportRight,
    /// A chat line (its size only).
    SupportChat,
    /// A support session ended (reason, rating).
    SupportEnd,
    /// The customer's machine was offered (and turned into) an enrolled endpoint.
    SupportPin,
    /// Retention removed ended support sessions.
    SupportExpire,
    /// Someone started or stopped watching a live session.
    SessionWatch,
    QueueCreate,
    QueueUpdate,
    QueueDelete,
    // Outbound events.
    /// A webhook subscription was added (URL, format, events; never its secret).
    WebhookAdd,
    WebhookRemove,
    /// A subscription's secret was replaced (never the secret).
    WebhookRotateSecret,
    /// A subscription's `Authorization` header was set, replaced or
    /// removed (never its value).
    WebhookAuth,
    /// Dead deliveries were queued again.
    WebhookReplay,
    // Keys, vault and the log itself.
    KeysRotate,
    KeysRetire,
    KeysRekey,
    RootKeyRotate,
    VaultRead,
    VaultPut,
    VaultDelete,
    VaultRecover,
    VaultPurge,
    VaultPurgeProtection,
    AuditExpire,
    // Endpoint privilege management.
    /// The draft policy was changed.
    EpmPolicyUpdate,
    /// A policy bundle was published (version, sha256, key).
    EpmPublish,
    /// The policy signing key was rotated.
    EpmKeyRotate,
    /// An elevation request was approved or denied (outcome).
    EpmDecide,
    /// An offline code was given for an endpoint's challenge.
    EpmCode,
    /// The policy blocked a launch on an endpoint (outcome `blocked`;
    /// actor: the endpoint's user as reported; target: the endpoint;
    /// detail `rule= count= [since=] program=`): at most one entry per
    /// (endpoint, program, rule) a minute, `count` folding the launches
    /// blocked since the previous one (`epm::ingest`).
    EpmBlocked,
    // The Package Manager.
    /// A package was uploaded (name, version, sha256, publisher).
    PackageUpload,
    /// An uploaded package was deleted.
    PackageDelete,
    /// An assignment was made or changed (group, package, action).
    PackageAssign,
    /// An assignment was removed.
    PackageUnassign,
    /// A trusted publisher key was added.
    PackagePublisherAdd,
    /// A trusted publisher key was removed.
    PackagePublisherRemove,
    /// The Package Manager's settings changed.
    PackageSettings,
    // The SSH front door.
    /// A user registered an SSH public key.
    SshKeyAdd,
    /// A user removed one of their SSH public keys.
    SshKeyRemove,
    // Access requests (`access`): target = the request id; detail =
    // `request= requester= target= group= permissions= window=
    // approvals=N/M [until=] reason=` (see `access::Request::detail`); an
    // elevation request's: `request= kind=elevation requester=USER@ENDPOINT
    // target= group= rule= approvals=N/1 [expires=] program= reason=`.
    /// A technician asked for access (outcome `pending`).
    AccessRequest,
    /// An approver approved (outcome `pending`: more approvals needed;
    /// `active`: the grant started).
    AccessApprove,
    /// An approver denied (outcome `denied`).
    AccessDeny,
    /// A grant's window ended (outcome `expired`), or a request waited too
    /// long for approvals (`expired-pending`).
    AccessExpire,
    /// The requester withdrew a request or ended a grant early.
    AccessCancel,
    // Mail alerts.
    /// An alert rule was added (its events, mode and recipient counts).
    AlertRuleAdd,
    /// An alert rule was removed.
    AlertRuleRemove,
    /// A test mail was sent (or failed) through `[smtp]`; target: the address.
    SmtpTest,
    /// The user CA issued a user certificate (serial, key fingerprint,
    /// login, end of validity).
    SshCertIssue,
    // Watches (by `(system)`).
    /// An endpoint has been offline longer than `[agents] offline_after`
    /// (outcome `offline`; detail: when it was last seen, for how long).
    EndpointOffline,
    /// An endpoint reported offline is connected again (outcome `online`).
    EndpointOnline,
    /// The periodic verification of the audit chain found it broken
    /// (outcome `failure`; detail: the entry and why).
    AuditVerify,
    /// A refused request, named by the authorization action it asked for
    /// (`rbac::Action::name`, e.g. `read-users`, `open-session:shell`).
    Denied(String),
    /// A second-factor event other than a change (outcome
    /// `recovery-code-used`); stored as `mfa`. (branch ident)
    Mfa,
}

impl AuditAction {
    /// The name stored in the log.
    pub(crate) fn as_str(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        Borrowed(match self {
            Self::Login => "login",
            Self::Lockout => "lockout",
            Self::UserCreate => "user-create",
            Self::UserUpdate => "user-update",
            Self::UserDelete => "user-delete",
            Self::UserUnlock => "user-unlock",
            Self::PasswordChange => "password-change",
            Self::PasswordReset => "password-reset",
            Self::SessionsRevoke => "sessions-revoke",
            Self::MfaEnable => "mfa-enable",
            Self::MfaDisable => "mfa-disable",
            Self::MfaReset => "mfa-reset",
            Self::MfaRecoveryCodes => "mfa-recovery-codes",
            Self::RecoveryCodeUsed => "recovery-code-used",
            Self::RoleCreate => "role-create",
            Self::RoleUpdate => "role-update",
            Self::RoleDelete => "role-delete",
            Self::SettingsChange => "settings-change",
            Self::ApiClientCreate => "api-client-create",
            Self::ApiClientDelete => "api-client-delete",
            Self::ApiClientRotate => "api-client-rotate",
            Self::GroupCreate => "group-create",
            Self::GroupUpdate => "group-update",
            Self::GroupDelete => "group-delete",
            Self::EnrollTokenCreate => "enroll-token-create",
            Self::Enroll => "enroll",
            Self::EndpointRevoke => "endpoint-revoke",
            Self::EndpointGroup => "endpoint-group",
            Self::EndpointConflict => "endpoint-conflict",
            Self::EndpointReenroll => "endpoint-reenroll",
            Self::EndpointReenrollToken => "endpoint-reenroll-token",
            Self::EndpointDetails => "endpoint-details",
            Self::JumpPoint => "jump-point",
            Self::TargetAdd => "target-add",
            Self::TargetRemove => "target-remove",
            Self::TargetHostKey => "target-host-key",
            Self::TargetRotate => "target-rotate",
            Self::SessionOpen(k) => return Owned(format!("session-open:{k}")),
            Self::SessionClose(k) => return Owned(format!("session-close:{k}")),
            Self::SessionTerminate => "session-terminate",
            Self::SessionRevoke => "session-revoke",
            Self::RecordingView => "recording-view",
            Self::RecordingsExpire => "recordings-expire",
            Self::RecordingSearch => "recording-search",
            Self::DesktopControl => "desktop-control",
            Self::DesktopClipboard => "desktop-clipboard",
            Self::SupportKeyCreate => "support-key-create",
            Self::SupportKeyFailed => "support-key-failed",
            Self::SupportRequest => "support-request",
            Self::SupportJoin => "support-join",
            Self::SupportAccept => "support-accept",
            Self::SupportTransfer => "support-transfer",
            Self::SupportParticipant => "support-participant",
            Self::SupportRight => "support-right",
            Self::SupportChat => "support-chat",
            Self::SupportEnd => "support-end",
            Self::SupportPin => "support-pin",
            Self::SupportExpire => "support-expire",
            Self::SessionWatch => "session-watch",
            Self::QueueCreate => "queue-create",
            Self::QueueUpdate => "queue-update",
            Self::QueueDelete => "queue-delete",
            Self::WebhookAdd => "webhook-add",
            Self::WebhookRemove => "webhook-remove",
            Self::WebhookRotateSecret => "webhook-rotate-secret",
            Self::WebhookAuth => "webhook-auth",
            Self::WebhookReplay => "webhook-replay",
            Self::KeysRotate => "keys-rotate",
            Self::KeysRetire => "keys-retire",
            Self::KeysRekey => "keys-rekey",
            Self::RootKeyRotate => "root-key-rotate",
            Self::VaultRead => "vault-read",
            Self::VaultPut => "vault-put",
            Self::VaultDelete => "vault-delete",
            Self::VaultRecover => "vault-recover",
            Self::VaultPurge => "vault-purge",
            Self::VaultPurgeProtection => "vault-purge-protection",
            Self::AuditExpire => "audit-expire",
            Self::EpmPolicyUpdate => "epm-policy-update",
            Self::EpmPublish => "epm-publish",
            Self::EpmKeyRotate => "epm-key-rotate",
            Self::EpmDecide => "epm-decide",
            Self::EpmCode => "epm-code",
            Self::EpmBlocked => "epm-blocked",
            Self::PackageUpload => "package-upload",
            Self::PackageDelete => "package-delete",
            Self::PackageAssign => "package-assign",
            Self::PackageUnassign => "package-unassign",
            Self::PackagePublisherAdd => "package-publisher-add",
            Self::PackagePublisherRemove => "package-publisher-remove",
            Self::PackageSettings => "package-settings",
            Self::SshKeyAdd => "ssh-key-add",
            Self::SshKeyRemove => "ssh-key-remove",
            Self::AccessRequest => "access-request",
            Self::AccessApprove => "access-approve",
            Self::AccessDeny => "access-deny",
            Self::AccessExpire => "access-expire",
            Self::AccessCancel => "access-cancel",
            Self::AlertRuleAdd => "alert-rule-add",
            Self::AlertRuleRemove => "alert-rule-remove",
            Self::SmtpTest => "smtp-test",
            Self::SshCertIssue => "ssh-cert-issue",
            Self::EndpointOffline => "endpoint-offline",
            Self::EndpointOnline => "endpoint-online",
            Self::AuditVerify => "audit-verify",
            Self::Denied(name) => return Owned(name.clone()),
            Self::Mfa => "mfa", // branch ident
        })
    }
}

/// One audit entry: who did what to which target, with what outcome; the
/// endpoint groups it concerns (empty: a site-wide entry, see
/// `rbac::ReadScope`).
#[derive(Clone, Debug)]
pub(crate) struct AuditEvent {
    pub(crate) actor: String,
    pub(crate) action: AuditAction,
    pub(crate) target: String,
    pub(crate) outcome: String,
    pub(crate) detail: String,
    pub(crate) groups: Vec<String>,
}

impl AuditEvent {
    /// An entry with outcome `ok`, no detail, site-wide.
    pub(crate) fn new(
        actor: impl Into<String>,
        action: AuditAction,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action,
            target: target.into(),
            outcome: "ok".into(),
            detail: String::new(),
            groups: Vec::new(),
        }
    }

    #[must_use]
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The outcome when it is not `ok` (`failed`, `refused`, `denied`, …).
    #[must_use]
    pub(crate) fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    /// Marks the entry as about endpoints of `group`.
    #[must_use]
    #[allow(
        dead_code,
        reason = "TRANSITIONAL: domains move to the typed actions one by one"
    )]
    pub(crate) fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Marks the entry as about endpoints of each of `groups`.
    #[must_use]
    pub(crate) fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }
}

/// The fields an entry's hash covers.
pub(crate) struct Entry<'a> {
    pub(crate) id: i64,
    pub(crate) at: i64,
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) target: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) detail: &'a str,
}

pub(crate) fn entry_hash(prev: &[u8], e: &Entry<'_>) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"jumpgate audit v1\0");
    ctx.update(prev);
    ctx.update(&e.id.to_be_bytes());
    ctx.update(&e.at.to_be_bytes());
    // Length-prefixed, so no field can bleed into the next.
    for field in [e.actor, e.action, e.target, e.outcome, e.detail] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish().as_ref().to_vec()
}

/// Longest actor, action and target stored (names are at most 64
/// characters, vault names 128; denied request paths can be longer).
pub(crate) const MAX_NAME_FIELD: usize = 256;
/// Longest outcome and detail stored.
pub(crate) const MAX_TEXT_FIELD: usize = 4096;

/// `s` cut to at most `max` characters, the cut marked with how much was
/// left out, so an over-long field is visibly shortened, never silently.
pub(crate) fn bound(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some(_) => {
            let total = s.chars().count();
            let keep_chars = max - 48;
            let note = format!("… ({} more characters)", total - keep_chars);
            let keep: String = s.chars().take(keep_chars).collect();
            std::borrow::Cow::Owned(keep + &note)
        }
    }
}

/// Appends `event` after the chain's head, inside the caller's write
/// transaction (which holds the write lock: see [`super::Store::write`]).
/// `head`: the head as this transaction (or its batch) last wrote it, read
/// from the table when `None`; updated to the new entry. Only this append
/// writes the chain's end while the lock is held (retention removes its
/// oldest entries, sealing legacy entries hashes the unhashed ones before
/// the first hashed one), so a head it wrote stays the head.
pub(crate) async fn append(
    w: &mut dyn Exec,
    head: &mut super::group::Head,
    event: &AuditEvent,
) -> Result<(), sqlx::Error> {
    // Free text is bounded at write time: an entry is evidence, not a
    // place to store whatever a caller sent (see `bound`).
    let action = event.action.as_str();
    let actor = &*bound(&event.actor, MAX_NAME_FIELD);
    let action = &*bound(&action, MAX_NAME_FIELD);
    let target = &*bound(&event.target, MAX_NAME_FIELD);
    let outcome = &*bound(&event.outcome, MAX_TEXT_FIELD);
    let detail = &*bound(&event.detail, MAX_TEXT_FIELD);
    let groups = (!event.groups.is_empty())
        .then(|| serde_json::to_string(&event.groups).unwrap_or_else(|_| "[]".into()));
    let (last_id, prev) = match head.take() {
        Some(known) => known,
        None => {
            let stored: Option<(i64, Option<Vec<u8>>)> = sql!(w, |c| {
                sqlx::query_as("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *c)
                    .await
            })?;
            stored.map_or((0, GENESIS.to_vec()), |(id, hash)| {
                (id, hash.unwrap_or_default())
            })
        }
    };
    let entry = Entry {
        id: last_id + 1,
        at: ids::now_ms(),
        actor,
        action,
        target,
        outcome,
        detail,
    };
    let hash = entry_hash(&prev, &entry);
    sql!(w, |c| {
        sqlx::query(
            "INSERT INTO events (id, at, actor, action, target, outcome, detail, prev_hash, hash, groups)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.id)
        .bind(entry.at)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(outcome)
        .bind(detail)
        .bind(&prev)
        .bind(&hash)
        .bind(groups.as_deref())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
    })?;
    *head = Some((entry.id, hash));
    Ok(())
}

/// A stored audit entry, as readers of the chain after a cursor see it
/// (the analytics shipper, the notifier).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: String,
    pub(crate) detail: String,
    /// The endpoint groups the entry concerns, as a JSON array (`None`:
    /// site-wide); [`Row::group_names`] decodes it.
    pub(crate) groups: Option<String>,
}

impl Row {
    /// The endpoint groups the entry concerns (empty: site-wide).
    pub(crate) fn group_names(&self) -> Vec<String> {
        self.groups
            .as_deref()
            .and_then(|g| serde_json::from_str(g).ok())
            .unwrap_or_default()
    }
}

/// Audit entries after id `after`, oldest first, at most `limit`.
///
/// # Errors
/// The read failed.
pub(crate) async fn after(
    db: &super::Store,
    after: i64,
    limit: u32,
) -> Result<Vec<Row>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as::<_, Row>(
        "SELECT id, at, actor, action, target, outcome, detail, groups FROM events
          WHERE id > $1 ORDER BY id LIMIT $2"
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await)
}

/// The id of the chain's last entry (0 when empty).
///
/// # Errors
/// The read failed.
pub(crate) async fn last_id(e: &mut impl Exec) -> Result<i64, sqlx::Error> {
    let id: Option<i64> = sql!(e, |c| sqlx::query_scalar(
        "SELECT CAST(MAX(id) AS BIGINT) FROM events"
    )
    .fetch_one(&mut *c)
    .await)?;
    Ok(id.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored action names are evidence read by auditors and tools:
    /// they never change. A new action adds a row here.
    #[test]
    fn stored_action_names_are_frozen() {
        use AuditAction as A;
        let table: &[(AuditAction, &str)] = &[
            (A::Login, "login"),
            (A::Lockout, "lockout"),
            (A::UserCreate, "user-create"),
            (A::UserUpdate, "user-update"),
            (A::UserDelete, "user-delete"),
            (A::UserUnlock, "user-unlock"),
            (A::PasswordChange, "password-change"),
            (A::PasswordReset, "password-reset"),
            (A::SessionsRevoke, "sessions-revoke"),
            (A::MfaEnable, "mfa-enable"),
            (A::MfaDisable, "mfa-disable"),
            (A::MfaReset, "mfa-reset"),
            (A::MfaRecoveryCodes, "mfa-recovery-codes"),
            (A::RecoveryCodeUsed, "recovery-code-used"),
            (A::RoleCreate, "role-create"),
            (A::RoleUpdate, "role-update"),
            (A::RoleDelete, "role-delete"),
            (A::SettingsChange, "settings-change"),
            (A::ApiClientCreate, "api-client-create"),
            (A::ApiClientDelete, "api-client-delete"),
            (A::ApiClientRotate, "api-client-rotate"),
            (A::GroupCreate, "group-create"),
            (A::GroupUpdate, "group-update"),
            (A::GroupDelete, "group-delete"),
            (A::EnrollTokenCreate, "enroll-token-create"),
            (A::Enroll, "enroll"),
            (A::EndpointRevoke, "endpoint-revoke"),
            (A::EndpointGroup, "endpoint-group"),
            (A::EndpointConflict, "endpoint-conflict"),
            (A::EndpointReenroll, "endpoint-reenroll"),
            (A::EndpointReenrollToken, "endpoint-reenroll-token"),
            (A::EndpointDetails, "endpoint-details"),
            (A::JumpPoint, "jump-point"),
            (A::TargetAdd, "target-add"),
            (A::TargetRemove, "target-remove"),
            (A::TargetHostKey, "target-host-key"),
            (A::TargetRotate, "target-rotate"),
            (A::SessionOpen(SessionKind::Shell), "session-open:shell"),
            (A::SessionOpen(SessionKind::Forward), "session-open:forward"),
            (A::SessionClose(SessionKind::Exec), "session-close:exec"),
            (A::SessionClose(SessionKind::Upload), "session-close:upload"),
            (
                A::SessionClose(SessionKind::Download),
                "session-close:download",
            ),
            (A::SessionTerminate, "session-terminate"),
            (A::SessionRevoke, "session-revoke"),
            (A::RecordingView, "recording-view"),
            (A::RecordingsExpire, "recordings-expire"),
            (A::RecordingSearch, "recording-search"),
            (A::DesktopControl, "desktop-control"),
            (A::DesktopClipboard, "desktop-clipboard"),
            (A::SupportKeyCreate, "support-key-create"),
            (A::SupportKeyFailed, "support-key-failed"),
            (A::SupportRequest, "support-request"),
            (A::SupportJoin, "support-join"),
            (A::SupportAccept, "support-accept"),
            (A::SupportTransfer, "support-transfer"),
            (A::SupportParticipant, "support-participant"),
            (A::SupportRight, "support-right"),
            (A::SupportChat, "support-chat"),
            (A::SupportEnd, "support-end"),
            (A::SupportPin, "support-pin"),
            (A::SupportExpire, "support-expire"),
            (A::SessionWatch, "session-watch"),
            (A::QueueCreate, "queue-create"),
            (A::QueueUpdate, "queue-update"),
            (A::QueueDelete, "queue-delete"),
            (A::WebhookAdd, "webhook-add"),
            (A::WebhookRemove, "webhook-remove"),
            (A::WebhookRotateSecret, "webhook-rotate-secret"),
            (A::WebhookAuth, "webhook-auth"),
            (A::WebhookReplay, "webhook-replay"),
            (A::KeysRotate, "keys-rotate"),
            (A::KeysRetire, "keys-retire"),
            (A::KeysRekey, "keys-rekey"),
            (A::RootKeyRotate, "root-key-rotate"),
            (A::VaultRead, "vault-read"),
            (A::VaultPut, "vault-put"),
            (A::VaultDelete, "vault-delete"),
            (A::VaultRecover, "vault-recover"),
            (A::VaultPurge, "vault-purge"),
            (A::VaultPurgeProtection, "vault-purge-protection"),
            (A::AuditExpire, "audit-expire"),
            (A::EpmPolicyUpdate, "epm-policy-update"),
            (A::EpmPublish, "epm-publish"),
            (A::EpmKeyRotate, "epm-key-rotate"),
            (A::EpmDecide, "epm-decide"),
            (A::EpmCode, "epm-code"),
            (A::EpmBlocked, "epm-blocked"),
            (A::PackageUpload, "package-upload"),
            (A::PackageDelete, "package-delete"),
            (A::PackageAssign, "package-assign"),
            (A::PackageUnassign, "package-unassign"),
            (A::PackagePublisherAdd, "package-publisher-add"),
            (A::PackagePublisherRemove, "package-publisher-remove"),
            (A::PackageSettings, "package-settings"),
            (A::SshKeyAdd, "ssh-key-add"),
            (A::SshKeyRemove, "ssh-key-remove"),
            (A::AccessRequest, "access-request"),
            (A::AccessApprove, "access-approve"),
            (A::AccessDeny, "access-deny"),
            (A::AccessExpire, "access-expire"),
            (A::AccessCancel, "access-cancel"),
            (A::AlertRuleAdd, "alert-rule-add"),
            (A::AlertRuleRemove, "alert-rule-remove"),
            (A::SmtpTest, "smtp-test"),
            (A::SshCertIssue, "ssh-cert-issue"),
            (A::EndpointOffline, "endpoint-offline"),
            (A::EndpointOnline, "endpoint-online"),
            (A::AuditVerify, "audit-verify"),
            (A::Denied("open-session:shell".into()), "open-session:shell"),
            (A::Mfa, "mfa"), // branch ident
        ];
        for (action, name) in table {
            assert_eq!(action.as_str(), *name, "{action:?}");
        }
    }
}
