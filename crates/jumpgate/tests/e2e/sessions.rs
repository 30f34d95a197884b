//! `jg shell`, `jg cp`, `jg forward` through the gateway to a real agent.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

#[tokio::test]
async fn exec_streams_stdout_and_stderr_separately_with_the_exit_code() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let out = site
        .jg(&[
            "shell",
            "srv",
            "--",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; exit 7",
        ])
        .await;
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-err"));

    // Piped standard input reaches the command, and EOF ends it.
    let mut child = site
        .jg_command(&["shell", "srv", "--", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"piped through the gateway\n")
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok(&out), "PIPED THROUGH THE GATEWAY\n");

    // A missing program is a clear error.
    let err = fails(
        &site
            .jg(&["shell", "srv", "--", "no-such-program-xyz"])
            .await,
    );
    assert!(err.contains("no-such-program-xyz"), "{err}");

    // Every session is in the event table with who, what, bytes and outcome.
    let events: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let ev = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["target"]
                .as_str()
                .unwrap()
                .starts_with("sh -c echo to-out")
        })
        .expect("exec session recorded");
    assert_eq!(ev["username"], ADMIN);
    assert_eq!(ev["endpoint"], "srv");
    assert_eq!(ev["kind"], "exec");
    assert_eq!(ev["outcome"], "ok");
    assert!(ev["ended_at"].is_string());
    assert!(ev["bytes_down"].as_u64().unwrap() > 10);
}

/// Runs `jg shell ENDPOINT` in a real pseudo-terminal, like a person would.
#[tokio::test]
async fn interactive_shell_has_a_pty_resize_and_ctrl_c() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let pty = portable_pty::native_pty_system();
    let pair = pty
        .openpty(portable_pty::PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = portable_pty::CommandBuilder::new(jg_bin());
    cmd.args(["shell", "srv"]);
    cmd.env("JG_HOME", site.jg_home());
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let s2 = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |needle: &'static str| {
        let screen = Arc::clone(&screen);
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while !screen.lock().unwrap().contains(needle) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "`{needle}` never appeared:\n{}",
                    screen.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Like a person, wait for the remote prompt before typing.
    let deadline = tokio::time::Instant::now() + WAIT;
    while screen.lock().unwrap().trim().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no prompt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The arithmetic happens remotely: the echo of the typed line does not
    // contain the result.
    writer.write_all(b"echo hello-$((6*7))\r").unwrap();
    wait_for("hello-42").await;
    pair.master
        .resize(portable_pty::PtySize {
            rows: 33,
            cols: 111,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    // The new size travels jg → gateway → agent → PTY while we type: ask
    // again until the remote terminal reports it (or the deadline passes).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !screen.lock().unwrap().contains("33 111") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the remote terminal never took the new size:\n{}",
            screen.lock().unwrap()
        );
        writer.write_all(b"stty size\r").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Ctrl-C interrupts the remote command, not jg.
    writer
        .write_all(b"sleep 30.17; echo not-$((2+3))-interrupted\r")
        .unwrap();
    // Ctrl-C once the remote command runs (before, it would only clear the
    // typed line and the test would pass without interrupting anything).
    wait_for_descendant(&["sleep", "30.17"]).await;
    writer.write_all(b"\x03").unwrap();
    writer.write_all(b"echo after-$((1+1))\r").unwrap();
    wait_for("after-2").await;
    assert!(!screen.lock().unwrap().contains("not-5-interrupted"));
    writer.write_all(b"exit 3\r").unwrap();
    let status = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("jg shell did not exit")
        .unwrap()
        .unwrap();
    assert_eq!(status.exit_code(), 3);
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn cp_streams_files_both_ways_verified_and_keeps_permissions() {
    let site = Site::start().await;
    let agent = site.start_agent("srv").await;
    let work = site.dir.path().join("files");
    let remote = site.dir.path().join("remote");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&remote).unwrap();

    // Upload into a directory: the file keeps its name, content and mode.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let local = work.join("report.bin");
    std::fs::write(&local, &data).unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o640)).unwrap();
    let dest = format!("srv:{}", remote.display());
    ok(&site.jg(&["cp", local.to_str().unwrap(), &dest]).await);
    let uploaded = remote.join("report.bin");
    assert_eq!(
        sha256_hex(&std::fs::read(&uploaded).unwrap()),
        sha256_hex(&data)
    );
    assert_eq!(
        std::fs::metadata(&uploaded).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Download back to a new name.
    std::fs::set_permissions(&uploaded, std::fs::Permissions::from_mode(0o600)).unwrap();
    let back = work.join("back.bin");
    let src = format!("srv:{}", uploaded.display());
    ok(&site.jg(&["cp", &src, back.to_str().unwrap()]).await);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert_eq!(
        std::fs::metadata(&back).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Clear errors, and nothing left behind.
    let missing = format!("srv:{}", remote.join("nope.txt").display());
    let err = fails(&site.jg(&["cp", &missing, back.to_str().unwrap()]).await);
    assert!(err.to_lowercase().contains("no such file"), "{err}");
    let no_dir = format!("srv:{}", remote.join("no/such/dir/x").display());
    let err = fails(&site.jg(&["cp", local.to_str().unwrap(), &no_dir]).await);
    assert!(err.to_lowercase().contains("no such file"), "{err}");
    let err = fails(
        &site
            .jg(&["cp", work.join("absent").to_str().unwrap(), &dest])
            .await,
    );
    assert!(err.contains("absent"), "{err}");
    let locked = remote.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    if !rustix::process::geteuid().is_root() {
        let err = fails(
            &site
                .jg(&[
                    "cp",
                    local.to_str().unwrap(),
                    &format!("srv:{}", locked.display()),
                ])
                .await,
        );
        assert!(err.to_lowercase().contains("permission"), "{err}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("jgpart"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Streaming: a 256 MiB file crosses with bounded memory on every hop.
    let big = work.join("big.img");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(256 << 20).unwrap();
    drop(f);
    let mut jg = site
        .jg_command(&["cp", big.to_str().unwrap(), &dest])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let jg_pid = jg.id().unwrap();
    let mut jg_peak = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    let status = loop {
        jg_peak = jg_peak.max(peak_rss_kib(jg_pid));
        if let Some(s) = jg.try_wait().unwrap() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the 256 MiB copy did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
    assert_eq!(
        std::fs::metadata(remote.join("big.img")).unwrap().len(),
        256 << 20
    );
    let agent_peak = peak_rss_kib(agent.child.id().unwrap());
    let gateway_peak = peak_rss_kib(site.gateway.child.id().unwrap());
    for (who, kib) in [
        ("jg", jg_peak),
        ("agent", agent_peak),
        ("gateway", gateway_peak),
    ] {
        assert!(
            kib > 0 && kib < 96 * 1024,
            "{who} peak RSS {kib} KiB for a 256 MiB copy"
        );
    }
}

/// Starts `jg forward` and returns the local port it listens on.
async fn forward(site: &Site, spec: &str) -> (tokio::process::Child, std::net::SocketAddr) {
    let mut child = site
        .jg_command(&["forward", "srv", spec])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("jg: forwarding ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test]
async fn forward_carries_many_concurrent_connections() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let echo = echo_server().await;
    let (_fwd, local) = forward(&site, &format!("0:127.0.0.1:{}", echo.port())).await;
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..512 * 1024)
                .map(|j: u32| (j as u8).wrapping_add(i))
                .collect();
            let s = TcpStream::connect(local).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let expected = data.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            assert!(got == expected, "connection {i} corrupted");
        }));
    }
    for t in tasks {
        tokio::time::timeout(WAIT * 2, t).await.unwrap().unwrap();
    }
    // A target the endpoint cannot reach: the local connection is closed,
    // the forwarder keeps serving.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (_fwd2, local2) = forward(&site, &format!("0:127.0.0.1:{}", closed.port())).await;
    let mut s = TcpStream::connect(local2).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap();
    // Closed (reset or end of stream) without carrying anything.
    assert!(buf.is_empty(), "{n:?} {buf:?}");
    let mut s = TcpStream::connect(local).await.unwrap();
    s.write_all(b"still works").await.unwrap();
    let mut got = [0u8; 11];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still works");
}

/// Issue #2's engineering requirement, end to end: a stream whose reader
/// stops reading does not slow the others on the same agent connection.
#[tokio::test]
async fn a_stalled_forward_does_not_slow_other_sessions() {
    let site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    // A target that accepts and never reads.
    let stall = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_port = stall.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((s, _)) = stall.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    let (_f1, stalled_local) = forward(&site, &format!("0:127.0.0.1:{stall_port}")).await;
    let echo = echo_server().await;
    let (_f2, echo_local) = forward(&site, &format!("0:127.0.0.1:{}", echo.port())).await;

    let mut stalled = TcpStream::connect(stalled_local).await.unwrap();
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p2 = Arc::clone(&progress);
    let stalled_writer = tokio::spawn(async move {
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        // Bounded: gives up after 256 MiB (it will block long before).
        while sent < 256 << 20 {
            if stalled.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
            p2.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
        sent
    });
    // Wait until the stalled stream is blocked: it has sent something and
    // then made no progress for a second (every window and buffer on the
    // way is full), however slow the machine.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut last, mut still) = (0, 0);
    while still < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled stream never blocked"
        );
        assert!(
            !stalled_writer.is_finished(),
            "the stalled stream should be blocked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = progress.load(std::sync::atomic::Ordering::Relaxed);
        still = if now == last && now > 0 { still + 1 } else { 0 };
        last = now;
    }

    // 64 MiB round trip on another session over the same agent connection.
    let s = TcpStream::connect(echo_local).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let total = 64usize << 20;
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..total >> 20 {
            w.write_all(&chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let read_all = async {
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received += n;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the healthy session stalled behind the blocked one");
    writer.await.unwrap();
    assert_eq!(received, total);
    assert!(
        !stalled_writer.is_finished(),
        "the stalled stream must still be blocked"
    );
    stalled_writer.abort();
}

#[tokio::test]
async fn sigterm_closes_sessions_with_a_message_and_stops_cleanly() {
    let mut site = Site::start().await;
    let _agent = site.start_agent("srv").await;
    let sleeper = site
        .jg_command(&["shell", "srv", "--", "sleep", "60"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the session is live.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events: serde_json::Value =
            serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == "sleep 60" && e["outcome"] == "open")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The row is written before the endpoint accepts: wait until the
    // command really runs there, so the session is past its opening.
    wait_for_descendant(&["sleep", "60"]).await;
    let status = site.gateway.terminate().await;
    assert!(
        status.success(),
        "gateway exit: {status}\n{}",
        site.gateway.stderr.text()
    );
    let out = tokio::time::timeout(WAIT, sleeper.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = fails(&out);
    assert!(err.contains("the gateway is shutting down"), "{err}");

    site.restart(&[]).await;
    site.login(ADMIN, ADMIN_PASSWORD).await;
    let events: serde_json::Value =
        serde_json::from_str(&ok(&site.jg(&["sessions", "--json"]).await)).unwrap();
    let ev = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == "sleep 60")
        .unwrap();
    assert_eq!(ev["outcome"], "terminated: the gateway is shutting down");
    assert!(ev["ended_at"].is_string());
    site.wait_online("srv", true).await;
}

/// Waits until a process running exactly `argv` descends from this test
/// process (through the agent it started): a command has really started on
/// the endpoint, not merely been typed.
async fn wait_for_descendant(argv: &[&str]) {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let found = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)
                    && descends_from(pid, std::process::id())
            })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !found() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no process {argv:?} started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        // The parent id follows the state, after the parenthesised name.
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let (_, rest) = s.rsplit_once(')')?;
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        match parent {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}
