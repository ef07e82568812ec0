/*
 * fmt.h — integers in decimal without printf: the exports, the import's
 * COPY stream and the orders' canonical form write one per value, and
 * snprintf's format parsing was a visible share of their time.
 */
#ifndef REBUY_FMT_H
#define REBUY_FMT_H

#include <stdint.h>
#include <string.h>

#define FMT_INT_MAX 20 /* "-9223372036854775808" */

/* v in decimal at o (no NUL); returns the end */
static inline char *
fmt_int(char *o, int64_t v)
{
	char tmp[FMT_INT_MAX];
	size_t n = 0;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do
		tmp[sizeof tmp - ++n] = (char)('0' + u % 10);
	while ((u /= 10));
	if (v < 0)
		*o++ = '-';
	memcpy(o, tmp + sizeof tmp - n, n);
	return o + n;
}

#endif
