//! Delivers signed webhooks for `WebhookDeliveryJob.perform_later(endpoint, event)`:
//! the endpoint's URL is read from the app's `webhook_endpoints` table, the
//! event is posted there as JSON, signed as Standard Webhooks says with the
//! policy's key `webhooks`. The runner's backoff retries what may pass (a
//! 5xx, a 429 after its `Retry-After`, a timeout); a 4xx goes to the dead set.
//! A 307 or 308 is followed, each new request checked by the policy again.

use jobrunner_plugin_sdk::http::{Request, Response};
use jobrunner_plugin_sdk::rails::{is_gid_of, plain};
use jobrunner_plugin_sdk::{
    Args, Guest, Job, JobError, Level, PluginInfo, log, plugin_info, records, signing,
};
use serde_json::Value;

/// How many redirects one delivery follows.
const MAX_REDIRECTS: usize = 3;

#[derive(serde::Deserialize)]
struct Endpoint {
    url: String,
}

struct Webhook;

impl Guest for Webhook {
    fn describe() -> PluginInfo {
        plugin_info("webhook", env!("CARGO_PKG_VERSION"), &["WebhookDeliveryJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let endpoint: Endpoint = match args.required::<Value>("endpoint", 0)? {
            Value::String(gid) if is_gid_of(&gid, "WebhookEndpoint") => {
                records::locate_required(&gid, &["url"])?
            }
            id => records::find_required("WebhookEndpoint", id.to_string().trim_matches('"'), &["url"])?,
        };
        let body = serde_json::to_vec(&plain(args.required("event", 1)?)).expect("JSON");
        // The same id on every run of the job: receivers drop repeats by it.
        let msg_id = format!("msg_{}", job.jid);
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = signing::webhook_signature("webhooks", &msg_id, timestamp, &body)?;
        let request = Request::post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", &timestamp.to_string())
            .header("webhook-signature", &signature)
            .body(body);
        let response = deliver(request)?.error_for_status()?;
        log(Level::Info, &format!("{msg_id} delivered to {}: {}", endpoint.url, response.status));
        Ok(())
    }
}

/// Sends `request`, following up to [`MAX_REDIRECTS`] 307s and 308s.
fn deliver(mut request: Request) -> Result<Response, JobError> {
    for _ in 0..=MAX_REDIRECTS {
        let response = request.send()?;
        match (response.status, response.header("location")) {
            (307 | 308, Some(location)) => request.url = location.to_string(),
            _ => return Ok(response),
        }
    }
    Err(JobError::Permanent(format!("more than {MAX_REDIRECTS} redirects from {}", request.url)))
}

jobrunner_plugin_sdk::export_plugin!(Webhook);
