//! Test harness: the real `jumpgate` and `jg` binaries, started as child
//! processes on loopback ports chosen at run time, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub(crate) const ADMIN: &str = "admin";
pub(crate) const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";
/// Upper bound for anything a test waits on.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn jumpgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jumpgate")
}

pub(crate) fn jg_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jg")
}

/// Collects a child's output in the background (so pipes never fill) and
/// keeps it for failure messages.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<String>>);

impl Log {
    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn drain<R: AsyncRead + Unpin + Send + 'static>(&self, r: R) {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut l = log.0.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }

    /// Waits until the log contains `needle`.
    pub(crate) async fn wait_for(&self, needle: &str) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// A running gateway process.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) redirect: Option<SocketAddr>,
    pub(crate) fingerprint: String,
    pub(crate) stderr: Log,
}

impl Gateway {
    /// Starts `jumpgate server` and waits for its start-up lines.
    pub(crate) async fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(jumpgate_bin());
        cmd.arg("server").arg("--data-dir").arg(data_dir);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .env("RUST_LOG", "info,jumpgate_server=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn jumpgate server");
        let stdout = Log::default();
        let stderr = Log::default();
        stdout.drain(child.stdout.take().unwrap());
        stderr.drain(child.stderr.take().unwrap());
        if !stdout.wait_for("certificate fingerprint").await {
            panic!(
                "gateway did not start\nstdout:\n{}\nstderr:\n{}",
                stdout.text(),
                stderr.text()
            );
        }
        let text = stdout.text();
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
        };
        let addr = field("listening on https://").unwrap().parse().unwrap();
        let redirect =
            field("redirecting http://").map(|r| r.trim_end_matches(" to https").parse().unwrap());
        let fingerprint = text
            .lines()
            .find(|l| l.starts_with("certificate fingerprint"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .to_owned();
        Self {
            child,
            addr,
            redirect,
            fingerprint,
            stderr,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SIGTERM, then wait for the exit status.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.child.try_wait().unwrap() {
            return status;
        }
        signal(&self.child, rustix::process::Signal::TERM);
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("gateway did not stop after SIGTERM")
            .unwrap()
    }
}

pub(crate) fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// A running agent process.
pub(crate) struct Agent {
    pub(crate) child: Child,
    pub(crate) stderr: Log,
}

/// A site: data dir, gateway, an admin logged in with `jg`.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) gateway: Gateway,
}

impl Site {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub(crate) async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let gateway = Gateway::start(&dir.path().join("data"), extra).await;
        let site = Self { dir, gateway };
        site.create_user(ADMIN, "admin", ADMIN_PASSWORD).await;
        site.login(ADMIN, ADMIN_PASSWORD).await;
        site
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn jg_home(&self) -> PathBuf {
        self.dir.path().join("jg")
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same port.
    pub(crate) async fn restart(&mut self, extra: &[&str]) {
        let port = self.gateway.addr.to_string();
        assert!(self.gateway.terminate().await.success());
        let mut args = vec!["--listen", port.as_str()];
        args.extend_from_slice(extra);
        self.gateway = Gateway::start(&self.data_dir(), &args).await;
    }

    pub(crate) async fn admin(&self, args: &[&str]) -> Output {
        self.admin_command(args).output().await.unwrap()
    }

    /// `jumpgate admin --data-dir <site> ARGS`, to adjust before running.
    pub(crate) fn admin_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(jumpgate_bin());
        cmd.arg("admin")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn create_user(&self, name: &str, role: &str, password: &str) {
        let pw = self.dir.path().join(format!("{name}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        ok(&self
            .admin(&[
                "create-user",
                name,
                "--role",
                role,
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await);
    }

    pub(crate) async fn login(&self, name: &str, password: &str) {
        let pw = self.dir.path().join(format!("{name}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let out = self
            .jg(&[
                "--server",
                &self.gateway.url(),
                "--ca-fingerprint",
                &self.gateway.fingerprint,
                "login",
                "--user",
                name,
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await;
        ok(&out);
    }

    pub(crate) async fn enroll_token(&self, args: &[&str]) -> String {
        let mut a = vec!["enroll-token"];
        a.extend_from_slice(args);
        ok(&self.admin(&a).await).trim().to_owned()
    }

    pub(crate) fn jg_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(jg_bin());
        cmd.args(args)
            .env("JG_HOME", self.jg_home())
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn jg(&self, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT * 2, self.jg_command(args).output())
            .await
            .unwrap_or_else(|_| panic!("jg {args:?} hung"))
            .unwrap()
    }

    pub(crate) async fn endpoints(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&self.jg(&["endpoints", "--json"]).await)).unwrap()
    }

    pub(crate) async fn wait_online(&self, name: &str, online: bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let eps = self.endpoints().await;
            let state = eps
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["online"] == true);
            if state == Some(online) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "endpoint {name} never became online={online}: {eps}\ngateway log:\n{}",
                self.gateway.stderr.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Spawns an agent whose state directory is named after it; `extra`
    /// adds flags (e.g. `--proxy`).
    pub(crate) fn spawn_agent(&self, name: &str, token: Option<&str>, extra: &[&str]) -> Agent {
        self.spawn_agent_in(name, name, token, extra)
    }

    /// Spawns an agent with state directory `state`.
    pub(crate) fn spawn_agent_in(
        &self,
        state: &str,
        name: &str,
        token: Option<&str>,
        extra: &[&str],
    ) -> Agent {
        // The endpoint's shells start in a clean home, so this machine's
        // shell start-up files (slow, or reading the terminal) stay out of
        // the tests.
        let home = self.dir.path().join("agents").join(format!("{state}-home"));
        std::fs::create_dir_all(&home).unwrap();
        self.spawn_agent_at(state, name, token, extra, &home)
    }

    /// `jumpgate agent` with its state in `agents/STATE` and `HOME=home`.
    fn spawn_agent_at(
        &self,
        state: &str,
        name: &str,
        token: Option<&str>,
        extra: &[&str],
        home: &Path,
    ) -> Agent {
        let state_dir = self.dir.path().join("agents").join(state);
        let mut cmd = Command::new(jumpgate_bin());
        cmd.args([
            "agent",
            "--server",
            &self.gateway.url(),
            "--ca-fingerprint",
            &self.gateway.fingerprint,
        ])
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["--name", name])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("HOME", home)
        .env("SHELL", "/bin/bash")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if let Some(t) = token {
            cmd.args(["--enroll-token", t]);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Log::default();
        stderr.drain(child.stderr.take().unwrap());
        Agent { child, stderr }
    }

    /// Enrolls a new agent and waits until it is online.
    pub(crate) async fn start_agent(&self, name: &str) -> Agent {
        let token = self.enroll_token(&[]).await;
        let agent = self.spawn_agent(name, Some(&token), &[]);
        self.wait_online(name, true).await;
        agent
    }
}

/// Asserts success and returns stdout.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure and returns stderr.
pub(crate) fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded:\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Identity and access helpers (tests/e2e/identity.rs).
// ---------------------------------------------------------------------------

/// TOTP time step length (RFC 6238 default, what the gateway uses).
pub(crate) const TOTP_STEP_SECS: u64 = 30;

/// RFC 4648 base32 (no padding), ignoring spaces and case.
pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {s:?}")) as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits) for one time step.
pub(crate) fn totp(secret: &[u8], step: u64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The current TOTP time step.
pub(crate) fn totp_step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / TOTP_STEP_SECS
}

/// What `jg mfa enroll` showed and printed.
pub(crate) struct MfaEnrollment {
    pub(crate) secret: Vec<u8>,
    /// The step whose code confirmed the enrollment (spent: the gateway
    /// accepts only later steps from now on).
    pub(crate) step: u64,
    pub(crate) recovery_codes: Vec<String>,
    pub(crate) stdout: String,
}

impl Site {
    /// Writes `password` to a file in the site's directory and returns its path.
    pub(crate) fn password_file(&self, file: &str, password: &str) -> PathBuf {
        let p = self.dir.path().join(file);
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// A separate `JG_HOME` (another person, or the same person elsewhere).
    pub(crate) fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("home-{name}"))
    }

    /// `jg ARGS` with `JG_HOME=home`.
    pub(crate) async fn jg_in(&self, home: &Path, args: &[&str]) -> Output {
        let mut cmd = self.jg_command(args);
        cmd.env("JG_HOME", home);
        tokio::time::timeout(WAIT * 2, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("jg {args:?} hung"))
            .unwrap()
    }

    /// `jg login` into `home` (whatever the outcome); `extra` adds flags
    /// such as `--totp CODE`.
    pub(crate) async fn try_login_in(
        &self,
        home: &Path,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> Output {
        let pw = self.password_file(&format!("login-{user}.pw"), password);
        let url = self.gateway.url();
        let mut args = vec![
            "--server",
            url.as_str(),
            "--ca-fingerprint",
            self.gateway.fingerprint.as_str(),
            "login",
            "--user",
            user,
            "--password-file",
            pw.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.jg_in(home, &args).await
    }

    /// `jumpgate admin ARGS`, bounded in time.
    pub(crate) async fn admin_bounded(&self, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT * 2, self.admin(args))
            .await
            .unwrap_or_else(|_| panic!("jumpgate admin {args:?} hung"))
    }

    /// Runs `jg mfa enroll` in `home` as a person would: reads the secret it
    /// shows, computes the authenticator app's current code and types it on
    /// stdin (a pipe, so no prompt).
    pub(crate) async fn mfa_enroll(&self, home: &Path) -> MfaEnrollment {
        let mut child = self
            .jg_command(&["mfa", "enroll"])
            .env("JG_HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stderr = Log::default();
        stderr.drain(child.stderr.take().unwrap());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = String::new();
        let secret = loop {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("jg mfa enroll showed no secret")
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "jg mfa enroll ended before showing a secret:\n{stdout}\nstderr:\n{}",
                        stderr.text()
                    )
                });
            stdout.push_str(&line);
            stdout.push('\n');
            if let Some(s) = line.trim().strip_prefix("Secret:") {
                break base32_decode(s);
            }
        };
        assert_eq!(secret.len(), 20, "a 160-bit secret");
        let step = totp_step_now();
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(format!("{}\n", totp(&secret, step)).as_bytes())
            .await
            .unwrap();
        drop(stdin);
        while let Some(line) = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("jg mfa enroll hung after the code")
            .unwrap()
        {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("jg mfa enroll did not exit")
            .unwrap();
        assert!(
            status.success(),
            "jg mfa enroll failed ({status}):\n{stdout}\nstderr:\n{}",
            stderr.text()
        );
        // "   1. 7KQ2-M9XW-3FHD"
        let recovery_codes = stdout
            .lines()
            .filter_map(|l| {
                let (n, code) = l.trim().split_once(". ")?;
                n.parse::<u32>().ok().map(|_| code.trim().to_owned())
            })
            .collect();
        MfaEnrollment {
            secret,
            step,
            recovery_codes,
            stdout,
        }
    }

    /// An unauthenticated API client pinned to the site's CA (what curl
    /// with `--cacert` would be).
    pub(crate) fn api_client(&self) -> jumpgate_client::Client {
        let trust = jumpgate_net::tls::Trust::Pinned(self.gateway.fingerprint.parse().unwrap());
        jumpgate_client::Client::new(self.gateway.url().parse().unwrap(), &trust, None).unwrap()
    }

    /// The bearer token `jg login` saved in `home`.
    pub(crate) fn saved_token(&self, home: &Path) -> String {
        let text = std::fs::read_to_string(home.join("session.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// `GET /api/v1/events` with the session saved in the default `JG_HOME`.
    pub(crate) async fn security_events(&self) -> Vec<jumpgate_api_types::SecurityEvent> {
        let token = self.saved_token(&self.jg_home());
        tokio::time::timeout(
            WAIT,
            self.api_client()
                .with_token(token)
                .get_json("/api/v1/events"),
        )
        .await
        .expect("GET /api/v1/events hung")
        .unwrap()
    }
}

/// One HTTP exchange whatever the status: `(status, body)`.
pub(crate) async fn raw_call(
    client: &jumpgate_client::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, body) = tokio::time::timeout(
        WAIT,
        client.raw(method.parse().unwrap(), path, content_type, body.to_vec()),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path} hung"))
    .unwrap();
    (status.as_u16(), body.to_vec())
}

/// A hand-written HTTP/1.1 request over TLS to the gateway (what `curl -v`
/// would send, headers included): `(status, head, body)`. `request` is the
/// request line and headers without `Host`, `Connection` and the blank line.
pub(crate) async fn http_exchange(
    site: &Site,
    request: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let trust = jumpgate_net::tls::Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let cfg = jumpgate_net::tls::client_config(&trust, &[b"http/1.1"]).unwrap();
    let url: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
    let exchange = async {
        let mut tls = jumpgate_net::dial::connect_tls(&url, cfg, None)
            .await
            .unwrap();
        let head = format!(
            "{}\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            request.trim_end(),
            site.gateway.addr,
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        // The gateway closes after answering (`Connection: close`); a TLS
        // close without close_notify still leaves the answer readable.
        let _ = tls.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{request} hung"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, head, raw[split + 4..].to_vec())
}

// ---------------------------------------------------------------------------
// Web console helpers (tests/e2e/web.rs).
// ---------------------------------------------------------------------------

impl Site {
    /// Enrolls a new agent whose shells start with `HOME=home` (a clean
    /// profile: the test machine's own dotfiles can take a minute to run),
    /// and waits until it is online.
    pub(crate) async fn start_agent_with_home(&self, name: &str, home: &Path) -> Agent {
        let token = self.enroll_token(&[]).await;
        let agent = self.spawn_agent_at(name, name, Some(&token), &[], home);
        self.wait_online(name, true).await;
        agent
    }
}

// ---------------------------------------------------------------------------
// Positive controls for "not in the log" checks (issue 10).
// ---------------------------------------------------------------------------

impl Site {
    /// The gateway's log up to now, proven captured: makes the gateway log
    /// a line naming a fresh marker (a refused enrollment logs the name it
    /// was asked for) and waits until the captured log shows it. The log is
    /// one ordered stream, so every line the gateway wrote before this call
    /// is in the text returned, and a "secret not in the log" check over it
    /// can fail.
    pub(crate) async fn gateway_log_through_now(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("log-marker-{}-{n}", std::process::id());
        let body = jumpgate_api_types::EnrollRequest {
            token: "jge_not-a-token".into(),
            name: marker.clone(),
            public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            details: Default::default(),
        };
        let (status, _) = raw_call(
            &self.api_client(),
            "POST",
            "/api/v1/agents/enroll",
            Some("application/json"),
            &serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert!(
            (400..500).contains(&status),
            "the marker enrollment should be refused: {status}"
        );
        assert!(
            self.gateway.stderr.wait_for(&marker).await,
            "the gateway log never showed {marker}: is it captured at all?\n{}",
            self.gateway.stderr.text()
        );
        self.gateway.stderr.text()
    }
}

/// A TCP server on a loopback port that echoes every connection back.
pub(crate) async fn echo_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// The proxy side of an HTTP `CONNECT` on an accepted connection: reads
/// the request head, connects to its target and answers `200` (or `502`
/// when the target cannot be reached). Returns the connection to the
/// target, or `None` when the tunnel did not open.
pub(crate) async fn open_connect_tunnel(
    s: &mut tokio::net::TcpStream,
) -> Option<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_owned();
    let Ok(up) = tokio::net::TcpStream::connect(&target).await else {
        let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return None;
    };
    s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .ok()?;
    Some(up)
}
