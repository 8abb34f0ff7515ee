//! A job as Sidekiq stores it, and what a plugin sees of it.
//!
//! [`Job::parse`] reads Sidekiq's JSON and, for ActiveJob payloads, looks
//! through the wrapper ([`crate::activejob`]): the plugin sees the ActiveJob
//! class (`OrderCreateJob`, or `UserMailer#welcome_email` for a
//! `deliver_later` mail) and its plain arguments. The full JSON is kept as
//! parsed, to record failures on it the way Sidekiq does.

use crate::activejob;
use crate::wit;
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// One job taken off a queue.
#[derive(Clone, Debug)]
pub struct Job {
    /// The parsed JSON, updated with error fields when the job fails.
    pub payload: Map<String, Value>,
    /// The class that performs it (ActiveJob's class for wrapped jobs).
    pub class: String,
    /// Sidekiq's job id.
    pub jid: String,
    /// The queue it came from.
    pub queue: String,
    /// The plain arguments, as a JSON array.
    pub args: Value,
}

impl Job {
    /// Parses a payload taken from `queue`. Fails with the reason when it is
    /// not a Sidekiq job.
    pub fn parse(raw: &[u8], queue: &str) -> Result<Job> {
        let text = std::str::from_utf8(raw).context("the payload is not valid UTF-8")?;
        let value: Value = serde_json::from_str(text).context("the payload is not valid JSON")?;
        let Value::Object(payload) = value else {
            bail!("the payload is not a JSON object");
        };
        let class = match payload.get("class") {
            Some(Value::String(class)) if !class.is_empty() => class.clone(),
            _ => bail!("the payload has no `class` string"),
        };
        let Some(Value::Array(args)) = payload.get("args") else {
            bail!("the payload has no `args` array");
        };
        check_retry(payload.get("retry"))?;
        let jid = match payload.get("jid") {
            None => String::new(),
            Some(Value::String(jid)) => jid.clone(),
            Some(other) => bail!("the payload's `jid` is {other}, not a string"),
        };
        let (class, args) = if activejob::is_wrapper(&class) {
            activejob::unwrap(args).context("malformed ActiveJob payload")?
        } else {
            (class, Value::Array(args.clone()))
        };
        Ok(Job { payload, class, jid, queue: queue.to_string(), args })
    }

    /// When the job was pushed to its queue, in epoch seconds.
    pub fn enqueued_at(&self) -> Option<f64> {
        self.timestamp("enqueued_at")
    }

    /// When the job was created, in epoch seconds.
    pub fn created_at(&self) -> Option<f64> {
        self.timestamp("created_at")
    }

    /// The payload's timestamp `key` in epoch seconds, whichever Sidekiq wrote it.
    fn timestamp(&self, key: &str) -> Option<f64> {
        self.payload.get(key).and_then(crate::clock::epoch_seconds)
    }

    /// How many times the job has failed before this run.
    pub fn previous_failures(&self) -> u32 {
        match self.payload.get("retry_count").and_then(Value::as_u64) {
            Some(count) => u32::try_from(count).unwrap_or(u32::MAX).saturating_add(1),
            None => 0,
        }
    }

    /// The job as the plugin sees it.
    pub fn to_wit(&self) -> wit::Job {
        wit::Job {
            jid: self.jid.clone(),
            class: self.class.clone(),
            queue: self.queue.clone(),
            args: self.args.to_string(),
            retry_count: self.previous_failures(),
            enqueued_at: self.enqueued_at(),
            created_at: self.timestamp("created_at"),
        }
    }
}

/// Sidekiq's `retry` is true, false or a number of retries; anything else
/// is a client's mistake that would otherwise be silently reinterpreted.
fn check_retry(retry: Option<&Value>) -> Result<()> {
    match retry {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(Value::Number(n)) if n.is_u64() => Ok(()),
        Some(other) => bail!("the payload's `retry` is {other}; expected true, false or a number of retries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_sidekiq_job() {
        let raw = r#"{"class":"OrderCreateJob","args":[42,"a@example.com"],"jid":"abc","queue":"default","retry_count":2}"#;
        let job = Job::parse(raw.as_bytes(), "default").unwrap();
        assert_eq!(job.class, "OrderCreateJob");
        assert_eq!(job.args, json!([42, "a@example.com"]));
        assert_eq!(job.to_wit().retry_count, 3);
    }

    #[test]
    fn active_job_is_unwrapped_and_markers_removed() {
        let raw = json!({
            "class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
            "wrapped": "OrderCreateJob", "queue": "default", "jid": "j1",
            "args": [{"job_class": "OrderCreateJob", "job_id": "u", "arguments": [
                {"id": 42, "email": "a@example.com", "_aj_symbol_keys": ["id", "email"],
                 "nested": {"k": {"_aj_serialized": "ActiveJob::Serializers::SymbolSerializer", "value": "x"},
                            "_aj_hash_with_indifferent_access": true}},
                {"_aj_globalid": "gid://app/Order/42"}
            ]}]
        });
        let job = Job::parse(raw.to_string().as_bytes(), "default").unwrap();
        assert_eq!(job.class, "OrderCreateJob");
        assert_eq!(
            job.args,
            json!([{"id": 42, "email": "a@example.com", "nested": {"k": "x"}}, "gid://app/Order/42"])
        );
    }

    #[test]
    fn bad_payloads_say_why() {
        let reason = |raw: &str| format!("{:#}", Job::parse(raw.as_bytes(), "q").unwrap_err());
        assert!(reason("{nope").contains("not valid JSON"));
        assert!(format!("{:#}", Job::parse(b"{\"class\":\"\xff\"}", "q").unwrap_err()).contains("UTF-8"));
        assert!(reason(r#"{"class":5,"args":[]}"#).contains("`class`"));
        assert!(reason(r#"{"class":"X","args":{}}"#).contains("`args`"));
        assert!(reason(r#"{"class":"X","args":[],"retry":"yes"}"#).contains("`retry`"));
        assert!(reason(r#"{"class":"X","args":[],"retry":-1}"#).contains("`retry`"));
        assert!(reason(r#"{"class":"X","args":[],"jid":7}"#).contains("`jid`"));
        let deep = format!("{{\"class\":\"X\",\"args\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(reason(&deep).contains("not valid JSON"));
        assert!(reason("[1]").contains("not a JSON object"));
        assert!(reason(r#"{"args":[]}"#).contains("`class`"));
        assert!(reason(r#"{"class":"X"}"#).contains("`args`"));
        assert!(reason(r#"{"class":"Sidekiq::ActiveJob::Wrapper","args":[{}]}"#).contains("job_class"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// JSON values of any shape, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Job::parse(&bytes, "default");
        }

        #[test]
        fn any_json_decodes_or_fails_with_a_reason(value in any_json()) {
            if let Err(err) = Job::parse(value.to_string().as_bytes(), "default") {
                let reason = format!("{err:#}");
                prop_assert!(!reason.is_empty());
            }
        }

        #[test]
        fn hostile_counts_decode_and_fail_without_overflow(count in any::<u64>(), negative in any::<i64>(), retry in any::<u64>()) {
            for retry_count in [Value::from(count), Value::from(negative)] {
                let payload = serde_json::json!({"class": "X", "args": [], "retry_count": retry_count, "retry": retry});
                let job = Job::parse(payload.to_string().as_bytes(), "default").unwrap();
                let _ = job.to_wit();
                let mut fields = job.payload.clone();
                let failure = crate::retry::Failure::retryable("E", "x");
                let _ = crate::retry::decide(&mut fields, &failure, 1e9, 9);
            }
        }

        #[test]
        fn every_sidekiq_job_decodes_with_its_class_and_args(
            class in "[A-Z][A-Za-z0-9:]{0,30}",
            args in prop::collection::vec(any_json(), 0..5),
            jid in "[0-9a-f]{24}",
            retry in prop_oneof![Just(Value::Bool(true)), Just(Value::Bool(false)), (0u64..30).prop_map(Value::from)],
        ) {
            let payload = serde_json::json!({"class": class, "args": args, "jid": jid, "retry": retry});
            let job = Job::parse(payload.to_string().as_bytes(), "default").unwrap();
            prop_assert_eq!(&job.class, &class);
            prop_assert_eq!(&job.jid, &jid);
            if !activejob::is_wrapper(&class) {
                prop_assert_eq!(job.args, Value::Array(args));
            }
        }
    }
}
