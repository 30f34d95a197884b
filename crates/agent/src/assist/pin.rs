//! Pin as unattended, on the customer's side: the technician's offer
//! (`AssistMsg::PinOffer`) is asked in the window; on Allow this program
//! installs itself as the endpoint agent (`jumpgate agent install`, as
//! root through `pkexec`, which asks for an administrator's password; no
//! `pkexec` when already root); either way the gateway gets `PinResult`.
//! A denial, a timeout or a failed install changes nothing on the machine
//! (the install removes what it made).
//!
//! Tests only: [`TEST_ROOT_ENV`] names a directory the install goes under,
//! without systemd (`--root DIR --no-systemd`). A customer never sets it,
//! and it can only make the install do less.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jumpgate_consent::assist_child::ToAssistUi;
use jumpgate_proto::assist::AssistMsg;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

/// How long the customer has to answer the offer.
pub const PIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the install may take (the password dialog included); the
/// enrollment token lasts 10 minutes anyway.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Tests only: install under this directory, without systemd.
pub const TEST_ROOT_ENV: &str = "JUMPGATE_ASSIST_TEST_PIN_ROOT";

/// What the technician offered.
#[derive(Clone)]
pub struct Offer {
    pub group: String,
    pub technician: String,
    pub server: String,
    pub fingerprint: String,
    /// The one-time enrollment token (a secret: never logged).
    pub token: String,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("group", &self.group)
            .field("technician", &self.technician)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Pending {
    offer: Offer,
    deadline: Instant,
    running: bool,
}

/// The offer being answered or installed, and an outcome not sent yet.
#[derive(Debug, Default)]
pub struct PinState {
    pending: Option<Pending>,
    /// The install's outcome, read while a connection is served (one
    /// that ends while the connection is away is sent once it is back).
    done: Option<oneshot::Receiver<(bool, String)>>,
    /// The answer to an offer taken off the screen, for the gateway (sent
    /// once a connection is there).
    pub unsent: Option<AssistMsg>,
}

fn result(ok: bool, message: impl Into<String>) -> AssistMsg {
    AssistMsg::PinResult {
        ok,
        message: message.into(),
    }
}

impl PinState {
    /// Whether an offer is on screen or installing (technician input is
    /// held meanwhile: nobody but the customer answers it, or types the
    /// password).
    pub fn active(&self) -> bool {
        self.pending.is_some()
    }

    /// A new offer: what the window shows, or the answer at once (one
    /// offer at a time).
    ///
    /// # Errors
    /// The refusal to send when an offer is already being answered.
    pub fn offer(&mut self, offer: Offer, timeout: Duration) -> Result<ToAssistUi, AssistMsg> {
        if self.pending.is_some() {
            return Err(result(false, "another offer is being answered"));
        }
        info!(group = %offer.group, technician = %offer.technician, "the technician offers permanent access");
        let ui = ToAssistUi::AskPin {
            technician: offer.technician.clone(),
            group: offer.group.clone(),
            timeout_ms: timeout.as_millis() as u64,
        };
        self.pending = Some(Pending {
            offer,
            deadline: Instant::now() + timeout,
            running: false,
        });
        Ok(ui)
    }

    /// When an unanswered offer is denied.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .filter(|p| !p.running)
            .map(|p| p.deadline)
    }

    /// The denial of an offer not answered by `now`.
    pub fn expire(&mut self, now: Instant) -> Option<AssistMsg> {
        if self.deadline().is_some_and(|d| d <= now) {
            self.pending = None;
            info!("no answer to the offer of permanent access in time: denied");
            return Some(result(false, "the customer did not answer in time"));
        }
        None
    }

    /// The customer's answer: a denial's result, or `None` once the
    /// install started (its result comes from [`Self::finished`]).
    pub fn answer(&mut self, allowed: bool) -> Option<AssistMsg> {
        let p = self.pending.as_mut().filter(|p| !p.running)?;
        if !allowed {
            self.pending = None;
            info!("the customer declined permanent access");
            return Some(result(false, "the customer declined"));
        }
        info!("the customer allowed permanent access: installing");
        p.running = true;
        let (tx, rx) = oneshot::channel();
        let offer = p.offer.clone();
        tokio::spawn(async move {
            let _ = tx.send(install(&offer).await);
        });
        self.done = Some(rx);
        None
    }

    /// Takes an offer off the screen that is not installing (the
    /// connection is lost, the session went to someone else or ended):
    /// the gateway is told it was not installed (`unsent`), so the
    /// technician may offer again.
    pub fn withdraw(&mut self, why: &str) -> bool {
        if self.pending.as_ref().is_some_and(|p| !p.running) {
            self.pending = None;
            info!(why, "the offer of permanent access is withdrawn");
            self.unsent = Some(result(false, format!("the offer was withdrawn: {why}")));
            return true;
        }
        false
    }

    /// Completes with the install's outcome (never while none runs).
    pub async fn finished(&mut self) -> AssistMsg {
        let Some(rx) = self.done.as_mut() else {
            return std::future::pending().await;
        };
        let (ok, message) = rx
            .await
            .unwrap_or_else(|_| (false, "the install stopped".to_owned()));
        self.done = None;
        self.pending = None;
        result(ok, message)
    }
}

/// The last non-empty line of `bytes`.
fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// Runs `jumpgate agent install` (through `pkexec` unless root): the
/// outcome and what to tell the technician.
async fn install(offer: &Offer) -> (bool, String) {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return (false, format!("cannot find this program: {e}")),
    };
    let mut args: Vec<std::ffi::OsString> = vec![
        exe.clone().into(),
        "agent".into(),
        "install".into(),
        "--server".into(),
        offer.server.clone().into(),
        "--ca-fingerprint".into(),
        offer.fingerprint.clone().into(),
        // The token goes on standard input, not on a command line `ps` shows.
        "--enroll-token-file".into(),
        "-".into(),
    ];
    if let Some(root) = std::env::var_os(TEST_ROOT_ENV).filter(|r| !r.is_empty()) {
        args.extend([
            "--root".into(),
            PathBuf::from(root).into(),
            "--no-systemd".into(),
        ]);
    }
    let as_root = rustix::process::geteuid().is_root();
    let mut cmd = if as_root {
        tokio::process::Command::new(&args[0])
    } else {
        let mut c = tokio::process::Command::new("pkexec");
        c.arg(&args[0]);
        c
    };
    cmd.args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !as_root => {
            return (
                false,
                "pkexec (polkit) is not installed on this computer: nothing was installed".into(),
            );
        }
        Err(e) => return (false, format!("cannot start the install: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin
            .write_all(format!("{}\n", offer.token).as_bytes())
            .await;
        // Dropped: end of input.
    }
    let out = match tokio::time::timeout(INSTALL_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return (false, format!("the install failed: {e}")),
        Err(_) => return (false, "the install did not finish in time".into()),
    };
    if out.status.success() {
        let said = last_line(&out.stdout);
        info!(said, "installed");
        return (
            true,
            if said.is_empty() {
                "installed".into()
            } else {
                said
            },
        );
    }
    let said = last_line(&out.stderr);
    let said = said.strip_prefix("jumpgate: error: ").unwrap_or(&said);
    warn!(status = %out.status, said, "the install failed");
    // pkexec: 126 = the dialog was dismissed, 127 = not authorized.
    match out.status.code() {
        Some(126 | 127) if !as_root => (
            false,
            format!("no administrator password was given or it was refused ({said})"),
        ),
        _ => (false, format!("the install failed: {said}")),
    }
}
