// Authentication and the scope matrix of api.md, key storage and revocation.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  startService, api, setupShop, createShop, createKey, assertProblem, allRowsAsText,
  snapshotDb, uniq, KEY_RE, assertServerTs,
} from '../lib/harness.js';

let svc;
let c;
let S; // the shop under test
let revokedKey;
const issuedKeys = new Set(); // every plaintext key the service handed out
const bogusSecrets = new Set(); // credentials we sent that must not be logged either

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rand62 = (n) => Array.from(randomBytes(n), (b) => B62[b % 62]).join('');
const rand32 = (n) => Array.from(randomBytes(n), (b) => 'abcdefghijklmnopqrstuvwxyz234567'[b % 32]).join('');

before(async () => {
  svc = await startService();
  c = api(svc);
  issuedKeys.add(svc.platformKey);
  S = await setupShop(svc);
  Object.values(S.keys).forEach((k) => issuedKeys.add(k));
  const r = await createKey(svc, S.keys.admin, 'admin', 'to be revoked');
  revokedKey = r.key;
  issuedKeys.add(revokedKey);
  const d = await c.del(`/v1/api-keys/${r.id}`, { key: S.keys.admin });
  assert.equal(d.status, 204);
});
after(async () => { await svc?.stop(); });

// Each route: prep(unknown) prepares the objects (with the real admin key)
// and returns a context; send(ctx, a) makes the request with request options
// `a` ({key} or {headers: {authorization}}).
const noPrep = () => ({});
const ROUTES = {
  'POST /v1/shops': {
    expect: { platform: 201, admin: 403, storefront: 403, readonly: 403 },
    prep: noPrep,
    send: async (_, a) => {
      const r = await c.post('/v1/shops', { name: uniq('Matrix'), currency: 'EUR', timezone: 'Europe/Berlin' }, a);
      if (r.status === 201) issuedKeys.add(r.body.admin_key.key);
      return r;
    },
  },
  'GET /v1/shops/{id}': {
    expect: { platform: 200, admin: 200, storefront: 200, readonly: 200 },
    prep: (unknown) => ({ id: unknown ? randomUUID() : S.shopId }),
    send: (x, a) => c.get(`/v1/shops/${x.id}`, a),
  },
  'PATCH /v1/shops/{id}': {
    expect: { platform: 200, admin: 200, storefront: 403, readonly: 403 },
    prep: (unknown) => ({ id: unknown ? randomUUID() : S.shopId }),
    send: (x, a) => c.patch(`/v1/shops/${x.id}`, { name: uniq('Renamed') }, a),
  },
  'POST /v1/api-keys': {
    expect: { platform: 403, admin: 201, storefront: 403, readonly: 403 },
    prep: noPrep,
    send: async (_, a) => {
      const r = await c.post('/v1/api-keys', { name: 'matrix', scope: 'readonly' }, a);
      if (r.status === 201) issuedKeys.add(r.body.key);
      return r;
    },
  },
  'GET /v1/api-keys': {
    expect: { platform: 403, admin: 200, storefront: 403, readonly: 403 },
    prep: noPrep,
    send: (_, a) => c.get('/v1/api-keys', a),
  },
  'DELETE /v1/api-keys/{id}': {
    expect: { platform: 403, admin: 204, storefront: 403, readonly: 403 },
    prep: async (unknown) => {
      if (unknown) return { id: randomUUID() };
      const v = await createKey(svc, S.keys.admin, 'storefront', 'victim');
      issuedKeys.add(v.key);
      return { id: v.id };
    },
    send: (x, a) => c.del(`/v1/api-keys/${x.id}`, a),
  },
  'PUT /v1/customers/{id}': {
    expect: { platform: 403, admin: 201, storefront: 201, readonly: 403 },
    prep: () => ({ id: uniq('m') }),
    send: (x, a) => c.put(`/v1/customers/${x.id}`, { name: 'Matrix' }, a),
  },
  'GET /v1/customers/{id}': {
    expect: { platform: 403, admin: 200, storefront: 200, readonly: 200 },
    prep: async (unknown) => {
      const id = uniq('m');
      if (!unknown) assert.equal((await c.put(`/v1/customers/${id}`, { name: 'M' }, { key: S.keys.admin })).status, 201);
      return { id };
    },
    send: (x, a) => c.get(`/v1/customers/${x.id}`, a),
  },
  'DELETE /v1/customers/{id}': {
    expect: { platform: 403, admin: 204, storefront: 204, readonly: 403 },
    prep: async (unknown) => {
      const id = uniq('m');
      if (!unknown) assert.equal((await c.put(`/v1/customers/${id}`, { name: 'M' }, { key: S.keys.admin })).status, 201);
      return { id };
    },
    send: (x, a) => c.del(`/v1/customers/${x.id}`, a),
  },
  'GET /v1/customers': {
    expect: { platform: 403, admin: 200, storefront: 403, readonly: 200 },
    prep: noPrep,
    send: (_, a) => c.get('/v1/customers', a),
  },
};

const OPEN_ROUTES = ['/healthz', '/readyz', '/metrics'];

function credential(kind) {
  switch (kind) {
    case 'platform': return svc.platformKey;
    case 'admin': case 'storefront': case 'readonly': return S.keys[kind];
    case 'revoked': return revokedKey;
    default: throw new Error(kind);
  }
}

// Authorization header values that must all be rejected with 401.
function badAuthorizations() {
  const real = S.keys.admin;
  const unknownWellFormed = `rb_${rand32(8)}_${rand62(43)}`;
  const realPrefixWrongSecret = `${real.slice(0, 12)}${rand62(43)}`;
  const lastCharFlipped = real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A');
  const truncated = real.slice(0, -1);
  const extended = `${real}x`;
  const garbage = `not-a-key-${rand62(20)}`;
  const list = [
    ['no header', null],
    ['unknown well-formed key', `Bearer ${unknownWellFormed}`],
    ['real prefix, wrong secret', `Bearer ${realPrefixWrongSecret}`],
    ['last char changed', `Bearer ${lastCharFlipped}`],
    ['truncated key', `Bearer ${truncated}`],
    ['key with extra char', `Bearer ${extended}`],
    ['garbage token', `Bearer ${garbage}`],
    ['Basic scheme', `Basic ${Buffer.from(`user:${real}`).toString('base64')}`],
    ['bare key without scheme', real],
    ['Bearer without token', 'Bearer'],
    ['empty header', ''],
    ['revoked key', `Bearer ${revokedKey}`],
  ];
  for (const s of [unknownWellFormed, realPrefixWrongSecret, lastCharFlipped, garbage]) bogusSecrets.add(s);
  return list;
}

describe('scope matrix (existing objects)', () => {
  for (const [route, def] of Object.entries(ROUTES)) {
    for (const scope of ['platform', 'admin', 'storefront', 'readonly']) {
      const want = def.expect[scope];
      test(`${route} as ${scope} → ${want}`, async () => {
        const ctx = await def.prep(false);
        const before = want === 403 ? await snapshotDb(svc.db) : null;
        const r = await def.send(ctx, { key: credential(scope) });
        if (want === 403) {
          assertProblem(r, 403, 'forbidden');
          assert.deepEqual(await snapshotDb(svc.db), before, 'a forbidden request changed the database');
        } else {
          assert.equal(r.status, want, `${route} as ${scope}: ${r.text}`);
        }
      });
    }
  }
});

describe('scope is checked before existence (unknown ids)', () => {
  for (const [route, def] of Object.entries(ROUTES)) {
    if (!route.includes('{id}')) continue;
    for (const scope of ['platform', 'admin', 'storefront', 'readonly']) {
      let want = def.expect[scope];
      if (want !== 403) want = route.startsWith('PUT') ? 201 : 404;
      test(`${route} (unknown id) as ${scope} → ${want}`, async () => {
        const r = await def.send(await def.prep(true), { key: credential(scope) });
        if (want === 403) assertProblem(r, 403, 'forbidden');
        else if (want === 404) assertProblem(r, 404, 'not_found');
        else assert.equal(r.status, want, r.text);
      });
    }
  }
});

describe('unauthenticated requests → 401 on every protected route', () => {
  for (const [route, def] of Object.entries(ROUTES)) {
    test(`${route}`, async () => {
      for (const [what, authz] of badAuthorizations()) {
        for (const unknown of [false, true]) {
          const ctx = await def.prep(unknown);
          const before = await snapshotDb(svc.db);
          const r = await def.send(ctx, authz === null ? {} : { headers: { authorization: authz } });
          assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
          assertProblem(r, 401, 'unauthenticated');
          assert.deepEqual(await snapshotDb(svc.db), before, `${what}: a 401 request changed the database`);
        }
      }
    });
  }

  test('the revoked key is rejected on every protected route', async () => {
    for (const def of Object.values(ROUTES)) {
      const r = await def.send(await def.prep(false), { key: revokedKey });
      assertProblem(r, 401, 'unauthenticated');
    }
  });

  test('routes without auth answer 200 with no key, a bad key, or any scope', async () => {
    for (const p of OPEN_ROUTES) {
      for (const key of [undefined, `rb_${rand32(8)}_${rand62(43)}`, revokedKey, svc.platformKey, S.keys.readonly]) {
        const r = await c.get(p, { key });
        assert.equal(r.status, 200, `${p} with ${key ? 'key' : 'no key'}: ${r.text}`);
      }
    }
  });
});

describe('API keys', () => {
  test('created keys: format, object shape, listing (ordered, includes revoked, no secrets)', async () => {
    const T = await createShop(svc);
    issuedKeys.add(T.adminKey);
    const r = await c.post('/v1/api-keys', { name: 'checkout backend', scope: 'storefront' }, { key: T.adminKey });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, `/v1/api-keys/${r.body.id}`);
    issuedKeys.add(r.body.key);
    assert.match(r.body.key, KEY_RE);
    assert.deepEqual(Object.keys(r.body).sort(), ['created_at', 'id', 'key', 'name', 'prefix', 'revoked_at', 'scope']);
    assert.equal(r.body.prefix, r.body.key.slice(0, 11));
    assert.equal(r.body.revoked_at, null);
    assert.equal(r.body.name, 'checkout backend');
    assertServerTs(r.body.created_at);
    const ro = await createKey(svc, T.adminKey, 'readonly');
    issuedKeys.add(ro.key);
    assert.equal((await c.del(`/v1/api-keys/${ro.id}`, { key: T.adminKey })).status, 204);

    const l = await c.get('/v1/api-keys', { key: T.adminKey });
    assert.equal(l.status, 200);
    assert.deepEqual(Object.keys(l.body), ['items']);
    assert.deepEqual(l.body.items.map((k) => k.id), [T.adminKeyId, r.body.id, ro.id], 'ordered by creation, revoked included');
    for (const k of l.body.items) {
      assert.deepEqual(Object.keys(k).sort(), ['created_at', 'id', 'name', 'prefix', 'revoked_at', 'scope'], 'no secret in listing');
    }
    assert.deepEqual(l.body.items.map((k) => k.scope), ['admin', 'storefront', 'readonly']);
    assert.equal(l.body.items[0].prefix, T.adminKey.slice(0, 11));
    assert.equal(l.body.items[1].revoked_at, null);
    assertServerTs(l.body.items[2].revoked_at, 'revoked_at');
  });

  test('revocation takes effect immediately; revoking again → 204; unknown → 404', async () => {
    const T = await createShop(svc);
    issuedKeys.add(T.adminKey);
    const sf = await createKey(svc, T.adminKey, 'storefront');
    issuedKeys.add(sf.key);
    assert.equal((await c.get('/v1/customers/x', { key: sf.key })).status, 404, 'works before');
    assert.equal((await c.del(`/v1/api-keys/${sf.id}`, { key: T.adminKey })).status, 204);
    assertProblem(await c.get('/v1/customers/x', { key: sf.key }), 401, 'unauthenticated');
    assertProblem(await c.put('/v1/customers/x', { name: 'x' }, { key: sf.key }), 401, 'unauthenticated');
    const again = await c.del(`/v1/api-keys/${sf.id}`, { key: T.adminKey });
    assert.equal(again.status, 204, 'revoking a revoked key → 204');
    assertProblem(await c.del(`/v1/api-keys/${randomUUID()}`, { key: T.adminKey }), 404, 'not_found');
  });

  test('the last active admin key cannot be revoked (409 last_admin_key)', async () => {
    const T = await createShop(svc);
    issuedKeys.add(T.adminKey);
    assertProblem(await c.del(`/v1/api-keys/${T.adminKeyId}`, { key: T.adminKey }), 409, 'last_admin_key');
    assert.equal((await c.get('/v1/api-keys', { key: T.adminKey })).status, 200, 'still works');

    const a2 = await createKey(svc, T.adminKey, 'admin');
    issuedKeys.add(a2.key);
    // a revoked admin key does not count as active
    const a3 = await createKey(svc, T.adminKey, 'admin');
    issuedKeys.add(a3.key);
    assert.equal((await c.del(`/v1/api-keys/${a3.id}`, { key: T.adminKey })).status, 204);

    assert.equal((await c.del(`/v1/api-keys/${T.adminKeyId}`, { key: a2.key })).status, 204);
    assertProblem(await c.get('/v1/api-keys', { key: T.adminKey }), 401, 'unauthenticated');
    assertProblem(await c.del(`/v1/api-keys/${a2.id}`, { key: a2.key }), 409, 'last_admin_key');
    // storefront/readonly keys do not count as admins
    const sf = await createKey(svc, a2.key, 'storefront');
    issuedKeys.add(sf.key);
    assertProblem(await c.del(`/v1/api-keys/${a2.id}`, { key: a2.key }), 409, 'last_admin_key');
    assert.equal((await c.get('/v1/api-keys', { key: a2.key })).status, 200);
  });

  test('concurrent revocation of the last two admin keys leaves one active', async () => {
    const T = await createShop(svc);
    issuedKeys.add(T.adminKey);
    const a2 = await createKey(svc, T.adminKey, 'admin');
    issuedKeys.add(a2.key);
    const [r1, r2] = await Promise.all([
      c.del(`/v1/api-keys/${a2.id}`, { key: T.adminKey }),
      c.del(`/v1/api-keys/${T.adminKeyId}`, { key: a2.key }),
    ]);
    const statuses = [r1.status, r2.status].sort();
    // either one wins (204 + 409) — or, if the second ran with an already revoked key, 401
    assert.ok(statuses[0] === 204 && (statuses[1] === 409 || statuses[1] === 401), `got ${statuses}`);
    const stillOk = [];
    for (const k of [T.adminKey, a2.key]) stillOk.push((await c.get('/v1/api-keys', { key: k })).status === 200);
    assert.equal(stillOk.filter(Boolean).length, 1, 'exactly one admin key left active');
  });
});

describe('key storage and logging', () => {
  test('idempotently created keys are not stored in plaintext either', async () => {
    const ik = uniq('idem');
    const r = await c.post('/v1/api-keys', { name: 'idem', scope: 'readonly' }, { key: S.keys.admin, idempotencyKey: ik });
    assert.equal(r.status, 201);
    issuedKeys.add(r.body.key);
    const r2 = await c.post('/v1/shops', { name: uniq('Idem'), currency: 'USD', timezone: 'UTC' }, { key: svc.platformKey, idempotencyKey: ik });
    assert.equal(r2.status, 201);
    issuedKeys.add(r2.body.admin_key.key);
  });

  test('no plaintext key (or its secret part) appears anywhere in the database', async () => {
    const rows = await allRowsAsText(svc.db);
    assert.ok(issuedKeys.size >= 20, `collected ${issuedKeys.size} keys`);
    const texts = rows.map((r) => r.text);
    const hay = texts.join('\n');
    for (const key of issuedKeys) {
      const secret = key.slice(12);
      const prefix = key.slice(0, 11);
      // the lookup prefix is stored: proves we are looking at the right rows
      assert.ok(hay.includes(prefix.slice(3)), `prefix of ${prefix} not found in DB (wrong database?)`);
      const forms = [
        key, secret,
        Buffer.from(key).toString('hex'), Buffer.from(secret).toString('hex'),
        Buffer.from(key).toString('base64').replace(/=+$/, ''), Buffer.from(secret).toString('base64').replace(/=+$/, ''),
      ];
      for (const f of forms) {
        const hit = rows.find((r) => r.text.includes(f));
        assert.equal(hit, undefined, `key material stored in ${hit?.table}: ${hit?.text.slice(0, 200)}`);
      }
    }
  });

  test('no key material appears in the logs', async () => {
    badAuthorizations();
    const logs = svc.logs();
    assert.ok(logs.length > 0);
    for (const key of issuedKeys) {
      assert.equal(logs.includes(key.slice(12)), false, `secret of ${key.slice(0, 11)} in logs`);
    }
    for (const s of bogusSecrets) {
      const part = s.startsWith('rb_') ? s.slice(12) : s;
      assert.equal(logs.includes(part), false, `presented credential ${part.slice(0, 8)}… in logs`);
    }
  });
});
