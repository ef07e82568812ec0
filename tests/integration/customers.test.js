// Customers: create/update/get, replace semantics, consent timestamps,
// listing with cursors and filters, erasure, 404s, path ids, validation.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, findInDb, uniq,
} from '../lib/harness.js';

let svc;
let c;
let shop;
let admin;

const CUSTOMER_KEYS = ['attributes', 'consent', 'created_at', 'email', 'erased_at', 'facts', 'id', 'name', 'phone', 'tags', 'updated_at'];
const nowMicros = () => BigInt(Date.now()) * 1000n;
const SKEW = 2_000_000n; // 2 s tolerance between test clock and server clock

function assertCustomerShape(b) {
  assert.deepEqual(Object.keys(b).sort(), CUSTOMER_KEYS, `customer members: ${JSON.stringify(b)}`);
  assert.deepEqual(Object.keys(b.consent).sort(), ['email', 'sms', 'wechat']);
  for (const ch of ['email', 'sms', 'wechat']) {
    assert.deepEqual(Object.keys(b.consent[ch]).sort(), ['granted', 'updated_at']);
    assert.equal(typeof b.consent[ch].granted, 'boolean');
    if (b.consent[ch].updated_at !== null) assertServerTs(b.consent[ch].updated_at, `consent.${ch}.updated_at`);
  }
  assertServerTs(b.created_at, 'created_at');
  assertServerTs(b.updated_at, 'updated_at');
  if (b.erased_at !== null) assertServerTs(b.erased_at, 'erased_at');
}

function assertNear(ts, lo, hi, what) {
  const v = assertServerTs(ts, what);
  assert.ok(v >= lo - SKEW && v <= hi + SKEW, `${what}=${ts} not within the request window`);
  return v;
}

const put = (id, body, key = admin) => c.put(`/v1/customers/${encodeURIComponent(id)}`, body, { key });
const get = (id, key = admin) => c.get(`/v1/customers/${encodeURIComponent(id)}`, { key });
const del = (id, key = admin) => c.del(`/v1/customers/${encodeURIComponent(id)}`, { key });

before(async () => {
  svc = await startService();
  c = api(svc);
  shop = await setupShop(svc);
  admin = shop.keys.admin;
});
after(async () => { await svc?.stop(); });

describe('create, update, get', () => {
  test('PUT creates (201 + Location), GET returns it, PUT again updates (200)', async () => {
    const id = uniq('cust');
    const body = {
      name: 'Li Wei',
      email: 'li.wei@example.com',
      phone: '+8613800138000',
      tags: ['vip', 'tea'],
      consent: { email: { granted: true }, sms: { granted: false } },
      attributes: { city: 'Shanghai', visits: 3, nested: { a: [1, 'x', null, true, 2.5] } },
    };
    const t0 = nowMicros();
    const r1 = await put(id, body);
    const t1 = nowMicros();
    assert.equal(r1.status, 201, r1.text);
    assert.equal(r1.headers.location, `/v1/customers/${id}`);
    assertCustomerShape(r1.body);
    assert.equal(r1.body.id, id);
    for (const k of ['name', 'email', 'phone', 'tags', 'attributes']) assert.deepEqual(r1.body[k], body[k], k);
    assert.equal(r1.body.consent.email.granted, true);
    assert.equal(r1.body.consent.sms.granted, false);
    assert.equal(r1.body.consent.wechat.granted, false);
    assert.equal(r1.body.erased_at, null);
    assertNear(r1.body.created_at, t0, t1, 'created_at');
    assertNear(r1.body.updated_at, t0, t1, 'updated_at');

    const g1 = await get(id);
    assert.equal(g1.status, 200);
    assert.deepEqual(g1.body, r1.body, 'GET returns what PUT returned');

    const r2 = await put(id, { ...body, name: 'Li Wei 2', tags: ['tea'] });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.body.name, 'Li Wei 2');
    assert.deepEqual(r2.body.tags, ['tea']);
    assert.equal(r2.body.created_at, r1.body.created_at, 'created_at never changes');
    assert.ok(tsMicros(r2.body.updated_at) >= tsMicros(r1.body.updated_at), 'updated_at moves forward');
    assert.equal(r2.body.consent.email.updated_at, r1.body.consent.email.updated_at, 'unchanged consent keeps its updated_at');

    const g2 = await get(id);
    assert.deepEqual(g2.body, r2.body);
  });

  test('a storefront key can create and read customers', async () => {
    const id = uniq('sf');
    const r = await put(id, { name: 'From Storefront' }, shop.keys.storefront);
    assert.equal(r.status, 201, r.text);
    const g = await get(id, shop.keys.readonly);
    assert.equal(g.status, 200);
    assert.equal(g.body.name, 'From Storefront');
  });

  test('Content-Type application/json; charset=utf-8 is accepted', async () => {
    const id = uniq('cs');
    const r = await c.req('PUT', `/v1/customers/${id}`, {
      key: admin, rawBody: JSON.stringify({ name: 'Charset' }), headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assert.equal(r.status, 201, r.text);
  });

  test('unicode names count characters, not bytes (200 CJK chars ok, 201 rejected)', async () => {
    const id = uniq('uni');
    const name200 = '茶'.repeat(200);
    const r = await put(id, { name: name200 });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, name200);
    const bad = await put(id, { name: '茶'.repeat(201) });
    assertProblem(bad, 422, 'validation_failed', '/name');
    assert.equal((await get(id)).body.name, name200, 'failed PUT changed nothing');
  });

  test('attributes round-trip exactly (nested JSON, unicode, escapes)', async () => {
    const id = uniq('attr');
    const attributes = {
      s: 'Grüße 李伟 🍵 "quoted" \\ back\nslash\ttab \u2028',
      n: -12.5,
      i: 1234567890,
      z: 0,
      b: false,
      nul: null,
      arr: [[], {}, [1, [2, [3]]], 'x'],
      obj: { 'key with spaces': { 'ключ': 'значение' } },
    };
    const r = await put(id, { attributes });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.attributes, attributes);
    assert.deepEqual((await get(id)).body.attributes, attributes);
  });

  test('attribute numbers keep the digits the client sent (no binary floating point round trip)', async () => {
    const id = uniq('attrnum');
    // JSON.parse would map 0.10000000000000001 back to 0.1: compare the raw text
    const raw = '{"tags":["exactnum"],"attributes":{"ratio":0.1,"price":19.99,"third":0.3333333333333333333}}';
    const r = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: raw,
      headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 201, r.text);
    for (const text of [r.text, (await get(id)).text,
      (await c.get('/v1/customers?tag=exactnum', { key: admin })).text]) {
      assert.match(text, /"ratio"\s*:\s*0\.1[,}]/);
      assert.match(text, /"price"\s*:\s*19\.99[,}]/);
      assert.match(text, /"third"\s*:\s*0\.3333333333333333333[,}]/);
    }
  });

  test('attributes larger than 4096 bytes serialized → 422 /attributes; ~3000 bytes ok', async () => {
    const id = uniq('big');
    const ok = await put(id, { attributes: { blob: 'x'.repeat(3000) } });
    assert.equal(ok.status, 201, ok.text);
    const bad = await put(id, { attributes: { blob: 'y'.repeat(6000) } });
    assertProblem(bad, 422, 'validation_failed', '/attributes');
    assert.equal((await get(id)).body.attributes.blob, 'x'.repeat(3000));
  });

  test('NUL characters never cause a server error', async () => {
    const id = uniq('nul');
    const r = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: '{"name":"a\\u0000b"}' });
    assert.ok([400, 422].includes(r.status), `NUL in name must be rejected as bad input, got ${r.status} ${r.text}`);
    assert.equal((await get(id)).status, 404);
    const r2 = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: '{"attributes":{"k":"a\\u0000b"}}' });
    assert.ok(r2.status < 500, `NUL in attributes: got ${r2.status} ${r2.text}`);
    if (r2.status < 300) assert.deepEqual((await get(id)).body.attributes, { k: 'a\u0000b' });
    const r3 = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: '{"attributes":{"a\\u0000":1}}' });
    assert.ok(r3.status < 500, `NUL in attribute key: got ${r3.status} ${r3.text}`);
  });

  test('lone surrogate escapes never cause a server error', async () => {
    const id = uniq('sur');
    const r = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: '{"name":"x\\ud800y"}' });
    assert.ok(r.status < 500, `got ${r.status} ${r.text}`);
    const r2 = await c.req('PUT', `/v1/customers/${id}`, { key: admin, rawBody: '{"attributes":{"k":"\\udc00"}}' });
    assert.ok(r2.status < 500, `got ${r2.status} ${r2.text}`);
  });
});

describe('replace semantics', () => {
  test('omitted fields are reset to null / [] / {} / not granted', async () => {
    const id = uniq('repl');
    const full = {
      name: 'Full', email: 'full@example.com', phone: '+86 (138) 0013-8000', tags: ['a', 'b'],
      consent: { email: { granted: true }, sms: { granted: true }, wechat: { granted: true } },
      attributes: { k: 'v' },
    };
    const r1 = await put(id, full);
    assert.equal(r1.status, 201, r1.text);
    assert.equal(r1.body.phone, full.phone);
    const t0 = nowMicros();
    const r2 = await put(id, { name: 'Only Name' });
    const t1 = nowMicros();
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.body.name, 'Only Name');
    assert.equal(r2.body.email, null);
    assert.equal(r2.body.phone, null);
    assert.deepEqual(r2.body.tags, []);
    assert.deepEqual(r2.body.attributes, {});
    for (const ch of ['email', 'sms', 'wechat']) {
      assert.equal(r2.body.consent[ch].granted, false, `${ch} withdrawn when omitted`);
      assertNear(r2.body.consent[ch].updated_at, t0, t1, `consent.${ch}.updated_at after withdrawal`);
    }
    const r3 = await put(id, {});
    assert.equal(r3.status, 200);
    assert.equal(r3.body.name, null);
    assert.deepEqual(await get(id).then((g) => g.body), r3.body);
  });

  test('explicit nulls are accepted for nullable fields', async () => {
    const id = uniq('nulls');
    const r = await put(id, { name: null, email: null, phone: null });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, null);
    assert.equal(r.body.email, null);
    assert.equal(r.body.phone, null);
  });
});

describe('consent updated_at rules', () => {
  test('new customer: granted → now, not granted → null', async () => {
    const id = uniq('cons');
    const t0 = nowMicros();
    const r = await put(id, { consent: { email: { granted: true }, sms: { granted: false } } });
    const t1 = nowMicros();
    assert.equal(r.status, 201, r.text);
    assertNear(r.body.consent.email.updated_at, t0, t1, 'email.updated_at');
    assert.deepEqual(r.body.consent.sms, { granted: false, updated_at: null });
    assert.deepEqual(r.body.consent.wechat, { granted: false, updated_at: null });
  });

  test('sequence: unchanged keeps, `at` sets, change sets now, omitted withdraws', async () => {
    const id = uniq('cseq');
    const r1 = await put(id, { consent: { email: { granted: true }, wechat: { granted: true } } });
    assert.equal(r1.status, 201, r1.text);

    // unchanged granted, no `at` → kept exactly
    const r2 = await put(id, { consent: { email: { granted: true }, wechat: { granted: true } } });
    assert.equal(r2.status, 200);
    assert.equal(r2.body.consent.email.updated_at, r1.body.consent.email.updated_at);
    assert.equal(r2.body.consent.wechat.updated_at, r1.body.consent.wechat.updated_at);
    assert.deepEqual(r2.body.consent.sms, { granted: false, updated_at: null });

    // `at` given (with offset) → exactly that instant, rendered in UTC
    const at = '2025-01-02T03:04:05.5+08:00';
    const r3 = await put(id, { consent: { email: { granted: true, at }, wechat: { granted: true } } });
    assert.equal(r3.status, 200, r3.text);
    assert.equal(assertServerTs(r3.body.consent.email.updated_at), tsMicros(at));
    assert.equal(r3.body.consent.wechat.updated_at, r1.body.consent.wechat.updated_at);

    // unchanged again without `at` → keeps the `at` value
    const r4 = await put(id, { consent: { email: { granted: true }, wechat: { granted: true } } });
    assert.equal(tsMicros(r4.body.consent.email.updated_at), tsMicros(at));

    // granted → false without `at` → now
    const t0 = nowMicros();
    const r5 = await put(id, { consent: { email: { granted: false }, wechat: { granted: true } } });
    const t1 = nowMicros();
    assert.equal(r5.body.consent.email.granted, false);
    assertNear(r5.body.consent.email.updated_at, t0, t1, 'email.updated_at after change');

    // unchanged (false) but with `at` → at (microsecond precision kept)
    const at2 = '2024-05-06T07:08:09.123456Z';
    const r6 = await put(id, { consent: { email: { granted: false }, sms: { granted: false, at: at2 }, wechat: { granted: true } } });
    assert.equal(r6.status, 200, r6.text);
    assert.deepEqual(r6.body.consent.sms, { granted: false, updated_at: at2 });
    assert.equal(r6.body.consent.email.updated_at, r5.body.consent.email.updated_at);

    // wechat omitted → withdrawn with updated_at = now
    const t2 = nowMicros();
    const r7 = await put(id, { consent: {} });
    const t3 = nowMicros();
    assert.equal(r7.body.consent.wechat.granted, false);
    assertNear(r7.body.consent.wechat.updated_at, t2, t3, 'wechat withdrawn');
    assert.equal(r7.body.consent.sms.updated_at, at2, 'sms unchanged (false → omitted=false) keeps updated_at');
    assert.equal(r7.body.consent.email.updated_at, r5.body.consent.email.updated_at);

    assert.deepEqual((await get(id)).body, r7.body);
  });

  test('bad consent input → 422 with pointer', async () => {
    const id = uniq('cbad');
    assertProblem(await put(id, { consent: { email: { granted: true, at: 'yesterday' } } }), 422, 'validation_failed', '/consent/email/at');
    assertProblem(await put(id, { consent: { sms: { at: '2025-01-01T00:00:00Z' } } }), 422, 'validation_failed', '/consent/sms/granted');
    assertProblem(await put(id, { consent: { sms: { granted: null } } }), 422, 'validation_failed', '/consent/sms/granted');
    assertProblem(await put(id, { consent: { wechat: { granted: true, at: '2025-01-01T00:00:00' } } }), 422, 'validation_failed', '/consent/wechat/at');
    assertProblem(await put(id, { consent: { fax: { granted: true } } }), 422, 'validation_failed', '/consent/fax');
    assert.equal((await get(id)).status, 404, 'nothing created by failed PUTs');
  });
});

describe('field validation', () => {
  const cases = [
    ['email without @', { email: 'nope' }, '/email'],
    ['email with two @', { email: 'a@b@c.com' }, '/email'],
    ['email nothing before @', { email: '@example.com' }, '/email'],
    ['email nothing after @', { email: 'a@' }, '/email'],
    ['email 255 chars', { email: `${'a'.repeat(243)}@example.com` }, '/email'],
    ['phone with letters', { phone: '+86 abc' }, '/phone'],
    ['phone 33 chars', { phone: '1'.repeat(33) }, '/phone'],
    ['empty name', { name: '' }, '/name'],
    ['name 201 chars', { name: 'n'.repeat(201) }, '/name'],
    ['51 tags', { tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }, '/tags'],
    ['empty tag', { tags: [''] }, '/tags/0'],
    ['tag 65 chars', { tags: ['t'.repeat(65)] }, '/tags/0'],
    ['tag with space', { tags: ['ok', 'has space'] }, '/tags/1'],
    ['tag with @', { tags: ['a@b'] }, '/tags/0'],
    ['duplicate tags', { tags: ['x', 'x'] }, /^\/tags(\/1)?$/],
    ['attributes array', { attributes: [1] }, '/attributes'],
  ];
  for (const [name, body, pointer] of cases) {
    test(`${name} → 422`, async () => {
      const id = uniq('val');
      assertProblem(await put(id, body), 422, 'validation_failed', pointer);
      assert.equal((await get(id)).status, 404);
    });
  }

  test('boundary values are accepted', async () => {
    const id = uniq('bound');
    const body = {
      name: 'n'.repeat(200),
      email: `${'a'.repeat(242)}@example.com`,
      phone: '1'.repeat(32),
      tags: Array.from({ length: 50 }, (_, i) => `t.${i}:x-${'y'.repeat(i)}`.slice(0, 64)),
    };
    body.tags[0] = 'T'.repeat(64);
    assert.equal(body.email.length, 254);
    const r = await put(id, body);
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.tags, body.tags);
    assert.equal(r.body.email, body.email);
  });
});

describe('path ids', () => {
  test('128-char id ok, 129-char id → 400 /path/id', async () => {
    const id128 = 'a'.repeat(128);
    const r = await put(id128, { name: 'long' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.id, id128);
    assert.equal((await get(id128)).status, 200);
    const id129 = 'b'.repeat(129);
    assertProblem(await put(id129, { name: 'x' }), 400, 'invalid_parameter', '/path/id');
    assertProblem(await get(id129), 400, 'invalid_parameter', '/path/id');
    assertProblem(await del(id129), 400, 'invalid_parameter', '/path/id');
  });

  test('all allowed characters [A-Za-z0-9._:@-] work', async () => {
    const id = `Az09._:@-${randomBytes(4).toString('hex')}`;
    const r = await c.put(`/v1/customers/${id}`, { name: 'chars' }, { key: admin });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.id, id);
    assert.equal(r.headers.location, `/v1/customers/${id}`);
    const g = await c.get(`/v1/customers/${id}`, { key: admin });
    assert.equal(g.status, 200);
    assert.equal(g.body.id, id);
  });

  for (const bad of ['a~b', 'a*b', "a'b", 'a!b', 'a%20b', 'caf%C3%A9', 'a%00b', 'a%2Fb', 'a+b', 'a,b', 'a%25b']) {
    test(`illegal id ${bad} → 400 /path/id`, async () => {
      assertProblem(await c.get(`/v1/customers/${bad}`, { key: admin }), 400, 'invalid_parameter', '/path/id');
      assertProblem(await c.put(`/v1/customers/${bad}`, { name: 'x' }, { key: admin }), 400, 'invalid_parameter', '/path/id');
    });
  }
});

describe('percent-encoded NUL does not truncate ids', () => {
  test('GET/PUT/DELETE /v1/customers/<existing>%00x never address <existing>', async () => {
    const id = uniq('trunc');
    const r = await put(id, { name: 'Victim', email: 'victim@example.com' });
    assert.equal(r.status, 201);
    const g = await c.get(`/v1/customers/${id}%00x`, { key: admin });
    assertProblem(g, 400, 'invalid_parameter', '/path/id');
    const p = await c.put(`/v1/customers/${id}%00x`, { name: 'Overwritten' }, { key: admin });
    assertProblem(p, 400, 'invalid_parameter', '/path/id');
    const d = await c.del(`/v1/customers/${id}%00x`, { key: admin });
    assertProblem(d, 400, 'invalid_parameter', '/path/id');
    const after = await get(id);
    assert.deepEqual(after.body, r.body, 'the customer was not touched');
  });
});

describe('not found', () => {
  test('GET / DELETE unknown customer → 404 not_found', async () => {
    assertProblem(await get('does-not-exist'), 404, 'not_found');
    assertProblem(await del('does-not-exist'), 404, 'not_found');
    assertProblem(await get('does-not-exist', shop.keys.readonly), 404, 'not_found');
  });
});

describe('erase', () => {
  test('DELETE erases personal data, keeps the row, is repeatable; PUT revives', async () => {
    const id = uniq('erase');
    const rnd = randomBytes(6).toString('hex');
    const pii = {
      name: `Erase Me ${rnd}`,
      email: `erase-${rnd}@example.com`,
      phone: `+86${String(parseInt(rnd, 16)).padStart(14, '7').slice(0, 12)}`,
      tags: [`tag-${rnd}`],
      consent: { email: { granted: true }, sms: { granted: true } },
      attributes: { secret: `attr-${rnd}` },
    };
    const r1 = await put(id, pii);
    assert.equal(r1.status, 201, r1.text);
    // sanity: the PII is in the database before erasure (so the check below can fail)
    assert.ok((await findInDb(svc.db, pii.email)).length >= 1, 'email stored before erase');

    const t0 = nowMicros();
    const d = await del(id);
    const t1 = nowMicros();
    assert.equal(d.status, 204, d.text);
    assert.equal(d.text, '', '204 has no body');

    const g = await get(id);
    assert.equal(g.status, 200, g.text);
    assertCustomerShape(g.body);
    assert.equal(g.body.name, null);
    assert.equal(g.body.email, null);
    assert.equal(g.body.phone, null);
    assert.deepEqual(g.body.tags, []);
    assert.deepEqual(g.body.attributes, {});
    assert.equal(g.body.created_at, r1.body.created_at);
    assertNear(g.body.erased_at, t0, t1, 'erased_at');
    for (const ch of ['email', 'sms', 'wechat']) {
      assert.equal(g.body.consent[ch].granted, false, `consent ${ch}`);
    }
    assertNear(g.body.consent.email.updated_at, t0, t1, 'consent.email.updated_at at erasure');
    assertNear(g.body.consent.sms.updated_at, t0, t1, 'consent.sms.updated_at at erasure');

    // the customer row is still in the database, the personal data is nowhere
    assert.ok((await findInDb(svc.db, id)).length >= 1, 'customer row still present after erasure');
    for (const v of [pii.name, pii.email, pii.phone, pii.tags[0], pii.attributes.secret]) {
      const hits = await findInDb(svc.db, v);
      assert.deepEqual(hits.map((h) => h.table), [], `erased value ${v} still stored: ${JSON.stringify(hits).slice(0, 500)}`);
    }

    const d2 = await del(id);
    assert.equal(d2.status, 204, 'erasing again → 204');
    const g2 = await get(id);
    assert.equal(g2.body.erased_at !== null, true);

    const p = await put(id, { name: 'Back Again' });
    assert.equal(p.status, 200, `PUT on erased customer → 200, got ${p.status}`);
    assert.equal(p.body.erased_at, null);
    assert.equal(p.body.name, 'Back Again');
    assert.equal(p.body.created_at, r1.body.created_at);
  });

  test('readonly key cannot erase', async () => {
    const id = uniq('ro');
    assert.equal((await put(id, { name: 'x' })).status, 201);
    assertProblem(await del(id, shop.keys.readonly), 403, 'forbidden');
    assert.equal((await get(id)).body.name, 'x');
  });
});

describe('listing', () => {
  const N = 237;
  let L; // a separate shop only for listing
  const created = []; // responses in creation order

  before(async () => {
    L = await setupShop(svc);
    for (let i = 0; i < N; i++) {
      const tags = [];
      if (i % 3 === 0) tags.push('vip');
      if (i % 4 === 0) tags.push('tea');
      const consent = {};
      if (i % 5 === 0) consent.email = { granted: true };
      if (i % 7 === 0) consent.sms = { granted: true };
      if (i % 11 === 0) consent.wechat = { granted: false };
      const id = `list-${String(i).padStart(3, '0')}-${randomBytes(2).toString('hex')}`;
      const r = await c.put(`/v1/customers/${id}`, { name: `Customer ${i}`, tags, consent }, { key: L.keys.admin });
      assert.equal(r.status, 201, r.text);
      created.push(r.body);
    }
  });

  async function listAll(query, { key = L.keys.admin, onPage } = {}) {
    const ids = [];
    const sizes = [];
    let cursor = null;
    for (let page = 0; page < 1000; page++) {
      const qs = new URLSearchParams(query);
      if (cursor) qs.set('cursor', cursor);
      const s = qs.toString();
      const r = await c.get(`/v1/customers${s ? `?${s}` : ''}`, { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body).sort(), ['items', 'next_cursor']);
      for (const it of r.body.items) assertCustomerShape(it);
      ids.push(...r.body.items.map((x) => x.id));
      sizes.push(r.body.items.length);
      if (onPage) await onPage(page, r);
      cursor = r.body.next_cursor;
      if (cursor === null) return { ids, sizes };
      assert.equal(typeof cursor, 'string');
      assert.ok(r.body.items.length > 0, 'a non-final page is not empty');
    }
    assert.fail('pagination did not terminate');
  }

  test(`${N} customers, limit=50 → every id exactly once, in creation order`, async () => {
    const { ids, sizes } = await listAll({ limit: '50' });
    assert.deepEqual(sizes, [50, 50, 50, 50, 37]);
    assert.deepEqual(ids, created.map((x) => x.id));
  });

  test('default limit is 50, limit=200 returns 200, limit=1 pages one by one', async () => {
    const r = await c.get('/v1/customers', { key: L.keys.readonly });
    assert.equal(r.status, 200);
    assert.equal(r.body.items.length, 50);
    assert.deepEqual(r.body.items.map((x) => x.id), created.slice(0, 50).map((x) => x.id));
    assert.deepEqual(r.body.items[0], created[0], 'listed item equals the stored customer');
    const r2 = await c.get('/v1/customers?limit=200', { key: L.keys.admin });
    assert.equal(r2.body.items.length, 200);
    assert.equal(typeof r2.body.next_cursor, 'string');
    const { ids } = await listAll({ limit: '1', tag: 'tea', consent: 'sms' });
    assert.deepEqual(ids, created.filter((_, i) => i % 4 === 0 && i % 7 === 0).map((x) => x.id));
  });

  test('filters: tag, consent, created range (after inclusive, before exclusive)', async () => {
    const vip = await listAll({ tag: 'vip', limit: '7' });
    assert.deepEqual(vip.ids, created.filter((_, i) => i % 3 === 0).map((x) => x.id));

    for (const [ch, mod] of [['email', 5], ['sms', 7]]) {
      const got = await listAll({ consent: ch, limit: '13' });
      assert.deepEqual(got.ids, created.filter((_, i) => i % mod === 0).map((x) => x.id), `consent=${ch}`);
    }
    const none = await listAll({ consent: 'wechat' });
    assert.deepEqual(none.ids, [], 'wechat never granted');

    const both = await listAll({ tag: 'vip', consent: 'email' });
    assert.deepEqual(both.ids, created.filter((_, i) => i % 15 === 0).map((x) => x.id));

    const range = await listAll({ created_after: created[10].created_at, created_before: created[20].created_at });
    assert.deepEqual(range.ids, created.slice(10, 20).map((x) => x.id));

    const from = await listAll({ created_after: created[230].created_at, limit: '3' });
    assert.deepEqual(from.ids, created.slice(230).map((x) => x.id));

    const offset = await listAll({ created_before: '2000-01-01T08:00:00+08:00' });
    assert.deepEqual(offset.ids, [], 'nothing before 2000');

    const all = await listAll({ created_after: '2000-01-01T08:00:00+08:00', limit: '200' });
    assert.equal(all.ids.length, N);

    const nobody = await listAll({ tag: 'no-such-tag' });
    assert.deepEqual(nobody.ids, []);
  });

  test('updates do not move a customer; customers created mid-pagination appear at the end', async () => {
    const u = await c.put(`/v1/customers/${created[0].id}`, { name: 'Updated First', tags: ['vip', 'tea'] }, { key: L.keys.admin });
    assert.equal(u.status, 200);
    const extraId = uniq('late');
    const { ids } = await listAll({ limit: '60' }, {
      onPage: async (page) => {
        if (page === 1) {
          const r = await c.put(`/v1/customers/${extraId}`, { name: 'Late' }, { key: L.keys.admin });
          assert.equal(r.status, 201);
        }
      },
    });
    assert.deepEqual(ids, [...created.map((x) => x.id), extraId]);
  });

  test('another shop sees none of these customers', async () => {
    const r = await c.get('/v1/customers?limit=200', { key: admin });
    assert.equal(r.status, 200);
    const mine = new Set(created.map((x) => x.id));
    assert.equal(r.body.items.filter((x) => mine.has(x.id)).length, 0);
  });
});
