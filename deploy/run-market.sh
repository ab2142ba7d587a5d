#!/usr/bin/env bash
# Quick start: build and run one market node on 127.0.0.1.
#
# Unless REDIS_URL points at a Redis, this installs redis-server when it is missing
# (apt-get) and runs a private one with its files under ./data/redis (AOF on,
# fsync every second), stopped again when the market stops.
# Likewise, unless DATABASE_URL points at a PostgreSQL (where the node archives history),
# it installs PostgreSQL when missing and runs a private server on 127.0.0.1 with its
# files under ./data/postgres (created once, reused after; database `proof_market`),
# stopped again (fast shutdown) when the market stops.
# If something already answers on the port of either (PROOF_MARKET_REDIS_PORT, 6390;
# PROOF_MARKET_POSTGRES_PORT, 6391), that is used instead.
# It runs a demo market: every new wallet opens with 1000 units of balance and 1000 of
# producer deposit (PROOF_MARKET_SIGNUP_CREDIT / PROOF_MARKET_SIGNUP_DEPOSIT; set both to
# 0 for a market where only the operator credits money), so the original market's
# clients, which know nothing of money, complete the walkthrough. The operator token for
# `/admin/credit` is PROOF_MARKET_ADMIN_TOKEN, or one generated into
# ./data/admin-token (mode 0600) on first start.
# Extra arguments go to `proof-market serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/postgres.sh
. deploy/postgres.sh
data_dir=${PROOF_MARKET_DATA_DIR:-$PWD/data}
mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)

redis_pid=""
pg_pid=""
cleanup() {
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill -TERM "$redis_pid" 2>/dev/null || true   # SIGTERM: Redis flushes its AOF and exits
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_pid" ]; then
    pg_stop "$data_dir/postgres" "$pg_pid"      # SIGINT to the postmaster: fast shutdown
  fi
}
trap cleanup EXIT

if [ -z "${REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  port=${PROOF_MARKET_REDIS_PORT:-6390}
  mkdir -p "$data_dir/redis"
  if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    echo "using the Redis already answering on 127.0.0.1:$port" >&2
  else
    redis-server --port "$port" --bind 127.0.0.1 --dir "$data_dir/redis" \
      --appendonly yes --appendfsync everysec --save "" \
      --auto-aof-rewrite-min-size 1gb \
      --logfile "$data_dir/redis/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do
      redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    echo "private Redis on 127.0.0.1:$port (pid $redis_pid, files in $data_dir/redis)" >&2
  fi
  export REDIS_URL="redis://127.0.0.1:$port"
fi

if [ -z "${DATABASE_URL:-}" ]; then
  pg_ensure
  pg_port=${PROOF_MARKET_POSTGRES_PORT:-6391}
  if pg_ready "$pg_port"; then
    echo "using the PostgreSQL already answering on 127.0.0.1:$pg_port" >&2
  else
    pg_prepare "$data_dir/postgres"
    pg_init "$data_dir/postgres"
    pg_start "$data_dir/postgres" "$pg_port"
    pg_pid=$pg_launcher_pid
    pg_wait_ready "$data_dir/postgres" "$pg_port" 60
    echo "private PostgreSQL on 127.0.0.1:$pg_port (pid $(pg_postmaster "$data_dir/postgres")," \
      "files in $data_dir/postgres)" >&2
  fi
  pg_create_db "$pg_port" proof_market
  export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/proof_market"
fi

export PROOF_MARKET_SIGNUP_CREDIT=${PROOF_MARKET_SIGNUP_CREDIT:-1000}
export PROOF_MARKET_SIGNUP_DEPOSIT=${PROOF_MARKET_SIGNUP_DEPOSIT:-1000}
token_from="PROOF_MARKET_ADMIN_TOKEN"
if [ -z "${PROOF_MARKET_ADMIN_TOKEN:-}" ]; then
  token_from="$data_dir/admin-token"
  if [ ! -s "$data_dir/admin-token" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data_dir/admin-token")
  fi
  PROOF_MARKET_ADMIN_TOKEN=$(cat "$data_dir/admin-token")
  export PROOF_MARKET_ADMIN_TOKEN
fi
echo "demo market: new wallets open with $PROOF_MARKET_SIGNUP_CREDIT balance and" \
  "$PROOF_MARKET_SIGNUP_DEPOSIT deposit; operator token from $token_from" >&2

# Every binary of the package: README's walkthrough also runs target/release/proof-generator.
cargo build --release -p proof-market --bins
"${CARGO_TARGET_DIR:-target}/release/proof-market" serve --data-dir "$data_dir" "$@" &
market_pid=$!
trap 'kill -TERM $market_pid 2>/dev/null || true' INT TERM
wait "$market_pid" || true
wait "$market_pid" 2>/dev/null || true
