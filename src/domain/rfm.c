/*
 * rfm.c — RFM scores, map and summary; see include/rebuy/rfm.h.
 *
 * The map is tiled in C into two 25-cell tables (entry per R x F cell,
 * and the lapsed override), so the database assigns a segment with two
 * array lookups instead of a search per customer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/jv.h"
#include "rebuy/rfm.h"

#define MAX_ENTRIES 50
#define MAX_VALUE 1000000000000000LL

/* sc(…, rec, lapse_days, r, f) → g(…, seg): the map's entry for the cell and lapse */
#define SEGMENT_OF \
	/* $2, $3: entry (1-based, 0 none) per cell (r - 1) * 5 + f, and lapsed override */ \
	" g AS (SELECT sc.*, CASE WHEN ($3::integer[])[(sc.r - 1) * 5 + sc.f] > 0" \
	"     AND sc.rec > sc.lapse_days THEN ($3::integer[])[(sc.r - 1) * 5 + sc.f]" \
	"     ELSE ($2::integer[])[(sc.r - 1) * 5 + sc.f] END AS seg FROM sc)"

/*
 * One customer: from w(rec, frq, mon, n, wr, wf, wm, rfm, lapse_days), the
 * counts of scored customers with a strictly worse value, sc with r, f, m.
 */
#define SCORE_CASES \
	" sc AS (SELECT w.*," \
	"   CASE WHEN w.rfm ->> 'method' = 'thresholds' THEN" \
	"     CASE WHEN w.rec <= (w.rfm -> 'recency_days' ->> 0)::bigint THEN 5" \
	"          WHEN w.rec <= (w.rfm -> 'recency_days' ->> 1)::bigint THEN 4" \
	"          WHEN w.rec <= (w.rfm -> 'recency_days' ->> 2)::bigint THEN 3" \
	"          WHEN w.rec <= (w.rfm -> 'recency_days' ->> 3)::bigint THEN 2 ELSE 1 END" \
	"   ELSE 1 + (5 * w.wr) / w.n END AS r," \
	"   CASE WHEN w.rfm ->> 'method' = 'thresholds' THEN 1" \
	"     + (SELECT count(*) FROM jsonb_array_elements_text(w.rfm -> 'frequency') t" \
	"        WHERE w.frq >= t::bigint)::integer" \
	"   ELSE 1 + (5 * w.wf) / w.n END AS f," \
	"   CASE WHEN w.rfm ->> 'method' = 'thresholds' THEN 1" \
	"     + (SELECT count(*) FROM jsonb_array_elements_text(w.rfm -> 'monetary') t" \
	"        WHERE w.mon >= t::bigint)::integer" \
	"   ELSE 1 + (5 * w.wm) / w.n END AS m" \
	"   FROM w)," \
	SEGMENT_OF

/*
 * Scoring without ranking each customer: a score is 1 + the number of four
 * cutoffs its value passes.  Thresholds are the shop's.  For quintiles the
 * score 1 + floor(5 w / N) (w: customers with a strictly worse value)
 * reaches k exactly when w >= t = ceil((k - 1) N / 5), that is when the
 * value beats the t-th worst value; that value comes from a histogram of
 * the values (few distinct recencies and frequencies), not from sorting
 * customers.  From t(t[4]) and the histograms hr, hf, hm(val, upto:
 * customers with a value as good or worse): cut(r, f, m), the cutoffs
 * (one pass over each histogram); recency passes at or below its cutoff,
 * the others at or above.
 */
#define CUTS \
	" cut AS MATERIALIZED (SELECT CASE WHEN p.rfm ->> 'method' = 'thresholds' THEN" \
	"     ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p.rfm -> 'recency_days') x)" \
	"   ELSE (SELECT ARRAY[max(val) FILTER (WHERE upto >= t.t[1]) - 1," \
	"     max(val) FILTER (WHERE upto >= t.t[2]) - 1, max(val) FILTER (WHERE upto >= t.t[3]) - 1," \
	"     max(val) FILTER (WHERE upto >= t.t[4]) - 1] FROM hr) END AS r," \
	"   CASE WHEN p.rfm ->> 'method' = 'thresholds' THEN" \
	"     ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p.rfm -> 'frequency') x)" \
	"   ELSE (SELECT ARRAY[min(val) FILTER (WHERE upto >= t.t[1]) + 1," \
	"     min(val) FILTER (WHERE upto >= t.t[2]) + 1, min(val) FILTER (WHERE upto >= t.t[3]) + 1," \
	"     min(val) FILTER (WHERE upto >= t.t[4]) + 1] FROM hf) END AS f," \
	"   CASE WHEN p.rfm ->> 'method' = 'thresholds' THEN" \
	"     ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(p.rfm -> 'monetary') x)" \
	"   ELSE (SELECT ARRAY[min(val) FILTER (WHERE upto >= t.t[1]) + 1," \
	"     min(val) FILTER (WHERE upto >= t.t[2]) + 1, min(val) FILTER (WHERE upto >= t.t[3]) + 1," \
	"     min(val) FILTER (WHERE upto >= t.t[4]) + 1] FROM hm) END AS m" \
	"   FROM p, t)"

/* t from n, the number of scored customers */
#define QUINTILE_T(n) \
	" t AS MATERIALIZED (SELECT ARRAY[(n + 4) / 5, (2 * n + 4) / 5, (3 * n + 4) / 5," \
	"     (4 * n + 4) / 5] AS t FROM (SELECT " n " AS n) z),"

/* the score of value x against the cutoffs c (recency: at or below) */
#define PASSES(x, op, c) \
	"(1 + (" x " " op " " c "[1])::integer + (" x " " op " " c "[2])::integer" \
	" + (" x " " op " " c "[3])::integer + (" x " " op " " c "[4])::integer)"

/* the scored customers of shop $1: non-erased, with a qualifying purchase */
#define SCORED_FACTS \
	" FROM p, customer_facts f WHERE f.shop_id = $1 AND NOT EXISTS (SELECT FROM customers c" \
	"   WHERE c.shop_id = $1 AND c.erased_at IS NOT NULL AND c.seq = f.customer_seq)"

#define RECENCY "p.today - (f.last_order_at AT TIME ZONE p.tz)::date"

/*
 * Every scored customer's scores, as g(customer_seq, rec, frq, mon,
 * lapse_days, r, f, m, seg) under p(today, tz, rfm, lapse_days); $1 shop,
 * $2 and $3 the tiled map.
 */
#define RFM_SCORED \
	" v AS (SELECT f.customer_seq, " RECENCY " AS rec, f.order_count::bigint AS frq," \
	"   f.total_spent AS mon" SCORED_FACTS ")," \
	QUINTILE_T("(SELECT count(*) FROM v)") \
	" hr AS MATERIALIZED (SELECT rec AS val, sum(count(*)) OVER (ORDER BY rec DESC) AS upto" \
	"   FROM v GROUP BY rec)," \
	" hf AS MATERIALIZED (SELECT frq AS val, sum(count(*)) OVER (ORDER BY frq) AS upto" \
	"   FROM v GROUP BY frq)," \
	" hm AS MATERIALIZED (SELECT mon AS val, sum(count(*)) OVER (ORDER BY mon) AS upto" \
	"   FROM v GROUP BY mon)," \
	CUTS "," \
	" sc AS (SELECT v.*, p.lapse_days, " PASSES("v.rec", "<=", "cut.r") " AS r," \
	"   " PASSES("v.frq", ">=", "cut.f") " AS f, " PASSES("v.mon", ">=", "cut.m") " AS m" \
	"   FROM v, p, cut)," \
	SEGMENT_OF

/*
 * The summary needs no customer's own scores: a segment depends on R and
 * F, so customers are counted per (recency, frequency) cell.  The cells
 * are kept with the facts (rfm_cells, migration 0018), erased customers
 * included: er takes them out here, being few.
 *
 * The monetary cutoffs need only the four values of rank t[k] (the t-th
 * least): the spend histogram (rfm_spend_cells, buckets of two
 * significant digits) says which bucket holds rank t and how many rank
 * below it, and the facts' index, read from that bucket's least value,
 * gives the value exactly.  hm(val, upto) holds those four ranks, which
 * is all CUTS reads of it.
 */
#define RFM_CELLS \
	" er AS MATERIALIZED (SELECT f.customer_seq, f.last_order_at, f.order_count, f.total_spent" \
	"   FROM customers c JOIN customer_facts f ON f.customer_seq = c.seq" \
	"   WHERE c.shop_id = $1 AND c.erased_at IS NOT NULL)," \
	" v AS MATERIALIZED (SELECT p.today - x.last_day AS rec, x.order_count::bigint AS frq," \
	"   sum(x.customers) AS n, sum(x.spent) AS mon" \
	"   FROM p, (SELECT s.last_day, s.order_count, s.customers, s.spent FROM rfm_cells_stored($1) s" \
	"     UNION ALL SELECT (er.last_order_at AT TIME ZONE p.tz)::date, er.order_count, -1," \
	"       -er.total_spent FROM er, p) x" \
	"   GROUP BY 1, 2 HAVING sum(x.customers) > 0)," \
	QUINTILE_T("(SELECT sum(n) FROM v)::bigint") \
	" hr AS MATERIALIZED (SELECT rec AS val, sum(sum(n)) OVER (ORDER BY rec DESC) AS upto" \
	"   FROM v GROUP BY rec)," \
	" hf AS MATERIALIZED (SELECT frq AS val, sum(sum(n)) OVER (ORDER BY frq) AS upto" \
	"   FROM v GROUP BY frq)," \
	" mb AS MATERIALIZED (SELECT x.bucket, sum(x.customers) AS n" \
	"   FROM (SELECT s.bucket, s.customers FROM rfm_spend_stored($1) s" \
	"     UNION ALL SELECT rfm_spend_bucket(er.total_spent), -1 FROM er) x" \
	"   GROUP BY 1 HAVING sum(x.customers) > 0)," \
	" mh AS MATERIALIZED (SELECT bucket, n, sum(n) OVER (ORDER BY bucket) - n AS below FROM mb)," \
	" hm AS MATERIALIZED (SELECT q.val, t.t[k] AS upto FROM t, generate_series(1, 4) k," \
	"   LATERAL (SELECT mh.bucket, mh.below FROM mh WHERE mh.below + mh.n >= t.t[k]" \
	"     ORDER BY mh.bucket LIMIT 1) b," \
	"   LATERAL (SELECT f.total_spent AS val FROM customer_facts f" \
	"     WHERE f.shop_id = $1 AND f.total_spent >= b.bucket" \
	"       AND f.customer_seq NOT IN (SELECT er.customer_seq FROM er)" \
	"     ORDER BY f.total_spent OFFSET t.t[k] - b.below - 1 LIMIT 1) q)," \
	CUTS "," \
	" sc AS (SELECT v.*, p.lapse_days, " PASSES("v.rec", "<=", "cut.r") " AS r," \
	"   " PASSES("v.frq", ">=", "cut.f") " AS f FROM v, p, cut)," \
	SEGMENT_OF

const char rfm_scored_ctes[] = RFM_SCORED;

#define P_RFM \
	"WITH p AS MATERIALIZED (SELECT (now() AT TIME ZONE s.timezone)::date AS today," \
	"   s.timezone AS tz, coalesce(s.settings -> 'rfm', '{\"method\": \"quintiles\"}') AS rfm," \
	"   (shop_segment_settings(s) ->> 'lapse_days')::integer AS lapse_days" \
	"   FROM shops s WHERE s.id = $1),"

const struct db_stmt rfm_stmts[] = {
	{ "rfm_map_get", "SELECT segments::text FROM rfm_maps WHERE shop_id = $1" },
	{ "rfm_map_put",
	  "INSERT INTO rfm_maps (shop_id, segments) VALUES ($1, $2::jsonb)"
	  " ON CONFLICT (shop_id) DO UPDATE SET segments = excluded.segments, updated_at = now()" },
	{ "rfm_today",
	  "SELECT (now() AT TIME ZONE timezone)::date::text,"
	  " coalesce(settings -> 'rfm' ->> 'method', 'quintiles') FROM shops WHERE id = $1" },
	/*
	 * Per segment (row with seg NULL: everyone): customers, revenue,
	 * averages; on the total row, the edges of each score (the least good
	 * value scoring at least 2, 3, 4, 5: scores grow with the values, so
	 * it is the least good among those scoring exactly that; null when
	 * nobody does).
	 */
	{ "rfm_summary",
	  P_RFM RFM_CELLS
	  " SELECT seg, sum(n), coalesce(sum(mon), 0), round(sum(rec * n) / sum(n), 1),"
	  "   round(sum(frq * n) / sum(n), 1), round(sum(mon) / sum(n), 1),"
	  "   json_build_array(max(rec) FILTER (WHERE r = 2), max(rec) FILTER (WHERE r = 3),"
	  "     max(rec) FILTER (WHERE r = 4), max(rec) FILTER (WHERE r = 5))::text,"
	  "   json_build_array(min(frq) FILTER (WHERE f = 2), min(frq) FILTER (WHERE f = 3),"
	  "     min(frq) FILTER (WHERE f = 4), min(frq) FILTER (WHERE f = 5))::text,"
	  /* score k + 1 starts at the least value passing cutoff k, unless that passes k + 1 too */
	  "   (SELECT json_agg(CASE WHEN k = 4 OR l.val < cut.m[k + 1] THEN l.val END ORDER BY k)::text"
	  "    FROM cut, generate_series(1, 4) k,"
	  "     LATERAL (SELECT min(f.total_spent) AS val FROM customer_facts f"
	  "       WHERE f.shop_id = $1 AND f.total_spent >= cut.m[k]"
	  "         AND f.customer_seq NOT IN (SELECT er.customer_seq FROM er)) l)"
	  " FROM g GROUP BY GROUPING SETS ((seg), ()) ORDER BY seg NULLS FIRST" },
	/*
	 * One customer's scores without scoring everyone: for quintiles, w is
	 * counted with the facts' indexes (less the few erased customers, who
	 * are not scored).  $2, $3 the tiled map as in RFM_SCORED, $4 the id.
	 */
	{ "rfm_customer",
	  "WITH p AS MATERIALIZED (SELECT (now() AT TIME ZONE s.timezone)::date AS today,"
	  "   s.timezone AS tz, coalesce(s.settings -> 'rfm', '{\"method\": \"quintiles\"}') AS rfm,"
	  "   (shop_segment_settings(s) ->> 'lapse_days')::integer AS lapse_days"
	  "   FROM shops s WHERE s.id = $1),"
	  " me AS MATERIALIZED (SELECT f.last_order_at, f.order_count::bigint AS frq,"
	  "     f.total_spent AS mon, p.today - (f.last_order_at AT TIME ZONE p.tz)::date AS rec,"
	  "     ((f.last_order_at AT TIME ZONE p.tz)::date::timestamp AT TIME ZONE p.tz) AS day_start"
	  "   FROM p, customers c JOIN customer_facts f ON f.customer_seq = c.seq"
	  "   WHERE c.shop_id = $1 AND c.id = $4 AND c.erased_at IS NULL),"
	  " er AS MATERIALIZED (SELECT f.last_order_at, f.order_count, f.total_spent"
	  "   FROM customers c JOIN customer_facts f ON f.customer_seq = c.seq"
	  "   WHERE c.shop_id = $1 AND c.erased_at IS NOT NULL),"
	  " w AS (SELECT me.rec, me.frq, me.mon, p.rfm, p.lapse_days,"
	  "   (SELECT count(*) FROM customer_facts f WHERE f.shop_id = $1)"
	  "     - (SELECT count(*) FROM er) AS n,"
	  "   (SELECT count(*) FROM customer_facts f WHERE f.shop_id = $1"
	  "      AND f.last_order_at < me.day_start)"
	  "     - (SELECT count(*) FROM er WHERE er.last_order_at < me.day_start) AS wr,"
	  "   (SELECT count(*) FROM customer_facts f WHERE f.shop_id = $1 AND f.order_count < me.frq)"
	  "     - (SELECT count(*) FROM er WHERE er.order_count < me.frq) AS wf,"
	  "   (SELECT count(*) FROM customer_facts f WHERE f.shop_id = $1 AND f.total_spent < me.mon)"
	  "     - (SELECT count(*) FROM er WHERE er.total_spent < me.mon) AS wm"
	  "   FROM me, p),"
	  SCORE_CASES
	  " SELECT g.r, g.f, g.m, g.seg FROM g" },
	{ NULL, NULL },
};

static const char default_map[] =
	"[{\"name\": \"Champions\", \"r\": [5, 5], \"f\": [4, 5], \"lapsed\": false},"
	" {\"name\": \"Loyal\", \"r\": [3, 4], \"f\": [4, 5], \"lapsed\": false},"
	" {\"name\": \"Potential loyalists\", \"r\": [4, 5], \"f\": [2, 3], \"lapsed\": false},"
	" {\"name\": \"New customers\", \"r\": [5, 5], \"f\": [1, 1], \"lapsed\": false},"
	" {\"name\": \"Promising\", \"r\": [4, 4], \"f\": [1, 1], \"lapsed\": false},"
	" {\"name\": \"Need attention\", \"r\": [3, 3], \"f\": [3, 3], \"lapsed\": false},"
	" {\"name\": \"About to sleep\", \"r\": [3, 3], \"f\": [1, 2], \"lapsed\": false},"
	" {\"name\": \"At risk\", \"r\": [1, 2], \"f\": [3, 4], \"lapsed\": false},"
	" {\"name\": \"Can't lose them\", \"r\": [1, 2], \"f\": [5, 5], \"lapsed\": false},"
	" {\"name\": \"Hibernating\", \"r\": [1, 2], \"f\": [1, 2], \"lapsed\": false},"
	" {\"name\": \"Lost\", \"r\": [1, 1], \"f\": [1, 2], \"lapsed\": true}]";

/* ---- settings.rfm -------------------------------------------------------- */

bool
rfm_settings_check(const json_t *rfm, struct err *err)
{
	static const char *const arrays[] = { "recency_days", "frequency", "monetary" };
	const char *method = json_string_value(json_object_get(rfm, "method"));
	bool thresholds = method && strcmp(method, "thresholds") == 0;
	char ptr[64];

	if (!method || (!thresholds && strcmp(method, "quintiles") != 0)) {
		err_set(err, ERR_VALIDATION, "/settings/rfm/method",
			"/settings/rfm/method: must be quintiles or thresholds");
		return false;
	}
	for (size_t k = 0; k < 3; k++) {
		json_t *a = json_object_get(rfm, arrays[k]);

		snprintf(ptr, sizeof ptr, "/settings/rfm/%s", arrays[k]);
		if (!thresholds && a) {
			err_set(err, ERR_VALIDATION, ptr, "%s: only with the thresholds method", ptr);
			return false;
		}
		if (!thresholds)
			continue;
		if (!json_is_array(a) || json_array_size(a) != 4) {
			err_set(err, ERR_VALIDATION, ptr, "%s: must be 4 integers, increasing", ptr);
			return false;
		}
		for (size_t i = 0; i < 4; i++) {
			json_t *v = json_array_get(a, i);
			json_int_t lo = k == 1 ? 1 : 0;

			snprintf(ptr, sizeof ptr, "/settings/rfm/%s/%zu", arrays[k], i);
			if (!json_is_integer(v) || json_integer_value(v) < lo ||
			    json_integer_value(v) > MAX_VALUE) {
				err_set(err, ERR_VALIDATION, ptr, "%s: must be an integer from %lld to %lld",
					ptr, (long long)lo, MAX_VALUE);
				return false;
			}
			if (i > 0 && json_integer_value(v) <= json_integer_value(json_array_get(a, i - 1))) {
				err_set(err, ERR_VALIDATION, ptr, "%s: must be above the one before", ptr);
				return false;
			}
		}
	}
	return true;
}

/* ---- the map -------------------------------------------------------------- */

static const struct jv_field range_item = { .kind = JV_INTEGER, .min = 1, .max = 5 };

static const struct jv_field entry_fields[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = "r", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 2, .max = 2, .items = &range_item },
	{ .name = "f", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 2, .max = 2, .items = &range_item },
	{ .name = "lapsed", .kind = JV_BOOLEAN },
	{ .name = NULL },
};

static const struct jv_field entry_spec = { .kind = JV_OBJECT, .fields = entry_fields };

const struct jv_field rfm_map_spec[] = {
	{ .name = "segments", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 1, .max = MAX_ENTRIES,
	  .items = &entry_spec },
	{ .name = NULL },
};

static int
lo_of(json_t *e, const char *k)
{
	return (int)json_integer_value(json_array_get(json_object_get(e, k), 0));
}

static int
hi_of(json_t *e, const char *k)
{
	return (int)json_integer_value(json_array_get(json_object_get(e, k), 1));
}

/*
 * Tile the map: cell[(r - 1) * 5 + f - 1] = entry index + 1 for the
 * normal entries, lapsed[] for the lapsed overrides.  False with err when
 * it does not tile (pointer /segments/<i> or /segments).
 */
static bool
tile(json_t *segs, int cell[25], int lapsed[25], struct err *err)
{
	char ptr[48];
	size_t n = json_array_size(segs);

	memset(cell, 0, 25 * sizeof cell[0]);
	memset(lapsed, 0, 25 * sizeof lapsed[0]);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(segs, i);
		bool lap = json_is_true(json_object_get(e, "lapsed"));
		int *t = lap ? lapsed : cell;

		snprintf(ptr, sizeof ptr, "/segments/%zu", i);
		if (lo_of(e, "r") > hi_of(e, "r") || lo_of(e, "f") > hi_of(e, "f")) {
			err_set(err, ERR_VALIDATION, ptr, "%s: a range's low score is above its high", ptr);
			return false;
		}
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_object_get(e, "name"),
				       json_object_get(json_array_get(segs, j), "name"))) {
				snprintf(ptr, sizeof ptr, "/segments/%zu/name", i);
				err_set(err, ERR_VALIDATION, ptr, "%s: the same name as /segments/%zu",
					ptr, j);
				return false;
			}
		for (int r = lo_of(e, "r"); r <= hi_of(e, "r"); r++)
			for (int f = lo_of(e, "f"); f <= hi_of(e, "f"); f++) {
				int *c = &t[(r - 1) * 5 + f - 1];

				if (*c) {
					err_set(err, ERR_VALIDATION, ptr, "%s: R%d F%d is already covered by "
						"/segments/%d", ptr, r, f, *c - 1);
					return false;
				}
				*c = (int)i + 1;
			}
	}
	for (int k = 0; k < 25; k++)
		if (!cell[k]) {
			err_set(err, ERR_VALIDATION, "/segments", "/segments: R%d F%d is not covered",
				k / 5 + 1, k % 5 + 1);
			return false;
		}
	return true;
}

/* The stored map or the default (*is_default), as a JSON array. */
static enum db_qs
load_map(struct db_conn *c, const char *shop_id, json_t **segs, bool *is_default)
{
	const char *p[1] = { shop_id };
	char *text = NULL;
	enum db_qs qs = db_exec_text(c, "rfm_map_get", 1, p, &text);

	if (qs < 0)
		return qs;
	*is_default = !text;
	*segs = json_loads(text ? text : default_map, 0, NULL);
	free(text);
	return *segs ? DB_ONE_RESULT : DB_HARD_ERROR;
}

/* Every entry with lapsed spelled out, in order. */
static json_t *
map_answer(json_t *segs, bool is_default)
{
	size_t i;
	json_t *e;

	json_array_foreach(segs, i, e)
		if (!json_object_get(e, "lapsed"))
			json_object_set_new(e, "lapsed", json_false());
	return json_pack("{s:O, s:b}", "segments", segs, "default", is_default);
}

enum db_qs
rfm_map_get(struct db_conn *c, const char *shop_id, json_t **out)
{
	json_t *segs;
	bool is_default;
	enum db_qs qs = load_map(c, shop_id, &segs, &is_default);

	if (qs < 0)
		return qs;
	*out = map_answer(segs, is_default);
	json_decref(segs);
	return DB_ONE_RESULT;
}

enum db_qs
rfm_map_put(struct db_conn *c, const char *shop_id, const json_t *body, json_t **out,
	    struct err *err)
{
	json_t *segs = json_deep_copy(json_object_get(body, "segments"));
	int cell[25], lapsed[25];
	const char *p[2] = { shop_id, NULL };
	char *text;
	enum db_qs qs;

	if (!segs)
		return DB_HARD_ERROR;
	if (!tile(segs, cell, lapsed, err)) {
		json_decref(segs);
		return DB_ABORT;
	}
	*out = map_answer(segs, false);
	text = json_dumps(segs, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(segs);
	if (!text)
		return DB_HARD_ERROR;
	p[1] = text;
	qs = db_exec_none(c, "rfm_map_put", 2, p);
	free(text);
	if (qs < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return qs < 0 ? qs : DB_ONE_RESULT;
}

/* ---- scoring ---------------------------------------------------------------- */

/* Postgres integer[] literal of 25 cells */
static void
cells_literal(const int t[25], char out[128])
{
	size_t n = 0;

	out[n++] = '{';
	for (int k = 0; k < 25; k++)
		n += (size_t)snprintf(out + n, 128 - n, k ? ",%d" : "%d", t[k]);
	snprintf(out + n, 128 - n, "}");
}

/* The map, tiled, as the two array parameters of SEGMENT_OF ($2, $3). */
static enum db_qs
map_params(struct db_conn *c, const char *shop_id, json_t **segs, char cells[128],
	   char lapsed[128])
{
	int cell[25], lap[25];
	bool is_default;
	struct err err = { 0 };
	enum db_qs qs = load_map(c, shop_id, segs, &is_default);

	if (qs < 0)
		return qs;
	/* stored maps were tiled when saved */
	if (!tile(*segs, cell, lap, &err)) {
		json_decref(*segs);
		*segs = NULL;
		return DB_HARD_ERROR;
	}
	cells_literal(cell, cells);
	cells_literal(lap, lapsed);
	return DB_ONE_RESULT;
}

enum db_qs
rfm_map_params(struct db_conn *c, const char *shop_id, char cells[128], char lapsed[128],
	       char **names)
{
	json_t *segs = NULL, *list;
	size_t i;
	json_t *e;
	enum db_qs qs = map_params(c, shop_id, &segs, cells, lapsed);

	*names = NULL;
	if (qs < 0)
		return qs;
	list = json_array();
	json_array_foreach(segs, i, e)
		json_array_append(list, json_object_get(e, "name"));
	*names = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	json_decref(segs);
	return *names ? DB_ONE_RESULT : DB_HARD_ERROR;
}

/* numeric text as a JSON number, or null */
static json_t *
number_or_null(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_real(atof(PQgetvalue(r, row, col)));
}

enum db_qs
rfm_summary(struct db_conn *c, const char *shop_id, json_t **out)
{
	char cells[128], lapsed[128];
	const char *p[3] = { shop_id, cells, lapsed };
	json_t *segs = NULL, *list = NULL, *e;
	PGresult *r = NULL, *t = NULL;
	long long total = 0;
	size_t i;
	bool thresholds;
	enum db_qs qs = map_params(c, shop_id, &segs, cells, lapsed);

	if (qs < 0)
		return qs;
	qs = db_exec(c, "rfm_today", 1, p, &t);
	if (qs <= 0) {
		qs = qs == 0 ? DB_HARD_ERROR : qs;
		goto out;
	}
	thresholds = strcmp(PQgetvalue(t, 0, 1), "thresholds") == 0;
	qs = db_exec(c, "rfm_summary", 3, p, &r);
	if (qs < 0)
		goto out;
	if (qs > 0 && PQgetisnull(r, 0, 0))
		total = atoll(PQgetvalue(r, 0, 1));
	list = json_array();
	json_array_foreach(segs, i, e) {
		int row = -1;
		long long n;

		for (int k = 0; k < (int)qs; k++)
			if (!PQgetisnull(r, k, 0) && atoi(PQgetvalue(r, k, 0)) == (int)i + 1)
				row = k;
		n = row < 0 ? 0 : atoll(PQgetvalue(r, row, 1));
		json_array_append_new(list, json_pack("{s:O, s:I, s:o, s:I, s:o, s:o, s:o}",
			"name", json_object_get(e, "name"), "customers", (json_int_t)n,
			"share", total ? json_real((double)((n * 20000 + total) / (2 * total)) / 10000.0)
				       : json_null(),
			"revenue", (json_int_t)(row < 0 ? 0 : atoll(PQgetvalue(r, row, 2))),
			"avg_recency_days", row < 0 ? json_null() : number_or_null(r, row, 3),
			"avg_frequency", row < 0 ? json_null() : number_or_null(r, row, 4),
			"avg_monetary", row < 0 ? json_null() : number_or_null(r, row, 5)));
	}
	*out = json_pack("{s:s, s:s, s:I, s:O}", "as_of", PQgetvalue(t, 0, 0), "method",
			 thresholds ? "thresholds" : "quintiles", "customers", (json_int_t)total,
			 "segments", list);
	if (thresholds || total == 0 || !PQgetisnull(r, 0, 0)) {
		json_object_set_new(*out, "edges", json_null());
	} else {
		json_object_set_new(*out, "edges", json_pack("{s:o, s:o, s:o}",
			"recency", json_loads(PQgetvalue(r, 0, 6), 0, NULL),
			"frequency", json_loads(PQgetvalue(r, 0, 7), 0, NULL),
			"monetary", json_loads(PQgetvalue(r, 0, 8), 0, NULL)));
	}
	qs = DB_ONE_RESULT;
out:
	PQclear(r);
	PQclear(t);
	json_decref(list);
	json_decref(segs);
	return qs;
}

enum db_qs
rfm_customer(struct db_conn *c, const char *shop_id, const char *customer_id, char **json)
{
	char cells[128], lapsed[128];
	const char *p[4] = { shop_id, cells, lapsed, customer_id };
	json_t *segs = NULL, *o;
	PGresult *r = NULL;
	enum db_qs qs = map_params(c, shop_id, &segs, cells, lapsed);

	*json = NULL;
	if (qs < 0)
		return qs;
	qs = db_exec(c, "rfm_customer", 4, p, &r);
	if (qs < 0)
		goto out;
	if (qs == 0) {
		*json = strdup("null");
	} else {
		o = json_pack("{s:i, s:i, s:i, s:O}", "r", atoi(PQgetvalue(r, 0, 0)), "f",
			      atoi(PQgetvalue(r, 0, 1)), "m", atoi(PQgetvalue(r, 0, 2)), "segment",
			      json_object_get(json_array_get(segs, (size_t)atoi(PQgetvalue(r, 0, 3)) - 1),
					      "name"));
		*json = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
	}
	qs = *json ? DB_ONE_RESULT : DB_HARD_ERROR;
out:
	PQclear(r);
	json_decref(segs);
	return qs;
}

enum db_qs
rfm_attach(struct db_conn *c, const char *shop_id, const char *customer_id, char **customer)
{
	char *rfm = NULL, *joined;
	size_t n = strlen(*customer);
	enum db_qs qs;

	/* the Customer object is a JSON object: its text ends with '}' */
	if (n < 2 || (*customer)[n - 1] != '}')
		return DB_HARD_ERROR;
	qs = rfm_customer(c, shop_id, customer_id, &rfm);
	if (qs < 0)
		return qs;
	if (asprintf(&joined, "%.*s,\"rfm\":%s}", (int)(n - 1), *customer, rfm) < 0) {
		free(rfm);
		return DB_HARD_ERROR;
	}
	free(rfm);
	free(*customer);
	*customer = joined;
	return DB_ONE_RESULT;
}
