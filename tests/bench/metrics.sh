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

bench_dataset metrics.sh readonly

BENCH_HTTP="http://127.0.0.1:$HTTP" BENCH_KEY=$KEY BENCH_DB=$DBURL BENCH_SHOP=$SHOP \
    node tests/bench/metrics-bench.mjs
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
