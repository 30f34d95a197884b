//! `jumpgate elevate -- true` against `sudo true`, side by side, as the
//! same unprivileged user: N runs each, interleaved, p50 and p99 of the
//! whole command (process start to exit).
//!
//! ```text
//! cargo build --release -p jumpgate --bin jumpgate
//! cargo run --release -p jumpgate-agent --example elevate_bench -- \
//!     --jumpgate target/release/jumpgate --runs 500
//! ```
//!
//! Needs root and Debian's sudo: it creates a local user and a NOPASSWD
//! rule for it in /etc/sudoers.d/ (both removed at the end), and serves the
//! elevation socket in this process (the agent's own service code, with a
//! sealed policy allowing `/usr/bin/true`), so no gateway is involved.
//! Without `--jumpgate` the client is this example itself (the same client
//! code as `jumpgate elevate`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jumpgate_agent::epm::{self, EpmOptions};
use jumpgate_epm::bundle::{self, BundleContent, SigningKey};
use jumpgate_epm::policy::Policy;

struct Cleanup {
    user: String,
    sudoers: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel").arg(&self.user).output();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn run_as(user: &str, cmd: &[&str], env: &[(&str, &str)]) -> Duration {
    let start = Instant::now();
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .arg("--init-groups")
        .args(cmd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The client side when re-executed without --jumpgate.
    if args.get(1).map(String::as_str) == Some("client") {
        let socket = std::env::var(epm::client::SOCKET_ENV).expect("socket");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let code = rt
            .block_on(epm::client::elevate(epm::client::ElevateRequest {
                socket: socket.into(),
                reason: None,
                admin_minutes: None,
                argv: args[2..].to_vec(),
            }))
            .expect("elevate");
        std::process::exit(code);
    }
    let mut runs = 300usize;
    let mut jumpgate: Option<PathBuf> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--jumpgate" => jumpgate = it.next().map(PathBuf::from),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(rustix::process::geteuid().is_root(), "run as root");
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "needs sudo (apt-get install sudo)"
    );

    let mut raw = [0u8; 3];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let user = format!(
        "jgbench{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let out = Command::new("useradd")
        .args(["-M", "-U", "-s", "/bin/sh", &user])
        .output()
        .unwrap();
    assert!(out.status.success(), "useradd: {out:?}");
    let sudoers = PathBuf::from(format!("/etc/sudoers.d/{user}"));
    let _cleanup = Cleanup {
        user: user.clone(),
        sudoers: sudoers.clone(),
    };
    std::fs::write(
        &sudoers,
        format!("{user} ALL=(root) NOPASSWD: /usr/bin/true\n"),
    )
    .unwrap();
    let _ = Command::new("chmod").args(["0440"]).arg(&sudoers).status();

    // The elevation service, as the agent runs it, with a policy allowing
    // `true` for this user.
    let state = tempfile::tempdir().unwrap();
    let (key, _) = SigningKey::generate("pk_bench").unwrap();
    let policy = Policy::from_yaml(&format!(
        "default: block\napplications:\n  - {{ name: true, path: /usr/bin/true }}\nrules:\n  - {{ name: bench, applications: [true], users: [{user}], action: elevate }}\n"
    ))
    .unwrap();
    let bytes = bundle::seal(
        &BundleContent {
            version: 1,
            published_at: "2026-12-02T05:00:00Z".into(),
            published_by: "bench".into(),
            policy,
        },
        &key,
    );
    let store = epm::store::Store::open(&state.path().join("epm")).unwrap();
    store
        .accept(
            1,
            &bytes,
            &epm::store::Trust {
                keys: vec![key.trusted()],
                groups: vec![],
            },
        )
        .unwrap();
    let sockets = tempfile::Builder::new()
        .prefix("jg-bench-")
        .tempdir()
        .unwrap();
    let _ = Command::new("chmod")
        .arg("0755")
        .arg(sockets.path())
        .status();
    let socket = sockets.path().join("elevate.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let epm = epm::Epm::open(
        state.path(),
        EpmOptions {
            socket: None,
            ..EpmOptions::default()
        },
    )
    .unwrap();
    let listener = rt.block_on(async { epm::service::bind(&socket) }).unwrap();
    rt.spawn(epm::service::serve(
        Arc::clone(&epm),
        listener,
        tokio_util::sync::CancellationToken::new(),
    ));

    let me = std::env::current_exe().unwrap();
    let client: Vec<String> = match &jumpgate {
        Some(j) => vec![
            j.display().to_string(),
            "elevate".into(),
            "--".into(),
            "true".into(),
        ],
        None => vec![me.display().to_string(), "client".into(), "true".into()],
    };
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    let sock = socket.display().to_string();
    let env = [(epm::client::SOCKET_ENV, sock.as_str())];
    // Warm up both (page cache, sudo's first-use lecture files).
    for _ in 0..5 {
        run_as(&user, &client, &env);
        run_as(&user, &["sudo", "-n", "true"], &[]);
    }
    let mut jg = Vec::with_capacity(runs);
    let mut su = Vec::with_capacity(runs);
    for _ in 0..runs {
        jg.push(run_as(&user, &client, &env));
        su.push(run_as(&user, &["sudo", "-n", "true"], &[]));
    }
    jg.sort();
    su.sort();
    let what = if jumpgate.is_some() {
        "jumpgate elevate -- true"
    } else {
        "elevate client -- true  "
    };
    println!(
        "{runs} runs each, interleaved, as an unprivileged user (setpriv), wall time per command:"
    );
    println!(
        "  {:<26} p50 {:>10}  p99 {:>10}",
        what,
        ms(percentile(&jg, 0.5)),
        ms(percentile(&jg, 0.99))
    );
    println!(
        "  {:<26} p50 {:>10}  p99 {:>10}",
        "sudo -n true",
        ms(percentile(&su, 0.5)),
        ms(percentile(&su, 0.99))
    );
    println!(
        "journalled decisions: {} (each fsynced before the program ran)",
        epm.pending_events().len()
    );
}
