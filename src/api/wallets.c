/*
 * wallets.c — prepaid balances: /v1/topup-offers/{code} and
 * /v1/customers/{id}/wallet (top-ups, spends, statement).
 * Parse, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/reply.h"
#include "rebuy/wallets.h"

struct wallet_call {
	const char *shop_id, *customer_id;
	struct wallet_topup topup;
	struct wallet_spend spend;
	bool statement;
};

/* ---- offers ------------------------------------------------------------- */

static const char *
check_every(const char *s)
{
	return strcmp(s, "day") == 0 || strcmp(s, "week") == 0 || strcmp(s, "month") == 0
		? NULL : "must be day, week or month";
}

static const char *
check_expiry(const char *s)
{
	return strcmp(s, "none") == 0 || strcmp(s, "end_of_period") == 0
		? NULL : "must be none or end_of_period";
}

#define MONEY_MAX 1000000000000LL

/* offer and coupon pack codes */
static const char *
check_code(const char *s)
{
	return jv_is_code(s) ? NULL : "must be a code: 1-64 of a-z, 0-9 and -";
}

static const struct jv_field installments_spec[] = {
	{ .name = "count", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = 120 },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = MONEY_MAX },
	{ .name = "every", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 3, .max = 5,
	  .check = check_every },
	{ .name = "interval", .kind = JV_INTEGER, .min = 1, .max = 12 },
	{ .name = NULL },
};

static const struct jv_field bonus_spec[] = {
	{ .name = "immediate", .kind = JV_INTEGER, .min = 0, .max = MONEY_MAX },
	{ .name = "installments", .kind = JV_OBJECT, .flags = JV_NULLABLE,
	  .fields = installments_spec },
	{ .name = "installment_expiry", .kind = JV_STRING, .min = 4, .max = 13,
	  .check = check_expiry },
	{ .name = "expires_after_days", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1,
	  .max = 3660 },
	{ .name = NULL },
};

static const struct jv_field offer_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "min_topup", .kind = JV_INTEGER, .min = 0, .max = MONEY_MAX },
	{ .name = "bonus", .kind = JV_OBJECT, .flags = JV_REQUIRED, .fields = bonus_spec },
	{ .name = "limit_per_customer", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1,
	  .max = 1000 },
	{ .name = "coupon_pack", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 64,
	  .check = check_code },
	{ .name = "active", .kind = JV_BOOLEAN },
	{ .name = NULL },
};

static const struct api_catalogue offers = {
	.what = "offer", .path = "/v1/topup-offers", .spec = offer_spec,
	.put = wallets_offer_put, .get = wallets_offer_get,
};

void
api_topup_offers_put(struct request *req)
{
	api_catalogue_put(req, &offers);
}

void
api_topup_offers_get(struct request *req)
{
	api_catalogue_get(req, &offers);
}

void
api_topup_offers_list(struct request *req)
{
	api_catalogue_list(req, &offers);
}

/* ---- the wallet --------------------------------------------------------- */

static enum db_qs
show(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct wallet_call *call = cls;
	enum db_qs qs = wallets_read(c, call->shop_id, call->customer_id, call->statement, &out->raw);

	qs = api_no_customer(qs, err, call->customer_id);
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_wallet_get(struct request *req)
{
	struct wallet_call call = { .shop_id = req->shop_id };

	if (api_customer_path(req, &call.customer_id))
		api_run(req, show, &call);
}

void
api_wallet_statement(struct request *req)
{
	struct wallet_call call = { .shop_id = req->shop_id, .statement = true };

	if (api_customer_path(req, &call.customer_id))
		api_run(req, show, &call);
}

static const struct jv_field topup_spec[] = {
	{ .name = "topup_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = MONEY_MAX },
	{ .name = "offer", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 64,
	  .check = check_code },
	{ .name = NULL },
};

static enum db_qs
topup(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct wallet_call *call = cls;
	bool created;
	enum db_qs qs = wallets_topup(c, call->shop_id, &call->topup, &created, &out->raw, err);

	qs = api_no_customer(qs, err, call->topup.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

void
api_wallet_topup(struct request *req)
{
	struct wallet_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.topup.customer_id) || !(body = api_body(req, topup_spec)))
		return;
	call.topup.topup_id = api_str(body, "topup_id");
	call.topup.offer = api_str(body, "offer");
	call.topup.amount = json_integer_value(json_object_get(body, "amount"));
	api_run_single(req, topup, &call);
	json_decref(body);
}

static const struct jv_field spend_spec[] = {
	{ .name = "spend_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = MONEY_MAX },
	{ .name = "order_id", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 128 },
	{ .name = NULL },
};

static enum db_qs
spend(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct wallet_call *call = cls;
	bool created;
	enum db_qs qs = wallets_spend(c, call->shop_id, &call->spend, &created, &out->raw, err);

	qs = api_no_customer(qs, err, call->spend.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

void
api_wallet_spend(struct request *req)
{
	struct wallet_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.spend.customer_id) || !(body = api_body(req, spend_spec)))
		return;
	call.spend.spend_id = api_str(body, "spend_id");
	call.spend.order_id = api_str(body, "order_id");
	call.spend.amount = json_integer_value(json_object_get(body, "amount"));
	api_run_single(req, spend, &call);
	json_decref(body);
}

/* ---- refunds and adjustments ---------------------------------------------- */

static const struct jv_field spend_refund_spec[] = {
	{ .name = "refund_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = MONEY_MAX },
	{ .name = NULL },
};

struct refund_call {
	const char *shop_id;
	struct wallet_refund in;
	struct wallet_adjustment adj;
	enum db_qs (*fn)(struct db_conn *, const char *, const struct wallet_refund *, bool *,
			 char **, struct err *);
};

static enum db_qs
refund(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct refund_call *call = cls;
	bool created;
	enum db_qs qs = call->fn(c, call->shop_id, &call->in, &created, &out->raw, err);

	qs = api_no_customer(qs, err, call->in.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

/* {id} and the spend or top-up id of the path; a malformed id names nothing. */
static bool
refund_path(struct request *req, struct wallet_refund *in, const char *what)
{
	if (!api_customer_path(req, &in->customer_id))
		return false;
	in->ref = req->params[1];
	if (strlen(in->ref) <= 128 && !api_check_id(in->ref))
		return true;
	reply_error(req, ERR_NOT_FOUND, NULL, "no %s %.64s", what, in->ref);
	return false;
}

void
api_wallet_spend_refund(struct request *req)
{
	struct refund_call call = { .shop_id = req->shop_id, .fn = wallets_spend_refund };
	json_t *body;

	if (!refund_path(req, &call.in, "spend") || !(body = api_body(req, spend_refund_spec)))
		return;
	call.in.refund_id = api_str(body, "refund_id");
	call.in.amount = json_integer_value(json_object_get(body, "amount"));
	api_run_single(req, refund, &call);
	json_decref(body);
}

static const struct jv_field empty_spec[] = { { .name = NULL } };

void
api_wallet_topup_refund(struct request *req)
{
	struct refund_call call = { .shop_id = req->shop_id, .fn = wallets_topup_refund };
	json_t *body = NULL;

	if (!refund_path(req, &call.in, "top-up"))
		return;
	/* no body, or {} */
	if (req->body_len > 0 && !(body = api_body(req, empty_spec)))
		return;
	api_run_single(req, refund, &call);
	json_decref(body);
}

static const struct jv_field adjustment_spec[] = {
	{ .name = "adjustment_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = api_check_id },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = -MONEY_MAX,
	  .max = MONEY_MAX },
	{ .name = "reason", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 500 },
	{ .name = NULL },
};

static enum db_qs
adjust(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct refund_call *call = cls;
	bool created;
	enum db_qs qs = wallets_adjust(c, call->shop_id, &call->adj, &created, &out->raw, err);

	qs = api_no_customer(qs, err, call->adj.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

void
api_wallet_adjust(struct request *req)
{
	struct refund_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.adj.customer_id) ||
	    !(body = api_body(req, adjustment_spec)))
		return;
	call.adj.adjustment_id = api_str(body, "adjustment_id");
	call.adj.reason = api_str(body, "reason");
	call.adj.amount = json_integer_value(json_object_get(body, "amount"));
	if (call.adj.amount == 0)
		reply_error(req, ERR_VALIDATION, "/amount", "/amount: an adjustment is not 0");
	else
		api_run_single(req, adjust, &call);
	json_decref(body);
}
