//! What a reader may see and what the gateway keeps: group scope on
//! sessions, recordings and the audit log through `jg`; `jg sessions`
//! filters and paging; case-insensitive user names; unknown login names and
//! command lines kept out of plain text.

use std::time::Duration;

use jumpgate_api_types as api;

use crate::support::*;

fn json_rows(out: &std::process::Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    v.as_array().unwrap().clone()
}

fn endpoints_in(rows: &[serde_json::Value], key: &str) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Enrolls an agent called `name` into `group` and waits until it is online.
async fn agent_in(site: &Site, name: &str, group: &str) -> Agent {
    let token = site.enroll_token(&["--group", group]).await;
    let agent = site.spawn_agent(name, Some(&token), &[]);
    site.wait_online(name, true).await;
    agent
}

/// Recordings as the admin sees them, once all have ended.
async fn ended_recordings(site: &Site, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let recs = json_rows(&site.jg(&["recordings", "--json"]).await);
        if recs.len() == n && recs.iter().all(|r| r["ended_at"].is_string()) {
            return recs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{recs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_group_auditor_reads_only_its_groups_sessions_recordings_and_audit() {
    let site = Site::start().await;
    let _web = agent_in(&site, "web-1", "web").await;
    let _db = agent_in(&site, "db-1", "db").await;
    ok(&site
        .jg(&["shell", "web-1", "--", "echo", "scope-web"])
        .await);
    ok(&site.jg(&["shell", "db-1", "--", "echo", "scope-db"]).await);
    let all_recs = ended_recordings(&site, 2).await;
    let rec_of = |ep: &str| {
        all_recs.iter().find(|r| r["endpoint"] == ep).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (web_rec, db_rec) = (rec_of("web-1"), rec_of("db-1"));

    const PW: &str = "reads-the-web-group-only-7";
    let pw = site.password_file("rita.pw", PW);
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "rita",
            "--role",
            "auditor",
            "--groups",
            "web",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    let rita = site.home("rita");
    ok(&site.try_login_in(&rita, "rita", PW, &[]).await);

    // The admin (all groups) sees both endpoints' sessions...
    let all = json_rows(&site.jg(&["sessions", "--json"]).await);
    assert_eq!(endpoints_in(&all, "endpoint"), ["db-1", "web-1"], "{all:?}");
    // ...the web auditor only web's, in every list.
    let sessions = json_rows(&site.jg_in(&rita, &["sessions", "--json"]).await);
    assert_eq!(
        endpoints_in(&sessions, "endpoint"),
        ["web-1"],
        "{sessions:?}"
    );
    let recs = json_rows(&site.jg_in(&rita, &["recordings", "--json"]).await);
    assert_eq!(endpoints_in(&recs, "endpoint"), ["web-1"], "{recs:?}");

    // Another group's recording does not exist for it: neither exported
    // nor played; its own group's is.
    let out = site.jg_in(&rita, &["recordings", "export", &db_rec]).await;
    let err = fails(&out);
    assert!(err.contains("no recording"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("scope-db"));
    let out = site.jg_in(&rita, &["play", &db_rec, "--speed", "64"]).await;
    let err = fails(&out);
    assert!(err.contains("no recording"), "{err}");
    let cast = ok(&site.jg_in(&rita, &["recordings", "export", &web_rec]).await);
    assert!(cast.contains("scope-web"), "{cast}");

    // The audit log: web's endpoint entries, nothing about db, nothing
    // site-wide (logins, user administration).
    let audit = json_rows(&site.jg_in(&rita, &["audit", "--json"]).await);
    let events: Vec<api::SecurityEvent> =
        serde_json::from_value(serde_json::Value::Array(audit)).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "session-open:exec" && e.target == "web-1"),
        "{events:?}"
    );
    for e in &events {
        assert!(
            !e.target.contains("db-1") && !e.detail.contains("db-1"),
            "{e:?}"
        );
        assert!(
            !matches!(e.action.as_str(), "login" | "user-create"),
            "site-wide entry shown to a group auditor: {e:?}"
        );
    }
    let admin_events = site.security_events().await;
    assert!(
        admin_events
            .iter()
            .any(|e| e.action == "session-open:exec" && e.target == "db-1"),
        "{admin_events:?}"
    );
    assert!(admin_events.iter().any(|e| e.action == "user-create"));
}

#[tokio::test]
async fn sessions_are_filtered_and_paged_and_bad_filters_are_400() {
    let site = Site::start().await;
    let _a = site.start_agent("srv").await;
    for i in 0..3 {
        ok(&site
            .jg(&["shell", "srv", "--", "echo", &format!("page-{i}")])
            .await);
    }
    let all = json_rows(&site.jg(&["sessions", "--json", "--kind", "exec"]).await);
    assert_eq!(all.len(), 3, "{all:?}");
    // One page at a time: each page starts after the last row shown.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["sessions", "--json", "--limit", "1"];
        if let Some(b) = &before {
            args.extend(["--before", b.as_str()]);
        }
        let out = site.jg(&args).await;
        let page = json_rows(&out);
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 1);
        // A full page says how to get the next one.
        let hint = String::from_utf8_lossy(&out.stderr).into_owned();
        let id = page[0]["id"].as_str().unwrap().to_owned();
        assert!(hint.contains(&format!("--before {id}")), "{hint}");
        seen.push(id.clone());
        before = Some(id);
        assert!(seen.len() <= 3, "paging does not end: {seen:?}");
    }
    let ids: Vec<String> = all
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ids, "pages must list every session once, in order");
    // Filters.
    let none = json_rows(&site.jg(&["sessions", "--json", "--kind", "shell"]).await);
    assert!(none.is_empty(), "{none:?}");
    let ended = json_rows(
        &site
            .jg(&["sessions", "--json", "--ended", "--endpoint", "srv"])
            .await,
    );
    assert_eq!(ended.len(), 3);
    let running = json_rows(&site.jg(&["sessions", "--json", "--active"]).await);
    assert!(running.is_empty(), "{running:?}");
    let mine = json_rows(
        &site
            .jg(&["sessions", "--json", "--user", ADMIN, "--since", "1h"])
            .await,
    );
    assert_eq!(mine.len(), 3);
    let later = json_rows(&site.jg(&["sessions", "--json", "--until", "1h"]).await);
    assert!(later.is_empty(), "{later:?}");

    // Bad filters: a 400 with a JSON error naming the problem.
    let token = site.saved_token(&site.jg_home());
    let client = site.api_client().with_token(token);
    for (query, needle) in [
        ("kind=teleport", "kind"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
        ("until=soon", "until"),
        ("active=maybe", "active"),
        ("before=ses_nope", "before"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = raw_call(
            &client,
            "GET",
            &format!("/api/v1/sessions?{query}"),
            None,
            b"",
        )
        .await;
        assert_eq!(status, 400, "{query}: {}", String::from_utf8_lossy(&body));
        let e: api::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert!(e.message.contains(needle), "{query}: {}", e.message);
    }
}

#[tokio::test]
async fn a_command_line_stays_out_of_the_gateway_log() {
    let site = Site::start().await;
    let _a = site.start_agent("srv").await;
    let marker = "pw-marker-5b2e91";
    ok(&site
        .jg(&[
            "shell",
            "srv",
            "--",
            "true",
            &format!("--password={marker}"),
        ])
        .await);
    let rows = json_rows(&site.jg(&["sessions", "--json"]).await);
    let id = rows
        .iter()
        .find(|r| r["target"].as_str().unwrap().contains(marker))
        .unwrap_or_else(|| panic!("{rows:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Positive control: the log captured this very session's end.
    let log = &site.gateway.stderr;
    assert!(
        log.wait_for(&id).await && log.text().contains("session ended"),
        "the gateway log never showed session {id}:\n{}",
        log.text()
    );
    assert!(
        !log.text().contains(marker),
        "the command line is in the gateway's plain log:\n{}",
        log.text()
    );
    // It is kept in the (encrypted) audit log.
    let events = site.security_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "session-open:exec" && e.detail.contains(marker)),
        "{events:?}"
    );
}

#[tokio::test]
async fn user_names_ignore_case_and_unknown_login_names_are_not_kept() {
    let site = Site::start().await;
    let pw = site.password_file("new.pw", "a-long-enough-password-9");
    let create = |name: &'static str, role: &'static str| {
        let pw = pw.to_str().unwrap().to_owned();
        let site = &site;
        async move {
            site.jg(&[
                "admin",
                "users",
                "create",
                name,
                "--role",
                role,
                "--password-file",
                &pw,
            ])
            .await
        }
    };
    let err = fails(&create("Admin", "admin").await);
    assert!(
        err.contains("already exists") && err.contains("not case-sensitive"),
        "{err}"
    );
    let err = fails(&create("root", "admin").await);
    assert!(err.contains("reserved"), "{err}");
    let err = fails(&create("auditor", "technician").await);
    assert!(err.contains("must hold the `auditor` role"), "{err}");
    ok(&create("tina", "technician").await);
    // Logging in ignores case; the account keeps its own spelling.
    let home = site.home("tina");
    ok(&site
        .try_login_in(&home, "TINA", "a-long-enough-password-9", &[])
        .await);
    let me = ok(&site.jg_in(&home, &["whoami"]).await);
    assert!(me.contains("tina"), "{me}");

    // A password typed into the name field is never stored.
    let typed = "S3cret-typed-as-a-name";
    let out = site
        .try_login_in(&site.home("x"), typed, "whatever-password-1", &[])
        .await;
    fails(&out);
    let out = site
        .try_login_in(&site.home("y"), "tina", "wrong-password-123", &[])
        .await;
    fails(&out);
    let events = site.security_events().await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "login" && e.outcome == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{events:?}");
    assert!(
        failed.iter().any(|e| e.actor == "tina"),
        "known users are recorded by name: {failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|e| e.actor.starts_with("unknown user (fingerprint ")),
        "{failed:?}"
    );
    let table = ok(&site.jg(&["audit"]).await);
    assert!(table.contains("unknown user"), "{table}");
    assert!(!table.contains("S3cret"), "{table}");
    assert!(
        events.iter().all(|e| !format!("{e:?}").contains("S3cret")),
        "{events:?}"
    );
}
