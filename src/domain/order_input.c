/*
 * order_input.c — what a valid order is: the field rules, the arithmetic,
 * and the canonical form whose SHA-256 identifies an order's content.
 * The HTTP API and the history import both validate through here, so an
 * order is accepted or refused for the same reasons whichever way it came.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/customers.h"
#include "rebuy/jv.h"
#include "rebuy/keys.h"
#include "rebuy/orders.h"

#define MONEY_MAX 1000000000000LL /* 10^12 minor units on one price or fee */

static const char *
check_role(const char *s)
{
	if (strcmp(s, "traffic") == 0 || strcmp(s, "activity") == 0 ||
	    strcmp(s, "regular") == 0)
		return NULL;
	return "must be one of traffic, activity, regular";
}

static const struct jv_field line_fields[] = {
	{ .name = "sku", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = "name", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 200 },
	{ .name = "category", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64,
	  .check = jv_check_token },
	{ .name = "role", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 20,
	  .check = check_role },
	{ .name = "quantity", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = 1000000 },
	{ .name = "unit_price", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = MONEY_MAX },
	{ .name = "discount", .kind = JV_INTEGER, .min = 0, .max = MONEY_MAX * 1000000 },
	{ .name = NULL },
};

static const struct jv_field line_spec = { .kind = JV_OBJECT, .fields = line_fields };

const struct jv_field orders_body_spec[] = {
	{ .name = "customer_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = customers_check_id },
	{ .name = "placed_at", .kind = JV_TIMESTAMP, .flags = JV_REQUIRED },
	{ .name = "channel", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64,
	  .check = jv_check_token },
	{ .name = "currency", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 3, .max = 3 },
	{ .name = "lines", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 1, .max = 200,
	  .items = &line_spec },
	{ .name = "shipping", .kind = JV_INTEGER, .min = 0, .max = MONEY_MAX },
	{ .name = "discount", .kind = JV_INTEGER, .min = 0, .max = INT64_MAX },
	/* any int64: an impossible total fails the arithmetic check instead */
	{ .name = "total", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = INT64_MAX },
	{ .name = NULL },
};

static json_int_t
int_or(const json_t *obj, const char *name, json_int_t fallback)
{
	json_t *v = json_object_get(obj, name);

	return v ? json_integer_value(v) : fallback;
}

/*
 * Check the arithmetic and build the canonical form: defaults filled in,
 * keys sorted.  Its SHA-256 is the order's fingerprint, so a resend with
 * other key order or omitted defaults is still the same order.
 */
static json_t *
canonical_order(const json_t *body, const char *placed_utc, struct err *err)
{
	json_t *lines = json_array(), *canon = NULL, *src = json_object_get(body, "lines");
	long long sum = 0, shipping = int_or(body, "shipping", 0),
		  discount = int_or(body, "discount", 0), total = int_or(body, "total", 0);
	size_t i;
	json_t *l;

	if (!lines)
		return NULL;
	json_array_foreach(src, i, l) {
		long long q = int_or(l, "quantity", 0), p = int_or(l, "unit_price", 0),
			  d = int_or(l, "discount", 0), amount = q * p; /* ≤ 10^18 */
		char ptr[48];

		if (d > amount) {
			snprintf(ptr, sizeof ptr, "/lines/%zu/discount", i);
			err_set(err, ERR_VALIDATION, ptr, "%s: exceeds the line amount (%lld)", ptr,
				amount);
			goto fail;
		}
		if (__builtin_add_overflow(sum, amount - d, &sum)) {
			err_set(err, ERR_VALIDATION, "/lines", "/lines: amounts too large");
			goto fail;
		}
		json_array_append_new(lines, json_pack("{s:O, s:O, s:O, s:O, s:I, s:I, s:I}",
			"sku", json_object_get(l, "sku"),
			"name", json_object_get(l, "name") ? json_object_get(l, "name") : json_null(),
			"category", json_object_get(l, "category"), "role", json_object_get(l, "role"),
			"quantity", (json_int_t)q, "unit_price", (json_int_t)p, "discount", (json_int_t)d));
	}
	if (__builtin_add_overflow(sum, shipping, &sum) || sum - discount < 0 ||
	    sum - discount != total) {
		err_set(err, ERR_VALIDATION, "/total",
			"/total: must equal lines - line discounts + shipping - discount = %lld",
			sum - discount);
		goto fail;
	}
	canon = json_pack("{s:O, s:o, s:O, s:O, s:O, s:I, s:I, s:I}",
			  "customer_id", json_object_get(body, "customer_id"),
			  "placed_at", json_string(placed_utc),
			  "channel", json_object_get(body, "channel"),
			  "currency", json_object_get(body, "currency"), "lines", lines,
			  "shipping", (json_int_t)shipping, "discount", (json_int_t)discount,
			  "total", (json_int_t)total);
	if (!canon)
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
fail:
	json_decref(lines);
	return canon;
}

bool
orders_parse(const json_t *body, struct order_parsed *out, struct err *err)
{
	json_t *canon = NULL;
	char *canon_text = NULL;
	bool ok = false;

	memset(out, 0, sizeof *out);
	/* one instant, one fingerprint, whatever offset it was written with */
	if (!jv_timestamp_utc(json_string_value(json_object_get(body, "placed_at")), out->placed)) {
		err_set(err, ERR_VALIDATION, "/placed_at", "/placed_at: not a valid date-time");
		goto out;
	}
	canon = canonical_order(body, out->placed, err);
	if (!canon)
		goto out;
	canon_text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	out->lines_json = json_dumps(json_object_get(canon, "lines"), JSON_COMPACT);
	if (!canon_text || !out->lines_json) {
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	keys_sha256_hex(canon_text, strlen(canon_text), out->fingerprint);
	out->in = (struct order_input){
		.customer_id = json_string_value(json_object_get(body, "customer_id")),
		.placed_at = out->placed,
		.channel = json_string_value(json_object_get(body, "channel")),
		.currency = json_string_value(json_object_get(body, "currency")),
		.lines_json = out->lines_json,
		.shipping = int_or(body, "shipping", 0),
		.discount = int_or(body, "discount", 0),
		.total = int_or(body, "total", 0),
		.fingerprint = out->fingerprint,
	};
	ok = true;
out:
	free(canon_text);
	json_decref(canon);
	return ok;
}

void
orders_parsed_free(struct order_parsed *p)
{
	free(p->lines_json);
	p->lines_json = NULL;
}
