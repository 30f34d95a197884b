//! The web console: served by `jumpgate server` itself; cookie sessions
//! with CSRF and origin checks (HTTP level, no browser); and the whole
//! console in Debian's chromium driven by playwright-core
//! (`tests/browser/console.mjs`) against a real gateway and agent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jumpgate_api_types as api;
use tokio::process::Command;

use crate::support::{ADMIN, ADMIN_PASSWORD, Site, WAIT, http_exchange, ok, sha256_hex};

/// Upper bound for the whole browser run (it caps itself at 240 s too).
const BROWSER_RUN: Duration = Duration::from_secs(300);

pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn artifacts_dir() -> PathBuf {
    // crates/jumpgate -> the workspace's target/browser-artifacts
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts")
}

fn chromium() -> PathBuf {
    std::env::var_os("JG_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The admin's bearer token (saved by `jg login` in the site's JG_HOME).
fn admin_client(site: &Site) -> jumpgate_client::Client {
    site.api_client()
        .with_token(site.saved_token(&site.jg_home()))
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test]
async fn the_gateway_serves_the_console_with_a_strict_policy() {
    let site = Site::start().await;
    let (status, head, body) = http_exchange(&site, "GET / HTTP/1.1", b"").await;
    assert_eq!(status, 200, "{head}");
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("/assets/app.js"), "{html}");
    assert_eq!(header(&head, "content-type"), ["text/html; charset=utf-8"]);
    let csp = header(&head, "content-security-policy").join(" ");
    assert!(csp.contains("script-src 'self'"), "{head}");
    for directive in csp.split(';').map(str::trim) {
        // The one allowance: <style> elements, for xterm.js (see web/mod.rs).
        if directive.contains("unsafe") {
            assert_eq!(directive, "style-src-elem 'self' 'unsafe-inline'", "{csp}");
        }
    }
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        header(&head, "strict-transport-security")
            .first()
            .is_some_and(|v| v.starts_with("max-age=")),
        "{head}"
    );
    for (path, ct) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        (
            "/assets/vendor/xterm/xterm.mjs",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let (status, head, body) = http_exchange(&site, &format!("GET {path} HTTP/1.1"), b"").await;
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(header(&head, "content-type"), [ct], "{path}");
        assert!(!body.is_empty());
    }
    let (status, _, body) = http_exchange(&site, "GET /assets/nope.js HTTP/1.1", b"").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no_asset"));
    // The console's routes are in the route table, as public.
    let table = jumpgate_server::route_table();
    for path in ["/", "/assets/{*path}"] {
        assert!(
            table
                .iter()
                .any(|r| r.path == path && r.access == "public" && r.method == "GET"),
            "{path} missing from the route table"
        );
    }
}

/// Logs in for a cookie session over raw HTTP: `(cookie pair, csrf token)`.
async fn cookie_login(site: &Site, user: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({"username": user, "password": password, "cookie": true});
    let body = body.to_string();
    let (status, head, answer) = http_exchange(
        site,
        "POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json",
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    let set = header(&head, "set-cookie");
    assert_eq!(set.len(), 1, "{head}");
    let cookie = set[0];
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    assert!(cookie.starts_with(api::SESSION_COOKIE), "{cookie}");
    let r: api::LoginResponse = serde_json::from_slice(&answer).unwrap();
    assert!(r.token.is_empty(), "a cookie login returns no bearer token");
    let csrf = r.csrf_token.expect("a cookie login returns a CSRF token");
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, csrf)
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_and_the_gateways_origin() {
    let site = Site::start().await;
    let _agent = site.start_agent("web-1").await;
    let (cookie, csrf) = cookie_login(&site, ADMIN, ADMIN_PASSWORD).await;
    let host = site.gateway.addr;

    // Reads work with the cookie alone; the console can recover its CSRF token.
    let (status, head, body) = http_exchange(
        &site,
        &format!("GET /api/v1/me HTTP/1.1\r\nCookie: {cookie}"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"username\":\"admin\""));
    let (status, _, body) = http_exchange(
        &site,
        &format!("GET /api/v1/auth/session HTTP/1.1\r\nCookie: {cookie}"),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let s: api::ConsoleSession = serde_json::from_slice(&body).unwrap();
    assert_eq!(s.csrf_token, csrf);

    // A state-changing request with the cookie but no (or a wrong) token.
    let group = br#"{"name":"made-by-cookie"}"#;
    for extra in ["", "\r\nX-CSRF-Token: 0000", "\r\nX-CSRF-Token: "] {
        let (status, head, body) = http_exchange(
            &site,
            &format!(
                "POST /api/v1/groups HTTP/1.1\r\nContent-Type: application/json\r\nCookie: {cookie}{extra}"
            ),
            group,
        )
        .await;
        assert_eq!(status, 403, "{extra:?}: {head}");
        assert!(String::from_utf8_lossy(&body).contains("\"csrf\""));
    }
    let groups = ok(&site.jg(&["admin", "groups", "list", "--json"]).await);
    assert!(!groups.contains("made-by-cookie"), "{groups}");
    // With it: allowed, exactly as with a bearer token.
    let (status, head, _) = http_exchange(
        &site,
        &format!(
            "POST /api/v1/groups HTTP/1.1\r\nContent-Type: application/json\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}"
        ),
        group,
    )
    .await;
    assert_eq!(status, 201, "{head}");
    let groups = ok(&site.jg(&["admin", "groups", "list", "--json"]).await);
    assert!(groups.contains("made-by-cookie"), "{groups}");

    // A session WebSocket from another origin (or none) is refused before
    // anything reaches the endpoint; from the gateway's own origin it opens.
    let ws = |origin: Option<String>| {
        let origin = origin
            .map(|o| format!("\r\nOrigin: {o}"))
            .unwrap_or_default();
        format!(
            "GET /api/v1/endpoints/web-1/connect?kind=shell HTTP/1.1\r\nCookie: {cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=={origin}"
        )
    };
    for origin in [
        Some("https://evil.example".to_owned()),
        Some(format!("http://{host}")),
        None,
    ] {
        let (status, head, body) = http_exchange(&site, &ws(origin.clone()), b"").await;
        assert_eq!(status, 403, "{origin:?}: {head}");
        assert!(String::from_utf8_lossy(&body).contains("\"csrf\""));
    }
    let head = upgrade_head(&site, &ws(Some(format!("https://{host}")))).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "upgrade"), ["websocket"]);

    // Bearer clients are untouched: no CSRF token, no origin.
    let token = site.saved_token(&site.jg_home());
    let (status, head, _) = http_exchange(
        &site,
        &format!(
            "POST /api/v1/groups HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}"
        ),
        br#"{"name":"made-by-bearer"}"#,
    )
    .await;
    assert_eq!(status, 201, "{head}");

    // Logging out clears the cookie and ends the session.
    let (status, head, _) = http_exchange(
        &site,
        &format!("POST /api/v1/auth/logout HTTP/1.1\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}"),
        b"",
    )
    .await;
    assert_eq!(status, 204, "{head}");
    assert!(
        header(&head, "set-cookie")[0].contains("Max-Age=0"),
        "{head}"
    );
    let (status, _, _) = http_exchange(
        &site,
        &format!("GET /api/v1/me HTTP/1.1\r\nCookie: {cookie}"),
        b"",
    )
    .await;
    assert_eq!(status, 401);
    // No secret reached the log, which is proven captured up to here and
    // holds the cookie login (so the check can fail).
    let log = site.gateway_log_through_now().await;
    assert!(log.contains("login"), "{log}");
    let session_token = cookie.split_once('=').unwrap().1;
    assert!(
        !log.contains(session_token),
        "the session token is in the log"
    );
    assert!(!log.contains(&csrf), "the CSRF token is in the log");
}

#[tokio::test]
async fn terminating_a_live_session_closes_it_and_is_audited() {
    let site = Site::start().await;
    let _agent = site.start_agent("web-1").await;
    let admin = admin_client(&site);
    // Unknown (or ended) sessions: 404.
    let (status, _) = crate::support::raw_call(
        &admin,
        "POST",
        "/api/v1/sessions/ses_nope/terminate",
        None,
        b"",
    )
    .await;
    assert_eq!(status, 404);
    // A live shell held open by `jg exec sleep`.
    let child = site
        .jg_command(&["shell", "web-1", "--", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let live = loop {
        let sessions: Vec<api::SessionEvent> = admin.get_json("/api/v1/sessions").await.unwrap();
        if let Some(s) = sessions.into_iter().find(|s| s.ended_at.is_none()) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no live session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, body) = crate::support::raw_call(
        &admin,
        "POST",
        &format!("/api/v1/sessions/{}/terminate", live.id),
        None,
        b"",
    )
    .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("jg exec did not end after termination")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("terminated by admin"), "{stderr}");
    let events = site.security_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "session-terminate" && e.target == live.id && e.actor == ADMIN),
        "{events:?}"
    );
    let (status, _) = crate::support::raw_call(
        &admin,
        "POST",
        &format!("/api/v1/sessions/{}/terminate", live.id),
        None,
        b"",
    )
    .await;
    assert_eq!(status, 404, "an ended session cannot be terminated");
}

/// Sends an upgrade request and returns the answer's head (the connection
/// stays open after a `101`, so it is not read to the end).
async fn upgrade_head(site: &Site, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let trust = jumpgate_net::tls::Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let cfg = jumpgate_net::tls::client_config(&trust, &[b"http/1.1"]).unwrap();
    let url: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
    let exchange = async {
        let mut tls = jumpgate_net::dial::connect_tls(&url, cfg, None)
            .await
            .unwrap();
        let head = format!("{request}\r\nHost: {}\r\n\r\n", site.gateway.addr);
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 1024];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            raw.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&raw).into_owned()
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("upgrade hung")
}

/// Runs `tests/browser/SCRIPT` (playwright-core driving Debian's chromium)
/// against `site`, as its administrator (`JG_URL`, `JG_ADMIN`,
/// `JG_ADMIN_PASSWORD`, `JG_ARTIFACTS` = `target/browser-artifacts/ARTIFACTS`,
/// emptied first, `JG_CHROMIUM`) with `env` added, for at most `limit`.
/// Fails the test, with the script's output, the gateway's log and where
/// the screenshots are, unless the script exited 0 and printed the line
/// `PASSED` (`NAME-TEST PASSED`). Answers the screenshots' folder.
pub(crate) async fn run_browser(
    site: &Site,
    script: &str,
    artifacts: &str,
    passed: &str,
    env: &[(&str, &std::ffi::OsStr)],
    limit: Duration,
) -> PathBuf {
    let chromium = browser_prerequisites();
    let artifacts = artifacts_dir().join(artifacts);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser test {script} hung"))
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!(
        "node exited {}\nstdout:\n{printed}\nstderr:\n{}\ngateway log:\n{}\nscreenshots: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(printed.lines().any(|l| l == passed), "{report}");
    artifacts
}

/// What the browser run needs; a missing piece fails the test with the
/// command that installs it (never a silent pass).
pub(crate) fn browser_prerequisites() -> PathBuf {
    let chromium = chromium();
    assert!(
        chromium.exists(),
        "{} is missing: run ./scripts/test, which installs Debian's chromium (or set JG_CHROMIUM)",
        chromium.display()
    );
    let module = browser_dir().join("node_modules/playwright-core/package.json");
    assert!(
        module.exists(),
        "{} is missing: run ./scripts/test, which runs `npm ci` in {}",
        module.display(),
        browser_dir().display()
    );
    chromium
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    let chromium = browser_prerequisites();
    let site = Site::start().await;
    let home = site.dir.path().join("endpoint-home");
    std::fs::create_dir_all(&home).unwrap();
    let _agent = site.start_agent_with_home("web-1", &home).await;
    let admin = admin_client(&site);
    // An operator role that may do everything the console shows, and must
    // enroll MFA; a technician without view-audit.
    let _: api::Role = admin
        .post_json(
            "/api/v1/roles",
            &api::CreateRole {
                name: "operator".into(),
                description: "console operator".into(),
                permissions: ["view", "shell", "files", "manage-endpoints", "view-audit"]
                    .map(str::to_owned)
                    .to_vec(),
            },
        )
        .await
        .unwrap();
    let mut settings: api::SecuritySettings =
        admin.get_json("/api/v1/settings/security").await.unwrap();
    settings.mfa_required_roles = vec!["operator".into()];
    let _: api::SecuritySettings = admin
        .put_json("/api/v1/settings/security", &settings)
        .await
        .unwrap();
    const OPERATOR_PASSWORD: &str = "operator-console-pass-7781";
    const TECH_PASSWORD: &str = "technician-console-pass-3390";
    for (name, role, password) in [
        ("olga", "operator", OPERATOR_PASSWORD),
        ("tom", "technician", TECH_PASSWORD),
    ] {
        let _: api::User = admin
            .post_json(
                "/api/v1/users",
                &api::CreateUser {
                    username: name.into(),
                    password: password.into(),
                    role: role.into(),
                    groups: vec!["*".into()],
                    email: None,
                },
            )
            .await
            .unwrap();
    }
    let uploads = site.dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    // A folder of its own: the other browser tests, running at the same
    // time, keep theirs beside it (removing the whole artifacts folder
    // here took their screenshots away mid-test).
    let artifacts = artifacts_dir().join("console");
    // Screenshots of this run only (a stale failure shot would mislead).
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("console.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_USER", "olga")
        .env("JG_PASSWORD", OPERATOR_PASSWORD)
        .env("JG_TECH", "tom")
        .env("JG_TECH_PASSWORD", TECH_PASSWORD)
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_ENDPOINT", "web-1")
        .env("JG_UPLOAD_DIR", &uploads)
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_RUN, cmd.output())
        .await
        .expect("the browser test hung")
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway log:\n{}\nscreenshots: {}",
        out.status,
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("CONSOLE-TEST PASSED"), "{report}");
    let fact = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in the output\n{report}"))
            .to_owned()
    };
    // The file the browser uploaded is on the endpoint, byte for byte.
    let written = std::fs::read(uploads.join(fact("UPLOAD_NAME"))).unwrap();
    assert_eq!(sha256_hex(&written), fact("UPLOAD_SHA256"));
    // Browser sessions are audited like any other.
    let events = site.security_events().await;
    for action in [
        "session-open:shell",
        "session-open:upload",
        "session-terminate",
        "recording-view",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.action == action && e.actor == "olga"),
            "no {action} event by olga: {events:?}"
        );
    }
    // The terminal session was recorded and replayed in the page.
    assert_eq!(fact("RECORDINGS"), "replayed", "{report}");
    // Screenshots of each page are kept as artifacts.
    let shots = std::fs::read_dir(&artifacts)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(
        shots >= 15,
        "only {shots} screenshots in {}",
        artifacts.display()
    );
}
