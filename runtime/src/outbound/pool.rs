//! Keep-alive connections, one pool per granted destination of one
//! plugin. A connection is opened by [`super::connect`], so the address
//! it reaches was checked against the plugin's policy when it was made;
//! a later request reuses it only within the same destination, never
//! across plugins, and a connection whose response was cut short (a
//! timeout, a body over its cap) is closed, not pooled.

use super::address::Cidr;
use super::body::Bounded;
use super::connect::{self, Refused, Stream};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::ClientConfig;
use wasmtime_wasi_http::{Error, WasiBody};

/// How long an unused connection is kept.
const IDLE: Duration = Duration::from_secs(30);
/// The most unused connections kept per host.
const MOST_IDLE: usize = 256;

/// A request body, held to the policy's cap and the request's deadline.
pub type Outgoing = Bounded<WasiBody>;

/// The connections of one destination.
pub struct Pool {
    client: Client<Connector, Outgoing>,
}

/// Why a pooled request failed.
pub enum Failed {
    /// Every address of the name is one the policy keeps plugins from.
    Address(String),
    /// Anything else, as the plugin is told.
    Other(Error),
}

impl Pool {
    /// A pool whose connections reach public addresses and `private`,
    /// with TLS through `tls` for `https`.
    pub fn new(private: Vec<Cidr>, tls: Option<Arc<ClientConfig>>) -> Pool {
        let connector = Connector { private: private.into(), tls };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MOST_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Pool { client }
    }

    /// Sends `request` (an absolute URI) over an idle connection to its
    /// host or a new one, and waits for the response's head.
    pub async fn send(&self, request: Request<Outgoing>) -> Result<Response<Incoming>, Failed> {
        self.client.request(request).await.map_err(|err| failed(&err))
    }
}

/// The wasi:http error a failed request means, found in its causes.
fn failed(err: &(dyn StdError + 'static)) -> Failed {
    let causes = || std::iter::successors(Some(err), |&e| e.source());
    for cause in causes() {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return match refused {
                Refused::Address(why) => Failed::Address(why.clone()),
                other => Failed::Other(other.code()),
            };
        }
        if let Some(code) = cause.downcast_ref::<Error>() {
            return Failed::Other(copy(code));
        }
    }
    let hyper = causes().find_map(|cause| cause.downcast_ref::<hyper::Error>());
    Failed::Other(match hyper {
        Some(e) if e.is_timeout() => Error::HttpResponseTimeout,
        Some(e) if e.is_incomplete_message() => Error::HttpResponseIncomplete,
        Some(e) if e.is_canceled() || e.is_closed() => Error::ConnectionTerminated,
        _ => {
            tracing::debug!(error = %err, "request failed");
            Error::HttpProtocolError
        }
    })
}

/// The errors a bounded body raises, copied; any other as internal.
fn copy(code: &Error) -> Error {
    match code {
        Error::HttpRequestBodySize(n) => Error::HttpRequestBodySize(*n),
        Error::HttpResponseBodySize(n) => Error::HttpResponseBodySize(*n),
        Error::ConnectionReadTimeout => Error::ConnectionReadTimeout,
        other => Error::InternalError(Some(other.to_string())),
    }
}

/// Opens the pool's new connections through [`connect::open`].
#[derive(Clone)]
struct Connector {
    private: Arc<[Cidr]>,
    tls: Option<Arc<ClientConfig>>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = Refused;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, Refused>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let Connector { private, tls } = self.clone();
        Box::pin(async move {
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tls = if https { tls.as_ref() } else { None };
            let stream = connect::open(&private, tls, &host.to_ascii_lowercase(), port).await?;
            Ok(TokioIo::new(Conn(stream)))
        })
    }
}

/// An open connection, plain or TLS.
struct Conn(Box<dyn Stream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
