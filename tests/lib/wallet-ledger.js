// Helpers for wallet-refunds.test.js and wallet-workload.test.js
// (balances2.md: refunds of spends and top-ups, adjustments, the prepaid
// liability report, wallet holders, segment filters on wallets): a client
// that knows the extension members of insufficient_funds, the calls of the
// feature sent at a test instant, the shapes of its objects with every
// member balances1.md and balances2.md name, expected objects written out in
// full, and the ledger checks every statement read goes through. Not a test
// file itself (the name matches none of node --test's patterns).
//
// Kept apart from lib/wallets.js (slice 1, written at the same time): the
// objects here carry the slice 2 members (Topup.refund, the movement kinds
// refund / topup_refund / adjustment, the installment status cancelled).
import assert from 'node:assert/strict';
import { assertServerTs, tsMicros } from './harness.js';
import { NOW_HEADER, U } from './tiers.js';

// ---------------------------------------------------------------------------
// The client: lib/wallets.js's (harness api() plus the insufficient_funds members)

export { FUNDS_MEMBERS, walletApi as ledgerApi } from './wallets.js';
// what slice 1 already has (lib/wallets.js), shared
export {
  offerPath, walletPath, topupPath, spendPath, statementPath, WALLET_KEYS, INST_KEYS, SCHED_KEYS,
  SPEND_KEYS, MOVE_KEYS, BAL_KEYS, assertInsufficient, WAL, I, SCH, MV, afters, assertMovements,
} from './wallets.js';
import {
  enc, offerPath, walletPath, topupPath, spendPath, statementPath, WALLET_KEYS, INST_KEYS,
  SCHED_KEYS, SPEND_KEYS, MOVE_KEYS, BAL_KEYS, isInt, MV,
} from './wallets.js';

// ---------------------------------------------------------------------------
// Paths

export const spendRefundPath = (cust, spendId) => `/v1/customers/${enc(cust)}/wallet/spends/${enc(spendId)}/refunds`;
export const topupRefundPath = (cust, topupId) => `/v1/customers/${enc(cust)}/wallet/topups/${enc(topupId)}/refund`;
export const adjustmentPath = (cust) => `/v1/customers/${enc(cust)}/wallet/adjustments`;
export const LIABILITY = '/v1/metrics/prepaid-liability';
export const HOLDERS = '/v1/metrics/wallet-holders';

/** Request options: key, test instant (none: the real clock), extra members merged in. */
export const at = (key, now, extra = {}) => ({
  key, ...extra, headers: { ...(now ? { [NOW_HEADER]: now } : {}), ...(extra.headers || {}) },
});

// ---------------------------------------------------------------------------
// Shapes: every member balances1.md and balances2.md name, nothing else

export const TOPUP_KEYS = ['amount', 'bonus_total', 'created_at', 'customer_id', 'installments', 'offer', 'offer_version', 'refund', 'topup_id'];
export const TOPUP_REFUND_KEYS = ['bonus_cancelled', 'bonus_clawed_back', 'principal_returned', 'refunded_at'];
export const REFUND_KEYS = ['amount', 'created_at', 'refund_id', 'spend_id', 'to_bonus', 'to_breakage', 'to_principal'];
export const ADJ_KEYS = ['adjustment_id', 'amount', 'created_at', 'reason'];
export const LIAB_KEYS = ['adjustments', 'bonus_available', 'bonus_expired', 'bonus_granted', 'bonus_scheduled', 'by_offer',
  'cash_received', 'coupons', 'packages', 'principal_outstanding', 'spent', 'wallets'];
// the wallet figures (packages and coupons are objects of their own, package-metrics.test.js)
const LIAB_OBJECTS = ['by_offer', 'coupons', 'packages'];
export const BY_OFFER_KEYS = ['bonus_cancelled', 'bonus_expired', 'bonus_granted', 'bonus_released', 'bonus_scheduled', 'offer'];
export const STATUSES = ['pending', 'released', 'expired', 'cancelled'];
export const KINDS = ['topup', 'release', 'spend', 'expiry', 'refund', 'topup_refund', 'adjustment'];

export const keys = (o) => Object.keys(o).sort();

function exactMembers(o, list, what) {
  assert.ok(o && typeof o === 'object' && !Array.isArray(o), `${what}: an object, got ${JSON.stringify(o)}`);
  assert.deepEqual(keys(o), [...list].sort(), `${what}: members of ${JSON.stringify(o)}`);
}

export function assertWalletShape(w) {
  exactMembers(w, WALLET_KEYS, 'Wallet');
  for (const k of BAL_KEYS) assert.ok(isInt(w[k]) && w[k] >= 0, `wallet ${k} is an integer ≥ 0: ${JSON.stringify(w)}`);
  assert.equal(w.available, w.principal + w.bonus_available, `available = principal + bonus_available: ${JSON.stringify(w)}`);
  assertServerTs(w.as_of, 'as_of');
  if (w.opened_at !== null) assertServerTs(w.opened_at, 'opened_at');
  else assert.deepEqual([w.principal, w.bonus_available, w.bonus_scheduled], [0, 0, 0], 'no wallet yet: all zeros');
}

function assertInstallmentShape(i, keyList, what) {
  exactMembers(i, keyList, what);
  assert.ok(isInt(i.k) && i.k >= 0 && isInt(i.amount) && i.amount >= 1, `${what}: ${JSON.stringify(i)}`);
  assertServerTs(i.due_at, `${what}.due_at`);
  if (i.expires_at !== null) assertServerTs(i.expires_at, `${what}.expires_at`);
  assert.ok(STATUSES.includes(i.status), `${what}.status ${i.status}`);
  assert.ok(isInt(i.remaining) && i.remaining >= 0 && i.remaining <= i.amount, `${what}.remaining: ${JSON.stringify(i)}`);
  if (i.status !== 'released') assert.equal(i.remaining, 0, `${what}: remaining is 0 unless released: ${JSON.stringify(i)}`);
}

export function assertTopupShape(t) {
  exactMembers(t, TOPUP_KEYS, 'Topup');
  assertServerTs(t.created_at, 'topup created_at');
  t.installments.forEach((i, n) => assertInstallmentShape(i, INST_KEYS, `installments[${n}]`));
  assert.equal(t.installments.reduce((s, i) => s + i.amount, 0), t.bonus_total, 'Σ installment amounts = bonus_total');
  if (t.refund !== null) {
    exactMembers(t.refund, TOPUP_REFUND_KEYS, 'Topup.refund');
    assertServerTs(t.refund.refunded_at, 'refund.refunded_at');
    const r = t.refund;
    assert.ok(isInt(r.principal_returned) && r.principal_returned >= 0 && r.principal_returned <= t.amount,
      `principal_returned in 0..amount (never more than was paid): ${JSON.stringify(t)}`);
    assert.ok(isInt(r.bonus_cancelled) && r.bonus_cancelled >= 0 && isInt(r.bonus_clawed_back) && r.bonus_clawed_back >= 0, JSON.stringify(t));
    assert.ok(r.bonus_cancelled + r.bonus_clawed_back <= t.bonus_total, `cancelled + clawed back ≤ bonus_total: ${JSON.stringify(t)}`);
    assert.ok(t.installments.every((i) => i.status !== 'pending'), `a refunded top-up has no pending installment: ${JSON.stringify(t)}`);
  } else {
    assert.ok(t.installments.every((i) => i.status !== 'cancelled'), `cancelled only with a refund: ${JSON.stringify(t)}`);
  }
}

export function assertSpendShape(s) {
  exactMembers(s, SPEND_KEYS, 'Spend');
  assertServerTs(s.created_at, 'spend created_at');
  assert.equal(s.from_principal + s.from_bonus, s.amount, `from_principal + from_bonus = amount: ${JSON.stringify(s)}`);
}

export function assertRefundShape(r) {
  exactMembers(r, REFUND_KEYS, 'Refund');
  assertServerTs(r.created_at, 'refund created_at');
  for (const k of ['to_principal', 'to_bonus', 'to_breakage']) assert.ok(isInt(r[k]) && r[k] >= 0, `${k}: ${JSON.stringify(r)}`);
  assert.equal(r.to_principal + r.to_bonus + r.to_breakage, r.amount, `to_principal + to_bonus + to_breakage = amount: ${JSON.stringify(r)}`);
}

export function assertAdjustmentShape(a) {
  exactMembers(a, ADJ_KEYS, 'Adjustment');
  assertServerTs(a.created_at, 'adjustment created_at');
  assert.ok(isInt(a.amount) && a.amount !== 0, JSON.stringify(a));
}

/**
 * Checks a statement: exact shapes; movements by `at` (then as recorded;
 * not checked with ordered:false — for workloads whose concurrent requests
 * carry instants that are not in the order they are served);
 * the balance chain (from zeros, before = after − delta = the previous
 * after, never below zero); the ledger invariant Σ deltas = the wallet's
 * balances; the signs of each kind; the schedule by due_at, then top-up, k,
 * with Σ remaining of released = bonus_available and Σ amount of pending =
 * bonus_scheduled.
 */
export function checkStatement(st, { ordered = true } = {}) {
  exactMembers(st, ['movements', 'schedule', 'wallet'], 'Statement');
  assertWalletShape(st.wallet);
  const bal = { principal: 0, bonus_available: 0, bonus_scheduled: 0 };
  let prevAt = -1n;
  st.movements.forEach((m, n) => {
    const what = `movements[${n}] ${JSON.stringify(m)}`;
    exactMembers(m, MOVE_KEYS, what);
    exactMembers(m.balance_after, BAL_KEYS, `${what}.balance_after`);
    assert.ok(KINDS.includes(m.kind), `${what}: kind`);
    const t = assertServerTs(m.at, `${what}.at`);
    if (ordered) assert.ok(t >= prevAt, `${what}: movements are ordered by at (the previous one is at ${prevAt} µs)`);
    prevAt = t;
    for (const k of BAL_KEYS) {
      assert.ok(isInt(m[k]), `${what}: ${k} delta is an integer`);
      assert.equal(m.balance_after[k] - m[k], bal[k], `${what}: ${k} before (after − delta) = the previous movement's after (${bal[k]})`);
      bal[k] = m.balance_after[k];
      assert.ok(bal[k] >= 0, `${what}: ${k} never below zero`);
    }
    const [p, a, s] = [m.principal, m.bonus_available, m.bonus_scheduled];
    const ok = {
      topup: p > 0 && a === 0 && s >= 0,
      release: p === 0 && a > 0 && s === -a,
      spend: p <= 0 && a <= 0 && s === 0 && p + a < 0,
      expiry: p === 0 && a <= 0 && s <= 0 && (a === 0 || s === 0) && a + s < 0,
      refund: p >= 0 && a >= 0 && s === 0, // all zero when the whole refund went to breakage
      topup_refund: p <= 0 && a <= 0 && s <= 0,
      adjustment: p !== 0 && a === 0 && s === 0,
    }[m.kind];
    assert.ok(ok, `${what}: the deltas do not fit the kind`);
  });
  for (const k of BAL_KEYS) {
    const sum = st.movements.reduce((x, m) => x + m[k], 0);
    assert.equal(sum, st.wallet[k], `Σ ${k} deltas over the statement (${sum}) = the wallet's ${k} (${st.wallet[k]})`);
  }
  st.schedule.forEach((i, n) => assertInstallmentShape(i, SCHED_KEYS, `schedule[${n}]`));
  for (let n = 1; n < st.schedule.length; n++) {
    const x = st.schedule[n - 1];
    const y = st.schedule[n];
    assert.ok(tsMicros(x.due_at) <= tsMicros(y.due_at), `schedule by due_at: ${JSON.stringify(x)} before ${JSON.stringify(y)}`);
    if (x.topup_id === y.topup_id && x.due_at === y.due_at) assert.ok(x.k < y.k, 'schedule: then by k');
  }
  const released = st.schedule.filter((i) => i.status === 'released').reduce((x, i) => x + i.remaining, 0);
  const pending = st.schedule.filter((i) => i.status === 'pending').reduce((x, i) => x + i.amount, 0);
  assert.equal(released, st.wallet.bonus_available, 'Σ remaining of released installments = bonus_available');
  assert.equal(pending, st.wallet.bonus_scheduled, 'Σ amount of pending installments = bonus_scheduled');
  return st;
}

/** The identity of balances2.md on a liability object. */
export function assertLiabilityIdentity(l, what = 'liability') {
  const lhs = l.cash_received + l.bonus_granted + l.adjustments;
  const rhs = l.principal_outstanding + l.bonus_available + l.bonus_scheduled + l.spent + l.bonus_expired;
  assert.equal(lhs, rhs, `${what}: cash_received + bonus_granted + adjustments (${lhs}) = principal_outstanding + bonus_available + ` +
    `bonus_scheduled + spent + bonus_expired (${rhs}): ${JSON.stringify(l)}`);
}

export function assertLiabilityShape(b) {
  exactMembers(b, ['definition', 'liability'], 'liability reply');
  exactMembers(b.definition, ['as_of', 'currency', 'timezone'], 'definition');
  assert.match(b.definition.as_of, /^\d{4}-\d{2}-\d{2}$/);
  const l = b.liability;
  exactMembers(l, LIAB_KEYS, 'liability');
  for (const k of LIAB_KEYS) if (!LIAB_OBJECTS.includes(k)) assert.ok(isInt(l[k]), `${k} is an integer: ${JSON.stringify(l)}`);
  for (const k of ['principal_outstanding', 'bonus_available', 'bonus_scheduled', 'bonus_expired', 'wallets']) {
    assert.ok(l[k] >= 0, `${k} ≥ 0: ${JSON.stringify(l)}`);
  }
  assert.ok(Array.isArray(l.by_offer));
  l.by_offer.forEach((o, n) => exactMembers(o, BY_OFFER_KEYS, `by_offer[${n}]`));
  const codes = l.by_offer.map((o) => o.offer);
  assert.deepEqual(codes, [...codes].sort(), 'by_offer by code');
  assertLiabilityIdentity(l);
}

// ---------------------------------------------------------------------------
// Expected objects, written out (timestamps normalised as rebuyd prints them)

/** The Wallet expected at test instant `now`. */
/** An installment of a Topup. */
/** A schedule entry of a statement. */
/** A movement without balance_after: deltas of principal, bonus_available, bonus_scheduled. */
/** A spend refund as it should come back. */
export const REF = (refundId, spendId, amount, toP, toB, toK, created) => ({
  refund_id: refundId, spend_id: spendId, amount, to_principal: toP, to_bonus: toB, to_breakage: toK, created_at: U(created),
});
/** Topup.refund as it should come back. */
export const TREF = (refundedAt, principalReturned, cancelled, clawedBack) => ({
  refunded_at: U(refundedAt), principal_returned: principalReturned, bonus_cancelled: cancelled, bonus_clawed_back: clawedBack,
});
/** A liability figure set (by_offer apart). */
export const LIAB = (o) => ({
  principal_outstanding: o.p, bonus_available: o.ba, bonus_scheduled: o.bs, bonus_expired: o.expired,
  cash_received: o.cash, bonus_granted: o.granted, spent: o.spent, adjustments: o.adj, wallets: o.wallets,
});
/** A by_offer entry. */
export const OFF = (offer, granted, released, scheduled, expired, cancelled) => ({
  offer, bonus_granted: granted, bonus_released: released, bonus_scheduled: scheduled, bonus_expired: expired, bonus_cancelled: cancelled,
});


/**
 * The statement's movements equal `expected` (MV objects): in order where
 * their instants differ; movements at one instant as a multiset (the order
 * they were recorded in at one instant is the implementation's).
 */

/** How many movements are listed before one with an earlier `at`. */
export const outOfOrder = (st) => st.movements.filter((m, n) => n > 0 && tsMicros(m.at) < tsMicros(st.movements[n - 1].at)).length;

/** balance_after of every movement, in order, as [principal, bonus_available, bonus_scheduled]. */

/** Asserts 422 insufficient_funds with exactly these figures. */

// ---------------------------------------------------------------------------
// Calls, each at a test instant, asserting the status and the shapes

export function ledgerCalls(c) {
  const expectStatus = (r, status, what) => {
    if (Array.isArray(status)) assert.ok(status.includes(r.status), `${what}: ${r.status} ${r.text}`);
    else assert.equal(r.status, status, `${what}: ${r.text}`);
  };
  const w = {
    async customer(key, id) {
      const r = await c.put(`/v1/customers/${enc(id)}`, { name: `Name ${id}` }, { key });
      assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      return id;
    },
    async offer(key, code, body, now) {
      const r = await c.put(offerPath(code), body, at(key, now));
      assert.ok([200, 201].includes(r.status), `PUT offer ${code}: ${r.status} ${r.text}`);
      return r.body;
    },
    topupRaw: (key, cust, body, now, extra) => c.post(topupPath(cust), body, at(key, now, extra)),
    spendRaw: (key, cust, body, now, extra) => c.post(spendPath(cust), body, at(key, now, extra)),
    refundRaw: (key, cust, spendId, body, now, extra) => c.post(spendRefundPath(cust, spendId), body, at(key, now, extra)),
    topupRefundRaw: (key, cust, topupId, now, extra = {}) => c.req('POST', topupRefundPath(cust, topupId), at(key, now, extra)),
    adjustRaw: (key, cust, body, now, extra) => c.post(adjustmentPath(cust), body, at(key, now, extra)),
    /** POST a top-up; asserts the status and shapes; returns {topup, wallet}. */
    async topup(key, cust, body, now, status = 201) {
      const r = await w.topupRaw(key, cust, body, now);
      expectStatus(r, status, `top-up ${JSON.stringify(body)} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['coupons', 'topup', 'wallet'], r.text);
      if (!body.offer) assert.equal(r.body.coupons, null, 'a plain top-up issues no coupons');
      assertTopupShape(r.body.topup);
      assertWalletShape(r.body.wallet);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return r.body;
    },
    async spend(key, cust, body, now, status = 201) {
      const r = await w.spendRaw(key, cust, body, now);
      expectStatus(r, status, `spend ${JSON.stringify(body)} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['spend', 'wallet'], r.text);
      assertSpendShape(r.body.spend);
      assertWalletShape(r.body.wallet);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return r.body;
    },
    /** POST a refund of a spend; asserts the status and shapes; returns {refund, wallet}. */
    async refund(key, cust, spendId, body, now, status = 201) {
      const r = await w.refundRaw(key, cust, spendId, body, now);
      expectStatus(r, status, `refund ${JSON.stringify(body)} of spend ${spendId} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['refund', 'wallet'], r.text);
      assertRefundShape(r.body.refund);
      assertWalletShape(r.body.wallet);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return r.body;
    },
    /** POST the refund of a top-up; asserts the status and shapes; returns {topup, wallet}. */
    async topupRefund(key, cust, topupId, now, status = 201) {
      const r = await w.topupRefundRaw(key, cust, topupId, now);
      expectStatus(r, status, `refund of top-up ${topupId} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['topup', 'wallet'], r.text);
      assertTopupShape(r.body.topup);
      assert.notEqual(r.body.topup.refund, null, 'a refunded top-up has its refund');
      assertWalletShape(r.body.wallet);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return r.body;
    },
    async adjust(key, cust, body, now, status = 201) {
      const r = await w.adjustRaw(key, cust, body, now);
      expectStatus(r, status, `adjustment ${JSON.stringify(body)} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['adjustment', 'wallet'], r.text);
      assertAdjustmentShape(r.body.adjustment);
      assertWalletShape(r.body.wallet);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return r.body;
    },
    async wallet(key, cust, now) {
      const r = await c.get(walletPath(cust), at(key, now));
      assert.equal(r.status, 200, `GET wallet of ${cust} at ${now}: ${r.text}`);
      assertWalletShape(r.body);
      if (now) assert.equal(r.body.as_of, U(now), 'as_of is the test instant');
      return r.body;
    },
    async statement(key, cust, now) {
      const r = await c.get(statementPath(cust), at(key, now));
      assert.equal(r.status, 200, `GET statement of ${cust} at ${now}: ${r.text}`);
      checkStatement(r.body);
      if (now) assert.equal(r.body.wallet.as_of, U(now), 'as_of is the test instant');
      return r.body;
    },
    /** GET the liability report (as_of date or default) at test instant `now`; asserts 200, shape, identity. */
    async liability(key, asOf, now) {
      const q = asOf ? `?as_of=${asOf}` : '';
      const r = await c.get(`${LIABILITY}${q}`, at(key, now));
      assert.equal(r.status, 200, `GET ${LIABILITY}${q} at ${now}: ${r.text}`);
      assertLiabilityShape(r.body);
      return r.body;
    },
  };
  return w;
}
