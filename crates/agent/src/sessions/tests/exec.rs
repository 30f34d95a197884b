use bytes::Bytes;
use jumpgate_proto::session::{
    CHUNK, ExitStatus, RefusalCode, SessionKind, SessionMsg, SessionRequest, SignalKind,
};
use tokio::io::AsyncWriteExt;

use super::{STEP, Tech, ended, pattern, wait_for_descendant};
use crate::sessions::SessionError;

fn exec(args: &[&str]) -> SessionRequest {
    SessionRequest::Exec {
        command: args.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Whether `pid` is gone (or a zombie about to be reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

async fn wait_dead(pid: u32) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !is_dead(pid) {
        assert!(tokio::time::Instant::now() < deadline, "{pid} still alive");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exec_separates_stdout_and_stderr_and_reports_the_exit_code() {
    let req = exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let (mut tech, served) = Tech::open(req).await;
    tech.accepted().await;
    let (out, err, status) = tech.until_exit().await;
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    assert_eq!(
        status,
        ExitStatus {
            code: Some(3),
            signal: None
        }
    );
    assert_eq!(tech.recv().await, None, "the agent finishes its side");
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.kind, SessionKind::Exec);
    assert_eq!(summary.bytes_out, 8);
}

#[tokio::test]
async fn exec_pipes_stdin_to_the_command_until_stdin_eof() {
    let (mut tech, served) = Tech::open(exec(&["cat"])).await;
    tech.accepted().await;
    tech.send(&SessionMsg::Stdin(Bytes::from_static(b"hello\n")))
        .await;
    tech.send(&SessionMsg::Stdin(Bytes::from_static(b"world\n")))
        .await;
    tech.send(&SessionMsg::StdinEof).await;
    let (out, err, status) = tech.until_exit().await;
    assert_eq!(String::from_utf8_lossy(&out), "hello\nworld\n");
    assert!(err.is_empty());
    assert_eq!(status.code, Some(0));
    let summary = ended(tech, served).await.unwrap();
    assert_eq!((summary.bytes_in, summary.bytes_out), (12, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_more_input_than_pipes_hold_while_output_flows() {
    // 2 MiB through `cat` needs input and output to flow at the same time:
    // pipes and the mux window hold far less.
    let data = pattern(2 * 1024 * 1024);
    let (tech, served) = Tech::open(exec(&["cat"])).await;
    let (r, mut w) = tokio::io::split(tech.io);
    let mut tech = Tech {
        io: r,
        buf: tech.buf,
    };
    tech.accepted().await;
    let input = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in input.chunks(CHUNK) {
            let msg = SessionMsg::Stdin(Bytes::copy_from_slice(chunk));
            w.write_all(&msg.to_bytes()).await.unwrap();
        }
        w.write_all(&SessionMsg::StdinEof.to_bytes()).await.unwrap();
        w
    });
    let (out, _, status) = tech.until_exit().await;
    let w = writer.await.unwrap();
    assert_eq!(status.code, Some(0));
    assert!(
        out == data,
        "output differs from input ({} bytes)",
        out.len()
    );
    drop(w);
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.bytes_in, data.len() as u64);
    assert_eq!(summary.bytes_out, data.len() as u64);
}

#[tokio::test]
async fn exec_interrupt_signal_ends_the_command() {
    let (mut tech, served) = Tech::open(exec(&["sleep", "30"])).await;
    tech.accepted().await;
    tech.send(&SessionMsg::Signal(SignalKind::Interrupt)).await;
    let (_, _, status) = tech.until_exit().await;
    assert_eq!(
        status,
        ExitStatus {
            code: None,
            signal: Some(2)
        }
    );
    ended(tech, served).await.unwrap();
}

#[tokio::test]
async fn exec_signal_reaches_what_the_command_started() {
    // The shell waits for its child: signalling only the shell would leave
    // `sleep` holding the output pipe open.
    let req = exec(&["sh", "-c", "sleep 32; echo not-reached"]);
    let (mut tech, served) = Tech::open(req).await;
    tech.accepted().await;
    // Signal once the shell's child runs (before, the test would pass
    // without reaching anything the command started).
    wait_for_descendant(&["sleep", "32"]).await;
    tech.send(&SessionMsg::Signal(SignalKind::Terminate)).await;
    let (out, _, status) = tech.until_exit().await;
    assert!(out.is_empty());
    assert_eq!(status.signal, Some(15));
    ended(tech, served).await.unwrap();
}

#[tokio::test]
async fn exec_of_a_missing_program_is_refused_not_found() {
    let (mut tech, served) = Tech::open(exec(&["jumpgate-no-such-program", "-x"])).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::NotFound);
    assert!(
        refusal.message.contains("jumpgate-no-such-program"),
        "{}",
        refusal.message
    );
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn exec_of_a_non_executable_file_is_refused_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let (mut tech, served) = Tech::open(exec(&[script.to_str().unwrap()])).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::PermissionDenied, "{refusal:?}");
    ended(tech, served).await.unwrap_err();
}

#[tokio::test]
async fn exec_of_an_empty_command_is_invalid() {
    for command in [vec![], vec![String::new()]] {
        let (mut tech, served) = Tech::open(SessionRequest::Exec { command }).await;
        assert_eq!(tech.refused().await.code, RefusalCode::InvalidRequest);
        ended(tech, served).await.unwrap_err();
    }
}

#[tokio::test]
async fn exec_closed_by_the_gateway_kills_the_command() {
    let req = exec(&["sh", "-c", "echo $$; exec sleep 30"]);
    let (mut tech, served) = Tech::open(req).await;
    tech.accepted().await;
    let out = tech.stdout_until("\n").await;
    let pid: u32 = out.trim().parse().expect("a pid");
    let reason = "terminated by an administrator".to_owned();
    tech.send(&SessionMsg::Closed { reason }).await;
    let err = tokio::time::timeout(STEP, served)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, SessionError::Closed { .. }), "{err:?}");
    wait_dead(pid).await;
}
