/*
 * benefits.h — benefits with a quota per calendar period (free dry
 * cleaning, 1 a month for ordinary, 2 for silver, 3 for gold): the shop's
 * catalogue, the quotas tiers and plans give, and recorded uses.
 *
 * A customer's quota for a benefit is the largest that the tier held and
 * the active paid memberships give (not their sum).  Periods are calendar
 * days, weeks (from Monday), months or years in the shop's time zone.
 * Every call runs inside the caller's transaction (api_run); replies are
 * JSON text rendered by PostgreSQL (*out, malloc'd).
 */
#ifndef REBUY_BENEFITS_H
#define REBUY_BENEFITS_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"

extern const struct db_stmt benefits_stmts[];

/*
 * Check the shape of a quota map {"code": 0..10000, …} at pointer ptr and
 * return it as compact JSON text (malloc'd); NULL with err set otherwise.
 * A NULL map is {}.
 */
char *benefits_quota_map(const json_t *map, const char *ptr, struct err *err);

/* DB_ABORT with ERR_VALIDATION <ptr>/<code> if map names a benefit the shop lacks. */
enum db_qs benefits_check_quotas(struct db_conn *c, const char *shop_id, const char *map,
				 const char *ptr, struct err *err);

struct benefit_input {
	const char *name, *period;
	const char *valid_from, *valid_until; /* RFC 3339 or NULL */
};

/* Create or replace benefit code; *created tells which.  *out: the Benefit. */
enum db_qs benefits_put(struct db_conn *c, const char *shop_id, const char *code,
			const struct benefit_input *in, bool *created, char **out);

/* One Benefit (DB_NO_RESULTS: none), or {"items": [...]} when code is NULL. */
enum db_qs benefits_get(struct db_conn *c, const char *shop_id, const char *code, char **out);

struct benefit_use {
	const char *customer_id, *benefit, *use_id, *note; /* note may be NULL */
	long long quantity;
};

/*
 * Record a use now.  DB_NO_RESULTS: no such (non-erased) customer or no
 * such benefit (*what says which).  A use_id already recorded: the stored
 * use again (*created false) if it is the same use, else ERR_CONFLICT.
 * ERR_BENEFIT_NOT_VALID outside the benefit's validity; ERR_QUOTA_EXCEEDED
 * (with quota, used and remaining) beyond the quota; both with DB_ABORT.
 * Uses of one customer queue on the customer's row, so concurrent uses
 * never exceed the quota.  *out: the BenefitUse.
 */
enum db_qs benefits_use(struct db_conn *c, const char *shop_id, const struct benefit_use *in,
			bool *created, const char **what, char **out, struct err *err);

#endif
