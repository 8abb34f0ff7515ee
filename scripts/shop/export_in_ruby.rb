# The orders export as a Rails app performs it with Sidekiq, for the
# benchmark's side-by-side run against the runner's order_export plugin:
# ActiveRecord's find_each over the month's orders with their user and
# line items, Ruby's CSV and Zlib, and an ActionMailer attachment sent over
# SMTP. `sidekiq -r ./scripts/shop/export_in_ruby.rb` with SHOP_DATABASE,
# REDIS_URL and SMTP_PORT set.

require_relative "app"
require "csv"
require "stringio"
require "zlib"
require "sidekiq"

ActionMailer::Base.delivery_method = :smtp
ActionMailer::Base.smtp_settings = { address: "127.0.0.1", port: Integer(ENV.fetch("SMTP_PORT")) }

class ExportMailer < ApplicationMailer
  def export(to, name, data, rows)
    attachments[name] = { mime_type: "application/gzip", content: data }
    mail(to: to, subject: "Orders export: #{rows} orders", body: "#{rows} orders\n")
  end
end

class OrderExportJob
  def perform(admin_email, from, to, batch_size = 1000)
    out = StringIO.new
    gzip = Zlib::GzipWriter.new(out)
    gzip.write(CSV.generate_line(%w[id created_at email total items_total]))
    rows = 0
    scope = Order.where(created_at: Time.parse(from)...Time.parse(to)).includes(:user, :line_items)
    scope.find_each(batch_size: batch_size) do |order|
      items = order.line_items.sum { |item| item.quantity * item.price }
      gzip.write(CSV.generate_line([order.id, order.created_at, order.user.email,
                                    format("%.2f", order.total), format("%.2f", items)]))
      rows += 1
    end
    gzip.finish
    ExportMailer.export(admin_email, "orders-#{from}-#{to}.csv.gz", out.string, rows).deliver_now
  end
end
