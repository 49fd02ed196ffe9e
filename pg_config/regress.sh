#!/usr/bin/env bash
# regress.sh PORT OUTDIR [NAME...]: runs the golden SQL files in tests/regress/
# (all of them, or tests/regress/sql/NAME.sql) against the cluster on
# 127.0.0.1:PORT with pg_regress (each run in a fresh database).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
port=$1; out=$2; shift 2
pg_regress=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
[ -x "$pg_regress" ] || die "pg_regress not found (install postgresql-server-dev-15)"
mkdir -p "$out"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$out"
tests=${*:-$(cd "$REPO/tests/regress/sql" && ls *.sql | sed 's/\.sql$//')}
user=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)
# pg_regress writes results next to --outputdir; inputs are read from --inputdir.
if ! as_pg "$pg_regress" --host=127.0.0.1 --port="$port" --user="$user" \
    --inputdir="$REPO/tests/regress" --outputdir="$out" \
    --dbname=nostr_regress --load-extension=nostr_pg $tests; then
    cat "$out/regression.diffs" >&2 || true
    die "golden SQL tests failed"
fi
