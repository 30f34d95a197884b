//! Outbound events: real receivers (hyper on loopback, HTTP and HTTPS with
//! a CA the test makes) behind `jg admin webhooks` subscriptions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jumpgate_test_support::{Site, WAIT, fails, ok};
use serde_json::Value;
use tokio::net::TcpListener;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Got {
    event_id: String,
    delivery: String,
    signature: String,
    /// The `Authorization` header ('' when none).
    authorization: String,
    body: Vec<u8>,
    /// Whether the receiver answered 2xx.
    accepted: bool,
}

/// How a receiver answers.
#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Answer 500 while set.
    failing: AtomicBool,
    /// Never answer (the gateway's timeout ends each try).
    hang: AtomicBool,
    /// Answer 401 to a request without this `Authorization` header.
    require_auth: Mutex<Option<String>>,
}

/// A webhook receiver on a loopback port picked at run time; stops with
/// the test's runtime.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    how: Arc<Behaviour>,
    /// Connections accepted.
    conns: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(how: Behaviour, tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let how = Arc::new(how);
        let conns = Arc::new(AtomicUsize::new(0));
        let (g, h, n) = (Arc::clone(&got), Arc::clone(&how), Arc::clone(&conns));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                n.fetch_add(1, Ordering::SeqCst);
                let (g, h, tls) = (Arc::clone(&g), Arc::clone(&h), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (g, h) = (Arc::clone(&g), Arc::clone(&h));
                        async move {
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (event_id, delivery, signature, authorization) = (
                                header("jumpgate-event-id"),
                                header("jumpgate-delivery"),
                                header("jumpgate-signature"),
                                header("authorization"),
                            );
                            let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                            if h.hang.load(Ordering::SeqCst) {
                                g.lock().unwrap().push(Got {
                                    event_id: event_id.clone(),
                                    delivery: delivery.clone(),
                                    signature: signature.clone(),
                                    authorization: authorization.clone(),
                                    body: body.clone(),
                                    accepted: false,
                                });
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let unauthorized = h
                                .require_auth
                                .lock()
                                .unwrap()
                                .as_ref()
                                .is_some_and(|want| *want != authorization);
                            let fail = unauthorized
                                || h.failing.load(Ordering::SeqCst)
                                || h.fail_first
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                            g.lock().unwrap().push(Got {
                                event_id,
                                delivery,
                                signature,
                                authorization,
                                body,
                                accepted: !fail,
                            });
                            let status = match (unauthorized, fail) {
                                (true, _) => 401,
                                (false, true) => 500,
                                (false, false) => 204,
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(s), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            got,
            how,
            conns,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/hook", self.addr.port())
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.accepted).collect()
    }
}

/// Adds a subscription with `jg admin webhooks add URL ARGS --json`;
/// answers its name and secret.
async fn subscribe(site: &Site, url: &str, args: &[&str]) -> (String, String) {
    let mut a = vec!["admin", "webhooks", "add", url];
    a.extend_from_slice(args);
    a.push("--json");
    let v: Value = serde_json::from_str(&ok(&site.jg(&a).await)).unwrap();
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{v}");
    (v["webhook"]["name"].as_str().unwrap().to_owned(), secret)
}

/// What a receiver does with `Jumpgate-Signature` (docs/webhooks.md).
fn signature_valid(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(theirs) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    hmac::verify(&key, &msg, &theirs).is_ok()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliveries(site: &Site, sub: &str, dead: bool) -> Vec<Value> {
    let mut a = vec!["admin", "webhooks", "deliveries", sub, "--json"];
    if dead {
        a.push("--dead");
    }
    let v: Value = serde_json::from_str(&ok(&site.jg(&a).await)).unwrap();
    v.as_array().unwrap().clone()
}

/// A receiver that fails three times then succeeds gets every event
/// exactly once, in order, signed, across a gateway restart; the event id
/// stays the same over the retries. A second subscription whose receiver
/// never answers holds up nothing of the first.
#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_in_order_across_a_restart() {
    let mut site = Site::start().await;
    let fast = Receiver::start(
        Behaviour {
            fail_first: AtomicUsize::new(3),
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let slow = Receiver::start(
        Behaviour {
            hang: AtomicBool::new(true),
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let (a, secret) = subscribe(
        &site,
        &fast.url("http"),
        &["--events", "group-create", "--name", "siem"],
    )
    .await;
    let (_b, _) = subscribe(&site, &slow.url("http"), &["--events", "group-create"]).await;
    // Something before the subscriptions existed is not sent.
    let groups: Vec<String> = (1..=6).map(|i| format!("hook-{i}")).collect();
    for g in &groups[..3] {
        ok(&site.jg(&["admin", "groups", "create", g]).await);
    }
    // Two failed tries, then the gateway restarts mid-backoff.
    wait_for("two failed tries", || fast.got().len() >= 2).await;
    assert!(fast.accepted().is_empty());
    site.restart(&[]).await;
    for g in &groups[3..] {
        ok(&site.jg(&["admin", "groups", "create", g]).await);
    }
    wait_for("every event at the fast receiver", || {
        fast.accepted().len() >= groups.len()
    })
    .await;
    let accepted = fast.accepted();
    let targets: Vec<String> = accepted
        .iter()
        .map(|g| {
            serde_json::from_slice::<Value>(&g.body).unwrap()["target"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(targets, groups, "exactly once, in order");
    let ids: Vec<i64> = accepted
        .iter()
        .map(|g| g.event_id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for g in fast.got() {
        assert!(
            signature_valid(&secret, &g.signature, &g.body),
            "bad signature {g:?}"
        );
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(
            body["id"].to_string(),
            g.event_id,
            "the body's id is the event id"
        );
        assert_eq!(body["action"], "group-create");
    }
    // Positive control: another secret does not verify.
    assert!(!signature_valid(
        "whsec_other",
        &accepted[0].signature,
        &accepted[0].body
    ));
    // The first event's four tries carried one event id and one delivery.
    let first: Vec<Got> = fast
        .got()
        .into_iter()
        .filter(|g| g.event_id == accepted[0].event_id)
        .collect();
    assert_eq!(first.len(), 4, "three failures, then the success");
    assert!(first.iter().all(|g| g.delivery == first[0].delivery));
    // The slow receiver still holds its first event: nothing after it.
    let slow_ids: std::collections::BTreeSet<String> =
        slow.got().into_iter().map(|g| g.event_id).collect();
    assert!(
        slow_ids.len() <= 1,
        "the hanging receiver got only its first event: {slow_ids:?}"
    );
    assert!(!slow.got().is_empty(), "the hanging receiver was tried");
    let d = deliveries(&site, &a, false).await;
    assert_eq!(d.len(), groups.len());
    assert!(d.iter().all(|d| d["state"] == "delivered"), "{d:?}");
    let oldest = d.last().unwrap();
    assert_eq!(oldest["attempts"], 4, "{oldest}");
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("webhook-add"), "{audit}");
    assert!(
        !audit.contains(&secret),
        "the secret is never in the audit log"
    );
}

/// A subscription with an `Authorization` header (from a file, sealed,
/// never shown back nor logged) and two groups (`--group`, repeated): only
/// entries about those groups go (another group's, the negative, next to
/// theirs, the positive control), each with the header, all on one kept
/// connection; the header survives a secret rotation. A header value that
/// is not one is refused naming the option, without repeating it.
#[tokio::test]
async fn authorization_header_groups_and_one_kept_connection() {
    const TOKEN: &str = "Bearer tok-Secret-9QzLm4";
    let site = Site::start().await;
    for g in ["ka-1", "ka-2", "ka-3"] {
        ok(&site.jg(&["admin", "groups", "create", g]).await);
    }
    let rx = Receiver::start(Behaviour::default(), None).await;
    let bad = site.dir.path().join("bad-auth");
    std::fs::write(&bad, "Bearer two\nlines-Hidden7\n").unwrap();
    let out = fails(
        &site
            .jg(&[
                "admin",
                "webhooks",
                "add",
                &rx.url("http"),
                "--events",
                "group-update",
                "--auth-header-file",
                bad.to_str().unwrap(),
            ])
            .await,
    );
    assert!(
        out.contains("--auth-header-file") && !out.contains("Hidden7"),
        "{out}"
    );
    let file = site.dir.path().join("auth");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let (sub, secret) = subscribe(
        &site,
        &rx.url("http"),
        &[
            "--events",
            "group-update",
            "--group",
            "ka-1",
            "--group",
            "ka-3",
            "--auth-header-file",
            file.to_str().unwrap(),
            "--name",
            "itsm",
        ],
    )
    .await;
    let list = ok(&site.jg(&["admin", "webhooks", "list", "--json"]).await);
    let listed: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(listed[0]["auth_header"], true, "{listed}");
    assert_eq!(listed[0]["groups"], serde_json::json!(["ka-1", "ka-3"]));
    for (i, g) in ["ka-1", "ka-2", "ka-3", "ka-1"].iter().enumerate() {
        let d = format!("change {i}");
        ok(&site
            .jg(&["admin", "groups", "update", g, "--description", &d])
            .await);
    }
    wait_for("three events", || rx.accepted().len() >= 3).await;
    // Another event after them: ka-2's would have come before it.
    ok(&site
        .jg(&["admin", "groups", "update", "ka-3", "--description", "last"])
        .await);
    wait_for("the fourth event", || rx.accepted().len() >= 4).await;
    let targets: Vec<String> = rx
        .accepted()
        .iter()
        .map(|g| {
            serde_json::from_slice::<Value>(&g.body).unwrap()["target"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(targets, ["ka-1", "ka-3", "ka-1", "ka-3"], "not ka-2");
    for g in rx.got() {
        assert_eq!(g.authorization, TOKEN, "{g:?}");
        assert!(signature_valid(&secret, &g.signature, &g.body));
    }
    assert_eq!(
        rx.conns.load(Ordering::SeqCst),
        1,
        "every delivery on one kept connection"
    );
    // A new secret: the header still goes (sealed again with it).
    let v: Value = serde_json::from_str(&ok(&site
        .jg(&["admin", "webhooks", "rotate-secret", &sub, "--json"])
        .await))
    .unwrap();
    let new_secret = v["secret"].as_str().unwrap().to_owned();
    ok(&site
        .jg(&[
            "admin",
            "groups",
            "update",
            "ka-1",
            "--description",
            "rotated",
        ])
        .await);
    wait_for("the event after rotation", || rx.accepted().len() >= 5).await;
    let last = &rx.accepted()[4];
    assert_eq!(last.authorization, TOKEN);
    assert!(signature_valid(&new_secret, &last.signature, &last.body));
    // Never shown back, never logged, never in the audit log (which says
    // that there is one).
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(audit.contains("authorization=set"), "{audit}");
    let human = ok(&site.jg(&["admin", "webhooks", "list"]).await);
    let shown = format!("{list}{human}{audit}{}", site.gateway.stderr.text());
    assert!(shown.contains("itsm"), "positive control");
    assert!(!shown.contains("tok-Secret"), "the header's value leaked");
}

/// `jg admin webhooks set-auth SUBSCRIPTION ARGS…`.
async fn set_auth(site: &Site, sub: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["admin", "webhooks", "set-auth", sub];
    a.extend_from_slice(args);
    site.jg(&a).await
}

/// A receiver that refuses the subscription's token gets the new one
/// once an administrator sets it (`set-auth`): the refused delivery goes
/// again with it, the same event. `--none` then stops sending the header.
/// The values are never shown back, logged or audited.
#[tokio::test]
async fn the_authorization_header_is_replaced_and_removed() {
    const OLD: &str = "Bearer old-Expired-4kQ";
    const NEW: &str = "Bearer new-Fresh-7Wz";
    let site = Site::start().await;
    ok(&site.jg(&["admin", "groups", "create", "sa-1"]).await);
    let rx = Receiver::start(
        Behaviour {
            require_auth: Mutex::new(Some(NEW.to_owned())),
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let old = site.dir.path().join("old-auth");
    std::fs::write(&old, format!("{OLD}\n")).unwrap();
    let (sub, secret) = subscribe(
        &site,
        &rx.url("http"),
        &[
            "--events",
            "group-update",
            "--auth-header-file",
            old.to_str().unwrap(),
            "--name",
            "siem-auth",
        ],
    )
    .await;
    ok(&site
        .jg(&["admin", "groups", "update", "sa-1", "--description", "one"])
        .await);
    wait_for("a refused try", || !rx.got().is_empty()).await;
    let refused = rx.got()[0].clone();
    assert!(
        !refused.accepted && refused.authorization == OLD,
        "{refused:?}"
    );

    // Refused changes: nothing is changed, and the value is not repeated.
    let bad = site.dir.path().join("bad-auth");
    std::fs::write(&bad, "Bearer two\nlines-Hidden3\n").unwrap();
    let out = fails(&set_auth(&site, &sub, &["--auth-header-file", bad.to_str().unwrap()]).await);
    assert!(
        out.contains("--auth-header-file") && !out.contains("Hidden3"),
        "{out}"
    );
    let new = site.dir.path().join("new-auth");
    std::fs::write(&new, format!("{NEW}\n")).unwrap();
    let out = fails(
        &set_auth(
            &site,
            "nobody",
            &["--auth-header-file", new.to_str().unwrap()],
        )
        .await,
    );
    assert!(
        out.contains("no webhook subscription named nobody"),
        "{out}"
    );
    fails(&set_auth(&site, &sub, &[]).await);
    fails(
        &set_auth(
            &site,
            &sub,
            &["--none", "--auth-header-file", new.to_str().unwrap()],
        )
        .await,
    );

    // The new token: the refused delivery goes with it.
    let out = ok(&set_auth(&site, &sub, &["--auth-header-file", new.to_str().unwrap()]).await);
    assert!(out.contains("new Authorization header"), "{out}");
    wait_for("the delivery with the new token", || {
        !rx.accepted().is_empty()
    })
    .await;
    let got = rx.accepted()[0].clone();
    assert_eq!(got.authorization, NEW);
    assert_eq!(
        got.event_id, refused.event_id,
        "the same event, not a new one"
    );
    assert!(signature_valid(&secret, &got.signature, &got.body));
    assert!(
        rx.got()
            .iter()
            .all(|g| g.accepted == (g.authorization == NEW)),
        "only the new token was accepted"
    );

    // No header any more.
    *rx.how.require_auth.lock().unwrap() = None;
    let out = ok(&set_auth(&site, &sub, &["--none"]).await);
    assert!(out.contains("no Authorization header"), "{out}");
    let list = ok(&site.jg(&["admin", "webhooks", "list", "--json"]).await);
    let listed: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(listed[0]["auth_header"], false, "{listed}");
    ok(&site
        .jg(&["admin", "groups", "update", "sa-1", "--description", "two"])
        .await);
    wait_for("the delivery without a header", || rx.accepted().len() >= 2).await;
    assert_eq!(rx.accepted()[1].authorization, "");

    let audit = ok(&site.jg(&["audit", "--json"]).await);
    for d in ["authorization=replaced", "authorization=removed"] {
        assert!(audit.contains(d), "{d} not audited: {audit}");
    }
    assert!(audit.contains("webhook-auth"), "{audit}");
    let human = ok(&site.jg(&["admin", "webhooks", "list"]).await);
    let shown = format!("{list}{human}{audit}{}", site.gateway.stderr.text());
    assert!(shown.contains("siem-auth"), "positive control");
    for leak in ["Expired-4kQ", "Fresh-7Wz", "Hidden3"] {
        assert!(!shown.contains(leak), "{leak} leaked");
    }
}

/// A delivery whose retry period ends is dead; the next one goes; replay
/// sends the dead one again. Plain http to a non-loopback host is refused.
#[tokio::test]
async fn dead_deliveries_are_listed_and_replayed() {
    let site = Site::start().await;
    let out = fails(
        &site
            .jg(&[
                "admin",
                "webhooks",
                "add",
                "http://192.0.2.1/x",
                "--events",
                "all",
            ])
            .await,
    );
    assert!(
        out.contains("loopback") && out.contains("https://"),
        "{out}"
    );
    let out = fails(
        &site
            .jg(&[
                "admin",
                "webhooks",
                "add",
                "https://127.0.0.1/x",
                "--events",
                "Bad Name",
            ])
            .await,
    );
    assert!(out.contains("--events"), "{out}");
    let rx = Receiver::start(
        Behaviour {
            failing: AtomicBool::new(true),
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let (sub, secret) = subscribe(
        &site,
        &rx.url("http"),
        &["--events", "group-create:ok", "--retry-for", "2s"],
    )
    .await;
    ok(&site.jg(&["admin", "groups", "create", "dead-1"]).await);
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let dead = loop {
        let d = deliveries(&site, &sub, true).await;
        if !d.is_empty() {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["attempts"].as_u64().unwrap() >= 2, "{:?}", dead[0]);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("500"),
        "{:?}",
        dead[0]
    );
    let tries = rx.got().len();
    // Nothing more is sent for a dead delivery.
    rx.how.failing.store(false, Ordering::SeqCst);
    ok(&site.jg(&["admin", "groups", "create", "dead-2"]).await);
    wait_for("the next event", || !rx.accepted().is_empty()).await;
    let first: Value = serde_json::from_slice(&rx.accepted()[0].body).unwrap();
    assert_eq!(
        first["target"], "dead-2",
        "the next one went after the dead one"
    );
    assert_eq!(rx.got().len(), tries + 1);
    let id = dead[0]["id"].to_string();
    let out = ok(&site.jg(&["admin", "webhooks", "replay", &id]).await);
    assert!(out.contains("Queued 1"), "{out}");
    wait_for("the replayed event", || rx.accepted().len() >= 2).await;
    let again = &rx.accepted()[1];
    let body: Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(body["target"], "dead-1");
    assert_eq!(again.event_id, dead[0]["entry_id"].to_string());
    assert!(signature_valid(&secret, &again.signature, &again.body));
    assert!(deliveries(&site, &sub, true).await.is_empty());
    // Replaying something not dead is refused.
    let out = fails(&site.jg(&["admin", "webhooks", "replay", &id]).await);
    assert!(out.contains("no dead delivery"), "{out}");
    // Rotating the secret: the next delivery is signed with the new one.
    let v: Value = serde_json::from_str(&ok(&site
        .jg(&["admin", "webhooks", "rotate-secret", &sub, "--json"])
        .await))
    .unwrap();
    let new_secret = v["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    ok(&site.jg(&["admin", "groups", "create", "dead-3"]).await);
    wait_for("the event after rotation", || rx.accepted().len() >= 3).await;
    let last = &rx.accepted()[2];
    assert!(signature_valid(&new_secret, &last.signature, &last.body));
    assert!(!signature_valid(&secret, &last.signature, &last.body));
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    for a in ["webhook-replay", "webhook-rotate-secret"] {
        assert!(audit.contains(a), "{a} audited: {audit}");
    }
    ok(&site.jg(&["admin", "webhooks", "remove", &sub]).await);
    let list = ok(&site.jg(&["admin", "webhooks", "list", "--json"]).await);
    assert_eq!(list.trim(), "[]");
}

/// An https receiver whose certificate a CA of the test signed: reached
/// with that CA given to the subscription, refused without it.
#[tokio::test]
async fn an_https_receiver_is_verified_with_the_subscriptions_ca() {
    let site = Site::start().await;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let server = jumpgate_net::tls::server_config(
        vec![leaf.der().clone()],
        tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        &[b"http/1.1"],
    )
    .unwrap();
    let rx = Receiver::start(Behaviour::default(), Some(server)).await;
    let ca_file = site.dir.path().join("receiver-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (with_ca, secret) = subscribe(
        &site,
        &rx.url("https"),
        &[
            "--events",
            "group-create",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
    )
    .await;
    let (without, _) = subscribe(&site, &rx.url("https"), &["--events", "group-create"]).await;
    ok(&site.jg(&["admin", "groups", "create", "tls-1"]).await);
    wait_for("the event over TLS", || !rx.accepted().is_empty()).await;
    assert!(signature_valid(
        &secret,
        &rx.accepted()[0].signature,
        &rx.accepted()[0].body
    ));
    let d = deliveries(&site, &with_ca, false).await;
    assert_eq!(d[0]["state"], "delivered");
    // Without the CA the system's roots do not know it: the try fails.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let d = deliveries(&site, &without, false).await;
        if d[0]["attempts"].as_u64().unwrap() >= 1 {
            assert_eq!(d[0]["state"], "pending");
            let e = d[0]["last_error"].as_str().unwrap();
            assert!(
                e.to_lowercase().contains("certificate") || e.contains("TLS"),
                "{e}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rx.accepted().len(),
        1,
        "only the subscription with the CA got through"
    );
}

/// The console's Webhooks page in Debian's chromium (`tests/browser/
/// webhooks.mjs`): a subscription with a dead delivery listed, one added
/// through the form (secret shown once), the dead delivery replayed, the
/// added one removed.
#[tokio::test]
async fn the_webhooks_page_in_a_real_browser() {
    crate::web::browser_prerequisites();
    let site = Site::start().await;
    let rx = Receiver::start(
        Behaviour {
            failing: AtomicBool::new(true),
            ..Behaviour::default()
        },
        None,
    )
    .await;
    let (sub, _) = subscribe(
        &site,
        &rx.url("http"),
        &[
            "--events",
            "group-create",
            "--name",
            "siem",
            "--retry-for",
            "1s",
        ],
    )
    .await;
    ok(&site.jg(&["admin", "groups", "create", "console-1"]).await);
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while deliveries(&site, &sub, true).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no dead delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let receiver = rx.url("http");
    let artifacts = crate::web::run_browser(
        &site,
        "webhooks.mjs",
        "webhooks",
        "WEBHOOKS-TEST PASSED",
        &[
            ("JG_DEAD_SUB", sub.as_ref()),
            ("JG_RECEIVER", receiver.as_ref()),
        ],
        Duration::from_secs(150),
    )
    .await;
    assert!(artifacts.join("webhooks.png").exists());
    // The replay from the page reached the gateway.
    let audit = ok(&site.jg(&["audit", "--json"]).await);
    assert!(
        audit.contains("webhook-replay") && audit.contains("console-made"),
        "{audit}"
    );
}
