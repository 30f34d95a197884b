//! Attended support, first part: an administrator makes a queue, a
//! technician makes a session key with `jg support key`, a customer
//! redeems it at the portal (no login) and asks for help with the form,
//! and the technician lists the sessions and follows the queue live; one
//! answer for a used and an unknown key; nothing of the key in the audit
//! log or the gateway log.

use jumpgate_api_types::support as api;
use jumpgate_client::Method;

use crate::support::*;

#[tokio::test]
async fn a_queue_a_key_redeemed_at_the_portal_and_a_request_list_as_support_sessions() {
    let site = Site::start().await;
    let pw = site.password_file("tina.pw", "helps-customers-daily-7");
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "tina",
            "--role",
            "technician",
            "--groups",
            "default",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    ok(&site
        .jg(&[
            "admin",
            "queues",
            "create",
            "helpdesk",
            "--group",
            "default",
            "--member",
            "tina",
            "--description",
            "Printers and passwords",
        ])
        .await);
    let queues: Vec<api::Queue> =
        serde_json::from_str(&ok(&site.jg(&["admin", "queues", "list", "--json"]).await)).unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].members, ["tina"]);

    let tina = site.home("tina");
    ok(&site
        .try_login_in(&tina, "tina", "helps-customers-daily-7", &[])
        .await);
    let key: api::SupportKey = serde_json::from_str(&ok(&site
        .jg_in(&tina, &["support", "key", "--ttl", "10m", "--json"])
        .await))
    .unwrap();
    assert_eq!(key.queue.as_deref(), Some("helpdesk"));
    let digits: String = key.key.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 10, "{key:?}");

    // The customer's side: the portal, without an account.
    let anon = site.api_client();
    let info = anon.portal_info().await.unwrap();
    assert_eq!(info.queues.len(), 1);
    assert_eq!(info.queues[0].name, "helpdesk");
    let dl = anon.portal_redeem(&key.key).await.unwrap();
    assert!(dl.download.starts_with("/portal/download/jgd_"), "{dl:?}");
    // Used and unknown keys get the very same answer.
    let raw = |k: &str| {
        let body = serde_json::to_vec(&api::RedeemKey { key: k.into() }).unwrap();
        anon.raw(
            Method::POST,
            "/api/v1/portal/key",
            Some("application/json"),
            body,
        )
    };
    let used = raw(&key.key).await.unwrap();
    let unknown = raw("000 000 0000").await.unwrap();
    assert_eq!(used.0.as_u16(), 404);
    assert_eq!(used, unknown);
    assert!(
        String::from_utf8_lossy(&used.1).contains("invalid_session_key"),
        "{used:?}"
    );
    // The technician follows the queue live: a snapshot (the key's session,
    // waiting for its download), then the form's session as it arrives.
    let token = site.saved_token(&tina);
    let follower = site.api_client().with_token(token);
    let mut events = tokio::time::timeout(WAIT, follower.support_events())
        .await
        .unwrap()
        .unwrap();
    match next(&mut events).await {
        Some(api::SupportEvent::Snapshot { sessions }) => {
            let who: Vec<&str> = sessions.iter().map(|s| s.customer.as_str()).collect();
            assert_eq!(who, ["Customer"], "{sessions:?}");
            assert_eq!(sessions[0].for_user.as_deref(), Some("tina"));
        }
        other => panic!("expected a snapshot first: {other:?}"),
    }
    let form = anon
        .portal_request(&api::HelpRequest {
            name: "Jo Customer".into(),
            problem: "The printer prints nothing".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    assert_ne!(form.download, dl.download);
    match next(&mut events).await {
        Some(api::SupportEvent::Session { session }) => {
            assert_eq!(
                (session.customer.as_str(), session.problem.as_str()),
                ("Jo Customer", "The printer prints nothing")
            );
            assert_eq!(
                (session.queue.as_str(), session.state.as_str()),
                ("helpdesk", "pending")
            );
        }
        other => panic!("expected the new session: {other:?}"),
    }
    // Someone who is no queue's member follows nothing.
    let outsider = tokio::time::timeout(
        WAIT,
        site.api_client()
            .with_token(site.saved_token(&site.jg_home()))
            .support_events(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut outsider = outsider;
    match next(&mut outsider).await {
        Some(api::SupportEvent::Snapshot { sessions }) => {
            assert!(sessions.is_empty(), "{sessions:?}")
        }
        other => panic!("expected an empty snapshot: {other:?}"),
    }

    // The technician sees both, newest first.
    let rows: Vec<api::SupportSessionRow> = serde_json::from_str(&ok(&site
        .jg_in(&tina, &["support", "sessions", "--json"])
        .await))
    .unwrap();
    let who: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.customer.as_str(), r.origin.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("Jo Customer", "form", "pending"),
            ("Customer", "key", "pending")
        ]
    );
    let table = ok(&site.jg_in(&tina, &["support", "sessions"]).await);
    assert!(
        table.contains("Jo Customer") && table.contains("helpdesk"),
        "{table}"
    );

    // Audited, and the key itself is nowhere.
    let events = site.security_events().await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "queue-create",
        "support-key-create",
        "support-request",
        "support-key-failed",
    ] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
    let failed = events
        .iter()
        .filter(|e| e.action == "support-key-failed")
        .count();
    assert_eq!(failed, 2, "the used and the unknown key");
    for e in &events {
        assert!(
            !e.detail.contains(&digits) && !e.target.contains(&digits),
            "{e:?}"
        );
    }
    let log = site.gateway_log_through_now().await;
    assert!(log.contains("login"), "the log was captured: {log}");
    assert!(!log.contains(&digits), "the key is in the gateway log");
}

/// The next support event, within the harness's patience.
async fn next(e: &mut jumpgate_client::SupportEvents) -> Option<api::SupportEvent> {
    tokio::time::timeout(WAIT, e.next()).await.unwrap().unwrap()
}
