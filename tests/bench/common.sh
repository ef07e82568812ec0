# Shared set-up of the benchmarks (sourced, not run).

# bench_build: dependencies, a release build, $ROOT and $REBUYD.
bench_build() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[1]}")/../.." && pwd)
    cd "$ROOT"
    source deploy/pg-cluster.sh
    deploy/install-deps.sh --test
    [[ -d build ]] || meson setup build >/dev/null
    ninja -C build >/dev/null
    REBUYD=$ROOT/build/src/rebuyd
}

# bench_shop_cluster: a private cluster sized for the data (pg_prewarm
# loaded), database "rebuy" migrated, one shop.  Sets TMP, PGPORT, HTTP (a
# port for rebuyd), PSQL, SHOP, KEY, PREFIX; removes everything on exit and
# stops rebuyd if $RPID is set.
bench_shop_cluster() {
    TMP=$(mktemp -d /tmp/rebuy-bench.XXXXXX); chmod 755 "$TMP"
    PGPORT=$(( 40000 + RANDOM % 10000 )); HTTP=$(( PGPORT + 1 ))
    trap bench_cleanup EXIT
    pg_cluster_init "$TMP/pg"
    pg_cluster_start "$TMP/pg" "$PGPORT" shared_buffers=512MB max_connections=200 \
        shared_preload_libraries=pg_prewarm
    export REBUY_DATABASE_URL="host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy"
    export PGHOST=$TMP/pg PGPORT PGUSER=postgres
    PSQL=(psql -qAtX -v ON_ERROR_STOP=1)
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE rebuy"
    "$REBUYD" migrate >/dev/null 2>&1
    local out
    out=$("$REBUYD" shops create --name Bench --currency CNY --timezone Asia/Shanghai 2>/dev/null)
    SHOP=$(sed -E 's/.*"shop_id":"([^"]+)".*/\1/' <<<"$out")
    KEY=$(sed -E 's/.*"admin_key":"([^"]+)".*/\1/' <<<"$out")
    PREFIX=${KEY:3:8}
}

bench_cleanup() {
    [[ -n ${RPID:-} ]] && kill "$RPID" 2>/dev/null
    wait 2>/dev/null || true
    pg_cluster_stop "$TMP/pg"
    rm -rf "$TMP"
}
