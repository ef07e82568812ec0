/*
 * tiers.h — earned tiers: the shop's tier programme (ordered tiers, each
 * qualified over a rolling window by net spend and/or purchase count),
 * evaluation after every order change (tier_evaluate() in migration 0014,
 * called in the order's transaction), periodic reviews with a grace
 * period, manual assignment with an optional floor, and the history.
 *
 * Calls run inside the caller's transaction (api_run) and answer with
 * JSON text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_TIERS_H
#define REBUY_TIERS_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt tiers_stmts[];

/*
 * Validate a programme body (tiers, downgrade) beyond its JSON shape and
 * store it, replacing the shop's programme; *created tells which.
 * ERR_VALIDATION with a pointer, or ERR_CONFLICT when a tier that
 * customers hold would go, with DB_ABORT.  *out: the Programme.
 */
enum db_qs tiers_programme_put(struct db_conn *c, const char *shop_id, const json_t *body,
			       bool *created, char **out, struct err *err);

/* The Programme; DB_NO_RESULTS: none. */
enum db_qs tiers_programme_get(struct db_conn *c, const char *shop_id, char **out);

/* Run the review and grace ends due now; DB_NO_RESULTS: no programme. */
enum db_qs tiers_review(struct db_conn *c, const char *shop_id, char **out);

/*
 * Run what is due in every shop's programme (rebuyd's once-a-minute
 * sweep), one transaction per shop.  Returns the shops reviewed, -1 on a
 * database error (logged).
 */
int tiers_review_all(struct db_conn *c);

struct tier_assignment {
	const char *customer_id, *tier, *reason;
	const char *floor_until; /* RFC 3339 or NULL: no floor */
};

/*
 * Assign a tier by hand.  DB_NO_RESULTS: no such (non-erased) customer.
 * ERR_CONFLICT without a programme, ERR_VALIDATION for an unknown tier or
 * a floor_until not in the future.  *out: the CustomerTier.
 */
enum db_qs tiers_assign(struct db_conn *c, const char *shop_id, const struct tier_assignment *in,
			char **out, struct err *err);

/*
 * The CustomerTier (history: {"items": [...]} newest first) of a customer.
 * DB_NO_RESULTS: no such customer, or no programme (*what says which).
 */
enum db_qs tiers_of_customer(struct db_conn *c, const char *shop_id, const char *customer_id,
			     bool history, const char **what, char **out);

#endif
