//! Rails' own Active Storage jobs, enqueued by a real Rails 6.1 app
//! (`scripts/gallery`) and performed by the `active_storage` plugin: an
//! attached image is analyzed in the sandbox and its metadata written back
//! where Rails reads it; `purge_later` deletes the blob's rows and files,
//! and leaves a blob that is still attached elsewhere.

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};
use jobrunner_tests::{
    Gallery, Postgres, Redis, Runner, RunnerOptions, S3Server, SmtpSink, WAIT, eventually,
};
use serde_json::{Value, json};
use std::path::Path;

/// What the plugin needs, and nothing more: reading Active Storage's rows,
/// writing a blob's metadata, deleting its rows and files.
const POLICY: &str = r#"
[plugins.active_storage]
records = { "ActiveStorage::Blob" = ["key", "content_type", "metadata", "service_name"], "ActiveStorage::Attachment" = ["record_type", "record_id", "blob_id"], "ActiveStorage::VariantRecord" = ["blob_id"] }
writes = { "ActiveStorage::Blob" = ["metadata"] }
deletes = ["ActiveStorage::Blob", "ActiveStorage::Attachment", "ActiveStorage::VariantRecord"]

[plugins.active_storage.blobs]
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
fn analyze_then_purge(gallery: &Gallery, runner: &Runner) {
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
           puts [ActiveStorage::VariantRecord.count, ActiveStorage::Attachment.where(record_type: "ActiveStorage::VariantRecord").count].to_json"#
    ));
    assert_eq!(gone, "[0,0]", "the variant's record and attachment are gone with it");
    eventually("Ann's files deleted", WAIT, || {
        (!gallery.stored(ann_key).exists() && !gallery.stored(&variant_key).exists()).then_some(())
    });
    runner.wait_for_log(&["still attached; not purged"], 1);
    let kept = gallery.ruby(
        r#"b = User.find_by!(name: "Cy").avatar.blob; puts [b.persisted?, b.download.bytesize > 0].to_json"#,
    );
    assert_eq!(kept, "[true,true]", "Bo's blob, still Cy's avatar, is kept with its file");
    assert!(gallery.stored(bo_key).exists());
}

#[test]
fn rails_analyze_and_purge_jobs_on_sqlite() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let gallery = Gallery::sqlite(&redis);
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    analyze_then_purge(&gallery, &runner);
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}

#[test]
fn rails_analyze_and_purge_jobs_on_postgres() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let gallery = Gallery::postgres(&redis, &pg, "runner-secret");
    let runner = runner(&redis, &smtp, &gallery, POLICY);
    analyze_then_purge(&gallery, &runner);
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
    analyze_then_purge(&gallery, &runner);
    assert!(redis.sorted_set("dead").is_empty() && redis.sorted_set("retry").is_empty(), "{}", runner.logs());
    assert!(!runner.logs().contains(jobrunner_tests::S3_SECRET_KEY), "the secret is never logged");
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
    assert!(redis.sorted_set("retry").is_empty(), "{}", runner.logs());
}
