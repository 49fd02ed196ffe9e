# Shared helpers for the pg_config scripts. Sourced, not run.
# Postgres refuses to run as root: clusters run as the `postgres` user, with
# data and sockets where that user can reach them (not root's home).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PG_BIN/pg_config}
[ -x "$PG_CONFIG" ] || PG_CONFIG=/usr/bin/pg_config
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\033[1m[nostr_pg]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_pg CMD...: run CMD as the cluster owner (postgres when we are root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        sudo -u postgres -- "$@"
    else
        "$@"
    fi
}
