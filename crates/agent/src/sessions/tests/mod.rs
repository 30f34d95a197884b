//! Session handlers against real processes, files and sockets. The test
//! plays the technician over an in-memory duplex stream.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use jumpgate_proto::session::{
    Accepted, ExitStatus, Refusal, RefusalCode, SessionMsg, SessionRequest,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{SessionContext, SessionError, SessionSummary, serve};

mod assist;
mod desktop;
mod exec;
mod files;
mod forward;
mod shell;

/// Limit of any single wait in these tests: a deadline for what should
/// happen at once, generous so that a loaded machine does not fail them
/// (nothing here waits for it to pass).
const STEP: Duration = Duration::from_secs(30);

/// Waits until a process running exactly `argv` descends from this test
/// process: a command has really started, not merely been sent. (Each
/// test uses its own argv, since tests run side by side.)
async fn wait_for_descendant(argv: &[&str]) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !has_descendant(argv) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no process {argv:?} started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_descendant(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)
                && descends_from(pid, std::process::id())
        })
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

fn ctx() -> SessionContext {
    SessionContext {
        linger: Duration::from_secs(3),
        output_drain: Duration::from_millis(500),
        ..SessionContext::default()
    }
}

type Served = JoinHandle<Result<SessionSummary, SessionError>>;

/// The technician's end of a session stream.
struct Tech<T = DuplexStream> {
    io: T,
    buf: BytesMut,
}

impl Tech {
    /// Starts `serve` on a new stream and sends `req` on it.
    async fn open(req: SessionRequest) -> (Self, Served) {
        Self::open_with(req, ctx()).await
    }

    async fn open_with(req: SessionRequest, ctx: SessionContext) -> (Self, Served) {
        let (mut tech, served) = Self::connect(ctx);
        tech.send(&SessionMsg::Open(req)).await;
        (tech, served)
    }

    fn connect(ctx: SessionContext) -> (Self, Served) {
        let (mine, agent) = tokio::io::duplex(256 * 1024);
        let served = tokio::spawn(serve(agent, ctx));
        let tech = Self {
            io: mine,
            buf: BytesMut::new(),
        };
        (tech, served)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Tech<T> {
    async fn send(&mut self, msg: &SessionMsg) {
        self.send_raw(&msg.to_bytes()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(STEP, self.io.write_all(bytes))
            .await
            .expect("timed out sending to the agent")
            .expect("sending to the agent failed");
    }
}

impl<T: AsyncRead + Unpin> Tech<T> {
    /// The next message from the agent; `None` once it closed its side.
    async fn recv(&mut self) -> Option<SessionMsg> {
        let next = async {
            loop {
                if let Some(msg) = SessionMsg::decode(&mut self.buf).expect("malformed message") {
                    return Some(msg);
                }
                self.buf.reserve(64 * 1024);
                let n = self.io.read_buf(&mut self.buf).await.expect("read failed");
                if n == 0 {
                    assert!(self.buf.is_empty(), "stream ended inside a message");
                    return None;
                }
            }
        };
        timeout(STEP, next)
            .await
            .expect("timed out waiting for the agent")
    }

    async fn accepted(&mut self) -> Accepted {
        match self.recv().await {
            Some(SessionMsg::Accepted(a)) => a,
            other => panic!("expected Accepted, got {other:?}"),
        }
    }

    async fn refused(&mut self) -> Refusal {
        match self.recv().await {
            Some(SessionMsg::Refused(r)) => r,
            other => panic!("expected Refused, got {other:?}"),
        }
    }

    /// Collects stdout and stderr up to `Exit`.
    async fn until_exit(&mut self) -> (Vec<u8>, Vec<u8>, ExitStatus) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match self.recv().await {
                Some(SessionMsg::Stdout(b)) => out.extend_from_slice(&b),
                Some(SessionMsg::Stderr(b)) => err.extend_from_slice(&b),
                Some(SessionMsg::Exit(status)) => return (out, err, status),
                other => panic!("expected output or Exit, got {other:?}"),
            }
        }
    }

    /// Collects stdout until it contains `needle`.
    async fn stdout_until(&mut self, needle: &str) -> String {
        let mut out = Vec::new();
        while !String::from_utf8_lossy(&out).contains(needle) {
            match self.recv().await {
                Some(SessionMsg::Stdout(b)) => out.extend_from_slice(&b),
                other => panic!(
                    "expected output with {needle:?}, got {other:?} after {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Closes the technician's end and waits for `serve` to return.
async fn ended<T>(tech: Tech<T>, served: Served) -> Result<SessionSummary, SessionError> {
    drop(tech);
    timeout(STEP, served)
        .await
        .expect("serve did not return")
        .expect("serve panicked")
}

/// Deterministic, non-repeating-looking test data.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test]
async fn first_message_must_be_open() {
    let (mut tech, served) = Tech::connect(ctx());
    tech.send(&SessionMsg::Stdin("ls\n".into())).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::InvalidRequest);
    assert!(refusal.message.contains("Open"), "{}", refusal.message);
    let err = ended(tech, served).await.unwrap_err();
    assert!(
        matches!(err, SessionError::Unexpected { got: "stdin", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn open_of_an_unknown_kind_is_refused() {
    let (mut tech, served) = Tech::connect(ctx());
    let body = br#"{"kind":"teleport","to":"mars"}"#;
    let mut msg = BytesMut::new();
    msg.put_u8(1); // Open
    msg.put_u32(body.len() as u32);
    msg.put_slice(body);
    tech.send_raw(&msg).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::InvalidRequest);
    assert!(refusal.message.contains("teleport"), "{}", refusal.message);
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn garbled_bytes_end_the_stream_without_an_answer() {
    let (mut tech, served) = Tech::connect(ctx());
    tech.send_raw(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(tech.recv().await, None);
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn a_stream_closed_before_open_is_an_error() {
    let (tech, served) = Tech::connect(ctx());
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::NoOpen), "{err:?}");
}

#[tokio::test]
async fn a_silent_stream_times_out() {
    let ctx = SessionContext {
        open_timeout: Duration::from_millis(200),
        ..ctx()
    };
    let (_tech, served) = Tech::connect(ctx);
    let result = timeout(STEP, served).await.expect("serve did not return");
    let err = result.expect("serve panicked").unwrap_err();
    assert!(matches!(err, SessionError::OpenTimeout(_)), "{err:?}");
}
