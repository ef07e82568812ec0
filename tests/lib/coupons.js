// Helpers for coupons.test.js and package-metrics.test.js (issue 8,
// /work/notes/packages.md: coupon packs, grants, coupons and their
// redemption; the package, coupon and holder reports): a client that knows
// the extension member of below_minimum_spend (and insufficient_uses), the
// calls of the feature sent at a test instant, the shapes of its objects
// with their invariants (a coupon's status follows from its fields and the
// instant it was read at), expected objects written out in full, small
// package calls for building report histories, and the shapes of the
// reports. Not a test file itself (the name matches none of node --test's
// patterns).
import assert from 'node:assert/strict';
import { assertServerTs, tsMicros } from './harness.js';
import { validateResponse } from './contract.js';
import { U } from './tiers.js';
import { walletApi, enc, isInt, offerPath, topupPath, atNow } from './wallets.js';

export { enc, isInt, offerPath, topupPath, atNow };

export const keys = (o) => Object.keys(o).sort();

// ---------------------------------------------------------------------------
// The client: lib/wallets.js's (harness api(): X-Request-Id, problem shape,
// the OpenAPI contract on every response; the insufficient_funds members),
// plus the extension members of the coupon and package problems.

export function couponApi(svc, { violations } = {}) {
  const c = walletApi(svc);
  async function req(method, p, opts = {}) {
    // with a violations list, a response that breaks the OpenAPI contract is recorded there instead of
    // failing the call (for building a history whose reports are tested: one bad reply must not hide them)
    const soft = violations && opts.validate !== false;
    const res = await c.req(method, p, soft ? { ...opts, validate: false } : opts);
    if (soft) {
      try {
        validateResponse({ method, path: p, status: res.status, headers: res.headers, body: res.text });
      } catch (e) {
        violations.push(`${method} ${p} -> ${res.status}: ${e.message.split('\n').slice(0, 6).join('\n')}\nbody: ${res.text.slice(0, 600)}`);
      }
    }
    const b = res.body;
    if (res.status >= 400 && b && typeof b === 'object') {
      const ctx = `${method} ${p} -> ${res.status} ${res.text.slice(0, 500)}`;
      if (b.code === 'below_minimum_spend') assert.ok(isInt(b.min_spend) && b.min_spend >= 0, `below_minimum_spend carries min_spend: ${ctx}`);
      if (b.code === 'insufficient_uses') assert.ok(isInt(b.uses_left) && b.uses_left >= 0, `insufficient_uses carries uses_left: ${ctx}`);
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

/** Request options: key, test instant (none: the real clock), extra members merged in. */
export const at = (key, now, extra = {}) => (now ? atNow(key, now, extra) : { key, ...extra });

// ---------------------------------------------------------------------------
// Paths

export const PACKS = '/v1/coupon-packs';
export const packPath = (code) => `${PACKS}/${code}`;
export const grantsPath = (cust) => `/v1/customers/${enc(cust)}/coupon-grants`;
export const grantPath = (cust, gid) => `${grantsPath(cust)}/${enc(gid)}`;
export const couponsPath = (cust) => `/v1/customers/${enc(cust)}/coupons`;
export const redeemPath = (cust, gid, n) => `${grantPath(cust, gid)}/coupons/${n}/redeem`;

export const planPath = (code) => `/v1/package-plans/${code}`;
export const packagesPath = (cust) => `/v1/customers/${enc(cust)}/packages`;
export const packagePath = (cust, id) => `${packagesPath(cust)}/${enc(id)}`;
export const pkgRedemptionsPath = (cust, id) => `${packagePath(cust, id)}/redemptions`;
export const pkgReversalPath = (cust, id, rid) => `${pkgRedemptionsPath(cust, id)}/${enc(rid)}/reversal`;
export const pkgRefundPath = (cust, id) => `${packagePath(cust, id)}/refund`;

export const BREAKAGE = '/v1/metrics/package-breakage';
export const COUPON_REPORT = '/v1/metrics/coupon-redemption';
export const PKG_HOLDERS = '/v1/metrics/package-holders';
export const LIABILITY = '/v1/metrics/prepaid-liability';

// ---------------------------------------------------------------------------
// Shapes: every member packages.md names, nothing else

export const PACK_KEYS = ['active', 'amount', 'code', 'count', 'created_at', 'currency', 'expires_after_months', 'min_spend', 'name', 'validity', 'version'];
export const GRANT_KEYS = ['coupons', 'customer_id', 'grant_id', 'issued_at', 'pack', 'pack_version', 'source', 'topup_id'];
export const COUPON_KEYS = ['amount', 'grant_id', 'min_spend', 'number', 'order_amount', 'order_id', 'pack', 'redeemed_at', 'status', 'valid_from', 'valid_until'];
export const COUPON_STATUSES = ['upcoming', 'valid', 'redeemed', 'expired', 'cancelled'];

export function exactMembers(o, list, what) {
  assert.ok(o && typeof o === 'object' && !Array.isArray(o), `${what}: an object, got ${JSON.stringify(o)}`);
  assert.deepEqual(keys(o), [...list].sort(), `${what}: members of ${JSON.stringify(o)}`);
}

export function assertPackShape(p) {
  exactMembers(p, PACK_KEYS, 'CouponPack');
  assertServerTs(p.created_at, 'pack created_at');
  assert.ok(isInt(p.version) && p.version >= 1, `version: ${JSON.stringify(p)}`);
  assert.ok(isInt(p.count) && p.count >= 1 && p.count <= 120, `count: ${JSON.stringify(p)}`);
  assert.ok(isInt(p.amount) && p.amount >= 1 && isInt(p.min_spend) && p.min_spend >= 0, `amount, min_spend: ${JSON.stringify(p)}`);
  assert.ok(['in_order', 'own_month'].includes(p.validity), `validity: ${JSON.stringify(p)}`);
  assert.ok(p.expires_after_months === null || (isInt(p.expires_after_months) && p.expires_after_months >= 1), `expires_after_months: ${JSON.stringify(p)}`);
}

/**
 * A Coupon: exact members; redeemed_at, order_id and order_amount are set
 * exactly when it is redeemed; and, when the instant it was read at is
 * given, its status is the one packages.md derives from its fields:
 * redeemed / cancelled as stored, else expired if valid_until ≤ now, else
 * upcoming if valid_from is null or > now, else valid.
 */
export function assertCouponShape(x, now, what = 'Coupon') {
  exactMembers(x, COUPON_KEYS, what);
  const ctx = `${what}: ${JSON.stringify(x)}`;
  assert.ok(isInt(x.number) && x.number >= 1, ctx);
  assert.ok(isInt(x.amount) && x.amount >= 1 && isInt(x.min_spend) && x.min_spend >= 0, ctx);
  assert.ok(COUPON_STATUSES.includes(x.status), `status: ${ctx}`);
  const from = x.valid_from === null ? null : assertServerTs(x.valid_from, `${what}.valid_from`);
  const until = x.valid_until === null ? null : assertServerTs(x.valid_until, `${what}.valid_until`);
  const redeemed = x.status === 'redeemed';
  assert.equal(x.redeemed_at !== null, redeemed, `redeemed_at is set exactly when redeemed: ${ctx}`);
  assert.equal(x.order_id !== null, redeemed, `order_id is set exactly when redeemed: ${ctx}`);
  assert.equal(x.order_amount !== null, redeemed, `order_amount is set exactly when redeemed: ${ctx}`);
  if (redeemed) {
    const t = assertServerTs(x.redeemed_at, `${what}.redeemed_at`);
    assert.ok(isInt(x.order_amount) && x.order_amount >= x.min_spend, `order_amount ≥ min_spend: ${ctx}`);
    assert.ok(from !== null && t >= from && (until === null || t < until), `redeemed within its validity: ${ctx}`);
  }
  if (now !== undefined && !['redeemed', 'cancelled'].includes(x.status)) {
    const n = tsMicros(U(now));
    let expect;
    if (until !== null && until <= n) expect = 'expired';
    else if (from === null || from > n) expect = 'upcoming';
    else expect = 'valid';
    assert.equal(x.status, expect, `status at ${now} follows from valid_from / valid_until: ${ctx}`);
  }
}

/** A Grant: exact members; coupons 1..n in order, each of the grant's pack. */
export function assertGrantShape(g, now, what = 'Grant') {
  exactMembers(g, GRANT_KEYS, what);
  assertServerTs(g.issued_at, `${what}.issued_at`);
  assert.ok(['grant', 'topup'].includes(g.source), `${what}.source: ${g.source}`);
  assert.equal(g.source === 'topup', g.topup_id !== null, `${what}: topup_id is set exactly for a top-up's grant`);
  if (g.source === 'topup') assert.equal(g.grant_id, `topup:${g.topup_id}`, `${what}: grant_id = "topup:" + topup_id`);
  assert.ok(isInt(g.pack_version) && g.pack_version >= 1, what);
  assert.ok(Array.isArray(g.coupons) && g.coupons.length >= 1, `${what}: coupons`);
  g.coupons.forEach((x, i) => {
    assertCouponShape(x, now, `${what}.coupons[${i}]`);
    assert.equal(x.number, i + 1, `${what}: coupons numbered 1..count in order`);
    assert.equal(x.grant_id, g.grant_id, `${what}: each coupon names its grant`);
    assert.equal(x.pack, g.pack, `${what}: each coupon names the grant's pack`);
  });
}

// ---------------------------------------------------------------------------
// Expected objects, written out (timestamps normalised as rebuyd prints them)

/** A pack as its reply should be: the defaults of packages.md filled in. */
export const PACK = (code, version, body, created, currency = 'CNY') => ({
  code, version, name: body.name, count: body.count, amount: body.amount, min_spend: body.min_spend ?? 0,
  validity: body.validity, expires_after_months: body.expires_after_months ?? null, active: body.active ?? true,
  currency, created_at: U(created),
});

/** A coupon: [from, until] (null allowed), status; red = {at, order, amount} when redeemed. */
export const CPN = (grantId, number, pack, amount, minSpend, from, until, status, red = null) => ({
  grant_id: grantId, number, pack, amount, min_spend: minSpend,
  valid_from: from === null ? null : U(from), valid_until: until === null ? null : U(until), status,
  redeemed_at: red ? U(red.at) : null, order_id: red ? red.order : null, order_amount: red ? red.amount : null,
});

/** A grant with its coupons. */
export const GRANT = (grantId, cust, pack, version, issued, coupons, topupId = null) => ({
  grant_id: grantId, customer_id: cust, pack, pack_version: version, source: topupId === null ? 'grant' : 'topup',
  topup_id: topupId, issued_at: U(issued), coupons,
});

/** [number, status] of each coupon. */
export const statuses = (coupons) => coupons.map((x) => [x.number, x.status]);

// ---------------------------------------------------------------------------
// Coupon calls, each at a test instant (none: the real clock), asserting the status and the shapes

export function couponCalls(c) {
  const expectStatus = (r, status, what) => {
    if (Array.isArray(status)) assert.ok(status.includes(r.status), `${what}: ${r.status} ${r.text}`);
    else assert.equal(r.status, status, `${what}: ${r.text}`);
  };
  const k = {
    async customer(key, id) {
      const r = await c.put(`/v1/customers/${enc(id)}`, { name: `Name ${id}` }, { key });
      assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      return id;
    },
    /** PUT a pack; asserts the status (default 200 or 201) and the shape; returns the body. */
    async pack(key, code, body, now, status = [200, 201]) {
      const r = await c.put(packPath(code), body, at(key, now));
      expectStatus(r, status, `PUT coupon pack ${code}`);
      assertPackShape(r.body);
      return r.body;
    },
    grantRaw: (key, cust, body, now, extra) => c.post(grantsPath(cust), body, at(key, now, extra)),
    /** POST a grant; asserts the status and the shapes; returns the Grant. */
    async grant(key, cust, body, now, status = 201) {
      const r = await k.grantRaw(key, cust, body, now);
      expectStatus(r, status, `grant ${JSON.stringify(body)} to ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['grant'], r.text);
      assertGrantShape(r.body.grant, now);
      return r.body.grant;
    },
    /** GET a grant at `now`; asserts 200 and the shapes (statuses as of now). */
    async getGrant(key, cust, gid, now) {
      const r = await c.get(grantPath(cust, gid), at(key, now));
      assert.equal(r.status, 200, `GET grant ${gid} of ${cust} at ${now}: ${r.text}`);
      assertGrantShape(r.body, now);
      return r.body;
    },
    /** GET the coupons list at `now` (status filter optional); asserts 200, shapes, and the order. */
    async coupons(key, cust, now, status) {
      const r = await c.get(`${couponsPath(cust)}${status ? `?status=${status}` : ''}`, at(key, now));
      assert.equal(r.status, 200, `GET coupons of ${cust} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['items'], r.text);
      r.body.items.forEach((x, i) => assertCouponShape(x, now, `items[${i}]`));
      if (status) assert.ok(r.body.items.every((x) => x.status === status), `?status=${status}: only those`);
      return r.body.items;
    },
    redeemRaw: (key, cust, gid, n, body, now, extra) => c.post(redeemPath(cust, gid, n), body, at(key, now, extra)),
    /** POST a redemption; asserts the status and the shape; returns the Coupon. */
    async redeem(key, cust, gid, n, body, now, status = 201) {
      const r = await k.redeemRaw(key, cust, gid, n, body, now);
      expectStatus(r, status, `redeem coupon ${n} of ${gid} for ${cust} at ${now} with ${JSON.stringify(body)}`);
      assert.deepEqual(keys(r.body), ['coupon'], r.text);
      assertCouponShape(r.body.coupon, now);
      assert.equal(r.body.coupon.status, 'redeemed', r.text);
      assert.deepEqual([r.body.coupon.grant_id, r.body.coupon.number, r.body.coupon.order_id, r.body.coupon.order_amount],
        [gid, Number(n), body.order_id, body.order_amount], r.text);
      return r.body.coupon;
    },
  };
  return k;
}

// ---------------------------------------------------------------------------
// Package calls (for the report histories), each at a test instant, asserting success

const PACKAGE_KEYS = ['breakage', 'currency', 'customer_id', 'deferred', 'max_uses_per_period', 'max_uses_per_visit',
  'name', 'order_id', 'package_id', 'plan', 'plan_version', 'price', 'purchased_at', 'recognised', 'refunded', 'status',
  'uses', 'uses_expired', 'uses_left', 'uses_redeemed', 'uses_refunded', 'valid_until'];

/** floor(price × n / uses), exactly. */
export const floorShare = (price, n, uses) => Number((BigInt(price) * BigInt(n)) / BigInt(uses));

/** A Package (list form): exact members and the two invariants and the recognition rule of packages.md. */
export function assertPackage(p, what = 'Package') {
  exactMembers(p, PACKAGE_KEYS, what);
  const ctx = `${what}: ${JSON.stringify(p)}`;
  assert.equal(p.uses_redeemed + p.uses_left + p.uses_expired + p.uses_refunded, p.uses, `uses add up: ${ctx}`);
  assert.equal(p.recognised + p.deferred + p.breakage + p.refunded, p.price, `price adds up: ${ctx}`);
  assert.equal(p.recognised, floorShare(p.price, p.uses_redeemed, p.uses), `recognised = floor(price × n / uses): ${ctx}`);
  assertServerTs(p.purchased_at, `${what}.purchased_at`);
  assertServerTs(p.valid_until, `${what}.valid_until`);
}

/** The figures of a package that the reports add up. */
export const pkgFigures = (p) => ({
  status: p.status, uses: p.uses, uses_redeemed: p.uses_redeemed, uses_left: p.uses_left, uses_expired: p.uses_expired,
  uses_refunded: p.uses_refunded, price: p.price, recognised: p.recognised, deferred: p.deferred, breakage: p.breakage,
  refunded: p.refunded,
});

export function packageCalls(c) {
  return {
    async plan(key, code, body, now) {
      const r = await c.put(planPath(code), body, at(key, now));
      assert.ok([200, 201].includes(r.status), `PUT package plan ${code}: ${r.status} ${r.text}`);
      return r.body;
    },
    /** Sells a plan at `now`; asserts 201 and the price paid; returns the Package. */
    async buy(key, cust, packageId, plan, now, price) {
      const r = await c.post(packagesPath(cust), { package_id: packageId, plan }, at(key, now));
      assert.equal(r.status, 201, `sell ${plan} to ${cust} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['package'], r.text);
      assertPackage(r.body.package);
      assert.equal(r.body.package.purchased_at, U(now), 'sold at the test instant');
      if (price !== undefined) assert.equal(r.body.package.price, price, `price paid for ${packageId}`);
      return r.body.package;
    },
    /** Redeems `uses` at `now`; asserts 201 and that the redemption recognised `recognised` (when given). */
    async redeem(key, cust, packageId, redemptionId, uses, now, recognised) {
      const r = await c.post(pkgRedemptionsPath(cust, packageId), { redemption_id: redemptionId, uses }, at(key, now));
      assert.equal(r.status, 201, `redeem ${uses} of ${packageId} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['package', 'redemption'], r.text);
      assertPackage(r.body.package);
      if (recognised !== undefined) assert.equal(r.body.redemption.recognised, recognised, `${redemptionId} recognises ${recognised}: ${r.text}`);
      return r.body;
    },
    async reverse(key, cust, packageId, redemptionId, reason, now) {
      const r = await c.post(pkgReversalPath(cust, packageId, redemptionId), { reason }, at(key, now));
      assert.equal(r.status, 201, `reverse ${redemptionId} at ${now}: ${r.text}`);
      assertPackage(r.body.package);
      return r.body;
    },
    /** Refunds the unused part at `now`; asserts 201 and the amount. */
    async refund(key, cust, packageId, now, amount) {
      const r = await c.post(pkgRefundPath(cust, packageId), {}, at(key, now));
      assert.equal(r.status, 201, `refund ${packageId} at ${now}: ${r.text}`);
      assertPackage(r.body.package);
      if (amount !== undefined) assert.equal(r.body.refund.amount, amount, `refund of ${packageId}: ${r.text}`);
      return r.body;
    },
    /** GET the customer's packages at `now`; asserts 200 and shapes. */
    async list(key, cust, now) {
      const r = await c.get(packagesPath(cust), at(key, now));
      assert.equal(r.status, 200, `GET packages of ${cust} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['items'], r.text);
      r.body.items.forEach((p, i) => assertPackage(p, `items[${i}]`));
      return r.body.items;
    },
  };
}

// ---------------------------------------------------------------------------
// Reports

/** {numerator, denominator, rate}: rate = numerator / denominator, 4 decimals half up, null when the denominator is 0. */
export const RATE = (numerator, denominator, rate) => ({ numerator, denominator, rate });

/** Checks that a rate object's rate is its own numerator / denominator (4 decimals, half up). */
export function assertRateConsistent(r, what) {
  exactMembers(r, ['denominator', 'numerator', 'rate'], what);
  assert.ok(isInt(r.numerator) && isInt(r.denominator) && r.numerator >= 0 && r.denominator >= 0, `${what}: ${JSON.stringify(r)}`);
  if (r.denominator === 0) { assert.equal(r.rate, null, `${what}: null when the denominator is 0`); return; }
  // half up at 4 decimals, exactly: floor((n × 10^4 × 2 + d) / (2d)) / 10^4
  const n = BigInt(r.numerator);
  const d = BigInt(r.denominator);
  const q = (n * 20000n + d) / (2n * d);
  assert.equal(r.rate, Number(q) / 10000, `${what}: rate = numerator / denominator, 4 decimals half up: ${JSON.stringify(r)}`);
}

export const BREAKAGE_FIG_KEYS = ['packages_sold', 'uses_sold', 'uses_redeemed', 'uses_expired', 'uses_refunded', 'uses_outstanding',
  'usage_rate', 'breakage_rate', 'cash_received', 'revenue_recognised', 'breakage_revenue', 'refunded', 'deferred'];

/** A plan's (or the totals') figures written out: uses [sold, redeemed, expired, refunded, outstanding], money [cash, rec, brk, ref, def]. */
export const BRK = (packages, [sold, redeemed, expired, refunded, outstanding], usageRate, breakageRate, [cash, rec, brk, ref, def]) => ({
  packages_sold: packages, uses_sold: sold, uses_redeemed: redeemed, uses_expired: expired, uses_refunded: refunded,
  uses_outstanding: outstanding,
  usage_rate: RATE(redeemed, sold, usageRate), breakage_rate: RATE(expired, sold, breakageRate),
  cash_received: cash, revenue_recognised: rec, breakage_revenue: brk, refunded: ref, deferred: def,
});

function assertBreakageFigures(f, what) {
  const ctx = `${what}: ${JSON.stringify(f)}`;
  for (const k of BREAKAGE_FIG_KEYS) if (!k.endsWith('_rate')) assert.ok(isInt(f[k]) && f[k] >= 0, `${k} is an integer ≥ 0: ${ctx}`);
  assert.equal(f.uses_redeemed + f.uses_expired + f.uses_refunded + f.uses_outstanding, f.uses_sold, `uses add up: ${ctx}`);
  assert.equal(f.revenue_recognised + f.breakage_revenue + f.refunded + f.deferred, f.cash_received, `money adds up: ${ctx}`);
  assertRateConsistent(f.usage_rate, `${what}.usage_rate`);
  assertRateConsistent(f.breakage_rate, `${what}.breakage_rate`);
  assert.deepEqual([f.usage_rate.numerator, f.usage_rate.denominator], [f.uses_redeemed, f.uses_sold], `usage_rate = uses_redeemed / uses_sold: ${ctx}`);
  assert.deepEqual([f.breakage_rate.numerator, f.breakage_rate.denominator], [f.uses_expired, f.uses_sold], `breakage_rate = uses_expired / uses_sold: ${ctx}`);
}

/** GET /v1/metrics/package-breakage reply: members, the identities, totals = Σ plans, plans by code. */
export function assertBreakageShape(b) {
  exactMembers(b, ['definition', 'plans', 'totals'], 'package-breakage reply');
  exactMembers(b.definition, ['as_of', 'currency', 'timezone'], 'definition');
  assert.match(b.definition.as_of, /^\d{4}-\d{2}-\d{2}$/);
  assert.ok(Array.isArray(b.plans));
  b.plans.forEach((p, i) => {
    exactMembers(p, ['plan', ...BREAKAGE_FIG_KEYS], `plans[${i}]`);
    assertBreakageFigures(p, `plans[${i}]`);
  });
  exactMembers(b.totals, BREAKAGE_FIG_KEYS, 'totals');
  assertBreakageFigures(b.totals, 'totals');
  const codes = b.plans.map((p) => p.plan);
  assert.deepEqual(codes, [...codes].sort(), 'plans by code');
  for (const k of BREAKAGE_FIG_KEYS) {
    if (k.endsWith('_rate')) continue;
    assert.equal(b.totals[k], b.plans.reduce((s, p) => s + p[k], 0), `totals.${k} = Σ plans`);
  }
}

export const COUNT_KEYS = ['issued', 'redeemed', 'expired', 'cancelled', 'outstanding', 'redemption_rate'];
export const MONTH_KEYS = ['month', 'valid', 'redeemed', 'expired', 'outstanding', 'redemption_rate'];

/** Coupon counts written out: [issued, redeemed, expired, cancelled, outstanding], rate. */
export const CNT = ([issued, redeemed, expired, cancelled, outstanding], rate) => ({
  issued, redeemed, expired, cancelled, outstanding, redemption_rate: RATE(redeemed, issued, rate),
});
/** A by_month entry written out. */
export const MON = (month, [valid, redeemed, expired, outstanding], rate) => ({
  month, valid, redeemed, expired, outstanding, redemption_rate: RATE(redeemed, valid, rate),
});

function assertCounts(x, what) {
  const ctx = `${what}: ${JSON.stringify(x)}`;
  for (const k of ['issued', 'redeemed', 'expired', 'cancelled', 'outstanding']) assert.ok(isInt(x[k]) && x[k] >= 0, `${k}: ${ctx}`);
  assert.equal(x.outstanding, x.issued - x.redeemed - x.expired - x.cancelled, `outstanding = issued − redeemed − expired − cancelled: ${ctx}`);
  assertRateConsistent(x.redemption_rate, `${what}.redemption_rate`);
  assert.deepEqual([x.redemption_rate.numerator, x.redemption_rate.denominator], [x.redeemed, x.issued], `rate = redeemed / issued: ${ctx}`);
}

/** GET /v1/metrics/coupon-redemption reply: members, identities, by_number sums to the pack, months ascending. */
export function assertCouponReportShape(b) {
  exactMembers(b, ['definition', 'packs'], 'coupon-redemption reply');
  exactMembers(b.definition, ['as_of', 'currency', 'timezone'], 'definition');
  const codes = b.packs.map((p) => p.pack);
  assert.deepEqual(codes, [...codes].sort(), 'packs by code');
  b.packs.forEach((p, i) => {
    const what = `packs[${i}] (${p.pack})`;
    exactMembers(p, ['pack', ...COUNT_KEYS, 'promotion_cost', 'by_number', 'by_month'], what);
    assertCounts(p, what);
    assert.ok(isInt(p.promotion_cost) && p.promotion_cost >= 0, what);
    p.by_number.forEach((n, j) => {
      exactMembers(n, ['number', ...COUNT_KEYS], `${what}.by_number[${j}]`);
      assertCounts(n, `${what}.by_number[${j}]`);
    });
    const nums = p.by_number.map((n) => n.number);
    assert.deepEqual(nums, [...nums].sort((a, b2) => a - b2), `${what}: by_number by number`);
    for (const k of ['issued', 'redeemed', 'expired', 'cancelled', 'outstanding']) {
      assert.equal(p.by_number.reduce((s, n) => s + n[k], 0), p[k], `${what}: Σ by_number.${k} = ${k}`);
    }
    p.by_month.forEach((m, j) => {
      const w = `${what}.by_month[${j}]`;
      exactMembers(m, MONTH_KEYS, w);
      assert.match(m.month, /^\d{4}-\d{2}$/, w);
      assertRateConsistent(m.redemption_rate, `${w}.redemption_rate`);
      assert.deepEqual([m.redemption_rate.numerator, m.redemption_rate.denominator], [m.redeemed, m.valid], `${w}: rate = redeemed / valid`);
      assert.ok(m.redeemed + m.expired + m.outstanding <= m.valid, `${w}: redeemed + expired + outstanding ≤ valid: ${JSON.stringify(m)}`);
    });
    const months = p.by_month.map((m) => m.month);
    assert.deepEqual(months, [...months].sort(), `${what}: by_month by month`);
    assert.ok(p.by_month.reduce((s, m) => s + m.redeemed, 0) === p.redeemed, `${what}: every redeemed coupon's validity began in some month`);
  });
}

export const HOLDER_GROUP_KEYS = ['customers', 'days_between_visits', 'group', 'intervals', 'repeat_visitors', 'visits', 'visits_per_customer'];
/** A holders group written out: [customers, visits, per customer, repeat, intervals, days between]. */
export const HG = (group, [customers, visits, perCustomer, repeat, intervals, days]) => ({
  group, customers, visits, visits_per_customer: perCustomer, repeat_visitors: repeat, intervals, days_between_visits: days,
});

export function assertHoldersShape(b) {
  exactMembers(b, ['definition', 'holders', 'non_holders'], 'package-holders reply');
  exactMembers(b.definition, ['as_of', 'caveat', 'from', 'rule', 'timezone', 'to'], 'definition');
  assert.equal(typeof b.definition.caveat, 'string');
  assert.ok(b.definition.caveat.length > 0, 'a caveat');
  for (const g of ['holders', 'non_holders']) {
    const x = b[g];
    exactMembers(x, HOLDER_GROUP_KEYS, g);
    assert.equal(x.group, g);
    assert.ok(x.repeat_visitors <= x.customers && x.visits >= x.customers, `${g}: ${JSON.stringify(x)}`);
    assert.equal(x.intervals, x.visits - x.customers, `${g}: intervals = Σ (visits − 1) = visits − customers: ${JSON.stringify(x)}`);
  }
}
