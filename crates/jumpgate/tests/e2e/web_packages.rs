//! The console's Package Manager pages in Debian's chromium
//! (`tests/browser/packages.mjs`, playwright-core) against a real gateway
//! (local blob store: the agent downloads through the gateway's signed
//! route) and a real agent installing into a private dpkg root (never
//! this machine's packages): upload (a bad file refused with the
//! gateway's reason), assignment, the endpoint's result with dpkg's
//! output, and an inventory query. Needs root and dpkg-deb (as the other
//! package tests); screenshots in `target/browser-artifacts/packages/`.

use std::ffi::OsStr;

use crate::support::*;
use crate::web::{browser_prerequisites, run_browser};

const BROWSER_RUN: std::time::Duration = std::time::Duration::from_secs(240);

#[tokio::test]
async fn packages_in_a_real_browser() {
    if !rustix::process::geteuid().is_root() {
        crate::packages::skip(
            "needs root (dpkg installs as root, under a private root); CI runs as root",
        );
        return;
    }
    browser_prerequisites();
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

    let env: [(&str, &OsStr); 5] = [
        ("JG_ENDPOINT", "desk-9".as_ref()),
        ("JG_GROUP", "desks".as_ref()),
        ("JG_DEB", deb.as_ref()),
        ("JG_PACKAGE", "jg-console".as_ref()),
        ("JG_VERSION", "2.4.1-1".as_ref()),
    ];
    run_browser(
        &site,
        "packages.mjs",
        "packages",
        "PACKAGES-TEST PASSED",
        &env,
        BROWSER_RUN,
    )
    .await;
    assert!(root.join("usr/share/jg-console/readme").is_file());
}
