//! A real Azure Blob service for tests: Azurite (npm, pinned in
//! `crates/server/tests/azurite`, installed by `scripts/test`) on a
//! loopback port picked at run time, its data in a temporary directory,
//! with a container made through one Shared Key request (object_store
//! cannot create containers); killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Azurite's well-known development account and key.
pub const AZ_ACCOUNT: &str = "devstoreaccount1";
pub const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug)]
pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Azurite's entry point: `JUMPGATE_TEST_AZURITE`, else the server
/// crate's pinned install.
fn main_js() -> PathBuf {
    std::env::var_os("JUMPGATE_TEST_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../server/tests/azurite/node_modules/azurite/dist/src/blob/main.js")
        })
}

impl Azurite {
    /// Starts Azurite with `container` made, or `None` (with a `skipped:`
    /// line) when node or Azurite is missing and
    /// `JUMPGATE_REQUIRE_BLOB_SERVERS` is not set.
    pub async fn start(container: &str) -> Option<Self> {
        let main = main_js();
        let (Some(node), true) = (on_path("node"), main.is_file()) else {
            assert!(
                std::env::var_os("JUMPGATE_REQUIRE_BLOB_SERVERS").is_none(),
                "Azurite is not installed, and JUMPGATE_REQUIRE_BLOB_SERVERS is set"
            );
            println!("skipped: Azurite (npm ci in crates/server/tests/azurite)");
            return None;
        };
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = crate::free_port();
            let mut child = Command::new(&node)
                .arg(&main)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(dir.path())
                .args(["--skipApiVersionCheck", "--silent"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let up = loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false; // the port was taken meanwhile
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "Azurite did not listen on {port}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if up {
                let me = Self {
                    child,
                    port,
                    _dir: dir,
                };
                me.create_container(container).await;
                return Some(me);
            }
        }
        panic!("Azurite did not start in three attempts");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[blobs]` section for `container/prefix` here, the key in
    /// `key_file` (written here).
    pub fn blobs_config(&self, container: &str, prefix: &str, key_file: &Path) -> String {
        std::fs::write(key_file, AZ_KEY).unwrap();
        format!(
            "[blobs]\nurl = \"az://{container}/{prefix}\"\nendpoint = \"{}/{AZ_ACCOUNT}\"\naccount = \"{AZ_ACCOUNT}\"\nsecret_key_file = \"{}\"\n",
            self.endpoint(),
            key_file.display()
        )
    }

    async fn create_container(&self, container: &str) {
        let date = httpdate(std::time::SystemTime::now());
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
        );
        let key =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, AZ_KEY).unwrap();
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
            to_sign.as_bytes(),
        );
        let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, mac.as_ref());
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let req = format!(
            "PUT /{AZ_ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 0\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZ_ACCOUNT}:{sig}\r\n\r\n",
            self.port
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
            .await
            .expect("Azurite did not answer in 30 s")
            .unwrap();
        let head = String::from_utf8_lossy(&raw);
        assert!(
            head.starts_with("HTTP/1.1 201"),
            "creating {container}: {head}"
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An RFC 7231 date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap()
}
