//! Remote desktop end to end: a real gateway, a real agent on a real Xvfb
//! display, and `jg` (or a program speaking session messages) as the
//! technician — the screen read back exact, the recording exported as a
//! video `ffprobe` accepts, the clipboard both ways (audited by size), the
//! display going away mid-session (an endpoint-side error), the person at
//! the endpoint refusing a session with the consent prompt and taking back
//! control on the indicator bar (clicked with xdotool).

use std::path::Path;

use jumpgate_test_support::xvfb::Xvfb;

use crate::support::*;

/// Enrolls an agent on `x`'s display and waits until it is online.
async fn desktop_agent(site: &Site, name: &str, x: &Xvfb) -> Agent {
    let token = site.enroll_token(&[]).await;
    let agent = site.spawn_agent(name, Some(&token), &["--display", &x.display]);
    site.wait_online(name, true).await;
    agent
}

/// RGB pixels of a PNG file.
fn png_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("PNG written"),
    ));
    // Palette images (ImageMagick writes one for few colours) as RGB.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let rgb = match reader.output_color_type().0 {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgb)
}

#[tokio::test]
async fn the_endpoint_screen_reads_back_exact_and_its_recording_exports_as_webm() {
    let site = Site::start().await;
    // An unattended machine: no one to ask.
    ok(&site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await);
    let x = Xvfb::sized(640, 480);
    // A pattern no codec gets exactly right by accident: a plaid of two
    // colours, and a window of a third.
    x.run(
        "xsetroot",
        &["-mod", "3", "5", "-fg", "#e0301f", "-bg", "#1f60d0"],
    );
    let mut xterm = x.spawn(
        "xterm",
        &[
            "-geometry",
            "20x5+200+150",
            "-bg",
            "#20a040",
            "-fg",
            "#ffffff",
        ],
    );
    x.poll("the xterm window", || {
        (!x.output("xdotool", &["search", "--onlyvisible", "--class", "xterm"])
            .is_empty())
        .then_some(())
    });
    let _agent = desktop_agent(&site, "desk", &x).await;

    let shot = site.dir.path().join("screen.png");
    let out = site
        .jg(&[
            "desktop",
            "desk",
            "--screenshot",
            shot.to_str().unwrap(),
            "--timeout",
            "60",
        ])
        .await;
    ok(&out);
    // The reference: the X server's own picture of its screen.
    let reference = site.dir.path().join("reference.png");
    x.run(
        "sh",
        &[
            "-c",
            &format!(
                "xwd -root -silent | convert xwd:- png:{}",
                reference.display()
            ),
        ],
    );
    let (w, h, got) = png_rgb(&shot);
    let (rw, rh, want) = png_rgb(&reference);
    assert_eq!((w, h), (rw, rh), "the screenshot has the screen's size");
    assert_eq!((w, h), (640, 480));
    let differing = got
        .chunks_exact(3)
        .zip(want.chunks_exact(3))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "every pixel of the screenshot is exact");
    // Positive control: the picture holds the three colours drawn.
    let at = |x: usize, y: usize| &got[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3];
    let colours: std::collections::HashSet<&[u8]> = (0..480)
        .step_by(7)
        .flat_map(|y| (0..640).step_by(5).map(move |x| (x, y)))
        .map(|(x, y)| at(x, y))
        .collect();
    assert!(
        colours.contains(&[0xe0, 0x30, 0x1f][..]),
        "plaid foreground"
    );
    assert!(
        colours.contains(&[0x1f, 0x60, 0xd0][..]),
        "plaid background"
    );
    assert!(colours.contains(&[0x20, 0xa0, 0x40][..]), "the xterm");

    // The session was recorded as a desktop recording, and its decisions
    // audited.
    let recs: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["recordings", "--json"]).await)).unwrap();
    let rec = recs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "desk" && r["kind"] == "desktop")
        .unwrap_or_else(|| panic!("a desktop recording in {recs}"));
    let id = rec["id"].as_str().unwrap().to_owned();
    let webm = site.dir.path().join("session.webm");
    ok(&site
        .jg(&["recordings", "export", &id, "-o", webm.to_str().unwrap()])
        .await);
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(&webm)
        .output()
        .expect("ffprobe (scripts/test installs ffmpeg)");
    assert!(
        probe.status.success(),
        "ffprobe refused the export: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert!(
        probe["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("webm"),
        "{probe}"
    );
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "vp9", "{probe}");
    assert_eq!(stream["width"], 640, "{probe}");
    assert_eq!(stream["height"], 480, "{probe}");

    let audit: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["audit", "--json"]).await)).unwrap();
    let control = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "desktop-control")
        .unwrap_or_else(|| panic!("a desktop-control entry in {audit}"));
    assert!(
        control["detail"]
            .as_str()
            .unwrap()
            .contains("input=view-only"),
        "{control}"
    );
    let _ = xterm.kill();
    let _ = xterm.wait();
}

#[tokio::test]
async fn the_person_at_the_endpoint_denies_a_session_and_it_is_refused_and_audited() {
    let site = Site::start().await;
    // The default consent mode is `prompt`: a window asks the person.
    let x = Xvfb::start_sized(1024, 768);
    let _agent = desktop_agent(&site, "attended", &x).await;

    let shot = site.dir.path().join("never.png");
    let jg = site
        .jg_command(&[
            "desktop",
            "attended",
            "--screenshot",
            shot.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let prompt = x.window("^Jumpgate: remote access request$");
    x.screenshot("desktop-e2e-consent-prompt.png", None);
    x.click(&prompt, "deny");
    let out = tokio::time::timeout(WAIT, jg.wait_with_output())
        .await
        .expect("jg ends after the denial")
        .unwrap();
    let err = fails(&out);
    assert!(err.contains("denied"), "{err}");
    assert!(!shot.exists(), "no screenshot after a denial");

    let events: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let ev = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "desktop" && e["endpoint"] == "attended")
        .unwrap_or_else(|| panic!("the desktop session in {events}"));
    let outcome = ev["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("refused:") && outcome.contains("denied"),
        "{outcome}"
    );
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(
        audit.contains("session-close:desktop")
            && audit.contains("the user at the endpoint denied"),
        "the denial is in the audit log: {audit}"
    );
}

/// A technician's program on a desktop session, speaking the session
/// messages over the gateway's upgraded connection: draws nothing, but
/// acknowledges every packet the way a viewer does.
struct RawViewer {
    io: jumpgate_net::session::MsgStream<jumpgate_client::SessionIo>,
    clipboards: Vec<String>,
    states: Vec<jumpgate_proto::desktop::ControlState>,
    videos: usize,
    ended: bool,
}

impl RawViewer {
    /// Opens a desktop session on `endpoint` as the admin `jg` is logged in
    /// as, and waits for `Accepted`.
    async fn open(site: &Site, endpoint: &str, control: bool, clipboard: bool) -> Self {
        use jumpgate_proto::session::{ConsentMode, SessionKind, SessionMsg, SessionRequest};
        let client = site
            .api_client()
            .with_token(site.saved_token(&site.jg_home()));
        let io = client
            .connect(endpoint, SessionKind::Desktop)
            .await
            .expect("desktop session authorized");
        let mut io = jumpgate_net::session::MsgStream::new(io);
        io.write_msg(&SessionMsg::Open(SessionRequest::Desktop {
            control,
            clipboard,
            monitor: None,
            consent: ConsentMode::None,
            technician: String::new(),
            codecs: Some(
                jumpgate_proto::desktop::codec::ALL
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect(),
            ),
        }))
        .await
        .unwrap();
        let first = tokio::time::timeout(WAIT, io.read_msg())
            .await
            .expect("an answer")
            .unwrap();
        assert!(matches!(first, Some(SessionMsg::Accepted(_))), "{first:?}");
        Self {
            io,
            clipboards: Vec::new(),
            states: Vec::new(),
            videos: 0,
            ended: false,
        }
    }

    async fn send(&mut self, msg: jumpgate_proto::session::SessionMsg) {
        self.io.write_msg(&msg).await.unwrap();
    }

    /// Handles what arrives until `done` holds (failing after [`WAIT`]).
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        use jumpgate_proto::desktop::FrameAck;
        use jumpgate_proto::session::SessionMsg;
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            assert!(!self.ended, "the session ended before {what}");
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = tokio::time::timeout(left, self.io.read_msg())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("a session message");
            match msg {
                Some(SessionMsg::Video(v)) => {
                    self.videos += 1;
                    self.send(SessionMsg::FrameAck(FrameAck { seq: v.seq }))
                        .await;
                }
                Some(SessionMsg::Clipboard(t)) => self.clipboards.push(t),
                Some(SessionMsg::ControlState(c)) => self.states.push(c),
                Some(SessionMsg::Closed { reason }) => panic!("closed by the gateway: {reason}"),
                Some(_) => {}
                None => self.ended = true,
            }
        }
    }

    /// Ends the technician's side and reads what is still coming.
    async fn close(mut self) {
        self.io.shutdown().await.unwrap();
        while !self.ended {
            match tokio::time::timeout(WAIT, self.io.read_msg()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
                Err(_) => panic!("the session did not end"),
            }
        }
    }
}

/// The audit log as `jg audit --json` shows it.
async fn audit(site: &Site) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["audit", "--json"]).await)).unwrap();
    v.as_array().unwrap().clone()
}

/// Clipboard text through the real gateway and agent: copied by an X
/// application on the endpoint, it reaches the technician; the
/// technician's text becomes the endpoint's clipboard; each transfer is a
/// `desktop-clipboard` audit entry with its direction and size, and the
/// text is nowhere in the audit log.
#[tokio::test]
async fn clipboard_text_crosses_both_ways_and_only_its_size_is_audited() {
    use jumpgate_proto::session::SessionMsg;
    const ON_ENDPOINT: &str = "copied on the endpoint: Grüße ½ €";
    const FROM_TECH: &str = "pasted by the technician: Wörld ✓";
    let site = Site::start().await;
    ok(&site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await);
    let x = Xvfb::sized(320, 240);
    let _agent = desktop_agent(&site, "clip", &x).await;
    let mut v = RawViewer::open(&site, "clip", true, true).await;
    v.until("the first frame", |v| v.videos > 0).await;

    let copied = x.copy_to_clipboard(ON_ENDPOINT);
    v.until("the endpoint's clipboard", |v| {
        v.clipboards.iter().any(|t| t == ON_ENDPOINT)
    })
    .await;
    v.send(SessionMsg::Clipboard(FROM_TECH.to_owned())).await;
    x.poll("the technician's text on the endpoint", || {
        (x.clipboard() == FROM_TECH).then_some(())
    });
    v.close().await;
    drop(copied);

    let entries = audit(&site).await;
    let clip: Vec<String> = entries
        .iter()
        .filter(|e| e["action"] == "desktop-clipboard")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    let has = |from: &str, text: &str| {
        let want = format!("from={from} bytes={}", text.len());
        clip.iter().any(|d| d.ends_with(&want))
    };
    assert!(
        has("endpoint", ON_ENDPOINT) && has("technician", FROM_TECH),
        "{clip:?}"
    );
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains("Grüße") && !all.contains("Wörld"),
        "clipboard text in the audit log"
    );
}

/// The endpoint's X server going away in the middle of a session: the
/// technician is told so (`ControlState{Ended}` with the reason, noted as
/// a failure), the session ends, its outcome is an endpoint-side error, and
/// the audit log says why.
#[tokio::test]
async fn the_display_going_away_ends_the_session_with_the_reason_audited() {
    use jumpgate_proto::desktop::InputState;
    const GONE: &str = "the endpoint's display went away";
    let site = Site::start().await;
    ok(&site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await);
    let mut x = Xvfb::sized(320, 240);
    let _agent = desktop_agent(&site, "fragile", &x).await;
    let mut v = RawViewer::open(&site, "fragile", false, false).await;
    v.until("the first frame", |v| v.videos > 0).await;
    x.stop_server();
    v.until("the end message", |v| {
        v.states.iter().any(|s| s.input == InputState::Ended)
    })
    .await;
    let ended = v.states.last().unwrap();
    assert_eq!(
        (ended.input, ended.message.as_str()),
        (InputState::Ended, GONE)
    );
    v.until("the end of the stream", |v| v.ended).await;

    // The session's end and the reason, once the gateway has recorded it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let close = loop {
        let entries = audit(&site).await;
        if let Some(c) = entries
            .iter()
            .find(|e| e["action"] == "session-close:desktop")
        {
            break c.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session-close entry"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Not anyone's choice: the session failed on the endpoint's side.
    assert_eq!(
        close["outcome"],
        format!("error: endpoint side: {GONE}"),
        "{close}"
    );
    let entries = audit(&site).await;
    assert!(
        entries.iter().any(|e| e["action"] == "desktop-control"
            && e["detail"]
                .as_str()
                .unwrap()
                .ends_with(&format!("input=ended message={GONE}"))),
        "{entries:?}"
    );
}

/// Take back control on the endpoint's bar (clicked with xdotool), through
/// the real gateway and agent: the technician's clipboard sent while the
/// user holds control is dropped by the gateway itself — never audited as
/// a transfer, counted in the session-close entry — and once the user gives
/// control back (asked again, Allow clicked) clipboard text passes again.
/// The positive control is the text sent before the take-back.
#[tokio::test]
async fn after_take_back_the_technicians_clipboard_stops_at_the_gateway_until_control_returns() {
    use jumpgate_proto::desktop::{DesktopCommand, InputState};
    use jumpgate_proto::session::SessionMsg;
    const BEFORE: &str = "sent with control";
    const WHILE_TAKEN: &str = "sent while the user holds control";
    const AFTER: &str = "sent after control came back: Grüße";
    let site = Site::start().await;
    ok(&site
        .jg(&[
            "admin",
            "groups",
            "update",
            "default",
            "--consent",
            "notify",
        ])
        .await);
    let x = Xvfb::start_sized(640, 480);
    let _agent = desktop_agent(&site, "taken", &x).await;
    let mut v = RawViewer::open(&site, "taken", true, true).await;
    v.until("the first frame", |v| v.videos > 0).await;
    let bar = x.window("^Jumpgate: remote session$");

    v.send(SessionMsg::Clipboard(BEFORE.to_owned())).await;
    x.poll("the first text on the endpoint", || {
        (x.clipboard() == BEFORE).then_some(())
    });

    x.click(&bar, "take-back-control");
    v.until("the take-back", |v| {
        v.states.iter().any(|s| s.input == InputState::TakenBack)
    })
    .await;
    v.send(SessionMsg::Clipboard(WHILE_TAKEN.to_owned())).await;

    v.send(SessionMsg::DesktopCommand(DesktopCommand::RequestControl))
        .await;
    let prompt = x.window("^Jumpgate: remote access request$");
    x.click(&prompt, "allow");
    v.until("control given back", |v| {
        v.states
            .last()
            .is_some_and(|s| s.input == InputState::Allowed)
    })
    .await;
    v.send(SessionMsg::Clipboard(AFTER.to_owned())).await;
    x.poll("the last text on the endpoint", || {
        (x.clipboard() == AFTER).then_some(())
    });
    v.close().await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let entries = loop {
        let entries = audit(&site).await;
        if entries
            .iter()
            .any(|e| e["action"] == "session-close:desktop")
        {
            break entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session-close entry"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut from_tech: Vec<String> = entries
        .iter()
        .filter(|e| e["action"] == "desktop-clipboard")
        .filter_map(|e| e["detail"].as_str())
        .filter_map(|d| d.split_once("from=technician bytes="))
        .map(|(_, n)| n.to_owned())
        .collect();
    from_tech.sort();
    let mut want = vec![BEFORE.len().to_string(), AFTER.len().to_string()];
    want.sort();
    assert_eq!(from_tech, want, "only the texts sent with control crossed");
    let close = entries
        .iter()
        .find(|e| e["action"] == "session-close:desktop")
        .unwrap();
    let detail = close["detail"].as_str().unwrap();
    assert!(detail.contains(" dropped_input=1 "), "{detail}");
    assert_eq!(close["outcome"], "ok");
}
