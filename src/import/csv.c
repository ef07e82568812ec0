/* csv.c — see include/rebuy/csv.h */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/csv.h"

struct csv_reader {
	FILE *in;
	char *buf;          /* field bytes, each NUL-terminated */
	size_t len, cap;
	size_t *starts;     /* field start offsets into buf */
	char **fields;
	size_t nfields, fcap;
	size_t line;        /* current line number */
	unsigned long long offset;
};

struct csv_reader *
csv_new(FILE *in)
{
	struct csv_reader *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->in = in;
	r->line = 1;
	return r;
}

void
csv_free(struct csv_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->starts);
	free(r->fields);
	free(r);
}

unsigned long long
csv_offset(const struct csv_reader *r)
{
	return r->offset;
}

static bool
put(struct csv_reader *r, char ch)
{
	if (r->len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4096;
		char *p = realloc(r->buf, cap);

		if (!p)
			return false;
		r->buf = p;
		r->cap = cap;
	}
	r->buf[r->len++] = ch;
	return true;
}

static bool
new_field(struct csv_reader *r)
{
	if (r->nfields == r->fcap) {
		size_t cap = r->fcap ? r->fcap * 2 : 32;
		size_t *s = realloc(r->starts, cap * sizeof *s);

		if (!s)
			return false;
		r->starts = s;
		r->fcap = cap;
	}
	r->starts[r->nfields++] = r->len;
	return true;
}

static int
get(struct csv_reader *r)
{
	int ch = getc_unlocked(r->in);

	if (ch != EOF)
		r->offset++;
	if (ch == '\n')
		r->line++;
	return ch;
}

/* After a malformed record: skip to the start of the next line. */
static int
skip_line(struct csv_reader *r, int ch)
{
	while (ch != EOF && ch != '\n')
		ch = get(r);
	return -1;
}

int
csv_next(struct csv_reader *r, struct csv_record *rec, const char **why)
{
	enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_IN_QUOTED } st = FIELD_START;
	int ch;

	r->len = 0;
	r->nfields = 0;
	rec->line = r->line;
	ch = get(r);
	if (ch == EOF)
		return 0;
	if (!new_field(r))
		return -2;
	for (;; ch = get(r)) {
		if (ch == EOF && st == QUOTED) {
			*why = "a quoted field is not closed before the end of the file";
			return -1;
		}
		if (st == QUOTED) {
			if (ch == '"')
				st = QUOTE_IN_QUOTED;
			else if (!put(r, (char)ch))
				return -2;
			continue;
		}
		if (st == QUOTE_IN_QUOTED) {
			if (ch == '"') { /* "" inside quotes is one quote */
				if (!put(r, '"'))
					return -2;
				st = QUOTED;
				continue;
			}
			if (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
				*why = "text after a closing quote";
				return skip_line(r, ch);
			}
		}
		if (ch == ',') {
			if (!put(r, '\0') || !new_field(r))
				return -2;
			st = FIELD_START;
			continue;
		}
		if (ch == '\r') {
			int next = get(r);

			if (next != '\n' && next != EOF) {
				*why = "a carriage return outside quotes";
				return skip_line(r, next);
			}
			ch = next;
		}
		if (ch == '\n' || ch == EOF)
			break;
		if (ch == '"') {
			if (st != FIELD_START) {
				*why = "a quote inside an unquoted field";
				return skip_line(r, ch);
			}
			st = QUOTED;
			continue;
		}
		if (ch == '\0') {
			*why = "a NUL byte";
			return skip_line(r, ch);
		}
		if (!put(r, (char)ch))
			return -2;
		st = UNQUOTED;
	}
	if (!put(r, '\0'))
		return -2;
	if (ferror(r->in))
		return -2;
	free(r->fields);
	r->fields = malloc(r->nfields * sizeof *r->fields);
	if (!r->fields)
		return -2;
	for (size_t i = 0; i < r->nfields; i++)
		r->fields[i] = r->buf + r->starts[i];
	rec->nfields = r->nfields;
	rec->fields = r->fields;
	return 1;
}
