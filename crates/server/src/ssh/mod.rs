//! The SSH front door (issue #16): stock OpenSSH clients reach endpoints
//! through the gateway, every session going through the same
//! [`SessionService`](crate::sessions::open::SessionService) as `jg shell`
//! (authorize → event row → audit → taps/recording → relay → close), so
//! it is authorized, audited, recorded and can be terminated like any.
//!
//! ```text
//! ssh alice+web-01@gw            ssh -J alice@gw web-01
//!   │ publickey / keyboard-        │ outer connection: alice authenticates
//!   │ interactive (password+TOTP)  │ direct-tcpip to web-01:22 ──► the gateway
//!   ▼                              │ itself runs an inner SSH server on that
//! connection (server.rs) ◄─────────┘ channel (same host key, alice's auth again)
//!   │ session channel: pty-req, shell / exec / subsystem sftp, window-change
//!   │ direct-tcpip HOST:PORT (ssh -L) on a connection naming an endpoint
//!   ▼
//! channel.rs: SessionService::open runs each channel's session in the
//!   channel's task: a session channel speaks SessionMsg through
//!   channel_io.rs (shell, exec, sftp); a direct-tcpip channel is the
//!   forward session's raw stream itself
//! ```
//!
//! - `server`: the listener (admission limits like the TLS port's,
//!   authentication timeout), the per-connection [`russh::server::Handler`]
//!   and its authentication (a login token is issued per connection, so
//!   live sessions are re-checked like `jg`'s).
//! - `channel`: one SSH channel mapped onto one Jumpgate session;
//!   `channel_io`: a session channel as a stream of session messages.
//! - `host_key`: the gateway's Ed25519 host key in the key hierarchy
//!   (`stored_key`: how it and the user CA are sealed, stored and opened).
//! - `user_ca`, `certs`: the user CA and the short-lived user certificates
//!   it issues at `jg login` (bound to that login).
//! - `user_keys`, `http`: users' public keys and their routes.

pub(crate) mod certs;
mod channel;
mod channel_io;
pub(crate) mod host_key;
pub(crate) mod http;
pub(crate) mod schema;
mod server;
mod stored_key;
pub(crate) mod user_ca;
pub(crate) mod user_keys;

pub(crate) use host_key::HOST_KEYS;
pub(crate) use server::{cut_key, serve};
pub(crate) use user_ca::USER_CAS;

/// What can go wrong with SSH keys.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A public key that cannot be registered (the message says why).
    #[error("{0}")]
    BadKey(String),
    /// The user already registered this key.
    #[error("this key is registered already ({0})")]
    Duplicate(String),
    /// The user holds as many keys as allowed.
    #[error("at most {0} SSH keys per user: remove one first")]
    TooMany(i64),
    /// No key of the caller's with that id.
    #[error("you have no SSH key `{0}`")]
    UnknownKey(String),
    /// The host key cannot be made, read or opened.
    #[error("host key: {0}")]
    Key(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}
