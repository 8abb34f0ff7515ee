//! Ruby with Sidekiq (and, as asked, ActiveJob or Sidekiq's Web UI)
//! pointed at the test Redis, for tests that drive Sidekiq's own code.

use crate::Redis;
use std::process::Command;

/// Runs `code` after `require`-ing `libraries`, with Sidekiq's client on
/// `redis`; returns what it printed, trimmed. Fails the test if Ruby fails.
pub fn ruby(redis: &Redis, libraries: &[&str], code: &str) -> String {
    let requires: String = libraries.iter().map(|l| format!("require {l:?}\n")).collect();
    let code = format!(
        "require \"sidekiq\"\n{requires}Sidekiq.configure_client {{ |c| c.redis = {{ url: ENV[\"REDIS_URL\"] }} }}\n{code}"
    );
    let output = Command::new("ruby")
        .args(["-e", &code])
        .env("REDIS_URL", &redis.url)
        .output()
        .expect("running ruby (apt-get install ruby-sidekiq)");
    assert!(output.status.success(), "ruby failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs `code` with ActiveJob on its sidekiq adapter, quiet.
pub fn active_job(redis: &Redis, code: &str) -> String {
    let setup = "ActiveJob::Base.queue_adapter = :sidekiq\nActiveJob::Base.logger = Logger.new(nil)\n";
    ruby(redis, &["active_job", "active_job/queue_adapters/sidekiq_adapter"], &format!("{setup}{code}"))
}
