/* idempotency.c — see include/rebuy/idempotency.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/idempotency.h"

const struct db_stmt idem_stmts[] = {
	/* hashtextextended gives the 64-bit lock id; a collision only costs a
	 * spurious 409 for one of two unrelated keys at the same instant */
	{ "idem_lock",
	  "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))" },
	{ "idem_get",
	  "SELECT fingerprint, status, body, location FROM idempotency_keys"
	  " WHERE api_key_id = $1 AND key = $2"
	  "   AND created_at > now() - interval '48 hours'" },
	{ "idem_put",
	  "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, body, location)"
	  " VALUES ($1, $2, $3, $4, $5, $6)"
	  " ON CONFLICT (api_key_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
	  "   status = EXCLUDED.status, body = EXCLUDED.body,"
	  "   location = EXCLUDED.location, created_at = now()" },
	{ "idem_purge",
	  "DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'" },
	{ NULL, NULL },
};

void
idem_stored_free(struct idem_stored *s)
{
	free(s->body);
	free(s->location);
	s->body = s->location = NULL;
}

static char *
dup_or_null(PGresult *r, int col)
{
	return PQgetisnull(r, 0, col) ? NULL : strdup(PQgetvalue(r, 0, col));
}

enum db_qs
idem_claim(struct db_conn *c, const char *key_id, const char *idem_key,
	   const char *fingerprint, enum idem_state *state,
	   struct idem_stored *stored)
{
	const char *params[2] = { key_id, idem_key };
	PGresult *r;
	enum db_qs qs;

	qs = db_exec(c, "idem_lock", 2, params, &r);
	if (qs < 0)
		return qs;
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		PQclear(r);
		*state = IDEM_BUSY;
		return DB_ONE_RESULT;
	}
	PQclear(r);
	qs = db_exec(c, "idem_get", 2, params, &r);
	if (qs < 0)
		return qs;
	if (qs == 0) {
		*state = IDEM_NEW;
	} else if (strcmp(PQgetvalue(r, 0, 0), fingerprint) != 0) {
		*state = IDEM_MISMATCH;
	} else {
		*state = IDEM_REPLAY;
		stored->status = (unsigned)atoi(PQgetvalue(r, 0, 1));
		stored->body = dup_or_null(r, 2);
		stored->location = dup_or_null(r, 3);
	}
	PQclear(r);
	return DB_ONE_RESULT;
}

enum db_qs
idem_store(struct db_conn *c, const char *key_id, const char *idem_key,
	   const char *fingerprint, unsigned status, const char *body,
	   const char *location)
{
	char st[8];
	const char *params[6] = { key_id, idem_key, fingerprint, st, body, location };
	PGresult *r;
	enum db_qs qs;

	snprintf(st, sizeof st, "%u", status);
	qs = db_exec(c, "idem_put", 6, params, &r);
	PQclear(r);
	return qs;
}

enum db_qs
idem_purge(struct db_conn *c)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, "idem_purge", 0, NULL, &r);

	PQclear(r);
	return qs;
}
