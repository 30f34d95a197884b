//! The prompt and the indicator on a real X server (Xvfb + openbox),
//! clicked with xdotool like a user would.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use jumpgate_consent::{
    ConsentError, Decision, IndicatorConfig, IndicatorEvent, PromptRequest, Rights, SessionState,
    Technician, Trigger,
};
use support::{Xvfb, have_tools};

const PROMPT_TITLE: &str = "^Jumpgate: remote access request$";
const BAR_TITLE: &str = "^Jumpgate: remote session$";

macro_rules! need_x {
    () => {
        if !have_tools() {
            eprintln!("skipped: Xvfb, openbox, xdotool, x11-utils, x11-apps or imagemagick missing (scripts/test installs them)");
            return;
        }
    };
}

fn technician() -> Technician {
    Technician {
        name: "Alice Martin".into(),
        site: "Acme IT Support (gw.acme.example)".into(),
    }
}

fn request(timeout_ms: u64) -> PromptRequest {
    PromptRequest {
        technician: technician(),
        rights: Rights {
            view: true,
            control: true,
            clipboard: true,
        },
        timeout_ms,
    }
}

/// Shows a prompt on `x` in a thread; returns the window and the answer.
fn show_prompt(
    x: &Xvfb,
    req: PromptRequest,
) -> (String, mpsc::Receiver<Result<Decision, ConsentError>>) {
    let (tx, rx) = mpsc::channel();
    let display = x.display.clone();
    thread::spawn(move || {
        let _ = tx.send(jumpgate_consent::ask(Some(&display), &req));
    });
    let w = x.poll("the prompt window", || {
        if let Ok(early) = rx.try_recv() {
            panic!("the prompt ended before it was seen: {early:?}");
        }
        let w = x.windows(PROMPT_TITLE);
        (w.len() == 1).then(|| w[0].clone())
    });
    (w, rx)
}

fn answer(rx: &mpsc::Receiver<Result<Decision, ConsentError>>) -> Result<Decision, ConsentError> {
    rx.recv_timeout(support::WAIT).expect("the prompt answered")
}

#[test]
fn prompt_deny_click_denies_and_the_window_goes() {
    need_x!();
    let x = Xvfb::start();
    let (w, rx) = show_prompt(&x, request(60_000));
    // The screenshot for the record: the window with its frame and a margin.
    let (wx, wy, ww, wh) = x.geometry(&w);
    x.poll("the prompt painted", || {
        (x.pixel(wx + ww / 2, wy + 1) == 0x1A73E8).then_some(())
    });
    x.screenshot(
        "consent-prompt.png",
        Some((wx - 40, wy - 60, ww + 80, wh + 100)),
    );
    x.click(&w, "deny");
    assert_eq!(answer(&rx).expect("a decision"), Decision::Denied);
    x.poll("the prompt gone", || {
        x.windows(PROMPT_TITLE).is_empty().then_some(())
    });
}

#[test]
fn prompt_allow_click_allows() {
    need_x!();
    let x = Xvfb::start();
    let (w, rx) = show_prompt(&x, request(60_000));
    x.click(&w, "allow");
    assert_eq!(answer(&rx).expect("a decision"), Decision::Allowed);
}

#[test]
fn prompt_without_an_answer_times_out() {
    need_x!();
    let x = Xvfb::start();
    let (w, rx) = show_prompt(&x, request(5_000));
    // A click outside the buttons is no answer.
    x.run(
        "xdotool",
        &["mousemove", "--window", &w, "20", "20", "click", "1"],
    );
    assert_eq!(answer(&rx).expect("a decision"), Decision::TimedOut);
    x.poll("the prompt gone", || {
        x.windows(PROMPT_TITLE).is_empty().then_some(())
    });
}

#[test]
fn prompt_closed_by_the_window_manager_is_an_error() {
    need_x!();
    let x = Xvfb::start();
    let (w, rx) = show_prompt(&x, request(60_000));
    // openbox closes the focused window on Alt+F4 (WM_DELETE_WINDOW). On a
    // loaded machine the first press can come before openbox manages the
    // window (seen once under a load of 10): pressed again while the
    // window is still there.
    let answered = x.poll("the window manager closing the prompt", || {
        if !x.windows(PROMPT_TITLE).is_empty() {
            let _ = x.cmd("xdotool", &["windowactivate", "--sync", &w]).status();
            let _ = x.cmd("xdotool", &["key", "alt+F4"]).status();
        }
        rx.recv_timeout(std::time::Duration::from_secs(2)).ok()
    });
    assert!(
        matches!(answered, Err(ConsentError::Closed)),
        "{answered:?}"
    );
}

#[test]
fn prompt_escape_denies_and_press_release_must_be_on_one_button() {
    need_x!();
    let x = Xvfb::start();
    let (w, rx) = show_prompt(&x, request(60_000));
    // Press on Allow, release on Deny: no answer (like any toolkit).
    let (ax, ay, aw, ah) = x.button(&w, "allow");
    let (dx, dy, dw, dh) = x.button(&w, "deny");
    let s = |v: i32| v.to_string();
    x.run(
        "xdotool",
        &[
            "mousemove",
            "--window",
            &w,
            &s(ax + aw / 2),
            &s(ay + ah / 2),
            "mousedown",
            "1",
        ],
    );
    x.run(
        "xdotool",
        &[
            "mousemove",
            "--window",
            &w,
            &s(dx + dw / 2),
            &s(dy + dh / 2),
            "mouseup",
            "1",
        ],
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no decision from a dragged click"
    );
    x.run("xdotool", &["windowactivate", "--sync", &w]);
    x.run("xdotool", &["key", "Escape"]);
    assert_eq!(answer(&rx).expect("a decision"), Decision::Denied);
}

#[test]
fn prompt_without_a_display_is_an_error() {
    // No server at 999; 65000 makes x11rb overflow (a panic in debug builds).
    for display in [":999", ":65000"] {
        let err = jumpgate_consent::ask(Some(display), &request(1_000)).expect_err("no display");
        assert!(
            matches!(err, ConsentError::NoDisplay(_)),
            "{display}: {err:?}"
        );
    }
}

/// Shows the indicator on `x`; events arrive on the returned channel.
fn show_indicator(
    x: &Xvfb,
    state: SessionState,
) -> (
    jumpgate_consent::Indicator,
    mpsc::Receiver<IndicatorEvent>,
    String,
) {
    let (tx, rx) = mpsc::channel();
    let config = IndicatorConfig::new(technician(), state);
    let indicator = jumpgate_consent::Indicator::show(Some(&x.display), &config, move |e| {
        let _ = tx.send(e);
    })
    .expect("indicator shown");
    let bar = x.window(BAR_TITLE);
    (indicator, rx, bar)
}

fn event(rx: &mpsc::Receiver<IndicatorEvent>) -> IndicatorEvent {
    rx.recv_timeout(support::WAIT).expect("an indicator event")
}

fn status(x: &Xvfb, bar: &str) -> String {
    x.prop(bar, "_JUMPGATE_STATUS")
        .expect("_JUMPGATE_STATUS set")
}

#[test]
fn indicator_border_bar_buttons_and_shortcut() {
    need_x!();
    let x = Xvfb::start();
    let (indicator, rx, bar) = show_indicator(&x, SessionState::Controlling);
    assert_eq!(indicator.shortcut(), Some("Ctrl+Alt+Shift+Escape"));
    assert_eq!(status(&x, &bar), "Alice Martin is controlling your screen");

    // The border is on screen, in its colour, at every edge.
    let orange = jumpgate_consent::indicator::DEFAULT_BORDER_COLOR;
    x.poll("the border painted", || {
        (x.pixel(0, 0) == orange).then_some(())
    });
    for (px, py) in [(640, 2), (640, 797), (2, 400), (1277, 400)] {
        assert_eq!(x.pixel(px, py), orange, "border at ({px}, {py})");
    }
    assert_ne!(
        x.pixel(640, 400),
        orange,
        "the middle of the screen is not covered"
    );
    // The border lets clicks through: the pointer over it is over the root
    // window, while over the bar it is over the bar (positive control).
    let (bx, by, bw, bh) = x.geometry(&bar);
    assert_eq!(
        x.window_at(bx + bw / 2, by + bh / 2),
        bar,
        "the bar takes the pointer"
    );
    for (px, py) in [(100, 2), (2, 400), (1277, 600), (300, 797)] {
        let under = x.window_at(px, py);
        assert!(
            !x.output("xwininfo", &["-id", &under])
                .contains("session border"),
            "the border at ({px}, {py}) takes the pointer ({under})"
        );
    }

    let (sx, sy) = (bx - 30, by.max(0));
    x.screenshot(
        "consent-indicator-bar.png",
        Some((sx.max(0), 0, bw + 60, sy + bh + 40)),
    );
    x.screenshot("consent-indicator.png", None);

    // Take back control: the button.
    x.click(&bar, "take-back-control");
    assert_eq!(
        event(&rx),
        IndicatorEvent::TakeBackControl {
            trigger: Trigger::Button
        }
    );
    x.poll("the bar saying the user has control", || {
        status(&x, &bar)
            .starts_with("You have control")
            .then_some(())
    });
    assert_eq!(
        status(&x, &bar),
        "You have control · Alice Martin can still see your screen"
    );
    let (bx, by, bw, bh) = x.geometry(&bar);
    x.screenshot(
        "consent-indicator-user-control.png",
        Some(((bx - 30).max(0), 0, bw + 60, by + bh + 40)),
    );

    // The technician is allowed again: the owner says so.
    indicator.set_state(SessionState::Controlling);
    x.poll("the bar back to controlling", || {
        (status(&x, &bar) == "Alice Martin is controlling your screen").then_some(())
    });

    // The shortcut, wherever the focus is.
    x.run("xdotool", &["key", "ctrl+alt+shift+Escape"]);
    assert_eq!(
        event(&rx),
        IndicatorEvent::TakeBackControl {
            trigger: Trigger::Shortcut
        }
    );
    // Escape alone is not the shortcut (positive control above).
    x.run("xdotool", &["key", "Escape"]);

    // End session.
    x.click(&bar, "end-session");
    assert_eq!(
        event(&rx),
        IndicatorEvent::EndSession,
        "End session (and no event from plain Escape)"
    );

    indicator.close();
    x.poll("the indicator gone", || {
        (x.windows(BAR_TITLE).is_empty() && x.pixel(0, 0) != orange).then_some(())
    });
}

#[test]
fn indicator_stays_on_top_of_new_windows() {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
    need_x!();
    let x = Xvfb::start();
    let (_indicator, _rx, bar) = show_indicator(&x, SessionState::Viewing);
    let (bx, by, bw, bh) = x.geometry(&bar);
    // A window mapped later over the bar's place goes on top of it (an
    // override-redirect one, so no window manager sorts it below).
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    let cover = conn.generate_id().expect("id");
    let aux = CreateWindowAux::new()
        .background_pixel(0x00ff00)
        .override_redirect(1);
    conn.create_window(
        0,
        cover,
        root,
        (bx - 10) as i16,
        (by - 3) as i16,
        (bw + 20) as u16,
        (bh + 6) as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &aux,
    )
    .expect("create");
    conn.map_window(cover).expect("map");
    conn.flush().expect("flush");
    // The bar raises itself when covered.
    x.poll("the bar back on top", || {
        (x.window_at(bx + bw / 2, by + bh / 2) == bar).then_some(())
    });
    // And the cover is really there, around the bar (positive control).
    assert_eq!(x.window_at(bx - 5, by + bh / 2), cover.to_string());
}

/// The child process: prompt and indicator over the line protocol, and a
/// dead child seen as EOF.
#[test]
fn child_process_speaks_the_line_protocol_and_dies_visibly() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    need_x!();
    let x = Xvfb::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jumpgate-consent"))
        .env("DISPLAY", &x.display)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning jumpgate-consent");
    let mut stdin = child.stdin.take().expect("piped");
    let (tx, lines) = mpsc::channel::<Option<serde_json::Value>>();
    let stdout = child.stdout.take().expect("piped");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(Some(serde_json::from_str(&line).expect("JSON line")));
        }
        let _ = tx.send(None); // EOF
    });
    let next = || lines.recv_timeout(support::WAIT).expect("a line or EOF");
    let mut send = |v: serde_json::Value| {
        writeln!(stdin, "{v}").expect("writing to the child");
    };
    assert_eq!(next().expect("ready")["type"], "ready");

    send(serde_json::json!({"type": "prompt", "id": 7, "request": {
        "technician": {"name": "Bob\u{202E} <b>Evil</b>", "site": "Acme"},
        "rights": {"view": true, "control": false, "clipboard": false}}}));
    let w = x.window(PROMPT_TITLE);
    x.click(&w, "allow");
    let answer = next().expect("decision");
    assert_eq!(
        answer,
        serde_json::json!({"type": "decision", "id": 7, "decision": "allowed"})
    );

    send(serde_json::json!({"type": "nonsense"}));
    assert_eq!(next().expect("bad request")["type"], "bad_request");

    send(serde_json::json!({"type": "show_indicator", "config": {
        "technician": {"name": "Bob", "site": "Acme"}, "state": "viewing"}}));
    let shown = next().expect("shown");
    assert_eq!(
        shown,
        serde_json::json!({"type": "indicator_shown", "shortcut": "Ctrl+Alt+Shift+Escape"})
    );
    let bar = x.window(BAR_TITLE);
    send(serde_json::json!({"type": "set_state", "state": "controlling"}));
    x.poll("state set", || {
        (status(&x, &bar) == "Bob is controlling your screen").then_some(())
    });
    x.click(&bar, "end-session");
    assert_eq!(
        next().expect("event"),
        serde_json::json!({"type": "indicator", "event": "end_session"})
    );
    x.run("xdotool", &["key", "ctrl+alt+shift+Escape"]);
    assert_eq!(
        next().expect("event"),
        serde_json::json!({"type": "indicator", "event": "take_back_control", "trigger": "shortcut"})
    );

    // A prompt pending when the child dies: the parent reads EOF.
    send(serde_json::json!({"type": "prompt", "id": 8, "request": {
        "technician": {"name": "Bob", "site": "Acme"}, "rights": {"view": true, "control": true, "clipboard": false}}}));
    x.window(PROMPT_TITLE);
    child.kill().expect("killing the child");
    assert_eq!(next(), None, "EOF after the child died");
    let _ = child.wait();
    // Its windows went with it.
    x.poll("windows gone", || {
        (x.windows(PROMPT_TITLE).is_empty() && x.windows(BAR_TITLE).is_empty()).then_some(())
    });
}

#[test]
fn child_exits_and_clears_the_screen_at_eof() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    need_x!();
    let x = Xvfb::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jumpgate-consent"))
        .env("DISPLAY", &x.display)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning jumpgate-consent");
    let mut stdin = child.stdin.take().expect("piped");
    writeln!(stdin, r#"{{"type":"show_indicator","config":{{"technician":{{"name":"Bob","site":"Acme"}},"state":"viewing"}}}}"#)
        .expect("write");
    x.window(BAR_TITLE);
    drop(stdin);
    let status = x.poll("the child exiting", || child.try_wait().ok().flatten());
    assert!(status.success(), "{status}");
    assert!(x.windows(BAR_TITLE).is_empty());
}

// ---- the attended-support window (jumpgate assist) -------------------------

const ASSIST_TITLE: &str = "^Jumpgate: remote support$";

mod assist_window {
    use std::sync::mpsc;

    use jumpgate_consent::assist::AssistWindow;
    use jumpgate_consent::assist_child::{ChatKind, FromAssistUi, Switch, ToAssistUi};

    use super::support::{WAIT, Xvfb};
    use super::{ASSIST_TITLE, have_tools};

    fn switches(on: &[&str]) -> ToAssistUi {
        let all = [
            ("view", "See your screen"),
            ("control", "Control mouse and keyboard"),
            ("clipboard", "Share the clipboard"),
            ("shell", "Run commands"),
            ("files", "Transfer files"),
        ];
        ToAssistUi::Switches {
            list: all
                .iter()
                .map(|(r, l)| Switch {
                    right: (*r).into(),
                    label: (*l).into(),
                    on: on.contains(r),
                })
                .collect(),
        }
    }

    /// The next event that is not a geometry report.
    fn next(rx: &mpsc::Receiver<FromAssistUi>) -> FromAssistUi {
        loop {
            match rx.recv_timeout(WAIT).expect("an event from the window") {
                FromAssistUi::Geometry { .. } => {}
                e => return e,
            }
        }
    }

    /// The window with its frame, as a PNG among the test artifacts (and
    /// in /work/shots when there is one), with ImageMagick's own convert
    /// (a stand-in may shadow it on PATH).
    fn shot(x: &Xvfb, w: &str, file: &str) {
        let convert = ["/usr/bin/convert-im6.q16", "/usr/bin/convert"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(convert) = convert else {
            eprintln!("no screenshot: ImageMagick missing");
            return;
        };
        let (wx, wy, ww, wh) = x.geometry(w);
        let path = super::support::artifacts().join(file);
        let crop = format!(
            "{}x{}+{}+{}",
            ww + 40,
            wh + 60,
            (wx - 20).max(0),
            (wy - 40).max(0)
        );
        x.run(
            "sh",
            &[
                "-c",
                &format!(
                    "xwd -root -silent | {convert} xwd:- -crop {crop} +repage png:{}",
                    path.display()
                ),
            ],
        );
        if std::path::Path::new("/work/shots").is_dir() {
            let _ = std::fs::copy(&path, std::path::Path::new("/work/shots").join(file));
        }
    }

    fn status(x: &Xvfb, w: &str) -> String {
        x.prop(w, "_JUMPGATE_STATUS").unwrap_or_default()
    }

    fn wait_status(x: &Xvfb, w: &str, needle: &str) {
        x.poll(&format!("status with {needle:?}"), || {
            status(x, w).contains(needle).then_some(())
        });
    }

    #[test]
    fn asks_switches_chat_end_and_rating() {
        if !have_tools() {
            eprintln!("skipped: X tools missing");
            return;
        }
        let x = Xvfb::start();
        let (tx, rx) = mpsc::channel();
        let window = AssistWindow::show(Some(&x.display), move |e| {
            let _ = tx.send(e);
        })
        .expect("window shown");
        let w = x.window(ASSIST_TITLE);
        // Where it is, for the client's input guard.
        let geometry = loop {
            if let FromAssistUi::Geometry { w, h, .. } = rx.recv_timeout(WAIT).expect("geometry") {
                break (w, h);
            }
        };
        assert_eq!(geometry, (400, 680));

        window.send(ToAssistUi::Setup {
            site: "Acme IT Support".into(),
            server: "https://support.acme.example".into(),
        });
        window.send(ToAssistUi::Status {
            text: "Connected with alice".into(),
            connected: true,
        });
        window.send(ToAssistUi::Participants {
            list: vec!["alice (technician)".into(), "bob (observer)".into()],
        });
        window.send(switches(&[]));
        for (from, text, kind) in [
            ("", "alice accepted your request", ChatKind::System),
            (
                "alice",
                "Hello! I will need to see your screen to look at the printer settings.",
                ChatKind::Technician,
            ),
            ("Customer", "Sure, go ahead.", ChatKind::Customer),
        ] {
            window.send(ToAssistUi::Chat {
                from: from.into(),
                text: text.into(),
                kind,
            });
        }

        // An ask: Allow.
        window.send(ToAssistUi::Ask {
            id: 7,
            right: "control".into(),
            label: "Control mouse and keyboard".into(),
            technician: "alice".into(),
            timeout_ms: 60_000,
        });
        wait_status(&x, &w, "ask=7");
        x.click(&w, "allow");
        assert_eq!(
            next(&rx),
            FromAssistUi::Answer {
                id: 7,
                allowed: true
            }
        );
        wait_status(&x, &w, "ask=;");

        // Switches show what the client granted; clicking an on switch
        // revokes, an off switch does nothing (a right is only given by
        // answering an ask).
        window.send(switches(&["view", "control"]));
        wait_status(&x, &w, "on=view,control;");
        x.click(&w, "switch-shell");
        x.click(&w, "switch-control");
        assert_eq!(
            next(&rx),
            FromAssistUi::Revoke {
                right: "control".into()
            },
            "the off switch sent nothing"
        );

        // Another ask: Deny; the screenshot while it is up.
        window.send(ToAssistUi::Ask {
            id: 8,
            right: "shell".into(),
            label: "Run commands".into(),
            technician: "alice".into(),
            timeout_ms: 60_000,
        });
        window.send(switches(&["view"]));
        wait_status(&x, &w, "ask=8");
        wait_status(&x, &w, "on=view;");
        shot(&x, &w, "assist-window.png");
        x.click(&w, "deny");
        assert_eq!(
            next(&rx),
            FromAssistUi::Answer {
                id: 8,
                allowed: false
            }
        );

        // Chat typed into the entry.
        x.run("xdotool", &["windowactivate", "--sync", &w]);
        x.run(
            "xdotool",
            &[
                "type",
                "--window",
                &w,
                "--delay",
                "5",
                "It works now, thanks!",
            ],
        );
        x.run("xdotool", &["key", "--window", &w, "Return"]);
        assert_eq!(
            next(&rx),
            FromAssistUi::Chat {
                text: "It works now, thanks!".into()
            }
        );

        // End session, then the rating.
        x.click(&w, "end");
        assert_eq!(next(&rx), FromAssistUi::End);
        window.send(ToAssistUi::Ended {
            reason: "You ended the session.".into(),
            rating: true,
        });
        wait_status(&x, &w, "screen=rating");
        x.click(&w, "star-4");
        wait_status(&x, &w, "stars=4");
        shot(&x, &w, "assist-rating.png");
        x.run(
            "xdotool",
            &["type", "--window", &w, "--delay", "5", "quick"],
        );
        x.click(&w, "submit");
        assert_eq!(
            next(&rx),
            FromAssistUi::Rating {
                stars: 4,
                comment: "quick".into()
            }
        );
        assert_eq!(next(&rx), FromAssistUi::Closed);
        drop(window);
        x.poll("the window gone", || {
            x.windows(ASSIST_TITLE).is_empty().then_some(())
        });
    }

    #[test]
    fn the_child_process_shows_the_window_and_eof_takes_it_down() {
        if !have_tools() {
            eprintln!("skipped: X tools missing");
            return;
        }
        let x = Xvfb::start();
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>();
        let (out_tx, out_rx) = mpsc::channel::<String>();
        let display = x.display.clone();
        let child = std::thread::spawn(move || {
            let input = std::io::BufReader::new(ChannelReader(in_rx, Vec::new()));
            jumpgate_consent::assist_child::run_assist_child_on(
                Some(&display),
                input,
                LineWriter(out_tx, Vec::new()),
            )
        });
        let ready = out_rx.recv_timeout(WAIT).expect("ready");
        assert!(ready.contains(r#""type":"ready""#), "{ready}");
        let w = x.window(ASSIST_TITLE);
        in_tx
            .send(
                br#"{"type":"status","text":"Waiting for a technician","connected":false}"#
                    .to_vec(),
            )
            .unwrap();
        in_tx.send(b"\n".to_vec()).unwrap();
        x.poll("the status shown", || {
            status(&x, &w)
                .contains("Waiting for a technician")
                .then_some(())
        });
        in_tx.send(b"{\"type\":\"nonsense\"}\n".to_vec()).unwrap();
        loop {
            let line = out_rx.recv_timeout(WAIT).expect("bad request");
            if line.contains("bad_request") {
                break;
            }
        }
        x.click(&w, "end");
        loop {
            let line = out_rx.recv_timeout(WAIT).expect("end");
            if line.contains(r#"{"type":"end"}"#) {
                break;
            }
        }
        drop(in_tx);
        child.join().unwrap().expect("child body");
        x.poll("the window gone", || {
            x.windows(ASSIST_TITLE).is_empty().then_some(())
        });
    }

    struct ChannelReader(mpsc::Receiver<Vec<u8>>, Vec<u8>);

    impl std::io::Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                match self.0.recv() {
                    Ok(b) => self.1 = b,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }

    struct LineWriter(mpsc::Sender<String>, Vec<u8>);

    impl std::io::Write for LineWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(buf);
            while let Some(i) = self.1.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.1.drain(..=i).collect();
                let _ = self
                    .0
                    .send(String::from_utf8_lossy(&line).trim().to_owned());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
