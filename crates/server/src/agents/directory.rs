//! Where each agent's live connection is: the one question the rest of the
//! gateway asks before it reaches an agent ([`AgentDirectory::locate`]).
//!
//! Today one gateway holds every connection, so the in-process
//! [`Registry`] is the directory. With several gateways, a directory that
//! also knows the other gateways' agents answers [`Location::Remote`] with
//! the [`GatewayId`] holding the agent, and callers forward instead of
//! failing: a new implementation, not a rewrite of the callers.

use std::sync::Arc;

use jumpgate_net::mux::MuxHandle;

use super::Registry;
use crate::ids::{AgentId, GatewayId};

/// Where an agent's live connection is.
#[derive(Clone, Debug)]
pub(crate) enum Location {
    /// Connected to this gateway.
    Local(MuxHandle),
    /// Connected to another gateway of the site. The single-node
    /// directory never answers it; callers handle it already.
    #[allow(dead_code)]
    Remote(GatewayId),
    /// Not connected anywhere.
    Offline,
}

impl Location {
    /// Connected somewhere (here or to another gateway).
    pub(crate) fn is_online(&self) -> bool {
        !matches!(self, Self::Offline)
    }

    /// The connection, when it is this gateway's.
    pub(crate) fn local(self) -> Option<MuxHandle> {
        match self {
            Self::Local(h) => Some(h),
            Self::Remote(_) | Self::Offline => None,
        }
    }
}

/// Which gateway holds which agent (see the module documentation).
pub(crate) trait AgentDirectory: Send + Sync + std::fmt::Debug {
    /// Where the agent's live connection is.
    fn locate(&self, id: &AgentId) -> Location;

    /// This gateway's own connections: the handshake registers them there,
    /// shutdown closes them.
    fn local(&self) -> &Registry;

    /// Closes the agent's live connection, wherever it is; `true` if it had
    /// one.
    fn disconnect(&self, id: &AgentId, code: u32, reason: &str) -> bool;

    /// Cuts a revoked endpoint's live connection; `true` if it had one.
    fn cut_revoked(&self, id: &AgentId) -> bool {
        self.disconnect(
            id,
            jumpgate_proto::control::go_away_code::REVOKED,
            "this endpoint was revoked by an administrator",
        )
    }
}

/// The single-node directory: every agent this gateway knows of is its own.
impl AgentDirectory for Registry {
    fn locate(&self, id: &AgentId) -> Location {
        self.get(id).map_or(Location::Offline, Location::Local)
    }

    fn local(&self) -> &Registry {
        self
    }

    fn disconnect(&self, id: &AgentId, code: u32, reason: &str) -> bool {
        Registry::disconnect(self, id, code, reason)
    }
}

/// The directory of a gateway running alone.
pub(crate) fn single_node() -> Arc<dyn AgentDirectory> {
    Arc::new(Registry::default())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
    use jumpgate_proto::mux::Role;

    use super::*;

    /// A live connection over an in-memory pipe: the gateway's handle, and
    /// the agent's events (to see what the gateway did to it).
    fn connection() -> (MuxHandle, mux::MuxEvents) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (gw, _gev, gd) = mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
        let (_agent, aev, ad) = mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
        tokio::spawn(gd);
        tokio::spawn(ad);
        (gw, aev)
    }

    #[tokio::test]
    async fn the_single_node_directory_locates_its_own_connections() {
        let dir = single_node();
        let ep = AgentId("ep_a".into());
        let peer = "127.0.0.1:1".parse().unwrap();
        assert!(matches!(dir.locate(&ep), Location::Offline));
        assert!(!dir.locate(&ep).is_online());

        let (first, _ev1) = connection();
        let conn1 = dir.local().insert(ep.clone(), first, peer);
        let found = dir.locate(&ep);
        assert!(found.is_online());
        // The located handle reaches the agent: a stream opens on it.
        let handle = found.local().expect("a local connection");
        assert!(handle.open().is_ok());

        // A newer connection replaces the first; forgetting the first one
        // later leaves the newer in place.
        let (second, mut ev2) = connection();
        let conn2 = dir.local().insert(ep.clone(), second, peer);
        assert_ne!(conn1, conn2);
        dir.local().remove(&ep, conn1);
        assert!(dir.locate(&ep).is_online());

        // Revocation through the directory cuts the connection with REVOKED.
        assert!(dir.cut_revoked(&ep));
        assert!(matches!(dir.locate(&ep), Location::Offline));
        assert!(!dir.cut_revoked(&ep), "nothing left to cut");
        let goaway = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ev2.recv().await {
                    Some(MuxEvent::GoAway { code, .. }) => return Some(code),
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(goaway, Some(jumpgate_proto::control::go_away_code::REVOKED));
        assert!(Location::Remote(GatewayId("gw_b".into())).local().is_none());
        assert!(Location::Remote(GatewayId("gw_b".into())).is_online());
    }
}
