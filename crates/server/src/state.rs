//! What every request handler and connection task shares.

use std::sync::Arc;

use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::Registry;
use crate::config::Config;
use crate::sessions::LiveSessions;

#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: SqlitePool,
    pub(crate) config: Config,
    /// Origins the console is served from (`Config::origins`), canonical
    /// first: the WebSocket Origin check and the redirect port use them.
    pub(crate) origins: Vec<String>,
    /// Where recordings (and other blobs) are stored (`[blobs]`).
    pub(crate) blobs: crate::blobs::Blobs,
    /// Keys for data at rest (recordings, ...).
    pub(crate) keys: crate::keys::Keyring,
    /// Agents connected right now.
    pub(crate) agents: Registry,
    /// Technician sessions being relayed right now.
    pub(crate) sessions: LiveSessions,
    /// Cancelled when the gateway stops accepting new work.
    pub(crate) shutdown: CancellationToken,
    /// Every connection and session task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Login attempts per source address.
    pub(crate) login_limiter: crate::identity::lockout::RateLimiter,
    /// Wakes the key task (a rotation happened: sweep now).
    pub(crate) key_sweep: Arc<tokio::sync::Notify>,
}

impl AppState {
    pub(crate) fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
