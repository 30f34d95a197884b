//! The elevation socket's protocol (design §5) between `jumpgate elevate`
//! (the client, blocking I/O) and the agent (tokio): each message is a
//! `u32` big-endian length and that many bytes of JSON, at most
//! [`MAX_MESSAGE`]. The client's first message ([`ClientMsg::Elevate`])
//! carries its standard input, output and error as `SCM_RIGHTS`.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What the caller asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elevate {
    /// The command and its arguments, as typed (`argv[0]` resolved by the
    /// agent with `path`).
    pub argv: Vec<String>,
    /// The caller's working directory.
    pub cwd: String,
    /// `--reason`, when given up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The caller's `PATH`.
    pub path: String,
    /// The caller's `TERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// The caller's `LANG` and `LC_*` variables.
    #[serde(default)]
    pub lang: Vec<(String, String)>,
    /// `--admin-session`: a root shell for this many minutes (`argv` is
    /// then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_minutes: Option<u32>,
}

/// Client → agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMsg {
    /// The request (first message, with the three fds).
    Elevate(Elevate),
    /// The answer to [`AgentMsg::NeedReason`].
    Reason { text: String },
    /// The answer to [`AgentMsg::NeedCode`].
    Code { response: String },
    /// The client received this signal (INT, TERM, HUP, QUIT): pass it on.
    Signal { signal: i32 },
}

/// Agent → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AgentMsg {
    /// The rule wants a reason: answer [`ClientMsg::Reason`].
    NeedReason { rule: String },
    /// Waiting for a technician to approve request `request`.
    NeedApproval { request: String, timeout_secs: u64 },
    /// The rule wants an offline code: show `challenge`, answer
    /// [`ClientMsg::Code`].
    NeedCode {
        challenge: String,
        attempts_left: u32,
    },
    /// Something for the caller to read (a wrong code, …).
    Notice { message: String },
    /// Not run.
    Refused { rule: String, message: String },
    /// The program is running.
    Started { action: String, rule: String },
    /// The program ended: its exit code, or 128 + the signal that killed
    /// it.
    Exited { code: i32 },
}

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("message of {0} bytes is larger than the limit")]
    TooLarge(usize),
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("the peer closed the connection")]
    Closed,
    #[error("the request did not carry exactly three file descriptors")]
    NoFds,
}

fn frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let json = serde_json::to_vec(msg).map_err(|e| WireError::Invalid(e.to_string()))?;
    if json.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(json.len()));
    }
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// A whole message at the start of `buf`: it and the bytes it used.
fn parse<T: for<'de> Deserialize<'de>>(buf: &[u8]) -> Result<Option<(T, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let msg =
        serde_json::from_slice(&buf[4..4 + len]).map_err(|e| WireError::Invalid(e.to_string()))?;
    Ok(Some((msg, 4 + len)))
}

// ---- the client's side: blocking ----

/// Sends the first message with `fds` attached.
///
/// # Errors
/// The socket failed.
pub fn send_with_fds<S: AsFd + Write>(
    sock: &mut S,
    msg: &ClientMsg,
    fds: &[BorrowedFd<'_>],
) -> Result<(), WireError> {
    let bytes = frame(msg)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(WireError::NoFds);
    }
    let sent = rustix::net::sendmsg(
        sock.as_fd(),
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(io::Error::from)?;
    // The fds went with the first byte; the rest is plain.
    sock.write_all(&bytes[sent..])?;
    Ok(())
}

/// Sends a message (blocking).
///
/// # Errors
/// The socket failed.
pub fn send<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), WireError> {
    w.write_all(&frame(msg)?)?;
    Ok(())
}

/// Reads one message (blocking); `Ok(None)` at a clean end.
///
/// # Errors
/// The socket failed, or the message was too large or invalid.
pub fn recv<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> Result<Option<T>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| WireError::Invalid(e.to_string()))
}

// ---- the agent's side: tokio ----

/// Reads messages (the agent's side: after [`recv_first`]; the client's:
/// the agent's answers).
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
}

/// Receives the first message and its fds from `sock` (whose read half is
/// then read through a [`Reader`] holding the bytes that came with it).
///
/// # Errors
/// The socket failed, the message was invalid, or the fds were missing.
pub async fn recv_first(
    sock: &tokio::net::UnixStream,
) -> Result<(ClientMsg, Vec<OwnedFd>, Vec<u8>), WireError> {
    let mut buf = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        if let Some((msg, used)) = parse::<ClientMsg>(&buf)? {
            if fds.len() != 3 {
                return Err(WireError::NoFds);
            }
            buf.drain(..used);
            return Ok((msg, fds, buf));
        }
        let mut chunk = vec![0u8; 4 + MAX_MESSAGE];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let n = loop {
            sock.readable().await?;
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = sock.try_io(tokio::io::Interest::READABLE, || {
                rustix::net::recvmsg(
                    sock.as_fd(),
                    &mut [IoSliceMut::new(&mut chunk)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )
                .map_err(io::Error::from)
            });
            match got {
                Ok(r) => {
                    for m in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(received) = m {
                            fds.extend(received);
                        }
                    }
                    break r.bytes;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Err(WireError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 4 + MAX_MESSAGE {
            return Err(WireError::TooLarge(buf.len()));
        }
    }
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader of `inner` that first reads `leftover`.
    pub fn new(inner: R, leftover: Vec<u8>) -> Self {
        Self {
            inner,
            buf: leftover,
        }
    }

    /// The next message; `Ok(None)` at a clean end.
    ///
    /// # Errors
    /// The socket failed, or the message was invalid.
    pub async fn next<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, WireError> {
        loop {
            if let Some((msg, used)) = parse::<T>(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(msg));
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::Closed)
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Sends a message to the client.
///
/// # Errors
/// The socket failed.
pub async fn send_async<W: AsyncWrite + Unpin>(w: &mut W, msg: &AgentMsg) -> Result<(), WireError> {
    w.write_all(&frame(msg)?).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[tokio::test]
    async fn the_request_carries_three_fds_and_later_messages_follow() {
        let (client, agent) = std::os::unix::net::UnixStream::pair().unwrap();
        agent.set_nonblocking(true).unwrap();
        let agent = tokio::net::UnixStream::from_std(agent).unwrap();
        let req = ClientMsg::Elevate(Elevate {
            argv: vec!["id".into(), "-u".into()],
            cwd: "/".into(),
            path: "/usr/bin:/bin".into(),
            ..Elevate::default()
        });
        let sent = req.clone();
        let file = tempfile::tempfile().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = client;
            let fds = [file.as_fd(), file.as_fd(), file.as_fd()];
            send_with_fds(&mut c, &sent, &fds).unwrap();
            send(&mut c, &ClientMsg::Reason { text: "fix".into() }).unwrap();
            let got: Option<AgentMsg> = recv(&mut c).unwrap();
            assert_eq!(got, Some(AgentMsg::Exited { code: 3 }));
        });
        let (first, fds, rest) = recv_first(&agent).await.unwrap();
        assert_eq!(first, req);
        assert_eq!(fds.len(), 3);
        assert!(fds.iter().all(|f| f.as_raw_fd() > 2));
        let (r, mut w) = agent.into_split();
        let mut reader = Reader::new(r, rest);
        assert_eq!(
            reader.next::<ClientMsg>().await.unwrap(),
            Some(ClientMsg::Reason { text: "fix".into() })
        );
        send_async(&mut w, &AgentMsg::Exited { code: 3 })
            .await
            .unwrap();
        client.join().unwrap();
        assert!(reader.next::<ClientMsg>().await.unwrap().is_none());
    }

    #[test]
    fn oversized_lengths_are_refused() {
        let mut bytes = ((MAX_MESSAGE + 1) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let r: Result<Option<AgentMsg>, _> = recv(&mut bytes.as_slice());
        assert!(matches!(r, Err(WireError::TooLarge(_))));
    }
}
