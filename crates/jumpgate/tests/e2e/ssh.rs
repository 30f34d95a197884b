//! The SSH front door with Debian's real OpenSSH client (`ssh`, `scp`,
//! `sftp`, keys from `ssh-keygen`): one-step `ssh USER+ENDPOINT@gateway`,
//! ProxyJump, scp both ways, sftp, `ssh -L`, a technician without rights
//! refused and audited, the session log, a recording replayed, and a
//! session terminated from the API ending the client; the short-lived
//! user certificates `jg login` gets (plain `ssh web-01` after `jg
//! ssh-config`, another CA's refused, refused after logout and after the
//! login runs out); a removed key cutting its connections; scp through a
//! ProxyJump hop; window changes reaching the PTY (a russh client); a
//! client that vanishes (killed) ending its session and command, one step
//! and through ProxyJump.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::support::*;

/// An OpenSSH client set up for a gateway: its own key, a config file (so
/// ProxyJump's inner `ssh` gets the same options) and a known-hosts file
/// holding the gateway's host key (for its address and, as ProxyJump's
/// inner server, for the endpoint `web-01`).
struct Ssh {
    dir: tempfile::TempDir,
    config: PathBuf,
    public: PathBuf,
}

impl Ssh {
    fn new(site: &Site) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "tech@test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client) is installed");
        assert!(st.success());
        let port = site.gateway.ssh.expect("--ssh-listen was given").port();
        let host_key =
            std::fs::read_to_string(site.data_dir().join("ssh_host_ed25519_key.pub")).unwrap();
        let host_key = host_key.trim();
        let known = dir.path().join("known_hosts");
        std::fs::write(
            &known,
            format!("[127.0.0.1]:{port} {host_key}\nweb-01 {host_key}\n"),
        )
        .unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            format!(
                "Host gw\n  HostName 127.0.0.1\n  Port {port}\n\
                 Host *\n  BatchMode yes\n  StrictHostKeyChecking yes\n  \
                 UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  \
                 IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
                 ConnectTimeout 10\n  LogLevel ERROR\n  ControlMaster no\n",
                known = known.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let public = dir.path().join("id_ed25519.pub");
        Self {
            dir,
            config,
            public,
        }
    }

    /// `program -F CONFIG ARGS` (ssh, scp or sftp), stdin closed.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-F")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, program: &str, args: &[&str]) -> Output {
        bounded(self.command(program, args).output(), program, args).await
    }

    /// `ssh ARGS` with `input` on its standard input.
    async fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command("ssh", args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        let out = bounded(child.wait_with_output(), "ssh", args).await;
        let _ = writer.await;
        out
    }

    /// The fingerprint `ssh-keygen -l` gives the client's public key.
    fn fingerprint(&self) -> String {
        fingerprint_of(&self.public)
    }
}

async fn bounded(
    f: impl std::future::Future<Output = std::io::Result<Output>>,
    program: &str,
    args: &[&str],
) -> Output {
    tokio::time::timeout(WAIT * 2, f)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} hung"))
        .unwrap()
}

/// `SHA256:…` of a public key file, as OpenSSH prints it.
fn fingerprint_of(public: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha256_file(p: &Path) -> String {
    jumpgate_net::digest::sha256_hex(&std::fs::read(p).unwrap())
}

fn random_file(p: &Path, len: usize) {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    for b in &mut data {
        // xorshift: incompressible, every byte value.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    std::fs::write(p, data).unwrap();
}

async fn json(site: &Site, args: &[&str]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&ok(&site.jg(args).await)).unwrap();
    v.as_array().unwrap().clone()
}

/// How many SSH connections have logged in with a certificate so far
/// (ProxyJump's hop and its inner connection are two), from the
/// gateway's log.
async fn certificate_logins(site: &Site) -> usize {
    site.gateway_log_through_now()
        .await
        .matches("SSH certificate login")
        .count()
}

async fn ssh_site() -> (Site, Agent, Ssh) {
    let site = Site::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let agent = site.start_agent("web-01").await;
    let ssh = Ssh::new(&site);
    (site, agent, ssh)
}

/// [`ssh_site`] with the client's key registered for the admin.
async fn ssh_site_with_key() -> (Site, Agent, Ssh) {
    let (site, agent, ssh) = ssh_site().await;
    ok(&site
        .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);
    (site, agent, ssh)
}

#[tokio::test]
async fn ssh_clients_reach_an_endpoint_through_the_front_door() {
    let (site, _agent, ssh) = ssh_site().await;
    let admin = format!("{ADMIN}+web-01@gw");

    // The host key's fingerprint, as OpenSSH shows it.
    let printed = ok(&site.admin(&["fingerprint", "--ssh"]).await);
    assert_eq!(
        printed.trim(),
        fingerprint_of(&site.data_dir().join("ssh_host_ed25519_key.pub"))
    );

    // No key registered yet: refused (and the positive control below
    // shows it is the key that makes the difference).
    let out = ssh.run("ssh", &[&admin, "true"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    let added = ok(&site
        .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);
    assert!(added.contains(&ssh.fingerprint()), "{added}");
    let keys = json(&site, &["ssh-keys", "list", "--json"]).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["fingerprint"], ssh.fingerprint().as_str());
    assert_eq!(keys[0]["algorithm"], "ssh-ed25519");
    // The same key twice is refused, and a private key never taken.
    fails(
        &site
            .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
            .await,
    );
    let private = ssh.dir.path().join("id_ed25519");
    let err = fails(
        &site
            .jg(&["ssh-keys", "add", private.to_str().unwrap()])
            .await,
    );
    assert!(err.contains("private key"), "{err}");

    // One step: exec with its output, stderr and exit status.
    let out = ssh
        .run("ssh", &[&admin, "echo to-out; echo to-err >&2; exit 7"])
        .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "to-out\n");
    assert!(text(&out.stderr).contains("to-err"));
    // Standard input (binary, 1 MiB) reaches the command, EOF ends it.
    let input = ssh.dir.path().join("input.bin");
    random_file(&input, 1 << 20);
    let data = std::fs::read(&input).unwrap();
    let out = ssh.run_with_input(&[&admin, "sha256sum"], &data).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&sha256_file(&input)));

    // A shell on a PTY: prompt, output, exit status.
    let out = ssh
        .run_with_input(
            &["-tt", &admin],
            b"stty size; echo answer-$((6*7)); exit 3\n",
        )
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let shell_out = text(&out.stdout);
    assert!(shell_out.contains("answer-42"), "{shell_out}");
    assert!(
        shell_out.contains("24 80"),
        "no PTY of the default size: {shell_out}"
    );

    // ProxyJump: the gateway answers as web-01's SSH server itself.
    let out = ssh
        .run(
            "ssh",
            &[
                "-J",
                &format!("{ADMIN}@gw"),
                "web-01",
                "echo via-jump; exit 4",
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "via-jump\n");
    // The jump's inner connection offers AES-GCM only (the outer one's
    // channel protects it already): a stock client keeps its first
    // choice, ChaCha20-Poly1305, for the outer connection and takes
    // AES-GCM inside (`-v`, which ssh passes on to its `ssh -W`, shows
    // both key exchanges, the outer one first).
    let jump = format!("{ADMIN}@gw");
    let out = ssh.run("ssh", &["-v", "-J", &jump, "web-01", "true"]).await;
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let ciphers: Vec<&str> = said
        .lines()
        .filter_map(|l| l.split_once("kex: server->client cipher: "))
        .filter_map(|(_, c)| c.split(' ').next())
        .collect();
    assert_eq!(
        ciphers,
        ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"],
        "{said}"
    );
    // A client that offers no AES-GCM for the inner connection is told so
    // (at ssh's default log level, INFO).
    let chacha_only = ssh.dir.path().join("config-chacha-inside");
    std::fs::write(
        &chacha_only,
        format!(
            "Host web-01\n  Ciphers chacha20-poly1305@openssh.com\n{}",
            std::fs::read_to_string(&ssh.config).unwrap()
        ),
    )
    .unwrap();
    let out = plain_ssh(
        &chacha_only,
        &["-o", "LogLevel=INFO", "-J", &jump, "web-01", "true"],
    )
    .await;
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("no matching cipher found") && said.contains("aes128-gcm@openssh.com"),
        "{said}"
    );
    // The front door itself takes each cipher OpenSSH offers by default,
    // aes128-gcm (which russh's default list lacks) among them.
    for cipher in [
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
    ] {
        let out = ssh
            .run("ssh", &["-v", "-c", cipher, &admin, "echo cipher-ok"])
            .await;
        let said = text(&out.stderr);
        assert!(out.status.success(), "{cipher}: {said}");
        assert_eq!(text(&out.stdout), "cipher-ok\n", "{cipher}");
        assert!(
            said.contains(&format!("kex: server->client cipher: {cipher} ")),
            "{cipher}: {said}"
        );
    }

    // `jg ssh-config`: plain `ssh web-01` goes through the gateway. The
    // user's own settings (here: the key) stay below the block it adds.
    let dot_ssh = ssh.dir.path().join("dot-ssh");
    std::fs::create_dir_all(&dot_ssh).unwrap();
    let key = ssh.dir.path().join("id_ed25519");
    std::fs::write(
        dot_ssh.join("config"),
        format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             BatchMode yes\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            key.display()
        ),
    )
    .unwrap();
    let said = ok(&site
        .jg(&["ssh-config", "--ssh-dir", dot_ssh.to_str().unwrap()])
        .await);
    assert!(said.contains("1 endpoint(s)"), "{said}");
    let written = std::fs::read_to_string(dot_ssh.join("config")).unwrap();
    assert!(written.starts_with("# >>> jumpgate"), "{written}");
    let mut plain = Command::new("ssh");
    plain
        .arg("-F")
        .arg(dot_ssh.join("config"))
        .args(["web-01", "echo plain-ssh"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let logins_before = certificate_logins(&site).await;
    let out = bounded(plain.output(), "ssh", &["web-01"]).await;
    assert!(out.status.success(), "{}\n{written}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "plain-ssh\n");
    // It took one step: one connection, one login (ProxyJump logs in
    // twice, as the control below shows), and OpenSSH reads the block so.
    let logins = certificate_logins(&site).await;
    assert_eq!(logins, logins_before + 1, "{written}");
    let route = |args: &'static [&'static str]| {
        let config = dot_ssh.join("config");
        async move {
            let mut g = Command::new("ssh");
            g.arg("-F").arg(&config).arg("-G").args(args);
            text(&bounded(g.output(), "ssh -G", args).await.stdout)
        }
    };
    let shown = route(&["web-01"]).await;
    assert!(
        shown.contains(&format!("\nuser {ADMIN}+web-01\n")),
        "{shown}"
    );
    assert!(!shown.contains("\nproxyjump "), "{shown}");
    // A user name typed on the command line (which replaces the block's)
    // goes through ProxyJump instead, and still reaches web-01.
    let shown = route(&["root@web-01"]).await;
    assert!(shown.contains("\nproxyjump jumpgate-"), "{shown}");
    let typed = plain_ssh(&dot_ssh.join("config"), &["root@web-01", "echo typed-name"]).await;
    assert!(typed.status.success(), "{}\n{written}", text(&typed.stderr));
    assert_eq!(text(&typed.stdout), "typed-name\n");
    assert_eq!(certificate_logins(&site).await, logins + 2);
    // `ssh -J` with a name the block lists: the hop goes to the front
    // door's own address (the block's HostName and Port for web-01), as
    // `alice+web-01`, which names the endpoint.
    let gateway_alias = written
        .lines()
        .find_map(|l| l.strip_prefix("Host jumpgate-"))
        .map(|h| format!("jumpgate-{h}"))
        .expect("the block names the gateway");
    let out = plain_ssh(
        &dot_ssh.join("config"),
        &["-J", &gateway_alias, "web-01", "echo named-by-user"],
    )
    .await;
    assert!(out.status.success(), "{}\n{written}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "named-by-user\n");
    // With a user name typed too, `-J` replaces the `Match`'s ProxyJump
    // and the hop goes to web-01:22, whose inner server takes any name.
    let out = plain_ssh(
        &dot_ssh.join("config"),
        &["-J", &gateway_alias, "root@web-01", "echo typed-and-jump"],
    )
    .await;
    assert!(out.status.success(), "{}\n{written}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "typed-and-jump\n");
    // A hop to any other port is a port forward, which needs the endpoint
    // in the user name: refused, and said so (ssh shows the reason with
    // `-v` only; it passes `-v` on to its `ssh -W`).
    let out = plain_ssh(
        &dot_ssh.join("config"),
        &[
            "-v",
            "-J",
            &gateway_alias,
            "-p",
            "2",
            "web-01",
            "echo not-a-hop",
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("name the endpoint in the user name"),
        "{}",
        text(&out.stderr)
    );

    // scp both ways (SFTP protocol, then the legacy one over exec).
    let remote = tempfile::tempdir().unwrap();
    let up = remote.path().join("up.bin");
    let back = ssh.dir.path().join("back.bin");
    for legacy in [false, true] {
        let mut args = vec![];
        if legacy {
            args.push("-O");
        }
        let dst = format!("{admin}:{}", up.display());
        let mut a = args.clone();
        a.extend([input.to_str().unwrap(), dst.as_str()]);
        let out = ssh.run("scp", &a).await;
        assert!(out.status.success(), "scp up: {}", text(&out.stderr));
        assert_eq!(sha256_file(&up), sha256_file(&input), "legacy={legacy}");
        let mut a = args.clone();
        a.extend([dst.as_str(), back.to_str().unwrap()]);
        let out = ssh.run("scp", &a).await;
        assert!(out.status.success(), "scp down: {}", text(&out.stderr));
        assert_eq!(sha256_file(&back), sha256_file(&input), "legacy={legacy}");
        std::fs::remove_file(&up).unwrap();
        std::fs::remove_file(&back).unwrap();
    }

    // sftp: put, list, get.
    let batch = ssh.dir.path().join("batch");
    let got = ssh.dir.path().join("got.bin");
    std::fs::write(
        &batch,
        format!(
            "put {} {}/via-sftp.bin\nls {}\nget {}/via-sftp.bin {}\n",
            input.display(),
            remote.path().display(),
            remote.path().display(),
            remote.path().display(),
            got.display()
        ),
    )
    .unwrap();
    let out = ssh
        .run("sftp", &["-b", batch.to_str().unwrap(), &admin])
        .await;
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("via-sftp.bin"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(sha256_file(&got), sha256_file(&input));

    // ssh -L: a forward session from the endpoint to a loopback echo server.
    let echo = echo_server().await;
    let local = crate::support::free_port();
    let spec = format!("127.0.0.1:{local}:127.0.0.1:{}", echo.port());
    // And one to a port where nothing listens on the endpoint.
    let [local_closed, closed] = crate::support::free_ports(2)[..] else {
        unreachable!("two ports were asked for")
    };
    let spec_closed = format!("127.0.0.1:{local_closed}:127.0.0.1:{closed}");
    let mut fwd = ssh
        .command(
            "ssh",
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                &spec,
                "-L",
                &spec_closed,
                &admin,
            ],
        )
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut conn = loop {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forwarded port never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ping: Vec<u8> = (0u8..64).collect();
    conn.write_all(&ping).await.unwrap();
    let mut pong = vec![0u8; 64];
    tokio::time::timeout(WAIT, conn.read_exact(&mut pong))
        .await
        .expect("no echo through ssh -L")
        .unwrap();
    assert_eq!(pong, ping);
    drop(conn);
    // The endpoint refuses the closed port: the client's connection ends
    // (the channel is closed), and the refusal is the session's outcome.
    let mut refused = tokio::net::TcpStream::connect(("127.0.0.1", local_closed))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, refused.read_to_end(&mut rest))
        .await
        .expect("a refused forward's connection stays open");
    assert!(rest.is_empty(), "{read:?}: {}", text(&rest));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = json(&site, &["sessions", "--json"]).await;
        let outcome = |e: &serde_json::Value| e["outcome"].as_str().unwrap_or("").to_owned();
        if events
            .iter()
            .any(|e| e["kind"] == "forward" && outcome(e).starts_with("refused: "))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = fwd.kill().await;

    // Every session is in the session log, by the key's user, on web-01.
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let events = json(&site, &["sessions", "--json"]).await;
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        if ["shell", "exec", "forward"]
            .iter()
            .all(|k| kinds.contains(k))
        {
            break events;
        }
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for e in &events {
        assert_eq!(e["username"], ADMIN, "{e}");
        assert_eq!(e["endpoint"], "web-01", "{e}");
    }
    // The logins are audited as SSH ones, with the key.
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("ssh publickey"), "{audit}");
    assert!(audit.contains(&ssh.fingerprint()), "{audit}");
    assert!(audit.contains("ssh-key-add"), "{audit}");

    // The PTY shell's recording replays.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let recs = json(&site, &["recordings", "--json"]).await;
        let mut played = String::new();
        for r in recs.iter().filter(|r| r["ended_at"].is_string()) {
            let id = r["id"].as_str().unwrap();
            played.push_str(&ok(&site.jg(&["play", id, "--speed", "64"]).await));
        }
        if played.contains("answer-42") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recording replays the shell: {recs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A removed key no longer logs in.
    let id = keys[0]["id"].as_str().unwrap();
    ok(&site.jg(&["ssh-keys", "remove", id]).await);
    let out = ssh.run("ssh", &[&admin, "true"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
}

#[tokio::test]
async fn ssh_refuses_without_rights_and_ends_a_terminated_session() {
    let (site, _agent, ssh) = ssh_site().await;
    // A user whose role may only see endpoints.
    ok(&site
        .jg(&[
            "admin",
            "roles",
            "create",
            "viewer",
            "--permissions",
            "view",
        ])
        .await);
    let pw = site.password_file("vic.pw", "correct horse battery staple 9");
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "vic",
            "--role",
            "viewer",
            "--groups",
            "default",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    let home = site.home("vic");
    ok(&site
        .try_login_in(&home, "vic", "correct horse battery staple 9", &[])
        .await);
    ok(&site
        .jg_in(&home, &["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);

    // Logged in, but refused a command, a shell and sftp, with reasons.
    let out = ssh
        .run("ssh", &["vic+web-01@gw", "echo should-not-run"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("should-not-run"));
    let err = text(&out.stderr);
    assert!(err.contains("exec session on `web-01` refused"), "{err}");
    let out = ssh
        .run_with_input(&["-tt", "vic+web-01@gw"], b"exit\n")
        .await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    let out = ssh.run("sftp", &["-b", "/dev/null", "vic+web-01@gw"]).await;
    assert!(!out.status.success());
    // Each refusal is a security event by vic.
    let audit = json(&site, &["audit", "--json"]).await;
    let denied: Vec<&str> = audit
        .iter()
        .filter(|e| e["actor"] == "vic" && e["outcome"] == "denied")
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(denied.contains(&"open-session:exec"), "{audit:?}");
    assert!(denied.contains(&"open-session:shell"), "{audit:?}");
    assert!(denied.contains(&"open-session:upload"), "{audit:?}");

    // The administrator's live shell, terminated through the API.
    ok(&site
        .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);
    let mut child = ssh
        .command("ssh", &["-tt", &format!("{ADMIN}+web-01@gw")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo live-$((40+2))\n").await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text(&seen).contains("live-42") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .expect("the shell never answered")
            .unwrap();
        assert!(n > 0, "the shell ended: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let events = json(&site, &["sessions", "--json"]).await;
    let live = events
        .iter()
        .find(|e| e["ended_at"].is_null() && e["kind"] == "shell" && e["username"] == ADMIN)
        .unwrap_or_else(|| panic!("no live shell: {events:?}"));
    let id = live["id"].as_str().unwrap();
    site.api_client()
        .with_token(site.saved_token(&site.jg_home()))
        .post_no_content(&format!("/api/v1/sessions/{id}/terminate"))
        .await
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the ssh client did not end when its session was terminated")
        .unwrap();
    assert!(!status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest).await;
    let all = format!("{err}{}", text(&rest));
    assert!(all.contains("terminated"), "{all}");
    drop(stdin);
}

#[tokio::test]
async fn ssh_logs_in_with_password_and_second_factor_through_keyboard_interactive() {
    let (site, _agent, ssh) = ssh_site().await;
    const PW: &str = "tangerine orbit ledger 42";
    let home = site.technician("kim", PW).await;
    let mfa = site.mfa_enroll(&home).await;
    let code = mfa.recovery_codes[0].clone();
    // The answers come from files through SSH_ASKPASS (as a person would
    // type them): the password, then the second factor.
    let pw_file = ssh.dir.path().join("pw");
    let code_file = ssh.dir.path().join("code");
    std::fs::write(&pw_file, format!("{PW}\n")).unwrap();
    std::fs::write(&code_file, format!("{code}\n")).unwrap();
    let askpass = ssh.dir.path().join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\ncase \"$1\" in *assword*) cat {};; *code*) cat {};; *) exit 1;; esac\n",
            pw_file.display(),
            code_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let interactive = |cmd: &str| {
        let mut c = ssh.command(
            "ssh",
            &[
                "-o",
                "BatchMode=no",
                "-o",
                "PreferredAuthentications=keyboard-interactive",
                "-o",
                "NumberOfPasswordPrompts=1",
                "kim+web-01@gw",
                cmd,
            ],
        );
        c.env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        c
    };
    let out = bounded(interactive("echo kbd-ok").output(), "ssh", &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "kbd-ok\n");

    // The recovery code is spent: the same answers no longer log in, and
    // a wrong password neither; both are audited as failed logins.
    let out = bounded(interactive("true").output(), "ssh", &[]).await;
    assert_eq!(
        out.status.code(),
        Some(255),
        "a recovery code was used twice"
    );
    std::fs::write(&pw_file, "wrong password\n").unwrap();
    let out = bounded(interactive("true").output(), "ssh", &[]).await;
    assert_eq!(out.status.code(), Some(255));
    let audit = json(&site, &["audit", "--json"]).await;
    let failed: Vec<&str> = audit
        .iter()
        .filter(|e| e["actor"] == "kim" && e["action"] == "login" && e["outcome"] == "failed")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(failed.contains(&"wrong password"), "{audit:?}");
    assert!(failed.contains(&"wrong second factor"), "{audit:?}");
    // No secret reaches the gateway's log (which did see the logins).
    let log = site.gateway_log_through_now().await;
    assert!(
        log.contains("SSH keyboard-interactive login refused"),
        "{log}"
    );
    assert!(
        !log.contains(PW) && !log.contains(&code),
        "a secret in the log"
    );
}

/// The front door reaches an agentless target as it reaches an endpoint
/// (the same `SessionService` lookup as `jg shell`): the jump point logs in
/// to a real sshd with the password injected from the vault, which the
/// OpenSSH client never sees; exec with its status, scp both ways.
#[tokio::test]
async fn ssh_clients_reach_an_agentless_target_through_the_front_door() {
    const PW: &str = "Fd-pw-7Hq2Lx9VztK";
    let Some(sshd) = crate::targets::Sshd::start("f", PW) else {
        return;
    };
    let site = Site::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let _jp = crate::targets::jump_point(&site, "jp-f").await;
    ok(&crate::targets::jg_input(
        &site,
        None,
        &["vault", "put", "fd-pw"],
        format!("{PW}\n").as_bytes(),
    )
    .await);
    let addr = format!("127.0.0.1:{}", sshd.port);
    // The target `name`: that sshd, its password in the vault, `key` pinned.
    let add_target = |name: &'static str, key: String| {
        let (site, addr, user) = (&site, &addr, &sshd.user);
        async move {
            ok(&site
                .jg(&[
                    "targets",
                    "add",
                    name,
                    "--via",
                    "jp-f",
                    "--ssh",
                    addr,
                    "--user",
                    user,
                    "--credential",
                    "fd-pw",
                    "--host-key",
                    key.trim(),
                ])
                .await);
        }
    };
    add_target("db-01", sshd.host_key()).await;
    let ssh = Ssh::new(&site);
    ok(&site
        .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);
    let admin = format!("{ADMIN}+db-01@gw");

    let out = ssh.run("ssh", &[&admin, "echo on-$(whoami); exit 5"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("on-{}\n", sshd.user));

    // scp (the SFTP protocol: the target's sftp-server through the jump
    // point) up and down, into the target account's home.
    let input = ssh.dir.path().join("up.bin");
    random_file(&input, 300_000);
    let back = ssh.dir.path().join("back.bin");
    let dst = format!("{admin}:fd-up.bin");
    let out = ssh.run("scp", &[input.to_str().unwrap(), &dst]).await;
    assert!(out.status.success(), "scp up: {}", text(&out.stderr));
    let home = PathBuf::from(format!("/home/{}/fd-up.bin", sshd.user));
    assert_eq!(sha256_file(&home), sha256_file(&input));
    let out = ssh.run("scp", &[&dst, back.to_str().unwrap()]).await;
    assert!(out.status.success(), "scp down: {}", text(&out.stderr));
    assert_eq!(sha256_file(&back), sha256_file(&input));

    // The sessions are the target's, and nothing the client saw holds
    // the password (the vault's value, checked to be it).
    assert_eq!(ok(&site.jg(&["vault", "get", "fd-pw"]).await).trim(), PW);
    let sessions = ok(&site.jg(&["sessions", "--json"]).await);
    assert!(sessions.contains("db-01"), "{sessions}");
    assert!(!text(&out.stdout).contains(PW) && !text(&out.stderr).contains(PW));
    assert!(!sessions.contains(PW));

    // The same target pinned to another host key: the jump point refuses
    // the session once it is opened, and the client hears why on stderr,
    // with exit status 1.
    let other = ssh.dir.path().join("other_host_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    add_target("db-02", wrong).await;
    let out = ssh
        .run("ssh", &[&format!("{ADMIN}+db-02@gw"), "echo never"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("never"));
    let err = text(&out.stderr);
    assert!(
        err.contains("jumpgate: ") && err.contains("host key"),
        "{err}"
    );
    assert!(!err.contains(PW));
}

/// A `~/.ssh` whose config only makes `ssh` non-interactive and strict,
/// with no key of its own: what `jg ssh-config` adds is all it has.
pub(crate) fn bare_dot_ssh(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("config"),
        "Host *\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n  \
         StrictHostKeyChecking yes\n  GlobalKnownHostsFile /dev/null\n  \
         ConnectTimeout 10\n  LogLevel ERROR\n  ControlMaster no\n",
    )
    .unwrap();
    d
}

/// `ssh -F CONFIG ARGS`, stdin closed.
pub(crate) async fn plain_ssh(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    bounded(cmd.output(), "ssh", args).await
}

#[tokio::test]
async fn ssh_certificates_from_jg_login_log_in_with_no_registered_key() {
    let (site, _agent, ssh) = ssh_site().await;
    // `jg login` (done by the harness) made a key pair and got a
    // certificate: principal the user, key id naming user and login,
    // signed by the CA `jumpgate admin fingerprint --ssh-user-ca` shows.
    let jg_ssh = site.jg_home().join("ssh");
    let cert = jg_ssh.join("id_ed25519-cert.pub");
    let shown = std::process::Command::new("ssh-keygen")
        .args(["-L", "-f"])
        .arg(&cert)
        .output()
        .unwrap();
    let shown = text(&shown.stdout);
    let ca = ok(&site.admin(&["fingerprint", "--ssh-user-ca"]).await);
    assert!(ca.trim().starts_with("SHA256:"), "{ca}");
    assert!(shown.contains("user certificate"), "{shown}");
    assert!(
        shown.contains(&format!("Signing CA: ED25519 {}", ca.trim())),
        "{shown}"
    );
    assert!(shown.contains(&format!("user={ADMIN} login=")), "{shown}");
    assert!(
        shown.contains(&format!("Principals: \n                {ADMIN}\n")),
        "{shown}"
    );
    // The same CA over the API.
    let api_ca = ok(&site.jg(&["ssh-cert"]).await);
    assert!(
        api_ca.contains("SSH certificate for admin until"),
        "{api_ca}"
    );
    assert!(
        json(&site, &["ssh-keys", "list", "--json"])
            .await
            .is_empty()
    );

    // `jg ssh-config`, then plain `ssh web-01 CMD`: both hops (the gateway,
    // then its inner server for web-01) log in with the certificate.
    let dot = bare_dot_ssh(ssh.dir.path(), "dot-ssh");
    ok(&site
        .jg(&["ssh-config", "--ssh-dir", dot.to_str().unwrap()])
        .await);
    let config = dot.join("config");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("CertificateFile"), "{written}");
    let out = plain_ssh(&config, &["web-01", "echo via-cert; exit 5"]).await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}\n{written}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "via-cert\n");
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("ssh-cert-issue"), "{audit}");

    // The same key certified by another CA is refused.
    let forged = ssh.dir.path().join("forged");
    std::fs::copy(jg_ssh.join("id_ed25519"), &forged).unwrap();
    std::fs::copy(jg_ssh.join("id_ed25519.pub"), forged.with_extension("pub")).unwrap();
    let other_ca = ssh.dir.path().join("other_ca");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_ca)
        .status()
        .unwrap();
    assert!(st.success());
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&other_ca)
        .args(["-I", "forged", "-n", ADMIN, "-V", "+1h"])
        .arg(forged.with_extension("pub"))
        .status()
        .unwrap();
    assert!(st.success());
    let forged_cert = ssh.dir.path().join("forged-cert.pub");
    assert!(forged_cert.exists());
    let forged_config = dot.join("forged-config");
    std::fs::write(
        &forged_config,
        written
            .replace(
                &cert.display().to_string(),
                &forged_cert.display().to_string(),
            )
            .replace(
                &jg_ssh.join("id_ed25519").display().to_string(),
                &forged.display().to_string(),
            ),
    )
    .unwrap();
    let out = plain_ssh(&forged_config, &["web-01", "echo forged"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Permission denied"));

    // Logging out ends the login the certificate was issued for: the
    // same certificate (kept aside) is refused from then on.
    let kept = std::fs::read(&cert).unwrap();
    ok(&site.jg(&["logout"]).await);
    assert!(!cert.exists(), "jg logout leaves the certificate behind");
    std::fs::write(&cert, &kept).unwrap();
    let out = plain_ssh(&config, &["web-01", "echo after-logout"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("after-logout"));
    // A new login, a new certificate: in again.
    site.login(ADMIN, ADMIN_PASSWORD).await;
    assert_ne!(std::fs::read(&cert).unwrap(), kept);
    let out = plain_ssh(&config, &["web-01", "echo again"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "again\n");

    // A user without rights on web-01 logs in with their certificate and
    // is refused the session, audited.
    ok(&site
        .jg(&[
            "admin",
            "roles",
            "create",
            "viewer",
            "--permissions",
            "view",
        ])
        .await);
    let pw = site.password_file("vic.pw", "correct horse battery staple 9");
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "vic",
            "--role",
            "viewer",
            "--groups",
            "default",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    let home = site.home("vic");
    let said = ok(&site
        .try_login_in(&home, "vic", "correct horse battery staple 9", &[])
        .await);
    assert!(said.contains("SSH certificate until"), "{said}");
    let vic_dot = bare_dot_ssh(ssh.dir.path(), "vic-dot-ssh");
    ok(&site
        .jg_in(
            &home,
            &["ssh-config", "--ssh-dir", vic_dot.to_str().unwrap()],
        )
        .await);
    let out = plain_ssh(&vic_dot.join("config"), &["web-01", "echo should-not-run"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("should-not-run"));
    let err = text(&out.stderr);
    assert!(err.contains("exec session on `web-01` refused"), "{err}");
    let audit = json(&site, &["audit", "--json"]).await;
    assert!(
        audit
            .iter()
            .any(|e| e["actor"] == "vic" && e["action"] == "open-session:exec"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn removing_an_ssh_key_cuts_the_connections_that_logged_in_with_it() {
    let (site, _agent, ssh) = ssh_site().await;
    let added = ok(&site
        .jg(&["ssh-keys", "add", ssh.public.to_str().unwrap()])
        .await);
    let id = added.split_whitespace().nth(1).unwrap().to_owned();
    assert!(id.starts_with("sk_"), "{added}");
    // A live shell, logged in with the key (it answers: the control).
    let mut child = ssh
        .command("ssh", &["-tt", &format!("{ADMIN}+web-01@gw")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo live-$((40+2))\n").await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text(&seen).contains("live-42") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .expect("the shell never answered")
            .unwrap();
        assert!(n > 0, "the shell ended: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    ok(&site.jg(&["ssh-keys", "remove", &id]).await);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the connection outlived the removal of its key")
        .unwrap();
    assert!(!status.success());
    // Its session ended too, and the key no longer logs in.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = json(&site, &["sessions", "--json"]).await;
        let shells: Vec<_> = events.iter().filter(|e| e["kind"] == "shell").collect();
        if !shells.is_empty() && shells.iter().all(|e| !e["ended_at"].is_null()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = ssh
        .run("ssh", &[&format!("{ADMIN}+web-01@gw"), "true"])
        .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    drop(stdin);
}

#[tokio::test]
async fn scp_goes_through_the_gateway_as_a_proxyjump_hop() {
    let (_site, _agent, ssh) = ssh_site_with_key().await;
    let input = ssh.dir.path().join("input.bin");
    random_file(&input, 1 << 20);
    let remote = tempfile::tempdir().unwrap();
    let up = remote.path().join("up.bin");
    let back = ssh.dir.path().join("back.bin");
    let jump = format!("{ADMIN}@gw");
    let dst = format!("web-01:{}", up.display());
    // SFTP protocol, then the legacy one (`scp -t`/`-f` over exec); with
    // `-J`, and with ProxyCommand `ssh -W` (what ProxyJump expands to).
    let proxy = format!(
        "ProxyCommand=ssh -F {} -W %h:%p {jump}",
        ssh.config.display()
    );
    for legacy in [false, true] {
        for hop in [vec!["-J", jump.as_str()], vec!["-o", proxy.as_str()]] {
            let mut args: Vec<&str> = hop.clone();
            if legacy {
                args.push("-O");
            }
            let mut a = args.clone();
            a.extend([input.to_str().unwrap(), dst.as_str()]);
            let out = ssh.run("scp", &a).await;
            assert!(out.status.success(), "scp up {a:?}: {}", text(&out.stderr));
            assert_eq!(sha256_file(&up), sha256_file(&input), "{a:?}");
            let mut a = args.clone();
            a.extend([dst.as_str(), back.to_str().unwrap()]);
            let out = ssh.run("scp", &a).await;
            assert!(
                out.status.success(),
                "scp down {a:?}: {}",
                text(&out.stderr)
            );
            assert_eq!(sha256_file(&back), sha256_file(&input), "{a:?}");
            std::fs::remove_file(&up).unwrap();
            std::fs::remove_file(&back).unwrap();
        }
    }
}

/// A russh client that trusts the gateway's host key (read from its data
/// directory and compared).
struct PinnedHost(russh::keys::PublicKey);

impl russh::client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(
            matches!(key, russh::keys::PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.0.key_data()),
        )
    }
}

/// Reads a channel's output until it contains `want` (bounded).
async fn read_until(ch: &mut russh::Channel<russh::client::Msg>, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains(want) {
        let msg = tokio::time::timeout_at(deadline, ch.wait())
            .await
            .unwrap_or_else(|_| panic!("never saw {want:?} in {seen:?}"));
        match msg {
            Some(russh::ChannelMsg::Data { data }) => seen.push_str(&text(&data)),
            Some(_) => {}
            None => panic!("the channel closed before {want:?}: {seen:?}"),
        }
    }
}

#[tokio::test]
async fn window_changes_reach_the_pty_and_ssh_t_runs_a_command_in_one() {
    let (site, _agent, ssh) = ssh_site_with_key().await;
    let host_key =
        std::fs::read_to_string(site.data_dir().join("ssh_host_ed25519_key.pub")).unwrap();
    let host_key = russh::keys::PublicKey::from_openssh(host_key.trim()).unwrap();
    let key = russh::keys::load_secret_key(ssh.dir.path().join("id_ed25519"), None).unwrap();
    let addr = site.gateway.ssh.unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut handle = tokio::time::timeout(
        WAIT,
        russh::client::connect(config, addr, PinnedHost(host_key)),
    )
    .await
    .expect("connect hung")
    .unwrap();
    let auth = handle
        .authenticate_publickey(
            format!("{ADMIN}+web-01"),
            russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(auth.success());
    let mut ch = handle.channel_open_session().await.unwrap();
    ch.request_pty(false, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_shell(false).await.unwrap();
    let mut seen = String::new();
    // `stty size` prints ROWS COLS; the markers make each answer unique.
    ch.data(&b"echo A-$(stty size)-A\n"[..]).await.unwrap();
    read_until(&mut ch, &mut seen, "A-24 80-A").await;
    ch.window_change(132, 43, 0, 0).await.unwrap();
    // The resize and the next line travel in order on the session.
    ch.data(&b"echo B-$(stty size)-B\n"[..]).await.unwrap();
    read_until(&mut ch, &mut seen, "B-43 132-B").await;
    ch.data(&b"exit\n"[..]).await.unwrap();
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    // `ssh -t host CMD`: the command runs in a PTY (`stty size` works, the
    // exit status comes back); without -t it has none (the control).
    let admin = format!("{ADMIN}+web-01@gw");
    let out = ssh
        .run("ssh", &["-tt", &admin, "stty size; echo pty-$?; exit 6"])
        .await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("24 80") && said.contains("pty-0"), "{said}");
    let out = ssh
        .run("ssh", &["-T", &admin, "stty size; echo pty-$?"])
        .await;
    assert!(text(&out.stdout).contains("pty-1"), "{}", text(&out.stdout));
    // It is a shell session with its command in the session log.
    let events = json(&site, &["sessions", "--json"]).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "shell"
                && e.to_string().contains("stty size; echo pty-$?; exit 6")),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_ssh_certificate_ends_with_its_login() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jumpgate.toml");
    std::fs::write(&config, "[auth]\nsession_ttl = \"20s\"\n").unwrap();
    let site = Site::start_with(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    let _agent = site.start_agent("web-01").await;
    // A fresh login (20 s) and its certificate; the config written now.
    site.login(ADMIN, ADMIN_PASSWORD).await;
    let logged_in = tokio::time::Instant::now();
    let dot = bare_dot_ssh(dir.path(), "dot-ssh");
    ok(&site
        .jg(&["ssh-config", "--ssh-dir", dot.to_str().unwrap()])
        .await);
    let config = dot.join("config");
    // Valid now (the control)...
    let out = plain_ssh(&config, &["web-01", "echo in-time"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "in-time\n");
    // ...refused once the login (and so the certificate) has run out.
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let out = plain_ssh(&config, &["web-01", "echo late"]).await;
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
            assert!(text(&out.stderr).contains("Permission denied"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the certificate outlived its login"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        logged_in.elapsed() >= Duration::from_secs(15),
        "refused before the login could have expired"
    );
    // And no new one without a new login.
    let err = fails(&site.jg(&["ssh-cert"]).await);
    assert!(!err.is_empty());
}

/// A loopback TCP server that greets each connection with `hello` and
/// closes it: what `ssh -W` reaches from the endpoint.
async fn greeter() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"hello\n").await;
            let _ = s.shutdown().await;
        }
    });
    port
}

#[tokio::test]
async fn ssh_certificates_permit_what_they_say_and_no_more() {
    // `[ssh] certificate_lifetime` from a configuration file.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("jumpgate.toml");
    std::fs::write(&conf, "[ssh]\ncertificate_lifetime = \"30m\"\n").unwrap();
    let site = Site::start_with(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--config",
        conf.to_str().unwrap(),
    ])
    .await;
    let _agent = site.start_agent("web-01").await;
    let ssh = Ssh::new(&site);
    let cert = site.jg_home().join("ssh").join("id_ed25519-cert.pub");
    let keygen_l = || {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(&cert)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let said = ok(&site.jg(&["ssh-cert"]).await);
    let until = said
        .split_whitespace()
        .skip_while(|w| *w != "until")
        .nth(1)
        .unwrap()
        .to_owned();
    let until = time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let left = until - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::minutes(30) && left > time::Duration::minutes(25),
        "{said}"
    );
    // The usual certificate permits a terminal and forwarding.
    let shown = keygen_l();
    assert!(
        shown.contains("permit-pty") && shown.contains("permit-port-forwarding"),
        "{shown}"
    );
    let dot = bare_dot_ssh(ssh.dir.path(), "dot-ssh");
    ok(&site
        .jg(&["ssh-config", "--ssh-dir", dot.to_str().unwrap()])
        .await);
    let config = dot.join("config");
    let out = plain_ssh(&config, &["-tt", "web-01", "tty; echo done"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("/dev/"), "{}", text(&out.stdout));
    let port = greeter().await;
    let to = format!("127.0.0.1:{port}");
    let out = plain_ssh(&config, &["-W", &to, "web-01"]).await;
    assert_eq!(text(&out.stdout), "hello\n", "{}", text(&out.stderr));

    // No PTY, no forwarding: the real client is told so, and the command
    // still runs (without a terminal).
    ok(&site
        .jg(&["ssh-cert", "--no-pty", "--no-port-forwarding"])
        .await);
    let shown = keygen_l();
    assert!(
        !shown.contains("permit-pty") && !shown.contains("permit-port-forwarding"),
        "{shown}"
    );
    // `-t` makes the refusal fatal for OpenSSH's client: no terminal.
    let out = plain_ssh(&config, &["-tt", "web-01", "tty; echo done"]).await;
    let err = text(&out.stderr);
    assert!(err.contains("PTY allocation request failed"), "{err}");
    assert!(
        !text(&out.stdout).contains("/dev/"),
        "{}",
        text(&out.stdout)
    );
    // Commands without a terminal still run.
    let out = plain_ssh(&config, &["web-01", "tty; echo done"]).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("not a tty") && stdout.contains("done"),
        "{stdout} {}",
        text(&out.stderr)
    );
    // (The channel's refusal is logged at INFO.)
    let out = plain_ssh(&config, &["-o", "LogLevel=INFO", "-W", &to, "web-01"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("hello"));
    let err = text(&out.stderr);
    assert!(
        err.contains("administratively prohibited")
            && err.contains("port forwarding is not permitted by your SSH certificate"),
        "{err}"
    );
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("no-pty no-port-forwarding"), "{audit}");

    // source-address: from elsewhere refused; from here (the positive
    // control) in.
    ok(&site
        .jg(&["ssh-cert", "--source-address", "192.0.2.0/24"])
        .await);
    assert!(keygen_l().contains("source-address 192.0.2.0/24"));
    let out = plain_ssh(&config, &["web-01", "echo should-not-run"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Permission denied"));
    assert!(!text(&out.stdout).contains("should-not-run"));
    ok(&site
        .jg(&["ssh-cert", "--source-address", "192.0.2.0/24,127.0.0.0/8"])
        .await);
    let out = plain_ssh(&config, &["web-01", "echo from-here"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-here\n");

    // force-command runs whatever is asked, the asked command beside it.
    ok(&site
        .jg(&[
            "ssh-cert",
            "--force-command",
            "echo forced:$SSH_ORIGINAL_COMMAND",
        ])
        .await);
    assert!(keygen_l().contains("force-command"));
    let out = plain_ssh(&config, &["web-01", "echo asked"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "forced:echo asked\n");

    // Bad requests are refused with the reason, and nothing is written.
    let before = std::fs::read(&cert).unwrap();
    let err = fails(
        &site
            .jg(&["ssh-cert", "--source-address", "somewhere"])
            .await,
    );
    assert!(err.contains("source address"), "{err}");
    assert_eq!(std::fs::read(&cert).unwrap(), before);
}

/// An endpoint lost in the middle of a session ends the SSH client's
/// command (with a failure), whichever way the gateway notices first:
/// the technician's data it cannot deliver, or the endpoint's stream
/// ending. The client is never left waiting on an open channel.
#[tokio::test]
async fn an_endpoint_lost_mid_session_ends_the_ssh_client() {
    let (site, mut agent, ssh) = ssh_site_with_key().await;
    let mut child = ssh
        .command("ssh", &[&format!("{ADMIN}+web-01@gw"), "cat > /dev/null"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The technician keeps sending for as long as the client takes it.
    let (sent_tx, mut sent) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0;
        while stdin.write_all(&chunk).await.is_ok() {
            total += chunk.len();
            let _ = sent_tx.send(total);
        }
    });
    // 16 MiB is far beyond what the client and the gateway buffer: by then
    // data flows to the endpoint.
    tokio::time::timeout(WAIT, sent.wait_for(|n| *n >= 16 << 20))
        .await
        .expect("the session never took 16 MiB")
        .unwrap();
    assert!(child.try_wait().unwrap().is_none(), "ssh ended early");
    let events = json(&site, &["sessions", "--json"]).await;
    assert!(
        events
            .iter()
            .any(|e| e["ended_at"].is_null() && e["kind"] == "exec" && e["username"] == ADMIN),
        "no live exec session: {events:?}"
    );
    agent.child.kill().await.unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the ssh client was left waiting after its endpoint went")
        .unwrap();
    assert!(!status.success(), "{status:?}");
    writer.abort();
}

/// A client that vanishes mid-session (killed: no EOF, no close, no
/// goodbye) ends its session, one step or through ProxyJump (whose inner
/// connection has no keepalives of its own: the outer connection's end
/// closes the hop's channel). The command stops with it, as it would with
/// `jg` killed; before, an exec session ran on, listed live, until its
/// command ended by itself.
#[tokio::test]
async fn an_ssh_client_that_vanishes_ends_its_session_and_command() {
    let (site, _agent, ssh) = ssh_site_with_key().await;
    let one_step = format!("{ADMIN}+web-01@gw");
    let jump = format!("{ADMIN}@gw");
    // Commands no other run can have left behind (a killed agent's
    // children outlive it).
    let n = 100_000 + 2 * (std::process::id() % 100_000);
    let (first, second) = (format!("sleep {n}"), format!("sleep {}", n + 1));
    let forms: [(&str, Vec<&str>); 2] = [
        (&first, vec![one_step.as_str()]),
        (&second, vec!["-J", jump.as_str(), "web-01"]),
    ];
    let running = |marker: &str| {
        std::process::Command::new("pgrep")
            .args(["-f", &format!("^{marker}$")])
            .output()
            .unwrap()
            .status
            .success()
    };
    for (command, dest) in forms {
        let mut args = dest.clone();
        args.push(command);
        // Its own process group: `ssh -J` runs the hop as a second `ssh`,
        // and both go at once, as when a terminal is killed.
        let mut child = ssh.command("ssh", &args).process_group(0).spawn().unwrap();
        let target = format!("sh -c {command}");
        let mine = |events: &[serde_json::Value]| {
            events
                .iter()
                .find(|e| e["target"] == target.as_str())
                .cloned()
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let events = json(&site, &["sessions", "--json"]).await;
            // The session is live and its command runs on the endpoint.
            if mine(&events).is_some_and(|e| e["ended_at"].is_null()) && running(command) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{dest:?}: no live session running `{command}`: {events:?}"
            );
            assert!(child.try_wait().unwrap().is_none(), "ssh ended early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pgid = child.id().unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let ended = loop {
            let events = json(&site, &["sessions", "--json"]).await;
            let e = mine(&events).expect("the session is listed");
            if !e["ended_at"].is_null() && !running(command) {
                break e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{dest:?}: the session or `{command}` outlived its vanished client: {e:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let outcome = ended["outcome"].as_str().unwrap();
        assert!(
            outcome.starts_with("error: technician side: the SSH"),
            "{dest:?}: {outcome}"
        );
    }
}
