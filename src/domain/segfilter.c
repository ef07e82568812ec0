/*
 * segfilter.c — custom segment filters; see include/rebuy/segfilter.h.
 *
 * One recursive pass validates and compiles: every node either appends
 * its SQL or stops with the JSON pointer of what is wrong.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/jv.h"
#include "rebuy/segfilter.h"

#define MAX_ITEMS 50       /* items of one all / any */
#define MAX_VALUES 100     /* strings of one in / contains_any / contains_all */
#define MAX_NUMBER 1000000000000000LL

enum kind { NUMBER, CHANNEL, TIER, SET, RFM_SEGMENT };
enum set { CATEGORIES, CHANNELS, TAGS, CONSENT, MEMBERSHIP_PLANS };

static const struct field {
	const char *name;
	enum kind kind;
	const char *expr; /* NUMBER, CHANNEL: the value compared */
	enum set set;
} fields[] = {
	{ "order_count", NUMBER, "f.order_count", 0 },
	{ "days_since_first_order", NUMBER, "(p.today - (f.first_order_at AT TIME ZONE p.tz)::date)", 0 },
	{ "days_since_last_order", NUMBER, "(p.today - (f.last_order_at AT TIME ZONE p.tz)::date)", 0 },
	{ "total_spent", NUMBER, "f.total_spent", 0 },
	/* rounded half up (total_spent >= 0), without doubling a sum near 2^63 */
	{ "average_order_value", NUMBER,
	  "(f.total_spent / f.order_count"
	  " + (f.total_spent % f.order_count >= f.order_count - f.total_spent % f.order_count)::integer)",
	  0 },
	{ "first_order_channel", CHANNEL, "f.first_order_channel", 0 },
	{ "categories", SET, NULL, CATEGORIES },
	{ "channels", SET, NULL, CHANNELS },
	{ "tags", SET, NULL, TAGS },
	{ "consent", SET, NULL, CONSENT },
	/*
	 * Paid memberships active now: days from the shop's today to the last
	 * local day of the one that ends last (none active: NULL, so no
	 * comparison holds), and the plans held.
	 */
	{ "membership_days_left", NUMBER,
	  "(SELECT max((m.ends_at AT TIME ZONE p.tz)::date) - p.today FROM memberships m"
	  " WHERE m.customer_seq = f.customer_seq AND m.cancelled_at IS NULL AND m.ends_at > now())",
	  0 },
	{ "membership_plans", SET, NULL, MEMBERSHIP_PLANS },
	/* the earned tier held now: a stored one (never below the entry tier), else the entry tier */
	{ "tier", TIER,
	  "coalesce((SELECT ct.tier FROM customer_tiers ct WHERE ct.customer_seq = f.customer_seq),"
	  " (SELECT t.code FROM tiers t WHERE t.shop_id = f.shop_id AND t.net_spend IS NULL"
	  "   AND t.orders IS NULL ORDER BY t.rank DESC LIMIT 1))", 0 },
	/*
	 * Prepaid wallets now (no wallet: NULL, so no comparison holds): the
	 * principal, the bonus available (released or due, not expired), both.
	 */
	{ "wallet_principal", NUMBER,
	  "(SELECT b.principal FROM wallet_balances_at(f.customer_seq, now()) b)", 0 },
	{ "wallet_bonus_available", NUMBER,
	  "(SELECT b.bonus_available FROM wallet_balances_at(f.customer_seq, now()) b)", 0 },
	{ "wallet_available", NUMBER,
	  "(SELECT b.principal + b.bonus_available FROM wallet_balances_at(f.customer_seq, now()) b)",
	  0 },
	/*
	 * Prepaid packages and coupons now: uses left over the packages still
	 * usable (none: NULL), days since the latest local day with a
	 * qualifying order or an unreversed redemption, coupons valid now.
	 */
	{ "package_uses_left", NUMBER,
	  "(SELECT sum(k.uses - k.redeemed) FROM packages k WHERE k.customer_seq = f.customer_seq"
	  " AND k.status = 'active' AND k.valid_until > now())", 0 },
	{ "days_since_last_visit", NUMBER,
	  "(p.today - greatest((f.last_order_at AT TIME ZONE p.tz)::date,"
	  " (SELECT (max(r.at) AT TIME ZONE p.tz)::date FROM packages k"
	  "   JOIN package_redemptions r ON r.package_seq = k.seq"
	  "   WHERE k.customer_seq = f.customer_seq AND r.reversed_at IS NULL)))", 0 },
	{ "coupons_valid", NUMBER,
	  "(SELECT count(*) FROM coupon_grants g JOIN coupons cp ON cp.grant_seq = g.seq"
	  " WHERE g.customer_seq = f.customer_seq AND cp.redeemed_at IS NULL"
	  " AND cp.cancelled_at IS NULL AND cp.valid_from <= now()"
	  " AND (cp.valid_until IS NULL OR cp.valid_until > now()))", 0 },
	/* r: the scores, joined by the caller when out->rfm (see segfilter.h) */
	{ "rfm_recency", NUMBER, "r.r", 0 },
	{ "rfm_frequency", NUMBER, "r.f", 0 },
	{ "rfm_monetary", NUMBER, "r.m", 0 },
	{ "rfm_segment", RFM_SEGMENT, "r.segment", 0 },
};

static const struct { const char *name, *sql; } number_ops[] = {
	{ "eq", "=" }, { "ne", "<>" }, { "lt", "<" }, { "lte", "<=" }, { "gt", ">" }, { "gte", ">=" },
	{ "between", NULL },
};

static const char *const consent_columns[][2] = {
	{ "email", "c.consent_email" }, { "sms", "c.consent_sms" }, { "wechat", "c.consent_wechat" },
};

struct ctx {
	struct segfilter *out;
	size_t len, cap;
	int first, conditions;
	struct err *err;
};

static bool
fail(struct ctx *x, const char *ptr, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_set(x->err, ERR_VALIDATION, ptr, "%s: %s", ptr, msg);
	return false;
}

static bool
emit(struct ctx *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(x->out->sql ? x->out->sql + x->len : NULL,
			      x->out->sql ? x->cap - x->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return fail(x, "", "cannot format the query");
		if (x->out->sql && x->len + (size_t)n < x->cap) {
			x->len += (size_t)n;
			return true;
		}
		size_t cap = (x->cap ? x->cap * 2 : 256) + (size_t)n;
		char *s = realloc(x->out->sql, cap);

		if (!s) {
			err_set(x->err, ERR_INTERNAL, NULL, "out of memory");
			return false;
		}
		x->out->sql = s;
		x->cap = cap;
	}
}

/* A new parameter holding s (copied); its number. */
static int
param(struct ctx *x, char *s)
{
	if (!s) {
		err_set(x->err, ERR_INTERNAL, NULL, "out of memory");
		return -1;
	}
	x->out->params[x->out->nparams] = s;
	return x->first + x->out->nparams++;
}

/* ptr + "/" + what fmt says, cut short if it must (pointers are diagnostics) */
static void
sub(char *buf, size_t size, const char *ptr, const char *fmt, ...)
{
	size_t n = (size_t)snprintf(buf, size, "%s/", ptr);
	va_list ap;

	if (n >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

/* ptr + "/" + member, escaped as RFC 6901 wants (a member name is user input) */
static void
child(char *buf, size_t size, const char *ptr, const char *member)
{
	snprintf(buf, size, "%s", ptr);
	err_pointer_append(buf, size, member);
}

static bool
string_ok(struct ctx *x, const json_t *v, const char *ptr, enum kind kind, enum set set)
{
	const char *s = json_string_value(v);

	if (!s)
		return fail(x, ptr, "must be a string");
	if (kind == SET && set == CONSENT) {
		for (size_t i = 0; i < 3; i++)
			if (strcmp(s, consent_columns[i][0]) == 0)
				return true;
		return fail(x, ptr, "must be email, sms or wechat");
	}
	if (kind == TIER) {
		if (strlen(s) < 1 || strlen(s) > 64 ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s))
			return fail(x, ptr, "must be a tier code: 1-64 of a-z, 0-9 and -");
		return true;
	}
	if (strlen(s) < 1 || strlen(s) > 64 || jv_check_token(s))
		return fail(x, ptr, "must be 1-64 of letters, digits and . _ : -");
	return true;
}

/* An array of 1..MAX_VALUES distinct valid strings, as a text[] literal. */
static char *
string_array(struct ctx *x, const json_t *v, const char *ptr, enum kind kind, enum set set)
{
	char item[200], *lit;
	size_t n = json_array_size(v), len = 2;

	if (!json_is_array(v) || n < 1 || n > MAX_VALUES) {
		fail(x, ptr, "must be an array of 1 to %d strings", MAX_VALUES);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		sub(item, sizeof item, ptr, "%zu", i);
		if (!string_ok(x, json_array_get(v, i), item, kind, set))
			return NULL;
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(v, i), json_array_get(v, j))) {
				fail(x, item, "repeats /%zu", j);
				return NULL;
			}
		len += strlen(json_string_value(json_array_get(v, i))) + 3;
	}
	/* {"a","b"}: tokens hold no quote or backslash, quoting is still right */
	lit = malloc(len + 1);
	if (!lit) {
		err_set(x->err, ERR_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	strcpy(lit, "{");
	for (size_t i = 0; i < n; i++) {
		strcat(lit, i ? ",\"" : "\"");
		strcat(lit, json_string_value(json_array_get(v, i)));
		strcat(lit, "\"");
	}
	strcat(lit, "}");
	return lit;
}

static bool
number_ok(struct ctx *x, const json_t *v, const char *ptr)
{
	json_int_t n;

	if (!json_is_integer(v))
		return fail(x, ptr, "must be an integer");
	n = json_integer_value(v);
	if (n < -MAX_NUMBER || n > MAX_NUMBER)
		return fail(x, ptr, "must be between -%lld and %lld", MAX_NUMBER, MAX_NUMBER);
	return true;
}

static char *
number_text(const json_t *v)
{
	char buf[32];

	snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
	return strdup(buf);
}

static bool
number_condition(struct ctx *x, const struct field *f, const char *op, const json_t *v,
		 const char *ptr_op, const char *ptr_v)
{
	size_t k;
	int a, b;

	for (k = 0; k < sizeof number_ops / sizeof number_ops[0]; k++)
		if (strcmp(number_ops[k].name, op) == 0)
			break;
	if (k == sizeof number_ops / sizeof number_ops[0])
		return fail(x, ptr_op, "%s takes eq, ne, lt, lte, gt, gte or between", f->name);
	if (!number_ops[k].sql) {
		char p0[200], p1[200];

		sub(p0, sizeof p0, ptr_v, "0");
		sub(p1, sizeof p1, ptr_v, "1");
		if (!json_is_array(v) || json_array_size(v) != 2)
			return fail(x, ptr_v, "must be [low, high]");
		if (!number_ok(x, json_array_get(v, 0), p0) || !number_ok(x, json_array_get(v, 1), p1))
			return false;
		if (json_integer_value(json_array_get(v, 0)) > json_integer_value(json_array_get(v, 1)))
			return fail(x, ptr_v, "low must not be above high");
		if ((a = param(x, number_text(json_array_get(v, 0)))) < 0 ||
		    (b = param(x, number_text(json_array_get(v, 1)))) < 0)
			return false;
		return emit(x, "(%s BETWEEN $%d::bigint AND $%d::bigint)", f->expr, a, b);
	}
	if (!number_ok(x, v, ptr_v) || (a = param(x, number_text(v))) < 0)
		return false;
	return emit(x, "(%s %s $%d::bigint)", f->expr, number_ops[k].sql, a);
}

/* A name of the shop's RFM map: any text of 1-64 characters. */
static bool
rfm_name_ok(struct ctx *x, const json_t *v, const char *ptr)
{
	const char *s = json_string_value(v);

	if (!s)
		return fail(x, ptr, "must be a string");
	if (json_string_length(v) < 1 || jv_utf8_len(s) > 64)
		return fail(x, ptr, "must be 1-64 characters (an RFM segment name)");
	return true;
}

/* rfm_segment eq / ne / in: names may hold any character, so in takes a JSON array */
static bool
rfm_segment_condition(struct ctx *x, const struct field *f, const char *op, const json_t *v,
		      const char *ptr_op, const char *ptr_v)
{
	char item[200];
	size_t n = json_array_size(v);
	int a;

	if (strcmp(op, "eq") == 0 || strcmp(op, "ne") == 0) {
		if (!rfm_name_ok(x, v, ptr_v) || (a = param(x, strdup(json_string_value(v)))) < 0)
			return false;
		return emit(x, "(%s %s $%d::text)", f->expr, op[0] == 'e' ? "=" : "<>", a);
	}
	if (strcmp(op, "in") != 0)
		return fail(x, ptr_op, "%s takes eq, ne or in", f->name);
	if (!json_is_array(v) || n < 1 || n > MAX_VALUES)
		return fail(x, ptr_v, "must be an array of 1 to %d strings", MAX_VALUES);
	for (size_t i = 0; i < n; i++) {
		sub(item, sizeof item, ptr_v, "%zu", i);
		if (!rfm_name_ok(x, json_array_get(v, i), item))
			return false;
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(v, i), json_array_get(v, j)))
				return fail(x, item, "repeats /%zu", j);
	}
	if ((a = param(x, json_dumps(v, JSON_COMPACT))) < 0)
		return false;
	return emit(x, "(%s IN (SELECT jsonb_array_elements_text($%d::jsonb)))", f->expr, a);
}

/* first_order_channel and tier: one string, eq / ne / in */
static bool
channel_condition(struct ctx *x, const struct field *f, const char *op, const json_t *v,
		  const char *ptr_op, const char *ptr_v)
{
	int a;

	if (strcmp(op, "eq") == 0 || strcmp(op, "ne") == 0) {
		if (!string_ok(x, v, ptr_v, f->kind, 0) ||
		    (a = param(x, strdup(json_string_value(v)))) < 0)
			return false;
		return emit(x, "(%s %s $%d::text)", f->expr, op[0] == 'e' ? "=" : "<>", a);
	}
	if (strcmp(op, "in") == 0) {
		char *lit = string_array(x, v, ptr_v, f->kind, 0);

		if (!lit || (a = param(x, lit)) < 0)
			return false;
		return emit(x, "(%s = ANY ($%d::text[]))", f->expr, a);
	}
	return fail(x, ptr_op, "%s takes eq, ne or in", f->name);
}

/* "x = ANY ($n)" over the customer's categories or channels, counted or tested */
static bool
related(struct ctx *x, enum set set, bool all, int a)
{
	static const char *const froms[] = {
		[CATEGORIES] = "FROM customer_category_facts cf WHERE cf.customer_seq = f.customer_seq"
			       " AND cf.category",
		[CHANNELS] = "FROM orders o WHERE o.customer_seq = f.customer_seq"
			     " AND o.status = 'placed' AND o.channel",
		[MEMBERSHIP_PLANS] = "FROM memberships m WHERE m.customer_seq = f.customer_seq"
				     " AND m.cancelled_at IS NULL AND m.ends_at > now() AND m.plan_code",
	};
	static const char *const cols[] = {
		[CATEGORIES] = "cf.category", [CHANNELS] = "o.channel", [MEMBERSHIP_PLANS] = "m.plan_code",
	};
	const char *from = froms[set], *col = cols[set];

	if (all)
		return emit(x, "((SELECT count(DISTINCT %s) %s = ANY ($%d::text[]))"
			    " = cardinality($%d::text[]))", col, from, a, a);
	return emit(x, "EXISTS (SELECT %s = ANY ($%d::text[]))", from, a);
}

static bool
set_condition(struct ctx *x, const struct field *f, const char *op, const json_t *v,
	      const char *ptr_op, const char *ptr_v)
{
	bool one = strcmp(op, "contains") == 0, any = strcmp(op, "contains_any") == 0,
	     all = strcmp(op, "contains_all") == 0;
	json_t *arr;
	char *lit;
	int a;

	if (!one && !any && !all)
		return fail(x, ptr_op, "%s takes contains, contains_any or contains_all", f->name);
	if (one && !string_ok(x, v, ptr_v, SET, f->set))
		return false;
	/* contains v is contains_any [v] */
	arr = one ? json_pack("[O]", v) : json_incref((json_t *)v);
	lit = string_array(x, arr, ptr_v, SET, f->set);
	if (!lit) {
		json_decref(arr);
		return false;
	}
	if (f->set == CONSENT) {
		/* three known columns: no parameter needed */
		bool ok = emit(x, "(");

		for (size_t i = 0; ok && i < json_array_size(arr); i++) {
			const char *s = json_string_value(json_array_get(arr, i));

			for (size_t k = 0; k < 3; k++)
				if (strcmp(s, consent_columns[k][0]) == 0)
					ok = emit(x, "%s%s", i ? (all ? " AND " : " OR ") : "",
						  consent_columns[k][1]);
		}
		free(lit);
		json_decref(arr);
		return ok && emit(x, ")");
	}
	json_decref(arr);
	if ((a = param(x, lit)) < 0)
		return false;
	if (f->set == TAGS)
		return emit(x, all || one ? "(c.tags @> $%d::text[])" : "(c.tags && $%d::text[])", a);
	return related(x, f->set, all, a);
}

static bool node(struct ctx *x, const json_t *n, const char *ptr, int depth);

static bool
condition(struct ctx *x, const json_t *n, const char *ptr)
{
	char pf[200], po[200], pv[200];
	const char *key, *name, *op;
	json_t *value;
	const struct field *f = NULL;

	json_object_foreach((json_t *)n, key, value)
		if (strcmp(key, "field") && strcmp(key, "op") && strcmp(key, "value")) {
			child(pf, sizeof pf, ptr, key);
			return fail(x, pf, "unknown member (a condition has field, op and value)");
		}
	child(pf, sizeof pf, ptr, "field");
	child(po, sizeof po, ptr, "op");
	child(pv, sizeof pv, ptr, "value");
	if (++x->conditions > SEGFILTER_MAX_CONDITIONS)
		return fail(x, ptr, "more than %d conditions", SEGFILTER_MAX_CONDITIONS);
	name = json_string_value(json_object_get(n, "field"));
	if (!name)
		return fail(x, pf, json_object_get(n, "field") ? "must be a string" : "is required");
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strcmp(fields[i].name, name) == 0)
			f = &fields[i];
	if (!f)
		return fail(x, pf, "unknown field");
	op = json_string_value(json_object_get(n, "op"));
	if (!op)
		return fail(x, po, json_object_get(n, "op") ? "must be a string" : "is required");
	value = json_object_get(n, "value");
	if (!value)
		return fail(x, pv, "is required");
	if (strncmp(f->name, "rfm_", 4) == 0)
		x->out->rfm = true;
	switch (f->kind) {
	case NUMBER: return number_condition(x, f, op, value, po, pv);
	case CHANNEL:
	case TIER: return channel_condition(x, f, op, value, po, pv);
	case SET: return set_condition(x, f, op, value, po, pv);
	case RFM_SEGMENT: return rfm_segment_condition(x, f, op, value, po, pv);
	}
	return false;
}

static bool
node(struct ctx *x, const json_t *n, const char *ptr, int depth)
{
	static const char *const forms[] = { "all", "any", "not" };
	char p[200];

	if (!json_is_object(n))
		return fail(x, ptr, "must be an object");
	if (depth > SEGFILTER_MAX_DEPTH)
		return fail(x, ptr, "nested deeper than %d levels", SEGFILTER_MAX_DEPTH);
	for (size_t k = 0; k < 3; k++) {
		json_t *v = json_object_get(n, forms[k]);

		if (!v)
			continue;
		if (json_object_size(n) != 1) {
			const char *key;
			json_t *other;

			json_object_foreach((json_t *)n, key, other)
				if (strcmp(key, forms[k]) != 0)
					break;
			child(p, sizeof p, ptr, key);
			return fail(x, p, "unknown member (\"%s\" stands alone)", forms[k]);
		}
		child(p, sizeof p, ptr, forms[k]);
		if (k == 2)
			return emit(x, "NOT (") && node(x, v, p, depth + 1) && emit(x, ")");
		if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > MAX_ITEMS)
			return fail(x, p, "must be an array of 1 to %d filters", MAX_ITEMS);
		if (!emit(x, "("))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++) {
			char pi[200];

			sub(pi, sizeof pi, p, "%zu", i);
			if ((i && !emit(x, k == 0 ? " AND " : " OR ")) ||
			    !node(x, json_array_get(v, i), pi, depth + 1))
				return false;
		}
		return emit(x, ")");
	}
	return condition(x, n, ptr);
}

bool
segfilter_compile(const json_t *filter, const char *prefix, int first, struct segfilter *out,
		  struct err *err)
{
	struct ctx x = { .out = out, .first = first, .err = err };

	memset(out, 0, sizeof *out);
	return node(&x, filter, prefix, 1);
}

void
segfilter_free(struct segfilter *f)
{
	free(f->sql);
	for (int i = 0; i < f->nparams; i++)
		free(f->params[i]);
	memset(f, 0, sizeof *f);
}
