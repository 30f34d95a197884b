//! Desktop sessions through the session service, on both engines, against
//! a stand-in agent: a real mux connection over an in-memory pipe whose
//! agent side answers the way each test says (the real agent's desktop side
//! is built elsewhere). The technician speaks on another pipe.

use std::time::Duration;

use bytes::Bytes;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_net::session::MsgStream;
use jumpgate_proto::desktop::{ControlState, DesktopInfo, InputState, Key, Video};
use jumpgate_proto::mux::Role;
use jumpgate_proto::session::{
    Accepted, ConsentMode, Refusal, RefusalCode, SessionKind, SessionMsg, SessionRequest,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::open::{SessionService, Technician};
use super::outcome::Outcome;
use crate::agents::EndpointRecord;
use crate::ids::{AgentId, UserId};
use crate::rbac::{Groups, Permission, Restriction, Scopes, Subject, SubjectKind};
use crate::state::{AppState, Inner};
use crate::store::{Store, sql};

struct Site {
    st: AppState,
    _dir: tempfile::TempDir,
    _lite: Option<tempfile::TempDir>,
}

async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::validate(crate::config::RawConfig {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        let blobs = crate::blobs::open(&crate::config::BlobsConfig::Local, dir.path())
            .await
            .unwrap();
        let st = AppState::new(Inner {
            db,
            config,
            origins: vec!["https://localhost".into()],
            fingerprint: String::new(),
            portal_origin: None,
            blobs,
            keys: crate::keys::Keyring::open(dir.path()).unwrap(),
            gateway: crate::ids::GatewayId::generate(),
            agents: crate::agents::directory::single_node(),
            lease: std::sync::Arc::new(crate::lease::LocalLease),
            sessions: super::LiveSessions::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            login_limiter: crate::identity::login_rate_limiter(),
            support_limits: crate::support::Limits::default(),
            support_hub: Default::default(),
            epm: Default::default(),
            key_sweep: std::sync::Arc::default(),
            access_wake: std::sync::Arc::default(),
            endpoint_list: Default::default(),
            analytics: Default::default(),
            webhooks: Default::default(),
        });
        out.push(Site {
            st,
            _dir: dir,
            _lite: lite,
        });
    }
    out
}

fn technician() -> Subject {
    Subject {
        name: "tech".into(),
        kind: SubjectKind::User(UserId("usr_tech".into())),
        role: "technician".into(),
        permissions: [
            Permission::View,
            Permission::DesktopView,
            Permission::DesktopControl,
        ]
        .into_iter()
        .collect(),
        groups: Groups::All,
        scopes: Scopes::FULL,
        restriction: Restriction::None,
        approvals: Default::default(),
    }
}

fn endpoint(group: &str) -> EndpointRecord {
    EndpointRecord {
        id: AgentId("ep_desk".into()),
        name: "desk-1".into(),
        group: group.into(),
        public_key: Vec::new(),
        details: Default::default(),
        enrolled_at: 0,
        last_seen: None,
        revoked: false,
        conflict: None,
        target: None,
    }
}

/// Connects a stand-in agent for `ep`: it hands the first `Open` it gets
/// to the test and then runs `answer` on the stream.
fn stand_in_agent<F, Fut>(
    st: &AppState,
    ep: &EndpointRecord,
    answer: F,
) -> oneshot::Receiver<SessionRequest>
where
    F: FnOnce(MsgStream<jumpgate_net::mux::MuxStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (a, b) = tokio::io::duplex(1 << 20);
    let (gw, _gev, gd) = mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
    let (_agent, mut aev, ad) = mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
    tokio::spawn(gd);
    tokio::spawn(ad);
    st.agents
        .local()
        .insert(ep.id.clone(), gw, "127.0.0.1:1".parse().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        // Keeps the agent's mux alive while the stream is served.
        let _agent = _agent;
        while let Some(ev) = aev.recv().await {
            if let MuxEvent::Stream(s) = ev {
                let mut s = MsgStream::new(s);
                let Ok(Some(SessionMsg::Open(req))) = s.read_msg().await else {
                    return;
                };
                let _ = tx.send(req);
                answer(s).await;
                return;
            }
        }
    });
    rx
}

/// What the technician asks for: it claims a consent mode and a name of
/// its own, which the gateway replaces.
fn open_request(control: bool, clipboard: bool) -> SessionRequest {
    SessionRequest::Desktop {
        control,
        clipboard,
        monitor: None,
        consent: ConsentMode::None,
        technician: "someone else".into(),
        codecs: None,
    }
}

/// Runs one session as the technician: returns what it received and the
/// session's outcome. `up` is what it sends after the open exchange.
async fn run_session(
    st: &AppState,
    ep: &EndpointRecord,
    control: bool,
    up: Vec<SessionMsg>,
) -> (Vec<SessionMsg>, Outcome) {
    run_session_with(st, ep, open_request(control, false), up).await
}

/// The technician's side of a desktop session opened through the session
/// service (authorized as the test technician), and the session's task.
async fn start(
    st: &AppState,
    ep: &EndpointRecord,
    request: SessionRequest,
) -> (
    MsgStream<tokio::io::DuplexStream>,
    tokio::task::JoinHandle<Outcome>,
) {
    let service = SessionService::new(st.clone());
    let ticket = service
        .authorize(
            &technician(),
            ep,
            SessionKind::Desktop,
            crate::identity::Credential::of("jgt_test"),
        )
        .await
        .unwrap();
    let (gw_side, tech_side) = tokio::io::duplex(1 << 20);
    let session = tokio::spawn(async move {
        service
            .open(ticket, request, Technician::Framed(MsgStream::new(gw_side)))
            .await
    });
    (MsgStream::new(tech_side), session)
}

async fn run_session_with(
    st: &AppState,
    ep: &EndpointRecord,
    request: SessionRequest,
    up: Vec<SessionMsg>,
) -> (Vec<SessionMsg>, Outcome) {
    let (mut tech, session) = start(st, ep, request).await;
    let mut got = Vec::new();
    let deadline = Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout(deadline, tech.read_msg())
            .await
            .expect("the session hung")
            .unwrap();
        let Some(m) = m else { break };
        let end = matches!(m, SessionMsg::Refused(_));
        let accepted = matches!(m, SessionMsg::Accepted(_));
        got.push(m);
        if end {
            break;
        }
        if accepted {
            for m in &up {
                tech.write_msg(m).await.unwrap();
            }
            tech.get_mut().shutdown().await.unwrap();
        }
    }
    let outcome = tokio::time::timeout(deadline, session)
        .await
        .expect("the session never ended")
        .unwrap();
    (got, outcome)
}

async fn events(db: &Store, action_like: &str) -> Vec<(String, String, String)> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT action, outcome, detail FROM events WHERE action LIKE $1 ORDER BY id"
    )
    .bind(action_like)
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

/// The agent's `Open` carries the endpoint group's consent mode and the
/// technician's own name, whatever the technician claimed; a consent
/// denial reaches the technician with its code, and is the session's
/// `refused: …` outcome in the session-close entry.
#[tokio::test]
async fn the_groups_consent_mode_reaches_the_agent_and_a_denial_the_technician() {
    for s in sites("desktop_consent_denied").await {
        let st = &s.st;
        let e = st.db.engine();
        crate::agents::groups::create(&st.db, "kiosks", "", ConsentMode::Notify, "admin")
            .await
            .unwrap();
        let ep = endpoint("kiosks");
        let opened = stand_in_agent(st, &ep, |mut s| async move {
            let refusal = Refusal {
                code: RefusalCode::ConsentDenied,
                message: "the user at the endpoint denied the session".into(),
            };
            let _ = s.write_msg(&SessionMsg::Refused(refusal)).await;
            let _ = s.get_mut().shutdown().await;
        });
        let (got, outcome) = run_session(st, &ep, false, Vec::new()).await;
        match opened.await.unwrap() {
            SessionRequest::Desktop {
                consent,
                technician,
                control,
                ..
            } => {
                assert_eq!(consent, ConsentMode::Notify, "{e}");
                assert_eq!(technician, "tech");
                assert!(!control);
            }
            other => panic!("{other:?}"),
        }
        match got.as_slice() {
            [SessionMsg::Refused(r)] => {
                assert_eq!(r.code, RefusalCode::ConsentDenied, "{e}");
                assert_eq!(r.message, "the user at the endpoint denied the session");
            }
            other => panic!("{e}: {other:?}"),
        }
        assert_eq!(
            outcome.to_string(),
            "refused: the user at the endpoint denied the session"
        );
        let closes = events(&st.db, "session-close:desktop").await;
        assert_eq!(closes.len(), 1, "{e}: {closes:?}");
        assert_eq!(
            closes[0].1,
            "refused: the user at the endpoint denied the session"
        );
    }
}

/// A view-only session that the agent accepts: its screen reaches the
/// technician, the technician's input does not reach the agent, the
/// agent's control state is an audit entry, the session-close entry
/// counts the video bytes, and the recording is a desktop one of the
/// first screen size. A change of the group's mode (`none`)
/// is what the next session's `Open` carries.
#[tokio::test]
async fn an_accepted_view_only_session_relays_the_screen_records_and_audits() {
    for s in sites("desktop_accepted").await {
        let st = &s.st;
        let e = st.db.engine();
        crate::agents::groups::create(&st.db, "servers", "", ConsentMode::Prompt, "admin")
            .await
            .unwrap();
        crate::agents::groups::update(&st.db, "servers", None, Some(ConsentMode::None), "admin")
            .await
            .unwrap();
        let ep = endpoint("servers");
        let packet = Bytes::from_static(b"\x00a-codec-packet");
        let video = packet.clone();
        let (from_tech_tx, from_tech) = oneshot::channel::<Vec<SessionMsg>>();
        let opened = stand_in_agent(st, &ep, move |mut s| async move {
            s.write_msg(&SessionMsg::Accepted(Accepted::default()))
                .await
                .unwrap();
            let screen = [
                SessionMsg::ControlState(ControlState {
                    input: InputState::ViewOnly,
                    message: "unattended: no consent asked".into(),
                    note: None,
                }),
                SessionMsg::DesktopInfo(DesktopInfo {
                    width: 640,
                    height: 480,
                    monitors: Vec::new(),
                    monitor: None,
                    codec: "jumpgate-1".into(),
                }),
                SessionMsg::Video(Video {
                    seq: 1,
                    data: video,
                }),
            ];
            for m in &screen {
                s.write_msg(m).await.unwrap();
            }
            // Everything the technician's side sends, until it ends.
            let mut seen = Vec::new();
            while let Ok(Some(m)) = s.read_msg().await {
                seen.push(m);
            }
            let _ = from_tech_tx.send(seen);
            let _ = s.get_mut().shutdown().await;
        });
        let up = vec![
            SessionMsg::Key(Key {
                keysym: 0x61,
                down: true,
            }),
            SessionMsg::Ping(7),
        ];
        let (got, outcome) = run_session(st, &ep, false, up).await;
        assert!(matches!(outcome, Outcome::Ok), "{e}: {outcome}");
        let SessionRequest::Desktop { consent, .. } = opened.await.unwrap() else {
            panic!("not a desktop open")
        };
        assert_eq!(consent, ConsentMode::None, "{e}");
        let names: Vec<&str> = got.iter().map(SessionMsg::name).collect();
        assert_eq!(
            names,
            ["accepted", "control-state", "desktop-info", "video"],
            "{e}"
        );
        // View-only: the key was dropped at the gateway, the ping passed.
        assert_eq!(from_tech.await.unwrap(), [SessionMsg::Ping(7)], "{e}");

        let control = events(&st.db, "desktop-control").await;
        assert_eq!(control.len(), 1, "{e}: {control:?}");
        assert!(
            control[0]
                .2
                .ends_with("input=view-only message=unattended: no consent asked"),
            "{control:?}"
        );
        let closes = events(&st.db, "session-close:desktop").await;
        assert_eq!(closes.len(), 1, "{e}");
        assert_eq!(closes[0].1, "ok");
        assert!(
            closes[0].2.contains(&format!(
                " dropped_input=1 video_bytes={} clipboard=0",
                packet.len()
            )),
            "{closes:?}"
        );
        st.tasks.close();
        st.tasks.wait().await;
        let recs = crate::recordings::list(
            &st.db,
            &crate::recordings::Filter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(recs.len(), 1, "{e}");
        assert_eq!(recs[0].kind, jumpgate_api_types::RecordingKind::Desktop);
        assert_eq!((recs[0].width, recs[0].height), (640, 480));
        assert!(recs[0].ended_at.is_some());
    }
}

/// Clipboard text crosses the gateway only on sessions opened with
/// clipboard rights, in both directions, and each transfer that crosses is
/// a `desktop-clipboard` entry with its size and direction, never its text.
/// Without the rights the endpoint's clipboard (which the agent should not
/// send) is dropped at the gateway too, like the technician's, and
/// counted. The positive control is the same session with the rights.
#[tokio::test]
async fn clipboard_text_crosses_only_with_clipboard_rights_both_ways_and_is_audited_by_size() {
    const FROM_TECH: &str = "päss wörd from the technician €";
    const FROM_ENDPOINT: &str = "copied at the endpoint: Grüße ½";
    for s in sites("desktop_clipboard").await {
        let st = &s.st;
        let e = st.db.engine();
        crate::agents::groups::create(&st.db, "desks", "", ConsentMode::None, "admin")
            .await
            .unwrap();
        let ep = endpoint("desks");
        for clipboard in [true, false] {
            let (from_tech_tx, from_tech) = oneshot::channel::<Vec<SessionMsg>>();
            let _opened = stand_in_agent(st, &ep, move |mut s| async move {
                s.write_msg(&SessionMsg::Accepted(Accepted::default()))
                    .await
                    .unwrap();
                s.write_msg(&SessionMsg::ControlState(ControlState {
                    input: InputState::Allowed,
                    message: "unattended: no consent asked".into(),
                    note: None,
                }))
                .await
                .unwrap();
                // Sent whatever the session allows: the gateway decides.
                s.write_msg(&SessionMsg::Clipboard(FROM_ENDPOINT.into()))
                    .await
                    .unwrap();
                s.write_msg(&SessionMsg::Pong(1)).await.unwrap();
                let mut seen = Vec::new();
                while let Ok(Some(m)) = s.read_msg().await {
                    seen.push(m);
                }
                let _ = from_tech_tx.send(seen);
                let _ = s.get_mut().shutdown().await;
            });
            let up = vec![SessionMsg::Clipboard(FROM_TECH.into()), SessionMsg::Ping(2)];
            let request = open_request(true, clipboard);
            let (got, outcome) = run_session_with(st, &ep, request, up).await;
            assert!(matches!(outcome, Outcome::Ok), "{e}: {outcome}");
            let from_tech = from_tech.await.unwrap();
            let clip_entries = events(&st.db, "desktop-clipboard").await;
            let closes = events(&st.db, "session-close:desktop").await;
            let close = &closes.last().unwrap().2;
            if clipboard {
                assert!(
                    got.contains(&SessionMsg::Clipboard(FROM_ENDPOINT.into())),
                    "{e}: {got:?}"
                );
                assert_eq!(
                    from_tech,
                    [SessionMsg::Clipboard(FROM_TECH.into()), SessionMsg::Ping(2)],
                    "{e}"
                );
                let details: Vec<&str> = clip_entries
                    .iter()
                    .map(|(_, _, d)| d.split_once(' ').unwrap().1)
                    .collect();
                let mut details = details;
                details.sort_unstable();
                let want_endpoint = format!("from=endpoint bytes={}", FROM_ENDPOINT.len());
                let want_tech = format!("from=technician bytes={}", FROM_TECH.len());
                assert_eq!(details, [want_endpoint, want_tech], "{e}");
                assert!(close.contains(" clipboard=2"), "{e}: {close}");
                assert!(!close.contains("dropped"), "{e}: {close}");
            } else {
                assert!(
                    !got.iter().any(|m| matches!(m, SessionMsg::Clipboard(_))),
                    "{e}: the endpoint's clipboard reached the technician: {got:?}"
                );
                // What was sent beside it passed.
                assert!(got.contains(&SessionMsg::Pong(1)), "{e}: {got:?}");
                assert_eq!(from_tech, [SessionMsg::Ping(2)], "{e}");
                assert_eq!(
                    clip_entries.len(),
                    2,
                    "{e}: no new entries: {clip_entries:?}"
                );
                assert!(
                    close.contains(" dropped_input=1 dropped_from_endpoint=1")
                        && close.contains(" clipboard=0"),
                    "{e}: {close}"
                );
            }
            // Never the text, in any entry.
            let mut c = st.db.conn().await.unwrap();
            let all: Vec<(String,)> = sql!(c, |c| sqlx::query_as(
                "SELECT COALESCE(detail, '') FROM events"
            )
            .fetch_all(&mut *c)
            .await)
            .unwrap();
            for (d,) in all {
                assert!(
                    !d.contains("wörd") && !d.contains("Grüße"),
                    "{e}: clipboard text in the log: {d}"
                );
            }
        }
    }
}

/// Opens a desktop session as the technician and hands back its side
/// (after `Accepted`) and the running session.
async fn open_live(
    st: &AppState,
    ep: &EndpointRecord,
    request: SessionRequest,
) -> (
    MsgStream<tokio::io::DuplexStream>,
    tokio::task::JoinHandle<Outcome>,
) {
    let (mut tech, session) = start(st, ep, request).await;
    let first = read_within(&mut tech).await;
    assert!(matches!(first, Some(SessionMsg::Accepted(_))), "{first:?}");
    (tech, session)
}

async fn read_within<S: tokio::io::AsyncRead + Unpin>(s: &mut MsgStream<S>) -> Option<SessionMsg> {
    tokio::time::timeout(Duration::from_secs(30), s.read_msg())
        .await
        .expect("the session hung")
        .unwrap()
}

/// Reads what the technician gets until a control state with `input`
/// (which it returns).
async fn until_state(
    tech: &mut MsgStream<tokio::io::DuplexStream>,
    input: InputState,
) -> ControlState {
    loop {
        match read_within(tech).await {
            Some(SessionMsg::ControlState(c)) if c.input == input => return c,
            Some(_) => {}
            None => panic!("the session ended before {input:?}"),
        }
    }
}

/// Once the person at the endpoint takes back control, the gateway itself
/// drops the technician's clipboard and input (not relayed, not audited as
/// a transfer, counted in the session-close entry), and relays them again
/// once control is given back (the positive control). The viewer's codecs
/// reach the agent as offered.
#[tokio::test]
async fn after_take_back_the_gateway_drops_technician_clipboard_and_input_until_control_returns() {
    const WHILE_TAKEN: &str = "clipboard while the user holds control";
    const AFTER: &str = "clipboard after control came back";
    for s in sites("desktop_take_back").await {
        let st = &s.st;
        let e = st.db.engine();
        crate::agents::groups::create(&st.db, "desks", "", ConsentMode::Notify, "admin")
            .await
            .unwrap();
        let ep = endpoint("desks");
        let (from_tech_tx, from_tech) = oneshot::channel::<Vec<SessionMsg>>();
        let opened = stand_in_agent(st, &ep, move |mut s| async move {
            s.write_msg(&SessionMsg::Accepted(Accepted::default()))
                .await
                .unwrap();
            for c in [
                ControlState::new(InputState::Allowed, "the user was notified"),
                ControlState::new(InputState::TakenBack, "the user took back control"),
            ] {
                s.write_msg(&SessionMsg::ControlState(c)).await.unwrap();
            }
            let mut seen = Vec::new();
            loop {
                let m = read_within(&mut s).await;
                let Some(m) = m else { break };
                if m == SessionMsg::Ping(1) {
                    let back = ControlState::new(InputState::Allowed, "the user gave control back");
                    s.write_msg(&SessionMsg::ControlState(back)).await.unwrap();
                }
                seen.push(m);
            }
            let _ = from_tech_tx.send(seen);
            let _ = s.get_mut().shutdown().await;
        });
        let mut request = open_request(true, true);
        if let SessionRequest::Desktop { codecs, .. } = &mut request {
            *codecs = Some(vec!["jumpgate-2".into(), "jumpgate-1".into()]);
        }
        let (mut tech, session) = open_live(st, &ep, request).await;
        until_state(&mut tech, InputState::TakenBack).await;
        let key = |down| SessionMsg::Key(Key { keysym: 0x61, down });
        for m in [
            SessionMsg::Clipboard(WHILE_TAKEN.into()),
            key(true),
            SessionMsg::InputReset,
            SessionMsg::Ping(1),
        ] {
            tech.write_msg(&m).await.unwrap();
        }
        until_state(&mut tech, InputState::Allowed).await;
        for m in [
            SessionMsg::Clipboard(AFTER.into()),
            key(false),
            SessionMsg::Ping(2),
        ] {
            tech.write_msg(&m).await.unwrap();
        }
        tech.get_mut().shutdown().await.unwrap();
        while read_within(&mut tech).await.is_some() {}
        let outcome = session.await.unwrap();
        assert!(matches!(outcome, Outcome::Ok), "{e}: {outcome}");
        let SessionRequest::Desktop { codecs, .. } = opened.await.unwrap() else {
            panic!("not a desktop open")
        };
        assert_eq!(
            codecs,
            Some(vec!["jumpgate-2".to_owned(), "jumpgate-1".to_owned()])
        );
        // Releasing what is held always passes; the rest only with control.
        assert_eq!(
            from_tech.await.unwrap(),
            [
                SessionMsg::InputReset,
                SessionMsg::Ping(1),
                SessionMsg::Clipboard(AFTER.into()),
                key(false),
                SessionMsg::Ping(2),
            ],
            "{e}"
        );
        let clip = events(&st.db, "desktop-clipboard").await;
        assert_eq!(clip.len(), 1, "{e}: {clip:?}");
        assert!(
            clip[0]
                .2
                .ends_with(&format!("from=technician bytes={}", AFTER.len())),
            "{e}: {clip:?}"
        );
        let closes = events(&st.db, "session-close:desktop").await;
        assert_eq!(closes.len(), 1, "{e}");
        assert!(
            closes[0].2.contains(" dropped_input=2 ") && closes[0].2.contains(" clipboard=1"),
            "{e}: {closes:?}"
        );
    }
}

/// An endpoint that ends the session because its display went away (the
/// `Ended` state noted as a failure) makes the session's outcome an
/// endpoint-side error with its words; the person at the endpoint ending
/// it is an `ok` session (the positive control).
#[tokio::test]
async fn a_display_gone_at_the_endpoint_is_an_endpoint_side_error() {
    const GONE: &str = "the endpoint's display went away";
    for s in sites("desktop_display_gone").await {
        let st = &s.st;
        let e = st.db.engine();
        crate::agents::groups::create(&st.db, "desks", "", ConsentMode::None, "admin")
            .await
            .unwrap();
        let ep = endpoint("desks");
        for failed in [true, false] {
            let end = ControlState {
                input: InputState::Ended,
                message: if failed {
                    GONE.into()
                } else {
                    "the user ended the session".into()
                },
                note: failed.then_some(jumpgate_proto::desktop::ControlNote::Failed),
            };
            let sent = end.clone();
            let _opened = stand_in_agent(st, &ep, move |mut s| async move {
                s.write_msg(&SessionMsg::Accepted(Accepted::default()))
                    .await
                    .unwrap();
                let allowed = ControlState::new(InputState::Allowed, "unattended");
                s.write_msg(&SessionMsg::ControlState(allowed))
                    .await
                    .unwrap();
                s.write_msg(&SessionMsg::ControlState(sent)).await.unwrap();
                let _ = s.get_mut().shutdown().await;
                while let Ok(Some(_)) = s.read_msg().await {}
            });
            let (got, outcome) = run_session(st, &ep, true, Vec::new()).await;
            assert_eq!(
                got.last(),
                Some(&SessionMsg::ControlState(end)),
                "{e}: the technician is told"
            );
            let want = if failed {
                format!("error: endpoint side: {GONE}")
            } else {
                "ok".to_owned()
            };
            assert_eq!(outcome.to_string(), want, "{e}");
            let closes = events(&st.db, "session-close:desktop").await;
            assert_eq!(closes.last().unwrap().1, want, "{e}: {closes:?}");
        }
    }
}
