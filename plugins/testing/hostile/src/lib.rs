//! A plugin for the runner's tests that attacks its sandbox and its
//! capabilities on purpose. Never deploy it.
//!
//! - `RecurseJob`: recurses without end (a stack overflow).
//! - `ProbeJob`: tries what `args[0]` names (`file`, `dir`, `env`,
//!   `socket` to the address in `args[1]`) and fails permanently with
//!   "sandbox held: ..." if it got nothing, "SANDBOX BROKEN: ..." if it did.
//! - `ClockSpinJob`: busy-waits on the clock for a minute.
//! - `LogFloodJob`: writes `args[0]` log lines.
//! - `LogFloodForJob`: writes log lines as fast as it can for `args[0]` seconds.
//! - `BigErrorJob`: fails with a message of `args[0]` bytes.
//! - `MailLoopJob`: mails `args[0]` `args[1]` times in a row.
//! - `MailBlastJob`: one mail to `args[0]` recipients.
//! - `HugeMailJob`: one mail with a body of `args[0]` MiB.
//! - `SenderJob`: one mail from the address `args[0]` to `args[1]`.
//! - `HeadersJob`: one mail to `args[0]` with the extra headers `args[1]`
//!   (a list of [name, value] pairs), or `args[2]` copies of one header.
//! - `ForgeLogJob`: logs lines with newlines, a bare CR and ANSI escapes
//!   that mimic the runner's own lines, then fails with such a message.
//! - `RecordsJob`: makes the `records` calls listed in `args[0]` (each
//!   `{"locate": [gid, columns]}`, `{"find": [model, id, columns]}` or
//!   `{"find_all_by": [model, column, value, columns, limit]}`,
//!   `{"find_batch": [model, where, [column, from, until] or null, columns,
//!   after or null, size]}` or `{"find_many": [model, ids, columns]}`, names
//!   and values as it likes) and logs each outcome as `records N: ...`.

use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, Level, PluginInfo, log, mail, plugin_info};

struct Hostile;

const CLASSES: &[&str] = &[
    "RecurseJob",
    "ProbeJob",
    "ClockSpinJob",
    "LogFloodJob",
    "LogFloodForJob",
    "BigErrorJob",
    "MailLoopJob",
    "MailBlastJob",
    "HugeMailJob",
    "SenderJob",
    "RecordsJob",
    "HeadersJob",
    "ForgeLogJob",
];

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        plugin_info("hostile", env!("CARGO_PKG_VERSION"), CLASSES)
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        match job.class.as_str() {
            "RecurseJob" => {
                recurse(std::hint::black_box(1));
                Ok(())
            }
            "ProbeJob" => probe(&args),
            "ClockSpinJob" => {
                let start = std::time::SystemTime::now();
                while start.elapsed().unwrap_or_default().as_secs() < 60 {}
                Ok(())
            }
            "LogFloodJob" => {
                let lines: u64 = args.required("lines", 0)?;
                for i in 0..lines {
                    log(Level::Info, &format!("flood line {i}"));
                }
                Ok(())
            }
            "LogFloodForJob" => {
                let seconds: u64 = args.required("seconds", 0)?;
                let start = std::time::SystemTime::now();
                let mut i = 0u64;
                while start.elapsed().unwrap_or_default().as_secs() < seconds {
                    log(Level::Info, &format!("timed flood line {i}"));
                    i += 1;
                }
                Ok(())
            }
            "BigErrorJob" => {
                let bytes: usize = args.required("bytes", 0)?;
                Err(JobError::Retryable("e".repeat(bytes)))
            }
            "MailLoopJob" => {
                let to: String = args.required("to", 0)?;
                let times: u32 = args.required("times", 1)?;
                for i in 0..times {
                    mail::send(&mail::Email::new(&to, format!("loop {i}"), "again\n"))?;
                }
                Ok(())
            }
            "MailBlastJob" => {
                let count: usize = args.required("recipients", 0)?;
                let mut email = mail::Email::new("first@example.com", "blast", "to everyone\n");
                email.to = (0..count).map(|i| format!("r{i}@example.com")).collect();
                mail::send(&email)?;
                Ok(())
            }
            "HugeMailJob" => {
                let mib: usize = args.required("mib", 0)?;
                mail::send(&mail::Email::new("big@example.com", "huge", "x".repeat(mib << 20)))?;
                Ok(())
            }
            "SenderJob" => {
                let mut email = mail::Email::new(&args.required::<String>("to", 1)?, "spoofed", "hi\n");
                email.from = Some(args.required("from", 0)?);
                mail::send(&email)?;
                Ok(())
            }
            "ForgeLogJob" => {
                let fake = "1999-09-09T09:09:09.000000Z  INFO jobrunner::runner: runner stopped";
                log(Level::Info, &format!("innocent\n{fake}"));
                log(Level::Warn, &format!("innocent\r{fake}"));
                log(Level::Error, "\u{1b}[2J\u{1b}[31mscreen cleared");
                Err(JobError::Retryable(format!("failed\r\n{fake}\u{1b}[0m")))
            }
            "HeadersJob" => {
                let mut email = mail::Email::new(&args.required::<String>("to", 0)?, "headers", "hi\n");
                email.headers = args.required("headers", 1)?;
                if let Some(copies) = args.optional::<usize>("copies", 2)? {
                    email.headers = email.headers.iter().cycle().take(copies).cloned().collect();
                }
                mail::send(&email)?;
                Ok(())
            }
            "RecordsJob" => {
                let calls: Vec<serde_json::Value> = args.required("calls", 0)?;
                for (i, call) in calls.iter().enumerate() {
                    log(Level::Info, &format!("records {i}: {}", records_call(call)));
                }
                Ok(())
            }
            other => Err(JobError::Permanent(format!("hostile does not handle {other}"))),
        }
    }
}

#[allow(unconditional_recursion)] // the point: a stack overflow
fn recurse(depth: u64) -> u64 {
    recurse(std::hint::black_box(depth + 1)) + 1
}

/// Tries one thing the sandbox must not allow.
fn probe(args: &Args) -> Result<(), JobError> {
    let what: String = args.required("what", 0)?;
    let outcome: Result<String, String> = match what.as_str() {
        "file" => std::fs::read_to_string("/etc/passwd")
            .map(|t| format!("read {} bytes", t.len()))
            .map_err(|e| e.to_string()),
        "dir" => std::fs::read_dir("/")
            .or_else(|_| std::fs::read_dir("."))
            .map(|d| format!("listed {} entries", d.count()))
            .map_err(|e| e.to_string()),
        "env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            if vars.is_empty() { Err("no environment variables".into()) } else { Ok(format!("saw {vars:?}")) }
        }
        "socket" => {
            let address: String = args.required("address", 1)?;
            std::net::TcpStream::connect(address.as_str())
                .map(|_| format!("connected to {address}"))
                .map_err(|e| e.to_string())
        }
        other => return Err(JobError::Permanent(format!("unknown probe {other}"))),
    };
    Err(JobError::Permanent(match outcome {
        Ok(got) => format!("SANDBOX BROKEN: {what}: {got}"),
        Err(denied) => format!("sandbox held: {what}: {denied}"),
    }))
}

/// Makes one raw `records` call and says how it went.
fn records_call(call: &serde_json::Value) -> String {
    use jobrunner_plugin_sdk::bindings::jobrunner::plugin::records as host;
    let text = |i: usize| call.as_object().and_then(|o| o.values().next()).and_then(|a| a.get(i)).cloned();
    let string = |i: usize| text(i).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let columns = |i: usize| -> Vec<String> {
        text(i).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    };
    let outcome = if call.get("locate").is_some() {
        host::locate(&string(0), &columns(1)).map(|r| r.unwrap_or_else(|| "none".into()))
    } else if call.get("find").is_some() {
        host::find(&string(0), &string(1), &columns(2)).map(|r| r.unwrap_or_else(|| "none".into()))
    } else if call.get("find_all_by").is_some() {
        let limit = text(4).and_then(|v| v.as_u64()).unwrap_or(10) as u32;
        host::find_all_by(&string(0), &string(1), &string(2), &columns(3), limit)
    } else if call.get("find_batch").is_some() {
        let bounds = text(2).and_then(|v| serde_json::from_value::<Vec<Option<String>>>(v).ok());
        let bounds = bounds.map(|b| host::Bounds {
            column: b.first().cloned().flatten().unwrap_or_default(),
            at_least: b.get(1).cloned().flatten(),
            below: b.get(2).cloned().flatten(),
        });
        let after = text(4).and_then(|v| v.as_str().map(str::to_string));
        let size = text(5).and_then(|v| v.as_u64()).unwrap_or(10) as u32;
        host::find_batch(&string(0), &string(1), bounds.as_ref(), &columns(3), after.as_deref(), size)
            .map(|batch| format!("{} last={:?}", batch.rows, batch.last_key))
    } else if call.get("find_many").is_some() {
        host::find_many(&string(0), &columns(1), &columns(2))
    } else {
        return format!("unknown call {call}");
    };
    match outcome {
        Ok(json) => format!("ok {json}"),
        Err(host::RecordError::Denied(m)) => format!("denied: {m}"),
        Err(host::RecordError::InvalidInput(m)) => format!("invalid: {m}"),
        Err(host::RecordError::Unavailable(m)) => format!("unavailable: {m}"),
    }
}

jobrunner_plugin_sdk::export_plugin!(Hostile);
