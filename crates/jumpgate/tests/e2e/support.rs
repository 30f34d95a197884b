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
        Command::new(jumpgate_bin())
            .arg("admin")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
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
