//! A job as Sidekiq stores it, and what a plugin sees of it.
//!
//! [`Job::parse`] reads Sidekiq's JSON and, for ActiveJob payloads, looks
//! through the wrapper ([`crate::activejob`]): the plugin sees the ActiveJob
//! class (`OrderCreateJob`, or `UserMailer#welcome_email` for a
//! `deliver_later` mail) and its plain arguments.
//!
//! Every job is read for a handful of fields; only a job that fails or
//! goes back to its queue needs the rest, to record its failure on it the
//! way Sidekiq does. So the JSON is read once into just those fields, with
//! the arguments kept as the text the plugin gets, and read whole
//! ([`Job::payload`]) only when needed: a no-op job's parse went from
//! about 1.0 to 0.3 µs, an order mail's from 3.4 to 0.5 µs. A payload the
//! quick reading refuses (a field of an unexpected type, a key twice) is
//! read whole at once, and judged as before.

use crate::activejob;
use crate::wit;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// One job taken off a queue.
#[derive(Clone, Debug)]
pub struct Job {
    /// The class that performs it (ActiveJob's class for wrapped jobs).
    pub class: String,
    /// Sidekiq's job id.
    pub jid: String,
    /// The queue it came from.
    pub queue: String,
    /// The plain arguments, as the JSON text of an array.
    pub args: String,
    /// The top-level fields read on every job (see [`Fields`]).
    fields: Fields,
    /// The JSON as taken, for [`Job::payload`].
    raw: Arc<[u8]>,
}

/// The payload's fields the runner reads on every job, each as written.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    retry_count: Field,
    enqueued_at: Field,
    created_at: Field,
    expires_at: Field,
    expires_in: Field,
    unique_for: Field,
}

/// A field as written, `null` included; `None` when absent. (An `Option`
/// would read `null` as absent, and `"retry": null` is refused, not
/// taken for no `retry`.)
#[derive(Clone, Debug, Default)]
struct Field(Option<Value>);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        Value::deserialize(deserializer).map(|value| Field(Some(value)))
    }
}

/// What the quick reading takes from a payload.
#[derive(Deserialize)]
struct Quick<'a> {
    #[serde(borrow)]
    class: Cow<'a, str>,
    #[serde(borrow)]
    args: &'a RawValue,
    #[serde(default)]
    jid: Field,
    #[serde(default)]
    retry: Field,
    #[serde(default)]
    retry_count: Field,
    #[serde(default)]
    enqueued_at: Field,
    #[serde(default)]
    created_at: Field,
    #[serde(default)]
    expires_at: Field,
    #[serde(default)]
    expires_in: Field,
    #[serde(default)]
    unique_for: Field,
}

impl Fields {
    /// The field `key`, if the payload has it and it is one of these.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let field = match key {
            "retry_count" => &self.retry_count,
            "enqueued_at" => &self.enqueued_at,
            "created_at" => &self.created_at,
            "expires_at" => &self.expires_at,
            "expires_in" => &self.expires_in,
            "unique_for" => &self.unique_for,
            _ => return None,
        };
        field.0.as_ref()
    }

    /// The fields of a payload read whole.
    pub fn of(payload: &Map<String, Value>) -> Fields {
        let field = |key: &str| Field(payload.get(key).cloned());
        Fields {
            retry_count: field("retry_count"),
            enqueued_at: field("enqueued_at"),
            created_at: field("created_at"),
            expires_at: field("expires_at"),
            expires_in: field("expires_in"),
            unique_for: field("unique_for"),
        }
    }
}

impl Job {
    /// Parses a payload taken from `queue`. Fails with the reason when it is
    /// not a Sidekiq job.
    pub fn parse(raw: impl Into<Arc<[u8]>>, queue: &str) -> Result<Job> {
        let raw: Arc<[u8]> = raw.into();
        let text = std::str::from_utf8(&raw).context("the payload is not valid UTF-8")?;
        let (class, jid, args, fields) = match quick(text) {
            Some(read) => read?,
            None => whole(text)?,
        };
        Ok(Job { class, jid, queue: queue.to_string(), args, fields, raw })
    }

    /// The whole payload, read again from the JSON as taken: to record a
    /// failure on it, or to push it again.
    pub fn payload(&self) -> Result<Map<String, Value>> {
        match serde_json::from_slice(&self.raw).context("the payload is not valid JSON")? {
            Value::Object(payload) => Ok(payload),
            _ => bail!("the payload is not a JSON object"),
        }
    }

    /// The payload's fields read on every job.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The JSON exactly as taken.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// When the job was pushed to its queue, in epoch seconds.
    pub fn enqueued_at(&self) -> Option<f64> {
        self.fields.get("enqueued_at").and_then(crate::clock::epoch_seconds)
    }

    /// When the job was created, in epoch seconds.
    pub fn created_at(&self) -> Option<f64> {
        self.fields.get("created_at").and_then(crate::clock::epoch_seconds)
    }

    /// How many times the job has failed before this run.
    pub fn previous_failures(&self) -> u32 {
        match self.fields.get("retry_count").and_then(Value::as_u64) {
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
            args: self.args.clone(),
            retry_count: self.previous_failures(),
            enqueued_at: self.enqueued_at(),
            created_at: self.created_at(),
        }
    }
}

/// Class, jid, arguments' text and fields.
type Read = (String, String, String, Fields);

/// The quick reading; `None` when it can't tell, and the payload is to be
/// read whole.
fn quick(text: &str) -> Option<Result<Read>> {
    // serde would also read a struct from an array, `["X", []]`.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let quick: Quick = serde_json::from_str(text).ok()?;
    let args = quick.args.get();
    if quick.class.is_empty() || !args.starts_with('[') || nests_deeper_than(args, MAX_DEPTH) {
        return None;
    }
    let read = || {
        check_retry(quick.retry.0.as_ref())?;
        let jid = jid(quick.jid.0)?;
        let (class, args) = if activejob::is_wrapper(&quick.class) {
            let args: Vec<Value> = serde_json::from_str(quick.args.get()).context("the payload's `args`")?;
            let (class, args) = activejob::unwrap(&args).context("malformed ActiveJob payload")?;
            (class, args.to_string())
        } else {
            (quick.class.into_owned(), quick.args.get().to_string())
        };
        let fields = Fields {
            retry_count: quick.retry_count,
            enqueued_at: quick.enqueued_at,
            created_at: quick.created_at,
            expires_at: quick.expires_at,
            expires_in: quick.expires_in,
            unique_for: quick.unique_for,
        };
        Ok((class, jid, args, fields))
    };
    Some(read())
}

/// The deepest the arguments may nest: serde_json refuses a payload
/// nested 128 deep, its outer object included, and a value read as raw
/// text skips that check.
const MAX_DEPTH: usize = 126;

/// Whether the JSON `text` nests arrays and objects more than `limit`
/// deep: such a payload is read whole, and refused as serde_json refuses it.
fn nests_deeper_than(text: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The reading of the whole payload, which says what is wrong with it.
fn whole(text: &str) -> Result<Read> {
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
    let jid = jid(payload.get("jid").cloned())?;
    let (class, args) = if activejob::is_wrapper(&class) {
        let (class, args) = activejob::unwrap(args).context("malformed ActiveJob payload")?;
        (class, args.to_string())
    } else {
        (class, Value::Array(args.clone()).to_string())
    };
    Ok((class, jid, args, Fields::of(&payload)))
}

/// The payload's `jid`, empty when it has none.
fn jid(jid: Option<Value>) -> Result<String> {
    match jid {
        None => Ok(String::new()),
        Some(Value::String(jid)) => Ok(jid),
        Some(other) => bail!("the payload's `jid` is {other}, not a string"),
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

    fn args(job: &Job) -> Value {
        serde_json::from_str(&job.args).unwrap()
    }

    #[test]
    fn plain_sidekiq_job() {
        let raw = r#"{"class":"OrderCreateJob","args":[42,"a@example.com"],"jid":"abc","queue":"default","retry_count":2}"#;
        let job = Job::parse(raw.as_bytes(), "default").unwrap();
        assert_eq!(job.class, "OrderCreateJob");
        assert_eq!(args(&job), json!([42, "a@example.com"]));
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
            args(&job),
            json!([{"id": 42, "email": "a@example.com", "nested": {"k": "x"}}, "gid://app/Order/42"])
        );
    }

    #[test]
    fn bad_payloads_say_why() {
        let reason = |raw: &str| format!("{:#}", Job::parse(raw.as_bytes(), "q").unwrap_err());
        assert!(reason("{nope").contains("not valid JSON"));
        assert!(
            format!("{:#}", Job::parse(&b"{\"class\":\"\xff\"}"[..], "q").unwrap_err()).contains("UTF-8")
        );
        assert!(reason(r#"{"class":5,"args":[]}"#).contains("`class`"));
        assert!(reason(r#"{"class":"X","args":{}}"#).contains("`args`"));
        assert!(reason(r#"{"class":"X","args":[],"retry":"yes"}"#).contains("`retry`"));
        assert!(reason(r#"{"class":"X","args":[],"retry":-1}"#).contains("`retry`"));
        assert!(reason(r#"{"class":"X","args":[],"jid":7}"#).contains("`jid`"));
        let deep = format!("{{\"class\":\"X\",\"args\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(reason(&deep).contains("not valid JSON"));
        let nested =
            |depth: usize| format!("{{\"class\":\"X\",\"args\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(Job::parse(nested(MAX_DEPTH).as_bytes(), "q").is_ok(), "as deep as serde_json reads");
        assert!(whole(&nested(MAX_DEPTH)).is_ok(), "and as deep as the whole reading");
        assert!(whole(&nested(MAX_DEPTH + 1)).is_err());
        assert!(reason(&nested(MAX_DEPTH + 1)).contains("not valid JSON"));
        assert!(!nests_deeper_than(r#"["[[[[", {"a": "\"[["}]"#, 2));
        assert!(reason("[1]").contains("not a JSON object"));
        assert!(reason(r#"["X", []]"#).contains("not a JSON object"));
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
        fn the_quick_reading_agrees_with_the_whole(value in any_json(), class in "[A-Z][a-z]{0,8}", jid in prop::option::of(any_json())) {
            let mut payload = serde_json::json!({"class": class, "args": [value.clone()], "enqueued_at": value});
            if let Some(jid) = jid {
                payload["jid"] = jid;
            }
            let text = serde_json::to_string_pretty(&payload).unwrap();
            if let Some(quick) = quick(&text) {
                let whole = whole(&text);
                prop_assert_eq!(quick.is_ok(), whole.is_ok());
                if let (Ok(quick), Ok(whole)) = (quick, whole) {
                    prop_assert_eq!((&quick.0, &quick.1), (&whole.0, &whole.1));
                    let args = |text: &str| serde_json::from_str::<Value>(text).unwrap();
                    prop_assert_eq!(args(&quick.2), args(&whole.2));
                    prop_assert_eq!(quick.3.get("enqueued_at"), whole.3.get("enqueued_at"));
                }
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Job::parse(&bytes[..], "default");
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
                let mut fields = job.payload().unwrap();
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
                prop_assert_eq!(serde_json::from_str::<Value>(&job.args).unwrap(), Value::Array(args));
            }
        }
    }
}
