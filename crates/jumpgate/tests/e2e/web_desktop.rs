//! The console's desktop side in Debian's chromium (playwright-core,
//! `tests/browser/desktop.mjs`) against a real gateway: the page's pure
//! modules under `node --test`, and the player replaying a desktop
//! recording made of real codec packets (`jumpgate_codec::Encoder`, the
//! synthetic screens of the codec's own tests), read back from the canvas
//! pixel for pixel after seeking forward and back.

#[path = "../../../codec/tests/support/synth.rs"]
mod synth;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jumpgate_codec::{Config, Encoder, Packet};
use synth::{Screen, Terminal};
use tokio::process::Command;

use crate::support::{ADMIN, ADMIN_PASSWORD, Site};

const BROWSER_RUN: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/desktop")
}

#[test]
fn the_consoles_pure_modules_pass_their_unit_tests() {
    let out = std::process::Command::new("node")
        .args(["--test", "units.test.mjs"])
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run node: run ./scripts/test, which installs it");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("# fail 0"), "{text}");
}

/// A desktop recording in the gateway's format, written as a live session
/// would be: two streams (a resolution change in between), typing, the
/// lossless refinement, a cursor, control-state and clipboard events.
struct Synthetic {
    text: String,
    /// (time, RGBA the screen shows once refined) to seek to.
    checkpoints: Vec<(f64, Vec<u8>, u32, u32)>,
}

fn rgba(s: &Screen) -> Vec<u8> {
    s.data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0], 255])
        .collect()
}

/// A screen no codec would get right by accident: the desktop, a bright
/// pattern of 16-pixel squares in the corner, and a terminal.
fn pattern_screen(w: u32, h: u32, seed: u64) -> (Screen, Terminal) {
    let mut s = Screen::desktop(w, h);
    for by in 0..4u32 {
        for bx in 0..6u32 {
            let c = [
                (bx * 40 + 20) as u8,
                (by * 60 + 10) as u8,
                ((bx + by) * 25) as u8,
            ];
            s.fill(8 + bx * 16, 8 + by * 16, 16, 16, c);
        }
    }
    let mut t = Terminal::new(8, 90, (w - 24) / 8, (h - 130) / 16, seed);
    t.draw(&mut s);
    (s, t)
}

fn synthetic_recording() -> Synthetic {
    let mut text = String::new();
    let base = Instant::now();
    let line = |text: &mut String, t: f64, kind: &str, data: serde_json::Value| {
        let _ = writeln!(
            text,
            "{}",
            serde_json::json!([(t * 1e6).round() / 1e6, kind, data])
        );
    };
    let video = |text: &mut String, t: f64, ps: &[Packet]| {
        for p in ps {
            let b = base64::engine::general_purpose::STANDARD.encode(p.to_bytes());
            line(text, t, "v", serde_json::Value::String(b));
        }
    };
    let info = |w: u32, h: u32| serde_json::json!({"width": w, "height": h, "monitors": [], "monitor": null, "codec": "jumpgate-1"});
    let _ = writeln!(
        text,
        "{}",
        serde_json::json!({"jumpgate": "desktop", "version": 1, "width": 480, "height": 272,
            "timestamp": 1_764_579_600, "title": "tom@web-1"})
    );
    let mut checkpoints = Vec::new();
    let mut enc = Encoder::new(Config::default());
    let mut t = 0.0f64;
    let at = |t: f64| base + Duration::from_secs_f64(t);
    line(
        &mut text,
        t,
        "x",
        serde_json::json!({"input": "allowed", "message": "allowed by the user"}),
    );
    line(&mut text, 0.01, "i", info(480, 272));
    // Stream 1: the picture, then typing, then idle until pixel-exact.
    let (mut s, mut term) = pattern_screen(480, 272, 21);
    t = 0.02;
    video(&mut text, t, &enc.encode(&s.frame(), None, at(t)).unwrap());
    // A cursor: an 8×8 red square with its hot spot in the middle.
    let shape: Vec<u8> = (0..64).flat_map(|_| [220u8, 20, 20, 255]).collect();
    line(
        &mut text,
        0.05,
        "s",
        serde_json::json!({"id": 1, "width": 8, "height": 8, "hot_x": 4, "hot_y": 4,
        "rgba": base64::engine::general_purpose::STANDARD.encode(&shape)}),
    );
    line(&mut text, 0.05, "c", serde_json::json!([300, 40, 1]));
    for _ in 0..6 {
        t += 0.05;
        let dirty = term.type_chars(3);
        term.draw(&mut s);
        video(
            &mut text,
            t,
            &enc.encode(&s.frame(), Some(&dirty), at(t)).unwrap(),
        );
    }
    for _ in 0..4 {
        t += 0.05;
        term.scroll();
        term.draw(&mut s);
        video(
            &mut text,
            t,
            &enc.encode(&s.frame(), Some(&[term.rect()]), at(t)).unwrap(),
        );
    }
    let mut n = 0;
    while let Some(due) = enc.refine_due() {
        t = t.max(due.duration_since(base).as_secs_f64()) + 0.001;
        video(
            &mut text,
            t,
            &enc.encode(&s.frame(), Some(&[]), at(t)).unwrap(),
        );
        n += 1;
        assert!(n < 200, "the refinement does not end");
    }
    t += 0.2;
    checkpoints.push((t, rgba(&s), s.w, s.h));
    t += 0.3;
    line(
        &mut text,
        t,
        "x",
        serde_json::json!({"input": "taken-back", "message": "the user took back control"}),
    );
    t += 0.2;
    line(
        &mut text,
        t,
        "b",
        serde_json::json!({"from": "technician", "bytes": 12}),
    );
    // Stream 2: a resolution change (a new stream start).
    t += 0.3;
    line(&mut text, t, "i", info(400, 240));
    let (s2, _) = pattern_screen(400, 240, 22);
    video(&mut text, t, &enc.encode(&s2.frame(), None, at(t)).unwrap());
    let mut n = 0;
    while let Some(due) = enc.refine_due() {
        t = t.max(due.duration_since(base).as_secs_f64()) + 0.001;
        video(
            &mut text,
            t,
            &enc.encode(&s2.frame(), Some(&[]), at(t)).unwrap(),
        );
        n += 1;
        assert!(n < 200, "the refinement does not end");
    }
    t += 0.2;
    line(
        &mut text,
        t,
        "x",
        serde_json::json!({"input": "ended", "message": "the user ended the session"}),
    );
    checkpoints.push((t, rgba(&s2), s2.w, s2.h));
    Synthetic { text, checkpoints }
}

/// Logs in, then runs `tests/browser/desktop.mjs` with `envs`; returns its
/// stdout (the test fails with everything it printed when it fails).
async fn run_browser(site: &Site, envs: &[(&str, String)]) -> String {
    let chromium = std::env::var_os("JG_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is missing: run ./scripts/test",
        chromium.display()
    );
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is missing: run ./scripts/test (npm ci in tests/browser)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("desktop.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_ARTIFACTS", artifacts_dir())
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(BROWSER_RUN, cmd.output())
        .await
        .expect("the browser test hung")
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{}\ngateway log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        site.gateway.stderr.text()
    );
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("DESKTOP-TEST PASSED"), "{report}");
    stdout
}

#[tokio::test]
async fn a_desktop_recording_replays_in_the_console_pixel_exact_with_seeking() {
    let site = Site::start().await;
    // An endpoint with no X display: given one that does not exist, so that
    // it cannot find another test's Xvfb on this machine instead.
    let token = site.enroll_token(&[]).await;
    let _agent = site.spawn_agent("web-1", Some(&token), &["--display", ":59000"]);
    site.wait_online("web-1", true).await;
    let rec = synthetic_recording();
    let dir = site.dir.path().join("replay");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(artifacts_dir()).unwrap();
    let file = dir.join("recording.jsonl");
    std::fs::write(&file, &rec.text).unwrap();
    let mut checkpoints = Vec::new();
    for (i, (t, pixels, w, h)) in rec.checkpoints.iter().enumerate() {
        let p = dir.join(format!("checkpoint-{i}.rgba"));
        std::fs::write(&p, pixels).unwrap();
        checkpoints.push(format!("{t}:{w}x{h}:{}", p.display()));
    }
    let stdout = run_browser(
        &site,
        &[
            ("JG_REPLAY_FILE", file.display().to_string()),
            ("JG_REPLAY_CHECKPOINTS", checkpoints.join(",")),
            ("JG_PAGES_ENDPOINT", "web-1".to_owned()),
        ],
    )
    .await;
    assert!(stdout.contains("REPLAY=pixel-exact"), "{stdout}");
    let said = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DESKTOP_PAGE_SAID="))
        .unwrap_or_default();
    assert!(
        said.contains("no X display"),
        "the page gives the endpoint's answer: {stdout}"
    );
}

/// The live desktop page against a real agent on a real Xvfb display: the
/// screen's pattern read back from the canvas, a click landing at the same
/// pixel on the endpoint, text typed in the browser arriving as typed in an
/// xterm there, and a monitor that is gone answered with a note.
#[tokio::test]
async fn a_live_desktop_in_the_console_shows_the_screen_and_takes_clicks_and_typing() {
    use jumpgate_test_support::xvfb::Xvfb;
    let site = Site::start().await;
    let out = site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let x = Xvfb::sized(1024, 768);
    x.run("xsetroot", &["-solid", "#1f60d0"]);
    // Two monitors side by side (the page lists them).
    x.run(
        "xrandr",
        &["--setmonitor", "left", "512/135x768/203+0+0", "none"],
    );
    x.run(
        "xrandr",
        &["--setmonitor", "right", "512/135x768/203+512+0", "none"],
    );
    let dir = tempfile::tempdir().unwrap();
    let typed = dir.path().join("typed.txt");
    let ready = dir.path().join("ready");
    let script = format!("touch {}; exec cat > {}", ready.display(), typed.display());
    let mut xterm = x
        .cmd(
            "xterm",
            &[
                "-u8",
                "-geometry",
                "80x10+100+100",
                "-bg",
                "#20a040",
                "-fg",
                "#ffffff",
                "-e",
                "sh",
                "-c",
                &script,
            ],
        )
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xterm");
    x.poll("the xterm's shell", || ready.exists().then_some(()));
    let geometry = x.poll("the xterm's window", || {
        let ids = x.output("xdotool", &["search", "--onlyvisible", "--class", "xterm"]);
        ids.lines().next().map(|id| x.geometry(id))
    });
    let (wx, wy, ww, wh) = geometry;
    let token = site.enroll_token(&[]).await;
    let _agent = site.spawn_agent("live", Some(&token), &["--display", &x.display]);
    site.wait_online("live", true).await;
    // The root's colour far from the xterm, and the xterm's background in
    // its lower right corner (no text there).
    let pattern = format!(
        "900,700,1f60d0;20,20,1f60d0;{},{},20a040",
        wx + ww - 6,
        wy + wh - 6
    );
    let stdout = run_browser(
        &site,
        &[
            ("JG_DESKTOP_ENDPOINT", "live".to_owned()),
            ("JG_DISPLAY", x.display.clone()),
            ("JG_PATTERN", pattern),
            ("JG_CLICK", format!("{},{}", wx + ww / 2, wy + wh / 2)),
            ("JG_TYPED_FILE", typed.display().to_string()),
        ],
    )
    .await;
    assert!(stdout.contains("TYPED=ok"), "{stdout}");
    assert!(
        stdout.contains("MONITOR_NOTE=The endpoint could not do that: there is no monitor 7"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&typed).unwrap(),
        "Grüße, Wörld! ½ €\n",
        "typed exactly"
    );
    let _ = xterm.kill();
    let _ = xterm.wait();
}

/// The endpoint's X server stops while the console shows its screen: the
/// page says the session ended at the endpoint and why, the session list
/// shows the stored outcome (an endpoint-side error), and the recording's
/// timeline names the failure.
#[tokio::test]
async fn a_display_going_away_shows_in_the_page_the_session_list_and_the_replay() {
    use jumpgate_test_support::xvfb::Xvfb;
    let site = Site::start().await;
    let out = site
        .jg(&["admin", "groups", "update", "default", "--consent", "none"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let mut x = Xvfb::sized(640, 480);
    x.run("xsetroot", &["-solid", "#1f60d0"]);
    let token = site.enroll_token(&[]).await;
    let _agent = site.spawn_agent("fragile", Some(&token), &["--display", &x.display]);
    site.wait_online("fragile", true).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("drawn");
    let envs = [
        ("JG_GONE_ENDPOINT", "fragile".to_owned()),
        ("JG_GONE_READY", ready.display().to_string()),
    ];
    let browser = run_browser(&site, &envs);
    let stop_x = async {
        let deadline = tokio::time::Instant::now() + BROWSER_RUN;
        while !ready.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never drew the screen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        x.stop_server();
    };
    let (stdout, ()) = tokio::join!(browser, stop_x);
    assert!(
        stdout.contains("GONE_OUTCOME=error: endpoint side: the endpoint's display went away"),
        "{stdout}"
    );
}
