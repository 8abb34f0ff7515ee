//! Who may use the dashboard, and proof that a form came from it.
//!
//! On a loopback address the dashboard is open to local users, as Sidekiq's
//! Web UI is when mounted without a constraint. Anywhere else the runner
//! refuses to start without credentials: HTTP basic auth for people,
//! a bearer token for scrapers and scripts; either is accepted.
//!
//! Every response carries a CSRF cookie (random, `SameSite=Strict`); each
//! form repeats it in a hidden field, and an action whose field doesn't
//! match, or that a browser marks as cross-site, is refused.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The cookie holding the CSRF token.
const CSRF_COOKIE: &str = "jobrunner_csrf";

/// Only these scripts, styles and form targets: the dashboard's own.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The credentials the dashboard asks for; none on loopback by default.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `user:password` for HTTP basic auth.
    basic: Option<String>,
    /// A bearer token.
    token: Option<String>,
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
        let credentials = Credentials { basic, token };
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
    if !credentials.allows(request.headers()) {
        let challenge = [(header::WWW_AUTHENTICATE, r#"Basic realm="jobrunner""#)];
        return (StatusCode::UNAUTHORIZED, challenge, "authentication required").into_response();
    }
    let existing = cookie(request.headers(), CSRF_COOKIE).filter(|t| t.len() == 32);
    let token = existing.clone().unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
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

/// Refuses an action whose form token doesn't match the cookie's, or that
/// the browser says came from another site.
pub fn check_form(token: &CsrfToken, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Forged> {
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
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
        let mut cross = HeaderMap::new();
        cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_form(&token, &cross, Some(&"a".repeat(32))).is_err());
    }
}
