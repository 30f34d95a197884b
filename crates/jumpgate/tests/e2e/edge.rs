//! The gateway's edges, tried as an outsider would: slow and idle
//! connections, floods of anonymous connections, a man in the middle; and
//! what operators see at them (log files, file modes, messages, hints).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jumpgate_net::tls::{self, Fingerprint, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::Command;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, ServerName};

use crate::support::{ADMIN, ADMIN_PASSWORD, Site, WAIT, fails, http_exchange, jumpgate_bin, ok};

/// A site whose gateway reads `limits` as its `[limits]` table.
async fn site_with_limits(limits: &str, extra: &[&str]) -> (Site, tempfile::TempDir) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("jumpgate.toml");
    std::fs::write(&cfg, format!("[limits]\n{limits}\n")).unwrap();
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Site::start_with(&args).await, cfg_dir)
}

/// A TLS connection to the gateway from loopback address `source`.
async fn tls_from(site: &Site, source: Ipv4Addr) -> std::io::Result<TlsStream<TcpStream>> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((source, 0)))?;
    let tcp = sock.connect(site.gateway.addr).await?;
    let trust = Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let cfg = tls::client_config(&trust, &[b"http/1.1"]).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Starts a request whose body never arrives in full (Content-Length far
/// beyond the one byte sent).
async fn start_slow_request(tls: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    tls.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await?;
    tls.flush().await
}

/// Reads one HTTP answer (head and `Content-Length` body); its status.
async fn read_response(tls: &mut TlsStream<TcpStream>) -> std::io::Result<u16> {
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while raw.len() < split + 4 + len {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            raw.extend_from_slice(&buf[..n]);
        }
        Ok(head[9..12].parse().unwrap())
    };
    tokio::time::timeout(WAIT, read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Waits (with a deadline) until the gateway closes `tls`; returns how long
/// it took, or `None` if it was still open at the deadline.
async fn closed_within(tls: &mut TlsStream<TcpStream>, deadline: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_slow_request_body_is_cut_off_at_its_minimum_rate() {
    // Default limits: 1024 bytes/s after a 5 s grace.
    let site = Site::start().await;
    let mut tls = tls_from(&site, Ipv4Addr::LOCALHOST).await.unwrap();
    start_slow_request(&mut tls).await.unwrap();
    // One byte every second: open for ever before.
    let (mut rd, mut wr) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    let took = closed.unwrap_or_else(|_| {
        panic!(
            "a body trickling at 1 byte/s was still open after {WAIT:?}\n{}",
            site.gateway.stderr.text()
        )
    });
    assert!(
        site.gateway.stderr.wait_for("request body too slow").await,
        "closed after {took:?} for another reason:\n{}",
        site.gateway.stderr.text()
    );
    // The gateway is fine for everyone else.
    ok(&site.jg(&["endpoints"]).await);
}

#[tokio::test]
async fn idle_connections_close_but_sessions_and_agents_stay() {
    let (site, _cfg) = site_with_limits("idle_timeout = \"2s\"", &[]).await;
    let _agent = site.start_agent("idle-1").await;
    // A connection that never sends a request is closed.
    let mut tls = tls_from(&site, Ipv4Addr::LOCALHOST).await.unwrap();
    assert!(
        closed_within(&mut tls, WAIT).await.is_some(),
        "an idle connection stayed open"
    );
    // A session lasting longer than the idle timeout is not cut: after its
    // upgrade, the connection belongs to the session.
    let out = site
        .jg(&[
            "shell",
            "idle-1",
            "--",
            "sh",
            "-c",
            "sleep 5; echo still-here",
        ])
        .await;
    assert_eq!(ok(&out).trim(), "still-here");
    // Nor is the agent's connection (it was used just now, and it stays).
    let log = site.gateway.stderr.text();
    assert_eq!(log.matches("agent connected").count(), 1, "{log}");
    site.wait_online("idle-1", true).await;
}

#[tokio::test]
async fn one_address_gets_only_its_share_of_unauthenticated_connections() {
    let (site, _cfg) = site_with_limits(
        "max_unauthenticated = 10\nmax_unauthenticated_per_address = 2",
        &[],
    )
    .await;
    let a = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tls_from(&site, a).await.expect("within the share"));
    }
    // Beyond its share, the address is refused at once...
    let refused = tls_from(&site, a).await;
    assert!(refused.is_err(), "a third connection from {a} was accepted");
    // ... while another address still gets through,
    let mut b = tls_from(&site, Ipv4Addr::new(127, 0, 0, 3))
        .await
        .expect("another address");
    b.write_all(b"GET /api/v1/auth/session HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, b.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 "), "{:?}", &buf[..n]);
    // ... and logged-in users too.
    ok(&site.jg(&["endpoints"]).await);
    // Once one of them is gone, the address may connect again.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(t) = tls_from(&site, a).await {
            held.push(t);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{a} stayed refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_flood_of_anonymous_connections_does_not_lock_out_agents_and_users() {
    // Bounds so loose that the flood's connections last the whole test:
    // what keeps the site usable is admission, not time limits.
    let (site, _cfg) = site_with_limits(
        "max_connections = 16\nmax_unauthenticated = 8\nmax_unauthenticated_per_address = 4\nrequest_body_timeout = \"10m\"\nrequest_body_min_rate = 1\nidle_timeout = \"10m\"",
        &[],
    )
    .await;
    // A logged-in user's keep-alive connection, opened before the flood.
    let token = site.saved_token(&site.jg_home());
    let me = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut user = tls_from(&site, Ipv4Addr::new(127, 0, 0, 5)).await.unwrap();
    user.write_all(me.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut user).await.unwrap(), 200);
    // 40 slow requests from 10 addresses: five times the unauthenticated
    // share, more than twice the whole connection limit.
    let mut flood = Vec::new();
    for host in 10..20 {
        for _ in 0..4 {
            if let Ok(mut t) = tls_from(&site, Ipv4Addr::new(127, 0, 0, host)).await
                && start_slow_request(&mut t).await.is_ok()
            {
                flood.push(t);
            }
        }
    }
    // The share is full: newcomers displace the oldest.
    assert!(
        site.gateway
            .stderr
            .wait_for("unauthenticated connection closed to admit a newer one")
            .await,
        "the flood never filled the unauthenticated share ({} connections)\n{}",
        flood.len(),
        site.gateway.stderr.text()
    );
    // The authenticated connection was not among those displaced.
    user.write_all(me.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut user).await.expect("still open"), 200);
    // An agent enrolls and connects; a logged-in technician works.
    let _agent = site.start_agent("flooded-1").await;
    let out = site
        .jg(&["shell", "flooded-1", "--", "echo", "through the flood"])
        .await;
    assert_eq!(ok(&out).trim(), "through the flood");
    ok(&site.jg(&["endpoints"]).await);
    drop(flood);
}

/// The site's console origin decides the WebSocket check, not the Host the
/// request names; and a non-loopback host name has no loopback aliases.
#[tokio::test]
async fn the_console_websocket_must_come_from_the_configured_origin() {
    let site = Site::start_with(&["--hostname", "gw.example"]).await;
    let port = site.gateway.addr.port();
    let body = serde_json::json!({"username": ADMIN, "password": ADMIN_PASSWORD, "cookie": true})
        .to_string();
    let (status, head, _) = http_exchange(
        &site,
        "POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json",
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim())
        })
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let ws = |origin: &str| {
        format!(
            "GET /api/v1/endpoints/nosuch/connect?kind=shell HTTP/1.1\r\nCookie: {cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}"
        )
    };
    // The request's Host is 127.0.0.1:PORT: an Origin matching it is not
    // the site's.
    let (status, head, body) =
        http_exchange(&site, &ws(&format!("https://127.0.0.1:{port}")), b"").await;
    assert_eq!(status, 403, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"csrf\""));
    // The configured origin passes the check (and meets the next one: no
    // such endpoint).
    let (status, head, _) =
        http_exchange(&site, &ws(&format!("https://gw.example:{port}")), b"").await;
    assert_eq!(status, 404, "{head}");
}

#[tokio::test]
async fn database_audit_head_and_control_socket_are_private_files() {
    let site = Site::start().await;
    let data = site.data_dir();
    let head = data.join("audit-head");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !head.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit-head written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // On PostgreSQL the data directory holds no database file.
    let files: &[&str] = match site.engine() {
        jumpgate_test_support::Engine::Sqlite => &[
            "jumpgate.db",
            "jumpgate.db-wal",
            "jumpgate.db-shm",
            "audit-head",
        ],
        jumpgate_test_support::Engine::Postgres => &["audit-head"],
    };
    for name in files {
        let mode = std::fs::metadata(data.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
    let mode = std::fs::metadata(data.join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "control.sock has mode {:o}",
        mode & 0o777
    );
    // The modes are the files' own, not only the directory's.
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
}

#[tokio::test]
async fn a_missing_keyring_is_refused_and_nothing_is_written() {
    let mut site = Site::start().await;
    assert!(site.gateway.terminate().await.success());
    let keys = site.data_dir().join("keys");
    std::fs::remove_file(keys.join("keyring.json")).unwrap();
    let root_before = std::fs::read(keys.join("root.key")).unwrap();
    let out = tokio::time::timeout(
        WAIT,
        Command::new(jumpgate_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(site.data_dir())
            .args(site.database_args())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the gateway did not stop")
    .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("keyring.json is missing") && err.contains("restore"),
        "{err}"
    );
    assert!(!err.contains("another site"), "{err}");
    let err = fails(&site.admin(&["key-status"]).await);
    assert!(err.contains("keyring.json is missing"), "{err}");
    assert!(
        !keys.join("keyring.json").exists(),
        "a new keyring was written"
    );
    assert_eq!(std::fs::read(keys.join("root.key")).unwrap(), root_before);
}

#[tokio::test]
async fn log_files_get_no_colour_codes_and_the_hint_names_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.log");
    let err_path = dir.path().join("err.log");
    let mut child = Command::new(jumpgate_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = std::fs::read_to_string(&out_path).unwrap();
        let err = std::fs::read_to_string(&err_path).unwrap();
        // The first start issues the site's certificate: a known log line.
        if out.contains("enroll-token") && err.contains("issued a new server certificate") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no start-up lines\nstdout:\n{out}\nstderr:\n{err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    let err = std::fs::read(&err_path).unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        String::from_utf8_lossy(&err).contains(" INFO "),
        "{}",
        String::from_utf8_lossy(&err)
    );
    assert!(!err.contains(&0x1b), "{}", String::from_utf8_lossy(&err));
    assert!(!out.contains('\u{1b}'), "{out}");
    // The hint: create a user, log in, enroll — in that order.
    let steps: Vec<usize> = ["create-user", "login", "enroll-token"]
        .iter()
        .map(|s| out.find(s).unwrap_or_else(|| panic!("no `{s}` in:\n{out}")))
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{out}");
}

#[tokio::test]
async fn enroll_token_says_where_the_token_went_when_captured() {
    let site = Site::start().await;
    let out = site.admin(&["enroll-token"]).await;
    let token = ok(&out);
    assert!(!token.trim().is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("valid until"), "{err}");
    assert!(!err.trim_end().ends_with(':'), "dangling: {err}");
    assert!(err.contains("on standard output"), "{err}");
}

#[tokio::test]
async fn jg_forward_to_an_endpoint_it_cannot_see_fails_at_start() {
    let site = Site::start().await;
    let out = tokio::time::timeout(
        WAIT,
        site.jg_command(&["forward", "nosuch", "0:127.0.0.1:22"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("jg forward kept running for an endpoint that does not exist")
    .unwrap();
    let err = fails(&out);
    assert!(err.contains("no endpoint named `nosuch`"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("forwarding"));
}

#[tokio::test]
async fn the_agent_reads_its_enrollment_token_from_a_file() {
    let site = Site::start().await;
    let token = site.enroll_token(&[]).await;
    let file = site.dir.path().join("enroll.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let _agent = site.spawn_agent(
        "file-1",
        None,
        &["--enroll-token-file", file.to_str().unwrap()],
    );
    site.wait_online("file-1", true).await;
}

/// A TLS proxy with its own self-signed certificate that relays to the
/// gateway: a man in the middle. Returns its address and fingerprint.
async fn man_in_the_middle(site: &Site) -> (SocketAddr, Fingerprint) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fp = Fingerprint::of(cert.der());
    let alpn: [&[u8]; 2] = [b"http/1.1", jumpgate_proto::control::AGENT_ALPN];
    let server = tls::server_config(
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        &alpn,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
    let pin: Fingerprint = site.gateway.fingerprint.parse().unwrap();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut down) = acceptor.accept(tcp).await else {
                    return;
                };
                let proto = down.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                let protos: Vec<&[u8]> = proto.iter().map(Vec::as_slice).collect();
                let cfg = tls::client_config(&Trust::Pinned(pin), &protos).unwrap();
                let Ok(mut up) = jumpgate_net::dial::connect_tls(&upstream, cfg, None).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    (addr, fp)
}

/// `jg login` through `via`, pinning `fp`, in a home of its own.
async fn login_via(site: &Site, via: &str, fp: &str, pw: &std::path::Path) -> std::process::Output {
    let mut cmd = site.jg_command(&[
        "--server",
        via,
        "--ca-fingerprint",
        fp,
        "login",
        "--user",
        ADMIN,
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    cmd.env("JG_HOME", site.dir.path().join(format!("jg-{}", &fp[..8])));
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap()
        .unwrap()
}

fn assert_plain_pin_message(err: &str, pin: &str) {
    assert!(
        err.contains("does not match the pinned fingerprint") && err.contains(pin),
        "{err}"
    );
    assert!(err.contains("jumpgate admin fingerprint"), "{err}");
    for internal in ["OtherError", "PinMismatch", "docs.rs", "InvalidCertificate"] {
        assert!(!err.contains(internal), "`{internal}` in: {err}");
    }
}

#[tokio::test]
async fn a_man_in_the_middle_is_refused_by_jg_and_the_agent_with_a_clear_message() {
    let site = Site::start().await;
    let (mitm, mitm_fp) = man_in_the_middle(&site).await;
    let via = format!("https://{mitm}");
    let pw = site.dir.path().join("admin.pw");
    std::fs::write(&pw, format!("{ADMIN_PASSWORD}\n")).unwrap();
    // Positive control: trusting the proxy's own certificate, the proxy
    // relays to the gateway (so a refusal below is the pin's doing).
    ok(&login_via(&site, &via, &mitm_fp.to_string(), &pw).await);
    // Pinned to the site: refused, in words.
    let err = fails(&login_via(&site, &via, &site.gateway.fingerprint, &pw).await);
    assert_plain_pin_message(&err, &site.gateway.fingerprint);

    // The agent, enrolling through it.
    let token = site.enroll_token(&[]).await;
    let state = site.dir.path().join("mitm-agent");
    let out = tokio::time::timeout(
        WAIT,
        Command::new(jumpgate_bin())
            .args(["agent", "--server", &via, "--ca-fingerprint"])
            .arg(&site.gateway.fingerprint)
            .arg("--state-dir")
            .arg(&state)
            .args(["--name", "mitm-1"])
            .env("JUMPGATE_ENROLL_TOKEN", &token)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the agent kept running")
    .unwrap();
    assert_plain_pin_message(&fails(&out), &site.gateway.fingerprint);
    // Nothing was enrolled: the token still works, directly.
    let agent = site.spawn_agent("direct-1", Some(&token), &[]);
    site.wait_online("direct-1", true).await;
    drop(agent);

    // A forgotten --ca-fingerprint: told what to pass.
    let mut cmd = site.jg_command(&[
        "--server",
        &site.gateway.url(),
        "login",
        "--user",
        ADMIN,
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    cmd.env("JG_HOME", site.dir.path().join("jg-nopin"));
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap()
        .unwrap();
    let err = fails(&out);
    assert!(err.contains("--ca-fingerprint"), "{err}");
    assert!(!err.contains("UnknownIssuer"), "{err}");
}

/// The gateway's output on a terminal: coloured, unless `NO_COLOR` is set.
async fn gateway_on_a_terminal(no_color: bool) -> String {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let pair = portable_pty::native_pty_system()
        .openpty(portable_pty::PtySize {
            rows: 40,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = portable_pty::CommandBuilder::new(jumpgate_bin());
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"]);
    cmd.arg(dir.path().join("data"));
    cmd.env("RUST_LOG", "info");
    cmd.env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let s2 = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = screen.lock().unwrap().clone();
        if text.contains("issued a new server certificate") && text.contains("enroll-token") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no start-up lines:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();
    screen.lock().unwrap().clone()
}

#[tokio::test]
async fn no_color_turns_colour_off_even_on_a_terminal() {
    // Positive control: on a terminal, log lines are coloured.
    let coloured = gateway_on_a_terminal(false).await;
    assert!(coloured.contains('\u{1b}'), "{coloured}");
    let plain = gateway_on_a_terminal(true).await;
    assert!(plain.contains(" INFO "), "{plain}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}

fn rfc3339(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[tokio::test]
async fn a_session_cut_by_a_crash_ends_at_its_last_activity_with_its_bytes() {
    let mut site = Site::start().await;
    let _agent = site.start_agent("crash-1").await;
    let mut session = site
        .jg_command(&[
            "shell",
            "crash-1",
            "--",
            "sh",
            "-c",
            "echo before-the-crash; sleep 120",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = session.stdout.take().unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("before-the-crash") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0, "session ended early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no output from the session");
    // While it runs, its progress is recorded (and shown).
    let deadline = tokio::time::Instant::now() + WAIT;
    let live = loop {
        let rows: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["endpoint"] == "crash-1" && r["ended_at"].is_null())
            .cloned()
            .expect("the live session is listed");
        if row["bytes_down"].as_u64().unwrap() > 0 {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress recorded: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let port = site.gateway.addr.to_string();
    let killed_at = time::OffsetDateTime::now_utc();
    crate::support::signal(&site.gateway.child, rustix::process::Signal::KILL);
    let _ = tokio::time::timeout(WAIT, site.gateway.child.wait()).await;
    let _ = tokio::time::timeout(WAIT, session.wait()).await;
    site.gateway = crate::support::Gateway::start(&site.data_dir(), &["--listen", &port]).await;

    let rows: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == live["id"])
        .unwrap();
    assert!(
        row["outcome"].as_str().unwrap().contains("interrupted"),
        "{row}"
    );
    // Its bytes are the last recorded, and it ends at its last activity:
    // before the crash, not at the restart.
    let recorded = live["bytes_down"].as_u64().unwrap();
    assert!(row["bytes_down"].as_u64().unwrap() >= recorded, "{row}");
    let (started, ended) = (rfc3339(&row["started_at"]), rfc3339(&row["ended_at"]));
    assert!(
        started <= ended && ended <= killed_at,
        "{row} (killed at {killed_at})"
    );
}
