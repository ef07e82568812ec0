#!/usr/bin/env bash
# Run every test of rebuy against a throwaway PostgreSQL 15:
#   unit tests (release and ASan+UBSan builds), OpenAPI lint and contract
#   checks, the integration suite over real HTTP against the release
#   build, then the same suite against the ASan+UBSan build.
# Installs what is missing first.  Ends with "N passed, N failed".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source deploy/pg-cluster.sh

say() { printf '\n== %s\n' "$*"; }

say "dependencies"
deploy/install-deps.sh --test
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

say "build (release and ASan+UBSan)"
[[ -d build ]] || meson setup build >/dev/null
ninja -C build
[[ -d build-asan ]] || meson setup build-asan -Dbuildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan

TMP=$(mktemp -d /tmp/rebuy-test.XXXXXX)
chmod 755 "$TMP"
PORT=$(( 20000 + RANDOM % 20000 ))
cleanup() { pg_cluster_stop "$TMP/pg"; rm -rf "$TMP"; }
trap cleanup EXIT

say "throwaway PostgreSQL on port $PORT"
pg_cluster_init "$TMP/pg"
# fsync off: test data is disposable; connections for parallel suites
pg_cluster_start "$TMP/pg" "$PORT" fsync=off synchronous_commit=off \
    full_page_writes=off max_connections=400 shared_buffers=256MB

export PGHOST=$TMP/pg PGPORT=$PORT PGUSER=postgres PG_BINDIR
export REBUY_TEST_RUNAS=$( (( EUID == 0 )) && echo postgres || true )
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=67

total_pass=0 total_fail=0
count_c() { # "unit: N passed, M failed"
    local line; line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
    if [[ -z $line ]]; then total_fail=$((total_fail + 1)); return; fi
    total_pass=$((total_pass + $(sed -E 's/^unit: ([0-9]+) passed.*/\1/' <<<"$line")))
    total_fail=$((total_fail + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
}
count_tap() { # node's TAP summary: "# pass N", "# fail N", "# cancelled N"
    local p f c
    p=$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')
    c=$(grep -E '^# cancelled [0-9]+' "$1" | tail -1 | awk '{print $3}')
    if [[ -z $p ]]; then total_fail=$((total_fail + 1)); return; fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + ${f:-0} + ${c:-0}))
}
node_suite() { # name, REBUY_BIN, dirs...
    local name=$1 bin=$2; shift 2
    say "$name"
    REBUY_BIN=$bin node --test --test-concurrency=2 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$TMP/$name.tap" \
        "$@" || true
    count_tap "$TMP/$name.tap"
}

say "unit tests (release)"
build/tests/unit/unit-tests | tee "$TMP/unit.log" || true
count_c "$TMP/unit.log"
say "unit tests (ASan+UBSan)"
build-asan/tests/unit/unit-tests 2>&1 | tee "$TMP/unit-asan.log" || true
count_c "$TMP/unit-asan.log"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$TMP/unit-asan.log"; then
    echo "sanitizer report in unit tests"; total_fail=$((total_fail + 1))
fi

node_suite contract "$ROOT/build/src/rebuyd" tests/contract/
node_suite integration "$ROOT/build/src/rebuyd" tests/integration/
node_suite exactness "$ROOT/build/src/rebuyd" tests/exactness/
node_suite integration-asan "$ROOT/build-asan/src/rebuyd" tests/integration/

echo
echo "$total_pass passed, $total_fail failed"
(( total_fail == 0 ))
