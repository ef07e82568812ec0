/*
 * db.h — PostgreSQL access: one connection per worker thread, named
 * prepared statements, and the one transaction helper.
 *
 * Every query returns a three-way status (after GNU Taler's
 * GNUNET_DB_QueryStatus): a hard error, a retryable (soft) error, or the
 * number of rows.  Handlers never write BEGIN; they pass a callback to
 * db_run_tx, which retries serialization failures and deadlocks.
 */
#ifndef REBUY_DB_H
#define REBUY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "rebuy/err.h"

enum db_qs {
	DB_ABORT = -3,      /* callback decided to roll back; err says why */
	DB_HARD_ERROR = -2, /* not worth retrying (or connection lost) */
	DB_SOFT_ERROR = -1, /* serialization failure or deadlock: retry */
	DB_NO_RESULTS = 0,
	DB_ONE_RESULT = 1,
	/* larger values: number of rows */
};

/* A named statement owned by a module.  Arrays end with { NULL, NULL }. */
struct db_stmt {
	const char *name;
	const char *sql;
};

struct db_conn;

/* Every module's statement table, NULL-terminated (src/db/statements.c). */
extern const struct db_stmt *const db_all_stmts[];

/* The SQL of a named statement, or NULL. */
const char *db_stmt_sql(const char *name);

/* Set the conninfo used by every connection.  Copies the string. */
void db_init(const char *conninfo);
void db_shutdown(void); /* closes all connections; call after workers stop */

/*
 * The calling thread's connection, (re)connected and prepared if needed.
 * Returns NULL with ERR_DB_UNAVAILABLE when PostgreSQL cannot be reached.
 * The connection stays owned by the db module.
 */
struct db_conn *db_thread_conn(struct err *err);

/* A private connection for CLI commands; free with db_close. */
struct db_conn *db_open(const char *conninfo, bool prepare, struct err *err);
void db_close(struct db_conn *c);

PGconn *db_pg(struct db_conn *c);

/* Prepare every module's statements on c (after the schema is current). */
bool db_prepare(struct db_conn *c) __attribute__((warn_unused_result));

/*
 * Execute a prepared statement with text parameters (NULL = SQL NULL).
 * On success *res holds the result (caller PQclears) and the return value
 * is the row count (tuples for SELECT/RETURNING, affected rows otherwise).
 * On error *res is NULL.
 */
enum db_qs db_exec(struct db_conn *c, const char *stmt, int nparams,
		   const char *const *params, PGresult **res);

/*
 * db_exec for SQL composed at run time (custom segment filters: values
 * still go as parameters).  label names it in logs.  Everything else uses
 * the named prepared statements.
 */
enum db_qs db_exec_sql(struct db_conn *c, const char *label, const char *sql, int nparams,
		       const char *const *params, PGresult **res);

/* db_exec when only the status matters: the result is cleared. */
enum db_qs db_exec_none(struct db_conn *c, const char *stmt, int nparams,
			const char *const *params);

/* db_exec keeping column 0 of row 0 as malloc'd text (*out NULL if no row). */
enum db_qs db_exec_text(struct db_conn *c, const char *stmt, int nparams,
			const char *const *params, char **out);

/*
 * The money and package functions answer one row (status, body).
 * "created", "replayed" and "ok" succeed with body as malloc'd *out
 * (*created for "created"); "no_customer" is DB_NO_RESULTS; any other
 * status goes to fail(status, body or NULL, cls, err), which fills err and
 * returns DB_ABORT.
 */
/*
 * Store a new version of a catalogue entry (offers, plans, packs): lock
 * (params $1, $2: the shop and the code) queues concurrent PUTs of one
 * code, then stmt inserts and answers (is version 1, the entry as text).
 * DB_NO_RESULTS when stmt inserted nothing.
 */
enum db_qs db_exec_version(struct db_conn *c, const char *lock, const char *stmt, int nparams,
			   const char *const *params, bool *created, char **out);

typedef enum db_qs (*db_status_fail)(const char *status, const char *body, const void *cls,
				     struct err *err);
enum db_qs db_exec_status(struct db_conn *c, const char *stmt, int nparams,
			  const char *const *params, bool *created, char **out,
			  db_status_fail fail, const void *cls, struct err *err);

/*
 * Run a sweep statement ($1: the batch size, DB_SWEEP_BATCH; $2: shop_id
 * unless NULL; it answers how many it did) until a batch comes back
 * short, each batch its own transaction (outside one), so no sweep holds
 * many rows' locks for long.  Returns the total, -1 on a database error.
 */
#define DB_SWEEP_BATCH 100
int db_sweep(struct db_conn *c, const char *stmt, const char *shop_id);

/*
 * rebuyd verify's checks: run stmt ($1: shop_id or NULL) whose rows are
 * (shop, what, detail), one per broken invariant, and hand each to report.
 * Returns the number of rows.
 */
enum db_qs db_verify(struct db_conn *c, const char *stmt, const char *shop_id,
		     void (*report)(const char *shop, const char *what, const char *detail));

/* Like db_exec for a statement with no parameters that returns no rows. */
enum db_qs db_exec_simple(struct db_conn *c, const char *sql);

/*
 * Lift the API's statement limit for the rest of the current transaction:
 * for requests that rebuild a whole shop's derived data (a new repurchase
 * rule, a new time zone), which must finish, not fail after 30 s.
 */
enum db_qs db_untimed(struct db_conn *c);

/*
 * Column col of the first n rows, which hold JSON texts, joined into one
 * JSON array text (malloc'd), without parsing them.  NULL on no memory.
 */
char *db_json_array(PGresult *r, int col, int n);

typedef enum db_qs (*db_tx_fn)(struct db_conn *c, void *cls, struct err *err);

/*
 * Run fn inside BEGIN … COMMIT, retrying up to a few times on soft errors.
 * Returns true when committed.  On false, err holds the reason: the
 * callback's own (DB_ABORT), ERR_DB_UNAVAILABLE, or ERR_INTERNAL.
 */
bool db_run_tx(struct db_conn *c, const char *label, db_tx_fn fn, void *cls,
	       struct err *err) __attribute__((warn_unused_result));

/* Turn a failed db_exec status into err (no-op for DB_ABORT). */
void db_fail(struct db_conn *c, enum db_qs qs, struct err *err);

/*
 * A query read in batches of rows through a cursor on a connection of its
 * own, for exports: memory stays constant whatever the row count, and the
 * worker's connection stays free for the other requests it serves.  The
 * columns come in binary (PQfformat 1): integers in network byte order,
 * timestamps as microseconds since 2000-01-01 UTC, text as it is.
 * At most DB_STREAMS_MAX run at once; one more gets ERR_BUSY.
 */
#define DB_STREAMS_MAX 8
struct db_stream;

/*
 * Connect and begin a read-only transaction (repeatable read) for a
 * stream.  NULL with err set on failure.
 */
struct db_stream *db_stream_open(const char *label, struct err *err);

/*
 * A named statement of a module (run unprepared, text results) on the
 * stream's snapshot, before its cursor: what the rows need to be read.
 * err is set on failure.
 */
enum db_qs db_stream_query(struct db_stream *s, const char *stmt, int nparams,
			   const char *const *params, PGresult **r, struct err *err);

/*
 * Declare the cursor for sql with params and wait for the first batch, so
 * a query that fails at once is still an error reply.  false with err set
 * on failure (close the stream).
 */
bool db_stream_declare(struct db_stream *s, const char *sql, int nparams,
		       const char *const *params, struct err *err);

/*
 * The next batch (a result of one or more rows, caller PQclears): 1; 0 at
 * the end; -1 on error (logged).
 */
int db_stream_next(struct db_stream *s, PGresult **batch);

/* Cancel what is still running, close; NULL is fine. */
void db_stream_close(struct db_stream *s);

/* A binary column's value (the caller checks PQgetisnull and the type). */
int32_t db_bin_int4(const PGresult *r, int row, int col);
int64_t db_bin_int8(const PGresult *r, int row, int col);
bool db_bin_bool(const PGresult *r, int row, int col);

/*
 * A binary timestamptz as the API writes instants (rfc3339(), migration
 * 0001: "2025-01-13T16:53:38.500000Z"), into out; returns its length.
 */
#define DB_INSTANT_MAX 40
size_t db_bin_instant(const PGresult *r, int row, int col, char out[DB_INSTANT_MAX]);

/* Counters for /metrics. */
struct db_stats {
	unsigned long errors;
	unsigned long reconnects;
	unsigned long retries;
	unsigned conns_open;
	unsigned conns_busy;
};
void db_get_stats(struct db_stats *out);

/* After a request: a connection not idle (aborted transaction) is dropped. */
void db_release(struct db_conn *c);

/* Reconnect before the next use: the session holds state it must not keep. */
void db_discard(struct db_conn *c);

/* Mark the thread's connection busy/idle (pool-use gauge). */
void db_mark_busy(bool busy);

#endif
