// Built-in lifecycle segments (segments1.md): GET /v1/segments,
// GET /v1/segments/{code}, GET /v1/segments/{code}/customers and the shop
// setting settings.segments, over small hand-made histories.
//
// Segments are "as of today" in the shop's time zone, so every history is
// built RELATIVE to today: "a2: 50, 10" means customer a2 has orders placed
// 50 and 10 local calendar days before today (at local noon unless a time is
// given). Every expected membership and reason is worked out by hand in the
// comment next to it (never by re-implementing a rule here).
//
// Time zone: the shops live in a fixed-offset zone (Etc/GMT±N) chosen when
// this file loads so that it is 12:xx local time there now. "Today" is then
// at least 11 hours away from either midnight, so a run never straddles a
// date change, and local noon today is already in the past. (The test of
// the shop's own zone uses a second zone whose date differs; see there.)
//
// Default parameters: second_purchase_window_days 45, due_max_factor 3,
// due_min_repeat_customers 30, lapsing_factor 2, lapse_days 365, vip_percent 5.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, uniq,
} from '../lib/harness.js';
import {
  OFF_X, ZX, TODAY, localAt, addDays, localDate, etcZone, offStr, historyCalls,
} from '../lib/history.js';

let svc;
let c;
let people, load, cancel, refund;

const CODES = ['second-purchase-window', 'due-for-repurchase', 'lapsing', 'lapsed', 'vip'];
const NAMES = {
  'second-purchase-window': 'Second purchase window',
  'due-for-repurchase': 'Due for repurchase',
  lapsing: 'Lapsing',
  lapsed: 'Lapsed',
  vip: 'VIP',
};
const DEFAULT_SEG = {
  second_purchase_window_days: 45,
  due_max_factor: 3,
  due_min_repeat_customers: 30,
  lapsing_factor: 2,
  lapse_days: 365,
  vip_percent: 5,
};
const PARAMS_OF = {
  'second-purchase-window': ['second_purchase_window_days'],
  'due-for-repurchase': ['due_max_factor', 'due_min_repeat_customers'],
  lapsing: ['lapsing_factor'],
  lapsed: ['lapse_days'],
  vip: ['vip_percent'],
};
const REASON_KEYS = {
  'second-purchase-window': ['days_left'],
  'due-for-repurchase': ['category', 'median_days'],
  lapsing: ['average_interval_days'],
  lapsed: ['days_since_last_order'],
  vip: ['cutoff', 'spend_365d'],
};
const DEFAULT_RULE = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };
const ALL_FIELDS = ['consent', 'email', 'facts', 'id', 'name', 'phone', 'reason', 'tags'];
const FACT_KEYS = ['days_since_first_order', 'days_since_last_order', 'first_order_at', 'last_order_at', 'order_count', 'total_spent'];

// ---------------------------------------------------------------------------
// time zones and dates: zone X, TODAY and localAt come from ../lib/history.js

/** n local days before today in zone X, at the given local time: RFC 3339 with X's offset. */
const at = (n, hhmm = '12:00') => localAt(n, hhmm);

// ---------------------------------------------------------------------------
// helpers

/** One order of `cust`, n days ago: one line per category at `price` each. */
function ord(id, cust, n, { cats = ['tea'], price = 10000, time = '12:00' } = {}) {
  return {
    id,
    customer_id: cust,
    placed_at: at(n, time),
    channel: 'web',
    currency: 'CNY',
    lines: cats.map((category) => ({ sku: `SKU-${category}`, category, role: 'regular', quantity: 1, unit_price: price })),
    total: price * cats.length,
  };
}

/** A shop in zone X (platform key); optional settings.segments patched in. Returns {shopId, key}. */
async function mkShop(segments, timezone = ZX) {
  const r = await c.post('/v1/shops', { name: uniq('Segments Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  const s = { shopId: r.body.shop.id, key: r.body.admin_key.key };
  if (segments) await patchSeg(s, segments);
  return s;
}

async function patchSeg(s, segments, key = s.key) {
  const r = await c.patch(`/v1/shops/${s.shopId}`, { settings: { segments } }, { key });
  assert.equal(r.status, 200, r.text);
  return r.body.settings.segments;
}

/** Query string; commas stay literal (fields=name,email). */
const qs = (q = {}) => {
  const s = Object.entries(q).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2C/g, ',')}`).join('&');
  return s ? `?${s}` : '';
};

function assertSegmentShape(s) {
  assert.deepEqual(Object.keys(s).sort(), ['as_of', 'code', 'description', 'kind', 'name', 'parameters', 'size'], JSON.stringify(s));
  assert.equal(s.kind, 'built-in');
  assert.equal(s.name, NAMES[s.code], `name of ${s.code}`);
  assert.equal(typeof s.description, 'string');
  assert.ok(s.description.length > 0 && !s.description.includes('\n'), `description of ${s.code}: ${JSON.stringify(s.description)}`);
  assert.deepEqual(Object.keys(s.parameters).sort(), PARAMS_OF[s.code], `parameters of ${s.code}`);
  assert.ok(Number.isInteger(s.size) && s.size >= 0, `size of ${s.code}: ${s.size}`);
  assert.equal(s.as_of, TODAY, `as_of of ${s.code} is today in ${ZX} (${TODAY}); a different value means the date changed during the run or as_of is wrong`);
}

/** GET /v1/segments: asserts 200, the five built-ins in order, their shape; returns items. */
async function segments(key) {
  const r = await c.get('/v1/segments', { key });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body), ['items']);
  assert.deepEqual(r.body.items.map((s) => s.code), CODES);
  for (const s of r.body.items) assertSegmentShape(s);
  return r.body.items;
}

function assertItemShape(code, it, fields) {
  const want = fields ? ['id', ...fields].sort() : ALL_FIELDS;
  assert.deepEqual(Object.keys(it).sort(), want, `members of an item of ${code}: ${JSON.stringify(it)}`);
  assert.equal(typeof it.id, 'string');
  if ('consent' in it) {
    assert.deepEqual(Object.keys(it.consent).sort(), ['email', 'sms', 'wechat']);
    for (const v of Object.values(it.consent)) assert.equal(typeof v, 'boolean');
  }
  if ('facts' in it) {
    assert.deepEqual(Object.keys(it.facts).sort(), FACT_KEYS, JSON.stringify(it.facts));
    assertServerTs(it.facts.first_order_at, 'facts.first_order_at');
    assertServerTs(it.facts.last_order_at, 'facts.last_order_at');
  }
  if ('reason' in it) assert.deepEqual(Object.keys(it.reason).sort(), REASON_KEYS[code], `reason of ${code}: ${JSON.stringify(it.reason)}`);
  if ('tags' in it) assert.ok(Array.isArray(it.tags));
}

/** All members of a segment, following next_cursor; returns {items, sizes (per page)}. */
async function listPages(key, code, q = {}, fields = undefined) {
  const items = [];
  const sizes = [];
  let cursor = null;
  for (let page = 0; page < 500; page++) {
    const query = { ...q };
    if (cursor !== null) query.cursor = cursor;
    const r = await c.get(`/v1/segments/${code}/customers${qs(query)}`, { key });
    assert.equal(r.status, 200, `${code}${qs(query)}: ${r.text}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['items', 'next_cursor']);
    for (const it of r.body.items) assertItemShape(code, it, fields);
    items.push(...r.body.items);
    sizes.push(r.body.items.length);
    cursor = r.body.next_cursor;
    if (cursor === null) return { items, sizes };
    assert.equal(typeof cursor, 'string');
    assert.ok(cursor.length > 0);
    assert.ok(r.body.items.length > 0, 'a page before the last one is not empty');
  }
  assert.fail('pagination did not terminate');
}

const list = async (key, code, q) => (await listPages(key, code, q)).items;

/**
 * Asserts every segment's members (ids in listing order, with their reasons)
 * and that GET /v1/segments and GET /v1/segments/{code} report the same sizes.
 * exp: { code: [[id, reason], ...] } for all five codes.
 */
async function expectMembers(key, exp, what = '') {
  const segs = await segments(key);
  for (const code of CODES) {
    const items = await list(key, code);
    assert.deepEqual(items.map((x) => [x.id, x.reason]), exp[code], `${what} members of ${code}`);
    const s = segs.find((x) => x.code === code);
    assert.equal(s.size, items.length, `${what} size of ${code} equals the number of listed members`);
    const one = await c.get(`/v1/segments/${code}`, { key });
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.body, s, `GET /v1/segments/${code} equals its entry in GET /v1/segments`);
  }
  return segs;
}

const us = (s) => BigInt(Date.parse(s)) * 1000n;

/** Facts of a listed item, timestamps compared as instants. */
function assertFacts(f, { n, first, last, dsf, dsl, spent }) {
  assert.deepEqual({
    order_count: f.order_count,
    first_order_at: tsMicros(f.first_order_at),
    last_order_at: tsMicros(f.last_order_at),
    days_since_first_order: f.days_since_first_order,
    days_since_last_order: f.days_since_last_order,
    total_spent: f.total_spent,
  }, {
    order_count: n, first_order_at: us(first), last_order_at: us(last),
    days_since_first_order: dsf, days_since_last_order: dsl, total_spent: spent,
  });
}

// ---------------------------------------------------------------------------
// shops

let W; // second-purchase-window + repurchase-rule interplay (setupShop: all key scopes)
let D; // due-for-repurchase, due_min_repeat_customers 2
let L; // lapsing
let P; // lapsed
let V; // vip
let Q; // listing: consent, fields, pagination, erasure
let Q2; // isolation: same customer ids as Q, another history
let E; // no orders at all

// Shop W (defaults). Customers in this order:
//   w0: 0          w44: 44        w45: 45        wtwo: 50, 10
//   wcan: 50 (cancelled), 10      wref: 50 (fully refunded), 20
//   wpart: 50 (1000 of 10000 refunded), 20       wonlycan: 5 (cancelled)
// all tea, 10000 each.
// Facts: w0, w44, w45 one occasion; wtwo 2 (spent 20000); wcan 1 (first 10 days
// ago: the cancelled order does not count); wref 1 (first 20); wpart 2 (spent
// 19000); wonlycan none (never a member).
const W_CUSTOMERS = ['w0', 'w44', 'w45', 'wtwo', 'wcan', 'wref', 'wpart', 'wonlycan'];
const W_ORDERS = () => [
  ord('w0-1', 'w0', 0), ord('w44-1', 'w44', 44), ord('w45-1', 'w45', 45),
  ord('wtwo-1', 'wtwo', 50), ord('wtwo-2', 'wtwo', 10),
  ord('wcan-1', 'wcan', 50), ord('wcan-2', 'wcan', 10),
  ord('wref-1', 'wref', 50), ord('wref-2', 'wref', 20),
  ord('wpart-1', 'wpart', 50), ord('wpart-2', 'wpart', 20),
  ord('wonlycan-1', 'wonlycan', 5),
];
const W_EXPECT = {
  // order_count 1 and days_since_first < 45: w0 (45 − 0 = 45 left), w44 (1 left),
  // wcan (first 10: 35 left), wref (first 20: 25 left). Not w45 (45 is not < 45),
  // not wtwo / wpart (2 occasions).
  'second-purchase-window': [['w0', { days_left: 45 }], ['w44', { days_left: 1 }], ['wcan', { days_left: 35 }], ['wref', { days_left: 25 }]],
  // repeat customers: wtwo (50 → 10: 40 days), wpart (50 → 20: 30 days). tea has 2 < 30
  // repeat customers → shop-wide median: percentile_disc(0.5) of [30, 40] = 30.
  // m = 30, window [30, 90): w44 (44), w45 (45). Not w0 (0), wcan (10), wref (20).
  'due-for-repurchase': [['w44', { median_days: 30, category: null }], ['w45', { median_days: 30, category: null }]],
  // wtwo: 10 × 1 > 2 × 40? no. wpart: 20 × 1 > 2 × 30? no.
  lapsing: [],
  lapsed: [],
  // spend: w0 w44 w45 wcan wref 10000, wtwo 20000, wpart 19000 → N = 7,
  // k = ceil(7 × 5 / 100) = 1, cutoff 20000 → wtwo.
  vip: [['wtwo', { spend_365d: 20000, cutoff: 20000 }]],
};

// Shop D (due_min_repeat_customers 2; 10000 per line). Repeat customers
// (first → second occasion, same categories in both orders):
//   r1: [matcha, tea] 100, 90 (10 days)   r2: [matcha, tea] 80, 70 (10)
//   r3: [tea] 200, 170 (30)               r4: [coffee] 100, 80 (20)
//   r5: [coffee] 60, 40 (20)              r6: [cocoa] 50, 38 (12)
// Medians (percentile_disc(0.5) = the ceil(n/2)-th smallest):
//   shop-wide [10, 10, 12, 20, 20, 30] → 3rd = 12
//   tea  (r1 r2 r3) [10, 10, 30] → 2nd = 10    matcha (r1 r2) [10, 10] → 1st = 10
//   coffee (r4 r5) [20, 20] → 20               cocoa (r6 only: 1 < 2) → shop-wide 12
//   herbal (no repeat customer) → shop-wide 12
// One-time customers (one order, days ago):
//   t9 t10 t29 t30 [tea]; k19 k20 k59 k60 [coffee]; o11 o12 o35 o36 [cocoa];
//   tc25 tc45 [tea, coffee]; kc15 [coffee, cocoa]; mt15 [matcha, tea]; h13 [herbal]
const D_CUSTOMERS = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 't9', 't10', 't29', 't30', 'k19', 'k20', 'k59', 'k60',
  'o11', 'o12', 'o35', 'o36', 'tc25', 'tc45', 'kc15', 'mt15', 'h13'];
const D_ORDERS = () => [
  ord('r1-1', 'r1', 100, { cats: ['matcha', 'tea'] }), ord('r1-2', 'r1', 90, { cats: ['matcha', 'tea'] }),
  ord('r2-1', 'r2', 80, { cats: ['matcha', 'tea'] }), ord('r2-2', 'r2', 70, { cats: ['matcha', 'tea'] }),
  ord('r3-1', 'r3', 200), ord('r3-2', 'r3', 170),
  ord('r4-1', 'r4', 100, { cats: ['coffee'] }), ord('r4-2', 'r4', 80, { cats: ['coffee'] }),
  ord('r5-1', 'r5', 60, { cats: ['coffee'] }), ord('r5-2', 'r5', 40, { cats: ['coffee'] }),
  ord('r6-1', 'r6', 50, { cats: ['cocoa'] }), ord('r6-2', 'r6', 38, { cats: ['cocoa'] }),
  ...[9, 10, 29, 30].map((n) => ord(`t${n}-1`, `t${n}`, n)),
  ...[19, 20, 59, 60].map((n) => ord(`k${n}-1`, `k${n}`, n, { cats: ['coffee'] })),
  ...[11, 12, 35, 36].map((n) => ord(`o${n}-1`, `o${n}`, n, { cats: ['cocoa'] })),
  ord('tc25-1', 'tc25', 25, { cats: ['tea', 'coffee'] }), ord('tc45-1', 'tc45', 45, { cats: ['tea', 'coffee'] }),
  ord('kc15-1', 'kc15', 15, { cats: ['coffee', 'cocoa'] }), ord('mt15-1', 'mt15', 15, { cats: ['matcha', 'tea'] }),
  ord('h13-1', 'h13', 13, { cats: ['herbal'] }),
];
const TEA10 = { median_days: 10, category: 'tea' };
const COFFEE20 = { median_days: 20, category: 'coffee' };
const SHOP12 = { median_days: 12, category: null };
const D_EXPECT = {
  // order_count 1 and days < 45: every one-time customer but k59, k60, tc45.
  'second-purchase-window': [
    ['t9', { days_left: 36 }], ['t10', { days_left: 35 }], ['t29', { days_left: 16 }], ['t30', { days_left: 15 }],
    ['k19', { days_left: 26 }], ['k20', { days_left: 25 }],
    ['o11', { days_left: 34 }], ['o12', { days_left: 33 }], ['o35', { days_left: 10 }], ['o36', { days_left: 9 }],
    ['tc25', { days_left: 20 }], ['kc15', { days_left: 30 }], ['mt15', { days_left: 30 }], ['h13', { days_left: 32 }],
  ],
  // tea m = 10, window [10, 30): t9 no, t10 yes (= m), t29 yes (= 3m − 1), t30 no (= 3m).
  // coffee m = 20, [20, 60): k19 no, k20 yes, k59 yes, k60 no.
  // cocoa falls back to 12, [12, 36): o11 no, o12 yes, o35 yes, o36 no; category null.
  // tea+coffee: m = min(10, 20) = 10 (tea), [10, 30): tc25 yes; tc45 no (coffee alone would say yes).
  // coffee+cocoa: m = min(20, 12) = 12 from the shop-wide fallback → category null: kc15 yes.
  // matcha+tea: both 10 → the first by byte order, matcha: mt15 yes.
  // herbal: shop-wide 12, [12, 36): h13 yes.
  'due-for-repurchase': [
    ['t10', TEA10], ['t29', TEA10], ['k20', COFFEE20], ['k59', COFFEE20], ['o12', SHOP12], ['o35', SHOP12],
    ['tc25', TEA10], ['kc15', SHOP12], ['mt15', { median_days: 10, category: 'matcha' }], ['h13', SHOP12],
  ],
  // days_since_last × (n − 1) > 2 × (last − first):
  // r1 90 > 20 yes; r2 70 > 20 yes; r3 170 > 60 yes; r4 80 > 40 yes; r5 40 > 40 NO (equal); r6 38 > 24 yes.
  lapsing: [
    ['r1', { average_interval_days: 10 }], ['r2', { average_interval_days: 10 }], ['r3', { average_interval_days: 30 }],
    ['r4', { average_interval_days: 20 }], ['r6', { average_interval_days: 12 }],
  ],
  // the oldest last order is r3's, 170 days ago.
  lapsed: [],
  // spend: r1, r2 40000 (2 orders × 2 lines); r3..r6 20000; tc25 tc45 kc15 mt15 20000;
  // the 13 other one-time customers 10000. N = 23, k = ceil(23 × 5 / 100) = ceil(1.15) = 2,
  // cutoff = 2nd largest = 40000 → r1, r2.
  vip: [['r1', { spend_365d: 40000, cutoff: 40000 }], ['r2', { spend_365d: 40000, cutoff: 40000 }]],
};

// Shop L (defaults; tea, 10000 each). Orders (days ago):
//   la: 30, 20     lb: 31, 21     lc: 40, 33, 30    ld: 20, 15, 10    le: 21, 16, 11
//   lf: 15, 12, 8  lg: 24, 20, 17, 14   lh: 15, 13, 12, 10
//   lj: 5 at 10:00 and 5 at 14:00 (two occasions the same day)
//   lk: 0 at 09:00 and 0 at 10:00      li: 200
const L_CUSTOMERS = ['la', 'lb', 'lc', 'ld', 'le', 'lf', 'lg', 'lh', 'lj', 'lk', 'li'];
const L_ORDERS = () => {
  const o = [];
  for (const [cust, days] of [['la', [30, 20]], ['lb', [31, 21]], ['lc', [40, 33, 30]], ['ld', [20, 15, 10]],
    ['le', [21, 16, 11]], ['lf', [15, 12, 8]], ['lg', [24, 20, 17, 14]], ['lh', [15, 13, 12, 10]], ['li', [200]]]) {
    days.forEach((n, i) => o.push(ord(`${cust}-${i + 1}`, cust, n)));
  }
  o.push(ord('lj-1', 'lj', 5, { time: '10:00' }), ord('lj-2', 'lj', 5, { time: '14:00' }));
  o.push(ord('lk-1', 'lk', 0, { time: '09:00' }), ord('lk-2', 'lk', 0, { time: '10:00' }));
  return o;
};
const L_EXPECT = {
  // the only one-time customer, li, bought 200 days ago.
  'second-purchase-window': [],
  // second occasions: la 10, lb 10, lc 7, ld 5, le 5, lf 3, lg 4, lh 2, lj 0, lk 0 →
  // sorted [0, 0, 2, 3, 4, 5, 5, 7, 10, 10], 5th = 4 (tea has 10 < 30 repeat customers).
  // m = 4, [4, 12): li (200) is not in it.
  'due-for-repurchase': [],
  // dsl × (n − 1) > 2 × span:
  //   la 20 × 1 > 2 × 10? 20 > 20 NO      lb 21 > 20 yes, 10/1 = 10
  //   lc 30 × 2 = 60 > 20 yes, 10/2 = 5   ld 10 × 2 = 20 > 20 NO
  //   le 11 × 2 = 22 > 20 yes, 5          lf 8 × 2 = 16 > 2 × 7 = 14 yes, 7/2 = 3.5
  //   lg 14 × 3 = 42 > 20 yes, 10/3 = 3.33 → 3.3   lh 10 × 3 = 30 > 10 yes, 5/3 = 1.67 → 1.7
  //   lj 5 × 1 > 0 yes, 0                  lk 0 > 0 NO                li: one occasion
  lapsing: [
    ['lb', { average_interval_days: 10 }], ['lc', { average_interval_days: 5 }], ['le', { average_interval_days: 5 }],
    ['lf', { average_interval_days: 3.5 }], ['lg', { average_interval_days: 3.3 }], ['lh', { average_interval_days: 1.7 }],
    ['lj', { average_interval_days: 0 }],
  ],
  lapsed: [],
  // spend: lg, lh 40000; lc ld le lf 30000; la lb lj lk 20000; li 10000. N = 11,
  // k = ceil(0.55) = 1, cutoff 40000 → lg and lh (a tie: two members for k = 1).
  vip: [['lg', { spend_365d: 40000, cutoff: 40000 }], ['lh', { spend_365d: 40000, cutoff: 40000 }]],
};

// Shop P (defaults; tea). Orders (days ago, amount):
//   p364: 364 (20000)   p365: 365 (50000)   p366: 366 (10000)
//   p2: 800, 400 (10000 each)   pl: 500, 450 (10000 each)   pnew: 1 (10000)
const P_CUSTOMERS = ['p364', 'p365', 'p366', 'p2', 'pl', 'pnew'];
const P_ORDERS = () => [
  ord('p364-1', 'p364', 364, { price: 20000 }), ord('p365-1', 'p365', 365, { price: 50000 }), ord('p366-1', 'p366', 366),
  ord('p2-1', 'p2', 800), ord('p2-2', 'p2', 400), ord('pl-1', 'pl', 500), ord('pl-2', 'pl', 450), ord('pnew-1', 'pnew', 1),
];
const P_EXPECT = {
  // pnew: 45 − 1 = 44 left.
  'second-purchase-window': [['pnew', { days_left: 44 }]],
  // repeat customers p2 (400 days), pl (50) → median 50, [50, 150): no one-time customer
  // (p364, p365, p366 are older, pnew is 1 day).
  'due-for-repurchase': [],
  // p2: 400 > 2 × 400? no. pl: 450 > 2 × 50 yes, interval 50.
  lapsing: [['pl', { average_interval_days: 50 }]],
  // days_since_last > 365: p364 no, p365 NO (equal), p366 yes, p2 (400) yes, pl (450) yes.
  lapsed: [['p366', { days_since_last_order: 366 }], ['p2', { days_since_last_order: 400 }], ['pl', { days_since_last_order: 450 }]],
  // last 365 days = [today − 364, today]: p364 20000 (364 days ago is in), pnew 10000;
  // p365's 50000 is 365 days ago: out. N = 2, k = 1, cutoff 20000 → p364.
  vip: [['p364', { spend_365d: 20000, cutoff: 20000 }]],
};

// Shop V (defaults; tea). Orders (days ago: amount):
//   v1: 10: 50000              v2: 20: 10000, 10: 30000     v3: 5: 40000
//   v4: 100: 60000, 30000 of it refunded                    v5: 364: 45000
//   v6: 365: 90000, 3: 1000    v7: 400: 100000              v8: 2: 70000 fully refunded
//   v9: 8: 20000   v10: 7: 30000   v11: 6: 15000   v12: 4: 12000
// Spend in [today − 364, today]: v1 50000, v5 45000, v2 40000, v3 40000, v4 30000 (net),
// v10 30000, v9 20000, v11 15000, v12 12000, v6 1000 (its 90000 is 365 days ago);
// v7 0 (400 days ago), v8 none (its only order does not count). N = 10.
const V_CUSTOMERS = ['v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9', 'v10', 'v11', 'v12'];
const V_ORDERS = () => [
  ord('v1-1', 'v1', 10, { price: 50000 }),
  ord('v2-1', 'v2', 20, { price: 10000 }), ord('v2-2', 'v2', 10, { price: 30000 }),
  ord('v3-1', 'v3', 5, { price: 40000 }),
  ord('v4-1', 'v4', 100, { price: 60000 }),
  ord('v5-1', 'v5', 364, { price: 45000 }),
  ord('v6-1', 'v6', 365, { price: 90000 }), ord('v6-2', 'v6', 3, { price: 1000 }),
  ord('v7-1', 'v7', 400, { price: 100000 }),
  ord('v8-1', 'v8', 2, { price: 70000 }),
  ord('v9-1', 'v9', 8, { price: 20000 }), ord('v10-1', 'v10', 7, { price: 30000 }),
  ord('v11-1', 'v11', 6, { price: 15000 }), ord('v12-1', 'v12', 4, { price: 12000 }),
];
const V_EXPECT = {
  // one occasion within 45 days: v1 (10), v3 (5), v9 (8), v10 (7), v11 (6), v12 (4).
  'second-purchase-window': [['v1', { days_left: 35 }], ['v3', { days_left: 40 }], ['v9', { days_left: 37 }],
    ['v10', { days_left: 38 }], ['v11', { days_left: 39 }], ['v12', { days_left: 41 }]],
  // repeat customers v2 (20 → 10: 10 days), v6 (365 → 3: 362) → median 10, [10, 30): v1 (10).
  'due-for-repurchase': [['v1', { median_days: 10, category: null }]],
  // v2: 10 > 2 × 10? no. v6: 3 > 2 × 362? no.
  lapsing: [],
  // v7: 400 > 365. v5: 364 no.
  lapsed: [['v7', { days_since_last_order: 400 }]],
  // k = ceil(10 × 5 / 100) = 1, cutoff 50000 → v1 alone (v4 would lead without its refund,
  // v6 and v7 with orders older than 364 days, v8 with its refunded order).
  vip: [['v1', { spend_365d: 50000, cutoff: 50000 }]],
};

// Shop Q (defaults): q1..q7 created in this order, then one order each (tea, 10000),
// loaded newest customer first: q1 7 days ago, q2 6, …, q7 1.
const Q_CUSTOMERS = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7'];
const Q_PROFILES = {
  q1: { name: 'Li Wei', email: 'li.wei@example.com', phone: '+8613800138000', tags: ['tea', 'vip'], consent: { email: { granted: true } } },
  q2: { name: 'Wang Fang', consent: { sms: { granted: true } } },
  q3: { name: 'Zhang Min', email: 'zhang@example.com', consent: { email: { granted: true }, sms: { granted: true } } },
  q4: { name: 'Liu Yang', consent: { wechat: { granted: true } } },
  q5: {},
  q6: { name: 'Chen Jing', email: 'chen@example.com', consent: { email: { granted: true }, wechat: { granted: true } } },
  q7: { name: 'Yang Lei', phone: '+8613900139000', consent: { email: { granted: true }, sms: { granted: true }, wechat: { granted: true } } },
};
const Q_ORDERS = () => Q_CUSTOMERS.map((id, i) => ord(`${id}-1`, id, 7 - i)).reverse();

before(async () => {
  svc = await startService();
  c = api(svc);
  ({ people, load, cancel, refund } = historyCalls(c));

  W = await setupShop(svc, { timezone: ZX });
  W.key = W.keys.admin;
  await people(W.key, W_CUSTOMERS);
  await load(W.key, W_ORDERS());
  await cancel(W.key, 'wcan-1');
  await refund(W.key, 'wref-1', 10000);
  await refund(W.key, 'wpart-1', 1000);
  await cancel(W.key, 'wonlycan-1');

  D = await mkShop({ due_min_repeat_customers: 2 });
  await people(D.key, D_CUSTOMERS);
  await load(D.key, D_ORDERS());

  L = await mkShop();
  await people(L.key, L_CUSTOMERS);
  await load(L.key, L_ORDERS());

  P = await mkShop();
  await people(P.key, P_CUSTOMERS);
  await load(P.key, P_ORDERS());

  V = await mkShop();
  await people(V.key, V_CUSTOMERS);
  await load(V.key, V_ORDERS());
  await refund(V.key, 'v4-1', 30000);
  await refund(V.key, 'v8-1', 70000);

  Q = await setupShop(svc, { timezone: ZX });
  Q.key = Q.keys.admin;
  await people(Q.key, Q_CUSTOMERS, Q_PROFILES);
  await load(Q.key, Q_ORDERS());

  // Q2: the ids q1, q2 again (their only orders 100 days ago) and q8 (3 days ago).
  Q2 = await mkShop();
  await people(Q2.key, ['q1', 'q2', 'q8']);
  await load(Q2.key, [ord('q1-1', 'q1', 100), ord('q2-1', 'q2', 100), ord('q8-1', 'q8', 3)]);

  E = await mkShop();
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------

describe('second-purchase-window, and which orders count', () => {
  test('members, reasons and sizes of all five segments (shop W)', async () => {
    const segs = await expectMembers(W.key, W_EXPECT);
    assert.deepEqual(segs.map((s) => s.size), [4, 2, 0, 0, 1]);
    assert.deepEqual(segs.map((s) => s.parameters), [
      { second_purchase_window_days: 45 }, { due_max_factor: 3, due_min_repeat_customers: 30 },
      { lapsing_factor: 2 }, { lapse_days: 365 }, { vip_percent: 5 },
    ]);
  });

  test('facts of the listed customers: the cancelled and the fully refunded order do not count', async () => {
    const items = await list(W.key, 'second-purchase-window');
    const by = Object.fromEntries(items.map((x) => [x.id, x]));
    assertFacts(by.w0.facts, { n: 1, first: at(0), last: at(0), dsf: 0, dsl: 0, spent: 10000 });
    assertFacts(by.w44.facts, { n: 1, first: at(44), last: at(44), dsf: 44, dsl: 44, spent: 10000 });
    // wcan: 50 (cancelled), 10 → one occasion, 10 days ago
    assertFacts(by.wcan.facts, { n: 1, first: at(10), last: at(10), dsf: 10, dsl: 10, spent: 10000 });
    // wref: 50 (fully refunded), 20 → one occasion, 20 days ago
    assertFacts(by.wref.facts, { n: 1, first: at(20), last: at(20), dsf: 20, dsl: 20, spent: 10000 });
    const vip = await list(W.key, 'vip');
    assertFacts(vip[0].facts, { n: 2, first: at(50), last: at(10), dsf: 50, dsl: 10, spent: 20000 });
    // wonlycan (only a cancelled order) and wpart (two occasions: a partial refund does not
    // disqualify) are in no segment
    for (const code of CODES) {
      const ids = (await list(W.key, code)).map((x) => x.id);
      assert.ok(!ids.includes('wonlycan'), `wonlycan in ${code}`);
      assert.ok(!ids.includes('wpart'), `wpart in ${code}`);
    }
  });

  test('exclude_refunded: false makes the fully refunded order count: wref leaves the window', async () => {
    let r = await c.patch(`/v1/shops/${W.shopId}`, { settings: { repurchase_rule: { exclude_refunded: false } } }, { key: W.key });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.settings.segments, DEFAULT_SEG, 'the segment settings are untouched');
    try {
      await expectMembers(W.key, {
        ...W_EXPECT,
        // wref now has 2 occasions (50, 20): not in the window any more.
        'second-purchase-window': [['w0', { days_left: 45 }], ['w44', { days_left: 1 }], ['wcan', { days_left: 35 }]],
        // repeat customers wtwo 40, wpart 30, wref 30 → [30, 30, 40], 2nd = 30: unchanged.
        // wref: 20 × 1 > 2 × 30? no: not lapsing. Its spend stays 10000 + 0.
      }, 'exclude_refunded false:');
    } finally {
      r = await c.patch(`/v1/shops/${W.shopId}`, { settings: { repurchase_rule: DEFAULT_RULE } }, { key: W.key });
      assert.equal(r.status, 200, r.text);
    }
    await expectMembers(W.key, W_EXPECT, 'rule restored:');
  });

  test('second_purchase_window_days 44 and 46 move the boundary; parameters follow', async () => {
    try {
      await patchSeg(W, { second_purchase_window_days: 44 });
      // < 44: w0 (44 left), wcan (34), wref (24); w44 is out now.
      assert.deepEqual((await list(W.key, 'second-purchase-window')).map((x) => [x.id, x.reason]),
        [['w0', { days_left: 44 }], ['wcan', { days_left: 34 }], ['wref', { days_left: 24 }]]);
      let s = await c.get('/v1/segments/second-purchase-window', { key: W.key });
      assert.deepEqual(s.body.parameters, { second_purchase_window_days: 44 });
      assert.equal(s.body.size, 3);

      await patchSeg(W, { second_purchase_window_days: 46 });
      // < 46: w0 (46), w44 (2), w45 (1), wcan (36), wref (26).
      assert.deepEqual((await list(W.key, 'second-purchase-window')).map((x) => [x.id, x.reason]),
        [['w0', { days_left: 46 }], ['w44', { days_left: 2 }], ['w45', { days_left: 1 }], ['wcan', { days_left: 36 }], ['wref', { days_left: 26 }]]);
      s = await c.get('/v1/segments/second-purchase-window', { key: W.key });
      assert.deepEqual(s.body.parameters, { second_purchase_window_days: 46 });
      assert.equal(s.body.size, 5);
    } finally {
      await patchSeg(W, { second_purchase_window_days: 45 });
    }
    await expectMembers(W.key, W_EXPECT, 'window restored:');
  });
});

describe('due-for-repurchase', () => {
  test('category medians, the shop-wide fallback, the smallest median, byte-order ties (shop D)', async () => {
    const segs = await expectMembers(D.key, D_EXPECT);
    assert.deepEqual(segs[1].parameters, { due_max_factor: 3, due_min_repeat_customers: 2 });
  });

  test('facts of members', async () => {
    const items = await list(D.key, 'due-for-repurchase');
    const by = Object.fromEntries(items.map((x) => [x.id, x]));
    assertFacts(by.t10.facts, { n: 1, first: at(10), last: at(10), dsf: 10, dsl: 10, spent: 10000 });
    assertFacts(by.k59.facts, { n: 1, first: at(59), last: at(59), dsf: 59, dsl: 59, spent: 10000 });
    assertFacts(by.mt15.facts, { n: 1, first: at(15), last: at(15), dsf: 15, dsl: 15, spent: 20000 });
  });

  describe('settings (a copy of shop D with the default settings)', () => {
    let D2;
    before(async () => {
      D2 = await mkShop();
      await people(D2.key, D_CUSTOMERS);
      await load(D2.key, D_ORDERS());
    });

    test('default due_min_repeat_customers 30: every category falls back to the shop-wide 12', async () => {
      // No category has 30 repeat customers → m = 12 for everyone, [12, 36):
      // t29 t30 k19 k20 o12 o35 tc25 kc15 mt15 h13 (t9 t10 o11 are under 12; k59 k60 o36 tc45 36 or more).
      const got = (await list(D2.key, 'due-for-repurchase')).map((x) => [x.id, x.reason]);
      assert.deepEqual(got, ['t29', 't30', 'k19', 'k20', 'o12', 'o35', 'tc25', 'kc15', 'mt15', 'h13'].map((id) => [id, SHOP12]));
      const s = await c.get('/v1/segments/due-for-repurchase', { key: D2.key });
      assert.deepEqual(s.body.parameters, { due_max_factor: 3, due_min_repeat_customers: 30 });
      assert.equal(s.body.size, 10);
    });

    test('due_min_repeat_customers 3: tea (3 repeat customers) has its own median, matcha and coffee (2) fall back', async () => {
      assert.deepEqual(await patchSeg(D2, { due_min_repeat_customers: 3 }), { ...DEFAULT_SEG, due_min_repeat_customers: 3 });
      // tea 10 [10, 30); matcha, coffee, cocoa, herbal → 12 [12, 36).
      //   t9 no, t10 yes, t29 yes, t30 no; k19 yes (12), k20 yes, k59 no, k60 no; o11 no, o12 yes, o35 yes, o36 no;
      //   tc25: min(10, 12) = 10 tea, yes; tc45 no; kc15: 12, yes; mt15: min(12, 10) = 10 from tea now, yes; h13 yes.
      const got = (await list(D2.key, 'due-for-repurchase')).map((x) => [x.id, x.reason]);
      assert.deepEqual(got, [
        ['t10', TEA10], ['t29', TEA10], ['k19', SHOP12], ['k20', SHOP12], ['o12', SHOP12], ['o35', SHOP12],
        ['tc25', TEA10], ['kc15', SHOP12], ['mt15', TEA10], ['h13', SHOP12],
      ]);
    });

    test('due_max_factor 2 with due_min_repeat_customers 2: windows [m, 2m)', async () => {
      assert.deepEqual(await patchSeg(D2, { due_max_factor: 2, due_min_repeat_customers: 2 }),
        { ...DEFAULT_SEG, due_max_factor: 2, due_min_repeat_customers: 2 });
      // tea [10, 20): t10 yes, t29 no; tc25 (10) no. coffee [20, 40): k20 yes, k59 no.
      // fallback 12 [12, 24): o12 yes, o35 no, kc15 (15) yes, h13 (13) yes. matcha [10, 20): mt15 (15) yes.
      const got = (await list(D2.key, 'due-for-repurchase')).map((x) => [x.id, x.reason]);
      assert.deepEqual(got, [
        ['t10', TEA10], ['k20', COFFEE20], ['o12', SHOP12], ['kc15', SHOP12],
        ['mt15', { median_days: 10, category: 'matcha' }], ['h13', SHOP12],
      ]);
      const s = await c.get('/v1/segments/due-for-repurchase', { key: D2.key });
      assert.deepEqual(s.body.parameters, { due_max_factor: 2, due_min_repeat_customers: 2 });
      assert.equal(s.body.size, 6);
      // the other segments do not depend on these two settings
      const all = await segments(D2.key);
      assert.deepEqual(all.map((x) => x.size), [14, 6, 5, 0, 2]);
    });

    test('erased customers leave due-for-repurchase and lapsing', async () => {
      // D2 now: due_max_factor 2, due_min_repeat_customers 2. Erase t10 (due) and r3 (lapsing).
      // r3 is a repeat customer of tea: with or without it, tea's median is 10 ([10, 10, 30] or
      // [10, 10]) and the shop-wide one 12 ([10, 10, 12, 20, 20, 30] or [10, 10, 12, 20, 20]),
      // so nobody else moves. vip: r1, r2 (40000) stay in, k = 2 with N = 23 or 22.
      for (const id of ['t10', 'r3']) assert.equal((await c.del(`/v1/customers/${id}`, { key: D2.key })).status, 204);
      await expectMembers(D2.key, {
        'second-purchase-window': D_EXPECT['second-purchase-window'].filter(([id]) => id !== 't10'),
        'due-for-repurchase': [
          ['k20', COFFEE20], ['o12', SHOP12], ['kc15', SHOP12], ['mt15', { median_days: 10, category: 'matcha' }], ['h13', SHOP12],
        ],
        lapsing: D_EXPECT.lapsing.filter(([id]) => id !== 'r3'),
        lapsed: [],
        vip: D_EXPECT.vip,
      }, 'after erasing t10 and r3:');
    });
  });

  test('no repeat customer at all → no member (shop Q has only one-time customers)', async () => {
    assert.deepEqual(await list(Q.key, 'due-for-repurchase'), []);
  });
});

describe('lapsing', () => {
  test('exact integer comparison: equality is not a member, one day more is (shop L)', async () => {
    await expectMembers(L.key, L_EXPECT);
  });

  test('lapsing_factor 1 and 3', async () => {
    try {
      await patchSeg(L, { lapsing_factor: 1 });
      // dsl × (n − 1) > span: la 20 > 10, ld 20 > 10 join; lk 0 > 0 still no.
      assert.deepEqual((await list(L.key, 'lapsing')).map((x) => x.id), ['la', 'lb', 'lc', 'ld', 'le', 'lf', 'lg', 'lh', 'lj']);
      let s = await c.get('/v1/segments/lapsing', { key: L.key });
      assert.deepEqual(s.body.parameters, { lapsing_factor: 1 });
      assert.equal(s.body.size, 9);

      await patchSeg(L, { lapsing_factor: 3 });
      // > 3 × span: la 20 > 30 no, lb 21 > 30 no, lc 60 > 30 yes, ld 20 > 30 no, le 22 > 30 no,
      // lf 16 > 21 no, lg 42 > 30 yes, lh 30 > 15 yes, lj 5 > 0 yes.
      assert.deepEqual((await list(L.key, 'lapsing')).map((x) => [x.id, x.reason]), [
        ['lc', { average_interval_days: 5 }], ['lg', { average_interval_days: 3.3 }],
        ['lh', { average_interval_days: 1.7 }], ['lj', { average_interval_days: 0 }],
      ]);
      s = await c.get('/v1/segments/lapsing', { key: L.key });
      assert.deepEqual(s.body.parameters, { lapsing_factor: 3 });
    } finally {
      await patchSeg(L, { lapsing_factor: 2 });
    }
    await expectMembers(L.key, L_EXPECT, 'factor restored:');
  });

  test('facts of a lapsing customer with four occasions', async () => {
    const lg = (await list(L.key, 'lapsing')).find((x) => x.id === 'lg');
    assertFacts(lg.facts, { n: 4, first: at(24), last: at(14), dsf: 24, dsl: 14, spent: 40000 });
  });
});

describe('lapsed', () => {
  test('lapse_days vs lapse_days + 1; overlap with lapsing; vip only from the last 365 days (shop P)', async () => {
    await expectMembers(P.key, P_EXPECT);
  });

  test('lapse_days 364', async () => {
    try {
      await patchSeg(P, { lapse_days: 364 });
      // > 364: p365 joins, p364 (364) does not.
      assert.deepEqual((await list(P.key, 'lapsed')).map((x) => [x.id, x.reason]), [
        ['p365', { days_since_last_order: 365 }], ['p366', { days_since_last_order: 366 }],
        ['p2', { days_since_last_order: 400 }], ['pl', { days_since_last_order: 450 }],
      ]);
      const s = await c.get('/v1/segments/lapsed', { key: P.key });
      assert.deepEqual(s.body.parameters, { lapse_days: 364 });
      assert.equal(s.body.size, 4);
      // vip does not depend on lapse_days: the spend window stays 365 days
      assert.deepEqual((await list(P.key, 'vip')).map((x) => x.id), ['p364']);
    } finally {
      await patchSeg(P, { lapse_days: 365 });
    }
    await expectMembers(P.key, P_EXPECT, 'lapse_days restored:');
  });

  test('facts of a lapsed customer', async () => {
    const p2 = (await list(P.key, 'lapsed')).find((x) => x.id === 'p2');
    assertFacts(p2.facts, { n: 2, first: at(800), last: at(400), dsf: 800, dsl: 400, spent: 20000 });
  });

  test('an erased customer leaves lapsed and lapsing', async () => {
    // erase p2 (lapsed) and pl (lapsed and lapsing); neither spent anything in the last
    // 365 days, so vip keeps p364 (N = 2).
    for (const id of ['p2', 'pl']) assert.equal((await c.del(`/v1/customers/${id}`, { key: P.key })).status, 204);
    await expectMembers(P.key, {
      ...P_EXPECT,
      lapsing: [],
      lapsed: [['p366', { days_since_last_order: 366 }]],
    }, 'after erasing p2 and pl:');
  });
});

describe('vip', () => {
  test('default 5 %: refunds reduce spend, spend only from the last 365 days (shop V)', async () => {
    await expectMembers(V.key, V_EXPECT);
    const v1 = (await list(V.key, 'vip'))[0];
    assertFacts(v1.facts, { n: 1, first: at(10), last: at(10), dsf: 10, dsl: 10, spent: 50000 });
  });

  test('vip_percent 20, 21, 50: k = ceil(N × p / 100), ties at the cutoff all in', async () => {
    const vip = async () => (await list(V.key, 'vip')).map((x) => [x.id, x.reason]);
    const sp = (spend, cutoff) => ({ spend_365d: spend, cutoff });
    try {
      await patchSeg(V, { vip_percent: 20 });
      // k = 10 × 20 / 100 = 2 exactly, cutoff = 2nd = 45000 → v1, v5.
      assert.deepEqual(await vip(), [['v1', sp(50000, 45000)], ['v5', sp(45000, 45000)]]);

      await patchSeg(V, { vip_percent: 21 });
      // k = ceil(2.1) = 3, cutoff = 3rd = 40000 (v2 and v3 tie) → v1, v2, v3, v5: 4 members.
      assert.deepEqual(await vip(), [['v1', sp(50000, 40000)], ['v2', sp(40000, 40000)], ['v3', sp(40000, 40000)], ['v5', sp(45000, 40000)]]);
      const s = await c.get('/v1/segments/vip', { key: V.key });
      assert.deepEqual(s.body.parameters, { vip_percent: 21 });
      assert.equal(s.body.size, 4);

      await patchSeg(V, { vip_percent: 50 });
      // k = 5, cutoff = 5th = 30000 (v4 net of its refund and v10 tie) → 6 members.
      assert.deepEqual(await vip(), [
        ['v1', sp(50000, 30000)], ['v2', sp(40000, 30000)], ['v3', sp(40000, 30000)],
        ['v4', sp(30000, 30000)], ['v5', sp(45000, 30000)], ['v10', sp(30000, 30000)],
      ]);
    } finally {
      await patchSeg(V, { vip_percent: 5 });
    }
    await expectMembers(V.key, V_EXPECT, 'vip_percent restored:');
  });
});

describe('the shop time zone', () => {
  // X is zone ZX (12:xx local now). Y is 13 hours east of X (01:xx tomorrow there) when
  // that zone exists (X at most UTC+1), else 14 hours west (22:xx yesterday there).
  // One order at instant T in each shop:
  //   Y east: T = X-local 08:00, 44 days ago in X = 21:00 Y-local the same date;
  //           Y's today is X's + 1 → 45 days ago in Y.
  //   Y west: T = X-local 16:00, 45 days ago in X = 02:00 Y-local the same date;
  //           Y's today is X's − 1 → 44 days ago in Y.
  // Either way one shop sees the order 44 days ago (in the window, 1 day left) and the
  // other 45 days ago (not in it), though both hold the same instant.
  test('the same instant is 44 days ago in one shop and 45 in the other', async () => {
    const east = OFF_X <= 1;
    const offY = east ? OFF_X + 13 : OFF_X - 14;
    const ZY = etcZone(offY);
    const T = east ? at(44, '08:00') : at(45, '16:00');
    const X = await mkShop(undefined, ZX);
    const Y = await mkShop(undefined, ZY);
    for (const s of [X, Y]) {
      await people(s.key, ['tz']);
      await load(s.key, [{ ...ord('tz-1', 'tz', 0), placed_at: T }]);
    }
    // the construction itself (dates only, not the rule)
    const todayY = localDate(ZY);
    const tMs = Date.parse(T);
    assert.equal(localDate(ZX, tMs), addDays(TODAY, east ? -44 : -45));
    assert.equal(localDate(ZY, tMs), addDays(todayY, east ? -45 : -44));
    assert.equal(todayY, addDays(TODAY, east ? 1 : -1));

    const [in44, in45] = east ? [X, Y] : [Y, X];
    const a = await list(in44.key, 'second-purchase-window');
    assert.deepEqual(a.map((x) => [x.id, x.reason]), [['tz', { days_left: 1 }]]);
    assert.equal(a[0].facts.days_since_first_order, 44);
    assert.deepEqual(await list(in45.key, 'second-purchase-window'), []);

    const segY = await c.get('/v1/segments', { key: Y.key });
    assert.equal(segY.status, 200, segY.text);
    for (const s of segY.body.items) assert.equal(s.as_of, todayY, `as_of in ${ZY}`);
    const segX = await c.get('/v1/segments/lapsed', { key: X.key });
    assert.equal(segX.body.as_of, TODAY, `as_of in ${ZX}`);
  });

  test('orders whose UTC date is not their local date count by the local date', async () => {
    // A shop in zone Y (as above). Y east (UTC+2..+14): orders at 01:00 Y-local, the previous
    // day in UTC. Y west (UTC−12..−2): orders at 23:00 Y-local, the next day in UTC.
    //   tz10: 10 local days ago → window, 35 left, days_since_first_order 10
    //   tz44: 44 local days ago → window, 1 left;   tz45: 45 local days ago → not in it
    //   tzr:  n days ago and 40 days ago (two occasions; n = 12 east, 8 west)
    //   tzl:  400 local days ago → lapsed with 400 days, > 365
    const east = OFF_X <= 1;
    const offY = east ? OFF_X + 13 : OFF_X - 14;
    const ZY = etcZone(offY);
    const todayY = localDate(ZY);
    const time = east ? '01:00' : '23:00';
    const atY = (n) => `${addDays(todayY, -n)}T${time}:00${offStr(offY)}`;
    // the construction itself: local date n days ago, UTC date one off
    for (const n of [10, 44, 45, 400]) {
      const ms = Date.parse(atY(n));
      assert.equal(localDate(ZY, ms), addDays(todayY, -n));
      assert.equal(localDate('UTC', ms), addDays(todayY, -n + (east ? -1 : 1)));
    }
    const Y = await mkShop(undefined, ZY);
    await people(Y.key, ['tz10', 'tz44', 'tz45', 'tzr', 'tzl']);
    const o = (id, cust, n) => ({ ...ord(id, cust, 0), placed_at: atY(n) });
    const rn = east ? 12 : 8;
    await load(Y.key, [o('tz10-1', 'tz10', 10), o('tz44-1', 'tz44', 44), o('tz45-1', 'tz45', 45),
      o('tzr-1', 'tzr', 40), o('tzr-2', 'tzr', rn), o('tzl-1', 'tzl', 400)]);
    // window (45): tz10 (35 left), tz44 (1 left); not tz45, tzr (2 occasions), tzl (400 days).
    const w = await list(Y.key, 'second-purchase-window');
    assert.deepEqual(w.map((x) => [x.id, x.reason]), [['tz10', { days_left: 35 }], ['tz44', { days_left: 1 }]]);
    assertFacts(w[0].facts, { n: 1, first: atY(10), last: atY(10), dsf: 10, dsl: 10, spent: 10000 });
    // due: the only repeat customer tzr took 40 − rn days (28 east, 32 west): median 28 or 32,
    // [m, 3m) = [28, 84) or [32, 96): tz44 and tz45 (44 and 45 days).
    const m = 40 - rn;
    assert.deepEqual((await list(Y.key, 'due-for-repurchase')).map((x) => [x.id, x.reason]),
      [['tz44', { median_days: m, category: null }], ['tz45', { median_days: m, category: null }]]);
    // lapsing: tzr rn × 1 > 2 × (40 − rn)? 12 > 56, 8 > 64: no.
    assert.deepEqual(await list(Y.key, 'lapsing'), []);
    // lapsed: tzl, 400 days.
    const l = await list(Y.key, 'lapsed');
    assert.deepEqual(l.map((x) => [x.id, x.reason]), [['tzl', { days_since_last_order: 400 }]]);
    assertFacts(l[0].facts, { n: 1, first: atY(400), last: atY(400), dsf: 400, dsl: 400, spent: 10000 });
    // vip: tz10 tz44 tz45 10000, tzr 20000 (tzl is older than 364 days) → N = 4, k = 1 → tzr.
    const v = await list(Y.key, 'vip');
    assert.deepEqual(v.map((x) => [x.id, x.reason]), [['tzr', { spend_365d: 20000, cutoff: 20000 }]]);
    assertFacts(v[0].facts, { n: 2, first: atY(40), last: atY(rn), dsf: 40, dsl: rn, spent: 20000 });
  });
});

describe('listing: fields, consent, pagination, erasure (shop Q)', () => {
  // Every q has one order (7 − i days ago for the i-th) → all in second-purchase-window,
  // listed in customer creation order q1..q7 although their orders were loaded q7 first.
  // No repeat customer → due empty. vip: N = 7, k = 1, cutoff 10000: all 7 tie.
  const SPW = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7'];

  test('full items: profile, consent as booleans, facts, reason', async () => {
    const items = await list(Q.key, 'second-purchase-window');
    assert.deepEqual(items.map((x) => x.id), SPW);
    // q1: 7 days ago → 38 left
    assert.deepEqual({ ...items[0], facts: undefined }, {
      id: 'q1', name: 'Li Wei', email: 'li.wei@example.com', phone: '+8613800138000', tags: ['tea', 'vip'],
      consent: { email: true, sms: false, wechat: false }, facts: undefined, reason: { days_left: 38 },
    });
    assertFacts(items[0].facts, { n: 1, first: at(7), last: at(7), dsf: 7, dsl: 7, spent: 10000 });
    // q5: no profile at all → nulls and []
    assert.deepEqual({ ...items[4], facts: undefined }, {
      id: 'q5', name: null, email: null, phone: null, tags: [],
      consent: { email: false, sms: false, wechat: false }, facts: undefined, reason: { days_left: 42 },
    });
    assert.deepEqual(items[6].consent, { email: true, sms: true, wechat: true });
    assert.deepEqual(items.map((x) => x.reason.days_left), [38, 39, 40, 41, 42, 43, 44]);
    const segs = await expectMembers(Q.key, {
      'second-purchase-window': items.map((x) => [x.id, x.reason]),
      'due-for-repurchase': [],
      lapsing: [],
      lapsed: [],
      vip: SPW.map((id) => [id, { spend_365d: 10000, cutoff: 10000 }]),
    });
    assert.deepEqual(segs.map((s) => s.size), [7, 0, 0, 0, 7]);
  });

  test('fields= subset: id always present, only the named members', async () => {
    const full = await list(Q.key, 'second-purchase-window');
    for (const fields of [['name'], ['name', 'email'], ['reason'], ['facts', 'consent'], ['tags', 'phone', 'reason'],
      ['name', 'email', 'phone', 'tags', 'consent', 'facts', 'reason'], ['reason', 'name']]) {
      const { items } = await listPages(Q.key, 'second-purchase-window', { fields: fields.join(',') }, fields);
      assert.deepEqual(items.map((x) => x.id), SPW, `fields=${fields}`);
      items.forEach((it, i) => {
        for (const f of fields) assert.deepEqual(it[f], full[i][f], `fields=${fields}: ${it.id}.${f}`);
      });
    }
    // with other parameters, on another segment
    const { items } = await listPages(Q.key, 'vip', { fields: 'reason', limit: '3', consent: 'sms' }, ['reason']);
    assert.deepEqual(items, [
      { id: 'q2', reason: { spend_365d: 10000, cutoff: 10000 } },
      { id: 'q3', reason: { spend_365d: 10000, cutoff: 10000 } },
      { id: 'q7', reason: { spend_365d: 10000, cutoff: 10000 } },
    ]);
  });

  test('consent=email|sms|wechat: only customers who consented to that channel', async () => {
    const ids = async (q) => (await list(Q.key, 'second-purchase-window', q)).map((x) => x.id);
    assert.deepEqual(await ids({ consent: 'email' }), ['q1', 'q3', 'q6', 'q7']);
    assert.deepEqual(await ids({ consent: 'sms' }), ['q2', 'q3', 'q7']);
    assert.deepEqual(await ids({ consent: 'wechat' }), ['q4', 'q6', 'q7']);
    assert.deepEqual(await ids({ consent: 'wechat', limit: '1' }), ['q4', 'q6', 'q7']);
    // with fields and pages of 2: email → q1 q3 | q6 q7
    const paged = await listPages(Q.key, 'second-purchase-window', { consent: 'email', fields: 'consent,reason', limit: '2' }, ['consent', 'reason']);
    assert.deepEqual(paged.sizes, [2, 2]);
    assert.deepEqual(paged.items, [
      { id: 'q1', consent: { email: true, sms: false, wechat: false }, reason: { days_left: 38 } },
      { id: 'q3', consent: { email: true, sms: true, wechat: false }, reason: { days_left: 40 } },
      { id: 'q6', consent: { email: true, sms: false, wechat: true }, reason: { days_left: 43 } },
      { id: 'q7', consent: { email: true, sms: true, wechat: true }, reason: { days_left: 44 } },
    ]);
    for (const it of await list(Q.key, 'vip', { consent: 'email' })) assert.equal(it.consent.email, true);
    assert.deepEqual(await list(Q.key, 'lapsed', { consent: 'email' }), []);
  });

  test('limit=2: pages of 2, 2, 2, 1 with next_cursor; every member once, in order', async () => {
    const { items, sizes } = await listPages(Q.key, 'second-purchase-window', { limit: '2' });
    assert.deepEqual(sizes, [2, 2, 2, 1]);
    assert.deepEqual(items.map((x) => x.id), SPW);
    const one = await listPages(Q.key, 'vip', { limit: '1' });
    assert.deepEqual(one.sizes, [1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(one.items.map((x) => x.id), SPW);
    const big = await c.get('/v1/segments/vip/customers?limit=200', { key: Q.key });
    assert.equal(big.status, 200, big.text);
    assert.equal(big.body.items.length, 7);
    assert.equal(big.body.next_cursor, null);
    const exact = await c.get('/v1/segments/vip/customers?limit=7', { key: Q.key });
    assert.equal(exact.body.items.length, 7);
    // the last page may or may not announce an empty one; following it must end without dups
    if (exact.body.next_cursor !== null) {
      const r = await c.get(`/v1/segments/vip/customers?limit=7&cursor=${encodeURIComponent(exact.body.next_cursor)}`, { key: Q.key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { items: [], next_cursor: null });
    }
    // limit=2 in the larger shop D: 14 members → 7 pages of 2
    const d = await listPages(D.key, 'second-purchase-window', { limit: '2' });
    assert.deepEqual(d.sizes, [2, 2, 2, 2, 2, 2, 2]);
    assert.deepEqual(d.items.map((x) => x.id), D_EXPECT['second-purchase-window'].map(([id]) => id));
    const d3 = await listPages(D.key, 'due-for-repurchase', { limit: '3' });
    assert.deepEqual(d3.sizes, [3, 3, 3, 1]);
    assert.deepEqual(d3.items.map((x) => [x.id, x.reason]), D_EXPECT['due-for-repurchase']);
  });

  test('the default limit is 50', async () => {
    // shop D's second-purchase-window has 14 members: one page
    const r = await c.get('/v1/segments/second-purchase-window/customers', { key: D.key });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.items.length, 14);
    assert.equal(r.body.next_cursor, null);
  });

  test('an erased customer is never listed, in any segment, and sizes follow', async () => {
    const d = await c.del('/v1/customers/q3', { key: Q.key });
    assert.equal(d.status, 204, d.text);
    const six = ['q1', 'q2', 'q4', 'q5', 'q6', 'q7'];
    const segs = await expectMembers(Q.key, {
      'second-purchase-window': [['q1', { days_left: 38 }], ['q2', { days_left: 39 }], ['q4', { days_left: 41 }],
        ['q5', { days_left: 42 }], ['q6', { days_left: 43 }], ['q7', { days_left: 44 }]],
      'due-for-repurchase': [],
      lapsing: [],
      lapsed: [],
      // all spends are 10000, so the cutoff is 10000 however the erased customer is counted
      vip: six.map((id) => [id, { spend_365d: 10000, cutoff: 10000 }]),
    }, 'after erasure:');
    assert.deepEqual(segs.map((s) => s.size), [6, 0, 0, 0, 6]);
    const { items, sizes } = await listPages(Q.key, 'vip', { limit: '2' });
    assert.deepEqual(sizes, [2, 2, 2]);
    assert.deepEqual(items.map((x) => x.id), six);
    assert.deepEqual((await list(Q.key, 'second-purchase-window', { consent: 'sms' })).map((x) => x.id), ['q2', 'q7']);
    assert.deepEqual((await list(Q.key, 'second-purchase-window', { consent: 'email' })).map((x) => x.id), ['q1', 'q6', 'q7']);
    // its orders are still there
    const g = await c.get('/v1/customers/q3', { key: Q.key });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.body.facts.order_count, 1);
  });
});

describe('GET /v1/segments and /v1/segments/{code}', () => {
  test('the five built-ins in order with names, parameters, sizes and as_of', async () => {
    const segs = await segments(V.key);
    assert.deepEqual(segs.map((s) => [s.code, s.name, s.parameters, s.size]), [
      ['second-purchase-window', 'Second purchase window', { second_purchase_window_days: 45 }, 6],
      ['due-for-repurchase', 'Due for repurchase', { due_max_factor: 3, due_min_repeat_customers: 30 }, 1],
      ['lapsing', 'Lapsing', { lapsing_factor: 2 }, 0],
      ['lapsed', 'Lapsed', { lapse_days: 365 }, 1],
      ['vip', 'VIP', { vip_percent: 5 }, 1],
    ]);
  });

  test('each code alone equals its list entry', async () => {
    const segs = await segments(D.key);
    for (const s of segs) {
      const r = await c.get(`/v1/segments/${s.code}`, { key: D.key });
      assert.equal(r.status, 200, r.text);
      assertSegmentShape(r.body);
      assert.deepEqual(r.body, s);
    }
  });

  test('a shop without orders: five segments of size 0, empty lists', async () => {
    const segs = await segments(E.key);
    assert.deepEqual(segs.map((s) => s.size), [0, 0, 0, 0, 0]);
    for (const code of CODES) {
      const r = await c.get(`/v1/segments/${code}/customers`, { key: E.key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { items: [], next_cursor: null });
    }
  });

  test('unknown code → 404 not_found (also on /customers)', async () => {
    for (const code of ['unknown', 'VIP', 'Lapsed', 'lapsed2', 'second_purchase_window', 'all']) {
      assertProblem(await c.get(`/v1/segments/${code}`, { key: W.key }), 404, 'not_found');
      assertProblem(await c.get(`/v1/segments/${code}/customers`, { key: W.key }), 404, 'not_found');
      assertProblem(await c.get(`/v1/segments/${code}/customers?limit=2`, { key: W.keys.readonly }), 404, 'not_found');
    }
  });

  test('other methods → 405 with Allow', async () => {
    // /v1/segments/{code} also takes PUT and DELETE (custom segments: custom-segments.test.js)
    const allowed = {
      '/v1/segments': ['GET', ['POST', 'PUT', 'DELETE', 'PATCH']],
      '/v1/segments/vip': ['DELETE, GET, PUT', ['POST', 'PATCH']],
      '/v1/segments/vip/customers': ['GET', ['POST', 'PUT', 'DELETE', 'PATCH']],
    };
    for (const [path, [allow, methods]] of Object.entries(allowed)) {
      for (const method of methods) {
        const r = await c.req(method, path, { key: W.key, body: method === 'DELETE' ? undefined : {} });
        assertProblem(r, 405, 'method_not_allowed');
        assert.deepEqual(r.headers.allow.split(', ').sort(), allow.split(', '), `${method} ${path}`);
      }
    }
  });
});

describe('authentication and scopes', () => {
  for (const path of ['/v1/segments', '/v1/segments/vip', '/v1/segments/second-purchase-window/customers?limit=2']) {
    test(`${path}: admin and readonly 200 (same answer); storefront and platform 403; no key 401`, async () => {
      const a = await c.get(path, { key: W.keys.admin });
      const ro = await c.get(path, { key: W.keys.readonly });
      assert.equal(a.status, 200, a.text);
      assert.equal(ro.status, 200, ro.text);
      if (a.body.next_cursor) {
        // cursors are opaque; compare the items
        assert.deepEqual(ro.body.items, a.body.items);
      } else {
        assert.deepEqual(ro.body, a.body);
      }
      assertProblem(await c.get(path, { key: W.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(path), 401, 'unauthenticated');
      assertProblem(await c.get(path, { key: `rb_aaaaaaaa_${'A'.repeat(43)}` }), 401, 'unauthenticated');
    });
  }

  test('403 before 404: storefront and platform on an unknown code', async () => {
    for (const path of ['/v1/segments/nope', '/v1/segments/nope/customers']) {
      assertProblem(await c.get(path, { key: W.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path, { key: svc.platformKey }), 403, 'forbidden');
    }
  });
});

describe('isolation between shops', () => {
  test('the same customer ids in two shops: each shop lists its own', async () => {
    // Q2: q1, q2 bought 100 days ago (out of the window; one-time, no repeat customers);
    // q8 3 days ago → window: q8 (42 left). vip: all three 10000 → N = 3, k = 1, all tie.
    await expectMembers(Q2.key, {
      'second-purchase-window': [['q8', { days_left: 42 }]],
      'due-for-repurchase': [],
      lapsing: [],
      lapsed: [],
      vip: ['q1', 'q2', 'q8'].map((id) => [id, { spend_365d: 10000, cutoff: 10000 }]),
    });
    const q1 = (await list(Q2.key, 'vip')).find((x) => x.id === 'q1');
    assert.equal(q1.name, 'Name q1', "Q2's own q1, not Q's Li Wei");
    assertFacts(q1.facts, { n: 1, first: at(100), last: at(100), dsf: 100, dsl: 100, spent: 10000 });
    // Q does not see q8, and its q1 is its own
    const q = await list(Q.key, 'second-purchase-window');
    assert.ok(!q.some((x) => x.id === 'q8'));
    assert.equal(q.find((x) => x.id === 'q1').name, 'Li Wei');
  });

  test("medians come from the shop's own customers only", async () => {
    // W, D, L, P, V have repeat customers; Q2 and E have none → no due member even with
    // a one-time customer in [m, 3m) of any other shop's median (Q2's q1, q2: 100 days).
    assert.deepEqual(await list(Q2.key, 'due-for-repurchase'), []);
    // and a PATCH in one shop does not change another's parameters
    await patchSeg(Q2, { vip_percent: 50 });
    const w = await c.get('/v1/segments/vip', { key: W.key });
    assert.deepEqual(w.body.parameters, { vip_percent: 5 });
    const q2 = await c.get('/v1/segments/vip', { key: Q2.key });
    assert.deepEqual(q2.body.parameters, { vip_percent: 50 });
    // N = 3, k = ceil(1.5) = 2: everyone still ties at 10000
    assert.equal(q2.body.size, 3);
  });
});

describe('settings.segments', () => {
  let S;
  before(async () => {
    S = await setupShop(svc, { timezone: ZX });
    S.key = S.keys.admin;
  });

  test('GET /v1/shops/{id} shows all six defaults next to the repurchase rule', async () => {
    for (const key of [S.keys.admin, S.keys.readonly, S.keys.storefront, svc.platformKey]) {
      const g = await c.get(`/v1/shops/${S.shopId}`, { key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body.settings, { repurchase_rule: DEFAULT_RULE, segments: DEFAULT_SEG, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });
    }
    const segs = await segments(S.key);
    assert.deepEqual(Object.assign({}, ...segs.map((s) => s.parameters)), DEFAULT_SEG);
  });

  test('PATCH: given members replace, the others keep their value; the repurchase rule is untouched', async () => {
    let r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { segments: { lapse_days: 100 } } }, { key: S.key });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.settings, { repurchase_rule: DEFAULT_RULE, segments: { ...DEFAULT_SEG, lapse_days: 100 }, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });

    r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { segments: { vip_percent: 10, lapsing_factor: 3 } } }, { key: svc.platformKey });
    assert.equal(r.status, 200, r.text);
    const seg2 = { ...DEFAULT_SEG, lapse_days: 100, vip_percent: 10, lapsing_factor: 3 };
    assert.deepEqual(r.body.settings, { repurchase_rule: DEFAULT_RULE, segments: seg2, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });

    // the repurchase rule and the segments are independent members of settings
    r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { repurchase_rule: { merge_window_hours: 24 } } }, { key: S.key });
    assert.equal(r.status, 200, r.text);
    const rule2 = { ...DEFAULT_RULE, merge_window_hours: 24 };
    assert.deepEqual(r.body.settings, { repurchase_rule: rule2, segments: seg2, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });

    r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { repurchase_rule: { min_order_amount: 100 }, segments: { due_max_factor: 4 } } }, { key: S.key });
    assert.equal(r.status, 200, r.text);
    const rule3 = { ...rule2, min_order_amount: 100 };
    const seg3 = { ...seg2, due_max_factor: 4 };
    assert.deepEqual(r.body.settings, { repurchase_rule: rule3, segments: seg3, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });

    for (const body of [{ name: 'Renamed' }, { settings: {} }, { settings: { segments: {} } }]) {
      r = await c.patch(`/v1/shops/${S.shopId}`, body, { key: S.key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.settings, { repurchase_rule: rule3, segments: seg3, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } }, JSON.stringify(body));
    }
    const g = await c.get(`/v1/shops/${S.shopId}`, { key: S.keys.readonly });
    assert.deepEqual(g.body.settings, { repurchase_rule: rule3, segments: seg3, rfm: { method: 'quintiles' }, balances: { consumption_order: 'bonus_first' } });

    // the parameters shown follow
    const segs = await segments(S.key);
    assert.deepEqual(segs.map((s) => s.parameters), [
      { second_purchase_window_days: 45 }, { due_max_factor: 4, due_min_repeat_customers: 30 },
      { lapsing_factor: 3 }, { lapse_days: 100 }, { vip_percent: 10 },
    ]);
  });

  test('the limits themselves are accepted', async () => {
    const lo = {
      second_purchase_window_days: 1, due_max_factor: 2, due_min_repeat_customers: 1, lapsing_factor: 1, lapse_days: 1, vip_percent: 1,
    };
    const hi = {
      second_purchase_window_days: 3650, due_max_factor: 20, due_min_repeat_customers: 100000, lapsing_factor: 20, lapse_days: 3650, vip_percent: 50,
    };
    assert.deepEqual(await patchSeg(S, lo), lo);
    assert.deepEqual(Object.assign({}, ...(await segments(S.key)).map((s) => s.parameters)), lo);
    assert.deepEqual(await patchSeg(S, hi), hi);
    assert.deepEqual(Object.assign({}, ...(await segments(S.key)).map((s) => s.parameters)), hi);
    assert.deepEqual(await patchSeg(S, DEFAULT_SEG), DEFAULT_SEG);
  });

  test('invalid values → 422 validation_failed with pointer /settings/segments/<name>; nothing changes', async () => {
    await patchSeg(S, { lapse_days: 200 });
    const before1 = (await c.get(`/v1/shops/${S.shopId}`, { key: S.key })).body;
    const ranges = {
      second_purchase_window_days: [1, 3650], due_max_factor: [2, 20], due_min_repeat_customers: [1, 100000],
      lapsing_factor: [1, 20], lapse_days: [1, 3650], vip_percent: [1, 50],
    };
    const cases = [];
    for (const [name, [min, max]] of Object.entries(ranges)) {
      // 4294967306 = 2^32 + 10 (10 if truncated to 32 bits); 2^63 − 1 still parses as an integer.
      // (Literals beyond 64 bits fail in the JSON parser for every endpoint, before any pointer.)
      for (const v of [min - 1, max + 1, -1, 1.5, '10', null, true, [], {}, 4294967306, 9223372036854775807n]) {
        cases.push([{ [name]: v }, `/settings/segments/${name}`]);
      }
      // a valid member next to an invalid one: neither is applied
      cases.push([{ lapse_days: 30, [name]: max + 1 }, `/settings/segments/${name}`]);
    }
    cases.push([{ colour: 1 }, '/settings/segments/colour']);
    cases.push([{ lapse_days: 10, lapse_dayz: 10 }, '/settings/segments/lapse_dayz']);
    for (const bad of [[], 5, 'x', true]) cases.push([bad, '/settings/segments']);
    for (const [segs, pointer] of cases) {
      // BigInt members are written as plain JSON integers
      const rawBody = JSON.stringify({ settings: { segments: segs } }, (k, v) => (typeof v === 'bigint' ? `@@${v}@@` : v))
        .replace(/"@@(\d+)@@"/g, '$1');
      const r = await c.req('PATCH', `/v1/shops/${S.shopId}`, { key: S.key, rawBody });
      assertProblem(r, 422, 'validation_failed', pointer);
    }
    const r = await c.patch(`/v1/shops/${S.shopId}`, { name: 'Not applied', settings: { repurchase_rule: { merge_window_hours: 1 }, segments: { vip_percent: 0 } } }, { key: S.key });
    assertProblem(r, 422, 'validation_failed', '/settings/segments/vip_percent');
    const after1 = (await c.get(`/v1/shops/${S.shopId}`, { key: S.key })).body;
    assert.deepEqual(after1, before1, 'failed PATCHes changed nothing');
    assert.equal(after1.settings.segments.lapse_days, 200);
  });

  test('only platform and admin keys change them', async () => {
    for (const key of [S.keys.storefront, S.keys.readonly]) {
      assertProblem(await c.patch(`/v1/shops/${S.shopId}`, { settings: { segments: { vip_percent: 9 } } }, { key }), 403, 'forbidden');
    }
    const g = await c.get(`/v1/shops/${S.shopId}`, { key: S.key });
    assert.notEqual(g.body.settings.segments.vip_percent, 9);
  });
});

describe('bad query parameters → 400 invalid_parameter', () => {
  const LIST = '/v1/segments/second-purchase-window/customers';
  const cases = [
    // GET /v1/segments takes no query parameters
    ['/v1/segments?limit=2', 'limit'], ['/v1/segments?foo=1', 'foo'], ['/v1/segments?cursor=abc', 'cursor'],
    ['/v1/segments?consent=email', 'consent'], ['/v1/segments?as_of=2025-01-01', 'as_of'],
    ['/v1/segments/vip?limit=2', 'limit'], ['/v1/segments/vip?fields=name', 'fields'], ['/v1/segments/vip?foo=', 'foo'],
    // limit
    [`${LIST}?limit=0`, 'limit'], [`${LIST}?limit=201`, 'limit'], [`${LIST}?limit=-1`, 'limit'], [`${LIST}?limit=abc`, 'limit'],
    [`${LIST}?limit=1.5`, 'limit'], [`${LIST}?limit=`, 'limit'], [`${LIST}?limit=2&limit=2`, 'limit'],
    [`${LIST}?limit=99999999999999999999`, 'limit'], [`${LIST}?limit=2x`, 'limit'],
    // cursor
    [`${LIST}?cursor=`, 'cursor'], [`${LIST}?cursor=not-a-cursor`, 'cursor'], [`${LIST}?cursor=%00`, 'cursor'],
    // consent
    [`${LIST}?consent=fax`, 'consent'], [`${LIST}?consent=`, 'consent'], [`${LIST}?consent=Email`, 'consent'],
    [`${LIST}?consent=email&consent=sms`, 'consent'], [`${LIST}?consent=email,sms`, 'consent'],
    // fields
    [`${LIST}?fields=foo`, 'fields'], [`${LIST}?fields=name,foo`, 'fields'], [`${LIST}?fields=name,name`, 'fields'],
    [`${LIST}?fields=`, 'fields'], [`${LIST}?fields=NAME`, 'fields'], [`${LIST}?fields=name&fields=email`, 'fields'],
    [`${LIST}?fields=reason,email,reason`, 'fields'], [`${LIST}?fields=name,`, 'fields'], [`${LIST}?fields=name,,email`, 'fields'],
    [`${LIST}?fields=created_at`, 'fields'], [`${LIST}?fields=attributes`, 'fields'],
    // unknown
    [`${LIST}?foo=1`, 'foo'], [`${LIST}?tag=vip`, 'tag'], [`${LIST}?Limit=2`, 'Limit'], [`${LIST}?as_of=2025-01-01`, 'as_of'],
    [`/v1/segments/vip/customers?created_after=2025-01-01T00:00:00Z`, 'created_after'],
  ];
  for (const [path, name] of cases) {
    test(`${path} → /query/${name}`, async () => {
      assertProblem(await c.get(path, { key: W.key }), 400, 'invalid_parameter', `/query/${name}`);
    });
  }

  test('a cursor is accepted with the same parameters it came from', async () => {
    const r = await c.get(`${LIST}?limit=1`, { key: W.key });
    assert.equal(r.status, 200, r.text);
    const next = await c.get(`${LIST}?limit=1&cursor=${encodeURIComponent(r.body.next_cursor)}`, { key: W.key });
    assert.equal(next.status, 200, next.text);
    assert.equal(next.body.items.length, 1);
    assert.notEqual(next.body.items[0].id, r.body.items[0].id);
  });
});
