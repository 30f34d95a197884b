//! `jumpgate assist`: the customer's client of attended support.
//!
//! The portal's download carries the site's URL, the pinned CA
//! fingerprint and a single-use ticket in a [`Trailer`] at the end of the
//! executable ([`trailer`]), so the customer only runs it: no root, no
//! install, no service, no state directory, logs to stderr only.
//!
//! 1. The window child starts first (`jumpgate assist ui`, the
//!    [`jumpgate_consent::assist`] window): without a window there is no
//!    consent, so no connection.
//! 2. [`conn`]: TLS to the site (ALPN `jumpgate-agent/1`, the pinned
//!    fingerprint), `AssistHello` signed with an Ed25519 key made in memory
//!    for this run; `AssistWelcome` or `Reject` (`InvalidTicket`: shown,
//!    then the end). Lost connections are retried with the support id and
//!    the same key for [`AssistOptions::reconnect_grace`].
//! 3. The connection then serves session streams like an enrolled agent's
//!    (the agent's dispatcher and handlers), gated by the customer's
//!    rights ([`grants`], [`gate`]); stream 0 carries the attended-support
//!    messages, handled by the control loop ([`desk`]).
//! 4. The technician may offer to make the machine an enrolled endpoint
//!    ([`pin`]): only with the customer's Allow and an administrator's
//!    password; the one exception to "nothing stays".
//! 5. At the end: the rating screen, every right off (what a technician
//!    started is stopped), the window child ended and, for a downloaded
//!    file, the file removed ("nothing stays").

pub mod conn;
pub mod desk;
pub(crate) mod gate;
pub mod grants;
pub mod pin;
pub mod trailer;
pub mod ui;

use std::path::PathBuf;
use std::time::Duration;

use jumpgate_net::dial::{self, ServerUrl};
use jumpgate_net::tls::{self, Fingerprint};
use jumpgate_proto::assist::{Right, Trailer};
use jumpgate_proto::control::Reject;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use desk::{Desk, Step};
pub use grants::{AssistGrants, GrantState, WindowGuard};
pub use ui::{UiChild, UiLink};

/// Why the client stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum AssistError {
    /// No trailer and no `--server`/`--ca-fingerprint`/`--ticket`.
    #[error(
        "this program carries no support session: download it again from the support portal \
         (or pass --server, --ca-fingerprint and --ticket)"
    )]
    NoSession,
    /// The trailer (or a flag) is not valid.
    #[error("invalid support session data: {0}")]
    BadSession(String),
    /// Reading this executable failed.
    #[error("reading this program: {0}")]
    Io(#[from] std::io::Error),
    /// The window could not be shown: without it nobody can consent.
    #[error("cannot show the support window: {0}")]
    Window(String),
    /// The gateway refused the client (an expired or used ticket...).
    #[error("the support site refused the connection: {}", .0.message)]
    Refused(Reject),
    /// No connection could be made (or re-made in time).
    #[error("cannot reach the support site: {0}")]
    Connection(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not generate the session key")]
    KeyGeneration,
}

/// How to run the client.
#[derive(Clone, Debug)]
pub struct AssistOptions {
    /// Where to dial (`https://host[:port]`).
    pub server: ServerUrl,
    /// The site CA certificate's fingerprint, pinned.
    pub fingerprint: Fingerprint,
    /// The single-use ticket of the first connection.
    pub ticket: String,
    /// The site's name, for the window until the welcome names it.
    pub site: String,
    /// The window child: program and arguments. `None`: this executable
    /// with `assist ui`.
    pub ui_command: Option<(PathBuf, Vec<String>)>,
    /// Extra environment of the window child (tests).
    pub ui_env: Vec<(String, String)>,
    /// The downloaded file to remove at exit (`None`: nothing, as with
    /// `--keep` or the development flags).
    pub remove_on_exit: Option<PathBuf>,
    /// How long a lost connection is retried before the session is over.
    pub reconnect_grace: Duration,
    /// First reconnect delay (doubles, capped at 10 s).
    pub min_backoff: Duration,
    /// Session handler settings (the display is the client's own
    /// `DISPLAY`/`XAUTHORITY`).
    pub sessions: crate::sessions::SessionContext,
}

impl AssistOptions {
    /// Options for dialling `server` with `ticket`, pinning `fingerprint`.
    pub fn new(server: ServerUrl, fingerprint: Fingerprint, ticket: String) -> Self {
        let mut sessions = crate::sessions::SessionContext::default();
        // The customer's own display, never one found elsewhere.
        sessions.desktop.display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
        sessions.desktop.xauthority = std::env::var_os("XAUTHORITY")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from);
        Self {
            site: server.host.clone(),
            server,
            fingerprint,
            ticket,
            ui_command: None,
            ui_env: Vec::new(),
            remove_on_exit: None,
            reconnect_grace: Duration::from_secs(120),
            min_backoff: Duration::from_millis(500),
            sessions,
        }
    }

    /// From the download's trailer.
    ///
    /// # Errors
    /// The trailer's URL or fingerprint is invalid.
    pub fn from_trailer(t: &Trailer) -> Result<Self, AssistError> {
        let server = t
            .url
            .parse()
            .map_err(|e: dial::UrlError| AssistError::BadSession(e.to_string()))?;
        let fingerprint = t
            .fingerprint
            .parse()
            .map_err(|e: tls::FingerprintParseError| AssistError::BadSession(e.to_string()))?;
        let mut o = Self::new(server, fingerprint, t.ticket.clone());
        if !t.site.is_empty() {
            o.site.clone_from(&t.site);
        }
        Ok(o)
    }
}

/// What `jumpgate assist` was given on its command line.
#[derive(Clone, Debug, Default)]
pub struct AssistFlags {
    pub server: Option<String>,
    pub ca_fingerprint: Option<String>,
    pub ticket: Option<String>,
    /// Keep the downloaded file at exit.
    pub keep: bool,
}

/// The options of this run: the trailer of this executable when it has
/// one (its file then removed at exit unless `keep`), else the flags.
///
/// # Errors
/// Neither a trailer nor all three flags, or invalid values.
pub fn options(flags: &AssistFlags) -> Result<AssistOptions, AssistError> {
    if let (Some(server), Some(fp), Some(ticket)) =
        (&flags.server, &flags.ca_fingerprint, &flags.ticket)
    {
        let server = server
            .parse()
            .map_err(|e: dial::UrlError| AssistError::BadSession(format!("--server: {e}")))?;
        let fp = fp.parse().map_err(|e: tls::FingerprintParseError| {
            AssistError::BadSession(format!("--ca-fingerprint: {e}"))
        })?;
        return Ok(AssistOptions::new(server, fp, ticket.clone()));
    }
    let Some((t, exe)) = trailer::read_own()? else {
        return Err(AssistError::NoSession);
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if t.expires_at_ms > 0 && t.expires_at_ms < now_ms {
        tracing::warn!("this download's ticket has expired; the site will likely refuse it");
    }
    let mut o = AssistOptions::from_trailer(&t)?;
    if !flags.keep {
        o.remove_on_exit = Some(exe);
    }
    Ok(o)
}

/// Runs the support session to its end: the window, the connection
/// (reconnecting for the grace period), the rating; then cleans up.
///
/// # Errors
/// See [`AssistError`]. Cleanup (child processes, the downloaded file)
/// happens in every case.
pub async fn run(opts: AssistOptions, shutdown: CancellationToken) -> Result<(), AssistError> {
    if rustix::process::geteuid().is_root() {
        tracing::warn!(
            "running as root: a technician you allow would act as root; run it as yourself"
        );
    }
    let result = conn::run(&opts, &shutdown).await;
    if let Some(path) = &opts.remove_on_exit {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed the support program"),
            Err(e) => {
                tracing::warn!(path = %path.display(), "could not remove the support program: {e}")
            }
        }
    }
    result
}

/// Completes once `right` is no longer granted.
pub(crate) async fn until_revoked(rights: &mut watch::Receiver<GrantState>, right: Right) {
    loop {
        if !rights.borrow_and_update().rights.contains(right) {
            return;
        }
        if rights.changed().await.is_err() {
            return;
        }
    }
}

/// The customer's home directory (`$HOME`), where file transfers stay.
pub(crate) fn home_dir() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME")?);
    (home.is_absolute() && home.is_dir()).then_some(home)
}

/// The window child's body (`jumpgate assist ui`): JSON lines on
/// stdin/stdout until EOF.
///
/// # Errors
/// Reading stdin failed.
pub fn run_ui() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    jumpgate_consent::assist_child::run_assist_child(stdin, std::io::stdout())
}

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
