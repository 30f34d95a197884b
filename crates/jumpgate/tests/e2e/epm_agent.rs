//! Endpoint privilege management on a real endpoint: `jumpgate agent`
//! running as root serves its elevation socket, and `jumpgate elevate`
//! run as an unprivileged local user (created for the test, removed after)
//! gets what the policy says. The policy is a bundle sealed with a
//! test-only signing key and placed in the agent's `epm/` store (as a
//! verified download would leave it); the gateway is only the agent's
//! enrollment. Needs root (CI runs the tests as root); skipped otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use jumpgate_agent::epm::journal::Journal;
use jumpgate_agent::epm::wire::{self, AgentMsg, ClientMsg, Elevate};
use jumpgate_epm::bundle::{self, BundleContent, SigningKey};
use jumpgate_epm::policy::Policy;
use jumpgate_proto::epm::{EpmEventKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::support::{Log, Site, WAIT, jumpgate_bin};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn random_hex(n: usize) -> String {
    let mut raw = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A local user for the test, removed on drop.
struct LocalUser {
    name: String,
    uid: u32,
}

impl LocalUser {
    fn create() -> Self {
        let name = format!("jgepm{}", random_hex(3));
        let out = std::process::Command::new("useradd")
            .args(["-M", "-U", "-s", "/bin/sh", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd: {out:?}");
        let out = std::process::Command::new("id")
            .args(["-u", &name])
            .output()
            .unwrap();
        let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Self { name, uid }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .output();
    }
}

/// The policy of these tests, for `user`.
fn policy(user: &str) -> Policy {
    let yaml = format!(
        r#"
default: block
applications:
  - {{ name: id, path: /usr/bin/id }}
  - {{ name: uname, path: /usr/bin/uname }}
  - {{ name: whoami, path: /usr/bin/whoami }}
  - {{ name: groups, path: /usr/bin/groups }}
  - {{ name: touch, path: /usr/bin/touch }}
  - {{ name: sh, path: /usr/bin/dash }}
  - {{ name: true, path: /usr/bin/true }}
rules:
  - {{ name: id-for-tester, applications: [id], users: [{user}], action: elevate }}
  - {{ name: no-uname, applications: [uname], action: block }}
  - {{ name: whoami-with-reason, applications: [whoami], action: elevate-with-reason }}
  - {{ name: groups-with-code, applications: [groups], action: elevate-with-code }}
  - {{ name: touch-audited, applications: [touch], action: audit-only }}
  - {{ name: shell-for-tests, applications: [sh, true], action: elevate }}
admin_sessions:
  - {{ name: oncall, users: [{user}], max_minutes: 1, needs: reason }}
"#
    );
    Policy::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Places a sealed bundle of `policy`, the key it is signed with and the
/// offline-code secret in `state/epm`, as an accepted download leaves
/// them.
fn seed(state: &Path, policy: Policy, secret: &[u8]) {
    let (key, _pkcs8) = SigningKey::generate("pk_test").unwrap();
    let content = BundleContent {
        version: 1,
        published_at: "2026-12-02T05:00:00Z".into(),
        published_by: "test".into(),
        policy,
    };
    let bytes = bundle::seal(&content, &key);
    let dir = state.join("epm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("current.jgpol"), bytes).unwrap();
    let trust = serde_json::json!({ "keys": [key.trusted()], "groups": ["default"] });
    std::fs::write(dir.join("trust.json"), trust.to_string()).unwrap();
    std::fs::write(dir.join("accepted"), "1\n").unwrap();
    std::fs::write(dir.join("code.key"), secret).unwrap();
}

/// `jumpgate agent` as root with its elevation socket at `socket`.
fn spawn_agent(
    state: &Path,
    server: &str,
    fingerprint: &str,
    token: Option<&str>,
    socket: &Path,
) -> (Child, Log) {
    let mut cmd = Command::new(jumpgate_bin());
    cmd.args(["agent", "--server", server, "--ca-fingerprint", fingerprint])
        .arg("--state-dir")
        .arg(state)
        .args(["--name", "epm-1"])
        .arg("--elevate-socket")
        .arg(socket)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.args(["--enroll-token", t]);
    }
    let mut child = cmd.spawn().unwrap();
    let log = Log::default();
    log.drain(child.stderr.take().unwrap());
    (child, log)
}

/// A directory for the socket that every user may enter.
fn socket_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("jg-epm-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `jumpgate elevate ARGS` as `user` (no terminal, a clean environment).
fn elevate_cmd(user: &LocalUser, socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setsid");
    cmd.args(["-w", "setpriv"])
        .arg(format!("--reuid={}", user.name))
        .arg(format!("--regid={}", user.name))
        .arg("--init-groups")
        .arg(jumpgate_bin())
        .arg("elevate")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("JUMPGATE_ELEVATE_SOCKET", socket)
        .env("LANG", "C.UTF-8")
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn elevate(user: &LocalUser, socket: &Path, args: &[&str], input: &str) -> Output {
    let mut child = elevate_cmd(user, socket, args).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("jumpgate elevate {args:?} hung"))
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn wait_for_socket(socket: &Path, log: &Log) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no elevation socket; agent log:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The decision events in the agent's journal (agent stopped or not).
fn journal(state: &Path) -> Vec<jumpgate_proto::epm::EpmEvent> {
    let j = Journal::open(&state.join("epm").join("events")).unwrap();
    j.pending().cloned().collect()
}

#[tokio::test]
async fn an_unprivileged_user_elevates_what_the_policy_allows_and_nothing_else() {
    if !is_root() {
        eprintln!("skipped: needs root (creates a local user, runs the agent as root)");
        return;
    }
    let site = Site::start().await;
    let user = LocalUser::create();
    let secret = [9u8; 32];
    let state = site.dir.path().join("agents").join("epm-1");
    seed(&state, policy(&user.name), &secret);
    let sockets = socket_dir();
    let socket = sockets.path().join("elevate.sock");
    let token = site.enroll_token(&[]).await;
    let (mut agent, _log) = spawn_agent(
        &state,
        &site.gateway.url(),
        &site.gateway.fingerprint,
        Some(&token),
        &socket,
    );
    site.wait_online("epm-1", true).await;
    // Elevation works without the gateway; offline, the journal keeps every
    // event for the checks below (the gateway would acknowledge them).
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    let dead = "https://127.0.0.1:1";
    let (_agent, log) = spawn_agent(&state, dead, &site.gateway.fingerprint, None, &socket);
    wait_for_socket(&socket, &log).await;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666);

    // Elevated: root.
    let out = elevate(&user, &socket, &["--", "id", "-u"], "").await;
    assert_eq!(
        text(&out.stdout),
        "0\n",
        "{}\n{}",
        text(&out.stderr),
        log.text()
    );
    assert!(out.status.success());

    // Blocked by a rule, named; unmatched, the default named.
    let out = elevate(&user, &socket, &["--", "uname"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no-uname") && err.contains("block"), "{err}");
    assert!(out.stdout.is_empty());
    let out = elevate(&user, &socket, &["--", "hostname"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no rule matched; the default is block"),
        "{err}"
    );

    // A reason given up front; asked for and given; asked for and not given.
    let out = elevate(
        &user,
        &socket,
        &["--reason", "ticket 42", "--", "whoami"],
        "",
    )
    .await;
    assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
    let out = elevate(&user, &socket, &["--", "whoami"], "printer is stuck\n").await;
    assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("whoami-with-reason"));
    let out = elevate(&user, &socket, &["--", "whoami"], "\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs a reason"),
        "{}",
        text(&out.stderr)
    );

    // Audit-only runs as the caller: what it creates is theirs.
    let scratch = socket_dir();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let made = scratch.path().join("audited");
    let out = elevate(&user, &socket, &["--", "touch", made.to_str().unwrap()], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), user.uid);

    // Exit codes and signals come back.
    let out = elevate(&user, &socket, &["--", "sh", "-c", "exit 7"], "").await;
    assert_eq!(out.status.code(), Some(7));
    let out = elevate(&user, &socket, &["--", "sh", "-c", "kill -TERM $$"], "").await;
    assert_eq!(out.status.code(), Some(128 + 15));
    let out = elevate(
        &user,
        &socket,
        &[
            "--",
            "sh",
            "-c",
            "echo $HOME $PATH $JUMPGATE_ELEVATE_USER $JUMPGATE_ELEVATE_UID",
        ],
        "",
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        format!(
            "/root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin {} {}\n",
            user.name, user.uid
        )
    );

    // A signal the caller gets reaches the program.
    let mut child = elevate_cmd(
        &user,
        &socket,
        &[
            "--",
            "sh",
            "-c",
            "trap 'exit 42' INT; echo ready; while :; do sleep 0.1; done",
        ],
    )
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut ready))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(42));

    // An admin session: root's shell, time-boxed to the rule's minute.
    let out = elevate(
        &user,
        &socket,
        &["--admin-session", "15m", "--reason", "incident 7"],
        "id -u\nexit 3\n",
    )
    .await;
    assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("admin session for 1 minutes (rule `oncall`)"),
        "{}",
        text(&out.stderr)
    );

    // Each decision is journalled: allowed, denied, the caller, the hash.
    let events = journal(&state);
    let decisions: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EpmEventKind::Decision {
                user: u,
                program,
                outcome,
                rule,
                sha256,
                exit_code,
                ..
            } => Some((
                u.clone(),
                program.clone(),
                *outcome,
                rule.clone(),
                sha256.clone(),
                *exit_code,
            )),
            _ => None,
        })
        .collect();
    assert!(decisions.iter().all(|d| d.0 == user.name), "{decisions:?}");
    assert!(decisions.iter().any(|d| d.1 == "/usr/bin/id"
        && d.2 == Outcome::Allowed
        && d.3 == "id-for-tester"
        && d.4.len() == 64
        && d.5.is_none()));
    // …and its end, with the exit code, as an event of its own.
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EpmEventKind::Exited { program, rule, exit_code: 0, .. }
            if program == "/usr/bin/id" && rule == "id-for-tester")
        ),
        "{events:?}"
    );
    assert!(
        decisions
            .iter()
            .any(|d| d.1 == "/usr/bin/uname" && d.2 == Outcome::Denied && d.3 == "no-uname")
    );
    let sessions: Vec<bool> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EpmEventKind::AdminSession {
                ended,
                minutes: 1,
                rule,
                reason,
                ..
            } if rule == "oncall" && reason == "incident 7" => Some(*ended),
            _ => None,
        })
        .collect();
    assert_eq!(sessions, [false, true]);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_offline_code_elevates_after_a_wrong_one() {
    if !is_root() {
        eprintln!("skipped: needs root (creates a local user, runs the agent as root)");
        return;
    }
    let site = Site::start().await;
    let user = LocalUser::create();
    let secret = [5u8; 32];
    let state = site.dir.path().join("agents").join("epm-1");
    seed(&state, policy(&user.name), &secret);
    let sockets = socket_dir();
    let socket = sockets.path().join("elevate.sock");
    let token = site.enroll_token(&[]).await;
    let (mut agent, log) = spawn_agent(
        &state,
        &site.gateway.url(),
        &site.gateway.fingerprint,
        Some(&token),
        &socket,
    );
    site.wait_online("epm-1", true).await;
    // The code works with the gateway gone.
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    let (_agent, log2) = spawn_agent(
        &state,
        "https://127.0.0.1:1",
        &site.gateway.fingerprint,
        None,
        &socket,
    );
    let _ = log;
    wait_for_socket(&socket, &log2).await;

    let mut child = elevate_cmd(&user, &socket, &["--", "groups"])
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let challenge_in = |s: &str, attempts: u32| {
        let marker = format!("({attempts} attempts left)");
        let line = s.lines().find(|l| l.contains(&marker))?;
        line.split_whitespace()
            .find(|w| w.len() == 12 && w.as_bytes()[4] == b'-' && w.as_bytes()[9] == b'-')
            .map(str::to_owned)
    };
    let read_until =
        async |seen: &mut String, attempts: u32, stderr: &mut tokio::process::ChildStderr| {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                if let Some(c) = challenge_in(seen, attempts) {
                    return c;
                }
                let mut buf = [0u8; 512];
                let n = tokio::time::timeout_at(deadline, stderr.read(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("no challenge: {seen}"))
                    .unwrap();
                assert!(n > 0, "client ended: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
    let first = read_until(&mut seen, 5, &mut stderr).await;
    stdin.write_all(b"00000-00000\n").await.unwrap();
    let second = read_until(&mut seen, 4, &mut stderr).await;
    assert_eq!(first, second, "one challenge per request");
    assert!(seen.contains("not the response"), "{seen}");
    let response = jumpgate_epm::code::response(&secret, &second).unwrap();
    stdin
        .write_all(format!("{response}\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    tokio::time::timeout(WAIT, stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "root\n", "{seen}\n{}", log2.text());
    assert!(status.success());
}

/// Sends one request straight to the socket (as root, `/dev/null` for
/// its fds) and reads the answer.
fn ask_directly(socket: &Path, argv: &[&str]) -> AgentMsg {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsFd;
    wire::send_with_fds(
        &mut s,
        &ClientMsg::Elevate(Elevate {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            cwd: "/".into(),
            path: "/usr/bin:/bin".into(),
            ..Elevate::default()
        }),
        &[null.as_fd(), null.as_fd(), null.as_fd()],
    )
    .unwrap();
    loop {
        match wire::recv::<_, AgentMsg>(&mut s).unwrap() {
            Some(AgentMsg::Started { .. } | AgentMsg::Notice { .. }) => {}
            Some(m) => return m,
            None => panic!("the agent hung up"),
        }
    }
}

#[tokio::test]
async fn a_thousand_unsent_events_survive_kill_9_in_order() {
    if !is_root() {
        eprintln!("skipped: needs root (runs the agent as root)");
        return;
    }
    let site = Site::start().await;
    let state = site.dir.path().join("agents").join("epm-1");
    seed(&state, policy("nobody"), &[1u8; 32]);
    let sockets = socket_dir();
    let socket = sockets.path().join("elevate.sock");
    let token = site.enroll_token(&[]).await;
    let (mut agent, _log) = spawn_agent(
        &state,
        &site.gateway.url(),
        &site.gateway.fingerprint,
        Some(&token),
        &socket,
    );
    site.wait_online("epm-1", true).await;
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    // Offline from here: nothing is acknowledged.
    let dead = "https://127.0.0.1:1";
    let (mut agent, log) = spawn_agent(&state, dead, &site.gateway.fingerprint, None, &socket);
    wait_for_socket(&socket, &log).await;
    let sock = socket.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..1000 {
            match ask_directly(&sock, &["uname", "-r"]) {
                AgentMsg::Refused { rule, .. } => assert_eq!(rule, "no-uname"),
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    // kill -9, then the journal as the next start finds it.
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    let events = journal(&state);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
    assert!(events.iter().all(|e| matches!(
        &e.kind,
        EpmEventKind::Decision { outcome: Outcome::Denied, program, .. } if program == "/usr/bin/uname"
    )));
    // The restarted agent goes on from 1001.
    let (mut agent, log) = spawn_agent(&state, dead, &site.gateway.fingerprint, None, &socket);
    wait_for_socket(&socket, &log).await;
    let sock = socket.clone();
    tokio::task::spawn_blocking(move || {
        assert!(matches!(
            ask_directly(&sock, &["true"]),
            AgentMsg::Exited { code: 0 }
        ));
    })
    .await
    .unwrap();
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    let seqs: Vec<u64> = journal(&state).iter().map(|e| e.seq).collect();
    // `true` ran: its decision, then its end.
    assert_eq!(seqs, (1..=1002).collect::<Vec<_>>());
}
