//! The console's Targets page and the Account page's SSH section in
//! Debian's chromium (`tests/browser/targets.mjs`, playwright-core)
//! against a real gateway, a jump point agent and a real OpenSSH server as
//! the agentless target (started as root, as the other target tests):
//! a target added from the form, listed, a terminal opened on it running
//! as the target's account, a refused target showing the gateway's reason;
//! an SSH key added and removed; the injected password on no page.
//! Screenshots in `target/browser-artifacts/targets/`.

use std::ffi::OsStr;

use crate::support::*;
use crate::targets::{Sshd, jg_input, jump_point};
use crate::web::{browser_prerequisites, run_browser};

const BROWSER_RUN: std::time::Duration = std::time::Duration::from_secs(200);

#[tokio::test]
async fn targets_and_ssh_keys_in_a_real_browser() {
    const SECRET: &str = "Br0wser-injected-Pw-91x";
    let Some(sshd) = Sshd::start("web", SECRET) else {
        return;
    };
    browser_prerequisites();
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

    let (addr, jp, plain) = (format!("127.0.0.1:{}", sshd.port), "jp-web", "plain-1");
    let env: [(&str, &OsStr); 8] = [
        ("JG_JUMP_POINT", jp.as_ref()),
        ("JG_PLAIN_ENDPOINT", plain.as_ref()),
        ("JG_SSH_ADDR", addr.as_ref()),
        ("JG_SSH_USER", sshd.user.as_ref()),
        ("JG_CREDENTIAL", "web-db-pw".as_ref()),
        ("JG_SECRET", SECRET.as_ref()),
        ("JG_PUBLIC_KEY", public.trim().as_ref()),
        ("JG_PUBLIC_FP", fp.as_ref()),
    ];
    run_browser(
        &site,
        "targets.mjs",
        "targets",
        "TARGETS-TEST PASSED",
        &env,
        BROWSER_RUN,
    )
    .await;
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
