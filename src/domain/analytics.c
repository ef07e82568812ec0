/*
 * analytics.c — repurchase metrics; see include/rebuy/analytics.h.
 *
 * The database counts (one statement per endpoint, every bucket of a
 * series in the same statement); this file turns counts into rates,
 * percentiles and survival curves, so the arithmetic is in one place and
 * exact: rates are rounded from integers, never accumulated in floating
 * point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/analytics.h"
#include "rebuy/days.h"

#define MAX_RANGE_DAYS 3660  /* ten years: enough for any history, bounded work */
#define MAX_BUCKETS 600

/*
 * The group comparisons' rows: per customer with an occasion dated in
 * [s.t0, s.t1), the occasions, their orders, and the intervals between
 * consecutive occasions both in the range with their days (local dates,
 * as revenue-mix).  Needs the CTE s (tz, t0, t1).
 */
#define PERIOD_CUSTOMERS \
	" c AS (SELECT o.customer_seq, count(*) AS occasions, sum(o.orders) AS orders," \
	"     count(*) FILTER (WHERE o.prev_started_at >= s.t0) AS intervals," \
	"     coalesce(sum((o.started_at AT TIME ZONE s.tz)::date" \
	"       - (o.prev_started_at AT TIME ZONE s.tz)::date)" \
	"       FILTER (WHERE o.prev_started_at >= s.t0), 0) AS days" \
	"   FROM purchase_occasions o, s" \
	"   WHERE o.shop_id = $1 AND o.started_at >= s.t0 AND o.started_at < s.t1" \
	"   GROUP BY o.customer_seq)"

/*
 * The same counts from the occasion cells (migration 0019), for answers
 * without a channel (the cells do not split by it): per bucket b (k, lo,
 * hi, hb = the 32-day block of hi, hb0 = its first day), the day sums d
 * and the pairs p inside [lo, hi].  Pairs ending before hb0 come whole
 * from the blocks, the rest (ending in hi's block: at most 32 days of
 * cells) from occasion_pairs, pending deltas (dx: a minute's worth, but
 * after an import or a rule change millions until the next fold) summed
 * per kind of occasion first, within the range: every occasion counted is
 * on or after from (($2::date[])[1]: bucket 1 is the whole range), and on or
 * before as_of.  $4 is the channel: NULL here.
 */
#define CELLS_BUCKETS \
	"WITH b AS MATERIALIZED (SELECT k, lo, hi, occasion_block(hi) AS hb," \
	"   date '1970-01-01' + 32 * occasion_block(hi) AS hb0" \
	"   FROM unnest($2::date[], $3::date[]) WITH ORDINALITY AS u(lo, hi, k)" \
	"   WHERE $4::text IS NULL)," \
	" dx AS MATERIALIZED (SELECT d.day, d.n, d.prev_day, d.prev2_day," \
	"   sum(d.occasions) AS occasions, sum(d.orders) AS orders, sum(d.net) AS net" \
	"   FROM occasion_deltas d" \
	"   WHERE d.shop_id = $1 AND d.day BETWEEN ($2::date[])[1] AND $5::date" \
	"   GROUP BY 1, 2, 3, 4)"
#define CELLS_DAYS \
	" LATERAL (SELECT coalesce(sum(x.occasions), 0) AS occasions," \
	"    coalesce(sum(x.occasions) FILTER (WHERE x.first), 0) AS firsts," \
	"    coalesce(sum(x.occasions) FILTER (WHERE NOT x.first), 0) AS laters," \
	"    coalesce(sum(x.orders), 0) AS orders, coalesce(sum(x.net), 0) AS net," \
	"    coalesce(sum(x.orders) FILTER (WHERE x.first), 0) AS first_orders," \
	"    coalesce(sum(x.net) FILTER (WHERE x.first), 0) AS first_net," \
	"    coalesce(sum(x.gap_days), 0) AS gap_days, coalesce(sum(x.occasions)" \
	"      FILTER (WHERE x.first AND x.day > $5::date - $6::integer), 0) AS censored" \
	"   FROM (SELECT c.day, c.first, c.occasions, c.orders, c.net, c.gap_days" \
	"       FROM occasion_days c WHERE c.shop_id = $1 AND c.day BETWEEN b.lo AND b.hi" \
	"     UNION ALL SELECT dx.day, dx.n = 1, dx.occasions, dx.orders, dx.net," \
	"       coalesce(dx.occasions * (dx.day - dx.prev_day), 0)" \
	"       FROM dx WHERE dx.day BETWEEN b.lo AND b.hi) x) d"
#define CELLS_PAIRS \
	" LATERAL (SELECT coalesce(sum(y.seconds), 0) AS seconds," \
	"    coalesce(sum(y.laters), 0) AS laters, coalesce(sum(y.triples), 0) AS triples" \
	"   FROM (SELECT c.seconds, c.laters, c.triples FROM occasion_pair_blocks c" \
	"       WHERE c.shop_id = $1 AND c.start_day >= b.lo AND c.start_day < b.hb0" \
	"         AND c.end_block < b.hb" \
	"     UNION ALL SELECT c.seconds, c.laters, c.triples FROM occasion_pairs c" \
	"       WHERE c.shop_id = $1 AND c.end_day BETWEEN greatest(b.lo, b.hb0) AND b.hi" \
	"         AND c.start_day >= b.lo" \
	"     UNION ALL SELECT CASE WHEN dx.n = 2 THEN dx.occasions ELSE 0 END," \
	"       CASE WHEN dx.n = 3 THEN dx.occasions ELSE 0 END, 0" \
	"       FROM dx WHERE dx.n >= 2 AND dx.prev_day >= b.lo AND dx.day <= b.hi" \
	"     UNION ALL SELECT 0, 0, dx.occasions" \
	"       FROM dx WHERE dx.n = 3 AND dx.prev2_day >= b.lo AND dx.day <= b.hi) y) p"

const struct db_stmt analytics_stmts[] = {
	/* the shop's zone, rule and today's date there */
	{ "analytics_shop",
	  "SELECT timezone, (settings -> 'repurchase_rule')::text,"
	  " (now() AT TIME ZONE timezone)::date::text, currency FROM shops WHERE id = $1" },
	/*
	 * Per bucket [lo, hi] (dates, inclusive; [t0, t1) as instants):
	 * active customers (an occasion in the bucket), of them returning (one
	 * of those occasions is not their first ever) and repeating (two in
	 * the bucket), each counted once without grouping by customer: a
	 * customer's occasions in the bucket have consecutive ordinals, so the
	 * customer is active through the one whose predecessor is before t0
	 * (or that has none), returning through the first with n >= 2 in it,
	 * and has k >= 2 in it exactly when it has k - 1 consecutive pairs and
	 * k - 2 triples in it.  And the
	 * cohort whose first occasion is in the bucket, censored when its
	 * window ends after as_of ($5), with a second occasion within the
	 * window ($6 days).  $4: the first order's channel, or NULL.
	 */
	{ "analytics_repurchase",
	  "WITH s AS (SELECT timezone AS tz FROM shops WHERE id = $1),"
	  " b AS MATERIALIZED (SELECT k, lo, hi, (lo::timestamp AT TIME ZONE s.tz) AS t0,"
	  "   ((hi + 1)::timestamp AT TIME ZONE s.tz) AS t1"
	  "   FROM s, unnest($2::date[], $3::date[]) WITH ORDINALITY AS u(lo, hi, k))"
	  " SELECT b.k, a.active, a.returning, a.repeat, n.cohort, n.censored, n.num"
	  " FROM b, s,"
	  " LATERAL (SELECT count(*) FILTER (WHERE o.n = 1 OR o.prev_started_at < b.t0) AS active,"
	  "    count(*) FILTER (WHERE o.n = 2 OR o.n > 2 AND o.prev_started_at < b.t0) AS returning,"
	  "    count(*) FILTER (WHERE o.prev_started_at >= b.t0)"
	  "      - count(*) FILTER (WHERE o.prev2_started_at >= b.t0) AS repeat"
	  "   FROM purchase_occasions o"
	  "   WHERE o.shop_id = $1 AND o.started_at >= b.t0 AND o.started_at < b.t1"
	  "     AND ($4::text IS NULL OR EXISTS (SELECT FROM customer_facts f"
	  "       WHERE f.customer_seq = o.customer_seq AND f.first_order_channel = $4))) a,"
	  " LATERAL (SELECT count(*) AS cohort,"
	  "    count(*) FILTER (WHERE fd + $6::integer > $5::date) AS censored,"
	  "    count(*) FILTER (WHERE fd + $6::integer <= $5::date AND sd <= fd + $6::integer) AS num"
	  "   FROM (SELECT (f.first_order_at AT TIME ZONE s.tz)::date AS fd,"
	  "       (f.second_order_at AT TIME ZONE s.tz)::date AS sd"
	  "     FROM customer_facts f"
	  "     WHERE f.shop_id = $1 AND f.first_order_at >= b.t0 AND f.first_order_at < b.t1"
	  "       AND ($4::text IS NULL OR f.first_order_channel = $4)) y) n"
	  " ORDER BY b.k" },
	/*
	 * analytics_repurchase from the cells: active = occasions - pairs,
	 * returning = later occasions - pairs ending in an n >= 3 (those
	 * ending in an n = 2 are returning), repeat = pairs - triples; the
	 * cohort's second purchases within $6 days by their first day.
	 */
	{ "analytics_repurchase_cells",
	  CELLS_BUCKETS
	  " SELECT b.k, d.occasions - p.seconds - p.laters, d.laters - p.laters,"
	  "   p.seconds + p.laters - p.triples, d.firsts, d.censored, w.num"
	  " FROM b," CELLS_DAYS "," CELLS_PAIRS ","
	  " LATERAL (SELECT coalesce(sum(z.seconds), 0) AS num"
	  "   FROM (SELECT c.seconds FROM occasion_pairs c"
	  "       WHERE c.shop_id = $1 AND c.seconds <> 0"
	  "         AND c.start_day BETWEEN b.lo AND least(b.hi, $5::date - $6::integer)"
	  "         AND c.end_day <= c.start_day + $6::integer"
	  "     UNION ALL SELECT dx.occasions FROM dx WHERE dx.n = 2"
	  "       AND dx.prev_day BETWEEN b.lo AND least(b.hi, $5::date - $6::integer)"
	  "       AND dx.day <= dx.prev_day + $6::integer) z) w"
	  " ORDER BY b.k" },
	/*
	 * Customers whose first occasion (overall: category NULL; or in a
	 * category) is dated in [$2, $3], counted by duration in days: to the
	 * second occasion when it came by as_of ($4, an event), else to
	 * as_of (censored).  $5 channel, $6 category, both optional.
	 */
	{ "analytics_second_purchase",
	  "WITH s AS (SELECT timezone AS tz, ($2::date::timestamp AT TIME ZONE timezone) AS t0,"
	  "   (($3::date + 1)::timestamp AT TIME ZONE timezone) AS t1 FROM shops WHERE id = $1),"
	  " x AS ("
	  "  SELECT NULL::text AS category, (f.first_order_at AT TIME ZONE s.tz)::date AS fd,"
	  "    (f.second_order_at AT TIME ZONE s.tz)::date AS sd"
	  "  FROM customer_facts f, s"
	  "  WHERE f.shop_id = $1 AND f.first_order_at >= s.t0 AND f.first_order_at < s.t1"
	  "    AND ($5::text IS NULL OR f.first_order_channel = $5)"
	  "  UNION ALL"
	  "  SELECT cf.category, (cf.first_at AT TIME ZONE s.tz)::date,"
	  "    (cf.second_at AT TIME ZONE s.tz)::date"
	  "  FROM customer_category_facts cf, s"
	  "  WHERE cf.shop_id = $1 AND cf.first_at >= s.t0 AND cf.first_at < s.t1"
	  "    AND ($6::text IS NULL OR cf.category = $6)"
	  "    AND ($5::text IS NULL OR EXISTS (SELECT FROM customer_facts f"
	  "      WHERE f.customer_seq = cf.customer_seq AND f.first_order_channel = $5)))"
	  " SELECT category, CASE WHEN sd <= $4::date THEN sd - fd ELSE $4::date - fd END AS d,"
	  "   count(*) FILTER (WHERE sd <= $4::date), count(*) FILTER (WHERE sd IS NULL OR sd > $4::date)"
	  " FROM x GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2" },
	/*
	 * analytics_second_purchase from the first-purchase cells (0020),
	 * without a channel: the shop's from the channel cells (every customer
	 * has one), the categories' from theirs.
	 */
	{ "analytics_second_purchase_cells",
	  "WITH x AS ("
	  "  SELECT NULL::text AS category, c.first_day AS fd, c.second_day AS sd, c.customers"
	  "  FROM first_cells c WHERE c.shop_id = $1 AND c.kind = 'c'"
	  "    AND c.first_day BETWEEN $2::date AND $3::date"
	  "  UNION ALL SELECT NULL, d.first_day, d.second_day, d.customers FROM first_cell_deltas d"
	  "  WHERE d.shop_id = $1 AND d.first_day BETWEEN $2::date AND $3::date"
	  "  UNION ALL SELECT c.category, c.first_day, c.second_day, c.customers"
	  "  FROM category_cells c"
	  "  WHERE c.shop_id = $1 AND c.first_day BETWEEN $2::date AND $3::date"
	  "    AND ($6::text IS NULL OR c.category = $6)"
	  "  UNION ALL SELECT d.category, d.first_day, d.second_day, d.customers"
	  "  FROM category_cell_deltas d"
	  "  WHERE d.shop_id = $1 AND d.first_day BETWEEN $2::date AND $3::date"
	  "    AND ($6::text IS NULL OR d.category = $6))"
	  " SELECT category, CASE WHEN sd <= $4::date THEN sd - fd ELSE $4::date - fd END AS d,"
	  "   coalesce(sum(customers) FILTER (WHERE sd <= $4::date), 0),"
	  "   coalesce(sum(customers) FILTER (WHERE sd > $4::date), 0)"
	  " FROM x WHERE $5::text IS NULL GROUP BY 1, 2 HAVING sum(customers) <> 0"
	  " ORDER BY 1 NULLS FIRST, 2" },
	/*
	 * Cohorts: customers by the calendar month or week ($5) of their
	 * first occasion dated in [$2, $3] (row with period -1: the cohort's
	 * size), then per period since: customers active (each through its
	 * first occasion in the period: no distinct count), orders and net of
	 * their occasions up to the end of as_of ($4).  Every occasion of a
	 * cohort customer is at or after t0: the period index bounds the join.
	 * $6: channel or NULL.
	 */
	{ "analytics_cohorts",
	  "WITH s AS (SELECT timezone AS tz, ($2::date::timestamp AT TIME ZONE timezone) AS t0,"
	  "   (($3::date + 1)::timestamp AT TIME ZONE timezone) AS t1,"
	  "   (($4::date + 1)::timestamp AT TIME ZONE timezone) AS tcut FROM shops WHERE id = $1),"
	  " c AS (SELECT f.customer_seq, date_trunc($5, f.first_order_at AT TIME ZONE s.tz)::date AS cb"
	  "   FROM customer_facts f, s"
	  "   WHERE f.shop_id = $1 AND f.first_order_at >= s.t0 AND f.first_order_at < s.t1"
	  "     AND ($6::text IS NULL OR f.first_order_channel = $6)),"
	  " o AS (SELECT c.cb, date_trunc($5, o.started_at AT TIME ZONE s.tz)::date AS pb,"
	  "     date_trunc($5, o.prev_started_at AT TIME ZONE s.tz)::date AS ppb, o.n, o.orders, o.net"
	  "   FROM c JOIN purchase_occasions o ON o.customer_seq = c.customer_seq, s"
	  "   WHERE o.shop_id = $1 AND o.started_at >= s.t0 AND o.started_at < s.tcut)"
	  " SELECT cb::text, -1 AS period, count(*), 0, 0 FROM c GROUP BY cb"
	  " UNION ALL"
	  " SELECT cb::text, CASE WHEN $5 = 'week' THEN (pb - cb) / 7"
	  "   ELSE ((extract(year FROM pb) - extract(year FROM cb)) * 12"
	  "     + extract(month FROM pb) - extract(month FROM cb))::integer END,"
	  "   count(*) FILTER (WHERE n = 1 OR ppb < pb), sum(orders), sum(net)"
	  " FROM o GROUP BY 1, 2 ORDER BY 1, 2" },
	/*
	 * analytics_cohorts from the cells (0019), without a channel: cohort
	 * sizes from the first occasions per day, periods from the occasions
	 * per (first day, day), each counted active through the first of its
	 * customer's occasions in the week or month.
	 */
	{ "analytics_cohorts_cells",
	  "WITH dx AS MATERIALIZED (SELECT d.first_day, d.day, d.n, d.prev_day,"
	  "   sum(d.occasions) AS occasions, sum(d.orders) AS orders, sum(d.net) AS net"
	  "   FROM occasion_deltas d"
	  "   WHERE d.shop_id = $1 AND d.first_day BETWEEN $2::date AND $3::date"
	  "   GROUP BY 1, 2, 3, 4),"
	  " sz AS (SELECT date_trunc($5, x.day::timestamp)::date AS cb,"
	  "     sum(x.occasions) AS customers"
	  "   FROM (SELECT c.day, c.occasions FROM occasion_days c"
	  "       WHERE c.shop_id = $1 AND c.first AND c.day BETWEEN $2::date AND $3::date"
	  "     UNION ALL SELECT dx.day, dx.occasions FROM dx WHERE dx.n = 1) x GROUP BY 1),"
	  " o AS (SELECT date_trunc($5, y.first_day::timestamp)::date AS cb,"
	  "     date_trunc($5, y.day::timestamp)::date AS pb,"
	  "     sum(y.new) AS active, sum(y.orders) AS orders, sum(y.net) AS net"
	  "   FROM (SELECT c.first_day, c.day, c.occasions, c.orders, c.net,"
	  "       CASE WHEN $5 = 'week' THEN c.new_weeks ELSE c.new_months END AS new"
	  "       FROM cohort_cells c WHERE c.shop_id = $1"
	  "         AND c.first_day BETWEEN $2::date AND $3::date AND c.day <= $4::date"
	  "     UNION ALL SELECT dx.first_day, dx.day, dx.occasions, dx.orders, dx.net,"
	  "       dx.occasions * CASE WHEN $5 = 'week' THEN cohort_new_week(dx.day, dx.prev_day)"
	  "         ELSE cohort_new_month(dx.day, dx.prev_day) END"
	  "       FROM dx WHERE dx.day <= $4::date) y"
	  "   GROUP BY 1, 2 HAVING sum(y.occasions) <> 0)"
	  " SELECT cb::text, -1 AS period, customers, 0, 0 FROM sz"
	  " WHERE customers <> 0 AND $6::text IS NULL"
	  " UNION ALL"
	  " SELECT cb::text, CASE WHEN $5 = 'week' THEN (pb - cb) / 7"
	  "   ELSE ((extract(year FROM pb) - extract(year FROM cb)) * 12"
	  "     + extract(month FROM pb) - extract(month FROM cb))::integer END,"
	  "   active, orders, net"
	  " FROM o WHERE $6::text IS NULL ORDER BY 1, 2" },
	/*
	 * Per bucket (as analytics_repurchase, counting customers the same
	 * way): the occasions dated in it, first (n = 1) and later, and the
	 * days from each later one back to its predecessor; then the traffic
	 * rows of the bucket's dates.  $4: channel or NULL.
	 */
	{ "analytics_sales",
	  "WITH s AS (SELECT timezone AS tz FROM shops WHERE id = $1),"
	  " b AS MATERIALIZED (SELECT k, lo, hi, (lo::timestamp AT TIME ZONE s.tz) AS t0,"
	  "   ((hi + 1)::timestamp AT TIME ZONE s.tz) AS t1"
	  "   FROM s, unnest($2::date[], $3::date[]) WITH ORDINALITY AS u(lo, hi, k))"
	  " SELECT b.k, a.customers, a.orders, a.revenue, a.new_customers, a.first_orders,"
	  "   a.first_revenue, a.returning, a.intervals, a.total_days, t.visitors, t.sessions, t.days"
	  " FROM b, s,"
	  " LATERAL (SELECT count(*) FILTER (WHERE o.n = 1 OR o.prev_started_at < b.t0) AS customers,"
	  "    coalesce(sum(o.orders), 0) AS orders, coalesce(sum(o.net), 0) AS revenue,"
	  "    count(*) FILTER (WHERE o.n = 1) AS new_customers,"
	  "    coalesce(sum(o.orders) FILTER (WHERE o.n = 1), 0) AS first_orders,"
	  "    coalesce(sum(o.net) FILTER (WHERE o.n = 1), 0) AS first_revenue,"
	  "    count(*) FILTER (WHERE o.n = 2 OR o.n > 2 AND o.prev_started_at < b.t0) AS returning,"
	  "    count(*) FILTER (WHERE o.n >= 2) AS intervals,"
	  "    coalesce(sum((o.started_at AT TIME ZONE s.tz)::date"
	  "      - (o.prev_started_at AT TIME ZONE s.tz)::date), 0) AS total_days"
	  "   FROM purchase_occasions o"
	  "   WHERE o.shop_id = $1 AND o.started_at >= b.t0 AND o.started_at < b.t1"
	  "     AND ($4::text IS NULL OR EXISTS (SELECT FROM customer_facts f"
	  "       WHERE f.customer_seq = o.customer_seq AND f.first_order_channel = $4))) a,"
	  " LATERAL (SELECT sum(t.visitors) AS visitors, sum(t.sessions) AS sessions,"
	  "    count(DISTINCT t.day) AS days"
	  "   FROM traffic t WHERE t.shop_id = $1 AND t.day BETWEEN b.lo AND b.hi"
	  "     AND ($4::text IS NULL OR t.channel = $4)) t"
	  " ORDER BY b.k" },
	/* analytics_sales from the cells, counting as analytics_repurchase_cells */
	{ "analytics_sales_cells",
	  CELLS_BUCKETS
	  " SELECT b.k, d.occasions - p.seconds - p.laters, d.orders, d.net, d.firsts,"
	  "   d.first_orders, d.first_net, d.laters - p.laters, d.laters, d.gap_days,"
	  "   t.visitors, t.sessions, t.days"
	  " FROM b," CELLS_DAYS "," CELLS_PAIRS ","
	  " LATERAL (SELECT sum(t.visitors) AS visitors, sum(t.sessions) AS sessions,"
	  "    count(DISTINCT t.day) AS days"
	  "   FROM traffic t WHERE t.shop_id = $1 AND t.day BETWEEN b.lo AND b.hi) t"
	  " ORDER BY b.k" },
	/*
	 * The cohort whose first occasion is dated in [$2, $3], counted as a
	 * whole (kind 0), per product role of the first occasion (kind 1; a
	 * customer is in each role present) and per first-order channel
	 * (kind 2): customers, back by as_of ($4), censored for the window
	 * of $5 days, and back within it.  From the first-purchase cells
	 * (0020): per first and second day, channel and role.
	 */
	{ "analytics_first_order",
	  "WITH x AS (SELECT c.kind, c.key, c.first_day AS fd, c.second_day AS sd, c.customers"
	  "   FROM first_cells c WHERE c.shop_id = $1 AND c.first_day BETWEEN $2::date AND $3::date"
	  "  UNION ALL SELECT g.kind, g.key, d.first_day, d.second_day, d.customers"
	  "   FROM first_cell_deltas d, LATERAL first_cells_spread(d.channel, d.roles) g"
	  "   WHERE d.shop_id = $1 AND d.first_day BETWEEN $2::date AND $3::date)"
	  " SELECT g.kind, g.key, sum(x.customers),"
	  "   coalesce(sum(x.customers) FILTER (WHERE x.sd <= $4::date), 0),"
	  "   coalesce(sum(x.customers) FILTER (WHERE x.fd + $5::integer > $4::date), 0),"
	  "   coalesce(sum(x.customers) FILTER (WHERE x.fd + $5::integer <= $4::date"
	  "     AND x.sd <= x.fd + $5::integer), 0)"
	  " FROM x, LATERAL (SELECT 0 AS kind, NULL::text AS key WHERE x.kind = 'c'"
	  "   UNION ALL SELECT 1, x.key WHERE x.kind = 'r'"
	  "   UNION ALL SELECT 2, x.key WHERE x.kind = 'c') g"
	  " GROUP BY 1, 2 HAVING sum(x.customers) <> 0"
	  " ORDER BY g.kind, g.key COLLATE \"C\"" },
	/*
	 * Members vs non-members and per tier, over the customers with an
	 * occasion dated in [$2, $3]: kind 0 members / non-members (a paid
	 * membership overlapping the period), kind 1 the tier held at the end
	 * of the period (from the history; the entry tier without one; '' for
	 * none).  Per group: customers, those with two or more occasions, the
	 * occasions' orders, the intervals between consecutive occasions both
	 * in the period and their days (local dates, as revenue-mix).
	 */
	{ "analytics_membership",
	  "WITH s AS (SELECT timezone AS tz, ($2::date::timestamp AT TIME ZONE timezone) AS t0,"
	  "   (($3::date + 1)::timestamp AT TIME ZONE timezone) AS t1,"
	  "   tier_code($1, tier_entry_rank($1)) AS entry FROM shops WHERE id = $1),"
	  PERIOD_CUSTOMERS ","
	  " g AS (SELECT c.*, EXISTS (SELECT FROM memberships m WHERE m.customer_seq = c.customer_seq"
	  "       AND m.starts_at < s.t1 AND m.ends_at > s.t0) AS member,"
	  "     coalesce((SELECT h.to_tier FROM tier_history h WHERE h.customer_seq = c.customer_seq"
	  "       AND h.at < s.t1 ORDER BY h.at DESC, h.seq DESC LIMIT 1), s.entry, '') AS tier"
	  "   FROM c, s)"
	  " SELECT x.kind, x.grp, count(*), count(*) FILTER (WHERE x.occasions >= 2),"
	  "   sum(x.orders), sum(x.intervals), sum(x.days)"
	  " FROM (SELECT 0 AS kind, CASE WHEN member THEN 'members' ELSE 'non_members' END AS grp,"
	  "     occasions, orders, intervals, days FROM g"
	  "   UNION ALL SELECT 1, tier, occasions, orders, intervals, days FROM g) x"
	  " GROUP BY x.kind, x.grp" },
	/* the same groups for prepaid wallets: holders (a wallet opened before the end of the range) */
	{ "analytics_wallet_holders",
	  "WITH s AS (SELECT timezone AS tz, ($2::date::timestamp AT TIME ZONE timezone) AS t0,"
	  "   (($3::date + 1)::timestamp AT TIME ZONE timezone) AS t1 FROM shops WHERE id = $1),"
	  PERIOD_CUSTOMERS
	  " SELECT 0, CASE WHEN EXISTS (SELECT FROM wallets w WHERE w.customer_seq = c.customer_seq"
	  "     AND w.opened_at < s.t1) THEN 'holders' ELSE 'non_holders' END AS grp,"
	  "   count(*), count(*) FILTER (WHERE c.occasions >= 2), sum(c.orders), sum(c.intervals),"
	  "   sum(c.days)"
	  " FROM c, s GROUP BY grp" },
	/* releases and expiries due are posted first, so the journal is complete up to now */
	{ "analytics_prepaid_sweep", "SELECT prepaid_sweep($2, rebuy_now(), $1)" },
	/*
	 * $2: the date; the liability at the end of that day in the shop's
	 * zone, or now (its movements included) if sooner.
	 */
	{ "analytics_liability",
	  "SELECT prepaid_liability($1, least((($2::date + 1)::timestamp AT TIME ZONE s.timezone),"
	  "   rebuy_now() + interval '1 microsecond'))::text FROM shops s WHERE s.id = $1" },
	{ "analytics_package_breakage",
	  "SELECT package_breakage($1, least((($2::date + 1)::timestamp AT TIME ZONE s.timezone),"
	  "   rebuy_now() + interval '1 microsecond'))::text FROM shops s WHERE s.id = $1" },
	{ "analytics_coupon_redemption",
	  "SELECT coupon_redemption($1, least((($2::date + 1)::timestamp AT TIME ZONE s.timezone),"
	  "   rebuy_now() + interval '1 microsecond'))::text FROM shops s WHERE s.id = $1" },
	/*
	 * Package holders (a package bought before the end of the range) and
	 * the others, over the customers with a visit in the range: a local day
	 * with a purchase occasion or a redemption not reversed.  Per group:
	 * customers, visits, those with two or more, the intervals between
	 * visits and their days.
	 */
	{ "analytics_package_holders",
	  "WITH s AS (SELECT timezone AS tz, ($2::date::timestamp AT TIME ZONE timezone) AS t0,"
	  "   (($3::date + 1)::timestamp AT TIME ZONE timezone) AS t1 FROM shops WHERE id = $1),"
	  " v AS (SELECT o.customer_seq, (o.started_at AT TIME ZONE s.tz)::date AS d"
	  "     FROM purchase_occasions o, s"
	  "     WHERE o.shop_id = $1 AND o.started_at >= s.t0 AND o.started_at < s.t1"
	  "   UNION SELECT k.customer_seq, (r.at AT TIME ZONE s.tz)::date"
	  "     FROM package_redemptions r JOIN packages k ON k.seq = r.package_seq, s"
	  "     WHERE k.shop_id = $1 AND r.at >= s.t0 AND r.at < s.t1 AND r.reversed_at IS NULL),"
	  " c AS (SELECT customer_seq, count(*) AS visits, max(d) - min(d) AS days FROM v GROUP BY 1)"
	  " SELECT 0, CASE WHEN EXISTS (SELECT FROM packages k WHERE k.customer_seq = c.customer_seq"
	  "     AND k.purchased_at < s.t1) THEN 'holders' ELSE 'non_holders' END AS grp,"
	  "   count(*), sum(c.visits), count(*) FILTER (WHERE c.visits >= 2), sum(c.visits - 1),"
	  "   sum(c.days)"
	  " FROM c, s GROUP BY grp" },
	/* money runs on the test clock: today, the zone and the currency */
	{ "analytics_money_today",
	  "SELECT (rebuy_now() AT TIME ZONE timezone)::date::text, timezone, currency FROM shops"
	  " WHERE id = $1" },
	/* the programme's tiers, lowest first */
	{ "analytics_tiers", "SELECT code FROM tiers WHERE shop_id = $1 ORDER BY rank" },
	{ NULL, NULL },
};

/* ---- calendar dates as day numbers (days since 1970-01-01: rebuy/days.h) */

static bool
parse_date(const char *s, long *day)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, m, d;
	int n = 0;

	if (!s || strlen(s) != 10 || sscanf(s, "%4u-%2u-%2u%n", &y, &m, &d, &n) != 3 || n != 10 ||
	    s[4] != '-' || s[7] != '-' || strspn(s, "0123456789-") != 10)
		return false;
	if (y < 1970 || y > 9998 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	*day = days_from_civil(y, m, d);
	return true;
}

static void
format_date(long day, char out[11])
{
	int y;
	unsigned m, d;

	civil_from_days(day, &y, &m, &d);
	snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, m % 100u, d % 100u);
}

const char *
analytics_check_date(const char *s)
{
	long day;

	return parse_date(s, &day) ? NULL : "must be a date YYYY-MM-DD";
}

/* ---- what every answer shares --------------------------------------- */

struct range {
	long from, to, as_of;
	char from_s[11], to_s[11], as_of_s[11];
	char tz[64];
	char currency[4];
	json_t *rule;
};

/* The shop's zone, rule and today; the range with defaults, checked. */
static enum db_qs
resolve(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
	struct range *r, struct err *err)
{
	const char *p[1] = { shop_id };
	PGresult *res;
	long today;
	enum db_qs qs = db_exec(c, "analytics_shop", 1, p, &res);

	if (qs <= 0) {
		if (qs == 0)
			err_set(err, ERR_NOT_FOUND, NULL, "shop not found");
		return qs == 0 ? DB_ABORT : qs;
	}
	snprintf(r->tz, sizeof r->tz, "%s", PQgetvalue(res, 0, 0));
	snprintf(r->currency, sizeof r->currency, "%s", PQgetvalue(res, 0, 3));
	r->rule = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
	if (!r->rule || !parse_date(PQgetvalue(res, 0, 2), &today)) {
		PQclear(res);
		json_decref(r->rule);
		r->rule = NULL;
		err_set(err, ERR_INTERNAL, NULL, "shop settings unreadable");
		return DB_ABORT;
	}
	PQclear(res);
	/* the handler checked the syntax: these parse */
	r->as_of = today;
	if (q->as_of)
		parse_date(q->as_of, &r->as_of);
	r->to = r->as_of;
	if (q->to)
		parse_date(q->to, &r->to);
	r->from = r->to - 89;
	if (q->from)
		parse_date(q->from, &r->from);
	if (r->as_of > today)
		err_set(err, ERR_INVALID_PARAMETER, "/query/as_of",
			"as_of: must not be after today in the shop's time zone");
	else if (r->to > r->as_of)
		err_set(err, ERR_INVALID_PARAMETER, "/query/to", "to: must not be after as_of");
	else if (r->from > r->to)
		err_set(err, ERR_INVALID_PARAMETER, "/query/from", "from: must not be after to");
	else if (r->to - r->from + 1 > MAX_RANGE_DAYS)
		err_set(err, ERR_INVALID_PARAMETER, "/query/from",
			"from: the range is limited to %d days", MAX_RANGE_DAYS);
	if (err->code != ERR_NONE) {
		json_decref(r->rule);
		r->rule = NULL;
		return DB_ABORT;
	}
	format_date(r->from, r->from_s);
	format_date(r->to, r->to_s);
	format_date(r->as_of, r->as_of_s);
	return DB_ONE_RESULT;
}

static json_t *
definition(struct range *r, const struct analytics_query *q)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s?}", "timezone", r->tz,
			      "from", r->from_s, "to", r->to_s, "as_of", r->as_of_s,
			      "rule", r->rule, "channel", q->channel);

	if (d && !q->channel)
		json_object_set_new(d, "channel", json_null());
	return d;
}

/*
 * num / den rounded half up to 4 decimals (exact: integers until the end;
 * 128-bit because num can be money, and money times 20000 overflows 64).
 */
static json_t *
ratio(long long num, long long den)
{
	if (den <= 0)
		return json_null();
	return json_real((double)(((__int128)num * 20000 + den) / ((__int128)den * 2)) / 10000.0);
}

static json_t *
rate(long long num, long long den, const char *description)
{
	json_t *o = json_pack("{s:I, s:I, s:o}", "numerator", (json_int_t)num, "denominator",
			      (json_int_t)den, "rate", ratio(num, den));

	if (o && description)
		json_object_set_new(o, "description", json_string(description));
	return o;
}

/* ---- repurchase rates ------------------------------------------------ */

static const char *const desc_returning =
	"Customers with a qualifying purchase in the period who had purchased before "
	"(at least two purchase occasions up to the end of the period), of all customers "
	"with a qualifying purchase in the period.";
static const char *const desc_repeat =
	"Customers with at least two qualifying purchase occasions in the period, of all "
	"customers with a qualifying purchase in the period.";
static const char *const desc_nday =
	"Customers whose first qualifying purchase falls in the period and who made a second "
	"within window_days days of it, of those whose window ended by as_of; customers whose "
	"window had not ended by as_of are censored: counted apart, in neither figure.";

static const char *
mode_of(long long num, long long den)
{
	if (den <= 0)
		return NULL;
	if (num * 100 < den * 15)
		return "acquisition";
	return num * 100 < den * 30 ? "hybrid" : "loyalty";
}

/* Bucket boundaries: [from, to] cut at weeks (Monday) or months, clipped. */
static int
buckets(const struct range *r, const char *interval, long *lo, long *hi, int max)
{
	int n = 0;
	long start = r->from;

	while (start <= r->to && n < max) {
		long end;

		if (strcmp(interval, "week") == 0) {
			/* day 0 (1970-01-01) was a Thursday: Monday is (day + 3) % 7 == 0 */
			long dow = ((start + 3) % 7 + 7) % 7;

			end = start + (6 - dow);
		} else {
			int y;
			unsigned m, d;

			civil_from_days(start, &y, &m, &d);
			end = (m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1)) - 1;
		}
		if (end > r->to)
			end = r->to;
		lo[n] = start;
		hi[n] = end;
		n++;
		start = end + 1;
	}
	return start <= r->to ? -1 : n;
}

/* Postgres array literal of the dates: {2025-01-01,2025-02-01} */
static char *
date_array(const long *days, int n)
{
	char *s = malloc((size_t)n * 11 + 3), *p = s;

	if (!s)
		return NULL;
	*p++ = '{';
	for (int i = 0; i < n; i++) {
		format_date(days[i], p);
		p += 10;
		*p++ = i + 1 < n ? ',' : '}';
	}
	if (n == 0)
		*p++ = '}';
	*p = '\0';
	return s;
}

static json_t *
repurchase_figures(PGresult *res, int row, bool full)
{
	long long active = atoll(PQgetvalue(res, row, 1)), returning = atoll(PQgetvalue(res, row, 2)),
		  repeat = atoll(PQgetvalue(res, row, 3)), cohort = atoll(PQgetvalue(res, row, 4)),
		  censored = atoll(PQgetvalue(res, row, 5)), num = atoll(PQgetvalue(res, row, 6));
	json_t *nday = rate(num, cohort - censored, full ? desc_nday : NULL);

	json_object_set_new(nday, "censored", json_integer(censored));
	if (full) {
		const char *mode = mode_of(num, cohort - censored);

		json_object_set_new(nday, "mode", mode ? json_string(mode) : json_null());
	}
	return json_pack("{s:o, s:o, s:o}",
			 "returning_customer_rate", rate(returning, active, full ? desc_returning : NULL),
			 "in_period_repeat_rate", rate(repeat, active, full ? desc_repeat : NULL),
			 "n_day_repurchase_rate", nday);
}

/*
 * Bucket 0 is the whole range; with an interval the series follows.  The
 * bounds go to the database as two date arrays (*los, *his; malloc'd).
 */
static int
range_buckets(const struct range *r, const char *interval, long *lo, long *hi, char **los,
	      char **his, struct err *err)
{
	int n = 1;

	lo[0] = r->from;
	hi[0] = r->to;
	if (interval) {
		int k = buckets(r, interval, lo + 1, hi + 1, MAX_BUCKETS);

		if (k < 0) {
			err_set(err, ERR_INVALID_PARAMETER, "/query/interval",
				"interval: more than %d buckets; choose a shorter range or a longer "
				"interval", MAX_BUCKETS);
			return -1;
		}
		n += k;
	}
	*los = date_array(lo, n);
	*his = date_array(hi, n);
	if (!*los || !*his) {
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		return -1;
	}
	return n;
}

/* Figures of row i of a per-bucket result; the answer, with series. */
typedef json_t *(*bucket_figures)(PGresult *res, int row, bool full);

static json_t *
bucket_answer(json_t *def, PGresult *res, const long *lo, const long *hi, int n,
	      const char *interval, bucket_figures figures)
{
	json_t *body = json_pack("{s:o}", "definition", def);

	json_object_update_new(body, figures(res, 0, true));
	if (interval) {
		json_t *series = json_array();

		for (int i = 1; i < n; i++) {
			json_t *b = json_object();
			char d[11];

			format_date(lo[i], d);
			json_object_set_new(b, "from", json_string(d));
			format_date(hi[i], d);
			json_object_set_new(b, "to", json_string(d));
			json_object_update_new(b, figures(res, i, false));
			json_array_append_new(series, b);
		}
		json_object_set_new(body, "series", series);
	}
	return body;
}

/*
 * A metric per bucket: the statement takes the shop, the bucket bounds and
 * the channel ($1-$4), then as_of and window_days when with_window.  Without
 * a channel, cells_stmt answers instead, from the occasion cells (it always
 * takes all six).
 */
static enum db_qs
bucketed(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
	 const char *stmt, const char *cells_stmt, bool with_window, bool with_money,
	 bucket_figures figures, json_t **out, struct err *err)
{
	long lo[MAX_BUCKETS + 1], hi[MAX_BUCKETS + 1];
	struct range r = { 0 };
	char *los = NULL, *his = NULL, window[16];
	const char *p[6];
	PGresult *res = NULL;
	json_t *def;
	int n;
	enum db_qs qs = resolve(c, shop_id, q, &r, err);

	if (qs < 0)
		return qs;
	n = range_buckets(&r, q->interval, lo, hi, &los, &his, err);
	if (n < 0) {
		qs = DB_ABORT;
		goto out;
	}
	snprintf(window, sizeof window, "%d", q->window_days);
	p[0] = shop_id;
	p[1] = los;
	p[2] = his;
	p[3] = q->channel;
	p[4] = r.as_of_s;
	p[5] = window;
	if (q->channel)
		qs = db_exec(c, stmt, with_window ? 6 : 4, p, &res);
	else
		qs = db_exec(c, cells_stmt, 6, p, &res);
	if (qs < 0)
		goto out;
	if ((int)qs != n) {
		err_set(err, ERR_INTERNAL, NULL, "metrics: %d buckets, %d rows", n, (int)qs);
		qs = DB_ABORT;
		goto out;
	}
	def = definition(&r, q);
	if (with_window)
		json_object_set_new(def, "window_days", json_integer(q->window_days));
	if (with_money)
		json_object_set_new(def, "currency", json_string(r.currency));
	*out = bucket_answer(def, res, lo, hi, n, q->interval, figures);
	qs = DB_ONE_RESULT;
out:
	PQclear(res);
	json_decref(r.rule);
	free(los);
	free(his);
	return qs;
}

enum db_qs
analytics_repurchase(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
		   json_t **out, struct err *err)
{
	return bucketed(c, shop_id, q, "analytics_repurchase", "analytics_repurchase_cells", true,
			false, repurchase_figures, out, err);
}

/* ---- time to second purchase ----------------------------------------- */

/* One group's rows [first, end) of the duration histogram, as the answer. */
static json_t *
second_group(PGresult *res, int first, int end)
{
	static const int pcts[] = { 25, 50, 75, 90 };
	static const char *const names[] = { "p25", "median", "p75", "p90" };
	long long customers = 0, repeat = 0, at_risk, seen;
	long double survival = 1.0L;
	json_t *days = json_object(), *curve = json_array(), *median = json_null();

	for (int i = first; i < end; i++) {
		customers += atoll(PQgetvalue(res, i, 2)) + atoll(PQgetvalue(res, i, 3));
		repeat += atoll(PQgetvalue(res, i, 2));
	}
	/* percentile_disc: the smallest duration with at least p% of the events at or below */
	for (size_t k = 0; k < sizeof pcts / sizeof pcts[0]; k++) {
		long long pos = (pcts[k] * repeat + 99) / 100;
		json_t *v = json_null();

		seen = 0;
		for (int i = first; repeat > 0 && i < end; i++) {
			seen += atoll(PQgetvalue(res, i, 2));
			if (seen >= (pos < 1 ? 1 : pos)) {
				v = json_integer(atoll(PQgetvalue(res, i, 1)));
				break;
			}
		}
		json_object_set_new(days, names[k], v);
	}
	/* Kaplan–Meier: survival falls at each duration by events / at risk */
	at_risk = customers;
	for (int i = first; i < end; i++) {
		long long d = atoll(PQgetvalue(res, i, 1)), ev = atoll(PQgetvalue(res, i, 2)),
			  cens = atoll(PQgetvalue(res, i, 3));

		if (at_risk > 0)
			survival *= 1.0L - (long double)ev / (long double)at_risk;
		json_array_append_new(curve, json_pack("{s:I, s:I, s:I, s:I, s:f}",
			"day", (json_int_t)d, "at_risk", (json_int_t)at_risk, "events", (json_int_t)ev,
			"censored", (json_int_t)cens,
			"survival", (double)(long long)(survival * 10000.0L + 0.5L) / 10000.0));
		/* a product of exact fractions: allow for the last binary digit */
		if (json_is_null(median) && survival <= 0.5L + 1e-12L) {
			json_decref(median);
			median = json_integer(d);
		}
		at_risk -= ev + cens;
	}
	return json_pack("{s:I, s:I, s:o, s:o, s:{s:o, s:o}}", "customers", (json_int_t)customers,
			 "repeat_customers", (json_int_t)repeat, "repeat_share",
			 ratio(repeat, customers), "days", days, "kaplan_meier",
			 "median_days", median, "curve", curve);
}

enum db_qs
analytics_second_purchase(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
			json_t **out, struct err *err)
{
	struct range r = { 0 };
	const char *p[6];
	PGresult *res = NULL;
	json_t *body, *cats;
	int rows, i, start;
	enum db_qs qs = resolve(c, shop_id, q, &r, err);

	if (qs < 0)
		return qs;
	p[0] = shop_id;
	p[1] = r.from_s;
	p[2] = r.to_s;
	p[3] = r.as_of_s;
	p[4] = q->channel;
	p[5] = q->category;
	/* the cells do not split categories by channel */
	qs = db_exec(c, q->channel ? "analytics_second_purchase"
				   : "analytics_second_purchase_cells", 6, p, &res);
	if (qs < 0) {
		json_decref(r.rule);
		return qs;
	}
	rows = (int)qs;
	body = json_pack("{s:o}", "definition", definition(&r, q));
	/* overall rows (category NULL) come first */
	for (i = 0; i < rows && PQgetisnull(res, i, 0); i++)
		;
	json_object_set_new(body, "overall", second_group(res, 0, i));
	cats = json_array();
	while (i < rows) {
		json_t *g;

		start = i;
		while (i < rows && strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, start, 0)) == 0)
			i++;
		g = json_pack("{s:s}", "category", PQgetvalue(res, start, 0));
		json_object_update_new(g, second_group(res, start, i));
		json_array_append_new(cats, g);
	}
	json_object_set_new(body, "categories", cats);
	PQclear(res);
	json_decref(r.rule);
	*out = body;
	return DB_ONE_RESULT;
}

/* ---- money over a period: revenue mix and sales decomposition ---------- */

/* a / b in minor units, rounded half up; null when b is 0 (a, b >= 0; 2a may not fit 64 bits). */
static json_t *
money(long long a, long long b)
{
	if (b <= 0)
		return json_null();
	return json_integer((json_int_t)(((__int128)a * 2 + b) / ((__int128)b * 2)));
}

static json_t *
money_definition(struct range *r, const struct analytics_query *q)
{
	json_t *d = definition(r, q);

	json_object_set_new(d, "currency", json_string(r->currency));
	return d;
}

/* Columns of analytics_sales. */
enum {
	S_CUSTOMERS = 1, S_ORDERS, S_REVENUE, S_NEW, S_FIRST_ORDERS, S_FIRST_REVENUE,
	S_RETURNING, S_INTERVALS, S_DAYS, S_VISITORS, S_SESSIONS, S_TRAFFIC_DAYS,
};

static long long
col(PGresult *res, int row, int c)
{
	return atoll(PQgetvalue(res, row, c));
}

static json_t *
orders_part(long long orders, long long revenue)
{
	return json_pack("{s:I, s:I, s:o}", "orders", (json_int_t)orders, "revenue",
			 (json_int_t)revenue, "average_order_value", money(revenue, orders));
}

static const char *const desc_mix =
	"Qualifying orders whose purchase occasion is dated in the period, split into first "
	"purchases (a customer's first occasion) and repeat purchases (any later one); revenue "
	"is net of refunds.  Days between orders: from each repeat occasion in the period back "
	"to the customer's previous one.";

static json_t *
mix_figures(PGresult *res, int i, bool full)
{
	long long orders = col(res, i, S_ORDERS), revenue = col(res, i, S_REVENUE),
		  fo = col(res, i, S_FIRST_ORDERS), frev = col(res, i, S_FIRST_REVENUE),
		  customers = col(res, i, S_CUSTOMERS), intervals = col(res, i, S_INTERVALS),
		  days = col(res, i, S_DAYS);
	json_t *o = json_pack("{s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:o,"
			      " s:{s:o, s:I, s:I}}",
		"revenue", (json_int_t)revenue, "orders", (json_int_t)orders,
		"customers", (json_int_t)customers,
		"first_orders", orders_part(fo, frev),
		"repeat_orders", orders_part(orders - fo, revenue - frev),
		"new_customers", (json_int_t)col(res, i, S_NEW),
		"returning_customers", (json_int_t)col(res, i, S_RETURNING),
		"returning_customer_revenue_share", ratio(revenue - frev, revenue),
		"average_order_value", money(revenue, orders),
		"orders_per_customer", ratio(orders, customers),
		"days_between_orders", "average", ratio(days, intervals),
		"intervals", (json_int_t)intervals, "total_days", (json_int_t)days);

	if (o && full)
		json_object_set_new(o, "description", json_string(desc_mix));
	return o;
}

static const char *const desc_decomposition =
	"sales = visitors x conversion_rate x average_order_value x (1 + repurchase_rate), "
	"exact with the unrounded terms: conversion_rate = buyers / visitors, "
	"average_order_value = sales / orders, repurchase_rate = (orders - buyers) / buyers, the "
	"repeat orders per buyer.  Sales are net of refunds over the qualifying orders of purchase "
	"occasions dated in the period; visitors come from the traffic the storefront posted and "
	"are null without it.";

static json_t *
decomposition_figures(PGresult *res, int i, bool full)
{
	long long orders = col(res, i, S_ORDERS), sales = col(res, i, S_REVENUE),
		  buyers = col(res, i, S_CUSTOMERS);
	bool traffic = !PQgetisnull(res, i, S_VISITORS);
	long long visitors = traffic ? col(res, i, S_VISITORS) : 0;
	json_t *o = json_pack("{s:I, s:o, s:o, s:I, s:I, s:o, s:I, s:o, s:o}",
		"sales", (json_int_t)sales,
		"visitors", traffic ? json_integer(visitors) : json_null(),
		"sessions", traffic ? json_integer(col(res, i, S_SESSIONS)) : json_null(),
		"traffic_days", (json_int_t)col(res, i, S_TRAFFIC_DAYS),
		"buyers", (json_int_t)buyers,
		"conversion_rate", traffic ? ratio(buyers, visitors) : json_null(),
		"orders", (json_int_t)orders,
		"average_order_value", money(sales, orders),
		"repurchase_rate", ratio(orders - buyers, buyers));

	if (o && full)
		json_object_set_new(o, "description", json_string(desc_decomposition));
	return o;
}

enum db_qs
analytics_revenue_mix(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
		      json_t **out, struct err *err)
{
	return bucketed(c, shop_id, q, "analytics_sales", "analytics_sales_cells", false, true,
			mix_figures, out, err);
}

enum db_qs
analytics_sales_decomposition(struct db_conn *c, const char *shop_id,
			      const struct analytics_query *q, json_t **out, struct err *err)
{
	return bucketed(c, shop_id, q, "analytics_sales", "analytics_sales_cells", false, true,
			decomposition_figures, out, err);
}

/* ---- cohort retention ---------------------------------------------------- */

#define MAX_COHORT_CELLS 20000

/* Start of the calendar week (Monday) or month that contains day. */
static long
calendar_start(long day, bool week)
{
	int y;
	unsigned m, d;

	if (week)
		return day - ((day + 3) % 7 + 7) % 7;
	civil_from_days(day, &y, &m, &d);
	return days_from_civil(y, m, 1);
}

/* Start of the k-th calendar week or month after the one starting at start. */
static long
calendar_add(long start, long k, bool week)
{
	int y;
	unsigned m, d;
	long mi;

	if (week)
		return start + 7 * k;
	civil_from_days(start, &y, &m, &d);
	mi = (long)y * 12 + (m - 1) + k;
	return days_from_civil(mi / 12, (unsigned)(mi % 12) + 1, 1);
}

/* Periods from the one starting at start to the one containing as_of. */
static long
periods_until(long start, long as_of, bool week)
{
	int y0, y1;
	unsigned m0, m1, d;

	if (week)
		return (calendar_start(as_of, true) - start) / 7 + 1;
	civil_from_days(start, &y0, &m0, &d);
	civil_from_days(as_of, &y1, &m1, &d);
	return ((long)y1 * 12 + m1) - ((long)y0 * 12 + m0) + 1;
}

static json_t *
cohort_cell(long k, long start, long as_of, bool week)
{
	long end = calendar_add(start, k + 1, week) - 1;
	char f[11], t[11];

	format_date(calendar_add(start, k, week), f);
	format_date(end < as_of ? end : as_of, t);
	return json_pack("{s:I, s:s, s:s, s:b, s:I, s:n, s:I, s:I}", "period", (json_int_t)k,
			 "from", f, "to", t, "complete", end <= as_of, "customers", (json_int_t)0,
			 "share", "orders", (json_int_t)0, "revenue", (json_int_t)0);
}

static const char *const desc_cohorts =
	"Customers grouped by the calendar month (week) of their first qualifying purchase; "
	"period k is the k-th month (week) after it.  Each cell counts the cohort's customers "
	"with a qualifying purchase occasion in that period up to as_of, their share of the "
	"cohort, and the orders and revenue (net of refunds) of those occasions.";

enum db_qs
analytics_cohorts(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
		  json_t **out, struct err *err)
{
	long lo[MAX_BUCKETS], hi[MAX_BUCKETS], start[MAX_BUCKETS], shown[MAX_BUCKETS];
	json_t *cells[MAX_BUCKETS], *cohorts = NULL, *size[MAX_BUCKETS], *def;
	struct range r = { 0 };
	const char *interval = q->interval ? q->interval : "month";
	bool week = strcmp(interval, "week") == 0;
	const char *p[6];
	PGresult *res = NULL;
	long total = 0;
	int n, i, row;
	enum db_qs qs = resolve(c, shop_id, q, &r, err);

	if (qs < 0)
		return qs;
	n = buckets(&r, interval, lo, hi, MAX_BUCKETS);
	if (n < 0) {
		err_set(err, ERR_INVALID_PARAMETER, "/query/interval",
			"interval: more than %d cohorts; choose a shorter range or a longer interval",
			MAX_BUCKETS);
		qs = DB_ABORT;
		goto out;
	}
	for (i = 0; i < n; i++) {
		start[i] = calendar_start(lo[i], week);
		shown[i] = periods_until(start[i], r.as_of, week);
		if (q->periods > 0 && shown[i] > q->periods)
			shown[i] = q->periods;
		total += shown[i];
	}
	if (total > MAX_COHORT_CELLS) {
		err_set(err, ERR_INVALID_PARAMETER, "/query/periods",
			"periods: the answer would have %ld cells (at most %d); narrow from/to or "
			"set periods", total, MAX_COHORT_CELLS);
		qs = DB_ABORT;
		goto out;
	}
	p[0] = shop_id;
	p[1] = r.from_s;
	p[2] = r.to_s;
	p[3] = r.as_of_s;
	p[4] = interval;
	p[5] = q->channel;
	/* the cells do not split by channel */
	qs = db_exec(c, q->channel ? "analytics_cohorts" : "analytics_cohorts_cells", 6, p, &res);
	if (qs < 0)
		goto out;
	/* the skeleton: every cohort and period, empty */
	cohorts = json_array();
	for (i = 0; i < n; i++) {
		char f[11], t[11];
		json_t *co;

		format_date(lo[i], f);
		format_date(hi[i], t);
		cells[i] = json_array();
		for (long k = 0; k < shown[i]; k++)
			json_array_append_new(cells[i], cohort_cell(k, start[i], r.as_of, week));
		size[i] = json_integer(0);
		co = json_pack("{s:s, s:s, s:o, s:o}", "from", f, "to", t, "customers", size[i],
			       "periods", cells[i]);
		json_array_append_new(cohorts, co);
	}
	/* rows come by cohort, size (period -1) first, then periods ascending */
	for (row = 0, i = 0; row < (int)qs; row++) {
		long cb, k = atol(PQgetvalue(res, row, 1));
		json_t *cell;

		if (!parse_date(PQgetvalue(res, row, 0), &cb))
			continue;
		while (i < n && start[i] < cb)
			i++;
		if (i == n || start[i] != cb)
			break;
		if (k < 0) {
			json_integer_set(size[i], col(res, row, 2));
			continue;
		}
		if (k >= shown[i])
			continue;
		cell = json_array_get(cells[i], (size_t)k);
		json_object_set_new(cell, "customers", json_integer(col(res, row, 2)));
		json_object_set_new(cell, "orders", json_integer(col(res, row, 3)));
		json_object_set_new(cell, "revenue", json_integer(col(res, row, 4)));
	}
	if (row < (int)qs) {
		err_set(err, ERR_INTERNAL, NULL, "cohorts: row %d matches no cohort", row);
		qs = DB_ABORT;
		goto out;
	}
	/* shares once every cohort's size is known: 0 where nobody came */
	for (i = 0; i < n; i++) {
		size_t k;
		json_t *cell;

		json_array_foreach(cells[i], k, cell)
			json_object_set_new(cell, "share",
				ratio(json_integer_value(json_object_get(cell, "customers")),
				      json_integer_value(size[i])));
	}
	def = money_definition(&r, q);
	json_object_set_new(def, "interval", json_string(interval));
	json_object_set_new(def, "periods", q->periods > 0 ? json_integer(q->periods) : json_null());
	*out = json_pack("{s:o, s:o, s:s}", "definition", def, "cohorts", cohorts, "description",
			 desc_cohorts);
	cohorts = NULL;
	qs = DB_ONE_RESULT;
out:
	json_decref(cohorts);
	PQclear(res);
	json_decref(r.rule);
	return qs;
}

/* ---- repurchase by the first order's role and channel -------------------- */

/* Columns: kind, key, customers, back by as_of, censored, back in window. */
static json_t *
first_group(PGresult *res, int row)
{
	long long customers = res ? col(res, row, 2) : 0, repeat = res ? col(res, row, 3) : 0,
		  censored = res ? col(res, row, 4) : 0, num = res ? col(res, row, 5) : 0;
	json_t *nday = rate(num, customers - censored, NULL);

	json_object_set_new(nday, "censored", json_integer(censored));
	return json_pack("{s:I, s:I, s:o, s:o}", "customers", (json_int_t)customers,
			 "repeat_customers", (json_int_t)repeat, "repeat_share",
			 ratio(repeat, customers), "n_day_repurchase_rate", nday);
}

static const char *const desc_first_order =
	"Customers whose first qualifying purchase is dated in the period, grouped by the product "
	"roles in that first purchase (a customer is in every role it contained) and by its "
	"channel: how many bought again by as_of, and the N-day repurchase rate with customers "
	"whose window had not ended by as_of censored.";

enum db_qs
analytics_first_order(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
		      json_t **out, struct err *err)
{
	static const char *const roles[] = { "traffic", "activity", "regular" };
	struct range r = { 0 };
	char window[16];
	const char *p[5];
	PGresult *res = NULL;
	json_t *def, *by_role, *by_channel, *overall = NULL;
	enum db_qs qs = resolve(c, shop_id, q, &r, err);

	if (qs < 0)
		return qs;
	snprintf(window, sizeof window, "%d", q->window_days);
	p[0] = shop_id;
	p[1] = r.from_s;
	p[2] = r.to_s;
	p[3] = r.as_of_s;
	p[4] = window;
	qs = db_exec(c, "analytics_first_order", 5, p, &res);
	if (qs < 0) {
		json_decref(r.rule);
		return qs;
	}
	by_role = json_array();
	by_channel = json_array();
	for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) {
		int row = -1;
		json_t *g;

		for (int i = 0; i < (int)qs; i++)
			if (strcmp(PQgetvalue(res, i, 0), "1") == 0 &&
			    strcmp(PQgetvalue(res, i, 1), roles[k]) == 0)
				row = i;
		g = json_pack("{s:s}", "role", roles[k]);
		json_object_update_new(g, first_group(row < 0 ? NULL : res, row));
		json_array_append_new(by_role, g);
	}
	for (int i = 0; i < (int)qs; i++) {
		const char *kind = PQgetvalue(res, i, 0);

		if (strcmp(kind, "0") == 0) {
			json_decref(overall);
			overall = first_group(res, i);
		} else if (strcmp(kind, "2") == 0) {
			json_t *g = json_pack("{s:s}", "channel", PQgetvalue(res, i, 1));

			json_object_update_new(g, first_group(res, i));
			json_array_append_new(by_channel, g);
		}
	}
	def = definition(&r, q);
	json_object_set_new(def, "window_days", json_integer(q->window_days));
	*out = json_pack("{s:o, s:o, s:o, s:o, s:s}", "definition", def, "overall",
			 overall ? overall : first_group(NULL, 0), "by_role", by_role,
			 "by_channel", by_channel, "description", desc_first_order);
	PQclear(res);
	json_decref(r.rule);
	return DB_ONE_RESULT;
}

/* ---- members vs non-members ----------------------------------------------- */

static const char *const caveat_membership =
	"A comparison of groups, not a causal effect: customers who buy more are likelier to "
	"join or earn a tier.";

/* The group's figures from its row of analytics_membership (row < 0: none, all zero). */
static json_t *
member_group(const char *name, PGresult *res, int row)
{
	long long customers = row < 0 ? 0 : col(res, row, 2), repeat = row < 0 ? 0 : col(res, row, 3),
		  orders = row < 0 ? 0 : col(res, row, 4), intervals = row < 0 ? 0 : col(res, row, 5),
		  days = row < 0 ? 0 : col(res, row, 6);

	return json_pack("{s:s, s:I, s:I, s:o, s:I, s:o, s:I, s:o}", "group", name,
			 "customers", (json_int_t)customers, "repeat_customers", (json_int_t)repeat,
			 "repurchase_rate", ratio(repeat, customers), "orders", (json_int_t)orders,
			 "orders_per_customer", ratio(orders, customers),
			 "intervals", (json_int_t)intervals,
			 "days_between_orders", ratio(days, intervals));
}

static int
group_row(PGresult *res, int n, int kind, const char *grp)
{
	for (int i = 0; i < n; i++)
		if (atoi(PQgetvalue(res, i, 0)) == kind && strcmp(PQgetvalue(res, i, 1), grp) == 0)
			return i;
	return -1;
}

enum db_qs
analytics_membership(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
		     json_t **out, struct err *err)
{
	struct range r;
	PGresult *res = NULL, *tiers = NULL;
	json_t *def = NULL, *by_tier = NULL;
	enum db_qs qs = resolve(c, shop_id, q, &r, err), nt;

	if (qs < 0)
		return qs;
	{
		const char *p[3] = { shop_id, r.from_s, r.to_s };

		qs = db_exec(c, "analytics_membership", 3, p, &res);
		if (qs < 0)
			goto out;
		nt = db_exec(c, "analytics_tiers", 1, p, &tiers);
		if (nt < 0) {
			qs = nt;
			goto out;
		}
	}
	by_tier = json_array();
	for (int i = 0; by_tier && i < (int)nt; i++) {
		const char *code = PQgetvalue(tiers, i, 0);

		json_array_append_new(by_tier, member_group(code, res, group_row(res, (int)qs, 1, code)));
	}
	if (by_tier)
		json_array_append_new(by_tier, member_group("none", res, group_row(res, (int)qs, 1, "")));
	def = definition(&r, q);
	if (!def || !by_tier) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	json_object_del(def, "channel");
	json_object_set_new(def, "caveat", json_string(caveat_membership));
	*out = json_pack("{s:o, s:o, s:o, s:o}", "definition", def,
			 "members", member_group("members", res, group_row(res, (int)qs, 0, "members")),
			 "non_members", member_group("non_members", res,
						     group_row(res, (int)qs, 0, "non_members")),
			 "tiers", by_tier);
	def = by_tier = NULL;
	qs = *out ? DB_ONE_RESULT : DB_HARD_ERROR;
out:
	json_decref(def);
	json_decref(by_tier);
	PQclear(res);
	PQclear(tiers);
	json_decref(r.rule);
	return qs;
}

/* ---- prepaid wallets ------------------------------------------------------ */

static const char *const caveat_wallets =
	"A comparison of groups, not a causal effect: customers who buy more are likelier to "
	"top up a wallet.";

/* Holders vs non-holders of a product over the range: stmt's two groups, each built by group. */
static enum db_qs
holders(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
	const char *stmt, const char *caveat, json_t *(*group)(const char *, PGresult *, int),
	json_t **out, struct err *err)
{
	struct range r;
	PGresult *res = NULL;
	json_t *def;
	enum db_qs qs = resolve(c, shop_id, q, &r, err);

	if (qs < 0)
		return qs;
	{
		const char *p[3] = { shop_id, r.from_s, r.to_s };

		qs = db_exec(c, stmt, 3, p, &res);
	}
	if (qs < 0)
		goto out;
	def = definition(&r, q);
	if (!def) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	json_object_del(def, "channel");
	json_object_set_new(def, "caveat", json_string(caveat));
	*out = json_pack("{s:o, s:o, s:o}", "definition", def,
			 "holders", group("holders", res, group_row(res, (int)qs, 0, "holders")),
			 "non_holders", group("non_holders", res,
					      group_row(res, (int)qs, 0, "non_holders")));
	qs = *out ? DB_ONE_RESULT : DB_HARD_ERROR;
out:
	PQclear(res);
	json_decref(r.rule);
	return qs;
}

enum db_qs
analytics_wallet_holders(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
			 json_t **out, struct err *err)
{
	return holders(c, shop_id, q, "analytics_wallet_holders", caveat_wallets, member_group, out,
		       err);
}

/*
 * A money report at the end of as_of (or now, if sooner; never after today
 * by the request's clock): releases and expiries due are posted first,
 * then stmt gives the figures, under key, or merged into the reply when
 * key is NULL.
 */
static enum db_qs
money_report(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
	     const char *stmt, const char *key, json_t **out, struct err *err)
{
	const char *p[2] = { shop_id, NULL };
	char as_of[11];
	json_t *figures = NULL;
	char *text = NULL;
	PGresult *r;
	enum db_qs qs = db_exec(c, "analytics_money_today", 1, p, &r);
	long today, day;

	if (qs <= 0) {
		if (qs == 0)
			err_set(err, ERR_NOT_FOUND, NULL, "shop not found");
		return qs == 0 ? DB_ABORT : qs;
	}
	/* today by the request's clock (the test clock moves money, not metrics) */
	parse_date(PQgetvalue(r, 0, 0), &today);
	day = today;
	if (q->as_of)
		parse_date(q->as_of, &day);
	if (day > today) {
		PQclear(r);
		err_set(err, ERR_INVALID_PARAMETER, "/query/as_of",
			"as_of: must not be after today in the shop's time zone");
		return DB_ABORT;
	}
	format_date(day, as_of);
	p[1] = as_of;
	if (db_sweep(c, "analytics_prepaid_sweep", shop_id) < 0) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	if ((qs = db_exec_text(c, stmt, 2, p, &text)) < 0)
		goto out;
	figures = text ? json_loads(text, 0, NULL) : NULL;
	if (!figures) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	*out = json_pack("{s:{s:s, s:s, s:s}}", "definition", "timezone", PQgetvalue(r, 0, 1),
			 "as_of", as_of, "currency", PQgetvalue(r, 0, 2));
	if (*out && key)
		json_object_set_new(*out, key, figures);
	else if (*out)
		json_object_update(*out, figures);
	if (!*out || !key)
		json_decref(figures);
	qs = *out ? DB_ONE_RESULT : DB_HARD_ERROR;
out:
	PQclear(r);
	free(text);
	return qs;
}

enum db_qs
analytics_prepaid_liability(struct db_conn *c, const char *shop_id,
			    const struct analytics_query *q, json_t **out, struct err *err)
{
	return money_report(c, shop_id, q, "analytics_liability", "liability", out, err);
}

enum db_qs
analytics_package_breakage(struct db_conn *c, const char *shop_id,
			   const struct analytics_query *q, json_t **out, struct err *err)
{
	return money_report(c, shop_id, q, "analytics_package_breakage", NULL, out, err);
}

enum db_qs
analytics_coupon_redemption(struct db_conn *c, const char *shop_id,
			    const struct analytics_query *q, json_t **out, struct err *err)
{
	return money_report(c, shop_id, q, "analytics_coupon_redemption", NULL, out, err);
}

/* ---- prepaid packages: visits of holders and the others -------------------- */

static const char *const caveat_packages =
	"A comparison of groups, not a causal effect: customers who visit more are likelier to "
	"buy a package.";

static json_t *
visit_group(const char *name, PGresult *res, int row)
{
	long long customers = row < 0 ? 0 : col(res, row, 2), visits = row < 0 ? 0 : col(res, row, 3),
		  repeat = row < 0 ? 0 : col(res, row, 4), intervals = row < 0 ? 0 : col(res, row, 5),
		  days = row < 0 ? 0 : col(res, row, 6);

	return json_pack("{s:s, s:I, s:I, s:o, s:I, s:I, s:o}", "group", name,
			 "customers", (json_int_t)customers, "visits", (json_int_t)visits,
			 "visits_per_customer", ratio(visits, customers),
			 "repeat_visitors", (json_int_t)repeat, "intervals", (json_int_t)intervals,
			 "days_between_visits", ratio(days, intervals));
}

enum db_qs
analytics_package_holders(struct db_conn *c, const char *shop_id, const struct analytics_query *q,
			  json_t **out, struct err *err)
{
	return holders(c, shop_id, q, "analytics_package_holders", caveat_packages, visit_group,
		       out, err);
}
