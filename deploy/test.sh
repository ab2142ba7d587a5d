#!/usr/bin/env bash
# Runs the whole test suite against a throwaway Redis and a throwaway PostgreSQL, each on
# a free loopback port. Tests share the Redis, each under its own key prefix, and the
# PostgreSQL, each in a database of its own; tests that must restart either start their
# own. Everything started here is stopped by PID on exit. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/postgres.sh
. deploy/postgres.sh

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found; installing it with apt-get" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
pg_ensure

tmp=$(mktemp -d)
redis_pid=""
pg_pid=""
cluster_started=""
cleanup() {
  if [ -n "$pg_pid" ]; then
    pg_stop "$tmp/postgres" "$pg_pid"
  fi
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ -n "$cluster_started" ]; then
    PM_CLUSTER_DIR="$tmp/cluster" bash deploy/cluster.sh stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  # No python3: probe random high ports until one refuses connections.
  local p
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly no \
  --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
export PROOF_MARKET_TEST_REDIS_URL="redis://127.0.0.1:$port"
echo "test Redis on 127.0.0.1:$port (pid $redis_pid)"

# PostgreSQL, where nodes archive history: each test creates its own database on it
# (superuser `postgres`, trust on loopback). No fsync of initdb's files (-N): the cluster
# lives as long as this run. Connections: several tests at once, nodes with pools each.
pg_port=$(free_port)
pg_prepare "$tmp/postgres"
pg_init "$tmp/postgres" --no-sync
pg_start "$tmp/postgres" "$pg_port" -c max_connections=300
pg_pid=$pg_launcher_pid
pg_wait_ready "$tmp/postgres" "$pg_port" 60
export PROOF_MARKET_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "test PostgreSQL on 127.0.0.1:$pg_port (pid $(pg_postmaster "$tmp/postgres"))"
cargo test --workspace "$@"

# The end-to-end suite once more, over a Redis Cluster of 3 masters (cluster.sh with no
# market nodes, so no PostgreSQL of its own; stopped by PID on exit): no script or
# pipeline may cross slots. The same PostgreSQL serves this pass.
cluster_started=1
PM_NODES=0 PM_CLUSTER_DIR="$tmp/cluster" bash deploy/cluster.sh start >/dev/null
PROOF_MARKET_TEST_REDIS_URL="$(cat "$tmp/cluster/redis-url")"
export PROOF_MARKET_TEST_REDIS_URL
echo "end-to-end tests again over the Redis Cluster $PROOF_MARKET_TEST_REDIS_URL"
cargo test -p proof-market --test '*' "$@"
