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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
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
    assert!(
        old.stderr
            .text()
            .contains("does not verify with the endpoint's key"),
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
    // description typed by an administrator, 5,000 characters with escapes.
    let description = format!("\x1b[2Jdesc{}", "d".repeat(5000));
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
    assert!(row.contains("\\x1b[2Jdesc"), "escaped, visible: {groups}");
    assert!(row.chars().count() < 120, "{row}");
    let json = ok(&site.jg(&["admin", "groups", "list", "--json"]).await);
    assert!(
        json.contains(&"d".repeat(5000)),
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
