#!/usr/bin/env bash
# Runs the relay: installs what is missing, builds and installs the extension,
# starts a local Postgres cluster (unless --database-url names an existing
# database), creates the extension, and serves NIP-01 on ws://127.0.0.1:7777.
#
#   bash pg_config/run.sh                                  # local cluster in .pgdata/
#   bash pg_config/run.sh --database-url postgres://...    # existing database
#   bash pg_config/run.sh --listen 0.0.0.0:7777            # other gateway flags pass through
set -euo pipefail
source "$(dirname "$0")/lib.sh"

db_url=${DATABASE_URL:-}
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --database-url) db_url=$2; shift 2 ;;
    --database-url=*) db_url=${1#*=}; shift ;;
    *) args+=("$1"); shift ;;
    esac
done

bash "$REPO/pg_config/setup.sh"
bash "$REPO/pg_config/install.sh"
if [ -z "$db_url" ]; then
    db_url=$(bash "$REPO/pg_config/cluster.sh" start "$REPO/.pgdata" "${NOSTR_PG_PORT:-54320}")
    log "local cluster: psql $db_url   (stop: bash pg_config/cluster.sh stop .pgdata)"
else
    psql "$db_url" -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS nostr_pg" -c "ALTER EXTENSION nostr_pg UPDATE" \
        || die "could not create the extension in $db_url (is nostr_pg installed on that server?)"
fi
cd "$REPO"
cargo build --release -p gateway
listen=(); printf '%s\n' "${args[@]}" | grep -q -- '--listen' || listen=(--listen "${NOSTR_PG_LISTEN:-127.0.0.1:7777}")
exec "$REPO/target/release/gateway" "${listen[@]}" --database-url "$db_url" "${args[@]}"
