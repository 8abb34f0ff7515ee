//! The Plugins page and `/api/plugins`: each plugin file with its name,
//! version, SHA-256, classes and load time, what it has done in this
//! process (jobs, failures, mails, duration percentiles), and the recent
//! loads, replacements, refusals and removals with their reasons.

use super::format::{self, relative, utc};
use super::pages::layout;
use super::{Picked, Shared, WebResult};
use crate::metrics::PluginNumbers;
use crate::registry::{Change, PluginStatus};
use axum::Json;
use axum::extract::State;
use maud::{Markup, html};
use serde::Serialize;

/// One plugin file as the page shows it: its status and what it did here.
#[derive(Serialize)]
pub struct PluginView {
    #[serde(flatten)]
    pub status: PluginStatus,
    /// What it has done in this process.
    pub numbers: PluginNumbers,
}

#[derive(Serialize)]
pub struct Plugins {
    pub plugins: Vec<PluginView>,
    pub history: Vec<Change>,
}

fn collect(dashboard: &Shared) -> Plugins {
    let numbers = dashboard.metrics.by_plugin();
    let plugins = dashboard
        .registry
        .snapshot()
        .status()
        .into_iter()
        .map(|status| PluginView {
            numbers: status.name.as_ref().and_then(|n| numbers.get(n)).cloned().unwrap_or_default(),
            status,
        })
        .collect();
    Plugins { plugins, history: dashboard.registry.history() }
}

pub async fn api(State(dashboard): State<Shared>) -> WebResult<Json<Plugins>> {
    Ok(Json(collect(&dashboard)))
}

pub async fn page(State(dashboard): State<Shared>, picked: Picked) -> WebResult<Markup> {
    let Plugins { plugins, history } = collect(&dashboard);
    Ok(layout(
        "Plugins",
        "/plugins",
        picked,
        html! {
            p { "Loaded from " code { (dashboard.registry.dir().display()) } " by this runner. Numbers count jobs run here since it started." }
            table.plugins {
                thead { tr {
                    th { "File" } th { "Plugin" } th { "SHA-256" } th { "Classes" } th { "Loaded" }
                    th.num { "Processed" } th.num { "Failed" } th.num { "Mails" } th.num { "p50" } th.num { "p95" } th.num { "p99" }
                } }
                tbody {
                    @for view in &plugins {
                        @let (p, numbers) = (&view.status, &view.numbers);
                        tr data-plugin=[p.name.as_deref()] {
                            td { (p.file_name()) }
                            td.name { (p.name.as_deref().unwrap_or("(refused)")) " " (p.version.as_deref().unwrap_or("")) }
                            td.sha256 { code { (p.sha256.as_deref().unwrap_or("-")) } }
                            td { (p.classes.join(", ")) }
                            td title=(utc(p.loaded_at_secs().unwrap_or(0.0))) { (relative(p.loaded_at_secs().unwrap_or(0.0))) }
                            td.num { (numbers.processed) } td.num { (numbers.failed) }
                            td.num { (numbers.mails_sent) @if numbers.mails_failed > 0 { " (" (numbers.mails_failed) " failed)" } }
                            td.num { (format::seconds(numbers.p50)) } td.num { (format::seconds(numbers.p95)) }
                            td.num { (format::seconds(numbers.p99)) }
                        }
                        @if let Some(error) = &p.last_error {
                            tr.refusal { td colspan="11" { "Latest version refused: " (error) } }
                        }
                    }
                    @if plugins.is_empty() { tr { td colspan="11" { "No plugin loaded." } } }
                }
            }
            h2 { "Reload history" }
            table.history {
                thead { tr { th { "When" } th { "File" } th { "What" } th { "Plugin" } th { "SHA-256" } th { "Detail" } } }
                tbody {
                    @for change in &history {
                        tr class=(change.kind) {
                            td title=(utc(change.at)) { (relative(change.at)) }
                            td { (change.file) } td { (change.kind) }
                            td { (change.plugin.as_deref().unwrap_or("-")) }
                            td { code { (change.sha256.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or("-")) } }
                            td.detail { (change.detail) }
                        }
                    }
                }
            }
        },
    ))
}
