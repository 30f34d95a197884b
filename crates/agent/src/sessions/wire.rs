//! Session messages over the two halves of a stream: the shared
//! [`MsgStream`] of `jumpgate-net`, and how the agent ends its side.

use std::time::Duration;

use jumpgate_net::session::MsgError;
pub(super) use jumpgate_net::session::MsgStream;
use tokio::io::{AsyncRead, AsyncWrite};

use super::SessionError;

impl From<MsgError> for SessionError {
    fn from(e: MsgError) -> Self {
        match e {
            MsgError::Io(e) => Self::Stream(e),
            MsgError::Malformed(e) => Self::Protocol(e),
            MsgError::Truncated => Self::Truncated("in the middle of a message"),
        }
    }
}

/// Ends the agent's side of the stream, then waits for the technician's so
/// that dropping the stream does not reset it.
pub(super) async fn finish<R, W>(rx: &mut MsgStream<R>, tx: &mut MsgStream<W>, linger: Duration)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if tx.shutdown().await.is_ok() {
        let _ = tokio::time::timeout(linger, rx.drain()).await;
    }
}
