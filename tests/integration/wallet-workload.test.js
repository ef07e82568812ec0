// Prepaid wallets under load (issue 7): durability of the ledger.
//
// (a) 50 parallel requests with one Idempotency-Key on a spend → one 201,
//     the others replays of it (or idempotency_in_progress); one movement.
// (b) A random workload from 32 concurrent clients for ~18 s over 50
//     customers in two shops (bonus_first and proportional): top-ups (most
//     with a bonus offer: immediate part, daily installments, expiries),
//     spends (some beyond the balance), refunds of spends (some beyond what
//     is left), refunds of top-ups, adjustments, replays, reads. Each answer
//     is checked as it arrives (the split of a spend from the wallet it left,
//     the principal a refund returns, the identity of the liability report).
//     Afterwards, through the API, for every customer: the statement holds
//     exactly the acknowledged operations with their figures, Σ deltas per
//     bucket = the wallet's balances, balances ≥ 0; per shop, via GET
//     /v1/metrics/prepaid-liability: the identity cash_received +
//     bonus_granted + adjustments = principal_outstanding + bonus_available +
//     bonus_scheduled + spent + bonus_expired, cash_received = Σ top-ups − Σ
//     principal returned (from the replies), spent, adjustments, wallets and
//     the balances = Σ of the wallets; and `rebuyd verify` → 0 differences.
// (c) The same workload while rebuyd is killed with SIGKILL twice and started
//     again on the same port and database: requests cut off are retried with
//     the same ids until answered; then the same checks, and every operation
//     acknowledged (2xx) before a kill is still there: sent again with the
//     same id it answers 200 with the same object.
//
// The workload runs on the test clock at a simulated instant that moves 6
// hours per real second from 30 days ago (60 s: 15 simulated days), so installments are released and
// expire while it runs; every schedule is over well before the real now, so
// the final reads (real clock) see settled wallets. Concurrent requests
// carry instants that are not in the order they are served, so statements
// read during the workload are not checked for `at` order (counted only).
//
// Knobs: REBUY_WALLET_SEED (PRNG seed, printed), REBUY_WALLET_WORKLOAD_MS
// (duration of (b), default 60000 as the issue asks; at most 60000).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  REBUY_BIN, startService, setupShop, assertProblem, assertNoSanitizerReport, uniq, sleep,
} from '../lib/harness.js';
import {
  ledgerApi, ledgerCalls, at, walletPath, statementPath, topupPath, spendPath, spendRefundPath, topupRefundPath,
  adjustmentPath, LIABILITY, checkStatement, outOfOrder, assertLiabilityShape, assertTopupShape, assertSpendShape,
  assertRefundShape, assertAdjustmentShape, assertWalletShape, keys,
} from '../lib/wallet-ledger.js';
import { mulberry32 } from '../lib/random.js';

const IS_ASAN = /asan|sanitiz/i.test(REBUY_BIN);
const SEED = Number(process.env.REBUY_WALLET_SEED ?? (Date.now() % 0x7fffffff));
const WORKLOAD_MS = Math.min(60000, Number(process.env.REBUY_WALLET_WORKLOAD_MS ?? 60000));
const KILL_WORKLOAD_MS = 12000;
const KILL_AT_MS = [3500, 8000];
const CLIENTS = 32;
const WORKERS = 4;
const DAY_MS = 86400000;
const SIM_SPEED = 6 * 3600; // simulated seconds per real second

// The offers: "wl" 300 at once and 6 × 200 a day, each expiring when the next
// is due; "wl2" 500 at once and 2 × 400 a day, everything expiring 2 days
// after the top-up. Both end within 7 days of the top-up.
const OFFERS = {
  wl: { name: 'Workload daily', bonus: { immediate: 300, installments: { count: 6, amount: 200, every: 'day' }, installment_expiry: 'end_of_period' } },
  wl2: { name: 'Workload short', bonus: { immediate: 500, installments: { count: 2, amount: 400, every: 'day' }, expires_after_days: 2 } },
};

/** Two shops, 35 + 15 customers: bonus_first (the default) and proportional. */
async function setupWorld(svc, c, tag) {
  const W = ledgerCalls(c);
  const shops = [];
  for (const [n, rule, count] of [[1, 'bonus_first', 35], [2, 'proportional', 15]]) {
    const S = await setupShop(svc, { name: uniq(`Wallet Load ${tag} ${n}`), timezone: 'Asia/Shanghai' });
    if (rule !== 'bonus_first') {
      const r = await c.patch(`/v1/shops/${S.shopId}`, { settings: { balances: { consumption_order: rule } } }, { key: S.keys.admin });
      assert.equal(r.status, 200, r.text);
    }
    for (const [code, body] of Object.entries(OFFERS)) await W.offer(S.keys.admin, code, body, new Date(Date.now() - 30 * DAY_MS).toISOString());
    const customers = [];
    for (let i = 0; i < count; i++) customers.push(await W.customer(S.keys.admin, `w${n}-${String(i).padStart(2, '0')}`));
    shops.push({ S, rule, customers });
  }
  return shops;
}

const isNetError = (e) => /request failed/.test(e?.message || '');

/**
 * The workload: CLIENTS loops until `durationMs` has passed. Everything sent
 * and acknowledged is kept in `model`; answers are checked as they arrive.
 * With allowNetErrors, a request that fails on the network (rebuyd killed)
 * is sent again, unchanged, until it is answered.
 */
function makeWorkload({ c, shops, tag, seed, allowNetErrors }) {
  const t0 = Date.now();
  const simBase = t0 - 30 * DAY_MS;
  const simNow = () => new Date(simBase + (Date.now() - t0) * SIM_SPEED).toISOString();
  const model = {
    topups: new Map(), // id → {shop, cust, amount, offer, bonus_total, ackAt, refund, refundInflight}
    spends: new Map(), // id → {shop, cust, amount, order_id, from_principal, from_bonus, ackAt, refunds: [], inflight}
    refunds: new Map(), // id → {spend, amount, to_principal, to_bonus, to_breakage, ackAt}
    adjustments: new Map(), // id → {shop, cust, amount, reason, ackAt}
    acked: { topups: [], spends: [] }, // lists for picking
  };
  const stats = {
    requests: 0, netErrors: 0, s503: 0, topup: 0, spend: 0, insufficient: 0, refund: 0, refund422: 0, topupRefund: 0,
    topupRefund200: 0, adjust: 0, adjust422: 0, replay: 0, reads: 0, liability: 0, outOfOrder: 0, retried200: 0,
  };
  let seq = 0;
  let failed = null;

  async function send(method, p, key, body, now) {
    let priorFailure = false;
    for (;;) {
      if (failed) throw new Error('abandoned: the workload failed elsewhere');
      stats.requests += 1;
      let r;
      try {
        r = await c.req(method, p, { ...at(key, now), ...(body === undefined ? {} : { body }), timeoutMs: 60000 });
      } catch (e) {
        if (!allowNetErrors || !isNetError(e)) throw e;
        stats.netErrors += 1;
        priorFailure = true;
        if (Date.now() - t0 > 120000) throw new Error(`${method} ${p}: no answer for 2 minutes: ${e.message}`);
        await sleep(50);
        continue;
      }
      if (r.status === 503 && allowNetErrors) {
        stats.s503 += 1;
        priorFailure = true;
        await sleep(100);
        continue;
      }
      return { r, priorFailure };
    }
  }

  const pick = (rnd, a) => a[Math.floor(rnd() * a.length)];
  const int = (rnd, lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

  async function opTopup(rnd, shop, cust) {
    const id = `tp-${tag}-${++seq}`;
    const amount = int(rnd, 500, 20000);
    const x = rnd();
    const offer = x < 0.55 ? 'wl' : x < 0.8 ? 'wl2' : null;
    const body = offer ? { topup_id: id, amount, offer } : { topup_id: id, amount };
    const { r, priorFailure } = await send('POST', topupPath(cust), shop.S.keys.storefront, body, simNow());
    if (r.status === 200 && priorFailure) stats.retried200 += 1;
    else assert.equal(r.status, 201, `top-up ${JSON.stringify(body)}: ${r.text}`);
    assertTopupShape(r.body.topup);
    assertWalletShape(r.body.wallet);
    const t = r.body.topup;
    assert.deepEqual([t.topup_id, t.customer_id, t.amount, t.offer, t.refund], [id, cust, amount, offer, null], r.text);
    const rec = { shop, cust, amount, offer, bonus_total: t.bonus_total, body, ackAt: Date.now(), refund: null, refundInflight: 0, refundEpoch: 0 };
    model.topups.set(id, rec);
    model.acked.topups.push(id);
    stats.topup += 1;
  }

  async function opSpend(rnd, shop, cust) {
    const id = `sp-${tag}-${++seq}`;
    const amount = rnd() < 0.75 ? int(rnd, 1, 3000) : int(rnd, 3000, 40000);
    const body = rnd() < 0.5 ? { spend_id: id, amount, order_id: `ord-${id}` } : { spend_id: id, amount };
    const { r, priorFailure } = await send('POST', spendPath(cust), shop.S.keys.storefront, body, simNow());
    if (r.status === 422) {
      assert.equal(r.body.code, 'insufficient_funds', r.text);
      assert.ok(r.body.available < amount, `insufficient_funds with ${r.body.available} available for ${amount}: ${r.text}`);
      stats.insufficient += 1;
      return;
    }
    if (r.status === 200 && priorFailure) stats.retried200 += 1;
    else assert.equal(r.status, 201, `spend ${JSON.stringify(body)}: ${r.text}`);
    assertSpendShape(r.body.spend);
    assertWalletShape(r.body.wallet);
    const s = r.body.spend;
    assert.deepEqual([s.spend_id, s.customer_id, s.amount, s.order_id], [id, cust, amount, body.order_id ?? null], r.text);
    if (r.status === 201) {
      // the wallet before the spend (after bringing it up to now) = the wallet after + the split
      const w = r.body.wallet;
      const p = BigInt(w.principal + s.from_principal);
      const ba = BigInt(w.bonus_available + s.from_bonus);
      const want = shop.rule === 'bonus_first'
        ? (BigInt(amount) < ba ? BigInt(amount) : ba)
        : (BigInt(amount) * ba) / (p + ba);
      assert.equal(BigInt(s.from_bonus), want, `${shop.rule}: from_bonus of ${amount} from p ${p}, ba ${ba}: ${r.text}`);
    }
    model.spends.set(id, {
      shop, cust, amount, body, from_principal: s.from_principal, from_bonus: s.from_bonus, ackAt: Date.now(), refunds: [], inflight: 0, epoch: 0,
    });
    model.acked.spends.push(id);
    stats.spend += 1;
  }

  async function opRefund(rnd) {
    if (!model.acked.spends.length) return;
    const spendId = pick(rnd, model.acked.spends);
    const sp = model.spends.get(spendId);
    const refunded = sp.refunds.reduce((s, id) => s + model.refunds.get(id).amount, 0);
    const left = sp.amount - refunded;
    const amount = rnd() < 0.85 ? int(rnd, 1, Math.max(1, left)) : left + int(rnd, 1, 500);
    const id = `rf-${tag}-${++seq}`;
    // exact: no other refund of this spend was under way at any time during this one, so `left` and the
    // principal part are known
    const alone = sp.inflight === 0;
    const epoch = ++sp.epoch;
    const principalBack = sp.refunds.reduce((s, x) => s + model.refunds.get(x).to_principal, 0);
    sp.inflight += 1;
    let res;
    try {
      res = await send('POST', spendRefundPath(sp.cust, spendId), sp.shop.S.keys.storefront, { refund_id: id, amount }, simNow());
    } finally {
      sp.inflight -= 1;
    }
    const exact = alone && sp.epoch === epoch;
    const { r, priorFailure } = res;
    if (r.status === 422) {
      assert.deepEqual([r.body.code, r.body.pointer], ['validation_failed', '/amount'], r.text);
      if (exact) assert.ok(amount > left, `refund ${amount} of spend ${spendId} with ${left} left → 422: ${r.text}`);
      stats.refund422 += 1;
      return;
    }
    if (r.status === 200 && priorFailure) stats.retried200 += 1;
    else assert.equal(r.status, 201, `refund ${amount} of ${spendId} (${left} left): ${r.text}`);
    if (exact && !priorFailure) assert.ok(amount <= left, `refund ${amount} of spend ${spendId} with ${left} left → 201: ${r.text}`);
    assertRefundShape(r.body.refund);
    assertWalletShape(r.body.wallet);
    const f = r.body.refund;
    assert.deepEqual([f.refund_id, f.spend_id, f.amount], [id, spendId, amount], r.text);
    // principal first, up to what the spend took from principal less what earlier refunds returned there
    if (exact) assert.equal(f.to_principal, Math.min(amount, sp.from_principal - principalBack), `to_principal: ${r.text} (spend ${JSON.stringify(sp.body)} took ${sp.from_principal} from principal, ${principalBack} returned)`);
    model.refunds.set(id, { spend: spendId, amount, to_principal: f.to_principal, to_bonus: f.to_bonus, to_breakage: f.to_breakage, ackAt: Date.now() });
    sp.refunds.push(id);
    stats.refund += 1;
  }

  async function opTopupRefund(rnd) {
    if (!model.acked.topups.length) return;
    const id = pick(rnd, model.acked.topups);
    const tp = model.topups.get(id);
    const known = tp.refund;
    const alone = tp.refundInflight === 0;
    const epoch = ++tp.refundEpoch;
    tp.refundInflight += 1;
    let res;
    try {
      res = await send('POST', topupRefundPath(tp.cust, id), tp.shop.S.keys.storefront, undefined, simNow());
    } finally {
      tp.refundInflight -= 1;
    }
    const exact = alone && tp.refundEpoch === epoch;
    const { r, priorFailure } = res;
    if (known) assert.equal(r.status, 200, `a second refund of top-up ${id}: ${r.text}`);
    else if (exact && !priorFailure) assert.equal(r.status, 201, `the first refund of top-up ${id}: ${r.text}`);
    else assert.ok([200, 201].includes(r.status), `refund of top-up ${id}: ${r.text}`);
    assert.deepEqual(keys(r.body), ['topup', 'wallet']);
    assertTopupShape(r.body.topup);
    assertWalletShape(r.body.wallet);
    const t = r.body.topup;
    assert.notEqual(t.refund, null, r.text);
    if (known) assert.deepEqual(t.refund, known, `the refund of top-up ${id} as first answered`);
    if (r.status === 201) {
      // principal_returned = min(amount, the principal before) where the principal before = after + returned
      assert.equal(t.refund.principal_returned, Math.min(tp.amount, r.body.wallet.principal + t.refund.principal_returned), r.text);
      stats.topupRefund += 1;
    } else {
      stats.topupRefund200 += 1;
    }
    if (!tp.refund) tp.refund = t.refund;
    else assert.deepEqual(t.refund, tp.refund);
  }

  async function opAdjust(rnd, shop, cust) {
    const id = `adj-${tag}-${++seq}`;
    const amount = rnd() < 0.6 ? int(rnd, 1, 5000) : -int(rnd, 1, 8000);
    const body = { adjustment_id: id, amount, reason: `workload ${amount > 0 ? 'credit' : 'debit'}` };
    const { r, priorFailure } = await send('POST', adjustmentPath(cust), shop.S.keys.admin, body, simNow());
    if (r.status === 422) {
      assert.ok(amount < 0, r.text);
      assert.equal(r.body.code, 'insufficient_funds', r.text);
      assert.ok(r.body.principal < -amount, r.text);
      stats.adjust422 += 1;
      return;
    }
    if (r.status === 200 && priorFailure) stats.retried200 += 1;
    else assert.equal(r.status, 201, `adjustment ${JSON.stringify(body)}: ${r.text}`);
    assertAdjustmentShape(r.body.adjustment);
    assert.deepEqual([r.body.adjustment.adjustment_id, r.body.adjustment.amount], [id, amount]);
    model.adjustments.set(id, { shop, cust, amount, body, ackAt: Date.now() });
    stats.adjust += 1;
  }

  async function opReplay(rnd) {
    const list = rnd() < 0.5 ? model.acked.topups : model.acked.spends;
    if (!list.length) return;
    const id = pick(rnd, list);
    const isTopup = list === model.acked.topups;
    const rec = isTopup ? model.topups.get(id) : model.spends.get(id);
    const { r } = await send('POST', isTopup ? topupPath(rec.cust) : spendPath(rec.cust), rec.shop.S.keys.storefront, rec.body, simNow());
    assert.equal(r.status, 200, `replay of ${id}: ${r.text}`);
    const o = isTopup ? r.body.topup : r.body.spend;
    assert.deepEqual([o.customer_id, o.amount], [rec.cust, rec.amount], r.text);
    if (!isTopup) assert.deepEqual([o.from_principal, o.from_bonus], [rec.from_principal, rec.from_bonus]);
    stats.replay += 1;
  }

  async function opRead(rnd, shop, cust) {
    const x = rnd();
    if (x < 0.45) {
      const { r } = await send('GET', walletPath(cust), shop.S.keys.readonly, undefined, simNow());
      assert.equal(r.status, 200, r.text);
      assertWalletShape(r.body);
    } else if (x < 0.9) {
      const { r } = await send('GET', statementPath(cust), shop.S.keys.readonly, undefined, simNow());
      assert.equal(r.status, 200, r.text);
      checkStatement(r.body, { ordered: false });
      stats.outOfOrder += outOfOrder(r.body);
    } else {
      const { r } = await send('GET', LIABILITY, shop.S.keys.readonly, undefined, simNow());
      assert.equal(r.status, 200, r.text);
      assertLiabilityShape(r.body); // the identity, mid-workload
      stats.liability += 1;
    }
    stats.reads += 1;
  }

  async function oneOp(rnd) {
    const shop = rnd() < 0.7 ? shops[0] : shops[1];
    // a skew: a few customers of each shop get much of the traffic (same-wallet concurrency)
    const cust = rnd() < 0.4 ? shop.customers[int(rnd, 0, 3)] : pick(rnd, shop.customers);
    const x = rnd();
    if (x < 0.24) await opTopup(rnd, shop, cust);
    else if (x < 0.52) await opSpend(rnd, shop, cust);
    else if (x < 0.64) await opRefund(rnd);
    else if (x < 0.68) await opTopupRefund(rnd);
    else if (x < 0.73) await opAdjust(rnd, shop, cust);
    else if (x < 0.77) await opReplay(rnd);
    else await opRead(rnd, shop, cust);
  }

  async function run(durationMs) {
    const endAt = Date.now() + durationMs;
    const loops = Array.from({ length: CLIENTS }, async (_, i) => {
      const rnd = mulberry32((seed + i * 7919) >>> 0);
      while (Date.now() < endAt && !failed) {
        try {
          await oneOp(rnd);
        } catch (e) {
          if (!failed) failed = e;
          throw e;
        }
      }
    });
    const results = await Promise.allSettled(loops);
    if (failed) throw failed;
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  return { model, stats, run, simNow };
}

/**
 * The final checks through the API (real clock: every schedule is over):
 * per customer, the statement holds exactly the acknowledged operations with
 * their figures, the chain and Σ deltas = balances ≥ 0; per shop, the
 * liability report's identity and figures; rebuyd verify.
 */
async function checkFinal(c, svcCli, shops, model) {
  for (const shop of shops) {
    const sum = { principal: 0, bonus_available: 0, bonus_scheduled: 0 };
    let wallets = 0;
    for (const cust of shop.customers) {
      const r = await c.get(statementPath(cust), { key: shop.S.keys.readonly });
      assert.equal(r.status, 200, r.text);
      const st = checkStatement(r.body, { ordered: false });
      for (const k of Object.keys(sum)) sum[k] += st.wallet[k];
      if (st.wallet.opened_at !== null) wallets += 1;
      assert.equal(st.wallet.bonus_scheduled, 0, `${cust}: every schedule is over by now`);
      // the movements of the operations, by kind and ref, with their deltas
      const got = st.movements.filter((m) => !['release', 'expiry'].includes(m.kind))
        .map((m) => JSON.stringify([m.kind, m.ref, m.principal, m.bonus_available, m.bonus_scheduled])).sort();
      const want = [];
      for (const [id, t] of model.topups) {
        if (t.shop !== shop || t.cust !== cust) continue;
        want.push(['topup', id, t.amount, 0, t.bonus_total]);
        if (t.refund) want.push(['topup_refund', id, -t.refund.principal_returned, -t.refund.bonus_clawed_back, -t.refund.bonus_cancelled]);
      }
      for (const [id, s] of model.spends) {
        if (s.shop !== shop || s.cust !== cust) continue;
        want.push(['spend', id, -s.from_principal, -s.from_bonus, 0]);
        for (const rid of s.refunds) {
          const f = model.refunds.get(rid);
          want.push(['refund', rid, f.to_principal, f.to_bonus, 0]);
        }
        const refunded = s.refunds.reduce((x, rid) => x + model.refunds.get(rid).amount, 0);
        assert.ok(refunded <= s.amount, `spend ${id}: refunds acknowledged ${refunded} > ${s.amount}`);
      }
      for (const [id, a] of model.adjustments) {
        if (a.shop === shop && a.cust === cust) want.push(['adjustment', id, a.amount, 0, 0]);
      }
      assert.deepEqual(got, want.map((x) => JSON.stringify(x)).sort(), `${cust}: the statement holds exactly the acknowledged operations`);
    }
    // the shop: the liability now (the real clock; every movement is before now)
    const r = await c.get(LIABILITY, { key: shop.S.keys.admin });
    assert.equal(r.status, 200, r.text);
    assertLiabilityShape(r.body); // includes the identity
    const l = r.body.liability;
    const mine = (m) => [...m.values()].filter((x) => x.shop === shop);
    const cash = mine(model.topups).reduce((s, t) => s + t.amount - (t.refund ? t.refund.principal_returned : 0), 0);
    const spends = mine(model.spends);
    const spent = spends.reduce((s, x) => s + x.amount - x.refunds.reduce((y, rid) => y + model.refunds.get(rid).amount, 0), 0);
    const adj = mine(model.adjustments).reduce((s, a) => s + a.amount, 0);
    assert.deepEqual({
      cash_received: l.cash_received, spent: l.spent, adjustments: l.adjustments, wallets: l.wallets,
      principal_outstanding: l.principal_outstanding, bonus_available: l.bonus_available, bonus_scheduled: l.bonus_scheduled,
    }, {
      cash_received: cash, spent, adjustments: adj, wallets,
      principal_outstanding: sum.principal, bonus_available: sum.bonus_available, bonus_scheduled: sum.bonus_scheduled,
    }, `shop ${shop.rule}: the liability against the replies (cash = Σ top-ups − Σ principal returned) and Σ of the wallets`);
  }
  const v = await svcCli(['verify'], { timeoutMs: 180000 });
  assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
  assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
}

const summary = (stats) => Object.entries(stats).map(([k, v]) => `${k} ${v}`).join(', ');

// ---------------------------------------------------------------------------

let svc;
let c;
let W;

before(async () => {
  svc = await startService({ args: ['--test-clock'], workers: WORKERS });
  c = ledgerApi(svc);
  W = ledgerCalls(c);
});
after(async () => { await svc?.stop(); });

describe('wallet durability', () => {
  test('(a) 50 parallel requests with one Idempotency-Key on a spend → one 201, replays of it; exactly one movement', async () => {
    const S = await setupShop(svc, { name: uniq('Wallet Idem Shop'), timezone: 'Asia/Shanghai' });
    const A = S.keys.admin;
    const T = '2031-02-01T02:00:00Z';
    await W.customer(A, 'ik');
    await W.topup(A, 'ik', { topup_id: 'pay-ik', amount: 1000 }, T);
    const key = uniq('ik-spend');
    const body = { spend_id: 'sp-ik', amount: 10, order_id: 'ord-ik' };
    const rs = await Promise.all(Array.from({ length: 50 }, () => c.post(spendPath('ik'), body, at(A, T, { idempotencyKey: key }))));
    const originals = rs.filter((r) => r.status === 201 && r.headers['idempotent-replayed'] !== 'true');
    const replays = rs.filter((r) => r.status === 201 && r.headers['idempotent-replayed'] === 'true');
    const busy = rs.filter((r) => r.status === 409);
    assert.equal(originals.length + replays.length + busy.length, 50, `statuses: ${rs.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join('\n')}`);
    assert.equal(originals.length, 1, 'exactly one original 201');
    for (const r of busy) assertProblem(r, 409, 'idempotency_in_progress');
    for (const r of replays) assert.equal(r.text, originals[0].text, 'a replay repeats the original body');
    const again = await c.post(spendPath('ik'), body, at(A, T, { idempotencyKey: key }));
    assert.deepEqual([again.status, again.headers['idempotent-replayed'], again.text], [201, 'true', originals[0].text]);
    const st = await W.statement(A, 'ik', T);
    assert.deepEqual(st.movements.map((m) => [m.kind, m.ref, m.principal]), [['topup', 'pay-ik', 1000], ['spend', 'sp-ik', -10]], 'one spend movement');
    assert.equal(st.wallet.principal, 990);
  });

  test(`(b) ${CLIENTS} concurrent clients for ${WORKLOAD_MS / 1000} s over 50 customers: the ledger adds up; rebuyd verify: 0 differences`, { timeout: 300000 }, async (t) => {
    const seed = SEED;
    const msg = `wallet workload: seed ${seed} (REBUY_WALLET_SEED), ${CLIENTS} clients, ${WORKLOAD_MS} ms, ${IS_ASAN ? 'ASan' : 'plain'} build`;
    console.log(msg);
    t.diagnostic(msg);
    const shops = await setupWorld(svc, c, 'b');
    const wl = makeWorkload({ c, shops, tag: 'b', seed, allowNetErrors: false });
    const t0 = Date.now();
    await wl.run(WORKLOAD_MS);
    t.diagnostic(`workload done in ${Date.now() - t0} ms: ${summary(wl.stats)}`);
    assert.ok(wl.stats.topup > 50 && wl.stats.spend > 50 && wl.stats.refund > 10 && wl.stats.topupRefund > 5 && wl.stats.insufficient > 0,
      `the workload did each kind of operation: ${summary(wl.stats)}`);
    await checkFinal(c, svc.cli, shops, wl.model);
    t.diagnostic(`checks done in ${Date.now() - t0} ms`);
  });

  test('(c) SIGKILL twice during the workload, restart: acknowledged operations survive; the ledger adds up; verify: 0 differences', { timeout: 300000 }, async (t) => {
    const seed = (SEED ^ 0x5eed) >>> 0;
    const svcK = await startService({ args: ['--test-clock'], workers: WORKERS });
    const procs = []; // the rebuyd processes started here
    let current = { proc: svcK.proc, original: true };
    const cK = ledgerApi(svcK);
    const launch = async () => {
      const args = ['serve', '--listen', `127.0.0.1:${svcK.port}`, '--database-url', svcK.databaseUrl, '--workers', String(WORKERS), '--test-clock'];
      const proc = spawn(REBUY_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
      const p = { proc, stderr: '', exit: null };
      p.exited = new Promise((resolve) => proc.on('close', (code, signal) => { p.exit = { code, signal }; resolve(p.exit); }));
      proc.stderr.setEncoding('utf8').on('data', (d) => { p.stderr += d; });
      procs.push(p);
      const deadline = Date.now() + 30000;
      for (;;) {
        if (p.exit) throw new Error(`restarted rebuyd exited during startup ${JSON.stringify(p.exit)}; stderr:\n${p.stderr.slice(-3000)}`);
        try {
          const r = await fetch(`${svcK.url}/healthz`, { signal: AbortSignal.timeout(1000) });
          await r.arrayBuffer();
          if (r.status === 200) return p;
        } catch { /* not yet */ }
        if (Date.now() > deadline) throw new Error(`restarted rebuyd did not answer /healthz; stderr:\n${p.stderr.slice(-3000)}`);
        await sleep(25);
      }
    };
    try {
      const shops = await setupWorld(svcK, cK, 'c');
      const wl = makeWorkload({ c: cK, shops, tag: 'c', seed, allowNetErrors: true });
      const t0 = Date.now();
      const kills = []; // real times of the kills
      const killer = (async () => {
        for (const ms of KILL_AT_MS) {
          await sleep(Math.max(0, t0 + ms - Date.now()));
          const p = current;
          p.proc.kill('SIGKILL');
          const info = await (p.original ? svcK.waitExit(30000) : p.exited);
          kills.push(Date.now());
          assert.equal(info.signal, 'SIGKILL', `rebuyd ended by our SIGKILL: ${JSON.stringify(info)}`);
          current = await launch();
        }
      })();
      const [wr, kr] = await Promise.allSettled([wl.run(KILL_WORKLOAD_MS), killer]);
      if (kr.status === 'rejected') throw kr.reason;
      if (wr.status === 'rejected') throw wr.reason;
      t.diagnostic(`workload with ${kills.length} kills done in ${Date.now() - t0} ms: ${summary(wl.stats)}`);
      assert.equal(kills.length, KILL_AT_MS.length);
      assert.ok(wl.stats.netErrors > 0, 'the kills cut requests off (network errors seen and retried)');
      assert.ok(wl.stats.topup > 20 && wl.stats.spend > 20, `the workload ran: ${summary(wl.stats)}`);

      await checkFinal(cK, svcK.cli, shops, wl.model);

      // every operation acknowledged before the last kill is there: sent again, 200 with the same object
      const lastKill = kills[kills.length - 1];
      const A = (rec) => rec.shop.S.keys.admin;
      let replayed = 0;
      const jobs = [];
      for (const [id, tp] of wl.model.topups) {
        if (tp.ackAt >= lastKill) continue;
        jobs.push(async () => {
          const r = await cK.post(topupPath(tp.cust), tp.body, { key: A(tp) });
          assert.equal(r.status, 200, `top-up ${id} acknowledged before a kill: ${r.text}`);
          assert.deepEqual([r.body.topup.topup_id, r.body.topup.amount], [id, tp.amount]);
          if (tp.refund) assert.deepEqual(r.body.topup.refund, tp.refund);
        });
      }
      for (const [id, sp] of wl.model.spends) {
        if (sp.ackAt >= lastKill) continue;
        jobs.push(async () => {
          const r = await cK.post(spendPath(sp.cust), sp.body, { key: A(sp) });
          assert.equal(r.status, 200, `spend ${id} acknowledged before a kill: ${r.text}`);
          assert.deepEqual([r.body.spend.spend_id, r.body.spend.from_principal, r.body.spend.from_bonus], [id, sp.from_principal, sp.from_bonus]);
        });
      }
      for (const [id, f] of wl.model.refunds) {
        if (f.ackAt >= lastKill) continue;
        const sp = wl.model.spends.get(f.spend);
        jobs.push(async () => {
          const r = await cK.post(spendRefundPath(sp.cust, f.spend), { refund_id: id, amount: f.amount }, { key: A(sp) });
          assert.equal(r.status, 200, `refund ${id} acknowledged before a kill: ${r.text}`);
          assert.deepEqual([r.body.refund.to_principal, r.body.refund.to_bonus, r.body.refund.to_breakage], [f.to_principal, f.to_bonus, f.to_breakage]);
        });
      }
      for (const [id, a] of wl.model.adjustments) {
        if (a.ackAt >= lastKill) continue;
        jobs.push(async () => {
          const r = await cK.post(adjustmentPath(a.cust), a.body, { key: A(a) });
          assert.equal(r.status, 200, `adjustment ${id} acknowledged before a kill: ${r.text}`);
        });
      }
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < jobs.length) {
          const j = jobs[next++];
          await j();
          replayed += 1;
        }
      }));
      t.diagnostic(`${replayed} operations acknowledged before the last kill answered 200 when sent again`);
      assert.ok(replayed > 50, `operations acknowledged before the kills: ${replayed}`);
    } finally {
      // the last rebuyd stops cleanly; nothing we started keeps running
      const last = current;
      if (!last.original && !last.exit) {
        last.proc.kill('SIGTERM');
        const timer = setTimeout(() => last.proc.kill('SIGKILL'), 45000);
        const info = await last.exited;
        clearTimeout(timer);
        assert.deepEqual(info, { code: 0, signal: null }, `the restarted rebuyd stops cleanly; stderr tail:\n${last.stderr.slice(-3000)}`);
      }
      for (const p of procs) {
        if (!p.exit) { p.proc.kill('SIGKILL'); await p.exited; }
        assertNoSanitizerReport(p.stderr, 'restarted rebuyd');
      }
      assertNoSanitizerReport(svcK.logs(), 'first rebuyd');
      await svcK.stop(current.original ? {} : { signal: null, expectCode: null });
    }
  });
});
