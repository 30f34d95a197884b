//! The grants broker: which rights the customer has given, as every
//! session handler of the customer client sees them.
//!
//! A right only turns on through [`AssistGrants::grant`], which the control
//! loop calls when the customer answered a technician's ask with **Allow**;
//! the window's switches only turn rights off ([`AssistGrants::revoke`]).
//! Session handlers hold a [`watch::Receiver`] of the [`GrantState`] and
//! stop what a revoked right allowed at once (see `sessions::serve` and the
//! desktop session).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jumpgate_proto::assist::{Right, Rights};
use tokio::sync::watch;

/// What the session handlers go by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantState {
    /// The rights granted now.
    pub rights: Rights,
    /// An ask is waiting for the customer's answer: technician input is
    /// suspended meanwhile (the customer is busy with the window).
    pub asking: bool,
}

impl GrantState {
    /// Whether technician input may be applied.
    pub fn input_allowed(self) -> bool {
        self.rights.contains(Right::Control) && !self.asking
    }
}

/// Where the assist window is on the screen (root coordinates) and
/// whether it has the keyboard focus: technician input never reaches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowGuard {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub focused: bool,
}

impl WindowGuard {
    /// Whether the root point (x, y) is on the window (with a margin for
    /// its frame).
    pub fn covers(&self, x: i32, y: i32) -> bool {
        const FRAME: i32 = 32;
        self.w > 0
            && x >= self.x - FRAME
            && y >= self.y - FRAME
            && x < self.x + self.w + FRAME
            && y < self.y + self.h + FRAME
    }
}

/// The customer's grants, shared by the control loop and every session
/// handler of one client run. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AssistGrants {
    state: Arc<watch::Sender<GrantState>>,
    window: Arc<Mutex<WindowGuard>>,
    home: Option<PathBuf>,
}

impl Default for AssistGrants {
    fn default() -> Self {
        Self::new(crate::assist::home_dir())
    }
}

impl AssistGrants {
    /// No rights; file transfers are confined to `home` (none: refused).
    pub fn new(home: Option<PathBuf>) -> Self {
        Self {
            state: Arc::new(watch::Sender::new(GrantState::default())),
            window: Arc::default(),
            home,
        }
    }

    pub fn state(&self) -> GrantState {
        *self.state.borrow()
    }

    pub fn rights(&self) -> Rights {
        self.state().rights
    }

    pub fn allows(&self, right: Right) -> bool {
        self.rights().contains(right)
    }

    /// Follows every change.
    pub fn subscribe(&self) -> watch::Receiver<GrantState> {
        self.state.subscribe()
    }

    /// The customer allowed `right` (answering an ask). Returns the rights
    /// now granted.
    pub fn grant(&self, right: Right) -> Rights {
        self.modify(|s| s.rights = s.rights.with(right))
    }

    /// The customer turned `right` off. Returns the rights now granted.
    pub fn revoke(&self, right: Right) -> Rights {
        self.modify(|s| s.rights = s.rights.without(right))
    }

    /// Everything off (the session went to someone else, or ended).
    pub fn reset(&self) -> Rights {
        self.modify(|s| s.rights = Rights::NONE)
    }

    /// Whether an ask is waiting for the customer.
    pub fn set_asking(&self, asking: bool) {
        self.modify(|s| s.asking = asking);
    }

    fn modify(&self, f: impl FnOnce(&mut GrantState)) -> Rights {
        self.state.send_if_modified(|s| {
            let before = *s;
            f(s);
            *s != before
        });
        self.rights()
    }

    /// The window's place, as the UI child reported it.
    pub fn set_window(&self, guard: WindowGuard) {
        if let Ok(mut w) = self.window.lock() {
            *w = guard;
        }
    }

    pub fn window(&self) -> WindowGuard {
        self.window.lock().map(|w| *w).unwrap_or_default()
    }

    /// The directory file transfers are confined to.
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_turn_on_by_grant_and_off_by_revoke_and_watchers_see_each_change() {
        let g = AssistGrants::new(None);
        let mut rx = g.subscribe();
        assert!(g.rights().is_empty());
        assert!(!g.state().input_allowed());
        g.grant(Right::Control);
        assert!(rx.has_changed().unwrap());
        let s = *rx.borrow_and_update();
        assert!(s.rights.contains(Right::View), "control brings view");
        assert!(s.input_allowed());
        g.set_asking(true);
        assert!(!g.state().input_allowed(), "input waits while asking");
        g.set_asking(false);
        g.grant(Right::Shell);
        let r = g.revoke(Right::View);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![Right::Shell]);
        // A revoke of something not granted changes nothing.
        rx.borrow_and_update();
        g.revoke(Right::Files);
        assert!(!rx.has_changed().unwrap());
        g.reset();
        assert!(g.rights().is_empty());
    }

    #[test]
    fn the_window_guard_covers_its_frame() {
        let w = WindowGuard {
            x: 100,
            y: 100,
            w: 400,
            h: 600,
            focused: false,
        };
        assert!(w.covers(100, 100) && w.covers(499, 699) && w.covers(90, 80));
        assert!(!w.covers(10, 10) && !w.covers(600, 100));
        assert!(
            !WindowGuard::default().covers(0, 0),
            "no window: nothing covered"
        );
    }
}
