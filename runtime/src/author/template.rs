//! `runner new-plugin NAME`: a new plugin that builds as is, in Rust,
//! JavaScript or Python.
//!
//! Each handles one class named after the plugin (`hello_mail` handles
//! `HelloMailJob`) and mails a greeting to a user given by GlobalID or by
//! address. The Rust crate is its own Cargo workspace and depends on the SDK
//! by path; the JavaScript and Python plugins carry a copy of the WIT
//! contract, which their tools generate bindings from.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

/// The contract, as the runner was built against it.
const CONTRACT: &str = include_str!("../../../wit/plugin.wit");

/// The language a new plugin is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// A Rust crate using the plugin SDK, built with cargo.
    #[default]
    Rust,
    /// A JavaScript module, built with componentize-js from npm.
    Js,
    /// A Python module, built with componentize-py from PyPI.
    Python,
}

/// The files of a new plugin, by path, before its name is filled in.
fn files(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("template/rust/Cargo.toml.txt")),
            ("src/lib.rs", include_str!("template/rust/lib.rs.txt")),
        ],
        Lang::Js => &[
            ("package.json", include_str!("template/js/package.json.txt")),
            ("app.js", include_str!("template/js/app.js.txt")),
            ("wit/plugin.wit", CONTRACT),
        ],
        Lang::Python => {
            &[("app.py", include_str!("template/python/app.py.txt")), ("wit/plugin.wit", CONTRACT)]
        }
    }
}

/// How to build a plugin made by [`new_plugin`], from its folder.
pub fn build_command(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Rust => "cargo build --release --target wasm32-wasip2".to_string(),
        Lang::Js => "npm install && npm run build".to_string(),
        Lang::Python => format!("componentize-py -d wit -w job-plugin componentize app -o {name}.wasm"),
    }
}

/// Creates `<dir>/<name>/` with the plugin's files; returns its path.
/// `sdk` is the Rust SDK crate, used by Rust plugins only.
pub fn new_plugin(name: &str, dir: &Path, lang: Lang, sdk: &Path) -> Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!("plugin name {name:?}: use lower-case letters, digits and underscores, like hello_mail");
    }
    let sdk = match lang {
        Lang::Rust => std::fs::canonicalize(sdk).with_context(|| {
            format!("the SDK {} is missing (run from the repository root, or pass --sdk)", sdk.display())
        })?,
        Lang::Js | Lang::Python => PathBuf::new(),
    };
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__CLASS__", &class_name(name))
            .replace("__SDK__", &sdk.display().to_string())
            // The WIT version this runner provides, which the JS imports name.
            .replace("__CONTRACT__", crate::plugin::contract::VERSION)
    };
    for (path, text) in files(lang) {
        let path = root.join(path);
        let folder = path.parent().expect("a template file is inside the plugin's folder");
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
    }
    // Start from the versions the SDK is built and tested with.
    let lock = sdk.parent().map(|workspace| workspace.join("Cargo.lock")).filter(|l| l.is_file());
    if let Some(lock) = lock.filter(|_| lang == Lang::Rust) {
        std::fs::copy(&lock, root.join("Cargo.lock")).context("copying Cargo.lock")?;
    }
    Ok(root)
}

/// `hello_mail` → `HelloMailJob`.
fn class_name(name: &str) -> String {
    let mut class: String = name
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| part[..1].to_uppercase() + &part[1..])
        .collect();
    if !class.ends_with("Job") {
        class.push_str("Job");
    }
    class
}

#[cfg(test)]
mod tests {
    #[test]
    fn class_names() {
        assert_eq!(super::class_name("hello_mail"), "HelloMailJob");
        assert_eq!(super::class_name("invoice_job"), "InvoiceJob");
    }
}
