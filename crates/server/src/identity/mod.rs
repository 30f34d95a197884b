//! Who is calling: user accounts, passwords (Argon2id), login session tokens,
//! and one-time enrollment tokens for agents.
//!
//! Tokens are 256-bit random strings; only their SHA-256 is stored, so a
//! database leak yields no usable token.

pub(crate) mod http;

use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sqlx::{Row, SqlitePool};

use crate::ids::{self, UserId};

/// Built-in roles. (Custom roles and endpoint groups come with the RBAC work.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Admin,
    Technician,
    Auditor,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Technician => "technician",
            Self::Auditor => "auditor",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "technician" => Ok(Self::Technician),
            "auditor" => Ok(Self::Auditor),
            other => Err(IdentityError::UnknownRole(other.to_owned())),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    pub(crate) user_id: UserId,
    pub(crate) username: String,
    pub(crate) role: Role,
}

/// Identity failures. `InvalidCredentials` deliberately does not say whether
/// the user exists.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("missing, invalid or expired session token")]
    Unauthenticated,
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("unknown role `{0}` (expected admin, technician or auditor)")]
    UnknownRole(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("password rejected: {0}")]
    WeakPassword(String),
    #[error("password hashing failed")]
    Hash,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Minimum password length (NIST SP 800-63B suggests at least 8; privileged
/// access warrants more).
pub(crate) const MIN_PASSWORD_LEN: usize = 12;

fn check_password_policy(password: &str) -> Result<(), IdentityError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(IdentityError::WeakPassword(format!(
            "must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(IdentityError::WeakPassword(
            "must be at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| IdentityError::Hash)
    })
    .await
    .map_err(|_| IdentityError::Hash)?
}

/// Verifies in constant time (Argon2's comparison) on a blocking thread.
async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against for unknown users so that
/// "no such user" costs the same time as "wrong password".
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let pw = ids::random_token("dummy");
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Creates a user.
///
/// # Errors
/// Invalid name, weak password, or the user exists.
pub(crate) async fn create_user(
    db: &SqlitePool,
    username: &str,
    password: &str,
    role: Role,
) -> Result<UserId, IdentityError> {
    ids::validate_name("user", username).map_err(IdentityError::InvalidName)?;
    check_password_policy(password)?;
    let hash = hash_password(password.to_owned()).await?;
    let id = UserId::generate();
    let res = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id.as_str())
    .bind(username)
    .bind(&hash)
    .bind(role.as_str())
    .bind(ids::now_ms())
    .execute(db)
    .await;
    match res {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(IdentityError::UserExists(username.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A login session.
#[derive(Clone)]
pub(crate) struct LoginSession {
    pub(crate) token: String,
    pub(crate) principal: Principal,
    pub(crate) expires_at_ms: i64,
}

/// Checks a password and issues a session token.
///
/// # Errors
/// [`IdentityError::InvalidCredentials`] for an unknown user or wrong password alike.
pub(crate) async fn login(
    db: &SqlitePool,
    username: &str,
    password: &str,
    ttl: Duration,
) -> Result<LoginSession, IdentityError> {
    let row = sqlx::query("SELECT id, password_hash, role FROM users WHERE username = ?")
        .bind(username)
        .fetch_optional(db)
        .await?;
    let (stored, found) = match &row {
        Some(r) => (r.get::<String, _>("password_hash"), true),
        None => (dummy_hash().to_owned(), false),
    };
    let ok = verify_password(password.to_owned(), stored).await;
    let Some(row) = row.filter(|_| ok && found) else {
        return Err(IdentityError::InvalidCredentials);
    };
    let principal = Principal {
        user_id: UserId(row.get("id")),
        username: username.to_owned(),
        role: row.get::<String, _>("role").parse()?,
    };
    let token = ids::random_token("jgs");
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(ids::token_hash(&token))
    .bind(principal.user_id.as_str())
    .bind(now)
    .bind(expires_at_ms)
    .execute(db)
    .await?;
    // Expired tokens are dead weight; sweep them opportunistically.
    sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= ?")
        .bind(now)
        .execute(db)
        .await?;
    Ok(LoginSession {
        token,
        principal,
        expires_at_ms,
    })
}

/// Resolves a bearer token to its user.
///
/// # Errors
/// [`IdentityError::Unauthenticated`] for unknown or expired tokens.
pub(crate) async fn authenticate(db: &SqlitePool, token: &str) -> Result<Principal, IdentityError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.role FROM auth_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ? AND t.expires_at > ?",
    )
    .bind(ids::token_hash(token))
    .bind(ids::now_ms())
    .fetch_optional(db)
    .await?
    .ok_or(IdentityError::Unauthenticated)?;
    Ok(Principal {
        user_id: UserId(row.get("id")),
        username: row.get("username"),
        role: row.get::<String, _>("role").parse()?,
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

/// A new one-time enrollment token.
#[derive(Clone)]
pub(crate) struct EnrollToken {
    pub(crate) token: String,
    pub(crate) expires_at_ms: i64,
}

/// Creates a one-time enrollment token for endpoints of `group`.
///
/// # Errors
/// Invalid group name or database failure.
pub(crate) async fn create_enroll_token(
    db: &SqlitePool,
    group: &str,
    ttl: Duration,
) -> Result<EnrollToken, IdentityError> {
    ids::validate_name("group", group).map_err(IdentityError::InvalidName)?;
    let token = ids::random_token("jge");
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    sqlx::query("INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(ids::token_hash(&token))
        .bind(group)
        .bind(now)
        .bind(expires_at_ms)
        .execute(db)
        .await?;
    Ok(EnrollToken {
        token,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&dir.path().join("t.db")).await.unwrap();
        (dir, pool)
    }

    #[tokio::test]
    async fn login_authenticate_logout() {
        let (_d, db) = db().await;
        create_user(&db, "alice", "correct horse battery", Role::Admin)
            .await
            .unwrap();
        let s = login(
            &db,
            "alice",
            "correct horse battery",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let p = authenticate(&db, &s.token).await.unwrap();
        assert_eq!((p.username.as_str(), p.role), ("alice", Role::Admin));
        logout(&db, &s.token).await.unwrap();
        assert!(matches!(
            authenticate(&db, &s.token).await,
            Err(IdentityError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_fail_alike() {
        let (_d, db) = db().await;
        create_user(&db, "bob", "correct horse battery", Role::Technician)
            .await
            .unwrap();
        let a = login(&db, "bob", "wrong password!!", Duration::from_secs(60)).await;
        let b = login(
            &db,
            "nobody",
            "correct horse battery",
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(a.err().unwrap().to_string(), b.err().unwrap().to_string());
    }

    #[tokio::test]
    async fn bad_input_is_refused_clearly() {
        let (_d, db) = db().await;
        assert!(matches!(
            create_user(&db, "carol", "short", Role::Admin).await,
            Err(IdentityError::WeakPassword(_))
        ));
        assert!(matches!(
            create_user(&db, "bad name", "long enough password", Role::Admin).await,
            Err(IdentityError::InvalidName(_))
        ));
        create_user(&db, "carol", "long enough password", Role::Admin)
            .await
            .unwrap();
        assert!(matches!(
            create_user(&db, "carol", "long enough password", Role::Admin).await,
            Err(IdentityError::UserExists(_))
        ));
        assert!("root".parse::<Role>().is_err());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let (_d, db) = db().await;
        create_user(&db, "dave", "long enough password", Role::Admin)
            .await
            .unwrap();
        let s = login(
            &db,
            "dave",
            "long enough password",
            Duration::from_millis(1),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(authenticate(&db, &s.token).await.is_err());
    }
}
