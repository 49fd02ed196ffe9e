#!/usr/bin/env bash
# Runs every test of nostr_pg on this machine, installing what is missing:
#   1. pure Rust unit tests (event/filter core, gateway);
#   2. in-database #[pg_test]s (cargo pgrx test, cluster run as `postgres`);
#   3. golden SQL files (pg_regress) against the installed extension;
#   4. end-to-end tests in tests/: a real cluster, real gateways, real clients.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bash "$REPO/pg_config/setup.sh"
cd "$REPO"

work=$(mktemp -d "${TMPDIR:-/tmp}/nostr_pg-test.XXXXXX")
chmod 755 "$work"
# A free port (a fixed one can collide with the kernel's ephemeral ports).
port=${NOSTR_PG_TEST_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)}
cleanup() {
    bash "$REPO/pg_config/cluster.sh" stop "$work/cluster" || true
    rm -rf "$work"
}
trap cleanup EXIT

log "1/4 unit tests (core, gateway)"
cargo test -p nostr-pg-core -p gateway

log "2/4 in-database tests (cargo pgrx test)"
mkdir -p "$work/pgrx"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pgrx"
runas=(); [ "$(id -u)" = 0 ] && runas=(--runas postgres)
(cd nostr_pg && cargo pgrx test pg15 "${runas[@]}" --pgdata "$work/pgrx")

log "3/4 golden SQL tests (pg_regress)"
NOSTR_PG_PROFILE= bash "$REPO/pg_config/install.sh"
url=$(bash "$REPO/pg_config/cluster.sh" start "$work/cluster" "$port")
bash "$REPO/pg_config/regress.sh" "$port" "$work/regress"

log "4/4 end-to-end tests (tests/)"
cargo build -p gateway
NOSTR_PG_TEST_URL=$url NOSTR_PG_GATEWAY_BIN="$REPO/target/debug/gateway" \
    cargo test -p nostr-pg-e2e -- --test-threads=4
log "all tests passed"
