//! Keeping passwords out of what the runner shows: `--help`, logs, error
//! messages. URLs (`smtp://user:pass@host`, `redis://:pass@host`,
//! `postgres://user:pass@host/db`) are shown with their password replaced.

/// `url` with its password replaced by `***`. A URL that doesn't parse
/// but carries userinfo loses all of it.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            _ => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("smtp://user:secret@host:25"), "smtp://user:***@host:25");
        assert_eq!(redact_url("redis://:secret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(redact_url("postgres://u:p%40ss@db/shop"), "postgres://u:***@db/shop");
        assert_eq!(redact_url("smtp://host:25"), "smtp://host:25");
        assert_eq!(redact_url("redis://:secret@bad host"), "redis://***@bad host");
        assert_eq!(redact_url("sqlite://db/shop.sqlite3"), "sqlite://db/shop.sqlite3");
    }
}
