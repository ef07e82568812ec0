/*
 * coupons.c — coupon packs; see include/rebuy/coupons.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/coupons.h"
#include "rebuy/jv.h"

const struct db_stmt coupons_stmts[] = {
	/* versions of one pack are numbered in turn: concurrent PUTs queue here */
	{ "coupons_pack_lock",
	  "SELECT pg_advisory_xact_lock(hashtextextended('coupon_packs ' || $1 || ' ' || $2, 0))" },
	{ "coupons_pack_put",
	  "INSERT INTO coupon_packs AS p (shop_id, code, version, name, count, amount, min_spend,"
	  "   validity, expires_after_months, active)"
	  " SELECT $1, $2, coalesce(max(x.version), 0) + 1, $3, $4, $5, $6, $7, $8, $9"
	  " FROM coupon_packs x WHERE x.shop_id = $1 AND x.code = $2"
	  " RETURNING p.version = 1, coupon_pack_json(p)::text" },
	/* $3: a version, or NULL for the latest */
	{ "coupons_pack_get",
	  "SELECT coupon_pack_json(p)::text FROM coupon_packs p"
	  " WHERE p.shop_id = $1 AND p.code = $2 AND ($3::integer IS NULL OR p.version = $3)"
	  " ORDER BY p.version DESC LIMIT 1" },
	{ "coupons_pack_list",
	  "SELECT json_build_object('items', coalesce(json_agg(coupon_pack_json(p)"
	  "   ORDER BY p.code COLLATE \"C\"), '[]'))::text"
	  " FROM (SELECT DISTINCT ON (code) * FROM coupon_packs WHERE shop_id = $1"
	  "   ORDER BY code, version DESC) p" },
	{ "coupons_grant",
	  "SELECT status, body::text FROM coupon_grant($1, $2, $3, $4, rebuy_now())" },
	{ "coupons_redeem",
	  "SELECT status, body::text FROM coupon_redeem($1, $2, $3, $4, $5, $6, rebuy_now())" },
	{ "coupons_get",
	  "SELECT status, body::text FROM coupon_get($1, $2, $3, $4, rebuy_now())" },
	{ NULL, NULL },
};

enum db_qs
coupons_pack_put(struct db_conn *c, const char *shop_id, const char *code, const json_t *body,
		 bool *created, char **out, struct err *err)
{
	char b1[24], b2[24], b3[24], b4[24];
	const char *p[9] = {
		shop_id, code, json_string_value(json_object_get(body, "name")),
		jv_int_text(body, "count", NULL, b1), jv_int_text(body, "amount", NULL, b2),
		jv_int_text(body, "min_spend", "0", b3),
		json_string_value(json_object_get(body, "validity")),
		jv_int_text(body, "expires_after_months", NULL, b4),
		json_is_false(json_object_get(body, "active")) ? "f" : "t",
	};
	enum db_qs qs = db_exec_version(c, "coupons_pack_lock", "coupons_pack_put", 9, p, created,
				       out);

	(void)err;
	return qs == DB_NO_RESULTS ? DB_HARD_ERROR : qs;
}

enum db_qs
coupons_pack_get(struct db_conn *c, const char *shop_id, const char *code, const char *version,
		 char **out)
{
	const char *p[3] = { shop_id, code, version };

	return code ? db_exec_text(c, "coupons_pack_get", 3, p, out)
		    : db_exec_text(c, "coupons_pack_list", 1, p, out);
}

/* The SQL functions' refusals as problems (statuses in migration 0017). */
static enum db_qs
fail(const char *status, const char *text, const void *cls, struct err *err)
{
	const struct coupon_call *in = cls;
	json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	const char *s = json_is_string(body) ? json_string_value(body) : NULL;

	if (strcmp(status, "conflict") == 0 && in->order_id)
		err_set(err, ERR_CONFLICT, "/order_amount",
			"coupon %lld of %s was redeemed on order %s with another amount", in->number,
			in->grant_id, in->order_id);
	else if (strcmp(status, "conflict") == 0)
		err_set(err, ERR_CONFLICT, "/grant_id",
			"grant %s was already made with another customer or pack", in->grant_id);
	else if (strcmp(status, "pack_unknown") == 0)
		err_set(err, ERR_VALIDATION, "/pack", "/pack: no coupon pack %s", in->pack);
	else if (strcmp(status, "pack_inactive") == 0)
		err_set(err, ERR_VALIDATION, "/pack", "/pack: coupon pack %s is not active", in->pack);
	else if (strcmp(status, "no_coupon") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "customer %s has no coupon %lld of grant %s",
			in->customer_id, in->number, in->grant_id);
	else if (strcmp(status, "no_grant") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "customer %s has no coupon grant %s",
			in->customer_id, in->grant_id);
	else if (strcmp(status, "used") == 0)
		err_set(err, ERR_COUPON_USED, NULL, "coupon %lld of %s was redeemed on order %s",
			in->number, in->grant_id, s ? s : "");
	else if (strcmp(status, "cancelled") == 0)
		err_set(err, ERR_COUPON_USED, NULL, "coupon %lld of %s was cancelled", in->number,
			in->grant_id);
	else if (strcmp(status, "expired") == 0)
		err_set(err, ERR_COUPON_EXPIRED, NULL, "coupon %lld of %s expired at %s", in->number,
			in->grant_id, s ? s : "");
	else if (strcmp(status, "not_yet_valid") == 0 && s)
		err_set(err, ERR_COUPON_NOT_YET_VALID, NULL, "coupon %lld of %s is valid from %s",
			in->number, in->grant_id, s);
	else if (strcmp(status, "not_yet_valid") == 0)
		err_set(err, ERR_COUPON_NOT_YET_VALID, NULL,
			"coupon %lld of %s becomes valid the month after coupon %lld is redeemed",
			in->number, in->grant_id, in->number - 1);
	else if (strcmp(status, "below_min") == 0) {
		err_set(err, ERR_BELOW_MINIMUM_SPEND, "/order_amount",
			"/order_amount: coupon %lld of %s needs an order of at least %lld", in->number,
			in->grant_id, (long long)json_integer_value(body));
		err_ext(err, "min_spend", json_integer_value(body));
	} else
		err_set(err, ERR_INTERNAL, NULL, "coupons: unexpected status %s", status);
	json_decref(body);
	return DB_ABORT;
}

enum db_qs
coupons_grant(struct db_conn *c, const char *shop_id, const struct coupon_call *in,
	      bool *created, char **out, struct err *err)
{
	const char *p[4] = { shop_id, in->customer_id, in->grant_id, in->pack };

	return db_exec_status(c, "coupons_grant", 4, p, created, out, fail, in, err);
}

enum db_qs
coupons_redeem(struct db_conn *c, const char *shop_id, const struct coupon_call *in,
	       bool *created, char **out, struct err *err)
{
	char number[24], amount[24];
	const char *p[6] = { shop_id, in->customer_id, in->grant_id, number, in->order_id, amount };

	snprintf(number, sizeof number, "%lld", in->number);
	snprintf(amount, sizeof amount, "%lld", in->order_amount);
	return db_exec_status(c, "coupons_redeem", 6, p, created, out, fail, in, err);
}

enum db_qs
coupons_get(struct db_conn *c, const char *shop_id, const struct coupon_call *in, char **out,
	    struct err *err)
{
	const char *p[4] = { shop_id, in->customer_id, in->grant_id, in->status };
	bool created;

	return db_exec_status(c, "coupons_get", 4, p, &created, out, fail, in, err);
}
