/*
 * err.h — the error vocabulary shared by every module.
 *
 * Domain and database code never speak HTTP: they fill a caller-owned
 * struct err with a code and a message.  src/http/reply.c is the one place
 * that turns a code into a status, a problem type and a title.
 */
#ifndef REBUY_ERR_H
#define REBUY_ERR_H

#include <stdarg.h>

enum err_code {
	ERR_NONE = 0,
	ERR_MALFORMED_JSON,        /* 400 */
	ERR_INVALID_PARAMETER,     /* 400 */
	ERR_UNAUTHENTICATED,       /* 401 */
	ERR_FORBIDDEN,             /* 403 */
	ERR_NOT_FOUND,             /* 404 */
	ERR_METHOD_NOT_ALLOWED,    /* 405 */
	ERR_CONFLICT,              /* 409 */
	ERR_LAST_ADMIN_KEY,        /* 409 */
	ERR_IDEMPOTENCY_IN_PROGRESS, /* 409 */
	ERR_ORDER_CONFLICT,        /* 409 */
	ERR_REFUND_CONFLICT,       /* 409 */
	ERR_ORDER_CANCELLED,       /* 409 */
	ERR_CARD_NUMBER_TAKEN,     /* 409 */
	ERR_PAYLOAD_TOO_LARGE,     /* 413 */
	ERR_NOT_ACCEPTABLE,        /* 406 */
	ERR_UNSUPPORTED_MEDIA_TYPE, /* 415 */
	ERR_VALIDATION,            /* 422 */
	ERR_QUOTA_EXCEEDED,        /* 422: with quota, used, remaining */
	ERR_BENEFIT_NOT_VALID,     /* 422 */
	ERR_INSUFFICIENT_FUNDS,    /* 422: with principal, bonus_available, available */
	ERR_OFFER_LIMIT_REACHED,   /* 422 */
	ERR_INSUFFICIENT_USES,     /* 422: with uses_left */
	ERR_PACKAGE_NOT_USABLE,    /* 422: expired, refunded or used up */
	ERR_COUPON_NOT_YET_VALID,  /* 422 */
	ERR_COUPON_EXPIRED,        /* 422 */
	ERR_COUPON_USED,           /* 422: redeemed for another order, or cancelled */
	ERR_BELOW_MINIMUM_SPEND,   /* 422: with min_spend */
	ERR_IDEMPOTENCY_KEY_REUSED, /* 422 */
	ERR_INTERNAL,              /* 500 */
	ERR_DB_UNAVAILABLE,        /* 503 */
	ERR_SCHEMA_OUTDATED,       /* 503 */
	ERR_BUSY,                  /* 503: too many exports at once */
	ERR__COUNT
};

#define ERR_EXT_MAX 4

struct err {
	enum err_code code;
	char message[256];  /* one fact, lower case, no trailing period */
	char pointer[160];  /* JSON pointer of the offending input, or "" */
	/* integer members added to the problem (RFC 9457 extensions), e.g. remaining */
	unsigned n_ext;
	struct {
		const char *name; /* a string literal */
		long long value;
	} ext[ERR_EXT_MAX];
};

/* Set code, pointer (may be NULL) and a printf-style message; no extensions. */
void err_set(struct err *e, enum err_code code, const char *pointer,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Add an integer extension member to the problem (after err_set). */
void err_ext(struct err *e, const char *name, long long value);

/* Reset to ERR_NONE. */
void err_clear(struct err *e);

/*
 * Append an RFC 6901-escaped reference token to a pointer buffer.
 * Truncates silently (pointers are diagnostics, not keys).
 */
void err_pointer_append(char *buf, size_t size, const char *token);

/*
 * Replace every byte that is not part of valid UTF-8 with '?', in place:
 * messages quote user input, and JSON must stay valid.
 */
void err_utf8_clean(char *s);

#endif
