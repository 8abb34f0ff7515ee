//! The example Rails app, `scripts/shop/app.rb`: real ActiveRecord,
//! ActiveJob and ActionMailer enqueuing through Sidekiq's client, over a
//! SQLite file or a PostgreSQL database. Tests run Ruby snippets in it as
//! an app's code would run (`place_order`, `deliver_later`...).

use crate::{Postgres, Redis, repo_root};
use std::process::Command;
use tempfile::TempDir;

/// The password of the runner's read-only PostgreSQL user.
pub const RUNNER_DB_PASSWORD: &str = "runner-secret";

/// The app, its schema created, and the URL the runner reads it with.
pub struct Shop {
    /// What ActiveRecord connects to (`sqlite3:PATH`, `postgres://...`).
    app_database: String,
    /// What the runner gets as `--database`.
    pub runner_database: String,
    /// Sidekiq's client pushes here.
    redis_url: String,
    /// Holds the SQLite file.
    _dir: TempDir,
}

impl Shop {
    /// The app over a SQLite file.
    pub fn sqlite(redis: &Redis) -> Shop {
        let dir = tempfile::tempdir().expect("creating the shop's temp dir");
        let path = dir.path().join("shop.sqlite3");
        let shop = Shop {
            app_database: format!("sqlite3:{}", path.display()),
            runner_database: format!("sqlite://{}", path.display()),
            redis_url: redis.url.clone(),
            _dir: dir,
        };
        shop.ruby("create_shop_schema!");
        shop
    }

    /// The app over PostgreSQL's `shop` database. The runner connects as
    /// `jobrunner`, granted only what the GRANT lines of docs/rails.md give.
    pub fn postgres(redis: &Redis, pg: &Postgres) -> Shop {
        let shop = Shop {
            app_database: pg.url("postgres", "unused"),
            runner_database: pg.url("jobrunner", RUNNER_DB_PASSWORD),
            redis_url: redis.url.clone(),
            _dir: tempfile::tempdir().expect("creating the shop's temp dir"),
        };
        shop.ruby("create_shop_schema!");
        pg.sql(
            "shop",
            &format!(
                "CREATE ROLE jobrunner LOGIN PASSWORD '{RUNNER_DB_PASSWORD}';
                 GRANT CONNECT ON DATABASE shop TO jobrunner;
                 GRANT USAGE ON SCHEMA public TO jobrunner;
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO jobrunner;"
            ),
        );
        shop
    }

    /// Runs `code` inside the app and returns what it printed.
    pub fn ruby(&self, code: &str) -> String {
        self.ruby_with(code, &[])
    }

    /// Runs `code` inside the app with extra environment variables.
    pub fn ruby_with(&self, code: &str, env: &[(&str, &str)]) -> String {
        let app = repo_root().join("scripts/shop/app.rb");
        let output = Command::new("ruby")
            .arg("-r")
            .arg(&app)
            .args(["-e", code])
            .env("SHOP_DATABASE", &self.app_database)
            .env("REDIS_URL", &self.redis_url)
            .envs(env.iter().copied())
            .output()
            .expect(
                "running ruby (apt-get install ruby-activerecord ruby-actionmailer ruby-sqlite3 ruby-pg)",
            );
        assert!(
            output.status.success(),
            "the shop app failed on {code:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}
