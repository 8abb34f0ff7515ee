//! The part of ERB that real `sidekiq.yml` files use: reading the
//! environment. Sidekiq renders the whole file as ERB (Ruby) before parsing
//! the YAML; the runner can't run Ruby, so it renders the forms found in
//! practice and refuses anything else, naming the line:
//!
//! - `<%= ENV["X"] %>` and `<%= ENV['X'] %>` (empty when unset);
//! - `<%= ENV.fetch("X") %>` (an error when unset);
//! - `<%= ENV.fetch("X", default) %>`, `<%= ENV.fetch("X") { default } %>`
//!   and `<%= ENV["X"] || default %>`, the default a quoted string or a number;
//! - `<%# comments %>`, and `<%-`/`-%>` (which trim as Sidekiq 7.1+ does);
//! - in Active Storage's `storage.yml`, also `<%= Rails.root.join("a", "b") %>`.
//!
//! A tag on a line that YAML comments out (the commented-out examples that
//! `rails new` writes, such as `Rails.application.credentials.dig(...)`)
//! renders as nothing: its output could never reach the parsed file.

use anyhow::{Result, bail};
use std::path::Path;

/// Renders `text`, reading variables with `env`.
pub fn render(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    render_in_app(text, env, None)
}

/// Renders `text` as [`render`] does, and `Rails.root` as `rails_root`
/// when given.
pub fn render_in_app(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    rails_root: Option<&Path>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<%") {
        let line = line_of(text, text.len() - rest.len() + start);
        let (before, tag) = rest.split_at(start);
        let Some(end) = tag.find("%>") else { bail!("line {line}: an ERB tag `<%` is never closed") };
        let mut body = &tag[2..end];
        let mut after = &tag[end + 2..];
        let mut before = before;
        if let Some(trimmed) = body.strip_prefix('-') {
            // `<%-` drops the indentation before the tag.
            before = before.trim_end_matches([' ', '\t']);
            body = trimmed;
        }
        if let Some(trimmed) = body.strip_suffix('-') {
            // `-%>` drops the line break after the tag.
            after = after.strip_prefix('\n').unwrap_or(after);
            body = trimmed;
        }
        out.push_str(before);
        let line_so_far = &out[out.rfind('\n').map_or(0, |i| i + 1)..];
        if line_so_far.trim_start().starts_with('#') {
            // Commented out in the YAML: whatever the tag would print is ignored.
        } else if let Some(expression) = body.strip_prefix('=') {
            let expression = expression.trim();
            let value = match (rails_root, expression.strip_prefix("Rails.root")) {
                (Some(root), Some(rest)) => rails_path(root, rest),
                _ => evaluate(expression, env),
            }
            .map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
            out.push_str(&value);
        } else if !body.starts_with('#') {
            bail!(
                "line {line}: `<%{body}%>` is Ruby code the runner can't run; only `<%= ENV[...] %>`, \
                 `<%= ENV.fetch(...) %>` and comments are understood"
            );
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// `Rails.root` followed by `rest`: nothing, `.to_s`, or `.join(...)` of
/// quoted segments (optionally `.to_s` too).
fn rails_path(root: &Path, rest: &str) -> Result<String> {
    let rest = rest.strip_suffix(".to_s").unwrap_or(rest).trim();
    if rest.is_empty() {
        return Ok(root.display().to_string());
    }
    let unsupported = || anyhow::anyhow!("`Rails.root{rest}` is not a path the runner understands");
    let mut args =
        rest.strip_prefix(".join(").and_then(|a| a.strip_suffix(')')).ok_or_else(unsupported)?.trim();
    let mut path = root.to_path_buf();
    while !args.is_empty() {
        let (segment, after) = quoted(args).ok_or_else(unsupported)?;
        path.push(segment);
        args = after.trim_start();
        args = args.strip_prefix(',').map_or(args, str::trim_start);
    }
    Ok(path.display().to_string())
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Evaluates one of the supported expressions.
fn evaluate(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let unsupported = || anyhow::anyhow!("`{expr}` is not an ENV lookup the runner understands");
    if let Some(inner) = expr.strip_prefix("ENV[") {
        let (name, rest) = quoted(inner).ok_or_else(unsupported)?;
        let rest = rest.trim_start().strip_prefix(']').ok_or_else(unsupported)?.trim();
        if rest.is_empty() {
            return Ok(env(&name).unwrap_or_default());
        }
        let default = rest.strip_prefix("||").ok_or_else(unsupported)?.trim();
        let default = literal(default).ok_or_else(unsupported)?;
        return Ok(env(&name).filter(|v| !v.is_empty()).unwrap_or(default));
    }
    let inner = expr.strip_prefix("ENV.fetch(").ok_or_else(unsupported)?;
    let (name, rest) = quoted(inner).ok_or_else(unsupported)?;
    let rest = rest.trim_start();
    let default = if let Some(rest) = rest.strip_prefix(',') {
        let (default, rest) = rest.trim().split_once(')').ok_or_else(unsupported)?;
        rest.trim().is_empty().then_some(()).ok_or_else(unsupported)?;
        Some(literal(default.trim()).ok_or_else(unsupported)?)
    } else {
        let rest = rest.strip_prefix(')').ok_or_else(unsupported)?.trim();
        match rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(block) => Some(literal(block.trim()).ok_or_else(unsupported)?),
            None if rest.is_empty() => None,
            None => return Err(unsupported()),
        }
    };
    match (env(&name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default),
        (None, None) => bail!("environment variable {name} is not set (ENV.fetch without a default)"),
    }
}

/// A leading `"..."` or `'...'` and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let end = text[1..].find(quote)? + 1;
    Some((text[1..end].to_string(), &text[end + 1..]))
}

/// A quoted string or a number, as its text.
fn literal(text: &str) -> Option<String> {
    if let Some((value, rest)) = quoted(text) {
        return rest.trim().is_empty().then_some(value);
    }
    let number = text.strip_suffix(".to_i").unwrap_or(text);
    number.parse::<f64>().is_ok().then(|| number.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "THREADS" => Some("12".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn renders_the_env_forms_real_files_use() {
        let cases = [
            (r#"c: <%= ENV["THREADS"] %>"#, "c: 12"),
            ("c: <%= ENV['THREADS'] %>", "c: 12"),
            (r#"c: <%= ENV["NOPE"] %>"#, "c: "),
            (r#"c: <%= ENV["NOPE"] || 5 %>"#, "c: 5"),
            (r#"c: <%= ENV["EMPTY"] || "x" %>"#, "c: x"),
            (r#"c: <%= ENV.fetch("THREADS") %>"#, "c: 12"),
            (r#"c: <%= ENV.fetch("NOPE", 10) %>"#, "c: 10"),
            (r#"c: <%= ENV.fetch('NOPE', "a b") %>"#, "c: a b"),
            (r#"c: <%= ENV.fetch("NOPE") { 7 } %>"#, "c: 7"),
            ("<%# a comment %>c: 1", "c: 1"),
            ("a:\n  <%- if true -%>", ""),
        ];
        for (input, expected) in &cases[..10] {
            assert_eq!(render(input, &env).unwrap(), *expected, "{input}");
        }
        assert!(render(cases[10].0, &env).is_err());
        assert_eq!(render("a: 1\n  <%-# x -%>\nb: 2", &env).unwrap(), "a: 1\nb: 2");
    }

    #[test]
    fn renders_rails_root_and_skips_commented_out_lines() {
        let root = Path::new("/srv/shop");
        let text = "local:\n  root: <%= Rails.root.join(\"tmp\", 'storage') %>\n\
                    # amazon:\n#   access_key_id: <%= Rails.application.credentials.dig(:aws, :id) %>\n\
                    r: <%= Rails.root %>";
        let rendered = render_in_app(text, &env, Some(root)).unwrap();
        assert!(rendered.contains("root: /srv/shop/tmp/storage\n"), "{rendered}");
        assert!(rendered.contains("#   access_key_id: \n"), "{rendered}");
        assert!(rendered.ends_with("r: /srv/shop"), "{rendered}");
        let err = render_in_app("a: <%= Rails.root.join(x) %>", &env, Some(root)).unwrap_err();
        assert!(format!("{err}").contains("line 1"), "{err}");
        assert!(render("a: <%= Rails.root %>", &env).is_err(), "no app root outside storage.yml");
    }

    #[test]
    fn refuses_other_ruby_naming_the_line() {
        let err = render("a: 1\nb: <%= `rm -rf /` %>", &env).unwrap_err().to_string();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = render(r#"a: <%= ENV.fetch("NOPE") %>"#, &env).unwrap_err().to_string();
        assert!(err.contains("NOPE is not set"), "{err}");
        assert!(render("a: <%= 1 + 1", &env).unwrap_err().to_string().contains("never closed"));
    }
}
