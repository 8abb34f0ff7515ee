//! `Retry-After`, as a 429 or 503 response gives it: seconds, or an HTTP
//! date. A job retried after such a response waits at least that long,
//! up to [`MAX_WAIT`], so a receiver can't park a job for a year.

use std::time::Duration;

/// The longest wait a response can ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The wait `value` asks for, at most [`MAX_WAIT`]; `None` if it isn't one.
pub fn parse(value: &str) -> Option<Duration> {
    parse_at(value, chrono::Utc::now())
}

fn parse_at(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates_are_read_and_capped() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2026 07:28:00 GMT").unwrap().to_utc();
        assert_eq!(parse_at("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_at(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_at("Wed, 21 Oct 2026 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_at("Wed, 21 Oct 2026 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_at("99999999", now), Some(MAX_WAIT));
        assert_eq!(parse_at("soon", now), None);
        assert_eq!(parse_at("-5", now), None);
    }
}
