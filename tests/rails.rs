//! A Rails app's jobs, unchanged: `OrderCreateJob.perform_later(self)` in
//! an `after_create`, and `deliver_later` mails, enqueued by real
//! ActiveRecord, ActiveJob and ActionMailer (`scripts/shop/app.rb`) and
//! performed by plugins that read the app's rows through `records`, from
//! SQLite and from a real PostgreSQL server.

use jobrunner_tests::{
    Mail, MariaDb, Postgres, Redis, Runner, RunnerOptions, Shop, SmtpSink, WAIT, eventually,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// A runner with the shop's plugins, reading the shop's database.
fn runner(redis: &Redis, smtp: &SmtpSink, shop: &Shop, extra: &[&str]) -> Runner {
    let mut options = RunnerOptions::plugins(&["order_created", "shop_mailers", "hostile"])
        .args(&["--database", &shop.runner_database])
        .args(extra);
    // The commit race's second looks are debug lines.
    options.log = "info,jobrunner::worker=debug,jobrunner::plugin::records_host=debug";
    Runner::start(&redis.url, &smtp.url, options)
}

fn with_subject<'a>(mails: &'a [Mail], part: &str) -> &'a Mail {
    mails
        .iter()
        .find(|m| m.subject.contains(part))
        .unwrap_or_else(|| panic!("no mail about {part:?} in {mails:#?}"))
}

fn assert_order_mail(mail: &Mail, order_id: &str) {
    assert_eq!(mail.rcpt, ["ann@example.com"]);
    assert!(mail.subject.contains(&format!("#{order_id}")), "{}", mail.subject);
    for line in ["Hello Ann", "2 x Tea at 2.50", "1 x Cake at 2.50", "Total: 7.50"] {
        assert!(mail.body.contains(line), "{line:?} missing from {}", mail.body);
    }
}

#[test]
fn after_create_job_and_deliver_later_mails_from_sqlite() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let _runner = runner(&redis, &smtp, &shop, &[]);
    let order_id = shop.ruby(
        r#"user, order = place_order
           UserMailer.with(user: user).welcome_email.deliver_later
           OrderMailer.confirmation(order).deliver_later
           puts order.id"#,
    );
    // Rails 5.2's parameterized DeliveryJob, for apps on old defaults.
    shop.ruby_with(
        r#"UserMailer.with(user: User.create!(email: "bo@example.com", name: "Bo")).welcome_email.deliver_later"#,
        &[("SHOP_DELIVERY_JOB", "old")],
    );
    let mails = smtp.wait_for(4);
    assert_order_mail(with_subject(&mails, "is confirmed"), &order_id);
    assert_order_mail(with_subject(&mails, "confirmation"), &order_id);
    let welcome = with_subject(&mails, "Welcome to the shop, Ann!");
    assert_eq!(welcome.rcpt, ["ann@example.com"]);
    assert!(welcome.body.contains("Your account for ann@example.com is ready"));
    assert_eq!(with_subject(&mails, "Welcome to the shop, Bo!").rcpt, ["bo@example.com"]);
    assert!(!mails.iter().any(|m| m.raw.contains("secret-hash")), "no sensitive column leaks into mail");
}

#[test]
fn the_same_on_postgres_with_a_scheduled_confirmation() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    let _runner = runner(&redis, &smtp, &shop, &[]);
    let order_id = shop.ruby(
        r#"user, order = place_order
           UserMailer.with(user: user).welcome_email.deliver_later
           OrderMailer.confirmation(order).deliver_later(wait: 4.seconds)
           puts order.id"#,
    );
    let queued_at = Instant::now();
    let scheduled = redis.sorted_set("schedule");
    assert_eq!(scheduled.len(), 1, "deliver_later(wait:) schedules the mail");
    assert_eq!(scheduled[0]["wrapped"], "ActionMailer::MailDeliveryJob");
    let first = smtp.wait_for(2);
    assert_order_mail(with_subject(&first, "is confirmed"), &order_id);
    assert_eq!(with_subject(&first, "Welcome to the shop, Ann!").rcpt, ["ann@example.com"]);
    let all = smtp.wait_for(3);
    assert!(queued_at.elapsed() >= Duration::from_secs(3), "the confirmation waited until it was due");
    assert_order_mail(with_subject(&all, "confirmation"), &order_id);
    assert_eq!(redis.query::<usize>(&["ZCARD", "retry"]), 0);
}

#[test]
fn an_order_whose_transaction_commits_late_is_mailed_soon_after_the_commit() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    let runner = runner(&redis, &smtp, &shop, &[]);
    // after_create enqueues, then the transaction sleeps 1 s before COMMIT.
    shop.ruby("place_order(commit_delay: 1)");
    let committed = Instant::now();
    let mail = smtp.wait_for(1).remove(0);
    let after_commit = committed.elapsed();
    assert!(mail.subject.contains("is confirmed"));
    assert!(after_commit < Duration::from_secs(5), "mailed {after_commit:?} after the commit");
    assert!(runner.logs().contains("record not found yet"), "the first look found nothing");
    assert_eq!(redis.query::<usize>(&["ZCARD", "retry"]), 0, "not counted as a failure");
    assert_eq!(redis.query::<Option<String>>(&["GET", "stat:failed"]), None);
}

#[test]
fn a_record_deleted_before_the_job_runs_is_retried_as_rails_would() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let _runner = runner(&redis, &smtp, &shop, &[]);
    let user_id = shop.ruby(
        r#"user = User.create!(email: "gone@example.com", name: "Gone")
           user.destroy
           UserMailer.with(user: user).welcome_email.deliver_later
           puts user.id"#,
    );
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_class"], "ActiveJob::DeserializationError");
    let message = retry["error_message"].as_str().unwrap();
    assert!(message.contains(&format!("Couldn't find User with id={user_id}")), "{message}");
    assert_eq!(retry["retry_count"], 0);
    assert_eq!(smtp.count(), 0);
}

#[test]
fn an_unknown_mailer_action_is_retried_naming_it() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let runner = runner(&redis, &smtp, &shop, &[]);
    shop.ruby(r#"UserMailer.goodbye_email(User.create!(email: "a@example.com")).deliver_later"#);
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_class"], "NoPluginError");
    assert_eq!(retry["error_message"], "no plugin handles class UserMailer#goodbye_email");
    runner.wait_for_log(&["job failed", "UserMailer#goodbye_email"], 1);
}

#[test]
fn the_policy_limits_reads_and_sql_in_names_or_values_gets_nothing_on_sqlite() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    policy_and_injection(&redis, &smtp, &shop, "7.5");
}

#[test]
fn the_policy_limits_reads_and_sql_in_names_or_values_gets_nothing_on_postgres() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    policy_and_injection(&redis, &smtp, &shop, "7.50");
}

/// A hostile plugin reads what its grant allows and nothing else, however
/// it spells names and values. `total` is how the database writes 7.50.
fn policy_and_injection(redis: &Redis, smtp: &SmtpSink, shop: &Shop, total: &str) {
    shop.ruby("place_order");
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        "[plugins.hostile]\nrecords = { User = [\"email\", \"name\"], Order = \"*\" }\n\
         [plugins.order_created]\nrecords = { Order = \"*\", User = \"*\", LineItem = \"*\" }\n",
    )
    .unwrap();
    let runner = runner(redis, smtp, shop, &["--policy", policy.path().to_str().unwrap()]);
    let calls = json!([
        {"find": ["User", "1", []]},
        {"find": ["User", "1", ["password_digest"]]},
        {"find": ["LineItem", "1", []]},
        {"find": ["User; DROP TABLE users", "1", []]},
        {"find_all_by": ["User", "email OR 1=1", "\"x\"", [], 10]},
        {"find_all_by": ["User", "email", "\"x' OR '1'='1\"", [], 10]},
        {"find": ["User", "1 OR 1=1", []]},
        {"locate": ["gid://shop/Order/1", ["id", "total"]]},
        {"locate": ["gid://shop/users/1", []]},
        {"find_batch": ["Order", "{}", null, ["total"], null, 2]},
        {"find_batch": ["User", "{\"password_digest\": \"x\"}", null, [], null, 10]},
        {"find_batch": ["Order", "{}", ["created_at) OR (1=1", "\"2020\"", null], [], null, 10]},
        {"find_batch": ["Order", "{}", null, [], "1 OR 1=1", 10]},
        {"find_batch": ["Order", "{}", null, [], null, 1001]},
        {"find_many": ["User", ["1", "2 OR 1=1"], []]},
        {"find_many": ["User", ["99", "1"], ["email"]]},
    ]);
    redis.push(
        "default",
        &jobrunner_tests::job_json("RecordsJob", json!([{"calls": calls}]), "a0a0a0a0a0a0a0a0a0a0a0a0"),
    );
    let lines = runner.wait_for_log(&["records 15:"], 1);
    let logs = runner.logs();
    let outcome = |i: usize| {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("records {i}:")))
            .unwrap_or_else(|| panic!("{lines:?}"));
        line[line.find(&format!("records {i}:")).unwrap()..].to_string()
    };
    assert!(outcome(0).contains(r#"ok {"id":1,"email":"ann@example.com","name":"Ann"}"#), "{}", outcome(0));
    assert!(
        outcome(1).contains("denied")
            && outcome(1).contains("password_digest")
            && outcome(1).contains("User")
    );
    assert!(outcome(2).contains("denied") && outcome(2).contains("LineItem"), "{}", outcome(2));
    assert!(
        outcome(3).contains("invalid") && outcome(3).contains("not a model class name"),
        "{}",
        outcome(3)
    );
    assert!(outcome(4).contains("invalid") && outcome(4).contains("no column"), "{}", outcome(4));
    assert!(outcome(5).contains("ok []"), "{}", outcome(5));
    assert!(outcome(6).contains("invalid") && outcome(6).contains("users.id"), "{}", outcome(6));
    assert!(outcome(7).contains(&format!(r#"ok {{"id":1,"total":{total}}}"#)), "{}", outcome(7));
    assert!(outcome(8).contains("invalid"), "{}", outcome(8));
    // Batches: the key is always read, and is where the next batch starts.
    assert!(
        outcome(9).contains(&format!(r#"ok [{{"id":1,"total":{total}}}] last=Some("1")"#)),
        "{}",
        outcome(9)
    );
    assert!(outcome(10).contains("denied") && outcome(10).contains("password_digest"), "{}", outcome(10));
    assert!(outcome(11).contains("invalid") && outcome(11).contains("no column"), "{}", outcome(11));
    assert!(outcome(12).contains("invalid") && outcome(12).contains("orders.id"), "{}", outcome(12));
    assert!(outcome(13).contains("invalid") && outcome(13).contains("1000"), "{}", outcome(13));
    assert!(outcome(14).contains("invalid") && outcome(14).contains("users.id"), "{}", outcome(14));
    assert!(outcome(15).contains(r#"ok [{"id":1,"email":"ann@example.com"}]"#), "{}", outcome(15));
    assert_eq!(shop.ruby("puts User.count"), "1", "the users table is intact");
    // The grant is the plugin's own: order_created still mails the order.
    shop.ruby("place_order(email: \"cy@example.com\", name: \"Cy\")");
    assert!(smtp.wait_for(2).iter().any(|mail| mail.rcpt == ["cy@example.com"]));
}

#[test]
fn the_database_stopped_mid_run_then_back_every_job_is_done() {
    let (redis, smtp, mut pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    let _runner = runner(&redis, &smtp, &shop, &[]);
    shop.ruby(
        r##"%w[ann bo cy].each do |name|
             user = User.create!(email: "#{name}@example.com", name: name)
             UserMailer.with(user: user).welcome_email.deliver_later(wait: 2.seconds)
           end"##,
    );
    pg.stop();
    let failed = eventually("the jobs to fail while the database is down", WAIT, || {
        let retries = redis.sorted_set("retry");
        (retries.len() == 3).then_some(retries)
    });
    assert!(
        failed.iter().all(|job| job["error_message"].as_str().unwrap().contains("records:")),
        "{failed:?}"
    );
    pg.restart();
    let mails = eventually("every welcome mail after the database is back", Duration::from_secs(90), || {
        let mails = smtp.messages();
        (mails.len() >= 3).then_some(mails)
    });
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.rcpt.clone()).collect();
    to.sort();
    assert_eq!(to, ["ann@example.com", "bo@example.com", "cy@example.com"], "each once");
    assert_eq!(redis.query::<usize>(&["ZCARD", "dead"]), 0);
}

#[test]
fn an_order_by_global_id_from_mariadb() {
    let (redis, smtp, db) = (Redis::start(), SmtpSink::start(), MariaDb::start());
    // The example schema as Rails' MySQL adapter creates it, and a user that
    // may only read.
    db.sql(
        "USE shop;
         CREATE TABLE users (id bigint PRIMARY KEY AUTO_INCREMENT, email varchar(255) NOT NULL,
                             name varchar(255), password_digest varchar(255));
         CREATE TABLE orders (id bigint PRIMARY KEY AUTO_INCREMENT, user_id bigint NOT NULL,
                              total decimal(10,2), created_at datetime(6) NOT NULL);
         CREATE TABLE line_items (id bigint PRIMARY KEY AUTO_INCREMENT, order_id bigint NOT NULL,
                                  name varchar(255) NOT NULL, quantity int NOT NULL, price decimal(10,2));
         INSERT INTO users VALUES (1, 'ann@example.com', 'Ann', '$2a$12$secret-hash');
         INSERT INTO orders VALUES (1, 1, 7.50, NOW(6));
         INSERT INTO line_items VALUES (1, 1, 'Tea', 2, 2.50), (2, 1, 'Cake', 1, 2.50);
         CREATE USER 'jobrunner'@'127.0.0.1' IDENTIFIED BY 'runner-secret';
         GRANT SELECT ON shop.* TO 'jobrunner'@'127.0.0.1';",
    );
    let mut options = RunnerOptions::plugins(&["order_created", "hostile"])
        .args(&["--database", &db.url("jobrunner", "runner-secret")]);
    options.log = "info";
    let runner = Runner::start(&redis.url, &smtp.url, options);
    // What Rails writes for `OrderCreateJob.perform_later(order)`.
    let payload = json!({
        "class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper", "wrapped": "OrderCreateJob",
        "queue": "default", "retry": true, "jid": "b1b1b1b1b1b1b1b1b1b1b1b1",
        "created_at": jobrunner_tests::now(), "enqueued_at": jobrunner_tests::now(),
        "args": [{"job_class": "OrderCreateJob", "job_id": "7d1c", "queue_name": "default", "priority": null,
                  "arguments": [{"_aj_globalid": "gid://shop/Order/1"}], "executions": 0,
                  "exception_executions": {}, "locale": "en", "timezone": "UTC",
                  "enqueued_at": "2026-11-28T12:00:00Z"}]
    });
    redis.push("default", &payload.to_string());
    assert_order_mail(&smtp.wait_for(1)[0], "1");
    let calls = json!([
        {"find": ["User", "1", ["password_digest"]]},
        {"find_all_by": ["User", "email", "\"x' OR '1'='1\"", [], 10]},
        {"find_all_by": ["User", "email", "\"x\\\\' OR 1=1 -- \"", [], 10]},
        {"find": ["User", "1 OR 1=1", []]},
    ]);
    redis.push(
        "default",
        &jobrunner_tests::job_json("RecordsJob", json!([{"calls": calls}]), "c2c2c2c2c2c2c2c2c2c2c2c2"),
    );
    runner.wait_for_log(&["records 3:"], 1);
    let logs = runner.logs();
    let outcome = |i: usize| logs.lines().find(|l| l.contains(&format!("records {i}:"))).unwrap().to_string();
    assert!(outcome(0).contains("denied") && outcome(0).contains("sensitive"), "{}", outcome(0));
    assert!(outcome(1).contains("ok []") && outcome(2).contains("ok []"), "{}\n{}", outcome(1), outcome(2));
    assert!(outcome(3).contains("invalid"), "{}", outcome(3));
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.users"), "1");
}
