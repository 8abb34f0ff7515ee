//! Unique jobs (Sidekiq Enterprise's `unique_for`): while a job is queued,
//! scheduled, retrying or running, another of the same class, queue and
//! arguments is dropped.
//!
//! `runner enqueue --unique-for` refuses the duplicate at the push. Ruby's
//! clients push directly, so the runner also checks each job that carries
//! `unique_for` when it takes it: it claims a lock named by the digest of
//! class, queue and arguments (ActiveJob's, without its job id), and drops
//! the job if another job holds the lock, or ended after this one was
//! created (this one was pushed while that one was still pending). A job
//! that ends (done, dead or discarded) marks the lock ended; one waiting
//! for a retry keeps it. The lock lasts `unique_for` seconds from its claim
//! at most, so the guarantee holds within that window; it is best effort
//! when Redis can't be reached (the job then runs).

use crate::job::Job;
use crate::queue::Queue;
use serde_json::{Value, json};

/// What a unique job's lock needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Unique {
    /// The digest of class, queue and arguments: the lock's name.
    pub digest: String,
    /// How long the lock lasts at most, in seconds.
    pub ttl_secs: u64,
}

/// The uniqueness `job` asks for with `unique_for` (seconds), if any.
pub fn of(job: &Job) -> Option<Unique> {
    let seconds = job.fields().get("unique_for")?.as_f64().filter(|s| s.is_finite() && *s >= 1.0)?;
    let args: Value = serde_json::from_str(&job.args).ok()?;
    Some(Unique { digest: digest(&job.class, &job.queue, &args), ttl_secs: seconds.ceil() as u64 })
}

/// The lock's name for jobs of `class` on `queue` with `args`.
pub fn digest(class: &str, queue: &str, args: &Value) -> String {
    crate::digest::sha256_hex(json!([class, queue, args]).to_string().as_bytes())
}

/// Checks `job` against its lock at the start of its run: the holder of
/// the lock when `job` is a duplicate to drop, `None` when it may run.
pub async fn duplicate_of(queue: &Queue, job: &Job, unique: &Unique) -> Option<String> {
    let created_at = job.created_at().unwrap_or_else(crate::clock::now);
    match queue.claim_unique(&unique.digest, &job.jid, created_at, unique.ttl_secs).await {
        Ok(held) => held,
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "could not check the job's unique lock; running it");
            None
        }
    }
}

/// Marks the lock ended after `job` has ended for good.
pub async fn ended(queue: &Queue, jid: &str, unique: &Unique) {
    if let Err(err) = queue.release_unique(&unique.digest, jid, crate::clock::now()).await {
        tracing::warn!(error = %format!("{err:#}"), "could not mark the unique lock ended; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_class_queue_and_arguments() {
        let base = digest("EchoJob", "default", &json!(["a", 1]));
        assert_eq!(base, digest("EchoJob", "default", &json!(["a", 1])));
        for other in [
            digest("OtherJob", "default", &json!(["a", 1])),
            digest("EchoJob", "mailers", &json!(["a", 1])),
            digest("EchoJob", "default", &json!(["a", 2])),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn unique_for_must_be_a_number_of_seconds() {
        let job = |unique_for: Value| {
            let raw = json!({"class": "EchoJob", "args": [1], "jid": "j", "unique_for": unique_for});
            Job::parse(raw.to_string().as_bytes(), "default").unwrap()
        };
        assert_eq!(of(&job(json!(90.5))).map(|u| u.ttl_secs), Some(91));
        assert_eq!(of(&job(json!("1h"))), None);
        assert_eq!(of(&job(json!(0))), None);
        let unwrapped = job(json!(60));
        assert_eq!(of(&unwrapped).unwrap().digest, digest("EchoJob", "default", &json!([1])));
    }
}
