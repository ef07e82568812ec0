/*
 * shops.h — merchants.  Every other row belongs to a shop.
 */
#ifndef REBUY_SHOPS_H
#define REBUY_SHOPS_H

#include <jansson.h>
#include "rebuy/db.h"

struct shop_input {
	const char *name;     /* NULL = unchanged (patch) */
	const char *currency; /* ISO 4217; immutable after creation */
	const char *timezone; /* IANA, as PostgreSQL knows it */
	/* JSON text of a settings object; members given replace, others stay */
	const char *settings;
	bool new_rule;        /* settings carry a repurchase_rule: recompute the facts */
};

/*
 * Create a shop and its first admin key (inside a transaction).  *shop and
 * *admin_key are new references; admin_key carries the secret "key".
 */
enum db_qs shops_create(struct db_conn *c, const struct shop_input *in,
			json_t **shop, json_t **admin_key, struct err *err);

/* Fetch; DB_NO_RESULTS if absent. */
enum db_qs shops_get(struct db_conn *c, const char *id, json_t **shop);

/*
 * Update name, timezone and/or settings; DB_NO_RESULTS if absent.  A new
 * repurchase rule recomputes every customer's facts (inside a transaction).
 */
enum db_qs shops_patch(struct db_conn *c, const char *id,
		       const struct shop_input *in, json_t **shop,
		       struct err *err);

/* True if s is an active ISO 4217 code. */
bool shops_currency_valid(const char *s);

extern const struct db_stmt shops_stmts[];

#endif
