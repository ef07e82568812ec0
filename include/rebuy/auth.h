/*
 * auth.h — who is calling: the API key behind "Authorization: Bearer".
 */
#ifndef REBUY_AUTH_H
#define REBUY_AUTH_H

#include "rebuy/db.h"
#include "rebuy/request.h"

struct auth_key {
	char key_id[37];
	char shop_id[37]; /* "" for platform keys */
	enum scope scope;
};

/*
 * Look up a presented key.  DB_ONE_RESULT: *out is filled.  DB_NO_RESULTS:
 * malformed, unknown, revoked, or wrong secret (indistinguishable on
 * purpose).  Negative: database trouble.
 */
enum db_qs auth_lookup(struct db_conn *c, const char *presented,
		       struct auth_key *out);

/* "admin" → SCOPE_ADMIN etc.; 0 if unknown. */
enum scope auth_scope_parse(const char *s);
const char *auth_scope_name(enum scope s);

extern const struct db_stmt auth_stmts[];

#endif
