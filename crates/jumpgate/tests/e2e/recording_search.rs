//! Search inside recordings as users meet it: a command typed in a real
//! interactive `jg shell` on a real agent is found by `jg recordings
//! search` once the session ends, with its session and a moment that lands
//! on it; a reader of other groups does not find it; the index holds no
//! plaintext (on SQLite the whole file is SQLCipher; on PostgreSQL its
//! rows are read back). Runs on both engines (scripts/test runs the e2e
//! suite again on PostgreSQL).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jumpgate_api_types::recording_search::{RecordingHit, SearchStream};

use crate::recordings::output_events;
use crate::support::*;

const PHRASE: &str = "rm -rf /var/lib";
/// Typed in the session: printed back by the shell's echo only (the
/// command itself prints nothing).
const TYPED: &str = "echo 'rm -rf /var/lib/jg-search-x' > /dev/null";

/// Runs `jg shell ENDPOINT` in a pseudo-terminal, waits for the prompt,
/// types `line` and `exit`, and waits for jg to end.
async fn type_in_shell(site: &Site, endpoint: &str, line: &str) {
    let pty = portable_pty::native_pty_system();
    let pair = pty
        .openpty(portable_pty::PtySize {
            rows: 24,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = portable_pty::CommandBuilder::new(jg_bin());
    cmd.args(["shell", endpoint]);
    cmd.env("JG_HOME", site.jg_home());
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let s2 = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while screen.lock().unwrap().trim().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no prompt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.write_all(line.as_bytes()).unwrap();
    writer.write_all(b"\r").unwrap();
    // The echo is back before the session ends (so it is recorded).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !screen.lock().unwrap().contains(line) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the typed line never came back:\n{}",
            screen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.write_all(b"exit\r").unwrap();
    let status = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("jg shell did not exit")
        .unwrap()
        .unwrap();
    assert!(status.success(), "jg shell: {status:?}");
}

/// `jg recordings search TEXT --json` in `home`.
async fn search_in(site: &Site, home: &std::path::Path, text: &str) -> Vec<RecordingHit> {
    let out = site
        .jg_in(home, &["recordings", "search", text, "--json"])
        .await;
    serde_json::from_str(&ok(&out)).unwrap()
}

/// Terminal escape sequences (CSI, OSC) removed, for the test's own look
/// at the cast.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The stored index, read straight from the database: every row of its
/// tables as text (PostgreSQL), or the database files' bytes (SQLite).
async fn stored_index(site: &Site) -> (Vec<u8>, i64) {
    if let Some(url) = site.database_url() {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let mut all = Vec::new();
        for table in [
            "recording_search_words",
            "recording_search_docs",
            "recording_search_key",
        ] {
            let q = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM {table} t");
            let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
                .fetch_one(&mut c)
                .await
                .unwrap();
            all.extend_from_slice(text.as_bytes());
        }
        let words: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recording_search_words")
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        (all, words)
    } else {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(site.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".db") || name.ends_with(".db-wal") {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(
            !all.is_empty(),
            "no database file in {}",
            site.data_dir().display()
        );
        (all, -1)
    }
}

#[tokio::test]
async fn a_command_typed_in_a_shell_is_found_at_its_moment_and_only_by_its_readers() {
    let site = Site::start().await;
    let token = site.enroll_token(&["--group", "ops"]).await;
    let _agent = site.spawn_agent("srv", Some(&token), &[]);
    site.wait_online("srv", true).await;

    // Bad queries are named.
    for (q, want) in [("   ", "empty"), ("/ - a", "at least 2")] {
        let err = fails(&site.jg(&["recordings", "search", q]).await);
        assert!(err.contains(want), "{q:?}: {err}");
    }
    let long = "x".repeat(300);
    let err = fails(&site.jg(&["recordings", "search", &long]).await);
    assert!(err.contains("longer than 256"), "{err}");

    type_in_shell(&site, "srv", TYPED).await;

    // Found once the session ended and its recording was indexed.
    let home = site.jg_home();
    let deadline = tokio::time::Instant::now() + WAIT;
    let hits = loop {
        let hits = search_in(&site, &home, PHRASE).await;
        if !hits.is_empty() {
            break hits;
        }
        assert!(tokio::time::Instant::now() < deadline, "never found");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    let rec = &hit.recording;
    assert_eq!(rec.endpoint, "srv");
    assert_eq!(rec.username, ADMIN);
    // The session is the one that ran (the session list agrees).
    let sessions: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == rec.session_id.as_str() && s["endpoint"] == "srv"),
        "{sessions}"
    );
    let m = hit
        .matches
        .iter()
        .find(|m| m.stream == SearchStream::Output)
        .unwrap_or_else(|| panic!("{hit:?}"));
    assert!(m.snippet.contains(TYPED), "{m:?}");

    // The moment lands on it: the output up to it shows the phrase, the
    // output before it does not.
    let cast = ok(&site.jg(&["recordings", "export", &rec.id]).await);
    let events = output_events(&cast);
    assert!(
        events.iter().any(|(t, _)| *t == m.offset_secs),
        "{} is no event's time",
        m.offset_secs
    );
    let upto = |keep: &dyn Fn(f64) -> bool| -> String {
        plain(
            &events
                .iter()
                .filter(|(t, _)| keep(*t))
                .map(|(_, d)| d.as_str())
                .collect::<String>(),
        )
    };
    assert!(upto(&|t| t <= m.offset_secs).contains(PHRASE), "{cast}");
    assert!(!upto(&|t| t < m.offset_secs).contains(PHRASE), "{cast}");

    // The table form names the session, user, endpoint and moment.
    let table = ok(&site.jg(&["recordings", "search", PHRASE]).await);
    for want in [
        rec.id.as_str(),
        rec.session_id.as_str(),
        ADMIN,
        "srv",
        "output",
    ] {
        assert!(table.contains(want), "{want}: {table}");
    }
    // Whole words: a longer word is another word.
    assert!(
        search_in(&site, &home, "rm -rf /var/library")
            .await
            .is_empty()
    );

    // A reader of another group does not find it; a reader of `ops` does.
    for (name, group, finds) in [("rita", "default", false), ("otto", "ops", true)] {
        let pw = format!("reads-the-{group}-group-only-7");
        let file = site.password_file(&format!("{name}.pw"), &pw);
        ok(&site
            .jg(&[
                "admin",
                "users",
                "create",
                name,
                "--role",
                "auditor",
                "--groups",
                group,
                "--password-file",
                file.to_str().unwrap(),
            ])
            .await);
        let home = site.home(name);
        ok(&site.try_login_in(&home, name, &pw, &[]).await);
        let hits = search_in(&site, &home, PHRASE).await;
        assert_eq!(hits.len(), usize::from(finds), "{name}: {hits:?}");
    }
    // Without view-audit, no search at all.
    site.create_user("tech", "technician", "another-long-passphrase-9")
        .await;
    let tech = site.home("tech");
    ok(&site
        .try_login_in(&tech, "tech", "another-long-passphrase-9", &[])
        .await);
    let err = fails(&site.jg_in(&tech, &["recordings", "search", PHRASE]).await);
    assert!(err.contains("view-audit"), "{err}");

    // Searches are audited by size, never by their text.
    let searches: Vec<_> = site
        .security_events()
        .await
        .into_iter()
        .filter(|e| e.action == "recording-search")
        .collect();
    assert!(searches.len() >= 3, "{searches:?}");
    for e in &searches {
        assert!(!e.detail.contains("/var/lib"), "{e:?}");
        assert!(e.detail.contains("query_chars="), "{e:?}");
    }
    assert!(
        searches.iter().any(|e| e.detail.contains(&rec.id)),
        "{searches:?}"
    );

    // The stored index holds no plaintext of the session.
    let (stored, words) = stored_index(&site).await;
    for needle in ["/var/lib", "jg-search-x", "rm -rf"] {
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` in clear in the stored index"
        );
    }
    if site.database_url().is_some() {
        assert!(words > 0, "the index has no words");
        let text = String::from_utf8_lossy(&stored);
        for word in ["var", "lib", "echo", "null"] {
            assert!(
                !text
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == word),
                "the word `{word}` in clear: {text}"
            );
        }
    }
}
