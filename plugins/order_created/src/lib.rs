//! Sends the order confirmation mail for `OrderCreateJob`.
//!
//! Arguments: `[{"id":42,"email":"buyer@example.com","name":"Ann",
//! "items":[{"name":"Tea","quantity":2,"price":"3.50"}],"total":"7.00"}]`
//! (name, items and total optional) or positionally `[42, "buyer@example.com"]`.

use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, Level, PluginInfo, log, mail, plugin_info};
use serde::Deserialize;

/// The subject line; `{id}` is replaced by the order number. A build can
/// set its own with the `ORDER_CREATED_SUBJECT` environment variable.
const SUBJECT: &str = match option_env!("ORDER_CREATED_SUBJECT") {
    Some(subject) => subject,
    None => "Your order #{id} is confirmed",
};

#[derive(Deserialize)]
struct Item {
    name: String,
    #[serde(default = "one")]
    quantity: u32,
    price: Option<String>,
}

fn one() -> u32 {
    1
}

struct OrderCreated;

impl Guest for OrderCreated {
    fn describe() -> PluginInfo {
        plugin_info("order_created", env!("CARGO_PKG_VERSION"), &["OrderCreateJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let id: u64 = args.required("id", 0)?;
        let email: String = args.required("email", 1)?;
        let name: Option<String> = args.optional("name", 2)?;
        let items: Vec<Item> = args.optional("items", 3)?.unwrap_or_default();
        let total: Option<String> = args.optional("total", 4)?;

        let body = confirmation(id, name.as_deref(), &items, total.as_deref());
        let message = mail::Email::new(&email, SUBJECT.replace("{id}", &id.to_string()), body)
            .header("X-Order-Id", id.to_string());
        let message_id = mail::send(&message)?;
        log(Level::Info, &format!("confirmation for order {id} sent as {message_id}"));
        Ok(())
    }
}

fn confirmation(id: u64, name: Option<&str>, items: &[Item], total: Option<&str>) -> String {
    let mut body = format!("Hello {},\n\nthank you for your order #{id}.\n", name.unwrap_or("there"));
    if !items.is_empty() {
        body.push_str("\nItems:\n");
        for item in items {
            let price = item.price.as_deref().map(|p| format!(" at {p}")).unwrap_or_default();
            body.push_str(&format!("  {} x {}{price}\n", item.quantity, item.name));
        }
    }
    if let Some(total) = total {
        body.push_str(&format!("\nTotal: {total}\n"));
    }
    body.push_str("\nWe will let you know when it ships.\n");
    body
}

jobrunner_plugin_sdk::export_plugin!(OrderCreated);
