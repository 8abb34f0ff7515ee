//! The dashboard's HTML pages: the shared layout, the overview, queues and
//! busy. Retries, scheduled and dead are in [`super::sets`], plugins in
//! [`super::plugins`]. maud escapes every interpolated value.

use super::access::CsrfToken;
use super::actions::encode;
use super::format::{self, relative, span, utc};
use super::{Picked, Shared, WebResult};
use crate::queue::iteration::Saved;
use crate::queue::{Day, Page, ProcessView};
use axum::Extension;
use axum::extract::{Path, Query, State};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

/// The navigation bar: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/queues", "Queues"),
    ("/busy", "Busy"),
    ("/retries", "Retries"),
    ("/scheduled", "Scheduled"),
    ("/dead", "Dead"),
    ("/periodic", "Periodic"),
    ("/plugins", "Plugins"),
];

/// `?page=N` on list pages.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<usize>,
}

/// Wraps a page's content in the common chrome; `active` is its nav path.
pub fn layout(title: &str, active: &str, picked: Picked, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · jobrunner" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "jobrunner" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(path) class=[(*path == active).then_some("active")] { (label) }
                        }
                        a href="/metrics" { "Metrics" }
                    }
                    (super::shard::picker(picked, active))
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden field that carries the CSRF token in every form.
pub fn csrf_field(token: &CsrfToken) -> Markup {
    html! { input type="hidden" name="csrf" value=(token.0); }
}

/// Previous/next links for a paged list at `base`.
pub fn pager<T>(base: &str, page: &Page<T>) -> Markup {
    let pages = (page.total as usize).div_ceil(page.per_page).max(1);
    html! {
        nav.pager {
            @if page.page > 1 { a href={ (base) "?page=" (page.page - 1) } { "← newer" } }
            span { "page " (page.page) " of " (pages) " · " (page.total) " jobs" }
            @if page.page < pages { a href={ (base) "?page=" (page.page + 1) } { "older →" } }
        }
    }
}

pub async fn overview(State(dashboard): State<Shared>, picked: Picked) -> WebResult<Markup> {
    let queue = dashboard.queue(picked);
    let (stats, history, redis) = tokio::try_join!(queue.stats(), queue.history(30), queue.redis_info())?;
    let shards = super::shard::table(&dashboard, picked).await?;
    let cards = [
        ("processed", "Processed", stats.processed, "/"),
        ("failed", "Failed", stats.failed, "/"),
        ("busy", "Busy", stats.busy, "/busy"),
        ("enqueued", "Enqueued", stats.enqueued, "/queues"),
        ("retries", "Retries", stats.retries, "/retries"),
        ("scheduled", "Scheduled", stats.scheduled, "/scheduled"),
        ("dead", "Dead", stats.dead, "/dead"),
    ];
    Ok(layout(
        "Overview",
        "/",
        picked,
        html! {
            section.stats {
                @for (key, label, value, link) in cards {
                    a.stat href=(link) {
                        span.value id={ "stat-" (key) } data-stat=(key) { (value) }
                        span.label { (label) }
                    }
                }
            }
            (shards)
            h2 { "Live: jobs per second" }
            div.chart {
                svg #live-graph viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="processed and failed per second" {}
                p.legend { span.processed { "processed" } " " span.failed { "failed" } " · every 2 s" }
            }
            h2 { "History: the last 30 days" }
            (history_chart(&history))
            h2 { "Redis" }
            table.facts {
                tr { th { "Version" } td #redis-version { (redis.version) } }
                tr { th { "Uptime" } td { (redis.uptime_days) " days" } }
                tr { th { "Memory" } td { (redis.used_memory) " (peak " (redis.peak_memory) ")" } }
                tr { th { "Connections" } td { (redis.connected_clients) } }
                tr { th { "Processes" } td { (stats.processes) } }
            }
        },
    ))
}

/// Bars of processed (and, over them, failed) jobs per day.
fn history_chart(days: &[Day]) -> Markup {
    let max = days.iter().map(|d| d.processed.max(d.failed)).max().unwrap_or(0).max(1) as f64;
    let width = 600.0 / days.len().max(1) as f64;
    let height = |n: u64| 140.0 * n as f64 / max;
    html! {
        div.chart {
            svg #history-graph viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="jobs per day" {
                @for (i, day) in days.iter().enumerate() {
                    g {
                        title { (day.date) ": " (day.processed) " processed, " (day.failed) " failed" }
                        rect.processed x=(i as f64 * width + 1.0) y=(150.0 - height(day.processed))
                            width=(width - 2.0) height=(height(day.processed)) {}
                        rect.failed x=(i as f64 * width + 1.0) y=(150.0 - height(day.failed))
                            width=(width - 2.0) height=(height(day.failed)) {}
                    }
                }
            }
            p.legend {
                (days.first().map(|d| d.date.as_str()).unwrap_or("")) " … " (days.last().map(|d| d.date.as_str()).unwrap_or(""))
                " · " span.processed { "processed" } " " span.failed { "failed" }
            }
        }
    }
}

pub async fn queues(
    State(dashboard): State<Shared>,
    picked: Picked,
    Extension(csrf): Extension<CsrfToken>,
) -> WebResult<Markup> {
    let queues = dashboard.queue(picked).queues().await?;
    Ok(layout(
        "Queues",
        "/queues",
        picked,
        html! {
            table {
                thead { tr { th { "Queue" } th.num { "Size" } th.num { "Latency" } th {} } }
                tbody {
                    @for queue in &queues {
                        tr {
                            td { a href={ "/queues/" (encode(&queue.name)) } { (queue.name) } }
                            td.num { (queue.size) }
                            td.num { (span(queue.latency)) }
                            td {
                                form method="post" action={ "/queues/" (encode(&queue.name)) "/clear" } {
                                    (csrf_field(&csrf))
                                    button.danger type="submit" data-confirm={ "Delete every job in " (queue.name) "?" } { "Clear" }
                                }
                            }
                        }
                    }
                    @if queues.is_empty() { tr { td colspan="4" { "No queues yet." } } }
                }
            }
        },
    ))
}

pub async fn queue(
    State(dashboard): State<Shared>,
    picked: Picked,
    Extension(csrf): Extension<CsrfToken>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> WebResult<Markup> {
    let page = dashboard.queue(picked).queue_page(&name, query.page.unwrap_or(1)).await?;
    let base = format!("/queues/{}", encode(&name));
    Ok(layout(
        &format!("Queue {name}"),
        "/queues",
        picked,
        html! {
            (pager(&base, &page))
            table.jobs {
                thead { tr { th { "Class" } th { "Arguments" } th { "Jid" } th { "Enqueued" } th {} } }
                tbody {
                    @for job in &page.items {
                        tr {
                            td.class { (job.class) }
                            td.args { code { (format::args(&job.args)) } }
                            td.jid { (job.jid) }
                            td title=(utc(job.enqueued_at.unwrap_or(0.0))) { (relative(job.enqueued_at.unwrap_or(0.0))) }
                            td {
                                form method="post" action={ (base) "/delete" } {
                                    (csrf_field(&csrf))
                                    input type="hidden" name="payload" value=(job.raw);
                                    button.danger type="submit" { "Delete" }
                                }
                                (cancel_button(&job.jid, &csrf))
                            }
                        }
                    }
                    @if page.items.is_empty() { tr { td colspan="5" { "The queue is empty." } } }
                }
            }
        },
    ))
}

pub async fn busy(
    State(dashboard): State<Shared>,
    picked: Picked,
    Extension(csrf): Extension<CsrfToken>,
) -> WebResult<Markup> {
    let processes = dashboard.queue(picked).processes(true).await?;
    Ok(layout(
        "Busy",
        "/busy",
        picked,
        html! {
            h2 { "Processes" }
            table {
                thead { tr {
                    th { "Host" } th.num { "Pid" } th { "Kind" } th.num { "Busy" } th { "Queues" }
                    th { "Started" } th { "Last beat" } th { "State" } th {}
                } }
                tbody {
                    @for p in &processes {
                        tr title=(p.identity) {
                            td { (p.hostname) } td.num { (p.pid) } td { (p.tag) }
                            td.num { (p.busy) " / " (p.concurrency) } td { (p.queues.join(", ")) }
                            td title=(utc(p.started_at)) { (relative(p.started_at)) }
                            td title=(utc(p.beat)) { (relative(p.beat)) }
                            td { @if p.quiet { "quiet" } @else { "running" } }
                            td { (signal_buttons(p, &csrf)) }
                        }
                    }
                    @if processes.is_empty() { tr { td colspan="9" { "No live processes." } } }
                }
            }
            h2 { "Running jobs" }
            (running_jobs(&processes, &csrf))
        },
    ))
}

/// Quiet (stop taking jobs) and Stop (finish and exit), delivered through
/// Redis at the process's next heartbeat.
fn signal_buttons(process: &ProcessView, csrf: &CsrfToken) -> Markup {
    html! {
        form method="post" action="/busy/signal" {
            (csrf_field(csrf))
            input type="hidden" name="identity" value=(process.identity);
            @if !process.quiet { button type="submit" name="signal" value="TSTP" { "Quiet" } }
            button.danger type="submit" name="signal" value="TERM"
                data-confirm={ "Stop " (process.hostname) ":" (process.pid) "?" } { "Stop" }
        }
    }
}

/// Cancels the job `jid`: stopped where it runs, never run if it waits.
pub fn cancel_button(jid: &str, csrf: &CsrfToken) -> Markup {
    html! {
        form method="post" action="/jobs/cancel" {
            (csrf_field(csrf))
            input type="hidden" name="jid" value=(jid);
            button.danger type="submit" data-confirm={ "Cancel job " (jid) "?" } { "Cancel" }
        }
    }
}

fn running_jobs(processes: &[ProcessView], csrf: &CsrfToken) -> Markup {
    html! {
        table.jobs {
            thead { tr {
                th { "Process" } th { "Queue" } th { "Class" } th { "Plugin" } th { "Arguments" } th { "Running for" }
                th { "Progress" } th {}
            } }
            tbody {
                @for p in processes {
                    @for work in &p.jobs {
                        tr data-jid=(work.job.jid) {
                            td { (p.hostname) ":" (p.pid) } td { (work.queue) } td.class { (work.job.class) }
                            td { (work.plugin.as_deref().unwrap_or("-")) }
                            td.args { code { (format::args(&work.job.args)) } }
                            td title=(utc(work.run_at)) { (span(crate::clock::now() - work.run_at)) }
                            td.progress { (progress(work.iteration.as_ref())) }
                            td { (cancel_button(&work.job.jid, csrf)) }
                        }
                    }
                }
                @if processes.iter().all(|p| p.jobs.is_empty()) { tr { td colspan="8" { "Nothing is running." } } }
            }
        }
    }
}

/// An iterable job's progress: how many times it has resumed, and its
/// cursor as last saved.
fn progress(iteration: Option<&Saved>) -> Markup {
    let Some(saved) = iteration else { return html! { "-" } };
    let resumed = saved.executions.saturating_sub(1);
    html! {
        "resumed " (resumed) @if resumed == 1 { " time" } @else { " times" }
        @if let Some(cursor) = &saved.cursor { ", at " code { (cursor) } }
    }
}
