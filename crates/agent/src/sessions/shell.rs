//! `shell` sessions: the user's login shell in a PTY.
//!
//! portable-pty's API is blocking, so reading the PTY, writing to it and
//! waiting for the shell each get a thread of their own, bridged to the
//! session loop by bounded channels. Ctrl-C needs no special handling: it
//! arrives as byte 0x03 and the PTY's line discipline turns it into SIGINT
//! for the foreground job.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use jumpgate_proto::session::{
    Accepted, CHUNK, ExitStatus, RefusalCode, SessionKind, SessionMsg, SignalKind,
};
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::process::{self, ProcessGroup};
use super::wire::{self, MsgStream};
use super::{SessionContext, SessionError, SessionSummary};

/// Output chunks waiting for the stream: bounds what a fast producer
/// (`yes`) can pile up while the technician's side is slow.
const OUTPUT_QUEUE: usize = 16;
/// Input chunks waiting for the PTY.
const INPUT_QUEUE: usize = 16;
/// Queued output is sent in writes of up to this size.
const COALESCE: usize = 64 * 1024;
/// How long a hung-up shell gets to exit before it is killed.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// TERM when the technician's client did not say.
const DEFAULT_TERM: &str = "xterm-256color";

type WaitResult = io::Result<std::process::ExitStatus>;

/// A running shell and the ends of its bridging threads.
struct Shell {
    master: Box<dyn MasterPty + Send>,
    group: ProcessGroup,
    output: mpsc::Receiver<Bytes>,
    input: mpsc::Sender<Bytes>,
    exit: oneshot::Receiver<WaitResult>,
}

pub(super) async fn run<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    term: &str,
    cols: u16,
    rows: u16,
    command: Option<String>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let term = if term.is_empty() { DEFAULT_TERM } else { term };
    if term.len() > 64 || !term.bytes().all(|b| b.is_ascii_graphic()) {
        let code = RefusalCode::InvalidRequest;
        return Err(super::refuse(&mut rx, &mut tx, ctx, code, "invalid terminal type").await);
    }
    let term = term.to_owned();
    let program = ctx.shell.clone();
    // Forking and opening the PTY block.
    let started = tokio::task::spawn_blocking(move || {
        start(&term, cols, rows, program.as_deref(), command.as_deref())
    })
    .await;
    let shell = match started {
        Ok(Ok(shell)) => shell,
        Ok(Err(message)) => {
            let code = RefusalCode::Failed;
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
        Err(e) => {
            let (code, message) = (RefusalCode::Failed, format!("cannot start the shell: {e}"));
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    let Shell {
        master,
        mut group,
        mut output,
        input,
        mut exit,
    } = shell;
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;

    let mut summary = SessionSummary::new(SessionKind::Shell);
    let mut input = Some(input);
    let mut pending: Option<Bytes> = None;
    let mut output_open = true;
    let mut status = None;
    let mut drain_until = Instant::now();

    loop {
        if status.is_some() && !output_open {
            break;
        }
        tokio::select! {
            chunk = output.recv(), if output_open => {
                let Some(data) = chunk else {
                    output_open = false;
                    continue;
                };
                summary.bytes_out += data.len() as u64;
                tx.queue(&SessionMsg::Stdout(data));
                while tx.queued() < COALESCE {
                    let Ok(data) = output.try_recv() else { break };
                    summary.bytes_out += data.len() as u64;
                    tx.queue(&SessionMsg::Stdout(data));
                }
                if let Err(e) = tx.flush().await {
                    drop(input.take());
                    hang_up(&mut group, &mut exit, status).await;
                    return Err(e.into());
                }
            },
            result = &mut exit, if status.is_none() => {
                let result = result.unwrap_or_else(|_| Err(io::Error::other("wait thread gone")));
                let s = result.map_err(SessionError::local("waiting for the shell"))?;
                group.reaped();
                debug!(status = ?s, "shell exited");
                status = Some(process::exit_status(s));
                drain_until = Instant::now() + ctx.output_drain;
            },
            // A background job still holds the terminal: do not let it hold
            // the session too.
            () = tokio::time::sleep_until(drain_until), if status.is_some() => break,
            permit = reserve(input.clone()), if pending.is_some() => match (permit, pending.take()) {
                (Some(permit), Some(data)) => drop(permit.send(data)),
                _ => input = None,
            },
            msg = rx.read_msg(), if pending.is_none() => match msg {
                Ok(Some(SessionMsg::Stdin(data))) => {
                    summary.bytes_in += data.len() as u64;
                    if input.is_some() && !data.is_empty() {
                        pending = Some(data);
                    }
                }
                Ok(Some(SessionMsg::Resize { cols, rows })) => {
                    if let Err(e) = master.resize(pty_size(cols, rows)) {
                        warn!("cannot resize the terminal: {e:#}");
                    }
                }
                // The input thread closing the PTY writer sends the terminal's
                // EOF character, as Ctrl-D would.
                Ok(Some(SessionMsg::StdinEof)) => input = None,
                Ok(Some(SessionMsg::Signal(SignalKind::Interrupt))) => {
                    if input.is_some() {
                        pending = Some(Bytes::from_static(b"\x03"));
                    }
                }
                Ok(Some(SessionMsg::Signal(kind))) => group.signal(process::signal_of(kind)),
                Ok(Some(SessionMsg::Closed { reason })) => {
                    drop(input.take());
                    hang_up(&mut group, &mut exit, status).await;
                    return Err(super::closed_by_gateway(reason));
                }
                Ok(Some(other)) => {
                    drop(input.take());
                    hang_up(&mut group, &mut exit, status).await;
                    return Err(SessionError::Unexpected {
                        got: other.name(),
                        during: "during a shell",
                    });
                }
                // The technician left: hang up, as closing a terminal would.
                Ok(None) => {
                    drop(input.take());
                    let status = hang_up(&mut group, &mut exit, status).await;
                    // Its side may still be readable (a half-close).
                    if tx.write_msg(&SessionMsg::Exit(status)).await.is_ok() {
                        wire::finish(&mut rx, &mut tx, ctx.linger).await;
                    }
                    return Ok(summary);
                }
                Err(e) => {
                    drop(input.take());
                    hang_up(&mut group, &mut exit, status).await;
                    return Err(e.into());
                }
            },
        }
    }
    drop(master);
    let status = status.unwrap_or_default();
    tx.write_msg(&SessionMsg::Exit(status)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    Ok(summary)
}

/// Opens the PTY, starts the shell in it and the threads around it.
fn start(
    term: &str,
    cols: u16,
    rows: u16,
    program: Option<&Path>,
    command: Option<&str>,
) -> Result<Shell, String> {
    let pair = native_pty_system()
        .openpty(pty_size(cols, rows))
        .map_err(|e| format!("cannot open a pseudo-terminal: {e:#}"))?;
    let mut cmd = match (command, program) {
        // `ssh -t host CMD`: the command line, by `sh`, in the PTY.
        (Some(line), _) => {
            let mut c = CommandBuilder::new("sh");
            c.args(["-c", line]);
            c
        }
        (None, Some(p)) => CommandBuilder::new(p),
        (None, None) => CommandBuilder::new_default_prog(),
    };
    cmd.env("TERM", term);
    let child = pair
        .slave
        .spawn_command(cmd)
        .map_err(|e| format!("cannot start the shell: {e:#}"))?;
    // Reading the master reports the end only once every holder of the
    // slave has closed it, this process included.
    drop(pair.slave);
    // portable-pty made the shell a session leader: its pid is its group's.
    let group = ProcessGroup::led_by(child.process_id());
    let child: Box<dyn Child> = child;
    // The std child gives the exit signal as a number, which the protocol
    // needs; portable-pty's own status only names it.
    let mut child = child
        .downcast::<std::process::Child>()
        .map_err(|_| "unexpected kind of child process".to_owned())?;
    let reader = pair
        .master
        .try_clone_reader()
        .map_err(|e| format!("cannot read the pseudo-terminal: {e:#}"))?;
    let writer = pair
        .master
        .take_writer()
        .map_err(|e| format!("cannot write to the pseudo-terminal: {e:#}"))?;
    let (exit_tx, exit) = oneshot::channel();
    thread("jg-shell-wait", move || {
        let _ = exit_tx.send(child.wait());
    })?;
    let (output_tx, output) = mpsc::channel(OUTPUT_QUEUE);
    thread("jg-pty-out", move || pump_output(reader, &output_tx))?;
    let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
    thread("jg-pty-in", move || pump_input(writer, input_rx))?;
    Ok(Shell {
        master: pair.master,
        group,
        output,
        input,
        exit,
    })
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("cannot start a thread: {e}"))
}

fn pty_size(cols: u16, rows: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// Moves PTY output to the session until the PTY reports its end (every
/// process holding the terminal is gone) or the session stops listening.
fn pump_output(mut reader: Box<dyn Read + Send>, tx: &mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("reading the pseudo-terminal: {e}");
                return;
            }
        };
        if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
            return;
        }
    }
}

/// Moves technician input to the PTY until the session closes the queue.
fn pump_input(mut writer: Box<dyn Write + Send>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(data) = rx.blocking_recv() {
        if let Err(e) = writer.write_all(&data).and_then(|()| writer.flush()) {
            debug!("writing to the pseudo-terminal: {e}");
            return;
        }
    }
}

/// Waits for room in the input queue; `None` once the input thread stopped.
async fn reserve(tx: Option<mpsc::Sender<Bytes>>) -> Option<mpsc::OwnedPermit<Bytes>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// Ends a shell whose technician is gone: SIGHUP to its group, as a
/// terminal hangup would, then SIGKILL if it is still there after a grace
/// period. Returns how it ended; `status` is that of a shell already gone.
async fn hang_up(
    group: &mut ProcessGroup,
    exit: &mut oneshot::Receiver<WaitResult>,
    status: Option<ExitStatus>,
) -> ExitStatus {
    if let Some(s) = status {
        return s;
    }
    debug!("hanging up the shell");
    group.signal(Signal::HUP);
    // A stopped job acts on SIGHUP only once continued.
    group.signal(Signal::CONT);
    let mut result = tokio::time::timeout(KILL_GRACE, &mut *exit).await;
    if result.is_err() {
        group.signal(Signal::KILL);
        result = tokio::time::timeout(KILL_GRACE, &mut *exit).await;
    }
    match result {
        Ok(Ok(Ok(s))) => {
            group.reaped();
            process::exit_status(s)
        }
        _ => ExitStatus::default(),
    }
}
