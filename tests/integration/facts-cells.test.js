// Histograms kept with the facts (migrations 0018-0020), read instead of
// every customer's facts or occasions:
//   - GET /v1/rfm/summary reads customers per (local day of the last order,
//     order count) and per bucket of total spent;
//   - due-for-repurchase reads its medians from customers per (category,
//     local days from the first to the second purchase);
//   - vip reads each customer's spend over the last 365 days, kept for the
//     shop's current day (and computes it live when it is not);
//   - the repurchase, revenue-mix, sales-decomposition and cohort metrics
//     (without a channel) read purchase occasions per local day, per pair
//     of consecutive occasions and per (day of the customer's first, day)
//     (migration 0019);
//   - time-to-second-purchase and first-order read customers per local day
//     of their first and second purchase, by first-order channel and role
//     and per category (migration 0020).
// They are appended as deltas by triggers and folded by the janitor.
//
// Every answer is checked against a from-scratch computation, here in JS, of
// the facts as stored: for RFM the quintile rule score = 1 + floor(5 w / N)
// (w: customers with a strictly worse value), the thresholds rule, the
// default map with its lapsed override, every figure of every segment and
// the edges; for due-for-repurchase, percentile_disc(0.5) of each category's
// and the shop's intervals, every one-time buyer's smallest median and the
// window, member by member with its reason; for vip, each customer's sum of
// occasions in the window, the top 5% rounded up, ties in, both live and
// kept.  Checked after a shuffled bulk
// load, cancels, refunds and erasures; after the deltas are folded; with
// deltas on top of folded cells; after the shop's time zone changes (the
// days are local); with thresholds; and under concurrent orders while the
// zone changes.  The metrics are checked (by month, by week for cohorts,
// as of today and as of 200 days ago) against counts made customer by
// customer from the stored occasions and facts.  `rebuyd verify`
// must agree every time and notice a corrupted cell.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startService, api, uniq } from '../lib/harness.js';
import { OFF_X, ZX, etcZone, DEFAULT_RFM_MAP } from '../lib/history.js';
import { mulberry32, shuffle } from '../lib/random.js';

let svc;
let c;

before(async () => {
  svc = await startService();
  c = api(svc);
});
after(async () => { await svc?.stop(); });

const DAY = 86400000;
const PRICES = [1000, 2000, 2500, 5000, 9900]; // few values: ties everywhere

// 'rare' (4% of orders) has fewer repeat customers than
// due_min_repeat_customers (30): its buyers are due by the shop's median
const CATEGORIES = ['tea', 'tea', 'snacks', 'shoes'];
const CHANNELS = ['web', 'web', 'app', 'store-1'];

/** One order, `msAgo` before now, one line (of a random category when rnd is given). */
function order(id, cust, msAgo, price, rnd) {
  const category = !rnd ? 'tea' : rnd() < 0.04 ? 'rare' : CATEGORIES[Math.floor(rnd() * CATEGORIES.length)];
  const role = rnd && rnd() < 0.2 ? 'activity' : 'regular';
  const lines = [{ sku: 'SKU-1', category, role, quantity: 1, unit_price: price }];
  if (rnd && rnd() < 0.3) lines.push({ sku: 'SKU-2', category: 'snacks', role: 'traffic', quantity: 1, unit_price: 0 });
  return {
    id,
    customer_id: cust,
    placed_at: new Date(Date.now() - msAgo).toISOString(),
    channel: rnd ? CHANNELS[Math.floor(rnd() * CHANNELS.length)] : 'web',
    currency: 'CNY',
    lines,
    total: price,
  };
}

/** Histories of n customers (tag-prefixed ids): 1–9 orders each, up to ~2.5 years back. */
function generate(rnd, tag, n) {
  const orders = [];
  for (let i = 0; i < n; i++) {
    const cust = `${tag}-c${i}`;
    const count = 1 + Math.floor(rnd() ** 2 * 9);
    let ago = Math.floor(rnd() * 900 * DAY) + 60000;
    for (let k = 0; k < count; k++) {
      orders.push(order(`${cust}-o${k}`, cust, ago, PRICES[Math.floor(rnd() * PRICES.length)], rnd));
      ago += Math.floor((1 + rnd() * 60) * DAY);
    }
  }
  return orders;
}

/** n one-time buyers (ids tag-o<i>), first order within the last 150 days, a fifth of them 'rare'. */
function oneTimers(rnd, tag, n) {
  return Array.from({ length: n }, (_, i) => {
    const o = order(`${tag}-o${i}-o0`, `${tag}-o${i}`, Math.floor(rnd() * 150 * DAY) + 60000, PRICES[i % PRICES.length], rnd);
    if (i % 5 === 0) o.lines[0].category = 'rare';
    return o;
  });
}

async function bulk(key, orders) {
  for (let i = 0; i < orders.length; i += 500) {
    const part = orders.slice(i, i + 500);
    const r = await c.req('POST', '/v1/orders/bulk', {
      key, rawBody: part.map((o) => JSON.stringify(o)).join('\n') + '\n',
      headers: { 'content-type': 'application/x-ndjson' }, timeoutMs: 120000,
    });
    assert.equal(r.status, 200, r.text.slice(0, 1000));
    assert.equal(r.body.created, part.length, JSON.stringify(r.body.results.filter((x) => x.status !== 201).slice(0, 3)));
  }
}

/** The scored customers' (rec, frq, mon) as stored, recency in the shop's zone now. */
async function storedFacts(shopId) {
  const r = await svc.db.query(`SELECT (now() AT TIME ZONE s.timezone)::date
        - (f.last_order_at AT TIME ZONE s.timezone)::date AS rec,
      f.order_count AS frq, f.total_spent::text AS mon
    FROM customer_facts f JOIN customers cu ON cu.seq = f.customer_seq JOIN shops s ON s.id = f.shop_id
    WHERE f.shop_id = $1 AND cu.erased_at IS NULL`, [shopId]);
  return r.rows.map((x) => ({ rec: x.rec, frq: x.frq, mon: BigInt(x.mon) }));
}

/** round(S / N, 1), half away from zero (PostgreSQL's numeric round), S >= 0. */
const round1 = (s, n) => Number((20n * BigInt(s) + BigInt(n)) / (2n * BigInt(n))) / 10;

/** The summary's segments and edges, scored from scratch. */
function reference(rows, rfm, lapseDays = 365) {
  const n = rows.length;
  const worse = (x, key, better) => rows.filter((o) => better(x[key], o[key])).length;
  const quint = (w) => 1 + Math.floor((5 * w) / n);
  const passes = (v, cuts) => 1 + cuts.filter((t) => v >= BigInt(t)).length;
  const scored = rows.map((x) => {
    if (rfm.method === 'thresholds') {
      const th = rfm.recency_days;
      const r = x.rec <= th[0] ? 5 : x.rec <= th[1] ? 4 : x.rec <= th[2] ? 3 : x.rec <= th[3] ? 2 : 1;
      return { ...x, r, f: passes(BigInt(x.frq), rfm.frequency), m: passes(x.mon, rfm.monetary) };
    }
    return {
      ...x,
      r: quint(worse(x, 'rec', (a, b) => a < b)),
      f: quint(worse(x, 'frq', (a, b) => a > b)),
      m: quint(worse(x, 'mon', (a, b) => a > b)),
    };
  });
  const inCell = (e, x) => x.r >= e.r[0] && x.r <= e.r[1] && x.f >= e.f[0] && x.f <= e.f[1];
  const segments = DEFAULT_RFM_MAP.map((e) => ({ name: e.name, members: [] }));
  for (const x of scored) {
    let k = DEFAULT_RFM_MAP.findIndex((e) => e.lapsed && inCell(e, x) && x.rec > lapseDays);
    if (k < 0) k = DEFAULT_RFM_MAP.findIndex((e) => !e.lapsed && inCell(e, x));
    segments[k].members.push(x);
  }
  const sum = (xs, f) => xs.reduce((s, x) => s + BigInt(f(x)), 0n);
  const edge = (key, score, pick) => [2, 3, 4, 5].map((k) => {
    const vs = scored.filter((x) => x[score] === k).map((x) => x[key]);
    return vs.length ? vs.reduce(pick) : null;
  });
  const big = (a, b) => (a > b ? a : b);
  const small = (a, b) => (a < b ? a : b);
  return {
    customers: n,
    segments: segments.map(({ name, members: m }) => ({
      name,
      customers: m.length,
      revenue: Number(sum(m, (x) => x.mon)),
      avg_recency_days: m.length ? round1(sum(m, (x) => x.rec), m.length) : null,
      avg_frequency: m.length ? round1(sum(m, (x) => x.frq), m.length) : null,
      avg_monetary: m.length ? round1(sum(m, (x) => x.mon), m.length) : null,
    })),
    // thresholds are the shop's own: the edges are not reported
    edges: rfm.method === 'thresholds' ? null : {
      recency: edge('rec', 'r', big),
      frequency: edge('frq', 'f', small),
      monetary: edge('mon', 'm', small).map((v) => (v === null ? null : Number(v))),
    },
  };
}

/** GET /v1/rfm/summary, the comparable part. */
async function summary(key) {
  const r = await c.get('/v1/rfm/summary', { key });
  assert.equal(r.status, 200, r.text);
  return {
    customers: r.body.customers,
    segments: r.body.segments.map(({ share, ...rest }) => rest),
    edges: r.body.edges,
  };
}

async function expectReference(s, rfm, what) {
  const want = reference(await storedFacts(s.shopId), rfm);
  const got = await summary(s.key);
  assert.deepEqual(got, want, what);
  return got;
}

/** percentile_disc(0.5): the least value with at least half of them at or below it. */
function median(xs) {
  const v = xs.slice().sort((a, b) => a - b);
  return v.length ? v[Math.ceil(v.length / 2) - 1] : null;
}

/**
 * due-for-repurchase from scratch: medians of the stored intervals, then
 * every non-erased one-time buyer; [{id, reason}] in page order.
 */
async function dueReference(shopId, minRepeat = 30, factor = 3) {
  const LD = (col) => `(${col} AT TIME ZONE s.timezone)::date`;
  const cats = await svc.db.query(`SELECT cf.category, ${LD('cf.second_at')} - ${LD('cf.first_at')} AS d
    FROM customer_category_facts cf JOIN shops s ON s.id = cf.shop_id
    WHERE cf.shop_id = $1 AND cf.second_at IS NOT NULL`, [shopId]);
  const shop = await svc.db.query(`SELECT ${LD('f.second_order_at')} - ${LD('f.first_order_at')} AS d
    FROM customer_facts f JOIN shops s ON s.id = f.shop_id
    WHERE f.shop_id = $1 AND f.second_order_at IS NOT NULL`, [shopId]);
  const by = new Map();
  for (const r of cats.rows) by.set(r.category, [...(by.get(r.category) ?? []), r.d]);
  const ma = median(shop.rows.map((r) => r.d));
  const eff = (cat) => {
    const xs = by.get(cat) ?? [];
    return xs.length >= minRepeat ? { m: median(xs), category: cat } : { m: ma, category: null };
  };
  const buyers = await svc.db.query(`SELECT cu.id, f.first_order_categories AS cats,
      (now() AT TIME ZONE s.timezone)::date - ${LD('f.first_order_at')} AS d
    FROM customer_facts f JOIN customers cu ON cu.seq = f.customer_seq JOIN shops s ON s.id = f.shop_id
    WHERE f.shop_id = $1 AND f.order_count = 1 AND cu.erased_at IS NULL ORDER BY cu.seq`, [shopId]);
  const out = [];
  for (const b of buyers.rows) {
    const options = b.cats.length ? b.cats.map(eff) : [{ m: ma, category: null }];
    const best = options.filter((o) => o.m !== null).sort((x, y) => x.m - y.m
      || (x.category === null) - (y.category === null)
      || (x.category < y.category ? -1 : x.category > y.category ? 1 : 0))[0];
    if (best && b.d >= best.m && b.d < factor * best.m) out.push({ id: b.id, reason: { median_days: best.m, category: best.category } });
  }
  return out;
}

async function expectDue(s, what) {
  const want = await dueReference(s.shopId);
  assert.deepEqual(await members(s, 'due-for-repurchase'), want, `due-for-repurchase ${what}`);
  return want;
}

/**
 * vip from scratch: net spend of each non-erased customer's occasions
 * started in the last 365 local days; the top `percent` % (rounded up) by
 * it, ties at the cutoff in; [{id, reason}] in page order.
 */
async function vipReference(shopId, percent = 5) {
  const r = await svc.db.query(`SELECT cu.id, sum(o.net)::text AS spend
    FROM purchase_occasions o JOIN customers cu ON cu.seq = o.customer_seq JOIN shops s ON s.id = o.shop_id
    WHERE o.shop_id = $1 AND cu.erased_at IS NULL
      AND (o.started_at AT TIME ZONE s.timezone)::date > (now() AT TIME ZONE s.timezone)::date - 365
    GROUP BY cu.id, cu.seq ORDER BY cu.seq`, [shopId]);
  const spenders = r.rows.map((x) => ({ id: x.id, spend: Number(x.spend) })).filter((x) => x.spend > 0);
  const k = Math.ceil((spenders.length * percent) / 100);
  if (k === 0) return [];
  const cutoff = spenders.map((x) => x.spend).sort((a, b) => b - a)[k - 1];
  return spenders.filter((x) => x.spend >= cutoff).map((x) => ({ id: x.id, reason: { spend_365d: x.spend, cutoff } }));
}

const dayNo = (iso) => Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1, +iso.slice(8, 10)) / DAY;
/** The inverse of dayNo. */
const iso = (n) => new Date(n * DAY).toISOString().slice(0, 10);

/** The shop's occasions as stored, per customer in order: [[{n, d, orders, net}]], d a local day number. */
async function storedOccasions(shopId) {
  const r = await svc.db.query(`SELECT o.customer_seq::text AS c, o.n,
      (o.started_at AT TIME ZONE s.timezone)::date::text AS d, o.orders, o.net::text AS net
    FROM purchase_occasions o JOIN shops s ON s.id = o.shop_id
    WHERE o.shop_id = $1 ORDER BY o.customer_seq, o.n`, [shopId]);
  const by = new Map();
  for (const x of r.rows) {
    if (!by.has(x.c)) by.set(x.c, []);
    by.get(x.c).push({ n: x.n, d: dayNo(x.d), orders: x.orders, net: BigInt(x.net) });
  }
  return [...by.values()];
}

/**
 * The repurchase and revenue-mix counts of the local days [lo, hi] from
 * their definitions, customer by customer (not the cells' arithmetic):
 * active = an occasion in it, returning = one of those not their first,
 * repeat = two in it, the cohort = their first in it, censored when first
 * + N > as_of, else repurchased when their second is within N days.
 */
function periodFigures(custs, lo, hi, asOf, N) {
  const f = { active: 0, returning: 0, repeat: 0, cohort: 0, censored: 0, num: 0, orders: 0, revenue: 0n, firstOrders: 0, firstRevenue: 0n, intervals: 0, days: 0 };
  for (const occ of custs) {
    const inside = occ.filter((o) => o.d >= lo && o.d <= hi);
    if (inside.length) f.active++;
    if (inside.some((o) => o.n >= 2)) f.returning++;
    if (inside.length >= 2) f.repeat++;
    for (const o of inside) {
      f.orders += o.orders;
      f.revenue += o.net;
      if (o.n === 1) {
        f.firstOrders += o.orders;
        f.firstRevenue += o.net;
      } else {
        f.intervals++;
        f.days += o.d - occ[o.n - 2].d;
      }
    }
    const [first, second] = occ;
    if (first.d >= lo && first.d <= hi) {
      f.cohort++;
      if (first.d + N > asOf) f.censored++;
      else if (second && second.d <= first.d + N) f.num++;
    }
  }
  return f;
}

/**
 * GET /v1/metrics/repurchase and /revenue-mix by month over the whole
 * history (the answers read the occasion cells) against periodFigures,
 * bucket by bucket.
 */
async function expectMetrics(s, what, asOf, custs, back) {
  const N = 60;
  const q = `from=${iso(asOf - 1300)}&to=${iso(asOf)}&as_of=${iso(asOf)}&interval=month`;
  const rep = await c.get(`/v1/metrics/repurchase?${q}&window_days=${N}`, { key: s.key });
  assert.equal(rep.status, 200, rep.text);
  const mix = await c.get(`/v1/metrics/revenue-mix?${q}`, { key: s.key });
  assert.equal(mix.status, 200, mix.text);
  const buckets = [[asOf - 1300, asOf, rep.body, mix.body]];
  assert.equal(rep.body.series.length, mix.body.series.length);
  assert.ok(rep.body.series.length >= 43, `months: ${rep.body.series.length}`);
  // as of a past day, occasions after it must not count (history goes on)
  if (back) assert.ok(custs.some((occ) => occ.some((o) => o.d > asOf)), `${what}: orders after as_of`);
  rep.body.series.forEach((b, i) => buckets.push([dayNo(b.from), dayNo(b.to), b, mix.body.series[i]]));
  let seen = 0;
  for (const [lo, hi, r, m] of buckets) {
    const f = periodFigures(custs, lo, hi, asOf, N);
    seen += f.active;
    const got = {
      active: r.returning_customer_rate.denominator, returning: r.returning_customer_rate.numerator,
      repeat: r.in_period_repeat_rate.numerator, cohort: r.n_day_repurchase_rate.denominator + r.n_day_repurchase_rate.censored,
      censored: r.n_day_repurchase_rate.censored, num: r.n_day_repurchase_rate.numerator,
      orders: m.orders, revenue: BigInt(m.revenue), firstOrders: m.first_orders.orders, firstRevenue: BigInt(m.first_orders.revenue),
      intervals: m.days_between_orders.intervals, days: m.days_between_orders.total_days,
    };
    assert.deepEqual(got, f, `${what}: ${iso(lo)}..${iso(hi)}`);
    assert.equal(m.customers, f.active, `${what}: revenue-mix customers ${iso(lo)}..${iso(hi)}`);
    assert.equal(m.new_customers, f.cohort, `${what}: revenue-mix new customers ${iso(lo)}..${iso(hi)}`);
    assert.equal(m.returning_customers, f.returning, `${what}: revenue-mix returning ${iso(lo)}..${iso(hi)}`);
  }
  assert.ok(seen > 0, `${what}: the metrics saw customers`);
}

/**
 * GET /v1/metrics/cohorts (read from the cohort cells), monthly over the
 * whole history and weekly over the last 150 days, against counts from the
 * stored occasions: per cohort its customers, per period the customers
 * with an occasion in it, their orders and net.
 */
async function expectCohorts(s, what, asOf, custs) {
  let active = 0;
  for (const [interval, span] of [['month', 1300], ['week', 150]]) {
    const r = await c.get(`/v1/metrics/cohorts?from=${iso(asOf - span)}&to=${iso(asOf)}&as_of=${iso(asOf)}&interval=${interval}`, { key: s.key });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.cohorts.length >= (interval === 'month' ? 43 : 21), `${what}: ${interval} cohorts`);
    for (const co of r.body.cohorts) {
      const members = custs.filter((occ) => occ[0].d >= dayNo(co.from) && occ[0].d <= dayNo(co.to));
      const want = {
        customers: members.length,
        periods: co.periods.map((p) => {
          const inP = (o) => o.d >= dayNo(p.from) && o.d <= dayNo(p.to);
          const occs = members.flatMap((occ) => occ.filter(inP));
          return { customers: members.filter((occ) => occ.some(inP)).length, orders: occs.reduce((a, o) => a + o.orders, 0), revenue: Number(occs.reduce((a, o) => a + o.net, 0n)) };
        }),
      };
      const got = { customers: co.customers, periods: co.periods.map((p) => ({ customers: p.customers, orders: p.orders, revenue: p.revenue })) };
      assert.deepEqual(got, want, `${what}: ${interval} cohort ${co.from}`);
      active += want.periods.reduce((a, p) => a + p.customers, 0);
    }
  }
  assert.ok(active > 0, `${what}: the cohorts saw customers`);
}

/**
 * GET /v1/metrics/time-to-second-purchase and /first-order over the whole
 * history (read from the first-purchase cells) against counts made from
 * the stored facts, customer by customer: per group, the durations (to the
 * second purchase, or to as_of when censored) and the N-day figures.
 */
async function expectFirstPurchase(s, what, asOf) {
  const N = 60;
  const LD = (col) => `(${col} AT TIME ZONE s.timezone)::date::text`;
  const lo = asOf - 1300;
  const facts = (await svc.db.query(`SELECT f.first_order_channel AS ch, f.first_order_roles AS roles,
      ${LD('f.first_order_at')} AS fd, ${LD('f.second_order_at')} AS sd
    FROM customer_facts f JOIN shops s ON s.id = f.shop_id WHERE f.shop_id = $1`, [s.shopId])).rows
    .map((x) => ({ ...x, fd: dayNo(x.fd), sd: x.sd && dayNo(x.sd) })).filter((x) => x.fd >= lo && x.fd <= asOf);
  const cats = (await svc.db.query(`SELECT cf.category, ${LD('cf.first_at')} AS fd, ${LD('cf.second_at')} AS sd
    FROM customer_category_facts cf JOIN shops s ON s.id = cf.shop_id WHERE cf.shop_id = $1`, [s.shopId])).rows
    .map((x) => ({ ...x, fd: dayNo(x.fd), sd: x.sd && dayNo(x.sd) })).filter((x) => x.fd >= lo && x.fd <= asOf);
  const durations = (xs) => {
    const by = new Map();
    for (const x of xs) {
      const back = x.sd !== null && x.sd <= asOf;
      const d = back ? x.sd - x.fd : asOf - x.fd;
      const e = by.get(d) ?? { day: d, events: 0, censored: 0 };
      e[back ? 'events' : 'censored']++;
      by.set(d, e);
    }
    return { customers: xs.length, repeat: xs.filter((x) => x.sd !== null && x.sd <= asOf).length, curve: [...by.values()].sort((a, b) => a.day - b.day) };
  };
  const q = `from=${iso(lo)}&to=${iso(asOf)}&as_of=${iso(asOf)}`;
  const r = await c.get(`/v1/metrics/time-to-second-purchase?${q}`, { key: s.key });
  assert.equal(r.status, 200, r.text);
  const shape = (g) => ({ customers: g.customers, repeat: g.repeat_customers, curve: g.kaplan_meier.curve.map(({ day, events, censored }) => ({ day, events, censored })) });
  assert.deepEqual(shape(r.body.overall), durations(facts), `${what}: time to second, overall`);
  const names = [...new Set(cats.map((x) => x.category))].sort();
  assert.deepEqual(r.body.categories.map((g) => g.category).sort(), names, `${what}: time to second, categories`);
  for (const g of r.body.categories) assert.deepEqual(shape(g), durations(cats.filter((x) => x.category === g.category)), `${what}: time to second, ${g.category}`);
  assert.ok(facts.length > 0 && names.length >= 3, `${what}: customers and categories seen`);

  const f = await c.get(`/v1/metrics/first-order?${q}&window_days=${N}`, { key: s.key });
  assert.equal(f.status, 200, f.text);
  const nday = (xs) => {
    const censored = xs.filter((x) => x.fd + N > asOf).length;
    return {
      customers: xs.length, repeat: xs.filter((x) => x.sd !== null && x.sd <= asOf).length, censored,
      num: xs.filter((x) => x.fd + N <= asOf && x.sd !== null && x.sd <= x.fd + N).length, den: xs.length - censored,
    };
  };
  const got = (g) => ({ customers: g.customers, repeat: g.repeat_customers, censored: g.n_day_repurchase_rate.censored, num: g.n_day_repurchase_rate.numerator, den: g.n_day_repurchase_rate.denominator });
  assert.deepEqual(got(f.body.overall), nday(facts), `${what}: first-order overall`);
  for (const g of f.body.by_role) assert.deepEqual(got(g), nday(facts.filter((x) => x.roles.includes(g.role))), `${what}: first-order role ${g.role}`);
  const channels = [...new Set(facts.map((x) => x.ch))].sort();
  assert.deepEqual(f.body.by_channel.map((g) => g.channel).sort(), channels, `${what}: first-order channels`);
  for (const g of f.body.by_channel) assert.deepEqual(got(g), nday(facts.filter((x) => x.ch === g.channel)), `${what}: first-order channel ${g.channel}`);
}

/** Every member of a built-in segment, [{id, reason}], following the cursor. */
async function members(s, code) {
  const got = [];
  let cursor = null;
  do {
    const r = await c.get(`/v1/segments/${code}/customers?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { key: s.key });
    assert.equal(r.status, 200, r.text);
    for (const x of r.body.items) got.push({ id: x.id, reason: x.reason });
    cursor = r.body.next_cursor;
  } while (cursor);
  return got;
}

/** Is vip read from vip_spend (kept for this day and zone) rather than computed live? */
async function vipKept(shopId) {
  const r = await svc.db.query(`SELECT count(*) AS n FROM vip_state v JOIN shops s ON s.id = v.shop_id
    WHERE v.shop_id = $1 AND v.tz = s.timezone AND v.as_of = (now() AT TIME ZONE s.timezone)::date`, [shopId]);
  return r.rows[0].n === '1';
}

async function expectVip(s, what, kept) {
  if (kept !== undefined) assert.equal(await vipKept(s.shopId), kept, `${what}: vip read ${kept ? 'kept' : 'live'}`);
  const want = await vipReference(s.shopId);
  assert.deepEqual(await members(s, 'vip'), want, `vip ${what}`);
  return want;
}

/** Rebuild the kept spends (as the janitor does; it may hold the lock a moment). */
async function rebuildVip(s) {
  for (let i = 0; i < 200; i++) {
    const r = await svc.db.query('SELECT vip_spend_rebuild($1) AS done', [s.shopId]);
    if (r.rows[0].done) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail('vip_spend_rebuild: the lock stayed busy');
}

/** rebuyd verify finds 0 differences; and the metrics read from the occasion cells are right. */
async function verify(s, what) {
  const t = await svc.db.query('SELECT (now() AT TIME ZONE timezone)::date::text AS d FROM shops WHERE id = $1', [s.shopId]);
  const custs = await storedOccasions(s.shopId);
  for (const back of [0, 200]) {
    const when = back ? `${what}, as of ${back} days ago` : what;
    const asOf = dayNo(t.rows[0].d) - back;
    await expectMetrics(s, when, asOf, custs, back);
    await expectCohorts(s, when, asOf, custs);
    await expectFirstPurchase(s, when, asOf);
  }
  const v = await svc.cli(['verify', '--shop', s.shopId]);
  assert.equal(v.code, 0, `${what}: verify: ${v.stdout}\n${v.stderr}`);
  assert.match(v.stdout, /(^|\n)0 differences\n/, what);
}

/** Deltas not folded yet: of the facts' histograms and of the occasion cells. */
async function pendingDeltas(shopId) {
  const r = await svc.db.query(`SELECT (SELECT count(*) FROM facts_cell_deltas WHERE shop_id = $1) AS facts,
      (SELECT count(*) FROM occasion_deltas WHERE shop_id = $1) AS occasions`, [shopId]);
  return { facts: Number(r.rows[0].facts), occasions: Number(r.rows[0].occasions) };
}

/** rebuyd's minute fold, now. */
async function fold() {
  await svc.db.query('SELECT facts_cells_compact() + occasion_cells_compact() + first_cells_compact()');
}

async function patchShop(s, body) {
  const r = await c.patch(`/v1/shops/${s.shopId}`, body, { key: s.key });
  assert.equal(r.status, 200, r.text);
}

const QUINTILES = { method: 'quintiles' };
const THRESHOLDS = {
  method: 'thresholds', recency_days: [30, 90, 180, 400], frequency: [2, 3, 5, 7], monetary: [2000, 5000, 10000, 20000],
};
const OFF2 = OFF_X > 0 ? OFF_X - 6 : OFF_X + 6; // 6:xx or 18:xx there: no date change mid-test

describe('histograms kept with the facts', () => {
  test('the RFM summary and due-for-repurchase equal a from-scratch computation from the stored facts through loads, folds, refunds, erasures, zone changes and thresholds; verify agrees', async (t) => {
    const seed = Number(process.env.REBUY_RFM_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`seed ${seed} (REBUY_RFM_SEED=${seed} reproduces)`);
    const rnd = mulberry32(seed);
    const tag = uniq('rc').replace(/[^A-Za-z0-9-]/g, '');
    const r0 = await c.post('/v1/shops', { name: 'RFM cells', currency: 'CNY', timezone: ZX }, { key: svc.platformKey });
    assert.equal(r0.status, 201, r0.text);
    const s = { shopId: r0.body.shop.id, key: r0.body.admin_key.key };

    const orders = [...generate(rnd, tag, 240), ...oneTimers(rnd, tag, 80)];
    await bulk(s.key, shuffle(orders, rnd));
    // cancels, partial and full refunds (a full refund disqualifies), erasures
    const touched = new Set();
    for (const o of orders) {
      const x = rnd();
      if (x < 0.1) touched.add(o.id);
      if (x < 0.04) {
        const r = await c.req('POST', `/v1/orders/${o.id}/cancel`, { key: s.key });
        assert.equal(r.status, 200, r.text);
      } else if (x < 0.1) {
        const amount = x < 0.07 ? o.total : Math.floor(o.total / 3);
        const r = await c.post(`/v1/orders/${o.id}/refunds`, { id: `rf-${o.id}`, amount }, { key: s.key });
        assert.equal(r.status, 201, r.text);
      }
    }
    for (const i of [3, 50, 51]) { // ERASED below
      const r = await c.del(`/v1/customers/${tag}-c${i}`, { key: s.key });
      assert.equal(r.status, 204, r.text);
    }
    const loaded = await expectReference(s, QUINTILES, 'after the load');
    assert.ok(loaded.customers >= 200, `scored: ${loaded.customers}`);
    assert.ok(loaded.segments.filter((x) => x.customers > 0).length >= 6, JSON.stringify(loaded.segments));
    const due = await expectDue(s, 'after the load');
    t.diagnostic(`due-for-repurchase: ${due.length} members, by ${JSON.stringify(due.reduce((a, x) => ({ ...a, [x.reason.category]: (a[x.reason.category] ?? 0) + 1 }), {}))}`);
    assert.ok(due.length >= 10, 'due-for-repurchase has members');
    assert.ok(due.some((x) => x.reason.category === null), 'some are due by the shop median');
    // vip: live (the janitor has not kept this new shop's spends yet), then kept
    await svc.db.query('DELETE FROM vip_state WHERE shop_id = $1', [s.shopId]);
    const vipLive = await expectVip(s, 'live after the load', false);
    assert.ok(vipLive.length >= 5, `vip members: ${vipLive.length}`);
    await rebuildVip(s);
    assert.deepEqual(await expectVip(s, 'kept after the load', true), vipLive);
    await verify(s, 'after the load');

    // the fold changes no answer
    await fold();
    assert.deepEqual(await pendingDeltas(s.shopId), { facts: 0, occasions: 0 }, 'every delta folded');
    assert.deepEqual(await summary(s.key), loaded, 'after the fold');
    await expectDue(s, 'after the fold');
    await verify(s, 'after the fold');

    // new deltas on top of folded cells
    const more = [];
    for (let i = 0; i < 40; i++) {
      const cust = `${tag}-c${Math.floor(rnd() * 240)}`;
      more.push(order(`${cust}-late${i}`, cust, Math.floor(rnd() * 30 * DAY) + 60000, PRICES[i % PRICES.length], rnd));
    }
    await bulk(s.key, more);
    for (const o of more.slice(0, 5)) {
      const r = await c.post(`/v1/orders/${o.id}/refunds`, { id: `rf-${o.id}`, amount: 100 }, { key: s.key });
      assert.equal(r.status, 201, r.text);
    }
    // rebuyd's minute fold may have just taken them: one more order then
    const someOfEach = async () => Object.values(await pendingDeltas(s.shopId)).every((n) => n > 0);
    for (let i = 0; i < 3 && !await someOfEach(); i++) {
      const cust = `${tag}-c${i}`;
      await bulk(s.key, [order(`${cust}-late-extra${i}`, cust, 120000, PRICES[i], rnd)]);
    }
    assert.ok(await someOfEach(), 'the new orders left deltas of both kinds');
    await expectReference(s, QUINTILES, 'cells and deltas');
    await expectDue(s, 'cells and deltas');
    await expectVip(s, 'kept, after more orders and refunds', true);
    await verify(s, 'cells and deltas');

    // the cells' days are local: a new zone rebuilds them
    await patchShop(s, { timezone: etcZone(OFF2) });
    await expectReference(s, QUINTILES, `in ${etcZone(OFF2)}`);
    await expectDue(s, `in ${etcZone(OFF2)}`);
    await expectVip(s, `live in ${etcZone(OFF2)}`, false);
    await rebuildVip(s);
    await expectVip(s, `kept in ${etcZone(OFF2)}`, true);
    await verify(s, `in ${etcZone(OFF2)}`);

    // a rule change refreshes every customer in bulk (facts first, occasions
    // after): the kept spends must follow
    await patchShop(s, { settings: { repurchase_rule: { min_order_amount: 2000 } } });
    await expectReference(s, QUINTILES, 'after a rule change');
    await expectDue(s, 'after a rule change');
    await expectVip(s, 'kept, after a rule change', true);
    await verify(s, 'after a rule change');
    await patchShop(s, { settings: { repurchase_rule: { min_order_amount: 0 } } });
    await expectVip(s, 'kept, after the rule is back', true);

    // a merge window: a first occasion of two orders an hour apart; when
    // its first order is cancelled the occasion starts an hour later, and
    // every occasion of the customer keeps its number (each row must learn
    // its first's new start)
    const merged = [];
    const ERASED = [3, 50, 51];
    for (let i = 0; i < 240 && merged.length < 15; i++) {
      const mine = orders.filter((o) => o.customer_id === `${tag}-c${i}`);
      const first = mine.reduce((a, o) => (!a || o.placed_at < a.placed_at ? o : a), null);
      if (mine.length < 4 || touched.has(first.id) || ERASED.includes(i)) continue;
      const m = order(`${tag}-c${i}-m`, `${tag}-c${i}`, 0, PRICES[0], rnd);
      m.placed_at = new Date(Date.parse(first.placed_at) + 3600000).toISOString();
      merged.push({ first, m });
    }
    assert.ok(merged.length >= 5, `customers with a merged first occasion: ${merged.length}`);
    await bulk(s.key, merged.map((x) => x.m));
    await patchShop(s, { settings: { repurchase_rule: { merge_window_hours: 48 } } });
    await verify(s, 'with a merge window');
    for (const { first } of merged) {
      const r = await c.req('POST', `/v1/orders/${first.id}/cancel`, { key: s.key });
      assert.equal(r.status, 200, r.text);
    }
    await verify(s, 'with a merge window, first orders cancelled');
    await patchShop(s, { settings: { repurchase_rule: { merge_window_hours: 0 } } });

    await patchShop(s, { settings: { rfm: THRESHOLDS } });
    await expectReference(s, THRESHOLDS, 'thresholds');
    await patchShop(s, { settings: { rfm: QUINTILES } });

    // a corrupted cell, bucket or spend is reported
    for (const [table, col, what] of [['rfm_cells', 'customers', 'rfm cell differs'],
      ['rfm_spend_cells', 'customers', 'rfm spend bucket differs'], ['interval_cells', 'customers', 'interval cell differs'],
      ['vip_spend', 'spend', 'vip spend differs'], ['occasion_days', 'occasions', 'occasion day differs'],
      ['occasion_pairs', 'laters', 'occasion pair differs'], ['occasion_pair_blocks', 'triples', 'occasion pair block differs'],
      ['first_cells', 'customers', 'first-purchase cell differs'], ['category_cells', 'customers', 'category cell differs'],
      ['cohort_cells', 'new_months', 'cohort cell differs']]) {
      await fold();
      const u = await svc.db.query(`UPDATE ${table} SET ${col} = ${col} + 1
        WHERE ctid = (SELECT ctid FROM ${table} WHERE shop_id = $1 AND ${col} > 0 LIMIT 1) RETURNING ctid::text`, [s.shopId]);
      assert.equal(u.rowCount, 1);
      const v = await svc.cli(['verify', '--shop', s.shopId]);
      assert.equal(v.code, 1, `verify must fail: ${v.stdout}`);
      assert.match(v.stdout, /(^|\n)1 differences\n/, v.stdout);
      assert.ok(v.stdout.includes(what), v.stdout);
      await svc.db.query(`UPDATE ${table} SET ${col} = ${col} - 1 WHERE ctid = $1::tid`, [u.rows[0].ctid]);
    }
    await verify(s, 'after the corruption is undone');
  });

  test('concurrent orders while the zone changes twice and the deltas are folded: verify finds 0 differences, the summary and due-for-repurchase equal the computation', async (t) => {
    const seed = Number(process.env.REBUY_RFM_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`seed ${seed}`);
    const rnd = mulberry32(seed);
    const tag = uniq('rk').replace(/[^A-Za-z0-9-]/g, '');
    const r0 = await c.post('/v1/shops', { name: 'RFM cells 2', currency: 'CNY', timezone: ZX }, { key: svc.platformKey });
    assert.equal(r0.status, 201, r0.text);
    const s = { shopId: r0.body.shop.id, key: r0.body.admin_key.key };
    const queue = shuffle(generate(rnd, tag, 120), rnd);
    const total = queue.length;
    const writers = Array.from({ length: 8 }, async () => {
      for (let o = queue.shift(); o; o = queue.shift()) {
        const r = await c.put(`/v1/orders/${o.id}`, (({ id, ...b }) => b)(o), { key: s.key });
        assert.equal(r.status, 201, r.text);
      }
    });
    const others = (async () => {
      for (const tz of [etcZone(OFF2), ZX]) {
        while (queue.length > total * (tz === ZX ? 0.3 : 0.7)) await new Promise((res) => setTimeout(res, 5));
        await patchShop(s, { timezone: tz });
        await fold();
        await rebuildVip(s);
      }
    })();
    await Promise.all([...writers, others]);
    await expectReference(s, QUINTILES, 'after the concurrent load');
    await expectDue(s, 'after the concurrent load');
    await expectVip(s, 'kept, after the concurrent load', true);
    await verify(s, 'after the concurrent load');
  });
});
