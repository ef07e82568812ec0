/*
 * segments.c — GET /v1/segments, /v1/segments/{code} and
 * /v1/segments/{code}/customers.  Parse, one domain call, reply.
 */
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/reply.h"
#include "rebuy/segments.h"

struct segment_call {
	const char *shop_id, *code;
	struct segment_page page;
};

static enum db_qs
all(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct segment_call *call = cls;
	enum db_qs qs = segments_all(c, call->shop_id, &out->body);

	(void)err;
	if (qs >= 0)
		out->status = 200;
	return qs;
}

static enum db_qs
one(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct segment_call *call = cls;
	enum db_qs qs = segments_get(c, call->shop_id, call->code, &out->body);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no segment %s", call->code);
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 200;
	return qs;
}

static enum db_qs
members(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct segment_call *call = cls;
	char *items;
	long long next;
	enum db_qs qs = segments_members(c, call->shop_id, call->code, &call->page, &items, &next);

	(void)err;
	if (qs < 0)
		return qs;
	return api_page_reply(out, items, next, qs);
}

void
api_segments_list(struct request *req)
{
	struct segment_call call = { .shop_id = req->shop_id };

	api_run(req, all, &call);
}

/* The {code} of the path: 404 before any work when it names no segment. */
static bool
segment_path(struct request *req, const char **code)
{
	*code = req->params[0];
	if (!segments_known(*code)) {
		reply_error(req, ERR_NOT_FOUND, NULL, "no segment %.64s", *code);
		return false;
	}
	return true;
}

void
api_segments_get(struct request *req)
{
	struct segment_call call = { .shop_id = req->shop_id };

	if (!segment_path(req, &call.code))
		return;
	api_run(req, one, &call);
}

static const char *
check_consent(const char *s)
{
	return strcmp(s, "email") == 0 || strcmp(s, "sms") == 0 || strcmp(s, "wechat") == 0
		       ? NULL
		       : "must be email, sms or wechat";
}

static const char *
check_fields(const char *s)
{
	unsigned mask;

	return segments_parse_fields(s, &mask)
		       ? NULL
		       : "must be a comma-separated list of distinct fields among name, email, "
			 "phone, tags, consent, facts, reason";
}

void
api_segments_members(struct request *req)
{
	struct segment_call call = { .shop_id = req->shop_id };
	const char *fields;

	if (!segment_path(req, &call.code) ||
	    !api_page_params(req, &call.page.limit, &call.page.after) ||
	    !api_query_param(req, "consent", check_consent, 16, &call.page.consent) ||
	    !api_query_param(req, "fields", check_fields, 200, &fields))
		return;
	call.page.fields = SEG_ALL;
	if (fields)
		segments_parse_fields(fields, &call.page.fields);
	api_run(req, members, &call);
}
