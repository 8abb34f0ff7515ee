//! Background tasks that can't die silently.
//!
//! The runner's long-lived loops (the heartbeat, the schedule poller,
//! periodic jobs, the cancel listener, the outcome recorder, the Sentinel
//! follower, the plugin watcher) each run under [`spawn`]: a panic is
//! logged with the task's name and the loop is started again after a
//! pause, so a bug hit once can't leave a runner that looks alive with,
//! say, no scheduler. A loop that returns has finished its work (at
//! shutdown) and is not restarted. One-shot tasks (a plugin's load) run
//! under [`once`], which logs a panic instead of losing it. Callers keep
//! the handles, and the runner stops them at the end.

use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a panicked loop waits before it starts again, so a loop that
/// panics at once every time costs a log line a second, not a core.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs the loop `make` makes until it returns, making and starting it
/// again whenever it panics.
pub fn spawn<F, Fut>(name: &'static str, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let work = make();
            let life = async move {
                crate::faults::at(crate::faults::Point::TaskStart { task: name });
                work.await
            };
            match AssertUnwindSafe(life).catch_unwind().await {
                Ok(()) => return,
                Err(panic) => {
                    tracing::error!(task = name, panic = %panic_message(&*panic), "background task panicked; restarting it");
                    tokio::time::sleep(RESTART_AFTER).await;
                }
            }
        }
    })
}

/// Runs `work` once; a panic is logged with `what` rather than lost.
pub fn once<Fut>(what: String, work: Fut) -> JoinHandle<()>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
            tracing::error!(task = %what, panic = %panic_message(&*panic), "background task panicked");
        }
    })
}

/// What a panic said, if it said it as text.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (_, Some(text)) => text.clone(),
        _ => "(no message)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_loop_that_panics_is_started_again_and_one_that_returns_is_not() {
        let lives = Arc::new(AtomicU32::new(0));
        let handle = spawn("test loop", {
            let lives = lives.clone();
            move || {
                let lives = lives.clone();
                async move {
                    if lives.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("a bug hit in this life");
                    }
                }
            }
        });
        handle.await.expect("the supervisor itself never panics");
        assert_eq!(lives.load(Ordering::SeqCst), 3, "two panics, two restarts, then done");
    }

    #[tokio::test]
    async fn a_one_shot_task_that_panics_is_reported_not_propagated() {
        let handle = once("a plugin's load".into(), async { panic!("bad") });
        assert!(handle.await.is_ok());
    }
}
