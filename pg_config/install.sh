#!/usr/bin/env bash
# Builds the extension and installs it into the Postgres that $PG_CONFIG
# names (by default the system Postgres 15). Needs write access to its
# extension and library directories (root, or sudo).
#
# NOSTR_PG_PROFILE: release (default) or debug (also "--release" / "" as
# older callers spell them).
#
# The library is named for its version (nostr_pg-0.2.0.so), so installing a
# new version never touches the file a running server has mapped; files are
# written with install(1), which replaces them with new files instead of
# rewriting them in place. The SQL scripts of earlier versions and the
# upgrade scripts go along, so `ALTER EXTENSION nostr_pg UPDATE` works.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
case ${NOSTR_PG_PROFILE---release} in
release | --release) profile=(); name=release ;;
debug | "") profile=(--debug); name=debug ;;
*) die "NOSTR_PG_PROFILE must be release or debug" ;;
esac
log "building and installing the nostr_pg extension ($name)"
stage=$(mktemp -d "${TMPDIR:-/tmp}/nostr_pg-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
(cd "$REPO/nostr_pg" && cargo pgrx package "${profile[@]}" --pg-config "$PG_CONFIG" --out-dir "$stage" >&2)
pkglib=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
"${SUDO[@]}" install -m 755 "$stage$pkglib"/nostr_pg*.so "$pkglib"/
# Earlier versions' install scripts and control files (pgrx packages only the
# current version and the upgrade scripts).
for f in "$REPO"/nostr_pg/sql/nostr_pg--*; do
    [ -e "$stage$extdir/$(basename "$f")" ] || cp "$f" "$stage$extdir/"
done
"${SUDO[@]}" install -m 644 "$stage$extdir"/nostr_pg* "$extdir"/
log "installed $(basename "$stage$pkglib"/nostr_pg*.so) into $pkglib"
