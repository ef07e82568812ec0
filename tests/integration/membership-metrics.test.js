// Does it work? GET /v1/metrics/membership (tiers.md §3) over a small
// crafted history, every figure worked out by hand, and the custom segment
// filter field `tier` (tiers.md §4).
//
// The shop is in Asia/Shanghai (UTC+8). Orders are placed at 10:00 local
// time unless written otherwise and sent with Rebuy-Test-Now = placed_at,
// so each order's tier evaluation happens at the instant it was placed;
// memberships are sold at test instants too. The programme never goes
// down (policy never), so the tiers depend only on these orders, and the
// once-a-minute review sweep (on the real clock) has nothing to do here.
// Metrics are not test-clock aware: `to` must not be after today, hence 2025.
// Notation: "03-12" = 2025-03-12 10:00 +08:00.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, api, setupShop, assertProblem, uniq } from '../lib/harness.js';
import { at, calls } from '../lib/tiers.js';

let svc;
let c;
let K;
let S;
let A;

const MET = '/v1/metrics/membership';
const CAVEAT = 'A comparison of groups, not a causal effect: customers who buy more are likelier to join or earn a tier.';
const GROUP_KEYS = ['customers', 'days_between_orders', 'group', 'intervals', 'orders', 'orders_per_customer', 'repeat_customers', 'repurchase_rate'];
const NEVER = { policy: 'never' };

/** '2025-03-12' → 10:00 that day in Shanghai; a full timestamp as given. */
const L = (s) => (/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T10:00:00+08:00` : s);

/** A group written out: [customers, repeat, rate, orders, per customer, intervals, days]. */
const G = (group, [customers, repeat, rate, orders, perCustomer, intervals, days]) => ({
  group, customers, repeat_customers: repeat, repurchase_rate: rate, orders, orders_per_customer: perCustomer,
  intervals, days_between_orders: days,
});

//  # | customer | paid membership                                    | occasions (net)                       | tier (evaluated at each order)
//  1 | m1       | plus 02-15 (365 d)                                 | 03-02 30000, 03-12 30000, 03-22 30000 | silver at 03-12 (60000)
//  2 | m2       | plus bought 03-20                                  | 03-05 250000                          | gold at 03-05
//  3 | e2       | month 02-10 .. 03-12 02:00Z (overlaps March)       | 03-28 1000                            | –
//  4 | m3       | plus 01-10, cancelled 02-01 (ends 02-01)           | 03-10 10000, 03-25 10000              | –
//  5 | n1       | –                                                  | 02-20 40000, 03-15 20000              | silver at 03-15 (60000)
//  6 | n2       | –                                                  | 03-03, 03-04, 03-31 5000 each; 03-10 cancelled | –
//  7 | n4       | plus bought 04-05                                  | 03-08 60000, 04-10 200000             | silver 03-08, gold 04-10
//  8 | e1       | month 01-20 .. 02-19 (over before March)           | 03-18 1000                            | –
//  9 | e3       | month 01-29 16:00Z .. 02-28 16:00Z (= Mar 1 00:00 local: ends as March starts) | 03-20 1000 | –
// 10 | n5       | –                                                  | 03-31 23:30 local 1000                | –
// 11 | n8       | –                                                  | 03-02 10000, 03-06 60000 (refunded in full 03-09) | silver 03-06, taken back 03-09
// 12 | n3       | –                                                  | 04-05 400000                          | gold at 04-05
// 13 | n6       | –                                                  | 04-01 00:30 local 1000                | –
// 14 | n7       | –                                                  | 02-28 23:59:59 local 1000             | –
const ORDERS = [
  ['m1', '2025-03-02', 30000], ['m1', '2025-03-12', 30000], ['m1', '2025-03-22', 30000],
  ['m2', '2025-03-05', 250000],
  ['e2', '2025-03-28', 1000],
  ['m3', '2025-03-10', 10000], ['m3', '2025-03-25', 10000],
  ['n1', '2025-02-20', 40000], ['n1', '2025-03-15', 20000],
  ['n2', '2025-03-03', 5000], ['n2', '2025-03-04', 5000], ['n2', '2025-03-10', 5000], ['n2', '2025-03-31', 5000],
  ['n4', '2025-03-08', 60000], ['n4', '2025-04-10', 200000],
  ['e1', '2025-03-18', 1000],
  ['e3', '2025-03-20', 1000],
  ['n5', '2025-03-31T23:30:00+08:00', 1000],
  ['n8', '2025-03-02', 10000], ['n8', '2025-03-06', 60000],
  ['n3', '2025-04-05', 400000],
  ['n6', '2025-04-01T00:30:00+08:00', 1000],
  ['n7', '2025-02-28T23:59:59+08:00', 1000],
];
const CUSTOMERS = ['m1', 'm2', 'e2', 'm3', 'n1', 'n2', 'n4', 'e1', 'e3', 'n5', 'n8', 'n3', 'n6', 'n7'];

before(async () => {
  svc = await startService({ args: ['--test-clock'] });
  c = api(svc);
  K = calls(c);
  S = await setupShop(svc, { name: uniq('Membership Metrics Shop'), timezone: 'Asia/Shanghai' });
  A = S.keys.admin;
  await K.programme(A, {
    tiers: [
      { code: 'silver', name: 'Silver', discount_bp: 300, qualification: { net_spend: 50000 } },
      { code: 'gold', name: 'Gold', discount_bp: 800, qualification: { net_spend: 200000 } },
      { code: 'platinum', name: 'Platinum', discount_bp: 1000, qualification: { net_spend: 10000000 } },
    ],
    downgrade: NEVER,
  }, '2025-01-01T00:00:00Z', 201);
  await K.plan(A, 'plus', { name: 'PLUS', fee: 36500, duration_days: 365, discount_bp: 500 }, '2025-01-01T00:00:00Z');
  await K.plan(A, 'month', { name: 'Month', fee: 3000, duration_days: 30, discount_bp: 100 }, '2025-01-01T00:00:00Z');
  for (const id of CUSTOMERS) await K.customer(A, id);

  // memberships first (in time order), then the orders, each at its own instant
  await K.buy(A, 'm3', 'plus', L('2025-01-10'));
  await K.buy(A, 'e1', 'month', L('2025-01-20')); // ends 2025-02-19 10:00 local
  await K.buy(A, 'e3', 'month', '2025-01-29T16:00:00Z'); // ends 2025-02-28T16:00Z = 2025-03-01 00:00 local
  const m3 = (await c.get('/v1/customers/m3/memberships', { key: A })).body.items[0];
  const x = await c.post(`/v1/memberships/${m3.id}/cancel`, { refund: 'none' }, at(A, L('2025-02-01')));
  assert.equal(x.status, 200, x.text);
  await K.buy(A, 'e2', 'month', L('2025-02-10')); // ends 2025-03-12 10:00 local
  await K.buy(A, 'm1', 'plus', L('2025-02-15'));
  const sorted = ORDERS.map(([cust, when, total], i) => ({ cust, when: L(when), total, id: `${cust}-${i}` }))
    .sort((a, b) => Date.parse(a.when) - Date.parse(b.when));
  const sales = [['m2', 'plus', L('2025-03-20')], ['n4', 'plus', L('2025-04-05')]];
  for (const o of sorted) {
    for (const s of sales.filter((s) => s[2] <= o.when && !s.done)) { await K.buy(A, s[0], s[1], s[2]); s.done = true; }
    await K.order(A, o.id, o.cust, o.when, o.total);
    if (o.cust === 'n2' && o.when === L('2025-03-10')) await K.cancel(A, o.id, L('2025-03-11'));
    if (o.cust === 'n8' && o.when === L('2025-03-06')) await K.refund(A, o.id, 60000, L('2025-03-09'));
  }
  for (const s of sales.filter((s) => !s.done)) await K.buy(A, s[0], s[1], s[2]);
});
after(async () => { await svc?.stop(); });

/** Today's date in Asia/Shanghai (the shop's zone), YYYY-MM-DD. */
function todayShanghai() {
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

async function metrics(q, key = A) {
  const r = await c.get(`${MET}?${new URLSearchParams(q)}`, { key });
  assert.equal(r.status, 200, `GET ${MET} ${JSON.stringify(q)}: ${r.text}`);
  const b = r.body;
  assert.deepEqual(Object.keys(b).sort(), ['definition', 'members', 'non_members', 'tiers']);
  for (const g of [b.members, b.non_members, ...b.tiers]) assert.deepEqual(Object.keys(g).sort(), GROUP_KEYS, JSON.stringify(g));
  assert.deepEqual([b.definition.from, b.definition.to, b.definition.caveat], [q.from, q.to, CAVEAT]);
  return b;
}

describe('GET /v1/metrics/membership', () => {
  test('the history is as the table says (tiers held now)', async () => {
    const now = '2025-05-01T00:00:00Z';
    const held = {};
    for (const id of CUSTOMERS) held[id] = (await K.tier(A, id, now)).tier;
    assert.deepEqual(held, {
      m1: 'silver', m2: 'gold', e2: null, m3: null, n1: 'silver', n2: null, n4: 'gold', e1: null, e3: null, n5: null,
      n8: null, n3: 'gold', n6: null, n7: null,
    });
    // n8: silver at 03-06, taken back by the refund at 03-09
    assert.deepEqual((await K.history(A, 'n8', now)).map((h) => [h.to, h.cause]), [[null, 'refund'], ['silver', 'order']]);
  });

  test('the definition is as in the other metrics (timezone, from, to, as_of, rule), with the caveat', async () => {
    const b = await metrics({ from: '2025-03-01', to: '2025-03-31' });
    assert.deepEqual(b.definition, {
      timezone: 'Asia/Shanghai', from: '2025-03-01', to: '2025-03-31', as_of: todayShanghai(),
      rule: { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 },
      caveat: CAVEAT,
    });
    const c2 = await metrics({ from: '2025-03-01', to: '2025-03-31', as_of: '2025-04-30' });
    assert.equal(c2.definition.as_of, '2025-04-30');
  });

  test('March 2025: members, non-members and tiers, every figure by hand', async () => {
    const b = await metrics({ from: '2025-03-01', to: '2025-03-31' });
    // active in March (occasions dated 03-01..03-31 local): m1 3, m2 1, e2 1, m3 2, n1 1 (02-20 is February),
    // n2 3 (the cancelled 03-10 does not count), n4 1 (04-10 is April), e1 1, e3 1, n5 1 (23:30 on 03-31),
    // n8 1 (03-06 refunded in full does not qualify); n3, n6 (00:30 on 04-01) and n7 (23:59:59 on 02-28) are not active.
    //
    // members (a membership overlapping March): m1, m2 (bought 03-20), e2 (ends 03-12) → 3
    //   repeat: m1 → 1; rate 1/3 = 0.3333; orders 3 + 1 + 1 = 5; per customer 5/3 = 1.6667;
    //   intervals: m1 03-02→03-12→03-22: 2, days (10 + 10)/2 = 10
    assert.deepEqual(b.members, G('members', [3, 1, 0.3333, 5, 1.6667, 2, 10]));
    // non-members: m3 (cancelled 02-01), n1, n2, n4 (bought 04-05), e1 (over 02-19), e3 (ended at 03-01 00:00), n5, n8 → 8
    //   repeat: m3, n2 → 2; rate 2/8 = 0.25; orders 2+1+3+1+1+1+1+1 = 11; per customer 11/8 = 1.375;
    //   intervals: m3 03-10→03-25 (15), n2 03-03→03-04 (1), 03-04→03-31 (27) → 3, days 43/3 = 14.3333
    assert.deepEqual(b.non_members, G('non_members', [8, 2, 0.25, 11, 1.375, 3, 14.3333]));
    // tiers held at the end of March (2025-04-01 00:00 local):
    //   silver: m1, n1, n4 (gold only from 04-10) → 3; repeat m1 → 0.3333; orders 3+1+1 = 5 → 1.6667; intervals 2, 10 days
    //   gold: m2 → 1; repeat 0 → 0; orders 1 → 1; no interval → null
    //   platinum: nobody → 0, rates null
    //   none: e2, m3, n2, e1, e3, n5, n8 (silver taken back 03-09) → 7; repeat m3, n2 → 2/7 = 0.2857;
    //         orders 1+2+3+1+1+1+1 = 10 → 10/7 = 1.4286; intervals 3, 43/3 = 14.3333
    assert.deepEqual(b.tiers, [
      G('silver', [3, 1, 0.3333, 5, 1.6667, 2, 10]),
      G('gold', [1, 0, 0, 1, 1, 0, null]),
      G('platinum', [0, 0, null, 0, null, 0, null]),
      G('none', [7, 2, 0.2857, 10, 1.4286, 3, 14.3333]),
    ]);
    // the groups split the same active customers two ways: 3 + 8 = 3 + 1 + 0 + 7 = 11
    assert.equal(b.members.customers + b.non_members.customers, b.tiers.reduce((s, g) => s + g.customers, 0));
  });

  test('April 2025: the tier at the end of the period (n4 is gold by then); a membership bought in the period counts', async () => {
    const b = await metrics({ from: '2025-04-01', to: '2025-04-30' }, S.keys.readonly);
    // active: n6 (04-01 00:30 local), n3 (04-05), n4 (04-10) — one occasion each
    // members: n4 (plus from 04-05); m1 and m2 are members but not active in April
    assert.deepEqual(b.members, G('members', [1, 0, 0, 1, 1, 0, null]));
    assert.deepEqual(b.non_members, G('non_members', [2, 0, 0, 2, 1, 0, null]));
    // at the end of April: n4 gold (since 04-10), n3 gold (04-05), n6 none
    assert.deepEqual(b.tiers, [
      G('silver', [0, 0, null, 0, null, 0, null]),
      G('gold', [2, 0, 0, 2, 1, 0, null]),
      G('platinum', [0, 0, null, 0, null, 0, null]),
      G('none', [1, 0, 0, 1, 1, 0, null]),
    ]);
  });

  test('one local day (2025-03-31): 23:30 that day is in, 00:30 the next day is out; no members → rates null', async () => {
    const b = await metrics({ from: '2025-03-31', to: '2025-03-31' });
    // n2 (10:00) and n5 (23:30) only; n6 at 00:30 on 04-01 local (03-31 16:30Z) is not in it
    assert.deepEqual(b.members, G('members', [0, 0, null, 0, null, 0, null]));
    assert.deepEqual(b.non_members, G('non_members', [2, 0, 0, 2, 1, 0, null]));
    assert.deepEqual(b.tiers.map((g) => [g.group, g.customers]), [['silver', 0], ['gold', 0], ['platinum', 0], ['none', 2]]);
  });

  test('February–March 2025: a wider period brings in February memberships and occasions', async () => {
    const b = await metrics({ from: '2025-02-01', to: '2025-03-31' });
    // active (occasions dated 02-01..03-31): as in March, plus n1's 02-20 (n1: 2 occasions, 23 days apart)
    // and n7 (02-28 23:59:59 local: 1 occasion).
    // members (a membership overlapping 02-01 00:00 .. 04-01 00:00 local): m1, m2, e2, and now also
    //   m3 (plus 01-10 .. cancelled 02-01 10:00 local), e1 (01-20 .. 02-19), e3 (01-30 00:00 .. 03-01 00:00 local) → 6
    //   repeat m1, m3 → 2/6 = 0.3333; orders 3+1+1+2+1+1 = 9 → 9/6 = 1.5;
    //   intervals m1 2 (10, 10) + m3 1 (15) = 3, days 35/3 = 11.6667
    assert.deepEqual(b.members, G('members', [6, 2, 0.3333, 9, 1.5, 3, 11.6667]));
    // non-members: n1, n2, n4, n5, n8, n7 → 6; repeat n1, n2 → 2/6 = 0.3333; orders 2+3+1+1+1+1 = 9 → 1.5;
    //   intervals n1 1 (02-20 → 03-15: 23 days) + n2 2 (1, 27) = 3, days 51/3 = 17
    assert.deepEqual(b.non_members, G('non_members', [6, 2, 0.3333, 9, 1.5, 3, 17]));
    // tiers at the end of March as before; silver m1, n1, n4 now has n1's interval too:
    //   3 customers, repeat m1, n1 → 0.6667; orders 3+2+1 = 6 → 2; intervals 2 + 1 = 3, days (10+10+23)/3 = 14.3333
    //   none: e2, m3, n2, e1, e3, n5, n8, n7 → 8; repeat m3, n2 → 0.25; orders 1+2+3+1+1+1+1+1 = 11 → 1.375; intervals 3, 43/3 = 14.3333
    assert.deepEqual(b.tiers, [
      G('silver', [3, 2, 0.6667, 6, 2, 3, 14.3333]),
      G('gold', [1, 0, 0, 1, 1, 0, null]),
      G('platinum', [0, 0, null, 0, null, 0, null]),
      G('none', [8, 2, 0.25, 11, 1.375, 3, 14.3333]),
    ]);
  });

  test('from and to default as in the other metrics: to = as_of = today, from = to - 89 days', async () => {
    const today = todayShanghai();
    const r = await c.get(MET, { key: A });
    assert.equal(r.status, 200, r.text);
    const from = new Date(`${today}T00:00:00Z`);
    from.setUTCDate(from.getUTCDate() - 89);
    assert.deepEqual([r.body.definition.from, r.body.definition.to, r.body.definition.as_of],
      [from.toISOString().slice(0, 10), today, today]);
    const r2 = await c.get(`${MET}?to=2025-03-31`, { key: A });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.body.definition.from, '2025-01-01', '2025-03-31 - 89 days');
  });

  test('parameters: dates; from ≤ to; at most 3660 days; not after today; nothing else; scopes', async () => {
    const bad = async (q, pointer) => assertProblem(await c.get(`${MET}?${q}`, { key: A }), 400, 'invalid_parameter', pointer);
    await bad('from=2025-02-30&to=2025-03-31', '/query/from');
    await bad('from=2025-03-01&to=march', '/query/to');
    await bad('from=&to=2025-03-31', '/query/from');
    await bad('from=2025-03-01&from=2025-03-02&to=2025-03-31', '/query/from');
    await bad('from=2025-04-01&to=2025-03-31', '/query/from'); // from after to
    await bad('from=2010-01-01&to=2025-01-01', '/query/from'); // 5479 days
    await bad('from=2025-03-01&to=2025-03-31&foo=1', '/query/foo');
    await bad('from=2025-03-01&to=2099-01-01', '/query/to'); // after today
    for (const key of [S.keys.storefront, svc.platformKey]) {
      assertProblem(await c.get(`${MET}?from=2025-03-01&to=2025-03-31`, { key }), 403, 'forbidden');
    }
    assertProblem(await c.get(`${MET}?from=2025-03-01&to=2025-03-31`), 401, 'unauthenticated');
  });
});

// ---------------------------------------------------------------------------

describe('custom segment filter field `tier` (the tier held now)', () => {
  /** Members (ids in listing order) of a new custom segment with this filter, in shop `s`. */
  async function members(s, filter) {
    const code = uniq('t').toLowerCase().replace(/[^a-z0-9-]/g, '-');
    const put = await c.put(`/v1/segments/${code}`, { name: code, filter }, { key: s.keys.admin });
    assert.equal(put.status, 201, put.text);
    const r = await c.get(`/v1/segments/${code}/customers?limit=200`, { key: s.keys.admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(put.body.size, r.body.items.length, 'size agrees with the list');
    return r.body.items.map((x) => x.id);
  }
  const C = (op, value) => ({ field: 'tier', op, value });

  test('eq, ne and in over the tiers held now; customers without a tier match neither eq nor ne', async () => {
    // held now (see the table above): m1 silver, n1 silver; m2, n4, n3 gold; the other nine none
    assert.deepEqual(await members(S, C('eq', 'silver')), ['m1', 'n1']);
    assert.deepEqual(await members(S, C('eq', 'gold')), ['m2', 'n4', 'n3']);
    assert.deepEqual(await members(S, C('in', ['silver', 'gold'])), ['m1', 'm2', 'n1', 'n4', 'n3']);
    assert.deepEqual(await members(S, C('in', ['gold', 'platinum'])), ['m2', 'n4', 'n3']);
    assert.deepEqual(await members(S, C('ne', 'silver')), ['m2', 'n4', 'n3']);
    assert.deepEqual(await members(S, C('ne', 'platinum')), ['m1', 'm2', 'n1', 'n4', 'n3']);
    assert.deepEqual(await members(S, C('eq', 'platinum')), []);
    assert.deepEqual(await members(S, C('eq', 'no-such-tier')), []);
    assert.deepEqual(await members(S, C('in', ['no-such-tier', 'silver'])), ['m1', 'n1']);
    // combined: silver with at least 3 purchase occasions → m1 (n1 has 2)
    assert.deepEqual(await members(S, { all: [C('eq', 'silver'), { field: 'order_count', op: 'gte', value: 3 }] }), ['m1']);
  });

  test('customers without a stored tier hold the entry tier', async () => {
    const E = await setupShop(svc, { name: uniq('Entry Tier Segments') });
    await K.programme(E.keys.admin, {
      tiers: [{ code: 'basic', name: 'Basic', discount_bp: 0, qualification: {} },
        { code: 'silver', name: 'Silver', discount_bp: 300, qualification: { net_spend: 100000 } }],
      downgrade: NEVER,
    }, '2025-01-01T00:00:00Z', 201);
    await K.customer(E.keys.admin, 'x');
    await K.customer(E.keys.admin, 'y');
    await K.order(E.keys.admin, 'x-1', 'x', '2025-03-01T02:00:00Z', 1000); // basic (entry, nothing stored)
    await K.order(E.keys.admin, 'y-1', 'y', '2025-03-01T02:00:00Z', 150000); // silver
    assert.deepEqual(await members(E, C('eq', 'basic')), ['x']);
    assert.deepEqual(await members(E, C('ne', 'basic')), ['y']);
    assert.deepEqual(await members(E, C('in', ['basic', 'silver'])), ['x', 'y']);
    assert.deepEqual(await members(E, C('eq', 'silver')), ['y']);
  });

  test('a value that is not a tier code, or a wrong op → 422 naming the part; nothing stored', async () => {
    const bad = async (filter, pointer) => {
      const r = await c.put('/v1/segments/bad-tier', { name: 'x', filter }, { key: A });
      assertProblem(r, 422, 'validation_failed', pointer);
    };
    await bad(C('eq', 'Gold'), '/filter/value');
    await bad(C('eq', 'gold_1'), '/filter/value');
    await bad(C('eq', 'x'.repeat(65)), '/filter/value');
    await bad(C('eq', 5), '/filter/value');
    await bad(C('eq', ['gold']), '/filter/value');
    await bad(C('in', 'gold'), '/filter/value');
    await bad(C('in', []), '/filter/value');
    await bad(C('in', ['gold', 'Bad!']), /^\/filter\/value(\/1)?$/);
    await bad(C('contains', 'gold'), '/filter/op');
    await bad(C('gte', 1), '/filter/op');
    assertProblem(await c.get('/v1/segments/bad-tier', { key: A }), 404, 'not_found');
  });
});
