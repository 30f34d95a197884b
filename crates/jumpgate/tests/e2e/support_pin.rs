//! Pin as unattended, end to end with real processes: the customer runs
//! the client downloaded from the real portal under Xvfb; the technician
//! offers permanent access with `jg support pin`; the customer answers in
//! the real window (xdotool). Deny leaves the machine untouched and the
//! technician reads the refusal; Allow runs `jumpgate agent install` (the
//! client is root here, so no pkexec; the test-only
//! `JUMPGATE_ASSIST_TEST_PIN_ROOT` puts it under a temporary root without
//! systemd), then the test starts the installed program itself, as systemd
//! would, and the machine is an endpoint of the chosen group: online, and
//! `jg shell NAME -- cmd` runs on it. A technician without the right to
//! enroll endpoints, or offering a group outside theirs, gets 403.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jumpgate_api_types::support as api;
use jumpgate_client::ClientError;
use jumpgate_test_support::assist::{click_when, trailer_of};
use jumpgate_test_support::xvfb::{Xvfb, have_tools};

use crate::support::*;

const TITLE: &str = "^Jumpgate: remote support$";

fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.insert(e.path());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, &mut out);
    out
}

fn wait_button(x: &Xvfb, w: &str, button: &str) {
    x.poll(&format!("button {button}"), || {
        x.prop(w, "_JUMPGATE_BUTTONS")
            .is_some_and(|b| b.split(';').any(|e| e.starts_with(&format!("{button} "))))
            .then_some(())
    });
}

/// The API's error status of a refused pin.
fn status_of(r: Result<(), ClientError>) -> u16 {
    match r {
        Err(ClientError::Api { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_makes_the_customers_machine_an_endpoint_only_with_its_consent() {
    assert!(
        have_tools(),
        "the X tools are installed (scripts/test installs them)"
    );
    let x = tokio::task::block_in_place(Xvfb::start);
    let site = Site::start().await;
    // tina: a plain technician (no right to enroll endpoints); lena: a
    // senior who may, in groups default and desks.
    let tina = site.technician("tina", "helps-customers-daily-7").await;
    ok(&site
        .jg(&[
            "admin",
            "roles",
            "create",
            "senior",
            "--permissions",
            "view,shell,exec,support,manage-endpoints",
        ])
        .await);
    ok(&site.jg(&["admin", "groups", "create", "desks"]).await);
    let pw = site.password_file("lena.pw", "pins-machines-daily-7");
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "lena",
            "--role",
            "senior",
            "--groups",
            "default,desks",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    let lena = site.home("lena");
    ok(&site
        .try_login_in(&lena, "lena", "pins-machines-daily-7", &[])
        .await);
    ok(&site
        .jg(&[
            "admin", "queues", "create", "helpdesk", "--group", "default", "--member", "tina",
            "--member", "lena",
        ])
        .await);
    let tina_api = site.api_client().with_token(site.saved_token(&tina));
    let lena_api = site.api_client().with_token(site.saved_token(&lena));

    // The customer's machine: a home, and the root the install goes under.
    let machine = tempfile::tempdir().unwrap();
    let home = machine.path().join("home");
    let tmp = machine.path().join("tmp");
    let root = machine.path().join("root");
    for d in [&home, &tmp, &root] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir(home.join("Downloads")).unwrap();

    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Robin".into(),
            problem: "Please look after this machine for good".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let download = home.join("Downloads/jumpgate-assist");
    anon.download_to(&dl.download, &download).await.unwrap();
    std::fs::set_permissions(&download, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut client = spawn_written(
        tokio::process::Command::new(&download)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DISPLAY", &x.display)
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("USER", "robin")
            .env("RUST_LOG", "info")
            .env("JUMPGATE_ASSIST_TEST_PIN_ROOT", &root)
            .current_dir(&home)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true),
    )
    .await;
    let client_log = Log::default();
    client_log.drain(client.stderr.take().unwrap());

    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let rows = tina_api.support_sessions(None, None).await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.state == "waiting") {
            break r.id.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the customer never joined; the client said: {}",
            client_log.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ok(&site.jg_in(&tina, &["support", "accept", &id]).await);
    let w = tokio::task::block_in_place(|| x.window(TITLE));

    // tina owns it but may not enroll endpoints: 403, and nothing is offered.
    assert_eq!(status_of(tina_api.pin_support(&id, "default").await), 403);
    let out = site
        .jg_in(&tina, &["support", "pin", &id, "--group", "default"])
        .await;
    assert!(!out.status.success(), "jg support pin as tina succeeded");
    // lena may, but only as the owner, and only into her groups.
    assert_eq!(status_of(lena_api.pin_support(&id, "default").await), 403);
    ok(&site
        .jg_in(&tina, &["support", "transfer", &id, "--to", "lena"])
        .await);
    assert_eq!(status_of(lena_api.pin_support(&id, "lab").await), 403);
    assert!(
        tokio::task::block_in_place(|| x.prop(&w, "_JUMPGATE_STATUS"))
            .is_some_and(|s| s.ends_with("pin=")),
        "no offer reached the window"
    );

    let pin_args = ["support", "pin", &id, "--group", "desks", "--wait"];
    // lena offers; the customer denies: nothing on the machine, and lena
    // reads the refusal.
    let offer = site.jg_in(&lena, &pin_args);
    let answer = async {
        tokio::task::block_in_place(|| {
            wait_button(&x, &w, "pin-allow");
            // The question, as the customer sees it.
            let (gx, gy, gw, gh) = x.geometry(&w);
            let shot = x.screenshot("assist-pin.png", Some((gx, gy, gw, gh)));
            let _ = std::fs::create_dir_all("/work/shots");
            let _ = std::fs::copy(&shot, "/work/shots/assist-pin.png");
            x.click(&w, "pin-deny");
        });
    };
    let (out, ()) = tokio::join!(offer, answer);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Permanent remote access was not installed: the customer declined"),
        "{said}"
    );
    assert!(
        listing(&root).is_empty(),
        "a denial left files: {:?}",
        listing(&root)
    );

    // Again; the customer allows: installed under the root, enrolled in desks.
    let offer = site.jg_in(&lena, &pin_args);
    let answer = async { click_when(&x, &w, "pin-allow") };
    let (out, ()) = tokio::join!(offer, answer);
    let said = ok(&out);
    assert!(
        said.contains("Permanent remote access installed (group desks)"),
        "{said}\nclient: {}",
        client_log.text()
    );
    let binary = root.join("usr/local/lib/jumpgate/jumpgate");
    let state = root.join("var/lib/jumpgate-agent");
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/jumpgate-agent.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/lib/jumpgate/jumpgate agent --state-dir /var/lib/jumpgate-agent"
    ));
    // The program without the download's trailer: the lean client the
    // portal offers (next to the gateway's executable), byte for byte.
    let installed = std::fs::metadata(&binary).unwrap();
    assert_eq!(installed.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(jumpgate_test_support::assist_bin()).unwrap()
    );
    assert!(download.metadata().unwrap().len() > installed.len());
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("agent.json")).unwrap()).unwrap();
    assert_eq!(identity["group"], "desks");
    let name = identity["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // What systemd would run: the endpoint comes online in desks, and a
    // command runs on it.
    let agent_home = machine.path().join("agent-home");
    std::fs::create_dir(&agent_home).unwrap();
    let mut agent = tokio::process::Command::new(&binary)
        .args(["agent", "--state-dir"])
        .arg(&state)
        .env("HOME", &agent_home)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let agent_log = Log::default();
    agent_log.drain(agent.stderr.take().unwrap());
    site.wait_online(&name, true).await;
    let eps = site.endpoints().await;
    let ep = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap();
    assert_eq!(ep["group"], "desks", "{ep}");
    let out = ok(&site
        .jg_in(
            &lena,
            &["shell", &name, "--", "echo", "pinned-and-reachable"],
        )
        .await);
    assert_eq!(out, "pinned-and-reachable\n", "agent: {}", agent_log.text());

    // Everything is in the audit log: the tokens, the offers, both answers.
    let audit = ok(&site.jg(&["audit"]).await);
    for want in [
        "enroll-token-create",
        "support-pin",
        "offered",
        "not-installed",
        "installed",
    ] {
        assert!(audit.contains(want), "no {want} in the audit log:\n{audit}");
    }
    assert!(
        !audit.contains("jge_"),
        "an enrollment token is in the audit log"
    );

    // The session ends as any other; the support program goes, the
    // installed agent stays.
    ok(&site.jg_in(&lena, &["support", "end", &id]).await);
    click_when(&x, &w, "skip");
    let status = tokio::time::timeout(WAIT, client.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the client's exit: {status:?}");
    assert!(!download.exists(), "the download is still there");
    assert!(binary.exists());
    let _ = agent.start_kill();
}

/// `jumpgate agent install` with `args` (and the site's address).
async fn install(site: &Site, prefix: &[&str], args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = prefix.to_vec();
    all.push(jumpgate_bin());
    let url = site.gateway.url();
    all.extend([
        "agent",
        "install",
        "--server",
        &url,
        "--ca-fingerprint",
        &site.gateway.fingerprint,
    ]);
    all.extend_from_slice(args);
    let out = tokio::process::Command::new(all[0])
        .args(&all[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT * 2, out).await.unwrap().unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "it succeeded: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_failed_install_says_why_and_leaves_nothing_behind() {
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let root_s = root.to_str().unwrap();
    let token = site.enroll_token(&["--group", "default"]).await;

    // A bad token: the gateway refuses; nothing stays.
    let err = stderr_of(
        &install(
            &site,
            &[],
            &[
                "--enroll-token",
                "jge_not-a-token",
                "--root",
                root_s,
                "--no-systemd",
            ],
        )
        .await,
    );
    assert!(err.contains("enrollment failed"), "{err}");
    assert!(listing(&root).is_empty(), "{:?}", listing(&root));

    // No systemd on this machine (a container): refused before anything.
    let err = stderr_of(&install(&site, &[], &["--enroll-token", &token, "--root", root_s]).await);
    assert!(err.contains("does not run systemd"), "{err}");
    assert!(listing(&root).is_empty(), "{:?}", listing(&root));

    // Not root: refused.
    let err = stderr_of(
        &install(
            &site,
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            &["--enroll-token", &token],
        )
        .await,
    );
    assert!(err.contains("needs root"), "{err}");

    // The token was not spent by any of it: it installs now; twice is refused.
    let out = install(
        &site,
        &[],
        &["--enroll-token", &token, "--root", root_s, "--no-systemd"],
    )
    .await;
    let said = ok(&out);
    assert!(said.contains("in group `default`"), "{said}");
    let made = listing(&root);
    assert!(made.contains(&root.join("usr/local/lib/jumpgate/jumpgate")));
    let again = site.enroll_token(&["--group", "default"]).await;
    let err = stderr_of(
        &install(
            &site,
            &[],
            &["--enroll-token", &again, "--root", root_s, "--no-systemd"],
        )
        .await,
    );
    assert!(err.contains("installed on this machine already"), "{err}");
    assert_eq!(listing(&root), made, "a refused install changed files");
}

/// The console's "Pin as unattended…" in chromium (`browser/support_pin.mjs`):
/// the owner (the administrator, who may enroll endpoints) names the
/// group in the prompt, the customer's client (at the protocol level)
/// gets the offer and refuses; the page shows the refusal in the chat.
#[tokio::test]
async fn the_console_offers_permanent_access_and_shows_the_answer() {
    use jumpgate_proto::assist::AssistMsg;
    use jumpgate_test_support::assist::SimCustomer;

    let chromium = crate::web::browser_prerequisites();
    let site = Site::start().await;
    ok(&site
        .jg(&[
            "admin", "queues", "create", "helpdesk", "--group", "default", "--member", ADMIN,
        ])
        .await);
    let admin = site
        .api_client()
        .with_token(site.saved_token(&site.jg_home()));
    let anon = site.api_client();
    let dl = anon
        .portal_request(&api::HelpRequest {
            name: "Jo Browser".into(),
            problem: "Keep an eye on this one".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jumpgate-assist");
    anon.download_to(&dl.download, &file).await.unwrap();
    let t = trailer_of(&file);
    let mut customer = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
        .await
        .unwrap();
    admin.accept_support(&t.support_id).await.unwrap();

    let artifacts = jumpgate_test_support::xvfb::artifacts();
    let node = tokio::process::Command::new("node")
        .arg(crate::web::browser_dir().join("support_pin.mjs"))
        .current_dir(crate::web::browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_USER", ADMIN)
        .env("JG_PASSWORD", ADMIN_PASSWORD)
        .env("JG_SESSION", &t.support_id)
        .env("JG_GROUP", "desks")
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let answer = async {
        let offer = customer
            .expect(
                WAIT * 2,
                "the offer",
                |m| matches!(m, AssistMsg::PinOffer { group, .. } if group == "desks"),
            )
            .await;
        let AssistMsg::PinOffer { token, .. } = offer else {
            unreachable!()
        };
        assert!(token.starts_with("jge_"), "an enrollment token");
        customer.send(AssistMsg::PinResult {
            ok: false,
            message: "the customer declined".into(),
        });
    };
    let (out, ()) = tokio::join!(node, answer);
    let out = out.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.contains("PIN-TEST PASSED"),
        "{printed}\n{}\ngateway:\n{}",
        String::from_utf8_lossy(&out.stderr),
        site.gateway.stderr.text()
    );
}
