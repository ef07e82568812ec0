/*
 * packages.h — prepaid packages (visit passes): versioned package plans,
 * and a customer's packages with their redemptions, reversals, refunds and
 * expiry, on the ledger of the wallets (migration 0017).
 *
 * As with wallets, each call is one statement of a SQL function that
 * locks the customer's row, expires what is due, then acts, so concurrent
 * redemptions of one package queue and never take more uses than are left.
 * Revenue is recognised per redemption as floor(price × n / uses) after
 * minus before (n: net redeemed uses), so the uses add up to the price.
 * Replies are JSON text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_PACKAGES_H
#define REBUY_PACKAGES_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt packages_stmts[];

/*
 * Store a new version of plan code from a checked body (name, uses, price,
 * validity, max_uses_per_visit, max_uses_per_period, sale, presale,
 * active); *created: it is version 1.  *out: the PackagePlan.
 */
enum db_qs packages_plan_put(struct db_conn *c, const char *shop_id, const char *code,
			     const json_t *body, bool *created, char **out, struct err *err);

/* A PackagePlan (latest, or version), or {"items": [...]} when code is NULL. */
enum db_qs packages_plan_get(struct db_conn *c, const char *shop_id, const char *code,
			     const char *version, char **out);

struct package_call {
	const char *customer_id;
	const char *package_id;
	const char *plan;          /* buy */
	const char *order_id;      /* buy, redeem; may be NULL */
	const char *redemption_id; /* redeem, reverse */
	const char *reason;        /* reverse (required), refund (may be NULL) */
	const char *status;        /* list filter; may be NULL */
	long long uses;            /* redeem */
};

/*
 * Each: DB_NO_RESULTS for no such customer (or an erased one, for writes);
 * refusals fill err (ERR_CONFLICT, ERR_VALIDATION, ERR_NOT_FOUND,
 * ERR_INSUFFICIENT_USES, ERR_QUOTA_EXCEEDED, ERR_PACKAGE_NOT_USABLE) and
 * return DB_ABORT.  *created false: a replay.
 */
/* Buy a package: *out {package}. */
enum db_qs packages_buy(struct db_conn *c, const char *shop_id, const struct package_call *in,
			bool *created, char **out, struct err *err);
/* Redeem uses: *out {redemption, package}. */
enum db_qs packages_redeem(struct db_conn *c, const char *shop_id, const struct package_call *in,
			   bool *created, char **out, struct err *err);
/* An admin's reversal of a redemption: *out {redemption, package}. */
enum db_qs packages_reverse(struct db_conn *c, const char *shop_id, const struct package_call *in,
			    bool *created, char **out, struct err *err);
/* Refund the unused part: *out {package, refund}. */
enum db_qs packages_refund(struct db_conn *c, const char *shop_id, const struct package_call *in,
			   bool *created, char **out, struct err *err);
/* A package with its redemptions, or {"items"} of the customer's when package_id is NULL. */
enum db_qs packages_get(struct db_conn *c, const char *shop_id, const struct package_call *in,
			char **out, struct err *err);

#endif
