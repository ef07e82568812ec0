/*
 * tiers.c — earned tiers: /v1/tier-programme (and its review),
 * /v1/customers/{id}/tier and /v1/customers/{id}/tier-history.
 * Parse, one domain call, reply.
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/benefits.h"
#include "rebuy/reply.h"
#include "rebuy/tiers.h"

struct tier_call {
	const char *shop_id, *customer_id;
	const json_t *body;
	struct tier_assignment assign;
	bool history;
};

static const char *
check_code(const char *s)
{
	return jv_is_code(s) ? NULL : "must be 1-64 of a-z, 0-9 and -";
}

static const char *
check_combine(const char *s)
{
	return strcmp(s, "and") == 0 || strcmp(s, "or") == 0 ? NULL : "must be and or or";
}

static const char *
check_policy(const char *s)
{
	return strcmp(s, "never") == 0 || strcmp(s, "review") == 0 ? NULL
								    : "must be never or review";
}

static const struct jv_field qualification_spec[] = {
	{ .name = "window_days", .kind = JV_INTEGER, .min = 1, .max = 3660 },
	{ .name = "net_spend", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 0,
	  .max = 1000000000000LL },
	{ .name = "orders", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1, .max = 100000 },
	{ .name = "combine", .kind = JV_STRING, .min = 2, .max = 3, .check = check_combine },
	{ .name = NULL },
};

static const struct jv_field tier_spec[] = {
	{ .name = "code", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64,
	  .check = check_code },
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "discount_bp", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = 10000 },
	{ .name = "qualification", .kind = JV_OBJECT, .flags = JV_REQUIRED,
	  .fields = qualification_spec },
	{ .name = "benefits", .kind = JV_ANY_OBJECT },
	{ .name = NULL },
};

static const struct jv_field tier_item = { .name = "", .kind = JV_OBJECT, .fields = tier_spec };

static const struct jv_field downgrade_spec[] = {
	{ .name = "policy", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 5, .max = 6,
	  .check = check_policy },
	{ .name = "every_months", .kind = JV_INTEGER, .min = 1, .max = 12 },
	{ .name = "grace_days", .kind = JV_INTEGER, .min = 0, .max = 365 },
	{ .name = NULL },
};

static const struct jv_field programme_spec[] = {
	{ .name = "tiers", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 1, .max = 20,
	  .items = &tier_item },
	{ .name = "downgrade", .kind = JV_OBJECT, .flags = JV_REQUIRED, .fields = downgrade_spec },
	{ .name = NULL },
};

static enum db_qs
programme_put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct tier_call *call = cls;
	bool created = false;
	enum db_qs qs = tiers_programme_put(c, call->shop_id, call->body, &created, &out->raw, err);

	if (qs >= 0) {
		out->status = created ? 201 : 200;
		if (created)
			snprintf(out->location, sizeof out->location, "/v1/tier-programme");
	}
	return qs;
}

void
api_tier_programme_put(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id };
	json_t *body = api_body(req, programme_spec);

	if (!body)
		return;
	call.body = body;
	api_run(req, programme_put, &call);
	json_decref(body);
}

static enum db_qs
none_found(enum db_qs qs, struct err *err, const char *what)
{
	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no %s", what);
		return DB_ABORT;
	}
	return qs;
}

static enum db_qs
programme_get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct tier_call *call = cls;
	enum db_qs qs = none_found(tiers_programme_get(c, call->shop_id, &out->raw), err,
				   "tier programme");

	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_tier_programme_get(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id };

	api_run(req, programme_get, &call);
}

static enum db_qs
review(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct tier_call *call = cls;
	enum db_qs qs = none_found(tiers_review(c, call->shop_id, &out->raw), err,
				   "tier programme");

	if (qs >= 0)
		out->status = 200;
	return qs;
}

static const struct jv_field review_spec[] = { { .name = NULL } };

void
api_tier_programme_review(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id };
	json_t *body = NULL;

	/* no body, or {} (an unknown member is a 422 like everywhere) */
	if (req->body_len > 0 && !(body = api_body(req, review_spec)))
		return;
	api_run(req, review, &call);
	json_decref(body);
}

static const struct jv_field assign_spec[] = {
	{ .name = "tier", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64,
	  .check = check_code },
	{ .name = "reason", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 500 },
	{ .name = "floor_until", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = NULL },
};

static enum db_qs
assign(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct tier_call *call = cls;
	enum db_qs qs = tiers_assign(c, call->shop_id, &call->assign, &out->raw, err);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no customer %s", call->assign.customer_id);
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_customer_tier_put(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.assign.customer_id) || !(body = api_body(req, assign_spec)))
		return;
	call.assign.tier = api_str(body, "tier");
	call.assign.reason = api_str(body, "reason");
	call.assign.floor_until = api_str(body, "floor_until");
	api_run(req, assign, &call);
	json_decref(body);
}

static enum db_qs
of_customer(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct tier_call *call = cls;
	const char *what;
	enum db_qs qs = tiers_of_customer(c, call->shop_id, call->customer_id, call->history, &what,
					  &out->raw);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no %s%s%s", what,
			strcmp(what, "customer") == 0 ? " " : "",
			strcmp(what, "customer") == 0 ? call->customer_id : "");
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_customer_tier_get(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id };

	if (api_customer_path(req, &call.customer_id))
		api_run(req, of_customer, &call);
}

void
api_customer_tier_history(struct request *req)
{
	struct tier_call call = { .shop_id = req->shop_id, .history = true };

	if (api_customer_path(req, &call.customer_id))
		api_run(req, of_customer, &call);
}
