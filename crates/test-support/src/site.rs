//! A site: its data directory, its gateway, an administrator logged in
//! with `jg`, and agents enrolled into it.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::engine::{Engine, PgDatabase};
use crate::{
    ADMIN, ADMIN_PASSWORD, Gateway, Log, WAIT, base32_decode, jg_bin, jumpgate_bin, ok, raw_call,
    totp, totp_step_now,
};

/// A running agent process, killed when dropped.
#[derive(Debug)]
pub struct Agent {
    pub child: Child,
    pub stderr: Log,
}

/// A site: data dir, gateway, an admin logged in with `jg`.
#[derive(Debug)]
pub struct Site {
    pub dir: tempfile::TempDir,
    pub gateway: Gateway,
    /// Its PostgreSQL database (`None`: SQLite); outlives every gateway
    /// started on the site, restarts included.
    pub database: Option<Arc<PgDatabase>>,
}

/// How to start a [`Site`]: `Site::builder().engine(Engine::Postgres)
/// .args(&["--redirect-listen", "127.0.0.1:0"]).start().await`.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SiteBuilder {
    engine: Option<Engine>,
    args: Vec<String>,
}

impl SiteBuilder {
    /// The database engine [default: `JUMPGATE_TEST_ENGINE`, else SQLite].
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Flags for `jumpgate server`.
    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|&a| a.to_owned()));
        self
    }

    /// Starts the gateway, creates the administrator and logs it in.
    ///
    /// # Panics
    /// PostgreSQL asked for without `JUMPGATE_TEST_POSTGRES` (see
    /// [`crate::for_each_engine`], which skips it instead).
    pub async fn start(self) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let engine = self.engine.unwrap_or_else(Engine::from_env);
        let extra: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let gateway = Gateway::start_with_engine(&data, &extra, engine).await;
        let site = Site {
            dir,
            database: gateway.database.clone(),
            gateway,
        };
        site.create_user(ADMIN, "admin", ADMIN_PASSWORD).await;
        site.login(ADMIN, ADMIN_PASSWORD).await;
        site
    }
}

impl Site {
    pub fn builder() -> SiteBuilder {
        SiteBuilder::default()
    }

    /// A site on the default engine.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A site on the default engine; `extra` adds `jumpgate server` flags.
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::builder().args(extra).start().await
    }

    /// The engine the site runs on.
    pub fn engine(&self) -> Engine {
        if self.database.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    /// The site's PostgreSQL URL (`None` on SQLite), for calls into the
    /// server crate's `admin` functions.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|db| db.url.as_str())
    }

    /// What tells `jumpgate server` or `jumpgate admin` where the site's
    /// database is, for commands a test builds itself: `--database URL`
    /// on PostgreSQL, nothing on SQLite (it is in the data directory).
    pub fn database_args(&self) -> Vec<String> {
        match &self.database {
            Some(db) => vec!["--database".to_owned(), db.url.clone()],
            None => Vec::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn jg_home(&self) -> PathBuf {
        self.dir.path().join("jg")
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same port.
    pub async fn restart(&mut self, extra: &[&str]) {
        let port = self.gateway.addr.to_string();
        assert!(self.gateway.terminate().await.success());
        let mut args = vec!["--listen", port.as_str()];
        args.extend_from_slice(extra);
        self.gateway = Gateway::start(&self.data_dir(), &args).await;
    }

    pub async fn admin(&self, args: &[&str]) -> Output {
        self.admin_command(args).output().await.unwrap()
    }

    /// `jumpgate admin --data-dir <site> ARGS`, to adjust before running.
    pub fn admin_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(jumpgate_bin());
        cmd.arg("admin")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(self.database_args())
            .args(args)
            .env_remove("JUMPGATE_DATABASE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub async fn create_user(&self, name: &str, role: &str, password: &str) {
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

    /// A technician `name` (endpoint group `default`), made with `jg admin
    /// users create` and logged in with `jg` in a home of their own, which
    /// is returned.
    pub async fn technician(&self, name: &str, password: &str) -> PathBuf {
        let pw = self.password_file(&format!("{name}.pw"), password);
        ok(&self
            .jg(&[
                "admin",
                "users",
                "create",
                name,
                "--role",
                "technician",
                "--groups",
                "default",
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await);
        let home = self.home(name);
        ok(&self.try_login_in(&home, name, password, &[]).await);
        home
    }

    /// A user `name` with the built-in `supervisor` role (group `default`:
    /// `monitor-sessions`), logged in with `jg`; their `JG_HOME`.
    pub async fn supervisor(&self, name: &str, password: &str) -> PathBuf {
        let pw = self.password_file(&format!("{name}.pw"), password);
        ok(&self
            .jg(&[
                "admin",
                "users",
                "create",
                name,
                "--role",
                "supervisor",
                "--groups",
                "default",
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await);
        let home = self.home(name);
        ok(&self.try_login_in(&home, name, password, &[]).await);
        home
    }

    /// [`Self::technician`], and a support queue `queue` (group `default`)
    /// with them as its member.
    pub async fn technician_in_queue(&self, name: &str, password: &str, queue: &str) -> PathBuf {
        let home = self.technician(name, password).await;
        ok(&self
            .jg(&[
                "admin", "queues", "create", queue, "--group", "default", "--member", name,
            ])
            .await);
        home
    }

    pub async fn login(&self, name: &str, password: &str) {
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

    pub async fn enroll_token(&self, args: &[&str]) -> String {
        let mut a = vec!["enroll-token"];
        a.extend_from_slice(args);
        ok(&self.admin(&a).await).trim().to_owned()
    }

    pub fn jg_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(jg_bin());
        cmd.args(args)
            .env("JG_HOME", self.jg_home())
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub async fn jg(&self, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT * 2, self.jg_command(args).output())
            .await
            .unwrap_or_else(|_| panic!("jg {args:?} hung"))
            .unwrap()
    }

    pub async fn endpoints(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&self.jg(&["endpoints", "--json"]).await)).unwrap()
    }

    pub async fn wait_online(&self, name: &str, online: bool) {
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
    pub fn spawn_agent(&self, name: &str, token: Option<&str>, extra: &[&str]) -> Agent {
        self.spawn_agent_in(name, name, token, extra)
    }

    /// Spawns an agent with state directory `state`.
    pub fn spawn_agent_in(
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
    pub(crate) fn spawn_agent_at(
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
    pub async fn start_agent(&self, name: &str) -> Agent {
        let token = self.enroll_token(&[]).await;
        let agent = self.spawn_agent(name, Some(&token), &[]);
        self.wait_online(name, true).await;
        agent
    }
}

/// What `jg mfa enroll` showed and printed.
#[derive(Debug)]
pub struct MfaEnrollment {
    pub secret: Vec<u8>,
    /// The step whose code confirmed the enrollment (spent: the gateway
    /// accepts only later steps from now on).
    pub step: u64,
    pub recovery_codes: Vec<String>,
    pub stdout: String,
}

impl Site {
    /// Writes `password` to a file in the site's directory and returns its path.
    pub fn password_file(&self, file: &str, password: &str) -> PathBuf {
        let p = self.dir.path().join(file);
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// A separate `JG_HOME` (another person, or the same person elsewhere).
    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("home-{name}"))
    }

    /// `jg ARGS` with `JG_HOME=home`.
    pub async fn jg_in(&self, home: &Path, args: &[&str]) -> Output {
        let mut cmd = self.jg_command(args);
        cmd.env("JG_HOME", home);
        tokio::time::timeout(WAIT * 2, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("jg {args:?} hung"))
            .unwrap()
    }

    /// `jg login` into `home` (whatever the outcome); `extra` adds flags
    /// such as `--totp CODE`.
    pub async fn try_login_in(
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
    pub async fn admin_bounded(&self, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT * 2, self.admin(args))
            .await
            .unwrap_or_else(|_| panic!("jumpgate admin {args:?} hung"))
    }

    /// Runs `jg mfa enroll` in `home` as a person would: reads the secret it
    /// shows, computes the authenticator app's current code and types it on
    /// stdin (a pipe, so no prompt).
    pub async fn mfa_enroll(&self, home: &Path) -> MfaEnrollment {
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
    pub fn api_client(&self) -> jumpgate_client::Client {
        let trust = jumpgate_net::tls::Trust::Pinned(self.gateway.fingerprint.parse().unwrap());
        jumpgate_client::Client::new(self.gateway.url().parse().unwrap(), &trust, None).unwrap()
    }

    /// The bearer token `jg login` saved in `home`.
    pub fn saved_token(&self, home: &Path) -> String {
        let text = std::fs::read_to_string(home.join("session.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// `GET /api/v1/events` with the session saved in the default `JG_HOME`.
    pub async fn security_events(&self) -> Vec<jumpgate_api_types::SecurityEvent> {
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

// ---------------------------------------------------------------------------
// Web console helpers (tests/e2e/web.rs).
// ---------------------------------------------------------------------------

impl Site {
    /// Enrolls a new agent whose shells start with `HOME=home` (a clean
    /// profile: the test machine's own dotfiles can take a minute to run),
    /// and waits until it is online.
    pub async fn start_agent_with_home(&self, name: &str, home: &Path) -> Agent {
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
    pub async fn gateway_log_through_now(&self) -> String {
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
