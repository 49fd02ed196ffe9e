#!/usr/bin/env bash
# ingest_batches.sh URL_BASE FILE [COUNT] [BATCHES...]: publish_batch rate by
# batch size. For each batch size, a fresh database `ingest` gets the first
# COUNT (default 100000) events of FILE over 2 connections. Besides the
# wall-clock rate it prints the CPU the backends used (their user+system time,
# read from the postmaster's reaped-children counters once they exit), so runs
# on a busy machine stay comparable. The last run also records, with
# pg_stat_statements.track = all, what the statements inside publish_batch
# (the insert, the trigger's checks, the side-table insert) cost.
#
#   bash tests/bench/ingest_batches.sh postgres://postgres@127.0.0.1:55500 events.jsonl 100000 100 500 2000
set -euo pipefail
base=${1:?URL base, e.g. postgres://postgres@127.0.0.1:55500}; file=${2:?JSONL file}
count=${3:-100000}; shift $(( $# >= 3 ? 3 : $# ))
[ $# -eq 0 ] && set -- 100 500 2000
batches=("$@")
repo=$(cd "$(dirname "$0")/../.." && pwd)
load="$repo/target/release/load_events"
pm=$(psql -X -At "$base/postgres" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" \
    | xargs -I{} awk '{print $4}' /proc/{}/stat)
ticks=$(getconf CLK_TCK)
child_cpu() { awk '{print $16 + $17}' "/proc/$pm/stat"; }

last=${batches[${#batches[@]}-1]}
for b in "${batches[@]}"; do
    psql -X -q "$base/postgres" -c "DROP DATABASE IF EXISTS ingest WITH (FORCE)" -c "CREATE DATABASE ingest"
    psql -X -q "$base/ingest" -c "CREATE EXTENSION nostr_pg"
    if [ "$b" = "$last" ]; then
        psql -X -q "$base/ingest" -c "ALTER DATABASE ingest SET pg_stat_statements.track = 'all'" \
            -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
    fi
    before=$(child_cpu)
    start=$(date +%s.%N)
    "$load" --database-url "$base/ingest" --file "$file" --batch "$b" --connections 2 --limit "$count" | tail -2
    end=$(date +%s.%N)
    sleep 0.5  # let the backends exit and be reaped
    cpu=$(( $(child_cpu) - before ))
    awk -v b="$b" -v n="$count" -v s="$(echo "$end - $start" | bc)" -v c="$cpu" -v t="$ticks" 'BEGIN {
        printf "batch %5d: %.0f events/s wall, backend CPU %.1f s = %.0f events per CPU-second\n", b, n / s, c / t, n / (c / t) }'
done

echo "statements inside publish_batch (last run, pg_stat_statements.track = all):"
psql -X "$base/ingest" -c "
    SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
           round((total_exec_time / greatest(calls, 1))::numeric, 4) AS mean_ms,
           left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'ingest')
    ORDER BY total_exec_time DESC LIMIT 15"
