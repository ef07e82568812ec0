// Idempotency-Key on POST /v1/shops and POST /v1/api-keys.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, createShop, assertProblem, tableWithColumns, countRows, uniq, KEY_RE,
} from '../lib/harness.js';

let svc;
let c;
let shopsTable;
let keysTable;

before(async () => {
  svc = await startService();
  c = api(svc);
  shopsTable = await tableWithColumns(svc.db, ['currency', 'timezone']);
  keysTable = await tableWithColumns(svc.db, ['prefix', 'scope']);
});
after(async () => { await svc?.stop(); });

const isReplay = (r) => r.headers['idempotent-replayed'] === 'true';
const shopBody = () => ({ name: uniq('Idem Shop'), currency: 'CNY', timezone: 'Asia/Shanghai' });

describe('POST /v1/shops', () => {
  test('replay returns the same status and body, without the secret, and creates nothing', async () => {
    const ik = uniq('ik');
    const body = shopBody();
    const n0 = await countRows(svc.db, shopsTable);
    const r1 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    assert.equal(isReplay(r1), false, 'first response is not a replay');
    assert.match(r1.body.admin_key.key, KEY_RE);

    for (let i = 0; i < 3; i++) {
      const r2 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
      assert.equal(r2.status, 201);
      assert.equal(r2.headers['idempotent-replayed'], 'true');
      assert.equal('key' in r2.body.admin_key, false, 'secret omitted on replay');
      const expected = structuredClone(r1.body);
      delete expected.admin_key.key;
      assert.deepEqual(r2.body, expected);
    }
    assert.equal(await countRows(svc.db, shopsTable), n0 + 1, 'exactly one shop created');

    // the admin key from the first response works
    const g = await c.get(`/v1/shops/${r1.body.shop.id}`, { key: r1.body.admin_key.key });
    assert.equal(g.status, 200);
  });

  test('same key with a different body → 422 idempotency_key_reused, nothing created', async () => {
    const ik = uniq('ik');
    const body = shopBody();
    const r1 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(r1.status, 201);
    const n0 = await countRows(svc.db, shopsTable);
    for (const other of [{ ...body, name: `${body.name}x` }, { ...body, currency: 'USD' }, { name: body.name, currency: 'CNY', timezone: 'UTC' }]) {
      const r2 = await c.post('/v1/shops', other, { key: svc.platformKey, idempotencyKey: ik });
      assertProblem(r2, 422, 'idempotency_key_reused');
    }
    assert.equal(await countRows(svc.db, shopsTable), n0);
    // the original request still replays
    const r3 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(r3.status, 201);
    assert.equal(isReplay(r3), true);
    assert.equal(r3.body.shop.id, r1.body.shop.id);
  });

  test('without Idempotency-Key identical requests create distinct shops', async () => {
    const body = shopBody();
    const n0 = await countRows(svc.db, shopsTable);
    const r1 = await c.post('/v1/shops', body, { key: svc.platformKey });
    const r2 = await c.post('/v1/shops', body, { key: svc.platformKey });
    assert.equal(r1.status, 201);
    assert.equal(r2.status, 201);
    assert.notEqual(r1.body.shop.id, r2.body.shop.id);
    assert.equal(await countRows(svc.db, shopsTable), n0 + 2);
  });

  test('50 parallel requests with the same key create exactly one shop', async () => {
    const ik = uniq('par');
    const body = shopBody();
    const n0 = await countRows(svc.db, shopsTable);
    const rs = await Promise.all(Array.from({ length: 50 }, () =>
      c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik })));
    const originals = rs.filter((r) => r.status === 201 && !isReplay(r));
    const replays = rs.filter((r) => r.status === 201 && isReplay(r));
    const busy = rs.filter((r) => r.status === 409);
    assert.equal(originals.length + replays.length + busy.length, 50,
      `unexpected statuses: ${rs.map((r) => r.status).join(',')}`);
    assert.equal(originals.length, 1, 'exactly one original 201');
    for (const r of busy) assertProblem(r, 409, 'idempotency_in_progress');
    const id = originals[0].body.shop.id;
    for (const r of replays) {
      assert.equal(r.body.shop.id, id);
      assert.equal('key' in r.body.admin_key, false);
    }
    assert.equal(await countRows(svc.db, shopsTable), n0 + 1, 'exactly one shop row');
    const again = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(again.status, 201);
    assert.equal(isReplay(again), true);
    assert.equal(again.body.shop.id, id);
  });

  test('different platform keys use the same Idempotency-Key independently', async () => {
    const k2 = await svc.cli(['keys', 'create-platform', '--name', 'second platform']);
    assert.equal(k2.code, 0, k2.stderr);
    const key2 = k2.stdout.trim();
    assert.match(key2, KEY_RE);
    const ik = uniq('shared');
    const r1 = await c.post('/v1/shops', shopBody(), { key: svc.platformKey, idempotencyKey: ik });
    const r2 = await c.post('/v1/shops', shopBody(), { key: key2, idempotencyKey: ik });
    assert.equal(r1.status, 201);
    assert.equal(r2.status, 201, r2.text);
    assert.equal(isReplay(r2), false);
    assert.notEqual(r1.body.shop.id, r2.body.shop.id);
  });

  test('Idempotency-Key of 255 visible characters is accepted', async () => {
    const ik = `${'!~#'.repeat(10)}${'k'.repeat(225)}`;
    assert.equal(ik.length, 255);
    const body = shopBody();
    const r1 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await c.post('/v1/shops', body, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(isReplay(r2), true);
    assert.equal(r2.body.shop.id, r1.body.shop.id);
  });

  test('invalid Idempotency-Key headers → 400 invalid_parameter, nothing created', async () => {
    const n0 = await countRows(svc.db, shopsTable);
    for (const ik of ['', 'k'.repeat(256), 'caf\u00e9', 'a\tb']) {
      const r = await c.post('/v1/shops', shopBody(), { key: svc.platformKey, idempotencyKey: ik });
      assertProblem(r, 400, 'invalid_parameter', '/header/Idempotency-Key');
    }
    assert.equal(await countRows(svc.db, shopsTable), n0);
  });
});

describe('POST /v1/api-keys', () => {
  let shop;
  before(async () => { shop = await createShop(svc); });

  test('replay returns the same key object without the secret; one key row', async () => {
    const ik = uniq('ak');
    const body = { name: 'integration', scope: 'storefront' };
    const n0 = await countRows(svc.db, keysTable);
    const r1 = await c.post('/v1/api-keys', body, { key: shop.adminKey, idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    assert.equal(isReplay(r1), false);
    assert.match(r1.body.key, KEY_RE);
    const r2 = await c.post('/v1/api-keys', body, { key: shop.adminKey, idempotencyKey: ik });
    assert.equal(r2.status, 201);
    assert.equal(isReplay(r2), true);
    const { key, ...rest } = r1.body;
    assert.ok(key);
    assert.deepEqual(r2.body, rest, 'same body minus the secret');
    assert.equal(await countRows(svc.db, keysTable), n0 + 1);
    // the secret from the first response works
    assert.equal((await c.get('/v1/customers/x', { key })).status, 404);

    assertProblem(await c.post('/v1/api-keys', { ...body, scope: 'readonly' }, { key: shop.adminKey, idempotencyKey: ik }),
      422, 'idempotency_key_reused');
    assert.equal(await countRows(svc.db, keysTable), n0 + 1);
  });

  test('two shops reuse the same Idempotency-Key independently', async () => {
    const other = await createShop(svc);
    const ik = uniq('same');
    const r1 = await c.post('/v1/api-keys', { name: 'one', scope: 'readonly' }, { key: shop.adminKey, idempotencyKey: ik });
    const r2 = await c.post('/v1/api-keys', { name: 'two', scope: 'storefront' }, { key: other.adminKey, idempotencyKey: ik });
    assert.equal(r1.status, 201);
    assert.equal(r2.status, 201, r2.text);
    assert.equal(isReplay(r2), false);
    assert.notEqual(r1.body.id, r2.body.id);
    assert.equal(r2.body.name, 'two');
  });

  test('two admin keys of the same shop reuse the same Idempotency-Key independently', async () => {
    const a2 = await c.post('/v1/api-keys', { name: 'admin two', scope: 'admin' }, { key: shop.adminKey });
    assert.equal(a2.status, 201);
    const ik = uniq('peradmin');
    const body = { name: 'same body', scope: 'readonly' };
    const r1 = await c.post('/v1/api-keys', body, { key: shop.adminKey, idempotencyKey: ik });
    const r2 = await c.post('/v1/api-keys', body, { key: a2.body.key, idempotencyKey: ik });
    assert.equal(r1.status, 201);
    assert.equal(r2.status, 201);
    assert.equal(isReplay(r2), false, 'stored per API key, not per shop');
    assert.notEqual(r1.body.id, r2.body.id);
  });

  test('50 parallel requests with the same key create exactly one API key', async () => {
    const ik = uniq('par');
    const body = { name: 'parallel', scope: 'readonly' };
    const n0 = await countRows(svc.db, keysTable);
    const rs = await Promise.all(Array.from({ length: 50 }, () =>
      c.post('/v1/api-keys', body, { key: shop.adminKey, idempotencyKey: ik })));
    const originals = rs.filter((r) => r.status === 201 && !isReplay(r));
    const replays = rs.filter((r) => r.status === 201 && isReplay(r));
    const busy = rs.filter((r) => r.status === 409);
    assert.equal(originals.length + replays.length + busy.length, 50, `statuses: ${rs.map((r) => r.status).join(',')}`);
    assert.equal(originals.length, 1);
    for (const r of busy) assertProblem(r, 409, 'idempotency_in_progress');
    for (const r of replays) {
      assert.equal(r.body.id, originals[0].body.id);
      assert.equal('key' in r.body, false);
    }
    assert.equal(await countRows(svc.db, keysTable), n0 + 1);
  });

  test('a failed request with an Idempotency-Key does not create anything on retry with the same body', async () => {
    const ik = uniq('bad');
    const n0 = await countRows(svc.db, keysTable);
    const bad = { name: '', scope: 'readonly' };
    assertProblem(await c.post('/v1/api-keys', bad, { key: shop.adminKey, idempotencyKey: ik }), 422, 'validation_failed', '/name');
    const again = await c.post('/v1/api-keys', bad, { key: shop.adminKey, idempotencyKey: ik });
    assert.equal(again.status, 422);
    assert.equal(await countRows(svc.db, keysTable), n0);
  });
});
