//! What shell and exec sessions share about child processes.

use std::os::unix::process::ExitStatusExt;

use jumpgate_proto::session::{ExitStatus, SignalKind};
use rustix::process::{Pid, Signal};
use tracing::debug;

/// The process group of a session's child, killed when this is dropped
/// unless the child was seen to exit: a session that ends abnormally, or
/// whose future is dropped, must leave nothing running.
#[derive(Debug)]
pub(super) struct ProcessGroup {
    /// `None` once the leader was reaped: its id may then be reused.
    pgid: Option<Pid>,
}

impl ProcessGroup {
    /// The group led by `pid` (the child was started as a group or session
    /// leader, so its pid is the group id).
    pub(super) fn led_by(pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        Self { pgid }
    }

    /// Sends `sig` to every process of the group, if the leader is still
    /// there. A group already gone is not an error.
    pub(super) fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid
            && let Err(e) = rustix::process::kill_process_group(pgid, sig)
        {
            debug!(
                pgid = pgid.as_raw_nonzero().get(),
                ?sig,
                "signal not delivered: {e}"
            );
        }
    }

    /// The leader was reaped: from now on its id belongs to nobody.
    pub(super) fn reaped(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}

pub(super) fn signal_of(kind: SignalKind) -> Signal {
    match kind {
        SignalKind::Interrupt => Signal::INT,
        SignalKind::Terminate => Signal::TERM,
        SignalKind::Kill => Signal::KILL,
    }
}

pub(super) fn exit_status(s: std::process::ExitStatus) -> ExitStatus {
    ExitStatus {
        code: s.code(),
        signal: s.signal(),
    }
}

/// The directory commands start in: the user's home, as with SSH.
pub(super) fn home_dir() -> Option<std::path::PathBuf> {
    let home = std::path::PathBuf::from(std::env::var_os("HOME")?);
    (home.is_absolute() && home.is_dir()).then_some(home)
}
