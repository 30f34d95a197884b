//! Agentless targets reached through a **jump point** (an agent that its
//! administrator and its own configuration both allow to connect onwards).
//!
//! The gateway opens a target session with
//! [`SessionMsg::OpenTarget`](crate::session::SessionMsg::OpenTarget)
//! instead of `Open`: the
//! technician's request plus where to connect and, for SSH targets, the
//! account, the pinned host key and the credential taken from the vault
//! for this one connection. A technician never sends it (the gateway
//! writes the first message of every agent stream), and an agent that is
//! not a jump point refuses it.
//!
//! Two system topics serve targets too: `target-host-key` (the key a host
//! offers, for trust on first use) and `target-rotate` (set a new password
//! on the target account after a session).

use serde::{Deserialize, Serialize};

use crate::session::SessionRequest;

/// A secret on its way to a jump point: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum TargetCredential {
    /// A password for the account.
    Password(String),
    /// An OpenSSH private key (PEM text, unencrypted).
    PrivateKey(String),
}

impl std::fmt::Debug for TargetCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(MASKED)"),
            Self::PrivateKey(_) => f.write_str("PrivateKey(MASKED)"),
        }
    }
}

/// An SSH login on a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshLogin {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The host key the target must offer, OpenSSH public-key text
    /// (`ssh-ed25519 AAAA…`): anything else refuses the connection.
    pub host_key: String,
    pub credential: TargetCredential,
    /// The destinations the administrator lets this jump point reach
    /// (`10.0.0.0/8`, `db.internal:5432`; `None`: any): the agent connects
    /// only to addresses of `host` they allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// Where a target session goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetAddress {
    /// An SSH server: shell, exec, file transfer and forwarding through it.
    Ssh(SshLogin),
    /// A TCP service: forwarding only, to this address (`allowed`: as
    /// [`SshLogin::allowed`]).
    Tcp {
        host: String,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed: Option<Vec<String>>,
    },
}

/// What [`SessionMsg::OpenTarget`](crate::session::SessionMsg::OpenTarget)
/// carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOpen {
    /// The target's name (for the jump point's log).
    pub name: String,
    pub address: TargetAddress,
    /// The technician's request, run on the target.
    pub request: SessionRequest,
}

/// `target-host-key` request: which host to ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyRequest {
    pub host: String,
    pub port: u16,
    /// As [`SshLogin::allowed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// `target-host-key` reply: the key the host offered (OpenSSH text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyReply {
    pub host_key: String,
}

/// `target-rotate` request: log in with `login` and change the account's
/// password to `new_password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    pub login: SshLogin,
    pub new_password: String,
}

impl std::fmt::Debug for RotateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateRequest")
            .field("login", &self.login)
            .field("new_password", &"MASKED")
            .finish()
    }
}

/// Words a refusal of a target session starts with when the host key did
/// not match (the gateway audits those).
pub const HOST_KEY_CHANGED: &str = "host key changed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_printed() {
        let login = SshLogin {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            host_key: "k".into(),
            credential: TargetCredential::Password("hunter2".into()),
            allowed: None,
        };
        let shown = format!(
            "{:?}",
            RotateRequest {
                login,
                new_password: "s3cret".into()
            }
        );
        assert!(shown.contains("MASKED"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
