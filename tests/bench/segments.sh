#!/usr/bin/env bash
# Benchmark the segment and RFM endpoints at scale (issue 5's targets:
# RFM summary < 1 s, first page of any segment < 100 ms, a full export of
# a 1M-customer segment at >= 1M rows/s with rebuyd's RSS under 64 MB).
#
#   BENCH_ORDERS, BENCH_CUSTOMERS, BENCH_SEED, BENCH_WORKERS, BENCH_ROUNDS,
#   BENCH_DATABASE_URL, BENCH_SHOP, BENCH_KEY: as in tests/bench/metrics.sh
#   (a reused database gets an admin key and one custom segment,
#   bench-everyone: every scored customer, the largest list there is).
# e.g. BENCH_ORDERS=10000000 BENCH_CUSTOMERS=1000000 tests/bench/segments.sh
#
# Method: interleaved rounds, median of BENCH_ROUNDS (5); per round:
#   - GET /v1/rfm/summary, and as its baseline the straightforward SQL
#     (every customer ranked with rank() OVER three times, then grouped);
#   - the first page (limit 50) of every built-in segment and of
#     bench-everyone, and GET /v1/segments (every size);
#   - the export of bench-everyone as CSV and as NDJSON through HTTP, and as
#     its baseline psql's COPY of the same members' plain columns (what
#     PostgreSQL alone can stream), and psql's COPY of the same rows from a
#     table that holds just them (bench_flat, made before the rounds: the
#     most any precomputed form of the export could stream); rows/s of each;
#   - rebuyd's peak RSS (VmHWM) after all of it.
# Measures, never asserts: exits 0 whatever the times.
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build

ORDERS=${BENCH_ORDERS:-${ORDERS:-1000000}}
CUSTOMERS=${BENCH_CUSTOMERS:-${CUSTOMERS:-100000}}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-8}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

bench_dataset segments.sh admin

BENCH_HTTP="http://127.0.0.1:$HTTP" BENCH_KEY=$KEY BENCH_DB=$DBURL BENCH_SHOP=$SHOP BENCH_PID=$RPID \
    node tests/bench/segments-bench.mjs
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
