# The example shop app: the models, jobs and mailers of a Rails app, made of
# Debian's ActiveRecord, ActiveJob, ActionMailer and GlobalID packages and
# enqueuing through Sidekiq's client, as `rails new` would wire them. The
# demo and the tests load it; the runner performs its jobs.
#
#   SHOP_DATABASE  sqlite3:PATH or postgres://user:pass@host:port/db
#   REDIS_URL      where Sidekiq's client pushes
#   SHOP_DELIVERY_JOB=old   Rails 5.2's DeliveryJob instead of MailDeliveryJob

require "logger"
require "active_record"
require "active_job"
require "action_mailer"
require "global_id"
require "sidekiq"
require "active_job/queue_adapters/sidekiq_adapter"

Sidekiq.configure_client { |config| config.redis = { url: ENV.fetch("REDIS_URL") } }
Sidekiq.logger.level = Logger::WARN
ActiveJob::Base.queue_adapter = :sidekiq
ActiveJob::Base.logger = Logger.new(nil)
ActiveRecord::Base.logger = nil
# What Rails' railties set up for an app called Shop.
GlobalID.app = "shop"
ActiveRecord::Base.include GlobalID::Identification
GlobalID::Locator.use(:shop) { |gid| gid.model_class.find(gid.model_id) }
# `config.load_defaults "6.0"` and later: deliver_later enqueues MailDeliveryJob.
unless ENV["SHOP_DELIVERY_JOB"] == "old"
  ActionMailer::Base.delivery_job = ActionMailer::MailDeliveryJob
end
ActionMailer::Base.delivery_method = :test

ActiveRecord::Base.establish_connection(ENV.fetch("SHOP_DATABASE"))

# The example schema, as db/schema.rb would create it.
def create_shop_schema!
  ActiveRecord::Schema.verbose = false
  ActiveRecord::Schema.define do
    create_table :users, force: true do |t|
      t.string :email, null: false
      t.string :name
      t.string :password_digest
    end
    create_table :orders, force: true do |t|
      t.references :user, null: false
      t.decimal :total, precision: 10, scale: 2
      t.datetime :created_at, null: false
    end
    create_table :line_items, force: true do |t|
      t.references :order, null: false
      t.string :name, null: false
      t.integer :quantity, null: false, default: 1
      t.decimal :price, precision: 10, scale: 2
    end
  end
end

class ApplicationRecord < ActiveRecord::Base
  self.abstract_class = true
end

class User < ApplicationRecord
  has_many :orders
end

class LineItem < ApplicationRecord
  belongs_to :order
end

class Order < ApplicationRecord
  belongs_to :user
  has_many :line_items
  after_create :send_create_email

  # Enqueued inside the transaction that creates the order, before it
  # commits, as so many apps do.
  def send_create_email
    OrderCreateJob.perform_later(self)
  end
end

class ApplicationJob < ActiveJob::Base
end

# Performed by the runner's order_created plugin.
class OrderCreateJob < ApplicationJob
  queue_as :default

  def perform(order)
    raise "performed by the runner"
  end
end

# Performed by the runner's signup_digest plugin (JavaScript):
# `SignupDigestJob.perform_later("team@shop.example", users)`.
class SignupDigestJob < ApplicationJob
  queue_as :default

  def perform(to, users)
    raise "performed by the runner"
  end
end

# Performed by the runner's password_reset plugin (Python):
# `PasswordResetJob.perform_later(user, token)`.
class PasswordResetJob < ApplicationJob
  queue_as :default

  def perform(user, token)
    raise "performed by the runner"
  end
end

# Performed by the runner's tally test plugin: reads the orders in batches.
# `OrderTallyJob.perform_later("ops@shop.example", user_id, from, until, 500)`.
class OrderTallyJob < ApplicationJob
  queue_as :default

  def perform(to, user_id, from, until_time, batch_size)
    raise "performed by the runner"
  end
end

# Performed by the runner's order_export plugin: the orders created from
# `from` until before `to` as a gzipped CSV, mailed to `admin_email`.
# `OrderExportJob.perform_later("ops@shop.example", "2026-11-01", "2026-12-01")`.
class OrderExportJob < ApplicationJob
  queue_as :default

  def perform(admin_email, from, to, batch_size = 1000)
    raise "performed by the runner"
  end
end

class ApplicationMailer < ActionMailer::Base
  default from: "shop@example.com"
end

# Performed by the runner's shop_mailers plugin.
class UserMailer < ApplicationMailer
  def welcome_email
    @user = params[:user]
    mail(to: @user.email, subject: "Welcome to the shop, #{@user.name}!")
  end

  # No plugin handles this one.
  def goodbye_email(user)
    mail(to: user.email, subject: "Goodbye")
  end
end

class OrderMailer < ApplicationMailer
  def confirmation(order)
    mail(to: order.user.email, subject: "Order ##{order.id} confirmation")
  end
end

# Creates a user and an order with two line items: the order's after_create
# enqueues OrderCreateJob. Prints the ids.
def place_order(email: "ann@example.com", name: "Ann", commit_delay: 0)
  user = User.create!(email: email, name: name, password_digest: "$2a$12$secret-hash")
  order = Order.transaction do
    placed = Order.create!(user: user, total: "7.50", line_items: [
      LineItem.new(name: "Tea", quantity: 2, price: "2.50"),
      LineItem.new(name: "Cake", quantity: 1, price: "2.50"),
    ])
    sleep commit_delay
    placed
  end
  [user, order]
end

# Creates `count` orders without callbacks (no jobs), spread over users
# 1 to `users` and over November 2026, `per_insert` rows per statement, as
# a data import would, each with `line_items` line items. Prints how many
# orders there are.
def import_orders(count, users: 3, per_insert: 1000, line_items: 0)
  users.times { |i| User.create!(email: "user#{i + 1}@example.com", name: "User #{i + 1}") }
  user_ids = User.order(:id).limit(users).pluck(:id)
  start = Time.utc(2026, 11, 1)
  (0...count).each_slice(per_insert) do |slice|
    Order.insert_all(slice.map do |i|
      { user_id: user_ids[i % users], total: format("%.2f", (i % 997) / 10.0 + 1),
        created_at: start + (i * 30 * 86_400 / count) }
    end)
  end
  import_line_items(line_items, per_insert) if line_items > 0
  puts Order.count
end

# Gives every order `per_order` line items: quantity 1 to 3, priced from
# the order's id.
def import_line_items(per_order, per_insert)
  Order.in_batches(of: per_insert) do |orders|
    LineItem.insert_all(orders.pluck(:id).flat_map do |id|
      (1..per_order).map { |n| { order_id: id, name: "Item #{n}", quantity: n % 3 + 1, price: format("%.2f", (id % 89) / 4.0 + n) } }
    end)
  end
end
