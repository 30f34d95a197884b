//! Control messages on stream 0 (JSON in `Control` frames), including the
//! connection handshake.
//!
//! ```text
//! agent                                   gateway
//!   | TLS (ALPN "jumpgate-agent/1")          |
//!   | -- Control(Hello{versions, agent_id,   |
//!   |      signature over TLS exporter}) --> |  verify key, revocation,
//!   | <-- Control(Welcome{version}) -------- |  pick version
//!   |      or Control(Reject{code, message}) |
//!   | ==== multiplexed streams ============= |
//! ```
//!
//! The signature covers a TLS keying-material export, so it is bound to this
//! very TLS session and cannot be replayed on another connection.

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// ALPN protocol name agents offer; the gateway routes on it.
pub const AGENT_ALPN: &[u8] = b"jumpgate-agent/1";

/// Protocol versions this build speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];

/// Label of the TLS exporter whose output the agent signs.
pub const AUTH_EXPORTER_LABEL: &[u8] = b"EXPORTER-jumpgate-agent-auth";

/// Length of the exported keying material.
pub const AUTH_EXPORTER_LEN: usize = 32;

/// Picks the newest version both ends speak.
pub fn negotiate(offered: &[u16]) -> Option<u16> {
    SUPPORTED_VERSIONS
        .iter()
        .rev()
        .find(|v| offered.contains(v))
        .copied()
}

/// The message an agent signs to prove possession of its key on this TLS session.
pub fn auth_message(agent_id: &str, exporter: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + agent_id.len() + exporter.len());
    msg.extend_from_slice(b"jumpgate agent auth v1\0");
    // Length-prefixed, so no choice of id can bleed into the exporter bytes.
    msg.extend_from_slice(&(agent_id.len() as u32).to_be_bytes());
    msg.extend_from_slice(agent_id.as_bytes());
    msg.extend_from_slice(exporter);
    msg
}

/// The message a customer's support client signs with its ephemeral key
/// on this TLS session (see [`AssistHello`]).
pub fn assist_auth_message(public_key: &[u8], exporter: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + public_key.len() + exporter.len());
    msg.extend_from_slice(b"jumpgate assist auth v1\0");
    msg.extend_from_slice(&(public_key.len() as u32).to_be_bytes());
    msg.extend_from_slice(public_key);
    msg.extend_from_slice(exporter);
    msg
}

/// What an agent reports about its endpoint. Endpoint details are the only
/// personal data the product keeps about a machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub versions: Vec<u16>,
    pub agent_id: String,
    /// Ed25519 signature of [`auth_message`], base64 (standard alphabet).
    pub signature: String,
    pub info: AgentInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    /// The endpoint name the gateway knows this agent by.
    pub endpoint: String,
    /// How often the agent should ping the gateway.
    pub heartbeat_secs: u32,
}

/// How a customer's support client (`jumpgate assist`) introduces itself,
/// instead of [`Hello`]: it has no enrollment, only the ticket its download
/// carried and a key made in memory for this run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistHello {
    pub versions: Vec<u16>,
    /// The single-use ticket from the download (first connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The support session, when reconnecting with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_id: Option<String>,
    /// The client's ephemeral Ed25519 public key, base64 (standard).
    pub public_key: String,
    /// Ed25519 signature of [`assist_auth_message`], base64 (standard).
    pub signature: String,
    pub info: AgentInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistWelcome {
    pub version: u16,
    pub support_id: String,
    pub heartbeat_secs: u32,
    /// The site's name, as the portal shows it.
    pub site: String,
    pub queue: String,
    /// The customer's name as they gave it (or "Customer").
    pub customer: String,
}

/// Why the gateway refused an agent. An agent stops retrying on `Revoked` and
/// `UnknownAgent`: no amount of reconnecting will help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    UnsupportedVersion,
    UnknownAgent,
    Revoked,
    BadSignature,
    Malformed,
    ShuttingDown,
    /// Another agent with this identity is connected and answering: the
    /// agent's state (its key) exists twice. Retry later, with backoff:
    /// once the other connection is gone this one is accepted.
    Conflict,
    /// A support client's ticket is unknown, spent or expired, or its
    /// support session is over.
    InvalidTicket,
}

impl RejectCode {
    /// Whether reconnecting later can succeed.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::Revoked | Self::UnknownAgent | Self::BadSignature | Self::InvalidTicket
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub code: RejectCode,
    pub message: String,
}

/// `GoAway` codes.
pub mod go_away_code {
    /// The gateway is shutting down or restarting; reconnect with backoff.
    pub const SHUTDOWN: u32 = 1;
    /// An administrator revoked this endpoint; do not reconnect.
    pub const REVOKED: u32 = 2;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 3;
    /// The agent is stopping.
    pub const AGENT_STOPPING: u32 = 4;
    /// The connection was idle past its heartbeat deadline.
    pub const TIMEOUT: u32 = 5;
    /// Another connection of the same agent replaced this one.
    pub const REPLACED: u32 = 6;
    /// The endpoint was re-enrolled with a new key; this connection's key
    /// no longer counts.
    pub const REKEYED: u32 = 7;
}

/// Every control message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    Hello(Hello),
    Welcome(Welcome),
    Reject(Reject),
    /// The agent's endpoint details changed (hostname, OS upgrade...).
    AgentInfo(AgentInfo),
    /// A support client's hello (instead of `Hello`).
    AssistHello(AssistHello),
    /// The gateway's answer to `AssistHello` (instead of `Welcome`).
    AssistWelcome(AssistWelcome),
    /// Attended support, both ways, after `AssistWelcome`. On the wire
    /// `{"type":"assist","msg":{"type":…}}`: the message keeps its own
    /// `type` inside `msg`.
    Assist(#[serde(with = "assist_wire")] crate::assist::AssistMsg),
    /// EPM events from an enrolled agent's journal, in order (at most
    /// [`MAX_EVENTS_PAYLOAD`](crate::epm::MAX_EVENTS_PAYLOAD) bytes).
    EpmEvents(crate::epm::EpmEventBatch),
    /// The gateway stored every EPM event up to `through` (a sequence
    /// number): the agent may forget them.
    EpmAck {
        through: u64,
    },
    /// The agent's installed packages changed (dpkg's status file moved
    /// on): the gateway asks for the inventory (`package-inventory`).
    PackagesChanged {
        revision: u64,
    },
}

/// [`Control::Assist`]'s content under `msg` (both enums are tagged by
/// `type`; flattened, the two tags would collide).
mod assist_wire {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::assist::AssistMsg;

    #[derive(Serialize, Deserialize)]
    struct Wire<T> {
        msg: T,
    }

    pub(super) fn serialize<S: Serializer>(m: &AssistMsg, s: S) -> Result<S::Ok, S::Error> {
        Wire { msg: m }.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AssistMsg, D::Error> {
        Ok(Wire::<AssistMsg>::deserialize(d)?.msg)
    }
}

impl Control {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// # Errors
    /// The payload is not a valid control message.
    pub fn from_bytes(payload: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(payload).map_err(|e| ProtoError::InvalidMessage(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_picks_the_newest_common_version() {
        assert_eq!(negotiate(&[1]), Some(1));
        assert_eq!(negotiate(&[1, 2, 3]), Some(1));
        assert_eq!(negotiate(&[0, 7]), None);
        assert_eq!(negotiate(&[]), None);
    }

    #[test]
    fn assist_hello_roundtrips_and_its_signed_message_is_bound_to_the_key() {
        let hello = Control::AssistHello(AssistHello {
            versions: vec![1],
            ticket: Some("jga_x".into()),
            support_id: None,
            public_key: "cGs=".into(),
            signature: "c2ln".into(),
            info: AgentInfo::default(),
        });
        let json = String::from_utf8(hello.to_bytes()).unwrap();
        assert!(json.starts_with(r#"{"type":"assist_hello""#), "{json}");
        assert!(!json.contains("support_id"), "{json}");
        assert_eq!(Control::from_bytes(json.as_bytes()).unwrap(), hello);
        // Inside `Control`, an assist message keeps its own type.
        let chat = Control::Assist(crate::assist::AssistMsg::SendChat { text: "hi".into() });
        let json = String::from_utf8(chat.to_bytes()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"assist","msg":{"type":"send_chat","text":"hi"}}"#
        );
        assert_eq!(Control::from_bytes(json.as_bytes()).unwrap(), chat);
        let a = assist_auth_message(b"key-a", &[7; 32]);
        assert_ne!(a, assist_auth_message(b"key-b", &[7; 32]));
        assert_ne!(a, auth_message("key-a", &[7; 32]), "distinct labels");
        assert!(RejectCode::InvalidTicket.is_permanent());
    }

    #[test]
    fn control_messages_roundtrip_and_garbage_is_an_error() {
        let msg = Control::Hello(Hello {
            versions: vec![1],
            agent_id: "ag_1".into(),
            signature: "c2ln".into(),
            info: AgentInfo {
                hostname: "host".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                agent_version: "0.1.0".into(),
            },
        });
        assert_eq!(Control::from_bytes(&msg.to_bytes()).unwrap(), msg);
        assert!(Control::from_bytes(b"{\"type\":\"nope\"}").is_err());
        assert!(Control::from_bytes(b"\xff").is_err());
    }

    #[test]
    fn auth_message_binds_agent_and_session() {
        let a = auth_message("ag_1", &[1; 32]);
        assert_ne!(a, auth_message("ag_2", &[1; 32]));
        assert_ne!(a, auth_message("ag_1", &[2; 32]));
        assert_ne!(auth_message("ag_1", &[0, 1]), auth_message("ag_1\0", &[1]));
    }
}
