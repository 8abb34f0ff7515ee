//! The runner as Sidekiq's own tools see it: Sidekiq 6.4.1's Ruby API
//! (`ProcessSet`, `Workers`, `Stats`, `RetrySet`, `DeadSet`) and its Web UI
//! (`/busy`, `/retries`, `/morgue`, through `Rack::MockRequest`) against a
//! live runner, plus the process record and payload shapes Sidekiq 7 and 8
//! read, which can't be installed here (facts from the reference's §1–§2:
//! `sidekiq@v8.1.7:lib/sidekiq/api.rb`, `launcher.rb`, `processor.rb`).

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, now};
use serde_json::{Value, json};

/// Runs Ruby with Sidekiq's API and Web UI loaded, against the test Redis;
/// `page(path)` gets a Web UI page through `Rack::MockRequest`.
fn ruby(redis: &Redis, code: &str) -> String {
    let page = "def page(path) = Rack::MockRequest.new(Sidekiq::Web).get(path, \"rack.session\" => {})\n";
    jobrunner_tests::ruby(redis, &["sidekiq/api", "sidekiq/web", "rack/mock"], &format!("{page}{code}"))
}

fn identity(redis: &Redis) -> String {
    eventually("the runner in the process set", WAIT, || {
        redis.query::<Vec<String>>(&["SMEMBERS", "processes"]).pop()
    })
}

#[test]
fn sidekiqs_api_and_web_ui_list_the_runner_and_its_running_job() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "5b5b5b5b5b5b5b5b5b5b5b5b";
    redis.push("default", &job_json("SlowJob", json!([20_000]), jid));
    let identity = identity(&redis);
    eventually("the job running", WAIT, || {
        (redis.query::<u64>(&["HLEN", &format!("{identity}:workers")]) == 1).then_some(())
    });

    let seen = ruby(
        &redis,
        &format!(
            r##"Sidekiq::ProcessSet.new.each {{ |p| puts "process #{{p["identity"]}} #{{p["concurrency"]}} #{{p["busy"]}} #{{p["tag"]}}" }}
               Sidekiq::Workers.new.each {{ |id, _, work| puts "work #{{id}} #{{work["queue"]}} #{{work["payload"]["jid"]}}" }}
               puts "workers_size #{{Sidekiq::Stats.new.workers_size}}"
               busy = page("/busy")
               puts "busy #{{busy.status}} #{{busy.body.include?({jid:?})}}""##
        ),
    );
    assert!(seen.contains(&format!("process {identity} 10 1 jobrunner")), "{seen}");
    assert!(seen.contains(&format!("work {identity} default {jid}")), "{seen}");
    assert!(seen.contains("workers_size 1"), "{seen}");
    assert!(seen.contains("busy 200 true"), "the Busy page lists the job: {seen}");

    // TTIN from the API logs the running jobs; Quiet from it stops fetching.
    ruby(&redis, "Sidekiq::ProcessSet.new.each(&:dump_threads)");
    runner.wait_for_log(&["running job", jid], 1);
    ruby(&redis, "Sidekiq::ProcessSet.new.each(&:quiet!)");
    runner.wait_for_log(&["quiet requested"], 1);
    let quiet = eventually("the process shown quiet", WAIT, || {
        let out = ruby(&redis, "Sidekiq::ProcessSet.new.each { |p| puts p.stopping? }");
        (out == "true").then_some(out)
    });
    assert_eq!(quiet, "true");
}

#[test]
fn a_retry_done_from_sidekiqs_api_is_performed_by_the_runner() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "6c6c6c6c6c6c6c6c6c6c6c6c";
    redis.push("default", &job_json("FlakyJob", json!(["not yet"]), jid));
    eventually("the job in the retry set", WAIT, || (redis.sorted_set("retry").len() == 1).then_some(()));
    let listed = ruby(
        &redis,
        &format!(
            r##"puts Sidekiq::RetrySet.new.map {{ |j| "#{{j.jid}} #{{j["error_message"]}}" }}
               puts page("/retries").body.include?({jid:?})
               Sidekiq::RetrySet.new.retry_all"##
        ),
    );
    assert!(listed.contains(&format!("{jid} not yet")) && listed.ends_with("true"), "{listed}");
    // Sidekiq's retry_all pushed it back; the runner performs it again.
    runner.wait_for_log(&["job failed", jid], 2);
    let again = eventually("the job back in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(again["retry_count"], 0, "a retry from the Web UI isn't counted: {again}");
    assert!(again["retried_at"].is_f64(), "{again}");
}

#[test]
fn dead_jobs_show_in_sidekiqs_dead_set_and_morgue() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "7d7d7d7d7d7d7d7d7d7d7d7d";
    redis.push("default", &job_json("BrokenJob", json!(["bad arguments"]), jid));
    eventually("the job in the dead set", WAIT, || (redis.sorted_set("dead").len() == 1).then_some(()));
    let seen = ruby(
        &redis,
        &format!(
            r##"d = Sidekiq::DeadSet.new
               puts "#{{d.size}} #{{d.first.jid}} #{{d.first["error_message"]}}"
               puts page("/morgue").body.include?({jid:?})
               puts "processed=#{{Sidekiq::Stats.new.processed}} failed=#{{Sidekiq::Stats.new.failed}}""##
        ),
    );
    assert!(seen.starts_with(&format!("1 {jid} bad arguments")), "{seen}");
    assert!(seen.contains("\ntrue\n"), "the Morgue lists it: {seen}");
    assert!(seen.ends_with("processed=1 failed=1"), "{seen}");
}

#[test]
fn the_process_record_has_the_shape_sidekiq_7_and_8_read() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "8e8e8e8e8e8e8e8e8e8e8e8e";
    redis.push("default", &job_json("SlowJob", json!([20_000]), jid));
    let identity = identity(&redis);
    let work: Vec<(String, String)> = eventually("the job in <identity>:work", WAIT, || {
        let work: Vec<(String, String)> = redis.query(&["HGETALL", &format!("{identity}:work")]);
        (!work.is_empty()).then_some(work)
    });
    let entry: Value = serde_json::from_str(&work[0].1).unwrap();
    assert_eq!(entry["queue"], "default");
    assert!(entry["run_at"].is_i64(), "run_at is integer seconds: {entry}");
    let payload: Value =
        serde_json::from_str(entry["payload"].as_str().expect("payload is a JSON string")).unwrap();
    assert_eq!(payload["jid"], jid);

    // 8.1.2+ reads these fields with HMGET; a missing `concurrency` shows 0.
    let fields: Vec<Option<String>> =
        redis.query(&["HMGET", &identity, "info", "concurrency", "busy", "beat", "quiet", "rss", "rtt_us"]);
    assert!(fields.iter().all(Option::is_some), "{fields:?}");
    assert_eq!(fields[1].as_deref(), Some("10"));
    assert!(fields[3].as_ref().unwrap().parse::<f64>().unwrap() > now() - 10.0, "beat is float seconds");
    let info: Value = serde_json::from_str(fields[0].as_ref().unwrap()).unwrap();
    assert_eq!(info["identity"], identity.as_str());
    assert_eq!(info["capsules"]["default"]["concurrency"], 10);
    assert_eq!(info["weights"], json!([{"default": 0, "mailers": 0}]));
    assert_eq!(info["embedded"], false);

    // A clean stop leaves the process set at once, as Sidekiq does.
    assert!(runner.terminate().success());
    let processes: Vec<String> = redis.query(&["SMEMBERS", "processes"]);
    assert!(!processes.contains(&identity), "{processes:?}");
    assert_eq!(redis.query::<u64>(&["EXISTS", &format!("{identity}:work")]), 0);
}

#[test]
fn a_sidekiq_8_payload_keeps_its_fields_and_units() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let created_ms = (now() * 1000.0) as i64 - 5_000;
    // As Sidekiq 8 writes it, field order included (a literal: serde_json
    // would sort the keys).
    let pushed = format!(
        r#"{{"class":"FlakyJob","args":["later"],"retry":true,"queue":"default","jid":"9f9f9f9f9f9f9f9f9f9f9f9f","created_at":{created_ms},"enqueued_at":{},"tags":["vip"],"bid":"b-1","retry_for":3600,"retry_count":30,"failed_at":{created_ms},"cattr":[[{{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"user_id"}},5]],"zz_unknown":{{"n":1.5,"s":"x"}}}}"#,
        created_ms + 10
    );
    let job: Value = serde_json::from_str(&pushed).unwrap();
    redis.push("default", &pushed);
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    // Past Sidekiq's 25 retries, but within `retry_for` of its first failure.
    for key in ["created_at", "enqueued_at", "failed_at", "tags", "bid", "retry_for", "cattr", "zz_unknown"] {
        assert_eq!(retry[key], job[key], "{key} kept as it came: {retry}");
    }
    // Byte for byte: the raw member holds each field as pushed, in order.
    let raw: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "0"]);
    let fields =
        ["\"tags\":[\"vip\"],\"bid\":\"b-1\"", "\"zz_unknown\":{\"n\":1.5,\"s\":\"x\"}", "\"cattr\":[[{"];
    for field in fields {
        assert!(pushed.contains(field) && raw[0].contains(field), "{field} in {}", raw[0]);
    }
    let prefix = &pushed[..pushed.find(",\"retry_count\"").unwrap()];
    assert!(raw[0].starts_with(prefix), "the fields before the first one changed are as pushed: {}", raw[0]);
    let retried_at = retry["retried_at"].as_f64().unwrap();
    assert!(
        retry["retried_at"].is_f64() && (retried_at - now()).abs() < 30.0,
        "retried_at in float seconds: {retry}"
    );
    assert_eq!(retry["retry_count"], 31);
    let score: Vec<(String, f64)> = redis.query(&["ZRANGE", "retry", "0", "0", "WITHSCORES"]);
    // Sidekiq's backoff for the 31st retry, 31^4 s plus jitter: about 11 days.
    let delay = score[0].1 - now();
    assert!((900_000.0..1_000_000.0).contains(&delay), "the retry score is float seconds: {}", score[0].1);
}

#[test]
fn the_dashboard_shows_compressed_backtraces_as_lines() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    // As Sidekiq 6.4-7.2.0 (Base64 with line breaks) and 7.2.1+ (strict) store it.
    let encoded = ruby(
        &redis,
        r#"require "zlib"; require "base64"
           deflated = Zlib::Deflate.deflate(JSON.generate(["app/jobs/order_job.rb:12:in `perform'"] * 5))
           puts JSON.generate([Base64.encode64(deflated), Base64.strict_encode64(deflated)])"#,
    );
    let forms: Vec<String> = serde_json::from_str(&encoded).unwrap();
    assert!(forms[0].contains('\n') && !forms[1].contains('\n'));
    for (i, form) in forms.iter().enumerate() {
        let job = json!({"class": "OrderJob", "args": [], "jid": format!("{i:0>24}"), "queue": "default",
            "error_message": "boom", "error_class": "RuntimeError", "error_backtrace": form});
        let _: () = redis.query(&["ZADD", "dead", &format!("{}", now() + i as f64), &job.to_string()]);
    }
    let page = ureq::get(&format!("{}/dead", runner.dashboard_url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(page.matches("app/jobs/order_job.rb:12").count(), 10, "both forms decoded, five lines each");
}

#[test]
fn a_scheduled_job_and_a_retry_moved_to_their_queue_get_a_fresh_enqueued_at() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    // Queue "parked" has no runner, so the moved jobs stay where Sidekiq's API can look.
    let three_days_ago = now() - 3.0 * 86_400.0;
    // As Sidekiq 7.3+ schedules: no enqueued_at at all.
    let scheduled = json!({"class": "EchoJob", "args": [], "jid": "5c5c5c5c5c5c5c5c5c5c5c5c", "queue": "parked",
                           "retry": true, "created_at": three_days_ago, "big": 12345678901234567u64});
    // A retry keeps its first enqueued_at, days old; its arguments name another one.
    let retry = json!({"class": "EchoJob", "args": [{"enqueued_at": 1.5}], "jid": "5d5d5d5d5d5d5d5d5d5d5d5d",
                       "queue": "parked", "retry": true, "retry_count": 0, "created_at": three_days_ago,
                       "enqueued_at": three_days_ago});
    let (scheduled_text, retry_text) = (scheduled.to_string(), retry.to_string());
    let _: () = redis.query(&["ZADD", "schedule", &(now() - 1.0).to_string(), &scheduled_text]);
    let retry_one = json!({"class": "EchoJob", "args": [], "jid": "5e5e5e5e5e5e5e5e5e5e5e5e", "queue": "parked",
                           "retry": true, "created_at": three_days_ago, "enqueued_at": three_days_ago});
    let _: () = redis.query(&["ZADD", "retry", &(now() - 1.0).to_string(), &retry_one.to_string()]);
    let _: () = redis.query(&["ZADD", "retry", &(now() - 1.0).to_string(), &retry_text]);
    let moved_at = now();
    let jobs: Vec<String> = eventually("the three jobs in their queue", WAIT, || {
        let jobs: Vec<String> = redis.query(&["LRANGE", "queue:parked", "0", "-1"]);
        (jobs.len() == 3).then_some(jobs)
    });
    let by_jid = |jid: &str| -> Value {
        let text = jobs.iter().find(|j| j.contains(jid)).expect("the job");
        serde_json::from_str(text).expect("still JSON")
    };
    for jid in ["5c5c5c5c5c5c5c5c5c5c5c5c", "5e5e5e5e5e5e5e5e5e5e5e5e"] {
        let job = by_jid(jid);
        let at = job["enqueued_at"].as_f64().expect("a float enqueued_at");
        assert!((at - moved_at).abs() < 10.0, "enqueued_at {at} is not the time of the move: {job}");
        assert_eq!(job["args"], json!([]), "[] stays an array");
    }
    assert_eq!(
        by_jid("5c5c5c5c5c5c5c5c5c5c5c5c")["big"],
        json!(12345678901234567u64),
        "numbers kept exactly"
    );
    // Two numeric enqueued_at fields: left alone rather than the wrong one changed.
    assert_eq!(by_jid("5d5d5d5d5d5d5d5d5d5d5d5d")["args"], json!([{"enqueued_at": 1.5}]));

    // Sidekiq's own API: the queue's latency counts from the move, not 0 or days.
    let _: () = redis.query(&[
        "LREM",
        "queue:parked",
        "0",
        &jobs.iter().find(|j| j.contains("5d5d")).unwrap().clone(),
    ]);
    let latency: f64 =
        ruby(&redis, r#"puts Sidekiq::Queue.new("parked").latency"#).parse().expect("a number");
    assert!(latency > 0.0 && latency < 30.0, "Sidekiq::Queue#latency {latency}");
}

#[test]
fn a_trapped_job_that_asks_for_a_backtrace_shows_the_guests_frames_in_sidekiqs_api() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let mut job: Value =
        serde_json::from_str(&job_json("TrapJob", json!([]), "5f5f5f5f5f5f5f5f5f5f5f5f")).unwrap();
    job["backtrace"] = json!(true);
    redis.push("default", &job.to_string());
    let retry = eventually("the trapped job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    let written = retry["error_backtrace"].as_str().expect("an error_backtrace");
    assert!(!written.contains('\n'), "strict Base64, as Sidekiq 7.2.1+ writes it");
    // Sidekiq's own reader inflates it into the guest's frames.
    let lines = ruby(&redis, "puts Sidekiq::RetrySet.new.first.error_backtrace");
    assert!(lines.lines().count() >= 2, "{lines}");
    assert!(lines.contains("misbehave") || lines.contains("wasm"), "{lines}");
}

#[test]
fn the_metrics_tab_of_sidekiq_7_and_8_counts_the_jobs_the_runner_ran() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    for i in 0..3 {
        let jid = format!("{i:0>24}");
        redis.push("default", &job_json("EchoJob", json!(["ops@example.com", format!("metric {i}")]), &jid));
    }
    redis.push("default", &job_json("FlakyJob", json!(["not yet"]), "f1f1f1f1f1f1f1f1f1f1f1f1"));
    smtp.wait_for(3);
    // Summed over every minute key of a layout, so a run across a minute's end still adds up.
    let sum = |pattern: &str, field: &str| -> u64 {
        let keys: Vec<String> = redis.query(&["KEYS", pattern]);
        keys.iter().map(|k| redis.query::<Option<u64>>(&["HGET", k, field]).unwrap_or(0)).sum()
    };
    // 7.x: j|%Y%m%d|%-H:%-M; 8.x minutely: j|%y%m%d|%-H:%M (its 10-minute key has one digit less).
    let (v7, v8) =
        ("j|[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]|*", "j|[0-9][0-9][0-9][0-9][0-9][0-9]|*:[0-9][0-9]");
    eventually("the heartbeat to write the metrics", WAIT, || {
        (sum(v7, "EchoJob|p") == 3 && sum(v7, "FlakyJob|f") == 1).then_some(())
    });
    for layout in [v7, v8] {
        assert_eq!((sum(layout, "EchoJob|p"), sum(layout, "EchoJob|f")), (3, 0), "{layout}");
        assert_eq!((sum(layout, "FlakyJob|p"), sum(layout, "FlakyJob|f")), (1, 1), "{layout}");
        assert!(sum(layout, "EchoJob|ms") < 30_000, "{layout}");
    }
    let ten_minute: Vec<String> = redis.query(&["KEYS", "j|[0-9][0-9][0-9][0-9][0-9][0-9]|*:[0-9]"]);
    assert!(!ten_minute.is_empty(), "8.x's 10-minute keys");
    let ttl: i64 = redis.query(&["TTL", &ten_minute[0]]);
    assert!(ttl > 8 * 3600, "kept 3 days: {ttl}");
    // The histograms: three successful runs of EchoJob in 26 u16 buckets.
    for pattern in ["EchoJob-*", "h|EchoJob-*"] {
        let keys: Vec<String> = redis.query(&["KEYS", pattern]);
        let mut total = 0;
        for key in &keys {
            let mut args = vec!["BITFIELD", key.as_str()];
            let slots: Vec<String> = (0..26).map(|i| format!("#{i}")).collect();
            for slot in &slots {
                args.extend(["GET", "u16", slot.as_str()]);
            }
            total += redis.query::<Vec<u64>>(&args).iter().sum::<u64>();
        }
        assert_eq!(total, 3, "{pattern}: {keys:?}");
    }
}
