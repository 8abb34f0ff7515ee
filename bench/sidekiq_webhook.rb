# The Sidekiq side of scripts/bench's webhook drain: the same delivery as
# the webhook plugin, by a plain Sidekiq worker with Ruby's Net::HTTP: the
# endpoint's URL read from the app's SQLite database, the event posted as
# JSON and signed as Standard Webhooks says (OpenSSL's HMAC-SHA256). With
# SIDEKIQ_KEEPALIVE set, each thread keeps its connection to the endpoint's
# host open between jobs, as net-http-persistent would.
require "sidekiq"
require "sqlite3"
require "net/http"
require "openssl"
require "base64"
require "json"

class WebhookDeliveryJob
  include Sidekiq::Worker

  DATABASE = ENV.fetch("WEBHOOK_DATABASE")
  SECRET = Base64.strict_decode64(ENV.fetch("WEBHOOK_SECRET").delete_prefix("whsec_"))
  KEEPALIVE = !ENV.fetch("SIDEKIQ_KEEPALIVE", "").empty?

  def perform(endpoint, event)
    db = SQLite3::Database.new(DATABASE, readonly: true)
    url = db.get_first_value("SELECT url FROM webhook_endpoints WHERE id = ?", endpoint)
    db.close
    body = JSON.generate(event.reject { |k, _| k.start_with?("_aj_") })
    msg_id = "msg_#{jid}"
    timestamp = Time.now.to_i.to_s
    signature = Base64.strict_encode64(OpenSSL::HMAC.digest("SHA256", SECRET, "#{msg_id}.#{timestamp}.#{body}"))
    uri = URI(url)
    request = Net::HTTP::Post.new(uri, "content-type" => "application/json", "webhook-id" => msg_id,
      "webhook-timestamp" => timestamp, "webhook-signature" => "v1,#{signature}", "idempotency-key" => "#{jid}-1")
    request.body = body
    response = post(uri, request)
    raise "#{url} answered #{response.code}" unless response.is_a?(Net::HTTPSuccess)
  end

  def post(uri, request)
    return Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) } unless KEEPALIVE

    open_connections = (Thread.current[:webhook_connections] ||= {})
    http = (open_connections[[uri.host, uri.port]] ||= Net::HTTP.start(uri.host, uri.port))
    http.request(request)
  rescue IOError, SystemCallError
    open_connections&.delete([uri.host, uri.port])
    raise
  end
end
