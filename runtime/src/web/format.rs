//! How values read on the page: times, ages, durations, job arguments.
//! Plain text only; the templates escape it.

use crate::clock;
use serde_json::Value;

/// The most of a job's arguments a list shows; the JSON API has them all.
const ARGS_SHOWN: usize = 300;

/// `2026-11-26 03:20:21 UTC`.
pub fn utc(epoch_secs: f64) -> String {
    if epoch_secs <= 0.0 {
        return "-".into();
    }
    let secs = epoch_secs.floor() as i64;
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        clock::utc_date(epoch_secs),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// How far `epoch_secs` is from now: `3 min ago`, `in 20 s`.
pub fn relative(epoch_secs: f64) -> String {
    if epoch_secs <= 0.0 {
        return "-".into();
    }
    let delta = clock::now() - epoch_secs;
    if delta >= 0.0 { format!("{} ago", span(delta)) } else { format!("in {}", span(-delta)) }
}

/// A length of time: `850 ms`, `42 s`, `3 min`, `5 h`, `2 days`.
pub fn span(secs: f64) -> String {
    match secs {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.0} h", s / 3600.0),
        s => format!("{:.0} days", s / 86_400.0),
    }
}

/// A duration in seconds from a histogram estimate, in a readable unit.
pub fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

/// A job's arguments as compact JSON, cut to a readable length.
pub fn args(value: &Value) -> String {
    let text = match value {
        Value::Array(items) => items.iter().map(Value::to_string).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    cut(&text, ARGS_SHOWN)
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_values() {
        assert_eq!(utc(1_795_440_397.9), "2026-11-23 13:26:37 UTC");
        assert_eq!(span(0.25), "250 ms");
        assert_eq!(span(90.0), "90 s");
        assert_eq!(span(600.0), "10 min");
        assert_eq!(seconds(Some(0.000_42)), "420 µs");
        assert_eq!(args(&serde_json::json!([42, "a@example.com"])), r#"42, "a@example.com""#);
        assert_eq!(cut("héllo", 2), "h…");
    }
}
