// Prepaid packages (issue 8, /work/notes/packages.md): versioned package
// plans (PUT/GET /v1/package-plans), packages sold at the regular or the
// presale price inside the sale window with valid_until by the days rule in
// the shop's zone or a fixed instant, redemptions under the stated
// recognition rule (floor(price × n / uses)), per-visit and per-period
// limits in calendar days / ISO weeks / months of the shop's zone,
// reversals, refunds of the unused part, expiry into breakage dated
// valid_until, the ledger (journal rows by SQL, rebuyd verify), concurrency,
// and the segment filters package_uses_left and days_since_last_visit.
//
// rebuyd runs with --test-clock (its minute jobs stay off then, so nothing
// is swept: every expiry seen here is the lazy one of a read or a write);
// every package call carries Rebuy-Test-Now, and "now" is that instant.
// Each customer's packages are only ever used at instants that do not go
// back in time. Scenarios lie in 2031; the segment filters use the real
// clock, so that scenario is built at test instants before the real now and
// read without the header.
//
// Shops are in Asia/Shanghai (UTC+8, no daylight saving) unless said:
// 10:00 local is 02:00Z the same day; local midnight is 16:00Z the day
// before. Money in fen. Every expected figure is worked out by hand in the
// comment next to it; "rec(n)" = floor(price × n / uses).
//
// Every Package read goes through assertPackageShape (lib/packages.js):
// exact members, uses = redeemed + left + expired + refunded,
// price = recognised + deferred + breakage + refunded, the figures each
// status fixes, recognised = rec(uses_redeemed); detailed reads also
// uses_redeemed = Σ uses of the redemptions not reversed, in time order.
// Every response is checked against openapi.yaml by the harness client.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { U, plusUs, plusDays } from '../lib/tiers.js';
import {
  packageApi, packageCalls, at, planPath, PLANS, packagesPath, packagePath, redemptionsPath, reversalPath, refundPath,
  PLAN, PKG, RED, JR, packageJournal, assertJournalAgrees, assertLedgerSums, assertVerify, shopPackages,
  assertInsufficientUses, assertQuota, assertNotUsable, inLanes,
} from '../lib/packages.js';

let svc;
let c;
let P;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = packageApi(svc);
  P = packageCalls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Package Shop'), timezone: 'Asia/Shanghai', ...opts });
/** Local time in Shanghai → the instant, as rebuyd prints it. */
const L = (d, t = '10:00') => U(`${d}T${t}:00+08:00`);
const TEN_12 = 1000000000000;
const P0 = '2031-01-01T00:00:00Z';

/**
 * The last test of every describe: every package of the shop read at `now`
 * (through the API) agrees with its journal (SQL); every journal row of the
 * database sums to zero, every package's cached deferred = its journal sum;
 * rebuyd verify: 0 differences.
 */
async function ledgerAfter(S, now) {
  const all = await shopPackages(svc.db, S.shopId);
  assert.ok(all.length > 0, 'the scenario sold packages');
  for (const [cust, id] of all) {
    const p = await P.view(S.keys.readonly, cust, id, now);
    await assertJournalAgrees(svc.db, S.shopId, p);
  }
  await assertLedgerSums(svc.db);
  await assertVerify(svc);
}

// ---------------------------------------------------------------------------

describe('package plans: PUT/GET /v1/package-plans', () => {
  let S;
  let A;
  const T0 = L('2031-01-05', '10:00');
  const T1 = L('2031-01-05', '11:00');
  const T2 = L('2031-01-05', '12:00');
  const V1 = { name: 'Ski 10-visit pass', uses: 10, price: 40000, validity: { days: 180 }, presale: { price: 24000, until: '2031-12-01T00:00:00Z' } };
  const V2 = {
    name: 'Ski season', uses: 12, price: 45000, validity: { until: '2032-04-30T16:00:00Z' }, max_uses_per_visit: 2,
    max_uses_per_period: { uses: 3, period: 'week' }, sale: { from: null, until: '2032-01-01T00:00:00Z' }, presale: null, active: false,
  };
  // a presale price equal to the regular price is allowed (not above it)
  const V3 = { name: 'Ski 10', uses: 10, price: 40000, validity: { days: 3660 }, sale: { from: '2031-01-01T00:00:00Z', until: null }, presale: { price: 40000, until: '2031-02-01T00:00:00Z' } };
  let v1;
  let v2;
  let v3;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
  });

  test('every PUT is a new version: 201 + Location for version 1, then 200; defaults filled in; validity and sale always with both keys', async () => {
    let r = await c.put(planPath('ski-10'), V1, at(A, T0));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, '/v1/package-plans/ski-10');
    v1 = r.body;
    // validity {days: 180, until: null}; no limits, no sale; active by default; the shop's currency
    assert.deepEqual(v1, {
      code: 'ski-10', version: 1, name: 'Ski 10-visit pass', uses: 10, price: 40000, validity: { days: 180, until: null },
      max_uses_per_visit: null, max_uses_per_period: null, sale: null, presale: { price: 24000, until: U('2031-12-01T00:00:00Z') },
      active: true, currency: 'CNY', created_at: U(T0),
    });
    r = await c.put(planPath('ski-10'), V2, at(A, T1));
    assert.equal(r.status, 200, r.text);
    v2 = r.body;
    assert.deepEqual(v2, {
      code: 'ski-10', version: 2, name: 'Ski season', uses: 12, price: 45000, validity: { days: null, until: U('2032-04-30T16:00:00Z') },
      max_uses_per_visit: 2, max_uses_per_period: { uses: 3, period: 'week' }, sale: { from: null, until: U('2032-01-01T00:00:00Z') },
      presale: null, active: false, currency: 'CNY', created_at: U(T1),
    });
    v3 = await P.plan(A, 'ski-10', V3, T2, 200);
    assert.deepEqual(v3, PLAN('ski-10', 3, V3, T2));
    assert.deepEqual(v3.sale, { from: U('2031-01-01T00:00:00Z'), until: null });
  });

  test('GET: the latest version to every scope; ?version=N that one; 404 beyond or unknown; a bad version → 400', async () => {
    for (const key of Object.values(S.keys)) {
      const r = await c.get(planPath('ski-10'), { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, v3);
    }
    for (const [n, v] of [[1, v1], [2, v2], [3, v3]]) {
      const r = await c.get(`${planPath('ski-10')}?version=${n}`, { key: S.keys.readonly });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, v);
    }
    assertProblem(await c.get(`${planPath('ski-10')}?version=4`, { key: A }), 404, 'not_found');
    assertProblem(await c.get(planPath('nope'), { key: A }), 404, 'not_found');
    assertProblem(await c.get(`${planPath('nope')}?version=1`, { key: A }), 404, 'not_found');
    for (const q of ['abc', '1.5']) {
      assertProblem(await c.get(`${planPath('ski-10')}?version=${q}`, { key: A }), 400, 'invalid_parameter', '/query/version');
    }
  });

  test('the list: the latest version of each plan, by code; another shop sees none', async () => {
    await P.plan(A, 'zz-last', { name: 'Last', uses: 1, price: 1, validity: { days: 1 } }, T0, 201);
    await P.plan(A, 'a-first', { name: 'First', uses: 2, price: 0, validity: { until: '2031-06-01T00:00:00Z' } }, T0, 201);
    for (const key of Object.values(S.keys)) {
      const r = await c.get(PLANS, { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body), ['items']);
      // 'a-first' < 'ski-10' < 'zz-last'; ski-10 at its latest version (3)
      assert.deepEqual(r.body.items.map((p) => [p.code, p.version]), [['a-first', 1], ['ski-10', 3], ['zz-last', 1]]);
      assert.deepEqual(r.body.items[1], v3);
    }
    const O = await mkShop();
    assert.deepEqual((await c.get(PLANS, { key: O.keys.readonly })).body, { items: [] });
    assertProblem(await c.get(planPath('ski-10'), { key: O.keys.admin }), 404, 'not_found');
  });

  test('a bad code → 400 /path/code; a bad body → 422 at the pointer; nothing stored', async () => {
    const OK = { name: 'Ok', uses: 10, price: 1000, validity: { days: 30 } };
    for (const code of ['Ski-10', 'a_b', 'a.b', 'x'.repeat(65)]) {
      assertProblem(await c.put(planPath(code), OK, at(A, T0)), 400, 'invalid_parameter', '/path/code');
    }
    const I1 = '2031-03-01T00:00:00Z';
    const I2 = '2031-04-01T00:00:00Z';
    const cases = [
      [{ ...OK, name: undefined }, '/name'],
      [{ ...OK, name: '' }, '/name'],
      [{ ...OK, name: 'x'.repeat(201) }, '/name'],
      [{ ...OK, uses: undefined }, '/uses'],
      [{ ...OK, uses: 0 }, '/uses'],
      [{ ...OK, uses: 100001 }, '/uses'],
      [{ ...OK, uses: 1.5 }, '/uses'],
      [{ ...OK, uses: '10' }, '/uses'],
      [{ ...OK, price: undefined }, '/price'],
      [{ ...OK, price: -1 }, '/price'],
      [{ ...OK, price: TEN_12 + 1 }, '/price'],
      // validity: exactly one of days / until
      [{ ...OK, validity: undefined }, '/validity'],
      [{ ...OK, validity: { days: 30, until: I1 } }, '/validity'],
      [{ ...OK, validity: {} }, '/validity'],
      [{ ...OK, validity: 30 }, '/validity'],
      [{ ...OK, validity: { days: 0 } }, /^\/validity(\/days)?$/],
      [{ ...OK, validity: { days: 3661 } }, /^\/validity(\/days)?$/],
      [{ ...OK, validity: { until: 'next spring' } }, /^\/validity(\/until)?$/],
      [{ ...OK, max_uses_per_visit: 0 }, '/max_uses_per_visit'],
      [{ ...OK, max_uses_per_visit: 100001 }, '/max_uses_per_visit'],
      [{ ...OK, max_uses_per_period: { uses: 2, period: 'year' } }, '/max_uses_per_period/period'],
      [{ ...OK, max_uses_per_period: { uses: 2, period: 'Day' } }, '/max_uses_per_period/period'],
      [{ ...OK, max_uses_per_period: { uses: 2 } }, '/max_uses_per_period/period'],
      [{ ...OK, max_uses_per_period: { uses: 0, period: 'day' } }, '/max_uses_per_period/uses'],
      [{ ...OK, max_uses_per_period: { period: 'day' } }, '/max_uses_per_period/uses'],
      // sale: from < until
      [{ ...OK, sale: { from: I1, until: I1 } }, '/sale'],
      [{ ...OK, sale: { from: I2, until: I1 } }, '/sale'],
      // presale: both members; its price not above the regular price (1000)
      [{ ...OK, presale: { price: 1001, until: I1 } }, '/presale/price'],
      [{ ...OK, presale: { price: 500 } }, '/presale/until'],
      [{ ...OK, presale: { until: I1 } }, '/presale/price'],
      [{ ...OK, active: 'yes' }, '/active'],
      [{ ...OK, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await c.put(planPath('val-x'), body, at(A, T0));
      assertProblem(r, 422, 'validation_failed', pointer);
    }
    assertProblem(await c.get(planPath('val-x'), { key: A }), 404, 'not_found');
    // the limits themselves are fine
    const big = { name: 'é'.repeat(200), uses: 100000, price: TEN_12, validity: { days: 3660 }, max_uses_per_visit: 100000,
      max_uses_per_period: { uses: 100000, period: 'month' }, presale: { price: 0, until: I1 } };
    assert.deepEqual(await P.plan(A, 'lim-ok', big, T0, 201), PLAN('lim-ok', 1, big, T0));
  });

  test('only admin may PUT (storefront, readonly, platform → 403); every shop scope may read; no key → 401', async () => {
    const body = { name: 'x', uses: 1, price: 1, validity: { days: 1 } };
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put(planPath('scoped'), body, at(key, T0)), 403, 'forbidden');
    }
    assertProblem(await c.put(planPath('scoped'), body), 401, 'unauthenticated');
    for (const p of [PLANS, planPath('ski-10')]) {
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
    assertProblem(await c.get(planPath('scoped'), { key: A }), 404, 'not_found');
  });
});

// ---------------------------------------------------------------------------

describe('purchase: POST /v1/customers/{id}/packages', () => {
  let S;
  let A;
  let SF;
  const SKI = { name: 'Ski 10-visit pass', uses: 10, price: 40000, validity: { days: 30 }, presale: { price: 24000, until: '2031-03-01T00:00:00Z' } };
  const PRESALE_END = '2031-03-01T00:00:00Z'; // 1 March 08:00 in Shanghai
  const FIXED = { name: 'Season', uses: 5, price: 5000, validity: { until: '2031-06-30T16:00:00Z' } }; // 1 July 00:00 local
  const SALE = { from: '2031-03-10T00:00:00Z', until: '2031-03-20T00:00:00Z' };
  const ski = (id, cust, price, bought, until, extra = {}) => PKG({ id, cust, plan: 'ski-10', name: SKI.name, uses: 10, price, bought, until, ...extra });
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    SF = S.keys.storefront;
    await P.plan(A, 'ski-10', SKI, P0, 201);
    await P.plan(A, 'fixed', FIXED, P0, 201);
    await P.plan(A, 'sale', { name: 'Spring sale', uses: 3, price: 900, validity: { days: 10 }, sale: SALE }, P0, 201);
    await P.plan(A, 'sale-open', { name: 'Until spring', uses: 3, price: 900, validity: { days: 10 }, sale: { from: null, until: SALE.until } }, P0, 201);
    await P.plan(A, 'sale-late', { name: 'From spring', uses: 3, price: 900, validity: { days: 10 }, sale: { from: SALE.from, until: null } }, P0, 201);
    await P.plan(A, 'off', { name: 'Withdrawn', uses: 3, price: 900, validity: { days: 10 }, active: false }, P0, 201);
    for (const id of ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10']) await P.customer(A, id);
  });

  test('the presale price before presale.until, the regular price from it; valid_until = 00:00 local of purchase day + 31 (days 30)', async () => {
    const MAR1 = '2031-02-28T16:00:00Z'; // 1 March 00:00 in Shanghai, still 28 Feb in UTC
    const APR1 = '2031-03-31T16:00:00Z'; // 1 April 00:00 local: usable through 31 March
    // now < presale.until → 24000
    let p = await P.buy(SF, 'c1', { package_id: 'p-pre', plan: 'ski-10' }, MAR1);
    assert.deepEqual(p, ski('p-pre', 'c1', 24000, MAR1, APR1));
    // 1 µs before presale.until: still 24000, with an order
    p = await P.buy(SF, 'c1', { package_id: 'p-pre2', plan: 'ski-10', order_id: 'ord-pre2' }, plusUs(PRESALE_END, -1));
    assert.deepEqual(p, ski('p-pre2', 'c1', 24000, plusUs(PRESALE_END, -1), APR1, { order: 'ord-pre2' }));
    // at presale.until: the regular 40000
    p = await P.buy(A, 'c2', { package_id: 'p-reg', plan: 'ski-10', order_id: null }, PRESALE_END);
    assert.deepEqual(p, ski('p-reg', 'c2', 40000, PRESALE_END, APR1));
    // 1 March 23:59:59.999999 local: still bought on 1 March → 1 April 00:00 local
    p = await P.buy(A, 'c2', { package_id: 'p-late', plan: 'ski-10' }, '2031-03-01T15:59:59.999999Z');
    assert.deepEqual(p, ski('p-late', 'c2', 40000, '2031-03-01T15:59:59.999999Z', APR1));
    // 2 March 00:00 local (1 March in UTC) → 2 April 00:00 local
    p = await P.buy(A, 'c3', { package_id: 'p-next', plan: 'ski-10' }, '2031-03-01T16:00:00Z');
    assert.deepEqual(p, ski('p-next', 'c3', 40000, '2031-03-01T16:00:00Z', '2031-04-01T16:00:00Z'));
  });

  test('valid_until in a zone with daylight saving (Europe/Berlin): local midnight before and after the switch on 30 March 2031', async () => {
    const B = await mkShop({ timezone: 'Europe/Berlin', currency: 'EUR' });
    await P.plan(B.keys.admin, 'pass-30', { name: 'Pass 30', uses: 10, price: 5000, validity: { days: 30 } }, P0, 201);
    await P.plan(B.keys.admin, 'day-1', { name: 'Day pass', uses: 1, price: 900, validity: { days: 1 } }, P0, 201);
    await P.customer(B.keys.admin, 'b1');
    const pass = (id, bought, until) => PKG({ id, cust: 'b1', plan: 'pass-30', name: 'Pass 30', uses: 10, price: 5000, bought, until, currency: 'EUR' });
    // 1 March 00:30 CET (28 Feb 23:30Z) → 1 April 00:00 CEST = 31 March 22:00Z
    assert.deepEqual(await P.buy(B.keys.admin, 'b1', { package_id: 'b-1', plan: 'pass-30' }, '2031-02-28T23:30:00Z'),
      pass('b-1', '2031-02-28T23:30:00Z', '2031-03-31T22:00:00Z'));
    // 1 March 10:00 CET → the same
    assert.deepEqual(await P.buy(B.keys.admin, 'b1', { package_id: 'b-2', plan: 'pass-30' }, '2031-03-01T09:00:00Z'),
      pass('b-2', '2031-03-01T09:00:00Z', '2031-03-31T22:00:00Z'));
    // days 1, bought 1 March CET: 3 March 00:00 CET = 2 March 23:00Z
    assert.deepEqual(await P.buy(B.keys.admin, 'b1', { package_id: 'b-3', plan: 'day-1' }, '2031-03-01T09:00:00Z'),
      PKG({ id: 'b-3', cust: 'b1', plan: 'day-1', name: 'Day pass', uses: 1, price: 900, bought: '2031-03-01T09:00:00Z', until: '2031-03-02T23:00:00Z', currency: 'EUR' }));
  });

  test('a fixed validity.until: valid_until is that instant; at or after it the plan is not sold (422 /plan)', async () => {
    const UNTIL = FIXED.validity.until;
    const fixed = (id, cust, bought) => PKG({ id, cust, plan: 'fixed', name: 'Season', uses: 5, price: 5000, bought, until: UNTIL });
    assert.deepEqual(await P.buy(A, 'c4', { package_id: 'p-f1', plan: 'fixed' }, '2031-03-05T02:00:00Z'), fixed('p-f1', 'c4', '2031-03-05T02:00:00Z'));
    assert.deepEqual(await P.buy(A, 'c5', { package_id: 'p-f2', plan: 'fixed' }, plusUs(UNTIL, -1)), fixed('p-f2', 'c5', plusUs(UNTIL, -1)));
    assertProblem(await P.buyRaw(A, 'c5', { package_id: 'p-f3', plan: 'fixed' }, UNTIL), 422, 'validation_failed', '/plan');
    assert.deepEqual((await P.list(A, 'c5', UNTIL)).map((p) => p.package_id), ['p-f2']);
  });

  test('the sale window [from, until): refused 1 µs before from and at until (422 /plan); an open end; inactive or unknown plans', async () => {
    const refused = async (plan, id, now) => assertProblem(await P.buyRaw(A, 'c6', { package_id: id, plan }, now), 422, 'validation_failed', '/plan');
    await refused('sale', 'p-s0', plusUs(SALE.from, -1));
    // at from (10 March 08:00 local) → 00:00 local of 10 + 11 = 21 March
    const s1 = await P.buy(A, 'c6', { package_id: 'p-s1', plan: 'sale' }, SALE.from);
    assert.deepEqual([s1.price, s1.valid_until], [900, U('2031-03-20T16:00:00Z')]);
    const o1 = await P.buy(A, 'c6', { package_id: 'p-o1', plan: 'sale-open' }, SALE.from); // no from: on sale already
    assert.equal(o1.valid_until, U('2031-03-20T16:00:00Z'));
    // 1 µs before until: 20 March 07:59:59.999999 local → 31 March 00:00 local
    const s2 = await P.buy(A, 'c6', { package_id: 'p-s2', plan: 'sale' }, plusUs(SALE.until, -1));
    assert.equal(s2.valid_until, U('2031-03-30T16:00:00Z'));
    await refused('sale', 'p-s3', SALE.until);
    await refused('sale-open', 'p-o2', SALE.until);
    const l1 = await P.buy(A, 'c6', { package_id: 'p-l1', plan: 'sale-late' }, SALE.until); // no until: still on sale
    assert.equal(l1.plan, 'sale-late');
    await refused('off', 'p-off', SALE.until);
    await refused('nope', 'p-nope', SALE.until);
    // by purchased_at, then package_id: p-o1 and p-s1 were bought at one instant
    assert.deepEqual((await P.list(A, 'c6', SALE.until)).map((p) => p.package_id), ['p-o1', 'p-s1', 'p-s2', 'p-l1']);
  });

  test('the same package_id again: 200 with the package as it is now; different customer, plan or order → 409 /package_id', async () => {
    const T1 = '2031-03-02T02:00:00Z';
    const T2 = '2031-03-03T02:00:00Z';
    const T3 = '2031-03-04T02:00:00Z';
    const body = { package_id: 'p-idem', plan: 'ski-10', order_id: 'ord-1' };
    // bought 2 March 10:00 local (after the presale) → 40000; valid until 2 April 00:00 local
    const base = ski('p-idem', 'c7', 40000, T1, '2031-04-01T16:00:00Z', { order: 'ord-1' });
    assert.deepEqual(await P.buy(A, 'c7', body, T1), base);
    // one use: rec(1) = floor(40000 × 1 / 10) = 4000
    const r = await P.redeem(A, 'c7', 'p-idem', { redemption_id: 'r-idem' }, T2);
    assert.equal(r.redemption.recognised, 4000);
    assert.deepEqual(await P.buy(SF, 'c7', body, T3, 200), { ...base, uses_redeemed: 1, uses_left: 9, recognised: 4000, deferred: 36000 });
    for (const [cust, b] of [
      ['c7', { ...body, order_id: 'ord-2' }],
      ['c7', { package_id: 'p-idem', plan: 'ski-10' }],
      ['c7', { ...body, plan: 'fixed' }],
      ['c8', body],
    ]) {
      assertProblem(await P.buyRaw(A, cust, b, T3), 409, 'conflict', '/package_id');
    }
    assert.deepEqual((await P.list(A, 'c8', T3)), [], 'nothing sold to c8');
    assert.equal((await P.list(A, 'c7', T3)).length, 1);
  });

  test('Idempotency-Key: the same request again replays the first answer', async () => {
    const T = '2031-03-05T02:00:00Z';
    const key = uniq('buy');
    const body = { package_id: 'p-key', plan: 'fixed' };
    const r1 = await P.buyRaw(A, 'c8', body, T, { idempotencyKey: key });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await P.buyRaw(A, 'c8', body, T, { idempotencyKey: key });
    assert.deepEqual([r2.status, r2.headers['idempotent-replayed'], r2.text], [201, 'true', r1.text]);
    assert.equal((await P.list(A, 'c8', T)).length, 1);
  });

  test('404 for an unknown or erased customer; bad bodies → 422 at the pointer; scopes', async () => {
    const T = '2031-03-06T02:00:00Z';
    assertProblem(await P.buyRaw(A, 'ghost', { package_id: 'p-g', plan: 'fixed' }, T), 404, 'not_found');
    await P.customer(A, 'erased');
    const d = await c.del('/v1/customers/erased', { key: A });
    assert.equal(d.status, 204, d.text);
    assertProblem(await P.buyRaw(A, 'erased', { package_id: 'p-e', plan: 'fixed' }, T), 404, 'not_found');
    const ok = { package_id: 'p-v', plan: 'fixed' };
    const cases = [
      [{ plan: 'fixed' }, '/package_id'],
      [{ ...ok, package_id: '' }, '/package_id'],
      [{ ...ok, package_id: 'p 1' }, '/package_id'],
      [{ ...ok, package_id: 'x'.repeat(129) }, '/package_id'],
      [{ ...ok, package_id: 7 }, '/package_id'],
      [{ package_id: 'p-v' }, '/plan'],
      [{ ...ok, plan: 5 }, '/plan'],
      [{ ...ok, order_id: '' }, '/order_id'],
      [{ ...ok, order_id: 'x'.repeat(129) }, '/order_id'],
      [{ ...ok, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) assertProblem(await P.buyRaw(A, 'c9', body, T), 422, 'validation_failed', pointer);
    for (const key of [S.keys.readonly, svc.platformKey]) assertProblem(await P.buyRaw(key, 'c9', ok, T), 403, 'forbidden');
    assertProblem(await c.post(packagesPath('c9'), ok), 401, 'unauthenticated');
    assertProblem(await c.get(packagesPath('c9'), at(svc.platformKey, T)), 403, 'forbidden');
    assert.deepEqual(await P.list(S.keys.readonly, 'c9', T), [], 'nothing sold');
  });

  test('a package keeps the plan version it was sold under (uses, price, name, limits)', async () => {
    const T1 = L('2031-03-10');
    const T2 = L('2031-03-10', '11:00');
    const T3 = L('2031-03-10', '12:00');
    await P.plan(A, 'ver', { name: 'Ver 1', uses: 10, price: 1000, validity: { days: 30 }, max_uses_per_visit: 2 }, T1, 201);
    // 10 March local + 31 days = 10 April 00:00 local
    const v1 = PKG({ id: 'p-v1', cust: 'c10', plan: 'ver', version: 1, name: 'Ver 1', uses: 10, price: 1000, bought: T1, until: '2031-04-09T16:00:00Z', perVisit: 2 });
    assert.deepEqual(await P.buy(A, 'c10', { package_id: 'p-v1', plan: 'ver' }, T1), v1);
    await P.plan(A, 'ver', { name: 'Ver 2', uses: 20, price: 1500, validity: { days: 60 }, max_uses_per_period: { uses: 5, period: 'day' } }, T2, 200);
    // 10 March + 61 days = 10 May 00:00 local
    const v2 = PKG({ id: 'p-v2', cust: 'c10', plan: 'ver', version: 2, name: 'Ver 2', uses: 20, price: 1500, bought: T2, until: '2031-05-09T16:00:00Z', perPeriod: { uses: 5, period: 'day' } });
    assert.deepEqual(await P.buy(A, 'c10', { package_id: 'p-v2', plan: 'ver' }, T2), v2);
    assert.deepEqual(await P.view(A, 'c10', 'p-v1', T3), v1);
    // the old package keeps its per-visit limit of 2; the new one has none
    assertProblem(await P.redeemRaw(A, 'c10', 'p-v1', { redemption_id: 'rv-1', uses: 3 }, T3), 422, 'validation_failed', '/uses');
    // 3 of 20 uses at 1500: rec(3) = floor(4500 / 20) = 225
    const r = await P.redeem(A, 'c10', 'p-v2', { redemption_id: 'rv-2', uses: 3 }, T3);
    assert.deepEqual(r.package, { ...v2, uses_redeemed: 3, uses_left: 17, recognised: 225, deferred: 1275 });
  });

  test('GET: one package (with its redemptions), the list by status; bad status → 400; unknown → 404', async () => {
    const T = '2031-03-06T02:00:00Z';
    assert.deepEqual((await P.list(S.keys.readonly, 'c2', T)).map((p) => p.package_id), ['p-reg', 'p-late']);
    assert.deepEqual((await P.list(S.keys.readonly, 'c2', T, 'active')).map((p) => p.package_id), ['p-reg', 'p-late']);
    for (const st of ['used_up', 'expired', 'refunded']) assert.deepEqual(await P.list(S.keys.readonly, 'c2', T, st), []);
    assertProblem(await c.get(`${packagesPath('c2')}?status=open`, at(A, T)), 400, 'invalid_parameter', '/query/status');
    const one = await P.get(S.keys.storefront, 'c7', 'p-idem', T);
    assert.deepEqual(one.redemptions, [RED('r-idem', 'p-idem', 1, 4000, '2031-03-03T02:00:00Z')]);
    assertProblem(await c.get(packagePath('c2', 'p-idem'), at(A, T)), 404, 'not_found'); // c7's, not c2's
    assertProblem(await c.get(packagePath('c2', 'nope'), at(A, T)), 404, 'not_found');
    assertProblem(await c.get(packagesPath('ghost'), at(A, T)), 404, 'not_found');
    assertProblem(await c.get(packagePath('ghost', 'p-reg'), at(A, T)), 404, 'not_found');
  });

  test('the journal: package_purchase moves the price paid from cash to package_deferred', async () => {
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'p-pre'),
      [JR('package_purchase', '2031-02-28T16:00:00Z', { package_deferred: 24000, cash: -24000 })]);
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'p-idem'), [
      JR('package_purchase', '2031-03-02T02:00:00Z', { package_deferred: 40000, cash: -40000 }),
      JR('redemption', '2031-03-03T02:00:00Z', { package_deferred: -4000, revenue: 4000 }),
    ]);
    // the refused purchases left nothing
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'p-s3'), []);
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, '2031-07-01T00:00:00Z'); // after every instant of the describe (c5 at 30 June 16:00Z)
  });
});

// ---------------------------------------------------------------------------

describe('redemption: recognised revenue by the stated rule', () => {
  let S;
  let A;
  const B0 = L('2031-04-01');
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await P.plan(A, 'beer-101', { name: '101 beers', uses: 101, price: 2018, validity: { days: 365 } }, P0, 201);
    await P.plan(A, 'ten-999', { name: 'Ten for 9.99', uses: 10, price: 999, validity: { days: 365 } }, P0, 201);
    await P.plan(A, 'free-5', { name: 'Five free', uses: 5, price: 0, validity: { days: 365 } }, P0, 201);
    for (const id of ['u1', 'u2', 'u3']) await P.customer(A, id);
  });

  test('101 beers for 2018: 101 single uses recognise 19 (uses 1 and 51) or 20 (the other 99), 2018 in all', async () => {
    await P.buy(A, 'u1', { package_id: 'beer', plan: 'beer-101' }, B0);
    // rec(n) = floor(2018 n / 101) = 19 n + floor(99 n / 101): it grows by 19 where floor(99 n / 101) does
    // not grow, i.e. where ceil(2 n / 101) steps: n = 1 (0 → 1) and n = 51 (102/101 → 2); elsewhere by 20.
    // rec(1) = 19; rec(50) = floor(100900 / 101) = 999; rec(51) = floor(102918 / 101) = 1018; 2 × 19 + 99 × 20 = 2018.
    const expected = Array.from({ length: 101 }, (_, i) => (i === 0 || i === 50 ? 19 : 20));
    const got = [];
    for (let n = 1; n <= 101; n++) {
      // uses omitted: 1 by default; the first one with an order
      const body = n === 1 ? { redemption_id: `b-${n}`, order_id: 'ord-b1' } : { redemption_id: `b-${n}` };
      const r = await P.redeem(S.keys.storefront, 'u1', 'beer', body, plusUs(B0, n * 1000000));
      got.push(r.redemption.recognised);
      assert.deepEqual([r.redemption.uses, r.package.uses_redeemed, r.package.uses_left], [1, n, 101 - n]);
      if (n === 1) assert.deepEqual(r.redemption, RED('b-1', 'beer', 1, 19, plusUs(B0, 1000000), { order: 'ord-b1' }));
      if (n === 3) assert.deepEqual([r.package.recognised, r.package.deferred], [59, 1959]); // 19 + 20 + 20
      if (n === 50) assert.deepEqual([r.package.recognised, r.package.deferred], [999, 1019]);
      if (n === 51) assert.deepEqual([r.package.recognised, r.package.deferred], [1018, 1000]);
    }
    assert.deepEqual(got, expected);
    assert.equal(got.reduce((s, x) => s + x, 0), 2018);
    const END = plusUs(B0, 102 * 1000000);
    const p = await P.get(A, 'u1', 'beer', END);
    assert.deepEqual([p.status, p.uses_redeemed, p.uses_left, p.recognised, p.deferred], ['used_up', 101, 0, 2018, 0]);
    assert.deepEqual(p.redemptions.map((x) => x.recognised), expected);
    assert.deepEqual(p.redemptions.map((x) => x.redemption_id), Array.from({ length: 101 }, (_, i) => `b-${i + 1}`));
    // used up: one more → insufficient_uses with 0 left
    assertInsufficientUses(await P.redeemRaw(A, 'u1', 'beer', { redemption_id: 'b-102' }, END), 0);
    const j = await packageJournal(svc.db, S.shopId, 'beer');
    assert.equal(j.length, 102, 'the purchase and 101 redemptions');
    assert.deepEqual(j.slice(1).map(([kind, , e]) => [kind, e.revenue, e.package_deferred]), expected.map((x) => ['redemption', x, -x]));
  });

  test('several uses at once recognise the difference of rec() too; more than left → insufficient_uses with uses_left', async () => {
    const T0 = L('2031-04-02');
    const base = PKG({ id: 'ten', cust: 'u2', plan: 'ten-999', name: 'Ten for 9.99', uses: 10, price: 999, bought: T0, until: L('2032-04-02', '00:00') });
    // days 365: 2 April 2031 + 366 days = 2 April 2032 00:00 local (the year holds 29 February 2032)
    assert.deepEqual(await P.buy(A, 'u2', { package_id: 'ten', plan: 'ten-999' }, T0), base);
    // 3 uses: rec(3) = floor(2997 / 10) = 299
    let r = await P.redeem(A, 'u2', 'ten', { redemption_id: 't-1', uses: 3 }, L('2031-04-03'));
    assert.deepEqual(r.redemption, RED('t-1', 'ten', 3, 299, L('2031-04-03')));
    assert.deepEqual(r.package, { ...base, uses_redeemed: 3, uses_left: 7, recognised: 299, deferred: 700 });
    // 4 more: rec(7) = floor(6993 / 10) = 699 → 400
    r = await P.redeem(A, 'u2', 'ten', { redemption_id: 't-2', uses: 4, order_id: 'ord-t2' }, L('2031-04-04'));
    assert.deepEqual(r.redemption, RED('t-2', 'ten', 4, 400, L('2031-04-04'), { order: 'ord-t2' }));
    // 4 when 3 are left → 422 insufficient_uses, uses_left 3; nothing recorded
    assertInsufficientUses(await P.redeemRaw(A, 'u2', 'ten', { redemption_id: 't-3', uses: 4 }, L('2031-04-05')), 3);
    // the last 3: rec(10) = 999 → 300; used up
    r = await P.redeem(A, 'u2', 'ten', { redemption_id: 't-4', uses: 3 }, L('2031-04-05'));
    assert.equal(r.redemption.recognised, 300);
    assert.deepEqual(r.package, { ...base, uses_redeemed: 10, uses_left: 0, recognised: 999, deferred: 0, status: 'used_up' });
    assertInsufficientUses(await P.redeemRaw(A, 'u2', 'ten', { redemption_id: 't-5' }, L('2031-04-06')), 0);
    assert.deepEqual((await P.get(A, 'u2', 'ten', L('2031-04-06'))).redemptions.map((x) => x.redemption_id), ['t-1', 't-2', 't-4']);
    assert.deepEqual(await P.list(A, 'u2', L('2031-04-06'), 'used_up').then((l) => l.map((p) => p.package_id)), ['ten']);
  });

  test('a free package (price 0): every redemption recognises 0', async () => {
    const T0 = L('2031-04-02');
    await P.buy(A, 'u3', { package_id: 'free', plan: 'free-5' }, T0);
    const r = await P.redeem(A, 'u3', 'free', { redemption_id: 'f-1', uses: 2 }, L('2031-04-03'));
    assert.deepEqual([r.redemption.recognised, r.package.recognised, r.package.deferred, r.package.uses_left], [0, 0, 0, 3]);
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, L('2031-05-01'));
  });
});

// ---------------------------------------------------------------------------

describe('redemption: per-visit and per-period limits, replays, expiry', () => {
  let S;
  let A;
  const GYM = { uses: 30, price: 30000, validity: { days: 365 } }; // 1000 per use: rec(n) = 1000 n
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await P.plan(A, 'coffee', { name: 'Coffee card', uses: 20, price: 3000, validity: { days: 365 }, max_uses_per_visit: 2 }, P0, 201);
    await P.plan(A, 'gym-day', { name: 'Gym (day)', ...GYM, max_uses_per_period: { uses: 2, period: 'day' } }, P0, 201);
    await P.plan(A, 'gym-week', { name: 'Gym (week)', ...GYM, max_uses_per_period: { uses: 3, period: 'week' } }, P0, 201);
    await P.plan(A, 'gym-month', { name: 'Gym (month)', ...GYM, max_uses_per_period: { uses: 4, period: 'month' } }, P0, 201);
    await P.plan(A, 'five', { name: 'Five', uses: 5, price: 500, validity: { days: 30 } }, P0, 201);
    for (const id of ['v1', 'd1', 'w1', 'm1', 'i1', 'r1', 'r2', 'e1']) await P.customer(A, id);
  });

  test('max_uses_per_visit: more uses in one redemption → 422 /uses; bad bodies → 422 at the pointer', async () => {
    const T0 = L('2031-03-01');
    const T1 = L('2031-03-02');
    await P.buy(A, 'v1', { package_id: 'cof', plan: 'coffee' }, T0);
    assertProblem(await P.redeemRaw(A, 'v1', 'cof', { redemption_id: 'cv-1', uses: 3 }, T1), 422, 'validation_failed', '/uses');
    // 2 of 20 at 3000: rec(2) = floor(6000 / 20) = 300
    const r = await P.redeem(A, 'v1', 'cof', { redemption_id: 'cv-2', uses: 2 }, T1);
    assert.deepEqual([r.redemption.recognised, r.package.uses_left], [300, 18]);
    const cases = [
      [{ uses: 1 }, '/redemption_id'],
      [{ redemption_id: '' }, '/redemption_id'],
      [{ redemption_id: 'x'.repeat(129) }, '/redemption_id'],
      [{ redemption_id: 'cv-x', uses: 0 }, '/uses'],
      [{ redemption_id: 'cv-x', uses: 100001 }, '/uses'],
      [{ redemption_id: 'cv-x', uses: 1.5 }, '/uses'],
      [{ redemption_id: 'cv-x', order_id: '' }, '/order_id'],
      [{ redemption_id: 'cv-x', colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) assertProblem(await P.redeemRaw(A, 'v1', 'cof', body, T1), 422, 'validation_failed', pointer);
    assertProblem(await P.redeemRaw(A, 'v1', 'nope', { redemption_id: 'cv-3' }, T1), 404, 'not_found');
    assertProblem(await P.redeemRaw(A, 'ghost', 'cof', { redemption_id: 'cv-3' }, T1), 404, 'not_found');
    assertProblem(await P.redeemRaw(A, 'd1', 'cof', { redemption_id: 'cv-3' }, T1), 404, 'not_found'); // v1's package
    assertProblem(await P.redeemRaw(S.keys.readonly, 'v1', 'cof', { redemption_id: 'cv-3' }, T1), 403, 'forbidden');
    assert.equal((await P.get(A, 'v1', 'cof', T1)).redemptions.length, 1, 'only cv-2 recorded');
  });

  test('a day limit counts the local calendar day: 16:00Z starts a new one; reversals give their uses back', async () => {
    await P.buy(A, 'd1', { package_id: 'day', plan: 'gym-day' }, L('2031-03-03'));
    await P.redeem(A, 'd1', 'day', { redemption_id: 'dd-1' }, L('2031-03-03', '23:00'));
    await P.redeem(A, 'd1', 'day', { redemption_id: 'dd-2' }, L('2031-03-03', '23:30'));
    // 3 March 23:59:59.999999 local: 2 of 2 used today
    assertQuota(await P.redeemRaw(A, 'd1', 'day', { redemption_id: 'dd-3' }, '2031-03-03T15:59:59.999999Z'), 2, 2, 0);
    // 4 March 00:00 local (still 3 March in UTC, where 2 were used): a new day
    const r = await P.redeem(A, 'd1', 'day', { redemption_id: 'dd-4' }, '2031-03-03T16:00:00Z');
    assert.deepEqual([r.redemption.recognised, r.package.uses_redeemed, r.package.recognised], [1000, 3, 3000]);
    // 2 more on 4 March: 1 used → quota 2, used 1, remaining 1
    assertQuota(await P.redeemRaw(A, 'd1', 'day', { redemption_id: 'dd-5', uses: 2 }, L('2031-03-04')), 2, 1, 1);
    // reverse dd-4 (4 March): its use no longer counts → 2 fit
    await P.reverse(A, 'd1', 'day', 'dd-4', 'scanned twice', L('2031-03-04'));
    const r2 = await P.redeem(A, 'd1', 'day', { redemption_id: 'dd-6', uses: 2 }, L('2031-03-04'));
    assert.deepEqual([r2.package.uses_redeemed, r2.package.recognised], [4, 4000]);
    assertQuota(await P.redeemRaw(A, 'd1', 'day', { redemption_id: 'dd-7' }, '2031-03-04T15:59:59Z'), 2, 2, 0);
    // the refused ones left nothing
    const p = await P.get(A, 'd1', 'day', '2031-03-04T15:59:59Z');
    assert.deepEqual(p.redemptions.map((x) => [x.redemption_id, x.reversed_at !== null]), [['dd-1', false], ['dd-2', false], ['dd-4', true], ['dd-6', false]]);
  });

  test('a week limit counts the ISO week (Monday to Sunday) of the shop\'s zone', async () => {
    // Mon 3 March 2031 … Sun 9 March; Mon 10 March 00:00 local = 9 March 16:00Z (a Sunday in UTC)
    await P.buy(A, 'w1', { package_id: 'week', plan: 'gym-week' }, L('2031-03-03', '09:00'));
    for (const [id, d] of [['ww-1', '2031-03-03'], ['ww-2', '2031-03-05'], ['ww-3', '2031-03-08']]) {
      await P.redeem(A, 'w1', 'week', { redemption_id: id }, L(d));
    }
    // Sunday 9 March is still the same ISO week (a week from Sunday would start afresh here)
    assertQuota(await P.redeemRaw(A, 'w1', 'week', { redemption_id: 'ww-4' }, L('2031-03-09')), 3, 3, 0);
    assertQuota(await P.redeemRaw(A, 'w1', 'week', { redemption_id: 'ww-4' }, '2031-03-09T15:59:59.999999Z'), 3, 3, 0);
    // Monday 00:00 local: a new week
    const r = await P.redeem(A, 'w1', 'week', { redemption_id: 'ww-5', uses: 2 }, '2031-03-09T16:00:00Z');
    assert.deepEqual([r.package.uses_redeemed, r.package.recognised], [5, 5000]);
    assertQuota(await P.redeemRaw(A, 'w1', 'week', { redemption_id: 'ww-6', uses: 2 }, L('2031-03-12')), 3, 2, 1);
  });

  test('a month limit counts the local calendar month', async () => {
    await P.buy(A, 'm1', { package_id: 'month', plan: 'gym-month' }, L('2031-03-01', '09:00'));
    await P.redeem(A, 'm1', 'month', { redemption_id: 'mm-1', uses: 2 }, L('2031-03-01'));
    await P.redeem(A, 'm1', 'month', { redemption_id: 'mm-2' }, L('2031-03-15'));
    // 3 of 4 used in March: 2 more → quota 4, used 3, remaining 1
    assertQuota(await P.redeemRaw(A, 'm1', 'month', { redemption_id: 'mm-3', uses: 2 }, L('2031-03-31', '23:00')), 4, 3, 1);
    await P.redeem(A, 'm1', 'month', { redemption_id: 'mm-4' }, L('2031-03-31', '23:00'));
    assertQuota(await P.redeemRaw(A, 'm1', 'month', { redemption_id: 'mm-5' }, '2031-03-31T15:59:59.999999Z'), 4, 4, 0);
    // 1 April 00:00 local (31 March in UTC): a new month, all 4 fit
    const r = await P.redeem(A, 'm1', 'month', { redemption_id: 'mm-6', uses: 4 }, '2031-03-31T16:00:00Z');
    assert.deepEqual([r.package.uses_redeemed, r.package.uses_left, r.package.recognised, r.package.deferred], [8, 22, 8000, 22000]);
    assertQuota(await P.redeemRaw(A, 'm1', 'month', { redemption_id: 'mm-7' }, L('2031-04-01')), 4, 4, 0);
  });

  test('more uses than left → 422 insufficient_uses with uses_left; used up → uses_left 0', async () => {
    await P.buy(A, 'i1', { package_id: 'ins', plan: 'five' }, L('2031-03-01'));
    // 3 of 5 at 500: rec(3) = 300
    assert.equal((await P.redeem(A, 'i1', 'ins', { redemption_id: 'in-1', uses: 3 }, L('2031-03-02'))).redemption.recognised, 300);
    assertInsufficientUses(await P.redeemRaw(A, 'i1', 'ins', { redemption_id: 'in-2', uses: 3 }, L('2031-03-03')), 2);
    const r = await P.redeem(A, 'i1', 'ins', { redemption_id: 'in-3', uses: 2 }, L('2031-03-03'));
    assert.deepEqual([r.redemption.recognised, r.package.status], [200, 'used_up']);
    assertInsufficientUses(await P.redeemRaw(A, 'i1', 'ins', { redemption_id: 'in-4' }, L('2031-03-04')), 0);
  });

  test('the same redemption_id again: 200 with the same redemption and the package as it is now; different → 409 /redemption_id', async () => {
    const T0 = L('2031-03-01');
    await P.buy(A, 'r1', { package_id: 'rp', plan: 'five' }, T0);
    await P.buy(A, 'r1', { package_id: 'rp2', plan: 'five' }, T0);
    const body = { redemption_id: 'red-1', uses: 2, order_id: 'o-1' };
    const first = await P.redeem(A, 'r1', 'rp', body, L('2031-03-02'));
    // rec(2) = floor(1000 / 5) = 200
    const red1 = RED('red-1', 'rp', 2, 200, L('2031-03-02'), { order: 'o-1' });
    assert.deepEqual(first.redemption, red1);
    await P.redeem(A, 'r1', 'rp', { redemption_id: 'red-2' }, L('2031-03-03')); // rec(3) − rec(2) = 300 − 200 = 100
    const again = await P.redeem(S.keys.storefront, 'r1', 'rp', body, L('2031-03-04'), 200);
    assert.deepEqual(again.redemption, red1);
    assert.deepEqual([again.package.uses_redeemed, again.package.uses_left, again.package.recognised], [3, 2, 300]);
    for (const [pkg, b] of [
      ['rp', { ...body, uses: 1 }],
      ['rp', { ...body, order_id: 'o-2' }],
      ['rp', { redemption_id: 'red-1', uses: 2 }],
      ['rp2', body],
    ]) {
      assertProblem(await P.redeemRaw(A, 'r1', pkg, b, L('2031-03-04')), 409, 'conflict', '/redemption_id');
    }
    assert.deepEqual((await P.get(A, 'r1', 'rp', L('2031-03-04'))).redemptions.map((x) => x.redemption_id), ['red-1', 'red-2']);
    assert.deepEqual((await P.get(A, 'r1', 'rp2', L('2031-03-04'))).redemptions, []);
    // Idempotency-Key: the first answer again, marked replayed
    const key = uniq('redeem');
    const k1 = await P.redeemRaw(A, 'r1', 'rp2', { redemption_id: 'red-3' }, L('2031-03-05'), { idempotencyKey: key });
    assert.equal(k1.status, 201, k1.text);
    const k2 = await P.redeemRaw(A, 'r1', 'rp2', { redemption_id: 'red-3' }, L('2031-03-05'), { idempotencyKey: key });
    assert.deepEqual([k2.status, k2.headers['idempotent-replayed'], k2.text], [201, 'true', k1.text]);
  });

  test('at valid_until the package is expired: a redemption 1 µs before succeeds, at it → 422 package_not_usable', async () => {
    // bought 1 March 00:00 local, days 30 → valid_until 1 April 00:00 local
    const VU = '2031-03-31T16:00:00Z';
    const p = await P.buy(A, 'e1', { package_id: 'exp', plan: 'five' }, '2031-02-28T16:00:00Z');
    assert.equal(p.valid_until, U(VU));
    const r = await P.redeem(A, 'e1', 'exp', { redemption_id: 'ex-1' }, plusUs(VU, -1));
    assert.deepEqual([r.redemption.recognised, r.package.status], [100, 'active']); // rec(1) = 100
    assertNotUsable(await P.redeemRaw(A, 'e1', 'exp', { redemption_id: 'ex-2' }, VU), /expire/i);
    // 4 uses expired: breakage = deferred = 500 − 100
    assert.deepEqual(await P.view(A, 'e1', 'exp', VU), {
      ...PKG({ id: 'exp', cust: 'e1', plan: 'five', name: 'Five', uses: 5, price: 500, bought: '2031-02-28T16:00:00Z', until: VU }),
      uses_redeemed: 1, uses_left: 0, uses_expired: 4, recognised: 100, deferred: 0, breakage: 400, status: 'expired',
    });
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, L('2031-05-01'));
  });
});

// ---------------------------------------------------------------------------

describe('reversal: POST …/redemptions/{redemption_id}/reversal (admin)', () => {
  let S;
  let A;
  const R = (n) => L(`2031-05-0${n}`);
  let base;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await P.plan(A, 'ten-999', { name: 'Ten for 9.99', uses: 10, price: 999, validity: { days: 365 } }, P0, 201);
    await P.customer(A, 'x1');
    // days 365: 1 May 2031 + 366 days = 1 May 2032 00:00 local (that year holds 29 February 2032)
    base = PKG({ id: 'px', cust: 'x1', plan: 'ten-999', name: 'Ten for 9.99', uses: 10, price: 999, bought: R(1), until: L('2032-05-01', '00:00') });
    assert.deepEqual(await P.buy(A, 'x1', { package_id: 'px', plan: 'ten-999' }, R(1)), base);
    // rec(1) = 99; rec(3) = floor(2997 / 10) = 299 → 200; rec(4) = floor(3996 / 10) = 399 → 100
    assert.equal((await P.redeem(A, 'x1', 'px', { redemption_id: 'x-1' }, R(2))).redemption.recognised, 99);
    assert.equal((await P.redeem(A, 'x1', 'px', { redemption_id: 'x-2', uses: 2 }, R(3))).redemption.recognised, 200);
    assert.equal((await P.redeem(A, 'x1', 'px', { redemption_id: 'x-3' }, R(4))).redemption.recognised, 100);
  });

  test('only admin: storefront, readonly → 403; nothing changes', async () => {
    for (const key of [S.keys.storefront, S.keys.readonly]) {
      assertProblem(await P.reverseRaw(key, 'x1', 'px', 'x-1', { reason: 'wrong card' }, R(5)), 403, 'forbidden');
    }
    assert.deepEqual(await P.view(A, 'x1', 'px', R(5)), { ...base, uses_redeemed: 4, uses_left: 6, recognised: 399, deferred: 600 });
  });

  test('a reversal gives the uses back and takes back rec(n) − rec(n − uses) — not the redemption\'s own figure; again → 200', async () => {
    // x-1 recognised 99, but n 4 → 3 takes back rec(4) − rec(3) = 399 − 299 = 100
    let r = await P.reverse(A, 'x1', 'px', 'x-1', 'wrong card', R(5));
    const x1 = RED('x-1', 'px', 1, 99, R(2), { reversed: R(5), reason: 'wrong card' });
    assert.deepEqual(r.redemption, x1);
    assert.deepEqual(r.package, { ...base, uses_redeemed: 3, uses_left: 7, recognised: 299, deferred: 700 });
    r = await P.reverse(A, 'x1', 'px', 'x-1', 'wrong card', R(6), 200);
    assert.deepEqual(r.redemption, x1);
    assert.equal(r.package.recognised, 299, 'taken back once');
    // x-2 (2 uses): n 3 → 1, rec(3) − rec(1) = 299 − 99 = 200
    r = await P.reverse(A, 'x1', 'px', 'x-2', 'test scan', R(6));
    assert.deepEqual(r.package, { ...base, uses_redeemed: 1, uses_left: 9, recognised: 99, deferred: 900 });
    const p = await P.get(A, 'x1', 'px', R(6));
    assert.deepEqual(p.redemptions, [x1, RED('x-2', 'px', 2, 200, R(3), { reversed: R(6), reason: 'test scan' }), RED('x-3', 'px', 1, 100, R(4))]);
  });

  test('the uses come back: 9 more use the package up; a reversal then makes it active again', async () => {
    // n 1 → 10: rec(10) − rec(1) = 999 − 99 = 900
    let r = await P.redeem(A, 'x1', 'px', { redemption_id: 'x-4', uses: 9 }, R(7));
    assert.deepEqual([r.redemption.recognised, r.package.status, r.package.recognised], [900, 'used_up', 999]);
    // reverse x-3: n 10 → 9, rec(10) − rec(9) = 999 − floor(8991 / 10) = 999 − 899 = 100
    r = await P.reverse(A, 'x1', 'px', 'x-3', 'refused at the door', R(8));
    assert.deepEqual(r.package, { ...base, uses_redeemed: 9, uses_left: 1, recognised: 899, deferred: 100 });
  });

  test('unknown redemption → 404; a bad reason → 422 /reason', async () => {
    assertProblem(await P.reverseRaw(A, 'x1', 'px', 'nope', { reason: 'x' }, R(8)), 404, 'not_found');
    assertProblem(await P.reverseRaw(A, 'x1', 'nope', 'x-4', { reason: 'x' }, R(8)), 404, 'not_found');
    for (const body of [{}, { reason: '' }, { reason: 'x'.repeat(501) }, { reason: 5 }]) {
      assertProblem(await P.reverseRaw(A, 'x1', 'px', 'x-4', body, R(8)), 422, 'validation_failed', '/reason');
    }
    assert.equal((await P.get(A, 'x1', 'px', R(8))).redemptions.find((x) => x.redemption_id === 'x-4').reversed_at, null);
  });

  test('the journal: each reversal is a redemption_reversal moving its figure back to package_deferred', async () => {
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'px'), [
      JR('package_purchase', R(1), { package_deferred: 999, cash: -999 }),
      JR('redemption', R(2), { package_deferred: -99, revenue: 99 }),
      JR('redemption', R(3), { package_deferred: -200, revenue: 200 }),
      JR('redemption', R(4), { package_deferred: -100, revenue: 100 }),
      JR('redemption_reversal', R(5), { package_deferred: 100, revenue: -100 }),
      JR('redemption_reversal', R(6), { package_deferred: 200, revenue: -200 }),
      JR('redemption', R(7), { package_deferred: -900, revenue: 900 }),
      JR('redemption_reversal', R(8), { package_deferred: 100, revenue: -100 }),
    ]);
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, R(9));
  });
});

// ---------------------------------------------------------------------------

describe('refund of the unused part: POST …/packages/{package_id}/refund', () => {
  let S;
  let A;
  let SF;
  const F = (n) => L(`2031-05-0${n}`);
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    SF = S.keys.storefront;
    await P.plan(A, 'ten-999', { name: 'Ten for 9.99', uses: 10, price: 999, validity: { days: 365 } }, P0, 201);
    await P.plan(A, 'beer-101', { name: '101 beers', uses: 101, price: 2018, validity: { days: 365 } }, P0, 201);
    await P.plan(A, 'short', { name: 'Day pass', uses: 2, price: 300, validity: { days: 1 } }, P0, 201);
    for (const id of ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']) await P.customer(A, id);
  });

  test('3 of 10 used at 999: the customer gets 999 − rec(3) = 700 (not 7 × 99.9 = 699); refunded; again → 200 the same', async () => {
    // 1 May 2031 + 366 days = 1 May 2032 00:00 local (29 February 2032 lies between)
    const base = PKG({ id: 'pf1', cust: 'f1', plan: 'ten-999', name: 'Ten for 9.99', uses: 10, price: 999, bought: F(1), until: L('2032-05-01', '00:00') });
    await P.buy(A, 'f1', { package_id: 'pf1', plan: 'ten-999' }, F(1));
    await P.redeem(A, 'f1', 'pf1', { redemption_id: 'f1-1', uses: 3 }, F(2)); // rec(3) = 299
    // no body at all, by the storefront
    const r = await P.refund(SF, 'f1', 'pf1', undefined, F(3));
    const refunded = { ...base, uses_redeemed: 3, uses_left: 0, uses_refunded: 7, recognised: 299, deferred: 0, refunded: 700, status: 'refunded' };
    assert.deepEqual(r, { package: refunded, refund: { amount: 700, uses: 7, at: F(3) } });
    assert.deepEqual(await P.refund(A, 'f1', 'pf1', {}, F(4), 200), { package: refunded, refund: { amount: 700, uses: 7, at: F(3) } });
    // a refunded package takes neither redemptions nor reversals
    assertNotUsable(await P.redeemRaw(A, 'f1', 'pf1', { redemption_id: 'f1-2' }, F(4)), /refund/i);
    assertNotUsable(await P.reverseRaw(A, 'f1', 'pf1', 'f1-1', { reason: 'late' }, F(4)));
    assert.deepEqual(await P.view(A, 'f1', 'pf1', F(5)), refunded);
    assert.deepEqual((await P.list(A, 'f1', F(5), 'refunded')).map((p) => p.package_id), ['pf1']);
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'pf1'), [
      JR('package_purchase', F(1), { package_deferred: 999, cash: -999 }),
      JR('redemption', F(2), { package_deferred: -299, revenue: 299 }),
      JR('package_refund', F(3), { package_deferred: -700, cash: 700 }),
    ]);
  });

  test('50 of 101 beers used: 2018 − rec(50) = 2018 − 999 = 1019 back for 51 uses, with a reason', async () => {
    await P.buy(A, 'f2', { package_id: 'pf2', plan: 'beer-101' }, F(1));
    await P.redeem(A, 'f2', 'pf2', { redemption_id: 'f2-1', uses: 50 }, F(2));
    const r = await P.refund(A, 'f2', 'pf2', { reason: 'moving away' }, F(3));
    assert.deepEqual(r.refund, { amount: 1019, uses: 51, at: F(3) });
    assert.deepEqual([r.package.recognised, r.package.refunded, r.package.uses_refunded], [999, 1019, 51]);
  });

  test('nothing used: the whole price; after a reversal the net uses count (3 − 1 = 2: 999 − 199 = 800)', async () => {
    await P.buy(A, 'f3', { package_id: 'pf3', plan: 'ten-999' }, F(1));
    assert.deepEqual((await P.refund(A, 'f3', 'pf3', {}, F(2))).refund, { amount: 999, uses: 10, at: F(2) });
    await P.buy(A, 'f6', { package_id: 'pf6', plan: 'ten-999' }, F(1));
    await P.redeem(A, 'f6', 'pf6', { redemption_id: 'f6-1', uses: 2 }, F(2));
    await P.redeem(A, 'f6', 'pf6', { redemption_id: 'f6-2' }, F(2));
    await P.reverse(A, 'f6', 'pf6', 'f6-2', 'mistake', F(3));
    // n = 2: rec(2) = floor(1998 / 10) = 199 → 800 back for 8 uses
    const r = await P.refund(A, 'f6', 'pf6', {}, F(4));
    assert.deepEqual([r.refund.amount, r.refund.uses, r.package.recognised, r.package.uses_redeemed], [800, 8, 199, 2]);
  });

  test('used up or expired → 422 package_not_usable; scopes, bad reason, unknown package', async () => {
    await P.buy(A, 'f4', { package_id: 'pf4', plan: 'short' }, F(1));
    await P.redeem(A, 'f4', 'pf4', { redemption_id: 'f4-1', uses: 2 }, F(1));
    assertNotUsable(await P.refundRaw(A, 'f4', 'pf4', {}, F(1)));
    // days 1 bought 1 May 10:00 local → valid_until 3 May 00:00 local
    const p = await P.buy(A, 'f5', { package_id: 'pf5', plan: 'short' }, F(1));
    assert.equal(p.valid_until, L('2031-05-03', '00:00'));
    assertProblem(await P.refundRaw(S.keys.readonly, 'f5', 'pf5', {}, F(1)), 403, 'forbidden');
    for (const body of [{ reason: '' }, { reason: 'x'.repeat(501) }, { reason: 7 }]) {
      assertProblem(await P.refundRaw(A, 'f5', 'pf5', body, F(1)), 422, 'validation_failed', '/reason');
    }
    assertProblem(await P.refundRaw(A, 'f5', 'nope', {}, F(1)), 404, 'not_found');
    assertNotUsable(await P.refundRaw(A, 'f5', 'pf5', {}, L('2031-05-03', '00:00')), /expire/i);
    const after = await P.view(A, 'f5', 'pf5', L('2031-05-03', '00:00'));
    assert.deepEqual([after.status, after.uses_expired, after.breakage, after.refunded], ['expired', 2, 300, 0]);
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, F(9));
  });
});

// ---------------------------------------------------------------------------

describe('expiry: at valid_until the uses left expire into breakage, without a sweep', () => {
  let S;
  let A;
  const BOUGHT = '2031-02-28T16:00:00Z'; // 1 March 00:00 local
  const VU = '2031-03-31T16:00:00Z'; // days 30 → 1 April 00:00 local
  const three = (id, cust) => PKG({ id, cust, plan: 'three', name: 'Three', uses: 3, price: 1000, bought: BOUGHT, until: VU });
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await P.plan(A, 'three', { name: 'Three', uses: 3, price: 1000, validity: { days: 30 } }, P0, 201);
    await P.plan(A, 'fixed', { name: 'Spring', uses: 4, price: 800, validity: { until: '2031-04-15T16:00:00Z' } }, P0, 201);
    for (const id of ['g1', 'g2', 'g3', 'g4', 'g5']) {
      await P.customer(A, id);
      await P.buy(A, id, { package_id: `p-${id}`, plan: 'three' }, BOUGHT);
    }
  });

  test('1 µs before valid_until active; at it expired: uses_expired 2, breakage = the deferred 667; the journal entry is dated valid_until', async () => {
    // rec(1) = floor(1000 / 3) = 333
    await P.redeem(A, 'g1', 'p-g1', { redemption_id: 'g1-1' }, L('2031-03-05'));
    const active = { ...three('p-g1', 'g1'), uses_redeemed: 1, uses_left: 2, recognised: 333, deferred: 667 };
    assert.deepEqual(await P.view(A, 'g1', 'p-g1', plusUs(VU, -1)), active);
    assert.deepEqual((await packageJournal(svc.db, S.shopId, 'p-g1')).map(([k]) => k), ['package_purchase', 'redemption'], 'nothing expired yet');
    const expired = { ...active, uses_left: 0, uses_expired: 2, deferred: 0, breakage: 667, status: 'expired' };
    assert.deepEqual(await P.view(S.keys.readonly, 'g1', 'p-g1', VU), expired);
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'p-g1'), [
      JR('package_purchase', BOUGHT, { package_deferred: 1000, cash: -1000 }),
      JR('redemption', L('2031-03-05'), { package_deferred: -333, revenue: 333 }),
      JR('package_expiry', VU, { package_deferred: -667, breakage: 667 }),
    ]);
    assert.deepEqual(await P.list(A, 'g1', VU, 'expired'), [expired]);
    assert.deepEqual(await P.list(A, 'g1', VU, 'active'), []);
  });

  test('first read 40 days later, through the list: all 3 uses expired, 1000 to breakage, dated valid_until (not the read)', async () => {
    const LATE = plusDays(VU, 40);
    const expired = { ...three('p-g2', 'g2'), uses_left: 0, uses_expired: 3, deferred: 0, breakage: 1000, status: 'expired' };
    assert.deepEqual(await P.list(S.keys.readonly, 'g2', LATE), [expired]);
    assert.deepEqual(await packageJournal(svc.db, S.shopId, 'p-g2'), [
      JR('package_purchase', BOUGHT, { package_deferred: 1000, cash: -1000 }),
      JR('package_expiry', VU, { package_deferred: -1000, breakage: 1000 }),
    ]);
  });

  test('a used-up package does not expire: no uses left, no breakage', async () => {
    await P.redeem(A, 'g3', 'p-g3', { redemption_id: 'g3-1', uses: 3 }, L('2031-03-05'));
    const p = await P.view(A, 'g3', 'p-g3', plusDays(VU, 1));
    assert.deepEqual(p, { ...three('p-g3', 'g3'), uses_redeemed: 3, uses_left: 0, recognised: 1000, deferred: 0, status: 'used_up' });
    assert.deepEqual((await packageJournal(svc.db, S.shopId, 'p-g3')).map(([k]) => k), ['package_purchase', 'redemption']);
  });

  test('a write after valid_until (redeem, reverse, refund → 422 package_not_usable) expires it too, dated valid_until', async () => {
    await P.redeem(A, 'g4', 'p-g4', { redemption_id: 'g4-1' }, L('2031-03-05'));
    const LATE = plusDays(VU, 10);
    assertNotUsable(await P.redeemRaw(A, 'g4', 'p-g4', { redemption_id: 'g4-2' }, LATE), /expire/i);
    assert.deepEqual((await packageJournal(svc.db, S.shopId, 'p-g4')).at(-1), JR('package_expiry', VU, { package_deferred: -667, breakage: 667 }));
    assertNotUsable(await P.reverseRaw(A, 'g4', 'p-g4', 'g4-1', { reason: 'late' }, LATE));
    assertNotUsable(await P.refundRaw(A, 'g4', 'p-g4', {}, LATE));
    assert.equal((await packageJournal(svc.db, S.shopId, 'p-g4')).length, 3, 'purchase, redemption, one expiry');
  });

  test('a fixed validity.until: the expiry is dated that instant', async () => {
    const UNTIL = '2031-04-15T16:00:00Z';
    await P.buy(A, 'g5', { package_id: 'p-g5b', plan: 'fixed' }, L('2031-03-02'));
    // rec(1) = floor(800 / 4) = 200 → 600 deferred expire
    await P.redeem(A, 'g5', 'p-g5b', { redemption_id: 'g5-1' }, L('2031-03-03'));
    const p = await P.view(A, 'g5', 'p-g5b', L('2031-04-20'));
    assert.deepEqual([p.status, p.uses_expired, p.breakage, p.valid_until], ['expired', 3, 600, U(UNTIL)]);
    assert.deepEqual((await packageJournal(svc.db, S.shopId, 'p-g5b')).at(-1), JR('package_expiry', UNTIL, { package_deferred: -600, breakage: 600 }));
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, L('2031-06-01'));
  });
});

// ---------------------------------------------------------------------------

describe('concurrency', () => {
  let S;
  let A;
  const C0 = L('2031-06-01');
  const C1 = L('2031-06-02');
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await P.plan(A, 'ten', { name: 'Ten', uses: 10, price: 1000, validity: { days: 365 } }, P0, 201);
    await P.customer(A, 'k1');
    await P.customer(A, 'k2');
  });

  test('100 parallel single-use redemptions on a 10-use package → exactly 10 × 201, 90 × 422 insufficient_uses (uses_left 0)', async () => {
    await P.buy(A, 'k1', { package_id: 'pk', plan: 'ten' }, C0);
    const rs = await inLanes(100, 100, (i) => P.redeemRaw(i % 2 ? A : S.keys.storefront, 'k1', 'pk', { redemption_id: `k-${i}` }, C1, { timeoutMs: 120000 }));
    const ok = rs.filter((r) => r.status === 201);
    const no = rs.filter((r) => r.status === 422);
    assert.deepEqual(rs.filter((r) => r.status !== 201 && r.status !== 422).map((r) => `${r.status} ${r.text}`), [], 'only 201 and 422');
    assert.equal(ok.length, 10, '201s');
    assert.equal(no.length, 90, '422s');
    for (const r of no) assertInsufficientUses(r, 0);
    // each accepted one left a different count (9 … 0) and recognised 1000 / 10 = 100
    assert.deepEqual(ok.map((r) => r.body.package.uses_left).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of ok) assert.equal(r.body.redemption.recognised, 100);
    const p = await P.get(A, 'k1', 'pk', C1);
    assert.deepEqual([p.status, p.uses_redeemed, p.uses_left, p.recognised, p.deferred], ['used_up', 10, 0, 1000, 0]);
    assert.deepEqual(p.redemptions.map((x) => x.redemption_id).sort(), ok.map((r) => r.body.redemption.redemption_id).sort());
    const j = await packageJournal(svc.db, S.shopId, 'pk');
    assert.deepEqual(j.map(([k]) => k), ['package_purchase', ...Array(10).fill('redemption')]);
  });

  test('20 parallel requests with one redemption_id → exactly one redemption (one 201, the others replay it with 200)', async () => {
    await P.buy(A, 'k2', { package_id: 'pk2', plan: 'ten' }, C0);
    const body = { redemption_id: 'same', uses: 2, order_id: 'o-same' };
    const rs = await Promise.all(Array.from({ length: 20 }, () => P.redeemRaw(A, 'k2', 'pk2', body, C1)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [...Array(19).fill(200), 201],
      `one 201, 19 × 200; statuses: ${rs.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join('\n')}`);
    // rec(2) = floor(2000 / 10) = 200
    for (const r of rs) assert.deepEqual(r.body.redemption, RED('same', 'pk2', 2, 200, C1, { order: 'o-same' }));
    const p = await P.get(A, 'k2', 'pk2', C1);
    assert.deepEqual([p.redemptions.length, p.uses_redeemed, p.recognised], [1, 2, 200]);
    assert.equal((await packageJournal(svc.db, S.shopId, 'pk2')).length, 2, 'the purchase and one redemption');
  });

  test('20 parallel purchases with one package_id → one package (one 201, the others 200)', async () => {
    await P.customer(A, 'k3');
    const rs = await Promise.all(Array.from({ length: 20 }, () => P.buyRaw(A, 'k3', { package_id: 'pk3', plan: 'ten' }, C0)));
    assert.deepEqual([rs.filter((r) => r.status === 201).length, rs.filter((r) => r.status === 200).length], [1, 19],
      `statuses: ${rs.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join('\n')}`);
    assert.equal((await P.list(A, 'k3', C0)).length, 1);
    assert.equal((await packageJournal(svc.db, S.shopId, 'pk3')).length, 1, 'one purchase');
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, C1);
  });
});

// ---------------------------------------------------------------------------

describe('custom segment filters: package_uses_left, days_since_last_visit', () => {
  let S;
  let A;
  const DAY = 86400000;
  const ago = (days, hours = 0) => U(new Date(Date.now() - days * DAY + hours * 3600000).toISOString());

  // The real clock: instants are "days ago"; Shanghai has no daylight saving, so an instant
  // exactly d × 24 h ago lies on the local day d days before today. Plans "seg-10" (10 uses,
  // 365 days) and "seg-short" (10 uses, 30 days); packages bought 60 days ago. Only customers
  // with a qualifying purchase occasion are ever members of a segment (openapi.yaml), so all but
  // j have an order, 100 days ago unless said.
  //
  //  customer | packages now (uses left)                   | visits (orders, redemptions not reversed)  | uses left | last visit
  //  a        | seg-10, 2 used 45 days ago (8)             | redemption 45, order 100                   | 8         | 45
  //  b        | seg-10, 8 used 40 days ago (2)             | redemption 40, order 100                   | 2         | 40
  //  c        | seg-10, 1 used 50 days ago (9)             | redemption 50, order 10                    | 9         | 10
  //  d        | seg-10 (10)                                | order 35; redemption 5 days ago reversed 4 | 10        | 35
  //  e        | seg-short, expired ~29 days ago            | redemption 58, order 100                   | null      | 58
  //  f        | none                                       | order 90                                   | null      | 90
  //  g        | seg-10 × 2: 9 used (1), 8 used (2)         | redemptions 32 and 31, order 100           | 1 + 2 = 3 | 31
  //  h        | seg-10, 1 used 20 days ago, refunded 19    | redemption 20, order 100                   | null      | 20
  //  i        | seg-10 (10)                                | order 100                                  | 10        | 100
  //  j        | seg-10, 1 used 40 days ago (9); no order   | redemption 40                              | (never a member: no purchase occasion)
  before(async () => {
    S = await mkShop({ name: uniq('Package Segment Shop') });
    A = S.keys.admin;
    await P.plan(A, 'seg-10', { name: 'Ten', uses: 10, price: 1000, validity: { days: 365 } }, ago(61), 201);
    await P.plan(A, 'seg-short', { name: 'Ten, 30 days', uses: 10, price: 1000, validity: { days: 30 } }, ago(61), 201);
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) await P.customer(A, id);
    for (const id of ['a', 'b', 'c', 'e', 'g', 'h', 'i']) await P.order(A, `o0-${id}`, id, ago(100));
    const buy = (cust, id, plan = 'seg-10') => P.buy(A, cust, { package_id: id, plan }, ago(60));
    const use = (cust, id, rid, uses, days) => P.redeem(A, cust, id, { redemption_id: rid, uses }, ago(days));
    await buy('a', 'pa');
    await use('a', 'pa', 'ra', 2, 45);
    await buy('b', 'pb');
    await use('b', 'pb', 'rb', 8, 40);
    await buy('c', 'pc');
    await use('c', 'pc', 'rc', 1, 50);
    await P.order(A, 'o-c', 'c', ago(10));
    await P.order(A, 'o-d', 'd', ago(35));
    await buy('d', 'pd');
    await use('d', 'pd', 'rd', 1, 5);
    await P.reverse(A, 'd', 'pd', 'rd', 'not a visit', ago(4));
    await buy('e', 'pe', 'seg-short');
    await use('e', 'pe', 're', 1, 58);
    await P.order(A, 'o-f', 'f', ago(90));
    await buy('g', 'pg1');
    await buy('g', 'pg2');
    await use('g', 'pg2', 'rg2', 8, 32);
    await use('g', 'pg1', 'rg1', 9, 31);
    await buy('h', 'ph');
    await use('h', 'ph', 'rh', 1, 20);
    // (the refund itself is checked in its own describe)
    const rf = await P.refundRaw(A, 'h', 'ph', {}, ago(19));
    assert.equal(rf.status, 201, rf.text);
    await buy('i', 'pi');
    await buy('j', 'pj');
    await use('j', 'pj', 'rj', 1, 40);
  });

  /** Members (ids, sorted) of a new custom segment with this filter (the real clock). */
  async function members(filter) {
    const code = uniq('p').toLowerCase().replace(/[^a-z0-9-]/g, '-');
    const put = await c.put(`/v1/segments/${code}`, { name: code, filter }, { key: A });
    assert.equal(put.status, 201, put.text);
    const r = await c.get(`/v1/segments/${code}/customers?limit=200`, { key: A });
    assert.equal(r.status, 200, r.text);
    assert.equal(put.body.size, r.body.items.length, 'size agrees with the list');
    return r.body.items.map((x) => x.id).sort();
  }
  const C = (field, op, value) => ({ field, op, value });

  test('"a package with ≥ 3 uses left and no visit in 30 days"', async () => {
    // a (8, 45), d (10, 35: its redemption was reversed), g (1 + 2 = 3, 31), i (10, 100);
    // not b (2 left), c (visit 10 days ago), e (expired: null), f and h (no active package: null), j (no purchase occasion)
    assert.deepEqual(await members({ all: [C('package_uses_left', 'gte', 3), C('days_since_last_visit', 'gt', 30)] }), ['a', 'd', 'g', 'i']);
  });

  test('package_uses_left by itself: the active packages now, summed; none active → no comparison holds', async () => {
    assert.deepEqual(await members(C('package_uses_left', 'gte', 3)), ['a', 'c', 'd', 'g', 'i']); // 8, 9, 10, 3, 10 (j's 9 do not count: no purchase occasion)
    assert.deepEqual(await members(C('package_uses_left', 'eq', 2)), ['b']);
    assert.deepEqual(await members(C('package_uses_left', 'lt', 100)), ['a', 'b', 'c', 'd', 'g', 'i']); // e, f, h: null
    assert.deepEqual(await members(C('package_uses_left', 'between', [9, 10])), ['c', 'd', 'i']);
  });

  test('days_since_last_visit by itself: orders and redemptions not reversed, in the shop\'s days', async () => {
    assert.deepEqual(await members(C('days_since_last_visit', 'gt', 30)), ['a', 'b', 'd', 'e', 'f', 'g', 'i']); // 45, 40, 35, 58, 90, 31, 100
    assert.deepEqual(await members(C('days_since_last_visit', 'lte', 20)), ['c', 'h']); // 10, 20
    assert.deepEqual(await members(C('days_since_last_visit', 'eq', 35)), ['d']); // the reversed redemption 5 days ago does not count
    assert.deepEqual(await members(C('days_since_last_visit', 'between', [31, 31])), ['g']);
    assert.deepEqual(await members(C('days_since_last_visit', 'eq', 45)), ['a']); // not its order 100 days ago
    assert.deepEqual(await members(C('days_since_last_visit', 'eq', 100)), ['i']);
  });

  test('bad package conditions → 422 naming the part', async () => {
    const bad = async (filter, pointer) => {
      assertProblem(await c.put('/v1/segments/bad-package', { name: 'x', filter }, { key: A }), 422, 'validation_failed', pointer);
    };
    await bad(C('package_uses_left', 'contains', 5), '/filter/op');
    await bad(C('package_uses_left', 'gte', 'lots'), '/filter/value');
    await bad(C('days_since_last_visit', 'between', [5]), '/filter/value');
    assertProblem(await c.get('/v1/segments/bad-package', { key: A }), 404, 'not_found');
  });

  test('the ledger: journal sums agree with every package; rebuyd verify: 0 differences', async () => {
    await ledgerAfter(S, undefined);
  });
});

// ---------------------------------------------------------------------------

describe('the ledger checks can fail', () => {
  test('a cached deferred that differs from the journal: rebuyd verify names the package, the SQL check fails; put back, 0 differences', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    const T = L('2031-07-01');
    await P.plan(A, 'one', { name: 'One', uses: 4, price: 1000, validity: { days: 30 } }, P0, 201);
    await P.customer(A, 'z1');
    await P.buy(A, 'z1', { package_id: 'pz-corrupt', plan: 'one' }, T);
    const move = (d) => svc.db.query(`UPDATE packages SET deferred = deferred + $3, recognised = recognised - $3
      WHERE shop_id = $1 AND package_id = $2`, [S.shopId, 'pz-corrupt', d]);
    // recognised + deferred stays the price: only the journal can tell
    await move(-1);
    try {
      const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
      assert.notEqual(v.code, 0, `verify must fail: ${v.stdout}`);
      assert.match(v.stdout, /pz-corrupt/, 'verify names the package');
      await assert.rejects(assertLedgerSums(svc.db), /cached deferred/);
    } finally {
      await move(1);
    }
    await assertLedgerSums(svc.db);
    await assertVerify(svc);
  });
});
