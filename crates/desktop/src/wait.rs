//! Waiting for X events with a deadline (x11rb's blocking calls have none).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::Result;

/// The next event, or `None` when none arrives before `deadline`.
pub(crate) fn event_until(conn: &RustConnection, deadline: Instant) -> Result<Option<Event>> {
    loop {
        if let Some(e) = conn.poll_for_event()? {
            return Ok(Some(e));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        readable(&[conn.stream().as_fd()], deadline - now)?;
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; which ones
/// were readable (an interrupted wait reports none).
pub(crate) fn readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    // Whole milliseconds, rounded up so a short wait does not spin.
    let ms = timeout.as_millis().min(60_000) as i64
        + i64::from(!timeout.subsec_nanos().is_multiple_of(1_000_000));
    let ts = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    match rustix::event::poll(&mut polls, Some(&ts)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(vec![false; fds.len()]),
        Err(e) => return Err(std::io::Error::from(e).into()),
    }
    Ok(polls.iter().map(|p| !p.revents().is_empty()).collect())
}
