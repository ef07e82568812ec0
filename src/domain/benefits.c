/*
 * benefits.c — benefits with quotas per period; see include/rebuy/benefits.h.
 *
 * The quota a customer has now is computed by customer_benefits()
 * (migration 0014) from the tier held and the memberships' terms in
 * progress; a use checks it under the customer's row lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/benefits.h"
#include "rebuy/jv.h"
#include "rebuy/customers.h"

const struct db_stmt benefits_stmts[] = {
	/* xmax is 0 on a freshly inserted row version: tells created from replaced */
	{ "benefits_put",
	  "INSERT INTO benefits AS b (shop_id, code, name, period, valid_from, valid_until)"
	  " VALUES ($1, $2, $3, $4, $5, $6)"
	  " ON CONFLICT (shop_id, code) DO UPDATE SET name = excluded.name,"
	  "   period = excluded.period, valid_from = excluded.valid_from,"
	  "   valid_until = excluded.valid_until, updated_at = rebuy_now()"
	  " RETURNING (b.xmax = 0), benefit_json(b)::text" },
	{ "benefits_get",
	  "SELECT benefit_json(b)::text FROM benefits b WHERE b.shop_id = $1 AND b.code = $2" },
	{ "benefits_list",
	  "SELECT json_build_object('items', coalesce(json_agg(benefit_json(b)"
	  "   ORDER BY b.code COLLATE \"C\"), '[]'))::text"
	  " FROM benefits b WHERE b.shop_id = $1" },
	/* the first code of quota map $2 that the shop has not defined */
	{ "benefits_unknown",
	  "SELECT k FROM jsonb_object_keys($2::jsonb) k"
	  " WHERE NOT EXISTS (SELECT 1 FROM benefits b WHERE b.shop_id = $1 AND b.code = k)"
	  " ORDER BY k LIMIT 1" },
	/* a use_id already recorded: is it this use ($3 customer, $4 benefit, $5 quantity)? */
	{ "benefits_use_find",
	  "SELECT u.customer_seq = $3 AND u.benefit = $4 AND u.quantity = $5"
	  " FROM benefit_uses u WHERE u.shop_id = $1 AND u.use_id = $2" },
	/*
	 * The benefit now: valid?, and the customer's quota and use this
	 * period (no row: no such benefit).
	 */
	{ "benefits_quota",
	  "SELECT (b.valid_from IS NULL OR b.valid_from <= rebuy_now())"
	  "   AND (b.valid_until IS NULL OR rebuy_now() < b.valid_until),"
	  "   coalesce(q.quota, 0), coalesce(q.used, 0)"
	  " FROM benefits b"
	  " LEFT JOIN customer_benefits($1, $2, rebuy_now()) q ON q.code = b.code"
	  " WHERE b.shop_id = $1 AND b.code = $3" },
	/* $1 shop, $2 use id, $3 customer seq, $4 benefit, $5 quantity, $6 note */
	{ "benefits_use_insert",
	  "INSERT INTO benefit_uses (shop_id, use_id, customer_seq, benefit, quantity, note,"
	  "   used_at, period_start, period_end)"
	  " SELECT $1, $2, $3, $4, $5, $6, rebuy_now(), per.period_start, per.period_end"
	  " FROM benefits b JOIN shops s ON s.id = b.shop_id,"
	  "   LATERAL benefit_period(b.period, rebuy_now(), s.timezone) per"
	  " WHERE b.shop_id = $1 AND b.code = $4"
	  " ON CONFLICT (shop_id, use_id) DO NOTHING" },
	/* the BenefitUse: the use as recorded, with the counts of its customer now */
	{ "benefits_use_json",
	  "SELECT json_build_object('use_id', u.use_id, 'customer_id', c.id, 'benefit', u.benefit,"
	  "   'quantity', u.quantity, 'note', u.note, 'used_at', rfc3339(u.used_at),"
	  "   'period_start', rfc3339(u.period_start), 'period_end', rfc3339(u.period_end),"
	  "   'quota', coalesce(q.quota, 0), 'used', coalesce(q.used, 0),"
	  "   'remaining', greatest(coalesce(q.quota, 0) - coalesce(q.used, 0), 0))::text"
	  " FROM benefit_uses u JOIN customers c ON c.seq = u.customer_seq"
	  " LEFT JOIN customer_benefits(u.shop_id, u.customer_seq, rebuy_now()) q"
	  "   ON q.code = u.benefit"
	  " WHERE u.shop_id = $1 AND u.use_id = $2" },
	{ NULL, NULL },
};

char *
benefits_quota_map(const json_t *map, const char *ptr, struct err *err)
{
	const char *code;
	json_t *v;

	if (!map)
		return strdup("{}");
	if (!json_is_object(map)) {
		err_set(err, ERR_VALIDATION, ptr, "%s: must be an object of benefit code to quota", ptr);
		return NULL;
	}
	if (json_object_size(map) > 100) {
		err_set(err, ERR_VALIDATION, ptr, "%s: at most 100 benefits", ptr);
		return NULL;
	}
	json_object_foreach((json_t *)map, code, v) {
		char at[sizeof err->pointer];

		snprintf(at, sizeof at, "%s", ptr);
		err_pointer_append(at, sizeof at, code);
		if (!jv_is_code(code)) {
			err_set(err, ERR_VALIDATION, at, "%s: a benefit code is 1-64 of a-z, 0-9 and -",
				at);
			return NULL;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 10000) {
			err_set(err, ERR_VALIDATION, at, "%s: must be an integer quota 0..10000", at);
			return NULL;
		}
	}
	return json_dumps(map, JSON_COMPACT | JSON_SORT_KEYS);
}

enum db_qs
benefits_check_quotas(struct db_conn *c, const char *shop_id, const char *map, const char *ptr,
		      struct err *err)
{
	const char *p[2] = { shop_id, map };
	char *code = NULL, at[sizeof err->pointer];
	enum db_qs qs = db_exec_text(c, "benefits_unknown", 2, p, &code);

	if (qs <= 0)
		return qs;
	snprintf(at, sizeof at, "%s", ptr);
	err_pointer_append(at, sizeof at, code);
	err_set(err, ERR_VALIDATION, at, "%s: no such benefit (PUT /v1/benefits/%s first)", at,
		code);
	free(code);
	return DB_ABORT;
}

enum db_qs
benefits_put(struct db_conn *c, const char *shop_id, const char *code,
	     const struct benefit_input *in, bool *created, char **out)
{
	const char *p[6] = { shop_id, code, in->name, in->period, in->valid_from, in->valid_until };
	PGresult *r;
	enum db_qs qs = db_exec(c, "benefits_put", 6, p, &r);

	if (qs <= 0)
		return qs < 0 ? qs : DB_HARD_ERROR;
	*created = PQgetvalue(r, 0, 0)[0] == 't';
	*out = strdup(PQgetvalue(r, 0, 1));
	PQclear(r);
	return *out ? DB_ONE_RESULT : DB_HARD_ERROR;
}

enum db_qs
benefits_get(struct db_conn *c, const char *shop_id, const char *code, char **out)
{
	const char *p[2] = { shop_id, code };

	return code ? db_exec_text(c, "benefits_get", 2, p, out)
		    : db_exec_text(c, "benefits_list", 1, p, out);
}

enum db_qs
benefits_use(struct db_conn *c, const char *shop_id, const struct benefit_use *in,
	     bool *created, const char **what, char **out, struct err *err)
{
	char seq[24], qty[24], *s = NULL;
	long long quota, used;
	PGresult *r = NULL;
	enum db_qs qs;

	*out = NULL;
	*created = false;
	snprintf(qty, sizeof qty, "%lld", in->quantity);
	/* uses of one customer queue on its row, so concurrent uses keep to the quota */
	*what = "customer";
	qs = customers_lock(c, shop_id, in->customer_id, &s);
	if (qs <= 0)
		goto out;
	snprintf(seq, sizeof seq, "%s", s);
	{
		const char *p[5] = { shop_id, in->use_id, seq, in->benefit, qty };

		qs = db_exec(c, "benefits_use_find", 5, p, &r);
		if (qs < 0)
			goto out;
		if (qs > 0) {
			if (PQgetvalue(r, 0, 0)[0] != 't') {
				err_set(err, ERR_CONFLICT, "/use_id",
					"use %s was already recorded for another customer, benefit or"
					" quantity", in->use_id);
				qs = DB_ABORT;
				goto out;
			}
			goto reply;
		}
		PQclear(r);
		r = NULL;
	}
	{
		const char *p[3] = { shop_id, seq, in->benefit };

		*what = "benefit";
		qs = db_exec(c, "benefits_quota", 3, p, &r);
		if (qs <= 0)
			goto out;
	}
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		err_set(err, ERR_BENEFIT_NOT_VALID, NULL, "benefit %s is not valid now", in->benefit);
		qs = DB_ABORT;
		goto out;
	}
	quota = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	used = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	if (used + in->quantity > quota) {
		err_set(err, ERR_QUOTA_EXCEEDED, "/quantity",
			"%lld more of benefit %s this period exceeds the quota: %lld of %lld left",
			in->quantity, in->benefit, quota > used ? quota - used : 0, quota);
		err_ext(err, "quota", quota);
		err_ext(err, "used", used);
		err_ext(err, "remaining", quota > used ? quota - used : 0);
		qs = DB_ABORT;
		goto out;
	}
	{
		const char *p[6] = { shop_id, in->use_id, seq, in->benefit, qty, in->note };

		qs = db_exec_none(c, "benefits_use_insert", 6, p);
		if (qs < 0)
			goto out;
		if (qs == 0) { /* the same use_id recorded concurrently for another customer */
			err_set(err, ERR_CONFLICT, "/use_id", "use %s was already recorded",
				in->use_id);
			qs = DB_ABORT;
			goto out;
		}
	}
	*created = true;
reply:
	{
		const char *p[2] = { shop_id, in->use_id };

		qs = db_exec_text(c, "benefits_use_json", 2, p, out);
		if (qs == 0)
			qs = DB_HARD_ERROR;
	}
out:
	PQclear(r);
	free(s);
	return qs;
}
