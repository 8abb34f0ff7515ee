//! Posting the dashboard's forms as its pages do: with the CSRF cookie the
//! first page set and the token it holds.

/// A session with one runner's dashboard.
pub struct Forms {
    /// The dashboard's address, e.g. `http://127.0.0.1:40123`.
    url: String,
    /// `jobrunner_csrf=<token>`, as the browser would send it back.
    cookie: String,
    /// Doesn't follow the redirect after an action.
    agent: ureq::Agent,
}

impl Forms {
    /// Opens a session by reading the dashboard's front page.
    pub fn open(url: &str) -> Forms {
        let page = ureq::get(&format!("{url}/")).call().expect("the dashboard's front page");
        let cookie = page.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a CSRF cookie");
        let cookie = cookie.split(';').next().unwrap_or_default().to_string();
        let agent = ureq::Agent::config_builder().max_redirects(0).build().into();
        Forms { url: url.to_string(), cookie, agent }
    }

    /// Posts `fields` and the CSRF token to `path`; the answer's status.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
        let token = self.cookie.split_once('=').map(|(_, token)| token).unwrap_or_default();
        let mut form = vec![("csrf", token)];
        form.extend_from_slice(fields);
        let url = format!("{}{path}", self.url);
        let response = self.agent.post(&url).header("Cookie", &self.cookie).send_form(form);
        response.map(|r| r.status().as_u16()).unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }
}
