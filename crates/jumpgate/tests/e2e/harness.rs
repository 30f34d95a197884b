//! The test harness's footing (crates/test-support): what the builders
//! read instead of the gateway's standard output (`jumpgate server
//! --listen-address-file`, also for scripts and benchmarks), and the engine
//! switch: a site on each database engine (PostgreSQL from
//! `JUMPGATE_TEST_POSTGRES`, skipped without it), used end to end.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::*;

fn server(data: &Path, file: &Path, extra: &[&str]) -> (Child, Log, Log) {
    let mut child = Command::new(jumpgate_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--listen-address-file")
        .arg(file)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stderr) = (Log::default(), Log::default());
    stdout.drain(child.stdout.take().unwrap());
    stderr.drain(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

/// The file's text once it exists and differs from `stale`.
async fn read_fresh(file: &Path, stale: Option<&str>, stderr: &Log) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && Some(text.as_str()) != stale
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fresh {}; gateway log:\n{}",
            file.display(),
            stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_file_names_the_bound_ports_and_the_pin_and_is_replaced_at_each_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("listen-address");
    let (mut child, stdout, stderr) = server(&data, &file, &["--redirect-listen", "127.0.0.1:0"]);
    let text = read_fresh(&file, None, &stderr).await;
    let a = ListenAddresses::parse(&text).unwrap();
    assert_ne!(a.listen.port(), 0, "{text}");
    let redirect = a.redirect_listen.expect("a redirect_listen= line");
    assert_ne!(redirect.port(), 0, "{text}");

    // The same as what the gateway prints for people, and as `jumpgate
    // admin fingerprint`.
    assert!(stdout.wait_for("certificate fingerprint").await);
    let printed = stdout.text();
    assert!(
        printed.contains(&format!("listening on https://{}\n", a.listen)),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("redirecting http://{redirect} to https")),
        "{printed}"
    );
    let admin = Command::new(jumpgate_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(&data)
        .arg("fingerprint")
        .output()
        .await
        .unwrap();
    assert_eq!(ok(&admin).trim(), a.fingerprint);

    // A client reaches the gateway with the address and the pin alone.
    let trust = jumpgate_net::tls::Trust::Pinned(a.fingerprint.parse().unwrap());
    let client = jumpgate_client::Client::new(
        format!("https://{}", a.listen).parse().unwrap(),
        &trust,
        None,
    )
    .unwrap();
    let (status, _) = raw_call(&client, "GET", "/", None, b"").await;
    assert_eq!(status, 200);
    let mut s = tokio::net::TcpStream::connect(redirect).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).await.unwrap();
    assert!(res.starts_with("HTTP/1.1 308"), "{res}");

    // Stopped and started again: the file is replaced (not appended to)
    // with the new start's ports.
    signal(&child, rustix::process::Signal::TERM);
    assert!(
        tokio::time::timeout(WAIT, child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    std::fs::write(&file, "stale").unwrap();
    let (_child, _, stderr) = server(&data, &file, &[]);
    let text = read_fresh(&file, Some("stale"), &stderr).await;
    let b = ListenAddresses::parse(&text).unwrap();
    assert_eq!(b.redirect_listen, None, "{text}");
    assert_eq!(b.fingerprint, a.fingerprint);
    assert_eq!(text.lines().count(), 2, "{text}");
    tokio::net::TcpStream::connect(b.listen).await.unwrap();
}

#[tokio::test]
async fn an_unwritable_listen_address_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-dir").join("listen-address");
    let (child, _, stderr) = server(&dir.path().join("data"), &file, &[]);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the gateway did not stop")
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr.wait_for("no-such-dir").await,
        "the error does not name the file:\n{}",
        stderr.text()
    );
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_runs_end_to_end_on_each_engine() {
    for_each_engine(async |engine| {
        let mut site = Site::builder().engine(engine).start().await;
        assert_eq!(site.engine(), engine);
        // SQLite keeps the site in the data directory; on PostgreSQL the
        // file is never made (the gateway found tables in its database:
        // `Gateway::start` checks that).
        assert_eq!(
            site.data_dir().join("jumpgate.db").exists(),
            engine == Engine::Sqlite,
            "{engine}"
        );
        // The start-up hint's admin commands name the site's database.
        let hint = site.gateway.stdout.text();
        assert!(hint.contains("create-user NAME"), "{hint}");
        assert_eq!(
            hint.contains(" --database 'postgres://"),
            engine == Engine::Postgres,
            "{hint}"
        );
        let _agent = site.start_agent("web").await;
        let out = ok(&site
            .jg(&["shell", "web", "--", "echo", "on-each-engine"])
            .await);
        assert!(out.contains("on-each-engine"), "{out}");
        // A restart finds the same database.
        site.restart(&[]).await;
        site.wait_online("web", true).await;
        assert!(ok(&site.jg(&["audit"]).await).contains("web"));
        ok(&site.admin(&["verify-audit"]).await);
    })
    .await;
}
