//! Login session tokens: bearer credentials, authentication of every
//! request, logout and revocation.

use sqlx::{Row, SqlitePool};

use super::*;

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

    /// When the token expires (ms since the epoch); `None` if it no longer
    /// exists.
    pub(crate) async fn expires_at(&self, db: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
        let sql = if self.api_client {
            "SELECT expires_at FROM client_tokens WHERE token_hash = ?"
        } else {
            "SELECT expires_at FROM auth_tokens WHERE token_hash = ?"
        };
        sqlx::query_scalar(sql)
            .bind(&self.hash)
            .fetch_optional(db)
            .await
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
pub(crate) async fn authenticate(db: &SqlitePool, token: &str) -> Result<Subject, IdentityError> {
    authenticate_credential(db, &Credential::of(token)).await
}

/// [`authenticate`] for a token known by its hash: the same checks, for the
/// request that opens a session and every later re-check of that session.
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens and
/// locked accounts.
pub(crate) async fn authenticate_credential(
    db: &SqlitePool,
    cred: &Credential,
) -> Result<Subject, IdentityError> {
    if cred.api_client {
        return clients::authenticate(db, &cred.hash).await;
    }
    let row = live_token_row(
        db,
        "SELECT u.id, u.username, u.role, u.groups, u.password_changed_at, u.locked_until, u.totp_secret IS NOT NULL AS mfa
         FROM auth_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ? AND t.expires_at > ?",
        &cred.hash,
    )
    .await?;
    // A locked account (repeated failed logins) is locked everywhere: its
    // open sessions end too.
    if row
        .get::<Option<i64>, _>("locked_until")
        .is_some_and(|until| until > ids::now_ms())
    {
        return Err(IdentityError::Unauthenticated);
    }
    let role: String = row.get("role");
    // Decided on every request, not fixed at login: a policy that starts to
    // require MFA (or a password that expires) takes effect on sessions
    // already open.
    let settings = settings::load(db).await?;
    let restriction = restriction_for(
        &settings,
        &role,
        row.get("password_changed_at"),
        row.get("mfa"),
        ids::now_ms(),
    );
    let kind = SubjectKind::User(UserId(row.get("id")));
    subject(
        db,
        &row,
        row.get("username"),
        kind,
        role,
        Scopes::FULL,
        restriction,
    )
    .await
}

/// Why a credential that authenticated before no longer does, in words for
/// its holder. `expires_at` is the token's expiry as known when it last
/// worked (the row of an expired token may be gone by now).
pub(crate) async fn why_unauthenticated(
    db: &SqlitePool,
    cred: &Credential,
    who: &SubjectKind,
    expires_at: Option<i64>,
) -> Result<String, sqlx::Error> {
    let now = ids::now_ms();
    let expires_at = cred.expires_at(db).await?.or(expires_at);
    let expired = expires_at.is_some_and(|t| t <= now);
    Ok(match who {
        SubjectKind::User(id) => {
            let locked: Option<Option<i64>> =
                sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                    .bind(id.as_str())
                    .fetch_optional(db)
                    .await?;
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
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM api_clients WHERE client_id = ?")
                    .bind(client_id)
                    .fetch_optional(db)
                    .await?;
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

/// The row of a live (unexpired) token, found by the SHA-256 of the
/// presented token; `sql` selects it with the hash and the time as binds.
pub(crate) async fn live_token_row(
    db: &SqlitePool,
    sql: &'static str,
    token_hash: &[u8],
) -> Result<sqlx::sqlite::SqliteRow, IdentityError> {
    sqlx::query(sql)
        .bind(token_hash)
        .bind(ids::now_ms())
        .fetch_optional(db)
        .await?
        .ok_or(IdentityError::Unauthenticated)
}

/// A subject with its role's permissions and the `groups` column of `row`.
pub(crate) async fn subject(
    db: &SqlitePool,
    row: &sqlx::sqlite::SqliteRow,
    name: String,
    kind: SubjectKind,
    role: String,
    scopes: Scopes,
    restriction: Restriction,
) -> Result<Subject, IdentityError> {
    Ok(Subject {
        name,
        kind,
        permissions: rbac::role_permissions(db, &role).await?.unwrap_or_default(),
        role,
        groups: Groups::from_list(&json_list(&row.get::<String, _>("groups"))),
        scopes,
        restriction,
    })
}

/// Revokes one session token.
pub(crate) async fn logout(db: &SqlitePool, token: &str) -> Result<(), IdentityError> {
    sqlx::query("DELETE FROM auth_tokens WHERE token_hash = ?")
        .bind(ids::token_hash(token))
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of a user.
pub(crate) async fn revoke_sessions(
    db: &SqlitePool,
    id: &UserId,
    audit: Audit<'_>,
) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let n = sqlx::query("DELETE FROM auth_tokens WHERE user_id = ?")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    audit
        .detail(format!("{n} session(s)"))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}
