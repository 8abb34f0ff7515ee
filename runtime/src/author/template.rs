//! `runner new-plugin NAME`: a new Rust plugin crate that builds as is.
//!
//! The crate is its own Cargo workspace, depends on the SDK by path, and
//! handles one class named after it (`hello_mail` handles `HelloMailJob`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.txt");
const LIB_RS: &str = include_str!("template/lib.rs.txt");

/// Creates `<dir>/<name>/` with a Cargo.toml and src/lib.rs; returns its path.
pub fn new_plugin(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!("plugin name {name:?}: use lower-case letters, digits and underscores, like hello_mail");
    }
    let sdk = std::fs::canonicalize(sdk).with_context(|| {
        format!("the SDK {} is missing (run from the repository root, or pass --sdk)", sdk.display())
    })?;
    let root = dir.join(name);
    if root.exists() {
        bail!("{} exists already", root.display());
    }
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__CLASS__", &class_name(name))
            .replace("__SDK__", &sdk.display().to_string())
    };
    std::fs::create_dir_all(root.join("src")).with_context(|| format!("creating {}", root.display()))?;
    std::fs::write(root.join("Cargo.toml"), fill(CARGO_TOML)).context("writing Cargo.toml")?;
    std::fs::write(root.join("src/lib.rs"), fill(LIB_RS)).context("writing src/lib.rs")?;
    // Start from the versions the SDK is built and tested with.
    if let Some(lock) = sdk.parent().map(|workspace| workspace.join("Cargo.lock")).filter(|l| l.is_file()) {
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
