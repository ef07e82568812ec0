/*
 * db.c — connections, prepared statements, the transaction helper.
 *
 * Each libmicrohttpd worker thread owns one connection (thread-local), so
 * no request ever waits for a pool slot and a connection is never shared.
 * All connections are also kept on a list so shutdown can close them.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rebuy/days.h"
#include "rebuy/db.h"
#include "rebuy/log.h"


struct db_conn {
	PGconn *pg;
	bool broken;        /* lost the server: reconnect before next use */
	bool busy;          /* last error was a lock or statement timeout */
	bool prepared;
	uint64_t last_fail_ns;
	unsigned failures;  /* consecutive failed connection attempts */
	struct db_conn *next; /* registry */
};

static char *conninfo;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct db_conn *registry;
static _Thread_local struct db_conn *thread_conn;

static atomic_ulong stat_errors, stat_reconnects, stat_retries;
static atomic_uint stat_open, stat_busy;

/* Do not hammer a server that just refused us: one attempt per interval. */
#define RECONNECT_INTERVAL_NS (200ull * 1000 * 1000)
#define TX_MAX_ATTEMPTS 6

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
db_init(const char *info)
{
	free(conninfo);
	conninfo = strdup(info);
}

PGconn *
db_pg(struct db_conn *c)
{
	return c->pg;
}

static void
notice_ignore(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res; /* NOTICEs ("relation exists, skipping") are not news */
}

static bool
prepare_all(struct db_conn *c)
{
	for (size_t m = 0; db_all_stmts[m]; m++) {
		for (const struct db_stmt *s = db_all_stmts[m]; s->name; s++) {
			PGresult *r = PQprepare(c->pg, s->name, s->sql, 0, NULL);
			bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

			if (!ok)
				log_emit(LOG_ERROR, "prepare failed",
					 json_pack("{s:s, s:s}", "statement", s->name,
						   "error", PQresultErrorMessage(r)));
			PQclear(r);
			if (!ok)
				return false;
		}
	}
	return true;
}

const char *
db_stmt_sql(const char *name)
{
	for (size_t m = 0; db_all_stmts[m]; m++)
		for (const struct db_stmt *s = db_all_stmts[m]; s->name; s++)
			if (strcmp(s->name, name) == 0)
				return s->sql;
	return NULL;
}

bool
db_prepare(struct db_conn *c)
{
	c->prepared = prepare_all(c);
	return c->prepared;
}

/* Connect c->pg; the user's conninfo wins over our defaults. */
static bool
connect_pg(struct db_conn *c, const char *info, bool prepare, struct err *err)
{
	/* keywords before dbname are defaults the expanded conninfo overrides */
	const char *const keys[] = { "connect_timeout", "application_name",
				     "keepalives_idle", "dbname", NULL };
	const char *const vals[] = { "3", "rebuyd", "10", info, NULL };
	PGresult *r;

	c->pg = PQconnectdbParams(keys, vals, 1);
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
		log_emit(LOG_WARN, "database connection failed",
			 json_pack("{s:s}", "error",
				   c->pg ? PQerrorMessage(c->pg) : "out of memory"));
		goto fail;
	}
	PQsetNoticeReceiver(c->pg, notice_ignore, NULL);
	/*
	 * UTC and ISO so timestamps render as RFC 3339 with +00:00 whatever
	 * the server's defaults (exports reformat them in C); bounded waits.
	 * No JIT: the metrics' plans cost enough to trigger it, and compiling
	 * took 40-160 ms per query here, more than it ever saved on queries
	 * that run in milliseconds.
	 */
	r = PQexec(c->pg, "SET client_encoding TO 'UTF8'; SET TimeZone TO 'UTC';"
			  " SET DateStyle TO 'ISO';"
			  " SET statement_timeout TO '30s';"
			  " SET lock_timeout TO '10s';"
			  " SET idle_in_transaction_session_timeout TO '60s';"
			  " SET jit TO off");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	if (prepare && !prepare_all(c))
		goto fail;
	c->prepared = prepare;
	c->broken = false;
	return true;
fail:
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	atomic_fetch_add(&stat_errors, 1);
	err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is unavailable");
	return false;
}

struct db_conn *
db_open(const char *info, bool prepare, struct err *err)
{
	struct db_conn *c = calloc(1, sizeof *c);

	if (!c) {
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	if (!connect_pg(c, info, prepare, err)) {
		free(c);
		return NULL;
	}
	return c;
}

void
db_close(struct db_conn *c)
{
	if (!c)
		return;
	if (c->pg)
		PQfinish(c->pg);
	free(c);
}

/*
 * An idle connection has nothing to read unless the server went away (a
 * restart sends FATAL 57P01 and closes; a crash closes).  One poll() finds
 * that before a request is spent on a dead connection, so a restart
 * between requests costs no request an error.
 */
static bool
server_left(struct db_conn *c)
{
	struct pollfd p = { .fd = PQsocket(c->pg), .events = POLLIN };

	if (p.fd < 0)
		return true;
	/*
	 * We LISTEN to nothing, so anything readable on an idle connection is
	 * the server saying goodbye (or a stray notice): start afresh.
	 */
	return poll(&p, 1, 0) != 0;
}

struct db_conn *
db_thread_conn(struct err *err)
{
	struct db_conn *c = thread_conn;
	uint64_t now;

	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c) {
			err_set(err, ERR_INTERNAL, NULL, "out of memory");
			return NULL;
		}
		c->broken = true;
		pthread_mutex_lock(&registry_lock);
		c->next = registry;
		registry = c;
		pthread_mutex_unlock(&registry_lock);
		thread_conn = c;
	}
	if (c->pg && !c->broken && PQstatus(c->pg) == CONNECTION_OK && !server_left(c))
		return c;
	now = now_ns();
	/* back off: 200 ms, doubling per failure, at most 6.4 s */
	if (c->last_fail_ns &&
	    now - c->last_fail_ns < RECONNECT_INTERVAL_NS << (c->failures < 5 ? c->failures : 5)) {
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is unavailable");
		return NULL;
	}
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
		atomic_fetch_sub(&stat_open, 1);
	}
	atomic_fetch_add(&stat_reconnects, 1);
	if (!connect_pg(c, conninfo, true, err)) {
		c->last_fail_ns = now;
		c->failures++;
		return NULL;
	}
	c->last_fail_ns = 0;
	c->failures = 0;
	atomic_fetch_add(&stat_open, 1);
	return c;
}

void
db_shutdown(void)
{
	pthread_mutex_lock(&registry_lock);
	while (registry) {
		struct db_conn *c = registry;

		registry = c->next;
		db_close(c);
	}
	pthread_mutex_unlock(&registry_lock);
	free(conninfo);
	conninfo = NULL;
}

/* Classify a failed result: soft (retry), lost connection, or hard. */
static enum db_qs
classify(struct db_conn *c, PGresult *r, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
		if (log_get_level() <= LOG_DEBUG)
			log_emit(LOG_DEBUG, "retryable database error",
				 json_pack("{s:s, s:s}", "statement", what, "sqlstate", state));
		return DB_SOFT_ERROR;
	}
	atomic_fetch_add(&stat_errors, 1);
	/* lock_timeout, statement_timeout: overloaded, worth a retry later */
	c->busy = state && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0);
	/*
	 * class 08 = connection exception, 57P0x = server shutting down; an
	 * error without SQLSTATE came from libpq itself ("server closed the
	 * connection unexpectedly"): the connection cannot be trusted either
	 */
	if (PQstatus(c->pg) == CONNECTION_BAD || !state || !*state ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		c->broken = true;
	log_emit(c->broken ? LOG_WARN : LOG_ERROR, "database error",
		 json_pack("{s:s, s:s, s:s}", "statement", what, "sqlstate",
			   state ? state : "", "error",
			   r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg)));
	return DB_HARD_ERROR;
}

static enum db_qs
result_count(struct db_conn *c, PGresult *r, const char *what)
{
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
		return (enum db_qs)PQntuples(r);
	case PGRES_COMMAND_OK: {
		const char *n = PQcmdTuples(r);

		return (enum db_qs)(n && *n ? atoi(n) : 0);
	}
	default:
		return classify(c, r, what);
	}
}

enum db_qs
db_exec(struct db_conn *c, const char *stmt, int nparams,
	const char *const *params, PGresult **res)
{
	PGresult *r;
	enum db_qs qs;

	*res = NULL;
	if (!c->pg || c->broken)
		return DB_HARD_ERROR;
	r = PQexecPrepared(c->pg, stmt, nparams, params, NULL, NULL, 0);
	qs = result_count(c, r, stmt);
	if (qs < 0)
		PQclear(r);
	else
		*res = r;
	return qs;
}

enum db_qs
db_exec_sql(struct db_conn *c, const char *label, const char *sql, int nparams,
	    const char *const *params, PGresult **res)
{
	PGresult *r;
	enum db_qs qs;

	*res = NULL;
	if (!c->pg || c->broken)
		return DB_HARD_ERROR;
	r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	qs = result_count(c, r, label);
	if (qs < 0)
		PQclear(r);
	else
		*res = r;
	return qs;
}

enum db_qs
db_exec_none(struct db_conn *c, const char *stmt, int nparams, const char *const *params)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, stmt, nparams, params, &r);

	PQclear(r);
	return qs;
}

enum db_qs
db_exec_text(struct db_conn *c, const char *stmt, int nparams, const char *const *params,
	     char **out)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, stmt, nparams, params, &r);

	*out = NULL;
	if (qs > 0 && !(*out = strdup(PQgetvalue(r, 0, 0))))
		qs = DB_HARD_ERROR;
	PQclear(r);
	return qs;
}

enum db_qs
db_exec_version(struct db_conn *c, const char *lock, const char *stmt, int nparams,
		const char *const *params, bool *created, char **out)
{
	PGresult *r;
	enum db_qs qs = db_exec_none(c, lock, 2, params);

	*out = NULL;
	if (qs < 0)
		return qs;
	qs = db_exec(c, stmt, nparams, params, &r);
	if (qs > 0) {
		*created = PQgetvalue(r, 0, 0)[0] == 't';
		if (!(*out = strdup(PQgetvalue(r, 0, 1))))
			qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}

enum db_qs
db_exec_status(struct db_conn *c, const char *stmt, int nparams, const char *const *params,
	       bool *created, char **out, db_status_fail fail, const void *cls, struct err *err)
{
	PGresult *r;
	enum db_qs qs = db_exec(c, stmt, nparams, params, &r);
	const char *status;

	*out = NULL;
	*created = false;
	if (qs <= 0) {
		PQclear(r);
		return qs < 0 ? qs : DB_HARD_ERROR;
	}
	status = PQgetvalue(r, 0, 0);
	if (strcmp(status, "created") == 0 || strcmp(status, "replayed") == 0 ||
	    strcmp(status, "ok") == 0) {
		*created = status[0] == 'c';
		*out = strdup(PQgetvalue(r, 0, 1));
		qs = *out ? DB_ONE_RESULT : DB_HARD_ERROR;
	} else if (strcmp(status, "no_customer") == 0) {
		qs = DB_NO_RESULTS;
	} else {
		qs = fail(status, PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1), cls, err);
	}
	PQclear(r);
	return qs;
}

enum db_qs
db_exec_simple(struct db_conn *c, const char *sql)
{
	PGresult *r;
	enum db_qs qs;

	if (!c->pg || c->broken)
		return DB_HARD_ERROR;
	r = PQexec(c->pg, sql);
	qs = result_count(c, r, sql);
	PQclear(r);
	return qs;
}

/* a utility statement (PREPARE takes none), fixed text, no parameters */
enum db_qs
db_untimed(struct db_conn *c)
{
	return db_exec_simple(c, "SET LOCAL statement_timeout = 0");
}

char *
db_json_array(PGresult *r, int col, int n)
{
	size_t len = 2, at = 0;
	char *out;

	for (int i = 0; i < n; i++)
		len += (size_t)PQgetlength(r, i, col) + 1;
	out = malloc(len + 1);
	if (!out)
		return NULL;
	out[at++] = '[';
	for (int i = 0; i < n; i++) {
		size_t k = (size_t)PQgetlength(r, i, col);

		if (i)
			out[at++] = ',';
		memcpy(out + at, PQgetvalue(r, i, col), k);
		at += k;
	}
	out[at++] = ']';
	out[at] = '\0';
	return out;
}

void
db_fail(struct db_conn *c, enum db_qs qs, struct err *err)
{
	if (qs == DB_ABORT)
		return;
	if (c->broken || !c->pg)
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is unavailable");
	else if (c->busy)
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is busy, retry");
	else
		err_set(err, ERR_INTERNAL, NULL, "internal error");
}

bool
db_run_tx(struct db_conn *c, const char *label, db_tx_fn fn, void *cls,
	  struct err *err)
{
	enum db_qs qs = DB_HARD_ERROR;

	for (int attempt = 0; attempt < TX_MAX_ATTEMPTS; attempt++) {
		err_clear(err);
		qs = db_exec_simple(c, "BEGIN");
		if (qs < 0)
			break;
		qs = fn(c, cls, err);
		if (qs >= 0) {
			qs = db_exec_simple(c, "COMMIT");
			if (qs >= 0)
				return true;
		} else if (!c->broken) {
			(void)db_exec_simple(c, "ROLLBACK");
		}
		if (qs != DB_SOFT_ERROR)
			break;
		atomic_fetch_add(&stat_retries, 1);
		/* back off a little, more on each attempt, so the winner finishes */
		usleep((useconds_t)(1000u << attempt) + (useconds_t)(rand() % 1000));
	}
	if (qs == DB_SOFT_ERROR) {
		log_emit(LOG_WARN, "transaction gave up after retries",
			 json_pack("{s:s}", "tx", label));
		err_set(err, ERR_DB_UNAVAILABLE, NULL, "database is busy, retry");
		return false;
	}
	db_fail(c, qs, err);
	return false;
}

void
db_get_stats(struct db_stats *out)
{
	out->errors = atomic_load(&stat_errors);
	out->reconnects = atomic_load(&stat_reconnects);
	out->retries = atomic_load(&stat_retries);
	out->conns_open = atomic_load(&stat_open);
	out->conns_busy = atomic_load(&stat_busy);
}

void
db_release(struct db_conn *c)
{
	/* a session left inside a transaction would poison every later request */
	if (c->pg && !c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		log_warn("connection left in a transaction: reconnecting");
		c->broken = true;
	}
}

void
db_discard(struct db_conn *c)
{
	c->broken = true;
}

void
db_mark_busy(bool busy)
{
	if (busy)
		atomic_fetch_add(&stat_busy, 1);
	else
		atomic_fetch_sub(&stat_busy, 1);
}

/* ---- streams ------------------------------------------------------------- */

/*
 * A stream is a cursor read in batches, in binary: a FETCH of 2,048 rows
 * is one result, where single-row mode made a result (and copied the
 * column descriptions) for every row, and binary columns skip PostgreSQL's
 * output functions (a timestamp printed as text costs more than the row's
 * read).  The next FETCH is sent before a batch is handed out, so
 * PostgreSQL reads the next rows while the caller formats these.  The
 * first batch is small: the reply starts at once.
 */
#define STREAM_FIRST 256
#define STREAM_BATCH 2048

struct db_stream {
	struct db_conn conn;
	char label[64];  /* a copy: the caller's may live on its stack */
	PGresult *first; /* the batch db_stream_open waited for, not yet handed out */
	bool in_flight;  /* a FETCH is sent and its result not read */
	bool done;       /* the cursor has no more rows */
};

static atomic_int streams_open;

static bool
stream_fetch(struct db_stream *s, int rows)
{
	char sql[48];

	snprintf(sql, sizeof sql, "FETCH %d FROM rebuy_stream", rows);
	s->in_flight = PQsendQueryParams(s->conn.pg, sql, 0, NULL, NULL, NULL, NULL, 1) == 1;
	return s->in_flight;
}

/*
 * The result of the FETCH in flight: a batch of rows (the next FETCH sent
 * when it was full), NULL at the end (done) or on an error (failed).
 */
static PGresult *
stream_batch(struct db_stream *s, int asked, bool *failed)
{
	PGresult *r = PQgetResult(s->conn.pg), *extra;

	while ((extra = PQgetResult(s->conn.pg)))
		PQclear(extra);
	s->in_flight = false;
	*failed = !r || PQresultStatus(r) != PGRES_TUPLES_OK;
	if (*failed) {
		classify(&s->conn, r, s->label);
		PQclear(r);
		s->done = true;
		return NULL;
	}
	if (PQntuples(r) < asked)
		s->done = true;
	else if (!stream_fetch(s, STREAM_BATCH)) {
		classify(&s->conn, NULL, s->label);
		PQclear(r);
		s->done = true;
		*failed = true;
		return NULL;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NULL;
	}
	return r;
}

/* err for a stream that failed: a timeout or a lost server is worth a retry; anything else is ours */
static void
stream_failed(struct db_stream *s, struct err *err)
{
	err_set(err, s->conn.busy || s->conn.broken ? ERR_DB_UNAVAILABLE : ERR_INTERNAL, NULL,
		s->conn.busy || s->conn.broken ? "database is busy or unavailable, retry"
					       : "internal error");
}

struct db_stream *
db_stream_open(const char *label, struct err *err)
{
	struct db_stream *s;
	PGresult *r;
	bool failed;

	if (atomic_fetch_add(&streams_open, 1) >= DB_STREAMS_MAX) {
		atomic_fetch_sub(&streams_open, 1);
		err_set(err, ERR_BUSY, NULL, "%d exports are running: retry when one ends",
			DB_STREAMS_MAX);
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		atomic_fetch_sub(&streams_open, 1);
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	snprintf(s->label, sizeof s->label, "%s", label);
	if (!connect_pg(&s->conn, conninfo, false, err)) {
		free(s);
		atomic_fetch_sub(&streams_open, 1);
		return NULL;
	}
	/*
	 * A long export is as slow as its client, so no statement limit; a
	 * client that goes away ends it (we cancel), and PostgreSQL checks
	 * for a vanished peer even while it sorts.  A cursor is planned for
	 * its first tenth unless told it is read whole.  Repeatable read:
	 * what is read before the cursor and the cursor share a snapshot.
	 */
	r = PQexec(s->conn.pg, "SET statement_timeout TO 0;"
			       " SET client_connection_check_interval TO '1s';"
			       /* between two FETCHes the session idles as long as the client reads */
			       " SET idle_in_transaction_session_timeout TO 0;"
			       " SET cursor_tuple_fraction TO 1;"
			       " BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	failed = PQresultStatus(r) != PGRES_COMMAND_OK;
	if (failed)
		classify(&s->conn, r, s->label);
	PQclear(r);
	if (!failed)
		return s;
	stream_failed(s, err);
	db_stream_close(s);
	return NULL;
}

enum db_qs
db_stream_query(struct db_stream *s, const char *stmt, int nparams, const char *const *params,
		PGresult **r, struct err *err)
{
	enum db_qs qs = db_exec_sql(&s->conn, stmt, db_stmt_sql(stmt), nparams, params, r);

	if (qs < 0)
		stream_failed(s, err);
	return qs;
}

bool
db_stream_declare(struct db_stream *s, const char *sql, int nparams, const char *const *params,
		  struct err *err)
{
	PGresult *r;
	char *declare;
	bool failed;

	if (asprintf(&declare, "DECLARE rebuy_stream NO SCROLL CURSOR FOR %s", sql) < 0) {
		err_set(err, ERR_INTERNAL, NULL, "out of memory");
		return false;
	}
	r = PQexecParams(s->conn.pg, declare, nparams, NULL, params, NULL, NULL, 0);
	free(declare);
	failed = PQresultStatus(r) != PGRES_COMMAND_OK;
	if (failed)
		classify(&s->conn, r, s->label);
	PQclear(r);
	if (!failed && !stream_fetch(s, STREAM_FIRST)) {
		classify(&s->conn, NULL, s->label);
		failed = true;
	}
	if (!failed)
		s->first = stream_batch(s, STREAM_FIRST, &failed);
	if (failed)
		stream_failed(s, err);
	return !failed;
}

int
db_stream_next(struct db_stream *s, PGresult **batch)
{
	bool failed = false;

	*batch = s->first;
	s->first = NULL;
	if (!*batch && s->in_flight)
		*batch = stream_batch(s, STREAM_BATCH, &failed);
	if (*batch)
		return 1;
	return failed ? -1 : 0;
}

void
db_stream_close(struct db_stream *s)
{
	if (!s)
		return;
	PQclear(s->first);
	if (s->conn.pg && s->in_flight) {
		/* the client left early: stop the query rather than drain it */
		PGcancel *cancel = PQgetCancel(s->conn.pg);
		char buf[256];

		if (cancel) {
			PQcancel(cancel, buf, sizeof buf);
			PQfreeCancel(cancel);
		}
	}
	if (s->conn.pg)
		PQfinish(s->conn.pg);
	free(s);
	atomic_fetch_sub(&streams_open, 1);
}

enum db_qs
db_verify(struct db_conn *c, const char *stmt, const char *shop_id,
	  void (*report)(const char *shop, const char *what, const char *detail))
{
	const char *p[1] = { shop_id };
	PGresult *r;
	enum db_qs qs = db_exec(c, stmt, 1, p, &r);

	if (qs < 0)
		return qs;
	for (int i = 0; i < (int)qs; i++)
		report(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
	PQclear(r);
	return qs;
}

int
db_sweep(struct db_conn *c, const char *stmt, const char *shop_id)
{
	char limit[16];
	const char *p[2] = { limit, shop_id };
	int total = 0, n;

	snprintf(limit, sizeof limit, "%d", DB_SWEEP_BATCH);
	do {
		char *text = NULL;
		enum db_qs qs = db_exec_text(c, stmt, shop_id ? 2 : 1, p, &text);

		n = qs > 0 && text ? atoi(text) : -1;
		free(text);
		if (n < 0)
			return -1;
		total += n;
	} while (n == DB_SWEEP_BATCH);
	return total;
}

/* ---- binary columns ------------------------------------------------------ */

static uint64_t
be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int k = 0; k < 8; k++)
		v = v << 8 | p[k];
	return v;
}

int32_t
db_bin_int4(const PGresult *r, int row, int col)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);

	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

int64_t
db_bin_int8(const PGresult *r, int row, int col)
{
	return (int64_t)be64((const unsigned char *)PQgetvalue(r, row, col));
}

bool
db_bin_bool(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] != 0;
}

/* v in width decimal digits, zeros in front */
static void
digits(char *out, int width, unsigned v)
{
	while (width-- > 0) {
		out[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* a / b rounded down (b > 0): instants before 2000 are negative */
static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

size_t
db_bin_instant(const PGresult *r, int row, int col, char out[DB_INSTANT_MAX])
{
	/* microseconds since 2000-01-01 00:00 UTC, which is day 10957 of 1970 */
	int64_t us = db_bin_int8(r, row, col), s, day;
	unsigned m, d, sod, frac;
	int y;

	if (us == INT64_MAX || us == INT64_MIN)
		return (size_t)snprintf(out, DB_INSTANT_MAX, "%s", us > 0 ? "infinity" : "-infinity");
	s = floor_div(us, 1000000);
	day = floor_div(s, 86400);
	civil_from_days((long)(day + 10957), &y, &m, &d);
	sod = (unsigned)(s - day * 86400);
	frac = (unsigned)(us - s * 1000000);
	if (y < 0 || y > 9999) /* not an order's date; as to_char would, if slower */
		return (size_t)snprintf(out, DB_INSTANT_MAX, "%04d-%02u-%02uT%02u:%02u:%02u.%06uZ", y, m,
					d, sod / 3600, sod / 60 % 60, sod % 60, frac);
	/*
	 * As rfc3339() (migration 0001) writes it, to_char's
	 * YYYY-MM-DD"T"HH24:MI:SS.US"Z"; by hand, as snprintf costs more than
	 * the rest of an export row.
	 */
	digits(out, 4, (unsigned)y);
	out[4] = '-';
	digits(out + 5, 2, m);
	out[7] = '-';
	digits(out + 8, 2, d);
	out[10] = 'T';
	digits(out + 11, 2, sod / 3600);
	out[13] = ':';
	digits(out + 14, 2, sod / 60 % 60);
	out[16] = ':';
	digits(out + 17, 2, sod % 60);
	out[19] = '.';
	digits(out + 20, 6, frac);
	out[26] = 'Z';
	return 27;
}
