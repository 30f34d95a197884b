//! Attended support: the public portal, session keys, queues, the
//! customer's client connection, chat, rights the customer grants, and
//! technicians working together (design: `docs/design/13-attended-support.md`).
//!
//! Built so far: queues ([`queues`]), session keys and the portal's
//! request form ([`keys`]), the portal's branding and public information
//! ([`portal`]), the sealed fields and their keys ([`crypto`]), the list of
//! support sessions ([`history`]), the live events technicians' queues
//! follow ([`hub`]), and their routes ([`http`]). Owns the `support_*` tables ([`schema`]).

pub(crate) mod assign;
pub(crate) mod assist;
mod crypto;
mod download;
mod history;
pub(crate) mod http;
pub(crate) mod hub;
mod keys;
pub(crate) mod live;
pub(crate) mod page;
pub(crate) mod pin;
mod portal;
mod queues;
pub(crate) mod schema;
pub(crate) mod session;
pub(crate) mod upkeep;

use std::time::Duration;

pub(crate) use crypto::{PEPPER_KEY, SESSION_KEYS};

use crate::identity::lockout::RateLimiter;
use crate::keys::KeyError;

/// The right a technician's sub-session of `kind` needs from the customer
/// (`None`: never part of attended support).
pub(crate) fn right_for(
    kind: jumpgate_proto::session::SessionKind,
) -> Option<jumpgate_proto::assist::Right> {
    use jumpgate_proto::assist::Right;
    use jumpgate_proto::session::SessionKind as K;
    match kind {
        K::Desktop => Some(Right::View),
        K::Shell | K::Exec => Some(Right::Shell),
        K::Upload | K::Download => Some(Right::Files),
        K::Forward => None,
    }
}

/// Why a support request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SupportError {
    /// Unknown, used, expired or malformed: one answer for all.
    #[error("This key is not valid. Ask your technician for a new one.")]
    InvalidKey,
    #[error("too many attempts; try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("no queue named `{0}`")]
    UnknownQueue(String),
    #[error("this queue is full; please try again later")]
    QueueFull,
    #[error("no support session `{0}`")]
    UnknownSession(String),
    #[error("support session `{0}` is not live on this gateway (its customer is not connected)")]
    NotLive(String),
    #[error("this support session is {0} already: someone else took it")]
    AlreadyTaken(String),
    #[error("the customer's client is not connected")]
    Offline,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("cannot read the customer client's executable: {0}")]
    Binary(std::io::Error),
    #[error("the system's random source failed")]
    Random,
    #[error("{0}")]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Pepper(#[from] crypto::PepperError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The portal's rate limits (per source address; IPv6 per /64).
#[derive(Debug)]
pub(crate) struct Limits {
    /// Key attempts per address: 5 at once, 10 a minute.
    pub(crate) key_attempts: RateLimiter,
    /// Wrong keys site-wide (one bucket): 30 at once, 60 a minute. Taken
    /// before a key is verified and given back when it was right, so an
    /// attacker with many addresses, however concurrent, still gets 60
    /// guesses a minute at most (after a first 30).
    pub(crate) key_failures: RateLimiter,
    /// Request forms per address: 3 at once, 6 a minute.
    pub(crate) requests: RateLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            key_attempts: RateLimiter::new(5, 10),
            key_failures: RateLimiter::new(30, 60),
            requests: RateLimiter::new(3, 6),
        }
    }
}

#[cfg(test)]
mod tests;
