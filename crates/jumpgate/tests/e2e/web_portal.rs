//! The support portal's own host name and certificate, and the portal's
//! page and the console's admin pages for queues and branding in Debian's
//! chromium (`tests/browser/portal.mjs`), against a real gateway:
//!
//! - with `--portal-tls-cert/--portal-tls-key`, a browser naming the
//!   portal (SNI) gets the portal's certificate, agents (ALPN
//!   `jumpgate-agent/1`) the site's whatever name they dial;
//! - without them, the generated certificate is issued for the portal's
//!   name too;
//! - on the portal's host only the portal is reachable: everything else
//!   answers exactly as an unknown path;
//! - the portal's POSTs refuse a foreign `Origin`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use jumpgate_api_types::support as sapi;
use jumpgate_net::tls::{Fingerprint, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use crate::support::{ADMIN, ADMIN_PASSWORD, Site, WAIT, ok};
use crate::web::{browser_dir, browser_prerequisites as chromium};

const PORTAL: &str = "support.localhost";
const AGENT_ALPN: &[u8] = jumpgate_proto::control::AGENT_ALPN;

/// A TLS connection to the gateway naming `sni`, offering `alpn`, trusting
/// `trust`; then, if `request` is given, one HTTP/1.1 exchange with
/// `Host: host` (`(status, head, body)`).
async fn dial(
    site: &Site,
    sni: &str,
    alpn: &[u8],
    cfg: Option<Arc<rustls::ClientConfig>>,
    trust: &Trust,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let cfg = match cfg {
        Some(c) => c,
        None => jumpgate_net::tls::client_config(trust, &[alpn]).unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(site.gateway.addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .expect("TLS handshake hung")
}

async fn exchange(
    site: &Site,
    trust: &Trust,
    host: &str,
    request: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let sni = host
        .split(':')
        .next()
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let sni = if sni.parse::<std::net::IpAddr>().is_ok() {
        "localhost".to_owned()
    } else {
        sni
    };
    let mut tls = dial(site, &sni, b"http/1.1", None, trust).await.unwrap();
    let head = format!(
        "{}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        request.trim_end(),
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw))
        .await
        .expect("the answer hung");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, head, raw[split + 4..].to_vec())
}

/// A certificate of the portal's own (self-signed here; a public CA's in
/// real life), written as PEM files.
fn portal_certificate(dir: &Path) -> (PathBuf, PathBuf, Fingerprint) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![PORTAL.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("portal.crt"), dir.join("portal.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, Fingerprint::of(cert.der()))
}

fn admin_client(site: &Site) -> jumpgate_client::Client {
    site.api_client()
        .with_token(site.saved_token(&site.jg_home()))
}

#[tokio::test]
async fn the_portal_host_gets_its_certificate_and_serves_the_portal_only() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, portal_fp) = portal_certificate(certs.path());
    let site = Site::start_with(&[
        "--portal-hostname",
        PORTAL,
        "--portal-tls-cert",
        cert.to_str().unwrap(),
        "--portal-tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let port = site.gateway.addr.port();
    let site_fp: Fingerprint = site.gateway.fingerprint.parse().unwrap();
    let portal_pin = Trust::Pinned(portal_fp);
    let site_pin = Trust::Pinned(site_fp);

    // A browser naming the portal gets the portal's certificate (the pin
    // is its leaf), and not the site's.
    dial(&site, PORTAL, b"http/1.1", None, &portal_pin)
        .await
        .expect("the portal's certificate for SNI = the portal");
    dial(&site, PORTAL, b"http/1.1", None, &site_pin)
        .await
        .expect_err("not the site's certificate for the portal's name");
    // Agents and the support client get the site's certificate whatever
    // name they dial, so their pin of the site CA holds.
    dial(&site, PORTAL, AGENT_ALPN, None, &site_pin)
        .await
        .expect("the site's certificate for the agents' protocol");
    dial(&site, PORTAL, AGENT_ALPN, None, &portal_pin)
        .await
        .expect_err("never the portal's for the agents' protocol");
    // The console's name: the site's.
    dial(&site, "localhost", b"http/1.1", None, &site_pin)
        .await
        .expect("the site's certificate for the console");

    // On the portal's host: the portal, and nothing else.
    let on_portal = format!("{PORTAL}:{port}");
    let console = format!("127.0.0.1:{port}");
    let (status, head, body) =
        exchange(&site, &portal_pin, &on_portal, "GET / HTTP/1.1", b"").await;
    assert_eq!(status, 200, "{head}");
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("/assets/portal.js"), "{html}");
    let (_, _, console_page) = exchange(&site, &site_pin, &console, "GET / HTTP/1.1", b"").await;
    assert!(String::from_utf8_lossy(&console_page).contains("/assets/app.js"));
    for path in [
        "/portal",
        "/assets/portal.js",
        "/assets/portal.css",
        "/portal/theme.css",
        "/api/v1/portal",
    ] {
        let (status, head, _) = exchange(
            &site,
            &portal_pin,
            &on_portal,
            &format!("GET {path} HTTP/1.1"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{path}: {head}");
    }
    let (_, _, unknown) = exchange(
        &site,
        &site_pin,
        &console,
        "GET /no/such/path HTTP/1.1",
        b"",
    )
    .await;
    let admin_token = site.saved_token(&site.jg_home());
    for request in [
        "GET /api/v1/users HTTP/1.1".to_owned(),
        format!("GET /api/v1/users HTTP/1.1\r\nAuthorization: Bearer {admin_token}"),
        "GET /api/v1/endpoints HTTP/1.1".to_owned(),
        "GET /api/v1/queues HTTP/1.1".to_owned(),
        "GET /api/v1/portal/settings HTTP/1.1".to_owned(),
        "GET /api/v1/me HTTP/1.1".to_owned(),
        "POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json".to_owned(),
        "GET /assets/app.js HTTP/1.1".to_owned(),
        "GET /healthz HTTP/1.1".to_owned(),
        "POST / HTTP/1.1".to_owned(),
    ] {
        let (status, head, body) = exchange(&site, &portal_pin, &on_portal, &request, b"").await;
        assert_eq!(status, 404, "{request}: {head}");
        assert_eq!(body, unknown, "{request}: not the unknown path's answer");
    }
    // The name decides, not the port or the case.
    let (status, _, _) = exchange(
        &site,
        &portal_pin,
        "Support.LOCALHOST.",
        "GET /api/v1/users HTTP/1.1",
        b"",
    )
    .await;
    assert_eq!(status, 404);
    // On the console's host: the console, and the portal at /portal.
    let (status, _, _) = exchange(
        &site,
        &site_pin,
        &console,
        "GET /api/v1/users HTTP/1.1",
        b"",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = exchange(&site, &site_pin, &console, "GET /portal HTTP/1.1", b"").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("/assets/portal.js"));

    // The portal's POSTs: a foreign Origin is refused before the key is
    // looked at; the portal's and the console's own origins, and no
    // Origin at all (jg, curl), pass to the key check.
    let key = br#"{"key":"000 000 0000"}"#;
    let post = |origin: Option<&str>| match origin {
        Some(o) => format!(
            "POST /api/v1/portal/key HTTP/1.1\r\nContent-Type: application/json\r\nOrigin: {o}"
        ),
        None => "POST /api/v1/portal/key HTTP/1.1\r\nContent-Type: application/json".to_owned(),
    };
    for foreign in [
        "https://evil.example",
        "null",
        "https://support.localhost:1",
    ] {
        let (status, head, body) =
            exchange(&site, &portal_pin, &on_portal, &post(Some(foreign)), key).await;
        assert_eq!(status, 403, "{foreign}: {head}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("another web site"), "{body}");
    }
    let form = br#"{"name":"Eve","problem":"x","queue":"none"}"#;
    let (status, _, _) = exchange(
        &site,
        &portal_pin,
        &on_portal,
        "POST /api/v1/portal/requests HTTP/1.1\r\nContent-Type: application/json\r\nOrigin: https://evil.example",
        form,
    )
    .await;
    assert_eq!(status, 403);
    for (trust, host, origin) in [
        (
            &portal_pin,
            &on_portal,
            Some(format!("https://{PORTAL}:{port}")),
        ),
        (
            &site_pin,
            &console,
            Some(format!("https://127.0.0.1:{port}")),
        ),
        (&portal_pin, &on_portal, None),
    ] {
        let (status, head, body) =
            exchange(&site, trust, host, &post(origin.as_deref()), key).await;
        assert_eq!(status, 404, "{origin:?}: {head}");
        assert!(
            String::from_utf8_lossy(&body).contains("invalid_session_key"),
            "{origin:?}"
        );
    }
}

#[tokio::test]
async fn without_its_own_files_the_generated_certificate_names_the_portal() {
    let site = Site::start_with(&["--portal-hostname", PORTAL]).await;
    // Verified as a browser would: the site CA as the root, names checked.
    let ca = std::fs::read(site.data_dir().join("tls/ca.crt")).unwrap();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(&ca).unwrap();
    let strict = || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(jumpgate_net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    };
    let any = Trust::SystemRoots;
    dial(&site, PORTAL, b"http/1.1", Some(strict()), &any)
        .await
        .expect("the generated certificate is valid for the portal's name");
    dial(&site, "localhost", b"http/1.1", Some(strict()), &any)
        .await
        .expect("and for the console's");
    dial(&site, "other.localhost", b"http/1.1", Some(strict()), &any)
        .await
        .expect_err("not for any name");
}

// --- The pages in chromium -----------------------------------------------

/// Upper bound for the whole browser run (it caps itself at 200 s too).
const BROWSER_RUN: Duration = Duration::from_secs(240);

#[tokio::test]
async fn the_portal_and_its_admin_pages_in_a_real_browser() {
    let chromium = chromium();
    let site = Site::start_with(&["--portal-hostname", PORTAL]).await;
    let admin = admin_client(&site);
    // The branding, set through the API; the browser checks the portal
    // shows it (and the admin page changes the logo).
    let branding = sapi::PortalSettings {
        site_name: "Acme Support".into(),
        colors: sapi::PortalColors {
            primary: "#0a6e4f".into(),
            background: "#f4f7f5".into(),
            text: "#14241d".into(),
        },
        texts: sapi::PortalTexts {
            welcome: "Hello! Our team helps you with your computer, right here.".into(),
            key_help: "Your technician gave you a key on the phone: type it here.".into(),
            form_help: "No key yet? Tell us what is wrong and we will call you up.".into(),
            privacy: "We see your screen only when you allow it. Sessions are logged.".into(),
        },
        logo: None,
    };
    admin.put_portal_settings(&branding).await.unwrap();
    let pw = site.password_file("tina.pw", "helps-customers-daily-7");
    ok(&site
        .jg(&[
            "admin",
            "users",
            "create",
            "tina",
            "--role",
            "technician",
            "--groups",
            "default",
            "--password-file",
            pw.to_str().unwrap(),
        ])
        .await);
    admin
        .create_queue(&sapi::CreateQueue {
            name: "helpdesk".into(),
            description: "Printers, passwords and e-mail".into(),
            group: "default".into(),
            public: true,
            auto_assign: false,
            max_waiting: None,
            members: vec!["tina".into()],
        })
        .await
        .unwrap();
    let tina_home = site.home("tina");
    ok(&site
        .try_login_in(&tina_home, "tina", "helps-customers-daily-7", &[])
        .await);
    let tina = site.api_client().with_token(site.saved_token(&tina_home));
    let key = tina
        .create_support_key(&sapi::CreateSupportKey {
            queue: Some("helpdesk".into()),
            ttl: Some("10m".into()),
        })
        .await
        .unwrap();

    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts/portal");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let port = site.gateway.addr.port();
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("portal.mjs"))
        .current_dir(browser_dir())
        .env("JG_URL", site.gateway.url())
        .env("JG_PORTAL_URL", format!("https://{PORTAL}:{port}"))
        .env("JG_PORTAL_HOST", PORTAL)
        .env("JG_ADMIN", ADMIN)
        .env("JG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("JG_KEY", &key.key)
        .env("JG_SITE_NAME", &branding.site_name)
        .env("JG_PRIMARY", &branding.colors.primary)
        .env("JG_WELCOME", &branding.texts.welcome)
        .env("JG_ARTIFACTS", &artifacts)
        .env("JG_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_RUN, cmd.output())
        .await
        .expect("the browser test hung")
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway log:\n{}\nscreenshots: {}",
        out.status,
        site.gateway.stderr.text(),
        artifacts.display()
    );
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("PORTAL-TEST PASSED"), "{report}");

    // What the admin pages did is in the gateway: the queue made and
    // edited in the browser, the logo uploaded there.
    let queues = admin.queues().await.unwrap();
    let printers = queues
        .iter()
        .find(|q| q.name == "printers")
        .unwrap_or_else(|| panic!("no queue made in the browser: {queues:?}"));
    assert_eq!(
        (
            printers.group.as_str(),
            printers.members.as_slice(),
            printers.auto_assign,
            printers.max_waiting
        ),
        ("default", &["tina".to_owned()][..], true, 5),
        "{printers:?}"
    );
    let settings = admin.portal_settings().await.unwrap();
    assert!(settings.logo.is_some(), "the logo uploaded in the browser");
    assert_eq!(settings.site_name, "Acme Support");
    assert_eq!(settings.colors.primary, "#0a6e4f");
    // The key and the form both made a support session; the form's names
    // its customer and queue.
    let sessions = tina.support_sessions(None, None).await.unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s.customer == "Dana Browser" && s.queue == "printers" && s.origin == "form"),
        "{sessions:?}"
    );
    assert!(sessions.iter().any(|s| s.origin == "key"), "{sessions:?}");
}
