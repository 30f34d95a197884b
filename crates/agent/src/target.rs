//! The jump point's SSH client (`russh`): how an agent started with
//! `--jump-point` reaches agentless targets for the gateway.
//!
//! Every connection goes only where both the administrator's list (sent
//! by the gateway with each request) and this agent's own
//! `--jump-point-allow` list allow: the name is resolved here and only its
//! allowed addresses are connected to ([`jumpgate_net::allow`]).
//!
//! - [`connect`]: TCP, the SSH handshake with the **pinned** host key (any
//!   other key refuses the connection, [`TargetError::HostKeyChanged`]
//!   names both fingerprints), then the login with the credential the
//!   gateway sent for this one connection. The credential lives in memory
//!   only, and no error or log line carries it.
//! - [`offered_host_key`]: the key a host offers, nothing more (trust on
//!   first use: the gateway stores it and audits that).
//! - [`rotate`]: `passwd` in a PTY with the current password, then the new
//!   one twice (rotation after use).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jumpgate_net::allow::{AllowList, DialError};
use jumpgate_proto::target::{HOST_KEY_CHANGED, SshLogin, TargetCredential};
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

/// Limit on reaching a target and logging in.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Limit on a password change.
const ROTATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a target could not be reached or used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0}: timed out")]
    Timeout(String),
    /// Not resolved, outside the allowed destinations, or not reached.
    #[error(transparent)]
    Dial(DialError),
    /// The administrator's list as the gateway sent it does not parse.
    #[error("the gateway's list of allowed destinations is unreadable: {0}")]
    BadList(String),
    /// The pinned key as the gateway sent it is not an OpenSSH public key.
    #[error("the pinned host key is not an OpenSSH public key")]
    BadPin,
    #[error(
        "{HOST_KEY_CHANGED} for {addr}: expected {expected}, offered {offered}; the connection was refused"
    )]
    HostKeyChanged {
        addr: String,
        expected: String,
        offered: String,
    },
    #[error("SSH with {0} failed: {1}")]
    Ssh(String, #[source] russh::Error),
    #[error("login as {user} on {addr} was refused")]
    LoginRefused { user: String, addr: String },
    /// The credential is a private key the SSH library cannot read (its
    /// parse error is left out: it could quote the key).
    #[error("the credential is not a usable private key")]
    BadKey,
    #[error("{0}")]
    Rotate(String),
}

/// Accepts only the pinned key (or, with no pin, whatever is offered,
/// for [`offered_host_key`]); keeps what was offered.
pub(crate) struct Pinned {
    expected: Option<PublicKey>,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => {
                PublicKey::new(c.public_key().clone(), c.comment())
            }
        };
        let ok = self
            .expected
            .as_ref()
            .is_none_or(|e| e.key_data() == key.key_data());
        if let Ok(mut o) = self.offered.lock() {
            *o = Some(key);
        }
        Ok(ok)
    }
}

/// A logged-in SSH connection to a target.
pub(crate) struct Connected {
    pub(crate) handle: Handle<Pinned>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connected")
    }
}

impl Connected {
    pub(crate) async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// `SHA256:…`, as `ssh-keygen -l` shows it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: None,
        ..Default::default()
    })
}

fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where this jump point may connect: the administrator's list (`None`:
/// any) and its own.
#[derive(Clone, Debug)]
pub(crate) struct Reach<'a> {
    admin: AllowList,
    local: &'a AllowList,
}

impl<'a> Reach<'a> {
    /// # Errors
    /// The administrator's list does not parse.
    pub(crate) fn new(admin: Option<&[String]>, local: &'a AllowList) -> Result<Self, TargetError> {
        Ok(Self {
            admin: AllowList::parse(admin).map_err(TargetError::BadList)?,
            local,
        })
    }

    fn lists(&self) -> [(&'static str, &AllowList); 2] {
        [
            ("the administrator's list", &self.admin),
            ("--jump-point-allow", self.local),
        ]
    }

    /// The first address of `host` both lists allow.
    ///
    /// # Errors
    /// Not resolved, or none allowed.
    pub(crate) async fn address(
        &self,
        host: &str,
        port: u16,
    ) -> Result<std::net::SocketAddr, TargetError> {
        jumpgate_net::allow::allowed_addrs(host, port, &self.lists())
            .await
            .map_err(TargetError::Dial)?
            .into_iter()
            .next()
            .ok_or_else(|| TargetError::Timeout(format!("resolving {host}")))
    }
}

async fn handshake(
    host: &str,
    port: u16,
    expected: Option<PublicKey>,
    reach: &Reach<'_>,
) -> Result<(Handle<Pinned>, Arc<Mutex<Option<PublicKey>>>), TargetError> {
    let addr = address(host, port);
    let tcp = jumpgate_net::allow::connect(host, port, &reach.lists(), CONNECT_TIMEOUT)
        .await
        .map_err(TargetError::Dial)?;
    let _ = tcp.set_nodelay(true);
    let offered = Arc::new(Mutex::new(None));
    let pinned = Pinned {
        expected: expected.clone(),
        offered: Arc::clone(&offered),
    };
    let started = tokio::time::timeout(
        CONNECT_TIMEOUT,
        client::connect_stream(config(), tcp, pinned),
    )
    .await
    .map_err(|_| TargetError::Timeout(format!("the SSH handshake with {addr}")))?;
    match started {
        Ok(handle) => Ok((handle, offered)),
        Err(e) => {
            let seen = offered.lock().ok().and_then(|o| o.clone());
            if let (Some(expected), Some(seen)) = (expected, seen)
                && expected.key_data() != seen.key_data()
            {
                return Err(TargetError::HostKeyChanged {
                    addr,
                    expected: fingerprint(&expected),
                    offered: fingerprint(&seen),
                });
            }
            Err(TargetError::Ssh(addr, e))
        }
    }
}

/// The key `host:port` offers (OpenSSH text); no login is tried.
///
/// # Errors
/// The host cannot be reached or does not speak SSH.
pub(crate) async fn offered_host_key(
    host: &str,
    port: u16,
    reach: &Reach<'_>,
) -> Result<String, TargetError> {
    let (handle, offered) = handshake(host, port, None, reach).await?;
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
    let key = offered.lock().ok().and_then(|o| o.clone());
    key.and_then(|k| k.to_openssh().ok())
        .ok_or_else(|| TargetError::Rotate("the host offered no key".into()))
}

/// Connects to the target with its pinned host key and logs in.
///
/// # Errors
/// See [`TargetError`]; none of them carries the credential.
pub(crate) async fn connect(login: &SshLogin, local: &AllowList) -> Result<Connected, TargetError> {
    let reach = Reach::new(login.allowed.as_deref(), local)?;
    let expected =
        PublicKey::from_openssh(login.host_key.trim()).map_err(|_| TargetError::BadPin)?;
    let addr = address(&login.host, login.port);
    let (mut handle, _) = handshake(&login.host, login.port, Some(expected), &reach).await?;
    let user = login.user.clone();
    // The key is read before any login: its parse error (which could
    // quote it) is dropped for a plain `BadKey`.
    let key = match &login.credential {
        TargetCredential::Password(_) => None,
        TargetCredential::PrivateKey(pem) => Some(Arc::new(
            russh::keys::decode_secret_key(pem, None).map_err(|_| TargetError::BadKey)?,
        )),
    };
    let auth = async {
        match (&login.credential, key) {
            (TargetCredential::Password(p), _) => {
                handle.authenticate_password(&user, p.as_str()).await
            }
            (TargetCredential::PrivateKey(_), None) => Err(russh::Error::NotAuthenticated),
            (TargetCredential::PrivateKey(_), Some(key)) => {
                let hash = handle.best_supported_rsa_hash().await?.flatten();
                handle
                    .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(key, hash))
                    .await
            }
        }
    };
    let result = tokio::time::timeout(CONNECT_TIMEOUT, auth)
        .await
        .map_err(|_| TargetError::Timeout(format!("logging in to {addr}")))?;
    match result {
        Ok(r) if r.success() => Ok(Connected { handle }),
        Ok(_) | Err(russh::Error::NotAuthenticated) => Err(TargetError::LoginRefused {
            user: login.user.clone(),
            addr,
        }),
        Err(e) => Err(TargetError::Ssh(addr, e)),
    }
}

/// Changes the account's password from the login's to `new_password`
/// with `passwd` in a PTY: the current password where a prompt asks for
/// it, the new one at the other prompts, then exit status 0.
///
/// # Errors
/// The login failed, `passwd` refused, or it did not finish in time. The
/// message quotes none of `passwd`'s output (it could echo input).
pub(crate) async fn rotate(
    login: &SshLogin,
    new_password: &str,
    local: &AllowList,
) -> Result<(), TargetError> {
    let TargetCredential::Password(current) = &login.credential else {
        return Err(TargetError::Rotate(
            "only a password credential can be rotated".into(),
        ));
    };
    let conn = connect(login, local).await?;
    let addr = address(&login.host, login.port);
    let ssh = |e| TargetError::Ssh(addr.clone(), e);
    let run = async {
        let mut ch = conn.handle.channel_open_session().await.map_err(ssh)?;
        ch.request_pty(true, "dumb", 80, 24, 0, 0, &[])
            .await
            .map_err(ssh)?;
        ch.exec(true, "LC_ALL=C passwd").await.map_err(ssh)?;
        let mut seen = String::new();
        let mut status = None;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    seen.push_str(&String::from_utf8_lossy(&data).to_lowercase());
                    // Answer each prompt once it is whole.
                    while let Some(at) = seen.find("password:") {
                        let prompt = &seen[..at];
                        let answer = if prompt.contains("current") || prompt.contains("old") {
                            current.as_str()
                        } else {
                            new_password
                        };
                        let mut line = answer.as_bytes().to_vec();
                        line.push(b'\n');
                        ch.data_bytes(line).await.map_err(ssh)?;
                        seen = seen[at + "password:".len()..].to_owned();
                    }
                    if seen.len() > 4096 {
                        seen = seen[seen.len() - 1024..].to_owned();
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        match status {
            Some(0) => Ok(()),
            Some(n) => Err(TargetError::Rotate(format!(
                "passwd on {addr} exited with status {n}"
            ))),
            None => Err(TargetError::Rotate(format!(
                "passwd on {addr} ended without an exit status"
            ))),
        }
    };
    let result = tokio::time::timeout(ROTATE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err(TargetError::Timeout(format!("passwd on {addr}"))));
    conn.close().await;
    result
}

/// One word for a shell command line: single-quoted.
pub(crate) fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
