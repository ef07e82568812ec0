/*
 * server.h — the libmicrohttpd daemon: limits, per-request state, drain.
 */
#ifndef REBUY_SERVER_H
#define REBUY_SERVER_H

#include <stdbool.h>
#include "rebuy/config.h"

/* Start listening.  Returns false if the address cannot be bound. */
bool server_start(const struct config *cfg) __attribute__((warn_unused_result));

/*
 * Stop accepting, wait up to timeout seconds for in-flight requests, then
 * stop the daemon.
 */
void server_drain_and_stop(unsigned timeout);

/* True once draining started (replies then ask clients to close). */
bool server_draining(void);

/* The configured body limit. */
size_t server_body_limit(void);

#endif
