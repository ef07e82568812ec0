/*
 * order_input.c — what a valid order is: the field rules, the arithmetic,
 * and the canonical form whose SHA-256 identifies an order's content.
 * The HTTP API and the history import both validate through here, so an
 * order is accepted or refused for the same reasons whichever way it came.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/customers.h"
#include "rebuy/fmt.h"
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
 * The canonical form is written straight into a buffer: byte for byte what
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS) gave for the same content (the
 * fingerprints stored before are compared with it), without building a
 * second tree, sorting keys or formatting integers through printf: the
 * import computes it for every order it reads.  The keys below are written
 * in sorted (byte) order; tests/unit checks the bytes against jansson.
 */
struct canon {
	char *p;
	size_t len, cap;
	bool oom;
	bool unchecked; /* a string that is not there: the body skipped jv_validate */
};

static char *
canon_room(struct canon *c, size_t n)
{
	if (c->oom)
		return NULL;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 512;
		char *p;

		while (cap < c->len + n)
			cap *= 2;
		if (!(p = realloc(c->p, cap))) {
			c->oom = true;
			return NULL;
		}
		c->p = p;
		c->cap = cap;
	}
	return c->p + c->len;
}

static void
canon_raw(struct canon *c, const char *s, size_t n)
{
	char *w = canon_room(c, n);

	if (w) {
		memcpy(w, s, n);
		c->len += n;
	}
}

#define CANON_LIT(c, s) canon_raw((c), (s), sizeof(s) - 1)

/* jansson's escapes: \\ \" \b \f \n \r \t, other controls \u00XX; UTF-8 as is */
static void
canon_string(struct canon *c, const json_t *v)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t n = json_string_length(v);
	char *w;

	/* never a fingerprint for what is not the order: "" is not a missing sku */
	if (!s) {
		c->unchecked = true;
		return;
	}
	if (!(w = canon_room(c, n * 6 + 2)))
		return;
	*w++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			*w++ = (char)ch;
			continue;
		}
		*w++ = '\\';
		switch (ch) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '\b': *w++ = 'b'; break;
		case '\f': *w++ = 'f'; break;
		case '\n': *w++ = 'n'; break;
		case '\r': *w++ = 'r'; break;
		case '\t': *w++ = 't'; break;
		default:
			memcpy(w, "u00", 3);
			w[3] = hex[ch >> 4];
			w[4] = hex[ch & 15];
			w += 5;
		}
	}
	*w++ = '"';
	c->len = (size_t)(w - c->p);
}

static void
canon_int(struct canon *c, long long v)
{
	char *w = canon_room(c, FMT_INT_MAX);

	if (w)
		c->len = (size_t)(fmt_int(w, v) - c->p);
}

/*
 * Check the arithmetic and write the canonical form: defaults filled in,
 * keys sorted.  Its SHA-256 is the order's fingerprint, so a resend with
 * other key order or omitted defaults is still the same order.  The lines'
 * array is also what orders_put stores: its span is returned.
 */
static bool
canonical_order(const json_t *body, const char *placed_utc, struct canon *c, size_t *lines_at,
		size_t *lines_len, struct err *err)
{
	json_t *src = json_object_get(body, "lines"), *l;
	long long sum = 0, shipping = int_or(body, "shipping", 0),
		  discount = int_or(body, "discount", 0), total = int_or(body, "total", 0);
	size_t i;

	CANON_LIT(c, "{\"channel\":");
	canon_string(c, json_object_get(body, "channel"));
	CANON_LIT(c, ",\"currency\":");
	canon_string(c, json_object_get(body, "currency"));
	CANON_LIT(c, ",\"customer_id\":");
	canon_string(c, json_object_get(body, "customer_id"));
	CANON_LIT(c, ",\"discount\":");
	canon_int(c, discount);
	CANON_LIT(c, ",\"lines\":");
	*lines_at = c->len;
	CANON_LIT(c, "[");
	json_array_foreach(src, i, l) {
		long long q = int_or(l, "quantity", 0), p = int_or(l, "unit_price", 0),
			  d = int_or(l, "discount", 0), amount = q * p; /* ≤ 10^18 */
		json_t *name = json_object_get(l, "name");
		char ptr[48];

		if (d > amount) {
			snprintf(ptr, sizeof ptr, "/lines/%zu/discount", i);
			err_set(err, ERR_VALIDATION, ptr, "%s: exceeds the line amount (%lld)", ptr,
				amount);
			return false;
		}
		if (__builtin_add_overflow(sum, amount - d, &sum)) {
			err_set(err, ERR_VALIDATION, "/lines", "/lines: amounts too large");
			return false;
		}
		if (i)
			CANON_LIT(c, ",");
		CANON_LIT(c, "{\"category\":");
		canon_string(c, json_object_get(l, "category"));
		CANON_LIT(c, ",\"discount\":");
		canon_int(c, d);
		CANON_LIT(c, ",\"name\":");
		if (json_is_string(name))
			canon_string(c, name);
		else
			CANON_LIT(c, "null");
		CANON_LIT(c, ",\"quantity\":");
		canon_int(c, q);
		CANON_LIT(c, ",\"role\":");
		canon_string(c, json_object_get(l, "role"));
		CANON_LIT(c, ",\"sku\":");
		canon_string(c, json_object_get(l, "sku"));
		CANON_LIT(c, ",\"unit_price\":");
		canon_int(c, p);
		CANON_LIT(c, "}");
	}
	CANON_LIT(c, "]");
	*lines_len = c->len - *lines_at;
	if (__builtin_add_overflow(sum, shipping, &sum) || sum - discount < 0 ||
	    sum - discount != total) {
		err_set(err, ERR_VALIDATION, "/total",
			"/total: must equal lines - line discounts + shipping - discount = %lld",
			sum - discount);
		return false;
	}
	CANON_LIT(c, ",\"placed_at\":\"");
	canon_raw(c, placed_utc, strlen(placed_utc)); /* digits, '-', ':', 'T', '.', 'Z' */
	CANON_LIT(c, "\",\"shipping\":");
	canon_int(c, shipping);
	CANON_LIT(c, ",\"total\":");
	canon_int(c, total);
	CANON_LIT(c, "}");
	if (c->oom || c->unchecked) {
		err_set(err, ERR_INTERNAL, NULL, c->oom ? "out of memory" : "order body not validated");
		return false;
	}
	return true;
}

bool
orders_parse(const json_t *body, struct order_parsed *out, struct err *err)
{
	struct canon c = { 0 };
	size_t lines_at = 0, lines_len = 0;
	bool ok = false;

	memset(out, 0, sizeof *out);
	/* one instant, one fingerprint, whatever offset it was written with */
	if (!jv_timestamp_utc(json_string_value(json_object_get(body, "placed_at")), out->placed)) {
		err_set(err, ERR_VALIDATION, "/placed_at", "/placed_at: not a valid date-time");
		goto out;
	}
	if (!canonical_order(body, out->placed, &c, &lines_at, &lines_len, err))
		goto out;
	keys_sha256_hex(c.p, c.len, out->fingerprint);
	/*
	 * Hashed, the text is needed only for the lines' JSON that PUT passes
	 * to SQL: cut it there, in place, rather than copy it for every order
	 * (the import reads millions and passes none).
	 */
	c.p[lines_at + lines_len] = '\0';
	out->canon = c.p;
	c.p = NULL;
	out->in = (struct order_input){
		.customer_id = json_string_value(json_object_get(body, "customer_id")),
		.placed_at = out->placed,
		.channel = json_string_value(json_object_get(body, "channel")),
		.currency = json_string_value(json_object_get(body, "currency")),
		.lines_json = out->canon + lines_at,
		.shipping = int_or(body, "shipping", 0),
		.discount = int_or(body, "discount", 0),
		.total = int_or(body, "total", 0),
		.fingerprint = out->fingerprint,
	};
	ok = true;
out:
	free(c.p);
	return ok;
}

void
orders_parsed_free(struct order_parsed *p)
{
	free(p->canon);
	p->canon = NULL;
}
