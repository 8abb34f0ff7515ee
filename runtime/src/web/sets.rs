//! The Retries, Scheduled and Dead pages, their JSON, and their actions:
//! per job ("Retry now", "Add to queue", "Kill", "Delete"), on the checked
//! jobs, or on all of them, as Sidekiq's Web UI offers.

use super::access::CsrfToken;
use super::actions::CheckedForm;
use super::format::{self, relative, utc};
use super::pages::{PageQuery, csrf_field, layout, pager};
use super::{Picked, Shared, WebError, WebResult};
use crate::queue::{Entry, Page, SetAction, keys};
use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use maud::{Markup, html};

/// One of the three sorted-set pages.
#[derive(Clone, Copy, Debug)]
struct SetPage {
    /// Its path: `/retries`, `/scheduled`, `/dead`.
    path: &'static str,
    /// Its Redis key.
    key: &'static str,
    title: &'static str,
    /// What the time column means.
    when: &'static str,
    /// The actions offered: (action, button label).
    actions: &'static [(&'static str, &'static str)],
    /// Whether its jobs can still be cancelled (not once dead).
    cancellable: bool,
}

const RETRIES: SetPage = SetPage {
    path: "/retries",
    key: keys::RETRY,
    title: "Retries",
    when: "Next retry",
    actions: &[("retry", "Retry now"), ("kill", "Kill"), ("delete", "Delete")],
    cancellable: true,
};
const SCHEDULED: SetPage = SetPage {
    path: "/scheduled",
    key: keys::SCHEDULE,
    title: "Scheduled",
    when: "Due",
    actions: &[("enqueue", "Add to queue"), ("delete", "Delete")],
    cancellable: true,
};
const DEAD: SetPage = SetPage {
    path: "/dead",
    key: keys::DEAD,
    title: "Dead",
    when: "Died",
    actions: &[("retry", "Retry now"), ("delete", "Delete")],
    cancellable: false,
};

/// The routes of all three pages.
pub fn routes() -> Router<Shared> {
    let mut router = Router::new();
    for set in [RETRIES, SCHEDULED, DEAD] {
        router = router
            .route(set.path, get(move |state, picked, csrf, query| page(state, picked, csrf, query, set)))
            .route(
                &format!("/api{}", set.path),
                get(move |state, picked, query| api(state, picked, query, set)),
            )
            .route(
                &format!("{}/act", set.path),
                post(move |state, picked, form| act(state, picked, form, set)),
            );
    }
    router
}

async fn page(
    State(dashboard): State<Shared>,
    picked: Picked,
    Extension(csrf): Extension<CsrfToken>,
    Query(query): Query<PageQuery>,
    set: SetPage,
) -> WebResult<Markup> {
    let page = dashboard.queue(picked).set_page(set.key, query.page.unwrap_or(1)).await?;
    Ok(layout(set.title, set.path, picked, entries(&page, &csrf, set)))
}

async fn api(
    State(dashboard): State<Shared>,
    picked: Picked,
    Query(query): Query<PageQuery>,
    set: SetPage,
) -> WebResult<Json<Page<Entry>>> {
    Ok(Json(dashboard.queue(picked).set_page(set.key, query.page.unwrap_or(1)).await?))
}

/// The list, in one form: a row's button acts on that row (`one` =
/// `action|key`), the bulk buttons on the checked rows or on all.
fn entries(page: &Page<Entry>, csrf: &CsrfToken, set: SetPage) -> Markup {
    html! {
        form method="post" action={ (set.path) "/act" } {
            (csrf_field(csrf))
            div.bulk {
                @for (action, label) in set.actions {
                    button type="submit" name="checked" value=(action) { (label) " checked" }
                }
                @for (action, label) in set.actions {
                    button.danger type="submit" name="all" value=(action)
                        data-confirm={ (label) " all " (page.total) " jobs?" } { (label) " all" }
                }
            }
            (pager(set.path, page))
            table.jobs {
                thead { tr {
                    th {} th { (set.when) } th { "Class" } th { "Arguments" } th { "Queue" } th.num { "Retries" }
                    th { "Error" } th {}
                } }
                tbody {
                    @for entry in &page.items { (row(entry, set)) }
                    @if page.items.is_empty() { tr { td colspan="8" { "No jobs." } } }
                }
            }
        }
    }
}

fn row(entry: &Entry, set: SetPage) -> Markup {
    let job = &entry.job;
    html! {
        tr data-jid=(job.jid) {
            td { input type="checkbox" name="key" value=(entry.key) aria-label="select"; }
            td title=(utc(entry.at)) { (relative(entry.at)) }
            td.class { (job.class) }
            td.args { code { (format::args(&job.args)) } }
            td { (job.queue) }
            td.num { (job.retry_count.map(|c| c.to_string()).unwrap_or_default()) }
            td.error {
                @if let Some(message) = &job.error_message {
                    details {
                        summary { (job.error_class.as_deref().unwrap_or("Error")) ": " (format::cut(message, 160)) }
                        pre { (message) }
                        @if let Some(backtrace) = &job.error_backtrace {
                            pre.backtrace { (backtrace_text(backtrace)) }
                        }
                    }
                }
            }
            td.actions {
                @for (action, label) in set.actions {
                    button type="submit" name="one" value={ (action) "|" (entry.key) } { (label) }
                }
                @if set.cancellable {
                    button.danger type="submit" name="cancel" value=(job.jid)
                        data-confirm={ "Cancel job " (job.jid) "?" } { "Cancel" }
                }
            }
        }
    }
}

/// A backtrace in any form Sidekiq 6.4 to 8.x writes, else as it is.
fn backtrace_text(backtrace: &serde_json::Value) -> String {
    match crate::queue::backtrace::lines(backtrace) {
        Some(lines) => lines.join("\n"),
        None => backtrace.as_str().map(str::to_string).unwrap_or_else(|| backtrace.to_string()),
    }
}

async fn act(
    State(dashboard): State<Shared>,
    picked: Picked,
    CheckedForm(form): CheckedForm,
    set: SetPage,
) -> WebResult<Redirect> {
    let queue = dashboard.queue(picked);
    let context = || format!("acting on the {} set", set.key);
    if let Some(jid) = form.get("cancel").filter(|_| set.cancellable) {
        let found = queue.cancel(jid).await.with_context(context)?;
        tracing::info!(jid, removed_from = ?found.removed_from, "job cancelled from the dashboard");
    } else if let Some((action, key)) = form.get("one").and_then(|v| v.split_once('|')) {
        queue.act_on_entry(set.key, key, set.action(action)?).await.with_context(context)?;
    } else if let Some(action) = form.get("checked") {
        let action = set.action(action)?;
        for key in form.all("key") {
            queue.act_on_entry(set.key, key, action).await.with_context(context)?;
        }
    } else if let Some(action) = form.get("all") {
        queue.act_on_all(set.key, set.action(action)?).await.with_context(context)?;
    }
    Ok(Redirect::to(set.path))
}

impl SetPage {
    /// `name` as an action, if this page offers it: a dead job can't be
    /// killed again, nor a scheduled one retried.
    fn action(&self, name: &str) -> Result<SetAction, WebError> {
        if !self.actions.iter().any(|(offered, _)| *offered == name) {
            let offered: Vec<&str> = self.actions.iter().map(|(a, _)| *a).collect();
            return Err(WebError::bad_request(format!(
                "the {} page offers {}, not {name:?}",
                self.title,
                offered.join(", ")
            )));
        }
        Ok(SetAction::parse(name)?)
    }
}
