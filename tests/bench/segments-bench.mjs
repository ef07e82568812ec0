// The measuring half of tests/bench/segments.sh (read its header).
// Environment: BENCH_HTTP, BENCH_KEY (admin), BENCH_DB (conninfo), BENCH_SHOP,
// BENCH_PID (rebuyd's pid, for its peak RSS), BENCH_ROUNDS (5).
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pgConfig } from './pg-config.mjs';

const { BENCH_HTTP, BENCH_KEY, BENCH_DB, BENCH_SHOP, BENCH_PID } = process.env;
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);
const BUILT_INS = ['second-purchase-window', 'due-for-repurchase', 'lapsing', 'lapsed', 'vip'];

/** One request; resolves { status, bytes, lines, ms } reading the body as it streams. */
function request(method, path, { accept = 'application/json', body } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(`${BENCH_HTTP}${path}`, {
      method,
      headers: { authorization: `Bearer ${BENCH_KEY}`, accept, ...(body ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      let bytes = 0; let lines = 0; let firstMs = null; const chunks = [];
      res.on('data', (c) => {
        if (firstMs === null) firstMs = performance.now() - t0;
        bytes += c.length;
        for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
        if (accept === 'application/json') chunks.push(c);
      });
      res.on('end', () => resolve({
        status: res.statusCode, bytes, lines, firstMs, ms: performance.now() - t0,
        json: accept === 'application/json' && chunks.length ? JSON.parse(Buffer.concat(chunks)) : null,
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

/** psql's COPY of sql to /dev/null: ms. */
function copy(sql) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('psql', ['-qAtX', '-d', BENCH_DB, '-c', `COPY (${sql}) TO STDOUT`], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`psql exit ${code}`))));
  });
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[(s.length - 1) >> 1]; };
const must = (r, what) => { if (r.status !== 200 && r.status !== 201) { console.error(`${what}: HTTP ${r.status}`); process.exit(1); } return r; };

const db = new pg.Client(pgConfig(BENCH_DB));
await db.connect();
await db.query('SET jit TO off');

// the straightforward RFM: rank everyone three times (quintiles, the default map's cells)
const RFM_SQL = `
WITH p AS (SELECT (now() AT TIME ZONE timezone)::date AS today, timezone AS tz FROM shops WHERE id = $1),
 v AS (SELECT p.today - (f.last_order_at AT TIME ZONE p.tz)::date AS rec, f.order_count AS frq, f.total_spent AS mon
   FROM p, customer_facts f JOIN customers c ON c.seq = f.customer_seq WHERE f.shop_id = $1 AND c.erased_at IS NULL),
 w AS (SELECT v.*, count(*) OVER () AS n, rank() OVER (ORDER BY rec DESC) - 1 AS wr,
   rank() OVER (ORDER BY frq) - 1 AS wf, rank() OVER (ORDER BY mon) - 1 AS wm FROM v),
 s AS (SELECT rec, frq, mon, 1 + 5 * wr / n AS r, 1 + 5 * wf / n AS f, 1 + 5 * wm / n AS m FROM w)
SELECT r, f, count(*), sum(mon), avg(rec), avg(frq), avg(mon) FROM s GROUP BY r, f`;
const EXPORT_SQL = `SELECT c.id, c.name, c.email, c.phone, c.tags, c.consent_email, c.consent_sms, c.consent_wechat,
  f.order_count, f.first_order_at, f.last_order_at, f.total_spent
  FROM customer_facts f JOIN customers c ON c.seq = f.customer_seq
  WHERE f.shop_id = '${BENCH_SHOP}' AND c.erased_at IS NULL ORDER BY c.seq`;

must(await request('PUT', '/v1/segments/bench-everyone', {
  body: { name: 'Everyone (benchmark)', filter: { field: 'order_count', op: 'gte', value: 1 } },
}), 'PUT /v1/segments/bench-everyone');

// The same rows precomputed: a table holding just them, in export order.  psql's
// COPY of it is the most PostgreSQL could stream if an export read a stored
// copy of its rows (no join, no filter): the ceiling of any precomputed form.
await db.query('DROP TABLE IF EXISTS bench_flat');
await db.query(`CREATE TABLE bench_flat AS ${EXPORT_SQL}`);
await db.query('VACUUM ANALYZE bench_flat');
// (a reused database may not have pg_prewarm: the function is looked up before any WHERE)
if ((await db.query("SELECT FROM pg_extension WHERE extname = 'pg_prewarm'")).rowCount) {
  await db.query("SELECT pg_prewarm('bench_flat')");
}

// warm-up: every path once
const sizes = must(await request('GET', '/v1/segments'), 'GET /v1/segments').json.items;
await request('GET', '/v1/rfm/summary');
await db.query(RFM_SQL, [BENCH_SHOP]);

const t = {}; const add = (k, v) => (t[k] ||= []).push(v);
let exportRows = 0;
for (let round = 0; round < ROUNDS; round++) {
  add('rfm summary', must(await request('GET', '/v1/rfm/summary'), 'rfm summary').ms);
  let t0 = performance.now(); await db.query(RFM_SQL, [BENCH_SHOP]); add('rfm SQL', performance.now() - t0);
  for (const code of [...BUILT_INS, 'bench-everyone']) {
    add(`page ${code}`, must(await request('GET', `/v1/segments/${code}/customers?limit=50`), code).ms);
  }
  add('all sizes', must(await request('GET', '/v1/segments'), 'GET /v1/segments').ms);
  for (const [fmt, accept] of [['csv', 'text/csv'], ['ndjson', 'application/x-ndjson']]) {
    const r = must(await request('GET', '/v1/segments/bench-everyone/customers', { accept }), `export ${fmt}`);
    exportRows = fmt === 'csv' ? r.lines - 1 : r.lines;
    add(`export ${fmt}`, r.ms); add(`export ${fmt} first byte`, r.firstMs);
    add(`export ${fmt} MB`, r.bytes / 1e6);
  }
  add('COPY', await copy(EXPORT_SQL));
  add('COPY precomputed', await copy('SELECT * FROM bench_flat'));
}
await db.query('DROP TABLE bench_flat');
await db.end();
const hwm = BENCH_PID ? (readFileSync(`/proc/${BENCH_PID}/status`, 'utf8').match(/VmHWM:\s+(\d+)/) || [])[1] : null;

const m = (k) => median(t[k]);
console.log(`\nsegment sizes: ${sizes.map((s) => `${s.code} ${s.size}`).join(', ')}`);
console.log(`\n${'question'.padEnd(34)}${'p50 ms'.padStart(10)}  (all rounds)`);
for (const k of Object.keys(t).filter((k) => !/MB|first byte/.test(k))) {
  console.log(`${k.padEnd(34)}${m(k).toFixed(0).padStart(10)}  (${t[k].map((x) => x.toFixed(0)).join(', ')})`);
}
console.log(`\nRFM summary: ${m('rfm summary').toFixed(0)} ms (target < 1000); the ranking SQL ${m('rfm SQL').toFixed(0)} ms, ratio ${(m('rfm SQL') / m('rfm summary')).toFixed(1)}x`);
const worst = Math.max(...[...BUILT_INS, 'bench-everyone'].map((c) => m(`page ${c}`)));
console.log(`first pages: slowest ${worst.toFixed(0)} ms (target < 100)`);
for (const fmt of ['csv', 'ndjson']) {
  console.log(`export ${fmt}: ${exportRows} rows, ${m(`export ${fmt} MB`).toFixed(0)} MB in ${m(`export ${fmt}`).toFixed(0)} ms = ${(exportRows / m(`export ${fmt}`) * 1000).toFixed(0)} rows/s (target >= 1000000); first byte after ${m(`export ${fmt} first byte`).toFixed(0)} ms`);
}
console.log(`psql COPY of the plain columns: ${(exportRows / m('COPY') * 1000).toFixed(0)} rows/s (${m('COPY').toFixed(0)} ms)`);
console.log(`psql COPY of the same rows precomputed in one table: ${(exportRows / m('COPY precomputed') * 1000).toFixed(0)} rows/s (${m('COPY precomputed').toFixed(0)} ms)`);
if (hwm) console.log(`rebuyd peak RSS (VmHWM): ${(hwm / 1024).toFixed(1)} MB (target < 64)`);
