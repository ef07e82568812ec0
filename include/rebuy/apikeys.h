/*
 * apikeys.h — a shop's API keys: create (secret shown once), list, revoke.
 */
#ifndef REBUY_APIKEYS_H
#define REBUY_APIKEYS_H

#include <jansson.h>
#include "rebuy/db.h"

/*
 * Create a key for shop_id (NULL for a platform key).  *created is the key
 * object with its secret in "key".
 */
enum db_qs apikeys_create(struct db_conn *c, const char *shop_id,
			  const char *name, const char *scope, json_t **created,
			  struct err *err);

/* All keys of the shop, oldest first, as a JSON array. */
enum db_qs apikeys_list(struct db_conn *c, const char *shop_id, json_t **items);

/*
 * Revoke (inside a transaction).  DB_NO_RESULTS if absent; DB_ABORT with
 * ERR_LAST_ADMIN_KEY if it is the shop's last active admin key.
 */
enum db_qs apikeys_revoke(struct db_conn *c, const char *shop_id,
			  const char *id, struct err *err);

extern const struct db_stmt apikeys_stmts[];

#endif
