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

# bench_dataset NAME SCOPE: the data to measure and a rebuyd serving it.
# Either the database named by BENCH_DATABASE_URL and BENCH_SHOP (reused as
# it is; a SCOPE key created unless BENCH_KEY is given), or ORDERS orders of
# CUSTOMERS customers generated and imported into a private cluster sized
# to the data and prewarmed.  The generated history is the two years up to
# yesterday in the shop's zone (+08:00), as a shop taking orders has: with
# a fixed start, the lists that look back from today (second-purchase-
# window, due-for-repurchase) empty as the calendar moves on, and the
# benchmark measures an abandoned shop.  Reads ORDERS, CUSTOMERS, SEED,
# WORKERS and LOAD_START; sets DBURL, SHOP, KEY, HTTP, RPID, PSQL and TMP,
# and prints what is measured on what.
bench_dataset() {
NAME=$1 SCOPE=$2
if [[ -n ${BENCH_DATABASE_URL:-} || -n ${BENCH_SHOP:-} ]]; then
    # ---------------------------------------------------------------- reuse
    [[ -n ${BENCH_DATABASE_URL:-} && -n ${BENCH_SHOP:-} ]] \
        || { echo "$NAME: BENCH_DATABASE_URL and BENCH_SHOP go together" >&2; exit 1; }
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
        || { echo "$NAME: no shop $SHOP in $DBURL" >&2; exit 1; }
    KEY=${BENCH_KEY:-$("$REBUYD" keys create --shop "$SHOP" --scope "$SCOPE" --database-url "$DBURL")}
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
        --seed "$SEED" --start "$(TZ=Asia/Shanghai date -d '730 days ago' +%F)" --days 730 --out "$FILE" \
        2>"$TMP/gen.err" || { cat "$TMP/gen.err" >&2; exit 1; }
    sed 's/^/  /' "$TMP/gen.err"
    echo "importing"
    start=$(date +%s)
    "$REBUYD" import orders "$FILE" --shop "$SHOP" >"$TMP/import.out" 2>"$TMP/import.err" || {
        echo "$NAME: the import failed; stderr:" >&2; tail -20 "$TMP/import.err" >&2; exit 1; }
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
    ORIGIN="generated: gen-orders.mjs --customers $CUSTOMERS --orders $ORDERS --seed $SEED (two years to today), private cluster"
    PSQL+=(-d rebuy)
fi

"$REBUYD" serve --listen "127.0.0.1:$HTTP" --database-url "$DBURL" --workers "$WORKERS" \
    --log-level warn 2>"$TMP/rebuyd.log" &
RPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null \
    || { echo "$NAME: rebuyd did not start:" >&2; tail -5 "$TMP/rebuyd.log" >&2; exit 1; }
# rebuyd's first maintenance pass (src/main.c, the janitor) folds the
# histogram deltas an import left and rebuilds the vip spends; until it
# ends, vip is computed live and the pass takes a core.  A shop taking
# orders is past it: wait for it, at most 15 minutes (an instant on a
# reused database whose pass has run today).
start=$(date +%s)
until [[ $("${PSQL[@]}" -c "SELECT EXISTS (SELECT FROM vip_state v JOIN shops s ON s.id = v.shop_id
        WHERE v.shop_id = '$SHOP' AND v.tz = s.timezone
          AND v.as_of = (now() AT TIME ZONE s.timezone)::date)") == t ]]; do
    (( $(date +%s) - start < 900 )) || { echo "$NAME: rebuyd's maintenance pass did not end in 15 minutes" >&2; exit 1; }
    sleep 2
done
MAINT="$(( $(date +%s) - start )) s"

echo
"${PSQL[@]}" -c "SELECT 'data: ' || (SELECT count(*) FROM orders WHERE shop_id = '$SHOP') || ' orders, '
    || (SELECT count(*) FROM customers WHERE shop_id = '$SHOP') || ' customers, '
    || (SELECT count(*) FROM order_lines l JOIN orders o ON o.seq = l.order_seq WHERE o.shop_id = '$SHOP')
    || ' order lines in the shop; database ' || pg_size_pretty(pg_database_size(current_database()))"
echo "      $ORIGIN; shop $SHOP"
echo "postgres: shared_buffers $("${PSQL[@]}" -c 'SHOW shared_buffers'), $WARM;" \
     "work_mem $("${PSQL[@]}" -c 'SHOW work_mem'), jit $("${PSQL[@]}" -c 'SHOW jit')"
echo "rebuyd: $("$REBUYD" version 2>&1 | head -1), --workers $WORKERS;" \
     "waited $MAINT for its first maintenance pass (fold, vip rebuild)"
echo "machine: $(nproc) CPUs ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/{print $2}') GB RAM;" \
     "load average at start $LOAD_START; shared and noisy (runs differ up to 2x):" \
     "interleaved, median of ${BENCH_ROUNDS:-5}"
}

# wrk_run CONNS TAG: wrk against rebuyd on $HTTP with $TMP/$WRK_SCRIPT (the
# tag is the script's argument); prints "rps p50ms p99ms non2xx" and adds
# the request count to $TMP/wrk.total.
# pgb_run CLIENTS: pgbench on the private cluster with $TMP/$PGB_SCRIPT and
# PGB_VARS; prints "tps p50ms p99ms failed" and adds the count to
# $TMP/pgb.total.
# A checkpoint before each measured run: neither side pays for the writes
# of the run before it (a checkpoint landing inside one run halved it).
settle() { "${PSQL[@]}" -c CHECKPOINT >/dev/null 2>&1 || true; }
wrk_run() { # conns tag -> "rps p50ms p99ms non2xx"
    settle
    wrk -t2 -c"$1" -d"${SECS}s" --latency -s "$TMP/$WRK_SCRIPT" "http://127.0.0.1:$HTTP" -- "$2" \
        >"$TMP/wrk.out" 2>&1
    python3 - "$TMP/wrk.out" "$TMP/wrk.total" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        sys.exit(f"cannot read wrk latency {v!r} in:\n{t}")
    x, unit = float(m.group(1)), m.group(2)
    return x * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
with open(sys.argv[2], "a") as f:
    f.write(re.search(r"(\d+) requests in", t).group(1) + "\n")
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
err = re.search(r"Socket errors: (.*)", t)
if err:
    print(f"wrk socket errors: {err.group(1)}", file=sys.stderr)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}
pgb_run() { # clients -> "tps p50ms p99ms failed"
    settle
    rm -f "$TMP"/pgblog*
    pgbench "host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy" -n -M prepared -T "$SECS" \
        -c "$1" -j 2 -f "$TMP/$PGB_SCRIPT" "${PGB_VARS[@]}" -l --log-prefix="$TMP/pgblog" \
        >"$TMP/pgb.out" 2>&1 || { cat "$TMP/pgb.out" >&2; echo "0 0 0 0"; return; }
    python3 - "$TMP/pgb.out" "$TMP/pgb.total" "$TMP"/pgblog* <<'PY'
import re, sys
t = open(sys.argv[1]).read()
tps = float(re.search(r"^tps = ([\d.]+)", t, re.M).group(1))
failed = re.search(r"number of failed transactions: (\d+)", t)
with open(sys.argv[2], "a") as f:
    f.write(re.search(r"number of transactions actually processed: (\d+)", t).group(1) + "\n")
lat = []
for f in sys.argv[3:]:
    for line in open(f):
        p = line.split()
        if len(p) >= 3 and p[2].isdigit():   # client tx latency_us script epoch us
            lat.append(int(p[2]))
lat.sort()
q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] / 1000 if lat else 0
print(f"{tps:.0f} {q(0.50):.2f} {q(0.99):.2f} {failed.group(1) if failed else 0}")
PY
}

