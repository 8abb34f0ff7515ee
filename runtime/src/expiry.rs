//! Expiring jobs: a job must *start* before its expiry; one fetched later
//! is discarded, not run (Sidekiq Pro's expiring jobs, and the
//! sidekiq-expiring-jobs gem).
//!
//! The payload says when in one of two ways:
//! - `expires_at`: the instant itself, in epoch seconds (or milliseconds,
//!   as Sidekiq 8 writes times). This is what the gem's client middleware
//!   writes (the push or schedule time plus `expires_in`), and what
//!   `runner enqueue --expires-in` writes, so a scheduled job's expiry
//!   counts from the time it is due.
//! - `expires_in`: seconds, counted from when the job was pushed to its
//!   queue (`enqueued_at`), or created (`created_at`) when it was scheduled
//!   and never pushed directly. A bare `expires_in` on a scheduled job thus
//!   counts from the scheduling, not from the time it is due.

use crate::clock::epoch_seconds;
use crate::job::Fields;

/// When the job expires, if it does.
pub fn expires_at(payload: &Fields) -> Option<f64> {
    if let Some(at) = payload.get("expires_at").and_then(epoch_seconds) {
        return Some(at);
    }
    let seconds = payload.get("expires_in")?.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    let from =
        ["enqueued_at", "created_at"].iter().find_map(|key| payload.get(key).and_then(epoch_seconds))?;
    Some(from + seconds)
}

/// The expiry of a job that has expired by `now`.
pub fn expired(payload: &Fields, now: f64) -> Option<f64> {
    expires_at(payload).filter(|at| *at < now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn payload(value: Value) -> Fields {
        Fields::of(value.as_object().unwrap())
    }

    #[test]
    fn an_absolute_expiry_wins_in_seconds_or_milliseconds() {
        let job = payload(json!({"expires_at": 1000.5, "expires_in": 5, "enqueued_at": 10.0}));
        assert_eq!(expires_at(&job), Some(1000.5));
        assert_eq!(expires_at(&payload(json!({"expires_at": 1_739_522_590_250u64}))), Some(1_739_522_590.25));
        assert_eq!(expired(&job, 1000.0), None);
        assert_eq!(expired(&job, 1001.0), Some(1000.5));
    }

    #[test]
    fn a_relative_expiry_counts_from_the_push_or_the_creation() {
        let pushed = payload(json!({"expires_in": 60, "created_at": 100.0, "enqueued_at": 130.0}));
        assert_eq!(expires_at(&pushed), Some(190.0));
        let scheduled = payload(json!({"expires_in": 60.5, "created_at": 100.0}));
        assert_eq!(expires_at(&scheduled), Some(160.5));
    }

    #[test]
    fn nonsense_never_expires_a_job() {
        for job in [
            json!({}),
            json!({"expires_in": "soon", "created_at": 1.0}),
            json!({"expires_in": -5, "created_at": 1.0}),
            json!({"expires_in": 5}),
            json!({"expires_at": "tomorrow"}),
        ] {
            assert_eq!(expired(&payload(job.clone()), f64::MAX), None, "{job}");
        }
    }
}
