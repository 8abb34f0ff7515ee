//! Opening a request's connection: the host resolves the name itself,
//! keeps only addresses the policy lets it reach (see [`super::address`]),
//! connects to one of those, and starts TLS for `https`.

use super::address::not_public;
use super::routes::{Destination, Routes};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::Error;

/// A connection a request can be written to.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Why a connection was not made.
pub enum Refused {
    /// Every address of the name is one the policy keeps plugins from.
    Address(String),
    /// Resolving or connecting failed.
    Failed(Error),
}

/// Resolves `host`, connects to its first address the policy allows on
/// `port`, and starts TLS when `destination` is `https`.
pub async fn open(
    routes: &Routes,
    destination: &Destination,
    host: &str,
    port: u16,
) -> Result<Box<dyn Stream>, Refused> {
    let addresses = resolve(host, port).await.map_err(Refused::Failed)?;
    let mut refusals = Vec::new();
    let mut last_error = None;
    for address in addresses {
        if let Err(why) = allowed(routes, address.ip()) {
            refusals.push(format!("{host} is {} ({})", address.ip(), why));
            continue;
        }
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return secure(destination, host, stream).await.map_err(Refused::Failed);
            }
            Err(err) => last_error = Some(err),
        }
    }
    match (last_error, refusals.is_empty()) {
        (Some(err), _) => Err(Refused::Failed(Error::Connect(err))),
        (None, false) => Err(Refused::Address(refusals.join("; "))),
        (None, true) => Err(Refused::Failed(Error::DestinationNotFound)),
    }
}

/// Whether a request may connect to `ip`; the reason when not.
fn allowed(routes: &Routes, ip: IpAddr) -> Result<(), String> {
    match not_public(ip) {
        None => Ok(()),
        Some(_) if routes.private.iter().any(|net| net.contains(ip)) => Ok(()),
        Some(why) => Err(format!("{why}, not named in http.allowed_private_addresses")),
    }
}

/// The addresses of `host` (an IP literal is its own).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => Ok(found.collect()),
        Err(err) => Err(Error::DnsError { rcode: Some(err.to_string()), info_code: None }),
    }
}

/// `stream`, with TLS for `host` when `destination` is `https`.
async fn secure(destination: &Destination, host: &str, stream: TcpStream) -> Result<Box<dyn Stream>, Error> {
    let Some(config) = &destination.tls else { return Ok(Box::new(stream)) };
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?,
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match connector.connect(name, stream).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(err) if err.to_string().contains("certificate") => {
            tracing::debug!(%host, error = %err, "TLS certificate refused");
            Err(Error::TlsCertificateError)
        }
        Err(err) => Err(Error::Tls(err)),
    }
}
