//! Endpoint privilege management end to end, as an administrator, a
//! technician and a person at an endpoint use it: a policy written in YAML
//! is imported with `jg`, published as a signed bundle into S3 (a real
//! SeaweedFS), announced to the agent, which downloads it **directly from
//! the bucket**, verifies it and enforces it for an unprivileged Linux user
//! running `jumpgate elevate`; approvals through `jg epm approve`; the
//! offline code with the gateway stopped; a bundle tampered with in the
//! bucket and a gateway restored from an old backup (an older, correctly
//! signed bundle) are both refused and reported while the last good policy
//! keeps working; 1,000 events queued while the gateway is away survive a
//! `kill -9` of the agent and arrive exactly once.
//!
//! Needs root (creating a user, an agent that can run programs as root):
//! CI runs as root; elsewhere the test prints `skipped:`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use jumpgate_test_support::s3::SeaweedFs;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

const BUCKET: &str = "jumpgate-epm";

/// A throw-away local user, removed on drop.
pub(crate) struct LocalUser {
    pub(crate) name: String,
}

impl LocalUser {
    pub(crate) fn create() -> Self {
        let name = format!("jgepm{}", std::process::id() % 100_000);
        let _ = std::process::Command::new("userdel").arg(&name).output();
        let out = std::process::Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--user-group",
                &name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }
}

impl LocalUser {
    /// A user with a random name (`prefix` + 6 hex digits), for a test
    /// that may run beside the others of this process.
    pub(crate) fn random(prefix: &str) -> Self {
        let mut raw = [0u8; 3];
        aws_lc_rs::rand::fill(&mut raw).unwrap();
        let name = format!(
            "{prefix}{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let out = std::process::Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--user-group",
                &name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .output();
    }
}

/// `jumpgate elevate ARGS` as `user` (through `setpriv`, so no PAM session
/// and no terminal), talking to the agent on `socket`.
pub(crate) fn elevate(
    bin: &Path,
    user: &LocalUser,
    socket: &Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.name))
        .arg(format!("--regid={}", user.name))
        .arg("--init-groups")
        .arg("--")
        .arg(bin)
        .arg("elevate")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("JUMPGATE_ELEVATE_SOCKET", socket)
        .current_dir("/")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

pub(crate) async fn run(mut cmd: tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("jumpgate elevate hung")
        .unwrap()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) async fn status(site: &Site) -> serde_json::Value {
    serde_json::from_str(&ok(&site.jg(&["epm", "status", "--json"]).await)).unwrap()
}

/// Polls `jg epm status` until `endpoint`'s row satisfies `pred`.
pub(crate) async fn wait_status(
    site: &Site,
    endpoint: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = status(site).await;
        if let Some(row) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["endpoint"] == endpoint)
            && pred(row)
        {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {all:#}\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn events(site: &Site) -> Vec<serde_json::Value> {
    ok(&site
        .jg(&["epm", "events", "--json", "--limit", "5000"])
        .await)
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

pub(crate) const POLICY: &str = r#"
default: block
applications:
  - name: id
    path: /usr/bin/id
  - name: whoami
    path: /usr/bin/whoami
  - name: true
    path: /usr/bin/true
  - name: date
    path: /usr/bin/date
  - name: uname
    path: /usr/bin/uname
rules:
  - name: id-for-users
    applications: [id]
    action: elevate
  - name: no-whoami
    applications: [whoami]
    action: block
  - name: true-with-reason
    applications: [true]
    action: elevate-with-reason
  - name: date-approved
    applications: [date]
    action: elevate-with-approval
    approval_timeout: 2m
  - name: uname-with-code
    applications: [uname]
    action: elevate-with-code
"#;

#[tokio::test]
async fn policies_through_s3_decide_elevation_on_the_endpoint() {
    if !rustix::process::geteuid().is_root() {
        println!(
            "skipped: needs root (a local user, an agent that runs programs as root); CI runs as root"
        );
        return;
    }
    let Some(s3) = SeaweedFs::start().await else {
        return;
    };
    s3.aws(&["s3", "mb", &format!("s3://{BUCKET}")]).await;
    let conf = tempfile::tempdir().unwrap();
    let config = conf.path().join("jumpgate.toml");
    std::fs::write(
        &config,
        s3.blobs_config(BUCKET, "site", &conf.path().join("s3-secret")),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut site = Site::start_with(&["--config", &config]).await;

    // The user and the socket's directory must be reachable by the user;
    // the binary too (copied out of the build tree).
    let user = LocalUser::create();
    let shared = tempfile::Builder::new().prefix("jg-epm").tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = shared.path().join("jumpgate");
    std::fs::copy(jumpgate_bin(), &bin).unwrap();
    // Run once here, so no user's exec meets it still open for writing.
    let settled = spawn_written(
        tokio::process::Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null()),
    )
    .await;
    assert!(settled.wait_with_output().await.unwrap().status.success());
    let socket = shared.path().join("elevate.sock");
    let sock = socket.to_str().unwrap().to_owned();
    let token = site.enroll_token(&[]).await;
    let mut agent = site.spawn_agent("ws-01", Some(&token), &["--elevate-socket", &sock]);
    site.wait_online("ws-01", true).await;

    // Nothing published yet: the endpoint elevates nothing.
    let out = run(elevate(&bin, &user, &socket, &["--", "id", "-u"])).await;
    assert!(
        !out.status.success(),
        "elevated without a policy: {}",
        text(&out.stdout)
    );

    // The administrator writes the policy in YAML; a bad field is named.
    let bad = conf.path().join("bad.yaml");
    std::fs::write(&bad, POLICY.replace("action: block", "action: blocked")).unwrap();
    let refused = fails(
        &site
            .jg(&["epm", "policy", "import", bad.to_str().unwrap()])
            .await,
    );
    assert!(refused.contains("rules[1].action"), "{refused}");
    let file = conf.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    ok(&site
        .jg(&["epm", "policy", "validate", file.to_str().unwrap()])
        .await);
    ok(&site
        .jg(&["epm", "policy", "import", file.to_str().unwrap()])
        .await);
    let exported = ok(&site.jg(&["epm", "policy", "export"]).await);
    assert!(exported.contains("uname-with-code"), "{exported}");

    // What-if, before publishing.
    let whatif = ok(&site
        .jg(&[
            "epm",
            "test",
            "--endpoint",
            "ws-01",
            "--user",
            &user.name,
            "--json",
            "--",
            "/usr/bin/whoami",
        ])
        .await);
    let whatif: serde_json::Value = serde_json::from_str(&whatif).unwrap();
    assert_eq!(
        (whatif["action"].as_str(), whatif["rule"].as_str()),
        (Some("block"), Some("no-whoami"))
    );

    // Publish: a signed bundle in the bucket; the endpoint takes it.
    let published = site.jg(&["epm", "publish"]).await;
    assert!(
        published.status.success(),
        "{}\n{}",
        text(&published.stderr),
        site.gateway.stderr.text()
    );
    let published = text(&published.stdout);
    assert!(published.contains("version 1"), "{published}");
    let listing = s3
        .aws(&["s3", "ls", &format!("s3://{BUCKET}/site/epm/bundles/")])
        .await;
    assert!(listing.contains("v0000000001.jgpol"), "{listing}");
    wait_status(&site, "ws-01", "version 1 accepted", |r| {
        r["accepted_version"] == 1
    })
    .await;

    // Allowed: root.
    let out = run(elevate(&bin, &user, &socket, &["--", "id", "-u"])).await;
    assert_eq!(text(&out.stdout).trim(), "0", "{}", text(&out.stderr));
    assert!(out.status.success());
    // Blocked: refused, naming the rule.
    let out = run(elevate(&bin, &user, &socket, &["--", "whoami"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-whoami"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    // Unmatched: the default.
    let out = run(elevate(&bin, &user, &socket, &["--", "ls", "/root"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("default"),
        "{}",
        text(&out.stderr)
    );
    // A reason: refused without, allowed with.
    let out = run(elevate(&bin, &user, &socket, &["--", "true"])).await;
    assert!(!out.status.success(), "ran without a reason");
    let out = run(elevate(
        &bin,
        &user,
        &socket,
        &["--reason", "INC-123 disk full", "--", "true"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Approval: the request reaches the technician, who approves it.
    let mut waiting = elevate(
        &bin,
        &user,
        &socket,
        &["--reason", "INC-124", "--", "date", "+%Y"],
    );
    let waiting = waiting
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let list: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["epm", "requests", "--json"]).await)).unwrap();
        if let Some(r) = list.as_array().unwrap().first() {
            assert_eq!(r["rule"], "date-approved");
            assert_eq!(r["user"], user.name.as_str());
            assert_eq!(r["reason"], "INC-124");
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no approval request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ok(&site.jg(&["epm", "approve", &id]).await);
    let out = tokio::time::timeout(WAIT, waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).trim().starts_with("20"),
        "{}",
        text(&out.stdout)
    );

    // Every decision is reported, in order, once.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = events(&site).await;
        let decisions: Vec<&serde_json::Value> = ev
            .iter()
            .filter(|e| e["event"]["kind"] == "decision")
            .collect();
        if decisions.len() >= 7 {
            let allowed = decisions
                .iter()
                .filter(|e| e["event"]["outcome"] == "allowed")
                .count();
            assert!(allowed >= 3, "{decisions:#?}");
            assert!(decisions.iter().any(|e| e["event"]["rule"] == "no-whoami" && e["event"]["outcome"] == "denied"));
            assert!(
                decisions
                    .iter()
                    .any(|e| e["event"]["reason"] == "INC-123 disk full")
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "events: {ev:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Offline code, the gateway stopped: the endpoint shows a challenge and
    // waits for the response the technician reads out.
    let port = site.gateway.addr.to_string();
    assert!(site.gateway.terminate().await.success());
    let mut coded = elevate(&bin, &user, &socket, &["--", "uname", "-s"]);
    let mut coded = coded
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(coded.stderr.take().unwrap()).lines();
    let challenge = tokio::time::timeout(WAIT, async {
        while let Some(line) = err_lines.next_line().await.unwrap() {
            if let Some(c) = line
                .split_whitespace()
                .find(|w| w.len() == 12 && w.matches('-').count() == 2)
            {
                return c.to_owned();
            }
        }
        panic!("no challenge shown");
    })
    .await
    .expect("no challenge within the wait");
    // The technician's gateway is up again (the endpoint need not be).
    site.gateway =
        Gateway::start(&site.data_dir(), &["--listen", &port, "--config", &config]).await;
    let wrong = "00000-00000";
    let response = ok(&site
        .jg(&["epm", "code", "--endpoint", "ws-01", &challenge])
        .await);
    let response = response.trim().to_owned();
    assert_ne!(response, wrong);
    let mut stdin = coded.stdin.take().unwrap();
    stdin
        .write_all(format!("{wrong}\n{response}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let status_code = tokio::time::timeout(WAIT, coded.wait())
        .await
        .unwrap()
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut coded.stdout.take().unwrap(), &mut out)
        .await
        .unwrap();
    assert!(status_code.success(), "code flow failed; stdout {out}");
    assert_eq!(out.trim(), "Linux");
    site.wait_online("ws-01", true).await;

    // A backup of the gateway with version 1 only, for later.
    let port = site.gateway.addr.to_string();
    assert!(site.gateway.terminate().await.success());
    let backup = conf.path().join("backup");
    copy_dir(&site.data_dir(), &backup);
    site.gateway =
        Gateway::start(&site.data_dir(), &["--listen", &port, "--config", &config]).await;
    site.wait_online("ws-01", true).await;

    // The signing key rotates (the administrator's command, the gateway
    // running): version 2 is signed by the new key, which endpoints learn
    // over their connection.
    let rotated = ok(&site.admin(&["rotate-signing-key"]).await);
    assert!(rotated.contains("pk_"), "{rotated}");

    // Version 2 allows whoami; tampered with in the bucket before the
    // endpoint fetches it, it is refused and the old policy stays.
    drop(agent);
    site.wait_online("ws-01", false).await;
    std::fs::write(
        &file,
        POLICY.replace("action: block\n", "action: elevate\n"),
    )
    .unwrap();
    ok(&site
        .jg(&["epm", "policy", "import", file.to_str().unwrap()])
        .await);
    assert!(ok(&site.jg(&["epm", "publish"]).await).contains("version 2"));
    let key = format!("s3://{BUCKET}/site/epm/bundles/v0000000002.jgpol");
    let local = conf.path().join("v2.jgpol");
    s3.aws(&["s3", "cp", &key, local.to_str().unwrap()]).await;
    let mut bytes = std::fs::read(&local).unwrap();
    let good = bytes.clone();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x20;
    std::fs::write(&local, &bytes).unwrap();
    s3.aws(&["s3", "cp", local.to_str().unwrap(), &key]).await;
    agent = site.spawn_agent("ws-01", None, &["--elevate-socket", &sock]);
    let row = wait_status(&site, "ws-01", "tampered bundle refused", |r| {
        r["last_refusal"].is_string()
    })
    .await;
    assert_eq!(row["accepted_version"], 1, "{row}");
    let out = run(elevate(&bin, &user, &socket, &["--", "whoami"])).await;
    assert!(!out.status.success(), "the tampered policy took effect");
    let out = run(elevate(&bin, &user, &socket, &["--", "id", "-u"])).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "0",
        "the old policy stopped working: {}",
        text(&out.stderr)
    );
    // Repaired in the bucket: taken at the next announcement (a reconnect).
    std::fs::write(&local, &good).unwrap();
    s3.aws(&["s3", "cp", local.to_str().unwrap(), &key]).await;
    drop(agent);
    site.wait_online("ws-01", false).await;
    agent = site.spawn_agent("ws-01", None, &["--elevate-socket", &sock]);
    wait_status(&site, "ws-01", "version 2 accepted", |r| {
        r["accepted_version"] == 2
    })
    .await;
    let out = run(elevate(&bin, &user, &socket, &["--", "whoami"])).await;
    assert_eq!(text(&out.stdout).trim(), "root", "{}", text(&out.stderr));
    let bundles: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["epm", "bundles", "--json"]).await)).unwrap();
    assert_eq!(bundles[0]["version"], 2, "{bundles:#}");
    assert_ne!(
        bundles[0]["key"], bundles[1]["key"],
        "not signed by the rotated key: {bundles:#}"
    );

    // The gateway restored from the backup announces version 1 again: a
    // correctly signed but older bundle, refused (rollback). On SQLite the
    // data directory is the whole site, so copying it back restores it; a
    // PostgreSQL site's backup is its database's, outside this test.
    assert!(site.gateway.terminate().await.success());
    if site.engine() == Engine::Sqlite {
        let current = conf.path().join("current");
        std::fs::rename(site.data_dir(), &current).unwrap();
        copy_dir(&backup, &site.data_dir());
        site.gateway =
            Gateway::start(&site.data_dir(), &["--listen", &port, "--config", &config]).await;
        let row = wait_status(&site, "ws-01", "rollback refused", |r| {
            r["last_refusal"]
                .as_str()
                .is_some_and(|s| s.contains("older") || s.contains("rollback"))
        })
        .await;
        assert_eq!(row["accepted_version"], 2, "{row}");
        let out = run(elevate(&bin, &user, &socket, &["--", "whoami"])).await;
        assert_eq!(
            text(&out.stdout).trim(),
            "root",
            "rolled back: {}",
            text(&out.stderr)
        );
        assert!(site.gateway.terminate().await.success());
        std::fs::remove_dir_all(site.data_dir()).unwrap();
        std::fs::rename(&current, site.data_dir()).unwrap();
    } else {
        println!(
            "note: the restored-backup rollback is checked on SQLite (this pass is PostgreSQL)"
        );
    }

    // 1,000 decisions while the gateway is away, the agent killed -9 with
    // them queued: after a restart they all arrive, once each.
    for _ in 0..1000 {
        let out = run(elevate(&bin, &user, &socket, &["--", "ls"])).await;
        assert!(!out.status.success());
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(agent.child.id().unwrap() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = agent.child.wait().await;
    site.gateway =
        Gateway::start(&site.data_dir(), &["--listen", &port, "--config", &config]).await;
    let _agent = site.spawn_agent("ws-01", None, &["--elevate-socket", &sock]);
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let ev = events(&site).await;
        let unlisted = ev
            .iter()
            .filter(|e| {
                e["event"]["kind"] == "decision"
                    && e["event"]["program"] == "/usr/bin/ls"
                    && e["event"]["args"] == serde_json::json!([])
            })
            .count();
        let mut seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let n = seqs.len();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), n, "an event arrived twice");
        if unlisted == 1000 {
            break;
        }
        assert!(unlisted < 1000, "more than 1000: {unlisted}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{unlisted} of 1000 arrived"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let row = wait_status(&site, "ws-01", "online", |r| r["online"] == true).await;
    assert_eq!(row["dropped_events"], 0);
}

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp -a: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
