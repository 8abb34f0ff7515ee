//! YAML as Sidekiq loads it, into JSON values: keys symbolized (so
//! `:concurrency:` and `concurrency:` are one key), anchors and aliases
//! resolved, symbols (`:default`) read as their names.

use anyhow::{Result, bail};
use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// The first document of `text`; an empty file is an empty mapping.
pub fn parse(text: &str) -> Result<Value> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| anyhow::anyhow!("not valid YAML: {e}"))?;
    match documents.into_iter().next() {
        Some(document) => convert(document),
        None => Ok(Value::Object(Map::new())),
    }
}

fn convert(yaml: Yaml) -> Result<Value> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(text) => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::from(f),
            _ => bail!("`{text}` is not a usable number"),
        },
        Yaml::String(text) => Value::String(symbol(text)),
        Yaml::Array(items) => Value::Array(items.into_iter().map(convert).collect::<Result<_>>()?),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(text) => symbol(text),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => bail!("a key {other:?} that isn't a name"),
                };
                map.insert(key, convert(value)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => bail!("a value that can't be read"),
    })
}

/// A Ruby symbol's name (`:default` is `default`); other text as it is.
fn symbol(text: String) -> String {
    match text.strip_prefix(':') {
        Some(name) if !name.is_empty() && !name.starts_with(':') => name.to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn symbol_keys_and_plain_keys_are_one() {
        let doc = parse(
            ":concurrency: 5\n:queues:\n  - :critical\n  - [default, 2]\nproduction:\n  :concurrency: 20\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"concurrency": 5, "queues": ["critical", ["default", 2]], "production": {"concurrency": 20}})
        );
        let aliased = parse("base: &b\n  concurrency: 3\nstaging: *b\n").unwrap();
        assert_eq!(aliased["staging"]["concurrency"], 3);
        assert!(parse("a: [1, 2\n").unwrap_err().to_string().contains("not valid YAML"));
    }
}
