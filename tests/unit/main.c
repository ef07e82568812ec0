/*
 * Unit tests without a database: router matching, body validation, key
 * material.  Prints one line per failed check and ends with the
 * "N passed, N failed" summary the test runner adds up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/benefits.h"
#include "rebuy/csv.h"
#include "rebuy/jv.h"
#include "rebuy/keys.h"
#include "rebuy/orders.h"
#include "rebuy/router.h"

static int passed, failed;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (cond) {                                                  \
			passed++;                                            \
		} else {                                                     \
			failed++;                                            \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                            \
	} while (0)

static int
route_of(const char *method, const char *path, const char **p0, char *allow)
{
	const char *params[ROUTE_MAX_PARAMS] = { 0 };
	char buf[256], allowbuf[64];
	int index = -1;
	enum router_result r = router_match(method, path, &index, params, buf, sizeof buf,
					    allowbuf, sizeof allowbuf);
	static char p0copy[256];

	if (allow)
		strcpy(allow, allowbuf);
	if (p0) {
		snprintf(p0copy, sizeof p0copy, "%s", params[0] ? params[0] : "");
		*p0 = p0copy;
	}
	if (r == ROUTER_NOT_FOUND)
		return -404;
	if (r == ROUTER_METHOD_NOT_ALLOWED)
		return -405;
	return index;
}

static void
test_router(void)
{
	const char *p0;
	char allow[64];
	int i;

	i = route_of("GET", "/v1/customers/cust-1001", &p0, NULL);
	CHECK(i >= 0 && strcmp(router_routes[i].pattern, "/v1/customers/{id}") == 0);
	CHECK(strcmp(p0, "cust-1001") == 0);
	i = route_of("GET", "/v1/customers", NULL, NULL);
	CHECK(i >= 0 && strcmp(router_routes[i].pattern, "/v1/customers") == 0);
	CHECK(route_of("GET", "/v1/customers/", NULL, NULL) == -404);  /* empty segment */
	CHECK(route_of("GET", "/v1/customers/a/b", NULL, NULL) == -404);
	CHECK(route_of("GET", "/v1/customer", NULL, NULL) == -404);
	CHECK(route_of("GET", "/", NULL, NULL) == -404);
	CHECK(route_of("GET", "", NULL, NULL) == -404);
	CHECK(route_of("POST", "/v1/customers/x", NULL, allow) == -405);
	CHECK(strcmp(allow, "PUT, GET, DELETE") == 0);
	CHECK(route_of("DELETE", "/v1/shops", NULL, allow) == -405);
	CHECK(strcmp(allow, "POST") == 0);
	i = route_of("PATCH", "/v1/shops/7d1e9d5a-0000-4000-8000-000000000001", &p0, NULL);
	CHECK(i >= 0 && strcmp(router_routes[i].method, "PATCH") == 0);
	CHECK(strcmp(p0, "7d1e9d5a-0000-4000-8000-000000000001") == 0);
	CHECK(route_of("GET", "/healthz", NULL, NULL) >= 0);
	/* a literal path wins over a template: bulk is not an order id */
	CHECK(route_of("GET", "/v1/orders/bulk", NULL, allow) == -405);
	CHECK(strcmp(allow, "POST") == 0);
	i = route_of("GET", "/v1/orders/bulkx", &p0, NULL);
	CHECK(i >= 0 && strcmp(p0, "bulkx") == 0);
	CHECK(route_of("GET", "/healthz/", NULL, NULL) == -404);
	/* every route is reachable by its own pattern-shaped path */
	for (size_t k = 0; k < router_route_count; k++) {
		char path[128];
		const char *pat = router_routes[k].pattern;
		size_t n = 0;

		for (; *pat && n + 2 < sizeof path; pat++) {
			if (*pat == '{') {
				path[n++] = 'x';
				pat = strchr(pat, '}');
			} else {
				path[n++] = *pat;
			}
		}
		path[n] = '\0';
		i = route_of(router_routes[k].method, path, NULL, NULL);
		CHECK(i == (int)k);
	}
	/* an over-long segment is refused, not truncated */
	{
		char path[1200] = "/v1/customers/";

		memset(path + strlen(path), 'a', 1000);
		path[1014] = '\0';
		CHECK(route_of("GET", path, NULL, NULL) == -404);
	}
}

static const char *
no_x(const char *s)
{
	return strchr(s, 'x') ? "must not contain x" : NULL;
}

static const struct jv_field inner_spec[] = {
	{ .name = "granted", .kind = JV_BOOLEAN, .flags = JV_REQUIRED },
	{ .name = "at", .kind = JV_TIMESTAMP },
	{ .name = NULL },
};
static const struct jv_field item_spec = { .kind = JV_STRING, .min = 1, .max = 3 };
static const struct jv_field spec[] = {
	{ .name = "name", .kind = JV_STRING, .flags = JV_REQUIRED, .min = 1, .max = 5,
	  .check = no_x },
	{ .name = "count", .kind = JV_INTEGER, .min = 0, .max = 10 },
	{ .name = "note", .kind = JV_STRING, .flags = JV_NULLABLE },
	{ .name = "tags", .kind = JV_ARRAY, .flags = JV_UNIQUE, .max = 2, .items = &item_spec },
	{ .name = "inner", .kind = JV_OBJECT, .fields = inner_spec },
	{ .name = "free", .kind = JV_ANY_OBJECT },
	{ .name = NULL },
};

/* Validate text; return the pointer of the failure or "OK". */
static const char *
validate(const char *text)
{
	static struct err err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	bool ok;

	if (!j)
		return "PARSE";
	err_clear(&err);
	ok = jv_validate(j, spec, "", &err);
	json_decref(j);
	if (ok)
		return "OK";
	return err.code == ERR_VALIDATION ? err.pointer : "WRONGCODE";
}

static void
test_body_validation(void)
{
	CHECK(strcmp(validate("{\"name\":\"ab\"}"), "OK") == 0);
	CHECK(strcmp(validate("{}"), "/name") == 0);                       /* required */
	CHECK(strcmp(validate("{\"name\":\"ab\",\"nmae\":1}"), "/nmae") == 0); /* unknown */
	CHECK(strcmp(validate("{\"name\":\"ab\",\"a/b~\":1}"), "/a~1b~0") == 0); /* escaped */
	CHECK(strcmp(validate("{\"name\":5}"), "/name") == 0);             /* type */
	CHECK(strcmp(validate("{\"name\":\"\"}"), "/name") == 0);          /* too short */
	CHECK(strcmp(validate("{\"name\":\"abcdef\"}"), "/name") == 0);    /* too long */
	CHECK(strcmp(validate("{\"name\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"}"), "OK") == 0); /* 2 chars */
	CHECK(strcmp(validate("{\"name\":\"axb\"}"), "/name") == 0);       /* check fn */
	CHECK(strcmp(validate("{\"name\":null}"), "/name") == 0);          /* not nullable */
	CHECK(strcmp(validate("{\"name\":\"a\",\"note\":null}"), "OK") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"count\":10}"), "OK") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"count\":11}"), "/count") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"count\":-1}"), "/count") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"count\":1.0}"), "/count") == 0); /* real */
	CHECK(strcmp(validate("{\"name\":\"a\",\"count\":\"1\"}"), "/count") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"tags\":[\"a\",\"b\"]}"), "OK") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"tags\":[\"a\",\"a\"]}"), "/tags/1") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"tags\":[\"a\",\"b\",\"c\"]}"), "/tags") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"tags\":[\"abcd\"]}"), "/tags/0") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"tags\":[1]}"), "/tags/0") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"inner\":{\"granted\":true}}"), "OK") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"inner\":{}}"), "/inner/granted") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"inner\":{\"granted\":true,\"x\":1}}"),
		     "/inner/x") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"inner\":{\"granted\":1}}"), "/inner/granted") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"inner\":{\"granted\":true,"
			      "\"at\":\"2026-02-30T00:00:00Z\"}}"), "/inner/at") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"free\":{\"anything\":[1,{\"b\":2}]}}"), "OK") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"free\":[]}"), "/free") == 0);
	CHECK(strcmp(validate("{\"name\":\"a\",\"name\":\"b\"}"), "PARSE") == 0); /* duplicates */

	CHECK(jv_is_timestamp("2026-11-22T10:37:50Z"));
	CHECK(jv_is_timestamp("2026-11-22T10:37:50.123456+08:00"));
	CHECK(!jv_is_timestamp("2026-11-22T10:37:50.1234567Z")); /* beyond microseconds */
	{
		char a[28], b[28];

		CHECK(jv_timestamp_utc("2026-11-01T10:00:00+08:00", a));
		CHECK(strcmp(a, "2026-11-01T02:00:00.000000Z") == 0);
		CHECK(jv_timestamp_utc("2026-11-01T02:00:00.000000Z", b) && strcmp(a, b) == 0);
		CHECK(jv_timestamp_utc("2026-03-01T00:30:00.5+01:00", a));
		CHECK(strcmp(a, "2026-02-28T23:30:00.500000Z") == 0);
		CHECK(jv_timestamp_utc("2024-12-31T23:00:00-05:30", a));
		CHECK(strcmp(a, "2025-01-01T04:30:00.000000Z") == 0);
	}
	CHECK(jv_is_timestamp("2024-02-29T00:00:00-05:30"));
	CHECK(!jv_is_timestamp("2023-02-29T00:00:00Z"));
	CHECK(!jv_is_timestamp("2026-11-22 10:37:50Z"));
	CHECK(!jv_is_timestamp("2026-11-22T10:37:50"));
	CHECK(!jv_is_timestamp("2026-11-22T24:00:00Z"));
	CHECK(!jv_is_timestamp("2026-11-22T10:37:50.Z"));
	CHECK(!jv_is_timestamp("2026-11-22T10:37:50+0800"));
	CHECK(!jv_is_timestamp("2026-11-22T10:37:50Zjunk"));

	CHECK(!jv_is_timestamp("2026-11-22T10:37:50+15:00")); /* PostgreSQL refuses > 15 h */
	CHECK(jv_is_timestamp("2026-11-22T10:37:50+14:00"));
	CHECK(!jv_is_timestamp("1969-12-31T23:59:59Z"));
	CHECK(!jv_is_timestamp("9999-12-31T23:30:00-01:00")); /* would be year 10000 in UTC */

	{
		char s1[] = "ok \xc3\xa9 fine";       /* valid é stays */
		char s2[] = "cut \xc3";                 /* truncated sequence */
		char s3[] = "\xff\xfe x";              /* invalid bytes */
		char s4[] = "\xc0\xaf";                /* overlong '/' */

		err_utf8_clean(s1);
		err_utf8_clean(s2);
		err_utf8_clean(s3);
		err_utf8_clean(s4);
		CHECK(strcmp(s1, "ok \xc3\xa9 fine") == 0);
		CHECK(strcmp(s2, "cut ?") == 0);
		CHECK(strcmp(s3, "?? x") == 0);
		CHECK(strcmp(s4, "??") == 0);
	}

	CHECK(jv_depth("{}", 2) == 1);
	CHECK(jv_depth("[[[]]]", 6) == 3);
	CHECK(jv_depth("{\"a\":\"[[[[\"}", 11) == 1);     /* brackets in strings */
	CHECK(jv_depth("{\"a\":\"\\\"[[\"}", 12) == 1);   /* escaped quote */
	CHECK(jv_utf8_len("\xe4\xbd\xa0\xe5\xa5\xbd") == 2);
}

static void
test_keys(void)
{
	char a[KEYS_LEN + 1], b[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	char h1[KEYS_HASH_HEX + 1], h2[KEYS_HASH_HEX + 1];

	CHECK(keys_generate(a));
	CHECK(keys_generate(b));
	CHECK(strlen(a) == KEYS_LEN && strncmp(a, "rb_", 3) == 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(keys_parse(a, prefix));
	CHECK(strncmp(prefix, a + 3, KEYS_PREFIX_LEN) == 0);
	keys_hash_hex(a, h1);
	keys_hash_hex(a, h2);
	CHECK(strlen(h1) == 64 && keys_hash_equal(h1, h2));
	keys_hash_hex(b, h2);
	CHECK(!keys_hash_equal(h1, h2));
	/* known answer: SHA-256("abc") */
	keys_sha256_hex("abc", 3, h1);
	CHECK(strcmp(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
	CHECK(!keys_hash_equal(h1, "ba78"));
	/* malformed keys */
	CHECK(!keys_parse("", prefix));
	CHECK(!keys_parse("rb_", prefix));
	b[5] = '!';
	CHECK(!keys_parse(b, prefix));
	memcpy(b, a, sizeof b);
	b[0] = 'x';
	CHECK(!keys_parse(b, prefix));
	memcpy(b, a, sizeof b);
	b[3] = 'A'; /* prefix is lowercase base32 */
	CHECK(!keys_parse(b, prefix));
	memcpy(b, a, sizeof b);
	b[KEYS_LEN - 1] = '_';
	CHECK(!keys_parse(b, prefix));
	CHECK(!keys_parse("rb_abcdefgh_tooshort", prefix));
}

/* Parse text; describe each record as "line:f1|f2|..." or "line:ERR". */
static void
csv_describe(const char *text, char *out, size_t size)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	struct csv_reader *r = csv_new(f);
	struct csv_record rec;
	const char *why;
	int st;

	out[0] = '\0';
	while ((st = csv_next(r, &rec, &why)) != 0) {
		size_t n = strlen(out);

		if (st < 0) {
			snprintf(out + n, size - n, "%zu:ERR;", rec.line);
			continue;
		}
		n += (size_t)snprintf(out + n, size - n, "%zu:", rec.line);
		for (size_t i = 0; i < rec.nfields && n < size; i++)
			n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "|" : "", rec.fields[i]);
		if (n < size)
			snprintf(out + n, size - n, ";");
	}
	csv_free(r);
	fclose(f);
}

static void
test_csv(void)
{
	char out[512];

	csv_describe("a,b,c\n1,2,3\n", out, sizeof out);
	CHECK(strcmp(out, "1:a|b|c;2:1|2|3;") == 0);
	csv_describe("a,b\r\n1,2", out, sizeof out);              /* CRLF, no final newline */
	CHECK(strcmp(out, "1:a|b;2:1|2;") == 0);
	csv_describe("\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\nz,,\n", out, sizeof out);
	CHECK(strcmp(out, "1:x,y|say \"hi\"|two\nlines;3:z||;") == 0); /* quoted newline */
	csv_describe("a\"b,c\nok,1\n", out, sizeof out);           /* quote in unquoted field */
	CHECK(strcmp(out, "1:ERR;2:ok|1;") == 0);
	csv_describe("\"a\"b,c\nok,1\n", out, sizeof out);         /* text after closing quote */
	CHECK(strcmp(out, "1:ERR;2:ok|1;") == 0);
	csv_describe("ok\n\"never closed,1\n", out, sizeof out);  /* unterminated quote */
	CHECK(strcmp(out, "1:ok;2:ERR;") == 0);
	csv_describe("", out, sizeof out);
	CHECK(strcmp(out, "") == 0);
	csv_describe("\n\n", out, sizeof out);                     /* blank lines: one empty field */
	CHECK(strcmp(out, "1:;2:;") == 0);
}

/* Quota maps of tiers and plans: codes and quotas checked, compact sorted JSON out. */
static void
test_quota_maps(void)
{
	struct err err;
	json_t *m;
	char *out;

	err_clear(&err);
	out = benefits_quota_map(NULL, "/benefits", &err);
	CHECK(out && strcmp(out, "{}") == 0);
	free(out);
	m = json_loads("{\"wash\": 2, \"dry-cleaning\": 0}", 0, NULL);
	out = benefits_quota_map(m, "/benefits", &err);
	CHECK(out && strcmp(out, "{\"dry-cleaning\":0,\"wash\":2}") == 0);
	free(out);
	json_decref(m);
	m = json_loads("{\"Wash\": 1}", 0, NULL);
	CHECK(!benefits_quota_map(m, "/tiers/1/benefits", &err));
	CHECK(err.code == ERR_VALIDATION && strcmp(err.pointer, "/tiers/1/benefits/Wash") == 0);
	json_decref(m);
	m = json_loads("{\"a/b\": 1}", 0, NULL); /* the pointer escapes the key */
	CHECK(!benefits_quota_map(m, "/benefits", &err) && strcmp(err.pointer, "/benefits/a~1b") == 0);
	json_decref(m);
	for (const char *bad = "[-1, 10001, 1.5, \"1\", null]"; bad; bad = NULL) {
		json_t *vals = json_loads(bad, 0, NULL);
		size_t i;
		json_t *v;

		json_array_foreach(vals, i, v) {
			m = json_pack("{s:O}", "wash", v);
			CHECK(!benefits_quota_map(m, "/benefits", &err) &&
			      strcmp(err.pointer, "/benefits/wash") == 0);
			json_decref(m);
		}
		json_decref(vals);
	}
	m = json_loads("[1]", 0, NULL);
	CHECK(!benefits_quota_map(m, "/benefits", &err) && strcmp(err.pointer, "/benefits") == 0);
	json_decref(m);
	/* problem extension members: set after err_set, cleared by the next */
	err_set(&err, ERR_QUOTA_EXCEEDED, NULL, "x");
	err_ext(&err, "remaining", 0);
	err_ext(&err, "quota", 3);
	CHECK(err.n_ext == 2 && err.ext[1].value == 3);
	for (int i = 0; i < 10; i++)
		err_ext(&err, "more", i);
	CHECK(err.n_ext == ERR_EXT_MAX);
	err_set(&err, ERR_VALIDATION, NULL, "y");
	CHECK(err.n_ext == 0);
}

/*
 * The order's canonical form, as it was built before orders_parse wrote it
 * by hand: a jansson tree dumped compact with sorted keys.  Fingerprints
 * stored then must still match, so the two must agree byte for byte.
 */
static char *
canonical_by_jansson(const json_t *body, const char *placed_utc)
{
	json_t *lines = json_array(), *src = json_object_get(body, "lines"), *l, *canon;
	size_t i;
	char *text;

	json_array_foreach(src, i, l) {
		json_t *d = json_object_get(l, "discount"), *name = json_object_get(l, "name");

		json_array_append_new(lines, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:I}",
			"sku", json_object_get(l, "sku"), "name", name ? name : json_null(),
			"category", json_object_get(l, "category"), "role", json_object_get(l, "role"),
			"quantity", json_object_get(l, "quantity"),
			"unit_price", json_object_get(l, "unit_price"),
			"discount", d ? json_integer_value(d) : (json_int_t)0));
	}
	canon = json_pack("{s:O, s:s, s:O, s:O, s:o, s:I, s:I, s:O}",
			  "customer_id", json_object_get(body, "customer_id"), "placed_at", placed_utc,
			  "channel", json_object_get(body, "channel"),
			  "currency", json_object_get(body, "currency"), "lines", lines,
			  "shipping", json_object_get(body, "shipping")
				? json_integer_value(json_object_get(body, "shipping")) : (json_int_t)0,
			  "discount", json_object_get(body, "discount")
				? json_integer_value(json_object_get(body, "discount")) : (json_int_t)0,
			  "total", json_object_get(body, "total"));
	text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(canon);
	return text;
}

/* a string of n pieces: ASCII, escapes, controls, DEL, 2-, 3- and 4-byte UTF-8 */
static json_t *
awkward_string(unsigned *seed, int n)
{
	static const char *const pieces[] = { "a", "Z", "9", "-", " ", "\"", "\\", "/", "\b",
		"\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "é", "数", "😀", "\xe2\x80\xa8" };
	char buf[256] = "";

	for (int i = 0; i < n; i++) {
		*seed = *seed * 1103515245u + 12345u;
		strcat(buf, pieces[(*seed >> 16) % (sizeof pieces / sizeof pieces[0])]);
	}
	return json_string(buf);
}

static void
test_order_canonical(void)
{
	unsigned seed = 7;
	int same = 0, checked = 0;

	for (int k = 0; k < 500; k++) {
		json_t *body = json_object(), *lines = json_array();
		struct order_parsed p;
		struct err err;
		long long sum = 0;
		int nlines = 1 + k % 4;

		for (int i = 0; i < nlines; i++) {
			json_t *l = json_object();
			long long q = 1 + (k * 7 + i) % 1000000, price = (k % 3 == 0) ? 1000000000000LL
										  : (k * 131 + i) % 100000;

			seed = seed * 1103515245u + 12345u;
			json_object_set_new(l, "sku", awkward_string(&seed, 1 + k % 20));
			if (k % 3 == 1)
				json_object_set_new(l, "name", awkward_string(&seed, 1 + (k + i) % 30));
			else if (k % 3 == 2)
				json_object_set_new(l, "name", json_null());
			json_object_set_new(l, "category", json_string("cat-a"));
			json_object_set_new(l, "role", json_string(i % 2 ? "traffic" : "regular"));
			json_object_set_new(l, "quantity", json_integer(q));
			json_object_set_new(l, "unit_price", json_integer(price));
			if (k % 2)
				json_object_set_new(l, "discount", json_integer(price > 0 ? 1 : 0));
			sum += q * price - (k % 2 && price > 0 ? 1 : 0);
			json_array_append_new(lines, l);
		}
		json_object_set_new(body, "customer_id", json_string("c-1"));
		json_object_set_new(body, "placed_at", json_string("2025-03-01T10:00:00+08:00"));
		json_object_set_new(body, "channel", json_string("web"));
		json_object_set_new(body, "currency", awkward_string(&seed, 1));
		json_object_set_new(body, "lines", lines);
		if (k % 5) {
			json_object_set_new(body, "shipping", json_integer(k));
			sum += k;
		}
		if (k % 7 == 0 && sum > 0) {
			json_object_set_new(body, "discount", json_integer(1));
			sum -= 1;
		}
		json_object_set_new(body, "total", json_integer(sum));
		err_clear(&err);
		if (orders_parse(body, &p, &err)) {
			char *ref = canonical_by_jansson(body, p.placed), fp[65];
			json_t *stored = json_loads(p.in.lines_json, 0, NULL), *whole = json_loads(ref, 0, NULL);

			keys_sha256_hex(ref, strlen(ref), fp);
			same += strcmp(fp, p.fingerprint) == 0 &&
				json_equal(stored, json_object_get(whole, "lines"));
			json_decref(stored);
			json_decref(whole);
			free(ref);
			orders_parsed_free(&p);
		}
		checked++;
		json_decref(body);
	}
	CHECK(checked == 500 && same == 500);

	/* one case pinned as text, independent of jansson: escapes, DEL, '/', UTF-8 */
	{
		json_t *body = json_loads("{\"customer_id\": \"c-1\", \"total\": 310,"
			" \"placed_at\": \"2025-03-01T10:00:00+08:00\", \"channel\": \"web\","
			" \"currency\": \"CNY\", \"shipping\": 10, \"lines\": [{\"sku\":"
			" \"A\\\"\\\\/\\u0001\\u001f\\u007f\\t\\u6570\\ud83d\\ude00\","
			" \"category\": \"tea\", \"role\": \"regular\", \"quantity\": 2,"
			" \"unit_price\": 150}]}", 0, NULL);
		const char *text = "{\"channel\":\"web\",\"currency\":\"CNY\",\"customer_id\":\"c-1\","
			"\"discount\":0,\"lines\":[{\"category\":\"tea\",\"discount\":0,\"name\":null,"
			"\"quantity\":2,\"role\":\"regular\",\"sku\":\"A\\\"\\\\/\\u0001\\u001F\x7f\\t"
			"\xe6\x95\xb0\xf0\x9f\x98\x80\",\"unit_price\":150}],"
			"\"placed_at\":\"2025-03-01T02:00:00.000000Z\",\"shipping\":10,\"total\":310}";
		struct order_parsed p;
		struct err err;
		char fp[65];

		keys_sha256_hex(text, strlen(text), fp);
		CHECK(body && orders_parse(body, &p, &err));
		CHECK(body && strcmp(p.fingerprint, fp) == 0);
		/* the lines' JSON is the lines' span of the same text, cut there */
		CHECK(body && p.in.lines_json && strncmp(p.in.lines_json, strstr(text, "[{"),
				      strlen(p.in.lines_json)) == 0 &&
		      strlen(p.in.lines_json) == (size_t)(strstr(text, "}],") + 2 - strstr(text, "[{")));
		orders_parsed_free(&p);
		/* a body that skipped jv_validate (no sku): no fingerprint of "" for it */
		json_object_del(json_array_get(json_object_get(body, "lines"), 0), "sku");
		err_clear(&err);
		CHECK(body && !orders_parse(body, &p, &err) && err.code == ERR_INTERNAL);
		orders_parsed_free(&p);
		json_decref(body);
	}
}

int
main(void)
{
	test_router();
	test_body_validation();
	test_keys();
	test_csv();
	test_quota_maps();
	test_order_canonical();
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
