/*
 * idempotency.h — Idempotency-Key records: per API key, a fingerprint of
 * the request and the response it got, kept 48 hours.
 *
 * The claim takes a transaction-scoped advisory lock on (key id, header
 * value) without waiting: a second request with the same key while the
 * first still runs is told so (409) instead of queueing behind it.  Claim,
 * writes and stored response share one transaction, so a crash leaves
 * either everything or nothing.
 */
#ifndef REBUY_IDEMPOTENCY_H
#define REBUY_IDEMPOTENCY_H

#include "rebuy/db.h"

enum idem_state {
	IDEM_NEW,      /* first time: run the request, then idem_store */
	IDEM_REPLAY,   /* same request seen before: *stored is filled */
	IDEM_MISMATCH, /* same key, different request */
	IDEM_BUSY,     /* same key, request still in flight */
};

struct idem_stored {
	unsigned status;
	char *body;     /* malloc'd JSON text or NULL */
	char *location; /* malloc'd or NULL */
};

void idem_stored_free(struct idem_stored *s);

/* Must run inside a transaction. */
enum db_qs idem_claim(struct db_conn *c, const char *key_id,
		      const char *idem_key, const char *fingerprint,
		      enum idem_state *state, struct idem_stored *stored);

enum db_qs idem_store(struct db_conn *c, const char *key_id,
		      const char *idem_key, const char *fingerprint,
		      unsigned status, const char *body, const char *location);

/* Delete records past their retention; returns rows deleted. */
enum db_qs idem_purge(struct db_conn *c);

extern const struct db_stmt idem_stmts[];

#endif
