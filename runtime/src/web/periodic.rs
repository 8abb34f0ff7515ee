//! The Periodic page: each periodic job's schedule, next and last run,
//! last jid and whether it is on; buttons to turn it off or on and to
//! enqueue it now. Also `/api/periodic`.

use super::access::CsrfToken;
use super::actions::CheckedForm;
use super::format::{relative, utc};
use super::pages::{csrf_field, layout};
use super::{Picked, Shared, WebError, WebResult};
use crate::clock;
use crate::periodic::spec::Periodic;
use crate::queue::PeriodicState;
use axum::extract::State;
use axum::response::Redirect;
use axum::{Extension, Json};
use maud::{Markup, html};

/// One periodic job as the page and the API show it.
#[derive(serde::Serialize)]
pub struct PeriodicView {
    pub name: String,
    pub schedule: String,
    pub class: String,
    pub queue: String,
    pub description: String,
    /// On now: the dashboard's last word, else the file's.
    pub enabled: bool,
    /// The next tick, in epoch seconds.
    pub next_run: Option<f64>,
    /// Redis's record: last tick, last run, last jid.
    pub state: PeriodicState,
}

async fn views(dashboard: &Shared) -> WebResult<Vec<PeriodicView>> {
    let mut views = Vec::new();
    for periodic in dashboard.periodic.iter() {
        let state = dashboard.first().periodic_state(&periodic.name).await?;
        views.push(PeriodicView {
            name: periodic.name.clone(),
            schedule: periodic.schedule_text(),
            class: periodic.class.clone(),
            queue: periodic.queue.clone(),
            description: periodic.description.clone(),
            enabled: state.enabled.unwrap_or(periodic.enabled),
            next_run: periodic.next_after(clock::now()),
            state,
        });
    }
    Ok(views)
}

pub async fn api(State(dashboard): State<Shared>) -> WebResult<Json<Vec<PeriodicView>>> {
    Ok(Json(views(&dashboard).await?))
}

pub async fn page(
    State(dashboard): State<Shared>,
    picked: Picked,
    Extension(csrf): Extension<CsrfToken>,
) -> WebResult<Markup> {
    let views = views(&dashboard).await?;
    Ok(layout(
        "Periodic",
        "/periodic",
        picked,
        html! {
            table.periodic {
                thead { tr {
                    th { "Name" } th { "Schedule" } th { "Class" } th { "Queue" } th { "Next run" }
                    th { "Last run" } th { "Last jid" } th { "State" } th {}
                } }
                tbody {
                    @for view in &views {
                        tr data-periodic=(view.name) {
                            td title=(view.description) { (view.name) } td { code { (view.schedule) } }
                            td.class { (view.class) } td { (view.queue) }
                            td title=(utc(view.next_run.unwrap_or(0.0))) {
                                @if view.enabled { (relative(view.next_run.unwrap_or(0.0))) } @else { "-" }
                            }
                            td title=(utc(view.state.last_run.unwrap_or(0.0))) { (relative(view.state.last_run.unwrap_or(0.0))) }
                            td { code { (view.state.last_jid.as_deref().unwrap_or("-")) } }
                            td.state { @if view.enabled { "on" } @else { "off" } }
                            td { (buttons(view, &csrf)) }
                        }
                    }
                    @if views.is_empty() {
                        tr { td colspan="9" { "No periodic jobs: declare them under :scheduler: :schedule: in sidekiq.yml." } }
                    }
                }
            }
        },
    ))
}

fn buttons(view: &PeriodicView, csrf: &CsrfToken) -> Markup {
    html! {
        form method="post" action="/periodic/act" {
            (csrf_field(csrf))
            input type="hidden" name="name" value=(view.name);
            @if view.enabled { button type="submit" name="action" value="disable" { "Disable" } }
            @else { button type="submit" name="action" value="enable" { "Enable" } }
            button type="submit" name="action" value="enqueue" { "Enqueue now" }
        }
    }
}

/// The page's buttons.
pub async fn act(State(dashboard): State<Shared>, CheckedForm(form): CheckedForm) -> WebResult<Redirect> {
    let name = form.get("name").unwrap_or_default();
    let periodic: &Periodic = dashboard
        .periodic
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| WebError::bad_request(format!("no periodic job is named {name:?}")))?;
    match form.get("action") {
        Some("enable") => dashboard.first().set_periodic_enabled(name, true).await?,
        Some("disable") => dashboard.first().set_periodic_enabled(name, false).await?,
        Some("enqueue") => {
            let (jid, payload) = crate::periodic::payload(periodic, None)?;
            dashboard.first().enqueue_periodic_now(name, (&periodic.queue, &jid, &payload)).await?;
            tracing::info!(periodic = name, jid, "periodic job enqueued from the dashboard");
        }
        other => return Err(WebError::bad_request(format!("unknown action {other:?}"))),
    }
    Ok(Redirect::to("/periodic"))
}
