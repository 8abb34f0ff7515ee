//! The dashboard as a user sees it, in real headless Chromium: the counts
//! on the overview, "Retry now" on a dead job, the plugins and their hashes,
//! job content shown as text; and `/metrics` as Prometheus reads it.
//!
//! One scenario feeds every test: an order that dies because the mail
//! server rejects it, then (server fixed) four orders and two welcome mails
//! that are delivered, and three jobs nobody handles that wait in the retry
//! set, one with a `<script>` in its arguments. The runner's scheduler is
//! slowed down so those retries stay put while the tests look at them.

use fantoccini::{Client, Locator};
use jobrunner_tests::{Browser, Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The jid of the order that dies.
const DEAD_JID: &str = "dead0000000000000000beef";
/// The jid of the job whose arguments carry a script.
const SCRIPT_JID: &str = "5c41970000000000000000aa";
/// What the hostile arguments try to run.
const SCRIPT: &str = "<script>window.__pwned = 1</script>";
const IMG: &str = "<img src=x onerror=window.__pwned=2>";

struct Scenario {
    redis: Redis,
    smtp: SmtpSink,
    runner: Runner,
}

fn order(id: u64, jid: &str) -> String {
    job_json("OrderCreateJob", json!([id, format!("buyer{id}@example.com")]), jid)
}

/// Runs the scenario and waits until every job has ended where it should.
fn scenario() -> Scenario {
    let (redis, mut smtp) = (Redis::start(), SmtpSink::start_with(&["-f", "RCPT"]));
    let options =
        RunnerOptions::plugins(&["order_created", "welcome_mail"]).args(&["--poll-interval", "3600"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);

    redis.push("default", &order(77, DEAD_JID));
    eventually("the rejected order in the dead set", WAIT, || {
        (redis.sorted_set("dead").len() == 1).then_some(())
    });

    smtp.restart_with(&[]);
    for id in 1..=4 {
        redis.push("default", &order(id, &format!("{id:024}")));
    }
    for (name, jid) in [("Ann", "0000000000000000000000a1"), ("Bob", "0000000000000000000000b2")] {
        let email = format!("{}@example.com", name.to_lowercase());
        redis.push("mailers", &job_json("WelcomeMailJob", json!([email, name]), jid));
    }
    smtp.wait_for(6);

    redis.push("default", &job_json("GhostJob", json!([1]), "0000000000000000000000c1"));
    redis.push("default", &job_json("GhostJob", json!([2]), "0000000000000000000000c2"));
    redis.push("default", &job_json("GhostJob", json!([SCRIPT, IMG]), SCRIPT_JID));
    eventually("three jobs in the retry set", WAIT, || (redis.sorted_set("retry").len() == 3).then_some(()));
    // A mail arrives before its job's outcome is recorded: wait for all ten.
    eventually("ten outcomes counted", WAIT, || {
        (redis.query::<Option<u64>>(&["GET", "stat:processed"]) == Some(10)).then_some(())
    });
    Scenario { redis, smtp, runner }
}

fn sha256_of(plugin: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(jobrunner_tests::plugin_wasm(plugin)).unwrap()))
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("finding {css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() {
    let Scenario { redis, smtp, runner } = scenario();
    let url = runner.dashboard_url();
    let browser = Browser::start();
    let client = browser.session().await;

    // The overview: 1 dead + 6 delivered + 3 retried = 10 processed, 4 failed.
    client.goto(&format!("{url}/")).await.unwrap();
    let expected = [
        ("processed", 10),
        ("failed", 4),
        ("busy", 0),
        ("enqueued", 0),
        ("retries", 3),
        ("scheduled", 0),
        ("dead", 1),
    ];
    for (stat, value) in expected {
        assert_eq!(text(&client, &format!("#stat-{stat}")).await, value.to_string(), "overview {stat}");
    }
    assert!(!text(&client, "#redis-version").await.is_empty());

    // Job content is text: the script shows and never runs.
    client.goto(&format!("{url}/retries")).await.unwrap();
    let args = text(&client, &format!("tr[data-jid='{SCRIPT_JID}'] td.args")).await;
    assert!(args.contains(SCRIPT) && args.contains(IMG), "arguments shown: {args}");
    let pwned = client.execute("return typeof window.__pwned", vec![]).await.unwrap();
    assert_eq!(pwned, json!("undefined"), "the job's arguments ran as script");

    // The plugins page lists both plugins with the SHA-256 of their files.
    client.goto(&format!("{url}/plugins")).await.unwrap();
    for plugin in ["order_created", "welcome_mail"] {
        let hash = text(&client, &format!("tr[data-plugin='{plugin}'] td.sha256")).await;
        assert_eq!(hash, sha256_of(plugin), "{plugin}'s hash");
    }
    // A refused file shows in the reload history with the reason.
    std::fs::write(runner.plugins_dir().join("broken.wasm"), b"not wasm").unwrap();
    runner.wait_for_log(&["plugin refused", "broken.wasm"], 1);
    client.goto(&format!("{url}/plugins")).await.unwrap();
    let refusal = text(&client, "table.history tr.refused").await;
    assert!(refusal.contains("broken.wasm") && refusal.contains("is not WebAssembly"), "{refusal}");

    // "Retry now" on the dead order: it leaves the dead set, runs, and mails.
    client.goto(&format!("{url}/dead")).await.unwrap();
    let row = client.find(Locator::Css(&format!("tr[data-jid='{DEAD_JID}']"))).await.unwrap();
    row.find(Locator::Css("button[name='one'][value^='retry|']")).await.unwrap().click().await.unwrap();
    eventually("the dead order to run and mail", WAIT, || {
        smtp.messages().into_iter().find(|m| m.rcpt == ["buyer77@example.com"])
    });
    assert!(redis.sorted_set("dead").is_empty(), "the order is still dead");
    client.goto(&format!("{url}/dead")).await.unwrap();
    assert!(client.find(Locator::Css(&format!("tr[data-jid='{DEAD_JID}']"))).await.is_err());
    // The mail is out before the outcome is counted: reload until it is.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        client.goto(&format!("{url}/")).await.unwrap();
        let processed = text(&client, "#stat-processed").await;
        if processed == "11" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "processed stayed at {processed}, not 11");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(text(&client, "#stat-dead").await, "0");
    client.close().await.unwrap();
}

/// Every sample of `/metrics`, parsed as Prometheus parses it, by name and
/// labels (sorted `k=v` pairs joined by commas).
fn scrape(url: &str) -> HashMap<(String, String), f64> {
    let body = ureq::get(&format!("{url}/metrics")).call().unwrap().into_body().read_to_string().unwrap();
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count)?,
                prometheus_parse::Value::Summary(_) => return None,
            };
            let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            Some(((sample.metric, labels.join(",")), value))
        })
        .collect()
}

#[test]
fn metrics_count_the_jobs_run() {
    let Scenario { redis: _redis, smtp: _smtp, runner } = scenario();
    let metrics = scrape(&runner.dashboard_url());
    let get = |name: &str, labels: &str| metrics.get(&(name.to_string(), labels.to_string())).copied();
    let order = "class=OrderCreateJob,plugin=order_created";
    assert_eq!(get("jobrunner_jobs_processed_total", order), Some(5.0));
    assert_eq!(get("jobrunner_jobs_failed_total", order), Some(1.0));
    assert_eq!(get("jobrunner_jobs_processed_total", "class=WelcomeMailJob,plugin=welcome_mail"), Some(2.0));
    assert_eq!(get("jobrunner_jobs_failed_total", "class=unhandled,plugin=none"), Some(3.0));
    assert_eq!(get("jobrunner_job_duration_seconds", order), Some(5.0), "histogram count");
    assert_eq!(get("jobrunner_mails_sent_total", "plugin=order_created"), Some(4.0));
    assert_eq!(get("jobrunner_mails_sent_total", "plugin=welcome_mail"), Some(2.0));
    assert_eq!(get("jobrunner_mails_failed_total", "kind=rejected,plugin=order_created"), Some(1.0));
    assert_eq!(get("jobrunner_plugin_loads_total", "plugin=order_created"), Some(1.0));
    assert_eq!(get("jobrunner_queue_size", "queue=default"), Some(0.0));
    assert_eq!(get("jobrunner_set_size", "set=retry"), Some(3.0));
    assert_eq!(get("jobrunner_set_size", "set=dead"), Some(1.0));
    assert_eq!(get("jobrunner_jobs_in_flight", ""), Some(0.0));
}

fn get_json(url: &str) -> Value {
    let body =
        ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}")).into_body().read_to_string();
    serde_json::from_str(&body.unwrap()).unwrap()
}

#[test]
fn every_view_is_json_and_actions_need_the_csrf_token() {
    let Scenario { redis, smtp: _smtp, runner } = scenario();
    let url = runner.dashboard_url();
    let stats = get_json(&format!("{url}/api/stats"));
    assert_eq!(stats["stats"]["dead"], 1);
    assert!(stats["redis"]["version"].as_str().is_some_and(|v| !v.is_empty()));
    let dead = get_json(&format!("{url}/api/dead"));
    let entry = &dead["items"][0];
    assert_eq!(entry["job"]["jid"], DEAD_JID);
    assert!(entry["job"]["error_message"].as_str().unwrap().contains("mail rejected"), "{entry}");
    let retries = get_json(&format!("{url}/api/retries"));
    assert_eq!(retries["total"], 3);
    let script_job =
        retries["items"].as_array().unwrap().iter().find(|e| e["job"]["jid"] == SCRIPT_JID).unwrap();
    assert_eq!(script_job["job"]["args"][0], SCRIPT);
    let plugins = get_json(&format!("{url}/api/plugins"));
    let names: Vec<&str> =
        plugins["plugins"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["order_created", "welcome_mail"]);
    assert_eq!(plugins["plugins"][0]["numbers"]["processed"], 5);
    assert_eq!(plugins["history"].as_array().unwrap().len(), 2, "two loads");
    let busy = get_json(&format!("{url}/api/busy"));
    assert_eq!(busy[0]["tag"], "jobrunner");
    let queues = get_json(&format!("{url}/api/queues"));
    assert!(queues.as_array().unwrap().iter().any(|q| q["name"] == "mailers"));
    let history = get_json(&format!("{url}/api/history?days=7"));
    assert_eq!(history.as_array().unwrap().last().unwrap()["processed"], 10);

    // A forged form (no token) changes nothing.
    let key = entry["key"].as_str().unwrap();
    let forged =
        ureq::post(&format!("{url}/dead/act")).send_form([("one", format!("delete|{key}").as_str())]);
    assert!(matches!(forged, Err(ureq::Error::StatusCode(403))), "{forged:?}");
    assert_eq!(redis.sorted_set("dead").len(), 1);

    // With the token: kill two checked retries, then delete every dead job.
    let (cookie, token) = csrf(&format!("{url}/retries"));
    let keys: Vec<&str> =
        retries["items"].as_array().unwrap()[..2].iter().map(|e| e["key"].as_str().unwrap()).collect();
    let form = [("csrf", token.as_str()), ("checked", "kill"), ("key", keys[0]), ("key", keys[1])];
    ureq::post(&format!("{url}/retries/act")).header("Cookie", &cookie).send_form(form).unwrap();
    assert_eq!((redis.sorted_set("retry").len(), redis.sorted_set("dead").len()), (1, 3));
    // Killing every dead job is not offered, and answers at once.
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(10))).build().into();
    let form = [("csrf", token.as_str()), ("all", "kill")];
    let refused = agent.post(&format!("{url}/dead/act")).header("Cookie", &cookie).send_form(form);
    assert!(matches!(refused, Err(ureq::Error::StatusCode(400))), "{refused:?}");
    assert_eq!(redis.sorted_set("dead").len(), 3);
    // Killing every retry ends, with each moved once.
    let form = [("csrf", token.as_str()), ("all", "kill")];
    agent.post(&format!("{url}/retries/act")).header("Cookie", &cookie).send_form(form).unwrap();
    assert_eq!((redis.sorted_set("retry").len(), redis.sorted_set("dead").len()), (0, 4));
    let form = [("csrf", token.as_str()), ("all", "delete")];
    ureq::post(&format!("{url}/dead/act")).header("Cookie", &cookie).send_form(form).unwrap();
    assert!(redis.sorted_set("dead").is_empty());
}

#[test]
fn other_addresses_need_credentials() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let plugins = tempfile::tempdir().unwrap();
    let plugins = plugins.path().to_str().unwrap();
    let open = std::process::Command::new(jobrunner_tests::runner_bin())
        .args(["--plugins", plugins, "--redis", &redis.url, "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(!open.status.success() && stderr.contains("--http-auth"), "{stderr}");

    let token = "a-long-enough-token-for-tests";
    let options =
        RunnerOptions::plugins(&["order_created"]).args(&["--http", "0.0.0.0:0", "--http-token", token]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let port = runner.dashboard_url().rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/api/stats");
    assert!(matches!(ureq::get(&url).call(), Err(ureq::Error::StatusCode(401))));
    let authorized = ureq::get(&url).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    assert_eq!(authorized.status(), 200);
}

#[test]
fn json_logs_carry_the_fields() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created"]).args(&["--log-format", "json"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push("default", &order(5, "000000000000000000000005"));
    let line = runner.wait_for_log(&["mail sent"], 1).remove(0);
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(event["message"], "mail sent");
    assert_eq!(event["plugin"], "order_created");
    assert_eq!(event["jid"], "000000000000000000000005");
    assert_eq!(event["level"], "INFO");
}

/// The CSRF cookie a page sets, as `(Cookie header, token)`.
fn csrf(page: &str) -> (String, String) {
    let response = ureq::get(page).call().unwrap();
    let cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a CSRF cookie");
    let pair = cookie.split(';').next().unwrap().to_string();
    let token = pair.split_once('=').unwrap().1.to_string();
    (pair, token)
}

#[test]
fn busy_and_queue_pages() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let url = runner.dashboard_url();

    // A running job shows with the plugin and version performing it.
    let slow = "0000000000000000000005e0";
    redis.push("default", &job_json("SlowJob", json!([8000, "a@example.com", "slow"]), slow));
    let work = eventually("the slow job on the busy list", WAIT, || {
        let busy = get_json(&format!("{url}/api/busy"));
        busy[0]["jobs"].as_array()?.iter().find(|w| w["job"]["jid"] == slow).cloned()
    });
    assert_eq!(work["job"]["class"], "SlowJob");
    assert!(work["plugin"].as_str().unwrap().starts_with("misbehave "), "{work}");
    let page = ureq::get(&format!("{url}/busy")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(page.contains("SlowJob") && page.contains("misbehave "), "{page}");

    // A queue nobody serves pages 25 jobs at a time; one can be deleted.
    let jobs: Vec<String> = (0..30)
        .map(|i| job_json("EchoJob", json!([format!("p{i}@example.com")]), &format!("{i:024x}")))
        .collect();
    redis.push_many("parked", &jobs);
    let second = get_json(&format!("{url}/api/queues/parked?page=2"));
    assert_eq!((second["total"].as_u64(), second["items"].as_array().unwrap().len()), (Some(30), 5));
    let (cookie, token) = csrf(&format!("{url}/queues/parked"));
    let raw = second["items"][0]["raw"].as_str().unwrap();
    let deleted = ureq::post(&format!("{url}/queues/parked/delete"))
        .header("Cookie", &cookie)
        .send_form([("csrf", token.as_str()), ("payload", raw)])
        .unwrap();
    assert_eq!(deleted.status(), 200, "redirected back to the queue");
    assert_eq!(redis.llen("queue:parked"), 29);

    // The Busy page's Quiet button reaches the runner through Redis.
    let identity = get_json(&format!("{url}/api/busy"))[0]["identity"].as_str().unwrap().to_string();
    let (cookie, token) = csrf(&format!("{url}/busy"));
    ureq::post(&format!("{url}/busy/signal"))
        .header("Cookie", &cookie)
        .send_form([("csrf", token.as_str()), ("identity", identity.as_str()), ("signal", "TSTP")])
        .unwrap();
    eventually("the runner to report quiet", WAIT, || {
        (get_json(&format!("{url}/api/busy"))[0]["quiet"] == true).then_some(())
    });
}

#[test]
fn basic_auth_and_the_buttons_clear_add_to_queue_and_retry_now() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["--http-auth", "ops:s3cret-pass"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let url = runner.dashboard_url();
    // base64("ops:s3cret-pass")
    let auth = "Basic b3BzOnMzY3JldC1wYXNz";
    assert!(matches!(ureq::get(&format!("{url}/api/stats")).call(), Err(ureq::Error::StatusCode(401))));
    let wrong = ureq::get(&format!("{url}/api/stats")).header("Authorization", "Basic b3BzOm5vcGU=").call();
    assert!(matches!(wrong, Err(ureq::Error::StatusCode(401))), "{wrong:?}");
    let get = |path: &str| ureq::get(&format!("{url}{path}")).header("Authorization", auth).call().unwrap();
    let json = |path: &str| -> Value {
        serde_json::from_str(&get(path).into_body().read_to_string().unwrap()).unwrap()
    };
    let page = get("/retries");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = cookie.split_once('=').unwrap().1.to_string();
    // Not following the redirect, which would drop the credentials.
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(0).build().into();
    let post = |path: &str, form: &[(&str, &str)]| {
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        let response = agent
            .post(&format!("{url}{path}"))
            .header("Authorization", auth)
            .header("Cookie", &cookie)
            .send_form(fields)
            .unwrap();
        assert_eq!(response.status(), 303, "{path}");
    };

    // Clear: a queue nobody serves is emptied.
    redis.push_many(
        "other",
        &(0..3).map(|i| job_json("EchoJob", json!([]), &format!("{i:024}"))).collect::<Vec<_>>(),
    );
    post("/queues/other/clear", &[]);
    assert_eq!(redis.llen("queue:other"), 0);

    // Add to queue: a job due in an hour runs now.
    let later = job_json("EchoJob", json!(["ops@example.com", "now, not later"]), "5c5c5c5c5c5c5c5c5c5c5c5c");
    let _: () = redis.query(&["ZADD", "schedule", &(jobrunner_tests::now() + 3600.0).to_string(), &later]);
    let key = json("/api/scheduled")["items"][0]["key"].as_str().unwrap().to_string();
    post("/scheduled/act", &[("one", &format!("enqueue|{key}"))]);
    assert_eq!(smtp.wait_for(1)[0].subject, "now, not later");
    assert!(redis.sorted_set("schedule").is_empty());

    // Retry now: a failed job runs again at once.
    let flaky = "5d5d5d5d5d5d5d5d5d5d5d5d";
    redis.push("default", &job_json("FlakyJob", json!(["still failing"]), flaky));
    eventually("the job in the retry set", WAIT, || (redis.sorted_set("retry").len() == 1).then_some(()));
    let key = json("/api/retries")["items"][0]["key"].as_str().unwrap().to_string();
    post("/retries/act", &[("one", &format!("retry|{key}"))]);
    runner.wait_for_log(&["job failed", flaky], 2);
}

#[test]
fn forged_actions_planted_cookies_rebound_hosts_and_absurd_pages_are_refused_or_answered_cleanly() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["order_created"]));
    let url = runner.dashboard_url();
    let retry = job_json("GhostJob", json!([]), "f0f0f0f0f0f0f0f0f0f0f0f0");
    let _: () = redis.query(&["ZADD", "retry", &(jobrunner_tests::now() + 3600.0).to_string(), &retry]);
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(0).build().into();
    let post = |cookie: &str, token: &str, site: Option<&str>| -> u16 {
        let mut request = agent.post(&format!("{url}/retries/act")).header("Cookie", cookie);
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        match request.send_form([("csrf", token), ("all", "delete")]) {
            Ok(response) => response.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(err) => panic!("POST: {err}"),
        }
    };

    let page = ureq::get(&format!("{url}/retries")).call().unwrap();
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let (cookie, token) = csrf(&format!("{url}/retries"));
    // A valid cookie with another token; the right token from another site or a sibling one.
    assert_eq!(post(&cookie, &"0".repeat(token.len()), None), 403);
    assert_eq!(post(&cookie, &token, Some("cross-site")), 403);
    assert_eq!(post(&cookie, &token, Some("same-site")), 403);
    // A cookie the runner never issued (planted by another app on the same host) is no token at all.
    let planted = "a".repeat(32);
    assert_eq!(post(&format!("jobrunner_csrf={planted}"), &planted, None), 403);
    assert_eq!(redis.sorted_set("retry").len(), 1, "nothing changed");
    assert!(post(&cookie, &token, Some("same-origin")) < 400);
    assert!(redis.sorted_set("retry").is_empty(), "the real form works");

    // DNS rebinding: a page on another name that resolves to 127.0.0.1.
    let rebound = ureq::get(&format!("{url}/api/stats")).header("Host", "rebound.evil.example").call();
    assert!(matches!(rebound, Err(ureq::Error::StatusCode(421))), "{rebound:?}");
    let local = ureq::get(&format!("{url}/api/stats")).header("Host", "localhost").call().unwrap();
    assert_eq!(local.status(), 200);
    // A page past every list, and one past usize.
    for page in ["99999999", "18446744073709551615"] {
        let answer = ureq::get(&format!("{url}/api/retries?page={page}")).call();
        let status = answer.map(|r| r.status().as_u16()).unwrap_or_else(|e| match e {
            ureq::Error::StatusCode(code) => code,
            other => panic!("{other}"),
        });
        assert!(status == 200 || status == 400, "page={page}: {status}");
    }
    assert!(runner.logs().contains("dashboard listening") && !runner.logs().contains("panicked"));
}
