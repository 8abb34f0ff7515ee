//! An iterable job for the tests of slices and resumption:
//! `StepsJob(steps, ms_per_step, to, mail_every)` walks steps `0..steps`,
//! spending `ms_per_step` on each, and checkpoints after every step; with
//! `mail_every` N it also mails `to` "step K" after every Nth step. Its cursor
//! carries where each run began, so that when the last step is done it can
//! mail `to` the story of the whole job:
//!
//! ```text
//! subject: StepsJob done: 80 steps
//! body:    runs: 4
//!          starts: 0,21,42,63
//!          steps done: 80
//! ```
//!
//! Each run logs `run N begins at step S`, and a stop `stopped before step S`.
//!
//! `ImportJob(items, ms_per_item, to)` is a Rails 8.1 continuable job
//! (`ActiveJob::Continuable`) in three steps: `prepare` (logs "prepare
//! runs"), `process` (items `0..items` with the next item as its cursor;
//! logs "process begins at item K") and `finish`, which mails `to`
//! "ImportJob done: N items".

use jobrunner_plugin_sdk::continuation::Continuation;
use jobrunner_plugin_sdk::iteration::{self, Flow};
use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, Level, PluginInfo, log, mail, plugin_info};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

struct Steps;

/// Where the job is, and where each of its runs began.
#[derive(Default, Deserialize, Serialize)]
struct Cursor {
    next: u64,
    starts: Vec<u64>,
    /// Steps performed over all runs, counted in the cursor: a step redone
    /// after a crash is counted once, as its effect would be.
    done: u64,
}

impl Guest for Steps {
    fn describe() -> PluginInfo {
        plugin_info("steps", "1.0.0", &["StepsJob", "ImportJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        match job.class.as_str() {
            "ImportJob" => import(&job),
            _ => steps(&job),
        }
    }
}

/// `StepsJob`: a cursor of its own.
fn steps(job: &Job) -> Result<(), JobError> {
    let args = Args::parse(&job.args)?;
    let steps: u64 = args.required("steps", 0)?;
    let ms: u64 = args.required("ms_per_step", 1)?;
    let to: String = args.required("to", 2)?;
    let mail_every: u64 = args.optional("mail_every", 3)?.unwrap_or(0);
    let mut cursor: Cursor = iteration::resume_from()?.unwrap_or_default();
    let run = iteration::executions();
    log(Level::Info, &format!("run {run} begins at step {}", cursor.next));
    cursor.starts.push(cursor.next);
    while cursor.next < steps {
        spin(Duration::from_millis(ms));
        cursor.next += 1;
        cursor.done += 1;
        if mail_every > 0 && cursor.next.is_multiple_of(mail_every) {
            let step = cursor.next;
            mail::send(&mail::Email::new(&to, format!("step {step}"), format!("step {step} of {steps}\n")))?;
        }
        if iteration::checkpoint(&cursor)? == Flow::Stop {
            log(Level::Info, &format!("stopped before step {}", cursor.next));
            return Ok(());
        }
    }
    let starts: Vec<String> = cursor.starts.iter().map(u64::to_string).collect();
    let body = format!("runs: {run}\nstarts: {}\nsteps done: {}\n", starts.join(","), cursor.done);
    mail::send(&mail::Email::new(&to, format!("StepsJob done: {steps} steps"), body))?;
    Ok(())
}

/// `ImportJob`: Rails' steps and cursor.
fn import(job: &Job) -> Result<(), JobError> {
    let args = Args::parse(&job.args)?;
    let items: u64 = args.required("items", 0)?;
    let ms: u64 = args.required("ms_per_item", 1)?;
    let to: String = args.required("to", 2)?;
    let mut import = Continuation::resume()?;
    let prepare = import.step("prepare", |_| {
        log(Level::Info, "prepare runs");
        Ok(Flow::GoOn)
    })?;
    if prepare == Flow::Stop {
        return Ok(());
    }
    let process = import.step("process", |step| {
        let start = step.cursor::<u64>()?.unwrap_or(0);
        log(Level::Info, &format!("process begins at item {start}"));
        for item in start..items {
            spin(Duration::from_millis(ms));
            if step.set(item + 1)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::GoOn)
    })?;
    if process == Flow::Stop {
        return Ok(());
    }
    import.step("finish", |_| {
        let body = format!("steps: {}\n", ["prepare", "process", "finish"].join(", "));
        mail::send(&mail::Email::new(&to, format!("ImportJob done: {items} items"), body))?;
        Ok(Flow::GoOn)
    })?;
    Ok(())
}

/// Busy for `time`: a step's work.
fn spin(time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

jobrunner_plugin_sdk::export_plugin!(Steps);
