//! The JSON views under `/api/` (the same data as the pages) and the
//! Prometheus text at `/metrics`.

use super::pages::PageQuery;
use super::{Picked, Shared, WebError, WebResult};
use crate::queue::{Day, JobView, Page, ProcessView, QueueSummary, RedisInfo, Stats};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// `/api/stats`: the overview's numbers and Redis's.
#[derive(Serialize)]
pub struct Overview {
    pub stats: Stats,
    pub redis: RedisInfo,
}

pub async fn stats(State(dashboard): State<Shared>, picked: Picked) -> WebResult<Json<Overview>> {
    let (stats, redis) =
        tokio::try_join!(dashboard.queue(picked).stats(), dashboard.queue(picked).redis_info())?;
    Ok(Json(Overview { stats, redis }))
}

#[derive(Deserialize)]
pub struct DaysQuery {
    days: Option<usize>,
}

/// `/api/history?days=30`: Sidekiq's daily counters, oldest first.
pub async fn history(
    State(dashboard): State<Shared>,
    picked: Picked,
    Query(query): Query<DaysQuery>,
) -> WebResult<Json<Vec<Day>>> {
    let days = query.days.unwrap_or(30).clamp(1, 365);
    Ok(Json(dashboard.queue(picked).history(days).await?))
}

pub async fn queues(State(dashboard): State<Shared>, picked: Picked) -> WebResult<Json<Vec<QueueSummary>>> {
    Ok(Json(dashboard.queue(picked).queues().await?))
}

pub async fn queue(
    State(dashboard): State<Shared>,
    picked: Picked,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> WebResult<Json<Page<JobView>>> {
    Ok(Json(dashboard.queue(picked).queue_page(&name, query.page.unwrap_or(1)).await?))
}

pub async fn busy(State(dashboard): State<Shared>, picked: Picked) -> WebResult<Json<Vec<ProcessView>>> {
    Ok(Json(dashboard.queue(picked).processes(true).await?))
}

/// `/metrics`: this process's counters, with queue sizes and latencies read
/// from Redis now: over every shard, and per shard when there are several.
pub async fn metrics(State(dashboard): State<Shared>) -> WebResult<Response> {
    let mut views = Vec::new();
    for shard in &dashboard.shards {
        let (queues, sets) = tokio::try_join!(shard.queue.queues(), shard.queue.set_sizes())?;
        let queues: Vec<(String, u64, f64)> =
            queues.into_iter().map(|q| (q.name, q.size, q.latency)).collect();
        views.push((queues, sets.to_vec()));
    }
    let busy = dashboard.shards.iter().map(|shard| shard.busy.count()).sum();
    dashboard.metrics.set_redis_view(&views, busy);
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    Ok((content_type, dashboard.metrics.encode()).into_response())
}

/// `POST /api/jobs/{jid}/cancel`: cancels the job and says where it was.
/// It must carry `Content-Type: application/json`, which no form on
/// another site can send, so a logged-in browser can't be made to cancel.
pub async fn cancel(
    State(dashboard): State<Shared>,
    Path(jid): Path<String>,
    headers: axum::http::HeaderMap,
) -> WebResult<Json<crate::queue::Cancelled>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
    if !json || cross_site {
        return Err(WebError::bad_request(
            "cancel with Content-Type: application/json, from this site".into(),
        ));
    }
    crate::queue::check_jid(&jid).map_err(|e| WebError::bad_request(e.to_string()))?;
    let found = dashboard.cancel(&jid).await?;
    tracing::info!(jid, removed_from = ?found.removed_from, running_on = ?found.running_on, "job cancelled through the API");
    Ok(Json(found))
}
