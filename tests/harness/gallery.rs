//! The example Active Storage app, `scripts/gallery/app.rb`: Rails 6.1
//! with a Disk service in its own temp directory, over a SQLite file or a
//! PostgreSQL database. Tests run Ruby snippets in it as the app's code
//! would (`user.avatar.attach(...)`, `purge_later`), and read its
//! `config/storage.yml` and stored files as the runner does.

use crate::{Postgres, Redis, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The app's `config/storage.yml`, as `rails new` writes it.
const STORAGE_YML: &str = "test:\n  service: Disk\n  root: <%= Rails.root.join(\"tmp/storage\") %>\n\n\
     local:\n  service: Disk\n  root: <%= Rails.root.join(\"storage\") %>\n";

/// The app, its schema created, and the URL the runner reads it with.
pub struct Gallery {
    /// Rails.root: config/storage.yml, storage/, and the SQLite file.
    root: TempDir,
    /// What ActiveRecord connects to.
    app_database: String,
    /// What the runner gets as `--database`.
    pub runner_database: String,
    redis_url: String,
}

impl Gallery {
    /// The app over a SQLite file.
    pub fn sqlite(redis: &Redis) -> Gallery {
        let root = app_root();
        let path = root.path().join("db.sqlite3");
        let gallery = Gallery {
            // As `rails new` writes database.yml: wait up to 5 s for a lock.
            app_database: format!("sqlite3:{}?timeout=5000", path.display()),
            runner_database: format!("sqlite://{}", path.display()),
            redis_url: redis.url.clone(),
            root,
        };
        gallery.ruby("create_gallery_schema!");
        gallery
    }

    /// The app over PostgreSQL's `shop` database. The runner connects as
    /// `jobrunner`, granted what the README's Active Storage lines grant:
    /// reading, the blobs' `metadata`, and deleting Active Storage's rows.
    pub fn postgres(redis: &Redis, pg: &Postgres, password: &str) -> Gallery {
        let gallery = Gallery {
            app_database: pg.url("postgres", "unused"),
            runner_database: pg.url("jobrunner", password),
            redis_url: redis.url.clone(),
            root: app_root(),
        };
        gallery.ruby("create_gallery_schema!");
        pg.sql(
            "shop",
            &format!(
                "CREATE ROLE jobrunner LOGIN PASSWORD '{password}';
                 GRANT CONNECT ON DATABASE shop TO jobrunner;
                 GRANT USAGE ON SCHEMA public TO jobrunner;
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO jobrunner;
                 GRANT UPDATE (metadata) ON active_storage_blobs TO jobrunner;
                 GRANT DELETE ON active_storage_blobs, active_storage_attachments,
                   active_storage_variant_records TO jobrunner;"
            ),
        );
        gallery
    }

    /// Rails.root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `config/storage.yml`.
    pub fn storage_config(&self) -> PathBuf {
        self.root().join("config/storage.yml")
    }

    /// Where the `local` Disk service keeps `key`.
    pub fn stored(&self, key: &str) -> PathBuf {
        self.root().join("storage").join(&key[..2]).join(&key[2..4]).join(key)
    }

    /// Runs `code` inside the app and returns what it printed.
    pub fn ruby(&self, code: &str) -> String {
        let app = repo_root().join("scripts/gallery/app.rb");
        let output = Command::new("ruby")
            .arg("-r")
            .arg(&app)
            .args(["-e", code])
            .env("GALLERY_ROOT", self.root())
            .env("GALLERY_DATABASE", &self.app_database)
            .env("REDIS_URL", &self.redis_url)
            .output()
            .expect("running ruby (apt-get install ruby-railties ruby-activestorage)");
        assert!(
            output.status.success(),
            "the gallery app failed on {code:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

fn app_root() -> TempDir {
    let root = tempfile::tempdir().expect("creating the gallery's temp dir");
    std::fs::create_dir_all(root.path().join("config")).expect("creating config/");
    std::fs::write(root.path().join("config/storage.yml"), STORAGE_YML).expect("writing config/storage.yml");
    root
}
