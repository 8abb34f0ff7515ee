//! A plugin for the runner's tests that misbehaves on purpose, one class
//! per kind of trouble. Never deploy it.
//!
//! - `SpinJob`: loops forever (the runner's timeout must stop it).
//! - `HogJob`: grows its memory without end (the memory cap must stop it).
//! - `FlakyJob`: fails retryably with the message in its first argument.
//! - `BrokenJob`: fails permanently with the message in its first argument.
//! - `TrapJob`: panics, which traps the instance.
//! - `EchoJob`: mails `args[0]` a message whose subject is `args[1]`.
//! - `ChattyJob`: writes 1 MiB to stderr, then mails like `EchoJob`.
//! - `MailThenSleepJob`: mails like `EchoJob`, then sleeps `args[2]` ms.
//! - `MailThenFailJob`: mails like `EchoJob`, then fails retryably on its
//!   first run and succeeds on the next.
//! - `SlowJob`: sleeps `args[0]` milliseconds, then mails like `EchoJob`
//!   with `args[1]` and `args[2]`.
//! - `ArgsJob`: mails args@example.com its arguments exactly as it got
//!   them (the JSON text), so a test can see what reaches a plugin.
//! - `RichMailJob`: one mail to `args[0]`, cc `args[1]`, bcc `args[2]`,
//!   reply-to `args[3]`, with a text and an HTML body.
//! - `LogJob`: logs a line of `args[0]` "x"s at info, then whether debug
//!   lines are enabled (`logging.enabled`).
//! - `SecretJob`: looks in a static and on a heap page for what an earlier
//!   job left there, then leaves `args[1]` in both; mails `args[0]` "clean"
//!   or "saw <what it found>".

use jobrunner_plugin_sdk::{
    Args, Guest, Job, JobError, Level, PluginInfo, log, log_enabled, mail, plugin_info,
};

struct Misbehave;

impl Guest for Misbehave {
    fn describe() -> PluginInfo {
        let classes = [
            "SpinJob",
            "HogJob",
            "FlakyJob",
            "BrokenJob",
            "TrapJob",
            "EchoJob",
            "SlowJob",
            "ChattyJob",
            "MailThenSleepJob",
            "MailThenFailJob",
            "ArgsJob",
            "SecretJob",
            "LogJob",
            "RichMailJob",
            "BlobReverseJob",
        ];
        plugin_info("misbehave", env!("CARGO_PKG_VERSION"), &classes)
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        match job.class.as_str() {
            "SpinJob" => spin(),
            "HogJob" => hog(),
            "FlakyJob" => Err(JobError::Retryable(args.required("message", 0)?)),
            "BrokenJob" => Err(JobError::Permanent(args.required("message", 0)?)),
            "TrapJob" => panic!("TrapJob panics on purpose"),
            "EchoJob" => echo(&args, 0),
            "ChattyJob" => {
                for line in 0..16 * 1024 {
                    eprintln!("{line:06} {}", "x".repeat(57));
                }
                echo(&args, 0)
            }
            "SlowJob" => {
                let millis: u64 = args.required("millis", 0)?;
                std::thread::sleep(std::time::Duration::from_millis(millis));
                echo(&args, 1)
            }
            "MailThenSleepJob" => {
                echo(&args, 0)?;
                let millis: u64 = args.required("millis", 2)?;
                std::thread::sleep(std::time::Duration::from_millis(millis));
                Ok(())
            }
            "MailThenFailJob" => {
                echo(&args, 0)?;
                match job.retry_count {
                    0 => Err(JobError::Retryable("failing after the mail, once".into())),
                    _ => Ok(()),
                }
            }
            "SecretJob" => secret(&args),
            "BlobReverseJob" => {
                // Writes the file of `key` backwards as `into`, then deletes `key`.
                let service: String = args.required("service", 0)?;
                let key: String = args.required("key", 1)?;
                let into: String = args.required("into", 2)?;
                let mut bytes = jobrunner_plugin_sdk::blobs::read(&service, &key)?;
                bytes.reverse();
                jobrunner_plugin_sdk::blobs::write(&service, &into, &bytes, "application/octet-stream")?;
                jobrunner_plugin_sdk::blobs::delete(&service, &key)
            }
            "RichMailJob" => {
                let mut email = mail::Email::new(&args.required::<String>("to", 0)?, "rich", "plain text\n");
                email.cc = vec![args.required("cc", 1)?];
                email.bcc = vec![args.required("bcc", 2)?];
                email.reply_to = Some(args.required("reply_to", 3)?);
                email.html_body = Some("<p>html <b>body</b></p>".into());
                mail::send(&email)?;
                Ok(())
            }
            "LogJob" => {
                let length: usize = args.required("length", 0)?;
                log(Level::Info, &"x".repeat(length));
                log(Level::Info, &format!("debug enabled: {}", log_enabled(Level::Debug)));
                Ok(())
            }
            "ArgsJob" => {
                mail::send(&mail::Email::new("args@example.com", "args", format!("{}\n", job.args)))?;
                Ok(())
            }
            other => Err(JobError::Permanent(format!("misbehave does not handle {other}"))),
        }
    }
}

fn echo(args: &Args, first: usize) -> Result<(), JobError> {
    let to: String = args.required("to", first)?;
    let subject: String = args.required("subject", first + 1)?;
    mail::send(&mail::Email::new(&to, subject, "echo\n"))?;
    Ok(())
}

/// What a `SecretJob` leaves behind: a static and the address of a heap
/// block holding the same text.
static LEFT: std::sync::Mutex<Option<(String, usize)>> = std::sync::Mutex::new(None);

fn secret(args: &Args) -> Result<(), JobError> {
    let to: String = args.required("to", 0)?;
    let secret: String = args.required("secret", 1)?;
    let mut left = LEFT.lock().unwrap_or_else(|e| e.into_inner());
    let found = match left.as_ref() {
        Some((text, heap)) => {
            // SAFETY: the address came from a leaked String of this length in
            // this same instance, if the instance were ever reused.
            let bytes = unsafe { std::slice::from_raw_parts(*heap as *const u8, text.len()) };
            format!("saw {text} and {}", String::from_utf8_lossy(bytes))
        }
        None => "clean".to_string(),
    };
    let heap = Box::leak(secret.clone().into_boxed_str()).as_ptr() as usize;
    *left = Some((secret, heap));
    mail::send(&mail::Email::new(&to, found, "secret\n"))?;
    Ok(())
}

fn spin() -> Result<(), JobError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hog() -> Result<(), JobError> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        chunks.push(std::hint::black_box(chunk));
    }
}

jobrunner_plugin_sdk::export_plugin!(Misbehave);
