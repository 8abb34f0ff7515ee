//! Text a plugin supplies (log messages, error messages, subjects, what
//! `describe` says), made safe to write into the runner's own log: control
//! characters are escaped, so a newline, a bare CR or an ANSI escape can't
//! start a line that looks like the runner's or repaint the terminal.

use std::borrow::Cow;

/// `text` with every control character written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !c.is_control() => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// The start of `text` (at most `max` characters), escaped, for messages
/// about a value that was refused.
pub fn shown(text: &str, max: usize) -> String {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let more = if end < text.len() { "…" } else { "" };
    format!("{}{more}", escape(&text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(escape("a\nb\rc\u{1b}[31md\u{0}"), "a\\nb\\rc\\u{1b}[31md\\u{0}");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("a\nb", 10), "a\\nb");
    }
}
