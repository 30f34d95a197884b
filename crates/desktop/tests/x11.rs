//! Capture, input and clipboard against a real Xvfb and real X clients
//! (xterm, xclip, xrandr).

mod support;

use std::time::{Duration, Instant};

use jumpgate_desktop::clipboard::DEFAULT_LIMIT;
use jumpgate_desktop::keysym;
use jumpgate_desktop::{
    Button, CaptureOptions, Capturer, Clipboard, ClipboardChange, DisplayOptions, Error, Input,
    Rect, Selection, SelectionKind,
};
use support::{Xvfb, fill, wait_for, window};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{ConnectionExt as _, EventMask, KeyButMask};

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const BLUE: u32 = 0x0000ff;

/// The next update within `timeout` that satisfies `f` (earlier ones skipped).
fn update_where(
    cap: &mut Capturer,
    timeout: Duration,
    mut f: impl FnMut(&jumpgate_desktop::Update<'_>) -> bool,
) -> (bool, Vec<Rect>) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching update in {timeout:?}");
        if let Some(u) = cap.next_update(left).unwrap()
            && f(&u)
        {
            return (u.full, u.rects.clone());
        }
    }
}

fn drain(cap: &mut Capturer) {
    while cap
        .next_update(Duration::from_millis(100))
        .unwrap()
        .is_some()
    {}
}

fn pattern_round_trip(opts: CaptureOptions, expect_shm: bool) {
    let Some(x) = Xvfb::start("640x480x24") else {
        return;
    };
    let conn = x.conn();
    let win = window(&conn, 100, 50, 200, 100, RED, EventMask::NO_EVENT);
    fill(&conn, win, 0, 0, 100, 50, GREEN);
    fill(&conn, win, 100, 50, 100, 50, BLUE);
    fill(&conn, win, 7, 80, 1, 1, 0x123456);
    let mut cap = Capturer::new(&x.target(), opts).unwrap();
    assert_eq!(cap.uses_shm(), expect_shm);
    let (full, rects) = update_where(&mut cap, Duration::from_secs(10), |_| true);
    assert!(full);
    assert_eq!(rects, vec![Rect::new(0, 0, 640, 480)]);
    let f = cap.frame();
    assert_eq!((f.width, f.height, f.stride), (640, 480, 640 * 4));
    for (px, py, want) in [
        (100, 50, GREEN),
        (199, 99, GREEN),
        (200, 50, RED),
        (100, 100, RED),
        (200, 100, BLUE),
        (299, 149, BLUE),
        (107, 130, 0x123456),
        (300, 150, 0),
        (99, 49, 0),
    ] {
        assert_eq!(f.rgb(px, py), want, "pixel ({px},{py})");
    }
    // The whole frame, row by row: exactly the window on black.
    for y in 0..480 {
        for x in 0..640 {
            let inside = (100..300).contains(&x) && (50..150).contains(&y);
            let want = if !inside {
                0
            } else if x == 107 && y == 130 {
                0x123456
            } else if x < 200 && y < 100 {
                GREEN
            } else if x >= 200 && y >= 100 {
                BLUE
            } else {
                RED
            };
            assert_eq!(f.rgb(x, y), want, "pixel ({x},{y})");
        }
    }
}

#[test]
fn a_drawn_pattern_is_read_back_exactly_through_shm() {
    pattern_round_trip(CaptureOptions::default(), true);
}

#[test]
fn a_drawn_pattern_is_read_back_exactly_through_get_image() {
    pattern_round_trip(
        CaptureOptions {
            force_get_image: true,
            ..Default::default()
        },
        false,
    );
}

fn damage_then_idle(opts: CaptureOptions) {
    let Some(x) = Xvfb::start("640x480x24") else {
        return;
    };
    let conn = x.conn();
    let win = window(&conn, 0, 0, 640, 480, 0x202020, EventMask::NO_EVENT);
    let mut cap = Capturer::new(&x.target(), opts).unwrap();
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    drain(&mut cap);
    // Idle: nothing within the timeout.
    assert!(
        cap.next_update(Duration::from_millis(400))
            .unwrap()
            .is_none(),
        "an idle screen produced an update"
    );
    // Positive control: a change does produce one, covering the change.
    let changed = Rect::new(300, 200, 40, 30);
    fill(&conn, win, 300, 200, 40, 30, 0xabcdef);
    let (full, rects) = update_where(&mut cap, Duration::from_secs(10), |u| !u.rects.is_empty());
    assert!(!full);
    let covered = rects.iter().copied().reduce(|a, b| a.union(&b)).unwrap();
    assert!(
        covered.contains(&changed),
        "{rects:?} do not cover {changed:?}"
    );
    // Not the whole screen: a region.
    assert!(covered.width < 640 && covered.height < 480, "{covered:?}");
    assert_eq!(cap.frame().rgb(310, 210), 0xabcdef);
    assert_eq!(cap.frame().rgb(299, 210), 0x202020);
    drain(&mut cap);
    assert!(
        cap.next_update(Duration::from_millis(300))
            .unwrap()
            .is_none()
    );
    // A clone keeps its pixels while the capturer's frame (with MIT-SHM,
    // the server's segment itself) moves on.
    let before = cap.frame().clone();
    fill(&conn, win, 300, 200, 40, 30, 0x123456);
    update_where(&mut cap, Duration::from_secs(10), |u| !u.rects.is_empty());
    assert_eq!(cap.frame().rgb(310, 210), 0x123456);
    assert_eq!(before.rgb(310, 210), 0xabcdef);
}

#[test]
fn a_change_yields_a_damage_rect_and_an_idle_screen_nothing() {
    damage_then_idle(CaptureOptions::default());
}

#[test]
fn scattered_changes_are_reported_apart_and_read_exactly() {
    let Some(x) = Xvfb::start("1024x768x24") else {
        return;
    };
    let conn = x.conn();
    let win = window(&conn, 0, 0, 1024, 768, 0x202020, EventMask::NO_EVENT);
    let mut cap = Capturer::new(&x.target(), CaptureOptions::default()).unwrap();
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    drain(&mut cap);
    // Two small changes in opposite corners, sent together.
    let gc_a = Rect::new(2, 3, 10, 10);
    let gc_b = Rect::new(1000, 740, 20, 20);
    fill(&conn, win, 2, 3, 10, 10, RED);
    fill(&conn, win, 1000, 740, 20, 20, BLUE);
    let mut seen: Vec<Rect> = Vec::new();
    wait_for("both changes", Duration::from_secs(10), || {
        if let Some(u) = cap.next_update(Duration::from_millis(200)).unwrap() {
            seen.extend(u.rects.iter().copied());
        }
        (seen.iter().any(|r| r.contains(&gc_a)) && seen.iter().any(|r| r.contains(&gc_b)))
            .then_some(())
    });
    // Reported as two small rectangles, not the screen between them.
    assert!(
        seen.iter().all(|r| r.width <= 64 && r.height <= 64),
        "{seen:?}"
    );
    let f = cap.frame();
    assert_eq!(
        (
            f.rgb(2, 3),
            f.rgb(11, 12),
            f.rgb(12, 13),
            f.rgb(1019, 759),
            f.rgb(999, 740)
        ),
        (RED, RED, 0x202020, BLUE, 0x202020)
    );
}

#[test]
fn without_damage_changed_tiles_are_found() {
    damage_then_idle(CaptureOptions {
        force_tiles: true,
        force_get_image: true,
        poll_interval: Duration::from_millis(20),
        ..Default::default()
    });
}

#[test]
fn the_cursor_is_reported_and_a_click_lands_where_sent() {
    let Some(x) = Xvfb::start("800x600x24") else {
        return;
    };
    let conn = x.conn();
    let win = window(
        &conn,
        200,
        100,
        300,
        200,
        0x334455,
        EventMask::BUTTON_PRESS | EventMask::BUTTON_RELEASE,
    );
    let target = x.target();
    let cap = Capturer::new(&target, CaptureOptions::default()).unwrap();
    let mut input = Input::new(&target).unwrap();
    input.move_to(321, 234).unwrap();
    input.sync().unwrap();
    assert_eq!(cap.pointer().unwrap(), (321, 234));
    let cursor = cap.cursor().unwrap();
    assert_eq!((cursor.x, cursor.y), (321, 234));
    assert!(cursor.width > 0 && cursor.pixels.len() == (cursor.width * cursor.height) as usize);
    input.button(Button::Left, true).unwrap();
    input.button(Button::Left, false).unwrap();
    input.scroll(0, 2).unwrap();
    input.scroll(-1, 0).unwrap();
    input.sync().unwrap();
    let mut got = Vec::new();
    wait_for("button events", Duration::from_secs(10), || {
        while let Some(e) = conn.poll_for_event().unwrap() {
            if let Event::ButtonPress(b) = e {
                assert_eq!(b.event, win);
                got.push((b.detail, b.event_x, b.event_y));
            }
        }
        (got.len() >= 4).then_some(())
    });
    // Window at (200,100): the click at (321,234) is (121,134) inside it.
    assert_eq!(
        got,
        vec![(1, 121, 134), (5, 121, 134), (5, 121, 134), (6, 121, 134)]
    );
    // Cross-check with another tool.
    assert_eq!(
        x.run("xdotool", &["getmouselocation", "--shell"])
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["X=321", "Y=234"]
    );
}

#[test]
fn a_cursor_shape_change_is_an_update_and_frames_leave_the_cursor_out() {
    let Some(x) = Xvfb::start("640x480x24") else {
        return;
    };
    let conn = x.conn();
    // A window with its own cursor (a glyph of the standard cursor font).
    let font = conn.generate_id().unwrap();
    conn.open_font(font, b"cursor").unwrap();
    let glyph = conn.generate_id().unwrap();
    conn.create_glyph_cursor(glyph, font, font, 68, 69, 0, 0, 0, 0xffff, 0xffff, 0xffff)
        .unwrap();
    let win = window(&conn, 320, 0, 320, 480, 0x404040, EventMask::NO_EVENT);
    conn.change_window_attributes(
        win,
        &x11rb::protocol::xproto::ChangeWindowAttributesAux::new().cursor(glyph),
    )
    .unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    let target = x.target();
    let mut cap = Capturer::new(&target, CaptureOptions::default()).unwrap();
    let mut input = Input::new(&target).unwrap();
    input.move_to(100, 100).unwrap();
    input.sync().unwrap();
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    drain(&mut cap);
    let before = cap.cursor().unwrap();
    // The pointer is over the black root at (100,100): no cursor pixels in
    // the frame there.
    let shot = cap.snapshot().unwrap();
    for y in 80..130 {
        for x in 80..130 {
            assert_eq!(shot.rgb(x, y), 0, "cursor pixel in the frame at ({x},{y})");
        }
    }
    // Moving within the same cursor: no update (positive control below).
    input.move_to(110, 110).unwrap();
    input.sync().unwrap();
    assert!(
        cap.next_update(Duration::from_millis(300))
            .unwrap()
            .is_none()
    );
    // Into the window with another cursor: an update saying so.
    input.move_to(400, 100).unwrap();
    input.sync().unwrap();
    let (full, rects) = update_where(&mut cap, Duration::from_secs(10), |u| u.cursor_changed);
    assert!(!full && rects.is_empty(), "{rects:?}");
    let after = cap.cursor().unwrap();
    assert_ne!(before.serial, after.serial);
    assert_eq!((after.x, after.y), (400, 100));
    assert!(
        after.pixels.iter().any(|p| p >> 24 != 0),
        "an invisible cursor image"
    );
}

#[test]
fn a_resolution_change_gives_a_full_frame_of_the_new_size_on_the_same_connection() {
    let Some(x) = Xvfb::start("1024x768x24") else {
        return;
    };
    let mut cap = Capturer::new(&x.target(), CaptureOptions::default()).unwrap();
    let (full, _) = update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert!(full);
    assert_eq!((cap.frame().width, cap.frame().height), (1024, 768));
    drain(&mut cap);
    // Xvfb's one output gets an 800x600 mode and switches to it (a real
    // resolution change: RandR screen change notify).
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
    // A screenshot taken before any update notices the change itself (the
    // old 1024x768 rectangle is no longer on screen).
    let shot = cap.snapshot().unwrap();
    assert_eq!((shot.width, shot.height), (800, 600));
    let (full, rects) = update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert!(full);
    assert_eq!(rects, vec![Rect::new(0, 0, 800, 600)]);
    assert_eq!(
        (cap.frame().width, cap.frame().height, cap.frame().stride),
        (800, 600, 3200)
    );
    assert_eq!(cap.screen_size(), (800, 600));
    // Capture goes on at the new size: draw and read back.
    let conn = x.conn();
    let win = window(&conn, 700, 500, 100, 100, GREEN, EventMask::NO_EVENT);
    update_where(&mut cap, Duration::from_secs(10), |u| {
        u.frame.rgb(750, 550) == GREEN
    });
    fill(&conn, win, 90, 90, 10, 10, BLUE);
    update_where(&mut cap, Duration::from_secs(10), |u| {
        u.frame.rgb(795, 595) == BLUE
    });
    // And back.
    x.run("xrandr", &["--output", "screen", "--mode", "1024x768"]);
    update_where(&mut cap, Duration::from_secs(10), |u| {
        u.full && u.frame.width == 1024
    });
    assert_eq!(cap.snapshot().unwrap().rgb(750, 550), GREEN);
}

#[test]
fn monitors_are_listed_and_one_is_captured_and_driven_in_its_coordinates() {
    let Some(x) = Xvfb::start("1280x480x24") else {
        return;
    };
    x.run(
        "xrandr",
        &["--setmonitor", "left", "640/170x480/130+0+0", "none"],
    );
    x.run(
        "xrandr",
        &["--setmonitor", "right", "640/170x480/130+640+0", "none"],
    );
    let conn = x.conn();
    let win = window(&conn, 640, 0, 640, 480, 0x101010, EventMask::BUTTON_PRESS);
    fill(&conn, win, 10, 20, 5, 5, RED);
    let target = x.target();
    let mut cap = Capturer::new(
        &target,
        CaptureOptions {
            selection: Selection::Monitor("right".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<(String, Rect)> = cap
        .monitors()
        .iter()
        .map(|m| (m.name.clone(), m.rect))
        .collect();
    assert!(
        names.contains(&("left".into(), Rect::new(0, 0, 640, 480))),
        "{names:?}"
    );
    assert!(
        names.contains(&("right".into(), Rect::new(640, 0, 640, 480))),
        "{names:?}"
    );
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert_eq!((cap.frame().width, cap.frame().height), (640, 480));
    assert_eq!(cap.frame().rgb(12, 22), RED);
    assert_eq!(cap.frame().rgb(0, 0), 0x101010);
    assert!(matches!(
        cap.select(Selection::Monitor("nope".into())),
        Err(Error::NoSuchMonitor(_))
    ));
    let unknown = CaptureOptions {
        selection: Selection::Monitor("nope".into()),
        ..Default::default()
    };
    assert!(matches!(Capturer::new(&target, unknown), Err(Error::NoSuchMonitor(n)) if n == "nope"));
    // Input in the monitor's coordinates.
    let mut input = Input::new(&target).unwrap();
    input.set_area(Some(cap.region()));
    input.move_to(12, 22).unwrap();
    // Another connection asks next: wait until the move was processed.
    input.sync().unwrap();
    assert_eq!(cap.pointer().unwrap(), (12, 22));
    input.button(Button::Right, true).unwrap();
    input.button(Button::Right, false).unwrap();
    input.sync().unwrap();
    let press = wait_for("button press", Duration::from_secs(10), || {
        match conn.poll_for_event().unwrap() {
            Some(Event::ButtonPress(b)) => Some(b),
            _ => None,
        }
    });
    assert_eq!(
        (
            press.detail,
            press.root_x,
            press.root_y,
            press.event_x,
            press.event_y
        ),
        (3, 652, 22, 12, 22)
    );
    // A monitor defined mid-session shows up without reconnecting.
    x.run(
        "xrandr",
        &["--setmonitor", "middle", "320/85x240/65+480+100", "none"],
    );
    wait_for("the new monitor", Duration::from_secs(10), || {
        cap.next_update(Duration::from_millis(100)).unwrap();
        cap.monitors()
            .iter()
            .any(|m| m.name == "middle" && m.rect == Rect::new(480, 100, 320, 240))
            .then_some(())
    });
    // All monitors: the whole screen.
    cap.select(Selection::All).unwrap();
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert_eq!((cap.frame().width, cap.frame().rgb(652, 22)), (1280, RED));
    // The chosen monitor removed mid-session: a full frame of the whole screen.
    cap.select(Selection::Monitor("middle".into())).unwrap();
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert_eq!((cap.frame().width, cap.frame().height), (320, 240));
    x.run("xrandr", &["--delmonitor", "middle"]);
    update_where(&mut cap, Duration::from_secs(10), |u| u.full);
    assert_eq!(
        (cap.frame().width, cap.frame().height, cap.region()),
        (1280, 480, Rect::new(0, 0, 1280, 480))
    );
}

/// An xterm at the top left running `cat > FILE` in UTF-8; the file, once
/// its shell and window are up.
fn xterm_cat(x: &Xvfb) -> Option<(std::process::Child, std::path::PathBuf)> {
    if support::which("xterm").is_none() {
        println!("skipped: xterm is not installed (scripts/test installs it)");
        return None;
    }
    let out = x.path("typed.txt");
    let ready = x.path("ready");
    let script = format!("touch {}; exec cat > {}", ready.display(), out.display());
    let xterm = std::process::Command::new("xterm")
        .args(["-u8", "-geometry", "80x10+0+0", "-e", "sh", "-c", &script])
        .env("DISPLAY", &x.display)
        .env("LC_ALL", "C.UTF-8")
        .env_remove("XAUTHORITY")
        .spawn()
        .unwrap();
    wait_for("xterm's shell", Duration::from_secs(20), || {
        ready.exists().then_some(())
    });
    wait_for("xterm's window", Duration::from_secs(20), || {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--onlyvisible", "--class", "xterm"])
            .env("DISPLAY", &x.display)
            .output()
            .ok()?;
        (out.status.success() && !out.stdout.is_empty()).then_some(())
    });
    Some((xterm, out))
}

/// What `cat` wrote once it holds `lines` complete lines.
fn typed_lines(out: &std::path::Path, lines: usize) -> String {
    wait_for("the typed lines", Duration::from_secs(10), || {
        let s = std::fs::read_to_string(out).ok()?;
        (s.lines().count() == lines && s.ends_with('\n')).then_some(s)
    })
}

#[test]
fn unicode_text_typed_into_xterm_arrives_exactly() {
    let Some(x) = Xvfb::start("800x600x24") else {
        return;
    };
    let Some((mut xterm, out)) = xterm_cat(&x) else {
        return;
    };
    let mut input = Input::new(&x.target()).unwrap();
    // No window manager: the keyboard follows the pointer.
    input.move_to(50, 50).unwrap();
    // On Xvfb's US keymap ü, ß, ö, ½ and € are not on any key: each is
    // bound to a spare keycode for the moment.
    let text = "Grüße, Wörld! ½ €";
    input.type_text(text).unwrap();
    input.type_text("\n").unwrap();
    assert_eq!(typed_lines(&out, 1), format!("{text}\n"));
    // Keysym `a` while the technician holds Shift arrives as `a` (Shift is
    // lifted around it); `A` with nothing held gets Shift.
    input.key(keysym::SHIFT_L, true).unwrap();
    input.type_text("a").unwrap();
    input.key(keysym::SHIFT_L, false).unwrap();
    input.type_text("Ab\n").unwrap();
    assert_eq!(typed_lines(&out, 2), format!("{text}\naAb\n"));
    drop(input);
    let _ = xterm.kill();
    let _ = xterm.wait();
}

#[test]
fn a_german_keymap_gets_altgr_for_level_three_characters() {
    let Some(x) = Xvfb::start("800x600x24") else {
        return;
    };
    if support::which("setxkbmap").is_none() {
        println!("skipped: setxkbmap is not installed (scripts/test installs it)");
        return;
    }
    // The Input is made before the layout changes: it must follow.
    let mut input = Input::new(&x.target()).unwrap();
    input.type_text("x").unwrap();
    x.run("setxkbmap", &["de"]);
    let Some((mut xterm, out)) = xterm_cat(&x) else {
        return;
    };
    input.move_to(50, 50).unwrap();
    // On `de`: ü ö ß are plain keys, @ € { } | ~ need AltGr, ! " need Shift,
    // and y/z are swapped; ½ is bound to a spare keycode.
    let text = "Grüße, Wörld! ½ € @{}|~ \"zy\"";
    input.type_text(text).unwrap();
    input.type_text("\n").unwrap();
    assert_eq!(typed_lines(&out, 1), format!("{text}\n"));
    drop(input);
    let _ = xterm.kill();
    let _ = xterm.wait();
}

#[test]
fn release_all_leaves_no_modifier_or_button_down() {
    let Some(x) = Xvfb::start("320x240x24") else {
        return;
    };
    let target = x.target();
    let conn = x.conn();
    let root = conn.setup().roots[0].root;
    let mut input = Input::new(&target).unwrap();
    input.key(keysym::SHIFT_L, true).unwrap();
    input.key(keysym::CONTROL_L, true).unwrap();
    input.key(keysym::ALT_L, true).unwrap();
    input.button(Button::Left, true).unwrap();
    input.sync().unwrap();
    let held = conn.query_pointer(root).unwrap().reply().unwrap().mask;
    assert!(
        held.contains(KeyButMask::SHIFT | KeyButMask::CONTROL | KeyButMask::BUTTON1),
        "{held:?}"
    );
    input.release_all().unwrap();
    let after = conn.query_pointer(root).unwrap().reply().unwrap().mask;
    assert!(
        !after.intersects(
            KeyButMask::SHIFT | KeyButMask::CONTROL | KeyButMask::MOD1 | KeyButMask::BUTTON1
        ),
        "{after:?}"
    );
    let keys = conn.query_keymap().unwrap().reply().unwrap().keys;
    assert_eq!(keys, [0; 32], "a key is still down");
}

#[test]
fn clipboard_goes_both_ways_with_xclip() {
    let Some(x) = Xvfb::start("320x240x24") else {
        return;
    };
    if support::which("xclip").is_none() {
        println!("skipped: xclip is not installed (scripts/test installs it)");
        return;
    }
    let clip = Clipboard::new(&x.target(), DEFAULT_LIMIT).unwrap();
    assert_eq!(
        clip.get(SelectionKind::Clipboard, Duration::from_secs(2))
            .unwrap(),
        None
    );
    // Set here, read by xclip.
    let text = "Grüße from the technician € ½\nline 2";
    clip.set(SelectionKind::Clipboard, text).unwrap();
    assert_eq!(x.run("xclip", &["-o", "-selection", "clipboard"]), text);
    assert_eq!(
        x.run(
            "xclip",
            &["-o", "-selection", "clipboard", "-target", "UTF8_STRING"]
        ),
        text
    );
    let targets = x.run(
        "xclip",
        &["-o", "-selection", "clipboard", "-target", "TARGETS"],
    );
    assert!(
        targets.contains("UTF8_STRING") && targets.contains("STRING"),
        "{targets}"
    );
    // Our own set is not reported as a change; nothing else happened yet.
    assert_eq!(clip.next_change(Duration::from_millis(300)).unwrap(), None);
    // Set by xclip (it stays in the foreground owning it), read here, and
    // the change is reported.
    let mut xclip = x.spawn("xclip", &["-quiet", "-i", "-selection", "clipboard"]);
    let endpoint_text = "copied on the endpoint: Ünïcödé ✓";
    {
        use std::io::Write;
        let mut stdin = xclip.stdin.take().unwrap();
        stdin.write_all(endpoint_text.as_bytes()).unwrap();
    }
    let change = clip.next_change(Duration::from_secs(10)).unwrap();
    assert_eq!(
        change,
        Some(ClipboardChange {
            selection: SelectionKind::Clipboard
        })
    );
    assert_eq!(
        clip.get(SelectionKind::Clipboard, Duration::from_secs(10))
            .unwrap()
            .as_deref(),
        Some(endpoint_text)
    );
    let _ = xclip.kill();
    let _ = xclip.wait();
    // PRIMARY too.
    clip.set(SelectionKind::Primary, "primary text").unwrap();
    assert_eq!(
        x.run("xclip", &["-o", "-selection", "primary"]),
        "primary text"
    );
    // Above the limit: a clear error, and the clipboard keeps its content.
    let small = Clipboard::new(&x.target(), 16).unwrap();
    let err = small
        .set(SelectionKind::Clipboard, &"x".repeat(17))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ClipboardTooLarge {
                size: 17,
                limit: 16
            }
        ),
        "{err}"
    );
    assert_eq!(
        x.run("xclip", &["-o", "-selection", "primary"]),
        "primary text"
    );
}

#[test]
fn large_clipboard_text_is_read_in_incr_chunks_within_the_limit() {
    let Some(x) = Xvfb::start("320x240x24") else {
        return;
    };
    if support::which("xclip").is_none() {
        println!("skipped: xclip is not installed (scripts/test installs it)");
        return;
    }
    // xclip sends text above a quarter of the maximum request size
    // (about 1 MiB with BIG-REQUESTS) incrementally (INCR).
    let big: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let path = x.path("big.txt");
    std::fs::write(&path, &big).unwrap();
    // Watching before xclip starts: a change made before the watcher
    // existed would never be reported.
    let clip = Clipboard::new(&x.target(), 4 << 20).unwrap();
    let mut xclip = x.spawn(
        "xclip",
        &[
            "-quiet",
            "-i",
            "-selection",
            "clipboard",
            path.to_str().unwrap(),
        ],
    );
    clip.next_change(Duration::from_secs(10))
        .unwrap()
        .expect("xclip took the clipboard");
    let got = clip
        .get(SelectionKind::Clipboard, Duration::from_secs(20))
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got == big, "content differs");
    // Below the text's size: refused with the limit named, not cut.
    let small = Clipboard::new(&x.target(), 1 << 20).unwrap();
    let err = small
        .get(SelectionKind::Clipboard, Duration::from_secs(20))
        .unwrap_err();
    assert!(
        matches!(err, Error::ClipboardTooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
    let _ = xclip.kill();
    let _ = xclip.wait();
}

#[test]
fn a_display_that_goes_away_is_an_error_not_a_panic() {
    let Some(mut x) = Xvfb::start("320x240x24") else {
        return;
    };
    let target = x.target();
    let mut cap = Capturer::new(&target, CaptureOptions::default()).unwrap();
    let mut input = Input::new(&target).unwrap();
    let clip = Clipboard::new(&target, DEFAULT_LIMIT).unwrap();
    assert!(cap.next_update(Duration::from_secs(10)).unwrap().is_some());
    x.kill();
    let err = wait_for("capture error", Duration::from_secs(10), || {
        cap.next_update(Duration::from_millis(100)).err()
    });
    assert!(
        matches!(
            err,
            Error::Connection(_) | Error::Protocol(_) | Error::Io(_)
        ),
        "{err}"
    );
    let err = wait_for("input error", Duration::from_secs(10), || {
        input.move_to(1, 1).and_then(|_| input.sync()).err()
    });
    assert!(matches!(err, Error::Connection(_)), "{err}");
    assert!(
        clip.get(SelectionKind::Clipboard, Duration::from_secs(1))
            .is_err()
    );
    // A new connection to it fails with the display named.
    let err = DisplayOptions {
        display: Some(x.display.clone()),
        xauthority: None,
    }
    .resolve()
    .unwrap_err();
    assert!(err.to_string().contains(&x.display), "{err}");
}

#[test]
fn an_xauthority_cookie_is_used_and_required() {
    // A cookie-protected Xvfb: its -auth file holds a FamilyWild entry.
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("Xauthority");
    let cookie: Vec<u8> = (0..16u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let mut entry = 0xffffu16.to_be_bytes().to_vec();
    for f in [&b""[..], b"", b"MIT-MAGIC-COOKIE-1", &cookie] {
        entry.extend_from_slice(&(f.len() as u16).to_be_bytes());
        entry.extend_from_slice(f);
    }
    std::fs::write(&auth, &entry).unwrap();
    let Some(x) = Xvfb::start_with("320x240x24", &["-auth", auth.to_str().unwrap()]) else {
        return;
    };
    let good = DisplayOptions {
        display: Some(x.display.clone()),
        xauthority: Some(auth),
    }
    .resolve()
    .unwrap();
    Capturer::new(&good, CaptureOptions::default()).unwrap();
    // Without the cookie the server refuses.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let err = DisplayOptions {
        display: Some(x.display.clone()),
        xauthority: Some(empty),
    }
    .resolve()
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}
