//! A plugin that reads many records, for the tests of batched reads:
//! `OrderTallyJob.perform_later(to, user_id, from, until, batch_size)`
//! scans the user's orders created from `from` until before `until` (a nil
//! user means every user's), a batch at a time, checks that they come in
//! key order and each once, looks the first and last up again together
//! with `find_many`, and mails the tally to `to`:
//!
//! ```text
//! orders: 1234
//! total: 5678.90
//! batches: 3
//! ids: 17..4950 (sum 3051234)
//! ```

use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, Level, PluginInfo, log, mail, plugin_info, records};
use serde::Deserialize;
use serde_json::Value;

struct Tally;

#[derive(Deserialize)]
struct Order {
    id: u64,
    /// A decimal: a number or its text, as each database gives it.
    total: Value,
}

/// What the scan found.
#[derive(Default)]
struct Count {
    orders: u64,
    cents: i64,
    batches: u64,
    id_sum: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Guest for Tally {
    fn describe() -> PluginInfo {
        plugin_info("tally", env!("CARGO_PKG_VERSION"), &["OrderTallyJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let to: String = args.required("to", 0)?;
        let user_id: Option<u64> = args.optional("user_id", 1)?;
        let from: String = args.required("from", 2)?;
        let until: String = args.required("until", 3)?;
        let size: u32 = args.optional("batch_size", 4)?.unwrap_or(500);
        let mut scan = records::scan("Order").at_least("created_at", &from).below("created_at", &until);
        if let Some(user_id) = user_id {
            scan = scan.where_eq("user_id", user_id);
        }
        let count = tally(scan.columns(&["id", "total"]).batch_size(size))?;
        check_find_many(&count)?;
        let body = format!(
            "orders: {}\ntotal: {}.{:02}\nbatches: {}\nids: {}..{} (sum {})\n",
            count.orders,
            count.cents / 100,
            count.cents % 100,
            count.batches,
            count.first.unwrap_or(0),
            count.last.unwrap_or(0),
            count.id_sum
        );
        mail::send(&mail::Email::new(&to, format!("Tally: {} orders", count.orders), body))?;
        Ok(())
    }
}

/// Reads every batch of `scan`, refusing rows out of key order.
fn tally(scan: records::Scan) -> Result<Count, JobError> {
    let mut count = Count::default();
    for batch in scan.batches::<Order>() {
        let batch = batch?;
        count.batches += 1;
        for order in &batch.rows {
            if count.last.is_some_and(|last| order.id <= last) {
                return Err(JobError::Permanent(format!("order {} came after {:?}", order.id, count.last)));
            }
            count.first.get_or_insert(order.id);
            count.last = Some(order.id);
            count.orders += 1;
            count.id_sum += order.id;
            count.cents += cents(&order.total)?;
        }
        let expected = count.last.map(|id| id.to_string());
        if batch.last_key != expected {
            return Err(JobError::Permanent(format!(
                "batch ended at {:?}, last key {expected:?}",
                batch.last_key
            )));
        }
    }
    log(Level::Info, &format!("tallied {} orders in {} batches", count.orders, count.batches));
    Ok(count)
}

/// The first and last orders, and a key no order has, looked up together:
/// exactly the two come back, in key order.
fn check_find_many(count: &Count) -> Result<(), JobError> {
    let (Some(first), Some(last)) = (count.first, count.last) else { return Ok(()) };
    #[derive(Deserialize)]
    struct Key {
        id: u64,
    }
    let found: Vec<Key> = records::find_many("Order", [last, u64::MAX >> 2, first], &["id"])?;
    let ids: Vec<u64> = found.iter().map(|o| o.id).collect();
    let expected = if first == last { vec![first] } else { vec![first, last] };
    match ids == expected {
        true => Ok(()),
        false => Err(JobError::Permanent(format!("find_many gave {ids:?}, not {expected:?}"))),
    }
}

/// A decimal total in cents.
fn cents(total: &Value) -> Result<i64, JobError> {
    let text = match total {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let value: f64 =
        text.parse().map_err(|_| JobError::Permanent(format!("total {text} is not a number")))?;
    Ok((value * 100.0).round() as i64)
}

jobrunner_plugin_sdk::export_plugin!(Tally);
