//! Calling HTTP APIs through the host (`wasi:http`), where the plugin's
//! policy grants the destination.
//!
//! The host checks each request against the policy (destination, method,
//! size, count), adds the operator's headers (an API token the plugin never
//! sees) and an `Idempotency-Key` made of the jid and the request's number
//! in the run, so a job run again repeats the same keys. It never follows a
//! redirect: a plugin that wants to follows one with a new request, which
//! is checked again.
//!
//! ```no_run
//! use jobrunner_plugin_sdk::http::Request;
//!
//! # fn main() -> Result<(), jobrunner_plugin_sdk::JobError> {
//! let response = Request::post("https://hooks.example.com/orders")
//!     .json(&serde_json::json!({"order": 42}))
//!     .send()?
//!     .error_for_status()?;
//! assert!(response.status < 300);
//! # Ok(())
//! # }
//! ```
//!
//! Errors map onto the job's fate as mail's do: a request the policy
//! denies, a 4xx answer (other than 408 and 429) and a response over the
//! policy's cap are `Permanent`; a connection that fails, a timeout, 408,
//! 429 and 5xx are `Retryable`. After a 429 or 503 with `Retry-After`, the
//! runner retries the job no sooner than the server asked.

use crate::JobError;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// An HTTP request to send through the host.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `https://host[:port]/path?query`.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

/// A response: its status, headers and whole body.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with `method` to `url`.
    ///
    /// ```
    /// let request = jobrunner_plugin_sdk::http::Request::new("PUT", "https://api.example.com/items/1");
    /// assert_eq!(request.method, "PUT");
    /// ```
    pub fn new(method: &str, url: &str) -> Request {
        Request { method: method.to_string(), url: url.to_string(), headers: Vec::new(), body: Vec::new() }
    }

    /// A `GET` request to `url`.
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` request to `url`.
    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }

    /// The request with header `name: value` added.
    ///
    /// ```
    /// let request = jobrunner_plugin_sdk::http::Request::get("https://x.example").header("Accept", "text/plain");
    /// assert_eq!(request.headers, [("Accept".to_string(), "text/plain".to_string())]);
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The request with `body` as its body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The request with `value` as its JSON body and `Content-Type`.
    ///
    /// ```
    /// let request = jobrunner_plugin_sdk::http::Request::post("https://x.example").json(&serde_json::json!({"a": 1}));
    /// assert_eq!(request.body, br#"{"a":1}"#);
    /// ```
    pub fn json(self, value: &impl serde::Serialize) -> Request {
        let body = serde_json::to_vec(value).expect("a JSON value serializes");
        self.header("Content-Type", "application/json").body(body)
    }

    /// Sends the request and reads the whole response, whatever its status.
    pub fn send(&self) -> Result<Response, JobError> {
        let place = Place::parse(&self.url)?;
        let request = self.outgoing(&place)?;
        let body = request.body().map_err(|()| self.fail("its body was taken"))?;
        let pending = outgoing_handler::handle(request, None).map_err(|e| self.failed(&e))?;
        let written = write_all(&body, &self.body);
        OutgoingBody::finish(body, None).map_err(|e| self.failed(&e))?;
        pending.subscribe().block();
        let incoming = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(self.failed(&e)),
            _ => return Err(self.fail("no response")),
        };
        if let Err(e) = written {
            return Err(self.fail(&e));
        }
        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let body = incoming.consume().map_err(|()| self.fail("its body was taken"))?;
        let bytes = read_all(&body).map_err(|e| self.failed(&e))?;
        IncomingBody::finish(body);
        Ok(Response { status, headers, body: bytes })
    }

    /// The `wasi:http` request, without its body.
    fn outgoing(&self, place: &Place) -> Result<OutgoingRequest, JobError> {
        let entries: Vec<(String, Vec<u8>)> =
            self.headers.iter().map(|(name, value)| (name.clone(), value.as_bytes().to_vec())).collect();
        let fields = Fields::from_list(&entries).map_err(|e| {
            JobError::Permanent(format!("{} {}: a header is not allowed ({e:?})", self.method, self.url))
        })?;
        let request = OutgoingRequest::new(fields);
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let scheme = if place.https { Scheme::Https } else { Scheme::Http };
        let ok = request.set_method(&method).is_ok()
            && request.set_scheme(Some(&scheme)).is_ok()
            && request.set_authority(Some(&place.authority)).is_ok()
            && request.set_path_with_query(Some(&place.path)).is_ok();
        match ok {
            true => Ok(request),
            false => Err(JobError::Permanent(format!("{} {}: not a valid request", self.method, self.url))),
        }
    }

    fn fail(&self, why: &str) -> JobError {
        JobError::Retryable(format!("{} {}: {why}", self.method, self.url))
    }

    fn failed(&self, code: &ErrorCode) -> JobError {
        let what = format!("{} {}", self.method, self.url);
        match code {
            ErrorCode::HttpRequestDenied => JobError::Permanent(format!(
                "{what}: denied by the runner's policy (its log says which rule)"
            )),
            ErrorCode::DestinationIpProhibited => JobError::Permanent(format!(
                "{what}: the address is not one plugins may reach (see the runner's log)"
            )),
            ErrorCode::HttpRequestBodySize(_) | ErrorCode::HttpResponseBodySize(_) => {
                JobError::Permanent(format!("{what}: a body over the policy's size cap ({code:?})"))
            }
            ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
                JobError::Permanent(format!("{what}: {code:?}"))
            }
            _ => JobError::Retryable(format!("{what}: {code:?}")),
        }
    }
}

impl Response {
    /// The value of header `name` (any case), if there is one.
    ///
    /// ```
    /// # use jobrunner_plugin_sdk::http::Response;
    /// let response = Response { status: 200, headers: vec![("location".into(), "/x".into())], body: vec![] };
    /// assert_eq!(response.header("Location"), Some("/x"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response if its status is 2xx; else the job error its status
    /// means: 408, 429 and 5xx retryable, other statuses permanent.
    ///
    /// ```
    /// # use jobrunner_plugin_sdk::{JobError, http::Response};
    /// let answer = |status| Response { status, headers: vec![], body: b"nope".to_vec() }.error_for_status();
    /// assert!(answer(204).is_ok());
    /// assert!(matches!(answer(503), Err(JobError::Retryable(_))));
    /// assert!(matches!(answer(429), Err(JobError::Retryable(_))));
    /// assert!(matches!(answer(404), Err(JobError::Permanent(_))));
    /// ```
    pub fn error_for_status(self) -> Result<Response, JobError> {
        let why = || {
            let body = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned();
            format!("answered {}: {body}", self.status)
        };
        match self.status {
            200..=299 => Ok(self),
            408 | 429 | 500..=599 => Err(JobError::Retryable(why())),
            _ => Err(JobError::Permanent(why())),
        }
    }
}

/// Where a URL points: scheme, authority and path with query.
struct Place {
    https: bool,
    authority: String,
    path: String,
}

impl Place {
    fn parse(url: &str) -> Result<Place, JobError> {
        let bad = |why: &str| JobError::Permanent(format!("{url}: {why}"));
        let (https, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err(bad("not an http:// or https:// URL")),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("no host, or a user in it"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Place { https, authority: authority.to_string(), path })
    }
}

fn write_all(body: &OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|()| "its body stream was taken".to_string())?;
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|e| format!("sending its body: {e:?}"))?;
    }
    Ok(())
}

fn read_all(body: &IncomingBody) -> Result<Vec<u8>, ErrorCode> {
    let stream = body.stream().map_err(|()| ErrorCode::InternalError(Some("body taken".into())))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                let text = e.to_debug_string();
                // The host's body errors reach the guest as text, not codes.
                let code = wasip2::http::types::http_error_code(&e).unwrap_or(
                    match text.contains("exceeds limit") {
                        true => ErrorCode::HttpResponseBodySize(None),
                        false => ErrorCode::InternalError(Some(text)),
                    },
                );
                return Err(code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let p = Place::parse("https://api.example.com:8443/v1/items?x=1#frag").ok().unwrap();
        assert!(p.https);
        assert_eq!((p.authority.as_str(), p.path.as_str()), ("api.example.com:8443", "/v1/items?x=1"));
        let p = Place::parse("http://[::1]:9000").ok().unwrap();
        assert_eq!((p.authority.as_str(), p.path.as_str()), ("[::1]:9000", "/"));
        let p = Place::parse("http://h?q=1").ok().unwrap();
        assert_eq!(p.path, "/?q=1");
        assert!(Place::parse("ftp://h/").is_err());
        assert!(Place::parse("http://user@h/").is_err());
    }
}
