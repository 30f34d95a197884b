//! The console's search inside recordings in Debian's chromium
//! (`tests/browser/recording_search.mjs`, playwright-core) against a real
//! gateway and agent: a session printed a command; the administrator
//! searches for it on the recordings page, clicks the hit, and the player
//! opens paused at the hit's moment with the command on its screen and
//! what came after it not yet. Screenshots in
//! target/browser-artifacts/recording-search/.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use jumpgate_api_types::recording_search::RecordingHit;
use tokio::process::Command;

use crate::support::*;
use crate::web::{browser_dir, browser_prerequisites as chromium};

const BROWSER_RUN: Duration = Duration::from_secs(200);
const PRINTED: &str = "rm -rf /var/lib/web-x";

#[tokio::test]
async fn a_search_hit_opens_the_player_at_its_moment() {
    let chromium = chromium();
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    // The pauses are what is recorded (the hit is a second and a half in,
    // and something follows it), not synchronisation.
    ok(&site
        .jg(&[
            "shell",
            "srv",
            "--",
            "sh",
            "-c",
            &format!("echo before-it; sleep 1.5; echo '{PRINTED}'; sleep 1; echo after-it"),
        ])
        .await);
    let deadline = tokio::time::Instant::now() + WAIT;
    let hit = loop {
        let out = ok(&site
            .jg(&["recordings", "search", "rm -rf /var/lib/web-x", "--json"])
            .await);
        let hits: Vec<RecordingHit> = serde_json::from_str(&out).unwrap();
        if let Some(h) = hits.into_iter().next() {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "never indexed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let offset = hit.matches[0].offset_secs;
    assert!(offset >= 1.0, "{hit:?}");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/browser-artifacts/recording-search");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let child = Command::new("node")
        .arg(browser_dir().join("recording_search.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_QUERY", "RM -rf /var/lib/web-x")
        .env("JG_PRINTED", PRINTED)
        .env("JG_RECORDING", &hit.recording.id)
        .env("JG_OFFSET", offset.to_string())
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let out = tokio::time::timeout(BROWSER_RUN, child.wait_with_output())
        .await
        .expect("the browser test hung")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{}\ngateway log:\n{}\nscreenshots: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(
        stdout.lines().any(|l| l == "RECORDING-SEARCH-TEST PASSED"),
        "{report}"
    );
    for shot in ["search-results", "player-at-hit"] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}");
    }
}
