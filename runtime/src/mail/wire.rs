//! The byte stream under lettre's SMTP client, which holds back what the
//! client writes until it next reads.
//!
//! lettre writes and flushes every piece on its own: each command, the
//! message's body and then its final `.`. Every write is a system call, and
//! on a local server a wake-up of the server for a piece it can't act on
//! alone. SMTP is a conversation in which the client always reads the
//! server's reply after writing, so sending what was written at the next
//! read loses nothing: the body and its final `.` leave as one segment, and
//! so do commands that are pipelined (see [`super::smtp`]). Pieces larger
//! than [`HOLD_LIMIT`] pass straight through, so a big message isn't copied.
//!
//! [`Unsent`] tells the transaction whether the last bytes written (the
//! message's final `.`) ever reached the kernel, so that a call that failed
//! before they did can be counted as not sent.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use lettre::transport::smtp::client::AsyncTokioStream;

/// Writes held back at most: the commands and a typical message.
const HOLD_LIMIT: usize = 64 * 1024;

/// How much a big message may pass on to the kernel before the task
/// writing it lets the runtime's thread go to others: a loopback socket
/// takes megabytes without blocking, and escaping them for lettre costs
/// about a millisecond each.
const YIELD_EVERY: usize = 1024 * 1024;

/// Whether a [`Wire`] holds bytes it hasn't handed to the kernel.
#[derive(Clone, Debug, Default)]
pub struct Unsent(Arc<AtomicBool>);

impl Unsent {
    /// True while written bytes wait for the next read (or a failed send left them).
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, unsent: bool) {
        self.0.store(unsent, Ordering::Release);
    }
}

/// A stream whose writes go out at the next read, shutdown, or when
/// [`HOLD_LIMIT`] fills up.
#[derive(Debug)]
pub struct Wire<S> {
    inner: S,
    held: Vec<u8>,
    /// How much of `held` is already sent.
    sent: usize,
    unsent: Unsent,
    /// Bytes passed straight through since the task last yielded.
    passed: usize,
}

impl<S: AsyncTokioStream> Wire<S> {
    pub fn new(inner: S) -> (Wire<S>, Unsent) {
        let unsent = Unsent::default();
        (Wire { inner, held: Vec::new(), sent: 0, unsent: unsent.clone(), passed: 0 }, unsent)
    }

    /// Hands what is held to the inner stream and flushes it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if !self.held.is_empty() {
            self.held.clear();
            self.sent = 0;
            self.unsent.set(false);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncTokioStream> AsyncTokioStream for Wire<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl<S: AsyncTokioStream> AsyncRead for Wire<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncTokioStream> AsyncWrite for Wire<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() > HOLD_LIMIT {
            ready!(this.poll_send(cx))?;
            if buf.len() > HOLD_LIMIT {
                if this.passed >= YIELD_EVERY {
                    this.passed = 0;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
                this.passed += n;
                return Poll::Ready(Ok(n));
            }
        }
        this.held.extend_from_slice(buf);
        this.unsent.set(true);
        Poll::Ready(Ok(buf.len()))
    }

    /// Sends nothing yet: the next read does (see the module's comment).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A client and a server end of one loopback connection.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        (client, listener.accept().await.unwrap().0)
    }

    /// Pieces written and flushed arrive together once the writer reads,
    /// and `Unsent` says when they are held.
    #[tokio::test]
    async fn writes_leave_together_at_the_next_read() {
        let (client, mut server) = connected().await;
        let (mut wire, unsent) = Wire::new(client);
        for piece in [&b"MAIL FROM:<a@b>\r\n"[..], b"RCPT TO:<c@d>\r\n", b"DATA\r\n"] {
            wire.write_all(piece).await.unwrap();
            wire.flush().await.unwrap();
        }
        assert!(unsent.any());
        let mut nothing = [0u8; 64];
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut nothing));
        assert!(early.await.is_err(), "nothing reaches the server before the client reads");

        server.write_all(b"250 Ok\r\n").await.unwrap();
        let mut reply = [0u8; 8];
        wire.read_exact(&mut reply).await.unwrap();
        assert!(!unsent.any());
        let mut got = vec![0u8; 38];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    }

    /// A piece over the hold limit goes out without waiting for a read.
    #[tokio::test]
    async fn large_pieces_pass_straight_through() {
        let (client, mut server) = connected().await;
        let (mut wire, _) = Wire::new(client);
        let big = vec![b'x'; HOLD_LIMIT + 1];
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; HOLD_LIMIT + 1];
            server.read_exact(&mut got).await.map(|_| got)
        });
        wire.write_all(&big).await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap(), big);
    }

    /// A stream that takes every write at once, as a loopback socket with
    /// room does: whatever yields, it isn't the socket.
    #[derive(Debug, Default)]
    struct Roomy(Vec<u8>);

    impl AsyncRead for Roomy {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Roomy {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.get_mut().0.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncTokioStream for Roomy {
        fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], 25)))
        }
    }

    /// A big message lets the runtime's thread go every [`YIELD_EVERY`]
    /// bytes, however fast the stream takes it, and goes out whole.
    #[tokio::test]
    async fn a_big_message_yields_on_its_way_out() {
        let (mut wire, _) = Wire::new(Roomy::default());
        let big: Vec<u8> = (0..4 * YIELD_EVERY).map(|i| (i % 251) as u8).collect();
        let mut yields = 0;
        for part in big.chunks(HOLD_LIMIT * 4) {
            let mut written = 0;
            while written < part.len() {
                let poll = std::future::poll_fn(|cx| {
                    Poll::Ready(Pin::new(&mut wire).poll_write(cx, &part[written..]))
                });
                match poll.await {
                    Poll::Ready(n) => written += n.unwrap(),
                    Poll::Pending => yields += 1,
                }
            }
        }
        assert_eq!(wire.inner.0, big, "the message went out whole");
        assert!(yields >= 3, "yielded {yields} times over 4 MiB");
    }
}
