//! Access requests with approval (issue #17): a group requiring approval
//! refuses sessions to technicians without an active grant; a request
//! approved by two different approvers (never the requester, the same
//! approver counting once) grants exactly what was asked, for its window;
//! a denial grants nothing; a grant that expires closes the sessions
//! opened under it, telling the technician; every step is audited under
//! the group with what a notice needs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jumpgate_api_types as api;
use jumpgate_api_types::access::AccessRequest;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::support::*;

const PASSWORD: &str = "a-long-technician-password";
const TICKER: &str = "while :; do echo tick; sleep 0.2; done";

/// A site with endpoint `srv` (group `default`), technician `bob` and two
/// other technicians, `carol` and `dave`, each logged in in their own home.
struct Fixture {
    site: Site,
    _agent: Agent,
    bob: PathBuf,
    carol: PathBuf,
    dave: PathBuf,
}

async fn fixture() -> Fixture {
    let site = Site::start().await;
    let agent = site.start_agent("srv").await;
    let mut homes = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let pw = site.password_file(&format!("{name}.pw"), PASSWORD);
        ok(&site
            .admin_bounded(&[
                "create-user",
                name,
                "--role",
                "technician",
                "--groups",
                "default",
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await);
        let home = site.home(name);
        ok(&site.try_login_in(&home, name, PASSWORD, &[]).await);
        homes.push(home);
    }
    let dave = homes.pop().unwrap();
    let carol = homes.pop().unwrap();
    let bob = homes.pop().unwrap();
    Fixture {
        site,
        _agent: agent,
        bob,
        carol,
        dave,
    }
}

/// `jg admin groups approval default`: sessions needing `permissions` on
/// the group `default` need an approved request, decided by `approvers`
/// (`approvals` of them).
pub(crate) async fn require_approval(
    site: &Site,
    permissions: &str,
    approvers: &str,
    approvals: u8,
) {
    let approvals = approvals.to_string();
    ok(&site
        .jg(&[
            "admin",
            "groups",
            "approval",
            "default",
            "--permissions",
            permissions,
            "--approvers",
            approvers,
            "--approvals",
            &approvals,
        ])
        .await);
}

/// `jg access …ARGS --json` in `home`, decoded.
async fn access(site: &Site, home: &Path, args: &[&str]) -> AccessRequest {
    let mut all = vec!["access"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&ok(&site.jg_in(home, &all).await)).unwrap()
}

/// `jg access …ARGS` in `home`, which must fail; its stderr.
async fn access_fails(site: &Site, home: &Path, args: &[&str]) -> String {
    let mut all = vec!["access"];
    all.extend_from_slice(args);
    fails(&site.jg_in(home, &all).await)
}

async fn shell_works(site: &Site, home: &Path) {
    let out = ok(&site
        .jg_in(home, &["shell", "srv", "--", "echo", "in"])
        .await);
    assert_eq!(out.trim(), "in");
}

async fn shell_refused(site: &Site, home: &Path) -> String {
    let err = fails(
        &site
            .jg_in(home, &["shell", "srv", "--", "echo", "in"])
            .await,
    );
    assert!(
        err.contains("requires an approved access request for `exec`"),
        "not refused for lack of a grant: {err}"
    );
    err
}

/// The audit entries of `action` about request `id` (read by the admin).
async fn audited(site: &Site, action: &str, id: &str) -> Vec<api::SecurityEvent> {
    site.security_events()
        .await
        .into_iter()
        .filter(|e| e.action == action && e.target == id)
        .collect()
}

#[tokio::test]
async fn two_approvers_grant_access_for_the_window_and_nobody_approves_their_own_request() {
    let f = fixture().await;
    let site = &f.site;
    // Positive control: before the group requires approval, bob's role is
    // enough.
    shell_works(site, &f.bob).await;
    require_approval(site, "shell,exec", "user:bob,user:carol,user:dave", 2).await;
    // Without a grant bob is refused (and the refusal is audited).
    shell_refused(site, &f.bob).await;
    let events = site.security_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "open-session:exec" && e.actor == "bob" && e.outcome == "denied"),
        "{events:#?}"
    );

    // Bad requests lose nothing and say why.
    let err = access_fails(
        site,
        &f.bob,
        &["request", "default", "--for", "9h", "--reason", "x"],
    )
    .await;
    assert!(err.contains("auth.access_max_window"), "{err}");
    let err = access_fails(
        site,
        &f.bob,
        &["request", "default", "--for", "1h", "--reason", " "],
    )
    .await;
    assert!(err.contains("reason is required"), "{err}");
    let err = access_fails(
        site,
        &f.bob,
        &["request", "nowhere", "--for", "1h", "--reason", "x"],
    )
    .await;
    assert!(
        err.contains("no group or endpoint named `nowhere`"),
        "{err}"
    );

    let r = access(
        site,
        &f.bob,
        &["request", "default", "--for", "1h", "--reason", "INC-123"],
    )
    .await;
    assert_eq!(
        (r.state.as_str(), r.approvals_required, r.window_secs),
        ("pending", 2, 3600)
    );
    assert_eq!(r.permissions, ["shell", "exec"]);
    let id = r.id.clone();

    // Nobody approves their own request, even when named an approver.
    let err = access_fails(site, &f.bob, &["approve", &id]).await;
    assert!(err.contains("your own request"), "{err}");
    // The administrator is no approver of this group.
    let err = fails(&site.jg(&["access", "approve", &id]).await);
    assert!(
        err.contains("no access request") || err.contains("not an approver"),
        "{err}"
    );

    // One approval of two: still pending, still refused.
    let r = access(site, &f.carol, &["approve", &id, "--reason", "looks fine"]).await;
    assert_eq!(r.state, "pending");
    shell_refused(site, &f.bob).await;
    // The same approver twice counts once.
    let err = access_fails(site, &f.carol, &["approve", &id]).await;
    assert!(err.contains("already decided"), "{err}");
    let r = access(site, &f.carol, &["show", &id]).await;
    assert_eq!((r.state.as_str(), r.decisions.len()), ("pending", 1));
    // Pending requests are listed for approvers, with what they may do.
    let list: Vec<AccessRequest> = serde_json::from_str(&ok(&site
        .jg_in(&f.dave, &["access", "list", "--pending", "--json"])
        .await))
    .unwrap();
    assert!(list.iter().any(|x| x.id == id && x.can_decide), "{list:#?}");

    // The second approver activates it: bob's sessions are allowed now.
    let r = access(site, &f.dave, &["approve", &id]).await;
    assert_eq!(r.state, "active");
    assert!(r.until.is_some());
    shell_works(site, &f.bob).await;

    // Every step is audited under the group with what a notice needs.
    let requested = audited(site, "access-request", &id).await;
    assert_eq!(requested.len(), 1, "{requested:#?}");
    let e = &requested[0];
    assert_eq!((e.actor.as_str(), e.outcome.as_str()), ("bob", "pending"));
    for needle in [
        "requester=bob",
        "target=group:default",
        "permissions=shell,exec",
        "window=1h",
        "approvals=0/2",
        "reason=INC-123",
    ] {
        assert!(e.detail.contains(needle), "{needle} missing: {}", e.detail);
    }
    let approved = audited(site, "access-approve", &id).await;
    let outcomes: Vec<(&str, &str)> = approved
        .iter()
        .map(|e| (e.actor.as_str(), e.outcome.as_str()))
        .collect();
    assert!(
        outcomes.contains(&("carol", "pending")) && outcomes.contains(&("dave", "active")),
        "{approved:#?}"
    );
    assert!(
        approved
            .iter()
            .any(|e| e.detail.contains("approvals=2/2") && e.detail.contains("until="))
    );

    // The grant ends when the requester cancels it: refused again.
    let r = access(site, &f.bob, &["cancel", &id]).await;
    assert_eq!(r.state, "cancelled");
    shell_refused(site, &f.bob).await;
    assert_eq!(audited(site, "access-cancel", &id).await.len(), 1);
}

#[tokio::test]
async fn a_denied_request_grants_nothing() {
    let f = fixture().await;
    let site = &f.site;
    require_approval(site, "all", "role:technician", 1).await;
    shell_refused(site, &f.bob).await;
    let r = access(
        site,
        &f.bob,
        &["request", "srv", "--for", "30m", "--reason", "CHG-7"],
    )
    .await;
    assert_eq!(r.endpoint.as_deref(), Some("srv"));
    let r = access(site, &f.carol, &["deny", &r.id, "--reason", "not today"]).await;
    assert_eq!(r.state, "denied");
    shell_refused(site, &f.bob).await;
    // A decided request takes no more decisions.
    let err = access_fails(site, &f.dave, &["approve", &r.id]).await;
    assert!(err.contains("is denied, not pending"), "{err}");
    shell_refused(site, &f.bob).await;
    let denied = audited(site, "access-deny", &r.id).await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert!(
        denied[0].detail.contains("decision-reason=not today")
            && denied[0].detail.contains("target=endpoint:srv"),
        "{denied:#?}"
    );

    // Positive control for the refusals above: an approved request for the
    // endpoint lets bob in.
    let r = access(
        site,
        &f.bob,
        &["request", "srv", "--for", "30m", "--reason", "CHG-8"],
    )
    .await;
    let r = access(site, &f.carol, &["approve", &r.id]).await;
    assert_eq!(r.state, "active");
    shell_works(site, &f.bob).await;
}

/// `jg shell srv -- sh -c TICKER` in `home`, once its first line arrived.
async fn live_exec(site: &Site, home: &Path) -> Child {
    let mut child = site
        .jg_command(&["shell", "srv", "--", "sh", "-c", TICKER])
        .env("JG_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the session printed nothing")
        .unwrap();
    assert_eq!(first.as_deref(), Some("tick"), "the session did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

#[tokio::test]
async fn a_session_is_closed_when_its_grant_expires() {
    let f = fixture().await;
    let site = &f.site;
    require_approval(site, "exec,shell", "user:carol", 1).await;
    let r = access(
        site,
        &f.bob,
        &["request", "default", "--for", "10s", "--reason", "INC-9"],
    )
    .await;
    let id = r.id.clone();
    let r = access(site, &f.carol, &["approve", &id]).await;
    assert_eq!(r.state, "active");
    let child = live_exec(site, &f.bob).await;
    // The session ends by itself when the window closes (polled with a
    // deadline), and bob is told why.
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the session outlived its access grant")
        .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("session closed by the gateway") && err.contains("access grant expired"),
        "jg did not show why: {err}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = site.security_events().await;
        let expired = events
            .iter()
            .any(|e| e.action == "access-expire" && e.target == id && e.outcome == "expired");
        let revoked = events.iter().any(|e| {
            e.action == "session-revoke" && e.detail.contains("reason=access grant expired")
        });
        if expired && revoked {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access-expire and session-revoke entries: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(access(site, &f.bob, &["show", &id]).await.state, "expired");
    shell_refused(site, &f.bob).await;
}

/// A real elevation waiting for approval on endpoint `desk-3` (an agent
/// with an elevation socket, the EPM test policy published, a throw-away
/// local user running `jumpgate elevate -- date +%Y`): its process and
/// request id. `None` unless root (CI runs as root).
struct Elevation {
    id: String,
    waiting: Child,
    _agent: Agent,
    _user: crate::epm::LocalUser,
    _dir: tempfile::TempDir,
}

async fn elevation_waiting(site: &Site) -> Option<Elevation> {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::geteuid().is_root() {
        println!("note: not root, so no elevation request on the page (CI runs as root)");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("jg-accel")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("jumpgate");
    std::fs::copy(jumpgate_bin(), &bin).unwrap();
    let settled = spawn_written(
        tokio::process::Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null()),
    )
    .await;
    assert!(settled.wait_with_output().await.unwrap().status.success());
    let socket = dir.path().join("elevate.sock");
    let token = site.enroll_token(&[]).await;
    let agent = site.spawn_agent(
        "desk-3",
        Some(&token),
        &["--elevate-socket", socket.to_str().unwrap()],
    );
    site.wait_online("desk-3", true).await;
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, crate::epm::POLICY).unwrap();
    ok(&site
        .jg(&["epm", "policy", "import", file.to_str().unwrap()])
        .await);
    ok(&site.jg(&["epm", "publish"]).await);
    crate::epm::wait_status(site, "desk-3", "version 1 accepted", |r| {
        r["accepted_version"] == 1
    })
    .await;
    let user = crate::epm::LocalUser::random("jgacc");
    let waiting = crate::epm::elevate(
        &bin,
        &user,
        &socket,
        &["--reason", "INC-31 printer driver", "--", "date", "+%Y"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let list: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["epm", "requests", "--json"]).await)).unwrap();
        if let Some(r) = list.as_array().unwrap().first() {
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no elevation request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Some(Elevation {
        id,
        waiting,
        _agent: agent,
        _user: user,
        _dir: dir,
    })
}

#[tokio::test]
async fn the_access_requests_page_in_a_real_browser() {
    crate::web::browser_prerequisites();
    let f = fixture().await;
    let site = &f.site;
    require_approval(site, "shell,exec", "role:admin", 1).await;
    shell_refused(site, &f.bob).await;
    let r = access(
        site,
        &f.bob,
        &["request", "default", "--for", "2h", "--reason", "INC-4242"],
    )
    .await;
    // An endpoint user's elevation request waits on the same page.
    let elevation = elevation_waiting(site).await;
    let elevation_id = elevation.as_ref().map_or("", |e| e.id.as_str());
    let artifacts = crate::web::run_browser(
        site,
        "access.mjs",
        "access",
        "ACCESS-TEST PASSED",
        &[
            ("JG_REQUESTER", "bob".as_ref()),
            ("JG_REQUEST_ID", r.id.as_ref()),
            ("JG_ELEVATION_ID", elevation_id.as_ref()),
        ],
        Duration::from_secs(150),
    )
    .await;
    assert!(artifacts.join("access-requests.png").exists());
    // Approved in the browser: bob's sessions are allowed now.
    assert_eq!(access(site, &f.bob, &["show", &r.id]).await.state, "active");
    shell_works(site, &f.bob).await;
    // The elevation approved with a click: the program ran as root.
    if let Some(e) = elevation {
        assert!(artifacts.join("access-elevation.png").exists());
        let out = tokio::time::timeout(WAIT, e.waiting.wait_with_output())
            .await
            .expect("the elevation still waits after the approval")
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .starts_with("20"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let shown = access(site, &f.bob, &["show", &e.id]).await;
        // bob (a technician of the group: epm-approve) sees it approved.
        assert_eq!(
            (shown.kind.as_str(), shown.state.as_str()),
            ("elevation", "approved")
        );
    }
}
