//! The example Active Storage app, `scripts/gallery/app.rb`: Rails 6.1
//! with a Disk service in its own temp directory, over a SQLite file or a
//! PostgreSQL database. Tests run Ruby snippets in it as the app's code
//! would (`user.avatar.attach(...)`, `purge_later`), and read its
//! `config/storage.yml` and stored files as the runner does. On S3, the
//! app's uploads go to the test's S3 server through Rails' own S3 service.

use crate::{Postgres, Redis, S3Server, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The app, its schema created, and the URL the runner reads it with.
pub struct Gallery {
    /// Rails.root: config/storage.yml, storage/, and the SQLite file.
    root: TempDir,
    /// What ActiveRecord connects to.
    app_database: String,
    /// What the runner gets as `--database`.
    pub runner_database: String,
    redis_url: String,
    /// Where uploads go: the `local` Disk service, or `amazon` on S3.
    files: Files,
}

enum Files {
    Disk,
    /// The `mirror` service: `local`, mirrored onto `backup`.
    Mirror,
    /// The bucket's folder on the S3 server, and the app's credentials.
    S3 {
        bucket: PathBuf,
        env: Vec<(&'static str, String)>,
    },
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
            files: Files::Disk,
        };
        gallery.ruby("create_gallery_schema!");
        gallery
    }

    /// The app over a SQLite file, its uploads in `s3`'s bucket `gallery`.
    pub fn sqlite_on_s3(redis: &Redis, s3: &S3Server) -> Gallery {
        assert_eq!(s3.bucket, "gallery", "storage.yml names the bucket gallery");
        let mut gallery = Gallery::sqlite(redis);
        gallery.files = Files::S3 { bucket: s3.stored(""), env: s3.env() };
        gallery
    }

    /// The app over a SQLite file, its uploads on the `mirror` service.
    pub fn sqlite_mirrored(redis: &Redis) -> Gallery {
        Gallery { files: Files::Mirror, ..Gallery::sqlite(redis) }
    }

    /// The service uploads go to, as `--storage-service` names it.
    pub fn service(&self) -> &'static str {
        match self.files {
            Files::Disk => "local",
            Files::Mirror => "mirror",
            Files::S3 { .. } => "amazon",
        }
    }

    /// The app over PostgreSQL's `shop` database. The runner connects as
    /// `jobrunner`, granted what the Active Storage lines of docs/rails.md grant:
    /// reading, the blobs' `metadata`, creating and deleting Active
    /// Storage's rows.
    pub fn postgres(redis: &Redis, pg: &Postgres, password: &str) -> Gallery {
        let gallery = Gallery {
            app_database: pg.url("postgres", "unused"),
            runner_database: pg.url("jobrunner", password),
            redis_url: redis.url.clone(),
            root: app_root(),
            files: Files::Disk,
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
                   active_storage_variant_records TO jobrunner;
                 GRANT INSERT ON active_storage_blobs, active_storage_attachments,
                   active_storage_variant_records TO jobrunner;
                 GRANT USAGE ON SEQUENCE active_storage_blobs_id_seq, active_storage_attachments_id_seq,
                   active_storage_variant_records_id_seq TO jobrunner;"
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

    /// Where the service keeps `key`: the Disk service's `xx/yy/key`, or
    /// the S3 server's file of the object.
    pub fn stored(&self, key: &str) -> PathBuf {
        match &self.files {
            Files::Disk | Files::Mirror => self.on_disk("storage", key),
            Files::S3 { bucket, .. } => bucket.join(key),
        }
    }

    /// Where the `backup` service, the `mirror` service's mirror, keeps `key`.
    pub fn mirrored(&self, key: &str) -> PathBuf {
        self.on_disk("backup", key)
    }

    /// Where a Disk service with root `folder` keeps `key`: `xx/yy/key`.
    fn on_disk(&self, folder: &str, key: &str) -> PathBuf {
        self.root().join(folder).join(&key[..2]).join(&key[2..4]).join(key)
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
            .env("GALLERY_SERVICE", self.service())
            .envs(match &self.files {
                Files::Disk | Files::Mirror => Vec::new(),
                Files::S3 { env, .. } => env.clone(),
            })
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
    std::fs::copy(repo_root().join("scripts/gallery/storage.yml"), root.path().join("config/storage.yml"))
        .expect("copying scripts/gallery/storage.yml to config/");
    root
}
