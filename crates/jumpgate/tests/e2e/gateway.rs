//! The TLS port, the redirect port, configuration, and protocol abuse.

use base64::Engine;
use bytes::BytesMut;
use jumpgate_net::dial;
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::control::{self, AGENT_ALPN, Control, Hello};
use jumpgate_proto::frame::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

async fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl must be installed (the test script installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_accepted() {
    let site = Site::start().await;
    let addr = site.gateway.addr;
    for (flag, expect) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(addr, &[flag]).await;
        assert!(ok, "{flag} refused:\n{text}");
        assert!(text.contains(&format!("New, {expect}")), "{flag}:\n{text}");
    }
    // Lower the client's security level so it really offers TLS 1.1 (and
    // 1.0): the refusal must come from the gateway.
    for flag in ["-tls1_1", "-tls1"] {
        let (ok, text) = s_client(addr, &[flag, "-cipher", "DEFAULT:@SECLEVEL=0"]).await;
        assert!(!ok, "{flag} accepted:\n{text}");
        // The client sent its hello and the gateway answered with an alert
        // (rustls: handshake_failure), not a server hello.
        assert!(
            text.contains("SSL alert number"),
            "{flag}: refused for another reason:\n{text}"
        );
        assert!(text.contains("Cipher is (NONE)"), "{flag}:\n{text}");
    }
}

#[tokio::test]
async fn redirect_port_sends_everything_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &dir.path().join("d"),
        &[
            "--redirect-listen",
            "127.0.0.1:0",
            "--hostname",
            "support.example.com",
        ],
    )
    .await;
    let redirect = gw.redirect.expect("redirect address printed");
    let mut s = tokio::net::TcpStream::connect(redirect).await.unwrap();
    // The Host header is the client's to choose: the redirect goes to the
    // configured host name whatever it says.
    s.write_all(b"POST /api/v1/endpoints?x=1 HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).await.unwrap();
    assert!(res.starts_with("HTTP/1.1 308"), "{res}");
    let location = format!(
        "location: https://support.example.com:{}/api/v1/endpoints?x=1",
        gw.addr.port()
    );
    assert!(res.to_ascii_lowercase().contains(&location), "{res}");
}

#[tokio::test]
async fn invalid_config_is_refused_before_binding_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // The configured port stays taken by this test while the gateway runs:
    // a gateway that bound before validating would fail on the taken port
    // ("address in use"), not on the bad key, and with another exit code.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    let cfg = dir.path().join("jumpgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n[agents]\nheartbeat = \"soon\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(jumpgate_bin())
        .args(["server", "--config", cfg.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agents.heartbeat"), "{err}");
    assert!(!err.contains("in use"), "{err}");
    // No site was created.
    assert!(!dir.path().join("d").exists());
    // The control: with a valid configuration, the same taken port is what
    // the gateway reports.
    let valid = dir.path().join("valid.toml");
    std::fs::write(
        &valid,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("v").display()
        ),
    )
    .unwrap();
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(jumpgate_bin())
            .args(["server", "--config", valid.to_str().unwrap()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a gateway on a taken port did not give up")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port.to_string()), "{err}");
    drop(probe);

    std::fs::write(&cfg, "data_dir = \"/x\"\nlistne = \"x\"\n").unwrap();
    let out = tokio::process::Command::new(jumpgate_bin())
        .args(["server", "--config", cfg.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));
}

#[tokio::test]
async fn a_second_gateway_on_the_same_data_dir_is_refused() {
    let site = Site::start().await;
    let out = tokio::process::Command::new(jumpgate_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(site.data_dir())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
}

async fn agent_tls(site: &Site) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let fp = site.gateway.fingerprint.parse().unwrap();
    let cfg = tls::client_config(&Trust::Pinned(fp), &[AGENT_ALPN]).unwrap();
    let url: dial::ServerUrl = site.gateway.url().parse().unwrap();
    dial::connect_tls(&url, cfg, None).await.unwrap()
}

async fn read_closed(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(WAIT, tls.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "gateway kept a misbehaving connection open");
    got
}

/// Malformed and oversized frames close that connection, with a logged
/// reason, and never take the gateway down.
#[tokio::test]
async fn malformed_and_oversized_frames_close_only_that_connection() {
    let site = Site::start().await;

    // Before the handshake: garbage, then an oversized control frame.
    let mut t = agent_tls(&site).await;
    t.write_all(&[0xff; 12]).await.unwrap();
    read_closed(&mut t).await;
    let mut t = agent_tls(&site).await;
    let mut header = vec![9u8, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&(64u32 << 20).to_be_bytes());
    t.write_all(&header).await.unwrap();
    read_closed(&mut t).await;

    // After a valid handshake by an enrolled agent.
    let key =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap();
    let key = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(key.as_ref()).unwrap();
    use aws_lc_rs::signature::KeyPair;
    let token = site.enroll_token(&[]).await;
    let trust = Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let client =
        jumpgate_client::Client::new(site.gateway.url().parse().unwrap(), &trust, None).unwrap();
    let enrolled = client
        .enroll(&jumpgate_api_types::EnrollRequest {
            token,
            name: "raw".into(),
            public_key: base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref()),
            details: Default::default(),
        })
        .await
        .unwrap();
    let mut t = agent_tls(&site).await;
    let exporter = t
        .get_ref()
        .1
        .export_keying_material([0u8; 32], control::AUTH_EXPORTER_LABEL, None)
        .unwrap();
    let sig = key.sign(&control::auth_message(&enrolled.agent_id, &exporter));
    let hello = Control::Hello(Hello {
        versions: vec![1],
        agent_id: enrolled.agent_id.clone(),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        info: Default::default(),
    });
    let mut out = BytesMut::new();
    Frame::Control(hello.to_bytes().into()).encode(&mut out);
    t.write_all(&out).await.unwrap();
    site.wait_online("raw", true).await;
    // A data frame far over the size limit.
    let mut bad = vec![2u8, 0, 0, 0, 0, 0, 0, 1];
    bad.extend_from_slice(&(1u32 << 24).to_be_bytes());
    t.write_all(&bad).await.unwrap();
    let got = read_closed(&mut t).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("exceeds the limit"),
        "peer was not told why: {text:?}"
    );
    site.wait_online("raw", false).await;
    assert!(
        site.gateway.stderr.wait_for("protocol violation").await,
        "no logged reason:\n{}",
        site.gateway.stderr.text()
    );

    // A replayed hello (signature bound to another TLS session) is refused.
    let mut t2 = agent_tls(&site).await;
    t2.write_all(&out).await.unwrap();
    let got = read_closed(&mut t2).await;
    assert!(String::from_utf8_lossy(&got).contains("bad_signature"));

    // And the gateway still serves everyone else.
    assert!(
        site.endpoints()
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "raw")
    );
}
