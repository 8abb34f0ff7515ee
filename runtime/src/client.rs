//! Pushing jobs, as Sidekiq's client does: `runner enqueue`, now or later.

use crate::clock;
use crate::queue::Queue;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// When a pushed job runs, and until when it may start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Run at this instant (epoch seconds) instead of now, like Sidekiq's
    /// `perform_at`.
    pub at: Option<f64>,
    /// Discard the job unrun if it hasn't started this long after it is
    /// due (Sidekiq Pro's `expires_in`; written as `expires_at`).
    pub expires_in: Option<std::time::Duration>,
    /// Refuse the push while a job of the same class, queue and arguments
    /// is pending, for at most this long (Sidekiq Enterprise's `unique_for`).
    pub unique_for: Option<std::time::Duration>,
}

/// The refusal of a unique job's duplicate.
#[derive(Debug, thiserror::Error)]
#[error("not enqueued: a {class} job with the same queue and arguments is pending ({holder})")]
pub struct Duplicate {
    /// The class pushed.
    pub class: String,
    /// What holds the lock: the pending job's jid.
    pub holder: String,
}

/// Builds a Sidekiq job for `class` with the JSON array `args` and pushes it
/// to `queue`, or schedules it. Returns its jid.
pub async fn enqueue(
    queue: &Queue,
    class: &str,
    args: &str,
    queue_name: &str,
    timing: Timing,
) -> Result<String> {
    let Timing { at, expires_in, unique_for } = timing;
    let (jid, mut payload) = new_job(class, args, queue_name, at.is_none())?;
    if let Some(expires_in) = expires_in {
        payload["expires_at"] = json!(at.unwrap_or_else(clock::now) + expires_in.as_secs_f64());
    }
    if let Some(unique_for) = unique_for {
        let seconds = unique_for.as_secs_f64().ceil().max(1.0) as u64;
        payload["unique_for"] = json!(seconds);
        let digest = crate::unique::digest(class, queue_name, &payload["args"]);
        if let Some(holder) = queue.claim_unique(&digest, &jid, clock::now(), seconds).await? {
            return Err(Duplicate { class: class.to_string(), holder }.into());
        }
    }
    let payload = payload.to_string();
    match at {
        Some(at) => queue.schedule(&payload, at).await?,
        None => queue.push(queue_name, &payload).await?,
    }
    Ok(jid)
}

/// A new job's jid and JSON; a scheduled job has no `enqueued_at` yet.
pub fn new_job(class: &str, args: &str, queue: &str, enqueued_now: bool) -> Result<(String, Value)> {
    if class.trim().is_empty() {
        bail!("the job class is empty");
    }
    let args: Value =
        serde_json::from_str(args).with_context(|| format!("the args {args:?} are not valid JSON"))?;
    if !args.is_array() {
        bail!("the args must be a JSON array, like '[42, \"buyer@example.com\"]'");
    }
    let jid = hex::encode(rand::random::<[u8; 12]>());
    let now = clock::now();
    let mut payload = json!({
        "class": class, "args": args, "retry": true, "queue": queue,
        "jid": jid, "created_at": now,
    });
    if enqueued_now {
        payload["enqueued_at"] = json!(now);
    }
    Ok((jid, payload))
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_sidekiq_json() {
        let (jid, v) = super::new_job("OrderCreateJob", "[42]", "default", true).unwrap();
        assert_eq!(jid.len(), 24);
        assert_eq!(v["jid"], jid.as_str());
        assert_eq!(v["args"], serde_json::json!([42]));
        assert_eq!(v["retry"], true);
        assert!(v["enqueued_at"].is_f64());
        assert!(super::new_job("X", "{}", "q", true).unwrap_err().to_string().contains("array"));
        assert!(super::new_job("X", "[", "q", true).unwrap_err().to_string().contains("not valid JSON"));
        let (_, scheduled) = super::new_job("X", "[]", "q", false).unwrap();
        let scheduled = scheduled.to_string();
        assert!(!scheduled.contains("enqueued_at"));
    }
}
