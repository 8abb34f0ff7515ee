//! What a plugin may call over HTTP, as its policy section says
//! (`[plugins.NAME.http]`), and the keys it may sign with
//! (`[plugins.NAME.signing_keys]`).
//!
//! ```toml
//! [plugins.webhook.http]
//! max_requests_per_job = 5
//! timeout_seconds = 10
//!
//! [[plugins.webhook.http.destinations]]
//! url = "https://*.hooks.example"          # scheme, host or *.suffix, port
//! methods = ["POST"]
//! headers = { Authorization = "Bearer ${HOOKS_TOKEN}" }
//!
//! [plugins.webhook.signing_keys]
//! endpoints = "${WEBHOOK_SECRET}"          # whsec_... or plain text
//! ```
//!
//! Values of attached headers and signing keys come from the runner's
//! environment (`${NAME}`), read once when the policy is loaded; a plugin
//! never sees them. The grant is checked and compiled here, once, so a
//! mistake stops the runner at start with the file and setting named.

use crate::outbound::Routes;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A plugin's outgoing HTTP, as written in its policy section.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpGrant {
    /// Where requests may go; nothing else is reachable.
    pub destinations: Vec<DestinationGrant>,
    /// Addresses (`127.0.0.1`, `10.0.0.0/8`, `::1`) a request may connect
    /// to although they are loopback, private, link-local or otherwise not
    /// public; without them every such address is refused.
    pub allowed_private_addresses: Vec<String>,
    /// The most bytes of one request's body.
    pub max_request_bytes: u64,
    /// The most bytes of one response's body; the rest is cut off.
    pub max_response_bytes: u64,
    /// The longest one request may take, from connecting to its response's
    /// last byte; never past the job's own time limit.
    pub timeout_seconds: f64,
    /// The most requests one job may make.
    pub max_requests_per_job: u32,
    /// The header that carries each request's idempotency key (the jid and
    /// the request's number in the run); empty for none.
    pub idempotency_header: String,
    /// The compiled form, made when the policy is loaded.
    #[serde(skip)]
    pub routes: Compiled,
}

impl Default for HttpGrant {
    fn default() -> Self {
        HttpGrant {
            destinations: Vec::new(),
            allowed_private_addresses: Vec::new(),
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 10 * 1024 * 1024,
            timeout_seconds: 30.0,
            max_requests_per_job: 20,
            idempotency_header: "Idempotency-Key".into(),
            routes: Compiled::default(),
        }
    }
}

/// One place a plugin may send requests to.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationGrant {
    /// `https://api.example.com`, `https://*.example.com:8443`,
    /// `http://127.0.0.1:8080`: a scheme, a host (or `*.` and a suffix)
    /// and an optional port (the scheme's own by default). No path.
    pub url: String,
    /// The methods allowed there.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Headers the host adds to every request there, after the plugin has
    /// handed it over; `${NAME}` is the runner's environment variable NAME.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of the only CA certificates trusted there (instead of
    /// Mozilla's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// The routes compiled from a grant: shared by a plugin's instances.
#[derive(Clone, Default)]
pub struct Compiled(pub Option<Arc<Routes>>);

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Compiled" } else { "NotCompiled" })
    }
}

/// Compiled routes follow from the grant's own fields, which are compared.
impl PartialEq for Compiled {
    fn eq(&self, _: &Compiled) -> bool {
        true
    }
}

impl HttpGrant {
    /// Checks the grant and compiles its routes (reading the environment
    /// and the CA files it names).
    pub fn compile(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.timeout_seconds > 0.0 && self.timeout_seconds.is_finite(),
            "http.timeout_seconds must be positive"
        );
        anyhow::ensure!(self.max_requests_per_job > 0, "http.max_requests_per_job must be positive");
        self.routes = Compiled(Some(Arc::new(Routes::compile(self)?)));
        Ok(())
    }

    /// The compiled routes; present once the policy is loaded.
    pub fn routes(&self) -> Option<&Arc<Routes>> {
        self.routes.0.as_ref()
    }
}

/// A value the operator keeps from plugins: an attached header's value or
/// a signing key. Never printed.
#[derive(Clone, PartialEq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `text` with every `${NAME}` replaced by the runner's environment
/// variable NAME; `what` names the setting in the error for a missing one.
pub fn expand_env(text: &str, what: &str) -> anyhow::Result<String> {
    expand_with(text, what, |name| std::env::var(name).ok())
}

fn expand_with(text: &str, what: &str, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| anyhow::anyhow!("{what}: a `${{` without its `}}`"))?;
        let name = &after[..end];
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{what}: `${{{name}}}` is not an environment variable's name"
        );
        let value = lookup(name)
            .ok_or_else(|| anyhow::anyhow!("{what}: the environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Signing keys by the names plugins use, resolved from the environment.
/// A Standard Webhooks secret (`whsec_` and Base64) is used decoded, as
/// that spec says; any other text as its bytes.
pub fn signing_keys(written: &BTreeMap<String, String>) -> anyhow::Result<BTreeMap<String, Secret>> {
    use base64::Engine as _;
    let mut keys = BTreeMap::new();
    for (name, value) in written {
        let what = format!("signing_keys.{name}");
        let value = expand_env(value, &what)?;
        let bytes = match value.strip_prefix("whsec_") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| anyhow::anyhow!("{what}: the whsec_ secret is not Base64: {e}"))?,
            None => value.into_bytes(),
        };
        anyhow::ensure!(!bytes.is_empty(), "{what}: the key is empty");
        keys.insert(name.clone(), Secret(bytes));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn environment_variables_are_expanded_and_a_missing_one_is_named() {
        assert_eq!(expand_with("Bearer ${TOKEN}", "x", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_with("${TOKEN}:${TOKEN}", "x", env).unwrap(), "s3cret:s3cret");
        assert_eq!(expand_with("plain $HOME", "x", env).unwrap(), "plain $HOME");
        let err = expand_with("Bearer ${NOPE}", "headers.Authorization", env).unwrap_err().to_string();
        assert!(err.contains("NOPE") && err.contains("headers.Authorization"), "{err}");
        assert!(expand_with("${TOKEN", "x", env).is_err());
        assert!(expand_with("${A B}", "x", env).is_err());
    }

    #[test]
    fn whsec_keys_are_decoded_and_others_taken_as_text() {
        let written = BTreeMap::from([
            ("hooks".to_string(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            ("plain".to_string(), "abc".to_string()),
        ]);
        let keys = signing_keys(&written).unwrap();
        assert_eq!(keys["plain"].0, b"abc");
        assert_eq!(keys["hooks"].0.len(), 24);
        assert_eq!(format!("{:?}", keys["plain"]), "Secret(***)");
        let bad = BTreeMap::from([("x".to_string(), "whsec_!!".to_string())]);
        assert!(signing_keys(&bad).unwrap_err().to_string().contains("signing_keys.x"));
    }
}
