# The Sidekiq side of scripts/bench: the same order confirmation mail as the
# order_created plugin, sent by a plain Sidekiq worker over Net::SMTP, and a
# no-op job beside the noop plugin.
require "sidekiq"
require "net/smtp"
require "securerandom"
require "time"

class OrderCreateJob
  include Sidekiq::Worker

  SMTP_PORT = Integer(ENV.fetch("SMTP_PORT"))

  def perform(order)
    id = order.fetch("id")
    email = order.fetch("email")
    body = "Hello #{order["name"] || "there"},\n\nthank you for your order ##{id}.\n"
    (order["items"] || []).each { |i| body << "  #{i["quantity"]} x #{i["name"]} at #{i["price"]}\n" }
    body << "\nTotal: #{order["total"]}\n" if order["total"]
    message = <<~MAIL
      From: jobrunner <jobrunner@localhost>
      To: #{email}
      Subject: Your order ##{id} is confirmed
      Message-ID: <#{SecureRandom.hex(16)}@localhost>
      Date: #{Time.now.rfc2822}
      X-Order-Id: #{id}

      #{body}
    MAIL
    Net::SMTP.start("127.0.0.1", SMTP_PORT) do |smtp|
      smtp.send_message(message, "jobrunner@localhost", email)
    end
  end
end

# The no-op job, for the Redis cost of the queue alone.
class NoopJob
  include Sidekiq::Worker

  def perform; end
end
