//! Elevation requests are access requests (issue #17): a real agent
//! serving elevation to a throw-away local user, the policy published with
//! `jg`, a real SMTP server (aiosmtpd). The user's `jumpgate elevate` waiting
//! for approval appears in `jg access list` as kind `elevation` with its
//! program; an alert rule `--event access-request --approvers` mails the
//! holders of `epm-approve` on the endpoint's group (not an auditor); an
//! auditor's `jg access approve` is refused for lacking `epm-approve`; a
//! technician's `jg access approve` sends the decision to the agent, the
//! program runs, and the EPM request reads approved too. A blocked launch
//! writes one `epm-blocked` audit entry (a second within the minute is
//! folded into the next), which an alert rule mails.
//!
//! Needs root (a local user, an agent running programs as root) and
//! python3's aiosmtpd: CI has both; elsewhere the test prints `skipped:`.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::alerts::{MailSite, data, mail_site, rcpts, subject, to, user};
use crate::epm::{LocalUser, POLICY, elevate, run, text, wait_status};
use crate::support::*;

#[tokio::test]
async fn an_elevation_request_is_listed_mailed_and_approved_as_an_access_request() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root (a local user, an agent that runs programs as root)");
        return;
    }
    let Some(MailSite { site, smtpd, .. }) = mail_site("").await else {
        return;
    };
    // tina (technician: epm-approve) decides; aude (auditor) sees but may
    // not decide.
    let tina = user(&site, "tina", "technician", Some("tina@example.test"), true).await;
    let aude = user(&site, "aude", "auditor", Some("aude@example.test"), true).await;
    ok(&site
        .jg(&[
            "admin",
            "alerts",
            "add",
            "elevations",
            "--event",
            "access-request",
            "--approvers",
            "--subject",
            "Jumpgate {action}: {actor} ({outcome})",
        ])
        .await);
    ok(&site
        .jg(&[
            "admin",
            "alerts",
            "add",
            "blocked",
            "--event",
            "epm-blocked",
            "--to",
            "security@example.test",
        ])
        .await);

    // The endpoint, its elevation socket reachable by the user.
    let lu = LocalUser::random("jgea");
    let shared = tempfile::Builder::new()
        .prefix("jg-epmacc")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = shared.path().join("jumpgate");
    std::fs::copy(jumpgate_bin(), &bin).unwrap();
    let settled = spawn_written(
        tokio::process::Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null()),
    )
    .await;
    assert!(settled.wait_with_output().await.unwrap().status.success());
    let socket = shared.path().join("elevate.sock");
    let token = site.enroll_token(&[]).await;
    let _agent = site.spawn_agent(
        "ws-9",
        Some(&token),
        &["--elevate-socket", socket.to_str().unwrap()],
    );
    site.wait_online("ws-9", true).await;
    let file = site.dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    ok(&site
        .jg(&["epm", "policy", "import", file.to_str().unwrap()])
        .await);
    ok(&site.jg(&["epm", "publish"]).await);
    wait_status(&site, "ws-9", "version 1 accepted", |r| {
        r["accepted_version"] == 1
    })
    .await;

    // The user asks to run `date` (approval needed) and waits.
    let mut waiting = elevate(
        &bin,
        &lu,
        &socket,
        &["--reason", "INC-5150 clock check", "--", "date", "+%Y"],
    );
    let waiting = waiting
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It is an access request of kind elevation in tina's list.
    let deadline = tokio::time::Instant::now() + WAIT;
    let req = loop {
        let list: Value = serde_json::from_str(&ok(&site
            .jg_in(&tina, &["access", "list", "--pending", "--json"])
            .await))
        .unwrap();
        if let Some(r) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "elevation")
        {
            break r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no elevation request in jg access list: {list:#}\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = req["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("er_"), "{req:#}");
    assert_eq!(req["requester"], format!("{}@ws-9", lu.name), "{req:#}");
    assert_eq!(req["endpoint"], "ws-9");
    assert_eq!(req["group"], "default");
    assert_eq!(req["reason"], "INC-5150 clock check");
    assert_eq!(req["can_decide"], true);
    assert_eq!(req["elevation"]["program"], "/usr/bin/date");
    assert_eq!(req["elevation"]["args"], serde_json::json!(["+%Y"]));
    assert_eq!(req["elevation"]["rule"], "date-approved");
    assert_eq!(req["elevation"]["user"], lu.name.as_str());
    assert!(req["expires_at"].is_string(), "{req:#}");
    let table = ok(&site.jg_in(&tina, &["access", "list"]).await);
    let row = table.lines().find(|l| l.contains(&id)).unwrap_or_default();
    assert!(
        row.contains("elevation") && row.contains("pending") && row.contains("/usr/bin/date +%Y"),
        "{table}"
    );
    let shown = ok(&site.jg_in(&tina, &["access", "show", &id]).await);
    assert!(
        shown.contains("date-approved") && shown.contains(&lu.name),
        "{shown}"
    );
    // The same request on the EPM side.
    let epm: Value =
        serde_json::from_str(&ok(&site.jg(&["epm", "requests", "--json"]).await)).unwrap();
    assert_eq!(epm[0]["id"], id.as_str(), "{epm:#}");

    // The approvers' mail: tina (epm-approve on default), not aude; it
    // names the request, the program and the reason.
    let mail = smtpd
        .wait_for("the elevation request's mail", |m| {
            subject(m).contains("access-request")
        })
        .await;
    assert_eq!(rcpts(&mail), ["tina@example.test"], "{mail:#}");
    for needle in [
        id.as_str(),
        "kind=elevation",
        "program=/usr/bin/date",
        "INC-5150",
    ] {
        assert!(data(&mail).contains(needle), "{needle}: {}", data(&mail));
    }

    // The auditor lacks epm-approve: refused, as `jg epm approve` is.
    let refused = fails(&site.jg_in(&aude, &["access", "approve", &id]).await);
    assert!(refused.contains("epm-approve"), "{refused}");
    let refused = fails(&site.jg_in(&aude, &["epm", "approve", &id]).await);
    assert!(refused.contains("epm-approve"), "{refused}");

    // tina approves with `jg access`: the agent gets it, date runs as root.
    let out = ok(&site.jg_in(&tina, &["access", "approve", &id]).await);
    assert!(out.contains("approved"), "{out}");
    let out = tokio::time::timeout(WAIT, waiting.wait_with_output())
        .await
        .expect("the elevation still waits after the approval")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).trim().starts_with("20"),
        "{}",
        text(&out.stdout)
    );
    // Both rows approved; the decision is tina's.
    let shown: Value = serde_json::from_str(&ok(&site
        .jg_in(&tina, &["access", "show", &id, "--json"])
        .await))
    .unwrap();
    assert_eq!(shown["state"], "approved", "{shown:#}");
    assert_eq!(shown["decisions"][0]["approver"], "tina");
    let epm: Value = serde_json::from_str(&ok(&site
        .jg(&["epm", "requests", "--state", "approved", "--json"])
        .await))
    .unwrap();
    assert_eq!(epm[0]["id"], id.as_str(), "{epm:#}");
    assert_eq!(epm[0]["decided_by"], "tina");
    // Deciding again, on either route: no longer pending.
    let again = fails(&site.jg_in(&tina, &["access", "deny", &id]).await);
    assert!(again.contains("no longer pending"), "{again}");

    // Blocked twice: one epm-blocked entry (the second is folded), mailed.
    for _ in 0..2 {
        let out = run(elevate(&bin, &lu, &socket, &["--", "whoami"])).await;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("no-whoami"),
            "{}",
            text(&out.stderr)
        );
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Both launches reached the gateway…
        let ev = crate::epm::events(&site).await;
        let whoamis = ev
            .iter()
            .filter(|e| e["event"]["kind"] == "decision" && e["event"]["rule"] == "no-whoami")
            .count();
        if whoamis == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "events: {ev:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and one entry names them.
    let blocked: Vec<_> = site
        .security_events()
        .await
        .into_iter()
        .filter(|e| e.action == "epm-blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    let b = &blocked[0];
    assert_eq!(
        (b.actor.as_str(), b.target.as_str(), b.outcome.as_str()),
        (lu.name.as_str(), "ws-9", "blocked")
    );
    assert_eq!(b.detail, "rule=no-whoami count=1 program=/usr/bin/whoami");
    let mail = smtpd
        .wait_for("the blocked launch's mail", |m| {
            to(m, "security@example.test")
        })
        .await;
    assert!(data(&mail).contains("/usr/bin/whoami"), "{}", data(&mail));
    // Nobody but the approver heard of the request (positive control: the
    // mails above were delivered).
    for m in smtpd.messages() {
        assert!(!to(&m, "aude@example.test"), "{m:#}");
    }
}
