//! Bounds on an HTTP connection's requests: a request body must arrive in
//! full within a time limit and keep a minimum rate after a grace; a
//! connection with no request in progress is idle and closed after a while.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// What one HTTP connection is doing: requests in progress (until their
/// answer's body is written), the last time one ended, and a token that
/// closes the connection.
#[derive(Debug)]
pub(crate) struct Activity {
    in_progress: AtomicUsize,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since: AtomicU64,
    epoch: Instant,
    /// Cancelled when a request body broke its bounds: the connection closes.
    pub(crate) close: CancellationToken,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            in_progress: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            epoch: Instant::now(),
            close: CancellationToken::new(),
        })
    }

    /// A request started; it lasts until the guard is dropped (with the
    /// answer's body, once written).
    pub(crate) fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        InProgress(Arc::clone(self))
    }

    /// When the connection may be closed as idle, if it is idle now.
    pub(crate) fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::SeqCst));
        Some(self.epoch + since + idle)
    }
}

/// A request in progress (see [`Activity::begin`]).
#[derive(Debug)]
pub(crate) struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let a = &self.0;
        let now = u64::try_from(a.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since.store(now, Ordering::SeqCst);
        a.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The bounds a request body must keep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyBounds {
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    /// Bytes per second, after `grace`.
    pub(crate) min_rate: u64,
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the request body took longer than {0:?}")]
    Timeout(Duration),
    #[error("the request body arrived slower than {0} bytes/s")]
    TooSlow(u64),
    #[error(transparent)]
    Inner(hyper::Error),
}

/// A request body that fails — and closes its connection — when it breaks
/// its [`BodyBounds`].
pub(crate) struct TimedBody<B> {
    inner: B,
    bounds: BodyBounds,
    start: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    close: CancellationToken,
}

impl<B> TimedBody<B> {
    pub(crate) fn new(inner: B, bounds: BodyBounds, close: CancellationToken) -> Self {
        let start = Instant::now();
        let mut body = Self {
            inner,
            bounds,
            start,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(start)),
            close,
        };
        let d = body.deadline();
        body.timer.as_mut().reset(d);
        body
    }

    /// The first moment the body breaks a bound, given what has arrived.
    fn deadline(&self) -> Instant {
        let whole = self.start + self.bounds.timeout;
        // At `received` bytes, the rate bound holds until
        // grace + received / min_rate.
        let secs = self.received as f64 / self.bounds.min_rate.max(1) as f64;
        let rate = self.start + self.bounds.grace + Duration::from_secs_f64(secs.min(1e9));
        whole.min(rate)
    }

    fn broken(&self) -> BodyError {
        if Instant::now() >= self.start + self.bounds.timeout {
            BodyError::Timeout(self.bounds.timeout)
        } else {
            BodyError::TooSlow(self.bounds.min_rate)
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let d = this.deadline();
                    this.timer.as_mut().reset(d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Inner(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let e = this.broken();
                tracing::info!(error = %e, "closing a connection: request body too slow");
                this.close.cancel();
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that keeps its request in progress until written.
pub(crate) struct Guarded<B> {
    inner: B,
    _request: InProgress,
}

impl<B> Guarded<B> {
    pub(crate) fn new(inner: B, request: InProgress) -> Self {
        Self {
            inner,
            _request: request,
        }
    }
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks =
        StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, hyper::Error>>>;

    /// A body that yields `n` bytes one at a time, `every` apart.
    fn trickle(n: usize, every: Duration) -> Chunks {
        let s = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), i + 1))
        });
        StreamBody::new(Box::pin(s) as _)
    }

    /// Bounds scaled down so that the tests take a fraction of a second.
    const BOUNDS: BodyBounds = BodyBounds {
        timeout: Duration::from_secs(30),
        grace: Duration::from_millis(300),
        min_rate: 100,
    };

    #[tokio::test]
    async fn a_trickling_body_is_cut_after_the_grace_and_closes_its_connection() {
        let close = CancellationToken::new();
        // 10 bytes/s, far below 100 bytes/s; the body would take 100 s.
        let body = TimedBody::new(
            trickle(1000, Duration::from_millis(100)),
            BOUNDS,
            close.clone(),
        );
        let err = body.collect().await.expect_err("cut off");
        assert!(matches!(err, BodyError::TooSlow(100)), "{err}");
        assert!(close.is_cancelled());
    }

    #[tokio::test]
    async fn a_body_keeping_the_rate_gets_the_whole_timeout_then_is_cut() {
        let bounds = BodyBounds {
            timeout: Duration::from_millis(500),
            min_rate: 1,
            ..BOUNDS
        };
        // 100 bytes/s is above the rate; 1000 bytes would take 10 s.
        let close = CancellationToken::new();
        let body = TimedBody::new(
            trickle(1000, Duration::from_millis(10)),
            bounds,
            close.clone(),
        );
        let err = body.collect().await.expect_err("cut off");
        assert!(matches!(err, BodyError::Timeout(_)), "{err}");
        assert!(close.is_cancelled());
        // Within the bounds: the whole body arrives, the connection stays.
        let close = CancellationToken::new();
        let body = TimedBody::new(trickle(5, Duration::from_millis(10)), BOUNDS, close.clone());
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 5);
        assert!(!close.is_cancelled());
    }
}
