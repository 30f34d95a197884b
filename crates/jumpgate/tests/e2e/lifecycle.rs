//! Enrollment, revocation, reconnection, proxies and access decisions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::support::*;

#[tokio::test]
async fn enrollment_tokens_are_one_time_expiring_and_checked() {
    let site = Site::start().await;
    let token = site.enroll_token(&["--group", "web"]).await;
    assert!(token.starts_with("jge_"), "{token}");
    let _a = site.spawn_agent("web-1", Some(&token), &[]);
    site.wait_online("web-1", true).await;
    let eps = site.endpoints().await;
    let ep = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "web-1")
        .unwrap();
    assert_eq!(ep["group"], "web");
    assert!(!ep["hostname"].as_str().unwrap().is_empty());
    assert!(!ep["os"].as_str().unwrap().is_empty());

    // Spent.
    let mut b = site.spawn_agent("web-2", Some(&token), &[]);
    let status = tokio::time::timeout(WAIT, b.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(
        b.stderr.wait_for("already used").await,
        "{}",
        b.stderr.text()
    );

    // Unknown.
    let mut c = site.spawn_agent("web-3", Some("jge_not-a-real-token"), &[]);
    assert!(
        !tokio::time::timeout(WAIT, c.child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    assert!(c.stderr.wait_for("unknown enrollment token").await);

    // Expired.
    let short = site.enroll_token(&["--ttl", "1s"]).await;
    // Not synchronisation: the token's life running out is what is tested
    // (a slower machine only makes it more expired).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut d = site.spawn_agent("web-4", Some(&short), &[]);
    assert!(
        !tokio::time::timeout(WAIT, d.child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    assert!(d.stderr.wait_for("expired").await);

    // Not enrolled and no token.
    let mut e = site.spawn_agent("web-5", None, &[]);
    assert!(
        !tokio::time::timeout(WAIT, e.child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    assert!(e.stderr.wait_for("not enrolled").await);

    // A refused enrollment does not spend the token: a taken name fails,
    // the same token then works under a free name.
    let t2 = site.enroll_token(&[]).await;
    let mut f = site.spawn_agent_in("another-machine", "web-1", Some(&t2), &[]);
    assert!(
        !tokio::time::timeout(WAIT, f.child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    assert!(
        f.stderr.wait_for("already enrolled").await,
        "{}",
        f.stderr.text()
    );
    let _g = site.spawn_agent("web-6", Some(&t2), &[]);
    site.wait_online("web-6", true).await;
}

#[tokio::test]
async fn later_runs_need_no_token_and_survive_gateway_restarts() {
    let mut site = Site::start().await;
    let mut agent = site.start_agent("db-1").await;
    // Restart the agent: no token needed any more.
    agent.child.kill().await.unwrap();
    site.wait_online("db-1", false).await;
    let agent2 = site.spawn_agent("db-1", None, &[]);
    site.wait_online("db-1", true).await;

    // The gateway goes away and comes back: the agent reconnects by itself.
    site.restart(&[]).await;
    site.login(ADMIN, ADMIN_PASSWORD).await;
    site.wait_online("db-1", true).await;
    assert!(
        agent2.stderr.wait_for("reconnecting").await,
        "{}",
        agent2.stderr.text()
    );
    let out = site
        .jg(&["shell", "db-1", "--", "echo", "still-here"])
        .await;
    assert_eq!(ok(&out).trim(), "still-here");
}

#[tokio::test]
async fn revoking_an_endpoint_cuts_its_live_connection_and_refuses_it() {
    let site = Site::start().await;
    let mut agent = site.start_agent("laptop").await;
    let out = site.admin(&["revoke-endpoint", "laptop"]).await;
    assert!(ok(&out).contains("live connection was closed"));
    let status = tokio::time::timeout(WAIT, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success(), "a revoked agent must exit with an error");
    // The process has exited, but its last lines may still be on their way
    // through the pipe to the reader task.
    assert!(
        agent.stderr.wait_for("revoked").await,
        "{}",
        agent.stderr.text()
    );
    // Restarted, it is refused at the handshake.
    let mut again = site.spawn_agent("laptop", None, &[]);
    let status = tokio::time::timeout(WAIT, again.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(again.stderr.wait_for("revoked").await);
    // And it is gone from the list.
    let eps = site.endpoints().await;
    assert!(
        eps.as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "laptop")
    );
    let err = fails(&site.admin(&["revoke-endpoint", "laptop"]).await);
    assert!(err.contains("no enrolled endpoint named `laptop`"), "{err}");
}

/// A minimal HTTP CONNECT proxy, counting tunnels.
async fn connect_proxy() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let Some(mut up) = open_connect_tunnel(&mut s).await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn agents_work_through_an_http_connect_proxy() {
    let site = Site::start().await;
    let (proxy, tunnels) = connect_proxy().await;
    let token = site.enroll_token(&[]).await;
    let proxy_url = format!("http://{proxy}");
    let _agent = site.spawn_agent("behind-proxy", Some(&token), &["--proxy", &proxy_url]);
    site.wait_online("behind-proxy", true).await;
    // One tunnel to enroll, one for the agent connection.
    assert_eq!(tunnels.load(Ordering::SeqCst), 2);
    let out = site
        .jg(&["shell", "behind-proxy", "--", "echo", "via-proxy"])
        .await;
    assert_eq!(ok(&out).trim(), "via-proxy");

    // A proxy that refuses: a clear error, and the agent keeps retrying.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let t2 = site.enroll_token(&[]).await;
    let mut a2 = site.spawn_agent("no-proxy", Some(&t2), &["--proxy", &dead_url]);
    let status = tokio::time::timeout(WAIT, a2.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(
        a2.stderr.wait_for("cannot reach the gateway").await,
        "{}",
        a2.stderr.text()
    );
}

#[tokio::test]
async fn sessions_are_checked_and_denials_recorded() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    // Not logged in.
    let other_home = site.dir.path().join("nobody");
    let out = site
        .jg_command(&["endpoints"])
        .env("JG_HOME", &other_home)
        .output()
        .await
        .unwrap();
    assert!(fails(&out).contains("not logged in"));

    // A technician without groups sees no endpoint and cannot reach one;
    // the denial is recorded.
    site.create_user("tina", "technician", "technician-password-1")
        .await;
    site.login("tina", "technician-password-1").await;
    assert!(site.endpoints().await.as_array().unwrap().is_empty());
    let err = fails(&site.jg(&["shell", "srv", "--", "id"]).await);
    assert!(err.contains("no endpoint named `srv`"), "{err}");
    let err = fails(&site.jg(&["sessions"]).await);
    assert!(err.contains("view-audit"), "{err}");

    // Given the endpoint's group, the same technician gets in.
    site.login(ADMIN, ADMIN_PASSWORD).await;
    ok(&site
        .jg(&["admin", "users", "update", "tina", "--groups", "default"])
        .await);
    site.login("tina", "technician-password-1").await;
    assert_eq!(site.endpoints().await.as_array().unwrap().len(), 1);
    assert_eq!(
        ok(&site.jg(&["shell", "srv", "--", "echo", "in-group"]).await).trim(),
        "in-group"
    );

    site.login(ADMIN, ADMIN_PASSWORD).await;
    let events: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let denied = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["username"] == "tina" && e["outcome"] == "denied")
        .expect("denial recorded");
    assert_eq!(denied["kind"], "exec");
    assert_eq!(denied["endpoint"], "srv");

    // Unknown endpoint and wrong password: clear errors.
    assert!(
        fails(&site.jg(&["shell", "nope", "--", "id"]).await).contains("no endpoint named `nope`")
    );
    let pw = site.dir.path().join("bad.pw");
    std::fs::write(&pw, "wrong-password-123\n").unwrap();
    let err = fails(
        &site
            .jg(&[
                "login",
                "--user",
                ADMIN,
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .await,
    );
    assert!(err.contains("invalid username or password"), "{err}");
}

/// The audit log is a hash chain: altering a row in the database (opened
/// with the site's key) is caught by `jumpgate admin verify-audit`, which names the entry.
#[tokio::test]
async fn verify_audit_names_an_altered_entry() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    ok(&site.jg(&["shell", "srv", "--", "true"]).await);
    let out = ok(&site.admin(&["verify-audit"]).await);
    assert!(out.contains("audit log intact"), "{out}");
    let entries: u64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        entries >= 4,
        "user creation, login, session open and close: {out}"
    );

    // Someone with the database file *and* its key (the site's root key)
    // rewrites history with plain SQL.
    let db = jumpgate_server::admin::open(&site.data_dir(), site.database_url())
        .await
        .unwrap();
    let changed = db
        .execute_unchecked("UPDATE events SET detail = 'nothing happened' WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    db.close().await;
    let err = fails(&site.admin(&["verify-audit"]).await);
    assert!(err.contains("audit log broken at entry #2"), "{err}");
    assert!(err.contains("altered"), "{err}");
}
