//! Faults a test build injects at named points of the runner, to show from
//! the outside that a panic loses no job and kills no background task.
//!
//! The `runner` binary never sets a hook, so in it every point is a read of
//! an empty cell. The test build `faulty-runner` (`tests/faulty_runner.rs`)
//! sets one that panics where a test asks.

use std::sync::OnceLock;

/// Where the runner is when it calls the hook.
#[derive(Clone, Copy, Debug)]
pub enum Point<'a> {
    /// About to perform a job of this class.
    Perform { class: &'a str },
    /// A supervised background task starting a life (its first or a
    /// restart after a panic).
    TaskStart { task: &'a str },
}

type Hook = Box<dyn Fn(Point<'_>) + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Sets the hook called at every [`Point`] (once per process; a second
/// call is ignored). For test builds only.
pub fn inject(hook: impl Fn(Point<'_>) + Send + Sync + 'static) {
    let _ = HOOK.set(Box::new(hook));
}

/// Calls the hook, if a test build set one.
pub(crate) fn at(point: Point<'_>) {
    if let Some(hook) = HOOK.get() {
        hook(point);
    }
}
