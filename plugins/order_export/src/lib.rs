//! `OrderExportJob.perform_later(admin_email, from, to, batch_size = 1000)`: the orders created
//! from `from` until before `to`, with their user's email and their line
//! items' total, as a gzipped CSV mailed to `admin_email` as an attachment
//! (or a link, when it is too big for a message).
//!
//! It is an iterable job: it reads the orders a batch at a time, appends
//! each batch to the file as a gzip member of its own (gzip readers take
//! concatenated members as one stream), and checkpoints the last order id
//! with the file's length. Stopped for a deploy or killed, it resumes after
//! the last batch it checkpointed, and the runner drops whatever was
//! appended after that, so every order is in the file exactly once.

use flate2::{Compression, write::GzEncoder};
use jobrunner_plugin_sdk::iteration::{self, Flow};
use jobrunner_plugin_sdk::mail::{self, Attachment, Email};
use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, PluginInfo, blobs, plugin_info, records};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;

struct OrderExport;

#[derive(Deserialize)]
struct Order {
    id: u64,
    user_id: u64,
    total: Value,
    created_at: Value,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    email: String,
}

#[derive(Deserialize)]
struct LineItem {
    order_id: u64,
    quantity: i64,
    price: Value,
}

/// Where the export is: the last order written, the file's length, rows.
#[derive(Default, Deserialize, Serialize)]
struct Cursor {
    after: Option<String>,
    length: u64,
    rows: u64,
}

const HEADER: &str = "id,created_at,email,total,items_total\n";

impl Guest for OrderExport {
    fn describe() -> PluginInfo {
        plugin_info("order_export", "1.0.0", &["OrderExportJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let to: String = args.required("admin_email", 0)?;
        let (from, until): (String, String) = (args.required("from", 1)?, args.required("to", 2)?);
        let batch_size: u32 = args.optional("batch_size", 3)?.unwrap_or(1000);
        let key = format!("exports/orders-{}.csv.gz", job.jid);
        let mut cursor: Cursor = iteration::resume_from()?.unwrap_or_default();
        let mut file = blobs::Appender::at("", &key, cursor.length);
        if cursor.length == 0 {
            file.append(&gzip(HEADER)?)?;
        }
        let mut orders = records::scan("Order")
            .at_least("created_at", &from)
            .below("created_at", &until)
            .columns(&["id", "user_id", "total", "created_at"])
            .batch_size(batch_size);
        if let Some(after) = &cursor.after {
            orders = orders.after(after);
        }
        for batch in orders.batches::<Order>() {
            let batch = batch?;
            file.append(&gzip(&csv(&batch.rows)?)?)?;
            let rows = cursor.rows + batch.rows.len() as u64;
            cursor = Cursor { after: batch.last_key, length: file.length(), rows };
            if iteration::checkpoint(&cursor)? == Flow::Stop {
                return Ok(());
            }
        }
        let size = file.finish("application/gzip")?;
        let name = format!("orders-{from}-{until}.csv.gz");
        let body =
            format!("{} orders created from {from} until {until}; {size} bytes gzipped.\n", cursor.rows);
        let email = Email::new(&to, format!("Orders export {from} to {until}: {} orders", cursor.rows), body);
        mail::send_with_attachments(&email, &[Attachment::blob(&name, "application/gzip", "", &key)])?;
        Ok(())
    }
}

/// The CSV lines of `orders`, with their users' emails and line items' totals.
fn csv(orders: &[Order]) -> Result<String, JobError> {
    let user_ids: Vec<u64> =
        orders.iter().map(|o| o.user_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let users: Vec<User> = records::find_many("User", &user_ids, &["id", "email"])?;
    let emails: HashMap<u64, String> = users.into_iter().map(|u| (u.id, u.email)).collect();
    let (first, last) = (orders.first().map_or(0, |o| o.id), orders.last().map_or(0, |o| o.id));
    let mut items: HashMap<u64, i64> = HashMap::new();
    let line_items = records::scan("LineItem")
        .at_least("order_id", first)
        .below("order_id", last + 1)
        .columns(&["order_id", "quantity", "price"])
        .batch_size(1000);
    for item in line_items.each::<LineItem>() {
        let item = item?;
        *items.entry(item.order_id).or_default() += item.quantity * cents(&item.price)?;
    }
    let mut out = String::with_capacity(orders.len() * 64);
    for order in orders {
        let email = emails.get(&order.user_id).map_or("", String::as_str);
        let created = order.created_at.as_str().map_or_else(|| order.created_at.to_string(), str::to_string);
        let items_total = items.get(&order.id).copied().unwrap_or(0);
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            order.id,
            field(&created),
            field(email),
            money(cents(&order.total)?),
            money(items_total)
        ));
    }
    Ok(out)
}

/// `text` as a CSV field: quoted when it holds a comma, quote or newline.
fn field(text: &str) -> String {
    match text.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", text.replace('"', "\"\"")),
        false => text.to_string(),
    }
}

/// A decimal column (a number or its text, as each database gives it) in cents.
fn cents(value: &Value) -> Result<i64, JobError> {
    let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
    let parsed: f64 = text.parse().map_err(|_| JobError::Permanent(format!("{text} is not a number")))?;
    Ok((parsed * 100.0).round() as i64)
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// `text` as one gzip member.
fn gzip(text: &str) -> Result<Vec<u8>, JobError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    encoder.write_all(text.as_bytes()).map_err(|e| JobError::Permanent(format!("gzip: {e}")))?;
    encoder.finish().map_err(|e| JobError::Permanent(format!("gzip: {e}")))
}

jobrunner_plugin_sdk::export_plugin!(OrderExport);
