// Prepaid wallets on a double-entry ledger (balances1.md, issue 7 slice 1):
// versioned top-up offers (PUT/GET /v1/topup-offers), top-ups with bonus
// schedules (immediate part, daily/weekly/monthly installments in the
// shop's time zone, end_of_period and expires_after_days expiry, breakage),
// spends under the shop's consumption order, insufficient funds, the
// statement with before/after balances, idempotency and concurrency.
//
// rebuyd runs with --test-clock; every wallet call carries Rebuy-Test-Now,
// and "now" is that instant. Every wallet call first brings the wallet up to
// now (releases and expiries at their own instants), so each wallet is only
// ever read at instants that do not go back in time. Scenario instants lie
// in 2031–2032, after today, so the minute sweep (real clock) finds nothing
// due in them.
//
// Shops are in Asia/Shanghai (UTC+8, no daylight saving) unless said:
// 10:00 local is 02:00Z the same day; local midnight is 16:00Z the day
// before. Money in fen: "top up 200, get 200" is 20000 + 20000.
//
// Every statement read goes through checkStatement (lib/wallets.js): the
// balance chain (before = after − delta = the previous after, from zeros,
// never below zero), the ledger invariant Σ deltas = the wallet's balances,
// and Σ remaining of released / Σ amount of pending installments = the
// wallet's bonus_available / bonus_scheduled.
//
// Every expected figure is worked out by hand in the comment next to it.
// Notation: p = principal, ba = bonus_available, bs = bonus_scheduled;
// "k2" = installment k = 2 of a top-up (k0 = the immediate part).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { U, plusUs, plusHours } from '../lib/tiers.js';
import {
  walletApi, walletCalls, atNow, offerPath, walletPath, topupPath, spendPath, statementPath,
  WAL, I, SCH, MV, assertMovements, afters, assertInsufficient, checkStatement, assertOfferShape,
  viewOffer, viewWallet, viewTopup, viewSpend,
} from '../lib/wallets.js';

let svc;
let c;
let W;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = walletApi(svc);
  W = walletCalls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Wallet Shop'), ...opts });

/** Runs fn(0) … fn(n − 1), at most `lanes` at a time; the results in order of i. */
async function inLanes(n, lanes, fn) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(lanes, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}
const TEN_12 = 1000000000000;

// "Top up 200, get 200 as 20 a month × 10", no expiry
const MONTHLY = {
  name: 'Top up 200, get 200', min_topup: 20000,
  bonus: { installments: { count: 10, amount: 2000, every: 'month' } },
};

// ---------------------------------------------------------------------------

describe('top-up offers: PUT/GET /v1/topup-offers', () => {
  let S;
  let A;
  const T0 = '2031-01-05T02:00:00Z';
  const T1 = '2031-01-05T03:00:00Z';
  const T2 = '2031-01-05T04:00:00Z';
  const V1 = {
    name: 'Top up 200, get 200', min_topup: 20000,
    bonus: { immediate: 0, installments: { count: 10, amount: 2000, every: 'month', interval: 1 }, installment_expiry: 'end_of_period', expires_after_days: null },
    limit_per_customer: 1, active: true,
  };
  let v1;
  let v2;
  let v3;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
  });

  test('every PUT is a new version: 201 (Location) for version 1, then 200 for 2 and 3; defaults filled in', async () => {
    let r = await c.put(offerPath('monthly-200'), V1, atNow(A, T0));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, '/v1/topup-offers/monthly-200');
    assertOfferShape(r.body);
    v1 = viewOffer(r.body);
    // bonus_total = 0 + 10 × 2000 = 20000
    assert.deepEqual(v1, { code: 'monthly-200', version: 1, ...V1, bonus_total: 20000, currency: 'CNY', created_at: U(T0) });

    // version 2: only name and bonus.immediate given → min_topup 0, installments null, expiry "none",
    // expires_after_days null, no limit, active
    r = await c.put(offerPath('monthly-200'), { name: 'Top up 200', bonus: { immediate: 5000 } }, atNow(A, T1));
    assert.equal(r.status, 200, r.text);
    assertOfferShape(r.body);
    v2 = viewOffer(r.body);
    assert.deepEqual(v2, {
      code: 'monthly-200', version: 2, name: 'Top up 200', min_topup: 0,
      bonus: { immediate: 5000, installments: null, installment_expiry: 'none', expires_after_days: null },
      bonus_total: 5000, limit_per_customer: null, active: true, currency: 'CNY', created_at: U(T1),
    });

    // version 3: installments without interval → interval 1; inactive; bonus_total 3 × 700 = 2100
    r = await c.put(offerPath('monthly-200'), { name: 'Weekly', bonus: { installments: { count: 3, amount: 700, every: 'week' } }, active: false }, atNow(A, T2));
    assert.equal(r.status, 200, r.text);
    assertOfferShape(r.body);
    v3 = viewOffer(r.body);
    assert.deepEqual(v3, {
      code: 'monthly-200', version: 3, name: 'Weekly', min_topup: 0,
      bonus: { immediate: 0, installments: { count: 3, amount: 700, every: 'week', interval: 1 }, installment_expiry: 'none', expires_after_days: null },
      bonus_total: 2100, limit_per_customer: null, active: false, currency: 'CNY', created_at: U(T2),
    });
  });

  test('GET answers the latest version to every scope; ?version=N that version; 404 beyond; a bad version → 400', async () => {
    for (const key of Object.values(S.keys)) {
      const r = await c.get(offerPath('monthly-200'), { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(viewOffer(r.body), v3);
    }
    for (const [n, v] of [[1, v1], [2, v2], [3, v3]]) {
      const r = await c.get(`${offerPath('monthly-200')}?version=${n}`, { key: S.keys.readonly });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(viewOffer(r.body), v);
    }
    assertProblem(await c.get(`${offerPath('monthly-200')}?version=4`, { key: A }), 404, 'not_found');
    assertProblem(await c.get(`${offerPath('nope')}?version=1`, { key: A }), 404, 'not_found');
    assertProblem(await c.get(offerPath('nope'), { key: A }), 404, 'not_found');
    for (const q of ['abc', '1.5']) {
      assertProblem(await c.get(`${offerPath('monthly-200')}?version=${q}`, { key: A }), 400, 'invalid_parameter', '/query/version');
    }
  });

  test('the list: the latest version of each offer, by code; another shop sees none', async () => {
    await W.offer(A, 'zz-last', { name: 'Last', bonus: { immediate: 1 } }, T0, 201);
    // a bonus of 0 is allowed (a plain top-up offer with a minimum)
    const plain = await W.offer(A, 'a-plain', { name: 'Plain', min_topup: 10000, bonus: {} }, T0, 201);
    assert.deepEqual(plain.bonus, { immediate: 0, installments: null, installment_expiry: 'none', expires_after_days: null });
    assert.equal(plain.bonus_total, 0);
    for (const key of Object.values(S.keys)) {
      const r = await c.get('/v1/topup-offers', { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body), ['items']);
      // 'a-plain' < 'monthly-200' < 'zz-last'; monthly-200 at its latest version (3)
      assert.deepEqual(r.body.items.map((o) => [o.code, o.version]), [['a-plain', 1], ['monthly-200', 3], ['zz-last', 1]]);
      assert.deepEqual(viewOffer(r.body.items[1]), v3);
    }
    const O = await mkShop();
    assert.deepEqual((await c.get('/v1/topup-offers', { key: O.keys.readonly })).body, { items: [] });
    assertProblem(await c.get(offerPath('monthly-200'), { key: O.keys.admin }), 404, 'not_found');
  });

  test('a bad code → 400 /path/code; a bad body → 422 at the pointer; nothing stored', async () => {
    const ok = { name: 'Ok', bonus: { immediate: 100 } };
    for (const code of ['Top-Up', 'a_b', 'a.b', 'x'.repeat(65)]) {
      assertProblem(await c.put(offerPath(code), ok, atNow(A, T0)), 400, 'invalid_parameter', '/path/code');
    }
    const inst = { count: 10, amount: 2000, every: 'month' };
    const withInst = (o) => ({ ...ok, bonus: { installments: { ...inst, ...o } } });
    const cases = [
      [{ bonus: {} }, '/name'],
      [{ ...ok, name: '' }, '/name'],
      [{ ...ok, name: 'x'.repeat(201) }, '/name'],
      [{ ...ok, name: 5 }, '/name'],
      [{ ...ok, min_topup: -1 }, '/min_topup'],
      [{ ...ok, min_topup: TEN_12 + 1 }, '/min_topup'],
      [{ ...ok, min_topup: 1.5 }, '/min_topup'],
      [{ ...ok, min_topup: '100' }, '/min_topup'],
      [{ name: 'x' }, '/bonus'], // bonus is required
      [{ ...ok, bonus: null }, '/bonus'],
      [{ ...ok, bonus: [] }, '/bonus'],
      [{ ...ok, bonus: { immediate: -1 } }, '/bonus/immediate'],
      [{ ...ok, bonus: { immediate: TEN_12 + 1 } }, '/bonus/immediate'],
      [{ ...ok, bonus: { immediate: 2.5 } }, '/bonus/immediate'],
      [{ ...ok, bonus: { installments: 'monthly' } }, '/bonus/installments'],
      [withInst({ count: 0 }), '/bonus/installments/count'],
      [withInst({ count: 121 }), '/bonus/installments/count'],
      [withInst({ count: undefined }), '/bonus/installments/count'], // required (undefined drops it)
      [withInst({ amount: 0 }), '/bonus/installments/amount'],
      [withInst({ amount: TEN_12 + 1 }), '/bonus/installments/amount'],
      [withInst({ amount: undefined }), '/bonus/installments/amount'],
      [withInst({ every: 'year' }), '/bonus/installments/every'],
      [withInst({ every: 'Month' }), '/bonus/installments/every'],
      [withInst({ every: undefined }), '/bonus/installments/every'],
      [withInst({ interval: 0 }), '/bonus/installments/interval'],
      [withInst({ interval: 13 }), '/bonus/installments/interval'],
      [withInst({ interval: '2' }), '/bonus/installments/interval'],
      [withInst({ colour: 'red' }), '/bonus/installments/colour'],
      [{ ...ok, bonus: { immediate: 1, installment_expiry: 'never' } }, '/bonus/installment_expiry'],
      [{ ...ok, bonus: { immediate: 1, expires_after_days: 0 } }, '/bonus/expires_after_days'],
      [{ ...ok, bonus: { immediate: 1, expires_after_days: 3661 } }, '/bonus/expires_after_days'],
      [{ ...ok, bonus: { immediate: 1, expires_after_days: 1.5 } }, '/bonus/expires_after_days'],
      [{ ...ok, bonus: { immediate: 1, colour: 'red' } }, '/bonus/colour'],
      [{ ...ok, limit_per_customer: 0 }, '/limit_per_customer'],
      [{ ...ok, limit_per_customer: 1001 }, '/limit_per_customer'],
      [{ ...ok, limit_per_customer: '1' }, '/limit_per_customer'],
      [{ ...ok, active: 'yes' }, '/active'],
      [{ ...ok, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await c.put(offerPath('val-x'), body, atNow(A, T0));
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.put(offerPath('val-x'), [ok], atNow(A, T0)), 422, 'validation_failed');
    assertProblem(await c.req('PUT', offerPath('val-x'), { ...atNow(A, T0), rawBody: '{"name":' }), 400, 'malformed_json');
    assertProblem(await c.get(offerPath('val-x'), { key: A }), 404, 'not_found');
    // the limits themselves are fine
    const code64 = `o${'1-'.repeat(31)}z`;
    assert.equal(code64.length, 64);
    const big = await W.offer(A, code64, {
      name: 'é'.repeat(200), min_topup: TEN_12,
      bonus: { immediate: TEN_12, installments: { count: 120, amount: TEN_12, every: 'day', interval: 12 }, installment_expiry: 'end_of_period', expires_after_days: 3660 },
      limit_per_customer: 1000, active: true,
    }, T0, 201);
    // 10^12 + 120 × 10^12 = 121 × 10^12
    assert.equal(big.bonus_total, 121 * TEN_12);
    const one = await W.offer(A, 'min-ok', { name: 'x', min_topup: 0, bonus: { installments: { count: 1, amount: 1, every: 'week', interval: 1 }, expires_after_days: 1 }, limit_per_customer: 1 }, T0, 201);
    assert.equal(one.bonus_total, 1);
  });

  test('only admin may PUT (storefront, readonly, platform → 403); platform may not read; no key → 401', async () => {
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put(offerPath('scoped'), { name: 'x', bonus: {} }, atNow(key, T0)), 403, 'forbidden');
    }
    assertProblem(await c.put(offerPath('scoped'), { name: 'x', bonus: {} }), 401, 'unauthenticated');
    for (const p of ['/v1/topup-offers', offerPath('monthly-200')]) {
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
    assertProblem(await c.get(offerPath('scoped'), { key: A }), 404, 'not_found');
  });
});

// ---------------------------------------------------------------------------

describe('"top up 200, get 200 as 20 a month × 10": the monthly schedule', () => {
  let S;
  let A;
  const T0 = '2031-01-31T02:00:00Z'; // Fri Jan 31 2031, 10:00 in Shanghai
  // k = 1..10 due at t0 + (k − 1) months, 10:00 local, not chained:
  // Jan 31, Feb 28 (2031 is not a leap year), Mar 31, Apr 30, May 31, Jun 30, Jul 31, Aug 31, Sep 30, Oct 31
  const DUE = ['2031-01-31', '2031-02-28', '2031-03-31', '2031-04-30', '2031-05-31', '2031-06-30', '2031-07-31', '2031-08-31', '2031-09-30', '2031-10-31']
    .map((d) => `${d}T02:00:00Z`);
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'monthly', MONTHLY, '2031-01-01T00:00:00Z', 201);
    for (const id of ['m1', 'm2', 'm3']) await W.customer(A, id);
  });

  test('the top-up: 201 with its ten installments; k1 is due at t0 itself, so it is released at once', async () => {
    const r = await W.topup(S.keys.storefront, 'm1', { topup_id: 'pay-m1', amount: 20000, offer: 'monthly' }, T0);
    assert.deepEqual(r.topup, {
      topup_id: 'pay-m1', customer_id: 'm1', amount: 20000, offer: 'monthly', offer_version: 1, bonus_total: 20000, created_at: U(T0),
      installments: DUE.map((d, n) => (n === 0 ? I(1, 2000, d, null, 'released', 2000) : I(n + 1, 2000, d, null, 'pending', 0))),
    });
    // p 20000; k1 released: ba 2000; k2..k10 pending: bs 9 × 2000 = 18000; available 22000
    assert.deepEqual(r.wallet, WAL('m1', T0, { p: 20000, ba: 2000, bs: 18000, opened: T0 }));
  });

  test('balances at several instants: each installment appears exactly at its due time, not a microsecond before', async () => {
    const at = async (now, ba, bs) => {
      assert.deepEqual(await W.wallet(S.keys.readonly, 'm1', now), WAL('m1', now, { p: 20000, ba, bs, opened: T0 }), `at ${now}`);
    };
    await at(plusUs(DUE[1], -1), 2000, 18000); // 1 µs before k2: still k1 only
    await at(DUE[1], 4000, 16000); // Feb 28 10:00 local: k1 + k2
    await at('2031-03-30T16:00:00Z', 4000, 16000); // Mar 31 00:00 local: k3 is due at 10:00, not at midnight
    await at(plusUs(DUE[2], -1), 4000, 16000);
    await at(DUE[2], 6000, 14000); // Mar 31 10:00 local: k3
    await at('2031-06-15T00:00:00Z', 10000, 10000); // k1..k5 (k6 is due Jun 30): 5 × 2000 = 10000, bs 5 × 2000 = 10000
    await at(plusUs(DUE[9], -1), 18000, 2000); // k1..k9
    await at(DUE[9], 20000, 0); // Oct 31 10:00 local: k10, the last
    await at('2032-06-01T00:00:00Z', 20000, 0); // nothing more; no expiry ("none")
  });

  test('the statement: the top-up, then one release per installment at its own due time, with before/after balances', async () => {
    const NOW = '2032-06-01T00:00:01Z';
    const st = await W.statement(A, 'm1', NOW);
    assert.deepEqual(st.wallet, WAL('m1', NOW, { p: 20000, ba: 20000, bs: 0, opened: T0 }));
    assertMovements(st, [
      MV(T0, 'topup', 'pay-m1', 20000, 0, 20000),
      ...DUE.map((d) => MV(d, 'release', 'pay-m1', 0, 2000, -2000)),
    ]);
    // the top-up comes first at t0 (k1 cannot be released from nothing): after it {20000, 0, 20000};
    // after release k: {20000, 2000k, 20000 − 2000k}
    assert.deepEqual(afters(st), [[20000, 0, 20000], ...DUE.map((_, n) => [20000, 2000 * (n + 1), 20000 - 2000 * (n + 1)])]);
    assert.deepEqual(st.schedule, DUE.map((d, n) => SCH('pay-m1', n + 1, 2000, d, null, 'released', 2000)));
  });

  test('a start on Jan 31 of a leap year: Feb 29', async () => {
    await W.customer(A, 'm4');
    const r = await W.topup(A, 'm4', { topup_id: 'pay-m4', amount: 20000, offer: 'monthly' }, '2032-01-31T02:00:00Z');
    // 2032 is a leap year: Jan 31, Feb 29, Mar 31, Apr 30 …
    assert.deepEqual(r.topup.installments.slice(0, 4).map((i) => i.due_at), ['2032-01-31', '2032-02-29', '2032-03-31', '2032-04-30'].map((d) => U(`${d}T02:00:00Z`)));
  });

  test('a start on Mar 31: Apr 30, then May 31 again (from t0, not chained)', async () => {
    const r = await W.topup(A, 'm2', { topup_id: 'pay-m2', amount: 20000, offer: 'monthly' }, '2031-03-31T02:00:00Z');
    // Mar 31, Apr 30, May 31 (chained would be May 30), Jun 30, Jul 31, Aug 31, Sep 30, Oct 31, Nov 30, Dec 31
    assert.deepEqual(r.topup.installments.map((i) => i.due_at), ['2031-03-31', '2031-04-30', '2031-05-31', '2031-06-30', '2031-07-31',
      '2031-08-31', '2031-09-30', '2031-10-31', '2031-11-30', '2031-12-31'].map((d) => U(`${d}T02:00:00Z`)));
  });

  test("months are counted in the shop's zone: Jan 31 01:00 local (Jan 30 in UTC) → Feb 28 01:00 local", async () => {
    const t0 = '2031-01-30T17:00:00Z'; // Jan 31 01:00 in Shanghai
    const r = await W.topup(A, 'm3', { topup_id: 'pay-m3', amount: 20000, offer: 'monthly' }, t0);
    // local Jan 31, Feb 28, Mar 31, Apr 30, May 31, Jun 30, Jul 31, Aug 31, Sep 30, Oct 31 at 01:00 = 17:00Z the day before
    // (counted in UTC from Jan 30 17:00Z it would be Feb 28 17:00Z, Mar 30 17:00Z …)
    assert.deepEqual(r.topup.installments.map((i) => i.due_at), ['2031-01-30', '2031-02-27', '2031-03-30', '2031-04-29', '2031-05-30',
      '2031-06-29', '2031-07-30', '2031-08-30', '2031-09-29', '2031-10-30'].map((d) => U(`${d}T17:00:00Z`)));
    assert.deepEqual(await W.wallet(A, 'm3', '2031-02-27T17:00:00Z'), WAL('m3', '2031-02-27T17:00:00Z', { p: 20000, ba: 4000, bs: 16000, opened: t0 }));
  });
});

// ---------------------------------------------------------------------------

describe('"top up 500, get 500 as 50 a week × 10", daily installments and the immediate part', () => {
  let S;
  let A;
  const T0 = '2031-03-03T02:00:00Z'; // Mon Mar 3 2031, 10:00 in Shanghai
  // k = 1..10 due at t0 + 7 (k − 1) days: Mar 3, 10, 17, 24, 31, Apr 7, 14, 21, 28, May 5 (02:00Z)
  const DUE = ['03-03', '03-10', '03-17', '03-24', '03-31', '04-07', '04-14', '04-21', '04-28', '05-05'].map((d) => `2031-${d}T02:00:00Z`);
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'weekly', { name: 'Top up 500, get 500', min_topup: 50000, bonus: { installments: { count: 10, amount: 5000, every: 'week' } } }, '2031-03-01T00:00:00Z', 201);
    await W.offer(A, 'daily', { name: 'Daily', bonus: { immediate: 1000, installments: { count: 4, amount: 500, every: 'day', interval: 2 } } }, '2031-03-01T00:00:00Z', 201);
    for (const id of ['w1', 'd1']) await W.customer(A, id);
  });

  test('weekly: the schedule, balances across weeks, a spend in between, the statement', async () => {
    const r = await W.topup(A, 'w1', { topup_id: 'pay-w1', amount: 50000, offer: 'weekly' }, T0);
    assert.deepEqual(r.topup.installments, DUE.map((d, n) => I(n + 1, 5000, d, null, n === 0 ? 'released' : 'pending', n === 0 ? 5000 : 0)));
    assert.equal(r.topup.bonus_total, 50000); // 10 × 5000
    assert.deepEqual(r.wallet, WAL('w1', T0, { p: 50000, ba: 5000, bs: 45000, opened: T0 }));

    const MAR16 = '2031-03-16T02:00:00Z'; // k1 and k2 released, k3 (Mar 17) not yet
    assert.deepEqual(await W.wallet(A, 'w1', MAR16), WAL('w1', MAR16, { p: 50000, ba: 10000, bs: 40000, opened: T0 }));
    // bonus_first (the default): from_bonus = min(12000, 10000) = 10000 (k1, then k2: oldest first), the rest 2000 from principal
    const s = await W.spend(A, 'w1', { spend_id: 'sp-w1', amount: 12000 }, MAR16);
    assert.deepEqual(s.spend, { spend_id: 'sp-w1', customer_id: 'w1', amount: 12000, from_principal: 2000, from_bonus: 10000, order_id: null, created_at: U(MAR16) });
    assert.deepEqual(s.wallet, WAL('w1', MAR16, { p: 48000, ba: 0, bs: 40000, opened: T0 }));
    assert.deepEqual(await W.wallet(A, 'w1', plusUs(DUE[2], -1)), WAL('w1', plusUs(DUE[2], -1), { p: 48000, ba: 0, bs: 40000, opened: T0 }));
    assert.deepEqual(await W.wallet(A, 'w1', DUE[2]), WAL('w1', DUE[2], { p: 48000, ba: 5000, bs: 35000, opened: T0 })); // k3
    // Apr 20: k3..k7 (Mar 17 … Apr 14) = 5 × 5000; k8..k10 pending = 15000
    assert.deepEqual(await W.wallet(A, 'w1', '2031-04-20T00:00:00Z'), WAL('w1', '2031-04-20T00:00:00Z', { p: 48000, ba: 25000, bs: 15000, opened: T0 }));
    const END = DUE[9]; // May 5: k3..k10 = 8 × 5000 = 40000
    const st = await W.statement(A, 'w1', END);
    assert.deepEqual(st.wallet, WAL('w1', END, { p: 48000, ba: 40000, bs: 0, opened: T0 }));
    assertMovements(st, [
      MV(T0, 'topup', 'pay-w1', 50000, 0, 50000),
      MV(DUE[0], 'release', 'pay-w1', 0, 5000, -5000),
      MV(DUE[1], 'release', 'pay-w1', 0, 5000, -5000),
      MV(MAR16, 'spend', 'sp-w1', -2000, -10000, 0),
      ...DUE.slice(2).map((d) => MV(d, 'release', 'pay-w1', 0, 5000, -5000)),
    ]);
    // after: topup {50000,0,50000}, k1 {50000,5000,45000}, k2 {50000,10000,40000}, spend {48000,0,40000},
    // k3..k10 {48000, 5000j, 40000 − 5000j} for j = 1..8
    assert.deepEqual(afters(st), [[50000, 0, 50000], [50000, 5000, 45000], [50000, 10000, 40000], [48000, 0, 40000],
      ...[1, 2, 3, 4, 5, 6, 7, 8].map((j) => [48000, 5000 * j, 40000 - 5000 * j])]);
    // k1 and k2 spent (remaining 0, still "released": no expiry), the rest untouched
    assert.deepEqual(st.schedule, DUE.map((d, n) => SCH('pay-w1', n + 1, 5000, d, null, 'released', n < 2 ? 0 : 5000)));
  });

  test('daily every 2 days with an immediate part: k0 and k1 at t0, then 1 calendar day × 2 apart', async () => {
    const t0 = '2031-06-01T02:00:00Z';
    const r = await W.topup(A, 'd1', { topup_id: 'pay-d1', amount: 1000, offer: 'daily' }, t0);
    // k0 1000 at t0 (immediate, never expires); k1..k4 500 at t0 + 0, 2, 4, 6 days; bonus_total 1000 + 4 × 500 = 3000
    assert.equal(r.topup.bonus_total, 3000);
    assert.deepEqual(r.topup.installments, [
      I(0, 1000, t0, null, 'released', 1000),
      I(1, 500, t0, null, 'released', 500),
      I(2, 500, '2031-06-03T02:00:00Z', null, 'pending', 0),
      I(3, 500, '2031-06-05T02:00:00Z', null, 'pending', 0),
      I(4, 500, '2031-06-07T02:00:00Z', null, 'pending', 0),
    ]);
    assert.deepEqual(r.wallet, WAL('d1', t0, { p: 1000, ba: 1500, bs: 1500, opened: t0 })); // 1000 + 500; 3 × 500
    const t1 = '2031-06-04T02:00:00Z'; // k2 (Jun 3) released
    assert.deepEqual(await W.wallet(A, 'd1', t1), WAL('d1', t1, { p: 1000, ba: 2000, bs: 1000, opened: t0 }));
    const t2 = '2031-06-07T02:00:00Z'; // all
    const st = await W.statement(S.keys.storefront, 'd1', t2);
    assert.deepEqual(st.wallet, WAL('d1', t2, { p: 1000, ba: 3000, bs: 0, opened: t0 }));
    assertMovements(st, [
      MV(t0, 'topup', 'pay-d1', 1000, 0, 3000),
      MV(t0, 'release', 'pay-d1', 0, 1000, -1000),
      MV(t0, 'release', 'pay-d1', 0, 500, -500),
      MV('2031-06-03T02:00:00Z', 'release', 'pay-d1', 0, 500, -500),
      MV('2031-06-05T02:00:00Z', 'release', 'pay-d1', 0, 500, -500),
      MV('2031-06-07T02:00:00Z', 'release', 'pay-d1', 0, 500, -500),
    ]);
    assert.deepEqual(afters(st).slice(-3), [[1000, 2000, 1000], [1000, 2500, 500], [1000, 3000, 0]]);
  });
});

// ---------------------------------------------------------------------------

describe('daylight saving: schedules in America/New_York', () => {
  let A;
  before(async () => {
    const S = await mkShop({ timezone: 'America/New_York', currency: 'USD' });
    A = S.keys.admin;
    const P0 = '2031-01-01T00:00:00Z';
    await W.offer(A, 'ny-monthly', { name: 'Monthly', bonus: { installments: { count: 11, amount: 100, every: 'month' }, installment_expiry: 'end_of_period' } }, P0, 201);
    await W.offer(A, 'ny-daily', { name: 'Daily', bonus: { installments: { count: 3, amount: 10, every: 'day' }, expires_after_days: 3 } }, P0, 201);
    await W.offer(A, 'ny-weekly', { name: 'Weekly', bonus: { installments: { count: 2, amount: 10, every: 'week' } } }, P0, 201);
    for (const id of ['ny1', 'ny2', 'ny3']) await W.customer(A, id);
  });

  test('monthly across both changes (Mar 9 and Nov 2, 2031): always 10:00 local; end_of_period = the next due time', async () => {
    const t0 = '2031-01-31T15:00:00Z'; // Jan 31 10:00 EST (UTC−5)
    const r = await W.topup(A, 'ny1', { topup_id: 'pay-ny1', amount: 5000, offer: 'ny-monthly' }, t0);
    // due at 10:00 local on Jan 31, Feb 28 (EST: 15:00Z), Mar 31 … Oct 31 (EDT, UTC−4: 14:00Z), Nov 30 (EST again: 15:00Z);
    // each expires at the next one's due time; k11's at t0 + 11 months = Dec 31 10:00 EST = 15:00Z
    const due = ['2031-01-31T15:00:00Z', '2031-02-28T15:00:00Z', '2031-03-31T14:00:00Z', '2031-04-30T14:00:00Z', '2031-05-31T14:00:00Z',
      '2031-06-30T14:00:00Z', '2031-07-31T14:00:00Z', '2031-08-31T14:00:00Z', '2031-09-30T14:00:00Z', '2031-10-31T14:00:00Z',
      '2031-11-30T15:00:00Z', '2031-12-31T15:00:00Z'];
    assert.deepEqual(r.topup.installments, due.slice(0, 11).map((d, n) => I(n + 1, 100, d, due[n + 1], n === 0 ? 'released' : 'pending', n === 0 ? 100 : 0)));
    assert.deepEqual(r.wallet, WAL('ny1', t0, { p: 5000, ba: 100, bs: 1000, opened: t0, currency: 'USD' }));
    // 09:59:59.999999 EDT on Mar 31: k1 expired (Feb 28), k2 released (Feb 28), k3..k11 pending (9 × 100)
    let now = plusUs('2031-03-31T14:00:00Z', -1);
    assert.deepEqual(await W.wallet(A, 'ny1', now), WAL('ny1', now, { p: 5000, ba: 100, bs: 900, opened: t0, currency: 'USD' }));
    // 10:00 EDT: k2 expires, k3 is released (counted in UTC it would be 15:00Z, an hour later)
    now = '2031-03-31T14:00:00Z';
    assert.deepEqual(await W.wallet(A, 'ny1', now), WAL('ny1', now, { p: 5000, ba: 100, bs: 800, opened: t0, currency: 'USD' }));
    now = '2031-11-30T15:00:00Z'; // k11 released, k10 expired
    const st = await W.statement(A, 'ny1', now);
    assert.deepEqual(st.wallet, WAL('ny1', now, { p: 5000, ba: 100, bs: 0, opened: t0, currency: 'USD' }));
    // every release at its due time, every expiry (of the 100 unspent) at the next due time
    assertMovements(st, [
      MV(t0, 'topup', 'pay-ny1', 5000, 0, 1100),
      ...due.slice(0, 11).flatMap((d, n) => [MV(d, 'release', 'pay-ny1', 0, 100, -100), ...(n > 0 ? [MV(d, 'expiry', 'pay-ny1', 0, -100, 0)] : [])]),
    ]);
    now = '2031-12-31T15:00:00Z'; // k11 expires: nothing left of the bonus
    assert.deepEqual(await W.wallet(A, 'ny1', now), WAL('ny1', now, { p: 5000, ba: 0, bs: 0, opened: t0, currency: 'USD' }));
  });

  test('daily = 1 calendar day: across the spring change the step is 23 hours; expires_after_days is N × 24 h', async () => {
    const t0 = '2031-03-08T15:00:00Z'; // Sat Mar 8 10:00 EST
    const r = await W.topup(A, 'ny2', { topup_id: 'pay-ny2', amount: 100, offer: 'ny-daily' }, t0);
    // Mar 8 10:00 EST, Mar 9 10:00 EDT (14:00Z, 23 h later), Mar 10 10:00 EDT; all expire at t0 + 72 h = Mar 11 15:00Z (11:00 EDT)
    const EXP = '2031-03-11T15:00:00Z';
    assert.deepEqual(r.topup.installments, [
      I(1, 10, t0, EXP, 'released', 10),
      I(2, 10, '2031-03-09T14:00:00Z', EXP, 'pending', 0),
      I(3, 10, '2031-03-10T14:00:00Z', EXP, 'pending', 0),
    ]);
    let now = '2031-03-09T14:00:00Z';
    assert.deepEqual(await W.wallet(A, 'ny2', now), WAL('ny2', now, { p: 100, ba: 20, bs: 10, opened: t0, currency: 'USD' }));
    now = plusUs(EXP, -1); // 10:59:59.999999 EDT Mar 11 (t0 + 3 local days would be 14:00Z): nothing expired yet
    assert.deepEqual(await W.wallet(A, 'ny2', now), WAL('ny2', now, { p: 100, ba: 30, bs: 0, opened: t0, currency: 'USD' }));
    assert.deepEqual(await W.wallet(A, 'ny2', EXP), WAL('ny2', EXP, { p: 100, ba: 0, bs: 0, opened: t0, currency: 'USD' }));
  });

  test('weekly = 7 calendar days in the zone: Wed Mar 5 10:00 EST → Wed Mar 12 10:00 EDT', async () => {
    const t0 = '2031-03-05T15:00:00Z';
    const r = await W.topup(A, 'ny3', { topup_id: 'pay-ny3', amount: 100, offer: 'ny-weekly' }, t0);
    // 7 local days (the zone's calendar arithmetic); 7 × 24 h would be 15:00Z = 11:00 EDT
    assert.deepEqual(r.topup.installments.map((i) => i.due_at), [U(t0), U('2031-03-12T14:00:00Z')]);
  });
});

// ---------------------------------------------------------------------------

describe('expiry: end_of_period, expires_after_days, breakage', () => {
  let S;
  let A;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    const P0 = '2031-01-01T00:00:00Z';
    await W.offer(A, 'eop', { name: 'End of period', bonus: { immediate: 3000, installments: { count: 3, amount: 2000, every: 'month' }, installment_expiry: 'end_of_period' } }, P0, 201);
    await W.offer(A, 'ead', { name: 'Three days', bonus: { immediate: 1000, installments: { count: 5, amount: 1000, every: 'day' }, expires_after_days: 3 } }, P0, 201);
    await W.offer(A, 'combo', { name: 'Both', bonus: { immediate: 500, installments: { count: 3, amount: 1000, every: 'month' }, installment_expiry: 'end_of_period', expires_after_days: 45 } }, P0, 201);
    for (const id of ['e1', 'x1', 'x2', 'x3', 'x4']) await W.customer(A, id);
  });

  test('end_of_period: an unspent installment (or its unspent part) expires at the start of the next period; spent parts and the immediate part stay', async () => {
    const t0 = '2031-01-31T02:00:00Z'; // Jan 31 10:00 local
    const FEB28 = '2031-02-28T02:00:00Z';
    const MAR31 = '2031-03-31T02:00:00Z';
    const APR30 = '2031-04-30T02:00:00Z';
    const r = await W.topup(A, 'e1', { topup_id: 'pay-e1', amount: 10000, offer: 'eop' }, t0);
    // k0 3000 at t0, never expires; k1 due t0 → expires t0 + 1 month = Feb 28; k2 due Feb 28 → expires t0 + 2 months = Mar 31
    // (computed from t0, not Feb 28 + 1 month = Mar 28); k3 due Mar 31 → expires t0 + 3 months = Apr 30. bonus_total 3000 + 3 × 2000 = 9000
    assert.deepEqual(r.topup.installments, [
      I(0, 3000, t0, null, 'released', 3000),
      I(1, 2000, t0, FEB28, 'released', 2000),
      I(2, 2000, FEB28, MAR31, 'pending', 0),
      I(3, 2000, MAR31, APR30, 'pending', 0),
    ]);
    assert.deepEqual(r.wallet, WAL('e1', t0, { p: 10000, ba: 5000, bs: 4000, opened: t0 })); // k0 + k1; k2 + k3

    // Feb 10: 1500 from bonus (bonus_first), taken from k1 (expires Feb 28) before k0 (never): k1 keeps 500
    const s1 = await W.spend(A, 'e1', { spend_id: 'sp-e1-1', amount: 1500 }, '2031-02-10T02:00:00Z');
    assert.deepEqual([s1.spend.from_principal, s1.spend.from_bonus], [0, 1500]);
    assert.deepEqual(s1.wallet, WAL('e1', '2031-02-10T02:00:00Z', { p: 10000, ba: 3500, bs: 4000, opened: t0 }));
    let st = await W.statement(A, 'e1', plusUs(FEB28, -1));
    assert.deepEqual(st.wallet, WAL('e1', plusUs(FEB28, -1), { p: 10000, ba: 3500, bs: 4000, opened: t0 }));
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]), [[0, 'released', 3000], [1, 'released', 500], [2, 'pending', 0], [3, 'pending', 0]]);

    // Feb 28 10:00: k1's 500 expire (breakage), k2's 2000 are released: ba 3500 − 500 + 2000 = 5000, bs 2000
    assert.deepEqual(await W.wallet(A, 'e1', FEB28), WAL('e1', FEB28, { p: 10000, ba: 5000, bs: 2000, opened: t0 }));
    // Mar 5: 1200 from k2 (expires Mar 31): k2 keeps 800; ba 3800
    const s2 = await W.spend(A, 'e1', { spend_id: 'sp-e1-2', amount: 1200 }, '2031-03-05T02:00:00Z');
    assert.deepEqual([s2.spend.from_principal, s2.spend.from_bonus, s2.wallet.bonus_available], [0, 1200, 3800]);
    // Mar 28 (Feb 28 + 1 month): k2 has not expired
    assert.deepEqual(await W.wallet(A, 'e1', '2031-03-28T02:00:00Z'), WAL('e1', '2031-03-28T02:00:00Z', { p: 10000, ba: 3800, bs: 2000, opened: t0 }));
    assert.deepEqual(await W.wallet(A, 'e1', plusUs(MAR31, -1)), WAL('e1', plusUs(MAR31, -1), { p: 10000, ba: 3800, bs: 2000, opened: t0 }));
    // Mar 31: k2's 800 expire, k3's 2000 released: 3800 − 800 + 2000 = 5000, bs 0
    assert.deepEqual(await W.wallet(A, 'e1', MAR31), WAL('e1', MAR31, { p: 10000, ba: 5000, bs: 0, opened: t0 }));
    // Apr 30: k3 expires whole (2000, never touched): ba 3000 (k0, which never expires)
    assert.deepEqual(await W.wallet(A, 'e1', APR30), WAL('e1', APR30, { p: 10000, ba: 3000, bs: 0, opened: t0 }));
    const END = '2031-12-31T00:00:00Z';
    st = await W.statement(A, 'e1', END);
    assert.deepEqual(st.wallet, WAL('e1', END, { p: 10000, ba: 3000, bs: 0, opened: t0 }));
    assertMovements(st, [
      MV(t0, 'topup', 'pay-e1', 10000, 0, 9000),
      MV(t0, 'release', 'pay-e1', 0, 3000, -3000), // k0
      MV(t0, 'release', 'pay-e1', 0, 2000, -2000), // k1
      MV('2031-02-10T02:00:00Z', 'spend', 'sp-e1-1', 0, -1500, 0),
      MV(FEB28, 'expiry', 'pay-e1', 0, -500, 0), // k1's unspent 500, not the 1500 spent
      MV(FEB28, 'release', 'pay-e1', 0, 2000, -2000), // k2
      MV('2031-03-05T02:00:00Z', 'spend', 'sp-e1-2', 0, -1200, 0),
      MV(MAR31, 'expiry', 'pay-e1', 0, -800, 0), // k2's unspent 800
      MV(MAR31, 'release', 'pay-e1', 0, 2000, -2000), // k3
      MV(APR30, 'expiry', 'pay-e1', 0, -2000, 0), // k3 whole
    ]);
    // breakage 500 + 800 + 2000 = 3300; spent 1500 + 1200 = 2700; left 3000: 3300 + 2700 + 3000 = 9000 = the bonus
    assert.deepEqual(st.schedule, [
      SCH('pay-e1', 0, 3000, t0, null, 'released', 3000),
      SCH('pay-e1', 1, 2000, t0, FEB28, 'expired', 0),
      SCH('pay-e1', 2, 2000, FEB28, MAR31, 'expired', 0),
      SCH('pay-e1', 3, 2000, MAR31, APR30, 'expired', 0),
    ]);
  });

  test('expires_after_days: the whole bonus, released and pending, expires at t0 + N × 24 h; an installment due at or after that is never released', async () => {
    const t0 = '2031-06-01T02:00:00Z';
    const EXP = '2031-06-04T02:00:00Z'; // t0 + 72 h
    const r = await W.topup(A, 'x1', { topup_id: 'pay-x1', amount: 5000, offer: 'ead' }, t0);
    // k0 1000 and k1 1000 at t0, k2 Jun 2, k3 Jun 3, k4 Jun 4 (= the expiry: never released), k5 Jun 5 (after it); all expire Jun 4 02:00Z
    assert.deepEqual(r.topup.installments, [
      I(0, 1000, t0, EXP, 'released', 1000),
      I(1, 1000, t0, EXP, 'released', 1000),
      I(2, 1000, '2031-06-02T02:00:00Z', EXP, 'pending', 0),
      I(3, 1000, '2031-06-03T02:00:00Z', EXP, 'pending', 0),
      I(4, 1000, EXP, EXP, 'pending', 0),
      I(5, 1000, '2031-06-05T02:00:00Z', EXP, 'pending', 0),
    ]);
    assert.deepEqual(r.wallet, WAL('x1', t0, { p: 5000, ba: 2000, bs: 4000, opened: t0 }));
    // Jun 2 03:00: k2 released (ba 3000); 900 from bonus: every installment expires at the same instant, so the oldest first: k0 keeps 100
    const SP = '2031-06-02T03:00:00Z';
    const s = await W.spend(A, 'x1', { spend_id: 'sp-x1', amount: 900, order_id: 'ord-x1' }, SP);
    assert.deepEqual(s.spend, { spend_id: 'sp-x1', customer_id: 'x1', amount: 900, from_principal: 0, from_bonus: 900, order_id: 'ord-x1', created_at: U(SP) });
    assert.deepEqual(s.wallet, WAL('x1', SP, { p: 5000, ba: 2100, bs: 3000, opened: t0 })); // 3000 − 900; k3, k4, k5
    // Jun 3: k3 released: ba 3100, bs 2000; still so 1 µs before the expiry
    assert.deepEqual(await W.wallet(A, 'x1', '2031-06-03T02:00:00Z'), WAL('x1', '2031-06-03T02:00:00Z', { p: 5000, ba: 3100, bs: 2000, opened: t0 }));
    let st = await W.statement(A, 'x1', plusUs(EXP, -1));
    assert.deepEqual(st.wallet, WAL('x1', plusUs(EXP, -1), { p: 5000, ba: 3100, bs: 2000, opened: t0 }));
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]),
      [[0, 'released', 100], [1, 'released', 1000], [2, 'released', 1000], [3, 'released', 1000], [4, 'pending', 0], [5, 'pending', 0]]);
    // at the expiry: 100 + 1000 + 1000 + 1000 from available, k4 and k5 (1000 each) from scheduled; principal untouched
    st = await W.statement(A, 'x1', EXP);
    assert.deepEqual(st.wallet, WAL('x1', EXP, { p: 5000, ba: 0, bs: 0, opened: t0 }));
    st = await W.statement(A, 'x1', '2031-06-10T00:00:00Z');
    assert.deepEqual(st.wallet, WAL('x1', '2031-06-10T00:00:00Z', { p: 5000, ba: 0, bs: 0, opened: t0 }));
    assertMovements(st, [
      MV(t0, 'topup', 'pay-x1', 5000, 0, 6000),
      MV(t0, 'release', 'pay-x1', 0, 1000, -1000),
      MV(t0, 'release', 'pay-x1', 0, 1000, -1000),
      MV('2031-06-02T02:00:00Z', 'release', 'pay-x1', 0, 1000, -1000),
      MV(SP, 'spend', 'sp-x1', 0, -900, 0),
      MV('2031-06-03T02:00:00Z', 'release', 'pay-x1', 0, 1000, -1000),
      MV(EXP, 'expiry', 'pay-x1', 0, -100, 0), // k0's unspent 100
      MV(EXP, 'expiry', 'pay-x1', 0, -1000, 0), // k1
      MV(EXP, 'expiry', 'pay-x1', 0, -1000, 0), // k2
      MV(EXP, 'expiry', 'pay-x1', 0, -1000, 0), // k3
      MV(EXP, 'expiry', 'pay-x1', 0, 0, -1000), // k4, never released
      MV(EXP, 'expiry', 'pay-x1', 0, 0, -1000), // k5, never released
    ]);
    assert.equal(st.movements.filter((m) => m.kind === 'release' && m.at >= U(EXP)).length, 0, 'k4 and k5 are never released');
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]),
      [[0, 'expired', 0], [1, 'expired', 0], [2, 'expired', 0], [3, 'expired', 0], [4, 'expired', 0], [5, 'expired', 0]]);
  });

  test('at its expiry instant a bonus is gone: 1 µs before it can be spent, at the instant it cannot', async () => {
    const t0 = '2031-06-01T02:00:00Z';
    const EXP = '2031-06-04T02:00:00Z'; // t0 + 72 h (offer "ead": 1000 now + 5 × 1000 daily, 3 days)
    await W.topup(A, 'x3', { topup_id: 'pay-x3', amount: 100, offer: 'ead' }, t0);
    await W.topup(A, 'x4', { topup_id: 'pay-x4', amount: 100, offer: 'ead' }, t0);
    // 1 µs before: k0..k3 released (4000), k4 and k5 pending (2000); 4100 = 4000 bonus + 100 principal
    const s = await W.spend(A, 'x3', { spend_id: 'sp-x3', amount: 4100 }, plusUs(EXP, -1));
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [100, 4000]);
    assert.deepEqual(s.wallet, WAL('x3', plusUs(EXP, -1), { p: 0, ba: 0, bs: 2000, opened: t0 }));
    // at the instant: everything expired, released and pending alike; only the principal is left
    assertInsufficient(await W.spendRaw(A, 'x4', { spend_id: 'sp-x4', amount: 101 }, EXP), 100, 0);
    const s4 = await W.spend(A, 'x4', { spend_id: 'sp-x4', amount: 100 }, EXP);
    assert.deepEqual([s4.spend.from_principal, s4.spend.from_bonus], [100, 0]);
    // x3: nothing of k0..k3 was left to take back; k4 and k5 expire from the scheduled bonus
    const st = await W.statement(A, 'x3', EXP);
    assert.deepEqual(st.wallet, WAL('x3', EXP, { p: 0, ba: 0, bs: 0, opened: t0 }));
    const expiries = st.movements.filter((m) => m.kind === 'expiry');
    assert.deepEqual(expiries.filter((m) => m.bonus_available !== 0), [], 'no expiry from the available bonus (all spent)');
    assert.deepEqual(expiries.filter((m) => m.bonus_scheduled !== 0).map((m) => [m.at, m.bonus_scheduled]), [[U(EXP), -1000], [U(EXP), -1000]]);
    // spent in full before the expiry: remaining 0 whatever the status says
    assert.deepEqual(st.schedule.map((i) => [i.k, i.remaining]), [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0]]);
    assert.deepEqual(st.schedule.slice(4).map((i) => i.status), ['expired', 'expired']);
  });

  test('both rules: the earlier expiry applies; an installment whose expiry comes before its due time expires from the scheduled bonus', async () => {
    const t0 = '2031-01-31T02:00:00Z';
    const D45 = '2031-03-17T02:00:00Z'; // t0 + 45 × 24 h: Jan 31 + 28 days = Feb 28, + 17 = Mar 17
    const r = await W.topup(A, 'x2', { topup_id: 'pay-x2', amount: 1000, offer: 'combo' }, t0);
    // k0 500: no end_of_period for the immediate part, so D45; k1 due t0: min(Feb 28, D45) = Feb 28;
    // k2 due Feb 28: min(Mar 31, D45) = D45; k3 due Mar 31: min(Apr 30, D45) = D45, before its due time → never released
    assert.deepEqual(r.topup.installments, [
      I(0, 500, t0, D45, 'released', 500),
      I(1, 1000, t0, '2031-02-28T02:00:00Z', 'released', 1000),
      I(2, 1000, '2031-02-28T02:00:00Z', D45, 'pending', 0),
      I(3, 1000, '2031-03-31T02:00:00Z', D45, 'pending', 0),
    ]);
    assert.deepEqual(r.wallet, WAL('x2', t0, { p: 1000, ba: 1500, bs: 2000, opened: t0 }));
    // Feb 28: k1 expires (1000), k2 released (1000): ba 1500, bs 1000
    assert.deepEqual(await W.wallet(A, 'x2', '2031-02-28T02:00:00Z'), WAL('x2', '2031-02-28T02:00:00Z', { p: 1000, ba: 1500, bs: 1000, opened: t0 }));
    // D45: k0 500 and k2 1000 from available, k3 1000 from scheduled
    const st = await W.statement(A, 'x2', '2031-04-30T02:00:00Z');
    assert.deepEqual(st.wallet, WAL('x2', '2031-04-30T02:00:00Z', { p: 1000, ba: 0, bs: 0, opened: t0 }));
    assertMovements(st, [
      MV(t0, 'topup', 'pay-x2', 1000, 0, 3500),
      MV(t0, 'release', 'pay-x2', 0, 500, -500),
      MV(t0, 'release', 'pay-x2', 0, 1000, -1000),
      MV('2031-02-28T02:00:00Z', 'expiry', 'pay-x2', 0, -1000, 0),
      MV('2031-02-28T02:00:00Z', 'release', 'pay-x2', 0, 1000, -1000),
      MV(D45, 'expiry', 'pay-x2', 0, -500, 0),
      MV(D45, 'expiry', 'pay-x2', 0, -1000, 0),
      MV(D45, 'expiry', 'pay-x2', 0, 0, -1000),
    ]);
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status]), [[0, 'expired'], [1, 'expired'], [2, 'expired'], [3, 'expired']]);
  });
});

// ---------------------------------------------------------------------------

describe('the consumption order', () => {
  let S;
  let A;
  const T0 = '2031-04-01T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'imm3000', { name: 'Bonus 3000 at once', bonus: { immediate: 3000 } }, T0, 201);
    await W.offer(A, 'keep', { name: 'Keep', bonus: { immediate: 1000 } }, T0, 201);
    await W.offer(A, 'soon', { name: 'Thirty days', bonus: { immediate: 1000, expires_after_days: 30 } }, T0, 201);
    await W.offer(A, 'sooner', { name: 'Ten days', bonus: { immediate: 1000, expires_after_days: 10 } }, T0, 201);
    for (const id of ['b1', 'p1', 'q1', 'q2', 'q3', 'f1']) {
      await W.customer(A, id);
      if (!['q2', 'f1'].includes(id)) await W.topup(A, id, { topup_id: `pay-${id}`, amount: 10000, offer: 'imm3000' }, T0); // p 10000, ba 3000
    }
  });

  const sp = async (cust, n, amount, now, fromP, fromB, p, ba) => {
    const r = await W.spend(A, cust, { spend_id: `sp-${cust}-${n}`, amount }, now);
    assert.deepEqual([r.spend.from_principal, r.spend.from_bonus], [fromP, fromB], `spend ${amount} of ${cust}`);
    assert.deepEqual([r.wallet.principal, r.wallet.bonus_available], [p, ba], `wallet after spend ${amount} of ${cust}`);
  };

  test('the setting: bonus_first by default, always shown; other values → 422 /settings/balances/consumption_order', async () => {
    const g = await c.get(`/v1/shops/${S.shopId}`, { key: A });
    assert.equal(g.status, 200, g.text);
    assert.deepEqual(g.body.settings.balances, { consumption_order: 'bonus_first' });
    for (const v of ['random', 'BONUS_FIRST', '', 5]) {
      const r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { balances: { consumption_order: v } } }, { key: A });
      assertProblem(r, 422, 'validation_failed', '/settings/balances/consumption_order');
    }
    assertProblem(await c.patch(`/v1/shops/${S.shopId}`, { settings: { balances: { colour: 'red' } } }, { key: A }), 422, 'validation_failed', '/settings/balances/colour');
    assert.deepEqual((await c.get(`/v1/shops/${S.shopId}`, { key: A })).body.settings.balances, { consumption_order: 'bonus_first' });
    assertProblem(await c.patch(`/v1/shops/${S.shopId}`, { settings: { balances: { consumption_order: 'proportional' } } }, { key: S.keys.readonly }), 403, 'forbidden');
  });

  test('bonus_first: from_bonus = min(amount, bonus_available), the rest from principal', async () => {
    await W.order(A, S.shopId, 'bonus_first');
    const t = plusHours(T0, 1);
    await sp('b1', 1, 7, t, 0, 7, 10000, 2993); // min(7, 3000) = 7
    await sp('b1', 2, 4000, t, 1007, 2993, 8993, 0); // min(4000, 2993) = 2993; 4000 − 2993 = 1007
    await sp('b1', 3, 8993, t, 8993, 0, 0, 0); // no bonus left: all principal
    await W.statement(A, 'b1', t);
  });

  test('principal_first: from_principal = min(amount, principal), the rest from bonus', async () => {
    await W.order(A, S.shopId, 'principal_first');
    const t = plusHours(T0, 2);
    await sp('p1', 1, 7, t, 7, 0, 9993, 3000); // min(7, 10000) = 7
    await sp('p1', 2, 10000, t, 9993, 7, 0, 2993); // min(10000, 9993) = 9993; the other 7 from bonus
    await sp('p1', 3, 2993, t, 0, 2993, 0, 0);
    await W.statement(A, 'p1', t);
  });

  test('proportional: from_bonus = floor(amount × bonus_available / (principal + bonus_available))', async () => {
    await W.order(A, S.shopId, 'proportional');
    const t = plusHours(T0, 3);
    await sp('q1', 1, 7, t, 6, 1, 9994, 2999); // floor(7 × 3000 / 13000) = floor(1.615) = 1; 7 − 1 = 6
    await sp('q1', 2, 1, t, 1, 0, 9993, 2999); // floor(1 × 2999 / 12993) = 0
    await sp('q1', 3, 1000, t, 770, 230, 9223, 2769); // floor(2999000 / 12992) = 230 (12992 × 230 = 2988160 ≤ 2999000 < 3001152)
    await sp('q1', 4, 11992, t, 9223, 2769, 0, 0); // everything: floor(11992 × 2769 / 11992) = 2769
    await W.statement(A, 'q1', t);
    // no bonus at all: floor(7 × 0 / 1000) = 0, everything from principal
    await W.topup(A, 'q2', { topup_id: 'pay-q2', amount: 1000 }, t); // no offer: p 1000, ba 0
    await sp('q2', 1, 7, t, 7, 0, 993, 0);
    // no principal left: floor(7 × 3000 / (0 + 3000)) = 7, everything from bonus
    await W.order(A, S.shopId, 'principal_first');
    await sp('q3', 1, 10000, t, 10000, 0, 0, 3000);
    await W.order(A, S.shopId, 'proportional');
    await sp('q3', 2, 7, t, 0, 7, 0, 2993);
  });

  test('bonus comes from the released installments that expire first (no expiry last), then the oldest', async () => {
    await W.order(A, S.shopId, 'bonus_first');
    // four top-ups of 1000 + a bonus of 1000 each: A (no expiry) t0, B (30 days) t0+1h, C (no expiry) t0+2h, D (10 days) t0+2h30
    const t0 = '2031-05-01T02:00:00Z';
    const tB = plusHours(t0, 1);
    const tC = plusHours(t0, 2);
    const tD = '2031-05-01T04:30:00Z';
    await W.topup(A, 'f1', { topup_id: 'f1-a', amount: 1000, offer: 'keep' }, t0);
    await W.topup(A, 'f1', { topup_id: 'f1-b', amount: 1000, offer: 'soon' }, tB);
    await W.topup(A, 'f1', { topup_id: 'f1-c', amount: 1000, offer: 'keep' }, tC);
    await W.topup(A, 'f1', { topup_id: 'f1-d', amount: 1000, offer: 'sooner' }, tD);
    // 1500: D (expires May 11 04:30) 1000, then B (May 31 03:00) 500
    await sp('f1', 1, 1500, plusHours(t0, 3), 0, 1500, 4000, 2500);
    // 1000: B's last 500, then the oldest of those that never expire: A 500 (C untouched)
    await sp('f1', 2, 1000, plusHours(t0, 4), 0, 1000, 4000, 1500);
    const st = await W.statement(A, 'f1', plusHours(t0, 4));
    assert.deepEqual(st.schedule, [
      SCH('f1-a', 0, 1000, t0, null, 'released', 500),
      SCH('f1-b', 0, 1000, tB, '2031-05-31T03:00:00Z', 'released', 0), // tB + 30 × 24 h
      SCH('f1-c', 0, 1000, tC, null, 'released', 1000),
      SCH('f1-d', 0, 1000, tD, '2031-05-11T04:30:00Z', 'released', 0), // tD + 10 × 24 h
    ]);
  });
});

// ---------------------------------------------------------------------------

describe('insufficient funds', () => {
  let S;
  let A;
  const t0 = '2031-07-07T02:00:00Z';
  const JUL14 = '2031-07-14T02:00:00Z'; // k2 due
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'two-weeks', { name: 'Two weeks', bonus: { installments: { count: 2, amount: 500, every: 'week' } } }, t0, 201);
    for (const id of ['i1', 'i2']) await W.customer(A, id);
    await W.topup(A, 'i1', { topup_id: 'pay-i1', amount: 1000, offer: 'two-weeks' }, t0); // p 1000, ba 500 (k1), bs 500 (k2)
  });

  test('amount > principal + bonus_available → 422 insufficient_funds with the figures; nothing changes; the spend_id stays free', async () => {
    const t1 = plusHours(t0, 1);
    const before = await W.statement(A, 'i1', t1);
    // 1501 > 1000 + 500 (the scheduled 500 does not count)
    assertInsufficient(await W.spendRaw(S.keys.storefront, 'i1', { spend_id: 'i1-s1', amount: 1501 }, t1), 1000, 500);
    for (const order of ['principal_first', 'proportional']) {
      await W.order(A, S.shopId, order);
      assertInsufficient(await W.spendRaw(A, 'i1', { spend_id: 'i1-s1', amount: 1501 }, t1), 1000, 500);
    }
    await W.order(A, S.shopId, 'bonus_first');
    const afterIt = await W.statement(A, 'i1', t1);
    assert.deepEqual(afterIt, before, 'the statement is unchanged');
    // Jul 14: the figures are as of now, after releasing k2: 1000 + 1000 = 2000 < 2001
    assertInsufficient(await W.spendRaw(A, 'i1', { spend_id: 'i1-s2', amount: 2001 }, JUL14), 1000, 1000);
    // the refused spend_id i1-s1 was not recorded: now it fits (2000 = everything: 1000 bonus first, then 1000 principal)
    const s = await W.spend(A, 'i1', { spend_id: 'i1-s1', amount: 2000 }, JUL14);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [1000, 1000]);
    assert.deepEqual(s.wallet, WAL('i1', JUL14, { p: 0, ba: 0, bs: 0, opened: t0 }));
    assertInsufficient(await W.spendRaw(A, 'i1', { spend_id: 'i1-s3', amount: 1 }, JUL14), 0, 0);
    const st = await W.statement(A, 'i1', JUL14);
    assertMovements(st, [
      MV(t0, 'topup', 'pay-i1', 1000, 0, 1000),
      MV(t0, 'release', 'pay-i1', 0, 500, -500),
      MV(JUL14, 'release', 'pay-i1', 0, 500, -500),
      MV(JUL14, 'spend', 'i1-s1', -1000, -1000, 0),
    ]);
  });

  test('no wallet: 422 with zeros; the wallet stays unopened', async () => {
    assertInsufficient(await W.spendRaw(A, 'i2', { spend_id: 'i2-s1', amount: 1 }, t0), 0, 0);
    assert.deepEqual(await W.wallet(A, 'i2', t0), WAL('i2', t0));
    const st = await W.statement(A, 'i2', t0);
    assert.deepEqual([st.movements, st.schedule], [[], []]);
  });
});

// ---------------------------------------------------------------------------

describe('offer versions, limits, minimum, inactive offers', () => {
  let S;
  let A;
  const P0 = '2031-08-01T00:00:00Z';
  const t = (h) => plusHours('2031-08-02T02:00:00Z', h);
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'once', { name: 'Once', min_topup: 20000, bonus: { immediate: 2000 }, limit_per_customer: 1 }, P0, 201);
    await W.offer(A, 'monthly', MONTHLY, P0, 201);
    for (const id of ['l1', 'l2', 'l3', 'v1']) await W.customer(A, id);
  });

  test('a top-up keeps the version of the offer it was made with; later top-ups get the new version', async () => {
    const r1 = await W.topup(A, 'v1', { topup_id: 'v1-a', amount: 20000, offer: 'monthly' }, t(0));
    assert.deepEqual([r1.topup.offer_version, r1.topup.bonus_total, r1.topup.installments.length], [1, 20000, 10]);
    // version 2: 5 × 1000 a week, min 10000
    await W.offer(A, 'monthly', { name: 'Changed', min_topup: 10000, bonus: { installments: { count: 5, amount: 1000, every: 'week' } } }, t(1), 200);
    const r2 = await W.topup(A, 'v1', { topup_id: 'v1-b', amount: 10000, offer: 'monthly' }, t(2));
    // t(2) = Aug 2 04:00Z; weekly: Aug 2, 9, 16, 23, 30
    assert.deepEqual(r2.topup.installments, ['02', '09', '16', '23', '30'].map((d, n) => I(n + 1, 1000, `2031-08-${d}T04:00:00Z`, null, n === 0 ? 'released' : 'pending', n === 0 ? 1000 : 0)));
    assert.deepEqual([r2.topup.offer, r2.topup.offer_version, r2.topup.bonus_total], ['monthly', 2, 5000]);
    // the first top-up is unchanged: replayed, it still says version 1 and 10 × 2000 monthly
    const again = await W.topup(A, 'v1', { topup_id: 'v1-a', amount: 20000, offer: 'monthly' }, t(3), 200);
    assert.deepEqual([again.topup.offer_version, again.topup.bonus_total], [1, 20000]);
    assert.deepEqual(again.topup.installments.map((i) => [i.k, i.amount, i.due_at]), r1.topup.installments.map((i) => [i.k, i.amount, i.due_at]));
    const st = await W.statement(A, 'v1', t(3));
    assert.deepEqual(st.schedule.filter((i) => i.topup_id === 'v1-a').map((i) => [i.k, i.amount, i.due_at]), r1.topup.installments.map((i) => [i.k, i.amount, i.due_at]));
    // p 20000 + 10000; ba 2000 (v1-a k1) + 1000 (v1-b k1); bs 18000 + 4000
    assert.deepEqual(st.wallet, WAL('v1', t(3), { p: 30000, ba: 3000, bs: 22000, opened: t(0) }));
  });

  test('limit_per_customer counts top-ups with any version of the offer; a replay is not refused; the minimum is the current version\'s', async () => {
    const r = await W.topup(A, 'l1', { topup_id: 'l1-a', amount: 20000, offer: 'once' }, t(0));
    assert.deepEqual([r.topup.offer_version, r.topup.bonus_total], [1, 2000]);
    assertProblem(await W.topupRaw(A, 'l1', { topup_id: 'l1-b', amount: 20000, offer: 'once' }, t(1)), 422, 'offer_limit_reached');
    // the same top-up again is a replay, not a second one
    await W.topup(A, 'l1', { topup_id: 'l1-a', amount: 20000, offer: 'once' }, t(1), 200);
    // l2: below the minimum → 422 /amount; at the minimum → 201 (the limit is per customer)
    assertProblem(await W.topupRaw(A, 'l2', { topup_id: 'l2-a', amount: 19999, offer: 'once' }, t(1)), 422, 'validation_failed', '/amount');
    await W.topup(A, 'l2', { topup_id: 'l2-a', amount: 20000, offer: 'once' }, t(1));
    // a top-up without the offer is not limited
    await W.topup(A, 'l1', { topup_id: 'l1-plain', amount: 100 }, t(1));

    // version 2: limit 2, min 10000, bonus 5000 → l1 has 1 top-up with it (v1): one more
    await W.offer(A, 'once', { name: 'Twice', min_topup: 10000, bonus: { immediate: 5000 }, limit_per_customer: 2 }, t(2), 200);
    const r2 = await W.topup(A, 'l1', { topup_id: 'l1-b', amount: 10000, offer: 'once' }, t(3));
    assert.deepEqual([r2.topup.offer_version, r2.topup.bonus_total], [2, 5000]);
    assertProblem(await W.topupRaw(A, 'l1', { topup_id: 'l1-c', amount: 10000, offer: 'once' }, t(3)), 422, 'offer_limit_reached');
    // p 20000 + 100 + 10000 = 30100; ba 2000 (v1) + 5000 (v2) = 7000
    const st = await W.statement(A, 'l1', t(3));
    assert.deepEqual(st.wallet, WAL('l1', t(3), { p: 30100, ba: 7000, bs: 0, opened: t(0) }));
    assert.deepEqual(st.schedule, [
      SCH('l1-a', 0, 2000, t(0), null, 'released', 2000),
      SCH('l1-b', 0, 5000, t(3), null, 'released', 5000),
    ]);
    assertMovements(st, [
      MV(t(0), 'topup', 'l1-a', 20000, 0, 2000),
      MV(t(0), 'release', 'l1-a', 0, 2000, -2000),
      MV(t(1), 'topup', 'l1-plain', 100, 0, 0),
      MV(t(3), 'topup', 'l1-b', 10000, 0, 5000),
      MV(t(3), 'release', 'l1-b', 0, 5000, -5000),
    ]);
  });

  test('an inactive or unknown offer → 422 /offer; a replay of a top-up made while it was active still answers 200', async () => {
    await W.offer(A, 'once', { name: 'Off', bonus: { immediate: 5000 }, active: false }, t(4), 200);
    assertProblem(await W.topupRaw(A, 'l3', { topup_id: 'l3-a', amount: 20000, offer: 'once' }, t(5)), 422, 'validation_failed', '/offer');
    assertProblem(await W.topupRaw(A, 'l3', { topup_id: 'l3-a', amount: 20000, offer: 'nope' }, t(5)), 422, 'validation_failed', '/offer');
    assert.deepEqual(await W.wallet(A, 'l3', t(5)), WAL('l3', t(5)), 'nothing opened');
    const again = await W.topup(A, 'l2', { topup_id: 'l2-a', amount: 20000, offer: 'once' }, t(5), 200);
    assert.deepEqual([again.topup.offer_version, again.topup.created_at], [1, U(t(1))]);
    // active again (version 4): l3 may top up; the offer's limit is null now
    await W.offer(A, 'once', { name: 'On', bonus: { immediate: 5000 } }, t(6), 200);
    const r = await W.topup(A, 'l3', { topup_id: 'l3-a', amount: 1, offer: 'once' }, t(6));
    assert.deepEqual([r.topup.offer_version, r.topup.bonus_total], [4, 5000]);
  });
});

// ---------------------------------------------------------------------------

describe('idempotency', () => {
  let S;
  let A;
  const t0 = '2031-08-01T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'idem', { name: 'Idem', bonus: { immediate: 500, installments: { count: 2, amount: 250, every: 'month' } } }, t0, 201);
    for (const id of ['k1', 'k2', 'k3', 'k4', 'k5']) await W.customer(A, id);
  });

  test('a top-up again by topup_id: 200 with the stored top-up; anything different → 409 conflict; nothing changes', async () => {
    const body = { topup_id: 'pay-1', amount: 1000, offer: 'idem' };
    const r1 = await W.topupRaw(A, 'k1', body, t0);
    assert.equal(r1.status, 201, r1.text);
    // p 1000; k0 500 + k1 250 released; k2 250 pending (Sep 1)
    assert.deepEqual(viewWallet(r1.body.wallet), WAL('k1', t0, { p: 1000, ba: 750, bs: 250, opened: t0 }));
    const r2 = await W.topupRaw(S.keys.storefront, 'k1', body, t0);
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.body, r1.body, 'the same body (nothing happened in between)');
    for (const [cust, other] of [
      ['k1', { ...body, amount: 1001 }],
      ['k1', { topup_id: 'pay-1', amount: 1000 }], // without the offer
      ['k2', body], // another customer: topup_id is unique in the shop
    ]) {
      assertProblem(await W.topupRaw(A, cust, other, t0), 409, 'conflict');
    }
    const st = await W.statement(A, 'k1', t0);
    assert.equal(st.movements.filter((m) => m.kind === 'topup').length, 1);
    assert.deepEqual(st.wallet, WAL('k1', t0, { p: 1000, ba: 750, bs: 250, opened: t0 }));
    assert.deepEqual(await W.wallet(A, 'k2', t0), WAL('k2', t0));
    // later (k2 released on Sep 1): still 200 and the same top-up
    const later = '2031-09-15T00:00:00Z';
    const r3 = await W.topup(A, 'k1', body, later, 200);
    const fixed = (tp) => ({ ...tp, installments: tp.installments.map((i) => [i.k, i.amount, i.due_at, i.expires_at]) });
    assert.deepEqual(fixed(r3.topup), fixed(viewTopup(r1.body.topup)));
    assert.deepEqual(r3.wallet, WAL('k1', later, { p: 1000, ba: 1000, bs: 0, opened: t0 }));
    // the same topup_id in another shop is another top-up
    const O = await mkShop();
    await W.customer(O.keys.admin, 'k1');
    await W.topup(O.keys.admin, 'k1', { topup_id: 'pay-1', amount: 1000 }, t0);
  });

  test('a spend again by spend_id: 200 with the stored spend; another amount, order_id or customer → 409', async () => {
    const t1 = plusHours(t0, 1);
    await W.topup(A, 'k3', { topup_id: 'pay-k3', amount: 1000 }, t0);
    const body = { spend_id: 'sp-1', amount: 300, order_id: 'ord-9' };
    const r1 = await W.spendRaw(A, 'k3', body, t1);
    assert.equal(r1.status, 201, r1.text);
    assert.deepEqual(viewSpend(r1.body.spend), { spend_id: 'sp-1', customer_id: 'k3', amount: 300, from_principal: 300, from_bonus: 0, order_id: 'ord-9', created_at: U(t1) });
    const r2 = await W.spendRaw(S.keys.storefront, 'k3', body, t1);
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.body, r1.body);
    for (const [cust, other] of [
      ['k3', { ...body, amount: 301 }],
      ['k3', { ...body, order_id: 'ord-10' }],
      ['k3', { spend_id: 'sp-1', amount: 300 }],
      ['k1', body],
    ]) {
      assertProblem(await W.spendRaw(A, cust, other, t1), 409, 'conflict');
    }
    // a replay does not need the funds again
    const r3 = await W.spend(A, 'k3', body, plusHours(t0, 2), 200);
    assert.deepEqual(r3.spend, viewSpend(r1.body.spend));
    const st = await W.statement(A, 'k3', plusHours(t0, 2));
    assertMovements(st, [MV(t0, 'topup', 'pay-k3', 1000, 0, 0), MV(t1, 'spend', 'sp-1', -300, 0, 0)]);
    assert.equal((await W.wallet(A, 'k1', '2031-09-15T00:00:00Z')).principal, 1000, 'k1 untouched');
  });

  test('50 parallel spends with the same spend_id → one 201, 49 × 200 with the same spend; one movement', async () => {
    const t2 = plusHours(t0, 3);
    await W.topup(A, 'k4', { topup_id: 'pay-k4', amount: 1000, offer: 'idem' }, t0); // p 1000, ba 750
    const rs = await Promise.all(Array.from({ length: 50 }, () => W.spendRaw(A, 'k4', { spend_id: 'sp-par', amount: 10 }, t2)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [...Array(49).fill(200), 201].sort(), rs.map((r) => `${r.status} ${r.text}`).join('\n'));
    const created = viewSpend(rs.find((r) => r.status === 201).body.spend);
    // bonus_first: 10 from bonus
    assert.deepEqual(created, { spend_id: 'sp-par', customer_id: 'k4', amount: 10, from_principal: 0, from_bonus: 10, order_id: null, created_at: U(t2) });
    for (const r of rs) assert.deepEqual(viewSpend(r.body.spend), created);
    const st = await W.statement(A, 'k4', t2);
    assert.equal(st.movements.filter((m) => m.kind === 'spend').length, 1);
    assert.deepEqual(st.wallet, WAL('k4', t2, { p: 1000, ba: 740, bs: 250, opened: t0 })); // 750 − 10
  });

  test('20 parallel top-ups with the same topup_id → one 201, 19 × 200; one top-up', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, () => W.topupRaw(A, 'k5', { topup_id: 'pay-par', amount: 700, offer: 'idem' }, t0)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [...Array(19).fill(200), 201].sort(), rs.map((r) => `${r.status} ${r.text}`).join('\n'));
    const st = await W.statement(A, 'k5', t0);
    assert.equal(st.movements.filter((m) => m.kind === 'topup').length, 1);
    assert.deepEqual(st.wallet, WAL('k5', t0, { p: 700, ba: 750, bs: 250, opened: t0 }));
  });

  test('Idempotency-Key: a retry answers the original status and body (Idempotent-Replayed: true); the key with another body → 422', async () => {
    const ikT = uniq('ik-topup');
    const ikS = uniq('ik-spend');
    const t3 = plusHours(t0, 4);
    const t4 = plusHours(t0, 5);
    const t5 = plusHours(t0, 6);
    const tb = { topup_id: 'pay-ik', amount: 400 };
    const first = await W.topupRaw(A, 'k2', tb, t3, { idempotencyKey: ikT });
    assert.equal(first.status, 201, first.text);
    const again = await W.topupRaw(A, 'k2', tb, t4, { idempotencyKey: ikT });
    assert.equal(again.status, 201, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.text, first.text);
    assertProblem(await W.topupRaw(A, 'k2', { ...tb, amount: 401 }, t4, { idempotencyKey: ikT }), 422, 'idempotency_key_reused');
    const sb = { spend_id: 'sp-ik', amount: 150 };
    const s1 = await W.spendRaw(A, 'k2', sb, t4, { idempotencyKey: ikS });
    assert.equal(s1.status, 201, s1.text);
    const s2 = await W.spendRaw(A, 'k2', sb, t5, { idempotencyKey: ikS });
    assert.deepEqual([s2.status, s2.headers['idempotent-replayed'], s2.text], [201, 'true', s1.text]);
    assertProblem(await W.spendRaw(A, 'k2', { ...sb, amount: 151 }, t5, { idempotencyKey: ikS }), 422, 'idempotency_key_reused');
    const st = await W.statement(A, 'k2', t5);
    assertMovements(st, [MV(t3, 'topup', 'pay-ik', 400, 0, 0), MV(t4, 'spend', 'sp-ik', -150, 0, 0)]);
    assert.deepEqual(st.wallet, WAL('k2', t5, { p: 250, opened: t3 })); // 400 − 150
  });
});

// ---------------------------------------------------------------------------

describe('customers, wallets without top-ups, bad bodies, scopes', () => {
  let S;
  let A;
  const t0 = '2031-09-01T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    for (const id of ['n1', 'n2', 'gone']) await W.customer(A, id);
    assert.equal((await c.del('/v1/customers/gone', { key: A })).status, 204);
  });

  test('a customer without top-ups: zeros, opened_at null, as_of now; an empty statement', async () => {
    for (const key of Object.values(S.keys)) {
      assert.deepEqual(await W.wallet(key, 'n1', t0), WAL('n1', t0));
      const st = await W.statement(key, 'n1', t0);
      assert.deepEqual(st, { wallet: WAL('n1', t0), movements: [], schedule: [] });
    }
  });

  test('unknown customer, or another shop\'s → 404 on every wallet call; an erased one cannot top up (404)', async () => {
    const O = await mkShop();
    await W.customer(O.keys.admin, 'theirs');
    for (const cust of ['ghost', 'theirs']) {
      assertProblem(await c.get(walletPath(cust), atNow(A, t0)), 404, 'not_found');
      assertProblem(await c.get(statementPath(cust), atNow(A, t0)), 404, 'not_found');
      assertProblem(await W.topupRaw(A, cust, { topup_id: `t-${cust}`, amount: 100 }, t0), 404, 'not_found');
      assertProblem(await W.spendRaw(A, cust, { spend_id: `s-${cust}`, amount: 100 }, t0), 404, 'not_found');
    }
    // erased: a top-up → 404 (balances1.md); the reads of an erased customer are not specified (it is still a
    // known customer, so its wallet stays readable: not asserted here)
    assertProblem(await W.topupRaw(A, 'gone', { topup_id: 't-gone', amount: 100 }, t0), 404, 'not_found');
    assert.deepEqual(await W.wallet(O.keys.admin, 'theirs', t0), WAL('theirs', t0));
  });

  test('top-up bodies: 422 at the pointer, 400 malformed; nothing recorded; the limits are fine', async () => {
    const cases = [
      [{ amount: 100 }, '/topup_id'],
      [{ topup_id: '', amount: 100 }, '/topup_id'],
      [{ topup_id: 'x'.repeat(129), amount: 100 }, '/topup_id'],
      [{ topup_id: 'with space', amount: 100 }, '/topup_id'],
      [{ topup_id: 'caf\u00e9', amount: 100 }, '/topup_id'],
      [{ topup_id: 'bell\u0007', amount: 100 }, '/topup_id'],
      [{ topup_id: 5, amount: 100 }, '/topup_id'],
      [{ topup_id: 'v-1' }, '/amount'],
      [{ topup_id: 'v-1', amount: 0 }, '/amount'],
      [{ topup_id: 'v-1', amount: -5 }, '/amount'],
      [{ topup_id: 'v-1', amount: TEN_12 + 1 }, '/amount'],
      [{ topup_id: 'v-1', amount: 1.5 }, '/amount'],
      [{ topup_id: 'v-1', amount: '100' }, '/amount'],
      [{ topup_id: 'v-1', amount: 100, offer: 5 }, '/offer'],
      [{ topup_id: 'v-1', amount: 100, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await W.topupRaw(A, 'n2', body, t0);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', topupPath('n2'), { ...atNow(A, t0), rawBody: '{"topup_id":' }), 400, 'malformed_json');
    assert.deepEqual(await W.wallet(A, 'n2', t0), WAL('n2', t0));
    const r = await W.topup(A, 'n2', { topup_id: `${'y'.repeat(120)}~!@#$%^&`, amount: TEN_12 }, t0);
    assert.deepEqual([r.topup.topup_id.length, r.topup.offer, r.topup.offer_version, r.topup.bonus_total, r.topup.installments], [128, null, null, 0, []]);
    assert.deepEqual(r.wallet, WAL('n2', t0, { p: TEN_12, opened: t0 }));
  });

  test('spend bodies: 422 at the pointer, 400 malformed; nothing recorded; the limits are fine', async () => {
    const cases = [
      [{ amount: 100 }, '/spend_id'],
      [{ spend_id: '', amount: 100 }, '/spend_id'],
      [{ spend_id: 'x'.repeat(129), amount: 100 }, '/spend_id'],
      [{ spend_id: 'with space', amount: 100 }, '/spend_id'],
      [{ spend_id: 5, amount: 100 }, '/spend_id'],
      [{ spend_id: 'v-1' }, '/amount'],
      [{ spend_id: 'v-1', amount: 0 }, '/amount'],
      [{ spend_id: 'v-1', amount: TEN_12 + 1 }, '/amount'],
      [{ spend_id: 'v-1', amount: 2.5 }, '/amount'],
      [{ spend_id: 'v-1', amount: 100, order_id: '' }, '/order_id'],
      [{ spend_id: 'v-1', amount: 100, order_id: 'o'.repeat(129) }, '/order_id'],
      [{ spend_id: 'v-1', amount: 100, order_id: 5 }, '/order_id'],
      [{ spend_id: 'v-1', amount: 100, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await W.spendRaw(A, 'n2', body, t0);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', spendPath('n2'), { ...atNow(A, t0), rawBody: '{"spend_id":' }), 400, 'malformed_json');
    // n2 holds 10^12 (the previous test): a spend of 10^12 with a 128-character order_id (not checked against orders)
    const s = await W.spend(A, 'n2', { spend_id: `${'z'.repeat(127)}!`, amount: TEN_12, order_id: 'o'.repeat(128) }, t0);
    assert.deepEqual([s.spend.from_principal, s.spend.order_id.length], [TEN_12, 128]);
    const st = await W.statement(A, 'n2', t0);
    assert.equal(st.movements.length, 2, 'the top-up and this spend only');
    assert.deepEqual(st.wallet, WAL('n2', t0, { p: 0, opened: t0 }));
  });

  test('scopes: readonly and platform cannot POST (403), storefront can; every shop scope reads; no key → 401', async () => {
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await W.topupRaw(key, 'n1', { topup_id: 'sc-1', amount: 100 }, t0), 403, 'forbidden');
      assertProblem(await W.spendRaw(key, 'n1', { spend_id: 'sc-2', amount: 1 }, t0), 403, 'forbidden');
    }
    for (const p of [walletPath('n1'), statementPath('n1')]) {
      assertProblem(await c.get(p, atNow(svc.platformKey, t0)), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
    assertProblem(await c.post(topupPath('n1'), { topup_id: 'sc-1', amount: 100 }), 401, 'unauthenticated');
    assertProblem(await c.post(spendPath('n1'), { spend_id: 'sc-2', amount: 1 }), 401, 'unauthenticated');
    assert.deepEqual(await W.wallet(A, 'n1', t0), WAL('n1', t0), 'nothing recorded');
    await W.topup(S.keys.storefront, 'n1', { topup_id: 'sc-1', amount: 100 }, t0);
    const s = await W.spend(S.keys.storefront, 'n1', { spend_id: 'sc-2', amount: 1 }, t0);
    assert.deepEqual(s.wallet, WAL('n1', t0, { p: 99, opened: t0 }));
  });

  test('without --test-clock, Rebuy-Test-Now on a wallet call → 400 /header/Rebuy-Test-Now', async () => {
    const plain = await startService();
    try {
      const P = await setupShop(plain, { name: uniq('Clockless') });
      const pc = walletApi(plain);
      const r = await pc.put('/v1/customers/cl1', { name: 'x' }, { key: P.keys.admin });
      assert.equal(r.status, 201, r.text);
      assertProblem(await pc.get(walletPath('cl1'), atNow(P.keys.admin, t0)), 400, 'invalid_parameter', '/header/Rebuy-Test-Now');
      assertProblem(await pc.post(topupPath('cl1'), { topup_id: 'x', amount: 1 }, atNow(P.keys.admin, t0)), 400, 'invalid_parameter', '/header/Rebuy-Test-Now');
      // real time: a top-up now opens the wallet now
      const before = Date.now();
      const tp = await pc.post(topupPath('cl1'), { topup_id: 'x', amount: 1 }, { key: P.keys.admin });
      assert.equal(tp.status, 201, tp.text);
      const opened = Date.parse(tp.body.wallet.opened_at);
      assert.ok(opened >= before - 1000 && opened <= Date.now() + 1000, `opened_at ${tp.body.wallet.opened_at} is now`);
    } finally {
      await plain.stop();
    }
  });
});

// ---------------------------------------------------------------------------

describe('concurrency', () => {
  let S;
  let A;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'monthly', MONTHLY, '2031-01-01T00:00:00Z', 201);
    for (const id of ['z1', 'z2']) await W.customer(A, id);
  });

  test('1000 parallel 1-unit spends on a wallet holding 500 → exactly 500 × 201 and 500 × 422; balance 0', async () => {
    const t0 = '2031-10-01T02:00:00Z';
    const t1 = '2031-10-01T03:00:00Z';
    await W.topup(A, 'z1', { topup_id: 'pay-z1', amount: 500 }, t0); // no offer: p 500, no bonus
    const started = Date.now();
    // All 1000 are sent at once, over at most LANES connections: rebuyd accepts at most 512 connections from
    // one IP (PER_IP_LIMIT in src/http/server.c) and closes the rest, so 1000 sockets from this process
    // cannot all be open. rebuyd handles one request per worker thread at a time, so 250 in flight is
    // far more contention than the 4 workers can serve anyway.
    const LANES = 250;
    const rs = await inLanes(1000, LANES, (i) => c.post(spendPath('z1'), { spend_id: `z1-${i}`, amount: 1 },
      atNow(i % 2 ? A : S.keys.storefront, t1, { timeoutMs: 300000 })));
    const ms = Date.now() - started;
    const ok = rs.filter((r) => r.status === 201);
    const no = rs.filter((r) => r.status === 422);
    const other = rs.filter((r) => r.status !== 201 && r.status !== 422);
    assert.deepEqual(other.map((r) => `${r.status} ${r.text}`), [], 'only 201 and 422');
    assert.equal(ok.length, 500, `201s (${ms} ms)`);
    assert.equal(no.length, 500, '422s');
    // every refusal saw an empty wallet (1 > 0 + 0 only then)
    for (const r of no) assertInsufficient(r, 0, 0);
    // every accepted spend left a different balance: 499, 498, …, 0
    assert.deepEqual(ok.map((r) => r.body.wallet.principal).sort((a, b) => a - b), Array.from({ length: 500 }, (_, i) => i));
    for (const r of ok) assert.deepEqual([r.body.spend.from_principal, r.body.spend.from_bonus], [1, 0]);
    const st = await W.statement(A, 'z1', t1);
    assert.deepEqual(st.wallet, WAL('z1', t1, { p: 0, opened: t0 }));
    // the top-up and 500 spends; their spend_ids are exactly the accepted ones
    assert.equal(st.movements.length, 501);
    assert.deepEqual(st.movements.filter((m) => m.kind === 'spend').map((m) => m.ref).sort(), ok.map((r) => r.body.spend.spend_id).sort());
    console.log(`# 1000 parallel spends: ${ms} ms`);
  });

  test('parallel reads bring a wallet up to now once: each release is recorded exactly once', async () => {
    const t0 = '2031-01-31T02:00:00Z';
    await W.topup(A, 'z2', { topup_id: 'pay-z2', amount: 20000, offer: 'monthly' }, t0);
    const NOW = '2031-05-31T02:00:00Z'; // k2..k5 due since (Feb 28, Mar 31, Apr 30, May 31)
    const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2
      ? c.get(walletPath('z2'), atNow(A, NOW)) : c.get(statementPath('z2'), atNow(S.keys.readonly, NOW)))));
    for (const r of rs) {
      assert.equal(r.status, 200, r.text);
      const w = r.body.wallet ?? r.body;
      assert.deepEqual(viewWallet(w), WAL('z2', NOW, { p: 20000, ba: 10000, bs: 10000, opened: t0 })); // k1..k5 = 5 × 2000
      if (r.body.movements) checkStatement(r.body);
    }
    const st = await W.statement(A, 'z2', NOW);
    assert.deepEqual(st.movements.map((m) => [m.kind, m.at]), [['topup', U(t0)],
      ...['2031-01-31', '2031-02-28', '2031-03-31', '2031-04-30', '2031-05-31'].map((d) => ['release', U(`${d}T02:00:00Z`)])]);
  });
});

// ---------------------------------------------------------------------------

describe('the ledger', () => {
  test('rebuyd verify: every transaction sums to zero and every cached balance equals its journal (0 differences)', async () => {
    const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
    assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
    assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
  });
});
