use super::*;
use crate::ids::SessionId;

struct Site {
    dir: tempfile::TempDir,
    db: Store,
    /// Keeps the SQLite file alive (`None` on PostgreSQL).
    _lite: Option<tempfile::TempDir>,
    keys: Keyring,
    blobs: Blobs,
    tasks: tokio_util::task::TaskTracker,
}

impl Site {
    fn files(&self) -> Files {
        Files {
            blobs: self.blobs.clone(),
            data_dir: self.dir.path().to_path_buf(),
        }
    }
}

/// A site per engine with the default (local) blob store.
async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::blobs::open(&crate::config::BlobsConfig::Local, dir.path())
            .await
            .unwrap();
        out.push(site_with(dir, db, lite, blobs));
    }
    out
}

/// A site per engine with an in-memory remote blob store.
async fn remote_sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::blobs::in_memory("s3://test/site-a");
        out.push(site_with(dir, db, lite, blobs));
    }
    out
}

fn site_with(
    dir: tempfile::TempDir,
    db: Store,
    lite: Option<tempfile::TempDir>,
    blobs: Blobs,
) -> Site {
    let keys = Keyring::open(dir.path()).unwrap();
    Site {
        dir,
        db,
        _lite: lite,
        keys,
        blobs,
        tasks: tokio_util::task::TaskTracker::new(),
    }
}

/// One number a statement answers.
async fn count(db: &Store, q: &'static str) -> i64 {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_scalar(q).fetch_one(&mut *c).await).unwrap()
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
    Recorder::start(&s.db, &s.keys, s.files(), keystrokes, &meta, stop, &s.tasks)
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
        for s in sites("rec_a_session_is_recorded_as_asciicast_and_k").await {
            let rec = start(&s, keystrokes, StopHandle::new()).await;
            // What the session's relay asks before it collects keystrokes.
            assert_eq!(rec.records_input(), keystrokes);
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
}

#[tokio::test]
async fn a_recording_cut_short_by_a_crash_plays_to_its_last_second() {
    for s in sites("rec_a_recording_cut_short_by_a_crash_plays_t").await {
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
            close_orphans(&s.db, &s.keys, &s.blobs, s.dir.path())
                .await
                .unwrap(),
            1
        );
        let info = only_recording(&s).await;
        assert!(info.interrupted);
        assert!(info.ended_at.is_some());
        let (text, opened) = cast_text(&s, &info.id).await;
        assert!(text.contains("before-the-crash"), "{text}");
        opened.check_end().unwrap();
    }
}

#[tokio::test]
async fn cutting_the_end_off_a_finished_recording_is_detected() {
    for s in sites("rec_cutting_the_end_off_a_finished_recording").await {
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
}

#[tokio::test]
async fn a_recording_that_cannot_start_is_an_error() {
    for s in sites("rec_a_recording_that_cannot_start_is_an_erro").await {
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
            s.files(),
            false,
            &meta,
            StopHandle::new(),
            &s.tasks,
        )
        .await;
        assert!(r.is_err());
        let rows = count(&s.db, "SELECT COUNT(*) FROM recordings").await;
        assert_eq!(rows, 0, "no row for a recording that does not exist");
    }
}

#[tokio::test]
async fn retention_removes_old_recordings_and_their_files() {
    for s in sites("rec_retention_removes_old_recordings_and_the").await {
        let rec = start(&s, false, StopHandle::new()).await;
        drop(rec);
        s.tasks.close();
        s.tasks.wait().await;
        let info = only_recording(&s).await;
        // Not yet old.
        let ended = count(&s.db, "SELECT ended_at FROM recordings").await;
        assert_eq!(
            expire(&s.db, &s.blobs, s.dir.path(), ended - 1)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            expire(&s.db, &s.blobs, s.dir.path(), ended + 1)
                .await
                .unwrap(),
            1
        );
        assert_eq!(std::fs::read_dir(dir(s.dir.path())).unwrap().count(), 0);
        assert!(
            open(&s.db, &s.keys, &s.blobs, s.dir.path(), &info.id)
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// The site's recording spool files.
fn spool_files(s: &Site) -> Vec<String> {
    match std::fs::read_dir(dir(s.dir.path())) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn with_the_local_store_the_recording_stays_where_it_always_was() {
    for s in sites("rec_with_the_local_store_the_recording_stays").await {
        let rec = start(&s, false, StopHandle::new()).await;
        rec.output(Bytes::from_static(b"local\r\n"), false).await;
        drop(rec);
        s.tasks.close();
        s.tasks.wait().await;
        let info = only_recording(&s).await;
        assert_eq!(spool_files(&s), vec![format!("{}.jgrec", info.id)]);
        // Nothing waits to be published: the files are the blobs.
        assert!(spooled(&s.blobs, s.dir.path()).await.unwrap().is_empty());
        let (text, _) = cast_text(&s, &info.id).await;
        assert!(text.contains("local"), "{text}");
    }
}

#[tokio::test]
async fn with_a_remote_store_a_finished_recording_moves_from_the_spool_to_the_store() {
    for s in remote_sites("rec_with_a_remote_store_a_finished_recording").await {
        let rec = start(&s, false, StopHandle::new()).await;
        rec.output(Bytes::from_static(b"while-live\r\n"), false)
            .await;
        wait_for_chunks(&s, 2).await;
        // While the session runs, the recording plays from its spool file.
        let info = only_recording(&s).await;
        let (text, _) = cast_text(&s, &info.id).await;
        assert!(text.contains("while-live"), "{text}");
        let file = format!("{}.jgrec", info.id);
        let key = crate::blobs::BlobKey::new(format!("recordings/{file}")).unwrap();
        assert!(!s.blobs.exists(&key).await.unwrap());

        rec.output(Bytes::from_static(b"at-the-end\r\n"), false)
            .await;
        drop(rec);
        s.tasks.close();
        s.tasks.wait().await;
        // Published: in the store, no longer in the spool.
        assert!(s.blobs.exists(&key).await.unwrap());
        assert!(spool_files(&s).is_empty(), "{:?}", spool_files(&s));
        let info = only_recording(&s).await;
        assert!(!info.interrupted);
        let (text, opened) = cast_text(&s, &info.id).await;
        assert!(
            text.contains("while-live") && text.contains("at-the-end"),
            "{text}"
        );
        opened.check_end().unwrap();

        // Retention removes it from the store.
        assert_eq!(
            expire(&s.db, &s.blobs, s.dir.path(), i64::MAX)
                .await
                .unwrap(),
            1
        );
        assert!(!s.blobs.exists(&key).await.unwrap());
    }
}

#[tokio::test]
async fn a_spool_left_by_a_crash_is_published_at_the_next_start() {
    for s in remote_sites("rec_a_spool_left_by_a_crash_is_published_at_").await {
        let rec = start(&s, false, StopHandle::new()).await;
        rec.output(Bytes::from_static(b"before-the-crash\r\n"), false)
            .await;
        wait_for_chunks(&s, 2).await;
        std::mem::forget(rec);
        // A spool file no recording knows (its key is gone) stays put.
        std::fs::write(dir(s.dir.path()).join("rec_unknown.jgrec"), b"JGREC/1\n").unwrap();

        // The next start: close the recording, list the spool, publish.
        assert_eq!(
            close_orphans(&s.db, &s.keys, &s.blobs, s.dir.path())
                .await
                .unwrap(),
            1
        );
        let info = only_recording(&s).await;
        let file = format!("{}.jgrec", info.id);
        let waiting = spooled(&s.blobs, s.dir.path()).await.unwrap();
        assert_eq!(waiting, {
            let mut w = vec![file.clone(), "rec_unknown.jgrec".to_owned()];
            w.sort();
            w
        });
        assert_eq!(
            publish_spooled(&s.db, &s.blobs, s.dir.path(), &waiting).await,
            1
        );
        assert_eq!(spool_files(&s), vec!["rec_unknown.jgrec".to_owned()]);
        let key = crate::blobs::BlobKey::new(format!("recordings/{file}")).unwrap();
        assert!(s.blobs.exists(&key).await.unwrap());
        let (text, opened) = cast_text(&s, &info.id).await;
        assert!(text.contains("before-the-crash"), "{text}");
        assert!(opened.info.interrupted);
        opened.check_end().unwrap();
    }
}

/// Listing filters by endpoint, user, time and the caller's groups, on
/// both engines (the group filter is engine-specific SQL).
#[tokio::test]
async fn listing_filters_by_endpoint_user_time_and_group() {
    for s in sites("rec_listing_filters").await {
        let engine = s.db.engine();
        drop(start(&s, false, StopHandle::new()).await);
        s.tasks.close();
        s.tasks.wait().await;
        let info = only_recording(&s).await;
        let web = crate::rbac::ReadScope::Groups(vec!["web".into(), "db".into()]);
        let other = crate::rbac::ReadScope::Groups(vec!["db".into()]);
        let all = crate::rbac::ReadScope::All;
        let found = |scope, endpoint, user, since_ms| {
            let db = s.db.clone();
            async move {
                list(
                    &db,
                    &Filter {
                        scope: Some(scope),
                        endpoint,
                        user,
                        since_ms,
                        limit: 10,
                    },
                )
                .await
                .unwrap()
                .len()
            }
        };
        assert_eq!(found(&web, None, None, None).await, 1, "{engine}");
        assert_eq!(found(&all, Some("web-1"), Some("alice"), Some(0)).await, 1);
        assert_eq!(found(&other, None, None, None).await, 0, "{engine}");
        assert_eq!(found(&all, Some("web-2"), None, None).await, 0);
        assert_eq!(found(&all, None, Some("bob"), None).await, 0);
        assert_eq!(found(&all, None, None, Some(i64::MAX)).await, 0);
        assert_eq!(
            group_of(&s.db, &info.id).await.unwrap(),
            Some(Some("web".into()))
        );
        assert_eq!(group_of(&s.db, "rec_none").await.unwrap(), None);
    }
}

/// A desktop session's tap writes the contract's JSON lines (header
/// first; screen info, packets in base64, cursor, control, clipboard
/// sizes) through the sealed file writer, the row becomes `desktop` with
/// the first screen size, and control changes and clipboard transfers are
/// audit entries with the endpoint's words cleaned and never the text.
#[tokio::test]
async fn a_desktop_session_is_recorded_as_json_lines_and_its_decisions_audited() {
    use crate::sessions::tap::{DesktopAudit, DesktopTap, SessionTap};
    use base64::Engine as _;
    use jumpgate_proto::desktop::{
        ControlState, Cursor, CursorShape, DesktopInfo, InputState, Video,
    };
    use jumpgate_proto::session::SessionMsg;
    for s in sites("rec_desktop_json_lines").await {
        let e = s.db.engine();
        let sid = SessionId::generate();
        let meta = Meta {
            session_id: &sid,
            username: "alice",
            endpoint: "web-1",
            endpoint_group: "web",
            width: 0,
            height: 0,
            term: "",
            command: "",
        };
        let prepared = Prepared::desktop(&s.keys, &meta).unwrap();
        let mut c = s.db.conn().await.unwrap();
        prepared.insert(&mut c).await.unwrap();
        drop(c);
        let rec = prepared
            .begin(&s.db, s.files(), StopHandle::new(), &s.tasks)
            .await
            .unwrap();
        let tap = DesktopTap::new(
            rec,
            DesktopAudit {
                db: s.db.clone(),
                actor: "alice".into(),
                endpoint: "web-1".into(),
                group: "web".into(),
                session: sid.to_string(),
            },
        );
        let info = |w, h| DesktopInfo {
            width: w,
            height: h,
            monitors: Vec::new(),
            monitor: None,
            codec: "jumpgate-1".into(),
        };
        let packet = bytes::Bytes::from_static(b"\x01packet-bytes\xff");
        let down = [
            SessionMsg::ControlState(ControlState {
                input: InputState::Allowed,
                message: "allowed by the user\x1b[31m".into(),
                note: None,
            }),
            SessionMsg::DesktopInfo(info(1280, 800)),
            SessionMsg::Video(Video {
                seq: 1,
                data: packet.clone(),
            }),
            SessionMsg::Cursor(Cursor {
                x: 10,
                y: -2,
                shape: 7,
            }),
            SessionMsg::CursorShape(CursorShape {
                id: 7,
                width: 1,
                height: 1,
                hot_x: 0,
                hot_y: 0,
                rgba: bytes::Bytes::from_static(&[1, 2, 3, 4]),
            }),
            SessionMsg::Clipboard("endpoint-secret".into()),
            SessionMsg::DesktopInfo(info(1920, 1080)),
            SessionMsg::ControlState(ControlState {
                input: InputState::TakenBack,
                message: "the user took back control".into(),
                note: None,
            }),
        ];
        for m in &down {
            tap.on_down(m).await;
        }
        tap.on_up(&SessionMsg::Clipboard("typed-secret!".into()))
            .await;
        let words = Box::new(tap).finish();
        assert_eq!(words, format!(" video_bytes={} clipboard=2", packet.len()));
        s.tasks.close();
        s.tasks.wait().await;

        let row = only_recording(&s).await;
        assert_eq!(row.kind, api::RecordingKind::Desktop, "{e}");
        assert_eq!((row.width, row.height), (1280, 800), "{e}");
        assert!(!row.input_recorded);
        let (text, opened) = cast_text(&s, &row.id).await;
        opened.check_end().unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["jumpgate"], "desktop");
        assert_eq!(header["version"], 1);
        assert_eq!(header["title"], "alice@web-1");
        assert!(header["timestamp"].as_i64().unwrap() > 1_700_000_000);
        let events: Vec<serde_json::Value> = lines
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let codes: Vec<&str> = events.iter().map(|e| e[1].as_str().unwrap()).collect();
        assert_eq!(codes, ["x", "i", "v", "c", "s", "b", "i", "x", "b"], "{e}");
        assert_eq!(events[0][2]["input"], "allowed");
        assert!(
            !events[0][2]["message"].as_str().unwrap().contains('\x1b'),
            "{text}"
        );
        assert_eq!(events[1][2]["width"], 1280);
        assert_eq!(events[1][2]["codec"], "jumpgate-1");
        let v = base64::engine::general_purpose::STANDARD
            .decode(events[2][2].as_str().unwrap())
            .unwrap();
        assert_eq!(v, packet);
        assert_eq!(events[3][2], serde_json::json!([10, -2, 7]));
        assert_eq!(events[4][2]["rgba"], "AQIDBA==");
        assert_eq!(events[4][2]["hot_x"], 0);
        assert_eq!(
            events[5][2],
            serde_json::json!({"from": "endpoint", "bytes": 15})
        );
        assert_eq!(
            events[8][2],
            serde_json::json!({"from": "technician", "bytes": 13})
        );
        assert_eq!(events[7][2]["input"], "taken-back");
        // Times as asciicast's: seconds, never going backwards.
        let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(!text.contains("secret"), "{text}");
        // Nothing in the clear on disk either.
        for entry in std::fs::read_dir(dir(s.dir.path())).unwrap() {
            let raw = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!raw.windows(8).any(|w| w == b"jumpgate"));
        }

        let mut c = s.db.conn().await.unwrap();
        let entries: Vec<(String, String, String, Option<String>)> = sql!(c, |c| sqlx::query_as(
            "SELECT action, target, detail, groups FROM events WHERE action LIKE 'desktop-%' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|(a, _, d, _)| (a.as_str(), d.as_str()))
            .collect();
        let sess = format!("session={sid}");
        assert_eq!(
            got,
            [
                (
                    "desktop-control",
                    format!("{sess} input=allowed message=allowed by the user\u{FFFD}[31m")
                        .as_str()
                ),
                (
                    "desktop-clipboard",
                    format!("{sess} from=endpoint bytes=15").as_str()
                ),
                (
                    "desktop-control",
                    format!("{sess} input=taken-back message=the user took back control").as_str()
                ),
                (
                    "desktop-clipboard",
                    format!("{sess} from=technician bytes=13").as_str()
                ),
            ],
            "{e}"
        );
        assert!(
            entries
                .iter()
                .all(|(_, t, _, g)| t == "web-1" && g.as_deref() == Some(r#"["web"]"#))
        );
    }
}
