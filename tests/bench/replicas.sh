#!/usr/bin/env bash
# replicas.sh: REQ throughput of the query mix with 0, 1 and 2 read replicas,
# and what each REQ costs in CPU on the primary, the standbys and the gateway.
#
#   bash tests/bench/replicas.sh [--events N] [--seconds S] [--clients C]
#                                [--rounds R] [--port P] [--work DIR] [--no-build]
#
# One primary (cluster.sh, port P) loaded with N pre-signed events (default
# 100,000; gen_events --seed 42, load_events), two streaming standbys of it
# (cluster.sh standby, ports P+1 and P+2), then for each round and each
# replica count a fresh gateway runs relay_bench's `mix` case (every query
# case in turn, C clients in a closed loop, S seconds). CPU is read from
# /proc before and after each run: the gateway process, and every cluster's
# postmaster with its backends (exited backends count through the
# postmaster's children times). Everything shares this machine's cores, so
# the CPU-seconds per REQ are what predicts other hosts, not the REQs/s.
# Stops everything it started on exit.
set -euo pipefail
source "$(cd "$(dirname "$0")/../.." && pwd)/pg_config/lib.sh"

EVENTS=100000; SECONDS_=20; CLIENTS=32; ROUNDS=1; PORT=55620; WORK=/tmp/nostr-replica-bench; BUILD=1
SEED=42; DATA_NOW=1767225600
while [ $# -gt 0 ]; do
    case $1 in
        --events) EVENTS=$2; shift ;;
        --seconds) SECONDS_=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --port) PORT=$2; shift ;;
        --work) WORK=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
BIN=$REPO/target/release
mkdir -p "$WORK"
chmod 755 "$WORK"
PRIMARY=$WORK/primary; S1=$WORK/standby1; S2=$WORK/standby2
GW_PID=""
cleanup() {
    [ -z "$GW_PID" ] || { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
    for dir in "$S2" "$S1" "$PRIMARY"; do bash "$REPO/pg_config/cluster.sh" stop "$dir" || true; rm -rf "$dir"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $BUILD = 1 ]; then
    log "building relay_bench, gen_events, load_events and the gateway (release)"
    (cd "$REPO" && cargo build --release -q -p nostr-pg-e2e --bin relay_bench --bin gen_events --bin load_events)
    (cd "$REPO" && cargo build --release -q -p gateway)
fi

DATA=$WORK/events-$EVENTS-seed$SEED.jsonl
QUERIES=$WORK/events-$EVENTS-seed$SEED.queries.json
[ -s "$DATA" ] || { "$BIN/gen_events" --count "$EVENTS" --seed "$SEED" --now "$DATA_NOW" --out "$DATA.tmp"; mv "$DATA.tmp" "$DATA"; }
[ -s "$QUERIES" ] || "$BIN/relay_bench" queries --dataset "$DATA" --out "$QUERIES" --seed "$SEED"

log "primary on port $PORT, loading $EVENTS events"
URL=$(bash "$REPO/pg_config/cluster.sh" start "$PRIMARY" "$PORT" | tail -1)
"$BIN/load_events" --database-url "$URL" --file "$DATA" --batch 500 --connections 2
as_pg "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d nostr -c "VACUUM ANALYZE nostr.events"
for i in 1 2; do
    dir=$WORK/standby$i
    bash "$REPO/pg_config/cluster.sh" standby "$PRIMARY" "$PORT" "$dir" 2>/dev/null
    bash "$REPO/pg_config/cluster.sh" start "$dir" $((PORT + i)) >/dev/null
done
R1=postgres://postgres@127.0.0.1:$((PORT + 1))/nostr
R2=postgres://postgres@127.0.0.1:$((PORT + 2))/nostr

cat >"$WORK/gateway.toml" <<EOF
[limits]
max_connections_per_ip = 30000
max_subscriptions = 64
reqs_per_second_per_ip = 10000000.0
req_burst_per_ip = 10000000.0
frames_per_second_per_connection = 10000000.0
frame_burst_per_connection = 10000000.0
[database]
pool_size = 16
EOF

TICK=$(getconf CLK_TCK)
# Ticks of user+system time of PID (with its reaped children when $2 = all).
ticks() { awk -v all="${2:-}" '{ t = $14 + $15; if (all == "all") t += $16 + $17; print t }' "/proc/$1/stat"; }
cluster_ticks() {   # DIR: the postmaster, its reaped children and its live ones
    local pm total child
    pm=$(head -1 "$1/postmaster.pid")
    total=$(ticks "$pm" all)
    for child in $(pgrep -P "$pm"); do total=$((total + $(ticks "$child" 2>/dev/null || echo 0))); done
    echo "$total"
}
field() { tail -1 "$WORK/results.jsonl" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }   # of the last run
metric() { curl -s "${GW_URL/ws:/http:}/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

printf '%-9s %-6s %10s %14s %14s %14s %12s\n' replicas round "REQs/s" "primary ms/REQ" "standby ms/REQ" "gateway ms/REQ" "on replicas" | tee "$WORK/table.txt"
for round in $(seq 1 "$ROUNDS"); do
    for n in 0 1 2; do
        reads=()
        [ "$n" -ge 1 ] && reads+=(--read-database-url "$R1")
        [ "$n" -ge 2 ] && reads+=(--read-database-url "$R2")
        "$BIN/gateway" --listen 127.0.0.1:0 --database-url "$URL" --config "$WORK/gateway.toml" --log-level warn \
            "${reads[@]}" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
        GW_PID=$!
        for _ in $(seq 1 100); do grep -q '^listening on ' "$WORK/gateway.out" 2>/dev/null && break; sleep 0.1; done
        GW_URL=$(sed -n 's/^listening on //p' "$WORK/gateway.out" | head -1)
        [ -n "$GW_URL" ] || { cat "$WORK/gateway.err" >&2; die "gateway did not start"; }
        for i in $(seq 1 "$n"); do   # wait for the health checks to put the replicas in rotation
            for _ in $(seq 1 100); do
                [ "$(metric "nostr_gateway_replica_up{replica=\"127.0.0.1:$((PORT + i))\"}")" = 1 ] && break
                sleep 0.1
            done
        done
        p0=$(cluster_ticks "$PRIMARY"); s0=$(( $(cluster_ticks "$S1") + $(cluster_ticks "$S2") )); g0=$(ticks $GW_PID)
        "$BIN/relay_bench" query --relay "replicas-$n" --url "$GW_URL" --round "$round" --queries "$QUERIES" \
            --case mix --clients "$CLIENTS" --seconds "$SECONDS_" --out "$WORK/results.jsonl" >/dev/null 2>&1
        p1=$(cluster_ticks "$PRIMARY"); s1=$(( $(cluster_ticks "$S1") + $(cluster_ticks "$S2") )); g1=$(ticks $GW_PID)
        answered=0
        for i in $(seq 1 "$n"); do
            q=$(metric "nostr_gateway_replica_queries_total{replica=\"127.0.0.1:$((PORT + i))\"}")
            answered=$((answered + ${q:-0}))
        done
        kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=""
        rate=$(field reqs_per_s); reqs=$(field loaded_samples)
        awk -v n="$n" -v r="$round" -v rate="$rate" -v reqs="$reqs" -v tick="$TICK" -v ans="$answered" \
            -v p=$((p1 - p0)) -v s=$((s1 - s0)) -v g=$((g1 - g0)) 'BEGIN {
                ms = 1000 / tick / reqs
                printf "%-9s %-6s %10.0f %14.3f %14.3f %14.3f %11.0f%%\n", n, r, rate, p * ms, s * ms, g * ms, 100 * ans / reqs
            }' | tee -a "$WORK/table.txt"
    done
done
log "results in $WORK/table.txt and $WORK/results.jsonl"
