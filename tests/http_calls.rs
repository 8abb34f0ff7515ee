//! Signed webhooks from the example `webhook` plugin to nginx, as a
//! Rails app's `WebhookDeliveryJob.perform_later(endpoint, event)` would
//! ask: what arrives, what is retried and when, what goes to the dead set,
//! and the same idempotency key when a killed runner's job runs again.

use jobrunner_tests::webhooks::{
    self, HOOKS_TOKEN, LOOPBACK, WEBHOOK_SECRET, WebhookApp, signature_verifies, wait_in,
};
use jobrunner_tests::{Certs, Nginx, Receiver, Redis, WAIT, eventually, now};
use serde_json::{Value, json};
use std::net::TcpListener;

/// The event as ActiveJob serializes a hash with symbol keys.
fn event() -> Value {
    json!({"type": "order.paid", "data": {"order_id": 42, "_aj_symbol_keys": ["order_id"]},
           "_aj_symbol_keys": ["type", "data"]})
}

fn deliver(redis: &Redis, endpoint: u64, jid: &str) {
    webhooks::deliver(redis, endpoint, event(), jid);
}

/// Waits until nothing is queued, running or in the retry set.
fn wait_done(redis: &Redis) {
    eventually("the job to finish", WAIT, || {
        let idle = redis.jobs_left("default") == 0 && redis.inprogress_jobs() == 0;
        (idle && redis.sorted_set("retry").is_empty()).then_some(())
    });
}

#[test]
fn a_signed_delivery_arrives_with_the_token_attached_and_neither_secret_in_any_log_line() {
    let (redis, nginx) = (Redis::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(1, format!("{}/hooks/ok", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let runner = app.runner(&redis.url, "trace", &[]);
    let jid = "a1b2c3d4e5f6a7b8c9d0e1f2";
    deliver(&redis, 1, jid);
    let got = nginx.wait_for(1).remove(0);
    wait_done(&redis);
    assert_eq!((got.method.as_str(), got.uri.as_str(), got.status), ("POST", "/hooks/ok", 200));
    let body: Value = serde_json::from_str(&got.body).expect("a JSON body");
    assert_eq!(
        body,
        json!({"type": "order.paid", "data": {"order_id": 42}}),
        "the event without ActiveJob's markers"
    );
    assert_eq!(got.webhook_id, format!("msg_{jid}"));
    assert!((now() - got.webhook_timestamp.parse::<f64>().unwrap()).abs() < 60.0);
    assert!(signature_verifies(&got.webhook_signature, &got.webhook_id, &got.webhook_timestamp, &got.body));
    assert_eq!(got.authorization, format!("Bearer {HOOKS_TOKEN}"));
    assert_eq!(got.idempotency_key, format!("{jid}-1"));
    let metrics = runner.metrics();
    let counted = format!(
        "jobrunner_http_requests_total{{host=\"{}\",plugin=\"webhook\",result=\"2xx\"}} 1",
        nginx.url
    );
    assert!(metrics.contains(&counted), "{counted} not in:\n{metrics}");
    assert!(metrics.contains("jobrunner_http_request_duration_seconds_count{"), "{metrics}");
    assert!(!metrics.contains(HOOKS_TOKEN));
    let logs = runner.logs();
    assert!(logs.contains("delivered to"), "{logs}");
    assert!(logs.lines().count() > 50, "trace logging is on");
    let secret_tail = &WEBHOOK_SECRET["whsec_".len()..];
    for (line_no, line) in logs.lines().enumerate() {
        assert!(
            !line.contains(HOOKS_TOKEN) && !line.contains(secret_tail),
            "line {line_no} shows a secret: {line}"
        );
    }
}

#[test]
fn deliveries_to_one_destination_share_a_kept_alive_connection() {
    let (redis, nginx) = (Redis::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(1, format!("{}/hooks/ok", nginx.url)), (2, format!("{}/hooks/missing", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let _runner = app.runner(&redis.url, "info", &[]);
    for (n, (endpoint, jid)) in
        [(1, "00000000000000000000aa01"), (2, "00000000000000000000aa02"), (1, "00000000000000000000aa03")]
            .into_iter()
            .enumerate()
    {
        deliver(&redis, endpoint, jid);
        nginx.wait_for(n + 1);
    }
    let requests = nginx.wait_for(3);
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 404, 200]);
    let connections: Vec<u64> = requests.iter().map(|r| r.connection).collect();
    assert!(
        connections.iter().all(|c| *c == connections[0]),
        "one connection for three requests in a row, a 404 included: {connections:?}"
    );
}

#[test]
fn a_500_is_retried_and_the_rerun_repeats_the_idempotency_key() {
    let (redis, nginx) = (Redis::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(7, format!("{}/hooks/flaky", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let _runner = app.runner(&redis.url, "info", &[]);
    let jid = "00000000000000000000f1a7";
    deliver(&redis, 7, jid);
    let retry = wait_in(&redis, "retry", jid);
    assert!(retry["error_message"].as_str().unwrap().contains("answered 500"), "{retry}");
    nginx.heal();
    // Due now instead of in 15 to 25 s: as the Web UI's "retry now".
    let members: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "-1"]);
    redis.query::<i64>(&["ZADD", "retry", "0", &members[0]]);
    let requests = nginx.wait_for(2);
    wait_done(&redis);
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(requests[0].idempotency_key, format!("{jid}-1"));
    assert_eq!(requests[1].idempotency_key, requests[0].idempotency_key);
    assert_eq!(requests[1].webhook_id, requests[0].webhook_id);
}

#[test]
fn a_429_with_retry_after_schedules_the_retry_no_sooner_and_a_404_goes_to_the_dead_set() {
    let (redis, nginx) = (Redis::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(1, format!("{}/hooks/busy", nginx.url)), (2, format!("{}/hooks/missing", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let _runner = app.runner(&redis.url, "info", &[]);
    let (busy, missing) = ("0000000000000000000b0529", "0000000000000000000e0404");
    deliver(&redis, 1, busy);
    deliver(&redis, 2, missing);
    let scores: Vec<(String, f64)> = {
        wait_in(&redis, "retry", busy);
        redis.query(&["ZRANGE", "retry", "0", "-1", "WITHSCORES"])
    };
    let retry: Value = serde_json::from_str(&scores[0].0).unwrap();
    let failed_at = retry["failed_at"].as_f64().unwrap();
    assert!(
        scores[0].1 >= failed_at + 120.0,
        "due {:.0}s after the failure, not 120",
        scores[0].1 - failed_at
    );
    assert!(retry["error_message"].as_str().unwrap().contains("answered 429"), "{retry}");
    let dead = wait_in(&redis, "dead", missing);
    assert!(dead["error_message"].as_str().unwrap().contains("answered 404"), "{dead}");
    assert_eq!(nginx.requests().len(), 2, "each sent once");
}

#[test]
fn a_job_killed_during_its_request_repeats_the_same_idempotency_key_when_run_again() {
    let redis = Redis::start();
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let receiver = Receiver { hang: hang.local_addr().unwrap().port(), ..Receiver::default() };
    let nginx = Nginx::start_with(receiver);
    let app = WebhookApp::new(
        &[(3, format!("{}/hooks/hang", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let mut runner = app.runner(&redis.url, "info", &[]);
    let jid = "0000000000000000000c0de5";
    deliver(&redis, 3, jid);
    // The request is at the receiver: kill the runner before it answers.
    hang.set_nonblocking(true).unwrap();
    let _held = eventually("the request at the receiver", WAIT, || hang.accept().ok());
    runner.kill();
    nginx.heal();
    runner.restart();
    wait_done(&redis);
    // nginx logs the first request once it sees its client gone (499).
    let requests = nginx.wait_for(2);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().any(|r| r.status == 200), "{requests:?}");
    for request in &requests {
        assert_eq!(request.idempotency_key, format!("{jid}-1"), "the rerun repeats the key");
        assert_eq!((&request.webhook_id, &request.body), (&requests[0].webhook_id, &requests[0].body));
    }
}

#[test]
fn https_is_trusted_through_the_policys_ca_file_and_not_without_it() {
    let (redis, certs) = (Redis::start(), Certs::generate());
    let nginx = Nginx::start_tls(&certs);
    let trusted = WebhookApp::new(
        &[(1, format!("{}/hooks/ok", nginx.url))],
        &[],
        &format!(
            "allowed_private_addresses = [\"127.0.0.1\"]\n\n[[plugins.webhook.http.destinations]]\n\
             url = \"{}\"\nmethods = [\"POST\"]\nca_file = \"{}\"\n",
            nginx.url,
            certs.path("ca.crt").display()
        ),
    );
    let mut runner = trusted.runner(&redis.url, "info", &[]);
    deliver(&redis, 1, "000000000000000000000715");
    let got = nginx.wait_for(1).remove(0);
    assert_eq!((got.status, got.authorization.as_str()), (200, ""), "delivered; no header attached there");
    wait_done(&redis);
    runner.terminate();

    // Mozilla's roots don't know the test's CA: the job waits for a retry.
    let untrusted = WebhookApp::new(
        &[(1, format!("{}/hooks/ok", nginx.url))],
        std::slice::from_ref(&nginx.url),
        LOOPBACK,
    );
    let _runner = untrusted.runner(&redis.url, "info", &[]);
    let jid = "000000000000000000000716";
    deliver(&redis, 1, jid);
    let retry = wait_in(&redis, "retry", jid);
    assert!(retry["error_message"].as_str().unwrap().contains("Tls"), "{retry}");
    assert_eq!(nginx.requests().len(), 1, "nothing more arrived");
}

/// The Python and JavaScript examples deliver the same signed event.
#[test]
fn the_python_and_javascript_examples_deliver_a_signed_event() {
    let _alone = jobrunner_tests::alone();
    for plugin in ["webhook_py", "webhook_js"] {
        let (redis, nginx) = (Redis::start(), Nginx::start());
        let app = WebhookApp::with_plugin(
            plugin,
            &[(1, format!("{}/hooks/ok", nginx.url)), (2, format!("{}/hooks/missing", nginx.url))],
            std::slice::from_ref(&nginx.url),
            LOOPBACK,
        );
        let _runner = app.runner(&redis.url, "info", &[]);
        let jid = format!("{:0>24}", plugin.len());
        deliver(&redis, 1, &jid);
        let got = nginx.wait_for(1).remove(0);
        wait_done(&redis);
        let body: Value = serde_json::from_str(&got.body).expect("a JSON body");
        assert_eq!(body, json!({"type": "order.paid", "data": {"order_id": 42}}), "{plugin}");
        assert_eq!(got.webhook_id, format!("msg_{jid}"), "{plugin}");
        assert!(
            signature_verifies(&got.webhook_signature, &got.webhook_id, &got.webhook_timestamp, &got.body),
            "{plugin}"
        );
        assert_eq!(
            (got.authorization, got.idempotency_key),
            (format!("Bearer {HOOKS_TOKEN}"), format!("{jid}-1"))
        );
        let dead_jid = format!("{:f>24}", plugin.len());
        deliver(&redis, 2, &dead_jid);
        let dead = wait_in(&redis, "dead", &dead_jid);
        assert!(dead["error_message"].as_str().unwrap().contains("answered 404"), "{plugin}: {dead}");
    }
}
