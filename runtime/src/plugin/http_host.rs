//! `wasi:http/outgoing-handler` and `signing`, as one instance sees them.
//!
//! Every instance links `wasi:http`; its requests go through the plugin's
//! [`Requests`], which deny them all unless the policy grants HTTP (see
//! [`crate::outbound`]). `signing` signs with a key the policy names; the
//! key stays in the host.

use super::host::{HostState, LogTags};
use crate::outbound::{Report, Requests};
use crate::wit::jobrunner::plugin::signing::{self, SigningError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The `wasi:http` hooks of one instance: its job's requests.
pub struct Hooks(pub Requests);

impl Hooks {
    /// The requests of a job tagged `tags`, due by `deadline`, reporting to `report`.
    pub fn new(caps: &super::Capabilities, tags: &LogTags, deadline: Instant, report: Arc<Report>) -> Hooks {
        Hooks(Requests {
            routes: caps.guard.http().cloned(),
            plugin: tags.plugin.clone(),
            jid: tags.jid.clone(),
            deadline,
            made: 0,
            report,
            metrics: caps.metrics.clone(),
        })
    }

    /// Starts over for a reused instance's next job.
    pub fn begin_job(&mut self, tags: &LogTags, deadline: Instant, report: Arc<Report>) {
        let requests = &mut self.0;
        requests.jid = tags.jid.clone();
        requests.deadline = deadline;
        requests.made = 0;
        requests.report = report;
    }
}

type Sending = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Sending {
        // The policy's timeout governs; a plugin's own request options
        // can't lengthen it.
        Box::new(self.0.send(request))
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (ctx, table, hooks) = self.http_parts();
        WasiHttpCtxView { ctx, table, hooks }
    }
}

impl signing::Host for HostState {
    fn hmac_sha256(&mut self, key: String, message: Vec<u8>) -> Result<Vec<u8>, SigningError> {
        let Some(secret) = self.caps.guard.signing_key(&key) else {
            let LogTags { plugin, class, jid, .. } = &self.tags;
            tracing::warn!(%plugin, %class, %jid, key = %crate::untrusted::escape(&key), "signing key not in the plugin's policy");
            return Err(SigningError::UnknownKey(key));
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(&message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}
