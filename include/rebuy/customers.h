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
	json_t *attributes;               /* object, borrowed */
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

/* Create or replace; *created tells which.  Inside a transaction. */
enum db_qs customers_put(struct db_conn *c, const char *shop_id,
			 const char *id, const struct customer_input *in,
			 json_t **customer, bool *created);

/* *customer is the Customer object as JSON text (malloc'd). */
enum db_qs customers_get(struct db_conn *c, const char *shop_id,
			 const char *id, char **customer);

/* Erase personal data, keep the row.  DB_NO_RESULTS if absent. */
enum db_qs customers_erase(struct db_conn *c, const char *shop_id,
			   const char *id);

/* One page; *next is the cursor for the next page or 0 at the end. */
enum db_qs customers_list(struct db_conn *c, const char *shop_id,
			  const struct customer_filter *f, json_t **items,
			  long long *next);

extern const struct db_stmt customers_stmts[];

#endif
