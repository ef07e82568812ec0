/*
 * packages.c — prepaid packages; see include/rebuy/packages.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/jv.h"
#include "rebuy/packages.h"

const struct db_stmt packages_stmts[] = {
	/* versions of one plan are numbered in turn: concurrent PUTs queue here */
	{ "packages_plan_lock",
	  "SELECT pg_advisory_xact_lock(hashtextextended('package_plans ' || $1 || ' ' || $2, 0))" },
	{ "packages_plan_put",
	  "INSERT INTO package_plans AS p (shop_id, code, version, name, uses, price, valid_days,"
	  "   valid_until, max_per_visit, period_uses, period, sale_from, sale_until, presale_price,"
	  "   presale_until, active)"
	  " SELECT $1, $2, coalesce(max(x.version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
	  "   $12, $13, $14, $15"
	  " FROM package_plans x WHERE x.shop_id = $1 AND x.code = $2"
	  " RETURNING p.version = 1, package_plan_json(p)::text" },
	/* $3: a version, or NULL for the latest */
	{ "packages_plan_get",
	  "SELECT package_plan_json(p)::text FROM package_plans p"
	  " WHERE p.shop_id = $1 AND p.code = $2 AND ($3::integer IS NULL OR p.version = $3)"
	  " ORDER BY p.version DESC LIMIT 1" },
	{ "packages_plan_list",
	  "SELECT json_build_object('items', coalesce(json_agg(package_plan_json(p)"
	  "   ORDER BY p.code COLLATE \"C\"), '[]'))::text"
	  " FROM (SELECT DISTINCT ON (code) * FROM package_plans WHERE shop_id = $1"
	  "   ORDER BY code, version DESC) p" },
	{ "packages_buy",
	  "SELECT status, body::text FROM package_buy($1, $2, $3, $4, $5, rebuy_now())" },
	{ "packages_redeem",
	  "SELECT status, body::text FROM package_redeem($1, $2, $3, $4, $5, $6, rebuy_now())" },
	{ "packages_reverse",
	  "SELECT status, body::text FROM package_reverse($1, $2, $3, $4, $5, rebuy_now())" },
	{ "packages_refund",
	  "SELECT status, body::text FROM package_refund($1, $2, $3, $4, rebuy_now())" },
	{ "packages_get",
	  "SELECT status, body::text FROM package_get($1, $2, $3, $4, rebuy_now())" },
	{ NULL, NULL },
};

/* A member of a nested object as text (instants as given), or NULL. */
static const char *
member(const json_t *obj, const char *outer, const char *name)
{
	const json_t *o = json_object_get(obj, outer);

	return o ? json_string_value(json_object_get(o, name)) : NULL;
}

enum db_qs
packages_plan_put(struct db_conn *c, const char *shop_id, const char *code, const json_t *body,
		  bool *created, char **out, struct err *err)
{
	const json_t *validity = json_object_get(body, "validity"),
		     *period = json_object_get(body, "max_uses_per_period"),
		     *presale = json_object_get(body, "presale");
	char b1[24], b2[24], b3[24], b4[24], b5[24], b6[24];
	const char *p[15] = {
		shop_id, code, json_string_value(json_object_get(body, "name")),
		jv_int_text(body, "uses", NULL, b1), jv_int_text(body, "price", NULL, b2),
		jv_int_text(validity, "days", NULL, b3), member(body, "validity", "until"),
		jv_int_text(body, "max_uses_per_visit", NULL, b4),
		jv_int_text(period, "uses", NULL, b5), member(body, "max_uses_per_period", "period"),
		member(body, "sale", "from"), member(body, "sale", "until"),
		jv_int_text(presale, "price", NULL, b6), member(body, "presale", "until"),
		json_is_false(json_object_get(body, "active")) ? "f" : "t",
	};
	enum db_qs qs = db_exec_version(c, "packages_plan_lock", "packages_plan_put", 15, p, created,
				       out);

	(void)err;
	return qs == DB_NO_RESULTS ? DB_HARD_ERROR : qs;
}

enum db_qs
packages_plan_get(struct db_conn *c, const char *shop_id, const char *code, const char *version,
		  char **out)
{
	const char *p[3] = { shop_id, code, version };

	return code ? db_exec_text(c, "packages_plan_get", 3, p, out)
		    : db_exec_text(c, "packages_plan_list", 1, p, out);
}

/* A JSON string's text, or def. */
static const char *
or(const json_t *s, const char *def)
{
	return json_is_string(s) ? json_string_value(s) : def;
}

/* The SQL functions' refusals as problems (statuses in migration 0017). */
static enum db_qs
fail(const char *status, const char *text, const void *cls, struct err *err)
{
	const struct package_call *in = cls;
	json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	const char *at = or(body, "");

	if (strcmp(status, "conflict") == 0 && in->redemption_id)
		err_set(err, ERR_CONFLICT, "/redemption_id",
			"redemption %s was already recorded with another package, uses or order",
			in->redemption_id);
	else if (strcmp(status, "conflict") == 0)
		err_set(err, ERR_CONFLICT, "/package_id",
			"package %s was already sold with another customer, plan or order",
			in->package_id);
	else if (strcmp(status, "plan_unknown") == 0)
		err_set(err, ERR_VALIDATION, "/plan", "/plan: no plan %s", in->plan);
	else if (strcmp(status, "plan_inactive") == 0)
		err_set(err, ERR_VALIDATION, "/plan", "/plan: plan %s is not active", in->plan);
	else if (strcmp(status, "not_on_sale") == 0)
		err_set(err, ERR_VALIDATION, "/plan", "/plan: plan %s is on sale from %s until %s",
			in->plan, or(json_object_get(body, "from"), "the start"),
			or(json_object_get(body, "until"), "no end"));
	else if (strcmp(status, "plan_expired") == 0)
		err_set(err, ERR_VALIDATION, "/plan", "/plan: plan %s was valid until %s", in->plan,
			at);
	else if (strcmp(status, "no_package") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "customer %s has no package %s", in->customer_id,
			in->package_id);
	else if (strcmp(status, "no_redemption") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "package %s has no redemption %s", in->package_id,
			in->redemption_id);
	else if (strcmp(status, "expired") == 0)
		err_set(err, ERR_PACKAGE_NOT_USABLE, NULL, "package %s expired at %s", in->package_id,
			at);
	else if (strcmp(status, "refunded") == 0)
		err_set(err, ERR_PACKAGE_NOT_USABLE, NULL, "package %s was refunded", in->package_id);
	else if (strcmp(status, "used_up") == 0)
		err_set(err, ERR_PACKAGE_NOT_USABLE, NULL, "every use of package %s is redeemed",
			in->package_id);
	else if (strcmp(status, "visit_limit") == 0)
		err_set(err, ERR_VALIDATION, "/uses", "/uses: at most %lld uses per visit",
			(long long)json_integer_value(body));
	else if (strcmp(status, "insufficient") == 0) {
		err_set(err, ERR_INSUFFICIENT_USES, "/uses", "%lld uses asked, %lld left in package %s",
			in->uses, (long long)json_integer_value(body), in->package_id);
		err_ext(err, "uses_left", json_integer_value(body));
	} else if (strcmp(status, "period_limit") == 0) {
		long long quota = json_integer_value(json_object_get(body, "quota")),
			  used = json_integer_value(json_object_get(body, "used"));

		err_set(err, ERR_QUOTA_EXCEEDED, "/uses",
			"package %s allows %lld uses a period; %lld used in this one", in->package_id,
			quota, used);
		err_ext(err, "quota", quota);
		err_ext(err, "used", used);
		err_ext(err, "remaining", json_integer_value(json_object_get(body, "remaining")));
	} else
		err_set(err, ERR_INTERNAL, NULL, "packages: unexpected status %s", status);
	json_decref(body);
	return DB_ABORT;
}

enum db_qs
packages_buy(struct db_conn *c, const char *shop_id, const struct package_call *in,
	     bool *created, char **out, struct err *err)
{
	const char *p[5] = { shop_id, in->customer_id, in->package_id, in->plan, in->order_id };

	return db_exec_status(c, "packages_buy", 5, p, created, out, fail, in, err);
}

enum db_qs
packages_redeem(struct db_conn *c, const char *shop_id, const struct package_call *in,
		bool *created, char **out, struct err *err)
{
	char uses[24];
	const char *p[6] = { shop_id, in->customer_id, in->package_id, in->redemption_id, uses,
			     in->order_id };

	snprintf(uses, sizeof uses, "%lld", in->uses);
	return db_exec_status(c, "packages_redeem", 6, p, created, out, fail, in, err);
}

enum db_qs
packages_reverse(struct db_conn *c, const char *shop_id, const struct package_call *in,
		 bool *created, char **out, struct err *err)
{
	const char *p[5] = { shop_id, in->customer_id, in->package_id, in->redemption_id,
			     in->reason };

	return db_exec_status(c, "packages_reverse", 5, p, created, out, fail, in, err);
}

enum db_qs
packages_refund(struct db_conn *c, const char *shop_id, const struct package_call *in,
		bool *created, char **out, struct err *err)
{
	const char *p[4] = { shop_id, in->customer_id, in->package_id, in->reason };

	return db_exec_status(c, "packages_refund", 4, p, created, out, fail, in, err);
}

enum db_qs
packages_get(struct db_conn *c, const char *shop_id, const struct package_call *in, char **out,
	     struct err *err)
{
	const char *p[4] = { shop_id, in->customer_id, in->package_id, in->status };
	bool created;

	return db_exec_status(c, "packages_get", 4, p, &created, out, fail, in, err);
}
