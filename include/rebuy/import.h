/*
 * import.h — `rebuyd import orders`: a merchant's order history from CSV
 * or NDJSON, validated exactly as PUT /v1/orders/{id} validates, streamed
 * into PostgreSQL with COPY and written in one transaction.
 */
#ifndef REBUY_IMPORT_H
#define REBUY_IMPORT_H

#include "rebuy/db.h"

struct import_options {
	const char *path;
	const char *shop_id;
	const char *format;  /* "csv", "ndjson" or NULL: from the file name */
	const char *rejects; /* NULL: path + ".rejects.ndjson" */
};

/* Exit code: 0 the import ran (rejects or not), 1 database or I/O error, 2 usage. */
int import_orders(struct db_conn *c, const struct import_options *opt);

#endif
