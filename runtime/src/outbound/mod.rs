//! Outgoing HTTP for plugins whose policy grants it: `wasi:http`'s
//! outgoing handler, governed.
//!
//! A plugin hands the host a request; [`send::Requests`] checks it against
//! the plugin's [`Routes`] (destination, method, count, size), attaches the
//! operator's headers and an idempotency key, and sends it over a kept-alive
//! connection of the destination's [`pool`]. [`connect`] opens each new
//! connection itself, to an address [`address`] allows, never following a
//! redirect. [`body`] holds both bodies to their caps and the request to
//! its time limit. What the job's requests came to (a broken rule, a
//! `Retry-After`) is kept in its [`Report`].

pub mod address;
mod body;
mod connect;
mod pool;
pub mod retry_after;
mod routes;
mod send;
mod tls;

pub use routes::Routes;
pub use send::{Requests, Sent};

use std::sync::Mutex;
use std::time::Duration;

/// What one job's requests came to, beyond what the plugin was told.
#[derive(Debug, Default)]
pub struct Report {
    /// The first rule a request broke.
    violation: Mutex<Option<String>>,
    /// The longest wait a response asked for with `Retry-After`.
    retry_after: Mutex<Option<Duration>>,
}

impl Report {
    /// Notes a broken rule; the first one is kept.
    pub fn broke(&self, rule: String) {
        self.violation.lock().expect("report lock").get_or_insert(rule);
    }

    /// The first broken rule, if any.
    pub fn violation(&self) -> Option<String> {
        self.violation.lock().expect("report lock").clone()
    }

    /// Notes that a response asked the job not to come back before `wait`.
    pub fn ask_retry_after(&self, wait: Duration) {
        let mut asked = self.retry_after.lock().expect("report lock");
        *asked = Some(asked.map_or(wait, |earlier| earlier.max(wait)));
    }

    /// The longest wait a response asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        *self.retry_after.lock().expect("report lock")
    }
}
