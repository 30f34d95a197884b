//! `exec` sessions: one command without a PTY.
//!
//! The command runs in a process group of its own so that `Signal` reaches
//! everything it started (as Ctrl-C in a terminal would) and an abandoned
//! session can kill all of it.

use std::process::Stdio;

use bytes::{Bytes, BytesMut};
use jumpgate_proto::session::{Accepted, CHUNK, RefusalCode, SessionKind, SessionMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::debug;

use super::process::{self, ProcessGroup};
use super::wire::{self, MsgStream};
use super::{SessionContext, SessionError, SessionSummary};

/// Stdin chunks queued for the child. Small: the queue exists so that a
/// child not reading its stdin does not stall its output, not to buffer.
const STDIN_QUEUE: usize = 4;

pub(super) async fn run<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    command: &[String],
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(program) = command.first().filter(|p| !p.is_empty()) else {
        let code = RefusalCode::InvalidRequest;
        return Err(super::refuse(&mut rx, &mut tx, ctx, code, "empty command").await);
    };
    if command.iter().any(|a| a.contains('\0')) {
        let code = RefusalCode::InvalidRequest;
        let message = "command contains a NUL byte";
        return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
    }
    let mut cmd = Command::new(program);
    cmd.args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(home) = process::home_dir() {
        cmd.current_dir(home);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = super::refusal_code(&e);
            let message = match code {
                RefusalCode::NotFound => format!("command not found: {program}"),
                RefusalCode::PermissionDenied => format!("permission denied: {program}"),
                _ => format!("cannot run {program}: {e}"),
            };
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    let mut group = ProcessGroup::led_by(child.id());
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        // Cannot happen with piped stdio; the group is killed on return.
        let e = std::io::Error::other("child has no pipes");
        return Err(SessionError::local("starting the command")(e));
    };
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;

    let mut summary = SessionSummary::new(SessionKind::Exec);
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    // Aborted with the session: a write blocked on a pipe that something
    // the command left behind holds open must not outlive it.
    let _feeder = AbortOnDropHandle::new(tokio::spawn(feed_stdin(stdin, stdin_rx)));
    let mut stdin_tx = Some(stdin_tx);
    let mut pending: Option<Bytes> = None;
    let mut input_open = true;
    let mut out = Output::new(stdout);
    let mut err = Output::new(stderr);
    let mut status = None;
    let mut drain_until = Instant::now();

    loop {
        if status.is_some() && out.is_done() && err.is_done() {
            break;
        }
        tokio::select! {
            permit = reserve(stdin_tx.clone()), if pending.is_some() => match (permit, pending.take()) {
                (Some(permit), Some(data)) => drop(permit.send(data)),
                // The command closed its stdin: what it would not read is dropped.
                _ => stdin_tx = None,
            },
            msg = rx.read_msg(), if input_open && pending.is_none() => match msg {
                Ok(Some(SessionMsg::Stdin(data))) => {
                    summary.bytes_in += data.len() as u64;
                    if stdin_tx.is_some() && !data.is_empty() {
                        pending = Some(data);
                    }
                }
                Ok(Some(SessionMsg::StdinEof)) => stdin_tx = None,
                Ok(Some(SessionMsg::Signal(kind))) => {
                    debug!(?kind, "signal to command");
                    group.signal(process::signal_of(kind));
                }
                Ok(Some(SessionMsg::Resize { .. })) => {}
                Ok(Some(SessionMsg::Closed { reason })) => return Err(super::closed_by_gateway(reason)),
                Ok(Some(other)) => {
                    return Err(SessionError::Unexpected {
                        got: other.name(),
                        during: "during exec",
                    });
                }
                // A half-close only means no more input: the technician may
                // still be reading the output.
                Ok(None) => {
                    input_open = false;
                    stdin_tx = None;
                }
                Err(e) => return Err(e.into()),
            },
            chunk = out.read(), if !out.is_done() => {
                if let Some(data) = chunk? {
                    summary.bytes_out += data.len() as u64;
                    tx.write_msg(&SessionMsg::Stdout(data)).await?;
                }
            },
            chunk = err.read(), if !err.is_done() => {
                if let Some(data) = chunk? {
                    summary.bytes_out += data.len() as u64;
                    tx.write_msg(&SessionMsg::Stderr(data)).await?;
                }
            },
            exit = child.wait(), if status.is_none() => {
                let exit = exit.map_err(SessionError::local("waiting for the command"))?;
                group.reaped();
                debug!(?exit, "command exited");
                status = Some(process::exit_status(exit));
                drain_until = Instant::now() + ctx.output_drain;
            },
            // Something the command started still holds its output open: do
            // not let it hold the session too.
            () = tokio::time::sleep_until(drain_until), if status.is_some() => break,
        }
    }
    let status = status.unwrap_or_default();
    tx.write_msg(&SessionMsg::Exit(status)).await?;
    wire::finish(&mut rx, &mut tx, ctx.linger).await;
    Ok(summary)
}

/// Waits for room in the stdin queue; `None` once the feeder has stopped.
async fn reserve(tx: Option<mpsc::Sender<Bytes>>) -> Option<mpsc::OwnedPermit<Bytes>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// Writes queued input to the child, and closes its stdin when the queue is
/// closed. Runs apart from the session loop so that a child that does not
/// read its input still has its output forwarded.
async fn feed_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(data) = rx.recv().await {
        if let Err(e) = stdin.write_all(&data).await {
            debug!("command closed its stdin: {e}");
            return;
        }
    }
}

/// One output pipe of the child.
struct Output<P> {
    pipe: Option<P>,
    buf: BytesMut,
}

impl<P: AsyncRead + Unpin> Output<P> {
    fn new(pipe: P) -> Self {
        Self {
            pipe: Some(pipe),
            buf: BytesMut::new(),
        }
    }

    fn is_done(&self) -> bool {
        self.pipe.is_none()
    }

    /// The next chunk, at most [`CHUNK`] bytes; `None` at end of output.
    /// Cancel-safe.
    async fn read(&mut self) -> Result<Option<Bytes>, SessionError> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(None);
        };
        self.buf.reserve(CHUNK);
        let n = pipe
            .take(CHUNK as u64)
            .read_buf(&mut self.buf)
            .await
            .map_err(SessionError::local("reading the command's output"))?;
        if n == 0 {
            self.pipe = None;
            return Ok(None);
        }
        Ok(Some(self.buf.split().freeze()))
    }
}
