//! Key rotation while a session is being recorded: the recordings KEK is
//! rotated (`jumpgate admin rotate-keys`) while a shell writes output; the
//! recording plays and exports whole, and after the sweep its data key is
//! wrapped under the new version only (the old one is retired, and the
//! recording still plays).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::recordings::{complete_chunks, output_events, recordings};
use crate::support::*;

async fn recordings_key(site: &Site) -> serde_json::Value {
    let out = ok(&site.admin_bounded(&["key-status", "--json"]).await);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    st["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "recordings")
        .unwrap_or_else(|| panic!("no recordings purpose: {st}"))
        .clone()
}

/// Polls `f` until it holds, for at most `WAIT`.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rotating_the_recordings_key_mid_session_keeps_the_recording_whole() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    // Writes numbered lines until told to stop (a file appearing), so the
    // test, not a timer, decides how long the session runs. The short pause
    // only spreads the output over many of the recorder's sealed chunks.
    let stop = site.dir.path().join("stop-writing");
    let script = format!(
        "i=0; while [ ! -e '{}' ]; do i=$((i+1)); echo line-$i; sleep 0.02; done; echo last-$i",
        stop.display()
    );
    let mut session = site
        .jg_command(&["shell", "srv", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        let mut out = session.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_until("no output from the session", || {
        seen.lock().unwrap().contains("line-10\n")
    })
    .await;
    let live = recordings(&site, &[]).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(live[0]["ended_at"].is_null(), "{live:?}");
    let file = std::fs::read_dir(site.data_dir().join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jgrec"))
        .expect("a recording file");
    let before = recordings_key(&site).await;
    assert_eq!(before["current"], 1, "{before}");

    // Rotate while the session writes.
    let out = ok(&site
        .admin_bounded(&["rotate-keys", "--purpose", "recordings"])
        .await);
    assert!(out.contains("recordings:v2"), "{out}");
    let chunks_at_rotation = complete_chunks(&std::fs::read(&file).unwrap());
    let lines_at_rotation = seen.lock().unwrap().lines().count();
    // The session goes on, and the recorder keeps sealing chunks with the
    // recording's own data key, after the rotation.
    wait_until("the recording stopped growing after the rotation", || {
        complete_chunks(&std::fs::read(&file).unwrap()) >= chunks_at_rotation + 2
    })
    .await;
    assert!(seen.lock().unwrap().lines().count() > lines_at_rotation);
    std::fs::write(&stop, b"").unwrap();
    let status = tokio::time::timeout(WAIT, session.wait())
        .await
        .expect("the session did not end")
        .unwrap();
    assert!(status.success(), "{status}");
    tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    let shown = seen.lock().unwrap().clone();
    let last: u32 = shown
        .lines()
        .find_map(|l| l.strip_prefix("last-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no last line: {shown}"));
    assert!(last > 20, "{last} lines");

    // The recording ends, and exports whole: every line, in order.
    let deadline = tokio::time::Instant::now() + WAIT;
    let rec = loop {
        let recs = recordings(&site, &[]).await;
        if recs[0]["ended_at"].is_string() {
            break recs[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{recs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rec["interrupted"], false, "{rec}");
    let id = rec["id"].as_str().unwrap().to_owned();
    let whole = |cast: &str| {
        let text: String = output_events(cast).into_iter().map(|(_, d)| d).collect();
        let expected: String = (1..=last)
            .map(|i| format!("line-{i}\r\n"))
            .chain([format!("last-{last}\r\n")])
            .collect();
        let text = text.replace("\r\n", "\n");
        let expected = expected.replace("\r\n", "\n");
        assert_eq!(text, expected, "the recording is not whole");
    };
    whole(&ok(&site.jg(&["recordings", "export", &id]).await));

    // The sweep re-wraps the recording's data key under v2 and retires v1:
    // from then on only v2 can open it, and it still plays whole.
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let after = loop {
        let k = recordings_key(&site).await;
        if k["sweep"] == "done" && k["versions"][0]["retired"] == true {
            break k;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep did not finish: {k}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (after["current"].as_u64(), after["pending"].as_u64()),
        (Some(2), Some(0)),
        "{after}"
    );
    whole(&ok(&site.jg(&["recordings", "export", &id]).await));
    let played = ok(&site.jg(&["play", &id, "--speed", "8"]).await);
    assert!(played.contains(&format!("last-{last}")), "{played}");
}
