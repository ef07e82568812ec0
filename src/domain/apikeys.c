/*
 * apikeys.c — a shop's API keys.  The secret exists only in the reply to
 * the creating request; the table keeps its prefix and SHA-256.
 */
#include <stdlib.h>
#include <string.h>

#include "rebuy/apikeys.h"
#include "rebuy/keys.h"

const struct db_stmt apikeys_stmts[] = {
	/* a prefix collision (1 in 2^40 per pair) retries with a new key */
	{ "apikeys_insert",
	  "INSERT INTO api_keys AS k (shop_id, prefix, hash, scope, name)"
	  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (prefix) DO NOTHING"
	  " RETURNING api_key_json(k)" },
	{ "apikeys_list",
	  "SELECT coalesce(json_agg(api_key_json(k) ORDER BY k.created_at, k.id), '[]')"
	  " FROM api_keys k WHERE k.shop_id = $1" },
	/* revocations of one shop queue here, so two admins cannot each
	 * revoke the other's key and leave the shop without one */
	{ "apikeys_lock_shop", "SELECT 1 FROM shops WHERE id = $1 FOR UPDATE" },
	{ "apikeys_get",
	  "SELECT scope, revoked_at IS NOT NULL FROM api_keys"
	  " WHERE shop_id = $1 AND id = $2" },
	{ "apikeys_other_admins",
	  "SELECT count(*) FROM api_keys WHERE shop_id = $1 AND scope = 'admin'"
	  " AND revoked_at IS NULL AND id <> $2" },
	{ "apikeys_revoke",
	  "UPDATE api_keys SET revoked_at = now()"
	  " WHERE shop_id = $1 AND id = $2 AND revoked_at IS NULL" },
	{ NULL, NULL },
};

enum db_qs
apikeys_create(struct db_conn *c, const char *shop_id, const char *name,
	       const char *scope, json_t **created, struct err *err)
{
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1], hash[KEYS_HASH_HEX + 1];
	const char *params[5] = { shop_id, prefix, hash, scope, name };
	PGresult *r;
	enum db_qs qs = DB_NO_RESULTS;

	*created = NULL;
	for (int attempt = 0; attempt < 3 && qs == DB_NO_RESULTS; attempt++) {
		if (!keys_generate(key) || !keys_parse(key, prefix)) {
			err_set(err, ERR_INTERNAL, NULL, "no randomness available");
			return DB_ABORT;
		}
		keys_hash_hex(key, hash);
		qs = db_exec(c, "apikeys_insert", 5, params, &r);
		if (qs > 0) {
			*created = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
			if (!*created ||
			    json_object_set_new(*created, "key", json_string(key)) != 0)
				qs = DB_HARD_ERROR;
		}
		PQclear(r);
	}
	explicit_bzero(key, sizeof key);
	if (qs == DB_NO_RESULTS)
		qs = DB_HARD_ERROR; /* three collisions: the generator is broken */
	if (qs < 0) {
		json_decref(*created);
		*created = NULL;
	}
	return qs;
}

enum db_qs
apikeys_list(struct db_conn *c, const char *shop_id, json_t **items)
{
	const char *params[1] = { shop_id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "apikeys_list", 1, params, &r);

	if (qs > 0) {
		*items = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		if (!*items)
			qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}

enum db_qs
apikeys_revoke(struct db_conn *c, const char *shop_id, const char *id,
	       struct err *err)
{
	const char *params[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs;
	bool admin, revoked;
	char *others = NULL;

	qs = db_exec_none(c, "apikeys_lock_shop", 1, params);
	if (qs <= 0)
		return qs;
	qs = db_exec(c, "apikeys_get", 2, params, &r);
	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	admin = strcmp(PQgetvalue(r, 0, 0), "admin") == 0;
	revoked = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	if (revoked)
		return DB_ONE_RESULT;
	if (admin) {
		qs = db_exec_text(c, "apikeys_other_admins", 2, params, &others);
		if (qs < 0)
			return qs;
		bool last = atol(others) == 0;

		free(others);
		if (last) {
			err_set(err, ERR_LAST_ADMIN_KEY, NULL,
				"this is the shop's last active admin key: create another admin key first");
			return DB_ABORT;
		}
	}
	return db_exec_none(c, "apikeys_revoke", 2, params);
}
