// Reference implementation of the repurchase metrics (metrics.md,
// metrics2.md) in plain SQL over the raw tables only: shops, orders,
// order_lines, traffic.  It never reads customer_facts,
// customer_category_facts or purchase_occasions and calls no rebuy SQL
// function, so a mistake in the service's stored facts (or in its metric
// queries) shows up as a difference.
//
// For one shop, one repurchase rule and one as_of, build() derives from the
// orders (in temp tables of this session):
//   q    qualifying orders, numbered per customer by (placed_at, id)
//   w    each of them with the number of the occasion it belongs to: with a
//        merge window, a walk (recursive CTE) along the customer's orders in
//        which an order starts a new occasion when it is placed more than
//        merge_window_hours after the start of the current occasion; with
//        merge_window_hours 0 every order is an occasion; occasions that start
//        after the end of as_of (shop's local date) are dropped, one that
//        starts by then keeps all its orders
//   occ  occasions: customer, n, local date of the starting order, orders, net
//   cust first/second occasion dates, first qualifying order's channel,
//        distinct roles of the first occasion's lines
//   cat  per customer and category: dates of the first and second occasions
//        that included a line of that category
// The metric functions then count over those, one straightforward query per
// figure, and return objects shaped like the API's answers (numbers only;
// descriptions are not compared).
import { ratio, money, round4, buckets, period, minDate } from './dates.js';

const num = (v) => (v === null || v === undefined ? null : Number(v));

export function mode(rate) {
  if (rate === null) return null;
  if (rate < 0.15) return 'acquisition';
  if (rate < 0.30) return 'hybrid';
  return 'loyalty';
}

export class Reference {
  /** db: a pg.Client on the service's database; shop: {id, timezone, currency}; rule: the repurchase rule. */
  constructor(db, shop, rule) {
    this.db = db;
    this.shop = shop;
    this.rule = rule;
    this.built = new Map(); // as_of -> table suffix
    this.gen = 0;
    this.prefix = `r${Math.floor(Math.random() * 1e6)}`;
  }

  lit(v) { return this.db.escapeLiteral(String(v)); }

  /** Forget the derived tables (after the rule or the orders changed). */
  async reset(rule = this.rule) {
    for (const k of this.built.values()) {
      for (const t of ['q', 'w', 'occ', 'cust', 'cat']) await this.db.query(`DROP TABLE IF EXISTS ${t}_${k}`);
    }
    this.built.clear();
    this.rule = rule;
  }

  /** Derived tables for as_of; returns their suffix. */
  async build(asOf) {
    if (this.built.has(asOf)) return this.built.get(asOf);
    // the same tables serve another as_of when no order at all is placed between the two
    for (const [other, k] of this.built) {
      const [lo, hi] = other < asOf ? [other, asOf] : [asOf, other];
      const r = await this.db.query(`SELECT NOT EXISTS (SELECT 1 FROM orders
          WHERE shop_id = $1 AND (placed_at AT TIME ZONE $2)::date > $3::date
            AND (placed_at AT TIME ZONE $2)::date <= $4::date) AS same`, [this.shop.id, this.shop.timezone, lo, hi]);
      if (r.rows[0].same) { this.built.set(asOf, k); return k; }
    }
    const k = `${this.prefix}_${asOf.replace(/-/g, '')}_${++this.gen}`;
    const { exclude_refunded: excl, min_order_amount: minAmt, merge_window_hours: win } = this.rule;
    if (!Number.isInteger(minAmt) || !Number.isInteger(win) || typeof excl !== 'boolean') throw new Error('bad rule');
    const tz = this.lit(this.shop.timezone);
    const shop = this.lit(this.shop.id);
    const q = (sql) => this.db.query(sql);
    await q(`CREATE TEMP TABLE q_${k} AS
      SELECT o.seq, o.customer_seq, o.id, o.placed_at, o.channel,
             o.total - o.refunded_amount AS net,
             row_number() OVER (PARTITION BY o.customer_seq ORDER BY o.placed_at, o.id) AS rn
        FROM orders o
       WHERE o.shop_id = ${shop}
         AND o.status = 'placed'
         AND o.total >= ${minAmt}
         AND NOT (${excl} AND o.refunded_amount > 0 AND o.refunded_amount >= o.total)`);
    await q(`CREATE INDEX ON q_${k} (customer_seq, rn)`);
    await q(`ANALYZE q_${k}`);
    const newOcc = `(q.placed_at > w.occ_start + make_interval(hours => ${win}))`;
    if (win === 0) {
      // no merging: every qualifying order is its own occasion
      await q(`CREATE TEMP TABLE w_${k} AS
        SELECT customer_seq, rn, seq, rn AS n, placed_at AS occ_start FROM q_${k}`);
    } else await q(`CREATE TEMP TABLE w_${k} AS
      WITH RECURSIVE walk (customer_seq, rn, seq, n, occ_start) AS (
          SELECT customer_seq, rn, seq, 1, placed_at FROM q_${k} WHERE rn = 1
        UNION ALL
          SELECT q.customer_seq, q.rn, q.seq,
                 CASE WHEN ${newOcc} THEN w.n + 1 ELSE w.n END,
                 CASE WHEN ${newOcc} THEN q.placed_at ELSE w.occ_start END
            FROM walk w JOIN q_${k} q ON q.customer_seq = w.customer_seq AND q.rn = w.rn + 1)
      SELECT * FROM walk`);
    // the cut-off: occasions that start after the end of as_of do not exist yet;
    // one that starts by then counts whole (metrics.md)
    await q(`DELETE FROM w_${k} WHERE (occ_start AT TIME ZONE ${tz})::date > ${this.lit(asOf)}::date`);
    await q(`CREATE INDEX ON w_${k} (seq)`);
    await q(`ANALYZE w_${k}`);
    await q(`CREATE TEMP TABLE occ_${k} AS
      SELECT w.customer_seq, w.n, w.occ_start AS started_at,
             (w.occ_start AT TIME ZONE ${tz})::date AS d,
             count(*)::bigint AS orders, sum(q.net)::bigint AS net
        FROM w_${k} w JOIN q_${k} q ON q.seq = w.seq
       GROUP BY w.customer_seq, w.n, w.occ_start`);
    await q(`CREATE INDEX ON occ_${k} (customer_seq, n)`);
    await q(`CREATE INDEX ON occ_${k} (d)`);
    await q(`ANALYZE occ_${k}`);
    await q(`CREATE TEMP TABLE cust_${k} AS
      SELECT o1.customer_seq, q1.channel AS first_channel, o1.d AS first_date, o2.d AS second_date,
             r.roles AS first_roles
        FROM occ_${k} o1
        JOIN q_${k} q1 ON q1.customer_seq = o1.customer_seq AND q1.rn = 1
        LEFT JOIN occ_${k} o2 ON o2.customer_seq = o1.customer_seq AND o2.n = 2
        JOIN (SELECT w.customer_seq, array_agg(DISTINCT l.role ORDER BY l.role) AS roles
                FROM w_${k} w JOIN order_lines l ON l.order_seq = w.seq
               WHERE w.n = 1 GROUP BY w.customer_seq) r ON r.customer_seq = o1.customer_seq
       WHERE o1.n = 1`);
    await q(`CREATE INDEX ON cust_${k} (customer_seq)`);
    await q(`ANALYZE cust_${k}`);
    await q(`CREATE TEMP TABLE cat_${k} AS
      SELECT customer_seq, category,
             min(d) FILTER (WHERE k = 1) AS first_date, min(d) FILTER (WHERE k = 2) AS second_date
        FROM (SELECT x.*, row_number() OVER (PARTITION BY customer_seq, category ORDER BY n) AS k
                FROM (SELECT DISTINCT w.customer_seq, l.category, w.n, o.d
                        FROM w_${k} w
                        JOIN order_lines l ON l.order_seq = w.seq
                        JOIN occ_${k} o ON o.customer_seq = w.customer_seq AND o.n = w.n) x) y
       GROUP BY customer_seq, category`);
    await q(`ANALYZE cat_${k}`);
    this.built.set(asOf, k);
    return k;
  }

  /** Sizes of the derived tables (for the log). */
  async stats(asOf) {
    const k = await this.build(asOf);
    const r = await this.db.query(`SELECT (SELECT count(*) FROM q_${k}) AS orders,
      (SELECT count(*) FROM occ_${k}) AS occasions, (SELECT count(*) FROM cust_${k}) AS customers,
      (SELECT count(*) FROM occ_${k} WHERE orders > 1) AS merged_occasions,
      (SELECT count(*) FROM cust_${k} WHERE second_date IS NOT NULL) AS repeat_customers`);
    return Object.fromEntries(Object.entries(r.rows[0]).map(([a, b]) => [a, Number(b)]));
  }

  definition(p, extra = {}) {
    return {
      timezone: this.shop.timezone, from: p.from, to: p.to, as_of: p.as_of,
      rule: { ...this.rule }, channel: p.channel ?? null, ...extra,
    };
  }

  // ------------------------------------------------------------ slice 1

  /** Numbers of GET /v1/metrics/repurchase for one period (no series). */
  async repurchaseFigures(p) {
    const k = await this.build(p.as_of);
    const ch = p.channel ?? null;
    // active: an occasion dated in the period; returning: their second
    // occasion is dated <= to (occasions are numbered in time order, so
    // "at least 2 occasions up to `to`" is "the second one is up to `to`")
    const a = (await this.db.query(`
      WITH active AS (SELECT o.customer_seq, count(*) AS in_period
                        FROM occ_${k} o JOIN cust_${k} c USING (customer_seq)
                       WHERE o.d BETWEEN $2::date AND $3::date AND ($1::text IS NULL OR c.first_channel = $1)
                       GROUP BY o.customer_seq)
      SELECT count(*) AS active,
             count(*) FILTER (WHERE c.second_date <= $3::date) AS returning,
             count(*) FILTER (WHERE a.in_period >= 2) AS repeat_in_period
        FROM active a JOIN cust_${k} c USING (customer_seq)`, [ch, p.from, p.to])).rows[0];
    const n = (await this.db.query(`
      SELECT count(*) FILTER (WHERE first_date + $4::int > $5::date) AS censored,
             count(*) FILTER (WHERE first_date + $4::int <= $5::date) AS den,
             count(*) FILTER (WHERE first_date + $4::int <= $5::date
                               AND second_date <= first_date + $4::int) AS num
        FROM cust_${k}
       WHERE ($1::text IS NULL OR first_channel = $1) AND first_date BETWEEN $2::date AND $3::date`,
    [ch, p.from, p.to, p.window_days, p.as_of])).rows[0];
    const rate = ratio(n.num, n.den);
    return {
      returning_customer_rate: { numerator: num(a.returning), denominator: num(a.active), rate: ratio(a.returning, a.active) },
      in_period_repeat_rate: { numerator: num(a.repeat_in_period), denominator: num(a.active), rate: ratio(a.repeat_in_period, a.active) },
      n_day_repurchase_rate: { numerator: num(n.num), denominator: num(n.den), rate, censored: num(n.censored), mode: mode(rate) },
    };
  }

  /** GET /v1/metrics/repurchase (without descriptions). */
  async repurchase(p) {
    const top = await this.repurchaseFigures(p);
    const out = { definition: this.definition(p, { window_days: p.window_days }), ...top };
    if (p.interval) {
      out.series = [];
      for (const [from, to] of buckets(p.interval, p.from, p.to)) {
        const b = await this.repurchaseFigures({ ...p, from, to });
        delete b.n_day_repurchase_rate.mode;
        out.series.push({ from, to, ...b });
      }
    }
    return out;
  }

  /** GET /v1/metrics/time-to-second-purchase (without descriptions). */
  async timeToSecond(p) {
    const k = await this.build(p.as_of);
    const ch = p.channel ?? null;
    const args = [ch, p.from, p.to, p.as_of];
    const dur = `CASE WHEN second_date IS NOT NULL THEN second_date - first_date ELSE $4::date - first_date END`;
    const overallRows = (await this.db.query(`
      SELECT ${dur} AS dur, second_date IS NOT NULL AS event, count(*) AS n
        FROM cust_${k}
       WHERE ($1::text IS NULL OR first_channel = $1) AND first_date BETWEEN $2::date AND $3::date
         AND $4::date IS NOT NULL
       GROUP BY 1, 2`, args)).rows;
    const overallPct = (await this.db.query(`
      SELECT percentile_disc(ARRAY[0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (ORDER BY second_date - first_date) AS p
        FROM cust_${k}
       WHERE ($1::text IS NULL OR first_channel = $1) AND first_date BETWEEN $2::date AND $3::date
         AND second_date IS NOT NULL`, args.slice(0, 3))).rows[0].p;
    const catFilter = `c.first_date BETWEEN $2::date AND $3::date
         AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM cust_${k} u WHERE u.customer_seq = c.customer_seq AND u.first_channel = $1))
         AND ($5::text IS NULL OR c.category = $5)`;
    const catRows = (await this.db.query(`
      SELECT c.category, ${dur.replace(/second_date/g, 'c.second_date').replace(/first_date/g, 'c.first_date')} AS dur,
             c.second_date IS NOT NULL AS event, count(*) AS n
        FROM cat_${k} c
       WHERE ${catFilter}
       GROUP BY 1, 2, 3`, [...args, p.category ?? null])).rows;
    const catPct = (await this.db.query(`
      SELECT c.category, percentile_disc(ARRAY[0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (ORDER BY c.second_date - c.first_date) AS p
        FROM cat_${k} c
       WHERE ${catFilter} AND c.second_date IS NOT NULL AND $4::date IS NOT NULL
       GROUP BY 1`, [...args, p.category ?? null])).rows;
    const pct = new Map(catPct.map((r) => [r.category, r.p]));
    const byCat = new Map();
    for (const r of catRows) {
      if (!byCat.has(r.category)) byCat.set(r.category, []);
      byCat.get(r.category).push(r);
    }
    const cats = [...byCat.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      definition: this.definition(p),
      overall: group(overallRows, overallPct),
      categories: cats.map((c) => ({ ...group(byCat.get(c), pct.get(c) ?? null), category: c })),
    };
  }

  // ------------------------------------------------------------ slice 2

  /** GET /v1/metrics/cohorts. */
  async cohorts(p) {
    const k = await this.build(p.as_of);
    const ch = p.channel ?? null;
    const interval = p.interval ?? 'month';
    const out = {
      definition: this.definition(p, { currency: this.shop.currency, interval, periods: p.periods ?? null }),
      cohorts: [],
    };
    for (const [cf, ct] of buckets(interval, p.from, p.to)) {
      const size = (await this.db.query(`SELECT count(*) AS n FROM cust_${k}
         WHERE ($1::text IS NULL OR first_channel = $1) AND first_date BETWEEN $2::date AND $3::date`,
      [ch, cf, ct])).rows[0].n;
      const per = [];
      for (let i = 0; ; i++) {
        if (p.periods !== undefined && i >= p.periods) break;
        const [s, e] = period(interval, cf, i);
        if (s > p.as_of) break;
        per.push({ period: i, from: s, to: minDate(e, p.as_of), complete: e <= p.as_of });
      }
      const cells = new Map((await this.db.query(`
        SELECT pr.k, count(DISTINCT o.customer_seq) AS customers,
               sum(o.orders) AS orders, sum(o.net) AS revenue
          FROM unnest($4::int[], $5::date[], $6::date[]) AS pr (k, s, e)
          JOIN occ_${k} o ON o.d BETWEEN pr.s AND pr.e
          JOIN cust_${k} c ON c.customer_seq = o.customer_seq
         WHERE ($1::text IS NULL OR c.first_channel = $1) AND c.first_date BETWEEN $2::date AND $3::date
         GROUP BY pr.k`,
      [ch, cf, ct, per.map((x) => x.period), per.map((x) => x.from), per.map((x) => x.to)])).rows
        .map((r) => [Number(r.k), r]));
      out.cohorts.push({
        from: cf, to: ct, customers: num(size),
        periods: per.map((x) => {
          const c = cells.get(x.period);
          const customers = c ? num(c.customers) : 0;
          return { ...x, customers, share: ratio(customers, size), orders: c ? num(c.orders) : 0, revenue: c ? num(c.revenue) : 0 };
        }),
      });
    }
    return out;
  }

  /** Occasions of the (channel's) customers dated in [from, to]: the sums revenue-mix and sales use. */
  async periodSums(p) {
    const k = await this.build(p.as_of);
    const r = (await this.db.query(`
      WITH c AS (SELECT customer_seq FROM cust_${k} WHERE $1::text IS NULL OR first_channel = $1),
           o AS (SELECT o.customer_seq, o.n, o.d, o.orders, o.net, prev.d AS prev_d
                   FROM occ_${k} o
                   JOIN c USING (customer_seq)
                   LEFT JOIN occ_${k} prev ON prev.customer_seq = o.customer_seq AND prev.n = o.n - 1
                  WHERE o.d BETWEEN $2::date AND $3::date)
      SELECT coalesce(sum(net), 0) AS revenue,
             coalesce(sum(orders), 0) AS orders,
             count(DISTINCT customer_seq) AS customers,
             coalesce(sum(orders) FILTER (WHERE n = 1), 0) AS first_orders,
             coalesce(sum(net) FILTER (WHERE n = 1), 0) AS first_revenue,
             coalesce(sum(orders) FILTER (WHERE n >= 2), 0) AS repeat_orders,
             coalesce(sum(net) FILTER (WHERE n >= 2), 0) AS repeat_revenue,
             count(DISTINCT customer_seq) FILTER (WHERE n = 1) AS new_customers,
             count(DISTINCT customer_seq) FILTER (WHERE n >= 2) AS returning_customers,
             count(*) FILTER (WHERE n >= 2) AS intervals,
             coalesce(sum(d - prev_d) FILTER (WHERE n >= 2), 0) AS total_days
        FROM o`, [p.channel ?? null, p.from, p.to])).rows[0];
    return Object.fromEntries(Object.entries(r).map(([a, b]) => [a, Number(b)]));
  }

  async revenueMixFigures(p) {
    const s = await this.periodSums(p);
    return {
      revenue: s.revenue, orders: s.orders, customers: s.customers,
      first_orders: { orders: s.first_orders, revenue: s.first_revenue, average_order_value: money(s.first_revenue, s.first_orders) },
      repeat_orders: { orders: s.repeat_orders, revenue: s.repeat_revenue, average_order_value: money(s.repeat_revenue, s.repeat_orders) },
      new_customers: s.new_customers,
      returning_customers: s.returning_customers,
      returning_customer_revenue_share: ratio(s.repeat_revenue, s.revenue),
      average_order_value: money(s.revenue, s.orders),
      orders_per_customer: ratio(s.orders, s.customers),
      days_between_orders: { average: ratio(s.total_days, s.intervals), intervals: s.intervals, total_days: s.total_days },
    };
  }

  /** GET /v1/metrics/revenue-mix. */
  async revenueMix(p) {
    const out = { definition: this.definition(p, { currency: this.shop.currency }), ...await this.revenueMixFigures(p) };
    if (p.interval) {
      out.series = [];
      for (const [from, to] of buckets(p.interval, p.from, p.to)) out.series.push({ from, to, ...await this.revenueMixFigures({ ...p, from, to }) });
    }
    return out;
  }

  /** GET /v1/metrics/first-order. */
  async firstOrder(p) {
    const k = await this.build(p.as_of);
    const rows = (await this.db.query(`
      WITH c AS (SELECT customer_seq, first_channel, first_roles,
                        second_date IS NOT NULL AS came_back,
                        first_date + $3::int > $4::date AS censored,
                        first_date + $3::int <= $4::date AND second_date <= first_date + $3::int AS within
                   FROM cust_${k} WHERE first_date BETWEEN $1::date AND $2::date)
      SELECT 'overall' AS kind, '' AS key, count(*) AS customers, count(*) FILTER (WHERE came_back) AS repeat,
             count(*) FILTER (WHERE censored) AS censored, count(*) FILTER (WHERE within) AS within FROM c
      UNION ALL
      SELECT 'role', r, count(*), count(*) FILTER (WHERE came_back), count(*) FILTER (WHERE censored),
             count(*) FILTER (WHERE within) FROM c, unnest(first_roles) AS r GROUP BY r
      UNION ALL
      SELECT 'channel', first_channel, count(*), count(*) FILTER (WHERE came_back),
             count(*) FILTER (WHERE censored), count(*) FILTER (WHERE within) FROM c GROUP BY first_channel`,
    [p.from, p.to, p.window_days, p.as_of])).rows;
    const g = (r) => {
      const customers = r ? num(r.customers) : 0;
      const rep = r ? num(r.repeat) : 0;
      const cens = r ? num(r.censored) : 0;
      const within = r ? num(r.within) : 0;
      return {
        customers, repeat_customers: rep, repeat_share: ratio(rep, customers),
        n_day_repurchase_rate: { numerator: within, denominator: customers - cens, rate: ratio(within, customers - cens), censored: cens },
      };
    };
    const find = (kind, key) => rows.find((r) => r.kind === kind && r.key === key);
    const channels = rows.filter((r) => r.kind === 'channel').map((r) => r.key).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      definition: this.definition({ ...p, channel: null }, { window_days: p.window_days }),
      overall: g(find('overall', '')),
      by_role: ['traffic', 'activity', 'regular'].map((role) => ({ ...g(find('role', role)), role })),
      by_channel: channels.map((c) => ({ ...g(find('channel', c)), channel: c })),
    };
  }

  async salesFigures(p) {
    const s = await this.periodSums(p);
    const t = (await this.db.query(`
      SELECT sum(visitors) AS visitors, sum(sessions) AS sessions, count(DISTINCT day) AS days
        FROM traffic
       WHERE shop_id = $1 AND day BETWEEN $2::date AND $3::date AND ($4::text IS NULL OR channel = $4)`,
    [this.shop.id, p.from, p.to, p.channel ?? null])).rows[0];
    const visitors = num(t.visitors);
    return {
      sales: s.revenue,
      visitors,
      sessions: num(t.sessions),
      traffic_days: num(t.days),
      buyers: s.customers,
      conversion_rate: visitors ? ratio(s.customers, visitors) : null,
      orders: s.orders,
      average_order_value: money(s.revenue, s.orders),
      repurchase_rate: ratio(s.orders - s.customers, s.customers),
    };
  }

  /** GET /v1/metrics/sales-decomposition. */
  async salesDecomposition(p) {
    const out = { definition: this.definition(p, { currency: this.shop.currency }), ...await this.salesFigures(p) };
    if (p.interval) {
      out.series = [];
      for (const [from, to] of buckets(p.interval, p.from, p.to)) out.series.push({ from, to, ...await this.salesFigures({ ...p, from, to }) });
    }
    return out;
  }
}

/**
 * One time-to-second group from rows {dur, event, n} (one per duration and
 * outcome) and the percentile_disc array (or null).
 */
function group(rows, pct) {
  const byDur = new Map();
  let customers = 0;
  let repeat = 0;
  for (const r of rows) {
    const d = Number(r.dur);
    const n = Number(r.n);
    if (!byDur.has(d)) byDur.set(d, { events: 0, censored: 0 });
    if (r.event) { byDur.get(d).events += n; repeat += n; } else byDur.get(d).censored += n;
    customers += n;
  }
  const days = [...byDur.keys()].sort((a, b) => a - b);
  let atRisk = customers;
  let s = 1;
  let median = null;
  const curve = [];
  for (const d of days) {
    const { events, censored } = byDur.get(d);
    s *= 1 - events / atRisk;
    if (median === null && s <= 0.5) median = d;
    curve.push({ day: d, at_risk: atRisk, events, censored, survival: round4(s), survival_exact: s });
    atRisk -= events + censored;
  }
  const [p25, median50, p75, p90] = pct ?? [null, null, null, null];
  return {
    customers,
    repeat_customers: repeat,
    repeat_share: ratio(repeat, customers),
    days: { p25: num(p25), median: num(median50), p75: num(p75), p90: num(p90) },
    kaplan_meier: { median_days: median, curve },
  };
}

