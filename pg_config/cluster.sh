#!/usr/bin/env bash
# cluster.sh start|stop|crash|url DIR [PORT]: a local Postgres cluster for nostr_pg.
# cluster.sh basebackup DIR PORT DEST: a physical copy of it into DEST.
# cluster.sh standby DIR PORT DEST: a streaming standby of it in DEST.
#
# start: initdb DIR if empty (owned by `postgres` when run as root), apply
#   pg_config/postgresql.conf, start it on 127.0.0.1:PORT with its socket in
#   DIR, and create database `nostr` with the extension. Prints the URL.
# stop: fast shutdown. crash: immediate shutdown, as after a power cut (the
#   next start runs crash recovery; unlogged tables come back empty), for
#   tests. url: print the connection URL. basebackup: pg_basebackup of the
#   running cluster (WAL streamed along, so DEST starts on its own with
#   `start DEST OTHER_PORT`). standby: the same copy made with `-R`
#   (standby.signal, and primary_conninfo naming DIR's cluster) and
#   hot_standby_feedback on, so replayed vacuums never cancel its queries;
#   `start DEST OTHER_PORT` runs it as a read-only hot standby that follows
#   the primary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cmd=${1:-}; dir=${2:-}; port=${3:-5432}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: cluster.sh start|stop|crash|url DIR [PORT] | basebackup|standby DIR PORT DEST"
user=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)
url="postgres://$user@127.0.0.1:$port/nostr"

case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
    # The installed extension's library, named for its version.
    version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/nostr_pg.control")
    [ -n "$version" ] || die "nostr_pg is not installed (bash pg_config/install.sh)"
    preload=pg_stat_statements,nostr_pg-$version
    [ "${NOSTR_PG_PRELOAD:-on}" = off ] && preload=pg_stat_statements
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "initdb $dir"
        as_pg "$PG_BIN/initdb" -D "$dir" -U "$user" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        sed "s/@NOSTR_PG_LIBRARY@/nostr_pg-$version/" "$REPO/pg_config/postgresql.conf" \
            | as_pg tee -a "$dir/postgresql.conf" >/dev/null
    fi
    if ! as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        # Preload the installed version (a cluster made before an upgrade
        # names the old one), or nothing of ours.
        as_pg sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = '$preload'/" "$dir/postgresql.conf"
        as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 600 \
            -o "-p $port -k $dir" start >/dev/null || { cat "$dir/server.log" >&2; die "postgres did not start"; }
    fi
    # A standby is read-only: its databases and extensions are the primary's.
    [ -f "$dir/standby.signal" ] && { echo "$url"; exit 0; }
    psql_=( "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$user" )
    as_pg "${psql_[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'nostr'" | grep -q 1 \
        || as_pg "${psql_[@]}" -d postgres -c "CREATE DATABASE nostr"
    # An existing cluster made by an older version moves to the installed one.
    as_pg "${psql_[@]}" -d nostr -c "CREATE EXTENSION IF NOT EXISTS nostr_pg" -c "ALTER EXTENSION nostr_pg UPDATE" \
        -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
    echo "$url"
    ;;
stop | crash)
    # Nothing to do when it is not running. When it is, wait for it to be
    # gone however long the shutdown checkpoint takes on a loaded machine
    # (pg_ctl's default wait is 60 s), and fail if it is not: a `start`
    # right after must never find the old server still shutting down.
    as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1 || exit 0
    mode=fast; [ "$cmd" = crash ] && mode=immediate
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m "$mode" -w -t 600 stop >/dev/null \
        || die "the cluster in $dir did not stop ($mode)"
    ;;
url)
    echo "$url"
    ;;
basebackup)
    dest=${4:?usage: cluster.sh basebackup DIR PORT DEST}
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U "$user" -D "$dest" \
        --wal-method=stream --checkpoint=fast
    ;;
standby)
    dest=${4:?usage: cluster.sh standby DIR PORT DEST}
    # Made here, empty, so its parent need not be writable by `postgres`.
    mkdir -p "$dest"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dest" && chmod 700 "$dest"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U "$user" -D "$dest" \
        --wal-method=stream --checkpoint=fast --write-recovery-conf
    echo "hot_standby_feedback = on" | as_pg tee -a "$dest/postgresql.auto.conf" >/dev/null
    ;;
*) die "unknown command $cmd" ;;
esac
