//! Which version of the `jobrunner:plugin` WIT package a component was
//! built against, and whether this runner can load it.
//!
//! The version is read from the component's imports (`jobrunner:plugin/
//! mail@0.1.0`, ...). Versions follow semver as the component model applies
//! it: before 1.0 the minor version is the breaking one, so a runner that
//! provides 0.1.6 loads plugins built against 0.1.0 to 0.1.6, and refuses
//! 0.2.0 or 0.1.7 with a message naming both versions.

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The package and version of `wit/plugin.wit`.
pub const PACKAGE: &str = "jobrunner:plugin";
pub const VERSION: &str = "0.1.6";

/// The version `component` was built against; `None` if it imports nothing
/// of ours (a plugin that neither mails nor logs).
pub fn version_of(component: &Component, engine: &Engine) -> Option<String> {
    let prefix = format!("{PACKAGE}/");
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix(&prefix)?.split_once('@').map(|(_, v)| v.to_string()))
        .next()
}

/// Whether `component` imports our interface `name` (e.g. `iteration`).
pub fn imports(component: &Component, engine: &Engine, name: &str) -> bool {
    let prefix = format!("{PACKAGE}/{name}@");
    component.component_type().imports(engine).any(|(import, _)| import.starts_with(&prefix))
}

/// Refuses a component built against a version this runner can't serve.
pub fn check(component: &Component, engine: &Engine) -> Result<()> {
    let Some(theirs) = version_of(component, engine) else { return Ok(()) };
    if !compatible(&theirs, VERSION) {
        bail!(
            "it was built against {PACKAGE}@{theirs}, and this runner provides {PACKAGE}@{VERSION}, \
             which loads plugins built against {}",
            range(VERSION)
        );
    }
    Ok(())
}

/// Whether a plugin built against `theirs` runs on a host providing `ours`.
fn compatible(theirs: &str, ours: &str) -> bool {
    match (parse(theirs), parse(ours)) {
        (Some(t), Some(o)) if o.0 == 0 => t.0 == 0 && t.1 == o.1 && t.2 <= o.2,
        (Some(t), Some(o)) => t.0 == o.0 && (t.1, t.2) <= (o.1, o.2),
        _ => false,
    }
}

fn parse(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// The versions `ours` loads, for people: `0.1.0 to 0.1.5`.
fn range(ours: &str) -> String {
    match parse(ours) {
        Some((0, minor, _)) => format!("0.{minor}.0 to {ours}"),
        Some((major, _, _)) => format!("{major}.0.0 to {ours}"),
        None => ours.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_as_the_component_model_applies_it() {
        assert!(compatible("0.1.0", "0.1.2"));
        assert!(compatible("0.1.1", "0.1.2"));
        assert!(compatible("0.1.2", "0.1.2"));
        assert!(!compatible("0.1.3", "0.1.2"));
        assert!(!compatible("0.2.0", "0.1.2"));
        assert!(!compatible("0.0.9", "0.1.2"));
        assert!(compatible("1.0.0", "1.2.0"));
        assert!(!compatible("2.0.0", "1.2.0"));
    }

    #[test]
    fn the_version_matches_the_wit_file() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(wit.contains(&format!("package {PACKAGE}@{VERSION};")), "update VERSION with wit/plugin.wit");
    }
}
