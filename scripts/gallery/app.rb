# frozen_string_literal: true

# A small Rails 6.1 app with Active Storage, set up as `rails new` sets it
# up: `config/storage.yml` under GALLERY_ROOT, its service GALLERY_SERVICE
# (`local`, a Disk service, by default; `amazon`, S3; the file is
# scripts/gallery/storage.yml), the
# framework defaults of 6.1 (analysis and purge jobs on their own queues,
# variants tracked in their own table), ActiveJob on Sidekiq pushing to
# REDIS_URL, and a User with an avatar. GALLERY_DATABASE is SQLite
# (`sqlite3:PATH`) or PostgreSQL (`postgres://...`). Tests run snippets in
# it as the app's code would (`user.avatar.attach(...)`, `purge_later`).

require "rails"
require "active_record/railtie"
require "active_job/railtie"
require "active_storage/engine"
require "sidekiq"
require "active_job/queue_adapters/sidekiq_adapter"

class Gallery < Rails::Application
  config.load_defaults 6.1
  config.root = ENV.fetch("GALLERY_ROOT")
  config.eager_load = false
  config.logger = Logger.new(nil)
  config.secret_key_base = "gallery"
  config.active_storage.service = ENV.fetch("GALLERY_SERVICE", "local").to_sym
  config.active_job.queue_adapter = :sidekiq
end

ENV["DATABASE_URL"] = ENV.fetch("GALLERY_DATABASE")
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }
Sidekiq.logger.level = Logger::WARN
Rails.application.initialize!

# SQLite: begin transactions IMMEDIATE, as Rails 7.2 does. Rails 6.1's
# deferred ones fail at once ("database is locked", whatever the timeout)
# when another process writes between their first read and first write,
# and the runner writes blobs' metadata while the app attaches more.
if ActiveRecord::Base.connection.adapter_name == "SQLite"
  ActiveRecord::ConnectionAdapters::SQLite3Adapter.prepend(Module.new do
    def begin_db_transaction
      log("begin immediate transaction", "TRANSACTION") { @connection.transaction(:immediate) }
    end
  end)
end

class User < ActiveRecord::Base
  has_one_attached :avatar
end

# Creates Active Storage's tables (its own migrations, as
# `bin/rails active_storage:install` copies them) and the users table.
def create_gallery_schema!
  migrations = ActiveStorage::Engine.root.join("db/migrate")
  Dir[migrations.join("*.rb")].sort.each { |file| require file }
  ActiveRecord::Migration.verbose = false
  ActiveRecord::Schema.define do
    CreateActiveStorageTables.new.change
    # The example shop's users, when the demo shares its database.
    create_table(:users, if_not_exists: true) { |t| t.string :name }
  end
end

# A PNG of `width` by `height` pixels in a gradient, made here so that the
# demo needs no image tools.
def gradient_png(width, height)
  require "zlib"
  chunk = ->(type, data) { [data.bytesize].pack("N") + type + data + [Zlib.crc32(type + data)].pack("N") }
  rows = (0...height).map { |y| "\0" + (0...width).map { |x| [x * 255 / width, y * 255 / height, 160].pack("C3") }.join }
  "\x89PNG\r\n\x1a\n".b + chunk.("IHDR", [width, height, 8, 2, 0, 0, 0].pack("NNC5")) +
    chunk.("IDAT", Zlib::Deflate.deflate(rows.join)) + chunk.("IEND", "")
end

# Waits up to `seconds` for the block to be true, reading afresh each time.
def wait_for(what, seconds: 30)
  deadline = Time.now + seconds
  until yield
    raise "timed out waiting for #{what}" if Time.now > deadline

    sleep 0.1
  end
end
