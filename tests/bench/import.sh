#!/usr/bin/env bash
# Benchmark `rebuyd import orders FILE --shop ID` on generated history.
#
#   BENCH_ORDERS     orders to generate (1000000)
#   BENCH_CUSTOMERS  customers (100000)
#   BENCH_FORMAT     csv | ndjson (csv)
#   BENCH_SEED       generator seed (1)
#   BENCH_ROUNDS     imports, each into a fresh database; median (1)
#   BENCH_RERUN      1: import the same file again into the same database
#                    (every order "unchanged") and time that too (0)
#   BENCH_VERIFY     1: run `rebuyd verify --shop` after the import (0)
#   BENCH_BASELINE   0: skip the psql baseline (1; CSV only)
#
# Method: tests/bench/gen-orders.mjs writes the file into a temp dir (not
# timed); a private PostgreSQL 15 (deploy/pg-cluster.sh) with
# shared_buffers=1GB and max_wal_size=4GB; each round creates the database,
# migrates it, creates a shop and times the import with /usr/bin/time -v
# (wall time, CPU, peak RSS of rebuyd).  Prints the import's own summary,
# rows/s, orders/s and peak RSS.
#
# Baseline, interleaved with the imports (each round, its own fresh
# database): psql alone loading the same file, in two steps timed apart.
# "COPY": \copy of the file into an unlogged table of its 15 columns (the
# cost of getting the rows into PostgreSQL at all).  "store": from there,
# the customers, orders (file order) and lines inserted with plain
# INSERT ... SELECT into the real tables, with their keys and indexes, no
# validation, no fingerprints, no facts.  "floor": the orders and lines
# just stored, written back as they are with COPY into the emptied tables
# (their keys and indexes checked and kept): the least that keeping the
# file's content in these tables costs, before anything is derived.
# Exits 1 if rebuyd has no import command or the import fails; rejects
# are reported (generated data should have none).
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build

ORDERS=${BENCH_ORDERS:-1000000}
CUSTOMERS=${BENCH_CUSTOMERS:-100000}
FORMAT=${BENCH_FORMAT:-csv}
SEED=${BENCH_SEED:-1}
ROUNDS=${BENCH_ROUNDS:-1}
RERUN=${BENCH_RERUN:-0}
VERIFY=${BENCH_VERIFY:-0}
BASELINE=${BENCH_BASELINE:-1}
[[ $FORMAT == csv ]] || BASELINE=0  # the baseline's \copy reads CSV

if ! "$REBUYD" --help 2>&1 | grep -qE '^[[:space:]]+import\b'; then
    echo "import.sh: $REBUYD has no 'import' command (not in 'rebuyd --help');" \
         "this benchmark needs 'rebuyd import orders FILE --shop ID'" >&2
    exit 1
fi
[[ -x /usr/bin/time ]] || { echo "import.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/rebuy-bench.XXXXXX); chmod 755 "$TMP"
PGPORT=$(( 40000 + RANDOM % 10000 ))
cleanup() { pg_cluster_stop "$TMP/pg"; rm -rf "$TMP"; }
trap cleanup EXIT

FILE=$TMP/orders.$FORMAT
echo "generating $ORDERS orders of $CUSTOMERS customers ($FORMAT, seed $SEED)"
node tests/bench/gen-orders.mjs --customers "$CUSTOMERS" --orders "$ORDERS" --format "$FORMAT" \
    --seed "$SEED" --out "$FILE" 2>"$TMP/gen.err" || { cat "$TMP/gen.err" >&2; exit 1; }
sed 's/^/  /' "$TMP/gen.err"
# line items (= CSV rows), from the generator's summary
ROWS=$(sed -nE 's/.* orders, ([0-9]+) lines,.*/\1/p' "$TMP/gen.err")
echo "file: $(du -h "$FILE" | cut -f1), $ROWS line items"

pg_cluster_init "$TMP/pg"
pg_cluster_start "$TMP/pg" "$PGPORT" shared_buffers=1GB max_wal_size=4GB max_connections=50
export REBUY_DATABASE_URL="host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy"
export PGHOST=$TMP/pg PGPORT PGUSER=postgres
PSQL=(psql -qAtX -v ON_ERROR_STOP=1)

fresh_shop() { # -> shop id; a new, migrated database
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS rebuy" -c "CREATE DATABASE rebuy"
    "$REBUYD" migrate >/dev/null 2>&1
    "$REBUYD" shops create --name Bench --currency CNY --timezone Asia/Shanghai 2>/dev/null \
        | sed -E 's/.*"shop_id":"([^"]+)".*/\1/'
}

run_import() { # shop label -> "seconds user sys rss_kb orders imported unchanged rejected"
    local shop=$1 label=$2 rc=0
    rm -f "$FILE.rejects.ndjson"
    /usr/bin/time -v -o "$TMP/time.out" "$REBUYD" import orders "$FILE" --shop "$shop" \
        >"$TMP/import.out" 2>"$TMP/import.err" || rc=$?
    {
        echo "--- $label: rebuyd import orders (exit $rc)"
        sed 's/^/  /' "$TMP/import.out"
    } >&2
    if (( rc != 0 )); then
        echo "import.sh: the import failed (exit $rc); stderr:" >&2
        tail -20 "$TMP/import.err" >&2
        echo "PostgreSQL's log:" >&2
        grep -E -A1 "ERROR|FATAL" "$TMP/pg/postgres.log" | tail -4 | cut -c1-400 >&2
        exit 1
    fi
    if [[ -s $FILE.rejects.ndjson ]]; then
        echo "  first rejects:" >&2; head -3 "$FILE.rejects.ndjson" | sed 's/^/    /' >&2
    fi
    python3 - "$TMP/time.out" "$TMP/import.out" <<'PY'
import re, sys
t, s = open(sys.argv[1]).read(), open(sys.argv[2]).read()
def tv(name):
    return re.search(re.escape(name) + r":\s*(\S+)", t).group(1)
wall = 0.0
for part in tv("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
    wall = wall * 60 + float(part)
def num(name):
    m = re.search(r"^\s*" + name + r":\s+(\d+)", s, re.M)
    return m.group(1) if m else "-1"
print(wall, tv("User time (seconds)"), tv("System time (seconds)"),
      tv("Maximum resident set size (kbytes)"), num("orders read"), num("imported"),
      num("unchanged"), num("rejected"))
PY
}

run_baseline() { # shop -> "copy_seconds store_seconds floor_seconds"
    local shop=$1 t0 t1 t2
    "${PSQL[@]}" -d rebuy -c "CREATE UNLOGGED TABLE bench_raw (n bigserial, order_id text,
        customer_id text, placed_at text, channel text, currency text, sku text, name text,
        category text, role text, quantity bigint, unit_price bigint, line_discount bigint,
        shipping bigint, order_discount bigint, total bigint)" || return 1
    t0=$(date +%s.%N)
    "${PSQL[@]}" -d rebuy -c "\\copy bench_raw (order_id, customer_id, placed_at, channel,
        currency, sku, name, category, role, quantity, unit_price, line_discount, shipping,
        order_discount, total) FROM '$FILE' (FORMAT csv, HEADER)" || return 1
    t1=$(date +%s.%N)
    "${PSQL[@]}" -d rebuy -v shop="$shop" <<'SQL' || return 1
BEGIN;
INSERT INTO customers (shop_id, id) SELECT DISTINCT :'shop'::uuid, customer_id FROM bench_raw;
ANALYZE customers;
INSERT INTO orders (shop_id, id, customer_seq, placed_at, channel, currency, shipping, discount,
    total, fingerprint)
SELECT :'shop', r.order_id, c.seq, r.placed_at::timestamptz, r.channel, r.currency,
       coalesce(r.shipping, 0), coalesce(r.order_discount, 0), r.total, ''
  FROM (SELECT *, lag(order_id) OVER (ORDER BY n) AS prev FROM bench_raw) r
  JOIN customers c ON c.shop_id = :'shop' AND c.id = r.customer_id
 WHERE r.prev IS DISTINCT FROM r.order_id
 ORDER BY r.n;
ANALYZE orders;
INSERT INTO order_lines (order_seq, line_no, sku, name, category, role, quantity, unit_price,
    discount)
SELECT o.seq, row_number() OVER (PARTITION BY r.order_id ORDER BY r.n), r.sku,
       nullif(r.name, ''), r.category, r.role, r.quantity, r.unit_price,
       coalesce(r.line_discount, 0)
  FROM bench_raw r JOIN orders o ON o.shop_id = :'shop' AND o.id = r.order_id;
COMMIT;
SQL
    t2=$(date +%s.%N)
    # the floor: the stored orders and lines, exactly as stored, written back
    # with COPY (no join, no lookup): what keeping the file's content costs
    "${PSQL[@]}" -d rebuy >/dev/null <<SQL || return 1
CREATE TABLE bench_lines AS SELECT * FROM order_lines;
\\copy (SELECT shop_id, id, customer_seq, placed_at, channel, currency, shipping, discount, total, fingerprint FROM orders ORDER BY seq) TO '$TMP/floor-orders.tsv'
-- one INSERT into a fresh database numbered the orders without gaps: the
-- lines follow their orders by a constant shift (checked, not assumed)
DO \$\$ BEGIN IF (SELECT count(*) <> max(seq) - min(seq) + 1 FROM orders) THEN
    RAISE EXCEPTION 'the stored orders are not numbered without gaps'; END IF; END \$\$;
CREATE TABLE bench_shift AS SELECT 1 - min(seq) AS d FROM orders;
-- fresh tables, as the store step had: no dead rows for the keys to step over
TRUNCATE order_lines, orders RESTART IDENTITY CASCADE;
CHECKPOINT;
SQL
    t3=$(date +%s.%N)
    "${PSQL[@]}" -d rebuy -c "\\copy orders (shop_id, id, customer_seq, placed_at, channel,
        currency, shipping, discount, total, fingerprint) FROM '$TMP/floor-orders.tsv'" || return 1
    t4=$(date +%s.%N)
    "${PSQL[@]}" -d rebuy -c "\\copy (SELECT l.order_seq + s.d, l.line_no, l.sku, l.name,
        l.category, l.role, l.quantity, l.unit_price, l.discount FROM bench_lines l, bench_shift s)
        TO '$TMP/floor-lines.tsv'" || return 1
    t5=$(date +%s.%N)
    "${PSQL[@]}" -d rebuy -c "\\copy order_lines FROM '$TMP/floor-lines.tsv'" || return 1
    t6=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.3f} {$t2 - $t1:.3f} {$t4 - $t3 + $t6 - $t5:.3f}')"
}

RES=()
BASE=()
for round in $(seq "$ROUNDS"); do
    # the baseline first: the import's database stays for verify and the re-run
    if (( BASELINE )); then
        b=$(run_baseline "$(fresh_shop)") || { echo "import.sh: the baseline failed" >&2; exit 1; }
        BASE+=("$b")
    fi
    SHOP=$(fresh_shop)
    RES+=("$(run_import "$SHOP" "round $round")")
done
"${PSQL[@]}" -d rebuy -c "SELECT 'database: ' || pg_size_pretty(pg_database_size('rebuy'))
    || ', orders ' || (SELECT count(*) FROM orders) || ', lines ' || (SELECT count(*) FROM order_lines)
    || ', customers ' || (SELECT count(*) FROM customers)
    || ' (' || (SELECT count(*) FROM customer_facts WHERE order_count >= 2) || ' repeat)'"
if (( VERIFY )); then
    start=$(date +%s.%N)
    "$REBUYD" verify --shop "$SHOP" | tail -3
    echo "verify: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
fi
RERUN_RES=
if (( RERUN )); then RERUN_RES=$(run_import "$SHOP" "re-run, same file"); fi

python3 - "$ROWS" "$RERUN_RES" "${BASE[*]:-}" "${RES[@]}" <<'PY'
import statistics as st, sys
rows, rerun, base = int(sys.argv[1]), sys.argv[2], sys.argv[3].split()
res = [r.split() for r in sys.argv[4:]]
def report(label, rs):
    wall = st.median(float(r[0]) for r in rs)
    orders = int(rs[0][4])
    cpu = st.median(float(r[1]) + float(r[2]) for r in rs)
    rss = max(int(r[3]) for r in rs)
    print(f"{label:24}{wall:8.1f} s{rows / wall:12.0f} lines/s{orders / wall:11.0f} orders/s"
          f"   rebuyd CPU {cpu:.1f} s, peak RSS {rss / 1024:.1f} MB"
          + (f"   (median of {len(rs)}: {', '.join(f'{float(r[0]):.1f}' for r in rs)} s)" if len(rs) > 1 else ""))
    print(f"{'':24}imported {rs[0][5]}, unchanged {rs[0][6]}, rejected {rs[0][7]}")
print()
report("import", res)
if rerun:
    report("re-run (all unchanged)", [rerun.split()])
if base:
    cp = [float(x) for x in base[0::3]]
    sto = [float(x) for x in base[1::3]]
    floor = [float(x) for x in base[2::3]]
    both = [a + b for a, b in zip(cp, sto)]
    wall = st.median(float(r[0]) for r in res)
    print(f"{'baseline: psql COPY':24}{st.median(cp):8.1f} s{rows / st.median(cp):12.0f} lines/s"
          f"   (median of {len(cp)})")
    print(f"{'  + store (no facts)':24}{st.median(both):8.1f} s{rows / st.median(both):12.0f} lines/s"
          f"   the import takes {wall / st.median(both):.2f}x as long")
    print(f"{'floor: COPY into tables':24}{st.median(floor):8.1f} s{rows / st.median(floor):12.0f} lines/s"
          f"   the stored orders and lines written back as they are (median of {len(floor)})")
PY
