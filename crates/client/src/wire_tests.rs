//! The typed client against a fake gateway: a real TLS + HTTP/1.1 server
//! that records each request and plays back scripted answers in order.
//!
//! Only for what the real gateway cannot show or never does: the headers
//! the client sends (no content type without a body) and answers the real
//! gateway never gives (a JSON route answering 204, a status-only route
//! answering 200 with a body). Every typed method's happy path, and the
//! gateway's typed errors, run against the real gateway in process:
//! `crates/server/tests/client_wire.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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

/// Answers in order: status, body, and whether the connection closes after.
type Script = Arc<Mutex<VecDeque<(u16, String, bool)>>>;

struct Fake {
    client: Client,
    script: Script,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS connections accepted so far.
    connections: Arc<AtomicUsize>,
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
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, r, n) = (
            Arc::clone(&script),
            Arc::clone(&seen),
            Arc::clone(&connections),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                n.fetch_add(1, Ordering::SeqCst);
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
                        let (status, text, close) =
                            s.lock().unwrap().pop_front().expect("unscripted");
                        let mut res = hyper::Response::builder()
                            .status(status)
                            .header(http::header::CONTENT_TYPE, "application/json");
                        if close {
                            res = res.header(http::header::CONNECTION, "close");
                        }
                        Ok::<_, hyper::Error>(res.body(Full::new(Bytes::from(text))).unwrap())
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
            connections,
        }
    }

    /// Queues the next answer.
    fn answer(&self, status: u16, body: Value) {
        self.answer_then(status, body, false);
    }

    /// Queues the next answer; `close`: the connection closes after it.
    fn answer_then(&self, status: u16, body: Value, close: bool) {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.script.lock().unwrap().push_back((status, text, close));
    }
}

#[tokio::test]
async fn calls_share_a_kept_connection_and_a_closed_one_is_replaced() {
    let f = Fake::start().await;
    let c = &f.client;
    for _ in 0..3 {
        f.answer(200, json!([]));
        assert!(c.endpoints().await.unwrap().is_empty());
    }
    // An error answer ends its exchange too: the connection stays.
    f.answer(404, json!({"error": "unknown_user", "message": "no user"}));
    c.unlock_user("nobody").await.unwrap_err();
    // Clones share the kept connection.
    f.answer(200, json!([]));
    c.clone().endpoints().await.unwrap();
    assert_eq!(f.connections.load(Ordering::SeqCst), 1);
    // The gateway closes the connection after an answer: the next call
    // goes on a new one, and is answered.
    f.answer_then(200, json!([]), true);
    c.endpoints().await.unwrap();
    f.answer(200, json!([]));
    c.endpoints().await.unwrap();
    assert_eq!(f.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        f.seen.lock().unwrap().len(),
        7,
        "every call reached the gateway once"
    );
}

#[tokio::test]
async fn headers_and_answers_the_real_gateway_never_gives() {
    let f = Fake::start().await;
    let c = &f.client;
    f.answer(204, Value::Null);
    c.unlock_user("bob").await.unwrap();
    f.answer(200, json!({"codes": []}));
    c.confirm_totp("1").await.unwrap();
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].path.as_str(),
            &seen[0].body
        ),
        ("POST", "/api/v1/users/bob/unlock", &Value::Null)
    );
    assert_eq!(seen[1].body, json!({"code": "1"}));
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer tok"));
    assert_eq!(seen[0].content_type, None, "no body, no content type");
    assert_eq!(seen[1].content_type.as_deref(), Some("application/json"));

    // A JSON route answering 204 is a protocol error, not a panic or a default.
    f.answer(204, Value::Null);
    let err = c.users().await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    // A status-only route accepts a 200 with a body.
    f.answer(200, json!({"ok": true}));
    c.revoke_user_sessions("bob").await.unwrap();
}
