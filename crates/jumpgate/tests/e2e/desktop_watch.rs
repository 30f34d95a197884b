//! Watching live desktop sessions end to end (real gateway, real agent or
//! customer client on a real Xvfb display): a supervisor watches an
//! administrator's desktop session and reads back the very screen drawn on
//! the endpoint (then a change, live), while nothing the supervisor sends
//! reaches the endpoint; a participant of a support session drives the
//! owner's desktop on the customer's display only while the customer
//! allows `control` (an observer never); the console's watch mode in
//! chromium.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jumpgate_codec::{Canvas, Packet};
use jumpgate_net::session::MsgStream;
use jumpgate_proto::desktop::{ControlState, FrameAck, InputState, Pointer};
use jumpgate_proto::session::{ConsentMode, SessionKind, SessionMsg, SessionRequest};
use jumpgate_test_support::assist::{click_when, session_until};
use jumpgate_test_support::xvfb::Xvfb;
use tokio::sync::mpsc;

use crate::support::*;

/// A desktop session's opening request, every codec offered.
fn desktop_request(control: bool) -> SessionMsg {
    SessionMsg::Open(SessionRequest::Desktop {
        control,
        clipboard: false,
        monitor: None,
        consent: ConsentMode::None,
        technician: String::new(),
        codecs: Some(
            jumpgate_proto::desktop::codec::ALL
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        ),
    })
}

/// The owner's viewer: reads everything and acknowledges every packet, in
/// a task of its own (as a console does), so the session never stalls;
/// sends what it is given.
struct Owner {
    tx: mpsc::UnboundedSender<SessionMsg>,
    states: Arc<Mutex<Vec<ControlState>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Owner {
    async fn run(io: jumpgate_client::SessionIo, control: bool) -> Self {
        let mut io = MsgStream::new(io);
        io.write_msg(&desktop_request(control)).await.unwrap();
        let first = tokio::time::timeout(WAIT, io.read_msg())
            .await
            .expect("an answer")
            .unwrap();
        assert!(matches!(first, Some(SessionMsg::Accepted(_))), "{first:?}");
        let (tx, mut rx) = mpsc::unbounded_channel::<SessionMsg>();
        let states = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&states);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => io.write_msg(&m).await.unwrap(),
                        None => {
                            let _ = io.shutdown().await;
                            while let Ok(Some(_)) = io.read_msg().await {}
                            return;
                        }
                    },
                    m = io.read_msg() => match m {
                        Ok(Some(SessionMsg::Video(v))) => {
                            io.write_msg(&SessionMsg::FrameAck(FrameAck { seq: v.seq }))
                                .await
                                .unwrap();
                        }
                        Ok(Some(SessionMsg::ControlState(c))) => seen.lock().unwrap().push(c),
                        Ok(Some(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        Self { tx, states, task }
    }

    fn send(&self, m: SessionMsg) {
        self.tx.send(m).unwrap();
    }

    fn input(&self) -> Option<InputState> {
        self.states.lock().unwrap().last().map(|s| s.input)
    }

    async fn close(self) {
        drop(self.tx);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the owner's session ended")
            .unwrap();
    }
}

/// A watcher: draws what it is sent on a canvas, never acknowledges.
struct Watcher {
    io: MsgStream<jumpgate_client::SessionIo>,
    canvas: Canvas,
    infos: usize,
    pongs: Vec<u64>,
    closed: Option<String>,
    ping: u64,
}

impl Watcher {
    async fn start(io: jumpgate_client::SessionIo) -> Self {
        let mut io = MsgStream::new(io);
        let first = tokio::time::timeout(WAIT, io.read_msg())
            .await
            .expect("the watch's first message")
            .unwrap();
        assert!(matches!(first, Some(SessionMsg::Accepted(_))), "{first:?}");
        Self {
            io,
            canvas: Canvas::new(),
            infos: 0,
            pongs: Vec::new(),
            closed: None,
            ping: 0,
        }
    }

    /// Reads and draws until `done` holds.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            assert!(self.closed.is_none(), "the watch ended before {what}");
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = tokio::time::timeout(left, self.io.read_msg())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("a session message");
            match msg {
                Some(SessionMsg::Video(v)) => {
                    let p = Packet::parse(&v.data).expect("a screen packet");
                    assert!(
                        self.canvas.width() > 0 || matches!(p, Packet::StreamStart { .. }),
                        "a watcher's first packet starts a stream"
                    );
                    self.canvas.apply(&p).expect("a packet the canvas draws");
                }
                Some(SessionMsg::DesktopInfo(_)) => self.infos += 1,
                Some(SessionMsg::Pong(n)) => self.pongs.push(n),
                Some(SessionMsg::Closed { reason }) => self.closed = Some(reason),
                Some(_) => {}
                None => self.closed = Some("end of stream".into()),
            }
        }
    }

    async fn send(&mut self, m: SessionMsg) {
        self.io.write_msg(&m).await.unwrap();
    }

    /// Sends a ping and reads until its pong: everything sent before it
    /// was handled by the gateway.
    async fn round_trip(&mut self) {
        self.ping += 1;
        let n = self.ping;
        self.send(SessionMsg::Ping(n)).await;
        self.until("the pong", |w| w.pongs.contains(&n)).await;
    }

    /// The canvas's colour (0xRRGGBB) at (x, y).
    fn pixel(&self, x: u32, y: u32) -> u32 {
        let at = ((y * self.canvas.width() + x) * 4) as usize;
        let p = &self.canvas.pixels()[at..at + 4];
        u32::from(p[2]) << 16 | u32::from(p[1]) << 8 | u32::from(p[0])
    }
}

/// RGB pixels of a PNG file jg wrote (8-bit RGB).
fn png_rgb(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("PNG written"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, buf)
}

/// Where X's pointer is.
fn pointer_at(x: &Xvfb) -> (i32, i32) {
    let out = x.output("xdotool", &["getmouselocation"]);
    let field = |k: &str| {
        out.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {out:?}"))
    };
    (field("x:"), field("y:"))
}

/// Polls X until the pointer is at `want`.
fn pointer_reaches(x: &Xvfb, want: (i32, i32)) {
    tokio::task::block_in_place(|| {
        x.poll(&format!("the pointer at {want:?}"), || {
            (pointer_at(x) == want).then_some(())
        });
    });
}

/// The id of the live session on `endpoint`, as an administrator sees it.
async fn live_session_on(site: &Site, endpoint: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--active", "--json"]).await)).unwrap();
        if let Some(id) = rows
            .as_array()
            .and_then(|a| a.iter().find(|r| r["endpoint"] == endpoint))
            .and_then(|r| r["id"].as_str())
        {
            return id.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no live session on {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(actor, outcome, detail)` of the audit entries with `action` about
/// `target`, newest first, once there are `n` of them.
async fn entries(
    site: &Site,
    action: &str,
    n: usize,
    keep: impl Fn(&jumpgate_api_types::SecurityEvent) -> bool,
) -> Vec<(String, String, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got: Vec<_> = site
            .security_events()
            .await
            .into_iter()
            .filter(|e| e.action == action && keep(e))
            .map(|e| (e.actor, e.outcome, e.detail))
            .collect();
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SAM_PASSWORD: &str = "watches-over-sessions-3";

/// A supervisor `sam` (group `default`), logged in with `jg`; their home.
async fn supervisor(site: &Site) -> std::path::PathBuf {
    site.supervisor("sam", SAM_PASSWORD).await
}

/// An endpoint `desk` on a 640×480 Xvfb showing a plaid, online, and the
/// administrator's live desktop session on it (with control).
async fn watched_desk(site: &Site) -> (Xvfb, Agent, Owner, String) {
    ok(&site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await);
    let x = tokio::task::block_in_place(|| {
        let x = Xvfb::sized(640, 480);
        x.run(
            "xsetroot",
            &["-mod", "3", "5", "-fg", "#e0301f", "-bg", "#1f60d0"],
        );
        x
    });
    let token = site.enroll_token(&[]).await;
    let agent = site.spawn_agent("desk", Some(&token), &["--display", &x.display]);
    site.wait_online("desk", true).await;
    let admin = site
        .api_client()
        .with_token(site.saved_token(&site.jg_home()));
    let owner = Owner::run(
        admin.connect("desk", SessionKind::Desktop).await.unwrap(),
        true,
    )
    .await;
    let id = live_session_on(site, "desk").await;
    (x, agent, owner, id)
}

/// Runs `tests/browser/watch.mjs` as `user` on the live session `id`
/// (`drive`: as a participant of that support session, joining from its
/// page into the co-driving viewer), clicking at `click`; fails with
/// everything it printed when it fails.
async fn run_watch_browser(
    site: &Site,
    (user, password): (&str, &str),
    id: &str,
    pattern: &str,
    click: (i32, i32),
    shot: &str,
    drive: Option<&str>,
) {
    let chromium = crate::web::browser_prerequisites();
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg(crate::web::browser_dir().join("watch.mjs"))
            .current_dir(crate::web::browser_dir())
            .env("JG_URL", site.gateway.url())
            .env("JG_USER", user)
            .env("JG_PASSWORD", password)
            .env("JG_SESSION", id)
            .env("JG_PATTERN", pattern)
            .env("JG_CLICK", format!("{},{}", click.0, click.1))
            .env("JG_SHOT", shot)
            .env("JG_DRIVE", if drive.is_some() { "1" } else { "" })
            .env("JG_SUPPORT", drive.unwrap_or_default())
            .env(
                "JG_ARTIFACTS",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/browser-artifacts/watch"),
            )
            .env("JG_CHROMIUM", &chromium)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test hung")
    .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("WATCH-TEST PASSED"), "{report}");
}

/// The console's watch mode in chromium (`tests/browser/watch.mjs`): the
/// supervisor finds the live desktop session on Sessions, clicks Watch, and
/// sees the "Watching" label and the endpoint's plaid on the canvas; their
/// click on the screen does not reach the endpoint (the owner's pointer,
/// the positive control, does). Screenshot: /work/shots/desktop-watch.png
/// (or `JG_WATCH_SHOT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_a_desktop_in_the_console_read_only() {
    crate::web::browser_prerequisites();
    let site = Site::start().await;
    supervisor(&site).await;
    let (x, _agent, owner, id) = watched_desk(&site).await;
    let points = [(0, 0), (1, 1), (3, 5), (101, 61), (600, 400)];
    let pattern: Vec<String> = tokio::task::block_in_place(|| {
        points
            .iter()
            .map(|&(px, py)| format!("{px},{py},{:06x}", x.pixel(px, py)))
            .collect()
    });
    let shot =
        std::env::var("JG_WATCH_SHOT").unwrap_or_else(|_| "/work/shots/desktop-watch.png".into());
    let click = (321, 123);
    run_watch_browser(
        &site,
        ("sam", SAM_PASSWORD),
        &id,
        &pattern.join(";"),
        click,
        &shot,
        None,
    )
    .await;
    assert_ne!(
        tokio::task::block_in_place(|| pointer_at(&x)),
        click,
        "the watcher's click reached the endpoint"
    );
    owner.send(SessionMsg::Pointer(Pointer {
        x: 12,
        y: 34,
        buttons: 0,
    }));
    pointer_reaches(&x, (12, 34));
    owner.close().await;
    let watch = entries(&site, "session-watch", 2, |e| e.target == id).await;
    assert!(
        watch
            .iter()
            .any(|(a, o, d)| a == "sam" && o == "started" && d.contains("as=supervisor")),
        "{watch:?}"
    );
}

const PLAID_FG: u32 = 0xe0301f;
const PLAID_BG: u32 = 0x1f60d0;
const CHANGED: u32 = 0x30c070;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_a_live_desktop_and_nothing_they_send_reaches_it() {
    let site = Site::start().await;
    ok(&site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await);
    let x = tokio::task::block_in_place(|| {
        let x = Xvfb::sized(320, 240);
        x.run(
            "xsetroot",
            &["-mod", "3", "5", "-fg", "#e0301f", "-bg", "#1f60d0"],
        );
        x
    });
    let token = site.enroll_token(&[]).await;
    let _agent = site.spawn_agent("desk", Some(&token), &["--display", &x.display]);
    site.wait_online("desk", true).await;
    let sam = supervisor(&site).await;
    let tina = site.technician("tina", "helps-daily-7").await;

    // The administrator's live desktop session, with control.
    let admin = site
        .api_client()
        .with_token(site.saved_token(&site.jg_home()));
    let owner = Owner::run(
        admin.connect("desk", SessionKind::Desktop).await.unwrap(),
        true,
    )
    .await;
    let id = live_session_on(&site, "desk").await;

    // Not for a technician without monitor-sessions; not for jg.
    let tina_api = site.api_client().with_token(site.saved_token(&tina));
    match tina_api.watch_session(&id).await {
        Err(jumpgate_client::ClientError::Api { status: 403, .. }) => {}
        Err(e) => panic!("expected 403: {e}"),
        Ok(_) => panic!("a technician watched without monitor-sessions"),
    }
    let out = site.jg_in(&sam, &["watch", &id]).await;
    let err = fails(&out);
    assert!(
        err.contains("desktop session") && err.contains("console"),
        "{err}"
    );

    // The supervisor joins late: the screen comes with the next stream
    // start, and it is the endpoint's, pixel for pixel where it was drawn.
    let sam_api = site.api_client().with_token(site.saved_token(&sam));
    let mut w = Watcher::start(sam_api.watch_session(&id).await.unwrap()).await;
    w.until("the screen as drawn", |w| {
        w.canvas.width() == 320
            && w.infos > 0
            && (0..240).step_by(3).all(|y| {
                (0..320).step_by(7).all(|x| {
                    // The plaid: xsetroot -mod 3 5 (a vertical line every
                    // third column, a horizontal one every fifth row).
                    let p = w.pixel(x, y);
                    p == PLAID_FG || p == PLAID_BG
                })
            })
    })
    .await;
    for (px, py) in [(0, 0), (1, 1), (3, 5), (100, 61)] {
        let want = tokio::task::block_in_place(|| x.pixel(px, py));
        assert_eq!(w.pixel(px as u32, py as u32), want, "at ({px}, {py})");
    }
    // Live: a change on the endpoint reaches the watcher.
    tokio::task::block_in_place(|| x.run("xsetroot", &["-solid", "#30c070"]));
    w.until("the change", |w| {
        w.pixel(5, 5) == CHANGED && w.pixel(300, 200) == CHANGED
    })
    .await;
    // jg takes one picture of it, as a watcher.
    let shot = site.dir.path().join("watched.png");
    let out = site
        .jg_in(
            &sam,
            &["watch", &id, "--screenshot", shot.to_str().unwrap()],
        )
        .await;
    ok(&out);
    let (sw, sh, rgb) = png_rgb(&shot);
    assert_eq!((sw, sh), (320, 240));
    let changed = [(CHANGED >> 16) as u8, (CHANGED >> 8) as u8, CHANGED as u8];
    assert!(
        rgb.chunks_exact(3).all(|p| p == changed),
        "the screenshot is the changed screen"
    );

    // The watcher's pointer goes nowhere (the gateway answers its ping:
    // by then its input was handled); the owner's does (the positive
    // control); the watcher's again nowhere.
    w.send(SessionMsg::Pointer(Pointer {
        x: 77,
        y: 88,
        buttons: 0,
    }))
    .await;
    w.send(SessionMsg::FrameAck(FrameAck { seq: 1 })).await;
    w.round_trip().await;
    assert_ne!(tokio::task::block_in_place(|| pointer_at(&x)), (77, 88));
    assert_eq!(owner.input(), Some(InputState::Allowed));
    owner.send(SessionMsg::Pointer(Pointer {
        x: 10,
        y: 20,
        buttons: 0,
    }));
    pointer_reaches(&x, (10, 20));
    w.send(SessionMsg::Pointer(Pointer {
        x: 77,
        y: 88,
        buttons: 0,
    }))
    .await;
    w.round_trip().await;
    owner.send(SessionMsg::Pointer(Pointer {
        x: 11,
        y: 21,
        buttons: 0,
    }));
    pointer_reaches(&x, (11, 21));

    // The session ends; so does the watch, with the reason.
    owner.close().await;
    w.until("the end of the watch", |w| w.closed.is_some())
        .await;
    let reason = w.closed.clone().unwrap();
    assert!(reason.contains("ended"), "{reason}");
    // Three watches (jg's, refused; jg's screenshot; the one above), each
    // started and stopped; the last to stop is the one that saw the
    // session end.
    let watch = entries(&site, "session-watch", 6, |e| e.target == id).await;
    let mut seen: Vec<(&str, &str)> = watch
        .iter()
        .map(|(a, o, d)| {
            assert!(d.contains("as=supervisor"), "{d}");
            (a.as_str(), o.as_str())
        })
        .collect();
    assert_eq!(seen[0], ("sam", "stopped"), "{watch:?}");
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            ("sam", "started"),
            ("sam", "started"),
            ("sam", "started"),
            ("sam", "stopped"),
            ("sam", "stopped"),
            ("sam", "stopped")
        ]
    );
}

/// The customer asked for `right`: Allow clicked in their window.
async fn allow(
    site: &Site,
    home: &std::path::Path,
    x: &Xvfb,
    w: &str,
    api: &jumpgate_client::Client,
    id: &str,
    right: &str,
) {
    ok(&site.jg_in(home, &["support", "ask", id, right]).await);
    click_when(x, w, "allow");
    session_until(api, id, &format!("{right} granted"), |s| {
        s.granted.iter().any(|g| g == right)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_drives_the_owners_desktop_only_while_the_customer_allows_control() {
    use jumpgate_api_types::support as api;
    use std::os::unix::fs::PermissionsExt;
    assert!(
        jumpgate_test_support::xvfb::have_tools(),
        "the X tools are installed (scripts/test installs them)"
    );
    let x = tokio::task::block_in_place(Xvfb::start);
    let site = Site::start().await;
    let tina = site
        .technician_in_queue("tina", "helps-customers-daily-7", "helpdesk")
        .await;
    let bob = site.technician("bob", "also-helps-customers-9").await;
    let carol = site.technician("carol", "looks-over-shoulders-5").await;
    ok(&site
        .jg(&[
            "admin", "queues", "update", "helpdesk", "--member", "tina", "--member", "bob",
            "--member", "carol",
        ])
        .await);
    let tech = site.api_client().with_token(site.saved_token(&tina));
    let bob_api = site.api_client().with_token(site.saved_token(&bob));
    let carol_api = site.api_client().with_token(site.saved_token(&carol));

    // The customer's machine: the real client, downloaded from the portal.
    let home = tempfile::tempdir().unwrap();
    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Robin".into(),
            problem: "The mouse has a mind of its own".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let download = home.path().join("jumpgate-assist");
    anon.download_to(&dl.download, &download).await.unwrap();
    std::fs::set_permissions(&download, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _client = spawn_written(
        tokio::process::Command::new(&download)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DISPLAY", &x.display)
            .env("HOME", home.path())
            .env("TMPDIR", home.path())
            .env("USER", "robin")
            .current_dir(home.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true),
    )
    .await;
    // An X application on the customer's screen, away from the window,
    // saying what it is clicked with.
    let xev_out = home.path().join("xev.out");
    let mut xev = tokio::task::block_in_place(|| {
        x.spawn(
            "sh",
            &[
                "-c",
                &format!(
                    "exec xev -geometry 200x150+100+500 -event button > {}",
                    xev_out.display()
                ),
            ],
        )
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let rows = tech.support_sessions(None, None).await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.state == "waiting") {
            break r.id.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    session_until(&tech, &id, "online", |s| s.online).await;
    ok(&site.jg_in(&tina, &["support", "accept", &id]).await);
    ok(&site.jg_in(&tina, &["support", "invite", &id, "bob"]).await);
    ok(&site
        .jg_in(&tina, &["support", "invite", &id, "carol", "--observer"])
        .await);
    let w = tokio::task::block_in_place(|| x.window("^Jumpgate: remote support$"));
    allow(&site, &tina, &x, &w, &tech, &id, "view").await;

    // Tina's desktop on the customer's screen, viewed only so far.
    let owner = Owner::run(
        tech.connect_support(&id, SessionKind::Desktop)
            .await
            .unwrap(),
        true,
    )
    .await;
    let endpoint = format!("support:{id}");
    let session = live_session_on(&site, &endpoint).await;
    // The support session shows the screen to its technicians, to join.
    let shown = session_until(&tech, &id, "the screen listed", |s| !s.screens.is_empty()).await;
    assert_eq!(shown.screens.len(), 1, "{:?}", shown.screens);
    assert_eq!(
        (
            shown.screens[0].session.as_str(),
            shown.screens[0].technician.as_str()
        ),
        (session.as_str(), "tina")
    );
    let mut b = Watcher::start(bob_api.watch_session(&session).await.unwrap()).await;
    b.until("the customer's screen", |w| w.canvas.width() == 1280)
        .await;
    // Carol, an observer, watches too (without monitor-sessions).
    let mut c = Watcher::start(carol_api.watch_session(&session).await.unwrap()).await;
    c.until("the customer's screen", |w| w.canvas.width() == 1280)
        .await;

    // Without control, bob's pointer goes nowhere.
    // (The assist window is top right: input there is dropped by the client.)
    let spot = (150, 560);
    let move_to = |(x, y): (i32, i32), buttons| {
        SessionMsg::Pointer(Pointer {
            x: x as u16,
            y: y as u16,
            buttons,
        })
    };
    b.send(move_to(spot, 0)).await;
    b.round_trip().await;
    assert_ne!(tokio::task::block_in_place(|| pointer_at(&x)), spot);

    // With control, he moves it and clicks in the customer's application.
    allow(&site, &tina, &x, &w, &tech, &id, "control").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while owner.input() != Some(InputState::Allowed) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "control never allowed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.send(move_to(spot, 0)).await;
    pointer_reaches(&x, spot);
    b.send(move_to(spot, jumpgate_proto::desktop::button::LEFT))
        .await;
    b.send(move_to(spot, 0)).await;
    tokio::task::block_in_place(|| {
        x.poll("the click in the application", || {
            std::fs::read_to_string(&xev_out)
                .is_ok_and(|t| t.contains("ButtonRelease"))
                .then_some(())
        });
    });
    // The observer's pointer goes nowhere, control or not.
    c.send(move_to((250, 620), 0)).await;
    c.round_trip().await;
    assert_eq!(tokio::task::block_in_place(|| pointer_at(&x)), spot);

    // The same from the console's co-driving viewer (chromium): bob's
    // click on the screen lands in the application.
    let presses = || {
        std::fs::read_to_string(&xev_out)
            .unwrap_or_default()
            .matches("ButtonPress")
            .count()
    };
    let before = presses();
    let shot =
        std::env::var("JG_DRIVE_SHOT").unwrap_or_else(|_| "/work/shots/desktop-drive.png".into());
    let in_app = (210, 610);
    run_watch_browser(
        &site,
        ("bob", "also-helps-customers-9"),
        &session,
        "",
        in_app,
        &shot,
        Some(&id),
    )
    .await;
    pointer_reaches(&x, in_app);
    tokio::task::block_in_place(|| {
        x.poll("the console's click in the application", || {
            (presses() > before).then_some(())
        });
    });
    b.send(move_to(spot, 0)).await;
    pointer_reaches(&x, spot);

    // The customer takes control back: bob's pointer goes nowhere again.
    click_when(&x, &w, "switch-control");
    session_until(&tech, &id, "control revoked", |s| {
        !s.granted.iter().any(|g| g == "control")
    })
    .await;
    // (The click on the switch moved X's pointer there.)
    let before = tokio::task::block_in_place(|| pointer_at(&x));
    let elsewhere = (300, 650);
    b.send(move_to(elsewhere, 0)).await;
    b.round_trip().await;
    assert_eq!(tokio::task::block_in_place(|| pointer_at(&x)), before);

    owner.close().await;
    // Bob drove twice (his program, the console), each started and
    // stopped once.
    let control = entries(&site, "desktop-control", 4, |e| {
        e.detail.contains("input-from=bob")
    })
    .await;
    let mut control: Vec<(&str, &str)> = control
        .iter()
        .map(|(a, o, _)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(control[0], ("bob", "stopped"), "{control:?}");
    control.sort_unstable();
    assert_eq!(
        control,
        [
            ("bob", "started"),
            ("bob", "started"),
            ("bob", "stopped"),
            ("bob", "stopped")
        ]
    );
    let watch = entries(&site, "session-watch", 2, |e| e.target == session).await;
    for (who, role) in [("bob", "as=participant"), ("carol", "as=observer")] {
        assert!(
            watch
                .iter()
                .any(|(a, o, d)| a == who && o == "started" && d.contains(role)),
            "{watch:?}"
        );
    }
    ok(&site.jg_in(&tina, &["support", "end", &id]).await);
    let _ = xev.kill();
    let _ = xev.wait();
}
