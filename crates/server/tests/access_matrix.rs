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

mod support;
use support::{Gateway, start_gateway};

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
const SUPPORT: &[Who] = &[Who::Admin, Who::Technician];
const SUPPORT_READERS: &[Who] = &[Who::Admin, Who::Technician, Who::ReadClient];
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
        ("GET /api/v1/ssh-keys", Only(USERS)),
        ("POST /api/v1/ssh-keys", Only(USERS)),
        ("DELETE /api/v1/ssh-keys/{id}", Only(USERS)),
        ("GET /api/v1/ssh/host-key", Only(USERS)),
        ("GET /api/v1/ssh/user-ca", Only(USERS)),
        ("POST /api/v1/ssh/user-cert", Only(USERS)),
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
        // Agentless targets: listed like endpoints (one's groups); added,
        // removed and jump points marked by `manage-endpoints`.
        ("GET /api/v1/targets", Only(VIEWERS)),
        ("POST /api/v1/targets", Only(ADMIN)),
        ("GET /api/v1/targets/{name}", Only(VIEWERS)),
        ("DELETE /api/v1/targets/{name}", Only(ADMIN)),
        ("PUT /api/v1/targets/{name}/host-key", Only(ADMIN)),
        ("PUT /api/v1/endpoints/{name}/jump-point", Only(ADMIN)),
        ("GET /api/v1/jump-points", Only(VIEWERS)),
        ("GET /api/v1/groups", Only(VIEWERS)),
        ("POST /api/v1/groups", Only(ADMIN)),
        ("GET /api/v1/groups/{name}", Only(VIEWERS)),
        ("PATCH /api/v1/groups/{name}", Only(ADMIN)),
        ("DELETE /api/v1/groups/{name}", Only(ADMIN)),
        ("GET /api/v1/sessions", Only(AUDITORS)),
        ("POST /api/v1/sessions/{id}/terminate", Only(ADMIN)),
        ("GET /api/v1/sessions/{id}/watch", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/events", Only(AUDITORS)),
        ("GET /api/v1/recordings", Only(AUDITORS)),
        ("GET /api/v1/recordings/{id}/cast", Only(AUDITORS)),
        ("GET /api/v1/recordings/search", Only(AUDITORS)),
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
        // Attended support: the portal is public; `support` (admin and
        // technician) makes keys and reads queues and sessions (a read-scoped
        // client reads); queues and branding are administration.
        ("GET /api/v1/portal", Public),
        ("GET /portal", Public),
        ("GET /portal/theme.css", Public),
        ("GET /portal/logo", Public),
        ("POST /api/v1/portal/key", Public),
        ("POST /api/v1/portal/requests", Public),
        ("GET /api/v1/portal/settings", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/portal/settings", Only(ADMIN)),
        ("POST /api/v1/support/keys", Only(SUPPORT)),
        ("GET /api/v1/support/sessions", Only(SUPPORT_READERS)),
        ("GET /api/v1/queues", Only(SUPPORT_READERS)),
        ("GET /api/v1/support/events", Only(SUPPORT_READERS)),
        ("GET /portal/download/{token}", Public),
        ("GET /api/v1/support/sessions/{id}", Only(SUPPORT)),
        ("GET /api/v1/support/sessions/{id}/connect", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/accept", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/chat", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/rights", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/end", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/transfer", Only(SUPPORT)),
        (
            "GET /api/v1/support/sessions/{id}/transcript",
            Only(SUPPORT_READERS),
        ),
        ("POST /api/v1/support/sessions/{id}/invite", Only(SUPPORT)),
        ("POST /api/v1/support/sessions/{id}/pin", Only(SUPPORT)),
        (
            "DELETE /api/v1/support/sessions/{id}/participants/{user}",
            Only(SUPPORT),
        ),
        // Endpoint privilege management: the policy is `epm-manage` (admin;
        // a read-scoped admin client reads it); approvals and codes are
        // `epm-approve` (admin and technician; per endpoint group once the
        // request or endpoint is known); events are `epm-manage` or
        // `view-audit`; the bundle route's signature is its credential.
        ("GET /api/v1/epm/policy", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/epm/policy", Only(ADMIN)),
        ("POST /api/v1/epm/policy/validate", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/epm/test", Only(SUPPORT_READERS)),
        ("POST /api/v1/epm/publish", Only(ADMIN)),
        ("GET /api/v1/epm/bundles", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/epm/status", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/epm/events", Only(AUDITORS)),
        ("GET /api/v1/epm/requests", Only(SUPPORT_READERS)),
        ("GET /api/v1/epm/requests/events", Only(SUPPORT_READERS)),
        ("POST /api/v1/epm/requests/{id}/approve", Only(SUPPORT)),
        ("POST /api/v1/epm/requests/{id}/deny", Only(SUPPORT)),
        ("POST /api/v1/epm/code", Only(SUPPORT)),
        ("GET /api/v1/epm/signing-keys", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/epm/signing-keys/rotate", Only(ADMIN)),
        ("GET /epm/bundles/{version}", Public),
        // The Package Manager: `epm-manage` (admin; a read-scoped admin
        // client reads); the inventory is `view` (rows of one's groups);
        // the download route's signature is its credential.
        ("POST /api/v1/packages", Only(ADMIN)),
        ("GET /api/v1/packages", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/packages/{id}", Only(ADMIN_AND_READERS)),
        ("DELETE /api/v1/packages/{id}", Only(ADMIN)),
        ("GET /api/v1/packages/publishers", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/packages/publishers", Only(ADMIN)),
        ("DELETE /api/v1/packages/publishers/{name}", Only(ADMIN)),
        ("GET /api/v1/packages/settings", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/packages/settings", Only(ADMIN)),
        ("GET /api/v1/packages/assignments", Only(ADMIN_AND_READERS)),
        ("PUT /api/v1/packages/assignments", Only(ADMIN)),
        (
            "DELETE /api/v1/packages/assignments/{group}/{package}",
            Only(ADMIN),
        ),
        ("GET /api/v1/packages/status", Only(ADMIN_AND_READERS)),
        ("GET /api/v1/packages/inventory", Only(VIEWERS)),
        ("GET /packages/{id}/{file}", Public),
        // Reports: `reports-read`, or `view-audit` (they summarise the
        // audit log): admin, auditor, a read-scoped admin client.
        ("GET /api/v1/reports", Only(AUDITORS)),
        ("GET /api/v1/reports/{name}", Only(AUDITORS)),
        // Mail alerts: `manage-alerts` (the admin role's).
        ("GET /api/v1/alert-rules", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/alert-rules", Only(ADMIN)),
        ("DELETE /api/v1/alert-rules/{name}", Only(ADMIN)),
        ("POST /api/v1/smtp/test", Only(ADMIN)),
        // Outbound events: `manage-webhooks` (the admin role's).
        ("GET /api/v1/webhooks", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/webhooks", Only(ADMIN)),
        ("DELETE /api/v1/webhooks/{name}", Only(ADMIN)),
        ("POST /api/v1/webhooks/{name}/rotate-secret", Only(ADMIN)),
        ("PUT /api/v1/webhooks/{name}/auth-header", Only(ADMIN)),
        ("DELETE /api/v1/webhooks/{name}/auth-header", Only(ADMIN)),
        ("GET /api/v1/webhooks/deliveries", Only(ADMIN_AND_READERS)),
        ("POST /api/v1/webhooks/deliveries/replay", Only(ADMIN)),
        // Access requests: any user asks (`view` on some group) and reads
        // or decides what concerns them (the handler checks approvers and
        // requesters); API clients neither ask nor decide. A group's
        // approval setting is read like the group, changed like it.
        ("GET /api/v1/access-requests", Only(USERS)),
        ("POST /api/v1/access-requests", Only(USERS)),
        ("GET /api/v1/access-requests/{id}", Only(USERS)),
        ("POST /api/v1/access-requests/{id}/approve", Only(USERS)),
        ("POST /api/v1/access-requests/{id}/deny", Only(USERS)),
        ("POST /api/v1/access-requests/{id}/cancel", Only(USERS)),
        ("GET /api/v1/groups/{name}/approval", Only(VIEWERS)),
        ("PUT /api/v1/groups/{name}/approval", Only(ADMIN)),
        ("DELETE /api/v1/groups/{name}/approval", Only(ADMIN)),
        ("POST /api/v1/queues", Only(ADMIN)),
        ("PATCH /api/v1/queues/{name}", Only(ADMIN)),
        ("DELETE /api/v1/queues/{name}", Only(ADMIN)),
        (
            "GET /api/v1/endpoints/{name}/connect",
            PerEndpoint {
                inside: &[Who::Admin, Who::Technician],
                outside: &[Who::Admin],
            },
        ),
    ])
}

impl Gateway {
    async fn enroll(&self, name: &str, group: &str) {
        let db = jumpgate_server::admin::open(&self.data_dir, None)
            .await
            .unwrap();
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
        let db = jumpgate_server::admin::open(&self.data_dir, None)
            .await
            .unwrap();
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
    if path == "/api/v1/epm/requests/events" {
        return match client.epm_request_events().await {
            Ok(_) => true,
            Err(ClientError::Api { status, .. }) => !(status == 401 || status == 403),
            Err(e) => panic!("{route}: {e}"),
        };
    }
    if path == "/api/v1/support/events" {
        // An event stream never ends: allowed once its headers say so.
        return match client.support_events().await {
            Ok(_) => true,
            Err(ClientError::Api { status, .. }) => !(status == 401 || status == 403),
            Err(e) => panic!("{route}: {e}"),
        };
    }
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
        .map(|e| e.error.as_str().to_owned())
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
    let admin = gw.user("chief", "admin", &[]).await;
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
    let admin = gw.user("chief", "admin", &[]).await;
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

/// Opens a desktop session on `endpoint` as `client` and returns the
/// gateway's or agent's answer to the `Open` (retries while the endpoint is
/// not online yet).
async fn open_desktop(
    client: &Client,
    endpoint: &str,
    control: bool,
) -> jumpgate_proto::session::SessionMsg {
    use jumpgate_proto::session::{ConsentMode, SessionMsg, SessionRequest};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut io = loop {
        match client.connect(endpoint, SessionKind::Desktop).await {
            Ok(io) => break io,
            Err(ClientError::Api { status: 409, .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{endpoint} never online"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("desktop on {endpoint}: {e}"),
        }
    };
    let open = SessionRequest::Desktop {
        control,
        clipboard: false,
        monitor: None,
        // The technician's claim is replaced by the gateway's.
        consent: ConsentMode::None,
        technician: "someone else".into(),
        codecs: None,
    };
    answer(&mut io, &SessionMsg::Open(open)).await.0
}

/// Sends `first` on a session connection: the first message that comes
/// back, and what was read behind it.
async fn answer(
    io: &mut jumpgate_client::SessionIo,
    first: &jumpgate_proto::session::SessionMsg,
) -> (jumpgate_proto::session::SessionMsg, bytes::BytesMut) {
    use jumpgate_proto::session::SessionMsg;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(&first.to_bytes()).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(m) = SessionMsg::decode(&mut buf).unwrap() {
            return (m, buf);
        }
        let n = tokio::time::timeout(Duration::from_secs(30), io.read_buf(&mut buf))
            .await
            .expect("no answer to the first message")
            .unwrap();
        assert!(n > 0, "ended without an answer to {}", first.name());
    }
}

/// Watching a desktop and controlling it are separate rights: asking for
/// control without `desktop-control` is refused as a permission denial and
/// recorded as a security event, while watching passes authorization (and
/// reaches the endpoint, whose agent answers for itself).
#[tokio::test]
async fn desktop_control_needs_its_own_right_and_a_denial_is_an_event() {
    use jumpgate_proto::session::{RefusalCode, SessionMsg};
    let gw = start_gateway().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_agents = stop.clone().drop_guard();
    gw.agent("web-1", "web", &stop).await;
    let admin = gw.user("chief", "admin", &[]).await;
    let role = api::CreateRole {
        name: "watcher".into(),
        description: String::new(),
        permissions: vec!["view".into(), "desktop-view".into()],
    };
    let _: api::Role = admin.post_json("/api/v1/roles", &role).await.unwrap();
    let watcher = gw.user("watch", "watcher", &["web"]).await;

    match open_desktop(&watcher, "web-1", true).await {
        SessionMsg::Refused(r) => {
            assert_eq!(r.code, RefusalCode::PermissionDenied, "{r:?}");
            assert!(r.message.contains("desktop-control"), "{r:?}");
        }
        other => panic!("control without the right: {other:?}"),
    }
    // Positive control: watching is authorized and recorded; what the
    // endpoint answers is its own (an agent without a screen refuses).
    match open_desktop(&watcher, "web-1", false).await {
        SessionMsg::Refused(r) => {
            assert_ne!(r.code, RefusalCode::PermissionDenied, "{r:?}");
            assert!(!r.message.contains("could not record"), "{r:?}");
        }
        SessionMsg::Accepted(_) => {}
        other => panic!("watching: {other:?}"),
    }
    let events: Vec<api::SecurityEvent> = admin.get_json("/api/v1/events").await.unwrap();
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.actor == "watch" && e.outcome == "denied")
        .collect();
    assert_eq!(denials.len(), 1, "{events:?}");
    assert_eq!(denials[0].action, "control-desktop");
    assert_eq!(denials[0].target, "web-1");
}

/// Opening a desktop session at all needs `desktop-view` (a role with
/// `desktop-control` alone cannot watch): refused before anything reaches
/// the endpoint, and a security event; the built-in technician role has it.
#[tokio::test]
async fn watching_a_desktop_needs_desktop_view() {
    let gw = start_gateway().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_agents = stop.clone().drop_guard();
    gw.agent("web-1", "web", &stop).await;
    let admin = gw.user("chief", "admin", &[]).await;
    let role = api::CreateRole {
        name: "driver".into(),
        description: String::new(),
        permissions: vec!["view".into(), "shell".into(), "desktop-control".into()],
    };
    let _: api::Role = admin.post_json("/api/v1/roles", &role).await.unwrap();
    let driver = gw.user("drive", "driver", &["web"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match driver.connect("web-1", SessionKind::Desktop).await {
            Err(ClientError::Api { status: 409, .. }) => {
                assert!(tokio::time::Instant::now() < deadline, "web-1 never online");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(ClientError::Api { status, .. }) => {
                assert_eq!(status, 403);
                break;
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a desktop session without desktop-view was let through"),
        }
    }
    let events: Vec<api::SecurityEvent> = admin.get_json("/api/v1/events").await.unwrap();
    assert!(
        events.iter().any(|e| e.actor == "drive"
            && e.outcome == "denied"
            && e.action == "open-session:desktop"
            && e.target == "web-1"),
        "{events:?}"
    );
    // Positive control: the built-in technician role gets past the check.
    let tech = gw.user("tech", "technician", &["web"]).await;
    assert!(tech.connect("web-1", SessionKind::Desktop).await.is_ok());
    let roles: Vec<api::Role> = admin.get_json("/api/v1/roles").await.unwrap();
    let perms = |n: &str| {
        roles
            .iter()
            .find(|r| r.name == n)
            .map(|r| r.permissions.clone())
            .unwrap()
    };
    for r in ["admin", "technician"] {
        assert!(perms(r).contains(&"desktop-view".to_owned()), "{r}");
        assert!(perms(r).contains(&"desktop-control".to_owned()), "{r}");
    }
    assert!(!perms("auditor").iter().any(|p| p.starts_with("desktop")));
}

/// An endpoint group's consent mode through the API: set at creation,
/// shown, changed with PATCH (audited), and a bad value is a clear 400.
#[tokio::test]
async fn a_groups_consent_mode_round_trips_through_the_api() {
    let gw = start_gateway().await;
    let admin = gw.user("chief", "admin", &[]).await;
    let g = admin
        .create_group(&api::CreateGroup {
            name: "kiosks".into(),
            description: String::new(),
            consent: Some("notify".into()),
        })
        .await
        .unwrap();
    assert_eq!(g.consent, "notify");
    let plain = admin
        .create_group(&api::CreateGroup {
            name: "desks".into(),
            description: String::new(),
            consent: None,
        })
        .await
        .unwrap();
    assert_eq!(plain.consent, "prompt");
    let g = admin
        .update_group(
            "kiosks",
            &api::UpdateGroup {
                description: None,
                consent: Some("none".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(g.consent, "none");
    assert_eq!(admin.group("kiosks").await.unwrap().consent, "none");
    let listed = admin.groups().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|g| g.name == "kiosks" && g.consent == "none")
    );
    match admin
        .update_group(
            "kiosks",
            &api::UpdateGroup {
                description: None,
                consent: Some("ask".into()),
            },
        )
        .await
    {
        Err(ClientError::Api {
            status: 400,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, api::ErrorCode::BadRequest);
            assert!(message.contains("prompt, notify or none"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(admin.group("kiosks").await.unwrap().consent, "none");
    let events: Vec<api::SecurityEvent> = admin.get_json("/api/v1/events").await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "group-update"
            && e.target == "kiosks"
            && e.detail == "consent=notify->none"),
        "{events:?}"
    );
}

// --- Group scope on what endpoints leave behind --------------------------

impl Gateway {
    /// An in-process agent enrolled as `name` in `group`, online when this
    /// returns; it stops when `stop` is cancelled.
    async fn agent(&self, name: &str, group: &str, stop: &tokio_util::sync::CancellationToken) {
        let db = jumpgate_server::admin::open(&self.data_dir, None)
            .await
            .unwrap();
        let (token, _) = jumpgate_server::admin::enroll_token(&db, group, Duration::from_secs(60))
            .await
            .unwrap();
        let Trust::Pinned(fp) = &self.trust else {
            unreachable!("the test gateway is pinned")
        };
        let mut opts =
            jumpgate_agent::AgentOptions::new(self.data_dir.join(format!("agent-{name}")));
        opts.server = Some(self.url.parse().unwrap());
        opts.ca_fingerprint = Some(*fp);
        opts.name = Some(name.to_owned());
        opts.enroll_token = Some(token);
        opts.min_backoff = Duration::from_millis(50);
        let stop = stop.clone();
        tokio::spawn(async move { jumpgate_agent::run(opts, stop).await });
        let admin_db = db;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        // Online once the endpoint's row exists and its agent is connected
        // (a session opens); polled with a deadline.
        loop {
            let enrolled = jumpgate_server::admin::endpoint_enrolled(&admin_db, name)
                .await
                .unwrap();
            if enrolled {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never enrolled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `echo MARKER` on `endpoint` as `client` (an exec session, recorded);
/// retries while the endpoint is not online yet. Returns the output.
async fn exec(client: &Client, endpoint: &str, marker: &str) -> String {
    use bytes::BytesMut;
    use jumpgate_proto::session::{SessionMsg, SessionRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut io = loop {
        match client.connect(endpoint, SessionKind::Exec).await {
            Ok(io) => break io,
            Err(ClientError::Api { status: 409, .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{endpoint} never online"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("exec on {endpoint}: {e}"),
        }
    };
    let open = SessionRequest::Exec {
        command: vec!["echo".into(), marker.into()],
    };
    io.write_all(&SessionMsg::Open(open).to_bytes())
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    loop {
        while let Some(m) = SessionMsg::decode(&mut buf).unwrap() {
            match m {
                SessionMsg::Stdout(b) | SessionMsg::Stderr(b) => out.extend_from_slice(&b),
                SessionMsg::Exit(_) | SessionMsg::Closed { .. } => {
                    return String::from_utf8_lossy(&out).into_owned();
                }
                SessionMsg::Refused(r) => panic!("exec on {endpoint} refused: {}", r.message),
                _ => {}
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), io.read_buf(&mut buf))
            .await
            .expect("exec session hung")
            .unwrap();
        if n == 0 {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
}

async fn recordings_of(c: &Client) -> Vec<api::Recording> {
    c.get_json("/api/v1/recordings").await.unwrap()
}

/// Sessions, recordings (list, replay/export) and the audit log of
/// endpoint activity are limited to the reader's groups: a group-limited
/// auditor sees only its group's rows, and another group's recording does
/// not exist for it (404); an all-groups auditor sees everything,
/// site-wide entries included. A row stays with the group its endpoint
/// was in at the time.
#[tokio::test]
async fn group_scope_on_sessions_recordings_and_audit() {
    let gw = start_gateway().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_agents = stop.clone().drop_guard();
    gw.agent("web-1", "web", &stop).await;
    gw.agent("db-1", "db", &stop).await;
    let admin = gw.user("chief", "admin", &[]).await;
    let web_auditor = gw.user("audit-web", "auditor", &["web"]).await;
    let all_auditor = gw.user("audit-all", "auditor", &["*"]).await;
    let tech = gw.user("tech", "technician", &["web"]).await;

    assert!(
        exec(&admin, "web-1", "marker-web")
            .await
            .contains("marker-web")
    );
    assert!(
        exec(&admin, "db-1", "marker-db")
            .await
            .contains("marker-db")
    );
    // A denial on db-1 is a db row (session table and audit log).
    assert!(matches!(
        tech.connect("db-1", SessionKind::Shell).await,
        Err(ClientError::Api { status: 404, .. })
    ));
    // Recordings end just after their sessions.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let all_recs = loop {
        let recs = recordings_of(&all_auditor).await;
        if recs.len() == 2 && recs.iter().all(|r| r.ended_at.is_some()) {
            break recs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{recs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Sessions.
    let endpoints_of = |rows: &[api::SessionEvent]| {
        let mut v: Vec<String> = rows.iter().map(|r| r.endpoint.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let web_sessions: Vec<api::SessionEvent> =
        web_auditor.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(endpoints_of(&web_sessions), ["web-1"], "{web_sessions:?}");
    let all_sessions: Vec<api::SessionEvent> =
        all_auditor.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(
        endpoints_of(&all_sessions),
        ["db-1", "web-1"],
        "{all_sessions:?}"
    );
    assert!(
        all_sessions
            .iter()
            .any(|s| s.endpoint == "db-1" && s.outcome == "denied" && s.username == "tech"),
        "{all_sessions:?}"
    );
    // Filtering by another group's endpoint finds nothing, not an error.
    let none: Vec<api::SessionEvent> = web_auditor
        .get_json("/api/v1/sessions?endpoint=db-1")
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // Recordings: listed, played and exported only within the groups.
    let web_recs = recordings_of(&web_auditor).await;
    assert_eq!(web_recs.len(), 1, "{web_recs:?}");
    assert_eq!(web_recs[0].endpoint, "web-1");
    let db_rec = all_recs.iter().find(|r| r.endpoint == "db-1").unwrap();
    let web_rec = &web_recs[0];
    let cast = |c: &Client, id: &str| {
        let c = c.clone();
        let path = format!("/api/v1/recordings/{id}/cast");
        async move { c.raw(Method::GET, &path, None, Vec::new()).await.unwrap() }
    };
    let (status, body) = cast(&web_auditor, &db_rec.id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:?}");
    let code = serde_json::from_slice::<api::ErrorBody>(&body)
        .unwrap()
        .error;
    assert_eq!(code, api::ErrorCode::UnknownRecording);
    // The same answer as for a recording that does not exist at all.
    let (status, _) = cast(&web_auditor, "rec_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = cast(&web_auditor, &web_rec.id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("marker-web"));
    let (status, body) = cast(&all_auditor, &db_rec.id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("marker-db"));

    // The audit log: the group's endpoint entries only, no site-wide ones.
    let web_events: Vec<api::SecurityEvent> = web_auditor.get_json("/api/v1/events").await.unwrap();
    let all_events: Vec<api::SecurityEvent> = all_auditor.get_json("/api/v1/events").await.unwrap();
    let has = |evs: &[api::SecurityEvent], action: &str, target: &str| {
        evs.iter().any(|e| e.action == action && e.target == target)
    };
    assert!(
        has(&web_events, "session-open:exec", "web-1"),
        "{web_events:?}"
    );
    assert!(
        has(&web_events, "session-close:exec", "web-1"),
        "{web_events:?}"
    );
    assert!(
        has(&web_events, "recording-view", &web_rec.id),
        "{web_events:?}"
    );
    for e in &web_events {
        assert!(
            !e.target.contains("db") && !e.detail.contains("db-1"),
            "a db entry leaked to the web auditor: {e:?}"
        );
        assert!(
            !matches!(
                e.action.as_str(),
                "login" | "user-create" | "api-client-create"
            ),
            "a site-wide entry leaked to the web auditor: {e:?}"
        );
    }
    for (action, target) in [
        ("session-open:exec", "db-1"),
        ("open-session:shell", "db-1"),
        ("recording-view", db_rec.id.as_str()),
        ("user-create", "audit-web"),
        ("login", "audit-web"),
    ] {
        assert!(
            has(&all_events, action, target),
            "{action} {target}: {all_events:?}"
        );
    }

    // A row stays with the group its endpoint was in at the time: after
    // web-1 moves to db, its old session stays visible to the web auditor,
    // the move is visible to both groups, and new sessions are db's.
    let moved: api::Endpoint = admin
        .put_json(
            "/api/v1/endpoints/web-1/group",
            &api::SetEndpointGroup { group: "db".into() },
        )
        .await
        .unwrap();
    assert_eq!(moved.group, "db");
    assert!(
        exec(&admin, "web-1", "marker-after-move")
            .await
            .contains("marker-after-move")
    );
    let after: Vec<api::SessionEvent> = web_auditor.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(after.len(), web_sessions.len(), "{after:?}");
    let web_events: Vec<api::SecurityEvent> = web_auditor.get_json("/api/v1/events").await.unwrap();
    assert!(
        has(&web_events, "endpoint-group", "web-1"),
        "{web_events:?}"
    );
    let all_after: Vec<api::SessionEvent> = all_auditor.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(all_after.len(), all_sessions.len() + 1, "{all_after:?}");
}

/// A session whose first message does not open one of the kind it was
/// authorized for (another message, or an open of another kind) is refused
/// with `invalid-request` and its stream ended; no session row is written.
/// The same user's proper open works (the positive control).
#[tokio::test]
async fn a_first_message_that_does_not_open_the_authorized_kind_is_refused() {
    use jumpgate_proto::session::{RefusalCode, SessionMsg, SessionRequest};
    use tokio::io::AsyncReadExt;
    let gw = start_gateway().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_agents = stop.clone().drop_guard();
    gw.agent("web-1", "web", &stop).await;
    let admin = gw.user("chief", "admin", &[]).await;
    assert!(exec(&admin, "web-1", "first-ok").await.contains("first-ok"));
    let before: Vec<api::SessionEvent> = admin.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    let firsts = [
        SessionMsg::Stdin(bytes::Bytes::from_static(b"echo never\n")),
        SessionMsg::Open(SessionRequest::Shell {
            term: "xterm".into(),
            cols: 80,
            rows: 24,
            command: None,
        }),
    ];
    for first in firsts {
        let mut io = admin.connect("web-1", SessionKind::Exec).await.unwrap();
        let (answer, buf) = answer(&mut io, &first).await;
        match answer {
            SessionMsg::Refused(r) => {
                assert_eq!(r.code, RefusalCode::InvalidRequest, "{}", r.message);
                assert!(
                    r.message.contains("must open a exec session"),
                    "{}",
                    r.message
                );
            }
            other => panic!("{} answered with {}", first.name(), other.name()),
        }
        // Nothing follows: the stream ends.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), io.read_to_end(&mut rest))
            .await
            .expect("the refused stream stayed open")
            .unwrap();
        assert!(buf.is_empty() && rest.is_empty(), "{rest:?}");
    }
    let after: Vec<api::SessionEvent> = admin.get_json("/api/v1/sessions").await.unwrap();
    assert_eq!(after.len(), before.len(), "{after:?}");
}
