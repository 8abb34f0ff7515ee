//! `faulty-runner`: the `runner` command built with a fault hook, for the
//! tests that show a panic inside the runner loses no job and leaves no
//! background task dead. Production builds have no hook set: only this
//! test binary sets one.
//!
//! - `FAULTY_RUNNER_PANIC_CLASS=C`: performing any job of class `C` panics.
//! - `FAULTY_RUNNER_PANIC_TASKS=T1,T2`: each background task named there
//!   panics at the start of its first life, so its supervisor must
//!   restart it.

use jobrunner::faults::{self, Point};
use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Mutex;

#[tokio::main]
async fn main() -> ExitCode {
    let class = std::env::var("FAULTY_RUNNER_PANIC_CLASS").ok();
    let tasks = std::env::var("FAULTY_RUNNER_PANIC_TASKS").unwrap_or_default();
    // The tasks yet to panic: each once, so a restart has to happen and can.
    let to_panic: Mutex<HashSet<String>> = Mutex::new(tasks.split(',').map(str::to_string).collect());
    faults::inject(move |point| match point {
        Point::Perform { class: performing } if class.as_deref() == Some(performing) => {
            panic!("a fault injected for class {performing}")
        }
        Point::TaskStart { task: starting } if to_panic.lock().unwrap().remove(starting) => {
            panic!("a fault injected into task {starting}")
        }
        _ => {}
    });
    jobrunner::app::main().await
}
