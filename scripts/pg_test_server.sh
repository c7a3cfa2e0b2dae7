#!/usr/bin/env bash
# Start or stop a throw-away PostgreSQL server on loopback for the tests.
#   scripts/pg_test_server.sh start   -> prints the TEST_DATABASE_URL to use
#   scripts/pg_test_server.sh stop
# fsync is off: this server is for tests only.
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
DIR=${PG_TEST_DIR:-/tmp/lac-pg-test}
PORT=${PG_TEST_PORT:-55432}
RUNAS=()
if [ "$(id -u)" = "0" ]; then RUNAS=(runuser -u postgres --); fi

case "${1:-}" in
  start)
    if [ -f "$DIR/data/postmaster.pid" ] && "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
      echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"; exit 0
    fi
    rm -rf "$DIR"; mkdir -p "$DIR/data" "$DIR/sock"
    [ "$(id -u)" = "0" ] && chown -R postgres:postgres "$DIR"
    "${RUNAS[@]}" "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR/sock -c fsync=off -c max_connections=300" start >/dev/null
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    if [ -f "$DIR/data/postmaster.pid" ]; then
      "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || kill "$(head -1 "$DIR/data/postmaster.pid")" || true
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
