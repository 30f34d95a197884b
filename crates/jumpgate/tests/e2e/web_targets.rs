//! The console's Targets page and the Account page's SSH section in
//! Debian's chromium (`tests/browser/targets.mjs`, playwright-core)
//! against a real gateway, a jump point agent and a real OpenSSH server as
//! the agentless target (started as root, as the other target tests):
//! a target added from the form, listed, a terminal opened on it running
//! as the target's account, a refused target showing the gateway's reason;
//! an SSH key added and removed; the injected password on no page.
//! Screenshots in `target/browser-artifacts/targets/`.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use crate::support::*;
use crate::targets::{Sshd, jg_input, jump_point};
use crate::web::{browser_dir, browser_prerequisites as chromium};

const BROWSER_RUN: std::time::Duration = std::time::Duration::from_secs(200);

#[tokio::test]
async fn targets_and_ssh_keys_in_a_real_browser() {
    const SECRET: &str = "Br0wser-injected-Pw-91x";
    let Some(sshd) = Sshd::start("web", SECRET) else {
        return;
    };
    let chromium = chromium();
    let site = Site::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let _jp = jump_point(&site, "jp-web").await;
    let _plain = site.start_agent("plain-1").await;
    ok(&jg_input(
        &site,
        None,
        &["vault", "put", "web-db-pw"],
        format!("{SECRET}\n").as_bytes(),
    )
    .await);
    // A public key and its fingerprint as ssh-keygen prints it.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "console@test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen (openssh-client; scripts/test installs it)");
    assert!(made.status.success(), "{made:?}");
    let public = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
    let fp = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(dir.path().join("id_ed25519.pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(fp.starts_with("SHA256:"), "{fp}");

    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/targets");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(browser_dir().join("targets.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_JUMP_POINT", "jp-web")
        .env("JG_PLAIN_ENDPOINT", "plain-1")
        .env("JG_SSH_ADDR", format!("127.0.0.1:{}", sshd.port))
        .env("JG_SSH_USER", &sshd.user)
        .env("JG_CREDENTIAL", "web-db-pw")
        .env("JG_SECRET", SECRET)
        .env("JG_PUBLIC_KEY", public.trim())
        .env("JG_PUBLIC_FP", &fp)
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line);
        }
    };
    tokio::time::timeout(BROWSER_RUN, run)
        .await
        .expect("the browser test hung");
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "node exited {}\nstdout:\n{}\nstderr:\n{}\ngateway log:\n{}\nscreenshots: {}",
        out.status,
        printed.join("\n"),
        String::from_utf8_lossy(&out.stderr),
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(
        printed.iter().any(|l| l == "TARGETS-TEST PASSED"),
        "{report}"
    );
    // What the browser did, as the gateway recorded it: the target added
    // by the admin, its session, the key added and removed.
    let shown = ok(&site.jg(&["targets", "show", "db-01"]).await);
    assert!(shown.contains("SHA256:"), "pinned at first use: {shown}");
    let keys = ok(&site.jg(&["ssh-keys", "list"]).await);
    assert!(!keys.contains(&fp), "removed: {keys}");
    let sessions = ok(&site.jg(&["sessions", "--json"]).await);
    assert!(sessions.contains("db-01"), "{sessions}");
    // The injected password reached no log.
    assert!(
        site.gateway.stderr.text().contains("db-01"),
        "positive control"
    );
    assert!(!site.gateway.stderr.text().contains(SECRET));
}
