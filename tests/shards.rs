//! One runner serving three Redis shards, as Sidekiq users shard with
//! `Sidekiq::Client.via`: jobs Ruby pushes to each shard are all done and
//! recorded on their own shard; a SIGKILLed runner's jobs are recovered on
//! every shard; a shard that goes down leaves the others serving, and its
//! jobs are done once it is back; the dashboard and `/metrics` show each
//! shard and the totals.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, ruby, runner_enqueue,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// A runner of the test plugins on every shard, the first one first.
fn start_runner(shards: &[Redis], smtp: &SmtpSink, extra: &[&str]) -> Runner {
    let mut options = RunnerOptions::default().args(extra);
    for shard in &shards[1..] {
        options = options.args(&["--redis", &shard.url]);
    }
    Runner::start(&shards[0].url, &smtp.url, options)
}

/// Pushes EchoJobs with Ruby's `Sidekiq::Client.via`, `per_shard` to each
/// shard, mailing subject `shard<s>-<i>`; returns the subjects.
fn push_via_ruby(shards: &[Redis], per_shard: usize) -> BTreeSet<String> {
    let urls: Vec<String> = shards.iter().map(|shard| format!("{:?}", shard.url)).collect();
    ruby(
        &shards[0],
        &["connection_pool"],
        &format!(
            "[{}].each_with_index do |url, s|
               pool = ConnectionPool.new(size: 1) {{ Redis.new(url: url) }}
               Sidekiq::Client.via(pool) do
                 {per_shard}.times {{ |i| Sidekiq::Client.push('class' => 'EchoJob', 'queue' => 'default',
                   'args' => ['ops@example.com', \"shard#{{s}}-#{{i}}\"]) }}
               end
             end",
            urls.join(", ")
        ),
    );
    (0..shards.len()).flat_map(|s| (0..per_shard).map(move |i| format!("shard{s}-{i}"))).collect()
}

fn delivered(smtp: &SmtpSink) -> BTreeSet<String> {
    smtp.messages().into_iter().map(|m| m.subject).collect()
}

fn processed(shard: &Redis) -> usize {
    shard.query::<Option<usize>>(&["GET", "stat:processed"]).unwrap_or(0)
}

#[test]
fn jobs_ruby_pushes_to_each_of_three_shards_are_done_and_counted_on_their_shard() {
    let shards = [Redis::start(), Redis::start(), Redis::start()];
    let smtp = SmtpSink::start();
    let runner = start_runner(&shards, &smtp, &[]);
    let expected = push_via_ruby(&shards, 10);
    eventually("every shard's mail", WAIT, || (delivered(&smtp) == expected).then_some(()));
    for (s, shard) in shards.iter().enumerate() {
        eventually(&format!("shard {s} drained and its 10 jobs counted there"), WAIT, || {
            (processed(shard) == 10 && shard.llen("queue:default") == 0 && shard.inprogress_jobs() == 0)
                .then_some(())
        });
        let processes: Vec<String> = shard.query(&["SMEMBERS", "processes"]);
        assert_eq!(processes.len(), 1, "shard {s}'s Web UI sees the runner");
    }
    assert!(runner.logs().contains("shards=3"), "the runner says it serves three shards");

    // `runner enqueue --shard` pushes to the shard named; without it, the
    // queue's name picks one.
    let mut args: Vec<String> = vec!["EchoJob".into(), r#"["ops@example.com", "by-enqueue"]"#.into()];
    for shard in &shards[1..] {
        args.extend(["--redis".into(), shard.url.clone()]);
    }
    let enqueue = |shard: &str| {
        let with_shard = [args.clone(), vec!["--shard".into(), shard.into()]].concat();
        runner_enqueue(&shards[0].url, &with_shard.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(enqueue("2").status.success());
    eventually("the job pushed to shard 2 counted there", WAIT, || {
        (processed(&shards[2]) == 11).then_some(())
    });
    let refused = enqueue("3");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("there are 3 shards"), "{refused:?}");
}

#[test]
fn a_sigkilled_runners_jobs_are_recovered_on_every_shard() {
    let shards = [Redis::start(), Redis::start(), Redis::start()];
    let smtp = SmtpSink::start();
    let mut doomed = start_runner(&shards, &smtp, &["-c", "6", "--process-timeout", "3"]);
    let mut expected = BTreeSet::new();
    for (s, shard) in shards.iter().enumerate() {
        for i in 0..4 {
            let subject = format!("slow{s}-{i}");
            shard.push(
                "default",
                &job_json("SlowJob", json!([2000, "ops@example.com", subject]), &format!("{s}{i:023x}")),
            );
            expected.insert(subject);
        }
    }
    eventually("jobs in progress on every shard", WAIT, || {
        shards.iter().all(|shard| shard.inprogress_jobs() > 0).then_some(())
    });
    doomed.kill();
    let survivor = start_runner(&shards, &smtp, &["-c", "12"]);
    eventually("every job's mail", Duration::from_secs(60), || {
        expected.is_subset(&delivered(&smtp)).then_some(())
    });
    for (s, shard) in shards.iter().enumerate() {
        eventually(&format!("shard {s} drained"), WAIT, || {
            (shard.llen("queue:default") == 0 && shard.inprogress_jobs() == 0).then_some(())
        });
    }
    let recoveries = survivor.logs().matches("runner is gone").count();
    assert!(
        recoveries >= 3,
        "the survivor recovered the killed runner on each shard ({recoveries} recoveries logged)"
    );
}

#[test]
fn a_shard_that_goes_down_leaves_the_others_serving_and_its_jobs_run_when_it_is_back() {
    let mut shards = [Redis::start(), Redis::start_persistent(), Redis::start()];
    let smtp = SmtpSink::start();
    let runner = start_runner(&shards, &smtp, &[]);
    let first = push_via_ruby(&shards, 3);
    eventually("the first jobs' mail", WAIT, || first.is_subset(&delivered(&smtp)).then_some(()));

    // Shard 1 holds a scheduled job when it goes down.
    let due = jobrunner_tests::now() + 3.0;
    let held = job_json("EchoJob", json!(["ops@example.com", "held-by-shard1"]), "1eadbeef0000000000000001");
    let _: () = shards[1].query(&["ZADD", "schedule", &due.to_string(), &held]);
    let _: String = shards[1].query(&["SAVE"]);
    shards[1].kill();
    for (s, shard) in [(0, &shards[0]), (2, &shards[2])] {
        shard.push(
            "default",
            &job_json("EchoJob", json!(["ops@example.com", format!("while-down{s}")]), &format!("{s:024x}")),
        );
    }
    eventually("the live shards' jobs done while shard 1 is down", WAIT, || {
        let got = delivered(&smtp);
        (got.contains("while-down0") && got.contains("while-down2")).then_some(())
    });
    assert!(runner.logs().contains("runner started"), "still serving");

    shards[1].restart();
    eventually("shard 1's job done once it is back", Duration::from_secs(60), || {
        delivered(&smtp).contains("held-by-shard1").then_some(())
    });
    assert!(
        runner.logs().lines().filter(|l| l.contains("ERROR")).all(|l| !l.contains("panicked")),
        "no panic"
    );
}

#[test]
fn the_dashboard_and_metrics_show_each_shard_and_the_totals() {
    let shards = [Redis::start(), Redis::start(), Redis::start()];
    let smtp = SmtpSink::start();
    let runner = start_runner(&shards, &smtp, &[]);
    // 1, 2 and 3 jobs done on shards 0, 1 and 2; then 4 waiting on shard 1
    // in a queue the runner doesn't serve.
    for (s, shard) in shards.iter().enumerate() {
        for i in 0..=s {
            shard.push(
                "default",
                &job_json(
                    "EchoJob",
                    json!(["ops@example.com", format!("s{s}-{i}")]),
                    &format!("{s}{i:023x}"),
                ),
            );
        }
        eventually(&format!("shard {s}'s jobs done"), WAIT, || (processed(shard) == s + 1).then_some(()));
    }
    for i in 0..4 {
        shards[1].push(
            "unserved",
            &job_json("EchoJob", json!(["ops@example.com", "later"]), &format!("ff{i:022x}")),
        );
    }
    let url = runner.dashboard_url();
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = ureq::get(&format!("{url}{path}"));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.call().unwrap_or_else(|e| panic!("GET {path}: {e}")).into_body().read_to_string().unwrap()
    };
    let processed_in = |body: &str| -> u64 {
        let stats: serde_json::Value = serde_json::from_str(body).unwrap();
        stats["stats"]["processed"].as_u64().unwrap_or_else(|| panic!("no processed in {body}"))
    };

    assert_eq!(processed_in(&get("/api/stats", None)), 1, "the first shard by default");
    assert_eq!(processed_in(&get("/api/stats?shard=2", None)), 3);
    // The picker sets a cookie every page then follows.
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(0).build().into();
    let picked = agent.get(&format!("{url}/shard/1?back=/queues")).call().expect("the picker answers");
    assert_eq!(picked.headers().get("location").unwrap(), "/queues");
    let cookie =
        picked.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(cookie, "shard=1");
    assert_eq!(processed_in(&get("/api/stats", Some(&cookie))), 2);
    assert!(get("/queues", Some(&cookie)).contains("unserved"), "the queues page shows shard 1's queues");
    assert!(!get("/queues", None).contains("unserved"), "and shard 0's without the cookie");
    let offside = ureq::get(&format!("{url}/api/stats?shard=3")).call();
    assert!(matches!(offside, Err(ureq::Error::StatusCode(400))), "{offside:?}");

    // The overview: a row per shard and the totals.
    let overview = get("/", None);
    assert!(overview.contains("Shards") && overview.contains("Total"), "the shards table");
    assert!(overview.contains(r#"<td class="num">6</td>"#), "6 processed in all:\n{overview}");

    let metrics = get("/metrics", None);
    assert!(metrics.contains(r#"jobrunner_queue_size{queue="unserved"} 4"#), "totals:\n{metrics}");
    let per_shard = [r#"{queue="unserved",shard="1"} 4"#, r#"{shard="1",queue="unserved"} 4"#];
    assert!(
        per_shard.iter().any(|labels| metrics.contains(&format!("jobrunner_shard_queue_size{labels}"))),
        "per shard:\n{metrics}"
    );
}
