//! What a plugin does with `send-mail` can neither stall the runner nor
//! make a mail go out twice: header work is bounded, the call gives up at
//! the job's deadline, and a mail handed over before that is never resent.

use jobrunner_tests::{Mail, Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, now};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nothing queued, retrying or in progress any more.
fn settled(redis: &Redis) -> bool {
    redis.llen("queue:default") == 0 && redis.sorted_set("retry").is_empty() && redis.inprogress_jobs() == 0
}

#[test]
fn a_mail_handed_over_before_a_time_out_is_not_sent_again() {
    // The server takes the message at once but answers its end only after
    // 6 s, long after the job's 2 s: the mail is delivered, the job times out.
    let (redis, smtp) = (Redis::start(), SmtpSink::start_with(&["-W", ".:6"]));
    let options = RunnerOptions::plugins(&["welcome_mail"]).args(&["--timeout", "2"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "5a5a5a5a5a5a5a5a5a5a5a5a";
    redis.push("default", &job_json("WelcomeMailJob", json!(["ann@example.com", "Ann"]), jid));
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_message"], "timed out after 2s", "{retry}");
    assert_eq!(smtp.wait_for(1).len(), 1);
    runner.wait_for_log(&["ran out of time while its mail was being sent", jid], 1);

    // "Retry now": the rerun finds the mail marked as being sent.
    let member: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "0"]);
    let _: () = redis.query(&["ZADD", "retry", "0", &member[0]]);
    runner.wait_for_log(&["ran out of time while sending this mail", jid], 1);
    eventually("the job done", WAIT, || settled(&redis).then_some(()));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one copy: {mails:?}");
    assert_eq!(mails[0].subject, "Welcome, Ann!");
}

/// Watches a runner's heartbeat from its own thread for as long as it
/// lives: the largest age the beat reaches.
struct HeartbeatWatch {
    stop: Arc<AtomicBool>,
    worst: Arc<Mutex<f64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeartbeatWatch {
    fn start(redis: &Redis) -> HeartbeatWatch {
        let identity: String = eventually("the runner's heartbeat", WAIT, || {
            redis.query::<Vec<String>>(&["SMEMBERS", "processes"]).pop()
        });
        let (stop, worst) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(0.0f64)));
        let (stop_seen, worst_seen, url) = (stop.clone(), worst.clone(), redis.url.clone());
        let thread = std::thread::spawn(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            while !stop_seen.load(Ordering::Relaxed) {
                let beat: Option<f64> =
                    redis::cmd("HGET").arg(&identity).arg("beat").query(&mut conn).unwrap();
                let age = now() - beat.unwrap_or(0.0);
                let mut worst = worst_seen.lock().unwrap();
                *worst = worst.max(age);
                drop(worst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        HeartbeatWatch { stop, worst, thread: Some(thread) }
    }

    /// Stops watching: the largest age seen, in seconds.
    fn worst(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        *self.worst.lock().unwrap()
    }
}

#[test]
fn a_flood_of_headers_never_stalls_the_heartbeat_or_duplicates_a_mail() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["hostile", "welcome_mail"]).args(&["--heartbeat", "0.5"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let watch = HeartbeatWatch::start(&redis);
    for i in 0..20 {
        let args = json!(["ann@example.com", [["X-Many", "v"]], 100_000]);
        redis.push("default", &job_json("HeadersJob", args, &format!("{i:0>24}")));
    }
    redis.push(
        "default",
        &job_json("WelcomeMailJob", json!(["bob@example.com", "Bob"]), "b0b0b0b0b0b0b0b0b0b0b0b0"),
    );
    eventually("the 20 header floods dead", WAIT, || (redis.sorted_set("dead").len() == 20).then_some(()));
    eventually("the welcome mail done", WAIT, || settled(&redis).then_some(()));

    let worst = watch.worst();
    assert!(worst <= 1.0, "the heartbeat went {worst:.2}s stale against --heartbeat 0.5");
    assert!(redis.sorted_set("dead")[0]["error_message"].as_str().unwrap().contains("max_headers"));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one mail, the welcome: {mails:?}");
    assert_eq!(mails[0].subject, "Welcome, Bob!");
    drop(runner);
}

/// Twenty mails of 7 MiB each (about 10 MB once encoded, near the 10 MiB
/// cap), ten at a time: each is built and sent whole, once, and building
/// them never holds up the heartbeat long enough for the runner to be
/// taken for dead. On two cores shared with a disk writing back, ten such
/// jobs at once can make a beat half a second late; the bound is the
/// process timeout, past which another runner would take this one's jobs.
#[test]
fn twenty_big_mails_at_once_arrive_whole_and_never_stall_the_heartbeat() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let args = ["--heartbeat", "0.5", "--process-timeout", "2", "-c", "10"];
    let options = RunnerOptions::plugins(&["hostile"]).args(&args);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let watch = HeartbeatWatch::start(&redis);
    for i in 0..20 {
        redis.push("default", &job_json("HugeMailJob", json!([7]), &format!("{i:0>24}")));
    }
    // smtp-sink may still be writing the last file out when the runner has
    // its 250 and settles the job: wait for each file to be written whole.
    // A mail that arrived cut short would never be whole and fails here.
    let whole = |mails: &[Mail]| mails.iter().all(|m| m.raw.len() > 7 << 20);
    let mails = eventually("the 20 big mails, each whole", Duration::from_secs(120), || {
        let mails = smtp.messages();
        (mails.len() >= 20 && whole(&mails) && settled(&redis)).then_some(mails)
    });
    let worst = watch.worst();
    assert!(worst < 2.0, "the heartbeat went {worst:.2}s stale, past the 2 s process timeout");
    assert_eq!(mails.len(), 20, "one copy each");
    let ids: std::collections::BTreeSet<_> = mails.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), 20, "twenty different mails");
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}
