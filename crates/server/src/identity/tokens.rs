//! Login session tokens: bearer credentials, authentication of every
//! request, logout and revocation.

use super::settings::{self, SecuritySettings};
use super::{IdentityError, clients, json_list, password};
use crate::ids::{self, UserId};
use crate::rbac::{self, Groups, Restriction, Scopes, Subject, SubjectKind};
use crate::store::{AuditEvent, Store, sql};

/// A presented bearer token as the gateway keeps it: its SHA-256 (never the
/// token itself) and which table it lives in. Live sessions keep theirs, so
/// they can be authenticated again whenever access may have changed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Credential {
    hash: Vec<u8>,
    api_client: bool,
}

impl Credential {
    pub(crate) fn of(token: &str) -> Self {
        Self {
            hash: ids::token_hash(token),
            api_client: token.starts_with("jga_"),
        }
    }

    /// A user's login token known only by its hash (an SSH certificate
    /// names the login it was issued for by this hash).
    pub(crate) fn of_user_hash(hash: Vec<u8>) -> Self {
        Self {
            hash,
            api_client: false,
        }
    }

    /// The token's SHA-256 (`None` for an API client's token).
    pub(crate) fn user_hash(&self) -> Option<&[u8]> {
        (!self.api_client).then_some(self.hash.as_slice())
    }

    /// When the token expires (ms since the epoch); `None` if it no longer
    /// exists.
    pub(crate) async fn expires_at(&self, db: &Store) -> Result<Option<i64>, sqlx::Error> {
        let q = if self.api_client {
            "SELECT expires_at FROM client_tokens WHERE token_hash = $1"
        } else {
            "SELECT expires_at FROM auth_tokens WHERE token_hash = $1"
        };
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_scalar(q)
            .bind(&self.hash)
            .fetch_optional(&mut *c)
            .await)
    }
}

/// Never prints the hash either: it identifies a live credential.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("api_client", &self.api_client)
            .finish_non_exhaustive()
    }
}

/// Resolves a bearer token (a user session or an API client access token).
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens.
pub(crate) async fn authenticate(db: &Store, token: &str) -> Result<Subject, IdentityError> {
    authenticate_credential(db, &Credential::of(token)).await
}

/// A live session's account, as [`authenticate_credential`] reads it.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    username: String,
    role: String,
    groups: String,
    password_changed_at: i64,
    locked_until: Option<i64>,
    mfa: bool,
    /// The role's permissions (`None`: the role is gone).
    permissions: Option<String>,
    /// The site's security settings (`None`: never saved).
    settings: Option<String>,
}

/// [`authenticate`] for a token known by its hash: the same checks, for the
/// request that opens a session and every later re-check of that session.
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens and
/// locked accounts.
pub(crate) async fn authenticate_credential(
    db: &Store,
    cred: &Credential,
) -> Result<Subject, IdentityError> {
    if cred.api_client {
        return clients::authenticate(db, &cred.hash).await;
    }
    let now = ids::now_ms();
    let row: Option<SessionRow> = {
        let mut c = db.conn().await?;
        // One round trip: the account, its role's permissions and the
        // security settings in one query (every request waits for it).
        sql!(c, |c| sqlx::query_as(
            "SELECT u.id, u.username, u.role, u.groups, u.password_changed_at, u.locked_until,
                    u.totp_secret IS NOT NULL AS mfa,
                    (SELECT r.permissions FROM roles r WHERE r.name = u.role) AS permissions,
                    (SELECT s.value FROM settings s WHERE s.key = $3) AS settings
               FROM auth_tokens t JOIN users u ON u.id = t.user_id
              WHERE t.token_hash = $1 AND t.expires_at > $2"
        )
        .bind(&cred.hash)
        .bind(now)
        .bind(settings::KEY)
        .fetch_optional(&mut *c)
        .await)?
    };
    let row = row.ok_or(IdentityError::Unauthenticated)?;
    // A locked account (repeated failed logins) is locked everywhere: its
    // open sessions end too.
    if row.locked_until.is_some_and(|until| until > now) {
        return Err(IdentityError::Unauthenticated);
    }
    // Decided on every request, not fixed at login: a policy that starts to
    // require MFA (or a password that expires) takes effect on sessions
    // already open.
    let settings = settings::parse(row.settings.as_deref());
    let restriction = restriction_for(&settings, &row.role, row.password_changed_at, row.mfa, now);
    let id = UserId(row.id);
    // Groups requiring approval and this user's grants active now, read on
    // every request (an expiry or cancellation takes effect at once).
    let approvals = crate::access::load(db, Some(&id), now).await?;
    Ok(Subject {
        name: row.username,
        kind: SubjectKind::User(id),
        permissions: row
            .permissions
            .as_deref()
            .map(rbac::store::stored_permissions)
            .unwrap_or_default(),
        role: row.role,
        groups: Groups::from_list(&json_list(&row.groups)),
        scopes: Scopes::FULL,
        restriction,
        approvals,
    })
}

/// Why a credential that authenticated before no longer does, in words for
/// its holder. `expires_at` is the token's expiry as known when it last
/// worked (the row of an expired token may be gone by now).
pub(crate) async fn why_unauthenticated(
    db: &Store,
    cred: &Credential,
    who: &SubjectKind,
    expires_at: Option<i64>,
) -> Result<String, sqlx::Error> {
    let now = ids::now_ms();
    let expires_at = cred.expires_at(db).await?.or(expires_at);
    let expired = expires_at.is_some_and(|t| t <= now);
    let mut c = db.conn().await?;
    Ok(match who {
        SubjectKind::User(id) => {
            let locked: Option<Option<i64>> = sql!(c, |c| sqlx::query_scalar(
                "SELECT locked_until FROM users WHERE id = $1"
            )
            .bind(id.as_str())
            .fetch_optional(&mut *c)
            .await)?;
            match locked {
                None => "your account was deleted".to_owned(),
                Some(Some(until)) if until > now => {
                    "your account is locked after repeated failed logins".to_owned()
                }
                Some(_) if expired => "your login session expired: log in again".to_owned(),
                Some(_) => {
                    "your login session was revoked (sessions revoked, password changed or logged out)"
                        .to_owned()
                }
            }
        }
        SubjectKind::ApiClient { client_id } => {
            let exists: Option<String> = sql!(c, |c| sqlx::query_scalar(
                "SELECT client_id FROM api_clients WHERE client_id = $1"
            )
            .bind(client_id)
            .fetch_optional(&mut *c)
            .await)?;
            match exists {
                None => "the API client was deleted".to_owned(),
                Some(_) if expired => "the API client's access token expired".to_owned(),
                Some(_) => "the API client's access token was revoked".to_owned(),
            }
        }
    })
}

/// What a user's session may do before the account is in order: an expired
/// password must be changed first, then a role's required MFA enrolled.
pub(super) fn restriction_for(
    settings: &SecuritySettings,
    role: &str,
    password_changed_at: i64,
    mfa_enabled: bool,
    now: i64,
) -> Restriction {
    if password::expired(&settings.password, password_changed_at, now) {
        Restriction::PasswordChange
    } else if settings.mfa_required(role) && !mfa_enabled {
        Restriction::MfaEnrollment
    } else {
        Restriction::None
    }
}

/// A subject with its role's permissions and its groups (`groups`: the
/// stored JSON list).
pub(super) async fn subject(
    db: &Store,
    name: String,
    kind: SubjectKind,
    role: String,
    groups: &str,
    scopes: Scopes,
    restriction: Restriction,
) -> Result<Subject, IdentityError> {
    let user = match &kind {
        SubjectKind::User(id) => Some(id.clone()),
        SubjectKind::ApiClient { .. } => None,
    };
    let approvals = crate::access::load(db, user.as_ref(), ids::now_ms()).await?;
    Ok(Subject {
        name,
        kind,
        permissions: rbac::role_permissions(db, &role).await?.unwrap_or_default(),
        role,
        groups: Groups::from_list(&json_list(groups)),
        scopes,
        restriction,
        approvals,
    })
}

/// Revokes one session token.
pub(crate) async fn logout(db: &Store, token: &str) -> Result<(), IdentityError> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query(
        "DELETE FROM auth_tokens WHERE token_hash = $1"
    )
    .bind(ids::token_hash(token))
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends every session of a user; `audit` commits with it, its detail
/// saying how many ended.
pub(crate) async fn revoke_sessions(
    db: &Store,
    id: &UserId,
    audit: AuditEvent,
) -> Result<u64, sqlx::Error> {
    let mut w = db.write().await?;
    let n = sql!(w, |c| sqlx::query(
        "DELETE FROM auth_tokens WHERE user_id = $1"
    )
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit.detail(format!("{n} session(s)"))).await?;
    w.commit().await?;
    Ok(n)
}
