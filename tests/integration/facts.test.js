// Customer facts (orders.md): the repurchase rule in shop settings, facts
// under the default rule, cancels and refunds, min_order_amount and
// merge_window_hours, order independence of the stored facts (the same
// orders ingested in different random orders, sequentially and
// concurrently, against an independent model), and `rebuyd verify`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, uniq,
} from '../lib/harness.js';
import { mulberry32, shuffle } from '../lib/random.js';

let svc;
let c;
let S; // default-rule shop

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const DEFAULT_RULE = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------
// helpers

/** RFC 3339 with the given UTC offset (minutes) for an instant in ms. */
function rfc3339(ms, offsetMin = 480) {
  const local = new Date(ms + offsetMin * 60000).toISOString().slice(0, 23);
  if (offsetMin === 0) return `${local}Z`;
  const sign = offsetMin < 0 ? '-' : '+';
  const a = Math.abs(offsetMin);
  return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function total(o) {
  return o.lines.reduce((s, l) => s + l.quantity * l.unit_price - (l.discount ?? 0), 0) + (o.shipping ?? 0) - (o.discount ?? 0);
}

/** Order body: lines given as [category, role, unit_price, quantity?]. */
function order(customerId, atMs, { channel = 'web', lines = [['tea', 'regular', 12800]], shipping = 0, discount = 0, offset = 480 } = {}) {
  const o = {
    customer_id: customerId,
    placed_at: rfc3339(atMs, offset),
    channel,
    currency: 'CNY',
    lines: lines.map(([category, role, unit_price, quantity = 1], i) => ({ sku: `SKU-${category}-${i}`, category, role, quantity, unit_price })),
    shipping,
    discount,
  };
  o.total = total(o);
  return o;
}

async function createShopWith(settings) {
  const body = { name: uniq('Facts Shop'), currency: 'CNY', timezone: 'Asia/Shanghai' };
  if (settings !== undefined) body.settings = settings;
  const r = await c.post('/v1/shops', body, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  return { shopId: r.body.shop.id, shop: r.body.shop, key: r.body.admin_key.key };
}

const put = (key, id, body) => c.put(`/v1/orders/${encodeURIComponent(id)}`, body, { key });
async function mustPut(key, id, body) {
  const r = await put(key, id, body);
  assert.ok(r.status === 201 || r.status === 200, `PUT order ${id}: ${r.status} ${r.text}`);
  return r.body;
}
async function mustCancel(key, id) {
  const r = await c.req('POST', `/v1/orders/${encodeURIComponent(id)}/cancel`, { key });
  assert.equal(r.status, 200, `cancel ${id}: ${r.text}`);
  return r.body;
}
async function mustRefund(key, id, body) {
  const r = await c.post(`/v1/orders/${encodeURIComponent(id)}/refunds`, body, { key });
  assert.ok(r.status === 201 || r.status === 200, `refund ${id} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.body;
}
async function facts(key, customerId) {
  const r = await c.get(`/v1/customers/${encodeURIComponent(customerId)}`, { key });
  assert.equal(r.status, 200, r.text);
  return r.body.facts;
}
async function patchRule(shopId, key, rule) {
  const r = await c.patch(`/v1/shops/${shopId}`, { settings: { repurchase_rule: rule } }, { key });
  assert.equal(r.status, 200, r.text);
  return r.body.settings.repurchase_rule;
}

const us = (ms) => BigInt(ms) * 1000n;
const tsOrNull = (s, what) => (s === null ? null : (assertServerTs(s, what), tsMicros(s)));

/**
 * Facts with timestamps as BigInt microseconds; days_since_last_order
 * dropped (compared separately, it depends on the clock).
 */
function norm(f) {
  return {
    order_count: f.order_count,
    first_order_at: tsOrNull(f.first_order_at, 'first_order_at'),
    second_order_at: tsOrNull(f.second_order_at, 'second_order_at'),
    last_order_at: tsOrNull(f.last_order_at, 'last_order_at'),
    total_spent: f.total_spent,
    average_order_value: f.average_order_value,
    first_order_channel: f.first_order_channel,
    first_order_categories: f.first_order_categories,
    first_order_roles: f.first_order_roles,
  };
}

const FACT_KEYS = ['average_order_value', 'days_since_last_order', 'first_order_at', 'first_order_categories', 'first_order_channel',
  'first_order_roles', 'last_order_at', 'order_count', 'second_order_at', 'total_spent'];

const daysSince = (lastMs, nowMs) => Math.floor((nowMs - lastMs) / DAY);

// ---------------------------------------------------------------------------
// The model: orders.md's definition, computed independently.
//   orders: [{ id, at (ms), channel, total, refunded, cancelled, categories: [..], roles: [..] }]

function qualifies(o, rule) {
  if (o.cancelled) return false;
  if (o.total < rule.min_order_amount) return false;
  if (rule.exclude_refunded && o.refunded > 0 && o.refunded >= o.total) return false;
  return true;
}

function model(orders, rule) {
  const q = orders.filter((o) => qualifies(o, rule))
    .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const occasions = [];
  for (const o of q) {
    const cur = occasions[occasions.length - 1];
    if (cur && rule.merge_window_hours > 0 && o.at - cur.start <= rule.merge_window_hours * HOUR) cur.orders.push(o);
    else occasions.push({ start: o.at, orders: [o] });
  }
  const spent = q.reduce((s, o) => s + o.total - o.refunded, 0);
  const n = occasions.length;
  const sorted = (xs) => [...new Set(xs)].sort();
  const categories = {};
  for (const occ of occasions) {
    for (const cat of sorted(occ.orders.flatMap((o) => o.categories))) {
      const cf = categories[cat] ?? (categories[cat] = { first_at: us(occ.start), second_at: null, occasion_count: 0 });
      cf.occasion_count += 1;
      if (cf.occasion_count === 2) cf.second_at = us(occ.start);
    }
  }
  return {
    facts: {
      order_count: n,
      first_order_at: n ? us(occasions[0].start) : null,
      second_order_at: n > 1 ? us(occasions[1].start) : null,
      last_order_at: n ? us(occasions[n - 1].start) : null,
      total_spent: spent,
      average_order_value: n ? Math.floor(spent / n) : null,
      first_order_channel: n ? occasions[0].orders[0].channel : null,
      first_order_categories: n ? sorted(occasions[0].orders.flatMap((o) => o.categories)) : [],
      first_order_roles: n ? sorted(occasions[0].orders.flatMap((o) => o.roles)) : [],
    },
    lastMs: n ? occasions[n - 1].start : null,
    categories,
  };
}

/** Model entry for an order body as sent. */
function modelOrder(id, body, at) {
  return {
    id,
    at,
    channel: body.channel,
    total: body.total,
    refunded: 0,
    cancelled: false,
    categories: body.lines.map((l) => l.category),
    roles: body.lines.map((l) => l.role),
  };
}

/** Asserts server facts equal the model's (days_since_last_order checked against the clock window). */
function assertFactsMatch(f, m, nowBefore, nowAfter, what) {
  assert.deepEqual(Object.keys(f).sort(), FACT_KEYS, `${what}: facts members`);
  assert.deepEqual(norm(f), m.facts, `${what}: facts`);
  if (m.lastMs === null) assert.equal(f.days_since_last_order, null, `${what}: days_since_last_order`);
  else {
    const ok = [daysSince(m.lastMs, nowBefore), daysSince(m.lastMs, nowAfter)];
    assert.ok(ok.includes(f.days_since_last_order), `${what}: days_since_last_order ${f.days_since_last_order}, expected ${ok.join(' or ')}`);
  }
}

/** Reads facts through the API and checks them against the model. */
async function checkAgainstModel(key, customerId, orders, rule, what = customerId) {
  const t0 = Date.now();
  const f = await facts(key, customerId);
  const t1 = Date.now();
  const m = model(orders, rule);
  assertFactsMatch(f, m, t0, t1, what);
  return f;
}

// ---------------------------------------------------------------------------

describe('shop settings: the repurchase rule', () => {
  test('new shops get the default rule; POST accepts settings with members omitted', async () => {
    const plain = await createShopWith(undefined);
    // segments: the lifecycle segments' parameters, defaults filled in (segments.test.js)
    const DEFAULT_SEGMENTS = {
      second_purchase_window_days: 45, due_max_factor: 3, due_min_repeat_customers: 30,
      lapsing_factor: 2, lapse_days: 365, vip_percent: 5,
    };
    // rfm: how customers are scored (rfm.test.js), quintiles by default
    const DEFAULTS = {
      repurchase_rule: DEFAULT_RULE, segments: DEFAULT_SEGMENTS, rfm: { method: 'quintiles' },
      balances: { consumption_order: 'bonus_first' }, // prepaid wallets (wallets.test.js)
    };
    assert.deepEqual(plain.shop.settings, DEFAULTS);
    const g = await c.get(`/v1/shops/${plain.shopId}`, { key: plain.key });
    assert.deepEqual(g.body.settings, DEFAULTS);

    const partial = await createShopWith({ repurchase_rule: { merge_window_hours: 48 } });
    assert.deepEqual(partial.shop.settings.repurchase_rule, { ...DEFAULT_RULE, merge_window_hours: 48 });
    const empty = await createShopWith({});
    assert.deepEqual(empty.shop.settings.repurchase_rule, DEFAULT_RULE);
    const full = await createShopWith({ repurchase_rule: { exclude_refunded: false, min_order_amount: 9900, merge_window_hours: 8760 } });
    assert.deepEqual(full.shop.settings.repurchase_rule, { exclude_refunded: false, min_order_amount: 9900, merge_window_hours: 8760 });
    const gf = await c.get(`/v1/shops/${full.shopId}`, { key: svc.platformKey });
    assert.deepEqual(gf.body.settings, full.shop.settings);
  });

  test('PATCH settings: given members replace, the others are kept', async () => {
    const s = await createShopWith({ repurchase_rule: { merge_window_hours: 48 } });
    assert.deepEqual(await patchRule(s.shopId, s.key, { min_order_amount: 5000 }),
      { exclude_refunded: true, min_order_amount: 5000, merge_window_hours: 48 });
    assert.deepEqual(await patchRule(s.shopId, svc.platformKey, { exclude_refunded: false }),
      { exclude_refunded: false, min_order_amount: 5000, merge_window_hours: 48 });
    const n = await c.patch(`/v1/shops/${s.shopId}`, { name: 'Renamed Tea House' }, { key: s.key });
    assert.equal(n.status, 200, n.text);
    assert.deepEqual(n.body.settings.repurchase_rule, { exclude_refunded: false, min_order_amount: 5000, merge_window_hours: 48 }, 'a name change keeps the rule');
    const e = await c.patch(`/v1/shops/${s.shopId}`, { settings: {} }, { key: s.key });
    assert.equal(e.status, 200, e.text);
    assert.deepEqual(e.body.settings.repurchase_rule, { exclude_refunded: false, min_order_amount: 5000, merge_window_hours: 48 });
    assert.deepEqual(await patchRule(s.shopId, s.key, { merge_window_hours: 0, min_order_amount: 0, exclude_refunded: true }), DEFAULT_RULE);
  });

  test('invalid settings → 422 with a pointer; nothing changes', async () => {
    const s = await createShopWith({ repurchase_rule: { min_order_amount: 100 } });
    const before = (await c.get(`/v1/shops/${s.shopId}`, { key: s.key })).body;
    const cases = [
      [{ colour: 'red' }, '/settings/colour'],
      [{ repurchase_rule: { window: 1 } }, '/settings/repurchase_rule/window'],
      [{ repurchase_rule: { merge_window_hours: 8761 } }, '/settings/repurchase_rule/merge_window_hours'],
      [{ repurchase_rule: { merge_window_hours: -1 } }, '/settings/repurchase_rule/merge_window_hours'],
      [{ repurchase_rule: { merge_window_hours: 1.5 } }, '/settings/repurchase_rule/merge_window_hours'],
      [{ repurchase_rule: { merge_window_hours: '24' } }, '/settings/repurchase_rule/merge_window_hours'],
      [{ repurchase_rule: { min_order_amount: -1 } }, '/settings/repurchase_rule/min_order_amount'],
      [{ repurchase_rule: { min_order_amount: null } }, '/settings/repurchase_rule/min_order_amount'],
      [{ repurchase_rule: { exclude_refunded: 'yes' } }, '/settings/repurchase_rule/exclude_refunded'],
      [{ repurchase_rule: [] }, '/settings/repurchase_rule'],
      [[], '/settings'],
      [null, '/settings'],
    ];
    for (const [settings, pointer] of cases) {
      const p = await c.patch(`/v1/shops/${s.shopId}`, { settings }, { key: s.key });
      assertProblem(p, 422, 'validation_failed', pointer);
      const body = { name: uniq('Bad Settings'), currency: 'CNY', timezone: 'Asia/Shanghai', settings };
      assertProblem(await c.post('/v1/shops', body, { key: svc.platformKey }), 422, 'validation_failed', pointer);
    }
    const p = await c.patch(`/v1/shops/${s.shopId}`, { name: 'Not applied', settings: { repurchase_rule: { merge_window_hours: 9000 } } }, { key: s.key });
    assertProblem(p, 422, 'validation_failed', '/settings/repurchase_rule/merge_window_hours');
    const after = (await c.get(`/v1/shops/${s.shopId}`, { key: s.key })).body;
    assert.deepEqual(after, before, 'failed PATCHes changed nothing');
  });

  test('only platform and admin keys change settings', async () => {
    for (const key of [S.keys.storefront, S.keys.readonly]) {
      assertProblem(await c.patch(`/v1/shops/${S.shopId}`, { settings: { repurchase_rule: { min_order_amount: 1 } } }, { key }), 403, 'forbidden');
    }
    assert.deepEqual((await c.get(`/v1/shops/${S.shopId}`, { key: S.keys.readonly })).body.settings.repurchase_rule, DEFAULT_RULE);
  });
});

describe('facts under the default rule', () => {
  test('a customer without orders has empty facts', async () => {
    const id = uniq('cust');
    const r = await c.put(`/v1/customers/${id}`, { name: 'No Orders Yet' }, { key: S.keys.admin });
    assert.equal(r.status, 201, r.text);
    const empty = {
      order_count: 0, first_order_at: null, second_order_at: null, last_order_at: null, days_since_last_order: null,
      total_spent: 0, average_order_value: null, first_order_channel: null, first_order_categories: [], first_order_roles: [],
    };
    assert.deepEqual(r.body.facts, empty);
    assert.deepEqual(await facts(S.keys.readonly, id), empty);
  });

  test('count, first/second/last, total_spent, AOV, days, first-order channel/categories/roles (orders arriving out of order)', async () => {
    const cust = uniq('cust');
    const now = Date.now();
    const at1 = now - 40 * DAY - 6 * HOUR;
    const at2 = now - 20 * DAY - 6 * HOUR;
    const at3 = now - 12 * DAY - 6 * HOUR;
    const o1 = order(cust, at1, { channel: 'web', lines: [['tea', 'regular', 12800, 2], ['teaware', 'activity', 3900]], shipping: 1000, offset: 480 });
    const o2 = order(cust, at2, { channel: 'wechat-mini', lines: [['tea', 'traffic', 1500]], offset: 0 });
    const o3 = order(cust, at3, { channel: 'store:jingan', lines: [['snacks', 'regular', 6800], ['tea', 'regular', 12800]], discount: 800, offset: -300 });
    assert.deepEqual([o1.total, o2.total, o3.total], [30500, 1500, 18800]);
    const ids = [uniq('o1'), uniq('o2'), uniq('o3')];
    const m = [modelOrder(ids[0], o1, at1), modelOrder(ids[1], o2, at2), modelOrder(ids[2], o3, at3)];

    await mustPut(S.keys.storefront, ids[2], o3);
    let f = await checkAgainstModel(S.keys.admin, cust, [m[2]], DEFAULT_RULE);
    assert.equal(f.order_count, 1);
    assert.equal(f.days_since_last_order, 12);
    assert.equal(f.second_order_at, null);

    await mustPut(S.keys.storefront, ids[0], o1);
    f = await checkAgainstModel(S.keys.admin, cust, [m[0], m[2]], DEFAULT_RULE);
    assert.equal(f.first_order_channel, 'web');
    assert.equal(tsMicros(f.second_order_at), us(at3));

    await mustPut(S.keys.storefront, ids[1], o2);
    f = await checkAgainstModel(S.keys.admin, cust, m, DEFAULT_RULE);
    // spelled out, so a shared mistake in the model cannot hide a bug
    assert.equal(f.order_count, 3);
    assert.equal(tsMicros(f.first_order_at), us(at1));
    assert.equal(tsMicros(f.second_order_at), us(at2));
    assert.equal(tsMicros(f.last_order_at), us(at3));
    assert.equal(f.days_since_last_order, 12);
    assert.equal(f.total_spent, 30500 + 1500 + 18800);
    assert.equal(f.average_order_value, Math.floor(50800 / 3));
    assert.equal(f.first_order_channel, 'web');
    assert.deepEqual(f.first_order_categories, ['tea', 'teaware']);
    assert.deepEqual(f.first_order_roles, ['activity', 'regular']);

    // total_spent is net of refunds
    await mustRefund(S.keys.admin, ids[0], { id: 'rf-1', amount: 1000 });
    m[0].refunded = 1000;
    f = await checkAgainstModel(S.keys.admin, cust, m, DEFAULT_RULE);
    assert.equal(f.total_spent, 49800);
    assert.equal(f.average_order_value, 16600);

    // the list and the PUT response carry the same facts
    const l = await c.get('/v1/customers?limit=200', { key: S.keys.readonly });
    assert.equal(l.status, 200);
    const item = l.body.items.find((x) => x.id === cust);
    assert.ok(item, 'customer listed');
    assert.deepEqual(item.facts, f);
    const p = await c.put(`/v1/customers/${cust}`, { name: 'Now Known' }, { key: S.keys.admin });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.body.facts, f, 'a profile PUT leaves the facts alone');
    assertProblem(await c.put(`/v1/customers/${cust}`, { facts: f }, { key: S.keys.admin }), 422, 'validation_failed', '/facts');
  });

  test('cancel and full refund turn a repeat customer back into a one-time customer', async () => {
    const now = Date.now();
    for (const how of ['cancel', 'full refund', 'full refund in two parts']) {
      const cust = uniq('rep');
      const a = order(cust, now - 30 * DAY, { lines: [['tea', 'regular', 12800]] });
      const b = order(cust, now - 10 * DAY, { channel: 'tmall', lines: [['teaware', 'activity', 3900]] });
      const [ia, ib] = [uniq('a'), uniq('b')];
      const m = [modelOrder(ia, a, now - 30 * DAY), modelOrder(ib, b, now - 10 * DAY)];
      await mustPut(S.keys.admin, ia, a);
      await mustPut(S.keys.admin, ib, b);
      let f = await checkAgainstModel(S.keys.admin, cust, m, DEFAULT_RULE, `${how}: before`);
      assert.equal(f.order_count, 2);
      assert.equal(tsMicros(f.second_order_at), us(now - 10 * DAY));

      let o;
      if (how === 'cancel') {
        o = await mustCancel(S.keys.storefront, ib);
        m[1].cancelled = true;
      } else if (how === 'full refund') {
        o = (await mustRefund(S.keys.storefront, ib, { id: 'rf-all', amount: b.total })).order;
        m[1].refunded = b.total;
      } else {
        await mustRefund(S.keys.storefront, ib, { id: 'rf-p1', amount: 1000 });
        m[1].refunded = 1000;
        f = await checkAgainstModel(S.keys.admin, cust, m, DEFAULT_RULE, `${how}: partly refunded`);
        assert.equal(f.order_count, 2, 'a partly refunded order still counts');
        assert.equal(f.total_spent, a.total + b.total - 1000);
        o = (await mustRefund(S.keys.storefront, ib, { id: 'rf-p2', amount: b.total - 1000 })).order;
        m[1].refunded = b.total;
      }
      assert.equal(o.qualifying, false, `${how}: order no longer qualifies`);
      f = await checkAgainstModel(S.keys.admin, cust, m, DEFAULT_RULE, `${how}: after`);
      assert.equal(f.order_count, 1, `${how}: one-time again`);
      assert.equal(f.second_order_at, null);
      assert.equal(tsMicros(f.last_order_at), us(now - 30 * DAY));
      assert.equal(f.total_spent, a.total);
      assert.equal(f.days_since_last_order, 30);
    }
  });

  test('when the first order stops qualifying, the first-order facts move to the next one', async () => {
    const cust = uniq('first');
    const now = Date.now();
    const a = order(cust, now - 50 * DAY, { channel: 'douyin', lines: [['samples', 'traffic', 500]] });
    const b = order(cust, now - 5 * DAY, { channel: 'web', lines: [['tea', 'regular', 12800], ['gift-box', 'activity', 25800]] });
    const [ia, ib] = [uniq('a'), uniq('b')];
    await mustPut(S.keys.admin, ib, b);
    await mustPut(S.keys.admin, ia, a);
    let f = await facts(S.keys.admin, cust);
    assert.equal(f.first_order_channel, 'douyin');
    assert.deepEqual(f.first_order_categories, ['samples']);
    assert.deepEqual(f.first_order_roles, ['traffic']);
    await mustRefund(S.keys.admin, ia, { id: 'rf-1', amount: 500 });
    f = await facts(S.keys.admin, cust);
    assert.equal(f.order_count, 1);
    assert.equal(tsMicros(f.first_order_at), us(now - 5 * DAY));
    assert.equal(f.first_order_channel, 'web');
    assert.deepEqual(f.first_order_categories, ['gift-box', 'tea']);
    assert.deepEqual(f.first_order_roles, ['activity', 'regular']);
    assert.equal(f.total_spent, b.total);
  });

  test('a zero-total order qualifies (it cannot be refunded)', async () => {
    const cust = uniq('free');
    const o = order(cust, Date.now() - 3 * DAY, { lines: [['samples', 'traffic', 0]] });
    assert.equal(o.total, 0);
    const r = await put(S.keys.admin, uniq('free'), o);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.qualifying, true);
    const f = await facts(S.keys.admin, cust);
    assert.equal(f.order_count, 1);
    assert.equal(f.total_spent, 0);
    assert.equal(f.average_order_value, 0);
    assert.equal(f.days_since_last_order, 3);
  });

  test('orders placed at the same instant are ordered by id', async () => {
    const cust = uniq('tie');
    const at = Date.now() - 7 * DAY;
    const base = uniq('tie');
    const a = order(cust, at, { channel: 'store', lines: [['tea', 'regular', 12800]], offset: 480 });
    const b = order(cust, at, { channel: 'web', lines: [['teaware', 'activity', 3900]], offset: 0 });
    await mustPut(S.keys.admin, `${base}-b`, b);
    await mustPut(S.keys.admin, `${base}-a`, a);
    const f = await facts(S.keys.admin, cust);
    assert.equal(f.order_count, 2, 'merge window 0: every order is its own occasion');
    assert.equal(f.first_order_at, f.second_order_at);
    assert.equal(f.first_order_channel, 'store', 'the order with the smaller id comes first');
    assert.deepEqual(f.first_order_categories, ['tea']);
    assert.deepEqual(f.first_order_roles, ['regular']);
  });

  test('an order dated in the future has a negative days_since_last_order (floor)', async () => {
    const cust = uniq('future');
    await mustPut(S.keys.admin, uniq('fut'), order(cust, Date.now() + 2 * DAY + 12 * HOUR));
    assert.equal((await facts(S.keys.admin, cust)).days_since_last_order, -3);
  });
});

describe('rule changes recompute the facts at once', () => {
  test('min_order_amount', async () => {
    const R = await createShopWith(undefined);
    const now = Date.now();
    const X = uniq('x');
    const Y = uniq('y');
    const xs = [
      [uniq('x1'), order(X, now - 60 * DAY, { channel: 'douyin', lines: [['samples', 'traffic', 1500]] }), now - 60 * DAY],
      [uniq('x2'), order(X, now - 30 * DAY, { channel: 'web', lines: [['tea', 'regular', 5000]] }), now - 30 * DAY],
      [uniq('x3'), order(X, now - 10 * DAY, { channel: 'tmall', lines: [['teaware', 'regular', 8000]] }), now - 10 * DAY],
    ];
    const ys = [[uniq('y1'), order(Y, now - 20 * DAY, { lines: [['samples', 'traffic', 1500]] }), now - 20 * DAY]];
    for (const [id, b] of [...xs, ...ys]) await mustPut(R.key, id, b);
    const mx = xs.map(([id, b, at]) => modelOrder(id, b, at));
    const my = ys.map(([id, b, at]) => modelOrder(id, b, at));
    let rule = DEFAULT_RULE;
    await checkAgainstModel(R.key, X, mx, rule);
    await checkAgainstModel(R.key, Y, my, rule);

    rule = await patchRule(R.shopId, R.key, { min_order_amount: 5000 });
    assert.deepEqual(rule, { ...DEFAULT_RULE, min_order_amount: 5000 });
    const fx = await checkAgainstModel(R.key, X, mx, rule);
    assert.equal(fx.order_count, 2);
    assert.equal(tsMicros(fx.first_order_at), us(now - 30 * DAY), '5000 is not below the minimum');
    assert.equal(fx.first_order_channel, 'web');
    assert.equal(fx.total_spent, 13000);
    assert.equal(fx.average_order_value, 6500);
    const fy = await checkAgainstModel(R.key, Y, my, rule);
    assert.equal(fy.order_count, 0);
    assert.equal(fy.total_spent, 0);
    const o1 = await c.get(`/v1/orders/${xs[0][0]}`, { key: R.key });
    assert.equal(o1.body.qualifying, false, 'qualifying follows the current rule');
    assert.equal((await c.get(`/v1/orders/${xs[1][0]}`, { key: R.key })).body.qualifying, true);

    // new orders are judged by the new rule
    const x4 = [uniq('x4'), order(X, now - 1 * DAY, { lines: [['tea', 'regular', 4999]] }), now - 1 * DAY];
    const r4 = await mustPut(R.key, x4[0], x4[1]);
    assert.equal(r4.qualifying, false);
    mx.push(modelOrder(...x4));
    assert.equal((await checkAgainstModel(R.key, X, mx, rule)).order_count, 2);

    rule = await patchRule(R.shopId, R.key, { min_order_amount: 0 });
    assert.equal((await checkAgainstModel(R.key, X, mx, rule)).order_count, 4);
    assert.equal((await checkAgainstModel(R.key, Y, my, rule)).order_count, 1);
  });

  test('merge_window_hours groups orders into purchase occasions', async () => {
    const R = await createShopWith({ repurchase_rule: { merge_window_hours: 48 } });
    const cust = uniq('merge');
    const t0 = Date.now() - 100 * DAY;
    const spec = [
      [0, 'web', [['tea', 'regular', 12800]]],
      [2, 'web', [['teaware', 'activity', 3900]]],
      [30, 'tmall', [['snacks', 'traffic', 1500]]],
      [49, 'store', [['gift-box', 'regular', 25800]]],
      [75, 'web', [['tea', 'regular', 12800]]],
    ];
    const placed = spec.map(([h, channel, lines]) => [uniq(`m${h}`), order(cust, t0 + h * HOUR + 17 * 60000, { channel, lines }), t0 + h * HOUR + 17 * 60000]);
    // arrive newest first
    for (const [id, b] of [...placed].reverse()) await mustPut(R.key, id, b);
    const m = placed.map(([id, b, at]) => modelOrder(id, b, at));
    const sum = placed.reduce((s, [, b]) => s + b.total, 0);
    const at = (h) => us(t0 + h * HOUR + 17 * 60000);

    let rule = R.shop.settings.repurchase_rule;
    let f = await checkAgainstModel(R.key, cust, m, rule, 'window 48');
    assert.equal(f.order_count, 2);
    assert.equal(tsMicros(f.first_order_at), at(0));
    assert.equal(tsMicros(f.second_order_at), at(49), 'hour 49 starts a new occasion; hour 75 joins it');
    assert.equal(tsMicros(f.last_order_at), at(49));
    assert.deepEqual(f.first_order_categories, ['snacks', 'tea', 'teaware']);
    assert.deepEqual(f.first_order_roles, ['activity', 'regular', 'traffic']);
    assert.equal(f.total_spent, sum);
    assert.equal(f.average_order_value, Math.floor(sum / 2));

    rule = await patchRule(R.shopId, R.key, { merge_window_hours: 24 });
    f = await checkAgainstModel(R.key, cust, m, rule, 'window 24');
    assert.equal(f.order_count, 3);
    assert.equal(tsMicros(f.second_order_at), at(30));
    assert.equal(tsMicros(f.last_order_at), at(75));
    assert.deepEqual(f.first_order_categories, ['tea', 'teaware']);

    rule = await patchRule(R.shopId, R.key, { merge_window_hours: 0 });
    f = await checkAgainstModel(R.key, cust, m, rule, 'window 0');
    assert.equal(f.order_count, 5);
    assert.equal(f.average_order_value, Math.floor(sum / 5));

    // occasions are anchored at their first order: cancelling it re-anchors the rest
    rule = await patchRule(R.shopId, R.key, { merge_window_hours: 48 });
    await mustCancel(R.key, placed[0][0]);
    m[0].cancelled = true;
    f = await checkAgainstModel(R.key, cust, m, rule, 'window 48 without hour 0');
    assert.equal(f.order_count, 2);
    assert.equal(tsMicros(f.first_order_at), at(2));
    assert.equal(tsMicros(f.second_order_at), at(75), 'hour 49 now joins the occasion that starts at hour 2');
  });

  test('exclude_refunded: false counts fully refunded orders (they add nothing to total_spent)', async () => {
    const R = await createShopWith(undefined);
    const cust = uniq('excl');
    const now = Date.now();
    const a = [uniq('a'), order(cust, now - 20 * DAY, { lines: [['tea', 'regular', 12800]] }), now - 20 * DAY];
    const b = [uniq('b'), order(cust, now - 2 * DAY, { lines: [['tea', 'regular', 6400]] }), now - 2 * DAY];
    await mustPut(R.key, a[0], a[1]);
    await mustPut(R.key, b[0], b[1]);
    await mustRefund(R.key, b[0], { id: 'rf-all', amount: 6400 });
    const m = [modelOrder(...a), modelOrder(...b)];
    m[1].refunded = 6400;
    let rule = DEFAULT_RULE;
    assert.equal((await checkAgainstModel(R.key, cust, m, rule)).order_count, 1);
    rule = await patchRule(R.shopId, R.key, { exclude_refunded: false });
    const f = await checkAgainstModel(R.key, cust, m, rule);
    assert.equal(f.order_count, 2);
    assert.equal(f.total_spent, 12800);
    assert.equal(f.average_order_value, 6400);
    assert.equal(f.days_since_last_order, 2);
    assert.equal((await c.get(`/v1/orders/${b[0]}`, { key: R.key })).body.qualifying, true);
  });
});

// ---------------------------------------------------------------------------
// Order independence

function reverseKeys(v) {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)]));
  return v;
}

/**
 * ~300 orders of 40 customers with cancels, partial and full refunds and
 * equivalent resends. Returns { customers, orders: [{id, body, at, cancel, refunds}] }.
 */
function generate(rnd, tag) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
  const customers = Array.from({ length: 40 }, (_, i) => `${tag}-c${String(i).padStart(2, '0')}`);
  const base = Math.floor((Date.now() - 400 * DAY) / 1000) * 1000;
  const perCustomer = new Map(customers.map((cu) => [cu, []]));
  const orders = [];
  for (let i = 0; i < 300; i++) {
    const cust = i < customers.length ? customers[i] : customers[Math.floor(Math.pow(rnd(), 1.6) * customers.length)];
    const mine = perCustomer.get(cust);
    let at;
    for (;;) {
      at = mine.length && rnd() < 0.35
        ? pick(mine) + int(-60, 60) * HOUR + int(0, 3599) * 1000 // near another order: exercises the window
        : base + int(0, 380) * DAY + int(0, 86399) * 1000;
      // unique instants per customer, never exactly 48 h or 720 h (the windows used) apart
      if (mine.every((t) => t !== at && Math.abs(t - at) !== 48 * HOUR && Math.abs(t - at) !== 720 * HOUR)) break;
    }
    mine.push(at);
    const lines = Array.from({ length: int(1, 3) }, () => {
      const quantity = int(1, 3);
      const unit_price = pick([0, 500, 1500, 2200, 3900, 6800, 12800, 25800]);
      const l = {
        sku: `SKU-${int(100, 999)}`,
        category: pick(['tea', 'teaware', 'snacks', 'gift-box', 'samples']),
        role: pick(['traffic', 'activity', 'regular', 'regular']),
        quantity,
        unit_price,
      };
      if (rnd() < 0.3) l.discount = int(0, quantity * unit_price);
      if (rnd() < 0.5) l.name = `Product ${l.sku}`;
      return l;
    });
    const body = {
      customer_id: cust,
      placed_at: rfc3339(at, pick([480, 0, -300, 330, 840, -720])),
      channel: pick(['web', 'wechat-mini', 'tmall', 'douyin', 'store:jingan']),
      currency: 'CNY',
      lines,
    };
    if (rnd() < 0.5) body.shipping = pick([0, 800, 1000]);
    const sub = total(body);
    if (rnd() < 0.3 && sub > 0) body.discount = int(0, Math.min(sub, 2000));
    body.total = total(body);
    const o = { id: `${tag}-o${String(i).padStart(3, '0')}`, body, at, cancel: false, refunds: [], resend: rnd() < 0.08 };
    const r = rnd();
    if (r < 0.1) o.cancel = true;
    if (body.total > 0 && rnd() < 0.22) {
      const full = rnd() < 0.5;
      const amount = full ? body.total : int(1, Math.max(1, body.total - 1));
      if (amount > 1 && rnd() < 0.5) {
        const first = int(1, amount - 1);
        o.refunds.push({ id: `${o.id}-r1`, amount: first }, { id: `${o.id}-r2`, amount: amount - first, reason: 'second part' });
      } else {
        o.refunds.push({ id: `${o.id}-r1`, amount, reason: full ? 'returned' : 'partial' });
      }
    }
    orders.push(o);
  }
  return { customers, orders };
}

/** The request list for one order: PUT, its cancel/refunds (in order), an equivalent resend. */
function opsOf(o) {
  const ops = [{ kind: 'put', o, body: o.body }];
  if (o.cancel) ops.push({ kind: 'cancel', o });
  for (const r of o.refunds) ops.push({ kind: 'refund', o, body: r });
  if (o.resend) ops.push({ kind: 'put', o, body: reverseKeys(o.body) });
  return ops;
}

async function runOp(key, op) {
  if (op.kind === 'put') return mustPut(key, op.o.id, op.body);
  if (op.kind === 'cancel') return mustCancel(key, op.o.id);
  return mustRefund(key, op.o.id, op.body);
}

/** Fully shuffled: every op at a random position after its order's PUT (dependents keep their relative order). */
function interleaved(orders, rnd) {
  const keyed = [];
  for (const o of orders) {
    const ops = opsOf(o);
    let k = rnd();
    for (const op of ops) {
      keyed.push([k, op]);
      k += rnd() * (1 - k);
    }
  }
  return keyed.sort((a, b) => a[0] - b[0]).map(([, op]) => op);
}

async function categoryFacts(db, shopId) {
  const r = await db.query(`SELECT cu.id AS customer, cf.category,
      (extract(epoch FROM cf.first_at) * 1000000)::bigint::text AS first_at,
      (extract(epoch FROM cf.second_at) * 1000000)::bigint::text AS second_at, cf.occasion_count
    FROM customer_category_facts cf JOIN customers cu ON cu.seq = cf.customer_seq
    WHERE cu.shop_id = $1`, [shopId]);
  const out = {};
  for (const x of r.rows) {
    (out[x.customer] ??= {})[x.category] = {
      first_at: BigInt(x.first_at), second_at: x.second_at === null ? null : BigInt(x.second_at), occasion_count: x.occasion_count,
    };
  }
  return out;
}

describe('order independence and rebuyd verify', () => {
  test('the same orders in different random orders (sequential and concurrent) give identical facts, equal to the model; verify agrees', async (t) => {
    const seed = Number(process.env.REBUY_FACTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`seed ${seed} (REBUY_FACTS_SEED=${seed} reproduces)`);
    const rnd = mulberry32(seed);
    const tag = uniq('sh').replace(/[^A-Za-z0-9-]/g, '');
    const { customers, orders } = generate(rnd, tag);
    const rule1 = { exclude_refunded: true, min_order_amount: 3000, merge_window_hours: 48 };
    const A = await createShopWith({ repurchase_rule: rule1 });
    const B = await createShopWith({ repurchase_rule: rule1 });
    const msg = `seed ${seed}`;

    // shop A: one request at a time, everything interleaved
    for (const op of interleaved(orders, rnd)) await runOp(A.key, op);
    // shop B: 6 clients in parallel, orders in another random order
    const queue = shuffle(orders, rnd);
    await Promise.all(Array.from({ length: 6 }, async () => {
      for (let o = queue.shift(); o; o = queue.shift()) {
        for (const op of opsOf(o)) await runOp(B.key, op);
      }
    }));

    const byCustomer = new Map(customers.map((cu) => [cu, []]));
    for (const o of orders) {
      const m = modelOrder(o.id, o.body, o.at);
      m.cancelled = o.cancel;
      m.refunded = o.refunds.reduce((s, r) => s + r.amount, 0);
      byCustomer.get(o.body.customer_id).push(m);
    }

    const compareAll = async (rule, what) => {
      let repeat = 0;
      for (const cu of customers) {
        const t0 = Date.now();
        const fa = await facts(A.key, cu);
        const fb = await facts(B.key, cu);
        const t1 = Date.now();
        assert.deepEqual(fa, fb, `${what} ${msg}: shop A and shop B differ for ${cu}`);
        const m = model(byCustomer.get(cu), rule);
        assertFactsMatch(fa, m, t0, t1, `${what} ${msg}: ${cu}`);
        if (fa.order_count >= 2) repeat++;
      }
      // the data must exercise what it claims to
      assert.ok(repeat >= 5, `${what}: only ${repeat} repeat customers`);
      const ca = await categoryFacts(svc.db, A.shopId);
      const cb = await categoryFacts(svc.db, B.shopId);
      assert.deepEqual(ca, cb, `${what} ${msg}: customer_category_facts differ between the shops`);
      for (const cu of customers) {
        assert.deepEqual(ca[cu] ?? {}, model(byCustomer.get(cu), rule).categories, `${what} ${msg}: category facts of ${cu}`);
      }
      // the list endpoint serves the same facts
      const la = await c.get('/v1/customers?limit=200', { key: A.key });
      assert.equal(la.body.items.length, customers.length);
      for (const item of la.body.items) assert.deepEqual(norm(item.facts), model(byCustomer.get(item.id), rule).facts, `${what}: listed ${item.id}`);
    };
    await compareAll(rule1, 'rule 1');

    // every order's status, refunds and qualifying flag
    for (const o of orders) {
      const g = await c.get(`/v1/orders/${o.id}`, { key: A.key });
      assert.equal(g.status, 200);
      const m = byCustomer.get(o.body.customer_id).find((x) => x.id === o.id);
      assert.equal(g.body.status, o.cancel ? 'cancelled' : 'placed', o.id);
      assert.equal(g.body.refunded_amount, m.refunded, o.id);
      assert.deepEqual(g.body.refunds.map((r) => r.id), o.refunds.map((r) => r.id), o.id);
      assert.equal(g.body.qualifying, qualifies(m, rule1), `${o.id} qualifying`);
    }

    const v1 = await svc.cli(['verify']);
    assert.equal(v1.code, 0, `verify: ${v1.stdout}\n${v1.stderr}`);
    assert.match(v1.stdout, /(^|\n)0 differences\n/, v1.stdout);

    // a rule change recomputes every customer of the shop
    const rule2 = { exclude_refunded: false, min_order_amount: 0, merge_window_hours: 0 };
    assert.deepEqual(await patchRule(A.shopId, A.key, rule2), rule2);
    assert.deepEqual(await patchRule(B.shopId, svc.platformKey, rule2), rule2);
    await compareAll(rule2, 'rule 2');
    const rule3 = { exclude_refunded: true, min_order_amount: 2000, merge_window_hours: 720 };
    assert.deepEqual(await patchRule(A.shopId, A.key, rule3), rule3);
    assert.deepEqual(await patchRule(B.shopId, B.key, rule3), rule3);
    await compareAll(rule3, 'rule 3');

    const v2 = await svc.cli(['verify', '--shop', A.shopId]);
    assert.equal(v2.code, 0, `verify --shop: ${v2.stdout}\n${v2.stderr}`);
    assert.match(v2.stdout, /(^|\n)0 differences\n/);

    // corrupt one stored row: verify must notice
    const victim = customers.find((cu) => model(byCustomer.get(cu), rule3).facts.order_count > 0);
    const u = await svc.db.query(`UPDATE customer_facts SET order_count = order_count + 1
      WHERE customer_seq = (SELECT seq FROM customers WHERE shop_id = $1 AND id = $2)`, [A.shopId, victim]);
    assert.equal(u.rowCount, 1);
    const v3 = await svc.cli(['verify']);
    assert.notEqual(v3.code, 0, `verify must fail on a corrupted row: ${v3.stdout}\n${v3.stderr}`);
    assert.match(v3.stdout, /(^|\n)1 differences?\n/, v3.stdout);
    assert.ok(v3.stdout.includes(victim), `verify names the customer: ${v3.stdout}`);
    const v4 = await svc.cli(['verify', '--shop', B.shopId]);
    assert.equal(v4.code, 0, `the other shop is still consistent: ${v4.stdout}\n${v4.stderr}`);
    assert.match(v4.stdout, /(^|\n)0 differences\n/);
  });
});
