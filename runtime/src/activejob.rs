//! ActiveJob's serialization inside a Sidekiq job, decoded once for the
//! worker and the dashboard alike.
//!
//! Rails' sidekiq adapter pushes a wrapper class whose `args[0]` holds the
//! ActiveJob job: its `job_class` and `arguments`, with Ruby-specific
//! `_aj_*` markers. [`unwrap`] looks through it: the plugin sees the
//! ActiveJob class and plain arguments, GlobalIDs as their `gid://` strings.
//!
//! ActionMailer's `deliver_later` jobs (`ActionMailer::MailDeliveryJob` and
//! the older `DeliveryJob`s) are routed by what they deliver: their class
//! becomes `Mailer#action` (`UserMailer#welcome_email`), and their
//! arguments one object, the same for every Rails version:
//!
//! ```json
//! [{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
//!   "params": {"user": "gid://shop/User/1"}, "args": [], "kwargs": {}}]
//! ```

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

/// The wrapper classes ActiveJob's sidekiq adapter enqueues (Rails' own,
/// and Sidekiq 7.3.3+'s).
pub const WRAPPERS: &[&str] =
    &["ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper", "Sidekiq::ActiveJob::Wrapper"];

/// ActionMailer's delivery jobs: `MailDeliveryJob` (Rails 6.0+ defaults)
/// takes one keyword hash; the older two take positional arguments, the
/// parameterized one with the params hash first.
const MAIL_DELIVERY_JOB: &str = "ActionMailer::MailDeliveryJob";
const DELIVERY_JOB: &str = "ActionMailer::DeliveryJob";
const PARAMETERIZED_DELIVERY_JOB: &str = "ActionMailer::Parameterized::DeliveryJob";

/// Whether `class` is one of ActiveJob's wrapper classes.
pub fn is_wrapper(class: &str) -> bool {
    WRAPPERS.contains(&class)
}

/// The class and plain arguments of a wrapped job, from the wrapper's
/// `args`. Mail delivery jobs come back as `Mailer#action` and the object
/// described in the module documentation.
pub fn unwrap(args: &[Value]) -> Result<(String, Value)> {
    let Some(Value::Object(inner)) = args.first() else {
        bail!("args[0] is not an object");
    };
    let Some(Value::String(class)) = inner.get("job_class") else {
        bail!("args[0] has no `job_class`");
    };
    let Some(Value::Array(arguments)) = inner.get("arguments") else {
        bail!("args[0] has no `arguments` array");
    };
    if [MAIL_DELIVERY_JOB, DELIVERY_JOB, PARAMETERIZED_DELIVERY_JOB].contains(&class.as_str()) {
        return mail_delivery(class, arguments);
    }
    Ok((class.clone(), Value::Array(arguments.iter().cloned().map(strip_markers).collect())))
}

/// The class and arguments to show for a job's JSON, as the dashboard
/// lists it: ActiveJob and mail jobs decoded as for the plugin, anything
/// else as it is.
pub fn display(job: &Value) -> Option<(String, Value)> {
    let class = job.get("class")?.as_str()?;
    let args = job.get("args")?.as_array()?;
    match is_wrapper(class) {
        true => unwrap(args).ok(),
        false => Some((class.to_string(), Value::Array(args.clone()))),
    }
}

/// `[mailer, action, delivery_method, ...]` of a delivery job, decoded.
fn mail_delivery(job_class: &str, arguments: &[Value]) -> Result<(String, Value)> {
    let text = |i: usize, what: &str| match arguments.get(i) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => bail!("{job_class}'s arguments[{i}] is not the {what} name"),
    };
    let (mailer, action, delivery_method) =
        (text(0, "mailer")?, text(1, "action")?, text(2, "delivery method")?);
    let rest = &arguments[3..];
    let (params, mut args, mut kwargs) = match job_class {
        MAIL_DELIVERY_JOB => keyword_form(job_class, rest)?,
        PARAMETERIZED_DELIVERY_JOB => match rest.split_first() {
            Some((Value::Object(params), args)) => (Value::Object(params.clone()), args.to_vec(), Map::new()),
            _ => bail!("{job_class}'s arguments[3] is not the params hash"),
        },
        _ => (json!({}), rest.to_vec(), Map::new()),
    };
    // A trailing hash flagged as Ruby keywords is the mailer's kwargs.
    if let Some(Value::Object(last)) = args.last()
        && last.contains_key("_aj_ruby2_keywords")
    {
        let Some(Value::Object(last)) = args.pop() else { unreachable!() };
        kwargs.extend(last);
    }
    let decoded = json!({
        "mailer": mailer,
        "action": action,
        "delivery_method": delivery_method,
        "params": strip_markers(params),
        "args": strip_markers(Value::Array(args)),
        "kwargs": strip_markers(Value::Object(kwargs)),
    });
    Ok((format!("{mailer}#{action}"), Value::Array(vec![decoded])))
}

/// `MailDeliveryJob`'s one keyword hash: `params:`, `args:` and `kwargs:`.
fn keyword_form(job_class: &str, rest: &[Value]) -> Result<(Value, Vec<Value>, Map<String, Value>)> {
    let keywords = match rest {
        [] => return Ok((json!({}), Vec::new(), Map::new())),
        [Value::Object(keywords)] => keywords,
        _ => bail!("{job_class}'s arguments[3] is not its keyword hash (params, args, kwargs)"),
    };
    let params = match keywords.get("params") {
        None | Some(Value::Null) => json!({}),
        Some(params @ Value::Object(_)) => params.clone(),
        Some(_) => bail!("{job_class}'s `params` is not a hash"),
    };
    let args = match keywords.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(args)) => args.clone(),
        Some(_) => bail!("{job_class}'s `args` is not an array"),
    };
    let kwargs = match keywords.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(kwargs)) => kwargs.clone(),
        Some(_) => bail!("{job_class}'s `kwargs` is not a hash"),
    };
    Ok((params, args, kwargs))
}

/// Removes ActiveJob's Ruby-specific markers, at any depth: hash key lists
/// are dropped, a GlobalID becomes its `gid://` string, and a serialized
/// value (a Symbol, a Time, a Duration...) becomes its `value`.
fn strip_markers(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(strip_markers).collect()),
        Value::Object(mut map) => {
            if let Some(gid) = map.get("_aj_globalid").filter(|_| map.len() == 1) {
                return gid.clone();
            }
            if map.contains_key("_aj_serialized")
                && let Some(value) = map.remove("value")
            {
                return strip_markers(value);
            }
            map.retain(|key, _| !key.starts_with("_aj_"));
            Value::Object(map.into_iter().map(|(k, v)| (k, strip_markers(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(job_class: &str, arguments: Value) -> Vec<Value> {
        vec![json!({"job_class": job_class, "job_id": "j", "arguments": arguments})]
    }

    fn user() -> Value {
        json!({"_aj_globalid": "gid://shop/User/42"})
    }

    fn decoded(params: Value, args: Value, kwargs: Value) -> Value {
        json!([{"mailer": "UserMailer", "action": "welcome_email", "delivery_method": "deliver_now",
                "params": params, "args": args, "kwargs": kwargs}])
    }

    #[test]
    fn mail_delivery_job_positional() {
        let args = wrapped(
            MAIL_DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now", {"args": [user()], "_aj_ruby2_keywords": ["args"]}]),
        );
        let (class, args) = unwrap(&args).unwrap();
        assert_eq!(class, "UserMailer#welcome_email");
        assert_eq!(args, decoded(json!({}), json!(["gid://shop/User/42"]), json!({})));
    }

    #[test]
    fn mail_delivery_job_parameterized() {
        let args = wrapped(
            MAIL_DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now",
                   {"params": {"user": user(), "_aj_symbol_keys": ["user"]}, "args": [],
                    "_aj_ruby2_keywords": ["params", "args"]}]),
        );
        let (_, args) = unwrap(&args).unwrap();
        assert_eq!(args, decoded(json!({"user": "gid://shop/User/42"}), json!([]), json!({})));
    }

    #[test]
    fn mail_delivery_job_keyword_arguments() {
        let args = wrapped(
            MAIL_DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now",
                   {"args": [user(), {"greeting": "hello", "_aj_ruby2_keywords": ["greeting"]}],
                    "_aj_ruby2_keywords": ["args"]}]),
        );
        let (_, args) = unwrap(&args).unwrap();
        assert_eq!(args, decoded(json!({}), json!(["gid://shop/User/42"]), json!({"greeting": "hello"})));
    }

    #[test]
    fn old_delivery_jobs() {
        let positional = wrapped(
            DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now", user(),
                   {"greeting": "hi", "_aj_ruby2_keywords": ["greeting"]}]),
        );
        let (class, args) = unwrap(&positional).unwrap();
        assert_eq!(class, "UserMailer#welcome_email");
        assert_eq!(args, decoded(json!({}), json!(["gid://shop/User/42"]), json!({"greeting": "hi"})));

        let parameterized = wrapped(
            PARAMETERIZED_DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now", {"user": user(), "_aj_symbol_keys": ["user"]}, 7]),
        );
        let (_, args) = unwrap(&parameterized).unwrap();
        assert_eq!(args, decoded(json!({"user": "gid://shop/User/42"}), json!([7]), json!({})));
    }

    #[test]
    fn malformed_mail_jobs_say_why() {
        let reason =
            |arguments: Value| format!("{:#}", unwrap(&wrapped(MAIL_DELIVERY_JOB, arguments)).unwrap_err());
        assert!(reason(json!([5, "a", "deliver_now"])).contains("mailer"));
        assert!(reason(json!(["M", "a", "deliver_now", [1]])).contains("keyword hash"));
        assert!(reason(json!(["M", "a", "deliver_now", {"args": 5}])).contains("`args`"));
    }

    #[test]
    fn plain_active_job_keeps_its_class() {
        let args = wrapped("OrderCreateJob", json!([user()]));
        assert_eq!(unwrap(&args).unwrap(), ("OrderCreateJob".to_string(), json!(["gid://shop/User/42"])));
    }

    #[test]
    fn display_decodes_like_the_worker() {
        let job = json!({"class": WRAPPERS[1], "args": wrapped(MAIL_DELIVERY_JOB,
            json!(["UserMailer", "welcome_email", "deliver_now", {"args": [user()], "_aj_ruby2_keywords": ["args"]}]))});
        assert_eq!(display(&job).unwrap().0, "UserMailer#welcome_email");
        assert_eq!(display(&json!({"class": "X", "args": [1]})).unwrap(), ("X".to_string(), json!([1])));
    }
}
