//! How a destination's certificates are checked: Mozilla's roots, or only
//! the CA certificates of the file its policy names (an internal service
//! with its own CA is trusted for exactly that).

use anyhow::{Context, Result};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A client configuration trusting Mozilla's roots, or only `ca_file`'s.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let named = || format!("ca_file {}", path.display());
            let pem = std::fs::read(path).with_context(named)?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .with_context(named)?;
            anyhow::ensure!(!certificates.is_empty(), "{}: no PEM certificate in it", named());
            for der in certificates {
                roots.add(der).with_context(named)?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS for HTTP")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
