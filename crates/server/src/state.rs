//! What every request handler and connection task shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::AgentDirectory;
use crate::config::Config;
use crate::ids::GatewayId;
use crate::lease::Lease;
use crate::sessions::LiveSessions;

/// The `api` toolkit's route builder, bound to this state and to `rbac`'s
/// site actions: what every domain's `routes` takes and returns.
pub(crate) type Api = crate::api::Api<AppState, crate::rbac::Action>;

#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: crate::store::Store,
    pub(crate) config: Config,
    /// Origins the console is served from (`Config::origins`), canonical
    /// first: the WebSocket Origin check and the redirect port use them.
    pub(crate) origins: Vec<String>,
    /// The portal's origin when it has a host name of its own: where a
    /// downloaded customer client dials.
    pub(crate) portal_origin: Option<String>,
    /// The site CA fingerprint clients pin (the customer's client gets it
    /// in its download).
    pub(crate) fingerprint: String,
    /// Where recordings (and other blobs) are stored (`[blobs]`).
    pub(crate) blobs: crate::blobs::Blobs,
    /// Keys for data at rest (recordings, ...).
    pub(crate) keys: crate::keys::Keyring,
    /// This gateway, among the site's gateways: random per start, logged
    /// at start. A restarted gateway holds none of its former connections,
    /// so it is a new member of the site; and a copied data directory
    /// (cloned VM) cannot make two gateways one.
    pub(crate) gateway: GatewayId,
    /// Where each agent is connected (this gateway's own connections
    /// included: `agents.local()`).
    pub(crate) agents: Arc<dyn AgentDirectory>,
    /// Which background jobs this gateway may run.
    pub(crate) lease: Arc<dyn Lease>,
    /// Technician sessions being relayed right now.
    pub(crate) sessions: LiveSessions,
    /// Cancelled when the gateway stops accepting new work.
    pub(crate) shutdown: CancellationToken,
    /// Every connection and session task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Login attempts per source address.
    pub(crate) login_limiter: crate::identity::lockout::RateLimiter,
    /// The support portal's key and request limits.
    pub(crate) support_limits: crate::support::Limits,
    /// Attended support's live events (technicians' queues).
    pub(crate) support_hub: crate::support::hub::Hub,
    /// Endpoint privilege management's live state (request stream).
    pub(crate) epm: crate::epm::Epm,
    /// Wakes the key task (a rotation happened: sweep now).
    pub(crate) key_sweep: Arc<tokio::sync::Notify>,
    /// Wakes `access::expiry` when a grant becomes active.
    pub(crate) access_wake: Arc<tokio::sync::Notify>,
    /// The endpoint list, as last read from the store.
    pub(crate) endpoint_list: crate::agents::listing::EndpointList,
    /// The analytics store's read identity, for reports.
    pub(crate) analytics: crate::analytics::Reports,
    /// Outbound events: this gateway's webhook workers.
    pub(crate) webhooks: Arc<crate::notify::webhooks::Hub>,
}

impl AppState {
    pub(crate) fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Inner {
    /// Stops sessions wherever they run (a single gateway: its own).
    pub(crate) fn session_control(&self) -> &dyn crate::sessions::control::SessionControl {
        &self.sessions
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
