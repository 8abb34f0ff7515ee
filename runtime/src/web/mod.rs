//! The web dashboard: Sidekiq's Web UI views over the same Redis data
//! (overview, queues, busy, retries, scheduled, dead), a Plugins page with
//! what only this runner knows, every view as JSON under `/api/`, and
//! Prometheus text at `/metrics`.
//!
//! Pages are rendered on the server by maud, which escapes every value it
//! interpolates, so job content shows as text. A little JavaScript, served
//! from `/assets/`, draws the live graph; a Content-Security-Policy allows
//! no other script. Actions are POST forms checked against a CSRF token
//! ([`access`]). The dashboard reads and changes Redis through the queue
//! module's browse and admin methods; it holds no job state of its own.

mod access;
mod actions;
mod api;
mod format;
mod pages;
mod periodic;
mod plugins;
mod sets;
mod shard;

pub use access::Credentials;
use shard::Picked;

use crate::busy::Busy;
use crate::metrics::Metrics;
use crate::queue::Admin;
use crate::registry::Registry;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What the dashboard reads.
pub struct Dashboard {
    /// Each Redis shard the runner serves, by index; one for most.
    pub shards: Vec<ShardView>,
    /// This process's counters.
    pub metrics: Arc<Metrics>,
    /// The plugins loaded here, and their history.
    pub registry: Arc<Registry>,
    /// The periodic jobs declared (pushed to the first shard).
    pub periodic: Arc<Vec<crate::periodic::spec::Periodic>>,
}

/// One Redis shard as the dashboard sees it.
pub struct ShardView {
    /// Sidekiq's data in it, read and changed as an operator would.
    pub queue: Admin,
    /// The jobs from it running here.
    pub busy: Arc<Busy>,
}

impl Dashboard {
    /// The shard a request looks at.
    fn queue(&self, picked: Picked) -> &Admin {
        &self.shards[picked.index].queue
    }

    /// The first shard, which holds the periodic jobs' state.
    fn first(&self) -> &Admin {
        &self.shards[0].queue
    }

    /// Cancels `jid` on every shard, as `runner cancel` does: a jid names
    /// one job wherever it is.
    async fn cancel(&self, jid: &str) -> anyhow::Result<crate::queue::Cancelled> {
        let mut found = crate::queue::Cancelled::default();
        for shard in &self.shards {
            let here = shard.queue.cancel(jid).await?;
            found.removed_from.extend(here.removed_from);
            found.running_on.extend(here.running_on);
        }
        Ok(found)
    }
}

/// The handlers' shared state.
type Shared = Arc<Dashboard>;

/// Serves the dashboard on `addr` in the background. A dashboard that can't
/// bind (another runner on this host has the port) is logged and skipped:
/// the runner's job is running jobs.
pub async fn spawn(
    addr: SocketAddr,
    credentials: Credentials,
    dashboard: Dashboard,
) -> Option<JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(addr = %addr, error = %err, "dashboard not served: cannot listen on --http");
            return None;
        }
    };
    let url = format!("http://{}/", listener.local_addr().unwrap_or(addr));
    tracing::info!(url = %url, auth = credentials.describe(), "dashboard listening");
    let app = router(Arc::new(dashboard), Arc::new(credentials));
    Some(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the dashboard stopped");
        }
    }))
}

fn router(dashboard: Shared, credentials: Arc<Credentials>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/queues", get(pages::queues))
        .route("/queues/{name}", get(pages::queue))
        .route("/queues/{name}/delete", post(actions::delete_queued))
        .route("/queues/{name}/clear", post(actions::clear_queue))
        .route("/busy", get(pages::busy))
        .route("/busy/signal", post(actions::signal_process))
        .route("/jobs/cancel", post(actions::cancel_job))
        .route("/api/jobs/{jid}/cancel", post(api::cancel))
        .route("/plugins", get(plugins::page))
        .route("/periodic", get(periodic::page))
        .route("/periodic/act", post(periodic::act))
        .route("/api/periodic", get(periodic::api))
        .merge(sets::routes())
        .route("/shard/{index}", get(shard::pick))
        .route("/metrics", get(api::metrics))
        .route("/api/stats", get(api::stats))
        .route("/api/history", get(api::history))
        .route("/api/queues", get(api::queues))
        .route("/api/queues/{name}", get(api::queue))
        .route("/api/busy", get(api::busy))
        .route("/api/plugins", get(plugins::api))
        .route(
            "/assets/dashboard.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("assets/dashboard.js"))),
        )
        .route(
            "/assets/dashboard.css",
            get(|| asset("text/css; charset=utf-8", include_str!("assets/dashboard.css"))),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(credentials, access::guard))
        .with_state(dashboard)
}

/// One of the files under `assets/`, compiled into the binary.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// A handler's failure: a request that asks for something not offered
/// (400), or anything else (500, logged); shown with the reason.
pub struct WebError(StatusCode, anyhow::Error);

impl WebError {
    /// A request the dashboard won't carry out, with the reason.
    pub fn bad_request(reason: String) -> WebError {
        WebError(StatusCode::BAD_REQUEST, anyhow::anyhow!(reason))
    }
}

impl<E: Into<anyhow::Error>> From<E> for WebError {
    fn from(err: E) -> Self {
        WebError(StatusCode::INTERNAL_SERVER_ERROR, err.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(error = %format!("{:#}", self.1), "dashboard request failed");
        }
        (self.0, format!("{:#}", self.1)).into_response()
    }
}

/// What a handler returns.
type WebResult<T> = Result<T, WebError>;
