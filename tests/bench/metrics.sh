#!/usr/bin/env bash
# Benchmark the metrics endpoints (GET /v1/metrics/repurchase,
# /time-to-second-purchase, /cohorts, /revenue-mix, /first-order,
# /sales-decomposition) against the straightforward SQL over the raw
# orders/order_lines tables answering the same question
# (tests/exactness/reference.js, the exactness tests' reference).
#
#   BENCH_ORDERS     orders to generate (1000000; ORDERS also read)
#   BENCH_CUSTOMERS  customers (100000; CUSTOMERS also read)
#   BENCH_SEED       generator seed (1)
#   BENCH_ROUNDS     rounds, median (5)
#   BENCH_SQL        full | shared (full): see tests/bench/metrics-bench.mjs;
#                    full redoes the reference's derivation (~25 s at 1M orders)
#                    for every question and round: ~25 min at 1M orders, hours
#                    at 10M, where shared (one derivation a round) is advised
#   BENCH_YEAR       the year asked about, as_of = its last day (2025; the
#                    generator's default history is 2024-01-01 .. 2025-12-30)
#   BENCH_ONLY       comma-separated question or endpoint names (all)
#   BENCH_WORKERS    rebuyd --workers (8)
# Reuse an existing database instead of generating one (nothing in it is
# changed but one API key created, and the reference's temp tables):
#   BENCH_DATABASE_URL  its conninfo (libpq keyword/value or postgres:// URL)
#   BENCH_SHOP          the shop to ask about
#   BENCH_KEY           an API key of that shop (default: a readonly key is
#                       created with `rebuyd keys create --scope readonly`)
# e.g. BENCH_ORDERS=10000000 BENCH_CUSTOMERS=1000000 tests/bench/metrics.sh
#      BENCH_DATABASE_URL="host=/tmp/pgdev port=5499 user=postgres dbname=rebuy" \
#        BENCH_SHOP=8a1b7008-b789-4f6e-9849-b880637f6ab0 tests/bench/metrics.sh
#
# Method (the machine is noisy, up to 2x run to run):
#   - generated data: tests/bench/gen-orders.mjs, imported with
#     `rebuyd import orders FILE --shop ID` into a private PostgreSQL 15
#     (common.sh), daily traffic rows for every channel and day of the
#     history; then VACUUM ANALYZE, shared_buffers sized to the database
#     (1.25x, at least 512MB, at most half the RAM) and every table and index
#     prewarmed (pg_prewarm);
#   - reused database: as it is (its shared_buffers printed; prewarmed only
#     if pg_prewarm is already installed there);
#   - a rebuyd of this build serving that database; a warm-up pass; then
#     rounds interleaving, per question, one GET of the endpoint and the
#     reference's SQL from the raw tables; median of BENCH_ROUNDS each
#     (details in tests/bench/metrics-bench.mjs).
# Prints the data size, shared_buffers, the machine, one line per question
# (name, endpoint p50 ms, SQL p50 ms, ratio SQL/endpoint); exits 0 whatever
# the times (it measures, never asserts); 1 when the set-up fails or an
# endpoint does not answer 200.
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build

ORDERS=${BENCH_ORDERS:-${ORDERS:-1000000}}
CUSTOMERS=${BENCH_CUSTOMERS:-${CUSTOMERS:-100000}}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-8}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ -n ${BENCH_DATABASE_URL:-} || -n ${BENCH_SHOP:-} ]]; then
    # ---------------------------------------------------------------- reuse
    [[ -n ${BENCH_DATABASE_URL:-} && -n ${BENCH_SHOP:-} ]] \
        || { echo "metrics.sh: BENCH_DATABASE_URL and BENCH_SHOP go together" >&2; exit 1; }
    DBURL=$BENCH_DATABASE_URL
    SHOP=$BENCH_SHOP
    TMP=$(mktemp -d /tmp/rebuy-bench.XXXXXX)
    reuse_cleanup() {
        [[ -n ${RPID:-} ]] && kill "$RPID" 2>/dev/null
        wait 2>/dev/null || true
        rm -rf "$TMP"
    }
    trap reuse_cleanup EXIT
    HTTP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PSQL=(psql -qAtX -v ON_ERROR_STOP=1 -d "$DBURL")
    [[ $("${PSQL[@]}" -c "SELECT count(*) FROM shops WHERE id::text = '$SHOP'") == 1 ]] \
        || { echo "metrics.sh: no shop $SHOP in $DBURL" >&2; exit 1; }
    KEY=${BENCH_KEY:-$("$REBUYD" keys create --shop "$SHOP" --scope readonly --database-url "$DBURL")}
    if [[ $("${PSQL[@]}" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_prewarm'") == 1 ]]; then
        "${PSQL[@]}" -c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')" >/dev/null
        WARM="prewarmed (pg_prewarm)"
    else
        WARM="not prewarmed (pg_prewarm not installed there; the warm-up pass reads the data)"
    fi
    ORIGIN="reused database ($DBURL)"
else
    # ---------------------------------------------------------------- generate
    bench_shop_cluster
    DBURL=$REBUY_DATABASE_URL
    # import.sh's settings for the import; shared_buffers is sized afterwards
    pg_cluster_stop "$TMP/pg"
    pg_cluster_start "$TMP/pg" "$PGPORT" shared_buffers=1GB max_wal_size=4GB max_connections=200
    FILE=$TMP/orders.csv
    echo "generating $ORDERS orders of $CUSTOMERS customers (seed $SEED)"
    node tests/bench/gen-orders.mjs --customers "$CUSTOMERS" --orders "$ORDERS" --format csv \
        --seed "$SEED" --out "$FILE" 2>"$TMP/gen.err" || { cat "$TMP/gen.err" >&2; exit 1; }
    sed 's/^/  /' "$TMP/gen.err"
    echo "importing"
    start=$(date +%s)
    "$REBUYD" import orders "$FILE" --shop "$SHOP" >"$TMP/import.out" 2>"$TMP/import.err" || {
        echo "metrics.sh: the import failed; stderr:" >&2; tail -20 "$TMP/import.err" >&2; exit 1; }
    sed 's/^/  /' "$TMP/import.out"
    echo "  ($(( $(date +%s) - start )) s)"
    rm -f "$FILE"
    # one traffic row per day of the history and channel (for sales-decomposition)
    "${PSQL[@]}" -d rebuy <<SQL
INSERT INTO traffic (shop_id, day, channel, visitors, sessions)
SELECT '$SHOP', d::date, ch, 1000 + (hashtext(d::text || ch) & 1023), 1300 + (hashtext(ch || d::text) & 2047)
  FROM generate_series((SELECT min(placed_at AT TIME ZONE 'Asia/Shanghai')::date FROM orders),
                       (SELECT max(placed_at AT TIME ZONE 'Asia/Shanghai')::date FROM orders), interval '1 day') d,
       (SELECT DISTINCT channel FROM orders) c (ch);
VACUUM ANALYZE;
SQL
    DBSIZE_MB=$("${PSQL[@]}" -d rebuy -c "SELECT pg_database_size('rebuy') / 1048576")
    RAM_MB=$(awk '/MemTotal/{print int($2 / 1024)}' /proc/meminfo)
    SB_MB=$(( (DBSIZE_MB * 5 / 4 + 127) / 128 * 128 ))
    (( SB_MB < 512 )) && SB_MB=512
    (( SB_MB > RAM_MB / 2 )) && SB_MB=$(( RAM_MB / 2 / 128 * 128 ))
    pg_cluster_stop "$TMP/pg"
    pg_cluster_start "$TMP/pg" "$PGPORT" shared_buffers=${SB_MB}MB max_wal_size=4GB max_connections=200 \
        shared_preload_libraries=pg_prewarm
    "${PSQL[@]}" -d rebuy <<SQL
CREATE EXTENSION pg_prewarm;
SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i') \gset
SQL
    WARM="prewarmed (pg_prewarm), sized to the database (1.25x, 512MB..RAM/2)"
    ORIGIN="generated: gen-orders.mjs --customers $CUSTOMERS --orders $ORDERS --seed $SEED, private cluster"
    PSQL+=(-d rebuy)
fi

"$REBUYD" serve --listen "127.0.0.1:$HTTP" --database-url "$DBURL" --workers "$WORKERS" \
    --log-level warn 2>"$TMP/rebuyd.log" &
RPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null \
    || { echo "metrics.sh: rebuyd did not start:" >&2; tail -5 "$TMP/rebuyd.log" >&2; exit 1; }

echo
"${PSQL[@]}" -c "SELECT 'data: ' || (SELECT count(*) FROM orders WHERE shop_id = '$SHOP') || ' orders, '
    || (SELECT count(*) FROM customers WHERE shop_id = '$SHOP') || ' customers, '
    || (SELECT count(*) FROM order_lines l JOIN orders o ON o.seq = l.order_seq WHERE o.shop_id = '$SHOP')
    || ' order lines in the shop; database ' || pg_size_pretty(pg_database_size(current_database()))"
echo "      $ORIGIN; shop $SHOP"
echo "postgres: shared_buffers $("${PSQL[@]}" -c 'SHOW shared_buffers'), $WARM;" \
     "work_mem $("${PSQL[@]}" -c 'SHOW work_mem'), jit $("${PSQL[@]}" -c 'SHOW jit')"
echo "rebuyd: $("$REBUYD" version 2>&1 | head -1), --workers $WORKERS"
echo "machine: $(nproc) CPUs ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/{print $2}') GB RAM;" \
     "load average at start $LOAD_START; shared and noisy (runs differ up to 2x):" \
     "interleaved, median of ${BENCH_ROUNDS:-5}"

BENCH_HTTP="http://127.0.0.1:$HTTP" BENCH_KEY=$KEY BENCH_DB=$DBURL BENCH_SHOP=$SHOP \
    node tests/bench/metrics-bench.mjs
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
