//! Sends the order confirmation mail for `OrderCreateJob`.
//!
//! Arguments, any of:
//! - `["gid://shop/Order/42"]`, as `OrderCreateJob.perform_later(order)`
//!   enqueues it: the order, its user and its line items are read from the
//!   app's database through `records`;
//! - `[{"id":42,"email":"buyer@example.com","name":"Ann",
//!   "items":[{"name":"Tea","quantity":2,"price":"3.50"}],"total":"7.00"}]`
//!   (name, items and total optional);
//! - positionally `[42, "buyer@example.com"]`.

mod order;

use jobrunner_plugin_sdk::rails::is_gid_of;
use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, Level, PluginInfo, log, mail, plugin_info};
use order::Item;
use serde_json::Value;

/// The subject line; `{id}` is replaced by the order number. A build can
/// set its own with the `ORDER_CREATED_SUBJECT` environment variable.
const SUBJECT: &str = match option_env!("ORDER_CREATED_SUBJECT") {
    Some(subject) => subject,
    None => "Your order #{id} is confirmed",
};

struct OrderCreated;

impl Guest for OrderCreated {
    fn describe() -> PluginInfo {
        plugin_info("order_created", env!("CARGO_PKG_VERSION"), &["OrderCreateJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        if let Args::Positional(values) = &args
            && let [Value::String(gid)] = values.as_slice()
            && is_gid_of(gid, "Order")
        {
            let placed = order::read(gid)?;
            let (order, user) = (&placed.order, &placed.user);
            return send(order.id, &user.email, user.name.as_deref(), &placed.items, order.total.as_deref());
        }
        let id: u64 = args.required("id", 0)?;
        let email: String = args.required("email", 1)?;
        let name: Option<String> = args.optional("name", 2)?;
        let items: Vec<Item> = args.optional("items", 3)?.unwrap_or_default();
        let total: Option<String> = args.optional("total", 4)?;
        send(id, &email, name.as_deref(), &items, total.as_deref())
    }
}

fn send(
    id: u64,
    email: &str,
    name: Option<&str>,
    items: &[Item],
    total: Option<&str>,
) -> Result<(), JobError> {
    let body = order::confirmation(id, name, items, total);
    let message = mail::Email::new(email, SUBJECT.replace("{id}", &id.to_string()), body)
        .header("X-Order-Id", id.to_string());
    let message_id = mail::send(&message)?;
    log(Level::Info, &format!("confirmation for order {id} sent as {message_id}"));
    Ok(())
}

jobrunner_plugin_sdk::export_plugin!(OrderCreated);
