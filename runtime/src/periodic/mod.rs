//! Periodic jobs (cron), as sidekiq-scheduler and Sidekiq Enterprise offer
//! them: declared in the config file (see [`spec`]), enqueued by whichever
//! runner reaches a tick first.
//!
//! Every runner computes the same ticks and, at each, runs one Lua script
//! that pushes the job only if no runner has pushed that tick or a later
//! one (`jobrunner:periodic:<name>` holds the last). So any number of
//! runners enqueue each tick exactly once, and when one dies the others
//! carry on with no election and no gap. Ticks that fell while no runner
//! ran are skipped, and the skip is logged. Ticks are computed from each
//! runner's clock: keep the machines' clocks in sync (NTP), as Sidekiq
//! Enterprise asks.

pub mod spec;

use crate::queue::{Queue, Tick};
use crate::shutdown::Shutdown;
use crate::{client, clock};
use spec::Periodic;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The most missed ticks counted when reporting a skip.
const COUNT_SKIPS_UP_TO: usize = 100_000;

/// Enqueues the schedule's ticks until shutdown; `None` without a schedule.
pub fn spawn(queue: Queue, schedule: Arc<Vec<Periodic>>, shutdown: Shutdown) -> Option<JoinHandle<()>> {
    if schedule.is_empty() {
        return None;
    }
    Some(crate::supervise::spawn("periodic jobs", move || {
        enqueue_ticks(queue.clone(), schedule.clone(), shutdown.clone())
    }))
}

async fn enqueue_ticks(queue: Queue, schedule: Arc<Vec<Periodic>>, shutdown: Shutdown) {
    report_skips(&queue, &schedule).await;
    let mut next: Vec<Option<f64>> = schedule.iter().map(|p| p.next_after(clock::now())).collect();
    while let Some(due) = next.iter().flatten().copied().min_by(f64::total_cmp) {
        shutdown.sleep(Duration::from_secs_f64((due - clock::now()).max(0.0))).await;
        if shutdown.is_started() {
            return;
        }
        let now = clock::now();
        for (periodic, tick) in schedule.iter().zip(next.iter_mut()) {
            *tick = catch_up(&queue, periodic, *tick, now).await;
        }
    }
}

/// Enqueues the ticks of `periodic` due by `now` from `tick` on, in order
/// (a runner woken late, by load or a paused machine, catches up a few:
/// another runner may have missed them too); returns the next tick.
async fn catch_up(queue: &Queue, periodic: &Periodic, mut tick: Option<f64>, now: f64) -> Option<f64> {
    let mut caught = 0;
    while let Some(at) = tick.filter(|at| *at <= now) {
        if caught == CATCH_UP {
            tracing::warn!(periodic = %periodic.name, "this runner fell behind the schedule; ticks skipped");
            return periodic.next_after(now);
        }
        enqueue_tick(queue, periodic, at).await;
        caught += 1;
        tick = periodic.next_after(at);
    }
    tick
}

/// The most ticks a late runner enqueues at once.
const CATCH_UP: usize = 10;

/// Pushes the job of tick `at`, unless another runner did.
async fn enqueue_tick(queue: &Queue, periodic: &Periodic, at: f64) {
    let name = periodic.name.as_str();
    let (jid, payload) = match payload(periodic, Some(at)) {
        Ok(job) => job,
        Err(err) => {
            return tracing::error!(periodic = name, error = %format!("{err:#}"), "periodic job not enqueued");
        }
    };
    match queue.periodic_tick(name, at, (&periodic.queue, &jid, &payload), periodic.enabled).await {
        Ok(Tick::Pushed) => {
            tracing::info!(periodic = name, class = %periodic.class, jid, queue = %periodic.queue, tick = at, "periodic job enqueued")
        }
        Ok(Tick::Taken | Tick::Off) => {}
        Err(err) => {
            tracing::warn!(periodic = name, error = %format!("{err:#}"), "periodic job not enqueued; another runner may have")
        }
    }
}

/// A periodic job's job: its jid and JSON, marked with the job's name and,
/// for a tick, the tick's time.
pub fn payload(periodic: &Periodic, tick: Option<f64>) -> anyhow::Result<(String, String)> {
    let (jid, mut job) = client::new_job(&periodic.class, &periodic.args.to_string(), &periodic.queue, true)?;
    job["periodic"] = periodic.name.clone().into();
    if let Some(at) = tick {
        job["periodic_at"] = at.into();
    }
    Ok((jid, job.to_string()))
}

/// Logs the ticks that fell since the last one enqueued, while no runner ran.
async fn report_skips(queue: &Queue, schedule: &[Periodic]) {
    // A tick this close to now may still be on its way from another runner.
    let until = clock::now() - 1.0;
    for periodic in schedule {
        let Ok(state) = queue.periodic_state(&periodic.name).await else { continue };
        let Some(mut at) = state.last_tick else { continue };
        let mut missed = 0;
        while let Some(next) = periodic.next_after(at).filter(|next| *next <= until) {
            missed += 1;
            at = next;
            if missed == COUNT_SKIPS_UP_TO {
                break;
            }
        }
        if missed > 0 {
            tracing::warn!(periodic = %periodic.name, missed, "ticks that fell while no runner ran are skipped");
        }
    }
}
