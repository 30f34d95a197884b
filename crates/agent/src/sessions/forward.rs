//! `forward` sessions: a TCP connection from the endpoint, raw bytes both
//! ways once accepted.
//!
//! This is the throughput path: each direction copies through one buffer
//! allocated for the session's life, and ends by half-closing its
//! destination, so either side can finish sending while still receiving.

use std::io;

use jumpgate_proto::session::{Accepted, RefusalCode, SessionKind, SessionMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::wire::MsgStream;
use super::{SessionContext, SessionError, SessionSummary};

/// Copy buffer of each direction: large reads and writes amortise the
/// per-call cost across the mux and the socket.
const BUF_SIZE: usize = 128 * 1024;

pub(super) async fn run<R, W>(
    mut rx: MsgStream<R>,
    mut tx: MsgStream<W>,
    host: &str,
    port: u16,
    ctx: &SessionContext,
) -> Result<SessionSummary, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Accept "[::1]" as well as "::1" for IPv6 literals.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() || port == 0 {
        let message = format!("invalid forward target {host}:{port}");
        let code = RefusalCode::InvalidRequest;
        return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
    }
    let connect = TcpStream::connect((bare, port));
    let tcp = match tokio::time::timeout(ctx.connect_timeout, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let message = format!("connect to {host}:{port}: {e}");
            let code = RefusalCode::ConnectFailed;
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
        Err(_) => {
            let message = format!(
                "connect to {host}:{port}: timed out after {:?}",
                ctx.connect_timeout
            );
            let code = RefusalCode::ConnectFailed;
            return Err(super::refuse(&mut rx, &mut tx, ctx, code, message).await);
        }
    };
    // Interactive protocols (SSH, RDP) behind forwards want their small
    // writes out at once.
    if let Err(e) = tcp.set_nodelay(true) {
        debug!("cannot set TCP_NODELAY: {e}");
    }
    tx.write_msg(&SessionMsg::Accepted(Accepted::default()))
        .await?;

    // Bytes the technician sent right after `Open`, without waiting for the
    // answer, were read along with it.
    let (mut from_tech, early) = rx.into_parts();
    let (mut to_tech, _) = tx.into_parts();
    let (mut from_target, mut to_target) = tcp.into_split();
    let mut summary = SessionSummary::new(SessionKind::Forward);
    let mut up = vec![0u8; BUF_SIZE];
    let mut down = vec![0u8; BUF_SIZE];
    let upstream = async {
        if !early.is_empty() {
            to_target.write_all(&early).await.map_err(target_error)?;
        }
        let early = early.len() as u64;
        copy(
            &mut from_tech,
            &mut to_target,
            &mut up,
            SessionError::Stream,
            target_error,
        )
        .await
        .map(|n| n + early)
    };
    let downstream = copy(
        &mut from_target,
        &mut to_tech,
        &mut down,
        target_error,
        SessionError::Stream,
    );
    let (bytes_in, bytes_out) = tokio::try_join!(upstream, downstream)?;
    summary.bytes_in = bytes_in;
    summary.bytes_out = bytes_out;
    Ok(summary)
}

fn target_error(source: io::Error) -> SessionError {
    SessionError::Local {
        what: "forwarded connection",
        source,
    }
}

/// Copies until end of input, then half-closes the output. Returns the
/// bytes copied.
async fn copy<R, W>(
    from: &mut R,
    to: &mut W,
    buf: &mut [u8],
    read_error: fn(io::Error) -> SessionError,
    write_error: fn(io::Error) -> SessionError,
) -> Result<u64, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    loop {
        let n = from.read(buf).await.map_err(read_error)?;
        if n == 0 {
            // The peer may already be gone entirely; the other direction
            // reports that if it matters.
            if let Err(e) = to.shutdown().await {
                debug!("half-close failed: {e}");
            }
            return Ok(total);
        }
        to.write_all(&buf[..n]).await.map_err(write_error)?;
        total += n as u64;
    }
}
