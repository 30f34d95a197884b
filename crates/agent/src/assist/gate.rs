//! What the customer client lets a session do: the rights each kind of
//! session needs, file paths confined to the customer's home, and the
//! stream wrapper that lets a revoked session end with a `Closed` message
//! the technician can read.

use std::io;
use std::path::{Component, Path};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use jumpgate_proto::assist::Right;
use jumpgate_proto::session::{ConsentMode, RefusalCode, SessionRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::grants::AssistGrants;

/// A refusal: its code and the technician's message.
pub(crate) type Refusal = (RefusalCode, String);

/// The right a session needs for its whole life (`None`: the desktop,
/// which follows the rights itself), or why it is refused now.
pub(crate) fn needed(
    req: &SessionRequest,
    grants: &AssistGrants,
) -> Result<Option<Right>, Refusal> {
    let right = match req {
        SessionRequest::Shell { .. } | SessionRequest::Exec { .. } => Right::Shell,
        SessionRequest::Upload { path, .. } | SessionRequest::Download { path } => {
            if grants.allows(Right::Files) {
                confined(path, grants.home())?;
            }
            Right::Files
        }
        SessionRequest::Forward { .. } => {
            return Err((
                RefusalCode::Unsupported,
                "port forwarding is not part of attended support".to_owned(),
            ));
        }
        SessionRequest::Desktop { consent, .. } => {
            if *consent != ConsentMode::Assist {
                return Err((
                    RefusalCode::Unsupported,
                    "a support client only serves desktop sessions in assist mode".to_owned(),
                ));
            }
            if !grants.allows(Right::View) {
                return Err(not_allowed(Right::View));
            }
            // The desktop session follows the rights itself.
            return Ok(None);
        }
    };
    if grants.allows(right) {
        Ok(Some(right))
    } else {
        Err(not_allowed(right))
    }
}

/// The refusal of a session whose right the customer has not given.
pub(crate) fn not_allowed(right: Right) -> Refusal {
    (
        RefusalCode::ConsentDenied,
        format!(
            "the customer has not allowed this ({}: {})",
            right.as_str(),
            right.label()
        ),
    )
}

/// What the technician reads when the customer revoked `right`.
pub(crate) fn revoked_reason(right: Right) -> String {
    format!(
        "the customer revoked the right ({}: {})",
        right.as_str(),
        right.label()
    )
}

/// Checks that `path` (absolute) is inside `home`, symbolic links resolved:
/// the deepest existing ancestor must resolve inside it and what follows
/// it be plain names.
pub(crate) fn confined(path: &str, home: Option<&Path>) -> Result<(), Refusal> {
    let outside = || {
        (
            RefusalCode::PermissionDenied,
            format!("{path}: outside the customer's home directory"),
        )
    };
    let home = home.and_then(|h| h.canonicalize().ok()).ok_or_else(|| {
        (
            RefusalCode::PermissionDenied,
            "the customer has no home directory to transfer files in".to_owned(),
        )
    })?;
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') {
        return Err((
            RefusalCode::InvalidRequest,
            format!("path must be absolute: {path:?}"),
        ));
    }
    let mut existing = p;
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                let plain = rest.iter().all(|c| matches!(c, Component::Normal(_)));
                return if real.starts_with(&home) && plain {
                    Ok(())
                } else {
                    Err(outside())
                };
            }
            Err(_) => {
                let Some(parent) = existing.parent() else {
                    return Err(outside());
                };
                if let Some(last) = existing.components().next_back() {
                    rest.push(last);
                }
                existing = parent;
            }
        }
    }
}

/// A session stream shared between the handler and `serve`, which knows
/// whether the handler's writes stopped between two messages: when a
/// revocation drops the handler, `serve` can still end the stream with a
/// whole `Closed` message.
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: Arc<Mutex<TrackedInner<S>>>,
}

#[derive(Debug)]
struct TrackedInner<S> {
    io: S,
    /// Header bytes of the message being written (type, u32 length).
    header: [u8; 5],
    header_len: usize,
    body_left: u64,
}

impl<S> Clone for Tracked<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> Tracked<S> {
    pub(crate) fn new(io: S) -> Self {
        Self {
            inner: Arc::new(Mutex::new(TrackedInner {
                io,
                header: [0; 5],
                header_len: 0,
                body_left: 0,
            })),
        }
    }

    /// Whether everything written so far is whole messages.
    pub(crate) fn at_boundary(&self) -> bool {
        self.inner
            .lock()
            .is_ok_and(|i| i.header_len == 0 && i.body_left == 0)
    }
}

impl<S> TrackedInner<S> {
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left.min(data.len() as u64)) as usize;
                self.body_left -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if self.header_len == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.body_left = u64::from(len);
                self.header_len = 0;
            }
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("session stream lock poisoned")
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Poll::Ready(Err(poisoned()));
        };
        Pin::new(&mut inner.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Poll::Ready(Err(poisoned()));
        };
        let polled = Pin::new(&mut inner.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            inner.advance(&data[..n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Poll::Ready(Err(poisoned()));
        };
        Pin::new(&mut inner.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Poll::Ready(Err(poisoned()));
        };
        Pin::new(&mut inner.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_home_with_links_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("docs")).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path(), home.join("escape")).unwrap();
        let h = Some(home.as_path());
        let p = |s: &str| format!("{}/{s}", home.display());
        assert!(confined(&p("docs"), h).is_ok());
        assert!(
            confined(&p("docs/new/file.txt"), h).is_ok(),
            "not yet there"
        );
        let outside = dir.path().join("secret");
        assert_eq!(
            confined(outside.to_str().unwrap(), h).unwrap_err().0,
            RefusalCode::PermissionDenied
        );
        assert!(confined(&p("escape/secret"), h).is_err(), "a link out");
        assert!(confined(&p("missing/../../secret"), h).is_err(), "dot-dot");
        assert!(confined("relative", h).is_err());
        assert!(confined(&p("docs"), None).is_err(), "no home: nothing");
    }

    #[test]
    fn the_tracker_knows_message_boundaries() {
        use jumpgate_proto::session::SessionMsg;
        let t = Tracked::new(Vec::<u8>::new());
        let msg = SessionMsg::Stdout("hello".into()).to_bytes();
        let mut inner = t.inner.lock().unwrap();
        inner.advance(&msg[..3]);
        drop(inner);
        assert!(!t.at_boundary());
        t.inner.lock().unwrap().advance(&msg[3..7]);
        assert!(!t.at_boundary());
        t.inner.lock().unwrap().advance(&msg[7..]);
        assert!(t.at_boundary());
    }
}
