//! Which Redis shard a dashboard request looks at, when the runner serves
//! several: `?shard=N` on the URL (for the JSON API and scripts), else the
//! `shard` cookie the picker in every page's header sets (`/shard/N`), else
//! the first. Every page, the live graph's polling and every action follow
//! it; the overview adds a table of every shard with the totals.

use super::Shared;
use super::access::cookie;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The cookie that remembers the shard picked.
const COOKIE: &str = "shard";

/// The shard a request looks at, and how many there are.
#[derive(Clone, Copy, Debug)]
pub struct Picked {
    /// Its place among the `--redis` URLs.
    pub index: usize,
    /// How many shards the runner serves.
    pub count: usize,
}

impl FromRequestParts<Shared> for Picked {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, dashboard: &Shared) -> Result<Picked, Response> {
        let count = dashboard.shards.len();
        if let Some(asked) = query_shard(parts.uri.query()) {
            return match asked {
                Ok(index) if index < count => Ok(Picked { index, count }),
                _ => Err((
                    StatusCode::BAD_REQUEST,
                    format!("shard: there are {count} shards, numbered from 0 to {}", count - 1),
                )
                    .into_response()),
            };
        }
        // The cookie only remembers a choice: one that no longer fits (a
        // runner with fewer shards, or a mangled value) means the first.
        let remembered = cookie(&parts.headers, COOKIE).and_then(|value| value.parse().ok());
        Ok(Picked { index: remembered.filter(|index| *index < count).unwrap_or(0), count })
    }
}

fn query_shard(query: Option<&str>) -> Option<Result<usize, ()>> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix("shard="))?;
    Some(value.parse().map_err(|_| ()))
}

/// `?back=/path` on the picker's links: the page to return to.
#[derive(Debug, Deserialize)]
pub struct Back {
    back: Option<String>,
}

/// `GET /shard/{n}`: looks at shard `n` from now on, and goes back to the
/// page the picker was on (a path on this site only).
pub async fn pick(
    axum::extract::State(dashboard): axum::extract::State<Shared>,
    Path(index): Path<usize>,
    Query(back): Query<Back>,
) -> Response {
    let count = dashboard.shards.len();
    if index >= count {
        let reason = format!("shard {index}: there are {count} shards, numbered from 0 to {}", count - 1);
        return (StatusCode::BAD_REQUEST, reason).into_response();
    }
    let back =
        back.back.filter(|path| path.starts_with('/') && !path.starts_with("//") && !path.contains('\\'));
    let cookie = format!("{COOKIE}={index}; Path=/; SameSite=Lax; HttpOnly");
    ([(header::SET_COOKIE, cookie)], Redirect::to(back.as_deref().unwrap_or("/"))).into_response()
}

/// The picker in the header, on page `active`; nothing with one shard.
pub fn picker(picked: Picked, active: &str) -> Markup {
    html! {
        @if picked.count > 1 {
            span.shards {
                "Redis shard: "
                @for index in 0..picked.count {
                    a href={ "/shard/" (index) "?back=" (active) } class=[(index == picked.index).then_some("active")] { (index) }
                }
            }
        }
    }
}

/// On the overview with several shards: each shard's counts, and the totals.
pub async fn table(dashboard: &Shared, picked: Picked) -> anyhow::Result<Markup> {
    if picked.count < 2 {
        return Ok(html! {});
    }
    let mut rows = Vec::new();
    for shard in &dashboard.shards {
        let s = shard.queue.stats().await?;
        rows.push([s.processed, s.failed, s.busy, s.enqueued, s.retries, s.scheduled, s.dead]);
    }
    let total: Vec<u64> = (0..7).map(|column| rows.iter().map(|row| row[column]).sum()).collect();
    Ok(html! {
        h2 { "Shards" }
        table.shards {
            thead { tr {
                th { "Shard" }
                @for label in ["Processed", "Failed", "Busy", "Enqueued", "Retries", "Scheduled", "Dead"] { th.num { (label) } }
            } }
            tbody {
                @for (index, row) in rows.iter().enumerate() {
                    tr class=[(index == picked.index).then_some("active")] {
                        td { a href={ "/shard/" (index) "?back=/" } { (index) } }
                        @for value in row { td.num { (value) } }
                    }
                }
                tr.total { th { "Total" } @for value in &total { td.num { (value) } } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_wins_over_the_cookie() {
        assert_eq!(query_shard(Some("page=2&shard=1")), Some(Ok(1)));
        assert_eq!(query_shard(Some("page=2")), None);
        assert_eq!(query_shard(Some("shard=x")), Some(Err(())));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::COOKIE, "csrf=abc; shard=2".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("2"));
    }
}
