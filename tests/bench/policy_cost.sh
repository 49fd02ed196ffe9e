#!/usr/bin/env bash
# policy_cost.sh: what moderation and write policies cost on ingest. Loads
# the same generated events through nostr.publish_batch (load_events) into
# fresh databases of one cluster, one after the other, each configured
# differently, and prints events/s for each, with `uptime` before and after:
#
#   none        no moderation rows, no policy (the moderation check skips all)
#   moderation  1,000 banned pubkeys, 1,000 banned event ids, 100 blocked
#               networks and a disallowed kind, none matching the data: one
#               indexed probe per non-empty table per event, all accepted
#   kinds       sql/examples/policy_kinds.sql allowing every kind in the data
#   wot         sql/examples/policy_web_of_trust.sql, one admin whose
#               contact list follows every author of the data: every event
#               passes both of its probes and is accepted
#
#   PG_BIN=... bash tests/bench/policy_cost.sh [--events N] [--port P] [--rounds R]
#
# Uses the installed extension (pg_config/install.sh) and the debug build of
# the tools. The machine is shared: compare numbers of one run only.
set -euo pipefail
source "$(dirname "$0")/../../pg_config/lib.sh"
events=20000 port=56010 rounds=2
while [ $# -gt 0 ]; do
    case $1 in
    --events) events=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
    esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/nostr_pg-policy-cost.XXXXXX")
chmod 755 "$work"
cluster=$work/cluster
cleanup() { bash "$REPO/pg_config/cluster.sh" stop "$cluster" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

(cd "$REPO" && cargo build -q -p nostr-pg-e2e --bin gen_events --bin load_events --bin sign_contacts)
bin=${CARGO_TARGET_DIR:-$REPO/target}/debug
url=$(bash "$REPO/pg_config/cluster.sh" start "$cluster" "$port")
admin_url=${url%/*}/postgres
psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)

file=$work/events.jsonl
"$bin/gen_events" --count "$events" --seed 14 --out "$file" >&2
kinds=$(grep -o '"kind":[0-9]*' "$file" | cut -d: -f2 | sort -un | paste -sd,)
grep -o '"pubkey":"[0-9a-f]*"' "$file" | cut -d'"' -f4 | sort -u >"$work/authors.txt"
"$bin/sign_contacts" --seed policy-cost-admin <"$work/authors.txt" >"$work/contacts.json"

# fresh NAME: a new database with the extension; prints its URL.
fresh() {
    "${psql[@]}" -d "$admin_url" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >&2
    "${psql[@]}" -d "${url%/*}/$1" -c "CREATE EXTENSION nostr_pg" >&2
    echo "${url%/*}/$1"
}

setup() {
    local db=$1
    case $2 in
    none) ;;
    moderation)
        "${psql[@]}" -d "$db" >/dev/null <<'SQL'
SELECT count(nostr.ban_pubkey(encode(sha256(('pk' || i)::bytea), 'hex'), 'bench')) FROM generate_series(1, 1000) i;
SELECT count(nostr.ban_event(encode(sha256(('ev' || i)::bytea), 'hex'), 'bench')) FROM generate_series(1, 1000) i;
SELECT count(nostr.block_ip(('10.' || i || '.0.0/16')::inet)) FROM generate_series(0, 99) i;
SELECT nostr.disallow_kind(4);
SQL
        ;;
    kinds) "${psql[@]}" -d "$db" -v kinds="$kinds" -f "$REPO/sql/examples/policy_kinds.sql" >/dev/null ;;
    wot)
        # The contact list is too long for a command-line argument.
        local admin
        admin=$("${psql[@]}" -At -d "$db" -v f="$work/contacts.json" <<'SQL'
SET nostr.max_event_bytes = 16777216;
SELECT nostr.pubkey(event::nostr.nostr_event) FROM trim(pg_read_file(:'f')) AS event, nostr.publish(event) p WHERE p.accepted;
SQL
)
        [ -n "$admin" ] || die "the admin's contact list was not accepted"
        "${psql[@]}" -d "$db" -v admins="$admin" -f "$REPO/sql/examples/policy_web_of_trust.sql" >/dev/null
        ;;
    esac
}

log "uptime before: $(uptime)"
for round in $(seq 1 "$rounds"); do
    for config in none moderation kinds wot; do
        db=$(fresh "bench_$config")
        setup "$db" "$config"
        line=$("$bin/load_events" --database-url "$db" --file "$file" --batch 500 --connections 2 | grep 'events/s')
        printf 'round %s  %-10s  %s\n' "$round" "$config" "${line#load_events: }"
    done
done
log "uptime after: $(uptime)"
