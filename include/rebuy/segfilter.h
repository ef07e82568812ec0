/*
 * segfilter.h — the filter language of custom segments: validation and
 * compilation to a parameterised SQL condition.
 *
 *   Filter := {"all": [Filter…]} | {"any": [Filter…]} | {"not": Filter}
 *           | {"field": F, "op": OP, "value": V}
 *
 * The condition reads f (customer_facts), c (customers) and p (today, tz:
 * the shop's date and zone), and r (r, f, m: the customer's RFM scores;
 * segment: the name of the map's segment) when out->rfm says so.  Values become parameters, never SQL text:
 * the only text that reaches the SQL comes from the tables in segfilter.c.
 */
#ifndef REBUY_SEGFILTER_H
#define REBUY_SEGFILTER_H

#include <stdbool.h>
#include <jansson.h>

#include "rebuy/err.h"

#define SEGFILTER_MAX_DEPTH 8
#define SEGFILTER_MAX_CONDITIONS 100

struct segfilter {
	char *sql;                                   /* boolean SQL expression (malloc'd) */
	char *params[SEGFILTER_MAX_CONDITIONS * 2];  /* text values of $first… (malloc'd) */
	int nparams;
	bool rfm;                                    /* reads r: the RFM scores */
};

/*
 * Check filter and compile it with parameters numbered from $first.  On a
 * bad filter: false, err = ERR_VALIDATION with the pointer under prefix
 * (e.g. "/filter").  Free with segfilter_free either way.
 */
bool segfilter_compile(const json_t *filter, const char *prefix, int first,
		       struct segfilter *out, struct err *err);

void segfilter_free(struct segfilter *f);

#endif
