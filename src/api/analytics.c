/*
 * analytics.c — GET /v1/metrics/...: the repurchase metrics of the caller's
 * shop.  Parse the query, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/analytics.h"
#include "rebuy/api.h"
#include "rebuy/reply.h"

struct metrics_call {
	const char *shop_id;
	struct analytics_query q;
	enum db_qs (*fn)(struct db_conn *, const char *, const struct analytics_query *,
			 json_t **, struct err *);
};

static enum db_qs
run(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct metrics_call *call = cls;
	enum db_qs qs = call->fn(c, call->shop_id, &call->q, &out->body, err);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

/* Reply 400 for a bad value of a query parameter. */
static bool
bad(struct request *req, const char *name, const char *why)
{
	char ptr[48];

	snprintf(ptr, sizeof ptr, "/query/%s", name);
	reply_error(req, ERR_INVALID_PARAMETER, ptr, "%s: %s", name, why);
	return false;
}

static bool
date_param(struct request *req, const char *name, const char **out)
{
	*out = request_query(req, name);
	return !*out || analytics_date_valid(*out) ||
	       bad(req, name, "must be a date YYYY-MM-DD");
}

static bool
token_param(struct request *req, const char *name, const char **out)
{
	const char *why;

	*out = request_query(req, name);
	if (!*out)
		return true;
	why = strlen(*out) > 64 ? "too long" : jv_check_token(*out);
	return !why || bad(req, name, why);
}

/* from, to, as_of, channel: what every metric takes. */
static bool
common_params(struct request *req, struct analytics_query *q)
{
	return date_param(req, "from", &q->from) && date_param(req, "to", &q->to) &&
	       date_param(req, "as_of", &q->as_of) && token_param(req, "channel", &q->channel);
}

void
api_metrics_repurchase(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_repurchase };
	const char *w;

	call.q.window_days = 90;
	if (!common_params(req, &call.q))
		return;
	if ((w = request_query(req, "window_days"))) {
		char *end;
		long v = strtol(w, &end, 10);

		if (!*w || *end || strspn(w, "0123456789") != strlen(w) || v < 1 || v > 3650) {
			bad(req, "window_days", "must be a whole number of days from 1 to 3650");
			return;
		}
		call.q.window_days = (int)v;
	}
	call.q.interval = request_query(req, "interval");
	if (call.q.interval && strcmp(call.q.interval, "week") != 0 &&
	    strcmp(call.q.interval, "month") != 0) {
		bad(req, "interval", "must be week or month");
		return;
	}
	api_run(req, run, &call);
}

void
api_metrics_second_purchase(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_second_purchase };

	if (!common_params(req, &call.q) || !token_param(req, "category", &call.q.category))
		return;
	api_run(req, run, &call);
}
