// Tenant isolation: shop B's keys never see or change shop A's objects.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, snapshotDb, uniq,
} from '../lib/harness.js';

let svc;
let c;
let A;
let B;
const aCustomers = [];

before(async () => {
  svc = await startService();
  c = api(svc);
  A = await setupShop(svc, { name: 'Shop A' });
  B = await setupShop(svc, { name: 'Shop B', currency: 'EUR', timezone: 'Europe/Paris' });
  for (let i = 0; i < 3; i++) {
    const id = `a-cust-${i}`;
    const r = await c.put(`/v1/customers/${id}`, {
      name: `A ${i}`, email: `a${i}@example.com`, tags: ['vip'], consent: { email: { granted: true } },
    }, { key: A.keys.admin });
    assert.equal(r.status, 201);
    aCustomers.push(r.body);
  }
});
after(async () => { await svc?.stop(); });

describe("shop B's keys on shop A's objects", () => {
  // [label, scopes → expected status, request maker]
  const cases = [
    ['GET /v1/shops/{A}', { admin: 404, storefront: 404, readonly: 404 },
      (key) => c.get(`/v1/shops/${A.shopId}`, { key })],
    ['PATCH /v1/shops/{A}', { admin: 404, storefront: 403, readonly: 403 },
      (key) => c.patch(`/v1/shops/${A.shopId}`, { name: 'hijacked' }, { key })],
    ['PATCH /v1/shops/{A} timezone', { admin: 404 },
      (key) => c.patch(`/v1/shops/${A.shopId}`, { timezone: 'UTC' }, { key })],
    ['GET /v1/customers/{A customer}', { admin: 404, storefront: 404, readonly: 404 },
      (key) => c.get('/v1/customers/a-cust-0', { key })],
    ['DELETE /v1/customers/{A customer}', { admin: 404, storefront: 404, readonly: 403 },
      (key) => c.del('/v1/customers/a-cust-1', { key })],
    ['DELETE /v1/api-keys/{A admin key}', { admin: 404, storefront: 403, readonly: 403 },
      (key) => c.del(`/v1/api-keys/${A.keyIds.admin}`, { key })],
    ['DELETE /v1/api-keys/{A storefront key}', { admin: 404 },
      (key) => c.del(`/v1/api-keys/${A.keyIds.storefront}`, { key })],
    ['DELETE /v1/api-keys/{A readonly key}', { admin: 404 },
      (key) => c.del(`/v1/api-keys/${A.keyIds.readonly}`, { key })],
  ];

  for (const [label, expect, make] of cases) {
    for (const [scope, want] of Object.entries(expect)) {
      test(`${label} with B ${scope} → ${want}, nothing changes`, async () => {
        const before = await snapshotDb(svc.db);
        const r = await make(B.keys[scope]);
        if (want === 404) assertProblem(r, 404, 'not_found');
        else assertProblem(r, 403, 'forbidden');
        assert.deepEqual(await snapshotDb(svc.db), before);
      });
    }
  }

  test("B's lists contain nothing of A", async () => {
    for (const key of [B.keys.admin, B.keys.readonly]) {
      for (const q of ['', '?tag=vip', '?consent=email', '?limit=200', '?created_after=2000-01-01T00:00:00Z']) {
        const r = await c.get(`/v1/customers${q}`, { key });
        assert.equal(r.status, 200);
        assert.deepEqual(r.body.items, [], `B sees customers with ${q}`);
        assert.equal(r.body.next_cursor, null);
      }
    }
    const k = await c.get('/v1/api-keys', { key: B.keys.admin });
    assert.equal(k.status, 200);
    assert.deepEqual(new Set(k.body.items.map((x) => x.id)), new Set(Object.values(B.keyIds)));
  });

  test("A's cursor used by B never reveals A's customers", async () => {
    const r = await c.get('/v1/customers?limit=1', { key: A.keys.admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.items.length, 1);
    assert.equal(typeof r.body.next_cursor, 'string');
    const before = await snapshotDb(svc.db);
    const rb = await c.get(`/v1/customers?limit=1&cursor=${encodeURIComponent(r.body.next_cursor)}`, { key: B.keys.admin });
    if (rb.status === 200) assert.deepEqual(rb.body.items, []);
    else assertProblem(rb, 400, 'invalid_parameter', '/query/cursor');
    assert.deepEqual(await snapshotDb(svc.db), before);
  });

  test("A's objects are untouched and A's keys still work", async () => {
    const s = await c.get(`/v1/shops/${A.shopId}`, { key: A.keys.readonly });
    assert.equal(s.status, 200);
    assert.equal(s.body.name, 'Shop A');
    assert.equal(s.body.timezone, 'Asia/Shanghai');
    for (const cust of aCustomers) {
      const g = await c.get(`/v1/customers/${cust.id}`, { key: A.keys.readonly });
      assert.equal(g.status, 200);
      assert.deepEqual(g.body, cust);
    }
    for (const key of Object.values(A.keys)) {
      assert.equal((await c.get('/v1/customers/a-cust-0', { key })).status, 200);
    }
  });
});

describe('same customer id in two shops', () => {
  test('PUT by B with an id A uses creates an independent customer in B', async () => {
    const r = await c.put('/v1/customers/a-cust-2', { name: 'B version', email: 'b@example.com' }, { key: B.keys.admin });
    assert.equal(r.status, 201, 'a new customer in B, not an update of A');
    const ga = await c.get('/v1/customers/a-cust-2', { key: A.keys.admin });
    assert.deepEqual(ga.body, aCustomers[2]);
    const gb = await c.get('/v1/customers/a-cust-2', { key: B.keys.admin });
    assert.equal(gb.body.name, 'B version');
    assert.equal((await c.del('/v1/customers/a-cust-2', { key: B.keys.admin })).status, 204);
    const ga2 = await c.get('/v1/customers/a-cust-2', { key: A.keys.admin });
    assert.deepEqual(ga2.body, aCustomers[2], "erasing B's customer leaves A's alone");
    const la = await c.get('/v1/customers', { key: A.keys.admin });
    assert.deepEqual(la.body.items.map((x) => x.id), aCustomers.map((x) => x.id));
    const lb = await c.get('/v1/customers', { key: B.keys.admin });
    assert.deepEqual(lb.body.items.map((x) => x.id), ['a-cust-2']);
  });
});

describe('platform key', () => {
  test('reads and patches any shop; the change is visible to that shop only', async () => {
    for (const S of [A, B]) {
      const g = await c.get(`/v1/shops/${S.shopId}`, { key: svc.platformKey });
      assert.equal(g.status, 200);
      assert.equal(g.body.id, S.shopId);
    }
    const name = uniq('Platform renamed');
    const p = await c.patch(`/v1/shops/${B.shopId}`, { name }, { key: svc.platformKey });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.name, name);
    assert.equal((await c.get(`/v1/shops/${B.shopId}`, { key: B.keys.readonly })).body.name, name);
    assert.equal((await c.get(`/v1/shops/${A.shopId}`, { key: A.keys.readonly })).body.name, 'Shop A');
  });

  test('platform key has no access to shop-scoped routes', async () => {
    assertProblem(await c.get('/v1/customers/a-cust-0', { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get('/v1/customers', { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get('/v1/api-keys', { key: svc.platformKey }), 403, 'forbidden');
  });

  test('a shop admin can read and patch its own shop', async () => {
    const g = await c.get(`/v1/shops/${A.shopId}`, { key: A.keys.admin });
    assert.equal(g.status, 200);
    assert.deepEqual(Object.keys(g.body).sort(), ['created_at', 'currency', 'id', 'name', 'settings', 'timezone', 'updated_at']);
    const p = await c.patch(`/v1/shops/${A.shopId}`, { timezone: 'Asia/Tokyo' }, { key: A.keys.admin });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.timezone, 'Asia/Tokyo');
    assert.equal(p.body.name, 'Shop A');
    assert.equal(p.body.currency, 'CNY');
    const back = await c.patch(`/v1/shops/${A.shopId}`, { timezone: 'Asia/Shanghai' }, { key: A.keys.admin });
    assert.equal(back.status, 200);
  });
});
