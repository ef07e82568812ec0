// Order lists (orders.md, slice 2): GET /v1/orders with cursors and filters
// (customer_id, channel, status, placed_after inclusive / placed_before
// exclusive), bad parameters, shop isolation, GET /v1/customers/{id}/orders,
// scopes.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startService, api, setupShop, assertProblem, uniq,
} from '../lib/harness.js';

let svc;
let c;
let L; // the shop whose orders are listed
let M; // another shop, sharing some order and customer ids with L

const N = 130;
const CHANNELS = ['web', 'wechat-mini', 'store:jingan'];
const BASE_US = BigInt(Date.parse('2026-10-01T00:00:00Z')) * 1000n;
const HOUR_US = 3600n * 1000000n;

const ORDER_KEYS = ['cancelled_at', 'channel', 'created_at', 'currency', 'customer_id', 'discount', 'fulfilment', 'id', 'lines',
  'placed_at', 'qualifying', 'refunded_amount', 'refunds', 'shipping', 'status', 'total'].sort();

/** Microseconds since the epoch → RFC 3339 in UTC ("Z") or in the given offset (minutes east). */
function rfc3339(us, offsetMin = 0) {
  const local = us + BigInt(offsetMin) * 60n * 1000000n;
  const ms = Number(local / 1000n);
  const micro = String(local % 1000000n).padStart(6, '0');
  const base = new Date(ms).toISOString().slice(0, 19);
  if (offsetMin === 0) return `${base}.${micro}Z`;
  const sign = offsetMin < 0 ? '-' : '+';
  const a = Math.abs(offsetMin);
  return `${base}.${micro}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function orderBody(customerId, channel, placedAt, unitPrice = 12800) {
  return {
    customer_id: customerId,
    placed_at: placedAt,
    channel,
    currency: 'CNY',
    lines: [{ sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular', quantity: 1, unit_price: unitPrice }],
    shipping: 1000,
    total: unitPrice + 1000,
  };
}

const oPath = (id) => `/v1/orders/${encodeURIComponent(id)}`;
const coPath = (id) => `/v1/customers/${encodeURIComponent(id)}/orders`;

/** Every page of `path` (query object or raw string) until next_cursor is null. */
async function listAll(path, query = {}, { key = L.keys.admin, onPage } = {}) {
  const ids = [];
  const items = [];
  const sizes = [];
  let cursor = null;
  for (let page = 0; page < 1000; page++) {
    const qs = new URLSearchParams(query);
    if (cursor) qs.set('cursor', cursor);
    const s = qs.toString();
    const r = await c.get(`${path}${s ? `?${s}` : ''}`, { key });
    assert.equal(r.status, 200, `${path}?${s}: ${r.text.slice(0, 500)}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['items', 'next_cursor']);
    for (const it of r.body.items) assert.deepEqual(Object.keys(it).sort(), ORDER_KEYS, `order members: ${JSON.stringify(it)}`);
    items.push(...r.body.items);
    ids.push(...r.body.items.map((x) => x.id));
    sizes.push(r.body.items.length);
    if (onPage) await onPage(page, r);
    cursor = r.body.next_cursor;
    if (cursor === null) return { ids, items, sizes };
    assert.equal(typeof cursor, 'string');
    assert.ok(cursor.length > 0, 'a cursor is never empty');
    assert.ok(r.body.items.length > 0, 'a non-final page is not empty');
  }
  assert.fail('pagination did not terminate');
}

const listOrders = (query, opts) => listAll('/v1/orders', query, opts);

// The model of shop L: orders in creation order.
const orders = []; // {id, customer, channel, placedUs, status, i}
const stored = new Map(); // id -> latest Order body returned by the service
let custs; // L's customer ids (5)
let mOnlyCustomer; // a customer that exists only in shop M
const mOrders = []; // ids of M's orders in creation order

before(async () => {
  svc = await startService();
  c = api(svc);
  L = await setupShop(svc);
  M = await setupShop(svc);
  custs = Array.from({ length: 5 }, (_, k) => uniq(`lc${k}`));

  for (let i = 0; i < N; i++) {
    // ids whose lexical order is not the creation order
    const id = `o-${randomBytes(3).toString('hex')}-${i}`;
    const customer = custs[i % 5];
    const channel = CHANNELS[i % 3];
    // placed_at is a permutation of 130 distinct hours, so neither id nor
    // placed_at order equals the creation order
    const placedUs = BASE_US + BigInt((i * 37) % N) * HOUR_US;
    const placedAt = rfc3339(placedUs, [0, 480, -300][i % 3]);
    const r = await c.put(oPath(id), orderBody(customer, channel, placedAt), { key: i % 2 ? L.keys.admin : L.keys.storefront });
    assert.equal(r.status, 201, r.text);
    orders.push({ id, customer, channel, placedUs, status: 'placed', i });
    stored.set(id, r.body);
  }
  for (const o of orders) {
    if (o.i % 7 !== 3) continue; // 19 orders, spread over every customer and channel
    const r = await c.req('POST', `${oPath(o.id)}/cancel`, { key: L.keys.admin });
    assert.equal(r.status, 200, r.text);
    o.status = 'cancelled';
    stored.set(o.id, r.body);
  }

  // Shop M: the first five of L's order ids again (separate orders there), for
  // L's first customer id (a separate customer there), on a channel L never
  // uses; plus orders of a customer that exists only in M.
  mOnlyCustomer = uniq('monly');
  for (let i = 0; i < 5; i++) {
    const r = await c.put(oPath(orders[i].id), orderBody(custs[0], 'tmall', rfc3339(orders[i].placedUs)), { key: M.keys.admin });
    assert.equal(r.status, 201, r.text);
    mOrders.push(orders[i].id);
  }
  for (let i = 0; i < 5; i++) {
    const id = uniq('m');
    const r = await c.put(oPath(id), orderBody(mOnlyCustomer, 'web', rfc3339(BASE_US + BigInt(i) * HOUR_US)), { key: M.keys.admin });
    assert.equal(r.status, 201, r.text);
    mOrders.push(id);
  }
});
after(async () => { await svc?.stop(); });

const ids = (pred) => orders.filter(pred).map((o) => o.id);

describe('GET /v1/orders: pagination', () => {
  test(`${N} orders, limit=50 → every id exactly once, in the order rebuy received them`, async () => {
    const { ids: got, items, sizes } = await listOrders({ limit: '50' });
    assert.deepEqual(sizes, [50, 50, 30]);
    assert.equal(new Set(got).size, N, 'no duplicates');
    assert.deepEqual(got, orders.map((o) => o.id));
    for (const it of items) assert.deepEqual(it, stored.get(it.id), 'a listed order equals the order the service returned for it');
  });

  test('default limit is 50; limit=200 returns all with next_cursor null; limit=1 pages one by one', async () => {
    const r = await c.get('/v1/orders', { key: L.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.items.map((x) => x.id), orders.slice(0, 50).map((o) => o.id));
    assert.equal(typeof r.body.next_cursor, 'string');

    const all = await c.get('/v1/orders?limit=200', { key: L.keys.admin });
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.body.items.map((x) => x.id), orders.map((o) => o.id));
    assert.equal(all.body.next_cursor, null);

    const one = await listOrders({ limit: '1', customer_id: custs[2], channel: 'web' });
    assert.deepEqual(one.sizes.every((n) => n === 1), true);
    assert.deepEqual(one.ids, ids((o) => o.customer === custs[2] && o.channel === 'web'));
  });

  test('a page ending exactly at the last order has next_cursor null', async () => {
    const { sizes, ids: got } = await listOrders({ limit: '65' });
    assert.deepEqual(sizes, [65, 65]);
    assert.deepEqual(got, orders.map((o) => o.id));
  });

  test('a cursor can be used twice and gives the same page', async () => {
    const p1 = await c.get('/v1/orders?limit=40', { key: L.keys.readonly });
    assert.equal(p1.status, 200, p1.text);
    const cur = encodeURIComponent(p1.body.next_cursor);
    const a = await c.get(`/v1/orders?limit=40&cursor=${cur}`, { key: L.keys.readonly });
    const b = await c.get(`/v1/orders?limit=40&cursor=${cur}`, { key: L.keys.admin });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.body, b.body);
    assert.deepEqual(a.body.items.map((x) => x.id), orders.slice(40, 80).map((o) => o.id));
  });
});

describe('GET /v1/orders: filters', () => {
  test('customer_id', async () => {
    for (const cu of custs) {
      const { ids: got } = await listOrders({ customer_id: cu, limit: '7' });
      assert.deepEqual(got, ids((o) => o.customer === cu), `customer_id=${cu}`);
      assert.equal(got.length, N / 5);
    }
  });

  test('channel', async () => {
    for (const ch of CHANNELS) {
      const { ids: got } = await listOrders({ channel: ch, limit: '13' });
      assert.deepEqual(got, ids((o) => o.channel === ch), `channel=${ch}`);
    }
    assert.deepEqual((await listOrders({ channel: 'douyin' })).ids, [], 'a channel with no orders');
    assert.deepEqual((await listOrders({ channel: 'WEB' })).ids, [], 'channels are case-sensitive');
  });

  test('status, including after a cancel', async () => {
    const cancelled = await listOrders({ status: 'cancelled' });
    assert.deepEqual(cancelled.ids, ids((o) => o.status === 'cancelled'));
    assert.equal(cancelled.ids.length, 19);
    for (const it of cancelled.items) assert.equal(it.status, 'cancelled');
    const placed = await listOrders({ status: 'placed', limit: '33' });
    assert.deepEqual(placed.ids, ids((o) => o.status === 'placed'));
    for (const it of placed.items) assert.equal(it.status, 'placed');

    // cancel one more: it moves from one list to the other, keeping its place
    const o = orders[100];
    assert.equal(o.status, 'placed');
    const r = await c.req('POST', `${oPath(o.id)}/cancel`, { key: L.keys.storefront });
    assert.equal(r.status, 200, r.text);
    o.status = 'cancelled';
    stored.set(o.id, r.body);
    assert.deepEqual((await listOrders({ status: 'cancelled' })).ids, ids((x) => x.status === 'cancelled'));
    assert.deepEqual((await listOrders({ status: 'placed', limit: '200' })).ids, ids((x) => x.status === 'placed'));
    const all = await listOrders({ limit: '200' });
    assert.deepEqual(all.ids, orders.map((x) => x.id), 'a cancel does not move the order');
    assert.deepEqual(all.items[100], r.body);
  });

  test('placed_after is inclusive, placed_before exclusive, to the microsecond, in any offset', async () => {
    const T = BASE_US + 60n * HOUR_US; // the hour of exactly one order
    assert.equal(orders.filter((o) => o.placedUs === T).length, 1);
    const cases = [
      [{ placed_after: rfc3339(T) }, (o) => o.placedUs >= T],
      [{ placed_after: rfc3339(T + 1n) }, (o) => o.placedUs > T],
      [{ placed_after: rfc3339(T - 1n) }, (o) => o.placedUs >= T],
      [{ placed_before: rfc3339(T) }, (o) => o.placedUs < T],
      [{ placed_before: rfc3339(T + 1n) }, (o) => o.placedUs <= T],
      [{ placed_after: rfc3339(T, 480) }, (o) => o.placedUs >= T],
      [{ placed_before: rfc3339(T, -300) }, (o) => o.placedUs < T],
      [{ placed_after: '2026-10-03T20:00:00+08:00' }, (o) => o.placedUs >= BASE_US + 60n * HOUR_US],
      [{ placed_after: '2026-10-03T12:00:00Z', placed_before: '2026-10-04T12:00:00Z' },
        (o) => o.placedUs >= T && o.placedUs < T + 24n * HOUR_US],
      [{ placed_before: '2000-01-01T08:00:00+08:00' }, () => false],
      [{ placed_after: '2000-01-01T00:00:00Z' }, () => true],
      [{ placed_after: rfc3339(BASE_US + BigInt(N) * HOUR_US) }, () => false],
    ];
    for (const [q, pred] of cases) {
      const { ids: got } = await listOrders({ ...q, limit: '200' });
      assert.deepEqual(got, ids(pred), `filter ${JSON.stringify(q)}`);
    }
    // the boundary order itself
    const at = orders.find((o) => o.placedUs === T);
    assert.ok((await listOrders({ placed_after: rfc3339(T), placed_before: rfc3339(T + 1n) })).ids.includes(at.id));
    assert.deepEqual((await listOrders({ placed_after: rfc3339(T), placed_before: rfc3339(T) })).ids, []);
  });

  test('combined filters (all must hold), paginated', async () => {
    const lo = BASE_US + 20n * HOUR_US;
    const hi = BASE_US + 110n * HOUR_US;
    const q = { customer_id: custs[1], channel: 'wechat-mini', status: 'placed', placed_after: rfc3339(lo, 480), placed_before: rfc3339(hi) };
    const want = ids((o) => o.customer === custs[1] && o.channel === 'wechat-mini' && o.status === 'placed' && o.placedUs >= lo && o.placedUs < hi);
    assert.ok(want.length >= 3, `the combination selects a few orders (${want.length})`);
    assert.deepEqual((await listOrders({ ...q, limit: '2' })).ids, want);
    for (const cu of custs) {
      const want2 = ids((o) => o.customer === cu && o.status === 'cancelled');
      assert.ok(want2.length >= 3, `${cu} has cancelled orders`);
      assert.deepEqual((await listOrders({ customer_id: cu, status: 'cancelled', limit: '2' })).ids, want2);
      for (const ch of CHANNELS) {
        assert.deepEqual((await listOrders({ customer_id: cu, channel: ch, status: 'placed' })).ids,
          ids((o) => o.customer === cu && o.channel === ch && o.status === 'placed'), `${cu} ${ch} placed`);
      }
    }
    assert.deepEqual((await listOrders({ customer_id: custs[0], channel: 'tmall' })).ids, [], "M's channel with L's customer");
  });

  test('an unknown customer_id, or one that exists only in another shop, gives an empty list', async () => {
    for (const cu of [uniq('nobody'), mOnlyCustomer]) {
      const r = await c.get(`/v1/orders?customer_id=${encodeURIComponent(cu)}`, { key: L.keys.admin });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { items: [], next_cursor: null });
    }
  });
});

describe('GET /v1/orders: bad parameters → 400 invalid_parameter', () => {
  const cases = [
    ['limit=0', 'limit'], ['limit=201', 'limit'], ['limit=-1', 'limit'], ['limit=abc', 'limit'], ['limit=', 'limit'],
    ['limit=1.5', 'limit'], ['limit=10.0', 'limit'], ['limit=1e1', 'limit'], ['limit=10abc', 'limit'],
    ['limit=99999999999999999999999', 'limit'], ['limit=4294967306', 'limit'],
    ['cursor=!!!not-a-cursor!!!', 'cursor'], ['cursor=eyJmb28iOjF9', 'cursor'], [`cursor=${'A'.repeat(3000)}`, 'cursor'], ['cursor=', 'cursor'],
    ['customer_id=', 'customer_id'], ['customer_id=cust%201', 'customer_id'], [`customer_id=${'c'.repeat(129)}`, 'customer_id'],
    ['customer_id=cust%2F1', 'customer_id'], ['customer_id=cust%C3%A9', 'customer_id'],
    ['channel=', 'channel'], ['channel=web%20shop', 'channel'], [`channel=${'w'.repeat(65)}`, 'channel'], ['channel=tea%2Fgreen', 'channel'],
    ['channel=web%40shop', 'channel'],
    ['status=', 'status'], ['status=shipped', 'status'], ['status=PLACED', 'status'], ['status=refunded', 'status'],
    ['placed_after=', 'placed_after'], ['placed_after=yesterday', 'placed_after'], ['placed_after=2026-11-01T10:00:00', 'placed_after'],
    ['placed_after=2026-13-01T00:00:00Z', 'placed_after'], ['placed_after=2026-11-01', 'placed_after'],
    ['placed_before=', 'placed_before'], ['placed_before=tomorrow', 'placed_before'], ['placed_before=2026-11-31T00:00:00Z', 'placed_before'],
    ['placed_before=1762000000', 'placed_before'],
    ['foo=1', 'foo'], ['Limit=5', 'Limit'], ['limit=5&offset=10', 'offset'], ['created_after=2026-11-01T00:00:00Z', 'created_after'],
    ['tag=vip', 'tag'], ['customer=cust-1', 'customer'],
    ['limit=5&limit=5', 'limit'], ['status=placed&status=cancelled', 'status'], ['channel=web&channel=web', 'channel'],
    ['customer_id=a&customer_id=b', 'customer_id'], ['placed_after=2026-11-01T00:00:00Z&placed_after=2026-11-02T00:00:00Z', 'placed_after'],
  ];
  for (const [qs, name] of cases) {
    test(`${qs.length > 60 ? `${qs.slice(0, 60)}…` : qs} → /query/${name}`, async () => {
      assertProblem(await c.get(`/v1/orders?${qs}`, { key: L.keys.admin }), 400, 'invalid_parameter', `/query/${name}`);
      assertProblem(await c.get(`/v1/orders?${qs}`, { key: L.keys.readonly }), 400, 'invalid_parameter', `/query/${name}`);
    });
  }

  test("a cursor from another shop's list never leaks that shop's orders", async () => {
    // Either refused (400 /query/cursor) or, if accepted, it must not leak or skip
    // orders: whatever comes back belongs to L, in creation order.
    const m = await c.get('/v1/orders?limit=3', { key: M.keys.admin });
    assert.equal(m.status, 200, m.text);
    assert.equal(typeof m.body.next_cursor, 'string');
    const r = await c.get(`/v1/orders?limit=200&cursor=${encodeURIComponent(m.body.next_cursor)}`, { key: L.keys.admin });
    if (r.status === 400) {
      assertProblem(r, 400, 'invalid_parameter', '/query/cursor');
    } else {
      assert.equal(r.status, 200, r.text);
      const mine = orders.map((o) => o.id);
      const got = r.body.items.map((x) => x.id);
      assert.deepEqual(got, mine.slice(mine.length - got.length), 'a suffix of L\'s orders');
      for (const it of r.body.items) assert.notEqual(it.channel, 'tmall', "no M order");
    }
  });
});

describe('shop isolation', () => {
  test("another shop's orders never appear, even with the same order and customer ids", async () => {
    const all = await listOrders({ limit: '200' });
    assert.deepEqual(all.ids, orders.map((o) => o.id));
    for (const it of all.items) {
      assert.notEqual(it.channel, 'tmall');
      assert.notEqual(it.customer_id, mOnlyCustomer);
      assert.deepEqual(it, stored.get(it.id));
    }
    const c0 = await listOrders({ customer_id: custs[0] });
    assert.deepEqual(c0.ids, ids((o) => o.customer === custs[0]));
    for (const it of c0.items) assert.notEqual(it.channel, 'tmall');
    assert.deepEqual((await listOrders({ channel: 'tmall' })).ids, []);

    const m = await listOrders({ limit: '3' }, { key: M.keys.readonly });
    assert.deepEqual(m.ids, mOrders);
    assert.deepEqual(m.items.slice(0, 5).map((x) => x.channel), Array(5).fill('tmall'));
    const mc0 = await listOrders({ customer_id: custs[0] }, { key: M.keys.admin });
    assert.deepEqual(mc0.ids, mOrders.slice(0, 5));
  });
});

describe('GET /v1/customers/{id}/orders', () => {
  test("a customer's orders, cancelled included, in the order rebuy received them, with pagination", async () => {
    for (const [k, cu] of custs.entries()) {
      const { ids: got, items, sizes } = await listAll(coPath(cu), { limit: '7' }, { key: [L.keys.admin, L.keys.storefront, L.keys.readonly][k % 3] });
      assert.deepEqual(got, ids((o) => o.customer === cu), `customer ${cu}`);
      assert.deepEqual(sizes, [7, 7, 7, 5]);
      for (const it of items) assert.deepEqual(it, stored.get(it.id));
    }
    const r = await c.get(coPath(custs[4]), { key: L.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.items.length, 26, 'default limit 50 holds all 26');
    assert.equal(r.body.next_cursor, null);
    assert.ok(r.body.items.some((x) => x.status === 'cancelled'), 'cancelled orders are listed');
    const one = await listAll(coPath(custs[1]), { limit: '1' }, { key: L.keys.storefront });
    assert.deepEqual(one.ids, ids((o) => o.customer === custs[1]));
  });

  test('a customer without orders → 200 empty list', async () => {
    const cu = uniq('noorders');
    assert.equal((await c.put(`/v1/customers/${cu}`, { name: 'Wang Fang' }, { key: L.keys.admin })).status, 201);
    const r = await c.get(coPath(cu), { key: L.keys.readonly });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { items: [], next_cursor: null });
  });

  test("an unknown customer, or another shop's customer → 404", async () => {
    for (const key of [L.keys.admin, L.keys.storefront, L.keys.readonly]) {
      assertProblem(await c.get(coPath(uniq('nobody')), { key }), 404, 'not_found');
      assertProblem(await c.get(coPath(mOnlyCustomer), { key }), 404, 'not_found');
    }
    // the same customer id in shop M lists M's orders only
    const m = await listAll(coPath(custs[0]), {}, { key: M.keys.storefront });
    assert.deepEqual(m.ids, mOrders.slice(0, 5));
    for (const it of m.items) assert.equal(it.channel, 'tmall');
    assert.deepEqual((await listAll(coPath(mOnlyCustomer), {}, { key: M.keys.admin })).ids, mOrders.slice(5));
  });

  test('an erased customer still exists: its orders are listed', async () => {
    const cu = uniq('erased');
    const id = uniq('ord');
    assert.equal((await c.put(oPath(id), orderBody(cu, 'web', '2026-11-05T10:00:00+08:00'), { key: L.keys.admin })).status, 201);
    assert.equal((await c.del(`/v1/customers/${cu}`, { key: L.keys.admin })).status, 204);
    const r = await c.get(coPath(cu), { key: L.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.items.map((x) => x.id), [id]);
    // (keep the model in step: this order belongs to L now)
    orders.push({ id, customer: cu, channel: 'web', placedUs: BigInt(Date.parse('2026-11-05T02:00:00Z')) * 1000n, status: 'placed', i: -1 });
    stored.set(id, r.body.items[0]);
  });

  test('bad parameters → 400 invalid_parameter', async () => {
    const cu = custs[0];
    for (const [qs, name] of [
      ['limit=0', 'limit'], ['limit=201', 'limit'], ['limit=abc', 'limit'], ['limit=', 'limit'], ['limit=2.0', 'limit'],
      ['cursor=!!!not-a-cursor!!!', 'cursor'], ['cursor=', 'cursor'],
      ['status=placed', 'status'], ['channel=web', 'channel'], ['customer_id=x', 'customer_id'], ['foo=1', 'foo'],
      ['limit=5&limit=6', 'limit'],
    ]) {
      assertProblem(await c.get(`${coPath(cu)}?${qs}`, { key: L.keys.admin }), 400, 'invalid_parameter', `/query/${name}`);
    }
    for (const bad of ['cust%201', 'c'.repeat(129), 'cust%C3%A9']) {
      assertProblem(await c.get(`/v1/customers/${bad}/orders`, { key: L.keys.admin }), 400, 'invalid_parameter', '/path/id');
    }
  });
});

describe('consistency under change', () => {
  test('orders created mid-pagination appear at the end; cancels do not move orders', async () => {
    const P = await setupShop(svc);
    const cu = uniq('pc');
    const made = [];
    for (let i = 0; i < 12; i++) {
      const id = uniq('p');
      const r = await c.put(oPath(id), orderBody(cu, 'web', rfc3339(BASE_US - BigInt(i) * HOUR_US)), { key: P.keys.admin });
      assert.equal(r.status, 201, r.text);
      made.push(id);
    }
    const late = uniq('late');
    const seen = await listAll('/v1/orders', { limit: '5' }, {
      key: P.keys.admin,
      onPage: async (page) => {
        if (page !== 0) return;
        assert.equal((await c.req('POST', `${oPath(made[2])}/cancel`, { key: P.keys.admin })).status, 200);
        assert.equal((await c.req('POST', `${oPath(made[7])}/cancel`, { key: P.keys.admin })).status, 200);
        // placed earliest of all, received last
        const r = await c.put(oPath(late), orderBody(cu, 'web', '2001-01-01T00:00:00Z'), { key: P.keys.admin });
        assert.equal(r.status, 201, r.text);
      },
    });
    assert.deepEqual(seen.ids, [...made, late]);
    const per = await listAll(coPath(cu), { limit: '4' }, { key: P.keys.readonly });
    assert.deepEqual(per.ids, [...made, late]);
  });
});

describe('scopes, auth and methods', () => {
  test('GET /v1/orders: admin and readonly; storefront and platform → 403; no key → 401', async () => {
    assert.equal((await c.get('/v1/orders?limit=1', { key: L.keys.admin })).status, 200);
    assert.equal((await c.get('/v1/orders?limit=1', { key: L.keys.readonly })).status, 200);
    assertProblem(await c.get('/v1/orders', { key: L.keys.storefront }), 403, 'forbidden');
    assertProblem(await c.get(`/v1/orders?customer_id=${custs[0]}`, { key: L.keys.storefront }), 403, 'forbidden');
    assertProblem(await c.get('/v1/orders', { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get('/v1/orders'), 401, 'unauthenticated');
    assertProblem(await c.get('/v1/orders', { key: 'rb_aaaaaaaa_' + 'A'.repeat(43) }), 401, 'unauthenticated');
  });

  test('GET /v1/customers/{id}/orders: admin, storefront, readonly; platform → 403 (even for unknown ids); no key → 401', async () => {
    for (const key of [L.keys.admin, L.keys.storefront, L.keys.readonly]) {
      assert.equal((await c.get(`${coPath(custs[0])}?limit=1`, { key })).status, 200);
    }
    assertProblem(await c.get(coPath(custs[0]), { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get(coPath(uniq('nobody')), { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get(coPath(custs[0])), 401, 'unauthenticated');
  });

  test('unsupported methods → 405 with Allow: GET', async () => {
    for (const [method, path] of [['POST', '/v1/orders'], ['PUT', '/v1/orders'], ['DELETE', '/v1/orders'],
      ['POST', coPath(custs[0])], ['PUT', coPath(custs[0])], ['DELETE', coPath(custs[0])]]) {
      const r = await c.req(method, path, { key: L.keys.admin });
      assertProblem(r, 405, 'method_not_allowed');
      assert.equal(r.headers.allow.trim(), 'GET', `${method} ${path}`);
    }
  });
});
