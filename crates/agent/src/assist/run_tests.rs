//! The customer client as the customer runs it: a downloaded file (this
//! test binary with a trailer appended) run as its own process under Xvfb,
//! its window child a real process, against a stand-in for the gateway's
//! side on loopback (real TLS with a pinned certificate, the real
//! handshake checked, the real mux). The window is driven with xdotool.
//! Checks: a command allowed through the window runs and dies when the
//! customer revokes it, the rating reaches the gateway, and after exit the
//! downloaded file is gone (kept with `--keep`) and no file was written
//! in HOME, TMPDIR, the XDG directories or /dev/shm.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use bytes::BytesMut;
use jumpgate_net::handshake;
use jumpgate_net::mux::{self, DriverConfig, MuxEvent, MuxEvents, MuxHandle};
use jumpgate_net::session::MsgStream;
use jumpgate_net::tls::Fingerprint;
use jumpgate_proto::assist::{
    AssistMsg, Participant, ParticipantRole, Right, SupportState, Trailer,
};
use jumpgate_proto::control::{
    self, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN, AssistWelcome, Control, Reject, RejectCode,
};
use jumpgate_proto::mux::Role;
use jumpgate_proto::session::{SessionMsg, SessionRequest};
use jumpgate_test_support::xvfb::{WAIT, Xvfb, have_tools};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::timeout;

const CLIENT_ENV: &str = "JUMPGATE_TEST_ASSIST_CLIENT";
const UI_ENV: &str = "JUMPGATE_TEST_ASSIST_UI";
const TITLE: &str = "^Jumpgate: remote support$";

fn harness_args(test: &str) -> Vec<String> {
    ["--exact", test, "--nocapture", "--test-threads=1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// The window child's body when this binary is run as one.
#[test]
fn ui_child() {
    if std::env::var_os(UI_ENV).is_none() {
        return;
    }
    super::run_ui().expect("window child");
}

/// The client's body when this binary (a "downloaded" copy) is run as one:
/// what `jumpgate assist [--keep]` does.
#[test]
fn client_child() {
    let Some(ui_exe) = std::env::var_os(CLIENT_ENV) else {
        return;
    };
    let flags = super::AssistFlags {
        keep: std::env::var_os("JUMPGATE_TEST_ASSIST_KEEP").is_some(),
        ..super::AssistFlags::default()
    };
    let mut opts = super::options(&flags).expect("options from the trailer");
    opts.ui_command = Some((
        PathBuf::from(ui_exe),
        harness_args("assist::run_tests::ui_child"),
    ));
    opts.ui_env = vec![(UI_ENV.to_owned(), "1".to_owned())];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(super::run(opts, tokio_util::sync::CancellationToken::new()));
    drop(rt);
    if let Err(e) = result {
        eprintln!("client: {e}");
        std::process::exit(3);
    }
}

/// A self-signed certificate for 127.0.0.1 made by openssl, and its pin.
fn certificate(
    dir: &Path,
) -> (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Fingerprint,
) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    let chain: Vec<_> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let pin = Fingerprint::of(&chain[0]);
    (chain, key, pin)
}

/// Every file and directory under `dirs` (the customer's directories).
fn listing(dirs: &[&Path]) -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.insert(e.path());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for d in dirs {
        walk(d, &mut out);
    }
    out
}

/// The gateway's end of one client connection, after the handshake.
struct Gateway {
    handle: MuxHandle,
    events: MuxEvents,
}

impl Gateway {
    /// Accepts one connection, checks the hello (ticket, signature over
    /// this TLS session), answers `answer` (`None`: welcome).
    async fn accept(
        listener: &TcpListener,
        config: Arc<rustls::ServerConfig>,
        ticket: &str,
        answer: Option<Reject>,
    ) -> Option<Self> {
        let (tcp, _) = timeout(WAIT, listener.accept())
            .await
            .expect("the client dials")
            .unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .unwrap();
        let exporter = tls
            .get_ref()
            .1
            .export_keying_material([0u8; AUTH_EXPORTER_LEN], AUTH_EXPORTER_LABEL, None)
            .unwrap();
        let mut buf = BytesMut::new();
        let Control::AssistHello(hello) = handshake::read_control_frame(&mut tls, &mut buf)
            .await
            .unwrap()
        else {
            panic!("not an assist hello")
        };
        assert_eq!(hello.ticket.as_deref(), Some(ticket));
        let b64 = base64::engine::general_purpose::STANDARD;
        let public = b64.decode(&hello.public_key).unwrap();
        let sig = b64.decode(&hello.signature).unwrap();
        UnparsedPublicKey::new(&ED25519, &public)
            .verify(&control::assist_auth_message(&public, &exporter), &sig)
            .expect("the hello is signed over this TLS session");
        if let Some(reject) = answer {
            handshake::write_control(&mut tls, &Control::Reject(reject))
                .await
                .unwrap();
            let _ = tls.shutdown().await;
            return None;
        }
        let welcome = Control::AssistWelcome(AssistWelcome {
            version: 1,
            support_id: "sup_test".into(),
            heartbeat_secs: 30,
            site: "Acme IT Support".into(),
            queue: "helpdesk".into(),
            customer: "Carol".into(),
        });
        handshake::write_control(&mut tls, &welcome).await.unwrap();
        let (handle, events, driver) =
            mux::start(tls, Role::Gateway, &buf, DriverConfig::default()).unwrap();
        tokio::spawn(driver);
        Some(Self { handle, events })
    }

    fn send(&self, m: AssistMsg) {
        self.handle.send_control(&Control::Assist(m));
    }

    /// The next attended-support message matching `f`.
    async fn expect(&mut self, what: &str, f: impl Fn(&AssistMsg) -> bool) -> AssistMsg {
        let next = async {
            loop {
                match self.events.recv().await {
                    Some(MuxEvent::Control(Control::Assist(m))) if f(&m) => return m,
                    Some(_) => {}
                    None => panic!("the client hung up waiting for {what}"),
                }
            }
        };
        timeout(WAIT, next)
            .await
            .unwrap_or_else(|_| panic!("no {what}"))
    }
}

fn click_when(x: &Xvfb, w: &str, button: &str) {
    x.poll(&format!("button {button}"), || {
        x.prop(w, "_JUMPGATE_BUTTONS")
            .is_some_and(|b| b.split(';').any(|e| e.starts_with(&format!("{button} "))))
            .then_some(())
    });
    x.click(w, button);
}

/// The customer's world: a home, TMPDIR and XDG directories of its own,
/// and the download.
struct Customer {
    _root: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    download: PathBuf,
}

impl Customer {
    fn new(trailer: &Trailer) -> Self {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["home", "tmp", "runtime", "cache", "config", "data", "state"]
            .iter()
            .map(|d| root.path().join(d))
            .collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(dirs[0].join(".profile"), b"# the customer's\n").unwrap();
        let download = dirs[0].join("Downloads/jumpgate-support");
        std::fs::create_dir(download.parent().unwrap()).unwrap();
        std::fs::copy(std::env::current_exe().unwrap(), &download).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&download)
            .unwrap();
        f.write_all(&trailer.encode()).unwrap();
        Self {
            _root: root,
            dirs,
            download,
        }
    }

    fn listing(&self) -> BTreeSet<PathBuf> {
        let refs: Vec<&Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        listing(&refs)
    }

    fn run(&self, x: &Xvfb, keep: bool) -> Child {
        let mut cmd = Command::new(&self.download);
        cmd.args(harness_args("assist::run_tests::client_child"))
            .env(CLIENT_ENV, std::env::current_exe().unwrap())
            .env("DISPLAY", &x.display)
            .env_remove("XAUTHORITY")
            .env("HOME", &self.dirs[0])
            .env("TMPDIR", &self.dirs[1])
            .env("XDG_RUNTIME_DIR", &self.dirs[2])
            .env("XDG_CACHE_HOME", &self.dirs[3])
            .env("XDG_CONFIG_HOME", &self.dirs[4])
            .env("XDG_DATA_HOME", &self.dirs[5])
            .env("XDG_STATE_HOME", &self.dirs[6])
            .current_dir(&self.dirs[0])
            .stdout(Stdio::null());
        if keep {
            cmd.env("JUMPGATE_TEST_ASSIST_KEEP", "1");
        }
        cmd.spawn().expect("the download runs")
    }
}

/// The client process, killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shm() -> BTreeSet<PathBuf> {
    listing(&[Path::new("/dev/shm")])
}

/// Files the process `pid` has open outside pipes, sockets and devices.
fn open_files(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .filter(|p| {
                    !p.starts_with("pipe:")
                        && !p.starts_with("socket:")
                        && !p.starts_with("anon_inode:")
                        && !p.starts_with("/dev/")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_client_serves_what_the_customer_allows_and_leaves_nothing() {
    assert!(
        have_tools(),
        "the X tools (Xvfb, xdotool, openbox…) are installed"
    );
    let x = Xvfb::start();
    let certs = tempfile::tempdir().unwrap();
    let (chain, key, pin) = certificate(certs.path());
    let config = jumpgate_net::tls::server_config(chain, key, &[control::AGENT_ALPN]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let trailer = Trailer {
        v: 1,
        url: format!("https://127.0.0.1:{port}"),
        fingerprint: pin.to_string(),
        ticket: "jga_test_ticket".into(),
        site: "Acme IT Support".into(),
        support_id: "sup_test".into(),
        expires_at_ms: 0,
    };
    let customer = Customer::new(&trailer);
    let before = customer.listing();
    let shm_before = shm();

    let mut client = Running(customer.run(&x, false));
    let mut gw = Gateway::accept(&listener, Arc::clone(&config), &trailer.ticket, None)
        .await
        .expect("welcomed");
    assert_eq!(
        gw.expect("the mirrored grants", |m| matches!(
            m,
            AssistMsg::Granted { .. }
        ))
        .await,
        AssistMsg::Granted {
            rights: Default::default()
        }
    );
    gw.send(AssistMsg::Status {
        state: SupportState::Active,
        queue: "helpdesk".into(),
        position: None,
    });
    gw.send(AssistMsg::Participants {
        list: vec![Participant {
            name: "alice".into(),
            role: ParticipantRole::Owner,
        }],
    });

    // Before the customer allows anything, a command is refused.
    let argv = ["sleep", "4711.5"];
    let exec = SessionRequest::Exec {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut stream = MsgStream::new(gw.handle.open().unwrap());
    stream
        .write_msg(&SessionMsg::Open(exec.clone()))
        .await
        .unwrap();
    assert!(matches!(
        read_msg(&mut stream).await,
        SessionMsg::Refused(_)
    ));
    drop(stream);

    // The technician asks; the customer allows in the window.
    gw.send(AssistMsg::Ask {
        id: 1,
        right: Right::Shell,
        technician: "alice".into(),
    });
    let w = x.window(TITLE);
    click_when(&x, &w, "allow");
    gw.expect("the answer", |m| {
        *m == AssistMsg::Answer {
            id: 1,
            allowed: true,
        }
    })
    .await;
    gw.expect(
        "the grants",
        |m| matches!(m, AssistMsg::Granted { rights } if rights.contains(Right::Shell)),
    )
    .await;
    let mut stream = MsgStream::new(gw.handle.open().unwrap());
    stream.write_msg(&SessionMsg::Open(exec)).await.unwrap();
    assert!(matches!(
        read_msg(&mut stream).await,
        SessionMsg::Accepted(_)
    ));
    let pid = x.poll("the command running", || find_process(&argv));
    // While the command starts, the dynamic loader holds each library it
    // maps open for a moment (seen: libc.so.6): what stays open is what
    // counts, so the check is polled with a deadline. A file the client
    // keeps open stays in the list and fails it.
    let download = customer.download.display().to_string();
    let allowed = |f: &String| f.starts_with("/proc") || f == &download;
    for p in [client.0.id(), pid] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut files = open_files(p);
        while !files.iter().all(allowed) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            files = open_files(p);
        }
        assert!(files.iter().all(allowed), "open files of {p}: {files:?}");
    }

    // The customer revokes it: the command dies, the technician is told.
    click_when(&x, &w, "switch-shell");
    gw.expect("the revocation", |m| {
        *m == AssistMsg::Revoke {
            right: Right::Shell,
        }
    })
    .await;
    match read_msg(&mut stream).await {
        SessionMsg::Closed { reason } => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    x.poll("the command gone", || {
        find_process(&argv).is_none().then_some(())
    });

    // The technician ends; the customer rates.
    gw.send(AssistMsg::End {
        reason: "alice ended the session".into(),
    });
    click_when(&x, &w, "star-5");
    x.poll("five stars", || {
        x.prop(&w, "_JUMPGATE_STATUS")
            .is_some_and(|s| s.contains("stars=5"))
            .then_some(())
    });
    click_when(&x, &w, "submit");
    gw.expect("the rating", |m| {
        matches!(m, AssistMsg::Rating { stars: 5, .. })
    })
    .await;
    let status = wait_exit(&mut client.0);
    assert!(status.success(), "{status:?}");

    // Nothing stays.
    x.poll("the window gone", || {
        x.windows(TITLE).is_empty().then_some(())
    });
    assert!(!customer.download.exists(), "the download removed itself");
    let mut after = customer.listing();
    after.insert(customer.download.clone());
    assert_eq!(after, before, "files written in the customer's directories");
    let new_shm: Vec<_> = shm().difference(&shm_before).cloned().collect();
    assert!(
        new_shm
            .iter()
            .all(|p| !p.display().to_string().contains("jumpgate")),
        "{new_shm:?}"
    );

    // With --keep, and a ticket the site refuses: the message, then the
    // end; the file stays.
    let customer = Customer::new(&trailer);
    let mut client = Running(customer.run(&x, true));
    let refused = Gateway::accept(
        &listener,
        config,
        &trailer.ticket,
        Some(Reject {
            code: RejectCode::InvalidTicket,
            message: "this link was already used".into(),
        }),
    )
    .await;
    assert!(refused.is_none());
    let w = x.window(TITLE);
    x.poll("the refusal shown", || {
        x.prop(&w, "_JUMPGATE_STATUS")
            .is_some_and(|s| s.contains("screen=ended"))
            .then_some(())
    });
    click_when(&x, &w, "close");
    let status = wait_exit(&mut client.0);
    assert_eq!(status.code(), Some(3), "a refused session is an error");
    assert!(customer.download.exists(), "--keep keeps the download");
}

async fn read_msg(stream: &mut MsgStream<jumpgate_net::mux::MuxStream>) -> SessionMsg {
    timeout(WAIT, stream.read_msg())
        .await
        .expect("a session message")
        .expect("a whole message")
        .expect("the stream ended")
}

/// A process running exactly `argv`.
fn find_process(argv: &[&str]) -> Option<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        (std::fs::read(format!("/proc/{pid}/cmdline")).ok()? == want).then_some(pid)
    })
}
