//! Where Redis is and how to reach it: `redis://[user:password@]host:port/db`
//! (a Redis 6 ACL user, or just a password), `rediss://` for TLS checked
//! against the system's roots or a CA file, with a client certificate when
//! the server asks for one, and `rediss://...#insecure` to skip the check
//! (development only).

use crate::secret::redact_url;
use anyhow::{Context, Result};
use redis::{ClientTlsConfig, TlsCertificates};
use std::path::PathBuf;

/// A Redis server and what it takes to trust it.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// The URL, password included.
    pub url: String,
    /// A PEM file of the CA that signed the server's certificate, instead
    /// of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate, for servers that ask for one.
    pub cert_file: Option<PathBuf>,
    /// The PEM key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Endpoint {
    /// Just a URL.
    pub fn url(url: &str) -> Endpoint {
        Endpoint { url: url.to_string(), ..Endpoint::default() }
    }

    /// A client for the endpoint; checks the URL and reads the files.
    pub fn client(&self) -> Result<redis::Client> {
        let invalid = || format!("invalid Redis URL {}", redact_url(&self.url));
        if self.ca_file.is_none() && self.cert_file.is_none() {
            return redis::Client::open(self.url.as_str()).with_context(invalid);
        }
        anyhow::ensure!(
            self.url.starts_with("rediss://"),
            "--redis-ca and --redis-cert need a rediss:// URL, not {}",
            redact_url(&self.url)
        );
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).with_context(|| format!("reading the Redis {what} {}", path.display()))
        };
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read(cert, "client certificate")?,
                client_key: read(key, "client key")?,
            }),
            (None, None) => None,
            _ => anyhow::bail!("--redis-cert and --redis-key go together"),
        };
        let root_cert = self.ca_file.as_ref().map(|ca| read(ca, "CA certificate")).transpose()?;
        redis::Client::build_with_tls(self.url.as_str(), TlsCertificates { client_tls, root_cert })
            .with_context(invalid)
    }
}
