#!/usr/bin/env bash
# Installs what building and testing nostr_pg needs on a fresh Debian 12
# machine, skipping whatever is already there: rustfmt, clippy, python3, the
# Postgres 15 server and headers, clang (for pgrx's bindgen), sudo, cargo-pgrx
# 0.18.0, and pgrx's registration of the system Postgres.
# `setup.sh base` installs only what the quick lint checks use: rustfmt,
# clippy and python3. `setup.sh browser` installs only Chromium, which the
# end-to-end test of the relay's home page drives headless.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    log "installing rustfmt and clippy"
    rustup component add rustfmt clippy
fi
if ! command -v python3 >/dev/null; then
    log "installing python3"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 >/dev/null
fi
[ "${1:-}" = base ] && exit 0

# Debian's chromium: the home page test (tests/tests/home_page.rs) renders the
# page in it, scripts and all.
if ! command -v chromium >/dev/null; then
    log "installing chromium (for the home page test)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
[ "${1:-}" = browser ] && exit 0

need_apt=()
for pkg in postgresql-15 postgresql-server-dev-15 postgresql-contrib clang libclang-dev sudo; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
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
