/*
 * shops.c — POST /v1/shops (platform), GET and PATCH /v1/shops/{id}.
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/api.h"
#include "rebuy/reply.h"
#include "rebuy/rfm.h"
#include "rebuy/shops.h"

static const char *
check_currency(const char *s)
{
	return shops_currency_valid(s) ? NULL : "not an active ISO 4217 currency code";
}

static const struct jv_field rule_spec[] = {
	{ .name = "exclude_refunded", .kind = JV_BOOLEAN },
	{ .name = "min_order_amount", .kind = JV_INTEGER, .min = 0, .max = 1000000000000000LL },
	{ .name = "merge_window_hours", .kind = JV_INTEGER, .min = 0, .max = 8760 },
	{ .name = NULL },
};

/* parameters of the built-in segments (include/rebuy/segments.h) */
static const struct jv_field segments_spec[] = {
	{ .name = "second_purchase_window_days", .kind = JV_INTEGER, .min = 1, .max = 3650 },
	{ .name = "due_max_factor", .kind = JV_INTEGER, .min = 2, .max = 20 },
	{ .name = "due_min_repeat_customers", .kind = JV_INTEGER, .min = 1, .max = 100000 },
	{ .name = "lapsing_factor", .kind = JV_INTEGER, .min = 1, .max = 20 },
	{ .name = "lapse_days", .kind = JV_INTEGER, .min = 1, .max = 3650 },
	{ .name = "vip_percent", .kind = JV_INTEGER, .min = 1, .max = 50 },
	{ .name = NULL },
};

/* how customers are scored (include/rebuy/rfm.h); the combination is checked there */
static const struct jv_field threshold_item = { .kind = JV_INTEGER, .min = 0,
						 .max = 1000000000000000LL };

static const struct jv_field rfm_spec[] = {
	{ .name = "method", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 20 },
	{ .name = "recency_days", .kind = JV_ARRAY, .min = 4, .max = 4, .items = &threshold_item },
	{ .name = "frequency", .kind = JV_ARRAY, .min = 4, .max = 4, .items = &threshold_item },
	{ .name = "monetary", .kind = JV_ARRAY, .min = 4, .max = 4, .items = &threshold_item },
	{ .name = NULL },
};

/* prepaid wallets (include/rebuy/wallets.h): which bucket a spend takes first */
static const char *
check_consumption(const char *s)
{
	return strcmp(s, "bonus_first") == 0 || strcmp(s, "principal_first") == 0 ||
	       strcmp(s, "proportional") == 0
		? NULL : "must be bonus_first, principal_first or proportional";
}

static const struct jv_field balances_spec[] = {
	{ .name = "consumption_order", .kind = JV_STRING, .min = 1, .max = 20,
	  .check = check_consumption },
	{ .name = NULL },
};

static const struct jv_field settings_spec[] = {
	{ .name = "repurchase_rule", .kind = JV_OBJECT, .fields = rule_spec },
	{ .name = "balances", .kind = JV_OBJECT, .fields = balances_spec },
	{ .name = "segments", .kind = JV_OBJECT, .fields = segments_spec },
	{ .name = "rfm", .kind = JV_OBJECT, .fields = rfm_spec },
	{ .name = NULL },
};

/* What the field specs cannot say about settings; replies and false if wrong. */
static bool
settings_ok(struct request *req, const json_t *body)
{
	const json_t *rfm = json_object_get(json_object_get(body, "settings"), "rfm");
	struct err err = { 0 };

	if (rfm && !rfm_settings_check(rfm, &err)) {
		reply_problem(req, &err);
		return false;
	}
	return true;
}

static const struct jv_field shop_create_spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 200 },
	{ .name = "currency", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 3, .max = 3,
	  .check = check_currency },
	{ .name = "timezone", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64 },
	{ .name = "settings", .kind = JV_OBJECT, .fields = settings_spec },
	{ .name = NULL },
};

static const struct jv_field shop_patch_spec[] = {
	{ .name = "name", .kind = JV_STRING, .min = 1, .max = 200 },
	{ .name = "timezone", .kind = JV_STRING, .min = 1, .max = 64 },
	{ .name = "currency", .kind = JV_STRING }, /* named so we can say why not */
	{ .name = "settings", .kind = JV_OBJECT, .fields = settings_spec },
	{ .name = NULL },
};

struct shop_call {
	const char *id;
	struct shop_input in;
	char *settings; /* owned JSON text */
};

/* The settings member as JSON text (NULL if absent), and whether it has a new rule. */
static char *
settings_text(const json_t *body, bool *new_rule)
{
	json_t *s = json_object_get(body, "settings");

	*new_rule = json_object_get(s, "repurchase_rule") != NULL;
	return s ? json_dumps(s, JSON_COMPACT) : NULL;
}

static enum db_qs
create(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct shop_call *call = cls;
	json_t *shop, *key, *redacted;
	enum db_qs qs = shops_create(c, &call->in, &shop, &key, err);

	if (qs < 0)
		return qs;
	out->status = 201;
	snprintf(out->location, sizeof out->location, "/v1/shops/%s",
		 json_string_value(json_object_get(shop, "id")));
	/* a replay must not hand out the secret a second time */
	redacted = json_deep_copy(key);
	json_object_del(redacted, "key");
	out->body = json_pack("{s:O, s:o}", "shop", shop, "admin_key", key);
	out->replay_body = json_pack("{s:o, s:o*}", "shop", shop, "admin_key", redacted);
	return out->body && out->replay_body ? qs : DB_HARD_ERROR;
}

void
api_shops_post(struct request *req)
{
	json_t *body = api_body(req, shop_create_spec);
	struct shop_call call;

	if (!body)
		return;
	if (!settings_ok(req, body)) {
		json_decref(body);
		return;
	}
	call.in.name = api_str(body, "name");
	call.in.currency = api_str(body, "currency");
	call.in.timezone = api_str(body, "timezone");
	call.in.settings = call.settings = settings_text(body, &call.in.new_rule);
	api_run(req, create, &call);
	free(call.settings);
	json_decref(body);
}

static bool
shop_path(struct request *req, const char **id)
{
	*id = req->params[0];
	if (!api_uuid_valid(*id)) {
		reply_error(req, ERR_NOT_FOUND, NULL, "shop not found");
		return false;
	}
	return api_shop_visible(req, *id);
}

static enum db_qs
get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct shop_call *call = cls;
	enum db_qs qs = shops_get(c, call->id, &out->body);

	if (qs == 0) {
		err_set(err, ERR_NOT_FOUND, NULL, "shop not found");
		return DB_ABORT;
	}
	out->status = 200;
	return qs;
}

void
api_shops_get(struct request *req)
{
	struct shop_call call = { 0 };

	if (!shop_path(req, &call.id))
		return;
	api_run(req, get, &call);
}

static enum db_qs
patch(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct shop_call *call = cls;
	enum db_qs qs = shops_patch(c, call->id, &call->in, &out->body, err);

	if (qs == 0) {
		err_set(err, ERR_NOT_FOUND, NULL, "shop not found");
		return DB_ABORT;
	}
	out->status = 200;
	return qs;
}

void
api_shops_patch(struct request *req)
{
	struct shop_call call = { 0 };
	json_t *body;

	if (!shop_path(req, &call.id))
		return;
	body = api_body(req, shop_patch_spec);
	if (!body)
		return;
	if (!settings_ok(req, body)) {
		/* replied */
	} else if (json_object_get(body, "currency")) {
		reply_error(req, ERR_VALIDATION, "/currency",
			    "/currency: a shop's currency cannot be changed");
	} else if (json_object_size(body) == 0) {
		reply_error(req, ERR_VALIDATION, NULL, "body: give name, timezone and/or settings");
	} else {
		call.in.name = api_str(body, "name");
		call.in.timezone = api_str(body, "timezone");
		call.in.settings = call.settings = settings_text(body, &call.in.new_rule);
		api_run(req, patch, &call);
		free(call.settings);
	}
	json_decref(body);
}
