#!/usr/bin/env bash
# A local PostgreSQL in a data folder of the project's (created once, reused).
#   scripts/pg.sh start|stop|status|url  [DATA_DIR] [PORT]
# Defaults: .var/pg under the checkout, port 55432. Prints nothing but errors,
# except `url`, which prints the libpq URL of the emporium database.
set -euo pipefail
cmd=${1:-start}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${2:-${EMPORIUM_PG_DATA:-$root/.var/pg}}
port=${3:-${EMPORIUM_PG_PORT:-55432}}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$(dirname "$data")"
    if [ ! -s "$data/PG_VERSION" ]; then
      install -d -m 700 "$data"
      [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
      # the postgres user must be able to reach the folder
      d=$(dirname "$data"); while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
      as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '/tmp'
max_connections = ${EMPORIUM_PG_MAX_CONNECTIONS:-200}
shared_buffers = 256MB
synchronous_commit = on
CONF
    fi
    if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$data" -l "$data/log" -w -t 30 start >/dev/null
    fi
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'emporium'" | grep -q 1 ||
      as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres emporium
    ;;
  stop)
    if [ -s "$data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    ;;
  status) as_pg "$bin/pg_ctl" -D "$data" status ;;
  url) echo "postgresql://postgres@127.0.0.1:$port/emporium" ;;
  *) echo "usage: $0 start|stop|status|url [DATA_DIR] [PORT]" >&2; exit 2 ;;
esac
