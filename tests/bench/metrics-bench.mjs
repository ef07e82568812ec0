#!/usr/bin/env node
// Timing half of tests/bench/metrics.sh: for each question, the metrics
// endpoint of a running rebuyd over real HTTP against the straightforward
// SQL over the raw orders/order_lines tables (tests/exactness/reference.js)
// answering the same question on the same database.
//
// Method: a warm-up pass (every endpoint once; then the reference's
// derivation once, which reads orders and order_lines through, and every
// question asked of the endpoint and of the reference, the two answers
// compared as a check that both answer the same question), then
// BENCH_ROUNDS rounds; in each round every question is asked of the
// endpoint, then of the reference (interleaved, so load on this noisy
// machine hits both alike).  An endpoint time is one GET on a kept-alive
// connection, from sending the request to the last byte of the body.  A SQL
// time is what a client of the raw tables waits for: the reference's
// derivation (its temp tables: qualifying orders, purchase occasions,
// customers, categories) plus its metric queries, round trips included.
//   BENCH_SQL=full    (default) every SQL time starts from the raw tables:
//                     the derivation is dropped (not timed) and redone;
//   BENCH_SQL=shared  the derivation is timed once per round, at its start,
//                     and each question's SQL time is that plus its own
//                     queries (same figures to within noise, ~7x quicker).
// Reported: median of the rounds of each, and sql / endpoint.
//
// Environment (set by metrics.sh):
//   BENCH_HTTP     base URL of rebuyd (http://127.0.0.1:PORT)
//   BENCH_KEY      an API key of the shop (admin or readonly)
//   BENCH_DB       the database: libpq keyword/value conninfo or a postgres:// URL
//   BENCH_SHOP     shop id
//   BENCH_ROUNDS   rounds (5)
//   BENCH_YEAR     the year asked about; as_of = its last day (2025)
//   BENCH_ONLY     comma-separated question or endpoint names to run (all)
//   BENCH_CHECK    0: skip the comparison of the warm-up answers (1)
// Prints the table on stdout, progress on stderr; exits 0 whatever the
// times (it measures, never asserts), 1 when an endpoint does not answer 200.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pgConfig } from './pg-config.mjs';
import { Reference } from '../exactness/reference.js';

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : process.env[k]);
const BASE = env('BENCH_HTTP');
const KEY = env('BENCH_KEY');
const DB = env('BENCH_DB');
const SHOP = env('BENCH_SHOP');
const ROUNDS = Number(env('BENCH_ROUNDS', '5'));
const YEAR = Number(env('BENCH_YEAR', '2025'));
const ONLY = env('BENCH_ONLY', '').split(',').filter(Boolean);
const CHECK = env('BENCH_CHECK', '1') !== '0';
const SHARED = env('BENCH_SQL', 'full') === 'shared';
if (!['full', 'shared'].includes(env('BENCH_SQL', 'full'))) { console.error('metrics-bench: BENCH_SQL is full or shared'); process.exit(2); }
for (const [k, v] of Object.entries({ BENCH_HTTP: BASE, BENCH_KEY: KEY, BENCH_DB: DB, BENCH_SHOP: SHOP })) {
  if (!v) { console.error(`metrics-bench: ${k} is required`); process.exit(2); }
}
const log = (...a) => console.error(...a);

// ------------------------------------------------------------- questions
const Y = YEAR;
const AS_OF = `${Y}-12-31`;
const YEAR_RANGE = { from: `${Y}-01-01`, to: `${Y}-12-31` };
const QUARTER = { from: `${Y}-07-01`, to: `${Y}-09-30` };
const QUESTIONS = [
  { name: 'repurchase 90 days', endpoint: 'repurchase', method: 'repurchase',
    q: { from: `${Y}-10-03`, to: AS_OF, as_of: AS_OF, window_days: 90 } },
  { name: 'repurchase year by month', endpoint: 'repurchase', method: 'repurchase',
    q: { ...YEAR_RANGE, as_of: AS_OF, window_days: 90, interval: 'month' } },
  { name: 'time-to-second quarter', endpoint: 'time-to-second-purchase', method: 'timeToSecond',
    q: { ...QUARTER, as_of: AS_OF } },
  { name: 'cohorts year monthly', endpoint: 'cohorts', method: 'cohorts',
    q: { ...YEAR_RANGE, as_of: AS_OF, interval: 'month' } },
  { name: 'revenue-mix quarter', endpoint: 'revenue-mix', method: 'revenueMix',
    q: { ...QUARTER, as_of: AS_OF } },
  { name: 'first-order quarter', endpoint: 'first-order', method: 'firstOrder',
    q: { ...QUARTER, as_of: AS_OF, window_days: 90 } },
  { name: 'sales-decomposition year', endpoint: 'sales-decomposition', method: 'salesDecomposition',
    q: { ...YEAR_RANGE, as_of: AS_OF } },
].filter((x) => ONLY.length === 0 || ONLY.includes(x.name) || ONLY.includes(x.endpoint));

const qs = (q) => new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)])).toString();

// ------------------------------------------------------------- endpoint
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One GET; resolves {ms, status, text} (ms: request sent .. last byte of the body). */
function get(path) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get(`${BASE}${path}`, { agent, headers: { Authorization: `Bearer ${KEY}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode,
                                    text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function timeEndpoint(x) {
  const r = await get(`/v1/metrics/${x.endpoint}?${qs(x.q)}`);
  if (r.status !== 200) {
    console.error(`metrics-bench: GET /v1/metrics/${x.endpoint}?${qs(x.q)} answered ${r.status}: ${r.text.slice(0, 400)}`);
    process.exit(1);
  }
  return r;
}

// ------------------------------------------------------------- reference SQL
const db = new pg.Client(pgConfig(DB));
await db.connect();
const shopRow = (await db.query(`SELECT id::text, timezone, currency, settings -> 'repurchase_rule' AS rule
                                   FROM shops WHERE id = $1`, [SHOP])).rows[0];
if (!shopRow) { console.error(`metrics-bench: no shop ${SHOP}`); process.exit(2); }
// the defaults the service applies (migrations/0002_orders.sql)
const rule = {
  exclude_refunded: shopRow.rule?.exclude_refunded ?? true,
  min_order_amount: Number(shopRow.rule?.min_order_amount ?? 0),
  merge_window_hours: Number(shopRow.rule?.merge_window_hours ?? 0),
};
const ref = new Reference(db, { id: shopRow.id, timezone: shopRow.timezone, currency: shopRow.currency }, rule);
for (const x of [...QUESTIONS, { method: 'build', name: 'the derivation' }, { method: 'reset', name: 'dropping it' }]) {
  if (typeof ref[x.method] !== 'function') {
    console.error(`metrics-bench: reference.js has no ${x.method}() for ${x.name}`);
    process.exit(2);
  }
}

/** Drop the reference's derived tables and rebuild them: ms. */
async function derive(asOf) {
  await ref.reset(rule); // not timed
  const t0 = performance.now();
  await ref.build(asOf);
  return performance.now() - t0;
}

/** The reference's queries for question x on the derived tables: {ms, answer}. */
async function ask(x) {
  const t0 = performance.now();
  const answer = await ref[x.method]({ ...x.q });
  return { ms: performance.now() - t0, answer };
}

// ------------------------------------------------------------- sanity check
function strip(x) {
  if (Array.isArray(x)) return x.map(strip);
  if (x && typeof x === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(x)) if (k !== 'description' && k !== 'survival_exact') o[k] = strip(v);
    return o;
  }
  return x;
}
/** Paths where the endpoint's answer a and the reference's e differ (survival within 1e-4 is equal). */
function differences(a, e, p = '', out = []) {
  if (out.length >= 5) return out;
  if (e !== null && typeof e === 'object') {
    if (a === null || typeof a !== 'object') { out.push(p || '/'); return out; }
    if (Array.isArray(e) && a.length !== e.length) out.push(`${p} (length ${a.length} vs ${e.length})`);
    for (const k of new Set([...Object.keys(e), ...Object.keys(a)])) differences(a[k], e[k], `${p}/${k}`, out);
    return out;
  }
  if (p.endsWith('/survival') && typeof a === 'number' && typeof e === 'number' && Math.abs(a - e) < 0.000101) return out;
  if (!Object.is(a, e)) out.push(`${p}: ${JSON.stringify(a)} vs ${JSON.stringify(e)}`);
  return out;
}

// ------------------------------------------------------------- run
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const R = new Map(QUESTIONS.map((x) => [x.name, { ep: [], sql: [], derive: [], queries: [], check: '' }]));

log(`warm-up: every endpoint, then the reference (as_of ${AS_OF})`);
for (const x of QUESTIONS) await timeEndpoint(x);
{
  const d = await derive(AS_OF);
  log(`  reference derivation ${d.toFixed(0)} ms`);
  for (const x of QUESTIONS) {
    const e = await timeEndpoint(x);
    const s = await ask(x);
    log(`  ${x.name}: endpoint ${e.ms.toFixed(1)} ms, reference queries ${s.ms.toFixed(0)} ms`);
    if (CHECK) {
      const diff = differences(strip(JSON.parse(e.text)), strip(s.answer));
      R.get(x.name).check = diff.length ? `DIFFERENT: ${diff.join('; ')}` : 'same answer';
    }
  }
}
for (let round = 1; round <= ROUNDS; round++) {
  const shared = SHARED ? await derive(AS_OF) : null;
  for (const x of QUESTIONS) {
    const r = R.get(x.name);
    r.ep.push((await timeEndpoint(x)).ms);
    const d = SHARED ? shared : await derive(x.q.as_of);
    const s = await ask(x);
    r.sql.push(d + s.ms);
    r.derive.push(d);
    r.queries.push(s.ms);
  }
  log(`round ${round} done`);
}
await ref.reset(rule);
await db.end();
agent.destroy();

const w = Math.max(...QUESTIONS.map((x) => x.name.length)) + 2;
const f = (v, d = 1) => v.toFixed(d);
console.log();
console.log(`${'question'.padEnd(w)}${'endpoint_p50_ms'.padStart(16)}${'sql_p50_ms'.padStart(13)}${'ratio'.padStart(9)}`
  + `   | sql = ${'derivation'.padStart(10)} + ${'queries'.padStart(8)}`);
for (const x of QUESTIONS) {
  const r = R.get(x.name);
  const e = med(r.ep);
  const s = med(r.sql);
  console.log(`${x.name.padEnd(w)}${f(e).padStart(16)}${f(s, 0).padStart(13)}${f(s / e, 0).padStart(9)}`
    + `   |       ${f(med(r.derive), 0).padStart(10)} + ${f(med(r.queries), 0).padStart(8)}`);
}
console.log(`(median of ${ROUNDS} rounds each, ms; ratio = sql / endpoint; derivation: the reference's temp tables`
  + ' from orders/order_lines, queries: its metric queries on them)');
console.log();
console.log('per round, ms (endpoint | sql):');
for (const x of QUESTIONS) {
  const r = R.get(x.name);
  console.log(`  ${x.name.padEnd(w)}${r.ep.map((v) => f(v)).join(' ')} | ${r.sql.map((v) => f(v, 0)).join(' ')}`);
}
if (CHECK) {
  console.log('endpoint vs reference answers (warm-up pass):');
  for (const x of QUESTIONS) console.log(`  ${x.name.padEnd(w)}${R.get(x.name).check}`);
}
console.log(`sql: reference.js, ${SHARED ? 'derivation timed once per round (BENCH_SQL=shared)' : 'from the raw tables for every question'}`);
console.log('questions:');
for (const x of QUESTIONS) console.log(`  ${x.name.padEnd(w)}GET /v1/metrics/${x.endpoint}?${qs(x.q)}`);
