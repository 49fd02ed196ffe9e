#!/usr/bin/env bash
# sync_import.sh [N] [PORT]: two measurements of nostr-pg-admin on a
# throwaway cluster (pg_config/cluster.sh, 127.0.0.1:PORT, default 56250;
# a gateway on PORT+1), with N events (default 50000) from gen_events:
#
# 1. import rate into a database already holding N events: N events are
#    imported first (timed too), then N/5 more are measured (at least
#    10000), with the CPU of nostr-pg-admin and of the Postgres backends
#    apart (the backends' from the postmaster's reaped-children counters),
#    and, when `perf` is installed, where the CPU went (perf record -a over
#    the measured import; by process and shared object, then the top
#    symbols);
# 2. NIP-77 sync of that database against a copy differing in 1% both
#    ways: two template copies, each missing a different 1% (by seq), one
#    served by a gateway; `sync --dir both` from the other. Time, rounds,
#    bytes exchanged, events moved, and the gateway's CPU.
#
#   eval "$(/work/tools/private-pg.sh NAME)"   # PG_BIN, if not the system's
#   bash tests/bench/sync_import.sh 50000
#   bash tests/bench/sync_import.sh 1000000
#   SYNC_ONLY=1 bash tests/bench/sync_import.sh 1000000   # again, on the database the last run imported
#
# Installs the extension's release build first (pg_config/install.sh: a
# debug build, as `test.sh e2e` installs, verifies signatures ~10x slower)
# and builds what it runs in release. Prints `uptime` first and last: the numbers mean little
# on a busy machine.
set -euo pipefail
n=${1:-50000}; port=${2:-56250}
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$repo/target/release
work=${WORK:-/tmp/nostr_pg-sync-import-$port}
measure=$(( n / 5 > 10000 ? n / 5 : 10000 ))
user=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)
base=postgres://$user@127.0.0.1:$port
ticks=$(getconf CLK_TCK)

echo "uptime at start: $(uptime)"
NOSTR_PG_PROFILE=release bash "$repo/pg_config/install.sh" >/dev/null
(cd "$repo" && cargo build --release -q -p gateway && cargo build --release -q -p nostr-pg-e2e --bin gen_events)
mkdir -p "$work"
data=$work/events-$n.jsonl
if [ ! -s "$data" ]; then
    "$bin/gen_events" --count $(( n + measure )) --seed 11 --out "$data.tmp" >/dev/null
    mv "$data.tmp" "$data"
fi
head -n "$n" "$data" > "$work/preload.jsonl"
tail -n "$measure" "$data" > "$work/measure.jsonl"

gw_pid=
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
    bash "$repo/pg_config/cluster.sh" stop "$work/pgdata" "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash "$repo/pg_config/cluster.sh" start "$work/pgdata" "$port" >/dev/null
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
pm=$(psql -At "$base/postgres" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" \
    | xargs -I{} awk '{print $4}' /proc/{}/stat)
backend_cpu() { awk '{print $16 + $17}' "/proc/$pm/stat"; }
fresh() {
    psql "$base/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
    psql "$base/$1" -c "CREATE EXTENSION nostr_pg"
}

if [ -z "${SYNC_ONLY:-}" ]; then
echo "== import: $n events into an empty database"
fresh imp
/usr/bin/time -f "%e s wall, nostr-pg-admin %U s user %S s sys" \
    "$bin/nostr-pg-admin" --database-url "$base/imp" import "$work/preload.jsonl" --progress-secs 60 2>&1 >/dev/null \
    | grep -E "^import|accepted|wall"
psql "$base/imp" -c "VACUUM ANALYZE nostr.events" -c "CHECKPOINT"

echo "== import: $measure more events into a database holding $(psql -At "$base/imp" -c "SELECT count(*) FROM nostr.events") events"
perf_data=$work/import.perf
before=$(backend_cpu)
perf_pid=
if command -v perf >/dev/null; then
    perf record -q -a -F 199 -g -o "$perf_data" 2>/dev/null &
    perf_pid=$!
fi
/usr/bin/time -f "%e s wall, nostr-pg-admin %U s user %S s sys" \
    "$bin/nostr-pg-admin" --database-url "$base/imp" import "$work/measure.jsonl" --progress-secs 60 \
    > "$work/measure.json" 2> "$work/measure.err" &
import_pid=$!
# The import's own backends (its pool connects at once and lives to the end),
# so the profile leaves out whatever else the machine runs.
pids= admin_pid=
for _ in $(seq 100); do
    [ -n "$admin_pid" ] || admin_pid=$(pgrep -P "$import_pid" -x nostr-pg-admin || true)
    pids=$(psql -At "$base/postgres" -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'nostr_pg_admin'")
    [ "$(echo "$pids" | tr ',' '\n' | grep -c .)" -ge 4 ] && break
    sleep 0.1
done
wait "$import_pid"
[ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
sleep 0.5 # the backends exit and are reaped
cpu=$(( $(backend_cpu) - before ))
grep -E "^import|accepted|wall" "$work/measure.err"
awk -v c="$cpu" -v t="$ticks" -v n="$measure" 'BEGIN {
    printf "Postgres backends: %.1f CPU-s = %.0f events per backend CPU-second\n", c / t, n / (c / t) }'
if [ -f "$perf_data" ] && [ -n "$pids" ]; then
    echo "-- where the CPU went (perf during the measured import; its backends $pids and the tool): by process and object"
    { perf report -q -i "$perf_data" --pid "$pids${admin_pid:+,$admin_pid}" --percentage relative --no-children \
        --sort comm,dso --stdio -g none 2>/dev/null || true; } | grep -v '^$' | head -12 || true
    echo "-- top symbols"
    { perf report -q -i "$perf_data" --pid "$pids${admin_pid:+,$admin_pid}" --percentage relative --no-children \
        --sort comm,sym --stdio -g none 2>/dev/null || true; } | grep -v '^$' | head -30 || true
fi

fi

echo "== sync: two copies of $(psql -At "$base/imp" -c "SELECT count(*) FROM nostr.events") events, each missing a different 1%"
psql "$base/postgres" -c "DROP DATABASE IF EXISTS s1 WITH (FORCE)" -c "DROP DATABASE IF EXISTS s2 WITH (FORCE)" \
    -c "CREATE DATABASE s1 TEMPLATE imp" -c "CREATE DATABASE s2 TEMPLATE imp"
psql "$base/s1" -c "DELETE FROM nostr.events WHERE seq % 100 = 1" -c "VACUUM ANALYZE nostr.events"
psql "$base/s2" -c "DELETE FROM nostr.events WHERE seq % 100 = 2" -c "VACUUM ANALYZE nostr.events"
cat > "$work/gateway.toml" <<'EOF'
[limits]
events_per_second_per_ip = 1000000.0
event_burst_per_ip = 1000000.0
events_per_second_per_pubkey = 1000000.0
event_burst_per_pubkey = 1000000.0
reqs_per_second_per_ip = 1000000.0
req_burst_per_ip = 1000000.0
frames_per_second_per_connection = 1000000.0
frame_burst_per_connection = 1000000.0
max_negentropy_records = 10000000
max_negentropy_records_total = 20000000
EOF
"$bin/gateway" --listen "127.0.0.1:$(( port + 1 ))" --database-url "$base/s2" --config "$work/gateway.toml" \
    2> "$work/gateway.err" &
gw_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/gateway.err" 2>/dev/null && break; sleep 0.1; done
gw_before=$(awk '{print $14 + $15}' "/proc/$gw_pid/stat")
before=$(backend_cpu)
/usr/bin/time -f "%e s wall, nostr-pg-admin %U s user %S s sys" \
    "$bin/nostr-pg-admin" --database-url "$base/s1" sync "ws://127.0.0.1:$(( port + 1 ))" --json --progress-secs 60 \
    > "$work/sync.json" 2> "$work/sync.err"
gw_cpu=$(( $(awk '{print $14 + $15}' "/proc/$gw_pid/stat") - gw_before ))
cat "$work/sync.err"
awk -v c="$gw_cpu" -v t="$ticks" 'BEGIN { printf "gateway CPU %.2f s\n", c / t }'
echo "summary: $(cat "$work/sync.json")"
for db in s1 s2; do echo "$db: $(psql -At "$base/$db" -c "SELECT count(*) FROM nostr.events") events"; done
echo "uptime at end: $(uptime)"
