/*
 * migrate.h — numbered SQL migrations embedded at build time from
 * migrations/NNNN_name.sql, each applied in its own transaction and
 * recorded in schema_migrations.
 */
#ifndef REBUY_MIGRATE_H
#define REBUY_MIGRATE_H

#include <stdbool.h>
#include "rebuy/db.h"

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const int migrations_count;

/* The schema version this binary expects. */
int migrate_latest(void);

/* Applied version, 0 for an empty database, -1 on error. */
int migrate_current(struct db_conn *c, struct err *err);

/* Apply all pending migrations; prints one line per applied migration. */
bool migrate_run(struct db_conn *c, struct err *err)
	__attribute__((warn_unused_result));

#endif
