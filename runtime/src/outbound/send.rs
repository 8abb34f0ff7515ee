//! One job's outgoing requests: each is checked against the plugin's
//! routes, given the headers the host attaches and its idempotency key,
//! sent over a connection of its destination's [`super::pool`], and held to the
//! policy's size caps and time limit. What a response asks of the job's
//! retry (`Retry-After`) and any broken rule go into its [`Report`].

use super::body::Bounded;
use super::pool::Failed;
use super::routes::{Destination, Routes, Target};
use super::{Report, retry_after};
use crate::metrics::Metrics;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, WasiBody};

/// A response, and the future that drives its connection to the end (ready
/// at once: the destination's pool drives its connections itself).
pub type Sent = (Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

/// The outgoing requests of one job (or of one reused instance's current job).
pub struct Requests {
    /// The plugin's routes; `None` when its policy grants no HTTP.
    pub routes: Option<Arc<Routes>>,
    /// The plugin's name, for logs and metrics.
    pub plugin: Arc<str>,
    /// The job's id, for logs and idempotency keys.
    pub jid: String,
    /// When the job must be over: no request outlives it.
    pub deadline: std::time::Instant,
    /// How many requests the job has made.
    pub made: u32,
    /// What the job's requests came to, for its outcome.
    pub report: Arc<Report>,
    /// Counts requests by destination and result.
    pub metrics: Arc<Metrics>,
}

/// Everything a request needs once it left the guest.
struct Call {
    routes: Arc<Routes>,
    destination: Arc<Destination>,
    host: String,
    deadline: Instant,
    plugin: Arc<str>,
    jid: String,
    report: Arc<Report>,
    metrics: Arc<Metrics>,
}

impl Requests {
    /// Starts the job's next request: refused at once when the policy
    /// doesn't allow it, else sent.
    pub fn send(
        &mut self,
        request: Request<WasiBody>,
    ) -> impl Future<Output = Result<Sent, Error>> + Send + 'static {
        let seq = self.made;
        self.made = self.made.saturating_add(1);
        let checked = self.check(request, seq);
        async move {
            let (call, request) = checked?;
            call.send(request).await
        }
    }

    /// Checks request number `seq` against the routes and attaches what
    /// the host adds; a refusal is a broken rule of the job.
    fn check(&self, mut request: Request<WasiBody>, seq: u32) -> Result<(Call, Request<WasiBody>), Error> {
        let method = request.method().clone();
        let refuse = |why: String, label: &str| {
            tracing::warn!(plugin = %self.plugin, jid = %self.jid, %method, rule = %why, "request refused by policy");
            self.metrics.http_request(&self.plugin, label, "denied", None);
            self.report.broke(format!("http: {why}"));
            Err(Error::HttpRequestDenied)
        };
        let Some(routes) = self.routes.clone() else {
            return refuse("the plugin's policy grants no outgoing HTTP ([plugins.NAME.http])".into(), "");
        };
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host =
            uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if seq >= routes.max_requests_per_job {
            let why = format!(
                "a job may make at most {} requests (max_requests_per_job)",
                routes.max_requests_per_job
            );
            return refuse(why, "");
        }
        let destination = match routes.route(&Target { https, host: &host, port, method: &method }) {
            Ok(destination) => destination.clone(),
            Err(why) => return refuse(why, ""),
        };
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > routes.max_request_bytes) {
            let why = format!(
                "a request body may be at most {} bytes (max_request_bytes)",
                routes.max_request_bytes
            );
            return refuse(why, &destination.label);
        }
        let headers = request.headers_mut();
        if let Some(name) = &routes.idempotency_header
            && !headers.contains_key(name)
        {
            let key = HeaderValue::try_from(format!("{}-{}", self.jid, seq + 1))
                .map_err(|_| Error::HttpRequestDenied)?;
            headers.insert(name.clone(), key);
        }
        for (name, value) in &destination.headers {
            headers.insert(name.clone(), value.clone());
        }
        let limit = Instant::now() + routes.timeout;
        let call = Call {
            deadline: limit.min(Instant::from_std(self.deadline)),
            routes,
            destination,
            host,
            plugin: self.plugin.clone(),
            jid: self.jid.clone(),
            report: self.report.clone(),
            metrics: self.metrics.clone(),
        };
        Ok((call, request))
    }
}

impl Call {
    /// Connects, sends `request` and waits for its response's head, all
    /// before the request's deadline.
    async fn send(self, request: Request<WasiBody>) -> Result<Sent, Error> {
        let started = std::time::Instant::now();
        let method = request.method().clone();
        let ended = tokio::time::timeout_at(self.deadline, self.exchange(request)).await;
        let seconds = Some(started.elapsed().as_secs_f64());
        let label = &self.destination.label;
        let (plugin, jid, host) = (&self.plugin, &self.jid, &self.host);
        match ended {
            Ok(Ok((response, io))) => {
                let status = response.status();
                tracing::debug!(%plugin, %jid, %method, %host, status = status.as_u16(), "request answered");
                self.metrics.http_request(plugin, label, status_class(status), seconds);
                if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                    let asked = response.headers().get(http::header::RETRY_AFTER);
                    if let Some(wait) = asked.and_then(|v| retry_after::parse(v.to_str().ok()?)) {
                        self.report.ask_retry_after(wait);
                    }
                }
                Ok((response, io))
            }
            Ok(Err(err)) => {
                tracing::debug!(%plugin, %jid, %method, %host, error = ?err, "request failed");
                self.metrics.http_request(plugin, label, "error", seconds);
                Err(err)
            }
            Err(_) => {
                tracing::debug!(%plugin, %jid, %method, %host, "request timed out");
                self.metrics.http_request(plugin, label, "timeout", seconds);
                Err(Error::HttpResponseTimeout)
            }
        }
    }

    async fn exchange(&self, request: Request<WasiBody>) -> Result<Sent, Error> {
        let (max_request, deadline) = (self.routes.max_request_bytes, self.deadline);
        let request = request
            .map(|body| Bounded::new(body, max_request, || Error::HttpRequestBodySize(None), deadline));
        let response = match self.destination.pool.send(request).await {
            Ok(response) => response,
            Err(Failed::Address(why)) => {
                tracing::warn!(plugin = %self.plugin, jid = %self.jid, rule = %why, "request refused: not a public address");
                self.metrics.http_request(&self.plugin, &self.destination.label, "denied", None);
                self.report.broke(format!("http: {why}"));
                return Err(Error::DestinationIpProhibited);
            }
            Err(Failed::Other(err)) => return Err(err),
        };
        let max_response = self.routes.max_response_bytes;
        let response = response.map(|body| {
            Bounded::new(body, max_response, || Error::HttpResponseBodySize(None), deadline).boxed_unsync()
        });
        // The pool drives the connection itself.
        let io = std::future::ready(Ok(()));
        Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
    }
}

/// The `result` label of an answered request.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
