/*
 * rfm.c — GET/PUT /v1/rfm/map and GET /v1/rfm/summary.  Parse, one
 * domain call, reply.
 */
#include "rebuy/api.h"
#include "rebuy/rfm.h"

struct rfm_call {
	const char *shop_id;
	json_t *body;
};

static enum db_qs
map_get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct rfm_call *call = cls;
	enum db_qs qs = rfm_map_get(c, call->shop_id, &out->body);

	(void)err;
	if (qs >= 0)
		out->status = 200;
	return qs;
}

static enum db_qs
map_put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct rfm_call *call = cls;
	enum db_qs qs = rfm_map_put(c, call->shop_id, call->body, &out->body, err);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

static enum db_qs
summary(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct rfm_call *call = cls;
	enum db_qs qs = rfm_summary(c, call->shop_id, &out->body);

	(void)err;
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_rfm_map_get(struct request *req)
{
	struct rfm_call call = { .shop_id = req->shop_id };

	api_run(req, map_get, &call);
}

void
api_rfm_map_put(struct request *req)
{
	struct rfm_call call = { .shop_id = req->shop_id };

	call.body = api_body(req, rfm_map_spec);
	if (!call.body)
		return;
	api_run(req, map_put, &call);
	json_decref(call.body);
}

void
api_rfm_summary(struct request *req)
{
	struct rfm_call call = { .shop_id = req->shop_id };

	api_run(req, summary, &call);
}
