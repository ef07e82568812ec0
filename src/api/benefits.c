/*
 * benefits.c — /v1/benefits/{code} and
 * /v1/customers/{id}/benefits/{code}/uses.  Parse, one domain call, reply.
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/benefits.h"
#include "rebuy/reply.h"

struct benefit_call {
	const char *shop_id, *code;
	struct benefit_input in;
	struct benefit_use use;
};

static const char *
check_period(const char *s)
{
	static const char *const periods[] = { "day", "week", "month", "year" };

	for (size_t i = 0; i < 4; i++)
		if (strcmp(s, periods[i]) == 0)
			return NULL;
	return "must be day, week, month or year";
}

static const struct jv_field benefit_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "period", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 3, .max = 5,
	  .check = check_period },
	{ .name = "valid_from", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = "valid_until", .kind = JV_TIMESTAMP, .flags = JV_NULLABLE },
	{ .name = NULL },
};

/* {code} of /v1/benefits/{code}: a PUT of a bad code is a 400, a GET names nothing. */
static bool
benefit_path(struct request *req, const char *code, bool put)
{
	if (jv_is_code(code))
		return true;
	if (put)
		reply_error(req, ERR_INVALID_PARAMETER, "/path/code",
			    "benefit code must be 1-64 of a-z, 0-9 and -");
	else
		reply_error(req, ERR_NOT_FOUND, NULL, "no benefit %.64s", code);
	return false;
}

/* valid_until after valid_from, compared as instants (the offsets may differ) */
static bool
window_ok(const char *from, const char *until)
{
	char f[28], u[28];

	if (!from || !until)
		return true;
	/* both were checked as RFC 3339 timestamps */
	return jv_timestamp_utc(from, f) && jv_timestamp_utc(until, u) && strcmp(f, u) < 0;
}

static enum db_qs
put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct benefit_call *call = cls;
	bool created = false;
	enum db_qs qs = benefits_put(c, call->shop_id, call->code, &call->in, &created, &out->raw);

	(void)err;
	if (qs >= 0) {
		out->status = created ? 201 : 200;
		if (created)
			snprintf(out->location, sizeof out->location, "/v1/benefits/%s", call->code);
	}
	return qs;
}

void
api_benefits_put(struct request *req)
{
	struct benefit_call call = { .shop_id = req->shop_id, .code = req->params[0] };
	json_t *body;

	if (!benefit_path(req, call.code, true) || !(body = api_body(req, benefit_spec)))
		return;
	call.in = (struct benefit_input){
		.name = api_str(body, "name"),
		.period = api_str(body, "period"),
		.valid_from = api_str(body, "valid_from"),
		.valid_until = api_str(body, "valid_until"),
	};
	if (!window_ok(call.in.valid_from, call.in.valid_until))
		reply_error(req, ERR_VALIDATION, "/valid_until", "/valid_until: must be after valid_from");
	else
		api_run(req, put, &call);
	json_decref(body);
}

static enum db_qs
get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct benefit_call *call = cls;
	enum db_qs qs = benefits_get(c, call->shop_id, call->code, &out->raw);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no benefit %s", call->code);
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_benefits_get(struct request *req)
{
	struct benefit_call call = { .shop_id = req->shop_id, .code = req->params[0] };

	if (benefit_path(req, call.code, false))
		api_run(req, get, &call);
}

void
api_benefits_list(struct request *req)
{
	struct benefit_call call = { .shop_id = req->shop_id };

	api_run(req, get, &call);
}

/* use ids: printable ASCII without spaces, as Idempotency-Key */
static const char *
check_use_id(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return "must be printable ASCII without spaces";
	return NULL;
}

static const struct jv_field use_spec[] = {
	{ .name = "use_id", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 128,
	  .check = check_use_id },
	{ .name = "quantity", .kind = JV_INTEGER, .min = 1, .max = 1000 },
	{ .name = "note", .kind = JV_STRING, .flags = JV_NULLABLE, .max = 500 },
	{ .name = NULL },
};

static enum db_qs
use(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct benefit_call *call = cls;
	bool created = false;
	const char *what = "customer";
	enum db_qs qs = benefits_use(c, call->shop_id, &call->use, &created, &what, &out->raw, err);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no %s %s", what,
			strcmp(what, "customer") == 0 ? call->use.customer_id : call->use.benefit);
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = created ? 201 : 200;
	return qs;
}

void
api_customer_benefit_use(struct request *req)
{
	struct benefit_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!api_customer_path(req, &call.use.customer_id))
		return;
	call.use.benefit = req->params[1];
	if (!jv_is_code(call.use.benefit)) {
		reply_error(req, ERR_NOT_FOUND, NULL, "no benefit %.64s", call.use.benefit);
		return;
	}
	if (!(body = api_body(req, use_spec)))
		return;
	call.use.use_id = api_str(body, "use_id");
	call.use.note = api_str(body, "note");
	call.use.quantity = json_object_get(body, "quantity")
		? json_integer_value(json_object_get(body, "quantity")) : 1;
	api_run(req, use, &call);
	json_decref(body);
}
