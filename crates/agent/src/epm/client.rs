//! `jumpgate elevate [--reason TEXT] [--admin-session 15m] -- CMD ARGS`:
//! asks the agent's elevation service to run a command as root. No setuid
//! bit anywhere: the agent (root) runs the command on this process's
//! standard input, output and error, passed over the socket; this process
//! answers the agent's questions (a reason, an offline code), passes on the
//! signals it gets, and exits with the command's exit code.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};

use super::wire::{self, AgentMsg, ClientMsg, Elevate, Reader, WireError};

/// Environment variable naming the socket.
pub const SOCKET_ENV: &str = "JUMPGATE_ELEVATE_SOCKET";
/// Exit code when the agent refused (like sudo's).
pub const EXIT_REFUSED: i32 = 1;

/// What to ask for.
#[derive(Clone, Debug)]
pub struct ElevateRequest {
    pub socket: PathBuf,
    pub reason: Option<String>,
    pub admin_minutes: Option<u32>,
    pub argv: Vec<String>,
}

/// Why `jumpgate elevate` could not ask.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the elevation service at {path}: {cause} (is the Jumpgate agent running as root?)"
    )]
    Connect {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("elevation service: {0}")]
    Wire(#[from] WireError),
    #[error("the elevation service closed the connection before the command ended")]
    Ended,
}

/// Reads one line from the terminal (or standard input), byte by byte so
/// nothing meant for the command is consumed.
fn read_line(prompt: &str) -> String {
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let tty = std::fs::File::open("/dev/tty");
    let stdin = std::io::stdin();
    let fd = match &tty {
        Ok(t) => t.as_fd(),
        Err(_) => stdin.as_fd(),
    };
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = rustix::io::read(fd, &mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > 4096 {
            break;
        }
    }
    String::from_utf8_lossy(&line).trim().to_owned()
}

async fn prompt(text: String) -> String {
    tokio::task::spawn_blocking(move || read_line(&text))
        .await
        .unwrap_or_default()
}

/// Runs the request; the exit code to leave with.
///
/// # Errors
/// The service is unreachable or broke the protocol.
pub async fn elevate(req: ElevateRequest) -> Result<i32, ClientError> {
    let mut sock = std::os::unix::net::UnixStream::connect(&req.socket).map_err(|cause| {
        ClientError::Connect {
            path: req.socket.display().to_string(),
            cause,
        }
    })?;
    let lang = std::env::vars()
        .filter(|(k, _)| k == "LANG" || k == "LANGUAGE" || k.starts_with("LC_"))
        .collect();
    let msg = ClientMsg::Elevate(Elevate {
        argv: req.argv.clone(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        reason: req.reason.clone(),
        path: std::env::var("PATH").unwrap_or_default(),
        term: std::env::var("TERM").ok(),
        lang,
        admin_minutes: req.admin_minutes,
    });
    {
        let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        wire::send_with_fds(&mut sock, &msg, &[i.as_fd(), o.as_fd(), e.as_fd()])?;
    }
    sock.set_nonblocking(true).map_err(WireError::from)?;
    let sock = tokio::net::UnixStream::from_std(sock).map_err(WireError::from)?;
    let (r, mut w) = sock.into_split();
    let mut reader = Reader::new(r, Vec::new());
    let mut sigs = Vec::new();
    for (kind, n) in [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
    ] {
        if let Ok(s) = signal(kind) {
            sigs.push((s, n));
        }
    }
    let (sig_tx, mut sig_rx) = tokio::sync::mpsc::unbounded_channel();
    for (mut s, n) in sigs {
        let tx = sig_tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(n).is_err() {
                    return;
                }
            }
        });
    }
    drop(sig_tx);
    loop {
        let msg: Option<AgentMsg> = tokio::select! {
            m = reader.next() => m?,
            Some(n) = sig_rx.recv() => {
                write_msg(&mut w, &ClientMsg::Signal { signal: n }).await?;
                continue;
            }
        };
        let Some(msg) = msg else {
            return Err(ClientError::Ended);
        };
        match msg {
            AgentMsg::NeedReason { rule } => {
                let text = prompt(format!("rule `{rule}` asks why you need this; reason: ")).await;
                write_msg(&mut w, &ClientMsg::Reason { text }).await?;
            }
            AgentMsg::NeedCode {
                challenge,
                attempts_left,
            } => {
                eprintln!(
                    "this needs a code from your help desk: read them the challenge {challenge} ({attempts_left} attempts left)"
                );
                let response = prompt("response: ".into()).await;
                write_msg(&mut w, &ClientMsg::Code { response }).await?;
            }
            AgentMsg::NeedApproval {
                request,
                timeout_secs,
            } => {
                eprintln!(
                    "waiting for a technician to approve request {request} (at most {}m)…",
                    timeout_secs.div_ceil(60)
                );
            }
            AgentMsg::Notice { message } => eprintln!("jumpgate elevate: {message}"),
            AgentMsg::Refused { message, .. } => {
                eprintln!("jumpgate elevate: refused: {message}");
                return Ok(EXIT_REFUSED);
            }
            AgentMsg::Started { .. } => {}
            AgentMsg::Exited { code } => return Ok(code),
        }
    }
}

async fn write_msg(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    msg: &ClientMsg,
) -> Result<(), WireError> {
    use tokio::io::AsyncWriteExt;
    let mut buf = Vec::new();
    wire::send(&mut buf, msg)?;
    w.write_all(&buf).await?;
    Ok(())
}
