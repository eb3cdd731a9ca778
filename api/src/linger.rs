//! Lingering reads: a request body a handler left unread is read to its end (within a bound)
//! before the response goes out.
//!
//! Several layers answer before reading a whole body: a declared length over a route's limit,
//! the idempotency check's capped read, an extractor's limit. If the connection is then closed
//! with the client still sending, the kernel resets it and the client can lose the very answer
//! (413) it was sent, seeing a broken pipe instead. Reading the rest first, as web servers'
//! "lingering close" does, lets every client read its answer and keeps the connection
//! reusable. The bound keeps a client from holding the service with an endless body: past
//! [`DRAIN_BYTES`] or [`DRAIN_TIME`] the connection is closed as before.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// The most unread bytes read after an answer (beyond it, the connection is dropped).
pub const DRAIN_BYTES: usize = 16 << 20;
/// The longest time spent reading them.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Runs the request, then reads what its handler left of the body before answering.
pub async fn drain_unread(request: Request, next: Next) -> Response {
    // A client that waits for `100 Continue` has sent nothing yet: reading would invite it
    // to send a body nobody wants.
    let awaits_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Most requests (every GET) have no body at all: nothing to watch.
    if awaits_continue || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (watched, mut unread) = Watched::new(body);
    let response = next
        .run(Request::from_parts(parts, Body::new(watched)))
        .await;
    // Only a body already dropped unfinished comes back; one still held (by a stream being
    // answered, say) is its holder's to read.
    if let Ok(rest) = unread.try_recv() {
        let _ = tokio::time::timeout(DRAIN_TIME, read_to_bound(rest)).await;
    }
    response
}

async fn read_to_bound(mut body: Body) {
    let mut read = 0_usize;
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > DRAIN_BYTES {
            tracing::debug!(
                read,
                "unread body over the drain bound: the connection closes"
            );
            return;
        }
    }
}

/// A request body that hands itself back when dropped before its end (`body` is `None`
/// once read to its end).
struct Watched {
    body: Option<Body>,
    unread: Option<oneshot::Sender<Body>>,
}

impl Watched {
    fn new(body: Body) -> (Self, oneshot::Receiver<Body>) {
        let (sender, receiver) = oneshot::channel();
        let watched = Self {
            body: Some(body),
            unread: Some(sender),
        };
        (watched, receiver)
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        // An error ends the body too: nothing more can be read from it.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.body = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let (Some(body), Some(unread)) = (self.body.take(), self.unread.take())
            && !body.is_end_stream()
        {
            let _ = unread.send(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(len: usize) -> Body {
        Body::from(vec![7_u8; len])
    }

    #[tokio::test]
    async fn a_body_dropped_unread_comes_back_whole() {
        let (watched, mut unread) = Watched::new(body_of(10));
        assert!(unread.try_recv().is_err(), "nothing while it is held");
        drop(watched);
        let rest = unread.try_recv().expect("the unread body");
        let bytes = axum::body::to_bytes(rest, usize::MAX).await.unwrap();
        assert_eq!(bytes.len(), 10);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_does_not_come_back() {
        let (watched, mut unread) = Watched::new(body_of(10));
        let bytes = axum::body::to_bytes(Body::new(watched), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 10);
        assert!(unread.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_empty_body_does_not_come_back() {
        let (watched, mut unread) = Watched::new(Body::empty());
        drop(watched);
        assert!(unread.try_recv().is_err());
    }

    /// A client that never stops sending.
    struct Endless;

    impl HttpBody for Endless {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; 64 * 1024])))))
        }
    }

    #[tokio::test]
    async fn an_endless_body_is_read_only_to_the_bound() {
        // Without the bound this never returns.
        read_to_bound(Body::new(Endless)).await;
    }
}
