/*
 * wallets.c — prepaid balances; see include/rebuy/wallets.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/jv.h"
#include "rebuy/wallets.h"

const struct db_stmt wallets_stmts[] = {
	/* versions of one offer are numbered in turn: concurrent PUTs queue here */
	{ "wallets_offer_lock",
	  "SELECT pg_advisory_xact_lock(hashtextextended('topup_offers ' || $1 || ' ' || $2, 0))" },
	{ "wallets_offer_put",
	  "INSERT INTO topup_offers AS o (shop_id, code, version, name, min_topup, bonus_immediate,"
	  "   inst_count, inst_amount, inst_every, inst_interval, inst_expiry, expires_after_days,"
	  "   limit_per_customer, active, coupon_pack)"
	  " SELECT $1, $2, coalesce(max(x.version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
	  "   $12, $13, $14"
	  " FROM topup_offers x WHERE x.shop_id = $1 AND x.code = $2"
	  /* no row: $14 names no coupon pack */
	  " HAVING $14::text IS NULL"
	  "   OR EXISTS (SELECT FROM coupon_packs p WHERE p.shop_id = $1 AND p.code = $14)"
	  " RETURNING o.version = 1, topup_offer_json(o)::text" },
	/* $3: a version, or NULL for the latest */
	{ "wallets_offer_get",
	  "SELECT topup_offer_json(o)::text FROM topup_offers o"
	  " WHERE o.shop_id = $1 AND o.code = $2 AND ($3::integer IS NULL OR o.version = $3)"
	  " ORDER BY o.version DESC LIMIT 1" },
	{ "wallets_offer_list",
	  "SELECT json_build_object('items', coalesce(json_agg(topup_offer_json(o)"
	  "   ORDER BY o.code COLLATE \"C\"), '[]'))::text"
	  " FROM (SELECT DISTINCT ON (code) * FROM topup_offers WHERE shop_id = $1"
	  "   ORDER BY code, version DESC) o" },
	{ "wallets_read", "SELECT wallet_read($1, $2, rebuy_now())::text" },
	{ "wallets_statement", "SELECT wallet_statement($1, $2, rebuy_now())::text" },
	/* an offer's coupon pack is issued in the same statement (migration 0017) */
	{ "wallets_topup",
	  "SELECT t.status, topup_coupons($1, $2, $3, t.status, t.body, rebuy_now())::text"
	  " FROM wallet_topup($1, $2, $3, $4, $5, rebuy_now()) t" },
	{ "wallets_spend",
	  "SELECT status, body::text FROM wallet_spend($1, $2, $3, $4, $5, rebuy_now())" },
	/* one batch of the minute sweep, wallets and packages (migration 0017) */
	{ "wallets_sweep", "SELECT prepaid_sweep(NULL, now(), $1)" },
	{ "wallets_spend_refund",
	  "SELECT status, body::text FROM wallet_spend_refund($1, $2, $3, $4, $5, rebuy_now())" },
	/* and its unredeemed coupons cancelled with the refund */
	{ "wallets_topup_refund",
	  "SELECT t.status, t.body::text, topup_refund_coupons($1, $3, t.status, rebuy_now())"
	  " FROM wallet_topup_refund($1, $2, $3, rebuy_now()) t" },
	{ "wallets_adjust",
	  "SELECT status, body::text FROM wallet_adjust($1, $2, $3, $4, $5, rebuy_now())" },
	{ "wallets_verify", "SELECT shop_id, what, detail FROM ledger_verify($1) ORDER BY 1, 2, 3" },
	{ NULL, NULL },
};

enum db_qs
wallets_offer_put(struct db_conn *c, const char *shop_id, const char *code, const json_t *body,
		  bool *created, char **out, struct err *err)
{
	const json_t *bonus = json_object_get(body, "bonus"),
		     *inst = json_object_get(bonus, "installments");
	const char *expiry = json_string_value(json_object_get(bonus, "installment_expiry"));
	char b1[24], b2[24], b3[24], b4[24], b5[24], b6[24], b7[24];
	const json_t *pack = json_object_get(body, "coupon_pack");
	const char *every = inst ? json_string_value(json_object_get(inst, "every")) : NULL;
	const char *p[14] = {
		shop_id, code, json_string_value(json_object_get(body, "name")),
		jv_int_text(body, "min_topup", "0", b1), jv_int_text(bonus, "immediate", "0", b2),
		inst ? jv_int_text(inst, "count", NULL, b3) : NULL,
		inst ? jv_int_text(inst, "amount", NULL, b4) : NULL, every,
		inst ? jv_int_text(inst, "interval", "1", b5) : NULL, expiry ? expiry : "none",
		jv_int_text(bonus, "expires_after_days", NULL, b6),
		jv_int_text(body, "limit_per_customer", NULL, b7),
		json_is_false(json_object_get(body, "active")) ? "f" : "t",
		json_string_value(pack),
	};
	enum db_qs qs = db_exec_version(c, "wallets_offer_lock", "wallets_offer_put", 14, p, created,
				       out);

	/* no row: the coupon pack named does not exist (the insert's HAVING) */
	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_VALIDATION, "/coupon_pack", "/coupon_pack: no coupon pack %s", p[13]);
		qs = DB_ABORT;
	}
	return qs;
}

enum db_qs
wallets_offer_get(struct db_conn *c, const char *shop_id, const char *code, const char *version,
		  char **out)
{
	const char *p[3] = { shop_id, code, version };

	return code ? db_exec_text(c, "wallets_offer_get", 3, p, out)
		    : db_exec_text(c, "wallets_offer_list", 1, p, out);
}

/* Column 0 of row 0 as malloc'd text; DB_NO_RESULTS when it is NULL. */
static enum db_qs
nullable_text(struct db_conn *c, const char *stmt, int n, const char *const *p, char **out)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, stmt, n, p, &r);

	*out = NULL;
	if (qs > 0) {
		if (PQgetisnull(r, 0, 0))
			qs = DB_NO_RESULTS;
		else if (!(*out = strdup(PQgetvalue(r, 0, 0))))
			qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}

enum db_qs
wallets_read(struct db_conn *c, const char *shop_id, const char *customer_id, bool statement,
	     char **out)
{
	const char *p[2] = { shop_id, customer_id };

	return nullable_text(c, statement ? "wallets_statement" : "wallets_read", 2, p, out);
}

static enum db_qs
topup_fail(const char *status, const char *body, const void *cls, struct err *err)
{
	const struct wallet_topup *in = cls;

	if (strcmp(status, "conflict") == 0)
		err_set(err, ERR_CONFLICT, "/topup_id",
			"top-up %s was already recorded with another customer, amount or offer",
			in->topup_id);
	else if (strcmp(status, "offer_unknown") == 0)
		err_set(err, ERR_VALIDATION, "/offer", "/offer: no such offer");
	else if (strcmp(status, "offer_inactive") == 0)
		err_set(err, ERR_VALIDATION, "/offer", "/offer: the offer is not active");
	else if (strcmp(status, "below_min") == 0)
		err_set(err, ERR_VALIDATION, "/amount", "/amount: the offer needs a top-up of at least %lld",
			(body ? atoll(body) : 0));
	else if (strcmp(status, "limit") == 0)
		err_set(err, ERR_OFFER_LIMIT_REACHED, "/offer",
			"the customer already made %lld top-ups with offer %s, its limit",
			(body ? atoll(body) : 0), in->offer);
	else
		err_set(err, ERR_INTERNAL, NULL, "top-up: unexpected status %s", status);
	return DB_ABORT;
}

enum db_qs
wallets_topup(struct db_conn *c, const char *shop_id, const struct wallet_topup *in,
	      bool *created, char **out, struct err *err)
{
	char amount[24];
	const char *p[5] = { shop_id, in->customer_id, in->topup_id, amount, in->offer };

	snprintf(amount, sizeof amount, "%lld", in->amount);
	return db_exec_status(c, "wallets_topup", 5, p, created, out, topup_fail, in, err);
}

/* ERR_INSUFFICIENT_FUNDS with the available amounts as problem members. */
static void
insufficient(const char *text, const char *what, long long amount, struct err *err)
{
	json_t *body = text ? json_loads(text, 0, NULL) : NULL;
	long long avail = json_integer_value(json_object_get(body, "available"));

	err_set(err, ERR_INSUFFICIENT_FUNDS, "/amount", "%s %lld needs more than the %lld available",
		what, amount, avail);
	err_ext(err, "principal", json_integer_value(json_object_get(body, "principal")));
	err_ext(err, "bonus_available", json_integer_value(json_object_get(body, "bonus_available")));
	err_ext(err, "available", avail);
	json_decref(body);
}

static enum db_qs
spend_fail(const char *status, const char *body, const void *cls, struct err *err)
{
	const struct wallet_spend *in = cls;

	if (strcmp(status, "conflict") == 0) {
		err_set(err, ERR_CONFLICT, "/spend_id",
			"spend %s was already recorded with another customer, amount or order",
			in->spend_id);
	} else if (strcmp(status, "insufficient") == 0) {
		insufficient(body, "spending", in->amount, err);
	} else {
		err_set(err, ERR_INTERNAL, NULL, "spend: unexpected status %s", status);
	}
	return DB_ABORT;
}

enum db_qs
wallets_spend(struct db_conn *c, const char *shop_id, const struct wallet_spend *in,
	      bool *created, char **out, struct err *err)
{
	char amount[24];
	const char *p[5] = { shop_id, in->customer_id, in->spend_id, amount, in->order_id };

	snprintf(amount, sizeof amount, "%lld", in->amount);
	return db_exec_status(c, "wallets_spend", 5, p, created, out, spend_fail, in, err);
}

static enum db_qs
refund_fail(const char *status, const char *body, const void *cls, struct err *err)
{
	const struct wallet_refund *in = cls;

	if (strcmp(status, "conflict") == 0)
		err_set(err, ERR_CONFLICT, "/refund_id",
			"refund %s was already recorded for another spend or amount", in->refund_id);
	else if (strcmp(status, "no_spend") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "customer %s has no spend %s", in->customer_id,
			in->ref);
	else if (strcmp(status, "no_topup") == 0)
		err_set(err, ERR_NOT_FOUND, NULL, "customer %s has no top-up %s", in->customer_id,
			in->ref);
	else if (strcmp(status, "too_much") == 0)
		err_set(err, ERR_VALIDATION, "/amount",
			"/amount: exceeds what is left to refund of spend %s (%lld)", in->ref,
			(body ? atoll(body) : 0));
	else
		err_set(err, ERR_INTERNAL, NULL, "refund: unexpected status %s", status);
	return DB_ABORT;
}

enum db_qs
wallets_spend_refund(struct db_conn *c, const char *shop_id, const struct wallet_refund *in,
		     bool *created, char **out, struct err *err)
{
	char amount[24];
	const char *p[5] = { shop_id, in->customer_id, in->ref, in->refund_id, amount };

	snprintf(amount, sizeof amount, "%lld", in->amount);
	return db_exec_status(c, "wallets_spend_refund", 5, p, created, out, refund_fail, in, err);
}

enum db_qs
wallets_topup_refund(struct db_conn *c, const char *shop_id, const struct wallet_refund *in,
		     bool *created, char **out, struct err *err)
{
	const char *p[3] = { shop_id, in->customer_id, in->ref };

	return db_exec_status(c, "wallets_topup_refund", 3, p, created, out, refund_fail, in, err);
}

static enum db_qs
adjust_fail(const char *status, const char *body, const void *cls, struct err *err)
{
	const struct wallet_adjustment *in = cls;

	if (strcmp(status, "conflict") == 0)
		err_set(err, ERR_CONFLICT, "/adjustment_id",
			"adjustment %s was already recorded with another customer, amount or reason",
			in->adjustment_id);
	else if (strcmp(status, "insufficient") == 0)
		insufficient(body, "taking", -in->amount, err);
	else
		err_set(err, ERR_INTERNAL, NULL, "adjustment: unexpected status %s", status);
	return DB_ABORT;
}

enum db_qs
wallets_adjust(struct db_conn *c, const char *shop_id, const struct wallet_adjustment *in,
	       bool *created, char **out, struct err *err)
{
	char amount[24];
	const char *p[5] = { shop_id, in->customer_id, in->adjustment_id, amount, in->reason };

	snprintf(amount, sizeof amount, "%lld", in->amount);
	return db_exec_status(c, "wallets_adjust", 5, p, created, out, adjust_fail, in, err);
}

enum db_qs
wallets_verify(struct db_conn *c, const char *shop_id,
	       void (*report)(const char *shop, const char *what, const char *detail))
{
	return db_verify(c, "wallets_verify", shop_id, report);
}

int
wallets_sweep(struct db_conn *c)
{
	return db_sweep(c, "wallets_sweep", NULL);
}
