/*
 * memberships.c — paid memberships: /v1/membership-plans/{code},
 * /v1/customers/{id}/memberships, /v1/customers/{id}/membership and
 * /v1/memberships/{id} (renew, cancel).  Parse, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/benefits.h"
#include "rebuy/memberships.h"
#include "rebuy/reply.h"

struct membership_call {
	const char *shop_id, *id; /* plan code, customer id or membership id */
	struct plan_input plan;
	struct membership_purchase buy;
	bool pro_rata, active_only;
	enum { RENEW, CANCEL } action;
};

/* A domain call that found nothing: the 404 of the resource. */
static enum db_qs
absent(enum db_qs qs, struct err *err, const char *what, const char *id)
{
	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no %s %s", what, id);
		return DB_ABORT;
	}
	return qs;
}

/* ---- plans -------------------------------------------------------------- */

static const struct jv_field plan_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "fee", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = 1000000000000LL },
	{ .name = "duration_days", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = 3660 },
	{ .name = "discount_bp", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0, .max = 10000 },
	{ .name = "active", .kind = JV_BOOLEAN },
	{ .name = "benefits", .kind = JV_ANY_OBJECT },
	{ .name = NULL },
};

static enum db_qs
plan_put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	bool created = false;
	enum db_qs qs = memberships_plan_put(c, call->shop_id, call->id, &call->plan, &created,
					     &out->raw, err);

	if (qs >= 0) {
		out->status = created ? 201 : 200;
		if (created)
			snprintf(out->location, sizeof out->location, "/v1/membership-plans/%s",
				 call->id);
	}
	return qs;
}

static bool
plan_path(struct request *req, const char **code, bool put)
{
	*code = req->params[0];
	if (jv_is_code(*code))
		return true;
	/* a GET of a code that cannot exist names nothing */
	if (put)
		reply_error(req, ERR_INVALID_PARAMETER, "/path/code",
			    "plan code must be 1-64 of a-z, 0-9 and -");
	else
		reply_error(req, ERR_NOT_FOUND, NULL, "no plan %.64s", *code);
	return false;
}

void
api_membership_plans_put(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };
	struct err err;
	char *benefits;
	json_t *body;

	if (!plan_path(req, &call.id, true) || !(body = api_body(req, plan_spec)))
		return;
	call.plan = (struct plan_input){
		.name = api_str(body, "name"),
		.fee = json_integer_value(json_object_get(body, "fee")),
		.duration_days = json_integer_value(json_object_get(body, "duration_days")),
		.discount_bp = json_integer_value(json_object_get(body, "discount_bp")),
		.active = !json_is_false(json_object_get(body, "active")),
	};
	call.plan.benefits = benefits = benefits_quota_map(json_object_get(body, "benefits"),
							   "/benefits", &err);
	if (benefits)
		api_run(req, plan_put, &call);
	else
		reply_problem(req, &err);
	free(benefits);
	json_decref(body);
}

static enum db_qs
plan_get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	enum db_qs qs = absent(memberships_plan_get(c, call->shop_id, call->id, &out->raw), err,
			       "plan", call->id);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_membership_plans_list(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };

	api_run(req, plan_get, &call);
}

void
api_membership_plans_get(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };

	if (plan_path(req, &call.id, false))
		api_run(req, plan_get, &call);
}

/* ---- memberships -------------------------------------------------------- */

static const struct jv_field buy_spec[] = {
	{ .name = "plan", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = "card_number", .kind = JV_STRING, .min = 4, .max = 32,
	  .check = memberships_check_card },
	{ .name = "starts_at", .kind = JV_TIMESTAMP },
	{ .name = NULL },
};

static enum db_qs
buy(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	char id[37];
	enum db_qs qs = absent(memberships_buy(c, call->shop_id, &call->buy, &out->raw, id, err),
			       err, "customer", call->buy.customer_id);

	if (qs >= 0) {
		out->status = 201;
		snprintf(out->location, sizeof out->location, "/v1/memberships/%s", id);
	}
	return qs;
}

void
api_customer_memberships_post(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.buy.customer_id) || !(body = api_body(req, buy_spec)))
		return;
	call.buy.plan = api_str(body, "plan");
	call.buy.card_number = api_str(body, "card_number");
	call.buy.starts_at = api_str(body, "starts_at");
	/* only an admin records a membership sold before: storefronts sell now */
	if (call.buy.starts_at && req->scope != SCOPE_ADMIN)
		reply_error(req, ERR_FORBIDDEN, "/starts_at",
			    "only an admin key may record a membership that started before now");
	else
		api_run(req, buy, &call);
	json_decref(body);
}

static enum db_qs
of_customer(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	enum db_qs qs = absent(memberships_of_customer(c, call->shop_id, call->id, call->active_only,
						       &out->raw),
			       err, "customer", call->id);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_customer_memberships_list(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };

	if (api_customer_path(req, &call.id))
		api_run(req, of_customer, &call);
}

void
api_customer_membership_get(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id, .active_only = true };

	if (api_customer_path(req, &call.id))
		api_run(req, of_customer, &call);
}

/* {id} of /v1/memberships/{id}: not a uuid names no membership. */
static bool
membership_path(struct request *req, const char **id)
{
	*id = req->params[0];
	if (api_uuid_valid(*id))
		return true;
	reply_error(req, ERR_NOT_FOUND, NULL, "no membership %.64s", *id);
	return false;
}

static enum db_qs
get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	enum db_qs qs = absent(memberships_get(c, call->shop_id, call->id, &out->raw), err,
			       "membership", call->id);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_memberships_get(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id };

	if (membership_path(req, &call.id))
		api_run(req, get, &call);
}

static enum db_qs
change(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct membership_call *call = cls;
	enum db_qs qs = call->action == RENEW
		? memberships_renew(c, call->shop_id, call->id, &out->raw, err)
		: memberships_cancel(c, call->shop_id, call->id, call->pro_rata, &out->raw, err);

	qs = absent(qs, err, "membership", call->id);
	if (qs >= 0)
		out->status = 200;
	return qs;
}

static const struct jv_field renew_spec[] = { { .name = NULL } };

static const char *
check_refund(const char *s)
{
	return strcmp(s, "none") == 0 || strcmp(s, "pro_rata") == 0 ? NULL
								    : "must be none or pro_rata";
}

static const struct jv_field cancel_spec[] = {
	{ .name = "refund", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 16,
	  .check = check_refund },
	{ .name = NULL },
};

void
api_memberships_renew(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id, .action = RENEW };
	json_t *body;

	if (!membership_path(req, &call.id) || !(body = api_body(req, renew_spec)))
		return;
	api_run(req, change, &call);
	json_decref(body);
}

void
api_memberships_cancel(struct request *req)
{
	struct membership_call call = { .shop_id = req->shop_id, .action = CANCEL };
	json_t *body;

	if (!membership_path(req, &call.id) || !(body = api_body(req, cancel_spec)))
		return;
	call.pro_rata = strcmp(api_str(body, "refund"), "pro_rata") == 0;
	api_run(req, change, &call);
	json_decref(body);
}
