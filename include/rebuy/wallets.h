/*
 * wallets.h — prepaid balances: versioned top-up offers, one wallet per
 * customer with its principal and bonus (available and scheduled), top-ups
 * whose bonus is released on a schedule, spends in the shop's consumption
 * order, and the double-entry journal every movement is posted to.
 *
 * The money rules live in SQL functions (migration 0015): each call is one
 * statement that takes the customer's row lock, brings the wallet up to
 * now (due releases and expiries, in time order) and then acts, so no cron
 * is needed for correctness and concurrent calls queue.  Replies are JSON
 * text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_WALLETS_H
#define REBUY_WALLETS_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt wallets_stmts[];

/*
 * Store a new version of offer code from a checked body (name, min_topup,
 * bonus, limit_per_customer, active, coupon_pack); *created: it is version 1.
 * *out: the Offer.  ERR_VALIDATION with DB_ABORT: coupon_pack names no pack.
 */
enum db_qs wallets_offer_put(struct db_conn *c, const char *shop_id, const char *code,
			     const json_t *body, bool *created, char **out, struct err *err);

/*
 * An Offer (its latest version, or version when not NULL), or
 * {"items": [...]} of the latest versions when code is NULL.
 */
enum db_qs wallets_offer_get(struct db_conn *c, const char *shop_id, const char *code,
			     const char *version, char **out);

/* The Wallet (statement: {wallet, movements, schedule}); DB_NO_RESULTS: no customer. */
enum db_qs wallets_read(struct db_conn *c, const char *shop_id, const char *customer_id,
			bool statement, char **out);

struct wallet_topup {
	const char *customer_id, *topup_id, *offer; /* offer may be NULL */
	long long amount;
};

/*
 * Top up.  DB_NO_RESULTS: no such (non-erased) customer.  ERR_CONFLICT,
 * ERR_VALIDATION (/offer, /amount) or ERR_OFFER_LIMIT_REACHED with
 * DB_ABORT.  *created false: a replay of topup_id.  *out: {topup, wallet}.
 */
enum db_qs wallets_topup(struct db_conn *c, const char *shop_id, const struct wallet_topup *in,
			 bool *created, char **out, struct err *err);

struct wallet_spend {
	const char *customer_id, *spend_id, *order_id; /* order_id may be NULL */
	long long amount;
};

/*
 * Spend.  DB_NO_RESULTS: no such (non-erased) customer.  ERR_CONFLICT, or
 * ERR_INSUFFICIENT_FUNDS with the available amounts, with DB_ABORT.
 * *created false: a replay of spend_id.  *out: {spend, wallet}.
 */
enum db_qs wallets_spend(struct db_conn *c, const char *shop_id, const struct wallet_spend *in,
			 bool *created, char **out, struct err *err);

struct wallet_refund {
	const char *customer_id;
	const char *ref;       /* the spend_id or topup_id refunded */
	const char *refund_id; /* spend refunds: the storefront's refund id */
	long long amount;      /* spend refunds */
};

/*
 * Refund part or all of a spend: principal first, then the bonus back to
 * its installments (expired since: breakage).  DB_NO_RESULTS: no such
 * customer.  ERR_NOT_FOUND (no such spend of the customer), ERR_CONFLICT,
 * ERR_VALIDATION (more than is left) with DB_ABORT.  *out: {refund, wallet}.
 */
enum db_qs wallets_spend_refund(struct db_conn *c, const char *shop_id,
				const struct wallet_refund *in, bool *created, char **out,
				struct err *err);

/*
 * Refund a whole top-up: the principal still in the wallet up to its
 * amount, its pending bonus cancelled, its released bonus clawed back.
 * Once; again gives the same answer (*created false).  *out: {topup, wallet}.
 */
enum db_qs wallets_topup_refund(struct db_conn *c, const char *shop_id,
				const struct wallet_refund *in, bool *created, char **out,
				struct err *err);

struct wallet_adjustment {
	const char *customer_id, *adjustment_id, *reason;
	long long amount; /* signed, on the principal */
};

/* An admin's adjustment of the principal.  ERR_CONFLICT, ERR_INSUFFICIENT_FUNDS. */
enum db_qs wallets_adjust(struct db_conn *c, const char *shop_id,
			  const struct wallet_adjustment *in, bool *created, char **out,
			  struct err *err);

/*
 * Post what is due in every wallet and package: releases and expiries
 * (rebuyd's minute sweep, in batches of customers; reads and writes do it
 * for their own customer anyway).  Returns the customers brought up to
 * date, -1 on a database error.
 */
int wallets_sweep(struct db_conn *c);

/* rebuyd verify: the ledger's broken invariants, reported one by one; returns their number. */
enum db_qs wallets_verify(struct db_conn *c, const char *shop_id,
			  void (*report)(const char *shop, const char *what, const char *detail));

#endif
