//! What a plugin's requests can't do: reach a destination its policy
//! doesn't grant, reach a loopback, private or metadata address however
//! the URL spells it (a name, an IPv6 literal, a decimal number, a
//! redirect), hang past the policy's timeout, or pull a 1 GiB response
//! into the runner. Each refused request sends nothing: the receiver
//! sees no request.

use jobrunner_tests::webhooks::{self, LOOPBACK, WebhookApp, wait_in};
use jobrunner_tests::{Nginx, Receiver, Redis};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::Instant;

fn deliver(redis: &Redis, endpoint: u64, jid: &str) {
    webhooks::deliver(redis, endpoint, json!({"type": "ping"}), jid);
}

fn error_of(job: &Value) -> &str {
    job["error_message"].as_str().unwrap_or_default()
}

#[test]
fn a_destination_the_policy_does_not_grant_is_denied_and_gets_nothing() {
    let (redis, granted, other) = (Redis::start(), Nginx::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(1, format!("{}/hooks/ok", other.url))],
        std::slice::from_ref(&granted.url),
        LOOPBACK,
    );
    let runner = app.runner(&redis.url, "info", &[]);
    let jid = "0000000000000000000d0e01";
    deliver(&redis, 1, jid);
    let dead = wait_in(&redis, "dead", jid);
    assert!(error_of(&dead).contains("policy violation") && error_of(&dead).contains("not among"), "{dead}");
    assert!(runner.logs().contains("request refused by policy"), "{}", runner.logs());
    assert!(other.requests().is_empty() && granted.requests().is_empty());
    let metrics = runner.metrics();
    // The host label comes from the policy, never from the plugin's URL.
    assert!(
        metrics.contains(r#"jobrunner_http_requests_total{host="",plugin="webhook",result="denied"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(&format!("127.0.0.1:{}", other.port)), "{metrics}");
}

#[test]
fn loopback_private_and_metadata_addresses_are_refused_however_the_url_names_them() {
    let redis = Redis::start();
    let target = Nginx::start();
    let port = target.port;
    // A granted receiver that redirects to the target, which is not granted.
    let redirecting = Nginx::start_with(Receiver {
        redirect: format!("http://127.0.0.1:{port}/hooks/ok"),
        ..Receiver::default()
    });
    let cases = [
        (1, format!("http://localhost:{port}/hooks/ok"), "loopback"),
        (2, format!("http://[::1]:{port}/hooks/ok"), "loopback"),
        (3, format!("http://2130706433:{port}/hooks/ok"), "loopback"),
        (4, "http://169.254.169.254/latest/meta-data".to_string(), "link-local"),
        (5, format!("http://0.0.0.0:{port}/hooks/ok"), "unspecified"),
        (6, format!("{}/hooks/moved", redirecting.url), "not among"),
    ];
    let endpoints: Vec<(u64, String)> = cases.iter().map(|(id, url, _)| (*id, url.clone())).collect();
    // Each host is granted and no address named: the address check alone
    // refuses them.
    let granted: Vec<String> = cases[..5].iter().map(|(_, url, _)| origin(url)).collect();
    let strict = WebhookApp::new(&endpoints, &granted, "");
    let runner = strict.runner(&redis.url, "info", &[]);
    for (id, _, _) in &cases[..5] {
        deliver(&redis, *id, &format!("{id:024x}"));
    }
    for (id, url, why) in &cases[..5] {
        let dead = wait_in(&redis, "dead", &format!("{id:024x}"));
        assert!(error_of(&dead).contains("policy violation"), "{url}: {dead}");
        assert!(error_of(&dead).contains(why), "{url} refused for another reason: {dead}");
    }
    assert!(runner.logs().contains("not a public address"), "{}", runner.logs());
    drop(runner);

    // The redirecting receiver is granted, with 127.0.0.1 reachable; where
    // it redirects to is not granted, and the plugin's new request is
    // checked as any other.
    let lenient = WebhookApp::new(&endpoints, std::slice::from_ref(&redirecting.url), LOOPBACK);
    let _runner = lenient.runner(&redis.url, "info", &[]);
    let jid = format!("{:024x}", 6);
    deliver(&redis, 6, &jid);
    let dead = wait_in(&redis, "dead", &jid);
    assert!(error_of(&dead).contains(&format!("127.0.0.1:{port} is not among")), "{dead}");
    assert_eq!(redirecting.requests().len(), 1, "the redirect itself was fetched");
    assert!(target.requests().is_empty(), "the refused target got nothing: {:?}", target.requests());
}

/// `http://host:port` of a URL.
fn origin(url: &str) -> String {
    let after = url.find("://").unwrap() + 3;
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    url[..end].to_string()
}

#[test]
fn a_receiver_that_never_answers_is_given_up_on_at_the_policys_timeout() {
    let redis = Redis::start();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let app = WebhookApp::new(
        &[(1, format!("{url}/hooks"))],
        std::slice::from_ref(&url),
        &format!("{LOOPBACK}timeout_seconds = 2\n"),
    );
    // The job's own limit is far longer: the request's limit must end it.
    let _runner = app.runner(&redis.url, "info", &["--timeout", "120"]);
    let jid = "000000000000000000005173";
    let pushed = Instant::now();
    deliver(&redis, 1, jid);
    let retry = wait_in(&redis, "retry", jid);
    assert!(error_of(&retry).contains("Timeout"), "{retry}");
    assert!(pushed.elapsed().as_secs() < 25, "ended by the 2 s request timeout, not the job's 120 s");
}

#[test]
fn a_one_gigabyte_response_is_cut_at_the_cap() {
    let (redis, nginx) = (Redis::start(), Nginx::start());
    let app = WebhookApp::new(
        &[(1, format!("{}/hooks/big", nginx.url))],
        std::slice::from_ref(&nginx.url),
        &format!("{LOOPBACK}max_response_bytes = 1048576\n"),
    );
    let runner = app.runner(&redis.url, "info", &[]);
    let jid = "0000000000000000000b1600";
    deliver(&redis, 1, jid);
    let dead = wait_in(&redis, "dead", jid);
    assert!(error_of(&dead).contains("size cap"), "{dead}");
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", runner.pid().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(rss_kib < 512 * 1024, "the runner's peak memory was {rss_kib} KiB");
}
