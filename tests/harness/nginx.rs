//! nginx from Debian as the receiver of plugins' HTTP requests, on a free
//! port, plain or with TLS from [`Certs`], logging each request it gets
//! (method, path, status, the headers the tests look at, the body) as one
//! JSON line.
//!
//! Paths a test can send to:
//! - `/hooks/ok`: 200; `/hooks/missing`: 404; `/hooks/busy`: 429 with
//!   `Retry-After: 120`; `/hooks/down`: 500;
//! - `/hooks/flaky`: 500 until [`Nginx::heal`], then 200;
//! - `/hooks/moved`: 307 to [`Receiver::redirect`];
//! - `/hooks/hang`: passed on to [`Receiver::hang`] (a listener that never
//!   answers) until [`Nginx::heal`], then 200;
//! - `/hooks/big`: a 1 GiB file, to any method.
//!
//! The `/hooks/` requests go through nginx's proxy to an inner server that
//! answers them, so nginx reads each body and logs it.

use crate::{Certs, WAIT, eventually, free_port};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    /// `http://127.0.0.1:PORT` or `https://...`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
}

/// One request as nginx logged it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Logged {
    pub method: String,
    pub uri: String,
    pub status: u16,
    pub idempotency_key: String,
    pub authorization: String,
    pub webhook_id: String,
    pub webhook_timestamp: String,
    pub webhook_signature: String,
    pub body: String,
    /// nginx's serial number of the connection the request came on.
    pub connection: u64,
}

/// Where nginx's special paths lead.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// Where `/hooks/moved` redirects to.
    pub redirect: String,
    /// The port `/hooks/hang` is passed on to.
    pub hang: u16,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver { redirect: "http://127.0.0.1:9/".into(), hang: 9 }
    }
}

impl Nginx {
    /// Plain HTTP.
    pub fn start() -> Nginx {
        Nginx::launch(None, Receiver::default())
    }

    /// Plain HTTP, with the special paths leading where `receiver` says.
    pub fn start_with(receiver: Receiver) -> Nginx {
        Nginx::launch(None, receiver)
    }

    /// HTTPS with `certs`' server certificate (for 127.0.0.1).
    pub fn start_tls(certs: &Certs) -> Nginx {
        Nginx::launch(Some(certs), Receiver::default())
    }

    fn launch(certs: Option<&Certs>, receiver: Receiver) -> Nginx {
        let dir = tempfile::tempdir().expect("creating nginx's temp dir");
        let (port, inner) = (free_port(), free_port());
        let big = std::fs::File::create(dir.path().join("big")).expect("creating the big file");
        big.set_len(1 << 30).expect("making the big file 1 GiB");
        let tls = match certs {
            Some(certs) => format!(
                "ssl_certificate {}; ssl_certificate_key {};",
                certs.path("server.crt").display(),
                certs.path("server.key").display()
            ),
            None => String::new(),
        };
        let listen = format!("127.0.0.1:{port}{}", if certs.is_some() { " ssl" } else { "" });
        let config = CONFIG
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{listen}", &listen)
            .replace("{tls}", &tls)
            .replace("{inner}", &inner.to_string())
            .replace("{redirect}", &receiver.redirect)
            .replace("{hang}", &receiver.hang.to_string());
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).expect("writing nginx.conf");
        let child = Command::new("/usr/sbin/nginx")
            .args([
                "-p",
                &dir.path().display().to_string(),
                "-c",
                &conf.display().to_string(),
                "-e",
                "stderr",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting nginx (apt-get install nginx)");
        let scheme = if certs.is_some() { "https" } else { "http" };
        let nginx = Nginx { child, dir, url: format!("{scheme}://127.0.0.1:{port}"), port };
        eventually("nginx to listen", WAIT, || TcpStream::connect(("127.0.0.1", port)).ok());
        nginx
    }

    /// Makes `/hooks/flaky` answer 200 from now on.
    pub fn heal(&self) {
        std::fs::write(self.dir.path().join("healed"), "").expect("writing the healed mark");
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<Logged> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines().map(|line| serde_json::from_str(line).expect("an access log line is JSON")).collect()
    }

    /// Waits until `count` requests are logged, and returns them.
    pub fn wait_for(&self, count: usize) -> Vec<Logged> {
        eventually(&format!("{count} requests at nginx"), WAIT, || {
            let requests = self.requests();
            (requests.len() >= count).then_some(requests)
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = r#"
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events { worker_connections 512; }
http {
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_body_buffer_size 1m;
    log_format hooks escape=json '{"method":"$request_method","uri":"$request_uri","status":$status,'
        '"idempotency_key":"$http_idempotency_key","authorization":"$http_authorization",'
        '"webhook_id":"$http_webhook_id","webhook_timestamp":"$http_webhook_timestamp",'
        '"webhook_signature":"$http_webhook_signature","body":"$request_body",'
        '"connection":$connection}';
    server {
        listen {listen};
        {tls}
        access_log {dir}/access.log hooks;
        location /hooks/ { proxy_pass http://127.0.0.1:{inner}/; }
        location / { return 404; }
    }
    server {
        listen 127.0.0.1:{inner};
        access_log off;
        location = /ok { return 200 "ok\n"; }
        location = /missing { return 404 "no such hook\n"; }
        location = /down { return 500 "down\n"; }
        location = /busy { add_header Retry-After 120 always; return 429 "slow down\n"; }
        location = /flaky { if (-f {dir}/healed) { return 200 "ok\n"; } return 500 "down\n"; }
        location = /moved { return 307 {redirect}; }
        location = /hang {
            if (-f {dir}/healed) { return 200 "ok\n"; }
            proxy_read_timeout 60s;
            proxy_pass http://127.0.0.1:{hang};
        }
        location = /big {
            # A POST to a static file is a 405; serve it anyway.
            error_page 405 =200 /big.bin;
            alias {dir}/big;
        }
        location = /big.bin { alias {dir}/big; default_type application/octet-stream; }
    }
}
"#;
