//! Which of the app's records a plugin may read or change through
//! `records`.
//!
//! A read grant maps a model to `"*"` (every column except sensitive ones)
//! or to a list of columns, which are then readable by name even when they
//! look sensitive. Without a policy file every model is readable, with the
//! same sensitive columns held back; with one, a plugin reads only what its
//! rules grant. Changes are granted only by a policy file, column by column
//! for updates (`writes`) and new records (`inserts`), and model by model
//! for deletes (`deletes`).

use serde::Deserialize;
use std::collections::BTreeMap;

/// Columns whose names look sensitive but aren't secrets: an Active
/// Storage blob's `key` names its file, and is of no use without the
/// storage service's own credentials.
const NOT_SENSITIVE: &[(&str, &str)] = &[("ActiveStorage::Blob", "key")];

/// Words that mark a column as sensitive (`password_digest`,
/// `reset_password_token`, `otp_secret`, `api_key`...).
const SENSITIVE_WORDS: &[&str] = &["password", "digest", "token", "secret", "encrypted", "otp", "key"];

/// What a plugin may read of one model.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Grant {
    /// `"*"`: every column but the sensitive ones.
    All(AllColumns),
    /// These columns, sensitive or not.
    Columns(Vec<String>),
}

/// The string `"*"`, and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct AllColumns;

impl<'de> Deserialize<'de> for AllColumns {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "*" => Ok(AllColumns),
            other => Err(serde::de::Error::custom(format!(
                "a model's grant is \"*\" or a list of columns, not {other:?}"
            ))),
        }
    }
}

/// The models one plugin may read; `None` grants every model with `"*"`.
pub type Grants = Option<BTreeMap<String, Grant>>;

/// Why a read isn't allowed, for the plugin and the log.
pub fn check_model(grants: &Grants, plugin: &str, model: &str) -> Result<(), String> {
    match grants {
        Some(models) if !models.contains_key(model) => {
            Err(format!("plugin {plugin} may not read model {model}: the policy grants it no access"))
        }
        _ => Ok(()),
    }
}

/// Whether `column` of `model` may be read.
pub fn column_allowed(grants: &Grants, model: &str, column: &str) -> bool {
    match grants.as_ref().and_then(|models| models.get(model)) {
        Some(Grant::Columns(columns)) => columns.iter().any(|c| c == column),
        Some(Grant::All(_)) | None => !is_sensitive(column) || NOT_SENSITIVE.contains(&(model, column)),
    }
}

/// The columns of each model a plugin may update.
pub type WriteGrants = BTreeMap<String, Vec<String>>;

/// Why `plugin` may not set `column` of `model`, if it may not.
pub fn check_write(writes: &WriteGrants, plugin: &str, model: &str, column: &str) -> Result<(), String> {
    match writes.get(model) {
        None => Err(format!("plugin {plugin} may not change model {model}: the policy grants it no writes")),
        Some(columns) if !columns.iter().any(|c| c == column) => Err(format!(
            "plugin {plugin} may not change column {column} of model {model}: the policy's writes don't name it"
        )),
        Some(_) => Ok(()),
    }
}

/// Why `plugin` may not give `column` to a new record of `model`, if it
/// may not.
pub fn check_insert(inserts: &WriteGrants, plugin: &str, model: &str, column: &str) -> Result<(), String> {
    match inserts.get(model) {
        None => Err(format!(
            "plugin {plugin} may not create records of model {model}: the policy grants it no inserts"
        )),
        Some(columns) if !columns.iter().any(|c| c == column) => Err(format!(
            "plugin {plugin} may not set column {column} of a new {model}: the policy's inserts don't name it"
        )),
        Some(_) => Ok(()),
    }
}

/// Why `plugin` may not delete rows of `model`, if it may not.
pub fn check_delete(deletes: &[String], plugin: &str, model: &str) -> Result<(), String> {
    match deletes.iter().any(|m| m == model) {
        true => Ok(()),
        false => Err(format!(
            "plugin {plugin} may not delete rows of model {model}: the policy's deletes don't name it"
        )),
    }
}

/// Why `column` can't be read, naming the model and the column.
pub fn column_denied(grants: &Grants, plugin: &str, model: &str, column: &str) -> String {
    match grants.as_ref().and_then(|models| models.get(model)) {
        Some(Grant::Columns(_)) => {
            format!(
                "plugin {plugin} may not read column {column} of model {model}: the policy doesn't grant it"
            )
        }
        _ => format!(
            "plugin {plugin} may not read column {column} of model {model}: its name marks it as sensitive \
             (grant it by name in the policy to allow it)"
        ),
    }
}

/// Whether a column's name marks it as sensitive: one of its words is a
/// sensitive word (or its plural).
pub fn is_sensitive(column: &str) -> bool {
    column
        .to_ascii_lowercase()
        .split('_')
        .any(|word| SENSITIVE_WORDS.iter().any(|s| word == *s || word.strip_suffix('s') == Some(s)))
}

/// Where a model's rows live, for apps that set `self.table_name` or
/// `self.primary_key`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelMapping {
    /// The table, instead of Rails' name for the model.
    pub table: Option<String>,
    /// The primary key column, instead of `id`.
    pub primary_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names() {
        for name in
            ["password_digest", "encrypted_password", "reset_password_token", "otp_secret", "api_key", "KEYS"]
        {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["email", "name", "keyboard", "tokenizer_kind", "total"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn grants_by_name_override_the_sensitive_list() {
        let grants: Grants = Some(BTreeMap::from([
            ("User".to_string(), Grant::Columns(vec!["email".into(), "api_key".into()])),
            ("Order".to_string(), Grant::All(AllColumns)),
        ]));
        assert!(column_allowed(&grants, "User", "api_key"));
        assert!(!column_allowed(&grants, "User", "name"));
        assert!(column_allowed(&grants, "Order", "total"));
        assert!(!column_allowed(&grants, "Order", "secret_note"));
        assert!(check_model(&grants, "p", "LineItem").unwrap_err().contains("LineItem"));
        assert!(check_model(&None, "p", "LineItem").is_ok());
        assert!(!column_allowed(&None, "User", "password_digest"));
        assert!(column_allowed(&None, "ActiveStorage::Blob", "key") && !column_allowed(&None, "User", "key"));
    }

    #[test]
    fn writes_are_granted_column_by_column_and_deletes_model_by_model() {
        let writes = WriteGrants::from([("ActiveStorage::Blob".to_string(), vec!["metadata".to_string()])]);
        assert!(check_write(&writes, "p", "ActiveStorage::Blob", "metadata").is_ok());
        let err = check_write(&writes, "p", "ActiveStorage::Blob", "key").unwrap_err();
        assert!(err.contains("column key") && err.contains("ActiveStorage::Blob"), "{err}");
        assert!(check_write(&writes, "p", "User", "email").unwrap_err().contains("no writes"));
        let deletes = ["ActiveStorage::Blob".to_string()];
        assert!(check_delete(&deletes, "p", "ActiveStorage::Blob").is_ok());
        assert!(check_delete(&deletes, "p", "User").unwrap_err().contains("model User"));
        let inserts =
            WriteGrants::from([("ActiveStorage::VariantRecord".to_string(), vec!["blob_id".to_string()])]);
        assert!(check_insert(&inserts, "p", "ActiveStorage::VariantRecord", "blob_id").is_ok());
        assert!(
            check_insert(&inserts, "p", "ActiveStorage::VariantRecord", "id")
                .unwrap_err()
                .contains("column id")
        );
        assert!(check_insert(&inserts, "p", "User", "email").unwrap_err().contains("no inserts"));
    }
}
