#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `pg.sh start DIR` creates a cluster in DIR
# (initdb, trust auth, loopback only, a free port), starts it with pg_ctl as user `postgres`
# and prints its URL; `pg.sh stop DIR` stops it and removes DIR. Nothing touches the system
# cluster.
set -euo pipefail

bin_dir() {
  if command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$newest" ]; then
    echo "error: no PostgreSQL binaries (install Debian's postgresql package)" >&2
    exit 1
  fi
  echo "$newest"
}

# Runs a command as the cluster's owner: `postgres` when started as root (initdb refuses
# root), else the current user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: pg.sh start|stop DIR" >&2
  exit 2
fi
bin=$(bin_dir)

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=300" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg.sh start|stop DIR" >&2
    exit 2
    ;;
esac
