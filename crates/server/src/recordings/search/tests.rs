//! The index on a real store (SQLite, and PostgreSQL when the tests have
//! one), with real sealed recordings written by the recorder.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::ids::SessionId;
use crate::recordings::{Files, Meta, Recorder};
use crate::sessions::StopHandle;

struct Site {
    dir: tempfile::TempDir,
    db: Store,
    _lite: Option<tempfile::TempDir>,
    keys: Keyring,
    blobs: Blobs,
    tasks: tokio_util::task::TaskTracker,
}

impl Site {
    fn src(&self) -> Source<'_> {
        Source {
            db: &self.db,
            keys: &self.keys,
            blobs: &self.blobs,
            data_dir: self.dir.path(),
        }
    }
}

async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::blobs::open(&crate::config::BlobsConfig::Local, dir.path())
            .await
            .unwrap();
        let keys = Keyring::open(dir.path()).unwrap();
        out.push(Site {
            dir,
            db,
            _lite: lite,
            keys,
            blobs,
            tasks: tokio_util::task::TaskTracker::new(),
        });
    }
    out
}

/// Records a session on `endpoint` (group `group`) that prints `outputs`
/// (a pause between them) and types `typed`; waits for its end. Answers
/// its id.
async fn record(s: &Site, endpoint: &str, group: &str, outputs: &[&str], typed: &str) -> String {
    let sid = SessionId::generate();
    let meta = Meta {
        session_id: &sid,
        username: "alice",
        endpoint,
        endpoint_group: group,
        width: 80,
        height: 24,
        term: "xterm-256color",
        command: "",
    };
    let files = Files {
        blobs: s.blobs.clone(),
        data_dir: s.dir.path().to_path_buf(),
    };
    let rec = Recorder::start(
        &s.db,
        &s.keys,
        files,
        true,
        &meta,
        StopHandle::new(),
        &s.tasks,
    )
    .await
    .unwrap();
    if !typed.is_empty() {
        rec.input(Bytes::copy_from_slice(typed.as_bytes())).await;
    }
    for (i, o) in outputs.iter().enumerate() {
        if i > 0 {
            // What is recorded is the time: the moments must differ.
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        rec.output(Bytes::copy_from_slice(o.as_bytes()), false)
            .await;
    }
    drop(rec);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = s.db.conn().await.unwrap();
        let id: Option<String> = sql!(c, |c| sqlx::query_scalar(
            "SELECT id FROM recordings WHERE session_id = $1 AND ended_at IS NOT NULL"
        )
        .bind(sid.as_str())
        .fetch_optional(&mut *c)
        .await)
        .unwrap();
        if let Some(id) = id {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recording never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn find(
    s: &Site,
    q: &str,
    scope: &ReadScope,
    limit: usize,
    after: Option<Cursor>,
) -> RecordingSearch {
    let query = Query::parse(q).unwrap();
    let req = Request {
        query: &query,
        scope,
        limit,
        after,
    };
    search(s.src(), &req).await.unwrap().page
}

async fn count(db: &Store, q: &'static str) -> i64 {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_scalar(q).fetch_one(&mut *c).await).unwrap()
}

/// The time of the first `o` event containing `needle`, from the cast.
async fn event_time(s: &Site, id: &str, needle: &str) -> f64 {
    let mut rec = crate::recordings::open(&s.db, &s.keys, &s.blobs, s.dir.path(), id)
        .await
        .unwrap()
        .unwrap();
    let mut text = Vec::new();
    while let Some(c) = rec.next().await.unwrap() {
        text.extend_from_slice(&c);
    }
    String::from_utf8(text)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<(f64, String, String)>(l).unwrap())
        .find(|(_, code, d)| code == "o" && d.contains(needle))
        .unwrap()
        .0
}

#[tokio::test]
async fn a_recording_is_indexed_once_found_at_its_moment_and_forgotten_with_it() {
    for s in sites("search_index_once").await {
        let stop = CancellationToken::new();
        let id = record(
            &s,
            "web-1",
            "web",
            &[
                "\x1b[1;32muser@web-1\x1b[0m:~$ ",
                "echo 'rm -rf /var/lib/x' > /dev/null\r\n",
                "user@web-1:~$ ",
            ],
            "echo 'rm -rf /var/lib/x' > /dev/null\r",
        )
        .await;
        let other = record(&s, "db-1", "db", &["rm -rf /var/lib here too\r\n"], "").await;
        // Nothing is searchable before the indexer ran.
        let all = ReadScope::All;
        let page = find(&s, "rm -rf /var/lib", &all, 10, None).await;
        assert!(page.results.is_empty());
        assert_eq!(page.not_indexed, 2);

        let mut retry = Retry::new();
        let pass = index_pending(s.src(), &mut retry, &stop).await.unwrap();
        assert_eq!(pass.indexed, 2, "{pass:?}");
        assert!(pass.cast_bytes > pass.text_bytes && pass.text_bytes > 0);
        // Exactly once: a second pass finds nothing to do.
        let again = index_pending(s.src(), &mut retry, &stop).await.unwrap();
        assert_eq!(again.indexed, 0);
        let docs = count(&s.db, "SELECT COUNT(*) FROM recording_search_docs").await;
        assert_eq!(docs, 2);

        // The words are keyed hashes: `lib` is there as its hash only.
        let key = word_key(&s.db, &s.keys).await.unwrap();
        let mut c = s.db.conn().await.unwrap();
        let words: Vec<String> = sql!(c, |c| sqlx::query_scalar(
            "SELECT word FROM recording_search_words WHERE recording_id = $1"
        )
        .bind(&id)
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        drop(c);
        assert!(words.contains(&key.hash("lib")), "{words:?}");
        for plain in ["lib", "var", "rm", "echo", "null", "web"] {
            assert!(
                !words.iter().any(|w| w.contains(plain)),
                "`{plain}` in clear"
            );
        }
        assert!(words.iter().all(|w| w.len() == 32));

        // Found (whatever the case and spacing), newest first, at the
        // moment the echo of the command was printed, and in what was typed.
        let page = find(&s, "RM -rf   /VAR/lib", &all, 10, None).await;
        let mut ids: Vec<&str> = page
            .results
            .iter()
            .map(|h| h.recording.id.as_str())
            .collect();
        ids.sort_unstable();
        let mut want = [other.as_str(), id.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "{page:?}");
        assert_eq!(page.not_indexed, 0);
        assert_eq!(page.next_cursor, None);
        let hit = page.results.iter().find(|h| h.recording.id == id).unwrap();
        assert_eq!(hit.recording.endpoint, "web-1");
        let at = event_time(&s, &id, "echo 'rm").await;
        let out: Vec<&SearchMatch> = hit
            .matches
            .iter()
            .filter(|m| m.stream == SearchStream::Output)
            .collect();
        assert_eq!(out.len(), 1, "{hit:?}");
        assert_eq!(out[0].offset_secs, at);
        assert!(at > 0.0);
        assert!(
            out[0]
                .snippet
                .contains("echo 'rm -rf /var/lib/x' > /dev/null"),
            "{}",
            out[0].snippet
        );
        assert!(!out[0].snippet.contains('\x1b'), "{}", out[0].snippet);
        assert!(
            hit.matches.iter().any(|m| m.stream == SearchStream::Input),
            "{hit:?}"
        );

        // Other words, or the words not as the phrase, find nothing.
        for q in ["rm -rf /var/library", "perm", "lib rm", "nothing-here"] {
            let page = find(&s, q, &all, 10, None).await;
            assert!(page.results.is_empty(), "{q}: {page:?}");
        }
        // Another group's reader does not find web-1's session.
        let db_only = ReadScope::Groups(vec!["db".into()]);
        let page = find(&s, "rm -rf /var/lib", &db_only, 10, None).await;
        let ids: Vec<&str> = page
            .results
            .iter()
            .map(|h| h.recording.id.as_str())
            .collect();
        assert_eq!(ids, [other.as_str()]);

        // Retention removes the recordings and their index together.
        let removed = crate::recordings::expire(&s.db, &s.blobs, s.dir.path(), i64::MAX)
            .await
            .unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            count(&s.db, "SELECT COUNT(*) FROM recording_search_docs").await,
            0
        );
        assert_eq!(
            count(&s.db, "SELECT COUNT(*) FROM recording_search_words").await,
            0
        );
        s.tasks.close();
        s.tasks.wait().await;
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_and_the_search_key_survives_rotation() {
    for s in sites("search_pages").await {
        let stop = CancellationToken::new();
        let mut ids = Vec::new();
        for i in 0..3 {
            let (host, line) = (format!("host-{i}"), format!("deploy-marker {i}\r\n"));
            ids.push(record(&s, &host, "web", &[line.as_str()], "").await);
        }
        index_pending(s.src(), &mut Retry::new(), &stop)
            .await
            .unwrap();
        let all = ReadScope::All;
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = find(&s, "deploy-marker", &all, 1, after.clone()).await;
            seen.extend(page.results.iter().map(|h| h.recording.id.clone()));
            match page.next_cursor {
                Some(c) => after = Some(Cursor::parse(&c).unwrap()),
                None => break,
            }
            assert!(seen.len() <= 3, "{seen:?}");
        }
        // Each once (newest first; recordings started in the same
        // millisecond come in id order).
        seen.sort();
        ids.sort();
        assert_eq!(seen, ids);
        assert!(Cursor::parse("12~../etc").is_err());
        assert!(Cursor::parse("x~rec_1").is_err());

        // The search KEK rotates and the sweep re-wraps the search key:
        // the index still answers.
        let before = word_key(&s.db, &s.keys).await.unwrap().hash("deploy");
        crate::keys::sweep::rotate(&s.db, &s.keys, &[Purpose::Search], "test")
            .await
            .unwrap();
        let pace = crate::keys::sweep::Pace {
            batch: 10,
            pause: Duration::ZERO,
        };
        crate::keys::sweep::sweep_all(&s.db, &s.keys, pace, &stop)
            .await
            .unwrap();
        let mut c = s.db.conn().await.unwrap();
        let wrapped: String = sql!(c, |c| sqlx::query_scalar(
            "SELECT wrapped_key FROM recording_search_key"
        )
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        drop(c);
        assert!(wrapped.starts_with("search:v2:"), "{wrapped}");
        assert_eq!(
            word_key(&s.db, &s.keys).await.unwrap().hash("deploy"),
            before
        );
        assert_eq!(
            find(&s, "deploy-marker 1", &all, 10, None)
                .await
                .results
                .len(),
            1
        );
        s.tasks.close();
        s.tasks.wait().await;
    }
}
