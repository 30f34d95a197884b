//! A customer's client at the protocol level (`SimCustomer`): real TLS to
//! the gateway with the agent ALPN and the pinned site fingerprint, the
//! real `AssistHello` with an ephemeral Ed25519 key, then the multiplexed
//! connection, exchanging `AssistMsg`s on stream 0. No window and no
//! sessions: the gateway's side of attended support is tested (and the
//! queue benchmarked with hundreds of customers) without an X display per
//! customer. The product's client (`jumpgate assist`) is tested on its own
//! and end to end.

use std::time::Duration;

use base64::Engine;
use jumpgate_net::dial::{self, ServerUrl};
use jumpgate_net::handshake;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent, MuxHandle};
use jumpgate_net::tls::{self, Fingerprint, Trust};
use jumpgate_proto::assist::AssistMsg;
use jumpgate_proto::control::{self, AGENT_ALPN, AssistHello, AssistWelcome, Control};
use jumpgate_proto::mux::{Role, reset_code};
use tokio::sync::mpsc;

/// One simulated customer's client, connected.
pub struct SimCustomer {
    pub welcome: AssistWelcome,
    handle: MuxHandle,
    inbox: mpsc::UnboundedReceiver<AssistMsg>,
    key: aws_lc_rs::signature::Ed25519KeyPair,
    url: ServerUrl,
    fingerprint: Fingerprint,
}

/// Why a connection failed: the gateway's refusal (its message), or the
/// transport.
#[derive(Debug)]
pub enum SimError {
    Rejected(control::Reject),
    Other(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(r) => write!(f, "rejected ({:?}): {}", r.code, r.message),
            Self::Other(e) => f.write_str(e),
        }
    }
}

fn new_key() -> aws_lc_rs::signature::Ed25519KeyPair {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
}

impl std::fmt::Debug for SimCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCustomer")
            .field("support_id", &self.welcome.support_id)
            .finish_non_exhaustive()
    }
}

impl SimCustomer {
    /// Connects with the download's `ticket`.
    ///
    /// # Errors
    /// Refused, or the connection failed.
    pub async fn connect(url: &str, fingerprint: &str, ticket: &str) -> Result<Self, SimError> {
        Self::dial(url, fingerprint, new_key(), Some(ticket), None).await
    }

    /// Connects again as the same client (same key), naming its session.
    ///
    /// # Errors
    /// Refused, or the connection failed.
    pub async fn reconnect(self) -> Result<Self, SimError> {
        let Self {
            key,
            url,
            fingerprint,
            welcome,
            handle,
            ..
        } = self;
        handle.close(0, "reconnecting");
        Self::dial(
            &url.to_string(),
            &fingerprint.to_string(),
            key,
            None,
            Some(&welcome.support_id),
        )
        .await
    }

    async fn dial(
        url: &str,
        fingerprint: &str,
        key: aws_lc_rs::signature::Ed25519KeyPair,
        ticket: Option<&str>,
        support_id: Option<&str>,
    ) -> Result<Self, SimError> {
        use aws_lc_rs::signature::KeyPair;
        let other = |e: &dyn std::fmt::Display| SimError::Other(e.to_string());
        let server: ServerUrl = url.parse().map_err(|e| other(&e))?;
        let fp: Fingerprint = fingerprint.parse().map_err(|e| other(&e))?;
        let cfg = tls::client_config(&Trust::Pinned(fp), &[AGENT_ALPN]).map_err(|e| other(&e))?;
        let mut t = dial::connect_tls(&server, cfg, None)
            .await
            .map_err(|e| other(&e))?;
        let exporter = t
            .get_ref()
            .1
            .export_keying_material(
                [0u8; control::AUTH_EXPORTER_LEN],
                control::AUTH_EXPORTER_LABEL,
                None,
            )
            .map_err(|e| other(&e))?;
        let public = key.public_key().as_ref().to_vec();
        let sig = key.sign(&control::assist_auth_message(&public, &exporter));
        let b64 = base64::engine::general_purpose::STANDARD;
        let hello = Control::AssistHello(AssistHello {
            versions: control::SUPPORTED_VERSIONS.to_vec(),
            ticket: ticket.map(str::to_owned),
            support_id: support_id.map(str::to_owned),
            public_key: b64.encode(&public),
            signature: b64.encode(sig.as_ref()),
            info: control::AgentInfo {
                hostname: "customer-pc".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                agent_version: "sim".into(),
            },
        });
        handshake::write_control(&mut t, &hello)
            .await
            .map_err(|e| other(&e))?;
        let mut buf = bytes::BytesMut::new();
        let welcome = match handshake::read_control_frame(&mut t, &mut buf).await {
            Ok(Control::AssistWelcome(w)) => w,
            Ok(Control::Reject(r)) => return Err(SimError::Rejected(r)),
            Ok(other) => return Err(SimError::Other(format!("unexpected answer {other:?}"))),
            Err(e) => return Err(SimError::Other(format!("answer: {e:?}"))),
        };
        let cfg = DriverConfig {
            ping_interval: Some(Duration::from_secs(u64::from(
                welcome.heartbeat_secs.clamp(1, 300),
            ))),
            ..DriverConfig::default()
        };
        let (handle, mut events, driver) =
            mux::start(t, Role::Agent, &buf, cfg).map_err(|e| other(&e))?;
        tokio::spawn(driver);
        let (tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    // Nobody reading any more is not an error.
                    MuxEvent::Control(Control::Assist(m)) => drop(tx.send(m)),
                    MuxEvent::Stream(s) => s.reset(reset_code::REFUSED),
                    _ => {}
                }
            }
        });
        Ok(Self {
            welcome,
            handle,
            inbox,
            key,
            url: server,
            fingerprint: fp,
        })
    }

    pub fn send(&self, msg: AssistMsg) {
        self.handle.send_control(&Control::Assist(msg));
    }

    /// The next message from the gateway, within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<AssistMsg> {
        tokio::time::timeout(within, self.inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// Reads messages until one matches `want` (within `within` in all).
    ///
    /// # Panics
    /// None matched in time.
    pub async fn expect(
        &mut self,
        within: Duration,
        what: &str,
        want: impl Fn(&AssistMsg) -> bool,
    ) -> AssistMsg {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(m) if want(&m) => return m,
                Some(m) => seen.push(m),
                None => panic!("no {what} within {within:?}; saw {seen:?}"),
            }
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.handle.close(0, "customer left");
    }
}

/// The trailer at the end of a file downloaded from the portal.
///
/// # Panics
/// The file cannot be read or carries no trailer.
pub fn trailer_of(file: &std::path::Path) -> jumpgate_proto::assist::Trailer {
    use jumpgate_proto::assist::Trailer;
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).unwrap();
    let len = f.metadata().unwrap().len();
    let tail = (Trailer::MAX_JSON as u64 + 12).min(len);
    f.seek(SeekFrom::Start(len - tail)).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    Trailer::parse(&buf)
        .unwrap()
        .expect("the download carries a trailer")
}

/// Polls the technicians' view of support session `id` (through `api`)
/// until `want` holds; the view that did.
///
/// # Panics
/// Not within [`crate::WAIT`].
pub async fn session_until(
    api: &jumpgate_client::Client,
    id: &str,
    what: &str,
    want: impl Fn(&jumpgate_api_types::support::SupportSession) -> bool,
) -> jumpgate_api_types::support::SupportSession {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        if let Ok(s) = api.support_session(id).await
            && want(&s)
        {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks `button` of the customer's window `w` (on display `x`) once the
/// window publishes it (`_JUMPGATE_BUTTONS`).
pub fn click_when(x: &crate::xvfb::Xvfb, w: &str, button: &str) {
    tokio::task::block_in_place(|| {
        x.poll(&format!("button {button}"), || {
            x.prop(w, "_JUMPGATE_BUTTONS")
                .is_some_and(|b| b.split(';').any(|e| e.starts_with(&format!("{button} "))))
                .then_some(())
        });
        x.click(w, button);
    });
}
