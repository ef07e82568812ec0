// PostgreSQL goes away and comes back: the service answers 503 quickly while
// it is down, stays alive, and recovers on its own.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startService, api, setupShop, assertProblem, parseMetrics, sleep,
} from '../lib/harness.js';

let cluster;
let svc;
let c;
let S;
const customers = [];

before(async () => {
  cluster = await startCluster();
  svc = await startService({ cluster });
  c = api(svc);
  S = await setupShop(svc);
  for (let i = 0; i < 5; i++) {
    const r = await c.put(`/v1/customers/pg-${i}`, { name: `PG ${i}`, tags: ['vip'], attributes: { i } }, { key: S.keys.admin });
    assert.equal(r.status, 201);
    customers.push(r.body);
  }
});

after(async () => {
  try {
    if (cluster && !cluster.running) await cluster.start();
    await svc?.stop();
  } finally {
    await cluster?.destroy();
  }
});

async function dbErrorCount() {
  const r = await c.get('/metrics');
  assert.equal(r.status, 200);
  const m = parseMetrics(r.text);
  const name = [...m.types].find(([n, t]) => t === 'counter' && /db|database|pg|sql/i.test(n) && /err|fail/i.test(n))?.[0];
  assert.ok(name, 'db error counter exists');
  return m.samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
}

const LIMIT_MS = 5000;

async function expectUnavailable(label, p) {
  const t0 = Date.now();
  const r = await p;
  const ms = Date.now() - t0;
  assertProblem(r, 503, 'database_unavailable');
  assert.ok(ms < LIMIT_MS, `${label}: answered after ${ms} ms`);
  return r;
}

function requestsWhileDown() {
  return [
    ['GET customer', () => c.get('/v1/customers/pg-0', { key: S.keys.admin, timeoutMs: 15000 })],
    ['PUT customer', () => c.put('/v1/customers/pg-new', { name: 'while down' }, { key: S.keys.admin, timeoutMs: 15000 })],
    ['DELETE customer', () => c.del('/v1/customers/pg-1', { key: S.keys.storefront, timeoutMs: 15000 })],
    ['list customers', () => c.get('/v1/customers?limit=10', { key: S.keys.readonly, timeoutMs: 15000 })],
    ['GET shop', () => c.get(`/v1/shops/${S.shopId}`, { key: svc.platformKey, timeoutMs: 15000 })],
    ['POST shop', () => c.post('/v1/shops', { name: 'Down', currency: 'CNY', timezone: 'UTC' }, { key: svc.platformKey, timeoutMs: 15000 })],
    ['POST api key', () => c.post('/v1/api-keys', { name: 'down', scope: 'readonly' }, { key: S.keys.admin, timeoutMs: 15000 })],
  ];
}

async function outageChecks() {
  // sequential: each answers 503 quickly
  for (const [label, make] of requestsWhileDown()) await expectUnavailable(label, make());
  // many at once (more than the pool): none hangs
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => c.get(`/v1/customers/pg-${i % 5}`, { key: S.keys.admin, timeoutMs: 15000 })));
  for (const r of rs) assertProblem(r, 503, 'database_unavailable');
  assert.ok(Date.now() - t0 < LIMIT_MS * 2, `20 concurrent requests took ${Date.now() - t0} ms`);
  // readiness reflects the outage, liveness does not
  const ready = await c.get('/readyz', { timeoutMs: 15000 });
  assertProblem(ready, 503, 'database_unavailable');
  const health = await c.get('/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  // still answering after a while (no crash, no wedged pool)
  await sleep(1500);
  await expectUnavailable('GET customer after 1.5 s', c.get('/v1/customers/pg-2', { key: S.keys.admin, timeoutMs: 15000 }));
  assert.equal(svc.exited(), null, 'service still running');
}

async function recoveryChecks() {
  const t0 = Date.now();
  let consecutive = 0;
  let last;
  while (consecutive < 20) {
    assert.ok(Date.now() - t0 < 15000, `service did not recover within 15 s; last: ${last?.status} ${last?.text}`);
    last = await c.get('/v1/customers/pg-0', { key: S.keys.admin, timeoutMs: 15000 });
    if (last.status === 200) consecutive += 1;
    else {
      assertProblem(last, 503, 'database_unavailable');
      consecutive = 0;
      await sleep(100);
    }
  }
  const ready = await c.get('/readyz');
  assert.equal(ready.status, 200);
  // data written before the outage is intact; nothing from the outage was written
  for (const cust of customers) {
    const g = await c.get(`/v1/customers/${cust.id}`, { key: S.keys.readonly });
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, cust);
  }
  assertProblem(await c.get('/v1/customers/pg-new', { key: S.keys.admin }), 404, 'not_found');
  // writes work again, on all pool connections
  const rs = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    c.put(`/v1/customers/after-${Date.now()}-${i}`, { name: 'after' }, { key: S.keys.admin })));
  for (const r of rs) assert.equal(r.status, 201, r.text);
  const l = await c.get('/v1/customers?limit=200', { key: S.keys.admin });
  assert.equal(l.status, 200);
}

describe('PostgreSQL stop and restart', () => {
  // a failed test may leave the cluster stopped; each test starts from a running one
  const ensureRunning = async () => { if (!cluster.running) await cluster.start(); };

  test('fast shutdown: 503 database_unavailable quickly, then recovery', async () => {
    await ensureRunning();
    const errs0 = await dbErrorCount();
    await cluster.stop('fast');
    await outageChecks();
    assert.ok(await dbErrorCount() > errs0, 'db error counter increased during the outage');
    await cluster.start();
    await recoveryChecks();
  });

  test('immediate (crash) shutdown: same behaviour', async () => {
    await ensureRunning();
    await recoveryChecks();
    await cluster.stop('immediate');
    await outageChecks();
    await cluster.start();
    await recoveryChecks();
  });

  test('restart between requests (stale pooled connections) recovers without outage handling', async () => {
    await ensureRunning();
    await recoveryChecks();
    await cluster.stop('fast');
    await cluster.start();
    await recoveryChecks();
  });
});
