//! The access matrix: every HTTP route of the gateway × every built-in role
//! (and a read-scoped API client) × an endpoint inside / outside the
//! subject's groups, over real HTTPS against a running gateway.
//!
//! The expectations below are written independently of the server's own
//! tables. A route the server registers without an expectation here fails
//! the test: adding a route means deciding, here, who may call it.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use http::{Method, StatusCode};
use jumpgate_api_types as api;
use jumpgate_client::{Client, ClientError};
use jumpgate_net::tls::Trust;
use jumpgate_proto::session::SessionKind;
use jumpgate_server::{Config, RawConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Admin,
    /// Technician in group `web`.
    Technician,
    /// Auditor in group `web`.
    Auditor,
    /// API client with the admin role on all groups, `read` scope only.
    ReadClient,
}

const EVERYONE: [Who; 4] = [Who::Admin, Who::Technician, Who::Auditor, Who::ReadClient];

/// Who may call a route. For per-endpoint routes, `inside` is the answer for
/// an endpoint in the subject's groups (`web-1`) and `outside` for one
/// outside them (`db-1`).
#[derive(Clone, Copy, Debug)]
enum Rule {
    Public,
    Only(&'static [Who]),
    PerEndpoint {
        inside: &'static [Who],
        outside: &'static [Who],
    },
}

const USERS: &[Who] = &[Who::Admin, Who::Technician, Who::Auditor];
const ADMIN: &[Who] = &[Who::Admin];
const ADMIN_AND_READERS: &[Who] = &[Who::Admin, Who::ReadClient];
const AUDITORS: &[Who] = &[Who::Admin, Who::Auditor, Who::ReadClient];
const VIEWERS: &[Who] = &[Who::Admin, Who::Technician, Who::Auditor, Who::ReadClient];

fn expectations() -> HashMap<&'static str, Rule> {
    use Rule::*;
    HashMap::from([
        ("GET /healthz", Public),
        // The web console's page and its embedded files.
        ("GET /", Public),
        ("GET /assets/{*path}", Public),
        ("POST /api/v1/auth/login", Public),
        ("POST /api/v1/agents/enroll", Public),
        ("POST /oauth2/token", Public),
        ("POST /api/v1/auth/logout", Only(USERS)),
        ("GET /api/v1/me", Only(USERS)),
        ("GET /api/v1/auth/session", Only(USERS)),
        ("POST /api/v1/me/password", Only(USERS)),
        ("POST /api/v1/me/mfa/totp", Only(USERS)),
        ("POST /api/v1/me/mfa/totp/confirm", Only(USERS)),
        ("DELETE /api/v1/me/mfa", Only(USERS)),
        ("POST /api/v1/me/mfa/recovery-codes", Only(USERS)),
        ("GET /api/v1/users", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/users", Only(ADMIN)),
        ("GET /api/v1/users/{name}", Only(ADMIN_AND_READERS)),
        ("PATCH /api/v1/users/{name}", Only(ADMIN)),
        ("DELETE /api/v1/users/{name}", Only(ADMIN)),
        ("PUT /api/v1/users/{name}/password", Only(ADMIN)),
        ("POST /api/v1/users/{name}/revoke-sessions", Only(ADMIN)),
        ("POST /api/v1/users/{name}/unlock", Only(ADMIN)),
        ("DELETE /api/v1/users/{name}/mfa", Only(ADMIN)),
        ("GET /api/v1/roles", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/roles", Only(ADMIN)),
        ("PATCH /api/v1/roles/{name}", Only(ADMIN)),
        ("DELETE /api/v1/roles/{name}", Only(ADMIN)),
        ("GET /api/v1/api-clients", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/api-clients", Only(ADMIN)),
        ("POST /api/v1/api-clients/{name}/rotate", Only(ADMIN)),
        ("DELETE /api/v1/api-clients/{name}", Only(ADMIN)),
        ("GET /api/v1/settings/security", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/settings/security", Only(ADMIN)),
        ("GET /api/v1/endpoints", Only(VIEWERS)),
        ("PUT /api/v1/endpoints/{name}/group", Only(ADMIN)),
        ("DELETE /api/v1/endpoints/{name}", Only(ADMIN)),
        ("POST /api/v1/endpoints/{name}/reenroll", Only(ADMIN)),
        ("POST /api/v1/enroll-tokens", Only(ADMIN)),
        ("GET /api/v1/groups", Only(VIEWERS)),
        ("POST /api/v1/groups", Only(ADMIN)),
        ("DELETE /api/v1/groups/{name}", Only(ADMIN)),
        ("GET /api/v1/sessions", Only(AUDITORS)),
        ("POST /api/v1/sessions/{id}/terminate", Only(ADMIN)),
        ("GET /api/v1/events", Only(AUDITORS)),
        ("GET /api/v1/recordings", Only(AUDITORS)),
        ("GET /api/v1/recordings/{id}/cast", Only(AUDITORS)),
        // The vault: admins only (`vault-*` permissions); a read-scoped
        // client with the admin role reads (every value read is audited).
        ("GET /api/v1/vault/secrets", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/vault/secrets/{name}", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/vault/secrets/{name}", Only(ADMIN)),
        ("DELETE /api/v1/vault/secrets/{name}", Only(ADMIN)),
        (
            "GET /api/v1/vault/secrets/{name}/versions",
            Only(ADMIN_AND_READERS),
        ),
        ("POST /api/v1/vault/secrets/{name}/recover", Only(ADMIN)),
        ("POST /api/v1/vault/secrets/{name}/purge", Only(ADMIN)),
        ("GET /api/v1/vault/settings", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/vault/settings/purge-protection", Only(ADMIN)),
        (
            "GET /api/v1/endpoints/{name}/connect",
            PerEndpoint {
                inside: &[Who::Admin, Who::Technician],
                outside: &[Who::Admin],
            },
        ),
    ])
}

struct Gateway {
    url: String,
    trust: Trust,
    data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let cfg = Config::validate(RawConfig {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..RawConfig::default()
    })
    .unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        jumpgate_server::run(cfg, stop, |s| {
            let _ = started_tx.send((s.addr, s.fingerprint));
        })
        .await
        .unwrap();
    });
    let (addr, fp) = started_rx.await.unwrap();
    Gateway {
        url: format!("https://{addr}"),
        trust: Trust::Pinned(fp),
        data_dir,
        _dir: dir,
        _stop: stop_tx,
    }
}

impl Gateway {
    fn client(&self) -> Client {
        Client::new(self.url.parse().unwrap(), &self.trust, None).unwrap()
    }

    async fn enroll(&self, name: &str, group: &str) {
        let db = jumpgate_server::admin::open(&self.data_dir).await.unwrap();
        let (token, _) = jumpgate_server::admin::enroll_token(&db, group, Duration::from_secs(60))
            .await
            .unwrap();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let key = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        self.client()
            .enroll(&api::EnrollRequest {
                token,
                name: name.into(),
                public_key: base64::engine::general_purpose::STANDARD
                    .encode(key.public_key().as_ref()),
                details: api::EndpointDetails::default(),
            })
            .await
            .unwrap();
    }

    async fn user(&self, name: &str, role: &str, groups: &[&str]) -> Client {
        let db = jumpgate_server::admin::open(&self.data_dir).await.unwrap();
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        jumpgate_server::admin::create_user(&db, name, role, &groups, "matrix-password-1")
            .await
            .unwrap();
        let login = self
            .client()
            .login(name, "matrix-password-1", None)
            .await
            .unwrap();
        self.client().with_token(login.token)
    }
}

/// The outcome of one request: allowed (anything but 401/403, and for
/// per-endpoint routes anything but "no such endpoint": endpoints outside
/// the caller's view do not exist for it), or denied.
async fn allowed(client: &Client, method: &Method, path: &str, route: &str) -> bool {
    let per_endpoint = route.ends_with("/connect");
    let body = if matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        // An empty object: allowed calls fail validation after the access
        // check, so the matrix changes nothing it later depends on.
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    let content_type = (!body.is_empty()).then_some("application/json");
    let (status, answer) = client
        .raw(method.clone(), path, content_type, body)
        .await
        .unwrap();
    let code = serde_json::from_slice::<api::ErrorBody>(&answer)
        .map(|e| e.error)
        .unwrap_or_default();
    assert_ne!(
        code, "no_route",
        "{route}: the router does not serve {method} {path}"
    );
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{route}: {answer:?}"
    );
    !(status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || (per_endpoint && code == "unknown_endpoint"))
}

/// Concrete paths for a route: placeholders get names whose objects do not
/// exist (writes then fail after the access check) — except per-endpoint
/// routes, which need the real endpoints.
fn concrete(path: &str, endpoint: &str) -> String {
    if path.contains("/endpoints/{name}/connect") {
        path.replace("{name}", endpoint) + "?kind=shell"
    } else {
        path.replace("{name}", "no-such-thing")
            .replace("{id}", "no-such-thing")
    }
}

#[tokio::test]
async fn every_route_every_role_inside_and_outside_groups() {
    let gw = start_gateway().await;
    gw.enroll("web-1", "web").await;
    gw.enroll("db-1", "db").await;
    let admin = gw.user("root", "admin", &[]).await;
    let mut subjects = HashMap::new();
    subjects.insert(
        Who::Technician,
        gw.user("tech", "technician", &["web"]).await,
    );
    subjects.insert(Who::Auditor, gw.user("audit", "auditor", &["web"]).await);
    let secret = admin
        .create_api_client(&api::CreateApiClient {
            name: "reader".into(),
            scopes: vec!["read".into()],
            role: "admin".into(),
            groups: vec!["*".into()],
        })
        .await
        .unwrap();
    let token = gw
        .client()
        .oauth2_token(&secret.client_id, &secret.client_secret, None)
        .await
        .unwrap();
    assert_eq!(token.scope, "read");
    subjects.insert(Who::ReadClient, gw.client().with_token(token.access_token));
    subjects.insert(Who::Admin, admin);
    let anonymous = gw.client();

    let expected = expectations();
    let table = jumpgate_server::route_table();
    assert!(
        table.len() >= 40,
        "route table suspiciously small: {}",
        table.len()
    );
    let mut checked = 0;
    for route in &table {
        let key = format!("{} {}", route.method, route.path);
        let rule = *expected.get(key.as_str()).unwrap_or_else(|| {
            panic!(
                "no access expectation for `{key}` ({}): add one to this test",
                route.access
            )
        });
        let method: Method = route.method.parse().unwrap();
        // Logging out would end the session the matrix keeps using: each
        // subject logs out a session of its own below instead.
        if key == "POST /api/v1/auth/logout" {
            continue;
        }
        match rule {
            Rule::Public => assert_eq!(route.access, "public", "{key}"),
            Rule::Only(who) => {
                for subject in EVERYONE {
                    let path = concrete(&route.path, "web-1");
                    let got = allowed(&subjects[&subject], &method, &path, &key).await;
                    assert_eq!(got, who.contains(&subject), "{key} as {subject:?}");
                    checked += 1;
                }
                assert!(
                    !allowed(&anonymous, &method, &concrete(&route.path, "web-1"), &key).await,
                    "{key} anonymously"
                );
            }
            Rule::PerEndpoint { inside, outside } => {
                for subject in EVERYONE {
                    for (endpoint, who) in [("web-1", inside), ("db-1", outside)] {
                        let got = allowed(
                            &subjects[&subject],
                            &method,
                            &concrete(&route.path, endpoint),
                            &key,
                        )
                        .await;
                        assert_eq!(
                            got,
                            who.contains(&subject),
                            "{key} on {endpoint} as {subject:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} checks ran");
    // Stale expectations (routes that no longer exist) fail too.
    for key in expected.keys() {
        assert!(
            table
                .iter()
                .any(|r| format!("{} {}", r.method, r.path) == *key),
            "expectation for `{key}`, which the gateway no longer serves"
        );
    }

    // Logout: users may end their own session; an API client may not.
    for subject in [Who::Technician, Who::Auditor, Who::Admin] {
        let c = &subjects[&subject];
        assert!(allowed(c, &Method::POST, "/api/v1/auth/logout", "logout").await);
        assert!(
            !allowed(c, &Method::GET, "/api/v1/me", "me after logout").await,
            "{subject:?} still logged in"
        );
    }
    assert!(
        !allowed(
            &subjects[&Who::ReadClient],
            &Method::POST,
            "/api/v1/auth/logout",
            "logout"
        )
        .await
    );
}

/// Every denial is recorded as a security event, readable by auditors.
#[tokio::test]
async fn denials_are_recorded_as_events() {
    let gw = start_gateway().await;
    gw.enroll("web-1", "web").await;
    gw.enroll("db-1", "db").await;
    let admin = gw.user("root", "admin", &[]).await;
    let tech = gw.user("tech", "technician", &["web"]).await;
    assert!(matches!(
        tech.users().await,
        Err(ClientError::Api { status: 403, .. })
    ));
    assert!(matches!(
        tech.connect("db-1", SessionKind::Shell).await,
        Err(ClientError::Api { status: 404, .. })
    ));
    let events: Vec<api::SecurityEvent> = admin.get_json("/api/v1/events").await.unwrap();
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.actor == "tech" && e.outcome == "denied")
        .collect();
    assert!(
        denials.iter().any(|e| e.action == "read-users"),
        "{events:?}"
    );
    assert!(
        denials
            .iter()
            .any(|e| e.action == "open-session:shell" && e.target == "db-1"),
        "{events:?}"
    );
}
