//! Rails' shapes as the host hands them over: `deliver_later` mail jobs
//! and GlobalIDs.
//!
//! A job enqueued by `UserMailer.with(user: u).welcome_email.deliver_later`
//! arrives with class `UserMailer#welcome_email` and one argument, the
//! decoded delivery: [`MailerJob`]. GlobalIDs (`gid://shop/User/1`) are
//! plain strings; [`records::locate`](crate::records::locate) reads them.

use crate::{Job, JobError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A `deliver_later` mail job, the same for every Rails version (5.2 to
/// 8.1): which mailer method, and what it was given.
///
/// ```
/// use jobrunner_plugin_sdk::MailerJob;
///
/// # let job = jobrunner_plugin_sdk::Job {
/// #     jid: "b3c7e1a0d2f4".into(), class: "UserMailer#welcome_email".into(), queue: "mailers".into(),
/// #     args: r#"[{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
/// #       "params": {"user": "gid://shop/User/1"}, "args": ["Welcome!"], "kwargs": {"coupon": "TEA10"}}]"#.into(),
/// #     retry_count: 0, enqueued_at: None, created_at: None,
/// # };
/// // UserMailer.with(user: user).welcome_email("Welcome!", coupon: "TEA10").deliver_later
/// let delivery = MailerJob::parse(&job)?;
/// assert_eq!((delivery.mailer.as_str(), delivery.action.as_str()), ("UserMailer", "welcome_email"));
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MailerJob {
    /// The mailer class, e.g. `UserMailer`.
    pub mailer: String,
    /// The mailer method, e.g. `welcome_email`.
    pub action: String,
    /// `deliver_now` (from `deliver_later`) or `deliver_now!`.
    pub delivery_method: String,
    /// What `with(...)` was given, e.g. `{"user": "gid://shop/User/1"}`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The mailer method's positional arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Its keyword arguments.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
}

impl MailerJob {
    /// Reads the delivery from a mail job's arguments; anything else is a
    /// permanent error naming the class. See [`MailerJob`] for an example.
    pub fn parse(job: &Job) -> Result<MailerJob, JobError> {
        let bad = |e: String| JobError::Permanent(format!("{} is not a deliver_later job: {e}", job.class));
        let mut args: Vec<MailerJob> = serde_json::from_str(&job.args).map_err(|e| bad(e.to_string()))?;
        match args.len() {
            1 => Ok(args.remove(0)),
            n => Err(bad(format!("expected one argument, got {n}"))),
        }
    }

    /// The `with(name: ...)` parameter `name`, if given.
    ///
    /// ```
    /// # use jobrunner_plugin_sdk::MailerJob;
    /// # let job = jobrunner_plugin_sdk::Job {
    /// #     jid: "b3c7e1a0d2f4".into(), class: "UserMailer#welcome_email".into(), queue: "mailers".into(),
    /// #     args: r#"[{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
    /// #       "params": {"user": "gid://shop/User/1"}, "args": ["Welcome!"], "kwargs": {"coupon": "TEA10"}}]"#.into(),
    /// #     retry_count: 0, enqueued_at: None, created_at: None,
    /// # };
    /// let delivery = MailerJob::parse(&job)?;
    /// let user: Option<String> = delivery.param("user")?;
    /// assert_eq!(user.as_deref(), Some("gid://shop/User/1"));
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, JobError> {
        decode(self.params.get(name), &format!("params[:{name}]"))
    }

    /// The positional argument at `index`, if given.
    ///
    /// ```
    /// # use jobrunner_plugin_sdk::MailerJob;
    /// # let job = jobrunner_plugin_sdk::Job {
    /// #     jid: "b3c7e1a0d2f4".into(), class: "UserMailer#welcome_email".into(), queue: "mailers".into(),
    /// #     args: r#"[{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
    /// #       "params": {"user": "gid://shop/User/1"}, "args": ["Welcome!"], "kwargs": {"coupon": "TEA10"}}]"#.into(),
    /// #     retry_count: 0, enqueued_at: None, created_at: None,
    /// # };
    /// let greeting: Option<String> = MailerJob::parse(&job)?.arg(0)?;
    /// assert_eq!(greeting.as_deref(), Some("Welcome!"));
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>, JobError> {
        decode(self.args.get(index), &format!("argument {index}"))
    }

    /// The keyword argument `name`, if given.
    ///
    /// ```
    /// # use jobrunner_plugin_sdk::MailerJob;
    /// # let job = jobrunner_plugin_sdk::Job {
    /// #     jid: "b3c7e1a0d2f4".into(), class: "UserMailer#welcome_email".into(), queue: "mailers".into(),
    /// #     args: r#"[{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
    /// #       "params": {"user": "gid://shop/User/1"}, "args": ["Welcome!"], "kwargs": {"coupon": "TEA10"}}]"#.into(),
    /// #     retry_count: 0, enqueued_at: None, created_at: None,
    /// # };
    /// let coupon: Option<String> = MailerJob::parse(&job)?.kwarg("coupon")?;
    /// assert_eq!(coupon.as_deref(), Some("TEA10"));
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn kwarg<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, JobError> {
        decode(self.kwargs.get(name), &format!("keyword argument {name}:"))
    }
}

fn decode<T: DeserializeOwned>(value: Option<&Value>, what: &str) -> Result<Option<T>, JobError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            T::deserialize(value).map(Some).map_err(|e| JobError::Permanent(format!("malformed {what}: {e}")))
        }
    }
}

/// Whether `value` is a GlobalID of `model`: `gid://app/Order/42` for `Order`.
///
/// ```
/// use jobrunner_plugin_sdk::rails::is_gid_of;
///
/// assert!(is_gid_of("gid://shop/Order/42", "Order"));
/// assert!(!is_gid_of("gid://shop/User/42", "Order"));
/// ```
pub fn is_gid_of(value: &str, model: &str) -> bool {
    value.strip_prefix("gid://").and_then(|rest| rest.split('/').nth(1)) == Some(model)
}

/// A hash argument as the app passed it: ActiveJob's `_aj_*` markers
/// (`_aj_symbol_keys`, `_aj_ruby2_keywords`, ...) taken out, at any depth.
///
/// ```
/// use jobrunner_plugin_sdk::rails::plain;
/// use serde_json::json;
///
/// let event = json!({"type": "paid", "data": {"id": 1, "_aj_symbol_keys": ["id"]}, "_aj_symbol_keys": ["type"]});
/// assert_eq!(plain(event), json!({"type": "paid", "data": {"id": 1}}));
/// ```
pub fn plain(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter().filter(|(k, _)| !k.starts_with("_aj_")).map(|(k, v)| (k, plain(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(plain).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(args: &str) -> Job {
        Job {
            jid: "j".into(),
            class: "UserMailer#welcome_email".into(),
            queue: "mailers".into(),
            args: args.into(),
            retry_count: 0,
            enqueued_at: None,
            created_at: None,
        }
    }

    #[test]
    fn reads_the_decoded_delivery() {
        let mail = MailerJob::parse(&job(
            r#"[{"mailer":"UserMailer","action":"welcome_email","delivery_method":"deliver_now",
                "params":{"user":"gid://shop/User/1"},"args":[],"kwargs":{"greeting":"hi"}}]"#,
        ))
        .unwrap();
        assert_eq!(mail.param::<String>("user").unwrap().as_deref(), Some("gid://shop/User/1"));
        assert_eq!(mail.arg::<String>(0).unwrap(), None);
        assert_eq!(mail.kwarg::<String>("greeting").unwrap().as_deref(), Some("hi"));
        assert!(MailerJob::parse(&job("[1]")).is_err());
    }

    #[test]
    fn global_ids_by_model() {
        assert!(is_gid_of("gid://shop/Order/42", "Order"));
        assert!(!is_gid_of("gid://shop/OrderItem/42", "Order"));
        assert!(!is_gid_of("Order/42", "Order"));
    }
}
