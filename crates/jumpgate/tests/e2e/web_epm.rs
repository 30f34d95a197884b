//! The console's privilege management pages in Debian's chromium
//! (`tests/browser/epm.mjs`, playwright-core) against a real gateway and a
//! real agent (as root, serving elevation to a throw-away local user when
//! the test runs as root, as in CI): the policy edited as YAML with the
//! gateway naming a bad field, saved, published and taken by the endpoint;
//! a what-if; a live approval request (a real `jumpgate elevate` waiting)
//! approved with a click, after which the program runs; an offline
//! challenge answered with the same response `jg epm code` gives; the
//! events page.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::epm::{LocalUser, POLICY, elevate, text};
use crate::support::*;
use crate::web::{browser_dir, browser_prerequisites as chromium};

const BROWSER_RUN: std::time::Duration = std::time::Duration::from_secs(240);

#[tokio::test]
async fn privilege_management_in_a_real_browser() {
    let chromium = chromium();
    let site = Site::start().await;
    let root = rustix::process::geteuid().is_root();
    let shared = tempfile::Builder::new()
        .prefix("jg-webepm")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.path().join("elevate.sock");
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
    let token = site.enroll_token(&[]).await;
    let sock = socket.to_str().unwrap().to_owned();
    let _agent = site.spawn_agent("desk-7", Some(&token), &["--elevate-socket", &sock]);
    site.wait_online("desk-7", true).await;
    let user = root.then(LocalUser::create);
    let local_user = user.as_ref().map_or("bob".to_owned(), |u| u.name.clone());
    if !root {
        println!("note: not root, so no approval request from a real elevation (CI runs as root)");
    }
    let challenge = jumpgate_epm::code::new_challenge().unwrap();

    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/epm");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(browser_dir().join("epm.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_ENDPOINT", "desk-7")
        .env("JG_LOCAL_USER", &local_user)
        .env("JG_POLICY", POLICY)
        .env("JG_CHALLENGE", &challenge)
        .env("JG_APPROVAL", if root { "1" } else { "0" })
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut waiting = None;
    let mut response = None;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.starts_with("@@ requests-open") {
                let user = user.as_ref().unwrap();
                let mut cmd = elevate(
                    &bin,
                    user,
                    &socket,
                    &["--reason", "INC-77", "--", "date", "+%Y"],
                );
                waiting = Some(
                    cmd.stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap(),
                );
                stdin.write_all(b"go\n").await.unwrap();
            } else if let Some(r) = line.strip_prefix("@@ response ") {
                let v: serde_json::Value = serde_json::from_str(r).unwrap();
                response = Some(v["response"].as_str().unwrap().to_owned());
            }
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
        text(&out.stderr),
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(printed.iter().any(|l| l == "EPM-TEST PASSED"), "{report}");

    // The page's response is the one `jg epm code` gives for that challenge.
    let cli = ok(&site
        .jg(&["epm", "code", "--endpoint", "desk-7", &challenge])
        .await);
    assert_eq!(response.as_deref(), Some(cli.trim()), "{report}");

    // The approved program ran as root and printed the year.
    if let Some(w) = waiting {
        let out = tokio::time::timeout(WAIT, w.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).trim().starts_with("20"),
            "{}",
            text(&out.stdout)
        );
    }
}
