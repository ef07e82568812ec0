/*
 * traffic.c — POST /v1/traffic: the storefront posts visitors and
 * sessions per day and channel.  Parse, one domain call, reply.
 */
#include "rebuy/api.h"
#include "rebuy/traffic.h"

struct traffic_call {
	const char *shop_id;
	json_t *days;
};

static enum db_qs
post(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct traffic_call *call = cls;
	enum db_qs qs = traffic_post(c, call->shop_id, call->days, &out->body, err);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_traffic_post(struct request *req)
{
	struct traffic_call call = { .shop_id = req->shop_id };
	json_t *body = api_body(req, traffic_body_spec);

	if (!body)
		return;
	call.days = json_object_get(body, "days");
	api_run(req, post, &call);
	json_decref(body);
}
