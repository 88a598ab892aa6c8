#!/usr/bin/env bash
# A throwaway PostgreSQL server for the fleet tests: `start DIR` creates a cluster in DIR (owned by
# the `postgres` user, since initdb refuses root), starts it on 127.0.0.1 on a free port, creates the
# database `peon` and prints its URL (postgresql://postgres@127.0.0.1:PORT/peon, trust auth on
# loopback only). `stop DIR` stops it; `restart DIR` stops and starts it on the same port;
# `url DIR` prints the URL again. The server never listens beyond loopback.
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|restart|url DIR" >&2; exit 64
fi

bindir=""
for candidate in /usr/lib/postgresql/*/bin; do
  [ -x "$candidate/initdb" ] && bindir="$candidate"
done
if [ -z "$bindir" ]; then
  initdb_path="$(command -v initdb || true)"
  [ -n "$initdb_path" ] && bindir="$(dirname "$initdb_path")"
fi
if [ -z "$bindir" ]; then echo "pg_test_server: no PostgreSQL server binaries (install the Debian package postgresql)" >&2; exit 69; fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

data="$dir/data"
case "$cmd" in
  start)
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
    echo "$port" > "$dir/port"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/port"
    ;&
  restart-start)
    port="$(cat "$dir/port")"
    # The server outlives this script: it must not inherit the caller's descriptors (a caller that
    # waits for a pipe or descriptor to close would wait for the server to stop).
    for fd in /proc/$$/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
    done
    as_postgres "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null
    if [ "$cmd" = start ]; then
      as_postgres "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE peon" >/dev/null
    fi
    echo "postgresql://postgres@127.0.0.1:$port/peon"
    ;;
  stop)
    [ -d "$data" ] && as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    ;;
  restart)
    as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    exec "$0" restart-start "$dir"
    ;;
  url)
    echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/peon"
    ;;
  *) echo "usage: $0 start|stop|restart|url DIR" >&2; exit 64 ;;
esac
