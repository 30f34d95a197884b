//! The local terminal: tty detection, window size, raw mode and no-echo
//! password entry, each mode change undone by a guard.

use std::io::{self, BufRead, Write};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use anyhow::{Context, bail};
use rustix::termios::{self, LocalModes, OptionalActions, Termios};

use crate::errors::Interrupted;

/// Size reported when stdout is not a terminal.
pub(crate) const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// The settings to put back if we panic while the terminal is modified: a
/// panic message printed in raw mode is unreadable, and the hook runs before
/// unwinding reaches the guard.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

pub(crate) fn stdin_is_tty() -> bool {
    termios::isatty(rustix::stdio::stdin())
}

pub(crate) fn stderr_is_tty() -> bool {
    termios::isatty(rustix::stdio::stderr())
}

/// `(cols, rows)` of the terminal on stdout, or [`DEFAULT_SIZE`].
pub(crate) fn window_size() -> (u16, u16) {
    match termios::tcgetwinsize(rustix::stdio::stdout()) {
        Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => (ws.ws_col, ws.ws_row),
        _ => DEFAULT_SIZE,
    }
}

/// Installs the panic hook that restores the terminal; call once, early.
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_saved();
        previous(info);
    }));
}

fn restore_saved() {
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(t) = saved {
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &t);
    }
}

/// Terminal settings changed on stdin; dropping it puts the old ones back.
#[derive(Debug)]
pub(crate) struct TermGuard {
    fd: BorrowedFd<'static>,
}

impl TermGuard {
    fn apply(change: impl FnOnce(&mut Termios)) -> io::Result<Self> {
        let fd = rustix::stdio::stdin();
        let original = termios::tcgetattr(fd)?;
        let mut t = original.clone();
        change(&mut t);
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(original);
        if let Err(e) = termios::tcsetattr(fd, OptionalActions::Now, &t) {
            restore_saved();
            return Err(e.into());
        }
        Ok(Self { fd })
    }

    /// Raw mode: every key (Ctrl-C included) goes to the remote PTY as is.
    pub(crate) fn raw() -> io::Result<Self> {
        Self::apply(Termios::make_raw)
    }

    /// Canonical input without echo, for a password.
    fn no_echo() -> io::Result<Self> {
        Self::apply(|t| {
            t.local_modes.remove(LocalModes::ECHO);
            t.local_modes.insert(LocalModes::ECHONL);
        })
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = saved {
            let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &t);
        }
    }
}

/// Prompts on stderr and reads a line from the terminal on stdin without
/// echoing it. Ctrl-C restores the terminal before giving up.
pub(crate) async fn read_password(prompt: &str) -> anyhow::Result<String> {
    if !stdin_is_tty() {
        bail!(
            "no password given and stdin is not a terminal: use --password-file FILE (or - for stdin)"
        );
    }
    let guard = TermGuard::no_echo().context("disabling terminal echo")?;
    read_stdin_line(prompt, Some(guard))
        .await?
        .context("no password given (end of input)")
}

/// Reads one line from stdin, echoed: prompts on stderr first when stdin is
/// a terminal, reads silently from a pipe. `None` at end of input.
pub(crate) async fn read_line(prompt: &str) -> anyhow::Result<Option<String>> {
    let prompt = if stdin_is_tty() { prompt } else { "" };
    read_stdin_line(prompt, None).await
}

/// Prompts, reads a line, and drops `guard` (restoring the terminal) when
/// done or on Ctrl-C.
async fn read_stdin_line(prompt: &str, guard: Option<TermGuard>) -> anyhow::Result<Option<String>> {
    let mut err = io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    // A blocking read that cannot be cancelled: the thread is left behind on
    // Ctrl-C, and the process exits soon after.
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line).map(|n| (n, line))
    });
    let (n, line) = tokio::select! {
        r = read => r.context("terminal reader failed")?.context("reading stdin")?,
        _ = tokio::signal::ctrl_c() => {
            drop(guard);
            eprintln!();
            return Err(Interrupted.into());
        }
    };
    drop(guard);
    Ok((n > 0).then(|| trim_newline(line)))
}

/// Strips one trailing line ending (`\n` or `\r\n`), nothing else: spaces may
/// be part of a password.
pub(crate) fn trim_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_line_ending_is_trimmed() {
        assert_eq!(trim_newline("pw\n".into()), "pw");
        assert_eq!(trim_newline("pw\r\n".into()), "pw");
        assert_eq!(trim_newline(" pw \n\n".into()), " pw \n");
        assert_eq!(trim_newline("pw".into()), "pw");
    }
}
