//! The console's Package Manager pages in Debian's chromium
//! (`tests/browser/packages.mjs`, playwright-core) against a real gateway
//! (local blob store: the agent downloads through the gateway's signed
//! route) and a real agent installing into a private dpkg root (never
//! this machine's packages): upload (a bad file refused with the
//! gateway's reason), assignment, the endpoint's result with dpkg's
//! output, and an inventory query. Needs root and dpkg-deb (as the other
//! package tests); screenshots in `target/browser-artifacts/packages/`.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use crate::support::*;
use crate::web::{browser_dir, browser_prerequisites as chromium};

const BROWSER_RUN: std::time::Duration = std::time::Duration::from_secs(240);

#[tokio::test]
async fn packages_in_a_real_browser() {
    if !rustix::process::geteuid().is_root() {
        crate::packages::skip(
            "needs root (dpkg installs as root, under a private root); CI runs as root",
        );
        return;
    }
    let chromium = chromium();
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let token = site.enroll_token(&["--group", "desks"]).await;
    let _agent = site.spawn_agent(
        "desk-9",
        Some(&token),
        &[
            "--package-root",
            root.to_str().unwrap(),
            "--package-poll",
            "300ms",
        ],
    );
    site.wait_online("desk-9", true).await;
    // The package, built by dpkg-deb.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(src.join("usr/share/jg-console")).unwrap();
    std::fs::write(
        src.join("DEBIAN/control"),
        "Package: jg-console\nVersion: 2.4.1-1\nArchitecture: all\nMaintainer: Jumpgate tests <tests@example.com>\nDescription: uploaded from the console\n",
    )
    .unwrap();
    std::fs::write(src.join("usr/share/jg-console/readme"), "hello").unwrap();
    let deb = dir.path().join("jg-console_2.4.1-1_all.deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&src)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");

    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/packages");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(browser_dir().join("packages.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_ENDPOINT", "desk-9")
        .env("JG_GROUP", "desks")
        .env("JG_DEB", &deb)
        .env("JG_PACKAGE", "jg-console")
        .env("JG_VERSION", "2.4.1-1")
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
        printed.iter().any(|l| l == "PACKAGES-TEST PASSED"),
        "{report}"
    );
    assert!(root.join("usr/share/jg-console/readme").is_file());
}
