// Prepaid wallets, slice 2 (balances2.md): refunds of spends (principal
// first, then the bonus back to the installments the spend took from, the
// most recent top-up / highest k first; to breakage when the installment has
// expired since, to promotion when it was cancelled with its top-up),
// refunds of whole top-ups (principal returned = min(amount, principal),
// pending installments cancelled, unspent released ones clawed back),
// admin adjustments of the principal, the prepaid liability report at
// several dates across simulated months, the wallet-holders metric, and the
// segment filters wallet_principal / wallet_bonus_available /
// wallet_available.
//
// rebuyd runs with --test-clock; every wallet call carries Rebuy-Test-Now.
// Each wallet is only ever used at instants that do not go back in time.
// Refund and adjustment scenarios lie in 2031, after today, so rebuyd's
// minute sweep (real clock) finds nothing due in them. The liability report
// must not be asked about a date after today, so its scenario lies in 2025,
// on a service of its own: its janitor sweeps once when it starts (before
// the shop exists) and next a minute later, and the scenario is built well
// within that minute (checked), so the sweep — which would bring the
// past-dated wallets up to the real now — never runs in the middle of it.
// Segment filters use the real clock: that scenario is built at test
// instants shortly before the real now.
//
// Shops are in Asia/Shanghai (UTC+8, no daylight saving): 10:00 local is
// 02:00Z the same day; local midnight is 16:00Z the day before. Money in fen.
// Every expected figure is worked out by hand in the comment next to it.
// Notation: p = principal, ba = bonus_available, bs = bonus_scheduled;
// "a1.k2" = installment k = 2 of top-up pay-a1 (k0 = the immediate part).
//
// Every statement read goes through checkStatement (lib/wallet-ledger.js):
// exact members, movements ordered by `at`, the balance chain, Σ deltas =
// balances, the signs of each kind, Σ remaining of released / Σ amount of
// pending installments = bonus_available / bonus_scheduled.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { U, plusHours, plusDays, calls as tierCalls } from '../lib/tiers.js';
import {
  ledgerApi, ledgerCalls, at, spendRefundPath, topupRefundPath, adjustmentPath,
  LIABILITY, HOLDERS, WAL, I, SCH, MV, REF, TREF, LIAB, OFF, assertMovements, afters, assertInsufficient,
  assertLiabilityShape,
} from '../lib/wallet-ledger.js';

let svc;
let c;
let W;

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = ledgerApi(svc);
  W = ledgerCalls(c);
});
after(async () => { await svc?.stop(); });

const mkShop = (opts = {}) => setupShop(svc, { name: uniq('Wallet Refund Shop'), timezone: 'Asia/Shanghai', ...opts });
const TEN_12 = 1000000000000;
const P0 = '2031-01-01T00:00:00Z';

// "rm": 500 at once (never expires) and 3 × 1000 a month, each expiring at
// the start of the next one's period. From t0 = Mar 1 10:00 local:
// k0 500 due t0, no expiry; k1 1000 due Mar 1, expires Apr 1; k2 due Apr 1,
// expires May 1; k3 due May 1, expires Jun 1 (10:00 local = 02:00Z).
// bonus_total 500 + 3 × 1000 = 3500.
const RM = {
  name: '500 now, 1000 a month × 3',
  bonus: { immediate: 500, installments: { count: 3, amount: 1000, every: 'month' }, installment_expiry: 'end_of_period' },
};

// ---------------------------------------------------------------------------

describe('refund of a spend: POST /v1/customers/{id}/wallet/spends/{spend_id}/refunds', () => {
  let S;
  let A;
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'rm', RM, P0);
    for (const id of ['a', 'b', 'c2', 'd', 'e', 'f', 'g', 'h']) await W.customer(A, id);
  });

  test('partial refunds: principal first, then bonus back to the installments, most recent top-up / highest k first; beyond what is left → 422', async () => {
    const A1 = '2031-03-01T02:00:00Z';
    const A2 = '2031-03-02T02:00:00Z';
    const A3 = '2031-03-03T02:00:00Z';
    const A4 = '2031-03-04T02:00:00Z';
    const A5 = '2031-03-05T02:00:00Z';
    const A6 = '2031-03-06T02:00:00Z';
    const A7 = '2031-03-07T02:00:00Z';
    const A8 = '2031-03-08T02:00:00Z';
    // pay-a1 10000 at Mar 1: a1.k0 500 and a1.k1 1000 (expires Apr 1) released at once → p 10000, ba 1500, bs 2000
    let r = await W.topup(A, 'a', { topup_id: 'pay-a1', amount: 10000, offer: 'rm' }, A1);
    assert.deepEqual(r.wallet, WAL('a', A1, { p: 10000, ba: 1500, bs: 2000, opened: A1 }));
    // pay-a2 5000 at Mar 2: a2.k0 500 and a2.k1 1000 (expires Apr 2) → p 15000, ba 3000, bs 4000
    r = await W.topup(A, 'a', { topup_id: 'pay-a2', amount: 5000, offer: 'rm' }, A2);
    assert.deepEqual(r.wallet, WAL('a', A2, { p: 15000, ba: 3000, bs: 4000, opened: A1 }));
    // spend 6000 at Mar 3, bonus_first: from_bonus = min(6000, 3000) = 3000, from_principal 3000.
    // The bonus comes from a1.k1 (expires Apr 1) 1000, a2.k1 (Apr 2) 1000, then the ones that never
    // expire, oldest first: a1.k0 500, a2.k0 500 — every released installment is used up.
    const s = await W.spend(A, 'a', { spend_id: 'sp-a', amount: 6000, order_id: 'ord-a' }, A3);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [3000, 3000]);
    assert.deepEqual(s.wallet, WAL('a', A3, { p: 12000, ba: 0, bs: 4000, opened: A1 }));

    // rf-a1 2000 at Mar 4: the spend took 3000 from principal, none returned yet → all 2000 to principal
    r = await W.refund(A, 'a', 'sp-a', { refund_id: 'rf-a1', amount: 2000 }, A4);
    assert.deepEqual(r.refund, REF('rf-a1', 'sp-a', 2000, 2000, 0, 0, A4));
    assert.deepEqual(r.wallet, WAL('a', A4, { p: 14000, ba: 0, bs: 4000, opened: A1 })); // 12000 + 2000

    // rf-a2 1700 at Mar 5: principal up to 3000 − 2000 = 1000; the other 700 back to the bonus, most recent
    // top-up / highest k first: a2.k1 (took 1000; still released) → 700 to bonus_available
    r = await W.refund(A, 'a', 'sp-a', { refund_id: 'rf-a2', amount: 1700 }, A5);
    assert.deepEqual(r.refund, REF('rf-a2', 'sp-a', 1700, 1000, 700, 0, A5));
    assert.deepEqual(r.wallet, WAL('a', A5, { p: 15000, ba: 700, bs: 4000, opened: A1 }));

    // rf-a3 1000 at Mar 6: no principal left to return; a2.k1 has 1000 − 700 = 300 open → 300, then a2.k0 500,
    // then a1.k1 200 → to_bonus 1000; ba 700 + 1000 = 1700
    r = await W.refund(A, 'a', 'sp-a', { refund_id: 'rf-a3', amount: 1000 }, A6);
    assert.deepEqual(r.refund, REF('rf-a3', 'sp-a', 1000, 0, 1000, 0, A6));
    assert.deepEqual(r.wallet, WAL('a', A6, { p: 15000, ba: 1700, bs: 4000, opened: A1 }));
    let st = await W.statement(A, 'a', A6);
    // remaining: a1.k0 0, a1.k1 200, a2.k0 500, a2.k1 1000 (300 + 700); the schedule by due_at, top-up, k
    assert.deepEqual(st.schedule, [
      SCH('pay-a1', 0, 500, A1, null, 'released', 0),
      SCH('pay-a1', 1, 1000, A1, '2031-04-01T02:00:00Z', 'released', 200),
      SCH('pay-a2', 0, 500, A2, null, 'released', 500),
      SCH('pay-a2', 1, 1000, A2, '2031-04-02T02:00:00Z', 'released', 1000),
      SCH('pay-a1', 2, 1000, '2031-04-01T02:00:00Z', '2031-05-01T02:00:00Z', 'pending', 0),
      SCH('pay-a2', 2, 1000, '2031-04-02T02:00:00Z', '2031-05-02T02:00:00Z', 'pending', 0),
      SCH('pay-a1', 3, 1000, '2031-05-01T02:00:00Z', '2031-06-01T02:00:00Z', 'pending', 0),
      SCH('pay-a2', 3, 1000, '2031-05-02T02:00:00Z', '2031-06-02T02:00:00Z', 'pending', 0),
    ]);

    // left to refund: 6000 − 2000 − 1700 − 1000 = 1300; 1301 → 422 /amount and nothing changes
    assertProblem(await W.refundRaw(A, 'a', 'sp-a', { refund_id: 'rf-a4', amount: 1301 }, A7), 422, 'validation_failed', '/amount');
    assert.deepEqual(await W.wallet(A, 'a', A7), WAL('a', A7, { p: 15000, ba: 1700, bs: 4000, opened: A1 }));
    // the refund_id stays free: 1300 → a1.k1 800 (1000 − 200), a1.k0 500 → to_bonus 1300; ba 3000
    r = await W.refund(A, 'a', 'sp-a', { refund_id: 'rf-a4', amount: 1300 }, A7);
    assert.deepEqual(r.refund, REF('rf-a4', 'sp-a', 1300, 0, 1300, 0, A7));
    assert.deepEqual(r.wallet, WAL('a', A7, { p: 15000, ba: 3000, bs: 4000, opened: A1 }));
    // refunded in full: even 1 more → 422 /amount
    assertProblem(await W.refundRaw(A, 'a', 'sp-a', { refund_id: 'rf-a5', amount: 1 }, A8), 422, 'validation_failed', '/amount');

    // back where the wallet was before the spend: p 15000, ba 3000, bs 4000; every installment whole again
    st = await W.statement(A, 'a', A8);
    assert.deepEqual(st.wallet, WAL('a', A8, { p: 15000, ba: 3000, bs: 4000, opened: A1 }));
    assertMovements(st, [
      MV(A1, 'topup', 'pay-a1', 10000, 0, 3500),
      MV(A1, 'release', 'pay-a1', 0, 500, -500), // a1.k0
      MV(A1, 'release', 'pay-a1', 0, 1000, -1000), // a1.k1
      MV(A2, 'topup', 'pay-a2', 5000, 0, 3500),
      MV(A2, 'release', 'pay-a2', 0, 500, -500),
      MV(A2, 'release', 'pay-a2', 0, 1000, -1000),
      MV(A3, 'spend', 'sp-a', -3000, -3000, 0),
      MV(A4, 'refund', 'rf-a1', 2000, 0, 0),
      MV(A5, 'refund', 'rf-a2', 1000, 700, 0),
      MV(A6, 'refund', 'rf-a3', 0, 1000, 0),
      MV(A7, 'refund', 'rf-a4', 0, 1300, 0),
    ]);
    assert.deepEqual(afters(st).slice(6), [[12000, 0, 4000], [14000, 0, 4000], [15000, 700, 4000], [15000, 1700, 4000], [15000, 3000, 4000]]);
    assert.deepEqual(st.schedule.filter((i) => i.status === 'released').map((i) => [i.topup_id, i.k, i.remaining]),
      [['pay-a1', 0, 500], ['pay-a1', 1, 1000], ['pay-a2', 0, 500], ['pay-a2', 1, 1000]]);
  });

  test('bonus back to an installment that has expired since → to_breakage (spent in full or in part); the rest as usual', async () => {
    const B1 = '2031-03-01T02:00:00Z';
    const B2 = '2031-03-10T02:00:00Z';
    const APR1 = '2031-04-01T02:00:00Z';
    const B3 = '2031-04-05T02:00:00Z';
    const B4 = '2031-04-20T02:00:00Z';
    for (const [cust, amount] of [['b', 10000], ['c2', 10000], ['d', 2000]]) {
      const r = await W.topup(A, cust, { topup_id: `pay-${cust}`, amount, offer: 'rm' }, B1);
      // k0 500 + k1 1000 released; k2, k3 pending
      assert.deepEqual(r.wallet, WAL(cust, B1, { p: amount, ba: 1500, bs: 2000, opened: B1 }));
    }
    // b: 1000 from bonus, all from k1 (expires first): k1 spent in full, k0 keeps 500
    let s = await W.spend(A, 'b', { spend_id: 'sp-b', amount: 1000 }, B2);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus, s.wallet.bonus_available], [0, 1000, 500]);
    // c2: 600 from k1, which keeps 400
    s = await W.spend(A, 'c2', { spend_id: 'sp-c2', amount: 600 }, B2);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus, s.wallet.bonus_available], [0, 600, 900]);
    // d: 2500, bonus_first: 1500 from bonus (k1 1000, then k0 500), 1000 from principal → p 1000, ba 0
    s = await W.spend(A, 'd', { spend_id: 'sp-d', amount: 2500 }, B2);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [1000, 1500]);
    assert.deepEqual(s.wallet, WAL('d', B2, { p: 1000, ba: 0, bs: 2000, opened: B1 }));

    // Apr 1: k1 expires (b: nothing left; c2: its 400; d: nothing left), k2 1000 released.
    // Apr 5: the refunds.
    // b: 1000, none from principal (the spend took none); back to k1, expired since → to_breakage 1000.
    //    The wallet does not change: p 10000, ba 500 (k0) + 1000 (k2) = 1500, bs 1000 (k3)
    let r = await W.refund(A, 'b', 'sp-b', { refund_id: 'rf-b', amount: 1000 }, B3);
    assert.deepEqual(r.refund, REF('rf-b', 'sp-b', 1000, 0, 0, 1000, B3));
    assert.deepEqual(r.wallet, WAL('b', B3, { p: 10000, ba: 1500, bs: 1000, opened: B1 }));
    // c2: 600 back to k1, expired since → to_breakage 600; ba 500 (k0) + 1000 (k2) = 1500
    r = await W.refund(A, 'c2', 'sp-c2', { refund_id: 'rf-c2', amount: 600 }, B3);
    assert.deepEqual(r.refund, REF('rf-c2', 'sp-c2', 600, 0, 0, 600, B3));
    assert.deepEqual(r.wallet, WAL('c2', B3, { p: 10000, ba: 1500, bs: 1000, opened: B1 }));
    // d: 2200: principal first, up to the 1000 the spend took; the other 1200 to the bonus, highest k first:
    //    k1 (1000, expired since) → breakage 1000; then k0 (never expires, released) → 200 to bonus.
    //    p 1000 + 1000 = 2000; ba 1000 (k2) + 200 = 1200; bs 1000
    r = await W.refund(A, 'd', 'sp-d', { refund_id: 'rf-d', amount: 2200 }, B3);
    assert.deepEqual(r.refund, REF('rf-d', 'sp-d', 2200, 1000, 200, 1000, B3));
    assert.deepEqual(r.wallet, WAL('d', B3, { p: 2000, ba: 1200, bs: 1000, opened: B1 }));

    // later (Apr 20, before k2 expires May 1): nothing of the refunds turns up again — no late expiry
    let st = await W.statement(A, 'b', B4);
    assert.deepEqual(st.wallet, WAL('b', B4, { p: 10000, ba: 1500, bs: 1000, opened: B1 }));
    assertMovements(st, [
      MV(B1, 'topup', 'pay-b', 10000, 0, 3500),
      MV(B1, 'release', 'pay-b', 0, 500, -500),
      MV(B1, 'release', 'pay-b', 0, 1000, -1000),
      MV(B2, 'spend', 'sp-b', 0, -1000, 0),
      MV(APR1, 'release', 'pay-b', 0, 1000, -1000), // k2; k1 had nothing left to expire
      MV(B3, 'refund', 'rf-b', 0, 0, 0), // all of it to breakage: no wallet account moves
    ]);
    // k1 keeps nothing: the refund did not make it spendable again
    assert.equal(st.schedule.find((i) => i.k === 1).remaining, 0);

    st = await W.statement(A, 'c2', B4);
    assert.deepEqual(st.wallet, WAL('c2', B4, { p: 10000, ba: 1500, bs: 1000, opened: B1 }));
    assertMovements(st, [
      MV(B1, 'topup', 'pay-c2', 10000, 0, 3500),
      MV(B1, 'release', 'pay-c2', 0, 500, -500),
      MV(B1, 'release', 'pay-c2', 0, 1000, -1000),
      MV(B2, 'spend', 'sp-c2', 0, -600, 0),
      MV(APR1, 'expiry', 'pay-c2', 0, -400, 0), // k1's unspent 400
      MV(APR1, 'release', 'pay-c2', 0, 1000, -1000),
      MV(B3, 'refund', 'rf-c2', 0, 0, 0),
    ]);
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]),
      [[0, 'released', 500], [1, 'expired', 0], [2, 'released', 1000], [3, 'pending', 0]]);

    st = await W.statement(A, 'd', B4);
    assert.deepEqual(st.wallet, WAL('d', B4, { p: 2000, ba: 1200, bs: 1000, opened: B1 }));
    assertMovements(st, [
      MV(B1, 'topup', 'pay-d', 2000, 0, 3500),
      MV(B1, 'release', 'pay-d', 0, 500, -500),
      MV(B1, 'release', 'pay-d', 0, 1000, -1000),
      MV(B2, 'spend', 'sp-d', -1000, -1500, 0),
      MV(APR1, 'release', 'pay-d', 0, 1000, -1000),
      MV(B3, 'refund', 'rf-d', 1000, 200, 0),
    ]);
    assert.deepEqual(st.schedule.filter((i) => i.k !== 1).map((i) => [i.k, i.status, i.remaining]),
      [[0, 'released', 200], [2, 'released', 1000], [3, 'pending', 0]]);
    assert.equal(st.schedule.find((i) => i.k === 1).remaining, 0);
  });

  test('replay by refund_id → 200 with the stored refund; another amount, spend or customer → 409 conflict /refund_id; one movement', async () => {
    const E1 = '2031-05-01T02:00:00Z';
    const E2 = '2031-05-02T02:00:00Z';
    const E3 = '2031-05-03T02:00:00Z';
    const E4 = '2031-05-04T02:00:00Z';
    await W.topup(A, 'e', { topup_id: 'pay-e', amount: 5000 }, E1);
    await W.spend(A, 'e', { spend_id: 'sp-e1', amount: 3000 }, E2);
    await W.spend(A, 'e', { spend_id: 'sp-e2', amount: 1000 }, plusHours(E2, 1)); // p 1000
    await W.topup(A, 'f', { topup_id: 'pay-f', amount: 1000 }, E1);
    await W.spend(A, 'f', { spend_id: 'sp-f', amount: 500 }, E2);
    const first = await W.refund(A, 'e', 'sp-e1', { refund_id: 'rf-e1', amount: 1000 }, E3);
    assert.deepEqual(first.refund, REF('rf-e1', 'sp-e1', 1000, 1000, 0, 0, E3));
    assert.deepEqual(first.wallet, WAL('e', E3, { p: 2000, opened: E1 })); // 1000 + 1000
    // the same again a day later: 200, the stored refund (created_at E3), the wallet as of now, nothing new
    const again = await W.refund(A, 'e', 'sp-e1', { refund_id: 'rf-e1', amount: 1000 }, E4, 200);
    assert.deepEqual(again.refund, first.refund);
    assert.deepEqual(again.wallet, WAL('e', E4, { p: 2000, opened: E1 }));
    // anything different → 409 conflict, pointer /refund_id
    const conflicts = [
      ['e', 'sp-e1', 999], // another amount
      ['e', 'sp-e2', 1000], // another spend of the same customer
      ['f', 'sp-f', 500], // another customer's spend
    ];
    for (const [cust, spendId, amount] of conflicts) {
      assertProblem(await W.refundRaw(A, cust, spendId, { refund_id: 'rf-e1', amount }, E4), 409, 'conflict', '/refund_id');
    }
    const st = await W.statement(A, 'e', E4);
    assert.deepEqual(st.movements.filter((m) => m.kind === 'refund').map((m) => m.ref), ['rf-e1'], 'one refund movement');
    assert.deepEqual(st.wallet, WAL('e', E4, { p: 2000, opened: E1 }));
    assert.deepEqual(await W.wallet(A, 'f', E4), WAL('f', E4, { p: 500, opened: E1 }));
    // a replay still answers 200 once the spend is refunded in full by other refunds (3000 − 1000 = 2000 left)
    await W.refund(A, 'e', 'sp-e1', { refund_id: 'rf-e1b', amount: 2000 }, E4);
    const late = await W.refund(A, 'e', 'sp-e1', { refund_id: 'rf-e1', amount: 1000 }, E4, 200);
    assert.deepEqual(late.refund, first.refund);
    assert.deepEqual(late.wallet, WAL('e', E4, { p: 4000, opened: E1 })); // 2000 + 2000
  });

  test('unknown or foreign spend, unknown or erased customer, a malformed spend id → 404; nothing recorded', async () => {
    const G1 = '2031-05-10T02:00:00Z';
    await W.topup(A, 'g', { topup_id: 'pay-g', amount: 1000 }, G1);
    await W.spend(A, 'g', { spend_id: 'sp-g', amount: 100 }, G1);
    await W.topup(A, 'h', { topup_id: 'pay-h', amount: 1000 }, G1);
    await W.spend(A, 'h', { spend_id: 'sp-h', amount: 100 }, G1);
    const O = await mkShop();
    await W.customer(O.keys.admin, 'g');
    const body = { refund_id: 'rf-404', amount: 10 };
    const cases = [
      [A, 'g', 'no-such-spend'],
      [A, 'g', 'sp-h'], // h's spend: g has no spend with that id
      [A, 'ghost', 'sp-g'], // unknown customer
      [O.keys.admin, 'g', 'sp-g'], // another shop's customer g has no such spend
      [A, 'g', 'sp g'], // spaces: never a spend id
      [A, 'g', 'x'.repeat(129)], // longer than 128
    ];
    for (const [key, cust, spendId] of cases) {
      assertProblem(await W.refundRaw(key, cust, spendId, body, G1), 404, 'not_found');
    }
    // erased: h cannot be refunded to any more
    assert.equal((await c.del('/v1/customers/h', { key: A })).status, 204);
    assertProblem(await W.refundRaw(A, 'h', 'sp-h', body, G1), 404, 'not_found');
    // rf-404 was never recorded: usable now
    const r = await W.refund(A, 'g', 'sp-g', body, G1);
    assert.deepEqual(r.refund, REF('rf-404', 'sp-g', 10, 10, 0, 0, G1));
    assert.deepEqual(r.wallet, WAL('g', G1, { p: 910, opened: G1 })); // 1000 − 100 + 10
  });

  test('bodies: 422 at the pointer, 400 malformed; scopes; Idempotency-Key', async () => {
    const K1 = '2031-05-20T02:00:00Z';
    const K2 = '2031-05-21T02:00:00Z';
    await W.customer(A, 'k');
    await W.topup(A, 'k', { topup_id: 'pay-k', amount: 5000 }, K1);
    await W.spend(A, 'k', { spend_id: 'sp-k', amount: 4000 }, K1); // p 1000
    const cases = [
      [{ amount: 100 }, '/refund_id'],
      [{ refund_id: '', amount: 100 }, '/refund_id'],
      [{ refund_id: 'x'.repeat(129), amount: 100 }, '/refund_id'],
      [{ refund_id: 'with space', amount: 100 }, '/refund_id'],
      [{ refund_id: 5, amount: 100 }, '/refund_id'],
      [{ refund_id: 'v-1' }, '/amount'],
      [{ refund_id: 'v-1', amount: 0 }, '/amount'],
      [{ refund_id: 'v-1', amount: -5 }, '/amount'],
      [{ refund_id: 'v-1', amount: TEN_12 + 1 }, '/amount'],
      [{ refund_id: 'v-1', amount: 1.5 }, '/amount'],
      [{ refund_id: 'v-1', amount: '100' }, '/amount'],
      [{ refund_id: 'v-1', amount: 100, colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await W.refundRaw(A, 'k', 'sp-k', body, K1);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', spendRefundPath('k', 'sp-k'), { ...at(A, K1), rawBody: '{"refund_id":' }), 400, 'malformed_json');
    // scopes: readonly and platform → 403; no key → 401; storefront may
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await W.refundRaw(key, 'k', 'sp-k', { refund_id: 'sc-1', amount: 1 }, K1), 403, 'forbidden');
    }
    assertProblem(await c.post(spendRefundPath('k', 'sp-k'), { refund_id: 'sc-1', amount: 1 }), 401, 'unauthenticated');
    let st = await W.statement(A, 'k', K1);
    assert.equal(st.movements.length, 2, 'nothing recorded: the top-up and the spend only');
    const sf = await W.refund(S.keys.storefront, 'k', 'sp-k', { refund_id: 'sc-1', amount: 1 }, K1);
    assert.deepEqual(sf.refund, REF('sc-1', 'sp-k', 1, 1, 0, 0, K1));
    // Idempotency-Key: a retry answers the original status and body; the key with another body → 422
    const ik = uniq('ik-refund');
    const b = { refund_id: 'rf-ik', amount: 500 };
    const r1 = await W.refundRaw(A, 'k', 'sp-k', b, K1, { idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await W.refundRaw(A, 'k', 'sp-k', b, K2, { idempotencyKey: ik });
    assert.deepEqual([r2.status, r2.headers['idempotent-replayed'], r2.text], [201, 'true', r1.text]);
    assertProblem(await W.refundRaw(A, 'k', 'sp-k', { ...b, amount: 501 }, K2, { idempotencyKey: ik }), 422, 'idempotency_key_reused');
    st = await W.statement(A, 'k', K2);
    assertMovements(st, [
      MV(K1, 'topup', 'pay-k', 5000, 0, 0),
      MV(K1, 'spend', 'sp-k', -4000, 0, 0),
      MV(K1, 'refund', 'sc-1', 1, 0, 0),
      MV(K1, 'refund', 'rf-ik', 500, 0, 0),
    ]);
    assert.deepEqual(st.wallet, WAL('k', K2, { p: 1501, opened: K1 })); // 1000 + 1 + 500
  });
});

// ---------------------------------------------------------------------------

describe('refund of a top-up: POST /v1/customers/{id}/wallet/topups/{topup_id}/refund', () => {
  let S;
  let A;
  const T1 = '2031-03-01T02:00:00Z';
  const T2 = '2031-03-02T02:00:00Z';
  const T3 = '2031-03-05T02:00:00Z';
  const T4 = '2031-03-10T02:00:00Z';
  const T5 = '2031-03-11T02:00:00Z';
  const T6 = '2031-03-12T02:00:00Z';
  const APR1 = '2031-04-01T02:00:00Z';
  const MAY1 = '2031-05-01T02:00:00Z';
  const JUN1 = '2031-06-01T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'rm', RM, P0);
    for (const id of ['t', 'u', 'v', 'x', 'y']) await W.customer(A, id);
  });

  test('principal returned = the amount when the wallet holds it; pending cancelled; the unspent part of released ones clawed back; spent in full stay released', async () => {
    // t: pay-t1 10000 with rm (k0 500 + k1 1000 released, k2 k3 pending), pay-t2 3000 without an offer
    await W.topup(A, 't', { topup_id: 'pay-t1', amount: 10000, offer: 'rm' }, T1);
    await W.topup(A, 't', { topup_id: 'pay-t2', amount: 3000 }, T2); // p 13000, ba 1500, bs 2000
    // 1200 from bonus: k1 (expires first) 1000 → spent in full; k0 200 → keeps 300
    const s = await W.spend(A, 't', { spend_id: 'sp-t', amount: 1200 }, T3);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [0, 1200]);
    assert.deepEqual(s.wallet, WAL('t', T3, { p: 13000, ba: 300, bs: 2000, opened: T1 }));

    // the refund of pay-t1 at Mar 10: principal_returned = min(10000, 13000) = 10000; k2 + k3 pending → cancelled 2000;
    // k0's unspent 300 → clawed back (k0 cancelled, remaining 0); k1 spent in full → stays released.
    const r = await W.topupRefund(A, 't', 'pay-t1', T4);
    assert.deepEqual(r.topup, {
      topup_id: 'pay-t1', customer_id: 't', amount: 10000, offer: 'rm', offer_version: 1, bonus_total: 3500, created_at: U(T1),
      refund: TREF(T4, 10000, 2000, 300),
      installments: [
        I(0, 500, T1, null, 'cancelled', 0),
        I(1, 1000, T1, APR1, 'released', 0),
        I(2, 1000, APR1, MAY1, 'cancelled', 0),
        I(3, 1000, MAY1, JUN1, 'cancelled', 0),
      ],
    });
    // p 13000 − 10000 = 3000 (pay-t2's), ba 300 − 300 = 0, bs 2000 − 2000 = 0
    assert.deepEqual(r.wallet, WAL('t', T4, { p: 3000, ba: 0, bs: 0, opened: T1 }));

    // again (with {} as the body this time): 200, the same top-up, the wallet as of now, no new movement
    const again = await c.post(topupRefundPath('t', 'pay-t1'), {}, at(A, T5));
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body.topup, r.topup);
    assert.deepEqual(again.body.wallet, WAL('t', T5, { p: 3000, opened: T1 }));

    // the statement: one topup_refund movement, principal −10000, bonus_available −300, bonus_scheduled −2000
    const st = await W.statement(A, 't', T5);
    assertMovements(st, [
      MV(T1, 'topup', 'pay-t1', 10000, 0, 3500),
      MV(T1, 'release', 'pay-t1', 0, 500, -500),
      MV(T1, 'release', 'pay-t1', 0, 1000, -1000),
      MV(T2, 'topup', 'pay-t2', 3000, 0, 0),
      MV(T3, 'spend', 'sp-t', 0, -1200, 0),
      MV(T4, 'topup_refund', 'pay-t1', -10000, -300, -2000),
    ]);
    assert.deepEqual(afters(st).slice(3), [[13000, 1500, 2000], [13000, 300, 2000], [3000, 0, 0]]);
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]),
      [[0, 'cancelled', 0], [1, 'released', 0], [2, 'cancelled', 0], [3, 'cancelled', 0]]);
  });

  test('a refund of a spend after its top-up was refunded: its bonus goes to promotion (clawed back, as the top-up refund would have), never to the wallet', async () => {
    // sp-t took k1 1000 (spent in full, stays released, expires Apr 1) and k0 200 (cancelled with pay-t1).
    // 1200 at Mar 12: no principal part; both installments belong to pay-t1, refunded at Mar 10: the bonus is
    // unspent again, and the top-up refund claws back unspent bonus → all 1200 to promotion, counted in to_breakage.
    const r = await W.refund(A, 't', 'sp-t', { refund_id: 'rf-t', amount: 1200 }, T6);
    assert.deepEqual(r.refund, REF('rf-t', 'sp-t', 1200, 0, 0, 1200, T6));
    assert.deepEqual(r.wallet, WAL('t', T6, { p: 3000, ba: 0, bs: 0, opened: T1 }));
    // nothing of pay-t1 is left to release or expire: Apr 1 .. Jun 1 bring nothing
    const END = '2031-07-01T00:00:00Z';
    const st = await W.statement(A, 't', END);
    assert.deepEqual(st.wallet, WAL('t', END, { p: 3000, ba: 0, bs: 0, opened: T1 }));
    assertMovements(st, [
      MV(T1, 'topup', 'pay-t1', 10000, 0, 3500),
      MV(T1, 'release', 'pay-t1', 0, 500, -500),
      MV(T1, 'release', 'pay-t1', 0, 1000, -1000),
      MV(T2, 'topup', 'pay-t2', 3000, 0, 0),
      MV(T3, 'spend', 'sp-t', 0, -1200, 0),
      MV(T4, 'topup_refund', 'pay-t1', -10000, -300, -2000),
      MV(T6, 'refund', 'rf-t', 0, 0, 0), // revenue -1200, promotion +1200: shop accounts only
    ]);
    assert.deepEqual(st.schedule.map((i) => [i.k, i.status, i.remaining]),
      [[0, 'cancelled', 0], [1, 'released', 0], [2, 'cancelled', 0], [3, 'cancelled', 0]]);
  });

  test('principal returned = the principal left when the wallet holds less than the amount; never more than was paid', async () => {
    // u: pay-u1 10000 with rm; 9000 spent at Mar 5: 1500 from bonus (k1 1000, k0 500: both spent in full), 7500 from principal
    await W.topup(A, 'u', { topup_id: 'pay-u1', amount: 10000, offer: 'rm' }, T1);
    const s = await W.spend(A, 'u', { spend_id: 'sp-u', amount: 9000 }, T3);
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [7500, 1500]);
    assert.deepEqual(s.wallet, WAL('u', T3, { p: 2500, ba: 0, bs: 2000, opened: T1 }));
    // Mar 20: principal_returned = min(10000, 2500) = 2500; k2 + k3 cancelled 2000; nothing unspent to claw back;
    // k0 and k1, spent in full, stay released
    const T7 = '2031-03-20T02:00:00Z';
    const r = await W.topupRefund(A, 'u', 'pay-u1', T7);
    assert.deepEqual(r.topup.refund, TREF(T7, 2500, 2000, 0));
    assert.deepEqual(r.topup.installments, [
      I(0, 500, T1, null, 'released', 0),
      I(1, 1000, T1, APR1, 'released', 0),
      I(2, 1000, APR1, MAY1, 'cancelled', 0),
      I(3, 1000, MAY1, JUN1, 'cancelled', 0),
    ]);
    assert.deepEqual(r.wallet, WAL('u', T7, { p: 0, ba: 0, bs: 0, opened: T1 }));
    // a later top-up is not touched by it; a second refund call is still the same 200
    await W.topup(A, 'u', { topup_id: 'pay-u2', amount: 700 }, plusDays(T7, 1));
    const again = await W.topupRefund(A, 'u', 'pay-u1', plusDays(T7, 2), 200);
    assert.deepEqual(again.topup, r.topup);
    assert.deepEqual(again.wallet, WAL('u', plusDays(T7, 2), { p: 700, opened: T1 }));
    const st = await W.statement(A, 'u', plusDays(T7, 2));
    assertMovements(st, [
      MV(T1, 'topup', 'pay-u1', 10000, 0, 3500),
      MV(T1, 'release', 'pay-u1', 0, 500, -500),
      MV(T1, 'release', 'pay-u1', 0, 1000, -1000),
      MV(T3, 'spend', 'sp-u', -7500, -1500, 0),
      MV(T7, 'topup_refund', 'pay-u1', -2500, 0, -2000),
      MV(plusDays(T7, 1), 'topup', 'pay-u2', 700, 0, 0),
    ]);
    // the spend can still be refunded: 7500 to principal first; the 1500 of bonus came from k1 and k0 of pay-u1,
    // refunded since → to promotion (to_breakage 1500), not to the wallet
    const T8 = plusDays(T7, 3);
    const rf = await W.refund(A, 'u', 'sp-u', { refund_id: 'rf-u', amount: 9000 }, T8);
    assert.deepEqual(rf.refund, REF('rf-u', 'sp-u', 9000, 7500, 0, 1500, T8));
    assert.deepEqual(rf.wallet, WAL('u', T8, { p: 8200, ba: 0, bs: 0, opened: T1 })); // 700 + 7500
  });

  test('errors: unknown top-up, another customer\'s, unknown or erased customer → 404; a body with members → 422; scopes; Idempotency-Key', async () => {
    const X1 = '2031-04-10T02:00:00Z';
    await W.topup(A, 'v', { topup_id: 'pay-v', amount: 800 }, X1);
    await W.topup(A, 'x', { topup_id: 'pay-x', amount: 900 }, X1);
    assertProblem(await W.topupRefundRaw(A, 'v', 'no-such-topup', X1), 404, 'not_found');
    assertProblem(await W.topupRefundRaw(A, 'v', 'pay-x', X1), 404, 'not_found'); // x's top-up
    assertProblem(await W.topupRefundRaw(A, 'ghost', 'pay-v', X1), 404, 'not_found');
    assertProblem(await W.topupRefundRaw(A, 'v', 'pay v', X1), 404, 'not_found');
    // an erased customer's top-up cannot be refunded any more
    await W.topup(A, 'y', { topup_id: 'pay-y', amount: 600 }, X1);
    assert.equal((await c.del('/v1/customers/y', { key: A })).status, 204);
    assertProblem(await W.topupRefundRaw(A, 'y', 'pay-y', X1), 404, 'not_found');
    const bad = await c.post(topupRefundPath('v', 'pay-v'), { reason: 'changed mind' }, at(A, X1));
    assert.equal(bad.status, 422, bad.text);
    assert.equal(bad.body.code, 'validation_failed');
    for (const key of [S.keys.readonly, svc.platformKey]) {
      assertProblem(await W.topupRefundRaw(key, 'v', 'pay-v', X1), 403, 'forbidden');
    }
    assertProblem(await c.req('POST', topupRefundPath('v', 'pay-v')), 401, 'unauthenticated');
    assert.deepEqual(await W.wallet(A, 'v', X1), WAL('v', X1, { p: 800, opened: X1 }), 'nothing recorded');
    // storefront may; with an Idempotency-Key a retry answers the original 201 and body
    const ik = uniq('ik-topup-refund');
    const r1 = await W.topupRefundRaw(S.keys.storefront, 'v', 'pay-v', X1, { idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    assert.deepEqual(r1.body.topup.refund, TREF(X1, 800, 0, 0));
    const r2 = await W.topupRefundRaw(S.keys.storefront, 'v', 'pay-v', plusHours(X1, 1), { idempotencyKey: ik });
    assert.deepEqual([r2.status, r2.headers['idempotent-replayed'], r2.text], [201, 'true', r1.text]);
    const st = await W.statement(A, 'v', plusHours(X1, 1));
    assertMovements(st, [MV(X1, 'topup', 'pay-v', 800, 0, 0), MV(X1, 'topup_refund', 'pay-v', -800, 0, 0)]);
    assert.deepEqual(await W.wallet(A, 'x', X1), WAL('x', X1, { p: 900, opened: X1 }));
  });
});

// ---------------------------------------------------------------------------

describe('adjustments: POST /v1/customers/{id}/wallet/adjustments', () => {
  let S;
  let A;
  const J1 = '2031-03-01T02:00:00Z';
  const J2 = '2031-03-02T02:00:00Z';
  const J3 = '2031-03-03T02:00:00Z';
  before(async () => {
    S = await mkShop();
    A = S.keys.admin;
    await W.offer(A, 'rm', RM, P0);
    for (const id of ['j', 'k', 'l', 'm']) await W.customer(A, id);
  });

  test('a positive adjustment opens a wallet; a negative one beyond the principal → 422 insufficient_funds with the figures', async () => {
    // no wallet: taking 100 → 422 with zeros; the wallet stays unopened
    assertInsufficient(await W.adjustRaw(A, 'j', { adjustment_id: 'adj-j0', amount: -100, reason: 'mistake' }, J1), 0, 0);
    assert.deepEqual(await W.wallet(A, 'j', J1), WAL('j', J1));
    // +5000 → 201; the wallet opens now
    const r = await W.adjust(A, 'j', { adjustment_id: 'adj-j1', amount: 5000, reason: 'goodwill: parcel lost' }, J1);
    assert.deepEqual(r.adjustment, { adjustment_id: 'adj-j1', amount: 5000, reason: 'goodwill: parcel lost', created_at: U(J1) });
    assert.deepEqual(r.wallet, WAL('j', J1, { p: 5000, opened: J1 }));
    // −5001 → 422 (principal 5000); −5000 → 201, p 0
    const over = await W.adjustRaw(A, 'j', { adjustment_id: 'adj-j2', amount: -5001, reason: 'correction' }, J2);
    assertInsufficient(over, 5000, 0);
    assert.equal(over.body.pointer, '/amount', over.text);
    const r2 = await W.adjust(A, 'j', { adjustment_id: 'adj-j2', amount: -5000, reason: 'correction' }, J2);
    assert.deepEqual(r2.wallet, WAL('j', J2, { p: 0, opened: J1 }));
    const st = await W.statement(A, 'j', J2);
    assertMovements(st, [MV(J1, 'adjustment', 'adj-j1', 5000, 0, 0), MV(J2, 'adjustment', 'adj-j2', -5000, 0, 0)]);
    assert.deepEqual(afters(st), [[5000, 0, 0], [0, 0, 0]]);
  });

  test('the bonus is not principal: a wallet with 1000 principal and 1500 bonus can lose at most 1000', async () => {
    await W.topup(A, 'k', { topup_id: 'pay-k', amount: 1000, offer: 'rm' }, J1); // p 1000, ba 1500, bs 2000
    assertInsufficient(await W.adjustRaw(A, 'k', { adjustment_id: 'adj-k1', amount: -1001, reason: 'x' }, J2), 1000, 1500);
    const r = await W.adjust(A, 'k', { adjustment_id: 'adj-k1', amount: -1000, reason: 'x' }, J2);
    assert.deepEqual(r.wallet, WAL('k', J2, { p: 0, ba: 1500, bs: 2000, opened: J1 }));
    // the limits: +10^12 is fine
    const big = await W.adjust(A, 'k', { adjustment_id: 'adj-k2', amount: TEN_12, reason: 'r'.repeat(500) }, J3);
    assert.deepEqual(big.wallet, WAL('k', J3, { p: TEN_12, ba: 1500, bs: 2000, opened: J1 }));
    const st = await W.statement(A, 'k', J3);
    assertMovements(st, [
      MV(J1, 'topup', 'pay-k', 1000, 0, 3500),
      MV(J1, 'release', 'pay-k', 0, 500, -500),
      MV(J1, 'release', 'pay-k', 0, 1000, -1000),
      MV(J2, 'adjustment', 'adj-k1', -1000, 0, 0),
      MV(J3, 'adjustment', 'adj-k2', TEN_12, 0, 0),
    ]);
  });

  test('replay by adjustment_id → 200 with the stored adjustment; another amount, reason or customer → 409; one movement', async () => {
    const first = await W.adjust(A, 'l', { adjustment_id: 'adj-l', amount: 300, reason: 'coupon' }, J1);
    const again = await W.adjust(A, 'l', { adjustment_id: 'adj-l', amount: 300, reason: 'coupon' }, J2, 200);
    assert.deepEqual(again.adjustment, first.adjustment);
    assert.deepEqual(again.wallet, WAL('l', J2, { p: 300, opened: J1 }));
    for (const [cust, amount, reason] of [['l', 301, 'coupon'], ['l', 300, 'Coupon'], ['m', 300, 'coupon']]) {
      assertProblem(await W.adjustRaw(A, cust, { adjustment_id: 'adj-l', amount, reason }, J2), 409, 'conflict', '/adjustment_id');
    }
    const st = await W.statement(A, 'l', J2);
    assertMovements(st, [MV(J1, 'adjustment', 'adj-l', 300, 0, 0)]);
    assert.deepEqual(await W.wallet(A, 'm', J2), WAL('m', J2), 'm has no wallet');
    // Idempotency-Key: a retry answers the original status and body
    const ik = uniq('ik-adj');
    const b = { adjustment_id: 'adj-l2', amount: -100, reason: 'fee' };
    const r1 = await W.adjustRaw(A, 'l', b, J2, { idempotencyKey: ik });
    assert.equal(r1.status, 201, r1.text);
    const r2 = await W.adjustRaw(A, 'l', b, J3, { idempotencyKey: ik });
    assert.deepEqual([r2.status, r2.headers['idempotent-replayed'], r2.text], [201, 'true', r1.text]);
    assert.deepEqual(await W.wallet(A, 'l', J3), WAL('l', J3, { p: 200, opened: J1 }));
  });

  test('0 → 422 /amount; bad bodies → 422 at the pointer; unknown customer → 404; admin only (storefront, readonly, platform → 403)', async () => {
    const cases = [
      [{ adjustment_id: 'v-1', amount: 0, reason: 'x' }, '/amount'],
      [{ adjustment_id: 'v-1', amount: TEN_12 + 1, reason: 'x' }, '/amount'],
      [{ adjustment_id: 'v-1', amount: -TEN_12 - 1, reason: 'x' }, '/amount'],
      [{ adjustment_id: 'v-1', amount: 2.5, reason: 'x' }, '/amount'],
      [{ adjustment_id: 'v-1', amount: '5', reason: 'x' }, '/amount'],
      [{ adjustment_id: 'v-1', reason: 'x' }, '/amount'],
      [{ amount: 5, reason: 'x' }, '/adjustment_id'],
      [{ adjustment_id: '', amount: 5, reason: 'x' }, '/adjustment_id'],
      [{ adjustment_id: 'a b', amount: 5, reason: 'x' }, '/adjustment_id'],
      [{ adjustment_id: 'x'.repeat(129), amount: 5, reason: 'x' }, '/adjustment_id'],
      [{ adjustment_id: 'v-1', amount: 5 }, '/reason'],
      [{ adjustment_id: 'v-1', amount: 5, reason: '' }, '/reason'],
      [{ adjustment_id: 'v-1', amount: 5, reason: 'r'.repeat(501) }, '/reason'],
      [{ adjustment_id: 'v-1', amount: 5, reason: 7 }, '/reason'],
      [{ adjustment_id: 'v-1', amount: 5, reason: 'x', colour: 'red' }, '/colour'],
    ];
    for (const [body, pointer] of cases) {
      const r = await W.adjustRaw(A, 'm', body, J1);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', pointer], `${JSON.stringify(body)}: ${r.text}`);
    }
    assertProblem(await c.req('POST', adjustmentPath('m'), { ...at(A, J1), rawBody: '{"amount":' }), 400, 'malformed_json');
    assertProblem(await W.adjustRaw(A, 'ghost', { adjustment_id: 'v-1', amount: 5, reason: 'x' }, J1), 404, 'not_found');
    for (const key of [S.keys.storefront, S.keys.readonly, svc.platformKey]) {
      assertProblem(await W.adjustRaw(key, 'm', { adjustment_id: 'v-1', amount: 5, reason: 'x' }, J1), 403, 'forbidden');
    }
    assertProblem(await c.post(adjustmentPath('m'), { adjustment_id: 'v-1', amount: 5, reason: 'x' }), 401, 'unauthenticated');
    assert.deepEqual(await W.wallet(A, 'm', J1), WAL('m', J1), 'nothing recorded');
  });
});

// ---------------------------------------------------------------------------
// The prepaid liability report across simulated months (2025, a service of its own)

describe('GET /v1/metrics/prepaid-liability across simulated months', () => {
  let svcL;
  let cL;
  let WL;
  let S;
  let A;
  const reports = {}; // name → the reply taken at the time
  // 10:00 local = 02:00Z; "L('01-10')" = 2025-01-10 10:00 +08:00
  const L = (md, hhmm = '10:00') => `2025-${md}T${hhmm}:00+08:00`;

  //  #   | local date 10:00 | customer | what                                                  | p      | ba   | bs
  //  E1  | 01-10 | c1 | top-up pay-c1 20000 with m200 (3 × 2000 monthly, end_of_period):   |        |      |
  //      |       |    |   k1 due 01-10 exp 02-10, k2 due 02-10 exp 03-10, k3 due 03-10 exp 04-10; k1 released | 20000 | 2000 | 4000
  //  E2  | 01-15 | c2 | top-up pay-c2 10000 with imm (1500 at once, expires after 30 days: 02-14 10:00) | 10000 | 1500 | 0
  //  E3  | 01-20 | c1 | spend sp-1 5000: bonus 2000 (k1 spent in full), principal 3000      | 17000 | 0    | 4000
  //  E4  | 01-25 | c3 | top-up pay-c3 8000 without an offer                                  | 8000  |      |
  //  E5  | 01-28 | c1 | refund rf-1 3500 of sp-1: principal 3000, bonus 500 back to k1 (released) | 20000 | 500 | 4000
  //  E6  | 02-01 | c2 | spend sp-2 1000: all bonus (k0 keeps 500)                           | 10000 | 500  |
  //  E7  | 02-05 | c3 | adjustment +500; c1 adjustment −200                                  | c3 8500, c1 19800
  //  E8  | 02-10 | c1 | (due) k1 expires with 500 left → breakage; k2 released 2000          | 19800 | 2000 | 2000
  //  E9  | 02-14 | c2 | (due) k0 expires with 500 left → breakage                            | 10000 | 0    |
  //  E10 | 02-15 | c1 | spend sp-3 1500: all bonus, from k2 (keeps 500)                      | 19800 | 500  | 2000
  //  E11 | 02-20 | c2 | spend sp-4 4000: all principal                                       | 6000  | 0    |
  //  E12 | 03-01 | c2 | refund rf-2 1000 of sp-2: no principal part; k0 expired since → breakage 1000 | 6000 | 0 |
  //  E13 | 03-05 | c1 | refund of pay-c1: principal_returned min(20000, 19800) = 19800; k3 cancelled 2000; k2's 500 clawed back | 0 | 0 | 0
  //  E14 | 03-12 | c4 | top-up pay-c4 25000 with m200: k1 due 03-12 exp 04-12, k2 due 04-12 exp 05-12, k3 due 05-12; k1 released | 25000 | 2000 | 4000
  //  E15 | 03-15 | c1 | refund rf-3 1500 of sp-3: k2 cancelled with its top-up → promotion (to_breakage 1500) | 0 | 0 | 0
  //  E16 | 03-20 | c4 | spend sp-5 2500: bonus 2000 (k1), principal 500                      | 24500 | 0    | 4000
  //  E17 | 03-25 | c4 | refund rf-5 2500 of sp-5: principal 500, bonus 2000 back to k1 (released) | 25000 | 2000 | 4000
  //  E18 | 04-12 | c4 | (due) k1 expires with 2000 → breakage; k2 released 2000             | 25000 | 2000 | 2000
  //
  // Shop-wide running figures (cash = top-ups − principal returned; granted = bonus at top-up − cancelled −
  // clawed back − refunds sent to promotion; spent = spends − spend refunds; expired = breakage):
  //   top-ups 20000 + 10000 + 8000 + 25000 = 63000; principal returned 19800 → cash 43200 after E14
  //   bonus at top-up 6000 + 1500 + 6000 = 13500; − 2500 (E13) − 1500 (E15) → granted 9500
  //   spends 5000 + 1000 + 1500 + 4000 + 2500 = 14000; refunds 3500 + 1000 + 1500 + 2500 = 8500 → spent 5500
  //   breakage 500 (E8) + 500 (E9) + 1000 (E12) = 2000 by March; + 2000 (E18) = 4000
  //   adjustments +500 − 200 = 300
  const OFFERS = {
    m200: { name: 'Top up 200, get 3 × 20', min_topup: 20000, bonus: { installments: { count: 3, amount: 2000, every: 'month' }, installment_expiry: 'end_of_period' } },
    imm: { name: '15 at once, 30 days', bonus: { immediate: 1500, expires_after_days: 30 } },
  };

  const report = (name, asOf, now) => WL.liability(A, asOf, now).then((b) => { reports[name] = b; return b; });

  before(async () => {
    svcL = await startService({ args: ['--test-clock'] });
    const started = Date.now(); // the janitor's first sweep ran as rebuyd started; the next one is a minute later
    cL = ledgerApi(svcL);
    WL = ledgerCalls(cL);
    S = await setupShop(svcL, { name: uniq('Liability Shop'), timezone: 'Asia/Shanghai' });
    A = S.keys.admin;
    await WL.offer(A, 'm200', OFFERS.m200, '2025-01-01T00:00:00Z');
    await WL.offer(A, 'imm', OFFERS.imm, '2025-01-01T00:00:00Z');
    for (const id of ['c1', 'c2', 'c3', 'c4']) await WL.customer(A, id);

    await report('R0', '2025-01-09', L('01-09', '12:00'));
    await WL.topup(A, 'c1', { topup_id: 'pay-c1', amount: 20000, offer: 'm200' }, L('01-10')); // E1
    await WL.topup(A, 'c2', { topup_id: 'pay-c2', amount: 10000, offer: 'imm' }, L('01-15')); // E2
    let x = await WL.spend(A, 'c1', { spend_id: 'sp-1', amount: 5000 }, L('01-20')); // E3
    assert.deepEqual([x.spend.from_principal, x.spend.from_bonus], [3000, 2000]);
    await WL.topup(A, 'c3', { topup_id: 'pay-c3', amount: 8000 }, L('01-25')); // E4
    x = await WL.refund(A, 'c1', 'sp-1', { refund_id: 'rf-1', amount: 3500 }, L('01-28')); // E5
    assert.deepEqual([x.refund.to_principal, x.refund.to_bonus, x.refund.to_breakage], [3000, 500, 0]);
    await report('R1', '2025-01-31', L('02-01', '09:00'));
    x = await WL.spend(A, 'c2', { spend_id: 'sp-2', amount: 1000 }, L('02-01')); // E6
    assert.deepEqual([x.spend.from_principal, x.spend.from_bonus], [0, 1000]);
    await WL.adjust(A, 'c3', { adjustment_id: 'adj-c3', amount: 500, reason: 'goodwill' }, L('02-05')); // E7
    await WL.adjust(A, 'c1', { adjustment_id: 'adj-c1', amount: -200, reason: 'correction' }, L('02-05', '11:00'));
    // E8 (02-10 10:00) is due: nothing touches c1's wallet before this report, which posts it itself
    await report('R2', '2025-02-10', L('02-10', '12:00'));
    x = await WL.spend(A, 'c1', { spend_id: 'sp-3', amount: 1500 }, L('02-15')); // E10
    assert.deepEqual([x.spend.from_principal, x.spend.from_bonus], [0, 1500]);
    x = await WL.spend(A, 'c2', { spend_id: 'sp-4', amount: 4000 }, L('02-20')); // E11 (E9 posted first)
    assert.deepEqual([x.spend.from_principal, x.spend.from_bonus], [4000, 0]);
    await report('R3', '2025-02-28', L('03-01', '09:00'));
    x = await WL.refund(A, 'c2', 'sp-2', { refund_id: 'rf-2', amount: 1000 }, L('03-01')); // E12
    assert.deepEqual([x.refund.to_principal, x.refund.to_bonus, x.refund.to_breakage], [0, 0, 1000]);
    x = await WL.topupRefund(A, 'c1', 'pay-c1', L('03-05')); // E13
    assert.deepEqual(x.topup.refund, TREF(L('03-05'), 19800, 2000, 500));
    await WL.topup(A, 'c4', { topup_id: 'pay-c4', amount: 25000, offer: 'm200' }, L('03-12')); // E14
    x = await WL.refund(A, 'c1', 'sp-3', { refund_id: 'rf-3', amount: 1500 }, L('03-15')); // E15
    assert.deepEqual([x.refund.to_principal, x.refund.to_bonus, x.refund.to_breakage], [0, 0, 1500]);
    x = await WL.spend(A, 'c4', { spend_id: 'sp-5', amount: 2500 }, L('03-20')); // E16
    assert.deepEqual([x.spend.from_principal, x.spend.from_bonus], [500, 2000]);
    x = await WL.refund(A, 'c4', 'sp-5', { refund_id: 'rf-5', amount: 2500 }, L('03-25')); // E17
    assert.deepEqual([x.refund.to_principal, x.refund.to_bonus, x.refund.to_breakage], [500, 2000, 0]);
    await report('R4', '2025-03-31', L('04-01', '09:00'));
    await report('R5', '2025-04-12', L('04-12', '09:00'));
    await report('R6', '2025-04-12', L('04-12', '12:00')); // E18 (10:00) posted by the report
    const took = Date.now() - started;
    assert.ok(took < 50000, `the scenario took ${took} ms: rebuyd's minute sweep (real clock) may have run in the middle of it and ` +
      'brought the past-dated wallets up to the real now; the figures below would not hold');
  });
  after(async () => { await svcL?.stop(); });

  // The figures by date (by_offer apart)
  const FIG = {
    // before any top-up: all zero
    R0: LIAB({ p: 0, ba: 0, bs: 0, expired: 0, cash: 0, granted: 0, spent: 0, adj: 0, wallets: 0 }),
    // end of 01-31: p c1 20000 + c2 10000 + c3 8000 = 38000; ba c1 500 + c2 1500 = 2000; bs c1 4000;
    // cash 38000; granted 6000 + 1500 = 7500; spent 5000 − 3500 = 1500; wallets c1 c2 c3.
    // 38000 + 7500 + 0 = 45500 = 38000 + 2000 + 4000 + 1500 + 0
    R1: LIAB({ p: 38000, ba: 2000, bs: 4000, expired: 0, cash: 38000, granted: 7500, spent: 1500, adj: 0, wallets: 3 }),
    // 02-10 12:00 (the end of the day is later than now): E6, E7, E8 in; E9 not yet.
    // p 19800 + 10000 + 8500 = 38300; ba c1 2000 (k2) + c2 500 = 2500; bs c1 2000 (k3); expired 500 (c1 k1);
    // spent 1500 + 1000 = 2500; adj 300. 38000 + 7500 + 300 = 45800 = 38300 + 2500 + 2000 + 2500 + 500
    R2: LIAB({ p: 38300, ba: 2500, bs: 2000, expired: 500, cash: 38000, granted: 7500, spent: 2500, adj: 300, wallets: 3 }),
    // end of 02-28: p 19800 + 6000 + 8500 = 34300; ba c1 500 (k2 after sp-3); bs 2000; expired 500 + 500 = 1000;
    // spent 2500 + 1500 + 4000 = 8000. 38000 + 7500 + 300 = 45800 = 34300 + 500 + 2000 + 8000 + 1000
    R3: LIAB({ p: 34300, ba: 500, bs: 2000, expired: 1000, cash: 38000, granted: 7500, spent: 8000, adj: 300, wallets: 3 }),
    // end of 03-31: p c1 0 + c2 6000 + c3 8500 + c4 25000 = 39500; ba c4 2000; bs c4 4000; expired 1000 + 1000 (E12) = 2000;
    // cash 38000 − 19800 + 25000 = 43200; granted 7500 − 2500 + 6000 − 1500 = 9500; spent 8000 − 1000 − 1500 + 2500 − 2500 = 5500.
    // 43200 + 9500 + 300 = 53000 = 39500 + 2000 + 4000 + 5500 + 2000
    R4: LIAB({ p: 39500, ba: 2000, bs: 4000, expired: 2000, cash: 43200, granted: 9500, spent: 5500, adj: 300, wallets: 4 }),
    // 04-12 09:00 (now is sooner than the end of the day): nothing since 03-31 yet
    R5: LIAB({ p: 39500, ba: 2000, bs: 4000, expired: 2000, cash: 43200, granted: 9500, spent: 5500, adj: 300, wallets: 4 }),
    // 04-12 12:00: E18 — k1's 2000 expire, k2's 2000 are released: ba 2000, bs 2000, expired 4000.
    // 43200 + 9500 + 300 = 53000 = 39500 + 2000 + 2000 + 5500 + 4000
    R6: LIAB({ p: 39500, ba: 2000, bs: 2000, expired: 4000, cash: 43200, granted: 9500, spent: 5500, adj: 300, wallets: 4 }),
  };
  // the wallet figures; a shop without packages or coupons has them all at 0
  const NO_PACKAGES = { packages_sold: 0, cash_received: 0, recognised: 0, breakage: 0, refunded: 0, deferred: 0 };
  const figures = (b) => {
    const { by_offer: _b, packages, coupons, ...rest } = b.liability;
    assert.deepEqual(packages, NO_PACKAGES);
    assert.deepEqual(coupons, { redeemed: 0, promotion_cost: 0 });
    return rest;
  };
  const byOffer = (b) => Object.fromEntries(b.liability.by_offer.map((o) => [o.offer, o]));

  test('every figure at each date (end of the day, or now if sooner); the identity holds at each', () => {
    for (const [name, fig] of Object.entries(FIG)) {
      assert.deepEqual(figures(reports[name]), fig, `${name} (as_of ${reports[name].definition.as_of})`);
    }
    assert.deepEqual(reports.R1.definition, { timezone: 'Asia/Shanghai', as_of: '2025-01-31', currency: 'CNY' });
    assert.deepEqual([reports.R5.definition.as_of, reports.R6.definition.as_of], ['2025-04-12', '2025-04-12']);
  });

  test('by_offer: bonus granted (gross), released, scheduled, expired and cancelled of each offer\'s top-ups', () => {
    // balances2.md leaves the per-offer figures open; openapi.yaml (PrepaidLiabilityOffer) settles them: one item per
    // offer the top-ups before the cut-off were made with; bonus_expired = taken back at expiry; bonus_cancelled = what
    // refunds of its top-ups cancelled or clawed back (refunds of spends sent to breakage or promotion are neither).
    // R0: no top-up yet → no item
    assert.deepEqual(reports.R0.liability.by_offer, []);
    // R1: imm granted 1500, released 1500 (k0), scheduled 0; m200 granted 6000, released 2000 (k1), scheduled 4000
    assert.deepEqual(reports.R1.liability.by_offer, [OFF('imm', 1500, 1500, 0, 0, 0), OFF('m200', 6000, 2000, 4000, 0, 0)]);
    // R2: m200 released k1 + k2 = 4000, scheduled 2000 (k3), expired 500 (k1's rest at 02-10)
    assert.deepEqual(reports.R2.liability.by_offer, [OFF('imm', 1500, 1500, 0, 0, 0), OFF('m200', 6000, 4000, 2000, 500, 0)]);
    // R3: imm expired 500 (k0's rest at 02-14)
    assert.deepEqual(reports.R3.liability.by_offer, [OFF('imm', 1500, 1500, 0, 500, 0), OFF('m200', 6000, 4000, 2000, 500, 0)]);
    // R4, R5: imm as R3 (rf-2's 1000 to breakage is a spend refund, not an expiry);
    // m200 granted 6000 + 6000 = 12000 (gross), released 4000 + 2000 (c4 k1) = 6000, scheduled c1 0 (k3 cancelled) +
    // c4 4000, expired 500; cancelled 2000 (k3) + 500 clawed back (k2) = 2500 (rf-3's 1500 to promotion is a spend refund)
    for (const name of ['R4', 'R5']) {
      assert.deepEqual(reports[name].liability.by_offer, [OFF('imm', 1500, 1500, 0, 500, 0), OFF('m200', 12000, 6000, 4000, 500, 2500)], name);
    }
    // R6: m200 released + 2000 (c4 k2) = 8000, scheduled 2000 (c4 k3), expired 500 + 2000 (c4 k1) = 2500
    assert.deepEqual(reports.R6.liability.by_offer, [OFF('imm', 1500, 1500, 0, 500, 0), OFF('m200', 12000, 8000, 2000, 2500, 2500)]);
  });

  test('the same dates asked later give the same figures (the report reads the journal up to then)', async () => {
    const NOW = L('04-12', '12:00');
    for (const [name, asOf] of [['R0', '2025-01-09'], ['R1', '2025-01-31'], ['R2', '2025-02-10'], ['R3', '2025-02-28'], ['R4', '2025-03-31']]) {
      const b = await WL.liability(S.keys.readonly, asOf, NOW);
      // R2 was asked at 02-10 12:00 and stopped at then; asked now it runs to the end of 02-10: nothing else happened that day
      assert.deepEqual(figures(b), FIG[name], name);
      assert.deepEqual(b.liability.by_offer, reports[name].liability.by_offer, `${name} by_offer`);
    }
  });

  test('the wallets agree: Σ balances of the four wallets = principal_outstanding, bonus_available, bonus_scheduled (R6)', async () => {
    const NOW = L('04-12', '12:00');
    const sum = { principal: 0, bonus_available: 0, bonus_scheduled: 0 };
    const each = {};
    for (const id of ['c1', 'c2', 'c3', 'c4']) {
      const st = await WL.statement(A, id, NOW);
      each[id] = [st.wallet.principal, st.wallet.bonus_available, st.wallet.bonus_scheduled];
      for (const k of Object.keys(sum)) sum[k] += st.wallet[k];
      if (id === 'c1') {
        // c1's whole story, at its own instants
        assertMovements(st, [
          MV(L('01-10'), 'topup', 'pay-c1', 20000, 0, 6000),
          MV(L('01-10'), 'release', 'pay-c1', 0, 2000, -2000),
          MV(L('01-20'), 'spend', 'sp-1', -3000, -2000, 0),
          MV(L('01-28'), 'refund', 'rf-1', 3000, 500, 0),
          MV(L('02-05', '11:00'), 'adjustment', 'adj-c1', -200, 0, 0),
          MV(L('02-10'), 'expiry', 'pay-c1', 0, -500, 0),
          MV(L('02-10'), 'release', 'pay-c1', 0, 2000, -2000),
          MV(L('02-15'), 'spend', 'sp-3', 0, -1500, 0),
          MV(L('03-05'), 'topup_refund', 'pay-c1', -19800, -500, -2000),
          MV(L('03-15'), 'refund', 'rf-3', 0, 0, 0),
        ]);
      }
    }
    assert.deepEqual(each, { c1: [0, 0, 0], c2: [6000, 0, 0], c3: [8500, 0, 0], c4: [25000, 2000, 2000] });
    const l = reports.R6.liability;
    assert.deepEqual([l.principal_outstanding, l.bonus_available, l.bonus_scheduled], [sum.principal, sum.bonus_available, sum.bonus_scheduled]);
  });

  // balances2.md: "the test clock applies to every wallet call and to the liability report"; as_of defaults
  // to today and may not be after today — today being the test instant's date in the shop's zone.
  test('test clock: without as_of, the liability now, as of the test instant\'s local date', async () => {
    const NOW = L('04-12', '12:00');
    const r = await cL.get(LIABILITY, at(A, NOW));
    assert.equal(r.status, 200, r.text);
    assertLiabilityShape(r.body);
    assert.deepEqual(figures(r.body), FIG.R6, 'the liability now');
    assert.equal(r.body.definition.as_of, '2025-04-12', 'today is the test instant\'s date in the shop\'s zone');
  });

  test('test clock: an as_of after the test instant\'s local date → 400 /query/as_of', async () => {
    const NOW = L('04-12', '12:00');
    assertProblem(await cL.get(`${LIABILITY}?as_of=2025-04-13`, at(A, NOW)), 400, 'invalid_parameter', '/query/as_of');
  });

  test('parameters and scopes: a bad date or an unknown parameter → 400; storefront and platform → 403; no key → 401', async () => {
    const NOW = L('04-12', '12:00');
    for (const q of ['as_of=2025-02-30', 'as_of=march', 'as_of=', 'as_of=2025-03-01&as_of=2025-03-02']) {
      assertProblem(await cL.get(`${LIABILITY}?${q}`, at(A, NOW)), 400, 'invalid_parameter', '/query/as_of');
    }
    assertProblem(await cL.get(`${LIABILITY}?as_of=2099-01-01`, at(A, NOW)), 400, 'invalid_parameter', '/query/as_of');
    assertProblem(await cL.get(`${LIABILITY}?foo=1`, at(A, NOW)), 400, 'invalid_parameter', '/query/foo');
    for (const key of [S.keys.storefront, svcL.platformKey]) {
      assertProblem(await cL.get(`${LIABILITY}?as_of=2025-03-31`, at(key, NOW)), 403, 'forbidden');
    }
    assertProblem(await cL.get(`${LIABILITY}?as_of=2025-03-31`), 401, 'unauthenticated');
    // another shop sees none of it
    const O = await setupShop(svcL, { name: uniq('Other Liability Shop') });
    const b = await WL.liability(O.keys.readonly, '2025-03-31', NOW);
    assert.deepEqual(figures(b), FIG.R0);
    assert.deepEqual(b.liability.by_offer, []);
  });
});

// ---------------------------------------------------------------------------
// Wallet holders vs non-holders (2025; wallets opened at test instants, orders by placed_at)

describe('GET /v1/metrics/wallet-holders', () => {
  let S;
  let A;
  let K;
  const CAVEAT = 'A comparison of groups, not a causal effect: customers who buy more are likelier to top up a wallet.';
  const GROUP_KEYS = ['customers', 'days_between_orders', 'group', 'intervals', 'orders', 'orders_per_customer', 'repeat_customers', 'repurchase_rate'];
  /** A group written out: [customers, repeat, rate, orders, per customer, intervals, days]. */
  const G = (group, [customers, repeat, rate, orders, perCustomer, intervals, days]) => ({
    group, customers, repeat_customers: repeat, repurchase_rate: rate, orders, orders_per_customer: perCustomer,
    intervals, days_between_orders: days,
  });
  const L = (s) => (/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T10:00:00+08:00` : s);

  //  customer | wallet opened (how)                              | orders (10:00 local)
  //  h1       | 2025-02-10 (top-up)                              | 03-02 10000, 03-12 20000
  //  h2       | 2025-03-20 (top-up; within March)                | 03-05 5000
  //  h3       | 2025-04-05 (top-up; after March)                 | 03-08, 03-10, 03-25 3000 each; 04-10 3000
  //  h4       | 2025-03-31 23:30 local (top-up; last half hour)  | 03-03 4000
  //  h5       | 2025-04-01 00:00 local (top-up; just after March)| 03-04 4000; 04-02 4000
  //  h6       | 2025-03-02 (adjustment +1000: opens a wallet)    | 03-06 2000
  //  h7       | 2025-02-01 (top-up, refunded whole 02-05)        | 03-20 2000
  //  n1       | –                                                | 03-15 1000; 04-03 1000
  //  n2       | –                                                | 02-20 1000, 03-15 1000
  //  x1       | 2025-03-01 (top-up)                              | 02-10 1000
  const WALLETS = [
    ['h7', L('2025-02-01'), 'topup'], ['h1', L('2025-02-10'), 'topup'], ['x1', L('2025-03-01'), 'topup'],
    ['h6', L('2025-03-02'), 'adjust'], ['h2', L('2025-03-20'), 'topup'], ['h4', '2025-03-31T23:30:00+08:00', 'topup'],
    ['h5', '2025-04-01T00:00:00+08:00', 'topup'], ['h3', L('2025-04-05'), 'topup'],
  ];
  const ORDERS = [
    ['h1', '2025-03-02', 10000], ['h1', '2025-03-12', 20000], ['h2', '2025-03-05', 5000],
    ['h3', '2025-03-08', 3000], ['h3', '2025-03-10', 3000], ['h3', '2025-03-25', 3000], ['h3', '2025-04-10', 3000],
    ['h4', '2025-03-03', 4000], ['h5', '2025-03-04', 4000], ['h5', '2025-04-02', 4000], ['h6', '2025-03-06', 2000],
    ['h7', '2025-03-20', 2000], ['n1', '2025-03-15', 1000], ['n1', '2025-04-03', 1000], ['n2', '2025-02-20', 1000],
    ['n2', '2025-03-15', 1000], ['x1', '2025-02-10', 1000],
  ];

  before(async () => {
    S = await mkShop({ name: uniq('Wallet Holders Shop') });
    A = S.keys.admin;
    K = tierCalls(c);
    for (const id of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'n1', 'n2', 'x1']) await W.customer(A, id);
    for (const [cust, when, how] of WALLETS) {
      if (how === 'topup') await W.topup(A, cust, { topup_id: `pay-${cust}`, amount: 5000 }, when);
      else await W.adjust(A, cust, { adjustment_id: `adj-${cust}`, amount: 1000, reason: 'welcome' }, when);
      if (cust === 'h7') await W.topupRefund(A, 'h7', 'pay-h7', L('2025-02-05'));
    }
    for (const [i, [cust, when, total]] of ORDERS.entries()) await K.order(A, `${cust}-${i}`, cust, L(when), total);
  });

  async function metrics(q, key = A) {
    const r = await c.get(`${HOLDERS}?${new URLSearchParams(q)}`, { key });
    assert.equal(r.status, 200, `GET ${HOLDERS} ${JSON.stringify(q)}: ${r.text}`);
    const b = r.body;
    assert.deepEqual(Object.keys(b).sort(), ['definition', 'holders', 'non_holders']);
    for (const g of [b.holders, b.non_holders]) assert.deepEqual(Object.keys(g).sort(), GROUP_KEYS, JSON.stringify(g));
    return b;
  }

  test('March 2025: holders (a wallet opened before the end of the period) and non-holders, every figure by hand', async () => {
    const b = await metrics({ from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30' });
    assert.deepEqual(b.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30',
      rule: { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 }, caveat: CAVEAT,
    });
    // active in March: h1 (2), h2, h3 (3), h4, h5, h6, h7, n1, n2 (its 02-20 is February); x1 is not active
    // holders (wallet opened before 04-01 00:00 local): h1, h2 (03-20), h4 (03-31 23:30), h6 (adjustment), h7 (refunded,
    //   but opened) → 5; repeat h1 → 1, rate 0.2; orders 2 + 1 + 1 + 1 + 1 = 6, per customer 1.2;
    //   intervals h1 03-02 → 03-12: 1, 10 days
    assert.deepEqual(b.holders, G('holders', [5, 1, 0.2, 6, 1.2, 1, 10]));
    // non-holders: h3 (opened 04-05), h5 (opened 04-01 00:00, the end itself), n1, n2 → 4; repeat h3 → 1, rate 0.25;
    //   orders 3 + 1 + 1 + 1 = 6, per customer 1.5; intervals h3 03-08 → 03-10 → 03-25: 2, (2 + 15) / 2 = 8.5
    //   (n2's 02-20 → 03-15 starts before the period: not counted)
    assert.deepEqual(b.non_holders, G('non_holders', [4, 1, 0.25, 6, 1.5, 2, 8.5]));
  });

  test('April 2025: wallets opened in or before April count; February: no holder active → rates null', async () => {
    const apr = await metrics({ from: '2025-04-01', to: '2025-04-30', as_of: '2025-04-30' }, S.keys.readonly);
    // active: h3 (04-10), h5 (04-02), n1 (04-03); h3 and h5 opened by the end of April → holders; one occasion each
    assert.deepEqual(apr.holders, G('holders', [2, 0, 0, 2, 1, 0, null]));
    assert.deepEqual(apr.non_holders, G('non_holders', [1, 0, 0, 1, 1, 0, null]));
    const feb = await metrics({ from: '2025-02-01', to: '2025-02-28', as_of: '2025-04-30' });
    // active: n2 (02-20), x1 (02-10; its wallet opened 03-01, after February) → both non-holders; h1 and h7 hold
    // wallets in February but did not buy then
    assert.deepEqual(feb.holders, G('holders', [0, 0, null, 0, null, 0, null]));
    assert.deepEqual(feb.non_holders, G('non_holders', [2, 0, 0, 2, 1, 0, null]));
  });

  test('parameters and scopes as the other metrics', async () => {
    const bad = async (q, pointer) => assertProblem(await c.get(`${HOLDERS}?${q}`, { key: A }), 400, 'invalid_parameter', pointer);
    await bad('from=2025-02-30&to=2025-03-31', '/query/from');
    await bad('from=2025-04-01&to=2025-03-31', '/query/from');
    await bad('from=2025-03-01&to=2099-01-01', '/query/to');
    await bad('from=2025-03-01&to=2025-03-31&foo=1', '/query/foo');
    for (const key of [S.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get(`${HOLDERS}?from=2025-03-01&to=2025-03-31`, { key }), 403, 'forbidden');
    }
    assertProblem(await c.get(`${HOLDERS}?from=2025-03-01&to=2025-03-31`), 401, 'unauthenticated');
  });
});

// ---------------------------------------------------------------------------
// Segment filters on wallets (the real clock: the wallets are as of the real now)

describe('custom segment filters: wallet_principal, wallet_bonus_available, wallet_available', () => {
  let S;
  let A;
  const DAY = 86400000;
  const ago = (days, hours = 0) => new Date(Date.now() - days * DAY + hours * 3600000).toISOString();

  // Offer "seg": 1000 at once (never expires) and 3 × 2000 a month, end_of_period. Top-ups at t0 = 40 days ago:
  //   k0 1000 released at t0; k1 2000 released at t0, expires t0 + 1 month (9 to 12 days ago);
  //   k2 2000 due t0 + 1 month (released since), expires t0 + 2 months (15 to 22 days ahead);
  //   k3 due t0 + 2 months (ahead). Bonus available now = k0 + k2 (k1's unspent part has expired).
  //
  //  customer | wallet                                               | p     | bonus now | available | last order
  //  a        | 10000 with seg                                       | 10000 | 1000 + 2000 = 3000 | 13000 | 35 days ago
  //  b        | 10000 with seg                                       | 10000 | 3000      | 13000 | 5 days ago
  //  c        | 10000 with seg; 2500 spent at t0 + 1 h from bonus:   | 10000 | 500 + 2000 = 2500 | 12500 | 35 days ago
  //           |   k1 2000 (expires first), k0 500                    |       |           |       |
  //  d        | 5000 without an offer                                | 5000  | 0         | 5000  | 40 days ago
  //  e        | none                                                 | –     | –         | –     | 40 days ago
  //  f        | 10000 with seg, refunded whole at t0 + 2 h           | 0     | 0         | 0     | 40 days ago
  //  g        | adjustment +7000 at t0                               | 7000  | 0         | 7000  | 40 days ago
  before(async () => {
    S = await mkShop({ name: uniq('Wallet Segment Shop') });
    A = S.keys.admin;
    await W.offer(A, 'seg', {
      name: 'Segment offer', bonus: { immediate: 1000, installments: { count: 3, amount: 2000, every: 'month' }, installment_expiry: 'end_of_period' },
    }, ago(41));
    const t0 = ago(40);
    const lastOrder = { a: 35, b: 5, c: 35, d: 40, e: 40, f: 40, g: 40 };
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) {
      await W.customer(A, id);
      const o = await c.put(`/v1/orders/o-${id}`, {
        customer_id: id, placed_at: ago(lastOrder[id]), channel: 'web', currency: 'CNY',
        lines: [{ sku: 'S', category: 'tea', role: 'regular', quantity: 1, unit_price: 1000 }], total: 1000,
      }, { key: A });
      assert.equal(o.status, 201, o.text);
    }
    for (const id of ['a', 'b', 'c', 'f']) await W.topup(A, id, { topup_id: `pay-${id}`, amount: 10000, offer: 'seg' }, t0);
    const s = await W.spend(A, 'c', { spend_id: 'sp-c', amount: 2500 }, ago(40, 1));
    assert.deepEqual([s.spend.from_principal, s.spend.from_bonus], [0, 2500]);
    await W.topup(A, 'd', { topup_id: 'pay-d', amount: 5000 }, t0);
    await W.topupRefund(A, 'f', 'pay-f', ago(40, 2));
    await W.adjust(A, 'g', { adjustment_id: 'adj-g', amount: 7000, reason: 'migration' }, t0);
  });

  /** Members (ids, sorted) of a new custom segment with this filter. */
  async function members(filter) {
    const code = uniq('w').toLowerCase().replace(/[^a-z0-9-]/g, '-');
    const put = await c.put(`/v1/segments/${code}`, { name: code, filter }, { key: A });
    assert.equal(put.status, 201, put.text);
    const r = await c.get(`/v1/segments/${code}/customers?limit=200`, { key: A });
    assert.equal(r.status, 200, r.text);
    assert.equal(put.body.size, r.body.items.length, 'size agrees with the list');
    return r.body.items.map((x) => x.id).sort();
  }
  const C = (field, op, value) => ({ field, op, value });

  test('"bonus ≥ 2000 available and no order for 30 days"', async () => {
    // a (3000, 35 days) and c (2500, 35 days); b has 3000 but bought 5 days ago
    assert.deepEqual(await members({ all: [C('wallet_bonus_available', 'gte', 2000), C('days_since_last_order', 'gte', 30)] }), ['a', 'c']);
  });

  test('each field by itself: the balances as of now, exact without a sweep; no wallet matches no comparison', async () => {
    assert.deepEqual(await members(C('wallet_bonus_available', 'gte', 2600)), ['a', 'b']); // 3000, 3000 (c 2500)
    assert.deepEqual(await members(C('wallet_bonus_available', 'eq', 2500)), ['c']);
    assert.deepEqual(await members(C('wallet_bonus_available', 'eq', 0)), ['d', 'f', 'g']); // e has no wallet
    assert.deepEqual(await members(C('wallet_bonus_available', 'ne', 3000)), ['c', 'd', 'f', 'g']);
    assert.deepEqual(await members(C('wallet_available', 'gte', 12600)), ['a', 'b']); // 13000, 13000 (c 12500)
    assert.deepEqual(await members(C('wallet_available', 'between', [12500, 12500])), ['c']);
    assert.deepEqual(await members(C('wallet_available', 'lt', 7001)), ['d', 'f', 'g']); // 5000, 0, 7000
    assert.deepEqual(await members(C('wallet_principal', 'eq', 0)), ['f']);
    assert.deepEqual(await members(C('wallet_principal', 'between', [5000, 7000])), ['d', 'g']);
    assert.deepEqual(await members(C('wallet_principal', 'gte', 10000)), ['a', 'b', 'c']);
    assert.deepEqual(await members(C('wallet_principal', 'lt', 1)), ['f']);
  });

  test('bad wallet conditions → 422 naming the part', async () => {
    const bad = async (filter, pointer) => {
      const r = await c.put('/v1/segments/bad-wallet', { name: 'x', filter }, { key: A });
      assertProblem(r, 422, 'validation_failed', pointer);
    };
    await bad(C('wallet_principal', 'contains', 5), '/filter/op');
    await bad(C('wallet_bonus_available', 'gte', 'lots'), '/filter/value');
    await bad(C('wallet_available', 'between', [5]), '/filter/value');
    assertProblem(await c.get('/v1/segments/bad-wallet', { key: A }), 404, 'not_found');
  });
});
