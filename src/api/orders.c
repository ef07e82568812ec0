/*
 * orders.c — PUT/GET /v1/orders/{id}, POST /v1/orders/{id}/cancel,
 * POST /v1/orders/{id}/refunds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rebuy/api.h"
#include "rebuy/customers.h"
#include "rebuy/keys.h"
#include "rebuy/orders.h"
#include "rebuy/reply.h"

static const struct jv_field refund_spec[] = {
	{ .name = "id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = customers_check_id },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = INT64_MAX },
	{ .name = "reason", .kind = JV_STRING, .min = 1, .max = 200 },
	{ .name = NULL },
};

struct order_call {
	const char *shop_id, *id;
	struct order_input in;
	struct refund_input refund;
};

static bool
order_path(struct request *req, const char **id)
{
	*id = req->params[0];
	if (!customers_id_valid(*id)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/path/id",
			    "order id %s", customers_check_id(*id));
		return false;
	}
	return true;
}

/* An absent order is a 404 for every call under /v1/orders/{id}. */
static enum db_qs
order_absent(struct err *err)
{
	err_set(err, ERR_NOT_FOUND, NULL, "order not found");
	return DB_ABORT;
}

static json_int_t
int_or(const json_t *obj, const char *name, json_int_t fallback)
{
	json_t *v = json_object_get(obj, name);

	return v ? json_integer_value(v) : fallback;
}

static enum db_qs
put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct order_call *call = cls;
	bool created = false;
	enum db_qs qs = orders_put(c, call->shop_id, call->id, &call->in, &out->raw,
				   &created, err);

	if (qs < 0)
		return qs;
	out->status = created ? 201 : 200;
	if (created)
		snprintf(out->location, sizeof out->location, "/v1/orders/%s", call->id);
	return qs;
}

void
api_orders_put(struct request *req)
{
	struct order_call call = { .shop_id = req->shop_id };
	struct order_parsed parsed = { 0 };
	struct err err;
	json_t *body;

	if (!order_path(req, &call.id))
		return;
	body = api_body(req, orders_body_spec);
	if (!body)
		return;
	if (!orders_parse(body, &parsed, &err)) {
		reply_problem(req, &err);
	} else {
		call.in = parsed.in;
		api_run(req, put, &call);
	}
	orders_parsed_free(&parsed);
	json_decref(body);
}

static enum db_qs
get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct order_call *call = cls;
	enum db_qs qs = orders_get(c, call->shop_id, call->id, &out->raw);

	if (qs == 0)
		return order_absent(err);
	out->status = 200;
	return qs;
}

void
api_orders_get(struct request *req)
{
	struct order_call call = { .shop_id = req->shop_id };

	if (!order_path(req, &call.id))
		return;
	api_run(req, get, &call);
}

static enum db_qs
cancel(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct order_call *call = cls;
	enum db_qs qs = orders_cancel(c, call->shop_id, call->id, &out->raw);

	if (qs == 0)
		return order_absent(err);
	out->status = 200;
	return qs;
}

void
api_orders_cancel(struct request *req)
{
	struct order_call call = { .shop_id = req->shop_id };

	if (!order_path(req, &call.id))
		return;
	api_run(req, cancel, &call);
}

static enum db_qs
refund(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct order_call *call = cls;
	bool created = false;
	enum db_qs qs = orders_refund(c, call->shop_id, call->id, &call->refund, &out->raw,
				      &created, err);

	if (qs == 0)
		return order_absent(err);
	out->status = created ? 201 : 200;
	if (created)
		snprintf(out->location, sizeof out->location, "/v1/orders/%s", call->id);
	return qs;
}

void
api_orders_refund(struct request *req)
{
	struct order_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!order_path(req, &call.id))
		return;
	body = api_body(req, refund_spec);
	if (!body)
		return;
	call.refund.id = api_str(body, "id");
	call.refund.amount = int_or(body, "amount", 0);
	call.refund.reason = api_str(body, "reason");
	api_run(req, refund, &call);
	json_decref(body);
}

static const char *
check_event_type(const char *s)
{
	if (strcmp(s, "shipped") == 0 || strcmp(s, "delivered") == 0 ||
	    strcmp(s, "completed") == 0)
		return NULL;
	return "must be one of shipped, delivered, completed";
}

static const struct jv_field event_spec[] = {
	{ .name = "type", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 20,
	  .check = check_event_type },
	{ .name = "at", .kind = JV_TIMESTAMP, .flags = JV_REQUIRED },
	{ .name = NULL },
};

struct event_call {
	const char *shop_id, *id, *type, *at;
};

static enum db_qs
event(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct event_call *call = cls;
	enum db_qs qs = orders_event(c, call->shop_id, call->id, call->type, call->at,
				     &out->raw, err);

	if (qs == 0)
		return order_absent(err);
	out->status = 200;
	return qs;
}

void
api_orders_event(struct request *req)
{
	struct event_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!order_path(req, &call.id))
		return;
	body = api_body(req, event_spec);
	if (!body)
		return;
	call.type = api_str(body, "type");
	call.at = api_str(body, "at");
	api_run(req, event, &call);
	json_decref(body);
}

struct list_call {
	const char *shop_id;
	struct order_filter filter;
	bool customer_must_exist;
};

static enum db_qs
list(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct list_call *call = cls;
	long long next = 0;
	char *items = NULL;
	enum db_qs qs;

	if (call->customer_must_exist) {
		qs = orders_customer_exists(c, call->shop_id, call->filter.customer_id);
		if (qs == 0) {
			err_set(err, ERR_NOT_FOUND, NULL, "customer not found");
			return DB_ABORT;
		}
		if (qs < 0)
			return qs;
	}
	qs = orders_list(c, call->shop_id, &call->filter, &items, &next);
	return qs < 0 ? qs : api_page_reply(out, items, next, qs);
}

static const char *
check_status(const char *s)
{
	return strcmp(s, "placed") == 0 || strcmp(s, "cancelled") == 0
		       ? NULL : "must be placed or cancelled";
}

static const char *
check_timestamp(const char *s)
{
	return jv_is_timestamp(s) ? NULL : "must be an RFC 3339 date-time";
}

void
api_orders_list(struct request *req)
{
	struct list_call call = { .shop_id = req->shop_id };
	struct order_filter *f = &call.filter;

	if (!api_page_params(req, &f->limit, &f->after) ||
	    !api_query_param(req, "customer_id", customers_check_id, 128, &f->customer_id) ||
	    !api_query_param(req, "channel", jv_check_token, 64, &f->channel) ||
	    !api_query_param(req, "status", check_status, 20, &f->status) ||
	    !api_query_param(req, "placed_after", check_timestamp, 40, &f->placed_after) ||
	    !api_query_param(req, "placed_before", check_timestamp, 40, &f->placed_before))
		return;
	api_run(req, list, &call);
}

void
api_customer_orders_list(struct request *req)
{
	struct list_call call = { .shop_id = req->shop_id, .customer_must_exist = true };

	call.filter.customer_id = req->params[0];
	if (!customers_id_valid(call.filter.customer_id)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/path/id",
			    "customer id %s",
			    customers_check_id(call.filter.customer_id));
		return;
	}
	if (!api_page_params(req, &call.filter.limit, &call.filter.after))
		return;
	api_run(req, list, &call);
}

/*
 * POST /v1/orders/bulk: NDJSON, one order per line (the PUT body plus
 * "id"), each line handled like PUT /v1/orders/{id} in its own
 * transaction, so one bad line never undoes the others.  Every line is
 * idempotent by its order id, which is why no Idempotency-Key is needed.
 */
#define BULK_MAX_LINES 1000

struct bulk_line {
	const char *shop_id, *id;
	struct order_input in;
	char *raw;
	bool created;
};

static enum db_qs
bulk_put(struct db_conn *c, void *cls, struct err *err)
{
	struct bulk_line *b = cls;

	free(b->raw); /* a retried transaction starts over */
	b->raw = NULL;
	return orders_put(c, b->shop_id, b->id, &b->in, &b->raw, &b->created, err);
}

static bool
is_ndjson(const char *ct)
{
	static const char *const types[] = { "application/x-ndjson" };

	for (size_t i = 0; ct && i < sizeof types / sizeof types[0]; i++) {
		size_t n = strlen(types[i]);

		if (strncasecmp(ct, types[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';'))
			return true;
	}
	return false;
}

/* Handle one line; the result object describes what happened to it. */
static json_t *
bulk_one(struct db_conn *c, const char *shop_id, char *line, size_t len, size_t lineno)
{
	struct bulk_line b = { .shop_id = shop_id };
	struct order_parsed p = { 0 };
	json_error_t jerr;
	json_t *body = NULL, *res;
	struct err err;
	char *id = NULL;

	err_clear(&err);
	res = json_pack("{s:I, s:n}", "line", (json_int_t)lineno, "id");
	if (jv_depth(line, len) > 32) {
		err_set(&err, ERR_MALFORMED_JSON, NULL, "JSON nesting deeper than 32 levels");
		goto out;
	}
	body = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!body) {
		err_set(&err, ERR_MALFORMED_JSON, NULL, "invalid JSON at column %d: %s", jerr.column,
			jerr.text);
		goto out;
	}
	if (!json_is_object(body)) {
		err_set(&err, ERR_VALIDATION, "", "body: must be an object");
		goto out;
	}
	if (json_is_string(json_object_get(body, "id"))) {
		id = strdup(json_string_value(json_object_get(body, "id")));
		json_object_set_new(res, "id", json_string(id));
	}
	if (!id || !customers_id_valid(id)) {
		err_set(&err, ERR_VALIDATION, "/id",
			"/id: %s", customers_check_id(id ? id : ""));
		goto out;
	}
	json_object_del(body, "id");
	if (!jv_validate(body, orders_body_spec, "", &err) || !orders_parse(body, &p, &err))
		goto out;
	b.id = id;
	b.in = p.in;
	if (db_run_tx(c, "/v1/orders/bulk", bulk_put, &b, &err))
		json_object_set_new(res, "status", json_integer(b.created ? 201 : 200));
out:
	if (err.code != ERR_NONE) {
		err_utf8_clean(err.message);
		json_object_set_new(res, "status", json_integer(reply_status_of(err.code)));
		json_object_set_new(res, "code", json_string(reply_code_of(err.code)));
		json_object_set_new(res, "detail", json_string(err.message));
		if (err.pointer[0]) {
			err_utf8_clean(err.pointer);
			json_object_set_new(res, "pointer", json_string(err.pointer));
		}
	}
	orders_parsed_free(&p);
	free(b.raw);
	free(id);
	json_decref(body);
	return res;
}

void
api_orders_bulk(struct request *req)
{
	struct db_conn *c;
	struct err err;
	json_t *results, *out;
	size_t lines = 0, created = 0, unchanged = 0, failed = 0, lineno = 0;
	char *p, *end;

	if (!is_ndjson(request_header(req, "Content-Type"))) {
		reply_error(req, ERR_UNSUPPORTED_MEDIA_TYPE, "/header/Content-Type",
			    "send one order per line as Content-Type: application/x-ndjson");
		return;
	}
	for (p = req->body, end = p ? p + req->body_len : NULL; p && p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (strspn(p, " \t\r") < n)
			lines++;
		p += n + 1;
	}
	if (lines == 0) {
		reply_error(req, ERR_MALFORMED_JSON, NULL, "request body has no orders");
		return;
	}
	if (lines > BULK_MAX_LINES) {
		reply_error(req, ERR_PAYLOAD_TOO_LARGE, NULL, "at most %d orders per request, got %zu",
			    BULK_MAX_LINES, lines);
		return;
	}
	err_clear(&err);
	c = db_thread_conn(&err);
	if (!c) {
		reply_problem(req, &err);
		return;
	}
	db_mark_busy(true);
	if (!api_test_clock_begin(req, c, &err)) {
		db_release(c);
		db_mark_busy(false);
		reply_problem(req, &err);
		return;
	}
	results = json_array();
	for (p = req->body; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *r;
		json_int_t st;

		lineno++;
		if (strspn(p, " \t\r") >= n) {
			p += n + 1;
			continue;
		}
		r = bulk_one(c, req->shop_id, p, n, lineno);
		st = json_integer_value(json_object_get(r, "status"));
		created += st == 201;
		unchanged += st == 200;
		failed += st != 201 && st != 200;
		json_array_append_new(results, r);
		p += n + 1;
	}
	api_test_clock_end(req, c);
	db_release(c);
	db_mark_busy(false);
	out = json_pack("{s:o, s:I, s:I, s:I}", "results", results, "created", (json_int_t)created,
			"unchanged", (json_int_t)unchanged, "failed", (json_int_t)failed);
	reply_json(req, 200, out);
}
