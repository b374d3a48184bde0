#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster on 127.0.0.1 as the `postgres`
# user (initdb refuses root). Usage:
#   source .ci/postgres.sh   # exports ROLEKEEPER_TEST_POSTGRES_URL, PGDATA_DIR
#   pg_stop                  # stops it and removes the data directory
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# A free loopback port unless PG_PORT is given.
PG_PORT=${PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PGDATA_DIR=$(mktemp -d /tmp/rolekeeper-pg.XXXXXX)
chown postgres:postgres "$PGDATA_DIR"
run_as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
run_as_postgres "$PG_BIN/initdb -D '$PGDATA_DIR/data' -U postgres -A trust --no-sync >/dev/null"
run_as_postgres "$PG_BIN/pg_ctl -D '$PGDATA_DIR/data' -l '$PGDATA_DIR/log' -w \
  -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories='$PGDATA_DIR' -c max_connections=400 -c fsync=on\" start >/dev/null"
export PGDATA_DIR PG_PORT
export ROLEKEEPER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
pg_stop() {
  run_as_postgres "$PG_BIN/pg_ctl -D '$PGDATA_DIR/data' -m fast stop >/dev/null" || true
  rm -rf "$PGDATA_DIR"
}
