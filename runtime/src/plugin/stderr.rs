//! The guest's stderr: accepts everything, keeps only the last few KiB.
//!
//! A Rust guest prints its panic message to stderr just before it traps, so
//! that tail is what explains a trap. Keeping only the tail bounds what a
//! chatty guest can make the host hold, and never failing a write matters
//! too: Rust's `eprintln!` panics when stderr refuses output.

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A stderr that keeps the last `capacity` bytes written to it.
#[derive(Clone)]
pub struct TailPipe {
    /// The most bytes kept.
    capacity: usize,
    /// The kept bytes, oldest first; shared by every stream handed out.
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl TailPipe {
    /// Nothing is allocated for the tail until the guest writes: most jobs
    /// never do, and every job gets a pipe.
    pub fn new(capacity: usize) -> TailPipe {
        TailPipe { capacity, tail: Arc::new(Mutex::new(VecDeque::new())) }
    }

    /// What is kept, as text.
    pub fn contents(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).into_owned()
    }

    /// Forgets what was kept, for an instance that starts another job.
    pub fn clear(&self) {
        self.tail.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let keep = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (tail.len() + keep.len()).saturating_sub(self.capacity);
        tail.drain(..overflow);
        tail.extend(keep);
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for TailPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for TailPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for TailPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_the_tail() {
        let pipe = super::TailPipe::new(8);
        pipe.push(b"hello ");
        pipe.push(b"world!");
        assert_eq!(pipe.contents(), "o world!");
        pipe.push(b"0123456789");
        assert_eq!(pipe.contents(), "23456789");
    }
}
