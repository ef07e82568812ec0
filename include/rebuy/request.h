/*
 * request.h — the per-request state that travels from the server through
 * the router to a handler and back to the reply.
 *
 * Allocated on the first libmicrohttpd callback, freed by the completion
 * callback on every path (aborted requests too).
 */
#ifndef REBUY_REQUEST_H
#define REBUY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct MHD_Connection;
struct MHD_Response;
struct route;

enum scope {
	SCOPE_PLATFORM = 1 << 0,
	SCOPE_ADMIN = 1 << 1,
	SCOPE_STOREFRONT = 1 << 2,
	SCOPE_READONLY = 1 << 3,
};

#define ROUTE_MAX_PARAMS 3

struct request {
	char id[17];                  /* 16 hex chars */
	struct MHD_Connection *conn;
	char method[8];
	char *path;                   /* owned, decoded path without query */
	uint64_t start_ns;

	/* body, accumulated across upload callbacks */
	char *body;
	size_t body_len, body_cap;
	bool body_too_large;

	/* routing */
	const struct route *route;
	int route_index;              /* -1 when unmatched */
	const char *params[ROUTE_MAX_PARAMS]; /* point into params_buf */
	char params_buf[2048];        /* longer segments cannot match */

	/* authentication: the calling key */
	bool authed;
	enum scope scope;
	char key_id[37];              /* uuid of the API key */
	char shop_id[37];             /* uuid, "" for platform keys */

	/* Idempotency-Key header, NULL if absent (points into MHD memory) */
	const char *idem_key;

	/* the reply, set by reply_* exactly once */
	unsigned status;
	struct MHD_Response *response;
};

/* Current monotonic time in nanoseconds. */
uint64_t request_now_ns(void);

/* A request header, or NULL. */
const char *request_header(struct request *req, const char *name);

/* A query argument, or NULL. */
const char *request_query(struct request *req, const char *name);

#endif
