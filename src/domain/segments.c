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

#include "rebuy/segments.h"

/* today in the shop's zone, its zone, its segment parameters */
#define P \
	"WITH p AS MATERIALIZED (SELECT (now() AT TIME ZONE s.timezone)::date AS today," \
	"   s.timezone AS tz, shop_segment_settings(s) AS cfg FROM shops s WHERE s.id = $1),"

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
 */
#define DUE \
	" mc AS MATERIALIZED (SELECT cf.category, count(*) AS n, percentile_disc(0.5) WITHIN GROUP" \
	"     (ORDER BY " D("cf.second_at") " - " D("cf.first_at") ") AS m" \
	"   FROM p, customer_category_facts cf" \
	"   WHERE cf.shop_id = $1 AND cf.second_at IS NOT NULL GROUP BY cf.category)," \
	" ma AS MATERIALIZED (SELECT percentile_disc(0.5) WITHIN GROUP" \
	"     (ORDER BY " D("f.second_order_at") " - " D("f.first_order_at") ") AS m" \
	"   FROM p, customer_facts f WHERE f.shop_id = $1 AND f.second_order_at IS NOT NULL)," \
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

/* the top vip_percent by net spend over the last 365 days, ties at the cutoff in */
#define VIP \
	" sp AS (SELECT o.customer_seq, sum(o.net) AS spend" \
	"   FROM p, purchase_occasions o JOIN customers c ON c.seq = o.customer_seq" \
	"   WHERE o.shop_id = $1 AND c.erased_at IS NULL" \
	"     AND o.started_at >= " START("p.today - 364") \
	"     AND o.started_at < " START("p.today + 1") \
	"   GROUP BY o.customer_seq HAVING sum(o.net) > 0)," \
	" cut AS (SELECT min(t.spend) AS cutoff FROM (SELECT sp.spend FROM sp ORDER BY sp.spend DESC" \
	"   LIMIT (SELECT (count(*) * min(" CFG("vip_percent") ") + 99) / 100 FROM sp, p)) t)," \
	" m AS (SELECT sp.customer_seq, jsonb_build_object('spend_365d', sp.spend, 'cutoff', cut.cutoff)" \
	"     AS reason FROM sp, cut WHERE sp.spend >= cut.cutoff)"

#define SIZE " SELECT count(*) FROM m JOIN customers c ON c.seq = m.customer_seq" \
	" WHERE c.erased_at IS NULL"

/* $2 after this customer seq, $3 consent channel or NULL, $4 limit */
#define PAGE \
	" SELECT c.seq, json_build_object('id', c.id, 'name', c.name, 'email', c.email," \
	"   'phone', c.phone, 'tags', c.tags, 'consent', json_build_object('email', c.consent_email," \
	"     'sms', c.consent_sms, 'wechat', c.consent_wechat)," \
	"   'facts', json_build_object('order_count', f.order_count," \
	"     'first_order_at', rfc3339(f.first_order_at), 'last_order_at', rfc3339(f.last_order_at)," \
	"     'days_since_first_order', p.today - " D("f.first_order_at") "," \
	"     'days_since_last_order', p.today - " D("f.last_order_at") "," \
	"     'total_spent', f.total_spent)," \
	"   'reason', m.reason)" \
	" FROM m JOIN customers c ON c.seq = m.customer_seq" \
	"   JOIN customer_facts f ON f.customer_seq = c.seq, p" \
	" WHERE c.erased_at IS NULL AND c.seq > $2" \
	"   AND ($3::text IS NULL OR ($3 = 'email' AND c.consent_email)" \
	"        OR ($3 = 'sms' AND c.consent_sms) OR ($3 = 'wechat' AND c.consent_wechat))" \
	" ORDER BY c.seq LIMIT $4"

const struct db_stmt segments_stmts[] = {
	{ "segments_params", P " x AS (SELECT 1) SELECT today::text, cfg::text FROM p" },
	{ "segments_size_second-purchase-window", P SECOND_WINDOW SIZE },
	{ "segments_page_second-purchase-window", P SECOND_WINDOW PAGE },
	{ "segments_size_due-for-repurchase", P DUE SIZE },
	{ "segments_page_due-for-repurchase", P DUE PAGE },
	{ "segments_size_lapsing", P LAPSING SIZE },
	{ "segments_page_lapsing", P LAPSING PAGE },
	{ "segments_size_lapsed", P LAPSED SIZE },
	{ "segments_page_lapsed", P LAPSED PAGE },
	{ "segments_size_vip", P VIP SIZE },
	{ "segments_page_vip", P VIP PAGE },
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

bool
segments_parse_fields(const char *s, unsigned *mask)
{
	static const char *const names[] = { "name", "email", "phone", "tags", "consent", "facts",
					     "reason" };
	const char *p = s;

	*mask = 0;
	for (;;) {
		size_t len = strcspn(p, ","), k;

		for (k = 0; k < sizeof names / sizeof names[0]; k++)
			if (strlen(names[k]) == len && strncmp(names[k], p, len) == 0)
				break;
		if (k == sizeof names / sizeof names[0] || (*mask & (1u << k)))
			return false;
		*mask |= 1u << k;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

/* The segment object: definition, current parameters, size, date. */
static enum db_qs
describe(struct db_conn *c, const char *shop_id, const struct segment_def *d,
	 const char *today, json_t *cfg, json_t **out)
{
	char stmt[64];
	const char *p[1] = { shop_id };
	PGresult *r;
	json_t *params = json_object();
	enum db_qs qs;

	snprintf(stmt, sizeof stmt, "segments_size_%s", d->code);
	qs = db_exec(c, stmt, 1, p, &r);
	if (qs < 0) {
		json_decref(params);
		return qs;
	}
	for (size_t i = 0; i < 2 && d->params[i]; i++)
		json_object_set(params, d->params[i], json_object_get(cfg, d->params[i]));
	*out = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:s}", "code", d->code, "kind",
			 "built-in", "name", d->name, "description", d->description, "parameters",
			 params, "size", (json_int_t)atoll(PQgetvalue(r, 0, 0)), "as_of", today);
	PQclear(r);
	return DB_ONE_RESULT;
}

/* today and the parameters; DB_NO_RESULTS if the shop is gone */
static enum db_qs
params(struct db_conn *c, const char *shop_id, char today[11], json_t **cfg)
{
	const char *p[1] = { shop_id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "segments_params", 1, p, &r);

	if (qs > 0) {
		snprintf(today, 11, "%s", PQgetvalue(r, 0, 0));
		*cfg = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
		if (!*cfg)
			qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}

enum db_qs
segments_all(struct db_conn *c, const char *shop_id, json_t **out)
{
	char today[11];
	json_t *cfg = NULL, *items;
	enum db_qs qs = params(c, shop_id, today, &cfg);

	if (qs <= 0)
		return qs;
	items = json_array();
	for (size_t i = 0; i < NDEFS; i++) {
		json_t *seg;

		qs = describe(c, shop_id, &defs[i], today, cfg, &seg);
		if (qs < 0)
			goto out;
		json_array_append_new(items, seg);
	}
	*out = json_pack("{s:O}", "items", items);
	qs = DB_ONE_RESULT;
out:
	json_decref(items);
	json_decref(cfg);
	return qs;
}

enum db_qs
segments_get(struct db_conn *c, const char *shop_id, const char *code, json_t **out)
{
	const struct segment_def *d = find(code);
	char today[11];
	json_t *cfg = NULL;
	enum db_qs qs;

	if (!d)
		return DB_NO_RESULTS;
	qs = params(c, shop_id, today, &cfg);
	if (qs > 0)
		qs = describe(c, shop_id, d, today, cfg, out);
	json_decref(cfg);
	return qs;
}

/* Drop the members of one list item that were not asked for. */
static char *
pick_fields(const char *item, unsigned fields)
{
	static const char *const names[] = { "name", "email", "phone", "tags", "consent", "facts",
					     "reason" };
	json_t *o = json_loads(item, 0, NULL);
	char *s;

	if (!o)
		return NULL;
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
		if (!(fields & (1u << k)))
			json_object_del(o, names[k]);
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
	const char *p[4] = { shop_id, after, page->consent, limit };
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
	qs = db_exec(c, stmt, 4, p, &r);
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
