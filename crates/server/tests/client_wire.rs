//! The typed client (`jumpgate-client`) against the real gateway: a
//! gateway running in this process, over TLS on a loopback port, with its
//! real database. Each typed method's happy path is called and its effect
//! read back through another method, so the client and the gateway are
//! proven to agree on paths, methods, bodies and answers.
//!
//! `crates/client/src/wire_tests.rs` keeps a scripted fake gateway only for
//! answers the real one never gives (see there).

use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use jumpgate_api_types as api;
use jumpgate_client::{Client, ClientError};

mod support;
use support::{Gateway, start_gateway};

const PW: &str = "wire-test-password-1";

impl Gateway {
    /// An administrator created offline (as `jumpgate admin create-user`
    /// does), logged in through the client.
    async fn admin(&self) -> Client {
        let db = jumpgate_server::admin::open(&self.data_dir, None)
            .await
            .unwrap();
        jumpgate_server::admin::create_user(&db, "chief", "admin", &[], PW)
            .await
            .unwrap();
        let login = self.client().login("chief", PW, None).await.unwrap();
        assert_eq!(
            (login.username.as_str(), login.role.as_str()),
            ("chief", "admin")
        );
        self.client().with_token(login.token)
    }

    async fn enroll(&self, c: &Client, name: &str, group: &str) -> api::EnrollResponse {
        let token = c
            .create_enroll_token(&api::CreateEnrollToken {
                group: Some(group.into()),
                ttl: Some("10m".into()),
            })
            .await
            .unwrap();
        assert_eq!(token.group, group);
        assert!(token.token.starts_with("jge_"), "{}", token.token);
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let key = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        self.client()
            .enroll(&api::EnrollRequest {
                token: token.token,
                name: name.into(),
                public_key: base64::engine::general_purpose::STANDARD
                    .encode(key.public_key().as_ref()),
                details: api::EndpointDetails {
                    hostname: "host-1".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    agent_version: "1".into(),
                },
            })
            .await
            .unwrap()
    }
}

/// RFC 4648 base32 (no padding).
fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap() as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps) for one time step.
fn totp(secret: &[u8], step: u64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

fn step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, api::ErrorCode, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn self_service_routes_against_the_real_gateway() {
    let gw = start_gateway().await;
    let admin = gw.admin().await;
    let me = admin.me().await.unwrap();
    assert_eq!((me.username.as_str(), me.role.as_str()), ("chief", "admin"));
    assert!(!me.mfa_enabled && !me.password_change_required);
    assert!(me.permissions.iter().any(|p| p == "manage-users"), "{me:?}");

    // A password change ends the session (the client sees 401 after it).
    admin
        .change_password(&api::ChangePassword {
            current_password: PW.into(),
            new_password: "a-new-wire-password-2".into(),
        })
        .await
        .unwrap();
    assert_eq!(api_error(admin.me().await).0, 401);
    let login = gw
        .client()
        .login("chief", "a-new-wire-password-2", None)
        .await
        .unwrap();
    let c = gw.client().with_token(login.token);

    // TOTP: enroll, confirm (with the previous step's code, so that the
    // current one is still fresh for the login below), log in with a code.
    let enrollment = c.begin_totp().await.unwrap();
    assert!(enrollment.otpauth_url.starts_with("otpauth://totp/"));
    assert!(enrollment.qr_svg.contains("<svg"));
    let secret = base32_decode(&enrollment.secret);
    assert_eq!(secret.len(), 20);
    let step = step_now();
    let codes = c
        .confirm_totp(&totp(&secret, step - 1))
        .await
        .unwrap()
        .codes;
    assert!(codes.len() >= 8, "{} recovery codes", codes.len());
    assert!(c.me().await.unwrap().mfa_enabled);
    let err = api_error(
        gw.client()
            .login("chief", "a-new-wire-password-2", None)
            .await,
    );
    assert_eq!((err.0, err.1.as_str()), (401, "mfa_required"));
    let login = gw
        .client()
        .login("chief", "a-new-wire-password-2", Some(&totp(&secret, step)))
        .await
        .unwrap();
    let c = gw.client().with_token(login.token);
    // New recovery codes (proved with a recovery code), then MFA off.
    let fresh = c.new_recovery_codes(&codes[0]).await.unwrap().codes;
    assert_eq!(fresh.len(), codes.len());
    assert!(fresh.iter().all(|f| !codes.contains(f)));
    c.disable_mfa(&fresh[0]).await.unwrap();
    assert!(!c.me().await.unwrap().mfa_enabled);

    c.logout().await.unwrap();
    assert_eq!(api_error(c.me().await).0, 401);
}

#[tokio::test]
async fn user_role_and_group_routes_against_the_real_gateway() {
    let gw = start_gateway().await;
    let c = gw.admin().await;

    let group = c
        .create_group(&api::CreateGroup {
            name: "lab".into(),
            description: "d".into(),
            consent: None,
        })
        .await
        .unwrap();
    assert_eq!((group.name.as_str(), group.endpoints), ("lab", 0));
    assert!(c.groups().await.unwrap().iter().any(|g| g.name == "lab"));

    let role = c
        .create_role(&api::CreateRole {
            name: "ops".into(),
            description: String::new(),
            permissions: vec!["view".into()],
        })
        .await
        .unwrap();
    assert_eq!(role.permissions, ["view"]);
    let role = c
        .update_role(
            "ops",
            &api::UpdateRole {
                permissions: Some(vec!["view".into(), "shell".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(role.permissions, ["view", "shell"]);
    assert!(
        c.roles()
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == "ops" && r.permissions.len() == 2)
    );

    let bob = c
        .create_user(&api::CreateUser {
            username: "bob".into(),
            password: "first-passphrase-for-b-1".into(),
            role: "technician".into(),
            groups: vec!["lab".into()],
            email: Some("bob@example.com".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (bob.username.as_str(), bob.role.as_str(), bob.groups.clone()),
        ("bob", "technician", vec!["lab".to_owned()])
    );
    assert!(c.users().await.unwrap().iter().any(|u| u.username == "bob"));
    let bob = c
        .update_user(
            "bob",
            &api::UpdateUser {
                role: Some("ops".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bob.role, "ops");
    assert_eq!(c.user("bob").await.unwrap().role, "ops");
    // A name with a space is sent encoded and arrives decoded.
    let (status, _, message) = api_error(c.user("a b").await);
    assert_eq!(status, 404);
    assert!(message.contains("`a b`"), "{message}");

    // The administrator's password for bob replaces his.
    c.set_user_password("bob", "second-passphrase-for-b-2")
        .await
        .unwrap();
    assert_eq!(
        api_error(
            gw.client()
                .login("bob", "first-passphrase-for-b-1", None)
                .await
        )
        .0,
        401
    );
    let bob_login = gw
        .client()
        .login("bob", "second-passphrase-for-b-2", None)
        .await
        .unwrap();
    let as_bob = gw.client().with_token(bob_login.token);
    assert_eq!(as_bob.me().await.unwrap().username, "bob");
    // Bob may not manage users: the gateway's refusal, typed.
    let (status, code, _) = api_error(as_bob.users().await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    c.revoke_user_sessions("bob").await.unwrap();
    assert_eq!(api_error(as_bob.me().await).0, 401);
    c.unlock_user("bob").await.unwrap();
    c.reset_user_mfa("bob").await.unwrap();
    c.delete_user("bob").await.unwrap();
    assert_eq!(api_error(c.user("bob").await).0, 404);

    c.delete_role("ops").await.unwrap();
    assert!(c.roles().await.unwrap().iter().all(|r| r.name != "ops"));
    c.delete_group("lab").await.unwrap();
    assert!(c.groups().await.unwrap().iter().all(|g| g.name != "lab"));
}

#[tokio::test]
async fn endpoint_client_and_settings_routes_against_the_real_gateway() {
    let gw = start_gateway().await;
    let c = gw.admin().await;
    for g in ["prod", "lab"] {
        c.create_group(&api::CreateGroup {
            name: g.into(),
            description: String::new(),
            consent: None,
        })
        .await
        .unwrap();
    }
    let enrolled = gw.enroll(&c, "web-01", "lab").await;
    assert_eq!(
        (enrolled.endpoint.as_str(), enrolled.group.as_str()),
        ("web-01", "lab")
    );
    let eps = c.endpoints().await.unwrap();
    let ep = eps.iter().find(|e| e.name == "web-01").unwrap();
    assert_eq!(
        (ep.group.as_str(), ep.online, ep.os.as_str()),
        ("lab", false, "linux")
    );
    let moved = c.set_endpoint_group("web-01", "prod").await.unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.group.as_str()),
        ("web-01", "prod")
    );
    c.revoke_endpoint("web-01").await.unwrap();
    assert!(
        c.endpoints()
            .await
            .unwrap()
            .iter()
            .all(|e| e.name != "web-01")
    );

    let secret = c
        .create_api_client(&api::CreateApiClient {
            name: "ci".into(),
            scopes: vec!["read".into(), "write".into()],
            role: "auditor".into(),
            groups: vec![],
        })
        .await
        .unwrap();
    let listed = c.api_clients().await.unwrap();
    let ci = listed.iter().find(|a| a.name == "ci").unwrap();
    assert_eq!(ci.client_id, secret.client_id);
    assert_eq!(ci.scopes, ["read", "write"]);
    let token = gw
        .client()
        .oauth2_token(&secret.client_id, &secret.client_secret, Some("read"))
        .await
        .unwrap();
    assert_eq!(token.scope, "read");
    let as_ci = gw.client().with_token(&token.access_token);
    assert!(as_ci.audit(None, None, Some(5)).await.unwrap().len() <= 5);
    let rotated = c.rotate_api_client("ci").await.unwrap();
    assert_eq!(rotated.client_id, secret.client_id);
    assert_ne!(rotated.client_secret, secret.client_secret);
    let (status, code, _) = api_error(
        gw.client()
            .oauth2_token(&secret.client_id, &secret.client_secret, None)
            .await,
    );
    assert_eq!((status, code.as_str()), (401, "invalid_client"));
    c.delete_api_client("ci").await.unwrap();
    assert!(c.api_clients().await.unwrap().is_empty());

    let mut settings = c.security_settings().await.unwrap();
    settings.lockout_threshold = 7;
    settings.password_min_length = 14;
    let saved = c.set_security_settings(&settings).await.unwrap();
    assert_eq!(saved, settings);
    assert_eq!(c.security_settings().await.unwrap(), settings);

    // The audit log saw all of it.
    let events = c.audit(None, None, None).await.unwrap();
    for action in ["api-client-create", "api-client-rotate", "settings-change"] {
        assert!(
            events.iter().any(|e| e.action == action),
            "{action}: {events:?}"
        );
    }
}
