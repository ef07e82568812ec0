/*
 * reply.c — the one place that knows HTTP statuses and problem types.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "rebuy/log.h"
#include "rebuy/reply.h"

/*
 * Reals in replies are decimals already rounded (ratios to 4 places, RFM
 * averages to 1): 15 significant digits print them as written (0.3, not
 * 0.29999999999999999) and keep an average of 1234567890.5 whole.
 */
#define REPLY_REAL_FORMAT JSON_REAL_PRECISION(15)

static const struct {
	unsigned status;
	const char *code;
	const char *title;
} problems[ERR__COUNT] = {
	[ERR_NONE] = { 500, "internal_error", "Internal error" },
	[ERR_MALFORMED_JSON] = { 400, "malformed_json", "Malformed JSON body" },
	[ERR_INVALID_PARAMETER] = { 400, "invalid_parameter", "Invalid parameter" },
	[ERR_UNAUTHENTICATED] = { 401, "unauthenticated", "Authentication required" },
	[ERR_FORBIDDEN] = { 403, "forbidden", "Not allowed for this API key's scope" },
	[ERR_NOT_FOUND] = { 404, "not_found", "Not found" },
	[ERR_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "Method not allowed" },
	[ERR_CONFLICT] = { 409, "conflict", "Conflict" },
	[ERR_LAST_ADMIN_KEY] = { 409, "last_admin_key", "Cannot revoke the last admin key" },
	[ERR_IDEMPOTENCY_IN_PROGRESS] = { 409, "idempotency_in_progress",
					  "A request with this Idempotency-Key is in progress" },
	[ERR_ORDER_CONFLICT] = { 409, "order_conflict",
				 "Order id already used for a different order" },
	[ERR_REFUND_CONFLICT] = { 409, "refund_conflict",
				  "Refund id already used for a different refund" },
	[ERR_ORDER_CANCELLED] = { 409, "order_cancelled", "The order is cancelled" },
	[ERR_CARD_NUMBER_TAKEN] = { 409, "card_number_taken",
				    "Card number already used in this shop" },
	[ERR_QUOTA_EXCEEDED] = { 422, "quota_exceeded", "Quota for this period used up" },
	[ERR_BENEFIT_NOT_VALID] = { 422, "benefit_not_valid", "Benefit not valid at this time" },
	[ERR_INSUFFICIENT_FUNDS] = { 422, "insufficient_funds", "Not enough in the wallet" },
	[ERR_OFFER_LIMIT_REACHED] = { 422, "offer_limit_reached",
				      "The customer reached this offer's limit" },
	[ERR_INSUFFICIENT_USES] = { 422, "insufficient_uses", "Not enough uses left in the package" },
	[ERR_PACKAGE_NOT_USABLE] = { 422, "package_not_usable",
				     "The package is expired, refunded or used up" },
	[ERR_COUPON_NOT_YET_VALID] = { 422, "coupon_not_yet_valid", "The coupon is not valid yet" },
	[ERR_COUPON_EXPIRED] = { 422, "coupon_expired", "The coupon has expired" },
	[ERR_COUPON_USED] = { 422, "coupon_used", "The coupon was used or cancelled" },
	[ERR_BELOW_MINIMUM_SPEND] = { 422, "below_minimum_spend",
				      "The order is below the coupon's minimum spend" },
	[ERR_PAYLOAD_TOO_LARGE] = { 413, "payload_too_large", "Request body too large" },
	[ERR_NOT_ACCEPTABLE] = { 406, "not_acceptable",
				 "None of the accepted media types can be produced" },
	[ERR_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported_media_type",
					 "Unsupported media type" },
	[ERR_VALIDATION] = { 422, "validation_failed", "Request failed validation" },
	[ERR_IDEMPOTENCY_KEY_REUSED] = { 422, "idempotency_key_reused",
					 "Idempotency-Key reused with a different request" },
	[ERR_INTERNAL] = { 500, "internal_error", "Internal error" },
	[ERR_DB_UNAVAILABLE] = { 503, "database_unavailable", "Database unavailable" },
	[ERR_SCHEMA_OUTDATED] = { 503, "schema_outdated", "Database schema is outdated" },
	[ERR_BUSY] = { 503, "busy", "Too many exports in progress" },
};

unsigned
reply_status_of(enum err_code code)
{
	return code < ERR__COUNT ? problems[code].status : 500;
}

const char *
reply_code_of(enum err_code code)
{
	return code < ERR__COUNT ? problems[code].code : "internal_error";
}

static void
set_response(struct request *req, unsigned status, struct MHD_Response *resp,
	     const char *content_type)
{
	if (req->response) /* a second reply is a bug: keep the last, say so */
		MHD_destroy_response(req->response);
	req->status = status;
	req->response = resp;
	if (resp && content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
}

void
reply_text(struct request *req, unsigned status, const char *content_type,
	   char *text, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);

	if (!resp) {
		free(text);
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		status = 500;
	}
	set_response(req, status, resp, content_type);
}

/* a stream's reader and its state, for libmicrohttpd's callbacks */
struct stream {
	reply_read_fn read;
	void (*done)(void *cls);
	void *cls;
};

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	long n = st->read(st->cls, buf, max);

	(void)pos;
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
stream_free(void *cls)
{
	struct stream *st = cls;

	st->done(st->cls);
	free(st);
}

/* 64 KiB chunks: few system calls, and the memory a stream holds stays small */
#define STREAM_BLOCK 65536

void
reply_stream(struct request *req, const char *content_type, reply_read_fn read,
	     void (*done)(void *cls), void *cls)
{
	struct stream *st = malloc(sizeof *st);
	struct MHD_Response *resp = NULL;

	if (st) {
		*st = (struct stream){ .read = read, .done = done, .cls = cls };
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
							 stream_read, st, stream_free);
	}
	if (!resp) {
		free(st);
		done(cls);
		reply_error(req, ERR_INTERNAL, NULL, "out of memory");
		return;
	}
	set_response(req, 200, resp, content_type);
}

void
reply_json_text(struct request *req, unsigned status, const char *text, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy)
		memcpy(copy, text, len);
	reply_text(req, status, "application/json", copy, copy ? len : 0);
}

void
reply_json(struct request *req, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | REPLY_REAL_FORMAT)
			  : NULL;

	json_decref(body);
	if (!text) {
		reply_error(req, ERR_INTERNAL, NULL, "internal error");
		return;
	}
	reply_text(req, status, "application/json", text, strlen(text));
}

void
reply_empty(struct request *req, unsigned status)
{
	set_response(req, status,
		     MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT),
		     NULL);
}

void
reply_problem(struct request *req, const struct err *e)
{
	enum err_code code = e->code < ERR__COUNT ? e->code : ERR_INTERNAL;
	unsigned status = problems[code].status;
	char type[96], message[sizeof e->message], pointer[sizeof e->pointer];
	json_t *body;
	char *text;

	snprintf(type, sizeof type, "https://rebuy.dev/problems/%s", problems[code].code);
	/* messages may quote input cut mid-character: keep the JSON valid */
	snprintf(message, sizeof message, "%s", e->message);
	snprintf(pointer, sizeof pointer, "%s", e->pointer);
	err_utf8_clean(message);
	err_utf8_clean(pointer);
	body = json_pack("{s:s, s:s, s:I, s:s, s:s}", "type", type, "title",
			 problems[code].title, "status", (json_int_t)status, "detail",
			 message[0] ? message : problems[code].title, "code",
			 problems[code].code);
	if (body && pointer[0])
		json_object_set_new(body, "pointer", json_string(pointer));
	for (unsigned i = 0; body && i < e->n_ext && i < ERR_EXT_MAX; i++)
		json_object_set_new(body, e->ext[i].name, json_integer(e->ext[i].value));
	if (body)
		json_object_set_new(body, "request_id", json_string(req->id));
	text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | REPLY_REAL_FORMAT) : NULL;
	json_decref(body);
	if (!text) {
		text = strdup("{\"type\":\"https://rebuy.dev/problems/internal_error\","
			      "\"title\":\"Internal error\",\"status\":500,"
			      "\"detail\":\"out of memory\",\"code\":\"internal_error\"}");
		status = 500;
	}
	reply_text(req, status, "application/problem+json", text, text ? strlen(text) : 0);
	if (status == 401)
		reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"rebuy\"");
	if (status == 503)
		reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

void
reply_error(struct request *req, enum err_code code, const char *pointer,
	    const char *fmt, ...)
{
	struct err e;
	va_list ap;

	e.code = code;
	e.n_ext = 0;
	snprintf(e.pointer, sizeof e.pointer, "%s", pointer ? pointer : "");
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof e.message, fmt, ap);
	va_end(ap);
	reply_problem(req, &e);
}

void
reply_header(struct request *req, const char *name, const char *value)
{
	if (req->response)
		MHD_add_response_header(req->response, name, value);
}
