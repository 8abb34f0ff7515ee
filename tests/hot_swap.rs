//! Plugins are replaced, refused, removed and restored while the runner
//! keeps running, without a job failing or getting lost.

use jobrunner_tests::{Mail, Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, plugin_wasm};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The subject templates of the two order_created builds.
const V1: &str = "Your order #{id} is confirmed";
const V2: &str = "Order #{id} received";

fn order_job(id: u64) -> String {
    json!({"class": "OrderCreateJob", "args": [id, "buyer@example.com"], "jid": format!("{id:024x}"),
           "queue": "default", "retry": true})
    .to_string()
}

fn only_order_created() -> RunnerOptions {
    RunnerOptions::plugins(&["order_created"])
}

/// Rewrites `target` in place, in two halves with a pause, like a slow copy.
fn write_in_place(target: &Path, source: &Path) {
    let bytes = std::fs::read(source).unwrap();
    let mut file = std::fs::File::create(target).unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
}

/// Writes a hidden temp file beside `target` and renames it into place.
fn write_then_rename(target: &Path, source: &Path) {
    let temp = target.with_file_name(".order_created.wasm.tmp");
    std::fs::copy(source, &temp).unwrap();
    std::fs::rename(&temp, target).unwrap();
}

fn sha256_prefix(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))[..12].to_string()
}

fn order_id(mail: &Mail) -> u64 {
    let line = mail.raw.lines().find_map(|l| l.strip_prefix("X-Order-Id: ")).expect("an X-Order-Id header");
    line.trim().parse().unwrap()
}

/// jid -> the sha256 prefix of the plugin build that performed it, from the log.
fn builds_by_jid(logs: &str) -> HashMap<String, String> {
    let field = |line: &str, start: &str, end: char| {
        let from = line.find(start)? + start.len();
        Some(line[from..].split(end).next()?.to_string())
    };
    logs.lines()
        .filter(|l| l.contains("job done"))
        .filter_map(|l| Some((field(l, "jid=\"", '"')?, field(l, "sha256=", ' ')?)))
        .collect()
}

#[test]
fn twenty_swaps_under_a_steady_stream_lose_and_fail_nothing() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, only_order_created().args(&["-c", "4"]));
    let builds = [plugin_wasm("order_created"), plugin_wasm("order_created_alt")];
    let templates = BTreeMap::from([(sha256_prefix(&builds[0]), V1), (sha256_prefix(&builds[1]), V2)]);
    let target = runner.plugin_path("order_created.wasm");

    let stop = AtomicBool::new(false);
    let pushed = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                redis.push("default", &order_job(id));
                id += 1;
                std::thread::sleep(Duration::from_millis(15));
            }
            id
        });
        for swap in 0..20 {
            let build = &builds[(swap + 1) % 2];
            if swap % 2 == 0 {
                write_in_place(&target, build)
            } else {
                write_then_rename(&target, build)
            }
            runner.wait_for_log(&["plugin loaded", "order_created.wasm"], swap + 2);
        }
        stop.store(true, Ordering::Relaxed);
        producer.join().unwrap()
    });

    let mails = eventually("every order's mail", Duration::from_secs(60), || {
        let mails = smtp.messages();
        (mails.len() as u64 >= pushed).then_some(mails)
    });
    let mut per_order: BTreeMap<u64, Vec<&Mail>> = BTreeMap::new();
    for mail in &mails {
        per_order.entry(order_id(mail)).or_default().push(mail);
    }
    assert_eq!(per_order.len() as u64, pushed, "every order got its mail");
    assert!(per_order.values().all(|m| m.len() == 1), "no order got two mails");
    assert!(redis.sorted_set("retry").is_empty() && redis.sorted_set("dead").is_empty(), "no job failed");

    let performed_by = builds_by_jid(&runner.logs());
    let mut seen = BTreeMap::new();
    for (id, mail) in per_order.iter().map(|(id, m)| (id, m[0])) {
        let build = &performed_by[&format!("{id:024x}")];
        let expected = templates[build].replace("{id}", &id.to_string());
        assert_eq!(mail.subject, expected, "order {id} was performed by build {build}");
        *seen.entry(build.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both builds served jobs: {seen:?}");
}

/// A job that started before a swap finishes on the build it started
/// with; a job taken after the swap runs on the new one. The new build is
/// the same component with a custom section appended: another file and
/// another sha256, the same behaviour.
#[test]
fn a_long_job_started_before_a_swap_finishes_on_the_old_build() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]).args(&["-c", "2"]));
    let old = plugin_wasm("misbehave");
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("misbehave.wasm");
    let mut bytes = std::fs::read(&old).unwrap();
    // A custom section (id 0): its size, its name's length and name, its bytes.
    bytes.extend_from_slice(&[0, 15, 5]);
    bytes.extend_from_slice(b"build2nd build");
    std::fs::write(&new, &bytes).unwrap();

    let long = "10e0000000000000000000a1";
    redis.push(
        "default",
        &jobrunner_tests::job_json("SlowJob", json!([3000, "ops@example.com", "long"]), long),
    );
    eventually("the long job on the runner's busy list", WAIT, || {
        let lists: Vec<String> = redis.query(&["KEYS", "*:work"]);
        lists.iter().any(|list| redis.query::<usize>(&["HLEN", list]) == 1).then_some(())
    });
    write_then_rename(&runner.plugin_path("misbehave.wasm"), &new);
    runner.wait_for_log(&["plugin loaded", "misbehave.wasm"], 2);
    let after = "10e0000000000000000000a2";
    redis.push("default", &jobrunner_tests::job_json("EchoJob", json!(["ops@example.com", "after"]), after));

    let mut subjects: Vec<String> = smtp.wait_for(2).into_iter().map(|m| m.subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["after", "long"]);
    let logs = runner.logs();
    let performed_by = builds_by_jid(&logs);
    assert_eq!(performed_by[long], sha256_prefix(&old), "the long job finished on the build it started with");
    assert_eq!(performed_by[after], sha256_prefix(&new), "the later job ran on the new build");
    let lines: Vec<&str> = logs.lines().collect();
    let swapped = lines.iter().rposition(|l| l.contains("plugin loaded")).unwrap();
    let long_done = lines.iter().position(|l| l.contains("job done") && l.contains(long)).unwrap();
    assert!(long_done > swapped, "the long job was still running at the swap:\n{logs}");
}

#[test]
fn bad_files_are_refused_and_the_old_version_keeps_serving() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, only_order_created());
    let target = runner.plugin_path("order_created.wasm");
    let serves_v1 = |id: u64| {
        redis.push("default", &order_job(id));
        let mails = smtp.wait_for(id as usize);
        assert!(mails.iter().any(|m| m.subject == V1.replace("{id}", &id.to_string())), "order {id}");
    };
    serves_v1(1);

    std::fs::write(&target, b"this is not a component").unwrap();
    let refused = runner.wait_for_log(&["plugin refused", "order_created.wasm"], 1);
    assert!(refused[0].contains("is not WebAssembly"), "{}", refused[0]);
    serves_v1(2);

    std::fs::copy(plugin_wasm("not_a_plugin"), &target).unwrap();
    let refused = runner.wait_for_log(&["plugin refused", "order_created.wasm"], 2);
    assert!(refused[1].contains("doesn't export the jobrunner:plugin/job-plugin world"), "{}", refused[1]);
    serves_v1(3);

    std::fs::copy(plugin_wasm("bad_describe"), runner.plugin_path("bad_describe.wasm")).unwrap();
    let refused = runner.wait_for_log(&["plugin refused", "bad_describe.wasm"], 1);
    assert!(refused[0].contains("describe() failed"), "{}", refused[0]);
    assert!(refused[0].contains("bad_describe cannot describe itself"), "{}", refused[0]);

    std::fs::copy(plugin_wasm("order_created_alt"), runner.plugin_path("copycat.wasm")).unwrap();
    let refused = runner.wait_for_log(&["plugin refused", "copycat.wasm"], 1);
    assert!(
        refused[0].contains("class OrderCreateJob is already served by plugin order_created"),
        "{}",
        refused[0]
    );
    serves_v1(4);
}

#[test]
fn deleting_a_plugin_unregisters_it_and_restoring_it_runs_the_waiting_jobs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, only_order_created());
    let target = runner.plugin_path("order_created.wasm");
    std::fs::remove_file(&target).unwrap();
    runner.wait_for_log(&["plugin removed", "order_created"], 1);

    redis.push("default", &order_job(7));
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_message"], "no plugin handles class OrderCreateJob");

    std::fs::copy(plugin_wasm("order_created"), &target).unwrap();
    let reloaded = runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 2);
    assert!(reloaded[1].contains("code=cache"), "a file seen before loads from the cache: {}", reloaded[1]);
    // The retry is due 15 to 25 s after the failure.
    let mail = eventually("the waiting job's mail", Duration::from_secs(60), || smtp.messages().pop());
    assert_eq!(mail.subject, "Your order #7 is confirmed");
}

#[test]
fn a_restart_loads_known_plugins_from_the_cache() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, only_order_created());
    let first = runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 1);
    assert!(first[0].contains("code=compiled"), "{}", first[0]);
    runner.restart();
    let second = runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 2);
    assert!(second[1].contains("code=cache"), "{}", second[1]);
    redis.push("default", &order_job(3));
    assert_eq!(smtp.wait_for(1)[0].subject, "Your order #3 is confirmed");
}

#[test]
fn with_watch_false_a_file_dropped_in_is_left_alone() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, only_order_created().args(&["--watch", "false"]));
    runner.wait_for_log(&["plugin loaded", "order_created"], 1);
    std::fs::copy(plugin_wasm("welcome_mail"), runner.plugin_path("welcome_mail.wasm")).unwrap();
    // Three seconds, ten times the settle time of a watching runner.
    let until = jobrunner_tests::now() + 3.0;
    jobrunner_tests::never_before(until, "welcome_mail was loaded", || {
        !runner.logs().contains("welcome_mail")
    });
    redis.push("default", &order_job(1));
    assert_eq!(smtp.wait_for(1).len(), 1, "the plugin it started with still serves");
}

#[test]
fn with_no_cache_nothing_is_kept_and_a_restart_compiles_again() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // Where the code cache would go by default.
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().display().to_string();
    let options = only_order_created()
        .args(&["--no-cache"])
        .env("HOME", &home_path)
        .env("XDG_CACHE_HOME", &format!("{home_path}/.cache"));
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    let first = runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 1);
    assert!(first[0].contains("code=compiled"), "{}", first[0]);
    runner.restart();
    let second = runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 2);
    assert!(second[1].contains("code=compiled"), "nothing was kept, so it compiles again: {}", second[1]);
    redis.push("default", &order_job(5));
    assert_eq!(smtp.wait_for(1)[0].subject, "Your order #5 is confirmed");
    let kept: Vec<_> = walk(home.path());
    assert!(kept.is_empty(), "files written with --no-cache: {kept:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        match entry.file_type().unwrap().is_dir() {
            true => files.extend(walk(&entry.path())),
            false => files.push(entry.path()),
        }
    }
    files
}

#[test]
fn a_new_file_written_slowly_loads_once_it_is_whole() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, only_order_created());
    runner.wait_for_log(&["plugin loaded", "order_created.wasm"], 1);
    // Eight pieces 150 ms apart: each pause shorter than the settle time,
    // the whole write four times longer.
    let bytes = std::fs::read(plugin_wasm("welcome_mail")).unwrap();
    let mut file = std::fs::File::create(runner.plugin_path("welcome_mail.wasm")).unwrap();
    for piece in bytes.chunks(bytes.len().div_ceil(8)) {
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(file);
    runner.wait_for_log(&["plugin loaded", "welcome_mail.wasm"], 1);
    let until = jobrunner_tests::now() + 2.0;
    jobrunner_tests::never_before(until, "a second load or a refusal", || {
        let logs = runner.logs();
        logs.matches("welcome_mail.wasm").count() == 1 && !logs.contains("plugin refused")
    });
}
