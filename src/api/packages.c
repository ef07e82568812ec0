/*
 * packages.c — prepaid packages: /v1/package-plans/{code} and
 * /v1/customers/{id}/packages (purchase, redemptions, reversal, refund).
 * Parse, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/packages.h"
#include "rebuy/reply.h"

#define MONEY_MAX 1000000000000LL
#define USES_MAX 100000

/* ---- plans ------------------------------------------------------------- */

static const char *
check_period(const char *s)
{
	return strcmp(s, "day") == 0 || strcmp(s, "week") == 0 || strcmp(s, "month") == 0
		? NULL : "must be day, week or month";
}

static const struct jv_field validity_spec[] = {
	{ .name = "days", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1, .max = 3660 },
	{ .name = "until", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = NULL },
};

static const struct jv_field period_spec[] = {
	{ .name = "uses", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = USES_MAX },
	{ .name = "period", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 3, .max = 5,
	  .check = check_period },
	{ .name = NULL },
};

static const struct jv_field sale_spec[] = {
	{ .name = "from", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = "until", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = NULL },
};

static const struct jv_field presale_spec[] = {
	{ .name = "price", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = MONEY_MAX },
	{ .name = "until", .kind = JV_TIMESTAMP, .flags = JV_REQUIRED },
	{ .name = NULL },
};

static const struct jv_field plan_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "uses", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = USES_MAX },
	{ .name = "price", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = MONEY_MAX },
	{ .name = "validity", .kind = JV_OBJECT, .flags = JV_REQUIRED, .fields = validity_spec },
	{ .name = "max_uses_per_visit", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1,
	  .max = USES_MAX },
	{ .name = "max_uses_per_period", .kind = JV_OBJECT, .flags = JV_NULLABLE,
	  .fields = period_spec },
	{ .name = "sale", .kind = JV_OBJECT, .flags = JV_NULLABLE, .fields = sale_spec },
	{ .name = "presale", .kind = JV_OBJECT, .flags = JV_NULLABLE, .fields = presale_spec },
	{ .name = "active", .kind = JV_BOOLEAN },
	{ .name = NULL },
};

/* An instant member of a nested object in UTC (comparable with strcmp), or false. */
static bool
instant(const json_t *body, const char *outer, const char *name, char out[28])
{
	const char *s = json_string_value(json_object_get(json_object_get(body, outer), name));

	return s && jv_timestamp_utc(s, out);
}

/* What the schema cannot say: one validity, a sale window forwards, a presale below the price. */
static bool
plan_consistent(struct request *req, const json_t *body)
{
	const json_t *validity = json_object_get(body, "validity"),
		     *presale = json_object_get(body, "presale");
	const json_t *d = json_object_get(validity, "days"), *u = json_object_get(validity, "until");
	bool days = d && !json_is_null(d), until = u && !json_is_null(u);
	char from[28], to[28];

	if (days == until) {
		reply_error(req, ERR_VALIDATION, "/validity",
			    "/validity: give exactly one of days and until");
		return false;
	}
	if (instant(body, "sale", "from", from) && instant(body, "sale", "until", to) &&
	    strcmp(from, to) >= 0) {
		reply_error(req, ERR_VALIDATION, "/sale", "/sale: from must be before until");
		return false;
	}
	if (json_is_object(presale) &&
	    json_integer_value(json_object_get(presale, "price")) >
	    json_integer_value(json_object_get(body, "price"))) {
		reply_error(req, ERR_VALIDATION, "/presale/price",
			    "/presale/price: a presale price is not above the regular price");
		return false;
	}
	return true;
}

static const struct api_catalogue plans = {
	.what = "package plan", .path = "/v1/package-plans", .spec = plan_spec,
	.consistent = plan_consistent, .put = packages_plan_put, .get = packages_plan_get,
};

void
api_package_plans_put(struct request *req)
{
	api_catalogue_put(req, &plans);
}

void
api_package_plans_get(struct request *req)
{
	api_catalogue_get(req, &plans);
}

void
api_package_plans_list(struct request *req)
{
	api_catalogue_list(req, &plans);
}

/* ---- a customer's packages ------------------------------------------------ */

struct package_run {
	const char *shop_id;
	struct package_call in;
	enum db_qs (*write)(struct db_conn *, const char *, const struct package_call *, bool *,
			    char **, struct err *);
};

static enum db_qs
package_write(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct package_run *run = cls;
	bool created;
	enum db_qs qs = run->write(c, run->shop_id, &run->in, &created, &out->raw, err);

	qs = api_no_customer(qs, err, run->in.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

static enum db_qs
package_read(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct package_run *run = cls;
	enum db_qs qs = packages_get(c, run->shop_id, &run->in, &out->raw, err);

	qs = api_no_customer(qs, err, run->in.customer_id);
	if (qs >= 0)
		out->status = 200;
	return qs;
}

/*
 * {id}, then the package id and the redemption id of the path when there
 * are (n: 1-3 parameters); a malformed id names nothing.
 */
static bool
package_path(struct request *req, struct package_call *in, int n)
{
	if (!api_customer_path(req, &in->customer_id))
		return false;
	for (int i = 1; i < n; i++) {
		const char *id = req->params[i];

		if (strlen(id) > 128 || api_check_id(id)) {
			reply_error(req, ERR_NOT_FOUND, NULL, "no %s %.64s",
				    i == 1 ? "package" : "redemption", id);
			return false;
		}
	}
	in->package_id = n > 1 ? req->params[1] : NULL;
	in->redemption_id = n > 2 ? req->params[2] : NULL;
	return true;
}

static const struct jv_field buy_spec[] = {
	{ .name = "package_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "plan", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = "order_id", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 128 },
	{ .name = NULL },
};

void
api_customer_packages_post(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id, .write = packages_buy };
	json_t *body;

	if (!package_path(req, &run.in, 1) || !(body = api_body(req, buy_spec)))
		return;
	run.in.package_id = api_str(body, "package_id");
	run.in.plan = api_str(body, "plan");
	run.in.order_id = api_str(body, "order_id");
	api_run_single(req, package_write, &run);
	json_decref(body);
}

static const char *
check_status(const char *s)
{
	static const char *const ok[] = { "active", "used_up", "expired", "refunded" };

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(s, ok[i]) == 0)
			return NULL;
	return "must be active, used_up, expired or refunded";
}

void
api_customer_packages_list(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id };

	if (package_path(req, &run.in, 1) &&
	    api_query_param(req, "status", check_status, 16, &run.in.status))
		api_run(req, package_read, &run);
}

void
api_customer_package_get(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id };

	if (package_path(req, &run.in, 2))
		api_run(req, package_read, &run);
}

static const struct jv_field redeem_spec[] = {
	{ .name = "redemption_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "uses", .kind = JV_INTEGER, .min = 1, .max = USES_MAX },
	{ .name = "order_id", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 128 },
	{ .name = NULL },
};

void
api_package_redeem(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id, .write = packages_redeem };
	json_t *body;
	const json_t *uses;

	if (!package_path(req, &run.in, 2) || !(body = api_body(req, redeem_spec)))
		return;
	run.in.redemption_id = api_str(body, "redemption_id");
	run.in.order_id = api_str(body, "order_id");
	uses = json_object_get(body, "uses");
	run.in.uses = uses ? json_integer_value(uses) : 1;
	api_run_single(req, package_write, &run);
	json_decref(body);
}

static const struct jv_field reversal_spec[] = {
	{ .name = "reason", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 500 },
	{ .name = NULL },
};

void
api_package_reversal(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id, .write = packages_reverse };
	json_t *body;

	if (!package_path(req, &run.in, 3) || !(body = api_body(req, reversal_spec)))
		return;
	run.in.reason = api_str(body, "reason");
	api_run_single(req, package_write, &run);
	json_decref(body);
}

static const struct jv_field refund_spec[] = {
	{ .name = "reason", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 500 },
	{ .name = NULL },
};

void
api_package_refund(struct request *req)
{
	struct package_run run = { .shop_id = req->shop_id, .write = packages_refund };
	json_t *body = NULL;

	if (!package_path(req, &run.in, 2))
		return;
	/* no body, {} or {"reason": …} */
	if (req->body_len > 0 && !(body = api_body(req, refund_spec)))
		return;
	run.in.reason = api_str(body, "reason");
	api_run_single(req, package_write, &run);
	json_decref(body);
}
