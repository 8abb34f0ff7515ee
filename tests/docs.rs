//! The documentation stays true: every flag of `runner --help` is in
//! `docs/configuration.md`, every metric the runner exports is in
//! `docs/reference/metrics.md`, the policy files, `sidekiq.yml` files and
//! `runner` command lines a user would paste are read by the runner's own
//! parsers, every link between the pages lands on a file and a heading,
//! and the README stays short.

use jobrunner::cli::Cli;
use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, job_json, repo_root, runner_bin};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README, the changelog and every page under `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The fenced code blocks of one language in a page, with the line each
/// starts on.
fn blocks(text: &str, language: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut open {
            None if line.starts_with("```") => {
                open = Some((number + 1, line.trim_start_matches('`').trim().to_string(), String::new()))
            }
            None => {}
            Some((start, lang, body)) if line.starts_with("```") => {
                if lang == language {
                    found.push((*start, std::mem::take(body)));
                }
                open = None;
            }
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    found
}

fn help(args: &[&str]) -> String {
    let output = Command::new(runner_bin()).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "runner {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The long flags an option list of `--help` names, `--help` left out.
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| line.split([' ', ',']).find(|word| word.starts_with("--")).map(str::to_string))
        .filter(|flag| flag != "--help")
        .collect()
}

/// Whether `text` names `flag` as a whole word (`--redis` but not only
/// `--redis-ca`).
fn names_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        let next = text[at + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_flag_of_runner_help_is_in_the_configuration_page() {
    let page = read(&repo_root().join("docs/configuration.md"));
    let main = help(&[]);
    let commands: Vec<String> = main
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|command| command != "help")
        .collect();
    assert!(commands.len() >= 5, "commands read from --help: {commands:?}");
    let mut missing = Vec::new();
    let mut checked = 0;
    for flag in long_flags(&main) {
        checked += 1;
        if !names_flag(&page, &flag) {
            missing.push(flag);
        }
    }
    for command in &commands {
        if !page.contains(&format!("runner {command}")) {
            missing.push(format!("runner {command}"));
        }
        for flag in long_flags(&help(&[command])) {
            checked += 1;
            if !names_flag(&page, &flag) {
                missing.push(format!("runner {command} {flag}"));
            }
        }
    }
    assert!(checked > 50, "only {checked} flags read from --help");
    assert!(missing.is_empty(), "docs/configuration.md doesn't name: {missing:?}");
}

/// The metric names in `runtime/src/metrics.rs`, where every one is made.
fn defined_metrics() -> BTreeSet<String> {
    let source = read(&repo_root().join("runtime/src/metrics.rs"));
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.starts_with("jobrunner_") && literal.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

/// The metric names the reference lists in its table.
fn documented_metrics() -> BTreeSet<String> {
    let page = read(&repo_root().join("docs/reference/metrics.md"));
    page.lines()
        .filter(|line| line.starts_with("| `jobrunner_"))
        .flat_map(|line| line.split('|').nth(1).unwrap_or("").split('`').map(str::trim).map(str::to_string))
        .filter(|name| name.starts_with("jobrunner_"))
        .collect()
}

#[test]
fn every_metric_the_runner_defines_is_in_the_metrics_reference_and_no_other() {
    let (defined, documented) = (defined_metrics(), documented_metrics());
    assert!(defined.len() >= 15, "metrics read from metrics.rs: {defined:?}");
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&defined).collect();
    assert!(undocumented.is_empty(), "not in docs/reference/metrics.md: {undocumented:?}");
    assert!(gone.is_empty(), "docs/reference/metrics.md lists metrics the runner lacks: {gone:?}");
}

#[test]
fn every_metric_a_runner_serves_is_in_the_metrics_reference() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["order_created"]));
    let order = json!([{"id": 1, "email": "ann@example.com", "name": "Ann", "items": [], "total": "1.00"}]);
    redis.push("default", &job_json("OrderCreateJob", order, "0000000000000000000000d1"));
    smtp.wait_for(1);
    let body = ureq::get(&format!("{}/metrics", runner.dashboard_url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let served: BTreeSet<String> = body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(served.contains("jobrunner_mails_sent_total"), "served: {served:?}");
    let documented = documented_metrics();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(undocumented.is_empty(), "served but not in docs/reference/metrics.md: {undocumented:?}");
}

/// Every code block of one language in the pages, each with the page and
/// line it starts on, as `path:line`.
fn examples(language: &str) -> Vec<(String, String)> {
    pages()
        .iter()
        .flat_map(|page| {
            blocks(&read(page), language)
                .into_iter()
                .map(|(line, block)| (format!("{}:{line}", page.display()), block))
        })
        .collect()
}

#[test]
fn the_policy_examples_in_the_docs_load() {
    let dir = tempfile::tempdir().unwrap();
    let examples = examples("toml");
    for (n, (at, block)) in examples.iter().enumerate() {
        let file = dir.path().join(format!("policy-{n}.toml"));
        // `${NAME}` is read from the runner's environment, which the docs'
        // names are not in here; the expansion has its own unit tests.
        std::fs::write(&file, block.replace("${", "x{")).unwrap();
        if let Err(e) = jobrunner::policy::Policy::load(&file) {
            panic!("{at}: the policy example is refused: {e:#}\n{block}");
        }
    }
    assert!(examples.len() >= 8, "only {} policy examples found", examples.len());
}

#[test]
fn the_sidekiq_yml_examples_in_the_docs_apply() {
    let dir = tempfile::tempdir().unwrap();
    let examples = examples("yaml");
    for (n, (at, block)) in examples.iter().enumerate() {
        let file = dir.path().join(format!("sidekiq-{n}.yml"));
        std::fs::write(&file, block).unwrap();
        let argv = ["runner", "-C", file.to_str().unwrap(), "-e", "production"].map(Into::into).to_vec();
        let cli = jobrunner::config::apply(argv)
            .unwrap_or_else(|e| panic!("{at}: the sidekiq.yml example is refused: {e:#}\n{block}"))
            .cli;
        if let Some(periodic) = &cli.run.periodic {
            jobrunner::periodic::spec::parse(periodic)
                .unwrap_or_else(|e| panic!("{at}: its periodic jobs are refused: {e:#}"));
        }
    }
    assert!(examples.len() >= 2, "only {} sidekiq.yml examples found", examples.len());
}

/// The `runner` command lines of a shell block, continuation lines joined,
/// each as the words after the program.
fn runner_commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| {
            let words = shlex::split(line.split(" #").next().unwrap_or(line))?;
            let at = words.iter().position(|w| w == "runner" || w.ends_with("/runner"))?;
            Some(words[at + 1..].to_vec())
        })
        .collect()
}

#[test]
fn the_runner_commands_in_the_docs_parse() {
    use clap::Parser;
    let mut parsed = 0;
    for (at, block) in examples("sh") {
        for words in runner_commands(&block) {
            let argv = std::iter::once("runner".to_string()).chain(words.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{at}: `runner {}` doesn't parse: {e}", words.join(" "));
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 10, "only {parsed} runner command lines found");
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of a page's Markdown links, outside code.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

#[test]
fn every_link_between_the_pages_lands_on_a_file_and_a_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
            } else if !fragment.is_empty() && !anchors(&read(&file)).contains(fragment) {
                broken.push(format!("{}: {target} (no such heading)", page.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_a_short_introduction() {
    let readme = read(&repo_root().join("README.md"));
    let lines = readme.lines().count();
    assert!(lines < 250, "README.md has {lines} lines; move reference material to docs/");
    for command in ["./scripts/demo", "./scripts/test"] {
        assert!(readme.contains(command), "README.md doesn't give {command}");
    }
    for page in pages().iter().filter(|p| p.starts_with(repo_root().join("docs"))) {
        let relative = page.strip_prefix(repo_root()).unwrap().to_str().unwrap().to_string();
        assert!(readme.contains(&format!("]({relative})")), "README.md's map doesn't link {relative}");
    }
}

#[test]
fn every_docs_page_opens_with_who_it_is_for() {
    for page in pages().iter().filter(|p| p.starts_with(repo_root().join("docs"))) {
        let text = read(page);
        let first = text.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap_or("");
        assert!(first.starts_with("For "), "{} opens with {first:?}, not with who it is for", page.display());
    }
}
