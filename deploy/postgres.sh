# shellcheck shell=bash
# A private PostgreSQL on loopback, for the scripts beside this one: sourced (not run) by
# test.sh (a throwaway server for the tests), run-market.sh (the quick start's server,
# kept in its data dir) and cluster.sh (one server shared by the local cluster's nodes).
#
# A server here is a directory DIR: DIR/data is the cluster initdb made (superuser
# `postgres`, trust authentication, which pg_hba.conf limits to loopback), DIR holds its
# unix socket and DIR/postgres.log its output. It listens on 127.0.0.1 only. Debian puts
# the binaries in /usr/lib/postgresql/<version>/bin, not on PATH; initdb and postgres
# refuse to run as root, so when the scripts run as root they run them as the `postgres`
# system user (runuser), with DIR owned by it.
#
# The postmaster's PID is the first line of DIR/data/postmaster.pid. It is the one to
# signal: under runuser the PID the shell sees ($!) is runuser's, which would answer a
# signal with SIGTERM and, 2 s later, SIGKILL to the server. SIGINT is PostgreSQL's fast
# shutdown (sessions rolled back, a checkpoint, exit): what pg_stop sends.

pg_bindir=""

# pg_find: sets pg_bindir to the directory of initdb and postgres (initdb on PATH,
# symlinks resolved, then the highest version under /usr/lib/postgresql); 1 if none.
pg_find() {
  local initdb d
  pg_bindir=""
  if initdb=$(command -v initdb 2>/dev/null); then
    d=$(dirname "$(readlink -f "$initdb")")
    if [ -x "$d/postgres" ]; then
      pg_bindir=$d
      return 0
    fi
  fi
  d=$(for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && [ -x "$b/postgres" ] && printf '%s\n' "$b"
  done | sort -V | tail -n 1)
  [ -n "$d" ] || return 1
  pg_bindir=$d
}

# pg_ensure: pg_find, installing the `postgresql` package with apt-get first when it
# finds nothing (its Debian packaging may start a cluster of its own: never used here).
pg_ensure() {
  pg_find && return 0
  echo "PostgreSQL not found; installing it with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null
  pg_find || { echo "PostgreSQL still not found after apt-get install postgresql" >&2; return 1; }
}

# pg_tool NAME: the client tool NAME (psql, pg_isready) beside the server, else on PATH.
pg_tool() {
  if [ -x "$pg_bindir/$1" ]; then printf '%s\n' "$pg_bindir/$1"; else printf '%s\n' "$1"; fi
}

# pg_as_owner CMD...: runs CMD as the user owning the server (postgres when we are root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_prepare DIR: creates DIR; as root, hands it to the postgres user and makes sure that
# user can reach it (adding search permission, not read, to DIR's parent if needed).
pg_prepare() {
  local dir=$1
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] || return 0
  id postgres >/dev/null 2>&1 || { echo "no postgres system user (apt-get install postgresql creates it)" >&2; return 1; }
  if [ "$(stat -c %U "$dir")" != postgres ]; then
    chown -R postgres:postgres "$dir"
  fi
  if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    chmod o+x "$(dirname "$dir")"
  fi
  runuser -u postgres -- test -w "$dir" 2>/dev/null \
    || { echo "the postgres user cannot reach $dir (a parent directory is closed to it)" >&2; return 1; }
}

# pg_init DIR [INITDB_ARG...]: initdb DIR/data unless it holds a cluster already.
pg_init() {
  local dir=$1
  shift
  [ -s "$dir/data/PG_VERSION" ] && return 0
  if ! pg_as_owner "$pg_bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C "$@" >"$dir/initdb.log" 2>&1; then
    echo "initdb failed:" >&2
    tail -n 20 "$dir/initdb.log" >&2
    return 1
  fi
}

# pg_start DIR PORT [SERVER_ARG...]: starts the server in the background, output appended
# to DIR/postgres.log; sets pg_launcher_pid ($! of the launch: the postmaster itself, or
# runuser as root). The caller waits for it (pg_wait_ready), then may record its PID.
pg_launcher_pid=""
pg_start() {
  local dir=$1 port=$2 sockdir=$1
  shift 2
  # A unix socket path is at most 107 bytes: with a longer DIR the server listens on
  # TCP only (every URL here is TCP anyway).
  [ "${#sockdir}" -le 90 ] || sockdir=""
  local cmd=("$pg_bindir/postgres" -D "$dir/data" -p "$port"
    -c listen_addresses=127.0.0.1 -c "unix_socket_directories=$sockdir" "$@")
  # Not through pg_as_owner: $! must be runuser's or the server's PID, not a subshell's.
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "${cmd[@]}" </dev/null >>"$dir/postgres.log" 2>&1 &
  else
    "${cmd[@]}" </dev/null >>"$dir/postgres.log" 2>&1 &
  fi
  pg_launcher_pid=$!
}

# pg_ready PORT: a server on 127.0.0.1:PORT accepts connections.
pg_ready() {
  "$(pg_tool pg_isready)" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

# pg_wait_ready DIR PORT TIMEOUT_S: waits until the server started by pg_start accepts
# connections; 1 (with the end of its log) if it exits or the time runs out.
pg_wait_ready() {
  local dir=$1 port=$2 deadline=$((SECONDS + $3))
  until pg_ready "$port"; do
    if ! kill -0 "$pg_launcher_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "PostgreSQL on 127.0.0.1:$port did not start; end of $dir/postgres.log:" >&2
      tail -n 20 "$dir/postgres.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# pg_alive PID: PID is a live (not zombie) postgres process.
pg_alive() {
  local stat cmd
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  case ${stat##*) } in Z*) return 1 ;; esac
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  case $cmd in *postgres*) return 0 ;; esac
  return 1
}

# pg_postmaster DIR: prints the PID of the server running on DIR/data; 1 if none.
pg_postmaster() {
  local pid
  pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) || return 1
  pg_alive "$pid" || return 1
  printf '%s\n' "$pid"
}

# pg_stop DIR [LAUNCHER_PID]: fast shutdown (SIGINT) of the server on DIR/data and waits
# for it; immediate shutdown (SIGQUIT) if it is still up after 30 s, SIGKILL after 10 s
# more. LAUNCHER_PID, a child of this shell, is then reaped (or, if the server never
# wrote its PID file, sent SIGTERM first).
pg_stop() {
  local dir=$1 launcher=${2:-} pid sig deadline
  if pid=$(pg_postmaster "$dir"); then
    for sig in INT QUIT KILL; do
      kill -"$sig" "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 30))
      [ "$sig" = INT ] || deadline=$((SECONDS + 10))
      while pg_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
      done
      pg_alive "$pid" || break
      echo "PostgreSQL (pid $pid) still up after SIG$sig" >&2
    done
  elif [ -n "$launcher" ]; then
    kill -TERM "$launcher" 2>/dev/null || true
  fi
  if [ -n "$launcher" ]; then
    wait "$launcher" 2>/dev/null || true
  fi
}

# pg_create_db PORT NAME: creates database NAME on the server at 127.0.0.1:PORT unless
# it exists.
pg_create_db() {
  local psql
  psql=$(pg_tool psql)
  if [ "$("$psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$2'")" != 1 ]; then
    "$psql" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "CREATE DATABASE \"$2\"" >/dev/null
  fi
}
