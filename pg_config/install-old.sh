#!/usr/bin/env bash
# install-old.sh: installs the libraries of the released versions listed in
# nostr_pg/sql/old-versions next to the current one, building each from git
# history once (under target/old-versions/), so `CREATE EXTENSION nostr_pg
# VERSION '<old>'` works and the upgrade test starts from a real old
# installation. Their SQL scripts ship in nostr_pg/sql/ (install.sh copies
# them). Needs the repository's history (a full clone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
pkglib=$("$PG_CONFIG" --pkglibdir)
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
while read -r version commit lib; do
    case $version in '' | '#'*) continue ;; esac
    base=$REPO/target/old-versions/$version
    built=$base/$lib.so
    if [ ! -f "$built" ]; then
        git -C "$REPO" cat-file -e "$commit^{commit}" 2>/dev/null \
            || die "commit $commit of version $version is not in this clone; fetch the full history"
        if [ ! -f "$base/src/Cargo.toml" ]; then
            mkdir -p "$base/src"
            git -C "$REPO" archive "$commit" | tar -x -C "$base/src"
        fi
        log "building the $version library from $commit (once; cached in $base)"
        stage=$(mktemp -d "${TMPDIR:-/tmp}/nostr_pg-old.XXXXXX")
        (cd "$base/src/nostr_pg" && CARGO_TARGET_DIR="$base/target" \
            cargo pgrx package --debug --pg-config "$PG_CONFIG" --out-dir "$stage" >&2)
        cp "$stage$pkglib/$lib.so" "$built"
        rm -rf "$stage"
    fi
    # Whatever else may have that name (a development build of an older
    # checkout) is replaced by the real released library.
    if ! cmp -s "$built" "$pkglib/$lib.so"; then
        "${SUDO[@]}" install -m 755 "$built" "$pkglib/"
        log "installed $lib.so ($version) into $pkglib"
    fi
done <"$REPO/nostr_pg/sql/old-versions"
