//! The queue pages' actions (delete one waiting job, clear a queue) and the
//! form decoding every action shares. Forms repeat fields (one `key` per
//! checked row), so they are decoded by hand rather than into a struct.

use super::access::{CsrfToken, check_form};
use super::{Picked, Shared, WebResult};
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};

/// A submitted `application/x-www-form-urlencoded` form.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &str) -> Form {
        Form(url::form_urlencoded::parse(body.as_bytes()).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A submitted form whose CSRF token checked out; handlers that change
/// anything take their fields from this, so none can skip the check.
pub struct CheckedForm(pub Form);

impl<S: Send + Sync> FromRequest<S> for CheckedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let token = request.extensions().get::<CsrfToken>().cloned().unwrap_or(CsrfToken(String::new()));
        let headers = request.headers().clone();
        let body = String::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        check_form(&token, &headers, form.get("csrf")).map_err(IntoResponse::into_response)?;
        Ok(CheckedForm(form))
    }
}

pub async fn delete_queued(
    State(dashboard): State<Shared>,
    picked: Picked,
    Path(name): Path<String>,
    CheckedForm(form): CheckedForm,
) -> WebResult<Redirect> {
    dashboard.queue(picked).delete_queued(&name, form.get("payload").unwrap_or_default()).await?;
    Ok(Redirect::to(&format!("/queues/{}", encode(&name))))
}

pub async fn clear_queue(
    State(dashboard): State<Shared>,
    picked: Picked,
    Path(name): Path<String>,
    CheckedForm(_): CheckedForm,
) -> WebResult<Redirect> {
    dashboard.queue(picked).clear_queue(&name).await?;
    Ok(Redirect::to("/queues"))
}

/// The Busy page's Quiet and Stop buttons.
pub async fn signal_process(
    State(dashboard): State<Shared>,
    picked: Picked,
    CheckedForm(form): CheckedForm,
) -> WebResult<Redirect> {
    let (identity, signal) =
        (form.get("identity").unwrap_or_default(), form.get("signal").unwrap_or_default());
    dashboard.queue(picked).signal_process(identity, signal).await?;
    Ok(Redirect::to("/busy"))
}

/// A job view's Cancel button.
pub async fn cancel_job(
    State(dashboard): State<Shared>,
    CheckedForm(form): CheckedForm,
) -> WebResult<Redirect> {
    let jid = form.get("jid").unwrap_or_default();
    let found = dashboard.cancel(jid).await?;
    tracing::info!(jid, removed_from = ?found.removed_from, running_on = ?found.running_on, "job cancelled from the dashboard");
    Ok(Redirect::to("/busy"))
}

/// A queue name as a path segment.
pub fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::Form;

    #[test]
    fn repeated_fields() {
        let form = Form::parse("csrf=abc&key=1.5%7Cj1&key=2%7Cj2&checked=retry");
        assert_eq!(form.get("csrf"), Some("abc"));
        assert_eq!(form.all("key").collect::<Vec<_>>(), ["1.5|j1", "2|j2"]);
        assert_eq!(form.get("missing"), None);
    }
}
