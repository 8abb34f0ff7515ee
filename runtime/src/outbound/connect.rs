//! Opening a request's connection: the host resolves the name itself,
//! keeps only addresses the policy lets it reach (see [`super::address`]),
//! connects to one of those, and starts TLS for `https`.

use super::address::{Cidr, not_public};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::Error;

/// A connection a request can be written to.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Why a connection was not made.
#[derive(Debug)]
pub enum Refused {
    /// Every address of the name is one the policy keeps plugins from.
    Address(String),
    /// The name didn't resolve.
    Dns(String),
    /// The name resolved to nothing.
    NotFound,
    /// Connecting failed.
    Connect(io::Error),
    /// The server's certificate isn't trusted for the name.
    Certificate,
    /// TLS failed otherwise.
    Tls(io::Error),
    /// The host is no valid TLS server name.
    BadName,
}

impl Refused {
    /// The `wasi:http` error the plugin is given.
    pub fn code(&self) -> Error {
        let copy = |err: &io::Error| io::Error::new(err.kind(), err.to_string());
        match self {
            Refused::Address(_) => Error::DestinationIpProhibited,
            Refused::Dns(why) => Error::DnsError { rcode: Some(why.clone()), info_code: None },
            Refused::NotFound => Error::DestinationNotFound,
            Refused::Connect(err) => Error::Connect(copy(err)),
            Refused::Certificate => Error::TlsCertificateError,
            Refused::Tls(err) => Error::Tls(copy(err)),
            Refused::BadName => Error::HttpRequestUriInvalid,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Address(why) => write!(f, "{why}"),
            other => write!(f, "{}", other.code()),
        }
    }
}

impl std::error::Error for Refused {}

/// Resolves `host`, connects to its first address on `port` that is
/// public or among `private`, and starts TLS with `tls` when given.
pub async fn open(
    private: &[Cidr],
    tls: Option<&Arc<ClientConfig>>,
    host: &str,
    port: u16,
) -> Result<Box<dyn Stream>, Refused> {
    let addresses = resolve(host, port).await?;
    let mut refusals = Vec::new();
    let mut last_error = None;
    for address in addresses {
        if let Err(why) = allowed(private, address.ip()) {
            refusals.push(format!("{host} is {} ({})", address.ip(), why));
            continue;
        }
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return secure(tls, host, stream).await;
            }
            Err(err) => last_error = Some(err),
        }
    }
    match (last_error, refusals.is_empty()) {
        (Some(err), _) => Err(Refused::Connect(err)),
        (None, false) => Err(Refused::Address(refusals.join("; "))),
        (None, true) => Err(Refused::NotFound),
    }
}

/// Whether a request may connect to `ip`; the reason when not.
fn allowed(private: &[Cidr], ip: IpAddr) -> Result<(), String> {
    match not_public(ip) {
        None => Ok(()),
        Some(_) if private.iter().any(|net| net.contains(ip)) => Ok(()),
        Some(why) => Err(format!("{why}, not named in http.allowed_private_addresses")),
    }
}

/// The addresses of `host` (an IP literal is its own).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => Ok(found.collect()),
        Err(err) => Err(Refused::Dns(err.to_string())),
    }
}

/// `stream`, with TLS for `host` when `tls` is given.
async fn secure(
    tls: Option<&Arc<ClientConfig>>,
    host: &str,
    stream: TcpStream,
) -> Result<Box<dyn Stream>, Refused> {
    let Some(config) = tls else { return Ok(Box::new(stream)) };
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| Refused::BadName)?,
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match connector.connect(name, stream).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(err) if err.to_string().contains("certificate") => {
            tracing::debug!(%host, error = %err, "TLS certificate refused");
            Err(Refused::Certificate)
        }
        Err(err) => Err(Refused::Tls(err)),
    }
}
