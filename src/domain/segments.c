/*
 * segments.c — built-in lifecycle segments; see include/rebuy/segments.h.
 *
 * Each segment is one SQL common table expression m(customer_seq, reason)
 * over the customer facts, under p(today, tz, cfg): the shop's date, zone
 * and segment parameters.  Its size and its pages are two statements that
 * share that text, so the list and the count cannot disagree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/fmt.h"
#include "rebuy/log.h"
#include "rebuy/rfm.h"
#include "rebuy/segfilter.h"
#include "rebuy/segments.h"

/*
 * p(today, tz, cfg, rfm, lapse_days): the shop's date and zone, its segment
 * and RFM settings, from the parameters today, tz, cfg, rfm (segments_params
 * reads them first).  As parameters, not a lookup inside the statement, so
 * that the planner sees the dates a segment compares with: run unprepared
 * (custom plans), a page of a small segment takes an index range instead
 * of a walk over the whole shop (0.7 ms instead of 190 ms at 100k customers).
 */
#define P(today, tz, cfg, rfm) \
	"WITH p AS NOT MATERIALIZED (SELECT " today "::date AS today, " tz "::text AS tz," \
	"   " cfg "::jsonb AS cfg, " rfm "::jsonb AS rfm," \
	"   (" cfg "::jsonb ->> 'lapse_days')::integer AS lapse_days),"
#define P_SIZE P("$2", "$3", "$4", "$5")
#define P_PAGE P("$5", "$6", "$7", "$8")
#define P_EXPORT P("$4", "$5", "$6", "$7")

/* local date of a timestamp column */
#define D(col) "(" col " AT TIME ZONE p.tz)::date"
#define CFG(name) "(p.cfg ->> '" name "')::integer"
/* the instant a local date starts */
#define START(day) "((" day ")::timestamp AT TIME ZONE p.tz)"

/* one purchase, the first within the window (today included) */
#define SECOND_WINDOW \
	" m AS (SELECT f.customer_seq, jsonb_build_object('days_left'," \
	"     " CFG("second_purchase_window_days") " - (p.today - " D("f.first_order_at") ")) AS reason" \
	"   FROM p, customer_facts f" \
	"   WHERE f.shop_id = $1 AND f.order_count = 1" \
	"     AND f.first_order_at >= " START("p.today - " CFG("second_purchase_window_days") " + 1") ")"

/*
 * One purchase, and as many days since as the median time to a second
 * purchase of a category bought (the smallest; the shop's median where a
 * category has too few repeat customers), but not yet due_max_factor times it.
 *
 * The medians (percentile_disc(0.5): the least days with at least half the
 * customers at or below) come from interval_cells, kept with the facts
 * (migration 0018), not from sorting every repeat customer; md(category,
 * n, m), category '' the shop's.  Only one-time buyers whose first order
 * lies between the least median and due_max_factor times the greatest can
 * be due: that range is checked on the facts row before the per-customer
 * median is looked up (on the local date, which no index has: a page then
 * walks the customers in page order and stops at its last member, instead
 * of collecting every one-time buyer of the range to sort them).
 */
#define DUE \
	" ic AS MATERIALIZED (SELECT i.category, i.days," \
	"     sum(i.customers) OVER (PARTITION BY i.category ORDER BY i.days) AS upto," \
	"     sum(i.customers) OVER (PARTITION BY i.category) AS n" \
	"   FROM interval_cells_stored($1) i)," \
	" md AS MATERIALIZED (SELECT DISTINCT ON (ic.category) ic.category, ic.n, ic.days AS m" \
	"   FROM ic WHERE 2 * ic.upto >= ic.n ORDER BY ic.category, ic.days)," \
	" mc AS (SELECT md.category, md.n, md.m FROM md WHERE md.category <> '')," \
	" ma AS (SELECT (SELECT md.m FROM md WHERE md.category = '') AS m)," \
	" mb AS MATERIALIZED (SELECT" \
	"   least((SELECT min(mc.m) FROM mc WHERE mc.n >= " CFG("due_min_repeat_customers") ")," \
	"     (SELECT ma.m FROM ma)) AS lo," \
	"   greatest((SELECT max(mc.m) FROM mc WHERE mc.n >= " CFG("due_min_repeat_customers") ")," \
	"     (SELECT ma.m FROM ma)) AS hi FROM p)," \
	" m AS (SELECT f.customer_seq, jsonb_build_object('median_days', b.m, 'category', b.category)" \
	"     AS reason" \
	"   FROM p, ma, customer_facts f," \
	"   LATERAL (SELECT y.m, y.category FROM (" \
	"       SELECT CASE WHEN mc.n >= " CFG("due_min_repeat_customers") " THEN mc.m ELSE ma.m END AS m," \
	"         CASE WHEN mc.n >= " CFG("due_min_repeat_customers") " THEN cat END AS category" \
	"       FROM unnest(f.first_order_categories) AS cat LEFT JOIN mc ON mc.category = cat" \
	"       UNION ALL SELECT ma.m, NULL WHERE cardinality(f.first_order_categories) = 0) y" \
	"     WHERE y.m IS NOT NULL ORDER BY y.m, y.category COLLATE \"C\" NULLS LAST LIMIT 1) b" \
	"   WHERE f.shop_id = $1 AND f.order_count = 1" \
	"     AND p.today - " D("f.first_order_at") " >= (SELECT mb.lo FROM mb)" \
	"     AND p.today - " D("f.first_order_at") " < " CFG("due_max_factor") " * (SELECT mb.hi FROM mb)" \
	"     AND p.today - " D("f.first_order_at") " >= b.m" \
	"     AND p.today - " D("f.first_order_at") " < " CFG("due_max_factor") " * b.m)"

/* repeat customers whose silence exceeds lapsing_factor × their own average interval */
#define LAPSING \
	" m AS (SELECT x.customer_seq, jsonb_build_object('average_interval_days'," \
	"     round((x.dl - x.df)::numeric / (x.cnt - 1), 1)) AS reason" \
	"   FROM (SELECT f.customer_seq, f.order_count AS cnt, " D("f.first_order_at") " AS df," \
	"       " D("f.last_order_at") " AS dl, p.today, " CFG("lapsing_factor") " AS k" \
	"     FROM p, customer_facts f WHERE f.shop_id = $1 AND f.order_count >= 2) x" \
	"   WHERE (x.today - x.dl)::bigint * (x.cnt - 1) > x.k::bigint * (x.dl - x.df))"

/* no purchase for more than lapse_days */
#define LAPSED \
	" m AS (SELECT f.customer_seq, jsonb_build_object('days_since_last_order'," \
	"     p.today - " D("f.last_order_at") ") AS reason" \
	"   FROM p, customer_facts f" \
	"   WHERE f.shop_id = $1 AND f.last_order_at < " START("p.today - " CFG("lapse_days")) ")"

/*
 * The top vip_percent by net spend over the last 365 days, ties at the
 * cutoff in: the cutoff is the K-th spend from the top, K = vip_percent %
 * of the customers who spent, rounded up.  Read from vip_spend (migration
 * 0018) when it is kept for this day and zone: K from the count kept with
 * it (kn), then a walk down its index; live from a year of purchase occasions (sp, cut) when not (the
 * janitor has not caught up with a new day yet).  One branch runs.
 */
/* the shop's erased customers, for NOT IN: a hashed set, however many */
#define ERASED "SELECT c.seq FROM customers c WHERE c.shop_id = $1 AND c.erased_at IS NOT NULL"
#define VIP \
	" vf AS MATERIALIZED (SELECT EXISTS (SELECT FROM vip_state v WHERE v.shop_id = $1" \
	"   AND v.as_of = p.today AND v.tz = p.tz) AS fresh FROM p)," \
	" sp AS (SELECT o.customer_seq, sum(o.net) AS spend" \
	"   FROM p, purchase_occasions o" \
	"   WHERE o.shop_id = $1 AND o.customer_seq NOT IN (" ERASED ")" \
	"     AND o.started_at >= " START("p.today - 364") \
	"     AND o.started_at < " START("p.today + 1") \
	"   GROUP BY o.customer_seq HAVING sum(o.net) > 0)," \
	" cut AS (SELECT min(t.spend) AS cutoff FROM (SELECT sp.spend FROM sp ORDER BY sp.spend DESC" \
	"   LIMIT (SELECT (count(*) * min(" CFG("vip_percent") ") + 99) / 100 FROM sp, p)) t)," \
	" kept AS NOT MATERIALIZED (SELECT v.customer_seq, v.spend FROM vip_spend v" \
	"   WHERE v.shop_id = $1 AND v.spend > 0 AND v.customer_seq NOT IN (" ERASED "))," \
	/* bigint, as count(*) is in cut: K's division must truncate */ \
	" kn AS MATERIALIZED (SELECT (st.spenders + (SELECT coalesce(sum(d.customers), 0)" \
	"     FROM vip_count_deltas d WHERE d.shop_id = $1)" \
	"   - (SELECT count(*) FROM vip_spend v WHERE v.customer_seq IN (" ERASED ") AND v.spend > 0))" \
	"   ::bigint AS n FROM vip_state st WHERE st.shop_id = $1)," \
	" kcut AS MATERIALIZED (SELECT kept.spend AS cutoff FROM kept ORDER BY kept.spend DESC" \
	"   OFFSET greatest((SELECT (kn.n * " CFG("vip_percent") " + 99) / 100 - 1 FROM kn, p), 0)" \
	"   LIMIT 1)," \
	" m AS (SELECT sp.customer_seq, jsonb_build_object('spend_365d', sp.spend, 'cutoff', cut.cutoff)" \
	"     AS reason FROM sp, cut WHERE NOT (SELECT vf.fresh FROM vf) AND sp.spend >= cut.cutoff" \
	"   UNION ALL SELECT kept.customer_seq, jsonb_build_object('spend_365d', kept.spend," \
	"     'cutoff', kcut.cutoff) FROM kept, kcut" \
	"   WHERE (SELECT vf.fresh FROM vf) AND kept.spend >= kcut.cutoff)"

#define SIZE " SELECT count(*) FROM m JOIN customers c ON c.seq = m.customer_seq" \
	" WHERE c.erased_at IS NULL"

/* a member as the list shows it; reason: SQL for its reason */
#define ITEM(reason) \
	" json_build_object('id', c.id, 'name', c.name, 'email', c.email," \
	"   'phone', c.phone, 'tags', c.tags, 'consent', json_build_object('email', c.consent_email," \
	"     'sms', c.consent_sms, 'wechat', c.consent_wechat)," \
	"   'facts', json_build_object('order_count', f.order_count," \
	"     'first_order_at', rfc3339(f.first_order_at), 'last_order_at', rfc3339(f.last_order_at)," \
	"     'days_since_first_order', p.today - " D("f.first_order_at") "," \
	"     'days_since_last_order', p.today - " D("f.last_order_at") "," \
	"     'total_spent', f.total_spent)," \
	"   'reason', " reason ")"

/* after: members after this customer seq; consent: channel or NULL */
#define PAGE_WHERE(after, consent) \
	" c.shop_id = $1 AND c.erased_at IS NULL AND c.seq > " after \
	"   AND (" consent "::text IS NULL OR (" consent " = 'email' AND c.consent_email)" \
	"        OR (" consent " = 'sms' AND c.consent_sms)" \
	"        OR (" consent " = 'wechat' AND c.consent_wechat))"

/* $2 after, $3 consent, $4 limit */
#define PAGE \
	" SELECT c.seq," ITEM("m.reason") \
	" FROM m JOIN customers c ON c.seq = m.customer_seq" \
	"   JOIN customer_facts f ON f.customer_seq = c.seq, p" \
	" WHERE" PAGE_WHERE("$2", "$3") " ORDER BY c.seq LIMIT $4"

/*
 * A member as an export row: the columns csv_row and ndjson_row format,
 * read in binary (tags joined by ';').  The days since the first and last
 * order are computed here only when sql_days (a parameter) is true:
 * otherwise the export finds the local days from the zone's midnights
 * (segments_export_days), as a local date per instant costs PostgreSQL
 * more than the rest of the row (1.5 s of 3.4 s for a million members).
 */
#define EXPORT_COLUMNS(sql_days) \
	" c.id, c.name, c.email, c.phone, array_to_string(c.tags, ';')," \
	" c.consent_email, c.consent_sms, c.consent_wechat, f.order_count," \
	" f.first_order_at, f.last_order_at," \
	" CASE WHEN " sql_days "::boolean THEN p.today - " D("f.first_order_at") " END," \
	" CASE WHEN " sql_days "::boolean THEN p.today - " D("f.last_order_at") " END, f.total_spent"

/* $2 after, $3 consent, $8 sql_days: the whole list in the order of its pages */
#define EXPORT \
	" SELECT" EXPORT_COLUMNS("$8") ", m.reason::text" \
	" FROM m JOIN customers c ON c.seq = m.customer_seq" \
	"   JOIN customer_facts f ON f.customer_seq = c.seq, p" \
	" WHERE" PAGE_WHERE("$2", "$3") " ORDER BY c.seq"

/*
 * Custom segments: p, then either the RFM scores (when the filter reads
 * them) or a stand-in that types the same parameters, then one of these
 * with the compiled filter.  Parameters: $1 shop, $2 $3 the tiled RFM map,
 * $4 its names; a page's $5 after, $6 consent, $7 limit (an export's $5,
 * $6); then the four of p; the filter's after them.
 */
static const char custom_no_rfm[] = " x AS (SELECT $2::integer[], $3::integer[], $4::jsonb)";
static const char custom_rfm[] =
	", r AS (SELECT g.customer_seq, g.r, g.f, g.m, $4::jsonb ->> (g.seg - 1) AS segment FROM g)";
static const char custom_rfm_join[] = " JOIN r ON r.customer_seq = f.customer_seq";

static const struct custom_query {
	const char *label, *p, *select, *where, *tail;
	int nfixed;
} custom_size = {
	"segments_custom_size", P("$5", "$6", "$7", "$8"), "count(*)",
	" c.shop_id = $1 AND c.erased_at IS NULL AND ", "", 8,
}, custom_page = {
	"segments_custom_page", P("$8", "$9", "$10", "$11"), "c.seq," ITEM("NULL::json"),
	PAGE_WHERE("$5", "$6") " AND ", " ORDER BY c.seq LIMIT $7", 11,
}, custom_export = {
	"segments_custom_export", P("$7", "$8", "$9", "$10"), EXPORT_COLUMNS("$11") ", NULL::text",
	PAGE_WHERE("$5", "$6") " AND ", " ORDER BY c.seq", 11,
};

#define CUSTOM_COLUMNS \
	"code, name, description, filter::text, rfc3339(created_at), rfc3339(updated_at)"

const struct db_stmt segments_stmts[] = {
	/* the parameters of p */
	{ "segments_params",
	  "SELECT (now() AT TIME ZONE s.timezone)::date::text, s.timezone,"
	  " shop_segment_settings(s)::text,"
	  " coalesce(s.settings -> 'rfm', '{\"method\": \"quintiles\"}')::text"
	  " FROM shops s WHERE s.id = $1" },
	{ "segments_size_second-purchase-window", P_SIZE SECOND_WINDOW SIZE },
	{ "segments_page_second-purchase-window", P_PAGE SECOND_WINDOW PAGE },
	{ "segments_export_second-purchase-window", P_EXPORT SECOND_WINDOW EXPORT },
	{ "segments_size_due-for-repurchase", P_SIZE DUE SIZE },
	{ "segments_page_due-for-repurchase", P_PAGE DUE PAGE },
	{ "segments_export_due-for-repurchase", P_EXPORT DUE EXPORT },
	{ "segments_size_lapsing", P_SIZE LAPSING SIZE },
	{ "segments_page_lapsing", P_PAGE LAPSING PAGE },
	{ "segments_export_lapsing", P_EXPORT LAPSING EXPORT },
	{ "segments_size_lapsed", P_SIZE LAPSED SIZE },
	{ "segments_page_lapsed", P_PAGE LAPSED PAGE },
	{ "segments_export_lapsed", P_EXPORT LAPSED EXPORT },
	{ "segments_size_vip", P_SIZE VIP SIZE },
	{ "segments_page_vip", P_PAGE VIP PAGE },
	{ "segments_export_vip", P_EXPORT VIP EXPORT },
	/*
	 * For an export ($1 shop, $2 zone, $3 today): today and the first of
	 * the local days its facts' instants fall on, as days since
	 * 2000-01-01, and the instant each of those days starts (from the day
	 * before the first to the day after the last, microseconds since
	 * 2000-01-01 UTC), so that an instant's day is found by a binary
	 * search: the last day starting at or before it.  That is exact when
	 * every local midnight exists once and the clock runs on through it:
	 * no offset change in [start - h, start + h), h the size of the
	 * changes of the days on either side (a change at 01:00 that moves
	 * the clock by an hour leaves midnight alone), and no day longer or
	 * shorter by 3 hours or more (one change a day at most).
	 * Otherwise (a zone that moves its clocks at midnight, as Havana or
	 * Santiago), and for a span over 15,000 days (41 years: the starts
	 * stay under 120 kB), the days are computed in SQL.
	 */
	{ "segments_export_days",
	  "WITH r AS (SELECT (min(f.first_order_at) AT TIME ZONE $2)::date AS lo,"
	  "   (max(f.last_order_at) AT TIME ZONE $2)::date AS hi"
	  "   FROM customer_facts f WHERE f.shop_id = $1),"
	  " d AS (SELECT r.lo + k AS day, ((r.lo + k)::timestamp AT TIME ZONE $2) AS start"
	  "   FROM r, generate_series(-1, CASE WHEN r.hi - r.lo <= 15000 THEN r.hi - r.lo + 1 END) k),"
	  " w AS (SELECT d.day, d.start, lead(d.start) OVER o AS next,"
	  "   make_interval(secs => greatest("
	  "     abs(extract(epoch FROM d.start - lag(d.start) OVER o) - 86400),"
	  "     abs(extract(epoch FROM lead(d.start) OVER o - d.start) - 86400))::float8) AS h"
	  "   FROM d WINDOW o AS (ORDER BY d.day)),"
	  " z AS (SELECT w.day, w.start, w.next,"
	  "   ((w.start - w.h) AT TIME ZONE $2) - ((w.start - w.h) AT TIME ZONE 'UTC') AS before,"
	  "   ((w.start + w.h - interval '1 microsecond') AT TIME ZONE $2)"
	  "     - ((w.start + w.h - interval '1 microsecond') AT TIME ZONE 'UTC') AS after FROM w)"
	  " SELECT $3::date - date '2000-01-01', (SELECT r.lo FROM r) - 1 - date '2000-01-01',"
	  "   coalesce(bool_and((z.start AT TIME ZONE $2)::date = z.day"
	  "     AND ((z.start - interval '1 microsecond') AT TIME ZONE $2)::date = z.day - 1"
	  "     AND z.before = z.after"
	  "     AND (z.next IS NULL OR z.next - z.start BETWEEN interval '21 hours'"
	  "       AND interval '27 hours')), (SELECT r.lo IS NULL FROM r)),"
	  "   array_agg((extract(epoch FROM z.start - timestamptz '2000-01-01 00:00+00')"
	  "     * 1000000)::bigint ORDER BY z.day)"
	  " FROM z" },
	{ "segments_vip_stale", "SELECT vip_stale_shops()" },
	{ "segments_vip_rebuild", "SELECT vip_spend_rebuild($1)" },
	{ "segments_custom_list",
	  "SELECT " CUSTOM_COLUMNS " FROM custom_segments WHERE shop_id = $1 ORDER BY code COLLATE \"C\"" },
	{ "segments_custom_get",
	  "SELECT " CUSTOM_COLUMNS " FROM custom_segments WHERE shop_id = $1 AND code = $2" },
	/* xmax is 0 on a freshly inserted row version: tells created from replaced */
	{ "segments_custom_put",
	  "INSERT INTO custom_segments AS s (shop_id, code, name, description, filter)"
	  " VALUES ($1, $2, $3, $4, $5::jsonb)"
	  " ON CONFLICT (shop_id, code) DO UPDATE SET name = excluded.name,"
	  "   description = excluded.description, filter = excluded.filter, updated_at = now()"
	  " RETURNING (s.xmax = 0)" },
	{ "segments_custom_delete", "DELETE FROM custom_segments WHERE shop_id = $1 AND code = $2" },
	{ NULL, NULL },
};

static const struct segment_def {
	const char *code, *name, *description;
	const char *params[2]; /* names in settings.segments */
} defs[] = {
	{ "second-purchase-window", "Second purchase window",
	  "Customers with one qualifying purchase, made within the last "
	  "second_purchase_window_days days (today included): the nudge towards a second.",
	  { "second_purchase_window_days" } },
	{ "due-for-repurchase", "Due for repurchase",
	  "One-time buyers whose days since their first purchase reached the median time to a "
	  "second purchase of a category they bought (the shop-wide median where the category "
	  "has fewer than due_min_repeat_customers repeat customers), but not yet due_max_factor "
	  "times it.",
	  { "due_max_factor", "due_min_repeat_customers" } },
	{ "lapsing", "Lapsing",
	  "Repeat customers whose days since their last purchase exceed lapsing_factor times "
	  "their own average interval between purchases.",
	  { "lapsing_factor" } },
	{ "lapsed", "Lapsed",
	  "Customers with no qualifying purchase for more than lapse_days days: the recall list.",
	  { "lapse_days" } },
	{ "vip", "VIP",
	  "The top vip_percent percent of customers by net spend over the last 365 days (ties at "
	  "the cutoff included).",
	  { "vip_percent" } },
};

#define NDEFS (sizeof defs / sizeof defs[0])

static const struct segment_def *
find(const char *code)
{
	for (size_t i = 0; i < NDEFS; i++)
		if (strcmp(defs[i].code, code) == 0)
			return &defs[i];
	return NULL;
}

bool
segments_known(const char *code)
{
	return find(code) != NULL;
}

/* members of a list item that fields= picks, bit k of enum segment_field */
static const char *const field_names[] = { "name", "email", "phone", "tags", "consent", "facts",
					   "reason" };
#define NFIELDS (sizeof field_names / sizeof field_names[0])

bool
segments_parse_fields(const char *s, unsigned *mask)
{
	const char *p = s;

	*mask = 0;
	for (;;) {
		size_t len = strcspn(p, ","), k;

		for (k = 0; k < NFIELDS; k++)
			if (strlen(field_names[k]) == len && strncmp(field_names[k], p, len) == 0)
				break;
		if (k == NFIELDS || (*mask & (1u << k)))
			return false;
		*mask |= 1u << k;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

/* The parameters of p, from segments_params. */
struct seg_params {
	PGresult *r;
	const char *v[4]; /* today, tz, cfg, rfm: texts in r */
	json_t *cfg;
};

static void
params_free(struct seg_params *sp)
{
	PQclear(sp->r);
	json_decref(sp->cfg);
	memset(sp, 0, sizeof *sp);
}

/* Read them; DB_NO_RESULTS if the shop is gone.  Free with params_free either way. */
static enum db_qs
params(struct db_conn *c, const char *shop_id, struct seg_params *sp)
{
	const char *p[1] = { shop_id };
	enum db_qs qs = db_exec(c, "segments_params", 1, p, &sp->r);

	sp->cfg = NULL;
	if (qs > 0) {
		for (int i = 0; i < 4; i++)
			sp->v[i] = PQgetvalue(sp->r, 0, i);
		sp->cfg = json_loads(sp->v[2], 0, NULL);
		if (!sp->cfg)
			qs = DB_HARD_ERROR;
	}
	return qs;
}

/*
 * Run a named statement of this module unprepared: planned for these
 * parameter values (see P), never with a generic plan.
 */
static enum db_qs
exec_planned(struct db_conn *c, const char *stmt, int n, const char *const *p, PGresult **r)
{
	return db_exec_sql(c, stmt, db_stmt_sql(stmt), n, p, r);
}

/* The segment object: definition, current parameters, size, date. */
static enum db_qs
describe(struct db_conn *c, const char *shop_id, const struct segment_def *d,
	 const struct seg_params *sp, json_t **out)
{
	char stmt[64];
	const char *p[5] = { shop_id, sp->v[0], sp->v[1], sp->v[2], sp->v[3] };
	PGresult *r;
	json_t *params = json_object();
	enum db_qs qs;

	snprintf(stmt, sizeof stmt, "segments_size_%s", d->code);
	qs = exec_planned(c, stmt, 5, p, &r);
	if (qs < 0) {
		json_decref(params);
		return qs;
	}
	for (size_t i = 0; i < 2 && d->params[i]; i++)
		json_object_set(params, d->params[i], json_object_get(sp->cfg, d->params[i]));
	*out = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:s}", "code", d->code, "kind",
			 "built-in", "name", d->name, "description", d->description, "parameters",
			 params, "size", (json_int_t)atoll(PQgetvalue(r, 0, 0)), "as_of", sp->v[0]);
	PQclear(r);
	return DB_ONE_RESULT;
}

/* ---- custom segments ---------------------------------------------------- */

/* A custom segment's query, composed: its SQL and parameters. */
struct custom_sql {
	char *sql;
	const char *params[11 + SEGFILTER_MAX_CONDITIONS * 2];
	int nparams;
	struct segfilter sf;
	char cells[128], lapsed[128];
	char *names;
};

static void
custom_sql_free(struct custom_sql *q)
{
	free(q->sql);
	free(q->names);
	segfilter_free(&q->sf);
}

/*
 * Compose query q for the stored filter; own: q's parameters after the
 * first four (shop and RFM map).  The map is loaded only when the filter
 * reads RFM scores, and only then are they computed.
 */
static enum db_qs
custom_compose(struct db_conn *c, const char *shop_id, const struct custom_query *q,
	       const json_t *filter, const char *const *own, struct custom_sql *out)
{
	struct err err = { 0 };
	bool rfm;
	enum db_qs qs;

	memset(out, 0, sizeof *out);
	/* stored filters were checked when saved: a failure here is ours */
	if (!segfilter_compile(filter, "/filter", q->nfixed + 1, &out->sf, &err))
		return DB_HARD_ERROR;
	rfm = out->sf.rfm;
	if (rfm && (qs = rfm_map_params(c, shop_id, out->cells, out->lapsed, &out->names)) < 0)
		return qs;
	if (asprintf(&out->sql, "%s%s%s SELECT %s FROM customer_facts f"
		     " JOIN customers c ON c.seq = f.customer_seq%s, p"
		     " WHERE f.shop_id = $1 AND%s(%s)%s",
		     q->p, rfm ? rfm_scored_ctes : custom_no_rfm, rfm ? custom_rfm : "", q->select,
		     rfm ? custom_rfm_join : "", q->where, out->sf.sql, q->tail) < 0) {
		out->sql = NULL;
		return DB_HARD_ERROR;
	}
	out->params[0] = shop_id;
	out->params[1] = rfm ? out->cells : NULL;
	out->params[2] = rfm ? out->lapsed : NULL;
	out->params[3] = out->names;
	out->nparams = 4;
	for (int i = 0; i < q->nfixed - 4; i++)
		out->params[out->nparams++] = own[i];
	for (int i = 0; i < out->sf.nparams; i++)
		out->params[out->nparams++] = out->sf.params[i];
	return DB_ONE_RESULT;
}

/* Run query q for the stored filter; own as in custom_compose. */
static enum db_qs
custom_run(struct db_conn *c, const char *shop_id, const struct custom_query *q,
	   const json_t *filter, const char *const *own, PGresult **r)
{
	struct custom_sql cs;
	enum db_qs qs = custom_compose(c, shop_id, q, filter, own, &cs);

	*r = NULL;
	if (qs > 0)
		qs = db_exec_sql(c, q->label, cs.sql, cs.nparams, cs.params, r);
	custom_sql_free(&cs);
	return qs;
}

/* Row i of a CUSTOM_COLUMNS result as the Segment object, with its size now. */
static enum db_qs
describe_custom(struct db_conn *c, const char *shop_id, PGresult *row, int i,
		const struct seg_params *sp, json_t **out)
{
	json_t *filter = json_loads(PQgetvalue(row, i, 3), 0, NULL);
	PGresult *r;
	enum db_qs qs;

	if (!filter)
		return DB_HARD_ERROR;
	qs = custom_run(c, shop_id, &custom_size, filter, sp->v, &r);
	if (qs < 0) {
		json_decref(filter);
		return qs;
	}
	*out = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s}",
		"code", PQgetvalue(row, i, 0), "kind", "custom", "name", PQgetvalue(row, i, 1),
		"description", PQgetisnull(row, i, 2) ? json_null() : json_string(PQgetvalue(row, i, 2)),
		"filter", filter, "size", (json_int_t)atoll(PQgetvalue(r, 0, 0)), "as_of", sp->v[0],
		"created_at", PQgetvalue(row, i, 4), "updated_at", PQgetvalue(row, i, 5));
	PQclear(r);
	return DB_ONE_RESULT;
}

/* The custom segment code of the shop (CUSTOM_COLUMNS); DB_NO_RESULTS if none. */
static enum db_qs
custom_row(struct db_conn *c, const char *shop_id, const char *code, PGresult **r)
{
	const char *p[2] = { shop_id, code };
	enum db_qs qs = db_exec(c, "segments_custom_get", 2, p, r);

	if (qs == DB_NO_RESULTS) {
		PQclear(*r);
		*r = NULL;
	}
	return qs;
}

/* The stored filter of custom segment code (*filter, decref it); DB_NO_RESULTS if none. */
static enum db_qs
custom_filter(struct db_conn *c, const char *shop_id, const char *code, json_t **filter)
{
	PGresult *row;
	enum db_qs qs = custom_row(c, shop_id, code, &row);

	*filter = NULL;
	if (qs <= 0)
		return qs;
	*filter = json_loads(PQgetvalue(row, 0, 3), 0, NULL);
	PQclear(row);
	return *filter ? qs : DB_HARD_ERROR;
}

enum db_qs
segments_put(struct db_conn *c, const char *shop_id, const char *code,
	     const struct segment_input *in, bool *created, json_t **out, struct err *err)
{
	const char *p[5] = { shop_id, code, in->name, in->description, NULL };
	struct segfilter sf;
	PGresult *r = NULL;
	char *filter = NULL;
	enum db_qs qs;

	if (find(code)) {
		err_set(err, ERR_CONFLICT, NULL, "%s is a built-in segment: it cannot be replaced",
			code);
		return DB_ABORT;
	}
	if (!segfilter_compile(in->filter, "/filter", 1, &sf, err)) {
		segfilter_free(&sf);
		return err->code == ERR_VALIDATION ? DB_ABORT : DB_HARD_ERROR;
	}
	segfilter_free(&sf);
	filter = json_dumps(in->filter, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!filter)
		return DB_HARD_ERROR;
	p[4] = filter;
	qs = db_exec(c, "segments_custom_put", 5, p, &r);
	free(filter);
	if (qs < 0)
		return qs;
	*created = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return segments_get(c, shop_id, code, out);
}

enum db_qs
segments_delete(struct db_conn *c, const char *shop_id, const char *code, struct err *err)
{
	const char *p[2] = { shop_id, code };

	if (find(code)) {
		err_set(err, ERR_CONFLICT, NULL, "%s is a built-in segment: it cannot be deleted",
			code);
		return DB_ABORT;
	}
	return db_exec_none(c, "segments_custom_delete", 2, p);
}

enum db_qs
segments_all(struct db_conn *c, const char *shop_id, json_t **out)
{
	struct seg_params sp;
	json_t *items;
	enum db_qs qs = params(c, shop_id, &sp);

	if (qs <= 0) {
		params_free(&sp);
		return qs;
	}
	items = json_array();
	for (size_t i = 0; i < NDEFS; i++) {
		json_t *seg;

		qs = describe(c, shop_id, &defs[i], &sp, &seg);
		if (qs < 0)
			goto out;
		json_array_append_new(items, seg);
	}
	{
		const char *p[1] = { shop_id };
		PGresult *r;
		int n;

		qs = db_exec(c, "segments_custom_list", 1, p, &r);
		if (qs < 0)
			goto out;
		n = (int)qs;
		for (int i = 0; i < n && qs >= 0; i++) {
			json_t *seg;

			qs = describe_custom(c, shop_id, r, i, &sp, &seg);
			if (qs >= 0)
				json_array_append_new(items, seg);
		}
		PQclear(r);
		if (qs < 0)
			goto out;
	}
	*out = json_pack("{s:O}", "items", items);
	qs = DB_ONE_RESULT;
out:
	json_decref(items);
	params_free(&sp);
	return qs;
}

enum db_qs
segments_get(struct db_conn *c, const char *shop_id, const char *code, json_t **out)
{
	const struct segment_def *d = find(code);
	struct seg_params sp;
	PGresult *r = NULL;
	enum db_qs qs = params(c, shop_id, &sp);

	if (qs > 0 && d)
		qs = describe(c, shop_id, d, &sp, out);
	else if (qs > 0 && (qs = custom_row(c, shop_id, code, &r)) > 0)
		qs = describe_custom(c, shop_id, r, 0, &sp, out);
	PQclear(r);
	params_free(&sp);
	return qs;
}

/* Drop the members of one list item that were not asked for. */
static char *
pick_fields(const char *item, unsigned fields)
{
	json_t *o = json_loads(item, 0, NULL);
	char *s;

	if (!o)
		return NULL;
	for (size_t k = 0; k < NFIELDS; k++)
		if (!(fields & (1u << k)))
			json_object_del(o, field_names[k]);
	/* reals as PostgreSQL wrote them (15.8, not 15.800000000000001) */
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	json_decref(o);
	return s;
}

enum db_qs
segments_members(struct db_conn *c, const char *shop_id, const char *code,
		 const struct segment_page *page, char **items, long long *next)
{
	char stmt[64], after[24], limit[16];
	struct seg_params sp;
	const char *p[8] = { shop_id, after, page->consent, limit };
	PGresult *r;
	size_t len = 2, used = 0;
	char *out = NULL;
	int rows;
	enum db_qs qs;

	*items = NULL;
	*next = 0;
	snprintf(stmt, sizeof stmt, "segments_page_%s", code);
	snprintf(after, sizeof after, "%lld", page->after);
	/* one extra row tells whether another page follows */
	snprintf(limit, sizeof limit, "%d", page->limit + 1);
	qs = params(c, shop_id, &sp);
	if (qs <= 0) {
		params_free(&sp);
		return qs;
	}
	memcpy(p + 4, sp.v, sizeof sp.v);
	if (find(code)) {
		qs = exec_planned(c, stmt, 8, p, &r);
	} else {
		json_t *filter;

		qs = custom_filter(c, shop_id, code, &filter);
		if (qs <= 0) {
			params_free(&sp);
			return qs;
		}
		qs = custom_run(c, shop_id, &custom_page, filter, p + 1, &r);
		json_decref(filter);
	}
	params_free(&sp);
	if (qs < 0)
		return qs;
	rows = (int)qs > page->limit ? page->limit : (int)qs;
	if (page->fields == SEG_ALL) {
		out = db_json_array(r, 1, rows);
	} else {
		/* "[" item ("," item)* "]" */
		out = malloc(len + 1);
		if (out)
			out[used++] = '[';
		for (int i = 0; out && i < rows; i++) {
			char *it = pick_fields(PQgetvalue(r, i, 1), page->fields), *grown;
			size_t n = it ? strlen(it) : 0;

			grown = it ? realloc(out, used + n + 3) : NULL;
			if (!grown) {
				free(it);
				free(out);
				out = NULL;
				break;
			}
			out = grown;
			if (i > 0)
				out[used++] = ',';
			memcpy(out + used, it, n);
			used += n;
			free(it);
		}
		if (out) {
			out[used++] = ']';
			out[used] = '\0';
		}
	}
	if (out && (int)qs > page->limit)
		*next = atoll(PQgetvalue(r, rows - 1, 0));
	PQclear(r);
	if (!out)
		return DB_HARD_ERROR;
	*items = out;
	return DB_ONE_RESULT;
}

/* ---- exports ---------------------------------------------------------------- */

/*
 * An export formats batches of binary rows (db_stream) into out, 64 KiB or
 * so at a time, and hands that out in the pieces the server asks for.  A
 * row's room is reserved once, from its columns' lengths, and written
 * without further checks: at a million rows a second, a bounds check per
 * character written is what the time goes on.
 */
#define EXPORT_FILL 65536

struct segment_export {
	struct db_stream *rows;
	PGresult *batch; /* the rows being formatted, from row on */
	int row;
	enum segment_format format;
	unsigned fields;
	bool header, ended, failed, checked;
	char *out; /* formatted, from sent to len not yet handed out */
	size_t len, cap, sent;
	/* the days since (segments_export_days), unless sql_days */
	bool sql_days;
	int64_t today, first_day; /* days since 2000-01-01 */
	int64_t *starts;          /* day first_day + k starts at starts[k] */
	size_t nstarts;
};

/* export row columns (EXPORT_COLUMNS, then the reason) */
enum { X_ID, X_NAME, X_EMAIL, X_PHONE, X_TAGS, X_CONSENT, X_FACTS = X_CONSENT + 3,
       X_REASON = X_FACTS + 6, X_COLUMNS };

/* their types (pg_type OIDs), checked on the first batch: binary is read as these */
enum { T_BOOL = 16, T_INT8 = 20, T_INT4 = 23, T_TEXT = 25, T_TIMESTAMPTZ = 1184 };
static const unsigned column_types[X_COLUMNS] = {
	T_TEXT, T_TEXT, T_TEXT, T_TEXT, T_TEXT, T_BOOL, T_BOOL, T_BOOL,
	T_INT4, T_TIMESTAMPTZ, T_TIMESTAMPTZ, T_INT4, T_INT4, T_INT8, T_TEXT,
};

static const char *const fact_names[] = { "order_count", "first_order_at", "last_order_at",
					  "days_since_first_order", "days_since_last_order",
					  "total_spent" };

/* room for n more bytes in out */
static bool
reserve(struct segment_export *x, size_t n)
{
	size_t cap = x->cap ? x->cap : EXPORT_FILL * 2;
	char *p;

	if (x->len + n <= x->cap)
		return true;
	while (cap < x->len + n)
		cap *= 2;
	p = realloc(x->out, cap);
	if (!p)
		return false;
	x->out = p;
	x->cap = cap;
	return true;
}

static char *
w_mem(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

#define W_LIT(o, lit) w_mem(o, lit, sizeof lit - 1)

static char *
w_str(char *o, const char *s)
{
	return w_mem(o, s, strlen(s));
}

/* s[0..n) as a JSON string (PostgreSQL text is valid UTF-8: only escapes are needed); ≤ 6n + 2 */
static char *
w_json_string(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const char *end = s + n;

	*o++ = '"';
	while (s < end) {
		const char *run = s;

		while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
			s++;
		o = w_mem(o, run, (size_t)(s - run));
		if (s == end)
			break;
		*o++ = '\\';
		if (*s == '"' || *s == '\\')
			*o++ = *s;
		else
			o = w_mem(o, (char[]){ 'u', '0', '0', hex[(unsigned char)*s >> 4], hex[*s & 15] }, 5);
		s++;
	}
	*o++ = '"';
	return o;
}

/* s[0..n) as a CSV field (RFC 4180): quoted when it holds a comma, quote or line break; ≤ 2n + 2 */
static char *
w_csv_field(char *o, const char *s, size_t n)
{
	if (n == strcspn(s, ",\"\r\n"))
		return w_mem(o, s, n);
	*o++ = '"';
	for (const char *end = s + n; s < end; s++) {
		if (*s == '"')
			*o++ = '"';
		*o++ = *s;
	}
	*o++ = '"';
	return o;
}

/* the local day of the instant in column col, from the zone's midnights */
static bool
local_day(const struct segment_export *x, PGresult *r, int row, int col, int64_t *day)
{
	int64_t us = db_bin_int8(r, row, col);
	size_t lo = 0, hi = x->nstarts;

	/* outside the days read on the same snapshot: cannot be, so not guessed */
	if (x->nstarts < 2 || us < x->starts[0] || us >= x->starts[x->nstarts - 1])
		return false;
	/* the last day starting at or before us: starts[lo] <= us < starts[hi] */
	hi--;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->starts[mid] <= us)
			lo = mid;
		else
			hi = mid;
	}
	*day = x->first_day + (int64_t)lo;
	return true;
}

/*
 * A fact: the two instants (as rfc3339() writes them) quoted in JSON; NULL
 * empty or null.  NULL when a day cannot be found.
 */
static char *
w_fact(const struct segment_export *x, char *o, PGresult *r, int row, int k, bool json)
{
	char t[DB_INSTANT_MAX];

	if (!x->sql_days && (k == 3 || k == 4)) {
		/* days since the first (k = 3) or last order, from their instants */
		int64_t day;

		if (PQgetisnull(r, row, X_FACTS + k - 2))
			return json ? W_LIT(o, "null") : o;
		return local_day(x, r, row, X_FACTS + k - 2, &day) ? fmt_int(o, x->today - day) : NULL;
	}
	if (PQgetisnull(r, row, X_FACTS + k))
		return json ? W_LIT(o, "null") : o;
	switch (column_types[X_FACTS + k]) {
	case T_TIMESTAMPTZ:
		if (json)
			*o++ = '"';
		o = w_mem(o, t, db_bin_instant(r, row, X_FACTS + k, t));
		if (json)
			*o++ = '"';
		return o;
	case T_INT4:
		return fmt_int(o, db_bin_int4(r, row, X_FACTS + k));
	default:
		return fmt_int(o, db_bin_int8(r, row, X_FACTS + k));
	}
}

static bool
csv_header(struct segment_export *x)
{
	static const char *const names[] = { ",name", ",email", ",phone", ",tags" };
	static const unsigned picks[] = { SEG_NAME, SEG_EMAIL, SEG_PHONE, SEG_TAGS };
	char *o;

	if (!reserve(x, 512))
		return false;
	o = W_LIT(x->out + x->len, "id");
	for (int k = 0; k < 4; k++)
		if (x->fields & picks[k])
			o = w_str(o, names[k]);
	if (x->fields & SEG_CONSENT)
		o = W_LIT(o, ",consent_email,consent_sms,consent_wechat");
	for (size_t k = 0; (x->fields & SEG_FACTS) && k < 6; k++)
		o = w_str(W_LIT(o, ","), fact_names[k]);
	if (x->fields & SEG_REASON)
		o = W_LIT(o, ",reason");
	o = W_LIT(o, "\r\n");
	x->len = (size_t)(o - x->out);
	return true;
}

/* the room a row may take: every text escaped at worst, the rest bounded */
static size_t
row_room(PGresult *r, int row)
{
	size_t n = 512;

	for (int col = X_ID; col <= X_TAGS; col++)
		n += 6 * (size_t)PQgetlength(r, row, col);
	return n + 6 * (size_t)PQgetlength(r, row, X_REASON);
}

static bool
csv_row(struct segment_export *x, PGresult *r, int row)
{
	static const unsigned picks[] = { SEG_NAME, SEG_EMAIL, SEG_PHONE, SEG_TAGS };
	char *o;

	if (!reserve(x, row_room(r, row)))
		return false;
	o = w_csv_field(x->out + x->len, PQgetvalue(r, row, X_ID), (size_t)PQgetlength(r, row, X_ID));
	for (int k = 0; k < 4; k++)
		if (x->fields & picks[k])
			o = w_csv_field(W_LIT(o, ","), PQgetvalue(r, row, X_NAME + k),
					(size_t)PQgetlength(r, row, X_NAME + k));
	for (int k = 0; (x->fields & SEG_CONSENT) && k < 3; k++)
		o = db_bin_bool(r, row, X_CONSENT + k) ? W_LIT(o, ",true") : W_LIT(o, ",false");
	for (int k = 0; o && (x->fields & SEG_FACTS) && k < 6; k++)
		o = w_fact(x, W_LIT(o, ","), r, row, k, false);
	if (!o)
		return false;
	if (x->fields & SEG_REASON)
		o = w_csv_field(W_LIT(o, ","), PQgetvalue(r, row, X_REASON),
				(size_t)PQgetlength(r, row, X_REASON));
	o = W_LIT(o, "\r\n");
	x->len = (size_t)(o - x->out);
	return true;
}

/* the same object as a list item (ITEM), without a parse */
static bool
ndjson_row(struct segment_export *x, PGresult *r, int row)
{
	static const char *const names[] = { ",\"name\":", ",\"email\":", ",\"phone\":" };
	static const unsigned picks[] = { SEG_NAME, SEG_EMAIL, SEG_PHONE };
	char *o;

	if (!reserve(x, row_room(r, row)))
		return false;
	o = w_json_string(W_LIT(x->out + x->len, "{\"id\":"), PQgetvalue(r, row, X_ID),
			  (size_t)PQgetlength(r, row, X_ID));
	for (int k = 0; k < 3; k++)
		if (x->fields & picks[k]) {
			o = w_str(o, names[k]);
			o = PQgetisnull(r, row, X_NAME + k)
				    ? W_LIT(o, "null")
				    : w_json_string(o, PQgetvalue(r, row, X_NAME + k),
						    (size_t)PQgetlength(r, row, X_NAME + k));
		}
	if (x->fields & SEG_TAGS) {
		/* tags are tokens of [A-Za-z0-9._:-], joined by ';' */
		const char *t = PQgetvalue(r, row, X_TAGS);

		o = W_LIT(o, ",\"tags\":[");
		while (*t) {
			size_t n = strcspn(t, ";");

			*o++ = '"';
			o = w_mem(o, t, n);
			*o++ = '"';
			if (t[n])
				*o++ = ',';
			t += n + (t[n] != '\0');
		}
		*o++ = ']';
	}
	if (x->fields & SEG_CONSENT) {
		static const char *const ch[] = { "{\"email\":", ",\"sms\":", ",\"wechat\":" };

		o = W_LIT(o, ",\"consent\":");
		for (int k = 0; k < 3; k++)
			o = db_bin_bool(r, row, X_CONSENT + k) ? W_LIT(w_str(o, ch[k]), "true")
							     : W_LIT(w_str(o, ch[k]), "false");
		*o++ = '}';
	}
	if (x->fields & SEG_FACTS) {
		o = W_LIT(o, ",\"facts\":{");
		for (int k = 0; o && k < 6; k++) {
			if (k)
				*o++ = ',';
			*o++ = '"';
			o = W_LIT(w_str(o, fact_names[k]), "\":");
			o = w_fact(x, o, r, row, k, true);
		}
		if (!o)
			return false;
		*o++ = '}';
	}
	if (x->fields & SEG_REASON)
		o = PQgetisnull(r, row, X_REASON)
			    ? W_LIT(o, ",\"reason\":null")
			    : w_mem(W_LIT(o, ",\"reason\":"), PQgetvalue(r, row, X_REASON),
				    (size_t)PQgetlength(r, row, X_REASON));
	o = W_LIT(o, "}\n");
	x->len = (size_t)(o - x->out);
	return true;
}

/* the columns are the ones the formatting reads (a changed EXPORT_COLUMNS is caught here) */
static bool
columns_ok(PGresult *r)
{
	if (PQnfields(r) != X_COLUMNS)
		return false;
	for (int col = 0; col < X_COLUMNS; col++)
		if (PQftype(r, col) != column_types[col] || PQfformat(r, col) != 1)
			return false;
	return true;
}

/*
 * The days of segments_export_days (one row): today, the first day, whether
 * binary search is exact, and the days' starts as an int8[] in text.
 */
static bool
read_days(struct segment_export *x, PGresult *r)
{
	const char *a = PQgetvalue(r, 0, 3);
	size_t n = 1;

	x->today = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	x->sql_days = PQgetvalue(r, 0, 2)[0] != 't';
	if (x->sql_days || PQgetisnull(r, 0, 1) || PQgetisnull(r, 0, 3))
		return true; /* no facts with an instant: no days to find */
	x->first_day = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	for (const char *c = a; *c; c++)
		n += *c == ',';
	x->starts = malloc(n * sizeof *x->starts);
	if (!x->starts)
		return false;
	for (const char *c = a + 1; *c && *c != '}'; c++) {
		char *end;

		x->starts[x->nstarts++] = strtoll(c, &end, 10);
		c = end;
		if (*c != ',')
			break;
	}
	return true;
}

/*
 * Whether the days since are found here (x->sql_days false) and from which
 * midnights: read on the stream's snapshot, which its cursor reads the rows
 * on.  Only an export with the facts needs them.
 */
static bool
export_days(struct segment_export *x, const char *shop_id, const struct seg_params *sp,
	    struct err *err)
{
	const char *p[3] = { shop_id, sp->v[1], sp->v[0] };
	PGresult *r;
	bool ok;

	if (!(x->fields & SEG_FACTS))
		return true;
	if (db_stream_query(x->rows, "segments_export_days", 3, p, &r, err) < 0)
		return false;
	ok = PQntuples(r) == 1 && read_days(x, r);
	PQclear(r);
	if (!ok)
		err_set(err, ERR_INTERNAL, NULL, "internal error");
	return ok;
}

enum db_qs
segments_export(struct db_conn *c, const char *shop_id, const char *code,
		const struct segment_page *page, enum segment_format format,
		struct segment_export **out, struct err *err)
{
	char after[24], stmt[64];
	struct seg_params sp;
	/* shop, after, consent, the four of p, sql_days */
	const char *p[8] = { shop_id, after, page->consent };
	struct segment_export *x;
	struct custom_sql cs = { 0 };
	json_t *filter = NULL;
	enum db_qs qs;

	*out = NULL;
	snprintf(after, sizeof after, "%lld", page->after);
	x = calloc(1, sizeof *x);
	if (!x)
		return DB_HARD_ERROR;
	x->format = format;
	x->fields = page->fields;
	x->header = format == SEGMENT_CSV;
	qs = params(c, shop_id, &sp);
	if (qs <= 0)
		goto out;
	memcpy(p + 3, sp.v, sizeof sp.v);
	if (find(code))
		snprintf(stmt, sizeof stmt, "segments_export_%s", code);
	else if ((qs = custom_filter(c, shop_id, code, &filter)) <= 0)
		goto out;
	qs = DB_ABORT; /* err says why (busy, unavailable) */
	x->rows = db_stream_open(filter ? custom_export.label : stmt, err);
	if (!x->rows || !export_days(x, shop_id, &sp, err))
		goto out;
	p[7] = x->sql_days ? "true" : "false";
	if (filter && (qs = custom_compose(c, shop_id, &custom_export, filter, p + 1, &cs)) < 0)
		goto out;
	qs = DB_ABORT;
	if (!db_stream_declare(x->rows, filter ? cs.sql : db_stmt_sql(stmt),
			       filter ? cs.nparams : 8, filter ? cs.params : p, err))
		goto out;
	qs = DB_ONE_RESULT;
out:
	json_decref(filter);
	params_free(&sp);
	custom_sql_free(&cs);
	if (qs > 0)
		*out = x;
	else
		segments_export_free(x);
	return qs;
}

long
segments_export_read(void *export, char *buf, size_t max)
{
	struct segment_export *x = export;
	size_t n = 0;

	if (x->failed)
		return -1;
	while (n < max) {
		if (x->sent < x->len) {
			size_t k = x->len - x->sent < max - n ? x->len - x->sent : max - n;

			memcpy(buf + n, x->out + x->sent, k);
			x->sent += k;
			n += k;
			continue;
		}
		x->len = x->sent = 0;
		if (x->header) {
			x->header = false;
			if (!csv_header(x))
				goto fail;
			continue;
		}
		if (!x->batch) {
			int rc;

			if (x->ended)
				break;
			rc = db_stream_next(x->rows, &x->batch);
			if (rc < 0)
				goto fail;
			if (rc == 0) {
				/* hand the connection back now, not when the client hangs up */
				db_stream_close(x->rows);
				x->rows = NULL;
				x->ended = true;
				break;
			}
			if (!x->checked && !columns_ok(x->batch)) {
				log_emit(LOG_ERROR, "export columns are not the ones formatted", NULL);
				goto fail;
			}
			x->checked = true;
			x->row = 0;
		}
		while (x->row < PQntuples(x->batch) && x->len < EXPORT_FILL) {
			if (!(x->format == SEGMENT_CSV ? csv_row(x, x->batch, x->row)
						       : ndjson_row(x, x->batch, x->row)))
				goto fail;
			x->row++;
		}
		if (x->row == PQntuples(x->batch)) {
			PQclear(x->batch);
			x->batch = NULL;
		}
	}
	return (long)n;
fail:
	/* what is formatted already goes; the next call reports the failure */
	x->failed = true;
	return n ? (long)n : -1;
}

void
segments_export_free(void *export)
{
	struct segment_export *x = export;

	if (!x)
		return;
	PQclear(x->batch);
	db_stream_close(x->rows);
	free(x->starts);
	free(x->out);
	free(x);
}

int
segments_refresh_vip(struct db_conn *c)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, "segments_vip_stale", 0, NULL, &r);
	int done = 0;

	if (qs < 0)
		return -1;
	for (int i = 0; i < (int)qs; i++) {
		const char *p[1] = { PQgetvalue(r, i, 0) };

		char *rebuilt = NULL;

		/* one shop's failure (a timeout) must not keep the others stale */
		if (db_exec_text(c, "segments_vip_rebuild", 1, p, &rebuilt) > 0 && rebuilt &&
		    strcmp(rebuilt, "t") == 0)
			done++;
		free(rebuilt);
	}
	PQclear(r);
	/* all rows new: without it, index-only reads of the top visit the heap */
	if (done > 0 && db_exec_simple(c, "VACUUM (ANALYZE) vip_spend") < 0)
		done = -1;
	return done;
}
