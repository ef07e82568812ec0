#!/usr/bin/env bash
# Benchmark order ingest, PUT /v1/orders/{id} (a new order with 3 lines),
# against pgbench running the very same SQL transaction rebuyd runs for a
# new order (statements taken from the binary with `rebuyd sql`):
#   auth_lookup; BEGIN; orders_find; orders_customer;
#   orders_insert; orders_lines_insert; orders_facts_refresh; orders_json; COMMIT
#
# Method (same as tests/bench/customers.sh; the machine is noisy):
#   - a private PostgreSQL 15, shared_buffers sized to the data, tables
#     prewarmed; a pool of BENCH_CUSTOMERS (20000) customers in one shop with
#     BENCH_HISTORY (3) orders each and their facts, so most new orders update
#     the facts of a customer with history; BENCH_NEW_PCT (20) % of the
#     orders come from a customer never seen before;
#   - every request is a new order (wrk: run tag + thread + counter in the
#     id; pgbench: a random 63-bit id); totals add up;
#   - rounds interleave rebuyd and pgbench, for each of BENCH_CONNS ("16 64")
#     connections: wrk -cN against rebuyd, pgbench -cN; plus pgbench with as
#     many clients as rebuyd has workers (BENCH_WORKERS, 8); the better
#     pgbench is the baseline; median of BENCH_ROUNDS (5) rounds of
#     BENCH_SECONDS (8) each;
#   - p50/p99: wrk's, and pgbench's from its per-transaction log;
#   - peak RSS of rebuyd (VmHWM) at the end.
# Prints one table and "ratio" lines; exits 0 (it measures, never asserts),
# except when rebuyd does not answer 201 to a first order.
#
# BENCH_TIERS=1 measures instead what an earned-tier programme costs the
# ingest (issue 6, goal >= 0.9): each round runs wrk against rebuyd without
# a programme, then with one (three tiers: an entry tier, silver by net
# spend, gold by spend or order count, 365-day windows), the programme
# dropped with SQL and put back through the API in between; ratio = with /
# without per round, median of the rounds.
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build
WRK_SCRIPT=put.lua PGB_SCRIPT=put.sql

POOL=${BENCH_CUSTOMERS:-20000}
HISTORY=${BENCH_HISTORY:-3}
NEW_PCT=${BENCH_NEW_PCT:-20}
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-8}
CONNS_LIST=${BENCH_CONNS:-16 64}
WORKERS=${BENCH_WORKERS:-8}
bench_shop_cluster

echo "loading $POOL customers with $HISTORY orders each"
"${PSQL[@]}" -d rebuy <<SQL
INSERT INTO customers (shop_id, id) SELECT '$SHOP', g::text FROM generate_series(1, $POOL) g;
INSERT INTO orders (shop_id, id, customer_seq, placed_at, channel, currency, shipping, discount,
                    total, fingerprint)
SELECT '$SHOP', 'h' || c.id || '-' || k, c.seq,
       timestamptz '2024-01-01 00:00+08' + random() * interval '700 days',
       (ARRAY['tmall', 'douyin', 'jd', 'web', 'store-12'])[1 + (c.seq + k) % 5], 'CNY', 0, 0,
       25800, 'preload'
  FROM customers c, generate_series(1, $HISTORY) k WHERE c.shop_id = '$SHOP';
INSERT INTO order_lines (order_seq, line_no, sku, name, category, role, quantity, unit_price,
                         discount)
SELECT o.seq, l, 'SKU-' || (o.seq % 50), 'Product ' || (o.seq % 50),
       (ARRAY['cosmetics', 'womens-shoes', 'mens-shoes', 'womens-clothing', 'tea', 'snacks'])
           [1 + (o.seq + l) % 6],
       (ARRAY['traffic', 'activity', 'regular', 'regular'])[1 + (o.seq * 7 + l) % 4], 1, 12900, 0
  FROM orders o, generate_series(1, 2) l;
SELECT count(customer_facts_refresh(seq)) FROM customers WHERE shop_id = '$SHOP' \gset
VACUUM ANALYZE;
CREATE EXTENSION pg_prewarm;
SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i') \gset
SQL
"${PSQL[@]}" -d rebuy -c "SELECT 'data: ' || pg_size_pretty(pg_database_size('rebuy'))"

# --- pgbench: the statements rebuyd prepares, $k -> :<stmt>_k, then the
# values rebuyd takes from earlier results: the customer's and the order's seq
stmt() { # name -> SQL with pgbench variables
    "$REBUYD" sql "$1" | sed -E "s/\\\$([0-9]+)/:$1_\\1/g"
}
LINES_JSON='[{"sku":"TEA-LJ-250","name":"Longjing 250 g","category":"tea","role":"regular","quantity":2,"unit_price":12800,"discount":0},{"sku":"COS-SER-30","name":"Serum 30 ml","category":"cosmetics","role":"activity","quantity":1,"unit_price":19900,"discount":2000},{"sku":"SNA-NUT-30","name":null,"category":"snacks","role":"traffic","quantity":1,"unit_price":990,"discount":0}]'
cat >"$TMP/put.sql" <<SQL
\set oid random(1, 9000000000000000000)
\set u random(1, 100)
\if :u <= $NEW_PCT
\set cust :oid
\else
\set cust random(1, $POOL)
\endif
$(stmt auth_lookup);
BEGIN;
$(stmt orders_find);
$(stmt orders_customer) \gset cust_
$(stmt orders_insert) \gset ord_
$(stmt orders_lines_insert);
$(stmt orders_facts_refresh);
$(stmt orders_json);
COMMIT;
SQL
sed -i -E -e 's/:orders_(find|insert)_2\b/:oid/g' -e 's/:orders_customer_2\b/:cust/g' \
    -e 's/:orders_facts_refresh_3\b/:oid/g' \
    -e 's/:(orders_insert_3|orders_facts_refresh_1)\b/:cust_seq/g' \
    -e 's/:(orders_lines_insert_1|orders_json_1)\b/:ord_seq/g' "$TMP/put.sql"
PGB_VARS=(-D "auth_lookup_1=$PREFIX"
    -D "orders_find_1=$SHOP" -D "orders_customer_1=$SHOP"
    -D "orders_insert_1=$SHOP" -D "orders_insert_4=2025-06-18T12:00:00Z" -D orders_insert_5=web
    -D orders_facts_refresh_2=order -D orders_insert_6=CNY -D orders_insert_7=800 -D orders_insert_8=1000 -D orders_insert_9=44290
    -D orders_insert_10=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    -D "orders_lines_insert_2=$LINES_JSON")
for v in $(grep -oE ':[a-z_]+_[0-9]+\b' "$TMP/put.sql" | sort -u); do
    [[ " ${PGB_VARS[*]} " == *" ${v#:}="* ]] || { echo "pgbench variable $v has no value" >&2; exit 1; }
done

# --- wrk: bodies are formatted in init(), in two parts around the customer
# id; a request is the prefix, a counter, the head and the body with a
# customer drawn per request (the load generator shares the two cores with
# rebuyd and PostgreSQL, so it must cost as little as it can)
cat >"$TMP/put.lua" <<LUA
local key, pool, newpct = "$KEY", $POOL, $NEW_PCT
local tag, n, pre, b1, b2 = "r", 0, nil, {}, {}
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
local cats = { "cosmetics", "womens-shoes", "mens-shoes", "womens-clothing", "tea", "snacks" }
local roles = { "traffic", "activity", "regular", "regular" }
local prices = { 990, 4900, 12800, 19900, 29900, 59900 }
function init(args)
  tag = args[1] or "r"
  math.randomseed(os.time() * 64 + (tid or 0))
  pre = "PUT /v1/orders/" .. tag .. "-" .. (tid or 0) .. "-"
  for k = 1, 4000 do
    local lines, sum = {}, 0
    for j = 1, 3 do
      local q, p = math.random(1, 2), prices[math.random(#prices)]
      local d = (math.random() < 0.2) and math.floor(q * p / 1000) * 100 or 0
      sum = sum + q * p - d
      lines[j] = string.format('{"sku":"SKU-%d","name":"Product %d","category":"%s","role":"%s",'
        .. '"quantity":%d,"unit_price":%d,"discount":%d}', math.random(50), j,
        cats[math.random(#cats)], roles[math.random(#roles)], q, p, d)
    end
    local shipping = (sum < 9900) and 800 or 0
    local discount = (sum >= 19900 and math.random() < 0.3) and 2000 or 0
    b1[k] = '{"customer_id":"'
    b2[k] = string.format('","placed_at":"2025-%02d-%02dT%02d:%02d:%02d+08:00","channel":"%s",'
      .. '"currency":"CNY","lines":[%s],"shipping":%d,"discount":%d,"total":%d}',
      math.random(12), math.random(28), math.random(0, 23), math.random(0, 59), math.random(0, 59),
      ({ "tmall", "douyin", "jd", "web", "store-12" })[math.random(5)],
      table.concat(lines, ","), shipping, discount, sum + shipping - discount)
  end
end
local head = " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $KEY\r\n"
  .. "Content-Type: application/json\r\nContent-Length: "
function request()
  n = n + 1
  local k = n % #b1 + 1
  local c = (math.random(100) > newpct) and tostring(math.random(pool))
    or ("n" .. tag .. "-" .. (tid or 0) .. "-" .. n)
  return pre .. n .. head .. (#b1[k] + #c + #b2[k]) .. "\r\n\r\n" .. b1[k] .. c .. b2[k]
end
LUA

"$REBUYD" serve --listen "127.0.0.1:$HTTP" --workers "$WORKERS" --log-level warn 2>"$TMP/rebuyd.log" &
RPID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
code=$(curl -s -o "$TMP/warm.json" -w '%{http_code}' -X PUT "http://127.0.0.1:$HTTP/v1/orders/warm-up" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"customer_id":"1","placed_at":"2025-06-18T20:00:00+08:00","channel":"web","currency":"CNY",
         "lines":[{"sku":"A","category":"tea","role":"regular","quantity":2,"unit_price":12800}],
         "shipping":800,"total":26400}')
[[ $code == 201 ]] || { echo "warm-up PUT answered $code: $(cat "$TMP/warm.json")"; exit 1; }
# one pgbench transaction, to fail early (and loudly) on a broken script
pgbench "host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy" -n -M prepared -t 1 -c 1 \
    -f "$TMP/put.sql" "${PGB_VARS[@]}" >"$TMP/pgb.out" 2>&1 \
    && grep -q "number of failed transactions: 0\|actually processed: 1/1" "$TMP/pgb.out" \
    || { echo "pgbench script failed:"; cat "$TMP/pgb.out"; cat "$TMP/put.sql"; exit 1; }

TIERS_BODY='{"tiers":[
  {"code":"member","name":"Member","discount_bp":0,"qualification":{}},
  {"code":"silver","name":"Silver","discount_bp":300,"qualification":{"net_spend":100000}},
  {"code":"gold","name":"Gold","discount_bp":800,
   "qualification":{"net_spend":300000,"orders":6,"combine":"or"}}],
  "downgrade":{"policy":"review","every_months":3,"grace_days":30}}'
tiers_on() {
    local code
    code=$(curl -s -o "$TMP/tiers.json" -w '%{http_code}' -X PUT "http://127.0.0.1:$HTTP/v1/tier-programme" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$TIERS_BODY")
    [[ $code == 20[01] ]] || { echo "PUT /v1/tier-programme answered $code: $(cat "$TMP/tiers.json")" >&2; exit 1; }
}
tiers_off() { "${PSQL[@]}" -d rebuy -c "DELETE FROM tiers; DELETE FROM tier_programmes"; }

declare -A R
if [[ ${BENCH_TIERS:-0} == 1 ]]; then
    for round in $(seq "$ROUNDS"); do
        for c in $CONNS_LIST; do
            tiers_off
            R[off.$c]+="$(wrk_run "$c" "t${round}c${c}off");"
            tiers_on
            R[on.$c]+="$(wrk_run "$c" "t${round}c${c}on");"
        done
        echo "round $round done"
    done
    "${PSQL[@]}" -d rebuy -c "SELECT 'tiers held: ' || string_agg(tier || ' ' || n, ', ')
        || '; history rows: ' || (SELECT count(*) FROM tier_history)
        FROM (SELECT tier, count(*) n FROM customer_tiers GROUP BY tier ORDER BY tier) x"
    args=()
    for c in $CONNS_LIST; do args+=("$c" "${R[off.$c]}" "${R[on.$c]}"); done
    python3 - "${args[@]}" <<'PY'
import statistics as st, sys
def rows(s): return [list(map(float, r.split())) for r in s.split(";") if r.strip()]
def med(rs, i): return st.median(r[i] for r in rs)
a = sys.argv[1:]
print(f"\nPUT /v1/orders/{{id}}, new order, 3 lines{'req/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
for i in range(0, len(a), 3):
    c, off, on = a[i], rows(a[i + 1]), rows(a[i + 2])
    for name, r in (("no tier programme", off), ("tier programme", on)):
        print(f"{'  ' + name + ' (wrk -c' + c + ')':41}{med(r,0):12.0f}{med(r,1):9.2f}{med(r,2):9.2f}{med(r,3):8.0f}")
    # each round's pair ran back to back: the median of their ratios is the
    # figure least moved by the machine's noise (medians of each side drift apart)
    per = [y[0] / x[0] for x, y in zip(off, on)]
    print(f"ratio -c{c}: with / without = {st.median(per):.2f} (median of the rounds' ratios; "
          + ", ".join(f"{r:.2f}" for r in per) + f"; ratio of the medians {med(on,0) / med(off,0):.2f})")
PY
    exit 0
fi
for round in $(seq "$ROUNDS"); do
    for c in $CONNS_LIST; do
        R[rebuyd.$c]+="$(wrk_run "$c" "w${round}c$c");"
        R[pgb.$c]+="$(pgb_run "$c");"
    done
    R[pgb.w]+="$(pgb_run "$WORKERS");"
    echo "round $round done"
done
RSS=$(awk '/VmHWM/{print $2}' "/proc/$RPID/status")
# every request must have been a new order (a 200 would be a resent id)
"${PSQL[@]}" -d rebuy -c "SELECT 'after: ' || count(*) || ' orders ('
    || count(*) FILTER (WHERE id LIKE 'w%') || ' by wrk, which counted '
    || ($(paste -sd+ "$TMP/wrk.total")) || ' responses; '
    || count(*) FILTER (WHERE id ~ '^[0-9]+\$') || ' by pgbench, which counted '
    || ($(paste -sd+ "$TMP/pgb.total")) || ' transactions), '
    || (SELECT count(*) FROM customers) || ' customers, '
    || pg_size_pretty(pg_database_size('rebuy')) FROM orders"
grep -v '"level":"info"' "$TMP/rebuyd.log" | tail -5 || true

args=("$WORKERS" "$RSS" "${R[pgb.w]}")
for c in $CONNS_LIST; do args+=("$c" "${R[rebuyd.$c]}" "${R[pgb.$c]}"); done
python3 - "${args[@]}" <<'PY'
import statistics as st, sys
workers, rss, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rows(s): return [list(map(float, r.split())) for r in s.split(";") if r.strip()]
def med(rs, i): return st.median(r[i] for r in rs)
pw = rows(pw)
print()
print(f"PUT /v1/orders/{{id}}, new order, 3 lines"
      f"{'req/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   (median of {len(pw)})")
print(f"{'  pgbench -c' + workers:41}{med(pw,0):12.0f}{med(pw,1):9.2f}{med(pw,2):9.2f}{med(pw,3):8.0f}")
rest = sys.argv[4:]
ratios = []
for i in range(0, len(rest), 3):
    c, r, p = rest[i], rows(rest[i + 1]), rows(rest[i + 2])
    print(f"{'  rebuyd (wrk -t2 -c' + c + ')':41}{med(r,0):12.0f}{med(r,1):9.2f}{med(r,2):9.2f}{med(r,3):8.0f}")
    print(f"{'  pgbench -c' + c:41}{med(p,0):12.0f}{med(p,1):9.2f}{med(p,2):9.2f}{med(p,3):8.0f}")
    base = max(med(p, 0), med(pw, 0))
    ratios.append(f"ratio -c{c}: rebuyd / best pgbench = {med(r,0) / base:.2f}   (per-round: "
                  + ", ".join(f"{x[0] / max(y[0], z[0]):.2f}" for x, y, z in zip(r, p, pw)) + ")")
print("\n".join(ratios))
print(f"rebuyd peak RSS: {rss / 1024:.1f} MB")
PY
