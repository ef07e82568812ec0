/* err.c — see include/rebuy/err.h */
#include <stdio.h>
#include <string.h>

#include "rebuy/err.h"

void
err_set(struct err *e, enum err_code code, const char *pointer,
	const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	e->n_ext = 0;
	snprintf(e->pointer, sizeof e->pointer, "%s", pointer ? pointer : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

void
err_utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3
			   : (*p & 0xF8) == 0xF0 ? 4 : 0;
		size_t i = 1;

		for (; n && i < n; i++)
			if ((p[i] & 0xC0) != 0x80)
				break;
		/* overlong 2-byte forms and bad lead bytes are replaced too */
		if (n == 0 || i < n || (n == 2 && *p < 0xC2) || (n == 4 && *p > 0xF4)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

void
err_clear(struct err *e)
{
	e->code = ERR_NONE;
	e->n_ext = 0;
	e->message[0] = '\0';
	e->pointer[0] = '\0';
}

void
err_pointer_append(char *buf, size_t size, const char *token)
{
	size_t n = strlen(buf);

	if (n + 1 >= size)
		return;
	buf[n++] = '/';
	for (const char *p = token; *p && n + 2 < size; p++) {
		/* RFC 6901: '~' is written "~0" and '/' is written "~1" */
		if (*p == '~' || *p == '/') {
			buf[n++] = '~';
			buf[n++] = *p == '~' ? '0' : '1';
		} else {
			buf[n++] = *p;
		}
	}
	buf[n] = '\0';
}

void
err_ext(struct err *e, const char *name, long long value)
{
	if (e->n_ext < ERR_EXT_MAX) {
		e->ext[e->n_ext].name = name;
		e->ext[e->n_ext].value = value;
		e->n_ext++;
	}
}
