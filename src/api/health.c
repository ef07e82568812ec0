/*
 * health.c — /healthz (the process answers), /readyz (the database
 * answers and has the schema this binary expects), /metrics.
 */
#include <stdlib.h>

#include "rebuy/api.h"
#include "rebuy/metrics.h"
#include "rebuy/migrate.h"
#include "rebuy/reply.h"

void
api_health_get(struct request *req)
{
	reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static enum db_qs
ready(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, "migrate_version", 0, NULL, &r);
	int version;

	(void)cls;
	if (qs <= 0) {
		PQclear(r);
		return qs < 0 ? qs : DB_HARD_ERROR;
	}
	version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (version != migrate_latest()) {
		err_set(err, ERR_SCHEMA_OUTDATED, NULL,
			"database schema is at version %d, this binary needs %d",
			version, migrate_latest());
		return DB_ABORT;
	}
	out->status = 200;
	out->body = json_pack("{s:s, s:i}", "status", "ready", "schema_version", version);
	return DB_ONE_RESULT;
}

void
api_ready_get(struct request *req)
{
	api_run(req, ready, NULL);
}

void
api_metrics_get(struct request *req)
{
	size_t len = 0;
	char *text = metrics_render(&len);

	if (!text) {
		reply_error(req, ERR_INTERNAL, NULL, "out of memory");
		return;
	}
	reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
