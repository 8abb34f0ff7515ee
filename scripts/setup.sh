# Shared by scripts/demo and scripts/test: installs what is missing and
# builds the runner and the plugins. Sourced, not run.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Runs a command as root, through sudo when we aren't root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages whose commands are missing.
install_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -x /usr/sbin/smtp-sink ] || command -v smtp-sink >/dev/null || missing+=(postfix)
  ruby -e 'require "sidekiq"' 2>/dev/null || missing+=(ruby-sidekiq)
  ruby -e 'require "active_job"' 2>/dev/null || missing+=(ruby-activejob)
  # The example Rails app (scripts/shop): ActiveRecord over SQLite and
  # PostgreSQL, ActionMailer, GlobalID; and PostgreSQL and MariaDB servers
  # for the tests.
  ruby -e 'require "active_record"; require "sqlite3"' 2>/dev/null || missing+=(ruby-activerecord ruby-sqlite3)
  ruby -e 'require "pg"' 2>/dev/null || missing+=(ruby-pg)
  ruby -e 'require "action_mailer"; require "global_id"' 2>/dev/null || missing+=(ruby-actionmailer ruby-globalid)
  # The example Active Storage app (scripts/gallery): Rails 6.1 itself.
  ruby -e 'require "rails"; require "active_storage/engine"' 2>/dev/null || missing+=(ruby-railties ruby-activestorage)
  # Rails' own image analyzer, to check the runner's against it.
  ruby -e 'require "mini_magick"' 2>/dev/null || missing+=(ruby-mini-magick)
  # Rails' S3 service, for the app's uploads to the test's S3 server.
  ruby -e 'require "aws-sdk-s3"' 2>/dev/null || missing+=(ruby-aws-sdk-s3)
  [ -x /usr/bin/identify ] || missing+=(imagemagick)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  # Mail over TLS: smtp-sink behind stunnel.
  command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || missing+=(stunnel4)
  command -v chromium >/dev/null || missing+=(chromium)
  # Network-fault tests: partitions as nftables drop rules on loopback.
  command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # Outgoing HTTP tests: nginx as the receiving server, started by the tests
  # on their own ports (the package's own service is not needed).
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "==> adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
}

# Builds the runner and every plugin, and puts the shipped plugins' .wasm
# files into plugins/.
build_all() {
  echo "==> building the runner"
  cargo build --release --locked
  echo "==> building the plugins"
  # A second build of order_created with another subject, for the tests
  # that swap plugin versions under load.
  (cd plugins && ORDER_CREATED_SUBJECT='Order #{id} received' \
    cargo build --release --locked --target wasm32-wasip2 -p order_created &&
    mkdir -p target/variants &&
    cp target/wasm32-wasip2/release/order_created.wasm target/variants/order_created_alt.wasm)
  (cd plugins && cargo build --release --locked --target wasm32-wasip2)
  build_python_plugin
  build_js_plugin
  cp plugins/target/wasm32-wasip2/release/order_created.wasm \
     plugins/target/wasm32-wasip2/release/shop_mailers.wasm \
     plugins/target/wasm32-wasip2/release/welcome_mail.wasm \
     plugins/target/wasm32-wasip2/release/active_storage.wasm \
     plugins/target/wasm32-wasip2/release/order_export.wasm \
     plugins/target/python/password_reset.wasm \
     plugins/target/js/signup_digest.wasm plugins/
}

# The S3-compatible server the Active Storage tests keep files in, from
# crates.io (its newest releases need a newer Rust than this one).
S3S_FS_VERSION=0.14.1

# Builds s3s-fs into target/tools/ once.
install_s3s_fs() {
  if [ ! -x target/tools/bin/s3s-fs ]; then
    echo "==> building s3s-fs $S3S_FS_VERSION, an S3-compatible server for the tests"
    cargo install --quiet --locked --features binary --root target/tools "s3s-fs@$S3S_FS_VERSION"
  fi
}

# The componentize-py release the Python plugin is built with, from PyPI.
COMPONENTIZE_PY_VERSION=0.25.1

# Builds plugins/password_reset (Python) into plugins/target/python/, with
# componentize-py installed into a virtualenv under plugins/target/.
build_python_plugin() {
  local venv=plugins/target/python-venv
  if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$COMPONENTIZE_PY_VERSION"; then
    echo "==> installing componentize-py $COMPONENTIZE_PY_VERSION"
    python3 -m venv "$venv" 2>/dev/null || {
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  echo "==> building the Python plugin"
  mkdir -p plugins/target/python
  "$venv/bin/componentize-py" -d wit -w job-plugin componentize -p plugins/password_reset app \
    -o plugins/target/python/password_reset.wasm >/dev/null
  # The webhook example in Python calls wasi:http, so it targets the world
  # that imports it.
  "$venv/bin/componentize-py" -d wit -w job-plugin-http componentize -p plugins/webhook_py app \
    -o plugins/target/python/webhook_py.wasm >/dev/null
}

# The componentize-js release the JavaScript plugin is built with, from npm
# (the version plugins/signup_digest/package.json names).
COMPONENTIZE_JS_VERSION=0.23.0

# Where componentize-js is installed: the tools of `npm install` in
# plugins/signup_digest, kept under plugins/target/ like the Python venv.
JS_TOOLS=plugins/target/js-tools

# Installs componentize-js (and Node.js and npm, from Debian, if missing).
install_componentize_js() {
  if ! command -v npm >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local installed="$JS_TOOLS/node_modules/@bytecodealliance/componentize-js/package.json"
  if ! grep -q "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$installed" 2>/dev/null; then
    echo "==> installing componentize-js $COMPONENTIZE_JS_VERSION"
    mkdir -p "$JS_TOOLS"
    npm install --prefix "$JS_TOOLS" --no-audit --no-fund --loglevel=error \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >/dev/null
  fi
}

# Builds plugins/signup_digest (JavaScript) into plugins/target/js/ with the
# same command as its package.json's build script.
build_js_plugin() {
  install_componentize_js
  echo "==> building the JavaScript plugin"
  mkdir -p plugins/target/js
  "$JS_TOOLS/node_modules/.bin/componentize-js" plugins/signup_digest/app.js --wit wit \
    --world-name job-plugin --disable http fetch-event -o plugins/target/js/signup_digest.wasm >/dev/null
  # The webhook example in JavaScript uses fetch, so it keeps http.
  "$JS_TOOLS/node_modules/.bin/componentize-js" plugins/webhook_js/app.js --wit wit \
    --world-name job-plugin --disable fetch-event -o plugins/target/js/webhook_js.wasm >/dev/null
}

# For the benchmark and the profile: a scratch directory `$work`, a Redis
# on `$redis_port` and smtp-sink on `$smtp_port`, all removed on exit with
# every process in `pids`.
start_servers() {
  work=$(mktemp -d)
  pids=()
  trap cleanup_servers EXIT
  redis_port=$(free_port)
  smtp_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
  pids+=($!)
  /usr/sbin/smtp-sink -u root 127.0.0.1:"$smtp_port" 256 &
  pids+=($!)
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
}

cleanup_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# A webhook receiver for the benchmark and the profile, in DIR: nginx on a
# free port answering 200 to /hooks/ and logging nothing, an app database
# whose webhook_endpoints row 1 points there, and a policy granting the
# webhook plugin that destination (DIR/policy.toml). Exports what both the
# runner and Sidekiq's worker read (WEBHOOK_SECRET, WEBHOOK_DATABASE).
start_webhook_receiver() {
  local hooks=$1 nginx_port
  nginx_port=$(free_port)
  mkdir -p "$hooks/plugins"
  cat >"$hooks/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $hooks/nginx.pid; error_log $hooks/error.log;
events { worker_connections 1024; }
http {
  client_body_temp_path $hooks/body; proxy_temp_path $hooks/proxy; fastcgi_temp_path $hooks/fastcgi;
  uwsgi_temp_path $hooks/uwsgi; scgi_temp_path $hooks/scgi; access_log off;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$nginx_port; location /hooks/ { return 200 "ok\n"; } }
}
CONF
  /usr/sbin/nginx -p "$hooks" -c "$hooks/nginx.conf" -e stderr &
  pids+=($!)
  python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE webhook_endpoints (id INTEGER PRIMARY KEY, url TEXT NOT NULL)")
db.execute("INSERT INTO webhook_endpoints VALUES (1, ?)", (sys.argv[2],))
db.commit()' "$hooks/app.sqlite3" "http://127.0.0.1:$nginx_port/hooks/ok"
  cat >"$hooks/policy.toml" <<POLICY
[plugins.webhook]
records = { WebhookEndpoint = ["url"] }
signing_keys = { webhooks = "\${WEBHOOK_SECRET}" }

[plugins.webhook.http]
allowed_private_addresses = ["127.0.0.1"]

[[plugins.webhook.http.destinations]]
url = "http://127.0.0.1:$nginx_port"
methods = ["POST"]
POLICY
  cp plugins/target/wasm32-wasip2/release/webhook.wasm "$hooks/plugins/"
  export WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw WEBHOOK_DATABASE=$hooks/app.sqlite3
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
