/* jv.c — see include/rebuy/jv.h */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rebuy/jv.h"

size_t
jv_utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80) /* not a continuation byte */
			n++;
	return n;
}

const char *
jv_check_token(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:-", *s)))
			return "may contain only letters, digits and . _ : -";
	return NULL;
}

size_t
jv_depth(const char *text, size_t len)
{
	size_t depth = 0, max = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (in_string) {
			if (ch == '\\')
				i++; /* skip the escaped character */
			else if (ch == '"')
				in_string = false;
			continue;
		}
		if (ch == '"') {
			in_string = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				max = depth;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return max;
}

static bool
digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static int
num(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

bool
jv_is_timestamp(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d;

	/* YYYY-MM-DDTHH:MM:SS */
	if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) ||
	    s[7] != '-' || !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') ||
	    !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
	    s[16] != ':' || !digits(s + 17, 2))
		return false;
	y = num(s, 4);
	mo = num(s + 5, 2);
	d = num(s + 8, 2);
	/* PostgreSQL's range is wider, but no purchase predates 1970, and the
	 * margin keeps any offset from crossing into year 10000 */
	if (y < 1970 || y > 9998 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
		return false;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	s += 19;
	if (*s == '.') {
		int n = 0;

		for (s++; isdigit((unsigned char)*s); s++)
			n++;
		if (n == 0 || n > 6) /* microseconds: what PostgreSQL stores */
			return false;
	}
	if (*s == 'Z' || *s == 'z')
		return s[1] == '\0';
	if ((*s == '+' || *s == '-') && digits(s + 1, 2) && s[3] == ':' &&
	    digits(s + 4, 2) && s[6] == '\0')
		return num(s + 1, 2) <= 14 && num(s + 4, 2) <= 59; /* real zones: ±14 h */
	return false;
}

bool
jv_timestamp_utc(const char *s, char out[28])
{
	struct tm tm = { 0 };
	char frac[7] = "000000";
	const char *p = s + 19;
	time_t t;
	int off = 0;

	if (!jv_is_timestamp(s))
		return false;
	tm.tm_year = num(s, 4) - 1900;
	tm.tm_mon = num(s + 5, 2) - 1;
	tm.tm_mday = num(s + 8, 2);
	tm.tm_hour = num(s + 11, 2);
	tm.tm_min = num(s + 14, 2);
	tm.tm_sec = num(s + 17, 2);
	if (*p == '.') {
		for (int i = 0; isdigit((unsigned char)*++p); i++)
			frac[i] = *p;
	}
	if (*p == '+' || *p == '-')
		off = (num(p + 1, 2) * 60 + num(p + 4, 2)) * 60 * (*p == '-' ? -1 : 1);
	t = timegm(&tm) - off; /* timegm normalises :60 like PostgreSQL does */
	if (!gmtime_r(&t, &tm))
		return false;
	if (tm.tm_year + 1900 > 9999)
		return false;
	/* gmtime_r bounds every field; the wide buffer only calms the compiler */
	char wide[96];
	int n = snprintf(wide, sizeof wide, "%04d-%02d-%02dT%02d:%02d:%02d.%sZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, frac);

	if (n != 27)
		return false;
	memcpy(out, wide, 28);
	return true;
}

static const char *
kind_name(enum jv_kind k)
{
	switch (k) {
	case JV_STRING: return "a string";
	case JV_INTEGER: return "an integer";
	case JV_BOOLEAN: return "a boolean";
	case JV_OBJECT:
	case JV_ANY_OBJECT: return "an object";
	case JV_ARRAY: return "an array";
	case JV_TIMESTAMP: return "an RFC 3339 date-time string";
	}
	return "a value";
}

static bool check_value(const json_t *v, const struct jv_field *f,
			char *ptr, size_t ptrsize, struct err *err);

static bool
fail(struct err *err, const char *ptr, const char *fmt, const char *a,
     long long b)
{
	char msg[200];

	snprintf(msg, sizeof msg, fmt, a, b);
	err_set(err, ERR_VALIDATION, ptr, "%s: %s", ptr[0] ? ptr : "body", msg);
	return false;
}

static bool
check_string(const char *s, const struct jv_field *f, const char *ptr,
	     struct err *err)
{
	size_t len = jv_utf8_len(s);
	const char *why;

	if ((long long)len < f->min)
		return f->min == 1 ? fail(err, ptr, "must not be empty%s", "", 0)
				   : fail(err, ptr, "must be at least %s%lld characters", "", f->min);
	if (f->max > 0 && (long long)len > f->max)
		return fail(err, ptr, "must be at most %s%lld characters", "", f->max);
	if (f->check && (why = f->check(s)) != NULL)
		return fail(err, ptr, "%s", why, 0);
	return true;
}

static bool
check_array(const json_t *v, const struct jv_field *f, char *ptr,
	    size_t ptrsize, struct err *err)
{
	size_t n = json_array_size(v), base = strlen(ptr);
	char idx[24];

	if (f->max > 0 && (long long)n > f->max)
		return fail(err, ptr, "must have at most %s%lld items", "", f->max);
	if ((long long)n < f->min)
		return fail(err, ptr, "must have at least %s%lld items", "", f->min);
	for (size_t i = 0; i < n; i++) {
		snprintf(idx, sizeof idx, "%zu", i);
		err_pointer_append(ptr, ptrsize, idx);
		if (!check_value(json_array_get(v, i), f->items, ptr, ptrsize, err))
			return false;
		if ((f->flags & JV_UNIQUE) && json_is_string(json_array_get(v, i)))
			for (size_t j = 0; j < i; j++)
				if (json_equal(json_array_get(v, i), json_array_get(v, j)))
					return fail(err, ptr, "duplicates an earlier item%s", "", 0);
		ptr[base] = '\0';
	}
	return true;
}

static bool
check_value(const json_t *v, const struct jv_field *f, char *ptr,
	    size_t ptrsize, struct err *err)
{
	if (json_is_null(v)) {
		if (f->flags & JV_NULLABLE)
			return true;
		return fail(err, ptr, "must be %s, not null", kind_name(f->kind), 0);
	}
	switch (f->kind) {
	case JV_STRING:
		if (!json_is_string(v))
			break;
		return check_string(json_string_value(v), f, ptr, err);
	case JV_TIMESTAMP:
		if (!json_is_string(v) || !jv_is_timestamp(json_string_value(v)))
			break;
		return true;
	case JV_INTEGER:
		/* json_is_integer is false for 1.0: reals are never integers */
		if (!json_is_integer(v))
			break;
		if (json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
			char msg[100];

			snprintf(msg, sizeof msg, "must be between %lld and %lld",
				 f->min, f->max);
			return fail(err, ptr, "%s", msg, 0);
		}
		return true;
	case JV_BOOLEAN:
		if (!json_is_boolean(v))
			break;
		return true;
	case JV_ANY_OBJECT:
		if (!json_is_object(v))
			break;
		return true;
	case JV_OBJECT: {
		size_t base = strlen(ptr);
		bool ok;

		if (!json_is_object(v))
			break;
		ok = jv_validate(v, f->fields, ptr, err);
		ptr[base] = '\0';
		return ok;
	}
	case JV_ARRAY:
		if (!json_is_array(v))
			break;
		return check_array(v, f, ptr, ptrsize, err);
	}
	return fail(err, ptr, "must be %s", kind_name(f->kind), 0);
}

bool
jv_validate(const json_t *obj, const struct jv_field *spec, const char *prefix,
	    struct err *err)
{
	char ptr[160];
	size_t base;
	const char *key;
	json_t *value;

	snprintf(ptr, sizeof ptr, "%s", prefix);
	base = strlen(ptr);
	if (!json_is_object(obj))
		return fail(err, ptr, "must be %s", "an object", 0);
	/* unknown members first: a typo should be named as such */
	json_object_foreach((json_t *)obj, key, value) {
		const struct jv_field *f = spec;

		while (f->name && strcmp(f->name, key) != 0)
			f++;
		if (!f->name) {
			err_pointer_append(ptr, sizeof ptr, key);
			return fail(err, ptr, "unknown field%s", "", 0);
		}
	}
	for (const struct jv_field *f = spec; f->name; f++) {
		value = json_object_get(obj, f->name);
		ptr[base] = '\0';
		err_pointer_append(ptr, sizeof ptr, f->name);
		if (!value) {
			if (f->flags & JV_REQUIRED)
				return fail(err, ptr, "is required%s", "", 0);
			continue;
		}
		if (!check_value(value, f, ptr, sizeof ptr, err))
			return false;
	}
	return true;
}

const char *
jv_int_text(const json_t *obj, const char *name, const char *def, char buf[24])
{
	const json_t *v = json_object_get(obj, name);

	if (!v || json_is_null(v))
		return def;
	snprintf(buf, 24, "%lld", (long long)json_integer_value(v));
	return buf;
}

bool
jv_is_code(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}
