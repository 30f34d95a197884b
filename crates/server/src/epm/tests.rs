//! The gateway's EPM domain on both engines: drafts, publishing through
//! the blob store (local, S3 on SeaweedFS, Azure on Azurite), the signed
//! bundle route, notices to a connected agent, events and approvals.

use std::time::Duration;

use bytes::Bytes;
use jumpgate_epm::bundle;
use jumpgate_epm::policy::Policy;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent};
use jumpgate_net::system::{read_message, write_message};
use jumpgate_proto::epm::{
    ApprovalDecision, EpmEvent, EpmEventBatch, EpmEventKind, Outcome, PolicyAck, PolicyNotice,
};
use jumpgate_proto::mux::Role;
use jumpgate_proto::system::{Head, MAX_BODY, Reply, Status};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{EpmError, ingest, keys, notify, store};
use crate::agents::EndpointRecord;
use crate::config::BlobsConfig;
use crate::ids::{AgentId, UserId};
use crate::rbac::{Groups, Permission, Restriction, Scopes, Subject, SubjectKind};
use crate::state::{AppState, Inner};
use crate::store::{Store, sql};

const POLICY: &str = r#"
default: block
applications:
  - name: apt
    path: /usr/bin/apt
    args: "^(update|upgrade)$"
rules:
  - name: helpdesk-apt
    applications: [apt]
    endpoint_groups: [lab]
    action: elevate-with-approval
"#;

struct Site {
    st: AppState,
    _dir: tempfile::TempDir,
    _lite: Option<tempfile::TempDir>,
}

async fn state(
    db: Store,
    lite: Option<tempfile::TempDir>,
    dir: tempfile::TempDir,
    blobs: &BlobsConfig,
) -> Site {
    let config = crate::config::Config::validate(crate::config::RawConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let blobs = crate::blobs::open(blobs, dir.path()).await.unwrap();
    let st = AppState::new(Inner {
        db,
        config,
        origins: vec!["https://localhost".into()],
        fingerprint: String::new(),
        portal_origin: None,
        blobs,
        keys: crate::keys::Keyring::open(dir.path()).unwrap(),
        gateway: crate::ids::GatewayId::generate(),
        agents: crate::agents::directory::single_node(),
        lease: std::sync::Arc::new(crate::lease::LocalLease),
        sessions: crate::sessions::LiveSessions::default(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        tasks: tokio_util::task::TaskTracker::new(),
        login_limiter: crate::identity::login_rate_limiter(),
        support_limits: crate::support::Limits::default(),
        support_hub: Default::default(),
        epm: Default::default(),
        key_sweep: std::sync::Arc::default(),
        access_wake: std::sync::Arc::default(),
        endpoint_list: Default::default(),
        analytics: Default::default(),
        webhooks: Default::default(),
    });
    Site {
        st,
        _dir: dir,
        _lite: lite,
    }
}

async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        out.push(state(db, lite, dir, &BlobsConfig::Local).await);
    }
    out
}

fn subject(name: &str, permissions: &[Permission], groups: Groups) -> Subject {
    Subject {
        name: name.into(),
        kind: SubjectKind::User(UserId(format!("usr_{name}"))),
        role: "test".into(),
        permissions: permissions.iter().copied().collect(),
        groups,
        scopes: Scopes::FULL,
        restriction: Restriction::None,
        approvals: Default::default(),
    }
}

async fn enroll(db: &Store, name: &str, group: &str, key: u8) -> EndpointRecord {
    let token = crate::agents::tests::token(db, group, Duration::from_secs(600)).await;
    crate::agents::enroll(db, &crate::agents::tests::request(&token, name, key))
        .await
        .unwrap();
    crate::agents::find_by_name(db, name)
        .await
        .unwrap()
        .unwrap()
}

async fn actions(db: &Store) -> Vec<(String, String, String)> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT action, target, outcome FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

/// A stand-in agent connected over an in-memory mux: answers every system
/// stream (`epm-policy` with the ack `ack` makes of the notice, others
/// with an empty `ok`) and reports each (topic, body) it got.
fn connect_agent(
    st: &AppState,
    id: &AgentId,
    ack: fn(&PolicyNotice) -> PolicyAck,
) -> mpsc::UnboundedReceiver<(String, Bytes)> {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (gw, _gev, gd) = mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
    let (agent, mut aev, ad) = mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
    tokio::spawn(gd);
    tokio::spawn(ad);
    st.agents
        .local()
        .insert(id.clone(), gw, "127.0.0.1:1".parse().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _agent = agent;
        while let Some(ev) = aev.recv().await {
            let MuxEvent::Stream(mut s) = ev else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok((Head::Request(req), body)) = read_message(&mut s, &[], MAX_BODY).await
                else {
                    return;
                };
                let reply = if req.topic == "epm-policy" {
                    let notice: PolicyNotice = serde_json::from_slice(&body).unwrap();
                    Bytes::from(serde_json::to_vec(&ack(&notice)).unwrap())
                } else {
                    Bytes::new()
                };
                let _ = tx.send((req.topic.clone(), body));
                let head = Head::Reply(Reply {
                    status: Status::Ok,
                    message: String::new(),
                    size: 0,
                });
                let _ = write_message(&mut s, head, &reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    rx
}

fn accept(n: &PolicyNotice) -> PolicyAck {
    PolicyAck {
        accepted: Some(n.version),
        refused: None,
    }
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<(String, Bytes)>) -> (String, Bytes) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the agent got nothing within 30 s")
        .expect("the agent stopped")
}

async fn save(st: &AppState, yaml: &str) -> i64 {
    let policy = Policy::from_yaml(yaml).unwrap();
    let rev = super::draft(st).await.unwrap().1;
    super::save_draft(st, rev, &policy, "admin").await.unwrap()
}

#[tokio::test]
async fn drafts_validate_and_publishing_seals_increasing_versions_into_the_blob_store() {
    for s in sites("epm_publish").await {
        let st = &s.st;
        let engine = st.db.engine();
        // Nothing saved: the default policy at revision 0.
        let (p, rev, ..) = super::draft(st).await.unwrap();
        assert_eq!((p, rev), (Policy::default(), 0));

        let policy = Policy::from_yaml(POLICY).unwrap();
        assert_eq!(super::save_draft(st, 0, &policy, "admin").await.unwrap(), 1);
        // A stale revision is refused, the stored draft stays.
        let stale = super::save_draft(st, 0, &Policy::default(), "bob").await;
        assert!(
            matches!(
                stale,
                Err(EpmError::Stale {
                    given: 0,
                    current: 1
                })
            ),
            "{engine}: {stale:?}"
        );
        // An invalid policy names its field.
        let mut bad = policy.clone();
        bad.rules[0].applications = vec!["aptt".into()];
        match super::save_draft(st, 1, &bad, "admin").await {
            Err(EpmError::Invalid(p)) => {
                assert!(
                    p.0.iter()
                        .any(|p| p.field.starts_with("rules[0].applications")),
                    "{p}"
                );
            }
            other => panic!("{engine}: {other:?}"),
        }
        assert_eq!(super::draft(st).await.unwrap().0, policy);

        let v1 = super::publish(st, "admin").await.unwrap();
        let v2 = super::publish(st, "admin").await.unwrap();
        assert_eq!((v1.version, v2.version), (1, 2), "{engine}");
        assert_eq!(v1.blob_key, "epm/bundles/v0000000001.jgpol");
        assert!(v1.key_id.starts_with("pk_"), "{}", v1.key_id);
        assert_eq!(v1.key_id, v2.key_id, "one key signs until a rotation");

        // The bytes in the blob store verify with the keys agents trust.
        let bytes = super::read_blob(st, &v2).await.unwrap();
        assert_eq!(bytes.len() as u64, v2.size);
        let mut c = st.db.conn().await.unwrap();
        let trusted = keys::trusted(&mut c).await.unwrap();
        drop(c);
        assert_eq!(trusted.len(), 1);
        let content = bundle::verify(&bytes, &trusted, Some(&v2.sha256), Some(1)).unwrap();
        assert_eq!(content.version, 2);
        assert_eq!(content.policy, policy);
        assert_eq!(content.published_by, "admin");
        // Rollback: an agent at v2 refuses v1.
        let old = super::read_blob(st, &v1).await.unwrap();
        assert!(bundle::verify(&old, &trusted, Some(&v1.sha256), Some(2)).is_err());

        // A rotation: the new key signs, the previous stays trusted.
        let new_key = super::rotate_signing_key(st, "admin").await.unwrap();
        let v3 = super::publish(st, "admin").await.unwrap();
        assert_eq!(v3.key_id, new_key);
        let mut c = st.db.conn().await.unwrap();
        let trusted = keys::trusted(&mut c).await.unwrap();
        drop(c);
        let ids: Vec<&str> = trusted.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, [new_key.as_str(), v1.key_id.as_str()]);
        // A second rotation retires the first key.
        let third = super::rotate_signing_key(st, "admin").await.unwrap();
        let mut c = st.db.conn().await.unwrap();
        let trusted = keys::trusted(&mut c).await.unwrap();
        drop(c);
        let ids: Vec<&str> = trusted.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, [third.as_str(), new_key.as_str()]);
        // The gateway still reads its own old bundles.
        assert_eq!(super::published_policy(st).await.unwrap().1, 3);

        let audit: Vec<String> = actions(&st.db)
            .await
            .into_iter()
            .map(|(a, t, _)| format!("{a} {t}"))
            .collect();
        assert!(
            audit.contains(&"epm-policy-update policy".to_owned()),
            "{audit:?}"
        );
        assert!(audit.contains(&"epm-publish v1".to_owned()), "{audit:?}");
        assert!(audit.contains(&"epm-publish v3".to_owned()), "{audit:?}");
        assert!(
            audit.iter().any(|a| a.starts_with("epm-key-rotate pk_")),
            "{audit:?}"
        );
    }
}

/// An invalid policy is a 400 `invalid_policy` whose body is an error
/// body (for every client) plus each problem with its field.
#[tokio::test]
async fn an_invalid_policy_answers_every_problem_with_its_field() {
    use axum::response::IntoResponse;
    let mut p = Policy::from_yaml(POLICY).unwrap();
    p.rules[0].applications = vec!["aptt".into()];
    let problems = p.validate().unwrap_err();
    let r = super::http::Failure::from(EpmError::Invalid(problems)).into_response();
    assert_eq!(r.status(), 400);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let e: jumpgate_api_types::ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(e.error, jumpgate_api_types::ErrorCode::InvalidPolicy);
    let p: jumpgate_api_types::epm::PolicyProblems = serde_json::from_slice(&body).unwrap();
    assert!(
        p.problems
            .iter()
            .any(|x| x.field.starts_with("rules[0].applications") && x.message.contains("aptt")),
        "{p:?}"
    );
}

/// One request through the whole router (no socket), from `peer`.
async fn get(st: &AppState, target: &str) -> (u16, Vec<u8>) {
    use tower::ServiceExt;
    let mut req = axum::http::Request::get(target)
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(crate::api::PeerAddr("127.0.0.9:5000".parse().unwrap()));
    let res = crate::routes::router(st.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, body.to_vec())
}

#[tokio::test]
async fn the_signed_bundle_route_serves_a_good_link_and_refuses_bad_or_expired_ones() {
    for s in sites("epm_route").await {
        let st = &s.st;
        save(st, POLICY).await;
        let row = super::publish(st, "admin").await.unwrap();
        let shared = notify::shared(st).await.unwrap().unwrap();
        // The local store signs no URLs: the notice names the gateway route.
        assert!(
            shared.url.starts_with("/epm/bundles/1?expires="),
            "{}",
            shared.url
        );
        let (status, body) = get(st, &shared.url).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(body, super::read_blob(st, &row).await.unwrap());
        assert_eq!(bundle::sha256_hex(&body), row.sha256);

        let mut c = st.db.conn().await.unwrap();
        let key = keys::site_key(&mut c, &st.keys, keys::URL_KEY)
            .await
            .unwrap();
        drop(c);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Expired, for another version, tampered, missing, too long-lived.
        let expired = notify::sign_route(&key, 1, now - 1);
        let other = notify::sign_route(&key, 2, now + 60).replace("/bundles/2", "/bundles/1");
        let tampered = shared.url.replace("sig=", "sig=A");
        for bad in [
            expired.as_str(),
            other.as_str(),
            tampered.as_str(),
            "/epm/bundles/1",
            "/epm/bundles/1?expires=99999999999&sig=AAAA",
        ] {
            let (status, body) = get(st, bad).await;
            assert_eq!(status, 403, "{bad}: {}", String::from_utf8_lossy(&body));
        }
        let far = notify::sign_route(&key, 1, now + 3600);
        assert_eq!(get(st, &far).await.0, 403);
        // Misuse is bounded per address.
        let mut limited = false;
        for _ in 0..40 {
            if get(st, &tampered).await.0 == 429 {
                limited = true;
                break;
            }
        }
        assert!(limited, "bad signatures are rate limited");
    }
}

fn event(seq: u64, kind: EpmEventKind) -> EpmEvent {
    EpmEvent {
        seq,
        at: "2026-12-02T05:00:00Z".into(),
        kind,
    }
}

fn approval(seq: u64, request: &str) -> EpmEvent {
    event(
        seq,
        EpmEventKind::ApprovalRequested {
            request: request.into(),
            user: "alice".into(),
            uid: 1000,
            program: "/usr/bin/apt".into(),
            sha256: "ab".repeat(32),
            args: vec!["upgrade".into()],
            rule: "helpdesk-apt".into(),
            reason: "patch day".into(),
            timeout_secs: 300,
        },
    )
}

#[tokio::test]
async fn events_are_stored_once_and_acknowledged_through_the_highest_sequence() {
    for s in sites("epm_events").await {
        let st = &s.st;
        let engine = st.db.engine();
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        let batch = EpmEventBatch {
            events: vec![
                event(
                    1,
                    EpmEventKind::Decision {
                        user: "alice".into(),
                        uid: 1000,
                        program: "/usr/bin/id".into(),
                        sha256: "00".repeat(32),
                        args: vec![],
                        action: "elevate".into(),
                        rule: "r".into(),
                        outcome: Outcome::Allowed,
                        reason: String::new(),
                        detail: String::new(),
                        exit_code: Some(0),
                    },
                ),
                approval(2, "er_one"),
                event(3, EpmEventKind::BundleAccepted { version: 4 }),
            ],
            dropped: 7,
        };
        let mut sub = st.epm.subscribe();
        let first = ingest::store_batch(st, &ep.id, &batch).await.unwrap();
        assert_eq!(first.new, 3, "{engine}");
        assert_eq!(first.through, Some(3));
        // The same batch again (a reconnect): stored once, acknowledged again.
        let again = ingest::store_batch(st, &ep.id, &batch).await.unwrap();
        assert_eq!((again.new, again.through), (0, Some(3)), "{engine}");
        let rows = store::events(&st.db, None, 0, 100).await.unwrap();
        assert_eq!(rows.len(), 3, "{engine}");
        assert_eq!(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            [1, 2, 3],
            "{engine}"
        );
        assert_eq!(rows[0].1, "web-1");
        // The cursor.
        let after = store::events(&st.db, Some(ep.id.as_str()), rows[1].0, 100)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        // The request is pending and was pushed live, once.
        let pushed = sub.try_recv().unwrap();
        assert_eq!(
            (pushed.id.as_str(), pushed.state.as_str()),
            ("er_one", "pending")
        );
        assert!(sub.try_recv().is_err(), "pushed once");
        let pending = store::requests(&st.db, Some("pending"), 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].username, "alice");
        // It expires when the caller stops waiting (the rule's 300 s).
        assert_eq!(pending[0].expires_at - pending[0].created_at, 300_000);
        store::expire_requests(&st.db, pending[0].expires_at - 1)
            .await
            .unwrap();
        assert_eq!(
            store::requests(&st.db, Some("pending"), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // Status: accepted version and dropped events.
        let status = store::status(&st.db).await.unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!((status[0].3, status[0].5), (Some(4), 7), "{engine}");
    }
}

#[tokio::test]
async fn an_agent_connection_acknowledges_stored_events_on_the_wire() {
    for s in sites("epm_events_wire").await {
        let st = &s.st;
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        let (a, b) = tokio::io::duplex(1 << 20);
        let (gw, _gev, gd) = mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
        let (agent, mut aev, ad) =
            mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
        tokio::spawn(gd);
        tokio::spawn(ad);
        let batch = EpmEventBatch {
            events: vec![approval(5, "er_wire"), approval(6, "er_wire2")],
            dropped: 0,
        };
        ingest::on_events(st, &ep.id, &gw, batch).await;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match aev.recv().await {
                    Some(MuxEvent::Control(c)) => return c,
                    Some(_) => {}
                    None => panic!("the mux ended"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, jumpgate_proto::control::Control::EpmAck { through: 6 });
        drop(agent);
    }
}

#[tokio::test]
async fn approving_sends_the_decision_to_the_connected_agent_once() {
    for s in sites("epm_approve").await {
        let st = &s.st;
        let engine = st.db.engine();
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        let mut agent = connect_agent(st, &ep.id, accept);
        let batch = EpmEventBatch {
            events: vec![approval(1, "er_approve"), approval(2, "er_deny")],
            dropped: 0,
        };
        ingest::store_batch(st, &ep.id, &batch).await.unwrap();

        // Outside the technician's groups: refused, and audited.
        let outsider = subject(
            "carol",
            &[Permission::EpmApprove],
            Groups::from_list(&["db".to_owned()]),
        );
        let e = super::http::decide_as(st, &outsider, "er_approve", true, String::new())
            .await
            .unwrap_err();
        assert!(format!("{e:?}").contains("outside your groups"), "{e:?}");

        let tech = subject(
            "tech",
            &[Permission::EpmApprove],
            Groups::from_list(&["lab".to_owned()]),
        );
        let r = super::http::decide_as(st, &tech, "er_approve", true, "ok".into())
            .await
            .unwrap();
        assert_eq!(
            (r.state.as_str(), r.endpoint.as_str()),
            ("approved", "web-1")
        );
        let (topic, body) = next_message(&mut agent).await;
        assert_eq!(topic, "epm-decision");
        let d: ApprovalDecision = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            d,
            ApprovalDecision {
                request: "er_approve".into(),
                approved: true,
                by: "tech".into(),
                comment: "ok".into()
            }
        );
        // Decided once: a second answer is a conflict, and nothing is sent.
        let e = super::http::decide_as(st, &tech, "er_approve", false, String::new())
            .await
            .unwrap_err();
        assert!(format!("{e:?}").contains("no longer pending"), "{e:?}");
        let r = super::http::decide_as(st, &tech, "er_deny", false, String::new())
            .await
            .unwrap();
        assert_eq!(r.state, "denied");
        let (topic, body) = next_message(&mut agent).await;
        assert_eq!(topic, "epm-decision");
        let d: ApprovalDecision = serde_json::from_slice(&body).unwrap();
        assert_eq!((d.request.as_str(), d.approved), ("er_deny", false));
        assert!(agent.try_recv().is_err(), "{engine}: nothing else was sent");

        let audit = actions(&st.db).await;
        assert!(audit.contains(&("epm-decide".into(), "er_approve".into(), "approved".into())));
        assert!(audit.contains(&("epm-decide".into(), "er_deny".into(), "denied".into())));
        assert!(
            audit
                .iter()
                .any(|(a, _, o)| a == "decide-elevation" && o == "denied")
        );
    }
}

#[tokio::test]
async fn publishing_notifies_connected_agents_and_keeps_their_acknowledgements() {
    for s in sites("epm_notify").await {
        let st = &s.st;
        let engine = st.db.engine();
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        let mut agent = connect_agent(st, &ep.id, accept);
        // Nothing published: nothing is sent on connect.
        super::notify::on_connect(st.clone(), ep.id.clone(), ep.group.clone()).await;
        assert!(agent.try_recv().is_err());

        save(st, POLICY).await;
        let row = super::publish(st, "admin").await.unwrap();
        assert_eq!(notify::notify_all(st).await.unwrap(), 1, "{engine}");
        let (topic, body) = next_message(&mut agent).await;
        assert_eq!(topic, "epm-policy");
        let n: PolicyNotice = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (n.version, n.sha256.as_str(), n.size),
            (1, row.sha256.as_str(), row.size)
        );
        assert_eq!(n.groups, ["lab"]);
        assert_eq!(n.keys.len(), 1);
        assert_eq!(n.keys[0].id, row.key_id);
        // The endpoint's code secret answers the gateway's codes.
        let secret =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &n.code_secret)
                .unwrap();
        let key = keys::code_key(&st.db, &st.keys).await.unwrap();
        assert_eq!(
            secret,
            jumpgate_epm::code::endpoint_secret(key.as_bytes(), ep.id.as_str())
        );
        let status = store::status(&st.db).await.unwrap();
        assert_eq!(status[0].3, Some(1), "{engine}: the ack is kept");

        // On connect (an agent that was offline): the latest bundle.
        super::notify::on_connect(st.clone(), ep.id.clone(), ep.group.clone()).await;
        let (topic, body) = next_message(&mut agent).await;
        assert_eq!(topic, "epm-policy");
        let n: PolicyNotice = serde_json::from_slice(&body).unwrap();
        assert_eq!(n.version, 1);
    }
}

/// Publishes on `st` and downloads the notice's URL with a plain HTTP GET
/// from the blob server on `port`: the exact bytes, not via the gateway.
async fn publish_and_fetch_directly(st: &AppState, port: u16, endpoint: &str) {
    save(st, POLICY).await;
    let row = super::publish(st, "admin").await.unwrap();
    let shared = notify::shared(st).await.unwrap().unwrap();
    assert!(
        shared.url.starts_with(endpoint),
        "a URL of the blob store itself: {}",
        shared.url
    );
    let target = &shared.url[endpoint.len()..];
    let target = if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("/{target}")
    };
    let (status, body) = crate::blobs::tests::http(port, "GET", &target, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(bundle::sha256_hex(&body), row.sha256);
    let mut c = st.db.conn().await.unwrap();
    let trusted = keys::trusted(&mut c).await.unwrap();
    drop(c);
    let content = bundle::verify(&body, &trusted, Some(&row.sha256), None).unwrap();
    assert_eq!(content.version, row.version);
}

#[tokio::test]
async fn with_s3_on_seaweedfs_agents_download_bundles_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = crate::blobs::tests::seaweedfs("jumpgate-epm", dir.path()).await else {
        return;
    };
    let secret = dir.path().join("s3-secret");
    std::fs::write(&secret, crate::blobs::tests::S3_SECRET).unwrap();
    let cfg = crate::blobs::tests::s3_config(&server, "jumpgate-epm", &secret);
    for (db, lite) in crate::store::tests::engines("epm_s3").await {
        let site = state(db, lite, tempfile::tempdir().unwrap(), &cfg).await;
        publish_and_fetch_directly(&site.st, server.port, &server.endpoint()).await;
        // Each site's bucket prefix is its own: clear it for the next engine.
        let key = crate::blobs::BlobKey::new(super::blob_key(1)).unwrap();
        site.st.blobs.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn with_azure_on_azurite_agents_download_bundles_from_the_container() {
    use crate::blobs::tests::{AZ_ACCOUNT, AZ_KEY};
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = crate::blobs::tests::azurite("jumpgate-epm", dir.path()).await else {
        return;
    };
    let secret = dir.path().join("az-key");
    std::fs::write(&secret, AZ_KEY).unwrap();
    let cfg = BlobsConfig::Azure {
        container: "jumpgate-epm".into(),
        prefix: "site-a".into(),
        endpoint: Some(format!("{}/{AZ_ACCOUNT}", server.endpoint())),
        account: Some(AZ_ACCOUNT.into()),
        secret_key_file: Some(secret),
    };
    for (db, lite) in crate::store::tests::engines("epm_azure").await {
        let site = state(db, lite, tempfile::tempdir().unwrap(), &cfg).await;
        publish_and_fetch_directly(&site.st, server.port, &server.endpoint()).await;
        let key = crate::blobs::BlobKey::new(super::blob_key(1)).unwrap();
        site.st.blobs.delete(&key).await.unwrap();
    }
}

/// Publish one bundle to N connected agents, each on its own in-memory
/// connection, each fetching the bundle through the gateway's signed route
/// (local blob store) and acknowledging it: the time until every agent
/// acknowledged, and the bytes the gateway sent (notices and bundles).
///
/// `EPM_AGENTS=1000 cargo test -p jumpgate-server --lib --release
/// epm::tests::measure_publish_fan_out -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn measure_publish_fan_out() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let n: usize = std::env::var("EPM_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let db_dir = tempfile::tempdir().unwrap();
    let db = Store::sqlite(
        crate::store::sqlite::open(&db_dir.path().join("s.db"))
            .await
            .unwrap(),
    );
    let site = state(db, Some(db_dir), dir, &BlobsConfig::Local).await;
    let st = &site.st;
    // A policy of 200 applications and rules.
    let mut yaml = String::from("default: block\napplications:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  - name: app{i}\n    path: /usr/local/bin/tool{i}\n"
        ));
    }
    yaml.push_str("rules:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  - name: rule{i}\n    applications: [app{i}]\n    groups: [staff]\n    action: elevate-with-reason\n"
        ));
    }
    save(st, &yaml).await;
    let notices = Arc::new(AtomicU64::new(0));
    let bundles = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    for i in 0..n {
        let ep = enroll(&st.db, &format!("fan-{i}"), "lab", (i % 250) as u8).await;
        let (a, b) = tokio::io::duplex(1 << 16);
        let (gw, _gev, gd) = mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
        let (agent, mut aev, ad) =
            mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
        tokio::spawn(gd);
        tokio::spawn(ad);
        st.agents
            .local()
            .insert(ep.id.clone(), gw, "127.0.0.1:1".parse().unwrap());
        let (st2, notices, bundles) = (st.clone(), notices.clone(), bundles.clone());
        tokio::spawn(async move {
            let _agent = agent;
            while let Some(ev) = aev.recv().await {
                let MuxEvent::Stream(mut s) = ev else {
                    continue;
                };
                let Ok((Head::Request(_), body)) = read_message(&mut s, &[], MAX_BODY).await else {
                    continue;
                };
                notices.fetch_add(body.len() as u64, Ordering::Relaxed);
                let notice: PolicyNotice = serde_json::from_slice(&body).unwrap();
                let (status, bytes) = get(&st2, &notice.url).await;
                assert_eq!(status, 200);
                bundles.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let content =
                    bundle::verify(&bytes, &notice.keys, Some(&notice.sha256), None).unwrap();
                let ack = serde_json::to_vec(&PolicyAck {
                    accepted: Some(content.version),
                    refused: None,
                })
                .unwrap();
                let head = Head::Reply(Reply {
                    status: Status::Ok,
                    message: String::new(),
                    size: 0,
                });
                let _ = write_message(&mut s, head, &Bytes::from(ack)).await;
                let _ = s.shutdown().await;
            }
        });
    }
    println!(
        "{n} agents enrolled and connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let row = super::publish(st, "admin").await.unwrap();
    let t0 = std::time::Instant::now();
    let accepted = notify::notify_all(st).await.unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(accepted, n);
    let status = store::status(&st.db).await.unwrap();
    assert!(status.iter().all(|s| s.3 == Some(1)));
    let (nb, bb) = (
        notices.load(Ordering::Relaxed),
        bundles.load(Ordering::Relaxed),
    );
    println!(
        "publish v{} ({} bytes) to {n} agents: all acknowledged in {:.0} ms ({:.0} agents/s); \
         the gateway sent {nb} bytes of notices ({} per agent) and {bb} bytes of bundles \
         (local store; with S3/Azure the bundles come from the store, not the gateway)",
        row.version,
        row.size,
        elapsed.as_secs_f64() * 1000.0,
        n as f64 / elapsed.as_secs_f64(),
        nb / n as u64
    );
}

/// Every audit entry of `action`: (actor, target, outcome, detail, groups).
async fn entries(db: &Store, action: &str) -> Vec<(String, String, String, String, String)> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT actor, target, outcome, detail, COALESCE(groups, '') FROM events
          WHERE action = $1 ORDER BY id"
    )
    .bind(action)
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

async fn user(db: &Store, name: &str, role: &str, groups: &[&str]) {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let email = format!("{name}@example.test");
    crate::identity::create_user(
        db,
        &crate::identity::NewUser {
            username: name,
            password: "a-long-enough-password-4Kq",
            role,
            groups: &groups,
            email: Some(&email),
        },
        crate::store::AuditEvent::new("admin", crate::store::AuditAction::UserCreate, name),
    )
    .await
    .unwrap();
}

/// An agent's approval request is an access request of kind `elevation`
/// (same id, same transaction, audited `access-request` under the group,
/// naming the program), whose mail goes to the holders of `epm-approve` on
/// the group; deciding it through the access route is the EPM decision
/// (refused alike without `epm-approve`, sent to the agent, `epm-decide`
/// audited) and both rows keep in step: approved, denied, expired.
#[tokio::test]
async fn an_elevation_request_is_an_access_request_decided_through_either_route() {
    use crate::notify::alerts::{Alerts, rules};
    for s in sites("epm_access").await {
        let st = &s.st;
        let engine = st.db.engine();
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        enroll(&st.db, "db-1", "db", 4).await;
        let mut agent = connect_agent(st, &ep.id, accept);
        // tina may decide on lab; olga holds epm-approve on db only; aude
        // (an auditor) none: only tina is told.
        user(&st.db, "tina", "technician", &["lab"]).await;
        user(&st.db, "olga", "technician", &["db"]).await;
        user(&st.db, "aude", "auditor", &["lab"]).await;
        let alerts = Alerts::default();
        crate::notify::take_once(&st.db, &alerts).await.unwrap();
        rules::add(
            &st.db,
            &jumpgate_api_types::alerts::NewAlertRule {
                name: "elevations".into(),
                events: vec!["access-request".into()],
                approvers: true,
                ..Default::default()
            },
            "admin",
        )
        .await
        .unwrap();
        let batch = EpmEventBatch {
            events: vec![
                approval(1, "er_one"),
                approval(2, "er_two"),
                approval(3, "er_three"),
            ],
            dropped: 0,
        };
        ingest::store_batch(st, &ep.id, &batch).await.unwrap();

        let req = crate::access::get(&mut st.db.conn().await.unwrap(), "er_one")
            .await
            .unwrap()
            .expect("the access request");
        assert_eq!(
            (
                req.kind.as_str(),
                req.requester.as_str(),
                req.group_name.as_str(),
                req.endpoint_name.as_deref(),
                req.state.as_str(),
                req.approvals_required,
                req.reason.as_str()
            ),
            (
                "elevation",
                "alice@web-1",
                "lab",
                Some("web-1"),
                "pending",
                1,
                "patch day"
            ),
            "{engine}"
        );
        assert_eq!(req.expires_at, Some(req.created_at + 300_000));
        let dto = req.dto(&[], false);
        let asked = dto.elevation.expect("the program asked");
        assert_eq!(
            (asked.program.as_str(), asked.args, asked.rule.as_str()),
            ("/usr/bin/apt", vec!["upgrade".to_owned()], "helpdesk-apt")
        );
        let requested = entries(&st.db, "access-request").await;
        let one = requested.iter().find(|e| e.1 == "er_one").unwrap();
        assert_eq!(
            (one.0.as_str(), one.2.as_str(), one.4.as_str()),
            ("alice@web-1", "pending", r#"["lab"]"#)
        );
        assert!(
            one.3.contains("kind=elevation") && one.3.contains("program=/usr/bin/apt"),
            "{}",
            one.3
        );
        // The rule's mail: to the epm-approve holders of lab only.
        crate::notify::take_once(&st.db, &alerts).await.unwrap();
        let mut c = st.db.conn().await.unwrap();
        let to: Vec<String> = sql!(c, |c| sqlx::query_scalar(
            "SELECT recipients FROM alert_mail WHERE rule = 'elevations' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        drop(c);
        assert_eq!(to.len(), 3, "{engine}: {to:?}");
        assert!(to.iter().all(|t| t == r#"["tina@example.test"]"#), "{to:?}");

        // Without epm-approve: the same refusal on both routes.
        let aude = subject(
            "aude",
            &[Permission::View, Permission::ViewAudit],
            Groups::from_list(&["lab".to_owned()]),
        );
        for e in [
            crate::access::http::decide(
                st,
                &aude,
                "er_one",
                crate::access::Verdict::Approve,
                Default::default(),
            )
            .await
            .unwrap_err(),
            super::http::decide_checked(st, &aude, "er_one", true, String::new())
                .await
                .unwrap_err(),
        ] {
            assert!(
                format!("{e:?}").contains("lacks the `epm-approve` permission"),
                "{e:?}"
            );
        }

        // Approved through the access route: the EPM decision, sent to
        // the agent; both rows approved; epm-decide and access-approve.
        let tina = subject(
            "tina",
            &[Permission::EpmApprove],
            Groups::from_list(&["lab".to_owned()]),
        );
        let axum::Json(r) = crate::access::http::decide(
            st,
            &tina,
            "er_one",
            crate::access::Verdict::Approve,
            jumpgate_api_types::access::DecideAccess {
                reason: Some("patch window".into()),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (r.kind.as_str(), r.state.as_str()),
            ("elevation", "approved")
        );
        assert_eq!(r.decisions.len(), 1);
        assert_eq!(r.decisions[0].approver, "tina");
        let (topic, body) = next_message(&mut agent).await;
        assert_eq!(topic, "epm-decision");
        let d: ApprovalDecision = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (d.request.as_str(), d.approved, d.comment.as_str()),
            ("er_one", true, "patch window")
        );
        assert_eq!(
            store::request(&st.db, "er_one")
                .await
                .unwrap()
                .unwrap()
                .state,
            "approved"
        );
        // Denied through the EPM route: the access row follows.
        super::http::decide_checked(st, &tina, "er_two", false, String::new())
            .await
            .unwrap();
        let _ = next_message(&mut agent).await;
        let two = crate::access::get(&mut st.db.conn().await.unwrap(), "er_two")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(two.state, "denied", "{engine}");
        // Decided once, whichever route asks again.
        let again = crate::access::http::decide(
            st,
            &tina,
            "er_two",
            crate::access::Verdict::Approve,
            Default::default(),
        )
        .await
        .unwrap_err();
        assert!(
            format!("{again:?}").contains("no longer pending"),
            "{again:?}"
        );
        let audit = actions(&st.db).await;
        for (a, t, o) in [
            ("epm-decide", "er_one", "approved"),
            ("access-approve", "er_one", "approved"),
            ("epm-decide", "er_two", "denied"),
            ("access-deny", "er_two", "denied"),
        ] {
            assert!(
                audit.contains(&(a.into(), t.into(), o.into())),
                "{engine}: {a} {t} {o}: {audit:?}"
            );
        }

        // The caller stopped waiting: both rows expire, audited.
        let three = crate::access::get(&mut st.db.conn().await.unwrap(), "er_three")
            .await
            .unwrap()
            .unwrap();
        store::expire_requests(&st.db, three.expires_at.unwrap() - 1)
            .await
            .unwrap();
        assert_eq!(
            store::request(&st.db, "er_three")
                .await
                .unwrap()
                .unwrap()
                .state,
            "pending"
        );
        store::expire_requests(&st.db, three.expires_at.unwrap())
            .await
            .unwrap();
        assert_eq!(
            store::request(&st.db, "er_three")
                .await
                .unwrap()
                .unwrap()
                .state,
            "expired"
        );
        let three = crate::access::get(&mut st.db.conn().await.unwrap(), "er_three")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(three.state, "expired", "{engine}");
        assert!(actions(&st.db).await.contains(&(
            "access-expire".into(),
            "er_three".into(),
            "expired-pending".into()
        )));
        // The list shows elevations with the requests of their kind.
        let listed = crate::access::list(&st.db, None).await.unwrap();
        assert_eq!(
            listed.iter().filter(|r| r.is_elevation()).count(),
            3,
            "{engine}"
        );
        assert!(agent.try_recv().is_err(), "{engine}: nothing else was sent");
    }
}

fn decision(seq: u64, program: &str, action: &str, rule: &str, outcome: Outcome) -> EpmEvent {
    event(
        seq,
        EpmEventKind::Decision {
            user: "alice".into(),
            uid: 1000,
            program: program.into(),
            sha256: "00".repeat(32),
            args: vec![],
            action: action.into(),
            rule: rule.into(),
            outcome,
            reason: String::new(),
            detail: String::new(),
            exit_code: None,
        },
    )
}

/// A blocked launch is audited `epm-blocked` (the endpoint's user, the
/// endpoint, the rule and program, under the group), at most once a minute
/// per (endpoint, program, rule): the launches folded meanwhile are
/// counted into the next entry. Other decisions write nothing.
#[tokio::test]
async fn blocked_launches_are_audited_at_most_once_a_minute_per_program_and_rule() {
    for s in sites("epm_blocked").await {
        let st = &s.st;
        let engine = st.db.engine();
        let ep = enroll(&st.db, "web-1", "lab", 3).await;
        let batch = EpmEventBatch {
            events: vec![
                decision(1, "/usr/bin/whoami", "block", "no-whoami", Outcome::Denied),
                decision(2, "/usr/bin/whoami", "block", "no-whoami", Outcome::Denied),
                decision(3, "/usr/bin/whoami", "block", "no-whoami", Outcome::Denied),
                decision(4, "/usr/bin/ls", "block", "", Outcome::Denied),
                decision(5, "/usr/bin/id", "elevate", "ids", Outcome::Allowed),
                decision(
                    6,
                    "/usr/bin/true",
                    "elevate-with-reason",
                    "r",
                    Outcome::Denied,
                ),
            ],
            dropped: 0,
        };
        ingest::store_batch(st, &ep.id, &batch).await.unwrap();
        let got = entries(&st.db, "epm-blocked").await;
        assert_eq!(got.len(), 2, "{engine}: {got:?}");
        assert_eq!(
            got[0],
            (
                "alice".to_owned(),
                "web-1".to_owned(),
                "blocked".to_owned(),
                "rule=no-whoami count=1 program=/usr/bin/whoami".to_owned(),
                r#"["lab"]"#.to_owned()
            )
        );
        assert_eq!(got[1].3, "rule=(default) count=1 program=/usr/bin/ls");
        // A minute later: the next one carries the two folded meanwhile.
        let mut c = st.db.write_conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE epm_blocked SET last_entry_at = last_entry_at - 61000"
        )
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        let later = EpmEventBatch {
            events: vec![
                decision(7, "/usr/bin/whoami", "block", "no-whoami", Outcome::Denied),
                decision(8, "/usr/bin/whoami", "block", "no-whoami", Outcome::Denied),
            ],
            dropped: 0,
        };
        ingest::store_batch(st, &ep.id, &later).await.unwrap();
        let got = entries(&st.db, "epm-blocked").await;
        assert_eq!(got.len(), 3, "{engine}: {got:?}");
        assert!(
            got[2].3.starts_with("rule=no-whoami count=3 since=")
                && got[2].3.ends_with(" program=/usr/bin/whoami"),
            "{}",
            got[2].3
        );
    }
}
