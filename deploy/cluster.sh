#!/usr/bin/env bash
# A Proof Market cluster on this machine's loopback: PM_MASTERS Redis masters joined into
# one Redis Cluster (cluster mode enabled, AOF on, fsync every second) and PM_NODES
# market nodes over it, all with one shared generated JWT secret and cluster secret, and
# one PostgreSQL they all archive history to (unless DATABASE_URL names one).
#
# Usage: deploy/cluster.sh start [SERVE_ARG...] | stop | status
#   start   Starts the Redis masters (creating the Redis Cluster the first time) and waits
#           for cluster_state:ok, then (with nodes, and without DATABASE_URL) a PostgreSQL
#           (initdb the first time; database proof_market), then starts the nodes and
#           waits until every node's /health answers 200. Prints the node URLs (stdout,
#           one per line) at the end.
#           Extra arguments go to every `proof-market serve`. If anything fails or times
#           out, everything this run started is stopped again.
#   stop    SIGTERM to the processes recorded in the state dir (nodes first, so they hand
#           their statements over while Redis and PostgreSQL are still up; then Redis,
#           which flushes its AOF), SIGINT (fast shutdown) to PostgreSQL, SIGKILL to any
#           still there after 10 s. Only those PIDs, never by name.
#   status  Each Redis master and its cluster_state, the PostgreSQL, each node's URL and
#           /health, and the cluster view (live nodes, statement owners) of the first node
#           answering.
#           Exit 0 when everything recorded is up and healthy, 1 otherwise.
#
# Environment:
#   PM_CLUSTER_DIR    state dir (default data/cluster in the repository; a relative path
#                     is taken from the current directory): Redis files and logs, the
#                     PostgreSQL (postgres/), node data dirs and logs, PID and port files,
#                     the JWT and cluster secrets.
#   PM_NODES          market nodes (default 3; 0 = the Redis Cluster only, no PostgreSQL)
#   DATABASE_URL      a PostgreSQL for the nodes (postgres://...); unset, the script runs
#                     one in the state dir on a free loopback port (kept across restarts)
#   PM_MASTERS        Redis masters (default 3; a Redis Cluster needs at least 3)
#   PM_BIN            node binary (default target/release/proof-market, or under
#                     CARGO_TARGET_DIR, built with `cargo build --release` when missing)
#   PM_START_TIMEOUT  seconds to wait for the Redis Cluster, and for the nodes (default 60)
# Other settings of the nodes pass through the environment (PROOF_MARKET_LEASE_MS,
# PROOF_MARKET_KEY_PREFIX, PROOF_MARKET_ARCHIVE_*, RUST_LOG, ...); listen address, Redis
# URL, node id, data dir, JWT secret, cluster secret file and (without DATABASE_URL) the
# database URL are set here (and the advertise URL is each node's default, its listen
# address).
#
# `start` after `stop` reuses the state dir: same Redis ports, data and cluster
# configuration (nodes.conf), same PostgreSQL port and data, same secrets, so the market,
# its history and its tokens survive.
# For a fresh cluster: `deploy/cluster.sh stop && rm -rf data/cluster`.
set -euo pipefail
caller_pwd=$PWD
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=deploy/postgres.sh
. deploy/postgres.sh

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$caller_pwd/$1" ;;
  esac
}

is_uint() {
  case $1 in
    '' | *[!0-9]*) return 1 ;;
  esac
}

dir=$(abspath "${PM_CLUSTER_DIR:-$root/data/cluster}")
nodes=${PM_NODES:-3}
is_uint "$nodes" || die "PM_NODES must be a number (0 = Redis only), not '$nodes'"
nodes=$((10#$nodes))
masters=${PM_MASTERS:-3}
is_uint "$masters" || die "PM_MASTERS must be a number, not '$masters'"
masters=$((10#$masters))
if [ "$masters" -lt 3 ]; then
  die "PM_MASTERS=$masters: a Redis Cluster needs at least 3 masters"
fi
timeout=${PM_START_TIMEOUT:-60}
is_uint "$timeout" || die "PM_START_TIMEOUT must be a number of seconds, not '$timeout'"
timeout=$((10#$timeout))
if [ -n "${PM_BIN:-}" ]; then
  bin=$(abspath "$PM_BIN")
  bin_is_default=0
else
  case ${CARGO_TARGET_DIR:-} in
    '') bin=$root/target/release/proof-market ;;
    /*) bin=$CARGO_TARGET_DIR/release/proof-market ;;
    *) bin=$root/$CARGO_TARGET_DIR/release/proof-market ;;   # cargo runs in $root
  esac
  bin_is_default=1
fi

# Inherited values that would be wrong for every node but one: each node's advertise URL
# must default to its own listen address, and the comma-separated seed list below is
# what selects cluster mode. The cluster secret comes from the state dir's file (a
# secret in the environment as well would stop the nodes: one source only).
unset PROOF_MARKET_ADVERTISE_URL PROOF_MARKET_REDIS_CLUSTER PROOF_MARKET_CLUSTER_SECRET

# ---------------------------------------------------------------------------------------
# Processes and ports.

# pid_alive PID PATTERN: PID is a live process (not a zombie) whose command line matches
# the glob PATTERN. Guards against signalling an unrelated process that reused a PID.
pid_alive() {
  local pid=$1 pattern=$2 stat args
  is_uint "$pid" || return 1
  if ! command -v ps >/dev/null 2>&1; then
    kill -0 "$pid" 2>/dev/null
    return
  fi
  stat=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
  case $stat in
    Z*) return 1 ;;
  esac
  args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
  # shellcheck disable=SC2254  # PATTERN is a glob on purpose
  case "$args " in
    $pattern) return 0 ;;
  esac
  return 1
}

# The glob a recorded process's command line must match, from its PID file's name.
# Redis rewrites its title to "redis-server 127.0.0.1:PORT [cluster]"; the postmaster
# keeps its command line (so does runuser starting it, recorded until the server is up).
pattern_of() {
  local name
  name=$(basename "$1" .pid)
  case $name in
    node-*) printf '%s\n' "* serve *--node-id $name *" ;;
    redis-*) printf '%s\n' "*redis-server*" ;;
    postgres) printf '%s\n' "*postgres -D $dir/postgres/data *" ;;
    *) printf '%s\n' "/nonexistent/" ;;
  esac
}

# numbers KIND EXT: the numbers i for which $dir/KIND-i.EXT exists, in numeric order.
numbers() {
  local f n
  for f in "$dir/$1"-[0-9]*."$2"; do
    [ -e "$f" ] || continue
    n=$(basename "$f" ".$2")
    n=${n#"$1"-}
    is_uint "$n" && printf '%s\n' "$n"
  done | sort -n
}

# The PID files of one kind ("node" or "redis", in numeric order; "postgres": one).
pid_files() {
  local i
  if [ "$1" = postgres ]; then
    [ ! -e "$dir/postgres.pid" ] || printf '%s\n' "$dir/postgres.pid"
    return 0
  fi
  for i in $(numbers "$1" pid); do
    printf '%s\n' "$dir/$1-$i.pid"
  done
}

# The numbers of the recorded (port file) KIND processes.
indexes() { numbers "$1" port; }

port_in_use() {
  local p=$1
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -ltn "sport = :$p" 2>/dev/null | tail -n +2)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

# Ports are picked below Linux's default ephemeral range (32768-60999), so an outgoing
# connection cannot grab one between the check and the bind: Redis masters 20000-22767
# (their cluster bus ports, +10000, 30000-32767), PostgreSQL 22800-22999, nodes
# 23000-29999.
redis_range=(20000 22768)
pg_range=(22800 23000)
node_range=(23000 30000)

# pick_port LOW HIGH [ALSO_OFFSET]: sets $picked to a random port in [LOW, HIGH) that
# nothing listens on and this run has not handed out; with ALSO_OFFSET, port+ALSO_OFFSET
# must be free too (a Redis Cluster node also listens on its bus port, port + 10000).
taken=" "
picked=""
pick_port() {
  local low=$1 high=$2 also=${3:-0} p _
  for _ in $(seq 1 200); do
    p=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    case $taken in *" $p "*) continue ;; esac
    port_in_use "$p" && continue
    if [ "$also" -gt 0 ]; then
      case $taken in *" $((p + also)) "*) continue ;; esac
      port_in_use $((p + also)) && continue
      taken="$taken$((p + also)) "
    fi
    taken="$taken$p "
    picked=$p
    return 0
  done
  die "found no free loopback port in $low-$high"
}

# How many of stop_kind's processes are still alive (reads its local arrays pids and
# patterns: bash variables are dynamically scoped).
still_running() {
  local n=0 j
  for j in "${!pids[@]}"; do
    pid_alive "${pids[$j]}" "${patterns[$j]}" && n=$((n + 1))
  done
  echo "$n"
}

# stop_kind KIND [SIGNAL]: SIGNAL (default TERM) to every recorded live KIND process,
# wait up to 10 s, KILL the rest.
stop_kind() {
  local kind=$1 sig=${2:-TERM} f pid pattern pids=() files=() patterns=() i left deadline
  while IFS= read -r f; do
    pid=$(cat "$f" 2>/dev/null || true)
    pattern=$(pattern_of "$f")
    if pid_alive "$pid" "$pattern"; then
      pids+=("$pid")
      files+=("$f")
      patterns+=("$pattern")
      say "stopping $(basename "$f" .pid) (pid $pid)"
      kill -"$sig" "$pid" 2>/dev/null || true
    else
      rm -f "$f"   # stale: the process is gone (or the PID now belongs to another one)
    fi
  done < <(pid_files "$kind")
  [ "${#pids[@]}" -eq 0 ] && return 0
  deadline=$((SECONDS + 10))
  while left=$(still_running) && [ "$left" -gt 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
  if [ "$left" -gt 0 ]; then
    for i in "${!pids[@]}"; do
      if pid_alive "${pids[$i]}" "${patterns[$i]}"; then
        say "$(basename "${files[$i]}" .pid) (pid ${pids[$i]}) still running after 10 s: SIGKILL"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
      fi
    done
    deadline=$((SECONDS + 3))
    while left=$(still_running) && [ "$left" -gt 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
  fi
  for i in "${!pids[@]}"; do
    if pid_alive "${pids[$i]}" "${patterns[$i]}"; then
      say "WARNING: pid ${pids[$i]} survived SIGKILL; its PID file is kept"
    else
      rm -f "${files[$i]}"
    fi
  done
}

do_stop() {
  [ -d "$dir" ] || { say "nothing to stop ($dir does not exist)"; return 0; }
  stop_kind node
  stop_kind redis
  stop_kind postgres INT   # fast shutdown: sessions rolled back, a checkpoint, exit
}

# Anything recorded still running?
any_running() {
  local f
  while IFS= read -r f; do
    pid_alive "$(cat "$f" 2>/dev/null || true)" "$(pattern_of "$f")" && return 0
  done < <(pid_files node; pid_files redis; pid_files postgres)
  return 1
}

tail_log() {
  [ -f "$1" ] || return 0
  echo "---- last lines of $1:" >&2
  tail -n 20 "$1" >&2
  echo "----" >&2
}

# ---------------------------------------------------------------------------------------
# Redis.

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
}

cluster_state_ok() {
  local info
  info=$(redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r') || return 1
  case $'\n'$info$'\n' in
    *$'\n'cluster_state:ok$'\n'*) return 0 ;;
  esac
  return 1
}

redis_pong() {
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" = PONG ]
}

start_redis() {  # start_redis I PORT
  local i=$1 port=$2
  mkdir -p "$dir/redis-$i"
  nohup redis-server --port "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
    --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb \
    --dir "$dir/redis-$i" --bind 127.0.0.1 \
    --save "" --daemonize no </dev/null >"$dir/redis-$i.log" 2>&1 &
  echo "$!" >"$dir/redis-$i.pid"
  disown "$!" 2>/dev/null || true
  echo "$port" >"$dir/redis-$i.port"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL (deploy/postgres.sh): one server for every node, in $dir/postgres.

# start_postgres: starts it (initdb the first time) on its recorded port, or a fresh one,
# waits until it answers, creates the database, exports DATABASE_URL for the nodes.
start_postgres() {
  local port
  port=$(cat "$dir/postgres.port" 2>/dev/null || true)
  if is_uint "$port" && [ "$port" -gt 0 ]; then
    if port_in_use "$port"; then
      die "port $port of the cluster's PostgreSQL is taken by another process"
    fi
    taken="$taken$port "
  else
    pick_port "${pg_range[@]}"
    port=$picked
  fi
  pg_prepare "$dir/postgres" || die "cannot prepare $dir/postgres for PostgreSQL"
  pg_init "$dir/postgres" || die "initdb of $dir/postgres/data failed"
  echo "$port" >"$dir/postgres.port"
  pg_start "$dir/postgres" "$port"
  # runuser's PID (it matches the same pattern) until the postmaster's is known.
  echo "$pg_launcher_pid" >"$dir/postgres.pid"
  disown "$pg_launcher_pid" 2>/dev/null || true
  pg_wait_ready "$dir/postgres" "$port" "$timeout" || die "PostgreSQL (port $port) did not start within ${timeout}s"
  pg_postmaster "$dir/postgres" >"$dir/postgres.pid" || die "PostgreSQL (port $port): no postmaster PID"
  pg_create_db "$port" proof_market || die "could not create the database proof_market"
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/proof_market"
  export DATABASE_URL
  echo "$DATABASE_URL" >"$dir/database-url"
  say "PostgreSQL ok: $DATABASE_URL (log $dir/postgres/postgres.log)"
}

# ---------------------------------------------------------------------------------------
# start

# Set while `start` runs; on failure, the EXIT trap stops what this run started.
starting=0
fresh_cluster=0
on_exit() {
  local rc=$?
  if [ "$starting" -eq 1 ]; then
    say "start failed; stopping everything it started"
    do_stop || true
    if [ "$fresh_cluster" -eq 1 ] && [ ! -e "$dir/cluster.created" ]; then
      # The Redis Cluster was never formed: drop its files so the next start is fresh.
      rm -rf "$dir"/redis-[0-9]* "$dir/redis-url" "$dir/cluster-create.log"
    fi
    [ "$rc" -eq 0 ] && rc=1
  fi
  exit "$rc"
}

do_start() {
  local i port deadline secret seeds extra=("$@") addrs=() ports=()
  if [ "$nodes" -gt 0 ]; then
    command -v curl >/dev/null 2>&1 || die "curl is needed to check the nodes' /health"
    if [ ! -x "$bin" ]; then
      [ "$bin_is_default" -eq 1 ] || die "PM_BIN=$bin: no such executable"
      say "$bin missing: cargo build --release --bin proof-market"
      cargo build --release --bin proof-market
      [ -x "$bin" ] || die "$bin still missing after cargo build"
    fi
  fi
  ensure_redis
  own_pg=0
  if [ "$nodes" -gt 0 ] && [ -z "${DATABASE_URL:-}" ]; then
    own_pg=1
    pg_ensure || die "PostgreSQL is needed (or set DATABASE_URL)"
  fi
  mkdir -p "$dir"
  if any_running; then
    die "already running (state dir $dir); see 'deploy/cluster.sh status', or stop it first"
  fi
  starting=1
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rm -f "$dir"/node-[0-9]*.pid "$dir"/redis-[0-9]*.pid "$dir/postgres.pid"

  # Redis masters: the recorded ports when the cluster exists (nodes.conf names its
  # peers by address), fresh ones otherwise.
  if [ -e "$dir/cluster.created" ]; then
    local had
    had=$(indexes redis | wc -l)
    if [ -n "${PM_MASTERS:-}" ] && [ "$had" -ne "$masters" ]; then
      starting=0
      die "$dir holds a Redis Cluster of $had masters, not PM_MASTERS=$masters; stop and delete it for a new one"
    fi
    masters=$had
    for i in $(seq 1 "$masters"); do
      [ -s "$dir/redis-$i.port" ] || { starting=0; die "$dir/redis-$i.port missing; delete $dir for a fresh cluster"; }
      port=$(cat "$dir/redis-$i.port")
      if port_in_use "$port" || port_in_use $((port + 10000)); then
        starting=0
        die "port $port (or its cluster bus port $((port + 10000))) of Redis master $i is taken by another process"
      fi
      taken="$taken$port $((port + 10000)) "
      ports+=("$port")
    done
  else
    if compgen -G "$dir/redis-[0-9]*" >/dev/null; then
      starting=0
      die "$dir has Redis files but no formed cluster (no cluster.created): delete $dir/redis-* (or the whole dir) first"
    fi
    fresh_cluster=1
    for i in $(seq 1 "$masters"); do
      pick_port "${redis_range[@]}" 10000
      ports+=("$picked")
    done
  fi
  for i in $(seq 1 "$masters"); do
    start_redis "$i" "${ports[$((i - 1))]}"
    addrs+=("127.0.0.1:${ports[$((i - 1))]}")
  done
  deadline=$((SECONDS + timeout))
  for i in $(seq 1 "$masters"); do
    port=${ports[$((i - 1))]}
    until redis_pong "$port"; do
      if ! pid_alive "$(cat "$dir/redis-$i.pid")" "*redis-server*"; then
        tail_log "$dir/redis-$i.log"
        die "Redis master $i (port $port) exited"
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        tail_log "$dir/redis-$i.log"
        die "Redis master $i (port $port) did not answer PING within ${timeout}s"
      fi
      sleep 0.1
    done
  done
  if [ "$fresh_cluster" -eq 1 ]; then
    say "creating the Redis Cluster: ${addrs[*]}"
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
      </dev/null >"$dir/cluster-create.log" 2>&1; then
      tail_log "$dir/cluster-create.log"
      die "redis-cli --cluster create failed"
    fi
  fi
  for port in "${ports[@]}"; do
    until cluster_state_ok "$port"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        redis-cli -h 127.0.0.1 -p "$port" cluster info 2>&1 | tr -d '\r' | head -n 8 >&2 || true
        die "Redis master 127.0.0.1:$port not at cluster_state:ok within ${timeout}s"
      fi
      sleep 0.2
    done
  done
  echo "masters=$masters" >"$dir/cluster.created"
  seeds=""
  for port in "${ports[@]}"; do
    seeds="${seeds:+$seeds,}redis://127.0.0.1:$port"
  done
  echo "$seeds" >"$dir/redis-url"
  say "Redis Cluster ok: $seeds"
  rm -f "$dir/database-url"
  if [ "$own_pg" -eq 1 ]; then
    start_postgres
  elif [ "$nodes" -gt 0 ]; then
    say "the nodes use DATABASE_URL from the environment"
  fi

  if [ "$nodes" -gt 0 ]; then
    # One JWT secret for every node (a token from one node is checked by the others),
    # kept in the state dir so tokens survive a restart of the cluster; and one cluster
    # secret, which signs the calls nodes forward to each other, read by the nodes
    # from its file (mode 0600).
    for name in jwt-secret cluster-secret; do
      if [ ! -s "$dir/$name" ]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/$name")
      fi
    done
    secret=$(cat "$dir/jwt-secret")
    # Drop the records of nodes beyond PM_NODES from an earlier, larger run.
    for i in $(indexes node); do
      if [ "$i" -gt "$nodes" ]; then rm -f "$dir/node-$i.port"; fi
    done
    for i in $(seq 1 "$nodes"); do
      # The previous port of this node if it is still free, so URLs stay the same.
      port=$(cat "$dir/node-$i.port" 2>/dev/null || true)
      if is_uint "$port" && [ "$port" -gt 0 ] && ! port_in_use "$port" \
        && [[ $taken != *" $port "* ]]; then
        taken="$taken$port "
      else
        pick_port "${node_range[@]}"
        port=$picked
      fi
      mkdir -p "$dir/node-$i"
      # `--node-id node-i --data-dir` in this order: stop/status recognise the process by it.
      PROOF_MARKET_JWT_SECRET=$secret PROOF_MARKET_CLUSTER_SECRET_FILE=$dir/cluster-secret \
        nohup "$bin" serve --listen "127.0.0.1:$port" \
        --redis-url "$seeds" --node-id "node-$i" --data-dir "$dir/node-$i" \
        ${extra[@]+"${extra[@]}"} </dev/null >"$dir/node-$i.log" 2>&1 &
      echo "$!" >"$dir/node-$i.pid"
      disown "$!" 2>/dev/null || true
      echo "$port" >"$dir/node-$i.port"
    done
    deadline=$((SECONDS + timeout))
    for i in $(seq 1 "$nodes"); do
      port=$(cat "$dir/node-$i.port")
      until [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$port/health" || true)" = 200 ]; do
        if ! pid_alive "$(cat "$dir/node-$i.pid")" "$(pattern_of "$dir/node-$i.pid")"; then
          tail_log "$dir/node-$i.log"
          die "node-$i exited before its /health answered 200 (log: $dir/node-$i.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
          tail_log "$dir/node-$i.log"
          die "node-$i (http://127.0.0.1:$port) did not answer 200 on /health within ${timeout}s (PM_START_TIMEOUT)"
        fi
        sleep 0.2
      done
      say "node-$i ready: http://127.0.0.1:$port (log $dir/node-$i.log)"
    done
  fi
  starting=0
  trap - EXIT INT TERM
  if [ "$own_pg" -eq 1 ]; then
    say "up: $masters Redis masters, PostgreSQL, $nodes nodes; state in $dir"
  else
    say "up: $masters Redis masters, $nodes nodes; state in $dir"
  fi
  for i in $(seq 1 "$nodes"); do
    echo "http://127.0.0.1:$(cat "$dir/node-$i.port")"
  done
}

# ---------------------------------------------------------------------------------------
# status

pretty() {
  if command -v jq >/dev/null 2>&1 && printf '%s\n' "$1" | jq . >/dev/null 2>&1; then
    printf '%s\n' "$1" | jq .
  else
    printf '%s\n' "$1"
  fi
}

# A 60-second token for the cluster view (which wants `Authorization: Bearer`), signed
# with the cluster's JWT secret the way the nodes sign theirs (HS256; claims sub, iat,
# exp, iss=proof-market; see src/auth.rs). Prints nothing without openssl or a secret.
# The secret is on openssl's command line for a moment: fine for a loopback cluster.
status_token() {
  local secret header payload sig now
  [ -s "$dir/jwt-secret" ] || return 0
  command -v openssl >/dev/null 2>&1 || return 0
  secret=$(cat "$dir/jwt-secret")
  now=$(date +%s)
  header=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
  payload=$(printf '{"sub":"cluster-status","iat":%s,"exp":%s,"iss":"proof-market"}' \
    "$now" $((now + 60)) | b64url)
  sig=$(printf '%s' "$header.$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
  printf '%s\n' "$header.$payload.$sig"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

do_status() {
  local i pid port url out code body token auth bad=0 view_from=""
  if [ ! -d "$dir" ] || [ -z "$(indexes redis)$(indexes node)" ]; then
    echo "no cluster in $dir"
    return 1
  fi
  echo "state dir: $dir"
  for i in $(indexes redis); do
    port=$(cat "$dir/redis-$i.port")
    pid=$(cat "$dir/redis-$i.pid" 2>/dev/null || true)
    if pid_alive "$pid" "*redis-server*"; then
      if cluster_state_ok "$port"; then
        echo "redis-$i 127.0.0.1:$port pid $pid cluster_state:ok"
      else
        echo "redis-$i 127.0.0.1:$port pid $pid cluster_state NOT ok"
        bad=1
      fi
    else
      echo "redis-$i 127.0.0.1:$port not running"
      bad=1
    fi
  done
  if [ -s "$dir/database-url" ] && [ -s "$dir/postgres.port" ]; then
    pg_find || true   # pg_isready beside the server, else on PATH
    port=$(cat "$dir/postgres.port")
    pid=$(cat "$dir/postgres.pid" 2>/dev/null || true)
    if ! pid_alive "$pid" "$(pattern_of "$dir/postgres.pid")"; then
      echo "postgres 127.0.0.1:$port not running"
      bad=1
    elif pg_ready "$port"; then
      echo "postgres 127.0.0.1:$port pid $pid accepting connections"
    else
      echo "postgres 127.0.0.1:$port pid $pid NOT accepting connections"
      bad=1
    fi
  fi
  for i in $(indexes node); do
    port=$(cat "$dir/node-$i.port")
    url=http://127.0.0.1:$port
    pid=$(cat "$dir/node-$i.pid" 2>/dev/null || true)
    if ! pid_alive "$pid" "$(pattern_of "$dir/node-$i.pid")"; then
      echo "node-$i $url not running (log $dir/node-$i.log)"
      bad=1
      continue
    fi
    out=$(curl -s -m 3 -w '\n%{http_code}' "$url/health" || true)
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    [ "$out" = "$code" ] && body=""
    echo "node-$i $url pid $pid /health $code $body"
    if [ "$code" = 200 ]; then
      [ -n "$view_from" ] || view_from=$url
    else
      bad=1
    fi
  done
  if [ -n "$view_from" ]; then
    echo "cluster view ($view_from/_db/market/v0_0/cluster):"
    auth=()
    token=$(status_token || true)
    [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
    out=$(curl -s -m 3 ${auth[@]+"${auth[@]}"} -w '\n%{http_code}' "$view_from/_db/market/v0_0/cluster" || true)
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    if [ "$code" = 200 ]; then
      pretty "$body"
    else
      echo "HTTP $code $body"
      bad=1
    fi
  fi
  return "$bad"
}

case ${1:-} in
  start) shift; do_start "$@" ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 start [SERVE_ARG...] | stop | status   (see the top of this script)" >&2
    exit 2
    ;;
esac
