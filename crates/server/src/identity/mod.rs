//! Who is calling: user accounts, passwords (Argon2id, site policy,
//! history, expiry), brute-force protection, TOTP MFA, login session tokens,
//! OAuth2 API clients, and one-time enrollment tokens for agents.
//!
//! Tokens are 256-bit random strings; only their SHA-256 is stored, so a
//! database leak yields no usable token. User session tokens start `jgs_`,
//! API client access tokens `jga_`.

pub(crate) mod clients;
mod clients_http;
pub(crate) mod http;
pub(crate) mod lockout;
pub(crate) mod members;
pub(crate) mod mfa;
pub(crate) mod password;
pub(crate) mod schema;
pub(crate) mod settings;

use std::time::Duration;

/// Identity failures. `InvalidCredentials` deliberately does not say whether
/// the user exists or is locked.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid username or password (or the account is temporarily locked)")]
    InvalidCredentials,
    #[error("this account uses MFA: a valid TOTP code or recovery code is required")]
    MfaRequired,
    #[error("too many login attempts from your address; retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("missing, invalid or expired session token")]
    Unauthenticated,
    #[error("a user named `{0}` already exists (user names are not case-sensitive)")]
    UserExists(String),
    #[error("no user named `{0}`")]
    UnknownUser(String),
    /// The role as shown by `ids::echo` (quoted, bounded).
    #[error("unknown role {0}")]
    UnknownRole(String),
    #[error("{0}")]
    InvalidName(String),
    /// The text comes from `password::describe` ("password rejected: ...").
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the code is not valid")]
    WrongCode,
    #[error("password hashing failed")]
    Hash,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A TOTP secret could not be sealed or opened with the site's keys.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

mod enroll;
mod login;
mod second_factor;
mod tokens;
mod users;

pub(crate) use enroll::*;
pub(crate) use login::*;
pub(crate) use second_factor::*;
pub(crate) use tokens::*;
pub(crate) use users::*;

#[cfg(test)]
mod tests;
