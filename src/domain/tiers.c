/*
 * tiers.c — earned tiers; see include/rebuy/tiers.h.
 *
 * The rules (qualification, upgrade, the refund that takes a tier back,
 * reviews and grace) live in SQL functions of migration 0014, because
 * the order transaction runs them next to the facts they read; this
 * module stores programmes, runs reviews and reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/benefits.h"
#include "rebuy/customers.h"
#include "rebuy/log.h"
#include "rebuy/tiers.h"

#define TIERS_MAX 20

const struct db_stmt tiers_stmts[] = {
	/*
	 * $2 policy, $3 every_months, $4 grace_days.  The review schedule
	 * starts at the first review instant after now; a replacement with the
	 * same period keeps it.
	 */
	{ "tiers_programme_put",
	  "INSERT INTO tier_programmes AS p (shop_id, downgrade, every_months, grace_days,"
	  "   next_review_at)"
	  " SELECT $1, $2, $3, $4, CASE WHEN $2 = 'review'"
	  "   THEN tier_review_after(rebuy_now(), s.timezone, $3) END"
	  " FROM shops s WHERE s.id = $1"
	  " ON CONFLICT (shop_id) DO UPDATE SET downgrade = excluded.downgrade,"
	  "   every_months = excluded.every_months, grace_days = excluded.grace_days,"
	  "   next_review_at = CASE WHEN p.every_months = excluded.every_months"
	  "     THEN p.next_review_at ELSE excluded.next_review_at END,"
	  "   updated_at = rebuy_now()"
	  " RETURNING (p.xmax = 0)" },
	/* a replacement queues behind tier writes (they share-lock the programme) and they behind it */
	{ "tiers_programme_lock", "SELECT 1 FROM tier_programmes WHERE shop_id = $1 FOR UPDATE" },
	/* a tier customers hold that $2 (the new codes) drops, and how many hold it */
	{ "tiers_held_dropped",
	  "SELECT ct.tier, count(*) FROM customer_tiers ct"
	  " WHERE ct.shop_id = $1 AND NOT ct.tier = ANY ($2::text[])"
	  " GROUP BY ct.tier ORDER BY ct.tier LIMIT 1" },
	{ "tiers_delete", "DELETE FROM tiers WHERE shop_id = $1" },
	/* without reviews, no grace period can end: none is left pending */
	{ "tiers_no_grace",
	  "UPDATE customer_tiers SET grace_until = NULL WHERE shop_id = $1 AND grace_until IS NOT NULL" },
	{ "tiers_insert",
	  "INSERT INTO tiers (shop_id, code, rank, name, discount_bp, window_days, net_spend,"
	  "   orders, combine, benefits)"
	  " SELECT $1, x.code, x.rank, x.name, x.discount_bp, x.window_days, x.net_spend,"
	  "   x.orders, x.combine, x.benefits"
	  " FROM jsonb_to_recordset($2::jsonb) AS x(code text, rank integer, name text,"
	  "   discount_bp integer, window_days integer, net_spend bigint, orders integer,"
	  "   combine text, benefits jsonb)" },
	/* a stored tier below the new programme's entry tier: the entry tier is held instead */
	{ "tiers_below_entry",
	  "DELETE FROM customer_tiers ct WHERE ct.shop_id = $1"
	  " AND tier_rank($1, ct.tier) < tier_entry_rank($1)" },
	{ "tiers_programme_get",
	  "SELECT tier_programme_json(p)::text FROM tier_programmes p WHERE p.shop_id = $1" },
	{ "tiers_review",
	  "SELECT tier_review(p.shop_id, rebuy_now())::text FROM tier_programmes p"
	  " WHERE p.shop_id = $1" },
	/* the sweep: shops with a review or a grace end due */
	{ "tiers_review_due",
	  "SELECT p.shop_id FROM tier_programmes p WHERE p.downgrade = 'review'"
	  " AND (p.next_review_at <= rebuy_now() OR EXISTS (SELECT 1 FROM customer_tiers ct"
	  "   WHERE ct.shop_id = p.shop_id AND ct.grace_until <= rebuy_now()))" },
	/* programme?, the tier's rank (0: none), floor_until in the future?, the entry rank */
	{ "tiers_assign_check",
	  "SELECT EXISTS (SELECT 1 FROM tier_programmes WHERE shop_id = $1), tier_rank($1, $2),"
	  "   coalesce($3::timestamptz > rebuy_now(), true), tier_entry_rank($1)" },
	{ "tiers_assign", "SELECT tier_assign($1, $2, $3, $4, $5)" },
	/* NULL: the shop has no programme */
	{ "tiers_customer",
	  "SELECT customer_tier_json($1, c.seq, c.id, rebuy_now())::text FROM customers c"
	  " WHERE c.shop_id = $1 AND c.id = $2" },
	{ "tiers_history",
	  "SELECT json_build_object('items', coalesce((SELECT json_agg(json_build_object("
	  "     'at', rfc3339(h.at), 'from', h.from_tier, 'to', h.to_tier, 'cause', h.cause,"
	  "     'order_id', h.order_id, 'reason', h.reason) ORDER BY h.at DESC, h.seq DESC)"
	  "   FROM tier_history h WHERE h.customer_seq = c.seq), '[]'))::text"
	  " FROM customers c WHERE c.shop_id = $1 AND c.id = $2" },
	{ NULL, NULL },
};

static enum db_qs
invalid(struct err *err, const char *ptr, const char *what)
{
	err_set(err, ERR_VALIDATION, ptr, "%s: %s", ptr, what);
	return DB_ABORT;
}

/*
 * The tiers of a programme body as the rows tiers_insert reads, and their
 * codes as a text[] literal; the shape was checked by the handler's spec.
 */
static enum db_qs
tier_rows(struct db_conn *c, const char *shop_id, const json_t *tiers, json_t *rows,
	  json_t *codes, struct err *err)
{
	size_t i;
	json_t *t;

	json_array_foreach(tiers, i, t) {
		const json_t *q = json_object_get(t, "qualification");
		const json_t *spend = json_object_get(q, "net_spend"),
			     *orders = json_object_get(q, "orders");
		const char *code = json_string_value(json_object_get(t, "code"));
		const char *combine = json_string_value(json_object_get(q, "combine"));
		json_t *days = json_object_get(q, "window_days");
		char ptr[96];
		char *map;
		enum db_qs qs;

		for (size_t j = 0; j < i; j++)
			if (strcmp(code, json_string_value(json_array_get(codes, j))) == 0) {
				snprintf(ptr, sizeof ptr, "/tiers/%zu/code", i);
				return invalid(err, ptr, "repeats an earlier tier's code");
			}
		snprintf(ptr, sizeof ptr, "/tiers/%zu/benefits", i);
		if (!(map = benefits_quota_map(json_object_get(t, "benefits"), ptr, err)))
			return DB_ABORT;
		qs = benefits_check_quotas(c, shop_id, map, ptr, err);
		if (qs < 0) {
			free(map);
			return qs;
		}
		json_array_append_new(codes, json_string(code));
		json_array_append_new(rows, json_pack("{s:s, s:I, s:O, s:O, s:I, s:O, s:O, s:s, s:o}",
			"code", code, "rank", (json_int_t)i + 1,
			"name", json_object_get(t, "name"),
			"discount_bp", json_object_get(t, "discount_bp"),
			"window_days", days ? json_integer_value(days) : (json_int_t)365,
			"net_spend", spend && !json_is_null(spend) ? spend : json_null(),
			"orders", orders && !json_is_null(orders) ? orders : json_null(),
			"combine", combine ? combine : "and",
			"benefits", json_loads(map, 0, NULL)));
		free(map);
	}
	return DB_ONE_RESULT;
}

enum db_qs
tiers_programme_put(struct db_conn *c, const char *shop_id, const json_t *body, bool *created,
		    char **out, struct err *err)
{
	const json_t *tiers = json_object_get(body, "tiers"), *dg = json_object_get(body, "downgrade");
	const char *policy = json_string_value(json_object_get(dg, "policy"));
	const json_t *every = json_object_get(dg, "every_months"), *grace = json_object_get(dg, "grace_days");
	json_t *rows = json_array(), *codes = json_array();
	char every_s[8] = "", grace_s[8] = "", *rows_s = NULL, *codes_s = NULL;
	PGresult *r = NULL;
	enum db_qs qs;

	*out = NULL;
	if (json_array_size(tiers) < 1 || json_array_size(tiers) > TIERS_MAX) {
		qs = invalid(err, "/tiers", "must hold 1 to 20 tiers, lowest first");
		goto out;
	}
	if (strcmp(policy, "review") == 0) {
		long long e = json_integer_value(every);

		if (!every || !grace) {
			qs = invalid(err, every ? "/downgrade/grace_days" : "/downgrade/every_months",
				     "is required with policy review");
			goto out;
		}
		if (e != 1 && e != 3 && e != 6 && e != 12) {
			qs = invalid(err, "/downgrade/every_months", "must be 1, 3, 6 or 12");
			goto out;
		}
		snprintf(every_s, sizeof every_s, "%lld", e);
		snprintf(grace_s, sizeof grace_s, "%lld", (long long)json_integer_value(grace));
	} else if (every || grace) {
		qs = invalid(err, every ? "/downgrade/every_months" : "/downgrade/grace_days",
			     "only goes with policy review");
		goto out;
	}
	if (!rows || !codes) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	qs = tier_rows(c, shop_id, tiers, rows, codes, err);
	if (qs < 0)
		goto out;
	rows_s = json_dumps(rows, JSON_COMPACT);
	/* a text[] literal: codes are [a-z0-9-], nothing to quote */
	{
		size_t n = 2 + 65 * json_array_size(codes), len = 0;
		size_t i;
		json_t *v;

		codes_s = malloc(n);
		if (!rows_s || !codes_s) {
			qs = DB_HARD_ERROR;
			goto out;
		}
		codes_s[len++] = '{';
		json_array_foreach(codes, i, v)
			len += (size_t)snprintf(codes_s + len, n - len, "%s%s", i ? "," : "",
						json_string_value(v));
		snprintf(codes_s + len, n - len, "}");
	}
	{
		const char *p[2] = { shop_id, codes_s };

		if ((qs = db_exec_none(c, "tiers_programme_lock", 1, p)) < 0)
			goto out;
		qs = db_exec(c, "tiers_held_dropped", 2, p, &r);
		if (qs < 0)
			goto out;
		if (qs > 0) {
			err_set(err, ERR_CONFLICT, "/tiers",
				"tier %s is held by %s customers: keep it, or assign them another"
				" tier first", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
			qs = DB_ABORT;
			goto out;
		}
		PQclear(r);
		r = NULL;
	}
	{
		const char *p[4] = { shop_id, policy, every_s[0] ? every_s : NULL,
				     grace_s[0] ? grace_s : NULL };

		qs = db_exec(c, "tiers_programme_put", 4, p, &r);
		if (qs <= 0) {
			qs = qs < 0 ? qs : DB_HARD_ERROR;
			goto out;
		}
		*created = PQgetvalue(r, 0, 0)[0] == 't';
	}
	{
		const char *p[2] = { shop_id, rows_s };

		if ((qs = db_exec_none(c, "tiers_delete", 1, p)) < 0 ||
		    (qs = db_exec_none(c, "tiers_insert", 2, p)) < 0 ||
		    (qs = db_exec_none(c, "tiers_below_entry", 1, p)) < 0 ||
		    (strcmp(policy, "never") == 0 &&
		     (qs = db_exec_none(c, "tiers_no_grace", 1, p)) < 0))
			goto out;
	}
	qs = tiers_programme_get(c, shop_id, out);
out:
	PQclear(r);
	json_decref(rows);
	json_decref(codes);
	free(rows_s);
	free(codes_s);
	return qs;
}

enum db_qs
tiers_programme_get(struct db_conn *c, const char *shop_id, char **out)
{
	const char *p[1] = { shop_id };

	return db_exec_text(c, "tiers_programme_get", 1, p, out);
}

enum db_qs
tiers_review(struct db_conn *c, const char *shop_id, char **out)
{
	const char *p[1] = { shop_id };

	return db_exec_text(c, "tiers_review", 1, p, out);
}

struct review_one {
	const char *shop_id;
	char *out;
};

static enum db_qs
review_tx(struct db_conn *c, void *cls, struct err *err)
{
	struct review_one *r = cls;

	(void)err;
	free(r->out);
	r->out = NULL;
	return tiers_review(c, r->shop_id, &r->out);
}

int
tiers_review_all(struct db_conn *c)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, "tiers_review_due", 0, NULL, &r);
	int done = 0;

	if (qs < 0)
		return -1;
	for (int i = 0; i < (int)qs; i++) {
		struct review_one one = { .shop_id = PQgetvalue(r, i, 0) };
		struct err err;

		err_clear(&err);
		if (!db_run_tx(c, "tier review", review_tx, &one, &err)) {
			/* the other shops' reviews still run */
			log_msg(LOG_WARN, "tier review of shop %s failed: %s", one.shop_id, err.message);
			free(one.out);
			continue;
		}
		log_msg(LOG_INFO, "tier review of shop %s: %s", one.shop_id, one.out ? one.out : "");
		free(one.out);
		done++;
	}
	PQclear(r);
	return done;
}

enum db_qs
tiers_assign(struct db_conn *c, const char *shop_id, const struct tier_assignment *in,
	     char **out, struct err *err)
{
	char *seq = NULL;
	PGresult *r = NULL;
	enum db_qs qs;

	*out = NULL;
	/* queues with the customer's order changes, which re-evaluate the tier */
	qs = customers_lock(c, shop_id, in->customer_id, &seq);
	if (qs <= 0)
		goto out;
	{
		const char *p[3] = { shop_id, in->tier, in->floor_until };

		qs = db_exec(c, "tiers_assign_check", 3, p, &r);
		if (qs <= 0) {
			qs = qs < 0 ? qs : DB_HARD_ERROR;
			goto out;
		}
	}
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		err_set(err, ERR_CONFLICT, NULL, "the shop has no tier programme (PUT /v1/tier-programme)");
		qs = DB_ABORT;
	} else if (strcmp(PQgetvalue(r, 0, 1), "0") == 0) {
		qs = invalid(err, "/tier", "no such tier in the programme");
	} else if (atoi(PQgetvalue(r, 0, 1)) < atoi(PQgetvalue(r, 0, 3))) {
		qs = invalid(err, "/tier", "ranks below the entry tier, which every customer holds");
	} else if (PQgetvalue(r, 0, 2)[0] != 't') {
		qs = invalid(err, "/floor_until", "must be in the future");
	} else {
		const char *p[5] = { shop_id, seq, in->tier, in->reason, in->floor_until };

		qs = db_exec_none(c, "tiers_assign", 5, p);
		if (qs >= 0) {
			const char *w;

			qs = tiers_of_customer(c, shop_id, in->customer_id, false, &w, out);
			if (qs == 0)
				qs = DB_HARD_ERROR;
		}
	}
out:
	PQclear(r);
	free(seq);
	return qs;
}

enum db_qs
tiers_of_customer(struct db_conn *c, const char *shop_id, const char *customer_id, bool history,
		  const char **what, char **out)
{
	const char *p[2] = { shop_id, customer_id };
	PGresult *r;
	enum db_qs qs = db_exec(c, history ? "tiers_history" : "tiers_customer", 2, p, &r);

	*out = NULL;
	*what = "customer";
	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	if (PQgetisnull(r, 0, 0)) {
		*what = "tier programme";
		qs = DB_NO_RESULTS;
	} else if (!(*out = strdup(PQgetvalue(r, 0, 0)))) {
		qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}
