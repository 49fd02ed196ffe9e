#!/usr/bin/env bash
# run.sh: the relay benchmark, one command. nostr_pg (gateway + extension)
# side by side with nostr-rs-relay (SQLite and Postgres backends) and any
# relay already running (--peer) on this machine, in one run, workloads
# interleaved across relays. See README.md.
#
#   bash tests/bench/run.sh                 # full: 1M events, 10k connections
#   bash tests/bench/run.sh --quick         # smoke: 50k events, 2k connections
#   options: --workloads import,ingest,query,req,count,fanout,connections
#            --peers nostr-rs-relay-sqlite,nostr-rs-relay-pg   (or "none")
#            --peer NAME=ws://HOST:PORT[,PID[,PID...]]   (repeatable; a running
#                relay, fresh and empty; PIDs: whose CPU time is the relay's)
#            --req-clients N (200)  --rounds N  --events N  --work DIR
#            --report DIR  --no-build
#            --dataset FILE  (an existing gen_events JSONL instead of generating one)
#            --step-limit SECONDS  (1800: longest any one relay_bench step may run)
#
# Everything it starts (clusters, gateway, peers) it stops on exit; --peer
# relays are left running. Cached between runs under the work dir (default
# /tmp/nostr-bench): the dataset, its query set, and the peers installed with
# cargo install.
set -euo pipefail
source "$(cd "$(dirname "$0")/../.." && pwd)/pg_config/lib.sh"
HERE="$REPO/tests/bench"

MODE=full; WORKLOADS=import,ingest,query,req,count,fanout,connections
PEERS=nostr-rs-relay-sqlite,nostr-rs-relay-pg
URL_PEERS=()         # --peer specs, checked by `relay_bench peer-spec` once it is built
REQ_CLIENTS=200
ROUNDS=""; EVENTS=""; WORK=/tmp/nostr-bench; REPORT=""; BUILD=1; DATASET=""
STEP_LIMIT=1800
NRS_VERSION=0.8.12
SEED=42
# A fixed "now" for the dataset keeps it identical across machines; the
# events then span the year before it.
DATA_NOW=1767225600
PORT_MAIN=55600; PORT_PEER=55601; PORT_NRS_SQLITE=55610; PORT_NRS_PG=55611

ARGS="$*"            # for the report: how this run was started
while [ $# -gt 0 ]; do
    case $1 in
        --quick) MODE=quick ;;
        --workloads) WORKLOADS=$2; shift ;;
        --peers) PEERS=$2; shift ;;
        --peer) URL_PEERS+=(--peer "$2"); shift ;;
        --req-clients) REQ_CLIENTS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --events) EVENTS=$2; shift ;;
        --work) WORK=$2; shift ;;
        --report) REPORT=$2; shift ;;
        --no-build) BUILD=0 ;;
        --dataset) DATASET=$2; shift ;;
        --step-limit) STEP_LIMIT=$2; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ "$PEERS" = none ] && PEERS=""

if [ $MODE = quick ]; then
    EVENTS=${EVENTS:-50000}; ROUNDS=${ROUNDS:-1}
    INGEST_EVENTS=10000; CONNS=2000; FANOUT_SECS=8
    Q_SINGLE=1.5; Q_LOADED=2; REQ_SECS=5; COUNT_SECS=3
else
    EVENTS=${EVENTS:-1000000}; ROUNDS=${ROUNDS:-2}
    INGEST_EVENTS=40000; CONNS=10000; FANOUT_SECS=20
    Q_SINGLE=3; Q_LOADED=5; REQ_SECS=10; COUNT_SECS=5
fi
has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$WORK/run-$STAMP
REPORT=${REPORT:-$HERE/reports/$STAMP-$MODE}
RESULTS=$RUN/results.jsonl
mkdir -p "$WORK/data" "$RUN" "$REPORT"
chmod 755 "$WORK" "$RUN"
BIN=$REPO/target/release

# ---- cleanup: stop exactly what we started -------------------------------
PIDS=()
CLUSTERS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for dir in "${CLUSTERS[@]}"; do bash "$REPO/pg_config/cluster.sh" stop "$dir" || true; done
    [ $rc = 0 ] || log "benchmark failed (exit $rc); logs in $RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Idle-connection workload: the client and every relay need far more than
# 1024 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "mode $MODE: $EVENTS events, $ROUNDS round(s), workloads $WORKLOADS, peers ${PEERS:-none} ${URL_PEERS[*]}; open files $(ulimit -n); load $LOAD_START"

# ---- build and install ---------------------------------------------------
need_apt=()
command -v protoc >/dev/null || [ -z "$PEERS" ] || need_apt+=(protobuf-compiler)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt-get install ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then apt-get install -y "${need_apt[@]}" >/dev/null; else sudo apt-get install -y "${need_apt[@]}" >/dev/null; fi
fi
if [ $BUILD = 1 ]; then
    log "building relay_bench, gen_events, load_events and the gateway (release)"
    (cd "$REPO" && cargo build --release -q -p nostr-pg-e2e --bin relay_bench --bin gen_events --bin load_events)
    (cd "$REPO" && cargo build --release -q -p gateway)
fi
NRS=$WORK/peers/bin/nostr-rs-relay
if [ -n "$PEERS" ] && [ ! -x "$NRS" ]; then
    log "installing nostr-rs-relay $NRS_VERSION with cargo install into $WORK/peers (takes a few minutes)"
    # Its build compiles protobuf definitions (prost-build needs protoc).
    if ! command -v protoc >/dev/null; then
        [ "$(id -u)" = 0 ] || die "nostr-rs-relay needs protoc: apt-get install protobuf-compiler"
        apt-get install -y -q protobuf-compiler >"$WORK/apt-protoc.log" 2>&1 || die "apt-get install protobuf-compiler failed"
    fi
    # Not --locked: its lock file pins time 0.3.25, which no longer compiles
    # with current Rust (E0282); the newest semver-compatible versions do.
    CARGO_TARGET_DIR=$WORK/peers-build cargo install nostr-rs-relay --version "$NRS_VERSION" --root "$WORK/peers" >"$WORK/peers-install.log" 2>&1 \
        || { tail -20 "$WORK/peers-install.log"; die "cargo install nostr-rs-relay failed"; }
fi

# ---- dataset and query set (cached) ---------------------------------------
now=$(date +%s); [ "$now" -gt "$DATA_NOW" ] || DATA_NOW=$((now - 86400))
DATA=$WORK/data/events-$EVENTS-seed$SEED-$DATA_NOW.jsonl
if [ -n "$DATASET" ]; then
    DATA=$(readlink -f "$DATASET"); EVENTS=$(wc -l <"$DATA")
fi
QUERIES=$WORK/data/$(basename "${DATA%.jsonl}").queries.json
if [ ! -s "$DATA" ]; then
    log "generating $EVENTS pre-signed events into $DATA"
    "$BIN/gen_events" --count "$EVENTS" --seed "$SEED" --now "$DATA_NOW" --out "$DATA.tmp"
    mv "$DATA.tmp" "$DATA"
fi
if has "$WORKLOADS" query && [ ! -s "$QUERIES" ]; then
    "$BIN/relay_bench" queries --dataset "$DATA" --out "$QUERIES" --seed "$SEED"
fi

# ---- relays --------------------------------------------------------------
RELAYS=()            # name|ws url|pids (colon-separated: whose CPU time is the relay's)
start_cluster() {    # DIR PORT -> URL of database nostr (called in $(...): register the dir first)
    bash "$REPO/pg_config/cluster.sh" start "$1" "$2" | tail -1
}
wait_port() {        # PORT NAME
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not open port $1"
}
for port in $PORT_MAIN $PORT_PEER $PORT_NRS_SQLITE $PORT_NRS_PG; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is in use (another benchmark or cluster?)"
done
psql_to() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

log "starting the nostr_pg cluster on port $PORT_MAIN"
CLUSTERS+=("$RUN/pg-main")
MAIN_URL=$(start_cluster "$RUN/pg-main" $PORT_MAIN)
cat >"$RUN/gateway.toml" <<EOF
# Benchmark settings: every client comes from 127.0.0.x, so per-IP and
# per-pubkey limits are raised far above what the workloads send.
[limits]
max_connections = 30000
max_connections_per_ip = 30000
max_subscriptions = 64
events_per_second_per_ip = 10000000.0
event_burst_per_ip = 10000000.0
events_per_second_per_pubkey = 10000000.0
event_burst_per_pubkey = 10000000.0
reqs_per_second_per_ip = 10000000.0
req_burst_per_ip = 10000000.0
frames_per_second_per_connection = 10000000.0
frame_burst_per_connection = 10000000.0
EOF
"$BIN/gateway" --listen 127.0.0.1:0 --database-url "$MAIN_URL" --config "$RUN/gateway.toml" --log-level warn \
    >"$RUN/gateway.out" 2>"$RUN/gateway.err" &
GW_PID=$!; PIDS+=("$GW_PID")
for _ in $(seq 1 100); do grep -q '^listening on ' "$RUN/gateway.out" 2>/dev/null && break; sleep 0.1; done
GW_URL=$(sed -n 's/^listening on //p' "$RUN/gateway.out" | head -1)
[ -n "$GW_URL" ] || { cat "$RUN/gateway.err" >&2; die "gateway did not start"; }
# The relay's CPU is the gateway's plus the postmaster's with every backend
# and background worker it forks (relay_bench sums process trees).
postmaster() { head -1 "$1/postmaster.pid"; }
RELAYS+=("nostr_pg|$GW_URL|$GW_PID:$(postmaster "$RUN/pg-main")")
log "nostr_pg gateway at $GW_URL (pid $GW_PID, postmaster $(postmaster "$RUN/pg-main"))"

nrs_config() {       # DIR PORT [postgres URL]
    mkdir -p "$1"
    {
        echo '[info]'
        echo "relay_url = \"ws://127.0.0.1:$2/\""
        echo 'name = "nostr-rs-relay (benchmark)"'
        echo '[database]'
        if [ -n "${3:-}" ]; then
            echo 'engine = "postgres"'
            echo "connection = \"$3\""
        else
            echo 'engine = "sqlite"'
            echo "data_directory = \"$1\""
        fi
        echo '[network]'
        echo 'address = "127.0.0.1"'
        echo "port = $2"
        echo '[options]'
        echo 'reject_future_seconds = 1800'
        # No [limits] entries: messages_per_sec and subscriptions_per_min are
        # unlimited when unset. Signatures are always verified.
    } >"$1/config.toml"
}
start_nrs() {        # NAME DIR PORT [more PIDs that are part of it]
    (cd "$2" && exec "$NRS" --config "$2/config.toml" >"$2/relay.log" 2>&1) &
    local pid=$!; PIDS+=("$pid")
    wait_port "$3" "$1"
    RELAYS+=("$1|ws://127.0.0.1:$3|$pid${4:+:$4}")
    log "$1 at ws://127.0.0.1:$3 (pid $pid${4:+ and $4})"
}
if has "$PEERS" nostr-rs-relay-sqlite; then
    nrs_config "$RUN/nrs-sqlite" $PORT_NRS_SQLITE
    start_nrs nostr-rs-relay-sqlite "$RUN/nrs-sqlite" $PORT_NRS_SQLITE
fi
if has "$PEERS" nostr-rs-relay-pg; then
    log "starting the peer cluster on port $PORT_PEER (same settings as nostr_pg's)"
    CLUSTERS+=("$RUN/pg-peer")
    PEER_URL=$(start_cluster "$RUN/pg-peer" $PORT_PEER)
    psql_to -h 127.0.0.1 -p $PORT_PEER -U postgres -d postgres -c "CREATE DATABASE nrs"
    nrs_config "$RUN/nrs-pg" $PORT_NRS_PG "${PEER_URL%/nostr}/nrs"
    start_nrs nostr-rs-relay-pg "$RUN/nrs-pg" $PORT_NRS_PG "$(postmaster "$RUN/pg-peer")"
fi
# Relays already running, by URL: checked, reachable, not started or stopped here.
if [ ${#URL_PEERS[@]} -gt 0 ]; then
    while IFS='|' read -r name url pids; do
        for r in "${RELAYS[@]}"; do [ "${r%%|*}" != "$name" ] || die "--peer $name: the name is taken"; done
        hostport=${url#ws://}; hostport=${hostport%%/*}
        (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null || die "--peer $name: nothing listens at $url"
        RELAYS+=("$name|$url|$pids")
        log "$name at $url (running; pids ${pids:-none given, no CPU accounting})"
    done < <("$BIN/relay_bench" peer-spec "${URL_PEERS[@]}")
fi

relay_by() { for r in "${RELAYS[@]}"; do [ "${r%%|*}" = "$1" ] && echo "$r"; done; }
drop_relay() { local keep=() r; for r in "${RELAYS[@]}"; do [ "${r%%|*}" = "$1" ] || keep+=("$r"); done; RELAYS=("${keep[@]}"); }
# Round r starts with relay r mod n, so no relay always goes first.
rotated() {
    local n=${#RELAYS[@]} i
    for i in $(seq 0 $((n - 1))); do echo "${RELAYS[$(((i + $1) % n))]}"; done
}
bench() { timeout "$STEP_LIMIT" "$BIN/relay_bench" "$@" --out "$RESULTS"; }
pgss_reset() { psql_to -h 127.0.0.1 -p $PORT_MAIN -U postgres -d nostr -tAc "SELECT pg_stat_statements_reset()" >/dev/null; }
pgss_dump() {        # NAME: the top statements of the nostr_pg cluster during a workload
    psql_to -h 127.0.0.1 -p $PORT_MAIN -U postgres -d nostr -c "
        SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
               round(mean_exec_time::numeric, 3) AS mean_ms, rows,
               left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12" >"$REPORT/pgss-$1.txt" 2>&1 || true
}

# ---- workload 5: import (also the preload for the query, req and count workloads)
if has "$WORKLOADS" import || has "$WORKLOADS" query || has "$WORKLOADS" req || has "$WORKLOADS" count; then
    log "import: $DATA into nostr_pg through nostr.publish_batch (load_events)"
    pgss_reset
    "$BIN/load_events" --database-url "$MAIN_URL" --file "$DATA" --batch 500 --connections 2 | tee "$RUN/import-nostr_pg.log"
    rate=$(sed -n 's/^load_events: .* in \([0-9.]*\) s, \([0-9]*\) events\/s.*/\2/p' "$RUN/import-nostr_pg.log")
    [ -n "$rate" ] && bench record --relay nostr_pg --workload import --case publish_batch --metric "events_per_s=$rate"
    pgss_dump import
    # As after any bulk load: statistics, and the visibility map that lets
    # COUNT answer from the tag index alone.
    psql_to -h 127.0.0.1 -p $PORT_MAIN -U postgres -d nostr -c "VACUUM ANALYZE nostr.events, nostr.event_tags"
    # Peers import over WebSocket. (nostr-rs-relay's own `bulkloader` was
    # tried and dropped: in 0.8.12 it stores events but no rows in its tag
    # table, so every tag query then answers nothing, fast.)
    for r in "${RELAYS[@]}"; do
        IFS='|' read -r name url pids <<<"$r"
        [ "$name" != nostr_pg ] || continue
        log "import: $DATA into $name over WebSocket (pipelined)"
        # A peer that cannot take the dataset within the time limit would
        # answer every later workload on a partial database: leave it out,
        # say so, and go on with the others.
        if ! bench import-ws --relay "$name" --url "$url" --file "$DATA" --connections 4 --window 64; then
            log "import into $name failed or hit the time limit: $name is left out of the other workloads"
            drop_relay "$name"
        fi
    done
    [ -z "$(relay_by nostr-rs-relay-pg)" ] || psql_to -h 127.0.0.1 -p $PORT_PEER -U postgres -d nrs -c "VACUUM ANALYZE"
fi

# ---- workload 2: queries on the preloaded data -----------------------------
if has "$WORKLOADS" query; then
    pgss_reset
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "query round $round: $name"
            bench query --relay "$name" --url "$url" --round "$round" --queries "$QUERIES" \
                --clients 32 --single-seconds $Q_SINGLE --seconds $Q_LOADED --pids "$pids"
        done < <(rotated "$round")
    done
    pgss_dump query
fi

# ---- the nostr-bench REQ loop and NIP-45 COUNT (before ingest adds #t nostr events)
if has "$WORKLOADS" req; then
    pgss_reset
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "req round $round: $name ($REQ_CLIENTS clients)"
            bench req --relay "$name" --url "$url" --round "$round" --clients "$REQ_CLIENTS" \
                --limit 10 --tag nostr --seconds $REQ_SECS --pids "$pids"
        done < <(rotated "$round")
    done
    pgss_dump req
fi
if has "$WORKLOADS" count; then
    pgss_reset
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "count round $round: $name"
            bench count --relay "$name" --url "$url" --round "$round" --tag nostr --seconds $COUNT_SECS --pids "$pids"
        done < <(rotated "$round")
    done
    pgss_dump count
fi

# ---- workload 1: ingest ----------------------------------------------------
if has "$WORKLOADS" ingest; then
    pgss_reset
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "ingest round $round: $name"
            bench ingest --relay "$name" --url "$url" --round "$round" --events $INGEST_EVENTS --publishers 32 --window 1 --pids "$pids"
            bench ingest --relay "$name" --url "$url" --round "$round" --events $INGEST_EVENTS --publishers 4 --window 64 --pids "$pids"
        done < <(rotated "$round")
    done
    pgss_dump ingest
fi

# ---- workload 3: fanout ----------------------------------------------------
if has "$WORKLOADS" fanout; then
    pgss_reset
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "fanout round $round: $name"
            bench fanout --relay "$name" --url "$url" --round "$round" --subscribers 1000 --rate 500 --seconds $FANOUT_SECS
        done < <(rotated "$round")
    done
    pgss_dump fanout
fi

# ---- workload 4: idle connections (last: RSS does not shrink back) --------
if has "$WORKLOADS" connections; then
    for round in $(seq 1 "$ROUNDS"); do
        while IFS='|' read -r name url pids; do
            log "connections round $round: $name ($CONNS)"
            # RSS of the first process: the gateway for nostr_pg (Postgres
            # memory does not grow with idle WebSockets).
            first=${pids%%:*}
            bench connections --relay "$name" --url "$url" --round "$round" --pid "${first:-0}" --connections $CONNS --sources 8
            sleep 2
        done < <(rotated "$round")
    done
fi

# ---- report ----------------------------------------------------------------
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain -- gateway nostr_pg sql 2>/dev/null | head -1)
cp "$RESULTS" "$REPORT/results.jsonl"
"$BIN/relay_bench" report --results "$RESULTS" --out "$REPORT" \
    --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "commit=$commit${dirty:+ (with uncommitted changes)}" \
    --meta "mode=$MODE: $EVENTS preloaded events, $ROUNDS round(s), $CONNS idle connections, fanout $FANOUT_SECS s" \
    --meta "peers=${PEERS:-none} (nostr-rs-relay $NRS_VERSION by cargo install; its Postgres backend runs on a second cluster with pg_config/postgresql.conf); by URL: $(printf '%s ' "${URL_PEERS[@]}" | sed 's/--peer //g'); measured to the end: $(for r in "${RELAYS[@]}"; do printf '%s ' "${r%%|*}"; done)" \
    --meta "load average (1/5/15 min)=$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
    --meta "command=bash tests/bench/run.sh $ARGS" \
    | tee "$REPORT/table.txt"
log "report: $REPORT/report.md"
