//! Rails 8.1's continuations (`ActiveJob::Continuable`) in the payload.
//!
//! A continuable job serializes its progress next to its arguments:
//! `"continuation" => {"completed" => ["step", ...], "current" => ["step",
//! cursor]}` (each part left out when empty) and `"resumptions" => n`
//! (`rails@v8.1.3:activejob/lib/active_job/continuable.rb`, `continuation.rb`,
//! `continuation/step.rb`). Such a job's iteration cursor *is* that
//! object: a plugin resumes from the continuation Rails wrote, and a job
//! stopped here goes back to its queue with the continuation advanced,
//! `resumptions` and `executions` counted as Rails counts them, so that
//! either a Rails worker or this runner can resume it.

use crate::activejob;
use serde_json::{Map, Value, json};

/// What a continuable job's payload says of its progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Continuable {
    /// The continuation as JSON text, once it has started; `None` for `{}`.
    pub progress: Option<String>,
}

/// The serialized ActiveJob inside a wrapper payload.
fn serialized(payload: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let class = payload.get("class")?.as_str()?;
    if !activejob::is_wrapper(class) {
        return None;
    }
    payload.get("args")?.as_array()?.first()?.as_object()
}

/// The continuation of `payload`, when its job is continuable: Rails
/// writes the key for every job that includes `ActiveJob::Continuable`.
pub fn of(payload: &Map<String, Value>) -> Option<Continuable> {
    let continuation = serialized(payload)?.get("continuation")?;
    let started = continuation.as_object().is_some_and(|c| !c.is_empty());
    Some(Continuable { progress: started.then(|| continuation.to_string()) })
}

/// Refuses a cursor Rails couldn't resume from: an object with the names
/// of the completed steps, and the current step as `[name, cursor]`.
pub fn check(cursor: &Value) -> Result<(), String> {
    const SHAPE: &str = "a Rails continuation is {\"completed\": [step names], \"current\": [step name, cursor]}, each part optional";
    let Some(object) = cursor.as_object() else { return Err(format!("{SHAPE}; got {cursor}")) };
    for (key, value) in object {
        let fits = match key.as_str() {
            "completed" => value.as_array().is_some_and(|steps| steps.iter().all(Value::is_string)),
            "current" => value.as_array().is_some_and(|c| c.len() == 2 && c[0].is_string()),
            _ => false,
        };
        if !fits {
            return Err(format!("{SHAPE}; its {key:?} is {value}"));
        }
    }
    Ok(())
}

/// Writes `cursor` into `payload` as the job's continuation, as Rails
/// serializes a job it re-enqueues after an interruption: this run counts
/// as an execution, and as a resumption when it `resumed` from progress.
pub fn advance(payload: &mut Map<String, Value>, cursor: &Value, resumed: bool) {
    let Some(job) = payload.get_mut("args").and_then(|a| a.get_mut(0)).and_then(Value::as_object_mut) else {
        return;
    };
    let count = |job: &Map<String, Value>, key: &str| job.get(key).and_then(Value::as_u64).unwrap_or(0);
    let resumptions = count(job, "resumptions") + u64::from(resumed);
    let executions = count(job, "executions") + 1;
    job.insert("continuation".into(), cursor.clone());
    job.insert("resumptions".into(), json!(resumptions));
    job.insert("executions".into(), json!(executions));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload as Rails 8.1's Sidekiq adapter writes it.
    fn payload(continuation: Value) -> Map<String, Value> {
        let job = json!({"job_class": "ImportJob", "job_id": "0f6b", "queue_name": "default",
            "arguments": [7], "executions": 1, "exception_executions": {}, "locale": "en",
            "timezone": "UTC", "continuation": continuation, "resumptions": 0});
        let wrapper = json!({"class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "ImportJob",
            "queue": "default", "args": [job], "jid": "abc", "retry": true});
        wrapper.as_object().unwrap().clone()
    }

    #[test]
    fn a_continuable_job_is_known_by_its_continuation_key() {
        assert_eq!(of(&payload(json!({}))), Some(Continuable { progress: None }));
        let started = json!({"completed": ["validate"], "current": ["process", 42]});
        assert_eq!(of(&payload(started.clone())).unwrap().progress, Some(started.to_string()));
        let mut plain = payload(json!({}));
        plain["args"][0].as_object_mut().unwrap().remove("continuation");
        assert_eq!(of(&plain), None);
    }

    #[test]
    fn cursors_must_have_rails_shape() {
        assert!(check(&json!({})).is_ok());
        assert!(check(&json!({"completed": ["a"], "current": ["b", {"id": 3}]})).is_ok());
        assert!(check(&json!(42)).is_err());
        assert!(check(&json!({"current": [1, 2]})).is_err());
        assert!(check(&json!({"next": 3})).is_err());
    }

    #[test]
    fn advancing_counts_as_rails_does() {
        let mut job = payload(json!({"current": ["process", 10]}));
        advance(&mut job, &json!({"current": ["process", 55]}), true);
        let serialized = &job["args"][0];
        assert_eq!(serialized["continuation"], json!({"current": ["process", 55]}));
        assert_eq!(
            (serialized["resumptions"].as_u64(), serialized["executions"].as_u64()),
            (Some(1), Some(2))
        );
    }
}
