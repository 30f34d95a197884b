//! Revocation ends live sessions: whatever withdraws a technician's access
//! (sessions revoked, account deleted or locked, password reset, a role or
//! group change, an endpoint revoked or moved, a token expiring) ends every
//! live session the new state no longer allows — at once, with the reason
//! shown to the technician and an audit entry per session. Also: MFA reset
//! and disable, and an agent whose network silently stops.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use jumpgate_api_types as api;
use jumpgate_proto::session::{SessionMsg, SessionRequest};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;

use crate::support::*;

const TECH: &str = "bob";
const TECH_PASSWORD: &str = "a-long-technician-password";
/// A loop that prints forever (until the session ends).
const TICKER: &str = "while :; do echo tick; sleep 0.2; done";

/// A site with one endpoint `srv` (group `default`) and technician `bob`
/// (groups `default`) logged in with `jg` in his own home.
struct Fixture {
    site: Site,
    _agent: Agent,
    home: PathBuf,
}

async fn fixture(extra: &[&str]) -> Fixture {
    let site = Site::start_with(extra).await;
    let agent = site.start_agent("srv").await;
    create_user(&site, TECH, "technician", "default", TECH_PASSWORD).await;
    let home = site.home(TECH);
    ok(&site.try_login_in(&home, TECH, TECH_PASSWORD, &[]).await);
    Fixture {
        site,
        _agent: agent,
        home,
    }
}

async fn create_user(site: &Site, name: &str, role: &str, groups: &str, password: &str) {
    let pw = site.password_file(&format!("{name}.pw"), password);
    ok(&site
        .admin_bounded(&[
            "create-user",
            name,
            "--role",
            role,
            "--groups",
            groups,
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
}

/// `jg shell srv -- sh -c TICKER` in `home`, returned once its first line
/// arrived (the session is live).
async fn live_exec(site: &Site, home: &std::path::Path) -> Child {
    let mut child = site
        .jg_command(&["shell", "srv", "--", "sh", "-c", TICKER])
        .env("JG_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the session printed nothing")
        .unwrap();
    assert_eq!(first.as_deref(), Some("tick"), "the session did not start");
    // Keep reading, so the technician side never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Waits (bounded) for a live session's `jg` to end; returns its stderr.
async fn ended(child: Child) -> String {
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the session kept running after access was withdrawn")
        .unwrap();
    fails(&out)
}

/// Audit entries naming the end of a session for lack of access, polled
/// until one mentions `needle` (bounded).
async fn revoke_audited(site: &Site, needle: &str) -> Vec<api::SecurityEvent> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = site.security_events().await;
        let found: Vec<_> = events
            .iter()
            .filter(|e| e.action == "session-revoke" && e.detail.contains(needle))
            .cloned()
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session-revoke audit entry with {needle:?}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The session table's row of the ended session says why it ended.
async fn session_outcome(site: &Site, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<api::SessionEvent> =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
        if rows
            .iter()
            .any(|r| r.ended_at.is_some() && r.outcome.contains(needle))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ended session with outcome {needle:?}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole check for one trigger: the live session ends, the technician
/// is told `reason`, the session row and the audit log say so.
async fn assert_revoked(site: &Site, child: Child, reason: &str) {
    let err = ended(child).await;
    assert!(
        err.contains("session closed by the gateway: access revoked") && err.contains(reason),
        "jg did not show the reason {reason:?}: {err}"
    );
    session_outcome(site, reason).await;
    let audit = revoke_audited(site, reason).await;
    assert!(
        audit.iter().all(|e| e.detail.contains("subject=bob")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn revoking_a_users_sessions_ends_their_shells_and_forwards() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    // A forward with one connection carrying data through it.
    let echo = echo_server().await;
    let mut fwd = f
        .site
        .jg_command(&["forward", "srv", &format!("0:127.0.0.1:{}", echo.port())])
        .env("JG_HOME", &f.home)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fwd.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let local: std::net::SocketAddr = line
        .strip_prefix("jg: forwarding ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut conn = TcpStream::connect(local).await.unwrap();
    conn.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(WAIT, conn.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ping");

    ok(&f
        .site
        .jg(&["admin", "users", "revoke-sessions", TECH])
        .await);

    assert_revoked(&f.site, exec, "your login session was revoked").await;
    // The forwarded connection is closed too.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, conn.read_to_end(&mut rest))
        .await
        .expect("the forwarded connection stayed open after revocation");
    assert!(closed.is_err() || rest.is_empty(), "{rest:?}");
    let audit = revoke_audited(&f.site, "kind=forward").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    // The administrator's own sessions are untouched.
    ok(&f.site.jg(&["shell", "srv", "--", "true"]).await);
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    ok(&f.site.jg(&["admin", "users", "delete", TECH]).await);
    assert_revoked(&f.site, exec, "your account was deleted").await;
}

#[tokio::test]
async fn a_password_reset_ends_the_users_sessions() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    let pw = f.site.password_file("new.pw", "another-long-password-42");
    ok(&f
        .site
        .jg(&[
            "admin",
            "users",
            "set-password",
            TECH,
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    assert_revoked(&f.site, exec, "your login session was revoked").await;
}

#[tokio::test]
async fn a_technicians_own_password_change_ends_their_sessions_everywhere() {
    let f = fixture(&[]).await;
    // The session runs from one login; the password is changed from another
    // (`jg passwd` revokes every login of the account, its own included).
    let exec = live_exec(&f.site, &f.home).await;
    let other = f.site.home("bob-laptop");
    ok(&f.site.try_login_in(&other, TECH, TECH_PASSWORD, &[]).await);
    let current = f.site.password_file("bob-current.pw", TECH_PASSWORD);
    let new = f
        .site
        .password_file("bob-new.pw", "a-fresh-technician-passphrase-7");
    ok(&f
        .site
        .jg_in(
            &other,
            &[
                "passwd",
                "--current-password-file",
                current.to_str().unwrap(),
                "--password-file",
                new.to_str().unwrap(),
            ],
        )
        .await);
    assert_revoked(&f.site, exec, "your login session was revoked").await;
}

#[tokio::test]
async fn changing_a_users_groups_ends_sessions_outside_them() {
    let f = fixture(&[]).await;
    ok(&f.site.jg(&["admin", "groups", "create", "lab"]).await);
    let exec = live_exec(&f.site, &f.home).await;
    // Adding a group keeps the session (positive control: the change is
    // re-checked and still allowed).
    ok(&f
        .site
        .jg(&["admin", "users", "update", TECH, "--groups", "default,lab"])
        .await);
    // Taking away the endpoint's group ends it.
    ok(&f
        .site
        .jg(&["admin", "users", "update", TECH, "--groups", "lab"])
        .await);
    assert_revoked(&f.site, exec, "the endpoint is outside your groups").await;
    let audit = revoke_audited(&f.site, "kind=exec").await;
    assert_eq!(audit.len(), 1, "ended once, audited once: {audit:?}");
}

#[tokio::test]
async fn a_role_change_that_removes_the_permission_ends_the_session() {
    let f = fixture(&[]).await;
    ok(&f
        .site
        .jg(&[
            "admin",
            "roles",
            "create",
            "operator",
            "--permissions",
            "view,exec,files",
        ])
        .await);
    ok(&f
        .site
        .jg(&["admin", "users", "update", TECH, "--role", "operator"])
        .await);
    let exec = live_exec(&f.site, &f.home).await;
    // A change that keeps `exec` leaves the session alone (positive control
    // of the trigger: the re-check ran and allowed it).
    ok(&f
        .site
        .jg(&[
            "admin",
            "roles",
            "update",
            "operator",
            "--permissions",
            "view,exec",
        ])
        .await);
    // The role loses `exec`: the session ends.
    ok(&f
        .site
        .jg(&[
            "admin",
            "roles",
            "update",
            "operator",
            "--permissions",
            "view",
        ])
        .await);
    assert_revoked(&f.site, exec, "your role lacks the `exec` permission").await;
    let audit = revoke_audited(&f.site, "kind=exec").await;
    assert_eq!(audit.len(), 1, "ended once, audited once: {audit:?}");
}

#[tokio::test]
async fn moving_the_endpoint_out_of_the_users_groups_ends_the_session() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    ok(&f
        .site
        .jg(&["admin", "groups", "create", "vault-room"])
        .await);
    ok(&f
        .site
        .jg(&["admin", "endpoints", "set-group", "srv", "vault-room"])
        .await);
    assert_revoked(&f.site, exec, "the endpoint is outside your groups").await;
}

#[tokio::test]
async fn revoking_the_endpoint_ends_its_sessions_with_the_reason() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    ok(&f.site.jg(&["admin", "endpoints", "revoke", "srv"]).await);
    assert_revoked(&f.site, exec, "endpoint `srv` was revoked").await;
}

#[tokio::test]
async fn an_expired_login_session_ends_its_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jumpgate.toml");
    std::fs::write(&config, "[auth]\nsession_ttl = \"20s\"\n").unwrap();
    let f = fixture(&["--config", config.to_str().unwrap()]).await;
    // bob's token was issued just now: it expires in 20 s.
    let started = tokio::time::Instant::now();
    let exec = live_exec(&f.site, &f.home).await;
    let err = tokio::time::timeout(WAIT * 2, ended(exec))
        .await
        .expect("the session outlived its token");
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "the session ended before its token could have expired: {err}"
    );
    assert!(
        err.contains("access revoked: your login session expired"),
        "{err}"
    );
    f.site.login(ADMIN, ADMIN_PASSWORD).await;
    revoke_audited(&f.site, "your login session expired").await;
    // The expired token no longer opens anything either.
    let out = f.site.jg_in(&f.home, &["endpoints"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_config_with_a_too_short_session_ttl_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jumpgate.toml");
    std::fs::write(&config, "[auth]\nsession_ttl = \"5s\"\n").unwrap();
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(jumpgate_bin())
            .args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("auth.session_ttl") && err.contains("between 10s and 7d"),
        "{err}"
    );
}

#[tokio::test]
async fn a_lockout_ends_the_users_sessions() {
    let f = fixture(&[]).await;
    let exec = live_exec(&f.site, &f.home).await;
    // Someone guesses bob's password until the account locks.
    let elsewhere = f.site.home("guesser");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = f
            .site
            .try_login_in(&elsewhere, TECH, "wrong-password-guess", &[])
            .await;
        assert!(!out.status.success());
        let users: Vec<api::User> =
            serde_json::from_str(&ok(&f.site.jg(&["admin", "users", "list", "--json"]).await))
                .unwrap();
        if users
            .iter()
            .any(|u| u.username == TECH && u.locked_until.is_some())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob never locked");
    }
    assert_revoked(&f.site, exec, "your account is locked").await;
}

// --- The web console's terminal (a WebSocket) ---------------------------

/// A minimal WebSocket client (RFC 6455) over the gateway's TLS: enough to
/// carry the console's session messages.
struct Ws {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Ws {
    async fn connect(site: &Site, path: &str, cookie: &str) -> (Self, String) {
        let trust = jumpgate_net::tls::Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
        let cfg = jumpgate_net::tls::client_config(&trust, &[b"http/1.1"]).unwrap();
        let url: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
        let mut tls = jumpgate_net::dial::connect_tls(&url, cfg, None)
            .await
            .unwrap();
        let host = site.gateway.addr;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: https://{host}\r\nCookie: {cookie}\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut b = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            let n = tls.read(&mut b).await.unwrap();
            assert!(n > 0, "closed during the WebSocket handshake");
            raw.push(b[0]);
        }
        let head = String::from_utf8_lossy(&raw).into_owned();
        (
            Self {
                tls,
                buf: Vec::new(),
            },
            head,
        )
    }

    /// Sends one masked binary frame.
    async fn send(&mut self, payload: &[u8]) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut f = vec![0x82u8];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tls.write_all(&f).await.unwrap();
    }

    async fn fill(&mut self, want: usize) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < want {
            match self.tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// The next frame `(opcode, payload)`; `None` once the connection ends.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if !self.fill(2).await {
            return None;
        }
        let opcode = self.buf[0] & 0x0f;
        let (len, at) = match self.buf[1] & 0x7f {
            126 => {
                if !self.fill(4).await {
                    return None;
                }
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                if !self.fill(10).await {
                    return None;
                }
                let mut l = [0u8; 8];
                l.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(l) as usize, 10)
            }
            n => (n as usize, 2),
        };
        if !self.fill(at + len).await {
            return None;
        }
        let payload = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some((opcode, payload))
    }
}

/// `POST /api/v1/auth/login {cookie:true}`: the `name=value` cookie pair.
async fn cookie_login(site: &Site, user: &str, password: &str) -> String {
    let body = serde_json::json!({"username": user, "password": password, "cookie": true});
    let (status, head, _) = http_exchange(
        site,
        "POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json",
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.trim().split(';').next())
        .expect("no session cookie")
        .to_owned()
}

/// Reads session messages from the WebSocket into `msgs` until `done`
/// matches one (`true`) or the WebSocket ends (`false`); bounded.
async fn read_until(
    ws: &mut Ws,
    stream: &mut BytesMut,
    msgs: &mut Vec<SessionMsg>,
    done: impl Fn(&SessionMsg) -> bool,
) -> bool {
    tokio::time::timeout(WAIT, async {
        while let Some((op, payload)) = ws.frame().await {
            match op {
                0x2 => stream.extend_from_slice(&payload),
                0x8 => return false,
                _ => continue,
            }
            while let Some(m) = SessionMsg::decode(stream).unwrap() {
                let hit = done(&m);
                msgs.push(m);
                if hit {
                    return true;
                }
            }
        }
        false
    })
    .await
    .expect("the console session neither progressed nor ended")
}

#[tokio::test]
async fn a_console_terminal_ends_when_the_users_sessions_are_revoked() {
    let f = fixture(&[]).await;
    let cookie = cookie_login(&f.site, TECH, TECH_PASSWORD).await;
    let (mut ws, head) =
        Ws::connect(&f.site, "/api/v1/endpoints/srv/connect?kind=exec", &cookie).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let open = SessionMsg::Open(SessionRequest::Exec {
        command: vec!["sh".into(), "-c".into(), TICKER.into()],
    });
    ws.send(&open.to_bytes()).await;
    let mut stream = BytesMut::new();
    let mut msgs = Vec::new();
    let live = read_until(
        &mut ws,
        &mut stream,
        &mut msgs,
        |m| matches!(m, SessionMsg::Stdout(d) if d.starts_with(b"tick")),
    )
    .await;
    assert!(live, "the console session did not start");

    ok(&f
        .site
        .jg(&["admin", "users", "revoke-sessions", TECH])
        .await);

    let closed = read_until(&mut ws, &mut stream, &mut msgs, |m| {
        matches!(m, SessionMsg::Closed { .. })
    })
    .await;
    assert!(closed, "the console session ended without a reason");
    let reason = msgs
        .iter()
        .find_map(|m| match m {
            SessionMsg::Closed { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.contains("access revoked: your login session was revoked"),
        "{reason}"
    );
    // And the WebSocket closes.
    let end = tokio::time::timeout(WAIT, async {
        while let Some((op, _)) = ws.frame().await {
            if op == 0x8 {
                return;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the WebSocket stayed open");
    revoke_audited(&f.site, "subject=bob").await;
}

// --- MFA reset and disable ------------------------------------------------

#[tokio::test]
async fn an_administrator_mfa_reset_and_a_users_mfa_disable_remove_the_factor() {
    let site = Site::start().await;
    create_user(&site, "carol", "technician", "default", TECH_PASSWORD).await;
    create_user(&site, "dave", "technician", "default", TECH_PASSWORD).await;

    // carol enrolls; then she needs a code to log in.
    let carol = site.home("carol");
    ok(&site.try_login_in(&carol, "carol", TECH_PASSWORD, &[]).await);
    site.mfa_enroll(&carol).await;
    let err = fails(&site.try_login_in(&carol, "carol", TECH_PASSWORD, &[]).await);
    assert!(err.contains("this account uses MFA"), "{err}");
    // The administrator resets it (lost phone): carol logs in with her
    // password alone, and her account says MFA is off.
    ok(&site.jg(&["admin", "users", "reset-mfa", "carol"]).await);
    ok(&site.try_login_in(&carol, "carol", TECH_PASSWORD, &[]).await);
    let me: api::Me =
        serde_json::from_str(&ok(&site.jg_in(&carol, &["whoami", "--json"]).await)).unwrap();
    assert!(!me.mfa_enabled, "{me:?}");

    // dave enrolls and turns it off himself with a fresh code.
    let dave = site.home("dave");
    ok(&site.try_login_in(&dave, "dave", TECH_PASSWORD, &[]).await);
    let e = site.mfa_enroll(&dave).await;
    // A recovery code proves it is him (no wait for the next TOTP step).
    let code = e.recovery_codes[0].clone();
    ok(&site
        .jg_in(&dave, &["mfa", "disable", "--code", &code])
        .await);
    ok(&site.try_login_in(&dave, "dave", TECH_PASSWORD, &[]).await);
    let me: api::Me =
        serde_json::from_str(&ok(&site.jg_in(&dave, &["whoami", "--json"]).await)).unwrap();
    assert!(!me.mfa_enabled, "{me:?}");
    // The other recovery codes went with the factor: MFA is off, and a
    // login that offers one is not taken for a second factor any more.
    let stale = e.recovery_codes[1].clone();
    ok(&site
        .try_login_in(&dave, "dave", TECH_PASSWORD, &["--totp", &stale])
        .await);

    // Both are audited, with who did it.
    let events = site.security_events().await;
    let mfa: Vec<_> = events
        .iter()
        .filter(|e| e.target == "carol" || e.target == "dave")
        .filter(|e| e.action == "mfa-reset" || e.action == "mfa-disable")
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert!(
        mfa.iter().any(|(actor, action, target)| *actor == ADMIN
            && *action == "mfa-reset"
            && *target == "carol"),
        "no audited MFA reset by the admin: {mfa:?}"
    );
    assert!(
        mfa.iter().any(|(actor, action, target)| *actor == "dave"
            && *action == "mfa-disable"
            && *target == "dave"),
        "no audited MFA disable by dave: {mfa:?}"
    );
}

// --- An agent whose network silently stops ---------------------------------

/// An HTTP CONNECT proxy whose tunnels can be frozen: bytes stop flowing
/// both ways, and nothing is closed (a cable pulled, a NAT entry gone).
async fn freezable_proxy() -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let fz = Arc::clone(&frozen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let fz = Arc::clone(&fz);
            tokio::spawn(async move {
                let Some(up) = open_connect_tunnel(&mut s).await else {
                    return;
                };
                let (sr, sw) = s.into_split();
                let (ur, uw) = up.into_split();
                // Both halves live until the test ends: a frozen tunnel
                // holds its sockets open without moving a byte.
                let a = tokio::spawn(pump(sr, uw, Arc::clone(&fz)));
                let b = tokio::spawn(pump(ur, sw, fz));
                let _ = tokio::join!(a, b);
            });
        }
    });
    (addr, frozen)
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.load(Ordering::SeqCst) {
            // Never read or write again; keep both sockets open.
            std::future::pending::<()>().await;
        }
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_agent_whose_network_silently_stops_goes_offline_and_its_sessions_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jumpgate.toml");
    // Heartbeat 1 s: the gateway gives up after three silent heartbeats.
    std::fs::write(&config, "[agents]\nheartbeat = \"1s\"\n").unwrap();
    let site = Site::start_with(&["--config", config.to_str().unwrap()]).await;
    let (proxy, frozen) = freezable_proxy().await;
    let token = site.enroll_token(&[]).await;
    let proxy_url = format!("http://{proxy}");
    let _agent = site.spawn_agent("srv", Some(&token), &["--proxy", &proxy_url]);
    site.wait_online("srv", true).await;
    let home = site.jg_home();
    let exec = live_exec(&site, &home).await;
    // Positive control: the endpoint stays online across several heartbeat
    // periods while the network works (heartbeats keep it).
    let hold = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < hold {
        site.wait_online("srv", true).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    frozen.store(true, Ordering::SeqCst);
    let err = ended(exec).await;
    assert!(
        err.contains("session closed by the gateway") && err.contains("connection to the endpoint"),
        "{err}"
    );
    site.wait_online("srv", false).await;
    assert!(
        site.gateway.stderr.wait_for("no traffic for 3s").await,
        "{}",
        site.gateway.stderr.text()
    );
    session_outcome(&site, "error: endpoint side").await;
}

// --- API clients ------------------------------------------------------------

#[tokio::test]
async fn deleting_an_api_client_ends_the_sessions_it_opened() {
    let f = fixture(&[]).await;
    let out = f
        .site
        .jg(&[
            "admin",
            "api-clients",
            "create",
            "bot",
            "--scopes",
            "read,write",
            "--role",
            "technician",
            "--groups",
            "default",
            "--json",
        ])
        .await;
    let created: api::ApiClientSecret = serde_json::from_str(&ok(&out)).unwrap();
    let anon = f.site.api_client();
    let token = anon
        .oauth2_token(&created.client_id, &created.client_secret, None)
        .await
        .unwrap()
        .access_token;
    let mut io = tokio::time::timeout(
        WAIT,
        anon.with_token(token)
            .connect("srv", jumpgate_proto::session::SessionKind::Exec),
    )
    .await
    .unwrap()
    .unwrap();
    let open = SessionMsg::Open(SessionRequest::Exec {
        command: vec!["sh".into(), "-c".into(), TICKER.into()],
    });
    io.write_all(&open.to_bytes()).await.unwrap();
    let mut buf = BytesMut::new();
    // Reads messages until `done` matches one; bounded.
    async fn until(
        io: &mut jumpgate_client::SessionIo,
        buf: &mut BytesMut,
        done: impl Fn(&SessionMsg) -> bool,
    ) -> SessionMsg {
        tokio::time::timeout(WAIT, async {
            loop {
                while let Some(m) = SessionMsg::decode(buf).unwrap() {
                    if done(&m) {
                        return m;
                    }
                }
                let n = io.read_buf(buf).await.unwrap();
                assert!(n > 0, "the session ended without a reason");
            }
        })
        .await
        .expect("the API client's session neither progressed nor ended")
    }
    until(
        &mut io,
        &mut buf,
        |m| matches!(m, SessionMsg::Stdout(d) if d.starts_with(b"tick")),
    )
    .await;

    ok(&f.site.jg(&["admin", "api-clients", "delete", "bot"]).await);

    let closed = until(&mut io, &mut buf, |m| {
        matches!(m, SessionMsg::Closed { .. })
    })
    .await;
    let SessionMsg::Closed { reason } = closed else {
        unreachable!()
    };
    assert_eq!(reason, "access revoked: the API client was deleted");
    let audit = revoke_audited(&f.site, "subject=bot").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
}

// --- Groups -------------------------------------------------------------------

#[tokio::test]
async fn the_group_a_technicians_access_comes_through_goes_only_after_the_session_ends() {
    let f = fixture(&[]).await;
    // bob reaches `srv` only through the group `lab`.
    ok(&f.site.jg(&["admin", "groups", "create", "lab"]).await);
    ok(&f
        .site
        .jg(&["admin", "endpoints", "set-group", "srv", "lab"])
        .await);
    ok(&f
        .site
        .jg(&["admin", "users", "update", TECH, "--groups", "lab"])
        .await);
    let exec = live_exec(&f.site, &f.home).await;

    // A group that still holds a live endpoint cannot be deleted, so it
    // cannot vanish under a session (users' lists name groups; only the
    // endpoint's group decides).
    let err = fails(&f.site.jg(&["admin", "groups", "delete", "lab"]).await);
    assert!(
        err.contains("group `lab` still holds 1 endpoint(s); move them first"),
        "{err}"
    );
    let groups: Vec<api::Group> = serde_json::from_str(&ok(&f
        .site
        .jg(&["admin", "groups", "list", "--json"])
        .await))
    .unwrap();
    assert!(groups.iter().any(|g| g.name == "lab"), "{groups:?}");
    // The refused request was re-checked (every write is) and the session
    // kept: it still prints, and nothing was audited as revoked.
    let rows: Vec<api::SessionEvent> =
        serde_json::from_str(&ok(&f.site.jg(&["sessions", "--json"]).await)).unwrap();
    assert!(
        rows.iter()
            .any(|r| r.username == TECH && r.kind == "exec" && r.ended_at.is_none()),
        "{rows:#?}"
    );

    // Emptying the group, as deleting it requires, is what ends the session.
    ok(&f
        .site
        .jg(&["admin", "endpoints", "set-group", "srv", "default"])
        .await);
    assert_revoked(&f.site, exec, "the endpoint is outside your groups").await;
    let audit = revoke_audited(&f.site, "kind=exec").await;
    assert_eq!(audit.len(), 1, "ended once, audited once: {audit:?}");
    // Not while a user still holds it: a group of the same name created
    // later would give them access again.
    let err = fails(&f.site.jg(&["admin", "groups", "delete", "lab"]).await);
    assert!(
        err.contains(&format!("group `lab` is still given to user {TECH}")),
        "{err}"
    );
    ok(&f
        .site
        .jg(&["admin", "users", "update", TECH, "--groups", "default"])
        .await);
    // Then the group goes.
    ok(&f.site.jg(&["admin", "groups", "delete", "lab"]).await);
    let groups: Vec<api::Group> = serde_json::from_str(&ok(&f
        .site
        .jg(&["admin", "groups", "list", "--json"])
        .await))
    .unwrap();
    assert!(groups.iter().all(|g| g.name != "lab"), "{groups:?}");
}

// --- File transfers ---------------------------------------------------------------

/// A CONNECT proxy that passes at most `rate` bytes per second each way on
/// every tunnel: `jg --proxy` through it makes a transfer last long enough
/// to be cut mid-way (pacing, not synchronisation: the test waits for
/// conditions, never for time).
async fn throttling_proxy(rate: u64) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(up) = open_connect_tunnel(&mut s).await else {
                    return;
                };
                let (sr, sw) = s.into_split();
                let (ur, uw) = up.into_split();
                tokio::join!(paced(sr, uw, rate), paced(ur, sw, rate));
            });
        }
    });
    addr
}

async fn paced(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    rate: u64,
) {
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        sent += n as u64;
        tokio::time::sleep_until(start + Duration::from_micros(sent * 1_000_000 / rate)).await;
    }
    let _ = w.shutdown().await;
}

/// `size` bytes of a pattern that is not the same in every block.
fn big_file(path: &std::path::Path, size: usize) {
    let mut data = Vec::with_capacity(size);
    let mut i = 0u64;
    while data.len() < size {
        data.extend_from_slice(&i.to_le_bytes());
        i += 1;
    }
    data.truncate(size);
    std::fs::write(path, data).unwrap();
}

/// Names in `dir`.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn revoking_a_users_sessions_cuts_transfers_mid_way_and_leaves_no_partial_file() {
    const SIZE: usize = 192 << 20;
    // 8 MiB/s each way: the copies cannot finish in under 24 s, however
    // fast the machine; the gateway records progress every 3 s.
    const RATE: u64 = 8 << 20;
    let f = fixture(&[]).await;
    let proxy = format!("http://{}", throttling_proxy(RATE).await);
    let work = f.site.dir.path().join("transfers");
    let (src, down_dir, up_dir) = (work.join("src"), work.join("down"), work.join("up"));
    for d in [&src, &down_dir, &up_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let remote_file = src.join("big.bin");
    big_file(&remote_file, SIZE);
    let local_file = src.join("local.bin");
    big_file(&local_file, SIZE);
    let up_dest = up_dir.join("big.bin");

    let spawn = |args: Vec<String>| {
        let mut cmd = f.site.jg_command(&[]);
        cmd.args(["--proxy", &proxy])
            .args(&args)
            .env("JG_HOME", &f.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let download = spawn(vec![
        "cp".into(),
        format!("srv:{}", remote_file.display()),
        format!("{}/", down_dir.display()),
    ]);
    let upload = spawn(vec![
        "cp".into(),
        local_file.display().to_string(),
        format!("srv:{}", up_dest.display()),
    ]);

    // Both are mid-way: the gateway has relayed file data of each.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<api::SessionEvent> =
            serde_json::from_str(&ok(&f.site.jg(&["sessions", "--json"]).await)).unwrap();
        let moving = |kind: &str| {
            rows.iter()
                .any(|r| r.kind == kind && r.ended_at.is_none() && (r.bytes_up + r.bytes_down) > 0)
        };
        if moving("download") && moving("upload") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transfers never got going: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    ok(&f
        .site
        .jg(&["admin", "users", "revoke-sessions", TECH])
        .await);

    for (what, child) in [("download", download), ("upload", upload)] {
        let err = ended(child).await;
        assert!(
            err.contains(
                "session closed by the gateway: access revoked: your login session was revoked"
            ),
            "{what}: jg did not say why it stopped: {err}"
        );
    }
    // Cut mid-way, as the session log says, and audited per transfer.
    let rows: Vec<api::SessionEvent> =
        serde_json::from_str(&ok(&f.site.jg(&["sessions", "--json"]).await)).unwrap();
    for kind in ["download", "upload"] {
        let row = rows
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} row: {rows:#?}"));
        let moved = row.bytes_up + row.bytes_down;
        assert!(
            moved > 0 && moved < SIZE as u64,
            "the {kind} was not cut mid-way: {row:#?}"
        );
        revoke_audited(&f.site, &format!("kind={kind}")).await;
    }
    session_outcome(&f.site, "your login session was revoked").await;

    // No file at either destination, complete-looking or partial: jg
    // removed its temporary file at once; the agent removes its own when
    // the gateway resets the stream.
    assert_eq!(names_in(&down_dir), Vec::<String>::new());
    let deadline = tokio::time::Instant::now() + WAIT;
    while !names_in(&up_dir).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cut upload left {:?} on the endpoint",
            names_in(&up_dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!up_dest.exists());
    // The sources are intact.
    assert_eq!(std::fs::metadata(&remote_file).unwrap().len(), SIZE as u64);
}
