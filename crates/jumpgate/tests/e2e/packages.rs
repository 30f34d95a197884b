//! The Package Manager end to end: real `.deb` files built here with
//! `dpkg-deb --build`, uploaded with `jg epm packages upload`, stored in a
//! real blob store (SeaweedFS S3; Azurite for Azure) with their signed
//! manifests, assigned to an endpoint group, and installed, upgraded and
//! removed by a real `jumpgate agent` process that downloads them from
//! the blob store directly. The agent runs dpkg on a **private root**
//! (`--package-root`, `dpkg --root`): these tests never change this
//! machine's dpkg database. A package changed in the bucket (one byte) is
//! refused and reported with the system unchanged; a package whose
//! install fails is rolled back, an upgrade that fails leaves the version
//! before installed; the inventory answers version queries; the results
//! reach the analytics store's `package-compliance` report.
//!
//! Needs root (dpkg installs as root, even under a private root; CI runs
//! the tests as root) and dpkg-deb; skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jumpgate_test_support::azurite::Azurite;
use jumpgate_test_support::s3::SeaweedFs;

use crate::support::*;

const BUCKET: &str = "jumpgate-packages";

/// A package test that cannot run here says `skipped:` — unless
/// `JUMPGATE_REQUIRE_PACKAGE_TOOLS` is set (`scripts/test`, which runs as
/// root and installs the tools), where it fails.
pub(crate) fn skip(why: &str) {
    assert!(
        std::env::var_os("JUMPGATE_REQUIRE_PACKAGE_TOOLS").is_none(),
        "{why}, and JUMPGATE_REQUIRE_PACKAGE_TOOLS is set"
    );
    println!("skipped: {why}");
}

fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        skip("needs root (dpkg installs as root, under a private root); CI runs as root");
        return false;
    }
    if std::process::Command::new("dpkg-deb")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("dpkg-deb is not installed");
        return false;
    }
    true
}

/// Builds `NAME_VERSION.deb` in `dir` with dpkg-deb: one file,
/// `/usr/share/NAME/version`, holding the version.
fn build_deb(dir: &Path, name: &str, version: &str, depends: Option<&str>) -> PathBuf {
    let src = dir.join(format!("src-{name}-{version}"));
    std::fs::create_dir_all(src.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(src.join(format!("usr/share/{name}"))).unwrap();
    let mut control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Jumpgate tests <tests@example.com>\nDescription: a package of the Package Manager tests\n"
    );
    if let Some(d) = depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    std::fs::write(src.join("DEBIAN/control"), control).unwrap();
    std::fs::write(src.join(format!("usr/share/{name}/version")), version).unwrap();
    let out = dir.join(format!("{name}_{version}_all.deb"));
    let built = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&src)
        .arg(&out)
        .output()
        .unwrap();
    assert!(built.status.success(), "dpkg-deb: {built:?}");
    out
}

/// What the private root's dpkg database says is installed: name → version.
fn installed(root: &Path) -> Vec<(String, String)> {
    let out = std::process::Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (n, v, s) = (f.next()?, f.next()?, f.next()?);
            (s.as_bytes().get(1) == Some(&b'i')).then(|| (n.to_owned(), v.to_owned()))
        })
        .collect()
}

async fn upload(site: &Site, file: &Path) -> serde_json::Value {
    let out = site
        .jg(&[
            "epm",
            "packages",
            "upload",
            file.to_str().unwrap(),
            "--json",
        ])
        .await;
    serde_json::from_str(&ok(&out)).unwrap()
}

async fn status(site: &Site) -> serde_json::Value {
    serde_json::from_str(&ok(&site
        .jg(&["epm", "packages", "status", "--json"])
        .await))
    .unwrap()
}

/// Polls `jg epm packages status` until `endpoint`'s row of `package`
/// satisfies `pred`.
async fn wait_status(
    site: &Site,
    endpoint: &str,
    package: &str,
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
            .find(|r| r["endpoint"] == endpoint && r["package"] == package)
            && pred(row)
        {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {all:#}\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn inventory(site: &Site, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["epm", "inventory", "--json"];
    a.extend_from_slice(args);
    let v: serde_json::Value = serde_json::from_str(&ok(&site.jg(&a).await)).unwrap();
    v.as_array().unwrap().clone()
}

/// Polls the inventory until `pred` holds for the rows of `args`.
async fn wait_inventory(
    site: &Site,
    args: &[&str],
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = inventory(site, args).await;
        if pred(&rows) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {rows:#?}\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A site whose blob store is `blobs_toml`, with agent `pk-1` in group
/// `lab` working on the private root `root`.
async fn site_with_agent(blobs_toml: &str, conf: &Path, root: &Path) -> (Site, Agent) {
    let config = conf.join("jumpgate.toml");
    std::fs::write(&config, blobs_toml).unwrap();
    let site = Site::start_with(&["--config", config.to_str().unwrap()]).await;
    let token = site.enroll_token(&["--group", "lab"]).await;
    let agent = site.spawn_agent(
        "pk-1",
        Some(&token),
        &[
            "--package-root",
            root.to_str().unwrap(),
            "--package-poll",
            "300ms",
        ],
    );
    site.wait_online("pk-1", true).await;
    (site, agent)
}

#[tokio::test]
async fn packages_from_s3_install_upgrade_refuse_tampering_roll_back_and_remove() {
    if !can_run() {
        return;
    }
    let Some(s3) = SeaweedFs::start().await else {
        return;
    };
    s3.aws(&["s3", "mb", &format!("s3://{BUCKET}")]).await;
    let conf = tempfile::tempdir().unwrap();
    let root = conf.path().join("root");
    let (site, agent) = site_with_agent(
        &s3.blobs_config(BUCKET, "site", &conf.path().join("s3-secret")),
        conf.path(),
        &root,
    )
    .await;
    let debs = conf.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let v1 = build_deb(&debs, "jg-hello", "1.0-1", None);
    let v2 = build_deb(&debs, "jg-hello", "2.0-1", None);

    // Not a package: refused, naming what is wrong.
    let junk = debs.join("junk.deb");
    std::fs::write(&junk, b"PK\x03\x04 this is a zip file").unwrap();
    let refused = fails(
        &site
            .jg(&["epm", "packages", "upload", junk.to_str().unwrap()])
            .await,
    );
    assert!(refused.contains("ar archive"), "{refused}");

    // Upload: the .deb and its signed manifest land in the bucket.
    let p1 = upload(&site, &v1).await;
    assert_eq!(
        (p1["name"].as_str(), p1["version"].as_str()),
        (Some("jg-hello"), Some("1.0-1"))
    );
    let id1 = p1["id"].as_str().unwrap().to_owned();
    let listing = s3
        .aws(&[
            "s3",
            "ls",
            "--recursive",
            &format!("s3://{BUCKET}/site/packages/{id1}/"),
        ])
        .await;
    assert!(
        listing.contains("package.deb") && listing.contains("manifest.jgpkg"),
        "{listing}"
    );
    // The same file again is the same package.
    assert_eq!(upload(&site, &v1).await["id"], p1["id"]);

    // Assign a pinned version: installed on the endpoint from S3.
    ok(&site
        .jg(&[
            "epm",
            "packages",
            "assign",
            "jg-hello",
            "--group",
            "lab",
            "--version",
            "1.0-1",
        ])
        .await);
    let row = wait_status(&site, "pk-1", "jg-hello", "1.0-1 installed", |r| {
        r["outcome"] == "installed" && r["version"] == "1.0-1"
    })
    .await;
    assert!(
        row["output"]
            .as_str()
            .unwrap()
            .contains("Setting up jg-hello"),
        "{row:#}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/jg-hello/version")).unwrap(),
        "1.0-1"
    );
    assert!(installed(&root).contains(&("jg-hello".into(), "1.0-1".into())));

    // Upgrade: the newest upload.
    upload(&site, &v2).await;
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-hello", "--group", "lab"])
        .await);
    let row = wait_status(&site, "pk-1", "jg-hello", "upgraded to 2.0-1", |r| {
        r["outcome"] == "installed" && r["version"] == "2.0-1"
    })
    .await;
    assert!(
        row["message"].as_str().unwrap().contains("1.0-1"),
        "{row:#}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/jg-hello/version")).unwrap(),
        "2.0-1"
    );
    // Told again: already so, nothing done.
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-hello", "--group", "lab"])
        .await);
    wait_status(&site, "pk-1", "jg-hello", "unchanged", |r| {
        r["outcome"] == "unchanged"
    })
    .await;

    // One byte of a package changed in the bucket: refused before the
    // system is touched, and reported.
    let t = build_deb(&debs, "jg-tamper", "1.0", None);
    let pt = upload(&site, &t).await;
    let key = format!(
        "s3://{BUCKET}/site/packages/{}/package.deb",
        pt["id"].as_str().unwrap()
    );
    let local = debs.join("tampered.deb");
    s3.aws(&["s3", "cp", &key, local.to_str().unwrap()]).await;
    let mut bytes = std::fs::read(&local).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&local, &bytes).unwrap();
    s3.aws(&["s3", "cp", local.to_str().unwrap(), &key]).await;
    let status_before = std::fs::read(root.join("var/lib/dpkg/status")).unwrap();
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-tamper", "--group", "lab"])
        .await);
    let row = wait_status(&site, "pk-1", "jg-tamper", "tampering refused", |r| {
        r["outcome"] == "refused"
    })
    .await;
    let msg = row["message"].as_str().unwrap();
    assert!(
        msg.contains("SHA-256") && msg.contains("nothing was changed"),
        "{row:#}"
    );
    assert!(
        row["attempts"].as_u64().unwrap() >= 2,
        "not retried: {row:#}"
    );
    assert!(!root.join("usr/share/jg-tamper").exists());
    assert!(!installed(&root).iter().any(|(n, _)| n == "jg-tamper"));
    assert_eq!(
        std::fs::read(root.join("var/lib/dpkg/status")).unwrap(),
        status_before,
        "dpkg's database changed"
    );

    // An install that fails (a dependency nobody provides) is undone.
    let broken = build_deb(&debs, "jg-broken", "1.0", Some("jg-no-such-dependency"));
    upload(&site, &broken).await;
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-broken", "--group", "lab"])
        .await);
    let row = wait_status(&site, "pk-1", "jg-broken", "failed install", |r| {
        r["outcome"] == "failed"
    })
    .await;
    assert!(
        row["message"].as_str().unwrap().contains("removed again"),
        "{row:#}"
    );
    assert!(
        row["output"]
            .as_str()
            .unwrap()
            .contains("jg-no-such-dependency"),
        "{row:#}"
    );
    assert!(row["version"].is_null(), "{row:#}");
    assert!(!installed(&root).iter().any(|(n, _)| n == "jg-broken"));
    assert!(!root.join("usr/share/jg-broken").exists());

    // An upgrade that fails (3.0-1 needs what nobody provides) leaves the
    // version before installed, files and dpkg's database alike.
    let v3 = build_deb(&debs, "jg-hello", "3.0-1", Some("jg-no-such-dependency"));
    upload(&site, &v3).await;
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-hello", "--group", "lab"])
        .await);
    let row = wait_status(&site, "pk-1", "jg-hello", "failed upgrade", |r| {
        r["outcome"] == "failed"
    })
    .await;
    assert_eq!(row["version"], "2.0-1", "{row:#}");
    assert!(
        row["output"]
            .as_str()
            .unwrap()
            .contains("jg-no-such-dependency"),
        "{row:#}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/jg-hello/version")).unwrap(),
        "2.0-1"
    );
    assert!(installed(&root).contains(&("jg-hello".into(), "2.0-1".into())));
    // The compliance report: jg-hello failed on the endpoint, jg-tamper
    // refused (failed too), nothing pending.
    let row = wait_compliance(&site, "jg-hello", |r| r[4] == 1).await;
    assert_eq!(row, serde_json::json!(["jg-hello", "lab", 1, 0, 1, 0]));
    let row = wait_compliance(&site, "jg-tamper", |r| r[4] == 1).await;
    assert_eq!(row, serde_json::json!(["jg-tamper", "lab", 1, 0, 1, 0]));

    // Inventory: what the agent installed, and what changed under it
    // (dpkg run by someone else) once the status file moved.
    wait_inventory(
        &site,
        &["--package", "jg-hello"],
        "jg-hello 2.0-1",
        |rows| rows.len() == 1 && rows[0]["endpoint"] == "pk-1" && rows[0]["version"] == "2.0-1",
    )
    .await;
    let outside = build_deb(&debs, "jg-outside", "0.5", None);
    let out = std::process::Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg("-i")
        .arg(&outside)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_inventory(
        &site,
        &["--package", "jg-outside"],
        "jg-outside seen",
        |rows| rows.len() == 1 && rows[0]["version"] == "0.5",
    )
    .await;
    // "Which endpoints run jg-hello older than 3.0?" — Debian order.
    let old = inventory(&site, &["--package", "jg-hello", "--version-lt", "3.0"]).await;
    assert_eq!(old.len(), 1, "{old:#?}");
    let old = inventory(&site, &["--package", "jg-hello", "--version-lt", "2.0-1"]).await;
    assert!(old.is_empty(), "{old:#?}");
    let old = inventory(&site, &["--package", "jg-hello", "--version", "<< 2.0-1~"]).await;
    assert!(old.is_empty(), "2.0-1 is newer than 2.0-1~: {old:#?}");
    let text = ok(&site
        .jg(&[
            "epm",
            "inventory",
            "--package",
            "jg-outside",
            "--group",
            "lab",
        ])
        .await);
    assert!(text.contains("pk-1") && text.contains("0.5"), "{text}");

    // Remove.
    ok(&site
        .jg(&["epm", "packages", "remove", "jg-hello", "--group", "lab"])
        .await);
    wait_status(&site, "pk-1", "jg-hello", "removed", |r| {
        r["outcome"] == "removed" && r["version"].is_null()
    })
    .await;
    assert!(!root.join("usr/share/jg-hello/version").exists());
    wait_inventory(
        &site,
        &["--package", "jg-hello"],
        "jg-hello gone",
        <[_]>::is_empty,
    )
    .await;
    // The audit log has the uploads and assignments.
    let audit = ok(&site.jg(&["audit"]).await);
    assert!(
        audit.contains("package-upload") && audit.contains("package-assign"),
        "{audit}"
    );
    drop(agent);
}

#[tokio::test]
async fn packages_from_azure_install_and_remove() {
    if !can_run() {
        return;
    }
    let Some(az) = Azurite::start("jumpgate-packages").await else {
        return;
    };
    let conf = tempfile::tempdir().unwrap();
    let root = conf.path().join("root");
    let (site, _agent) = site_with_agent(
        &az.blobs_config("jumpgate-packages", "site", &conf.path().join("az-key")),
        conf.path(),
        &root,
    )
    .await;
    let deb = build_deb(conf.path(), "jg-azure", "1.2.3-4", None);
    upload(&site, &deb).await;
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-azure", "--group", "lab"])
        .await);
    wait_status(&site, "pk-1", "jg-azure", "installed from Azure", |r| {
        r["outcome"] == "installed" && r["version"] == "1.2.3-4"
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/jg-azure/version")).unwrap(),
        "1.2.3-4"
    );
    ok(&site
        .jg(&["epm", "packages", "remove", "jg-azure", "--group", "lab"])
        .await);
    wait_status(&site, "pk-1", "jg-azure", "removed", |r| {
        r["outcome"] == "removed"
    })
    .await;
    assert!(!installed(&root).iter().any(|(n, _)| n == "jg-azure"));
}

/// Polls `jg report package-compliance` until the row of `package`
/// satisfies `pred`; the row (package, group, endpoints, compliant, failed,
/// pending).
async fn wait_compliance(
    site: &Site,
    package: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let out = ok(&site
            .jg(&["report", "package-compliance", "--format", "json"])
            .await);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(row) = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == package)
            && pred(row.as_array().unwrap())
        {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "package-compliance of {package}: {v:#}\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The console's Reports page shows the package-compliance card with the
/// package's row and a compliant bar (`tests/browser/report-compliance.mjs`;
/// screenshot `target/browser-artifacts/report-compliance/report-compliance.png`).
async fn compliance_in_the_browser(site: &Site, package: &str, group: &str) {
    let env: [(&str, &std::ffi::OsStr); 2] = [
        ("JG_PACKAGE", package.as_ref()),
        ("JG_GROUP", group.as_ref()),
    ];
    let artifacts = crate::web::run_browser(
        site,
        "report-compliance.mjs",
        "report-compliance",
        "REPORT-COMPLIANCE-TEST PASSED",
        &env,
        Duration::from_secs(150),
    )
    .await;
    assert!(artifacts.join("report-compliance.png").exists());
}

/// The local blob store: the agent downloads through the gateway's signed
/// route, with the same verification.
#[tokio::test]
async fn packages_from_the_local_store_through_the_signed_route() {
    if !can_run() {
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    let root = conf.path().join("root");
    let (site, _agent) = site_with_agent("", conf.path(), &root).await;
    let deb = build_deb(conf.path(), "jg-local", "0.1", None);
    upload(&site, &deb).await;
    ok(&site
        .jg(&["epm", "packages", "assign", "jg-local", "--group", "lab"])
        .await);
    wait_status(
        &site,
        "pk-1",
        "jg-local",
        "installed via the gateway",
        |r| r["outcome"] == "installed",
    )
    .await;
    assert!(installed(&root).contains(&("jg-local".into(), "0.1".into())));

    // The result is shipped to the analytics store: the package-compliance
    // report counts the endpoint compliant (its pending record before the
    // result is superseded), through `jg report` and the console's card.
    let row = wait_compliance(&site, "jg-local", |r| r[3] == 1).await;
    assert_eq!(row, serde_json::json!(["jg-local", "lab", 1, 1, 0, 0]));
    compliance_in_the_browser(&site, "jg-local", "lab").await;

    // A pinned upload cannot be deleted; unassigned, it can.
    let pinned = upload(&site, &deb).await;
    let id = pinned["id"].as_str().unwrap();
    ok(&site
        .jg(&[
            "epm",
            "packages",
            "assign",
            "jg-local",
            "--group",
            "lab",
            "--version",
            "0.1",
        ])
        .await);
    let refused = fails(&site.jg(&["epm", "packages", "delete", id]).await);
    assert!(refused.contains("pinned"), "{refused}");
    ok(&site
        .jg(&["epm", "packages", "unassign", "jg-local", "--group", "lab"])
        .await);
    ok(&site.jg(&["epm", "packages", "delete", id]).await);
    let list = ok(&site.jg(&["epm", "packages", "list"]).await);
    assert!(!list.contains("jg-local"), "{list}");
}

/// Publisher signatures (minisign) and a local APT repository import.
#[tokio::test]
async fn signed_uploads_and_an_apt_repository_import() {
    if !can_run() {
        return;
    }
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !have("minisign") || !have("dpkg-scanpackages") {
        skip("minisign or dpkg-scanpackages is not installed (apt-get install minisign dpkg-dev)");
        return;
    }
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (pk, sk) = (dir.path().join("acme.pub"), dir.path().join("acme.key"));
    let out = std::process::Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&pk)
        .arg("-s")
        .arg(&sk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deb = build_deb(dir.path(), "jg-signed", "1.0", None);
    let sign = |file: &Path| {
        let out = std::process::Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&sk)
            .arg("-m")
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    sign(&deb);
    let sig = format!("{}.minisig", deb.display());
    // Unknown publisher: refused; trusted: the publisher is recorded.
    let refused = fails(
        &site
            .jg(&[
                "epm",
                "packages",
                "upload",
                deb.to_str().unwrap(),
                "--signature",
                &sig,
            ])
            .await,
    );
    assert!(refused.contains("not a trusted publisher"), "{refused}");
    ok(&site
        .jg(&[
            "epm",
            "packages",
            "publishers",
            "add",
            "acme",
            pk.to_str().unwrap(),
        ])
        .await);
    ok(&site
        .jg(&["epm", "packages", "require-signature", "on"])
        .await);
    let unsigned = build_deb(dir.path(), "jg-unsigned", "1.0", None);
    let refused = fails(
        &site
            .jg(&["epm", "packages", "upload", unsigned.to_str().unwrap()])
            .await,
    );
    assert!(refused.contains("requires packages signed"), "{refused}");
    // A signature of other bytes does not pass.
    let refused = fails(
        &site
            .jg(&[
                "epm",
                "packages",
                "upload",
                unsigned.to_str().unwrap(),
                "--signature",
                &sig,
            ])
            .await,
    );
    assert!(refused.contains("does not match"), "{refused}");
    let signed: serde_json::Value = serde_json::from_str(&ok(&site
        .jg(&[
            "epm",
            "packages",
            "upload",
            deb.to_str().unwrap(),
            "--signature",
            &sig,
            "--json",
        ])
        .await))
    .unwrap();
    assert_eq!(signed["publisher"], "acme");

    // An APT repository: a pool and its Packages index; signatures beside
    // the packages are sent with them.
    ok(&site
        .jg(&["epm", "packages", "require-signature", "off"])
        .await);
    let repo = dir.path().join("repo");
    let pool = repo.join("pool/main");
    std::fs::create_dir_all(&pool).unwrap();
    for (name, version) in [
        ("jg-apt-a", "1.0"),
        ("jg-apt-b", "2:0.3-1"),
        ("jg-apt-a", "1.1"),
    ] {
        let built = build_deb(dir.path(), name, version, None);
        let to = pool.join(built.file_name().unwrap());
        std::fs::rename(&built, &to).unwrap();
        if version == "1.1" {
            sign(&to);
        }
    }
    let index = std::process::Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(index.status.success(), "{index:?}");
    let dists = repo.join("dists/stable/main/binary-all");
    std::fs::create_dir_all(&dists).unwrap();
    std::fs::write(dists.join("Packages"), &index.stdout).unwrap();
    let text = ok(&site
        .jg(&["epm", "packages", "import-apt", repo.to_str().unwrap()])
        .await);
    assert!(
        text.contains("3 uploaded, 0 already there, 0 refused"),
        "{text}"
    );
    let again = ok(&site
        .jg(&["epm", "packages", "import-apt", repo.to_str().unwrap()])
        .await);
    assert!(again.contains("0 uploaded, 3 already there"), "{again}");
    let list: serde_json::Value = serde_json::from_str(&ok(&site
        .jg(&["epm", "packages", "list", "--name", "jg-apt-a", "--json"])
        .await))
    .unwrap();
    let versions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1", "1.0"], "newest first");
    assert_eq!(list[0]["publisher"], "acme");
}
