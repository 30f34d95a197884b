//! Attended support with the customer's client connected (at the protocol
//! level, `SimCustomer`: real TLS, the real hello with an ephemeral key):
//! the download carries the site's address, fingerprint and a single-use
//! ticket; the customer waits in the queue (told their place); a
//! technician accepts (a second accept is refused), they chat both ways,
//! the technician asks for control and the customer allows then takes it
//! back, the customer ends and rates the session. The technician's event
//! stream follows each step; everything is audited, the chat's words are
//! not in the audit log or the gateway log.

use std::time::Duration;

use jumpgate_api_types::support as api;
use jumpgate_client::ClientError;
use jumpgate_proto::assist::{AssistMsg, ChatFrom, ParticipantRole, Right, SupportState};
use jumpgate_proto::control::RejectCode;
use jumpgate_proto::session::SessionKind;
use jumpgate_test_support::assist::{SimCustomer, SimError, session_until, trailer_of};

use crate::support::*;

/// A technician `tina` in queue `helpdesk`; returns her `jg` home.
async fn technician_and_queue(site: &Site) -> std::path::PathBuf {
    site.technician_in_queue("tina", "helps-customers-daily-7", "helpdesk")
        .await
}

/// The next support event matching `want`, within the harness's patience.
async fn event_where(
    events: &mut jumpgate_client::SupportEvents,
    what: &str,
    want: impl Fn(&api::SupportEvent) -> bool,
) -> api::SupportEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Ok(Some(e))) if want(&e) => return e,
            Ok(Ok(Some(e))) => seen.push(e),
            other => panic!("no {what}: {other:?}; saw {seen:#?}"),
        }
    }
}

fn session_where(
    id: &str,
    want: impl Fn(&api::SupportSession) -> bool,
) -> impl Fn(&api::SupportEvent) -> bool {
    let id = id.to_owned();
    move |e| matches!(e, api::SupportEvent::Session { session } if session.id == id && want(session))
}

const PATIENCE: Duration = WAIT;

#[tokio::test]
async fn a_customer_waits_is_accepted_chats_allows_and_revokes_control_and_rates() {
    let site = Site::start().await;
    let tina = technician_and_queue(&site).await;
    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Jo Customer".into(),
            problem: "The printer prints nothing".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let tech = site.api_client().with_token(site.saved_token(&tina));
    let mut events = tokio::time::timeout(WAIT, tech.support_events())
        .await
        .unwrap()
        .unwrap();
    event_where(
        &mut events,
        "snapshot",
        |e| matches!(e, api::SupportEvent::Snapshot { sessions } if sessions.len() == 1),
    )
    .await;

    // The download: an executable with what it needs at its end.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jumpgate-assist");
    let n = tokio::time::timeout(
        Duration::from_secs(120),
        anon.download_to(&dl.download, &file),
    )
    .await
    .unwrap()
    .unwrap();
    let head = std::fs::read(&file).map(|b| b[..4].to_vec()).unwrap();
    assert_eq!(head, b"\x7fELF", "an executable ({n} bytes)");
    let t = trailer_of(&file);
    // The site's canonical address (`localhost` for a loopback site).
    let port = site.gateway.url().rsplit(':').next().unwrap().to_owned();
    assert_eq!(t.url, format!("https://localhost:{port}"));
    assert_eq!(t.fingerprint, site.gateway.fingerprint);
    assert!(
        t.ticket.starts_with("jga_") && t.support_id.starts_with("sup_"),
        "{t:?}"
    );
    let id = t.support_id.clone();

    // The customer's client connects and waits, first in line.
    let mut c = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
        .await
        .unwrap();
    assert_eq!(c.welcome.support_id, id);
    assert_eq!(
        (c.welcome.queue.as_str(), c.welcome.customer.as_str()),
        ("helpdesk", "Jo Customer")
    );
    c.expect(PATIENCE, "first place in the queue", |m| {
        matches!(
            m,
            AssistMsg::Status {
                state: SupportState::Waiting,
                position: Some(1),
                ..
            }
        )
    })
    .await;
    event_where(
        &mut events,
        "the customer waiting, online",
        session_where(&id, |s| s.state == "waiting" && s.online),
    )
    .await;
    // The ticket was spent.
    match SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket).await {
        Err(SimError::Rejected(r)) => assert_eq!(r.code, RejectCode::InvalidTicket, "{r:?}"),
        other => panic!("a spent ticket connected: {other:?}"),
    }

    // Tina takes the customer; nobody takes them twice.
    let taken = tech.accept_support(&id).await.unwrap();
    assert_eq!(
        (taken.state.as_str(), taken.owner.as_deref()),
        ("active", Some("tina"))
    );
    match tech.accept_support(&id).await {
        Err(ClientError::Api {
            status: 409, code, ..
        }) => {
            assert_eq!(code, jumpgate_api_types::ErrorCode::AlreadyTaken)
        }
        other => panic!("accepted twice: {other:?}"),
    }
    c.expect(PATIENCE, "the session active", |m| {
        matches!(
            m,
            AssistMsg::Status {
                state: SupportState::Active,
                ..
            }
        )
    })
    .await;
    c.expect(PATIENCE, "tina as owner", |m| {
        matches!(m, AssistMsg::Participants { list }
            if list.len() == 1 && list[0].name == "tina" && list[0].role == ParticipantRole::Owner)
    })
    .await;

    // Chat both ways.
    tech.support_chat(&id, "Hello, this is Tina. Secret-word-tech")
        .await
        .unwrap();
    c.expect(PATIENCE, "tina's line", |m| {
        matches!(m, AssistMsg::Chat(l) if l.from == "tina" && l.from_kind == ChatFrom::Technician && l.text.contains("Secret-word-tech"))
    })
    .await;
    c.send(AssistMsg::SendChat {
        text: "Hi Tina, Secret-word-customer".into(),
    });
    let line = event_where(&mut events, "the customer's line", |e| {
        matches!(e, api::SupportEvent::Chat { id: i, line } if *i == id && line.from_kind == "customer")
    })
    .await;
    let api::SupportEvent::Chat { line, .. } = line else {
        unreachable!()
    };
    assert_eq!(
        (line.from.as_str(), line.text.as_str(), line.seq),
        ("Jo Customer", "Hi Tina, Secret-word-customer", 2)
    );

    // The same as a conversation in `jg support chat ID`: a typed line goes
    // to the customer, the customer's answer is printed (tina's own line
    // is not printed back), and the end of input ends it.
    {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut conv = site.jg_command(&["support", "chat", &id]);
        conv.env("JG_HOME", &tina)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = conv.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next_line = async || {
            tokio::time::timeout(WAIT, out.next_line())
                .await
                .expect("jg support chat printed nothing")
                .unwrap()
                .expect("jg support chat closed its output")
        };
        let banner = next_line().await;
        assert!(
            banner.starts_with("Chat with Jo Customer (helpdesk)."),
            "{banner}"
        );
        stdin.write_all(b"Typed in jg\n").await.unwrap();
        c.expect(
            PATIENCE,
            "jg's line",
            |m| matches!(m, AssistMsg::Chat(l) if l.from == "tina" && l.text == "Typed in jg"),
        )
        .await;
        c.send(AssistMsg::SendChat {
            text: "An answer for jg".into(),
        });
        assert_eq!(next_line().await, "Jo Customer: An answer for jg");
        drop(stdin);
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("jg support chat did not stop at the end of its input")
            .unwrap();
        assert!(status.success(), "{status}");
    }

    // Nothing the customer did not allow: a shell is refused.
    match tech.connect_support(&id, SessionKind::Shell).await {
        Err(ClientError::Api {
            status: 403, code, ..
        }) => {
            assert_eq!(code, jumpgate_api_types::ErrorCode::RightNotGranted)
        }
        Err(e) => panic!("expected right_not_granted: {e}"),
        Ok(_) => panic!("a shell opened without the customer's consent"),
    }

    // Tina asks for control; the customer allows, then takes it back.
    tech.ask_support_right(&id, "control").await.unwrap();
    let ask = c
        .expect(PATIENCE, "the ask", |m| {
            matches!(m, AssistMsg::Ask { right: Right::Control, technician, .. } if technician == "tina")
        })
        .await;
    let AssistMsg::Ask { id: ask_id, .. } = ask else {
        unreachable!()
    };
    event_where(
        &mut events,
        "control asked",
        session_where(&id, |s| s.asked == ["control"]),
    )
    .await;
    c.send(AssistMsg::Answer {
        id: ask_id,
        allowed: true,
    });
    event_where(
        &mut events,
        "control granted",
        session_where(&id, |s| {
            s.granted == ["view", "control"] && s.asked.is_empty()
        }),
    )
    .await;
    c.send(AssistMsg::Revoke {
        right: Right::Control,
    });
    event_where(
        &mut events,
        "control taken back",
        session_where(&id, |s| s.granted == ["view"]),
    )
    .await;

    // The customer ends the session and rates it.
    c.send(AssistMsg::EndSession);
    c.expect(PATIENCE, "the end", |m| matches!(m, AssistMsg::End { .. }))
        .await;
    event_where(&mut events, "the session leaving the queue", |e| {
        matches!(e, api::SupportEvent::Left { id: i, reason } if *i == id && reason.contains("customer"))
    })
    .await;
    c.send(AssistMsg::Rating {
        stars: 5,
        comment: "Quick and kind".into(),
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    let row = loop {
        let rows = tech.support_sessions(None, None).await.unwrap();
        let row = rows.into_iter().find(|r| r.id == id).unwrap();
        if row.rating.is_some() || tokio::time::Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(row.rating, Some(5), "{row:?}");
    assert_eq!(row.state, "ended");
    assert_eq!(row.technicians, ["tina"]);
    assert_eq!(row.rights_used, ["view", "control"]);
    c.close();
    // The chat is kept, sealed, and read back in order.
    let chat = tech.support_transcript(&id).await.unwrap();
    let lines: Vec<(&str, &str)> = chat
        .iter()
        .map(|l| (l.from_kind.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("technician", "Hello, this is Tina. Secret-word-tech"),
            ("customer", "Hi Tina, Secret-word-customer"),
            ("technician", "Typed in jg"),
            ("customer", "An answer for jg"),
        ]
    );

    // Audited step by step; the words are not in the audit or the log.
    let events = site.security_events().await;
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e.target == id)
        .map(|e| e.action.as_str())
        .collect();
    for a in [
        "support-request",
        "support-join",
        "support-accept",
        "support-chat",
        "support-right",
        "support-end",
    ] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
    let rights: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.action == "support-right")
        .map(|e| (e.outcome.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        rights,
        [
            ("revoked", "customer:Jo Customer"),
            ("allowed", "customer:Jo Customer"),
            ("asked", "tina"),
        ],
        "newest first"
    );
    for e in &events {
        assert!(!e.detail.contains("Secret-word"), "{e:?}");
    }
    let log = site.gateway_log_through_now().await;
    assert!(
        log.contains("customer client connected"),
        "the log was captured: {log}"
    );
    assert!(
        !log.contains("Secret-word"),
        "chat words in the gateway log"
    );
    assert!(!log.contains(&t.ticket), "the ticket in the gateway log");
}

#[tokio::test]
async fn two_technicians_invite_an_observer_transfer_and_hand_back_to_the_queue() {
    let site = Site::start().await;
    let tina = technician_and_queue(&site).await;
    let bob = site.technician("bob", "also-helps-customers-9").await;
    ok(&site
        .jg(&[
            "admin", "queues", "update", "helpdesk", "--member", "tina", "--member", "bob",
        ])
        .await);
    let tina_api = site.api_client().with_token(site.saved_token(&tina));
    let bob_api = site.api_client().with_token(site.saved_token(&bob));
    let mut bob_events = tokio::time::timeout(WAIT, bob_api.support_events())
        .await
        .unwrap()
        .unwrap();

    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Kim".into(),
            problem: "VPN".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jumpgate-assist");
    anon.download_to(&dl.download, &file).await.unwrap();
    let t = trailer_of(&file);
    let id = t.support_id.clone();
    let mut c = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
        .await
        .unwrap();
    ok(&site.jg_in(&tina, &["support", "accept", &id]).await);
    let participants = |want: &'static [(&'static str, ParticipantRole)]| {
        move |m: &AssistMsg| {
            matches!(m, AssistMsg::Participants { list }
                if list.iter().map(|p| (p.name.as_str(), p.role)).collect::<Vec<_>>() == want)
        }
    };
    c.expect(
        PATIENCE,
        "tina alone",
        participants(&[("tina", ParticipantRole::Owner)]),
    )
    .await;

    // Bob joins as an observer: the customer sees him, he is told, and he
    // may not chat or ask.
    ok(&site
        .jg_in(&tina, &["support", "invite", &id, "bob", "--observer"])
        .await);
    c.expect(
        PATIENCE,
        "bob listed as observer",
        participants(&[
            ("tina", ParticipantRole::Owner),
            ("bob", ParticipantRole::Observer),
        ]),
    )
    .await;
    c.expect(PATIENCE, "the system's line", |m| {
        matches!(m, AssistMsg::Chat(l) if l.from_kind == ChatFrom::System && l.text == "bob joined as observer")
    })
    .await;
    event_where(&mut bob_events, "bob's invitation", |e| {
        matches!(e, api::SupportEvent::Invite { id: i, by, role } if *i == id && by == "tina" && role == "observer")
    })
    .await;
    match bob_api.support_chat(&id, "hello").await {
        Err(ClientError::Api { status: 403, .. }) => {}
        other => panic!("an observer chatted: {other:?}"),
    }

    // Tina grants nothing to bob by handing over: the customer's rights
    // are reset, and tina is out.
    tina_api.ask_support_right(&id, "view").await.unwrap();
    let ask = c
        .expect(PATIENCE, "the ask", |m| matches!(m, AssistMsg::Ask { .. }))
        .await;
    let AssistMsg::Ask { id: n, .. } = ask else {
        unreachable!()
    };
    c.send(AssistMsg::Answer {
        id: n,
        allowed: true,
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while tina_api
        .support_session(&id)
        .await
        .unwrap()
        .granted
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "view never granted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = ok(&site
        .jg_in(&tina, &["support", "transfer", &id, "--to", "bob"])
        .await);
    assert!(out.contains("now belongs to bob"), "{out}");
    c.expect(PATIENCE, "the reset", |m| {
        matches!(m, AssistMsg::Reset { reason } if reason.contains("tina transferred the session to bob"))
    })
    .await;
    c.expect(
        PATIENCE,
        "bob as owner",
        participants(&[("bob", ParticipantRole::Owner)]),
    )
    .await;
    let s = bob_api.support_session(&id).await.unwrap();
    assert_eq!(
        (s.owner.as_deref(), s.granted.len()),
        (Some("bob"), 0),
        "{s:?}"
    );
    match tina_api.ask_support_right(&id, "view").await {
        Err(ClientError::Api { status: 403, .. }) => {}
        other => panic!("tina still works on the session: {other:?}"),
    }

    // Bob hands it back to the queue: it waits again, and tina takes it.
    let out = ok(&site
        .jg_in(&bob, &["support", "transfer", &id, "--queue", "helpdesk"])
        .await);
    assert!(out.contains("waits in queue helpdesk again"), "{out}");
    c.expect(PATIENCE, "waiting again", |m| {
        matches!(
            m,
            AssistMsg::Status {
                state: SupportState::Waiting,
                ..
            }
        )
    })
    .await;
    let queue = ok(&site.jg_in(&tina, &["support", "queue"]).await);
    assert!(queue.contains(&id) && queue.contains("waiting"), "{queue}");
    tina_api.accept_support(&id).await.unwrap();
    ok(&site.jg_in(&tina, &["support", "end", &id]).await);
    c.expect(PATIENCE, "the end", |m| matches!(m, AssistMsg::End { .. }))
        .await;

    let events = site.security_events().await;
    let mine: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| {
            e.target == id
                && matches!(
                    e.action.as_str(),
                    "support-transfer" | "support-participant" | "support-accept"
                )
        })
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        mine,
        [
            ("support-accept", "tina", "ok"),
            ("support-transfer", "bob", "ok"),
            ("support-transfer", "tina", "ok"),
            ("support-participant", "tina", "joined:observer"),
            ("support-accept", "tina", "ok"),
        ],
        "newest first"
    );
}

/// Reads `SessionMsg`s from a watch until the output holds `want`;
/// returns the output read.
async fn watched_until(
    io: &mut jumpgate_net::session::MsgStream<jumpgate_client::SessionIo>,
    seen: &mut String,
    want: &str,
) {
    use jumpgate_proto::session::SessionMsg;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, io.read_msg()).await {
            Ok(Ok(Some(SessionMsg::Stdout(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Ok(Some(_))) => {}
            other => panic!("no {want:?} in the watch: {other:?}; saw {seen:?}"),
        }
    }
}

#[tokio::test]
async fn a_supervisor_watches_a_live_shell_read_only() {
    use jumpgate_net::session::MsgStream;
    use jumpgate_proto::session::SessionMsg;
    use tokio::io::AsyncWriteExt;

    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let tina = technician_and_queue(&site).await;
    let sam = site.supervisor("sam", "watches-over-sessions-3").await;

    // The administrator's live shell: it echoes what it reads.
    let mut child = site
        .jg_command(&[
            "shell",
            "srv",
            "--stdin",
            "--",
            "sh",
            "-c",
            "while read l; do echo got-$l; done",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let rows: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--active", "--json"]).await)).unwrap();
        if let Some(id) = rows
            .as_array()
            .and_then(|a| a.iter().find(|r| r["endpoint"] == "srv"))
            .and_then(|r| r["id"].as_str())
        {
            break id.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shell never showed as active"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A technician without monitor-sessions may not watch.
    let tina_api = site.api_client().with_token(site.saved_token(&tina));
    match tina_api.watch_session(&id).await {
        Err(ClientError::Api { status: 403, .. }) => {}
        Err(e) => panic!("expected 403: {e}"),
        Ok(_) => panic!("a technician watched without monitor-sessions"),
    }

    // The supervisor sees the output so far, then live.
    let sam_api = site.api_client().with_token(site.saved_token(&sam));
    let mut w = MsgStream::new(sam_api.watch_session(&id).await.unwrap());
    let mut seen = String::new();
    watched_until(&mut w, &mut seen, "got-first").await;
    // What the watcher types goes nowhere.
    w.write_msg(&SessionMsg::Stdin(bytes::Bytes::from_static(b"INJECTED\n")))
        .await
        .unwrap();
    stdin.write_all(b"second\n").await.unwrap();
    watched_until(&mut w, &mut seen, "got-second").await;
    stdin.write_all(b"third\n").await.unwrap();
    watched_until(&mut w, &mut seen, "got-third").await;
    assert!(
        !seen.contains("INJECTED"),
        "the watcher's input reached the shell: {seen}"
    );

    // The session ends; so does the watch, with the reason.
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let shell_out = ok(&out);
    assert_eq!(shell_out, "got-first\ngot-second\ngot-third\n");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, w.read_msg()).await {
            Ok(Ok(Some(SessionMsg::Closed { reason }))) => {
                assert!(reason.contains("ended"), "{reason}");
                break;
            }
            Ok(Ok(Some(_))) => {}
            other => panic!("the watch did not end with the session: {other:?}"),
        }
    }
    let events = site.security_events().await;
    let watch: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.action == "session-watch" && e.target == id)
        .map(|e| (e.actor.as_str(), e.outcome.as_str()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut watch = watch
        .into_iter()
        .map(|(a, o)| (a.to_owned(), o.to_owned()))
        .collect::<Vec<_>>();
    while watch.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        watch = site
            .security_events()
            .await
            .into_iter()
            .filter(|e| e.action == "session-watch" && e.target == id)
            .map(|e| (e.actor, e.outcome))
            .collect();
    }
    assert_eq!(
        watch,
        [
            ("sam".to_owned(), "stopped".to_owned()),
            ("sam".to_owned(), "started".to_owned())
        ]
    );
}

/// A customer who asked for help in `helpdesk` and whose client is
/// connected: the session's id and the client. Each asks from an address
/// of their own (`127.0.0.N`): the portal limits forms per address.
async fn customer_waits(site: &Site, name: &str, n: u8) -> (String, SimCustomer) {
    let anon = site
        .api_client()
        .bind_source(std::net::Ipv4Addr::new(127, 0, 0, n).into());
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: name.into(),
            problem: "printer".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jumpgate-assist");
    anon.download_to(&dl.download, &file).await.unwrap();
    let t = trailer_of(&file);
    let c = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
        .await
        .unwrap();
    (t.support_id, c)
}

/// Polls `id` until its owner is `want`, and checks it is active then.
async fn owner_becomes(api: &jumpgate_client::Client, id: &str, want: &str) {
    let s = session_until(api, id, &format!("{id} goes to {want}"), |s| {
        s.owner.as_deref() == Some(want)
    })
    .await;
    assert_eq!(s.state, "active", "{s:?}");
}

#[tokio::test]
async fn an_auto_assign_queue_gives_customers_to_available_members_in_turn() {
    let site = Site::start().await;
    let tina = technician_and_queue(&site).await;
    let bob = site.technician("bob", "also-helps-customers-9").await;
    ok(&site
        .jg(&[
            "admin",
            "queues",
            "update",
            "helpdesk",
            "--member",
            "tina",
            "--member",
            "bob",
            "--auto-assign",
            "true",
        ])
        .await);
    let tina_api = site.api_client().with_token(site.saved_token(&tina));
    let bob_api = site.api_client().with_token(site.saved_token(&bob));

    // Nobody follows the queue: Kim waits. Positive control: the session
    // is there, live and waiting, once her client told its place.
    let (kim, mut kim_c) = customer_waits(&site, "Kim", 11).await;
    kim_c
        .expect(PATIENCE, "Kim's place", |m| {
            matches!(
                m,
                AssistMsg::Status {
                    state: SupportState::Waiting,
                    position: Some(1),
                    ..
                }
            )
        })
        .await;
    let s = tina_api.support_session(&kim).await.unwrap();
    assert_eq!(
        (s.state.as_str(), s.owner.as_deref(), s.online),
        ("waiting", None, true)
    );

    // Tina opens her queue: she is available, and Kim is hers at once.
    let mut tina_events = tokio::time::timeout(WAIT, tina_api.support_events())
        .await
        .unwrap()
        .unwrap();
    owner_becomes(&tina_api, &kim, "tina").await;
    kim_c
        .expect(PATIENCE, "Kim is taken", |m| {
            matches!(
                m,
                AssistMsg::Status {
                    state: SupportState::Active,
                    ..
                }
            )
        })
        .await;
    event_where(
        &mut tina_events,
        "Kim's session, tina's",
        session_where(&kim, |s| s.owner.as_deref() == Some("tina")),
    )
    .await;

    // Bob opens his too. In name order after tina comes bob (wrapping),
    // then tina again.
    let bob_events = tokio::time::timeout(WAIT, bob_api.support_events())
        .await
        .unwrap()
        .unwrap();
    let (lee, _lee_c) = customer_waits(&site, "Lee", 12).await;
    owner_becomes(&tina_api, &lee, "bob").await;
    let (max, _max_c) = customer_waits(&site, "Max", 13).await;
    owner_becomes(&tina_api, &max, "tina").await;

    // Bob closes his queue: he is not available any more (the queue list
    // says so), so the next customer goes to tina although it is bob's
    // turn.
    let available = || async {
        let qs = tina_api.queues().await.unwrap();
        qs.into_iter()
            .find(|q| q.name == "helpdesk")
            .unwrap()
            .available
    };
    assert_eq!(available().await, ["bob", "tina"]);
    drop(bob_events);
    let deadline = tokio::time::Instant::now() + WAIT;
    while available().await != ["tina"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob stays available"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ned, _ned_c) = customer_waits(&site, "Ned", 14).await;
    owner_becomes(&tina_api, &ned, "tina").await;
    drop(tina_events);

    let events = site.security_events().await;
    let accepts: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e.action == "support-accept")
        .map(|e| (e.target.as_str(), e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        accepts,
        [
            (ned.as_str(), "tina", "queue=helpdesk assigned=auto"),
            (max.as_str(), "tina", "queue=helpdesk assigned=auto"),
            (lee.as_str(), "bob", "queue=helpdesk assigned=auto"),
            (kim.as_str(), "tina", "queue=helpdesk assigned=auto"),
        ],
        "newest first"
    );
}
