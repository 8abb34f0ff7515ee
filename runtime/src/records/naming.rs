//! From what a plugin names to what the database has: GlobalIDs, and Rails'
//! rule from model class to table.
//!
//! `gid://shop/Order/42` names model `Order`, id `42`; `Order` lives in
//! `orders`, `LineItem` in `line_items`, `Person` in `people` and
//! `Admin::User` in `admin_users` (the prefix Rails' generator gives a
//! namespaced model). Anything else an app configures (`self.table_name`)
//! comes from the policy file's `[models]`.

use super::RecordError;
use crate::untrusted::shown;
use percent_encoding::percent_decode_str;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The longest model name accepted.
const MAX_MODEL: usize = 200;

/// What a GlobalID names.
#[derive(Debug, PartialEq, Eq)]
pub struct GlobalId {
    /// The Rails class name, e.g. `Admin::User`.
    pub model: String,
    /// The record's id, unescaped.
    pub id: String,
}

/// Parses `gid://app/Model/id`. Composite keys (`.../Order/3/42`) and
/// malformed ids are refused with the reason.
pub fn parse_gid(gid: &str) -> Result<GlobalId, RecordError> {
    let invalid =
        |why: &str| RecordError::Invalid(format!("\"{}\" is not a GlobalID: {why}", shown(gid, SHOWN)));
    let rest = gid.strip_prefix("gid://").ok_or_else(|| invalid("it doesn't start with gid://"))?;
    let rest = rest.split_once('?').map_or(rest, |(path, _params)| path);
    let mut parts = rest.split('/');
    let (Some(app), Some(model), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("expected gid://app/Model/id"));
    };
    if app.is_empty() || id.is_empty() {
        return Err(invalid("expected gid://app/Model/id"));
    }
    if parts.next().is_some() {
        return Err(invalid("composite primary keys are not supported"));
    }
    check_model(model)?;
    // GlobalID escapes ids as CGI does: `+` for a space, `%XX` otherwise.
    let id = percent_decode_str(&id.replace('+', " "))
        .decode_utf8()
        .map_err(|_| invalid("its id is not UTF-8"))?
        .into_owned();
    Ok(GlobalId { model: model.to_string(), id })
}

/// Refuses anything that isn't a Ruby constant path (`Order`,
/// `Admin::User`): model names never reach SQL, but a clear refusal beats
/// a "no such table".
pub fn check_model(model: &str) -> Result<(), RecordError> {
    let constant = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_uppercase())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if model.len() > MAX_MODEL || !model.split("::").all(constant) {
        return Err(RecordError::Invalid(format!(
            "\"{}\" is not a model class name like Order or Admin::User",
            shown(model, SHOWN)
        )));
    }
    Ok(())
}

/// The table Rails gives `model` by default.
///
/// Rails' inflection is a list of regular expressions tried in turn, which
/// costs more than the rest of a read; the answer never changes, so the
/// tables of the first [`REMEMBERED`] models are kept.
pub fn table_for(model: &str) -> String {
    static TABLES: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);
    if let Some(table) = TABLES.lock().expect("tables lock").get(model) {
        return table.clone();
    }
    let table = cruet::to_table_case(&model.replace("::", ""));
    let mut tables = TABLES.lock().expect("tables lock");
    if tables.len() < REMEMBERED {
        tables.insert(model.to_string(), table.clone());
    }
    table
}

/// How many models' tables [`table_for`] keeps.
const REMEMBERED: usize = 1024;

/// How much of a refused name or value a message shows.
pub const SHOWN: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_rails() {
        for (model, table) in [
            ("Order", "orders"),
            ("LineItem", "line_items"),
            ("Person", "people"),
            ("Admin::User", "admin_users"),
            ("Category", "categories"),
            ("Address", "addresses"),
            ("User", "users"),
        ] {
            assert_eq!(table_for(model), table, "{model}");
        }
    }

    #[test]
    fn global_ids() {
        assert_eq!(
            parse_gid("gid://shop/Order/42").unwrap(),
            GlobalId { model: "Order".into(), id: "42".into() }
        );
        assert_eq!(parse_gid("gid://my-app/Admin::User/a%2Fb+c?tenant=x").unwrap().id, "a/b c");
        for bad in [
            "Order/42",
            "gid://shop/Order",
            "gid://shop/Order/3/42",
            "gid://shop/orders; DROP/1",
            "gid://shop/Order/",
        ] {
            assert!(matches!(parse_gid(bad), Err(RecordError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn model_names_are_ruby_constants() {
        assert!(check_model("Admin::User").is_ok());
        for bad in ["users", "User; DROP TABLE users", "User\"", "", "A::", "::A"] {
            assert!(check_model(bad).is_err(), "{bad}");
        }
    }
}
