#!/usr/bin/env bash
# Benchmark wallet spends, POST /v1/customers/{id}/wallet/spends (issue 7):
#   1. spends spread over BENCH_WALLETS (10000) wallets: rebuyd (with as many
#      database connections as pgbench has clients) against
#      pgbench running the very same SQL rebuyd runs for a spend (statements
#      taken from the binary with `rebuyd sql`; the spend is one statement,
#      its own transaction):
#        auth_lookup; wallets_spend
#      goal: rebuyd >= 80% of pgbench;
#   2. spends hammering one wallet from BENCH_HOT_CONNS (32) clients: rebuyd
#      requests/s (they queue on the customer's row, one at a time).
#
# Method (the machine is noisy): a private PostgreSQL 15, shared_buffers
# sized to the data, tables prewarmed; every wallet topped up with plenty of
# principal and a bonus of 1000 a month; every request is a new spend of 1
# (the run tag, thread and counter make the id); rounds interleave rebuyd
# and pgbench (ABBA: who goes first alternates; a CHECKPOINT before each
# run), median of BENCH_ROUNDS (5) rounds of BENCH_SECONDS (8) each;
# the ratio is the median of the rounds' ratios.  Prints one table and the
# ratio; exits 0 (it measures, never asserts) unless a first spend fails.
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build
WRK_SCRIPT=spend.lua PGB_SCRIPT=spend.sql

WALLETS=${BENCH_WALLETS:-10000}
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-16}
HOT_CONNS=${BENCH_HOT_CONNS:-32}
# rebuyd gets as many database connections as pgbench has clients: the same SQL
# at the same concurrency (with 8 for 16 clients, half the requests wait for one)
WORKERS=${BENCH_WORKERS:-$CONNS}
bench_shop_cluster

echo "opening $WALLETS wallets"
"${PSQL[@]}" -d rebuy <<SQL
INSERT INTO customers (shop_id, id) SELECT '$SHOP', g::text FROM generate_series(1, $WALLETS) g;
INSERT INTO topup_offers (shop_id, code, version, name, min_topup, bonus_immediate, inst_count,
                          inst_amount, inst_every, inst_interval, inst_expiry, active)
VALUES ('$SHOP', 'monthly', 1, 'Bench', 0, 0, 12, 1000, 'month', 1, 'none', true);
SELECT count(*) FROM generate_series(1, $WALLETS) g,
       LATERAL wallet_topup('$SHOP', g::text, 'seed-' || g, 1000000000, 'monthly',
                            now() - interval '40 days') w \gset
-- post the releases due since, so neither side pays a wallet's first catch-up
SELECT wallet_sweep('$SHOP', now()) \gset
VACUUM ANALYZE;
CREATE EXTENSION pg_prewarm;
SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i') \gset
SQL
"${PSQL[@]}" -d rebuy -c "SELECT 'data: ' || pg_size_pretty(pg_database_size('rebuy'))"

stmt() { # name -> SQL with pgbench variables
    "$REBUYD" sql "$1" | sed -E "s/\\\$([0-9]+)/:$1_\\1/g"
}
cat >"$TMP/spend.sql" <<SQL
\set sid random(1, 9000000000000000000)
\set cust random(1, $WALLETS)
$(stmt auth_lookup);
$(stmt wallets_spend);
SQL
# no order id: NULL, as rebuyd sends it
sed -i -E -e 's/:wallets_spend_2\b/:cust/g' -e 's/:wallets_spend_3\b/:sid/g' \
    -e 's/:wallets_spend_5\b/NULL/g' "$TMP/spend.sql"
PGB_VARS=(-D "auth_lookup_1=$PREFIX" -D "wallets_spend_1=$SHOP" -D wallets_spend_4=1)

cat >"$TMP/spend.lua" <<LUA
local pool, hot = $WALLETS, false
local n, pre = 0, nil
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args)
  local tag = args[1] or "r"
  hot = args[2] == "hot"
  math.randomseed(os.time() * 64 + (tid or 0))
  pre = '{"spend_id":"' .. tag .. "-" .. (tid or 0) .. "-"
end
local head = " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $KEY\r\n"
  .. "Content-Type: application/json\r\nContent-Length: "
function request()
  n = n + 1
  local c = hot and "1" or tostring(math.random(pool))
  local body = pre .. n .. '","amount":1}'
  return "POST /v1/customers/" .. c .. "/wallet/spends" .. head .. #body .. "\r\n\r\n" .. body
end
LUA

"$REBUYD" serve --listen "127.0.0.1:$HTTP" --workers "$WORKERS" --log-level warn 2>"$TMP/rebuyd.log" &
RPID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
code=$(curl -s -o "$TMP/warm.json" -w '%{http_code}' -X POST \
    "http://127.0.0.1:$HTTP/v1/customers/1/wallet/spends" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"spend_id":"warm-up","amount":1}')
[[ $code == 201 ]] || { echo "warm-up spend answered $code: $(cat "$TMP/warm.json")"; exit 1; }
pgbench "host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy" -n -M prepared -t 1 -c 1 \
    -f "$TMP/spend.sql" "${PGB_VARS[@]}" >"$TMP/pgb.out" 2>&1 \
    && grep -q "number of failed transactions: 0\|actually processed: 1/1" "$TMP/pgb.out" \
    || { echo "pgbench script failed:"; cat "$TMP/pgb.out"; cat "$TMP/spend.sql"; exit 1; }

# wrk_run passes one argument; the hot run needs two
wrk_hot() {
    wrk -t2 -c"$1" -d"${SECS}s" --latency -s "$TMP/spend.lua" "http://127.0.0.1:$HTTP" -- "$2" hot \
        >"$TMP/wrk.out" 2>&1
    python3 - "$TMP/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {bad.group(1) if bad else 0}")
PY
}

declare -A R
for round in $(seq "$ROUNDS"); do
    # ABBA: who goes first alternates, so a drift over the run favours neither
    if (( round % 2 )); then
        R[rebuyd]+="$(wrk_run "$CONNS" "s${round}");"
        R[pgb]+="$(pgb_run "$CONNS");"
    else
        R[pgb]+="$(pgb_run "$CONNS");"
        R[rebuyd]+="$(wrk_run "$CONNS" "s${round}");"
    fi
    R[hot]+="$(wrk_hot "$HOT_CONNS" "h${round}");"
    echo "round $round done"
done
RSS=$(awk '/VmHWM/{print $2}' "/proc/$RPID/status")
"${PSQL[@]}" -d rebuy -c "SELECT 'after: ' || count(*) || ' spends, ' || sum(amount)
    || ' spent; wallet 1 holds ' || (SELECT principal + bonus_available FROM wallets w
    JOIN customers c ON c.seq = w.customer_seq WHERE c.id = '1') FROM spends"
"$REBUYD" verify --database-url "$REBUY_DATABASE_URL" | tail -1
grep -v '"level":"info"' "$TMP/rebuyd.log" | tail -5 || true

python3 - "$CONNS" "$HOT_CONNS" "$RSS" "${R[rebuyd]}" "${R[pgb]}" "${R[hot]}" <<'PY'
import statistics as st, sys
conns, hot_conns, rss = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(s): return [list(map(float, r.split())) for r in s.split(";") if r.strip()]
r, p, h = rows(sys.argv[4]), rows(sys.argv[5]), rows(sys.argv[6])
med = lambda rs, i: st.median(x[i] for x in rs)
print(f"\nPOST /v1/customers/{{id}}/wallet/spends{'req/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
print(f"{'  rebuyd, 10k wallets (wrk -c' + conns + ')':46}{med(r,0):10.0f}{med(r,1):9.2f}{med(r,2):9.2f}{med(r,3):8.0f}")
print(f"{'  pgbench, same SQL (-c' + conns + ')':46}{med(p,0):10.0f}{med(p,1):9.2f}{med(p,2):9.2f}{med(p,3):8.0f}")
print(f"{'  rebuyd, one wallet (wrk -c' + hot_conns + ')':46}{med(h,0):10.0f}{'':18}{med(h,1):8.0f}")
per = [x[0] / y[0] for x, y in zip(r, p)]
print(f"ratio: rebuyd / pgbench = {st.median(per):.2f} (median of the rounds' ratios; "
      + ", ".join(f"{x:.2f}" for x in per) + ")")
print("rounds, req/s: rebuyd " + " ".join(f"{x[0]:.0f}" for x in r)
      + "; pgbench " + " ".join(f"{x[0]:.0f}" for x in p))
print(f"rebuyd peak RSS: {rss / 1024:.1f} MB")
PY
