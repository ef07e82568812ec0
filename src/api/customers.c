/*
 * customers.c — PUT/GET/DELETE /v1/customers/{id}, GET /v1/customers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/rfm.h"
#include "rebuy/customers.h"
#include "rebuy/reply.h"

#define ATTRIBUTES_MAX_BYTES 4096

static const char *
check_email(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@') || strpbrk(s, " \t\r\n"))
		return "must be an email address like name@example.com";
	return NULL;
}

static const char *
check_phone(const char *s)
{
	if (strspn(s, "0123456789 +()-") != strlen(s) || !strpbrk(s, "0123456789"))
		return "may contain only digits, spaces and + ( ) -";
	return NULL;
}

static const struct jv_field consent_channel_spec[] = {
	{ .name = "granted", .kind = JV_BOOLEAN, .flags = JV_REQUIRED },
	{ .name = "at", .kind = JV_TIMESTAMP },
	{ .name = NULL },
};

static const struct jv_field consent_spec[] = {
	{ .name = "email", .kind = JV_OBJECT, .fields = consent_channel_spec },
	{ .name = "sms", .kind = JV_OBJECT, .fields = consent_channel_spec },
	{ .name = "wechat", .kind = JV_OBJECT, .fields = consent_channel_spec },
	{ .name = NULL },
};

static const struct jv_field tag_spec = {
	.kind = JV_STRING, .min = 1, .max = 64, .check = jv_check_token,
};

static const struct jv_field customer_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 200 },
	{ .name = "email", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 3, .max = 254,
	  .check = check_email },
	{ .name = "phone", .kind = JV_STRING, .flags = JV_NULLABLE, .min = 1, .max = 32,
	  .check = check_phone },
	{ .name = "tags", .kind = JV_ARRAY, .flags = JV_UNIQUE, .max = 50, .items = &tag_spec },
	{ .name = "consent", .kind = JV_OBJECT, .fields = consent_spec },
	{ .name = "attributes", .kind = JV_ANY_OBJECT },
	{ .name = NULL },
};

struct customer_call {
	const char *shop_id, *id;
	struct customer_input in;
	struct customer_filter filter;
	bool with_rfm; /* GET ?include=rfm */
};

static const char *
check_include(const char *s)
{
	return strcmp(s, "rfm") == 0 ? NULL : "must be rfm";
}

/* The {id} of the path, or a 400 naming it. */
bool
api_customer_path(struct request *req, const char **id)
{
	*id = req->params[0];
	if (!customers_id_valid(*id)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/path/id",
			    "customer id %s", customers_check_id(*id));
		return false;
	}
	return true;
}

static enum db_qs
put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct customer_call *call = cls;
	bool created = false;
	enum db_qs qs = customers_put(c, call->shop_id, call->id, &call->in, &out->raw,
				      &created);

	(void)err;
	if (qs < 0)
		return qs;
	out->status = created ? 201 : 200;
	if (created)
		snprintf(out->location, sizeof out->location, "/v1/customers/%s", call->id);
	return qs;
}

void
api_customers_put(struct request *req)
{
	struct customer_call call = { .shop_id = req->shop_id };
	json_t *body, *empty_tags = NULL;

	if (!api_customer_path(req, &call.id))
		return;
	body = api_body(req, customer_spec);
	if (!body)
		return;
	call.in.name = api_str(body, "name");
	call.in.email = api_str(body, "email");
	call.in.phone = api_str(body, "phone");
	call.in.tags = json_object_get(body, "tags");
	if (!call.in.tags)
		call.in.tags = empty_tags = json_array();
	/* the body was validated: its attributes member is the one stored */
	call.in.attributes_doc = req->body;
	if (json_dumpb(json_object_get(body, "attributes"), NULL, 0, JSON_COMPACT) >
	    ATTRIBUTES_MAX_BYTES) {
		reply_error(req, ERR_VALIDATION, "/attributes",
			    "/attributes: must serialize to at most %d bytes",
			    ATTRIBUTES_MAX_BYTES);
		goto out;
	}
	for (int ch = 0; ch < CHANNEL__COUNT; ch++) {
		json_t *cons = json_object_get(json_object_get(body, "consent"),
					       customer_channel_names[ch]);

		/* an omitted channel is no consent: replace semantics */
		call.in.consent[ch].granted = json_is_true(json_object_get(cons, "granted"));
		call.in.consent[ch].at = api_str(cons, "at");
	}
	api_run(req, put, &call);
out:
	json_decref(empty_tags);
	json_decref(body);
}

static enum db_qs
get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct customer_call *call = cls;
	enum db_qs qs = customers_get(c, call->shop_id, call->id, &out->raw);

	if (qs == 0) {
		err_set(err, ERR_NOT_FOUND, NULL, "customer not found");
		return DB_ABORT;
	}
	/* RFM ranks the customer among all the shop's: asked for, not by default */
	if (qs > 0 && call->with_rfm)
		qs = rfm_attach(c, call->shop_id, call->id, &out->raw);
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_customers_get(struct request *req)
{
	struct customer_call call = { .shop_id = req->shop_id };
	const char *include;

	if (!api_customer_path(req, &call.id) ||
	    !api_query_param(req, "include", check_include, 16, &include))
		return;
	call.with_rfm = include != NULL;
	api_run(req, get, &call);
}

static enum db_qs
erase(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct customer_call *call = cls;
	enum db_qs qs = customers_erase(c, call->shop_id, call->id);

	if (qs == 0) {
		err_set(err, ERR_NOT_FOUND, NULL, "customer not found");
		return DB_ABORT;
	}
	out->status = 204;
	return qs;
}

void
api_customers_delete(struct request *req)
{
	struct customer_call call = { .shop_id = req->shop_id };

	if (!api_customer_path(req, &call.id))
		return;
	api_run(req, erase, &call);
}

static enum db_qs
list(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct customer_call *call = cls;
	long long next = 0;
	char *items = NULL;
	enum db_qs qs = customers_list(c, call->shop_id, &call->filter, &items, &next);

	(void)err;
	return qs < 0 ? qs : api_page_reply(out, items, next, qs);
}

void
api_customers_list(struct request *req)
{
	struct customer_call call = { .shop_id = req->shop_id };
	struct customer_filter *f = &call.filter;
	const char *consent = request_query(req, "consent");

	f->consent = -1;
	if (!api_page_params(req, &f->limit, &f->after))
		return;
	f->tag = request_query(req, "tag");
	if (f->tag && (!*f->tag || strlen(f->tag) > 64 || jv_check_token(f->tag))) {
		reply_error(req, ERR_INVALID_PARAMETER, "/query/tag",
			    "tag must be 1-64 characters of letters, digits and . _ : -");
		return;
	}
	if (consent) {
		for (int ch = 0; ch < CHANNEL__COUNT; ch++)
			if (strcmp(consent, customer_channel_names[ch]) == 0)
				f->consent = ch;
		if (f->consent < 0) {
			reply_error(req, ERR_INVALID_PARAMETER, "/query/consent",
				    "consent must be one of email, sms, wechat");
			return;
		}
	}
	f->created_after = request_query(req, "created_after");
	f->created_before = request_query(req, "created_before");
	if (f->created_after && !jv_is_timestamp(f->created_after)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/query/created_after",
			    "created_after must be an RFC 3339 date-time");
		return;
	}
	if (f->created_before && !jv_is_timestamp(f->created_before)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/query/created_before",
			    "created_before must be an RFC 3339 date-time");
		return;
	}
	api_run(req, list, &call);
}
