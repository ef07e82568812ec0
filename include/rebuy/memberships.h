/*
 * memberships.h — paid memberships: the plans a shop sells, memberships
 * bought by customers (one or more consecutive terms, each kept as sold),
 * renewal from the current end, cancellation with a pro-rata refund by a
 * stated rule, and what applies to a customer now.
 *
 * Every call runs inside the caller's transaction (api_run) and answers
 * with the API object as JSON text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_MEMBERSHIPS_H
#define REBUY_MEMBERSHIPS_H

#include <stdbool.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt memberships_stmts[];

/* jv check for a shop-supplied card number: 4-32 of [A-Za-z0-9-]. */
const char *memberships_check_card(const char *s);

struct plan_input {
	const char *name;
	long long fee, duration_days, discount_bp;
	bool active;
	const char *benefits; /* {"benefit code": quota per period} as JSON text */
};

/*
 * Create or replace plan code; *created tells which.  *out: the Plan.
 * A benefit the shop has not defined: ERR_VALIDATION /benefits/<code>.
 */
enum db_qs memberships_plan_put(struct db_conn *c, const char *shop_id, const char *code,
				const struct plan_input *in, bool *created, char **out,
				struct err *err);

/* One Plan (DB_NO_RESULTS: none), or {"items": [...]} when code is NULL. */
enum db_qs memberships_plan_get(struct db_conn *c, const char *shop_id, const char *code,
				char **out);

struct membership_purchase {
	const char *customer_id, *plan;
	const char *card_number; /* NULL: generate one */
	const char *starts_at;   /* NULL: now; else RFC 3339, not in the future */
};

/*
 * Sell a membership.  DB_NO_RESULTS: no such (non-erased) customer.
 * ERR_VALIDATION (/plan, /starts_at), ERR_CARD_NUMBER_TAKEN in err with
 * DB_ABORT.  *out: the Membership, *id its id.
 */
enum db_qs memberships_buy(struct db_conn *c, const char *shop_id,
			   const struct membership_purchase *in, char **out, char id[37],
			   struct err *err);

/* One Membership by id; DB_NO_RESULTS if the shop has none such. */
enum db_qs memberships_get(struct db_conn *c, const char *shop_id, const char *id, char **out);

/*
 * A customer's memberships, {"items": [...]} newest first (active_only:
 * the current ones, as {"customer_id", "as_of", "tier", "memberships",
 * "discount_bp"}).  DB_NO_RESULTS: no such customer.
 */
enum db_qs memberships_of_customer(struct db_conn *c, const char *shop_id,
				   const char *customer_id, bool active_only, char **out);

/* Add a term (from the current end, or now if expired).  DB_NO_RESULTS: none. */
enum db_qs memberships_renew(struct db_conn *c, const char *shop_id, const char *id,
			     char **out, struct err *err);

/* Cancel now, refunding pro rata (see the API docs) or not.  DB_NO_RESULTS: none. */
enum db_qs memberships_cancel(struct db_conn *c, const char *shop_id, const char *id,
			      bool pro_rata, char **out, struct err *err);

#endif
