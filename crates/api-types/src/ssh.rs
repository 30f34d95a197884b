//! The SSH front door: users' SSH public keys (`/api/v1/ssh-keys`).

use serde::{Deserialize, Serialize};

/// One of the caller's SSH public keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// `sk_…`: what `jg ssh-keys remove` takes.
    pub id: String,
    /// As OpenSSH shows it: `SHA256:…`.
    pub fingerprint: String,
    /// The key's algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
    pub algorithm: String,
    /// The comment given with the key (may be empty).
    pub comment: String,
    pub created_at: String,
    /// The last login with it through the SSH front door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// `POST /api/v1/ssh-keys`: a public key in OpenSSH's one-line form
/// (`ssh-ed25519 AAAA… comment`, as in `id_ed25519.pub`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSshKey {
    pub public_key: String,
}

/// `GET /api/v1/ssh/host-key`: what a client needs to trust and reach the
/// gateway's SSH front door (`jg ssh-config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshHostKey {
    /// OpenSSH's one-line form (`ssh-ed25519 AAAA…`), for `known_hosts`.
    pub public_key: String,
    /// As OpenSSH shows it: `SHA256:…`.
    pub fingerprint: String,
    /// The port the front door listens on; `None`: it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `POST /api/v1/ssh/user-cert`: the public key (OpenSSH one-line form) to
/// certify for the caller's current login (`jg login`, `jg ssh-cert`), and
/// what the certificate should permit less of than usual (the front door
/// honours it as `sshd` does).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueSshCert {
    pub public_key: String,
    /// Leave out `permit-pty`: no terminal, commands only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_pty: bool,
    /// Leave out `permit-port-forwarding`: no `ssh -L` / `-W`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_port_forwarding: bool,
    /// Critical option `source-address`: the address ranges (`10.0.0.0/8`,
    /// `192.0.2.7`, `::1`; comma-separated or one per entry) logins with
    /// it may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_address: Vec<String>,
    /// Critical option `force-command`: the one command its sessions run,
    /// whatever is asked (the command asked is in `SSH_ORIGINAL_COMMAND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_command: Option<String>,
}

/// A short-lived OpenSSH user certificate signed by the gateway's user CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCert {
    /// OpenSSH's one-line form (`ssh-ed25519-cert-v01@openssh.com AAAA…`),
    /// as in an `id_ed25519-cert.pub` file.
    pub certificate: String,
    /// Names the user, the login and the serial (`sshd` and the audit log
    /// show it).
    pub key_id: String,
    /// The one principal: the user's name.
    pub principal: String,
    /// When it stops being valid (RFC 3339): the login's end at the latest.
    pub valid_before: String,
}

/// `GET /api/v1/ssh/user-ca`: the public key of the CA that signs users'
/// certificates (for an OpenSSH server's `TrustedUserCAKeys`, or to check).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshUserCa {
    /// OpenSSH's one-line form.
    pub public_key: String,
    /// As OpenSSH shows it: `SHA256:…`.
    pub fingerprint: String,
}
