// Repurchase metrics (metrics.md): GET /v1/metrics/repurchase and
// GET /v1/metrics/time-to-second-purchase over small hand-made histories.
// Every expected number below is worked out by hand in the comment next to
// it (never by re-implementing the metric), with fixed 2025 dates and an
// explicit as_of, so the results do not depend on today's date.
//
// Dates are calendar dates in the shop's time zone. Unless a test says
// otherwise the shops are in Asia/Shanghai and orders are placed at 10:00
// local time. Notation in the comments: "a2: 03-02, 03-20" means customer a2
// has purchase occasions dated 2025-03-02 and 2025-03-20.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, uniq,
} from '../lib/harness.js';

let svc;
let c;

const REP = '/v1/metrics/repurchase';
const TTS = '/v1/metrics/time-to-second-purchase';
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

/** One order: one line per category, each at `price`. */
function ord(id, customer, when, { channel = 'web', cats = ['tea'], price = 10000 } = {}) {
  return {
    id,
    customer_id: customer,
    placed_at: at(when),
    channel,
    currency: 'CNY',
    lines: cats.map((category, i) => ({ sku: `SKU-${category}-${i}`, category, role: 'regular', quantity: 1, unit_price: price })),
    total: price * cats.length,
  };
}

/** A shop (platform key) in the given time zone; returns {shopId, key}. */
async function mkShop(timezone = 'Asia/Shanghai') {
  const r = await c.post('/v1/shops', { name: uniq('Metrics Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
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

/** The rates of a repurchase response (or of one series bucket) as compact arrays. */
function rates(x) {
  const ret = x.returning_customer_rate;
  const inp = x.in_period_repeat_rate;
  const nd = x.n_day_repurchase_rate;
  const out = {
    ret: [ret.numerator, ret.denominator, ret.rate],
    inp: [inp.numerator, inp.denominator, inp.rate],
    nday: [nd.numerator, nd.denominator, nd.rate, nd.censored],
  };
  if ('mode' in nd) out.nday.push(nd.mode);
  return out;
}

/** GET /v1/metrics/repurchase, checking descriptions; returns {rates, body}. */
async function rep(key, q) {
  const body = await get(REP, key, q);
  for (const k of ['returning_customer_rate', 'in_period_repeat_rate', 'n_day_repurchase_rate']) {
    assert.equal(typeof body[k].description, 'string');
    assert.ok(body[k].description.length > 0, `${k}.description is not empty`);
  }
  if (q.interval === undefined) assert.ok(!('series' in body), 'no series without interval');
  return { r: rates(body), body };
}

/** A time-to-second group as compact values; KM points as [day, at_risk, events, censored, survival]. */
function group(g) {
  const out = {
    customers: g.customers,
    repeat: g.repeat_customers,
    share: g.repeat_share,
    days: [g.days.p25, g.days.median, g.days.p75, g.days.p90],
    median_days: g.kaplan_meier.median_days,
    curve: g.kaplan_meier.curve.map((p) => [p.day, p.at_risk, p.events, p.censored, p.survival]),
  };
  if ('category' in g) out.category = g.category;
  return out;
}

async function tts(key, q) {
  const body = await get(TTS, key, q);
  return { overall: group(body.overall), categories: body.categories.map(group), body };
}

const EMPTY_RATES = { ret: [0, 0, null], inp: [0, 0, null], nday: [0, 0, null, 0, null] };
const EMPTY_GROUP = { customers: 0, repeat: 0, share: null, days: [null, null, null, null], median_days: null, curve: [] };

/** Today's date in a time zone, YYYY-MM-DD. */
const today = (timeZone) => new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
const addDays = (date, n) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);

// ---------------------------------------------------------------------------
// Shops and their histories

let A; // basic rates (setupShop: has admin, storefront and readonly keys)
let M; // mode boundaries
let Z; // Asia/Shanghai day boundaries
let U; // UTC, the same orders (and ids) as Z
let S; // series
let T; // time to second purchase
let E; // no orders at all

before(async () => {
  svc = await startService();
  c = api(svc);

  A = await setupShop(svc);
  await load(A.keys.admin, [
    ord('a1-1', 'a1', '2025-01-10'), ord('a1-2', 'a1', '2025-03-05'),
    ord('a2-1', 'a2', '2025-03-02'), ord('a2-2', 'a2', '2025-03-20'),
    ord('a3-1', 'a3', '2025-03-10'),
    ord('a4-1', 'a4', '2025-03-15'), ord('a4-2', 'a4', '2025-04-20'),
    ord('a5-1', 'a5', '2025-03-31'), ord('a5-2', 'a5', '2025-04-30'),
    ord('a6-1', 'a6', '2025-02-01'), ord('a6-2', 'a6', '2025-02-15'),
    ord('a7-1', 'a7', '2025-04-05'),
    ord('a8-1', 'a8', '2025-03-25'), ord('a8-2', 'a8', '2025-07-10'),
  ]);

  // M: first orders on the 10th of Jan (20 customers), Feb (10), Mar (7),
  // Apr (7); 3, 3, 2 and 1 of them order again on the 20th.
  M = await mkShop();
  const mOrders = [];
  for (const [month, n, back] of [['01', 20, 3], ['02', 10, 3], ['03', 7, 2], ['04', 7, 1]]) {
    for (let i = 0; i < n; i++) {
      mOrders.push(ord(`m${month}-${i}-1`, `m${month}-${i}`, `2025-${month}-10`));
      if (i < back) mOrders.push(ord(`m${month}-${i}-2`, `m${month}-${i}`, `2025-${month}-20`));
    }
  }
  await load(M.key, mOrders);

  // Z and U: the same orders, order ids and customer ids, in two time zones.
  //   z1: 2025-03-31T23:30+08:00 (= 15:30Z) and 2025-04-01T00:10+08:00 (= 2025-03-31T16:10Z)
  //   z2: 2025-03-31T16:30:00Z (= 2025-04-01 00:30 in Shanghai)
  //   z3: 2025-03-31T15:59:59Z (= 2025-03-31 23:59:59 in Shanghai)
  const zOrders = [
    ord('z1-1', 'z1', '2025-03-31T23:30:00+08:00'), ord('z1-2', 'z1', '2025-04-01T00:10:00+08:00'),
    ord('z2-1', 'z2', '2025-03-31T16:30:00Z'),
    ord('z3-1', 'z3', '2025-03-31T15:59:59Z'),
  ];
  Z = await mkShop('Asia/Shanghai');
  await load(Z.key, zOrders);
  U = await mkShop('UTC');
  await load(U.key, zOrders);

  S = await mkShop();
  await load(S.key, [
    ord('s1-1', 's1', '2025-03-04'), ord('s1-2', 's1', '2025-03-06'),
    ord('s2-1', 's2', '2025-03-07'), ord('s2-2', 's2', '2025-03-08'),
    ord('s3-1', 's3', '2025-03-19'), ord('s3-2', 's3', '2025-03-21'),
    ord('s4-1', 's4', '2025-03-20'),
    ord('s5-1', 's5', '2025-01-20'), ord('s5-2', 's5', '2025-02-03'),
  ]);

  T = await mkShop();
  await load(T.key, [
    ord('t1-1', 't1', '2025-01-01'), ord('t1-2', 't1', '2025-01-11'),
    ord('t2-1', 't2', '2025-01-01'), ord('t2-2', 't2', '2025-01-21', { cats: ['teaware'], channel: 'tmall' }),
    ord('t3-1', 't3', '2025-01-05', { cats: ['tea', 'teaware'] }), ord('t3-2', 't3', '2025-01-15'),
    ord('t4-1', 't4', '2025-01-10', { cats: ['teaware'], channel: 'tmall' }), ord('t4-2', 't4', '2025-02-09', { cats: ['teaware'] }),
    ord('t4-3', 't4', '2025-02-20'),
    ord('t5-1', 't5', '2025-01-31'),
    ord('t6-1', 't6', '2025-01-20 09:00'), ord('t6-2', 't6', '2025-01-20 18:00'),
    ord('t7-1', 't7', '2024-12-15'), ord('t7-2', 't7', '2025-01-10'),
    ord('t8-1', 't8', '2025-01-25', { cats: ['teaware'], channel: 'tmall' }),
    ord('t8-2', 't8', '2025-03-02', { cats: ['teaware'], channel: 'tmall' }),
  ]);

  E = await mkShop();
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------

describe('GET /v1/metrics/repurchase: the three rates', () => {
  // Shop A:  a1: 01-10, 03-05   a2: 03-02, 03-20   a3: 03-10   a4: 03-15, 04-20
  //          a5: 03-31, 04-30   a6: 02-01, 02-15   a7: 04-05   a8: 03-25, 07-10
  test('March, window 30, as_of 2025-06-30: numerators, denominators, rates, definition', async () => {
    const { r, body } = await rep(A.keys.admin, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30', window_days: '30' });
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30',
      rule: DEFAULT_RULE, channel: null, window_days: 30,
    });
    assert.deepEqual(r, {
      // active (an occasion in March): a1 a2 a3 a4 a5 a8 = 6.
      // returning: ≥ 2 occasions dated ≤ 03-31: a1 (01-10, 03-05, the earlier one
      // before `from`), a2 = 2 → 2/6 = 0.33333 → 0.3333. a4 and a5 come back only in April.
      ret: [2, 6, 0.3333],
      // in-period: ≥ 2 occasions in March: a2 only → 1/6 = 0.16667 → 0.1667.
      inp: [1, 6, 0.1667],
      // cohort (first occasion in March): a2 a3 a4 a5 a8 = 5; none censored
      // (latest first date 03-31 + 30 = 04-30 ≤ 06-30).
      // back within 30 days: a2 (03-20 ≤ 04-01); a5 (04-30 ≤ 03-31+30 = 04-30, inclusive).
      // not: a3 (never), a4 (04-20 > 03-15+30 = 04-14), a8 (07-10 is after as_of).
      // 2/5 = 0.4 ≥ 0.30 → loyalty.
      nday: [2, 5, 0.4, 0, 'loyalty'],
    });
  });

  test('window_days 29 drops a5, whose second occasion is exactly 30 days after the first', async () => {
    const { r, body } = await rep(A.keys.admin, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30', window_days: '29' });
    assert.equal(body.definition.window_days, 29);
    // ret and inp do not depend on the window. n-day: only a2 → 1/5 = 0.2 → hybrid.
    assert.deepEqual(r, { ret: [2, 6, 0.3333], inp: [1, 6, 0.1667], nday: [1, 5, 0.2, 0, 'hybrid'] });
  });

  test('censoring near as_of: first date + window_days > as_of is censored, = as_of is not', async () => {
    // as_of 04-20: windows end a2 04-01, a3 04-09, a4 04-14 (over) and a5 04-30,
    // a8 04-24 (not over: censored 2). Numerator a2 → 1/3 = 0.3333 → loyalty.
    let { r } = await rep(A.keys.admin, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-20', window_days: '30' });
    assert.deepEqual(r, { ret: [2, 6, 0.3333], inp: [1, 6, 0.1667], nday: [1, 3, 0.3333, 2, 'loyalty'] });
    // as_of 04-09: a3's window ends exactly on as_of → not censored; a4, a5, a8
    // censored. a2 back, a3 not → 1/2 = 0.5.
    ({ r } = await rep(A.keys.admin, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-09', window_days: '30' }));
    assert.deepEqual(r.nday, [1, 2, 0.5, 3, 'loyalty']);
    // as_of 04-08: a3 censored too → only a2 left → 1/1.
    ({ r } = await rep(A.keys.admin, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-08', window_days: '30' }));
    assert.deepEqual(r.nday, [1, 1, 1, 4, 'loyalty']);
  });

  test('defaults: to = as_of, from = to − 89 days, window_days 90; rate and mode null when all are censored', async () => {
    const { r, body } = await rep(A.keys.readonly, { as_of: '2025-06-30' });
    // 06-30 − 89 days = 04-02 (Apr 2..30 = 29 days, May 31, Jun 30: 90 days).
    assert.deepEqual(body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-04-02', to: '2025-06-30', as_of: '2025-06-30',
      rule: DEFAULT_RULE, channel: null, window_days: 90,
    });
    assert.deepEqual(r, {
      // active in [04-02, 06-30]: a4 (04-20), a5 (04-30), a7 (04-05) = 3; a8's 07-10 is after as_of.
      // returning: a4 and a5 (their March occasion counts) → 2/3 = 0.6667.
      ret: [2, 3, 0.6667],
      // in-period: nobody has two occasions in the range → 0/3 = 0.
      inp: [0, 3, 0],
      // cohort: a7 (04-05 + 90 = 07-04 > 06-30: censored) → 0/0.
      nday: [0, 0, null, 1, null],
    });
  });

  test('only `to` given: from = to − 89 days', async () => {
    const { r, body } = await rep(A.keys.admin, { to: '2025-03-31', as_of: '2025-06-30' });
    // 03-31 − 89 days = 01-01 (Jan 31 + Feb 28 + Mar 31 = 90 days).
    assert.equal(body.definition.from, '2025-01-01');
    assert.equal(body.definition.to, '2025-03-31');
    assert.equal(body.definition.window_days, 90);
    assert.deepEqual(r, {
      // active in Q1: a1 a2 a3 a4 a5 a6 a8 = 7; returning: a1, a2, a6 → 3/7 = 0.42857 → 0.4286.
      ret: [3, 7, 0.4286],
      // in-period: a1 (01-10, 03-05), a2, a6 (02-01, 02-15) → 3/7.
      inp: [3, 7, 0.4286],
      // cohort: all 7; none censored (first dates ≤ 03-31, + 90 ≤ 06-29).
      // back within 90 days: a1 (03-05 ≤ 04-10), a2, a4 (04-20 ≤ 06-13), a5 (04-30 ≤ 06-29), a6;
      // not a3, a8 (07-10 after as_of) → 5/7 = 0.71429 → 0.7143.
      nday: [5, 7, 0.7143, 0, 'loyalty'],
    });
  });

  test('as_of defaults to today in the shop time zone', async () => {
    const before1 = today('Asia/Shanghai');
    const body = await get(REP, A.keys.admin);
    const after1 = today('Asia/Shanghai');
    assert.ok([before1, after1].includes(body.definition.as_of), `as_of ${body.definition.as_of}, today ${before1}`);
    assert.equal(body.definition.to, body.definition.as_of);
    assert.equal(body.definition.from, addDays(body.definition.as_of, -89));
    // as_of = today explicitly is allowed
    await get(REP, A.keys.admin, { as_of: today('Asia/Shanghai') });
  });
});

describe('mode labels', () => {
  // Shop M, window 30: every customer's first order is on the 10th, the
  // repeaters come back on the 20th of the same month.
  const q = (from, to) => ({ from, to, as_of: '2025-12-31', window_days: '30' });
  test('exactly 0.15 → hybrid (3 of 20)', async () => {
    const { r } = await rep(M.key, q('2025-01-01', '2025-01-31'));
    assert.deepEqual(r, { ret: [3, 20, 0.15], inp: [3, 20, 0.15], nday: [3, 20, 0.15, 0, 'hybrid'] });
  });
  test('exactly 0.30 → loyalty (3 of 10)', async () => {
    const { r } = await rep(M.key, q('2025-02-01', '2025-02-28'));
    assert.deepEqual(r, { ret: [3, 10, 0.3], inp: [3, 10, 0.3], nday: [3, 10, 0.3, 0, 'loyalty'] });
  });
  test('just below 0.30 → hybrid (2 of 7 = 0.2857)', async () => {
    const { r } = await rep(M.key, q('2025-03-01', '2025-03-31'));
    assert.deepEqual(r, { ret: [2, 7, 0.2857], inp: [2, 7, 0.2857], nday: [2, 7, 0.2857, 0, 'hybrid'] });
  });
  test('just below 0.15 → acquisition (1 of 7 = 0.1429)', async () => {
    const { r } = await rep(M.key, q('2025-04-01', '2025-04-30'));
    assert.deepEqual(r, { ret: [1, 7, 0.1429], inp: [1, 7, 0.1429], nday: [1, 7, 0.1429, 0, 'acquisition'] });
  });
  test('the four months together: 9 of 44 = 0.2045 → hybrid', async () => {
    const { r } = await rep(M.key, q('2025-01-01', '2025-04-30'));
    assert.deepEqual(r, { ret: [9, 44, 0.2045], inp: [9, 44, 0.2045], nday: [9, 44, 0.2045, 0, 'hybrid'] });
  });
});

describe('time-zone day boundaries', () => {
  // Z (Asia/Shanghai): z1 03-31 and 04-01 (40 minutes apart, either side of
  // local midnight), z2 04-01, z3 03-31.
  // U (UTC): the same instants are all on 03-31.
  test('Asia/Shanghai: 23:30+08:00 is March 31, 16:30Z is April 1', async () => {
    const q = { to: '2025-03-31', from: '2025-03-01', as_of: '2025-04-30', window_days: '1' };
    let { r } = await rep(Z.key, q);
    // active in March: z1, z3 = 2 (z2 is April 1 local). Nobody has 2 occasions by 03-31.
    // cohort z1, z3 (03-31 + 1 = 04-01 ≤ 04-30: not censored); z1 back on 04-01 ≤ 04-01 → 1/2.
    assert.deepEqual(r, { ret: [0, 2, 0], inp: [0, 2, 0], nday: [1, 2, 0.5, 0, 'loyalty'] });

    ({ r } = await rep(Z.key, { ...q, from: '2025-04-01', to: '2025-04-30' }));
    // active in April: z1 (04-01), z2 (04-01) = 2; returning z1 → 1/2; in-period nobody → 0/2.
    // cohort: z2 (first 04-01), not back → 0/1 → acquisition.
    assert.deepEqual(r, { ret: [1, 2, 0.5], inp: [0, 2, 0], nday: [0, 1, 0, 0, 'acquisition'] });

    // as_of 03-31: the orders of 04-01 local (z1's second, z2) are after the cut-off.
    ({ r } = await rep(Z.key, { ...q, as_of: '2025-03-31' }));
    // active z1, z3; cohort z1, z3 both censored (03-31 + 1 > 03-31).
    assert.deepEqual(r, { ret: [0, 2, 0], inp: [0, 2, 0], nday: [0, 0, null, 2, null] });
  });

  test('the same orders in a UTC shop all fall on March 31', async () => {
    const q = { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30', window_days: '1' };
    let { r, body } = await rep(U.key, q);
    assert.equal(body.definition.timezone, 'UTC');
    // active z1, z2, z3 = 3; z1 has two occasions on 03-31 → 1/3 for all three rates.
    assert.deepEqual(r, { ret: [1, 3, 0.3333], inp: [1, 3, 0.3333], nday: [1, 3, 0.3333, 0, 'loyalty'] });
    ({ r } = await rep(U.key, { ...q, from: '2025-04-01', to: '2025-04-30' }));
    assert.deepEqual(r, EMPTY_RATES, 'nothing in April (UTC)');
  });

  test('America/New_York across the DST change: local midnight in EST and in EDT', async () => {
    const NY = await mkShop('America/New_York');
    // 2025-03-09 is the day clocks go forward (EST −05:00 before 02:00, EDT −04:00 after).
    //   y1: 2025-03-09T05:00:00Z (= 03-09 00:00 EST), 2025-03-10T03:59:59Z (= 03-09 23:59:59 EDT)
    //   y2: 2025-03-09T04:59:59Z (= 03-08 23:59:59 EST), 2025-03-10T04:00:00Z (= 03-10 00:00 EDT)
    await load(NY.key, [
      ord('y1-1', 'y1', '2025-03-09T05:00:00Z'), ord('y1-2', 'y1', '2025-03-10T03:59:59Z'),
      ord('y2-1', 'y2', '2025-03-09T04:59:59Z'), ord('y2-2', 'y2', '2025-03-10T04:00:00Z'),
    ]);
    const q = { as_of: '2025-03-31', window_days: '1' };
    // [03-09, 03-09]: only y1 (both occasions that day): 1/1 everywhere.
    let { r } = await rep(NY.key, { ...q, from: '2025-03-09', to: '2025-03-09' });
    assert.deepEqual(r, { ret: [1, 1, 1], inp: [1, 1, 1], nday: [1, 1, 1, 0, 'loyalty'] });
    // [03-08, 03-10]: y1 and y2, both with two occasions in the range; y2's are 03-08 and
    // 03-10 (23 hours apart, two calendar days): not within 1 day → n-day 1/2.
    ({ r } = await rep(NY.key, { ...q, from: '2025-03-08', to: '2025-03-10' }));
    assert.deepEqual(r, { ret: [2, 2, 1], inp: [2, 2, 1], nday: [1, 2, 0.5, 0, 'loyalty'] });
    // time to second: y1 0 days, y2 2 days. days [0, 2]: p25 → 1st = 0, median → 1st = 0,
    // p75 → 2nd = 2, p90 → 2nd = 2. KM: day 0 at risk 2, 1 event → 0.5 (median 0); day 2 at risk 1,
    // 1 event → 0.
    const t = await tts(NY.key, { from: '2025-03-08', to: '2025-03-10', as_of: '2025-03-31' });
    assert.deepEqual(t.overall, { customers: 2, repeat: 2, share: 1, days: [0, 0, 2, 2], median_days: 0, curve: [[0, 2, 1, 0, 0.5], [2, 1, 1, 0, 0]] });
  });

  test('time to second purchase counts local calendar days', async () => {
    // Z, as_of 04-01: cohort z1, z3 (first 03-31). z1 back 04-01 → 1 day (event);
    // z3 censored at 04-01 − 03-31 = 1. KM at day 1: at risk 2, 1 event, 1 censored,
    // survival 1 − 1/2 = 0.5 ≤ 0.5 → median 1.
    let t = await tts(Z.key, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-01' });
    const g = { customers: 2, repeat: 1, share: 0.5, days: [1, 1, 1, 1], median_days: 1, curve: [[1, 2, 1, 1, 0.5]] };
    assert.deepEqual(t.overall, g);
    assert.deepEqual(t.categories, [{ ...g, category: 'tea' }]);
    assert.deepEqual(t.body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-01', rule: DEFAULT_RULE, channel: null,
    });

    // Z, as_of 03-31: z1's second order (04-01 local) is after the cut-off.
    // Both censored at 0 days; share 0/2 = 0; no repeaters → days null; survival 1, no median.
    t = await tts(Z.key, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-03-31' });
    assert.deepEqual(t.overall, { customers: 2, repeat: 0, share: 0, days: [null, null, null, null], median_days: null, curve: [[0, 2, 0, 2, 1]] });

    // U, as_of 03-31: cohort z1, z2, z3; z1's second occasion is the same day → 0 days.
    // KM day 0: at risk 3, 1 event, 2 censored, survival 2/3 = 0.6667 > 0.5 → median null.
    t = await tts(U.key, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-03-31' });
    assert.deepEqual(t.overall, { customers: 3, repeat: 1, share: 0.3333, days: [0, 0, 0, 0], median_days: null, curve: [[0, 3, 1, 2, 0.6667]] });
  });
});

describe('qualifying orders: refunds, cancels, the repurchase rule', () => {
  const q = { from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30', window_days: '30' };

  test('a full refund or a cancel stops an order qualifying; a partial refund does not', async () => {
    const R = await mkShop();
    //   r1: 03-05, 03-10 (o2 refunded in full)   r2: 03-06, 03-12 (o4 cancelled)
    //   r3: 03-07, 03-14 (o6 refunded in part)   r4: 02-20 (o7 refunded in full), 03-08
    await load(R.key, [
      ord('o1', 'r1', '2025-03-05'), ord('o2', 'r1', '2025-03-10'),
      ord('o3', 'r2', '2025-03-06'), ord('o4', 'r2', '2025-03-12'),
      ord('o5', 'r3', '2025-03-07'), ord('o6', 'r3', '2025-03-14'),
      ord('o7', 'r4', '2025-02-20'), ord('o8', 'r4', '2025-03-08'),
    ]);
    let { r } = await rep(R.key, q);
    // before: active 4; returning all 4 (r4 via 02-20); in-period r1 r2 r3 → 3/4;
    // cohort r1 r2 r3 (r4 started in February), all back within 30 days → 3/3.
    assert.deepEqual(r, { ret: [4, 4, 1], inp: [3, 4, 0.75], nday: [3, 3, 1, 0, 'loyalty'] });

    const refund = async (id, amount) => {
      const x = await c.post(`/v1/orders/${id}/refunds`, { id: `rf-${id}`, amount }, { key: R.key });
      assert.equal(x.status, 201, x.text);
    };
    await refund('o2', 10000); // the whole total
    await refund('o6', 100); // part of it: o6 still qualifies
    await refund('o7', 10000); // r4's first order: r4 now starts on 03-08
    const x = await c.req('POST', '/v1/orders/o4/cancel', { key: R.key });
    assert.equal(x.status, 200, x.text);

    ({ r } = await rep(R.key, q));
    // after: r1 03-05; r2 03-06; r3 03-07, 03-14; r4 03-08. active 4; only r3 repeats → 1/4
    // for returning and in-period; cohort now r1 r2 r3 r4 = 4, back: r3 → 1/4 = 0.25 → hybrid.
    assert.deepEqual(r, { ret: [1, 4, 0.25], inp: [1, 4, 0.25], nday: [1, 4, 0.25, 0, 'hybrid'] });

    // exclude_refunded false: refunded orders count again, the cancelled one still not.
    await patchRule(R.shopId, R.key, { exclude_refunded: false });
    let body;
    ({ r, body } = await rep(R.key, q));
    assert.deepEqual(body.definition.rule, { exclude_refunded: false, min_order_amount: 0, merge_window_hours: 0 });
    // r1 03-05, 03-10; r2 03-06; r3 03-07, 03-14; r4 02-20, 03-08.
    // returning r1 r3 r4 → 3/4; in-period r1 r3 → 2/4; cohort r1 r2 r3, back r1 r3 → 2/3 = 0.6667.
    assert.deepEqual(r, { ret: [3, 4, 0.75], inp: [2, 4, 0.5], nday: [2, 3, 0.6667, 0, 'loyalty'] });
  });

  test('min_order_amount, and channel = the channel of the first qualifying order', async () => {
    const P = await mkShop();
    //   p1: 03-03 10000 web, 03-09 3000 web
    //   p2: 03-04 2000 web, 03-11 8000 tmall
    //   p3: 03-05 5000 web, 03-12 5000 web
    await load(P.key, [
      ord('p1-1', 'p1', '2025-03-03', { price: 10000 }), ord('p1-2', 'p1', '2025-03-09', { price: 3000 }),
      ord('p2-1', 'p2', '2025-03-04', { price: 2000 }), ord('p2-2', 'p2', '2025-03-11', { price: 8000, channel: 'tmall' }),
      ord('p3-1', 'p3', '2025-03-05', { price: 5000 }), ord('p3-2', 'p3', '2025-03-12', { price: 5000 }),
    ]);
    // default rule: everybody has 2 occasions in March, first ones all via web.
    let { r, body } = await rep(P.key, q);
    assert.deepEqual(r, { ret: [3, 3, 1], inp: [3, 3, 1], nday: [3, 3, 1, 0, 'loyalty'] });
    ({ r, body } = await rep(P.key, { ...q, channel: 'tmall' }));
    assert.equal(body.definition.channel, 'tmall');
    assert.deepEqual(r, EMPTY_RATES, "p2's first order came through web, not tmall");
    ({ r } = await rep(P.key, { ...q, channel: 'web' }));
    assert.deepEqual(r, { ret: [3, 3, 1], inp: [3, 3, 1], nday: [3, 3, 1, 0, 'loyalty'] });

    await patchRule(P.shopId, P.key, { min_order_amount: 5000 });
    ({ r, body } = await rep(P.key, q));
    assert.deepEqual(body.definition.rule, { exclude_refunded: true, min_order_amount: 5000, merge_window_hours: 0 });
    // p1 03-03 only (3000 < 5000); p2 03-11 only (2000 < 5000); p3 both (5000 = minimum qualifies).
    // active 3, repeat p3 → 1/3; cohort p1 p2 p3 (p2 now starts 03-11), back p3 → 1/3.
    assert.deepEqual(r, { ret: [1, 3, 0.3333], inp: [1, 3, 0.3333], nday: [1, 3, 0.3333, 0, 'loyalty'] });
    // p2's first qualifying order is now the tmall one.
    ({ r } = await rep(P.key, { ...q, channel: 'tmall' }));
    assert.deepEqual(r, { ret: [0, 1, 0], inp: [0, 1, 0], nday: [0, 1, 0, 0, 'acquisition'] });
    ({ r } = await rep(P.key, { ...q, channel: 'web' }));
    // p1 and p3: p3 repeats → 1/2.
    assert.deepEqual(r, { ret: [1, 2, 0.5], inp: [1, 2, 0.5], nday: [1, 2, 0.5, 0, 'loyalty'] });
  });

  test('merge_window_hours merges orders into one occasion dated by its first order', async () => {
    const W = await mkShop();
    //   w1: 03-10 10:00, 03-10 20:00 (+10 h), 03-11 09:00 (+23 h), 03-11 11:00 (+25 h)
    //   w2: 03-20 22:00, 03-21 08:00 (+10 h)
    await load(W.key, [
      ord('w1-1', 'w1', '2025-03-10 10:00'), ord('w1-2', 'w1', '2025-03-10 20:00'),
      ord('w1-3', 'w1', '2025-03-11 09:00'), ord('w1-4', 'w1', '2025-03-11 11:00'),
      ord('w2-1', 'w2', '2025-03-20 22:00'), ord('w2-2', 'w2', '2025-03-21 08:00'),
    ]);
    const late = { ...q, from: '2025-03-21', to: '2025-03-31' };
    // merge 0: w1 has 4 occasions, w2 has 2 (03-20, 03-21): both repeat.
    let { r } = await rep(W.key, q);
    assert.deepEqual(r, { ret: [2, 2, 1], inp: [2, 2, 1], nday: [2, 2, 1, 0, 'loyalty'] });
    // [03-21, 03-31]: w2 active (03-21) and returning (03-20 before); in-period 1 occasion → 0;
    // cohort empty (w2 started 03-20).
    ({ r } = await rep(W.key, late));
    assert.deepEqual(r, { ret: [1, 1, 1], inp: [0, 1, 0], nday: [0, 0, null, 0, null] });

    await patchRule(W.shopId, W.key, { merge_window_hours: 24 });
    // merge 24 h: w1 → occasions 03-10 (10:00 + 20:00 + next day 09:00) and 03-11 (11:00, 25 h
    // after the start); w2 → one occasion dated 03-20.
    let body;
    ({ r, body } = await rep(W.key, q));
    assert.deepEqual(body.definition.rule, { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 24 });
    // active 2; repeat w1 → 1/2; cohort w1 (back 03-11) w2 (not) → 1/2.
    assert.deepEqual(r, { ret: [1, 2, 0.5], inp: [1, 2, 0.5], nday: [1, 2, 0.5, 0, 'loyalty'] });
    // nobody has an occasion dated in [03-21, 03-31] any more.
    ({ r } = await rep(W.key, late));
    assert.deepEqual(r, EMPTY_RATES);

    // time to second: w1 1 day (event), w2 censored at 06-30 − 03-20 = 11 + 30 + 31 + 30 = 102.
    // KM: day 1 at risk 2, 1 event → 0.5 (median 1); day 102 at risk 1, censored 1 → 0.5.
    const t = await tts(W.key, { from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30' });
    const g = { customers: 2, repeat: 1, share: 0.5, days: [1, 1, 1, 1], median_days: 1, curve: [[1, 2, 1, 0, 0.5], [102, 1, 0, 1, 0.5]] };
    assert.deepEqual(t.overall, g);
    assert.deepEqual(t.categories, [{ ...g, category: 'tea' }]);
  });
});

describe('series', () => {
  // Shop S:  s1: 03-04 (Tue), 03-06   s2: 03-07, 03-08   s3: 03-19, 03-21   s4: 03-20
  //          s5: 01-20, 02-03
  // March 2025: the 3rd, 10th, 17th are Mondays.
  const B = (from, to, ret, inp, nday) => ({ from, to, ret, inp, nday });
  const bucket = (x) => ({ from: x.from, to: x.to, ...rates(x) });
  const NONE = { ret: [0, 0, null], inp: [0, 0, null], nday: [0, 0, null, 0] };

  test('by week: Monday to Sunday, first and last bucket clipped, empty week present', async () => {
    const { r, body } = await rep(S.key, { from: '2025-03-05', to: '2025-03-20', as_of: '2025-03-31', window_days: '7', interval: 'week' });
    assert.deepEqual(r, {
      // active s1 (03-06), s2, s3, s4; returning s1 (03-04 counts), s2 → 2/4; in-period s2 → 1/4
      // (s1's 03-04 is before from, s3's 03-21 after to). cohort s2 s3 s4 (s1 started 03-04);
      // back within 7 days: s2 (03-08), s3 (03-21 ≤ 03-26) → 2/3 = 0.6667.
      ret: [2, 4, 0.5], inp: [1, 4, 0.25], nday: [2, 3, 0.6667, 0, 'loyalty'],
    });
    assert.deepEqual(body.series.map(bucket), [
      // [03-05 Wed, 03-09 Sun]: active s1 s2, both returning (s1's 03-04 is before the bucket);
      // in-period s2 only (03-04 is outside the clipped bucket); cohort s2 (not s1) → 1/1.
      B('2025-03-05', '2025-03-09', [2, 2, 1], [1, 2, 0.5], [1, 1, 1, 0]),
      B('2025-03-10', '2025-03-16', ...Object.values(NONE)),
      // [03-17 Mon, 03-20 Thu]: active s3 s4, neither returning; s3's 03-21 is after the
      // clipped bucket → in-period 0/2; cohort s3 (back 03-21 ≤ 03-26) s4 (not) → 1/2.
      B('2025-03-17', '2025-03-20', [0, 2, 0], [0, 2, 0], [1, 2, 0.5, 0]),
    ]);
  });

  test('by week with censoring inside a bucket (as_of 03-25)', async () => {
    const { r, body } = await rep(S.key, { from: '2025-03-05', to: '2025-03-20', as_of: '2025-03-25', window_days: '7', interval: 'week' });
    // cohort s2 (window ends 03-14: over, back) s3 (03-26 > 03-25) s4 (03-27): censored 2 → 1/1.
    assert.deepEqual(r, { ret: [2, 4, 0.5], inp: [1, 4, 0.25], nday: [1, 1, 1, 2, 'loyalty'] });
    assert.deepEqual(body.series.map(bucket), [
      B('2025-03-05', '2025-03-09', [2, 2, 1], [1, 2, 0.5], [1, 1, 1, 0]),
      B('2025-03-10', '2025-03-16', ...Object.values(NONE)),
      B('2025-03-17', '2025-03-20', [0, 2, 0], [0, 2, 0], [0, 0, null, 2]),
    ]);
  });

  test('by month: calendar months, clipped, an empty month present', async () => {
    const { r, body } = await rep(S.key, { from: '2024-12-20', to: '2025-03-20', as_of: '2025-03-31', window_days: '7', interval: 'month' });
    // whole range: active s1..s5 = 5; returning s1 s2 s5 → 3/5; in-period s1 (03-04, 03-06)
    // s2 s5 (01-20, 02-03) → 3/5; cohort all 5, back within 7 days: s1 (2 days) s2 (1) s3 (2);
    // not s4, s5 (14 days) → 3/5.
    assert.deepEqual(r, { ret: [3, 5, 0.6], inp: [3, 5, 0.6], nday: [3, 5, 0.6, 0, 'loyalty'] });
    assert.deepEqual(body.series.map(bucket), [
      B('2024-12-20', '2024-12-31', ...Object.values(NONE)),
      // January: s5 (01-20), one occasion so far; cohort s5, 02-03 > 01-27 → 0/1.
      B('2025-01-01', '2025-01-31', [0, 1, 0], [0, 1, 0], [0, 1, 0, 0]),
      // February: s5 (02-03) returning (01-20) → 1/1; in-period 0/1; nobody starts in February.
      B('2025-02-01', '2025-02-28', [1, 1, 1], [0, 1, 0], [0, 0, null, 0]),
      // [03-01, 03-20]: active s1 s2 s3 s4; returning s1 s2 → 2/4; in-period s1 s2 → 2/4;
      // cohort s1 s2 s3 s4, back s1 s2 s3 → 3/4.
      B('2025-03-01', '2025-03-20', [2, 4, 0.5], [2, 4, 0.5], [3, 4, 0.75, 0]),
    ]);
  });

  test('a one-day range has one bucket', async () => {
    const { body } = await rep(S.key, { from: '2025-03-08', to: '2025-03-08', as_of: '2025-03-31', window_days: '7', interval: 'month' });
    // 03-08: s2's second occasion: active s2, returning, not in-period (1 occasion that day), no cohort.
    assert.deepEqual(body.series.map(bucket), [B('2025-03-08', '2025-03-08', [1, 1, 1], [0, 1, 0], [0, 0, null, 0])]);
  });
});

describe('GET /v1/metrics/time-to-second-purchase', () => {
  // Shop T (first → second occasion; categories; channel of the first order):
  //   t1: 01-01 tea, 01-11 tea                      overall 10 days, tea 10
  //   t2: 01-01 tea, 01-21 teaware (tmall)          overall 20, tea censored, teaware starts 01-21
  //   t3: 01-05 tea+teaware, 01-15 tea              overall 10, tea 10, teaware censored
  //   t4: 01-10 teaware (tmall), 02-09 teaware, 02-20 tea   overall 30, teaware 30, tea starts in Feb
  //   t5: 01-31 tea                                 censored
  //   t6: 01-20 09:00 tea, 01-20 18:00 tea          0 days (same date)
  //   t7: 2024-12-15 tea, 01-10 tea                 first occasion before the range
  //   t8: 01-25 teaware (tmall), 03-02 teaware      the 03-02 order is after as_of
  // from 01-01, to 01-31, as_of 03-01 (January has 31 days, February 28).
  const q = { from: '2025-01-01', to: '2025-01-31', as_of: '2025-03-01' };

  // Overall: cohort t1..t6, t8 = 7; events t6 0, t1 10, t3 10, t2 20, t4 30 = 5;
  // censored t5 at 03-01 − 01-31 = 29, t8 at 03-01 − 01-25 = 35.
  // share 5/7 = 0.714286 → 0.7143. Days sorted [0, 10, 10, 20, 30], n = 5; percentile_disc
  // takes the ceil(p·n)-th value: p25 → 2nd = 10, median → 3rd = 10, p75 → 4th = 20, p90 → 5th = 30.
  // KM: day 0: at risk 7, 1 event → 6/7 = 0.857143 → 0.8571
  //     day 10: at risk 6, 2 events → 6/7 · 4/6 = 4/7 = 0.571429 → 0.5714
  //     day 20: at risk 4, 1 event → 4/7 · 3/4 = 3/7 = 0.428571 → 0.4286 (first ≤ 0.5: median 20)
  //     day 29: at risk 3, 1 censored → 0.4286
  //     day 30: at risk 2, 1 event → 3/7 · 1/2 = 3/14 = 0.214286 → 0.2143
  //     day 35: at risk 1, 1 censored → 0.2143
  const OVERALL = {
    customers: 7, repeat: 5, share: 0.7143, days: [10, 10, 20, 30], median_days: 20,
    curve: [[0, 7, 1, 0, 0.8571], [10, 6, 2, 0, 0.5714], [20, 4, 1, 0, 0.4286], [29, 3, 0, 1, 0.4286], [30, 2, 1, 0, 0.2143], [35, 1, 0, 1, 0.2143]],
  };
  // tea: cohort t1 t2 t3 t5 t6 (first tea occasion in January; t4's is 02-20, t7's 2024-12-15) = 5.
  // events t6 0, t1 10, t3 10; censored t5 29, t2 at 03-01 − 01-01 = 59. share 3/5 = 0.6.
  // days [0, 10, 10]: p25 → ceil(0.75) = 1st = 0, median → 2nd = 10, p75 → ceil(2.25) = 3rd = 10, p90 → 3rd = 10.
  // KM: day 0 at risk 5, 1 event → 0.8; day 10 at risk 4, 2 events → 0.8 · 0.5 = 0.4 (median 10);
  //     day 29 at risk 2, censored 1 → 0.4; day 59 at risk 1, censored 1 → 0.4.
  const TEA = {
    category: 'tea', customers: 5, repeat: 3, share: 0.6, days: [0, 10, 10, 10], median_days: 10,
    curve: [[0, 5, 1, 0, 0.8], [10, 4, 2, 0, 0.4], [29, 2, 0, 1, 0.4], [59, 1, 0, 1, 0.4]],
  };
  // teaware: cohort t2 (01-21), t3 (01-05), t4 (01-10), t8 (01-25) = 4.
  // events: t4 at 02-09 − 01-10 = 30. censored: t8 35 (its 03-02 order is after as_of),
  // t2 at 03-01 − 01-21 = 39, t3 at 03-01 − 01-05 = 55. share 1/4 = 0.25, days all 30.
  // KM: day 30 at risk 4, 1 event → 0.75, then only censorings: never ≤ 0.5 → median null.
  const TEAWARE = {
    category: 'teaware', customers: 4, repeat: 1, share: 0.25, days: [30, 30, 30, 30], median_days: null,
    curve: [[30, 4, 1, 0, 0.75], [35, 3, 0, 1, 0.75], [39, 2, 0, 1, 0.75], [55, 1, 0, 1, 0.75]],
  };

  test('overall and per category, with percentiles and Kaplan–Meier curves', async () => {
    const t = await tts(T.key, q);
    assert.deepEqual(t.body.definition, {
      timezone: 'Asia/Shanghai', from: '2025-01-01', to: '2025-01-31', as_of: '2025-03-01', rule: DEFAULT_RULE, channel: null,
    });
    assert.deepEqual(t.overall, OVERALL);
    assert.deepEqual(t.categories, [TEA, TEAWARE], 'every category with a cohort customer, sorted by name');
  });

  test('category filter: only that category (overall unchanged); unknown category → empty list', async () => {
    let t = await tts(T.key, { ...q, category: 'teaware' });
    assert.deepEqual(t.categories, [TEAWARE]);
    assert.deepEqual(t.overall, OVERALL);
    t = await tts(T.key, { ...q, category: 'coffee' });
    assert.deepEqual(t.categories, []);
    t = await tts(T.key, { ...q, category: 'TEA' });
    assert.deepEqual(t.categories, [], 'categories are case-sensitive');
  });

  test('a later as_of: the 03-02 order counts; percentile_disc picks observed values', async () => {
    const t = await tts(T.key, { ...q, as_of: '2025-03-02', category: 'teaware' });
    // teaware, as_of 03-02: t4 event 30; t8 event at 03-02 − 01-25 = 36; t2 censored 40; t3 censored 56.
    // share 2/4 = 0.5. days [30, 36]: p25 → ceil(0.5) = 1st = 30, median → 1st = 30 (not 33),
    // p75 → 2nd = 36, p90 → 2nd = 36.
    // KM: day 30 at risk 4, 1 event → 0.75; day 36 at risk 3, 1 event → 0.75 · 2/3 = 0.5 → median 36;
    //     day 40 at risk 2, censored → 0.5; day 56 at risk 1, censored → 0.5.
    assert.deepEqual(t.categories, [{
      category: 'teaware', customers: 4, repeat: 2, share: 0.5, days: [30, 30, 36, 36], median_days: 36,
      curve: [[30, 4, 1, 0, 0.75], [36, 3, 1, 0, 0.5], [40, 2, 0, 1, 0.5], [56, 1, 0, 1, 0.5]],
    }]);
  });

  test('channel: customers whose first order came through the channel', async () => {
    const t = await tts(T.key, { ...q, channel: 'tmall' });
    assert.equal(t.body.definition.channel, 'tmall');
    // first order via tmall: t4 and t8 (t2's first order was web; its tmall order does not count).
    // overall: t4 event 30, t8 censored 35 → 1/2; KM day 30: 2 at risk, 1 event → 0.5 (median 30);
    // day 35: 1 at risk, 1 censored → 0.5. teaware: the same two customers; tea: t4 starts tea in
    // February → no tea cohort → not listed.
    const g = { customers: 2, repeat: 1, share: 0.5, days: [30, 30, 30, 30], median_days: 30, curve: [[30, 2, 1, 0, 0.5], [35, 1, 0, 1, 0.5]] };
    assert.deepEqual(t.overall, g);
    assert.deepEqual(t.categories, [{ ...g, category: 'teaware' }]);
    const none = await tts(T.key, { ...q, channel: 'douyin' });
    assert.deepEqual(none.overall, EMPTY_GROUP);
    assert.deepEqual(none.categories, []);
  });

  test('a range with no cohort: zero customers, nulls, empty curve', async () => {
    const t = await tts(T.key, { from: '2025-02-01', to: '2025-02-28', as_of: '2025-03-01' });
    // nobody's first occasion is in February (t4's first tea is, but overall t4 started 01-10).
    assert.deepEqual(t.overall, EMPTY_GROUP);
    // tea: t4's first tea occasion is 02-20, no second by 03-01 → censored at 9 days.
    assert.deepEqual(t.categories, [{
      category: 'tea', customers: 1, repeat: 0, share: 0, days: [null, null, null, null], median_days: null, curve: [[9, 1, 0, 1, 1]],
    }]);
  });
});

describe('shop isolation', () => {
  test("a shop without orders sees zeros, not other shops' 2025 data", async () => {
    const q = { from: '2025-01-01', to: '2025-12-31', as_of: '2025-12-31' };
    const { r, body } = await rep(E.key, { ...q, interval: 'month' });
    assert.deepEqual(r, EMPTY_RATES);
    assert.equal(body.series.length, 12);
    for (const b of body.series) {
      assert.deepEqual(rates(b), { ret: [0, 0, null], inp: [0, 0, null], nday: [0, 0, null, 0] });
    }
    const t = await tts(E.key, q);
    assert.deepEqual(t.overall, EMPTY_GROUP);
    assert.deepEqual(t.categories, []);
  });

  test('same customer and order ids in two shops: each shop counts its own', async () => {
    // Z and U hold the same ids; their different answers are asserted above. Here: Z's
    // numbers for all of 2025 come from Z's 3 customers only (4 orders).
    const { r } = await rep(Z.key, { from: '2025-01-01', to: '2025-12-31', as_of: '2025-12-31', window_days: '1' });
    // active z1 z2 z3; z1 repeats (03-31, 04-01) → 1/3; cohort 3, back within 1 day z1 → 1/3.
    assert.deepEqual(r, { ret: [1, 3, 0.3333], inp: [1, 3, 0.3333], nday: [1, 3, 0.3333, 0, 'loyalty'] });
  });
});

describe('authentication and scopes', () => {
  for (const path of [REP, TTS]) {
    test(`${path}: admin and readonly get the same answer; storefront and platform 403; no key 401`, async () => {
      const q = `?from=2025-03-01&to=2025-03-31&as_of=2025-06-30`;
      const a = await c.get(path + q, { key: A.keys.admin });
      const ro = await c.get(path + q, { key: A.keys.readonly });
      assert.equal(a.status, 200, a.text);
      assert.equal(ro.status, 200, ro.text);
      assert.deepEqual(ro.body, a.body);
      assertProblem(await c.get(path + q, { key: A.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path + q, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(path + q), 401, 'unauthenticated');
      assertProblem(await c.get(path + q, { key: `rb_aaaaaaaa_${'A'.repeat(43)}` }), 401, 'unauthenticated');
      assertProblem(await c.get(path + q, { key: 'not-a-key' }), 401, 'unauthenticated');
    });
  }
});

describe('methods', () => {
  test('other methods → 405 with Allow: GET', async () => {
    for (const path of [REP, TTS]) {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const r = await c.req(method, path, { key: A.keys.admin, body: method === 'DELETE' ? undefined : {} });
        assertProblem(r, 405, 'method_not_allowed');
        assert.equal(r.headers.allow, 'GET', `${method} ${path}`);
      }
    }
  });
});

describe('bad query parameters → 400 invalid_parameter', () => {
  const OK = 'as_of=2025-06-30';
  const common = [
    // dates
    ['from=2025-02-30', 'from'], ['from=2025-13-01', 'from'], ['from=2025-00-10', 'from'], ['from=2025-3-1', 'from'],
    ['from=20250301', 'from'], ['from=2025-03-01T00:00:00Z', 'from'], ['from=yesterday', 'from'], ['from=', 'from'],
    ['from=%202025-03-01', 'from'],
    ['to=2025-02-29', 'to'], ['to=2025-04-31', 'to'], ['to=', 'to'], ['to=2025-03-01x', 'to'],
    ['as_of=2025-06-31', 'as_of'], ['as_of=', 'as_of'], ['as_of=2025/06/30', 'as_of'],
    // ranges
    ['from=2025-04-01&to=2025-03-31&as_of=2025-06-30', 'from'],
    ['from=2025-03-02&to=2025-03-01&as_of=2025-06-30', 'from'],
    ['to=2025-07-01&as_of=2025-06-30', 'to'],
    ['from=2025-06-30&to=2025-07-01&as_of=2025-06-30', 'to'],
    ['as_of=2999-01-01', 'as_of'],
    ['to=2999-01-01', 'to'], // as_of defaults to today
    ['from=2999-01-01', 'from'], // to defaults to as_of = today
    ['from=2015-01-01&to=2025-06-30&as_of=2025-06-30', 'from'], // 3834 days > 3660
    ['from=1900-01-01&to=2025-06-30&as_of=2025-06-30', 'from'],
    // channel
    ['channel=', 'channel'], ['channel=web%20shop', 'channel'], [`channel=${'w'.repeat(65)}`, 'channel'], ['channel=tea%2Fgreen', 'channel'],
    // unknown, repeated
    ['foo=1', 'foo'], ['From=2025-03-01', 'From'], ['limit=10', 'limit'],
    ['from=2025-03-01&from=2025-03-01', 'from'], ['as_of=2025-06-30&as_of=2025-06-30', 'as_of'], ['channel=web&channel=web', 'channel'],
  ];
  const repOnly = [
    ['window_days=0', 'window_days'], ['window_days=3651', 'window_days'], ['window_days=abc', 'window_days'],
    ['window_days=-1', 'window_days'], ['window_days=1.5', 'window_days'], ['window_days=30.0', 'window_days'],
    ['window_days=', 'window_days'], ['window_days=90abc', 'window_days'], ['window_days=99999999999999999999', 'window_days'],
    ['window_days=%2030', 'window_days'], ['window_days=30%20', 'window_days'], ['window_days=%2B30', 'window_days'], ['window_days=0x10', 'window_days'],
    ['window_days=30&window_days=30', 'window_days'],
    ['interval=day', 'interval'], ['interval=Week', 'interval'], ['interval=year', 'interval'], ['interval=', 'interval'],
    ['interval=week&interval=month', 'interval'],
    ['category=tea', 'category'],
  ];
  const ttsOnly = [
    ['category=', 'category'], ['category=tea%20leaves', 'category'], [`category=${'c'.repeat(65)}`, 'category'],
    ['category=tea&category=tea', 'category'],
    ['window_days=90', 'window_days'], ['interval=week', 'interval'],
  ];
  const cases = [
    ...common.map(([q, n]) => [REP, q, n]), ...repOnly.map(([q, n]) => [REP, q, n]),
    ...common.map(([q, n]) => [TTS, q, n]), ...ttsOnly.map(([q, n]) => [TTS, q, n]),
  ];
  for (const [path, q, name] of cases) {
    const full = /as_of=/.test(q) || /^(to|from)=2999/.test(q) ? q : `${q}&${OK}`;
    test(`${path}?${full.length > 70 ? `${full.slice(0, 70)}…` : full} → /query/${name}`, async () => {
      assertProblem(await c.get(`${path}?${full}`, { key: A.keys.admin }), 400, 'invalid_parameter', `/query/${name}`);
    });
  }

  test('the limits themselves are accepted', async () => {
    for (const q of [
      { window_days: '1', as_of: '2025-06-30' },
      { window_days: '3650', as_of: '2025-06-30' },
      // 2016-01-01 .. 2025-12-31: 3653 days, within 3660
      { from: '2016-01-01', to: '2025-12-31', as_of: '2025-12-31' },
      { from: '2025-06-30', to: '2025-06-30', as_of: '2025-06-30' },
      { channel: 'store:jingan.main_1-A', as_of: '2025-06-30' },
      { interval: 'week', as_of: '2025-06-30' },
    ]) {
      await get(REP, A.keys.admin, q);
    }
    await get(TTS, A.keys.admin, { category: 'tea.green:x-1_A', as_of: '2025-06-30' });
    await get(TTS, A.keys.admin, { from: '2016-01-01', to: '2025-12-31', as_of: '2025-12-31' });
  });
});
