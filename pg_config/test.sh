#!/usr/bin/env bash
# test.sh [TIER...] [--filter NAME] [--test FILE] [--database-url URL]
#
# Runs the tests of nostr_pg, installing what the chosen tiers need and is
# missing. With no TIER, runs all of them in this order (what CI runs):
#   lint     cargo fmt --check, no import circles, CHANGELOG.md names the
#            extension version, cargo clippy -D warnings (fast checks first);
#   core     pure Rust unit tests (event/filter core, gateway): no Postgres;
#   pg       in-database #[pg_test]s (cargo pgrx test; as root the test
#            cluster runs as `postgres`);
#   regress  golden SQL files (pg_regress) against the installed extension;
#   e2e      end-to-end tests in tests/: a real cluster, real gateways, real
#            clients.
# Options:
#   --filter NAME  only tests whose name contains NAME (core, pg, e2e: the
#                  test runner's filter; regress: SQL files whose name has NAME)
#   --test FILE    e2e: only the test file FILE (e.g. `relay` for
#                  tests/tests/relay.rs)
#   --database-url URL  e2e: run against this running cluster instead of a
#                  throwaway one (also NOSTR_PG_TEST_URL); URL is a superuser
#                  and the server has nostr_pg installed. Nothing is installed
#                  but Chromium (for the home page test), if it is missing.
# The time each tier took is printed on stderr at the end.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }

all_tiers=(lint core pg regress e2e)
tiers=() filter= test_file= url=${NOSTR_PG_TEST_URL:-}
while [ $# -gt 0 ]; do
    case $1 in
    lint | core | pg | regress | e2e) tiers+=("$1"); shift ;;
    --filter) filter=${2:?--filter NAME}; shift 2 ;;
    --filter=*) filter=${1#*=}; shift ;;
    --test) test_file=${2:?--test FILE}; shift 2 ;;
    --test=*) test_file=${1#*=}; shift ;;
    --database-url) url=${2:?--database-url URL}; shift 2 ;;
    --database-url=*) url=${1#*=}; shift ;;
    -h | --help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
    esac
done
[ ${#tiers[@]} -gt 0 ] || tiers=("${all_tiers[@]}")
wanted() { printf '%s\n' "${tiers[@]}" | grep -qx "$1"; }
cd "$REPO"

work=$(mktemp -d "${TMPDIR:-/tmp}/nostr_pg-test.XXXXXX")
chmod 755 "$work"

# What the tiers share is prepared once, by the first tier that needs it.
setup_done= install_done= cluster_port=
need_setup() { [ -n "$setup_done" ] || { bash "$REPO/pg_config/setup.sh"; setup_done=1; }; }
need_install() {
    need_setup
    [ -n "$install_done" ] || {
        NOSTR_PG_PROFILE= bash "$REPO/pg_config/install.sh"
        # Released versions' libraries too, for the upgrade test.
        bash "$REPO/pg_config/install-old.sh"
        install_done=1
    }
}
# A throwaway cluster with the extension; sets cluster_port and cluster_url.
need_cluster() {
    need_install
    [ -z "$cluster_port" ] || return 0
    # A free port (a fixed one can collide with the kernel's ephemeral ports).
    cluster_port=${NOSTR_PG_TEST_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)}
    cluster_url=$(bash "$REPO/pg_config/cluster.sh" start "$work/cluster" "$cluster_port")
}

# One line per tier for the closing table: name, result, seconds.
results=()
started_all=$SECONDS
current= current_start=
report() {
    [ -z "$current" ] || results+=("$current FAILED $((SECONDS - current_start))")
    {
        printf '\n\033[1m[nostr_pg]\033[0m time per tier\n'
        local line name result secs
        for line in "${results[@]}"; do
            read -r name result secs <<<"$line"
            printf '  %-8s %-7s %3dm%02ds\n' "$name" "$result" $((secs / 60)) $((secs % 60))
        done
        secs=$((SECONDS - started_all))
        printf '  %-8s %-7s %3dm%02ds\n' total "" $((secs / 60)) $((secs % 60))
    } >&2
}
cleanup() {
    report
    [ -z "$cluster_port" ] || bash "$REPO/pg_config/cluster.sh" stop "$work/cluster" || true
    rm -rf "$work"
}
trap cleanup EXIT
begin() { current=$1 current_start=$SECONDS; log "$1: $2"; }
passed() { results+=("$current passed $((SECONDS - current_start))"); current=; }
# No test may crash a backend: a backend that died of a signal (a crash in
# the extension's code) fails the tier even when every client-side assertion
# passed, since Postgres restarts and the clients just reconnect.
no_backend_crashed() {
    [ -n "$cluster_port" ] || return 0
    local crashes
    crashes=$(grep -a -A1 'terminated by signal' "$work/cluster/server.log" || true)
    [ -z "$crashes" ] || { echo "$crashes" >&2; die "a backend of the test cluster crashed (its log is above)"; }
}

# The test runner's name filter (after cargo's `--`), and e2e's test file.
test_args=(); [ -z "$filter" ] || test_args+=("$filter")
target_args=(); [ -z "$test_file" ] || target_args+=(--test "$test_file")

if wanted lint; then
    begin lint "formatting, import circles, changelog, clippy"
    bash "$REPO/pg_config/setup.sh" base
    cargo fmt --all --check || die "formatting: run cargo fmt --all"
    circles=$(python3 "$REPO/pg_config/check-imports.py" "$REPO") || { echo "$circles" >&2; die "import circles"; }
    changelog=$(python3 "$REPO/pg_config/check-changelog.py" "$REPO") || { echo "$changelog" >&2; die "CHANGELOG.md"; }
    need_setup # the pgrx crate's bindings need pg_config, which pgrx init records
    cargo clippy --workspace --all-targets -- -D warnings
    passed
fi

if wanted core; then
    begin core "unit tests (event/filter core, gateway)"
    cargo test -p nostr-pg-core -p gateway -- "${test_args[@]}"
    passed
fi

if wanted pg; then
    begin pg "in-database tests (cargo pgrx test)"
    need_setup
    mkdir -p "$work/pgrx"
    runas=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$work/pgrx"
        runas=(--runas postgres)
    fi
    # pgrx-sudo/sudo: the test build replaces the installed library instead
    # of rewriting it under the clusters that have it mapped.
    (cd nostr_pg && PATH="$REPO/pg_config/pgrx-sudo:$PATH" \
        cargo pgrx test pg15 ${filter:+"$filter"} "${runas[@]}" --pgdata "$work/pgrx")
    passed
fi

if wanted regress; then
    begin regress "golden SQL tests (pg_regress)"
    names=()
    for f in tests/regress/sql/*.sql; do
        name=$(basename "$f" .sql)
        [[ -z "$filter" || "$name" == *"$filter"* ]] && names+=("$name")
    done
    [ ${#names[@]} -gt 0 ] || die "no golden SQL file matches '$filter'"
    need_cluster
    bash "$REPO/pg_config/regress.sh" "$cluster_port" "$work/regress" "${names[@]}"
    no_backend_crashed
    passed
fi

if wanted e2e; then
    begin e2e "end-to-end tests (tests/)"
    if [ -n "$url" ]; then
        log "against the running cluster $url"
    else
        need_cluster
        url=$cluster_url
    fi
    # Chromium, for the home page test: installed in both modes, since the
    # test fails (never skips) without it.
    bash "$REPO/pg_config/setup.sh" browser
    # hosts.rs needs root and iproute2 (network namespaces); it fails saying
    # so without them, unless told to skip.
    [ "${NOSTR_PG_NETNS:-}" != skip ] || log "NOSTR_PG_NETNS=skip: tests/tests/hosts.rs (gateways on separate hosts) skips"
    cargo build -p gateway
    NOSTR_PG_TEST_URL=$url NOSTR_PG_GATEWAY_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/gateway" \
        cargo test -p nostr-pg-e2e "${target_args[@]}" -- --test-threads=4 "${test_args[@]}"
    no_backend_crashed
    passed
fi
log "all tests passed (${tiers[*]})"
