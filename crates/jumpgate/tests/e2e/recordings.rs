//! Session recordings and the transfer audit, as users meet them: `jg
//! recordings`, `jg play`, `jg recordings export`, and a gateway killed
//! mid-session.

use std::time::Duration;

use crate::support::*;

pub(crate) async fn recordings(site: &Site, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["recordings", "--json"];
    args.extend_from_slice(extra);
    let v: serde_json::Value = serde_json::from_str(&ok(&site.jg(&args).await)).unwrap();
    v.as_array().unwrap().clone()
}

/// The `o` events of an asciicast text, as (time, data).
pub(crate) fn output_events(cast: &str) -> Vec<(f64, String)> {
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{cast}");
    lines
        .map(|l| serde_json::from_str::<(f64, String, String)>(l).unwrap())
        .filter(|(_, code, _)| code == "o")
        .map(|(t, _, d)| (t, d))
        .collect()
}

fn time_of(events: &[(f64, String)], needle: &str) -> f64 {
    events
        .iter()
        .find(|(_, d)| d.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not recorded: {events:?}"))
        .0
}

/// Nothing a session showed may be readable in the recording files.
fn assert_no_plaintext(site: &Site, needle: &str) {
    let dir = site.data_dir().join("recordings");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` in clear in a recording file"
        );
        files += 1;
    }
    assert!(files > 0, "no recording files in {}", dir.display());
}

#[tokio::test]
async fn sessions_are_recorded_played_exported_and_guarded_by_view_audit() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    ok(&site
        .jg(&[
            "shell",
            "srv",
            "--",
            "sh",
            "-c",
            // The pause is what is recorded (not synchronisation): the
            // export must keep it.
            "echo rec-first; sleep 1.2; echo rec-second",
        ])
        .await);

    // The recording is finished (its last part sealed) just after the
    // session ends.
    let deadline = tokio::time::Instant::now() + WAIT;
    let recs = loop {
        let recs = recordings(&site, &[]).await;
        if recs.iter().all(|r| r["ended_at"].is_string()) {
            break recs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{recs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    let id = rec["id"].as_str().unwrap().to_owned();
    assert_eq!(rec["username"], ADMIN);
    assert_eq!(rec["endpoint"], "srv");
    assert!(rec["ended_at"].is_string());
    assert_eq!(rec["interrupted"], false);
    assert!(rec["duration_secs"].as_f64().unwrap() >= 1.0, "{rec}");
    // Filters narrow the list.
    assert!(
        recordings(&site, &["--endpoint", "elsewhere"])
            .await
            .is_empty()
    );
    assert_eq!(recordings(&site, &["--user", ADMIN]).await.len(), 1);
    assert!(recordings(&site, &["--user", "nobody"]).await.is_empty());

    // Export: plain asciicast v2, with real timing.
    let file = site.dir.path().join("session.cast");
    ok(&site
        .jg(&["recordings", "export", &id, "-o", file.to_str().unwrap()])
        .await);
    let cast = std::fs::read_to_string(&file).unwrap();
    let events = output_events(&cast);
    let gap = time_of(&events, "rec-second") - time_of(&events, "rec-first");
    assert!(gap >= 1.0, "the pause was not kept: {gap} s\n{cast}");
    // To stdout, the same text.
    assert_eq!(
        ok(&site.jg(&["recordings", "export", &id]).await),
        cast,
        "stdout export differs from the file"
    );
    assert_no_plaintext(&site, "rec-first");

    // Playback in the terminal, sped up.
    let played = ok(&site.jg(&["play", &id, "--speed", "8"]).await);
    assert!(
        played.contains("rec-first") && played.contains("rec-second"),
        "{played}"
    );
    // Bad input is named.
    let err = fails(&site.jg(&["play", &id, "--speed", "0"]).await);
    assert!(err.contains("speed"), "{err}");
    let err = fails(&site.jg(&["play", "rec_nope"]).await);
    assert!(err.contains("no recording"), "{err}");

    // Playback is itself audited.
    let views: Vec<_> = site
        .security_events()
        .await
        .into_iter()
        .filter(|e| e.action == "recording-view" && e.target == id)
        .collect();
    assert!(views.len() >= 3, "{views:?}");

    // Someone without view-audit sees neither the list nor a recording.
    site.create_user("tech", "technician", "another-long-passphrase-9")
        .await;
    let home = site.home("tech");
    ok(&site
        .try_login_in(&home, "tech", "another-long-passphrase-9", &[])
        .await);
    for args in [
        vec!["recordings"],
        vec!["play", id.as_str()],
        vec!["recordings", "export", id.as_str()],
    ] {
        let err = fails(&site.jg_in(&home, &args).await);
        assert!(err.contains("view-audit"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn a_recording_survives_kill_9_up_to_the_last_second() {
    let mut site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let mut session = site
        .jg_command(&[
            "shell",
            "srv",
            "--",
            "sh",
            "-c",
            "echo before-the-crash; sleep 60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The output reached the technician, so it passed the recorder.
    let mut out = session.stdout.take().unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("before-the-crash") {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0, "session ended early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no output from the session");
    let live = recordings(&site, &[]).await;
    assert_eq!(live.len(), 1);
    assert!(live[0]["ended_at"].is_null(), "{live:?}");
    // Recordings are made durable every second: wait until the file holds
    // a sealed chunk after its header (the output's), however long the
    // writer takes on a loaded machine.
    let file = std::fs::read_dir(site.data_dir().join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jgrec"))
        .expect("a recording file");
    let deadline = tokio::time::Instant::now() + WAIT;
    while complete_chunks(&std::fs::read(&file).unwrap()) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the output never reached the recording file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let port = site.gateway.addr.to_string();
    signal(&site.gateway.child, rustix::process::Signal::KILL);
    let _ = tokio::time::timeout(WAIT, site.gateway.child.wait()).await;
    let _ = tokio::time::timeout(WAIT, session.wait()).await;
    site.gateway = Gateway::start(&site.data_dir(), &["--listen", &port]).await;

    let recs = recordings(&site, &[]).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["interrupted"], true, "{recs:?}");
    assert!(recs[0]["ended_at"].is_string());
    let id = recs[0]["id"].as_str().unwrap();
    let cast = ok(&site.jg(&["recordings", "export", id]).await);
    time_of(&output_events(&cast), "before-the-crash");
    let played = ok(&site.jg(&["play", id, "--speed", "8"]).await);
    assert!(played.contains("before-the-crash"), "{played}");
    assert_no_plaintext(&site, "before-the-crash");
    // And the audit log is intact across the crash.
    let verified = ok(&site.admin(&["verify-audit"]).await);
    assert!(verified.contains("intact"), "{verified}");
}

#[tokio::test]
async fn file_transfers_are_audited_with_their_sha256() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let local = site.dir.path().join("payload.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let remote = site.dir.path().join("remote.bin");
    let dest = format!("srv:{}", remote.display());
    ok(&site.jg(&["cp", local.to_str().unwrap(), &dest]).await);
    let back = site.dir.path().join("back.bin");
    ok(&site.jg(&["cp", &dest, back.to_str().unwrap()]).await);

    let sha = sha256_hex(&data);
    // The gateway writes a session's closing entry once both sides are
    // done, which may be a moment after `jg` has exited.
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let events = site.security_events().await;
        let closed = |a: &str| events.iter().any(|e| e.action == a);
        if closed("session-close:upload") && closed("session-close:download") {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transfers never closed: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (action, needle) in [
        ("session-close:upload", format!("sha256={sha}")),
        ("session-close:download", format!("sha256={sha}")),
    ] {
        let e = events
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} in {events:?}"));
        assert!(e.detail.contains(&needle), "{e:?}");
        assert!(e.detail.contains("size=200000"), "{e:?}");
        assert_eq!(e.target, "srv");
    }
    let upload = events
        .iter()
        .find(|e| e.action == "session-close:upload")
        .unwrap();
    assert!(upload.detail.contains("verified=yes"), "{upload:?}");
    // The path is in the opening entry.
    let open = events
        .iter()
        .find(|e| e.action == "session-open:upload")
        .unwrap();
    assert!(open.detail.contains("remote.bin"), "{open:?}");
}

/// Complete chunks in a recording file (`JGREC/1\n`, then chunks of
/// `len: u32 BE | flags: u8 | len bytes`), header chunk included.
pub(crate) fn complete_chunks(file: &[u8]) -> usize {
    let mut rest = file.strip_prefix(b"JGREC/1\n").unwrap_or_default();
    let mut n = 0;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 5 + len {
            break;
        }
        rest = &rest[5 + len..];
        n += 1;
    }
    n
}
