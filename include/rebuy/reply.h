/*
 * reply.h — building responses.  The one place that maps error codes to
 * HTTP statuses and RFC 9457 problem+json bodies.
 *
 * Each reply_* sets req->status and req->response; the server queues it.
 */
#ifndef REBUY_REPLY_H
#define REBUY_REPLY_H

#include <jansson.h>
#include "rebuy/err.h"
#include "rebuy/request.h"

/* Serialize body (reference stolen) with the given status. */
void reply_json(struct request *req, unsigned status, json_t *body);

/* Send already-serialized JSON text (copied). */
void reply_json_text(struct request *req, unsigned status, const char *text,
		     size_t len);

/* A problem+json reply for e. */
void reply_problem(struct request *req, const struct err *e);

/* Shorthand: err_set + reply_problem. */
void reply_error(struct request *req, enum err_code code, const char *pointer,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void reply_empty(struct request *req, unsigned status);

void reply_text(struct request *req, unsigned status, const char *content_type,
		char *text, size_t len); /* takes ownership of text (malloc'd) */

/* Add a header to the reply already set. */
void reply_header(struct request *req, const char *name, const char *value);

/* HTTP status, stable code and title for an error code. */
unsigned reply_status_of(enum err_code code);
const char *reply_code_of(enum err_code code);

#endif
