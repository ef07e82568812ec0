/*
 * jv.h — declarative validation of decoded JSON request bodies.
 *
 * jansson reports syntax errors but knows nothing of our fields; jv walks
 * an object against a table of field specs and names the offending field
 * as a JSON pointer: unknown fields, missing required ones, wrong types,
 * integers out of range, strings of the wrong length or shape.
 */
#ifndef REBUY_JV_H
#define REBUY_JV_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "rebuy/err.h"

enum jv_kind {
	JV_STRING,
	JV_INTEGER,
	JV_BOOLEAN,
	JV_OBJECT,     /* nested object validated against .fields */
	JV_ANY_OBJECT, /* any JSON object (free-form attributes) */
	JV_ARRAY,      /* items validated against *.items */
	JV_TIMESTAMP,  /* RFC 3339 date-time string */
};

enum jv_flags {
	JV_REQUIRED = 1 << 0,
	JV_NULLABLE = 1 << 1,
	JV_UNIQUE = 1 << 2, /* arrays of strings: no duplicates */
};

struct jv_field {
	const char *name;
	enum jv_kind kind;
	unsigned flags;
	/* integers: value range; strings: length in characters; arrays: items */
	long long min, max;
	/* strings: extra shape check; returns NULL or what is wrong */
	const char *(*check)(const char *s);
	const struct jv_field *fields; /* JV_OBJECT, terminated by .name NULL */
	const struct jv_field *items;  /* JV_ARRAY: one spec for every item */
};

/* Validate obj (must be an object) against spec.  prefix is "" at the root. */
bool jv_validate(const json_t *obj, const struct jv_field *spec,
		 const char *prefix, struct err *err)
	__attribute__((warn_unused_result));

/* A code (plans, packs, offers, benefits, segments): 1-64 of a-z, 0-9 and -. */
bool jv_is_code(const char *s);

/* jv check: letters, digits and . _ : - (tags, categories, channels). */
const char *jv_check_token(const char *s);

/* Maximum nesting of arrays/objects in a raw JSON text. */
size_t jv_depth(const char *text, size_t len);

/*
 * RFC 3339 "YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)": at most microseconds,
 * years 1970-9998, offsets up to ±14:59.
 */
bool jv_is_timestamp(const char *s);

/*
 * The same instant as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 chars + NUL), the
 * form the API writes: two spellings of one instant compare equal.
 */
bool jv_timestamp_utc(const char *s, char out[28]);

/*
 * Integer member name of obj as decimal text in buf, or def (may be NULL)
 * when it is absent or null: a statement parameter.
 */
const char *jv_int_text(const json_t *obj, const char *name, const char *def, char buf[24]);

/* Number of UTF-8 code points in s (s is valid UTF-8: jansson checked). */
size_t jv_utf8_len(const char *s);

#endif
