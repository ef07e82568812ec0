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

#include "rebuy/segfilter.h"
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

/* $2 after this customer seq, $3 consent channel or NULL */
#define PAGE_WHERE \
	" c.erased_at IS NULL AND c.seq > $2" \
	"   AND ($3::text IS NULL OR ($3 = 'email' AND c.consent_email)" \
	"        OR ($3 = 'sms' AND c.consent_sms) OR ($3 = 'wechat' AND c.consent_wechat))"

/* $4 limit */
#define PAGE \
	" SELECT c.seq," ITEM("m.reason") \
	" FROM m JOIN customers c ON c.seq = m.customer_seq" \
	"   JOIN customer_facts f ON f.customer_seq = c.seq, p" \
	" WHERE" PAGE_WHERE " ORDER BY c.seq LIMIT $4"

/*
 * Custom segments: the compiled filter goes between these (its parameters
 * numbered after the statement's own: from $2 for the size, $5 for a page).
 */
static const char custom_size[] =
	P " x AS (SELECT 1) SELECT count(*)"
	" FROM customer_facts f JOIN customers c ON c.seq = f.customer_seq, p"
	" WHERE f.shop_id = $1 AND c.erased_at IS NULL AND ";
static const char custom_page[] =
	P " x AS (SELECT 1) SELECT c.seq," ITEM("NULL::json")
	" FROM customer_facts f JOIN customers c ON c.seq = f.customer_seq, p"
	" WHERE f.shop_id = $1 AND" PAGE_WHERE " AND ";
static const char custom_page_end[] = " ORDER BY c.seq LIMIT $4";

#define CUSTOM_COLUMNS \
	"code, name, description, filter::text, rfc3339(created_at), rfc3339(updated_at)"

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

/* ---- custom segments ---------------------------------------------------- */

/*
 * Run sql_head + the compiled filter + sql_tail with params (the
 * statement's own first, nfixed of them) and the filter's after them.
 */
static enum db_qs
run_custom(struct db_conn *c, const char *label, const char *head, const char *tail,
	   const json_t *filter, const char **fixed, int nfixed, PGresult **r)
{
	const char *params[4 + SEGFILTER_MAX_CONDITIONS * 2];
	struct segfilter sf;
	struct err err = { 0 };
	char *sql = NULL;
	enum db_qs qs = DB_HARD_ERROR;

	*r = NULL;
	/* stored filters were checked when saved: a failure here is ours */
	if (!segfilter_compile(filter, "/filter", nfixed + 1, &sf, &err) ||
	    asprintf(&sql, "%s%s%s", head, sf.sql, tail) < 0) {
		sql = NULL;
		goto out;
	}
	for (int i = 0; i < nfixed; i++)
		params[i] = fixed[i];
	for (int i = 0; i < sf.nparams; i++)
		params[nfixed + i] = sf.params[i];
	qs = db_exec_sql(c, label, sql, nfixed + sf.nparams, params, r);
out:
	free(sql);
	segfilter_free(&sf);
	return qs;
}

/* Row i of a CUSTOM_COLUMNS result as the Segment object, with its size now. */
static enum db_qs
describe_custom(struct db_conn *c, const char *shop_id, PGresult *row, int i, const char *today,
		json_t **out)
{
	const char *fixed[1] = { shop_id };
	json_t *filter = json_loads(PQgetvalue(row, i, 3), 0, NULL);
	PGresult *r;
	enum db_qs qs;

	if (!filter)
		return DB_HARD_ERROR;
	qs = run_custom(c, "segments_custom_size", custom_size, "", filter, fixed, 1, &r);
	if (qs < 0) {
		json_decref(filter);
		return qs;
	}
	*out = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s}",
		"code", PQgetvalue(row, i, 0), "kind", "custom", "name", PQgetvalue(row, i, 1),
		"description", PQgetisnull(row, i, 2) ? json_null() : json_string(PQgetvalue(row, i, 2)),
		"filter", filter, "size", (json_int_t)atoll(PQgetvalue(r, 0, 0)), "as_of", today,
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

			qs = describe_custom(c, shop_id, r, i, today, &seg);
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
	json_decref(cfg);
	return qs;
}

enum db_qs
segments_get(struct db_conn *c, const char *shop_id, const char *code, json_t **out)
{
	const struct segment_def *d = find(code);
	char today[11];
	json_t *cfg = NULL;
	PGresult *r = NULL;
	enum db_qs qs = params(c, shop_id, today, &cfg);

	if (qs > 0 && d)
		qs = describe(c, shop_id, d, today, cfg, out);
	else if (qs > 0 && (qs = custom_row(c, shop_id, code, &r)) > 0)
		qs = describe_custom(c, shop_id, r, 0, today, out);
	PQclear(r);
	json_decref(cfg);
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
	if (find(code)) {
		qs = db_exec(c, stmt, 4, p, &r);
	} else {
		PGresult *row;
		json_t *filter;

		qs = custom_row(c, shop_id, code, &row);
		if (qs <= 0)
			return qs;
		filter = json_loads(PQgetvalue(row, 0, 3), 0, NULL);
		PQclear(row);
		if (!filter)
			return DB_HARD_ERROR;
		qs = run_custom(c, "segments_custom_page", custom_page, custom_page_end, filter, p, 4,
				&r);
		json_decref(filter);
	}
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

bool
segments_code_valid(const char *code)
{
	size_t n = strlen(code);

	return n >= 1 && n <= 64 && strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}
