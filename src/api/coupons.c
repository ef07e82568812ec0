/*
 * coupons.c — coupon packs: /v1/coupon-packs/{code}, a customer's grants
 * (/v1/customers/{id}/coupon-grants), coupons and their redemption.
 * Parse, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/coupons.h"
#include "rebuy/reply.h"

/* ---- packs --------------------------------------------------------------- */

static const char *
check_validity(const char *s)
{
	return strcmp(s, "in_order") == 0 || strcmp(s, "own_month") == 0
		? NULL : "must be in_order or own_month";
}

static const struct jv_field pack_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "count", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1, .max = 120 },
	{ .name = "amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 1,
	  .max = 1000000000000LL },
	{ .name = "min_spend", .kind = JV_INTEGER, .min = 0, .max = 1000000000000LL },
	{ .name = "validity", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 8, .max = 9,
	  .check = check_validity },
	{ .name = "expires_after_months", .kind = JV_INTEGER, .flags = JV_NULLABLE, .min = 1,
	  .max = 120 },
	{ .name = "active", .kind = JV_BOOLEAN },
	{ .name = NULL },
};

static const struct api_catalogue packs = {
	.what = "coupon pack", .path = "/v1/coupon-packs", .spec = pack_spec,
	.put = coupons_pack_put, .get = coupons_pack_get,
};

void
api_coupon_packs_put(struct request *req)
{
	api_catalogue_put(req, &packs);
}

void
api_coupon_packs_get(struct request *req)
{
	api_catalogue_get(req, &packs);
}

void
api_coupon_packs_list(struct request *req)
{
	api_catalogue_list(req, &packs);
}

/* ---- a customer's grants and coupons ------------------------------------------ */

struct coupon_run {
	const char *shop_id;
	struct coupon_call in;
	enum db_qs (*write)(struct db_conn *, const char *, const struct coupon_call *, bool *,
			    char **, struct err *);
};

static enum db_qs
coupon_write(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct coupon_run *run = cls;
	bool created;
	enum db_qs qs = run->write(c, run->shop_id, &run->in, &created, &out->raw, err);

	qs = api_no_customer(qs, err, run->in.customer_id);
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

static enum db_qs
coupon_read(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct coupon_run *run = cls;
	enum db_qs qs = coupons_get(c, run->shop_id, &run->in, &out->raw, err);

	qs = api_no_customer(qs, err, run->in.customer_id);
	if (qs >= 0)
		out->status = 200;
	return qs;
}

/* {id}, then the grant id and coupon number of the path when there are; bad ones name nothing. */
static bool
coupon_path(struct request *req, struct coupon_call *in, int n)
{
	if (!api_customer_path(req, &in->customer_id))
		return false;
	if (n > 1) {
		in->grant_id = req->params[1];
		if (strlen(in->grant_id) > 140 || api_check_id(in->grant_id)) {
			reply_error(req, ERR_NOT_FOUND, NULL, "no coupon grant %.64s", in->grant_id);
			return false;
		}
	}
	if (n > 2) {
		if (api_check_version(req->params[2])) {
			reply_error(req, ERR_NOT_FOUND, NULL, "no coupon %.16s", req->params[2]);
			return false;
		}
		in->number = atoll(req->params[2]);
	}
	return true;
}

/* grant ids the storefront chooses; "topup:" ones are the top-ups' own */
static const char *
check_grant_id(const char *s)
{
	return strncmp(s, "topup:", 6) == 0 ? "must not start with topup: (the top-ups' grants)"
					    : api_check_id(s);
}

static const struct jv_field grant_spec[] = {
	{ .name = "grant_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = check_grant_id },
	{ .name = "pack", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = NULL },
};

void
api_coupon_grants_post(struct request *req)
{
	struct coupon_run run = { .shop_id = req->shop_id, .write = coupons_grant };
	json_t *body;

	if (!coupon_path(req, &run.in, 1) || !(body = api_body(req, grant_spec)))
		return;
	run.in.grant_id = api_str(body, "grant_id");
	run.in.pack = api_str(body, "pack");
	api_run_single(req, coupon_write, &run);
	json_decref(body);
}

void
api_coupon_grant_get(struct request *req)
{
	struct coupon_run run = { .shop_id = req->shop_id };

	if (coupon_path(req, &run.in, 2))
		api_run(req, coupon_read, &run);
}

static const char *
check_status(const char *s)
{
	static const char *const ok[] = { "upcoming", "valid", "redeemed", "expired", "cancelled" };

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(s, ok[i]) == 0)
			return NULL;
	return "must be upcoming, valid, redeemed, expired or cancelled";
}

void
api_customer_coupons_list(struct request *req)
{
	struct coupon_run run = { .shop_id = req->shop_id };

	if (coupon_path(req, &run.in, 1) &&
	    api_query_param(req, "status", check_status, 16, &run.in.status))
		api_run(req, coupon_read, &run);
}

static const struct jv_field redeem_spec[] = {
	{ .name = "order_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128 },
	{ .name = "order_amount", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0,
	  .max = 1000000000000LL },
	{ .name = NULL },
};

void
api_coupon_redeem(struct request *req)
{
	struct coupon_run run = { .shop_id = req->shop_id, .write = coupons_redeem };
	json_t *body;

	if (!coupon_path(req, &run.in, 3) || !(body = api_body(req, redeem_spec)))
		return;
	run.in.order_id = api_str(body, "order_id");
	run.in.order_amount = json_integer_value(json_object_get(body, "order_amount"));
	api_run_single(req, coupon_write, &run);
	json_decref(body);
}
