// Metrics slice 2 (metrics2.md): GET /v1/metrics/cohorts, /v1/metrics/revenue-mix,
// /v1/metrics/first-order and /v1/metrics/sales-decomposition over small
// hand-made histories. Every expected number below is worked out by hand in
// the comment next to it (never by re-implementing the metric), with fixed
// 2025 dates and an explicit as_of, so the results do not depend on today.
//
// Dates are calendar dates in the shop's time zone. Unless a test says
// otherwise the shops are in Asia/Shanghai and orders are placed at 10:00
// local time, one line each. Notation: "c1: 01-05 10000, 02-10 20000" means
// customer c1 has (default rule: one order per occasion) occasions dated
// 2025-01-05 and 2025-02-10 with those order totals (CNY minor units).
// Rounding: ratio = 4 decimals half up; money = whole minor units half up.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, uniq,
} from '../lib/harness.js';

let svc;
let c;

const COH = '/v1/metrics/cohorts';
const MIX = '/v1/metrics/revenue-mix';
const FIRST = '/v1/metrics/first-order';
const DEC = '/v1/metrics/sales-decomposition';
const DEFAULT_RULE = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };

// ---------------------------------------------------------------------------
// helpers

/** '2025-03-05' → 10:00 Shanghai time that day; '2025-03-05 22:30' → that local time; else as given. */
function at(s) {
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return `${s}T10:00:00+08:00`;
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})$/.exec(s);
  if (m) return `${m[1]}T${m[2]}:00+08:00`;
  return s;
}

/** One order: one line per role (category tea), each line at `price`; total = price × lines. */
function ord(id, customer, when, { channel = 'web', price = 10000, roles = ['regular'] } = {}) {
  return {
    id,
    customer_id: customer,
    placed_at: at(when),
    channel,
    currency: 'CNY',
    lines: roles.map((role, i) => ({ sku: `SKU-${role}-${i}`, category: 'tea', role, quantity: 1, unit_price: price })),
    total: price * roles.length,
  };
}

/** A shop (platform key) in the given time zone; returns {shopId, key}. */
async function mkShop(timezone = 'Asia/Shanghai') {
  const r = await c.post('/v1/shops', { name: uniq('Metrics2 Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  return { shopId: r.body.shop.id, key: r.body.admin_key.key };
}

/** Records the orders through POST /v1/orders/bulk (in the given order); all must be new. */
async function load(key, orders) {
  const text = orders.map((o) => JSON.stringify(o)).join('\n') + '\n';
  const r = await c.req('POST', '/v1/orders/bulk', { key, rawBody: text, headers: { 'content-type': 'application/x-ndjson' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.created, orders.length, `bulk load: ${JSON.stringify(r.body.results.filter((x) => x.status !== 201))}`);
}

async function patchRule(shopId, key, rule) {
  const r = await c.patch(`/v1/shops/${shopId}`, { settings: { repurchase_rule: rule } }, { key });
  assert.equal(r.status, 200, r.text);
}

async function refund(key, id, amount) {
  const r = await c.post(`/v1/orders/${id}/refunds`, { id: `rf-${id}-${amount}`, amount }, { key });
  assert.equal(r.status, 201, r.text);
}

async function cancel(key, id) {
  const r = await c.req('POST', `/v1/orders/${id}/cancel`, { key });
  assert.equal(r.status, 200, r.text);
}

async function postTraffic(key, days) {
  const r = await c.post('/v1/traffic', { days }, { key });
  assert.equal(r.status, 200, `POST /v1/traffic: ${r.text}`);
  return r.body;
}

const qs = (q) => {
  const s = new URLSearchParams(q).toString();
  return s ? `?${s}` : '';
};

/** GET a metrics endpoint; asserts 200 and returns the body. */
async function get(path, key, q = {}) {
  const r = await c.get(path + qs(q), { key });
  assert.equal(r.status, 200, `GET ${path}${qs(q)}: ${r.text}`);
  return r.body;
}

function assertDescription(body) {
  assert.equal(typeof body.description, 'string', 'description is a string');
  assert.ok(body.description.length > 0, 'description is not empty');
}

// --- cohorts

const CELL_KEYS = ['complete', 'customers', 'from', 'orders', 'period', 'revenue', 'share', 'to'];
const COHORT_KEYS = ['customers', 'from', 'periods', 'to'];

/** A cohort as [from, to, customers, cells]; a cell as [period, from, to, complete, customers, share, orders, revenue]. */
function cohort(x) {
  assert.deepEqual(Object.keys(x).sort(), COHORT_KEYS, 'cohort members');
  return [x.from, x.to, x.customers, x.periods.map((p) => {
    assert.deepEqual(Object.keys(p).sort(), CELL_KEYS, 'cell members');
    return [p.period, p.from, p.to, p.complete, p.customers, p.share, p.orders, p.revenue];
  })];
}

/** GET cohorts: returns {cohorts (compact), body}. */
async function coh(key, q) {
  const body = await get(COH, key, q);
  return { cohorts: body.cohorts.map(cohort), body };
}

// --- revenue mix

/** Figures of a revenue-mix answer or bucket, built from compact arguments. */
function mixOf(revenue, orders, customers, [fo, frev, faov], [ro, rrev, raov], newC, retC, share, aov, opc, [avg, intervals, total]) {
  return {
    revenue, orders, customers,
    first_orders: { orders: fo, revenue: frev, average_order_value: faov },
    repeat_orders: { orders: ro, revenue: rrev, average_order_value: raov },
    new_customers: newC,
    returning_customers: retC,
    returning_customer_revenue_share: share,
    average_order_value: aov,
    orders_per_customer: opc,
    days_between_orders: { average: avg, intervals, total_days: total },
  };
}

const MIX_EMPTY = mixOf(0, 0, 0, [0, 0, null], [0, 0, null], 0, 0, null, null, null, [null, 0, 0]);

/** The top-level figures of a body (without definition, description, series). */
function figures(body) {
  const { definition, description, series, ...rest } = body;
  return rest;
}

async function mix(key, q) {
  const body = await get(MIX, key, q);
  assertDescription(body);
  if (q.interval === undefined) assert.ok(!('series' in body), 'no series without interval');
  return { m: figures(body), body };
}

// --- first order

/** A first-order group as [customers, repeat_customers, repeat_share, [num, den, rate, censored]] (+ role/channel). */
function grp(g) {
  const nd = g.n_day_repurchase_rate;
  const out = [g.customers, g.repeat_customers, g.repeat_share, [nd.numerator, nd.denominator, nd.rate, nd.censored]];
  if ('role' in g) out.unshift(g.role);
  if ('channel' in g) out.unshift(g.channel);
  return out;
}

async function first(key, q) {
  const body = await get(FIRST, key, q);
  assertDescription(body);
  return { overall: grp(body.overall), roles: body.by_role.map(grp), channels: body.by_channel.map(grp), body };
}

// --- sales decomposition

function decOf(sales, visitors, sessions, traffic_days, buyers, conversion_rate, orders, average_order_value, repurchase_rate) {
  return { sales, visitors, sessions, traffic_days, buyers, conversion_rate, orders, average_order_value, repurchase_rate };
}

async function dec(key, q) {
  const body = await get(DEC, key, q);
  assertDescription(body);
  if (q.interval === undefined) assert.ok(!('series' in body), 'no series without interval');
  return { d: figures(body), body };
}

// ---------------------------------------------------------------------------
// Shops and their histories

let C; // cohorts
let R; // cohorts: refunds and cancels
let Z; // Asia/Shanghai day boundaries
let U; // UTC, the same orders (and ids) as Z
let E; // no orders at all
let V; // revenue mix (setupShop: admin, storefront, readonly keys)
let F; // first order
let D; // sales decomposition: the same orders as V

// V's and D's orders:
//   v1: 02-10 10000, 03-05 15001                 (first occasion before March)
//   v2: 03-02 10000, 03-12 20000, 03-22 5000
//   v3: 03-10 10004
//   v4: 03-20 7000 (tmall), 04-05 9000           (first order via tmall; 04-05 after March)
//   v5: 01-15 10000, 02-15 10000                 (nothing in March)
const V_ORDERS = [
  ord('v1-1', 'v1', '2025-02-10'), ord('v1-2', 'v1', '2025-03-05', { price: 15001 }),
  ord('v2-1', 'v2', '2025-03-02'), ord('v2-2', 'v2', '2025-03-12', { price: 20000 }), ord('v2-3', 'v2', '2025-03-22', { price: 5000 }),
  ord('v3-1', 'v3', '2025-03-10', { price: 10004 }),
  ord('v4-1', 'v4', '2025-03-20', { price: 7000, channel: 'tmall' }), ord('v4-2', 'v4', '2025-04-05', { price: 9000 }),
  ord('v5-1', 'v5', '2025-01-15'), ord('v5-2', 'v5', '2025-02-15'),
];

before(async () => {
  svc = await startService();
  c = api(svc);

  // C (2025):
  //   c1: 01-05 10000, 02-10 20000, 04-10 5000
  //   c2: 01-20 10000 (tmall), 01-25 10000, 03-03 30000
  //   c3: 01-31 10000
  //   c4: 02-01 10000 (tmall), 02-14 10000 (tmall), 04-16 10000
  //   c5: 02-28 10000, 03-01 15000 (tmall)
  //   c6: 03-15 10000, 04-01 10000
  //   c7: 2024-12-20 10000, 01-10 10000
  //   c8: 03-04 10000, 03-12 12000, 03-13 8000
  // First-order channels: tmall for c2 and c4, web for the others.
  C = await mkShop();
  await load(C.key, [
    ord('c1-1', 'c1', '2025-01-05'), ord('c1-2', 'c1', '2025-02-10', { price: 20000 }), ord('c1-3', 'c1', '2025-04-10', { price: 5000 }),
    ord('c2-1', 'c2', '2025-01-20', { channel: 'tmall' }), ord('c2-2', 'c2', '2025-01-25'), ord('c2-3', 'c2', '2025-03-03', { price: 30000 }),
    ord('c3-1', 'c3', '2025-01-31'),
    ord('c4-1', 'c4', '2025-02-01', { channel: 'tmall' }), ord('c4-2', 'c4', '2025-02-14', { channel: 'tmall' }), ord('c4-3', 'c4', '2025-04-16'),
    ord('c5-1', 'c5', '2025-02-28'), ord('c5-2', 'c5', '2025-03-01', { price: 15000, channel: 'tmall' }),
    ord('c6-1', 'c6', '2025-03-15'), ord('c6-2', 'c6', '2025-04-01'),
    ord('c7-1', 'c7', '2024-12-20'), ord('c7-2', 'c7', '2025-01-10'),
    ord('c8-1', 'c8', '2025-03-04'), ord('c8-2', 'c8', '2025-03-12', { price: 12000 }), ord('c8-3', 'c8', '2025-03-13', { price: 8000 }),
  ]);

  // R: r1: 01-10 10000, 02-10 10000, 02-20 10000; r2: 01-15 20000, 02-05 10000; r3: 01-20 10000.
  // Refunds and the cancel are applied inside the test.
  R = await mkShop();
  await load(R.key, [
    ord('r1-1', 'r1', '2025-01-10'), ord('r1-2', 'r1', '2025-02-10'), ord('r1-3', 'r1', '2025-02-20'),
    ord('r2-1', 'r2', '2025-01-15', { price: 20000 }), ord('r2-2', 'r2', '2025-02-05'),
    ord('r3-1', 'r3', '2025-01-20'),
  ]);

  // Z and U: the same orders, order ids and customer ids, in two time zones.
  //   z1: 2025-01-31 23:30+08:00 (= 15:30Z) and 2025-02-01 00:30+08:00 (= 01-31 16:30Z)
  //   z2: 2025-01-31T16:00:00Z (= 2025-02-01 00:00:00 in Shanghai)
  //   z3: 2025-01-31T15:59:59Z (= 2025-01-31 23:59:59 in Shanghai)
  const zOrders = [
    ord('z1-1', 'z1', '2025-01-31 23:30'), ord('z1-2', 'z1', '2025-02-01 00:30'),
    ord('z2-1', 'z2', '2025-01-31T16:00:00Z'),
    ord('z3-1', 'z3', '2025-01-31T15:59:59Z'),
  ];
  Z = await mkShop('Asia/Shanghai');
  await load(Z.key, zOrders);
  U = await mkShop('UTC');
  await load(U.key, zOrders);

  E = await mkShop();

  V = await setupShop(svc);
  await load(V.keys.admin, V_ORDERS);
  D = await mkShop();
  await load(D.key, V_ORDERS);

  // F (first order: roles of the first order's lines, channel of the first order):
  //   f1: 01-05 traffic+regular (web), 01-20
  //   f2: 01-10 traffic (tmall), 03-01
  //   f3: 01-15 activity (JD)
  //   f4: 01-20 regular (douyin), 01-25
  //   f5: 01-25 regular (web), 04-20
  //   f6: 2024-12-28 traffic (web), 01-10           (first occasion before the range)
  //   f7: 01-31 activity (tmall)
  F = await mkShop();
  await load(F.key, [
    ord('f1-1', 'f1', '2025-01-05', { roles: ['traffic', 'regular'] }), ord('f1-2', 'f1', '2025-01-20'),
    ord('f2-1', 'f2', '2025-01-10', { roles: ['traffic'], channel: 'tmall' }), ord('f2-2', 'f2', '2025-03-01'),
    ord('f3-1', 'f3', '2025-01-15', { roles: ['activity'], channel: 'JD' }),
    ord('f4-1', 'f4', '2025-01-20', { channel: 'douyin' }), ord('f4-2', 'f4', '2025-01-25'),
    ord('f5-1', 'f5', '2025-01-25'), ord('f5-2', 'f5', '2025-04-20'),
    ord('f6-1', 'f6', '2024-12-28', { roles: ['traffic'] }), ord('f6-2', 'f6', '2025-01-10'),
    ord('f7-1', 'f7', '2025-01-31', { roles: ['activity'], channel: 'tmall' }),
  ]);
});

after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------
// cohorts

describe('GET /v1/metrics/cohorts', () => {
  const P = (period, from, to, complete, customers, share, orders, revenue) => [period, from, to, complete, customers, share, orders, revenue];

  test('monthly cohorts: period 0 share 1, later periods, last period clipped to as_of and incomplete', async () => {
    const { cohorts, body } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15' });
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15',
      rule: DEFAULT_RULE, channel: null, currency: 'CNY', interval: 'month', periods: null,
    });
    assert.deepEqual(cohorts, [
      // January: c1 (01-05), c2 (01-20), c3 (01-31) = 3; c7 started 2024-12-20 → not a member.
      ['2025-01-01', '2025-01-31', 3, [
        // c1 1 order 10000, c2 2 orders (01-20, 01-25) 20000, c3 1 order 10000 (c7's 01-10 is not counted)
        // → 3 customers, share 1, 4 orders, 40000.
        P(0, '2025-01-01', '2025-01-31', true, 3, 1, 4, 40000),
        // February: c1 02-10 → 1/3 = 0.33333 → 0.3333, 1 order, 20000.
        P(1, '2025-02-01', '2025-02-28', true, 1, 0.3333, 1, 20000),
        // March: c2 03-03 → 1/3, 1 order, 30000.
        P(2, '2025-03-01', '2025-03-31', true, 1, 0.3333, 1, 30000),
        // April holds as_of (04-15): to clipped to 04-15, incomplete; c1 04-10 → 1/3, 5000.
        P(3, '2025-04-01', '2025-04-15', false, 1, 0.3333, 1, 5000),
      ]],
      // February: c4 (02-01), c5 (02-28) = 2.
      ['2025-02-01', '2025-02-28', 2, [
        // c4 02-01 + 02-14 (2 orders 20000), c5 02-28 (10000) → 2, 1, 3 orders, 30000.
        P(0, '2025-02-01', '2025-02-28', true, 2, 1, 3, 30000),
        // March: c5 03-01 15000 → 1/2 = 0.5.
        P(1, '2025-03-01', '2025-03-31', true, 1, 0.5, 1, 15000),
        // April to 04-15: c4's 04-16 is after as_of → 0 customers, share 0/2 = 0.
        P(2, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
      // March: c6 (03-15), c8 (03-04) = 2.
      ['2025-03-01', '2025-03-31', 2, [
        // c6 1 order 10000, c8 3 orders 10000 + 12000 + 8000 → 2, 1, 4, 40000.
        P(0, '2025-03-01', '2025-03-31', true, 2, 1, 4, 40000),
        // April to 04-15: c6 04-01 → 1/2 = 0.5, 10000.
        P(1, '2025-04-01', '2025-04-15', false, 1, 0.5, 1, 10000),
      ]],
    ]);
  });

  test('periods limits the periods per cohort (and is echoed in the definition)', async () => {
    let { cohorts, body } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15', periods: '2' });
    assert.equal(body.definition.periods, 2);
    // the first two periods of each cohort of the previous test
    assert.deepEqual(cohorts, [
      ['2025-01-01', '2025-01-31', 3, [P(0, '2025-01-01', '2025-01-31', true, 3, 1, 4, 40000), P(1, '2025-02-01', '2025-02-28', true, 1, 0.3333, 1, 20000)]],
      ['2025-02-01', '2025-02-28', 2, [P(0, '2025-02-01', '2025-02-28', true, 2, 1, 3, 30000), P(1, '2025-03-01', '2025-03-31', true, 1, 0.5, 1, 15000)]],
      ['2025-03-01', '2025-03-31', 2, [P(0, '2025-03-01', '2025-03-31', true, 2, 1, 4, 40000), P(1, '2025-04-01', '2025-04-15', false, 1, 0.5, 1, 10000)]],
    ]);
    ({ cohorts, body } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15', periods: '1' }));
    assert.equal(body.definition.periods, 1);
    assert.deepEqual(cohorts, [
      ['2025-01-01', '2025-01-31', 3, [P(0, '2025-01-01', '2025-01-31', true, 3, 1, 4, 40000)]],
      ['2025-02-01', '2025-02-28', 2, [P(0, '2025-02-01', '2025-02-28', true, 2, 1, 3, 30000)]],
      ['2025-03-01', '2025-03-31', 2, [P(0, '2025-03-01', '2025-03-31', true, 2, 1, 4, 40000)]],
    ]);
    // periods above the number there are: no change (600 is the maximum)
    ({ body } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15', periods: '600' }));
    assert.equal(body.definition.periods, 600);
    assert.deepEqual(body.cohorts.map((x) => x.periods.length), [4, 3, 2]);
  });

  test('as_of on the last day of a month: that month is complete and not clipped; later orders ignored', async () => {
    const { cohorts } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-03-31' });
    assert.deepEqual(cohorts, [
      // Periods Jan, Feb, Mar (March holds as_of; its end 03-31 ≤ as_of → complete). c1's 04-10 ignored.
      ['2025-01-01', '2025-01-31', 3, [
        P(0, '2025-01-01', '2025-01-31', true, 3, 1, 4, 40000),
        P(1, '2025-02-01', '2025-02-28', true, 1, 0.3333, 1, 20000),
        P(2, '2025-03-01', '2025-03-31', true, 1, 0.3333, 1, 30000),
      ]],
      ['2025-02-01', '2025-02-28', 2, [
        P(0, '2025-02-01', '2025-02-28', true, 2, 1, 3, 30000),
        P(1, '2025-03-01', '2025-03-31', true, 1, 0.5, 1, 15000),
      ]],
      // c6's 04-01 is after as_of; March itself unchanged.
      ['2025-03-01', '2025-03-31', 2, [P(0, '2025-03-01', '2025-03-31', true, 2, 1, 4, 40000)]],
    ]);
  });

  test('period 0 holding as_of: to clipped, incomplete, later orders of the month ignored', async () => {
    const { cohorts } = await coh(C.key, { from: '2025-03-01', to: '2025-03-10', as_of: '2025-03-10' });
    // cohort [03-01, 03-10]: c8 (03-04) = 1 (c5's and c2's March orders are not first occasions).
    // Period 0 = March up to as_of: c8's 03-04 only (03-12 and 03-13 are after as_of) → 1, 1, 1, 10000.
    assert.deepEqual(cohorts, [['2025-03-01', '2025-03-10', 1, [P(0, '2025-03-01', '2025-03-10', false, 1, 1, 1, 10000)]]]);
  });

  test('first and last cohort clipped to from/to; period 0 is the whole calendar month', async () => {
    const { cohorts, body } = await coh(C.key, { from: '2025-01-15', to: '2025-03-10', as_of: '2025-04-15' });
    assert.equal(body.definition.from, '2025-01-15');
    assert.equal(body.definition.to, '2025-03-10');
    assert.deepEqual(cohorts, [
      // [01-15, 01-31]: c2 (01-20), c3 (01-31) = 2; c1 (01-05) is before from.
      ['2025-01-15', '2025-01-31', 2, [
        // period 0 = all of January: c2 2 orders 20000, c3 1 order 10000 → 2, 1, 3, 30000.
        P(0, '2025-01-01', '2025-01-31', true, 2, 1, 3, 30000),
        // February: nobody of c2, c3 (c1 is not a member) → 0, share 0/2 = 0.
        P(1, '2025-02-01', '2025-02-28', true, 0, 0, 0, 0),
        // March: c2 03-03 → 1/2 = 0.5, 30000.
        P(2, '2025-03-01', '2025-03-31', true, 1, 0.5, 1, 30000),
        // April to 04-15: c1's 04-10 is not a member's → 0.
        P(3, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
      // February: as before.
      ['2025-02-01', '2025-02-28', 2, [
        P(0, '2025-02-01', '2025-02-28', true, 2, 1, 3, 30000),
        P(1, '2025-03-01', '2025-03-31', true, 1, 0.5, 1, 15000),
        P(2, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
      // [03-01, 03-10]: c8 (03-04) = 1; c6 (03-15) is after to.
      ['2025-03-01', '2025-03-10', 1, [
        // period 0 = all of March (not clipped to 03-10): c8's 03-04, 03-12, 03-13 → 1, 1, 3, 30000.
        P(0, '2025-03-01', '2025-03-31', true, 1, 1, 3, 30000),
        P(1, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
    ]);
  });

  test('weekly cohorts: Monday–Sunday, first cohort clipped, period 0 the whole week', async () => {
    // 2025-02-24, 03-03, 03-10, 03-17 are Mondays; as_of 03-19 is a Wednesday.
    const { cohorts, body } = await coh(C.key, { from: '2025-02-26', to: '2025-03-16', as_of: '2025-03-19', interval: 'week' });
    assert.equal(body.definition.interval, 'week');
    assert.equal(body.definition.periods, null);
    assert.deepEqual(cohorts, [
      // [02-26, 03-02]: c5 (02-28) = 1 (c4 started 02-01).
      ['2025-02-26', '2025-03-02', 1, [
        // week of 02-24, whole: c5 02-28 10000 and 03-01 (Saturday) 15000 → 1, 1, 2, 25000.
        P(0, '2025-02-24', '2025-03-02', true, 1, 1, 2, 25000),
        P(1, '2025-03-03', '2025-03-09', true, 0, 0, 0, 0),
        P(2, '2025-03-10', '2025-03-16', true, 0, 0, 0, 0),
        // the week of as_of: to 03-19, incomplete
        P(3, '2025-03-17', '2025-03-19', false, 0, 0, 0, 0),
      ]],
      // [03-03, 03-09]: c8 (03-04) = 1 (c2's 03-03 is not a first occasion).
      ['2025-03-03', '2025-03-09', 1, [
        P(0, '2025-03-03', '2025-03-09', true, 1, 1, 1, 10000),
        // c8 03-12 12000 + 03-13 8000 → 1, 1, 2 orders, 20000.
        P(1, '2025-03-10', '2025-03-16', true, 1, 1, 2, 20000),
        P(2, '2025-03-17', '2025-03-19', false, 0, 0, 0, 0),
      ]],
      // [03-10, 03-16]: c6 (03-15) = 1; its 04-01 is after as_of.
      ['2025-03-10', '2025-03-16', 1, [
        P(0, '2025-03-10', '2025-03-16', true, 1, 1, 1, 10000),
        P(1, '2025-03-17', '2025-03-19', false, 0, 0, 0, 0),
      ]],
    ]);
  });

  test('empty cohorts are listed with zero customers, null shares and zero money', async () => {
    let { cohorts } = await coh(C.key, { from: '2024-11-01', to: '2024-12-31', as_of: '2025-01-31' });
    assert.deepEqual(cohorts, [
      // November 2024: nobody. Periods Nov, Dec, Jan (as_of 01-31 ends January → complete).
      ['2024-11-01', '2024-11-30', 0, [
        P(0, '2024-11-01', '2024-11-30', true, 0, null, 0, 0),
        P(1, '2024-12-01', '2024-12-31', true, 0, null, 0, 0),
        P(2, '2025-01-01', '2025-01-31', true, 0, null, 0, 0),
      ]],
      // December 2024: c7 (12-20) = 1; back 01-10.
      ['2024-12-01', '2024-12-31', 1, [
        P(0, '2024-12-01', '2024-12-31', true, 1, 1, 1, 10000),
        P(1, '2025-01-01', '2025-01-31', true, 1, 1, 1, 10000),
      ]],
    ]);

    // E has no orders. [03-05, 03-18] by week, as_of 03-18 (Tuesday): cohorts [03-05, 03-09],
    // [03-10, 03-16], [03-17, 03-18] with 3, 2 and 1 periods, all empty.
    ({ cohorts } = await coh(E.key, { from: '2025-03-05', to: '2025-03-18', as_of: '2025-03-18', interval: 'week' }));
    assert.deepEqual(cohorts, [
      ['2025-03-05', '2025-03-09', 0, [
        P(0, '2025-03-03', '2025-03-09', true, 0, null, 0, 0),
        P(1, '2025-03-10', '2025-03-16', true, 0, null, 0, 0),
        P(2, '2025-03-17', '2025-03-18', false, 0, null, 0, 0),
      ]],
      ['2025-03-10', '2025-03-16', 0, [
        P(0, '2025-03-10', '2025-03-16', true, 0, null, 0, 0),
        P(1, '2025-03-17', '2025-03-18', false, 0, null, 0, 0),
      ]],
      ['2025-03-17', '2025-03-18', 0, [P(0, '2025-03-17', '2025-03-18', false, 0, null, 0, 0)]],
    ]);
  });

  test('channel: customers whose first order came through the channel (all their occasions count)', async () => {
    const { cohorts, body } = await coh(C.key, { from: '2025-01-01', to: '2025-03-31', as_of: '2025-04-15', channel: 'tmall' });
    assert.equal(body.definition.channel, 'tmall');
    // first order via tmall: c2 and c4 (c5's tmall order is its second).
    assert.deepEqual(cohorts, [
      // January: c2 = 1; its 01-25 web order counts → 2 orders 20000.
      ['2025-01-01', '2025-01-31', 1, [
        P(0, '2025-01-01', '2025-01-31', true, 1, 1, 2, 20000),
        P(1, '2025-02-01', '2025-02-28', true, 0, 0, 0, 0),
        P(2, '2025-03-01', '2025-03-31', true, 1, 1, 1, 30000),
        P(3, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
      // February: c4 = 1, 02-01 and 02-14 → 2 orders 20000; 04-16 after as_of.
      ['2025-02-01', '2025-02-28', 1, [
        P(0, '2025-02-01', '2025-02-28', true, 1, 1, 2, 20000),
        P(1, '2025-03-01', '2025-03-31', true, 0, 0, 0, 0),
        P(2, '2025-04-01', '2025-04-15', false, 0, 0, 0, 0),
      ]],
      // March: nobody via tmall.
      ['2025-03-01', '2025-03-31', 0, [
        P(0, '2025-03-01', '2025-03-31', true, 0, null, 0, 0),
        P(1, '2025-04-01', '2025-04-15', false, 0, null, 0, 0),
      ]],
    ]);
  });

  test('refunds reduce revenue (net); a fully refunded or cancelled order does not qualify', async () => {
    const q = { from: '2025-01-01', to: '2025-02-28', as_of: '2025-02-28' };
    let { cohorts } = await coh(R.key, q);
    // before: January r1 (01-10), r2 (01-15), r3 (01-20) = 3.
    assert.deepEqual(cohorts, [
      ['2025-01-01', '2025-01-31', 3, [
        // 10000 + 20000 + 10000
        P(0, '2025-01-01', '2025-01-31', true, 3, 1, 3, 40000),
        // r1 02-10, 02-20 (2 orders, 20000), r2 02-05 (10000) → 2/3 = 0.66667 → 0.6667, 3 orders, 30000.
        P(1, '2025-02-01', '2025-02-28', true, 2, 0.6667, 3, 30000),
      ]],
      ['2025-02-01', '2025-02-28', 0, [P(0, '2025-02-01', '2025-02-28', true, 0, null, 0, 0)]],
    ]);

    await refund(R.key, 'r1-1', 500); // net 9500
    await refund(R.key, 'r1-2', 3000); // net 7000
    await refund(R.key, 'r1-3', 10000); // fully refunded: no longer qualifies
    await refund(R.key, 'r2-1', 20000); // fully refunded: r2 now starts on 02-05
    await cancel(R.key, 'r3-1'); // r3 has no qualifying order left

    ({ cohorts } = await coh(R.key, q));
    assert.deepEqual(cohorts, [
      // January: r1 only.
      ['2025-01-01', '2025-01-31', 1, [
        P(0, '2025-01-01', '2025-01-31', true, 1, 1, 1, 9500),
        // r1 02-10 net 7000; 02-20 does not qualify → 1 order.
        P(1, '2025-02-01', '2025-02-28', true, 1, 1, 1, 7000),
      ]],
      // February: r2 (02-05, 10000).
      ['2025-02-01', '2025-02-28', 1, [P(0, '2025-02-01', '2025-02-28', true, 1, 1, 1, 10000)]],
    ]);
  });

  test('merged occasions: orders counts every merged order', async () => {
    const W = await mkShop();
    //   m1: 03-10 10:00 10000, 03-10 20:00 5000, 03-11 09:00 3000, 03-11 11:00 4000
    //   m2: 03-20 22:00 10000, 03-21 08:00 6000
    await load(W.key, [
      ord('m1-1', 'm1', '2025-03-10 10:00'), ord('m1-2', 'm1', '2025-03-10 20:00', { price: 5000 }),
      ord('m1-3', 'm1', '2025-03-11 09:00', { price: 3000 }), ord('m1-4', 'm1', '2025-03-11 11:00', { price: 4000 }),
      ord('m2-1', 'm2', '2025-03-20 22:00'), ord('m2-2', 'm2', '2025-03-21 08:00', { price: 6000 }),
    ]);
    await patchRule(W.shopId, W.key, { merge_window_hours: 24 });
    // merge 24 h: m1 → 03-10 (3 orders, 18000) and 03-11 11:00 (25 h after the start: 1 order, 4000);
    // m2 → 03-20 (2 orders, 16000).
    const { cohorts, body } = await coh(W.key, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30' });
    assert.deepEqual(body.definition.rule, { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 24 });
    assert.deepEqual(cohorts, [
      ['2025-03-01', '2025-03-31', 2, [
        // 3 + 1 + 2 = 6 orders; 18000 + 4000 + 16000 = 38000.
        P(0, '2025-03-01', '2025-03-31', true, 2, 1, 6, 38000),
        // April, complete (as_of 04-30 ends it): nobody.
        P(1, '2025-04-01', '2025-04-30', true, 0, 0, 0, 0),
      ]],
    ]);
  });

  test('time-zone day boundaries: 23:59:59 local is January, 00:00 local is February', async () => {
    const q = { from: '2025-01-01', to: '2025-02-28', as_of: '2025-02-28' };
    let { cohorts, body } = await coh(Z.key, q);
    assert.equal(body.definition.timezone, 'Asia/Shanghai');
    assert.deepEqual(cohorts, [
      // January: z1 (01-31 23:30), z3 (01-31 23:59:59) = 2.
      ['2025-01-01', '2025-01-31', 2, [
        P(0, '2025-01-01', '2025-01-31', true, 2, 1, 2, 20000),
        // z1's 02-01 00:30 → 1/2 = 0.5.
        P(1, '2025-02-01', '2025-02-28', true, 1, 0.5, 1, 10000),
      ]],
      // February: z2 (02-01 00:00) = 1.
      ['2025-02-01', '2025-02-28', 1, [P(0, '2025-02-01', '2025-02-28', true, 1, 1, 1, 10000)]],
    ]);

    ({ cohorts, body } = await coh(U.key, q));
    assert.equal(body.definition.timezone, 'UTC');
    assert.deepEqual(cohorts, [
      // UTC: all four orders are on 01-31 → January z1, z2, z3 = 3, 4 orders, 40000.
      ['2025-01-01', '2025-01-31', 3, [
        P(0, '2025-01-01', '2025-01-31', true, 3, 1, 4, 40000),
        P(1, '2025-02-01', '2025-02-28', true, 0, 0, 0, 0),
      ]],
      ['2025-02-01', '2025-02-28', 0, [P(0, '2025-02-01', '2025-02-28', true, 0, null, 0, 0)]],
    ]);
  });

  describe('too big an answer: more than 20000 cells → 400 /query/periods', () => {
    // Weekly, from Monday 2021-09-27 to Sunday 2025-12-28 = as_of: 1554 days = 222 weeks.
    // Cohort j (0-based) has the periods from its week to the week of as_of: 222 − j of them.
    const q = { from: '2021-09-27', to: '2025-12-28', as_of: '2025-12-28', interval: 'week' };

    test('no periods limit: 222 · 223 / 2 = 24753 cells → 400', async () => {
      assertProblem(await c.get(COH + qs(q), { key: E.key }), 400, 'invalid_parameter', '/query/periods');
    });

    test('periods=126: Σ min(222 − j, 126) = (1 + … + 126) + 96 · 126 = 8001 + 12096 = 20097 → 400', async () => {
      assertProblem(await c.get(COH + qs({ ...q, periods: '126' }), { key: E.key }), 400, 'invalid_parameter', '/query/periods');
    });

    test('periods=125: (1 + … + 125) + 97 · 125 = 7875 + 12125 = 20000 cells exactly → 200', async () => {
      const body = await get(COH, E.key, { ...q, periods: '125' });
      assert.equal(body.cohorts.length, 222);
      assert.equal(body.cohorts.reduce((s, x) => s + x.periods.length, 0), 20000);
      // the first cohort: the week of 2021-09-27, 125 periods; the last: the week of as_of, 1 period (complete:
      // as_of is a Sunday).
      assert.deepEqual([body.cohorts[0].from, body.cohorts[0].to, body.cohorts[0].periods.length], ['2021-09-27', '2021-10-03', 125]);
      assert.deepEqual(body.cohorts[0].periods[124], { period: 124, from: '2024-02-12', to: '2024-02-18', complete: true, customers: 0, share: null, orders: 0, revenue: 0 });
      assert.deepEqual(cohort(body.cohorts[221]), ['2025-12-22', '2025-12-28', 0, [P(0, '2025-12-22', '2025-12-28', true, 0, null, 0, 0)]]);
      // cohort 97 (222 − 97 = 125 periods) is the last one cut by the limit
      assert.deepEqual(body.cohorts.slice(95, 100).map((x) => x.periods.length), [125, 125, 125, 124, 123]);
    });

    test('weekly over ten years with periods=1: 523 cohorts, 523 cells → 200', async () => {
      // 2016-01-01 is a Friday: the first cohort is [01-01, 01-03]; then one per Monday from 2016-01-04 to
      // 2025-12-29 (3647 days = 521 weeks apart → 522 Mondays), the last clipped to [12-29, 12-31].
      const body = await get(COH, E.key, { from: '2016-01-01', to: '2025-12-31', as_of: '2025-12-31', interval: 'week', periods: '1' });
      assert.equal(body.cohorts.length, 523);
      assert.deepEqual(cohort(body.cohorts[0]), ['2016-01-01', '2016-01-03', 0, [P(0, '2015-12-28', '2016-01-03', true, 0, null, 0, 0)]]);
      assert.deepEqual(cohort(body.cohorts[522]), ['2025-12-29', '2025-12-31', 0, [P(0, '2025-12-29', '2025-12-31', false, 0, null, 0, 0)]]);
    });

    test('monthly over ten years: 120 cohorts, 120 · 121 / 2 = 7260 cells → 200', async () => {
      const body = await get(COH, E.key, { from: '2016-01-01', to: '2025-12-31', as_of: '2025-12-31' });
      assert.equal(body.cohorts.length, 120);
      assert.equal(body.cohorts.reduce((s, x) => s + x.periods.length, 0), 7260);
    });
  });
});

// ---------------------------------------------------------------------------
// revenue mix

describe('GET /v1/metrics/revenue-mix', () => {
  // Shop V: see V_ORDERS. March occasions (n = number of the customer's occasion):
  //   v1 03-05 15001 (n 2)   v2 03-02 10000 (n 1), 03-12 20000 (n 2), 03-22 5000 (n 3)
  //   v3 03-10 10004 (n 1)   v4 03-20 7000 (n 1)
  const MARCH = { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30' };
  // revenue 15001 + 10000 + 20000 + 5000 + 10004 + 7000 = 67005; 6 orders; customers v1 v2 v3 v4 = 4.
  // first: v2 10000 + v3 10004 + v4 7000 = 27004 / 3 = 9001.33 → 9001.
  // repeat: v1 15001 + v2 20000 + 5000 = 40001 / 3 = 13333.67 → 13334.
  // new v2 v3 v4 = 3; returning v1 v2 = 2.
  // share 40001 / 67005 = 0.596985… → 0.597 (0.59695 · 67005 = 39998.6 < 40001 < 0.597 · 67005 = 40002.0).
  // AOV 67005 / 6 = 11167.5 → 11168 (half up). orders per customer 6 / 4 = 1.5.
  // days between: v1 03-05 − 02-10 = 23 (the previous occasion is before the period), v2 03-12 − 03-02 = 10,
  // 03-22 − 03-12 = 10 → 43 days over 3 intervals = 14.333… → 14.3333.
  const MARCH_MIX = mixOf(67005, 6, 4, [3, 27004, 9001], [3, 40001, 13334], 3, 2, 0.597, 11168, 1.5, [14.3333, 3, 43]);

  test('first vs repeat orders, new and returning customers, rounding half up', async () => {
    const { m, body } = await mix(V.keys.admin, MARCH);
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30',
      rule: DEFAULT_RULE, channel: null, currency: 'CNY',
    });
    assert.deepEqual(m, MARCH_MIX);
  });

  test('channel: only customers acquired through the channel', async () => {
    let { m, body } = await mix(V.keys.admin, { ...MARCH, channel: 'tmall' });
    assert.equal(body.definition.channel, 'tmall');
    // v4 only: 03-20 7000 (first). share 0 / 7000 = 0; no repeat occasions → days average null.
    assert.deepEqual(m, mixOf(7000, 1, 1, [1, 7000, 7000], [0, 0, null], 1, 0, 0, 7000, 1, [null, 0, 0]));
    ({ m } = await mix(V.keys.admin, { ...MARCH, channel: 'web' }));
    // v1 v2 v3: revenue 67005 − 7000 = 60005, 5 orders, 3 customers. first v2 10000 + v3 10004 = 20004 / 2 = 10002;
    // repeat as before 3, 40001, 13334. new v2 v3 = 2, returning v1 v2 = 2.
    // share 40001 / 60005 = 0.666628 → 0.6666. AOV 60005 / 5 = 12001. per customer 5 / 3 = 1.6667. days 43 / 3.
    assert.deepEqual(m, mixOf(60005, 5, 3, [2, 20004, 10002], [3, 40001, 13334], 2, 2, 0.6666, 12001, 1.6667, [14.3333, 3, 43]));
    ({ m } = await mix(V.keys.admin, { ...MARCH, channel: 'douyin' }));
    assert.deepEqual(m, MIX_EMPTY);
  });

  test('a range without occasions: zeros and nulls', async () => {
    const { m } = await mix(V.keys.admin, { from: '2025-06-01', to: '2025-06-30', as_of: '2025-06-30' });
    assert.deepEqual(m, MIX_EMPTY);
    const e = await mix(E.key, MARCH);
    assert.deepEqual(e.m, MIX_EMPTY);
  });

  test('as_of cuts later orders off: v4\'s 04-05 counts only from as_of 04-05 on', async () => {
    // [04-01, 04-05]: v4 04-05 9000 is its second occasion (03-20 before) → repeat, 16 days.
    let { m } = await mix(V.keys.admin, { from: '2025-04-01', to: '2025-04-05', as_of: '2025-04-05' });
    // share 9000 / 9000 = 1; days 04-05 − 03-20 = 11 + 5 = 16.
    assert.deepEqual(m, mixOf(9000, 1, 1, [0, 0, null], [1, 9000, 9000], 0, 1, 1, 9000, 1, [16, 1, 16]));
    ({ m } = await mix(V.keys.admin, { from: '2025-04-01', to: '2025-04-04', as_of: '2025-04-04' }));
    assert.deepEqual(m, MIX_EMPTY);
  });

  test('series by month: whole range and each bucket', async () => {
    const { m, body } = await mix(V.keys.admin, { from: '2025-02-01', to: '2025-03-31', as_of: '2025-04-30', interval: 'month' });
    // whole [02-01, 03-31]: March plus v1 02-10 10000 (n 1) and v5 02-15 10000 (n 2, after 01-15).
    // revenue 67005 + 20000 = 87005, 8 orders, 5 customers.
    // first v1 10000 + v2 10000 + v3 10004 + v4 7000 = 37004 / 4 = 9251.
    // repeat v5 10000 + v1 15001 + v2 20000 + 5000 = 50001 / 4 = 12500.25 → 12500.
    // new v1 v2 v3 v4 = 4; returning v5 v1 v2 = 3. share 50001 / 87005 = 0.57469… → 0.5747.
    // AOV 87005 / 8 = 10875.625 → 10876. per customer 8 / 5 = 1.6.
    // days: v5 02-15 − 01-15 = 31, v1 23, v2 10 + 10 → 74 / 4 = 18.5.
    assert.deepEqual(m, mixOf(87005, 8, 5, [4, 37004, 9251], [4, 50001, 12500], 4, 3, 0.5747, 10876, 1.6, [18.5, 4, 74]));
    assert.deepEqual(body.series, [
      // February: v1 02-10 (first) 10000, v5 02-15 (repeat, 31 days) 10000. share 0.5.
      { from: '2025-02-01', to: '2025-02-28', ...mixOf(20000, 2, 2, [1, 10000, 10000], [1, 10000, 10000], 1, 1, 0.5, 10000, 1, [31, 1, 31]) },
      { from: '2025-03-01', to: '2025-03-31', ...MARCH_MIX },
    ]);
  });

  test('series by week: clipped buckets, an empty week present', async () => {
    // [03-05 Wed, 03-18 Tue] by week: [03-05, 03-09], [03-10, 03-16], [03-17, 03-18].
    const { body } = await mix(V.keys.admin, { from: '2025-03-05', to: '2025-03-18', as_of: '2025-04-30', interval: 'week' });
    assert.deepEqual(body.series, [
      // v1 03-05 15001 (repeat, 23 days): share 1.
      { from: '2025-03-05', to: '2025-03-09', ...mixOf(15001, 1, 1, [0, 0, null], [1, 15001, 15001], 0, 1, 1, 15001, 1, [23, 1, 23]) },
      // v3 03-10 10004 (first), v2 03-12 20000 (repeat, 10 days): 30004, 2 orders, 2 customers;
      // share 20000 / 30004 = 0.66658 → 0.6666; AOV 15002.
      { from: '2025-03-10', to: '2025-03-16', ...mixOf(30004, 2, 2, [1, 10004, 10004], [1, 20000, 20000], 1, 1, 0.6666, 15002, 1, [10, 1, 10]) },
      { from: '2025-03-17', to: '2025-03-18', ...MIX_EMPTY },
    ]);
  });

  test('merge window: first_orders.orders counts merged orders and can exceed new_customers', async () => {
    const W = await mkShop();
    //   m1: 03-10 10:00 10000, 03-10 20:00 5000, 03-11 09:00 3000, 03-11 11:00 4000
    //   m2: 03-20 22:00 10000, 03-21 08:00 6000
    //   m3: 02-28 20:00 10000, 03-01 09:00 2000
    await load(W.key, [
      ord('m1-1', 'm1', '2025-03-10 10:00'), ord('m1-2', 'm1', '2025-03-10 20:00', { price: 5000 }),
      ord('m1-3', 'm1', '2025-03-11 09:00', { price: 3000 }), ord('m1-4', 'm1', '2025-03-11 11:00', { price: 4000 }),
      ord('m2-1', 'm2', '2025-03-20 22:00'), ord('m2-2', 'm2', '2025-03-21 08:00', { price: 6000 }),
      ord('m3-1', 'm3', '2025-02-28 20:00'), ord('m3-2', 'm3', '2025-03-01 09:00', { price: 2000 }),
    ]);
    // merge 0: every order its own occasion. March: m1 03-10 (n 1), 03-10 (n 2), 03-11 (n 3), 03-11 (n 4);
    // m2 03-20 (n 1), 03-21 (n 2); m3 03-01 (n 2, after 02-28).
    // revenue 10000 + 5000 + 3000 + 4000 + 10000 + 6000 + 2000 = 40000, 7 orders, 3 customers.
    // first m1 10000 + m2 10000 → 2, 20000, 10000. repeat 5000 + 3000 + 4000 + 6000 + 2000 → 5, 20000, 4000.
    // new m1 m2 = 2; returning m1 m2 m3 = 3; share 0.5; AOV 40000 / 7 = 5714.29 → 5714; per customer 7 / 3 = 2.3333.
    // days: m1 0 (same date), 1, 0; m2 1; m3 03-01 − 02-28 = 1 → 3 over 5 = 0.6.
    let { m } = await mix(W.key, MARCH);
    assert.deepEqual(m, mixOf(40000, 7, 3, [2, 20000, 10000], [5, 20000, 4000], 2, 3, 0.5, 5714, 2.3333, [0.6, 5, 3]));

    await patchRule(W.shopId, W.key, { merge_window_hours: 24 });
    // merge 24 h: m1 → 03-10 (10:00, 20:00, next day 09:00: 3 orders 18000) and 03-11 11:00 (25 h after
    // the start: 1 order 4000); m2 → 03-20 (2 orders 16000); m3 → 02-28 (2 orders), nothing dated in March.
    let body;
    ({ m, body } = await mix(W.key, MARCH));
    assert.deepEqual(body.definition.rule, { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 24 });
    // revenue 18000 + 4000 + 16000 = 38000, 6 orders, 2 customers.
    // first: m1 3 orders + m2 2 orders = 5 (> new_customers 2), 34000, 34000 / 5 = 6800.
    // repeat: m1 03-11 → 1, 4000, 4000. returning m1 = 1. share 4000 / 38000 = 0.105263 → 0.1053.
    // AOV 38000 / 6 = 6333.33 → 6333. per customer 6 / 2 = 3. days 03-11 − 03-10 = 1 → 1 / 1.
    assert.deepEqual(m, mixOf(38000, 6, 2, [5, 34000, 6800], [1, 4000, 4000], 2, 1, 0.1053, 6333, 3, [1, 1, 1]));
    assert.ok(m.first_orders.orders > m.new_customers);

    // A partial refund lowers revenue (net) but the order still counts.
    await refund(W.key, 'm1-4', 1000);
    ({ m } = await mix(W.key, MARCH));
    // repeat revenue 4000 − 1000 = 3000; revenue 37000; share 3000 / 37000 = 0.081081 → 0.0811;
    // AOV 37000 / 6 = 6166.67 → 6167.
    assert.deepEqual(m, mixOf(37000, 6, 2, [5, 34000, 6800], [1, 3000, 3000], 2, 1, 0.0811, 6167, 3, [1, 1, 1]));
  });
});

// ---------------------------------------------------------------------------
// first order

describe('GET /v1/metrics/first-order', () => {
  // Shop F, cohort of [01-01, 01-31]: f1 f2 f3 f4 f5 f7 = 6 (f6 started 2024-12-28).
  //   days to the second occasion: f1 15, f2 50 (01-10 → 03-01: 21 + 28 + 1), f4 5, f5 85 (6 + 28 + 31 + 20);
  //   f3, f7 never.
  const N = (numerator, denominator, rate, censored) => [numerator, denominator, rate, censored];

  test('overall, by role (overlapping) and by channel (byte order), window 30', async () => {
    const { overall, roles, channels, body } = await first(F.key, { from: '2025-01-01', to: '2025-01-31', as_of: '2025-04-30', window_days: '30' });
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-01-01', to: '2025-01-31', as_of: '2025-04-30',
      rule: DEFAULT_RULE, channel: null, window_days: 30,
    });
    // 6 customers; back by as_of 04-30: f1 f2 f4 f5 (04-20) → 4/6 = 0.6667.
    // 30 days: nobody censored (01-31 + 30 = 03-02 ≤ 04-30); within 30 days f1 (15), f4 (5) → 2/6 = 0.3333.
    assert.deepEqual(overall, [6, 4, 0.6667, N(2, 6, 0.3333, 0)]);
    assert.deepEqual(roles, [
      // traffic: f1 (traffic + regular lines), f2 → both back → 1; within 30: f1 → 1/2.
      ['traffic', 2, 2, 1, N(1, 2, 0.5, 0)],
      // activity: f3, f7 → nobody back.
      ['activity', 2, 0, 0, N(0, 2, 0, 0)],
      // regular: f1 (again), f4, f5 → all back → 1; within 30: f1, f4 → 2/3 = 0.6667.
      ['regular', 3, 3, 1, N(2, 3, 0.6667, 0)],
    ]);
    assert.deepEqual(channels, [
      // byte order: "JD" < "douyin" < "tmall" < "web"
      ['JD', 1, 0, 0, N(0, 1, 0, 0)], // f3
      ['douyin', 1, 1, 1, N(1, 1, 1, 0)], // f4 (5 days)
      ['tmall', 2, 1, 0.5, N(0, 2, 0, 0)], // f2 (50 days), f7
      ['web', 2, 2, 1, N(1, 2, 0.5, 0)], // f1 (15), f5 (85)
    ]);
  });

  test('censoring with the default window (90 days); a second occasion on as_of counts', async () => {
    const { overall, roles, channels, body } = await first(F.key, { from: '2025-01-01', to: '2025-01-31', as_of: '2025-04-20' });
    assert.equal(body.definition.window_days, 90);
    assert.equal(body.definition.channel, null);
    // windows end: f1 04-05, f2 04-10, f3 04-15, f4 04-20 (= as_of: not censored), f5 04-25 and f7 05-01 (censored).
    // back by as_of 04-20: f1 f2 f4 f5 (04-20 itself) → 4/6 = 0.6667.
    // 90 days: uncensored f1 f2 f3 f4, back within 90 f1 (15) f2 (50) f4 (5) → 3/4 = 0.75, censored 2.
    assert.deepEqual(overall, [6, 4, 0.6667, N(3, 4, 0.75, 2)]);
    assert.deepEqual(roles, [
      ['traffic', 2, 2, 1, N(2, 2, 1, 0)], // f1, f2
      ['activity', 2, 0, 0, N(0, 1, 0, 1)], // f3 not back; f7 censored
      ['regular', 3, 3, 1, N(2, 2, 1, 1)], // f1, f4 back; f5 censored
    ]);
    assert.deepEqual(channels, [
      ['JD', 1, 0, 0, N(0, 1, 0, 0)],
      ['douyin', 1, 1, 1, N(1, 1, 1, 0)],
      ['tmall', 2, 1, 0.5, N(1, 1, 1, 1)], // f2 back in 50; f7 censored
      ['web', 2, 2, 1, N(1, 1, 1, 1)], // f1 back; f5 censored
    ]);
  });

  test('the three roles are always listed, in order, even with no customers', async () => {
    let { overall, roles, channels } = await first(F.key, { from: '2025-01-01', to: '2025-01-10', as_of: '2025-04-30', window_days: '30' });
    // cohort f1 (01-05), f2 (01-10); both back; within 30 f1 → 1/2.
    assert.deepEqual(overall, [2, 2, 1, N(1, 2, 0.5, 0)]);
    assert.deepEqual(roles, [
      ['traffic', 2, 2, 1, N(1, 2, 0.5, 0)],
      ['activity', 0, 0, null, N(0, 0, null, 0)],
      ['regular', 1, 1, 1, N(1, 1, 1, 0)], // f1
    ]);
    assert.deepEqual(channels, [['tmall', 1, 1, 1, N(0, 1, 0, 0)], ['web', 1, 1, 1, N(1, 1, 1, 0)]]);

    ({ overall, roles, channels } = await first(F.key, { from: '2025-02-01', to: '2025-02-28', as_of: '2025-04-30' }));
    assert.deepEqual(overall, [0, 0, null, N(0, 0, null, 0)]);
    assert.deepEqual(roles, [
      ['traffic', 0, 0, null, N(0, 0, null, 0)],
      ['activity', 0, 0, null, N(0, 0, null, 0)],
      ['regular', 0, 0, null, N(0, 0, null, 0)],
    ]);
    assert.deepEqual(channels, []);
  });

  test('roles of a merged first occasion: every order in it counts', async () => {
    const G = await mkShop();
    //   g1: 01-10 10:00 traffic, 01-10 15:00 activity, 01-20 regular
    //   g2: 01-12 regular
    await load(G.key, [
      ord('g1-1', 'g1', '2025-01-10 10:00', { roles: ['traffic'] }), ord('g1-2', 'g1', '2025-01-10 15:00', { roles: ['activity'] }),
      ord('g1-3', 'g1', '2025-01-20'),
      ord('g2-1', 'g2', '2025-01-12'),
    ]);
    const q = { from: '2025-01-01', to: '2025-01-31', as_of: '2025-04-30', window_days: '30' };
    // merge 0: g1's first occasion is the 10:00 traffic order, its second the 15:00 one (0 days).
    // cohort g1 g2; back g1 → 1/2; nobody censored (01-12 + 30 = 02-11); within 30 days g1 → 1/2.
    let { overall, roles, channels } = await first(G.key, q);
    assert.deepEqual(overall, [2, 1, 0.5, N(1, 2, 0.5, 0)]);
    assert.deepEqual(roles, [
      ['traffic', 1, 1, 1, N(1, 1, 1, 0)], // g1
      ['activity', 0, 0, null, N(0, 0, null, 0)],
      ['regular', 1, 0, 0, N(0, 1, 0, 0)], // g2
    ]);
    assert.deepEqual(channels, [['web', 2, 1, 0.5, N(1, 2, 0.5, 0)]]);

    await patchRule(G.shopId, G.key, { merge_window_hours: 24 });
    // merge 24 h: g1's first occasion holds the traffic and the activity order (5 h apart); second 01-20 (10 days).
    ({ overall, roles, channels } = await first(G.key, q));
    assert.deepEqual(overall, [2, 1, 0.5, N(1, 2, 0.5, 0)]);
    assert.deepEqual(roles, [
      ['traffic', 1, 1, 1, N(1, 1, 1, 0)], // g1
      ['activity', 1, 1, 1, N(1, 1, 1, 0)], // g1 too
      ['regular', 1, 0, 0, N(0, 1, 0, 0)], // g2 (g1's regular order is its second occasion)
    ]);
    assert.deepEqual(channels, [['web', 2, 1, 0.5, N(1, 2, 0.5, 0)]]);
  });

  test('the first occasion before the range: f6 is not in the cohort', async () => {
    const { overall, roles, channels } = await first(F.key, { from: '2024-12-01', to: '2024-12-31', as_of: '2025-04-30', window_days: '30' });
    // cohort f6 (2024-12-28, traffic, web), back 01-10 = 13 days.
    assert.deepEqual(overall, [1, 1, 1, N(1, 1, 1, 0)]);
    assert.deepEqual(roles, [
      ['traffic', 1, 1, 1, N(1, 1, 1, 0)],
      ['activity', 0, 0, null, N(0, 0, null, 0)],
      ['regular', 0, 0, null, N(0, 0, null, 0)],
    ]);
    assert.deepEqual(channels, [['web', 1, 1, 1, N(1, 1, 1, 0)]]);
  });
});

// ---------------------------------------------------------------------------
// sales decomposition

describe('GET /v1/metrics/sales-decomposition', () => {
  // Shop D holds V's orders. March: sales 67005, 6 orders, buyers v1 v2 v3 v4 = 4 (see revenue-mix),
  // AOV 67005 / 6 = 11167.5 → 11168, repurchase (6 − 4) / 4 = 0.5.
  const MARCH = { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30' };
  const TRAFFIC = [
    { date: '2025-02-28', channel: 'web', visitors: 999, sessions: 999 },
    { date: '2025-03-01', channel: 'web', visitors: 1500, sessions: 2000 },
    { date: '2025-03-01', channel: 'tmall', visitors: 600, sessions: 700 },
    { date: '2025-03-10', channel: 'app', visitors: 0, sessions: 0 },
    { date: '2025-03-15', channel: 'web', visitors: 1500, sessions: 1800 },
    { date: '2025-03-31', channel: 'tmall', visitors: 400, sessions: 500 },
    { date: '2025-04-01', channel: 'web', visitors: 777, sessions: 777 },
  ];

  test('without traffic: visitors, sessions, conversion null; traffic_days 0', async () => {
    const { d, body } = await dec(D.key, MARCH);
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30',
      rule: DEFAULT_RULE, channel: null, currency: 'CNY',
    });
    assert.deepEqual(d, decOf(67005, null, null, 0, 4, null, 6, 11168, 0.5));
    // sales is the revenue of revenue-mix
    const m = await get(MIX, D.key, MARCH);
    assert.equal(m.revenue, d.sales);
  });

  test('with traffic: sums over the period\'s dates; channel uses that channel\'s rows', async () => {
    const posted = await postTraffic(D.key, TRAFFIC);
    assert.deepEqual(posted, { days: TRAFFIC, created: 7, updated: 0 });

    let { d } = await dec(D.key, MARCH);
    // March rows: web 1500 + 1500, tmall 600 + 400, app 0 → visitors 4000, sessions 2000 + 1800 + 700 + 500 + 0 = 5000;
    // dates 03-01, 03-10, 03-15, 03-31 → 4 (02-28 and 04-01 are outside). conversion 4 / 4000 = 0.001.
    assert.deepEqual(d, decOf(67005, 4000, 5000, 4, 4, 0.001, 6, 11168, 0.5));
    // visitors × conversion × AOV × (1 + repurchase) = 4000 · 0.001 · 11168 · 1.5 = 67008 ≈ 67005 (AOV rounded)
    const product = d.visitors * d.conversion_rate * d.average_order_value * (1 + d.repurchase_rate);
    assert.ok(Math.abs(product - d.sales) / d.sales < 0.001, `product ${product} vs sales ${d.sales}`);

    let body;
    ({ d, body } = await dec(D.key, { ...MARCH, channel: 'tmall' }));
    assert.equal(body.definition.channel, 'tmall');
    // buyers acquired via tmall: v4 (03-20 7000) → 1 buyer, 1 order, repurchase 0 / 1 = 0.
    // tmall traffic in March: 600 + 400 = 1000 visitors, 700 + 500 = 1200 sessions, 2 dates; conversion 1 / 1000.
    assert.deepEqual(d, decOf(7000, 1000, 1200, 2, 1, 0.001, 1, 7000, 0));

    ({ d } = await dec(D.key, { ...MARCH, channel: 'web' }));
    // v1 v2 v3: sales 60005, 5 orders, 3 buyers, AOV 12001, repurchase (5 − 3) / 3 = 0.6667.
    // web traffic in March: 1500 + 1500 = 3000 visitors, 2000 + 1800 = 3800 sessions, 2 dates; conversion 3 / 3000 = 0.001.
    assert.deepEqual(d, decOf(60005, 3000, 3800, 2, 3, 0.001, 5, 12001, 0.6667));
    // 3000 · 0.001 · 12001 · 1.6667 = 60006.2 ≈ 60005 (repurchase rounded)
    const p2 = d.visitors * d.conversion_rate * d.average_order_value * (1 + d.repurchase_rate);
    assert.ok(Math.abs(p2 - d.sales) / d.sales < 0.001, `product ${p2} vs sales ${d.sales}`);

    ({ d } = await dec(D.key, { ...MARCH, channel: 'app' }));
    // app: one row with 0 visitors: visitors 0 (not null), 1 traffic day; no buyers → conversion null
    // (visitors 0), AOV and repurchase null.
    assert.deepEqual(d, decOf(0, 0, 0, 1, 0, null, 0, null, null));

    ({ d } = await dec(D.key, { ...MARCH, channel: 'douyin' }));
    assert.deepEqual(d, decOf(0, null, null, 0, 0, null, 0, null, null));

    // A single day with traffic and no buyers: 03-01 → visitors 1500 + 600 = 2100, sessions 2700, 1 day;
    // conversion 0 / 2100 = 0 (not null).
    ({ d } = await dec(D.key, { from: '2025-03-01', to: '2025-03-01', as_of: '2025-04-30' }));
    assert.deepEqual(d, decOf(0, 2100, 2700, 1, 0, 0, 0, null, null));
  });

  test('series by month (traffic of the previous test)', async () => {
    const { d, body } = await dec(D.key, { from: '2025-02-01', to: '2025-03-31', as_of: '2025-04-30', interval: 'month' });
    // whole: sales 87005, 8 orders, buyers v1..v5 = 5 (see revenue-mix). visitors 999 + 4000 = 4999, sessions
    // 999 + 5000 = 5999, dates 02-28 + 4 = 5. conversion 5 / 4999 = 0.0010002 → 0.001.
    // AOV 87005 / 8 = 10875.625 → 10876; repurchase (8 − 5) / 5 = 0.6.
    assert.deepEqual(d, decOf(87005, 4999, 5999, 5, 5, 0.001, 8, 10876, 0.6));
    assert.deepEqual(body.series, [
      // February: v1 02-10 10000, v5 02-15 10000 → 2 buyers, 2 orders, repurchase 0; traffic 02-28 web 999/999;
      // conversion 2 / 999 = 0.002002 → 0.002.
      { from: '2025-02-01', to: '2025-02-28', ...decOf(20000, 999, 999, 1, 2, 0.002, 2, 10000, 0) },
      { from: '2025-03-01', to: '2025-03-31', ...decOf(67005, 4000, 5000, 4, 4, 0.001, 6, 11168, 0.5) },
    ]);
  });

  test('a shop without orders or traffic: zeros and nulls', async () => {
    const { d } = await dec(E.key, MARCH);
    assert.deepEqual(d, decOf(0, null, null, 0, 0, null, 0, null, null));
  });
});

// ---------------------------------------------------------------------------
// authentication, scopes, methods

describe('authentication and scopes', () => {
  for (const path of [COH, MIX, FIRST, DEC]) {
    test(`${path}: admin and readonly get the same answer; storefront and platform 403; no key 401`, async () => {
      const q = '?from=2025-03-01&to=2025-03-31&as_of=2025-04-30';
      const a = await c.get(path + q, { key: V.keys.admin });
      const ro = await c.get(path + q, { key: V.keys.readonly });
      assert.equal(a.status, 200, a.text);
      assert.equal(ro.status, 200, ro.text);
      assert.deepEqual(ro.body, a.body);
      assertProblem(await c.get(path + q, { key: V.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path + q, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(path + q), 401, 'unauthenticated');
      assertProblem(await c.get(path + q, { key: `rb_aaaaaaaa_${'A'.repeat(43)}` }), 401, 'unauthenticated');
      // scope is checked before the parameters
      assertProblem(await c.get(`${path}?foo=1`, { key: V.keys.storefront }), 403, 'forbidden');
    });
  }
});

describe('methods', () => {
  test('other methods → 405 with Allow: GET', async () => {
    for (const path of [COH, MIX, FIRST, DEC]) {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const r = await c.req(method, path, { key: V.keys.admin, body: method === 'DELETE' ? undefined : {} });
        assertProblem(r, 405, 'method_not_allowed');
        assert.equal(r.headers.allow, 'GET', `${method} ${path}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// bad query parameters

describe('bad query parameters → 400 invalid_parameter', () => {
  const OK = 'as_of=2025-06-30';
  const dates = [
    ['from=2025-02-30', 'from'], ['from=2025-13-01', 'from'], ['from=2025-3-1', 'from'], ['from=20250301', 'from'],
    ['from=', 'from'], ['to=2025-04-31', 'to'], ['to=', 'to'], ['as_of=2025-06-31', 'as_of'], ['as_of=', 'as_of'],
    ['from=2025-04-01&to=2025-03-31&as_of=2025-06-30', 'from'],
    ['to=2025-07-01&as_of=2025-06-30', 'to'],
    ['as_of=2999-01-01', 'as_of'],
    ['from=2015-01-01&to=2025-06-30&as_of=2025-06-30', 'from'], // 3834 days > 3660
    ['foo=1', 'foo'], ['From=2025-03-01', 'From'],
    ['from=2025-03-01&from=2025-03-01', 'from'], ['as_of=2025-06-30&as_of=2025-06-30', 'as_of'],
  ];
  const channel = [
    ['channel=', 'channel'], ['channel=web%20shop', 'channel'], [`channel=${'w'.repeat(65)}`, 'channel'],
    ['channel=web&channel=web', 'channel'],
  ];
  const interval = [
    ['interval=day', 'interval'], ['interval=Week', 'interval'], ['interval=year', 'interval'], ['interval=', 'interval'],
    ['interval=week&interval=month', 'interval'],
  ];
  const cohOnly = [
    ['periods=0', 'periods'], ['periods=601', 'periods'], ['periods=abc', 'periods'], ['periods=-1', 'periods'],
    ['periods=1.5', 'periods'], ['periods=', 'periods'], ['periods=%2B5', 'periods'], ['periods=12abc', 'periods'],
    ['periods=99999999999999999999', 'periods'], ['periods=12&periods=12', 'periods'],
    ['window_days=90', 'window_days'],
  ];
  const mixOnly = [['periods=12', 'periods'], ['window_days=90', 'window_days']];
  const decOnly = [['periods=12', 'periods'], ['window_days=90', 'window_days']];
  const firstOnly = [
    ['channel=web', 'channel'], ['channel=', 'channel'],
    ['interval=month', 'interval'], ['periods=12', 'periods'],
    ['window_days=0', 'window_days'], ['window_days=3651', 'window_days'], ['window_days=abc', 'window_days'],
    ['window_days=1.5', 'window_days'], ['window_days=', 'window_days'], ['window_days=30&window_days=30', 'window_days'],
  ];
  const cases = [
    ...[...dates, ...channel, ...interval, ...cohOnly].map(([q, n]) => [COH, q, n]),
    ...[...dates, ...channel, ...interval, ...mixOnly].map(([q, n]) => [MIX, q, n]),
    ...[...dates, ...firstOnly].map(([q, n]) => [FIRST, q, n]),
    ...[...dates, ...channel, ...interval, ...decOnly].map(([q, n]) => [DEC, q, n]),
  ];
  for (const [path, q, name] of cases) {
    const full = /as_of=/.test(q) ? q : `${q}&${OK}`;
    test(`${path}?${full.length > 70 ? `${full.slice(0, 70)}…` : full} → /query/${name}`, async () => {
      assertProblem(await c.get(`${path}?${full}`, { key: V.keys.admin }), 400, 'invalid_parameter', `/query/${name}`);
    });
  }

  test('the limits themselves are accepted', async () => {
    await get(COH, V.keys.admin, { as_of: '2025-06-30', periods: '1' });
    await get(COH, V.keys.admin, { as_of: '2025-06-30', periods: '600', interval: 'week' });
    await get(COH, V.keys.admin, { as_of: '2025-06-30', interval: 'month', channel: 'store:jingan.main_1-A' });
    await get(MIX, V.keys.admin, { as_of: '2025-06-30', interval: 'week' });
    await get(FIRST, V.keys.admin, { as_of: '2025-06-30', window_days: '1' });
    await get(FIRST, V.keys.admin, { as_of: '2025-06-30', window_days: '3650' });
    await get(DEC, V.keys.admin, { from: '2016-01-01', to: '2025-12-31', as_of: '2025-12-31', interval: 'month' });
  });

  test('defaults: to = as_of, from = to − 89 days', async () => {
    for (const path of [COH, MIX, FIRST, DEC]) {
      const body = await get(path, V.keys.admin, { as_of: '2025-06-30' });
      assert.equal(body.definition.to, '2025-06-30', path);
      assert.equal(body.definition.from, '2025-04-02', path); // Apr 2..30 (29) + May (31) + June (30) = 90 days
    }
  });
});
