/*
 * orders.h — orders, cancellations and refunds, and the repurchase facts
 * they keep current.
 *
 * Every change recomputes the customer's facts from its orders in the same
 * transaction (customer_facts_refresh in migrations/0002_orders.sql), so
 * the stored facts equal a full recomputation whatever order the orders
 * arrived in.  Order objects come back as PostgreSQL's JSON text (malloc'd).
 */
#ifndef REBUY_ORDERS_H
#define REBUY_ORDERS_H

#include <stdbool.h>
#include "rebuy/db.h"

struct order_input {
	const char *customer_id;
	const char *placed_at;   /* RFC 3339 */
	const char *channel;
	const char *currency;
	const char *lines_json;  /* JSON array of lines, defaults filled in */
	long long shipping, discount, total;
	const char *fingerprint; /* SHA-256 hex of the canonical body */
};

/* The PUT /v1/orders/{id} body rules (jv). */
#include <jansson.h>
#include "rebuy/jv.h"
extern const struct jv_field orders_body_spec[];

/* A validated order: in points into the body and into this struct. */
struct order_parsed {
	struct order_input in;
	char *canon;       /* owned: the canonical text, cut after the lines once hashed */
	char placed[28];   /* placed_at as canonical UTC */
	char fingerprint[65];
};

/*
 * Check an order body that passed orders_body_spec: the arithmetic, then
 * build the canonical form and its fingerprint.  False with err
 * (ERR_VALIDATION and a pointer) if the order is not valid.  Free with
 * orders_parsed_free; the body must outlive *out.
 */
bool orders_parse(const json_t *body, struct order_parsed *out, struct err *err);
void orders_parsed_free(struct order_parsed *p);

struct refund_input {
	const char *id;
	long long amount;
	const char *reason;      /* NULL = none */
};

/*
 * Create, or recognise a resend.  *created tells which.  DB_ABORT with
 * ERR_VALIDATION (/currency) or ERR_ORDER_CONFLICT.  Inside a transaction.
 */
enum db_qs orders_put(struct db_conn *c, const char *shop_id, const char *id,
		      const struct order_input *in, char **order, bool *created,
		      struct err *err);

enum db_qs orders_get(struct db_conn *c, const char *shop_id, const char *id,
		      char **order);

/* Cancel (idempotent).  DB_NO_RESULTS if absent.  Inside a transaction. */
enum db_qs orders_cancel(struct db_conn *c, const char *shop_id, const char *id,
			 char **order);

/*
 * Record a refund: *result is {"refund":…, "order":…}.  DB_NO_RESULTS if
 * the order is absent; DB_ABORT with ERR_VALIDATION (/amount) when it
 * would exceed the total, ERR_REFUND_CONFLICT for a reused refund id.
 */
enum db_qs orders_refund(struct db_conn *c, const char *shop_id,
			 const char *order_id, const struct refund_input *in,
			 char **result, bool *created, struct err *err);

/*
 * Record a fulfilment event (shipped, delivered, completed) at time at.
 * DB_NO_RESULTS if absent; DB_ABORT with ERR_ORDER_CANCELLED.
 */
enum db_qs orders_event(struct db_conn *c, const char *shop_id, const char *id,
			const char *type, const char *at, char **order, struct err *err);

struct order_filter {
	const char *customer_id, *channel, *status; /* NULL = any */
	const char *placed_after;  /* inclusive, NULL = open */
	const char *placed_before; /* exclusive, NULL = open */
	long long after;           /* cursor position */
	int limit;
};

/* One page as a JSON array text; *next is the next position or 0. */
enum db_qs orders_list(struct db_conn *c, const char *shop_id,
		       const struct order_filter *f, char **items, long long *next);

/* DB_ONE_RESULT if the customer exists in the shop. */
enum db_qs orders_customer_exists(struct db_conn *c, const char *shop_id,
				  const char *customer_id);

/* Recompute the facts of every customer of a shop (after a rule change). */
enum db_qs orders_refresh_shop(struct db_conn *c, const char *shop_id);

/*
 * Compare stored facts with a recomputation for one shop (NULL = all);
 * each difference is passed to report.  Returns the number of differences
 * (DB status), or a negative status.
 */
enum db_qs orders_verify(struct db_conn *c, const char *shop_id,
			 void (*report)(const char *shop, const char *customer,
					const char *stored, const char *computed));

/*
 * The histograms kept with the facts (migration 0018: RFM cells, spend
 * buckets, second-purchase intervals; 0019: occasions per day, per pair
 * and per cohort day; 0020: customers per first and second purchase day)
 * that differ from the facts, one by one, for rebuyd verify; returns their
 * number.
 */
enum db_qs orders_verify_cells(struct db_conn *c, const char *shop_id,
			       void (*report)(const char *shop, const char *what,
					      const char *detail));

/*
 * Fold the histograms' pending deltas (rebuyd's minute janitor; readers add
 * what is not folded, so this only keeps them few), each family of
 * histograms in its own transaction.  Returns how many were folded, -1 if
 * any family's fold failed (the others' stand).
 */
int orders_fold_cells(struct db_conn *c);

extern const struct db_stmt orders_stmts[];

#endif
