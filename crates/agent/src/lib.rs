//! The Jumpgate endpoint agent.
//!
//! It only ever dials out: one TLS connection to the gateway (directly or
//! through an HTTP proxy), kept open with heartbeats and re-established with
//! exponential backoff and jitter. The gateway opens one multiplexed stream
//! per technician session, and system streams of its own (agent facts);
//! [`dispatch`] routes each by its purpose.
//!
//! # Layout
//! - [`state`]: the enrolled identity and Ed25519 key in the state directory.
//! - this file: enrollment, the connect/handshake/serve loop, backoff.
//! - `dispatch`: control messages, and each stream to its handler by purpose.
//! - [`sessions`]: shell, exec, file transfer and forwarding handlers.
//! - [`system`]: system stream handlers, one per topic.
//! - [`assist`]: `jumpgate assist`, the customer's client of attended
//!   support (no enrollment: a ticket, rights the customer grants).
//! - [`install`]: `jumpgate agent install`, this program as a systemd
//!   service, enrolled (attended support's "pin as unattended").
//! - [`epm`]: endpoint privilege management (policies, the elevation
//!   socket, `jumpgate elevate`, the event journal).
//! - [`packages`]: the Package Manager (assigned packages fetched from
//!   blob storage, verified, installed with dpkg; the inventory).

pub mod assist;
mod dispatch;
pub mod epm;
pub mod install;
pub mod packages;
pub mod sessions;
pub mod state;
pub mod system;
pub(crate) mod target;

/// A jump point's list of destinations (`--jump-point-allow`).
pub use jumpgate_net::allow::AllowList;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use bytes::BytesMut;
use jumpgate_api_types as api;
use jumpgate_client::{Client, ClientError};
use jumpgate_net::dial::{self, HttpProxy, ServerUrl};
use jumpgate_net::handshake::{self, ControlReadError};
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::{
    self, AGENT_ALPN, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN, AgentInfo, Control, Hello, Reject,
    Welcome, go_away_code,
};
use jumpgate_proto::mux::Role;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::state::{Identity, StateDir};

/// Why the agent stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("state file {path}: {cause}")]
    State { path: String, cause: std::io::Error },
    #[error("state file {path} is corrupt ({reason}); remove the state directory and enroll again")]
    Corrupt { path: String, reason: String },
    #[error("could not generate the agent key")]
    KeyGeneration,
    #[error("this agent is not enrolled yet: pass --enroll-token (and --server)")]
    NotEnrolled,
    #[error("--reenroll needs the re-enrollment token (--enroll-token or JUMPGATE_ENROLL_TOKEN)")]
    NoReenrollToken,
    #[error("--server is required")]
    NoServer,
    #[error("invalid saved server URL: {0}")]
    BadUrl(#[from] dial::UrlError),
    #[error("invalid saved fingerprint: {0}")]
    BadFingerprint(#[from] tls::FingerprintParseError),
    #[error("enrollment failed: {0}")]
    Enroll(ClientError),
    #[error("the gateway refused this agent: {}", .0.message)]
    Refused(Reject),
    #[error("this endpoint was revoked by an administrator")]
    Revoked,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("connection to the gateway failed: {0}")]
    Connection(String),
    #[error(transparent)]
    Epm(#[from] epm::EpmError),
    #[error(transparent)]
    Packages(#[from] packages::PackagesError),
}

/// How to run the agent (from flags).
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub server: Option<ServerUrl>,
    pub ca_fingerprint: Option<tls::Fingerprint>,
    pub proxy: Option<HttpProxy>,
    pub state_dir: std::path::PathBuf,
    pub name: Option<String>,
    pub enroll_token: Option<String>,
    /// Already enrolled: use `enroll_token` (a re-enrollment token from
    /// `jg admin endpoints reenroll`) to give this endpoint a new key.
    pub reenroll: bool,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub sessions: sessions::SessionContext,
    pub system: system::SystemOptions,
    pub epm: epm::EpmOptions,
    pub packages: packages::PackageOptions,
}

impl AgentOptions {
    pub fn new(state_dir: std::path::PathBuf) -> Self {
        Self {
            server: None,
            ca_fingerprint: None,
            proxy: None,
            state_dir,
            name: None,
            enroll_token: None,
            reenroll: false,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            sessions: sessions::SessionContext::default(),
            system: system::SystemOptions::default(),
            epm: epm::EpmOptions::default(),
            packages: packages::PackageOptions::default(),
        }
    }
}

/// Details of this machine reported to the gateway.
pub fn agent_info() -> AgentInfo {
    let uname = rustix::system::uname();
    AgentInfo {
        hostname: uname.nodename().to_string_lossy().into_owned(),
        os: os_name(),
        arch: std::env::consts::ARCH.to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn os_name() -> String {
    // Distribution name where the OS says it, else the kernel family.
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

fn details(info: &AgentInfo) -> api::EndpointDetails {
    api::EndpointDetails {
        hostname: info.hostname.clone(),
        os: info.os.clone(),
        arch: info.arch.clone(),
        agent_version: info.agent_version.clone(),
    }
}

/// Enrolls if needed, then stays connected until `shutdown` is cancelled or
/// the gateway refuses this agent for good.
///
/// # Errors
/// Enrollment failure, a permanent refusal (revoked, unknown), bad state.
pub async fn run(opts: AgentOptions, shutdown: CancellationToken) -> Result<(), AgentError> {
    let dir = StateDir::open(&opts.state_dir)?;
    let (identity, key) = match dir.load()? {
        Some((identity, key))
            if opts.reenroll
                && identity.reenrolled_with.is_some()
                && identity.reenrolled_with == opts.enroll_token.as_deref().map(token_digest) =>
        {
            tracing::info!(endpoint = %identity.endpoint, "already re-enrolled with this token");
            (identity, key)
        }
        Some((identity, _)) if opts.reenroll => reenroll(&opts, &dir, &identity).await?,
        Some((identity, key)) => {
            if opts.enroll_token.is_some() {
                tracing::info!(endpoint = %identity.endpoint, "already enrolled; ignoring --enroll-token");
            }
            (identity, key)
        }
        None => enroll(&opts, &dir).await?,
    };
    let server: ServerUrl = match &opts.server {
        Some(s) => s.clone(),
        None => identity.server.parse()?,
    };
    let trust = match (&opts.ca_fingerprint, &identity.ca_fingerprint) {
        (Some(fp), _) => Trust::Pinned(*fp),
        (None, Some(saved)) => Trust::Pinned(saved.parse()?),
        (None, None) => Trust::SystemRoots,
    };
    let tls_config = tls::client_config(&trust, &[AGENT_ALPN])?;
    let epm = start_epm(&opts, &server, &trust, &shutdown)?;
    let packages = packages::Packages::open(
        &opts.state_dir,
        opts.packages.clone(),
        epm::fetch::Fetcher {
            gateway: Some(epm::fetch::Gateway {
                server: server.clone(),
                tls: tls::client_config(&trust, &[b"http/1.1"])?,
                proxy: opts.proxy.clone(),
            }),
            blob_tls: epm::fetch::blob_tls(opts.epm.blob_ca.as_deref())
                .map_err(epm::EpmError::from)?,
            timeout: opts.packages.fetch_timeout,
        },
    )?;
    let mut opts = opts;
    opts.system.epm = Some(Arc::clone(&epm));
    opts.system.packages = Some(packages);
    let key = Arc::new(key);
    let mut backoff = Backoff::new(opts.min_backoff, opts.max_backoff);
    let span = tracing::info_span!("agent", endpoint = %identity.endpoint);
    async {
        loop {
            let attempt = connect_and_serve(
                &opts,
                &server,
                Arc::clone(&tls_config),
                &identity,
                &key,
                &shutdown,
            );
            match attempt.await {
                Ok(Ended::Shutdown) => return Ok(()),
                Ok(Ended::Lost { was_welcomed }) => {
                    if was_welcomed {
                        backoff.reset();
                    }
                }
                Ok(Ended::Conflict(reason)) => {
                    tracing::error!(
                        %reason,
                        "refused: another agent with this identity is connected; retrying slowly"
                    );
                    backoff.raise_to(CONFLICT_BACKOFF);
                }
                Err(e @ (AgentError::Revoked | AgentError::Refused(_))) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "connection attempt failed"),
            }
            let delay = backoff.next_delay();
            tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// Opens EPM's state and starts the elevation service (root only): both
/// work with the gateway unreachable.
fn start_epm(
    opts: &AgentOptions,
    server: &ServerUrl,
    trust: &Trust,
    shutdown: &CancellationToken,
) -> Result<Arc<epm::Epm>, AgentError> {
    let epm = epm::Epm::open(&opts.state_dir, opts.epm.clone())?;
    epm.set_gateway(epm::fetch::Gateway {
        server: server.clone(),
        tls: tls::client_config(trust, &[b"http/1.1"])?,
        proxy: opts.proxy.clone(),
    });
    match &opts.epm.socket {
        None => tracing::info!("elevation service off (no socket)"),
        Some(_) if !rustix::process::geteuid().is_root() => {
            tracing::info!("elevation service off: the agent does not run as root");
        }
        Some(path) => match epm::service::bind(path) {
            Ok(listener) => {
                tracing::info!(socket = %path.display(), version = ?epm.version(), "elevation service listening");
                tokio::spawn(epm::service::serve(
                    Arc::clone(&epm),
                    listener,
                    shutdown.clone(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "elevation service off"),
        },
    }
    Ok(epm)
}

async fn enroll(
    opts: &AgentOptions,
    dir: &StateDir,
) -> Result<(Identity, Ed25519KeyPair), AgentError> {
    let token = opts
        .enroll_token
        .as_deref()
        .ok_or(AgentError::NotEnrolled)?;
    let server = opts.server.clone().ok_or(AgentError::NoServer)?;
    let trust = opts
        .ca_fingerprint
        .map_or(Trust::SystemRoots, Trust::Pinned);
    let client =
        Client::new(server.clone(), &trust, opts.proxy.clone()).map_err(AgentError::Enroll)?;
    let key = dir.pending_key()?;
    let info = agent_info();
    let name = opts.name.clone().unwrap_or_else(|| info.hostname.clone());
    let res = client
        .enroll(&api::EnrollRequest {
            token: token.to_owned(),
            name,
            public_key: state::public_key_b64(&key),
            details: details(&info),
        })
        .await
        .map_err(AgentError::Enroll)?;
    let identity = Identity {
        agent_id: res.agent_id,
        endpoint: res.endpoint,
        group: res.group,
        server: server.to_string(),
        ca_fingerprint: opts.ca_fingerprint.map(|f| f.to_string()),
        reenrolled_with: None,
    };
    dir.save(&identity)?;
    tracing::info!(endpoint = %identity.endpoint, group = %identity.group, "enrolled");
    Ok((identity, key))
}

/// SHA-256 of a token, hex: what the state keeps of a used token.
fn token_digest(token: &str) -> String {
    jumpgate_net::digest::sha256_hex(token.as_bytes())
}

/// Gives this enrolled endpoint a new key with a re-enrollment token: the
/// new key is kept apart until the gateway accepted it, then replaces the
/// old one (which the gateway refuses from then on).
async fn reenroll(
    opts: &AgentOptions,
    dir: &StateDir,
    identity: &Identity,
) -> Result<(Identity, Ed25519KeyPair), AgentError> {
    let token = opts
        .enroll_token
        .as_deref()
        .ok_or(AgentError::NoReenrollToken)?;
    let server = match &opts.server {
        Some(s) => s.clone(),
        None => identity.server.parse()?,
    };
    let fingerprint = match (&opts.ca_fingerprint, &identity.ca_fingerprint) {
        (Some(fp), _) => Some(*fp),
        (None, Some(saved)) => Some(saved.parse()?),
        (None, None) => None,
    };
    let trust = fingerprint.map_or(Trust::SystemRoots, Trust::Pinned);
    let client =
        Client::new(server.clone(), &trust, opts.proxy.clone()).map_err(AgentError::Enroll)?;
    let key = dir.replacement_key()?;
    let res = client
        .enroll(&api::EnrollRequest {
            token: token.to_owned(),
            name: identity.endpoint.clone(),
            public_key: state::public_key_b64(&key),
            details: details(&agent_info()),
        })
        .await
        .map_err(AgentError::Enroll)?;
    dir.adopt_replacement_key()?;
    let identity = Identity {
        agent_id: res.agent_id,
        endpoint: res.endpoint,
        group: res.group,
        server: server.to_string(),
        ca_fingerprint: fingerprint.map(|f| f.to_string()),
        reenrolled_with: Some(token_digest(token)),
    };
    dir.save(&identity)?;
    tracing::warn!(
        endpoint = %identity.endpoint,
        "re-enrolled with a new key; the old key no longer works (remove --reenroll and the token)"
    );
    Ok((identity, key))
}

enum Ended {
    Shutdown,
    Lost {
        was_welcomed: bool,
    },
    /// Refused because another agent with this identity is connected.
    Conflict(String),
}

/// Least wait before retrying after a conflict refusal (capped by the
/// maximum backoff): a copy of an agent must not hammer the gateway, which
/// audits every refusal.
const CONFLICT_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Proto(#[from] jumpgate_proto::ProtoError),
    #[error("unexpected answer to hello")]
    Unexpected,
}

impl From<ConnectError> for AgentError {
    fn from(e: ConnectError) -> Self {
        Self::Connection(e.to_string())
    }
}

async fn connect_and_serve(
    opts: &AgentOptions,
    server: &ServerUrl,
    tls_config: Arc<rustls::ClientConfig>,
    identity: &Identity,
    key: &Ed25519KeyPair,
    shutdown: &CancellationToken,
) -> Result<Ended, AgentError> {
    let connect = async {
        let mut tls = dial::connect_tls(server, tls_config, opts.proxy.as_ref()).await?;
        let exporter = tls
            .get_ref()
            .1
            .export_keying_material([0u8; AUTH_EXPORTER_LEN], AUTH_EXPORTER_LABEL, None)
            .map_err(std::io::Error::other)?;
        let sig = key.sign(&control::auth_message(&identity.agent_id, &exporter));
        let hello = Control::Hello(Hello {
            versions: control::SUPPORTED_VERSIONS.to_vec(),
            agent_id: identity.agent_id.clone(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            info: agent_info(),
        });
        handshake::write_control(&mut tls, &hello).await?;
        let mut buf = BytesMut::new();
        let answer = match handshake::read_control_frame(&mut tls, &mut buf).await {
            Ok(answer) => answer,
            Err(ControlReadError::Io(e)) => return Err(e.into()),
            Err(ControlReadError::Frame(e) | ControlReadError::Message(e)) => {
                return Err(e.into());
            }
            Err(ControlReadError::NotControl | ControlReadError::TooLarge) => {
                return Err(ConnectError::Unexpected);
            }
        };
        Ok((tls, answer, buf))
    };
    let (tls, answer, leftover) = tokio::select! {
        () = shutdown.cancelled() => return Ok(Ended::Shutdown),
        r = tokio::time::timeout(dial::CONNECT_TIMEOUT, connect) => match r {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(ConnectError::Io(std::io::ErrorKind::TimedOut.into()).into()),
        },
    };
    let welcome: Welcome = match answer {
        Control::Welcome(w) => w,
        Control::Reject(r) if r.code.is_permanent() => {
            if r.code == control::RejectCode::Revoked {
                return Err(AgentError::Revoked);
            }
            return Err(AgentError::Refused(r));
        }
        Control::Reject(r) if r.code == control::RejectCode::Conflict => {
            return Ok(Ended::Conflict(r.message));
        }
        Control::Reject(r) => {
            tracing::warn!(reason = %r.message, "gateway refused the connection for now");
            return Ok(Ended::Lost {
                was_welcomed: false,
            });
        }
        _ => return Err(ConnectError::Unexpected.into()),
    };
    let heartbeat = Duration::from_secs(u64::from(welcome.heartbeat_secs.clamp(1, 300)));
    let cfg = DriverConfig {
        ping_interval: Some(heartbeat),
        idle_timeout: heartbeat * 3,
        ..DriverConfig::default()
    };
    let (handle, mut events, driver) =
        mux::start(tls, Role::Agent, &leftover, cfg).map_err(ConnectError::from)?;
    tracing::info!(server = %server, version = welcome.version, "connected");
    let driver = tokio::spawn(driver);
    if let Some(epm) = &opts.system.epm {
        tokio::spawn(
            Arc::clone(epm)
                .send_events(handle.clone())
                .in_current_span(),
        );
    }
    if let Some(p) = &opts.system.packages {
        tokio::spawn(Arc::clone(p).watch(handle.clone()).in_current_span());
    }
    let dispatch = dispatch::Dispatcher::new(opts.sessions.clone(), opts.system.clone());
    let mut revoked = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                handle.close(go_away_code::AGENT_STOPPING, "agent stopping");
            }
            ev = events.recv() => match ev {
                None => break,
                Some(MuxEvent::Stream(stream)) => dispatch.stream(stream),
                Some(MuxEvent::GoAway { code, reason }) => {
                    tracing::info!(code, %reason, "gateway is closing the connection");
                    revoked |= code == go_away_code::REVOKED;
                }
                Some(MuxEvent::Control(msg)) => dispatch.control(msg),
            },
        }
    }
    match driver.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::info!(reason = %e, "connection lost"),
        Err(e) => tracing::warn!(error = %e, "connection task failed"),
    }
    if revoked {
        return Err(AgentError::Revoked);
    }
    if stopping {
        return Ok(Ended::Shutdown);
    }
    Ok(Ended::Lost { was_welcomed: true })
}

/// Exponential backoff with full jitter (AWS architecture blog's "full
/// jitter"): thousands of agents reconnecting after a gateway restart spread
/// out instead of arriving in waves. Public so that the benchmark's
/// simulated agents reconnect exactly like real ones.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            attempt: 0,
        }
    }

    /// After a connection was welcomed: start again from `min`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Raises the ceiling to at least `floor` (never past the maximum).
    fn raise_to(&mut self, floor: Duration) {
        while self.ceiling() < floor.min(self.max) && self.attempt < 16 {
            self.attempt += 1;
        }
    }

    fn ceiling(&self) -> Duration {
        self.min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max)
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let mut r = [0u8; 4];
        let _ = aws_lc_rs::rand::fill(&mut r);
        let frac = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        // At least half the ceiling, so a reconnect never becomes a busy loop.
        ceiling.mul_f64(0.5 + frac / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays[3] >= Duration::from_secs(4) && delays[3] <= Duration::from_secs(8));
        for d in &delays[8..] {
            assert!(
                *d >= Duration::from_secs(30) && *d <= Duration::from_secs(60),
                "{d:?}"
            );
        }
        // Jitter: not all equal at the cap.
        assert!(delays[8..].windows(2).any(|w| w[0] != w[1]));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        // After a conflict: at least half of 30 s, and on from there.
        b.reset();
        b.raise_to(CONFLICT_BACKOFF);
        let d = b.next_delay();
        assert!(
            d >= Duration::from_secs(16) && d <= Duration::from_secs(32),
            "{d:?}"
        );
        // Never past the maximum.
        let mut small = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        small.raise_to(CONFLICT_BACKOFF);
        assert!(small.next_delay() <= Duration::from_secs(2));
    }
}
