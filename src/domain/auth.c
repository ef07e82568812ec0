/*
 * auth.c — resolve a presented API key to its shop and scope.
 *
 * The prefix finds the row; the SHA-256 of the whole key is compared in
 * constant time, so a near-miss tells an attacker nothing.
 */
#include <stdio.h>
#include <string.h>

#include "rebuy/auth.h"
#include "rebuy/keys.h"

const struct db_stmt auth_stmts[] = {
	{ "auth_lookup",
	  "SELECT id, coalesce(shop_id::text, ''), scope, hash FROM api_keys"
	  " WHERE prefix = $1 AND revoked_at IS NULL" },
	{ NULL, NULL },
};

static const struct {
	const char *name;
	enum scope scope;
} scopes[] = {
	{ "platform", SCOPE_PLATFORM },
	{ "admin", SCOPE_ADMIN },
	{ "storefront", SCOPE_STOREFRONT },
	{ "readonly", SCOPE_READONLY },
};

enum scope
auth_scope_parse(const char *s)
{
	for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
		if (strcmp(scopes[i].name, s) == 0)
			return scopes[i].scope;
	return 0;
}

const char *
auth_scope_name(enum scope s)
{
	for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
		if (scopes[i].scope == s)
			return scopes[i].name;
	return "unknown";
}

enum db_qs
auth_lookup(struct db_conn *c, const char *presented, struct auth_key *out)
{
	char prefix[KEYS_PREFIX_LEN + 1], hash[KEYS_HASH_HEX + 1];
	const char *params[1] = { prefix };
	PGresult *r;
	enum db_qs qs;

	if (!keys_parse(presented, prefix))
		return DB_NO_RESULTS;
	qs = db_exec(c, "auth_lookup", 1, params, &r);
	if (qs <= 0)
		goto out;
	keys_hash_hex(presented, hash);
	if (!keys_hash_equal(hash, PQgetvalue(r, 0, 3))) {
		qs = DB_NO_RESULTS;
		goto out;
	}
	snprintf(out->key_id, sizeof out->key_id, "%s", PQgetvalue(r, 0, 0));
	snprintf(out->shop_id, sizeof out->shop_id, "%s", PQgetvalue(r, 0, 1));
	out->scope = auth_scope_parse(PQgetvalue(r, 0, 2));
	qs = DB_ONE_RESULT;
out:
	PQclear(r);
	return qs;
}
