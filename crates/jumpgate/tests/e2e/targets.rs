//! Agentless targets through a jump point (issue #16): a real OpenSSH
//! server (Debian's `sshd`, started here as root on a loopback port picked
//! at run time) is the target; an enrolled agent started with
//! `--jump-point` reaches it with the password the gateway injects from
//! the vault. Shell, exec, `jg cp` both ways, forwarding (SSH and TCP
//! targets), the secret absent from everything the technician or an
//! operator can see, `vault-checkout`, rotation after use, and a changed
//! host key.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

/// An OpenSSH server on 127.0.0.1 with a test account of its own; stopped
/// (and the account removed) when dropped.
pub(crate) struct Sshd {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    pub(crate) user: String,
    child: Option<std::process::Child>,
}

impl Sshd {
    /// `None` (the test is skipped, said on stderr) when not root or
    /// `sshd` is missing; `scripts/test` installs it and runs as root.
    pub(crate) fn start(tag: &str, password: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() || !Path::new("/usr/sbin/sshd").exists() {
            // scripts/test runs as root with openssh-server installed and
            // sets JUMPGATE_REQUIRE_SSHD: there a skip would hide a fault.
            assert!(
                std::env::var_os("JUMPGATE_REQUIRE_SSHD").is_none(),
                "JUMPGATE_REQUIRE_SSHD is set, but this test needs root and /usr/sbin/sshd"
            );
            eprintln!("skipped: needs root and /usr/sbin/sshd (openssh-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let user = format!("jgt{tag}{}", std::process::id() % 100_000);
        let _ = std::process::Command::new("userdel")
            .args(["-r", &user])
            .output();
        let made = std::process::Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", &user])
            .output()
            .unwrap();
        assert!(made.status.success(), "useradd: {made:?}");
        let mut sshd = Self {
            dir,
            port: 0,
            user,
            child: None,
        };
        sshd.set_password(password);
        let key = sshd.dir.path().join("host");
        sshd.keygen(&key);
        std::fs::create_dir_all("/run/sshd").unwrap();
        sshd.run(&key);
        Some(sshd)
    }

    fn keygen(&self, key: &Path) {
        let _ = std::fs::remove_file(key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(key)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {out:?}");
    }

    fn set_password(&self, password: &str) {
        let mut c = std::process::Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(c.stdin.take().unwrap(), "{}:{password}", self.user).unwrap();
        assert!(c.wait().unwrap().success(), "chpasswd failed");
    }

    /// Starts `sshd -D` with host key `key`, on a port picked now, and
    /// waits until it accepts connections.
    fn run(&mut self, key: &Path) {
        let d = self.dir.path().to_path_buf();
        // A restart keeps its port (the target's address stays).
        let keep = self.port;
        for _ in 0..5 {
            let port = if keep != 0 {
                keep
            } else {
                crate::support::free_port()
            };
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                     UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin no\nStrictModes no\nAllowUsers {user}\n\
                     AllowTcpForwarding yes\nLogLevel VERBOSE\n",
                    key = key.display(),
                    pid = d.join("sshd.pid").display(),
                    user = self.user,
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let child = std::process::Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            self.child = Some(child);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.port = port;
                    return;
                }
                if let Some(c) = self.child.as_mut()
                    && c.try_wait().unwrap().is_some()
                {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.stop();
        }
        panic!("sshd did not start: {}", self.log());
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A new host key, same port: the target now offers another key.
    fn change_host_key(&mut self) {
        self.stop();
        let key = self.dir.path().join("host2");
        self.keygen(&key);
        self.run(&key);
    }

    pub(crate) fn host_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.pub")).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn home(&self) -> PathBuf {
        PathBuf::from(format!("/home/{}", self.user))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::process::Command::new("userdel")
            .args(["-r", &self.user])
            .output();
    }
}

/// `jg ARGS` (as `home`'s user, or the admin) with `input` on stdin.
pub(crate) async fn jg_input(
    site: &Site,
    home: Option<&Path>,
    args: &[&str],
    input: &[u8],
) -> std::process::Output {
    let mut cmd = site.jg_command(args);
    if let Some(h) = home {
        cmd.env("JG_HOME", h);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("jg {args:?} hung"))
        .unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p);
            }
        }
    }
    found
}

/// An enrolled agent started with `--jump-point`, marked as one by the
/// admin (audited), and a password secret in the vault.
pub(crate) async fn jump_point(site: &Site, name: &str) -> Agent {
    let token = site.enroll_token(&[]).await;
    let agent = site.spawn_agent(name, Some(&token), &["--jump-point"]);
    site.wait_online(name, true).await;
    let out = ok(&site.jg(&["endpoints", "jump-point", name, "on"]).await);
    assert!(out.contains("is now a jump point"), "{out}");
    agent
}

/// `jg forward TARGET SPEC` as the admin: the child and its local address.
async fn forward(
    site: &Site,
    target: &str,
    spec: &str,
) -> (tokio::process::Child, std::net::SocketAddr) {
    let mut child = site
        .jg_command(&["forward", target, spec])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("jg: forwarding ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Sends `msg` through a forward and reads the echo back.
async fn echo_through(addr: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("no echo through the forward")
        .unwrap();
    got
}

/// Shell and exec, `jg cp` both ways and forwarding on an SSH target, a
/// TCP target's forward; the technician uses the target without
/// `vault-checkout` (and cannot read the secret); the password is in no
/// file of the gateway's or agent's, no log, recording, audit entry, `jg`
/// output or process list.
#[tokio::test]
async fn ssh_and_tcp_targets_work_with_an_injected_password_that_nobody_sees() {
    const SECRET: &str = "Inj3cted-pw-7Qk2ZrWx";
    let Some(sshd) = Sshd::start("a", SECRET) else {
        return;
    };
    let site = Site::start().await;
    let agent = jump_point(&site, "jp-1").await;
    let mut outputs = String::new();
    let out = jg_input(
        &site,
        None,
        &["vault", "put", "db-pw"],
        format!("{SECRET}\n").as_bytes(),
    )
    .await;
    outputs.push_str(&ok(&out));
    let addr = format!("127.0.0.1:{}", sshd.port);
    let host_key = sshd.host_key();
    outputs.push_str(&ok(&site
        .jg(&[
            "targets",
            "add",
            "db-01",
            "--via",
            "jp-1",
            "--ssh",
            &addr,
            "--user",
            &sshd.user,
            "--credential",
            "db-pw",
            "--host-key",
            host_key.trim(),
        ])
        .await));
    let echo = echo_server().await;
    let tcp = format!("{echo}");
    outputs.push_str(&ok(&site
        .jg(&["targets", "add", "echo-01", "--via", "jp-1", "--tcp", &tcp])
        .await));

    // Listed with the endpoints, marked as targets.
    let listed = ok(&site.jg(&["endpoints"]).await);
    assert!(listed.contains("jp-1"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("db-01") && l.contains("target (ssh)") && l.contains("via jp-1")),
        "{listed}"
    );
    outputs.push_str(&listed);
    // And in the JSON list: the endpoint as before, each target as its own
    // object marked `"target": true`.
    let listed = ok(&site.jg(&["endpoints", "--json"]).await);
    let all: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let by = |n: &str| all.iter().find(|e| e["name"] == n).cloned();
    let jp = by("jp-1").unwrap_or_else(|| panic!("{listed}"));
    assert!(jp.get("target").is_none(), "{jp}");
    let db = by("db-01").unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(db["target"], true, "{db}");
    assert_eq!(db["kind"], "ssh", "{db}");
    assert_eq!(db["via"], "jp-1", "{db}");
    assert_eq!(by("echo-01").map(|e| e["kind"].clone()), Some("tcp".into()));
    outputs.push_str(&listed);
    let shown = ok(&site.jg(&["targets", "show", "db-01"]).await);
    assert!(shown.contains("SHA256:"), "{shown}");
    outputs.push_str(&shown);

    // A technician: session rights on the group, no vault-checkout.
    let tech = site.technician("tina", "Tech-pass-long-9x").await;
    let out = site
        .jg_in(
            &tech,
            &[
                "shell",
                "db-01",
                "--",
                "sh",
                "-c",
                "echo on-$(whoami); exit 7",
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("on-{}", sshd.user)), "{text}");
    outputs.push_str(&text);
    outputs.push_str(&String::from_utf8_lossy(&out.stderr));
    let denied = site.jg_in(&tech, &["vault", "get", "db-pw"]).await;
    assert!(!denied.status.success(), "a technician read the secret");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("vault-checkout"),
        "{denied:?}"
    );
    outputs.push_str(&String::from_utf8_lossy(&denied.stdout));
    outputs.push_str(&String::from_utf8_lossy(&denied.stderr));

    // An interactive shell (a PTY on the target), recorded.
    let out = jg_input(
        &site,
        Some(&tech),
        &["shell", "db-01"],
        b"echo shell-marker-$((6*7))\nexit\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("shell-marker-42"), "{out:?}");
    outputs.push_str(&text);

    // jg cp both ways.
    let local = site.dir.path().join("up.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let remote = format!("db-01:{}/up.bin", sshd.home().display());
    outputs.push_str(&ok(&site
        .jg_in(&tech, &["cp", local.to_str().unwrap(), &remote])
        .await));
    assert_eq!(std::fs::read(sshd.home().join("up.bin")).unwrap(), data);
    let back = site.dir.path().join("back.bin");
    outputs.push_str(&ok(&site
        .jg_in(&tech, &["cp", &remote, back.to_str().unwrap()])
        .await));
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Forwarding: through the SSH target to a port it reaches, and to a
    // TCP target.
    let (mut fwd, local) = forward(&site, "db-01", &format!("0:{tcp}")).await;
    assert_eq!(echo_through(local, b"via-ssh").await, b"via-ssh");
    let (mut fwd2, local2) = forward(&site, "echo-01", "0:ignored:1").await;
    assert_eq!(echo_through(local2, b"via-tcp").await, b"via-tcp");

    // A group holding a target is not deleted; its removal (audited) lets
    // it go. A technician outside the group does not see the target.
    ok(&site.jg(&["admin", "groups", "create", "lab"]).await);
    ok(&site
        .jg(&[
            "targets", "add", "lab-01", "--via", "jp-1", "--tcp", &tcp, "--group", "lab",
        ])
        .await);
    let err = fails(&site.jg(&["admin", "groups", "delete", "lab"]).await);
    assert!(err.contains("target"), "{err}");
    let seen = ok(&site.jg_in(&tech, &["targets", "list"]).await);
    assert!(seen.contains("db-01") && !seen.contains("lab-01"), "{seen}");
    let err = fails(&site.jg_in(&tech, &["shell", "lab-01", "--", "true"]).await);
    assert!(err.contains("no endpoint named `lab-01`"), "{err}");
    ok(&site.jg(&["targets", "remove", "lab-01"]).await);
    ok(&site.jg(&["admin", "groups", "delete", "lab"]).await);

    // No process shows the secret (the probe proves `ps` shows arguments).
    let probe = std::process::Command::new("sh")
        .args(["-c", "sleep 30", "ps-probe-marker"])
        .spawn()
        .unwrap();
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    let mut probe = probe;
    let _ = probe.kill();
    let _ = probe.wait();
    assert!(
        ps.contains("ps-probe-marker"),
        "ps shows no arguments: {ps}"
    );
    assert!(!ps.contains(SECRET), "the secret is in a process list");
    let _ = fwd.kill().await;
    let _ = fwd2.kill().await;

    // The recording of the shell: exported in clear, it has the session
    // (positive control) and not the secret.
    let recs = ok(&site
        .jg(&["recordings", "--endpoint", "db-01", "--json"])
        .await);
    let recs: serde_json::Value = serde_json::from_str(&recs).unwrap();
    let mut cast_text = String::new();
    for r in recs.as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let file = site.dir.path().join(format!("{id}.cast"));
        ok(&site
            .jg(&["recordings", "export", id, "-o", file.to_str().unwrap()])
            .await);
        cast_text.push_str(&std::fs::read_to_string(&file).unwrap());
        std::fs::remove_file(&file).unwrap();
    }
    assert!(
        cast_text.contains("shell-marker-42"),
        "the recordings hold the session"
    );
    assert!(!cast_text.contains(SECRET), "the secret is in a recording");

    // The audit log: the target's changes and the injection are there,
    // never the value.
    let audit = ok(&site.jg(&["audit", "--json", "--limit", "10000"]).await);
    assert!(
        audit.contains("target-add") && audit.contains("jump-point"),
        "{audit}"
    );
    assert!(audit.contains("injected target=db-01"), "{audit}");
    assert!(!audit.contains(SECRET), "the secret is in the audit log");
    outputs.push_str(&audit);

    // Logs: the gateway's (proven captured up to now) and the agent's
    // (which logs each target session).
    let gw_log = site.gateway_log_through_now().await;
    assert!(
        !gw_log.contains(SECRET),
        "the secret is in the gateway's log"
    );
    let agent_log = agent.stderr.text();
    assert!(agent_log.contains("target session opened"), "{agent_log}");
    assert!(
        !agent_log.contains(SECRET),
        "the secret is in the agent's log"
    );
    assert!(!outputs.contains(SECRET), "jg printed the secret");

    // Every file under the gateway's and agents' directories (site.dir
    // holds both, the blobs and the jg homes), with a positive control.
    let probe = site.data_dir().join("probe-file");
    std::fs::write(&probe, format!("x{SECRET}x")).unwrap();
    assert_eq!(
        files_containing(site.dir.path(), SECRET.as_bytes()),
        vec![probe.clone()]
    );
    std::fs::remove_file(&probe).unwrap();
    assert!(files_containing(site.dir.path(), SECRET.as_bytes()).is_empty());
}

/// Rotation after use: the jump point sets a new password with `passwd`,
/// the gateway stores it as the secret's next version; sshd then refuses
/// the old password and a second session works with the new one.
#[tokio::test]
async fn rotation_after_use_changes_the_password_and_the_next_session_works() {
    const OLD: &str = "Old-pw-rot-9Lm4TqVb";
    let Some(sshd) = Sshd::start("r", OLD) else {
        return;
    };
    let site = Site::start().await;
    let _agent = jump_point(&site, "jp-r").await;
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "rot-pw"],
        format!("{OLD}\n").as_bytes(),
    )
    .await);
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "old-pw"],
        format!("{OLD}\n").as_bytes(),
    )
    .await);
    let addr = format!("127.0.0.1:{}", sshd.port);
    let key = sshd.host_key();
    for (name, cred, rotate) in [("rot-01", "rot-pw", true), ("old-01", "old-pw", false)] {
        let mut args = vec![
            "targets",
            "add",
            name,
            "--via",
            "jp-r",
            "--ssh",
            &addr,
            "--user",
            &sshd.user,
            "--credential",
            cred,
            "--host-key",
            key.trim(),
        ];
        if rotate {
            args.push("--rotate-after-use");
        }
        ok(&site.jg(&args).await);
    }
    let out = ok(&site.jg(&["shell", "rot-01", "--", "echo", "first"]).await);
    assert!(out.contains("first"), "{out}");
    // The rotation runs once the session's end is recorded: poll.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok(&site.jg(&["vault", "versions", "rot-pw", "--json"]).await);
        if serde_json::from_str::<serde_json::Value>(&v)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            == 2
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new version: {}",
            ok(&site.jg(&["audit", "--limit", "20"]).await)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new = ok(&site.jg(&["vault", "get", "rot-pw"]).await);
    assert_ne!(new.trim(), OLD);
    // The old password is refused by sshd now…
    let refused = site.jg(&["shell", "old-01", "--", "echo", "never"]).await;
    let text = fails(&refused);
    assert!(text.contains("refused"), "{text}");
    // …and the new one works for a second session (which rotates again).
    let out = ok(&site.jg(&["shell", "rot-01", "--", "echo", "second"]).await);
    assert!(out.contains("second"), "{out}");
    let audit = ok(&site.jg(&["audit", "--json", "--limit", "10000"]).await);
    assert!(audit.contains("target-rotate"), "{audit}");
    assert!(!audit.contains(new.trim()) && !audit.contains(OLD));
}

/// Trust on first use stores the first key (audited); a changed host key
/// is then refused with both fingerprints named, and audited.
#[tokio::test]
async fn a_changed_host_key_is_refused_with_both_fingerprints_and_audited() {
    const PW: &str = "Hk-pw-4Rt8YuPl2w";
    let Some(mut sshd) = Sshd::start("k", PW) else {
        return;
    };
    let site = Site::start().await;
    let _agent = jump_point(&site, "jp-k").await;
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "hk-pw"],
        format!("{PW}\n").as_bytes(),
    )
    .await);
    let addr = format!("127.0.0.1:{}", sshd.port);
    ok(&site
        .jg(&[
            "targets",
            "add",
            "hk-01",
            "--via",
            "jp-k",
            "--ssh",
            &addr,
            "--user",
            &sshd.user,
            "--credential",
            "hk-pw",
            "--trust-on-first-use",
        ])
        .await);
    let out = ok(&site.jg(&["shell", "hk-01", "--", "echo", "trusted"]).await);
    assert!(out.contains("trusted"), "{out}");

    // A private-key credential: the account's authorized key, injected
    // the same way (same host, the key pinned by the first target).
    let user_key = sshd.dir.path().join("user_key");
    sshd.keygen(&user_key);
    let ssh_dir = sshd.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(
        user_key.with_extension("pub"),
        ssh_dir.join("authorized_keys"),
    )
    .unwrap();
    let pem = std::fs::read(&user_key).unwrap();
    ok(&jg_input(&site, None, &["vault", "put", "hk-key", "--exact"], &pem).await);
    let pinned = sshd.host_key();
    ok(&site
        .jg(&[
            "targets",
            "add",
            "pk-01",
            "--via",
            "jp-k",
            "--ssh",
            &addr,
            "--user",
            &sshd.user,
            "--credential",
            "hk-key",
            "--host-key",
            pinned.trim(),
        ])
        .await);
    let out = ok(&site.jg(&["shell", "pk-01", "--", "echo", "by-key"]).await);
    assert!(out.contains("by-key"), "{out}");
    let shown = ok(&site.jg(&["targets", "show", "hk-01"]).await);
    let expected = shown
        .lines()
        .find(|l| l.contains("host key"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("SHA256:")))
        .unwrap_or_else(|| panic!("no pinned fingerprint: {shown}"))
        .to_owned();

    sshd.change_host_key();
    let offered = String::from_utf8(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(sshd.dir.path().join("host2.pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    assert_ne!(expected, offered);
    let refused = site.jg(&["shell", "hk-01", "--", "echo", "never"]).await;
    let text = fails(&refused);
    assert!(text.contains("host key changed"), "{text}");
    assert!(
        text.contains(&expected) && text.contains(&offered),
        "{text}"
    );
    let audit = ok(&site.jg(&["audit", "--json", "--limit", "10000"]).await);
    let events: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let host_key_events: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "target-host-key")
        .collect();
    assert!(
        host_key_events.iter().any(|e| e["outcome"] == "trusted"),
        "{audit}"
    );
    assert!(
        host_key_events
            .iter()
            .any(|e| e["outcome"] == "denied"
                && e["detail"].as_str().unwrap_or("").contains(&offered)),
        "{audit}"
    );
    // Re-pinned without remove + add: the new key works, audited with
    // both fingerprints; bad input changes nothing.
    let new_key = std::fs::read_to_string(sshd.dir.path().join("host2.pub")).unwrap();
    let err = fails(
        &site
            .jg(&["targets", "set-host-key", "hk-01", "nonsense"])
            .await,
    );
    assert!(err.contains("host key"), "{err}");
    let said = ok(&site
        .jg(&["targets", "set-host-key", "hk-01", new_key.trim()])
        .await);
    assert!(said.contains(&offered), "{said}");
    let out = ok(&site
        .jg(&["shell", "hk-01", "--", "echo", "re-pinned"])
        .await);
    assert!(out.contains("re-pinned"), "{out}");
    // Back to trust on first use: the key offered next is learned.
    let said = ok(&site
        .jg(&["targets", "set-host-key", "pk-01", "--trust-on-first-use"])
        .await);
    assert!(said.contains("trusted on first use"), "{said}");
    let out = ok(&site.jg(&["shell", "pk-01", "--", "echo", "learned"]).await);
    assert!(out.contains("learned"), "{out}");
    let shown = ok(&site.jg(&["targets", "show", "pk-01"]).await);
    assert!(shown.contains(&offered), "{shown}");
    let audit = ok(&site.jg(&["audit", "--json", "--limit", "10000"]).await);
    let events: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "target-host-key"
                && e["outcome"] == "set"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(&format!("host-key={offered} was={expected}")))),
        "{audit}"
    );
}

/// `jg ssh-config` lists the SSH targets (not the TCP ones) next to the
/// endpoints, so plain `ssh db-01 CMD` goes through the gateway's front
/// door and the jump point to the real sshd, logged in with the injected
/// password; the user has only jg's certificate.
#[tokio::test]
async fn jg_ssh_config_lets_plain_ssh_reach_ssh_targets() {
    const SECRET: &str = "Cfg-target-pw-4Rt8Lq";
    let Some(sshd) = Sshd::start("c", SECRET) else {
        return;
    };
    let site = Site::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let _jp = jump_point(&site, "jp-1").await;
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "db-pw"],
        format!("{SECRET}\n").as_bytes(),
    )
    .await);
    let addr = format!("127.0.0.1:{}", sshd.port);
    ok(&site
        .jg(&[
            "targets",
            "add",
            "db-01",
            "--via",
            "jp-1",
            "--ssh",
            &addr,
            "--user",
            &sshd.user,
            "--credential",
            "db-pw",
            "--host-key",
            sshd.host_key().trim(),
        ])
        .await);
    let echo = echo_server().await.to_string();
    ok(&site
        .jg(&["targets", "add", "echo-01", "--via", "jp-1", "--tcp", &echo])
        .await);
    let home = tempfile::tempdir().unwrap();
    let dot = crate::ssh::bare_dot_ssh(home.path(), "dot-ssh");
    let said = ok(&site
        .jg(&["ssh-config", "--ssh-dir", dot.to_str().unwrap()])
        .await);
    assert!(said.contains("1 endpoint(s), 1 SSH target(s)"), "{said}");
    let config = dot.join("config");
    let written = std::fs::read_to_string(&config).unwrap();
    // Each name's one-step entry, then one entry for all of them.
    let hosts: Vec<&str> = written
        .lines()
        .filter(|l| l.starts_with("Host ") && l.contains("db-01"))
        .collect();
    assert_eq!(hosts, ["Host db-01", "Host db-01 jp-1"], "{written}");
    assert!(
        written.contains(&format!("  User {ADMIN}+db-01\n")),
        "{written}"
    );
    assert!(!written.contains("echo-01"), "{written}");
    let out = crate::ssh::plain_ssh(&config, &["db-01", "echo on-$(whoami); exit 3"]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("on-{}\n", sshd.user)
    );
    // A user name typed on the command line takes ProxyJump (the block's
    // fallback) and still logs in as the target's account: the gateway
    // decides the account, never the name typed.
    let out = crate::ssh::plain_ssh(&config, &["root@db-01", "echo typed-$(whoami)"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("typed-{}\n", sshd.user)
    );
    // The session is the gateway's like any: in the session log.
    let sessions = ok(&site.jg(&["sessions", "--json"]).await);
    assert!(sessions.contains("db-01"), "{sessions}");
}

/// A jump point reaches only what its administrator's list allows (set,
/// shown, audited), and what the agent's own `--jump-point-allow` allows:
/// a target outside the list is refused when added; a name the gateway
/// cannot decide is resolved by the jump point, which connects only to
/// allowed addresses; a narrowed list warns of the targets left outside
/// and refuses their sessions.
#[tokio::test]
async fn jump_points_reach_only_the_destinations_their_lists_allow() {
    const SECRET: &str = "Allow-list-pw-8Hs3Kd";
    let Some(sshd) = Sshd::start("l", SECRET) else {
        return;
    };
    let site = Site::start().await;
    let p = sshd.port;
    let token = site.enroll_token(&[]).await;
    let own = format!("127.0.0.0/8:{p}");
    let _agent = site.spawn_agent(
        "jp-1",
        Some(&token),
        &["--jump-point", "--jump-point-allow", &own],
    );
    site.wait_online("jp-1", true).await;
    let out = ok(&site
        .jg(&[
            "endpoints",
            "jump-point",
            "jp-1",
            "on",
            "--allow",
            "10.1.2.3/8",
        ])
        .await);
    assert!(
        out.contains("is now a jump point; allowed destinations: 10.0.0.0/8"),
        "{out}"
    );
    let listed = ok(&site.jg(&["endpoints", "jump-points"]).await);
    assert!(
        listed.contains("jp-1  allowed destinations: 10.0.0.0/8"),
        "{listed}"
    );
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("allow=10.0.0.0/8"), "{audit}");
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "db-pw"],
        format!("{SECRET}\n").as_bytes(),
    )
    .await);
    let key = sshd.host_key();
    let add = |name: &'static str, addr: String| {
        let site = &site;
        let key = key.clone();
        let user = sshd.user.clone();
        async move {
            site.jg(&[
                "targets",
                "add",
                name,
                "--via",
                "jp-1",
                "--ssh",
                &addr,
                "--user",
                &user,
                "--credential",
                "db-pw",
                "--host-key",
                key.trim(),
            ])
            .await
        }
    };

    // An address outside the list: refused when added, with the list.
    let err = fails(&add("db-ip", format!("127.0.0.1:{p}")).await);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{p} is outside jump point `jp-1`'s allowed destinations (10.0.0.0/8)"
        )),
        "{err}"
    );
    // A name only its addresses decide: taken, then refused by the jump
    // point, which resolved it outside the list.
    ok(&add("db-name", format!("localhost:{p}")).await);
    let err = fails(&site.jg(&["shell", "db-name", "--", "echo", "no"]).await);
    assert!(
        err.contains("outside this jump point's allowed destinations")
            && err.contains("it resolves to")
            && err.contains("127.0.0.1")
            && err.contains("the administrator's list: 10.0.0.0/8"),
        "{err}"
    );

    // The list widened (the positive control): the same target works, and
    // the address is taken too.
    ok(&site
        .jg(&[
            "endpoints",
            "jump-point",
            "jp-1",
            "on",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "127.0.0.0/8",
        ])
        .await);
    let out = site
        .jg(&["shell", "db-name", "--", "sh", "-c", "echo on-$(whoami)"])
        .await;
    assert!(ok(&out).contains(&format!("on-{}", sshd.user)));
    ok(&add("db-ip", format!("127.0.0.1:{p}")).await);

    // The agent's own list: the gateway allows the echo server's port,
    // the jump point does not.
    let echo = echo_server().await;
    ok(&site
        .jg(&[
            "targets",
            "add",
            "echo-01",
            "--via",
            "jp-1",
            "--tcp",
            &echo.to_string(),
        ])
        .await);
    let mut fwd = site
        .jg_command(&["forward", "echo-01", "0:ignored:1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fwd.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let local: std::net::SocketAddr = first
        .strip_prefix("jg: forwarding ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .parse()
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(local).await.unwrap();
    let _ = s.write_all(b"x").await;
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("the refused forward stayed open")
        .unwrap_or(0);
    assert_eq!(n, 0, "an echo came through a refused forward");
    let deadline = tokio::time::Instant::now() + WAIT;
    let said = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("jg forward never said why")
            .unwrap()
            .expect("jg forward ended without saying why");
        if line.contains("outside") {
            break line;
        }
    };
    assert!(
        said.contains(&format!("--jump-point-allow: 127.0.0.0/8:{p}")),
        "{said}"
    );
    let _ = fwd.kill().await;

    // Narrowed to the name: the targets left outside are named, and the
    // gateway refuses their sessions; the name's target still works.
    let out = site
        .jg(&[
            "endpoints",
            "jump-point",
            "jp-1",
            "on",
            "--allow",
            &format!("localhost:{p}"),
        ])
        .await;
    let warned = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{warned}");
    assert!(
        warned.contains("outside the list now") && warned.contains("db-ip, echo-01"),
        "{warned}"
    );
    let err = fails(&site.jg(&["shell", "db-ip", "--", "true"]).await);
    assert!(
        err.contains("is outside jump point `jp-1`'s allowed destinations"),
        "{err}"
    );
    let out = site.jg(&["shell", "db-name", "--", "echo", "still"]).await;
    assert!(ok(&out).contains("still"));
    // Unmarked, then marked again with no list: any destination.
    let out = ok(&site.jg(&["endpoints", "jump-point", "jp-1", "on"]).await);
    assert!(out.contains("allowed destinations: any"), "{out}");
    let json = ok(&site.jg(&["endpoints", "jump-points", "--json"]).await);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["allow"], serde_json::Value::Null, "{json}");
}
