//! A body held to a size cap and a deadline, both ways: a plugin can't
//! send more than its policy allows, and a response that goes on (a 1 GB
//! download, a server that trickles) is cut off at the cap or the request's
//! time limit instead of holding the job or the runner's memory.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error;

/// `inner`, failing once it has carried more than its cap or runs past its
/// deadline.
pub struct Bounded<B> {
    inner: B,
    /// Bytes it may still carry.
    left: u64,
    /// The error past the cap.
    over: fn() -> Error,
    /// When it must be over.
    deadline: Pin<Box<Sleep>>,
}

impl<B> Bounded<B> {
    pub fn new(inner: B, cap: u64, over: fn() -> Error, deadline: Instant) -> Bounded<B> {
        Bounded { inner, left: cap, over, deadline: Box::pin(tokio::time::sleep_until(deadline)) }
    }
}

impl<B> Body for Bounded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                match this.left.checked_sub(size) {
                    Some(left) => {
                        this.left = left;
                        Some(Ok(frame))
                    }
                    None => {
                        this.left = 0;
                        Some(Err((this.over)()))
                    }
                }
            }
            Some(Err(err)) => Some(Err(err.into())),
            None => None,
        })
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
    use http_body_util::{BodyExt, Full};
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn full(bytes: &'static [u8]) -> http_body_util::combinators::UnsyncBoxBody<Bytes, Error> {
        Full::new(Bytes::from_static(bytes)).map_err(|never| match never {}).boxed_unsync()
    }

    #[tokio::test]
    async fn a_body_within_its_cap_passes_whole() {
        let body = Bounded::new(full(b"hello"), 5, || Error::HttpResponseBodySize(Some(5)), later());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_body_over_its_cap_fails() {
        let body = Bounded::new(full(b"hello!"), 5, || Error::HttpResponseBodySize(Some(5)), later());
        assert!(matches!(body.collect().await, Err(Error::HttpResponseBodySize(Some(5)))));
    }

    #[tokio::test]
    async fn a_body_past_its_deadline_fails() {
        let (_keep, never) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Error>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_of(never));
        let body = Bounded::new(
            stream,
            5,
            || Error::HttpResponseBodySize(None),
            Instant::now() + Duration::from_millis(20),
        );
        assert!(matches!(body.collect().await, Err(Error::ConnectionReadTimeout)));
    }

    fn tokio_stream_of(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Error>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Error>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
