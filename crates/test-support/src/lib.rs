//! What Jumpgate's tests share (a dev-dependency only).
//!
//! # Layout
//! - [`Gateway`] (`gateway.rs`): a real `jumpgate server` process on a
//!   loopback port picked at run time; its addresses and fingerprint come
//!   from the file it writes once listening (`--listen-address-file`),
//!   not from its standard output.
//! - [`Site`] (`site.rs`): a data directory, its gateway, an administrator
//!   logged in with `jg`, and agents ([`Agent`]) enrolled into it;
//!   [`Site::builder`] chooses the engine and flags.
//! - [`Engine`], [`PgDatabase`], [`for_each_engine`] (`engine.rs`): SQLite
//!   or PostgreSQL, and a fresh database per PostgreSQL gateway on the
//!   server of `JUMPGATE_TEST_POSTGRES`.
//! - [`xvfb::Xvfb`] (`xvfb.rs`): a real X display (Xvfb, optionally with
//!   openbox) on a display number claimed at run time, with xdotool/xwd
//!   helpers, for the desktop and consent tests.
//! - [`s3::SeaweedFs`] (`s3.rs`): a real S3 server (SeaweedFS) on loopback
//!   ports picked at run time, and awscli to act on its buckets.
//! - [`azurite::Azurite`] (`azurite.rs`): a real Azure Blob service
//!   (Azurite) on a loopback port picked at run time, with a container.
//! - Protocol helpers: raw HTTP exchanges, TOTP codes, an echo server, the
//!   proxy side of `CONNECT` (`http.rs`, `totp.rs`).
//!
//! The binaries are the ones cargo built for the running test
//! (`CARGO_BIN_EXE_*`), or those next to the test executable.

use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

pub mod assist;
pub mod azurite;
mod engine;
mod gateway;
mod http;
mod pg_tls;
mod ports;
pub mod s3;
mod site;
mod totp;
pub mod xvfb;

pub use engine::{ENGINE_ENV, Engine, POSTGRES_ENV, PgDatabase, for_each_engine, postgres_server};
pub use gateway::{Gateway, ListenAddresses, signal};
pub use http::{echo_server, http_exchange, open_connect_tunnel, raw_call};
pub use pg_tls::TlsPostgres;
pub use ports::{free_port, free_ports};
pub use site::{Agent, MfaEnrollment, Site, SiteBuilder};
pub use totp::{TOTP_STEP_SECS, base32_decode, totp, totp_step_now};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";
/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `jumpgate` binary.
pub fn jumpgate_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| binary("jumpgate"))
}

/// The `jumpgate-assist` binary: the lean customer client the portal
/// offers (it sits next to `jumpgate`).
pub fn assist_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| binary("jumpgate-assist"))
}

/// The `jg` binary.
pub fn jg_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| binary("jg"))
}

/// Cargo tells a test where the binaries of its package are
/// (`CARGO_BIN_EXE_<name>`, set while the test runs); failing that, they
/// are next to the test executable's `deps/` directory.
fn binary(name: &str) -> String {
    if let Ok(path) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no `{name}` binary next to {}: run the test with cargo from the jumpgate package",
                exe.display()
            )
        });
    path.into_os_string()
        .into_string()
        .expect("a UTF-8 binary path")
}

/// Collects a child's output in the background (so pipes never fill) and
/// keeps it for assertions and failure messages.
#[derive(Clone, Debug, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Appends `r`'s lines until its end; the task ends with it.
    pub fn drain<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        r: R,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut l = log.0.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_for(&self, needle: &str) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure and returns stderr.
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded:\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Spawns `cmd`, whose program this test process has just written (a
/// download, a copy). Until every child forked by another thread while the
/// file was open for writing has called exec (which closes the inherited
/// descriptor), exec of the file fails with `ETXTBSY`: try again, polling
/// until [`WAIT`].
///
/// # Panics
/// Any other spawn error, or still busy after [`WAIT`].
pub async fn spawn_written(cmd: &mut tokio::process::Command) -> tokio::process::Child {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still `text file busy` after {WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("spawning {cmd:?}: {e}"),
        }
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
