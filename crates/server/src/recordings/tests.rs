use super::*;
use crate::ids::SessionId;

struct Site {
    dir: tempfile::TempDir,
    db: SqlitePool,
    keys: Keyring,
    blobs: Blobs,
    tasks: tokio_util::task::TaskTracker,
}

/// A site with the default (local) blob store.
async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let blobs = crate::blobs::open(&crate::config::BlobsConfig::Local, dir.path())
        .await
        .unwrap();
    site_with(dir, blobs).await
}

async fn site_with(dir: tempfile::TempDir, blobs: Blobs) -> Site {
    let db = crate::store::open(&dir.path().join("a.db")).await.unwrap();
    let keys = Keyring::open(dir.path()).unwrap();
    Site {
        dir,
        db,
        keys,
        blobs,
        tasks: tokio_util::task::TaskTracker::new(),
    }
}

async fn start(s: &Site, keystrokes: bool, stop: StopHandle) -> Recorder {
    let sid = SessionId::generate();
    let meta = Meta {
        session_id: &sid,
        username: "alice",
        endpoint: "web-1",
        endpoint_group: "web",
        width: 100,
        height: 30,
        term: "xterm-256color",
        command: "",
    };
    Recorder::start(
        &s.db,
        &s.keys,
        &s.blobs,
        s.dir.path(),
        keystrokes,
        &meta,
        stop,
        &s.tasks,
    )
    .await
    .unwrap()
}

async fn cast_text(s: &Site, id: &str) -> (String, Opened) {
    let mut rec = open(&s.db, &s.keys, &s.blobs, s.dir.path(), id)
        .await
        .unwrap()
        .unwrap();
    let mut text = Vec::new();
    while let Some(c) = rec.next().await.unwrap() {
        text.extend_from_slice(&c);
    }
    (String::from_utf8(text).unwrap(), rec)
}

/// Waits until the site's one recording file holds at least `n` complete
/// chunks (header chunk included).
async fn wait_for_chunks(s: &Site, n: usize) {
    let complete = |file: &[u8]| {
        let mut rest = file.get(8..).unwrap_or_default();
        let mut count = 0;
        while rest.len() >= 5 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            if rest.len() < 5 + len {
                break;
            }
            rest = &rest[5 + len..];
            count += 1;
        }
        count
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let path = std::fs::read_dir(dir(s.dir.path()))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        if complete(&std::fs::read(&path).unwrap()) >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recording never had {n} chunks"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn only_recording(s: &Site) -> api::Recording {
    let all = list(
        &s.db,
        &Filter {
            limit: 10,
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 1);
    all.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_session_is_recorded_as_asciicast_and_keystrokes_follow_the_setting() {
    for keystrokes in [false, true] {
        let s = site().await;
        let rec = start(&s, keystrokes, StopHandle::new()).await;
        rec.output(Bytes::from_static(b"$ "), false).await;
        rec.input(Bytes::from_static(b"secret-typed\r")).await;
        // A UTF-8 character split across two messages stays one character.
        rec.output(Bytes::from_static(b"caf\xc3"), false).await;
        rec.output(Bytes::from_static(b"\xa9\r\n"), false).await;
        rec.resize(120, 40).await;
        drop(rec);
        s.tasks.close();
        s.tasks.wait().await;

        let info = only_recording(&s).await;
        assert!(info.ended_at.is_some());
        assert!(!info.interrupted);
        assert_eq!(info.input_recorded, keystrokes);
        let (text, opened) = cast_text(&s, &info.id).await;
        opened.check_end().unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 100);
        assert_eq!(header["height"], 30);
        let events: Vec<serde_json::Value> =
            lines.map(|l| serde_json::from_str(l).unwrap()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e[1].as_str().unwrap()).collect();
        let data: String = events
            .iter()
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap())
            .collect();
        assert_eq!(data, "$ café\r\n");
        assert_eq!(events.last().unwrap()[2], "120x40");
        assert_eq!(kinds.contains(&"i"), keystrokes, "{kinds:?}");
        // Timestamps never go backwards.
        let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));

        // Nothing of the session is in the clear on disk.
        for entry in std::fs::read_dir(dir(s.dir.path())).unwrap() {
            let raw = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!raw.windows(4).any(|w| w == b"caf\xc3"));
            assert!(!raw.windows(12).any(|w| w == b"secret-typed"));
        }
    }
}

#[tokio::test]
async fn a_recording_cut_short_by_a_crash_plays_to_its_last_second() {
    let s = site().await;
    let rec = start(&s, false, StopHandle::new()).await;
    rec.output(Bytes::from_static(b"before-the-crash\r\n"), false)
        .await;
    // Let the writer seal it (within a flush interval; polled, however
    // slow the machine), then "crash": the writer task never finishes the
    // recording.
    wait_for_chunks(&s, 2).await;
    std::mem::forget(rec);
    let info = only_recording(&s).await;
    assert!(
        info.ended_at.is_none(),
        "still running as far as the row knows"
    );

    // The next start closes it.
    assert_eq!(
        close_orphans(&s.db, &s.keys, &s.blobs, s.dir.path()).await.unwrap(),
        1
    );
    let info = only_recording(&s).await;
    assert!(info.interrupted);
    assert!(info.ended_at.is_some());
    let (text, opened) = cast_text(&s, &info.id).await;
    assert!(text.contains("before-the-crash"), "{text}");
    opened.check_end().unwrap();
}

#[tokio::test]
async fn cutting_the_end_off_a_finished_recording_is_detected() {
    let s = site().await;
    let rec = start(&s, false, StopHandle::new()).await;
    rec.output(Bytes::from_static(b"one\r\n"), false).await;
    // "one" sealed in a chunk of its own before "two" is written.
    wait_for_chunks(&s, 2).await;
    rec.output(Bytes::from_static(b"two\r\n"), false).await;
    drop(rec);
    s.tasks.close();
    s.tasks.wait().await;
    let info = only_recording(&s).await;
    let path = std::fs::read_dir(dir(s.dir.path()))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Drop the final chunk: header chunk + "one" chunk remain.
    let raw = std::fs::read(&path).unwrap();
    let mut at = 8;
    let mut starts = Vec::new();
    while at < raw.len() {
        starts.push(at);
        let len = u32::from_be_bytes(raw[at..at + 4].try_into().unwrap()) as usize;
        at += 5 + len;
    }
    std::fs::write(&path, &raw[..*starts.last().unwrap()]).unwrap();
    let (text, opened) = cast_text(&s, &info.id).await;
    assert!(text.contains("one"));
    assert!(matches!(opened.check_end(), Err(ReadError::Truncated)));
}

#[tokio::test]
async fn a_recording_that_cannot_start_is_an_error() {
    let s = site().await;
    // Where the recordings directory should be, there is a file.
    std::fs::write(dir(s.dir.path()), b"not a directory").unwrap();
    let sid = SessionId::generate();
    let meta = Meta {
        session_id: &sid,
        username: "alice",
        endpoint: "web-1",
        endpoint_group: "web",
        width: 80,
        height: 24,
        term: "",
        command: "ls",
    };
    let r = Recorder::start(
        &s.db,
        &s.keys,
        &s.blobs,
        s.dir.path(),
        false,
        &meta,
        StopHandle::new(),
        &s.tasks,
    )
    .await;
    assert!(r.is_err());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings")
        .fetch_one(&s.db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no row for a recording that does not exist");
}

#[tokio::test]
async fn retention_removes_old_recordings_and_their_files() {
    let s = site().await;
    let rec = start(&s, false, StopHandle::new()).await;
    drop(rec);
    s.tasks.close();
    s.tasks.wait().await;
    let info = only_recording(&s).await;
    // Not yet old.
    let ended: i64 = sqlx::query_scalar("SELECT ended_at FROM recordings")
        .fetch_one(&s.db)
        .await
        .unwrap();
    assert_eq!(expire(&s.db, &s.blobs, s.dir.path(), ended - 1).await.unwrap(), 0);
    assert_eq!(expire(&s.db, &s.blobs, s.dir.path(), ended + 1).await.unwrap(), 1);
    assert_eq!(std::fs::read_dir(dir(s.dir.path())).unwrap().count(), 0);
    assert!(
        open(&s.db, &s.keys, &s.blobs, s.dir.path(), &info.id)
            .await
            .unwrap()
            .is_none()
    );
}
