//! A plugin's HTTP grant, compiled: which destinations and methods it may
//! use, what the host attaches there, how each is trusted, and which
//! non-public addresses the operator named. Each destination keeps its own
//! pool of connections.

use super::address::Cidr;
use super::pool::Pool;
use super::tls;
use crate::policy::http::{DestinationGrant, HttpGrant, expand_env};
use anyhow::{Context, Result, bail};
use http::{HeaderName, HeaderValue, Method};
use std::sync::Arc;
use std::time::Duration;

/// Where one plugin's requests may go, and under which limits.
pub struct Routes {
    destinations: Vec<Arc<Destination>>,
    /// The most bytes of one request body.
    pub max_request_bytes: u64,
    /// The most bytes of one response body.
    pub max_response_bytes: u64,
    /// The longest one request may take.
    pub timeout: Duration,
    /// The most requests of one job.
    pub max_requests_per_job: u32,
    /// The header carrying each request's idempotency key, if any.
    pub idempotency_header: Option<HeaderName>,
}

/// One granted destination.
pub struct Destination {
    /// The policy's `url`, as written: the `host` label of the metrics.
    pub label: String,
    /// Whether it is `https`.
    pub https: bool,
    host: HostPattern,
    port: u16,
    methods: Vec<Method>,
    /// Headers the host adds, marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Its open connections, each to an address the policy allows.
    pub pool: Pool,
}

#[derive(Debug, PartialEq)]
enum HostPattern {
    /// This host name or address, lowercase.
    Exact(String),
    /// Any name ending in `.suffix` (for `*.suffix`).
    Below(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Below(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

/// The parts of a request the routes decide on.
pub struct Target<'a> {
    pub https: bool,
    /// Lowercase, without brackets around an IPv6 address.
    pub host: &'a str,
    pub port: u16,
    pub method: &'a Method,
}

impl Routes {
    /// Compiles `grant`, reading the environment and the CA files it names.
    pub fn compile(grant: &HttpGrant) -> Result<Routes> {
        let private = grant
            .allowed_private_addresses
            .iter()
            .map(|text| {
                text.parse::<Cidr>().with_context(|| format!("http.allowed_private_addresses: {text}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let destinations = grant
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Destination::compile(d, &private)
                    .map(Arc::new)
                    .with_context(|| format!("http.destinations[{i}] ({})", d.url))
            })
            .collect::<Result<Vec<_>>>()?;
        let idempotency_header = match grant.idempotency_header.as_str() {
            "" => None,
            name => Some(HeaderName::try_from(name).context("http.idempotency_header")?),
        };
        Ok(Routes {
            destinations,
            max_request_bytes: grant.max_request_bytes,
            max_response_bytes: grant.max_response_bytes,
            timeout: Duration::from_secs_f64(grant.timeout_seconds),
            max_requests_per_job: grant.max_requests_per_job,
            idempotency_header,
        })
    }

    /// The destination `target` falls under, or why it is refused.
    pub fn route(&self, target: &Target) -> Result<&Arc<Destination>, String> {
        let scheme = if target.https { "https" } else { "http" };
        let place = match target.host.contains(':') {
            true => format!("{scheme}://[{}]:{}", target.host, target.port),
            false => format!("{scheme}://{}:{}", target.host, target.port),
        };
        let mut there = self
            .destinations
            .iter()
            .filter(|d| d.https == target.https && d.port == target.port && d.host.matches(target.host))
            .peekable();
        if there.peek().is_none() {
            return Err(format!("{place} is not among the plugin's http.destinations"));
        }
        there
            .find(|d| d.methods.contains(target.method))
            .ok_or_else(|| format!("{} is not an allowed method for {place}", target.method))
    }
}

impl Destination {
    /// Compiles `grant`; its connections may reach public addresses and
    /// `private`.
    fn compile(grant: &DestinationGrant, private: &[Cidr]) -> Result<Destination> {
        let (https, host, port) = parse_place(&grant.url)?;
        let methods = grant
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).with_context(|| format!("method {m}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut headers = Vec::new();
        for (name, value) in &grant.headers {
            let what = format!("headers.{name}");
            let header = HeaderName::try_from(name.as_str()).with_context(|| what.clone())?;
            let mut value = HeaderValue::try_from(expand_env(value, &what)?)
                .map_err(|_| anyhow::anyhow!("{what}: not a valid header value"))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        let tls = match https {
            true => Some(tls::client_config(grant.ca_file.as_deref())?),
            false => None,
        };
        let pool = Pool::new(private.to_vec(), tls);
        Ok(Destination { label: grant.url.clone(), https, host, port, methods, headers, pool })
    }
}

/// `https://*.example.com:8443` as (https, host pattern, port).
fn parse_place(url: &str) -> Result<(bool, HostPattern, u16)> {
    let (https, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => bail!("the url must start with http:// or https://"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        bail!("the url names a scheme, a host and a port, no path, query or user");
    }
    let (host, port) = split_port(rest)?;
    let port = port.unwrap_or(if https { 443 } else { 80 });
    let host = host.to_ascii_lowercase();
    let pattern = match host.strip_prefix("*.") {
        Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => HostPattern::Below(suffix.to_string()),
        _ if host.contains('*') => bail!("a wildcard is only `*.` before a domain"),
        _ if host.is_empty() => bail!("the url has no host"),
        _ => HostPattern::Exact(host),
    };
    Ok((https, pattern, port))
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_port(text: &str) -> Result<(&str, Option<u16>)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(bracketed) => {
            let end = bracketed.find(']').context("an IPv6 address without its `]`")?;
            match &bracketed[end + 1..] {
                "" => (&bracketed[..end], None),
                rest => (&bracketed[..end], Some(rest.strip_prefix(':').context("text after the `]`")?)),
            }
        }
        None => match text.split(':').count() {
            1 => (text, None),
            2 => text.split_once(':').map(|(h, p)| (h, Some(p))).expect("one colon"),
            _ => bail!("an IPv6 address goes in brackets: http://[::1]:8080"),
        },
    };
    let port = port.map(|p| p.parse::<u16>().with_context(|| format!("port {p}"))).transpose()?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(urls: &[(&str, &[&str])]) -> Routes {
        let grant = HttpGrant {
            destinations: urls
                .iter()
                .map(|(url, methods)| DestinationGrant {
                    url: url.to_string(),
                    methods: methods.iter().map(|m| m.to_string()).collect(),
                    headers: Default::default(),
                    ca_file: None,
                })
                .collect(),
            ..HttpGrant::default()
        };
        Routes::compile(&grant).unwrap()
    }

    fn route<'a>(
        routes: &'a Routes,
        https: bool,
        host: &str,
        port: u16,
        method: Method,
    ) -> Result<&'a str, String> {
        routes.route(&Target { https, host, port, method: &method }).map(|d| d.label.as_str())
    }

    #[test]
    fn a_request_goes_only_where_scheme_host_port_and_method_are_granted() {
        let r =
            routes(&[("https://api.example.com", &["POST"]), ("http://127.0.0.1:8080", &["GET", "post"])]);
        assert_eq!(route(&r, true, "api.example.com", 443, Method::POST), Ok("https://api.example.com"));
        assert!(route(&r, true, "api.example.com", 443, Method::GET).unwrap_err().contains("GET is not"));
        assert!(route(&r, false, "api.example.com", 80, Method::POST).is_err());
        assert!(route(&r, true, "api.example.com", 8443, Method::POST).is_err());
        assert!(route(&r, true, "evil.example.com", 443, Method::POST).unwrap_err().contains("not among"));
        assert_eq!(route(&r, false, "127.0.0.1", 8080, Method::POST), Ok("http://127.0.0.1:8080"));
    }

    #[test]
    fn a_wildcard_covers_names_below_the_suffix_only() {
        let r = routes(&[("https://*.hooks.example:8443/", &["POST"])]);
        assert!(route(&r, true, "a.hooks.example", 8443, Method::POST).is_ok());
        assert!(route(&r, true, "b.a.hooks.example", 8443, Method::POST).is_ok());
        assert!(route(&r, true, "hooks.example", 8443, Method::POST).is_err());
        assert!(route(&r, true, "evilhooks.example", 8443, Method::POST).is_err());
    }

    #[test]
    fn ipv6_destinations_parse() {
        let r = routes(&[("http://[::1]:9000", &["GET"])]);
        assert!(route(&r, false, "::1", 9000, Method::GET).is_ok());
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("ftp://x", "http:// or https://"),
            ("https://x/path", "no path"),
            ("https://u@x", "no path"),
            ("https://x:99999", "port"),
            ("https://a.*.x", "wildcard"),
        ] {
            let grant = HttpGrant {
                destinations: vec![DestinationGrant {
                    url: url.into(),
                    methods: vec!["GET".into()],
                    headers: Default::default(),
                    ca_file: None,
                }],
                ..HttpGrant::default()
            };
            let err = format!("{:#}", Routes::compile(&grant).err().unwrap());
            assert!(err.contains(why) && err.contains(url), "{url}: {err}");
        }
    }
}
