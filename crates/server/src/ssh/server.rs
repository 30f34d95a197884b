//! The SSH listener and each connection's [`Handler`]: admission limits,
//! the authentication timeout, authentication (user certificates from the
//! user CA, bound to a `jg login`: see `certs`; public keys users
//! registered; password and second factor through keyboard-interactive,
//! with the HTTPS login's lockout and rate limits), and channels handed to
//! `channel`.
//!
//! A connection that authenticates gets a login token, as a password login
//! on HTTPS does (its `login` audit entry says `ssh`): the sessions it
//! opens carry that credential, so the re-checks of live sessions (account
//! locked or deleted, sessions revoked, role changed) stop them like
//! `jg`'s. The token is removed when the connection and its sessions end.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Certificate, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, MethodKind, MethodSet, SshId};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::channel::{self, Ctx};
use super::{certs, user_keys};
use crate::identity::{self, Credential, IdentityError};
use crate::listener::gate::{Gate, Ticket as Admission};
use crate::state::AppState;

/// Time a connection has to authenticate (OpenSSH's `LoginGraceTime`
/// defaults to 120 s; a person typing a password and a code needs less).
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Authentication attempts per connection.
const MAX_AUTH_ATTEMPTS: usize = 6;
/// The port SSH clients ask a jump host for (`ssh -J gw ENDPOINT`).
const SSH_PORT: u32 = 22;

/// Open connections that logged in with a registered key, by the key's id:
/// removing the key cuts them ([`cut_key`]). Entries of ended connections
/// (their token cancelled) are pruned on every registration.
static BY_KEY: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Vec<CancellationToken>>>,
> = std::sync::LazyLock::new(Default::default);

fn register_key(key_id: &str, cut: &CancellationToken) {
    let mut m = BY_KEY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.retain(|_, v| {
        v.retain(|t| !t.is_cancelled());
        !v.is_empty()
    });
    m.entry(key_id.to_owned()).or_default().push(cut.clone());
}

/// Closes this gateway's connections that logged in with key `key_id`
/// (the key was just removed); their sessions end with them.
pub(crate) fn cut_key(key_id: &str) -> usize {
    let mut m = BY_KEY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cut = m.remove(key_id).unwrap_or_default();
    for t in &cut {
        t.cancel();
    }
    cut.len()
}

/// Accepts SSH connections until the gateway shuts down, admitted by the
/// site's `gate`, the TLS port's too: `[limits]` bound all connections and
/// the unauthenticated ones (site-wide and per address, the oldest giving
/// way) across both ports.
pub(crate) async fn serve(
    listener: TcpListener,
    st: AppState,
    gate: Arc<Gate>,
    host_key: PrivateKey,
    user_ca: PublicKey,
) {
    let addr = listener.local_addr().ok();
    if let Some(a) = addr {
        tracing::info!(addr = %a, "SSH front door listening");
    }
    let config = Arc::new(Configs {
        jump: Arc::new({
            let mut c = config(host_key.clone(), None);
            c.preferred.cipher = Cow::Borrowed(JUMP_CIPHERS);
            c
        }),
        tcp: Arc::new({
            let mut c = config(host_key, Some(KEEPALIVE));
            c.preferred.cipher = Cow::Borrowed(TCP_CIPHERS);
            c
        }),
        port: addr.map_or(SSH_PORT, |a| u32::from(a.port())),
    });
    let user_ca = Arc::new(user_ca);
    while let Some((tcp, peer, admission)) =
        crate::listener::accept_admitted(&listener, &gate, &st.shutdown, "ssh").await
    {
        let _ = tcp.set_nodelay(true);
        let conn = Conn::new(
            st.clone(),
            Arc::clone(&config),
            Arc::clone(&user_ca),
            peer,
            Some(admission),
            None,
        );
        // russh reads each packet with two `read_exact`s (its length,
        // then the rest): a buffer turns them into one read per 64 KiB.
        st.tasks
            .spawn(run(conn, BufReader::with_capacity(READ_BUF, tcp)));
    }
}

/// Read buffer of a TCP connection.
const READ_BUF: usize = 64 * 1024;

/// Keepalive interval of a TCP connection (three unanswered: gone).
const KEEPALIVE: Duration = Duration::from_secs(30);

/// The ciphers ProxyJump's inner connection offers: AES-GCM only. That
/// connection runs inside the outer one's channel, which already protects
/// it on the wire, so its cipher costs the gateway CPU and buys nothing;
/// AES-GCM (AES-NI) costs about a ninth of ChaCha20-Poly1305 per byte here,
/// the cipher a stock `ssh` picks first when offered. With the stock cipher
/// list, this took the gateway's `ssh -J` bulk CPU from 2.18–2.25 to
/// 1.48–1.84 CPU-s/GiB (docs/benchmarks.md). OpenSSH has had AES-GCM since
/// 6.2; a client offering none gets "no matching cipher found" with this
/// list.
const JUMP_CIPHERS: &[russh::cipher::Name] =
    &[russh::cipher::AES_128_GCM, russh::cipher::AES_256_GCM];

/// The ciphers a TCP connection offers: russh's default list plus
/// aes128-gcm, which that list lacks, so that a client configured for
/// aes128-gcm alone (a common hardening choice, and the cheapest cipher
/// here) is not refused. The client's order picks among them.
const TCP_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// The server's settings for each kind of connection.
struct Configs {
    /// A TCP connection's.
    tcp: Arc<russh::server::Config>,
    /// ProxyJump's inner connection's: no keepalives of its own. It lives
    /// inside the outer connection's channel, whose keepalives find a dead
    /// client (and end the channel, and so it); its own would only add a
    /// round trip every 30 s and a timer reset per packet.
    jump: Arc<russh::server::Config>,
    /// The port the front door listens on.
    port: u32,
}

/// The server's settings: Ed25519 host key, publickey and
/// keyboard-interactive only, rejections slowed to a constant time;
/// keepalives every `keepalive` (if any).
fn config(host_key: PrivateKey, keepalive: Option<Duration>) -> russh::server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::KeyboardInteractive);
    russh::server::Config {
        server_id: SshId::Standard("SSH-2.0-Jumpgate".into()),
        methods,
        // Longer than a password check (Argon2id) takes, so a rejection
        // says nothing by its timing; OpenSSH's first `none` probe is
        // answered at once.
        auth_rejection_time: Duration::from_millis(700),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        // Sessions may sit idle for hours (a shell); dead peers are found
        // by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: keepalive,
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

/// Runs one SSH connection (a TCP one, or ProxyJump's inner one over a
/// channel) until it ends, is evicted, does not authenticate in time, or
/// the gateway shuts down.
async fn run<S>(conn: Conn, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let st = conn.st.clone();
    let authed = conn.authed.clone();
    let cut = conn.cut.clone();
    let admission = conn.admission.clone();
    let peer = conn.peer;
    let config = Arc::clone(if conn.jump.is_some() {
        &conn.configs.jump
    } else {
        &conn.configs.tcp
    });
    let session = match russh::server::run_stream(config, io, conn).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "SSH connection setup failed");
            return;
        }
    };
    let handle = session.handle();
    let auth_deadline = async {
        if tokio::time::timeout(AUTH_TIMEOUT, authed.cancelled())
            .await
            .is_ok()
        {
            std::future::pending::<()>().await;
        }
    };
    let evicted = async {
        match &admission {
            Some(a) => a.evicted().await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        r = session => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "SSH connection ended");
            }
            // Ended: its entry in the key registry may go.
            cut.cancel();
            return;
        }
        () = auth_deadline => "authentication timed out",
        () = evicted => "too many unauthenticated connections",
        () = cut.cancelled() => "the SSH key this connection logged in with was removed",
        () = st.shutdown.cancelled() => "the gateway is shutting down",
    };
    tracing::debug!(%peer, why, "SSH connection closed by the gateway");
    let _ = handle
        .disconnect(Disconnect::ByApplication, why.to_owned(), "en".to_owned())
        .await;
}

/// A connection's login: the token its sessions carry. Logged out (the
/// token removed) once the connection and every session it opened have
/// ended: the last holder drops it.
pub(super) struct Login {
    st: AppState,
    /// What the connection's sessions carry: the connection's own login
    /// token, or (a certificate login) the `jg login` the certificate was
    /// issued for.
    pub(super) credential: Credential,
    /// The connection's own token (not a certificate login's), removed
    /// when the last holder drops.
    token: Option<Zeroizing<String>>,
    pub(super) username: String,
}

impl Drop for Login {
    fn drop(&mut self) {
        let Some(mut token) = self.token.take() else {
            // A certificate's login is `jg`'s: it outlives the connection.
            return;
        };
        let db = self.st.db.clone();
        let token = std::mem::take(&mut *token);
        self.st.tasks.spawn(async move {
            let token = Zeroizing::new(token);
            if let Err(e) = identity::logout(&db, &token).await {
                tracing::warn!(error = %e, "cannot remove an SSH connection's login token");
            }
        });
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A ProxyJump connection's fixed user and endpoint (inside the outer
/// connection's `direct-tcpip` channel).
#[derive(Clone, Debug)]
struct Jump {
    user: String,
    endpoint: String,
}

/// One SSH connection.
pub(super) struct Conn {
    st: AppState,
    configs: Arc<Configs>,
    /// The CA whose user certificates are accepted.
    user_ca: Arc<PublicKey>,
    peer: SocketAddr,
    /// The admission slot (TCP connections only); authenticated once the
    /// user is.
    admission: Option<Arc<Admission>>,
    authed: CancellationToken,
    /// Cancelled to close the connection (its key was removed), and once
    /// it has ended.
    cut: CancellationToken,
    /// `Some` for ProxyJump's inner connection.
    jump: Option<Jump>,
    login: Option<Arc<Login>>,
    /// The endpoint named by the user name (`alice+web-01`), or the jump's.
    endpoint: Option<String>,
    /// The password typed in the first keyboard-interactive round, kept
    /// for the second (the code) only.
    password: Option<Zeroizing<String>>,
    /// What the login permits (a certificate's extensions and options).
    rules: certs::Rules,
}

impl Conn {
    fn new(
        st: AppState,
        configs: Arc<Configs>,
        user_ca: Arc<PublicKey>,
        peer: SocketAddr,
        admission: Option<Arc<Admission>>,
        jump: Option<Jump>,
    ) -> Self {
        Self {
            st,
            configs,
            user_ca,
            peer,
            admission,
            authed: CancellationToken::new(),
            cut: CancellationToken::new(),
            jump,
            login: None,
            endpoint: None,
            password: None,
            rules: certs::Rules::default(),
        }
    }

    /// The gateway user and the endpoint an SSH user name means:
    /// `alice+web-01` is alice on web-01, `alice` is alice (a jump host
    /// or `-L` needs no endpoint yet). Inside a jump, the outer
    /// connection's user and the endpoint it named, whatever the name;
    /// but a one-step name of that same user (`alice+web-01`) names the
    /// endpoint: `ssh -J alice@gw web-01` with `jg ssh-config`'s entry for
    /// web-01 (one step: that user, the front door's address as HostName)
    /// jumps to the gateway's own address.
    fn who<'a>(&'a self, user: &'a str) -> (&'a str, Option<&'a str>) {
        if let Some(j) = &self.jump {
            let endpoint = match user.split_once('+') {
                Some((u, e)) if u == j.user && !e.is_empty() => e,
                _ => &j.endpoint,
            };
            return (&j.user, Some(endpoint));
        }
        match user.split_once('+') {
            Some((u, e)) if !e.is_empty() => (u, Some(e)),
            _ => (user, None),
        }
    }

    /// `user`'s account and the id of their registered key `key`, if both.
    async fn key_of(
        &self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Option<(identity::UserRecord, String)> {
        let (name, _) = self.who(user);
        let account = match identity::find_user(&self.st.db, name).await {
            Ok(Some(u)) => u,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the account for an SSH login");
                return None;
            }
        };
        match user_keys::find(&self.st.db, &account.id, key).await {
            Ok(Some(id)) => Some((account, id)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read SSH keys for a login");
                None
            }
        }
    }

    fn logged_in(&mut self, user: &str, s: identity::LoginSession) {
        let endpoint = self.who(user).1.map(str::to_owned);
        self.endpoint = endpoint;
        self.login = Some(Arc::new(Login {
            st: self.st.clone(),
            credential: Credential::of(&s.token),
            token: Some(Zeroizing::new(s.token)),
            username: s.user.username,
        }));
    }

    /// `user`'s account (`None`: no such user, or the store failed).
    async fn account(&self, user: &str) -> Option<identity::UserRecord> {
        let (name, _) = self.who(user);
        match identity::find_user(&self.st.db, name).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the account for an SSH login");
                None
            }
        }
    }

    /// A password login (with its second factor when the account has one).
    async fn password_login(
        &mut self,
        user: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<identity::LoginSession, IdentityError> {
        let (name, _) = self.who(user);
        let attempt = identity::Attempt {
            ip: self.peer.ip(),
            username: name,
            password,
            second_factor: code,
        };
        let st = &self.st;
        identity::login(
            &st.db,
            &st.keys,
            &st.login_limiter,
            &attempt,
            st.config.session_ttl,
        )
        .await
    }

    fn ctx(&self) -> Option<Ctx> {
        Some(Ctx {
            st: self.st.clone(),
            login: Arc::clone(self.login.as_ref()?),
            endpoint: self.endpoint.clone(),
            rules: self.rules.clone(),
        })
    }
}

fn prompt(text: &'static str) -> Auth {
    Auth::Partial {
        name: "Jumpgate".into(),
        instructions: "".into(),
        prompts: vec![(text.into(), false)].into(),
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Only keys the user registered, or holds a live certificate for
        // (russh offers a certificate's key), are worth a signature.
        if self.key_of(user, offer.public_key).await.is_some() {
            return Ok(Auth::Accept);
        }
        let Some(account) = self.account(user).await else {
            return Ok(Auth::reject());
        };
        Ok(
            match certs::holds(&self.st.db, &account.id, offer.public_key).await {
                Ok(true) => Auth::Accept,
                Ok(false) => Auth::reject(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read SSH certificates for a login");
                    Auth::reject()
                }
            },
        )
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let Some(account) = self.account(user).await else {
            return Ok(Auth::reject());
        };
        let now = crate::ids::now_ms();
        if account.lock.is_locked(now) {
            return Ok(Auth::reject());
        }
        let peer = self.peer.ip();
        match certs::check(&self.st.db, &self.user_ca, certificate, &account, peer).await {
            Ok((credential, rules)) => {
                tracing::info!(
                    user = %account.username,
                    key_id = %certificate.key_id(),
                    peer = %self.peer.ip(),
                    "SSH certificate login"
                );
                let endpoint = self.who(user).1.map(str::to_owned);
                self.endpoint = endpoint;
                self.rules = rules;
                self.login = Some(Arc::new(Login {
                    st: self.st.clone(),
                    credential,
                    token: None,
                    username: account.username,
                }));
                Ok(Auth::Accept)
            }
            Err(why) => {
                tracing::info!(
                    user = %account.username,
                    key_id = %certificate.key_id(),
                    %why,
                    "SSH certificate refused"
                );
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some((account, key_id)) = self.key_of(user, key.public_key).await else {
            return Ok(Auth::reject());
        };
        let fingerprint = super::host_key::fingerprint(key.public_key);
        let how = format!("ssh publickey {fingerprint} from {}", self.peer.ip());
        let st = &self.st;
        match identity::login_with_key(&st.db, account, st.config.session_ttl, &how).await {
            Ok(s) => {
                if let Err(e) = user_keys::used(&st.db, &key_id).await {
                    tracing::warn!(error = %e, "cannot note an SSH key's use");
                }
                register_key(&key_id, &self.cut);
                self.logged_in(user, s);
                Ok(Auth::Accept)
            }
            Err(e) => {
                tracing::info!(error = %e, "SSH public key login refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut response) = response else {
            self.password = None;
            return Ok(prompt("Password: "));
        };
        let answer = response
            .next()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(Zeroizing::new);
        let Some(answer) = answer else {
            self.password = None;
            return Ok(Auth::reject());
        };
        let (password, code) = match self.password.take() {
            // The second round: the code, for the password kept.
            Some(p) => (p, Some(answer)),
            None => (answer, None),
        };
        let result = self
            .password_login(user, &password, code.as_deref().map(String::as_str))
            .await;
        match result {
            Ok(s) => {
                self.logged_in(user, s);
                Ok(Auth::Accept)
            }
            Err(IdentityError::MfaRequired) if code.is_none() => {
                self.password = Some(password);
                Ok(prompt("Verification code: "))
            }
            Err(e) => {
                tracing::info!(error = %e, "SSH keyboard-interactive login refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(a) = &self.admission {
            a.authenticated();
        }
        self.authed.cancel();
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(ctx) = self.ctx() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        self.st.tasks.spawn(channel::session(ctx, channel));
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(ctx) = self.ctx() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let Ok(port) = u16::try_from(port_to_connect) else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        // The hop of `ssh -J gw ENDPOINT` reaches the gateway's own inner
        // server (whose sessions the certificate rules again); anything
        // else forwards ports, which the certificate must permit. The hop
        // goes to port 22, or to the front door's own port when the
        // client's config sends ENDPOINT there (`jg ssh-config`'s block
        // does: `ssh -J gw web-01` then hops to `GATEWAY:PORT` as
        // `alice+web-01`, which names the endpoint).
        let jump_host = ctx.endpoint.is_none() && self.jump.is_none();
        let hop =
            jump_host && (port_to_connect == SSH_PORT || port_to_connect == self.configs.port);
        if !ctx.rules.port_forwarding && !hop {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: ChannelOpenFailure::AdministrativelyProhibited.code(),
                    reason: "port forwarding is not permitted by your SSH certificate \
                             (no permit-port-forwarding)"
                        .into(),
                })
                .await;
            return Ok(());
        }
        if jump_host {
            // `ssh -J alice@gw web-01`: the gateway answers as web-01's SSH
            // server itself, on this channel.
            if !hop {
                reply
                    .reject(ChannelOpenFailure::Other {
                        code: ChannelOpenFailure::AdministrativelyProhibited.code(),
                        reason:
                            "name the endpoint in the user name (USER+ENDPOINT) to forward ports"
                                .into(),
                    })
                    .await;
                return Ok(());
            }
            let jump = Jump {
                user: ctx.login.username.clone(),
                endpoint: host_to_connect.to_owned(),
            };
            tracing::debug!(endpoint = %jump.endpoint, "SSH jump to an endpoint");
            let inner = Conn::new(
                self.st.clone(),
                Arc::clone(&self.configs),
                Arc::clone(&self.user_ca),
                self.peer,
                None,
                Some(jump),
            );
            // The outer login lives as long as the inner connection.
            let outer = ctx.login;
            self.st.tasks.spawn(async move {
                run(inner, channel.into_stream()).await;
                drop(outer);
            });
            reply.accept().await;
            return Ok(());
        }
        // `ssh -L …` on a connection to an endpoint: a forward session.
        self.st.tasks.spawn(channel::forward(
            ctx,
            channel,
            host_to_connect.to_owned(),
            port,
        ));
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // OpenSSH says "PTY allocation request failed" and goes on without.
        if self.rules.pty {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Never offered, whatever a certificate permits.
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == channel::SFTP {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}
