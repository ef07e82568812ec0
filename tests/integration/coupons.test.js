// Coupon packs (issue 8, /work/notes/packages.md): versioned packs (PUT/GET
// /v1/coupon-packs), grants and their validity windows in calendar months of
// the shop's zone (own_month: coupon k in month M + k − 1; in_order: one per
// month, each valid from the start of the month after the previous one was
// redeemed, all expiring at the start of M + expires_after_months), the
// statuses over simulated months, the coupon list and its status filter,
// redemption (201, replay 200, 409, each 422 type, 404), the ledger
// (coupon_redemption: promotion −amount, revenue +amount; a grant posts
// nothing), the top-up integration (an offer's coupon_pack, grant
// "topup:" + topup_id, cancelled by the top-up's refund), concurrency, and
// the segment filter coupons_valid.
//
// rebuyd runs with --test-clock; every coupon call carries Rebuy-Test-Now.
// Scenario instants lie in 2031–2032 (and 2040), after today, except the
// segment filter's, which uses the real clock (segments are not test-clock
// aware): its grants are made at test instants shortly before the real now.
//
// Shops are in Asia/Shanghai (UTC+8, no daylight saving) unless said: 10:00
// local is 02:00Z the same day; local midnight is 16:00Z the day before.
// SH('2031-12-01') = 2031-12-01 00:00 Shanghai = 2031-11-30T16:00:00Z.
// Every expected figure and instant is worked out by hand next to it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { U, plusHours, plusDays } from '../lib/tiers.js';
import { topupRefundPath } from '../lib/wallet-ledger.js';
import { ZX, OFF_X, TODAY, offStr } from '../lib/history.js';
import {
  couponApi, couponCalls, at, keys, packPath, PACKS, grantsPath, grantPath, couponsPath, redeemPath,
  offerPath, topupPath, PACK, CPN, GRANT, statuses, assertPackShape, assertGrantShape,
} from '../lib/coupons.js';

let svc;
let c;
let K;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = couponApi(svc);
  K = couponCalls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Coupon Shop'), timezone: 'Asia/Shanghai', ...opts });
const TEN_12 = 1000000000000;
const P0 = '2031-01-01T00:00:00Z';
/** 00:00 Shanghai time on a date. */
const SH = (date) => `${date}T00:00:00+08:00`;

// The packs most tests use
const FOUR = { name: 'Four times 50 off', count: 4, amount: 5000, min_spend: 20000, validity: 'own_month' };
const SEQ = { name: 'One a month, three months', count: 3, amount: 1000, validity: 'in_order', expires_after_months: 3 };
const SEQ_OPEN = { name: 'One a month, no end', count: 2, amount: 500, validity: 'in_order' };
const OWN_IGN = { name: 'Own month (1 month given)', count: 3, amount: 100, validity: 'own_month', expires_after_months: 1 };
const SEQ_1M = { name: 'In order, one month', count: 2, amount: 100, validity: 'in_order', expires_after_months: 1 };
const OFF = { name: 'Switched off', count: 1, amount: 100, validity: 'own_month', active: false };

async function journalOf(shopId) {
  const r = await svc.db.query(`SELECT seq, kind, wallet_seq, package_seq, coupon_seq, at FROM journal
    WHERE shop_id = $1 ORDER BY seq`, [shopId]);
  return r.rows;
}
async function entriesOf(journalSeq) {
  const r = await svc.db.query('SELECT account, amount::bigint AS amount FROM journal_entries WHERE journal_seq = $1 ORDER BY account', [journalSeq]);
  return Object.fromEntries(r.rows.map((x) => [x.account, Number(x.amount)]));
}

// ---------------------------------------------------------------------------

describe('coupon packs: PUT/GET /v1/coupon-packs', () => {
  let S;
  let A;
  const T0 = '2031-01-05T02:00:00Z';
  const T1 = '2031-01-05T03:00:00Z';
  const T2 = '2031-01-05T04:00:00Z';
  const V1 = { name: 'Four times 50 off', count: 4, amount: 5000, min_spend: 20000, validity: 'own_month', expires_after_months: null, active: true };
  const V2 = { name: 'One a month', count: 3, amount: 1000, validity: 'in_order' };
  const V3 = { name: 'One a month, six months', count: 3, amount: 1000, validity: 'in_order', expires_after_months: 6, active: false };
  let v1;
  let v2;
  let v3;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
  });

  test('every PUT is a new version: 201 (Location) for version 1, then 200; defaults filled in; the shop\'s currency', async () => {
    let r = await c.put(packPath('four-50'), V1, at(A, T0));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.location, '/v1/coupon-packs/four-50');
    assertPackShape(r.body);
    v1 = r.body;
    assert.deepEqual(v1, { code: 'four-50', version: 1, ...V1, currency: 'CNY', created_at: U(T0) });
    // version 2: only the required members → min_spend 0, expires_after_months null, active true
    r = await c.put(packPath('four-50'), V2, at(A, T1));
    assert.equal(r.status, 200, r.text);
    assertPackShape(r.body);
    v2 = r.body;
    assert.deepEqual(v2, {
      code: 'four-50', version: 2, name: 'One a month', count: 3, amount: 1000, min_spend: 0, validity: 'in_order',
      expires_after_months: null, active: true, currency: 'CNY', created_at: U(T1),
    });
    r = await c.put(packPath('four-50'), V3, at(A, T2));
    assert.equal(r.status, 200, r.text);
    v3 = r.body;
    assert.deepEqual(v3, PACK('four-50', 3, V3, T2));
    assert.deepEqual(v3.min_spend, 0);
  });

  test('GET: the latest version to every scope; ?version=N that version; 404 beyond or unknown; a bad version → 400', async () => {
    for (const key of Object.values(S.keys)) {
      const r = await c.get(packPath('four-50'), { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, v3);
    }
    for (const [n, v] of [[1, v1], [2, v2], [3, v3]]) {
      const r = await c.get(`${packPath('four-50')}?version=${n}`, { key: S.keys.readonly });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, v);
    }
    assertProblem(await c.get(`${packPath('four-50')}?version=4`, { key: A }), 404, 'not_found');
    assertProblem(await c.get(packPath('nope'), { key: A }), 404, 'not_found');
    assertProblem(await c.get(`${packPath('nope')}?version=1`, { key: A }), 404, 'not_found');
    for (const q of ['abc', '1.5', '0']) {
      assertProblem(await c.get(`${packPath('four-50')}?version=${q}`, { key: A }), 400, 'invalid_parameter', '/query/version');
    }
  });

  test('the list: the latest version of each pack, by code; another shop sees none', async () => {
    await K.pack(A, 'zz-last', { name: 'Last', count: 1, amount: 1, validity: 'own_month' }, T0, 201);
    await K.pack(A, 'a-first', { name: 'First', count: 2, amount: 2, validity: 'in_order', expires_after_months: 2 }, T0, 201);
    for (const key of Object.values(S.keys)) {
      const r = await c.get(PACKS, { key });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(keys(r.body), ['items']);
      r.body.items.forEach(assertPackShape);
      assert.deepEqual(r.body.items.map((p) => [p.code, p.version]), [['a-first', 1], ['four-50', 3], ['zz-last', 1]]);
      assert.deepEqual(r.body.items[1], v3);
    }
    const O = await mkShop();
    assert.deepEqual((await c.get(PACKS, { key: O.keys.readonly })).body, { items: [] });
    assertProblem(await c.get(packPath('four-50'), { key: O.keys.admin }), 404, 'not_found');
  });

  test('a bad code → 400 /path/code; a bad body → 422 at the pointer; nothing stored; the limits themselves are fine', async () => {
    const ok = { name: 'Ok', count: 2, amount: 100, validity: 'own_month' };
    for (const code of ['Four-50', 'a_b', 'a.b', 'x'.repeat(65)]) {
      assertProblem(await c.put(packPath(code), ok, at(A, T0)), 400, 'invalid_parameter', '/path/code');
    }
    const cases = [
      [{ ...ok, name: undefined }, '/name'],
      [{ ...ok, name: '' }, '/name'],
      [{ ...ok, name: 'x'.repeat(201) }, '/name'],
      [{ ...ok, name: 5 }, '/name'],
      [{ ...ok, count: undefined }, '/count'],
      [{ ...ok, count: 0 }, '/count'],
      [{ ...ok, count: 121 }, '/count'],
      [{ ...ok, count: 1.5 }, '/count'],
      [{ ...ok, count: '2' }, '/count'],
      [{ ...ok, amount: undefined }, '/amount'],
      [{ ...ok, amount: 0 }, '/amount'],
      [{ ...ok, amount: -5 }, '/amount'],
      [{ ...ok, amount: TEN_12 + 1 }, '/amount'],
      [{ ...ok, amount: '100' }, '/amount'],
      [{ ...ok, min_spend: -1 }, '/min_spend'],
      [{ ...ok, min_spend: TEN_12 + 1 }, '/min_spend'],
      [{ ...ok, min_spend: 1.5 }, '/min_spend'],
      [{ ...ok, validity: undefined }, '/validity'],
      [{ ...ok, validity: 'monthly' }, '/validity'],
      [{ ...ok, validity: 'OWN_MONTH' }, '/validity'],
      [{ ...ok, validity: null }, '/validity'],
      [{ ...ok, expires_after_months: 0 }, '/expires_after_months'],
      [{ ...ok, expires_after_months: 121 }, '/expires_after_months'],
      [{ ...ok, expires_after_months: 1.5 }, '/expires_after_months'],
      [{ ...ok, expires_after_months: '3' }, '/expires_after_months'],
      [{ ...ok, active: 'yes' }, '/active'],
      [{ ...ok, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await c.put(packPath('val-x'), body, at(A, T0));
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.put(packPath('val-x'), [ok], at(A, T0)), 422, 'validation_failed');
    assertProblem(await c.req('PUT', packPath('val-x'), { ...at(A, T0), rawBody: '{"name":' }), 400, 'malformed_json');
    assertProblem(await c.get(packPath('val-x'), { key: A }), 404, 'not_found');
    const code64 = `p${'1-'.repeat(31)}z`;
    assert.equal(code64.length, 64);
    const big = { name: 'é'.repeat(200), count: 120, amount: TEN_12, min_spend: TEN_12, validity: 'in_order', expires_after_months: 120 };
    assert.deepEqual(await K.pack(A, code64, big, T0, 201), PACK(code64, 1, big, T0));
    const small = { name: 'x', count: 1, amount: 1, min_spend: 0, validity: 'own_month', expires_after_months: 1 };
    assert.deepEqual(await K.pack(A, 'small', small, T0, 201), PACK('small', 1, small, T0));
  });

  test('only admin may PUT (storefront, readonly, platform → 403; no key → 401); the platform may not read', async () => {
    const body = { name: 'x', count: 1, amount: 1, validity: 'own_month' };
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await c.put(packPath('scoped'), body, at(key, T0)), 403, 'forbidden');
    }
    assertProblem(await c.put(packPath('scoped'), body), 401, 'unauthenticated');
    for (const p of [PACKS, packPath('four-50')]) {
      assertProblem(await c.get(p, { key: svc.platformKey }), 403, 'forbidden');
      assertProblem(await c.get(p), 401, 'unauthenticated');
    }
    assertProblem(await c.get(packPath('scoped'), { key: A }), 404, 'not_found');
  });
});

// ---------------------------------------------------------------------------

describe('grants: validity windows and statuses over simulated months', () => {
  let S;
  let A;
  const T = '2031-11-15T02:00:00Z'; // Sat 15 Nov 2031, 10:00 Shanghai: M = November 2031
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.pack(A, 'seq-3', SEQ, P0, 201);
    await K.pack(A, 'seq-open', SEQ_OPEN, P0, 201);
    await K.pack(A, 'own-ign', OWN_IGN, P0, 201);
    await K.pack(A, 'seq-1m', SEQ_1M, P0, 201);
    for (const id of ['m1', 'm2', 'm3', 'q1', 'q2', 'q3', 'q4', 'l1', 'l0']) await K.customer(A, id);
  });

  test('own_month: coupon 1 from the grant to 1 Dec 00:00 local, coupon 2 December, 3 January, 4 February (leap year)', async () => {
    const g = await K.grant(A, 'm1', { grant_id: 'g-own', pack: 'four-50' }, T);
    const C = (n, from, until, status) => CPN('g-own', n, 'four-50', 5000, 20000, from, until, status);
    // Dec 1 00:00 Shanghai = 2031-11-30T16:00Z; Jan 1 = 2031-12-31T16:00Z; Feb 1 = 2032-01-31T16:00Z; Mar 1 = 2032-02-29T16:00Z
    assert.deepEqual(g, GRANT('g-own', 'm1', 'four-50', 1, T, [
      C(1, T, '2031-11-30T16:00:00Z', 'valid'),
      C(2, '2031-11-30T16:00:00Z', '2031-12-31T16:00:00Z', 'upcoming'),
      C(3, '2031-12-31T16:00:00Z', '2032-01-31T16:00:00Z', 'upcoming'),
      C(4, '2032-01-31T16:00:00Z', '2032-02-29T16:00:00Z', 'upcoming'),
    ]));
    assert.deepEqual(g.coupons.map((x) => x.valid_until), [SH('2031-12-01'), SH('2032-01-01'), SH('2032-02-01'), SH('2032-03-01')].map(U));
    // the statuses as the months go by (the windows never change)
    const seen = [
      ['2031-11-30T15:59:59Z', ['valid', 'upcoming', 'upcoming', 'upcoming']], // 23:59:59 on 30 Nov local
      ['2031-11-30T16:00:00Z', ['expired', 'valid', 'upcoming', 'upcoming']], // 1 Dec 00:00 local
      ['2032-01-10T02:00:00Z', ['expired', 'expired', 'valid', 'upcoming']],
      ['2032-02-29T15:59:59Z', ['expired', 'expired', 'expired', 'valid']], // 29 Feb 2032 23:59:59 local
      ['2032-02-29T16:00:00Z', ['expired', 'expired', 'expired', 'expired']], // 1 Mar 00:00 local
    ];
    for (const [now, st] of seen) {
      const x = await K.getGrant(S.keys.readonly, 'm1', 'g-own', now);
      assert.deepEqual(x.coupons.map((y) => y.status), st, `at ${now}`);
      assert.deepEqual(x.coupons.map(({ status: _s, ...y }) => y), g.coupons.map(({ status: _s, ...y }) => y), `windows unchanged at ${now}`);
    }
  });

  test('own_month ignores expires_after_months (stored all the same): coupon 3 is valid in January, M + 2', async () => {
    const p = (await c.get(packPath('own-ign'), { key: A })).body;
    assert.equal(p.expires_after_months, 1);
    const g = await K.grant(A, 'm2', { grant_id: 'g-ign', pack: 'own-ign' }, T);
    assert.deepEqual(g.coupons.map((x) => [x.valid_from, x.valid_until]), [
      [U(T), U(SH('2031-12-01'))], [U(SH('2031-12-01')), U(SH('2032-01-01'))], [U(SH('2032-01-01')), U(SH('2032-02-01'))],
    ]);
    const x = await K.getGrant(A, 'm2', 'g-ign', '2032-01-10T02:00:00Z');
    assert.deepEqual(statuses(x.coupons), [[1, 'expired'], [2, 'expired'], [3, 'valid']]);
  });

  test('own_month granted in the last second of a local month: coupon 1 is valid for that second, coupon 2 from the next', async () => {
    const T9 = '2031-11-30T15:59:59Z'; // 30 Nov 23:59:59 Shanghai: still November
    const g = await K.grant(A, 'm3', { grant_id: 'g-edge', pack: 'four-50' }, T9);
    assert.deepEqual(g.coupons.slice(0, 2).map((x) => [x.valid_from, x.valid_until, x.status]), [
      [U(T9), U(SH('2031-12-01')), 'valid'], [U(SH('2031-12-01')), U(SH('2032-01-01')), 'upcoming'],
    ]);
    const x = await K.getGrant(A, 'm3', 'g-edge', '2031-11-30T16:00:00Z');
    assert.deepEqual(statuses(x.coupons), [[1, 'expired'], [2, 'valid'], [3, 'upcoming'], [4, 'upcoming']]);
    // coupon 1 has expired: redeeming it now → 422 coupon_expired
    assertProblem(await K.redeemRaw(A, 'm3', 'g-edge', 1, { order_id: 'o-m3', order_amount: 30000 }, '2031-11-30T16:00:00Z'), 422, 'coupon_expired');
  });

  test('own_month in a zone with daylight saving (America/New_York): months start at local midnight, EDT or EST', async () => {
    const N = await mkShop({ timezone: 'America/New_York' });
    await K.pack(N.keys.admin, 'four-50', FOUR, P0, 201);
    await K.customer(N.keys.admin, 'ny');
    const TN = '2031-10-15T14:00:00Z'; // 10:00 EDT
    const g = await K.grant(N.keys.admin, 'ny', { grant_id: 'g-ny', pack: 'four-50' }, TN);
    // 1 Nov 2031 00:00 is EDT (UTC−4; DST ends Sun 2 Nov) = 04:00Z; 1 Dec, 1 Jan, 1 Feb are EST (UTC−5) = 05:00Z
    assert.deepEqual(g.coupons.map((x) => [x.valid_from, x.valid_until]), [
      [U(TN), U('2031-11-01T04:00:00Z')],
      [U('2031-11-01T04:00:00Z'), U('2031-12-01T05:00:00Z')],
      [U('2031-12-01T05:00:00Z'), U('2032-01-01T05:00:00Z')],
      [U('2032-01-01T05:00:00Z'), U('2032-02-01T05:00:00Z')],
    ]);
    const x = await K.getGrant(N.keys.admin, 'ny', 'g-ny', '2031-11-01T03:59:59Z');
    assert.deepEqual(statuses(x.coupons), [[1, 'valid'], [2, 'upcoming'], [3, 'upcoming'], [4, 'upcoming']]);
    const y = await K.getGrant(N.keys.admin, 'ny', 'g-ny', '2031-12-01T04:59:59Z'); // 30 Nov 23:59:59 EST
    assert.deepEqual(statuses(y.coupons), [[1, 'expired'], [2, 'valid'], [3, 'upcoming'], [4, 'upcoming']]);
  });

  test('in_order: coupon k is upcoming (valid_from null) until k − 1 is redeemed, then valid from the start of the next month; all expire at M + 3', async () => {
    const g = await K.grant(A, 'q1', { grant_id: 'g-seq', pack: 'seq-3' }, T);
    // M = Nov 2031 + 3 → all expire at 1 Feb 2032 00:00 local = 2032-01-31T16:00Z
    const END = SH('2032-02-01');
    const C = (n, from, status, red) => CPN('g-seq', n, 'seq-3', 1000, 0, from, END, status, red);
    assert.deepEqual(g, GRANT('g-seq', 'q1', 'seq-3', 1, T, [C(1, T, 'valid'), C(2, null, 'upcoming'), C(3, null, 'upcoming')]));
    // coupons 2 and 3 before coupon 1 is redeemed → 422 coupon_not_yet_valid
    for (const n of [2, 3]) {
      assertProblem(await K.redeemRaw(A, 'q1', 'g-seq', n, { order_id: `o-q1-early-${n}`, order_amount: 3000 }, '2031-11-16T02:00:00Z'), 422, 'coupon_not_yet_valid');
    }
    // coupon 1 redeemed on 20 Nov → coupon 2 valid from 1 Dec 00:00 local
    const R1 = { at: '2031-11-20T02:00:00Z', order: 'o-q1-1', amount: 3000 };
    const c1 = await K.redeem(A, 'q1', 'g-seq', 1, { order_id: 'o-q1-1', order_amount: 3000 }, R1.at);
    assert.deepEqual(c1, C(1, T, 'redeemed', R1));
    let x = await K.getGrant(A, 'q1', 'g-seq', '2031-11-20T03:00:00Z');
    assert.deepEqual(x.coupons, [C(1, T, 'redeemed', R1), C(2, SH('2031-12-01'), 'upcoming'), C(3, null, 'upcoming')]);
    // still November: coupon 2 is not valid yet
    assertProblem(await K.redeemRaw(A, 'q1', 'g-seq', 2, { order_id: 'o-q1-2', order_amount: 3000 }, '2031-11-25T02:00:00Z'), 422, 'coupon_not_yet_valid');
    x = await K.getGrant(A, 'q1', 'g-seq', '2031-11-30T16:00:00Z');
    assert.deepEqual(statuses(x.coupons), [[1, 'redeemed'], [2, 'valid'], [3, 'upcoming']]);
    // coupon 2 redeemed on 10 Dec → coupon 3 valid from 1 Jan 00:00 local
    const R2 = { at: '2031-12-10T02:00:00Z', order: 'o-q1-2', amount: 100 };
    await K.redeem(A, 'q1', 'g-seq', 2, { order_id: 'o-q1-2', order_amount: 100 }, R2.at);
    x = await K.getGrant(A, 'q1', 'g-seq', '2031-12-10T03:00:00Z');
    assert.deepEqual(x.coupons, [C(1, T, 'redeemed', R1), C(2, SH('2031-12-01'), 'redeemed', R2), C(3, SH('2032-01-01'), 'upcoming')]);
    x = await K.getGrant(A, 'q1', 'g-seq', '2032-01-05T02:00:00Z');
    assert.deepEqual(statuses(x.coupons), [[1, 'redeemed'], [2, 'redeemed'], [3, 'valid']]);
    // 1 Feb 00:00 local: coupon 3 expires unredeemed; the redeemed ones stay redeemed
    x = await K.getGrant(A, 'q1', 'g-seq', '2032-01-31T16:00:00Z');
    assert.deepEqual(x.coupons, [C(1, T, 'redeemed', R1), C(2, SH('2031-12-01'), 'redeemed', R2), C(3, SH('2032-01-01'), 'expired')]);
    assertProblem(await K.redeemRaw(A, 'q1', 'g-seq', 3, { order_id: 'o-q1-3', order_amount: 3000 }, '2032-02-01T02:00:00Z'), 422, 'coupon_expired');
  });

  test('in_order: coupons never reached expire with the grant (valid_from still null)', async () => {
    await K.grant(A, 'q2', { grant_id: 'g-seq2', pack: 'seq-3' }, T);
    const END = SH('2032-02-01');
    let x = await K.getGrant(A, 'q2', 'g-seq2', '2032-01-31T15:59:59Z');
    assert.deepEqual(x.coupons.map((y) => [y.valid_from, y.valid_until, y.status]),
      [[U(T), U(END), 'valid'], [null, U(END), 'upcoming'], [null, U(END), 'upcoming']]);
    x = await K.getGrant(A, 'q2', 'g-seq2', '2032-01-31T16:00:00Z');
    assert.deepEqual(x.coupons.map((y) => [y.valid_from, y.valid_until, y.status]),
      [[U(T), U(END), 'expired'], [null, U(END), 'expired'], [null, U(END), 'expired']]);
    for (const n of [1, 2]) {
      assertProblem(await K.redeemRaw(A, 'q2', 'g-seq2', n, { order_id: `o-q2-${n}`, order_amount: 1 }, '2032-02-02T02:00:00Z'), 422, 'coupon_expired');
    }
  });

  test('in_order with expires_after_months null: nothing expires (valid_until null), years later too', async () => {
    const g = await K.grant(A, 'q3', { grant_id: 'g-open', pack: 'seq-open' }, T);
    assert.deepEqual(g.coupons, [
      CPN('g-open', 1, 'seq-open', 500, 0, T, null, 'valid'), CPN('g-open', 2, 'seq-open', 500, 0, null, null, 'upcoming'),
    ]);
    const R = { at: '2040-01-10T02:00:00Z', order: 'o-q3', amount: 700 };
    await K.redeem(A, 'q3', 'g-open', 1, { order_id: 'o-q3', order_amount: 700 }, R.at);
    let x = await K.getGrant(A, 'q3', 'g-open', '2040-01-10T03:00:00Z');
    assert.deepEqual(x.coupons, [CPN('g-open', 1, 'seq-open', 500, 0, T, null, 'redeemed', R), CPN('g-open', 2, 'seq-open', 500, 0, SH('2040-02-01'), null, 'upcoming')]);
    x = await K.getGrant(A, 'q3', 'g-open', SH('2040-02-01'));
    assert.equal(x.coupons[1].status, 'valid');
  });

  test('in_order, expires_after_months 1: coupon 2 would start as the grant ends (valid_from = valid_until) — upcoming, then expired', async () => {
    await K.grant(A, 'q4', { grant_id: 'g-1m', pack: 'seq-1m' }, T);
    await K.redeem(A, 'q4', 'g-1m', 1, { order_id: 'o-q4', order_amount: 100 }, '2031-11-20T02:00:00Z');
    let x = await K.getGrant(A, 'q4', 'g-1m', '2031-11-25T02:00:00Z');
    // M + 1 = December: valid_until 1 Dec 00:00 local for both; coupon 2 would start when the
    // grant ends, so it never becomes valid (valid_from stays null, and no month counts it)
    assert.deepEqual(x.coupons.map((y) => [y.valid_from, y.valid_until, y.status]),
      [[U(T), U(SH('2031-12-01')), 'redeemed'], [null, U(SH('2031-12-01')), 'upcoming']]);
    x = await K.getGrant(A, 'q4', 'g-1m', SH('2031-12-01'));
    assert.deepEqual(statuses(x.coupons), [[1, 'redeemed'], [2, 'expired']]);
  });

  test('GET /v1/customers/{id}/coupons: by grant time, then grant_id, then number; ?status= filters; a bad status → 400', async () => {
    await K.grant(A, 'l1', { grant_id: 'g-z', pack: 'four-50' }, '2031-11-10T02:00:00Z');
    await K.grant(A, 'l1', { grant_id: 'g-b', pack: 'seq-3' }, '2031-11-12T02:00:00Z');
    await K.grant(A, 'l1', { grant_id: 'g-a', pack: 'seq-open' }, '2031-11-12T02:00:00Z');
    await K.redeem(A, 'l1', 'g-z', 1, { order_id: 'o-l1', order_amount: 20000 }, '2031-11-13T02:00:00Z');
    const N1 = '2031-11-14T02:00:00Z';
    const ids = (items) => items.map((x) => `${x.grant_id}#${x.number}`);
    const all = await K.coupons(S.keys.readonly, 'l1', N1);
    // g-z first (granted 10 Nov), then g-a before g-b (same instant, by grant_id)
    assert.deepEqual(ids(all), ['g-z#1', 'g-z#2', 'g-z#3', 'g-z#4', 'g-a#1', 'g-a#2', 'g-b#1', 'g-b#2', 'g-b#3']);
    assert.deepEqual(all.map((x) => x.status), ['redeemed', 'upcoming', 'upcoming', 'upcoming', 'valid', 'upcoming', 'valid', 'upcoming', 'upcoming']);
    assert.deepEqual(ids(await K.coupons(A, 'l1', N1, 'valid')), ['g-a#1', 'g-b#1']);
    assert.deepEqual(ids(await K.coupons(A, 'l1', N1, 'upcoming')), ['g-z#2', 'g-z#3', 'g-z#4', 'g-a#2', 'g-b#2', 'g-b#3']);
    assert.deepEqual(ids(await K.coupons(A, 'l1', N1, 'redeemed')), ['g-z#1']);
    assert.deepEqual(await K.coupons(A, 'l1', N1, 'expired'), []);
    assert.deepEqual(await K.coupons(A, 'l1', N1, 'cancelled'), []);
    // 10 Jan 2032: g-z#2 (December) has expired, g-z#3 (January) is valid; g-b ends 1 Feb
    const N2 = '2032-01-10T02:00:00Z';
    assert.deepEqual((await K.coupons(A, 'l1', N2)).map((x) => x.status),
      ['redeemed', 'expired', 'valid', 'upcoming', 'valid', 'upcoming', 'valid', 'upcoming', 'upcoming']);
    assert.deepEqual(ids(await K.coupons(S.keys.storefront, 'l1', N2, 'expired')), ['g-z#2']);
    assert.deepEqual(ids(await K.coupons(A, 'l1', N2, 'valid')), ['g-z#3', 'g-a#1', 'g-b#1']);
    // the list carries the same coupons as the grants
    const gz = await K.getGrant(A, 'l1', 'g-z', N2);
    assert.deepEqual((await K.coupons(A, 'l1', N2)).slice(0, 4), gz.coupons);
    for (const q of ['bogus', 'Valid', '', 'valid,expired']) {
      assertProblem(await c.get(`${couponsPath('l1')}?status=${q}`, at(A, N2)), 400, 'invalid_parameter', '/query/status');
    }
    assertProblem(await c.get(`${couponsPath('l1')}?colour=red`, at(A, N2)), 400, 'invalid_parameter', '/query/colour');
    assert.deepEqual(await K.coupons(A, 'l0', N2), [], 'a customer without coupons');
    assertProblem(await c.get(couponsPath('ghost'), at(A, N2)), 404, 'not_found');
    assertProblem(await c.get(couponsPath('l1'), at(svc.platformKey, N2)), 403, 'forbidden');
  });
});

// ---------------------------------------------------------------------------

describe('grants: replay, conflict, validation, scopes, pack versions', () => {
  let S;
  let A;
  const T = '2031-11-15T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.pack(A, 'seq-3', SEQ, P0, 201);
    await K.pack(A, 'off-pack', OFF, P0, 201);
    for (const id of ['r1', 'r2', 'r3']) await K.customer(A, id);
  });

  test('the same grant_id again for the same customer and pack → 200, the grant as of now; anything different → 409 /grant_id', async () => {
    const first = await K.grant(A, 'r1', { grant_id: 'g-r', pack: 'four-50' }, T);
    assert.equal(first.issued_at, U(T));
    const again = await K.grant(S.keys.storefront, 'r1', { grant_id: 'g-r', pack: 'four-50' }, plusDays(T, 1), 200);
    assert.deepEqual(again, first, 'the stored grant (statuses as of a day later are the same)');
    // as of 1 Dec: the replay shows the statuses then, nothing new
    const later = await K.grant(A, 'r1', { grant_id: 'g-r', pack: 'four-50' }, SH('2031-12-01'), 200);
    assert.deepEqual(statuses(later.coupons), [[1, 'expired'], [2, 'valid'], [3, 'upcoming'], [4, 'upcoming']]);
    assert.equal(later.issued_at, U(T));
    assertProblem(await K.grantRaw(A, 'r1', { grant_id: 'g-r', pack: 'seq-3' }, T), 409, 'conflict', '/grant_id');
    assertProblem(await K.grantRaw(A, 'r2', { grant_id: 'g-r', pack: 'four-50' }, T), 409, 'conflict', '/grant_id');
    assert.deepEqual((await K.coupons(A, 'r1', T)).map((x) => x.grant_id), ['g-r', 'g-r', 'g-r', 'g-r'], 'one grant');
    assert.deepEqual(await K.coupons(A, 'r2', T), []);
  });

  test('an unknown or inactive pack → 422 /pack; an unknown or erased customer → 404; nothing recorded', async () => {
    for (const pack of ['nope', 'off-pack', 'Bad!']) {
      assertProblem(await K.grantRaw(A, 'r2', { grant_id: 'g-p', pack }, T), 422, 'validation_failed', '/pack');
    }
    assertProblem(await K.grantRaw(A, 'ghost', { grant_id: 'g-p', pack: 'four-50' }, T), 404, 'not_found');
    assert.equal((await c.del('/v1/customers/r3', { key: A })).status, 204);
    assertProblem(await K.grantRaw(A, 'r3', { grant_id: 'g-p', pack: 'four-50' }, T), 404, 'not_found');
    const O = await mkShop();
    await K.pack(O.keys.admin, 'four-50', FOUR, P0, 201);
    assertProblem(await K.grantRaw(O.keys.admin, 'r2', { grant_id: 'g-p', pack: 'four-50' }, T), 404, 'not_found', undefined);
    // g-p was never recorded: usable now
    const g = await K.grant(A, 'r2', { grant_id: 'g-p', pack: 'four-50' }, T);
    assert.equal(g.customer_id, 'r2');
    // a pack switched off after a grant: the grant stays, its replay still answers 200, new grants → 422 /pack
    await K.pack(A, 'four-50', { ...FOUR, active: false }, plusHours(T, 1), 200);
    await K.grant(A, 'r2', { grant_id: 'g-p', pack: 'four-50' }, plusHours(T, 2), 200);
    assertProblem(await K.grantRaw(A, 'r2', { grant_id: 'g-p2', pack: 'four-50' }, plusHours(T, 2)), 422, 'validation_failed', '/pack');
    await K.pack(A, 'four-50', FOUR, plusHours(T, 3), 200);
  });

  test('bodies: 422 at the pointer, 400 malformed; scopes; Idempotency-Key; GET of an unknown or another customer\'s grant → 404', async () => {
    const cases = [
      [{ pack: 'four-50' }, '/grant_id'],
      [{ grant_id: '', pack: 'four-50' }, '/grant_id'],
      [{ grant_id: 'a b', pack: 'four-50' }, '/grant_id'],
      [{ grant_id: 'x'.repeat(129), pack: 'four-50' }, '/grant_id'],
      [{ grant_id: 5, pack: 'four-50' }, '/grant_id'],
      [{ grant_id: 'v-1' }, '/pack'],
      [{ grant_id: 'v-1', pack: 5 }, '/pack'],
      [{ grant_id: 'v-1', pack: 'four-50', colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await K.grantRaw(A, 'r2', body, T);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', grantsPath('r2'), { ...at(A, T), rawBody: '{"grant_id":' }), 400, 'malformed_json');
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await K.grantRaw(key, 'r2', { grant_id: 'g-sc', pack: 'four-50' }, T), 403, 'forbidden');
    }
    assertProblem(await c.post(grantsPath('r2'), { grant_id: 'g-sc', pack: 'four-50' }), 401, 'unauthenticated');
    assertProblem(await c.get(grantPath('r2', 'g-sc'), at(A, T)), 404, 'not_found');
    const sf = await K.grant(S.keys.storefront, 'r2', { grant_id: 'g-sc', pack: 'four-50' }, T);
    assert.deepEqual(await K.getGrant(S.keys.readonly, 'r2', 'g-sc', T), sf);
    // r1's grant read through r2 → 404; an unknown grant → 404
    assertProblem(await c.get(grantPath('r2', 'g-r'), at(A, T)), 404, 'not_found');
    assertProblem(await c.get(grantPath('r2', 'nope'), at(A, T)), 404, 'not_found');
    assertProblem(await c.get(grantPath('ghost', 'g-sc'), at(A, T)), 404, 'not_found');
    // Idempotency-Key: the retry answers the original; the key with another body → 422 idempotency_key_reused
    const ik = uniq('ik-grant');
    const r1 = await K.grantRaw(A, 'r2', { grant_id: 'g-ik', pack: 'seq-3' }, T, { idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await K.grantRaw(A, 'r2', { grant_id: 'g-ik', pack: 'seq-3' }, plusHours(T, 1), { idempotencyKey: ik });
    assert.deepEqual([r2.status, r2.headers['idempotent-replayed'], r2.text], [201, 'true', r1.text]);
    assertProblem(await K.grantRaw(A, 'r2', { grant_id: 'g-ik2', pack: 'seq-3' }, T, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
  });

  test('a grant takes the pack\'s latest version; older grants keep theirs', async () => {
    const V = { name: 'Two of 3', count: 2, amount: 300, validity: 'own_month' };
    await K.pack(A, 'ver-pack', V, P0, 201);
    const g1 = await K.grant(A, 'r1', { grant_id: 'g-v1', pack: 'ver-pack' }, T);
    await K.pack(A, 'ver-pack', { name: 'Three of 7', count: 3, amount: 700, min_spend: 1000, validity: 'own_month' }, plusHours(T, 1), 200);
    const g2 = await K.grant(A, 'r1', { grant_id: 'g-v2', pack: 'ver-pack' }, plusHours(T, 2));
    assert.deepEqual([g1.pack_version, g1.coupons.length, g1.coupons[0].amount, g1.coupons[0].min_spend], [1, 2, 300, 0]);
    assert.deepEqual([g2.pack_version, g2.coupons.length, g2.coupons[0].amount, g2.coupons[0].min_spend], [2, 3, 700, 1000]);
    assert.deepEqual(await K.getGrant(A, 'r1', 'g-v1', plusHours(T, 3)), g1);
  });
});

// ---------------------------------------------------------------------------

describe('redeem: POST /v1/customers/{id}/coupon-grants/{grant_id}/coupons/{number}/redeem', () => {
  let S;
  let A;
  const T = '2031-11-15T02:00:00Z';
  const R1 = '2031-11-16T02:00:00Z';
  const R2 = '2031-11-17T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.pack(A, 'seq-3', SEQ, P0, 201);
    for (const id of ['x1', 'x2']) await K.customer(A, id);
    await K.grant(A, 'x1', { grant_id: 'g-x', pack: 'four-50' }, T);
    await K.grant(A, 'x1', { grant_id: 'g-x0', pack: 'seq-3' }, T);
    await K.grant(A, 'x2', { grant_id: 'g-x2', pack: 'four-50' }, T);
  });

  test('201 with the coupon; the same order and amount → 200; same order, other amount → 409; another order → 422 coupon_used', async () => {
    // 19999 < min_spend 20000 → 422 below_minimum_spend with min_spend
    const low = await K.redeemRaw(A, 'x1', 'g-x', 1, { order_id: 'o-x-1', order_amount: 19999 }, R1);
    assertProblem(low, 422, 'below_minimum_spend');
    assert.equal(low.body.min_spend, 20000);
    // 20000 = min_spend: accepted
    const red = { at: R1, order: 'o-x-1', amount: 20000 };
    const first = await K.redeem(A, 'x1', 'g-x', 1, { order_id: 'o-x-1', order_amount: 20000 }, R1);
    assert.deepEqual(first, CPN('g-x', 1, 'four-50', 5000, 20000, T, SH('2031-12-01'), 'redeemed', red));
    const again = await K.redeem(S.keys.storefront, 'x1', 'g-x', 1, { order_id: 'o-x-1', order_amount: 20000 }, R2, 200);
    assert.deepEqual(again, first, 'the stored redemption (redeemed_at of the first)');
    assertProblem(await K.redeemRaw(A, 'x1', 'g-x', 1, { order_id: 'o-x-1', order_amount: 25000 }, R2), 409, 'conflict');
    assertProblem(await K.redeemRaw(A, 'x1', 'g-x', 1, { order_id: 'o-x-2', order_amount: 30000 }, R2), 422, 'coupon_used');
    // coupon 2 is December's: upcoming in November → coupon_not_yet_valid
    assertProblem(await K.redeemRaw(A, 'x1', 'g-x', 2, { order_id: 'o-x-3', order_amount: 30000 }, R2), 422, 'coupon_not_yet_valid');
    // min_spend 0: an order amount of 0 is enough
    const zero = await K.redeem(A, 'x1', 'g-x0', 1, { order_id: 'o-x-0', order_amount: 0 }, R2);
    assert.deepEqual([zero.amount, zero.min_spend, zero.order_amount], [1000, 0, 0]);
    // coupon 2 not redeemed in December → expired in January
    assertProblem(await K.redeemRaw(A, 'x1', 'g-x', 2, { order_id: 'o-x-4', order_amount: 30000 }, '2032-01-02T02:00:00Z'), 422, 'coupon_expired');
    const g = await K.getGrant(A, 'x1', 'g-x', '2032-01-02T02:00:00Z');
    assert.deepEqual(g.coupons.map((x) => [x.status, x.order_id]), [['redeemed', 'o-x-1'], ['expired', null], ['valid', null], ['upcoming', null]]);
    assert.deepEqual(g.coupons[0], first, 'the failed attempts changed nothing');
  });

  test('a number that is not 1..count, an unknown grant, another customer\'s grant, an unknown customer → 404', async () => {
    const body = { order_id: 'o-404', order_amount: 30000 };
    for (const n of ['0', '5', '-1', '1.5', 'abc', '01x']) {
      assertProblem(await K.redeemRaw(A, 'x2', 'g-x2', n, body, R1), 404, 'not_found');
    }
    assertProblem(await K.redeemRaw(A, 'x2', 'nope', 1, body, R1), 404, 'not_found');
    assertProblem(await K.redeemRaw(A, 'x1', 'g-x2', 1, body, R1), 404, 'not_found'); // x2's grant through x1
    assertProblem(await K.redeemRaw(A, 'ghost', 'g-x2', 1, body, R1), 404, 'not_found');
    const g = await K.getGrant(A, 'x2', 'g-x2', R1);
    assert.equal(g.coupons[0].status, 'valid', 'nothing recorded');
  });

  test('bodies: 422 at the pointer, 400 malformed; scopes (storefront may, readonly may not)', async () => {
    const cases = [
      [{ order_amount: 30000 }, '/order_id'],
      [{ order_id: '', order_amount: 30000 }, '/order_id'],
      [{ order_id: 'x'.repeat(129), order_amount: 30000 }, '/order_id'],
      [{ order_id: 5, order_amount: 30000 }, '/order_id'],
      [{ order_id: 'o-v' }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: -1 }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: TEN_12 + 1 }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: 1.5 }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: '30000' }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: null }, '/order_amount'],
      [{ order_id: 'o-v', order_amount: 30000, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await K.redeemRaw(A, 'x2', 'g-x2', 1, body, R1);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', redeemPath('x2', 'g-x2', 1), { ...at(A, R1), rawBody: '{"order_id":' }), 400, 'malformed_json');
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await K.redeemRaw(key, 'x2', 'g-x2', 1, { order_id: 'o-sf', order_amount: 30000 }, R1), 403, 'forbidden');
    }
    assertProblem(await c.post(redeemPath('x2', 'g-x2', 1), { order_id: 'o-sf', order_amount: 30000 }), 401, 'unauthenticated');
    assert.equal((await K.getGrant(A, 'x2', 'g-x2', R1)).coupons[0].status, 'valid', 'nothing recorded');
    const sf = await K.redeem(S.keys.storefront, 'x2', 'g-x2', 1, { order_id: 'o-sf', order_amount: 30000 }, R1);
    assert.deepEqual(sf, CPN('g-x2', 1, 'four-50', 5000, 20000, T, SH('2031-12-01'), 'redeemed', { at: R1, order: 'o-sf', amount: 30000 }));
  });
});

// ---------------------------------------------------------------------------

describe('the ledger: a redemption posts coupon_redemption (promotion −amount, revenue +amount); a grant posts nothing', () => {
  test('SQL on the journal: no row for a grant; one row, two entries, for a redemption; none for a replay or a refusal', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    const T = '2031-11-15T02:00:00Z';
    const R1 = '2031-11-16T02:00:00Z';
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.pack(A, 'seq-3', SEQ, P0, 201);
    await K.customer(A, 'lg');
    await K.grant(A, 'lg', { grant_id: 'g-l', pack: 'four-50' }, T);
    await K.grant(A, 'lg', { grant_id: 'g-l3', pack: 'seq-3' }, T);
    assert.deepEqual(await journalOf(S.shopId), [], 'granting posts nothing to the ledger');
    await K.redeem(A, 'lg', 'g-l', 1, { order_id: 'o-l', order_amount: 26800 }, R1);
    let rows = await journalOf(S.shopId);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const [j] = rows;
    assert.deepEqual([j.kind, j.wallet_seq, j.package_seq, j.coupon_seq !== null, j.at.toISOString()],
      ['coupon_redemption', null, null, true, '2031-11-16T02:00:00.000Z'], JSON.stringify(j));
    assert.deepEqual(await entriesOf(j.seq), { promotion: -5000, revenue: 5000 }, 'promotion −amount, revenue +amount (not the order amount)');
    // a replay, a refusal, a conflict: nothing more
    await K.redeem(A, 'lg', 'g-l', 1, { order_id: 'o-l', order_amount: 26800 }, plusHours(R1, 1), 200);
    assertProblem(await K.redeemRaw(A, 'lg', 'g-l', 1, { order_id: 'o-l2', order_amount: 26800 }, plusHours(R1, 1)), 422, 'coupon_used');
    assertProblem(await K.redeemRaw(A, 'lg', 'g-l', 1, { order_id: 'o-l', order_amount: 1 }, plusHours(R1, 1)), 409, 'conflict');
    assertProblem(await K.redeemRaw(A, 'lg', 'g-l', 2, { order_id: 'o-l3', order_amount: 26800 }, plusHours(R1, 1)), 422, 'coupon_not_yet_valid');
    assert.equal((await journalOf(S.shopId)).length, 1);
    // a second redemption of another pack: its own row with its own amount
    await K.redeem(A, 'lg', 'g-l3', 1, { order_id: 'o-l4', order_amount: 0 }, plusHours(R1, 2));
    rows = await journalOf(S.shopId);
    assert.deepEqual(rows.map((x) => x.kind), ['coupon_redemption', 'coupon_redemption']);
    assert.notEqual(rows[0].coupon_seq, rows[1].coupon_seq, 'each row belongs to its coupon');
    assert.deepEqual(await entriesOf(rows[1].seq), { promotion: -1000, revenue: 1000 });
  });
});

// ---------------------------------------------------------------------------

describe('top-ups with a coupon pack: the offer\'s coupon_pack, the grant "topup:" + topup_id, refunds', () => {
  let S;
  let A;
  const T = '2031-11-15T02:00:00Z';
  const TP3 = { name: 'Three of 10', count: 3, amount: 1000, validity: 'own_month' };
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.pack(A, 'tp-3', TP3, P0, 201);
    for (const id of ['t1', 't2', 't3']) await K.customer(A, id);
  });

  test('an offer shows its coupon_pack (null without); an unknown or malformed pack → 422 /coupon_pack', async () => {
    let r = await c.put(offerPath('with-cpn'), { name: 'Top up, get coupons', bonus: {}, coupon_pack: 'tp-3' }, at(A, P0));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.coupon_pack, 'tp-3');
    assert.equal((await c.get(offerPath('with-cpn'), { key: S.keys.readonly })).body.coupon_pack, 'tp-3');
    r = await c.put(offerPath('plain'), { name: 'Plain', bonus: {} }, at(A, P0));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.coupon_pack, null);
    for (const pack of ['nope', 'Bad!', 5]) {
      assertProblem(await c.put(offerPath('bad-cpn'), { name: 'Bad', bonus: {}, coupon_pack: pack }, at(A, P0)), 422, 'validation_failed', '/coupon_pack');
    }
    assertProblem(await c.get(offerPath('bad-cpn'), { key: A }), 404, 'not_found');
  });

  test('a top-up with the offer grants the pack: coupons in the reply, "topup:" + topup_id, source topup; a replay shows the same', async () => {
    const body = { topup_id: 'pay-1', amount: 10000, offer: 'with-cpn' };
    const r = await c.post(topupPath('t1'), body, at(A, T));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(keys(r.body), ['coupons', 'topup', 'wallet']);
    assertGrantShape(r.body.coupons, T);
    const C = (n, from, until, status) => CPN('topup:pay-1', n, 'tp-3', 1000, 0, from, until, status);
    assert.deepEqual(r.body.coupons, GRANT('topup:pay-1', 't1', 'tp-3', 1, T, [
      C(1, T, SH('2031-12-01'), 'valid'), C(2, SH('2031-12-01'), SH('2032-01-01'), 'upcoming'), C(3, SH('2032-01-01'), SH('2032-02-01'), 'upcoming'),
    ], 'pay-1'));
    assert.equal(r.body.wallet.principal, 10000);
    const again = await c.post(topupPath('t1'), body, at(A, plusHours(T, 1)));
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body.coupons, r.body.coupons, 'the replay shows the same grant');
    assert.deepEqual(again.body.topup, r.body.topup);
    assert.deepEqual(await K.getGrant(S.keys.readonly, 't1', 'topup:pay-1', plusHours(T, 1)), r.body.coupons);
    assert.equal((await K.coupons(A, 't1', plusHours(T, 1))).length, 3, 'granted once');
    // no offer, or an offer without a pack → coupons null
    for (const [id, offer] of [['pay-0', undefined], ['pay-p', 'plain']]) {
      const x = await c.post(topupPath('t1'), { topup_id: id, amount: 500, ...(offer ? { offer } : {}) }, at(A, plusHours(T, 2)));
      assert.equal(x.status, 201, x.text);
      assert.equal(x.body.coupons, null, `${id}: no coupons`);
    }
    assert.equal((await K.coupons(A, 't1', plusHours(T, 2))).length, 3);
  });

  test('the latest version of the pack at the top-up is granted', async () => {
    await K.pack(A, 'tp-3', { name: 'Two of 20', count: 2, amount: 2000, validity: 'in_order', expires_after_months: 2 }, plusHours(T, 3), 200);
    const T2 = plusHours(T, 4);
    const r = await c.post(topupPath('t2'), { topup_id: 'pay-2', amount: 10000, offer: 'with-cpn' }, at(A, T2));
    assert.equal(r.status, 201, r.text);
    // in_order, M = November + 2 → valid_until 1 Jan 2032 00:00 local
    assert.deepEqual(r.body.coupons, GRANT('topup:pay-2', 't2', 'tp-3', 2, T2, [
      CPN('topup:pay-2', 1, 'tp-3', 2000, 0, T2, SH('2032-01-01'), 'valid'),
      CPN('topup:pay-2', 2, 'tp-3', 2000, 0, null, SH('2032-01-01'), 'upcoming'),
    ], 'pay-2'));
    await K.pack(A, 'tp-3', TP3, plusHours(T, 5), 200);
  });

  test('the refund of the top-up cancels the coupons not redeemed yet and keeps the redeemed one; a cancelled coupon → 422 coupon_used', async () => {
    const T3 = '2031-11-18T02:00:00Z';
    const r = await c.post(topupPath('t3'), { topup_id: 'pay-3', amount: 10000, offer: 'with-cpn' }, at(A, T3));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.coupons.pack_version, 3);
    const red = { at: '2031-11-20T02:00:00Z', order: 'o-t3', amount: 5000 };
    await K.redeem(S.keys.storefront, 't3', 'topup:pay-3', 1, { order_id: 'o-t3', order_amount: 5000 }, red.at);
    const ref = await c.req('POST', topupRefundPath('t3', 'pay-3'), at(A, '2031-11-25T02:00:00Z'));
    assert.equal(ref.status, 201, ref.text);
    const C = (n, from, until, status, rd) => CPN('topup:pay-3', n, 'tp-3', 1000, 0, from, until, status, rd);
    const expect = GRANT('topup:pay-3', 't3', 'tp-3', 3, T3, [
      C(1, T3, SH('2031-12-01'), 'redeemed', red), C(2, SH('2031-12-01'), SH('2032-01-01'), 'cancelled'),
      C(3, SH('2032-01-01'), SH('2032-02-01'), 'cancelled'),
    ], 'pay-3');
    assert.deepEqual(await K.getGrant(A, 't3', 'topup:pay-3', '2031-11-26T02:00:00Z'), expect);
    // in December coupon 2 would be valid: it is cancelled → coupon_used; still cancelled, not expired, later
    assertProblem(await K.redeemRaw(A, 't3', 'topup:pay-3', 2, { order_id: 'o-t3-2', order_amount: 5000 }, '2031-12-05T02:00:00Z'), 422, 'coupon_used');
    assert.deepEqual(await K.getGrant(A, 't3', 'topup:pay-3', '2032-03-01T02:00:00Z'), expect);
    assert.deepEqual((await K.coupons(A, 't3', '2031-12-05T02:00:00Z', 'cancelled')).map((x) => x.number), [2, 3]);
    // the refund again → 200, nothing changes
    const ref2 = await c.req('POST', topupRefundPath('t3', 'pay-3'), at(A, '2031-12-06T02:00:00Z'));
    assert.equal(ref2.status, 200, ref2.text);
    assert.deepEqual(await K.getGrant(A, 't3', 'topup:pay-3', '2031-12-06T02:00:00Z'), expect);
    // the ledger keeps the redemption: coupon_redemption rows of this shop = the two redeemed coupons
    const rows = (await journalOf(S.shopId)).filter((x) => x.kind === 'coupon_redemption');
    assert.equal(rows.length, 1, 'one coupon redeemed in this shop');
    assert.deepEqual(await entriesOf(rows[0].seq), { promotion: -1000, revenue: 1000 });
  });
});

// ---------------------------------------------------------------------------

describe('concurrency', () => {
  test('20 parallel redemptions of one coupon with different orders → exactly one 201, 19 × 422 coupon_used; one ledger row', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    const T = '2031-11-15T02:00:00Z';
    const R1 = '2031-11-16T02:00:00Z';
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.customer(A, 'z1');
    await K.grant(A, 'z1', { grant_id: 'g-z', pack: 'four-50' }, T);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => K.redeemRaw(i % 2 ? A : S.keys.storefront, 'z1', 'g-z', 1,
      { order_id: `o-${i}`, order_amount: 20000 + i }, R1, { timeoutMs: 60000 })));
    const ok = rs.filter((r) => r.status === 201);
    const used = rs.filter((r) => r.status === 422 && r.body.code === 'coupon_used');
    assert.deepEqual(rs.filter((r) => r.status !== 201 && !(r.status === 422 && r.body.code === 'coupon_used')).map((r) => `${r.status} ${r.text}`), []);
    assert.equal(ok.length, 1, 'exactly one redemption');
    assert.equal(used.length, 19);
    const win = ok[0].body.coupon;
    const g = await K.getGrant(A, 'z1', 'g-z', plusHours(R1, 1));
    assert.deepEqual(g.coupons[0], win);
    const rows = await journalOf(S.shopId);
    assert.deepEqual(rows.map((x) => x.kind), ['coupon_redemption']);
  });

  test('20 parallel redemptions of one coupon with the same order → one 201 and 19 × 200, all the same coupon', async () => {
    const S = await mkShop();
    const A = S.keys.admin;
    const T = '2031-11-15T02:00:00Z';
    await K.pack(A, 'four-50', FOUR, P0, 201);
    await K.customer(A, 'z2');
    await K.grant(A, 'z2', { grant_id: 'g-z2', pack: 'four-50' }, T);
    const body = { order_id: 'o-same', order_amount: 20000 };
    const rs = await Promise.all(Array.from({ length: 20 }, () => K.redeemRaw(A, 'z2', 'g-z2', 1, body, '2031-11-16T02:00:00Z', { timeoutMs: 60000 })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [...Array(19).fill(200), 201].sort(), rs.map((r) => `${r.status} ${r.text}`).join('\n'));
    for (const r of rs) assert.deepEqual(r.body, rs[0].body);
    assert.equal((await journalOf(S.shopId)).length, 1);
  });
});

// ---------------------------------------------------------------------------
// The segment filter coupons_valid (the real clock: a coupon's status now)

describe('custom segment filter: coupons_valid ("a coupon valid this month not yet used")', () => {
  let S;
  let A;
  const HOUR = 3600000;
  const ago = (ms) => new Date(Date.now() - ms).toISOString();
  // Zone X (lib/history.js) is a fixed-offset zone where it is 12:xx now: an hour ago is the same local day and month.
  // The 15th of the local month n months before this one, 12:00 local.
  const monthsBack = (n) => {
    let y = Number(TODAY.slice(0, 4));
    let m = Number(TODAY.slice(5, 7)) - n;
    while (m <= 0) { m += 12; y -= 1; }
    return `${y}-${String(m).padStart(2, '0')}-15T12:00:00${offStr(OFF_X)}`;
  };

  //  customer | coupons (own-3: own_month, 3 coupons; seq-2: in_order, 2, 12 months)     | valid now
  //  a        | own-3 granted an hour ago: #1 valid this month                            | 1
  //  b        | own-3 an hour ago, #1 redeemed half an hour ago                           | 0
  //  c        | own-3 and seq-2 an hour ago: #1 of each valid                             | 2
  //  d        | none                                                                      | 0
  //  e        | own-3 granted two months ago (the 15th): #1, #2 expired, #3 valid this month | 1
  //  f        | seq-2 an hour ago, #1 redeemed half an hour ago: #2 upcoming (next month)  | 0
  //  g        | own-3 with a top-up an hour ago, the top-up refunded half an hour ago: cancelled | 0
  //  h        | own-3 granted four months ago: all three expired                          | 0
  //  Every customer has one order ten days ago (members of a segment have a qualifying order).
  before(async () => {
    S = await mkShop({ timezone: ZX });
    A = S.keys.admin;
    const P = ago(400 * 24 * HOUR);
    await K.pack(A, 'own-3', { name: 'Own month × 3', count: 3, amount: 500, validity: 'own_month' }, P, 201);
    await K.pack(A, 'seq-2', { name: 'In order × 2', count: 2, amount: 500, validity: 'in_order', expires_after_months: 12 }, P, 201);
    const o = await c.put(offerPath('cp'), { name: 'With coupons', bonus: {}, coupon_pack: 'own-3' }, at(A, P));
    assert.equal(o.status, 201, o.text);
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) {
      await K.customer(A, id);
      const r = await c.put(`/v1/orders/o-${id}`, {
        customer_id: id, placed_at: ago(10 * 24 * HOUR), channel: 'web', currency: 'CNY',
        lines: [{ sku: 'S', category: 'tea', role: 'regular', quantity: 1, unit_price: 1000 }], total: 1000,
      }, { key: A });
      assert.equal(r.status, 201, r.text);
    }
    const t1 = ago(HOUR);
    const t2 = ago(HOUR / 2);
    await K.grant(A, 'a', { grant_id: 'g-a', pack: 'own-3' }, t1);
    await K.grant(A, 'b', { grant_id: 'g-b', pack: 'own-3' }, t1);
    await K.redeem(A, 'b', 'g-b', 1, { order_id: 'o-b', order_amount: 1000 }, t2);
    await K.grant(A, 'c', { grant_id: 'g-c1', pack: 'own-3' }, t1);
    await K.grant(A, 'c', { grant_id: 'g-c2', pack: 'seq-2' }, t1);
    const ge = await K.grant(A, 'e', { grant_id: 'g-e', pack: 'own-3' }, monthsBack(2));
    assert.equal(ge.coupons[2].status, 'upcoming', 'two months ago, coupon 3 was upcoming');
    await K.grant(A, 'f', { grant_id: 'g-f', pack: 'seq-2' }, t1);
    await K.redeem(A, 'f', 'g-f', 1, { order_id: 'o-f', order_amount: 1000 }, t2);
    const tp = await c.post(topupPath('g'), { topup_id: 'pay-g', amount: 1000, offer: 'cp' }, at(A, t1));
    assert.equal(tp.status, 201, tp.text);
    assert.notEqual(tp.body.coupons, null);
    const rf = await c.req('POST', topupRefundPath('g', 'pay-g'), at(A, t2));
    assert.equal(rf.status, 201, rf.text);
    await K.grant(A, 'h', { grant_id: 'g-h', pack: 'own-3' }, monthsBack(4));
  });

  /** Members (ids, sorted) of a new custom segment with this filter. */
  async function members(filter) {
    const code = uniq('cv').toLowerCase().replace(/[^a-z0-9-]/g, '-');
    const put = await c.put(`/v1/segments/${code}`, { name: code, filter }, { key: A });
    assert.equal(put.status, 201, put.text);
    const r = await c.get(`/v1/segments/${code}/customers?limit=200`, { key: A });
    assert.equal(r.status, 200, r.text);
    assert.equal(put.body.size, r.body.items.length, 'size agrees with the list');
    return r.body.items.map((x) => x.id).sort();
  }
  const C = (op, value) => ({ field: 'coupons_valid', op, value });

  test('the coupons are as the table says, read now (real clock)', async () => {
    const valid = {};
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) valid[id] = (await K.coupons(S.keys.readonly, id, undefined, 'valid')).length;
    assert.deepEqual(valid, { a: 1, b: 0, c: 2, d: 0, e: 1, f: 0, g: 0, h: 0 });
    assert.deepEqual((await K.coupons(A, 'e')).map((x) => x.status), ['expired', 'expired', 'valid']);
    assert.deepEqual((await K.coupons(A, 'g')).map((x) => x.status), ['cancelled', 'cancelled', 'cancelled']);
  });

  test('"a coupon valid this month not yet used" and other comparisons', async () => {
    assert.deepEqual(await members(C('gte', 1)), ['a', 'c', 'e']);
    assert.deepEqual(await members(C('eq', 2)), ['c']);
    assert.deepEqual(await members(C('eq', 0)), ['b', 'd', 'f', 'g', 'h'], 'none valid (or none at all) counts as 0');
    assert.deepEqual(await members(C('lt', 1)), ['b', 'd', 'f', 'g', 'h']);
    assert.deepEqual(await members(C('between', [1, 1])), ['a', 'e']);
    assert.deepEqual(await members(C('ne', 1)), ['b', 'c', 'd', 'f', 'g', 'h']);
    assert.deepEqual(await members({ not: C('gte', 1) }), ['b', 'd', 'f', 'g', 'h']);
  });

  test('bad coupons_valid conditions → 422 naming the part', async () => {
    const bad = async (filter, pointer) => assertProblem(await c.put('/v1/segments/bad-cv', { name: 'x', filter }, { key: A }), 422, 'validation_failed', pointer);
    await bad(C('contains', 1), '/filter/op');
    await bad(C('gte', 'lots'), '/filter/value');
    await bad(C('between', [2]), '/filter/value');
    assertProblem(await c.get('/v1/segments/bad-cv', { key: A }), 404, 'not_found');
  });
});

// ---------------------------------------------------------------------------

describe('grant ids, inactive packs and what verify catches', () => {
  let S;
  let A;
  const T = '2031-11-15T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await K.pack(A, 'p-on', { name: 'On', count: 2, amount: 100, validity: 'own_month' }, P0, 201);
    await K.pack(A, 'p-off', { name: 'Soon off', count: 2, amount: 100, validity: 'own_month' }, P0, 201);
    const r = await c.put(offerPath('with-off'), { name: 'Offer', bonus: {}, coupon_pack: 'p-off' }, at(A, P0));
    assert.equal(r.status, 201, r.text);
    await K.pack(A, 'p-off', { name: 'Soon off', count: 2, amount: 100, validity: 'own_month', active: false }, P0, 200);
    for (const id of ['r1', 'r2']) await K.customer(A, id);
  });

  test('a stand-alone grant cannot take a "topup:" id (the top-ups\' own): 422 /grant_id, nothing granted', async () => {
    assertProblem(await K.grantRaw(A, 'r1', { grant_id: 'topup:pay-9', pack: 'p-on' }, T), 422, 'validation_failed', '/grant_id');
    assert.deepEqual(await K.coupons(A, 'r1', T), []);
    // so the top-up with that id still grants its pack (an active one)
    await K.pack(A, 'p-off', { name: 'On again', count: 2, amount: 100, validity: 'own_month' }, P0, 200);
    const r = await c.post(topupPath('r1'), { topup_id: 'pay-9', amount: 500, offer: 'with-off' }, at(A, T));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.coupons.grant_id, 'topup:pay-9');
    await K.pack(A, 'p-off', { name: 'Off', count: 2, amount: 100, validity: 'own_month', active: false }, P0, 200);
  });

  test('a top-up whose offer names an inactive pack issues no coupons (as a grant of it is refused)', async () => {
    const r = await c.post(topupPath('r2'), { topup_id: 'pay-off', amount: 500, offer: 'with-off' }, at(A, T));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.coupons, null);
    assert.deepEqual(await K.coupons(A, 'r2', T), []);
    assertProblem(await K.grantRaw(A, 'r2', { grant_id: 'g-off', pack: 'p-off' }, T), 422, 'validation_failed', '/pack');
  });

  test('rebuyd verify catches a redeemed coupon without its journal row, and one with a row but not redeemed', async () => {
    await K.grant(A, 'r2', { grant_id: 'g-v', pack: 'p-on' }, T);
    await K.redeem(A, 'r2', 'g-v', 1, { order_id: 'o-v', order_amount: 100 }, plusHours(T, 1));
    const seqOf = async (n) => (await svc.db.query(`SELECT c.seq FROM coupons c JOIN coupon_grants g ON g.seq = c.grant_seq
      WHERE g.shop_id = $1 AND g.grant_id = 'g-v' AND c.number = $2`, [S.shopId, n])).rows[0].seq;
    const c1 = await seqOf(1);
    const c2 = await seqOf(2);
    const verify = async () => svc.cli(['verify', '--shop', S.shopId], { timeoutMs: 60_000 });
    assert.equal((await verify()).code, 0);
    // coupon 1 looks unredeemed (its journal row stays), coupon 2 looks redeemed (without a row)
    await svc.db.query('UPDATE coupons SET redeemed_at = NULL, order_id = NULL, order_amount = NULL WHERE seq = $1', [c1]);
    await svc.db.query(`UPDATE coupons SET redeemed_at = now(), order_id = 'o-x', order_amount = 100 WHERE seq = $1`, [c2]);
    const v = await verify();
    assert.equal(v.code, 1, v.stdout);
    assert.equal((v.stdout.match(/coupon differs from its journal/g) || []).length, 2, v.stdout);
    assert.match(v.stdout, /(^|\n)2 differences\n?$/, v.stdout);
    await svc.db.query(`UPDATE coupons SET redeemed_at = $2, order_id = 'o-v', order_amount = 100 WHERE seq = $1`, [c1, plusHours(T, 1)]);
    await svc.db.query('UPDATE coupons SET redeemed_at = NULL, order_id = NULL, order_amount = NULL WHERE seq = $1', [c2]);
    assert.equal((await verify()).code, 0, 'restored');
  });
});

// ---------------------------------------------------------------------------

describe('the ledger after all of the above', () => {
  test('rebuyd verify: every transaction sums to zero, every cached balance equals its journal (0 differences)', async () => {
    const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
    assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
    assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
  });
});
