// Helpers shared by tiers.test.js, benefits.test.js and
// membership-metrics.test.js (tiers.md): the test clock, instants written
// exactly, orders, refunds and cancellations sent "at" a test instant, and
// the shapes of the new objects. Not a test file itself (the name matches
// none of node --test's patterns).
//
// The test clock (tiers.md §0): rebuyd runs with --test-clock and a request
// carrying `Rebuy-Test-Now: <RFC 3339>` uses that instant as "now" for
// memberships, tiers and benefits. Orders keep their own placed_at; an order
// sent at test instant T re-evaluates its customer's tier at T.
import assert from 'node:assert/strict';
import { assertServerTs, tsMicros } from './harness.js';

export const NOW_HEADER = 'Rebuy-Test-Now';
export const DAY_US = 86400n * 1000000n;
export const HOUR_US = 3600n * 1000000n;

/** Request options for key `key` at test instant `t` (extra members merged in). */
export const at = (key, t, extra = {}) => ({ key, ...extra, headers: { [NOW_HEADER]: t, ...(extra.headers || {}) } });

/** An instant in µs since the epoch (BigInt) written as rfc3339() prints it: 6 fractional digits, Z. */
export function isoUs(us) {
  const secs = us / 1000000n;
  let frac = us % 1000000n;
  let s = secs;
  if (frac < 0n) { frac += 1000000n; s -= 1n; }
  const base = new Date(Number(s) * 1000).toISOString().slice(0, 19);
  return `${base}.${String(frac).padStart(6, '0')}Z`;
}

/** Any RFC 3339 instant → the exact text rebuyd prints for it ("2031-03-31T16:00:00.000000Z"). */
export const U = (s) => isoUs(tsMicros(s));
/** U(s) shifted by whole days / hours / seconds / microseconds. */
export const plusDays = (s, n) => isoUs(tsMicros(s) + BigInt(n) * DAY_US);
export const plusHours = (s, n) => isoUs(tsMicros(s) + BigInt(n) * HOUR_US);
export const plusSecs = (s, n) => isoUs(tsMicros(s) + BigInt(n) * 1000000n);
export const plusUs = (s, n) => isoUs(tsMicros(s) + BigInt(n));

/** Asserts a server timestamp equals `expected` exactly (µs) and is printed in the service's format. */
export function assertTs(actual, expected, what) {
  assertServerTs(actual, what);
  assert.equal(actual, U(expected), `${what}: ${actual} should be ${U(expected)}`);
}

/** A one-line order of `total` for `customer`, placed at `placedAt`. */
export function orderBody(customer, placedAt, total, { channel = 'web', category = 'tea' } = {}) {
  return {
    customer_id: customer,
    placed_at: placedAt,
    channel,
    currency: 'CNY',
    lines: [{ sku: `SKU-${category}`, category, role: 'regular', quantity: 1, unit_price: total }],
    total,
  };
}

const enc = encodeURIComponent;

/** Customer, order and membership calls through client c, each sent at a test instant and asserting success. */
export function calls(c) {
  return {
    async customer(key, id, now) {
      const r = await c.put(`/v1/customers/${enc(id)}`, { name: `Name ${id}` }, now ? at(key, now) : { key });
      assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      return id;
    },
    /** PUT /v1/orders/{id} at test instant `now` (default: placedAt); asserts 201. */
    async order(key, id, customer, placedAt, total, now = placedAt, o = {}) {
      const r = await c.put(`/v1/orders/${enc(id)}`, orderBody(customer, placedAt, total, o), at(key, now));
      assert.equal(r.status, 201, `PUT order ${id}: ${r.text}`);
      return r.body;
    },
    /** POST a refund of `amount` (refund id rf-<order>-<n>) at test instant `now`; asserts 201. */
    async refund(key, orderId, amount, now, n = 1) {
      const r = await c.post(`/v1/orders/${enc(orderId)}/refunds`, { id: `rf-${orderId}-${n}`, amount }, at(key, now));
      assert.equal(r.status, 201, `refund ${orderId} ${amount}: ${r.text}`);
      return r.body;
    },
    async cancel(key, orderId, now) {
      const r = await c.req('POST', `/v1/orders/${enc(orderId)}/cancel`, at(key, now));
      assert.equal(r.status, 200, `cancel ${orderId}: ${r.text}`);
      assert.equal(r.body.status, 'cancelled');
      return r.body;
    },
    /** PUT /v1/tier-programme at `now`; asserts the status (201/200) when given, else either. */
    async programme(key, body, now, status) {
      const r = await c.put('/v1/tier-programme', body, at(key, now));
      if (status) assert.equal(r.status, status, `PUT /v1/tier-programme: ${r.text}`);
      else assert.ok([200, 201].includes(r.status), `PUT /v1/tier-programme: ${r.status} ${r.text}`);
      assertProgrammeShape(r.body);
      return r.body;
    },
    async plan(key, code, body, now) {
      const r = await c.put(`/v1/membership-plans/${code}`, body, now ? at(key, now) : { key });
      assert.ok([200, 201].includes(r.status), `PUT plan ${code}: ${r.status} ${r.text}`);
      return r.body;
    },
    /** Sells plan to customer at test instant `now` (the membership starts then); asserts 201. */
    async buy(key, customer, plan, now) {
      const r = await c.post(`/v1/customers/${enc(customer)}/memberships`, { plan }, at(key, now));
      assert.equal(r.status, 201, `sell ${plan} to ${customer}: ${r.text}`);
      assert.equal(r.body.starts_at, U(now), 'the membership starts at the test instant');
      return r.body;
    },
    async benefit(key, code, body, now) {
      const r = await c.put(`/v1/benefits/${code}`, body, now ? at(key, now) : { key });
      assert.ok([200, 201].includes(r.status), `PUT benefit ${code}: ${r.status} ${r.text}`);
      return r.body;
    },
    /** GET /v1/customers/{id}/tier at `now`; asserts 200 and the shape. */
    async tier(key, customer, now) {
      const r = await c.get(`/v1/customers/${enc(customer)}/tier`, at(key, now));
      assert.equal(r.status, 200, `GET tier of ${customer}: ${r.text}`);
      assertCustomerTierShape(r.body);
      assert.equal(r.body.customer_id, customer);
      return r.body;
    },
    /** GET /v1/customers/{id}/tier-history at `now`; asserts 200 and the shape; returns the items. */
    async history(key, customer, now) {
      const r = await c.get(`/v1/customers/${enc(customer)}/tier-history`, at(key, now));
      assert.equal(r.status, 200, `GET tier history of ${customer}: ${r.text}`);
      assert.deepEqual(Object.keys(r.body), ['items']);
      for (const h of r.body.items) assertHistoryShape(h);
      return r.body.items;
    },
    /** POST /v1/tier-programme/review at `now`; asserts 200; returns the body. */
    async review(key, now) {
      const r = await c.post('/v1/tier-programme/review', {}, at(key, now));
      assert.equal(r.status, 200, `POST review at ${now}: ${r.text}`);
      assert.deepEqual(Object.keys(r.body).sort(), ['downgraded', 'graced', 'next_review_at', 'reviewed_at']);
      return r.body;
    },
    /** GET /v1/customers/{id}/membership at `now`; asserts 200, as_of = now and the shape. */
    async applies(key, customer, now) {
      const r = await c.get(`/v1/customers/${enc(customer)}/membership`, at(key, now));
      assert.equal(r.status, 200, `GET membership of ${customer}: ${r.text}`);
      const b = r.body;
      assert.deepEqual(Object.keys(b).sort(), ['as_of', 'benefits', 'customer_id', 'discount_bp', 'discount_source', 'memberships', 'tier']);
      assert.equal(b.customer_id, customer);
      assertTs(b.as_of, now, 'as_of is the test instant');
      if (b.tier !== null) {
        assert.deepEqual(Object.keys(b.tier).sort(), ['code', 'discount_bp', 'grace_until', 'name', 'rank', 'since']);
      }
      for (const x of b.benefits) {
        assert.deepEqual(Object.keys(x).sort(), ['code', 'name', 'period', 'period_end', 'period_start', 'quota', 'remaining', 'source', 'used']);
      }
      assert.deepEqual(b.benefits.map((x) => x.code), [...b.benefits.map((x) => x.code)].sort(), 'benefits by code');
      return b;
    },
  };
}

export const CUSTOMER_TIER_KEYS = ['cause', 'customer_id', 'discount_bp', 'floor', 'floor_until', 'grace_until', 'name',
  'qualifies_for', 'rank', 'since', 'tier'];

export function assertCustomerTierShape(t) {
  assert.deepEqual(Object.keys(t).sort(), CUSTOMER_TIER_KEYS, `CustomerTier members: ${JSON.stringify(t)}`);
  for (const k of ['since', 'grace_until', 'floor_until']) if (t[k] !== null) assertServerTs(t[k], k);
  assert.ok(t.cause === null || ['order', 'refund', 'cancel', 'review', 'manual', 'entry'].includes(t.cause), `cause ${t.cause}`);
  if (t.tier === null) {
    assert.equal(t.name, null);
    assert.equal(t.rank, null);
    assert.equal(t.discount_bp, 0, 'no tier: discount 0');
  }
}

export function assertHistoryShape(h) {
  assert.deepEqual(Object.keys(h).sort(), ['at', 'cause', 'from', 'order_id', 'reason', 'to'], `history item: ${JSON.stringify(h)}`);
  assertServerTs(h.at, 'at');
}

export function assertProgrammeShape(p) {
  assert.deepEqual(Object.keys(p).sort(), ['created_at', 'downgrade', 'last_review_at', 'next_review_at', 'tiers', 'updated_at'],
    `Programme members: ${JSON.stringify(p)}`);
  for (const [i, t] of p.tiers.entries()) {
    assert.deepEqual(Object.keys(t).sort(), ['benefits', 'code', 'discount_bp', 'name', 'qualification', 'rank'], `tiers[${i}]`);
    assert.equal(t.rank, i + 1, 'rank = index + 1');
    assert.deepEqual(Object.keys(t.qualification).sort(), ['combine', 'net_spend', 'orders', 'window_days'], `tiers[${i}].qualification`);
  }
  for (const k of ['created_at', 'updated_at']) assertServerTs(p[k], k);
  for (const k of ['last_review_at', 'next_review_at']) if (p[k] !== null) assertServerTs(p[k], k);
}

/** A history item written out in full (timestamps normalised as rebuyd prints them). */
export const H = (atTs, from, to, cause, orderId = null, reason = null) => ({
  at: U(atTs), from, to, cause, order_id: orderId, reason,
});

/** Tier expected in a Programme reply: the qualification with all four members. */
export function T(code, name, rank, discountBp, q = {}, benefits = {}) {
  return {
    code, name, rank, discount_bp: discountBp,
    qualification: {
      window_days: q.window_days ?? 365, net_spend: q.net_spend ?? null, orders: q.orders ?? null, combine: q.combine ?? 'and',
    },
    benefits,
  };
}
