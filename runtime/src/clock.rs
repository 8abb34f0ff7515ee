//! Time as Sidekiq writes it: epoch seconds as floats, and UTC dates for
//! the daily counters.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, with sub-second precision.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
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
    #[test]
    fn dates() {
        assert_eq!(super::utc_date(0.0), "1970-01-01");
        assert_eq!(super::utc_date(1_795_440_397.24), "2026-11-23");
        assert_eq!(super::utc_date(951_782_400.0), "2000-02-29");
    }
}
