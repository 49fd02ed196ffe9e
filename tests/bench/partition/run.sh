#!/usr/bin/env bash
# Time partitioning study (issue 13): should nostr.events be range-partitioned
# by created_at? Measures a flat layout (today's) and a monthly-partitioned
# one side by side in one private cluster, at 10M events.
#
#   bash tests/bench/partition/run.sh [all|data|cluster|load|index|ingest|queries|retention|sizes|stop]
#
# Default `all`: every step in order, then stops the cluster. Each step can
# also be run alone (the cluster must be running for load and later steps).
# Needs PostgreSQL 15 (PG_BIN, as pg_config/lib.sh finds it; file_fdw and
# pgbench from its contrib) and the release `gen_events` (built if missing).
# Not part of pg_config/test.sh: it takes about an hour on 2 cores and
# about 40 GB of disk.
#
# Environment: WORK (default /work/part-data: dataset, results; delete it
# after), PGDATA_DIR (default /work/part-pg), PORT (default 56300),
# EVENTS (base size, default 10000000), FRESH_NEW / FRESH_OLD (fresh events
# for the ingest step: newest ones after the base, and ones taken from across
# the year, defaults 90000 / 10000), SEED (42), ROUNDS (A/B rounds, 2),
# SECONDS_PER_CASE (per round and layout, 5), RESULTS (where the tables and
# EXPLAINs go, default tests/bench/partition/results).
#
# What it does (details in docs/scaling.md, "Time partitioning"):
# - data: gen_events --seed 42 --now 2026-01-01 (the benchmark's dataset,
#   one year of 2025), EVENTS + FRESH_NEW events; the fresh set is the last
#   FRESH_NEW lines plus every k-th earlier line (FRESH_OLD of them, dated
#   into older months), the base is the rest.
# - load: both layouts from the same files at once (COPY;
#   derive.py computes the columns the extension's trigger derives), with
#   wal_level=minimal; then
#   the indexes; then the cluster restarts with the repository's
#   pg_config/postgresql.conf (wal_level=replica, synchronous_commit=on).
# - ingest: the fresh events through each layout's publish path (ingest.sql),
#   100 per transaction, in slices alternating flat/partitioned.
# - queries: the relay's SQL shapes (queries/*.sql, from nostr_pg's
#   query/plan.rs) with pgbench, one client, alternating layouts per round;
#   p50/p99 and EXPLAIN (ANALYZE, BUFFERS) of each.
# - retention: the oldest full month dropped from part_time (detach + drop,
#   plus its rows in event_ids/addresses) versus DELETE of the same month
#   from part_flat (the delete trigger removes tag rows), then VACUUM.
# - sizes: table and index sizes of both layouts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
source "$REPO/pg_config/lib.sh"
WORK=${WORK:-/work/part-data}
PGDATA_DIR=${PGDATA_DIR:-/work/part-pg}
PORT=${PORT:-56300}
EVENTS=${EVENTS:-10000000}
FRESH_NEW=${FRESH_NEW:-90000}
FRESH_OLD=${FRESH_OLD:-10000}
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-2}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-5}
RESULTS=${RESULTS:-$HERE/results}
DATA_NOW=1767225600 # 2026-01-01: the dataset is 2025
FIRST_MONTH=2025-01-01
MONTHS=12
user=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$user" -d part)
mkdir -p "$WORK" "$RESULTS"

psql_() { as_pg "${PSQL[@]}" "$@"; }
note() { echo "$(date -u +%H:%M:%S) $* | $(uptime | sed 's/.*load/load/')" | tee -a "$RESULTS/log.txt" >&2; }

step_data() {
    local all=$WORK/events.jsonl total=$((EVENTS + FRESH_NEW))
    ls "$WORK"/base-1.tsv >/dev/null 2>&1 && return
    if [ ! -s "$all" ]; then
        [ -x "$REPO/target/release/gen_events" ] || (cd "$REPO" && cargo build --release -q -p nostr-pg-e2e --bin gen_events)
        note "generating $total events"
        "$REPO/target/release/gen_events" --count "$total" --seed "$SEED" --now "$DATA_NOW" --out "$all.tmp"
        mv "$all.tmp" "$all"
    fi
    # Base: EVENTS lines; fresh: the FRESH_NEW newest, and every k-th older
    # line. Two processes, one per core.
    local older=$((EVENTS + FRESH_OLD)) k=$(((EVENTS + FRESH_OLD) / FRESH_OLD))
    note "deriving columns"
    python3 "$HERE/derive.py" "$all" "$WORK" 2 0 "$older" "$k" &
    python3 "$HERE/derive.py" "$all" "$WORK" 2 1 "$older" "$k"
    wait
    chmod 755 "$WORK"; chmod 644 "$WORK"/*.tsv
    rm -f "$all" # regenerated from the seed if needed
    note "base $(cat "$WORK"/base-*.tsv | wc -l) rows, fresh $(cat "$WORK"/fresh-*.tsv | wc -l) rows"
}

# conf LOADING: the repository's settings (without nostr_pg preloaded: the
# study needs only PostgreSQL), and for bulk loading wal_level=minimal.
conf() {
    local f=$PGDATA_DIR/postgresql.auto.conf
    as_pg "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$user" -d postgres -c "ALTER SYSTEM RESET ALL" 2>/dev/null || true
    if [ "$1" = loading ]; then
        printf "wal_level = minimal\nmax_wal_senders = 0\n" | as_pg tee "$f" >/dev/null
    else
        : | as_pg tee "$f" >/dev/null
    fi
}

start() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 600 -o "-p $PORT -k $PGDATA_DIR" start >/dev/null; }
stop() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null || true; }

step_cluster() {
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        mkdir -p "$PGDATA_DIR"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA_DIR" && chmod 700 "$PGDATA_DIR"
        as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$user" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        sed "s/^shared_preload_libraries = .*/shared_preload_libraries = 'pg_stat_statements'/; /^nostr\./d" \
            "$REPO/pg_config/postgresql.conf" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
    conf "${1:-loading}"
    stop
    start
    as_pg "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$user" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'part'" | grep -q 1 \
        || as_pg "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$user" -d postgres -c "CREATE DATABASE part"
    note "cluster up on $PORT ($(psql_ -tAc 'SHOW wal_level') WAL)"
}

step_load() {
    conf loading; stop; start
    local base_files="$WORK/base-0.tsv $WORK/base-1.tsv"
    psql_ -v fresh_files="$WORK/fresh-0.tsv $WORK/fresh-1.tsv" -f "$HERE/study.sql"
    note "loading both layouts at once (one session each)"
    local t0=$SECONDS
    psql_ -1 -v base_files="$base_files" -f "$HERE/layout_flat.sql" -f "$HERE/load_flat.sql" &
    local flat=$!
    psql_ -1 -v base_files="$base_files" -v first_month="$FIRST_MONTH" -v months="$MONTHS" -f "$HERE/layout_time.sql" -f "$HERE/load_time.sql" &
    local time=$!
    wait $flat; note "flat loaded ($((SECONDS - t0)) s)"
    wait $time; note "partitioned loaded ($((SECONDS - t0)) s)"
}

step_index() {
    local t0=$SECONDS flat time
    psql_ -f "$HERE/indexes_flat.sql" &
    flat=$!
    psql_ -f "$HERE/indexes_time.sql" &
    time=$!
    wait $flat; note "flat indexed ($((SECONDS - t0)) s)"
    wait $time; note "partitioned indexed ($((SECONDS - t0)) s)"
    psql_ -f "$HERE/ingest.sql"
    psql_ -c "VACUUM (ANALYZE) part_flat.events, part_flat.event_tags, part_study.fresh" &
    flat=$!
    psql_ -c "VACUUM (ANALYZE) part_time.events, part_time.event_tags, part_time.event_ids, part_time.addresses"
    wait $flat
    note "vacuumed and analyzed"
    # Measure with the repository's settings (wal_level=replica).
    conf measuring; stop; start
    note "restarted with pg_config/postgresql.conf ($(psql_ -tAc 'SHOW wal_level') WAL, synchronous_commit $(psql_ -tAc 'SHOW synchronous_commit'))"
}

# One slice of fresh events into one layout: 100 per transaction, one
# session; prints "layout events seconds cpu_seconds" (CPU of the backend,
# from its /proc stat, in clock ticks of 1/100 s).
ingest_slice() {
    local layout=$1 lo=$2 hi=$3 f=$WORK/ingest-$1-$2.sql
    {
        echo "SELECT part_study.backend_ticks() AS c0 \\gset"
        echo "SELECT count(*) AS n0 FROM part_$layout.events \\gset"
        for ((b = lo; b <= hi; b += 100)); do echo "SELECT part_study.publish_$layout($b, $((b + 99 < hi ? b + 99 : hi)));"; done
        echo "SELECT '$layout', count(*) - :n0, (part_study.backend_ticks() - :c0) / 100.0 FROM part_$layout.events;"
    } > "$f"
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$(psql_ -tA -F ' ' -f "$f" | tail -1)
    t1=$(date +%s.%N)
    rm -f "$f"
    set -- $out
    # the count(*) of each slice is inside the session's CPU, not its rate:
    # a few ms against seconds.
    echo "$1 $2 $(echo "$t1 - $t0" | bc) $3"
}

step_ingest() {
    psql_ -c "CREATE OR REPLACE FUNCTION part_study.backend_ticks() RETURNS bigint LANGUAGE sql AS \$\$
        SELECT split_part(s, ' ', 12)::bigint + split_part(s, ' ', 13)::bigint
        FROM (SELECT split_part(pg_read_file('/proc/self/stat'), ') ', 2) AS s) p \$\$"
    local fresh slice=10000 lo i=0 out=$RESULTS/ingest.txt
    fresh=$(psql_ -tAc "SELECT count(*) FROM part_study.fresh")
    echo "# layout events wall_s backend_cpu_s events/s load(uptime)" > "$out"
    for ((lo = 1; lo <= fresh; lo += slice)); do
        local hi=$((lo + slice - 1 < fresh ? lo + slice - 1 : fresh)) order=(flat time)
        [ $((i % 2)) = 1 ] && order=(time flat)
        for layout in "${order[@]}"; do
            set -- $(ingest_slice "$layout" "$lo" "$hi")
            echo "$1 $2 $3 $4 $(echo "$2 / $3" | bc) $(uptime | sed 's/.*average: //')" | tee -a "$out"
        done
        i=$((i + 1))
    done
    awk '!/^#/ { n[$1] += $2; w[$1] += $3; c[$1] += $4 }
         END { for (l in n) printf "total %s: %d events, %.1f s, %.0f events/s, %.0f µs backend CPU per event\n", l, n[l], w[l], n[l] / w[l], c[l] / n[l] * 1e6 }' "$out" > "$out.total"
    cat "$out.total" >> "$out"; cat "$out.total"; rm -f "$out.total"
    note "ingest done"
}

# The values the query cases name, drawn from part_flat (the same rows are in
# both layouts): the busiest author and the 500th busiest, the most
# referenced event (#e), the most mentioned pubkey (#p), the tag `nostr`
# (about 30% of events) and a rare topic tag, 20 ids.
pick_values() {
    local f=$WORK/values.env
    [ -s "$f" ] && return
    psql_ -tA <<SQL > "$f"
SELECT 'AUTH1=' || encode(pubkey, 'hex') FROM part_flat.events GROUP BY pubkey ORDER BY count(*) DESC, pubkey LIMIT 1;
SELECT 'AUTH2=' || encode(pubkey, 'hex') FROM part_flat.events GROUP BY pubkey ORDER BY count(*) DESC, pubkey OFFSET 499 LIMIT 1;
SELECT 'E_HOT=' || tag FROM part_flat.event_tags TABLESAMPLE SYSTEM (2) REPEATABLE (1) WHERE tag LIKE 'e:%' GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 1;
SELECT 'P_POP=' || tag FROM part_flat.event_tags TABLESAMPLE SYSTEM (2) REPEATABLE (1) WHERE tag LIKE 'p:%' GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 1;
SELECT 'T_POP=t:nostr';
SELECT 'T_RARE=' || tag FROM part_flat.event_tags TABLESAMPLE SYSTEM (2) REPEATABLE (1) WHERE tag LIKE 't:tag%' GROUP BY tag ORDER BY count(*), tag LIMIT 1;
SELECT 'IDS={' || string_agg('\\x' || encode(id, 'hex'), ',') || '}' FROM (SELECT id FROM part_flat.events
    WHERE seq IN (SELECT 7 + g * ($EVENTS / 40) FROM generate_series(0, 39) g) ORDER BY seq LIMIT 20) s;
SQL
    cat "$f" | cut -c1-90 >> "$RESULTS/log.txt"
}

# render CASE LAYOUT: the case's SQL for that layout.
render() {
    local src=$1 layout=$2 join mjoin
    if [ "$layout" = flat ]; then join='e.id = t.id'; mjoin='e.id = m.id'
    else join='e.id = t.id AND e.created_at = t.created_at'; mjoin='e.id = m.id AND e.created_at = m.created_at'; fi
    local sed_args=(-e "s/@S@/part_$layout/g" -e "s/@JOIN@/$join/g" -e "s/@MJOIN@/$mjoin/g"
        -e "s/@NOW@/$DATA_NOW/g" -e "s/@SINCE@/$((DATA_NOW - 3 * 86400))/g")
    # Tag values are written E'l\x3avalue': pgbench -M prepared would take
    # `:value` for one of its variables.
    while IFS='=' read -r k v; do
        case $k in E_HOT | P_POP | T_POP | T_RARE) v=${v/:/\\x3a} ;; esac
        sed_args+=(-e "s|@$k@|${v//\\/\\\\}|g")
    done < "$WORK/values.env"
    grep -v '^--' "$src" | sed "${sed_args[@]}"
}

step_queries() {
    pick_values
    local pgb=$WORK/pgbench out=$RESULTS/queries.txt
    mkdir -p "$pgb" "$RESULTS/explain"
    [ "$(id -u)" = 0 ] && chown postgres "$pgb"
    echo "# case layout round transactions p50_ms p99_ms load(uptime at start)" >> "$out"
    local cases=() f
    for f in "$HERE"/queries/${CASES:-*}.sql; do cases+=("$(basename "$f")"); done
    for ((r = 0; r < ROUNDS; r++)); do
        local order=(flat time); [ $((r % 2)) = 1 ] && order=(time flat)
        for c in "${cases[@]}"; do
            for layout in "${order[@]}"; do
                case $c in *.time.sql) [ "$layout" = time ] || continue ;; esac
                local name=${c%.sql}; name=${name%.time}
                render "$HERE/queries/$c" "$layout" > "$pgb/$name-$layout.sql"
                if [ "$r" = 0 ]; then
                    # EXPLAIN of each statement (first round only), then a warm-up.
                    awk 'BEGIN { RS = ";\n" } NF { print "EXPLAIN (ANALYZE, BUFFERS) " $0 ";" }' "$pgb/$name-$layout.sql" \
                        | psql_ > "$RESULTS/explain/$name-$layout.txt"
                    (cd "$pgb" && as_pg "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U "$user" -M prepared -c 1 -T 2 -f "$name-$layout.sql" part >/dev/null 2>&1)
                fi
                local load; load=$(uptime | sed 's/.*average: //')
                rm -f "$pgb"/log-"$name-$layout-$r".*
                (cd "$pgb" && as_pg "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U "$user" -M prepared -c 1 -T "$SECONDS_PER_CASE" \
                    -l --log-prefix="log-$name-$layout-$r" -f "$name-$layout.sql" part >/dev/null 2>&1)
                cat "$pgb"/log-"$name-$layout-$r".* | awk '{ print $3 / 1000 }' | sort -n \
                    | awk -v c="$name" -v l="$layout" -v load="$load" -v r="$r" \
                        '{ v[NR] = $1 } END { printf "%s %s round%d %d %.3f %.3f %s\n", c, l, r, NR, v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], load }' \
                    | tee -a "$out"
            done
        done
    done
    # All rounds together, per case and layout.
    echo "# all rounds: case layout n p50_ms p99_ms" >> "$out"
    for c in "$HERE"/queries/*.sql; do
        local name; name=$(basename "${c%.sql}"); name=${name%.time}
        for layout in flat time; do
            ls "$pgb"/log-"$name-$layout"-* >/dev/null 2>&1 || continue
            cat "$pgb"/log-"$name-$layout"-* | awk '{ print $3 / 1000 }' | sort -n \
                | awk -v c="$name" -v l="$layout" '{ v[NR] = $1 } END { printf "all %s %s %d %.3f %.3f\n", c, l, NR, v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1] }' \
                | tee -a "$out"
        done
    done
    note "queries done"
}

step_sizes() {
    psql_ -c "CHECKPOINT" -f "$HERE/sizes.sql" | tee -a "$RESULTS/sizes.txt"
}

# The oldest full month: DELETE on part_flat, detach + drop on part_time.
step_retention() {
    local lo hi month=${RETENTION_MONTH:-2025_01} out=$RESULTS/retention.txt
    lo=$(psql_ -tAc "SELECT extract(epoch FROM date '${month/_/-}-01')::bigint")
    hi=$(psql_ -tAc "SELECT extract(epoch FROM date '${month/_/-}-01' + interval '1 month')::bigint")
    {
        echo "# retention of $month ($lo <= created_at < $hi), load $(uptime | sed 's/.*average: //')"
        psql_ -tAc "SELECT 'rows in the month: flat ' || (SELECT count(*) FROM part_flat.events WHERE created_at >= $lo AND created_at < $hi)
                    || ', partitioned ' || (SELECT count(*) FROM part_time.events_$month)
                    || ', tag rows ' || (SELECT count(*) FROM part_time.event_tags_$month)"
        echo "## sizes before"
    } | tee -a "$out"
    step_sizes | tee -a "$out" >/dev/null
    psql_ -c "CHECKPOINT"
    psql_ -v lo="$lo" -v hi="$hi" -v ev_part="events_$month" -v tag_part="event_tags_$month" \
        -c '\timing on' -f "$HERE/retention.sql" 2>&1 | paste -d ' ' - - | tee -a "$out"
    echo "## sizes after (load $(uptime | sed 's/.*average: //'))" | tee -a "$out"
    step_sizes | tee -a "$out" >/dev/null
    note "retention done"
}

case ${1:-all} in
data) step_data ;;
cluster) step_cluster measuring ;;
load) step_load ;;
index) step_index ;;
ingest) step_ingest ;;
queries) step_queries ;;
retention) step_retention ;;
sizes) step_sizes ;;
stop) stop ;;
all)
    step_data
    step_cluster loading
    step_load
    step_index
    step_sizes > "$RESULTS/sizes-loaded.txt"
    step_ingest
    step_queries
    step_retention
    stop
    ;;
*) die "usage: run.sh [all|data|cluster|load|index|ingest|queries|retention|sizes|stop]" ;;
esac
