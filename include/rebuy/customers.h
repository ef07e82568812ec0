/*
 * customers.h — a shop's customers, addressed by the storefront's own id.
 */
#ifndef REBUY_CUSTOMERS_H
#define REBUY_CUSTOMERS_H

#include <stdbool.h>
#include <jansson.h>
#include "rebuy/db.h"

enum customer_channel { CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_WECHAT, CHANNEL__COUNT };

extern const char *const customer_channel_names[CHANNEL__COUNT];

struct customer_input {
	const char *name, *email, *phone; /* NULL = none */
	json_t *tags;                     /* array of strings, borrowed */
	/*
	 * The JSON text of an object whose "attributes" member (if any) is
	 * stored: PostgreSQL reads the numbers as the client wrote them, where
	 * a round trip through doubles would turn 0.1 into 0.10000000000000001.
	 */
	const char *attributes_doc;
	struct {
		bool granted;
		const char *at;           /* RFC 3339 or NULL = now on change */
	} consent[CHANNEL__COUNT];
};

struct customer_filter {
	const char *tag;            /* NULL = any */
	int consent;                /* enum customer_channel or -1 */
	const char *created_after;  /* inclusive, NULL = open */
	const char *created_before; /* exclusive, NULL = open */
	long long after;            /* cursor: position after which to list */
	int limit;
};

/* A storefront id: 1–128 chars of [A-Za-z0-9._:@-]. */
bool customers_id_valid(const char *id);

/* The same as a jv check: NULL, or what a storefront id must be. */
const char *customers_check_id(const char *id);

/*
 * Customer objects come back as the JSON text PostgreSQL rendered
 * (malloc'd): free-form attributes keep their numbers exactly.
 */

/* Create or replace; *created tells which.  Inside a transaction. */
enum db_qs customers_put(struct db_conn *c, const char *shop_id,
			 const char *id, const struct customer_input *in,
			 char **customer, bool *created);

enum db_qs customers_get(struct db_conn *c, const char *shop_id,
			 const char *id, char **customer);

/* Erase personal data, keep the row.  DB_NO_RESULTS if absent. */
enum db_qs customers_erase(struct db_conn *c, const char *shop_id,
			   const char *id);

/* One page as a JSON array text; *next is the next position or 0 at the end. */
enum db_qs customers_list(struct db_conn *c, const char *shop_id,
			  const struct customer_filter *f, char **items,
			  long long *next);

/*
 * Lock a (non-erased) customer's row for a write that must queue with the
 * customer's other writes (order changes, benefit uses, tier assignment):
 * *seq is its seq as text (malloc'd).  DB_NO_RESULTS: no such customer.
 */
enum db_qs customers_lock(struct db_conn *c, const char *shop_id, const char *id, char **seq);

extern const struct db_stmt customers_stmts[];

#endif
