// Fulfilment events (orders.md, slice 2): POST /v1/orders/{id}/events sets
// fulfilment.shipped_at / delivered_at / completed_at; cancelled orders → 409
// order_cancelled; validation; Idempotency-Key; isolation; scopes.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, uniq,
} from '../lib/harness.js';

let svc;
let c;
let S; // the shop under test
let T; // another shop

const NONE = { shipped_at: null, delivered_at: null, completed_at: null };
const FIELD = { shipped: 'shipped_at', delivered: 'delivered_at', completed: 'completed_at' };

const oPath = (id) => `/v1/orders/${encodeURIComponent(id)}`;
const event = (id, body, key = S.keys.admin, o = {}) => c.post(`${oPath(id)}/events`, body, { key, ...o });
const getOrder = (id, key = S.keys.admin) => c.get(oPath(id), { key });
const getCustomer = (id, key = S.keys.admin) => c.get(`/v1/customers/${encodeURIComponent(id)}`, { key });

function orderBody(over = {}) {
  return {
    customer_id: uniq('cust'),
    placed_at: '2026-11-01T10:00:00+08:00',
    channel: 'web',
    currency: 'CNY',
    lines: [
      { sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular', quantity: 2, unit_price: 12800 },
      { sku: 'CUP-GLASS-200', category: 'teaware', role: 'activity', quantity: 1, unit_price: 3900, discount: 900 },
    ],
    shipping: 1000,
    discount: 600,
    total: 29000,
    ...over,
  };
}

/** A new order in shop `shop` (default S); returns {id, body, order}. */
async function newOrder(shop = S, over = {}) {
  const id = uniq('ord');
  const body = orderBody(over);
  const r = await c.put(oPath(id), body, { key: shop.keys.admin });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.fulfilment, NONE, 'a new order has no fulfilment events');
  return { id, body, order: r.body };
}

/** Asserts `got` equals `before` except for fulfilment, which equals `fulfilment` (instants compared exactly). */
function assertOnlyFulfilment(got, before, fulfilment, what = '') {
  const { fulfilment: gf, ...gRest } = got;
  const { fulfilment: _, ...bRest } = before;
  assert.deepEqual(gRest, bRest, `${what}: nothing but fulfilment changes`);
  assert.deepEqual(Object.keys(gf).sort(), ['completed_at', 'delivered_at', 'shipped_at'], `${what}: fulfilment members`);
  for (const k of Object.keys(FIELD).map((t) => FIELD[t])) {
    if (fulfilment[k] === null) {
      assert.equal(gf[k], null, `${what}: fulfilment.${k} stays null`);
    } else {
      assertServerTs(gf[k], `${what}: fulfilment.${k}`);
      assert.equal(tsMicros(gf[k]), tsMicros(fulfilment[k]), `${what}: fulfilment.${k} ${gf[k]} is the instant ${fulfilment[k]}`);
    }
  }
}

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
  T = await setupShop(svc);
});
after(async () => { await svc?.stop(); });

describe('recording events', () => {
  test('shipped, delivered, completed set their times (in UTC) and nothing else', async () => {
    const { id, order } = await newOrder();
    const f = { ...NONE };

    const s = await event(id, { type: 'shipped', at: '2026-11-02T16:45:00+08:00' });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.body.fulfilment.shipped_at.slice(0, 19), '2026-11-02T08:45:00', `rendered in UTC: ${s.body.fulfilment.shipped_at}`);
    f.shipped_at = '2026-11-02T08:45:00Z';
    assertOnlyFulfilment(s.body, order, f, 'shipped');

    const d = await event(id, { type: 'delivered', at: '2026-11-04T09:30:15.250000-05:00' }, S.keys.storefront);
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.fulfilment.delivered_at.slice(0, 19), '2026-11-04T14:30:15');
    f.delivered_at = '2026-11-04T14:30:15.25Z';
    assertOnlyFulfilment(d.body, order, f, 'delivered');

    const k = await event(id, { type: 'completed', at: '2026-11-10T00:00:00.123456Z' });
    assert.equal(k.status, 200, k.text);
    assert.equal(k.body.fulfilment.completed_at, '2026-11-10T00:00:00.123456Z', 'microseconds are kept');
    f.completed_at = '2026-11-10T00:00:00.123456Z';
    assertOnlyFulfilment(k.body, order, f, 'completed');

    const g = await getOrder(id);
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, k.body, 'GET returns the recorded fulfilment');
    const ro = await getOrder(id, S.keys.readonly);
    assert.deepEqual(ro.body, k.body);
  });

  test('each type can come first, alone; the others stay null', async () => {
    for (const type of ['completed', 'delivered', 'shipped']) {
      const { id, order } = await newOrder();
      const at = '2026-11-03T12:00:00Z';
      const r = await event(id, { type, at });
      assert.equal(r.status, 200, r.text);
      assertOnlyFulfilment(r.body, order, { ...NONE, [FIELD[type]]: at }, type);
    }
  });

  test('a later event of the same type replaces the time; the other times are untouched', async () => {
    const { id, order } = await newOrder();
    assert.equal((await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' })).status, 200);
    assert.equal((await event(id, { type: 'delivered', at: '2026-11-03T08:00:00Z' })).status, 200);

    const r1 = await event(id, { type: 'shipped', at: '2026-11-02T20:30:00+08:00' });
    assert.equal(r1.status, 200, r1.text);
    assertOnlyFulfilment(r1.body, order, { ...NONE, shipped_at: '2026-11-02T12:30:00Z', delivered_at: '2026-11-03T08:00:00Z' }, 'reshipped');

    const r2 = await event(id, { type: 'delivered', at: '2026-11-05T08:00:00Z' }, S.keys.storefront);
    assert.equal(r2.status, 200, r2.text);
    assertOnlyFulfilment(r2.body, order, { ...NONE, shipped_at: '2026-11-02T12:30:00Z', delivered_at: '2026-11-05T08:00:00Z' }, 'redelivered');
    assert.deepEqual((await getOrder(id)).body, r2.body);
  });

  test('the replacing event may carry an earlier time (the last event received wins)', async () => {
    const { id, order } = await newOrder();
    assert.equal((await event(id, { type: 'shipped', at: '2026-11-05T08:00:00Z' })).status, 200);
    const r = await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' });
    assert.equal(r.status, 200, r.text);
    assertOnlyFulfilment(r.body, order, { ...NONE, shipped_at: '2026-11-02T08:00:00Z' }, 'corrected');
  });

  test('the same event twice is harmless (200, same order)', async () => {
    const { id } = await newOrder();
    const r1 = await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' });
    assert.equal(r1.status, 200, r1.text);
    const r2 = await event(id, { at: '2026-11-02T16:00:00+08:00', type: 'shipped' });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.headers['idempotent-replayed'], undefined);
    assert.deepEqual(r2.body, r1.body);
  });

  test('events do not change status, qualifying, refunds or the customer facts', async () => {
    const { id, body } = await newOrder();
    const rf = await c.post(`${oPath(id)}/refunds`, { id: 'rf-1', amount: 500 }, { key: S.keys.admin });
    assert.equal(rf.status, 201, rf.text);
    const before = (await getCustomer(body.customer_id)).body;
    const r = await event(id, { type: 'completed', at: '2026-11-09T10:00:00+08:00' });
    assert.equal(r.status, 200, r.text);
    assertOnlyFulfilment(r.body, rf.body.order, { ...NONE, completed_at: '2026-11-09T02:00:00Z' }, 'after a refund');
    assert.equal(r.body.status, 'placed');
    assert.equal(r.body.qualifying, true);
    assert.equal(r.body.refunded_amount, 500);
    const afterEv = (await getCustomer(body.customer_id)).body;
    assert.deepEqual(afterEv.facts, before.facts, 'facts unchanged');
    assert.equal(afterEv.updated_at, before.updated_at, 'customer untouched');
  });

  test('a refund after an event keeps the fulfilment', async () => {
    const { id } = await newOrder();
    const e = await event(id, { type: 'delivered', at: '2026-11-04T10:00:00Z' });
    assert.equal(e.status, 200, e.text);
    const rf = await c.post(`${oPath(id)}/refunds`, { id: 'rf-1', amount: 100 }, { key: S.keys.admin });
    assert.equal(rf.status, 201, rf.text);
    assert.deepEqual(rf.body.order.fulfilment, e.body.fulfilment);
  });
});

describe('cancelled orders', () => {
  test('an event on a cancelled order → 409 order_cancelled and changes nothing', async () => {
    const { id } = await newOrder();
    const cx = await c.req('POST', `${oPath(id)}/cancel`, { key: S.keys.admin });
    assert.equal(cx.status, 200, cx.text);
    for (const type of ['shipped', 'delivered', 'completed']) {
      const r = await event(id, { type, at: '2026-11-02T08:00:00Z' });
      assertProblem(r, 409, 'order_cancelled');
      assert.ok(r.body.detail.length > 0);
    }
    assertProblem(await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, S.keys.storefront), 409, 'order_cancelled');
    assert.deepEqual((await getOrder(id)).body, cx.body, 'unchanged');
  });

  test('an order shipped and then cancelled keeps its shipped_at, and takes no more events', async () => {
    const { id } = await newOrder();
    const s = await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' });
    assert.equal(s.status, 200, s.text);
    const cx = await c.req('POST', `${oPath(id)}/cancel`, { key: S.keys.admin });
    assert.equal(cx.status, 200, cx.text);
    assert.equal(cx.body.status, 'cancelled');
    assert.deepEqual(cx.body.fulfilment, s.body.fulfilment, 'cancelling does not erase the fulfilment');
    assertProblem(await event(id, { type: 'shipped', at: '2026-11-03T08:00:00Z' }), 409, 'order_cancelled');
    assertProblem(await event(id, { type: 'delivered', at: '2026-11-03T08:00:00Z' }), 409, 'order_cancelled');
    assert.deepEqual((await getOrder(id)).body, cx.body);
  });
});

describe('not found and isolation', () => {
  test('unknown order → 404', async () => {
    for (const key of [S.keys.admin, S.keys.storefront]) {
      assertProblem(await event(uniq('nope'), { type: 'shipped', at: '2026-11-02T08:00:00Z' }, key), 404, 'not_found');
    }
  });

  test("another shop's order → 404 and stays untouched; the same id there is a separate order", async () => {
    const { id, order } = await newOrder();
    for (const key of [T.keys.admin, T.keys.storefront]) {
      assertProblem(await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, key), 404, 'not_found');
    }
    assert.deepEqual((await getOrder(id)).body, order);

    const t = await c.put(oPath(id), orderBody({ channel: 'tmall' }), { key: T.keys.admin });
    assert.equal(t.status, 201, t.text);
    const r = await event(id, { type: 'delivered', at: '2026-11-06T08:00:00Z' }, T.keys.admin);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.channel, 'tmall');
    assert.deepEqual((await getOrder(id)).body, order, "S's order did not get T's event");
  });

  test('bad order ids in the path → 400 invalid_parameter /path/id', async () => {
    for (const bad of ['ord%20one', 'o'.repeat(129), 'ord%2Fx', 'ord%C3%A9']) {
      assertProblem(await c.post(`/v1/orders/${bad}/events`, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, { key: S.keys.admin }),
        400, 'invalid_parameter', '/path/id');
    }
  });
});

describe('validation', () => {
  let id;
  let order;
  before(async () => { ({ id, order } = await newOrder()); });

  const cases = [
    ['unknown type', { type: 'returned', at: '2026-11-02T08:00:00Z' }, '/type'],
    ['type in upper case', { type: 'Shipped', at: '2026-11-02T08:00:00Z' }, '/type'],
    ['empty type', { type: '', at: '2026-11-02T08:00:00Z' }, '/type'],
    ['type a number', { type: 1, at: '2026-11-02T08:00:00Z' }, '/type'],
    ['type null', { type: null, at: '2026-11-02T08:00:00Z' }, '/type'],
    ['type an array', { type: ['shipped'], at: '2026-11-02T08:00:00Z' }, '/type'],
    ['at not a date', { type: 'shipped', at: 'yesterday' }, '/at'],
    ['at without offset', { type: 'shipped', at: '2026-11-02T08:00:00' }, '/at'],
    ['at date only', { type: 'shipped', at: '2026-11-02' }, '/at'],
    ['at month 13', { type: 'shipped', at: '2026-13-02T08:00:00Z' }, '/at'],
    ['at 30 February', { type: 'shipped', at: '2026-02-30T08:00:00Z' }, '/at'],
    ['at hour 25', { type: 'shipped', at: '2026-11-02T25:00:00Z' }, '/at'],
    ['at with a space', { type: 'shipped', at: '2026-11-02 08:00:00Z' }, '/at'],
    ['at empty', { type: 'shipped', at: '' }, '/at'],
    ['at a number', { type: 'shipped', at: 1762070400 }, '/at'],
    ['at null', { type: 'shipped', at: null }, '/at'],
    ['missing type', { at: '2026-11-02T08:00:00Z' }, '/type'],
    ['missing at', { type: 'shipped' }, '/at'],
    ['unknown field', { type: 'shipped', at: '2026-11-02T08:00:00Z', carrier: 'SF Express' }, '/carrier'],
    ['shipped_at instead of at', { type: 'shipped', shipped_at: '2026-11-02T08:00:00Z' }, /^\/(at|shipped_at)$/],
  ];
  for (const [what, body, pointer] of cases) {
    test(`${what} → 422 ${pointer}`, async () => {
      assertProblem(await event(id, body), 422, 'validation_failed', pointer);
      assert.deepEqual((await getOrder(id)).body, order, 'nothing recorded');
    });
  }

  test('an empty object → 422 pointing at a missing member; not an object → 422', async () => {
    assertProblem(await event(id, {}), 422, 'validation_failed', /^\/(type|at)$/);
    for (const raw of ['[]', '"shipped"', '42', 'null']) {
      assertProblem(await c.req('POST', `${oPath(id)}/events`, { key: S.keys.admin, rawBody: raw }), 422, 'validation_failed');
    }
    assert.deepEqual((await getOrder(id)).body, order);
  });

  test('body errors: not JSON, duplicate keys → 400 malformed_json; wrong media type → 415', async () => {
    const p = `${oPath(id)}/events`;
    assertProblem(await c.req('POST', p, { key: S.keys.admin, rawBody: '{"type":"shipped",' }), 400, 'malformed_json');
    assertProblem(await c.req('POST', p, { key: S.keys.admin, rawBody: '{"type":"shipped","type":"delivered","at":"2026-11-02T08:00:00Z"}' }),
      400, 'malformed_json');
    assertProblem(await c.req('POST', p, {
      key: S.keys.admin, rawBody: '{"type":"shipped","at":"2026-11-02T08:00:00Z"}', headers: { 'content-type': 'text/plain' },
    }), 415, 'unsupported_media_type');
    assert.deepEqual((await getOrder(id)).body, order);
  });

  test('a body over the limit → 413', async () => {
    const r = await c.req('POST', `${oPath(id)}/events`, {
      key: S.keys.admin, rawBody: `{"type":"shipped","at":"2026-11-02T08:00:00Z","x":"${'a'.repeat(1024 * 1024 + 10)}"}`,
    });
    assertProblem(r, 413, 'payload_too_large');
  });
});

describe('Idempotency-Key', () => {
  test('replay → same status and body with Idempotent-Replayed; another request with the key → 422', async () => {
    const { id, order } = await newOrder();
    const other = await newOrder();
    const ik = uniq('ik');
    const body = { type: 'shipped', at: '2026-11-02T08:00:00Z' };
    const r1 = await event(id, body, S.keys.admin, { idempotencyKey: ik });
    assert.equal(r1.status, 200, r1.text);
    assert.notEqual(r1.headers['idempotent-replayed'], 'true');

    // a newer event in between: the replay still answers the stored response
    const r2 = await event(id, { type: 'delivered', at: '2026-11-03T08:00:00Z' });
    assert.equal(r2.status, 200, r2.text);
    const replay = await event(id, body, S.keys.admin, { idempotencyKey: ik });
    assert.equal(replay.status, 200, replay.text);
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    assert.deepEqual(replay.body, r1.body, 'the stored response');
    assert.deepEqual((await getOrder(id)).body, r2.body, 'a replay records nothing');

    // same key: different type, different at, another order → 422 idempotency_key_reused
    assertProblem(await event(id, { type: 'delivered', at: '2026-11-02T08:00:00Z' }, S.keys.admin, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assertProblem(await event(id, { type: 'shipped', at: '2026-11-02T09:00:00Z' }, S.keys.admin, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assertProblem(await event(other.id, body, S.keys.admin, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assert.deepEqual((await getOrder(other.id)).body, other.order, 'the other order got no event');
    assertOnlyFulfilment((await getOrder(id)).body, order,
      { ...NONE, shipped_at: '2026-11-02T08:00:00Z', delivered_at: '2026-11-03T08:00:00Z' }, 'after the refused reuses');

    // keys are per API key: the storefront key may use the same value
    const sf = await event(id, { type: 'completed', at: '2026-11-04T08:00:00Z' }, S.keys.storefront, { idempotencyKey: ik });
    assert.equal(sf.status, 200, sf.text);
    assert.notEqual(sf.headers['idempotent-replayed'], 'true');
    assert.equal(sf.body.fulfilment.completed_at.slice(0, 19), '2026-11-04T08:00:00');
  });

  test('a refused event (409 order_cancelled) replays as the same 409', async () => {
    const { id } = await newOrder();
    assert.equal((await c.req('POST', `${oPath(id)}/cancel`, { key: S.keys.admin })).status, 200);
    const ik = uniq('ik');
    const body = { type: 'delivered', at: '2026-11-03T08:00:00Z' };
    const r1 = await event(id, body, S.keys.admin, { idempotencyKey: ik });
    assertProblem(r1, 409, 'order_cancelled');
    const r2 = await event(id, body, S.keys.admin, { idempotencyKey: ik });
    assertProblem(r2, 409, 'order_cancelled');
  });

  test('an invalid Idempotency-Key → 400 /header/Idempotency-Key', async () => {
    const { id, order } = await newOrder();
    for (const bad of ['', 'k'.repeat(256), 'a\tb']) {
      assertProblem(await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, S.keys.admin, { idempotencyKey: bad }),
        400, 'invalid_parameter', '/header/Idempotency-Key');
    }
    assert.deepEqual((await getOrder(id)).body, order);
  });
});

describe('scopes, auth and methods', () => {
  test('readonly → 403 (even for unknown orders); platform → 403; no key → 401', async () => {
    const { id, order } = await newOrder();
    for (const oid of [id, uniq('nope')]) {
      assertProblem(await event(oid, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, S.keys.readonly), 403, 'forbidden');
      assertProblem(await event(oid, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, svc.platformKey), 403, 'forbidden');
      assertProblem(await c.post(`${oPath(oid)}/events`, { type: 'shipped', at: '2026-11-02T08:00:00Z' }), 401, 'unauthenticated');
    }
    assert.deepEqual((await getOrder(id)).body, order);
  });

  test('admin and storefront may record events', async () => {
    const { id } = await newOrder();
    assert.equal((await event(id, { type: 'shipped', at: '2026-11-02T08:00:00Z' }, S.keys.admin)).status, 200);
    assert.equal((await event(id, { type: 'delivered', at: '2026-11-03T08:00:00Z' }, S.keys.storefront)).status, 200);
  });

  test('unsupported methods → 405 with Allow: POST', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const r = await c.req(method, `${oPath('ord-x')}/events`, { key: S.keys.admin });
      assertProblem(r, 405, 'method_not_allowed');
      assert.equal(r.headers.allow.trim(), 'POST');
    }
  });
});
