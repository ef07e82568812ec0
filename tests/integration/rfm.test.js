// RFM (rfm.md): scores by quintiles or by fixed thresholds (settings.rfm),
// the R × F segment map (PUT/GET /v1/rfm/map), GET /v1/rfm/summary and `rfm`
// on GET /v1/customers/{id}, over small hand-made histories.
//
// Scores are "as of today" in the shop's time zone, so every history is
// built RELATIVE to today: "a4: 20 days, 7 occasions, 12000" means customer
// a4's most recent order was placed 20 local calendar days before today and
// the customer has 7 qualifying orders (one per day further back) worth
// 12000 net in all. Every expected score, segment and summary figure is
// worked out by hand in the comment next to it (never by re-implementing the
// scoring here).
//
// Quintiles: score = 1 + floor(5 × w / N), w = the scored customers with a
// strictly worse value (recency: more days; frequency, monetary: smaller).
// With N = 10: w 0 1 | 2 3 | 4 5 | 6 7 | 8 9 → scores 1 | 2 | 3 | 4 | 5.
//
// Time zone: the shops live in a fixed-offset zone (Etc/GMT±N) chosen when
// this file loads so that it is 12:xx local time there now. "Today" is then
// at least 11 hours away from either midnight, so a run never straddles a
// date change, and local 10:00 today is already in the past. (The tests of
// recency by local date use times near midnight and a second zone.)
//
// Default map (rfm.md): Champions R5 F4–5; Loyal R3–4 F4–5; Potential loyalists
// R4–5 F2–3; New customers R5 F1; Promising R4 F1; Need attention R3 F3;
// About to sleep R3 F1–2; At risk R1–2 F3–4; Can't lose them R1–2 F5;
// Hibernating R1–2 F1–2; Lost R1 F1–2 lapsed (days since last > lapse_days,
// default 365).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, uniq,
} from '../lib/harness.js';
import {
  OFF_X, ZX, TODAY, localAt, addDays, localDate, etcZone, offStr, DEFAULT_RFM_MAP, historyCalls,
} from '../lib/history.js';

let svc;
let c;
let people, load, cancel, refund;

const E15 = 1000000000000000; // 10^15, exactly representable

/** A map entry as GET /v1/rfm/map shows it. */
/** A map entry as GET /v1/rfm/map gives it. */
const E = (name, r, f, lapsed = false) => ({ name, r, f, lapsed });
const DEFAULT_MAP = DEFAULT_RFM_MAP;
const DEFAULT_NAMES = DEFAULT_MAP.map((e) => e.name);
/** The default map without the `lapsed` members (as a client might send it). */
const DEFAULT_INPUT = DEFAULT_MAP.map(({ name, r, f, lapsed }) => (lapsed ? { name, r, f, lapsed } : { name, r, f }));
const cloneMap = (m = DEFAULT_INPUT) => JSON.parse(JSON.stringify(m));

const SUMMARY_KEYS = ['as_of', 'customers', 'edges', 'method', 'segments'];
const DEFAULT_SEG = {
  second_purchase_window_days: 45, due_max_factor: 3, due_min_repeat_customers: 30,
  lapsing_factor: 2, lapse_days: 365, vip_percent: 5,
};
const QUINTILES = { method: 'quintiles' };

// ---------------------------------------------------------------------------
// time zones and dates: zone X, TODAY and localAt come from ../lib/history.js

/** n local days before today in zone X, at the given local time: RFC 3339 with X's offset. */
const at = (n, hhmm = '10:00') => localAt(n, hhmm);
const dayDiff = (a, b) => Math.round((Date.parse(`${a}T00:00:00Z`) - Date.parse(`${b}T00:00:00Z`)) / 86400000);

// ---------------------------------------------------------------------------
// helpers

/** One order of `cust`, n days ago, one line at `price`. */
function ord(id, cust, n, { price = 10000, time = '10:00', placedAt } = {}) {
  return {
    id,
    customer_id: cust,
    placed_at: placedAt ?? at(n, time),
    channel: 'web',
    currency: 'CNY',
    lines: [{ sku: 'SKU-tea', category: 'tea', role: 'regular', quantity: 1, unit_price: price }],
    total: price,
  };
}

/**
 * `count` orders of `cust` worth `total` in all: the most recent `days` days
 * ago (id <cust>-0), the others `step` days further back each (<cust>-1, …).
 * Every order is `base` except the oldest, which carries the rest.
 */
function hist(cust, days, count, total, { step = 1, base = 1000, time = '10:00' } = {}) {
  const out = [];
  for (let k = 0; k < count; k++) {
    const price = k === count - 1 ? total - base * (count - 1) : base;
    assert.ok(price >= 0, `hist ${cust}: total ${total} too small for ${count} orders of ${base}`);
    out.push(ord(`${cust}-${k}`, cust, days + step * k, { price, time }));
  }
  return out;
}

/** A shop in zone X (platform key) with only its admin key: {shopId, key}. */
async function mkShop(timezone = ZX) {
  const r = await c.post('/v1/shops', { name: uniq('RFM Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  return { shopId: r.body.shop.id, key: r.body.admin_key.key, created: r.body.shop };
}

/** A shop with admin, storefront and readonly keys; s.key is the admin key. */
async function mkFullShop(timezone = ZX) {
  const s = await setupShop(svc, { timezone });
  s.key = s.keys.admin;
  return s;
}

/** PATCH /v1/shops/{id} {settings}; asserts 200; returns the settings shown. */
async function patchSettings(s, settings, key = s.key) {
  const r = await c.patch(`/v1/shops/${s.shopId}`, { settings }, { key });
  assert.equal(r.status, 200, `PATCH settings ${JSON.stringify(settings)}: ${r.text}`);
  return r.body.settings;
}
const patchRfm = (s, rfm) => patchSettings(s, { rfm });
const patchSeg = (s, segments) => patchSettings(s, { segments });

async function erase(key, id) {
  const r = await c.del(`/v1/customers/${encodeURIComponent(id)}`, { key });
  assert.equal(r.status, 204, `erase ${id}: ${r.text}`);
}

/** GET /v1/customers/{id}: asserts 200 and an `rfm` member; returns it. */
async function rfmOf(key, id) {
  const r = await c.get(`/v1/customers/${encodeURIComponent(id)}?include=rfm`, { key });
  assert.equal(r.status, 200, `GET customer ${id}: ${r.text}`);
  assert.ok('rfm' in r.body, `GET /v1/customers/${id} has rfm: ${r.text}`);
  return r.body.rfm;
}

/** exp: { id: [r, f, m, segment] | null }; compares every customer's rfm. */
async function expectRfm(key, exp, what = '') {
  const got = {};
  const want = {};
  for (const [id, v] of Object.entries(exp)) {
    got[id] = await rfmOf(key, id);
    want[id] = v === null ? null : { r: v[0], f: v[1], m: v[2], segment: v[3] };
  }
  assert.deepEqual(got, want, `${what} rfm of the customers`);
}

/** GET /v1/rfm/summary: asserts 200, its members and as_of; returns the body. */
async function summary(key, asOf = TODAY) {
  const r = await c.get('/v1/rfm/summary', { key });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), SUMMARY_KEYS, r.text);
  assert.equal(r.body.as_of, asOf, `as_of is today in the shop's zone (${asOf})`);
  return r.body;
}

/**
 * The expected `segments` of a summary: every name of the map in order;
 * filled: { name: [customers, share, revenue, avg_recency_days, avg_frequency, avg_monetary] };
 * the others empty (share 0, or null when N = 0).
 */
function segs(names, n, filled) {
  for (const k of Object.keys(filled)) assert.ok(names.includes(k), `test bug: ${k} is not in the map`);
  return names.map((name) => {
    const v = filled[name] ?? [0, n === 0 ? null : 0, 0, null, null, null];
    return { name, customers: v[0], share: v[1], revenue: v[2], avg_recency_days: v[3], avg_frequency: v[4], avg_monetary: v[5] };
  });
}

/**
 * Asserts a summary: method, N, the segments (names: the map's names in order),
 * and edges unless `edges` is undefined (asserted in a test of its own).
 */
async function expectSummary(key, { method = 'quintiles', n, names = DEFAULT_NAMES, filled, edges, asOf }, what = '') {
  const s = await summary(key, asOf);
  assert.equal(s.method, method, `${what} method`);
  assert.equal(s.customers, n, `${what} customers (N)`);
  assert.deepEqual(s.segments, segs(names, n, filled), `${what} segments`);
  if (edges !== undefined) assert.deepEqual(s.edges, edges, `${what} edges`);
  return s;
}

/** GET /v1/rfm/map: asserts 200 and its members; returns the body. */
async function getMap(key) {
  const r = await c.get('/v1/rfm/map', { key });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body).sort(), ['default', 'segments'], r.text);
  return r.body;
}

/** PUT /v1/rfm/map: asserts 200, that the answer is the map GET now shows, default false. */
async function putMap(key, segments) {
  const r = await c.put('/v1/rfm/map', { segments }, { key });
  assert.equal(r.status, 200, `PUT /v1/rfm/map: ${r.text}`);
  const g = await getMap(key);
  assert.deepEqual(r.body, g, 'the PUT answer is the map as GET shows it');
  assert.equal(g.default, false, 'a saved map is not the default');
  return g;
}

/** The shop as GET /v1/shops/{id} shows it. */
async function getShop(s, key = s.key) {
  const r = await c.get(`/v1/shops/${s.shopId}`, { key });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// ---------------------------------------------------------------------------
// shops

let A; // quintiles, N = 10 distinct values; refunds, cancels, erasure, no orders (all key scopes)
let B; // quintiles with ties
let S1; // N = 1
let S3; // N = 3, then an erasure (N = 2)
let H; // thresholds at every boundary, then back to quintiles
let LO; // the Lost override (thresholds, lapse_days small)
let M; // custom maps (same history as S3)
let EMPTY; // no orders at all

// Shop A (quintiles, default map). Customers (last order days ago, occasions, net spent):
//   a1: 2, 10, 20000     a2: 5, 1, 50000      a3: 10, 2, 5000 (gross 45000, 40000 refunded)
//   a4: 20, 7, 12000     a5: 30, 5, 30000 (+ a cancelled order today)
//   a6: 45, 3, 60000     a7: 60, 6, 8000 (+ a fully refunded order of 100000 yesterday)
//   a8: 90, 9, 15000     a9: 120, 8, 25000    a10: 200, 4, 36000
// Not scored: a11 (no orders), a12 (only a cancelled order), a14 (only a fully refunded
// order), a13 (1 day, 11 occasions, 1000000 — the best in every dimension — then erased).
// N = 10, every dimension has 10 distinct values:
//   recency, most days first: a10 200 (w 0), a9 120 (1), a8 90 (2), a7 60 (3), a6 45 (4),
//     a5 30 (5), a4 20 (6), a3 10 (7), a2 5 (8), a1 2 (9)
//     → R: a10 a9 1; a8 a7 2; a6 a5 3; a4 a3 4; a2 a1 5.
//   frequency, fewest first: a2 1 (w 0), a3 2 (1), a6 3 (2), a10 4 (3), a5 5 (4), a7 6 (5),
//     a4 7 (6), a9 8 (7), a8 9 (8), a1 10 (9)
//     → F: a2 a3 1; a6 a10 2; a5 a7 3; a4 a9 4; a8 a1 5.
//   monetary, smallest first: a3 5000, a7 8000 | a4 12000, a8 15000 | a1 20000, a9 25000 |
//     a5 30000, a10 36000 | a2 50000, a6 60000 → M 1 | 2 | 3 | 4 | 5.
//     (Gross a3 45000 would be M4; a7 with its refunded order 108000 would be M5.)
// Had a13 been counted (N = 11, w of the others unchanged), w = 2, 4, 6, 8 would score
// 1 + floor(5w/11) = 1, 2, 3, 4 instead of 2, 3, 4, 5; a12 and a14 (as the worst)
// would shift w by 2 with N = 12.
const A_CUSTOMERS = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'a10', 'a11', 'a12', 'a13', 'a14'];
const A_ORDERS = () => [
  ...hist('a1', 2, 10, 20000, { step: 7 }),
  ...hist('a2', 5, 1, 50000),
  // a3-0: 10 days, 1000; a3-1: 17 days, 44000 (40000 of it refunded)
  ...hist('a3', 10, 2, 45000, { step: 7 }),
  ...hist('a4', 20, 7, 12000, { step: 7 }),
  ...hist('a5', 30, 5, 30000, { step: 7 }), ord('a5-x', 'a5', 0, { price: 99000, time: '09:00' }),
  ...hist('a6', 45, 3, 60000, { step: 7 }),
  ...hist('a7', 60, 6, 8000, { step: 7 }), ord('a7-x', 'a7', 1, { price: 100000 }),
  ...hist('a8', 90, 9, 15000, { step: 7 }),
  ...hist('a9', 120, 8, 25000, { step: 7 }),
  ...hist('a10', 200, 4, 36000, { step: 7 }),
  ord('a12-0', 'a12', 3),
  ...hist('a13', 1, 11, 1000000, { step: 7 }),
  ord('a14-0', 'a14', 4, { price: 20000 }),
];
const A_RFM = {
  a1: [5, 5, 3, 'Champions'],
  a2: [5, 1, 5, 'New customers'],
  a3: [4, 1, 1, 'Promising'],
  a4: [4, 4, 2, 'Loyal'],
  a5: [3, 3, 4, 'Need attention'],
  a6: [3, 2, 5, 'About to sleep'],
  a7: [2, 3, 1, 'At risk'],
  a8: [2, 5, 2, "Can't lose them"],
  a9: [1, 4, 3, 'At risk'],
  a10: [1, 2, 4, 'Hibernating'], // 200 days ≤ 365: not lapsed
  a11: null,
  a12: null,
  a13: null,
  a14: null,
};
// [customers, share, revenue, avg_recency_days, avg_frequency, avg_monetary]
const A_FILLED = {
  Champions: [1, 0.1, 20000, 2, 10, 20000], // a1
  Loyal: [1, 0.1, 12000, 20, 7, 12000], // a4
  'New customers': [1, 0.1, 50000, 5, 1, 50000], // a2
  Promising: [1, 0.1, 5000, 10, 2, 5000], // a3, net of its refund
  'Need attention': [1, 0.1, 30000, 30, 5, 30000], // a5
  'About to sleep': [1, 0.1, 60000, 45, 3, 60000], // a6
  // a7 + a9: 8000 + 25000; (60 + 120) / 2; (6 + 8) / 2; 33000 / 2
  'At risk': [2, 0.2, 33000, 90, 7, 16500],
  "Can't lose them": [1, 0.1, 15000, 90, 9, 15000], // a8
  Hibernating: [1, 0.1, 36000, 200, 4, 36000], // a10
};
// edges, for scores 2..5, the least good value with that score or more:
//   recency (largest days): R2 {90, 60} → 90; R3 {45, 30} → 45; R4 {20, 10} → 20; R5 {5, 2} → 5
//   frequency (smallest): F2 {3, 4} → 3; F3 {5, 6} → 5; F4 {7, 8} → 7; F5 {9, 10} → 9
//   monetary (smallest): 12000, 20000, 30000, 50000
const A_EDGES = { recency: [90, 45, 20, 5], frequency: [3, 5, 7, 9], monetary: [12000, 20000, 30000, 50000] };

// Shop B (quintiles, ties). Customers (days, occasions, net):
//   b1: 100, 1, 10001   b2: 90, 1, 20000
//   b3: 80 (at 00:10), 1, 30000   b4: 80 (at 23:50), 1, 30000   b5: 80, 2, 30000
//   b6: 50, 1, 40000    b7: 40, 2, 50000    b8: 30, 1, 60000
//   b9: 20, 5, 80000    b10: 10, 3, 70000
//   b11: only a fully refunded order; b12: no orders. N = 10.
// recency: 100 (w 0) → 1; 90 (w 1) → 1; the three 80s: w = 2 → 1 + floor(10/10) = 2
//   (a tie straddling the 2|3 boundary: untied they would be w 2, 3, 4 → 2, 2, 3);
//   50 (w 5) → 3; 40 (w 6) → 4; 30 (w 7) → 4; 20 (w 8) → 5; 10 (w 9) → 5.
//   b3 and b4 are almost a day apart but on the same local date: a tie.
// frequency: six customers with 1 occasion (b1 b2 b3 b4 b6 b8): w 0 → F1 all six;
//   2 (b5 b7): w 6 → 4; 3 (b10): w 8 → 5; 5 (b9): w 9 → 5. No F2, no F3.
// monetary: 10001 (w 0) → 1; 20000 (w 1) → 1; the three 30000s: w 2 → 2; 40000 (w 5) → 3;
//   50000 (w 6) → 4; 60000 (w 7) → 4; 70000 (w 8) → 5; 80000 (w 9) → 5.
const B_CUSTOMERS = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'b9', 'b10', 'b11', 'b12'];
const B_ORDERS = () => [
  ...hist('b1', 100, 1, 10001),
  ...hist('b2', 90, 1, 20000),
  ...hist('b3', 80, 1, 30000, { time: '00:10' }),
  ...hist('b4', 80, 1, 30000, { time: '23:50' }),
  ...hist('b5', 80, 2, 30000, { step: 5, base: 10000 }),
  ...hist('b6', 50, 1, 40000),
  ...hist('b7', 40, 2, 50000, { step: 5, base: 10000 }),
  ...hist('b8', 30, 1, 60000),
  ...hist('b9', 20, 5, 80000, { step: 5, base: 10000 }),
  ...hist('b10', 10, 3, 70000, { step: 5, base: 10000 }),
  ord('b11-0', 'b11', 5, { price: 90000 }),
];
const B_RFM = {
  b1: [1, 1, 1, 'Hibernating'],
  b2: [1, 1, 1, 'Hibernating'],
  b3: [2, 1, 2, 'Hibernating'],
  b4: [2, 1, 2, 'Hibernating'],
  b5: [2, 4, 2, 'At risk'],
  b6: [3, 1, 3, 'About to sleep'],
  b7: [4, 4, 4, 'Loyal'],
  b8: [4, 1, 4, 'Promising'],
  b9: [5, 5, 5, 'Champions'],
  b10: [5, 5, 5, 'Champions'],
  b11: null,
  b12: null,
};
const B_FILLED = {
  // b9 + b10: 80000 + 70000; (20 + 10) / 2; (5 + 3) / 2; 150000 / 2
  Champions: [2, 0.2, 150000, 15, 4, 75000],
  Loyal: [1, 0.1, 50000, 40, 2, 50000], // b7
  Promising: [1, 0.1, 60000, 30, 1, 60000], // b8
  'About to sleep': [1, 0.1, 40000, 50, 1, 40000], // b6
  'At risk': [1, 0.1, 30000, 80, 2, 30000], // b5
  // b1..b4: 10001 + 20000 + 30000 + 30000 = 90001; (100 + 90 + 80 + 80) / 4 = 87.5;
  // frequency 1; 90001 / 4 = 22500.25 → half up to 1 decimal 22500.3 (not 22500.2)
  Hibernating: [4, 0.4, 90001, 87.5, 1, 22500.3],
};
// edges: recency R2 {80} → 80, R3 {50}, R4 {40, 30} → 40, R5 {20, 10} → 20;
//   frequency: nobody has F2 or F3 → null, null; F4 {2, 2} → 2; F5 {3, 5} → 3;
//   monetary: M2 {30000} → 30000; M3 40000; M4 {50000, 60000} → 50000; M5 {70000, 80000} → 70000.
const B_EDGES = { recency: [80, 50, 40, 20], frequency: [null, null, 2, 3], monetary: [30000, 40000, 50000, 70000] };

// Shop S1 (N = 1): s1: 3 days, 2 occasions, 30000. s2: no orders. s3: 1 day, 1, 50000, erased
// (counted, N = 2 and s1's frequency w = 1 → 1 + floor(5/2) = 3).
// s1 alone: w = 0 in every dimension → 1 + floor(0 / 1) = 1: R1 F1 M1 → Hibernating
// (3 days ≤ 365, not lapsed).
// Shop S3 (N = 3): t1: 5 days, 1, 10000; t2: 20 days, 1, 30000; t3: 60 days, 2, 20000 (orders 60
// and 70 days ago, 10000 each); t4: no orders.
//   recency: t3 60 (w 0) → 1; t2 20 (w 1) → 1 + floor(5/3) = 2; t1 5 (w 2) → 1 + floor(10/3) = 4
//   frequency: t1, t2 1 (w 0) → 1; t3 2 (w 2) → 4
//   monetary: t1 10000 (w 0) → 1; t3 20000 (w 1) → 2; t2 30000 (w 2) → 4
//   → t1 R4 F1 Promising; t2 R2 F1 Hibernating; t3 R1 F4 At risk.
const S3_CUSTOMERS = ['t1', 't2', 't3', 't4'];
const S3_ORDERS = () => [...hist('t1', 5, 1, 10000), ...hist('t2', 20, 1, 30000), ...hist('t3', 60, 2, 20000, { step: 10, base: 10000 })];
const S3_RFM = {
  t1: [4, 1, 1, 'Promising'], t2: [2, 1, 4, 'Hibernating'], t3: [1, 4, 2, 'At risk'], t4: null,
};
const S3_FILLED = {
  Promising: [1, 0.3333, 10000, 5, 1, 10000], // t1; 1/3 = 0.33333… → 0.3333
  'At risk': [1, 0.3333, 20000, 60, 2, 20000], // t3
  Hibernating: [1, 0.3333, 30000, 20, 1, 30000], // t2
};

// Shop H (thresholds recency_days [7, 30, 90, 180], frequency [2, 3, 5, 8],
// monetary [10000, 20000, 50000, 100000]). Customers (days, occasions, net) → scores:
//   h1: 0, 8, 100000    → R5 (0 ≤ 7)   F5 (8 ≥ 8)      M5 (100000 ≥ 100000)
//   h2: 7, 1, 9999      → R5 (7 ≤ 7)   F1              M1 (9999 < 10000)
//   h3: 8, 2, 10000     → R4 (8 > 7)   F2 (2 ≥ 2)      M2 (10000 ≥ 10000)
//   h4: 30, 3, 19999    → R4 (30 ≤ 30) F3 (3 ≥ 3)      M2
//   h5: 31, 4, 20000    → R3 (31 > 30) F3 (4 < 5)      M3 (20000 ≥ 20000)
//   h6: 90, 5, 49999    → R3 (90 ≤ 90) F4 (5 ≥ 5)      M3
//   h7: 91, 7, 50000    → R2 (91 > 90) F4 (7 < 8)      M4 (50000 ≥ 50000)
//   h8: 180, 1, 99999   → R2 (≤ 180)   F1              M4
//   h9: 181, 2, 100001  → R1 (> 180)   F2              M5
//   h10: 400, 9, 900    → R1           F5 (9 ≥ 8)      M1
//   h11: 2, 1, 5000     → R5           F1              M1
const H_CUSTOMERS = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9', 'h10', 'h11'];
const H_ORDERS = () => [
  ...hist('h1', 0, 8, 100000), ...hist('h2', 7, 1, 9999), ...hist('h3', 8, 2, 10000),
  ...hist('h4', 30, 3, 19999), ...hist('h5', 31, 4, 20000), ...hist('h6', 90, 5, 49999),
  ...hist('h7', 91, 7, 50000), ...hist('h8', 180, 1, 99999), ...hist('h9', 181, 2, 100001),
  ...hist('h10', 400, 9, 900, { base: 100 }), ...hist('h11', 2, 1, 5000),
];
const H_THRESHOLDS = {
  method: 'thresholds', recency_days: [7, 30, 90, 180], frequency: [2, 3, 5, 8], monetary: [10000, 20000, 50000, 100000],
};
const H_RFM_THRESHOLDS = {
  h1: [5, 5, 5, 'Champions'],
  h2: [5, 1, 1, 'New customers'],
  h3: [4, 2, 2, 'Potential loyalists'],
  h4: [4, 3, 2, 'Potential loyalists'],
  h5: [3, 3, 3, 'Need attention'],
  h6: [3, 4, 3, 'Loyal'],
  h7: [2, 4, 4, 'At risk'],
  h8: [2, 1, 4, 'Hibernating'],
  h9: [1, 2, 5, 'Hibernating'], // 181 days ≤ 365: not lapsed
  h10: [1, 5, 1, "Can't lose them"], // lapsed (400 > 365) but F5 has no lapsed entry
  h11: [5, 1, 1, 'New customers'],
};
// N = 11: 1/11 = 0.090909… → 0.0909; 2/11 = 0.181818… → 0.1818
const H_FILLED_THRESHOLDS = {
  Champions: [1, 0.0909, 100000, 0, 8, 100000], // h1
  Loyal: [1, 0.0909, 49999, 90, 5, 49999], // h6
  // h3 + h4: 10000 + 19999; (8 + 30) / 2; (2 + 3) / 2; 29999 / 2
  'Potential loyalists': [2, 0.1818, 29999, 19, 2.5, 14999.5],
  // h2 + h11: 9999 + 5000; (7 + 2) / 2; 1; 14999 / 2
  'New customers': [2, 0.1818, 14999, 4.5, 1, 7499.5],
  'Need attention': [1, 0.0909, 20000, 31, 4, 20000], // h5
  'At risk': [1, 0.0909, 50000, 91, 7, 50000], // h7
  "Can't lose them": [1, 0.0909, 900, 400, 9, 900], // h10
  // h8 + h9: 99999 + 100001; (180 + 181) / 2; (1 + 2) / 2; 200000 / 2
  Hibernating: [2, 0.1818, 200000, 180.5, 1.5, 100000],
};
// Back to quintiles, N = 11, score = 1 + floor(5w/11): w 0..2 → 1, 3..4 → 2, 5..6 → 3,
// 7..8 → 4, 9..10 → 5.
//   recency, most days first: h10 400 (w 0), h9 181 (1), h8 180 (2), h7 91 (3), h6 90 (4),
//     h5 31 (5), h4 30 (6), h3 8 (7), h2 7 (8), h11 2 (9), h1 0 (10)
//     → h10 h9 h8 1; h7 h6 2; h5 h4 3; h3 h2 4; h11 h1 5 (h2 R4 now, R5 by thresholds).
//   frequency: 1 (h2 h8 h11, w 0) → 1; 2 (h3 h9, w 3) → 2; 3 (h4, w 5) → 3; 4 (h5, w 6) → 3;
//     5 (h6, w 7) → 4; 7 (h7, w 8) → 4; 8 (h1, w 9) → 5; 9 (h10, w 10) → 5.
//   monetary: 900 (h10, w 0), 5000 (h11, 1), 9999 (h2, 2) → 1; 10000 (h3, 3), 19999 (h4, 4) → 2;
//     20000 (h5, 5), 49999 (h6, 6) → 3; 50000 (h7, 7), 99999 (h8, 8) → 4; 100000 (h1, 9), 100001 (h9, 10) → 5.
const H_RFM_QUINTILES = {
  h1: [5, 5, 5, 'Champions'],
  h2: [4, 1, 1, 'Promising'],
  h3: [4, 2, 2, 'Potential loyalists'],
  h4: [3, 3, 2, 'Need attention'],
  h5: [3, 3, 3, 'Need attention'],
  h6: [2, 4, 3, 'At risk'],
  h7: [2, 4, 4, 'At risk'],
  h8: [1, 1, 4, 'Hibernating'],
  h9: [1, 2, 5, 'Hibernating'],
  h10: [1, 5, 1, "Can't lose them"],
  h11: [5, 1, 1, 'New customers'],
};
const H_FILLED_QUINTILES = {
  Champions: [1, 0.0909, 100000, 0, 8, 100000], // h1
  'Potential loyalists': [1, 0.0909, 10000, 8, 2, 10000], // h3
  'New customers': [1, 0.0909, 5000, 2, 1, 5000], // h11
  Promising: [1, 0.0909, 9999, 7, 1, 9999], // h2
  // h4 + h5: 19999 + 20000; (30 + 31) / 2; (3 + 4) / 2; 39999 / 2
  'Need attention': [2, 0.1818, 39999, 30.5, 3.5, 19999.5],
  // h6 + h7: 49999 + 50000; (90 + 91) / 2; (5 + 7) / 2; 99999 / 2
  'At risk': [2, 0.1818, 99999, 90.5, 6, 49999.5],
  "Can't lose them": [1, 0.0909, 900, 400, 9, 900], // h10
  Hibernating: [2, 0.1818, 200000, 180.5, 1.5, 100000], // h8 + h9
};
// recency R2 {90, 91} → 91, R3 {30, 31} → 31, R4 {7, 8} → 8, R5 {0, 2} → 2;
// frequency F2 {2} → 2, F3 {3, 4} → 3, F4 {5, 7} → 5, F5 {8, 9} → 8;
// monetary M2 {10000, 19999} → 10000, M3 → 20000, M4 → 50000, M5 → 100000.
const H_EDGES_QUINTILES = { recency: [91, 31, 8, 2], frequency: [2, 3, 5, 8], monetary: [10000, 20000, 50000, 100000] };

// Shop LO (thresholds recency_days [1, 2, 3, 4], frequency [2, 3, 4, 5], monetary [1, 2, 3, 4];
// lapse_days 10). Every order 10000 (so M5 for all). Customers (days, occasions):
//   l0: 0, 1 → R5 F1 New customers
//   l4: 4, 1 → R2 F1 Hibernating (R2: no Lost entry)
//   l10a: 10, 1 → R1 F1; 10 is not > 10 → Hibernating
//   l10b: 10, 2 → R1 F2 → Hibernating
//   l11a: 11, 1 → R1 F1; 11 > 10 → Lost
//   l11b: 11, 2 → R1 F2 → Lost
//   l11c: 11, 3 → R1 F3 → At risk (lapsed, but R1 F3 has no lapsed entry)
const LO_CUSTOMERS = ['l0', 'l4', 'l10a', 'l10b', 'l11a', 'l11b', 'l11c'];
const LO_ORDERS = () => [
  ...hist('l0', 0, 1, 10000, { time: '09:00' }), ...hist('l4', 4, 1, 10000),
  ...hist('l10a', 10, 1, 10000), ...hist('l10b', 10, 2, 20000, { base: 10000 }),
  ...hist('l11a', 11, 1, 10000), ...hist('l11b', 11, 2, 20000, { base: 10000 }), ...hist('l11c', 11, 3, 30000, { base: 10000 }),
];
const LO_THRESHOLDS = { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [2, 3, 4, 5], monetary: [1, 2, 3, 4] };

before(async () => {
  svc = await startService();
  c = api(svc);
  ({ people, load, cancel, refund } = historyCalls(c));

  A = await mkFullShop();
  await people(A.key, A_CUSTOMERS);
  await load(A.key, A_ORDERS());
  await refund(A.key, 'a3-1', 40000);
  await cancel(A.key, 'a5-x');
  await refund(A.key, 'a7-x', 100000);
  await cancel(A.key, 'a12-0');
  await refund(A.key, 'a14-0', 20000);
  await erase(A.key, 'a13');

  B = await mkShop();
  await people(B.key, B_CUSTOMERS);
  await load(B.key, B_ORDERS());
  await refund(B.key, 'b11-0', 90000);

  S1 = await mkShop();
  await people(S1.key, ['s1', 's2', 's3']);
  await load(S1.key, [...hist('s1', 3, 2, 30000, { base: 10000 }), ...hist('s3', 1, 1, 50000)]);
  await erase(S1.key, 's3');

  S3 = await mkShop();
  await people(S3.key, S3_CUSTOMERS);
  await load(S3.key, S3_ORDERS());

  M = await mkShop();
  await people(M.key, S3_CUSTOMERS);
  await load(M.key, S3_ORDERS());

  H = await mkShop();
  await people(H.key, H_CUSTOMERS);
  await load(H.key, H_ORDERS());

  LO = await mkShop();
  await people(LO.key, LO_CUSTOMERS);
  await load(LO.key, LO_ORDERS());
  await patchSettings(LO, { rfm: LO_THRESHOLDS, segments: { lapse_days: 10 } });

  EMPTY = await mkShop();
  await people(EMPTY.key, ['e1']);
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------

describe('quintiles', () => {
  test('N = 10 distinct values: two customers per score in every dimension (shop A)', async () => {
    await expectRfm(A.key, A_RFM);
  });

  test('summary: N, every map entry in order (empty ones too), figures and edges (shop A)', async () => {
    await expectSummary(A.key, { n: 10, filled: A_FILLED, edges: A_EDGES });
  });

  test('not scored and not counted: no orders, only a cancelled order, only a fully refunded order, erased', async () => {
    // a11, a12, a14, a13 → rfm null (in expectRfm above too); a13's orders are still there
    const g = await c.get('/v1/customers/a13?include=rfm', { key: A.key });
    assert.equal(g.status, 200, g.text);
    assert.notEqual(g.body.erased_at, null);
    assert.equal(g.body.facts.order_count, 11);
    assert.equal(g.body.rfm, null);
    for (const id of ['a11', 'a12', 'a14']) {
      const r = await c.get(`/v1/customers/${id}?include=rfm`, { key: A.key });
      assert.equal(r.body.facts.order_count, 0, id);
      assert.equal(r.body.rfm, null, id);
    }
    assert.equal((await summary(A.key)).customers, 10);
  });

  test('ties share a score: six customers with one occasion are all F1; a tie straddling a boundary (shop B)', async () => {
    await expectRfm(B.key, B_RFM);
  });

  test('summary with ties; averages rounded half up (22500.25 → 22500.3)', async () => {
    await expectSummary(B.key, { n: 10, filled: B_FILLED });
  });

  // Edges where a score is held by nobody but a better score is: rfm.md says "for scores 2..5
  // the least good value that scores at least that …; null where no customer has that score".
  // These tests read the last clause as written: a score nobody has → null, even when some
  // customer scores higher. (Reading "at least" alone would repeat the next held score's value
  // there, e.g. B frequency [2, 2, 2, 3].)
  test('edges with ties: null where no customer has that score (shop B: no F2, no F3)', async () => {
    assert.deepEqual((await summary(B.key)).edges, B_EDGES);
  });

  test('N = 1: scores 1, 1, 1 → Hibernating; edges all null; erased and order-less customers not counted (shop S1)', async () => {
    await expectRfm(S1.key, { s1: [1, 1, 1, 'Hibernating'], s2: null, s3: null });
    await expectSummary(S1.key, {
      n: 1,
      // s1: share 1/1 = 1
      filled: { Hibernating: [1, 1, 30000, 3, 2, 30000] },
      // nobody has a score above 1
      edges: { recency: [null, null, null, null], frequency: [null, null, null, null], monetary: [null, null, null, null] },
    });
  });

  test('N = 1, lapsed: lapse_days 2 → Lost (3 > 2); lapse_days 3 → Hibernating again (3 is not > 3)', async () => {
    try {
      await patchSeg(S1, { lapse_days: 2 });
      await expectRfm(S1.key, { s1: [1, 1, 1, 'Lost'] });
      await expectSummary(S1.key, { n: 1, filled: { Lost: [1, 1, 30000, 3, 2, 30000] } });
      await patchSeg(S1, { lapse_days: 3 });
      await expectRfm(S1.key, { s1: [1, 1, 1, 'Hibernating'] });
      await expectSummary(S1.key, { n: 1, filled: { Hibernating: [1, 1, 30000, 3, 2, 30000] } });
    } finally {
      await patchSeg(S1, { lapse_days: 365 });
    }
  });

  test('an erased customer PUT again (erased_at cleared) is scored again with its orders (shop S1)', async () => {
    // s3: 1 day, 1 occasion, 50000. N = 2 with s1 (3 days, 2, 30000); 1 + floor(5w/2): w 0 → 1, w 1 → 3.
    //   recency: s1 (w 0) 1, s3 (w 1) 3; frequency: s3 1, s1 3; monetary: s1 1, s3 3.
    //   s1 R1 F3 → At risk; s3 R3 F1 → About to sleep.
    const r = await c.put('/v1/customers/s3', { name: 'Back again' }, { key: S1.key });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.erased_at, null);
    await expectRfm(S1.key, { s1: [1, 3, 1, 'At risk'], s2: null, s3: [3, 1, 3, 'About to sleep'] });
    await expectSummary(S1.key, {
      n: 2,
      filled: { 'About to sleep': [1, 0.5, 50000, 1, 1, 50000], 'At risk': [1, 0.5, 30000, 3, 2, 30000] },
      // (edges with unheld scores: the N = 2 and N = 3 edge tests below)
    });
  });

  test('N = 3: scores 1, 2, 4 (1 + floor(5w/3)); a frequency tie (shop S3)', async () => {
    await expectRfm(S3.key, S3_RFM);
    await expectSummary(S3.key, { n: 3, filled: S3_FILLED });
  });

  test('N = 3: edges null where no customer has that score (3 and 5)', async () => {
    // recency: R2 {t2 20} → 20; nobody R3; R4 {t1 5} → 5; nobody R5.
    // frequency: F1 t1 t2, F4 t3 (2) → [null, null, 2, null].
    // monetary: M2 {t3 20000}; M4 {t2 30000} → [20000, null, 30000, null].
    assert.deepEqual((await summary(S3.key)).edges, {
      recency: [20, null, 5, null], frequency: [null, null, 2, null], monetary: [20000, null, 30000, null],
    });
  });

  test('erasing a scored customer: N = 3 → 2, the others are scored again (shop S3)', async () => {
    await erase(S3.key, 't1');
    // t2 (20 days, 1, 30000), t3 (60, 2, 20000); N = 2, score = 1 + floor(5w/2): w 0 → 1, w 1 → 3.
    //   recency: t3 (w 0) 1, t2 (w 1) 3; frequency: t2 1, t3 3; monetary: t3 1, t2 3.
    //   t2 R3 F1 → About to sleep; t3 R1 F3 → At risk.
    await expectRfm(S3.key, {
      t1: null, t2: [3, 1, 3, 'About to sleep'], t3: [1, 3, 1, 'At risk'], t4: null,
    });
    await expectSummary(S3.key, {
      n: 2,
      filled: {
        'About to sleep': [1, 0.5, 30000, 20, 1, 30000],
        'At risk': [1, 0.5, 20000, 60, 2, 20000],
      },
    });
  });

  test('N = 2: edges null where no customer has that score (all but 3)', async () => {
    // scores held: 1 and 3 in each dimension. R3 t2 20; F3 t3 2; M3 t2 30000.
    assert.deepEqual((await summary(S3.key)).edges, {
      recency: [null, 20, null, null], frequency: [null, 2, null, null], monetary: [null, 30000, null, null],
    });
  });

  test('N = 0: no customer scored → shares null, averages null, edges null', async () => {
    await expectRfm(EMPTY.key, { e1: null });
    await expectSummary(EMPTY.key, { n: 0, filled: {}, edges: null });
  });
});

describe('monetary net of refunds, and which orders count', () => {
  test('a refund moves a customer down in monetary; refunded and cancelled orders leave recency and frequency', async () => {
    // (facts as the scores see them) a3: 2 occasions, 5000 net; a5: 5 occasions, last 30 days
    // ago (its cancelled order today does not count); a7: 6 occasions, last 60 days ago, 8000
    // (its fully refunded order yesterday does not count).
    const facts = async (id) => (await c.get(`/v1/customers/${id}`, { key: A.key })).body.facts;
    assert.deepEqual([(await facts('a3')).order_count, (await facts('a3')).total_spent], [2, 5000]);
    assert.deepEqual([(await facts('a7')).order_count, (await facts('a7')).total_spent], [6, 8000]);
    assert.equal((await facts('a5')).order_count, 5);
    // a3: M1 (with 45000 it would be M4); a7: R2 F3 M1 (with its refunded order R5 F4 M5)
    await expectRfm(A.key, { a3: A_RFM.a3, a5: A_RFM.a5, a7: A_RFM.a7 });
  });

  test('a further refund re-scores at once: a6 60000 → 10000 drops from M5 to M2', async () => {
    // a6's orders: a6-0 45 days 1000, a6-1 52 days 1000, a6-2 59 days 58000. Refund 50000 of
    // a6-2 (8000 left, the order still qualifies): a6 net 10000.
    // monetary now: a3 5000 (w 0), a7 8000 (w 1) | a6 10000 (w 2), a4 12000 (w 3) | a8 15000 (w 4),
    //   a1 20000 (w 5) | a9 25000 (w 6), a5 30000 (w 7) | a10 36000 (w 8), a2 50000 (w 9)
    //   → a6 M2, a4 M2, a8 M3, a1 M3, a9 M4, a5 M4, a10 M5, a2 M5. R and F unchanged.
    const shop = await mkShop();
    await people(shop.key, A_CUSTOMERS);
    await load(shop.key, A_ORDERS());
    await refund(shop.key, 'a3-1', 40000);
    await cancel(shop.key, 'a5-x');
    await refund(shop.key, 'a7-x', 100000);
    await cancel(shop.key, 'a12-0');
    await refund(shop.key, 'a14-0', 20000);
    await erase(shop.key, 'a13');
    await expectRfm(shop.key, A_RFM, 'copy of A:');
    await refund(shop.key, 'a6-2', 50000);
    await expectRfm(shop.key, {
      a1: [5, 5, 3, 'Champions'], a2: [5, 1, 5, 'New customers'], a3: [4, 1, 1, 'Promising'],
      a4: [4, 4, 2, 'Loyal'], a5: [3, 3, 4, 'Need attention'], a6: [3, 2, 2, 'About to sleep'],
      a7: [2, 3, 1, 'At risk'], a8: [2, 5, 3, "Can't lose them"], a9: [1, 4, 4, 'At risk'],
      a10: [1, 2, 5, 'Hibernating'],
    }, 'after refunding 50000 of a6:');
    const s = await expectSummary(shop.key, {
      n: 10,
      filled: { ...A_FILLED, 'About to sleep': [1, 0.1, 10000, 45, 3, 10000] },
    });
    // monetary edges: M2 {10000, 12000} → 10000; M3 {15000, 20000} → 15000; M4 {25000, 30000} → 25000;
    // M5 {36000, 50000} → 36000. Recency and frequency unchanged.
    assert.deepEqual(s.edges, { ...A_EDGES, monetary: [10000, 15000, 25000, 36000] });
  });
});

describe("the shop's repurchase rule decides what counts", () => {
  test('merge window: occasions, not orders; recency from the start of the last occasion; min_order_amount', async () => {
    // thresholds recency_days [3, 4, 5, 10], frequency [2, 3, 4, 5], monetary [1000, 10000, 20000, 30000].
    //   r1: 5 days ago 10:00 and 4 days ago 09:00 (23 h later), 10000 each
    //   r2: 3 days ago, 500        r3: 10 days ago, 20000        r4: 30 and 20 days ago, 10000 each
    // Default rule (every order its own occasion, no minimum):
    //   r1: 4 days → R4, 2 → F2, 20000 → M4 → Potential loyalists
    //   r2: 3 days → R5, F1, 500 → M1 → New customers
    //   r3: 10 days → R2, F1, 20000 → M4 → Hibernating
    //   r4: 20 days → R1, 2 → F2, 20000 → M4 → Hibernating (not lapsed)
    const T = { method: 'thresholds', recency_days: [3, 4, 5, 10], frequency: [2, 3, 4, 5], monetary: [1000, 10000, 20000, 30000] };
    const shop = await mkShop();
    await people(shop.key, ['r1', 'r2', 'r3', 'r4']);
    await load(shop.key, [
      ord('r1-a', 'r1', 5, { time: '10:00' }), ord('r1-b', 'r1', 4, { time: '09:00' }),
      ord('r2-a', 'r2', 3, { price: 500 }), ord('r3-a', 'r3', 10, { price: 20000 }),
      ord('r4-a', 'r4', 30), ord('r4-b', 'r4', 20),
    ]);
    await patchRfm(shop, T);
    await expectRfm(shop.key, {
      r1: [4, 2, 4, 'Potential loyalists'], r2: [5, 1, 1, 'New customers'], r3: [2, 1, 4, 'Hibernating'], r4: [1, 2, 4, 'Hibernating'],
    }, 'default rule:');
    await expectSummary(shop.key, {
      method: 'thresholds',
      n: 4,
      filled: {
        'Potential loyalists': [1, 0.25, 20000, 4, 2, 20000],
        'New customers': [1, 0.25, 500, 3, 1, 500],
        Hibernating: [2, 0.5, 40000, 15, 1.5, 20000], // r3 + r4: (10 + 20) / 2; (1 + 2) / 2
      },
      edges: null,
    }, 'default rule:');
    // merge_window_hours 24, min_order_amount 1000:
    //   r1: r1-b joins the occasion started by r1-a 5 days ago → 1 occasion, last_order_at 5 days
    //     ago → R3 (≤ 5), F1, still 20000 → M4 → About to sleep
    //   r2: its only order is below the minimum → not scored; N = 3
    //   r3, r4: unchanged (r4's orders are 10 days apart)
    await patchSettings(shop, { repurchase_rule: { merge_window_hours: 24, min_order_amount: 1000 } });
    await expectRfm(shop.key, {
      r1: [3, 1, 4, 'About to sleep'], r2: null, r3: [2, 1, 4, 'Hibernating'], r4: [1, 2, 4, 'Hibernating'],
    }, 'merge 24 h, minimum 1000:');
    await expectSummary(shop.key, {
      method: 'thresholds',
      n: 3,
      filled: {
        'About to sleep': [1, 0.3333, 20000, 5, 1, 20000],
        Hibernating: [2, 0.6667, 40000, 15, 1.5, 20000],
      },
      edges: null,
    }, 'merge 24 h, minimum 1000:');
    // quintiles under the new rule, N = 3 (r2 with no qualifying order is not counted):
    //   r1 (5 days, 1, 20000), r3 (10, 1, 20000), r4 (20, 2, 20000); 1 + floor(5w/3): w 0 → 1, 1 → 2, 2 → 4.
    //   recency: r4 (w 0) 1, r3 (w 1) 2, r1 (w 2) 4; frequency: r1 r3 (w 0) 1, r4 (w 2) 4;
    //   monetary: all 20000 (w 0) → 1.
    //   r1 R4 F1 Promising; r3 R2 F1 Hibernating; r4 R1 F4 At risk.
    await patchRfm(shop, QUINTILES);
    await expectRfm(shop.key, {
      r1: [4, 1, 1, 'Promising'], r2: null, r3: [2, 1, 1, 'Hibernating'], r4: [1, 4, 1, 'At risk'],
    }, 'quintiles, merge 24 h, minimum 1000:');
    await expectSummary(shop.key, {
      n: 3,
      filled: {
        Promising: [1, 0.3333, 20000, 5, 1, 20000],
        'At risk': [1, 0.3333, 20000, 20, 2, 20000],
        Hibernating: [1, 0.3333, 20000, 10, 1, 20000],
      },
    }, 'quintiles, merge 24 h, minimum 1000:');
  });
});

describe('rounding half up, exactly', () => {
  test('shares to 4 decimals (1/32 → 0.0313, 5/32 → 0.1563); averages to 1 decimal (100.05 → 100.1)', async () => {
    // thresholds recency_days [1, 2, 3, 4], frequency [2, 3, 4, 5], monetary [1, 2, 3, 4]; N = 32:
    //   n1: today 09:00, 3000 → R5 F1 New customers
    //   p1..p5: 2 days ago, 2000 each → R4 F1 Promising
    //   s1..s6: 3 days ago, 1000 each → R3 F1 About to sleep
    //   h1..h20: 100 days ago, 1000 each, except h1: 2 orders (100 and 110 days ago, 500 each) and
    //     h2: 101 days ago, 1001 → R1 F1–2 Hibernating (not lapsed)
    // shares: 1/32 = 0.03125 → 0.0313 (half-even would give 0.0312); 5/32 = 0.15625 → 0.1563;
    //   6/32 = 0.1875; 20/32 = 0.625.
    // Hibernating: revenue 19 × 1000 + 1001 = 20001; recency (19 × 100 + 101) / 20 = 100.05 → 100.1;
    //   frequency 21 / 20 = 1.05 → 1.1; monetary 20001 / 20 = 1000.05 → 1000.1
    //   (100.05 and 1000.05 as binary doubles are just below .05 and would round down).
    const shop = await mkShop();
    const ps = [1, 2, 3, 4, 5].map((i) => `p${i}`);
    const ss = [1, 2, 3, 4, 5, 6].map((i) => `s${i}`);
    const hs = Array.from({ length: 20 }, (_, i) => `h${i + 1}`);
    await people(shop.key, ['n1', ...ps, ...ss, ...hs]);
    await load(shop.key, [
      ord('n1-0', 'n1', 0, { price: 3000, time: '09:00' }),
      ...ps.map((id) => ord(`${id}-0`, id, 2, { price: 2000 })),
      ...ss.map((id) => ord(`${id}-0`, id, 3, { price: 1000 })),
      ord('h1-0', 'h1', 100, { price: 500 }), ord('h1-1', 'h1', 110, { price: 500 }),
      ord('h2-0', 'h2', 101, { price: 1001 }),
      ...hs.slice(2).map((id) => ord(`${id}-0`, id, 100, { price: 1000 })),
    ]);
    await patchRfm(shop, { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [2, 3, 4, 5], monetary: [1, 2, 3, 4] });
    await expectRfm(shop.key, {
      n1: [5, 1, 5, 'New customers'], p1: [4, 1, 5, 'Promising'], s6: [3, 1, 5, 'About to sleep'],
      h1: [1, 2, 5, 'Hibernating'], h2: [1, 1, 5, 'Hibernating'], h20: [1, 1, 5, 'Hibernating'],
    });
    await expectSummary(shop.key, {
      method: 'thresholds',
      n: 32,
      filled: {
        'New customers': [1, 0.0313, 3000, 0, 1, 3000],
        Promising: [5, 0.1563, 10000, 2, 1, 2000],
        'About to sleep': [6, 0.1875, 6000, 3, 1, 1000],
        Hibernating: [20, 0.625, 20001, 100.1, 1.1, 1000.1],
      },
      edges: null,
    });
  });
});

describe('recency by local date', () => {
  test('zone X (12:xx now): orders near midnight count by their local date, not elapsed time', async () => {
    // z0 today 00:30 (0 days); z1 yesterday 23:30 (1 day, ~13 h ago); z2 2 days ago 23:30
    // (2 days, ~37 h ago); z3 3 days ago 00:30 (3 days); z4 4 days ago 23:59 (4 days, ~3.5 × 24 h ago).
    // One order of 10000 each. Counted in elapsed whole days it would be 0, 0, 1, 3, 3.
    const Z = await mkShop();
    await people(Z.key, ['z0', 'z1', 'z2', 'z3', 'z4']);
    await load(Z.key, [
      ord('z0-0', 'z0', 0, { time: '00:30' }), ord('z1-0', 'z1', 1, { time: '23:30' }),
      ord('z2-0', 'z2', 2, { time: '23:30' }), ord('z3-0', 'z3', 3, { time: '00:30' }),
      ord('z4-0', 'z4', 4, { time: '23:59' }),
    ]);
    // quintiles, N = 5, score = 1 + floor(5w/5) = 1 + w: z4 (w 0) 1, z3 2, z2 3, z1 4, z0 5.
    // F and M all tied (w 0) → 1. z0 R5 F1 New customers; z1 R4 F1 Promising; z2 R3 F1 About to
    // sleep; z3 R2, z4 R1 F1 Hibernating.
    await expectRfm(Z.key, {
      z0: [5, 1, 1, 'New customers'], z1: [4, 1, 1, 'Promising'], z2: [3, 1, 1, 'About to sleep'],
      z3: [2, 1, 1, 'Hibernating'], z4: [1, 1, 1, 'Hibernating'],
    }, 'quintiles:');
    const filled = {
      'New customers': [1, 0.2, 10000, 0, 1, 10000],
      Promising: [1, 0.2, 10000, 1, 1, 10000],
      'About to sleep': [1, 0.2, 10000, 2, 1, 10000],
      Hibernating: [2, 0.4, 20000, 3.5, 1, 10000], // (3 + 4) / 2
    };
    // recency edges: R2 3, R3 2, R4 1, R5 0; nobody above F1 or M1.
    await expectSummary(Z.key, {
      n: 5, filled, edges: { recency: [3, 2, 1, 0], frequency: [null, null, null, null], monetary: [null, null, null, null] },
    });
    // thresholds recency_days [0, 1, 2, 3]: 0 → 5, 1 → 4, 2 → 3, 3 → 2, 4 → 1 (the same scores);
    // frequency [2, 3, 4, 5] → F1; monetary [20000, …] → M1.
    await patchRfm(Z, { method: 'thresholds', recency_days: [0, 1, 2, 3], frequency: [2, 3, 4, 5], monetary: [20000, 30000, 40000, 50000] });
    await expectRfm(Z.key, {
      z0: [5, 1, 1, 'New customers'], z1: [4, 1, 1, 'Promising'], z2: [3, 1, 1, 'About to sleep'],
      z3: [2, 1, 1, 'Hibernating'], z4: [1, 1, 1, 'Hibernating'],
    }, 'thresholds:');
    await expectSummary(Z.key, { method: 'thresholds', n: 5, filled, edges: null });
  });

  test("another zone: days counted in the shop's zone, where the UTC date differs", async () => {
    // X is zone ZX (12:xx local now). Y is 13 hours east of X (01:xx tomorrow there) when that
    // zone exists (X at most UTC+1), else 14 hours west (22:xx yesterday there).
    // Y east: orders at 23:00 Y-local n days ago (UTC: the same date, so today − that UTC date
    //   is n − 1 while today in UTC is a day behind Y's).
    // Y west: orders at 01:00 Y-local n days ago (now is already tomorrow in UTC: n + 1 UTC days).
    // y1..y5: one order (10000) each, n = 1..5 days ago in Y.
    const east = OFF_X <= 1;
    const offY = east ? OFF_X + 13 : OFF_X - 14;
    const ZY = etcZone(offY);
    const todayY = localDate(ZY);
    const time = east ? '23:00' : '01:00';
    const atY = (n) => `${addDays(todayY, -n)}T${time}:00${offStr(offY)}`;
    // the construction itself (dates only): local date n days ago, UTC days ≠ n
    for (let n = 1; n <= 5; n++) {
      const ms = Date.parse(atY(n));
      assert.ok(ms < Date.now());
      assert.equal(localDate(ZY, ms), addDays(todayY, -n));
      assert.notEqual(dayDiff(localDate('UTC'), localDate('UTC', ms)), n, `UTC day count of y${n}`);
    }
    const Y = await mkShop(ZY);
    await people(Y.key, ['y1', 'y2', 'y3', 'y4', 'y5']);
    await load(Y.key, [1, 2, 3, 4, 5].map((n) => ord(`y${n}-0`, `y${n}`, 0, { placedAt: atY(n) })));
    // thresholds recency_days [1, 2, 3, 4]: y1 5, y2 4, y3 3, y4 2, y5 1; F1, M1.
    await patchRfm(Y, { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [2, 3, 4, 5], monetary: [20000, 30000, 40000, 50000] });
    await expectRfm(Y.key, {
      y1: [5, 1, 1, 'New customers'], y2: [4, 1, 1, 'Promising'], y3: [3, 1, 1, 'About to sleep'],
      y4: [2, 1, 1, 'Hibernating'], y5: [1, 1, 1, 'Hibernating'],
    });
    await expectSummary(Y.key, {
      method: 'thresholds',
      n: 5,
      asOf: todayY,
      filled: {
        'New customers': [1, 0.2, 10000, 1, 1, 10000],
        Promising: [1, 0.2, 10000, 2, 1, 10000],
        'About to sleep': [1, 0.2, 10000, 3, 1, 10000],
        Hibernating: [2, 0.4, 20000, 4.5, 1, 10000], // (4 + 5) / 2
      },
      edges: null,
    });
  });
});

describe('thresholds', () => {
  test('scores at each threshold boundary (shop H)', async () => {
    const shown = await patchRfm(H, H_THRESHOLDS);
    assert.deepEqual(shown.rfm, H_THRESHOLDS);
    await expectRfm(H.key, H_RFM_THRESHOLDS);
  });

  test('summary: method thresholds, edges null', async () => {
    await expectSummary(H.key, { method: 'thresholds', n: 11, filled: H_FILLED_THRESHOLDS, edges: null });
  });

  test('thresholds [0, …]: every value reaches the first one', async () => {
    // recency_days [0, 7, 30, 90]: h1 (0) → 5; h11 (2), h2 (7) → 4; h3 (8), h4 (30) → 3;
    //   h5 (31), h6 (90) → 2; h7 (91) and older → 1.
    // frequency [1, 2, 3, 4]: 1 → 2 (1 ≥ 1); 2 → 3; 3 → 4; 4 and more → 5.
    // monetary [0, 1000, 10000, 100000]: 900 → 2; 5000, 9999 → 3; 10000..99999 → 4; 100000, 100001 → 5.
    // Cells: h1 R5 F5 Champions; h2 R4 F2 Potential loyalists; h3 R3 F3 Need attention;
    //   h4 R3 F4 Loyal; h5 R2 F5 Can't lose them; h6 R2 F5; h7 R1 F5; h8 R1 F2 (180 days, not
    //   lapsed) Hibernating; h9 R1 F3 At risk; h10 R1 F5; h11 R4 F2 Potential loyalists.
    try {
      await patchRfm(H, { method: 'thresholds', recency_days: [0, 7, 30, 90], frequency: [1, 2, 3, 4], monetary: [0, 1000, 10000, 100000] });
      await expectRfm(H.key, {
        h1: [5, 5, 5, 'Champions'],
        h2: [4, 2, 3, 'Potential loyalists'],
        h3: [3, 3, 4, 'Need attention'],
        h4: [3, 4, 4, 'Loyal'],
        h5: [2, 5, 4, "Can't lose them"],
        h6: [2, 5, 4, "Can't lose them"],
        h7: [1, 5, 4, "Can't lose them"],
        h8: [1, 2, 4, 'Hibernating'],
        h9: [1, 3, 5, 'At risk'],
        h10: [1, 5, 2, "Can't lose them"],
        h11: [4, 2, 3, 'Potential loyalists'],
      });
    } finally {
      await patchRfm(H, H_THRESHOLDS);
    }
  });

  test('back to quintiles: PATCH replaces settings.rfm as a whole; scores by rank again', async () => {
    const shown = await patchRfm(H, QUINTILES);
    assert.deepEqual(shown.rfm, QUINTILES, 'no thresholds left over');
    assert.deepEqual((await getShop(H)).settings.rfm, QUINTILES);
    await expectRfm(H.key, H_RFM_QUINTILES);
    await expectSummary(H.key, { n: 11, filled: H_FILLED_QUINTILES, edges: H_EDGES_QUINTILES });
  });
});

describe('the Lost override', () => {
  // Shop LO: thresholds, lapse_days 10 (see above).
  const LO_RFM = {
    l0: [5, 1, 5, 'New customers'],
    l4: [2, 1, 5, 'Hibernating'],
    l10a: [1, 1, 5, 'Hibernating'],
    l10b: [1, 2, 5, 'Hibernating'],
    l11a: [1, 1, 5, 'Lost'],
    l11b: [1, 2, 5, 'Lost'],
    l11c: [1, 3, 5, 'At risk'],
  };

  test('R1 F1–2: lapsed (11 > 10 days) → Lost, not lapsed (10) → Hibernating; R1 F3 lapsed → At risk', async () => {
    await expectRfm(LO.key, LO_RFM);
    // N = 7: 1/7 = 0.142857… → 0.1429; 2/7 = 0.285714… → 0.2857; 3/7 = 0.428571… → 0.4286
    await expectSummary(LO.key, {
      method: 'thresholds',
      n: 7,
      filled: {
        'New customers': [1, 0.1429, 10000, 0, 1, 10000], // l0
        'At risk': [1, 0.1429, 30000, 11, 3, 30000], // l11c
        // l4, l10a, l10b: (4 + 10 + 10) / 3 = 8; (1 + 1 + 2) / 3 = 1.33… → 1.3;
        // 40000 / 3 = 13333.33… → 13333.3
        Hibernating: [3, 0.4286, 40000, 8, 1.3, 13333.3],
        // l11a, l11b: 11; (1 + 2) / 2; 30000 / 2
        Lost: [2, 0.2857, 30000, 11, 1.5, 15000],
      },
      edges: null,
    });
  });

  test('lapse_days 9: the 10-day customers are lapsed now; lapse_days 3: R2 lapsed stays Hibernating', async () => {
    // lapse_days 9 → l10a, l10b (10 > 9) join Lost: l10a, l10b, l11a, l11b.
    // 4/7 = 0.571428… → 0.5714; (10 + 10 + 11 + 11) / 4 = 10.5; (1 + 2 + 1 + 2) / 4 = 1.5; 60000 / 4
    const after9 = {
      'New customers': [1, 0.1429, 10000, 0, 1, 10000],
      'At risk': [1, 0.1429, 30000, 11, 3, 30000],
      Hibernating: [1, 0.1429, 10000, 4, 1, 10000], // l4
      Lost: [4, 0.5714, 60000, 10.5, 1.5, 15000],
    };
    const rfm9 = { ...LO_RFM, l10a: [1, 1, 5, 'Lost'], l10b: [1, 2, 5, 'Lost'] };
    try {
      await patchSeg(LO, { lapse_days: 9 });
      await expectRfm(LO.key, rfm9, 'lapse_days 9:');
      await expectSummary(LO.key, { method: 'thresholds', n: 7, filled: after9 }, 'lapse_days 9:');
      // lapse_days 3 → l4 (4 > 3) is lapsed too, but R2 F1 has no lapsed entry: Hibernating.
      await patchSeg(LO, { lapse_days: 3 });
      await expectRfm(LO.key, rfm9, 'lapse_days 3:');
      await expectSummary(LO.key, { method: 'thresholds', n: 7, filled: after9 }, 'lapse_days 3:');
    } finally {
      await patchSeg(LO, { lapse_days: 10 });
    }
    await expectRfm(LO.key, LO_RFM, 'lapse_days 10 again:');
  });

  test('quintiles with the default lapse_days: R1 F2 at 200 days; lapse_days 199 → Lost, 200 → Hibernating (shop A)', async () => {
    // a10: R1 F2, 200 days. a9 (R1 F4, 120 days) and a8 (R2 F5, 90 days) have no lapsed entry.
    try {
      await patchSeg(A, { lapse_days: 199 });
      await expectRfm(A.key, { ...A_RFM, a10: [1, 2, 4, 'Lost'] }, 'lapse_days 199:');
      const { Hibernating, ...rest } = A_FILLED;
      await expectSummary(A.key, { n: 10, filled: { ...rest, Lost: Hibernating }, edges: A_EDGES }, 'lapse_days 199:');
      await patchSeg(A, { lapse_days: 200 });
      await expectRfm(A.key, A_RFM, 'lapse_days 200:');
      await patchSeg(A, { lapse_days: 60 });
      // 60: a10 Lost; a9 (120 > 60) and a8 (90), a7 (60 is not > 60) keep their segments.
      await expectRfm(A.key, { ...A_RFM, a10: [1, 2, 4, 'Lost'] }, 'lapse_days 60:');
    } finally {
      await patchSeg(A, { lapse_days: 365 });
    }
    await expectSummary(A.key, { n: 10, filled: A_FILLED, edges: A_EDGES }, 'lapse_days restored:');
  });

  test('a custom lapsed entry on R2 F1 takes lapsed R2 F1 customers; a map without lapsed entries has no override', async () => {
    const fading = [...cloneMap(), { name: 'Fading', r: [2, 2], f: [1, 1], lapsed: true }];
    const names = [...DEFAULT_NAMES, 'Fading'];
    try {
      const g = await putMap(LO.key, fading);
      assert.deepEqual(g.segments, [...DEFAULT_MAP, E('Fading', [2, 2], [1, 1], true)]);
      await patchSeg(LO, { lapse_days: 3 });
      // lapse_days 3: l4 (R2 F1, 4 > 3) → Fading; l10a l10b l11a l11b (R1 F1–2, lapsed) → Lost.
      await expectRfm(LO.key, {
        ...LO_RFM, l4: [2, 1, 5, 'Fading'], l10a: [1, 1, 5, 'Lost'], l10b: [1, 2, 5, 'Lost'],
      }, 'Fading, lapse_days 3:');
      await expectSummary(LO.key, {
        method: 'thresholds',
        n: 7,
        names,
        filled: {
          'New customers': [1, 0.1429, 10000, 0, 1, 10000],
          'At risk': [1, 0.1429, 30000, 11, 3, 30000],
          Lost: [4, 0.5714, 60000, 10.5, 1.5, 15000],
          Fading: [1, 0.1429, 10000, 4, 1, 10000], // l4; Hibernating is empty now
        },
      }, 'Fading, lapse_days 3:');
      await patchSeg(LO, { lapse_days: 10 });
      // l4 (4 days) is not lapsed → Hibernating; Fading empty but listed.
      await expectRfm(LO.key, LO_RFM, 'Fading, lapse_days 10:');
      const s = await summary(LO.key);
      assert.deepEqual(s.segments.map((x) => x.name), names);
      assert.deepEqual(s.segments[11], { name: 'Fading', customers: 0, share: 0, revenue: 0, avg_recency_days: null, avg_frequency: null, avg_monetary: null });

      // the default map without Lost: lapsed R1 F1–2 customers stay in Hibernating.
      const noLost = cloneMap().filter((e) => e.name !== 'Lost');
      await putMap(LO.key, noLost);
      await expectRfm(LO.key, { ...LO_RFM, l11a: [1, 1, 5, 'Hibernating'], l11b: [1, 2, 5, 'Hibernating'] }, 'no Lost:');
      await expectSummary(LO.key, {
        method: 'thresholds',
        n: 7,
        names: DEFAULT_NAMES.filter((x) => x !== 'Lost'),
        filled: {
          'New customers': [1, 0.1429, 10000, 0, 1, 10000],
          'At risk': [1, 0.1429, 30000, 11, 3, 30000],
          // l4 l10a l10b l11a l11b: 5/7 = 0.714285… → 0.7143; (4 + 10 + 10 + 11 + 11) / 5 = 9.2;
          // (1 + 1 + 2 + 1 + 2) / 5 = 1.4; 70000 / 5 = 14000
          Hibernating: [5, 0.7143, 70000, 9.2, 1.4, 14000],
        },
      }, 'no Lost:');
    } finally {
      await patchSeg(LO, { lapse_days: 10 });
      await putMap(LO.key, cloneMap());
    }
    await expectRfm(LO.key, LO_RFM, 'default map again:');
  });
});

describe('the segment map', () => {
  test('GET: the default map, every entry with lapsed, default true (admin and readonly)', async () => {
    for (const s of [A, M, EMPTY, H]) {
      const g = await getMap(s.key);
      assert.deepEqual(g, { segments: DEFAULT_MAP, default: true });
    }
    assert.deepEqual(await getMap(A.keys.readonly), { segments: DEFAULT_MAP, default: true });
  });

  test('PUT a custom map: default false, lapsed filled in, segments and summary follow (shop M)', async () => {
    // Shop M has S3's history: t1 R4 F1, t2 R2 F1, t3 R1 F4.
    const g = await putMap(M.key, [{ name: 'Top', r: [4, 5], f: [1, 5] }, { name: 'Rest', r: [1, 3], f: [1, 5], lapsed: false }]);
    assert.deepEqual(g, { segments: [E('Top', [4, 5], [1, 5]), E('Rest', [1, 3], [1, 5])], default: false });
    await expectRfm(M.key, {
      t1: [4, 1, 1, 'Top'], t2: [2, 1, 4, 'Rest'], t3: [1, 4, 2, 'Rest'], t4: null,
    });
    await expectSummary(M.key, {
      n: 3,
      names: ['Top', 'Rest'],
      filled: {
        Top: [1, 0.3333, 10000, 5, 1, 10000], // t1
        // t2 + t3: 2/3 = 0.66666… → 0.6667; 30000 + 20000; (20 + 60) / 2; (1 + 2) / 2; 50000 / 2
        Rest: [2, 0.6667, 50000, 40, 1.5, 25000],
      },
    });
    // other shops keep the default map
    assert.deepEqual(await getMap(S3.key), { segments: DEFAULT_MAP, default: true });
    await expectRfm(B.key, { b9: B_RFM.b9, b5: B_RFM.b5 });
  });

  test('names: 64 characters (also CJK) are accepted, shown as given', async () => {
    const long = 'x'.repeat(64);
    const cjk = '茶'.repeat(64);
    const g = await putMap(M.key, [{ name: long, r: [4, 5], f: [1, 5] }, { name: cjk, r: [1, 3], f: [1, 5] }]);
    assert.deepEqual(g.segments.map((e) => e.name), [long, cjk]);
    await expectRfm(M.key, { t1: [4, 1, 1, long], t2: [2, 1, 4, cjk] });
  });

  test('25 single-cell entries, then 50 entries (a lapsed entry on every cell)', async () => {
    const cells = [];
    for (let r = 1; r <= 5; r++) for (let f = 1; f <= 5; f++) cells.push({ name: `R${r} F${f}`, r: [r, r], f: [f, f] });
    let g = await putMap(M.key, cells);
    assert.equal(g.segments.length, 25);
    assert.deepEqual(g.segments[7], E('R2 F3', [2, 2], [3, 3]));
    await expectRfm(M.key, { t1: [4, 1, 1, 'R4 F1'], t2: [2, 1, 4, 'R2 F1'], t3: [1, 4, 2, 'R1 F4'] });
    await expectSummary(M.key, {
      n: 3,
      names: cells.map((x) => x.name),
      filled: {
        'R4 F1': [1, 0.3333, 10000, 5, 1, 10000],
        'R2 F1': [1, 0.3333, 30000, 20, 1, 30000],
        'R1 F4': [1, 0.3333, 20000, 60, 2, 20000],
      },
    });

    const fifty = [...cells, ...cells.map((x) => ({ ...x, name: `${x.name} lapsed`, lapsed: true }))];
    g = await putMap(M.key, fifty);
    assert.equal(g.segments.length, 50);
    assert.deepEqual(g.segments[49], E('R5 F5 lapsed', [5, 5], [5, 5], true));
    // nobody lapsed with lapse_days 365 (the oldest last order is t3's, 60 days)
    await expectRfm(M.key, { t1: [4, 1, 1, 'R4 F1'], t2: [2, 1, 4, 'R2 F1'], t3: [1, 4, 2, 'R1 F4'] });
    try {
      // lapse_days 30: t3 (60 > 30) is lapsed → its cell's lapsed entry; t2 (20), t1 (5) are not.
      await patchSeg(M, { lapse_days: 30 });
      await expectRfm(M.key, { t1: [4, 1, 1, 'R4 F1'], t2: [2, 1, 4, 'R2 F1'], t3: [1, 4, 2, 'R1 F4 lapsed'] });
      const s = await expectSummary(M.key, {
        n: 3,
        names: fifty.map((x) => x.name),
        filled: {
          'R4 F1': [1, 0.3333, 10000, 5, 1, 10000],
          'R2 F1': [1, 0.3333, 30000, 20, 1, 30000],
          'R1 F4 lapsed': [1, 0.3333, 20000, 60, 2, 20000],
        },
      });
      assert.equal(s.segments.length, 50);
      // lapse_days 60: 60 is not > 60
      await patchSeg(M, { lapse_days: 60 });
      assert.equal((await rfmOf(M.key, 't3')).segment, 'R1 F4');
    } finally {
      await patchSeg(M, { lapse_days: 365 });
    }
  });

  test('PUT the default map again: the default segments are back', async () => {
    const g = await putMap(M.key, cloneMap());
    assert.deepEqual(g.segments, DEFAULT_MAP);
    await expectRfm(M.key, S3_RFM);
    await expectSummary(M.key, { n: 3, filled: S3_FILLED });
  });
});

describe('map validation → 422 validation_failed; nothing stored', () => {
  const withEntry = (i, patch) => {
    const m = cloneMap();
    m[i] = { ...m[i], ...patch };
    return m;
  };
  const without = (name) => cloneMap().filter((e) => e.name !== name);
  const cells25 = () => {
    const out = [];
    for (let r = 1; r <= 5; r++) for (let f = 1; f <= 5; f++) out.push({ name: `R${r} F${f}`, r: [r, r], f: [f, f] });
    return out;
  };
  // [what, body, pointer (string or RegExp), detail RegExp?]
  const cases = [
    // coverage: a cell without a non-lapsed entry → /segments, detail names it
    ['Need attention left out: R3 F3 uncovered', { segments: without('Need attention') }, '/segments', /R3 F3/],
    ['Champions left out: R5 F4 and R5 F5 uncovered', { segments: without('Champions') }, '/segments', /R5 F[45]/],
    ['Promising left out: R4 F1 uncovered', { segments: without('Promising') }, '/segments', /R4 F1/],
    ['one entry R1–5 F1–4: the F5 column uncovered', { segments: [{ name: 'Most', r: [1, 5], f: [1, 4] }] }, '/segments', /R[1-5] F5/],
    ['24 single cells (R2 F3 missing)', { segments: cells25().filter((x) => x.name !== 'R2 F3') }, '/segments', /R2 F3/],
    ['only a lapsed entry over all cells', { segments: [{ name: 'Gone', r: [1, 5], f: [1, 5], lapsed: true }] }, '/segments', /R[1-5] F[1-5]/],
    ['Need attention made lapsed: R3 F3 has no non-lapsed entry', { segments: withEntry(5, { lapsed: true }) }, '/segments', /R3 F3/],
    // overlaps → /segments/<i> of the later entry
    ['Champions widened to R4–5 F4–5 overlaps Loyal (the later entry, 1)', { segments: withEntry(0, { r: [4, 5] }) }, '/segments/1'],
    ['an extra R3 F3 entry at the end (11)', { segments: [...cloneMap(), { name: 'Extra', r: [3, 3], f: [3, 3] }] }, '/segments/11'],
    ['a first entry R1 F1: Hibernating (10 after it) is the later one', { segments: [{ name: 'First', r: [1, 1], f: [1, 1] }, ...cloneMap()] }, '/segments/10'],
    ['an entry over everything first: the next entry overlaps', { segments: [{ name: 'All', r: [1, 5], f: [1, 5] }, ...cloneMap()] }, '/segments/1'],
    ['two lapsed entries on R1 F1 (Lost 10, Gone 11)', { segments: [...cloneMap(), { name: 'Gone', r: [1, 2], f: [1, 1], lapsed: true }] }, '/segments/11'],
    ['two lapsed entries on R1 F1 (Gone 0, Lost 11)', { segments: [{ name: 'Gone', r: [1, 2], f: [1, 1], lapsed: true }, ...cloneMap()] }, '/segments/11'],
    // lo > hi → /segments/<i>
    ['Loyal r [4, 3]', { segments: withEntry(1, { r: [4, 3] }) }, '/segments/1'],
    ['Potential loyalists f [3, 2]', { segments: withEntry(2, { f: [3, 2] }) }, '/segments/2'],
    ['Lost r [2, 1]', { segments: withEntry(10, { r: [2, 1] }) }, '/segments/10'],
    // scores outside 1..5 → the member (or the element)
    ['r [0, 2]', { segments: withEntry(9, { r: [0, 2] }) }, /^\/segments\/9\/r(\/0)?$/],
    ['r [1, 6]', { segments: withEntry(9, { r: [1, 6] }) }, /^\/segments\/9\/r(\/1)?$/],
    ['r [-1, 2]', { segments: withEntry(9, { r: [-1, 2] }) }, /^\/segments\/9\/r(\/0)?$/],
    ['f [0, 2]', { segments: withEntry(9, { f: [0, 2] }) }, /^\/segments\/9\/f(\/0)?$/],
    ['f [5, 6]', { segments: withEntry(8, { f: [5, 6] }) }, /^\/segments\/8\/f(\/1)?$/],
    ['f [6, 6]', { segments: withEntry(8, { f: [6, 6] }) }, /^\/segments\/8\/f(\/[01])?$/],
    // wrong shapes of r / f
    ['r [3]', { segments: withEntry(5, { r: [3] }) }, '/segments/5/r'],
    ['r [3, 3, 3]', { segments: withEntry(5, { r: [3, 3, 3] }) }, '/segments/5/r'],
    ['r []', { segments: withEntry(5, { r: [] }) }, '/segments/5/r'],
    ['r 3', { segments: withEntry(5, { r: 3 }) }, '/segments/5/r'],
    ['r "3-3"', { segments: withEntry(5, { r: '3-3' }) }, '/segments/5/r'],
    ['r null', { segments: withEntry(5, { r: null }) }, '/segments/5/r'],
    ['r {}', { segments: withEntry(5, { r: {} }) }, '/segments/5/r'],
    ['r [2.5, 3]', { segments: withEntry(5, { r: [2.5, 3] }) }, /^\/segments\/5\/r(\/0)?$/],
    ['r ["3", "3"]', { segments: withEntry(5, { r: ['3', '3'] }) }, /^\/segments\/5\/r(\/0)?$/],
    ['r [3, null]', { segments: withEntry(5, { r: [3, null] }) }, /^\/segments\/5\/r(\/1)?$/],
    ['f [true, 3]', { segments: withEntry(5, { f: [true, 3] }) }, /^\/segments\/5\/f(\/0)?$/],
    // missing members
    ['r missing', { segments: withEntry(5, { r: undefined }) }, '/segments/5/r'],
    ['f missing', { segments: withEntry(5, { f: undefined }) }, '/segments/5/f'],
    ['name missing', { segments: withEntry(5, { name: undefined }) }, '/segments/5/name'],
    // names
    ['name ""', { segments: withEntry(3, { name: '' }) }, '/segments/3/name'],
    ['name 65 characters', { segments: withEntry(3, { name: 'n'.repeat(65) }) }, '/segments/3/name'],
    ['name 65 CJK characters', { segments: withEntry(3, { name: '茶'.repeat(65) }) }, '/segments/3/name'],
    ['name 5', { segments: withEntry(3, { name: 5 }) }, '/segments/3/name'],
    ['name null', { segments: withEntry(3, { name: null }) }, '/segments/3/name'],
    ['Loyal renamed Champions (duplicate; the later entry)', { segments: withEntry(1, { name: 'Champions' }) }, '/segments/1/name'],
    ['Lost renamed Hibernating (a lapsed and a non-lapsed entry share a name)', { segments: withEntry(10, { name: 'Hibernating' }) }, '/segments/10/name'],
    // lapsed
    ['lapsed "yes"', { segments: withEntry(10, { lapsed: 'yes' }) }, '/segments/10/lapsed'],
    ['lapsed 1', { segments: withEntry(10, { lapsed: 1 }) }, '/segments/10/lapsed'],
    // unknown members, wrong entry types
    ['an unknown member of an entry', { segments: withEntry(4, { colour: 'red' }) }, '/segments/4/colour'],
    ['an entry that is a number', { segments: [...cloneMap().slice(0, 4), 5, ...cloneMap().slice(4)] }, '/segments/4'],
    ['an entry that is null', { segments: [...cloneMap().slice(0, 4), null, ...cloneMap().slice(4)] }, '/segments/4'],
    ['an entry that is an array', { segments: [...cloneMap().slice(0, 4), [], ...cloneMap().slice(4)] }, '/segments/4'],
    // the list itself
    ['0 entries', { segments: [] }, '/segments'],
    ['51 entries', { segments: [...cells25(), ...cells25().map((x) => ({ ...x, name: `${x.name} lapsed`, lapsed: true })), { name: 'One more', r: [1, 1], f: [1, 1], lapsed: true }] }, '/segments'],
    ['segments missing', {}, '/segments'],
    ['segments null', { segments: null }, '/segments'],
    ['segments an object', { segments: { name: 'x' } }, '/segments'],
    ['segments a string', { segments: 'default' }, '/segments'],
    ['an unknown top-level member', { segments: cloneMap(), colour: 'red' }, '/colour'],
    ['"default" is not an input member', { segments: cloneMap(), default: false }, '/default'],
  ];

  let before1;
  before(async () => {
    // M holds the default map again (the last PUT of the previous describe); save a custom one
    await putMap(M.key, [{ name: 'Top', r: [4, 5], f: [1, 5] }, { name: 'Rest', r: [1, 3], f: [1, 5] }]);
    before1 = await getMap(M.key);
  });

  for (const [what, body, pointer, detail] of cases) {
    test(`${what} → ${pointer}`, async () => {
      const r = await c.put('/v1/rfm/map', body, { key: M.key });
      assertProblem(r, 422, 'validation_failed', pointer);
      if (detail) assert.match(r.body.detail, detail, `detail names the cell: ${r.body.detail}`);
    });
  }

  test('nothing was stored by any of them; the segments are unchanged', async () => {
    assert.deepEqual(await getMap(M.key), before1);
    await expectRfm(M.key, { t1: [4, 1, 1, 'Top'], t2: [2, 1, 4, 'Rest'], t3: [1, 4, 2, 'Rest'] });
  });

  test('a map is valid again once the cell is covered; lapsed entries may overlap non-lapsed ones', async () => {
    // Top/Rest plus a lapsed entry over all cells: valid
    const g = await putMap(M.key, [
      { name: 'Top', r: [4, 5], f: [1, 5] }, { name: 'Gone', r: [1, 5], f: [1, 5], lapsed: true }, { name: 'Rest', r: [1, 3], f: [1, 5] },
    ]);
    assert.deepEqual(g.segments, [E('Top', [4, 5], [1, 5]), E('Gone', [1, 5], [1, 5], true), E('Rest', [1, 3], [1, 5])]);
    // nobody is lapsed (365 days)
    await expectRfm(M.key, { t1: [4, 1, 1, 'Top'], t2: [2, 1, 4, 'Rest'], t3: [1, 4, 2, 'Rest'] });
    await putMap(M.key, cloneMap());
  });

  test('malformed JSON → 400, wrong content type → 415; nothing stored', async () => {
    const before2 = await getMap(M.key);
    assertProblem(await c.req('PUT', '/v1/rfm/map', { key: M.key, rawBody: '{"segments": [' }), 400, 'malformed_json');
    assertProblem(await c.req('PUT', '/v1/rfm/map', { key: M.key, rawBody: '{"segments": [], "segments": []}' }), 400, 'malformed_json');
    assertProblem(await c.req('PUT', '/v1/rfm/map', {
      key: M.key, rawBody: JSON.stringify({ segments: cloneMap() }), headers: { 'content-type': 'text/plain' },
    }), 415, 'unsupported_media_type');
    assert.deepEqual(await getMap(M.key), before2);
  });
});

describe('settings.rfm', () => {
  let ST;
  before(async () => {
    ST = await mkFullShop();
  });

  test('POST /v1/shops and GET /v1/shops/{id} show {"method": "quintiles"} by default, for every key', async () => {
    const s = await mkShop();
    assert.deepEqual(s.created.settings.rfm, QUINTILES);
    for (const key of [ST.keys.admin, ST.keys.readonly, ST.keys.storefront, svc.platformKey]) {
      const g = await getShop(ST, key);
      assert.deepEqual(g.settings.rfm, QUINTILES);
      assert.deepEqual(g.settings.segments, DEFAULT_SEG);
    }
    const sum = await summary(ST.key);
    assert.equal(sum.method, 'quintiles');
  });

  test('PATCH thresholds, then quintiles: replaced as a whole; other settings untouched', async () => {
    const T = { method: 'thresholds', recency_days: [7, 30, 90, 180], frequency: [2, 3, 5, 8], monetary: [10000, 20000, 50000, 100000] };
    let st = await patchRfm(ST, T);
    assert.deepEqual(st.rfm, T);
    assert.deepEqual(st.segments, DEFAULT_SEG);
    assert.deepEqual((await getShop(ST, ST.keys.readonly)).settings.rfm, T);
    assert.equal((await summary(ST.key)).method, 'thresholds');

    // another thresholds value replaces all three arrays
    const T2 = { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [1, 2, 3, 4], monetary: [0, 1, 2, 3] };
    st = await patchRfm(ST, T2);
    assert.deepEqual(st.rfm, T2);

    // PATCHes of other settings (or of nothing) keep settings.rfm
    st = await patchSeg(ST, { lapse_days: 100 });
    assert.deepEqual(st.rfm, T2);
    assert.equal(st.segments.lapse_days, 100);
    for (const body of [{ name: 'Renamed' }, { settings: {} }, { settings: { repurchase_rule: { min_order_amount: 0 } } }]) {
      const r = await c.patch(`/v1/shops/${ST.shopId}`, body, { key: ST.key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.settings.rfm, T2, JSON.stringify(body));
    }
    // settings.rfm next to settings.segments in one PATCH
    st = await patchSettings(ST, { rfm: QUINTILES, segments: { lapse_days: 365 } });
    assert.deepEqual(st.rfm, QUINTILES);
    assert.deepEqual(st.segments, DEFAULT_SEG);
    assert.deepEqual((await getShop(ST)).settings.rfm, QUINTILES);
    assert.equal((await summary(ST.key)).method, 'quintiles');
  });

  test('the limits themselves are accepted: 0 (recency, monetary), 1 (frequency), 10^15', async () => {
    const lo = { method: 'thresholds', recency_days: [0, 1, 2, 3], frequency: [1, 2, 3, 4], monetary: [0, 1, 2, 3] };
    const top = [E15 - 3, E15 - 2, E15 - 1, E15];
    const hi = { method: 'thresholds', recency_days: top, frequency: top, monetary: top };
    assert.deepEqual((await patchRfm(ST, lo)).rfm, lo);
    assert.deepEqual((await patchRfm(ST, hi)).rfm, hi);
    assert.deepEqual((await getShop(ST)).settings.rfm, hi);
    assert.deepEqual((await patchRfm(ST, QUINTILES)).rfm, QUINTILES);
  });

  test('invalid values → 422 validation_failed with pointer /settings/rfm/…; nothing changes', async () => {
    const T = { method: 'thresholds', recency_days: [7, 30, 90, 180], frequency: [2, 3, 5, 8], monetary: [10000, 20000, 50000, 100000] };
    await patchSettings(ST, { rfm: T, segments: { lapse_days: 200 } });
    const before1 = await getShop(ST);
    const P = (name, idx) => (idx === undefined ? `/settings/rfm/${name}` : new RegExp(`^/settings/rfm/${name}(/${idx})?$`));
    const w = (name, v) => ({ ...T, [name]: v });
    const cases = [
      // method
      [{ method: 'deciles' }, '/settings/rfm/method'],
      [{ method: 'Quintiles' }, '/settings/rfm/method'],
      [{ method: 'quintile' }, '/settings/rfm/method'],
      [{ method: 5 }, '/settings/rfm/method'],
      [{ method: null }, '/settings/rfm/method'],
      [{}, '/settings/rfm/method'],
      [{ recency_days: T.recency_days, frequency: T.frequency, monetary: T.monetary }, '/settings/rfm/method'],
      // unknown members (quintiles has no thresholds)
      [{ method: 'quintiles', colour: 1 }, '/settings/rfm/colour'],
      [{ ...T, colour: 1 }, '/settings/rfm/colour'],
      [{ method: 'quintiles', recency_days: [7, 30, 90, 180] }, '/settings/rfm/recency_days'],
      // thresholds missing an array (replaced as a whole, not merged with the current value)
      [{ method: 'thresholds', recency_days: T.recency_days, frequency: T.frequency }, '/settings/rfm/monetary'],
      [{ method: 'thresholds', recency_days: T.recency_days, monetary: T.monetary }, '/settings/rfm/frequency'],
      [{ method: 'thresholds', frequency: T.frequency, monetary: T.monetary }, '/settings/rfm/recency_days'],
      // settings.rfm itself
      [[], '/settings/rfm'],
      ['quintiles', '/settings/rfm'],
      [5, '/settings/rfm'],
      [true, '/settings/rfm'],
    ];
    for (const name of ['recency_days', 'frequency', 'monetary']) {
      const lo = name === 'frequency' ? 1 : 0;
      cases.push(
        // not strictly increasing
        [w(name, [lo + 7, lo + 7, lo + 30, lo + 90]), P(name, 1)],
        [w(name, [lo + 1, lo + 2, lo + 3, lo + 3]), P(name, 3)],
        [w(name, [lo + 30, lo + 7, lo + 90, lo + 180]), P(name, 1)],
        [w(name, [lo + 4, lo + 3, lo + 2, lo + 1]), P(name, 1)],
        // wrong length
        [w(name, [lo + 1, lo + 2, lo + 3]), P(name)],
        [w(name, [lo + 1, lo + 2, lo + 3, lo + 4, lo + 5]), P(name)],
        [w(name, []), P(name)],
        // below the minimum, above 10^15
        [w(name, [lo - 1, lo + 1, lo + 2, lo + 3]), P(name, 0)],
        [w(name, [-5, lo + 1, lo + 2, lo + 3]), P(name, 0)],
        [w(name, [lo + 1, lo + 2, lo + 3, E15 + 1]), P(name, 3)],
        // wrong types
        [w(name, [lo + 1, lo + 2.5, lo + 3, lo + 4]), P(name, 1)],
        [w(name, [lo + 1, String(lo + 2), lo + 3, lo + 4]), P(name, 1)],
        [w(name, [lo + 1, lo + 2, null, lo + 4]), P(name, 2)],
        [w(name, [true, lo + 2, lo + 3, lo + 4]), P(name, 0)],
        [w(name, 5), P(name)],
        [w(name, null), P(name)],
        [w(name, '1,2,3,4'), P(name)],
        [w(name, { a: 1 }), P(name)],
      );
    }
    for (const [rfm, pointer] of cases) {
      const r = await c.patch(`/v1/shops/${ST.shopId}`, { settings: { rfm } }, { key: ST.key });
      assertProblem(r, 422, 'validation_failed', pointer);
    }
    // JSON 1.0 is not an integer
    const raw = '{"settings": {"rfm": {"method": "thresholds", "recency_days": [7.0, 30, 90, 180], "frequency": [2, 3, 5, 8], "monetary": [1, 2, 3, 4]}}}';
    assertProblem(await c.req('PATCH', `/v1/shops/${ST.shopId}`, { key: ST.key, rawBody: raw }), 422, 'validation_failed', P('recency_days', 0));
    // a valid member next to an invalid one: neither is applied
    const r = await c.patch(`/v1/shops/${ST.shopId}`, {
      name: 'Not applied', settings: { segments: { lapse_days: 30 }, rfm: { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [0, 1, 2, 3], monetary: [1, 2, 3, 4] } },
    }, { key: ST.key });
    assertProblem(r, 422, 'validation_failed', P('frequency', 0));
    const after1 = await getShop(ST);
    assert.deepEqual(after1, before1, 'failed PATCHes changed nothing');
    assert.deepEqual(after1.settings.rfm, T);
    assert.equal((await summary(ST.key)).method, 'thresholds');
    await patchSettings(ST, { rfm: QUINTILES, segments: { lapse_days: 365 } });
  });

  test('only platform and admin keys change it', async () => {
    const T = { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [1, 2, 3, 4], monetary: [1, 2, 3, 4] };
    for (const key of [ST.keys.storefront, ST.keys.readonly]) {
      assertProblem(await c.patch(`/v1/shops/${ST.shopId}`, { settings: { rfm: T } }, { key }), 403, 'forbidden');
    }
    assert.deepEqual((await getShop(ST)).settings.rfm, QUINTILES);
    assert.deepEqual((await patchSettings(ST, { rfm: T }, svc.platformKey)).rfm, T);
    assert.deepEqual((await patchRfm(ST, QUINTILES)).rfm, QUINTILES);
  });
});

describe('rfm on GET /v1/customers/{id}', () => {
  test('only with include=rfm: a plain GET has no rfm member; include takes only rfm', async () => {
    // a1 is scored (it has an rfm object with include=rfm, below)
    const plain = await c.get('/v1/customers/a1', { key: A.keys.admin });
    assert.equal(plain.status, 200, plain.text);
    assert.equal('rfm' in plain.body, false, 'no rfm without include=rfm');
    const withRfm = await c.get('/v1/customers/a1?include=rfm', { key: A.keys.admin });
    assert.equal(typeof withRfm.body.rfm, 'object');
    assert.notEqual(withRfm.body.rfm, null);
    const { rfm: _rfm, ...rest } = withRfm.body;
    assert.deepEqual(rest, plain.body, 'otherwise the same customer');
    for (const q of ['include=facts', 'include=', 'include=rfm&include=rfm', 'include=RFM', 'expand=rfm']) {
      const r = await c.get(`/v1/customers/a1?${q}`, { key: A.keys.admin });
      assertProblem(r, 400, 'invalid_parameter', q.startsWith('expand') ? '/query/expand' : '/query/include');
    }
  });

  test('exactly r, f, m, segment; the same for admin, readonly and storefront keys', async () => {
    for (const id of ['a1', 'a9', 'a10']) {
      const r = await c.get(`/v1/customers/${id}?include=rfm`, { key: A.keys.admin });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body.rfm).sort(), ['f', 'm', 'r', 'segment']);
      for (const key of [A.keys.readonly, A.keys.storefront]) {
        const o = await c.get(`/v1/customers/${id}?include=rfm`, { key });
        assert.equal(o.status, 200, o.text);
        assert.deepEqual(o.body.rfm, r.body.rfm, `${id} with another key`);
      }
    }
    await expectRfm(A.keys.readonly, A_RFM, 'readonly:');
    await expectRfm(A.keys.storefront, { a5: A_RFM.a5, a11: null }, 'storefront:');
  });

  test('a customer who places a first order becomes scored at once; the others re-rank', async () => {
    // S1 + s2's first order (10 days ago, 5000): N = 2. s1 (3 days, 2 occasions, 30000) is better
    // in every dimension: s1 w 1 → 1 + floor(5/2) = 3; s2 w 0 → 1.
    // s1 R3 F3 → Need attention; s2 R1 F1 (10 days, not lapsed) → Hibernating.
    const shop = await mkShop();
    await people(shop.key, ['s1', 's2']);
    await load(shop.key, hist('s1', 3, 2, 30000, { base: 10000 }));
    await expectRfm(shop.key, { s1: [1, 1, 1, 'Hibernating'], s2: null });
    await load(shop.key, hist('s2', 10, 1, 5000));
    await expectRfm(shop.key, { s1: [3, 3, 3, 'Need attention'], s2: [1, 1, 1, 'Hibernating'] });
    // cancelling s2's only order: not scored again, N = 1
    await cancel(shop.key, 's2-0');
    await expectRfm(shop.key, { s1: [1, 1, 1, 'Hibernating'], s2: null });
  });
});

describe('authentication and scopes', () => {
  for (const path of ['/v1/rfm/map', '/v1/rfm/summary']) {
    test(`GET ${path}: admin and readonly 200 (same answer); storefront and platform 403; no key 401`, async () => {
      const a = await c.get(path, { key: A.keys.admin });
      const ro = await c.get(path, { key: A.keys.readonly });
      assert.equal(a.status, 200, a.text);
      assert.equal(ro.status, 200, ro.text);
      assert.deepEqual(ro.body, a.body);
      assertProblem(await c.get(path, { key: A.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(path), 401, 'unauthenticated');
      assertProblem(await c.get(path, { key: `rb_aaaaaaaa_${'A'.repeat(43)}` }), 401, 'unauthenticated');
    });
  }

  test('PUT /v1/rfm/map: admin only (403 for readonly, storefront, platform — before validation); 401 without a key', async () => {
    const custom = [{ name: 'Everyone', r: [1, 5], f: [1, 5] }];
    for (const key of [A.keys.readonly, A.keys.storefront, svc.platformKey]) {
      assertProblem(await c.put('/v1/rfm/map', { segments: custom }, { key }), 403, 'forbidden');
      assertProblem(await c.put('/v1/rfm/map', { segments: [] }, { key }), 403, 'forbidden');
    }
    assertProblem(await c.put('/v1/rfm/map', { segments: custom }), 401, 'unauthenticated');
    assert.deepEqual(await getMap(A.key), { segments: DEFAULT_MAP, default: true }, 'nothing stored');
    await expectRfm(A.key, { a1: A_RFM.a1 });
  });

  test('other methods → 405 with Allow', async () => {
    const allowed = {
      '/v1/rfm/map': ['GET, PUT', ['POST', 'PATCH', 'DELETE']],
      '/v1/rfm/summary': ['GET', ['POST', 'PUT', 'PATCH', 'DELETE']],
    };
    for (const [path, [allow, methods]] of Object.entries(allowed)) {
      for (const method of methods) {
        const r = await c.req(method, path, { key: A.key, body: method === 'DELETE' ? undefined : {} });
        assertProblem(r, 405, 'method_not_allowed');
        assert.deepEqual(r.headers.allow.split(', ').sort(), allow.split(', '), `${method} ${path}`);
      }
    }
  });

  for (const [path, name] of [
    ['/v1/rfm/map?foo=1', 'foo'], ['/v1/rfm/map?limit=2', 'limit'], ['/v1/rfm/summary?as_of=2025-01-01', 'as_of'],
    ['/v1/rfm/summary?method=thresholds', 'method'], ['/v1/rfm/summary?segment=Lost', 'segment'], ['/v1/rfm/summary?x=', 'x'],
  ]) {
    test(`GET ${path} → 400 /query/${name}`, async () => {
      assertProblem(await c.get(path, { key: A.key }), 400, 'invalid_parameter', `/query/${name}`);
    });
  }
});

describe('isolation between shops', () => {
  test('the same customer ids in another shop: its own scores, map and settings', async () => {
    // A2: a1 (100 days, 1, 1000), a2 (50, 1, 2000), a3 (10, 1, 3000). N = 3.
    //   recency: a1 (w 0) 1, a2 (w 1) 2, a3 (w 2) 4; frequency all 1; monetary a1 1, a2 2, a3 4.
    //   a1 R1 F1, a2 R2 F1 → Hibernating; a3 R4 F1 → Promising.
    const A2 = await mkShop();
    await people(A2.key, ['a1', 'a2', 'a3']);
    await load(A2.key, [...hist('a1', 100, 1, 1000), ...hist('a2', 50, 1, 2000), ...hist('a3', 10, 1, 3000)]);
    await expectRfm(A2.key, { a1: [1, 1, 1, 'Hibernating'], a2: [2, 1, 2, 'Hibernating'], a3: [4, 1, 4, 'Promising'] });
    await expectSummary(A2.key, {
      n: 3,
      filled: {
        Promising: [1, 0.3333, 3000, 10, 1, 3000],
        // a1 + a2: 2/3 → 0.6667; 3000; (100 + 50) / 2; 1; 1500
        Hibernating: [2, 0.6667, 3000, 75, 1, 1500],
      },
    });
    // A is unchanged
    await expectRfm(A.key, A_RFM, 'shop A:');
    await expectSummary(A.key, { n: 10, filled: A_FILLED, edges: A_EDGES }, 'shop A:');

    // a map and thresholds in A2 do not reach A
    await putMap(A2.key, [{ name: 'Everyone', r: [1, 5], f: [1, 5] }]);
    await patchRfm(A2, { method: 'thresholds', recency_days: [1, 2, 3, 4], frequency: [2, 3, 4, 5], monetary: [1, 2, 3, 4] });
    // A2 thresholds: a1 100 days → R1, a2 50 → R1, a3 10 → R1; F1; M5 (≥ 4); all in Everyone.
    await expectRfm(A2.key, { a1: [1, 1, 5, 'Everyone'], a2: [1, 1, 5, 'Everyone'], a3: [1, 1, 5, 'Everyone'] });
    await expectSummary(A2.key, {
      method: 'thresholds', n: 3, names: ['Everyone'],
      // 6000; (100 + 50 + 10) / 3 = 53.33… → 53.3; 1; 2000
      filled: { Everyone: [3, 1, 6000, 53.3, 1, 2000] },
      edges: null,
    });
    assert.deepEqual(await getMap(A.key), { segments: DEFAULT_MAP, default: true });
    assert.deepEqual((await getShop(A)).settings.rfm, QUINTILES);
    await expectRfm(A.key, A_RFM, 'shop A after A2 changed:');
  });
});
