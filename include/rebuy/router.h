/*
 * router.h — the route table: method + path pattern → handler + scopes.
 *
 * Patterns are literal segments and {name} placeholders matching one
 * non-empty segment.  Unknown path → 404; known path, other method → 405
 * with Allow.
 */
#ifndef REBUY_ROUTER_H
#define REBUY_ROUTER_H

#include <stddef.h>
#include "rebuy/request.h"

typedef void (*route_handler)(struct request *req);

struct route {
	const char *method;
	const char *pattern;   /* also the route label in logs and metrics */
	route_handler handler;
	unsigned scopes;       /* allowed scopes; 0 = public (no key) */
	unsigned flags;
	const char *query;     /* allowed query parameters, space-separated */
};

enum route_flags {
	ROUTE_BODY = 1 << 0,        /* expects a JSON body */
	ROUTE_IDEMPOTENT = 1 << 1,  /* honours Idempotency-Key */
	ROUTE_NEGOTIATED = 1 << 2,  /* picks its media type by Accept: every reply says Vary */
};

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

extern const struct route router_routes[];
extern const size_t router_route_count;

/*
 * Match method and path.  On ROUTER_FOUND *index is the route and params
 * are copied to buf and pointed to by params.  On
 * ROUTER_METHOD_NOT_ALLOWED, allow receives "GET, PUT" style text.
 */
enum router_result router_match(const char *method, const char *path,
				 int *index, const char *params[ROUTE_MAX_PARAMS],
				 char *buf, size_t bufsize, char *allow,
				 size_t allowsize);

/* Route the request (auth, scope, body checks) and run its handler. */
void router_dispatch(struct request *req);

#endif
