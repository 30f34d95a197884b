//! Attended support with the real customer client, end to end: the client
//! is downloaded from the real gateway's portal (the very bytes a browser
//! would save), made executable and run as the customer under Xvfb, in a
//! home and temporary directories of its own. The technician accepts with
//! `jg`, asks for the shell right, the customer clicks Allow in the window
//! (xdotool), `jg support shell` runs a command on the customer's machine,
//! the customer takes the right back with its switch, the technician ends
//! the session, the customer skips the rating, and the client leaves
//! nothing behind — its own download included.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jumpgate_api_types::support as api;
use jumpgate_test_support::xvfb::{Xvfb, have_tools};

use jumpgate_test_support::assist::{click_when, session_until};

use crate::support::*;

const TITLE: &str = "^Jumpgate: remote support$";

fn listing(dirs: &[PathBuf]) -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.insert(e.path());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for d in dirs {
        walk(d, &mut out);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_downloaded_client_serves_what_the_customer_allows_and_leaves_nothing() {
    assert!(
        have_tools(),
        "the X tools are installed (scripts/test installs them)"
    );
    let x = tokio::task::block_in_place(Xvfb::start);
    let site = Site::start().await;
    let tina = site
        .technician_in_queue("tina", "helps-customers-daily-7", "helpdesk")
        .await;
    let tech = site.api_client().with_token(site.saved_token(&tina));

    // The customer's machine: a home, TMPDIR and XDG directories.
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["home", "tmp", "runtime", "cache", "config", "data", "state"]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(dirs[0].join(".profile"), b"# the customer's\n").unwrap();
    std::fs::create_dir(dirs[0].join("Downloads")).unwrap();
    let before = listing(&dirs);

    // The portal: the request form, then the download, as a browser saves it.
    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Robin".into(),
            problem: "Mail does not sync".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let download = dirs[0].join("Downloads/jumpgate-assist");
    anon.download_to(&dl.download, &download).await.unwrap();
    std::fs::set_permissions(&download, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut client = spawn_written(
        tokio::process::Command::new(&download)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DISPLAY", &x.display)
            .env("HOME", &dirs[0])
            .env("TMPDIR", &dirs[1])
            .env("XDG_RUNTIME_DIR", &dirs[2])
            .env("XDG_CACHE_HOME", &dirs[3])
            .env("XDG_CONFIG_HOME", &dirs[4])
            .env("XDG_DATA_HOME", &dirs[5])
            .env("XDG_STATE_HOME", &dirs[6])
            .env("USER", "robin")
            .current_dir(&dirs[0])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true),
    )
    .await;

    // It joins the queue; tina takes it and asks for the shell right.
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let rows = tech.support_sessions(None, None).await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.state == "waiting") {
            break r.id.clone();
        }
        if tokio::time::Instant::now() > deadline {
            client.start_kill().unwrap();
            let out = client.wait_with_output().await.unwrap();
            panic!(
                "the customer never joined; the client said: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let s = session_until(&tech, &id, "online", |s| s.online).await;
    assert_eq!(s.customer, "Robin");
    ok(&site.jg_in(&tina, &["support", "accept", &id]).await);
    let w = tokio::task::block_in_place(|| x.window(TITLE));
    // Nothing is allowed yet: a shell is refused.
    let refused = site
        .jg_in(&tina, &["support", "shell", &id, "--", "true"])
        .await;
    assert!(
        !refused.status.success(),
        "a shell ran without the customer's Allow"
    );
    ok(&site.jg_in(&tina, &["support", "ask", &id, "shell"]).await);
    click_when(&x, &w, "allow");
    session_until(&tech, &id, "shell granted", |s| {
        s.granted.contains(&"shell".to_owned())
    })
    .await;
    let out = ok(&site
        .jg_in(
            &tina,
            &[
                "support",
                "shell",
                &id,
                "--",
                "sh",
                "-c",
                "echo on-the-customers-machine-$USER",
            ],
        )
        .await);
    assert_eq!(out, "on-the-customers-machine-robin\n");
    // The session log files it under its support session.
    let log: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let sub: Vec<_> = log
        .iter()
        .filter(|r| r["endpoint"] == format!("support:{id}").as_str())
        .map(|r| {
            (
                r["kind"].as_str(),
                r["support_id"].as_str(),
                r["outcome"].as_str(),
            )
        })
        .collect();
    assert!(
        sub.contains(&(Some("exec"), Some(id.as_str()), Some("ok"))),
        "{sub:?}"
    );

    // A supervisor watches a command on the customer's machine without
    // being invited: the customer's window lists them while they watch,
    // and the chat says so.
    let sam_home = site.supervisor("sam", "watches-over-sessions-3").await;
    let sam = site.api_client().with_token(site.saved_token(&sam_home));
    let mut cmd = site.jg_command(&[
        "support",
        "shell",
        &id,
        "--stdin",
        "--",
        "sh",
        "-c",
        "read l; echo got-$l",
    ]);
    cmd.env("JG_HOME", &tina)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut running = cmd.spawn().unwrap();
    let mut stdin = running.stdin.take().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let sub = loop {
        let log: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--active", "--json"]).await)).unwrap();
        if let Some(r) = log.iter().find(|r| r["support_id"] == id.as_str()) {
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no live sub-session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let watch = sam.watch_session(&sub).await.unwrap();
    let people = |want: &'static [(&'static str, &'static str)]| {
        move |s: &api::SupportSession| {
            s.participants
                .iter()
                .map(|p| (p.username.as_str(), p.role.as_str()))
                .collect::<Vec<_>>()
                == want
        }
    };
    session_until(
        &tech,
        &id,
        "sam listed",
        people(&[("tina", "owner"), ("sam", "supervisor")]),
    )
    .await;
    {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(b"done\n").await.unwrap();
    }
    let out = tokio::time::timeout(WAIT, running.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-done\n");
    drop(watch);
    session_until(&tech, &id, "sam gone", people(&[("tina", "owner")])).await;
    let said: Vec<String> = site
        .api_client()
        .with_token(site.saved_token(&site.jg_home()))
        .support_transcript(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.from_kind == "system")
        .map(|l| l.text)
        .collect();
    assert!(
        said.contains(&"sam (supervisor) is watching".to_owned())
            && said.contains(&"sam (supervisor) stopped watching".to_owned()),
        "{said:?}"
    );

    // The customer takes it back with the switch: refused again.
    click_when(&x, &w, "switch-shell");
    session_until(&tech, &id, "shell revoked", |s| s.granted.is_empty()).await;
    let refused = site
        .jg_in(&tina, &["support", "shell", &id, "--", "true"])
        .await;
    assert!(
        !refused.status.success(),
        "a shell ran after the customer took the right back"
    );

    // Tina ends; the customer skips the rating; the client exits and
    // leaves nothing behind, its download included.
    ok(&site.jg_in(&tina, &["support", "end", &id]).await);
    click_when(&x, &w, "skip");
    let status = tokio::time::timeout(WAIT, client.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the client's exit: {status:?}");
    assert!(!download.exists(), "the download is still there");
    assert_eq!(listing(&dirs), before, "the client left files behind");
    tokio::task::block_in_place(|| {
        x.poll("the window gone", || {
            x.windows(TITLE).is_empty().then_some(())
        });
    });
    let row = tech
        .support_sessions(None, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(row.state, "ended");
    assert_eq!(row.rights_used, ["shell"]);
}
