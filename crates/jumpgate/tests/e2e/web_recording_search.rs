//! The console's search inside recordings in Debian's chromium
//! (`tests/browser/recording_search.mjs`, playwright-core) against a real
//! gateway and agent: a session printed a command; the administrator
//! searches for it on the recordings page, clicks the hit, and the player
//! opens paused at the hit's moment with the command on its screen and
//! what came after it not yet. Screenshots in
//! target/browser-artifacts/recording-search/.

use std::ffi::OsStr;
use std::time::Duration;

use jumpgate_api_types::recording_search::RecordingHit;

use crate::support::*;
use crate::web::{browser_prerequisites, run_browser};

const BROWSER_RUN: Duration = Duration::from_secs(200);
const PRINTED: &str = "rm -rf /var/lib/web-x";

#[tokio::test]
async fn a_search_hit_opens_the_player_at_its_moment() {
    browser_prerequisites();
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

    let offset = offset.to_string();
    let env: [(&str, &OsStr); 4] = [
        ("JG_QUERY", "RM -rf /var/lib/web-x".as_ref()),
        ("JG_PRINTED", PRINTED.as_ref()),
        ("JG_RECORDING", hit.recording.id.as_ref()),
        ("JG_OFFSET", offset.as_ref()),
    ];
    let artifacts = run_browser(
        &site,
        "recording_search.mjs",
        "recording-search",
        "RECORDING-SEARCH-TEST PASSED",
        &env,
        BROWSER_RUN,
    )
    .await;
    for shot in ["search-results", "player-at-hit"] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}");
    }
}
