// Exactness: every metric of the API (metrics.md, metrics2.md) equals, to
// the unit, a straightforward recomputation in SQL over the raw tables
// (reference.js) on a generated shop of 100k orders (tests/bench/gen-orders.mjs,
// imported with `rebuyd import orders`), made interesting through the API:
// cancellations, full and partial refunds, erased customers, extra orders
// that probe the merge window, ties on placed_at and local-midnight
// boundaries, and a traffic feed with gaps and re-posts.
//
// Three repurchase rules, each followed by the same parameter sets (periods,
// as_of cut-offs, window_days, channel and category filters, week and month
// series, cohort periods, the defaults):
//   1. a 24 h merge window and a minimum amount, set while the shop is empty
//      (the import computes the facts under it);
//   2. the default rule, set by PATCH /v1/shops/{id} on the full shop;
//   3. a 48 h window, a minimum amount and refunded orders counted, by PATCH
//      on the full shop.
// After each rule change, and under rule 1, more orders, cancels and refunds
// arrive through the API, so the facts are also maintained incrementally.
//
// Rates are compared after applying the contract's half-up 4-decimal
// rounding to the reference's integer numerator and denominator;
// Kaplan–Meier survival to 4 decimals (only a value sitting on a rounding
// boundary may differ in its last digit); everything else exactly.
//
// Run alone: cd tests && node --test exactness/   (about 2.5 minutes on 2 cores)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startService, api, setupShop, run, REPO } from '../lib/harness.js';
import { Reference } from './reference.js';
import { addDays, diffDays } from './dates.js';

const TZ = 'Asia/Shanghai';
const CUSTOMERS = 40000;
const ORDERS = 100000;
const DAYS = 730;

let svc;
let c;
let S;          // the shop: {shopId, keys}
let db;         // our own connection (temp tables of the reference)
let ref;
let dir;
let D0;         // first day of the generated history (shop's local date)
let DN;         // its last day (yesterday)
let TODAY;
const counts = { requests: 0, comparisons: 0, values: 0, byEndpoint: {}, apiMs: 0, refMs: 0 };

const todayIn = (timeZone) => new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
const qs = (q) => {
  const s = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])).toString();
  return s ? `?${s}` : '';
};

/** Runs fn over items with `width` in flight. */
async function pool(items, width, fn) {
  let i = 0;
  const worker = async () => { while (i < items.length) { const k = i++; await fn(items[k], k); } };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

// ---------------------------------------------------------------------------
// comparison

function stripDescriptions(x) {
  if (Array.isArray(x)) return x.map(stripDescriptions);
  if (x && typeof x === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(x)) if (k !== 'description') o[k] = stripDescriptions(v);
    return o;
  }
  return x;
}

/** Paths where a and e differ (at most `max`). */
function differences(a, e, p = '', out = [], max = 25) {
  if (out.length >= max) return out;
  if (e !== null && typeof e === 'object') {
    if (a === null || typeof a !== 'object' || Array.isArray(a) !== Array.isArray(e)) {
      out.push(`${p || '/'}: actual ${JSON.stringify(a)?.slice(0, 200)} expected ${JSON.stringify(e).slice(0, 200)}`);
      return out;
    }
    if (Array.isArray(e) && a.length !== e.length) out.push(`${p}: length ${a.length}, expected ${e.length}`);
    const keys = new Set([...Object.keys(e), ...Object.keys(a)]);
    for (const k of keys) {
      if (!(k in e)) { out.push(`${p}/${k}: unexpected member ${JSON.stringify(a[k])?.slice(0, 100)}`); continue; }
      if (!(k in a)) { out.push(`${p}/${k}: missing, expected ${JSON.stringify(e[k])?.slice(0, 100)}`); continue; }
      differences(a[k], e[k], `${p}/${k}`, out, max);
    }
    return out;
  }
  if (!Object.is(a, e)) out.push(`${p}: actual ${JSON.stringify(a)} expected ${JSON.stringify(e)}`);
  return out;
}

function leaves(x) {
  if (x !== null && typeof x === 'object') return Object.values(x).reduce((s, v) => s + leaves(v), 0);
  return 1;
}

/**
 * KM survival: the reference keeps the unrounded product; where it sits on a
 * 4-decimal rounding boundary (within float noise) either neighbour is right.
 */
function settleSurvival(actual, expected) {
  const groups = [];
  const walk = (a, e) => {
    if (!a || !e || typeof e !== 'object') return;
    if (e.kaplan_meier && a.kaplan_meier) groups.push([a.kaplan_meier, e.kaplan_meier]);
    for (const k of Object.keys(e)) if (typeof e[k] === 'object' && e[k] !== null && k !== 'kaplan_meier') walk(a[k], e[k]);
  };
  walk(actual, expected);
  for (const [a, e] of groups) {
    e.curve.forEach((pt, i) => {
      const x = pt.survival_exact;
      delete pt.survival_exact;
      const got = a.curve?.[i]?.survival;
      if (typeof got !== 'number' || got === pt.survival) return;
      const scaled = x * 10000;
      const nearHalf = Math.abs(scaled - Math.floor(scaled) - 0.5) < 1e-6;
      if (nearHalf && Math.abs(got - pt.survival) < 0.000101) pt.survival = got;
    });
  }
}

async function getMetric(endpoint, q) {
  const t0 = performance.now();
  const r = await c.get(`/v1/metrics/${endpoint}${qs(q)}`, { key: S.keys.readonly, validate: false, timeoutMs: 60000 });
  counts.apiMs += performance.now() - t0;
  counts.requests++;
  return r;
}

/** GET the endpoint with q; compare with the reference's answer for the resolved parameters. */
async function check(endpoint, q, compute) {
  const r = await getMetric(endpoint, q);
  assert.equal(r.status, 200, `GET ${endpoint}${qs(q)}: ${r.status} ${r.text.slice(0, 500)}`);
  const d = r.body.definition;
  // defaults resolved by the service: check them, then use them
  const p = { ...q };
  if (q.as_of === undefined) {
    assert.ok(d.as_of === TODAY || d.as_of === addDays(TODAY, 1), `default as_of is today: ${d.as_of}`);
    p.as_of = d.as_of;
  }
  if (q.to === undefined) p.to = p.as_of;
  if (q.from === undefined) p.from = addDays(p.to, -89);
  if ((endpoint === 'repurchase' || endpoint === 'first-order') && q.window_days === undefined) p.window_days = 90;
  if (q.periods !== undefined) p.periods = Number(q.periods);
  const t0 = performance.now();
  const expected = await compute(p);
  counts.refMs += performance.now() - t0;
  const actual = stripDescriptions(r.body);
  settleSurvival(actual, expected);
  const diff = differences(actual, expected);
  assert.deepEqual(diff, [], `GET /v1/metrics/${endpoint}${qs(q)} differs from the reference:\n  ${diff.join('\n  ')}`);
  // the whole answer, once more, as one deep equality
  assert.deepStrictEqual(actual, expected);
  counts.comparisons++;
  counts.values += leaves(expected);
  counts.byEndpoint[endpoint] = (counts.byEndpoint[endpoint] || 0) + leaves(expected);
}

/** Every query of a list, all of them even when one differs; then one failure naming them all. */
async function checkAll(endpoint, queries, compute) {
  const failures = [];
  for (const q of queries) {
    try {
      await check(endpoint, q, compute);
    } catch (e) {
      failures.push(e.message.split('\n').slice(0, 12).join('\n'));
    }
  }
  assert.equal(failures.length, 0, `${failures.length} of ${queries.length} answers differ:\n${failures.join('\n')}`);
}

// ---------------------------------------------------------------------------
// the shop's history

async function setRule(rule) {
  const r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { repurchase_rule: rule } }, { key: S.keys.admin, timeoutMs: 300000 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.settings.repurchase_rule, rule);
  await ref.reset(rule);
}

async function mustBulk(orders) {
  for (let i = 0; i < orders.length; i += 1000) {
    const part = orders.slice(i, i + 1000);
    const r = await c.req('POST', '/v1/orders/bulk', {
      key: S.keys.storefront, rawBody: part.map((o) => JSON.stringify(o)).join('\n') + '\n',
      headers: { 'content-type': 'application/x-ndjson' }, timeoutMs: 120000, validate: false,
    });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    const bad = r.body.results.filter((x) => x.status !== 201);
    assert.deepEqual(bad, [], 'every extra order is created');
  }
}

const CATS = ['cosmetics', 'womens-shoes', 'mens-shoes', 'womens-clothing', 'tea', 'snacks'];
const ROLES = ['traffic', 'activity', 'regular'];
const CHANNELS = ['tmall', 'douyin', 'jd', 'web', 'store-12'];
let extraSeq = 0;
/** One extra order; price 0 gives a 0-total order (the line is fully discounted). */
function extraOrder(customer, placedAt, { id, channel, price, category, role } = {}) {
  extraSeq++;
  const unit = price ?? 1000 + ((extraSeq * 7919) % 20) * 500; // 1000..10500
  const line = {
    sku: `X-${extraSeq % 50}`, category: category ?? CATS[extraSeq % CATS.length], role: role ?? ROLES[extraSeq % 3],
    quantity: 1, unit_price: price === 0 ? 1500 : unit, discount: price === 0 ? 1500 : 0,
  };
  return {
    id: id ?? `x-${extraSeq}`, customer_id: customer, placed_at: placedAt,
    channel: channel ?? CHANNELS[extraSeq % CHANNELS.length], currency: 'CNY', lines: [line],
    total: price === 0 ? 0 : unit,
  };
}

const iso = (ms) => new Date(ms).toISOString();

/**
 * Extra orders next to existing ones: 1..72 h later (the 48 h boundary
 * exactly), at the same instant (ties broken by id, other channel), around
 * local midnight in both notations, 0-total orders, and on the boundary days
 * of the parameter sets (as_of, to, from), so that the cut-off, the dates in
 * the shop's zone and the merge window all matter.
 */
async function addExtraOrders(tag, boundaryDays, mod) {
  const rows = (await db.query(`
    SELECT o.id, cu.id AS customer_id, o.placed_at, o.channel, o.seq
      FROM orders o JOIN customers cu ON cu.seq = o.customer_seq
     WHERE o.shop_id = $1 AND o.seq % $3 = $2 ORDER BY o.seq`, [S.shopId, tag.charCodeAt(0) % mod, mod])).rows;
  const out = [];
  const hours = [1, 12, 23, 24, 25, 47, 48, 49, 72, 0.5];
  rows.forEach((o, i) => {
    const t = o.placed_at.getTime();
    const kind = i % 6;
    if (kind === 0) out.push(extraOrder(o.customer_id, iso(t + hours[i % hours.length] * 3600e3)));
    else if (kind === 1) {
      // same instant: one id sorting before, one after; another channel
      out.push(extraOrder(o.customer_id, iso(t), { id: `a-tie-${tag}-${i}`, channel: 'web' }));
      out.push(extraOrder(o.customer_id, iso(t), { id: `z-tie-${tag}-${i}`, channel: 'douyin' }));
    } else if (kind === 2) {
      // exactly one window (24 h or 48 h) after, and a window + 1 s after that
      const h = i % 12 < 6 ? 24 : 48;
      out.push(extraOrder(o.customer_id, iso(t + h * 3600e3)));
      out.push(extraOrder(o.customer_id, iso(t + 2 * h * 3600e3 + 1000)));
    } else if (kind === 3) {
      const day = new Intl.DateTimeFormat('en-CA', { timeZone: TZ }).format(o.placed_at);
      out.push(extraOrder(o.customer_id, `${day}T23:59:59+08:00`));
      out.push(extraOrder(o.customer_id, `${day}T16:00:00Z`)); // 00:00 next day in Shanghai
    } else if (kind === 4) {
      out.push(extraOrder(o.customer_id, iso(t + 3 * 3600e3), { price: 0 }));
    } else {
      out.push(extraOrder(o.customer_id, iso(t + 5 * 86400e3 + 3600e3)));
    }
  });
  // boundary days: customers who buy at the last second of the day and the
  // first second of the next, new customers whose first purchase is on it
  boundaryDays.forEach((d, j) => {
    for (let k = 0; k < 6; k++) {
      const cust = `cust-${1 + ((j * 977 + k * 131) % CUSTOMERS)}`;
      out.push(extraOrder(cust, `${d}T23:59:59.999999+08:00`));
      out.push(extraOrder(cust, `${addDays(d, 1)}T00:00:00+08:00`));
      out.push(extraOrder(`new-${tag}-${j}-${k}`, `${d}T${k % 2 ? '23:30:00' : '00:00:00'}+08:00`,
        { channel: CHANNELS[k % 5] }));
      out.push(extraOrder(`new-${tag}-${j}-${k}`, `${addDays(d, 1)}T01:00:00+08:00`));
    }
  });
  // no order after yesterday (the history ends there; default as_of is today)
  const kept = out.filter((o) => Date.parse(o.placed_at) < Date.parse(`${TODAY}T00:00:00+08:00`));
  await mustBulk(kept);
  return kept.length;
}

/** Cancels, full and partial refunds of a deterministic sample of orders, and erasures, through the API. */
async function mutate(tag, mod) {
  const ids = (await db.query(`SELECT id, total, refunded_amount, status FROM orders
     WHERE shop_id = $1 ORDER BY seq`, [S.shopId])).rows;
  const cancels = [];
  const full = [];
  const partial = [];
  ids.forEach((o, i) => {
    if (o.status !== 'placed') return;
    const total = Number(o.total) - Number(o.refunded_amount);
    if (i % mod === 1) cancels.push(o);
    else if (i % mod === 2 && total > 0) full.push({ o, amount: total });
    else if (i % mod === 3 && total > 2) partial.push({ o, amount: Math.floor(total / 3) });
    else if (i % mod === 4 && total > 1) partial.push({ o, amount: total - 1 }); // refunded all but 1 fen: still qualifies
  });
  await pool(cancels, 8, async (o) => {
    const r = await c.req('POST', `/v1/orders/${encodeURIComponent(o.id)}/cancel`, { key: S.keys.storefront, validate: false });
    assert.equal(r.status, 200, r.text);
  });
  await pool([...full, ...partial], 8, async ({ o, amount }) => {
    const r = await c.post(`/v1/orders/${encodeURIComponent(o.id)}/refunds`, { id: `rf-${tag}`, amount }, { key: S.keys.storefront, validate: false });
    assert.equal(r.status, 201, r.text);
  });
  // erased customers keep their purchase history for the metrics
  const erase = Array.from({ length: 60 }, (_, i) => `cust-${1 + ((i * 7919 + tag.charCodeAt(0)) % CUSTOMERS)}`);
  await pool(erase, 8, async (id) => {
    const r = await c.del(`/v1/customers/${id}`, { key: S.keys.storefront, validate: false });
    assert.equal(r.status, 204, r.text);
  });
  return { cancelled: cancels.length, fully_refunded: full.length, partially_refunded: partial.length, erased: erase.length };
}

/** Traffic rows for most days of the last ~15 months: some channels and days missing, zeros, re-posts. */
const trafficPosted = new Map(); // `${day}|${channel}` -> [visitors, sessions]
async function postTraffic(fromDay, toDay, variant) {
  const days = [];
  for (let d = fromDay; d <= toDay; d = addDays(d, 1)) {
    const i = diffDays(d, D0); // gaps depend on the date, not on the request
    for (const [ci, ch] of ['tmall', 'douyin', 'jd', 'web'].entries()) {
      if (ch === 'jd' && i % 11 === 3) continue;
      if (ch === 'douyin' && i % 29 < 4) continue;
      let visitors = 200 + ((i * 37 + ci * 101 + variant * 13) % 900) * (ci + 1);
      if (ch === 'web' && i % 17 === 0) visitors = 0;
      days.push({ date: d, channel: ch, visitors, sessions: visitors + ((i * 7 + variant) % 50) });
    }
  }
  if (!days.length) return { created: 0, updated: 0 };
  let created = 0;
  let updated = 0;
  for (let i = 0; i < days.length; i += 1000) {
    const part = days.slice(i, i + 1000);
    const r = await c.post('/v1/traffic', { days: part }, { key: S.keys.storefront, validate: false, timeoutMs: 60000 });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    created += r.body.created;
    updated += r.body.updated;
  }
  for (const x of days) trafficPosted.set(`${x.date}|${x.channel}`, [x.visitors, x.sessions]);
  return { created, updated };
}

// ---------------------------------------------------------------------------
// parameter sets

function paramSets() {
  const d = (n) => addDays(D0, n);
  const P1 = { from: d(100), to: d(189), as_of: d(400), window_days: 90 };
  const P2 = { from: d(30), to: d(394), as_of: d(400), window_days: 60 };
  const P3 = { from: d(620), to: d(715), as_of: DN, window_days: 30 };
  const P8 = { from: D0, to: DN, as_of: DN, window_days: 365 };
  const P9 = { from: d(400), to: d(400), as_of: d(400), window_days: 1 };
  const noWin = ({ window_days: _w, ...x }) => x;
  return {
    boundaryDays: [d(99), d(100), d(189), d(190), d(394), d(400), d(620), d(715), d(720), DN],
    repurchase: [
      P1, { ...P2, interval: 'month' }, { ...P3, interval: 'week' }, { ...P1, channel: 'tmall' },
      { ...P3, channel: 'store-12', window_days: 7 }, { ...P1, channel: 'nope' }, {}, { window_days: 30, interval: 'week' },
      { ...P8, interval: 'month' }, P9, { ...P9, window_days: 3650, interval: 'week' },
    ],
    tts: [
      noWin(P1), noWin(P3), { ...noWin(P1), channel: 'tmall' }, {}, noWin(P8),
      { ...noWin(P2), category: 'tea' }, { ...noWin(P3), category: 'snacks', channel: 'douyin' },
      { ...noWin(P1), category: 'nope' }, noWin(P9),
    ],
    cohorts: [
      { from: d(30), to: d(394), as_of: d(400) },
      { ...noWin(P3), interval: 'week', periods: 8, channel: 'jd' },
      { ...noWin(P8), periods: 6 },
      { from: d(300), to: d(420), as_of: DN, interval: 'week' },
      {},
    ],
    revenueMix: [
      noWin(P1), { ...noWin(P2), interval: 'month' }, { ...noWin(P3), interval: 'week' },
      { ...noWin(P1), channel: 'tmall' }, {}, noWin(P8), noWin(P9), { ...noWin(P3), channel: 'nope' },
    ],
    firstOrder: [P1, P3, P8, {}, { ...P9, window_days: 10 }, { ...P2, window_days: 3650 }],
    sales: [
      noWin(P1), { ...noWin(P2), interval: 'month' }, { ...noWin(P3), interval: 'week', channel: 'web' },
      noWin(P8), { ...noWin(P3), channel: 'store-12' }, {}, { ...noWin(P8), channel: 'jd', interval: 'month' },
    ],
  };
}

// ---------------------------------------------------------------------------

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc, { timezone: TZ, currency: 'CNY' });
  db = new pg.Client({ host: svc.cluster.host, port: svc.cluster.port, user: svc.cluster.user, database: svc.dbName });
  await db.connect();
  TODAY = todayIn(TZ);
  DN = addDays(TODAY, -1);
  D0 = addDays(DN, -(DAYS - 1));
  ref = new Reference(db, { id: S.shopId, timezone: TZ, currency: 'CNY' },
    { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 });
  dir = mkdtempSync(path.join(tmpdir(), 'rebuy-exact-'));
});

after(async () => {
  await db?.end().catch(() => {});
  await svc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let P;

// The shop's rule while the history is imported: a merge window (and a
// minimum amount) from the start, so the merged occasions are checked even
// where a rule change on a shop this size does not get through.
const RULE_IMPORT = { exclude_refunded: true, min_order_amount: 2000, merge_window_hours: 24 };
const RULE_DEFAULT = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };
const RULE_MERGE = { exclude_refunded: false, min_order_amount: 5000, merge_window_hours: 48 };

test('a generated shop of >= 100k orders, imported', { timeout: 600000 }, async (t) => {
  P = paramSets();
  // the rule is set while the shop is empty (the facts then follow it from the first order)
  await setRule(RULE_IMPORT);
  const file = path.join(dir, 'orders.csv');
  const g = await run(process.execPath, [path.join(REPO, 'tests/bench/gen-orders.mjs'),
    '--customers', String(CUSTOMERS), '--orders', String(ORDERS), '--start', D0, '--days', String(DAYS),
    '--seed', '7', '--out', file], { timeoutMs: 120000 });
  assert.equal(g.code, 0, g.stderr);
  const t0 = Date.now();
  const r = await svc.cli(['import', 'orders', file, '--shop', S.shopId], { timeoutMs: 600000 });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`imported:\\s+${ORDERS}\\b`), r.stdout);
  t.diagnostic(`imported ${ORDERS} orders (${D0}..${DN}) under ${JSON.stringify(RULE_IMPORT)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('history made interesting through the API', { timeout: 600000 }, async (t) => {
  const t0 = Date.now();
  const n = await addExtraOrders('a', P.boundaryDays, 151);
  const t1 = Date.now();
  const m = await mutate('a', 401);
  const t2 = Date.now();
  const tr = await postTraffic(addDays(DN, -460), DN, 0);
  const again = await postTraffic(addDays(DN, -300), addDays(DN, -200), 1); // changed numbers: updates
  assert.equal(again.created, 0, 're-posted days are updates');
  tr.updated = again.updated;
  const stored = (await db.query(`SELECT count(*)::int AS n, sum(visitors)::bigint AS v FROM traffic WHERE shop_id = $1`, [S.shopId])).rows[0];
  assert.equal(stored.n, trafficPosted.size, 'one traffic row per (date, channel) posted');
  assert.equal(Number(stored.v), [...trafficPosted.values()].reduce((s, x) => s + x[0], 0), 'stored visitors are the last posted');
  const total = Number((await db.query('SELECT count(*) FROM orders WHERE shop_id = $1', [S.shopId])).rows[0].count);
  assert.ok(total >= 100000);
  t.diagnostic(`${n} extra orders (${((t1 - t0) / 1000).toFixed(1)} s); ${JSON.stringify(m)} (${((t2 - t1) / 1000).toFixed(1)} s); ` +
    `traffic ${JSON.stringify(tr)}; ${total} orders in all`);
});

function metricTests(state) {
  const guard = (t) => {
    if (state.broken) { t.skip(state.broken); return true; }
    return false;
  };
  test('reference facts', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    const t0 = Date.now();
    const st = await ref.stats(DN);
    t.diagnostic(`${JSON.stringify(ref.rule)} as of ${DN}: ${JSON.stringify(st)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    assert.ok(st.repeat_customers > 1000);
    if (ref.rule.merge_window_hours > 0) assert.ok(st.merged_occasions > 100, 'the merge window merges some orders');
  });
  test('GET /v1/metrics/repurchase', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('repurchase', P.repurchase, (p) => ref.repurchase(p));
  });
  test('GET /v1/metrics/time-to-second-purchase', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('time-to-second-purchase', P.tts, (p) => ref.timeToSecond(p));
  });
  test('GET /v1/metrics/cohorts', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('cohorts', P.cohorts, (p) => ref.cohorts(p));
  });
  test('GET /v1/metrics/revenue-mix', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('revenue-mix', P.revenueMix, (p) => ref.revenueMix(p));
  });
  test('GET /v1/metrics/first-order', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('first-order', P.firstOrder, (p) => ref.firstOrder(p));
  });
  test('GET /v1/metrics/sales-decomposition', { timeout: 300000 }, async (t) => {
    if (guard(t)) return;
    await checkAll('sales-decomposition', P.sales, (p) => ref.salesDecomposition(p));
  });
}

describe(`rule ${JSON.stringify(RULE_IMPORT)}, set before the import`, () => {
  metricTests({});
});

describe('default rule, after PATCH /v1/shops/{id} on the full shop', () => {
  test('the rule is changed; a few more changes arrive under it', { timeout: 600000 }, async (t) => {
    const t0 = Date.now();
    await setRule(RULE_DEFAULT);
    const t1 = Date.now();
    const n = await addExtraOrders('b', P.boundaryDays.slice(2, 6), 401);
    const m = await mutate('b', 997);
    await ref.reset(RULE_DEFAULT);
    t.diagnostic(`rule change took ${((t1 - t0) / 1000).toFixed(1)} s; then ${n} extra orders and ${JSON.stringify(m)}`);
  });
  metricTests({});
});

const mergeState = {};
describe(`rule ${JSON.stringify(RULE_MERGE)}, after PATCH /v1/shops/{id} on the full shop`, () => {
  test('the rule is changed; a few more changes arrive under it', { timeout: 600000 }, async (t) => {
    const t0 = Date.now();
    try {
      await setRule(RULE_MERGE);
    } catch (e) {
      mergeState.broken = 'the rule change failed';
      throw new Error(`PATCH /v1/shops/{id} with ${JSON.stringify(RULE_MERGE)} on a shop of ` +
        `${CUSTOMERS} customers failed after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${e.message.split('\n')[0]}`);
    }
    const t1 = Date.now();
    const n = await addExtraOrders('c', P.boundaryDays.slice(5, 9), 409);
    const m = await mutate('c', 991);
    await ref.reset(RULE_MERGE);
    t.diagnostic(`rule change took ${((t1 - t0) / 1000).toFixed(1)} s; then ${n} extra orders and ${JSON.stringify(m)}`);
  });
  metricTests(mergeState);
});

test('summary', (t) => {
  t.diagnostic(`${counts.comparisons} responses equal to the reference (${counts.requests} requests; ` +
    `${(counts.apiMs / 1000).toFixed(1)} s in the API, ${(counts.refMs / 1000).toFixed(1)} s in the reference), ` +
    `${counts.values} values: ${JSON.stringify(counts.byEndpoint)}`);
});

