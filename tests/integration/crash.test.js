// Crash safety: a 10k-order ingest by a client that retries until it gets an
// answer, while rebuyd is killed with SIGKILL (at least 10 times) and started
// again on the same port and database. At the end every acknowledged order
// exists exactly once, with its lines, total, refund and cancellation, and
// `rebuyd verify` reports 0 differences.
//
// Knobs (environment): REBUY_CRASH_SEED (PRNG seed, printed), REBUY_CRASH_ORDERS
// (default 10000), REBUY_CRASH_CONCURRENCY (client loops, default 8; 6 for an
// ASan build), REBUY_CRASH_KILLS (SIGKILLs spread over the ingest, default 16, at least 10).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import {
  REBUY_BIN, startService, api, createShop, assertNoSanitizerReport, tsMicros, sleep,
} from '../lib/harness.js';
import { mulberry32 } from '../lib/random.js';

const IS_ASAN = /asan|sanitiz/i.test(REBUY_BIN);
const SEED = Number(process.env.REBUY_CRASH_SEED ?? (Date.now() % 0x7fffffff));
const N_ORDERS = Number(process.env.REBUY_CRASH_ORDERS ?? 10000);
const N_CUSTOMERS = Math.max(1, Math.round(N_ORDERS / 5));
const CONCURRENCY = Number(process.env.REBUY_CRASH_CONCURRENCY ?? (IS_ASAN ? 6 : 8));
const MIN_KILLS = 10;
const KILLS = Math.max(MIN_KILLS, Number(process.env.REBUY_CRASH_KILLS ?? 16));
const WORKERS = 4;
const INGEST_DEADLINE_MS = 200_000;
const REQUEST_TIMEOUT_MS = 60_000; // a live service never takes this long; a killed one resets the socket
const START_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------
// Deterministic data

const CATALOG = [
  { sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular' },
  { sku: 'TEA-LJ-50', name: 'Longjing sample 50 g', category: 'tea', role: 'traffic' },
  { sku: 'TEA-PU-357', name: 'Pu-erh cake 357 g', category: 'tea', role: 'regular' },
  { sku: 'TEA-OOL-100', category: 'tea', role: 'regular' },
  { sku: 'TEA-JAS-100', name: 'Jasmine pearls', category: 'tea', role: 'activity' },
  { sku: 'CUP-GLASS-200', name: 'Glass cup 200 ml', category: 'teaware', role: 'activity' },
  { sku: 'POT-YX-300', name: 'Yixing pot', category: 'teaware', role: 'regular' },
  { sku: 'GAIWAN-W', category: 'teaware', role: 'regular' },
  { sku: 'SNK-MOON-4', name: 'Mooncakes x4', category: 'snacks', role: 'activity' },
  { sku: 'SNK-NUT-200', name: 'Nuts 200 g', category: 'snacks', role: 'traffic' },
  { sku: 'GIFT-BOX-L', name: 'Gift box large', category: 'gift', role: 'regular' },
  { sku: 'GIFT-CARD-100', category: 'gift', role: 'activity' },
];
const CHANNELS = ['web', 'tmall', 'douyin', 'store-12', 'wechat.mini'];
const OFFSETS = ['+08:00', 'Z', '+00:00', '-05:00', '+05:30'];
const YEAR_START = Date.parse('2025-01-01T00:00:00Z');
const YEAR_SECONDS = 365 * 24 * 3600;

function fmtPlacedAt(ms, offset) {
  const offMin = offset === 'Z' ? 0 : (offset[0] === '-' ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const local = new Date(ms + offMin * 60_000).toISOString().slice(0, 19); // wall clock at that offset
  return `${local}${offset}`;
}

/** The orders to send, with what the client expects afterwards (refund, cancel). */
function generate(seed) {
  const rnd = mulberry32(seed);
  const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const orders = [];
  for (let i = 0; i < N_ORDERS; i++) {
    // a skewed customer distribution: some customers buy often
    const cust = rnd() < 0.3 ? int(0, Math.max(0, Math.floor(N_CUSTOMERS / 10) - 1)) : int(0, N_CUSTOMERS - 1);
    const nLines = int(1, 3);
    const lines = [];
    let sub = 0;
    for (let j = 0; j < nLines; j++) {
      const p = pick(CATALOG);
      const quantity = int(1, 5);
      const unitPrice = int(1, 500) * 100;
      const l = { sku: p.sku, category: p.category, role: p.role, quantity, unit_price: unitPrice };
      if (p.name) l.name = p.name;
      const r = rnd();
      if (r < 0.2) l.discount = int(0, Math.floor(quantity * unitPrice / 4));
      else if (r < 0.3) l.discount = 0; // explicit default
      sub += quantity * unitPrice - (l.discount ?? 0);
      lines.push(l);
    }
    const body = {
      customer_id: `cc-${String(cust).padStart(5, '0')}`,
      placed_at: fmtPlacedAt(YEAR_START + int(0, YEAR_SECONDS - 1) * 1000, pick(OFFSETS)),
      channel: pick(CHANNELS),
      currency: 'CNY',
      lines,
    };
    if (rnd() < 0.6) body.shipping = pick([0, 800, 1000, 1500]);
    if (rnd() < 0.3) body.discount = int(0, Math.min(3000, sub - 1)); // total stays >= 1
    body.total = sub + (body.shipping ?? 0) - (body.discount ?? 0);
    const id = `co-${String(i).padStart(6, '0')}`;
    const o = { id, body, refund: null, cancel: false };
    const r = rnd();
    if (r < 0.05) {
      // a full refund now and then (the order stops qualifying)
      const amount = rnd() < 0.3 ? body.total : int(1, body.total);
      o.refund = { id: `rf-${id}`, amount, ...(rnd() < 0.5 ? { reason: 'damaged in transit' } : {}) };
    } else if (r < 0.07) {
      o.cancel = true;
    }
    orders.push(o);
  }
  return orders;
}

// ---------------------------------------------------------------------------
// A plain HTTP client: own agent, every failure visible, nothing hidden

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'ERR_STREAM_DESTROYED']);

function httpRequest(port, method, path, { key, body, timeoutMs = REQUEST_TIMEOUT_MS, agentOverride } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body), 'utf8');
    const headers = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: agentOverride ?? agent }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        if (/json/.test(res.headers['content-type'] || '') && text) {
          try { json = JSON.parse(text); } catch { /* reported by the caller */ }
        }
        resolve({ status: res.statusCode, headers: res.headers, text, body: json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

// ---------------------------------------------------------------------------
// rebuyd processes on a fixed port and database (the harness starts the first)

const procs = []; // every rebuyd we started here: {proc, stderr, exit, exited, killedByUs}
process.on('exit', () => {
  for (const p of procs) if (!p.exit) { try { p.proc.kill('SIGKILL'); } catch { /* gone */ } }
});

async function healthy(port) {
  try {
    const r = await httpRequest(port, 'GET', '/healthz', { timeoutMs: 1000, agentOverride: false });
    return r.status === 200;
  } catch {
    return false;
  }
}

async function launch(svc) {
  const args = ['serve', '--listen', `127.0.0.1:${svc.port}`, '--database-url', svc.databaseUrl, '--workers', String(WORKERS)];
  const proc = spawn(REBUY_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  const p = { proc, stderr: '', exit: null, killedByUs: false, startedAt: Date.now() };
  p.exited = new Promise((resolve) => {
    proc.on('close', (code, signal) => { p.exit = { code, signal }; resolve(p.exit); });
    proc.on('error', (e) => { p.stderr += `\n[test] spawn error: ${e.message}\n`; if (proc.pid === undefined) { p.exit = { code: -1, signal: null }; resolve(p.exit); } });
  });
  proc.stderr.setEncoding('utf8').on('data', (d) => { p.stderr += d; });
  procs.push(p);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (p.exit) {
      throw new Error(`restarted rebuyd (#${procs.length}) exited during startup ${JSON.stringify(p.exit)} on port ${svc.port}; stderr:\n${p.stderr.slice(-3000)}`);
    }
    if (await healthy(svc.port)) return p;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await p.exited;
      throw new Error(`restarted rebuyd did not answer /healthz within ${START_TIMEOUT_MS} ms; stderr:\n${p.stderr.slice(-3000)}`);
    }
    await sleep(25);
  }
}

// ---------------------------------------------------------------------------

let svc;
let shop;
let originalKilled = false;
let current = null; // the rebuyd process we started last

before(async () => {
  svc = await startService({ workers: WORKERS, startTimeoutMs: START_TIMEOUT_MS });
  shop = await createShop(svc, { name: 'Crash Tea House', currency: 'CNY', timezone: 'Asia/Shanghai' });
});

after(async () => {
  // leave nothing running; the harness drops the database
  agent.destroy();
  for (const p of procs) if (!p.exit) { p.proc.kill('SIGKILL'); await p.exited; }
  if (svc) await svc.stop(originalKilled ? { signal: null, expectCode: null } : {}).catch(() => {});
});

describe('crash safety: SIGKILL during ingest', () => {
  test(`${N_ORDERS} orders with retries survive >= ${MIN_KILLS} SIGKILLs`, { timeout: 300_000 }, async (t) => {
    const t0 = Date.now();
    const orders = generate(SEED);
    const msg = `crash test: seed ${SEED} (REBUY_CRASH_SEED), ${N_ORDERS} orders, ${N_CUSTOMERS} customers, ` +
      `${CONCURRENCY} client loops, ${IS_ASAN ? 'ASan' : 'plain'} build`;
    console.log(msg);
    t.diagnostic(msg);

    const key = shop.adminKey;
    const port = svc.port;
    const anomalies = []; // answers the contract does not allow here
    const stats = { requests: 0, netErrors: 0, errCodes: {}, s503: 0, ack201: 0, ack200: 0, refunds201: 0, refunds200: 0, cancels: 0, timeouts: 0 };
    const acked = new Map(); // order id -> status of the acknowledgement
    let ingestDone = false;
    const kills = []; // {atMs, acked, duringIngest}
    let restarting = false;
    let liveExit = () => null; // exit status of the rebuyd that should be serving, if it died
    let liveStderr = () => '';
    const unexpectedExits = [];
    let ingestFailed = null;

    const orderPath = (id) => `/v1/orders/${encodeURIComponent(id)}`;

    /**
     * Sends until an acknowledgement (one of okStatuses) arrives. Network
     * errors and 503 are retried with the same request; other answers are
     * anomalies (5xx retried a few times, 4xx give up).
     * Returns {res, attempts, priorFailure} or null when given up.
     */
    async function sendUntilAnswered(method, path, body, okStatuses, what) {
      let attempts = 0;
      let priorFailure = false; // an earlier attempt may have reached the service
      let s5xx = 0;
      for (;;) {
        if (ingestFailed) throw new Error(`${what}: abandoned, the ingest failed elsewhere`);
        if (Date.now() - t0 > INGEST_DEADLINE_MS) throw new Error(`ingest deadline (${INGEST_DEADLINE_MS} ms) passed while sending ${what}; ${acked.size} acknowledged, ${kills.length} kills`);
        attempts += 1;
        stats.requests += 1;
        let res;
        try {
          res = await httpRequest(port, method, path, { key, body });
        } catch (e) {
          const code = e.code || e.name;
          stats.errCodes[code] = (stats.errCodes[code] || 0) + 1;
          if (code === 'CLIENT_TIMEOUT') {
            stats.timeouts += 1;
            anomalies.push({ what, attempt: attempts, error: `${code}: ${e.message} (rebuyd alive: ${current && !current.exit})` });
          } else if (!RETRYABLE.has(code)) {
            throw new Error(`${what}: unexpected client error ${code}: ${e.message}`);
          }
          stats.netErrors += 1;
          priorFailure = true;
          const dead = liveExit();
          if (dead) throw new Error(`${what}: rebuyd died without being killed (${JSON.stringify(dead)}); stderr tail:\n${liveStderr().slice(-3000)}`);
          await sleep(code === 'ECONNREFUSED' ? 50 : 10);
          continue;
        }
        if (okStatuses.includes(res.status)) return { res, attempts, priorFailure };
        if (res.status === 503 && res.body?.code === 'database_unavailable') {
          stats.s503 += 1;
          priorFailure = true;
          await sleep(100);
          continue;
        }
        anomalies.push({ what, attempt: attempts, priorFailure, status: res.status, body: res.text.slice(0, 500) });
        if (res.status >= 500 && ++s5xx < 10) {
          priorFailure = true;
          await sleep(100);
          continue;
        }
        return null;
      }
    }

    async function ingestOne(o) {
      const r = await sendUntilAnswered('PUT', orderPath(o.id), o.body, [200, 201], `PUT ${o.id}`);
      if (!r) return;
      const { res, priorFailure } = r;
      if (res.status === 200) {
        stats.ack200 += 1;
        // 200 means "already stored": only possible when an earlier attempt committed
        if (!priorFailure) anomalies.push({ what: `PUT ${o.id}`, status: 200, body: 'acknowledged with 200 (existing order) on the first attempt' });
      } else {
        stats.ack201 += 1;
      }
      if (!res.body || res.body.id !== o.id || res.body.total !== o.body.total || res.body.lines?.length !== o.body.lines.length) {
        anomalies.push({ what: `PUT ${o.id}`, status: res.status, body: `acknowledgement does not describe the order sent: ${res.text.slice(0, 500)}` });
      }
      acked.set(o.id, res.status);
      if (o.refund) {
        const rr = await sendUntilAnswered('POST', `${orderPath(o.id)}/refunds`, o.refund, [200, 201], `refund ${o.refund.id}`);
        if (rr) {
          if (rr.res.status === 201) stats.refunds201 += 1; else stats.refunds200 += 1;
          if (rr.res.status === 200 && !rr.priorFailure) anomalies.push({ what: `refund ${o.refund.id}`, status: 200, body: 'refund acknowledged as a replay on the first attempt' });
          if (rr.res.body?.order?.refunded_amount !== o.refund.amount) {
            anomalies.push({ what: `refund ${o.refund.id}`, status: rr.res.status, body: `refunded_amount ${rr.res.body?.order?.refunded_amount}, expected ${o.refund.amount}` });
          }
          o.refundAcked = true;
        }
      }
      if (o.cancel) {
        const rc = await sendUntilAnswered('POST', `${orderPath(o.id)}/cancel`, undefined, [200], `cancel ${o.id}`);
        if (rc) {
          stats.cancels += 1;
          if (rc.res.body?.status !== 'cancelled') anomalies.push({ what: `cancel ${o.id}`, status: rc.res.status, body: rc.res.text.slice(0, 300) });
          o.cancelAcked = true;
        }
      }
    }

    let next = 0;
    let reported = 0;
    async function clientLoop() {
      while (!ingestFailed) {
        const i = next++;
        if (i >= orders.length) return;
        await ingestOne(orders[i]);
        if (acked.size >= reported + 2000) {
          reported = acked.size - (acked.size % 2000);
          console.log(`  ${acked.size} orders acknowledged after ${((Date.now() - t0) / 1000).toFixed(1)} s, ${kills.length} kills`);
        }
      }
    }

    // the killer: SIGKILL at a random moment 200–800 ms after the service came up, start again
    const killRnd = mulberry32(SEED ^ 0x5eed);
    // Kills are spread over the ingest: kill i waits until i/(KILLS+1) of the
    // orders are acknowledged, then a random 200–800 ms more after the
    // service came up, so every stretch of the ingest sees crashes.
    async function killer() {
      let p = { proc: svc.proc, original: true };
      const exitOf = (q) => (q.original ? svc.exited() : q.exit);
      const nameOf = (q) => (q.original ? 'first rebuyd' : `restarted rebuyd #${procs.indexOf(q) + 1}`);
      liveExit = () => (restarting ? null : exitOf(p));
      liveStderr = () => (p.original ? svc.logs() : p.stderr);
      while (kills.length < KILLS && !ingestDone) {
        const threshold = Math.floor(((kills.length + 1) * N_ORDERS) / (KILLS + 1));
        while (acked.size < threshold && !ingestDone && !ingestFailed) await sleep(20);
        await sleep(200 + Math.floor(killRnd() * 600));
        if (ingestFailed || ingestDone) return;
        if (exitOf(p)) unexpectedExits.push({ process: nameOf(p), exit: exitOf(p), stderr: liveStderr().slice(-3000) });
        restarting = true;
        if (p.original) originalKilled = true;
        p.proc.kill('SIGKILL');
        const info = await (p.original ? svc.waitExit(30_000) : p.exited);
        if (info.signal !== 'SIGKILL') unexpectedExits.push({ process: nameOf(p), exit: info });
        kills.push({ atMs: Date.now() - t0, acked: acked.size, duringIngest: !ingestDone });
        p = await launch(svc);
        current = p;
        restarting = false;
      }
    }

    const killerDone = killer().catch((e) => { ingestFailed = e; throw e; });
    const loops = Array.from({ length: CONCURRENCY }, () => clientLoop().catch((e) => { ingestFailed = e; throw e; }));
    const loopResults = await Promise.allSettled(loops);
    ingestDone = true;
    const ingestMs = Date.now() - t0;
    const killerResult = await Promise.allSettled([killerDone]);
    for (const r of [...loopResults, ...killerResult]) if (r.status === 'rejected') throw r.reason;
    agent.destroy();

    const summary = `ingest: ${(ingestMs / 1000).toFixed(1)} s; kills: ${kills.length} (${kills.filter((k) => k.duringIngest).length} during ingest); ` +
      `requests ${stats.requests}, network errors ${stats.netErrors} ${JSON.stringify(stats.errCodes)}, 503s ${stats.s503}, ` +
      `acks 201/200: ${stats.ack201}/${stats.ack200}, refunds 201/200: ${stats.refunds201}/${stats.refunds200}, cancels ${stats.cancels}`;
    t.diagnostic(summary);

    // ---- the process side: only our SIGKILLs ended rebuyd; the last one stops cleanly
    assert.ok(current && !current.exit, 'the last restarted rebuyd is running');
    assert.deepEqual(unexpectedExits, [], 'rebuyd processes ended other than by our SIGKILL');
    for (const [i, p] of procs.entries()) assertNoSanitizerReport(p.stderr, `restarted rebuyd #${i + 1}`);
    assertNoSanitizerReport(svc.logs(), 'first rebuyd');
    assert.ok(kills.filter((k) => k.duringIngest).length >= MIN_KILLS,
      `at least ${MIN_KILLS} SIGKILLs during the ingest, got ${JSON.stringify(kills)}`);

    // ---- the client side: every order acknowledged, no answer outside the contract
    assert.deepEqual(anomalies.slice(0, 20), [], `answers outside the contract (${anomalies.length} in all)`);
    assert.equal(acked.size, N_ORDERS, 'every order acknowledged');
    for (const o of orders) {
      if (o.refund) assert.ok(o.refundAcked, `refund of ${o.id} acknowledged`);
      if (o.cancel) assert.ok(o.cancelAcked, `cancel of ${o.id} acknowledged`);
    }

    // ---- the database: exactly the acknowledged orders, once each, as sent
    const db = svc.db;
    const shopId = shop.shopId;
    const dup = await db.query('SELECT id, count(*)::int AS n FROM orders WHERE shop_id = $1 GROUP BY id HAVING count(*) > 1 LIMIT 10', [shopId]);
    assert.deepEqual(dup.rows, [], 'no order stored twice');
    const rows = (await db.query(`
      SELECT o.id, c.id AS customer_id, o.channel, o.currency, o.shipping::text, o.discount::text, o.total::text,
             o.status, o.refunded_amount::text, to_char(o.placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS placed_at,
             (SELECT coalesce(json_agg(json_build_array(l.line_no, l.sku, l.name, l.category, l.role, l.quantity, l.unit_price, l.discount)
                      ORDER BY l.line_no), '[]') FROM order_lines l WHERE l.order_seq = o.seq) AS lines,
             (SELECT coalesce(json_agg(json_build_array(r.id, r.amount, r.reason)), '[]') FROM refunds r WHERE r.order_seq = o.seq) AS refunds
        FROM orders o JOIN customers c ON c.seq = o.customer_seq
       WHERE o.shop_id = $1`, [shopId])).rows;
    assert.equal(rows.length, N_ORDERS, `exactly ${N_ORDERS} orders stored for the shop`);
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.equal(byId.size, N_ORDERS, 'order ids are unique');
    let checked = 0;
    for (const o of orders) {
      const r = byId.get(o.id);
      assert.ok(r, `acknowledged order ${o.id} is stored`);
      const b = o.body;
      const where = `order ${o.id} (sent ${JSON.stringify(o)})`;
      assert.equal(r.customer_id, b.customer_id, `${where}: customer`);
      assert.equal(tsMicros(r.placed_at), tsMicros(b.placed_at), `${where}: placed_at`);
      assert.equal(r.channel, b.channel, `${where}: channel`);
      assert.equal(r.currency, 'CNY', `${where}: currency`);
      assert.equal(Number(r.total), b.total, `${where}: total`);
      assert.equal(Number(r.shipping), b.shipping ?? 0, `${where}: shipping`);
      assert.equal(Number(r.discount), b.discount ?? 0, `${where}: discount`);
      assert.equal(r.lines.length, b.lines.length, `${where}: number of lines`);
      assert.deepEqual(r.lines, b.lines.map((l, j) => [j + 1, l.sku, l.name ?? null, l.category, l.role, l.quantity, l.unit_price, l.discount ?? 0]),
        `${where}: lines`);
      assert.deepEqual(r.refunds, o.refund ? [[o.refund.id, o.refund.amount, o.refund.reason ?? null]] : [], `${where}: refunds (exactly once)`);
      assert.equal(Number(r.refunded_amount), o.refund?.amount ?? 0, `${where}: refunded_amount`);
      assert.equal(r.status, o.cancel ? 'cancelled' : 'placed', `${where}: status`);
      checked += 1;
    }
    assert.equal(checked, N_ORDERS);

    // customers: one per distinct customer id, none duplicated by concurrent bare-customer creation
    const expectedCustomers = new Set(orders.map((o) => o.body.customer_id));
    const cust = (await db.query('SELECT id, count(*)::int AS n FROM customers WHERE shop_id = $1 GROUP BY id', [shopId])).rows;
    assert.deepEqual(cust.filter((c) => c.n !== 1), [], 'no customer stored twice');
    assert.deepEqual(cust.map((c) => c.id).sort(), [...expectedCustomers].sort(), 'exactly the customers the orders named');

    // facts under the default rule (exclude_refunded, min 0, window 0): every
    // qualifying order is its own occasion; computed here from what was sent
    const expectFacts = new Map();
    for (const o of orders) {
      const refunded = o.refund?.amount ?? 0;
      if (o.cancel || refunded >= o.body.total) continue;
      const f = expectFacts.get(o.body.customer_id) ?? { order_count: 0, total_spent: 0, first: null, last: null };
      const us = tsMicros(o.body.placed_at);
      f.order_count += 1;
      f.total_spent += o.body.total - refunded;
      if (f.first === null || us < f.first) f.first = us;
      if (f.last === null || us > f.last) f.last = us;
      expectFacts.set(o.body.customer_id, f);
    }
    const facts = (await db.query(`
      SELECT c.id, coalesce(f.order_count, 0) AS order_count, coalesce(f.total_spent, 0)::text AS total_spent,
             to_char(f.first_order_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_order_at,
             to_char(f.last_order_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_order_at
        FROM customers c LEFT JOIN customer_facts f ON f.customer_seq = c.seq
       WHERE c.shop_id = $1`, [shopId])).rows;
    for (const f of facts) {
      const e = expectFacts.get(f.id) ?? { order_count: 0, total_spent: 0, first: null, last: null };
      const got = {
        order_count: f.order_count, total_spent: Number(f.total_spent),
        first: f.first_order_at ? tsMicros(f.first_order_at) : null, last: f.last_order_at ? tsMicros(f.last_order_at) : null,
      };
      assert.deepEqual(got, e, `facts of customer ${f.id}`);
    }

    // ---- rebuyd verify: stored facts equal a full recomputation
    const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
    assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
    assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
    const vs = await svc.cli(['verify', '--shop', shopId], { timeoutMs: 120_000 });
    assert.equal(vs.code, 0, `rebuyd verify --shop exit status; stdout:\n${vs.stdout.slice(-3000)}\nstderr:\n${vs.stderr.slice(-3000)}`);
    assert.match(vs.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify --shop output:\n${vs.stdout.slice(-3000)}`);

    // ---- the API after all that: a sample of orders reads back as sent (contract-validated)
    const c = api(svc);
    const sampleRnd = mulberry32(SEED ^ 0xabc);
    const sample = new Set([orders[0], orders[orders.length - 1], ...orders.filter((o) => o.refund).slice(0, 3), ...orders.filter((o) => o.cancel).slice(0, 3)]);
    while (sample.size < 30) sample.add(orders[Math.floor(sampleRnd() * orders.length)]);
    for (const o of sample) {
      const g = await c.get(orderPath(o.id), { key });
      assert.equal(g.status, 200, `GET ${o.id}: ${g.text}`);
      const b = o.body;
      const got = g.body;
      assert.equal(got.id, o.id);
      assert.equal(got.customer_id, b.customer_id, `GET ${o.id}: customer_id`);
      assert.equal(tsMicros(got.placed_at), tsMicros(b.placed_at), `GET ${o.id}: placed_at`);
      assert.equal(got.channel, b.channel);
      assert.equal(got.currency, 'CNY');
      assert.deepEqual(got.lines, b.lines.map((l) => ({
        sku: l.sku, name: l.name ?? null, category: l.category, role: l.role, quantity: l.quantity,
        unit_price: l.unit_price, discount: l.discount ?? 0, line_total: l.quantity * l.unit_price - (l.discount ?? 0),
      })), `GET ${o.id}: lines`);
      assert.equal(got.shipping, b.shipping ?? 0);
      assert.equal(got.discount, b.discount ?? 0);
      assert.equal(got.total, b.total);
      assert.equal(got.status, o.cancel ? 'cancelled' : 'placed', `GET ${o.id}: status`);
      assert.equal(got.refunded_amount, o.refund?.amount ?? 0, `GET ${o.id}: refunded_amount`);
      assert.deepEqual(got.refunds.map((r) => [r.id, r.amount, r.reason]), o.refund ? [[o.refund.id, o.refund.amount, o.refund.reason ?? null]] : [],
        `GET ${o.id}: refunds`);
      assert.equal(got.qualifying, !o.cancel && (o.refund?.amount ?? 0) < b.total, `GET ${o.id}: qualifying`);
      // a resend after everything is still an equivalent no-op
      if (o === orders[0]) {
        const again = await c.put(orderPath(o.id), b, { key });
        assert.equal(again.status, 200, `resend of ${o.id}: ${again.text}`);
      }
    }
    // a customer's facts through the API
    const busiest = [...expectFacts.entries()].sort((a, b2) => b2[1].order_count - a[1].order_count)[0];
    const gc = await c.get(`/v1/customers/${busiest[0]}`, { key });
    assert.equal(gc.status, 200, gc.text);
    assert.equal(gc.body.facts.order_count, busiest[1].order_count, `facts.order_count of ${busiest[0]}`);
    assert.equal(gc.body.facts.total_spent, busiest[1].total_spent, `facts.total_spent of ${busiest[0]}`);

    // ---- the last process stops cleanly on SIGTERM
    current.proc.kill('SIGTERM');
    let timer;
    const info = await Promise.race([current.exited,
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`last rebuyd did not exit within 45 s of SIGTERM; stderr:\n${current.stderr.slice(-3000)}`)), 45_000); })])
      .finally(() => clearTimeout(timer));
    assertNoSanitizerReport(current.stderr, 'last rebuyd');
    assert.deepEqual(info, { code: 0, signal: null }, `last rebuyd exit status after SIGTERM; stderr tail:\n${current.stderr.slice(-3000)}`);

    const total = `crash test done in ${((Date.now() - t0) / 1000).toFixed(1)} s (seed ${SEED}, ${kills.length} kills, ${procs.length} restarts)`;
    t.diagnostic(total);
  });
});
