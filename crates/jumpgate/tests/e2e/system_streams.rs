//! System streams through a real gateway and agent: the gateway asks an
//! agent on its own behalf (not a technician session), with payloads far
//! beyond a control frame's 64 KiB; and their first real use, fresh
//! endpoint facts (`jumpgate admin endpoint-facts`).

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::support::{Site, WAIT, fails, ok, sha256_hex};

/// One request on the running gateway's control socket.
async fn control(site: &Site, line: &str) -> String {
    let exchange = async {
        let s = UnixStream::connect(site.data_dir().join("control.sock"))
            .await
            .unwrap();
        let (r, mut w) = s.into_split();
        w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(r).read_line(&mut answer).await.unwrap();
        answer.trim().to_owned()
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the gateway answers its control socket")
}

/// What `system-echo` sends: byte `i` is `i % 251`.
fn echo_payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_payload_far_beyond_a_control_frame_round_trips_through_gateway_and_agent() {
    let site = Site::start().await;
    let token = site.enroll_token(&[]).await;
    let agent = site.spawn_agent("sys-1", Some(&token), &["--serve-echo-topic"]);
    site.wait_online("sys-1", true).await;

    // 0 bytes, just over a stream's first window, and 5 MiB: 80 times
    // what a control frame may carry.
    for n in [0, 256 * 1024 + 3, 5 * 1024 * 1024] {
        let answer = control(&site, &format!("system-echo sys-1 {n}")).await;
        assert_eq!(
            answer,
            format!("ok {n} {}", sha256_hex(&echo_payload(n))),
            "gateway log:\n{}",
            site.gateway.stderr.text()
        );
    }
    // Each was a system request on the agent's side, not a session.
    assert!(
        agent.stderr.wait_for("bytes_in=5242880").await,
        "{}",
        agent.stderr.text()
    );
    let log = agent.stderr.text();
    // (The gateway also asks each agent for its package inventory on
    // connect: only the echo requests are counted.)
    let echoes = |log: &str| {
        log.lines()
            .filter(|l| l.contains("system request served") && l.contains("topic=echo"))
            .count()
    };
    assert_eq!(echoes(&log), 3, "{log}");
    assert!(!log.contains("session opened"), "{log}");
    assert!(
        site.gateway
            .stderr
            .wait_for("system request answered")
            .await
    );

    // Over the limit: refused before anything is sent, and the
    // connection carries on.
    let answer = control(
        &site,
        &format!("system-echo sys-1 {}", 16 * 1024 * 1024 + 1),
    )
    .await;
    assert!(
        answer.starts_with("error ") && answer.contains("exceeds the limit"),
        "{answer}"
    );
    let answer = control(&site, "system-echo sys-1 70000").await;
    assert_eq!(
        answer,
        format!("ok 70000 {}", sha256_hex(&echo_payload(70_000)))
    );
    // The refused one never reached the agent: the next one is its fourth.
    assert!(agent.stderr.wait_for("bytes_in=70000").await);
    assert_eq!(echoes(&agent.stderr.text()), 4);
}

#[tokio::test]
async fn facts_come_fresh_from_the_agent_and_other_topics_are_refused() {
    let site = Site::start().await;
    let mut agent = site.start_agent("sys-2").await;

    // An agent not started for it does not serve `echo`, and says so.
    let answer = control(&site, "system-echo sys-2 70000").await;
    assert!(answer.starts_with("error "), "{answer}");
    assert!(
        answer.contains("does not serve the topic `echo`"),
        "{answer}"
    );

    // The first real use: the endpoint's details, fresh from the agent.
    let out = ok(&site.admin(&["endpoint-facts", "sys-2"]).await);
    assert!(out.starts_with("endpoint sys-2 (unchanged)"), "{out}");
    let listed = site.endpoints().await;
    let ep = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "sys-2")
        .unwrap();
    let hostname = ep["hostname"].as_str().unwrap();
    assert!(!hostname.is_empty());
    assert!(
        out.contains(&format!("hostname       {hostname}\n")),
        "{out}\n{ep}"
    );
    assert!(
        out.contains(&format!(
            "agent version  {}\n",
            ep["agent_version"].as_str().unwrap()
        )),
        "{out}"
    );
    assert!(agent.stderr.wait_for("topic=facts").await);

    // Unknown and offline endpoints: clear errors.
    let err = fails(&site.admin(&["endpoint-facts", "nope"]).await);
    assert!(err.contains("no enrolled endpoint named `nope`"), "{err}");
    agent.child.kill().await.unwrap();
    site.wait_online("sys-2", false).await;
    let err = fails(&site.admin(&["endpoint-facts", "sys-2"]).await);
    assert!(err.contains("the endpoint is offline"), "{err}");
}
