//! Watching a live session without the technician's help: a supervisor
//! (`monitor-sessions` on the session's group), or an observer or
//! participant of the support session it belongs to, gets what the endpoint
//! sends, from a catch-up on — read-only, except that a support
//! participant may drive the owner's desktop while the customer allows
//! `control` (see `http.rs`, `watch`).
//!
//! Each live shell, exec or desktop session has a [`Watch`]: a
//! [`SessionTap`] keeping a catch-up state and fanning each message out on
//! a broadcast.
//!
//! * A terminal's catch-up is the last [`BACKLOG`] bytes of output; a
//!   watcher that falls behind skips ahead (it is told how much it missed).
//! * A desktop's catch-up is the last `DesktopInfo`, `ControlState`,
//!   cursor shapes and pointer position; the screen itself comes with the
//!   next stream start (`StreamStart` and a keyframe), asked of the
//!   endpoint with `DesktopCommand::Refresh` through the session's
//!   [`Injector`] when a watcher joins or falls behind (a lagging watcher
//!   skips to that stream start). Clipboard text is never shown to
//!   watchers.
//!
//! The [`Injector`] is merged into the relay's technician → endpoint
//! direction at message boundaries (`relay.rs`); it sends at most one
//! `Refresh` a second, whoever asks, so watchers cannot make the owner's
//! encoder send keyframes all the time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jumpgate_api_types::support as api;
use jumpgate_proto::desktop::{ControlState, Cursor, CursorShape, DesktopCommand, DesktopInfo};
use jumpgate_proto::session::SessionMsg;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::tap::{SessionTap, TapFuture};
use crate::ids::SessionId;

/// Output kept for a watcher who arrives late.
pub(crate) const BACKLOG: usize = 64 * 1024;

/// Messages a terminal watcher may fall behind by before skipping ahead.
const LAG: usize = 1024;

/// Messages a desktop watcher may fall behind by before skipping to the
/// next keyframe (video packets are large: fewer are kept).
const DESKTOP_LAG: usize = 256;

/// Cursor shapes kept for a desktop watcher who arrives late.
const SHAPES: usize = 16;

/// The least time between two `Refresh` requests the gateway sends on
/// watchers' behalf.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Messages waiting to be injected (participants' input, refreshes).
const INJECT_QUEUE: usize = 256;

/// Whether a `Video` payload starts a stream (`StreamStart` packet of
/// `jumpgate_codec`: the canvas size and the decoder's configuration,
/// followed by a keyframe): where a desktop watcher can start drawing.
pub(crate) fn starts_stream(video: &[u8]) -> bool {
    video.first() == Some(&1)
}

/// What a late watcher is sent first.
#[derive(Debug, Default)]
struct CatchUp {
    /// A terminal's recent output.
    backlog: VecDeque<u8>,
    info: Option<DesktopInfo>,
    control: Option<ControlState>,
    shapes: VecDeque<CursorShape>,
    cursor: Option<Cursor>,
}

/// One live session's messages, for its watchers.
#[derive(Debug)]
pub(crate) struct Watch {
    tx: broadcast::Sender<SessionMsg>,
    catch_up: Mutex<CatchUp>,
    /// Towards the endpoint (desktop sessions only): refreshes and
    /// participants' input.
    inject: Option<mpsc::Sender<SessionMsg>>,
    /// Its receiving side, until the session's relay takes it.
    injector: Mutex<Option<Injector>>,
    /// Its endpoint group (watching is decided on it).
    pub(crate) group: String,
    pub(crate) endpoint: String,
    pub(crate) technician: String,
    /// The support session a sub-session belongs to (its endpoint is
    /// `support:<id>`).
    pub(crate) support: Option<String>,
}

impl Watch {
    /// A terminal session's watch.
    pub(crate) fn new(group: &str, endpoint: &str, technician: &str) -> Arc<Self> {
        Self::build(group, endpoint, technician, false)
    }

    /// A desktop session's watch, with its injector (for the relay: see
    /// [`Self::injector`]).
    pub(crate) fn desktop(group: &str, endpoint: &str, technician: &str) -> Arc<Self> {
        Self::build(group, endpoint, technician, true)
    }

    fn build(group: &str, endpoint: &str, technician: &str, desktop: bool) -> Arc<Self> {
        let (inject, injector) = if desktop {
            let (tx, rx) = mpsc::channel(INJECT_QUEUE);
            (Some(tx), Some(Injector::new(rx)))
        } else {
            (None, None)
        };
        Arc::new(Self {
            tx: broadcast::channel(if desktop { DESKTOP_LAG } else { LAG }).0,
            catch_up: Mutex::new(CatchUp::default()),
            inject,
            injector: Mutex::new(injector),
            group: group.to_owned(),
            endpoint: endpoint.to_owned(),
            technician: technician.to_owned(),
            support: endpoint.strip_prefix("support:").map(str::to_owned),
        })
    }

    pub(crate) fn is_desktop(&self) -> bool {
        self.inject.is_some()
    }

    /// The injector's receiving side, for the session's relay (once).
    pub(crate) fn injector(&self) -> Option<Injector> {
        self.injector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Where a watcher's refresh requests and (when allowed) input go.
    /// Holding it does not keep the watch alive.
    pub(crate) fn inject(&self) -> Option<mpsc::Sender<SessionMsg>> {
        self.inject.clone()
    }

    /// The catch-up (terminal: the recent output as one message; desktop:
    /// what is shown, who has control, the cursor), then every message from
    /// now on.
    pub(crate) fn subscribe(&self) -> (Vec<SessionMsg>, broadcast::Receiver<SessionMsg>) {
        let c = self.catch_up.lock().unwrap_or_else(|e| e.into_inner());
        // Subscribed under the lock: nothing falls between the two.
        let rx = self.tx.subscribe();
        if !self.is_desktop() {
            let (a, b) = c.backlog.as_slices();
            let out = Bytes::from([a, b].concat());
            return (vec![SessionMsg::Stdout(out)], rx);
        }
        let mut msgs = Vec::new();
        msgs.extend(c.info.clone().map(SessionMsg::DesktopInfo));
        msgs.extend(c.control.clone().map(SessionMsg::ControlState));
        msgs.extend(c.shapes.iter().cloned().map(SessionMsg::CursorShape));
        msgs.extend(c.cursor.map(SessionMsg::Cursor));
        (msgs, rx)
    }

    /// Passes `msg` on, keeping what a late watcher needs of it (under the
    /// lock [`Self::subscribe`] takes, so a new watcher gets it once: in
    /// its catch-up or live).
    fn pass(&self, msg: &SessionMsg) {
        let mut c = self.catch_up.lock().unwrap_or_else(|e| e.into_inner());
        match msg {
            SessionMsg::Stdout(bytes) | SessionMsg::Stderr(bytes) => {
                c.backlog.extend(bytes);
                let over = c.backlog.len().saturating_sub(BACKLOG);
                c.backlog.drain(..over);
            }
            SessionMsg::DesktopInfo(i) => c.info = Some(i.clone()),
            SessionMsg::ControlState(s) => c.control = Some(s.clone()),
            SessionMsg::Cursor(p) => c.cursor = Some(*p),
            SessionMsg::CursorShape(s) => {
                c.shapes.retain(|k| k.id != s.id);
                if c.shapes.len() == SHAPES {
                    c.shapes.pop_front();
                }
                c.shapes.push_back(s.clone());
            }
            _ => {}
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
            SessionMsg::Stdout(_) | SessionMsg::Stderr(_) | SessionMsg::Exit(_) => {
                self.0.pass(msg);
            }
            SessionMsg::DesktopInfo(_)
            | SessionMsg::Video(_)
            | SessionMsg::Cursor(_)
            | SessionMsg::CursorShape(_)
            | SessionMsg::ControlState(_)
                if self.0.is_desktop() =>
            {
                self.0.pass(msg);
            }
            _ => {}
        }
        Box::pin(std::future::ready(()))
    }

    fn finish(self: Box<Self>) -> String {
        String::new()
    }
}

/// The messages a desktop session's relay injects towards the endpoint,
/// between the technician's own: participants' input as it comes, and
/// `Refresh` requests at most once per [`REFRESH_EVERY`] (one asked for
/// sooner is sent when the time comes; several asked meanwhile are one).
#[derive(Debug)]
pub(crate) struct Injector {
    rx: mpsc::Receiver<SessionMsg>,
    last_refresh: Option<Instant>,
    /// A refresh asked for too soon after the last one, and when it may go.
    refresh_due: Option<Instant>,
    closed: bool,
}

impl Injector {
    pub(crate) fn new(rx: mpsc::Receiver<SessionMsg>) -> Self {
        Self {
            rx,
            last_refresh: None,
            refresh_due: None,
            closed: false,
        }
    }

    /// The next message to inject. Cancel-safe: a message received is
    /// returned, and a refresh put off stays due.
    pub(crate) async fn next(&mut self) -> SessionMsg {
        loop {
            let due = self.refresh_due;
            tokio::select! {
                got = self.rx.recv(), if !self.closed => match got {
                    Some(SessionMsg::DesktopCommand(DesktopCommand::Refresh)) => {
                        if let Some(m) = self.refresh(Instant::now()) {
                            return m;
                        }
                    }
                    Some(m) => return m,
                    None => self.closed = true,
                },
                () = sleep_until(due) => {
                    self.refresh_due = None;
                    self.last_refresh = Some(Instant::now());
                    return SessionMsg::DesktopCommand(DesktopCommand::Refresh);
                }
            }
        }
    }

    /// A refresh asked for `now`: sent now, or put off.
    fn refresh(&mut self, now: Instant) -> Option<SessionMsg> {
        match self.last_refresh {
            Some(last) if now < last + REFRESH_EVERY => {
                self.refresh_due.get_or_insert(last + REFRESH_EVERY);
                None
            }
            _ => {
                self.last_refresh = Some(now);
                self.refresh_due = None;
                Some(SessionMsg::DesktopCommand(DesktopCommand::Refresh))
            }
        }
    }
}

/// Sleeps until `at`; forever without it.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

    /// The live desktop sub-sessions of support session `support`, oldest
    /// id first.
    pub(crate) fn support_screens(&self, support: &str) -> Vec<api::SupportScreen> {
        let mut screens: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, w)| w.is_desktop() && w.support.as_deref() == Some(support))
            .map(|(id, w)| api::SupportScreen {
                session: id.0.clone(),
                technician: w.technician.clone(),
            })
            .collect();
        screens.sort_by(|a, b| a.session.cmp(&b.session));
        screens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_proto::desktop::{InputState, Pointer, Video};

    fn refresh() -> SessionMsg {
        SessionMsg::DesktopCommand(DesktopCommand::Refresh)
    }

    /// The rule, on a clock of its own: the first refresh goes at once,
    /// one asked within a second of the last is put off to the second's
    /// end (several are one), one asked later goes at once.
    #[test]
    fn a_refresh_goes_at_once_or_at_the_end_of_the_second_and_several_are_one() {
        let (_tx, rx) = mpsc::channel(1);
        let mut inj = Injector::new(rx);
        let t0 = Instant::now();
        assert_eq!(inj.refresh(t0), Some(refresh()));
        let soon = t0 + REFRESH_EVERY / 4;
        assert_eq!(inj.refresh(soon), None);
        assert_eq!(inj.refresh(soon + REFRESH_EVERY / 4), None);
        assert_eq!(inj.refresh_due, Some(t0 + REFRESH_EVERY), "one, due then");
        let later = t0 + REFRESH_EVERY * 3;
        assert_eq!(inj.refresh(later), Some(refresh()));
        assert_eq!((inj.refresh_due, inj.last_refresh), (None, Some(later)));
    }

    /// Through the channel: refreshes asked by many watchers at once are
    /// one at once and one put off (never lost), input is not held back
    /// behind a put-off refresh, and nothing else comes after.
    #[tokio::test]
    async fn refreshes_asked_at_once_are_one_now_and_one_later_with_input_unhindered() {
        let w = Watch::desktop("default", "desk", "tina");
        let mut inj = w.injector().expect("a desktop watch has an injector");
        assert!(w.injector().is_none(), "taken once");
        let tx = w.inject().unwrap();
        for _ in 0..4 {
            tx.send(refresh()).await.unwrap();
        }
        let p = SessionMsg::Pointer(Pointer {
            x: 1,
            y: 2,
            buttons: 0,
        });
        tx.send(p.clone()).await.unwrap();
        async fn next(inj: &mut Injector) -> SessionMsg {
            let patience = REFRESH_EVERY * 30;
            tokio::time::timeout(patience, inj.next())
                .await
                .expect("a message")
        }
        assert_eq!(next(&mut inj).await, refresh());
        assert_eq!(next(&mut inj).await, p, "input is not held back");
        assert_eq!(next(&mut inj).await, refresh(), "the put-off refresh");
        // The four were two: what comes next is the next input.
        tx.send(p.clone()).await.unwrap();
        assert_eq!(next(&mut inj).await, p);
        assert!(inj.refresh_due.is_none());
    }

    #[tokio::test]
    async fn a_desktop_watcher_catches_up_with_what_is_shown_and_never_with_the_clipboard() {
        let w = Watch::desktop("default", "support:sup_1", "tina");
        assert_eq!(w.support.as_deref(), Some("sup_1"));
        let tap = WatchTap(Arc::clone(&w));
        let info = DesktopInfo {
            width: 640,
            height: 480,
            monitors: Vec::new(),
            monitor: None,
            codec: "jumpgate-2".into(),
        };
        let shape = |id| CursorShape {
            id,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            rgba: Bytes::from_static(&[0, 0, 0, 255]),
        };
        let msgs = [
            SessionMsg::DesktopInfo(info.clone()),
            SessionMsg::ControlState(ControlState::new(InputState::Allowed, "")),
            SessionMsg::CursorShape(shape(1)),
            SessionMsg::CursorShape(shape(2)),
            SessionMsg::CursorShape(shape(1)),
            SessionMsg::Cursor(Cursor {
                x: 5,
                y: 6,
                shape: 1,
            }),
            SessionMsg::Video(Video {
                seq: 1,
                data: Bytes::from_static(&[2, 0]),
            }),
            SessionMsg::Clipboard("secret".into()),
        ];
        let (_, mut early) = w.subscribe();
        for m in &msgs {
            tap.on_down(m).await;
        }
        let (catch_up, _) = w.subscribe();
        assert_eq!(
            catch_up,
            [
                SessionMsg::DesktopInfo(info),
                SessionMsg::ControlState(ControlState::new(InputState::Allowed, "")),
                SessionMsg::CursorShape(shape(2)),
                SessionMsg::CursorShape(shape(1)),
                SessionMsg::Cursor(Cursor {
                    x: 5,
                    y: 6,
                    shape: 1
                }),
            ]
        );
        let mut live = Vec::new();
        while let Ok(m) = early.try_recv() {
            live.push(m);
        }
        assert_eq!(live, msgs[..7], "everything but the clipboard, in order");
    }

    #[test]
    fn a_stream_start_is_where_a_watcher_can_begin() {
        assert!(starts_stream(&[1, 0x80, 2]));
        assert!(!starts_stream(&[2, 1]));
        assert!(!starts_stream(&[]));
    }
}
