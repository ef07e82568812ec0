/*
 * coupons.h — coupon packs: versioned packs of coupons ("four 50-coupons,
 * one a month, on orders of 200 or more"), granted to a customer on their
 * own or by a top-up offer (see wallets), listed with their validity
 * windows, and redeemed once each on an order (migration 0017).
 *
 * A coupon is a discount on a future order, not money owed: issuing posts
 * nothing; a redemption posts its amount as promotion cost on the ledger.
 * Replies are JSON text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_COUPONS_H
#define REBUY_COUPONS_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt coupons_stmts[];

/*
 * Store a new version of pack code from a checked body (name, count,
 * amount, min_spend, validity, expires_after_months, active); *created: it
 * is version 1.  *out: the CouponPack.
 */
enum db_qs coupons_pack_put(struct db_conn *c, const char *shop_id, const char *code,
			    const json_t *body, bool *created, char **out, struct err *err);

/* A CouponPack (latest, or version), or {"items": [...]} when code is NULL. */
enum db_qs coupons_pack_get(struct db_conn *c, const char *shop_id, const char *code,
			    const char *version, char **out);

struct coupon_call {
	const char *customer_id;
	const char *grant_id;
	const char *pack;     /* grant */
	const char *order_id; /* redeem */
	const char *status;   /* list filter; may be NULL */
	long long number;     /* redeem */
	long long order_amount;
};

/*
 * Each: DB_NO_RESULTS for no such customer (or an erased one, for writes);
 * refusals fill err and return DB_ABORT.  *created false: a replay.
 */
/* Grant a pack: *out {grant}.  ERR_CONFLICT, ERR_VALIDATION (/pack). */
enum db_qs coupons_grant(struct db_conn *c, const char *shop_id, const struct coupon_call *in,
			 bool *created, char **out, struct err *err);
/*
 * Redeem coupon number of grant_id on an order: *out {coupon}.
 * ERR_NOT_FOUND, ERR_CONFLICT, ERR_COUPON_NOT_YET_VALID,
 * ERR_COUPON_EXPIRED, ERR_COUPON_USED, ERR_BELOW_MINIMUM_SPEND.
 */
enum db_qs coupons_redeem(struct db_conn *c, const char *shop_id, const struct coupon_call *in,
			  bool *created, char **out, struct err *err);
/* A Grant, or {"items"} of the customer's coupons when grant_id is NULL. */
enum db_qs coupons_get(struct db_conn *c, const char *shop_id, const struct coupon_call *in,
		       char **out, struct err *err);

#endif
