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
            eprintln!("skipped: Xvfb, xdotool, openbox or xprop not installed (scripts/test installs them)");
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
    // openbox closes the focused window on Alt+F4 (WM_DELETE_WINDOW).
    x.run("xdotool", &["windowactivate", "--sync", &w]);
    x.run("xdotool", &["key", "alt+F4"]);
    assert!(matches!(answer(&rx), Err(ConsentError::Closed)));
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
    // Display 999 has no server.
    let err = jumpgate_consent::ask(Some(":999"), &request(1_000)).expect_err("no display");
    assert!(matches!(err, ConsentError::NoDisplay(_)), "{err:?}");
}
