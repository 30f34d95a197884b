//! Desktop sessions against a real Xvfb: the test plays the technician's
//! viewer (decoding into `jumpgate_codec::Canvas` and acknowledging what it
//! drew) and the person at the endpoint (xdotool on the consent windows).
//!
//! The consent UI child is this test binary itself, run with only
//! [`consent_ui_child`] selected and `JUMPGATE_TEST_CONSENT_UI` set (the
//! product runs `jumpgate agent consent-ui`); the harness's own output lines
//! are not protocol lines and are skipped by the agent.

use std::path::PathBuf;
use std::time::Duration;

use jumpgate_codec::{Canvas, Packet};
use jumpgate_desktop::{CaptureOptions, Capturer, DisplayOptions};
use jumpgate_proto::desktop::{
    ControlNote, ControlState, DesktopCommand, DesktopInfo, FrameAck, InputState, Key, Pointer,
    button, codec,
};
use jumpgate_proto::session::{ConsentMode, RefusalCode, SessionMsg, SessionRequest};
use jumpgate_test_support::xvfb::{Xvfb, artifacts, have_tools};
use tokio::time::{Instant, timeout};
use x11rb::connection::Connection as _;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, EventMask, WindowClass};

use super::{STEP, Served, Tech, ctx};
use crate::sessions::SessionContext;
use crate::sessions::desktop::DesktopOptions;

const CHILD_ENV: &str = "JUMPGATE_TEST_CONSENT_UI";
const PROMPT_TITLE: &str = "^Jumpgate: remote access request$";
const BAR_TITLE: &str = "^Jumpgate: remote session$";

/// The consent UI child's body when this binary is run as one.
#[test]
fn consent_ui_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    crate::sessions::desktop::run_consent_ui().expect("consent UI child");
}

fn desktop_ctx(x: &Xvfb) -> SessionContext {
    assert!(
        have_tools(),
        "the X tools (Xvfb, xdotool, openbox…) are installed"
    );
    let exe = std::env::current_exe().expect("test binary");
    let args = [
        "--exact",
        "sessions::tests::desktop::consent_ui_child",
        "--nocapture",
        "--test-threads=1",
    ];
    SessionContext {
        desktop: DesktopOptions {
            display: Some(x.display.clone()),
            xauthority: None,
            consent_ui: Some((exe, args.iter().map(|s| (*s).to_owned()).collect())),
            consent_ui_env: vec![(CHILD_ENV.to_owned(), "1".to_owned())],
            site: "Acme IT".to_owned(),
            ..DesktopOptions::default()
        },
        ..ctx()
    }
}

fn desktop(control: bool, consent: ConsentMode) -> SessionRequest {
    desktop_with(control, false, consent)
}

fn desktop_with(control: bool, clipboard: bool, consent: ConsentMode) -> SessionRequest {
    SessionRequest::Desktop {
        control,
        clipboard,
        monitor: None,
        consent,
        technician: "Alice Tech".to_owned(),
        codecs: None,
    }
}

/// The technician's viewer: draws what arrives, acknowledges it.
struct Viewer {
    tech: Tech,
    served: Served,
    canvas: Canvas,
    info: Vec<DesktopInfo>,
    states: Vec<ControlState>,
    pongs: Vec<u64>,
    /// Clipboard texts from the endpoint.
    clipboards: Vec<String>,
    /// `StreamStart` packets and keyframes received.
    starts: usize,
    keyframes: usize,
    /// `Video` messages received.
    videos: usize,
    ended: bool,
}

impl Viewer {
    async fn open(x: &Xvfb, req: SessionRequest) -> Self {
        let (tech, served) = Tech::open_with(req, desktop_ctx(x)).await;
        Self {
            tech,
            served,
            canvas: Canvas::new(),
            info: Vec::new(),
            states: Vec::new(),
            pongs: Vec::new(),
            clipboards: Vec::new(),
            starts: 0,
            keyframes: 0,
            videos: 0,
            ended: false,
        }
    }

    async fn accepted(&mut self) {
        self.tech.accepted().await;
    }

    /// Handles messages for up to `wait`; false when none came.
    async fn pump(&mut self, wait: Duration) -> bool {
        if self.ended {
            return false;
        }
        let Ok(msg) = timeout(wait, self.tech.recv()).await else {
            return false;
        };
        match msg {
            Some(SessionMsg::Video(v)) => {
                let packet = Packet::parse(&v.data).expect("a codec packet");
                self.videos += 1;
                match &packet {
                    Packet::StreamStart { .. } => self.starts += 1,
                    Packet::Video { keyframe: true, .. } => self.keyframes += 1,
                    _ => {}
                }
                self.canvas.apply(&packet).expect("decodes");
                self.tech
                    .send(&SessionMsg::FrameAck(FrameAck { seq: v.seq }))
                    .await;
            }
            Some(SessionMsg::DesktopInfo(i)) => self.info.push(i),
            Some(SessionMsg::ControlState(s)) => self.states.push(s),
            Some(SessionMsg::Pong(n)) => self.pongs.push(n),
            Some(SessionMsg::Clipboard(text)) => self.clipboards.push(text),
            Some(SessionMsg::Cursor(_) | SessionMsg::CursorShape(_)) => {}
            None => self.ended = true,
            Some(other) => panic!("unexpected {other:?}"),
        }
        true
    }

    /// Pumps until `done` holds.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + STEP;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.pump(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no `Video` has come for a second: the screen is idle
    /// (refinement done).
    async fn idle(&mut self) {
        let deadline = Instant::now() + STEP;
        loop {
            let (videos, quiet_from) = (self.videos, Instant::now());
            while self.videos == videos && quiet_from.elapsed() < Duration::from_secs(1) {
                self.pump(Duration::from_millis(100)).await;
            }
            if self.videos == videos {
                return;
            }
            assert!(Instant::now() < deadline, "the screen never went idle");
        }
    }

    /// A Ping answered: everything sent before it was handled.
    async fn round_trip(&mut self, n: u64) {
        self.tech.send(&SessionMsg::Ping(n)).await;
        self.until("the pong", |v| v.pongs.contains(&n)).await;
    }

    async fn state(&mut self, input: InputState) -> ControlState {
        let seen = self.states.len();
        self.until(&format!("control state {input:?}"), |v| {
            v.states[seen.min(v.states.len())..]
                .iter()
                .any(|s| s.input == input)
        })
        .await;
        self.states[seen..]
            .iter()
            .find(|s| s.input == input)
            .cloned()
            .expect("found")
    }

    fn rgb(&self, x: u32, y: u32) -> u32 {
        let i = (y * self.canvas.width() + x) as usize * 4;
        let p = &self.canvas.pixels()[i..i + 4];
        u32::from(p[2]) << 16 | u32::from(p[1]) << 8 | u32::from(p[0])
    }

    async fn send(&mut self, msg: SessionMsg) {
        self.tech.send(&msg).await;
    }

    /// Ends the technician's side the way a viewer does (its end of the
    /// stream, then reading what is still coming), so a frame the agent
    /// sends meanwhile (a blinking xterm cursor) does not meet a closed
    /// pipe; the session must then end cleanly.
    async fn close(mut self) {
        use tokio::io::AsyncWriteExt as _;
        self.tech
            .io
            .shutdown()
            .await
            .expect("end of the technician's side");
        while self.tech.recv().await.is_some() {}
        drop(self.tech);
        let result = timeout(STEP, self.served).await.expect("serve returned");
        result.expect("no panic").expect("the session ends cleanly");
    }
}

/// The screen as the display holds it, as BGR triples.
fn screen_bgr(x: &Xvfb) -> (u32, u32, Vec<u8>) {
    let target = DisplayOptions {
        display: Some(x.display.clone()),
        xauthority: None,
    }
    .resolve()
    .expect("display");
    let mut cap = Capturer::new(&target, CaptureOptions::default()).expect("capturer");
    let f = cap.snapshot().expect("snapshot");
    let mut out = Vec::with_capacity((f.width * f.height * 3) as usize);
    for y in 0..f.height as usize {
        for px in f.data[y * f.stride..y * f.stride + f.width as usize * 4].chunks(4) {
            out.extend_from_slice(&px[..3]);
        }
    }
    (f.width, f.height, out)
}

fn canvas_bgr(c: &Canvas) -> Vec<u8> {
    c.pixels()
        .chunks(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn pointer_at(x: &Xvfb) -> (i32, i32) {
    let out = x.output("xdotool", &["getmouselocation", "--shell"]);
    let field = |k: &str| -> i32 {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {out}"))
    };
    (field("X="), field("Y="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_a_drawn_pattern_arrives_pixel_exact() {
    let x = Xvfb::sized(800, 600);
    x.run("xsetroot", &["-solid", "#1a73e8"]);
    let mut v = Viewer::open(&x, desktop(false, ConsentMode::None)).await;
    v.accepted().await;
    let first = v.state(InputState::ViewOnly).await;
    assert!(first.message.contains("unattended"), "{first:?}");
    v.until("desktop info", |v| !v.info.is_empty()).await;
    let info = v.info[0].clone();
    assert_eq!((info.width, info.height), (800, 600));
    assert_eq!(info.codec, "jumpgate-1");
    assert!(!info.monitors.is_empty());
    v.until("the blue screen", |v| {
        v.canvas.width() == 800 && v.rgb(400, 300) == 0x1a73e8 && v.rgb(0, 0) == 0x1a73e8
    })
    .await;
    // A plaid of sharp edges, then the whole canvas must equal the screen.
    x.run(
        "xsetroot",
        &["-mod", "7", "5", "-fg", "#ff8800", "-bg", "#102030"],
    );
    let (w, h, want) = screen_bgr(&x);
    assert_eq!((w, h), (800, 600));
    v.until("the pattern, pixel-exact", |v| {
        canvas_bgr(&v.canvas) == want
    })
    .await;
    // Idle: nothing more arrives (positive control above: changes did).
    let quiet =
        !v.pump(Duration::from_millis(1500)).await || !v.pump(Duration::from_millis(1500)).await;
    assert!(quiet, "an idle screen sends (almost) nothing");
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_a_click_lands_at_the_sent_coordinates_and_keys_type_unicode() {
    let x = Xvfb::sized(800, 600);
    // A window over the whole screen reporting button presses.
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    let win = conn.generate_id().expect("id");
    conn.create_window(
        0,
        win,
        root,
        0,
        0,
        800,
        300,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(0x00ff00)
            .event_mask(EventMask::BUTTON_PRESS | EventMask::STRUCTURE_NOTIFY),
    )
    .expect("window");
    conn.map_window(win).expect("map");
    conn.flush().expect("flush");
    let mut v = Viewer::open(&x, desktop(true, ConsentMode::None)).await;
    v.accepted().await;
    v.state(InputState::Allowed).await;
    v.until("the green window", |v| {
        v.canvas.width() == 800 && v.rgb(10, 10) == 0x00ff00
    })
    .await;
    let at = |buttons| {
        SessionMsg::Pointer(Pointer {
            x: 321,
            y: 123,
            buttons,
        })
    };
    v.send(at(0)).await;
    v.send(at(button::LEFT)).await;
    v.send(at(0)).await;
    let press = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + STEP;
        while std::time::Instant::now() < deadline {
            match conn.poll_for_event().expect("events") {
                Some(Event::ButtonPress(e)) => return (e.event_x, e.event_y, e.detail),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("no button press arrived");
    })
    .await
    .expect("joined");
    assert_eq!(press, (321, 123, 1));
    assert_eq!(pointer_at(&x), (321, 123));

    // Keys by keysym into an xterm below the window.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("typed.txt");
    let ready = dir.path().join("ready");
    let script = format!("touch {}; exec cat > {}", ready.display(), out.display());
    let mut xterm = x
        .cmd(
            "xterm",
            &["-u8", "-geometry", "80x10+0+320", "-e", "sh", "-c", &script],
        )
        .env("LC_ALL", "C.UTF-8")
        .spawn()
        .expect("xterm");
    x.poll("xterm's shell", || ready.exists().then_some(()));
    x.poll("xterm's window", || {
        (!x.output("xdotool", &["search", "--onlyvisible", "--class", "xterm"])
            .is_empty())
        .then_some(())
    });
    // No window manager: the keyboard follows the pointer.
    v.send(SessionMsg::Pointer(Pointer {
        x: 100,
        y: 400,
        buttons: 0,
    }))
    .await;
    let text = "Grüße, Wörld! ½ €\n";
    for c in text.chars() {
        let keysym = if c == '\n' {
            0xff0d
        } else {
            jumpgate_desktop::keysym::from_char(c)
        };
        for down in [true, false] {
            v.send(SessionMsg::Key(Key { keysym, down })).await;
        }
    }
    let typed = x.poll("the typed line", || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    assert_eq!(typed, text);
    v.close().await;
    let _ = xterm.kill();
    let _ = xterm.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_view_only_drops_input() {
    let x = Xvfb::sized(640, 480);
    x.run("xdotool", &["mousemove", "10", "20"]);
    let mut v = Viewer::open(&x, desktop(false, ConsentMode::None)).await;
    v.accepted().await;
    v.state(InputState::ViewOnly).await;
    v.send(SessionMsg::Pointer(Pointer {
        x: 300,
        y: 200,
        buttons: button::LEFT,
    }))
    .await;
    v.send(SessionMsg::Key(Key {
        keysym: 0x61,
        down: true,
    }))
    .await;
    v.round_trip(7).await;
    assert_eq!(pointer_at(&x), (10, 20), "view-only input was not applied");
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_consent_denied_refuses_the_session() {
    let x = Xvfb::start();
    let (mut tech, served) =
        Tech::open_with(desktop(true, ConsentMode::Prompt), desktop_ctx(&x)).await;
    let prompt = tokio::task::spawn_blocking({
        let display = x.display.clone();
        move || wait_window(&display, PROMPT_TITLE)
    })
    .await
    .expect("joined");
    x.screenshot("agent-desktop-consent-prompt.png", None);
    x.click(&prompt, "deny");
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::ConsentDenied);
    assert_eq!(
        refusal.message,
        "the user at the endpoint denied the session"
    );
    let err = super::ended(tech, served).await.unwrap_err();
    assert!(
        matches!(err, crate::sessions::SessionError::Refused(_)),
        "{err:?}"
    );
    x.poll("the prompt gone", || {
        x.windows(PROMPT_TITLE).is_empty().then_some(())
    });
}

/// `assist` is the attended-support client's mode: an enrolled agent
/// refuses it (and shows nothing) rather than serving without consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_an_enrolled_agent_refuses_the_assist_consent_mode() {
    let x = Xvfb::start();
    let (mut tech, served) =
        Tech::open_with(desktop(true, ConsentMode::Assist), desktop_ctx(&x)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::Unsupported);
    assert!(refusal.message.contains("attended-support"), "{refusal:?}");
    let err = super::ended(tech, served).await.unwrap_err();
    assert!(
        matches!(err, crate::sessions::SessionError::Refused(_)),
        "{err:?}"
    );
    assert!(x.windows(PROMPT_TITLE).is_empty(), "no prompt for assist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_take_back_control_drops_input_and_request_control_asks_again() {
    let x = Xvfb::start();
    let mut v = Viewer::open(&x, desktop(true, ConsentMode::Prompt)).await;
    let display = x.display.clone();
    let prompt = tokio::task::spawn_blocking(move || wait_window(&display, PROMPT_TITLE))
        .await
        .expect("joined");
    x.click(&prompt, "allow");
    v.accepted().await;
    let s = v.state(InputState::Allowed).await;
    assert_eq!(s.message, "allowed by the user");
    let bar = x.window(BAR_TITLE);
    x.screenshot("agent-desktop-indicator.png", None);
    // Input works (positive control).
    v.send(SessionMsg::Pointer(Pointer {
        x: 200,
        y: 300,
        buttons: 0,
    }))
    .await;
    x.poll("the pointer moved", || {
        (pointer_at(&x) == (200, 300)).then_some(())
    });

    x.click(&bar, "take-back-control");
    let s = v.state(InputState::TakenBack).await;
    assert_eq!(s.message, "the user took back control");
    let (px, py) = pointer_at(&x);
    v.send(SessionMsg::Pointer(Pointer {
        x: 5,
        y: 6,
        buttons: button::LEFT,
    }))
    .await;
    v.round_trip(1).await;
    assert_eq!(pointer_at(&x), (px, py), "input after take-back is dropped");

    // The technician asks again; the user allows.
    v.send(SessionMsg::DesktopCommand(DesktopCommand::RequestControl))
        .await;
    let display = x.display.clone();
    let prompt = tokio::task::spawn_blocking(move || wait_window(&display, PROMPT_TITLE))
        .await
        .expect("joined");
    x.click(&prompt, "allow");
    let s = v.state(InputState::Allowed).await;
    assert_eq!(s.message, "the user gave control back");
    v.send(SessionMsg::Pointer(Pointer {
        x: 222,
        y: 333,
        buttons: 0,
    }))
    .await;
    x.poll("the pointer moved again", || {
        (pointer_at(&x) == (222, 333)).then_some(())
    });

    // End session on the bar: Ended, then the agent ends its side.
    let bar = x.window(BAR_TITLE);
    x.click(&bar, "end-session");
    let s = v.state(InputState::Ended).await;
    assert_eq!(s.message, "the user ended the session");
    v.until("the end of the stream", |v| v.ended).await;
    v.close().await;
    x.poll("the indicator gone", || {
        x.windows(BAR_TITLE).is_empty().then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_a_resolution_change_sends_new_info_and_a_new_stream() {
    let x = Xvfb::sized(1024, 768);
    x.run("xsetroot", &["-solid", "#336699"]);
    let mut v = Viewer::open(&x, desktop(false, ConsentMode::None)).await;
    v.accepted().await;
    v.until("the first screen", |v| {
        v.canvas.width() == 1024 && v.rgb(512, 384) == 0x336699
    })
    .await;
    x.run(
        "xrandr",
        &[
            "--newmode",
            "m800",
            "40",
            "800",
            "840",
            "968",
            "1056",
            "600",
            "601",
            "605",
            "628",
        ],
    );
    x.run("xrandr", &["--addmode", "screen", "m800"]);
    x.run("xrandr", &["--output", "screen", "--mode", "m800"]);
    v.until("desktop info of 800x600", |v| {
        v.info
            .last()
            .is_some_and(|i| (i.width, i.height) == (800, 600))
    })
    .await;
    x.run("xsetroot", &["-solid", "#aa5500"]);
    v.until("the new screen", |v| {
        v.canvas.width() == 800 && v.canvas.height() == 600 && v.rgb(799, 599) == 0xaa5500
    })
    .await;
    assert_eq!(v.info.len(), 2, "{:?}", v.info);
    v.close().await;
}

/// Clipboard text crosses the session both ways only when it was opened
/// with clipboard rights, and technician text only under control: text an
/// X application (xclip) copies on the endpoint arrives as `Clipboard`, and
/// the technician's `Clipboard` becomes the endpoint's clipboard, read back
/// by xclip. The first case is the positive control of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_clipboard_goes_both_ways_only_when_the_session_allows_it() {
    const ON_ENDPOINT: &str = "copied on the endpoint: Grüße, Wörld! ½ € ✓\nline 2";
    const FROM_TECH: &str = "pasted by the technician: Ünïcödé ½ €";
    // (control, clipboard): text down, text up.
    for (control, clipboard, down, up) in [
        (true, true, true, true),
        (false, true, true, false),
        (true, false, false, false),
    ] {
        let case = format!("control={control} clipboard={clipboard}");
        let x = Xvfb::sized(320, 240);
        let mut v = Viewer::open(&x, desktop_with(control, clipboard, ConsentMode::None)).await;
        v.accepted().await;
        v.until("desktop info", |v| !v.info.is_empty()).await;
        // Copied by an X application on the endpoint.
        let copied = x.copy_to_clipboard(ON_ENDPOINT);
        x.poll("xclip owning the clipboard", || {
            (x.clipboard() == ON_ENDPOINT).then_some(())
        });
        if down {
            v.until(&format!("the endpoint's clipboard ({case})"), |v| {
                v.clipboards.iter().any(|t| t == ON_ENDPOINT)
            })
            .await;
        } else {
            // As long as the positive control took, and more.
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                v.pump(Duration::from_millis(100)).await;
            }
        }
        v.send(SessionMsg::Clipboard(FROM_TECH.to_owned())).await;
        v.round_trip(1).await;
        if up {
            x.poll("the technician's text in the endpoint's clipboard", || {
                (x.clipboard() == FROM_TECH).then_some(())
            });
            // Set by the technician: not sent back as an endpoint change.
            v.round_trip(2).await;
        } else {
            // Handled (dropped) before the pong: the endpoint's own text stays.
            assert_eq!(x.clipboard(), ON_ENDPOINT, "{case}");
        }
        let want: Vec<&str> = if down { vec![ON_ENDPOINT] } else { vec![] };
        assert_eq!(v.clipboards, want, "{case}");
        v.close().await;
        drop(copied);
    }
}

/// The X server dying mid-session (a crash, a logout) ends the session
/// cleanly with a message that says so, with and without the UI child
/// (which dies with the display).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_the_display_going_away_ends_the_session_with_a_clear_message() {
    for consent in [ConsentMode::None, ConsentMode::Notify] {
        let mut x = Xvfb::start_sized(640, 480);
        x.run("xsetroot", &["-solid", "#336699"]);
        let mut v = Viewer::open(&x, desktop(true, consent)).await;
        v.accepted().await;
        v.state(InputState::Allowed).await;
        v.until("the screen", |v| {
            v.canvas.width() == 640 && v.rgb(320, 240) == 0x336699
        })
        .await;
        if consent == ConsentMode::Notify {
            x.window(BAR_TITLE);
        }
        x.stop_server();
        let s = v.state(InputState::Ended).await;
        assert_eq!(s.message, "the endpoint's display went away", "{consent:?}");
        assert_eq!(s.message, crate::sessions::desktop::DISPLAY_GONE);
        // A failure, not anyone's choice: the gateway's outcome says so.
        assert_eq!(s.note, Some(ControlNote::Failed), "{consent:?}");
        v.until("the end of the stream", |v| v.ended).await;
        v.close().await;
    }
}

/// The display going away while the consent prompt is up is not a
/// denial: the session is refused as failed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_the_display_going_away_during_the_prompt_is_not_a_denial() {
    let mut x = Xvfb::start();
    let (mut tech, served) =
        Tech::open_with(desktop(true, ConsentMode::Prompt), desktop_ctx(&x)).await;
    let display = x.display.clone();
    tokio::task::spawn_blocking(move || wait_window(&display, PROMPT_TITLE))
        .await
        .expect("joined");
    x.stop_server();
    let refusal = tech.refused().await;
    assert_eq!(
        (refusal.code, refusal.message.as_str()),
        (RefusalCode::Failed, "the endpoint's display went away")
    );
    let err = super::ended(tech, served).await.unwrap_err();
    assert!(
        matches!(err, crate::sessions::SessionError::Refused(_)),
        "{err:?}"
    );
}

/// Two monitors (RandR 1.5 monitors on one wide screen): both are listed;
/// `Monitor{1}` gives a new `DesktopInfo` of that monitor's size and a new
/// stream showing it; `Refresh` on an idle screen sends a keyframe; all
/// monitors again gives the whole screen. A session opened on a monitor
/// names it in its first `DesktopInfo` and takes input in its coordinates;
/// one the endpoint lacks is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_monitors_are_listed_and_chosen_and_refresh_sends_a_keyframe() {
    let x = Xvfb::sized(1280, 480);
    x.run(
        "xrandr",
        &["--setmonitor", "left", "640/170x480/130+0+0", "none"],
    );
    x.run(
        "xrandr",
        &["--setmonitor", "right", "640/170x480/130+640+0", "none"],
    );
    x.run("xsetroot", &["-solid", "#336699"]);
    // The right monitor shows a green window.
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    let win = conn.generate_id().expect("id");
    conn.create_window(
        0,
        win,
        root,
        640,
        0,
        640,
        480,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().background_pixel(0x00ff00),
    )
    .expect("window");
    conn.map_window(win).expect("map");
    conn.flush().expect("flush");

    let mut v = Viewer::open(&x, desktop(false, ConsentMode::None)).await;
    v.accepted().await;
    v.until("the whole screen", |v| {
        v.canvas.width() == 1280 && v.rgb(10, 10) == 0x336699 && v.rgb(650, 10) == 0x00ff00
    })
    .await;
    let info = v.info[0].clone();
    assert_eq!((info.width, info.height, info.monitor), (1280, 480, None));
    let find = |name: &str| {
        info.monitors
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("monitor {name} in {:?}", info.monitors))
            .clone()
    };
    let (left, right) = (find("left"), find("right"));
    assert_eq!((left.x, left.y, left.width, left.height), (0, 0, 640, 480));
    assert_eq!(
        (right.x, right.y, right.width, right.height),
        (640, 0, 640, 480)
    );

    let (infos, starts) = (v.info.len(), v.starts);
    v.send(SessionMsg::DesktopCommand(DesktopCommand::Monitor {
        monitor: Some(right.id),
    }))
    .await;
    v.until("the right monitor's info", |v| v.info.len() > infos)
        .await;
    let chosen = v.info.last().expect("info").clone();
    assert_eq!(
        (chosen.width, chosen.height, chosen.monitor),
        (640, 480, Some(right.id))
    );
    v.until("a new stream of the right monitor", |v| {
        v.starts > starts && v.canvas.width() == 640 && v.rgb(10, 10) == 0x00ff00
    })
    .await;

    // A monitor the endpoint does not have: the technician is told, and
    // the session stays on the right monitor (no new info, no new stream).
    let (infos, starts, states) = (v.info.len(), v.starts, v.states.len());
    v.send(SessionMsg::DesktopCommand(DesktopCommand::Monitor {
        monitor: Some(7),
    }))
    .await;
    v.until("the answer about monitor 7", |v| v.states.len() > states)
        .await;
    let answer = v.states.last().expect("state").clone();
    assert_eq!(answer.note, Some(ControlNote::Refused), "{answer:?}");
    assert_eq!(answer.input, InputState::ViewOnly, "control did not change");
    let ids: Vec<String> = chosen.monitors.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        answer.message,
        format!(
            "there is no monitor 7 on this endpoint (its monitors: {}); still showing monitor {} (right)",
            ids.join(", "),
            right.id
        )
    );
    v.round_trip(70).await;
    assert_eq!((v.info.len(), v.starts), (infos, starts));
    assert_eq!((v.canvas.width(), v.rgb(10, 10)), (640, 0x00ff00));

    // Idle (nothing changes on the screen, refinement done): Refresh
    // still sends a keyframe at once.
    v.idle().await;
    let keyframes = v.keyframes;
    v.send(SessionMsg::DesktopCommand(DesktopCommand::Refresh))
        .await;
    v.until("a keyframe after Refresh", |v| v.keyframes > keyframes)
        .await;
    assert_eq!(v.canvas.width(), 640);

    // All monitors again.
    let infos = v.info.len();
    v.send(SessionMsg::DesktopCommand(DesktopCommand::Monitor {
        monitor: None,
    }))
    .await;
    v.until("the whole screen's info", |v| v.info.len() > infos)
        .await;
    let all = v.info.last().expect("info").clone();
    assert_eq!((all.width, all.height, all.monitor), (1280, 480, None));
    v.until("the whole screen again", |v| {
        v.canvas.width() == 1280 && v.rgb(10, 10) == 0x336699 && v.rgb(650, 10) == 0x00ff00
    })
    .await;
    v.close().await;

    // A monitor asked for at the start (input in its coordinates), and
    // one the endpoint lacks.
    let on = |monitor| SessionRequest::Desktop {
        control: true,
        clipboard: false,
        monitor: Some(monitor),
        consent: ConsentMode::None,
        technician: "Alice Tech".to_owned(),
        codecs: None,
    };
    let mut v = Viewer::open(&x, on(right.id)).await;
    v.accepted().await;
    v.until("the right monitor", |v| {
        v.canvas.width() == 640 && v.rgb(10, 10) == 0x00ff00
    })
    .await;
    let first = v.info[0].clone();
    assert_eq!(
        (first.width, first.height, first.monitor),
        (640, 480, Some(right.id))
    );
    v.send(SessionMsg::Pointer(Pointer {
        x: 12,
        y: 22,
        buttons: 0,
    }))
    .await;
    x.poll("the pointer on the right monitor", || {
        (pointer_at(&x) == (652, 22)).then_some(())
    });
    v.close().await;
    let (mut tech, served) = Tech::open_with(on(99), desktop_ctx(&x)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::InvalidRequest);
    assert_eq!(refusal.message, "no monitor 99 on this endpoint");
    let _ = super::ended(tech, served).await;
    drop(conn);
}

/// Waits (blocking) for exactly one visible window titled like `name`.
fn wait_window(display: &str, name: &str) -> String {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", name])
            .env("DISPLAY", display)
            .output()
            .expect("xdotool");
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if ids.len() == 1 {
            return ids[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no window {name}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(dead_code)]
fn artifact(name: &str) -> PathBuf {
    artifacts().join(name)
}

/// The screen codec is negotiated: a viewer offering both gets pictures
/// that may be reduced (`jumpgate-2`), one from before the negotiation
/// (no list) full-size ones only (`jumpgate-1`), and one offering nothing
/// the agent knows is refused before anyone at the endpoint is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_the_screen_codec_is_negotiated() {
    let x = Xvfb::sized(320, 240);
    x.run("xsetroot", &["-solid", "#336699"]);
    let with = |codecs: Option<&[&str]>| SessionRequest::Desktop {
        control: false,
        clipboard: false,
        monitor: None,
        consent: ConsentMode::Prompt,
        technician: "Alice Tech".to_owned(),
        codecs: codecs.map(|l| l.iter().map(|c| (*c).to_owned()).collect()),
    };
    for (offer, want) in [
        (Some(&codec::ALL[..]), codec::REDUCED_SIZE),
        (Some(&[codec::FULL_SIZE][..]), codec::FULL_SIZE),
        (None, codec::FULL_SIZE),
    ] {
        let mut req = with(offer);
        if let SessionRequest::Desktop { consent, .. } = &mut req {
            *consent = ConsentMode::None;
        }
        let mut v = Viewer::open(&x, req).await;
        v.accepted().await;
        v.until("desktop info", |v| !v.info.is_empty()).await;
        assert_eq!(v.info[0].codec, want, "{offer:?}");
        v.until("the screen", |v| v.canvas.width() == 320).await;
        v.close().await;
    }
    // Prompt mode: refused before a prompt would be shown.
    let (mut tech, served) =
        Tech::open_with(with(Some(&["vp8", "jumpgate-9"])), desktop_ctx(&x)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::Unsupported);
    assert_eq!(
        refusal.message,
        "the viewer decodes none of this endpoint's screen codecs (jumpgate-2, jumpgate-1); it offered: vp8, jumpgate-9"
    );
    let _ = super::ended(tech, served).await;
}
