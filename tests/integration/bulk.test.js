// POST /v1/orders/bulk (orders.md, slice 3): NDJSON, one order per line (the
// PUT /v1/orders/{id} body plus "id"), each line handled like PUT in its own
// transaction — per-line results in line order (1-based physical lines,
// blank lines skipped but counted), counts, the database afterwards (exactly
// the good orders, facts updated), the 1000-line and body limits, media
// type, empty body, scopes and shop isolation.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, snapshotDb, uniq,
} from '../lib/harness.js';

let svc;
let c;
let S; // shop for the small tests (CNY)
let T; // another shop (CNY) for isolation

const BULK = '/v1/orders/bulk';
const NDJSON = 'application/x-ndjson';

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
  T = await setupShop(svc);
});
after(async () => { await svc?.stop(); });

/** POST the NDJSON text; `type: null` sends no Content-Type at all. */
const bulk = (text, { key = S.keys.admin, type = NDJSON, path = BULK } = {}) =>
  c.req('POST', path, { key, rawBody: text, headers: { 'content-type': type }, timeoutMs: 180_000 });
const oPath = (id) => `/v1/orders/${encodeURIComponent(id)}`;
const getOrder = (id, key = S.keys.admin) => c.get(oPath(id), { key });
const getCustomer = (id, key = S.keys.admin) => c.get(`/v1/customers/${encodeURIComponent(id)}`, { key });
const ndjson = (...lines) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';

/** Σ(quantity*unit_price − line discount) + shipping − discount */
function expectedTotal(o) {
  const lines = o.lines.reduce((s, l) => s + l.quantity * l.unit_price - (l.discount ?? 0), 0);
  return lines + (o.shipping ?? 0) - (o.discount ?? 0);
}

/** A valid bulk line (a tea shop in CNY): the PUT body plus "id"; total recomputed unless given. */
function order(id, over = {}) {
  const o = {
    id,
    customer_id: uniq('cust'),
    placed_at: '2026-11-01T10:00:00+08:00',
    channel: 'web',
    currency: 'CNY',
    lines: [{ sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular', quantity: 2, unit_price: 12800 }],
    ...over,
  };
  if (id === undefined) delete o.id;
  if (!('total' in over)) o.total = expectedTotal(o);
  return o;
}

/** The PUT body of a bulk line (without "id"). */
const putBody = ({ id: _, ...b }) => b;

/** Every order id of a shop, in the order rebuy received them (GET /v1/orders, all pages). */
async function orderIds(key) {
  const ids = [];
  let cursor = null;
  do {
    const r = await c.get(`/v1/orders?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { key });
    assert.equal(r.status, 200, r.text);
    ids.push(...r.body.items.map((o) => o.id));
    cursor = r.body.next_cursor;
  } while (cursor);
  return ids;
}

async function dbOrderCount(shopId) {
  return Number((await svc.db.query('SELECT count(*) FROM orders WHERE shop_id = $1', [shopId])).rows[0].count);
}

/** The stored order equals bulk line b (defaults filled in, placed_at in UTC). */
function assertStored(o, b) {
  assert.equal(o.id, b.id);
  assert.equal(o.customer_id, b.customer_id);
  assertServerTs(o.placed_at, 'placed_at');
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
  assert.equal(o.status, 'placed');
  assert.equal(o.refunded_amount, 0);
  assert.equal(o.qualifying, true);
}

/** Checks one result entry against what was expected for its line. */
function assertResult(r, want, ctx) {
  const where = `${ctx}: line ${want.line}: ${JSON.stringify(r)}`;
  assert.equal(r.line, want.line, where);
  assert.equal(r.id, want.id, where);
  assert.equal(r.status, want.status, where);
  if (want.status === 200 || want.status === 201) {
    assert.deepEqual(Object.keys(r).sort(), ['id', 'line', 'status'], `${where}: no code/detail/pointer on success`);
    return;
  }
  assert.equal(r.code, want.code, where);
  assert.equal(typeof r.detail, 'string', where);
  assert.ok(r.detail.length > 0, `${where}: detail`);
  if (want.pointer !== undefined) assert.equal(r.pointer, want.pointer, where);
  if (want.detail instanceof RegExp) assert.match(r.detail, want.detail, where);
}

describe('a mixed batch', () => {
  let M; // a shop of its own, so its order list is exactly what this test wrote
  const existing = order('m-existing', {
    customer_id: 'm-cust-a',
    placed_at: '2026-10-01T10:00:00+08:00',
    lines: [{ sku: 'TEA-LJ-250', name: 'Longjing 250 g', category: 'tea', role: 'regular', quantity: 2, unit_price: 12800 }],
    shipping: 1000,
  });
  const taken = order('m-taken', {
    customer_id: 'm-cust-b',
    placed_at: '2026-10-05T12:00:00Z',
    lines: [{ sku: 'TEA-TGY-250', category: 'tea', role: 'regular', quantity: 1, unit_price: 9800 }],
  });
  const n1 = order('m-new-1', {
    customer_id: 'm-cust-new',
    placed_at: '2026-11-01T09:30:00+08:00',
    channel: 'wechat-mini',
    lines: [
      { sku: 'TEA-BLC-10', name: 'Bi Luo Chun sample 10 g', category: 'tea', role: 'traffic', quantity: 1, unit_price: 1500, discount: 500 },
      { sku: 'CUP-GLASS-200', name: 'Double-wall glass cup 200 ml', category: 'teaware', role: 'activity', quantity: 1, unit_price: 3900 },
    ],
    shipping: 800,
    discount: 200,
  });
  const n2 = order('m-new-2', {
    customer_id: 'm-cust-new',
    placed_at: '2026-11-20T21:15:00+08:00',
    lines: [{ sku: 'TEA-DHP-100', name: 'Da Hong Pao 100 g', category: 'tea', role: 'regular', quantity: 1, unit_price: 26800 }],
  });
  const n3 = order('m-new-3', {
    customer_id: 'm-cust-a',
    placed_at: '2026-11-03T08:00:00Z',
    channel: 'store:jingan',
    lines: [{ sku: 'TEA-S-5', category: 'tea-sample', role: 'traffic', quantity: 3, unit_price: 900 }],
  });
  const n4 = order('m-new-4', {
    customer_id: 'm-cust-c',
    placed_at: '2026-11-04T10:00:00+08:00',
    lines: [{ sku: 'POT-YX-150', category: 'teaware', role: 'regular', quantity: 1, unit_price: 26800, discount: 2800 }],
    shipping: 1200,
  });
  const n5 = order('m-new-5', {
    customer_id: 'm-cust-d',
    placed_at: '2026-11-05T18:45:00+08:00',
    channel: 'douyin',
    lines: [{ sku: 'TEA-PE-357', name: "Pu'er cake 357 g", category: 'tea', role: 'activity', quantity: 2, unit_price: 19900 }],
    discount: 1800,
  });
  // The resend of `existing`: keys in another order, defaults written out.
  const resend = Object.fromEntries(Object.entries({
    ...existing,
    discount: 0,
    lines: existing.lines.map((l) => ({ discount: 0, ...l })),
  }).reverse());
  // Lines that fail; each names a customer that must not come into existence.
  const conflicting = order('m-taken', {
    customer_id: 'm-ghost-1',
    lines: [{ sku: 'TEA-TGY-250', category: 'tea', role: 'regular', quantity: 2, unit_price: 9800 }],
  });
  const badTotal = order('m-bad-total', { customer_id: 'm-ghost-2', total: 12345 });
  const noId = order(undefined, { customer_id: 'm-ghost-3' });
  const unknownField = { ...order('m-bad-field', { customer_id: 'm-ghost-4' }), coupon: 'TEA10' };
  const badCurrency = order('m-bad-currency', { customer_id: 'm-ghost-5', currency: 'USD' });
  const badLineDiscount = order('m-bad-discount', {
    customer_id: 'm-ghost-6',
    lines: [{ sku: 'CUP-1', category: 'teaware', role: 'regular', quantity: 1, unit_price: 1000, discount: 1001 }],
    shipping: 500,
  });
  const n2Different = { ...n2, customer_id: 'm-ghost-7' };
  const numericId = { ...order('m-numeric', { customer_id: 'm-ghost-8' }), id: 42 };
  const badId = order('m bad id', { customer_id: 'm-ghost-9' });
  const badCustomer = order('m-bad-customer', { customer_id: 'm ghost 10' });
  const GHOSTS = ['m-ghost-1', 'm-ghost-2', 'm-ghost-3', 'm-ghost-4', 'm-ghost-5', 'm-ghost-6', 'm-ghost-7', 'm-ghost-8', 'm-ghost-9'];

  // [physical line text, expected result (null: a blank line, no result)]
  const plan = [
    [n1, { id: 'm-new-1', status: 201 }],
    ['', null],
    [resend, { id: 'm-existing', status: 200 }],
    [conflicting, { id: 'm-taken', status: 409, code: 'order_conflict' }],
    ['   \t', null],
    [badTotal, { id: 'm-bad-total', status: 422, code: 'validation_failed', pointer: '/total', detail: new RegExp(String(expectedTotal(badTotal))) }],
    ['{"id": "m-bad-json", "customer_id": ', { id: null, status: 400, code: 'malformed_json' }],
    [noId, { id: null, status: 422, code: 'validation_failed', pointer: '/id' }],
    [n2, { id: 'm-new-2', status: 201 }],
    [unknownField, { id: 'm-bad-field', status: 422, code: 'validation_failed', pointer: '/coupon' }],
    [badCurrency, { id: 'm-bad-currency', status: 422, code: 'validation_failed', pointer: '/currency' }],
    [badLineDiscount, { id: 'm-bad-discount', status: 422, code: 'validation_failed', pointer: '/lines/0/discount' }],
    [n3, { id: 'm-new-3', status: 201 }],
    [`{"id":"m-dup-keys","id":"m-dup-keys-2"${JSON.stringify(putBody(order(null, { customer_id: 'm-ghost-8' }))).replace(/^\{/, ',')}`,
      { id: null, status: 400, code: 'malformed_json' }],
    [n1, { id: 'm-new-1', status: 200 }], // same batch, same content: a no-op
    [n2Different, { id: 'm-new-2', status: 409, code: 'order_conflict' }], // same batch, other content
    ['[1, 2]', { id: null, status: 422, code: 'validation_failed' }],
    [numericId, { id: null, status: 422, code: 'validation_failed', pointer: '/id' }],
    [badId, { id: 'm bad id', status: 422, code: 'validation_failed', pointer: '/id' }],
    [badCustomer, { id: 'm-bad-customer', status: 422, code: 'validation_failed', pointer: '/customer_id' }],
    [`${JSON.stringify(n5)}\r`, { id: 'm-new-5', status: 201 }], // a CRLF line ending
    [n4, { id: 'm-new-4', status: 201 }], // the last line has no newline
  ];
  const planText = () => plan.map(([l]) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
  let res;

  before(async () => {
    M = await setupShop(svc);
    for (const o of [existing, taken]) {
      const r = await c.put(oPath(o.id), putBody(o), { key: M.keys.admin });
      assert.equal(r.status, 201, r.text);
    }
    assert.ok(!planText().endsWith('\n'));
    res = await bulk(planText(), { key: M.keys.admin });
  });

  test('200 with one result per non-blank line, in order, numbered by physical line', () => {
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.deepEqual(Object.keys(res.body).sort(), ['created', 'failed', 'results', 'unchanged']);
    const want = plan.map(([, w], i) => w && { line: i + 1, ...w }).filter(Boolean);
    assert.deepEqual(res.body.results.map((r) => r.line), want.map((w) => w.line), 'line numbers (blank lines 2 and 5 skipped)');
    want.forEach((w, i) => assertResult(res.body.results[i], w, 'mixed batch'));
  });

  test('created / unchanged / failed count the results', () => {
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.created, 5, 'm-new-1..5');
    assert.equal(res.body.unchanged, 2, 'the resend of m-existing and the repeat of m-new-1');
    assert.equal(res.body.failed, 13);
    assert.equal(res.body.created + res.body.unchanged + res.body.failed, res.body.results.length);
  });

  test('exactly the good orders exist, in the order received, as sent; the bad lines left nothing behind', async () => {
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(await orderIds(M.keys.admin), ['m-existing', 'm-taken', 'm-new-1', 'm-new-2', 'm-new-3', 'm-new-5', 'm-new-4']);
    for (const o of [existing, taken, n1, n2, n3, n4, n5]) {
      const r = await getOrder(o.id, M.keys.admin);
      assert.equal(r.status, 200, r.text);
      assertStored(r.body, o);
    }
    for (const id of ['m-bad-total', 'm-bad-field', 'm-bad-currency', 'm-bad-discount', 'm-numeric', 'm-dup-keys', 'm-dup-keys-2', 'm-bad-json', 'm-bad-customer']) {
      assertProblem(await getOrder(id, M.keys.admin), 404, 'not_found');
    }
    // A failed line rolls back its bare customer too.
    for (const id of GHOSTS) assertProblem(await getCustomer(id, M.keys.admin), 404, 'not_found');
    assert.equal(await dbOrderCount(M.shopId), 7);
  });

  test("the customers' facts include the new orders", async () => {
    assert.equal(res.status, 200, res.text);
    const facts = async (id) => {
      const r = await getCustomer(id, M.keys.admin);
      assert.equal(r.status, 200, `${id}: ${r.text}`);
      return r.body.facts;
    };
    const at = (f, k) => (f[k] === null ? null : assertServerTs(f[k], k));

    const f = await facts('m-cust-new'); // a bare customer created by the batch: n1, n2
    assert.equal(f.order_count, 2);
    assert.equal(at(f, 'first_order_at'), tsMicros(n1.placed_at));
    assert.equal(at(f, 'second_order_at'), tsMicros(n2.placed_at));
    assert.equal(at(f, 'last_order_at'), tsMicros(n2.placed_at));
    assert.equal(f.total_spent, n1.total + n2.total);
    assert.equal(f.total_spent, 5500 + 26800);
    assert.equal(f.average_order_value, Math.floor((n1.total + n2.total) / 2));
    assert.equal(f.first_order_channel, 'wechat-mini');
    assert.deepEqual(f.first_order_categories, ['tea', 'teaware']);
    assert.deepEqual(f.first_order_roles, ['activity', 'traffic']);

    const a = await facts('m-cust-a'); // PUT before the batch, n3 in it
    assert.equal(a.order_count, 2);
    assert.equal(at(a, 'first_order_at'), tsMicros(existing.placed_at));
    assert.equal(at(a, 'second_order_at'), tsMicros(n3.placed_at));
    assert.equal(at(a, 'last_order_at'), tsMicros(n3.placed_at));
    assert.equal(a.total_spent, existing.total + n3.total);
    assert.equal(a.first_order_channel, 'web');
    assert.deepEqual(a.first_order_categories, ['tea']);
    assert.deepEqual(a.first_order_roles, ['regular']);

    const b = await facts('m-cust-b'); // the conflicting line changed nothing
    assert.equal(b.order_count, 1);
    assert.equal(b.total_spent, taken.total);

    for (const [id, o] of [['m-cust-c', n4], ['m-cust-d', n5]]) {
      const x = await facts(id);
      assert.equal(x.order_count, 1, id);
      assert.equal(at(x, 'first_order_at'), tsMicros(o.placed_at), id);
      assert.equal(x.second_order_at, null, id);
      assert.equal(x.total_spent, o.total, id);
      assert.equal(x.average_order_value, o.total, id);
      assert.equal(x.first_order_channel, o.channel, id);
    }
  });

  test('a failed line reports what PUT /v1/orders/{id} says about the same order', async () => {
    assert.equal(res.status, 200, res.text);
    const byLine = new Map(res.body.results.map((r) => [r.line, r]));
    let compared = 0;
    for (const [i, [o, w]] of plan.entries()) {
      if (typeof o === 'string' || !w || w.status < 400 || typeof o.id !== 'string' || !/^[A-Za-z0-9._:@-]+$/.test(o.id)) continue;
      compared++;
      const put = await c.put(oPath(o.id), putBody(o), { key: M.keys.admin });
      const got = byLine.get(i + 1);
      assert.equal(put.status, got.status, `line ${i + 1}: ${put.text} vs ${JSON.stringify(got)}`);
      assert.equal(put.body.code, got.code, `line ${i + 1}`);
      assert.equal(put.body.pointer, got.pointer, `line ${i + 1}`);
      assert.equal(put.body.detail, got.detail, `line ${i + 1}: same message`);
    }
    assert.equal(compared, 7, 'two conflicts and five invalid orders with a usable id');
  });

  test('the same batch again changes nothing: the good lines are 200, the bad ones fail the same way', async () => {
    assert.equal(res.status, 200, res.text);
    const before = await snapshotDb(svc.db);
    const again = await bulk(planText(), { key: M.keys.admin });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.created, 0);
    assert.equal(again.body.unchanged, 7, 'the five new orders, the resend and the repeat');
    assert.equal(again.body.failed, 13);
    again.body.results.forEach((r, i) => {
      const first = res.body.results[i];
      assert.equal(r.line, first.line);
      assert.equal(r.id, first.id);
      assert.equal(r.status, first.status === 201 ? 200 : first.status, `line ${r.line}`);
      assert.equal(r.code, first.code, `line ${r.line}`);
    });
    assert.deepEqual(await snapshotDb(svc.db), before, 'nothing written by the repeat');
  });
});

describe('limits', () => {
  const manyLines = (n, prefix) => Array.from({ length: n }, (_, i) => order(`${prefix}-${i + 1}`, {
    customer_id: `${prefix}-c-${i % 50}`,
    placed_at: `2026-0${1 + (i % 9)}-${String(1 + (i % 28)).padStart(2, '0')}T10:00:00+08:00`,
  }));

  test('1001 orders → 413 payload_too_large, nothing written', async () => {
    const L = await setupShop(svc);
    const before = await snapshotDb(svc.db);
    const r = await bulk(ndjson(...manyLines(1001, 'lim')), { key: L.keys.admin });
    assertProblem(r, 413, 'payload_too_large');
    assert.deepEqual(await snapshotDb(svc.db), before, 'nothing written');
    assert.equal(await dbOrderCount(L.shopId), 0);
  });

  test('1000 orders (blank lines do not count) → 200, all created', async () => {
    const L = await setupShop(svc);
    const lines = manyLines(1000, 'max');
    const r = await bulk(`\n${lines.map((o) => JSON.stringify(o)).join('\n')}\n\n`, { key: L.keys.admin });
    assert.equal(r.status, 200, r.text.slice(0, 2000));
    assert.equal(r.body.created, 1000, JSON.stringify(r.body.results.filter((x) => x.status !== 201).slice(0, 5)));
    assert.equal(r.body.unchanged, 0);
    assert.equal(r.body.failed, 0);
    assert.equal(r.body.results.length, 1000);
    assert.deepEqual(r.body.results[0], { line: 2, id: 'max-1', status: 201 });
    assert.deepEqual(r.body.results[999], { line: 1001, id: 'max-1000', status: 201 });
    assert.equal(await dbOrderCount(L.shopId), 1000);
    const f = (await getCustomer('max-c-0', L.keys.admin)).body.facts;
    assert.equal(f.order_count, 20, '1000 orders over 50 customers, on distinct days');
  });

  test('a body over the body limit → 413, nothing written', async () => {
    const L = await setupShop(svc);
    const before = await snapshotDb(svc.db);
    const big = JSON.stringify(order('lim-big')).replace(/\}$/, `${' '.repeat(1024 * 1024 + 10)}}`);
    const r = await bulk(ndjson(order('lim-small'), big), { key: L.keys.admin });
    assertProblem(r, 413, 'payload_too_large');
    assert.deepEqual(await snapshotDb(svc.db), before, 'nothing written');
    assert.equal(await dbOrderCount(L.shopId), 0);
  });
});

describe('request checks', () => {
  test('wrong or missing Content-Type → 415, nothing written; a charset parameter is fine', async () => {
    const o = order(uniq('ct'));
    for (const type of ['application/json', 'text/plain', 'application/json; charset=utf-8', 'text/csv', null]) {
      const r = await bulk(ndjson(o), { type });
      assertProblem(r, 415, 'unsupported_media_type');
      assertProblem(await getOrder(o.id), 404, 'not_found');
    }
    const r = await bulk(ndjson(o), { type: 'application/x-ndjson; charset=utf-8' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { results: [{ line: 1, id: o.id, status: 201 }], created: 1, unchanged: 0, failed: 0 });
  });

  test('an empty body (or only blank lines) → 400 malformed_json', async () => {
    const before = await snapshotDb(svc.db);
    for (const text of ['', '\n', '\n  \n\t\n']) {
      assertProblem(await bulk(text), 400, 'malformed_json');
    }
    assert.deepEqual(await snapshotDb(svc.db), before, 'nothing written');
  });

  test('a query parameter → 400 invalid_parameter', async () => {
    const o = order(uniq('q'));
    assertProblem(await bulk(ndjson(o), { path: `${BULK}?dry_run=1` }), 400, 'invalid_parameter', '/query/dry_run');
    assertProblem(await getOrder(o.id), 404, 'not_found');
  });

  test('other methods on /v1/orders/bulk → 405 Allow: POST (the literal path is not an order id)', async () => {
    const get = await c.get(BULK, { key: S.keys.admin });
    assertProblem(get, 405, 'method_not_allowed');
    assert.equal(get.headers.allow, 'POST');
    const del = await c.del(BULK, { key: S.keys.admin });
    assertProblem(del, 405, 'method_not_allowed');
    assert.equal(del.headers.allow, 'POST');
    const put = await c.put(BULK, putBody(order('bulk')), { key: S.keys.admin });
    assertProblem(put, 405, 'method_not_allowed');
    assert.equal(put.headers.allow, 'POST');
    assert.equal(await svc.db.query("SELECT 1 FROM orders WHERE id = 'bulk'").then((r) => r.rowCount), 0, 'no order "bulk"');
  });
});

describe('scopes', () => {
  test('readonly and platform keys → 403, no key → 401; nothing written', async () => {
    const o = order(uniq('scope'));
    assertProblem(await bulk(ndjson(o), { key: S.keys.readonly }), 403, 'forbidden');
    assertProblem(await bulk(ndjson(o), { key: svc.platformKey }), 403, 'forbidden');
    const anon = await bulk(ndjson(o), { key: null });
    assertProblem(anon, 401, 'unauthenticated');
    assert.match(anon.headers['www-authenticate'] ?? '', /^Bearer/);
    assertProblem(await getOrder(o.id), 404, 'not_found');
    assertProblem(await getCustomer(o.customer_id), 404, 'not_found');
  });

  test('a storefront key may ingest', async () => {
    const o = order(uniq('sf'));
    const r = await bulk(ndjson(o), { key: S.keys.storefront });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { results: [{ line: 1, id: o.id, status: 201 }], created: 1, unchanged: 0, failed: 0 });
    const g = await getOrder(o.id, S.keys.readonly);
    assert.equal(g.status, 200, g.text);
    assertStored(g.body, o);
  });
});

describe('shop isolation', () => {
  test("another shop's key writes into its own shop only", async () => {
    const sharedId = uniq('iso-shared');
    const ours = order(sharedId, { customer_id: 'iso-cust-s' });
    const sOnly = order(uniq('iso-s-only'), { customer_id: 'iso-cust-s' });
    const r0 = await bulk(ndjson(ours, sOnly));
    assert.equal(r0.status, 200, r0.text);
    assert.equal(r0.body.created, 2, r0.text);

    // Shop T: the same id with other content, a resend of S's other order, a new one.
    const theirs = order(sharedId, { customer_id: 'iso-cust-t', lines: [{ sku: 'TEA-X', category: 'tea', role: 'traffic', quantity: 1, unit_price: 990 }] });
    const tOnly = order(uniq('iso-t-only'), { customer_id: 'iso-cust-t' });
    const r = await bulk(ndjson(theirs, sOnly, tOnly), { key: T.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.results, [
      { line: 1, id: sharedId, status: 201 },
      { line: 2, id: sOnly.id, status: 201 },
      { line: 3, id: tOnly.id, status: 201 },
    ], 'ids are per shop: no conflict with, and no no-op on, the other shop');
    assert.equal(r.body.created, 3);

    assertStored((await getOrder(sharedId)).body, ours);
    assertStored((await getOrder(sharedId, T.keys.admin)).body, theirs);
    assertProblem(await getOrder(tOnly.id), 404, 'not_found');
    assertProblem(await getCustomer('iso-cust-t'), 404, 'not_found');
    assert.equal((await getCustomer('iso-cust-t', T.keys.admin)).body.facts.order_count, 2, 'its two orders in T, nothing from S');
    // S's customer is untouched by T's batch; T got its own customer of that id.
    const sCust = (await getCustomer('iso-cust-s')).body.facts;
    assert.equal(sCust.total_spent, ours.total + sOnly.total);
    const tCust = await getCustomer('iso-cust-s', T.keys.admin);
    assert.equal(tCust.status, 200, tCust.text);
    assert.equal(tCust.body.facts.total_spent, sOnly.total);
    const tIds = await orderIds(T.keys.admin);
    assert.deepEqual(tIds.filter((id) => id.startsWith('iso-')).sort(), [sharedId, sOnly.id, tOnly.id].sort());
  });
});
