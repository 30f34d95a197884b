//! Watching a live terminal session (shell or exec) without the
//! technician's help: a supervisor (`monitor-sessions` on the session's
//! group) gets what the endpoint sends, from a catch-up of the recent
//! output on, read-only — nothing they send reaches the session.
//!
//! Each live terminal session has a [`Watch`]: a [`SessionTap`] keeping
//! the last [`BACKLOG`] bytes of output and fanning each output message out
//! on a broadcast. Watchers that fall behind skip ahead (they are told how
//! much they missed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jumpgate_proto::session::SessionMsg;
use tokio::sync::broadcast;

use super::tap::{SessionTap, TapFuture};
use crate::ids::SessionId;

/// Output kept for a watcher who arrives late.
pub(crate) const BACKLOG: usize = 64 * 1024;

/// Messages a watcher may fall behind by before skipping ahead.
const LAG: usize = 1024;

/// One live terminal session's output, for its watchers.
#[derive(Debug)]
pub(crate) struct Watch {
    tx: broadcast::Sender<SessionMsg>,
    backlog: Mutex<VecDeque<u8>>,
    /// Its endpoint group (watching is decided on it).
    pub(crate) group: String,
    pub(crate) endpoint: String,
    pub(crate) technician: String,
}

impl Watch {
    pub(crate) fn new(group: &str, endpoint: &str, technician: &str) -> Arc<Self> {
        Arc::new(Self {
            tx: broadcast::channel(LAG).0,
            backlog: Mutex::new(VecDeque::with_capacity(4096)),
            group: group.to_owned(),
            endpoint: endpoint.to_owned(),
            technician: technician.to_owned(),
        })
    }

    /// The recent output (one message), then every message from now on.
    pub(crate) fn subscribe(&self) -> (Bytes, broadcast::Receiver<SessionMsg>) {
        let backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        // Subscribed under the lock: nothing falls between the two.
        let rx = self.tx.subscribe();
        let (a, b) = backlog.as_slices();
        (Bytes::from([a, b].concat()), rx)
    }

    /// Passes `msg` on, keeping `output` (under the lock [`Self::subscribe`]
    /// takes, so a new watcher gets it once: in its catch-up or live).
    fn pass(&self, msg: &SessionMsg, output: Option<&[u8]>) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bytes) = output {
            backlog.extend(bytes);
            let over = backlog.len().saturating_sub(BACKLOG);
            backlog.drain(..over);
        }
        let _ = self.tx.send(msg.clone());
    }
}

/// The tap feeding a [`Watch`].
#[derive(Debug)]
pub(crate) struct WatchTap(pub(crate) Arc<Watch>);

impl SessionTap for WatchTap {
    fn on_up<'a>(&'a self, _msg: &'a SessionMsg) -> TapFuture<'a> {
        Box::pin(std::future::ready(()))
    }

    fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> TapFuture<'a> {
        match msg {
            SessionMsg::Stdout(b) | SessionMsg::Stderr(b) => self.0.pass(msg, Some(b)),
            SessionMsg::Exit(_) => self.0.pass(msg, None),
            _ => {}
        }
        Box::pin(std::future::ready(()))
    }

    fn finish(self: Box<Self>) -> String {
        String::new()
    }
}

/// The watchable sessions of this gateway.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watches(Arc<Mutex<HashMap<SessionId, Arc<Watch>>>>);

impl Watches {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Watch>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, id: SessionId, w: Arc<Watch>) {
        self.lock().insert(id, w);
    }

    /// Forgets a session's watch: its watchers' streams end.
    pub(crate) fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Watch>> {
        self.lock().get(&SessionId(id.to_owned())).cloned()
    }
}
