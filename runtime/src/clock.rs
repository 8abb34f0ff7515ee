//! Time as Sidekiq writes it: epoch seconds as floats, and UTC dates for
//! the daily counters.
//!
//! Sidekiq 8 writes a job's `created_at`, `enqueued_at`, `failed_at` and
//! `retried_at` as integer milliseconds; 6.x and 7.x write float seconds,
//! and one payload may mix the two (8.x keeps an old `created_at` when it
//! re-pushes a job). As Sidekiq 8's own readers do, [`epoch_seconds`] goes
//! by the JSON type of each field: no version writes integer seconds there.
//! What the runner writes itself is float seconds, which every version
//! from 6.4 to 8.x reads correctly.

use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, with sub-second precision.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// A job timestamp in epoch seconds: a JSON float is seconds, a JSON
/// integer milliseconds; anything else is no timestamp.
pub fn epoch_seconds(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) if n.is_f64() => n.as_f64().filter(|s| s.is_finite()),
        Value::Number(n) => n.as_i64().map(|ms| ms as f64 / 1000.0),
        _ => None,
    }
}

/// The UTC date of `epoch_secs` as `YYYY-MM-DD`.
pub fn utc_date(epoch_secs: f64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = (epoch_secs / 86_400.0).floor() as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn timestamps_go_by_json_type() {
        use super::epoch_seconds;
        assert_eq!(epoch_seconds(&json!(1_739_522_590.25)), Some(1_739_522_590.25));
        assert_eq!(epoch_seconds(&json!(1_739_522_590_250u64)), Some(1_739_522_590.25));
        assert_eq!(epoch_seconds(&json!(1_739_522_590.0)), Some(1_739_522_590.0));
        assert_eq!(epoch_seconds(&json!("1739522590")), None);
        assert_eq!(epoch_seconds(&serde_json::Value::Null), None);
    }

    #[test]
    fn dates() {
        assert_eq!(super::utc_date(0.0), "1970-01-01");
        assert_eq!(super::utc_date(1_795_440_397.24), "2026-11-23");
        assert_eq!(super::utc_date(951_782_400.0), "2000-02-29");
    }
}
