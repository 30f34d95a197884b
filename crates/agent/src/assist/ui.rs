//! The window child (`jumpgate assist ui`, the JSON lines of
//! [`jumpgate_consent::assist_child`]) as two channels.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jumpgate_consent::assist_child::{FromAssistUi, ToAssistUi};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::debug;

use super::AssistError;

/// How long the window child gets to start.
const UI_READY: Duration = Duration::from_secs(15);

/// The two directions of the window: what to show, what the customer did.
/// `rx` ends (None) when the window child is gone.
#[derive(Debug)]
pub struct UiLink {
    pub tx: mpsc::Sender<ToAssistUi>,
    pub rx: mpsc::Receiver<FromAssistUi>,
}

impl UiLink {
    /// A link over plain channels (tests): the other ends.
    pub fn pair() -> (Self, mpsc::Receiver<ToAssistUi>, mpsc::Sender<FromAssistUi>) {
        let (to_tx, to_rx) = mpsc::channel(64);
        let (from_tx, from_rx) = mpsc::channel(64);
        (
            Self {
                tx: to_tx,
                rx: from_rx,
            },
            to_rx,
            from_tx,
        )
    }

    /// Shows `msg` (a window already gone is noticed on `rx`).
    pub async fn show(&self, msg: ToAssistUi) {
        let _ = self.tx.send(msg).await;
    }
}

/// The window child process; killed when dropped.
#[derive(Debug)]
pub struct UiChild {
    child: Child,
}

impl UiChild {
    /// Starts `program args` (with `env` added) and waits until its window
    /// is up.
    ///
    /// # Errors
    /// The child could not start, or its window could not be shown.
    pub async fn spawn(
        program: PathBuf,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(Self, UiLink), AssistError> {
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let ui_err = |e: String| AssistError::Window(e);
        let mut child = cmd
            .spawn()
            .map_err(|e| ui_err(format!("cannot start {}: {e}", program.display())))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| ui_err("no stdin of the window child".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ui_err("no stdout of the window child".into()))?;
        let (to_tx, mut to_rx) = mpsc::channel::<ToAssistUi>(64);
        let (from_tx, mut from_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(msg) = to_rx.recv().await {
                let mut line = serde_json::to_vec(&msg).unwrap_or_default();
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    return;
                }
            }
            // Dropping stdin: EOF takes the window down.
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // A test harness's chatter before the protocol line is cut.
                let text = line.find("{\"type\"").map_or(line.as_str(), |i| &line[i..]);
                match serde_json::from_str::<FromAssistUi>(text.trim()) {
                    Ok(msg) => {
                        if from_tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => debug!(line, "not a window child message"),
                }
            }
        });
        let ready = tokio::time::timeout(UI_READY, async {
            let mut failed = None;
            loop {
                match from_rx.recv().await {
                    Some(FromAssistUi::Ready { .. }) => return failed.map_or(Ok(()), Err),
                    Some(FromAssistUi::Failed { message }) => failed = Some(message),
                    Some(_) => {}
                    None => {
                        return Err(failed.unwrap_or_else(|| "the window child exited".into()));
                    }
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok((
                Self { child },
                UiLink {
                    tx: to_tx,
                    rx: from_rx,
                },
            )),
            Ok(Err(message)) => Err(ui_err(message)),
            Err(_) => Err(ui_err("the window did not come up in time".into())),
        }
    }

    /// Waits a moment for the child to end on its own (its stdin closed),
    /// then kills it.
    pub async fn close(mut self) {
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
