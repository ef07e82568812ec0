// Helpers for wallets.test.js (balances1.md: prepaid wallets on a
// double-entry ledger): a client that knows the extension members of
// insufficient_funds, the calls of the feature sent at a test instant, the
// shapes of its objects, expected objects written out in full, and the
// ledger checks every statement read goes through. Not a test file itself
// (the name matches none of node --test's patterns).
import assert from 'node:assert/strict';
import { api, assertServerTs, tsMicros } from './harness.js';
import { NOW_HEADER, U } from './tiers.js';

// ---------------------------------------------------------------------------
// The client
//
// harness.js's api() (X-Request-Id, problem shape, the OpenAPI contract,
// which allows principal, bonus_available and available on
// insufficient_funds only), plus the arithmetic of those three members:
// integers, available = principal + bonus_available.

export const FUNDS_MEMBERS = ['principal', 'bonus_available', 'available'];

export function walletApi(svc) {
  const c = api(svc);
  async function req(method, p, opts = {}) {
    const res = await c.req(method, p, opts);
    const b = res.body;
    if (res.status >= 400 && b && typeof b === 'object' && b.code === 'insufficient_funds') {
      const ctx = `${method} ${p} -> ${res.status} ${res.text.slice(0, 500)}`;
      for (const k of FUNDS_MEMBERS) assert.ok(Number.isSafeInteger(b[k]) && b[k] >= 0, `insufficient_funds member ${k}: ${ctx}`);
      assert.equal(b.available, b.principal + b.bonus_available, `available = principal + bonus_available: ${ctx}`);
    }
    return res;
  }
  return {
    req,
    get: (p, o) => req('GET', p, o),
    put: (p, body, o = {}) => req('PUT', p, { ...o, body }),
    post: (p, body, o = {}) => req('POST', p, { ...o, body }),
    patch: (p, body, o = {}) => req('PATCH', p, { ...o, body }),
    del: (p, o) => req('DELETE', p, o),
  };
}

// ---------------------------------------------------------------------------
// Paths and shapes

export const enc = encodeURIComponent;
export const offerPath = (code) => `/v1/topup-offers/${code}`;
export const walletPath = (cust) => `/v1/customers/${enc(cust)}/wallet`;
export const topupPath = (cust) => `/v1/customers/${enc(cust)}/wallet/topups`;
export const spendPath = (cust) => `/v1/customers/${enc(cust)}/wallet/spends`;
export const statementPath = (cust) => `/v1/customers/${enc(cust)}/wallet/statement`;

export const OFFER_KEYS = ['active', 'bonus', 'bonus_total', 'code', 'created_at', 'currency', 'limit_per_customer', 'min_topup', 'name', 'version'];
export const BONUS_KEYS = ['expires_after_days', 'immediate', 'installment_expiry', 'installments'];
export const INSTALLMENTS_KEYS = ['amount', 'count', 'every', 'interval'];
export const WALLET_KEYS = ['as_of', 'available', 'bonus_available', 'bonus_scheduled', 'currency', 'customer_id', 'opened_at', 'principal'];
export const TOPUP_KEYS = ['amount', 'bonus_total', 'created_at', 'customer_id', 'installments', 'offer', 'offer_version', 'topup_id'];
export const INST_KEYS = ['amount', 'due_at', 'expires_at', 'k', 'remaining', 'status'];
export const SCHED_KEYS = [...INST_KEYS, 'topup_id'].sort();
export const SPEND_KEYS = ['amount', 'created_at', 'customer_id', 'from_bonus', 'from_principal', 'order_id', 'spend_id'];
export const MOVE_KEYS = ['at', 'balance_after', 'bonus_available', 'bonus_scheduled', 'kind', 'principal', 'ref'];
export const BAL_KEYS = ['bonus_available', 'bonus_scheduled', 'principal'];
const STATUSES = ['pending', 'released', 'expired'];
const KINDS = ['topup', 'release', 'spend', 'expiry'];

export const isInt = (x) => Number.isSafeInteger(x);
const keys = (o) => Object.keys(o).sort();

// Members: slice 2 (refunds, adjustments) is being added to these objects
// while slice 1 is tested, so the shape checks below require every member
// balances1.md names (each always present) and leave "nothing else" to the
// OpenAPI contract (additionalProperties: false, checked on every response).
// The views (viewTopup …) are the objects cut down to balances1.md's
// members, for comparing with the objects written out in the tests.
function assertMembers(o, list, what) {
  assert.ok(o && typeof o === 'object' && !Array.isArray(o), `${what}: an object, got ${JSON.stringify(o)}`);
  const missing = list.filter((k) => !(k in o));
  assert.deepEqual(missing, [], `${what}: members missing from ${JSON.stringify(o)}`);
}
const pick = (o, list) => Object.fromEntries(list.filter((k) => k in o).map((k) => [k, o[k]]));
export const viewWallet = (w) => pick(w, WALLET_KEYS);
export const viewSpend = (x) => pick(x, SPEND_KEYS);
export const viewInst = (i) => pick(i, INST_KEYS);
export const viewTopup = (t) => ({ ...pick(t, TOPUP_KEYS), installments: t.installments.map(viewInst) });
export const viewOffer = (o) => ({
  ...pick(o, OFFER_KEYS),
  bonus: { ...pick(o.bonus, BONUS_KEYS), installments: o.bonus.installments === null ? null : pick(o.bonus.installments, INSTALLMENTS_KEYS) },
});
export const viewMovement = (m) => ({ ...pick(m, MOVE_KEYS), balance_after: pick(m.balance_after, BAL_KEYS) });
export const viewStatement = (st) => ({
  wallet: viewWallet(st.wallet), movements: st.movements.map(viewMovement), schedule: st.schedule.map((i) => pick(i, SCHED_KEYS)),
});

export function assertOfferShape(o) {
  assertMembers(o, OFFER_KEYS, 'Offer');
  assertMembers(o.bonus, BONUS_KEYS, 'Offer.bonus');
  if (o.bonus.installments !== null) assertMembers(o.bonus.installments, INSTALLMENTS_KEYS, 'Offer.bonus.installments (all four)');
  assertServerTs(o.created_at, 'offer created_at');
  const inst = o.bonus.installments;
  assert.equal(o.bonus_total, o.bonus.immediate + (inst ? inst.count * inst.amount : 0), 'bonus_total = immediate + count × amount');
}

export function assertWalletShape(w) {
  assertMembers(w, WALLET_KEYS, 'Wallet');
  for (const k of BAL_KEYS) assert.ok(isInt(w[k]) && w[k] >= 0, `wallet ${k} is an integer ≥ 0: ${JSON.stringify(w)}`);
  assert.equal(w.available, w.principal + w.bonus_available, `available = principal + bonus_available: ${JSON.stringify(w)}`);
  assertServerTs(w.as_of, 'as_of');
  if (w.opened_at !== null) assertServerTs(w.opened_at, 'opened_at');
  else assert.deepEqual([w.principal, w.bonus_available, w.bonus_scheduled], [0, 0, 0], 'no top-up yet: all zeros');
}

function assertInstallmentShape(i, keyList, what) {
  assertMembers(i, keyList, what);
  assert.ok(isInt(i.k) && i.k >= 0 && isInt(i.amount) && i.amount >= 1, `${what}: ${JSON.stringify(i)}`);
  assertServerTs(i.due_at, `${what}.due_at`);
  if (i.expires_at !== null) assertServerTs(i.expires_at, `${what}.expires_at`);
  assert.ok(STATUSES.includes(i.status), `${what}.status ${i.status}`);
  assert.ok(isInt(i.remaining) && i.remaining >= 0 && i.remaining <= i.amount, `${what}.remaining: ${JSON.stringify(i)}`);
  if (i.status !== 'released') assert.equal(i.remaining, 0, `${what}: remaining is 0 unless released: ${JSON.stringify(i)}`);
}

export function assertTopupShape(t) {
  assertMembers(t, TOPUP_KEYS, 'Topup');
  assertServerTs(t.created_at, 'topup created_at');
  t.installments.forEach((i, n) => assertInstallmentShape(i, INST_KEYS, `installments[${n}]`));
  const ks = t.installments.map((i) => i.k);
  assert.deepEqual(ks, [...ks].sort((a, b) => a - b), 'installments by k');
  assert.equal(t.installments.reduce((s, i) => s + i.amount, 0), t.bonus_total, 'Σ installment amounts = bonus_total');
  assert.equal(t.offer === null, t.offer_version === null, 'offer and offer_version are null together');
}

export function assertSpendShape(s) {
  assertMembers(s, SPEND_KEYS, 'Spend');
  assertServerTs(s.created_at, 'spend created_at');
  assert.ok(isInt(s.from_principal) && s.from_principal >= 0 && isInt(s.from_bonus) && s.from_bonus >= 0, JSON.stringify(s));
  assert.equal(s.from_principal + s.from_bonus, s.amount, `from_principal + from_bonus = amount: ${JSON.stringify(s)}`);
}

/**
 * Checks a statement: shapes; movements by `at`; the balance chain (the first
 * movement starts from zeros, each one's before = after − delta = the
 * previous one's after, no balance ever below zero); the ledger invariant
 * (Σ of each bucket's deltas = the wallet's balance); the kinds' signs
 * (topup: principal + and scheduled +; release: scheduled − = available +;
 * spend: principal and available −; expiry: available or scheduled −);
 * the schedule by due_at with Σ remaining of released = bonus_available and
 * Σ amount of pending = bonus_scheduled.
 */
export function checkStatement(st) {
  assertMembers(st, ['movements', 'schedule', 'wallet'], 'Statement');
  assertWalletShape(st.wallet);
  const bal = { principal: 0, bonus_available: 0, bonus_scheduled: 0 };
  let prevAt = -1n;
  st.movements.forEach((m, n) => {
    const what = `movements[${n}] ${JSON.stringify(m)}`;
    assertMembers(m, MOVE_KEYS, what);
    assertMembers(m.balance_after, BAL_KEYS, `${what}.balance_after`);
    assert.ok(KINDS.includes(m.kind), `${what}: kind`);
    const t = assertServerTs(m.at, `${what}.at`);
    assert.ok(t >= prevAt, `${what}: movements oldest first`);
    prevAt = t;
    for (const k of BAL_KEYS) {
      assert.ok(isInt(m[k]), `${what}: ${k} delta is an integer`);
      // before = after − delta must be the previous after
      assert.equal(m.balance_after[k] - m[k], bal[k], `${what}: ${k} before (after − delta) = the previous movement's after (${bal[k]})`);
      bal[k] = m.balance_after[k];
      assert.ok(bal[k] >= 0, `${what}: ${k} never below zero`);
    }
    const d = [m.principal, m.bonus_available, m.bonus_scheduled];
    const sgn = d.map(Math.sign);
    if (m.kind === 'topup') assert.ok(d[0] > 0 && d[1] === 0 && d[2] >= 0, `${what}: a top-up moves principal + and scheduled +`);
    if (m.kind === 'release') assert.ok(d[0] === 0 && d[1] > 0 && d[2] === -d[1], `${what}: a release moves scheduled → available`);
    if (m.kind === 'spend') assert.ok(sgn[0] <= 0 && sgn[1] <= 0 && d[2] === 0 && d[0] + d[1] < 0, `${what}: a spend takes from principal and available`);
    if (m.kind === 'expiry') assert.ok(d[0] === 0 && sgn[1] <= 0 && sgn[2] <= 0 && (d[1] === 0 || d[2] === 0), `${what}: an expiry takes from available or from scheduled`);
  });
  // the ledger invariant through the API: Σ deltas = the wallet's balances
  for (const k of BAL_KEYS) {
    const sum = st.movements.reduce((s, m) => s + m[k], 0);
    assert.equal(sum, st.wallet[k], `Σ ${k} deltas over the statement (${sum}) = the wallet's ${k} (${st.wallet[k]})`);
  }
  st.schedule.forEach((i, n) => assertInstallmentShape(i, SCHED_KEYS, `schedule[${n}]`));
  for (let n = 1; n < st.schedule.length; n++) {
    const a = st.schedule[n - 1];
    const b = st.schedule[n];
    assert.ok(tsMicros(a.due_at) <= tsMicros(b.due_at), `schedule by due_at: ${JSON.stringify(a)} before ${JSON.stringify(b)}`);
    if (a.topup_id === b.topup_id && a.due_at === b.due_at) assert.ok(a.k < b.k, 'schedule: then by k');
  }
  const released = st.schedule.filter((i) => i.status === 'released').reduce((s, i) => s + i.remaining, 0);
  const pending = st.schedule.filter((i) => i.status === 'pending').reduce((s, i) => s + i.amount, 0);
  assert.equal(released, st.wallet.bonus_available, 'Σ remaining of released installments = bonus_available');
  assert.equal(pending, st.wallet.bonus_scheduled, 'Σ amount of pending installments = bonus_scheduled');
  return st;
}

// ---------------------------------------------------------------------------
// Expected objects, written out (timestamps normalised as rebuyd prints them)

/** The Wallet expected at test instant `now`. */
export const WAL = (cust, now, { p = 0, ba = 0, bs = 0, opened = null, currency = 'CNY' } = {}) => ({
  customer_id: cust, currency, principal: p, bonus_available: ba, bonus_scheduled: bs, available: p + ba,
  opened_at: opened === null ? null : U(opened), as_of: U(now),
});

/** An installment of a Topup. */
export const I = (k, amount, due, expires, status, remaining) => ({
  k, amount, due_at: U(due), expires_at: expires === null ? null : U(expires), status, remaining,
});

/** A schedule entry of a statement. */
export const SCH = (topupId, k, amount, due, expires, status, remaining) => ({ topup_id: topupId, ...I(k, amount, due, expires, status, remaining) });

/** A movement without its balance_after: deltas of principal, bonus_available, bonus_scheduled. */
export const MV = (atTs, kind, ref, p, ba, bs) => ({ at: U(atTs), kind, ref, principal: p, bonus_available: ba, bonus_scheduled: bs });

export const stripAfter = ({ balance_after: _ba, ...m }) => m;
export const mkey = (m) => JSON.stringify([m.kind, m.ref, m.principal, m.bonus_available, m.bonus_scheduled]);

/**
 * The statement's movements equal `expected` (MV objects) — exactly in order
 * where their instants differ; movements at one instant are compared as a
 * multiset (the order they were recorded in is the implementation's: e.g.
 * the expiry of one installment and the release of the next at the same
 * instant). The balance chain itself is checked by checkStatement.
 */
export function assertMovements(st, expected) {
  const got = st.movements.map(stripAfter);
  const group = (list) => {
    const g = [];
    for (const m of list) {
      if (g.length && g[g.length - 1].at === m.at) g[g.length - 1].items.push(mkey(m));
      else g.push({ at: m.at, items: [mkey(m)] });
    }
    return g.map((x) => ({ at: x.at, items: x.items.sort() }));
  };
  assert.deepEqual(group(got), group(expected),
    `movements:\n${got.map((m) => JSON.stringify(m)).join('\n')}\nexpected:\n${expected.map((m) => JSON.stringify(m)).join('\n')}`);
}

/** balance_after of every movement, in order, as [principal, bonus_available, bonus_scheduled]. */
export const afters = (st) => st.movements.map((m) => [m.balance_after.principal, m.balance_after.bonus_available, m.balance_after.bonus_scheduled]);

// ---------------------------------------------------------------------------
// Calls

/** Request options: key, test instant, extra members merged in. */
export const atNow = (key, now, extra = {}) => ({ key, ...extra, headers: { [NOW_HEADER]: now, ...(extra.headers || {}) } });

/** The feature's calls through client c, each at a test instant, asserting success and shapes. */
export function walletCalls(c) {
  const w = {
    async customer(key, id) {
      const r = await c.put(`/v1/customers/${enc(id)}`, { name: `Name ${id}` }, { key });
      assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      return id;
    },
    /** PUT an offer at `now`; asserts `status` (or 200/201) and the shape. */
    async offer(key, code, body, now, status) {
      const r = await c.put(offerPath(code), body, atNow(key, now));
      if (status) assert.equal(r.status, status, `PUT offer ${code}: ${r.text}`);
      else assert.ok([200, 201].includes(r.status), `PUT offer ${code}: ${r.status} ${r.text}`);
      assertOfferShape(r.body);
      return viewOffer(r.body);
    },
    topupRaw: (key, cust, body, now, extra) => c.post(topupPath(cust), body, atNow(key, now, extra)),
    spendRaw: (key, cust, body, now, extra) => c.post(spendPath(cust), body, atNow(key, now, extra)),
    /** POST a top-up at `now`; asserts the status (201) and shapes; returns {topup, wallet}. */
    async topup(key, cust, body, now, status = 201) {
      const r = await w.topupRaw(key, cust, body, now);
      assert.equal(r.status, status, `top-up ${JSON.stringify(body)} for ${cust} at ${now}: ${r.text}`);
      // coupons: the grant of the offer's coupon pack (coupons.test.js), else null
      assert.deepEqual(keys(r.body), ['coupons', 'topup', 'wallet'], r.text);
      if (!body.offer) assert.equal(r.body.coupons, null, 'a plain top-up issues no coupons');
      assertTopupShape(r.body.topup);
      assertWalletShape(r.body.wallet);
      assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return { topup: viewTopup(r.body.topup), wallet: viewWallet(r.body.wallet) };
    },
    /** POST a spend at `now`; asserts the status (201) and shapes; returns {spend, wallet}. */
    async spend(key, cust, body, now, status = 201) {
      const r = await w.spendRaw(key, cust, body, now);
      assert.equal(r.status, status, `spend ${JSON.stringify(body)} for ${cust} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['spend', 'wallet'], r.text);
      assertSpendShape(r.body.spend);
      assertWalletShape(r.body.wallet);
      assert.equal(r.body.wallet.as_of, U(now), 'the reply\'s wallet is as of the test instant');
      return { spend: viewSpend(r.body.spend), wallet: viewWallet(r.body.wallet) };
    },
    /** GET the wallet at `now`; asserts 200, the shape and as_of. */
    async wallet(key, cust, now) {
      const r = await c.get(walletPath(cust), atNow(key, now));
      assert.equal(r.status, 200, `GET wallet of ${cust} at ${now}: ${r.text}`);
      assertWalletShape(r.body);
      assert.equal(r.body.as_of, U(now), 'as_of is the test instant');
      return viewWallet(r.body);
    },
    /** GET the statement at `now`; asserts 200 and every check of checkStatement. */
    async statement(key, cust, now) {
      const r = await c.get(statementPath(cust), atNow(key, now));
      assert.equal(r.status, 200, `GET statement of ${cust} at ${now}: ${r.text}`);
      checkStatement(r.body);
      assert.equal(r.body.wallet.as_of, U(now), 'as_of is the test instant');
      return viewStatement(r.body);
    },
    /** PATCH the shop's consumption order; asserts 200 and the reply. */
    async order(key, shopId, order) {
      const r = await c.patch(`/v1/shops/${shopId}`, { settings: { balances: { consumption_order: order } } }, { key });
      assert.equal(r.status, 200, `PATCH consumption_order ${order}: ${r.text}`);
      assert.deepEqual(r.body.settings.balances, { consumption_order: order });
      return r.body;
    },
  };
  return w;
}

/** Asserts 422 insufficient_funds with exactly these figures. */
export function assertInsufficient(r, principal, bonusAvailable) {
  assert.equal(r.status, 422, `${r.method} ${r.path}: ${r.text}`);
  assert.equal(r.body.code, 'insufficient_funds', r.text);
  assert.deepEqual({ principal: r.body.principal, bonus_available: r.body.bonus_available, available: r.body.available },
    { principal, bonus_available: bonusAvailable, available: principal + bonusAvailable }, r.text);
}
