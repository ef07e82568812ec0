/*
 * segments.c — GET /v1/segments, /v1/segments/{code} and
 * /v1/segments/{code}/customers.  Parse, one domain call, reply.
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/reply.h"
#include "rebuy/segments.h"

struct segment_call {
	const char *shop_id, *code;
	struct segment_page page;
	enum segment_format format;
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

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no segment %s", call->code);
		return DB_ABORT;
	}
	if (qs < 0)
		return qs;
	return api_page_reply(out, items, next, qs);
}

static enum db_qs
export(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct segment_call *call = cls;
	struct segment_export *x;
	bool csv = call->format == SEGMENT_CSV;
	enum db_qs qs = segments_export(c, call->shop_id, call->code, &call->page, call->format,
					&x, err);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no segment %s", call->code);
		return DB_ABORT;
	}
	if (qs < 0)
		return qs;
	out->status = 200;
	out->stream.content_type = csv ? "text/csv; charset=utf-8; header=present"
				       : "application/x-ndjson";
	/* codes are [a-z0-9-]: safe in a quoted file name */
	snprintf(out->stream.disposition, sizeof out->stream.disposition,
		 "attachment; filename=\"%s.%s\"", call->code, csv ? "csv" : "ndjson");
	out->stream.read = segments_export_read;
	out->stream.done = segments_export_free;
	out->stream.cls = x;
	return DB_ONE_RESULT;
}

void
api_segments_list(struct request *req)
{
	struct segment_call call = { .shop_id = req->shop_id };

	api_run(req, all, &call);
}

/* The {code} of the path: 404 before any work when it cannot name a segment. */
static bool
segment_path(struct request *req, const char **code)
{
	*code = req->params[0];
	if (!segments_known(*code) && !jv_is_code(*code)) {
		reply_error(req, ERR_NOT_FOUND, NULL, "no segment %.64s", *code);
		return false;
	}
	return true;
}

/* PUT and DELETE name a custom code: a malformed one is the caller's error. */
static bool
custom_path(struct request *req, const char **code)
{
	*code = req->params[0];
	if (!jv_is_code(*code)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/path/code",
			    "segment code must be 1-64 of a-z, 0-9 and -");
		return false;
	}
	return true;
}

static const struct jv_field segment_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "description", .kind = JV_STRING, .flags = JV_NULLABLE, .max = 1000 },
	/* checked in depth by the filter compiler */
	{ .name = "filter", .kind = JV_ANY_OBJECT, .flags = JV_REQUIRED },
	{ .name = NULL },
};

struct put_call {
	const char *shop_id, *code;
	struct segment_input in;
};

static enum db_qs
put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct put_call *call = cls;
	bool created = false;
	enum db_qs qs = segments_put(c, call->shop_id, call->code, &call->in, &created, &out->body,
				     err);

	if (qs >= 0) {
		out->status = created ? 201 : 200;
		if (created)
			snprintf(out->location, sizeof out->location, "/v1/segments/%s", call->code);
	}
	return qs;
}

void
api_segments_put(struct request *req)
{
	struct put_call call = { .shop_id = req->shop_id };
	json_t *body;

	if (!custom_path(req, &call.code))
		return;
	body = api_body(req, segment_spec);
	if (!body)
		return;
	call.in.name = api_str(body, "name");
	call.in.description = api_str(body, "description");
	call.in.filter = json_object_get(body, "filter");
	api_run(req, put, &call);
	json_decref(body);
}

static enum db_qs
delete(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct segment_call *call = cls;
	enum db_qs qs = segments_delete(c, call->shop_id, call->code, err);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no segment %s", call->code);
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 204;
	return qs;
}

void
api_segments_delete(struct request *req)
{
	struct segment_call call = { .shop_id = req->shop_id };

	if (!custom_path(req, &call.code))
		return;
	api_run(req, delete, &call);
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

/* A page of JSON, or the whole segment as CSV or NDJSON (by Accept). */
void
api_segments_members(struct request *req)
{
	static const char *const offers[] = { "application/json", "text/csv", "application/x-ndjson",
					      NULL };
	struct segment_call call = { .shop_id = req->shop_id };
	const char *fields;
	int as;

	if (!segment_path(req, &call.code) || (as = api_accept(req, offers)) < 0 ||
	    !api_page_params(req, &call.page.limit, &call.page.after) ||
	    !api_query_param(req, "consent", check_consent, 16, &call.page.consent) ||
	    !api_query_param(req, "fields", check_fields, 200, &fields))
		return;
	if (as > 0 && request_query(req, "limit")) {
		reply_error(req, ERR_INVALID_PARAMETER, "/query/limit",
			    "limit: an export is the whole segment (limit pages the JSON list)");
		return;
	}
	call.page.fields = SEG_ALL;
	if (fields)
		segments_parse_fields(fields, &call.page.fields);
	call.format = as == 1 ? SEGMENT_CSV : SEGMENT_NDJSON;
	api_run(req, as ? export : members, &call);
}
