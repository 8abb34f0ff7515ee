//! Where Redis is and how to reach it: `redis://[user:password@]host:port/db`
//! (a Redis 6 ACL user, or just a password), `rediss://` for TLS checked
//! against the system's roots or a CA file, with a client certificate when
//! the server asks for one, and `rediss://...#insecure` to skip the check
//! (development only). Behind Sentinel, `redis+sentinel://[user:password@]
//! sentinel1:26379,sentinel2:26379/mymaster[/db]` (or `rediss+sentinel://`
//! for TLS to the master) names the sentinels and the service; the
//! credentials are the master's.

use crate::secret::redact_url;
use anyhow::{Context, Result, bail};
use redis::{ClientTlsConfig, TlsCertificates};
use std::path::PathBuf;
use std::time::Duration;

/// How long one sentinel may take to answer.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A `redis+sentinel://` URL, taken apart.
#[derive(Debug, PartialEq)]
struct Sentinels {
    /// `redis` or `rediss`: how to talk to the master.
    scheme: &'static str,
    /// `user:password@` of the master, if any.
    userinfo: String,
    /// The sentinels' `host:port`s.
    addrs: Vec<String>,
    /// The service (master) name.
    service: String,
    /// The database, e.g. `/0`, if given.
    db: String,
}

impl Endpoint {
    /// Just a URL.
    pub fn url(url: &str) -> Endpoint {
        Endpoint { url: url.to_string(), ..Endpoint::default() }
    }

    /// Whether the URL names sentinels rather than a server.
    pub fn is_sentinel(&self) -> bool {
        self.url.starts_with("redis+sentinel://") || self.url.starts_with("rediss+sentinel://")
    }

    /// The sentinels' `host:port`s; none for a plain URL.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels().ok().flatten().map(|s| s.addrs).unwrap_or_default()
    }

    /// Checks the URL and the files without connecting.
    pub fn check(&self) -> Result<()> {
        match self.sentinels()? {
            Some(_) => Ok(()),
            None => self.client_for(&self.url).map(|_| ()),
        }
    }

    /// The URL of the server to use now: the URL itself, or the master the
    /// sentinels name.
    pub async fn master_url(&self) -> Result<String> {
        let Some(sentinels) = self.sentinels()? else { return Ok(self.url.clone()) };
        let mut errors = Vec::new();
        for addr in &sentinels.addrs {
            match ask_sentinel(addr, &sentinels.service).await {
                Ok((host, port)) => {
                    let Sentinels { scheme, userinfo, db, .. } = &sentinels;
                    return Ok(format!("{scheme}://{userinfo}{host}:{port}{db}"));
                }
                Err(err) => errors.push(format!("{addr}: {err:#}")),
            }
        }
        bail!("no sentinel named the master of {}: {}", sentinels.service, errors.join("; "))
    }

    /// A client for the server at `url`, trusting it as configured.
    pub fn client_for(&self, url: &str) -> Result<redis::Client> {
        let invalid = || format!("invalid Redis URL {}", redact_url(url));
        if self.ca_file.is_none() && self.cert_file.is_none() {
            return redis::Client::open(url).with_context(invalid);
        }
        anyhow::ensure!(
            url.starts_with("rediss://"),
            "--redis-ca and --redis-cert need a rediss:// URL, not {}",
            redact_url(url)
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
            _ => bail!("--redis-cert and --redis-key go together"),
        };
        let root_cert = self.ca_file.as_ref().map(|ca| read(ca, "CA certificate")).transpose()?;
        redis::Client::build_with_tls(url, TlsCertificates { client_tls, root_cert }).with_context(invalid)
    }

    /// The sentinels the URL names, if it is a `redis+sentinel://` URL.
    fn sentinels(&self) -> Result<Option<Sentinels>> {
        let (scheme, rest) = match self.url.split_once("+sentinel://") {
            Some(("redis", rest)) => ("redis", rest),
            Some(("rediss", rest)) => ("rediss", rest),
            _ => return Ok(None),
        };
        let invalid = || format!("invalid Sentinel URL {}", redact_url(&self.url));
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').with_context(invalid)?;
        let (service, db) = match path.split_once('/') {
            Some((service, db)) => (service, format!("/{db}")),
            None => (path, String::new()),
        };
        let addrs: Vec<String> = hosts
            .split(',')
            .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:26379") })
            .collect();
        if service.is_empty() || addrs.iter().any(|a| a.starts_with(':')) {
            bail!(
                "{}: expected redis+sentinel://[user:password@]host:port[,host:port]/service[/db]",
                invalid()
            );
        }
        Ok(Some(Sentinels { scheme, userinfo, addrs, service: service.to_string(), db }))
    }
}

/// The master's host and port, as the sentinel at `addr` knows them.
async fn ask_sentinel(addr: &str, service: &str) -> Result<(String, u16)> {
    let client = redis::Client::open(format!("redis://{addr}"))?;
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(service)
            .query_async::<Option<(String, u16)>>(&mut conn)
            .await
    };
    let answer = tokio::time::timeout(SENTINEL_TIMEOUT, ask).await.context("timed out")??;
    answer.with_context(|| format!("it knows no master named {service}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_the_sentinels_the_service_and_the_master_credentials() {
        let endpoint = Endpoint::url("redis+sentinel://app:pw@s1:26380,s2/mymaster/2");
        assert!(endpoint.is_sentinel());
        let sentinels = endpoint.sentinels().unwrap().unwrap();
        assert_eq!(
            sentinels,
            Sentinels {
                scheme: "redis",
                userinfo: "app:pw@".into(),
                addrs: vec!["s1:26380".into(), "s2:26379".into()],
                service: "mymaster".into(),
                db: "/2".into(),
            }
        );
        assert_eq!(Endpoint::url("rediss+sentinel://s1/m").sentinels().unwrap().unwrap().scheme, "rediss");
        assert!(Endpoint::url("redis+sentinel://s1").sentinels().is_err());
        assert!(Endpoint::url("redis://h").sentinels().unwrap().is_none());
    }
}
