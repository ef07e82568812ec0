/*
 * migrate.c — apply embedded migrations in order, one transaction each.
 *
 * A session-level advisory lock serialises concurrent migrators (two
 * replicas starting with --migrate); each migration and its row in
 * schema_migrations commit together, so a failure leaves the schema at the
 * previous version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/keys.h"
#include "rebuy/log.h"
#include "rebuy/migrate.h"

/* "rebuy" in ASCII: the advisory lock id of migrations */
#define MIGRATE_LOCK "7370013898"

const struct db_stmt migrate_stmts[] = {
	{ "migrate_version", "SELECT coalesce(max(version), 0) FROM schema_migrations" },
	{ NULL, NULL },
};

int
migrate_latest(void)
{
	return migrations_count > 0 ? migrations[migrations_count - 1].version : 0;
}

static bool
exec_ok(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		log_emit(LOG_ERROR, "migration statement failed",
			 json_pack("{s:s}", "error", PQresultErrorMessage(r)));
	PQclear(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

int
migrate_current(struct db_conn *c, struct err *err)
{
	PGconn *pg = db_pg(c);
	PGresult *r;
	int v = -1;

	r = PQexec(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		goto out;
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		v = 0;
		goto out;
	}
	PQclear(r);
	r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		v = atoi(PQgetvalue(r, 0, 0));
out:
	if (v < 0)
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "cannot read schema version: %s",
			PQerrorMessage(pg));
	PQclear(r);
	return v;
}

bool
migrate_run(struct db_conn *c, struct err *err)
{
	PGconn *pg = db_pg(c);
	bool ok = false;
	int current;

	if (!exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")"))
		goto fail;
	if (!exec_ok(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 " version integer PRIMARY KEY,"
			 " name text NOT NULL,"
			 " checksum text NOT NULL,"
			 " applied_at timestamptz NOT NULL DEFAULT now())"))
		goto unlock;
	current = migrate_current(c, err);
	if (current < 0)
		goto unlock;
	if (current > migrate_latest()) {
		err_set(err, ERR_SCHEMA_OUTDATED, NULL,
			"database schema %d is newer than this binary (%d)", current,
			migrate_latest());
		goto unlock;
	}
	for (int i = 0; i < migrations_count; i++) {
		const struct migration *m = &migrations[i];
		char version[16], checksum[KEYS_HASH_HEX + 1];
		const char *params[3] = { version, m->name, checksum };
		PGresult *r;
		bool applied;

		if (m->version <= current)
			continue;
		snprintf(version, sizeof version, "%d", m->version);
		keys_sha256_hex(m->sql, strlen(m->sql), checksum);
		/* a migration rewrites whole tables: the API's statement limit
		 * would cut it short on a big database */
		if (!exec_ok(pg, "BEGIN") || !exec_ok(pg, "SET LOCAL statement_timeout = 0"))
			goto unlock;
		applied = exec_ok(pg, m->sql);
		if (applied) {
			r = PQexecParams(pg,
					 "INSERT INTO schema_migrations (version, name, checksum)"
					 " VALUES ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0);
			applied = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
		}
		if (!applied || !exec_ok(pg, "COMMIT")) {
			(void)exec_ok(pg, "ROLLBACK");
			err_set(err, ERR_INTERNAL, NULL, "migration %04d_%s failed",
				m->version, m->name);
			goto unlock;
		}
		log_emit(LOG_INFO, "migration applied",
			 json_pack("{s:i, s:s}", "version", m->version, "name", m->name));
	}
	ok = true;
unlock:
	(void)exec_ok(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
fail:
	if (!ok && err->code == ERR_NONE)
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is unavailable");
	return ok;
}
