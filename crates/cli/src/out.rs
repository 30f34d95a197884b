//! Everything `jg` writes to stdout goes through here (`out!`, `outln!`,
//! [`bytes`]; `print!` and `println!` are denied in this crate), so a
//! closed stdout — `jg audit | head` — ends the command quietly, like other
//! Unix tools, instead of a panic with a backtrace.
//!
//! A closed stdout becomes the [`StdoutClosed`] error, which `main` turns
//! into a silent exit with status 141 (128 + SIGPIPE, what a shell reports
//! for a tool killed by the signal). Other errors, a broken connection to
//! the gateway included, are reported as before.

use std::fmt;
use std::io::{self, Write};

/// The reader of stdout went away (`EPIPE`).
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Exit status after stdout was closed.
pub(crate) const EXIT_STDOUT_CLOSED: i32 = 141;

/// The error for a failed write to stdout.
pub(crate) fn error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// Writes `data` to stdout and flushes it.
///
/// # Errors
/// [`StdoutClosed`] when nobody reads stdout any more; other write errors.
pub(crate) fn bytes(data: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data).map_err(error)?;
    out.flush().map_err(error)
}

/// Writes `text` to stdout (see [`bytes`]).
///
/// # Errors
/// As [`bytes`].
pub(crate) fn text(text: &str) -> anyhow::Result<()> {
    bytes(text.as_bytes())
}

/// `print!` that returns an error instead of panicking (see the module).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::text(&format!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking (see the module).
macro_rules! outln {
    () => {
        $crate::out::text("\n")
    };
    ($($arg:tt)*) => {
        $crate::out::text(&format!("{}\n", format_args!($($arg)*)))
    };
}
