#!/usr/bin/env bash
# Builds the extension and installs it into the Postgres that $PG_CONFIG
# names (by default the system Postgres 15). Needs write access to its
# extension and library directories (root, or sudo).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
profile=${NOSTR_PG_PROFILE---release}
log "building and installing the nostr_pg extension ($profile)"
cd "$REPO/nostr_pg"
if [ "$(id -u)" = 0 ]; then
    cargo pgrx install $profile --pg-config "$PG_CONFIG"
else
    cargo pgrx install $profile --sudo --pg-config "$PG_CONFIG"
fi
