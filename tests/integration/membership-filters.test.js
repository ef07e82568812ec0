// Custom segment filters on paid memberships (issue 6): membership_days_left
// (days from the shop's today to the last day of the active membership that
// ends last) and membership_plans (plans of the memberships active now).
//
// The shop is in Asia/Shanghai (no daylight saving): a membership that ends
// N × 24 h from now ends on the local date today + N, so its days left is N.
// Every expected member list is worked out by hand in the table below.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, api, setupShop, assertProblem, uniq } from '../lib/harness.js';

let svc;
let c;
let S;

const DAYMS = 86400000;
const isoAgo = (days) => new Date(Date.now() - days * DAYMS).toISOString();

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc, { name: uniq('Membership Filter Shop'), timezone: 'Asia/Shanghai' });
});
after(async () => { await svc?.stop(); });

const key = () => S.keys.admin;

async function ok(method, path, body, status) {
  const r = await c.req(method, path, { key: key(), body });
  assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
  return r.body;
}

/** A customer with one qualifying order yesterday (segments list customers with orders). */
async function customer(id) {
  await ok('PUT', `/v1/customers/${id}`, { name: id }, 201);
  await ok('PUT', `/v1/orders/o-${id}`, {
    customer_id: id, placed_at: isoAgo(1), channel: 'web', currency: 'CNY',
    lines: [{ sku: 'S', category: 'tea', role: 'regular', quantity: 1, unit_price: 1000 }], total: 1000,
  }, 201);
}

const buy = (cust, plan, startsAt) => ok('POST', `/v1/customers/${cust}/memberships`,
  startsAt ? { plan, starts_at: startsAt } : { plan }, 201);

/** Members (ids in listing order) of a new custom segment with this filter. */
async function members(filter) {
  const code = uniq('f').toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const put = await c.req('PUT', `/v1/segments/${code}`, { key: key(), body: { name: code, filter } });
  assert.equal(put.status, 201, put.text);
  const r = await c.get(`/v1/segments/${code}/customers?limit=200`, { key: key() });
  assert.equal(r.status, 200, r.text);
  assert.equal(put.body.size, r.body.items.length, 'size agrees with the list');
  return r.body.items.map((x) => x.id);
}

const C = (field, op, value) => ({ field, op, value });

describe('membership facts in custom segment filters', () => {
  //  customer | memberships                                     | active plans | days left
  //  a        | plus (365 d) bought now                         | plus         | 365
  //  b        | month (30 d) started 20 days ago                | month        | 10
  //  c        | month started 40 days ago: expired              | –            | –
  //  d        | month bought now, then cancelled                | –            | –
  //  e        | none                                            | –            | –
  //  f        | plus now, and month started 25 days ago         | plus, month  | max(365, 5) = 365
  before(async () => {
    await ok('PUT', '/v1/membership-plans/plus', { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500 }, 201);
    await ok('PUT', '/v1/membership-plans/month', { name: 'Month', fee: 3000, duration_days: 30, discount_bp: 100 }, 201);
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) await customer(id);
    await buy('a', 'plus');
    await buy('b', 'month', isoAgo(20));
    await buy('c', 'month', isoAgo(40));
    const d = await buy('d', 'month');
    await ok('POST', `/v1/memberships/${d.id}/cancel`, { refund: 'none' }, 200);
    await buy('f', 'plus');
    await buy('f', 'month', isoAgo(25));
  });

  test('membership_days_left: expiring within two weeks, ranges, and no membership matches nothing', async () => {
    assert.deepEqual(await members(C('membership_days_left', 'lte', 14)), ['b']);
    assert.deepEqual(await members(C('membership_days_left', 'gte', 0)), ['a', 'b', 'f']);
    assert.deepEqual(await members(C('membership_days_left', 'between', [5, 10])), ['b']);
    assert.deepEqual(await members(C('membership_days_left', 'eq', 365)), ['a', 'f']);
    // ne holds only where there is a value: c, d and e have no active membership
    assert.deepEqual(await members(C('membership_days_left', 'ne', 365)), ['b']);
  });

  test('membership_plans: the plans of active memberships only (expired and cancelled ones do not count)', async () => {
    assert.deepEqual(await members(C('membership_plans', 'contains', 'month')), ['b', 'f']);
    assert.deepEqual(await members(C('membership_plans', 'contains_all', ['plus', 'month'])), ['f']);
    assert.deepEqual(await members(C('membership_plans', 'contains_any', ['plus', 'gold'])), ['a', 'f']);
    assert.deepEqual(await members({ not: C('membership_plans', 'contains', 'plus') }), ['b', 'c', 'd', 'e']);
    assert.deepEqual(await members({ all: [C('membership_plans', 'contains', 'plus'), C('membership_days_left', 'gt', 300)] }), ['a', 'f']);
  });

  test('bad membership conditions → 422 naming the part', async () => {
    const bad = async (filter, pointer) => {
      const r = await c.req('PUT', '/v1/segments/bad-membership', { key: key(), body: { name: 'x', filter } });
      assertProblem(r, 422, 'validation_failed', pointer);
    };
    await bad(C('membership_plans', 'contains', 5), '/filter/value');
    await bad(C('membership_plans', 'eq', 'plus'), '/filter/op');
    await bad(C('membership_days_left', 'contains', 3), '/filter/op');
    await bad(C('membership_days_left', 'lte', 'soon'), '/filter/value');
    await bad(C('membership_plans', 'contains_any', []), '/filter/value');
    const r = await c.get('/v1/segments/bad-membership', { key: key() });
    assert.equal(r.status, 404, 'nothing stored');
  });
});
