// Orders (orders.md): PUT/GET /v1/orders/{id}, cancel, refunds — creation and
// equivalent replays, conflicts, validation pointers, bare customers,
// refund arithmetic under concurrency, shop isolation, scopes.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, findInDb, uniq,
} from '../lib/harness.js';

let svc;
let c;
let S; // the shop under test (CNY)
let T; // another shop (CNY) for isolation

const nowMicros = () => BigInt(Date.now()) * 1000n;
const SKEW = 2_000_000n; // 2 s between the test's clock and the server's

const ORDER_KEYS = ['cancelled_at', 'channel', 'created_at', 'currency', 'customer_id', 'discount', 'fulfilment', 'id', 'lines',
  'placed_at', 'qualifying', 'refunded_amount', 'refunds', 'shipping', 'status', 'total'].sort();
const FULFILMENT_KEYS = ['completed_at', 'delivered_at', 'shipped_at'];
const LINE_KEYS = ['category', 'discount', 'line_total', 'name', 'quantity', 'role', 'sku', 'unit_price'];

/** Σ(quantity*unit_price − line discount) + shipping − discount */
function expectedTotal(o) {
  const lines = o.lines.reduce((s, l) => s + l.quantity * l.unit_price - (l.discount ?? 0), 0);
  return lines + (o.shipping ?? 0) - (o.discount ?? 0);
}

/** A valid order body (a tea shop in CNY); `over` replaces top-level members, total is recomputed unless given. */
function orderBody(over = {}) {
  const o = {
    customer_id: uniq('cust'),
    placed_at: '2026-11-01T10:00:00+08:00',
    channel: 'web',
    currency: 'CNY',
    lines: [
      { sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular', quantity: 2, unit_price: 12800, discount: 0 },
      { sku: 'CUP-GLASS-200', category: 'teaware', role: 'activity', quantity: 1, unit_price: 3900, discount: 900 },
    ],
    shipping: 1000,
    discount: 600,
    ...over,
  };
  if (!('total' in over)) o.total = expectedTotal(o);
  return o;
}

const oPath = (id) => `/v1/orders/${encodeURIComponent(id)}`;
const putOrder = (id, body, key = S.keys.admin, o = {}) => c.put(oPath(id), body, { key, ...o });
const getOrder = (id, key = S.keys.admin) => c.get(oPath(id), { key });
const cancel = (id, key = S.keys.admin, o = {}) => c.req('POST', `${oPath(id)}/cancel`, { key, ...o });
const refund = (id, body, key = S.keys.admin, o = {}) => c.post(`${oPath(id)}/refunds`, body, { key, ...o });
const getCustomer = (id, key = S.keys.admin) => c.get(`/v1/customers/${encodeURIComponent(id)}`, { key });

function assertOrderShape(o) {
  assert.deepEqual(Object.keys(o).sort(), ORDER_KEYS, `order members: ${JSON.stringify(o)}`);
  for (const l of o.lines) {
    assert.deepEqual(Object.keys(l).sort(), LINE_KEYS, `line members: ${JSON.stringify(l)}`);
    assert.equal(l.line_total, l.quantity * l.unit_price - l.discount, 'line_total');
  }
  assert.deepEqual(Object.keys(o.fulfilment).sort(), FULFILMENT_KEYS, `fulfilment members: ${JSON.stringify(o.fulfilment)}`);
  for (const k of FULFILMENT_KEYS) if (o.fulfilment[k] !== null) assertServerTs(o.fulfilment[k], `fulfilment.${k}`);
  assertServerTs(o.placed_at, 'placed_at');
  assertServerTs(o.created_at, 'created_at');
  if (o.cancelled_at !== null) assertServerTs(o.cancelled_at, 'cancelled_at');
  for (const r of o.refunds) assertServerTs(r.created_at, 'refund created_at');
  assert.equal(o.refunded_amount, o.refunds.reduce((s, r) => s + r.amount, 0), 'refunded_amount = Σ refunds');
  assert.ok(o.refunded_amount <= o.total, 'refunded_amount never exceeds total');
}

/** The order as the server should echo it for body b (defaults filled in). */
function assertEchoes(o, id, b) {
  assert.equal(o.id, id);
  assert.equal(o.customer_id, b.customer_id);
  assert.equal(tsMicros(o.placed_at), tsMicros(b.placed_at), `placed_at ${o.placed_at} is the instant ${b.placed_at}`);
  assert.equal(o.channel, b.channel);
  assert.equal(o.currency, b.currency);
  assert.equal(o.shipping, b.shipping ?? 0);
  assert.equal(o.discount, b.discount ?? 0);
  assert.equal(o.total, b.total);
  assert.deepEqual(o.lines, b.lines.map((l) => ({
    sku: l.sku,
    name: l.name ?? null,
    category: l.category,
    role: l.role,
    quantity: l.quantity,
    unit_price: l.unit_price,
    discount: l.discount ?? 0,
    line_total: l.quantity * l.unit_price - (l.discount ?? 0),
  })));
}

/** Rows of `table` whose text mentions needle. */
async function rowsMentioning(table, needle) {
  return (await findInDb(svc.db, needle)).filter((r) => r.table === `public.${table}`);
}

async function dbOrder(shopId, id) {
  const r = await svc.db.query('SELECT seq, total, refunded_amount, status FROM orders WHERE shop_id = $1 AND id = $2', [shopId, id]);
  return r.rows;
}

/** Reverses the key order of an object (recursively into arrays of objects). */
function reverseKeys(v) {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)]));
  return v;
}

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
  T = await setupShop(svc);
});
after(async () => { await svc?.stop(); });

describe('create and replay', () => {
  test('PUT creates the order (201 + Location); GET returns the same', async () => {
    const id = uniq('ord');
    const body = orderBody();
    const t0 = nowMicros();
    const r = await putOrder(id, body);
    const t1 = nowMicros();
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, `/v1/orders/${id}`);
    assertOrderShape(r.body);
    assertEchoes(r.body, id, body);
    assert.equal(r.body.placed_at.slice(0, 19), '2026-11-01T02:00:00', 'placed_at rendered in UTC');
    assert.equal(r.body.lines[1].name, null, 'omitted line name is null');
    assert.equal(r.body.total, 25600 + 3000 + 1000 - 600);
    assert.equal(r.body.status, 'placed');
    assert.equal(r.body.cancelled_at, null);
    assert.equal(r.body.refunded_amount, 0);
    assert.deepEqual(r.body.refunds, []);
    assert.equal(r.body.qualifying, true);
    assert.deepEqual(r.body.fulfilment, { shipped_at: null, delivered_at: null, completed_at: null }, 'a new order has no fulfilment events');
    const created = tsMicros(r.body.created_at);
    assert.ok(created >= t0 - SKEW && created <= t1 + SKEW, 'created_at is the time of the request');

    const g = await getOrder(id);
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, r.body);
    const g2 = await getOrder(id, S.keys.readonly);
    assert.deepEqual(g2.body, r.body, 'readonly keys read orders');
  });

  test('an equivalent body (key order, defaults omitted vs explicit) answers 200 with the stored order; no duplicate rows', async () => {
    const id = uniq('ord');
    const sku = uniq('SKU');
    // defaults omitted: shipping, discount, line discount; name omitted
    const sparse = {
      customer_id: uniq('cust'),
      placed_at: '2026-11-02T09:30:00+08:00',
      channel: 'wechat-mini',
      currency: 'CNY',
      lines: [{ sku, category: 'tea', role: 'regular', quantity: 3, unit_price: 5000 }],
      total: 15000,
    };
    const r1 = await putOrder(id, sparse);
    assert.equal(r1.status, 201, r1.text);
    assertEchoes(r1.body, id, sparse);

    const explicit = reverseKeys({ ...sparse, lines: [{ ...sparse.lines[0], discount: 0 }], shipping: 0, discount: 0 });
    assert.notEqual(JSON.stringify(explicit), JSON.stringify(sparse));
    for (const b of [sparse, explicit, reverseKeys(sparse)]) {
      const r = await putOrder(id, b);
      assert.equal(r.status, 200, `equivalent replay: ${r.text}`);
      assert.deepEqual(r.body, r1.body, 'the stored order, unchanged');
    }
    // storefront replays too
    const rs = await putOrder(id, explicit, S.keys.storefront);
    assert.equal(rs.status, 200, rs.text);

    assert.equal((await dbOrder(S.shopId, id)).length, 1, 'one order row');
    assert.equal((await rowsMentioning('order_lines', sku)).length, 1, 'one line row');
    const cust = await getCustomer(sparse.customer_id);
    assert.equal(cust.body.facts.order_count, 1, 'replays do not count as purchases');
    assert.equal(cust.body.facts.total_spent, 15000);
  });

  test('placed_at is a value: the same instant in another offset (as GET returns it) is equivalent', async () => {
    const id = uniq('ord');
    const body = orderBody({ placed_at: '2026-11-01T10:00:00+08:00' });
    const r1 = await putOrder(id, body);
    assert.equal(r1.status, 201, r1.text);
    // a client re-sending the order as the API returned it
    for (const placed_at of [r1.body.placed_at, '2026-11-01T02:00:00Z', '2026-11-01T04:00:00.000+02:00']) {
      const r = await putOrder(id, { ...body, placed_at });
      assert.equal(r.status, 200, `placed_at ${placed_at} is the same instant: ${r.text}`);
      assert.deepEqual(r.body, r1.body);
    }
    assertProblem(await putOrder(id, { ...body, placed_at: '2026-11-01T10:00:00.000001+08:00' }), 409, 'order_conflict');
  });

  test('concurrent PUTs of the same new order: one 201, the rest 200, one row', async () => {
    const id = uniq('ord');
    const body = orderBody();
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => putOrder(id, i % 2 ? reverseKeys(body) : body)));
    const statuses = rs.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201], rs.map((r) => r.text).join('\n'));
    for (const r of rs) assert.deepEqual(r.body, rs[0].body);
    assert.equal((await dbOrder(S.shopId, id)).length, 1);
    assert.equal((await getCustomer(body.customer_id)).body.facts.order_count, 1);
  });

  test('a different body under an existing id is 409 order_conflict and changes nothing', async () => {
    const id = uniq('ord');
    const body = orderBody();
    const r1 = await putOrder(id, body);
    assert.equal(r1.status, 201, r1.text);
    const variants = {
      customer: orderBody({ customer_id: uniq('cust'), placed_at: body.placed_at }),
      placed_at: { ...body, placed_at: '2026-11-01T10:00:01+08:00' },
      channel: { ...body, channel: 'tmall' },
      quantity: orderBody({ ...body, lines: [{ ...body.lines[0], quantity: 3 }, body.lines[1]], total: undefined }),
      line_name: { ...body, lines: [body.lines[0], { ...body.lines[1], name: 'Glass cup' }] },
      line_order: { ...body, lines: [body.lines[1], body.lines[0]] },
      shipping: { ...body, shipping: body.shipping + 100, total: body.total + 100 },
      one_line_less: orderBody({ ...body, lines: [body.lines[0]], total: undefined }),
    };
    for (const [what, b] of Object.entries(variants)) {
      if (b.total === undefined) b.total = expectedTotal(b);
      const r = await putOrder(id, b);
      assertProblem(r, 409, 'order_conflict');
      assert.ok(r.body.detail.length > 0, what);
    }
    const g = await getOrder(id);
    assert.deepEqual(g.body, r1.body, 'unchanged');
    assert.equal((await dbOrder(S.shopId, id)).length, 1);
    // the customer of the conflicting body was not created
    assertProblem(await getCustomer(variants.customer.customer_id), 404, 'not_found');
  });

  test('an unknown customer is created bare; a known customer keeps its profile', async () => {
    const bare = uniq('cust');
    const t0 = nowMicros();
    const r = await putOrder(uniq('ord'), orderBody({ customer_id: bare }));
    assert.equal(r.status, 201, r.text);
    const g = await getCustomer(bare);
    assert.equal(g.status, 200, g.text);
    const cu = g.body;
    assert.equal(cu.id, bare);
    assert.equal(cu.name, null);
    assert.equal(cu.email, null);
    assert.equal(cu.phone, null);
    assert.deepEqual(cu.tags, []);
    assert.deepEqual(cu.attributes, {});
    assert.equal(cu.erased_at, null);
    for (const ch of ['email', 'sms', 'wechat']) assert.deepEqual(cu.consent[ch], { granted: false, updated_at: null });
    assert.ok(tsMicros(cu.created_at) >= t0 - SKEW, 'created with the order');
    assert.equal(cu.facts.order_count, 1);
    assert.equal(cu.facts.total_spent, r.body.total);

    const known = uniq('cust');
    const p = await c.put(`/v1/customers/${known}`, { name: 'Li Wei', email: 'li.wei@example.com', tags: ['vip'], attributes: { tier: 2 } }, { key: S.keys.admin });
    assert.equal(p.status, 201, p.text);
    const r2 = await putOrder(uniq('ord'), orderBody({ customer_id: known }), S.keys.storefront);
    assert.equal(r2.status, 201, r2.text);
    const g2 = await getCustomer(known);
    for (const k of ['name', 'email', 'phone', 'tags', 'attributes', 'consent', 'created_at', 'erased_at']) {
      assert.deepEqual(g2.body[k], p.body[k], `order left customer.${k} alone`);
    }
    assert.equal(g2.body.facts.order_count, 1);
  });

  test('large amounts are exact (a 10^18 line)', async () => {
    const id = uniq('ord');
    const body = orderBody({
      lines: [{ sku: 'TEA-VAULT', category: 'tea', role: 'regular', quantity: 1000000, unit_price: 1000000000000 }],
      shipping: 0,
      discount: 0,
    });
    assert.equal(body.total, 1e18);
    const r = await putOrder(id, body);
    assert.equal(r.status, 201, r.text);
    assert.match(r.text, /"total"\s*:\s*1000000000000000000[,}]/);
    assert.match(r.text, /"line_total"\s*:\s*1000000000000000000[,}]/);
    // a sum beyond 64-bit integers is refused, not a 500
    const huge = orderBody({
      lines: Array.from({ length: 10 }, (_, i) => ({ sku: `V-${i}`, category: 'tea', role: 'regular', quantity: 1000000, unit_price: 1000000000000 })),
      shipping: 0,
      discount: 0,
    });
    const h = await putOrder(uniq('ord'), huge);
    assert.ok(h.status === 422 || h.status === 201, `a 10^19 total: 422 or exact, got ${h.status} ${h.text}`);
    if (h.status === 201) assert.match(h.text, /"total"\s*:\s*10000000000000000000[,}]/);
  });
});

describe('validation', () => {
  const base = () => orderBody();
  // lineOk: a valid line change, total recomputed; line: an invalid value (total left as it was)
  const lineOk = (i, patch) => (b) => { Object.assign(b.lines[i], patch); b.total = expectedTotal(b); };
  const line = (i, patch) => (b) => { Object.assign(b.lines[i], patch); };
  const drop = (k) => (b) => { delete b[k]; };
  const dropLine = (k) => (b) => { delete b.lines[0][k]; };
  const set = (patch) => (b) => { Object.assign(b, patch); };
  const cases = [
    ['total off by one', set({ total: 29000 - 1 }), '/total', /29000/],
    ['total off by a lot', set({ total: 1 }), '/total', /29000/],
    ['negative expected total', (b) => { b.discount = 40000; b.total = 0; }, '/total', /-10400/],
    ['negative total', (b) => { b.discount = 40000; b.total = -10400; }, '/total'],
    ['unknown role', line(0, { role: 'gift' }), '/lines/0/role'],
    ['role in upper case', line(1, { role: 'Regular' }), '/lines/1/role'],
    ['currency not the shop\'s', set({ currency: 'USD' }), '/currency'],
    ['currency lower case', set({ currency: 'cny' }), '/currency'],
    ['placed_at: month 13', set({ placed_at: '2026-13-01T10:00:00+08:00' }), '/placed_at'],
    ['placed_at: no offset', set({ placed_at: '2026-11-01T10:00:00' }), '/placed_at'],
    ['placed_at: offset above 14 h', set({ placed_at: '2026-11-01T10:00:00+15:00' }), '/placed_at'],
    ['placed_at: before 1970', set({ placed_at: '1969-12-31T23:59:59Z' }), '/placed_at'],
    ['placed_at: year 9999', set({ placed_at: '9999-01-01T00:00:00Z' }), '/placed_at'],
    ['placed_at: not a date', set({ placed_at: 'yesterday' }), '/placed_at'],
    ['placed_at: a number', set({ placed_at: 1762000000 }), '/placed_at'],
    ['quantity 0', line(0, { quantity: 0 }), '/lines/0/quantity'],
    ['quantity negative', line(0, { quantity: -2 }), '/lines/0/quantity'],
    ['quantity above 1000000', line(0, { quantity: 1000001 }), '/lines/0/quantity'],
    ['line discount above the line amount', lineOk(1, { discount: 3901 }), '/lines/1/discount'],
    ['negative line discount', line(0, { discount: -1 }), '/lines/0/discount'],
    ['unit_price not an integer', line(0, { unit_price: 12800.5 }), '/lines/0/unit_price'],
    ['unit_price a string', (b) => { b.lines[0].unit_price = '12800'; }, '/lines/0/unit_price'],
    ['unit_price negative', line(0, { unit_price: -1 }), '/lines/0/unit_price'],
    ['unit_price above 10^12', line(0, { unit_price: 1000000000001 }), '/lines/0/unit_price'],
    ['shipping not an integer', set({ shipping: 1000.5 }), '/shipping'],
    ['shipping negative', set({ shipping: -1 }), '/shipping'],
    ['shipping above 10^12', (b) => { b.shipping = 1000000000001; b.total = expectedTotal(b); }, '/shipping'],
    ['order discount negative', set({ discount: -1 }), '/discount'],
    ['order discount not an integer', set({ discount: 600.5 }), '/discount'],
    ['total a string', set({ total: '29000' }), '/total'],
    ['empty lines', set({ lines: [] }), '/lines'],
    ['lines not an array', set({ lines: { sku: 'x' } }), '/lines'],
    ['201 lines', (b) => { b.lines = Array.from({ length: 201 }, (_, i) => ({ sku: `S-${i}`, category: 'tea', role: 'regular', quantity: 1, unit_price: 100 })); b.total = expectedTotal(b); }, '/lines'],
    ['unknown top-level field', set({ coupon: 'WELCOME' }), '/coupon'],
    ['unknown line field', (b) => { b.lines[1].colour = 'red'; }, '/lines/1/colour'],
    ['missing customer_id', drop('customer_id'), '/customer_id'],
    ['missing placed_at', drop('placed_at'), '/placed_at'],
    ['missing channel', drop('channel'), '/channel'],
    ['missing currency', drop('currency'), '/currency'],
    ['missing lines', drop('lines'), '/lines'],
    ['missing total', drop('total'), '/total'],
    ['missing sku', dropLine('sku'), '/lines/0/sku'],
    ['missing category', dropLine('category'), '/lines/0/category'],
    ['missing role', dropLine('role'), '/lines/0/role'],
    ['missing quantity', dropLine('quantity'), '/lines/0/quantity'],
    ['missing unit_price', dropLine('unit_price'), '/lines/0/unit_price'],
    ['customer_id with a space', set({ customer_id: 'cust 1' }), '/customer_id'],
    ['customer_id of 129 chars', set({ customer_id: 'c'.repeat(129) }), '/customer_id'],
    ['channel with a space', set({ channel: 'web shop' }), '/channel'],
    ['channel of 65 chars', set({ channel: 'w'.repeat(65) }), '/channel'],
    ['empty category', line(0, { category: '' }), '/lines/0/category'],
    ['category of 65 chars', line(0, { category: 'c'.repeat(65) }), '/lines/0/category'],
    ['category with a slash', line(0, { category: 'tea/green' }), '/lines/0/category'],
    ['sku of 65 chars', line(0, { sku: 'S'.repeat(65) }), '/lines/0/sku'],
    ['empty sku', line(0, { sku: '' }), '/lines/0/sku'],
    ['empty line name', line(0, { name: '' }), '/lines/0/name'],
    ['line name of 201 chars', line(0, { name: '茶'.repeat(201) }), '/lines/0/name'],
  ];

  for (const [what, mutate, pointer, detail] of cases) {
    test(`${what} → 422 ${pointer}`, async () => {
      const id = uniq('bad');
      const b = base();
      mutate(b);
      const r = await putOrder(id, b);
      assertProblem(r, 422, 'validation_failed', pointer);
      if (detail) assert.match(r.body.detail, detail, `detail names the expected value: ${r.body.detail}`);
      assertProblem(await getOrder(id), 404, 'not_found');
      if (typeof b.customer_id === 'string' && /^[A-Za-z0-9._:@-]{1,128}$/.test(b.customer_id)) {
        assertProblem(await getCustomer(b.customer_id), 404, 'not_found', undefined);
      }
    });
  }

  test('1.0 is not an integer (quantity, unit_price, total)', async () => {
    for (const [field, pointer] of [['"quantity":2', '/lines/0/quantity'], ['"unit_price":12800', '/lines/0/unit_price'], ['"total":29000', '/total'], ['"shipping":1000', '/shipping']]) {
      const id = uniq('bad');
      const text = JSON.stringify(base());
      assert.ok(text.includes(field), field);
      const raw = text.replace(field, `${field}.0`);
      const r = await c.req('PUT', oPath(id), { key: S.keys.admin, rawBody: raw });
      assertProblem(r, 422, 'validation_failed', pointer);
      assertProblem(await getOrder(id), 404, 'not_found');
    }
  });

  test('bad order ids in the path → 400 invalid_parameter /path/id (every order route)', async () => {
    for (const bad of ['ord%20one', 'o'.repeat(129), 'ord%2Fx', 'ord%C3%A9']) {
      assertProblem(await c.put(`/v1/orders/${bad}`, orderBody(), { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
      assertProblem(await c.get(`/v1/orders/${bad}`, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
      assertProblem(await c.req('POST', `/v1/orders/${bad}/cancel`, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
      assertProblem(await c.post(`/v1/orders/${bad}/refunds`, { id: 'rf-1', amount: 1 }, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
    }
    // 128 characters is fine
    const ok = 'o'.repeat(120) + uniq('').slice(-8);
    assert.equal(ok.length, 128);
    assert.equal((await putOrder(ok, orderBody())).status, 201);
  });

  test('body errors: not JSON, duplicate keys, wrong media type', async () => {
    const id = uniq('bad');
    assertProblem(await c.req('PUT', oPath(id), { key: S.keys.admin, rawBody: '{"customer_id":' }), 400, 'malformed_json');
    const dup = JSON.stringify(base()).replace('"channel":"web"', '"channel":"web","channel":"tmall"');
    assertProblem(await c.req('PUT', oPath(id), { key: S.keys.admin, rawBody: dup }), 400, 'malformed_json');
    assertProblem(await c.req('PUT', oPath(id), { key: S.keys.admin, rawBody: JSON.stringify(base()), headers: { 'content-type': 'text/plain' } }),
      415, 'unsupported_media_type');
    assertProblem(await c.req('PUT', oPath(id), { key: S.keys.admin, rawBody: '[]' }), 422, 'validation_failed');
    assertProblem(await getOrder(id), 404, 'not_found');
  });
});

describe('get and methods', () => {
  test('unknown order → 404; unsupported methods → 405', async () => {
    assertProblem(await getOrder(uniq('nope')), 404, 'not_found');
    const r = await c.req('DELETE', oPath('ord-x'), { key: S.keys.admin });
    assertProblem(r, 405, 'method_not_allowed');
    assert.deepEqual(r.headers.allow.split(',').map((s) => s.trim()).sort(), ['GET', 'PUT']);
    for (const sub of ['cancel', 'refunds']) {
      const m = await c.req('GET', `${oPath('ord-x')}/${sub}`, { key: S.keys.admin });
      assertProblem(m, 405, 'method_not_allowed');
      assert.equal(m.headers.allow.trim(), 'POST');
    }
  });
});

describe('cancel', () => {
  test('cancel sets status and cancelled_at; cancelling again changes nothing', async () => {
    const id = uniq('ord');
    const body = orderBody();
    const p = await putOrder(id, body);
    assert.equal(p.status, 201, p.text);
    const t0 = nowMicros();
    const r1 = await cancel(id);
    const t1 = nowMicros();
    assert.equal(r1.status, 200, r1.text);
    assertOrderShape(r1.body);
    assertEchoes(r1.body, id, body);
    assert.equal(r1.body.status, 'cancelled');
    const at = assertServerTs(r1.body.cancelled_at, 'cancelled_at');
    assert.ok(at >= t0 - SKEW && at <= t1 + SKEW, 'cancelled_at is now');
    assert.equal(r1.body.qualifying, false, 'a cancelled order never qualifies');
    assert.equal(r1.body.created_at, p.body.created_at);

    const r2 = await cancel(id, S.keys.storefront);
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.body, r1.body, 'second cancel: unchanged, cancelled_at kept');
    assert.deepEqual((await getOrder(id)).body, r1.body);

    // an equivalent PUT is still a no-op and answers the stored (cancelled) order
    const r3 = await putOrder(id, body);
    assert.equal(r3.status, 200, r3.text);
    assert.deepEqual(r3.body, r1.body);
    const f = (await getCustomer(body.customer_id)).body.facts;
    assert.equal(f.order_count, 0);
    assert.equal(f.total_spent, 0);
  });

  test('cancel accepts an empty JSON object as body', async () => {
    const id = uniq('ord');
    assert.equal((await putOrder(id, orderBody())).status, 201);
    const r = await c.post(`${oPath(id)}/cancel`, {}, { key: S.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'cancelled');
  });

  test('cancel of an unknown order → 404', async () => {
    assertProblem(await cancel(uniq('nope')), 404, 'not_found');
  });

  test('Idempotency-Key on cancel: replay, reuse on another order', async () => {
    const id = uniq('ord');
    const other = uniq('ord');
    assert.equal((await putOrder(id, orderBody())).status, 201);
    assert.equal((await putOrder(other, orderBody())).status, 201);
    const ik = uniq('ik');
    const r1 = await cancel(id, S.keys.admin, { idempotencyKey: ik });
    assert.equal(r1.status, 200, r1.text);
    assert.notEqual(r1.headers['idempotent-replayed'], 'true');
    const r2 = await cancel(id, S.keys.admin, { idempotencyKey: ik });
    assert.equal(r2.status, 200);
    assert.equal(r2.headers['idempotent-replayed'], 'true');
    assert.deepEqual(r2.body, r1.body);
    assertProblem(await cancel(other, S.keys.admin, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assert.equal((await getOrder(other)).body.status, 'placed', 'the other order was not cancelled');
    assertProblem(await cancel(id, S.keys.admin, { idempotencyKey: '' }), 400, 'invalid_parameter', '/header/Idempotency-Key');
  });
});

describe('refunds', () => {
  async function newOrder(over = {}) {
    const id = uniq('ord');
    const body = orderBody(over);
    const r = await putOrder(id, body);
    assert.equal(r.status, 201, r.text);
    return { id, body, order: r.body };
  }

  test('partial refunds, then the rest; exceeding → 422 /amount naming what is refundable', async () => {
    const { id, body } = await newOrder();
    assert.equal(body.total, 29000);
    const t0 = nowMicros();
    const r1 = await refund(id, { id: 'rf-1', amount: 500, reason: 'damaged box' });
    const t1 = nowMicros();
    assert.equal(r1.status, 201, r1.text);
    assert.equal(r1.headers.location, `/v1/orders/${id}`);
    assert.deepEqual(Object.keys(r1.body).sort(), ['order', 'refund']);
    const rf = r1.body.refund;
    assert.deepEqual(Object.keys(rf).sort(), ['amount', 'created_at', 'id', 'reason']);
    assert.equal(rf.id, 'rf-1');
    assert.equal(rf.amount, 500);
    assert.equal(rf.reason, 'damaged box');
    const at = assertServerTs(rf.created_at);
    assert.ok(at >= t0 - SKEW && at <= t1 + SKEW);
    assertOrderShape(r1.body.order);
    assert.equal(r1.body.order.refunded_amount, 500);
    assert.deepEqual(r1.body.order.refunds, [rf]);
    assert.equal(r1.body.order.qualifying, true, 'a partially refunded order still qualifies');
    assert.equal(r1.body.order.status, 'placed');

    const r2 = await refund(id, { id: 'rf-2', amount: 1500 }, S.keys.storefront);
    assert.equal(r2.status, 201, r2.text);
    assert.equal(r2.body.refund.reason, null);
    assert.equal(r2.body.order.refunded_amount, 2000);
    assert.deepEqual(r2.body.order.refunds.map((x) => x.id), ['rf-1', 'rf-2'], 'oldest first');

    const over = await refund(id, { id: 'rf-3', amount: 27001 });
    assertProblem(over, 422, 'validation_failed', '/amount');
    assert.match(over.body.detail, /27000/, `detail says how much is refundable: ${over.body.detail}`);
    assert.equal((await getOrder(id)).body.refunded_amount, 2000, 'failed refund changed nothing');

    const full = await refund(id, { id: 'rf-3', amount: 27000, reason: 'returned' });
    assert.equal(full.status, 201, full.text);
    assert.equal(full.body.order.refunded_amount, 29000);
    assert.equal(full.body.order.qualifying, false, 'fully refunded: excluded by the default rule');
    assert.deepEqual(full.body.order.refunds.map((x) => x.id), ['rf-1', 'rf-2', 'rf-3']);

    const more = await refund(id, { id: 'rf-4', amount: 1 });
    assertProblem(more, 422, 'validation_failed', '/amount');
    assert.match(more.body.detail, /\b0\b/, `nothing refundable left: ${more.body.detail}`);

    const g = await getOrder(id);
    assert.deepEqual(g.body, full.body.order);
    const rows = await svc.db.query('SELECT sum(r.amount)::bigint AS s, count(*)::int AS n FROM refunds r JOIN orders o ON o.seq = r.order_seq WHERE o.shop_id = $1 AND o.id = $2', [S.shopId, id]);
    assert.deepEqual(rows.rows[0], { s: '29000', n: 3 });
  });

  test('same refund id: same values → 200 no-op; different values → 409 refund_conflict', async () => {
    const { id } = await newOrder();
    const r1 = await refund(id, { id: 'rf-a', amount: 700, reason: 'late delivery' });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await refund(id, reverseKeys({ id: 'rf-a', amount: 700, reason: 'late delivery' }));
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.headers['idempotent-replayed'], undefined, 'a no-op, not an Idempotency-Key replay');
    assert.deepEqual(r2.body, r1.body, 'stored refund and current order');

    const noReason = await refund(id, { id: 'rf-b', amount: 300 });
    assert.equal(noReason.status, 201, noReason.text);
    const again = await refund(id, { id: 'rf-b', amount: 300 });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.order.refunded_amount, 1000);

    for (const b of [
      { id: 'rf-a', amount: 701, reason: 'late delivery' },
      { id: 'rf-a', amount: 700, reason: 'late' },
      { id: 'rf-a', amount: 700 },
      { id: 'rf-b', amount: 300, reason: 'added later' },
    ]) {
      assertProblem(await refund(id, b), 409, 'refund_conflict');
    }
    const g = await getOrder(id);
    assert.equal(g.body.refunded_amount, 1000);
    assert.equal(g.body.refunds.length, 2);
    assert.deepEqual(g.body.refunds[0], r1.body.refund);
  });

  test('refunds on a cancelled order are allowed', async () => {
    const { id, body } = await newOrder();
    assert.equal((await cancel(id)).status, 200);
    const r = await refund(id, { id: 'rf-c', amount: body.total, reason: 'cancelled after payment' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.order.status, 'cancelled');
    assert.equal(r.body.order.refunded_amount, body.total);
  });

  test('refund of an unknown order → 404', async () => {
    assertProblem(await refund(uniq('nope'), { id: 'rf-1', amount: 1 }), 404, 'not_found');
  });

  test('refund validation → 422 with pointer', async () => {
    const { id } = await newOrder();
    const cases = [
      [{ id: 'rf-1', amount: 0 }, '/amount'],
      [{ id: 'rf-1', amount: -5 }, '/amount'],
      [{ id: 'rf-1', amount: 1.5 }, '/amount'],
      [{ id: 'rf-1', amount: '5' }, '/amount'],
      [{ id: 'rf-1' }, '/amount'],
      [{ amount: 5 }, '/id'],
      [{ id: 'rf 1', amount: 5 }, '/id'],
      [{ id: '', amount: 5 }, '/id'],
      [{ id: 'r'.repeat(129), amount: 5 }, '/id'],
      [{ id: 'rf-1', amount: 5, reason: '' }, '/reason'],
      [{ id: 'rf-1', amount: 5, reason: 'x'.repeat(201) }, '/reason'],
      [{ id: 'rf-1', amount: 5, reason: 5 }, '/reason'],
      [{ id: 'rf-1', amount: 5, note: 'x' }, '/note'],
    ];
    for (const [b, pointer] of cases) assertProblem(await refund(id, b), 422, 'validation_failed', pointer);
    const raw = await c.req('POST', `${oPath(id)}/refunds`, { key: S.keys.admin, rawBody: '{"id":"rf-1","amount":5.0}' });
    assertProblem(raw, 422, 'validation_failed', '/amount');
    const g = await getOrder(id);
    assert.equal(g.body.refunded_amount, 0);
    assert.deepEqual(g.body.refunds, []);
  });

  test('Idempotency-Key on refunds: replay with Idempotent-Replayed, reuse with another body → 422', async () => {
    const { id } = await newOrder();
    const ik = uniq('ik');
    const r1 = await refund(id, { id: 'rf-i', amount: 100 }, S.keys.admin, { idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await refund(id, { id: 'rf-i', amount: 100 }, S.keys.admin, { idempotencyKey: ik });
    assert.equal(r2.status, 201);
    assert.equal(r2.headers['idempotent-replayed'], 'true');
    assert.deepEqual(r2.body, r1.body);
    assertProblem(await refund(id, { id: 'rf-j', amount: 100 }, S.keys.admin, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assert.equal((await getOrder(id)).body.refunded_amount, 100);
  });

  test('20 concurrent equal refunds over the total: exactly the 14 that fit succeed', async () => {
    const { id, body } = await newOrder({
      lines: [{ sku: 'TEA-GIFT', category: 'gift-box', role: 'regular', quantity: 1, unit_price: 10000 }], shipping: 0, discount: 0,
    });
    assert.equal(body.total, 10000);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => refund(id, { id: `rf-${i}`, amount: 700 }, i % 2 ? S.keys.admin : S.keys.storefront)));
    const ok = rs.filter((r) => r.status === 201);
    const refused = rs.filter((r) => r.status !== 201);
    assert.equal(ok.length, 14, rs.map((r) => `${r.status} ${r.text.slice(0, 120)}`).join('\n'));
    for (const r of refused) assertProblem(r, 422, 'validation_failed', '/amount');
    for (const r of ok) assert.ok(r.body.order.refunded_amount <= 10000);
    const g = await getOrder(id);
    assert.equal(g.body.refunded_amount, 9800);
    assert.equal(g.body.refunds.length, 14);
    assert.deepEqual(new Set(g.body.refunds.map((x) => x.id)), new Set(ok.map((r) => r.body.refund.id)));
    const db = await svc.db.query(`SELECT o.total, o.refunded_amount, (SELECT sum(amount) FROM refunds r WHERE r.order_seq = o.seq)::bigint AS s
      FROM orders o WHERE o.shop_id = $1 AND o.id = $2`, [S.shopId, id]);
    assert.deepEqual(db.rows[0], { total: '10000', refunded_amount: '9800', s: '9800' });
  });

  test('20 concurrent refunds of different amounts: never above the total, and each refusal really did not fit', async () => {
    const { id, body } = await newOrder({
      lines: [{ sku: 'TEA-PUER', category: 'tea', role: 'regular', quantity: 1, unit_price: 10000 }], shipping: 0, discount: 0,
    });
    const amounts = Array.from({ length: 20 }, (_, i) => 300 + ((i * 377) % 1200)); // 300..1499, Σ > 10000
    assert.ok(amounts.reduce((a, b) => a + b, 0) > body.total);
    const rs = await Promise.all(amounts.map((amount, i) => refund(id, { id: `rf-${i}`, amount })));
    const okAmounts = [];
    const refusedAmounts = [];
    rs.forEach((r, i) => {
      if (r.status === 201) okAmounts.push(amounts[i]);
      else { assertProblem(r, 422, 'validation_failed', '/amount'); refusedAmounts.push(amounts[i]); }
    });
    const refunded = okAmounts.reduce((a, b) => a + b, 0);
    assert.ok(refunded <= body.total, `refunded ${refunded} > total`);
    const g = await getOrder(id);
    assert.equal(g.body.refunded_amount, refunded);
    assert.equal(g.body.refunds.length, okAmounts.length);
    // the room left only shrinks, so a refusal means the amount exceeds even the final room
    for (const a of refusedAmounts) assert.ok(a > body.total - refunded, `refused ${a} although ${body.total - refunded} was left`);
    const db = await svc.db.query('SELECT refunded_amount FROM orders WHERE shop_id = $1 AND id = $2', [S.shopId, id]);
    assert.equal(Number(db.rows[0].refunded_amount), refunded);
  });
});

describe('isolation between shops', () => {
  test("another shop's order is 404 for GET, cancel and refunds; the same id is a separate order there", async () => {
    const id = uniq('ord');
    const body = orderBody();
    const p = await putOrder(id, body);
    assert.equal(p.status, 201, p.text);
    for (const key of [T.keys.admin, T.keys.storefront]) {
      assertProblem(await getOrder(id, key), 404, 'not_found');
      assertProblem(await cancel(id, key), 404, 'not_found');
      assertProblem(await refund(id, { id: 'rf-x', amount: 1 }, key), 404, 'not_found');
    }
    assertProblem(await getOrder(id, T.keys.readonly), 404, 'not_found');
    assertProblem(await getCustomer(body.customer_id, T.keys.admin), 404, 'not_found');

    const tBody = orderBody({ channel: 'tmall' });
    const tp = await putOrder(id, tBody, T.keys.admin);
    assert.equal(tp.status, 201, `same id in another shop is a new order: ${tp.text}`);
    assert.equal(tp.body.channel, 'tmall');
    assert.equal((await cancel(id, T.keys.admin)).status, 200);
    const g = await getOrder(id);
    assert.deepEqual(g.body, p.body, "the first shop's order is untouched");
    assert.equal((await getOrder(id, T.keys.admin)).body.status, 'cancelled');
  });
});

describe('scopes', () => {
  test('readonly cannot PUT, cancel or refund (403 even for unknown ids); it can GET', async () => {
    const id = uniq('ord');
    assert.equal((await putOrder(id, orderBody())).status, 201);
    for (const oid of [id, uniq('nope')]) {
      assertProblem(await putOrder(oid, orderBody(), S.keys.readonly), 403, 'forbidden');
      assertProblem(await cancel(oid, S.keys.readonly), 403, 'forbidden');
      assertProblem(await refund(oid, { id: 'rf-1', amount: 1 }, S.keys.readonly), 403, 'forbidden');
    }
    const g = await getOrder(id, S.keys.readonly);
    assert.equal(g.status, 200);
    assert.equal(g.body.status, 'placed');
    assert.equal(g.body.refunded_amount, 0);
  });

  test('storefront can PUT, GET, cancel and refund', async () => {
    const id = uniq('ord');
    const body = orderBody();
    assert.equal((await putOrder(id, body, S.keys.storefront)).status, 201);
    assert.equal((await getOrder(id, S.keys.storefront)).status, 200);
    assert.equal((await refund(id, { id: 'rf-sf', amount: 100 }, S.keys.storefront)).status, 201);
    assert.equal((await cancel(id, S.keys.storefront)).status, 200);
  });

  test('the platform key gets 403 on every order route; no key gets 401', async () => {
    const id = uniq('ord');
    assert.equal((await putOrder(id, orderBody())).status, 201);
    for (const oid of [id, uniq('nope')]) {
      assertProblem(await putOrder(oid, orderBody(), svc.platformKey), 403, 'forbidden');
      assertProblem(await getOrder(oid, svc.platformKey), 403, 'forbidden');
      assertProblem(await cancel(oid, svc.platformKey), 403, 'forbidden');
      assertProblem(await refund(oid, { id: 'rf-1', amount: 1 }, svc.platformKey), 403, 'forbidden');
    }
    assertProblem(await c.put(oPath(id), orderBody()), 401, 'unauthenticated');
    assertProblem(await c.get(oPath(id)), 401, 'unauthenticated');
    assertProblem(await c.req('POST', `${oPath(id)}/cancel`), 401, 'unauthenticated');
    assertProblem(await c.post(`${oPath(id)}/refunds`, { id: 'rf-1', amount: 1 }), 401, 'unauthenticated');
    assert.equal((await getOrder(id)).body.status, 'placed');
  });
});
