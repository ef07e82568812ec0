// Benefits with quotas per calendar period (tiers.md §2): the benefit
// catalogue (PUT/GET /v1/benefits), quotas from the tier held and from the
// terms of active paid memberships (the larger wins, not the sum), recorded
// uses (POST /v1/customers/{id}/benefits/{code}/uses: idempotent by use_id,
// exact under concurrency, quota_exceeded with quota/used/remaining),
// calendar periods in the shop's time zone, validity windows, and the
// benefits list of GET /v1/customers/{id}/membership.
//
// rebuyd runs with --test-clock; uses are sent with Rebuy-Test-Now, so
// used_at and the periods are exact. Every expected figure is worked out by
// hand in the comment next to it. Shops are in Asia/Shanghai (UTC+8, no
// daylight saving) unless said: local midnight is 16:00Z the day before.
//
// A quota_exceeded problem carries the extension members quota, used and
// remaining (the contract allows them on that code only).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, createShop, assertProblem, assertServerTs, uniq,
} from '../lib/harness.js';
import { at, U, plusHours, plusUs, assertTs, calls } from '../lib/tiers.js';

let svc;
let c;
let K;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = api(svc);
  K = calls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Benefit Shop'), ...opts });
const NEVER = { policy: 'never' };
const tier = (code, name, discountBp, qualification, benefits) => ({ code, name, discount_bp: discountBp, qualification, benefits });
const BENEFIT_KEYS = ['code', 'created_at', 'name', 'period', 'updated_at', 'valid_from', 'valid_until'];
const USE_KEYS = ['benefit', 'customer_id', 'note', 'period_end', 'period_start', 'quantity', 'quota', 'remaining', 'use_id', 'used', 'used_at'];

// ---------------------------------------------------------------------------
// requests (the harness client: contract, X-Request-Id and problem shape checked)

/** c.req with the key, body and headers as one options object. */
const send = (method, p, opts = {}) => c.req(method, p, opts);

const usePath = (cust, code) => `/v1/customers/${encodeURIComponent(cust)}/benefits/${code}/uses`;
/** POST a use at test instant `now`. */
const use = (key, cust, code, body, now) => send('POST', usePath(cust, code), { key, body, headers: { 'Rebuy-Test-Now': now } });

/** Asserts a 201/200 BenefitUse and returns it. */
function assertUse(r, status) {
  assert.equal(r.status, status, `${r.method} ${r.path}: ${r.text}`);
  assert.deepEqual(Object.keys(r.body).sort(), USE_KEYS, r.text);
  for (const k of ['used_at', 'period_start', 'period_end']) assertServerTs(r.body[k], k);
  return r.body;
}

/** Asserts 422 quota_exceeded with exactly these figures. */
function assertQuotaExceeded(r, quota, used, remaining) {
  assert.equal(r.status, 422, `${r.method} ${r.path}: ${r.text}`);
  assert.equal(r.body.code, 'quota_exceeded', r.text);
  assert.deepEqual({ quota: r.body.quota, used: r.body.used, remaining: r.body.remaining }, { quota, used, remaining }, r.text);
}

/** A use as it should come back: timestamps written out as rebuyd prints them. */
const USE = (o) => ({
  use_id: o.use_id, customer_id: o.customer_id, benefit: o.benefit, quantity: o.quantity ?? 1, note: o.note ?? null,
  used_at: U(o.used_at), period_start: U(o.period_start), period_end: U(o.period_end),
  quota: o.quota, used: o.used, remaining: o.remaining,
});

/** The benefits list of GET …/membership at `now`, by code. */
async function benefitsOf(key, cust, now) {
  const b = await K.applies(key, cust, now);
  return Object.fromEntries(b.benefits.map((x) => [x.code, x]));
}

// ---------------------------------------------------------------------------

describe('the benefit catalogue: PUT/GET /v1/benefits', () => {
  let S;
  const T0 = '2031-01-01T00:00:00Z';
  before(async () => { S = await mkShop(); });

  test('PUT creates (201) then replaces (200); GET answers the same to every scope', async () => {
    const r = await c.put('/v1/benefits/dry-cleaning', { name: 'Dry cleaning', period: 'month' }, at(S.keys.admin, T0));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), BENEFIT_KEYS);
    assert.deepEqual(r.body, {
      code: 'dry-cleaning', name: 'Dry cleaning', period: 'month', valid_from: null, valid_until: null, created_at: U(T0), updated_at: U(T0),
    });
    const T1 = '2031-01-02T00:00:00Z';
    const r2 = await c.put('/v1/benefits/dry-cleaning', {
      name: 'Dry cleaning (shirts)', period: 'week', valid_from: '2031-02-01T00:00:00+08:00', valid_until: '2031-12-31T16:00:00Z',
    }, at(S.keys.admin, T1));
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.body, {
      code: 'dry-cleaning', name: 'Dry cleaning (shirts)', period: 'week',
      valid_from: U('2031-01-31T16:00:00Z'), // 2031-02-01 00:00 +08:00
      valid_until: U('2031-12-31T16:00:00Z'),
      created_at: U(T0), updated_at: U(T1),
    });
    for (const key of Object.values(S.keys)) {
      const g = await c.get('/v1/benefits/dry-cleaning', { key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body, r2.body);
    }
    // back to no window: both null (omitted = null)
    const r3 = await c.put('/v1/benefits/dry-cleaning', { name: 'Dry cleaning', period: 'month', valid_from: null }, at(S.keys.admin, T1));
    assert.equal(r3.status, 200, r3.text);
    assert.deepEqual([r3.body.valid_from, r3.body.valid_until], [null, null]);
  });

  test('the list: every benefit sorted by code (byte order); one bound alone is fine', async () => {
    await K.benefit(S.keys.admin, 'zz', { name: 'Z', period: 'year', valid_until: '2040-01-01T00:00:00Z' }, T0);
    await K.benefit(S.keys.admin, 'a-gift', { name: 'A gift', period: 'day', valid_from: '2030-01-01T00:00:00Z' }, T0);
    await K.benefit(S.keys.admin, '9-coffee', { name: 'Coffee', period: 'day' }, T0);
    for (const key of Object.values(S.keys)) {
      const r = await c.get('/v1/benefits', { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body), ['items']);
      // '9' (0x39) < 'a' (0x61) < 'd' < 'z'
      assert.deepEqual(r.body.items.map((b) => b.code), ['9-coffee', 'a-gift', 'dry-cleaning', 'zz']);
      for (const b of r.body.items) assert.deepEqual(b, (await c.get(`/v1/benefits/${b.code}`, { key })).body);
    }
    const zz = (await c.get('/v1/benefits/zz', { key: S.keys.admin })).body;
    assert.deepEqual([zz.valid_from, zz.valid_until], [null, U('2040-01-01T00:00:00Z')]);
    assertProblem(await c.get('/v1/benefits/nope', { key: S.keys.admin }), 404, 'not_found');
    // another shop sees none of them
    const O = await mkShop();
    assert.deepEqual((await c.get('/v1/benefits', { key: O.keys.readonly })).body, { items: [] });
    assertProblem(await c.get('/v1/benefits/zz', { key: O.keys.admin }), 404, 'not_found');
  });

  test('a bad code → 400 /path/code; a bad body → 422 at the pointer; nothing stored', async () => {
    for (const code of ['Dry', 'a_b', 'x'.repeat(65)]) {
      assertProblem(await c.put(`/v1/benefits/${code}`, { name: 'x', period: 'day' }, at(S.keys.admin, T0)), 400, 'invalid_parameter', '/path/code');
    }
    const ok = { name: 'Parking', period: 'day' };
    const cases = [
      [{ period: 'day' }, '/name'],
      [{ ...ok, name: '' }, '/name'],
      [{ ...ok, name: 'x'.repeat(201) }, '/name'],
      [{ ...ok, name: 5 }, '/name'],
      [{ name: 'x' }, '/period'],
      [{ ...ok, period: 'fortnight' }, '/period'],
      [{ ...ok, period: 'Month' }, '/period'],
      [{ ...ok, period: null }, '/period'],
      [{ ...ok, valid_from: 'soon' }, '/valid_from'],
      [{ ...ok, valid_from: 5 }, '/valid_from'],
      [{ ...ok, valid_until: 'later' }, '/valid_until'],
      [{ ...ok, valid_from: '2031-05-01T00:00:00Z', valid_until: '2031-05-01T08:00:00+08:00' }, '/valid_until'], // equal
      [{ ...ok, valid_from: '2031-05-01T00:00:00Z', valid_until: '2031-04-30T00:00:00Z' }, '/valid_until'], // before
      [{ ...ok, colour: 'blue' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      assertProblem(await c.put('/v1/benefits/parking', body, at(S.keys.admin, T0)), 422, 'validation_failed', pointer);
    }
    assertProblem(await c.put('/v1/benefits/parking', [ok], at(S.keys.admin, T0)), 422, 'validation_failed');
    assertProblem(await c.req('PUT', '/v1/benefits/parking', { ...at(S.keys.admin, T0), rawBody: '{"name":' }), 400, 'malformed_json');
    assertProblem(await c.get('/v1/benefits/parking', { key: S.keys.admin }), 404, 'not_found');
    // the limits themselves are fine: a 64-character code, a 200-character name
    const code64 = `b${'1-'.repeat(31)}z`;
    assert.equal(code64.length, 64);
    const r = await c.put(`/v1/benefits/${code64}`, { name: 'é'.repeat(200), period: 'year' }, at(S.keys.admin, T0));
    assert.equal(r.status, 201, r.text);
  });

  test('only admin may PUT (storefront, readonly, platform → 403); platform may not read (403); no key → 401', async () => {
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put('/v1/benefits/valet', { name: 'Valet', period: 'day' }, at(key, T0)), 403, 'forbidden');
    }
    assertProblem(await c.put('/v1/benefits/valet', { name: 'Valet', period: 'day' }), 401, 'unauthenticated');
    for (const p of ['/v1/benefits', '/v1/benefits/zz']) {
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
    assertProblem(await c.get('/v1/benefits/valet', { key: S.keys.admin }), 404, 'not_found');
  });

  test('plans gain benefits: {} by default, a quota map when given; an unknown benefit or a bad quota → 422 /benefits/<code>', async () => {
    const plan = { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500 };
    let r = await c.put('/v1/membership-plans/plain', plan, at(S.keys.admin, T0));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.benefits, {});
    r = await c.put('/v1/membership-plans/plus', { ...plan, benefits: { 'dry-cleaning': 2, zz: 0 } }, at(S.keys.admin, T0));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.benefits, { 'dry-cleaning': 2, zz: 0 });
    assert.deepEqual((await c.get('/v1/membership-plans/plus', { key: S.keys.readonly })).body.benefits, { 'dry-cleaning': 2, zz: 0 });
    for (const [benefits, pointer] of [
      [{ nope: 1 }, '/benefits/nope'],
      [{ 'dry-cleaning': 10001 }, '/benefits/dry-cleaning'],
      [{ 'dry-cleaning': -1 }, '/benefits/dry-cleaning'],
      [{ 'dry-cleaning': 1.5 }, '/benefits/dry-cleaning'],
      [[], '/benefits'],
    ]) {
      assertProblem(await c.put('/v1/membership-plans/plus', { ...plan, benefits }, at(S.keys.admin, T0)), 422, 'validation_failed', pointer);
    }
    assert.deepEqual((await c.get('/v1/membership-plans/plus', { key: S.keys.admin })).body.benefits, { 'dry-cleaning': 2, zz: 0 }, 'unchanged');
  });
});

// ---------------------------------------------------------------------------

describe('quotas and uses', () => {
  let S;
  let A;
  const T = '2031-05-10T02:00:00Z'; // 10:00 May 10 in Shanghai
  // month period of T: May 1 00:00 .. Jun 1 00:00 local; day period: May 10 00:00 .. May 11 00:00 local
  const MAY = { period_start: '2031-04-30T16:00:00Z', period_end: '2031-05-31T16:00:00Z' };
  const MAY10 = { period_start: '2031-05-09T16:00:00Z', period_end: '2031-05-10T16:00:00Z' };
  const BOUGHT = '2031-05-02T02:00:00Z';

  //  customer | tier (quota dry-cleaning)       | memberships (dry-cleaning, parking) | dry-cleaning       | parking
  //  q1       | basic (1)                       | –                                   | 1 tier             | –
  //  q2       | silver (2)                      | vip (4, –)                          | max(2, 4) = 4 m.   | –
  //  q3       | gold (3, parking 0)             | plus (2, 5)                         | max(3, 2) = 3 tier | max(0, 5) = 5 m.
  //  q4       | silver (2)                      | plus (2, 5)                         | 2 (a tie)          | 5
  //  q5       | basic (1)                       | –                                   | 1                  | 0 → not listed
  //  q7, q9   | gold (3)                        | –                                   | 3 tier             | 0
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    const P0 = '2031-05-01T00:00:00Z';
    await K.benefit(A, 'dry-cleaning', { name: 'Dry cleaning', period: 'month' }, P0);
    await K.benefit(A, 'parking', { name: 'Parking', period: 'day' }, P0);
    await K.benefit(A, 'valet', { name: 'Valet', period: 'month' }, P0); // nobody grants it
    await K.programme(A, {
      tiers: [
        tier('basic', 'Basic', 0, {}, { 'dry-cleaning': 1 }),
        tier('silver', 'Silver', 300, { net_spend: 100000 }, { 'dry-cleaning': 2 }),
        tier('gold', 'Gold', 800, { net_spend: 300000 }, { 'dry-cleaning': 3, parking: 0 }),
      ],
      downgrade: NEVER,
    }, P0, 201);
    await K.plan(A, 'plus', { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500, benefits: { 'dry-cleaning': 2, parking: 5 } }, P0);
    await K.plan(A, 'vip', { name: 'VIP', fee: 99900, duration_days: 365, discount_bp: 800, benefits: { 'dry-cleaning': 4 } }, P0);
    const spend = { q2: 150000, q3: 350000, q4: 150000, q7: 350000, q9: 350000 };
    const plans = { q2: 'vip', q3: 'plus', q4: 'plus', q8: 'plus' };
    for (const id of ['q1', 'q2', 'q3', 'q4', 'q5', 'q7', 'q8', 'q9']) {
      await K.customer(A, id);
      if (spend[id]) await K.order(A, `${id}-1`, id, '2031-05-03T02:00:00Z', spend[id]);
      if (plans[id]) await K.buy(A, id, plans[id], BOUGHT);
    }
  });

  test('the quota is the largest of the tier and the membership terms, not their sum; only quota > 0 is listed', async () => {
    const dry = (quota, source) => ({ code: 'dry-cleaning', name: 'Dry cleaning', period: 'month', period_start: U(MAY.period_start),
      period_end: U(MAY.period_end), quota, used: 0, remaining: quota, source });
    const parking = (quota, source) => ({ code: 'parking', name: 'Parking', period: 'day', period_start: U(MAY10.period_start),
      period_end: U(MAY10.period_end), quota, used: 0, remaining: quota, source });
    assert.deepEqual((await K.applies(S.keys.readonly, 'q1', T)).benefits, [dry(1, 'tier')]);
    assert.deepEqual((await K.applies(A, 'q2', T)).benefits, [dry(4, 'membership')]);
    // 3 (gold) beats 2 (plus) — not 5; parking: gold gives 0, plus 5
    assert.deepEqual((await K.applies(S.keys.storefront, 'q3', T)).benefits, [dry(3, 'tier'), parking(5, 'membership')]);
    const q4 = await benefitsOf(A, 'q4', T);
    assert.deepEqual(Object.keys(q4), ['dry-cleaning', 'parking']);
    assert.deepEqual([q4['dry-cleaning'].quota, q4.parking.quota], [2, 5]); // max(2, 2) = 2, not 4
    // valet (granted by nobody) and parking (0) are not listed
    assert.deepEqual((await K.applies(A, 'q5', T)).benefits, [dry(1, 'tier')]);
  });

  test('a use → 201 with quota/used/remaining; the same use again → 200 with the stored use; 422 beyond the quota', async () => {
    let r = await use(S.keys.storefront, 'q3', 'dry-cleaning', { use_id: 'u-q3-1', note: 'two shirts' }, T);
    const first = assertUse(r, 201);
    // quota 3, this use 1 → used 1, remaining 2
    assert.deepEqual(first, USE({ use_id: 'u-q3-1', customer_id: 'q3', benefit: 'dry-cleaning', note: 'two shirts', used_at: T, ...MAY, quota: 3, used: 1, remaining: 2 }));
    assert.equal(r.headers.location, undefined, 'no Location');
    r = await use(A, 'q3', 'dry-cleaning', { use_id: 'u-q3-1', note: 'two shirts' }, plusHours(T, 1));
    assert.deepEqual(assertUse(r, 200), first, 'the stored use (nothing else happened since)');
    r = await use(A, 'q3', 'dry-cleaning', { use_id: 'u-q3-2', quantity: 2 }, plusHours(T, 2));
    // used 1 + 2 = 3 = quota → remaining 0
    assert.deepEqual(assertUse(r, 201), USE({ use_id: 'u-q3-2', customer_id: 'q3', benefit: 'dry-cleaning', quantity: 2, used_at: plusHours(T, 2), ...MAY, quota: 3, used: 3, remaining: 0 }));
    // the first use again, later: its own used_at and period; remaining as of now (0)
    r = await use(A, 'q3', 'dry-cleaning', { use_id: 'u-q3-1', note: 'two shirts' }, plusHours(T, 3));
    const again = assertUse(r, 200);
    assert.deepEqual([again.use_id, again.quantity, again.note, again.used_at, again.period_start, again.period_end, again.quota, again.remaining],
      ['u-q3-1', 1, 'two shirts', U(T), U(MAY.period_start), U(MAY.period_end), 3, 0]);
    // 3 + 1 > 3
    assertQuotaExceeded(await use(A, 'q3', 'dry-cleaning', { use_id: 'u-q3-3' }, plusHours(T, 3)), 3, 3, 0);
    const b = (await benefitsOf(A, 'q3', plusHours(T, 4)))['dry-cleaning'];
    assert.deepEqual([b.quota, b.used, b.remaining], [3, 3, 0]);
  });

  test('the same use_id with another quantity, customer or benefit → 409 conflict; nothing recorded', async () => {
    for (const [cust, code, body] of [
      ['q3', 'dry-cleaning', { use_id: 'u-q3-1', quantity: 2 }],
      ['q1', 'dry-cleaning', { use_id: 'u-q3-1', note: 'two shirts' }],
      ['q3', 'parking', { use_id: 'u-q3-1', note: 'two shirts' }],
    ]) {
      const r = await use(A, cust, code, body, plusHours(T, 5));
      assertProblem(r, 409, 'conflict');
    }
    assert.equal((await benefitsOf(A, 'q1', plusHours(T, 5)))['dry-cleaning'].used, 0);
    assert.equal((await benefitsOf(A, 'q3', plusHours(T, 5))).parking.used, 0);
  });

  test('a quantity beyond what is left → 422 with what is left; nothing recorded, so the use_id is still free', async () => {
    assert.deepEqual(assertUse(await use(A, 'q2', 'dry-cleaning', { use_id: 'u-q2-1', quantity: 3 }, T), 201).remaining, 1); // 4 − 3
    assertQuotaExceeded(await use(A, 'q2', 'dry-cleaning', { use_id: 'u-q2-2', quantity: 2 }, T), 4, 3, 1); // 3 + 2 > 4
    const r = assertUse(await use(A, 'q2', 'dry-cleaning', { use_id: 'u-q2-2', quantity: 1 }, T), 201);
    assert.deepEqual([r.quota, r.used, r.remaining], [4, 4, 0]);
  });

  test('Idempotency-Key: a retry answers the original 201 and body with Idempotent-Replayed: true', async () => {
    const ik = uniq('idem-use');
    const body = { use_id: 'u-q5-idem', note: 'jacket' };
    const first = await send('POST', usePath('q5', 'dry-cleaning'), { key: A, body, headers: { 'Rebuy-Test-Now': T, 'Idempotency-Key': ik } });
    assertUse(first, 201);
    const again = await send('POST', usePath('q5', 'dry-cleaning'), { key: A, body, headers: { 'Rebuy-Test-Now': plusHours(T, 1), 'Idempotency-Key': ik } });
    assert.equal(again.status, 201, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.text, first.text);
    // recorded once: q5's quota (1, basic) is used up
    const b = (await benefitsOf(A, 'q5', plusHours(T, 1)))['dry-cleaning'];
    assert.deepEqual([b.quota, b.used, b.remaining], [1, 1, 0]);
  });

  test('no source grants it → quota 0: 422 quota_exceeded 0/0/0', async () => {
    assertQuotaExceeded(await use(A, 'q5', 'parking', { use_id: 'u-q5-1' }, T), 0, 0, 0);
    assertQuotaExceeded(await use(A, 'q5', 'valet', { use_id: 'u-q5-2' }, T), 0, 0, 0);
  });

  test('20 concurrent single uses with quota 3 → exactly 3 × 201 and 17 × 422', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => use(A, 'q7', 'dry-cleaning', { use_id: `conc-${i}` }, T)));
    const ok = rs.filter((r) => r.status === 201);
    const no = rs.filter((r) => r.status === 422);
    assert.equal(ok.length, 3, rs.map((r) => r.status).join(','));
    assert.equal(no.length, 17, rs.map((r) => r.status).join(','));
    // the three recorded uses saw used 1, 2 and 3; every refusal saw the quota full
    assert.deepEqual(ok.map((r) => assertUse(r, 201).used).sort(), [1, 2, 3]);
    for (const r of no) assertQuotaExceeded(r, 3, 3, 0);
    const b = (await benefitsOf(A, 'q7', plusHours(T, 1)))['dry-cleaning'];
    assert.deepEqual([b.quota, b.used, b.remaining], [3, 3, 0]);
    // the refused use_ids were not recorded: one of them now → 422 again (not a 200 replay)
    const refused = rs.indexOf(no[0]); // request i sent use_id conc-i
    assertQuotaExceeded(await use(A, 'q7', 'dry-cleaning', { use_id: `conc-${refused}` }, T), 3, 3, 0);
  });

  test('10 concurrent sends of the same use → one 201, nine 200 with the same use; recorded once', async () => {
    const rs = await Promise.all(Array.from({ length: 10 }, () => use(A, 'q9', 'dry-cleaning', { use_id: 'same-use' }, T)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const created = assertUse(rs.find((r) => r.status === 201), 201);
    assert.deepEqual(created, USE({ use_id: 'same-use', customer_id: 'q9', benefit: 'dry-cleaning', used_at: T, ...MAY, quota: 3, used: 1, remaining: 2 }));
    for (const r of rs) assert.deepEqual(assertUse(r, r.status), created);
    assert.equal((await benefitsOf(A, 'q9', T))['dry-cleaning'].used, 1);
  });

  test('used > 0 stays listed when the quota is gone (membership cancelled): quota 0, used 1, remaining 0', async () => {
    assert.deepEqual(assertUse(await use(A, 'q8', 'parking', { use_id: 'u-q8-1' }, T), 201),
      USE({ use_id: 'u-q8-1', customer_id: 'q8', benefit: 'parking', used_at: T, ...MAY10, quota: 5, used: 1, remaining: 4 }));
    const m = (await c.get('/v1/customers/q8/memberships', { key: A })).body.items[0];
    const x = await c.post(`/v1/memberships/${m.id}/cancel`, { refund: 'none' }, at(A, plusHours(T, 1)));
    assert.equal(x.status, 200, x.text);
    const p = (await benefitsOf(A, 'q8', plusHours(T, 2))).parking;
    assert.deepEqual([p.quota, p.used, p.remaining], [0, 1, 0]);
    assertQuotaExceeded(await use(A, 'q8', 'parking', { use_id: 'u-q8-2' }, plusHours(T, 2)), 0, 1, 0);
  });

  test('bad bodies → 422 at the pointer; malformed JSON → 400; nothing recorded', async () => {
    const cases = [
      [{}, '/use_id'],
      [{ use_id: '' }, '/use_id'],
      [{ use_id: 'x'.repeat(129) }, '/use_id'],
      [{ use_id: 'bell\u0007' }, '/use_id'],
      // "printable" as for Idempotency-Key: the contract's pattern is ^[!-~]+$ (no space)
      [{ use_id: 'with space' }, '/use_id'],
      [{ use_id: 'caf\u00e9' }, '/use_id'],
      [{ use_id: 5 }, '/use_id'],
      [{ use_id: 'v-1', quantity: 0 }, '/quantity'],
      [{ use_id: 'v-1', quantity: 1001 }, '/quantity'],
      [{ use_id: 'v-1', quantity: 1.5 }, '/quantity'],
      [{ use_id: 'v-1', quantity: '1' }, '/quantity'],
      [{ use_id: 'v-1', note: 'n'.repeat(501) }, '/note'],
      [{ use_id: 'v-1', note: 5 }, '/note'],
      [{ use_id: 'v-1', colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await use(A, 'q4', 'dry-cleaning', body, T);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], r.text);
    }
    const m = await send('POST', usePath('q4', 'dry-cleaning'), { key: A, rawBody: '{"use_id":', headers: { 'Rebuy-Test-Now': T } });
    assert.deepEqual([m.status, m.body.code], [400, 'malformed_json']);
    assert.equal((await benefitsOf(A, 'q4', T))['dry-cleaning'].used, 0);
    // the limits are fine: a 128-character use_id of printable ASCII, quantity 2 of 2, a 500-character note
    const ok = assertUse(await use(A, 'q4', 'dry-cleaning', { use_id: `${'y'.repeat(120)}~!@#$%^&`, quantity: 2, note: 'n'.repeat(500) }, T), 201);
    assert.deepEqual([ok.use_id.length, ok.used, ok.remaining], [128, 2, 0]);
  });

  test('unknown or erased customer, unknown benefit → 404; readonly and platform → 403; no key → 401', async () => {
    assertProblem(await use(A, 'ghost', 'dry-cleaning', { use_id: 'n-1' }, T), 404, 'not_found');
    assertProblem(await use(A, 'q1', 'nope', { use_id: 'n-2' }, T), 404, 'not_found');
    await K.customer(A, 'gone');
    assert.equal((await c.del('/v1/customers/gone', { key: A })).status, 204);
    assertProblem(await use(A, 'gone', 'dry-cleaning', { use_id: 'n-3' }, T), 404, 'not_found');
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await use(key, 'q1', 'dry-cleaning', { use_id: 'n-4' }, T), 403, 'forbidden');
    }
    assertProblem(await send('POST', usePath('q1', 'dry-cleaning'), { body: { use_id: 'n-5' } }), 401, 'unauthenticated');
    // another shop's customer is unknown here
    const O = await mkShop();
    await K.customer(O.keys.admin, 'theirs');
    assertProblem(await use(A, 'theirs', 'dry-cleaning', { use_id: 'n-6' }, T), 404, 'not_found');
    assert.equal((await benefitsOf(A, 'q1', T))['dry-cleaning'].used, 0);
  });

  test('a membership term keeps the benefits of the plan as sold; a renewal brings the plan as it is now', async () => {
    await K.plan(A, 'snap', { name: 'Snap', fee: 1000, duration_days: 30, discount_bp: 100, benefits: { 'dry-cleaning': 2 } }, '2031-05-01T00:00:00Z');
    await K.customer(A, 'q6');
    const m = await K.buy(A, 'q6', 'snap', BOUGHT); // term 1: 05-02 02:00Z .. 06-01 02:00Z, dry-cleaning 2
    await K.plan(A, 'snap', { name: 'Snap', fee: 1000, duration_days: 30, discount_bp: 100, benefits: { 'dry-cleaning': 6 } }, '2031-05-03T00:00:00Z');
    let b = (await benefitsOf(A, 'q6', T))['dry-cleaning'];
    assert.deepEqual([b.quota, b.source], [2, 'membership']); // max(basic 1, term 1: 2)
    const r = await c.post(`/v1/memberships/${m.id}/renew`, {}, at(A, '2031-05-04T00:00:00Z')); // term 2 from 06-01 02:00Z, with 6
    assert.equal(r.status, 200, r.text);
    b = (await benefitsOf(A, 'q6', T))['dry-cleaning'];
    assert.equal(b.quota, 2, 'term 2 has not started');
    const JUNE10 = '2031-06-10T02:00:00Z';
    b = (await benefitsOf(A, 'q6', JUNE10))['dry-cleaning'];
    // June: 06-01 00:00 .. 07-01 00:00 local
    assert.deepEqual([b.quota, b.source, b.period_start, b.period_end], [6, 'membership', U('2031-05-31T16:00:00Z'), U('2031-06-30T16:00:00Z')]);
    // a sale after the change has 6 at once
    await K.customer(A, 'q6b');
    await K.buy(A, 'q6b', 'snap', '2031-05-05T00:00:00Z');
    assert.equal((await benefitsOf(A, 'q6b', T))['dry-cleaning'].quota, 6);
  });
});

// ---------------------------------------------------------------------------

describe("calendar periods in the shop's time zone, and validity windows", () => {
  let S;
  let A;
  before(async () => {
    S = await mkShop(); // Asia/Shanghai
    A = S.keys.admin;
    const P0 = '2026-01-01T00:00:00Z';
    await K.benefit(A, 'dry-cleaning', { name: 'Dry cleaning', period: 'month' }, P0);
    await K.benefit(A, 'car-wash', { name: 'Car wash', period: 'week' }, P0);
    await K.benefit(A, 'coffee', { name: 'Coffee', period: 'day' }, P0);
    await K.benefit(A, 'gift', { name: 'Birthday gift', period: 'year' }, P0);
    await K.benefit(A, 'spring-gift', { name: 'Spring gift', period: 'month', valid_from: '2026-05-01T00:00:00Z', valid_until: '2026-06-01T00:00:00Z' }, P0);
    // the entry tier grants 1 of each a period (5 spring gifts)
    await K.programme(A, {
      tiers: [tier('basic', 'Basic', 0, {}, { 'dry-cleaning': 1, 'car-wash': 1, coffee: 1, gift: 1, 'spring-gift': 5 })], downgrade: NEVER,
    }, P0, 201);
    await K.customer(A, 'p1');
  });

  const one = async (code, id, now, period, used = 1, quota = 1) => {
    const u = assertUse(await use(A, 'p1', code, { use_id: id }, now), 201);
    assert.deepEqual(u, USE({ use_id: id, customer_id: 'p1', benefit: code, used_at: now, ...period, quota, used, remaining: quota - used }));
    return u;
  };

  test('month: 23:59:59 on Mar 31 local and 00:00 on Apr 1 local are different periods', async () => {
    // 2026-03-31T15:59:59Z = 23:59:59 Mar 31 in Shanghai → March: Mar 1 00:00 (02-28 16:00Z) .. Apr 1 00:00 (03-31 16:00Z)
    const MARCH = { period_start: '2026-02-28T16:00:00Z', period_end: '2026-03-31T16:00:00Z' };
    const APRIL = { period_start: '2026-03-31T16:00:00Z', period_end: '2026-04-30T16:00:00Z' };
    await one('dry-cleaning', 'm-1', '2026-03-31T15:59:59Z', MARCH);
    assertQuotaExceeded(await use(A, 'p1', 'dry-cleaning', { use_id: 'm-2' }, '2026-03-31T15:59:59.999999Z'), 1, 1, 0);
    await one('dry-cleaning', 'm-2', '2026-03-31T16:00:00Z', APRIL); // 00:00 Apr 1 local: a new period
    let b = (await benefitsOf(A, 'p1', '2026-03-31T15:59:59Z'))['dry-cleaning'];
    assert.deepEqual([b.period_start, b.period_end, b.used, b.remaining], [U(MARCH.period_start), U(MARCH.period_end), 1, 0]);
    b = (await benefitsOf(A, 'p1', '2026-04-30T16:00:00Z'))['dry-cleaning']; // May 1 00:00 local: May, nothing used
    assert.deepEqual([b.period_start, b.period_end, b.used, b.remaining], [U('2026-04-30T16:00:00Z'), U('2026-05-31T16:00:00Z'), 0, 1]);
  });

  test('week: Monday 00:00 local to Monday', async () => {
    // Tue 2026-03-31 23:59:59 local → Mon 03-30 00:00 (03-29 16:00Z) .. Mon 04-06 00:00 (04-05 16:00Z)
    await one('car-wash', 'w-1', '2026-03-31T15:59:59Z', { period_start: '2026-03-29T16:00:00Z', period_end: '2026-04-05T16:00:00Z' });
    // Sun 04-05 23:59:59 local: the same week
    assertQuotaExceeded(await use(A, 'p1', 'car-wash', { use_id: 'w-2' }, '2026-04-05T15:59:59Z'), 1, 1, 0);
    // Mon 04-06 00:00 local: the next week
    await one('car-wash', 'w-2', '2026-04-05T16:00:00Z', { period_start: '2026-04-05T16:00:00Z', period_end: '2026-04-12T16:00:00Z' });
  });

  test('day and year', async () => {
    await one('coffee', 'd-1', '2026-03-31T15:59:59Z', { period_start: '2026-03-30T16:00:00Z', period_end: '2026-03-31T16:00:00Z' });
    await one('coffee', 'd-2', '2026-03-31T16:00:00Z', { period_start: '2026-03-31T16:00:00Z', period_end: '2026-04-01T16:00:00Z' });
    // 2026-12-31 23:59:59 local is in 2026; a second later it is 2027
    await one('gift', 'y-1', '2026-12-31T15:59:59Z', { period_start: '2025-12-31T16:00:00Z', period_end: '2026-12-31T16:00:00Z' });
    await one('gift', 'y-2', '2026-12-31T16:00:00Z', { period_start: '2026-12-31T16:00:00Z', period_end: '2027-12-31T16:00:00Z' });
  });

  test('a day across the spring DST change in New York is 23 hours long', async () => {
    const s = await createShop(svc, { name: uniq('NY Shop'), timezone: 'America/New_York' });
    const P0 = '2026-01-01T00:00:00Z';
    await K.benefit(s.adminKey, 'coffee', { name: 'Coffee', period: 'day' }, P0);
    await K.programme(s.adminKey, { tiers: [tier('basic', 'Basic', 0, {}, { coffee: 1 })], downgrade: NEVER }, P0, 201);
    await K.customer(s.adminKey, 'ny');
    // Sun 2026-03-08: 00:00 EST (05:00Z) .. Mon 00:00 EDT (2026-03-09 04:00Z)
    const u = assertUse(await use(s.adminKey, 'ny', 'coffee', { use_id: 'ny-1' }, '2026-03-08T12:00:00Z'), 201);
    assert.deepEqual([u.period_start, u.period_end], [U('2026-03-08T05:00:00Z'), U('2026-03-09T04:00:00Z')]);
    assertQuotaExceeded(await use(s.adminKey, 'ny', 'coffee', { use_id: 'ny-2' }, '2026-03-09T03:59:59Z'), 1, 1, 0); // 23:59:59 EDT Mar 8
    const v = assertUse(await use(s.adminKey, 'ny', 'coffee', { use_id: 'ny-2' }, '2026-03-09T04:00:00Z'), 201);
    assert.deepEqual([v.period_start, v.period_end], [U('2026-03-09T04:00:00Z'), U('2026-03-10T04:00:00Z')]);
  });

  test('outside the validity window → 422 benefit_not_valid, nothing recorded; inside it → 201', async () => {
    const FROM = '2026-05-01T00:00:00Z';
    for (const now of [plusUs(FROM, -1), '2026-06-01T00:00:01Z', '2027-01-01T00:00:00Z']) {
      const r = await use(A, 'p1', 'spring-gift', { use_id: 'sg-x' }, now);
      assertProblem(r, 422, 'benefit_not_valid');
    }
    // valid_from itself is inside; 2026-05-01T00:00Z is 08:00 May 1 local → May
    await one('spring-gift', 'sg-1', FROM, { period_start: '2026-04-30T16:00:00Z', period_end: '2026-05-31T16:00:00Z' }, 1, 5);
    // 1 µs before valid_until: 07:59:59.999999 Jun 1 local → June
    await one('spring-gift', 'sg-x', plusUs('2026-06-01T00:00:00Z', -1), { period_start: '2026-05-31T16:00:00Z', period_end: '2026-06-30T16:00:00Z' }, 1, 5);
    const b = (await benefitsOf(A, 'p1', '2026-05-15T00:00:00Z'))['spring-gift'];
    assert.deepEqual([b.quota, b.used, b.remaining], [5, 1, 4]);
  });
});

// a tiny self-check of the helpers the expectations rely on
describe('helpers', () => {
  test('U and plusUs print instants the way rebuyd does', () => {
    assert.equal(U('2026-03-31T23:59:59+08:00'), '2026-03-31T15:59:59.000000Z');
    assert.equal(plusUs('2026-05-01T00:00:00Z', -1), '2026-04-30T23:59:59.999999Z');
    assertTs('2026-05-01T00:00:00.000000Z', '2026-05-01T08:00:00+08:00', 'same instant');
  });
});
