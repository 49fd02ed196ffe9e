#!/usr/bin/env bash
# hosts.sh: fanout latency across hosts, with 0 ms and 5 ms between them.
#
#   bash tests/bench/hosts.sh [--delays 0,5] [--rate R] [--seconds S]
#                             [--subscribers N] [--no-build]
#
# A database host and three gateway hosts in network namespaces (the
# topology of tests/tests/hosts.rs, e2e::netns), for each delay D a fresh
# database and three fresh gateways whose database paths are delayed by D ms
# each way (a userspace relay, tests/src/delay.rs: this kernel has no
# sch_netem, so `tc ... netem` cannot). One client publishes on gateway 1 at
# R events/s (default 100) for S seconds (20); N subscribers (5) on each of
# gateways 2 and 3 take every event. Prints, per delay, the publish->delivery
# quantiles over every delivery, and the EVENT->OK quantiles on gateway 1,
# with `uptime` before and after (the clients share the machine's cores).
# Needs root and iproute2, and the extension installed (pg_config/install.sh)
# in $PG_BIN's PostgreSQL. Removes the namespaces and stops what it started
# on exit (hosts_bench does; a crashed run's leftovers go at the next start).
set -euo pipefail
source "$(cd "$(dirname "$0")/../.." && pwd)/pg_config/lib.sh"

BUILD=1 args=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) BUILD=0 ;;
        --delays|--rate|--seconds|--subscribers) args+=("$1" "${2:?$1 needs a value}"); shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "network namespaces need root"
command -v ip >/dev/null || die "iproute2's ip is missing (apt-get install iproute2)"
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
if [ $BUILD = 1 ]; then
    log "building hosts_bench, delay_relay and the gateway (release)"
    (cd "$REPO" && cargo build --release -q -p nostr-pg-e2e --bin hosts_bench --bin delay_relay)
    (cd "$REPO" && cargo build --release -q -p gateway --bin gateway)
fi
echo "uptime before: $(uptime)"
NOSTR_PG_GATEWAY_BIN=$BIN/gateway "$BIN/hosts_bench" "${args[@]}"
echo "uptime after:  $(uptime)"
