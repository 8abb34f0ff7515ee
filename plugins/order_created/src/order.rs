//! An order as the shop app stores it (`orders`, `users`, `line_items`),
//! read through `records` from its GlobalID, and the confirmation mail's
//! text. Shared with the shop_mailers plugin (`OrderMailer#confirmation`).

use jobrunner_plugin_sdk::{JobError, records};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A row of `orders`.
#[derive(Deserialize)]
pub struct Order {
    pub id: u64,
    pub user_id: u64,
    #[serde(default, deserialize_with = "amount")]
    pub total: Option<String>,
}

/// A row of `users`.
#[derive(Deserialize)]
pub struct User {
    pub email: String,
    pub name: Option<String>,
}

/// A line item, from `line_items` or from a job's arguments.
#[derive(Deserialize)]
pub struct Item {
    pub name: String,
    #[serde(default = "one")]
    pub quantity: u32,
    #[serde(default, deserialize_with = "amount")]
    pub price: Option<String>,
}

fn one() -> u32 {
    1
}

/// A price as text: databases give numbers (`7`, `7.5`) or strings
/// (`"7.50"`), job arguments usually strings.
fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_f64().map(|f| format!("{f:.2}")),
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// An order with the user who placed it and what they bought.
pub struct Placed {
    pub order: Order,
    pub user: User,
    pub items: Vec<Item>,
}

/// Reads the order `gid` names, its user (through `user_id`) and its line
/// items (through `order_id`): three queries.
pub fn read(gid: &str) -> Result<Placed, JobError> {
    let order: Order = records::locate_required(gid, &["id", "user_id", "total"])?;
    let user: User = records::find_required("User", order.user_id, &["email", "name"])?;
    let items = records::find_all_by("LineItem", "order_id", order.id, &["name", "quantity", "price"], 100)?;
    Ok(Placed { order, user, items })
}

/// The confirmation mail's text.
pub fn confirmation(id: u64, name: Option<&str>, items: &[Item], total: Option<&str>) -> String {
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
