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

/*
 * A 200 streamed with chunked encoding: read(cls, buf, max) fills buf and
 * returns the bytes written, 0 at the end, -1 on an error (the connection
 * is then closed without the last chunk, so the client sees a cut
 * transfer, not a short file).  done(cls) runs when the response is freed.
 */
typedef long (*reply_read_fn)(void *cls, char *buf, size_t max);
void reply_stream(struct request *req, const char *content_type, reply_read_fn read,
		  void (*done)(void *cls), void *cls);

/* Add a header to the reply already set. */
void reply_header(struct request *req, const char *name, const char *value);

/* HTTP status, stable code and title for an error code. */
unsigned reply_status_of(enum err_code code);
const char *reply_code_of(enum err_code code);

#endif
