#!/usr/bin/env bash
# Benchmark GET and PUT /v1/customers/{id} against pgbench running the very
# same SQL (taken from the binary with `rebuyd sql`) on the same database.
#
# Method (the machine is noisy, up to 2x run to run):
#   - a private PostgreSQL 15 with shared_buffers sized to the data and the
#     tables prewarmed (pg_prewarm); BENCH_N customers in one shop;
#   - rounds interleave rebuyd and pgbench (GET then PUT), median of
#     BENCH_ROUNDS (5) rounds of BENCH_SECONDS each;
#   - 64 connections for both: wrk -c64 against rebuyd, pgbench -c64;
#     pgbench is also run with as many clients as rebuyd has workers
#     (8 connections), and the better of the two is the baseline;
#   - peak RSS of rebuyd (VmHWM) at the end.
# Prints one table and "ratio" lines; exits 0 (it measures, never asserts).
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build

N=${BENCH_N:-100000}
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-64}
WORKERS=${BENCH_WORKERS:-8}
bench_shop_cluster

echo "loading $N customers"
"${PSQL[@]}" -d rebuy <<SQL
INSERT INTO customers (shop_id, id, name, email, phone, tags, consent_email, consent_email_at, attributes)
SELECT '$SHOP', g::text, 'Customer ' || g, 'c' || g || '@example.com', '+86138' || lpad(g::text, 8, '0'),
       ARRAY['bench', 'tier' || (g % 5)], g % 3 = 0, CASE WHEN g % 3 = 0 THEN now() END,
       jsonb_build_object('city', 'Hangzhou', 'n', g)
FROM generate_series(1, $N) g;
VACUUM ANALYZE;
CREATE EXTENSION pg_prewarm;
SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i');
SQL
"${PSQL[@]}" -d rebuy -c "SELECT 'data: ' || pg_size_pretty(pg_database_size('rebuy'))"

# pgbench scripts from the statements rebuyd prepares: $k -> :<stmt>_k
stmt() { # name -> SQL with pgbench variables
    "$REBUYD" sql "$1" | sed -E "s/\\\$([0-9]+)/:$1_\\1/g"
}
cat >"$TMP/get.sql" <<SQL
\set customers_get_2 random(1, $N)
$(stmt auth_lookup);
$(stmt customers_get);
SQL
cat >"$TMP/put.sql" <<SQL
\set customers_put_2 random(1, $N)
$(stmt auth_lookup);
BEGIN;
$(stmt customers_put);
COMMIT;
SQL
PGB_VARS=(-D "auth_lookup_1=$PREFIX" -D "customers_get_1=$SHOP" -D "customers_put_1=$SHOP"
    -D "customers_put_3=Bench Customer" -D "customers_put_4=bench@example.com"
    -D "customers_put_5=+8613800138000" -D 'customers_put_6=["bench","vip"]'
    -D 'customers_put_7={"attributes":{"city":"Hangzhou"}}' -D customers_put_8=true -D customers_put_10=false -D customers_put_12=false)
# the consent times rebuyd sends as NULL parameters (pgbench has no NULL variables)
sed -i -E 's/:customers_put_(9|11|13)\b/NULL/g' "$TMP/put.sql"

# requests are formatted once in init(): the load generator shares the two
# cores with rebuyd and PostgreSQL, so it must cost as little as it can
cat >"$TMP/get.lua" <<LUA
local n, key, reqs, i = $N, "$KEY", {}, 0
init = function()
  for k = 1, 20000 do
    reqs[k] = wrk.format("GET", "/v1/customers/" .. math.random(1, n),
      { ["Authorization"] = "Bearer " .. key })
  end
end
request = function() i = i % #reqs + 1; return reqs[i] end
LUA
cat >"$TMP/put.lua" <<LUA
local n, key, reqs, i = $N, "$KEY", {}, 0
local body = '{"name":"Bench Customer","email":"bench@example.com","phone":"+8613800138000",'
  .. '"tags":["bench","vip"],"consent":{"email":{"granted":true}},"attributes":{"city":"Hangzhou"}}'
init = function()
  for k = 1, 20000 do
    reqs[k] = wrk.format("PUT", "/v1/customers/" .. math.random(1, n),
      { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
  end
end
request = function() i = i % #reqs + 1; return reqs[i] end
LUA

"$REBUYD" serve --listen "127.0.0.1:$HTTP" --workers "$WORKERS" --log-level warn 2>"$TMP/rebuyd.log" &
RPID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/v1/customers/1" -H "Authorization: Bearer $KEY")
[[ $code == 200 ]] || { echo "warm-up GET answered $code"; exit 1; }

wrk_run() { # script -> "rps p50ms p99ms non2xx"
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$TMP/$1.lua" "http://127.0.0.1:$HTTP" >"$TMP/wrk.out" 2>&1
    python3 - "$TMP/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        sys.exit(f"cannot read wrk latency {v!r} in:\n{t}")
    x, unit = float(m.group(1)), m.group(2)
    return x * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}
pgb_run() { # script clients -> "tps avg_ms"
    pgbench "host=$TMP/pg port=$PGPORT user=postgres dbname=rebuy" -n -M prepared -T "$SECS" \
        -c "$2" -j 2 -f "$TMP/$1.sql" "${PGB_VARS[@]}" >"$TMP/pgb.out" 2>&1 \
        || { cat "$TMP/pgb.out" >&2; echo "0 0"; return; }
    awk '/^tps = /{tps=$3} /^latency average/{lat=$4} END{printf "%.0f %.2f\n", tps, lat}' "$TMP/pgb.out"
}

declare -A R
for round in $(seq "$ROUNDS"); do
    for kind in get put; do
        R[$kind.rebuyd]+="$(wrk_run $kind);"
        R[$kind.pgb64]+="$(pgb_run $kind "$CONNS");"
        R[$kind.pgbw]+="$(pgb_run $kind "$WORKERS");"
    done
    echo "round $round done"
done
RSS=$(awk '/VmHWM/{print $2}' "/proc/$RPID/status")

python3 - "$CONNS" "$WORKERS" "$RSS" "${R[get.rebuyd]}" "${R[get.pgb64]}" "${R[get.pgbw]}" \
    "${R[put.rebuyd]}" "${R[put.pgb64]}" "${R[put.pgbw]}" <<'PY'
import statistics as st, sys
conns, workers, rss = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(s): return [list(map(float, r.split())) for r in s.split(";") if r.strip()]
def med(rs, i): return st.median(r[i] for r in rs)
print()
print(f"{'':26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   (median of {len(rows(sys.argv[4]))})")
for kind, a, b, c in (("GET", *sys.argv[4:7]), ("PUT", *sys.argv[7:10])):
    r, p64, pw = rows(a), rows(b), rows(c)
    print(f"{kind + ' rebuyd (wrk -c' + conns + ')':26}{med(r,0):10.0f}{med(r,1):9.2f}{med(r,2):9.2f}{med(r,3):9.0f}")
    print(f"{kind + ' pgbench -c' + conns:26}{med(p64,0):10.0f}{med(p64,1):9.2f}")
    print(f"{kind + ' pgbench -c' + workers:26}{med(pw,0):10.0f}{med(pw,1):9.2f}")
    base = max(med(p64, 0), med(pw, 0))
    print(f"ratio {kind}: rebuyd / best pgbench = {med(r,0) / base:.2f}   "
          f"(per-round: {', '.join(f'{x[0] / max(y[0], z[0]):.2f}' for x, y, z in zip(r, p64, pw))})")
print(f"rebuyd peak RSS: {rss / 1024:.1f} MB")
PY
