//! Settings from Sidekiq's own `config/sidekiq.yml`, so a Rails app's
//! runner takes the settings its Sidekiq took.
//!
//! `runner -C config/sidekiq.yml` (else `config/sidekiq.yml` when it
//! exists) reads the file as Sidekiq does: ERB first (see [`erb`]), then
//! YAML, keys with or without a leading colon, and the section named by the
//! environment (`-e`, else `APP_ENV`, `RAILS_ENV`, `RACK_ENV`, else
//! `development`) merged over the top level. Sidekiq's settings become the
//! runner's flags (see [`SIDEKIQ`]); runner-only settings sit under a
//! `jobrunner:` key, named as the flags are (`plugins`, `smtp`, ...). A flag
//! or its environment variable wins over the file, the file over the
//! default. Unknown keys are errors naming the key; Sidekiq settings the
//! runner has no use for are reported once as ignored.
//!
//! It works on the command line itself: the file's settings become flags
//! put before the operator's own, for arguments the operator didn't give.

pub(crate) mod erb;
pub(crate) mod yaml;

use crate::cli::Cli;
use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where Sidekiq looks for its file when not told.
const DEFAULT_FILE: &str = "config/sidekiq.yml";

/// Sidekiq settings with a runner flag of the same meaning: key, flag id.
const SIDEKIQ: &[(&str, &str)] = &[
    ("concurrency", "concurrency"),
    ("queues", "queues"),
    ("timeout", "shutdown_timeout"),
    ("dead_max_jobs", "dead_max_jobs"),
    ("dead_timeout_in_seconds", "dead_timeout"),
    ("average_scheduled_poll_interval", "poll_interval"),
    ("poll_interval_average", "poll_interval"),
];

/// Sidekiq settings the runner has no use for: logged, not refused.
const IGNORED: &[&str] = &[
    "strict",
    "tag",
    "labels",
    "require",
    "verbose",
    "max_retries",
    "environment",
    "pidfile",
    "logfile",
    "capsules",
    "lifecycle_events",
    "error_handlers",
    "death_handlers",
    "reloader",
    "backtrace_cleaner",
    "redis",
];

/// Settings as (flag id, value).
type Settings = Vec<(String, Value)>;

/// The command line, with the config file's settings applied.
pub struct Applied {
    /// The parsed command line.
    pub cli: Cli,
    /// The file read, if any, and the settings in it the runner ignored.
    pub file: Option<(PathBuf, Vec<String>)>,
}

/// Parses `argv`, applying the config file when the runner is to run.
pub fn apply(argv: Vec<OsString>) -> Result<Applied> {
    let matches = Cli::command().get_matches_from(&argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some(path) = config_path(&cli) else { return Ok(Applied { cli, file: None }) };
    let environment = environment(&cli);
    let (settings, ignored) = read(&path, &environment, &|name| std::env::var(name).ok())
        .with_context(|| format!("reading {}", path.display()))?;
    let mut args = vec![argv[0].clone()];
    args.extend(flags(&settings, &matches)?.into_iter().map(OsString::from));
    args.extend(argv[1..].iter().cloned());
    let cli = Cli::try_parse_from(&args).map_err(|e| {
        anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_start_matches("error: ").trim())
    })?;
    Ok(Applied { cli, file: Some((path, ignored)) })
}

/// The file to read: `-C`, else Sidekiq's default when it exists; none for
/// commands other than running.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    if cli.command.is_some() {
        return None;
    }
    cli.run.config.clone().or_else(|| Path::new(DEFAULT_FILE).is_file().then(|| PathBuf::from(DEFAULT_FILE)))
}

/// The environment whose section applies, as Sidekiq picks it.
fn environment(cli: &Cli) -> String {
    cli.run
        .environment
        .clone()
        .or_else(|| ["APP_ENV", "RAILS_ENV", "RACK_ENV"].iter().find_map(|v| std::env::var(v).ok()))
        .unwrap_or_else(|| "development".to_string())
}

/// The file's settings as (flag id, value), and the keys ignored.
fn read(
    path: &Path,
    environment: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, Vec<String>)> {
    let text = std::fs::read_to_string(path).context("reading it")?;
    let text = erb::render(&text, env)?;
    let document = yaml::parse(&text)?;
    settings(document, environment)
}

/// Turns a parsed file into flag settings, checking every key.
fn settings(document: Value, environment: &str) -> Result<(Settings, Vec<String>)> {
    let Value::Object(mut top) = document else {
        bail!("the file must be a mapping of settings");
    };
    // The environment's section, merged shallowly over the top level.
    if let Some(section) = top.remove(environment) {
        let Value::Object(section) = section else { bail!("`{environment}` must be a mapping of settings") };
        top.extend(section);
    }
    let mut settings = Vec::new();
    let mut ignored = Vec::new();
    for (key, value) in top {
        if let Some((_, id)) = SIDEKIQ.iter().find(|(k, _)| *k == key) {
            settings.push((id.to_string(), sidekiq_value(&key, value)?));
        } else if key == "jobrunner" {
            settings.extend(runner_section(value)?);
        } else if key == "scheduler" {
            // sidekiq-scheduler's `:scheduler: :schedule:` is the periodic jobs.
            let schedule = value.get("schedule").cloned().unwrap_or(Value::Object(Default::default()));
            settings.push(("periodic".to_string(), schedule));
        } else if IGNORED.contains(&key.as_str()) {
            ignored.push(key);
        } else if !value.is_object() {
            bail!("unknown setting `{key}`");
        }
        // Any other mapping is another environment's section.
    }
    Ok((settings, ignored))
}

/// A Sidekiq setting's value in the runner's terms.
fn sidekiq_value(key: &str, value: Value) -> Result<Value> {
    Ok(match key {
        "queues" => Value::Array(queues(&value)?.into_iter().map(Value::String).collect()),
        "dead_timeout_in_seconds" => {
            let seconds = value.as_f64().with_context(|| format!("`{key}` must be a number of seconds"))?;
            Value::from(seconds / 86_400.0)
        }
        _ => value,
    })
}

/// Sidekiq's queue list as `-q` values: `name`, `[name, weight]` or
/// `"name,weight"`; without any weight (or all 0) the order is strict.
fn queues(value: &Value) -> Result<Vec<String>> {
    let Value::Array(entries) = value else { bail!("`queues` must be a list") };
    let mut parsed = Vec::new();
    for entry in entries {
        let (name, weight) = match entry {
            Value::String(text) => match text.split_once(',') {
                Some((name, weight)) => (name.trim().to_string(), weight.trim().parse::<u32>().ok()),
                None => (text.clone(), None),
            },
            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                (pair[0].as_str().unwrap_or_default().to_string(), pair[1].as_u64().map(|w| w as u32))
            }
            other => bail!("`queues` entry {other} is not a name, [name, weight] or \"name,weight\""),
        };
        parsed.push((name, weight.unwrap_or(0)));
    }
    let weighted = parsed.iter().any(|(_, w)| *w > 0);
    Ok(parsed
        .into_iter()
        .map(|(name, w)| if weighted { format!("{name},{}", w.max(1)) } else { name })
        .collect())
}

/// The `jobrunner:` section: flag ids as keys.
fn runner_section(value: Value) -> Result<Settings> {
    let Value::Object(section) = value else { bail!("`jobrunner` must be a mapping of settings") };
    let command = Cli::command();
    let known: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| !["config", "environment", "help", "version", "log_format"].contains(&id.as_str()))
        .collect();
    section
        .into_iter()
        .map(|(key, value)| {
            if !known.contains(&key) {
                bail!("unknown setting `jobrunner.{key}`; known: {}", known.join(", "));
            }
            Ok((key, value))
        })
        .collect()
}

/// The settings as flags, leaving out what the command line or the
/// environment gave already.
fn flags(settings: &Settings, matches: &ArgMatches) -> Result<Vec<String>> {
    let command = Cli::command();
    let mut flags = Vec::new();
    for (id, value) in settings {
        if matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let arg = command.get_arguments().find(|a| a.get_id() == id.as_str()).context("a known flag")?;
        let long = arg.get_long().context("a long flag")?;
        let values = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for value in values {
            let text = match value {
                Value::String(text) => text,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) if !arg.get_action().takes_values() => {
                    if b {
                        flags.push(format!("--{long}"));
                    }
                    continue;
                }
                Value::Bool(b) => b.to_string(),
                // A mapping (the periodic jobs) goes as JSON.
                Value::Object(_) => value.to_string(),
                other => bail!("`{id}` can't be {other}"),
            };
            flags.push(format!("--{long}={text}"));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(document: Value, environment: &str) -> Result<Settings> {
        settings(document, environment).map(|(settings, _)| settings)
    }

    #[test]
    fn the_environment_section_is_merged_over_the_top_level() {
        let document = json!({"concurrency": 5, "queues": ["a"], "production": {"concurrency": 9}, "staging": {"concurrency": 2}});
        let production = flat(document.clone(), "production").unwrap();
        assert!(production.contains(&("concurrency".into(), json!(9))), "{production:?}");
        let development = flat(document, "development").unwrap();
        assert!(development.contains(&("concurrency".into(), json!(5))), "{development:?}");
    }

    #[test]
    fn queues_keep_sidekiqs_meaning() {
        assert_eq!(queues(&json!(["critical", "default"])).unwrap(), ["critical", "default"]);
        assert_eq!(queues(&json!([["critical", 3], ["default", 1]])).unwrap(), ["critical,3", "default,1"]);
        assert_eq!(queues(&json!(["critical,2", "low"])).unwrap(), ["critical,2", "low,1"]);
        assert_eq!(queues(&json!([["a", 0], "b"])).unwrap(), ["a", "b"]);
        assert!(queues(&json!("default")).is_err());
    }

    #[test]
    fn unknown_keys_are_errors_and_unused_sidekiq_keys_are_noted() {
        let err = flat(json!({"concurency": 5}), "development").unwrap_err().to_string();
        assert!(err.contains("`concurency`"), "{err}");
        let err = flat(json!({"jobrunner": {"plugin": "x"}}), "development").unwrap_err().to_string();
        assert!(err.contains("jobrunner.plugin") && err.contains("plugins"), "{err}");
        let (settings, ignored) =
            settings(json!({"verbose": true, "tag": "app", "timeout": 8}), "x").unwrap();
        assert_eq!(ignored, ["verbose", "tag"]);
        assert_eq!(settings, [("shutdown_timeout".to_string(), json!(8))]);
    }

    #[test]
    fn the_runner_section_names_flags() {
        let (settings, _) =
            settings(json!({"jobrunner": {"plugins": "app/plugins", "no_http": true}}), "x").unwrap();
        assert_eq!(settings.len(), 2);
        let matches = Cli::command().get_matches_from(["runner", "--plugins", "mine"]);
        let flags = flags(&settings, &matches).unwrap();
        assert_eq!(flags, ["--no-http"], "the command line's --plugins wins");
    }

    #[test]
    fn redis_shards_are_a_list_in_the_runner_section() {
        let shards = json!(["redis://shard0:6379", "redis://shard1:6379"]);
        let (settings, _) = settings(json!({"jobrunner": {"redis": shards}}), "x").unwrap();
        let flags = flags(&settings, &Cli::command().get_matches_from(["runner"])).unwrap();
        assert_eq!(flags, ["--redis=redis://shard0:6379", "--redis=redis://shard1:6379"]);
        let cli = Cli::command().get_matches_from(["runner".to_string()].into_iter().chain(flags));
        let redis: Vec<&String> = cli.get_many::<String>("redis").unwrap().collect();
        assert_eq!(redis, ["redis://shard0:6379", "redis://shard1:6379"]);
    }

    #[test]
    fn periodic_jobs_come_from_the_scheduler_section_or_the_runner_section_as_json() {
        let beat = json!({"beat": {"every": "1s", "class": "BeatJob"}});
        let matches = Cli::command().get_matches_from(["runner"]);
        for document in [json!({"scheduler": {"schedule": beat}}), json!({"jobrunner": {"periodic": beat}})] {
            let (settings, _) = settings(document, "x").unwrap();
            let flags = flags(&settings, &matches).unwrap();
            assert_eq!(flags, [format!("--periodic={beat}")]);
        }
    }
}
