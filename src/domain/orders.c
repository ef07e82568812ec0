/*
 * orders.c — orders, cancellations, refunds; see include/rebuy/orders.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/orders.h"

const struct db_stmt orders_stmts[] = {
	/* the shop's currency and the order if it exists: one round trip */
	{ "orders_find",
	  "SELECT s.currency, o.seq, o.fingerprint FROM shops s"
	  " LEFT JOIN orders o ON o.shop_id = s.id AND o.id = $2 WHERE s.id = $1" },
	/* a concurrent first order of the same new customer makes the
	 * statement see neither row: the transaction is then retried */
	{ "orders_customer",
	  "WITH ins AS (INSERT INTO customers (shop_id, id) VALUES ($1, $2)"
	  "   ON CONFLICT (shop_id, id) DO NOTHING RETURNING seq)"
	  " SELECT seq FROM ins UNION ALL"
	  " SELECT seq FROM customers WHERE shop_id = $1 AND id = $2 LIMIT 1" },
	{ "orders_insert",
	  "INSERT INTO orders (shop_id, id, customer_seq, placed_at, channel, currency,"
	  "  shipping, discount, total, fingerprint)"
	  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	  " ON CONFLICT (shop_id, id) DO NOTHING RETURNING seq" },
	{ "orders_lines_insert",
	  "INSERT INTO order_lines (order_seq, line_no, sku, name, category, role, quantity,"
	  "  unit_price, discount)"
	  " SELECT $1, x.n, x.sku, x.name, x.category, x.role, x.quantity, x.unit_price, x.discount"
	  " FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (sku text, name text, category text,"
	  "   role text, quantity bigint, unit_price bigint, discount bigint))"
	  "   WITH ORDINALITY AS x(sku, name, category, role, quantity, unit_price, discount, n)" },
	/* the facts, then the tier they may earn or lose ($2 cause, $3 order id) */
	{ "orders_facts_refresh",
	  "SELECT customer_facts_refresh($1), tier_evaluate($1, $2, $3)" },
	{ "orders_json", "SELECT order_json(o) FROM orders o WHERE o.seq = $1" },
	{ "orders_get",
	  "SELECT order_json(o) FROM orders o WHERE o.shop_id = $1 AND o.id = $2" },
	/* refunds and cancellations of one order queue on its row */
	{ "orders_lock",
	  "SELECT seq, customer_seq, total - refunded_amount, status FROM orders"
	  " WHERE shop_id = $1 AND id = $2 FOR UPDATE" },
	{ "orders_event",
	  "UPDATE orders SET"
	  " shipped_at = CASE WHEN $2 = 'shipped' THEN $3::timestamptz ELSE shipped_at END,"
	  " delivered_at = CASE WHEN $2 = 'delivered' THEN $3::timestamptz ELSE delivered_at END,"
	  " completed_at = CASE WHEN $2 = 'completed' THEN $3::timestamptz ELSE completed_at END"
	  " WHERE seq = $1" },
	/* an unknown customer_id matches nothing: an empty page, not an error */
	{ "orders_list",
	  "SELECT o.seq, order_json(o) FROM orders o"
	  " WHERE o.shop_id = $1 AND o.seq > $2"
	  "   AND ($3::text IS NULL OR o.customer_seq ="
	  "        (SELECT cu.seq FROM customers cu WHERE cu.shop_id = $1 AND cu.id = $3))"
	  "   AND ($4::text IS NULL OR o.channel = $4)"
	  "   AND ($5::text IS NULL OR o.status = $5)"
	  "   AND ($6::timestamptz IS NULL OR o.placed_at >= $6::timestamptz)"
	  "   AND ($7::timestamptz IS NULL OR o.placed_at < $7::timestamptz)"
	  " ORDER BY o.seq LIMIT $8" },
	{ "orders_customer_exists",
	  "SELECT 1 FROM customers WHERE shop_id = $1 AND id = $2" },
	{ "orders_cancel",
	  "UPDATE orders SET status = 'cancelled', cancelled_at = now()"
	  " WHERE seq = $1 AND status = 'placed'" },
	{ "orders_refund_find",
	  "SELECT amount, coalesce(reason, ''), reason IS NULL FROM refunds"
	  " WHERE order_seq = $1 AND id = $2" },
	{ "orders_refund_insert",
	  "INSERT INTO refunds (order_seq, id, amount, reason) VALUES ($1, $2, $3, $4)" },
	{ "orders_refund_apply",
	  "UPDATE orders SET refunded_amount = refunded_amount + $2 WHERE seq = $1" },
	{ "orders_refund_json",
	  "SELECT json_build_object('refund', json_build_object('id', r.id, 'amount', r.amount,"
	  "   'reason', r.reason, 'created_at', rfc3339(r.created_at)), 'order', order_json(o))"
	  " FROM refunds r JOIN orders o ON o.seq = r.order_seq"
	  " WHERE r.order_seq = $1 AND r.id = $2" },
	{ "orders_refresh_shop",
	  "SELECT customer_facts_refresh_many(ARRAY(SELECT seq FROM customers"
	  " WHERE shop_id = $1))" },
	/* each its own transaction: one family's failure does not undo the others' */
	{ "orders_fold_facts_cells", "SELECT facts_cells_compact()" },
	{ "orders_fold_occasion_cells", "SELECT occasion_cells_compact()" },
	{ "orders_fold_first_cells", "SELECT first_cells_compact()" },
	{ "orders_verify_cells",
	  "SELECT shop_id, what, detail FROM facts_cells_verify($1)"
	  " UNION ALL SELECT shop_id, what, detail FROM occasion_cells_verify($1)"
	  " UNION ALL SELECT shop_id, what, detail FROM first_cells_verify($1) ORDER BY 1, 2, 3" },
	{ "orders_verify",
	  "SELECT shop_id, id, stored::text, computed::text FROM ("
	  "  SELECT c.shop_id, c.id, customer_facts_stored(c.seq) AS stored,"
	  "         customer_facts_compute(c.seq) AS computed"
	  "  FROM customers c WHERE $1::uuid IS NULL OR c.shop_id = $1) x"
	  " WHERE stored IS DISTINCT FROM computed ORDER BY shop_id, id" },
	{ NULL, NULL },
};

/* After a change to order_id (cause order, cancel or refund). */
static enum db_qs
refresh_facts(struct db_conn *c, const char *customer_seq, const char *cause,
	      const char *order_id)
{
	const char *params[3] = { customer_seq, cause, order_id };
	enum db_qs qs = db_exec_none(c, "orders_facts_refresh", 3, params);

	return qs < 0 ? qs : DB_ONE_RESULT;
}

enum db_qs
orders_put(struct db_conn *c, const char *shop_id, const char *id,
	   const struct order_input *in, char **order, bool *created, struct err *err)
{
	const char *key[2] = { shop_id, id };
	char shipping[24], discount[24], total[24], *seq = NULL, *customer = NULL;
	PGresult *r;
	enum db_qs qs;

	*order = NULL;
	*created = false;
	qs = db_exec(c, "orders_find", 2, key, &r);
	if (qs <= 0) {
		PQclear(r);
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 0), in->currency) != 0) {
		err_set(err, ERR_VALIDATION, "/currency",
			"/currency: the shop trades in %s, not %s", PQgetvalue(r, 0, 0),
			in->currency);
		PQclear(r);
		qs = DB_ABORT;
		goto out;
	}
	if (!PQgetisnull(r, 0, 1)) { /* a resend: the same order, or a conflict */
		bool same = strcmp(PQgetvalue(r, 0, 2), in->fingerprint) == 0;
		const char *p[1] = { PQgetvalue(r, 0, 1) };

		if (!same) {
			PQclear(r);
			err_set(err, ERR_ORDER_CONFLICT, NULL,
				"order %s was already received with different content", id);
			qs = DB_ABORT;
			goto out;
		}
		qs = db_exec_text(c, "orders_json", 1, p, order);
		PQclear(r);
		goto out;
	}
	PQclear(r);
	{
		const char *p[2] = { shop_id, in->customer_id };

		qs = db_exec_text(c, "orders_customer", 2, p, &customer);
		if (qs == 0)
			qs = DB_SOFT_ERROR; /* created concurrently: retry sees it */
		if (qs < 0)
			goto out;
	}
	snprintf(shipping, sizeof shipping, "%lld", in->shipping);
	snprintf(discount, sizeof discount, "%lld", in->discount);
	snprintf(total, sizeof total, "%lld", in->total);
	{
		const char *p[10] = { shop_id, id, customer, in->placed_at, in->channel,
				      in->currency, shipping, discount, total, in->fingerprint };

		qs = db_exec_text(c, "orders_insert", 10, p, &seq);
		if (qs == 0)
			qs = DB_SOFT_ERROR; /* same id inserted concurrently: retry */
		if (qs < 0)
			goto out;
	}
	{
		const char *p[2] = { seq, in->lines_json };

		qs = db_exec_none(c, "orders_lines_insert", 2, p);
		if (qs < 0)
			goto out;
	}
	qs = refresh_facts(c, customer, "order", id);
	if (qs < 0)
		goto out;
	{
		const char *p[1] = { seq };

		qs = db_exec_text(c, "orders_json", 1, p, order);
	}
	*created = qs > 0;
out:
	free(seq);
	free(customer);
	return qs;
}

enum db_qs
orders_get(struct db_conn *c, const char *shop_id, const char *id, char **order)
{
	const char *p[2] = { shop_id, id };

	return db_exec_text(c, "orders_get", 2, p, order);
}

enum db_qs
orders_cancel(struct db_conn *c, const char *shop_id, const char *id, char **order)
{
	const char *key[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs;

	*order = NULL;
	qs = db_exec(c, "orders_lock", 2, key, &r);
	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	{
		const char *p[1] = { PQgetvalue(r, 0, 0) };

		qs = db_exec_none(c, "orders_cancel", 1, p);
		if (qs > 0) /* it was placed: the customer's facts change */
			qs = refresh_facts(c, PQgetvalue(r, 0, 1), "cancel", id);
		if (qs >= 0)
			qs = db_exec_text(c, "orders_json", 1, p, order);
	}
	PQclear(r);
	return qs;
}

enum db_qs
orders_refund(struct db_conn *c, const char *shop_id, const char *order_id,
	      const struct refund_input *in, char **result, bool *created,
	      struct err *err)
{
	const char *key[2] = { shop_id, order_id };
	char amount[24];
	PGresult *r, *f = NULL;
	enum db_qs qs;
	long long refundable;

	*result = NULL;
	*created = false;
	snprintf(amount, sizeof amount, "%lld", in->amount);
	qs = db_exec(c, "orders_lock", 2, key, &r);
	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	const char *seq = PQgetvalue(r, 0, 0);
	const char *find[2] = { seq, in->id };

	refundable = atoll(PQgetvalue(r, 0, 2));
	qs = db_exec(c, "orders_refund_find", 2, find, &f);
	if (qs < 0)
		goto out;
	if (qs > 0) { /* the same refund again, or a reused id */
		bool same = strcmp(PQgetvalue(f, 0, 0), amount) == 0 &&
			    (PQgetvalue(f, 0, 2)[0] == 't' ? in->reason == NULL
			     : in->reason && strcmp(PQgetvalue(f, 0, 1), in->reason) == 0);

		if (!same) {
			err_set(err, ERR_REFUND_CONFLICT, NULL,
				"refund %s was already recorded with different content", in->id);
			qs = DB_ABORT;
			goto out;
		}
		qs = db_exec_text(c, "orders_refund_json", 2, find, result);
		goto out;
	}
	if (in->amount > refundable) {
		err_set(err, ERR_VALIDATION, "/amount",
			"/amount: exceeds what is left to refund on this order (%lld)", refundable);
		qs = DB_ABORT;
		goto out;
	}
	{
		const char *ins[4] = { seq, in->id, amount, in->reason };
		const char *apply[2] = { seq, amount };

		qs = db_exec_none(c, "orders_refund_insert", 4, ins);
		if (qs >= 0)
			qs = db_exec_none(c, "orders_refund_apply", 2, apply);
		if (qs >= 0)
			qs = refresh_facts(c, PQgetvalue(r, 0, 1), "refund", order_id);
		if (qs >= 0)
			qs = db_exec_text(c, "orders_refund_json", 2, find, result);
		*created = qs > 0;
	}
out:
	PQclear(f);
	PQclear(r);
	return qs;
}

enum db_qs
orders_event(struct db_conn *c, const char *shop_id, const char *id, const char *type,
	     const char *at, char **order, struct err *err)
{
	const char *key[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs;

	*order = NULL;
	qs = db_exec(c, "orders_lock", 2, key, &r);
	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	if (strcmp(PQgetvalue(r, 0, 3), "cancelled") == 0) {
		err_set(err, ERR_ORDER_CANCELLED, NULL,
			"order %s is cancelled: it is not shipped, delivered or completed", id);
		PQclear(r);
		return DB_ABORT;
	}
	{
		const char *p[3] = { PQgetvalue(r, 0, 0), type, at };

		qs = db_exec_none(c, "orders_event", 3, p);
		if (qs >= 0)
			qs = db_exec_text(c, "orders_json", 1, p, order);
	}
	PQclear(r);
	return qs;
}

enum db_qs
orders_list(struct db_conn *c, const char *shop_id, const struct order_filter *f,
	    char **items, long long *next)
{
	char after[24], limit[16];
	const char *p[8] = { shop_id, after, f->customer_id, f->channel, f->status,
			     f->placed_after, f->placed_before, limit };
	PGresult *r;
	enum db_qs qs;
	int rows;

	snprintf(after, sizeof after, "%lld", f->after);
	snprintf(limit, sizeof limit, "%d", f->limit + 1); /* +1: is there more? */
	*next = 0;
	*items = NULL;
	qs = db_exec(c, "orders_list", 8, p, &r);
	if (qs < 0)
		return qs;
	rows = (int)qs > f->limit ? f->limit : (int)qs;
	*items = db_json_array(r, 1, rows);
	if ((int)qs > f->limit)
		*next = atoll(PQgetvalue(r, rows - 1, 0));
	PQclear(r);
	return *items ? qs : DB_HARD_ERROR;
}

enum db_qs
orders_customer_exists(struct db_conn *c, const char *shop_id, const char *customer_id)
{
	const char *p[2] = { shop_id, customer_id };

	return db_exec_none(c, "orders_customer_exists", 2, p);
}

enum db_qs
orders_refresh_shop(struct db_conn *c, const char *shop_id)
{
	const char *p[1] = { shop_id };
	/*
	 * every customer of the shop in the request's transaction: for a big
	 * shop (and a merge window, computed customer by customer) longer than
	 * the API's statement limit
	 */
	enum db_qs qs = db_untimed(c);

	return qs < 0 ? qs : db_exec_none(c, "orders_refresh_shop", 1, p);
}

enum db_qs
orders_verify(struct db_conn *c, const char *shop_id,
	      void (*report)(const char *shop, const char *customer,
			     const char *stored, const char *computed))
{
	const char *p[1] = { shop_id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "orders_verify", 1, p, &r);

	for (int i = 0; qs > 0 && i < (int)qs; i++)
		report(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		       PQgetvalue(r, i, 3));
	PQclear(r);
	return qs;
}

enum db_qs
orders_verify_cells(struct db_conn *c, const char *shop_id,
		    void (*report)(const char *shop, const char *what, const char *detail))
{
	return db_verify(c, "orders_verify_cells", shop_id, report);
}

int
orders_fold_cells(struct db_conn *c)
{
	static const char *const stmts[] = {
		"orders_fold_facts_cells", "orders_fold_occasion_cells", "orders_fold_first_cells",
	};
	int folded = 0;
	bool failed = false;

	for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
		char *text = NULL;
		enum db_qs qs = db_exec_text(c, stmts[i], 0, NULL, &text);

		if (qs > 0 && text)
			folded += atoi(text);
		else
			failed = true;
		free(text);
	}
	return failed ? -1 : folded;
}
