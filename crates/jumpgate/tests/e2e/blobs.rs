//! Recordings on S3: a gateway configured with `[blobs] url = "s3://…"`
//! against moto (started here on a port picked at run time, the bucket
//! made with awscli) records a real shell session, publishes it to the
//! bucket when it ends, and plays it back from there, also after a
//! restart. Without moto or awscli the test prints a `skipped:` line
//! (`scripts/test` installs both and sets `JUMPGATE_REQUIRE_BLOB_SERVERS`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::recordings::{output_events, recordings};
use crate::support::*;

const KEY_ID: &str = "jumpgate-e2e";
const SECRET: &str = "e2e-secret-that-must-never-be-logged";
const BUCKET: &str = "jumpgate-e2e";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// moto's S3 on a fresh loopback port (killed on drop), or `None`.
async fn moto() -> Option<(tokio::process::Child, String)> {
    let moto = std::env::var_os("JUMPGATE_TEST_MOTO")
        .map(PathBuf::from)
        .or_else(|| on_path("moto_server"));
    let (Some(moto), Some(_)) = (moto, on_path("aws")) else {
        assert!(
            std::env::var_os("JUMPGATE_REQUIRE_BLOB_SERVERS").is_none(),
            "moto_server or aws is not installed, and JUMPGATE_REQUIRE_BLOB_SERVERS is set"
        );
        println!("skipped: moto_server or aws is not installed (scripts/test installs them)");
        return None;
    };
    loop {
        let port = crate::support::free_port();
        let mut child = tokio::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some((child, format!("http://127.0.0.1:{port}")));
            }
            if child.try_wait().unwrap().is_some() {
                break; // the port was taken meanwhile: another one
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn aws(endpoint: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("aws")
        .args(["--endpoint-url", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_shell_session_recorded_to_s3_plays_back_from_the_bucket() {
    let Some((_moto, endpoint)) = moto().await else {
        return;
    };
    aws(&endpoint, &["s3", "mb", &format!("s3://{BUCKET}")]).await;
    let conf_dir = tempfile::tempdir().unwrap();
    let secret_file = conf_dir.path().join("s3-secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let config = conf_dir.path().join("jumpgate.toml");
    std::fs::write(
        &config,
        format!(
            "[blobs]\nurl = \"s3://{BUCKET}/site-a\"\nendpoint = \"{endpoint}\"\naccess_key_id = \"{KEY_ID}\"\nsecret_key_file = \"{}\"\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut site = Site::start_with(&["--config", &config]).await;
    let _agent = site.start_agent("srv").await;
    ok(&site
        .jg(&[
            "shell",
            "srv",
            "--",
            "sh",
            "-c",
            "echo s3-rec-first; sleep 0.3; echo s3-rec-second",
        ])
        .await);

    // The recording ends, then its spool file goes to the bucket.
    let spool = site.data_dir().join("recordings");
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let recs = recordings(&site, &[]).await;
        let spooled = std::fs::read_dir(&spool).map_or(0, |d| d.count());
        if recs.len() == 1 && recs[0]["ended_at"].is_string() && spooled == 0 {
            assert_eq!(recs[0]["interrupted"], false);
            break recs[0]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not published: {recs:?}, {spooled} spool files\n{}",
            site.gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let listing = aws(
        &endpoint,
        &["s3", "ls", &format!("s3://{BUCKET}/site-a/recordings/")],
    )
    .await;
    assert!(listing.contains(&format!("{id}.jgrec")), "{listing}");
    // Sealed in the bucket too.
    let copy = conf_dir.path().join("copy.jgrec");
    aws(
        &endpoint,
        &[
            "s3",
            "cp",
            &format!("s3://{BUCKET}/site-a/recordings/{id}.jgrec"),
            copy.to_str().unwrap(),
        ],
    )
    .await;
    let raw = std::fs::read(&copy).unwrap();
    assert!(raw.starts_with(b"JGREC/1\n"));
    assert!(!raw.windows(12).any(|w| w == b"s3-rec-first"));

    // Played and exported from the bucket.
    let played = ok(&site.jg(&["play", &id, "--speed", "8"]).await);
    assert!(
        played.contains("s3-rec-first") && played.contains("s3-rec-second"),
        "{played}"
    );
    let cast = ok(&site.jg(&["recordings", "export", &id]).await);
    let events = output_events(&cast);
    assert!(
        events.iter().any(|(_, d)| d.contains("s3-rec-second")),
        "{cast}"
    );

    // After a restart, from the bucket again (no local copy exists).
    site.restart(&["--config", &config]).await;
    assert_eq!(
        ok(&site.jg(&["recordings", "export", &id]).await),
        cast,
        "the export after a restart differs"
    );

    // The store is named in the log; its secret never is.
    let log = site.gateway.stderr.text();
    assert!(log.contains("s3://jumpgate-e2e/site-a"), "{log}");
    assert!(!log.contains(SECRET));
}
