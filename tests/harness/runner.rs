//! The `runner` binary under test, with its own plugins directory and log.

use crate::{WAIT, eventually, plugin_wasm, repo_root};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use tempfile::TempDir;

/// How to start a runner.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Plugins copied into its plugins directory, by crate name.
    pub plugins: Vec<&'static str>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// `RUST_LOG`; per-job success lines are debug, and tests read them.
    pub log: &'static str,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A command the runner is started under, e.g. `unshare --pid ...`.
    pub wrapper: Vec<String>,
    /// The binary: the `runner`, or the test build with a fault in it.
    pub binary: Binary,
}

/// Which build of the runner a test starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Binary {
    /// The `runner` users get.
    #[default]
    Runner,
    /// `faulty-runner`: the same command with a fault hook set.
    Faulty,
}

impl Binary {
    fn path(self) -> PathBuf {
        match self {
            Binary::Runner => runner_bin(),
            Binary::Faulty => faulty_runner_bin(),
        }
    }
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            plugins: vec!["order_created", "welcome_mail", "misbehave"],
            args: Vec::new(),
            log: "info,jobrunner::worker=debug",
            env: Vec::new(),
            wrapper: Vec::new(),
            binary: Binary::Runner,
        }
    }
}

impl RunnerOptions {
    /// Only these plugins, by crate name.
    pub fn plugins(plugins: &[&'static str]) -> Self {
        RunnerOptions { plugins: plugins.to_vec(), ..RunnerOptions::default() }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Runs the test build whose jobs of `class` make the runner panic
    /// where it performs them (`tests/faulty_runner.rs`).
    pub fn panicking_on(mut self, class: &str) -> Self {
        self.binary = Binary::Faulty;
        self.env("FAULTY_RUNNER_PANIC_CLASS", class)
    }

    /// Runs the test build whose background `tasks` (by their supervisor's
    /// names) each panic once as they start.
    pub fn panicking_tasks(mut self, tasks: &[&str]) -> Self {
        self.binary = Binary::Faulty;
        self.env("FAULTY_RUNNER_PANIC_TASKS", &tasks.join(","))
    }

    /// Runs it as PID 1 of a PID namespace of its own, as in a container
    /// that shares the host's name (Docker's `--network host`, Kubernetes'
    /// `hostNetwork`): `unshare`, which takes the runner down with it when
    /// killed. Each (re)start gets a fresh namespace.
    pub fn in_own_pid_namespace(mut self) -> Self {
        self.wrapper =
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"].map(String::from).to_vec();
        self
    }
}

/// A running `runner`, killed when dropped.
pub struct Runner {
    /// The process; `None` once it has been stopped.
    child: Option<Child>,
    /// Its plugins directory and log file.
    dir: TempDir,
    /// The command line it was started with, to restart it.
    command: Vec<String>,
    /// Its `RUST_LOG`.
    log: &'static str,
    /// Its extra environment variables.
    env: Vec<(String, String)>,
    /// The command it runs under, if any.
    wrapper: Vec<String>,
    /// Which build it runs.
    binary: Binary,
}

/// The runner binary, built by `cargo build --release`.
pub fn runner_bin() -> PathBuf {
    let path = std::env::var_os("RUNNER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/runner"));
    assert!(path.is_file(), "{} is missing: run `cargo build --release` first", path.display());
    path
}

/// The test build with a fault hook, which `cargo test` builds beside the tests.
pub fn faulty_runner_bin() -> PathBuf {
    let path = repo_root().join("target/release/faulty-runner");
    assert!(path.is_file(), "{} is missing: run `cargo test --release` to build it", path.display());
    path
}

impl Runner {
    /// Starts a runner against `redis_url` with mail going to `smtp_url`
    /// (none when empty: into `--outbox`), and waits until it reports that
    /// it is serving.
    pub fn start(redis_url: &str, smtp_url: &str, options: RunnerOptions) -> Runner {
        let dir = tempfile::tempdir().expect("creating the runner's temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("creating the plugins dir");
        for name in &options.plugins {
            std::fs::copy(plugin_wasm(name), plugins.join(format!("{name}.wasm"))).expect("copying a plugin");
        }
        let mut command = vec![
            "--plugins".to_string(),
            plugins.display().to_string(),
            "--redis".into(),
            redis_url.into(),
            "--mail-from".into(),
            "Shop <shop@example.com>".into(),
            "--heartbeat".into(),
            "1".into(),
            // Each runner's dashboard on a port of its own, which it logs.
            "--http".into(),
            "127.0.0.1:0".into(),
        ];
        // A short poll interval, unless the test sets one or reads it from
        // a settings file (where a flag would override the file's).
        if !options.args.iter().any(|a| a == "--poll-interval" || a == "-C") {
            command.extend(["--poll-interval".into(), "1".into()]);
        }
        // Time for an interpreter's first compile on a loaded machine, where
        // the default 30 s is too short; tests of the limit set their own.
        if !options.args.iter().any(|a| a == "--compile-timeout") {
            command.extend(["--compile-timeout".into(), "120".into()]);
        }
        if !smtp_url.is_empty() {
            command.extend(["--smtp".into(), smtp_url.into()]);
        }
        // A code cache of its own, unless the test turns caching off or names one.
        if !options.args.iter().any(|a| a == "--no-cache" || a == "--cache-dir") {
            command.extend(["--cache-dir".into(), dir.path().join("cache").display().to_string()]);
        }
        command.extend(options.args);
        let (log, env, wrapper, binary) = (options.log, options.env, options.wrapper, options.binary);
        let mut runner = Runner { child: None, dir, command, log, env, wrapper, binary };
        runner.spawn();
        runner
    }

    fn spawn(&mut self) {
        let log =
            File::options().create(true).append(true).open(self.log_path()).expect("opening the runner log");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(self.binary.path());
                command
            }
            None => Command::new(self.binary.path()),
        };
        let child = command
            .args(&self.command)
            .env("RUST_LOG", self.log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting the runner");
        let started = self.logs().matches("runner started").count() + 1;
        self.child = Some(child);
        // Generous: on a loaded 2-core machine a start can take a while,
        // and nothing here measures how long it takes.
        eventually("the runner to start", 3 * WAIT, || {
            assert!(self.is_running(), "the runner exited during start-up:\n{}", self.logs());
            (self.logs().matches("runner started").count() >= started).then_some(())
        });
    }

    /// The address of its dashboard, e.g. `http://127.0.0.1:40123`, from
    /// its latest start-up log line.
    pub fn dashboard_url(&self) -> String {
        let line = self.wait_for_log(&["dashboard listening"], 1).pop().expect("a dashboard line");
        let start = line.find("http://").expect("the dashboard line has a URL");
        let url = line[start..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default();
        url.trim_end_matches('/').to_string()
    }

    /// The text its `/metrics` serves now.
    pub fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.dashboard_url());
        ureq::get(&url)
            .call()
            .expect("fetching /metrics")
            .into_body()
            .read_to_string()
            .expect("reading /metrics")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The plugins directory it loads from.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("runner.log")
    }

    /// Everything it has logged, across restarts. A runner killed mid-line
    /// can leave half a character behind, so the text is read lossily.
    pub fn logs(&self) -> String {
        std::fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The jids its log says it performed, in order, with repeats: every
    /// job it performed logs "job done" with its jid.
    pub fn done_jids(&self) -> Vec<String> {
        done_jids(&self.logs())
    }

    /// Waits until at least `count` log lines contain every one of `parts`,
    /// and returns those lines.
    pub fn wait_for_log(&self, parts: &[&str], count: usize) -> Vec<String> {
        eventually(&format!("{count} log lines with {parts:?}"), WAIT, || {
            let lines: Vec<String> = self
                .logs()
                .lines()
                .filter(|line| parts.iter().all(|p| line.contains(p)))
                .map(str::to_string)
                .collect();
            (lines.len() >= count).then_some(lines)
        })
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for it to exit on its own.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(60))
    }

    /// Sends `signal` (e.g. `libc::SIGTSTP`) to the runner.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("the runner is running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Waits up to `timeout` for the runner to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the runner is running");
        eventually("the runner to exit", timeout, || child.try_wait().ok().flatten())
    }

    /// Starts it again with the same command line and plugins directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Copies a built plugin into its plugins directory under `file_name`.
    pub fn install_plugin(&self, name: &str, file_name: &str) -> PathBuf {
        let target = self.plugins_dir().join(file_name);
        std::fs::copy(plugin_wasm(name), &target).expect("copying a plugin");
        target
    }

    /// Path of `file_name` in the plugins directory.
    pub fn plugin_path(&self, file_name: &str) -> PathBuf {
        Path::new(&self.plugins_dir()).join(file_name)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- runner log ---\n{}", self.logs());
        }
    }
}

/// The jids a runner's log text says it performed, in order, with repeats.
pub fn done_jids(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains("job done"))
        .filter_map(|line| {
            let at = line.find("jid=\"")? + 5;
            Some(line[at..].chars().take_while(char::is_ascii_hexdigit).collect())
        })
        .collect()
}

/// `runner enqueue ARGS --redis REDIS_URL`, as a user types it.
pub fn runner_enqueue(redis_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(runner_bin())
        .arg("enqueue")
        // First, so that more --redis URLs in `args` are shards 1, 2, ...
        .args(["--redis", redis_url])
        .args(args)
        .output()
        .expect("running runner enqueue")
}

/// `runner cancel JID --redis REDIS_URL`; returns what it printed, and
/// fails the test if it failed.
pub fn runner_cancel(redis_url: &str, jid: &str) -> String {
    let output = Command::new(runner_bin())
        .args(["cancel", jid, "--redis", redis_url])
        .output()
        .expect("running runner cancel");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
