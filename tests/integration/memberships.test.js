// Paid memberships (memberships1.md): plans (PUT/GET /v1/membership-plans),
// the sale (POST /v1/customers/{id}/memberships), renewal, cancellation with
// refunds, card numbers, the lists and what applies to a customer now.
//
// Every expected figure is worked out by hand in the comment next to it.
// Time: the service stamps "now"; the test brackets each request between
// the clock read just before it (floor, in ms) and just after it (ceil), so
// an instant the service calls "now" must fall in [before, after]. Instants
// are compared exactly, in microseconds (tsMicros), never as strings.
// Refunds that depend on "now" are checked twice: against the value worked
// out by hand (valid whatever the few milliseconds the request takes) and
// against the stated rule applied to the returned terms and cancelled_at.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  startService, api, setupShop, assertProblem, assertServerTs, tsMicros, uniq,
} from '../lib/harness.js';

let svc;
let c;

const DAY = 86400n * 1000000n; // 24 h in microseconds
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PLAN_KEYS = ['active', 'benefits', 'code', 'created_at', 'currency', 'discount_bp', 'duration_days', 'fee', 'name', 'updated_at'];
const MEMBERSHIP_KEYS = ['cancelled_at', 'card_number', 'created_at', 'currency', 'customer_id', 'discount_bp', 'ends_at',
  'id', 'paid_total', 'plan', 'refunded', 'starts_at', 'status', 'terms', 'updated_at'];
const TERM_KEYS = ['discount_bp', 'duration_days', 'ends_at', 'fee', 'paid_at', 'starts_at'];

// ---------------------------------------------------------------------------
// helpers

/** A shop with one key of each shop scope: {shopId, keys: {admin, storefront, readonly}}. */
const mkShop = () => setupShop(svc, { name: uniq('Membership Shop') });

/** Microseconds now, rounded down / up to the millisecond the clock shows. */
const nowFloor = () => BigInt(Date.now()) * 1000n;
const nowCeil = () => (BigInt(Date.now()) + 1n) * 1000n;
/** An RFC 3339 instant (UTC) `ms` milliseconds from now. */
const isoIn = (ms) => new Date(Date.now() + ms).toISOString();

/** Asserts lo <= x <= hi (BigInt microseconds). */
function within(x, lo, hi, what) {
  assert.ok(x >= lo && x <= hi, `${what}: ${x} not within [${lo}, ${hi}] (${Number(x - lo) / 1000} ms after the start)`);
}

const plansPath = (code) => `/v1/membership-plans/${code}`;
const PLAN = { name: 'PLUS annual', fee: 36500, duration_days: 365, discount_bp: 500 };

/** PUT a plan; asserts 201 or 200 (`status` when given) and returns the body. */
async function putPlan(key, code, body = PLAN, status) {
  const r = await c.put(plansPath(code), body, { key });
  if (status) assert.equal(r.status, status, `PUT plan ${code}: ${r.text}`);
  else assert.ok([200, 201].includes(r.status), `PUT plan ${code}: ${r.status} ${r.text}`);
  return r.body;
}

/** PUT a customer; asserts it is new. */
async function mkCustomer(key, id = uniq('cust')) {
  const r = await c.put(`/v1/customers/${encodeURIComponent(id)}`, { name: `Name ${id}` }, { key });
  assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
  return id;
}

const buyPath = (customer) => `/v1/customers/${encodeURIComponent(customer)}/memberships`;
const buyRaw = (key, customer, body, opts = {}) => c.post(buyPath(customer), body, { key, ...opts });

/**
 * POST a sale; asserts 201 with Location and the invariants of a new
 * membership; returns {m, before, after} (the clock around the request).
 */
async function buy(key, customer, body, opts = {}) {
  const t0 = nowFloor();
  const r = await buyRaw(key, customer, body, opts);
  const t1 = nowCeil();
  assert.equal(r.status, 201, `POST ${buyPath(customer)} ${JSON.stringify(body)}: ${r.text}`);
  const m = r.body;
  assert.match(m.id, UUID_RE);
  assert.equal(r.headers.location, `/v1/memberships/${m.id}`);
  assertMembershipShape(m);
  assert.equal(m.customer_id, customer);
  assert.equal(m.plan, body.plan);
  assert.equal(m.terms.length, 1, 'a sale is one term');
  if (body.card_number !== undefined) assert.equal(m.card_number, body.card_number);
  if (body.starts_at === undefined) within(tsMicros(m.starts_at), t0, t1, 'starts_at defaults to now');
  within(tsMicros(m.terms[0].paid_at), t0, t1, 'the term is paid now');
  return { m, before: t0, after: t1, res: r };
}

/** Invariants of every Membership answer. */
function assertMembershipShape(m) {
  assert.deepEqual(Object.keys(m).sort(), MEMBERSHIP_KEYS);
  for (const k of ['starts_at', 'ends_at', 'created_at', 'updated_at']) assertServerTs(m[k], k);
  assert.equal(m.currency, 'CNY');
  assert.ok(m.terms.length >= 1);
  for (const [i, t] of m.terms.entries()) {
    assert.deepEqual(Object.keys(t).sort(), TERM_KEYS, `terms[${i}]`);
    for (const k of ['starts_at', 'ends_at', 'paid_at']) assertServerTs(t[k], `terms[${i}].${k}`);
    // a term runs [starts_at, starts_at + duration_days × 24 h)
    assert.equal(tsMicros(t.ends_at) - tsMicros(t.starts_at), BigInt(t.duration_days) * DAY, `terms[${i}]: ends_at = starts_at + duration_days days`);
  }
  assert.equal(tsMicros(m.starts_at), tsMicros(m.terms[0].starts_at), 'starts_at is the start of the first term');
  assert.equal(m.paid_total, m.terms.reduce((s, t) => s + t.fee, 0), 'paid_total = Σ fee of the terms');
  assert.equal(m.discount_bp, m.terms[m.terms.length - 1].discount_bp, 'discount_bp of the latest term');
  if (m.status === 'cancelled') {
    assertServerTs(m.cancelled_at, 'cancelled_at');
    assert.equal(tsMicros(m.ends_at), tsMicros(m.cancelled_at), 'a cancelled membership ends when it was cancelled');
  } else {
    assert.equal(m.cancelled_at, null);
    assert.equal(m.refunded, 0);
    assert.equal(tsMicros(m.ends_at), tsMicros(m.terms[m.terms.length - 1].ends_at), 'ends_at is the end of the last term');
  }
}

const mPath = (id) => `/v1/memberships/${id}`;

async function getM(key, id) {
  const r = await c.get(mPath(id), { key });
  assert.equal(r.status, 200, `GET ${mPath(id)}: ${r.text}`);
  assertMembershipShape(r.body);
  return r.body;
}

/** POST …/renew; asserts 200; returns {m, before, after}. */
async function renew(key, id, opts = {}) {
  const t0 = nowFloor();
  const r = await c.post(`${mPath(id)}/renew`, {}, { key, ...opts });
  const t1 = nowCeil();
  assert.equal(r.status, 200, `renew ${id}: ${r.text}`);
  assertMembershipShape(r.body);
  return { m: r.body, before: t0, after: t1, res: r };
}

/** POST …/cancel; asserts 200 and the cancelled state; returns {m, before, after}. */
async function cancel(key, id, refund, opts = {}) {
  const t0 = nowFloor();
  const r = await c.post(`${mPath(id)}/cancel`, { refund }, { key, ...opts });
  const t1 = nowCeil();
  assert.equal(r.status, 200, `cancel ${id} (${refund}): ${r.text}`);
  const m = r.body;
  assertMembershipShape(m);
  assert.equal(m.status, 'cancelled');
  within(tsMicros(m.cancelled_at), t0, t1, 'cancelled_at is now');
  assert.equal(m.ends_at, m.cancelled_at, 'ends_at = cancelled_at (benefits stop now)');
  assert.ok(m.refunded >= 0 && m.refunded <= m.paid_total, 'never more than paid_total');
  return { m, before: t0, after: t1, res: r };
}

/** The pro-rata rule of memberships1.md applied to returned terms at instant `at` (µs). */
function proRata(terms, at) {
  let sum = 0n;
  for (const t of terms) {
    const s = tsMicros(t.starts_at);
    const e = tsMicros(t.ends_at);
    if (s > at) sum += BigInt(t.fee); // not started yet: the whole fee
    else if (e > at) sum += (BigInt(t.fee) * ((e - at) / DAY)) / BigInt(t.duration_days); // in progress
    // over: 0
  }
  return Number(sum);
}

async function listM(key, customer) {
  const r = await c.get(buyPath(customer), { key });
  assert.equal(r.status, 200, `GET ${buyPath(customer)}: ${r.text}`);
  assert.deepEqual(Object.keys(r.body), ['items']);
  for (const m of r.body.items) assertMembershipShape(m);
  return r.body.items;
}

const nowPath = (customer) => `/v1/customers/${encodeURIComponent(customer)}/membership`;

/** GET …/membership; asserts 200 and its invariants; returns the body. */
async function applies(key, customer) {
  const t0 = nowFloor();
  const r = await c.get(nowPath(customer), { key });
  const t1 = nowCeil();
  assert.equal(r.status, 200, `GET ${nowPath(customer)}: ${r.text}`);
  const b = r.body;
  assert.deepEqual(Object.keys(b).sort(), ['as_of', 'benefits', 'customer_id', 'discount_bp', 'discount_source', 'memberships', 'tier']);
  assert.equal(b.customer_id, customer);
  within(tsMicros(b.as_of), t0, t1, 'as_of is now');
  assert.equal(b.tier, null, 'these shops have no tier programme (tiers.test.js)');
  assert.equal(b.discount_source, b.discount_bp ? 'membership' : null);
  for (const m of b.memberships) {
    assertMembershipShape(m);
    assert.equal(m.status, 'active');
  }
  // the discount of each membership's term in progress (the last term that has started)
  const running = (m) => m.terms.filter((t) => tsMicros(t.starts_at) <= tsMicros(b.as_of)).at(-1).discount_bp;
  assert.equal(b.discount_bp, Math.max(0, ...b.memberships.map(running)),
    'discount_bp: the largest discount of the terms in progress of the active memberships, 0 if none');
  return b;
}

/** Luhn check over a string of digits (the last one is the check digit). */
function luhnValid(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

before(async () => {
  svc = await startService();
  c = api(svc);
});

after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------

describe('the Luhn helper itself', () => {
  test('known numbers', () => {
    // 79927398713: the textbook example; 4111 1111 1111 1111 the test Visa number
    assert.ok(luhnValid('79927398713'));
    assert.ok(luhnValid('4111111111111111'));
    assert.ok(!luhnValid('4111111111111112'));
    assert.ok(!luhnValid('79927398710'));
  });
});

describe('plans', () => {
  let S;
  before(async () => { S = await mkShop(); });

  test('PUT creates (201, Location) then replaces (200): created_at kept, updated_at moves; GET answers the same', async () => {
    const t0 = nowFloor();
    const r = await c.put(plansPath('plus'), PLAN, { key: S.keys.admin });
    const t1 = nowCeil();
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, '/v1/membership-plans/plus');
    const p = r.body;
    assert.deepEqual(Object.keys(p).sort(), PLAN_KEYS);
    assert.deepEqual({ ...p, created_at: undefined, updated_at: undefined }, {
      code: 'plus', name: 'PLUS annual', fee: 36500, currency: 'CNY', duration_days: 365, discount_bp: 500,
      active: true, // default
      benefits: {}, // default
      created_at: undefined, updated_at: undefined,
    });
    within(assertServerTs(p.created_at), t0, t1, 'created_at');
    assert.equal(p.updated_at, p.created_at);
    assert.deepEqual((await c.get(plansPath('plus'), { key: S.keys.admin })).body, p);

    const changed = { name: 'PLUS monthly', fee: 0, duration_days: 30, discount_bp: 10000, active: false };
    const t2 = nowFloor();
    const r2 = await c.put(plansPath('plus'), changed, { key: S.keys.admin });
    const t3 = nowCeil();
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual({ ...r2.body, updated_at: undefined }, { code: 'plus', currency: 'CNY', ...changed, benefits: {}, created_at: p.created_at, updated_at: undefined });
    within(tsMicros(r2.body.updated_at), t2, t3, 'updated_at');
    for (const key of Object.values(S.keys)) {
      const g = await c.get(plansPath('plus'), { key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body, r2.body);
    }

    // active omitted again → true again (replace semantics, default true)
    const r3 = await c.put(plansPath('plus'), PLAN, { key: S.keys.admin });
    assert.equal(r3.status, 200, r3.text);
    assert.equal(r3.body.active, true);
    assert.equal(r3.body.fee, 36500);
  });

  test('the bounds are accepted: name 200, fee 0 and 10^12, duration 1 and 3660, discount 0 and 10000, a 64-character code', async () => {
    const lo = await putPlan(S.keys.admin, 'bounds-lo', { name: 'x', fee: 0, duration_days: 1, discount_bp: 0 }, 201);
    assert.deepEqual([lo.name, lo.fee, lo.duration_days, lo.discount_bp, lo.active], ['x', 0, 1, 0, true]);
    const hiName = 'é'.repeat(200); // 200 characters (400 bytes)
    const hi = await putPlan(S.keys.admin, 'bounds-hi', { name: hiName, fee: 10 ** 12, duration_days: 3660, discount_bp: 10000, active: true }, 201);
    assert.deepEqual([hi.name, hi.fee, hi.duration_days, hi.discount_bp], [hiName, 10 ** 12, 3660, 10000]);
    const code64 = `a${'0-'.repeat(31)}z`;
    assert.equal(code64.length, 64);
    const r = await c.put(plansPath(code64), PLAN, { key: S.keys.admin });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, `/v1/membership-plans/${code64}`);
    assert.equal(r.body.code, code64);
  });

  test('GET /v1/membership-plans: every plan (active or not) sorted by code in byte order; a new shop has none', async () => {
    const T = await mkShop();
    assert.deepEqual((await c.get('/v1/membership-plans', { key: T.keys.readonly })).body, { items: [] });
    // byte order: '-' (0x2d) < '0'..'9' (0x30..) < 'a'..'z' (0x61..); a shorter prefix first
    const codes = ['ab', 'a0', 'a-b', 'a', 'b', '9', 'a-', 'zz-top'];
    for (const [i, code] of codes.entries()) {
      await putPlan(T.keys.admin, code, { ...PLAN, name: `Plan ${code}`, fee: i, active: i % 2 === 0 }, 201);
    }
    const expected = ['9', 'a', 'a-', 'a-b', 'a0', 'ab', 'b', 'zz-top'];
    for (const key of Object.values(T.keys)) {
      const r = await c.get('/v1/membership-plans', { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.items.map((p) => p.code), expected);
      for (const p of r.body.items) {
        assert.deepEqual(Object.keys(p).sort(), PLAN_KEYS);
        const i = codes.indexOf(p.code);
        assert.deepEqual([p.name, p.fee, p.active], [`Plan ${p.code}`, i, i % 2 === 0]);
        assert.deepEqual(p, (await c.get(plansPath(p.code), { key })).body, 'the list shows each plan as GET does');
      }
    }
    // the other shop's plans are not listed
    assert.ok(!(await c.get('/v1/membership-plans', { key: S.keys.admin })).body.items.some((p) => ['9', 'zz-top'].includes(p.code)));
  });

  test("an unknown code or another shop's plan → 404", async () => {
    const T = await mkShop();
    await putPlan(T.keys.admin, 'only-in-t', PLAN, 201);
    assertProblem(await c.get(plansPath('nope'), { key: S.keys.admin }), 404, 'not_found');
    // a code that is not a valid code names no plan either
    for (const code of ['Plus', 'a_b', 'x'.repeat(65)]) assertProblem(await c.get(plansPath(code), { key: S.keys.admin }), 404, 'not_found');
    assertProblem(await c.get(plansPath('only-in-t'), { key: S.keys.readonly }), 404, 'not_found');
    // and a PUT of the same code in S is a new plan of S, T's stays
    const p = await putPlan(S.keys.admin, 'only-in-t', { ...PLAN, fee: 1 }, 201);
    assert.equal(p.fee, 1);
    assert.equal((await c.get(plansPath('only-in-t'), { key: T.keys.admin })).body.fee, 36500);
  });

  const bad = [
    // [what, body, pointer]
    ['name missing', { fee: 1, duration_days: 1, discount_bp: 0 }, '/name'],
    ['name empty', { ...PLAN, name: '' }, '/name'],
    ['name 201 characters', { ...PLAN, name: 'x'.repeat(201) }, '/name'],
    ['name a number', { ...PLAN, name: 5 }, '/name'],
    ['name null', { ...PLAN, name: null }, '/name'],
    ['fee missing', { name: 'x', duration_days: 1, discount_bp: 0 }, '/fee'],
    ['fee negative', { ...PLAN, fee: -1 }, '/fee'],
    ['fee above 10^12', { ...PLAN, fee: 10 ** 12 + 1 }, '/fee'],
    ['fee 1.5', { ...PLAN, fee: 1.5 }, '/fee'],
    ['fee a string', { ...PLAN, fee: '36500' }, '/fee'],
    ['fee null', { ...PLAN, fee: null }, '/fee'],
    ['duration_days missing', { name: 'x', fee: 1, discount_bp: 0 }, '/duration_days'],
    ['duration_days 0', { ...PLAN, duration_days: 0 }, '/duration_days'],
    ['duration_days 3661', { ...PLAN, duration_days: 3661 }, '/duration_days'],
    ['duration_days negative', { ...PLAN, duration_days: -30 }, '/duration_days'],
    ['duration_days 30.5', { ...PLAN, duration_days: 30.5 }, '/duration_days'],
    ['discount_bp missing', { name: 'x', fee: 1, duration_days: 1 }, '/discount_bp'],
    ['discount_bp negative', { ...PLAN, discount_bp: -1 }, '/discount_bp'],
    ['discount_bp 10001', { ...PLAN, discount_bp: 10001 }, '/discount_bp'],
    ['discount_bp 2.5', { ...PLAN, discount_bp: 2.5 }, '/discount_bp'],
    ['active a string', { ...PLAN, active: 'true' }, '/active'],
    ['active a number', { ...PLAN, active: 1 }, '/active'],
    ['active null', { ...PLAN, active: null }, '/active'],
    ['unknown member', { ...PLAN, colour: 'gold' }, '/colour'],
    ['currency is not part of the body', { ...PLAN, currency: 'CNY' }, '/currency'],
    ['code is not part of the body', { ...PLAN, code: 'plus' }, '/code'],
  ];
  for (const [what, body, pointer] of bad) {
    test(`PUT: ${what} → 422 ${pointer}; nothing stored`, async () => {
      const code = uniq('bad').toLowerCase();
      assertProblem(await c.put(plansPath(code), body, { key: S.keys.admin }), 422, 'validation_failed', pointer);
      assertProblem(await c.get(plansPath(code), { key: S.keys.admin }), 404, 'not_found');
    });
  }

  test('PUT: 1.0 is not an integer; a body that is not an object → 422; not JSON → 400; not application/json → 415', async () => {
    const code = 'shape-checks';
    assertProblem(await c.req('PUT', plansPath(code), {
      key: S.keys.admin, rawBody: '{"name":"x","fee":100.0,"duration_days":30,"discount_bp":0}',
    }), 422, 'validation_failed', '/fee');
    assertProblem(await c.put(plansPath(code), [PLAN], { key: S.keys.admin }), 422, 'validation_failed');
    assertProblem(await c.req('PUT', plansPath(code), { key: S.keys.admin, rawBody: '{"name": "x",' }), 400, 'malformed_json');
    assertProblem(await c.req('PUT', plansPath(code), {
      key: S.keys.admin, rawBody: JSON.stringify(PLAN), headers: { 'content-type': 'text/plain' },
    }), 415, 'unsupported_media_type');
    assertProblem(await c.get(plansPath(code), { key: S.keys.admin }), 404, 'not_found');
  });

  for (const [what, code] of [
    ['upper case', 'Plus'], ['underscore', 'a_b'], ['dot', 'a.b'], ['65 characters', 'x'.repeat(65)],
    ['a space', 'a%20b'], ['non-ASCII', 'caf%C3%A9'], ['a colon', 'a:b'],
  ]) {
    test(`PUT with a code with ${what} → 400 invalid_parameter /path/code`, async () => {
      assertProblem(await c.put(plansPath(code), PLAN, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/code');
    });
  }

  test('scopes: storefront, readonly and platform cannot PUT (403, also for a bad body); no key → 401; all shop keys GET', async () => {
    await putPlan(S.keys.admin, 'scoped', PLAN);
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put(plansPath('scoped'), { ...PLAN, fee: 1 }, { key }), 403, 'forbidden');
      assertProblem(await c.put(plansPath('scoped-new'), { fee: -5 }, { key }), 403, 'forbidden');
    }
    assertProblem(await c.put(plansPath('scoped'), PLAN), 401, 'unauthenticated');
    assert.equal((await c.get(plansPath('scoped'), { key: S.keys.admin })).body.fee, 36500, 'unchanged');
    assertProblem(await c.get(plansPath('scoped-new'), { key: S.keys.admin }), 404, 'not_found');
    for (const p of ['/v1/membership-plans', plansPath('scoped')]) {
      for (const key of Object.values(S.keys)) assert.equal((await c.get(p, { key })).status, 200, p);
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
  });

  test('query parameters → 400; other methods → 405 with Allow', async () => {
    assertProblem(await c.get('/v1/membership-plans?limit=5', { key: S.keys.admin }), 400, 'invalid_parameter', '/query/limit');
    let r = await c.req('DELETE', plansPath('plus'), { key: S.keys.admin });
    assertProblem(r, 405, 'method_not_allowed');
    r = await c.post('/v1/membership-plans', PLAN, { key: S.keys.admin });
    assertProblem(r, 405, 'method_not_allowed');
    assert.equal(r.headers.allow, 'GET');
  });
});

describe('purchase', () => {
  let S;
  before(async () => {
    S = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201); // 36500, 365 days, 500 bp
    await putPlan(S.keys.admin, 'gold', { name: 'GOLD', fee: 99900, duration_days: 30, discount_bp: 800 }, 201);
    await putPlan(S.keys.admin, 'retired', { ...PLAN, active: false }, 201);
  });

  test('201 with Location; one term [now, now + 365 days) at the plan\'s fee and discount; GET answers the same', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m, res } = await buy(S.keys.admin, cust, { plan: 'plus' });
    assert.equal(m.status, 'active');
    assert.equal(m.paid_total, 36500);
    assert.equal(m.refunded, 0);
    assert.equal(m.cancelled_at, null);
    assert.equal(m.discount_bp, 500);
    assert.deepEqual({ ...m.terms[0], starts_at: 0, ends_at: 0, paid_at: 0 }, { starts_at: 0, ends_at: 0, fee: 36500, duration_days: 365, discount_bp: 500, paid_at: 0 });
    // the first term: [starts_at, starts_at + 365 × 86400 s)
    assert.equal(tsMicros(m.terms[0].ends_at), tsMicros(m.starts_at) + 365n * DAY);
    assert.equal(tsMicros(m.ends_at), tsMicros(m.starts_at) + 365n * DAY);
    for (const key of Object.values(S.keys)) assert.deepEqual(await getM(key, m.id), m);
    assert.deepEqual((await c.get(res.headers.location, { key: S.keys.readonly })).body, m, 'Location names the membership');
    assert.deepEqual(await listM(S.keys.readonly, cust), [m]);
  });

  test('a generated card number is 16 digits with a valid Luhn check digit, different for every membership', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const other = await mkCustomer(S.keys.admin);
    const seen = new Set();
    for (let i = 0; i < 12; i++) {
      const { m } = await buy(S.keys.admin, i % 2 ? cust : other, { plan: i % 3 ? 'plus' : 'gold' });
      assert.match(m.card_number, /^[0-9]{16}$/, 'generated: 16 digits');
      assert.ok(luhnValid(m.card_number), `${m.card_number}: the last digit is the Luhn check digit`);
      assert.ok(!seen.has(m.card_number), `${m.card_number} handed out twice`);
      seen.add(m.card_number);
    }
    // a generated number counts as used: supplying it again is a 409
    const taken = [...seen][0];
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', card_number: taken }), 409, 'card_number_taken', '/card_number');
  });

  test('a supplied card number is kept as sent (4 and 32 characters of [A-Za-z0-9-])', async () => {
    const cust = await mkCustomer(S.keys.admin);
    for (const cn of ['A-1234', 'ab-9', 'Z'.repeat(32), '0000', 'mixed-Case-42']) {
      const { m } = await buy(S.keys.storefront, cust, { plan: 'plus', card_number: cn });
      assert.equal(m.card_number, cn);
      assert.equal((await getM(S.keys.readonly, m.id)).card_number, cn);
    }
    assert.equal((await listM(S.keys.admin, cust)).length, 5);
  });

  test('a card number already used in the shop → 409 card_number_taken /card_number (same or another customer, any plan); nothing sold', async () => {
    const a = await mkCustomer(S.keys.admin);
    const b = await mkCustomer(S.keys.admin);
    const cn = `C-${Date.now()}`;
    await buy(S.keys.admin, a, { plan: 'plus', card_number: cn });
    assertProblem(await buyRaw(S.keys.admin, a, { plan: 'plus', card_number: cn }), 409, 'card_number_taken', '/card_number');
    assertProblem(await buyRaw(S.keys.storefront, b, { plan: 'gold', card_number: cn }), 409, 'card_number_taken', '/card_number');
    assert.equal((await listM(S.keys.admin, a)).length, 1);
    assert.deepEqual(await listM(S.keys.admin, b), []);
    // still taken once that membership is cancelled: the number stays on it
    const [held] = await listM(S.keys.admin, a);
    await cancel(S.keys.admin, held.id, 'none');
    assertProblem(await buyRaw(S.keys.admin, b, { plan: 'plus', card_number: cn }), 409, 'card_number_taken', '/card_number');
    // another shop may use the same number
    const T = await mkShop();
    await putPlan(T.keys.admin, 'plus', PLAN, 201);
    const tc = await mkCustomer(T.keys.admin);
    const { m } = await buy(T.keys.admin, tc, { plan: 'plus', card_number: cn });
    assert.equal(m.card_number, cn);
  });

  for (const [what, cn] of [
    ['3 characters', 'A-1'], ['33 characters', 'A'.repeat(33)], ['a space', 'A 1234'], ['an underscore', 'A_1234'],
    ['a dot', 'A.1234'], ['non-ASCII', 'Ä-1234'], ['empty', ''], ['a number', 12345678], ['null', null],
  ]) {
    test(`card_number with ${what} → 422 /card_number`, async () => {
      const cust = await mkCustomer(S.keys.admin);
      assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', card_number: cn }), 422, 'validation_failed', '/card_number');
      assert.deepEqual(await listM(S.keys.admin, cust), []);
    });
  }

  test('the terms are a snapshot: changing the plan afterwards leaves the membership as sold; a new sale takes the new terms', async () => {
    await putPlan(S.keys.admin, 'snap', { name: 'Snap', fee: 12000, duration_days: 90, discount_bp: 300 }, 201);
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'snap' });
    assert.deepEqual([m.paid_total, m.discount_bp, m.terms[0].fee, m.terms[0].duration_days, m.terms[0].discount_bp], [12000, 300, 12000, 90, 300]);
    assert.equal(tsMicros(m.ends_at) - tsMicros(m.starts_at), 90n * DAY);
    await putPlan(S.keys.admin, 'snap', { name: 'Snap v2', fee: 50000, duration_days: 30, discount_bp: 900 }, 200);
    assert.deepEqual(await getM(S.keys.admin, m.id), m, 'unchanged by the plan change');
    const n = (await buy(S.keys.admin, cust, { plan: 'snap' })).m;
    assert.deepEqual([n.paid_total, n.discount_bp, n.terms[0].fee, n.terms[0].duration_days], [50000, 900, 50000, 30]);
    assert.equal(tsMicros(n.ends_at) - tsMicros(n.starts_at), 30n * DAY);
    // deactivating the plan does not touch it either
    await putPlan(S.keys.admin, 'snap', { name: 'Snap v2', fee: 50000, duration_days: 30, discount_bp: 900, active: false }, 200);
    assert.deepEqual(await getM(S.keys.admin, m.id), m);
    assert.equal((await getM(S.keys.admin, n.id)).status, 'active');
  });

  test('a customer may hold several memberships, of the same plan and of others', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const ids = [];
    for (const plan of ['plus', 'plus', 'gold']) ids.push((await buy(S.keys.admin, cust, { plan })).m.id);
    assert.equal(new Set(ids).size, 3);
    assert.deepEqual((await listM(S.keys.admin, cust)).map((m) => m.id).sort(), [...ids].sort());
  });

  test('an unknown customer → 404; an invalid customer id → 400 /path/id', async () => {
    assertProblem(await buyRaw(S.keys.admin, uniq('ghost'), { plan: 'plus' }), 404, 'not_found');
    assertProblem(await c.post('/v1/customers/bad%20id/memberships', { plan: 'plus' }, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
    assertProblem(await c.post(`/v1/customers/${'x'.repeat(129)}/memberships`, { plan: 'plus' }, { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
  });

  test('an erased customer: no new sale (404), the memberships stay and the GETs keep working by the customer id', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    assert.equal((await c.del(`/v1/customers/${cust}`, { key: S.keys.admin })).status, 204);
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus' }), 404, 'not_found');
    assertProblem(await buyRaw(S.keys.storefront, cust, { plan: 'gold', card_number: 'ERASED-1' }), 404, 'not_found');
    assert.deepEqual(await getM(S.keys.readonly, m.id), m);
    assert.deepEqual(await listM(S.keys.readonly, cust), [m]);
    const now = await applies(S.keys.storefront, cust);
    assert.deepEqual(now.memberships, [m]);
    assert.equal(now.discount_bp, 500);
  });

  test('an unknown, inactive or another shop\'s plan → 422 /plan; plan missing or not a code → 422 /plan; nothing sold', async () => {
    const T = await mkShop();
    await putPlan(T.keys.admin, 'only-in-t', PLAN, 201);
    const cust = await mkCustomer(S.keys.admin);
    for (const body of [
      { plan: 'nope' }, { plan: 'retired' }, { plan: 'only-in-t' }, {}, { card_number: 'NO-PLAN-1' },
      { plan: '' }, { plan: 'Plus' }, { plan: 5 }, { plan: null },
    ]) {
      assertProblem(await buyRaw(S.keys.admin, cust, body), 422, 'validation_failed', '/plan');
    }
    assert.deepEqual(await listM(S.keys.admin, cust), []);
    // the card number of a refused sale is not taken
    await buy(S.keys.admin, cust, { plan: 'plus', card_number: 'NO-PLAN-1' });
    // reactivating the plan makes it sellable again
    await putPlan(S.keys.admin, 'retired', PLAN, 200);
    await buy(S.keys.admin, cust, { plan: 'retired' });
    await putPlan(S.keys.admin, 'retired', { ...PLAN, active: false }, 200);
  });

  test('unknown members and bodies that are not objects → 422; not JSON → 400; not application/json → 415', async () => {
    const cust = await mkCustomer(S.keys.admin);
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', customer_id: cust }), 422, 'validation_failed', '/customer_id');
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', fee: 0 }), 422, 'validation_failed', '/fee');
    assertProblem(await buyRaw(S.keys.admin, cust, ['plus']), 422, 'validation_failed');
    assertProblem(await c.req('POST', buyPath(cust), { key: S.keys.admin, rawBody: '{"plan":' }), 400, 'malformed_json');
    assertProblem(await c.req('POST', buyPath(cust), {
      key: S.keys.admin, rawBody: '{"plan":"plus"}', headers: { 'content-type': 'text/plain' },
    }), 415, 'unsupported_media_type');
    assert.deepEqual(await listM(S.keys.admin, cust), []);
  });

  test('starts_at in the past (admin): the first term starts then; expired once starts_at + duration is past, else active', async () => {
    const cust = await mkCustomer(S.keys.admin);
    // 2024-03-01T08:30:00.25+08:00 = 2024-03-01T00:30:00.25Z; + 365 days = 2025-03-01T00:30:00.25Z
    // (March 2024 to March 2025 has no 29 February), long before today (2026 or later)
    const { m: old } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-03-01T08:30:00.25+08:00' });
    assert.equal(tsMicros(old.starts_at), tsMicros('2024-03-01T00:30:00.25Z'));
    assert.equal(tsMicros(old.terms[0].starts_at), tsMicros('2024-03-01T00:30:00.25Z'));
    assert.equal(tsMicros(old.ends_at), tsMicros('2025-03-01T00:30:00.25Z'));
    assert.equal(old.status, 'expired');
    assert.equal(old.paid_total, 36500);
    assert.equal((await getM(S.keys.readonly, old.id)).status, 'expired');

    // 10 days ago with a 365-day plan: active, ends 355 days from now
    const tenDaysAgo = isoIn(-10 * 86400000);
    const { m: recent } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: tenDaysAgo });
    assert.equal(tsMicros(recent.starts_at), tsMicros(tenDaysAgo));
    assert.equal(tsMicros(recent.ends_at), tsMicros(tenDaysAgo) + 365n * DAY);
    assert.equal(recent.status, 'active');

    // 31 days ago with the 30-day plan: expired a day ago
    const { m: lapsed } = await buy(S.keys.admin, cust, { plan: 'gold', starts_at: isoIn(-31 * 86400000) });
    assert.equal(lapsed.status, 'expired');

    // only the active one applies now
    const now = await applies(S.keys.readonly, cust);
    assert.deepEqual(now.memberships.map((m) => m.id), [recent.id]);
    assert.equal(now.discount_bp, 500);
  });

  test('starts_at in the future → 422 /starts_at; not an RFC 3339 timestamp → 422 /starts_at; nothing sold', async () => {
    const cust = await mkCustomer(S.keys.admin);
    for (const at of [isoIn(3600 * 1000), isoIn(2 * 86400000), '2999-01-01T00:00:00Z']) {
      assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', starts_at: at }), 422, 'validation_failed', '/starts_at');
    }
    for (const at of ['2025-01-01', '2025-01-01 10:00:00', '2025-01-01T10:00:00', 'yesterday', '', 1700000000, null]) {
      assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus', starts_at: at }), 422, 'validation_failed', '/starts_at');
    }
    assert.deepEqual(await listM(S.keys.admin, cust), []);
  });

  test('starts_at with a storefront key → 403 forbidden /starts_at (even in the past); without it the storefront sells', async () => {
    const cust = await mkCustomer(S.keys.admin);
    for (const at of [isoIn(-86400000), '2024-03-01T00:00:00Z']) {
      assertProblem(await buyRaw(S.keys.storefront, cust, { plan: 'plus', starts_at: at }), 403, 'forbidden', '/starts_at');
    }
    assert.deepEqual(await listM(S.keys.admin, cust), []);
    const { m } = await buy(S.keys.storefront, cust, { plan: 'plus' });
    assert.equal(m.status, 'active');
  });

  test('Idempotency-Key: a replay answers the same 201 and body (Idempotent-Replayed: true) and sells nothing new; the key with another body → 422', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const ik = uniq('idem-buy');
    const first = await buy(S.keys.storefront, cust, { plan: 'plus' }, { idempotencyKey: ik });
    assert.equal(first.res.headers['idempotent-replayed'], undefined);
    const again = await buyRaw(S.keys.storefront, cust, { plan: 'plus' }, { idempotencyKey: ik });
    assert.equal(again.status, 201, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.headers.location, `/v1/memberships/${first.m.id}`);
    assert.equal(again.text, first.res.text, 'the same body');
    assert.equal((await listM(S.keys.admin, cust)).length, 1, 'nothing new sold');

    assertProblem(await buyRaw(S.keys.storefront, cust, { plan: 'gold' }, { idempotencyKey: ik }), 422, 'idempotency_key_reused', '/header/Idempotency-Key');
    assertProblem(await buyRaw(S.keys.storefront, cust, { plan: 'plus', card_number: 'IDEM-1' }, { idempotencyKey: ik }), 422, 'idempotency_key_reused', '/header/Idempotency-Key');
    assert.equal((await listM(S.keys.admin, cust)).length, 1);

    // a supplied card number replayed is not "taken" by the first sale
    const ik2 = uniq('idem-buy');
    const a = await buy(S.keys.admin, cust, { plan: 'gold', card_number: 'IDEM-2' }, { idempotencyKey: ik2 });
    const b = await buyRaw(S.keys.admin, cust, { plan: 'gold', card_number: 'IDEM-2' }, { idempotencyKey: ik2 });
    assert.equal(b.status, 201, b.text);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.deepEqual(b.body, a.m);
    assert.equal((await listM(S.keys.admin, cust)).length, 2);
    // an invalid key → 400
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'plus' }, { idempotencyKey: '' }), 400, 'invalid_parameter', '/header/Idempotency-Key');
  });
});

describe("a customer's memberships", () => {
  let S;
  before(async () => {
    S = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201);
  });

  test('newest first by starts_at; a customer without memberships has an empty list; unknown → 404', async () => {
    const cust = await mkCustomer(S.keys.admin);
    assert.deepEqual(await listM(S.keys.readonly, cust), []);
    const a = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-01-01T00:00:00Z' })).m;
    const b = (await buy(S.keys.admin, cust, { plan: 'plus' })).m; // now
    const cc = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2025-06-01T12:00:00+08:00' })).m;
    const d = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-01-01T00:00:01Z' })).m;
    // starts: b now > cc 2025-06-01 > d 2024-01-01T00:00:01 > a 2024-01-01T00:00:00
    for (const key of Object.values(S.keys)) {
      assert.deepEqual(await listM(key, cust), [b, cc, d, a]);
    }
    assertProblem(await c.get(buyPath(uniq('ghost')), { key: S.keys.admin }), 404, 'not_found');
    assertProblem(await c.get('/v1/customers/bad%20id/memberships', { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
    assertProblem(await c.get(`${buyPath(cust)}?limit=1`, { key: S.keys.admin }), 400, 'invalid_parameter', '/query/limit');
  });

  test('memberships with the same starts_at are both listed, next to each other', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const at = '2025-01-01T00:00:00Z';
    const x = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: at })).m;
    const y = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: at })).m;
    const z = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2025-02-01T00:00:00Z' })).m;
    const items = await listM(S.keys.admin, cust);
    assert.equal(items[0].id, z.id);
    assert.deepEqual(items.slice(1).map((m) => m.id).sort(), [x.id, y.id].sort());
    assert.deepEqual(await listM(S.keys.admin, cust), items, 'a stable order');
  });

  test('only the customer\'s own memberships; the same customer id in another shop is another customer', async () => {
    const T = await mkShop();
    await putPlan(T.keys.admin, 'plus', PLAN, 201);
    const id = uniq('shared');
    await mkCustomer(S.keys.admin, id);
    await mkCustomer(T.keys.admin, id);
    const other = await mkCustomer(S.keys.admin);
    const mine = (await buy(S.keys.admin, id, { plan: 'plus' })).m;
    await buy(S.keys.admin, other, { plan: 'plus' });
    const theirs = (await buy(T.keys.admin, id, { plan: 'plus' })).m;
    assert.deepEqual(await listM(S.keys.admin, id), [mine]);
    assert.deepEqual(await listM(T.keys.admin, id), [theirs]);
    assert.deepEqual((await applies(T.keys.admin, id)).memberships, [theirs]);
  });
});

describe('renewal', () => {
  let S;
  before(async () => {
    S = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201);
  });

  test('an active membership: the new term starts exactly at the current ends_at, with the plan as it is NOW', async () => {
    await putPlan(S.keys.admin, 'flex', { name: 'Flex', fee: 36500, duration_days: 365, discount_bp: 500 }, 201);
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'flex' });
    // the plan changes before the renewal: 40000 for 30 days at 800 bp
    await putPlan(S.keys.admin, 'flex', { name: 'Flex v2', fee: 40000, duration_days: 30, discount_bp: 800 }, 200);
    const { m: r, before: t0, after: t1 } = await renew(S.keys.storefront, m.id);
    assert.equal(r.id, m.id);
    assert.equal(r.status, 'active');
    assert.equal(r.card_number, m.card_number);
    assert.equal(r.terms.length, 2);
    assert.deepEqual(r.terms[0], m.terms[0], 'the first term is unchanged');
    const t = r.terms[1];
    assert.equal(tsMicros(t.starts_at), tsMicros(m.ends_at), 'extends from the current end, not from today');
    assert.equal(tsMicros(t.ends_at), tsMicros(m.ends_at) + 30n * DAY, 'the current duration: 30 days');
    assert.deepEqual([t.fee, t.duration_days, t.discount_bp], [40000, 30, 800], 'the current fee, duration and discount');
    within(tsMicros(t.paid_at), t0, t1, 'paid now');
    assert.equal(tsMicros(r.ends_at), tsMicros(m.ends_at) + 30n * DAY, 'ends_at grows by the new duration');
    assert.equal(r.starts_at, m.starts_at);
    assert.equal(r.paid_total, 36500 + 40000);
    assert.equal(r.discount_bp, 800, 'the discount of the latest term');
    assert.equal(r.refunded, 0);
    assert.deepEqual(await getM(S.keys.readonly, m.id), r);

    // again: a third term chained to the second, still at the current plan
    await putPlan(S.keys.admin, 'flex', { name: 'Flex v3', fee: 100, duration_days: 7, discount_bp: 0 }, 200);
    const { m: r2 } = await renew(S.keys.admin, m.id);
    assert.equal(r2.terms.length, 3);
    assert.deepEqual(r2.terms.slice(0, 2), r.terms);
    assert.equal(tsMicros(r2.terms[2].starts_at), tsMicros(r.ends_at));
    assert.equal(tsMicros(r2.ends_at), tsMicros(m.starts_at) + (365n + 30n + 7n) * DAY);
    assert.equal(r2.paid_total, 36500 + 40000 + 100);
    assert.equal(r2.discount_bp, 0, 'the latest term has no discount');
  });

  test('an expired membership: the new term starts now', async () => {
    const cust = await mkCustomer(S.keys.admin);
    // 2024-03-01 + 365 days = 2025-03-01: expired
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-03-01T00:00:00Z' });
    assert.equal(m.status, 'expired');
    const { m: r, before: t0, after: t1 } = await renew(S.keys.admin, m.id);
    within(tsMicros(r.terms[1].starts_at), t0, t1, 'the new term starts now');
    assert.equal(tsMicros(r.ends_at), tsMicros(r.terms[1].starts_at) + 365n * DAY);
    assert.equal(r.status, 'active');
    assert.equal(r.paid_total, 73000);
    assert.equal(tsMicros(r.starts_at), tsMicros('2024-03-01T00:00:00Z'), 'starts_at stays the start of the first term');
    assert.deepEqual(r.terms[0], m.terms[0]);
    const now = await applies(S.keys.admin, cust);
    assert.deepEqual(now.memberships, [r]);
  });

  test('a cancelled membership → 409 conflict; nothing added', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const { m: cancelled } = await cancel(S.keys.admin, m.id, 'none');
    assertProblem(await c.post(`${mPath(m.id)}/renew`, {}, { key: S.keys.admin }), 409, 'conflict');
    assertProblem(await c.post(`${mPath(m.id)}/renew`, {}, { key: S.keys.storefront }), 409, 'conflict');
    assert.deepEqual(await getM(S.keys.admin, m.id), cancelled);
  });

  test('the plan is no longer active → 422 /plan; nothing added', async () => {
    await putPlan(S.keys.admin, 'sunset', PLAN, 201);
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'sunset' });
    await putPlan(S.keys.admin, 'sunset', { ...PLAN, active: false }, 200);
    assertProblem(await c.post(`${mPath(m.id)}/renew`, {}, { key: S.keys.admin }), 422, 'validation_failed', '/plan');
    assert.deepEqual(await getM(S.keys.admin, m.id), m);
  });

  test("unknown, malformed or another shop's id → 404; the body must be {} (unknown member 422, not JSON 400)", async () => {
    const T = await mkShop();
    await putPlan(T.keys.admin, 'plus', PLAN, 201);
    const theirs = (await buy(T.keys.admin, await mkCustomer(T.keys.admin), { plan: 'plus' })).m;
    for (const id of [randomUUID(), 'not-a-uuid', '12345', randomUUID().toUpperCase(), theirs.id]) {
      assertProblem(await c.post(`${mPath(id)}/renew`, {}, { key: S.keys.admin }), 404, 'not_found');
    }
    assert.deepEqual(await getM(T.keys.admin, theirs.id), theirs, "the other shop's membership is unchanged");
    const { m } = await buy(S.keys.admin, await mkCustomer(S.keys.admin), { plan: 'plus' });
    assertProblem(await c.post(`${mPath(m.id)}/renew`, { plan: 'plus' }, { key: S.keys.admin }), 422, 'validation_failed', '/plan');
    assertProblem(await c.post(`${mPath(m.id)}/renew`, { days: 30 }, { key: S.keys.admin }), 422, 'validation_failed', '/days');
    assertProblem(await c.post(`${mPath(m.id)}/renew`, [], { key: S.keys.admin }), 422, 'validation_failed');
    assertProblem(await c.req('POST', `${mPath(m.id)}/renew`, { key: S.keys.admin, rawBody: '{' }), 400, 'malformed_json');
    assertProblem(await c.req('POST', `${mPath(m.id)}/renew`, { key: S.keys.admin, rawBody: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    assert.deepEqual(await getM(S.keys.admin, m.id), m, 'nothing added');
  });

  test('Idempotency-Key: a replay answers the same 200 and body and adds no term; the key with another body → 422', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const ik = uniq('idem-renew');
    const first = await renew(S.keys.storefront, m.id, { idempotencyKey: ik });
    const again = await c.post(`${mPath(m.id)}/renew`, {}, { key: S.keys.storefront, idempotencyKey: ik });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.text, first.res.text);
    assert.equal((await getM(S.keys.admin, m.id)).terms.length, 2, 'one renewal only');
    assertProblem(await c.post(`${mPath(m.id)}/cancel`, { refund: 'none' }, { key: S.keys.storefront, idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assert.equal((await getM(S.keys.admin, m.id)).status, 'active');
  });
});

describe('cancellation', () => {
  let S;
  before(async () => {
    S = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201); // 36500 for 365 days: 100 a day
    await putPlan(S.keys.admin, 'odd', { name: 'Odd', fee: 19900, duration_days: 365, discount_bp: 250 }, 201);
    await putPlan(S.keys.admin, 'month', { name: 'Month', fee: 10000, duration_days: 30, discount_bp: 100 }, 201);
  });

  test('refund none: refunded 0, status cancelled, cancelled_at = ends_at = now, terms and paid_total as bought', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const { m: x } = await cancel(S.keys.storefront, m.id, 'none');
    assert.equal(x.refunded, 0);
    assert.deepEqual(x.terms, m.terms);
    assert.equal(x.paid_total, 36500);
    assert.equal(x.starts_at, m.starts_at);
    assert.equal(x.card_number, m.card_number);
    assert.equal(x.discount_bp, m.discount_bp);
    for (const key of Object.values(S.keys)) assert.deepEqual(await getM(key, m.id), x);
    assert.deepEqual(await listM(S.keys.readonly, cust), [x]);
  });

  test('pro_rata on a fresh 365-day membership of 36500: 364 whole days remain → floor(36500 × 364 / 365) = 36400', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // ends_at − now is 365 days minus the few ms since the sale: 364 whole days
    assert.equal(x.refunded, 36400);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)), 'the stated rule on the returned terms');
    assert.deepEqual(x.terms, m.terms);
  });

  test('pro_rata, a term in progress: bought 100 days + 1 hour ago → 264 whole days left → 26400', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: isoIn(-(100 * 86400000 + 3600000)) });
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // 365 days − (100 days + 1 h + δ) = 264 days + 23 h − δ → 264 whole days; 36500 × 264 / 365 = 26400 exactly
    assert.equal(x.refunded, 26400);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)));
  });

  test('pro_rata rounds down: 19900 for 365 days, bought 10 days + 1 hour ago → floor(19900 × 354 / 365) = 19300', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'odd', starts_at: isoIn(-(10 * 86400000 + 3600000)) });
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // 365 − 10 days − 1 h − δ → 354 whole days; 19900 × 354 = 7044600 = 365 × 19300 + 100 → 19300
    assert.equal(x.refunded, 19300);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)));
  });

  test('pro_rata on a renewed membership: the whole fee of the term not started + the pro-rata part of the current one', async () => {
    await putPlan(S.keys.admin, 'two-step', PLAN, 201);
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'two-step' });
    await putPlan(S.keys.admin, 'two-step', { name: 'Two step, monthly', fee: 10000, duration_days: 30, discount_bp: 100 }, 200);
    const { m: r } = await renew(S.keys.admin, m.id);
    assert.equal(r.terms.length, 2);
    assert.equal(r.paid_total, 46500);
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // term 1 (in progress, fresh): floor(36500 × 364 / 365) = 36400; term 2 (starts in 365 days): 10000 → 46400
    assert.equal(x.refunded, 46400);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)), 'the stated rule on the returned terms');
    assert.deepEqual(x.terms, r.terms, 'the terms as bought');
    assert.equal(x.paid_total, 46500);
  });

  test('pro_rata: a term already over counts 0 (expired, then renewed: only the new term is refunded)', async () => {
    const cust = await mkCustomer(S.keys.admin);
    // 2024-03-01 + 365 days: over; the renewal starts now
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-03-01T00:00:00Z' });
    const { m: r } = await renew(S.keys.admin, m.id);
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // term 1 over: 0; term 2 fresh: floor(36500 × 364 / 365) = 36400 (paid_total 73000)
    assert.equal(x.refunded, 36400);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)));
    assert.deepEqual(x.terms, r.terms);
  });

  test('pro_rata: three terms (one over, one in progress, one to come), every figure from the returned timestamps', async () => {
    const cust = await mkCustomer(S.keys.admin);
    // the month plan, 40 days + 1 hour ago: term 1 ran 40 d + 1 h ago .. 10 d + 1 h ago (expired)
    const { m } = await buy(S.keys.admin, cust, { plan: 'month', starts_at: isoIn(-(40 * 86400000 + 3600000)) });
    assert.equal(m.status, 'expired');
    const { m: r1 } = await renew(S.keys.admin, m.id); // term 2: now .. now + 30 d
    const { m: r2 } = await renew(S.keys.admin, m.id); // term 3: from the end of term 2
    assert.equal(tsMicros(r2.terms[2].starts_at), tsMicros(r1.ends_at));
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    // term 1: 0; term 2: floor(10000 × 29 / 30) = 9666; term 3: 10000 → 19666
    assert.equal(x.refunded, 19666);
    assert.equal(x.refunded, proRata(x.terms, tsMicros(x.cancelled_at)));
    assert.equal(x.paid_total, 30000);
  });

  test('an expired membership → 409 conflict (nothing left to cancel), whatever the refund', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus', starts_at: '2024-03-01T00:00:00Z' });
    for (const refund of ['none', 'pro_rata']) {
      assertProblem(await c.post(`${mPath(m.id)}/cancel`, { refund }, { key: S.keys.admin }), 409, 'conflict');
    }
    assert.deepEqual(await getM(S.keys.admin, m.id), m);
  });

  test('twice → 409 conflict; the first cancellation stands', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const { m: x } = await cancel(S.keys.admin, m.id, 'pro_rata');
    for (const refund of ['none', 'pro_rata']) {
      assertProblem(await c.post(`${mPath(m.id)}/cancel`, { refund }, { key: S.keys.storefront }), 409, 'conflict');
    }
    assert.deepEqual(await getM(S.keys.admin, m.id), x);
  });

  test('the body: refund required, none or pro_rata, no other member → 422 /refund or the member', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const p = `${mPath(m.id)}/cancel`;
    for (const body of [{}, { refund: 'full' }, { refund: 'None' }, { refund: null }, { refund: true }, { refund: '' }]) {
      assertProblem(await c.post(p, body, { key: S.keys.admin }), 422, 'validation_failed', '/refund');
    }
    assertProblem(await c.post(p, { refund: 'none', reason: 'moving' }, { key: S.keys.admin }), 422, 'validation_failed', '/reason');
    assertProblem(await c.post(p, ['none'], { key: S.keys.admin }), 422, 'validation_failed');
    assertProblem(await c.req('POST', p, { key: S.keys.admin, rawBody: '{"refund":' }), 400, 'malformed_json');
    assertProblem(await c.req('POST', p, { key: S.keys.admin, rawBody: '{"refund":"none"}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    assert.deepEqual(await getM(S.keys.admin, m.id), m, 'still active');
  });

  test("unknown, malformed or another shop's id → 404", async () => {
    const T = await mkShop();
    await putPlan(T.keys.admin, 'plus', PLAN, 201);
    const theirs = (await buy(T.keys.admin, await mkCustomer(T.keys.admin), { plan: 'plus' })).m;
    for (const id of [randomUUID(), 'not-a-uuid', theirs.id]) {
      assertProblem(await c.post(`${mPath(id)}/cancel`, { refund: 'none' }, { key: S.keys.admin }), 404, 'not_found');
    }
    assert.deepEqual(await getM(T.keys.admin, theirs.id), theirs);
  });

  test('Idempotency-Key: a replay answers the same 200 and body (not 409); the key with another body → 422', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'plus' });
    const ik = uniq('idem-cancel');
    const first = await cancel(S.keys.admin, m.id, 'pro_rata', { idempotencyKey: ik });
    const again = await c.post(`${mPath(m.id)}/cancel`, { refund: 'pro_rata' }, { key: S.keys.admin, idempotencyKey: ik });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.text, first.res.text);
    assertProblem(await c.post(`${mPath(m.id)}/cancel`, { refund: 'none' }, { key: S.keys.admin, idempotencyKey: ik }), 422, 'idempotency_key_reused');
    assert.deepEqual(await getM(S.keys.admin, m.id), first.m);
  });
});

describe('what applies now: GET /v1/customers/{id}/membership', () => {
  let S;
  before(async () => {
    S = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201); // 500 bp
    await putPlan(S.keys.admin, 'vip', { name: 'VIP', fee: 99900, duration_days: 365, discount_bp: 800 }, 201);
    await putPlan(S.keys.admin, 'lite', { name: 'Lite', fee: 1000, duration_days: 30, discount_bp: 200 }, 201);
  });

  test('none → no memberships, discount 0, tier null', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const b = await applies(S.keys.readonly, cust);
    assert.deepEqual(b.memberships, []);
    assert.equal(b.discount_bp, 0);
  });

  test('the largest discount among the active memberships: 500 and 800 → 800; the 800 one cancelled → 500; all gone → 0', async () => {
    const cust = await mkCustomer(S.keys.admin);
    const plus = (await buy(S.keys.admin, cust, { plan: 'plus', starts_at: isoIn(-3 * 86400000) })).m;
    const vip = (await buy(S.keys.admin, cust, { plan: 'vip', starts_at: isoIn(-2 * 86400000) })).m;
    const lite = (await buy(S.keys.admin, cust, { plan: 'lite', starts_at: isoIn(-86400000) })).m;
    // an expired one (800 bp) and a cancelled one do not apply
    await buy(S.keys.admin, cust, { plan: 'vip', starts_at: '2024-01-01T00:00:00Z' });
    const gone = (await buy(S.keys.admin, cust, { plan: 'vip' })).m;
    await cancel(S.keys.admin, gone.id, 'none');

    let b = await applies(S.keys.storefront, cust);
    // newest first: lite (1 day ago), vip (2 days), plus (3 days)
    assert.deepEqual(b.memberships, [lite, vip, plus]);
    assert.equal(b.discount_bp, 800);

    await cancel(S.keys.admin, vip.id, 'pro_rata');
    b = await applies(S.keys.admin, cust);
    assert.deepEqual(b.memberships, [lite, plus]);
    assert.equal(b.discount_bp, 500);

    await cancel(S.keys.admin, plus.id, 'none');
    b = await applies(S.keys.readonly, cust);
    assert.deepEqual(b.memberships, [lite]);
    assert.equal(b.discount_bp, 200);

    await cancel(S.keys.admin, lite.id, 'none');
    b = await applies(S.keys.readonly, cust);
    assert.deepEqual(b.memberships, []);
    assert.equal(b.discount_bp, 0);
    // …while the list still holds all five
    assert.equal((await listM(S.keys.admin, cust)).length, 5);
  });

  test('a renewal shows in what applies; the discount is the term in progress\'s until the new term starts', async () => {
    await putPlan(S.keys.admin, 'shift', { name: 'Shift', fee: 500, duration_days: 10, discount_bp: 100 }, 201);
    const cust = await mkCustomer(S.keys.admin);
    const { m } = await buy(S.keys.admin, cust, { plan: 'shift' });
    await putPlan(S.keys.admin, 'shift', { name: 'Shift', fee: 500, duration_days: 10, discount_bp: 900 }, 200);
    const { m: r } = await renew(S.keys.admin, m.id);
    const b = await applies(S.keys.admin, cust);
    assert.deepEqual(b.memberships, [r]);
    // the membership shows its latest term's discount (900), but the term
    // sold at 100 is the one running now: 100 applies until the renewal starts
    assert.equal(r.discount_bp, 900);
    assert.equal(b.discount_bp, 100);
  });

  test('unknown customer → 404; invalid id → 400; a query parameter → 400', async () => {
    assertProblem(await c.get(nowPath(uniq('ghost')), { key: S.keys.admin }), 404, 'not_found');
    assertProblem(await c.get('/v1/customers/bad%20id/membership', { key: S.keys.admin }), 400, 'invalid_parameter', '/path/id');
    const cust = await mkCustomer(S.keys.admin);
    assertProblem(await c.get(`${nowPath(cust)}?at=2025-01-01`, { key: S.keys.admin }), 400, 'invalid_parameter', '/query/at');
  });
});

describe('scopes and shop isolation on every endpoint', () => {
  let S;
  let T;
  let cust;
  before(async () => {
    S = await mkShop();
    T = await mkShop();
    await putPlan(S.keys.admin, 'plus', PLAN, 201);
    await putPlan(T.keys.admin, 'plus', PLAN, 201);
    cust = await mkCustomer(S.keys.admin);
  });

  const fresh = async () => (await buy(S.keys.admin, cust, { plan: 'plus' })).m.id;

  test('GETs: admin, storefront and readonly 200; platform 403; no key 401', async () => {
    const id = await fresh();
    for (const p of ['/v1/membership-plans', plansPath('plus'), buyPath(cust), nowPath(cust), mPath(id)]) {
      for (const [scope, key] of Object.entries(S.keys)) assert.equal((await c.get(p, { key })).status, 200, `${scope} GET ${p}`);
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
      assertProblem(await c.get(p, { key: `rb_aaaaaaaa_${'A'.repeat(43)}` }), 401, 'unauthenticated');
    }
  });

  test('POSTs: admin and storefront; readonly and platform 403 (before any lookup); no key 401; nothing changes', async () => {
    const id = await fresh();
    const before0 = await getM(S.keys.admin, id);
    const posts = [
      [buyPath(cust), { plan: 'plus' }],
      [buyPath(uniq('ghost')), { plan: 'plus' }],
      [`${mPath(id)}/renew`, {}],
      [`${mPath(id)}/cancel`, { refund: 'none' }],
      [`${mPath(randomUUID())}/renew`, {}],
      [`${mPath(randomUUID())}/cancel`, { refund: 'pro_rata' }],
    ];
    for (const [p, body] of posts) {
      for (const key of [S.keys.readonly, svc.platformKey]) assertProblem(await c.post(p, body, { key }), 403, 'forbidden');
      assertProblem(await c.post(p, body), 401, 'unauthenticated');
    }
    assert.deepEqual(await getM(S.keys.admin, id), before0);
    assert.equal((await listM(S.keys.admin, cust)).length, 2, 'only the two sold by fresh()');
    // admin and storefront may
    for (const key of [S.keys.admin, S.keys.storefront]) {
      const m = (await buy(key, cust, { plan: 'plus' })).m;
      await renew(key, m.id);
      await cancel(key, m.id, 'pro_rata');
    }
  });

  test("another shop's membership, customer and plan answer 404 (or 422 /plan for the plan of a sale)", async () => {
    const id = await fresh();
    const mine = await getM(S.keys.admin, id);
    for (const key of Object.values(T.keys)) {
      assertProblem(await c.get(mPath(id), { key }), 404, 'not_found');
      assertProblem(await c.get(buyPath(cust), { key }), 404, 'not_found');
      assertProblem(await c.get(nowPath(cust), { key }), 404, 'not_found');
    }
    assertProblem(await c.post(`${mPath(id)}/renew`, {}, { key: T.keys.admin }), 404, 'not_found');
    assertProblem(await c.post(`${mPath(id)}/cancel`, { refund: 'pro_rata' }, { key: T.keys.storefront }), 404, 'not_found');
    assertProblem(await buyRaw(T.keys.admin, cust, { plan: 'plus' }), 404, 'not_found');
    assert.deepEqual(await getM(S.keys.admin, id), mine, 'unchanged');
    await putPlan(T.keys.admin, 'only-t', PLAN, 201);
    assertProblem(await buyRaw(S.keys.admin, cust, { plan: 'only-t' }), 422, 'validation_failed', '/plan');
  });

  test('GET /v1/memberships/{id}: unknown and malformed ids → 404; query parameters → 400', async () => {
    for (const id of [randomUUID(), 'not-a-uuid', '0', 'ffffffff-ffff-ffff-ffff-ffffffffffffff']) {
      assertProblem(await c.get(mPath(id), { key: S.keys.readonly }), 404, 'not_found');
    }
    const id = await fresh();
    assertProblem(await c.get(`${mPath(id)}?include=terms`, { key: S.keys.admin }), 400, 'invalid_parameter', '/query/include');
  });

  test('other methods → 405 with Allow', async () => {
    const id = await fresh();
    const cases = [
      ['DELETE', mPath(id)], ['PUT', mPath(id)], ['GET', `${mPath(id)}/renew`], ['GET', `${mPath(id)}/cancel`],
      ['DELETE', buyPath(cust)], ['POST', nowPath(cust)], ['PATCH', plansPath('plus')],
    ];
    for (const [method, p] of cases) {
      const body = method === 'GET' || method === 'DELETE' ? undefined : {};
      assertProblem(await c.req(method, p, { key: S.keys.admin, body }), 405, 'method_not_allowed');
    }
    assert.equal((await getM(S.keys.admin, id)).status, 'active');
  });
});
