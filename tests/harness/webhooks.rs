//! The example `webhook` plugin set up as an app would have it: a SQLite
//! database with a `webhook_endpoints` table, a policy granting the plugin
//! its destinations and signing key, and a runner serving it with the
//! token and the secret in its environment.

use crate::{Redis, Runner, RunnerOptions, WAIT, eventually, job_json};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// The Standard Webhooks secret the runner signs with.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The `[plugins.NAME.http]` line that lets requests reach the tests'
/// receivers on 127.0.0.1.
pub const LOOPBACK: &str = "allowed_private_addresses = [\"127.0.0.1\"]\n";
/// The API token the policy attaches to every request.
pub const HOOKS_TOKEN: &str = "tok-5f1e8a2b9c7d";

/// A database of endpoints and a policy for the `webhook` plugin.
pub struct WebhookApp {
    dir: TempDir,
    /// The plugin serving `WebhookDeliveryJob`, by crate name.
    plugin: &'static str,
    /// `sqlite://...`, for `--database`.
    pub database: String,
}

impl WebhookApp {
    /// Endpoints `(id, url)`, and a policy granting POSTs to `destinations`
    /// with `http` (lines of `[plugins.webhook.http]`) added.
    pub fn new(endpoints: &[(u64, String)], destinations: &[String], http: &str) -> WebhookApp {
        WebhookApp::with_plugin("webhook", endpoints, destinations, http)
    }

    /// The same for another build of the plugin (`webhook_py`, `webhook_js`).
    pub fn with_plugin(
        plugin: &'static str,
        endpoints: &[(u64, String)],
        destinations: &[String],
        http: &str,
    ) -> WebhookApp {
        let dir = tempfile::tempdir().expect("creating the app's temp dir");
        let path = dir.path().join("app.sqlite3");
        let rows = serde_json::to_string(endpoints).expect("endpoints as JSON");
        let status = Command::new("python3")
            .args(["-c", CREATE, &path.display().to_string(), &rows])
            .status()
            .expect("running python3");
        assert!(status.success(), "creating the endpoints table");
        let mut policy = format!(
            "[plugins.{plugin}]\nrecords = {{ WebhookEndpoint = [\"url\"] }}\n\
             signing_keys = {{ webhooks = \"${{WEBHOOK_SECRET}}\" }}\n\n[plugins.{plugin}.http]\n",
        );
        policy.push_str(http);
        for url in destinations {
            policy.push_str(&format!(
                "\n[[plugins.{plugin}.http.destinations]]\nurl = \"{url}\"\nmethods = [\"POST\"]\n\
                 headers = {{ Authorization = \"Bearer ${{HOOKS_TOKEN}}\" }}\n"
            ));
        }
        std::fs::write(dir.path().join("policy.toml"), policy).expect("writing the policy");
        WebhookApp { database: format!("sqlite://{}", path.display()), dir, plugin }
    }

    /// The policy file.
    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// A runner serving the `webhook` plugin under this app's policy, with
    /// `RUST_LOG` set to `log`.
    pub fn runner(&self, redis_url: &str, log: &'static str, args: &[&str]) -> Runner {
        let options = RunnerOptions { log, ..RunnerOptions::plugins(&[self.plugin]) }
            .args(&["--policy", &self.policy().display().to_string(), "--database", &self.database])
            .args(args)
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("HOOKS_TOKEN", HOOKS_TOKEN);
        Runner::start(redis_url, "", options)
    }
}

const CREATE: &str = r#"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE webhook_endpoints (id INTEGER PRIMARY KEY, url TEXT NOT NULL, created_at TEXT, updated_at TEXT)")
for id, url in json.loads(sys.argv[2]):
    db.execute("INSERT INTO webhook_endpoints (id, url) VALUES (?, ?)", (id, url))
db.commit()
"#;

/// Whether `signature` (`v1,...`) is the Standard Webhooks signature of
/// `body` sent as `msg_id` at `timestamp`, under [`WEBHOOK_SECRET`].
pub fn signature_verifies(signature: &str, msg_id: &str, timestamp: &str, body: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(WEBHOOK_SECRET.trim_start_matches("whsec_")).expect("the secret is Base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    let Some(given) = signature.strip_prefix("v1,") else { return false };
    engine.decode(given).is_ok_and(|given| mac.verify_slice(&given).is_ok())
}

/// Pushes `WebhookDeliveryJob(endpoint, event)` as job `jid`.
pub fn deliver(redis: &Redis, endpoint: u64, event: Value, jid: &str) {
    redis.push("default", &job_json("WebhookDeliveryJob", json!([endpoint, event]), jid));
}

/// The job `jid` in sorted set `set` (`retry`, `dead`), once it is there.
pub fn wait_in(redis: &Redis, set: &str, jid: &str) -> Value {
    eventually(&format!("{jid} in {set}"), WAIT, || {
        redis.sorted_set(set).into_iter().find(|j| j["jid"] == jid)
    })
}
