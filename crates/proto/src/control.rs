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
}

impl RejectCode {
    /// Whether reconnecting later can succeed.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::Revoked | Self::UnknownAgent | Self::BadSignature
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
