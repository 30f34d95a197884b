//! Agent-side session handlers: what the agent does with one stream the
//! gateway opened to it, on behalf of one technician.
//!
//! [`serve`] reads the technician's `Open`, answers `Accepted` or `Refused`,
//! and runs the session to its end:
//! - `shell`: the user's login shell in a PTY;
//! - `exec`: one command, no PTY, separate stdout/stderr, exit status;
//! - `upload`: written to a temporary file beside the destination, verified
//!   (size and SHA-256), then renamed into place, so the destination never
//!   holds a partial file;
//! - `download`: streamed in chunks with its SHA-256 at the end;
//! - `forward`: a TCP connection from the endpoint, raw bytes both ways;
//! - `desktop`: the endpoint's X display and the technician's input, with
//!   the consent of the person at the endpoint (see [`desktop`]).
//!
//! # Ending a session
//! Once the agent's side is done it half-closes the stream and waits (at
//! most [`SessionContext::linger`]) for the technician's end: dropping a mux
//! stream before both sides finished resets it, and a reset may overtake data
//! still queued in the gateway.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use jumpgate_proto::ProtoError;
use jumpgate_proto::session::{Refusal, RefusalCode, SessionKind, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

pub mod desktop;
mod exec;
mod files;
mod forward;
mod process;
mod shell;
mod target;
mod wire;

#[cfg(test)]
mod tests;

use wire::MsgStream;

/// Settings of the session handlers.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// Program run for shell sessions instead of the user's login shell
    /// (`$SHELL`, then the password database, then `/bin/sh`). It is run as
    /// given, not as a login shell.
    pub shell: Option<PathBuf>,
    /// Limit on resolving and connecting to the target of a forward.
    pub connect_timeout: Duration,
    /// Limit on waiting for the `Open` message of a new stream.
    pub open_timeout: Duration,
    /// After a process exits, how long its output is still forwarded while
    /// something else (a background job) keeps its PTY or pipes open.
    pub output_drain: Duration,
    /// How long to wait for the technician's end of the stream once the
    /// agent's side is finished.
    pub linger: Duration,
    /// Desktop sessions: the display and the consent UI.
    pub desktop: desktop::DesktopOptions,
    /// The customer client of attended support (`jumpgate assist`): every
    /// session needs the customer's rights (see [`crate::assist`]).
    pub assist: Option<crate::assist::AssistGrants>,
    /// This agent agrees to be a jump point: it reaches agentless targets
    /// for the gateway (`--jump-point`). Without it, target sessions are
    /// refused whatever the gateway says.
    pub jump_point: bool,
    /// The destinations this jump point agrees to reach
    /// (`--jump-point-allow`), on top of the administrator's list.
    pub jump_point_allow: jumpgate_net::allow::AllowList,
}

impl Default for SessionContext {
    fn default() -> Self {
        Self {
            shell: None,
            connect_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(30),
            output_drain: Duration::from_secs(1),
            linger: Duration::from_secs(5),
            desktop: desktop::DesktopOptions::default(),
            assist: None,
            jump_point: false,
            jump_point_allow: jumpgate_net::allow::AllowList::any(),
        }
    }
}

/// How a session went, for the agent's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSummary {
    pub kind: SessionKind,
    /// Payload bytes from the technician: stdin, uploaded file data, or raw
    /// bytes of a forward (message headers are not counted).
    pub bytes_in: u64,
    /// Payload bytes to the technician: stdout and stderr, downloaded file
    /// data, or raw bytes of a forward.
    pub bytes_out: u64,
}

impl SessionSummary {
    fn new(kind: SessionKind) -> Self {
        Self {
            kind,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// Why a session did not run to a normal end.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream ended before any message arrived.
    #[error("stream closed before the session was opened")]
    NoOpen,
    /// No `Open` arrived within [`SessionContext::open_timeout`].
    #[error("no open request within {0:?}")]
    OpenTimeout(Duration),
    /// The technician's bytes are not a valid session message. For a
    /// well-framed but invalid `Open` (an unknown kind, say), a `Refused`
    /// was sent first.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtoError),
    /// A well-formed message that has no place at this point (the first
    /// message is not `Open`, `Stdout` from the technician...).
    #[error("unexpected {got} message {during}")]
    Unexpected {
        got: &'static str,
        during: &'static str,
    },
    /// The stream ended in the middle of a message or of a transfer.
    #[error("stream ended {0}")]
    Truncated(&'static str),
    /// Reading or writing the session stream failed: reset by the
    /// technician or the gateway, or the connection was lost.
    #[error("session stream failed: {0}")]
    Stream(#[source] io::Error),
    /// The session was refused; the technician was told why.
    #[error("session refused ({:?}): {}", .0.code, .0.message)]
    Refused(Refusal),
    /// The gateway ended the session with a `Closed` message.
    #[error("session closed by the gateway: {reason}")]
    Closed { reason: String },
    /// An accepted upload failed (mismatch, disk full...); the technician
    /// got a `FileResult` with this message and the destination is untouched.
    #[error("upload failed: {0}")]
    Upload(String),
    /// Attended support: the customer revoked the right the session
    /// needed; it was stopped and the technician told `reason`.
    #[error("{reason}")]
    Revoked { reason: String },
    /// A local resource failed after the session was accepted: the PTY, the
    /// child process, the file, or the forwarded connection.
    #[error("{what}: {source}")]
    Local {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SessionError {
    fn local(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Local { what, source }
    }
}

/// Serves one session stream opened by the gateway: reads the first message
/// (must be [`SessionMsg::Open`]), answers `Accepted` or `Refused`, runs the
/// session, and returns when it is over. Never panics on peer input.
///
/// # Errors
/// The session was refused, the technician broke the protocol or vanished,
/// the gateway closed it, or a local resource failed mid-session; see
/// [`SessionError`]. Child processes are killed and partial uploads deleted
/// before it returns, also when the returned future is dropped.
pub async fn serve<S>(stream: S, ctx: SessionContext) -> Result<SessionSummary, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some(grants) = ctx.assist.clone() {
        return serve_assist(stream, ctx, grants).await;
    }
    let (mut rx, mut tx) = MsgStream::new(stream).split();
    match read_open(&mut rx, &mut tx, &ctx).await? {
        Opening::Plain(req) => run_request(req, rx, tx, &ctx).await,
        Opening::Target(open) => target::run(*open, rx, tx, &ctx).await,
    }
}

/// What the first message of a session stream asked for.
enum Opening {
    Plain(SessionRequest),
    /// A session on an agentless target, for a jump point.
    Target(Box<jumpgate_proto::target::TargetOpen>),
}

/// [`serve`] in the customer client of attended support: the session needs
/// the customer's right for its kind (see [`crate::assist::gate`]) and ends
/// the moment that right is revoked: the handler is dropped (its process
/// group killed, a partial upload removed) and the technician gets
/// `Closed{reason}`.
async fn serve_assist<S>(
    stream: S,
    ctx: SessionContext,
    grants: crate::assist::AssistGrants,
) -> Result<SessionSummary, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use crate::assist::gate;
    let tracked = gate::Tracked::new(stream);
    let (mut rx, mut tx) = MsgStream::new(tracked.clone()).split();
    let req = match read_open(&mut rx, &mut tx, &ctx).await? {
        Opening::Plain(req) => req,
        Opening::Target(_) => {
            let message = "the customer's client is not a jump point";
            let code = RefusalCode::PermissionDenied;
            return Err(refuse(&mut rx, &mut tx, &ctx, code, message).await);
        }
    };
    let right = match gate::needed(&req, &grants) {
        Ok(Some(right)) => right,
        Ok(None) => return run_request(req, rx, tx, &ctx).await,
        Err((code, message)) => return Err(refuse(&mut rx, &mut tx, &ctx, code, message).await),
    };
    let mut rights = grants.subscribe();
    let outcome = {
        let run = run_request(req, rx, tx, &ctx);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => Some(result),
            () = crate::assist::until_revoked(&mut rights, right) => None,
        }
        // The handler is dropped here: nothing it started runs on.
    };
    if let Some(result) = outcome {
        return result;
    }
    let reason = gate::revoked_reason(right);
    info!(%right, "right revoked: session stopped");
    if tracked.at_boundary() {
        let (mut rx, mut tx) = MsgStream::new(tracked).split();
        if tx
            .write_msg(&SessionMsg::Closed {
                reason: reason.clone(),
            })
            .await
            .is_ok()
        {
            wire::finish(&mut rx, &mut tx, ctx.linger).await;
        }
    }
    Err(SessionError::Revoked { reason })
}

/// Runs an opened session to its end.
async fn run_request<R, W>(
    req: SessionRequest,
    rx: MsgStream<R>,
    tx: MsgStream<W>,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let kind = req.kind();
    let result = match req {
        SessionRequest::Shell {
            term,
            cols,
            rows,
            command,
        } => {
            // A command line may carry secrets: only whether there is one.
            info!(%kind, %term, cols, rows, command = command.is_some(), "session opened");
            shell::run(rx, tx, &term, cols, rows, command, ctx).await
        }
        SessionRequest::Exec { command } => {
            // Arguments may carry secrets: only the program is logged.
            let program = command.first().map_or("", String::as_str);
            info!(%kind, program, "session opened");
            exec::run(rx, tx, &command, ctx).await
        }
        SessionRequest::Upload {
            path,
            mode,
            size,
            file_name,
        } => {
            info!(%kind, path, size, "session opened");
            files::upload(rx, tx, &path, mode, size, file_name.as_deref(), ctx).await
        }
        SessionRequest::Download { path } => {
            info!(%kind, path, "session opened");
            files::download(rx, tx, &path, ctx).await
        }
        SessionRequest::Forward { host, port } => {
            info!(%kind, host, port, "session opened");
            forward::run(rx, tx, &host, port, ctx).await
        }
        SessionRequest::Desktop {
            control,
            clipboard,
            monitor,
            consent,
            technician,
            codecs,
        } => {
            info!(%kind, control, clipboard, ?consent, "session opened");
            let req = desktop::Request {
                control,
                clipboard,
                monitor,
                consent,
                technician,
                codecs,
            };
            desktop::run(rx, tx, req, ctx).await
        }
    };
    if let Ok(s) = &result {
        info!(%kind, bytes_in = s.bytes_in, bytes_out = s.bytes_out, "session ended");
    }
    result
}

/// Reads the first message, which must be `Open`.
async fn read_open<R, W>(
    rx: &mut MsgStream<R>,
    tx: &mut MsgStream<W>,
    ctx: &SessionContext,
) -> Result<Opening, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(ctx.open_timeout, rx.fill()).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(SessionError::NoOpen),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(SessionError::OpenTimeout(ctx.open_timeout)),
    }
    // The message is whole and well framed, so a decoding error means its
    // content is wrong (an unknown kind from a newer client, say): that
    // deserves an answer rather than a silent reset.
    match rx.decode() {
        Ok(Some(SessionMsg::Open(req))) => Ok(Opening::Plain(req)),
        Ok(Some(SessionMsg::OpenTarget(open))) => Ok(Opening::Target(open)),
        Ok(Some(other)) => {
            let got = other.name();
            let message = format!("the first message must be Open, not {got}");
            send_refusal(rx, tx, ctx, RefusalCode::InvalidRequest, message).await;
            Err(SessionError::Unexpected {
                got,
                during: "before Open",
            })
        }
        Ok(None) => Err(SessionError::NoOpen),
        Err(e) => {
            let message = format!("invalid open request: {e}");
            send_refusal(rx, tx, ctx, RefusalCode::InvalidRequest, message).await;
            Err(SessionError::Protocol(e))
        }
    }
}

/// Answers `Open` with a refusal and ends the stream.
async fn send_refusal<R, W>(
    rx: &mut MsgStream<R>,
    tx: &mut MsgStream<W>,
    ctx: &SessionContext,
    code: RefusalCode,
    message: String,
) -> Refusal
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    info!(?code, message, "session refused");
    let refusal = Refusal { code, message };
    if tx
        .write_msg(&SessionMsg::Refused(refusal.clone()))
        .await
        .is_ok()
    {
        wire::finish(rx, tx, ctx.linger).await;
    }
    refusal
}

/// [`send_refusal`], as the error a handler returns.
async fn refuse<R, W>(
    rx: &mut MsgStream<R>,
    tx: &mut MsgStream<W>,
    ctx: &SessionContext,
    code: RefusalCode,
    message: impl Into<String>,
) -> SessionError
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    SessionError::Refused(send_refusal(rx, tx, ctx, code, message.into()).await)
}

/// The refusal code for a failed local operation on behalf of a request.
fn refusal_code(e: &io::Error) -> RefusalCode {
    match e.kind() {
        io::ErrorKind::NotFound => RefusalCode::NotFound,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            RefusalCode::PermissionDenied
        }
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::InvalidFilename => RefusalCode::InvalidRequest,
        _ => RefusalCode::Failed,
    }
}

/// Logs the end of a session the gateway closed and turns it into its error.
fn closed_by_gateway(reason: String) -> SessionError {
    debug!(reason, "gateway closed the session");
    SessionError::Closed { reason }
}
