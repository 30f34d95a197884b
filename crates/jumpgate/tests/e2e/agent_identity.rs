//! An endpoint's identity and what it reports: a cloned agent (a copied
//! state directory) is refused while the known one answers, audited, shown
//! as a conflict, and resolved by re-enrolling; endpoint-reported details
//! are cleaned; `jg` tables escape and bound what they print; a closed
//! stdout ends `jg` quietly.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

/// Copies a state directory whole (its subdirectories too: the agent
/// keeps EPM and package state in them).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Polls `jg endpoints --json` until `check` holds for endpoint `name`.
async fn wait_endpoint(
    site: &Site,
    name: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let eps = site.endpoints().await;
        if let Some(e) = eps.as_array().unwrap().iter().find(|e| e["name"] == name)
            && check(e)
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoint {name} never got {what}: {eps}\ngateway log:\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A live `jg shell web -- cat` session: a line written comes back.
struct Echo {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Echo {
    async fn start(site: &Site, endpoint: &str) -> Self {
        let mut child = site
            .jg_command(&["shell", endpoint, "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    async fn round_trip(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let got = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no echo of {line}: the session stalled"))
            .unwrap();
        assert_eq!(got.as_deref(), Some(line), "the session ended");
    }
}

#[tokio::test]
async fn a_cloned_agent_is_refused_audited_shown_and_resolved_by_reenrolling() {
    let site = Site::start().await;
    let agents = site.dir.path().join("agents");
    let mut first = site.start_agent("web").await;
    assert!(first.stderr.wait_for("connected").await);
    // A live session through the first agent.
    let mut echo = Echo::start(&site, "web").await;
    echo.round_trip("before the clone").await;

    // The state directory, copied (a cloned VM, a restored backup).
    copy_dir(&agents.join("web"), &agents.join("web-copy"));
    copy_dir(&agents.join("web"), &agents.join("web-copy-2"));
    let mut clone = site.spawn_agent_in("web-copy", "web", None, &[]);

    // The clone is refused with a clear reason and backs off.
    assert!(
        clone
            .stderr
            .wait_for("another agent with this identity is connected")
            .await,
        "clone log:\n{}\ngateway log:\n{}",
        clone.stderr.text(),
        site.gateway.stderr.text()
    );
    assert!(clone.stderr.wait_for("retrying slowly").await);
    assert!(
        clone
            .stderr
            .text()
            .contains("jg admin endpoints reenroll web")
    );
    assert!(
        clone.child.try_wait().unwrap().is_none(),
        "the clone keeps trying, slowly"
    );

    // The endpoint shows the conflict, in JSON and in the table.
    let e = wait_endpoint(&site, "web", "a conflict", |e| e["conflict"].is_object()).await;
    assert_eq!(e["online"], true);
    assert!(e["conflict"]["count"].as_u64().unwrap() >= 1, "{e}");
    assert!(
        e["conflict"]["newcomer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{e}"
    );
    let table = ok(&site.jg(&["endpoints"]).await);
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.contains("online, conflict"), "{table}");

    // Audited with both source addresses.
    let events = site.security_events().await;
    let conflict = events
        .iter()
        .find(|e| e.action == "endpoint-conflict")
        .unwrap_or_else(|| panic!("no endpoint-conflict entry: {events:?}"));
    assert_eq!(conflict.target, "web");
    assert_eq!(conflict.outcome, "refused");
    assert!(
        conflict.detail.contains("connected=127.0.0.1:"),
        "{}",
        conflict.detail
    );
    assert!(
        conflict.detail.contains("refused=127.0.0.1:"),
        "{}",
        conflict.detail
    );

    // The first agent kept its connection, and its session lives on.
    echo.round_trip("after the clone was refused").await;
    assert!(first.child.try_wait().unwrap().is_none());
    assert!(
        !first
            .stderr
            .text()
            .contains("replaced by a newer connection"),
        "{}",
        first.stderr.text()
    );
    let _ = echo.stdin.shutdown().await;
    drop(echo.stdin);
    let out = tokio::time::timeout(WAIT, echo.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(out.success(), "the session ended badly: {out}");

    // Re-enroll: a token bound to the endpoint; the legitimate agent (the
    // first) restarts with it and gets a new key.
    let token = ok(&site.jg(&["admin", "endpoints", "reenroll", "web"]).await);
    let token = token.trim();
    assert!(token.starts_with("jge_"), "{token}");
    first.child.kill().await.unwrap();
    let renewed = site.spawn_agent_in("web", "web", Some(token), &["--reenroll"]);
    assert!(
        renewed.stderr.wait_for("re-enrolled with a new key").await,
        "{}",
        renewed.stderr.text()
    );
    assert!(renewed.stderr.wait_for("connected").await);
    let e = wait_endpoint(&site, "web", "the conflict cleared, online", |e| {
        e["conflict"].is_null() && e["online"] == true
    })
    .await;
    assert!(e["conflict"].is_null(), "{e}");
    let events = site.security_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "endpoint-reenroll-token" && e.target == "web")
    );
    assert!(
        events
            .iter()
            .any(|e| e.action == "endpoint-reenroll" && e.target == "web" && e.outcome == "ok")
    );
    // The new identity works.
    let out = ok(&site
        .jg(&["shell", "web", "--", "echo", "new-key-works"])
        .await);
    assert_eq!(out.trim(), "new-key-works");

    // The old key is refused for good: a copy made before the re-enrollment
    // stops at once with a clear error.
    let mut old = site.spawn_agent_in("web-copy-2", "web", None, &[]);
    let status = tokio::time::timeout(WAIT, old.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !status.success(),
        "an agent with the old key must be refused"
    );
    // (Its stderr is read by a task of its own: wait for the line, not
    // only for the exit.)
    assert!(
        old.stderr
            .wait_for("does not verify with the endpoint's key")
            .await,
        "{}",
        old.stderr.text()
    );
    // The re-enrolled agent was not disturbed by it.
    let out = ok(&site.jg(&["shell", "web", "--", "echo", "still-fine"]).await);
    assert_eq!(out.trim(), "still-fine");

    // The token is one-time: a second use is refused.
    let spent = site.api_client();
    let body = serde_json::json!({
        "token": token,
        "name": "web",
        "public_key": base64_key(),
        "details": {"hostname": "h", "os": "o", "arch": "a", "agent_version": "v"},
    });
    let (status, body) = raw_call(
        &spent,
        "POST",
        "/api/v1/agents/enroll",
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    drop(clone);
}

/// 32 bytes of base64: an Ed25519 public key's shape.
fn base64_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

/// Contains no byte that a terminal acts on (ESC, BEL, C1 in UTF-8, ...).
fn assert_terminal_safe(out: &str) {
    for c in out.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "control character {c:?} in:\n{out:?}"
        );
    }
}

#[tokio::test]
async fn endpoint_reported_details_are_cleaned_and_jg_tables_escape_and_bound() {
    let site = Site::start().await;
    let token = site.enroll_token(&[]).await;
    // An endpoint reporting a hostile host name and a 3,000-character OS.
    let hostile_host = "\x1b[2J\x1b]0;pwned\x07host\u{9b}1m\u{202e}exe";
    let long_os = format!("Linux {}", "x".repeat(3000));
    let body = serde_json::json!({
        "token": token,
        "name": "hostile",
        "public_key": base64_key(),
        "details": {"hostname": hostile_host, "os": long_os, "arch": "x86_64\x1b[31m", "agent_version": "1\x00"},
    });
    let (status, answer) = raw_call(
        &site.api_client(),
        "POST",
        "/api/v1/agents/enroll",
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));

    // Stored cleaned and bounded: the full (clean) value in --json.
    let eps = site.endpoints().await;
    let e = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hostile")
        .unwrap();
    let host = e["hostname"].as_str().unwrap();
    assert!(
        !host.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{host:?}"
    );
    assert!(
        host.contains("pwned") && host.contains('\u{FFFD}'),
        "{host:?}"
    );
    let os = e["os"].as_str().unwrap();
    assert_eq!(os.chars().count(), 128, "{os}");
    assert!(os.ends_with('…'));
    assert_eq!(e["arch"], "x86_64\u{FFFD}[31m");
    assert_eq!(e["agent_version"], "1\u{FFFD}");

    // The table: nothing a terminal acts on, and the long OS cut.
    let table = ok(&site.jg(&["endpoints"]).await);
    assert_terminal_safe(&table);
    let row = table.lines().find(|l| l.starts_with("hostile")).unwrap();
    assert!(
        row.contains("pwned"),
        "positive control: the row is there: {table}"
    );
    assert!(row.chars().count() < 250, "{row}");

    // A refused enrollment with a hostile, huge name: recorded cleaned and
    // bounded in the audit log.
    let evil_name = format!("\x1b]0;t\x07{}", "n".repeat(5000));
    let body = serde_json::json!({
        "token": "jge_nope",
        "name": evil_name,
        "public_key": base64_key(),
        "details": {"hostname": "h", "os": "o", "arch": "a", "agent_version": "v"},
    });
    let (status, _) = raw_call(
        &site.api_client(),
        "POST",
        "/api/v1/agents/enroll",
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let events = site.security_events().await;
    let refused = events
        .iter()
        .find(|e| e.action == "enroll" && e.outcome == "refused")
        .unwrap();
    assert!(refused.target.chars().count() <= 80, "{}", refused.target);
    assert!(
        !refused.target.chars().any(char::is_control),
        "{:?}",
        refused.target
    );

    // Tables escape whatever their source, and bound every column: a group
    // description typed by an administrator, as long as the gateway allows
    // (500 characters), with a right-to-left override (control characters
    // proper are refused by the gateway already).
    let description = format!("\u{202e}desc{}", "d".repeat(480));
    ok(&site
        .jg(&[
            "admin",
            "groups",
            "create",
            "wide",
            "--description",
            &description,
        ])
        .await);
    let groups = ok(&site.jg(&["admin", "groups", "list"]).await);
    assert_terminal_safe(&groups);
    let row = groups.lines().find(|l| l.starts_with("wide")).unwrap();
    assert!(row.contains("\\u{202e}desc"), "escaped, visible: {groups}");
    assert!(row.chars().count() < 120, "{row}");
    let json = ok(&site.jg(&["admin", "groups", "list", "--json"]).await);
    assert!(
        json.contains(&"d".repeat(480)),
        "--json keeps the full value"
    );
    // Every other row of the audit table stays narrow too.
    let audit = ok(&site.jg(&["audit"]).await);
    assert_terminal_safe(&audit);
    assert!(audit.lines().count() > 3, "positive control: {audit}");
    for line in audit.lines() {
        assert!(line.chars().count() < 400, "{line}");
    }
}

/// Runs `jg ARGS` with its stdout a pipe whose reading end is already
/// closed: `(exit code, stderr)`.
async fn jg_into_closed_pipe(site: &Site, args: &[&str]) -> (Option<i32>, String) {
    let mut child = site
        .jg_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before jg could write anything (it first talks to the gateway).
    drop(child.stdout.take());
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("jg {args:?} hung"))
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_closed_stdout_ends_jg_quietly() {
    let site = Site::start().await;
    for args in [
        &["audit"][..],
        &["audit", "--json"],
        &["endpoints"],
        &["sessions"],
        &["admin", "users", "list"],
        &["whoami"],
    ] {
        // Positive control: the same command with a reader prints something.
        let printed = ok(&site.jg(args).await);
        assert!(!printed.is_empty(), "jg {args:?} printed nothing");
        let (code, stderr) = jg_into_closed_pipe(&site, args).await;
        assert!(!stderr.contains("panicked"), "jg {args:?}: {stderr}");
        assert!(stderr.is_empty(), "jg {args:?} must exit quietly: {stderr}");
        // 141 (128 + SIGPIPE): it did run up to writing its output.
        assert_eq!(code, Some(141), "jg {args:?}: {stderr}");
    }
}

/// A hand-made agent: TLS with the agent ALPN, a signed hello carrying
/// `info`; returns the gateway's answer and the open connection.
async fn raw_hello(
    site: &Site,
    agent_id: &str,
    key: &aws_lc_rs::signature::Ed25519KeyPair,
    info: jumpgate_proto::control::AgentInfo,
) -> (
    jumpgate_proto::control::Control,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    use base64::Engine;
    use jumpgate_proto::control::{self, Control, Hello};
    use jumpgate_proto::frame::Frame;
    use tokio::io::AsyncReadExt;
    let trust = jumpgate_net::tls::Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let cfg = jumpgate_net::tls::client_config(&trust, &[control::AGENT_ALPN]).unwrap();
    let url: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
    let mut tls = jumpgate_net::dial::connect_tls(&url, cfg, None)
        .await
        .unwrap();
    let exporter = tls
        .get_ref()
        .1
        .export_keying_material(
            [0u8; control::AUTH_EXPORTER_LEN],
            control::AUTH_EXPORTER_LABEL,
            None,
        )
        .unwrap();
    let sig = key.sign(&control::auth_message(agent_id, &exporter));
    let hello = Control::Hello(Hello {
        versions: control::SUPPORTED_VERSIONS.to_vec(),
        agent_id: agent_id.to_owned(),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        info,
    });
    let mut out = bytes::BytesMut::new();
    Frame::Control(hello.to_bytes().into()).encode(&mut out);
    tls.write_all(&out).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(f) = Frame::decode(&mut buf).unwrap() {
                break f;
            }
            assert!(tls.read_buf(&mut buf).await.unwrap() > 0, "gateway closed");
        }
    })
    .await
    .expect("no answer to the hello");
    let Frame::Control(payload) = answer else {
        panic!("not a control frame: {answer:?}");
    };
    (Control::from_bytes(&payload).unwrap(), tls)
}

#[tokio::test]
async fn a_hostile_hello_is_cleaned_and_a_malformed_agent_id_refused() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use jumpgate_proto::control::{AgentInfo, Control, RejectCode};
    let site = Site::start().await;
    let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let token = site.enroll_token(&[]).await;
    let body = serde_json::json!({
        "token": token,
        "name": "raw",
        "public_key": base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref()),
        "details": {"hostname": "plain", "os": "plain", "arch": "x86_64", "agent_version": "1"},
    });
    let (status, answer) = raw_call(
        &site.api_client(),
        "POST",
        "/api/v1/agents/enroll",
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let enrolled: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    let agent_id = enrolled["agent_id"].as_str().unwrap().to_owned();

    // The hello reports a hostile host name and a 3,000-character OS.
    let info = AgentInfo {
        hostname: "\x1b]0;owned\x07box\u{202e}".into(),
        os: "y".repeat(3000),
        arch: "arm\x1b[2J".into(),
        agent_version: "9".repeat(500),
    };
    let (answer, _conn) = raw_hello(&site, &agent_id, &key, info).await;
    assert!(matches!(answer, Control::Welcome(_)), "{answer:?}");
    let e = wait_endpoint(&site, "raw", "the hello's details", |e| {
        e["online"] == true && e["os"] != "plain"
    })
    .await;
    assert_eq!(e["hostname"], "\u{FFFD}]0;owned\u{FFFD}box\u{FFFD}");
    assert_eq!(e["arch"], "arm\u{FFFD}[2J");
    assert_eq!(e["os"].as_str().unwrap().chars().count(), 128);
    assert_eq!(e["agent_version"].as_str().unwrap().chars().count(), 64);
    let table = ok(&site.jg(&["endpoints"]).await);
    assert_terminal_safe(&table);
    assert!(table.contains("owned"), "positive control: {table}");

    // An agent id no gateway ever issues is refused before any lookup.
    let (answer, _) = raw_hello(&site, &"x".repeat(1000), &key, AgentInfo::default()).await;
    match answer {
        Control::Reject(r) => assert_eq!(r.code, RejectCode::Malformed, "{r:?}"),
        other => panic!("a malformed agent id was not refused: {other:?}"),
    }
}
