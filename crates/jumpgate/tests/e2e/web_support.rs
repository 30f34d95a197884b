//! The technician's side of attended support in Debian's chromium
//! (`tests/browser/support.mjs`, driven by playwright-core) against a real
//! gateway, with a real customer client at the protocol level
//! (`SimCustomer`: real TLS, the real hello) playing the customer.
//!
//! The browser and this test take turns over a line protocol: the node
//! script prints `@@ <tag> <json>` when it is ready for the customer's next
//! step, and reads `<tag> <json>` lines on its standard input for what the
//! customer did (with this side's wall-clock times, so the page can measure
//! how long the console took to show it).
//!
//! Tina, in queue `helpdesk`, has `#/support` open; a customer asks for
//! help through the portal's API and their client connects: the row (and
//! its Accept button) appears live in the page, the delay is measured and
//! printed (not asserted). Tina accepts in the browser, chats both ways,
//! asks for control (the customer allows, then takes it back: the page
//! follows at once), invites bob as an observer and removes him (the
//! customer's list follows), makes a session key, and ends the session;
//! the customer's client is told.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jumpgate_api_types::support as sapi;
use jumpgate_proto::assist::{AssistMsg, ChatFrom, Right, SupportState};
use jumpgate_test_support::assist::{SimCustomer, trailer_of};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::*;
use crate::web::{browser_dir, browser_prerequisites as chromium};

const TINA_PASSWORD: &str = "helps-customers-daily-7";
const CUSTOMER: &str = "Jo Browser";
/// How long one step of the browser may take (its own waits are 20 s).
const STEP: Duration = Duration::from_secs(90);

/// Unix milliseconds, the clock the page's `Date.now()` reads too.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The node script, its turns and everything it printed.
struct Browser<'a> {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stdin: ChildStdin,
    stderr: tokio::task::JoinHandle<String>,
    printed: Vec<String>,
    site: &'a Site,
    artifacts: PathBuf,
}

impl Browser<'_> {
    /// Everything known so far, for a failure's message.
    async fn report(&mut self) -> String {
        let _ = self.child.start_kill();
        let stderr = tokio::time::timeout(Duration::from_secs(5), &mut self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{stderr}\ngateway log:\n{}\nscreenshots: {}",
            self.printed.join("\n"),
            self.site.gateway.stderr.text(),
            self.artifacts.display()
        )
    }

    async fn fail(&mut self, why: &str) -> ! {
        let report = self.report().await;
        panic!("{why}\n{report}")
    }

    /// Waits for the script's `@@ <tag> <json>`; returns the JSON.
    async fn until(&mut self, tag: &str) -> Value {
        let want = format!("@@ {tag}");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(l))) => l,
                Ok(Ok(None)) => self.fail(&format!("the browser ended before {tag}")).await,
                Ok(Err(e)) => self.fail(&format!("reading the browser: {e}")).await,
                Err(_) => self.fail(&format!("the browser never got to {tag}")).await,
            };
            self.printed.push(line.clone());
            if let Some(rest) = line.strip_prefix(&want) {
                return serde_json::from_str(rest.trim()).unwrap_or(Value::Null);
            }
        }
    }

    /// Tells the script what the customer did.
    async fn tell(&mut self, tag: &str, data: Value) {
        let line = format!("{tag} {data}\n");
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            self.fail(&format!("telling the browser {tag}: {e}")).await
        }
        let _ = self.stdin.flush().await;
    }

    /// The script's exit and its last lines; asserts it passed.
    async fn finish(mut self) -> Vec<String> {
        loop {
            match tokio::time::timeout(STEP, self.lines.next_line()).await {
                Ok(Ok(Some(l))) => self.printed.push(l),
                Ok(_) => break,
                Err(_) => self.fail("the browser did not finish").await,
            }
        }
        let Ok(Ok(status)) = tokio::time::timeout(STEP, self.child.wait()).await else {
            self.fail("the browser did not exit").await
        };
        if !status.success() || !self.printed.iter().any(|l| l == "SUPPORT-TEST PASSED") {
            self.fail(&format!("node exited {status}")).await
        }
        self.printed
    }
}

#[tokio::test]
async fn a_technician_takes_a_customer_in_the_console_live() {
    let chromium = chromium();
    let site = Site::start().await;
    let tina_home = site
        .technician_in_queue("tina", TINA_PASSWORD, "helpdesk")
        .await;
    let tina = site.api_client().with_token(site.saved_token(&tina_home));
    // Bob, in the same queue: tina may invite him.
    site.technician("bob", "also-helps-customers-9").await;
    ok(&site
        .jg(&[
            "admin", "queues", "update", "helpdesk", "--member", "tina", "--member", "bob",
        ])
        .await);

    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/support");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(browser_dir().join("support.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_USER", "tina")
        .env("JG_PASSWORD", TINA_PASSWORD)
        .env("JG_CUSTOMER", CUSTOMER)
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let mut b = Browser {
        child,
        lines: BufReader::new(stdout).lines(),
        stdin,
        stderr,
        printed: Vec::new(),
        site: &site,
        artifacts: artifacts.clone(),
    };

    // Tina has the queue open (its event stream live); a customer asks.
    b.until("queue-open").await;
    let anon = site.api_client();
    let asked_at = now_ms();
    let dl = anon
        .portal_request(&sapi::HelpRequest {
            name: CUSTOMER.into(),
            problem: "The printer prints blank pages".into(),
            queue: "helpdesk".into(),
        })
        .await
        .unwrap();
    b.tell("requested", json!({ "at": asked_at, "done": now_ms() }))
        .await;
    b.until("pending-shown").await;

    // Their client downloads and connects; the page measures from here.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jumpgate-assist");
    tokio::time::timeout(
        Duration::from_secs(120),
        anon.download_to(&dl.download, &file),
    )
    .await
    .expect("the download hung")
    .unwrap();
    let t = trailer_of(&file);
    let id = t.support_id.clone();
    let dialled_at = now_ms();
    let mut c = SimCustomer::connect(&t.url, &t.fingerprint, &t.ticket)
        .await
        .unwrap();
    let joined_at = now_ms();
    b.tell(
        "connected",
        json!({ "id": id, "dialled": dialled_at, "joined": joined_at }),
    )
    .await;
    c.expect(WAIT, "waiting, first in line", |m| {
        matches!(
            m,
            AssistMsg::Status {
                state: SupportState::Waiting,
                position: Some(1),
                ..
            }
        )
    })
    .await;

    // Tina accepted in the page and wrote to the customer.
    let said = b.until("tech-said").await;
    let tech_line = said["text"].as_str().unwrap().to_owned();
    c.expect(WAIT, "the session active", |m| {
        matches!(
            m,
            AssistMsg::Status {
                state: SupportState::Active,
                ..
            }
        )
    })
    .await;
    c.expect(WAIT, "tina's line from the page", |m| {
        matches!(m, AssistMsg::Chat(l) if l.from == "tina" && l.from_kind == ChatFrom::Technician && l.text == tech_line)
    })
    .await;
    let customer_line = "Thanks! It is the printer on the second floor.";
    let sent_at = now_ms();
    c.send(AssistMsg::SendChat {
        text: customer_line.into(),
    });
    b.tell(
        "customer-said",
        json!({ "text": customer_line, "at": sent_at }),
    )
    .await;

    // Tina asks for control in the page; the customer allows.
    b.until("asked").await;
    let ask = c
        .expect(WAIT, "the ask for control", |m| {
            matches!(m, AssistMsg::Ask { right: Right::Control, technician, .. } if technician == "tina")
        })
        .await;
    let AssistMsg::Ask { id: ask_id, .. } = ask else {
        unreachable!()
    };
    let allowed_at = now_ms();
    c.send(AssistMsg::Answer {
        id: ask_id,
        allowed: true,
    });
    b.tell("allowed", json!({ "at": allowed_at })).await;

    // The page shows it granted; the customer takes it back.
    b.until("granted").await;
    let revoked_at = now_ms();
    c.send(AssistMsg::Revoke {
        right: Right::Control,
    });
    b.tell("revoked", json!({ "at": revoked_at })).await;

    // Tina invites bob as an observer in the page: the customer sees him;
    // she removes him: he is gone from the customer's list.
    b.until("invited").await;
    let listed = |want: &'static [&'static str]| {
        move |m: &AssistMsg| {
            matches!(m, AssistMsg::Participants { list }
                if list.iter().map(|p| p.name.as_str()).collect::<Vec<_>>() == want)
        }
    };
    c.expect(WAIT, "bob listed", listed(&["tina", "bob"])).await;
    b.tell("saw-bob", json!({})).await;
    b.until("removed").await;
    c.expect(WAIT, "bob gone", listed(&["tina"])).await;

    // A session key, then Tina ends the session in the page.
    b.until("ended").await;
    c.expect(WAIT, "the end", |m| matches!(m, AssistMsg::End { .. }))
        .await;
    c.close();
    let printed = b.finish().await;
    for l in printed.iter().filter(|l| l.starts_with("FIGURE ")) {
        println!("{l}");
    }

    // What the page did is what the gateway holds.
    let rows = tina.support_sessions(None, None).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"));
    assert_eq!(row.state, "ended", "{row:?}");
    // Everyone who took part, the observer bob included.
    assert_eq!(row.technicians, ["bob", "tina"], "{row:?}");
    assert_eq!(row.rights_used, ["view", "control"], "{row:?}");
    let events = site.security_events().await;
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e.target == id)
        .map(|e| e.action.as_str())
        .collect();
    for a in [
        "support-accept",
        "support-chat",
        "support-right",
        "support-end",
    ] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
    // The page showed a key of ten digits (not printed: it is live).
    assert!(
        printed.iter().any(|l| l == "KEY_DIGITS=10"),
        "{}",
        printed.join("\n")
    );
}
