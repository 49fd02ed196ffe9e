#!/usr/bin/env bash
# Installs what building and testing nostr_pg needs on a fresh Debian 12
# machine, skipping whatever is already there: the Postgres 15 server and
# headers, clang (for pgrx's bindgen), sudo, cargo-pgrx 0.18.0, and pgrx's
# registration of the system Postgres.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need_apt=()
for pkg in postgresql-15 postgresql-server-dev-15 postgresql-contrib clang libclang-dev sudo; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.0'; then
    log "installing cargo-pgrx 0.18.0 (takes about 10 minutes the first time)"
    cargo install cargo-pgrx --version 0.18.0 --locked
fi

if ! grep -qs "pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "registering $PG_CONFIG with pgrx"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
