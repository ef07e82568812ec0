/*
 * traffic.c — the daily traffic feed; see include/rebuy/traffic.h.
 */
#include <stdlib.h>
#include <string.h>

#include "rebuy/analytics.h"
#include "rebuy/traffic.h"

const struct db_stmt traffic_stmts[] = {
	{ "traffic_today", "SELECT (now() AT TIME ZONE timezone)::date::text FROM shops WHERE id = $1" },
	/* xmax is 0 on a freshly inserted row version: counts what was new */
	{ "traffic_upsert",
	  "INSERT INTO traffic AS t (shop_id, day, channel, visitors, sessions)"
	  " SELECT $1, d.date, d.channel, d.visitors, d.sessions"
	  " FROM jsonb_to_recordset($2::jsonb) AS d(date date, channel text, visitors bigint,"
	  "   sessions bigint)"
	  " ON CONFLICT (shop_id, day, channel) DO UPDATE SET visitors = excluded.visitors,"
	  "   sessions = excluded.sessions, updated_at = now()"
	  " RETURNING (t.xmax = 0)" },
	{ NULL, NULL },
};

static const struct jv_field day_fields[] = {
	{ .name = "date", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 10,
	  .check = analytics_check_date },
	{ .name = "channel", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 64,
	  .check = jv_check_token },
	{ .name = "visitors", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0,
	  .max = 1000000000000LL },
	{ .name = "sessions", .kind = JV_INTEGER, .flags = JV_REQUIRED, .min = 0,
	  .max = 1000000000000LL },
	{ .name = NULL },
};

static const struct jv_field day_spec = { .kind = JV_OBJECT, .fields = day_fields };

const struct jv_field traffic_body_spec[] = {
	{ .name = "days", .kind = JV_ARRAY, .flags = JV_REQUIRED, .min = 1, .max = 1000,
	  .items = &day_spec },
	{ .name = NULL },
};

static const char *
member(json_t *day, const char *name)
{
	return json_string_value(json_object_get(day, name));
}

/* Dates not after today, each (date, channel) once: else the first offender. */
static bool
days_acceptable(json_t *days, const char *today, struct err *err)
{
	size_t n = json_array_size(days);
	char ptr[40];

	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(days, i);

		if (strcmp(member(d, "date"), today) > 0) {
			snprintf(ptr, sizeof ptr, "/days/%zu/date", i);
			err_set(err, ERR_VALIDATION, ptr, "%s: is after today (%s) in the shop's "
				"time zone", ptr, today);
			return false;
		}
		for (size_t j = 0; j < i; j++) {
			json_t *e = json_array_get(days, j);

			if (strcmp(member(d, "date"), member(e, "date")) == 0 &&
			    strcmp(member(d, "channel"), member(e, "channel")) == 0) {
				snprintf(ptr, sizeof ptr, "/days/%zu", i);
				err_set(err, ERR_VALIDATION, ptr,
					"%s: the same date and channel as /days/%zu", ptr, j);
				return false;
			}
		}
	}
	return true;
}

enum db_qs
traffic_post(struct db_conn *c, const char *shop_id, json_t *days, json_t **out,
	     struct err *err)
{
	const char *p[2] = { shop_id, NULL };
	PGresult *res = NULL;
	char *text = NULL;
	json_int_t created = 0;
	enum db_qs qs = db_exec(c, "traffic_today", 1, p, &res);

	if (qs <= 0) {
		if (qs == 0)
			err_set(err, ERR_NOT_FOUND, NULL, "shop not found");
		qs = qs == 0 ? DB_ABORT : qs;
		goto out;
	}
	if (!days_acceptable(days, PQgetvalue(res, 0, 0), err)) {
		qs = DB_ABORT;
		goto out;
	}
	PQclear(res);
	res = NULL;
	text = json_dumps(days, JSON_COMPACT);
	if (!text) {
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		qs = DB_ABORT;
		goto out;
	}
	p[1] = text;
	qs = db_exec(c, "traffic_upsert", 2, p, &res);
	if (qs < 0)
		goto out;
	for (int i = 0; i < (int)qs; i++)
		created += PQgetvalue(res, i, 0)[0] == 't';
	*out = json_pack("{s:O, s:I, s:I}", "days", days, "created", created, "updated",
			 (json_int_t)json_array_size(days) - created);
	qs = DB_ONE_RESULT;
out:
	PQclear(res);
	free(text);
	return qs;
}
