/*
 * csv.h — a streaming RFC 4180 reader: comma-separated, "-quoted fields
 * that may hold commas, quotes ("") and newlines; CRLF or LF line ends.
 * Constant memory apart from the longest record.
 */
#ifndef REBUY_CSV_H
#define REBUY_CSV_H

#include <stdio.h>

struct csv_record {
	size_t nfields;
	char **fields;   /* NUL-terminated; valid until the next csv_next */
	size_t line;     /* line number where the record starts, from 1 */
};

struct csv_reader;

struct csv_reader *csv_new(FILE *in);
void csv_free(struct csv_reader *r); /* csv_free(NULL) is harmless */

/*
 * Read the next record.  1: *rec is filled.  0: end of input.  -1: the
 * record is malformed (*why says how; the reader has skipped to the next
 * line, rec->line tells where it started).  -2: out of memory or a read
 * error.
 */
int csv_next(struct csv_reader *r, struct csv_record *rec, const char **why);

/* Bytes consumed so far (for progress). */
unsigned long long csv_offset(const struct csv_reader *r);

#endif
