//! Pushing jobs, as Sidekiq's client does: `runner enqueue`.

use crate::clock;
use crate::queue::Queue;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Builds a Sidekiq job for `class` with the JSON array `args`, pushes it to
/// `queue` and returns its jid.
pub async fn enqueue(queue: &Queue, class: &str, args: &str, queue_name: &str) -> Result<String> {
    let (jid, payload) = new_job(class, args, queue_name)?;
    queue.push(queue_name, &payload).await?;
    Ok(jid)
}

/// A new job's jid and JSON.
pub fn new_job(class: &str, args: &str, queue: &str) -> Result<(String, String)> {
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
    let payload = json!({
        "class": class, "args": args, "retry": true, "queue": queue,
        "jid": jid, "created_at": now, "enqueued_at": now,
    });
    Ok((jid, payload.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_sidekiq_json() {
        let (jid, json) = super::new_job("OrderCreateJob", "[42]", "default").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(jid.len(), 24);
        assert_eq!(v["jid"], jid.as_str());
        assert_eq!(v["args"], serde_json::json!([42]));
        assert_eq!(v["retry"], true);
        assert!(super::new_job("X", "{}", "q").unwrap_err().to_string().contains("array"));
        assert!(super::new_job("X", "[", "q").unwrap_err().to_string().contains("not valid JSON"));
    }
}
