//! The connection to the site: the window child, the handshake with the
//! in-memory key, serving the connection, and reconnecting within the
//! grace period.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use bytes::BytesMut;
use jumpgate_consent::assist_child::ToAssistUi;
use jumpgate_net::dial;
use jumpgate_net::handshake::{self, ControlReadError};
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::assist::AssistMsg;
use jumpgate_proto::control::{
    self, AGENT_ALPN, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN, AssistHello, AssistWelcome, Control,
    RejectCode, go_away_code,
};
use jumpgate_proto::mux::Role;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::desk::{Desk, Step};
use super::grants::AssistGrants;
use super::ui::{UiChild, UiLink};
use super::{AssistError, AssistOptions};

/// Longest wait between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How one connection attempt ended.
enum Attempt {
    /// Welcomed, served, then the step the desk ended with.
    Served(Step),
    /// Refused for good (shown in the window by the caller).
    Refused(control::Reject),
    /// Not connected (network, TLS, a refusal for now).
    Failed(String),
}

/// The whole run: window, connections, end.
pub(super) async fn run(
    opts: &AssistOptions,
    shutdown: &CancellationToken,
) -> Result<(), AssistError> {
    let (program, args) = match &opts.ui_command {
        Some((p, a)) => (p.clone(), a.clone()),
        None => (
            std::env::current_exe()?,
            vec!["assist".to_owned(), "ui".to_owned()],
        ),
    };
    let (child, mut ui) = UiChild::spawn(program, &args, &opts.ui_env).await?;
    let result = serve(opts, &mut ui, shutdown).await;
    // EOF on the child's stdin takes the window down.
    drop(ui);
    child.close().await;
    result
}

async fn serve(
    opts: &AssistOptions,
    ui: &mut UiLink,
    shutdown: &CancellationToken,
) -> Result<(), AssistError> {
    ui.show(ToAssistUi::Setup {
        site: opts.site.clone(),
        server: opts.server.to_string(),
    })
    .await;
    ui.show(ToAssistUi::Status {
        text: "Connecting…".to_owned(),
        connected: false,
    })
    .await;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AssistError::KeyGeneration)?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| AssistError::KeyGeneration)?;
    drop(pkcs8);
    let tls_config = tls::client_config(&Trust::Pinned(opts.fingerprint), &[AGENT_ALPN])?;
    let grants = AssistGrants::default();
    let mut sessions = opts.sessions.clone();
    sessions.assist = Some(grants.clone());
    let mut desk = Desk::new(grants);
    ui.show(desk.switches()).await;
    let mut support_id: Option<String> = None;
    let mut lost_since: Option<Instant> = None;
    let mut delay = opts.min_backoff;
    loop {
        let attempt = attempt(
            opts,
            &tls_config,
            &key,
            &mut support_id,
            &sessions,
            &mut desk,
            ui,
            shutdown,
        )
        .await;
        match attempt {
            Attempt::Served(Step::Finished | Step::Shutdown) => return Ok(()),
            Attempt::Served(Step::Lost) => {
                lost_since = Some(Instant::now());
                delay = opts.min_backoff;
            }
            Attempt::Refused(r) => {
                warn!(code = ?r.code, reason = %r.message, "refused by the support site");
                let reason = if r.code == RejectCode::InvalidTicket {
                    format!(
                        "The support site did not accept this session ({}). Ask your technician for a new link.",
                        r.message
                    )
                } else {
                    format!("The support site refused the connection: {}", r.message)
                };
                desk.finish(&reason, false, None, ui).await;
                return Err(AssistError::Refused(r));
            }
            Attempt::Failed(e) => {
                warn!(error = %e, "connection attempt failed");
                let since = *lost_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.reconnect_grace {
                    let reason = "The connection to the support site was lost.";
                    desk.finish(reason, false, None, ui).await;
                    return Err(AssistError::Connection(e));
                }
                ui.show(ToAssistUi::Status {
                    text: "Cannot reach the support site, retrying…".to_owned(),
                    connected: false,
                })
                .await;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
            // The customer may give up while it reconnects.
            event = ui.rx.recv() => {
                if matches!(event, None | Some(jumpgate_consent::assist_child::FromAssistUi::End)) {
                    desk.finish("You ended the session.", false, None, ui).await;
                    return Ok(());
                }
            }
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// One connection: handshake, then serve it until the desk returns.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    opts: &AssistOptions,
    tls_config: &Arc<rustls::ClientConfig>,
    key: &Ed25519KeyPair,
    support_id: &mut Option<String>,
    sessions: &crate::sessions::SessionContext,
    desk: &mut Desk,
    ui: &mut UiLink,
    shutdown: &CancellationToken,
) -> Attempt {
    // The support id replaces the ticket once welcomed.
    let reconnecting = support_id.clone();
    let connect = async {
        let mut tls = dial::connect_tls(&opts.server, Arc::clone(tls_config), None)
            .await
            .map_err(|e| e.to_string())?;
        let exporter = tls
            .get_ref()
            .1
            .export_keying_material([0u8; AUTH_EXPORTER_LEN], AUTH_EXPORTER_LABEL, None)
            .map_err(|e| e.to_string())?;
        let public = key.public_key().as_ref().to_vec();
        let sig = key.sign(&control::assist_auth_message(&public, &exporter));
        let b64 = base64::engine::general_purpose::STANDARD;
        let hello = Control::AssistHello(AssistHello {
            versions: control::SUPPORTED_VERSIONS.to_vec(),
            ticket: reconnecting.is_none().then(|| opts.ticket.clone()),
            support_id: reconnecting.clone(),
            public_key: b64.encode(&public),
            signature: b64.encode(sig.as_ref()),
            info: crate::agent_info(),
        });
        handshake::write_control(&mut tls, &hello)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = BytesMut::new();
        let answer = handshake::read_control_frame(&mut tls, &mut buf)
            .await
            .map_err(|e| match e {
                ControlReadError::Io(e) => e.to_string(),
                ControlReadError::Frame(e) | ControlReadError::Message(e) => e.to_string(),
                ControlReadError::NotControl | ControlReadError::TooLarge => {
                    "unexpected answer to hello".to_owned()
                }
            })?;
        Ok::<_, String>((tls, answer, buf))
    };
    let (tls, answer, leftover) = tokio::select! {
        () = shutdown.cancelled() => return Attempt::Served(Step::Shutdown),
        r = tokio::time::timeout(dial::CONNECT_TIMEOUT, connect) => match r {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Attempt::Failed(e),
            Err(_) => return Attempt::Failed("timed out".to_owned()),
        },
    };
    let welcome: AssistWelcome = match answer {
        Control::AssistWelcome(w) => w,
        Control::Reject(r) if r.code.is_permanent() => return Attempt::Refused(r),
        Control::Reject(r) => return Attempt::Failed(r.message),
        _ => return Attempt::Failed("unexpected answer to hello".to_owned()),
    };
    info!(
        support_id = %welcome.support_id,
        site = %welcome.site,
        queue = %welcome.queue,
        "connected to the support site"
    );
    *support_id = Some(welcome.support_id.clone());
    serve_connection(tls, &leftover, welcome, sessions, desk, ui, shutdown).await
}

async fn serve_connection<T>(
    tls: T,
    leftover: &[u8],
    welcome: AssistWelcome,
    sessions: &crate::sessions::SessionContext,
    desk: &mut Desk,
    ui: &mut UiLink,
    shutdown: &CancellationToken,
) -> Attempt
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let heartbeat = Duration::from_secs(u64::from(welcome.heartbeat_secs.clamp(1, 300)));
    let cfg = DriverConfig {
        ping_interval: Some(heartbeat),
        idle_timeout: heartbeat * 3,
        ..DriverConfig::default()
    };
    let (handle, mut events, driver) = match mux::start(tls, Role::Agent, leftover, cfg) {
        Ok(v) => v,
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    let driver = tokio::spawn(driver);
    if !welcome.site.is_empty() {
        ui.show(ToAssistUi::Setup {
            site: welcome.site.clone(),
            server: String::new(),
        })
        .await;
    }
    // Streams go to the agent's dispatcher (gated by the grants), stream
    // 0's attended-support messages to the desk.
    let dispatch = crate::dispatch::Dispatcher::for_assist(sessions.clone());
    let (gw_tx, mut gw_rx) = mpsc::channel::<AssistMsg>(64);
    let pump = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                MuxEvent::Stream(stream) => dispatch.stream(stream),
                MuxEvent::Control(Control::Assist(msg)) => {
                    if let Err(e) = msg.check() {
                        warn!("invalid attended-support message: {e}");
                        continue;
                    }
                    if gw_tx.send(msg).await.is_err() {
                        return;
                    }
                }
                MuxEvent::Control(other) => tracing::debug!(?other, "ignoring control message"),
                MuxEvent::GoAway { code, reason } => {
                    info!(code, %reason, "the site is closing the connection");
                }
            }
        }
    });
    let sender = handle.clone();
    let send = move |msg: AssistMsg| sender.send_control(&Control::Assist(msg));
    let step = desk.serve(&mut gw_rx, &send, ui, shutdown).await;
    if step != Step::Lost {
        handle.close(go_away_code::AGENT_STOPPING, "the support session ended");
    }
    drop(gw_rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    pump.abort();
    Attempt::Served(step)
}
