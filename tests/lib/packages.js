// Helpers for packages.test.js (issue 8, /work/notes/packages.md: prepaid
// packages — package plans, packages, redemptions, reversals, refunds of the
// unused part, expiry, the ledger): a client that knows the extension
// members of insufficient_uses and quota_exceeded, the calls of the feature
// sent at a test instant, the shapes of its objects with their invariants,
// expected objects written out, and the ledger checks (SQL on the journal,
// rebuyd verify). Not a test file itself (the name matches none of node
// --test's patterns).
import assert from 'node:assert/strict';
import { assertServerTs, tsMicros } from './harness.js';
import { U } from './tiers.js';
import { walletApi, enc, isInt } from './wallets.js';
import { at, keys } from './wallet-ledger.js';

export { at, keys, enc };

// ---------------------------------------------------------------------------
// The client: harness api() (X-Request-Id, problem shape, the OpenAPI
// contract on every response) through lib/wallets.js's client, plus the
// arithmetic of the extension members of the package problems.

export function packageApi(svc) {
  const c = walletApi(svc);
  async function req(method, p, opts = {}) {
    const res = await c.req(method, p, opts);
    const b = res.body;
    if (res.status >= 400 && b && typeof b === 'object') {
      const ctx = `${method} ${p} -> ${res.status} ${res.text.slice(0, 500)}`;
      if (b.code === 'insufficient_uses') {
        assert.ok(isInt(b.uses_left) && b.uses_left >= 0, `insufficient_uses carries uses_left (integer ≥ 0): ${ctx}`);
      }
      if (b.code === 'quota_exceeded' && /\/packages\//.test(p)) {
        for (const k of ['quota', 'used', 'remaining']) assert.ok(isInt(b[k]) && b[k] >= 0, `quota_exceeded member ${k}: ${ctx}`);
        assert.equal(b.remaining, Math.max(0, b.quota - b.used), `remaining = quota − used: ${ctx}`);
      }
    }
    return res;
  }
  return {
    req,
    get: (p, o) => req('GET', p, o),
    put: (p, body, o = {}) => req('PUT', p, { ...o, body }),
    post: (p, body, o = {}) => req('POST', p, { ...o, body }),
    del: (p, o) => req('DELETE', p, o),
  };
}

// ---------------------------------------------------------------------------
// Paths

export const PLANS = '/v1/package-plans';
export const planPath = (code) => `${PLANS}/${code}`;
export const packagesPath = (cust) => `/v1/customers/${enc(cust)}/packages`;
export const packagePath = (cust, id) => `${packagesPath(cust)}/${enc(id)}`;
export const redemptionsPath = (cust, id) => `${packagePath(cust, id)}/redemptions`;
export const reversalPath = (cust, id, rid) => `${redemptionsPath(cust, id)}/${enc(rid)}/reversal`;
export const refundPath = (cust, id) => `${packagePath(cust, id)}/refund`;

// ---------------------------------------------------------------------------
// Shapes: every member packages.md names, nothing else

export const PLAN_KEYS = ['active', 'code', 'created_at', 'currency', 'max_uses_per_period', 'max_uses_per_visit', 'name',
  'presale', 'price', 'sale', 'uses', 'validity', 'version'];
export const PACKAGE_KEYS = ['breakage', 'currency', 'customer_id', 'deferred', 'max_uses_per_period', 'max_uses_per_visit',
  'name', 'order_id', 'package_id', 'plan', 'plan_version', 'price', 'purchased_at', 'recognised', 'refunded', 'status',
  'uses', 'uses_expired', 'uses_left', 'uses_redeemed', 'uses_refunded', 'valid_until'];
export const REDEMPTION_KEYS = ['at', 'order_id', 'package_id', 'recognised', 'redemption_id', 'reversal_reason', 'reversed_at', 'uses'];
export const REFUND_KEYS = ['amount', 'at', 'uses'];
export const STATUSES = ['active', 'used_up', 'expired', 'refunded'];

function exactMembers(o, list, what) {
  assert.ok(o && typeof o === 'object' && !Array.isArray(o), `${what}: an object, got ${JSON.stringify(o)}`);
  assert.deepEqual(keys(o), [...list].sort(), `${what}: members of ${JSON.stringify(o)}`);
}

/** floor(price × n / uses), exactly (price × n may pass 2^53). */
export const floorShare = (price, n, uses) => Number((BigInt(price) * BigInt(n)) / BigInt(uses));

export function assertPlanShape(p) {
  exactMembers(p, PLAN_KEYS, 'PackagePlan');
  assertServerTs(p.created_at, 'plan created_at');
  assert.ok(isInt(p.version) && p.version >= 1, `version: ${JSON.stringify(p)}`);
  exactMembers(p.validity, ['days', 'until'], 'PackagePlan.validity (both keys always)');
  assert.ok((p.validity.days === null) !== (p.validity.until === null), `validity: exactly one of days / until is null: ${JSON.stringify(p.validity)}`);
  if (p.validity.until !== null) assertServerTs(p.validity.until, 'validity.until');
  if (p.sale !== null) {
    exactMembers(p.sale, ['from', 'until'], 'PackagePlan.sale (both keys when given)');
    for (const k of ['from', 'until']) if (p.sale[k] !== null) assertServerTs(p.sale[k], `sale.${k}`);
  }
  if (p.presale !== null) {
    exactMembers(p.presale, ['price', 'until'], 'PackagePlan.presale');
    assertServerTs(p.presale.until, 'presale.until');
    assert.ok(p.presale.price <= p.price, `presale price ≤ price: ${JSON.stringify(p)}`);
  }
  if (p.max_uses_per_period !== null) exactMembers(p.max_uses_per_period, ['period', 'uses'], 'max_uses_per_period');
}

/**
 * A Package (detailed: with its redemptions): exact members; the two
 * invariants of packages.md (uses = redeemed + left + expired + refunded;
 * price = recognised + deferred + breakage + refunded); each status with
 * its figures; the stated recognition rule on the figures it fixes.
 */
export function assertPackageShape(p, { detailed = false } = {}) {
  exactMembers(p, detailed ? [...PACKAGE_KEYS, 'redemptions'] : PACKAGE_KEYS, detailed ? 'Package (detailed)' : 'Package');
  const what = `package ${JSON.stringify({ ...p, redemptions: undefined })}`;
  for (const k of ['uses', 'uses_redeemed', 'uses_left', 'uses_expired', 'uses_refunded', 'price', 'recognised', 'deferred', 'breakage', 'refunded']) {
    assert.ok(isInt(p[k]) && p[k] >= 0, `${k} is an integer ≥ 0: ${what}`);
  }
  assert.equal(p.uses_redeemed + p.uses_left + p.uses_expired + p.uses_refunded, p.uses, `uses = redeemed + left + expired + refunded: ${what}`);
  assert.equal(p.recognised + p.deferred + p.breakage + p.refunded, p.price, `price = recognised + deferred + breakage + refunded: ${what}`);
  assert.ok(STATUSES.includes(p.status), `status: ${what}`);
  const purchased = assertServerTs(p.purchased_at, 'purchased_at');
  assert.ok(assertServerTs(p.valid_until, 'valid_until') > purchased, `valid_until after purchased_at: ${what}`);
  // recognised = floor(price × n / uses), n = net redeemed uses, in every status
  assert.equal(p.recognised, floorShare(p.price, p.uses_redeemed, p.uses), `recognised = floor(price × uses_redeemed / uses): ${what}`);
  const zero = (list) => list.forEach((k) => assert.equal(p[k], 0, `${p.status}: ${k} is 0: ${what}`));
  if (p.status === 'active') { assert.ok(p.uses_left > 0, `active: uses left: ${what}`); zero(['uses_expired', 'uses_refunded', 'breakage', 'refunded']); }
  if (p.status === 'used_up') zero(['uses_left', 'uses_expired', 'uses_refunded', 'deferred', 'breakage', 'refunded']);
  if (p.status === 'expired') { assert.ok(p.uses_expired > 0, `expired with uses left: ${what}`); zero(['uses_left', 'uses_refunded', 'deferred', 'refunded']); }
  if (p.status === 'refunded') zero(['uses_left', 'uses_expired', 'deferred', 'breakage']);
  if (detailed) {
    p.redemptions.forEach((r, n) => assertRedemptionShape(r, `redemptions[${n}]`));
    const ts = p.redemptions.map((r) => tsMicros(r.at));
    assert.deepEqual(ts, [...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'redemptions in time order');
    const net = p.redemptions.filter((r) => r.reversed_at === null).reduce((s, r) => s + r.uses, 0);
    assert.equal(net, p.uses_redeemed, `uses_redeemed = Σ uses of the redemptions not reversed: ${what}`);
    assert.ok(p.redemptions.every((r) => r.package_id === p.package_id), 'the redemptions are the package\'s');
  }
}

export function assertRedemptionShape(r, what = 'Redemption') {
  exactMembers(r, REDEMPTION_KEYS, what);
  assert.ok(isInt(r.uses) && r.uses >= 1 && isInt(r.recognised) && r.recognised >= 0, `${what}: ${JSON.stringify(r)}`);
  assertServerTs(r.at, `${what}.at`);
  assert.equal(r.reversed_at === null, r.reversal_reason === null, `${what}: reversed_at and reversal_reason are null together: ${JSON.stringify(r)}`);
  if (r.reversed_at !== null) assertServerTs(r.reversed_at, `${what}.reversed_at`);
}

// ---------------------------------------------------------------------------
// Expected objects, written out (timestamps normalised as rebuyd prints them)

/** A plan as its reply should be: defaults of packages.md filled in. */
export const PLAN = (code, version, body, created, currency = 'CNY') => ({
  code, version, name: body.name, uses: body.uses, price: body.price,
  validity: { days: body.validity.days ?? null, until: body.validity.until ? U(body.validity.until) : null },
  max_uses_per_visit: body.max_uses_per_visit ?? null,
  max_uses_per_period: body.max_uses_per_period ?? null,
  sale: body.sale ? { from: body.sale.from ? U(body.sale.from) : null, until: body.sale.until ? U(body.sale.until) : null } : null,
  presale: body.presale ? { price: body.presale.price, until: U(body.presale.until) } : null,
  active: body.active ?? true, currency, created_at: U(created),
});

/**
 * A package just sold: nothing redeemed, all of `price` deferred. Later
 * states are written as this plus the figures that changed.
 */
export const PKG = ({ id, cust, plan, version = 1, name, uses, price, bought, until, order = null, perVisit = null, perPeriod = null, currency = 'CNY' }) => ({
  package_id: id, customer_id: cust, plan, plan_version: version, name, currency,
  uses, uses_redeemed: 0, uses_left: uses, uses_expired: 0, uses_refunded: 0,
  price, recognised: 0, deferred: price, breakage: 0, refunded: 0,
  purchased_at: U(bought), valid_until: U(until), order_id: order,
  max_uses_per_visit: perVisit, max_uses_per_period: perPeriod, status: 'active',
});

/** A Redemption. */
export const RED = (rid, pkg, uses, recognised, atTs, { order = null, reversed = null, reason = null } = {}) => ({
  redemption_id: rid, package_id: pkg, uses, recognised, order_id: order, at: U(atTs),
  reversed_at: reversed === null ? null : U(reversed), reversal_reason: reason,
});

const withoutRedemptions = ({ redemptions: _r, ...p }) => p;

// ---------------------------------------------------------------------------
// Problems

export function assertInsufficientUses(r, usesLeft) {
  assert.equal(r.status, 422, `${r.method} ${r.path}: ${r.text}`);
  assert.deepEqual([r.body.code, r.body.uses_left], ['insufficient_uses', usesLeft], r.text);
}

export function assertQuota(r, quota, used, remaining) {
  assert.equal(r.status, 422, `${r.method} ${r.path}: ${r.text}`);
  assert.deepEqual({ code: r.body.code, quota: r.body.quota, used: r.body.used, remaining: r.body.remaining },
    { code: 'quota_exceeded', quota, used, remaining }, r.text);
}

export function assertNotUsable(r, detail) {
  assert.equal(r.status, 422, `${r.method} ${r.path}: ${r.text}`);
  assert.equal(r.body.code, 'package_not_usable', r.text);
  if (detail) assert.match(r.body.detail, detail, `the detail says which: ${r.text}`);
}

// ---------------------------------------------------------------------------
// Calls, each at a test instant, asserting the status and the shapes

export function packageCalls(c) {
  const expectStatus = (r, status, what) => {
    if (Array.isArray(status)) assert.ok(status.includes(r.status), `${what}: ${r.status} ${r.text}`);
    else assert.equal(r.status, status, `${what}: ${r.text}`);
  };
  const P = {
    async customer(key, id, now) {
      const r = await c.put(`/v1/customers/${enc(id)}`, { name: `Name ${id}` }, at(key, now));
      assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      return id;
    },
    /** PUT /v1/orders/{id} placed at `placedAt` for `cust`. */
    async order(key, id, cust, placedAt, total = 1000) {
      const r = await c.put(`/v1/orders/${enc(id)}`, {
        customer_id: cust, placed_at: placedAt, channel: 'web', currency: 'CNY',
        lines: [{ sku: 'S', category: 'tea', role: 'regular', quantity: 1, unit_price: total }], total,
      }, { key });
      assert.equal(r.status, 201, `PUT order ${id}: ${r.text}`);
      return r.body;
    },
    planRaw: (key, code, body, now) => c.put(planPath(code), body, at(key, now)),
    /** PUT a plan at `now`; asserts the status (or 200/201) and the shape. */
    async plan(key, code, body, now, status = [200, 201]) {
      const r = await P.planRaw(key, code, body, now);
      expectStatus(r, status, `PUT plan ${code} ${JSON.stringify(body)}`);
      assertPlanShape(r.body);
      return r.body;
    },
    buyRaw: (key, cust, body, now, extra) => c.post(packagesPath(cust), body, at(key, now, extra)),
    /** POST a package; asserts the status and shape; returns the Package. */
    async buy(key, cust, body, now, status = 201) {
      const r = await P.buyRaw(key, cust, body, now);
      expectStatus(r, status, `buy ${JSON.stringify(body)} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['package'], r.text);
      assertPackageShape(r.body.package);
      return r.body.package;
    },
    redeemRaw: (key, cust, pkg, body, now, extra) => c.post(redemptionsPath(cust, pkg), body, at(key, now, extra)),
    /** POST a redemption; asserts the status and shapes; returns {redemption, package}. */
    async redeem(key, cust, pkg, body, now, status = 201) {
      const r = await P.redeemRaw(key, cust, pkg, body, now);
      expectStatus(r, status, `redeem ${JSON.stringify(body)} of ${pkg} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['package', 'redemption'], r.text);
      assertRedemptionShape(r.body.redemption);
      assertPackageShape(r.body.package);
      assert.equal(r.body.redemption.package_id, pkg);
      assert.equal(r.body.package.package_id, pkg);
      return r.body;
    },
    reverseRaw: (key, cust, pkg, rid, body, now, extra) => c.post(reversalPath(cust, pkg, rid), body, at(key, now, extra)),
    async reverse(key, cust, pkg, rid, reason, now, status = 201) {
      const r = await P.reverseRaw(key, cust, pkg, rid, { reason }, now);
      expectStatus(r, status, `reverse ${rid} of ${pkg} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['package', 'redemption'], r.text);
      assertRedemptionShape(r.body.redemption);
      assertPackageShape(r.body.package);
      assert.notEqual(r.body.redemption.reversed_at, null, 'a reversed redemption has reversed_at');
      return r.body;
    },
    refundRaw: (key, cust, pkg, body, now, extra) => (body === undefined
      ? c.req('POST', refundPath(cust, pkg), at(key, now, extra))
      : c.post(refundPath(cust, pkg), body, at(key, now, extra))),
    /** POST the refund of the unused part; asserts the status and shapes; returns {package, refund}. */
    async refund(key, cust, pkg, body, now, status = 201) {
      const r = await P.refundRaw(key, cust, pkg, body, now);
      expectStatus(r, status, `refund ${pkg} for ${cust} at ${now}`);
      assert.deepEqual(keys(r.body), ['package', 'refund'], r.text);
      assertPackageShape(r.body.package);
      exactMembers(r.body.refund, REFUND_KEYS, 'refund');
      assertServerTs(r.body.refund.at, 'refund.at');
      assert.equal(r.body.package.status, 'refunded');
      assert.deepEqual([r.body.refund.amount, r.body.refund.uses], [r.body.package.refunded, r.body.package.uses_refunded],
        'refund amount and uses = the package\'s refunded and uses_refunded');
      return r.body;
    },
    /** GET one package (with its redemptions) at `now`; asserts 200 and the shape. */
    async get(key, cust, pkg, now) {
      const r = await c.get(packagePath(cust, pkg), at(key, now));
      assert.equal(r.status, 200, `GET package ${pkg} of ${cust} at ${now}: ${r.text}`);
      assertPackageShape(r.body, { detailed: true });
      return r.body;
    },
    /** GET the package without its redemptions (to compare with a Package). */
    async view(key, cust, pkg, now) {
      return withoutRedemptions(await P.get(key, cust, pkg, now));
    },
    /** GET the list (optionally ?status=) at `now`; asserts 200, shapes and the order; returns the items. */
    async list(key, cust, now, status) {
      const q = status ? `?status=${status}` : '';
      const r = await c.get(`${packagesPath(cust)}${q}`, at(key, now));
      assert.equal(r.status, 200, `GET packages of ${cust}${q} at ${now}: ${r.text}`);
      assert.deepEqual(keys(r.body), ['items'], r.text);
      r.body.items.forEach((p) => assertPackageShape(p));
      const order = r.body.items.map((p) => [tsMicros(p.purchased_at), p.package_id]);
      const sorted = [...order].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
      assert.deepEqual(order, sorted, 'items by purchased_at, package_id');
      if (status) assert.ok(r.body.items.every((p) => p.status === status), `?status=${status} lists only those`);
      return r.body.items;
    },
  };
  return P;
}

// ---------------------------------------------------------------------------
// The ledger, read with SQL

const UTC_US = (col) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The journal rows of one package, oldest first:
 * [[kind, at (as rfc3339() prints it), {account: amount}]].
 */
export async function packageJournal(db, shopId, packageId) {
  const r = await db.query(`
    SELECT j.kind, ${UTC_US('j.at')} AS at, json_object_agg(e.account, e.amount ORDER BY e.account) AS entries
      FROM journal j
      JOIN packages p ON p.seq = j.package_seq
      JOIN journal_entries e ON e.journal_seq = j.seq
     WHERE p.shop_id = $1 AND p.package_id = $2
     GROUP BY j.seq, j.kind, j.at
     ORDER BY j.at, j.seq`, [shopId, packageId]);
  return r.rows.map((x) => [x.kind, x.at, Object.fromEntries(Object.entries(x.entries).map(([k, v]) => [k, Number(v)]))]);
}

/** A journal row as packageJournal gives it. */
export const JR = (kind, atTs, entries) => [kind, U(atTs), entries];

/**
 * The journal of a package agrees with its figures (as the API shows them):
 * Σ package_deferred = deferred, Σ revenue = recognised, Σ breakage =
 * breakage, −Σ cash = price − refunded; every row sums to zero.
 */
export async function assertJournalAgrees(db, shopId, pkg) {
  const rows = await packageJournal(db, shopId, pkg.package_id);
  const sum = (acct) => rows.reduce((s, [, , e]) => s + (e[acct] ?? 0), 0);
  for (const [kind, atTs, e] of rows) {
    assert.equal(Object.values(e).reduce((s, x) => s + x, 0), 0, `${pkg.package_id}: journal row ${kind} at ${atTs} sums to zero: ${JSON.stringify(e)}`);
    assert.ok(Object.keys(e).every((a) => ['package_deferred', 'cash', 'revenue', 'breakage'].includes(a)),
      `${pkg.package_id}: a package's journal touches package_deferred, cash, revenue, breakage only: ${JSON.stringify(e)}`);
  }
  assert.deepEqual({
    deferred: sum('package_deferred'), recognised: sum('revenue'), breakage: sum('breakage'), cash: 0 - sum('cash'),
  }, {
    deferred: pkg.deferred, recognised: pkg.recognised, breakage: pkg.breakage, cash: pkg.price - pkg.refunded,
  }, `${pkg.package_id}: the journal sums = the package's figures; journal:\n${rows.map((x) => JSON.stringify(x)).join('\n')}`);
  return rows;
}

/**
 * Whole-database ledger checks with SQL: every journal row sums to zero;
 * every row belongs to exactly one of a wallet, a package or a coupon; every
 * package's cached deferred equals the Σ of its package_deferred entries.
 */
export async function assertLedgerSums(db) {
  const unbalanced = await db.query(`
    SELECT j.kind, j.ref, sum(e.amount)::text AS sum
      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
     GROUP BY j.seq, j.kind, j.ref HAVING sum(e.amount) <> 0`);
  assert.deepEqual(unbalanced.rows, [], 'every journal row sums to zero');
  const owners = await db.query(`SELECT j.kind, j.ref FROM journal j WHERE num_nonnulls(j.wallet_seq, j.package_seq, j.coupon_seq) <> 1`);
  assert.deepEqual(owners.rows, [], 'every journal row belongs to exactly one of a wallet, a package or a coupon');
  const differs = await db.query(`
    SELECT p.package_id, p.deferred::text AS cached, coalesce(x.s, 0)::text AS journal
      FROM packages p
      LEFT JOIN LATERAL (SELECT sum(e.amount) AS s FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
                          WHERE j.package_seq = p.seq AND e.account = 'package_deferred') x ON true
     WHERE p.deferred <> coalesce(x.s, 0)`);
  assert.deepEqual(differs.rows, [], 'every package\'s cached deferred = Σ of its journal\'s package_deferred');
  const n = await db.query('SELECT count(*)::int AS n FROM packages');
  return n.rows[0].n;
}

/** [[customer id, package_id]] of every package of a shop, by SQL (not through the API that is tested). */
export async function shopPackages(db, shopId) {
  const r = await db.query(`
    SELECT c.id AS customer_id, p.package_id FROM packages p JOIN customers c ON c.seq = p.customer_seq
     WHERE p.shop_id = $1 ORDER BY c.id, p.package_id`, [shopId]);
  return r.rows.map((x) => [x.customer_id, x.package_id]);
}

/** rebuyd verify over the whole database: exit 0, "0 differences". */
export async function assertVerify(svc) {
  const v = await svc.cli(['verify'], { timeoutMs: 120_000 });
  assert.equal(v.code, 0, `rebuyd verify exit status; stdout:\n${v.stdout.slice(-3000)}\nstderr:\n${v.stderr.slice(-3000)}`);
  assert.match(v.stdout, /(^|\n)0 differences\n?$/, `rebuyd verify output:\n${v.stdout.slice(-3000)}`);
}

/** Runs fn(0) … fn(n − 1), at most `lanes` at a time; the results in order of i. */
export async function inLanes(n, lanes, fn) {
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
