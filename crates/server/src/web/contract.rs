//! `web/contract.js`: the constants the console shares with the Rust code
//! (API error codes, permission names, session kinds and message types),
//! generated from the Rust definitions so that the JavaScript never keeps
//! its own copy. The test below regenerates the file and fails when the
//! committed one differs; `JUMPGATE_UPDATE_CONTRACT=1` rewrites it.

use std::fmt::Write as _;

use bytes::Bytes;
use jumpgate_api_types::{CSRF_HEADER, ErrorCode, SESSION_UPGRADE};
use jumpgate_proto::desktop;
use jumpgate_proto::session::{
    self, Accepted, ExitStatus, FileEnd, FileResult, Refusal, RefusalCode, SessionKind, SessionMsg,
    SessionRequest, SignalKind,
};

use crate::rbac::Permission;

/// Where the generated file lives, relative to the crate.
const PATH: &str = "web/contract.js";

/// `kebab-case` or `snake_case` → `SCREAMING_SNAKE`.
fn constant(name: &str) -> String {
    name.replace(['-', ':'], "_").to_ascii_uppercase()
}

/// `CamelCase` → `SCREAMING_SNAKE`.
fn constant_of_variant(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One message of every type, to read its type byte from the encoder.
fn one_of_each_message() -> Vec<SessionMsg> {
    let data = Bytes::from_static(b"x");
    vec![
        SessionMsg::Open(SessionRequest::Download { path: "/".into() }),
        SessionMsg::Accepted(Accepted::default()),
        SessionMsg::Refused(Refusal {
            code: RefusalCode::Failed,
            message: String::new(),
        }),
        SessionMsg::Stdin(data.clone()),
        SessionMsg::Stdout(data.clone()),
        SessionMsg::Stderr(data.clone()),
        SessionMsg::Resize { cols: 1, rows: 1 },
        SessionMsg::Exit(ExitStatus {
            code: Some(0),
            signal: None,
        }),
        SessionMsg::StdinEof,
        SessionMsg::Signal(SignalKind::Interrupt),
        SessionMsg::FileData(data),
        SessionMsg::FileEnd(FileEnd {
            size: 0,
            sha256: String::new(),
        }),
        SessionMsg::FileResult(FileResult {
            ok: true,
            sha256: String::new(),
            message: String::new(),
        }),
        SessionMsg::Closed {
            reason: String::new(),
        },
        SessionMsg::DesktopInfo(desktop::DesktopInfo {
            width: 1,
            height: 1,
            monitors: Vec::new(),
            monitor: None,
            codec: String::new(),
        }),
        SessionMsg::Video(desktop::Video {
            seq: 0,
            data: Bytes::new(),
        }),
        SessionMsg::Cursor(desktop::Cursor::default()),
        SessionMsg::CursorShape(desktop::CursorShape {
            id: 0,
            width: 0,
            height: 0,
            hot_x: 0,
            hot_y: 0,
            rgba: Bytes::new(),
        }),
        SessionMsg::Pointer(desktop::Pointer::default()),
        SessionMsg::Wheel(desktop::Wheel::default()),
        SessionMsg::Key(desktop::Key {
            keysym: 0,
            down: false,
        }),
        SessionMsg::InputReset,
        SessionMsg::Clipboard(String::new()),
        SessionMsg::DesktopCommand(desktop::DesktopCommand::Refresh),
        SessionMsg::FrameAck(desktop::FrameAck { seq: 0 }),
        SessionMsg::ControlState(desktop::ControlState {
            input: desktop::InputState::Allowed,
            message: String::new(),
            note: None,
        }),
        SessionMsg::Ping(0),
        SessionMsg::Pong(0),
    ]
}

/// Every refusal code (the match fails to compile when one is added
/// without being listed).
fn refusal_codes() -> Vec<RefusalCode> {
    use RefusalCode as R;
    let all = [
        R::NotFound,
        R::PermissionDenied,
        R::InvalidRequest,
        R::ConnectFailed,
        R::Unsupported,
        R::Failed,
        R::ConsentDenied,
    ];
    for c in all {
        match c {
            R::NotFound
            | R::PermissionDenied
            | R::InvalidRequest
            | R::ConnectFailed
            | R::Unsupported
            | R::Failed
            | R::ConsentDenied => {}
        }
    }
    all.to_vec()
}

/// Every desktop input state (exhaustive like [`refusal_codes`]).
fn input_states() -> Vec<desktop::InputState> {
    use desktop::InputState as I;
    let all = [I::Allowed, I::ViewOnly, I::TakenBack, I::Ended];
    for i in all {
        match i {
            I::Allowed | I::ViewOnly | I::TakenBack | I::Ended => {}
        }
    }
    all.to_vec()
}

/// Every control-state note (exhaustive like [`refusal_codes`]).
fn control_notes() -> Vec<desktop::ControlNote> {
    use desktop::ControlNote as N;
    let all = [N::Failed, N::Refused];
    for n in all {
        match n {
            N::Failed | N::Refused => {}
        }
    }
    all.to_vec()
}

/// `SCREAMING_SNAKE: 'wire-name'` lines of a serde enum's unit variants.
fn wire_names<T: serde::Serialize + std::fmt::Debug>(w: &mut String, items: &[T]) {
    for item in items {
        let wire = serde_json::to_value(item)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "  {}: '{wire}',",
            constant_of_variant(&format!("{item:?}"))
        );
    }
}

/// The whole text of `web/contract.js`.
fn render() -> String {
    let mut js = String::new();
    let w = &mut js;
    let _ = writeln!(
        w,
        "// GENERATED from the Rust sources by crates/server/src/web/contract.rs: do not edit.\n\
         // Regenerate: JUMPGATE_UPDATE_CONTRACT=1 cargo test -p jumpgate-server --lib web::contract\n"
    );
    let _ = writeln!(
        w,
        "/** The `error` codes of the API's JSON error answers (`api_types::ErrorCode`). */\n\
         export const ERROR = Object.freeze({{"
    );
    for c in ErrorCode::ALL {
        let _ = writeln!(w, "  {}: '{}',", constant(c.as_str()), c.as_str());
    }
    let _ = writeln!(w, "}});\n");
    let _ = writeln!(
        w,
        "/** Permission names (`rbac::Permission`), in the gateway's order. */\n\
         export const PERMISSIONS = Object.freeze(["
    );
    for p in Permission::ALL {
        let _ = writeln!(w, "  '{}',", p.as_str());
    }
    let _ = writeln!(w, "]);\n");
    let _ = writeln!(
        w,
        "/** Each permission by name: `PERMISSION.MANAGE_USERS` is `'manage-users'`. */\n\
         export const PERMISSION = Object.freeze({{"
    );
    for p in Permission::ALL {
        let _ = writeln!(w, "  {}: '{}',", constant(p.as_str()), p.as_str());
    }
    let _ = writeln!(w, "}});\n");
    let _ = writeln!(
        w,
        "/** Session kinds (`proto::session::SessionKind`). */\n\
         export const SESSION_KIND = Object.freeze({{"
    );
    for k in SessionKind::ALL {
        let _ = writeln!(w, "  {}: '{}',", constant(k.as_str()), k.as_str());
    }
    let _ = writeln!(w, "}});\n");
    let messages = one_of_each_message();
    let _ = writeln!(
        w,
        "/** Session message types (`proto::session::SessionMsg`): the first byte of a message. */\n\
         export const MSG_TYPE = Object.freeze({{"
    );
    let mut json_types = Vec::new();
    for m in &messages {
        let bytes = m.to_bytes();
        let debug = format!("{m:?}");
        let variant = debug
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        let name = constant_of_variant(variant);
        let _ = writeln!(w, "  {name}: {},", bytes[0]);
        // JSON payloads are objects; data payloads are raw bytes.
        if bytes.get(session::HEADER_LEN) == Some(&b'{') {
            json_types.push(name);
        }
    }
    let _ = writeln!(w, "}});\n");
    let _ = writeln!(
        w,
        "/** The message types whose payload is JSON (the others carry raw bytes). */\n\
         export const JSON_MSG_TYPES = Object.freeze([{}]);\n",
        json_types
            .iter()
            .map(|n| format!("MSG_TYPE.{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        w,
        "/** Why the endpoint refused a session (`proto::session::RefusalCode`). */\n\
         export const REFUSAL_CODE = Object.freeze({{"
    );
    wire_names(w, &refusal_codes());
    let _ = writeln!(w, "}});\n");
    let _ = writeln!(
        w,
        "/** Whose input reaches a desktop (`proto::desktop::InputState`). */\n\
         export const INPUT_STATE = Object.freeze({{"
    );
    wire_names(w, &input_states());
    let _ = writeln!(w, "}});\n");
    let _ = writeln!(
        w,
        "/** What a control state is besides a change of control (`proto::desktop::ControlNote`). */\n\
         export const CONTROL_NOTE = Object.freeze({{"
    );
    wire_names(w, &control_notes());
    let _ = writeln!(w, "}});\n");
    let codecs: Vec<String> = desktop::codec::ALL
        .iter()
        .map(|c| format!("'{c}'"))
        .collect();
    let _ = writeln!(
        w,
        "/** The screen codecs, best first (`proto::desktop::codec::ALL`): what the console's decoder\n\
         \x20* draws (reduced-size pictures included), offered when it opens a desktop session. */\n\
         export const DESKTOP_CODECS = Object.freeze([{}]);\n",
        codecs.join(", ")
    );
    let _ = writeln!(
        w,
        "/** Session message framing (`proto::session`). */\n\
         export const SESSION_HEADER_LEN = {};\n\
         export const SESSION_MAX_PAYLOAD = {};\n\
         export const SESSION_CHUNK = {};\n",
        session::HEADER_LEN,
        session::MAX_PAYLOAD,
        session::CHUNK
    );
    let _ = writeln!(
        w,
        "/** The header a cookie session's state-changing requests carry. */\n\
         export const CSRF_HEADER = '{CSRF_HEADER}';\n\n\
         /** The `Upgrade:` token of `jg`'s session connections. */\n\
         export const SESSION_UPGRADE = '{SESSION_UPGRADE}';"
    );
    js
}

#[test]
fn contract_js_matches_the_rust_definitions() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH);
    let want = render();
    if std::env::var_os("JUMPGATE_UPDATE_CONTRACT").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "crates/server/{PATH} is out of date with the Rust definitions it mirrors; regenerate it with\n  \
         JUMPGATE_UPDATE_CONTRACT=1 cargo test -p jumpgate-server --lib web::contract\n\
         and commit it.\n--- expected ---\n{want}"
    );
}

#[test]
fn the_contract_names_every_message_type_once() {
    let js = render();
    for (name, n) in [
        ("OPEN", 1),
        ("ACCEPTED", 2),
        ("STDIN_EOF", 9),
        ("CLOSED", 14),
    ] {
        assert!(js.contains(&format!("  {name}: {n},\n")), "{name}");
    }
    assert!(js.contains("  UNKNOWN_ENDPOINT: 'unknown_endpoint',\n"));
    assert!(js.contains("  MANAGE_USERS: 'manage-users',\n"));
    let mut types: Vec<u8> = one_of_each_message()
        .iter()
        .map(|m| m.to_bytes()[0])
        .collect();
    let count = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), count, "two variants share a type byte");
}
