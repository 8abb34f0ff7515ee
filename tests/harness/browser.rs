//! Headless Chromium driven over WebDriver: Debian's `chromium` and
//! `chromedriver`, started on a free port in a temp directory and stopped
//! when dropped.

use crate::{WAIT, eventually, free_port};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// The browser Debian's chromium package installs.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A running chromedriver.
pub struct Browser {
    /// The driver process; chromium runs as its child.
    driver: Child,
    /// Where the driver listens.
    url: String,
    /// The browser profile and the driver's log.
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver and waits until it answers.
    pub fn start() -> Browser {
        let dir = tempfile::tempdir().expect("creating the browser's temp dir");
        let port = free_port();
        let log =
            std::fs::File::create(dir.path().join("chromedriver.log")).expect("creating the driver log");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting chromedriver (Debian package chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        eventually("chromedriver to answer", WAIT, || ureq::get(&status).call().ok().map(|_| ()));
        Browser { driver, url, dir }
    }

    /// A new headless Chromium session.
    pub async fn session(&self) -> Client {
        let profile = self.dir.path().join("profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("opening a Chromium session through chromedriver")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
