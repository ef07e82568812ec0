/*
 * common.c — what every handler shares: decoding bodies, and api_run, the
 * one path from a handler to the database.
 *
 * Writes run in one transaction together with the Idempotency-Key claim
 * and the stored response, so a retried POST can never apply twice and a
 * crash can never leave a claim without its effect.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "rebuy/api.h"
#include "rebuy/idempotency.h"
#include "rebuy/keys.h"
#include "rebuy/reply.h"
#include "rebuy/router.h"

#define BODY_MAX_DEPTH 32

const char *
api_str(const json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

bool
api_shop_visible(struct request *req, const char *shop_id)
{
	if (req->scope == SCOPE_PLATFORM || strcmp(req->shop_id, shop_id) == 0)
		return true;
	/* another shop's objects do not exist for this key */
	reply_error(req, ERR_NOT_FOUND, NULL, "shop not found");
	return false;
}

/* application/json, optionally with charset=utf-8 (JSON is UTF-8). */
static bool
is_json_media_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct || strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	ct += strspn(ct, " \t");
	if (*ct == '\0')
		return true;
	if (*ct++ != ';')
		return false;
	ct += strspn(ct, " \t");
	if (strncasecmp(ct, "charset=", 8) != 0)
		return false;
	ct += 8;
	if (strncasecmp(ct, "utf-8", 5) == 0)
		ct += 5;
	else if (strncasecmp(ct, "\"utf-8\"", 7) == 0)
		ct += 7;
	else
		return false;
	ct += strspn(ct, " \t");
	return *ct == '\0';
}

json_t *
api_body(struct request *req, const struct jv_field *spec)
{
	json_error_t jerr;
	struct err err;
	json_t *root;

	if (!is_json_media_type(request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
		reply_error(req, ERR_UNSUPPORTED_MEDIA_TYPE, "/header/Content-Type",
			    "request body must be sent as Content-Type: application/json");
		return NULL;
	}
	if (req->body_len == 0) {
		reply_error(req, ERR_MALFORMED_JSON, NULL, "request body is empty");
		return NULL;
	}
	/* jansson would recurse 2048 levels deep; we allow far fewer */
	if (jv_depth(req->body, req->body_len) > BODY_MAX_DEPTH) {
		reply_error(req, ERR_MALFORMED_JSON, NULL,
			    "JSON nesting deeper than %d levels", BODY_MAX_DEPTH);
		return NULL;
	}
	/* any JSON value decodes; a non-object is then a validation error */
	root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_numeric_overflow)
			reply_error(req, ERR_VALIDATION, NULL,
				    "number out of range at line %d column %d",
				    jerr.line, jerr.column);
		else
			reply_error(req, ERR_MALFORMED_JSON, NULL,
				    "invalid JSON at line %d column %d: %s", jerr.line,
				    jerr.column, jerr.text);
		return NULL;
	}
	if (!jv_validate(root, spec, "", &err)) {
		json_decref(root);
		reply_problem(req, &err);
		return NULL;
	}
	return root;
}

struct tx_ctx {
	struct request *req;
	api_fn fn;
	void *cls;
	struct api_result res;
	char fingerprint[KEYS_HASH_HEX + 1];
	bool replayed;
	struct idem_stored stored;
};

static void
result_reset(struct api_result *r)
{
	json_decref(r->body);
	json_decref(r->replay_body);
	free(r->raw);
	if (r->stream.done)
		r->stream.done(r->stream.cls);
	memset(r, 0, sizeof *r);
}

static enum db_qs
tx_body(struct db_conn *c, void *cls, struct err *err)
{
	struct tx_ctx *t = cls;
	struct request *req = t->req;
	enum idem_state state = IDEM_NEW;
	enum db_qs qs;
	char *text = NULL;

	/* a retried transaction starts from scratch */
	result_reset(&t->res);
	idem_stored_free(&t->stored);
	t->replayed = false;
	if (req->idem_key) {
		qs = idem_claim(c, req->key_id, req->idem_key, t->fingerprint, &state,
				&t->stored);
		if (qs < 0)
			return qs;
		switch (state) {
		case IDEM_BUSY:
			err_set(err, ERR_IDEMPOTENCY_IN_PROGRESS, "/header/Idempotency-Key",
				"a request with this Idempotency-Key is still being processed");
			return DB_ABORT;
		case IDEM_MISMATCH:
			err_set(err, ERR_IDEMPOTENCY_KEY_REUSED, "/header/Idempotency-Key",
				"this Idempotency-Key was used with a different request");
			return DB_ABORT;
		case IDEM_REPLAY:
			t->replayed = true;
			return DB_ONE_RESULT;
		case IDEM_NEW:
			break;
		}
	}
	qs = t->fn(c, t->cls, &t->res, err);
	if (qs < 0 || !req->idem_key)
		return qs;
	if (t->res.replay_body || t->res.body) {
		text = json_dumps(t->res.replay_body ? t->res.replay_body : t->res.body,
				  JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!text)
			return DB_HARD_ERROR;
	}
	qs = idem_store(c, req->key_id, req->idem_key, t->fingerprint, t->res.status,
			text ? text : t->res.raw,
			t->res.location[0] ? t->res.location : NULL);
	free(text);
	return qs;
}

/* SHA-256 over method, path and body: what "the same request" means. */
static void
fingerprint(struct request *req, char out[KEYS_HASH_HEX + 1])
{
	size_t mlen = strlen(req->method), plen = strlen(req->path);
	size_t n = mlen + 1 + plen + 1 + req->body_len;
	char *buf = malloc(n + 1);

	if (!buf) {
		memset(out, '0', KEYS_HASH_HEX);
		out[KEYS_HASH_HEX] = '\0';
		return;
	}
	memcpy(buf, req->method, mlen);
	buf[mlen] = '\n';
	memcpy(buf + mlen + 1, req->path, plen);
	buf[mlen + 1 + plen] = '\n';
	if (req->body_len)
		memcpy(buf + mlen + plen + 2, req->body, req->body_len);
	keys_sha256_hex(buf, n, out);
	free(buf);
}

static void
reply_result(struct request *req, struct api_result *res)
{
	if (res->stream.read) {
		reply_stream(req, res->stream.content_type, res->stream.read, res->stream.done,
			     res->stream.cls);
		if (res->stream.disposition[0])
			reply_header(req, MHD_HTTP_HEADER_CONTENT_DISPOSITION, res->stream.disposition);
		memset(&res->stream, 0, sizeof res->stream); /* the reply owns it now */
	} else if (res->body) {
		reply_json(req, res->status, res->body);
		res->body = NULL;
	} else if (res->raw) {
		reply_text(req, res->status, "application/json", res->raw, strlen(res->raw));
		res->raw = NULL;
	} else {
		reply_empty(req, res->status);
	}
	if (res->location[0])
		reply_header(req, MHD_HTTP_HEADER_LOCATION, res->location);
}

bool api_test_clock;

/* Set (now) or clear (NULL) the connection's test clock, rebuy.now. */
static bool
test_clock_set(struct db_conn *c, const char *now, struct err *err)
{
	const char *p[1] = { now ? now : "" };
	PGresult *r;
	enum db_qs qs = db_exec_sql(c, "test clock", "SELECT set_config('rebuy.now', $1, false)", 1,
				    p, &r);

	PQclear(r);
	if (qs < 0)
		db_fail(c, qs, err);
	return qs >= 0;
}

bool
api_test_clock_begin(struct request *req, struct db_conn *c, struct err *err)
{
	const char *now = api_test_clock ? request_header(req, API_TEST_NOW) : NULL;

	return !now || test_clock_set(c, now, err);
}

void
api_test_clock_end(struct request *req, struct db_conn *c)
{
	struct err err;

	/* a session still on the test instant would move the next request in time */
	if (api_test_clock && request_header(req, API_TEST_NOW) && !test_clock_set(c, NULL, &err))
		db_discard(c);
}

#define SINGLE_TRIES 3

/* api_run and api_run_single; single: fn issues one statement. */
static void
run(struct request *req, api_fn fn, void *cls, bool single)
{
	struct tx_ctx t = { .req = req, .fn = fn, .cls = cls };
	struct db_conn *c;
	struct err err;
	enum db_qs qs = DB_SOFT_ERROR;

	err_clear(&err);
	c = db_thread_conn(&err);
	if (!c) {
		reply_problem(req, &err);
		return;
	}
	db_mark_busy(true);
	if (!api_test_clock_begin(req, c, &err)) {
		reply_problem(req, &err);
		goto out;
	}
	if (strcmp(req->method, "GET") == 0 || (single && !req->idem_key)) {
		/*
		 * A single statement is its own transaction: skip the BEGIN and
		 * COMMIT trips.  (An Idempotency-Key needs its claim and record
		 * in the same transaction as the write.)  A deadlock or
		 * serialization failure is retried, as db_run_tx does.
		 */
		for (int i = 0; i < SINGLE_TRIES && qs == DB_SOFT_ERROR; i++) {
			result_reset(&t.res);
			err_clear(&err);
			qs = fn(c, cls, &t.res, &err);
		}
		if (qs < 0) {
			db_fail(c, qs, &err);
			reply_problem(req, &err);
		} else {
			reply_result(req, &t.res);
		}
		goto out;
	}
	if (req->idem_key)
		fingerprint(req, t.fingerprint);
	if (!db_run_tx(c, req->route->pattern, tx_body, &t, &err)) {
		reply_problem(req, &err);
		goto out;
	}
	if (t.replayed) {
		const char *body = t.stored.body;

		if (body)
			reply_json_text(req, t.stored.status, body, strlen(body));
		else
			reply_empty(req, t.stored.status);
		if (t.stored.location)
			reply_header(req, MHD_HTTP_HEADER_LOCATION, t.stored.location);
		reply_header(req, "Idempotent-Replayed", "true");
	} else {
		reply_result(req, &t.res);
	}
out:
	api_test_clock_end(req, c);
	db_release(c);
	db_mark_busy(false);
	result_reset(&t.res);
	idem_stored_free(&t.stored);
}

void
api_run(struct request *req, api_fn fn, void *cls)
{
	run(req, fn, cls, false);
}

void
api_run_single(struct request *req, api_fn fn, void *cls)
{
	run(req, fn, cls, true);
}

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

/* Cursors are opaque to clients: "c" + hex position. */
static bool
parse_cursor(const char *s, long long *out)
{
	char *end;
	unsigned long long v;

	if (s[0] != 'c' || !s[1] || strlen(s) > 17 ||
	    strspn(s + 1, "0123456789abcdef") != strlen(s + 1))
		return false;
	errno = 0;
	v = strtoull(s + 1, &end, 16);
	if (errno || *end || v == 0 || v > (unsigned long long)INT64_MAX)
		return false;
	*out = (long long)v;
	return true;
}

/*
 * How well the media range r (length n) matches offer: 3 the same type and
 * subtype, 2 the type with a wildcard subtype, 1 the full wildcard, 0 not.
 */
static int
range_match(const char *r, size_t n, const char *offer)
{
	const char *slash = strchr(offer, '/');

	if (n == strlen(offer) && strncasecmp(r, offer, n) == 0)
		return 3;
	if (n == 3 && strncmp(r, "*/*", 3) == 0)
		return 1;
	if (slash && n == (size_t)(slash - offer) + 2 && strncasecmp(r, offer, n - 1) == 0 &&
	    r[n - 1] == '*')
		return 2;
	return 0;
}

/* q of one media range's parameters ("; q=0.5"), in thousandths; 1000 if absent. */
static int
range_q(const char *p, const char *end)
{
	while (p < end) {
		p += strspn(p, " \t;");
		if (end - p > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			int q = p[2] == '1' ? 1000 : 0, scale = 100;

			for (p += 3, p += *p == '.'; p < end && *p >= '0' && *p <= '9'; p++, scale /= 10)
				q += (*p - '0') * scale;
			return q > 1000 ? 1000 : q;
		}
		p += strcspn(p, ";");
	}
	return 1000;
}

int
api_accept(struct request *req, const char *const *offers)
{
	const char *accept = request_header(req, MHD_HTTP_HEADER_ACCEPT);
	int best = -1, best_q = 0;

	if (!accept || !*accept)
		return 0;
	for (int i = 0; offers[i]; i++) {
		int q = 0, spec = 0;

		/* the most specific range that matches gives the offer its q (RFC 9110 12.5.1) */
		for (const char *p = accept; *p;) {
			const char *end = p + strcspn(p, ","), *semi;
			size_t n;
			int m;

			p += strspn(p, " \t");
			semi = p + strcspn(p, ";,");
			n = (size_t)(semi - p);
			while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			m = range_match(p, n, offers[i]);
			if (m > spec) {
				spec = m;
				q = range_q(semi, end);
			}
			p = *end ? end + 1 : end;
		}
		if (q > best_q) {
			best = i;
			best_q = q;
		}
	}
	if (best < 0) {
		char list[200] = "";

		for (int i = 0; offers[i]; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
				 offers[i]);
		reply_error(req, ERR_NOT_ACCEPTABLE, "/header/Accept", "this resource is available as %s",
			    list);
	}
	return best;
}

bool
api_query_param(struct request *req, const char *name, const char *(*check)(const char *),
		size_t max, const char **out)
{
	char ptr[48];

	*out = request_query(req, name);
	if (!*out || (strlen(*out) <= max && !check(*out)))
		return true;
	snprintf(ptr, sizeof ptr, "/query/%s", name);
	reply_error(req, ERR_INVALID_PARAMETER, ptr, "%s: %s", name,
		    strlen(*out) > max ? "too long" : check(*out));
	return false;
}

bool
api_page_params(struct request *req, int *limit, long long *after)
{
	const char *l = request_query(req, "limit"), *c = request_query(req, "cursor");
	char *end;
	long v;

	*limit = PAGE_DEFAULT;
	*after = 0;
	if (l) {
		errno = 0;
		v = strtol(l, &end, 10);
		if (errno || !*l || *end || v < 1 || v > PAGE_MAX) {
			reply_error(req, ERR_INVALID_PARAMETER, "/query/limit",
				    "limit must be an integer from 1 to %d", PAGE_MAX);
			return false;
		}
		*limit = (int)v;
	}
	if (c && !parse_cursor(c, after)) {
		reply_error(req, ERR_INVALID_PARAMETER, "/query/cursor",
			    "cursor is not one this service returned");
		return false;
	}
	return true;
}

enum db_qs
api_page_reply(struct api_result *out, char *items, long long next, enum db_qs qs)
{
	char cursor[40];
	int n;

	if (next)
		snprintf(cursor, sizeof cursor, "\"c%llx\"", next);
	else
		snprintf(cursor, sizeof cursor, "null");
	out->status = 200;
	n = asprintf(&out->raw, "{\"items\":%s,\"next_cursor\":%s}", items, cursor);
	free(items);
	if (n < 0) {
		out->raw = NULL;
		return DB_HARD_ERROR;
	}
	return qs;
}

bool
api_uuid_valid(const char *s)
{
	static const int dash[] = { 8, 13, 18, 23 };

	if (strlen(s) != 36)
		return false;
	for (int i = 0, d = 0; i < 36; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			/* lowercase only: ids are compared as text */
			return false;
		}
	}
	return true;
}

const char *
api_check_id(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return "must be printable ASCII without spaces";
	return NULL;
}

const char *
api_check_version(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 6 && strspn(s, "0123456789") == n && s[0] != '0'
		? NULL : "must be a version number from 1";
}

enum db_qs
api_no_customer(enum db_qs qs, struct err *err, const char *customer_id)
{
	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no customer %s", customer_id);
		return DB_ABORT;
	}
	return qs;
}

/* ---- versioned catalogues ---------------------------------------------------- */

struct catalogue_call {
	const struct api_catalogue *cat;
	const char *shop_id, *code, *version;
	const json_t *body;
};

/* {code}: a PUT of a bad code is a 400, a GET of one names nothing. */
static bool
catalogue_code(struct request *req, const struct api_catalogue *cat, bool put)
{
	const char *code = req->params[0];

	if (jv_is_code(code))
		return true;
	if (put)
		reply_error(req, ERR_INVALID_PARAMETER, "/path/code",
			    "%s code must be 1-64 of a-z, 0-9 and -", cat->what);
	else
		reply_error(req, ERR_NOT_FOUND, NULL, "no %s %.64s", cat->what, code);
	return false;
}

static enum db_qs
catalogue_put(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct catalogue_call *call = cls;
	bool created = false;
	enum db_qs qs = call->cat->put(c, call->shop_id, call->code, call->body, &created,
				       &out->raw, err);

	if (qs >= 0) {
		out->status = created ? 201 : 200;
		if (created)
			snprintf(out->location, sizeof out->location, "%s/%s", call->cat->path,
				 call->code);
	}
	return qs;
}

void
api_catalogue_put(struct request *req, const struct api_catalogue *cat)
{
	struct catalogue_call call = { .cat = cat, .shop_id = req->shop_id,
				       .code = req->params[0] };
	json_t *body;

	if (!catalogue_code(req, cat, true) || !(body = api_body(req, cat->spec)))
		return;
	call.body = body;
	if (!cat->consistent || cat->consistent(req, body))
		api_run(req, catalogue_put, &call);
	json_decref(body);
}

static enum db_qs
catalogue_get(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct catalogue_call *call = cls;
	enum db_qs qs = call->cat->get(c, call->shop_id, call->code, call->version, &out->raw);

	if (qs == DB_NO_RESULTS) {
		err_set(err, ERR_NOT_FOUND, NULL, "no %s %s%s%s", call->cat->what, call->code,
			call->version ? " version " : "", call->version ? call->version : "");
		return DB_ABORT;
	}
	if (qs >= 0)
		out->status = 200;
	return qs;
}

void
api_catalogue_get(struct request *req, const struct api_catalogue *cat)
{
	struct catalogue_call call = { .cat = cat, .shop_id = req->shop_id,
				       .code = req->params[0] };

	if (!catalogue_code(req, cat, false) ||
	    !api_query_param(req, "version", api_check_version, 16, &call.version))
		return;
	api_run(req, catalogue_get, &call);
}

void
api_catalogue_list(struct request *req, const struct api_catalogue *cat)
{
	struct catalogue_call call = { .cat = cat, .shop_id = req->shop_id };

	api_run(req, catalogue_get, &call);
}
