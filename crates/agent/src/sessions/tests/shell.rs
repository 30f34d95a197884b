use std::path::PathBuf;

use bytes::Bytes;
use jumpgate_proto::session::{RefusalCode, SessionKind, SessionMsg, SessionRequest};

use super::{Tech, ctx, ended, wait_for_descendant};
use crate::sessions::SessionContext;

fn sh() -> SessionContext {
    SessionContext {
        shell: Some(PathBuf::from("/bin/sh")),
        ..ctx()
    }
}

fn shell(term: &str) -> SessionRequest {
    SessionRequest::Shell {
        term: term.to_owned(),
        cols: 80,
        rows: 24,
        command: None,
    }
}

fn stdin(s: &'static str) -> SessionMsg {
    SessionMsg::Stdin(Bytes::from_static(s.as_bytes()))
}

#[tokio::test]
async fn shell_runs_commands_resizes_and_reports_the_exit_code() {
    let (mut tech, served) = Tech::open_with(shell("vt100"), sh()).await;
    tech.accepted().await;
    // The terminal echoes the command line, which does not contain "hello-42".
    tech.send(&stdin("echo hello-$((6*7))\n")).await;
    tech.stdout_until("hello-42").await;
    tech.send(&stdin("echo term=$TERM; stty size\n")).await;
    tech.stdout_until("24 80").await;
    tech.send(&SessionMsg::Resize {
        cols: 100,
        rows: 30,
    })
    .await;
    tech.send(&stdin("stty size\n")).await;
    tech.stdout_until("30 100").await;
    tech.send(&stdin("exit 5\n")).await;
    let (_, err, status) = tech.until_exit().await;
    assert!(err.is_empty(), "a PTY has a single output");
    assert_eq!(status.code, Some(5));
    assert_eq!(tech.recv().await, None, "the agent finishes its side");
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.kind, SessionKind::Shell);
    assert!(summary.bytes_in > 0 && summary.bytes_out > 0, "{summary:?}");
}

#[tokio::test]
async fn shell_sets_term_and_forwards_ctrl_c_as_an_interrupt() {
    let (mut tech, served) = Tech::open_with(shell("vt100"), sh()).await;
    tech.accepted().await;
    tech.send(&stdin("echo term=$TERM\n")).await;
    tech.stdout_until("term=vt100\r\n").await;
    tech.send(&stdin("sleep 33; echo not-$((2+3))\n")).await;
    // Ctrl-C once the command runs (before, it would only clear the line).
    wait_for_descendant(&["sleep", "33"]).await;
    tech.send(&stdin("\x03")).await;
    tech.send(&stdin("echo after-$((1+1))\n")).await;
    let out = tech.stdout_until("after-2").await;
    assert!(!out.contains("not-5"), "{out:?}");
    tech.send(&stdin("exit\n")).await;
    tech.until_exit().await;
    ended(tech, served).await.unwrap();
}

#[tokio::test]
async fn shell_is_hung_up_when_the_technician_leaves() {
    let (mut tech, served) = Tech::open_with(shell("xterm"), sh()).await;
    tech.accepted().await;
    // The echoed command line has no "pid:", only the output has.
    tech.send(&stdin("echo pid=$$ | tr = :\n")).await;
    let mut out = tech.stdout_until("pid:").await;
    while !out.rsplit("pid:").next().is_some_and(|s| s.contains('\n')) {
        out += &tech.stdout_until("\n").await;
    }
    let pid = out
        .rsplit("pid:")
        .next()
        .and_then(|s| s.split('\r').next())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // `ended` is bounded (STEP): a shell left running would fail it.
    let summary = ended(tech, served).await.unwrap();
    assert_eq!(summary.kind, SessionKind::Shell);
    // The agent reaps the shell before returning.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "shell {pid} survived"
    );
}

#[tokio::test]
async fn a_shell_that_cannot_start_is_refused() {
    let ctx = SessionContext {
        shell: Some(PathBuf::from("/nonexistent/jumpgate-shell")),
        ..ctx()
    };
    let (mut tech, served) = Tech::open_with(shell("xterm"), ctx).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::Failed);
    assert!(
        refusal.message.contains("jumpgate-shell"),
        "{}",
        refusal.message
    );
    ended(tech, served).await.unwrap_err();
}

#[tokio::test]
async fn an_invalid_term_is_refused() {
    let (mut tech, served) = Tech::open_with(shell("xterm\nevil"), sh()).await;
    assert_eq!(tech.refused().await.code, RefusalCode::InvalidRequest);
    ended(tech, served).await.unwrap_err();
}
