//! Rails' own Active Storage jobs, enqueued by a real Rails 6.1 app
//! (`scripts/gallery`) and performed by the `active_storage` plugin: an
//! attached image is analyzed in the sandbox and its metadata written back
//! where Rails reads it; a `TransformJob` as Rails 7.1 enqueues it makes
//! the variant Rails then finds; `purge_later` deletes the blob's rows and
//! files, and leaves a blob that is still attached elsewhere.

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};
use jobrunner_tests::{
    Gallery, Postgres, Redis, Runner, RunnerOptions, S3Server, SmtpSink, WAIT, eventually,
};
use serde_json::{Value, json};
use std::path::Path;

/// What the plugin needs, and nothing more: reading Active Storage's rows,
/// writing a blob's metadata, creating a variant's blob, record and
/// attachment, deleting rows and files.
const POLICY: &str = r#"
[plugins.active_storage]
records = { "ActiveStorage::Blob" = ["key", "filename", "content_type", "metadata", "service_name"], "ActiveStorage::Attachment" = ["name", "record_type", "record_id", "blob_id"], "ActiveStorage::VariantRecord" = ["blob_id", "variation_digest"] }
writes = { "ActiveStorage::Blob" = ["metadata"] }
inserts = { "ActiveStorage::Blob" = ["key", "filename", "content_type", "metadata", "service_name", "byte_size", "checksum"], "ActiveStorage::VariantRecord" = ["blob_id", "variation_digest"], "ActiveStorage::Attachment" = ["name", "record_type", "record_id", "blob_id"] }
deletes = ["ActiveStorage::Blob", "ActiveStorage::Attachment", "ActiveStorage::VariantRecord"]

[plugins.active_storage.blobs]
write = true
delete = true
"#;

/// A 30×20 PNG, and a 30×20 JPEG whose EXIF orientation (6: turned a
/// quarter clockwise) makes it show as 20×30, in the app's root.
fn write_images(root: &Path) {
    let pixels = RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8 * 8, y as u8 * 12, 90]));
    pixels.save(root.join("avatar.png")).unwrap();
    // A big-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT, 6.
    let exif =
        [b"MM\0*\0\0\0\x08\0\x01".as_slice(), &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0], &[0; 4]].concat();
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new(&mut jpeg);
    encoder.set_exif_metadata(exif).unwrap();
    encoder.write_image(pixels.as_raw(), 30, 20, image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(root.join("turned.jpg"), jpeg).unwrap();
}

fn runner(redis: &Redis, smtp: &SmtpSink, gallery: &Gallery, policy: &str) -> Runner {
    runner_with(redis, smtp, gallery, policy, RunnerOptions::plugins(&["active_storage"]))
}

fn runner_with(
    redis: &Redis,
    smtp: &SmtpSink,
    gallery: &Gallery,
    policy: &str,
    options: RunnerOptions,
) -> Runner {
    let policy_file = gallery.root().join("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    let storage_config = gallery.storage_config();
    let args = [
        "--database",
        &gallery.runner_database,
        "--storage-config",
        storage_config.to_str().unwrap(),
        "--storage-service",
        gallery.service(),
        "--policy",
        policy_file.to_str().unwrap(),
    ];
    Runner::start(&redis.url, &smtp.url, options.args(&args))
}

/// Attaches both images as the app's users' avatars, waits (in Rails) for
/// both to be analyzed, and returns each blob's id, key and metadata as
/// Rails reads them, with what Rails' own analyzer finds in its file.
fn attach_and_analyze(gallery: &Gallery) -> Vec<Value> {
    let out = gallery.ruby(
        r#"users = { "Ann" => "avatar.png", "Bo" => "turned.jpg" }.map do |name, file|
             user = User.create!(name: name)
             user.avatar.attach(io: File.open(Rails.root.join(file)), filename: file)
             user
           end
           wait_for("both avatars analyzed") { users.all? { |u| u.avatar.blob.reload.analyzed? } }
           puts users.map { |u|
             b = u.avatar.blob
             rails = ActiveStorage::Analyzer::ImageAnalyzer.new(b).metadata
             { id: b.id, key: b.key, metadata: b.metadata, rails: rails }
           }.to_json"#,
    );
    serde_json::from_str(&out).unwrap()
}

/// The whole round on either database: analyzed as Rails would, then a
/// purge of a blob with a tracked variant, and of one still attached.
fn analyze_then_purge(gallery: &Gallery, redis: &Redis, runner: &Runner) {
    write_images(gallery.root());
    let blobs = attach_and_analyze(gallery);
    let metadata = |i: usize| blobs[i]["metadata"].clone();
    assert_eq!(metadata(0), json!({"identified": true, "width": 30, "height": 20, "analyzed": true}));
    assert_eq!(metadata(1), json!({"identified": true, "width": 20, "height": 30, "analyzed": true}));
    for blob in &blobs {
        let ours = json!({"width": blob["metadata"]["width"], "height": blob["metadata"]["height"]});
        assert_eq!(ours, blob["rails"], "the sizes Rails' own analyzer (ImageMagick) finds");
    }
    let (ann_key, bo_key) = (blobs[0]["key"].as_str().unwrap(), blobs[1]["key"].as_str().unwrap());
    assert!(gallery.stored(ann_key).exists() && gallery.stored(bo_key).exists());
    let ann_variant_key = transform(gallery, redis);

    // Ann's avatar has a tracked variant with its own stored image; Bo's
    // blob is attached to Cy too, so purging Bo's avatar must keep it.
    let variant_key = gallery.ruby(
        r#"ann = User.find_by!(name: "Ann")
           variant = ActiveStorage::VariantRecord.create!(blob: ann.avatar.blob, variation_digest: "small")
           variant.image.attach(io: File.open(Rails.root.join("avatar.png")), filename: "small.png")
           raise "the variant's image isn't stored" unless variant.image.blob.service.exist?(variant.image.blob.key)
           User.create!(name: "Cy").avatar.attach(User.find_by!(name: "Bo").avatar.blob)
           ann.avatar.purge_later
           User.find_by!(name: "Bo").avatar.purge_later
           puts variant.image.blob.key"#,
    );
    let ann_id = &blobs[0]["id"];
    let gone = gallery.ruby(&format!(
        r#"wait_for("Ann's avatar purged") {{ !ActiveStorage::Blob.exists?({ann_id}) }}
           variants = ActiveStorage::Attachment.where(record_type: "ActiveStorage::VariantRecord")
           puts [ActiveStorage::VariantRecord.where(blob_id: {ann_id}).count,
                 variants.where.not(record_id: ActiveStorage::VariantRecord.select(:id)).count].to_json"#
    ));
    assert_eq!(gone, "[0,0]", "the variants' records and attachments are gone with it");
    eventually("Ann's files deleted", WAIT, || {
        let files = [ann_key, &variant_key, &ann_variant_key];
        files.iter().all(|key| !gallery.stored(key).exists()).then_some(())
    });
    runner.wait_for_log(&["still attached; not purged"], 1);
    let kept = gallery.ruby(
        r#"b = User.find_by!(name: "Cy").avatar.blob; puts [b.persisted?, b.download.bytesize > 0].to_json"#,
    );
    assert_eq!(kept, "[true,true]", "Bo's blob, still Cy's avatar, is kept with its file");
    assert!(gallery.stored(bo_key).exists());
}

/// Pushes an `ActiveStorage::TransformJob` as Rails 7.1 enqueues one for
/// a `preprocessed: true` variant (Debian's Rails 6.1 has no such job).
const TRANSFORM_LATER: &str = r#"
    def transform_later(blob, transformations)
      job = { "job_class" => "ActiveStorage::TransformJob", "job_id" => SecureRandom.uuid,
              "provider_job_id" => nil, "queue_name" => "default", "priority" => nil,
              "arguments" => ActiveJob::Arguments.serialize([blob, transformations]),
              "executions" => 0, "exception_executions" => {}, "locale" => "en", "timezone" => "UTC",
              "enqueued_at" => Time.now.utc.iso8601(9), "scheduled_at" => nil }
      Sidekiq::Client.push("class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                           "wrapped" => "ActiveStorage::TransformJob", "queue" => "default", "args" => [job])
    end
"#;

/// The variants `transform` makes, of Bo's and Ann's avatars.
const VARIANTS: &str = r#"
    BO, ANN = %w[Bo Ann].map { |name| User.find_by!(name: name).avatar.blob }
    VARIANTS = { BO => { resize_to_limit: [10, 10] }, ANN => { resize_to_fill: [8, 8], format: :gif } }
"#;

/// Transforms as Rails 7.1 would: Bo's turned JPEG limited to 10×10 (and
/// once more when it is made, which finds it made), Ann's PNG filled to
/// 8×8 as a GIF. Rails 6.1 then finds each variant processed under its
/// own digest and reads its image. Returns the key of Ann's variant's file.
fn transform(gallery: &Gallery, redis: &Redis) -> String {
    gallery.ruby(&format!(
        r#"{TRANSFORM_LATER}{VARIANTS}
           VARIANTS.each {{ |blob, transformations| transform_later(blob, transformations) }}
           wait_for("both variants processed") {{ VARIANTS.all? {{ |b, t| b.variant(t).send(:processed?) }} }}"#
    ));
    // Two analyses and two transforms so far; then one more transform.
    let processed = |n: u64| {
        eventually(&format!("{n} jobs processed"), WAIT, || {
            (redis.query::<Option<u64>>(&["GET", "stat:processed"]) == Some(n)).then_some(())
        })
    };
    processed(4);
    gallery.ruby(&format!("{TRANSFORM_LATER}{VARIANTS}\ntransform_later(BO, VARIANTS[BO])"));
    processed(5);
    let out = gallery.ruby(&format!(
        r#"require "mini_magick"
           {VARIANTS}
           puts VARIANTS.map {{ |b, t|
             image = b.variant(t).image.blob
             size = MiniMagick::Image.read(image.download).dimensions
             {{ key: image.key, filename: image.filename.to_s, content_type: image.content_type, size: size,
               metadata: image.metadata, checksum_ok: image.checksum == Digest::MD5.base64digest(image.download),
               records: b.variant_records.count,
               images: ActiveStorage::Attachment.where(record: b.variant_records).count }}
           }}.push(ActiveStorage::Blob.count).to_json"#
    ));
    let mut variants: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(variants.pop(), Some(json!(4)), "two avatars and one file for each variant, no more");
    let seen = |v: &Value| {
        let counts = [&v["records"], &v["images"]];
        json!([
            v["filename"],
            v["content_type"],
            v["size"],
            v["checksum_ok"],
            counts,
            v["metadata"]["analyzed"]
        ])
    };
    assert_eq!(seen(&variants[0]), json!(["turned.jpg", "image/jpeg", [7, 10], true, [1, 1], true]));
    assert_eq!(seen(&variants[1]), json!(["avatar.gif", "image/gif", [8, 8], true, [1, 1], true]));
    variants[1]["key"].as_str().unwrap().to_string()
}

#[test]
fn rails_analyze_and_purge_jobs_on_sqlite() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let gallery = Gallery::sqlite(&redis);
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    analyze_then_purge(&gallery, &redis, &runner);
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}

#[test]
fn rails_analyze_and_purge_jobs_on_postgres() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let gallery = Gallery::postgres(&redis, &pg, "runner-secret");
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    analyze_then_purge(&gallery, &redis, &runner);
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}

/// The same on S3: Rails uploads through its own S3 service (aws-sdk-s3)
/// to an S3-compatible server, and the runner reads and deletes there,
/// with the credentials from its environment.
#[test]
fn rails_analyze_and_purge_jobs_on_s3() {
    let (redis, smtp, s3) = (Redis::start(), SmtpSink::start(), S3Server::start("gallery"));
    let gallery = Gallery::sqlite_on_s3(&redis, &s3);
    let mut options = RunnerOptions::plugins(&["active_storage"]);
    for (name, value) in s3.env() {
        options = options.env(name, &value);
    }
    let runner = runner_with(&redis, &smtp, &gallery, POLICY, options);
    analyze_then_purge(&gallery, &redis, &runner);
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
    assert!(!runner.logs().contains(jobrunner_tests::S3_SECRET_KEY), "the secret is never logged");
}

/// A direct upload lands on a Mirror service's primary alone; attaching it
/// makes Rails enqueue a `MirrorJob`, and the runner copies the file to
/// the mirror. A file that doesn't match its blob's checksum is copied
/// nowhere and retried, as Rails retries its `IntegrityError`.
#[test]
fn rails_mirror_jobs_copy_direct_uploads_to_the_mirrors() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let gallery = Gallery::sqlite_mirrored(&redis);
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    write_images(gallery.root());
    let keys = gallery.ruby(
        r#"def direct_upload(name, data, checksum)
             blob = ActiveStorage::Blob.create_before_direct_upload!(filename: "avatar.png",
               byte_size: data.bytesize, checksum: checksum, content_type: "image/png")
             ActiveStorage::Blob.service.primary.upload(blob.key, StringIO.new(data)) # the browser's PUT
             User.create!(name: name).avatar.attach(blob.signed_id)
             blob.key
           end
           data = File.binread(Rails.root.join("avatar.png"))
           puts [direct_upload("Ann", data, Digest::MD5.base64digest(data)),
                 direct_upload("Eve", data, Digest::MD5.base64digest("something else"))].to_json"#,
    );
    let keys: Vec<String> = serde_json::from_str(&keys).unwrap();
    let png = std::fs::read(gallery.root().join("avatar.png")).unwrap();
    eventually("Ann's avatar on the mirror", WAIT, || {
        (std::fs::read(gallery.mirrored(&keys[0])).ok()? == png).then_some(())
    });
    let retried = eventually("Eve's mirroring retried", WAIT, || {
        let retry = redis.sorted_set("retry");
        retry.into_iter().find(|job| job["wrapped"] == "ActiveStorage::MirrorJob")
    });
    let error = retried["error_message"].as_str().unwrap();
    assert!(error.contains("doesn't match the blob's checksum") && error.contains(&keys[1]), "{error}");
    assert!(gallery.stored(&keys[1]).exists() && !gallery.mirrored(&keys[1]).exists());
    assert!(redis.sorted_set("dead").is_empty(), "{}", runner.logs());
}

#[test]
fn without_a_write_grant_analysis_ends_in_the_dead_set_and_the_blob_is_untouched() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let gallery = Gallery::sqlite(&redis);
    let read_only = POLICY.replace("writes = { \"ActiveStorage::Blob\" = [\"metadata\"] }\n", "");
    let runner = runner(&redis, &smtp, &gallery, &read_only);
    write_images(gallery.root());
    gallery.ruby(r#"User.create!(name: "Ann").avatar.attach(io: File.open(Rails.root.join("avatar.png")), filename: "a.png")"#);
    let dead =
        eventually("the analysis in the dead set", WAIT, || redis.sorted_set("dead").into_iter().next());
    assert_eq!(dead["wrapped"], "ActiveStorage::AnalyzeJob");
    let error = dead["error_message"].as_str().unwrap();
    assert!(error.contains("may not change model ActiveStorage::Blob"), "{error}");
    let metadata = gallery.ruby("puts ActiveStorage::Blob.last.metadata.to_json");
    assert_eq!(metadata, r#"{"identified":true}"#, "{}", runner.logs());
}

/// A 1×1 PNG whose header claims 100,000 × 100,000 pixels.
fn png_bomb() -> Vec<u8> {
    let mut png = Vec::new();
    RgbImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    // IHDR's data starts at byte 16: width, height; its CRC covers bytes 12..29.
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A little-endian TIFF of 100,000 × 100,000 grey pixels in one deflated
/// strip of a few bytes.
fn tiff_bomb() -> Vec<u8> {
    let entries: [(u16, u16, u32); 9] = [
        (256, 4, 100_000), // ImageWidth, LONG
        (257, 4, 100_000), // ImageLength
        (258, 3, 8),       // BitsPerSample, SHORT
        (259, 3, 8),       // Compression: deflate
        (262, 3, 1),       // PhotometricInterpretation: black is zero
        (273, 4, 122),     // StripOffsets: just after the IFD
        (277, 3, 1),       // SamplesPerPixel
        (278, 4, 100_000), // RowsPerStrip
        (279, 4, 8),       // StripByteCounts
    ];
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tiff.len(), 122);
    tiff.extend_from_slice(&[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0]);
    tiff
}

#[test]
fn hostile_images_end_their_jobs_for_good_and_leave_their_blobs_as_they_were() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let gallery = Gallery::sqlite(&redis);
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    write_images(gallery.root());
    let root = gallery.root();
    std::fs::write(root.join("bomb.png"), png_bomb()).unwrap();
    std::fs::write(root.join("bomb.tiff"), tiff_bomb()).unwrap();
    // Cut in the middle of its pixels, headers whole.
    let noise = RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x * y % 251) as u8, (x * 7 % 253) as u8, (y * 13 % 241) as u8])
    });
    let mut jpeg = Vec::new();
    JpegEncoder::new(&mut jpeg)
        .write_image(noise.as_raw(), 300, 200, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(root.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(root.join("garbage.png"), [b"\x89PNG\r\n\x1a\n".as_slice(), &[0x5a; 200]].concat())
        .unwrap();
    // The name and content type say PNG; the bytes are a JPEG.
    std::fs::copy(root.join("turned.jpg"), root.join("lying.png")).unwrap();
    let hostile = [
        ("bomb.png", "image/png", "more pixels than an image may have"),
        ("bomb.tiff", "image/tiff", "100000×100000 pixels, more pixels than an image may have"),
        ("truncated.jpg", "image/jpeg", "a damaged image: the JPEG ends before its end marker"),
        ("garbage.png", "image/png", "not a readable image"),
        ("lying.png", "image/png", "its content type is image/png but its bytes are image/jpeg"),
    ];
    let uploads: String = hostile
        .iter()
        .map(|(file, content_type, _)| {
            format!(
                "blob = ActiveStorage::Blob.create_and_upload!(io: File.open(Rails.root.join({file:?})), \
                 filename: {file:?}, content_type: {content_type:?}, identify: false)\n\
                 User.create!(name: {file:?}).avatar.attach(blob)\n"
            )
        })
        .collect();
    // Beside them, a good PNG, and an SVG: a format the plugin doesn't
    // decode, analyzed without a size, as Rails' analyzer leaves it.
    gallery.ruby(&format!(
        "{uploads}User.create!(name: \"Ann\").avatar.attach(io: File.open(Rails.root.join(\"avatar.png\")), filename: \"avatar.png\")\n\
         User.create!(name: \"Logo\").avatar.attach(io: StringIO.new(%(<svg xmlns=\"http://www.w3.org/2000/svg\"/>)), \
         filename: \"logo.svg\", content_type: \"image/svg+xml\")"
    ));

    let dead = eventually("the five hostile images in the dead set", WAIT, || {
        let dead = redis.sorted_set("dead");
        (dead.len() >= hostile.len()).then_some(dead)
    });
    for (file, _, reason) in hostile {
        let name = format!("{file:?}");
        let user_blob = gallery.ruby(&format!("puts User.find_by!(name: {name}).avatar.blob.id"));
        let gid = format!("ActiveStorage::Blob/{user_blob}\"");
        let job = dead
            .iter()
            .find(|job| job["args"].to_string().contains(&gid))
            .unwrap_or_else(|| panic!("{file} not dead"));
        let error = job["error_message"].as_str().unwrap();
        assert!(error.contains(reason), "{file}: {error}");
    }
    let metadata = gallery.ruby(
        r#"wait_for("Ann's and the logo's avatars analyzed") { %w[Ann Logo].all? { |n| User.find_by!(name: n).avatar.blob.reload.analyzed? } }
           puts ActiveStorage::Blob.order(:id).map(&:metadata).to_json"#,
    );
    let metadata: Vec<Value> = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata[..5], vec![json!({"identified": true}); 5], "nothing written to the hostile blobs");
    assert_eq!(metadata[5], json!({"identified": true, "width": 30, "height": 20, "analyzed": true}));
    assert_eq!(metadata[6], json!({"identified": true, "analyzed": true}), "the SVG, without a size");

    // Their variants fail as their analyses did, as does a transformation
    // the plugin doesn't perform, naming itself; no variant is made.
    let transforms = [
        ("bomb.png", "{ resize_to_limit: [10, 10] }", "more pixels than an image may have"),
        ("lying.png", "{ resize_to_limit: [10, 10] }", "its bytes are image/jpeg"),
        ("Ann", "{ resize_to_limit: [10, 10], rotate: 90 }", "the transformation rotate is not one"),
    ];
    let pushes: String = transforms
        .iter()
        .map(|(user, variant, _)| {
            format!("transform_later(User.find_by!(name: {user:?}).avatar.blob, {variant})\n")
        })
        .collect();
    gallery.ruby(&format!("{TRANSFORM_LATER}{pushes}"));
    let dead = eventually("the three transforms in the dead set", WAIT, || {
        let dead: Vec<Value> = redis
            .sorted_set("dead")
            .into_iter()
            .filter(|job| job["wrapped"] == "ActiveStorage::TransformJob")
            .collect();
        (dead.len() >= transforms.len()).then_some(dead)
    });
    for (user, _, reason) in transforms {
        assert!(
            dead.iter().any(|job| job["error_message"].as_str().unwrap().contains(reason)),
            "{user}: {reason} in {dead:?}"
        );
    }
    let made = gallery.ruby("puts [ActiveStorage::VariantRecord.count, ActiveStorage::Blob.count].to_json");
    assert_eq!(made, "[0,7]", "no variant record, no blob beside the seven uploads");
    assert!(redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}
