//! The test harness: real parts, started on free ports in their own temp
//! directories, and always stopped (each is killed when dropped, which
//! also happens when a test panics).
//!
//! - [`Redis`]: a `redis-server`.
//! - [`SmtpSink`]: Postfix's `smtp-sink`, writing each message to a file.
//! - [`TlsSmtp`]: smtp-sink behind `stunnel4`, with implicit TLS and STARTTLS.
//! - [`Postgres`]: a PostgreSQL server, for the app database of the Rails tests.
//! - [`MariaDb`]: a MariaDB server, for `records` over MySQL's dialect.
//! - [`Shop`]: the example Rails app (`scripts/shop/app.rb`), run by Ruby.
//! - [`ruby`], [`active_job`]: Sidekiq's and Rails' own Ruby code.
//! - [`Runner`]: the `runner` binary, with a plugins directory of its own.
//! - [`Browser`]: headless Chromium over WebDriver, for the dashboard.
//! - [`Forms`]: the dashboard's forms posted with their CSRF token.
//! - [`Nginx`]: nginx receiving plugins' HTTP requests, logging each.
//! - [`Certs`]: a CA and certificates made with `openssl`, for TLS.
//! - [`Sentinel`]: a Redis master, its replica and a sentinel.
//! - [`FaultyLink`]: a proxy in front of a server, adding latency.
//! - [`PacketDrop`]: nftables dropping every packet to and from a port, or a share of them.
//! - [`eventually`]: polling for a condition with a deadline; [`never_before`]:
//!   polling that something stays undone through a whole window.
//! - [`job_json`], [`now`]: jobs as Sidekiq's client writes them.

mod browser;
mod faulty_link;
mod forms;
mod gallery;
mod mariadb;
mod nginx;
mod packet_drop;
mod postgres;
mod python;
mod redis_server;
mod ruby;
mod runner;
mod s3;
mod sentinel;
mod shop;
mod smtp;
mod smtp_tls;
mod tls;
pub mod webhooks;

pub use browser::Browser;
pub use faulty_link::FaultyLink;
pub use forms::Forms;
pub use gallery::Gallery;
pub use mariadb::MariaDb;
pub use nginx::{Logged, Nginx, Receiver};
pub use packet_drop::PacketDrop;
pub use postgres::Postgres;
pub use python::python_json;
pub use redis_server::Redis;
pub use ruby::{active_job, ruby};
pub use runner::{
    Binary, Runner, RunnerOptions, done_jids, faulty_runner_bin, runner_bin, runner_cancel, runner_enqueue,
};
pub use s3::{S3_SECRET_KEY, S3Server};
pub use sentinel::Sentinel;
pub use shop::Shop;
pub use smtp::{Mail, SmtpSink};
pub use smtp_tls::TlsSmtp;
pub use tls::Certs;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A built plugin component, e.g. `plugin_wasm("order_created")`, or
/// `order_created_alt`, the build of order_created with another subject.
pub fn plugin_wasm(name: &str) -> PathBuf {
    let built = repo_root().join("plugins/target");
    let path = match name {
        "order_created_alt" => built.join("variants/order_created_alt.wasm"),
        "password_reset" => built.join("python/password_reset.wasm"),
        "signup_digest" => built.join("js/signup_digest.wasm"),
        "webhook_py" => built.join("python/webhook_py.wasm"),
        "webhook_js" => built.join("js/webhook_js.wasm"),
        _ => built.join("wasm32-wasip2/release").join(format!("{name}.wasm")),
    };
    assert!(
        path.is_file(),
        "{} is missing: build the plugins first (scripts/test builds them)",
        path.display()
    );
    path
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener.local_addr().expect("reading the ephemeral port").port()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with
/// `what` and the last state `describe` reports.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A job's JSON as Sidekiq's client pushes it, with the jid given.
pub fn job_json(class: &str, args: serde_json::Value, jid: &str) -> String {
    let now = now();
    serde_json::json!({"class": class, "args": args, "jid": jid, "queue": "default",
                       "retry": true, "created_at": now, "enqueued_at": now})
    .to_string()
}

/// The time in epoch seconds, as Sidekiq stamps jobs.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// The default deadline for things that should happen within seconds.
pub const WAIT: Duration = Duration::from_secs(30);

/// Checks `still_undone` every 20 ms until `until` (epoch seconds), so
/// "not before it is due" holds for the whole window, not one sample. A
/// window that closed before a single check proves nothing, and fails.
pub fn never_before(until: f64, what: &str, mut still_undone: impl FnMut() -> bool) {
    let mut samples = 0;
    while now() < until - 0.05 {
        assert!(still_undone(), "{what} before it was due ({:.2}s early)", until - now());
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(samples > 0, "never_before checked nothing: the window for {what} had closed already");
}

/// Held by a test that must have the machine to itself within its binary
/// (thousands of jobs, or faults timed against the jobs' limits): `cargo
/// test` runs two tests of one binary at once on two cores, and a drain
/// beside a timing test makes both slow for no reason of their own.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A failed test poisons it; the next one still runs alone.
    ALONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
