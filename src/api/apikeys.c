/*
 * apikeys.c — POST/GET /v1/api-keys, DELETE /v1/api-keys/{id} (admin).
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/apikeys.h"
#include "rebuy/auth.h"
#include "rebuy/reply.h"

static const char *
check_shop_scope(const char *s)
{
	/* platform keys are made by the CLI, never over HTTP */
	if (strcmp(s, "admin") == 0 || strcmp(s, "storefront") == 0 ||
	    strcmp(s, "readonly") == 0)
		return NULL;
	return "must be one of admin, storefront, readonly";
}

static const struct jv_field key_create_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 100 },
	{ .name = "scope", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 20,
	  .check = check_shop_scope },
	{ .name = NULL },
};

struct key_call {
	const char *shop_id, *id, *name, *scope;
};

static enum db_qs
create(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct key_call *call = cls;
	enum db_qs qs = apikeys_create(c, call->shop_id, call->name, call->scope,
				       &out->body, err);

	if (qs < 0)
		return qs;
	out->status = 201;
	snprintf(out->location, sizeof out->location, "/v1/api-keys/%s",
		 json_string_value(json_object_get(out->body, "id")));
	out->replay_body = json_deep_copy(out->body);
	if (!out->replay_body) /* never fall back to storing the secret */
		return DB_HARD_ERROR;
	json_object_del(out->replay_body, "key"); /* secrets are shown once */
	return qs;
}

void
api_keys_post(struct request *req)
{
	json_t *body = api_body(req, key_create_spec);
	struct key_call call = { .shop_id = req->shop_id };

	if (!body)
		return;
	call.name = api_str(body, "name");
	call.scope = api_str(body, "scope");
	api_run(req, create, &call);
	json_decref(body);
}

static enum db_qs
list(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct key_call *call = cls;
	json_t *items = NULL;
	enum db_qs qs = apikeys_list(c, call->shop_id, &items);

	(void)err;
	if (qs <= 0) /* the aggregate always yields a row */
		return qs < 0 ? qs : DB_HARD_ERROR;
	out->status = 200;
	out->body = json_pack("{s:o}", "items", items);
	return out->body ? qs : DB_HARD_ERROR;
}

void
api_keys_list(struct request *req)
{
	struct key_call call = { .shop_id = req->shop_id };

	api_run(req, list, &call);
}

static enum db_qs
revoke(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct key_call *call = cls;
	enum db_qs qs = apikeys_revoke(c, call->shop_id, call->id, err);

	if (qs == 0) {
		err_set(err, ERR_NOT_FOUND, NULL, "API key not found");
		return DB_ABORT;
	}
	out->status = 204;
	return qs;
}

void
api_keys_delete(struct request *req)
{
	struct key_call call = { .shop_id = req->shop_id, .id = req->params[0] };

	if (!api_uuid_valid(call.id)) {
		reply_error(req, ERR_NOT_FOUND, NULL, "API key not found");
		return;
	}
	api_run(req, revoke, &call);
}
