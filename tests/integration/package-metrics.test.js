// Do packages and coupons work? The reports of issue 8 (/work/notes/packages.md)
// over a hand-built 2025 history, every figure worked out by hand:
// GET /v1/metrics/package-breakage (per plan and in total, at several
// dates; a ski pass of which 60% of the uses were redeemed), GET
// /v1/metrics/coupon-redemption (per pack, by coupon number, by month), GET
// /v1/metrics/package-holders (visits of holders and non-holders) and the
// packages and coupons figures of GET /v1/metrics/prepaid-liability (the
// wallet figures unaffected by package and coupon rows).
//
// rebuyd runs with --test-clock (its minute jobs are then off): the history
// is built at test instants in 2025, in time order. Reports must not be
// asked about a date after today, so they are asked about 2025 dates, by
// the real clock (no Rebuy-Test-Now): the cut-off is then the end of as_of.
// Every package is read at 2025-06-30 before any report runs (so no package
// is ever read at an instant before one already applied to it); the
// reports post every expiry due by now themselves (beer-101's, on
// 2026-01-01, is left to them).
//
// The shop is in Asia/Shanghai (UTC+8): L('03-12') = 2025-03-12 10:00 local.
// Money in fen.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { calls as tierCalls } from '../lib/tiers.js';
import { spendPath } from '../lib/wallets.js';
import { topupRefundPath } from '../lib/wallet-ledger.js';
import { addDays } from '../lib/history.js';
import {
  couponApi, couponCalls, packageCalls, at, keys, offerPath, topupPath, pkgFigures, exactMembers,
  BREAKAGE, COUPON_REPORT, PKG_HOLDERS, LIABILITY, BRK, CNT, MON, HG, RATE,
  assertBreakageShape, assertCouponReportShape, assertHoldersShape,
} from '../lib/coupons.js';

let svc;
let c;
let K;
let PK;
let PKS; // package calls through the strict client, for the tests themselves
let O;
let S;
let A;

const L = (md, hhmm = '10:00') => `2025-${md}T${hhmm}:00+08:00`;
const P0 = '2025-01-01T00:00:00Z';

/** Today's date in Asia/Shanghai (the shop's zone), YYYY-MM-DD. */
const todayShanghai = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);

// Plans. ski-10: 10 uses for 400.00, valid 59 days (valid_until = 00:00 local of purchase date + 60 days),
// pre-sale at 240.00 until 1 Feb 00:00 local; version 2 (from 02-03) without the pre-sale.
// beer-101: 101 beers for 20.18, valid until 1 Jan 2026 00:00 local. yoga-5: 5 classes for 100.00, 30 days.
const SKI_V1 = { name: 'Ski 10-visit pass', uses: 10, price: 40000, validity: { days: 59 }, presale: { price: 24000, until: '2025-02-01T00:00:00+08:00' } };
const SKI_V2 = { name: 'Ski 10-visit pass', uses: 10, price: 40000, validity: { days: 59 } };
const BEER = { name: '101 beers', uses: 101, price: 2018, validity: { until: '2026-01-01T00:00:00+08:00' } };
const YOGA = { name: 'Yoga 5 classes', uses: 5, price: 10000, validity: { days: 30 } };
// Coupon packs. four-50: 4 × 50.00 off an order of at least 200.00, one per own month.
// seq-3: 3 × 10.00, in order, all expiring at the start of M + 6.
const FOUR = { name: 'Four times 50 off', count: 4, amount: 5000, min_spend: 20000, validity: 'own_month' };
const SEQ = { name: 'One a month', count: 3, amount: 1000, validity: 'in_order', expires_after_months: 6 };

// The history (10:00 local unless said; "r" = a package redemption recognising floor(price × n / uses) − before):
//
// pk-s1  s1 ski-10 v1 01-10 for 24000 (pre-sale), valid until 03-11 00:00 local
//        r 01-12 ×2 (4800), 01-26 ×1 (2400), 02-09 ×1, 02-23 ×1, 03-02 ×1 → 6 uses, 14400; expires 03-11 with 4: breakage 9600
// pk-s2  s2 ski-10 v1 01-20 for 24000, valid until 03-21
//        r 01-21 ×2, 02-02 ×2, 03-09 ×1 reversed 03-10, 03-16 ×1 → net 5 uses, 12000; expires 03-21 with 5: breakage 12000
// pk-s3  s3 ski-10 v2 02-05 for 40000, valid until 04-06
//        r 02-08 ×2 (8000), 02-22 ×2, 03-08 ×1 (4000), 03-22 ×1, 03-29 ×1 → 7 uses, 28000; expires 04-06 with 3: breakage 12000
//        ski: 30 uses sold, 18 redeemed, 12 expired → usage 0.6, breakage 0.4 (the ski resort)
// pk-b1  b1 beer-101 02-01 for 2018, valid until 2026-01-01
//        r 03-01 ×1 (floor(2018/101) = 19), 03-02 ×2 (floor(2018·3/101) = 59 → 40), 04-01 ×50 (floor(2018·53/101) = 1058 → 999)
//        expires 2026-01-01 with 48: breakage 2018 − 1058 = 960
// pk-y1  y1 yoga-5 03-01 for 10000, valid until 04-01; r 03-05 ×1 (2000), 03-12 ×1 (2000);
//        refunded 03-20: 10000 − floor(10000·2/5) = 6000, 3 uses refunded
// pk-y2  y2 yoga-5 03-10 for 10000, valid until 04-10; r 03-15 ×3 (6000), 03-25 ×1 (2000); expires 04-10 with 1: breakage 2000
// pk-h1  h1 yoga-5 04-05 for 10000, valid until 05-06; r 04-06 ×1, 04-20 ×1 (2000 each); expires 05-06 with 3: breakage 6000
//
// Orders (qualifying unless said): s1 03-02 11:00 3000; s3 03-25 18:00 4000; n1 03-03, 03-17, 03-31 23:30 1000 each;
// n2 03-10 2000, 03-20 2000 (cancelled 03-21), 04-02 2000; h1 03-12 1500.
//
// Coupons:
// g1  c1 four-50 01-15: #1 Jan (from 01-15) redeemed 01-20; #2 Feb expired; #3 Mar redeemed 03-05; #4 Apr (expires 05-01)
// g4  c1 seq-3 01-15 10:05: #1 redeemed 01-25 → #2 valid from 02-01, redeemed 03-15 → #3 valid from 04-01; all end 07-01
// g2  c2 four-50 02-10: #1 Feb (from 02-10) expired; #2 Mar redeemed 03-10; #3 Apr; #4 May
// g5  c4 seq-3 02-20: #1 valid from 02-20, never redeemed; #2, #3 never valid; all end 08-01
// g3  c3 four-50 with top-up pay-c3 04-05 (offer cpn): #1 Apr (from 04-05) redeemed 04-06; top-up refunded 04-10 →
//     #2 (May), #3 (Jun), #4 (Jul) cancelled
//
// Wallets: w1 top-up 5000 02-01, spend 2000 03-01; c3 top-up 10000 04-05 with cpn, refunded 04-10 (10000 returned).

const tables = {}; // the packages as read at 2025-06-30

const violations = []; // replies of the history's calls that break the contract (see the first test)

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = couponApi(svc);
  // the history is built through a client that records contract violations instead of stopping at the first
  const h = couponApi(svc, { violations });
  K = couponCalls(h);
  PK = packageCalls(h);
  PKS = packageCalls(c);
  O = tierCalls(h);
  S = await setupShop(svc, { name: uniq('Package Metrics Shop'), timezone: 'Asia/Shanghai' });
  A = S.keys.admin;
  await PK.plan(A, 'ski-10', SKI_V1, P0);
  await PK.plan(A, 'beer-101', BEER, P0);
  await PK.plan(A, 'yoga-5', YOGA, P0);
  await K.pack(A, 'four-50', FOUR, P0, 201);
  await K.pack(A, 'seq-3', SEQ, P0, 201);
  const off = await h.put(offerPath('cpn'), { name: 'Top up, get four coupons', bonus: {}, coupon_pack: 'four-50' }, at(A, P0));
  assert.equal(off.status, 201, off.text);
  for (const id of ['s1', 's2', 's3', 'b1', 'y1', 'y2', 'h1', 'n1', 'n2', 'c1', 'c2', 'c3', 'c4', 'w1']) await K.customer(A, id);
  const order = (id, cust, when, total) => O.order(A, id, cust, when, total);
  const topup = async (cust, body, when) => {
    const r = await h.post(topupPath(cust), body, at(A, when));
    assert.equal(r.status, 201, r.text);
    return r.body;
  };

  // January
  let p = await PK.buy(A, 's1', 'pk-s1', 'ski-10', L('01-10'), 24000);
  assert.equal(p.valid_until, '2025-03-10T16:00:00.000000Z'); // 01-10 + 60 days = 03-11 00:00 local
  await PK.redeem(A, 's1', 'pk-s1', 'r-s1-1', 2, L('01-12'), 4800);
  await K.grant(A, 'c1', { grant_id: 'g1', pack: 'four-50' }, L('01-15'));
  await K.grant(A, 'c1', { grant_id: 'g4', pack: 'seq-3' }, L('01-15', '10:05'));
  p = await PK.buy(A, 's2', 'pk-s2', 'ski-10', L('01-20'), 24000);
  assert.equal(p.valid_until, '2025-03-20T16:00:00.000000Z'); // 03-21 00:00 local
  await K.redeem(A, 'c1', 'g1', 1, { order_id: 'c1-o1', order_amount: 30000 }, L('01-20'));
  await PK.redeem(A, 's2', 'pk-s2', 'r-s2-1', 2, L('01-21'), 4800);
  await K.redeem(A, 'c1', 'g4', 1, { order_id: 'c1-o2', order_amount: 5000 }, L('01-25'));
  await PK.redeem(A, 's1', 'pk-s1', 'r-s1-2', 1, L('01-26'), 2400);
  // February
  p = await PK.buy(A, 'b1', 'pk-b1', 'beer-101', L('02-01'), 2018);
  assert.equal(p.valid_until, '2025-12-31T16:00:00.000000Z');
  await topup('w1', { topup_id: 'pay-w1', amount: 5000 }, L('02-01'));
  await PK.redeem(A, 's2', 'pk-s2', 'r-s2-2', 2, L('02-02'), 4800);
  await PK.plan(A, 'ski-10', SKI_V2, L('02-03'));
  p = await PK.buy(A, 's3', 'pk-s3', 'ski-10', L('02-05'), 40000);
  assert.deepEqual([p.plan_version, p.valid_until], [2, '2025-04-05T16:00:00.000000Z']); // 04-06 00:00 local
  await PK.redeem(A, 's3', 'pk-s3', 'r-s3-1', 2, L('02-08'), 8000);
  await PK.redeem(A, 's1', 'pk-s1', 'r-s1-3', 1, L('02-09'), 2400);
  await K.grant(A, 'c2', { grant_id: 'g2', pack: 'four-50' }, L('02-10'));
  await K.grant(A, 'c4', { grant_id: 'g5', pack: 'seq-3' }, L('02-20'));
  await PK.redeem(A, 's3', 'pk-s3', 'r-s3-2', 2, L('02-22'), 8000);
  await PK.redeem(A, 's1', 'pk-s1', 'r-s1-4', 1, L('02-23'), 2400);
  // March
  p = await PK.buy(A, 'y1', 'pk-y1', 'yoga-5', L('03-01'), 10000);
  assert.equal(p.valid_until, '2025-03-31T16:00:00.000000Z'); // 04-01 00:00 local
  await PK.redeem(A, 'b1', 'pk-b1', 'r-b1-1', 1, L('03-01'), 19);
  const sp = await h.post(spendPath('w1'), { spend_id: 'sp-w1', amount: 2000 }, at(A, L('03-01')));
  assert.equal(sp.status, 201, sp.text);
  await PK.redeem(A, 's1', 'pk-s1', 'r-s1-5', 1, L('03-02'), 2400);
  await order('s1-o1', 's1', L('03-02', '11:00'), 3000);
  await PK.redeem(A, 'b1', 'pk-b1', 'r-b1-2', 2, L('03-02', '12:00'), 40);
  await order('n1-o1', 'n1', L('03-03'), 1000);
  await PK.redeem(A, 'y1', 'pk-y1', 'r-y1-1', 1, L('03-05'), 2000);
  await K.redeem(A, 'c1', 'g1', 3, { order_id: 'c1-o3', order_amount: 25000 }, L('03-05'));
  await PK.redeem(A, 's3', 'pk-s3', 'r-s3-3', 1, L('03-08'), 4000);
  await PK.redeem(A, 's2', 'pk-s2', 'r-s2-3', 1, L('03-09'), 2400);
  const rev = await PK.reverse(A, 's2', 'pk-s2', 'r-s2-3', 'wrong pass scanned', L('03-10'));
  assert.equal(rev.package.recognised, 9600, 'back to floor(24000 × 4 / 10)');
  p = await PK.buy(A, 'y2', 'pk-y2', 'yoga-5', L('03-10'), 10000);
  assert.equal(p.valid_until, '2025-04-09T16:00:00.000000Z'); // 04-10 00:00 local
  await K.redeem(A, 'c2', 'g2', 2, { order_id: 'c2-o1', order_amount: 20000 }, L('03-10'));
  await order('n2-o1', 'n2', L('03-10'), 2000);
  await PK.redeem(A, 'y1', 'pk-y1', 'r-y1-2', 1, L('03-12'), 2000);
  await order('h1-o1', 'h1', L('03-12'), 1500);
  await PK.redeem(A, 'y2', 'pk-y2', 'r-y2-1', 3, L('03-15'), 6000);
  await K.redeem(A, 'c1', 'g4', 2, { order_id: 'c1-o4', order_amount: 5000 }, L('03-15'));
  await PK.redeem(A, 's2', 'pk-s2', 'r-s2-4', 1, L('03-16'), 2400);
  await order('n1-o2', 'n1', L('03-17'), 1000);
  await PK.refund(A, 'y1', 'pk-y1', L('03-20'), 6000);
  await order('n2-o2', 'n2', L('03-20'), 2000);
  await O.cancel(A, 'n2-o2', L('03-21'));
  await PK.redeem(A, 's3', 'pk-s3', 'r-s3-4', 1, L('03-22'), 4000);
  await PK.redeem(A, 'y2', 'pk-y2', 'r-y2-2', 1, L('03-25'), 2000);
  await order('s3-o1', 's3', L('03-25', '18:00'), 4000);
  await PK.redeem(A, 's3', 'pk-s3', 'r-s3-5', 1, L('03-29'), 4000);
  await order('n1-o3', 'n1', L('03-31', '23:30'), 1000);
  // April
  await PK.redeem(A, 'b1', 'pk-b1', 'r-b1-3', 50, L('04-01'), 999);
  await order('n2-o3', 'n2', L('04-02'), 2000);
  p = await PK.buy(A, 'h1', 'pk-h1', 'yoga-5', L('04-05'), 10000);
  assert.equal(p.valid_until, '2025-05-05T16:00:00.000000Z'); // 05-06 00:00 local
  const tp = await topup('c3', { topup_id: 'pay-c3', amount: 10000, offer: 'cpn' }, L('04-05'));
  assert.equal(tp.coupons.grant_id, 'topup:pay-c3');
  await PK.redeem(A, 'h1', 'pk-h1', 'r-h1-1', 1, L('04-06'), 2000);
  await K.redeem(A, 'c3', 'topup:pay-c3', 1, { order_id: 'c3-o1', order_amount: 40000 }, L('04-06'));
  const rf = await h.req('POST', topupRefundPath('c3', 'pay-c3'), at(A, L('04-10')));
  assert.equal(rf.status, 201, rf.text);
  await PK.redeem(A, 'h1', 'pk-h1', 'r-h1-2', 1, L('04-20'), 2000);

  // every package as of 2025-06-30 (this posts the expiries due by then)
  for (const cust of ['s1', 's2', 's3', 'b1', 'y1', 'y2', 'h1']) {
    for (const x of await PK.list(A, cust, '2025-06-30T02:00:00Z')) tables[x.package_id] = pkgFigures(x);
  }
});
after(async () => { await svc?.stop(); });

/** Writes a package's figures: [status, uses, redeemed, left, expired, refunded], [price, recognised, deferred, breakage, refunded]. */
const PF = ([status, uses, red, left, exp, ref], [price, rec, def, brk, refd]) => ({
  status, uses, uses_redeemed: red, uses_left: left, uses_expired: exp, uses_refunded: ref,
  price, recognised: rec, deferred: def, breakage: brk, refunded: refd,
});

async function breakage(asOf, key = A) {
  const q = asOf ? `?as_of=${asOf}` : '';
  const r = await c.get(`${BREAKAGE}${q}`, { key });
  assert.equal(r.status, 200, `GET ${BREAKAGE}${q}: ${r.text}`);
  assertBreakageShape(r.body);
  assert.deepEqual(r.body.definition, { timezone: 'Asia/Shanghai', as_of: asOf ?? todayShanghai(), currency: 'CNY' });
  return r.body;
}
const byPlan = (b) => Object.fromEntries(b.plans.map(({ plan, ...f }) => [plan, f]));

async function couponReport(asOf, key = A) {
  const r = await c.get(`${COUPON_REPORT}?as_of=${asOf}`, { key });
  assert.equal(r.status, 200, `GET ${COUPON_REPORT}?as_of=${asOf}: ${r.text}`);
  assertCouponReportShape(r.body);
  assert.deepEqual(r.body.definition, { timezone: 'Asia/Shanghai', as_of: asOf, currency: 'CNY' });
  return r.body;
}
const byPack = (b) => Object.fromEntries(b.packs.map(({ pack, ...f }) => [pack, f]));

async function holders(q, key = A) {
  const r = await c.get(`${PKG_HOLDERS}?${new URLSearchParams(q)}`, { key });
  assert.equal(r.status, 200, `GET ${PKG_HOLDERS} ${JSON.stringify(q)}: ${r.text}`);
  assertHoldersShape(r.body);
  return r.body;
}

async function liability(asOf, key = A) {
  const r = await c.get(`${LIABILITY}?as_of=${asOf}`, { key });
  assert.equal(r.status, 200, `GET ${LIABILITY}?as_of=${asOf}: ${r.text}`);
  // packages.md: the report "gains" packages and coupons; openapi.yaml puts them in `liability`, beside the wallet figures
  exactMembers(r.body, ['definition', 'liability'], 'prepaid-liability reply');
  const { packages, coupons, ...wallet } = r.body.liability;
  exactMembers(packages, ['breakage', 'cash_received', 'deferred', 'packages_sold', 'recognised', 'refunded'], 'liability.packages');
  exactMembers(coupons, ['promotion_cost', 'redeemed'], 'liability.coupons');
  assert.equal(packages.cash_received, packages.recognised + packages.breakage + packages.refunded + packages.deferred,
    `cash_received = recognised + breakage + refunded + deferred: ${JSON.stringify(packages)}`);
  return { definition: r.body.definition, wallet, packages, coupons };
}

// ---------------------------------------------------------------------------

describe('the history', () => {
  test('every call that built it answered as the contract (openapi.yaml) says', () => {
    assert.deepEqual(violations, [], violations.join('\n\n'));
  });
});

describe('GET /v1/metrics/package-breakage', () => {
  // First: asked by the real clock with nothing read since 2025-06-30, the report itself must post beer-101's
  // expiry (2026-01-01 00:00 local) — "every package expiry due by now is posted first".
  test('as_of defaults to today: every package over (beer-101 expired on 2026-01-01 without a read), by hand', async () => {
    const b = await breakage(undefined, S.keys.readonly);
    // beer: 53 redeemed, 48 expired (48/101 = 0.4752); breakage 2018 − 1058 = 960
    // yoga: y1 refunded (2 redeemed, 3 refunded), y2 1 expired, h1 3 expired (05-06) → 8 redeemed, 4 expired, 3 refunded;
    //   recognised 4000 + 8000 + 4000 = 16000, breakage 2000 + 6000 = 8000, refunded 6000
    assert.deepEqual(byPlan(b), {
      'beer-101': BRK(1, [101, 53, 48, 0, 0], 0.5248, 0.4752, [2018, 1058, 960, 0, 0]),
      'ski-10': BRK(3, [30, 18, 12, 0, 0], 0.6, 0.4, [88000, 54400, 33600, 0, 0]),
      'yoga-5': BRK(3, [15, 8, 4, 3, 0], 0.5333, 0.2667, [30000, 16000, 8000, 6000, 0]),
    });
    // 79/146 = 0.5411; 64/146 = 0.4384; breakage 33600 + 960 + 8000 = 42560
    assert.deepEqual(b.totals, BRK(7, [146, 79, 64, 3, 0], 0.5411, 0.4384, [120018, 71458, 42560, 6000, 0]));
    // and the package reads the same by the real clock
    const [beer] = await PKS.list(A, 'b1');
    assert.deepEqual(pkgFigures(beer), PF(['expired', 101, 53, 0, 48, 0], [2018, 1058, 0, 960, 0]));
  });

  test('the packages are as the table says (read at 2025-06-30)', () => {
    assert.deepEqual(tables, {
      'pk-s1': PF(['expired', 10, 6, 0, 4, 0], [24000, 14400, 0, 9600, 0]),
      'pk-s2': PF(['expired', 10, 5, 0, 5, 0], [24000, 12000, 0, 12000, 0]),
      'pk-s3': PF(['expired', 10, 7, 0, 3, 0], [40000, 28000, 0, 12000, 0]),
      'pk-b1': PF(['active', 101, 53, 48, 0, 0], [2018, 1058, 960, 0, 0]),
      'pk-y1': PF(['refunded', 5, 2, 0, 0, 3], [10000, 4000, 0, 0, 6000]),
      'pk-y2': PF(['expired', 5, 4, 0, 1, 0], [10000, 8000, 0, 2000, 0]),
      'pk-h1': PF(['expired', 5, 2, 0, 3, 0], [10000, 4000, 0, 6000, 0]),
    });
  });

  test('a ski resort: 30 uses sold, 18 redeemed, 12 expired → usage_rate 0.6, breakage_rate 0.4 (as of 2025-04-30)', async () => {
    const b = await breakage('2025-04-30');
    const ski = byPlan(b)['ski-10'];
    assert.deepEqual(ski.usage_rate, RATE(18, 30, 0.6));
    assert.deepEqual(ski.breakage_rate, RATE(12, 30, 0.4));
    // cash 24000 + 24000 + 40000 = 88000 (two pre-sale passes, one under version 2); recognised 14400 + 12000 + 28000;
    // breakage 9600 + 12000 + 12000 = 33600
    assert.deepEqual(ski, BRK(3, [30, 18, 12, 0, 0], 0.6, 0.4, [88000, 54400, 33600, 0, 0]));
    // beer: 53 redeemed, 48 outstanding (53/101 = 0.5248), deferred 960
    // yoga: y1 (2 redeemed, 3 refunded), y2 (4 redeemed, 1 expired 04-10), h1 (2 redeemed, 3 outstanding) →
    //   8 / 15 = 0.5333, 1 / 15 = 0.0667; recognised 16000, breakage 2000, refunded 6000, deferred h1's 6000
    assert.deepEqual(byPlan(b)['beer-101'], BRK(1, [101, 53, 0, 0, 48], 0.5248, 0, [2018, 1058, 0, 0, 960]));
    assert.deepEqual(byPlan(b)['yoga-5'], BRK(3, [15, 8, 1, 3, 3], 0.5333, 0.0667, [30000, 16000, 2000, 6000, 6000]));
    // 79/146 = 0.5411, 13/146 = 0.0890; deferred 960 + 6000 = 6960
    assert.deepEqual(b.totals, BRK(7, [146, 79, 13, 3, 51], 0.5411, 0.089, [120018, 71458, 35600, 6000, 6960]));
    assert.deepEqual(b.plans.map((x) => x.plan), ['beer-101', 'ski-10', 'yoga-5']);
  });

  test('as_of in the past: the figures as of the end of that day (2025-03-31, 2025-02-28, 2025-01-31, 2025-01-09)', async () => {
    // end of 03-31: s1 (03-11) and s2 (03-21) expired, s3 not yet (04-06): 6 + 5 + 7 = 18 redeemed, 4 + 5 = 9 expired, 3 outstanding;
    // breakage 9600 + 12000 = 21600, deferred s3 40000 − 28000 = 12000 (s2's reversed 03-09 use is not counted)
    // beer: 1 + 2 = 3 redeemed (3/101 = 0.0297), recognised 59, deferred 1959
    // yoga: y1 2 redeemed + 3 refunded (6000), y2 4 redeemed, 1 left (deferred 2000); h1 not sold yet
    let b = await breakage('2025-03-31');
    assert.deepEqual(byPlan(b), {
      'beer-101': BRK(1, [101, 3, 0, 0, 98], 0.0297, 0, [2018, 59, 0, 0, 1959]),
      'ski-10': BRK(3, [30, 18, 9, 0, 3], 0.6, 0.3, [88000, 54400, 21600, 0, 12000]),
      'yoga-5': BRK(2, [10, 6, 0, 3, 1], 0.6, 0, [20000, 12000, 0, 6000, 2000]),
    });
    // 27/141 = 0.1915, 9/141 = 0.0638
    assert.deepEqual(b.totals, BRK(6, [141, 27, 9, 3, 102], 0.1915, 0.0638, [110018, 66459, 21600, 6000, 15959]));

    // end of 02-28: ski s1 5 (2+1+1+1), s2 4, s3 4 → 13 of 30 (0.4333); recognised 12000 + 9600 + 16000 = 37600;
    // beer sold, nothing redeemed; no yoga yet → no item for it
    b = await breakage('2025-02-28', S.keys.readonly);
    assert.deepEqual(byPlan(b), {
      'beer-101': BRK(1, [101, 0, 0, 0, 101], 0, 0, [2018, 0, 0, 0, 2018]),
      'ski-10': BRK(3, [30, 13, 0, 0, 17], 0.4333, 0, [88000, 37600, 0, 0, 50400]),
    });
    // 13/131 = 0.0992
    assert.deepEqual(b.totals, BRK(4, [131, 13, 0, 0, 118], 0.0992, 0, [90018, 37600, 0, 0, 52418]));

    // end of 01-31: s1 (2 + 1 = 3 redeemed, 7200) and s2 (2 redeemed, 4800) only
    b = await breakage('2025-01-31');
    assert.deepEqual(b.plans, [{ plan: 'ski-10', ...BRK(2, [20, 5, 0, 0, 15], 0.25, 0, [48000, 12000, 0, 0, 36000]) }]);
    assert.deepEqual(b.totals, BRK(2, [20, 5, 0, 0, 15], 0.25, 0, [48000, 12000, 0, 0, 36000]));

    // before the first sale: no plan; the totals are zeros, the rates null
    b = await breakage('2025-01-09');
    assert.deepEqual(b.plans, []);
    assert.deepEqual(b.totals, BRK(0, [0, 0, 0, 0, 0], null, null, [0, 0, 0, 0, 0]));
  });

  test('asked again, a date gives the same figures; as_of after today → 400; bad parameters → 400; scopes', async () => {
    assert.deepEqual(await breakage('2025-03-31'), await breakage('2025-03-31', S.keys.readonly));
    const bad = async (q, pointer) => assertProblem(await c.get(`${BREAKAGE}?${q}`, { key: A }), 400, 'invalid_parameter', pointer);
    await bad(`as_of=${addDays(todayShanghai(), 1)}`, '/query/as_of');
    await bad('as_of=2099-01-01', '/query/as_of');
    await bad('as_of=2025-02-30', '/query/as_of');
    await bad('as_of=march', '/query/as_of');
    await bad('as_of=', '/query/as_of');
    await bad('as_of=2025-03-31&foo=1', '/query/foo');
    for (const key of [S.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get(`${BREAKAGE}?as_of=2025-03-31`, { key }), 403, 'forbidden');
    }
    assertProblem(await c.get(`${BREAKAGE}?as_of=2025-03-31`), 401, 'unauthenticated');
    // another shop: nothing
    const X = await setupShop(svc, { name: uniq('Other Package Shop') });
    const r = await c.get(`${BREAKAGE}?as_of=2025-03-31`, { key: X.keys.readonly });
    assert.equal(r.status, 200, r.text);
    assertBreakageShape(r.body);
    assert.deepEqual([r.body.plans, r.body.totals], [[], BRK(0, [0, 0, 0, 0, 0], null, null, [0, 0, 0, 0, 0])]);
  });
});

// ---------------------------------------------------------------------------

describe('GET /v1/metrics/coupon-redemption', () => {
  test('as of 2025-04-15: per pack, by coupon number and by the month validity began, by hand', async () => {
    const b = await couponReport('2025-04-15');
    assert.deepEqual(b.packs.map((p) => p.pack), ['four-50', 'seq-3']);
    const { 'four-50': four, 'seq-3': seq } = byPack(b);
    // four-50: g1, g2, g3 → 12 issued. Redeemed g1#1, g1#3, g2#2, g3#1 = 4 (4/12 = 0.3333), cost 4 × 5000;
    // expired g1#2 (Feb), g2#1 (Feb) = 2; cancelled g3#2..#4 = 3; outstanding g1#4 (Apr), g2#3 (Apr), g2#4 (May, upcoming) = 3
    assert.deepEqual({ ...four, by_number: undefined, by_month: undefined },
      { ...CNT([12, 4, 2, 3, 3], 0.3333), promotion_cost: 20000, by_number: undefined, by_month: undefined });
    assert.deepEqual(four.by_number, [
      { number: 1, ...CNT([3, 2, 1, 0, 0], 0.6667) }, // g1 redeemed, g2 expired, g3 redeemed
      { number: 2, ...CNT([3, 1, 1, 1, 0], 0.3333) }, // g1 expired, g2 redeemed, g3 cancelled
      { number: 3, ...CNT([3, 1, 0, 1, 1], 0.3333) }, // g1 redeemed, g2 valid, g3 cancelled
      { number: 4, ...CNT([3, 0, 0, 1, 2], 0) }, // g1 valid, g2 upcoming, g3 cancelled
    ]);
    // validity began: Jan g1#1; Feb g1#2, g2#1; Mar g1#3, g2#2; Apr g1#4, g2#3, g3#1 (g2#4 and g3's cancelled ones: May or later)
    assert.deepEqual(four.by_month, [
      MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [2, 0, 2, 0], 0), MON('2025-03', [2, 2, 0, 0], 1), MON('2025-04', [3, 1, 0, 2], 0.3333),
    ]);
    // seq-3: g4 (#1 redeemed 01-25, #2 valid from 02-01 redeemed 03-15, #3 valid from 04-01), g5 (#1 valid from 02-20,
    // #2 and #3 upcoming) → 6 issued, 2 redeemed (0.3333), 4 outstanding, cost 2000
    assert.deepEqual({ ...seq, by_number: undefined, by_month: undefined },
      { ...CNT([6, 2, 0, 0, 4], 0.3333), promotion_cost: 2000, by_number: undefined, by_month: undefined });
    assert.deepEqual(seq.by_number, [
      { number: 1, ...CNT([2, 1, 0, 0, 1], 0.5) },
      { number: 2, ...CNT([2, 1, 0, 0, 1], 0.5) },
      { number: 3, ...CNT([2, 0, 0, 0, 2], 0) },
    ]);
    // Jan g4#1; Feb g4#2 (02-01) and g5#1 (02-20); Apr g4#3; g5#2, g5#3 in no month
    assert.deepEqual(seq.by_month, [MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [2, 1, 0, 1], 0.5), MON('2025-04', [1, 0, 0, 1], 0)]);
  });

  test('as of 2025-02-15: only the grants and redemptions before then', async () => {
    const b = await couponReport('2025-02-15', S.keys.readonly);
    const { 'four-50': four, 'seq-3': seq } = byPack(b);
    // four-50: g1 (#1 redeemed, #2 valid in Feb, #3 #4 upcoming), g2 (#1 valid from 02-10, #2..#4 upcoming) → 8 issued, 1 redeemed
    assert.deepEqual({ ...four, by_number: undefined, by_month: undefined },
      { ...CNT([8, 1, 0, 0, 7], 0.125), promotion_cost: 5000, by_number: undefined, by_month: undefined });
    assert.deepEqual(four.by_number.map(({ number, ...x }) => [number, x]), [
      [1, CNT([2, 1, 0, 0, 1], 0.5)], [2, CNT([2, 0, 0, 0, 2], 0)], [3, CNT([2, 0, 0, 0, 2], 0)], [4, CNT([2, 0, 0, 0, 2], 0)],
    ]);
    assert.deepEqual(four.by_month, [MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [2, 0, 0, 2], 0)]);
    // seq-3: g4 only (g5 comes 02-20): #1 redeemed, #2 valid from 02-01, #3 upcoming
    assert.deepEqual({ ...seq, by_number: undefined, by_month: undefined },
      { ...CNT([3, 1, 0, 0, 2], 0.3333), promotion_cost: 1000, by_number: undefined, by_month: undefined });
    assert.deepEqual(seq.by_month, [MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [1, 0, 0, 1], 0)]);
  });

  test('as of 2025-08-15: everything not redeemed or cancelled has expired', async () => {
    const b = await couponReport('2025-08-15');
    const { 'four-50': four, 'seq-3': seq } = byPack(b);
    // four-50: expired g1#2, g2#1, g1#4 (05-01), g2#3 (05-01), g2#4 (06-01) = 5; 4 redeemed; 3 cancelled; none outstanding
    assert.deepEqual({ ...four, by_number: undefined, by_month: undefined },
      { ...CNT([12, 4, 5, 3, 0], 0.3333), promotion_cost: 20000, by_number: undefined, by_month: undefined });
    assert.deepEqual(four.by_number.map(({ number, ...x }) => [number, x]), [
      [1, CNT([3, 2, 1, 0, 0], 0.6667)], [2, CNT([3, 1, 1, 1, 0], 0.3333)], [3, CNT([3, 1, 1, 1, 0], 0.3333)], [4, CNT([3, 0, 2, 1, 0], 0)],
    ]);
    assert.deepEqual(four.by_month.filter((m) => m.month <= '2025-04'), [
      MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [2, 0, 2, 0], 0), MON('2025-03', [2, 2, 0, 0], 1), MON('2025-04', [3, 1, 2, 0], 0.3333),
    ]);
    // May: g2#4 expired (how a coupon cancelled before its month began is counted in `valid` is not fixed by the contract)
    const may = four.by_month.find((m) => m.month === '2025-05');
    assert.ok(may, 'a May item (g2#4 became valid on 05-01)');
    assert.deepEqual([may.redeemed, may.expired, may.outstanding], [0, 1, 0]);
    for (const m of four.by_month.filter((x) => x.month > '2025-05')) assert.deepEqual([m.redeemed, m.expired, m.outstanding], [0, 0, 0], m.month);
    // seq-3: g4 ends 07-01 (#3 expired), g5 ends 08-01 (all three expired) → 2 redeemed, 4 expired
    assert.deepEqual({ ...seq, by_number: undefined, by_month: undefined },
      { ...CNT([6, 2, 4, 0, 0], 0.3333), promotion_cost: 2000, by_number: undefined, by_month: undefined });
    assert.deepEqual(seq.by_number.map(({ number, ...x }) => [number, x]), [
      [1, CNT([2, 1, 1, 0, 0], 0.5)], [2, CNT([2, 1, 1, 0, 0], 0.5)], [3, CNT([2, 0, 2, 0, 0], 0)],
    ]);
    // g5#2 and g5#3 never became valid: in no month
    assert.deepEqual(seq.by_month, [MON('2025-01', [1, 1, 0, 0], 1), MON('2025-02', [2, 1, 1, 0], 0.5), MON('2025-04', [1, 0, 1, 0], 0)]);
  });

  test('before any grant: no pack; as_of after today → 400; bad parameters → 400; scopes', async () => {
    assert.deepEqual((await couponReport('2025-01-14')).packs, []);
    const bad = async (q, pointer) => assertProblem(await c.get(`${COUPON_REPORT}?${q}`, { key: A }), 400, 'invalid_parameter', pointer);
    await bad(`as_of=${addDays(todayShanghai(), 1)}`, '/query/as_of');
    await bad('as_of=2025-13-01', '/query/as_of');
    await bad('as_of=2025-04-15&pack=four-50', '/query/pack');
    for (const key of [S.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get(`${COUPON_REPORT}?as_of=2025-04-15`, { key }), 403, 'forbidden');
    }
    assertProblem(await c.get(`${COUPON_REPORT}?as_of=2025-04-15`), 401, 'unauthenticated');
  });
});

// ---------------------------------------------------------------------------

describe('GET /v1/metrics/package-holders', () => {
  test('March 2025: holders and non-holders, visits = local days with a qualifying order or an unreversed redemption', async () => {
    const b = await holders({ from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30' });
    assert.deepEqual({ ...b.definition, caveat: undefined }, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-06-30',
      rule: { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 }, caveat: undefined,
    });
    // visits in March:
    //   s1: 03-02 (a redemption and an order that day: one visit) → 1
    //   s2: 03-16 (03-09's redemption was reversed) → 1
    //   s3: 03-08, 03-22, 03-25 (order), 03-29 → 4, 21 days first to last
    //   y1: 03-05, 03-12 → 2, 7 days;  y2: 03-15, 03-25 → 2, 10 days;  b1: 03-01, 03-02 → 2, 1 day
    //   n1: 03-03, 03-17, 03-31 (23:30) → 3, 28 days;  n2: 03-10 (03-20 was cancelled) → 1;  h1: 03-12 → 1
    //   c1..c4, w1: coupon redemptions and wallets are not visits
    // holders (bought a package before 04-01 00:00 local): s1, s2, s3, y1 (refunded since), y2, b1 → 6;
    //   visits 1+1+4+2+2+2 = 12, 2 per customer; repeat s3, y1, y2, b1 = 4; intervals 3+1+1+1 = 6; days (21+7+10+1)/6 = 6.5
    assert.deepEqual(b.holders, HG('holders', [6, 12, 2, 4, 6, 6.5]));
    // non-holders: n1, n2, h1 (bought 04-05, after March) → 3; visits 5 (1.6667); repeat n1; intervals 2; 28/2 = 14
    assert.deepEqual(b.non_holders, HG('non_holders', [3, 5, 1.6667, 1, 2, 14]));
  });

  test('April 2025: h1 bought in the period (a holder); February–March: more visits per holder', async () => {
    const apr = await holders({ from: '2025-04-01', to: '2025-04-30', as_of: '2025-06-30' }, S.keys.readonly);
    // b1 04-01; h1 04-06, 04-20 (14 days) → holders 2, visits 3 (1.5), repeat 1, intervals 1, 14 days
    assert.deepEqual(apr.holders, HG('holders', [2, 3, 1.5, 1, 1, 14]));
    // n2 04-02 → 1 visit, no interval
    assert.deepEqual(apr.non_holders, HG('non_holders', [1, 1, 1, 0, 0, null]));
    const fm = await holders({ from: '2025-02-01', to: '2025-03-31', as_of: '2025-06-30' });
    // s1 02-09, 02-23, 03-02 → 3 (21 days); s2 02-02, 03-16 → 2 (42 days); s3 02-08, 02-22, 03-08, 03-22, 03-25, 03-29 → 6 (49 days);
    // y1 2 (7), y2 2 (10), b1 2 (1) → 6 holders, 17 visits (2.8333), all repeat, intervals 2+1+5+1+1+1 = 11, 130/11 = 11.8182
    assert.deepEqual(fm.holders, HG('holders', [6, 17, 2.8333, 6, 11, 11.8182]));
    assert.deepEqual(fm.non_holders, HG('non_holders', [3, 5, 1.6667, 1, 2, 14]));
  });

  test('single days: 03-09 (only a reversed redemption → nobody), 03-31 (23:30 counts), 04-01', async () => {
    let b = await holders({ from: '2025-03-09', to: '2025-03-09', as_of: '2025-06-30' });
    assert.deepEqual([b.holders, b.non_holders], [HG('holders', [0, 0, null, 0, 0, null]), HG('non_holders', [0, 0, null, 0, 0, null])]);
    b = await holders({ from: '2025-03-31', to: '2025-03-31', as_of: '2025-06-30' });
    assert.deepEqual([b.holders, b.non_holders], [HG('holders', [0, 0, null, 0, 0, null]), HG('non_holders', [1, 1, 1, 0, 0, null])]);
    b = await holders({ from: '2025-04-01', to: '2025-04-01', as_of: '2025-06-30' });
    assert.deepEqual([b.holders, b.non_holders], [HG('holders', [1, 1, 1, 0, 0, null]), HG('non_holders', [0, 0, null, 0, 0, null])]);
  });

  test('parameters and scopes as wallet-holders', async () => {
    const bad = async (q, pointer) => assertProblem(await c.get(`${PKG_HOLDERS}?${q}`, { key: A }), 400, 'invalid_parameter', pointer);
    await bad('from=2025-02-30&to=2025-03-31', '/query/from');
    await bad('from=2025-04-01&to=2025-03-31', '/query/from');
    await bad('from=2025-03-01&to=2099-01-01', '/query/to');
    await bad('from=2025-03-01&to=2025-03-31&as_of=2099-01-01', '/query/as_of');
    await bad('from=2025-03-01&to=2025-03-31&foo=1', '/query/foo');
    for (const key of [S.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get(`${PKG_HOLDERS}?from=2025-03-01&to=2025-03-31`, { key }), 403, 'forbidden');
    }
    assertProblem(await c.get(`${PKG_HOLDERS}?from=2025-03-01&to=2025-03-31`), 401, 'unauthenticated');
  });
});

// ---------------------------------------------------------------------------

describe('GET /v1/metrics/prepaid-liability: packages and coupons beside the wallets', () => {
  test('as of 2025-03-31 and 2025-04-30: packages = the breakage report\'s totals, coupons redeemed; wallets count wallet rows only', async () => {
    for (const [asOf, wallet, pkg, cpn] of [
      // end of 03-31: w1 only (5000 in, 2000 spent); coupons redeemed g1#1, g4#1, g1#3, g2#2, g4#2 = 5: 3 × 5000 + 2 × 1000
      ['2025-03-31',
        { principal_outstanding: 3000, bonus_available: 0, bonus_scheduled: 0, bonus_expired: 0, cash_received: 5000, bonus_granted: 0,
          spent: 2000, adjustments: 0, wallets: 1, by_offer: [] },
        { packages_sold: 6, cash_received: 110018, recognised: 66459, breakage: 21600, refunded: 6000, deferred: 15959 },
        { redeemed: 5, promotion_cost: 17000 }],
      // end of 04-30: c3's wallet too (10000 in with offer cpn, all 10000 returned by the refund: cash 5000 + 10000 − 10000)
      ['2025-04-30',
        { principal_outstanding: 3000, bonus_available: 0, bonus_scheduled: 0, bonus_expired: 0, cash_received: 5000, bonus_granted: 0,
          spent: 2000, adjustments: 0, wallets: 2,
          by_offer: [{ offer: 'cpn', bonus_granted: 0, bonus_released: 0, bonus_scheduled: 0, bonus_expired: 0, bonus_cancelled: 0 }] },
        { packages_sold: 7, cash_received: 120018, recognised: 71458, breakage: 35600, refunded: 6000, deferred: 6960 },
        { redeemed: 6, promotion_cost: 22000 }],
    ]) {
      const b = await liability(asOf, S.keys.readonly);
      assert.deepEqual(b.definition, { timezone: 'Asia/Shanghai', as_of: asOf, currency: 'CNY' });
      assert.deepEqual(b.wallet, wallet, `${asOf}: the wallet figures (package and coupon rows post cash, revenue, breakage, promotion: none of it here)`);
      assert.deepEqual(b.packages, pkg, `${asOf}: packages`);
      assert.deepEqual(b.coupons, cpn, `${asOf}: coupons`);
      // consistent with the other two reports at the same cut-off
      const t = (await breakage(asOf)).totals;
      assert.deepEqual(b.packages, {
        packages_sold: t.packages_sold, cash_received: t.cash_received, recognised: t.revenue_recognised, breakage: t.breakage_revenue,
        refunded: t.refunded, deferred: t.deferred,
      }, `${asOf}: packages = package-breakage totals`);
      const cr = await couponReport(asOf);
      assert.equal(b.coupons.redeemed, cr.packs.reduce((s, p) => s + p.redeemed, 0), `${asOf}: coupons redeemed = Σ coupon-redemption`);
      assert.equal(b.coupons.promotion_cost, cr.packs.reduce((s, p) => s + p.promotion_cost, 0));
    }
  });

  test('scopes: storefront → 403', async () => {
    assertProblem(await c.get(`${LIABILITY}?as_of=2025-03-31`, { key: S.keys.storefront }), 403, 'forbidden');
  });
});

// ---------------------------------------------------------------------------

describe('the ledger agrees', () => {
  test('Σ entries of the package and coupon rows by account; rebuyd verify: 0 differences', async () => {
    await PKS.list(A, 'b1'); // posts beer-101's expiry if nothing has yet
    const r = await svc.db.query(`SELECT CASE WHEN j.package_seq IS NOT NULL THEN 'package' WHEN j.coupon_seq IS NOT NULL THEN 'coupon'
        ELSE 'wallet' END AS owner, e.account, sum(e.amount)::bigint AS total
      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq WHERE j.shop_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`, [S.shopId]);
    const sums = {};
    for (const x of r.rows) (sums[x.owner] ??= {})[x.account] = Number(x.total);
    // packages: cash −120018 + 6000 (y1's refund); revenue 71458; breakage 960 + 33600 + 8000 = 42560; nothing deferred now
    assert.deepEqual({ ...sums.package, package_deferred: sums.package.package_deferred ?? 0 },
      { cash: -114018, revenue: 71458, breakage: 42560, package_deferred: 0 });
    // coupons: six redeemed, 22000
    assert.deepEqual(sums.coupon, { promotion: -22000, revenue: 22000 });
    const kinds = await svc.db.query(`SELECT kind, count(*)::int AS n FROM journal WHERE shop_id = $1 AND wallet_seq IS NULL
      GROUP BY kind ORDER BY kind`, [S.shopId]);
    // 7 sales; redemptions s1 5 + s2 4 (the reversed one included) + s3 5 + b1 3 + y1 2 + y2 2 + h1 2 = 23;
    // one reversal, one refund; expiries s1 s2 s3 y2 h1 b1 = 6; 6 coupon redemptions
    assert.deepEqual(Object.fromEntries(kinds.rows.map((x) => [x.kind, x.n])), {
      coupon_redemption: 6, package_expiry: 6, package_purchase: 7, package_refund: 1, redemption: 23, redemption_reversal: 1,
    });
    const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
    assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
    assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
  });
});
