//! `jg shell ENDPOINT` (interactive PTY) and `jg shell ENDPOINT -- CMD...`
//! (one command, separate stdout/stderr, remote exit code).

use std::io;

use anyhow::{Context, bail};
use bytes::Bytes;
use jumpgate_client::Client;
use jumpgate_net::session::{MsgError, MsgStream};
use jumpgate_proto::session::{SessionKind, SessionMsg, SessionRequest, SignalKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind as UnixSignal, signal};
use tokio::sync::mpsc;

use crate::errors::{EXIT_INTERRUPTED, GatewayClosed, Refused};
use crate::session_io::{self, recv};
use crate::{stdin, term};

/// Exit code after SIGTERM, as a shell reports it.
const EXIT_TERMINATED: i32 = 128 + 15;

/// What local signals turn into.
#[derive(Debug)]
enum Event {
    /// A message for the agent.
    Send(SessionMsg),
    /// Stop now with this exit code.
    Exit(i32),
}

/// Where a shell or command runs: an endpoint, or the machine of a
/// customer in attended support (who allowed it).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    Endpoint(&'a str),
    Support(&'a str),
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Endpoint(name) => f.write_str(name),
            Self::Support(id) => write!(f, "the customer's machine ({id})"),
        }
    }
}

impl Target<'_> {
    async fn connect(
        self,
        client: &Client,
        kind: SessionKind,
    ) -> Result<jumpgate_client::SessionIo, jumpgate_client::ClientError> {
        match self {
            Self::Endpoint(name) => client.connect(name, kind).await,
            Self::Support(id) => client.connect_support(id, kind).await,
        }
    }
}

pub(crate) async fn run(
    client: &Client,
    endpoint: Target<'_>,
    command: Vec<String>,
    force_stdin: bool,
) -> anyhow::Result<i32> {
    let interactive = command.is_empty();
    let stdin_tty = term::stdin_is_tty();
    let (kind, req, what) = if interactive {
        let (cols, rows) = term::window_size();
        let term_name = std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "xterm-256color".to_owned());
        let req = SessionRequest::Shell {
            term: term_name,
            cols,
            rows,
            command: None,
        };
        (SessionKind::Shell, req, "a shell")
    } else {
        (
            SessionKind::Exec,
            SessionRequest::Exec { command },
            "the command",
        )
    };

    let mut io = MsgStream::new(
        endpoint
            .connect(client, kind)
            .await
            .with_context(|| format!("cannot start {what} on {endpoint}"))?,
    );
    match session_io::open(&mut io, req).await {
        Ok(_) => {}
        Err(e) if e.is::<Refused>() => bail!("{endpoint} refused to start {what}: {e}"),
        Err(e) => return Err(e.context(format!("cannot start {what} on {endpoint}"))),
    }

    // After `Accepted`, so a refusal prints on a sane terminal. The guard
    // restores the terminal on every way out of this function.
    let raw = if interactive && stdin_tty {
        Some(term::TermGuard::raw().context("switching the terminal to raw mode")?)
    } else {
        None
    };
    // `jg shell host -- ls` typed at a terminal must not wait for input.
    let input = (interactive || !stdin_tty || force_stdin).then(stdin::spawn_reader);
    let events = spawn_signal_events(interactive)?;
    let code = pump(
        io,
        input,
        events,
        &mut tokio::io::stdout(),
        &mut tokio::io::stderr(),
    )
    .await;
    drop(raw);
    code
}

/// Turns local signals into [`Event`]s. Interactive: window changes become
/// `Resize` (Ctrl-C is a plain byte in raw mode). Exec: SIGINT/SIGTERM are
/// forwarded, a second SIGINT gives up at once.
fn spawn_signal_events(interactive: bool) -> anyhow::Result<mpsc::Receiver<Event>> {
    let mut int = signal(UnixSignal::interrupt()).context("installing a SIGINT handler")?;
    let mut term = signal(UnixSignal::terminate()).context("installing a SIGTERM handler")?;
    let mut winch = signal(UnixSignal::window_change()).context("installing a SIGWINCH handler")?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut interrupted = false;
        loop {
            let ev = tokio::select! {
                _ = winch.recv(), if interactive => {
                    let (cols, rows) = term::window_size();
                    Event::Send(SessionMsg::Resize { cols, rows })
                }
                _ = int.recv() => {
                    if interactive || interrupted {
                        Event::Exit(EXIT_INTERRUPTED)
                    } else {
                        interrupted = true;
                        Event::Send(SessionMsg::Signal(SignalKind::Interrupt))
                    }
                }
                _ = term.recv() => {
                    if interactive {
                        Event::Exit(EXIT_TERMINATED)
                    } else {
                        Event::Send(SessionMsg::Signal(SignalKind::Terminate))
                    }
                }
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Runs an accepted session until `Exit`: agent output to `out`/`err`,
/// `input` (if any, else an immediate `StdinEof`) and signal events to the
/// agent. Returns the exit code to leave with.
async fn pump<S, O, E>(
    io: MsgStream<S>,
    input: Option<mpsc::Receiver<io::Result<Bytes>>>,
    mut events: mpsc::Receiver<Event>,
    out: &mut O,
    err: &mut E,
) -> anyhow::Result<i32>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let (mut rd, wr) = io.split();
    let (ctrl_tx, ctrl_rx) = mpsc::channel(8);
    // Its own task: a stalled upstream must not stop us reading output.
    let writer = tokio::spawn(write_upstream(wr, input, ctrl_rx));
    let _stop_writer = AbortOnDrop(writer);

    let mut events_open = true;
    loop {
        tokio::select! {
            m = recv(&mut rd) => match m? {
                Some(SessionMsg::Stdout(b)) => {
                    out.write_all(&b).await.map_err(crate::out::error)?;
                    out.flush().await.map_err(crate::out::error)?;
                }
                Some(SessionMsg::Stderr(b)) => {
                    err.write_all(&b).await.context("writing to stderr")?;
                    err.flush().await.context("writing to stderr")?;
                }
                Some(SessionMsg::Exit(status)) => return Ok(status.shell_code()),
                Some(SessionMsg::Closed { reason }) => return Err(GatewayClosed { reason }.into()),
                Some(other) => {
                    tracing::debug!(message = other.name(), "ignoring unexpected message");
                }
                None => bail!("the connection to the gateway was lost"),
            },
            ev = events.recv(), if events_open => match ev {
                Some(Event::Send(msg)) => {
                    // The writer only stops when the connection is gone, and
                    // the read side reports that.
                    let _ = ctrl_tx.send(msg).await;
                }
                Some(Event::Exit(code)) => return Ok(code),
                None => events_open = false,
            },
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything that goes to the agent: input chunks then `StdinEof`, and
/// control messages in between.
async fn write_upstream<W: AsyncWrite + Unpin>(
    mut wr: MsgStream<W>,
    mut input: Option<mpsc::Receiver<io::Result<Bytes>>>,
    mut ctrl: mpsc::Receiver<SessionMsg>,
) {
    let result: Result<(), MsgError> = async {
        if input.is_none() {
            wr.write_msg(&SessionMsg::StdinEof).await?;
        }
        loop {
            let msg = tokio::select! {
                biased;
                m = ctrl.recv() => match m {
                    Some(m) => m,
                    None => return Ok(()),
                },
                chunk = next_input(&mut input), if input.is_some() => match chunk {
                    Some(Ok(b)) => SessionMsg::Stdin(b),
                    Some(Err(e)) => {
                        eprintln!("jg: reading stdin: {e}");
                        input = None;
                        SessionMsg::StdinEof
                    }
                    None => {
                        input = None;
                        SessionMsg::StdinEof
                    }
                },
            };
            wr.write_msg(&msg).await?;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "sending to the gateway failed");
    }
}

async fn next_input(
    input: &mut Option<mpsc::Receiver<io::Result<Bytes>>>,
) -> Option<io::Result<Bytes>> {
    match input {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
