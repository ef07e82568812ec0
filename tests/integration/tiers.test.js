// Earned tiers (tiers.md §0, §1): the test clock, the tier programme
// (PUT/GET /v1/tier-programme), evaluation on every order change (upgrade
// at once on the crossing order; refunds and cancellations that take a tier
// back), reviews with a grace period (POST /v1/tier-programme/review), manual
// assignment with a floor, the reads (tier, tier history) and what applies
// to a customer now (GET /v1/customers/{id}/membership: tier discount vs
// paid membership discount).
//
// rebuyd runs with --test-clock; every request that involves time carries
// Rebuy-Test-Now. Scenario instants lie in 2030–2032, after today, so the
// once-a-minute review sweep (which runs on the real clock) never finds a
// review or a grace end due in them; only POST …/review runs them here.
// Unless a test says otherwise, shops are in Asia/Shanghai (UTC+8, no
// daylight saving): local midnight on the 1st is 16:00Z the day before.
//
// Every expected figure is worked out by hand in the comment next to it.
// Notation: "d3" = the scenario's base instant + 3 × 24 h; an order "60000
// @d0" is placed at d0 and sent with Rebuy-Test-Now = d0 (so it is
// evaluated at the instant it was placed).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, createShop, assertProblem, uniq,
} from '../lib/harness.js';
import {
  at, U, plusDays, plusHours, plusUs, assertTs, orderBody, calls, H, T,
  assertProgrammeShape, assertCustomerTierShape,
} from '../lib/tiers.js';

let svc;
let c;
let K;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = api(svc);
  K = calls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Tier Shop'), ...opts });
const PROG = '/v1/tier-programme';
const REVIEW = '/v1/tier-programme/review';
const tierPath = (id) => `/v1/customers/${encodeURIComponent(id)}/tier`;
const histPath = (id) => `/v1/customers/${encodeURIComponent(id)}/tier-history`;

/** A tier of a programme body. */
const tier = (code, name, discountBp, qualification = {}, extra = {}) => ({ code, name, discount_bp: discountBp, qualification, ...extra });
const NEVER = { policy: 'never' };
const review = (everyMonths, graceDays) => ({ policy: 'review', every_months: everyMonths, grace_days: graceDays });

/** The CustomerTier expected, written out (defaults: no grace, no floor). */
const CT = (customer, o) => ({
  customer_id: customer,
  tier: o.tier,
  name: o.name,
  rank: o.rank,
  discount_bp: o.discount_bp,
  since: o.since === null ? null : U(o.since),
  cause: o.cause,
  grace_until: o.grace_until ? U(o.grace_until) : null,
  floor: o.floor ?? null,
  floor_until: o.floor_until ? U(o.floor_until) : null,
  qualifies_for: o.qualifies_for,
});
/** [tier, grace_until, qualifies_for] of a CustomerTier. */
const pick = (t) => [t.tier, t.grace_until, t.qualifies_for];
const NO_TIER = { tier: null, name: null, rank: null, discount_bp: 0, since: null, cause: null };

// ---------------------------------------------------------------------------

describe('the test clock (§0)', () => {
  let S;
  before(async () => {
    S = await mkShop();
    await K.customer(S.keys.admin, 'clock-1');
  });

  test('as_of of GET …/membership is the Rebuy-Test-Now instant, printed in UTC with microseconds', async () => {
    // 08:00:00.5 at +08:00 is 00:00:00.5 UTC
    for (const [sent, expected] of [
      ['2031-01-01T08:00:00.5+08:00', '2031-01-01T00:00:00.500000Z'],
      ['2031-06-15T12:34:56.123456Z', '2031-06-15T12:34:56.123456Z'],
      ['2019-12-31T23:59:59-05:00', '2020-01-01T04:59:59.000000Z'],
    ]) {
      const r = await c.get('/v1/customers/clock-1/membership', at(S.keys.readonly, sent));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.as_of, expected);
    }
  });

  test('a malformed Rebuy-Test-Now → 400 invalid_parameter /header/Rebuy-Test-Now, on reads and writes alike', async () => {
    for (const bad of ['yesterday', '2031-02-30T00:00:00Z', '2031-01-01T00:00:00', '2031-01-01', '2031-01-01T25:00:00Z']) {
      assertProblem(await c.get('/v1/customers/clock-1/membership', at(S.keys.admin, bad)), 400, 'invalid_parameter', '/header/Rebuy-Test-Now');
      assertProblem(await c.put(PROG, { tiers: [tier('a', 'A', 0)], downgrade: NEVER }, at(S.keys.admin, bad)),
        400, 'invalid_parameter', '/header/Rebuy-Test-Now');
    }
    // nothing was stored by the rejected PUTs
    assertProblem(await c.get(PROG, { key: S.keys.admin }), 404, 'not_found');
  });

  test('rebuyd logged a warning at start that the test clock is on', () => {
    const warn = svc.logEntries().filter((e) => e.level === 'warn' && /test.?clock/i.test(JSON.stringify(e)));
    assert.ok(warn.length >= 1, `no warning about the test clock in the log:\n${svc.logs().slice(0, 3000)}`);
  });

  test('without --test-clock: a request carrying the header → 400 "the test clock is off"; without it, real time', async () => {
    const plain = await startService();
    try {
      const p = api(plain);
      const s = await createShop(plain, { name: uniq('No Clock Shop') });
      const r0 = await p.put('/v1/customers/nc-1', { name: 'nc' }, { key: s.adminKey });
      assert.equal(r0.status, 201, r0.text);
      const r = await p.get('/v1/customers/nc-1/membership', at(s.adminKey, '2031-01-01T00:00:00Z'));
      assertProblem(r, 400, 'invalid_parameter', '/header/Rebuy-Test-Now');
      // §0 quotes the detail as "the test clock is off"; rebuyd may say more after it
      assert.match(r.body.detail, /^the test clock is off\b/);
      // a write is refused the same way, and nothing is stored
      const w = await p.put('/v1/orders/nc-o1', orderBody('nc-1', '2026-01-01T00:00:00Z', 100), at(s.adminKey, '2026-01-01T00:00:00Z'));
      assertProblem(w, 400, 'invalid_parameter', '/header/Rebuy-Test-Now');
      assertProblem(await p.get('/v1/orders/nc-o1', { key: s.adminKey }), 404, 'not_found');
      const t0 = Date.now();
      const ok = await p.get('/v1/customers/nc-1/membership', { key: s.adminKey });
      assert.equal(ok.status, 200, ok.text);
      const asOf = Date.parse(ok.body.as_of);
      assert.ok(asOf >= t0 - 2000 && asOf <= Date.now() + 2000, `as_of ${ok.body.as_of} is the real time`);
      assert.ok(!plain.logEntries().some((e) => e.level === 'warn' && /test.?clock/i.test(JSON.stringify(e))),
        'no test-clock warning when it is off');
    } finally {
      await plain.stop();
    }
  });
});

// ---------------------------------------------------------------------------

/** The programme of tiers.md §1, word for word. */
const SPEC_BODY = {
  tiers: [
    tier('ordinary', 'Ordinary', 0, {}, { benefits: { 'dry-cleaning': 1 } }),
    tier('silver', 'Silver', 300, { window_days: 365, net_spend: 100000 }, { benefits: { 'dry-cleaning': 2 } }),
    tier('gold', 'Gold', 800, { window_days: 365, net_spend: 500000, orders: 10, combine: 'or' }, { benefits: { 'dry-cleaning': 3 } }),
  ],
  downgrade: review(3, 30),
};

describe('the programme: PUT and GET /v1/tier-programme', () => {
  let S;
  const T0 = '2031-02-10T04:00:00Z'; // 12:00 in Shanghai
  before(async () => {
    S = await mkShop();
    await K.benefit(S.keys.admin, 'dry-cleaning', { name: 'Dry cleaning', period: 'month' }, T0);
  });

  test('none yet → 404 not_found for admin, storefront and readonly', async () => {
    for (const key of Object.values(S.keys)) assertProblem(await c.get(PROG, { key }), 404, 'not_found');
  });

  test('PUT creates (201) then replaces (200): ranks, qualification with all four members, review instants; GET answers the same', async () => {
    const r = await c.put(PROG, SPEC_BODY, at(S.keys.admin, T0));
    assert.equal(r.status, 201, r.text);
    assertProgrammeShape(r.body);
    assert.deepEqual(r.body, {
      tiers: [
        // entry tier: no thresholds → net_spend and orders null, window 365 and combine "and" by default
        T('ordinary', 'Ordinary', 1, 0, {}, { 'dry-cleaning': 1 }),
        T('silver', 'Silver', 2, 300, { window_days: 365, net_spend: 100000 }, { 'dry-cleaning': 2 }),
        T('gold', 'Gold', 3, 800, { window_days: 365, net_spend: 500000, orders: 10, combine: 'or' }, { 'dry-cleaning': 3 }),
      ],
      downgrade: { policy: 'review', every_months: 3, grace_days: 30 },
      last_review_at: null,
      // every 3 months: Jan 1, Apr 1, Jul 1, Oct 1 at 00:00 Shanghai; the first after
      // 2031-02-10 12:00 local is Apr 1 00:00 +08:00 = 2031-03-31T16:00Z
      next_review_at: U('2031-03-31T16:00:00Z'),
      created_at: U(T0),
      updated_at: U(T0),
    });
    for (const key of Object.values(S.keys)) {
      const g = await c.get(PROG, at(key, '2031-02-10T05:00:00Z'));
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body, r.body);
    }

    // replaced an hour later by a one-tier programme that never goes down
    const T1 = '2031-02-10T05:00:00Z';
    const r2 = await c.put(PROG, { tiers: [tier('silver', 'Silver!', 250, { orders: 2, window_days: 30 })], downgrade: NEVER }, at(S.keys.admin, T1));
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.body, {
      tiers: [T('silver', 'Silver!', 1, 250, { window_days: 30, orders: 2 })], // benefits {} by default
      downgrade: { policy: 'never' },
      last_review_at: null,
      next_review_at: null, // null with policy never
      created_at: U(T0), // kept
      updated_at: U(T1),
    });
    assert.deepEqual((await c.get(PROG, at(S.keys.readonly, T1))).body, r2.body);
  });

  test('only admin may PUT: storefront, readonly and platform keys → 403; no key → 401; nothing changes', async () => {
    const before0 = (await c.get(PROG, { key: S.keys.admin })).body;
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put(PROG, SPEC_BODY, at(key, T0)), 403, 'forbidden');
      assertProblem(await c.post(REVIEW, {}, at(key, T0)), 403, 'forbidden');
    }
    assertProblem(await c.put(PROG, SPEC_BODY), 401, 'unauthenticated');
    assertProblem(await c.get(PROG, { key: svc.platformKey }), 403, 'forbidden');
    assertProblem(await c.get(PROG), 401, 'unauthenticated');
    assert.deepEqual((await c.get(PROG, { key: S.keys.admin })).body, before0);
  });

  /** A valid body (entry tier + silver with a benefit, review policy) changed by fn. */
  const base = () => structuredClone({
    tiers: [
      tier('ordinary', 'Ordinary', 0, {}),
      tier('silver', 'Silver', 300, { window_days: 365, net_spend: 100000 }, { benefits: { 'dry-cleaning': 2 } }),
    ],
    downgrade: review(3, 30),
  });
  const mut = (fn) => { const b = base(); fn(b); return b; };
  const s1 = (fn) => mut((b) => fn(b.tiers[1]));
  const q1 = (fn) => mut((b) => fn(b.tiers[1].qualification));
  const BAD = [
    ['tiers missing', mut((b) => { delete b.tiers; }), '/tiers'],
    ['tiers empty', mut((b) => { b.tiers = []; }), '/tiers'],
    ['tiers an object', mut((b) => { b.tiers = { silver: {} }; }), '/tiers'],
    ['21 tiers', mut((b) => { b.tiers = Array.from({ length: 21 }, (_, i) => tier(`t${i}`, `T${i}`, 0, { orders: i + 1 })); }), '/tiers'],
    ['a tier that is a string', mut((b) => { b.tiers[1] = 'silver'; }), '/tiers/1'],
    ['code missing', s1((t) => { delete t.code; }), '/tiers/1/code'],
    ['code upper case', s1((t) => { t.code = 'Silver'; }), '/tiers/1/code'],
    ['code with _', s1((t) => { t.code = 'sil_ver'; }), '/tiers/1/code'],
    ['code empty', s1((t) => { t.code = ''; }), '/tiers/1/code'],
    ['code 65 characters', s1((t) => { t.code = 'a'.repeat(65); }), '/tiers/1/code'],
    ['code a number', s1((t) => { t.code = 5; }), '/tiers/1/code'],
    ['code duplicated (the second one is named)', s1((t) => { t.code = 'ordinary'; }), '/tiers/1/code'],
    ['name missing', s1((t) => { delete t.name; }), '/tiers/1/name'],
    ['name empty', s1((t) => { t.name = ''; }), '/tiers/1/name'],
    ['name 201 characters', s1((t) => { t.name = 'x'.repeat(201); }), '/tiers/1/name'],
    ['name a number', s1((t) => { t.name = 7; }), '/tiers/1/name'],
    ['discount_bp −1', s1((t) => { t.discount_bp = -1; }), '/tiers/1/discount_bp'],
    ['discount_bp 10001', s1((t) => { t.discount_bp = 10001; }), '/tiers/1/discount_bp'],
    ['discount_bp 1.5', s1((t) => { t.discount_bp = 1.5; }), '/tiers/1/discount_bp'],
    ['discount_bp a string', s1((t) => { t.discount_bp = '300'; }), '/tiers/1/discount_bp'],
    ['qualification missing', s1((t) => { delete t.qualification; }), '/tiers/1/qualification'],
    ['qualification null', s1((t) => { t.qualification = null; }), '/tiers/1/qualification'],
    ['qualification an array', s1((t) => { t.qualification = []; }), '/tiers/1/qualification'],
    ['window_days 0', q1((q) => { q.window_days = 0; }), '/tiers/1/qualification/window_days'],
    ['window_days 3661', q1((q) => { q.window_days = 3661; }), '/tiers/1/qualification/window_days'],
    ['window_days a string', q1((q) => { q.window_days = '365'; }), '/tiers/1/qualification/window_days'],
    ['net_spend −1', q1((q) => { q.net_spend = -1; }), '/tiers/1/qualification/net_spend'],
    ['net_spend 10^12 + 1', q1((q) => { q.net_spend = 10 ** 12 + 1; }), '/tiers/1/qualification/net_spend'],
    ['net_spend 0.5', q1((q) => { q.net_spend = 0.5; }), '/tiers/1/qualification/net_spend'],
    ['orders 0', q1((q) => { q.orders = 0; }), '/tiers/1/qualification/orders'],
    ['orders 100001', q1((q) => { q.orders = 100001; }), '/tiers/1/qualification/orders'],
    ['combine xor', q1((q) => { q.combine = 'xor'; }), '/tiers/1/qualification/combine'],
    ['combine AND', q1((q) => { q.combine = 'AND'; }), '/tiers/1/qualification/combine'],
    ['unknown qualification member', q1((q) => { q.days = 30; }), '/tiers/1/qualification/days'],
    ['unknown tier member', s1((t) => { t.color = 'grey'; }), '/tiers/1/color'],
    ['benefits an array', s1((t) => { t.benefits = []; }), '/tiers/1/benefits'],
    ['benefit code unknown', s1((t) => { t.benefits = { 'dry-cleaning': 1, parking: 2 }; }), '/tiers/1/benefits/parking'],
    ['benefit quota −1', s1((t) => { t.benefits = { 'dry-cleaning': -1 }; }), '/tiers/1/benefits/dry-cleaning'],
    ['benefit quota 10001', s1((t) => { t.benefits = { 'dry-cleaning': 10001 }; }), '/tiers/1/benefits/dry-cleaning'],
    ['benefit quota a string', s1((t) => { t.benefits = { 'dry-cleaning': '1' }; }), '/tiers/1/benefits/dry-cleaning'],
    ['downgrade missing', mut((b) => { delete b.downgrade; }), '/downgrade'],
    ['downgrade a string', mut((b) => { b.downgrade = 'never'; }), '/downgrade'],
    ['policy missing', mut((b) => { delete b.downgrade.policy; }), '/downgrade/policy'],
    ['policy unknown', mut((b) => { b.downgrade.policy = 'sometimes'; }), '/downgrade/policy'],
    ['every_months missing with review', mut((b) => { delete b.downgrade.every_months; }), '/downgrade/every_months'],
    ['every_months 2', mut((b) => { b.downgrade.every_months = 2; }), '/downgrade/every_months'],
    ['every_months 0', mut((b) => { b.downgrade.every_months = 0; }), '/downgrade/every_months'],
    ['every_months 24', mut((b) => { b.downgrade.every_months = 24; }), '/downgrade/every_months'],
    ['grace_days missing with review', mut((b) => { delete b.downgrade.grace_days; }), '/downgrade/grace_days'],
    ['grace_days −1', mut((b) => { b.downgrade.grace_days = -1; }), '/downgrade/grace_days'],
    ['grace_days 366', mut((b) => { b.downgrade.grace_days = 366; }), '/downgrade/grace_days'],
    ['unknown downgrade member', mut((b) => { b.downgrade.when = 'monthly'; }), '/downgrade/when'],
    ['unknown top-level member', mut((b) => { b.name = 'Programme'; }), '/name'],
  ];

  test('validation: each bad part → 422 validation_failed at its pointer; nothing changes', async () => {
    const before0 = (await c.get(PROG, { key: S.keys.admin })).body;
    for (const [what, body, pointer] of BAD) {
      const r = await c.put(PROG, body, at(S.keys.admin, '2031-02-10T06:00:00Z'));
      assert.equal(r.status, 422, `${what}: ${r.status} ${r.text}`);
      assertProblem(r, 422, 'validation_failed', pointer);
    }
    assertProblem(await c.put(PROG, [base()], at(S.keys.admin, '2031-02-10T06:00:00Z')), 422, 'validation_failed');
    assertProblem(await c.req('PUT', PROG, { ...at(S.keys.admin, '2031-02-10T06:00:00Z'), rawBody: '{"tiers":[' }), 400, 'malformed_json');
    assert.deepEqual((await c.get(PROG, { key: S.keys.admin })).body, before0, 'nothing stored');
  });

  test('the bounds are accepted: 20 tiers, a 64-character code, a 200-character name, every range end', async () => {
    const B = await mkShop();
    await K.benefit(B.keys.admin, 'bc', { name: 'B', period: 'day' }, T0);
    const code64 = `a${'0-'.repeat(31)}z`;
    assert.equal(code64.length, 64);
    const name200 = 'é'.repeat(200);
    const tiers = [
      tier(code64, 'x', 0, { window_days: 1, net_spend: 0 }, { benefits: { bc: 0 } }),
      tier('t1', name200, 10000, { window_days: 3660, net_spend: 10 ** 12, orders: 100000, combine: 'or' }, { benefits: { bc: 10000 } }),
      ...Array.from({ length: 18 }, (_, i) => tier(`t${i + 2}`, `Tier ${i + 2}`, i + 2, { orders: i + 2, window_days: 30 })),
    ];
    const p = await K.programme(B.keys.admin, { tiers, downgrade: review(12, 365) }, T0, 201);
    assert.equal(p.tiers.length, 20);
    assert.deepEqual(p.tiers[0], T(code64, 'x', 1, 0, { window_days: 1, net_spend: 0 }, { bc: 0 }));
    assert.deepEqual(p.tiers[1], T('t1', name200, 2, 10000, { window_days: 3660, net_spend: 10 ** 12, orders: 100000, combine: 'or' }, { bc: 10000 }));
    assert.deepEqual(p.tiers[19], T('t19', 'Tier 19', 20, 19, { window_days: 30, orders: 19 }));
    assert.deepEqual(p.downgrade, { policy: 'review', every_months: 12, grace_days: 365 });
    // every 12 months: Jan 1 only; after 2031-02-10 → 2032-01-01 00:00 +08:00 = 2031-12-31T16:00Z
    assertTs(p.next_review_at, '2031-12-31T16:00:00Z', 'next_review_at');
    // grace_days 0 and every_months 1 and 6 are accepted too
    for (const d of [review(1, 0), review(6, 0)]) {
      const r = await c.put(PROG, { tiers, downgrade: d }, at(B.keys.admin, T0));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.downgrade, d);
    }
  });

  test('removing a tier that customers hold → 409 conflict naming it; other changes (also removing an unheld tier) → 200', async () => {
    const R = await mkShop();
    const P0 = '2031-03-01T00:00:00Z';
    await K.programme(R.keys.admin, {
      tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000 }), tier('gold', 'Gold', 800, { net_spend: 300000 })],
      downgrade: NEVER,
    }, P0, 201);
    await K.customer(R.keys.admin, 'holder');
    await K.customer(R.keys.admin, 'idle'); // no orders: holds the entry tier, but nothing is stored
    await K.order(R.keys.admin, 'holder-1', 'holder', '2031-03-02T02:00:00Z', 150000); // 150000 ≥ 100000 → silver
    assert.equal((await K.tier(R.keys.admin, 'holder', '2031-03-02T02:00:00Z')).tier, 'silver');
    const before0 = (await c.get(PROG, { key: R.keys.admin })).body;

    const r = await c.put(PROG, { tiers: [tier('basic', 'Basic', 0), tier('gold', 'Gold', 800, { net_spend: 300000 })], downgrade: NEVER },
      at(R.keys.admin, '2031-03-03T00:00:00Z'));
    assertProblem(r, 409, 'conflict');
    assert.match(r.body.detail, /silver/, 'the detail names the tier');
    assert.deepEqual((await c.get(PROG, { key: R.keys.admin })).body, before0, 'unchanged');

    // gold (held by nobody) may go; silver may change its name and threshold
    const p2 = await K.programme(R.keys.admin, {
      tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver (new)', 350, { net_spend: 120000 })], downgrade: NEVER,
    }, '2031-03-03T00:00:00Z', 200);
    assert.deepEqual(p2.tiers.map((t) => t.code), ['basic', 'silver']);
    // the entry tier is stored for nobody ("idle" holds it without a stored tier): it may go too
    const p3 = await K.programme(R.keys.admin, { tiers: [tier('silver', 'Silver (new)', 350, { net_spend: 120000 })], downgrade: NEVER },
      '2031-03-03T01:00:00Z', 200);
    assert.deepEqual(p3.tiers.map((t) => [t.code, t.rank]), [['silver', 1]]);
    // the holder keeps silver (now rank 1, 350 bp); idle has no tier any more
    const h = await K.tier(R.keys.admin, 'holder', '2031-03-03T02:00:00Z');
    assert.deepEqual([h.tier, h.rank, h.discount_bp, h.cause], ['silver', 1, 350, 'order']);
    // 150000 < 120000? no: 150000 ≥ 120000 → still qualifies
    assert.equal(h.qualifies_for, 'silver');
    assert.deepEqual(await K.tier(R.keys.admin, 'idle', '2031-03-03T02:00:00Z'), CT('idle', { ...NO_TIER, qualifies_for: null }));
  });
});

// ---------------------------------------------------------------------------

describe("reading a customer's tier", () => {
  test('no programme → GET …/tier 404; unknown customer → 404; an invalid id → 400 /path/id', async () => {
    const S = await mkShop();
    await K.customer(S.keys.admin, 'r-1');
    assertProblem(await c.get(tierPath('r-1'), at(S.keys.admin, '2031-01-01T00:00:00Z')), 404, 'not_found');
    await K.programme(S.keys.admin, { tiers: [tier('silver', 'Silver', 300, { net_spend: 1 })], downgrade: NEVER }, '2031-01-01T00:00:00Z', 201);
    for (const p of [tierPath('ghost'), histPath('ghost')]) {
      assertProblem(await c.get(p, at(S.keys.admin, '2031-01-02T00:00:00Z')), 404, 'not_found');
    }
    for (const p of ['/v1/customers/bad%20id/tier', '/v1/customers/bad%20id/tier-history']) {
      assertProblem(await c.get(p, at(S.keys.admin, '2031-01-02T00:00:00Z')), 400, 'invalid_parameter', '/path/id');
    }
  });

  test('no orders under entry tiers → the highest entry tier, cause "entry", since null; empty history; a small order changes nothing', async () => {
    const S = await mkShop();
    await K.programme(S.keys.admin, {
      tiers: [tier('basic', 'Basic', 50), tier('plus', 'Plus', 100, {}), tier('silver', 'Silver', 300, { net_spend: 100000 })],
      downgrade: NEVER,
    }, '2031-01-01T00:00:00Z', 201);
    await K.customer(S.keys.admin, 'e-1');
    // basic and plus are both entry tiers (no thresholds); the highest is plus (rank 2)
    const expected = CT('e-1', { tier: 'plus', name: 'Plus', rank: 2, discount_bp: 100, since: null, cause: 'entry', qualifies_for: 'plus' });
    assert.deepEqual(await K.tier(S.keys.readonly, 'e-1', '2031-01-02T00:00:00Z'), expected);
    assert.deepEqual(await K.history(S.keys.readonly, 'e-1', '2031-01-02T00:00:00Z'), []);
    // 100 < 100000: qualifies for plus only, which is what is held → no change, no history
    await K.order(S.keys.admin, 'e-1-1', 'e-1', '2031-01-03T02:00:00Z', 100);
    assert.deepEqual(await K.tier(S.keys.storefront, 'e-1', '2031-01-03T02:00:00Z'), expected);
    assert.deepEqual(await K.history(S.keys.storefront, 'e-1', '2031-01-03T02:00:00Z'), []);
  });

  test('no entry tier and nothing earned → tier, name, rank, since, cause and qualifies_for null, discount 0', async () => {
    const S = await mkShop();
    await K.programme(S.keys.admin, { tiers: [tier('silver', 'Silver', 300, { net_spend: 100000 })], downgrade: NEVER }, '2031-01-01T00:00:00Z', 201);
    await K.customer(S.keys.admin, 'n-1');
    await K.order(S.keys.admin, 'n-1-1', 'n-1', '2031-01-03T02:00:00Z', 99999); // 99999 < 100000
    assert.deepEqual(await K.tier(S.keys.admin, 'n-1', '2031-01-03T02:00:00Z'), CT('n-1', { ...NO_TIER, qualifies_for: null }));
    assert.deepEqual(await K.history(S.keys.admin, 'n-1', '2031-01-03T02:00:00Z'), []);
  });

  test('scopes: admin, storefront and readonly read; platform → 403; no key → 401', async () => {
    const S = await mkShop();
    await K.programme(S.keys.admin, { tiers: [tier('basic', 'Basic', 0)], downgrade: NEVER }, '2031-01-01T00:00:00Z', 201);
    await K.customer(S.keys.admin, 's-1');
    for (const p of [tierPath('s-1'), histPath('s-1'), PROG]) {
      for (const key of Object.values(S.keys)) assert.equal((await c.get(p, at(key, '2031-01-02T00:00:00Z'))).status, 200, p);
      assertProblem(await c.get(p, at(svc.platformKey, '2031-01-02T00:00:00Z')), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
  });
});

// ---------------------------------------------------------------------------

describe('upgrade at once, on the order that crosses the line', () => {
  let S;
  // silver: ≥ 100000 net in 365 days; gold: ≥ 300000; no entry tier; never goes down
  const LADDER = { tiers: [tier('silver', 'Silver', 300, { net_spend: 100000 }), tier('gold', 'Gold', 800, { net_spend: 300000 })], downgrade: NEVER };
  before(async () => {
    S = await mkShop();
    await K.programme(S.keys.admin, LADDER, '2031-03-01T00:00:00Z', 201);
  });

  test('60000, then 39999 (99999): no tier; then 1 more (100000): silver, cause order with that order id; then gold', async () => {
    const A = S.keys.admin;
    const [t1, t2, t3, t4, t5] = ['2031-03-01T02:00:00Z', '2031-03-05T02:00:00Z', '2031-03-09T02:00:00Z', '2031-03-12T02:00:00Z', '2031-03-13T02:00:00Z'];
    await K.customer(A, 'u1');
    await K.order(A, 'u1-1', 'u1', t1, 60000);
    assert.deepEqual(await K.tier(A, 'u1', t1), CT('u1', { ...NO_TIER, qualifies_for: null }));
    await K.order(A, 'u1-2', 'u1', t2, 39999); // 60000 + 39999 = 99999 < 100000
    assert.deepEqual(await K.tier(A, 'u1', t2), CT('u1', { ...NO_TIER, qualifies_for: null }));
    assert.deepEqual(await K.history(A, 'u1', t2), []);
    await K.order(A, 'u1-3', 'u1', t3, 1); // 100000 ≥ 100000 → silver now
    assert.deepEqual(await K.tier(A, 'u1', t3),
      CT('u1', { tier: 'silver', name: 'Silver', rank: 1, discount_bp: 300, since: t3, cause: 'order', qualifies_for: 'silver' }));
    assert.deepEqual(await K.history(A, 'u1', t3), [H(t3, null, 'silver', 'order', 'u1-3')]);
    await K.order(A, 'u1-4', 'u1', t4, 200000); // 300000 → gold
    await K.order(A, 'u1-5', 'u1', t5, 5000); // 305000: gold already, nothing happens
    assert.deepEqual(await K.tier(A, 'u1', t5),
      CT('u1', { tier: 'gold', name: 'Gold', rank: 2, discount_bp: 800, since: t4, cause: 'order', qualifies_for: 'gold' }));
    // newest first
    assert.deepEqual(await K.history(A, 'u1', t5), [H(t4, 'silver', 'gold', 'order', 'u1-4'), H(t3, null, 'silver', 'order', 'u1-3')]);
  });

  test('one big order goes straight to the highest tier it reaches (one history row)', async () => {
    const t = '2031-03-02T02:00:00Z';
    await K.order(S.keys.admin, 'u2-1', 'u2', t, 300000); // a bare customer; 300000 ≥ 300000 → gold
    assert.deepEqual(await K.history(S.keys.admin, 'u2', t), [H(t, null, 'gold', 'order', 'u2-1')]);
  });

  test('the upgrade happens at the request\'s now (not at placed_at); an order outside the window does not count', async () => {
    const A = S.keys.admin;
    // placed 2031-03-01, sent 2031-03-20: since and at are 2031-03-20
    await K.order(A, 'u3-1', 'u3', '2031-03-01T02:00:00Z', 150000, '2031-03-20T00:00:00Z');
    assert.deepEqual(await K.history(A, 'u3', '2031-03-20T00:00:00Z'), [H('2031-03-20T00:00:00Z', null, 'silver', 'order', 'u3-1')]);
    // window (now − 365 d, now]: 90000 placed 2030-03-01 02:00 is out of (2030-03-02 02:00, 2031-03-02 02:00]
    await K.order(A, 'u4-1', 'u4', '2030-03-01T02:00:00Z', 90000, '2031-03-02T02:00:00Z');
    await K.order(A, 'u4-2', 'u4', '2031-03-02T02:00:00Z', 20000); // in the window: 20000 only (not 110000)
    assert.equal((await K.tier(A, 'u4', '2031-03-02T02:00:00Z')).tier, null);
    await K.order(A, 'u4-3', 'u4', '2031-03-03T02:00:00Z', 80000); // 20000 + 80000 = 100000 → silver
    assert.deepEqual(await K.history(A, 'u4', '2031-03-03T02:00:00Z'), [H('2031-03-03T02:00:00Z', null, 'silver', 'order', 'u4-3')]);
  });

  test('bulk ingest evaluates each line: the history names the line that crossed', async () => {
    const t = '2031-03-15T02:00:00Z';
    const lines = [
      { id: 'w-1', ...orderBody('w', plusHours(t, -2), 50000) }, // 50000
      { id: 'w-2', ...orderBody('w', plusHours(t, -1), 50000) }, // 100000 → silver here
      { id: 'w-3', ...orderBody('w', t, 10) }, // 100010: nothing more
    ];
    const r = await c.req('POST', '/v1/orders/bulk', at(S.keys.admin, t, {
      rawBody: `${lines.map((o) => JSON.stringify(o)).join('\n')}\n`, headers: { 'content-type': 'application/x-ndjson' },
    }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.created, 3, r.text);
    assert.deepEqual(await K.history(S.keys.admin, 'w', t), [H(t, null, 'silver', 'order', 'w-2')]);
  });

  test('concurrent orders of one customer: exactly one upgrade, named after one of them', async () => {
    const t = '2031-03-20T02:00:00Z';
    // six orders of 20000 at once: 120000 in all; silver is crossed by whichever is fifth to commit
    const ids = Array.from({ length: 6 }, (_, i) => `cc-${i}`);
    const rs = await Promise.all(ids.map((id) => c.put(`/v1/orders/${id}`, orderBody('cc', t, 20000), at(S.keys.admin, t))));
    assert.deepEqual(rs.map((r) => r.status), [201, 201, 201, 201, 201, 201], rs.map((r) => r.text).join('\n'));
    const h = await K.history(S.keys.admin, 'cc', t);
    assert.equal(h.length, 1, JSON.stringify(h));
    assert.deepEqual({ ...h[0], order_id: null }, H(t, null, 'silver', 'order'));
    assert.ok(ids.includes(h[0].order_id), h[0].order_id);
    assert.deepEqual(pick(await K.tier(S.keys.admin, 'cc', t)), ['silver', null, 'silver']);
  });

  test('with an entry tier, the first upgrade starts from it', async () => {
    // reading: a customer without a stored tier holds the entry tier (§1 Reads), so `from` is its code
    const E = await mkShop();
    await K.programme(E.keys.admin, { tiers: [tier('ordinary', 'Ordinary', 0), tier('silver', 'Silver', 300, { net_spend: 100000 })], downgrade: NEVER },
      '2031-03-01T00:00:00Z', 201);
    const t = '2031-03-02T02:00:00Z';
    await K.order(E.keys.admin, 'e1-1', 'e1', t, 100000);
    assert.deepEqual(await K.history(E.keys.admin, 'e1', t), [H(t, 'ordinary', 'silver', 'order', 'e1-1')]);
  });
});

// ---------------------------------------------------------------------------

describe('frequency tiers (an airline: n purchases in a window) and and/or combinations', () => {
  let S;
  // bronze: ≥ 3 occasions in 30 days; silver: ≥ 50000 OR ≥ 5 occasions; gold: ≥ 100000 AND ≥ 6 occasions
  const AIR = {
    tiers: [
      tier('bronze', 'Bronze', 100, { window_days: 30, orders: 3 }),
      tier('silver', 'Silver', 300, { window_days: 30, net_spend: 50000, orders: 5, combine: 'or' }),
      tier('gold', 'Gold', 800, { window_days: 30, net_spend: 100000, orders: 6, combine: 'and' }),
    ],
    downgrade: NEVER,
  };
  const D = '2031-05-01T02:00:00Z';
  const d = (n) => plusDays(D, n);
  before(async () => {
    S = await mkShop();
    const p = await K.programme(S.keys.admin, AIR, '2031-04-01T00:00:00Z', 201);
    assert.deepEqual(p.tiers[0].qualification, { window_days: 30, net_spend: null, orders: 3, combine: 'and' });
  });

  test('3 purchases in 30 days → bronze on the third', async () => {
    const A = S.keys.admin;
    await K.order(A, 'a-1', 'a', d(0), 1000);
    await K.order(A, 'a-2', 'a', d(1), 1000);
    assert.equal((await K.tier(A, 'a', d(1))).tier, null); // 2 < 3
    await K.order(A, 'a-3', 'a', d(2), 1000); // 3 ≥ 3
    assert.deepEqual(await K.history(A, 'a', d(2)), [H(d(2), null, 'bronze', 'order', 'a-3')]);
  });

  test('the window is (T − 30 × 24 h, T]: a purchase exactly 30 days before does not count', async () => {
    const A = S.keys.admin;
    await K.order(A, 'f-1', 'f', d(0), 1000);
    await K.order(A, 'f-2', 'f', d(10), 1000);
    await K.order(A, 'f-3', 'f', d(30), 1000); // window (d0, d30]: f-2, f-3 → 2
    assert.equal((await K.tier(A, 'f', d(30))).tier, null);
    await K.order(A, 'f-4', 'f', d(31), 1000); // window (d1, d31]: f-2, f-3, f-4 → 3
    assert.deepEqual(await K.history(A, 'f', d(31)), [H(d(31), null, 'bronze', 'order', 'f-4')]);
  });

  test('"or": one purchase of 50000 is silver (skipping bronze); five small purchases are silver too', async () => {
    const A = S.keys.admin;
    await K.order(A, 'b-1', 'b', d(0), 50000); // 50000 ≥ 50000 (1 < 5 does not matter with or)
    assert.deepEqual(await K.history(A, 'b', d(0)), [H(d(0), null, 'silver', 'order', 'b-1')]);
    for (let i = 1; i <= 5; i++) await K.order(A, `c-${i}`, 'c', d(i - 1), 100);
    // c-3: 3 occasions → bronze; c-5: 5 occasions → silver (500 < 50000, but or)
    assert.deepEqual(await K.history(A, 'c', d(4)), [H(d(4), 'bronze', 'silver', 'order', 'c-5'), H(d(2), null, 'bronze', 'order', 'c-3')]);
  });

  test('"and": gold needs both 100000 and 6 purchases — the sixth purchase crosses; six small ones never do', async () => {
    const A = S.keys.admin;
    await K.order(A, 'd-1', 'dd', d(0), 100000); // silver (or: 100000 ≥ 50000); gold: 1 < 6
    for (let i = 2; i <= 5; i++) await K.order(A, `d-${i}`, 'dd', d(i - 1), 100);
    // after d-5: 5 occasions, 100400 — gold needs 6
    assert.equal((await K.tier(A, 'dd', d(4))).tier, 'silver');
    await K.order(A, 'd-6', 'dd', d(5), 100); // 6 occasions, 100500 ≥ 100000 → gold
    assert.deepEqual(await K.history(A, 'dd', d(5)), [H(d(5), 'silver', 'gold', 'order', 'd-6'), H(d(0), null, 'silver', 'order', 'd-1')]);

    for (let i = 1; i <= 6; i++) await K.order(A, `e-${i}`, 'ee', d(i - 1), 100);
    // e-3 bronze, e-5 silver (5 occasions); e-6: 6 occasions but 600 < 100000 → stays silver
    const t = await K.tier(A, 'ee', d(5));
    assert.deepEqual([t.tier, t.since, t.qualifies_for], ['silver', U(d(4)), 'silver']);
    assert.equal((await K.history(A, 'ee', d(5))).length, 2);
  });

  test("counts purchase occasions under the shop's repurchase rule (merge window, minimum amount)", async () => {
    // a shop whose rule merges orders within 24 h of an occasion's start and ignores orders below 500
    const r = await c.post('/v1/shops', {
      name: uniq('Rule Shop'), currency: 'CNY', timezone: 'Asia/Shanghai',
      settings: { repurchase_rule: { merge_window_hours: 24, min_order_amount: 500 } },
    }, { key: svc.platformKey });
    assert.equal(r.status, 201, r.text);
    const A = r.body.admin_key.key;
    await K.programme(A, { tiers: [tier('bronze', 'Bronze', 100, { window_days: 30, orders: 3 })], downgrade: NEVER }, '2031-04-01T00:00:00Z', 201);
    await K.order(A, 'm-1', 'm', d(0), 1000); // occasion 1
    await K.order(A, 'm-2', 'm', plusHours(d(0), 1), 1000); // 1 h after occasion 1 started: joins it
    await K.order(A, 'm-3', 'm', d(2), 400); // 400 < 500: does not qualify
    await K.order(A, 'm-4', 'm', d(3), 1000); // occasion 2
    assert.equal((await K.tier(A, 'm', d(3))).tier, null, '2 occasions (4 orders)');
    await K.order(A, 'm-5', 'm', d(5), 1000); // 2 days after occasion 2 started: occasion 3 → bronze
    assert.deepEqual(await K.history(A, 'm', d(5)), [H(d(5), null, 'bronze', 'order', 'm-5')]);
  });
});

// ---------------------------------------------------------------------------

describe('refunds and cancellations can take a tier back', () => {
  let S;
  // bronze ≥ 10000, silver ≥ 100000, gold ≥ 300000 net in 365 days; never goes down otherwise
  const RF = {
    tiers: [tier('bronze', 'Bronze', 100, { net_spend: 10000 }), tier('silver', 'Silver', 300, { net_spend: 100000 }),
      tier('gold', 'Gold', 800, { net_spend: 300000 })],
    downgrade: NEVER,
  };
  const B = '2031-06-01T02:00:00Z';
  const d = (n) => plusDays(B, n);
  before(async () => {
    S = await mkShop();
    await K.programme(S.keys.admin, RF, '2031-05-01T00:00:00Z', 201);
  });

  test('refunding the crossing order in full → back to the tier held before, cause refund with its id', async () => {
    const A = S.keys.admin;
    await K.order(A, 'r1-a', 'r1', d(0), 60000); // bronze
    await K.order(A, 'r1-b', 'r1', d(1), 50000); // 110000 → silver
    await K.refund(A, 'r1-b', 50000, d(2));
    // at d1 with today's data: r1-b fully refunded does not qualify → 60000 < 100000 → silver goes;
    // max(bronze held before, bronze qualified now (60000), no floor) = bronze
    assert.deepEqual(await K.tier(A, 'r1', d(2)),
      CT('r1', { tier: 'bronze', name: 'Bronze', rank: 1, discount_bp: 100, since: d(2), cause: 'refund', qualifies_for: 'bronze' }));
    assert.deepEqual(await K.history(A, 'r1', d(2)), [
      H(d(2), 'silver', 'bronze', 'refund', 'r1-b'),
      H(d(1), 'bronze', 'silver', 'order', 'r1-b'),
      H(d(0), null, 'bronze', 'order', 'r1-a'),
    ]);
  });

  test('a partial refund that leaves exactly the threshold keeps the tier; one unit more takes it', async () => {
    const A = S.keys.admin;
    await K.order(A, 'r2-a', 'r2', d(0), 60000);
    await K.order(A, 'r2-b', 'r2', d(1), 50000); // silver
    await K.refund(A, 'r2-b', 10000, d(2), 1); // at d1: 60000 + 40000 = 100000 ≥ 100000 → still qualifies
    let t = await K.tier(A, 'r2', d(2));
    assert.deepEqual([t.tier, t.since, t.cause], ['silver', U(d(1)), 'order']);
    assert.equal((await K.history(A, 'r2', d(2))).length, 2, 'no history row');
    await K.refund(A, 'r2-b', 1, d(3), 2); // 99999 < 100000 → bronze
    t = await K.tier(A, 'r2', d(3));
    assert.deepEqual([t.tier, t.since, t.cause], ['bronze', U(d(3)), 'refund']);
    assert.deepEqual((await K.history(A, 'r2', d(3)))[0], H(d(3), 'silver', 'bronze', 'refund', 'r2-b'));
  });

  test('a refund that leaves the customer qualified at the upgrade instant changes nothing — whichever order it hits', async () => {
    const A = S.keys.admin;
    await K.order(A, 'r3-a', 'r3', d(0), 60000); // bronze
    await K.order(A, 'r3-b', 'r3', d(1), 50000); // silver at d1
    await K.order(A, 'r3-c', 'r3', d(2), 5000);
    await K.refund(A, 'r3-c', 5000, d(3)); // r3-c was placed after d1: at d1 still 110000
    await K.refund(A, 'r3-a', 10000, d(4), 1); // at d1: 50000 + 50000 = 100000 → still silver
    let t = await K.tier(A, 'r3', d(4));
    assert.deepEqual([t.tier, t.since, t.cause], ['silver', U(d(1)), 'order']);
    assert.equal((await K.history(A, 'r3', d(4))).length, 2);
    // one unit more off r3-a (not the crossing order): at d1 49999 + 50000 = 99999 → silver goes;
    // max(bronze held before, qualified now: 49999 + 50000 (r3-c refunded in full) = 99999 → bronze) = bronze
    await K.refund(A, 'r3-a', 1, d(5), 2);
    t = await K.tier(A, 'r3', d(5));
    assert.deepEqual([t.tier, t.since, t.cause], ['bronze', U(d(5)), 'refund']);
    assert.deepEqual((await K.history(A, 'r3', d(5)))[0], H(d(5), 'silver', 'bronze', 'refund', 'r3-a'));
  });

  test('taken back to the larger of the tier held before and the tier qualified for now', async () => {
    const A = S.keys.admin;
    await K.order(A, 'r4-a', 'r4', d(0), 60000); // bronze
    await K.order(A, 'r4-b', 'r4', d(1), 250000); // 310000 → gold (from bronze)
    await K.order(A, 'r4-c', 'r4', d(2), 50000); // 360000
    await K.refund(A, 'r4-b', 250000, d(3));
    // gold at d1 without r4-b: 60000 → no; held before: bronze; qualified now: 60000 + 50000 = 110000 → silver
    assert.deepEqual(await K.tier(A, 'r4', d(3)),
      CT('r4', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: d(3), cause: 'refund', qualifies_for: 'silver' }));
    assert.deepEqual((await K.history(A, 'r4', d(3)))[0], H(d(3), 'gold', 'silver', 'refund', 'r4-b'));
  });

  test('cancelling the crossing order → back, cause cancel; cancelling it again changes nothing', async () => {
    const A = S.keys.admin;
    await K.order(A, 'c1-a', 'c1', d(0), 60000); // bronze
    await K.order(A, 'c1-b', 'c1', d(1), 50000); // silver
    await K.cancel(A, 'c1-b', d(2)); // at d1 without c1-b: 60000 → bronze
    assert.deepEqual(await K.tier(A, 'c1', d(2)),
      CT('c1', { tier: 'bronze', name: 'Bronze', rank: 1, discount_bp: 100, since: d(2), cause: 'cancel', qualifies_for: 'bronze' }));
    await K.cancel(A, 'c1-b', d(3));
    assert.deepEqual(await K.history(A, 'c1', d(3)), [
      H(d(2), 'silver', 'bronze', 'cancel', 'c1-b'),
      H(d(1), 'bronze', 'silver', 'order', 'c1-b'),
      H(d(0), null, 'bronze', 'order', 'c1-a'),
    ]);
  });

  test('cancelling an order the customer can spare at the upgrade instant keeps the tier', async () => {
    const A = S.keys.admin;
    await K.order(A, 'c2-a', 'c2', d(0), 60000); // bronze
    await K.order(A, 'c2-a2', 'c2', plusHours(d(0), 1), 5000); // 65000
    await K.order(A, 'c2-b', 'c2', d(1), 50000); // 115000 → silver
    await K.cancel(A, 'c2-a2', d(2)); // at d1: 110000 ≥ 100000
    const t = await K.tier(A, 'c2', d(2));
    assert.deepEqual([t.tier, t.since, t.cause], ['silver', U(d(1)), 'order']);
    assert.deepEqual(await K.history(A, 'c2', d(2)), [H(d(1), 'bronze', 'silver', 'order', 'c2-b'), H(d(0), null, 'bronze', 'order', 'c2-a')]);
  });

  test('a refund down to the entry tier: the customer holds it by the refund (cause refund, since the refund), not as "entry"', async () => {
    const E = await mkShop();
    await K.programme(E.keys.admin, { tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000 })], downgrade: NEVER },
      '2031-05-01T00:00:00Z', 201);
    await K.order(E.keys.admin, 're-1', 're', d(0), 150000); // silver (from basic)
    await K.refund(E.keys.admin, 're-1', 150000, d(1)); // at d0 without it: 0 → basic (held before and qualified now)
    // the customer got a tier before, so the §1 "never got a tier → cause entry, since null" rendering does not apply
    assert.deepEqual(await K.tier(E.keys.admin, 're', d(1)),
      CT('re', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: d(1), cause: 'refund', qualifies_for: 'basic' }));
    assert.deepEqual(await K.history(E.keys.admin, 're', d(1)), [H(d(1), 'silver', 'basic', 'refund', 're-1'), H(d(0), 'basic', 'silver', 'order', 're-1')]);
  });

  test('the rule repeats for the upgrade before: one cancellation takes gold down to bronze', async () => {
    const A = S.keys.admin;
    await K.order(A, 'r5-x', 'r5', d(0), 20000); // bronze (x)
    await K.order(A, 'r5-y', 'r5', d(1), 90000); // 110000 → silver (y)
    await K.order(A, 'r5-z', 'r5', d(2), 200000); // 310000 → gold (z)
    // 400 days later (policy never: still gold), y is cancelled:
    // gold at d2 without y: 20000 + 200000 = 220000 < 300000 → goes; held before: silver
    // silver at d1 without y: 20000 < 100000 → goes too; held before: bronze
    // bronze at d0: 20000 ≥ 10000 → stays. Qualified now (window (d37, d402]): nothing. No floor → bronze
    const now = d(402);
    assert.equal((await K.tier(A, 'r5', now)).tier, 'gold');
    await K.cancel(A, 'r5-y', now);
    const t = await K.tier(A, 'r5', now);
    assert.deepEqual([t.tier, t.since, t.cause, t.qualifies_for], ['bronze', U(now), 'cancel', null]);
    const h = await K.history(A, 'r5', now);
    assert.deepEqual([h[0].at, h[0].to, h[0].cause, h[0].order_id], [U(now), 'bronze', 'cancel', 'r5-y']);
    assert.deepEqual(h.slice(-3), [
      H(d(2), 'silver', 'gold', 'order', 'r5-z'), H(d(1), 'bronze', 'silver', 'order', 'r5-y'), H(d(0), null, 'bronze', 'order', 'r5-x'),
    ]);
  });
});

// ---------------------------------------------------------------------------

describe('policy never: nothing goes down with time', () => {
  test('a year later the customer no longer qualifies, yet keeps silver, also after POST …/review', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    await K.programme(A, { tiers: [tier('silver', 'Silver', 300, { net_spend: 100000, window_days: 30 })], downgrade: NEVER }, '2031-01-01T00:00:00Z', 201);
    const t0 = '2031-01-10T02:00:00Z';
    await K.order(A, 'nv-1', 'nv', t0, 150000); // silver
    const expected = (qualifies) => CT('nv', { tier: 'silver', name: 'Silver', rank: 1, discount_bp: 300, since: t0, cause: 'order', qualifies_for: qualifies });
    assert.deepEqual(await K.tier(A, 'nv', t0), expected('silver'));
    for (const later of ['2032-01-10T02:00:00Z', '2036-06-01T00:00:00Z']) {
      // window (later − 30 d, later]: empty → qualifies for nothing, still holds silver
      assert.deepEqual(await K.tier(A, 'nv', later), expected(null));
      assert.deepEqual(await K.review(A, later), { reviewed_at: null, graced: 0, downgraded: 0, next_review_at: null });
      assert.deepEqual(await K.tier(A, 'nv', later), expected(null));
    }
    assert.deepEqual(await K.history(A, 'nv', '2036-06-01T00:00:00Z'), [H(t0, null, 'silver', 'order', 'nv-1')]);
    const p = (await c.get(PROG, { key: A })).body;
    assert.deepEqual([p.last_review_at, p.next_review_at], [null, null]);
  });

  test('POST …/review without a programme → 404; a body other than {} → 422', async () => {
    const S = await mkShop();
    assertProblem(await c.post(REVIEW, {}, at(S.keys.admin, '2031-01-01T00:00:00Z')), 404, 'not_found');
    await K.programme(S.keys.admin, { tiers: [tier('a', 'A', 0)], downgrade: NEVER }, '2031-01-01T00:00:00Z', 201);
    assertProblem(await c.post(REVIEW, { force: true }, at(S.keys.admin, '2031-01-01T00:00:00Z')), 422, 'validation_failed', '/force');
    // an empty body is fine
    const r = await c.req('POST', REVIEW, at(S.keys.admin, '2031-01-02T00:00:00Z'));
    assert.equal(r.status, 200, r.text);
  });
});

// ---------------------------------------------------------------------------

describe('policy review with a grace period (every 3 months, 30 days of grace)', () => {
  let S;
  let A;
  // basic: entry; silver ≥ 100000 and gold ≥ 300000 net in the last 30 days
  const RV = {
    tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000, window_days: 30 }),
      tier('gold', 'Gold', 800, { net_spend: 300000, window_days: 30 })],
    downgrade: review(3, 30),
  };
  const R = '2031-03-31T16:00:00Z'; // Apr 1 00:00 Shanghai
  const G = '2031-04-30T16:00:00Z'; // R + 30 × 24 h
  const R2 = '2031-06-30T16:00:00Z'; // Jul 1 00:00 Shanghai
  const G2 = '2031-07-30T16:00:00Z'; // R2 + 30 × 24 h
  const R3 = '2031-09-30T16:00:00Z'; // Oct 1 00:00 Shanghai
  const FEB15 = '2031-02-15T02:00:00Z';
  const APR10 = '2031-04-10T02:00:00Z';

  //  customer | orders                                   | at R: window (03-01 16:00Z, R]      | after R
  //  g1       | 150000 02-15 → silver                    | nothing → grace until G             | down to basic at G
  //  g2       | 150000 02-15, 120000 03-20 → silver      | 120000 → silver: no grace           | –
  //  g3       | 150000 02-15 → silver                    | grace                               | 100000 04-10 requalifies: grace cleared
  //  g4       | 350000 02-20 → gold                      | grace                               | 120000 04-10 (silver only): down to silver at G
  //  g5       | none (basic, entry)                      | –                                   | –
  //  g6       | 150000 02-15 → silver                    | grace                               | 350000 04-10: gold at once, grace cleared
  before(async () => {
    S = await mkShop(); // Asia/Shanghai
    A = S.keys.admin;
    const p = await K.programme(A, RV, '2031-02-10T04:00:00Z', 201);
    assertTs(p.next_review_at, R, 'next_review_at');
    await K.order(A, 'g1-1', 'g1', FEB15, 150000);
    await K.order(A, 'g2-1', 'g2', FEB15, 150000);
    await K.order(A, 'g2-2', 'g2', '2031-03-20T02:00:00Z', 120000);
    await K.order(A, 'g3-1', 'g3', FEB15, 150000);
    await K.order(A, 'g4-1', 'g4', '2031-02-20T02:00:00Z', 350000);
    await K.customer(A, 'g5');
    await K.order(A, 'g6-1', 'g6', FEB15, 150000);
  });

  test('before the review instant nothing is due', async () => {
    assert.deepEqual(await K.review(A, plusUs(R, -1)), { reviewed_at: null, graced: 0, downgraded: 0, next_review_at: U(R) });
    assert.equal((await K.tier(A, 'g1', plusUs(R, -1))).grace_until, null);
  });

  test('after R: the review runs once; those who no longer qualify enter grace until R + 30 days, no history row', async () => {
    const now = '2031-04-02T00:00:00Z';
    // g1, g3, g4, g6 enter grace; g2 qualifies at R; g5 holds the entry tier
    assert.deepEqual(await K.review(A, now), { reviewed_at: U(R), graced: 4, downgraded: 0, next_review_at: U(R2) });
    assert.deepEqual(await K.tier(A, 'g1', now),
      CT('g1', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: FEB15, cause: 'order', grace_until: G, qualifies_for: 'basic' }));
    assert.deepEqual(await K.tier(A, 'g4', now),
      CT('g4', { tier: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: '2031-02-20T02:00:00Z', cause: 'order', grace_until: G, qualifies_for: 'basic' }));
    // g2: 120000 placed 03-20 is in (now − 30 d, now] too
    assert.deepEqual(await K.tier(A, 'g2', now),
      CT('g2', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: FEB15, cause: 'order', qualifies_for: 'silver' }));
    assert.deepEqual(await K.tier(A, 'g5', now),
      CT('g5', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: null, cause: 'entry', qualifies_for: 'basic' }));
    assert.deepEqual(await K.history(A, 'g1', now), [H(FEB15, 'basic', 'silver', 'order', 'g1-1')]);
    const p = (await c.get(PROG, { key: A })).body;
    assertTs(p.last_review_at, R, 'last_review_at');
    assertTs(p.next_review_at, R2, 'next_review_at');
    // run again: nothing left to run
    assert.deepEqual(await K.review(A, now), { reviewed_at: null, graced: 0, downgraded: 0, next_review_at: U(R2) });
  });

  test('during grace: requalifying for the held tier clears grace (no history row); a lower tier does not; an upgrade clears it', async () => {
    await K.order(A, 'g3-2', 'g3', APR10, 100000); // window (03-11, 04-10]: 100000 → silver = held
    assert.deepEqual(await K.tier(A, 'g3', APR10),
      CT('g3', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: FEB15, cause: 'order', qualifies_for: 'silver' }));
    assert.equal((await K.history(A, 'g3', APR10)).length, 1);
    await K.order(A, 'g4-2', 'g4', APR10, 120000); // silver only; gold is held → grace stays
    const g4 = await K.tier(A, 'g4', APR10);
    assert.deepEqual([g4.tier, g4.grace_until, g4.qualifies_for], ['gold', U(G), 'silver']);
    await K.order(A, 'g6-2', 'g6', APR10, 350000); // 350000 → gold at once
    assert.deepEqual(await K.tier(A, 'g6', APR10),
      CT('g6', { tier: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: APR10, cause: 'order', qualifies_for: 'gold' }));
    assert.deepEqual((await K.history(A, 'g6', APR10))[0], H(APR10, 'silver', 'gold', 'order', 'g6-2'));
  });

  test('just before the grace end nothing is due; after it, those still short go down to what they qualify for at G (at = G)', async () => {
    assert.deepEqual(await K.review(A, plusUs(G, -1)), { reviewed_at: null, graced: 0, downgraded: 0, next_review_at: U(R2) });
    assert.equal((await K.tier(A, 'g1', plusUs(G, -1))).tier, 'silver');
    const now = '2031-05-01T00:00:00Z';
    // g1: nothing in (03-31 16:00Z, G] → basic; g4: 120000 (04-10) → silver
    assert.deepEqual(await K.review(A, now), { reviewed_at: null, graced: 0, downgraded: 2, next_review_at: U(R2) });
    assert.deepEqual(await K.tier(A, 'g1', now),
      CT('g1', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: G, cause: 'review', qualifies_for: 'basic' }));
    assert.deepEqual(await K.history(A, 'g1', now), [H(G, 'silver', 'basic', 'review'), H(FEB15, 'basic', 'silver', 'order', 'g1-1')]);
    assert.deepEqual(await K.tier(A, 'g4', now),
      CT('g4', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: G, cause: 'review', qualifies_for: 'silver' }));
    assert.deepEqual((await K.history(A, 'g4', now))[0], H(G, 'gold', 'silver', 'review'));
    // g3 and g6 left grace: untouched
    assert.equal((await K.tier(A, 'g3', now)).tier, 'silver');
    assert.equal((await K.tier(A, 'g6', now)).tier, 'gold');
  });

  test('the next review (Jul 1) and its grace end', async () => {
    // at R2 the window (05-31 16:00Z, R2] is empty for everyone: g2, g3, g4 (silver) and g6 (gold) enter grace;
    // g1 holds basic (the entry tier), g5 nothing stored
    assert.deepEqual(await K.review(A, '2031-07-02T00:00:00Z'), { reviewed_at: U(R2), graced: 4, downgraded: 0, next_review_at: U(R3) });
    assert.equal((await K.tier(A, 'g6', '2031-07-02T00:00:00Z')).grace_until, U(G2));
    assert.deepEqual(await K.review(A, '2031-08-01T00:00:00Z'), { reviewed_at: null, graced: 0, downgraded: 4, next_review_at: U(R3) });
    assert.deepEqual((await K.history(A, 'g6', '2031-08-01T00:00:00Z'))[0], H(G2, 'gold', 'basic', 'review'));
    for (const g of ['g2', 'g3', 'g4', 'g6']) {
      const t = await K.tier(A, g, '2031-08-01T00:00:00Z');
      assert.deepEqual([t.tier, t.since, t.cause, t.grace_until], ['basic', U(G2), 'review', null], g);
    }
    assertTs((await c.get(PROG, { key: A })).body.last_review_at, R2, 'last_review_at');
  });
});

describe('a grace end and a review due at once run oldest first', () => {
  test('grace end G1 (down to silver), then review R2 (silver enters grace again)', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    await K.programme(A, {
      tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000, window_days: 10 }),
        tier('gold', 'Gold', 800, { net_spend: 300000, window_days: 10 })],
      downgrade: review(1, 10),
    }, '2031-02-10T04:00:00Z', 201);
    const R1 = '2031-02-28T16:00:00Z'; // Mar 1 00:00 Shanghai
    const G1 = '2031-03-10T16:00:00Z'; // R1 + 10 d
    const R2 = '2031-03-31T16:00:00Z'; // Apr 1 00:00 Shanghai
    await K.order(A, 'x1-1', 'x1', '2031-02-12T02:00:00Z', 350000); // gold
    await K.order(A, 'x2-1', 'x2', '2031-02-25T02:00:00Z', 150000); // silver; in (02-18 16:00Z, R1] → qualifies at R1
    // R1: x1 qualifies for basic only → grace until G1
    assert.deepEqual(await K.review(A, '2031-03-02T00:00:00Z'), { reviewed_at: U(R1), graced: 1, downgraded: 0, next_review_at: U(R2) });
    await K.order(A, 'x1-2', 'x1', '2031-03-05T02:00:00Z', 150000); // silver level: gold's grace continues
    assert.deepEqual(pick(await K.tier(A, 'x1', '2031-03-05T02:00:00Z')), ['gold', U(G1), 'silver']);
    // both G1 and R2 are due on 04-02:
    //  G1: x1 at G1, window (02-28 16:00Z, G1]: 150000 → down to silver (at G1)
    //  R2: window (03-21 16:00Z, R2] is empty: x1 (silver) and x2 (silver) enter grace until R2 + 10 d
    assert.deepEqual(await K.review(A, '2031-04-02T00:00:00Z'),
      { reviewed_at: U(R2), graced: 2, downgraded: 1, next_review_at: U('2031-04-30T16:00:00Z') });
    const x1 = await K.tier(A, 'x1', '2031-04-02T00:00:00Z');
    assert.deepEqual([x1.tier, x1.since, x1.cause, x1.grace_until], ['silver', U(G1), 'review', U('2031-04-10T16:00:00Z')]);
    assert.deepEqual((await K.history(A, 'x1', '2031-04-02T00:00:00Z'))[0], H(G1, 'gold', 'silver', 'review'));
  });
});
describe('grace_days 0: down at the review itself; of several missed reviews only the latest runs', () => {
  test('every month, no grace', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    await K.programme(A, {
      tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000, window_days: 10 })],
      downgrade: review(1, 0),
    }, '2031-02-10T04:00:00Z', 201);
    const R1 = '2031-02-28T16:00:00Z'; // Mar 1 00:00 Shanghai
    await K.order(A, 'z1-1', 'z1', '2031-02-11T02:00:00Z', 150000); // silver; out of (02-18 16:00Z, R1]
    await K.order(A, 'z2-1', 'z2', '2031-02-25T02:00:00Z', 150000); // silver; in it
    assert.deepEqual(await K.review(A, '2031-03-05T00:00:00Z'),
      { reviewed_at: U(R1), graced: 0, downgraded: 1, next_review_at: U('2031-03-31T16:00:00Z') });
    assert.deepEqual(await K.tier(A, 'z1', '2031-03-05T00:00:00Z'),
      CT('z1', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: R1, cause: 'review', qualifies_for: 'basic' }));
    assert.deepEqual((await K.history(A, 'z1', '2031-03-05T00:00:00Z'))[0], H(R1, 'silver', 'basic', 'review'));
    assert.equal((await K.tier(A, 'z2', '2031-03-05T00:00:00Z')).tier, 'silver');

    // 06-15: Apr 1, May 1 and Jun 1 were missed; only Jun 1 00:00 Shanghai (05-31 16:00Z) runs
    const JUN1 = '2031-05-31T16:00:00Z';
    assert.deepEqual(await K.review(A, '2031-06-15T00:00:00Z'),
      { reviewed_at: U(JUN1), graced: 0, downgraded: 1, next_review_at: U('2031-06-30T16:00:00Z') });
    assert.deepEqual((await K.history(A, 'z2', '2031-06-15T00:00:00Z'))[0], H(JUN1, 'silver', 'basic', 'review'));
    assert.equal((await K.history(A, 'z2', '2031-06-15T00:00:00Z')).length, 2);
    assertTs((await c.get(PROG, { key: A })).body.last_review_at, JUN1, 'last_review_at');
  });
});

describe("review instants are local midnight on the 1st in the shop's time zone", () => {
  //  zone              every  programme created at (UTC)        first review after it
  const CASES = [
    ['Asia/Shanghai', 1, '2031-02-10T04:00:00Z', '2031-02-28T16:00:00Z'], // Mar 1 00:00 +08
    ['Asia/Shanghai', 3, '2031-02-10T04:00:00Z', '2031-03-31T16:00:00Z'], // Apr 1
    ['Asia/Shanghai', 6, '2031-02-10T04:00:00Z', '2031-06-30T16:00:00Z'], // Jul 1
    ['Asia/Shanghai', 12, '2031-02-10T04:00:00Z', '2031-12-31T16:00:00Z'], // Jan 1 2032
    ['Asia/Shanghai', 3, '2031-03-31T15:59:59.999999Z', '2031-03-31T16:00:00Z'], // 1 µs before Apr 1 00:00 local
    ['Asia/Shanghai', 3, '2031-03-31T16:00:00Z', '2031-06-30T16:00:00Z'], // exactly at Apr 1: the next one (after)
    ['Asia/Shanghai', 12, '2031-12-31T16:30:00Z', '2032-12-31T16:00:00Z'], // 00:30 Jan 1 2032 local (still 2031 in UTC)
    ['America/New_York', 3, '2031-02-10T04:00:00Z', '2031-04-01T04:00:00Z'], // Apr 1 00:00 EDT (−04:00; DST from Mar 9)
    ['America/New_York', 12, '2031-02-10T04:00:00Z', '2032-01-01T05:00:00Z'], // Jan 1 00:00 EST (−05:00)
    ['UTC', 6, '2031-07-01T00:00:00Z', '2032-01-01T00:00:00Z'], // exactly Jul 1 → Jan 1
  ];
  for (const [zone, every, created, expected] of CASES) {
    test(`${zone}, every ${every} month(s), created ${created} → ${expected}`, async () => {
      const s = await createShop(svc, { name: uniq('Zone Shop'), timezone: zone });
      const p = await K.programme(s.adminKey, { tiers: [tier('a', 'A', 0)], downgrade: review(every, 0) }, created, 201);
      assertTs(p.next_review_at, expected, 'next_review_at');
      assertTs(p.created_at, created, 'created_at');
      // not due yet 1 µs before it
      assert.deepEqual(await K.review(s.adminKey, plusUs(expected, -1)), { reviewed_at: null, graced: 0, downgraded: 0, next_review_at: U(expected) });
    });
  }
});

// ---------------------------------------------------------------------------

describe('manual assignment: PUT /v1/customers/{id}/tier', () => {
  let S;
  let A;
  const MA = {
    tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000, window_days: 30 }),
      tier('gold', 'Gold', 800, { net_spend: 300000, window_days: 30 })],
    downgrade: review(3, 0),
  };
  const T0 = '2031-02-12T00:00:00Z';
  const F = '2031-06-01T00:00:00Z'; // floor_until: after R1, before R2
  const R1 = '2031-03-31T16:00:00Z';
  const R2 = '2031-06-30T16:00:00Z';
  const REASON = 'compensation for a lost parcel';
  const assign = (id, body, now = T0, key = A) => c.put(tierPath(id), body, at(key, now));

  //  customer | assignment at T0           | then                                   | R1 (grace 0)            | R2 (floor over)
  //  m1       | gold                       | –                                      | basic                   | –
  //  m2       | gold, floor until F        | –                                      | gold (= floor)          | basic
  //  m3       | silver, floor until F      | 350000 order → gold (above the floor)  | silver (the floor)      | basic
  //  m4       | silver, floor until F      | 350000 order → gold, refunded → silver | silver (= floor)        | basic
  //  m7       | gold, floor until F        | gold again without floor: floor gone   | basic                   | –
  //  m11      | basic (entry) by hand      | (150000 on 02-11, qualifies for silver)| basic = qualified at R1 | –
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.programme(A, MA, '2031-02-10T04:00:00Z', 201);
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm7', 'm9', 'm11']) await K.customer(A, id);
  });

  test('sets the tier now: cause manual with the reason; the reply is the CustomerTier', async () => {
    const r = await assign('m1', { tier: 'gold', reason: REASON });
    assert.equal(r.status, 200, r.text);
    assertCustomerTierShape(r.body);
    const expected = CT('m1', { tier: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: T0, cause: 'manual', qualifies_for: 'basic' });
    assert.deepEqual(r.body, expected);
    assert.deepEqual(await K.tier(S.keys.readonly, 'm1', T0), expected);
    assert.deepEqual(await K.history(A, 'm1', T0), [H(T0, 'basic', 'gold', 'manual', null, REASON)]);
  });

  test('assigning the entry tier by hand is a manual assignment like any other (cause manual, since now)', async () => {
    await K.order(A, 'm11-1', 'm11', '2031-02-11T02:00:00Z', 150000); // silver
    const r = await assign('m11', { tier: 'basic', reason: 'asked to be downgraded' });
    assert.equal(r.status, 200, r.text);
    // 150000 placed 02-11 is in the 30-day window: qualifies for silver, holds basic by hand
    const expected = CT('m11', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: T0, cause: 'manual', qualifies_for: 'silver' });
    assert.deepEqual(r.body, expected);
    assert.deepEqual(await K.tier(A, 'm11', T0), expected);
    assert.deepEqual((await K.history(A, 'm11', T0))[0], H(T0, 'silver', 'basic', 'manual', null, 'asked to be downgraded'));
  });

  test('with floor_until: floor and floor_until shown; an order still upgrades above the floor; a refund does not go below it', async () => {
    let r = await assign('m2', { tier: 'gold', reason: 'VIP guest', floor_until: F });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, CT('m2', { tier: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: T0, cause: 'manual', floor: 'gold', floor_until: F, qualifies_for: 'basic' }));
    r = await assign('m3', { tier: 'silver', reason: 'VIP guest', floor_until: '2031-06-01T08:00:00+08:00' }); // = F
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.floor, r.body.floor_until], ['silver', U(F)]);
    await K.order(A, 'm3-1', 'm3', '2031-02-13T02:00:00Z', 350000); // 350000 → gold, above the floor
    assert.deepEqual(await K.tier(A, 'm3', '2031-02-13T02:00:00Z'),
      CT('m3', { tier: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: '2031-02-13T02:00:00Z', cause: 'order', floor: 'silver', floor_until: F, qualifies_for: 'gold' }));

    assert.equal((await assign('m4', { tier: 'silver', reason: 'VIP guest', floor_until: F })).status, 200);
    await K.order(A, 'm4-1', 'm4', '2031-02-13T02:00:00Z', 350000); // gold
    await K.refund(A, 'm4-1', 350000, '2031-02-14T00:00:00Z');
    // gold at 02-13 without m4-1: 0 → goes; max(silver held before, basic qualified now, silver floor) = silver
    assert.deepEqual(await K.tier(A, 'm4', '2031-02-14T00:00:00Z'),
      CT('m4', { tier: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: '2031-02-14T00:00:00Z', cause: 'refund', floor: 'silver', floor_until: F, qualifies_for: 'basic' }));

    // an assignment without floor_until removes the floor
    assert.equal((await assign('m7', { tier: 'gold', reason: 'VIP guest', floor_until: F })).status, 200);
    r = await assign('m7', { tier: 'gold', reason: 'floor lifted' }, '2031-02-12T01:00:00Z');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.tier, r.body.floor, r.body.floor_until, r.body.cause], ['gold', null, null, 'manual']);
    assert.deepEqual((await K.history(A, 'm7', '2031-02-12T01:00:00Z')).map((h) => h.reason), ['floor lifted', 'VIP guest']);
  });

  test('a review before floor_until never goes below the floor; after floor_until it may', async () => {
    // R1 (grace 0): m1 gold → basic; m3 gold → max(basic, silver floor) = silver; m7 gold → basic;
    // m2 (gold = floor) and m4 (silver = floor) are not above their floor
    assert.deepEqual(await K.review(A, '2031-04-01T00:00:00Z'), { reviewed_at: U(R1), graced: 0, downgraded: 3, next_review_at: U(R2) });
    assert.deepEqual((await K.history(A, 'm3', '2031-04-01T00:00:00Z'))[0], H(R1, 'gold', 'silver', 'review'));
    assert.deepEqual((await K.history(A, 'm1', '2031-04-01T00:00:00Z'))[0], H(R1, 'gold', 'basic', 'review'));
    assert.equal((await K.tier(A, 'm2', '2031-04-01T00:00:00Z')).tier, 'gold');
    assert.equal((await K.tier(A, 'm4', '2031-04-01T00:00:00Z')).tier, 'silver');
    assert.equal((await K.tier(A, 'm7', '2031-04-01T00:00:00Z')).tier, 'basic');
    // R2 is after F: m2, m3 and m4 go down to basic (what they qualify for)
    assert.deepEqual(await K.review(A, '2031-07-01T00:00:00Z'),
      { reviewed_at: U(R2), graced: 0, downgraded: 3, next_review_at: U('2031-09-30T16:00:00Z') });
    for (const [id, from] of [['m2', 'gold'], ['m3', 'silver'], ['m4', 'silver']]) {
      assert.deepEqual((await K.history(A, id, '2031-07-01T00:00:00Z'))[0], H(R2, from, 'basic', 'review'), id);
      assert.equal((await K.tier(A, id, '2031-07-01T00:00:00Z')).tier, 'basic', id);
    }
  });

  test('bad bodies → 422 at the pointer; nothing changes', async () => {
    const cases = [
      [{ tier: 'platinum', reason: 'x' }, '/tier'],
      [{ reason: 'x' }, '/tier'],
      [{ tier: 5, reason: 'x' }, '/tier'],
      [{ tier: 'gold' }, '/reason'],
      [{ tier: 'gold', reason: '' }, '/reason'],
      [{ tier: 'gold', reason: 'x'.repeat(501) }, '/reason'],
      [{ tier: 'gold', reason: 5 }, '/reason'],
      [{ tier: 'gold', reason: 'x', floor_until: '2031-02-11T00:00:00Z' }, '/floor_until'], // in the past
      [{ tier: 'gold', reason: 'x', floor_until: T0 }, '/floor_until'], // now is not in the future
      [{ tier: 'gold', reason: 'x', floor_until: 'next month' }, '/floor_until'],
      [{ tier: 'gold', reason: 'x', colour: 'gold' }, '/colour'],
    ];
    for (const [body, pointer] of cases) assertProblem(await assign('m9', body), 422, 'validation_failed', pointer);
    assertProblem(await c.req('PUT', tierPath('m9'), { ...at(A, T0), rawBody: '{"tier":' }), 400, 'malformed_json');
    // 500 characters is fine — on another customer, so m9 stays untouched
    await K.customer(A, 'm10');
    assert.equal((await assign('m10', { tier: 'silver', reason: 'y'.repeat(500) })).status, 200);
    assert.deepEqual(await K.tier(A, 'm9', T0), CT('m9', { tier: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: null, cause: 'entry', qualifies_for: 'basic' }));
    assert.deepEqual(await K.history(A, 'm9', T0), []);
  });

  test('unknown or erased customer → 404; a shop without a programme → 409 conflict; storefront, readonly, platform → 403', async () => {
    assertProblem(await assign('ghost', { tier: 'gold', reason: 'x' }), 404, 'not_found');
    await K.customer(A, 'gone');
    const del = await c.del('/v1/customers/gone', { key: A });
    assert.ok([200, 204].includes(del.status), del.text);
    assertProblem(await assign('gone', { tier: 'gold', reason: 'x' }), 404, 'not_found');
    const N = await mkShop();
    await K.customer(N.keys.admin, 'np');
    assertProblem(await assign('np', { tier: 'gold', reason: 'x' }, T0, N.keys.admin), 409, 'conflict');
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await assign('m9', { tier: 'gold', reason: 'x' }, T0, key), 403, 'forbidden');
    }
    assertProblem(await c.put(tierPath('m9'), { tier: 'gold', reason: 'x' }), 401, 'unauthenticated');
    assert.equal((await K.tier(A, 'm9', T0)).tier, 'basic');
  });
});

// ---------------------------------------------------------------------------

describe('what applies now: GET /v1/customers/{id}/membership with a tier', () => {
  let S;
  let A;
  const t = '2031-08-01T02:00:00Z';
  const later = '2031-08-01T03:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.programme(A, {
      tiers: [tier('basic', 'Basic', 0), tier('silver', 'Silver', 300, { net_spend: 100000 }), tier('gold', 'Gold', 800, { net_spend: 300000 })],
      downgrade: NEVER,
    }, '2031-07-01T00:00:00Z', 201);
    await K.plan(A, 'plus', { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500 }, '2031-07-01T00:00:00Z');
    await K.plan(A, 'lite', { name: 'Lite', fee: 1000, duration_days: 30, discount_bp: 300 }, '2031-07-01T00:00:00Z');
    for (const [id, total, plan] of [['k1', 150000, null], ['k2', 150000, 'plus'], ['k3', 150000, 'lite'], ['k4', 350000, 'plus'],
      ['k5', 0, null], ['k6', 0, 'plus']]) {
      await K.customer(A, id);
      if (total) await K.order(A, `${id}-1`, id, t, total);
      if (plan) await K.buy(A, id, plan, t);
    }
  });

  const silverAt = { code: 'silver', name: 'Silver', rank: 2, discount_bp: 300, since: U(t), grace_until: null };

  test('a tier alone: its discount, source tier', async () => {
    const b = await K.applies(S.keys.readonly, 'k1', later);
    assert.deepEqual(b.tier, silverAt);
    assert.deepEqual(b.memberships, []);
    assert.deepEqual([b.discount_bp, b.discount_source], [300, 'tier']);
    assert.deepEqual(b.benefits, []);
  });

  test('the larger of the tier and the membership discount; a tie goes to the membership', async () => {
    let b = await K.applies(A, 'k2', later); // silver 300 vs plus 500
    assert.deepEqual(b.tier, silverAt);
    assert.equal(b.memberships.length, 1);
    assert.deepEqual([b.discount_bp, b.discount_source], [500, 'membership']);
    b = await K.applies(A, 'k3', later); // silver 300 vs lite 300: a tie
    assert.deepEqual([b.discount_bp, b.discount_source], [300, 'membership']);
    b = await K.applies(A, 'k4', later); // gold 800 vs plus 500
    assert.deepEqual(b.tier, { code: 'gold', name: 'Gold', rank: 3, discount_bp: 800, since: U(t), grace_until: null });
    assert.deepEqual([b.discount_bp, b.discount_source], [800, 'tier']);
  });

  test('the entry tier (0 bp): shown with since null; discount 0 → source null; with a membership → membership', async () => {
    let b = await K.applies(S.keys.storefront, 'k5', later);
    assert.deepEqual(b.tier, { code: 'basic', name: 'Basic', rank: 1, discount_bp: 0, since: null, grace_until: null });
    assert.deepEqual([b.discount_bp, b.discount_source], [0, null]);
    b = await K.applies(A, 'k6', later);
    assert.deepEqual([b.tier.code, b.discount_bp, b.discount_source], ['basic', 500, 'membership']);
  });

  test('a shop without a programme: tier null', async () => {
    const N = await mkShop();
    await K.plan(N.keys.admin, 'plus', { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500 }, t);
    await K.customer(N.keys.admin, 'np1');
    await K.customer(N.keys.admin, 'np2');
    await K.buy(N.keys.admin, 'np1', 'plus', t);
    let b = await K.applies(N.keys.admin, 'np1', later);
    assert.deepEqual([b.tier, b.discount_bp, b.discount_source], [null, 500, 'membership']);
    b = await K.applies(N.keys.admin, 'np2', later);
    assert.deepEqual([b.tier, b.discount_bp, b.discount_source, b.benefits], [null, 0, null, []]);
  });
});
