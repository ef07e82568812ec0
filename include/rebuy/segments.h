/*
 * segments.h — built-in lifecycle segments of a shop's customers
 * (second-purchase-window, due-for-repurchase, lapsing, lapsed, vip):
 * who is in them as of the request, their sizes and their member lists.
 *
 * Membership is computed from the customer facts at request time, in the
 * shop's time zone, with the parameters in the shop's settings.segments:
 * there is no stale precomputed table.
 */
#ifndef REBUY_SEGMENTS_H
#define REBUY_SEGMENTS_H

#include <jansson.h>
#include "rebuy/db.h"

/*
 * Rebuild vip's kept spends (vip_spend, migration 0018) of every shop whose
 * day or zone has moved on since, or that has none yet, one shop per
 * transaction, skipping a shop whose lock is busy (rebuyd's janitor; until
 * then vip pages compute live).  Returns the number of shops rebuilt, -1
 * on a database error.
 */
int segments_refresh_vip(struct db_conn *c);

extern const struct db_stmt segments_stmts[];

/* Fields of a list item that `fields=` may pick (id is always there). */
enum segment_field {
	SEG_NAME = 1 << 0, SEG_EMAIL = 1 << 1, SEG_PHONE = 1 << 2, SEG_TAGS = 1 << 3,
	SEG_CONSENT = 1 << 4, SEG_FACTS = 1 << 5, SEG_REASON = 1 << 6,
	SEG_ALL = (1 << 7) - 1,
};

/* Parse "name,email,…" into a mask; false for an unknown or repeated name. */
bool segments_parse_fields(const char *s, unsigned *mask);

/* True if code names a built-in segment. */
bool segments_known(const char *code);

/* A custom segment as PUT: the filter is checked by segments_put. */
struct segment_input {
	const char *name, *description; /* description may be NULL */
	const json_t *filter;
};

/*
 * Create or replace the custom segment code.  ERR_CONFLICT for a built-in
 * code, ERR_VALIDATION (pointer under /filter) for a bad filter.  *out:
 * the Segment with its size.
 */
enum db_qs segments_put(struct db_conn *c, const char *shop_id, const char *code,
			const struct segment_input *in, bool *created, json_t **out,
			struct err *err);

/* Delete a custom segment: rows deleted (0 = none); ERR_CONFLICT for a built-in. */
enum db_qs segments_delete(struct db_conn *c, const char *shop_id, const char *code,
			   struct err *err);

/* All built-in segments with their sizes: {"items": [...]} */
enum db_qs segments_all(struct db_conn *c, const char *shop_id, json_t **out);

/* One segment (built-in or custom) with its size; DB_NO_RESULTS for an unknown code. */
enum db_qs segments_get(struct db_conn *c, const char *shop_id, const char *code, json_t **out);

struct segment_page {
	long long after;     /* cursor: members after this customer seq */
	int limit;
	const char *consent; /* "email", "sms", "wechat" or NULL */
	unsigned fields;     /* enum segment_field mask */
};

/*
 * One page of members as a JSON array text (*items, malloc'd) and the
 * cursor of the next page (*next, 0 at the end); DB_NO_RESULTS for an
 * unknown code.
 */
enum db_qs segments_members(struct db_conn *c, const char *shop_id, const char *code,
			    const struct segment_page *page, char **items, long long *next);

/* An export of a whole segment, read in pieces by segments_export_read. */
enum segment_format { SEGMENT_CSV, SEGMENT_NDJSON };
struct segment_export;

/*
 * Start exporting the members of code (page->after and page->consent
 * apply, page->limit does not) on a connection of the export's own, and
 * wait for the first row.  DB_NO_RESULTS for an unknown code; ERR_BUSY in
 * err when too many exports run.
 */
enum db_qs segments_export(struct db_conn *c, const char *shop_id, const char *code,
			   const struct segment_page *page, enum segment_format format,
			   struct segment_export **out, struct err *err);

/*
 * Up to max bytes of the export into buf: the bytes written, 0 at the end,
 * -1 when the database failed mid-way.  Memory stays at one row.
 */
long segments_export_read(void *export, char *buf, size_t max);

/* Free an export (what is still running is cancelled); NULL is fine. */
void segments_export_free(void *export);

#endif
