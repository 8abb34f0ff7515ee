//! Decoding a job's arguments.
//!
//! Sidekiq clients pass arguments either as one JSON object
//! (`[{"id":42,"email":"a@example.com"}]`) or positionally
//! (`[42, "a@example.com"]`). [`Args`] reads a field by name from the first
//! form and by index from the second, so a plugin accepts both without
//! caring which one arrived. Every error is a permanent [`JobError`] that
//! names the field, because malformed arguments never fix themselves.

use crate::JobError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The decoded arguments of one job.
///
/// ```
/// use jobrunner_plugin_sdk::Args;
///
/// // OrderCreateJob.perform_later(id: 42, email: "a@example.com"), or
/// // Sidekiq::Client.push("args" => [42, "a@example.com"]): the same reads.
/// for json in [r#"[{"id": 42, "email": "a@example.com"}]"#, r#"[42, "a@example.com"]"#] {
///     let args = Args::parse(json)?;
///     assert_eq!(args.required::<u64>("id", 0)?, 42);
///     assert_eq!(args.optional::<String>("name", 2)?, None);
/// }
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub enum Args {
    /// `[{...}]`: fields by name.
    Named(serde_json::Map<String, Value>),
    /// `[a, b, ...]`: fields by position.
    Positional(Vec<Value>),
}

impl Args {
    /// Parses the JSON text of a job's `args` array ([`Job::args`]).
    /// Anything but a JSON array is a permanent error.
    ///
    /// [`Job::args`]: crate::Job::args
    ///
    /// ```
    /// use jobrunner_plugin_sdk::Args;
    ///
    /// assert!(matches!(Args::parse(r#"[{"id": 1}]"#)?, Args::Named(_)));
    /// assert!(matches!(Args::parse("[1, 2]")?, Args::Positional(_)));
    /// assert!(Args::parse(r#"{"id": 1}"#).is_err());
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn parse(json: &str) -> Result<Args, JobError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| JobError::Permanent(format!("args are not valid JSON: {e}")))?;
        let Value::Array(mut items) = value else {
            return Err(JobError::Permanent("args must be a JSON array".into()));
        };
        if items.len() == 1 && items[0].is_object() {
            let Some(Value::Object(map)) = items.pop() else { unreachable!() };
            return Ok(Args::Named(map));
        }
        Ok(Args::Positional(items))
    }

    fn raw(&self, name: &str, position: usize) -> Option<&Value> {
        let value = match self {
            Args::Named(map) => map.get(name),
            Args::Positional(items) => items.get(position),
        };
        value.filter(|v| !v.is_null())
    }

    /// The field `name` (or the argument at `position`), which must be
    /// present and not `null`; the error names the field.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::Args;
    ///
    /// let args = Args::parse(r#"[{"email": "a@example.com"}]"#)?;
    /// let email: String = args.required("email", 0)?;
    /// assert!(args.required::<u64>("id", 1).is_err()); // "missing argument `id`"
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn required<T: DeserializeOwned>(&self, name: &str, position: usize) -> Result<T, JobError> {
        self.optional(name, position)?
            .ok_or_else(|| JobError::Permanent(format!("missing argument `{name}`")))
    }

    /// The field `name` (or the argument at `position`), if present and
    /// not `null`; a value of the wrong type is still an error.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::Args;
    ///
    /// let args = Args::parse(r#"["a@example.com", null]"#)?;
    /// let name: Option<String> = args.optional("name", 1)?;
    /// assert_eq!(name, None);
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn optional<T: DeserializeOwned>(&self, name: &str, position: usize) -> Result<Option<T>, JobError> {
        let Some(value) = self.raw(name, position) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|e| JobError::Permanent(format!("malformed argument `{name}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: JobError) -> String {
        match err {
            JobError::Permanent(m) => m,
            JobError::Retryable(m) => panic!("expected a permanent error, got retryable: {m}"),
        }
    }

    #[test]
    fn named_and_positional_read_the_same_field() {
        let named = Args::parse(r#"[{"id":42,"email":"a@example.com"}]"#).unwrap();
        let positional = Args::parse(r#"[42,"a@example.com"]"#).unwrap();
        for args in [named, positional] {
            assert_eq!(args.required::<u64>("id", 0).unwrap(), 42);
            assert_eq!(args.required::<String>("email", 1).unwrap(), "a@example.com");
            assert_eq!(args.optional::<String>("name", 2).unwrap(), None);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let args = Args::parse(r#"[{"id":"x"}]"#).unwrap();
        assert!(message(args.required::<u64>("id", 0).unwrap_err()).contains("`id`"));
        assert!(
            message(args.required::<String>("email", 1).unwrap_err()).contains("missing argument `email`")
        );
        assert!(message(Args::parse("{}").err().unwrap()).contains("array"));
    }
}
