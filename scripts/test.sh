#!/usr/bin/env bash
# `make test`: starts a throwaway PostgreSQL, runs every test through CTest
# (unit, *_pgtest against PostgreSQL, end-to-end against a real node), stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=$(mktemp -d /tmp/emporium-test-pg.XXXXXX)
port=${EMPORIUM_TEST_PG_PORT:-55439}
cleanup() { "$root/scripts/pg.sh" stop "$data/pg" "$port" || true; rm -rf "$data"; }
trap cleanup EXIT
scripts/pg.sh start "$data/pg" "$port"
export EMPORIUM_TEST_PG="postgresql://postgres@127.0.0.1:$port/emporium"
export EMPORIUM_BIN="$root/build/emporium"
cd build
ctest --output-on-failure --timeout 600 "$@"
