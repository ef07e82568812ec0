// Custom segments (segments2.md): PUT/DELETE /v1/segments/{code}, the JSON
// filter language, and custom codes on GET /v1/segments, /v1/segments/{code}
// and /v1/segments/{code}/customers — over small hand-made histories.
//
// As in segments.test.js, every history is built RELATIVE to today in the
// shop's time zone: "30 @ 23:59" means an order placed 30 local calendar days
// before today at 23:59 local time (noon when no time is given). Every
// expected membership is worked out by hand in the comment or table next to
// it; nothing here re-implements the filter.
//
// Time zone: the shops live in a fixed-offset zone (Etc/GMT±N) chosen when
// this file loads so that it is 12:xx local time there now. "Today" is then
// at least 11 hours away from either midnight, so a run never straddles a
// date change, and local 00:00 today is already in the past.
//
// Day counts are calendar days in the shop's zone (today − the local date of
// the order), not elapsed time: an order 30 days ago at 23:59 is 30 days ago
// although less than 30 × 24 hours have passed.
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

const BUILT_INS = ['second-purchase-window', 'due-for-repurchase', 'lapsing', 'lapsed', 'vip'];
const ALL_FIELDS = ['consent', 'email', 'facts', 'id', 'name', 'phone', 'reason', 'tags'];
const FACT_KEYS = ['days_since_first_order', 'days_since_last_order', 'first_order_at', 'last_order_at', 'order_count', 'total_spent'];
const CUSTOM_KEYS = ['as_of', 'code', 'created_at', 'description', 'filter', 'kind', 'name', 'size', 'updated_at'];
const E15 = 1000000000000000; // 10^15, exactly representable

// ---------------------------------------------------------------------------
// time zones and dates: zone X, TODAY and localAt come from ../lib/history.js

/** n local days before today in zone X (negative: after today), at the given local time. */
const at = (n, hhmm = '12:00') => localAt(n, hhmm);
const us = (s) => BigInt(Date.parse(s)) * 1000n;

// ---------------------------------------------------------------------------
// helpers

/** The condition {field, op, value}. */
const C = (field, op, value) => ({ field, op, value });

/**
 * One order of `cust`, n days ago: one line per category at `price` each.
 * time: local time of day; channel: the order's channel.
 */
function ord(id, cust, n, { cats = ['tea'], price = 10000, time = '12:00', channel = 'web' } = {}) {
  return {
    id,
    customer_id: cust,
    placed_at: at(n, time),
    channel,
    currency: 'CNY',
    lines: cats.map((category) => ({ sku: `SKU-${category}`, category, role: 'regular', quantity: 1, unit_price: price })),
    total: price * cats.length,
  };
}

/** A shop in zone X (platform key). Returns {shopId, key}. */
async function mkShop(timezone = ZX) {
  const r = await c.post('/v1/shops', { name: uniq('Custom Segments Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  return { shopId: r.body.shop.id, key: r.body.admin_key.key };
}

async function patchRule(s, rule) {
  const r = await c.patch(`/v1/shops/${s.shopId}`, { settings: { repurchase_rule: rule } }, { key: s.key });
  assert.equal(r.status, 200, r.text);
}

/** Query string; commas stay literal (fields=name,email). */
const qs = (q = {}) => {
  const s = Object.entries(q).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2C/g, ',')}`).join('&');
  return s ? `?${s}` : '';
};

/** A custom Segment object: exact members, kind, as_of today, timestamps. */
function assertCustom(s, code, asOf = TODAY) {
  assert.deepEqual(Object.keys(s).sort(), CUSTOM_KEYS, JSON.stringify(s));
  assert.equal(s.kind, 'custom');
  if (code !== undefined) assert.equal(s.code, code);
  assert.equal(typeof s.name, 'string');
  assert.ok(s.description === null || typeof s.description === 'string');
  assert.ok(Number.isInteger(s.size) && s.size >= 0, `size: ${s.size}`);
  assert.equal(s.as_of, asOf, `as_of is today in the shop's zone (${asOf})`);
  const cr = assertServerTs(s.created_at, 'created_at');
  const up = assertServerTs(s.updated_at, 'updated_at');
  assert.ok(up >= cr, `updated_at ${s.updated_at} ≥ created_at ${s.created_at}`);
}

function assertItemShape(it, fields) {
  const want = fields ? ['id', ...fields].sort() : ALL_FIELDS;
  assert.deepEqual(Object.keys(it).sort(), want, `members of an item: ${JSON.stringify(it)}`);
  assert.equal(typeof it.id, 'string');
  if ('reason' in it) assert.equal(it.reason, null, `reason of a custom segment's member is null: ${JSON.stringify(it)}`);
  if ('consent' in it) {
    assert.deepEqual(Object.keys(it.consent).sort(), ['email', 'sms', 'wechat']);
    for (const v of Object.values(it.consent)) assert.equal(typeof v, 'boolean');
  }
  if ('facts' in it) {
    assert.deepEqual(Object.keys(it.facts).sort(), FACT_KEYS, JSON.stringify(it.facts));
    assertServerTs(it.facts.first_order_at, 'facts.first_order_at');
    assertServerTs(it.facts.last_order_at, 'facts.last_order_at');
  }
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
    for (const it of r.body.items) assertItemShape(it, fields);
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
const ids = async (key, code, q) => (await list(key, code, q)).map((x) => x.id);

/** PUT /v1/segments/{code} as is (no assertion). */
const putSeg = (key, code, body) => c.put(`/v1/segments/${code}`, body, { key });

/** PUT a segment that must be new (201 + Location); returns the body. */
async function create(key, code, filter, { name = `Segment ${code}`, description, asOf } = {}) {
  const body = { name, filter };
  if (description !== undefined) body.description = description;
  const r = await putSeg(key, code, body);
  assert.equal(r.status, 201, `PUT ${code} ${JSON.stringify(body)}: ${r.text}`);
  assert.equal(r.headers.location, `/v1/segments/${code}`);
  assertCustom(r.body, code, asOf);
  assert.deepEqual(r.body.filter, filter, 'the filter as stored');
  return r.body;
}

/**
 * Creates a new segment with `filter` in shop s (code <prefix>-NNN), asserts
 * its members (ids in listing order), its size in the PUT answer, and that
 * GET /v1/segments/{code} equals the PUT answer. Remembers [code, size].
 */
async function expectFilter(s, filter, want) {
  s.n = (s.n ?? 0) + 1;
  const code = `${s.prefix}-${String(s.n).padStart(3, '0')}`;
  const made = await create(s.key, code, filter, { asOf: s.asOf });
  const got = await ids(s.key, code);
  assert.deepEqual(got, want, `members of ${code} ${JSON.stringify(filter)}`);
  assert.equal(made.size, want.length, `size in the PUT answer of ${code} ${JSON.stringify(filter)}`);
  const g = await c.get(`/v1/segments/${code}`, { key: s.key });
  assert.equal(g.status, 200, g.text);
  assert.deepEqual(g.body, made, `GET /v1/segments/${code} equals the PUT answer`);
  (s.made ??= []).push([code, want.length]);
}

/** GET /v1/segments: 200, the five built-ins first (shape unchanged), then the custom ones. */
async function segments(key) {
  const r = await c.get('/v1/segments', { key });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.body), ['items']);
  assert.deepEqual(r.body.items.slice(0, 5).map((s) => s.code), BUILT_INS);
  for (const s of r.body.items.slice(0, 5)) {
    assert.equal(s.kind, 'built-in');
    assert.ok('parameters' in s && !('filter' in s), JSON.stringify(s));
  }
  for (const s of r.body.items.slice(5)) assertCustom(s);
  return r.body.items;
}

const customs = async (key) => (await segments(key)).slice(5);

/** Filters nested `levels` deep: `levels − 1` wrappers alternating all/any around `leaf`. */
function allAnyChain(levels, leaf) {
  let f = leaf;
  for (let i = levels - 1; i >= 1; i--) f = i % 2 ? { all: [f] } : { any: [f] };
  return f;
}
/** k nots around leaf (depth k + 1). */
function notChain(k, leaf) {
  let f = leaf;
  for (let i = 0; i < k; i++) f = { not: f };
  return f;
}

// ---------------------------------------------------------------------------
// shops

let N; // numeric fields: order_count, days since first/last, total_spent, average_order_value
let S; // set fields: first_order_channel, categories, channels, tags, consent; combinations
let X; // the example of segments2.md
let VAL; // validation: no customers
let W; // scopes (setupShop: all key scopes)
let Q; // listing: fields, consent, paging, erasure

// Shop N (tea, channel web). Customers in this order; orders (days ago @ local time: amount):
//   n1: 30 @ 00:00: 1000
//   n2: 31 @ 23:59: 10;  29 @ 00:00: 15
//   n3: 60: 10;          30 @ 23:59: 14
//   n4: 90: 1000;        60: 1000;  31 @ 00:00: 999
//   n5: 29 @ 23:59: 1001
//   n6: 5: 2000 (1000 of it refunded);  3: 1
//   n7: 0 @ 00:00: 1     (today)
//   n8: 20: 500 — cancelled: n8 has no qualifying order, never a member
//   n9: 40: 500 — refunded in full (does not qualify);  20: 999
//
// Facts by hand (days are calendar days in the shop's zone; aov = total / count half up):
//   | id | order_count | days_since_first | days_since_last | total_spent | average_order_value |
//   | n1 | 1 | 30 | 30 | 1000 | 1000                                           |
//   | n2 | 2 | 31 | 29 |   25 | 13   (12.5 → 13; rounded down 12, half-even 12) |
//   | n3 | 2 | 60 | 30 |   24 | 12                                             |
//   | n4 | 3 | 90 | 31 | 2999 | 1000 (999.67 → 1000; rounded down 999)         |
//   | n5 | 1 | 29 | 29 | 1001 | 1001                                           |
//   | n6 | 2 |  5 |  3 | 1001 | 501  (1000 + 1 = 1001, 500.5 → 501; half-even 500) |
//   | n7 | 1 |  0 |  0 |    1 | 1                                              |
//   | n9 | 1 | 20 | 20 |  999 | 999                                            |
// Traps: n2's first order (31 @ 23:59) and n3's last (30 @ 23:59) are 30 and 29 days ago in
// elapsed time; n5 (29 @ 23:59) is 28 elapsed days; n2's second (29 @ 00:00) is 29.5.
const N_CUSTOMERS = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'];
const N_ORDERS = () => [
  ord('n1-1', 'n1', 30, { time: '00:00', price: 1000 }),
  ord('n2-1', 'n2', 31, { time: '23:59', price: 10 }), ord('n2-2', 'n2', 29, { time: '00:00', price: 15 }),
  ord('n3-1', 'n3', 60, { price: 10 }), ord('n3-2', 'n3', 30, { time: '23:59', price: 14 }),
  ord('n4-1', 'n4', 90, { price: 1000 }), ord('n4-2', 'n4', 60, { price: 1000 }), ord('n4-3', 'n4', 31, { time: '00:00', price: 999 }),
  ord('n5-1', 'n5', 29, { time: '23:59', price: 1001 }),
  ord('n6-1', 'n6', 5, { price: 2000 }), ord('n6-2', 'n6', 3, { price: 1 }),
  ord('n7-1', 'n7', 0, { time: '00:00', price: 1 }),
  ord('n8-1', 'n8', 20, { price: 500 }),
  ord('n9-1', 'n9', 40, { price: 500 }), ord('n9-2', 'n9', 20, { price: 999 }),
];
const N_ALL = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n9'];

// Shop S (10000 per line). Customers in this order:
//   s1: tags [tea, vip], consent email.  Orders: 50 web [tea, teaware]; 10 tmall [tea]
//   s2: tags [coffee, tea.x], consent sms + wechat.
//       Orders: 40 tmall [coffee] — cancelled; 20 jd [tea]
//   s3: no tags, consent email explicitly not granted.
//       Orders: 30 wechat-mini [matcha] — refunded in full (not cancelled); 15 web [tea]
//   s4: tags [vip, --], consent email + sms + wechat.  Orders: 5 store:jingan [teaware, matcha]
//   s5: tags [Tea, NULL], consent wechat.  Orders: 60 web [Tea]
//   s6: tags [vip, tea], consent email.  Orders: 3 tmall [coffee] — cancelled: never a member
//   s7: tags [vip], consent email.  No orders: never a member
// Members s1..s5, by hand:
//   | id | order_count | first_order_channel | categories      | channels          | tags        | consent          |
//   | s1 | 2 | web          | tea, teaware    | tmall, web        | tea, vip    | email            |
//   | s2 | 1 | jd           | tea (coffee was cancelled) | jd (tmall was cancelled) | coffee, tea.x | sms, wechat |
//   | s3 | 1 | web (the refunded order does not qualify) | tea (matcha was refunded in full) | web, wechat-mini (not cancelled) | — | — |
//   | s4 | 1 | store:jingan | matcha, teaware | store:jingan      | --, vip     | email, sms, wechat |
//   | s5 | 1 | web          | Tea             | web               | NULL, Tea   | wechat           |
//   days_since_first: s1 50, s2 20, s3 15, s4 5, s5 60; total_spent: s1 30000, s2 10000, s3 10000, s4 20000, s5 10000.
const S_CUSTOMERS = ['s1', 's2', 's3', 's4', 's5', 's6', 's7'];
const S_PROFILES = {
  s1: { name: 'S One', tags: ['tea', 'vip'], consent: { email: { granted: true } } },
  s2: { name: 'S Two', tags: ['coffee', 'tea.x'], consent: { sms: { granted: true }, wechat: { granted: true } } },
  s3: { name: 'S Three', consent: { email: { granted: false } } },
  s4: { name: 'S Four', tags: ['vip', '--'], consent: { email: { granted: true }, sms: { granted: true }, wechat: { granted: true } } },
  s5: { name: 'S Five', tags: ['Tea', 'NULL'], consent: { wechat: { granted: true } } },
  s6: { name: 'S Six', tags: ['vip', 'tea'], consent: { email: { granted: true } } },
  s7: { name: 'S Seven', tags: ['vip'], consent: { email: { granted: true } } },
};
const S_ORDERS = () => [
  ord('s1-1', 's1', 50, { cats: ['tea', 'teaware'], channel: 'web' }), ord('s1-2', 's1', 10, { channel: 'tmall' }),
  ord('s2-1', 's2', 40, { cats: ['coffee'], channel: 'tmall' }), ord('s2-2', 's2', 20, { channel: 'jd' }),
  ord('s3-1', 's3', 30, { cats: ['matcha'], channel: 'wechat-mini' }), ord('s3-2', 's3', 15, { channel: 'web' }),
  ord('s4-1', 's4', 5, { cats: ['teaware', 'matcha'], channel: 'store:jingan' }),
  ord('s5-1', 's5', 60, { cats: ['Tea'], channel: 'web' }),
  ord('s6-1', 's6', 3, { cats: ['coffee'], channel: 'tmall' }),
];
const S_ALL = ['s1', 's2', 's3', 's4', 's5'];

// Shop X: the example of segments2.md (tea, web). Customers: orders (days ago), consent:
//   x1: 30 [tea], email        → member (one order, tea, email, 30 is in [30, 90])
//   x2: 91 [tea], email        → no (91)
//   x3: 90 [tea, coffee], email → member (90 is in)
//   x4: 60 [tea], sms          → no (no email consent)
//   x5: 120, 60 [tea], email   → no (two orders)
//   x6: 60 [coffee], email     → no (no tea)
//   x7: 29 [tea], email        → no (29)
const X_CUSTOMERS = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'];
const EMAIL = { consent: { email: { granted: true } } };
const X_PROFILES = { x1: EMAIL, x2: EMAIL, x3: EMAIL, x4: { consent: { sms: { granted: true } } }, x5: EMAIL, x6: EMAIL, x7: EMAIL };
const X_ORDERS = () => [
  ord('x1-1', 'x1', 30), ord('x2-1', 'x2', 91), ord('x3-1', 'x3', 90, { cats: ['tea', 'coffee'] }), ord('x4-1', 'x4', 60),
  ord('x5-1', 'x5', 120), ord('x5-2', 'x5', 60), ord('x6-1', 'x6', 60, { cats: ['coffee'] }), ord('x7-1', 'x7', 29),
];
const EXAMPLE = {
  all: [
    { field: 'order_count', op: 'eq', value: 1 },
    { field: 'categories', op: 'contains', value: 'tea' },
    { field: 'consent', op: 'contains', value: 'email' },
    { field: 'days_since_last_order', op: 'between', value: [30, 90] },
  ],
};

// Shop Q: q1..q7 created in this order, then one order each (tea, 10000), loaded newest
// customer first: q1 7 days ago, q2 6, …, q7 1.
const Q_CUSTOMERS = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7'];
const Q_PROFILES = {
  q1: { name: 'Li Wei', email: 'li.wei@example.com', phone: '+8613800138000', tags: ['tea', 'vip'], consent: { email: { granted: true } } },
  q2: { name: 'Wang Fang', tags: ['vip'], consent: { sms: { granted: true } } },
  q3: { name: 'Zhang Min', email: 'zhang@example.com', consent: { email: { granted: true }, sms: { granted: true } } },
  q4: { name: 'Liu Yang', consent: { wechat: { granted: true } } },
  q5: {},
  q6: { name: 'Chen Jing', email: 'chen@example.com', tags: ['vip'], consent: { email: { granted: true }, wechat: { granted: true } } },
  q7: { name: 'Yang Lei', phone: '+8613900139000', consent: { email: { granted: true }, sms: { granted: true }, wechat: { granted: true } } },
};
const Q_ORDERS = () => Q_CUSTOMERS.map((id, i) => ord(`${id}-1`, id, 7 - i)).reverse();

before(async () => {
  svc = await startService();
  c = api(svc);
  ({ people, load, cancel, refund } = historyCalls(c));

  N = await mkShop();
  N.prefix = 'n';
  await people(N.key, N_CUSTOMERS);
  await load(N.key, N_ORDERS());
  await refund(N.key, 'n6-1', 1000);
  await cancel(N.key, 'n8-1');
  await refund(N.key, 'n9-1', 500);

  S = await mkShop();
  S.prefix = 's';
  await people(S.key, S_CUSTOMERS, S_PROFILES);
  await load(S.key, S_ORDERS());
  await cancel(S.key, 's2-1');
  await refund(S.key, 's3-1', 10000);
  await cancel(S.key, 's6-1');

  X = await mkShop();
  await people(X.key, X_CUSTOMERS, X_PROFILES);
  await load(X.key, X_ORDERS());

  VAL = await mkShop();

  W = await setupShop(svc, { timezone: ZX });
  W.key = W.keys.admin;
  await people(W.key, ['w1', 'w2']);
  await load(W.key, [ord('w1-1', 'w1', 3), ord('w2-1', 'w2', 4)]);

  Q = await mkShop();
  await people(Q.key, Q_CUSTOMERS, Q_PROFILES);
  await load(Q.key, Q_ORDERS());
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------
// numeric fields (shop N)

describe('numeric fields: every operator at its boundary (shop N)', () => {
  // [filter, members] — members from the facts table above, by hand.
  const cases = [
    // order_count: n1 1, n2 2, n3 2, n4 3, n5 1, n6 2, n7 1, n9 1 (n9's refunded order and n8's
    // cancelled one do not count)
    [C('order_count', 'eq', 2), ['n2', 'n3', 'n6']],
    [C('order_count', 'ne', 2), ['n1', 'n4', 'n5', 'n7', 'n9']],
    [C('order_count', 'lt', 2), ['n1', 'n5', 'n7', 'n9']],
    [C('order_count', 'lte', 2), ['n1', 'n2', 'n3', 'n5', 'n6', 'n7', 'n9']],
    [C('order_count', 'gt', 2), ['n4']],
    [C('order_count', 'gte', 2), ['n2', 'n3', 'n4', 'n6']],
    [C('order_count', 'between', [2, 3]), ['n2', 'n3', 'n4', 'n6']],
    [C('order_count', 'between', [2, 2]), ['n2', 'n3', 'n6']],
    [C('order_count', 'between', [1, 1]), ['n1', 'n5', 'n7', 'n9']],
    [C('order_count', 'eq', 3), ['n4']],
    [C('order_count', 'eq', 4), []],
    // nobody with 0 occasions is ever a member (n8 has 0)
    [C('order_count', 'eq', 0), []],
    [C('order_count', 'lt', 1), []],
    [C('order_count', 'lte', 0), []],
    [C('order_count', 'gte', 0), N_ALL],
    [C('order_count', 'gt', -E15), N_ALL],
    [C('order_count', 'between', [-E15, E15]), N_ALL],
    [C('order_count', 'lt', E15), N_ALL],
    [C('order_count', 'eq', E15), []],
    [C('order_count', 'eq', -E15), []],

    // days_since_first_order: n1 30, n2 31, n3 60, n4 90, n5 29, n6 5, n7 0, n9 20
    [C('days_since_first_order', 'eq', 30), ['n1']],
    [C('days_since_first_order', 'ne', 30), ['n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n9']],
    [C('days_since_first_order', 'lt', 30), ['n5', 'n6', 'n7', 'n9']],
    [C('days_since_first_order', 'lte', 30), ['n1', 'n5', 'n6', 'n7', 'n9']],
    [C('days_since_first_order', 'gt', 30), ['n2', 'n3', 'n4']],
    [C('days_since_first_order', 'gte', 30), ['n1', 'n2', 'n3', 'n4']],
    [C('days_since_first_order', 'between', [29, 31]), ['n1', 'n2', 'n5']],
    [C('days_since_first_order', 'between', [30, 30]), ['n1']],
    [C('days_since_first_order', 'between', [31, 90]), ['n2', 'n3', 'n4']],
    // n2's first order, 31 days ago at 23:59, is 31 calendar days ago (30.5 elapsed)
    [C('days_since_first_order', 'eq', 31), ['n2']],
    // n5's only order, 29 days ago at 23:59, is 29 (28.5 elapsed)
    [C('days_since_first_order', 'eq', 29), ['n5']],
    [C('days_since_first_order', 'eq', 28), []],
    // n7: today at 00:00
    [C('days_since_first_order', 'eq', 0), ['n7']],
    [C('days_since_first_order', 'lt', 0), []],
    [C('days_since_first_order', 'eq', 40), [], /* n9's refunded order 40 days ago does not count */],
    [C('days_since_first_order', 'eq', 20), ['n9']],

    // days_since_last_order: n1 30, n2 29, n3 30, n4 31, n5 29, n6 3, n7 0, n9 20
    [C('days_since_last_order', 'eq', 30), ['n1', 'n3']],
    [C('days_since_last_order', 'ne', 30), ['n2', 'n4', 'n5', 'n6', 'n7', 'n9']],
    [C('days_since_last_order', 'lt', 30), ['n2', 'n5', 'n6', 'n7', 'n9']],
    [C('days_since_last_order', 'lte', 30), ['n1', 'n2', 'n3', 'n5', 'n6', 'n7', 'n9']],
    [C('days_since_last_order', 'gt', 30), ['n4']],
    [C('days_since_last_order', 'gte', 30), ['n1', 'n3', 'n4']],
    [C('days_since_last_order', 'between', [29, 30]), ['n1', 'n2', 'n3', 'n5']],
    [C('days_since_last_order', 'between', [31, 31]), ['n4']],
    [C('days_since_last_order', 'between', [0, 3]), ['n6', 'n7']],
    [C('days_since_last_order', 'eq', 0), ['n7']],
    [C('days_since_last_order', 'eq', 5), [] /* n6's last order is the one 3 days ago */],

    // total_spent: n1 1000, n2 25, n3 24, n4 2999, n5 1001, n6 1001 (net), n7 1, n9 999
    [C('total_spent', 'eq', 1000), ['n1']],
    [C('total_spent', 'ne', 1000), ['n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n9']],
    [C('total_spent', 'lt', 1000), ['n2', 'n3', 'n7', 'n9']],
    [C('total_spent', 'lte', 1000), ['n1', 'n2', 'n3', 'n7', 'n9']],
    [C('total_spent', 'gt', 1000), ['n4', 'n5', 'n6']],
    [C('total_spent', 'gte', 1000), ['n1', 'n4', 'n5', 'n6']],
    [C('total_spent', 'between', [999, 1001]), ['n1', 'n5', 'n6', 'n9']],
    [C('total_spent', 'between', [24, 25]), ['n2', 'n3']],
    // n6: 2000 − 1000 refunded + 1 = 1001 (2001 gross)
    [C('total_spent', 'eq', 1001), ['n5', 'n6']],
    [C('total_spent', 'eq', 2001), []],
    // n9: only the 999 order counts (the 500 one is refunded in full)
    [C('total_spent', 'eq', 999), ['n9']],
    [C('total_spent', 'eq', 1499), []],

    // average_order_value, half up: n1 1000, n2 13, n3 12, n4 1000, n5 1001, n6 501, n7 1, n9 999
    [C('average_order_value', 'eq', 13), ['n2']], // 25 / 2 = 12.5 → 13
    [C('average_order_value', 'eq', 12), ['n3']], // 24 / 2; n2 is not 12
    [C('average_order_value', 'eq', 1000), ['n1', 'n4']], // n4: 2999 / 3 = 999.67 → 1000
    [C('average_order_value', 'eq', 999), ['n9']], // not n4
    [C('average_order_value', 'eq', 501), ['n6']], // 1001 / 2 = 500.5 → 501
    [C('average_order_value', 'eq', 500), []],
    [C('average_order_value', 'ne', 1000), ['n2', 'n3', 'n5', 'n6', 'n7', 'n9']],
    [C('average_order_value', 'lt', 1000), ['n2', 'n3', 'n6', 'n7', 'n9']],
    [C('average_order_value', 'lte', 1000), ['n1', 'n2', 'n3', 'n4', 'n6', 'n7', 'n9']],
    [C('average_order_value', 'gt', 1000), ['n5']],
    [C('average_order_value', 'gte', 1000), ['n1', 'n4', 'n5']],
    [C('average_order_value', 'between', [13, 501]), ['n2', 'n6']],
    [C('average_order_value', 'between', [12, 12]), ['n3']],
    [C('average_order_value', 'lt', 13), ['n3', 'n7']],
    [C('average_order_value', 'gte', 13), ['n1', 'n2', 'n4', 'n5', 'n6', 'n9']],
  ];
  for (const [filter, want] of cases) {
    test(`${filter.field} ${filter.op} ${JSON.stringify(filter.value)} → ${want.join(' ') || 'nobody'}`, () => expectFilter(N, filter, want));
  }

  test('facts of the listed members are the calendar-day facts of the table', async () => {
    await create(N.key, 'facts', C('order_count', 'gte', 1));
    N.made.push(['facts', N_ALL.length]);
    const items = await list(N.key, 'facts');
    assert.deepEqual(items.map((x) => x.id), N_ALL);
    const by = Object.fromEntries(items.map((x) => [x.id, x.facts]));
    const f = (x) => ({
      n: x.order_count, first: tsMicros(x.first_order_at), last: tsMicros(x.last_order_at),
      dsf: x.days_since_first_order, dsl: x.days_since_last_order, spent: x.total_spent,
    });
    assert.deepEqual(f(by.n2), { n: 2, first: us(at(31, '23:59')), last: us(at(29, '00:00')), dsf: 31, dsl: 29, spent: 25 });
    assert.deepEqual(f(by.n3), { n: 2, first: us(at(60)), last: us(at(30, '23:59')), dsf: 60, dsl: 30, spent: 24 });
    assert.deepEqual(f(by.n6), { n: 2, first: us(at(5)), last: us(at(3)), dsf: 5, dsl: 3, spent: 1001 });
    assert.deepEqual(f(by.n9), { n: 1, first: us(at(20)), last: us(at(20)), dsf: 20, dsl: 20, spent: 999 });
    for (const it of items) assert.equal(it.reason, null);
  });

  test('the customer record keeps its own rounding (down) while the filter rounds half up', async () => {
    // n2: facts.average_order_value = floor(25 / 2) = 12 (CustomerFacts), yet the filter's is 13
    const g = await c.get('/v1/customers/n2', { key: N.key });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.body.facts.average_order_value, 12);
    await create(N.key, 'half-up', C('average_order_value', 'eq', 13));
    N.made.push(['half-up', 1]);
    assert.deepEqual(await ids(N.key, 'half-up'), ['n2']);
  });

  test('GET /v1/segments lists every probe of shop N by code with its size', async () => {
    const got = (await customs(N.key)).map((s) => [s.code, s.size]);
    const want = [...N.made].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    assert.deepEqual(got, want);
  });
});

describe('days at local-date boundaries', () => {
  test('today at 00:00, yesterday at 23:59, tomorrow (a future order): 0, 1, −1 days', async () => {
    // T: t0 today @ 00:00; t1 1 day ago @ 23:59 (12.5 hours ago); tf 1 day AFTER today @ noon;
    //    t2 2 days ago @ 00:00 and 1 day ago @ 00:01 (first 2, last 1).
    const T = await mkShop();
    await people(T.key, ['t0', 't1', 'tf', 't2']);
    await load(T.key, [ord('t0-1', 't0', 0, { time: '00:00' }), ord('t1-1', 't1', 1, { time: '23:59' }),
      ord('tf-1', 'tf', -1), ord('t2-1', 't2', 2, { time: '00:00' }), ord('t2-2', 't2', 1, { time: '00:01' })]);
    T.prefix = 't';
    // days_since_last: t0 0, t1 1, tf −1, t2 1; days_since_first: t0 0, t1 1, tf −1, t2 2
    await expectFilter(T, C('days_since_last_order', 'eq', 0), ['t0']);
    await expectFilter(T, C('days_since_last_order', 'eq', 1), ['t1', 't2']);
    await expectFilter(T, C('days_since_last_order', 'lt', 0), ['tf']);
    await expectFilter(T, C('days_since_last_order', 'eq', -1), ['tf']);
    await expectFilter(T, C('days_since_last_order', 'between', [-1, 0]), ['t0', 'tf']);
    await expectFilter(T, C('days_since_last_order', 'gte', 1), ['t1', 't2']);
    await expectFilter(T, C('days_since_first_order', 'eq', 2), ['t2']);
    await expectFilter(T, C('days_since_first_order', 'lte', 1), ['t0', 't1', 'tf']);
    await expectFilter(T, C('days_since_first_order', 'gt', -1), ['t0', 't1', 't2']);
  });

  test("the shop's zone decides the date: orders whose UTC date is not their local date", async () => {
    // A shop in zone Y: 13 hours east of X (01:xx tomorrow there) when that zone exists
    // (X at most UTC+1), else 14 hours west (22:xx yesterday there). Orders at 01:00 Y-local
    // (east: the previous day in UTC) or 23:00 Y-local (west: the next day in UTC).
    //   y9: 9 local days ago; y10: 10; y11: 11 and 30 (first 30, last 11)
    const east = OFF_X <= 1;
    const offY = east ? OFF_X + 13 : OFF_X - 14;
    const ZY = etcZone(offY);
    const todayY = localDate(ZY);
    const time = east ? '01:00' : '23:00';
    const atY = (n) => `${addDays(todayY, -n)}T${time}:00${offStr(offY)}`;
    for (const n of [9, 10, 11, 30]) {
      // the construction itself: local date n days ago, UTC date one off
      const ms = Date.parse(atY(n));
      assert.equal(localDate(ZY, ms), addDays(todayY, -n));
      assert.equal(localDate('UTC', ms), addDays(todayY, -n + (east ? -1 : 1)));
    }
    const Y = await mkShop(ZY);
    Y.prefix = 'y';
    Y.asOf = todayY;
    await people(Y.key, ['y9', 'y10', 'y11']);
    const o = (id, cust, n) => ({ ...ord(id, cust, 0), placed_at: atY(n) });
    await load(Y.key, [o('y9-1', 'y9', 9), o('y10-1', 'y10', 10), o('y11-1', 'y11', 30), o('y11-2', 'y11', 11)]);
    // days_since_last: y9 9, y10 10, y11 11; days_since_first: y9 9, y10 10, y11 30
    await expectFilter(Y, C('days_since_last_order', 'eq', 10), ['y10']);
    await expectFilter(Y, C('days_since_last_order', 'lt', 10), ['y9']);
    await expectFilter(Y, C('days_since_last_order', 'between', [10, 11]), ['y10', 'y11']);
    await expectFilter(Y, C('days_since_first_order', 'eq', 30), ['y11']);
    await expectFilter(Y, C('days_since_first_order', 'lte', 10), ['y9', 'y10']);
    const s = await c.get('/v1/segments/y-001', { key: Y.key });
    assert.equal(s.body.as_of, todayY, `as_of is today in ${ZY}`);
  });
});

// ---------------------------------------------------------------------------
// set fields (shop S)

describe('set and channel fields: every operator (shop S)', () => {
  // Members from the table of shop S, by hand. s6 (only a cancelled order) and s7 (no
  // orders) are never members whatever their tags and consent.
  const cases = [
    // first_order_channel: s1 web, s2 jd, s3 web, s4 store:jingan, s5 web
    [C('first_order_channel', 'eq', 'web'), ['s1', 's3', 's5']],
    [C('first_order_channel', 'eq', 'jd'), ['s2']],
    [C('first_order_channel', 'eq', 'store:jingan'), ['s4']],
    // s2's tmall order is cancelled, s1's is its second, s6's is cancelled
    [C('first_order_channel', 'eq', 'tmall'), []],
    // s3's wechat-mini order is refunded in full: not a qualifying order
    [C('first_order_channel', 'eq', 'wechat-mini'), []],
    [C('first_order_channel', 'eq', 'WEB'), []],
    [C('first_order_channel', 'ne', 'web'), ['s2', 's4']],
    [C('first_order_channel', 'ne', 'jd'), ['s1', 's3', 's4', 's5']],
    [C('first_order_channel', 'ne', 'tmall'), S_ALL],
    [C('first_order_channel', 'in', ['jd', 'store:jingan']), ['s2', 's4']],
    [C('first_order_channel', 'in', ['web']), ['s1', 's3', 's5']],
    [C('first_order_channel', 'in', ['tmall', 'wechat-mini']), []],
    [C('first_order_channel', 'in', ['nope', 'jd', 'web']), ['s1', 's2', 's3', 's5']],

    // categories (of qualifying purchases): s1 {tea, teaware}, s2 {tea}, s3 {tea}, s4 {matcha, teaware}, s5 {Tea}
    [C('categories', 'contains', 'tea'), ['s1', 's2', 's3']],
    [C('categories', 'contains', 'teaware'), ['s1', 's4']],
    // s3's matcha was refunded in full; s4's counts
    [C('categories', 'contains', 'matcha'), ['s4']],
    // s2's coffee order is cancelled, s6 is no member
    [C('categories', 'contains', 'coffee'), []],
    [C('categories', 'contains', 'Tea'), ['s5']],
    [C('categories', 'contains', 'te_'), []],
    [C('categories', 'contains', 'te'), []],
    [C('categories', 'contains_any', ['coffee', 'matcha']), ['s4']],
    [C('categories', 'contains_any', ['teaware', 'Tea']), ['s1', 's4', 's5']],
    [C('categories', 'contains_any', ['nope']), []],
    [C('categories', 'contains_all', ['tea', 'teaware']), ['s1']],
    [C('categories', 'contains_all', ['teaware', 'matcha']), ['s4']],
    [C('categories', 'contains_all', ['tea']), ['s1', 's2', 's3']],
    [C('categories', 'contains_all', ['tea', 'coffee']), []],
    [C('categories', 'contains_all', ['tea', 'matcha']), []],

    // channels (of orders not cancelled): s1 {tmall, web}, s2 {jd}, s3 {web, wechat-mini}, s4 {store:jingan}, s5 {web}
    [C('channels', 'contains', 'web'), ['s1', 's3', 's5']],
    [C('channels', 'contains', 'tmall'), ['s1']],
    // refunded in full, but not cancelled: s3's channel counts
    [C('channels', 'contains', 'wechat-mini'), ['s3']],
    [C('channels', 'contains', 'Web'), []],
    [C('channels', 'contains_any', ['tmall', 'jd']), ['s1', 's2']],
    [C('channels', 'contains_any', ['store:jingan', 'nope']), ['s4']],
    [C('channels', 'contains_all', ['web', 'tmall']), ['s1']],
    [C('channels', 'contains_all', ['web', 'wechat-mini']), ['s3']],
    [C('channels', 'contains_all', ['jd', 'tmall']), []],

    // tags: s1 {tea, vip}, s2 {coffee, tea.x}, s3 {}, s4 {vip, --}, s5 {Tea, NULL}
    [C('tags', 'contains', 'vip'), ['s1', 's4']],
    [C('tags', 'contains', 'tea'), ['s1']],
    [C('tags', 'contains', 'tea.x'), ['s2']],
    [C('tags', 'contains', 'tea_x'), []],
    [C('tags', 'contains', 'Tea'), ['s5']],
    [C('tags', 'contains', 'VIP'), []],
    [C('tags', 'contains_any', ['coffee', 'Tea']), ['s2', 's5']],
    [C('tags', 'contains_any', ['nope']), []],
    [C('tags', 'contains_any', ['vip', 'coffee', 'Tea']), ['s1', 's2', 's4', 's5']],
    [C('tags', 'contains_all', ['vip', '--']), ['s4']],
    [C('tags', 'contains_all', ['tea', 'vip']), ['s1']],
    [C('tags', 'contains_all', ['vip', 'tea', 'coffee']), []],

    // consent: s1 {email}, s2 {sms, wechat}, s3 {} (email withdrawn), s4 {email, sms, wechat}, s5 {wechat}
    [C('consent', 'contains', 'email'), ['s1', 's4']],
    [C('consent', 'contains', 'sms'), ['s2', 's4']],
    [C('consent', 'contains', 'wechat'), ['s2', 's4', 's5']],
    [C('consent', 'contains_any', ['email', 'sms']), ['s1', 's2', 's4']],
    [C('consent', 'contains_any', ['wechat']), ['s2', 's4', 's5']],
    [C('consent', 'contains_any', ['email', 'sms', 'wechat']), ['s1', 's2', 's4', 's5']],
    [C('consent', 'contains_all', ['sms', 'wechat']), ['s2', 's4']],
    [C('consent', 'contains_all', ['email', 'wechat']), ['s4']],
    [C('consent', 'contains_all', ['email', 'sms', 'wechat']), ['s4']],
  ];
  for (const [filter, want] of cases) {
    test(`${filter.field} ${filter.op} ${JSON.stringify(filter.value)} → ${want.join(' ') || 'nobody'}`, () => expectFilter(S, filter, want));
  }
});

describe('all / any / not (shop S)', () => {
  const VIP = C('tags', 'contains', 'vip'); // s1 s4
  const cases = [
    ['not tags contains vip → the members without the tag, s3 (no tags at all) included',
      { not: VIP }, ['s2', 's3', 's5']],
    ['not consent contains_any all three → s3 only', { not: C('consent', 'contains_any', ['email', 'sms', 'wechat']) }, ['s3']],
    ['not categories contains tea', { not: C('categories', 'contains', 'tea') }, ['s4', 's5']],
    ['not channels contains web', { not: C('channels', 'contains', 'web') }, ['s2', 's4']],
    ['not first_order_channel eq web (= ne web)', { not: C('first_order_channel', 'eq', 'web') }, ['s2', 's4']],
    ['not order_count eq 1 → s1 (2 orders); s6, s7 with 0 are still not members', { not: C('order_count', 'eq', 1) }, ['s1']],
    ['not order_count gte 1 → nobody', { not: C('order_count', 'gte', 1) }, []],
    ['all with one item', { all: [VIP] }, ['s1', 's4']],
    ['any with one item', { any: [VIP] }, ['s1', 's4']],
    ['not not', { not: { not: VIP } }, ['s1', 's4']],
    // vip {s1, s4} ∩ email {s1, s4}
    ['all [vip, email]', { all: [VIP, C('consent', 'contains', 'email')] }, ['s1', 's4']],
    // vip {s1, s4} ∩ sms {s2, s4}
    ['all [vip, sms]', { all: [VIP, C('consent', 'contains', 'sms')] }, ['s4']],
    // jd {s2} ∪ matcha {s4}
    ['any [first channel jd, categories matcha]', { any: [C('first_order_channel', 'eq', 'jd'), C('categories', 'contains', 'matcha')] }, ['s2', 's4']],
    ['not all [vip, email]', { not: { all: [VIP, C('consent', 'contains', 'email')] } }, ['s2', 's3', 's5']],
    // not (vip {s1, s4} ∪ wechat {s2, s4, s5}) = {s3}
    ['not any [vip, wechat]', { not: { any: [VIP, C('consent', 'contains', 'wechat')] } }, ['s3']],
    // (tmall {s1} ∪ jd {s2}) ∩ not sms {s1, s3, s5} = {s1}
    ['all [any [channels tmall, channels jd], not sms]',
      { all: [{ any: [C('channels', 'contains', 'tmall'), C('channels', 'contains', 'jd')] }, { not: C('consent', 'contains', 'sms') }] }, ['s1']],
    // (one order {s2..s5} ∩ tea {s1, s2, s3} = {s2, s3}) ∪ tag Tea {s5}
    ['any [all [order_count eq 1, categories tea], tags Tea]',
      { any: [{ all: [C('order_count', 'eq', 1), C('categories', 'contains', 'tea')] }, C('tags', 'contains', 'Tea')] }, ['s2', 's3', 's5']],
    ['all [x, not x] → nobody', { all: [VIP, { not: VIP }] }, []],
    ['any [x, not x] → every member', { any: [VIP, { not: VIP }] }, S_ALL],
    // not tea category {s4, s5} ∪ (email {s1, s4} ∩ not tag tea {s2..s5} = {s4}) = {s4, s5}
    ['any [not categories tea, all [email, not tags tea]]',
      { any: [{ not: C('categories', 'contains', 'tea') }, { all: [C('consent', 'contains', 'email'), { not: C('tags', 'contains', 'tea') }] }] }, ['s4', 's5']],
    // A = vip ∩ not sms = {s1, s4} ∩ {s1, s3, s5} = {s1}
    // B = tea category {s1, s2, s3} ∩ not (coffee tag {s2} ∪ email {s1, s4}) = {s1, s2, s3} ∩ {s3, s5} = {s3}
    ['nested three levels: any [all [vip, not sms], all [categories tea, not any [tags coffee, email]]]',
      {
        any: [
          { all: [VIP, { not: C('consent', 'contains', 'sms') }] },
          { all: [C('categories', 'contains', 'tea'), { not: { any: [C('tags', 'contains', 'coffee'), C('consent', 'contains', 'email')] } }] },
        ],
      }, ['s1', 's3']],
    // numbers and sets: days_since_first in [10, 50] {s1 50, s2 20, s3 15} ∩ email or sms {s1, s2, s4}
    ['all [days_since_first_order between [10, 50], consent contains_any [email, sms]]',
      { all: [C('days_since_first_order', 'between', [10, 50]), C('consent', 'contains_any', ['email', 'sms'])] }, ['s1', 's2']],
    // total_spent: s1 30000, s2 10000, s3 10000, s4 20000, s5 10000
    ['total_spent gte 20000', C('total_spent', 'gte', 20000), ['s1', 's4']],
    ['any [total_spent gt 20000, not total_spent gt 10000]',
      { any: [C('total_spent', 'gt', 20000), { not: C('total_spent', 'gt', 10000) }] }, ['s1', 's2', 's3', 's5']],
    // depth 8 (the root is level 1): seven wrappers alternating all/any around vip
    ['depth 8: all/any/… seven levels around a condition', allAnyChain(8, VIP), ['s1', 's4']],
    // seven nots: not vip
    ['depth 8: seven nots around a condition', notChain(7, VIP), ['s2', 's3', 's5']],
    // not(all(any(not(all(any(not(vip))))))): three nots → not vip
    ['depth 8: not/all/any mixed', { not: { all: [{ any: [{ not: { all: [{ any: [{ not: VIP }] }] } }] }] } }, ['s2', 's3', 's5']],
    // depth 8 in the second branch only: any (1) [email, six nots (2..7) around sms (8)] =
    // email {s1, s4} ∪ sms {s2, s4}
    ['depth 8 in one branch', { any: [C('consent', 'contains', 'email'), notChain(6, C('consent', 'contains', 'sms'))] }, ['s1', 's2', 's4']],
    // any (1) [email, five nots (2..6) around all (7) [sms (8)]] = email ∪ not sms =
    // {s1, s4} ∪ {s1, s3, s5}
    ['depth 8 in one branch, odd nots', { any: [C('consent', 'contains', 'email'), notChain(5, { all: [C('consent', 'contains', 'sms')] })] }, ['s1', 's3', 's4', 's5']],
    // any (1) [email, four nots (2..5) around all (6) [any (7) [sms (8)]]] = email ∪ sms
    ['depth 8 in one branch, even nots', { any: [C('consent', 'contains', 'email'), notChain(4, { all: [{ any: [C('consent', 'contains', 'sms')] }] })] }, ['s1', 's2', 's4']],
  ];
  for (const [what, filter, want] of cases) {
    test(`${what} → ${want.join(' ') || 'nobody'}`, () => expectFilter(S, filter, want));
  }

  test('100 conditions in all are accepted (two groups of 50)', async () => {
    // 99 × order_count gte 1 (every member) and vip → s1 s4
    const a = Array.from({ length: 50 }, () => C('order_count', 'gte', 1));
    const b = [...Array.from({ length: 49 }, () => C('consent', 'contains_any', ['email', 'sms', 'wechat'])), VIP];
    await expectFilter(S, { all: [{ all: a }, { all: b }] }, ['s1', 's4']);
    // and in an any: 100 × tags contains Tea → s5
    await expectFilter(S, { any: [{ any: Array(50).fill(C('tags', 'contains', 'Tea')) }, { any: Array(50).fill(C('tags', 'contains', 'Tea')) }] }, ['s5']);
  });

  test('50 items in one all are accepted', async () => {
    await expectFilter(S, { all: [...Array(49).fill(C('order_count', 'lte', 1)), C('consent', 'contains', 'sms')] }, ['s2', 's4']);
  });

  test('segments2.md example: one-time tea buyers with email consent, 30–90 days since the last order (shop X)', async () => {
    // x1 (30 days) and x3 (90 days); see shop X above
    const made = await create(X.key, 'one-time-tea-buyers', EXAMPLE, { name: 'One-time tea buyers', description: 'Bought tea once, 30 to 90 days ago, and accept email.' });
    assert.equal(made.size, 2);
    assert.equal(made.name, 'One-time tea buyers');
    assert.equal(made.description, 'Bought tea once, 30 to 90 days ago, and accept email.');
    assert.deepEqual(await ids(X.key, 'one-time-tea-buyers'), ['x1', 'x3']);
  });
});

// ---------------------------------------------------------------------------
// which orders count: rule changes, merged occasions

describe('categories and channels follow the repurchase rule', () => {
  // Shop R. r1: 10 web [tea] 500; 5 tmall [coffee] 5000.
  //         r2: 8 @ 10:00 jd [matcha] 10; 8 @ 14:00 web [tea] 15 (four hours apart).
  let R;
  const SEGS = {
    'cat-tea': C('categories', 'contains', 'tea'),
    'cat-coffee': C('categories', 'contains', 'coffee'),
    'ch-web': C('channels', 'contains', 'web'),
    'first-web': C('first_order_channel', 'eq', 'web'),
    'first-jd': C('first_order_channel', 'eq', 'jd'),
    one: C('order_count', 'eq', 1),
    'aov-13': C('average_order_value', 'eq', 13),
    'aov-25': C('average_order_value', 'eq', 25),
    'spent-25': C('total_spent', 'eq', 25),
  };
  const members = async () => Object.fromEntries(await Promise.all(Object.keys(SEGS).map(async (k) => [k, await ids(R.key, k)])));
  const sizes = async () => Object.fromEntries((await customs(R.key)).map((s) => [s.code, s.size]));
  before(async () => {
    R = await mkShop();
    await people(R.key, ['r1', 'r2']);
    await load(R.key, [
      ord('r1-1', 'r1', 10, { price: 500 }), ord('r1-2', 'r1', 5, { cats: ['coffee'], channel: 'tmall', price: 5000 }),
      ord('r2-1', 'r2', 8, { cats: ['matcha'], channel: 'jd', price: 10, time: '10:00' }), ord('r2-2', 'r2', 8, { price: 15, time: '14:00' }),
    ]);
    for (const [code, f] of Object.entries(SEGS)) await create(R.key, code, f);
  });

  test('default rule: both orders of each count', async () => {
    // r1: 2 occasions, categories {tea, coffee}, channels {web, tmall}, first web, 5500, aov 2750
    // r2: 2 occasions, categories {matcha, tea}, channels {jd, web}, first jd, 25, aov 12.5 → 13
    // (coffee is only in r1's second order)
    const want = {
      'cat-tea': ['r1', 'r2'], 'cat-coffee': ['r1'], 'ch-web': ['r1', 'r2'], 'first-web': ['r1'], 'first-jd': ['r2'],
      one: [], 'aov-13': ['r2'], 'aov-25': [], 'spent-25': ['r2'],
    };
    assert.deepEqual(await members(), want);
    assert.deepEqual(await sizes(), Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v.length])));
  });

  test('min_order_amount 1000: small orders leave categories and first channel, not channels', async () => {
    await patchRule(R, { min_order_amount: 1000 });
    try {
      // r1-1 (500) does not qualify: r1 has 1 occasion, categories {coffee}, first channel tmall,
      // but channels still {web, tmall} (r1-1 is not cancelled). r2 has no qualifying order at all:
      // never a member, though its orders are not cancelled.
      const want = {
        'cat-tea': [], 'cat-coffee': ['r1'], 'ch-web': ['r1'], 'first-web': [], 'first-jd': [], one: ['r1'], 'aov-13': [], 'aov-25': [], 'spent-25': [],
      };
      assert.deepEqual(await members(), want);
      assert.deepEqual(await sizes(), Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v.length])));
    } finally {
      await patchRule(R, { min_order_amount: 0 });
    }
  });

  test('merge_window_hours 24: r2\'s two orders are one occasion; average over occasions', async () => {
    await patchRule(R, { merge_window_hours: 24 });
    try {
      // r1: 5 days apart → still 2 occasions. r2: one occasion of 25 → aov 25, first channel jd
      // (the first qualifying order), categories {matcha, tea}.
      assert.deepEqual(await members(), {
        'cat-tea': ['r1', 'r2'], 'cat-coffee': ['r1'], 'ch-web': ['r1', 'r2'], 'first-web': ['r1'], 'first-jd': ['r2'],
        one: ['r2'], 'aov-13': [], 'aov-25': ['r2'], 'spent-25': ['r2'],
      });
    } finally {
      await patchRule(R, { merge_window_hours: 0 });
    }
  });

  test('exclude_refunded false: a fully refunded order qualifies with net 0 (its category too)', async () => {
    // Z: z1: 5 days [gift] 100, refunded in full.  z2: 4 days [tea] 3; 3 days [gift] 100, refunded in full.
    const Z = await mkShop();
    await people(Z.key, ['z1', 'z2']);
    await load(Z.key, [ord('z1-1', 'z1', 5, { cats: ['gift'], price: 100 }), ord('z2-1', 'z2', 4, { price: 3 }),
      ord('z2-2', 'z2', 3, { cats: ['gift'], price: 100 })]);
    await refund(Z.key, 'z1-1', 100);
    await refund(Z.key, 'z2-2', 100);
    const segs = {
      'spent-0': C('total_spent', 'eq', 0), 'aov-0': C('average_order_value', 'eq', 0), 'aov-2': C('average_order_value', 'eq', 2),
      'aov-3': C('average_order_value', 'eq', 3), n2: C('order_count', 'eq', 2), gift: C('categories', 'contains', 'gift'),
      'ch-web': C('channels', 'contains', 'web'), 'dsl-3': C('days_since_last_order', 'eq', 3),
    };
    for (const [code, f] of Object.entries(segs)) await create(Z.key, code, f);
    const members = async () => Object.fromEntries(await Promise.all(Object.keys(segs).map(async (k) => [k, await ids(Z.key, k)])));
    // default (exclude_refunded): z1 has no qualifying order (never a member); z2 has one: 3, aov 3,
    // categories {tea}, last 4 days ago; channels {web} from both its orders.
    assert.deepEqual(await members(), {
      'spent-0': [], 'aov-0': [], 'aov-2': [], 'aov-3': ['z2'], n2: [], gift: [], 'ch-web': ['z2'], 'dsl-3': [],
    });
    await patchRule(Z, { exclude_refunded: false });
    // z1: 1 occasion, net 0, aov 0, {gift}; z2: 2 occasions, net 3, aov 1.5 → 2, {tea, gift}, last 3 days ago
    assert.deepEqual(await members(), {
      'spent-0': ['z1'], 'aov-0': ['z1'], 'aov-2': ['z2'], 'aov-3': [], n2: ['z2'], gift: ['z1', 'z2'], 'ch-web': ['z1', 'z2'], 'dsl-3': ['z2'],
    });
  });

  test('a customer created by an order alone (no profile) has no tags and no consent', async () => {
    // B: b1 exists only through its order; b2 was PUT with tag vip and email consent.
    const B = await mkShop();
    await people(B.key, ['b2'], { b2: { tags: ['vip'], consent: { email: { granted: true } } } });
    await load(B.key, [ord('b2-1', 'b2', 2), ord('b1-1', 'b1', 1)]);
    // listing order is creation order: b2 (PUT first), then b1 (created by its order)
    await create(B.key, 'everyone', C('order_count', 'gte', 1));
    assert.deepEqual(await ids(B.key, 'everyone'), ['b2', 'b1']);
    await create(B.key, 'not-vip', { not: C('tags', 'contains', 'vip') });
    assert.deepEqual(await ids(B.key, 'not-vip'), ['b1']);
    await create(B.key, 'no-consent', { not: C('consent', 'contains_any', ['email', 'sms', 'wechat']) });
    assert.deepEqual(await ids(B.key, 'no-consent'), ['b1']);
    await create(B.key, 'any-tag', C('tags', 'contains_any', ['vip', 'x']));
    assert.deepEqual(await ids(B.key, 'any-tag'), ['b2']);
  });

  test('membership is computed at the request: new orders, cancels and tag changes apply at once', async () => {
    // r3 with one order 2 days ago [tea]: in cat-tea, one
    await people(R.key, ['r3']);
    await load(R.key, [ord('r3-1', 'r3', 2, { channel: 'douyin' })]);
    assert.deepEqual(await ids(R.key, 'cat-tea'), ['r1', 'r2', 'r3']);
    assert.deepEqual(await ids(R.key, 'one'), ['r3']);
    await create(R.key, 'tagged', C('tags', 'contains', 'new'));
    assert.equal((await c.get('/v1/segments/tagged', { key: R.key })).body.size, 0);
    const p = await c.put('/v1/customers/r3', { tags: ['new'] }, { key: R.key });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(await ids(R.key, 'tagged'), ['r3']);
    assert.equal((await c.get('/v1/segments/tagged', { key: R.key })).body.size, 1);
    // cancelling r3's only order: no member anywhere
    await cancel(R.key, 'r3-1');
    assert.deepEqual(await ids(R.key, 'tagged'), []);
    assert.deepEqual(await ids(R.key, 'one'), []);
    assert.equal((await c.get('/v1/segments/tagged', { key: R.key })).body.size, 0);
  });
});

// ---------------------------------------------------------------------------
// validation

describe('invalid filters and bodies → 422 validation_failed, nothing stored', () => {
  const KEEP = 'keep';
  const ABSENT = 'absent';
  let keepBody;
  before(async () => {
    keepBody = await create(VAL.key, KEEP, C('tags', 'contains', 'vip'), { name: 'Keep', description: 'unchanged' });
  });

  const F = (filter) => ({ name: 'Bad', filter });
  const str65 = 'a'.repeat(65);
  const distinct = (n) => Array.from({ length: n }, (_, i) => `v${i}`);
  const cond51 = Array.from({ length: 51 }, () => C('order_count', 'gte', 1));
  const ok = C('order_count', 'gte', 1);
  // [label, body | {raw: text}, pointer]
  const cases = [
    // the filter member itself
    ['filter missing', { name: 'Bad' }, '/filter'],
    ['filter null', F(null), '/filter'],
    ['filter array', F([]), '/filter'],
    ['filter string', F('order_count > 1'), '/filter'],
    ['filter number', F(1), '/filter'],
    // {} is no form at all: the pointer is the object or its first missing member
    ['filter empty object', F({}), /^\/filter(\/field)?$/],
    // fields
    ['unknown field', F(C('colour', 'eq', 1)), '/filter/field'],
    ['field in another case', F(C('Order_count', 'eq', 1)), '/filter/field'],
    ['field of the customer record not in the language', F(C('average_order_values', 'eq', 1)), '/filter/field'],
    ['field first_order_categories (not a filter field)', F(C('first_order_categories', 'contains', 'tea')), '/filter/field'],
    ['field number', F(C(1, 'eq', 1)), '/filter/field'],
    ['field null', F(C(null, 'eq', 1)), '/filter/field'],
    ['field missing', F({ op: 'eq', value: 1 }), '/filter/field'],
    // operators
    ['unknown op', F(C('order_count', 'like', 1)), '/filter/op'],
    ['op in another case', F(C('order_count', 'EQ', 1)), '/filter/op'],
    ['op null', F(C('order_count', null, 1)), '/filter/op'],
    ['op missing', F({ field: 'order_count', value: 1 }), '/filter/op'],
    ['contains on a number', F(C('order_count', 'contains', 1)), '/filter/op'],
    ['in on a number', F(C('total_spent', 'in', [1])), '/filter/op'],
    ['eq on tags', F(C('tags', 'eq', 'vip')), '/filter/op'],
    ['in on categories', F(C('categories', 'in', ['tea'])), '/filter/op'],
    ['ne on channels', F(C('channels', 'ne', 'web')), '/filter/op'],
    ['eq on consent', F(C('consent', 'eq', 'email')), '/filter/op'],
    ['lt on first_order_channel', F(C('first_order_channel', 'lt', 'web')), '/filter/op'],
    ['contains on first_order_channel', F(C('first_order_channel', 'contains', 'web')), '/filter/op'],
    ['between on tags', F(C('tags', 'between', ['a', 'b'])), '/filter/op'],
    // numeric values
    ['value string', F(C('order_count', 'eq', '1')), '/filter/value'],
    ['value fraction', F(C('order_count', 'eq', 1.5)), '/filter/value'],
    ['value null', F(C('total_spent', 'gte', null)), '/filter/value'],
    ['value boolean', F(C('total_spent', 'gte', true)), '/filter/value'],
    ['value array for eq', F(C('order_count', 'eq', [1])), '/filter/value'],
    ['value object', F(C('order_count', 'eq', { n: 1 })), '/filter/value'],
    ['value missing', F({ field: 'order_count', op: 'eq' }), '/filter/value'],
    ['10^15 + 1', F(C('total_spent', 'lt', E15 + 1)), '/filter/value'],
    ['−10^15 − 1', F(C('days_since_last_order', 'gt', -E15 - 1)), '/filter/value'],
    ['2^63 − 1', { raw: '{"name":"Bad","filter":{"field":"total_spent","op":"eq","value":9223372036854775807}}' }, '/filter/value'],
    ['−2^63', { raw: '{"name":"Bad","filter":{"field":"total_spent","op":"eq","value":-9223372036854775808}}' }, '/filter/value'],
    ['between a number', F(C('order_count', 'between', 5)), '/filter/value'],
    ['between one item', F(C('order_count', 'between', [1])), '/filter/value'],
    ['between three items', F(C('order_count', 'between', [1, 2, 3])), '/filter/value'],
    ['between empty', F(C('order_count', 'between', [])), '/filter/value'],
    ['between lo > hi', F(C('order_count', 'between', [3, 2])), '/filter/value'],
    ['between lo > hi by one at the range ends', F(C('total_spent', 'between', [E15, E15 - 1])), '/filter/value'],
    ['between object', F(C('order_count', 'between', { lo: 1, hi: 2 })), '/filter/value'],
    ['between hi a string', F(C('order_count', 'between', [1, '2'])), '/filter/value/1'],
    ['between lo a fraction', F(C('order_count', 'between', [1.5, 2])), '/filter/value/0'],
    ['between lo null', F(C('order_count', 'between', [null, 2])), '/filter/value/0'],
    ['between hi 10^15 + 1', F(C('total_spent', 'between', [0, E15 + 1])), '/filter/value/1'],
    ['between lo −10^15 − 1', F(C('total_spent', 'between', [-E15 - 1, 0])), '/filter/value/0'],
    // strings
    ['contains a number', F(C('tags', 'contains', 1)), '/filter/value'],
    ['contains an array', F(C('tags', 'contains', ['vip'])), '/filter/value'],
    ['contains null', F(C('categories', 'contains', null)), '/filter/value'],
    ['contains empty string', F(C('tags', 'contains', '')), '/filter/value'],
    ['contains with a space', F(C('tags', 'contains', 'a b')), '/filter/value'],
    ['contains 65 characters', F(C('categories', 'contains', str65)), '/filter/value'],
    ['contains with @', F(C('tags', 'contains', 'tea@x')), '/filter/value'],
    ['contains non-ASCII', F(C('categories', 'contains', 'thé')), '/filter/value'],
    ['contains with a slash', F(C('channels', 'contains', 'store/jingan')), '/filter/value'],
    ['eq on first_order_channel empty', F(C('first_order_channel', 'eq', '')), '/filter/value'],
    ['ne on first_order_channel an array', F(C('first_order_channel', 'ne', ['web'])), '/filter/value'],
    ['eq on first_order_channel a number', F(C('first_order_channel', 'eq', 1)), '/filter/value'],
    // arrays
    ['contains_any empty', F(C('tags', 'contains_any', [])), '/filter/value'],
    ['contains_all a string', F(C('tags', 'contains_all', 'vip')), '/filter/value'],
    ['in a string', F(C('first_order_channel', 'in', 'web')), '/filter/value'],
    ['in empty', F(C('first_order_channel', 'in', [])), '/filter/value'],
    ['contains_any 101 distinct strings', F(C('categories', 'contains_any', distinct(101))), '/filter/value'],
    ['in 101 distinct strings', F(C('first_order_channel', 'in', distinct(101))), '/filter/value'],
    ['contains_any duplicate → the later one', F(C('tags', 'contains_any', ['tea', 'tea'])), '/filter/value/1'],
    ['contains_all duplicate → the later one', F(C('categories', 'contains_all', ['a', 'b', 'a'])), '/filter/value/2'],
    ['in duplicate → the later one', F(C('first_order_channel', 'in', ['web', 'jd', 'tmall', 'jd'])), '/filter/value/3'],
    ['contains_any empty string item', F(C('tags', 'contains_any', ['ok', ''])), '/filter/value/1'],
    ['contains_any number item', F(C('tags', 'contains_any', ['ok', 1])), '/filter/value/1'],
    ['contains_all null item', F(C('channels', 'contains_all', [null, 'web'])), '/filter/value/0'],
    ['in 65-character item', F(C('first_order_channel', 'in', ['web', str65])), '/filter/value/1'],
    // consent values
    ['consent fax', F(C('consent', 'contains', 'fax')), '/filter/value'],
    ['consent Email', F(C('consent', 'contains', 'Email')), '/filter/value'],
    ['consent empty', F(C('consent', 'contains', '')), '/filter/value'],
    ['consent push in an array', F(C('consent', 'contains_any', ['email', 'push'])), '/filter/value/1'],
    ['consent duplicate', F(C('consent', 'contains_all', ['sms', 'sms'])), '/filter/value/1'],
    ['consent empty array', F(C('consent', 'contains_any', [])), '/filter/value'],
    ['consent a string for contains_all', F(C('consent', 'contains_all', 'email')), '/filter/value'],
    // members of each form
    ['condition with an extra member', F({ ...C('order_count', 'eq', 1), note: 'x' }), '/filter/note'],
    ['condition with a key needing escapes', F({ ...C('order_count', 'eq', 1), 'a/b~c': 1 }), '/filter/a~1b~0c'],
    ['all with an extra member', F({ all: [ok], note: 1 }), '/filter/note'],
    ['all with a key needing escapes', F({ all: [ok], 'x/y': 1 }), '/filter/x~1y'],
    ['any with an extra member', F({ any: [ok], name: 'x' }), '/filter/name'],
    ['not with an extra member', F({ not: ok, note: 1 }), '/filter/note'],
    // all / any / not
    ['all empty', F({ all: [] }), '/filter/all'],
    ['any empty', F({ any: [] }), '/filter/any'],
    ['all a string', F({ all: 'x' }), '/filter/all'],
    ['all an object', F({ all: {} }), '/filter/all'],
    ['any null', F({ any: null }), '/filter/any'],
    ['all with 51 items', F({ all: cond51 }), '/filter/all'],
    ['any with 51 items', F({ any: cond51 }), '/filter/any'],
    ['all: item 1 bad op', F({ all: [ok, C('order_count', 'contains', 1)] }), '/filter/all/1/op'],
    ['all: item 2 bad op (the example of segments2.md)', F({ all: [ok, ok, C('tags', 'gt', 1)] }), '/filter/all/2/op'],
    ['all: item 0 unknown field', F({ all: [C('colour', 'eq', 'red'), ok] }), '/filter/all/0/field'],
    ['all: item a number', F({ all: [ok, 5] }), '/filter/all/1'],
    ['any: item null', F({ any: [ok, null] }), '/filter/any/1'],
    ['any: item an array', F({ any: [[ok]] }), '/filter/any/0'],
    ['any: item empty object', F({ any: [ok, {}] }), /^\/filter\/any\/1(\/field)?$/],
    ['not an array', F({ not: [ok] }), '/filter/not'],
    ['not null', F({ not: null }), '/filter/not'],
    ['not empty object', F({ not: {} }), /^\/filter\/not(\/field)?$/],
    ['not: bad value (the example of segments2.md)', F({ not: C('order_count', 'eq', 'one') }), '/filter/not/value'],
    ['nested: empty any inside all', F({ all: [{ any: [] }] }), '/filter/all/0/any'],
    ['nested: unknown field three levels down', F({ any: [ok, { all: [ok, { not: C('x', 'eq', 1) }] }] }), '/filter/any/1/all/1/not/field'],
    ['nested: duplicate deep down', F({ not: { all: [ok, { any: [C('tags', 'contains_all', ['a', 'a'])] }] } }), '/filter/not/all/1/any/0/value/1'],
    // SQL-looking strings fail the string rule
    ['quote and OR', F(C('tags', 'contains', "x' OR '1'='1")), '/filter/value'],
    ['DROP TABLE', F(C('categories', 'contains', "tea'; DROP TABLE customers; --")), '/filter/value'],
    ['in an array', F(C('categories', 'contains_any', ['tea', "tea'); DELETE FROM orders; --"])), '/filter/value/1'],
    ['channel with a semicolon', F(C('first_order_channel', 'eq', 'web;--')), '/filter/value'],
    ['channel with parentheses', F(C('first_order_channel', 'in', ['web', 'jd) OR (1=1'])), '/filter/value/1'],
    ['backslash', F(C('tags', 'contains', 'a\\')), '/filter/value'],
    ['percent wildcard', F(C('tags', 'contains', 'vi%')), '/filter/value'],
    ['star', F(C('tags', 'contains', '*')), '/filter/value'],
    ['field with SQL', F(C('order_count; DROP TABLE customers', 'eq', 1)), '/filter/field'],
    ['field as a column expression', F(C('1=1 OR order_count', 'eq', 1)), '/filter/field'],
    ['op with SQL', F(C('order_count', '= 1 OR 1 =', 1)), '/filter/op'],
    ['op as a SQL operator', F(C('order_count', '>=', 1)), '/filter/op'],
    ['consent with SQL', F(C('consent', 'contains', "email' OR 'a'='a")), '/filter/value'],
    // the body around the filter
    ['unknown body member', { name: 'Bad', filter: ok, kind: 'custom' }, '/kind'],
    ['code in the body', { name: 'Bad', filter: ok, code: 'other' }, '/code'],
    ['size in the body', { name: 'Bad', filter: ok, size: 3 }, '/size'],
    ['name missing', { filter: ok }, '/name'],
    ['name empty', { name: '', filter: ok }, '/name'],
    ['name null', { name: null, filter: ok }, '/name'],
    ['name a number', { name: 5, filter: ok }, '/name'],
    ['name 201 characters', { name: 'n'.repeat(201), filter: ok }, '/name'],
    ['name 201 CJK characters', { name: '茶'.repeat(201), filter: ok }, '/name'],
    ['description 1001 characters', { name: 'Bad', description: 'd'.repeat(1001), filter: ok }, '/description'],
    ['description 1001 CJK characters', { name: 'Bad', description: '茶'.repeat(1001), filter: ok }, '/description'],
    ['description a number', { name: 'Bad', description: 5, filter: ok }, '/description'],
    ['description an object', { name: 'Bad', description: {}, filter: ok }, '/description'],
  ];
  for (const [label, body, pointer] of cases) {
    test(`${label} → ${pointer}`, async () => {
      for (const code of [ABSENT, KEEP]) {
        const r = body.raw !== undefined
          ? await c.req('PUT', `/v1/segments/${code}`, { key: VAL.key, rawBody: body.raw })
          : await putSeg(VAL.key, code, body);
        assertProblem(r, 422, 'validation_failed', pointer);
      }
      assertProblem(await c.get(`/v1/segments/${ABSENT}`, { key: VAL.key }), 404, 'not_found');
      const g = await c.get(`/v1/segments/${KEEP}`, { key: VAL.key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body, keepBody, 'the stored segment is unchanged');
    });
  }

  test('depth 9 is rejected at the ninth level; depth 8 next to it is accepted', async () => {
    const leaf = C('tags', 'contains', 'vip');
    // eight nots around a condition: the condition is level 9
    const deep = [
      [notChain(8, leaf), `/filter${'/not'.repeat(8)}`],
      // eight all/any wrappers: the condition is level 9
      [allAnyChain(9, leaf), `/filter${'/all/0/any/0'.repeat(4)}`],
      // a level-9 all (well-formed below it) in the second branch of an any
      [{ any: [leaf, notChain(6, { all: [{ any: [leaf] }] })] }, `/filter/any/1${'/not'.repeat(6)}/all/0`],
      // the same with the level-9 object a condition
      [{ any: [leaf, notChain(6, { all: [leaf] })] }, `/filter/any/1${'/not'.repeat(6)}/all/0`],
    ];
    for (const [filter, pointer] of deep) {
      for (const code of [ABSENT, KEEP]) assertProblem(await putSeg(VAL.key, code, F(filter)), 422, 'validation_failed', pointer);
    }
    assertProblem(await c.get(`/v1/segments/${ABSENT}`, { key: VAL.key }), 404, 'not_found');
    assert.deepEqual((await c.get(`/v1/segments/${KEEP}`, { key: VAL.key })).body, keepBody);
    // the same shapes one level shallower are fine
    // any 1, nots 2..5, all 6, any 7, leaf 8; any 1, nots 2..6, all 7, leaf 8
    for (const [i, filter] of [notChain(7, leaf), allAnyChain(8, leaf), { any: [leaf, notChain(4, { all: [{ any: [leaf] }] })] },
      { any: [leaf, notChain(5, { all: [leaf] })] }].entries()) {
      const r = await putSeg(VAL.key, `depth8-${i}`, F(filter));
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.body.filter, filter);
    }
  });

  test('101 conditions are rejected at the 101st; 100 are accepted', async () => {
    const fifty = () => Array.from({ length: 50 }, () => C('order_count', 'gte', 1));
    const bad = [
      // two full groups and one more condition: the 101st is /filter/all/2
      [{ all: [{ all: fifty() }, { all: fifty() }, C('tags', 'contains', 'vip')] }, '/filter/all/2'],
      // the 101st inside a not
      [{ any: [{ all: fifty() }, { all: fifty() }, { not: C('tags', 'contains', 'vip') }] }, '/filter/any/2/not'],
    ];
    for (const [filter, pointer] of bad) {
      for (const code of [ABSENT, KEEP]) assertProblem(await putSeg(VAL.key, code, F(filter)), 422, 'validation_failed', pointer);
    }
    assertProblem(await c.get(`/v1/segments/${ABSENT}`, { key: VAL.key }), 404, 'not_found');
    assert.deepEqual((await c.get(`/v1/segments/${KEEP}`, { key: VAL.key })).body, keepBody);
    const r = await putSeg(VAL.key, 'hundred', F({ all: [{ all: fifty() }, { all: fifty() }] }));
    assert.equal(r.status, 201, r.text);
  });

  test('limits themselves are accepted: 10^15, −10^15, 64-character strings, 100 distinct values, 200/1000 CJK characters', async () => {
    const goods = [
      F(C('total_spent', 'lte', E15)),
      F(C('total_spent', 'gte', -E15)),
      F(C('days_since_first_order', 'between', [-E15, E15])),
      F(C('order_count', 'between', [5, 5])),
      F(C('tags', 'contains', 'a'.repeat(64))),
      F(C('tags', 'contains', 'A.z_0:9-')),
      F(C('categories', 'contains_any', distinct(100))),
      F(C('first_order_channel', 'in', distinct(100))),
      F(C('consent', 'contains_all', ['wechat', 'sms', 'email'])),
      { name: 'n'.repeat(200), filter: ok },
      { name: '茶'.repeat(200), description: '茶'.repeat(1000), filter: ok },
      { name: 'x', description: 'd'.repeat(1000), filter: ok },
      { name: 'x', description: null, filter: ok },
      // members in any order
      { filter: { value: 1, op: 'eq', field: 'order_count' }, description: 'keys in another order', name: 'x' },
    ];
    for (const [i, body] of goods.entries()) {
      const r = await putSeg(VAL.key, `good-${i}`, body);
      assert.equal(r.status, 201, `${JSON.stringify(body).slice(0, 200)}: ${r.text}`);
      assertCustom(r.body, `good-${i}`);
      assert.deepEqual(r.body.filter, body.filter);
      assert.equal(r.body.name, body.name);
      assert.equal(r.body.description, body.description ?? null);
    }
  });

  test('a NUL character in a filter string is bad input (400 or 422 /filter/value), never stored', async () => {
    for (const code of [ABSENT, KEEP]) {
      const r = await c.req('PUT', `/v1/segments/${code}`, { key: VAL.key, rawBody: '{"name":"Bad","filter":{"field":"tags","op":"contains","value":"vip\\u0000"}}' });
      assert.ok([400, 422].includes(r.status), `${r.status} ${r.text}`);
      if (r.status === 422) assertProblem(r, 422, 'validation_failed', '/filter/value');
    }
    assertProblem(await c.get(`/v1/segments/${ABSENT}`, { key: VAL.key }), 404, 'not_found');
    assert.deepEqual((await c.get(`/v1/segments/${KEEP}`, { key: VAL.key })).body, keepBody);
  });

  test('duplicate JSON keys (in the body or the filter) → 400 malformed_json; nothing stored', async () => {
    for (const raw of [
      '{"name":"a","name":"b","filter":{"field":"order_count","op":"eq","value":1}}',
      '{"name":"a","filter":{"field":"tags","field":"consent","op":"contains","value":"email"}}',
      '{"name":"a","filter":{"all":[{"field":"order_count","op":"eq","value":1,"value":2}]}}',
    ]) {
      for (const code of [ABSENT, KEEP]) {
        assertProblem(await c.req('PUT', `/v1/segments/${code}`, { key: VAL.key, rawBody: raw }), 400, 'malformed_json');
      }
    }
    assertProblem(await c.get(`/v1/segments/${ABSENT}`, { key: VAL.key }), 404, 'not_found');
    assert.deepEqual((await c.get(`/v1/segments/${KEEP}`, { key: VAL.key })).body, keepBody);
  });
});

describe('SQL-looking input is inert (shop S)', () => {
  test('strings that pass the rule match only literally: --, NULL, :1, OR, 1.0, tea_x', async () => {
    // s4 has the tag "--", s5 the tag "NULL"; nobody has ":1", "OR", "null", "1.0".
    await expectFilter(S, C('tags', 'contains', '--'), ['s4']);
    await expectFilter(S, C('tags', 'contains', 'NULL'), ['s5']);
    await expectFilter(S, C('tags', 'contains', 'null'), []);
    await expectFilter(S, C('tags', 'contains_any', [':1', 'OR', '1.0', '0x27', '-1']), []);
    await expectFilter(S, { not: C('tags', 'contains_any', [':1', 'OR', '--']) }, ['s1', 's2', 's3', 's5']);
    await expectFilter(S, C('categories', 'contains', '--'), []);
    await expectFilter(S, C('first_order_channel', 'in', ['--', 'web']), ['s1', 's3', 's5']);
    await expectFilter(S, C('first_order_channel', 'ne', '--'), S_ALL);
  });

  test('rejected injections changed nothing: the customers and their facts are intact', async () => {
    const attempts = [
      C('tags', 'contains', "vip' OR '1'='1"),
      C('categories', 'contains_any', ["tea'); DROP TABLE customers; --"]),
      C('first_order_channel', 'eq', "web'; UPDATE orders SET total = 0; --"),
      C("order_count) OR (1=1", 'eq', 1),
    ];
    for (const f of attempts) assertProblem(await putSeg(S.key, 'inject', { name: 'x', filter: f }), 422, 'validation_failed');
    assertProblem(await c.get('/v1/segments/inject', { key: S.key }), 404, 'not_found');
    const r = await c.get('/v1/customers?limit=200', { key: S.key });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.items.map((x) => x.id), S_CUSTOMERS);
    assert.equal(r.body.items.find((x) => x.id === 's1').facts.total_spent, 30000);
    await expectFilter(S, C('order_count', 'gte', 1), S_ALL);
  });

  test('a name and description full of SQL are stored and returned verbatim', async () => {
    const name = "Robert'); DROP TABLE segments; --";
    const description = 'x" OR 1=1; SELECT pg_sleep(5); -- \\ \' % _ $1 :1 \u00e9\u8336';
    const made = await create(S.key, 'bobby', C('tags', 'contains', 'vip'), { name, description });
    assert.equal(made.name, name);
    assert.equal(made.description, description);
    const g = await c.get('/v1/segments/bobby', { key: S.key });
    assert.equal(g.status, 200, g.text);
    assert.ok(g.ms < 4000, `answered in ${g.ms} ms`);
    assert.equal(g.body.name, name);
    assert.equal(g.body.description, description);
    assert.deepEqual(await ids(S.key, 'bobby'), ['s1', 's4']);
    const all = await customs(S.key);
    assert.ok(all.some((s) => s.code === 'bobby' && s.name === name));
  });
});

// ---------------------------------------------------------------------------
// PUT, DELETE, GET

describe('PUT creates, then replaces', () => {
  test('201 with Location, then 200: created_at kept, updated_at later, name/description/filter/size replaced', async () => {
    const P = await mkShop();
    await people(P.key, ['p1', 'p2', 'p3'], {
      p1: { tags: ['tea'] }, p2: { tags: ['tea', 'vip'] }, p3: { tags: ['vip'] },
    });
    await load(P.key, [ord('p1-1', 'p1', 3), ord('p2-1', 'p2', 2), ord('p3-1', 'p3', 1)]);
    const r1 = await putSeg(P.key, 'tea-lovers', { name: 'Tea lovers', description: 'Tagged tea', filter: C('tags', 'contains', 'tea') });
    assert.equal(r1.status, 201, r1.text);
    assert.equal(r1.headers.location, '/v1/segments/tea-lovers');
    assertCustom(r1.body, 'tea-lovers');
    // p1, p2
    assert.deepEqual({ ...r1.body, created_at: null, updated_at: null }, {
      code: 'tea-lovers', kind: 'custom', name: 'Tea lovers', description: 'Tagged tea',
      filter: C('tags', 'contains', 'tea'), size: 2, as_of: TODAY, created_at: null, updated_at: null,
    });
    assert.deepEqual(await ids(P.key, 'tea-lovers'), ['p1', 'p2']);
    const g1 = await c.get('/v1/segments/tea-lovers', { key: P.key });
    assert.deepEqual(g1.body, r1.body);

    // replace: no description (→ null), another filter: vip → p2, p3
    const r2 = await putSeg(P.key, 'tea-lovers', { name: 'VIPs', filter: C('tags', 'contains', 'vip') });
    assert.equal(r2.status, 200, r2.text);
    assertCustom(r2.body, 'tea-lovers');
    assert.equal(r2.body.created_at, r1.body.created_at, 'created_at is kept');
    assert.ok(tsMicros(r2.body.updated_at) > tsMicros(r1.body.updated_at), `updated_at moves on: ${r1.body.updated_at} → ${r2.body.updated_at}`);
    assert.deepEqual({ ...r2.body, created_at: null, updated_at: null }, {
      code: 'tea-lovers', kind: 'custom', name: 'VIPs', description: null,
      filter: C('tags', 'contains', 'vip'), size: 2, as_of: TODAY, created_at: null, updated_at: null,
    });
    assert.deepEqual(await ids(P.key, 'tea-lovers'), ['p2', 'p3']);
    assert.deepEqual((await c.get('/v1/segments/tea-lovers', { key: P.key })).body, r2.body);

    // replace again, description null explicitly, filter matching one: p3 (vip, not tea)
    const f3 = { all: [C('tags', 'contains', 'vip'), { not: C('tags', 'contains', 'tea') }] };
    const r3 = await putSeg(P.key, 'tea-lovers', { name: 'VIP only', description: null, filter: f3 });
    assert.equal(r3.status, 200, r3.text);
    assert.equal(r3.body.created_at, r1.body.created_at);
    assert.ok(tsMicros(r3.body.updated_at) > tsMicros(r2.body.updated_at));
    assert.equal(r3.body.size, 1);
    assert.equal(r3.body.description, null);
    assert.deepEqual(r3.body.filter, f3);
    assert.deepEqual(await ids(P.key, 'tea-lovers'), ['p3']);

    // the same body again: still 200, created_at kept
    const r4 = await putSeg(P.key, 'tea-lovers', { name: 'VIP only', description: null, filter: f3 });
    assert.equal(r4.status, 200, r4.text);
    assert.equal(r4.body.created_at, r1.body.created_at);
    assert.ok(tsMicros(r4.body.updated_at) >= tsMicros(r3.body.updated_at));
    assert.equal(r4.headers.location, undefined, 'no Location on a replace');

    // a failed replace leaves the last one
    assertProblem(await putSeg(P.key, 'tea-lovers', { name: 'x', filter: { all: [] } }), 422, 'validation_failed', '/filter/all');
    assert.deepEqual((await c.get('/v1/segments/tea-lovers', { key: P.key })).body, r4.body);
    // one custom segment in the list
    assert.deepEqual((await customs(P.key)).map((s) => s.code), ['tea-lovers']);
  });

  for (const code of BUILT_INS) {
    test(`PUT and DELETE on the built-in ${code} → 409 conflict; the built-in is unchanged`, async () => {
      const before1 = await c.get(`/v1/segments/${code}`, { key: W.key });
      assertProblem(await putSeg(W.key, code, { name: 'Mine', filter: C('order_count', 'gte', 1) }), 409, 'conflict');
      assertProblem(await c.del(`/v1/segments/${code}`, { key: W.key }), 409, 'conflict');
      const after1 = await c.get(`/v1/segments/${code}`, { key: W.key });
      assert.equal(after1.status, 200, after1.text);
      assert.deepEqual(after1.body, before1.body);
      assert.equal(after1.body.kind, 'built-in');
    });
  }

  const BAD_CODES = [
    ['Tea', 'upper case'], ['tea_lovers', 'underscore'], ['tea.lovers', 'dot'], ['tea:x', 'colon'],
    ['tea%20lovers', 'space'], ['t%C3%A9', 'non-ASCII'], ['a'.repeat(65), '65 characters'],
    ["x'%3B--", 'quote'], ['tea%2Flovers', 'encoded slash'], ['VIP', 'a built-in in another case'],
  ];
  for (const [code, what] of BAD_CODES) {
    test(`bad code (${what}) → PUT and DELETE 400 /path/code, GET 404`, async () => {
      const r = await putSeg(W.key, code, { name: 'x', filter: C('order_count', 'gte', 1) });
      assertProblem(r, 400, 'invalid_parameter', '/path/code');
      assertProblem(await c.del(`/v1/segments/${code}`, { key: W.key }), 400, 'invalid_parameter', '/path/code');
      assertProblem(await c.get(`/v1/segments/${code}`, { key: W.key }), 404, 'not_found');
      assertProblem(await c.get(`/v1/segments/${code}/customers`, { key: W.key }), 404, 'not_found');
    });
  }

  test('good codes: 1 character, 64 characters, digits and hyphens only', async () => {
    for (const code of ['x', '7', '-', 'a'.repeat(64), '0-9-a-z', '--tea--']) {
      await create(W.key, code, C('order_count', 'gte', 1));
      const g = await c.get(`/v1/segments/${code}`, { key: W.key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(await ids(W.key, code), ['w1', 'w2']);
      const d = await c.del(`/v1/segments/${code}`, { key: W.key });
      assert.equal(d.status, 204, d.text);
    }
  });
});

describe('DELETE', () => {
  test('204 with no body, then 404 everywhere; the code can be created anew', async () => {
    const D = await mkShop();
    await people(D.key, ['d1']);
    await load(D.key, [ord('d1-1', 'd1', 1)]);
    const first = await create(D.key, 'gone', C('order_count', 'eq', 1));
    await create(D.key, 'stays', C('order_count', 'eq', 1));
    const d = await c.del('/v1/segments/gone', { key: D.key });
    assert.equal(d.status, 204, d.text);
    assert.equal(d.text, '');
    assertProblem(await c.get('/v1/segments/gone', { key: D.key }), 404, 'not_found');
    assertProblem(await c.get('/v1/segments/gone/customers', { key: D.key }), 404, 'not_found');
    assertProblem(await c.del('/v1/segments/gone', { key: D.key }), 404, 'not_found');
    assert.deepEqual((await customs(D.key)).map((s) => s.code), ['stays']);
    // created anew: 201 again
    const again = await create(D.key, 'gone', C('order_count', 'eq', 2));
    assert.equal(again.size, 0);
    assert.ok(tsMicros(again.created_at) > tsMicros(first.created_at), 'a new created_at');
    assert.deepEqual((await customs(D.key)).map((s) => s.code), ['gone', 'stays']);
  });

  test('an unknown valid code → 404 not_found', async () => {
    assertProblem(await c.del('/v1/segments/never-made', { key: W.key }), 404, 'not_found');
  });
});

describe('GET /v1/segments, /{code}, /{code}/customers with custom segments', () => {
  test('built-ins first, then the custom ones by code in byte order; each equals its GET', async () => {
    const L = await mkShop();
    await people(L.key, ['l1', 'l2', 'l3'], { l1: { tags: ['a'] }, l2: { tags: ['b'] }, l3: { tags: ['a', 'b'] } });
    await load(L.key, [ord('l1-1', 'l1', 1), ord('l2-1', 'l2', 1), ord('l3-1', 'l3', 1)]);
    // sizes by hand: tag a → l1 l3 (2); tag b → l2 l3 (2); both → l3 (1); none → 0
    const defs = {
      z: [C('tags', 'contains', 'a'), 2],
      'a-b': [C('tags', 'contains_all', ['a', 'b']), 1],
      ab: [C('tags', 'contains_any', ['a', 'b']), 3],
      '0x': [C('tags', 'contains', 'b'), 2],
      a: [C('tags', 'contains', 'c'), 0],
      9: [{ not: C('tags', 'contains', 'a') }, 1],
      '-': [C('order_count', 'gte', 1), 3],
    };
    for (const [code, [f]] of Object.entries(defs)) await create(L.key, code, f);
    // byte order: '-' 0x2d < digits < letters; 'a' < 'a-b' < 'ab'
    const order = ['-', '0x', '9', 'a', 'a-b', 'ab', 'z'];
    const segs = await segments(L.key);
    assert.deepEqual(segs.map((s) => s.code), [...BUILT_INS, ...order]);
    for (const s of segs.slice(5)) {
      assert.equal(s.size, defs[s.code][1], `size of ${s.code}`);
      assert.deepEqual(s.filter, defs[s.code][0]);
      assert.equal(s.size, (await ids(L.key, s.code)).length, `size of ${s.code} equals its listed members`);
      const one = await c.get(`/v1/segments/${s.code}`, { key: L.key });
      assert.equal(one.status, 200, one.text);
      assert.deepEqual(one.body, s, `GET /v1/segments/${s.code} equals its entry`);
    }
    // the built-in entries are unaffected: l1..l3 bought yesterday → all in the window
    assert.equal(segs[0].size, 3);
    assert.ok(!('filter' in segs[0]));
    // after a DELETE the others keep their order
    assert.equal((await c.del('/v1/segments/a', { key: L.key })).status, 204);
    assert.deepEqual((await customs(L.key)).map((s) => s.code), ['-', '0x', '9', 'a-b', 'ab', 'z']);
  });

  test('a segment matching nobody: size 0, empty list', async () => {
    await create(W.key, 'nobody', C('order_count', 'gt', 100));
    assert.equal((await c.get('/v1/segments/nobody', { key: W.key })).body.size, 0);
    const r = await c.get('/v1/segments/nobody/customers', { key: W.key });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { items: [], next_cursor: null });
  });

  test('items: profile, consent as booleans, facts, reason null; listed in customer creation order', async () => {
    // everyone: q1..q7 although their orders were loaded q7 first
    const made = await create(Q.key, 'everyone', C('order_count', 'gte', 1));
    assert.equal(made.size, 7);
    const items = await list(Q.key, 'everyone');
    assert.deepEqual(items.map((x) => x.id), Q_CUSTOMERS);
    assert.deepEqual({ ...items[0], facts: undefined }, {
      id: 'q1', name: 'Li Wei', email: 'li.wei@example.com', phone: '+8613800138000', tags: ['tea', 'vip'],
      consent: { email: true, sms: false, wechat: false }, facts: undefined, reason: null,
    });
    assert.deepEqual({
      n: items[0].facts.order_count, first: tsMicros(items[0].facts.first_order_at), last: tsMicros(items[0].facts.last_order_at),
      dsf: items[0].facts.days_since_first_order, dsl: items[0].facts.days_since_last_order, spent: items[0].facts.total_spent,
    }, { n: 1, first: us(at(7)), last: us(at(7)), dsf: 7, dsl: 7, spent: 10000 });
    // q5: no profile → nulls and []
    assert.deepEqual({ ...items[4], facts: undefined }, {
      id: 'q5', name: null, email: null, phone: null, tags: [],
      consent: { email: false, sms: false, wechat: false }, facts: undefined, reason: null,
    });
    assert.deepEqual(items.map((x) => x.facts.days_since_last_order), [7, 6, 5, 4, 3, 2, 1]);
  });

  test('limit: pages of 2, 2, 2, 1; of 1; 200 and 7 in one page; default 50', async () => {
    const { items, sizes } = await listPages(Q.key, 'everyone', { limit: '2' });
    assert.deepEqual(sizes, [2, 2, 2, 1]);
    assert.deepEqual(items.map((x) => x.id), Q_CUSTOMERS);
    const one = await listPages(Q.key, 'everyone', { limit: '1' });
    assert.deepEqual(one.sizes, [1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(one.items.map((x) => x.id), Q_CUSTOMERS);
    for (const q of ['?limit=200', '?limit=7', '']) {
      const r = await c.get(`/v1/segments/everyone/customers${q}`, { key: Q.key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.items.map((x) => x.id), Q_CUSTOMERS);
      if (q !== '?limit=7') assert.equal(r.body.next_cursor, null);
      else if (r.body.next_cursor !== null) {
        const n = await c.get(`/v1/segments/everyone/customers?limit=7&cursor=${encodeURIComponent(r.body.next_cursor)}`, { key: Q.key });
        assert.deepEqual(n.body, { items: [], next_cursor: null });
      }
    }
    // vip-tagged: q1, q2, q6 → pages of 2: [q1 q2] [q6]
    await create(Q.key, 'vips', C('tags', 'contains', 'vip'));
    const v = await listPages(Q.key, 'vips', { limit: '2' });
    assert.deepEqual(v.sizes, [2, 1]);
    assert.deepEqual(v.items.map((x) => x.id), ['q1', 'q2', 'q6']);
  });

  test('consent= narrows a custom segment; with a consent filter it intersects', async () => {
    assert.deepEqual(await ids(Q.key, 'everyone', { consent: 'email' }), ['q1', 'q3', 'q6', 'q7']);
    assert.deepEqual(await ids(Q.key, 'everyone', { consent: 'sms' }), ['q2', 'q3', 'q7']);
    assert.deepEqual(await ids(Q.key, 'everyone', { consent: 'wechat', limit: '1' }), ['q4', 'q6', 'q7']);
    // sms consent {q2, q3, q7} listed with consent=email → q3, q7
    await create(Q.key, 'sms-ok', C('consent', 'contains', 'sms'));
    assert.deepEqual(await ids(Q.key, 'sms-ok', { consent: 'email' }), ['q3', 'q7']);
    // vips {q1, q2, q6} with consent=wechat → q6
    assert.deepEqual(await ids(Q.key, 'vips', { consent: 'wechat' }), ['q6']);
  });

  test('fields= subset: id always, only the named members; reason null', async () => {
    const full = await list(Q.key, 'everyone');
    for (const fields of [['name'], ['reason'], ['facts', 'consent'], ['tags', 'phone', 'reason'], ['email', 'name', 'phone', 'tags', 'consent', 'facts', 'reason']]) {
      const { items } = await listPages(Q.key, 'everyone', { fields: fields.join(',') }, fields);
      assert.deepEqual(items.map((x) => x.id), Q_CUSTOMERS, `fields=${fields}`);
      items.forEach((it, i) => {
        for (const f of fields) assert.deepEqual(it[f], full[i][f], `fields=${fields}: ${it.id}.${f}`);
      });
    }
    const { items } = await listPages(Q.key, 'vips', { fields: 'reason', limit: '2', consent: 'email' }, ['reason']);
    assert.deepEqual(items, [{ id: 'q1', reason: null }, { id: 'q6', reason: null }]);
  });

  test('bad query parameters on a custom code → 400 /query/<name>', async () => {
    for (const [q, name] of [['limit=0', 'limit'], ['limit=201', 'limit'], ['consent=fax', 'consent'], ['fields=foo', 'fields'],
      ['fields=name,name', 'fields'], ['cursor=nope', 'cursor'], ['foo=1', 'foo'], ['filter=x', 'filter']]) {
      assertProblem(await c.get(`/v1/segments/everyone/customers?${q}`, { key: Q.key }), 400, 'invalid_parameter', `/query/${name}`);
    }
    assertProblem(await c.get('/v1/segments/everyone?fields=name', { key: Q.key }), 400, 'invalid_parameter', '/query/fields');
    assertProblem(await c.get('/v1/segments?kind=custom', { key: Q.key }), 400, 'invalid_parameter', '/query/kind');
  });

  test('other methods → 405 with the documented Allow', async () => {
    const allow = (r) => r.headers.allow.split(',').map((s) => s.trim()).sort();
    for (const method of ['POST', 'PATCH']) {
      const r = await c.req(method, '/v1/segments/everyone', { key: Q.key, body: {} });
      assertProblem(r, 405, 'method_not_allowed');
      assert.deepEqual(allow(r), ['DELETE', 'GET', 'PUT']);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const path of ['/v1/segments', '/v1/segments/everyone/customers']) {
        const r = await c.req(method, path, { key: Q.key, body: method === 'DELETE' ? undefined : {} });
        assertProblem(r, 405, 'method_not_allowed');
        assert.deepEqual(allow(r), ['GET'], `${method} ${path}`);
      }
    }
  });
});

describe('erased customers are never members', () => {
  test('erasure removes a customer from every custom segment, even one its emptied profile would match', async () => {
    // E: e1 tags [vip] email; e2 no tags; e3 tags [vip]; e4 tags [vip], no orders. One order each for e1..e3.
    const E = await mkShop();
    await people(E.key, ['e1', 'e2', 'e3', 'e4'], {
      e1: { tags: ['vip'], consent: { email: { granted: true } } }, e2: {}, e3: { tags: ['vip'] }, e4: { tags: ['vip'] },
    });
    await load(E.key, [ord('e1-1', 'e1', 3), ord('e2-1', 'e2', 2), ord('e3-1', 'e3', 1)]);
    await create(E.key, 'all-buyers', C('order_count', 'gte', 1)); // e1 e2 e3 (not e4: no orders)
    await create(E.key, 'not-vip', { not: C('tags', 'contains', 'vip') }); // e2
    await create(E.key, 'no-email', { not: C('consent', 'contains', 'email') }); // e2 e3
    await create(E.key, 'vips', C('tags', 'contains', 'vip')); // e1 e3
    const sizes = async () => Object.fromEntries((await customs(E.key)).map((s) => [s.code, s.size]));
    assert.deepEqual(await sizes(), { 'all-buyers': 3, 'no-email': 2, 'not-vip': 1, vips: 2 });

    assert.equal((await c.del('/v1/customers/e1', { key: E.key })).status, 204);
    // e1 is erased: its tags are [] and its consent withdrawn, which not-vip and no-email would
    // match — but an erased customer is never a member.
    assert.deepEqual(await ids(E.key, 'all-buyers'), ['e2', 'e3']);
    assert.deepEqual(await ids(E.key, 'not-vip'), ['e2']);
    assert.deepEqual(await ids(E.key, 'no-email'), ['e2', 'e3']);
    assert.deepEqual(await ids(E.key, 'vips'), ['e3']);
    assert.deepEqual(await sizes(), { 'all-buyers': 2, 'no-email': 2, 'not-vip': 1, vips: 1 });
    // a segment created after the erasure does not see e1 either
    await create(E.key, 'late', C('first_order_channel', 'eq', 'web')); // e2 e3
    assert.deepEqual(await ids(E.key, 'late'), ['e2', 'e3']);

    // a PUT restores e1 (its orders are still there): it is a member again
    const p = await c.put('/v1/customers/e1', { tags: ['vip'] }, { key: E.key });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(await ids(E.key, 'all-buyers'), ['e1', 'e2', 'e3']);
    assert.deepEqual(await ids(E.key, 'vips'), ['e1', 'e3']);
    assert.deepEqual(await ids(E.key, 'no-email'), ['e1', 'e2', 'e3']);
  });
});

// ---------------------------------------------------------------------------
// scopes and isolation

describe('authentication and scopes', () => {
  before(async () => {
    await create(W.key, 'scoped', C('order_count', 'gte', 1));
  });

  test('PUT: storefront, readonly, platform → 403; no key → 401; nothing stored', async () => {
    const body = { name: 'x', filter: C('order_count', 'gte', 1) };
    for (const code of ['not-made', 'scoped']) {
      for (const key of [W.keys.storefront, W.keys.readonly, svc.platformKey]) {
        assertProblem(await putSeg(key, code, body), 403, 'forbidden');
      }
      assertProblem(await c.put(`/v1/segments/${code}`, body), 401, 'unauthenticated');
    }
    assertProblem(await c.get('/v1/segments/not-made', { key: W.key }), 404, 'not_found');
    assert.equal((await c.get('/v1/segments/scoped', { key: W.key })).body.name, 'Segment scoped');
  });

  test('DELETE: storefront, readonly, platform → 403; no key → 401; the segment stays', async () => {
    for (const key of [W.keys.storefront, W.keys.readonly, svc.platformKey]) {
      assertProblem(await c.del('/v1/segments/scoped', { key }), 403, 'forbidden');
    }
    assertProblem(await c.del('/v1/segments/scoped'), 401, 'unauthenticated');
    assert.equal((await c.get('/v1/segments/scoped', { key: W.key })).status, 200);
  });

  test('403 before 404 and 409', async () => {
    for (const key of [W.keys.storefront, W.keys.readonly, svc.platformKey]) {
      assertProblem(await putSeg(key, 'vip', { name: 'x', filter: C('order_count', 'gte', 1) }), 403, 'forbidden');
      assertProblem(await c.del('/v1/segments/vip', { key }), 403, 'forbidden');
      assertProblem(await c.del('/v1/segments/never-made', { key }), 403, 'forbidden');
      assertProblem(await putSeg(key, 'x', { name: 'x', filter: { all: [] } }), 403, 'forbidden');
    }
    for (const key of [W.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get('/v1/segments/never-made', { key }), 403, 'forbidden');
      assertProblem(await c.get('/v1/segments/never-made/customers', { key }), 403, 'forbidden');
    }
  });

  for (const path of ['/v1/segments', '/v1/segments/scoped', '/v1/segments/scoped/customers?limit=1']) {
    test(`${path}: admin and readonly 200 (same answer); storefront and platform 403; no key 401`, async () => {
      const a = await c.get(path, { key: W.keys.admin });
      const ro = await c.get(path, { key: W.keys.readonly });
      assert.equal(a.status, 200, a.text);
      assert.equal(ro.status, 200, ro.text);
      if (a.body.next_cursor) assert.deepEqual(ro.body.items, a.body.items);
      else assert.deepEqual(ro.body, a.body);
      assertProblem(await c.get(path, { key: W.keys.storefront }), 403, 'forbidden');
      assertProblem(await c.get(path, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(path), 401, 'unauthenticated');
    });
  }
});

describe('isolation between shops', () => {
  test('the same code in two shops: each its own filter, members, timestamps; DELETE touches one', async () => {
    // I1: u1 [a], u2 [b], u3 []      I2: u1 [b], u2 [a], u3 [a]   (one order each, same ids)
    const I1 = await mkShop();
    const I2 = await mkShop();
    await people(I1.key, ['u1', 'u2', 'u3'], { u1: { tags: ['a'] }, u2: { tags: ['b'] }, u3: {} });
    await people(I2.key, ['u1', 'u2', 'u3'], { u1: { tags: ['b'] }, u2: { tags: ['a'] }, u3: { tags: ['a'] } });
    for (const s of [I1, I2]) await load(s.key, [ord('u1-1', 'u1', 1), ord('u2-1', 'u2', 2), ord('u3-1', 'u3', 3)]);

    // the same filter, tag a: I1 → u1; I2 → u2, u3
    const m1 = await create(I1.key, 'same', C('tags', 'contains', 'a'), { name: 'One' });
    const m2 = await create(I2.key, 'same', C('tags', 'contains', 'a'), { name: 'Two' });
    assert.equal(m1.size, 1);
    assert.equal(m2.size, 2);
    assert.deepEqual(await ids(I1.key, 'same'), ['u1']);
    assert.deepEqual(await ids(I2.key, 'same'), ['u2', 'u3']);
    assert.equal((await c.get('/v1/segments/same', { key: I1.key })).body.name, 'One');
    assert.equal((await c.get('/v1/segments/same', { key: I2.key })).body.name, 'Two');

    // replacing in I2 does not touch I1
    const r = await putSeg(I2.key, 'same', { name: 'Two b', filter: C('tags', 'contains', 'b') });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(await ids(I2.key, 'same'), ['u1']);
    assert.deepEqual((await c.get('/v1/segments/same', { key: I1.key })).body, m1);

    // a code of I1 only: 404 in I2 for GET and DELETE; PUT in I2 creates (201)
    await create(I1.key, 'only-one', C('order_count', 'gte', 1));
    assertProblem(await c.get('/v1/segments/only-one', { key: I2.key }), 404, 'not_found');
    assertProblem(await c.get('/v1/segments/only-one/customers', { key: I2.key }), 404, 'not_found');
    assertProblem(await c.del('/v1/segments/only-one', { key: I2.key }), 404, 'not_found');
    assert.deepEqual((await customs(I2.key)).map((s) => s.code), ['same']);
    assert.deepEqual((await customs(I1.key)).map((s) => s.code), ['only-one', 'same']);

    // DELETE in I1 leaves I2's
    assert.equal((await c.del('/v1/segments/same', { key: I1.key })).status, 204);
    assertProblem(await c.get('/v1/segments/same', { key: I1.key }), 404, 'not_found');
    assert.deepEqual(await ids(I2.key, 'same'), ['u1']);
    // and I2's own key cannot see I1's: the shop is the key's
    assert.deepEqual(await ids(I1.key, 'only-one'), ['u1', 'u2', 'u3']);
  });
});
