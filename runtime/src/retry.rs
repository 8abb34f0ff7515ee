//! What happens to a job that failed: Sidekiq's retry policy.
//!
//! [`decide`] records the failure on the job's JSON exactly as Sidekiq does
//! (`error_message`, `error_class`, `failed_at`, `retried_at`, `retry_count`,
//! and `error_backtrace` when the job asks for one with `backtrace`)
//! and says where the job goes next: the `retry` set after Sidekiq's backoff,
//! the `dead` set when it failed permanently or ran out of retries, or nowhere
//! when the job itself asked for that (`retry: false`, `dead: false`).

use serde_json::{Map, Value, json};

/// Sidekiq's default number of retries.
pub const DEFAULT_MAX_RETRIES: u64 = 25;

/// Sidekiq cuts error messages to this many characters.
const MAX_MESSAGE_CHARS: usize = 10_000;

/// Why a job failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Whether trying again may help.
    pub retryable: bool,
    /// A short name for the kind of failure, shown as Sidekiq's `error_class`.
    pub error_class: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Where, innermost first: a trapped guest's frames; empty otherwise.
    pub backtrace: Vec<String>,
    /// The least wait before a retry, when a server asked for one
    /// (`Retry-After`); the backoff still applies when it is longer.
    pub wait_at_least: Option<std::time::Duration>,
}

impl Failure {
    pub fn retryable(error_class: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            retryable: true,
            error_class,
            message: cut(message.into()),
            backtrace: Vec::new(),
            wait_at_least: None,
        }
    }

    pub fn permanent(error_class: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            retryable: false,
            error_class,
            message: cut(message.into()),
            backtrace: Vec::new(),
            wait_at_least: None,
        }
    }

    /// The same failure, retried no sooner than `wait` from now.
    pub fn not_before(self, wait: Option<std::time::Duration>) -> Failure {
        Failure { wait_at_least: wait, ..self }
    }

    /// The same failure, with where it happened.
    pub fn with_backtrace(self, backtrace: Vec<String>) -> Failure {
        Failure { backtrace, ..self }
    }
}

/// Sidekiq keeps 10,000 characters of an error message; so do the logs,
/// whatever size of message a plugin returns.
fn cut(mut message: String) -> String {
    if let Some((at, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(at);
    }
    message
}

/// Where a failed job goes.
#[derive(Debug, PartialEq)]
pub enum Disposition {
    /// Into the `retry` set, due at `at` (epoch seconds).
    Retry { at: f64 },
    /// Into the `dead` set.
    Dead,
    /// Nowhere: the job opted out of both retries and the dead set.
    Discard,
}

/// Records `failure` on `payload` and decides where the job goes.
/// `jitter` is a number in `0..10` (Sidekiq's `rand(10)`).
pub fn decide(payload: &mut Map<String, Value>, failure: &Failure, now: f64, jitter: u64) -> Disposition {
    payload.insert("error_message".into(), json!(failure.message));
    payload.insert("error_class".into(), json!(failure.error_class));
    // A "retry now" from the Web UI leaves -1 after a first failure.
    let count = match payload.get("retry_count").and_then(Value::as_i64) {
        Some(previous) => {
            payload.insert("retried_at".into(), json!(now));
            previous.saturating_add(1).max(0) as u64
        }
        None => {
            payload.insert("failed_at".into(), json!(now));
            0
        }
    };
    payload.insert("retry_count".into(), json!(count));
    // As Sidekiq: `backtrace: true` keeps every line, a number that many.
    let keep = match payload.get("backtrace") {
        Some(Value::Bool(true)) => Some(usize::MAX),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(|n| n.min(1000) as usize),
        _ => None,
    };
    if let Some(keep) = keep {
        let lines = &failure.backtrace[..failure.backtrace.len().min(keep)];
        payload.insert("error_backtrace".into(), json!(crate::queue::backtrace::compress(lines)));
    }

    let max_retries = match payload.get("retry") {
        Some(Value::Bool(false)) => return Disposition::Discard,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => DEFAULT_MAX_RETRIES,
    };
    if failure.retryable && within_retries(payload, count, max_retries, now) {
        // Sidekiq sends retries to `retry_queue` when the job names one.
        if let Some(queue) = payload.get("retry_queue").filter(|q| q.is_string()).cloned() {
            payload.insert("queue".into(), queue);
        }
        let asked = failure.wait_at_least.map_or(0.0, |wait| wait.as_secs_f64());
        return Disposition::Retry { at: now + backoff(count, jitter).max(asked) };
    }
    if payload.get("dead") == Some(&Value::Bool(false)) {
        return Disposition::Discard;
    }
    Disposition::Dead
}

/// Whether a job that failed `count + 1` times may be retried: within
/// `retry_for` seconds of its first failure when it has that (Sidekiq
/// 7.1.3+; only time counts then, as in 8.1), else within its retry count.
fn within_retries(payload: &Map<String, Value>, count: u64, max_retries: u64, now: f64) -> bool {
    match payload.get("retry_for").and_then(Value::as_f64) {
        Some(window) => {
            let first = payload.get("failed_at").and_then(crate::clock::epoch_seconds).unwrap_or(now);
            now < first + window
        }
        None => count < max_retries,
    }
}

/// Sidekiq's delay before retry number `count` (from 0):
/// `count**4 + 15 + rand(10) * (count + 1)` seconds.
pub fn backoff(count: u64, jitter: u64) -> f64 {
    // In floating point: a hostile `retry_count` can't overflow it.
    let count = count as f64;
    count.powi(4) + 15.0 + jitter as f64 * (count + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(extra: Value) -> Map<String, Value> {
        let mut base = json!({"class": "X", "args": [], "jid": "j"});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base.as_object().unwrap().clone()
    }

    #[test]
    fn first_failure_schedules_a_retry_in_about_15s() {
        let mut p = job(json!({"retry": true}));
        let d = decide(&mut p, &Failure::retryable("E", "boom"), 1000.0, 0);
        assert_eq!(d, Disposition::Retry { at: 1015.0 });
        assert_eq!(p["retry_count"], 0);
        assert_eq!(p["failed_at"], 1000.0);
        assert_eq!(p["error_message"], "boom");
        assert_eq!(p["error_class"], "E");
    }

    #[test]
    fn a_server_asking_for_a_later_retry_gets_it_and_a_shorter_ask_keeps_the_backoff() {
        let asked =
            |secs| Failure::retryable("E", "429").not_before(Some(std::time::Duration::from_secs(secs)));
        let mut p = job(json!({"retry": true}));
        assert_eq!(decide(&mut p, &asked(120), 1000.0, 0), Disposition::Retry { at: 1120.0 });
        let mut p = job(json!({"retry": true}));
        assert_eq!(decide(&mut p, &asked(2), 1000.0, 0), Disposition::Retry { at: 1015.0 });
        let mut p = job(json!({"retry": 0}));
        assert_eq!(decide(&mut p, &asked(120), 1000.0, 0), Disposition::Dead);
    }

    #[test]
    fn later_failures_back_off_and_then_die() {
        let mut p = job(json!({"retry": 2, "retry_count": 0}));
        assert_eq!(
            decide(&mut p, &Failure::retryable("E", "x"), 0.0, 9),
            Disposition::Retry { at: 1.0 + 15.0 + 18.0 }
        );
        assert_eq!(p["retried_at"], 0.0);
        assert_eq!(decide(&mut p, &Failure::retryable("E", "x"), 0.0, 0), Disposition::Dead);
        assert_eq!(p["retry_count"], 2);
    }

    #[test]
    fn permanent_failures_go_straight_to_dead() {
        let mut p = job(json!({}));
        assert_eq!(decide(&mut p, &Failure::permanent("E", "bad args"), 0.0, 0), Disposition::Dead);
    }

    #[test]
    fn opting_out_discards() {
        let mut no_retry = job(json!({"retry": false}));
        assert_eq!(decide(&mut no_retry, &Failure::retryable("E", "x"), 0.0, 0), Disposition::Discard);
        let mut no_dead = job(json!({"retry": 0, "dead": false}));
        assert_eq!(decide(&mut no_dead, &Failure::retryable("E", "x"), 0.0, 0), Disposition::Discard);
        let mut zero = job(json!({"retry": 0}));
        assert_eq!(decide(&mut zero, &Failure::retryable("E", "x"), 0.0, 0), Disposition::Dead);
    }

    #[test]
    fn hostile_counts_neither_overflow_nor_panic() {
        for (retry_count, retry) in [(i64::MAX, json!(u64::MAX)), (i64::MIN, json!(3)), (-1, json!(true))] {
            let mut p = job(json!({"retry_count": retry_count, "retry": retry}));
            let d = decide(&mut p, &Failure::retryable("E", "x"), 1e9, 9);
            assert!(matches!(d, Disposition::Retry { .. } | Disposition::Dead), "{d:?}");
        }
        assert!(backoff(u64::MAX, 9).is_finite());
    }

    #[test]
    fn retry_for_counts_time_from_the_first_failure_in_either_unit() {
        // Failed first at t=1000 s, written by Sidekiq 8 in milliseconds.
        let mut p = job(json!({"retry_for": 3600, "retry_count": 40, "failed_at": 1_000_000}));
        let d = decide(&mut p, &Failure::retryable("E", "x"), 4000.0, 0);
        assert!(matches!(d, Disposition::Retry { .. }), "inside the hour, whatever the count: {d:?}");
        assert_eq!(p["failed_at"], 1_000_000, "kept as it came");
        assert_eq!(decide(&mut p, &Failure::retryable("E", "x"), 4601.0, 0), Disposition::Dead);
        let mut seconds = job(json!({"retry_for": 60, "retry_count": 0, "failed_at": 1000.5}));
        assert_eq!(decide(&mut seconds, &Failure::retryable("E", "x"), 1061.0, 0), Disposition::Dead);
        let mut first = job(json!({"retry_for": 60}));
        assert!(matches!(
            decide(&mut first, &Failure::retryable("E", "x"), 1e9, 0),
            Disposition::Retry { .. }
        ));
    }

    #[test]
    fn retries_go_to_the_retry_queue() {
        let mut p = job(json!({"queue": "default", "retry_queue": "low"}));
        assert!(matches!(decide(&mut p, &Failure::retryable("E", "x"), 0.0, 0), Disposition::Retry { .. }));
        assert_eq!(p["queue"], "low");
    }

    #[test]
    fn long_messages_are_cut() {
        let mut p = job(json!({}));
        decide(&mut p, &Failure::retryable("E", "x".repeat(20_000)), 0.0, 0);
        assert_eq!(p["error_message"].as_str().unwrap().len(), 10_000);
    }

    #[test]
    fn a_job_that_asks_for_a_backtrace_gets_it_compressed() {
        let failure =
            Failure::retryable("Trap", "wasm trap").with_backtrace(vec!["a".into(), "b".into(), "c".into()]);
        let mut all = job(json!({"backtrace": true}));
        decide(&mut all, &failure, 1000.0, 0);
        let read = crate::queue::backtrace::lines(&all["error_backtrace"]);
        assert_eq!(read, Some(vec!["a".to_string(), "b".into(), "c".into()]));
        let mut two = job(json!({"backtrace": 2}));
        decide(&mut two, &failure, 1000.0, 0);
        assert_eq!(crate::queue::backtrace::lines(&two["error_backtrace"]).map(|l| l.len()), Some(2));
        let mut none = job(json!({}));
        decide(&mut none, &failure, 1000.0, 0);
        assert!(none.get("error_backtrace").is_none(), "only when asked, as Sidekiq");
    }
}
