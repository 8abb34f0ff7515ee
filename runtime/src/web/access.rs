//! Who may use the dashboard, and proof that a form came from it.
//!
//! On a loopback address the dashboard is open to local users, as Sidekiq's
//! Web UI is when mounted without a constraint. Anywhere else the runner
//! refuses to start without credentials: HTTP basic auth for people,
//! a bearer token for scrapers and scripts; either is accepted.
//! Open on loopback, it answers only requests whose `Host` is a loopback
//! name or address: otherwise any web page could rebind its own name to
//! 127.0.0.1 (DNS rebinding) and read `/api/*` from the user's browser.
//!
//! Every response carries a CSRF cookie (`SameSite=Strict`) holding a
//! token this process issued: a random nonce signed with HMAC-SHA256 under
//! a key made at start-up, so a cookie planted by anything else is
//! replaced, not trusted. Each form repeats the token in a hidden field;
//! an action whose field doesn't match, or that a browser says didn't come
//! from the dashboard itself (`Sec-Fetch-Site` other than `same-origin` or
//! `none`), is refused.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The cookie holding the CSRF token.
const CSRF_COOKIE: &str = "jobrunner_csrf";

/// Only these scripts, styles and form targets: the dashboard's own.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The credentials the dashboard asks for (none on loopback by default),
/// and the key its CSRF tokens are signed with.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `user:password` for HTTP basic auth.
    basic: Option<String>,
    /// A bearer token.
    token: Option<String>,
    /// Signs CSRF tokens; made at start-up, never shown.
    csrf_key: [u8; 32],
}

/// The CSRF token of the current request, for forms to embed.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

impl Credentials {
    /// Checks the `--http` settings: a non-loopback address needs credentials.
    pub fn new(
        addr: SocketAddr,
        basic: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Credentials> {
        if let Some(basic) = &basic {
            anyhow::ensure!(
                basic.split_once(':').is_some_and(|(u, p)| !u.is_empty() && !p.is_empty()),
                "--http-auth must be USER:PASSWORD, both non-empty"
            );
        }
        if let Some(token) = &token {
            anyhow::ensure!(token.len() >= 16, "--http-token must be at least 16 characters");
        }
        let credentials = Credentials { basic, token, csrf_key: rand::random() };
        anyhow::ensure!(
            addr.ip().is_loopback() || credentials.is_set(),
            "--http {addr} is reachable from other machines: set --http-auth USER:PASSWORD or --http-token TOKEN \
             (or bind to 127.0.0.1)"
        );
        Ok(credentials)
    }

    fn is_set(&self) -> bool {
        self.basic.is_some() || self.token.is_some()
    }

    /// How requests are authenticated, for the start-up log line.
    pub fn describe(&self) -> &'static str {
        match (&self.basic, &self.token) {
            (None, None) => "none (loopback only)",
            (Some(_), None) => "basic",
            (None, Some(_)) => "token",
            (Some(_), Some(_)) => "basic or token",
        }
    }

    /// A new CSRF token: a nonce and its signature.
    fn issue_csrf(&self) -> String {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let signature = self.sign(&nonce);
        format!("{nonce}.{signature}")
    }

    /// Whether `token` is one this process issued.
    fn issued(&self, token: &str) -> bool {
        let Some((nonce, signature)) = token.split_once('.') else { return false };
        nonce.len() == 32 && bool::from(self.sign(nonce).as_bytes().ct_eq(signature.as_bytes()))
    }

    fn sign(&self, nonce: &str) -> String {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.csrf_key).expect("HMAC takes any key length");
        mac.update(nonce.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether the request may be answered at all: with credentials set,
    /// any `Host`; open on loopback, only a loopback one.
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        self.is_set() || headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(is_loopback_host)
    }

    /// Whether the request's `Authorization` header satisfies these credentials.
    fn allows(&self, headers: &HeaderMap) -> bool {
        if !self.is_set() {
            return true;
        }
        let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let matches = |expected: &str, given: &str| bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
        if let (Some(token), Some(given)) = (&self.token, given.strip_prefix("Bearer ")) {
            return matches(token, given);
        }
        if let (Some(basic), Some(given)) = (&self.basic, given.strip_prefix("Basic ")) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(given.trim()).unwrap_or_default();
            return matches(basic, &String::from_utf8_lossy(&decoded));
        }
        false
    }
}

/// Authenticates every request, hands it its CSRF token, and adds the
/// security headers to every response.
pub async fn guard(
    State(credentials): State<Arc<Credentials>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !credentials.host_allowed(request.headers()) {
        let host =
            request.headers().get(header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        tracing::warn!(host = ?host, "dashboard request refused: its Host is not a loopback name");
        let reason = "refused: without --http-auth or --http-token the dashboard answers only to a loopback Host \
                      (localhost, 127.0.0.1, [::1])";
        return (StatusCode::MISDIRECTED_REQUEST, reason).into_response();
    }
    if !credentials.allows(request.headers()) {
        let challenge = [(header::WWW_AUTHENTICATE, r#"Basic realm="jobrunner""#)];
        return (StatusCode::UNAUTHORIZED, challenge, "authentication required").into_response();
    }
    let existing = cookie(request.headers(), CSRF_COOKIE).filter(|t| credentials.issued(t));
    let token = existing.clone().unwrap_or_else(|| credentials.issue_csrf());
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if existing.is_none() {
        let cookie = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Strict; HttpOnly");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// Whether `host` (a `Host` header: a name or address, maybe a port) is
/// this machine's loopback: `localhost`, a name under `.localhost`,
/// 127.0.0.0/8 or `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses an action whose form token doesn't match the cookie's, or that
/// the browser says didn't come from the dashboard itself.
pub fn check_form(token: &CsrfToken, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Forged> {
    // `same-site` too is refused: another port or subdomain is another app.
    let cross_site =
        headers.get("sec-fetch-site").is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"));
    let same_token = form_token.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.0.as_bytes())));
    if cross_site || !same_token {
        tracing::warn!(cross_site, "dashboard action refused: CSRF token missing or wrong");
        return Err(Forged);
    }
    Ok(())
}

/// An action refused by [`check_form`].
#[derive(Debug)]
pub struct Forged;

impl IntoResponse for Forged {
    fn into_response(self) -> Response {
        let reason = "refused: the form's CSRF token is missing or stale; reload the page and try again";
        (StatusCode::FORBIDDEN, reason).into_response()
    }
}

/// The value of cookie `name`, if the request sent it.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn open_only_on_loopback() {
        assert!(Credentials::new(addr("127.0.0.1:7878"), None, None).is_ok());
        let err = Credentials::new(addr("0.0.0.0:7878"), None, None).unwrap_err().to_string();
        assert!(err.contains("--http-auth"), "{err}");
        assert!(Credentials::new(addr("0.0.0.0:7878"), Some("admin:secret".into()), None).is_ok());
        assert!(Credentials::new(addr("0.0.0.0:7878"), Some("admin".into()), None).is_err());
        assert!(Credentials::new(addr("0.0.0.0:7878"), None, Some("short".into())).is_err());
    }

    #[test]
    fn checks_basic_and_bearer() {
        let credentials =
            Credentials::new(addr("0.0.0.0:1"), Some("admin:secret".into()), Some("0123456789abcdef".into()))
                .unwrap();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            credentials.allows(&headers)
        };
        assert!(with("Basic YWRtaW46c2VjcmV0"));
        assert!(!with("Basic YWRtaW46d3Jvbmc="));
        assert!(with("Bearer 0123456789abcdef"));
        assert!(!with("Bearer 0123456789abcdeX"));
        assert!(!credentials.allows(&HeaderMap::new()));
    }

    #[test]
    fn forms_need_the_cookie_token() {
        let token = CsrfToken("a".repeat(32));
        let headers = HeaderMap::new();
        assert!(check_form(&token, &headers, Some(&"a".repeat(32))).is_ok());
        assert!(check_form(&token, &headers, Some("b")).is_err());
        assert!(check_form(&token, &headers, None).is_err());
        for site in ["cross-site", "same-site"] {
            let mut cross = HeaderMap::new();
            cross.insert("sec-fetch-site", HeaderValue::from_str(site).unwrap());
            assert!(check_form(&token, &cross, Some(&"a".repeat(32))).is_err(), "{site}");
        }
        for site in ["same-origin", "none"] {
            let mut same = HeaderMap::new();
            same.insert("sec-fetch-site", HeaderValue::from_str(site).unwrap());
            assert!(check_form(&token, &same, Some(&"a".repeat(32))).is_ok(), "{site}");
        }
    }

    #[test]
    fn csrf_tokens_are_only_those_issued_here() {
        let credentials = Credentials::new(addr("127.0.0.1:1"), None, None).unwrap();
        let token = credentials.issue_csrf();
        assert!(credentials.issued(&token));
        assert!(!credentials.issued(&"a".repeat(32)), "any 32 characters won't do");
        let (nonce, _) = token.split_once('.').unwrap();
        assert!(!credentials.issued(&format!("{nonce}.{}", "0".repeat(64))));
        let other = Credentials::new(addr("127.0.0.1:1"), None, None).unwrap();
        assert!(!other.issued(&token), "another process's token");
    }

    #[test]
    fn only_loopback_hosts_when_open() {
        for host in
            ["localhost", "localhost:7878", "127.0.0.1:7878", "127.1.2.3", "[::1]:7878", "app.localhost"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7878",
            "10.0.0.1",
            "[2001:db8::1]:80",
            "localhost.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let open = Credentials::new(addr("127.0.0.1:1"), None, None).unwrap();
        let mut headers = HeaderMap::new();
        assert!(!open.host_allowed(&headers), "no Host at all");
        headers.insert(header::HOST, HeaderValue::from_static("rebound.evil.example"));
        assert!(!open.host_allowed(&headers));
        let guarded = Credentials::new(addr("0.0.0.0:1"), None, Some("0123456789abcdef".into())).unwrap();
        assert!(guarded.host_allowed(&headers), "with credentials any name may be used");
    }
}
