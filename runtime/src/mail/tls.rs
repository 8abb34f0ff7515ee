//! TLS for the SMTP pool, one trust for both ways in: implicit TLS
//! (`smtps://`), started here on the pool's own TCP connection before
//! lettre's client says a word, and STARTTLS, which lettre's client does
//! with parameters built here from the same roots.
//!
//! The roots are Mozilla's (`webpki-roots`, what lettre uses by default),
//! or, with `--smtp-ca`, only the certificates in that file: a relay with
//! its own CA is trusted for exactly that.

use anyhow::{Context, Result};
use lettre::transport::smtp::client::{AsyncTokioStream, Certificate, CertificateStore, TlsParameters};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How a mail server's certificate is checked, and the means to check it.
#[derive(Clone)]
pub struct Trust {
    /// For implicit TLS.
    connector: tokio_rustls::TlsConnector,
    /// For STARTTLS, through lettre.
    starttls: TlsParameters,
}

impl Trust {
    /// Trusts Mozilla's roots, or only the PEM certificates in `ca_file`.
    pub fn new(host: &str, ca_file: Option<&Path>) -> Result<Trust> {
        let ca = ca_file.map(|path| read_certificates(path, "--smtp-ca")).transpose()?;
        let mut roots = RootCertStore::empty();
        let mut starttls = TlsParameters::builder(host.to_string());
        match &ca {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(certificates) => {
                starttls = starttls.certificate_store(CertificateStore::None);
                for der in certificates {
                    roots.add(der.clone()).context("adding an --smtp-ca certificate")?;
                    starttls = starttls.add_root_certificate(Certificate::from_der(der.to_vec())?);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("setting up TLS for SMTP")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            starttls: starttls.build_rustls().context("setting up STARTTLS")?,
        })
    }

    /// What lettre's STARTTLS needs.
    pub fn starttls(&self) -> TlsParameters {
        self.starttls.clone()
    }

    /// Starts TLS on `stream`, checking the server's certificate for `host`.
    pub async fn implicit(&self, stream: TcpStream, host: &str) -> io::Result<Implicit> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        Ok(Implicit(self.connector.connect(name, stream).await?))
    }
}

/// The certificates of a PEM file, at least one; errors name `setting`
/// (`--smtp-ca`, `ca_file`) and the file.
pub(crate) fn read_certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let named = || format!("{setting} {}", path.display());
    let pem = std::fs::read(path).with_context(named)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(named)?;
    anyhow::ensure!(!certificates.is_empty(), "{}: no PEM certificate in it", named());
    Ok(certificates)
}

/// A TLS session over TCP, in the shape lettre's client takes.
#[derive(Debug)]
pub struct Implicit(TlsStream<TcpStream>);

impl AsyncTokioStream for Implicit {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Implicit {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Implicit {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
