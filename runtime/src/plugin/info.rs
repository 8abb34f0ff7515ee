//! What a plugin's `describe` may say. Its name, version and classes end up
//! in logs, metrics labels, the dashboard and Redis, so they are held to
//! short, plain forms: a 50 MB name, a class with a newline or 100,000
//! classes are refused with the reason, not carried everywhere.

use crate::untrusted::shown;
use crate::wit::PluginInfo;
use anyhow::{Result, bail};

/// The longest plugin name and version.
const MAX_NAME: usize = 64;
/// The longest class name (a Ruby constant path, or `Mailer#action`).
const MAX_CLASS: usize = 256;
/// The most classes one plugin may serve.
pub const MAX_CLASSES: usize = 1000;

/// Refuses `info` unless every part is within its limits.
pub fn check(info: &PluginInfo) -> Result<()> {
    let plain = |text: &str, extra: &[char]| {
        text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c) || extra.contains(&c))
    };
    if info.name.is_empty() || info.name.len() > MAX_NAME || !plain(&info.name, &[]) {
        bail!(
            "describe() names the plugin {:?}: a name is 1 to {MAX_NAME} letters, digits, `_`, `-` or `.`",
            shown(&info.name, MAX_NAME)
        );
    }
    if info.version.is_empty() || info.version.len() > MAX_NAME || !plain(&info.version, &['+']) {
        bail!(
            "describe() gives the version {:?}: a version is 1 to {MAX_NAME} letters, digits, `.`, `-`, `+` or `_`",
            shown(&info.version, MAX_NAME)
        );
    }
    if info.classes.is_empty() {
        bail!("describe() names no job classes");
    }
    if info.classes.len() > MAX_CLASSES {
        bail!("describe() names {} job classes, more than {MAX_CLASSES}", info.classes.len());
    }
    for class in &info.classes {
        if class.is_empty() || class.len() > MAX_CLASS || !plain(class, &[':', '#']) {
            bail!(
                "describe() names the class {:?}: a class is 1 to {MAX_CLASS} letters, digits, `_`, `:`, `#`, `-` or `.`",
                shown(class, MAX_CLASS)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, version: &str, classes: &[&str]) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn plain_metadata_passes() {
        check(&info("shop_mailers", "1.0.0+build.5", &["UserMailer#welcome_email", "Admin::SyncJob"]))
            .unwrap();
    }

    #[test]
    fn odd_metadata_is_refused_with_the_reason() {
        let reason = |i: PluginInfo| format!("{:#}", check(&i).unwrap_err());
        assert!(reason(info("odd\u{1b}[31m\nINFO", "1", &["A"])).contains("\\u{1b}"));
        assert!(reason(info(&"n".repeat(50_000_000), "1", &["A"])).contains("1 to 64"));
        assert!(reason(info("p", "1 0", &["A"])).contains("version"));
        assert!(reason(info("p", "1", &[])).contains("no job classes"));
        assert!(reason(info("p", "1", &["A\nB"])).contains("class"));
        assert!(reason(info("p", "1", &[&"C".repeat(1 << 20)])).contains("class"));
        let many: Vec<String> = (0..100_001).map(|i| format!("C{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(reason(info("p", "1", &many)).contains("more than 1000"));
    }
}
