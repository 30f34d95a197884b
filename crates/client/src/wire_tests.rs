//! The typed methods against a fake gateway: a real TLS + HTTP/1.1 server
//! that records each request and plays back scripted answers in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jumpgate_api_types as api;
use jumpgate_net::tls::{self, Fingerprint, Trust};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::{Client, ClientError};

/// A throwaway self-signed P-256 certificate for the fake gateway (test
/// fixture only; the client pins it, so its dates and name do not matter).
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUTEzKEpjl+D9hLxWB6wV/eTRHWIowCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZmFrZS1nYXRld2F5MCAXDTI2MTEyMzExMTYxN1oYDzIxMjYx
MDMwMTExNjE3WjAXMRUwEwYDVQQDDAxmYWtlLWdhdGV3YXkwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASm5ABx0uDpTqfJcailVhbaiNfO7thrSfQ1OxMcYsyCq2NI
/i+vX+R3GilFMr3CNLWayfeGmTnqVdVI97Vafjmxo1MwUTAdBgNVHQ4EFgQU3tu8
mBZLcDrZocoESYcvCGbWSwowHwYDVR0jBBgwFoAU3tu8mBZLcDrZocoESYcvCGbW
SwowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAhVe1JJ/m2ju9
/ZmUrwaU8aBIjPHNHf2HjLxnNffccY0CIQCeuL80MnVtq3f1HrBhgiK8J5tzsBkd
fS40UG1aKLhK/A==
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpPU4N4GfTCyVjk24
FPep6aa58S78kAi1QwhPlsir3y6hRANCAASm5ABx0uDpTqfJcailVhbaiNfO7thr
SfQ1OxMcYsyCq2NI/i+vX+R3GilFMr3CNLWayfeGmTnqVdVI97Vafjmx
-----END PRIVATE KEY-----
";

/// What the fake gateway saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    /// The JSON body; `Null` when there was none.
    body: Value,
    content_type: Option<String>,
    auth: Option<String>,
}

type Script = Arc<Mutex<VecDeque<(u16, String)>>>;

struct Fake {
    client: Client,
    script: Script,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start() -> Self {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let fp = Fingerprint::of(&cert);
        let cfg = tls::server_config(vec![cert], key, &[b"http/1.1"]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script: Script = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (s, r) = (Arc::clone(&script), Arc::clone(&seen));
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                    async move {
                        let header = |n: http::HeaderName| {
                            req.headers().get(n).map(|v| v.to_str().unwrap().to_owned())
                        };
                        let mut seen = Seen {
                            method: req.method().to_string(),
                            path: req.uri().to_string(),
                            body: Value::Null,
                            content_type: header(http::header::CONTENT_TYPE),
                            auth: header(http::header::AUTHORIZATION),
                        };
                        let body = req.into_body().collect().await?.to_bytes();
                        if !body.is_empty() {
                            seen.body = serde_json::from_slice(&body).unwrap();
                        }
                        r.lock().unwrap().push(seen);
                        let (status, text) = s.lock().unwrap().pop_front().expect("unscripted");
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .status(status)
                                .header(http::header::CONTENT_TYPE, "application/json")
                                .body(Full::new(Bytes::from(text)))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc),
                );
            }
        });
        let url = format!("https://127.0.0.1:{port}").parse().unwrap();
        let client = Client::new(url, &Trust::Pinned(fp), None)
            .unwrap()
            .with_token("tok");
        Self {
            client,
            script,
            seen,
        }
    }

    /// Queues the next answer.
    fn answer(&self, status: u16, body: Value) {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.script.lock().unwrap().push_back((status, text));
    }

    /// Takes what was seen so far as `(method, path, body)`.
    fn take(&self) -> Vec<(String, String, Value)> {
        self.seen
            .lock()
            .unwrap()
            .drain(..)
            .map(|s| (s.method, s.path, s.body))
            .collect()
    }
}

fn req(method: &str, path: &str, body: Value) -> (String, String, Value) {
    (method.to_owned(), path.to_owned(), body)
}

fn user_json(name: &str) -> Value {
    json!({"username": name, "email": null, "role": "technician", "groups": ["prod"],
           "mfa_enabled": false, "locked_until": null,
           "created_at": "2025-01-01T00:00:00Z", "password_changed_at": "2025-01-01T00:00:00Z"})
}

fn role_json() -> Value {
    json!({"name": "ops", "description": "", "permissions": ["view"], "builtin": false})
}

fn secret_json() -> Value {
    json!({"client_id": "jgc_1", "client_secret": "s3cret"})
}

fn settings() -> api::SecuritySettings {
    api::SecuritySettings {
        password_min_length: 12,
        password_min_classes: 2,
        password_history: 5,
        password_max_age_days: None,
        lockout_threshold: 5,
        lockout_duration_secs: 900,
        mfa_required_roles: vec!["admin".into()],
    }
}

#[tokio::test]
async fn self_service_routes_send_the_documented_requests() {
    let f = Fake::start().await;
    let c = &f.client;
    f.answer(
        200,
        json!({"token": "t", "expires_at": "x", "username": "al", "role": "admin",
               "mfa_enrollment_required": true}),
    );
    let login = c.login("al", "pw", Some("123456")).await.unwrap();
    assert!(login.mfa_enrollment_required && !login.password_change_required);
    f.answer(
        200,
        json!({"token": "t", "expires_at": "x", "username": "al", "role": "admin"}),
    );
    c.login("al", "pw", None).await.unwrap();
    f.answer(
        200,
        json!({"username": "al", "role": "admin", "permissions": ["view"], "groups": ["*"],
               "mfa_enabled": true, "mfa_enrollment_required": false,
               "password_change_required": false}),
    );
    assert_eq!(c.me().await.unwrap().groups, ["*"]);
    f.answer(204, Value::Null);
    let change = api::ChangePassword {
        current_password: "old".into(),
        new_password: "new".into(),
    };
    c.change_password(&change).await.unwrap();
    f.answer(
        200,
        json!({"secret": "ABCD", "otpauth_url": "otpauth://x", "qr_svg": "<svg/>"}),
    );
    assert_eq!(c.begin_totp().await.unwrap().secret, "ABCD");
    f.answer(200, json!({"codes": ["A", "B"]}));
    assert_eq!(c.confirm_totp("123456").await.unwrap().codes, ["A", "B"]);
    f.answer(204, Value::Null);
    c.disable_mfa("AAAA-BBBB-CCCC").await.unwrap();
    f.answer(200, json!({"codes": ["C"]}));
    assert_eq!(c.new_recovery_codes("654321").await.unwrap().codes, ["C"]);

    assert_eq!(
        f.take(),
        [
            req(
                "POST",
                "/api/v1/auth/login",
                json!({"username": "al", "password": "pw", "totp": "123456"})
            ),
            req(
                "POST",
                "/api/v1/auth/login",
                json!({"username": "al", "password": "pw"})
            ),
            req("GET", "/api/v1/me", Value::Null),
            req(
                "POST",
                "/api/v1/me/password",
                json!({"current_password": "old", "new_password": "new"})
            ),
            req("POST", "/api/v1/me/mfa/totp", Value::Null),
            req(
                "POST",
                "/api/v1/me/mfa/totp/confirm",
                json!({"code": "123456"})
            ),
            req(
                "DELETE",
                "/api/v1/me/mfa",
                json!({"code": "AAAA-BBBB-CCCC"})
            ),
            req(
                "POST",
                "/api/v1/me/mfa/recovery-codes",
                json!({"code": "654321"})
            ),
        ]
    );
}

#[tokio::test]
async fn user_role_and_group_routes_send_the_documented_requests() {
    let f = Fake::start().await;
    let c = &f.client;
    f.answer(200, json!([user_json("bob")]));
    assert_eq!(c.users().await.unwrap()[0].username, "bob");
    f.answer(200, user_json("a b"));
    c.user("a b").await.unwrap();
    f.answer(201, user_json("bob"));
    let create = api::CreateUser {
        username: "bob".into(),
        password: "pw".into(),
        role: "technician".into(),
        groups: vec!["prod".into()],
        email: None,
    };
    c.create_user(&create).await.unwrap();
    f.answer(200, user_json("bob"));
    let update = api::UpdateUser {
        role: Some("auditor".into()),
        ..Default::default()
    };
    c.update_user("bob", &update).await.unwrap();
    for _ in 0..5 {
        f.answer(204, Value::Null);
    }
    c.delete_user("bob").await.unwrap();
    c.set_user_password("bob", "pw2").await.unwrap();
    c.revoke_user_sessions("bob").await.unwrap();
    c.unlock_user("bob").await.unwrap();
    c.reset_user_mfa("bob").await.unwrap();

    f.answer(200, json!([role_json()]));
    c.roles().await.unwrap();
    f.answer(201, role_json());
    let role = api::CreateRole {
        name: "ops".into(),
        description: String::new(),
        permissions: vec!["view".into()],
    };
    c.create_role(&role).await.unwrap();
    f.answer(200, role_json());
    let update = api::UpdateRole {
        permissions: Some(vec!["view".into(), "shell".into()]),
        ..Default::default()
    };
    c.update_role("ops", &update).await.unwrap();
    f.answer(204, Value::Null);
    c.delete_role("ops").await.unwrap();

    f.answer(
        200,
        json!([{"name": "prod", "description": "", "endpoints": 3}]),
    );
    assert_eq!(c.groups().await.unwrap()[0].endpoints, 3);
    f.answer(
        201,
        json!({"name": "lab", "description": "d", "endpoints": 0}),
    );
    let group = api::CreateGroup {
        name: "lab".into(),
        description: "d".into(),
    };
    c.create_group(&group).await.unwrap();
    f.answer(204, Value::Null);
    c.delete_group("lab").await.unwrap();

    let none = Value::Null;
    assert_eq!(
        f.take(),
        [
            req("GET", "/api/v1/users", none.clone()),
            req("GET", "/api/v1/users/a%20b", none.clone()),
            req(
                "POST",
                "/api/v1/users",
                json!({"username": "bob", "password": "pw", "role": "technician",
                       "groups": ["prod"], "email": null})
            ),
            req("PATCH", "/api/v1/users/bob", json!({"role": "auditor"})),
            req("DELETE", "/api/v1/users/bob", none.clone()),
            req(
                "PUT",
                "/api/v1/users/bob/password",
                json!({"password": "pw2"})
            ),
            req("POST", "/api/v1/users/bob/revoke-sessions", none.clone()),
            req("POST", "/api/v1/users/bob/unlock", none.clone()),
            req("DELETE", "/api/v1/users/bob/mfa", none.clone()),
            req("GET", "/api/v1/roles", none.clone()),
            req(
                "POST",
                "/api/v1/roles",
                json!({"name": "ops", "description": "", "permissions": ["view"]})
            ),
            req(
                "PATCH",
                "/api/v1/roles/ops",
                json!({"permissions": ["view", "shell"]})
            ),
            req("DELETE", "/api/v1/roles/ops", none.clone()),
            req("GET", "/api/v1/groups", none.clone()),
            req(
                "POST",
                "/api/v1/groups",
                json!({"name": "lab", "description": "d"})
            ),
            req("DELETE", "/api/v1/groups/lab", none),
        ]
    );
}

#[tokio::test]
async fn endpoint_client_and_settings_routes_send_the_documented_requests() {
    let f = Fake::start().await;
    let c = &f.client;
    f.answer(
        200,
        json!({"id": "e1", "name": "web-01", "group": "prod", "online": true,
               "last_seen": null, "enrolled_at": "x", "hostname": "h", "os": "linux",
               "arch": "x86_64", "agent_version": "1"}),
    );
    assert_eq!(
        c.set_endpoint_group("web-01", "prod").await.unwrap().group,
        "prod"
    );
    f.answer(204, Value::Null);
    c.revoke_endpoint("web-01").await.unwrap();
    f.answer(
        201,
        json!({"token": "jge_x", "group": "prod", "expires_at": "x"}),
    );
    let token = api::CreateEnrollToken {
        group: Some("prod".into()),
        ttl: Some("1h".into()),
    };
    assert_eq!(c.create_enroll_token(&token).await.unwrap().token, "jge_x");

    f.answer(
        200,
        json!([{"client_id": "jgc_1", "name": "ci", "scopes": ["read"], "role": "auditor",
                "groups": [], "created_at": "x", "secret_rotated_at": "x"}]),
    );
    assert_eq!(c.api_clients().await.unwrap()[0].name, "ci");
    f.answer(201, secret_json());
    let create = api::CreateApiClient {
        name: "ci".into(),
        scopes: vec!["read".into(), "write".into()],
        role: "auditor".into(),
        groups: vec![],
    };
    let secret = c.create_api_client(&create).await.unwrap();
    assert_eq!(secret.client_secret, "s3cret");
    f.answer(200, secret_json());
    c.rotate_api_client("ci").await.unwrap();
    f.answer(204, Value::Null);
    c.delete_api_client("ci").await.unwrap();

    f.answer(200, serde_json::to_value(settings()).unwrap());
    assert_eq!(c.security_settings().await.unwrap(), settings());
    f.answer(200, serde_json::to_value(settings()).unwrap());
    c.set_security_settings(&settings()).await.unwrap();

    let none = Value::Null;
    assert_eq!(
        f.take(),
        [
            req(
                "PUT",
                "/api/v1/endpoints/web-01/group",
                json!({"group": "prod"})
            ),
            req("DELETE", "/api/v1/endpoints/web-01", none.clone()),
            req(
                "POST",
                "/api/v1/enroll-tokens",
                json!({"group": "prod", "ttl": "1h"})
            ),
            req("GET", "/api/v1/api-clients", none.clone()),
            req(
                "POST",
                "/api/v1/api-clients",
                json!({"name": "ci", "scopes": ["read", "write"], "role": "auditor",
                       "groups": []})
            ),
            req("POST", "/api/v1/api-clients/ci/rotate", none.clone()),
            req("DELETE", "/api/v1/api-clients/ci", none.clone()),
            req("GET", "/api/v1/settings/security", none),
            req(
                "PUT",
                "/api/v1/settings/security",
                serde_json::to_value(settings()).unwrap()
            ),
        ]
    );
}

#[tokio::test]
async fn headers_errors_and_empty_answers() {
    let f = Fake::start().await;
    let c = &f.client;
    f.answer(204, Value::Null);
    c.unlock_user("bob").await.unwrap();
    f.answer(200, json!({"codes": []}));
    c.confirm_totp("1").await.unwrap();
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer tok"));
    assert_eq!(seen[0].content_type, None, "no body, no content type");
    assert_eq!(seen[1].content_type.as_deref(), Some("application/json"));

    f.answer(
        403,
        json!({"error": "insufficient_scope", "message": "needs write"}),
    );
    match c.delete_user("bob").await.unwrap_err() {
        ClientError::Api {
            status,
            code,
            message,
        } => assert_eq!(
            (status, code.as_str(), message.as_str()),
            (403, "insufficient_scope", "needs write")
        ),
        e => panic!("{e:?}"),
    }
    // A JSON route answering 204 is a protocol error, not a panic or a default.
    f.answer(204, Value::Null);
    let err = c.users().await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    // A status-only route accepts a 200 with a body.
    f.answer(200, json!({"ok": true}));
    c.revoke_user_sessions("bob").await.unwrap();
}
