/* log.c — see include/rebuy/log.h */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rebuy/log.h"

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	min_level = level;
}

enum log_level
log_get_level(void)
{
	return min_level;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void
log_emit(enum log_level level, const char *msg, json_t *fields)
{
	struct timespec ts;
	struct tm tm;
	char stamp[80];
	json_t *line;
	char *text;

	if (level < min_level) {
		json_decref(fields);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	line = json_pack("{s:s, s:s, s:s}", "ts", stamp, "level",
			 level_names[level], "msg", msg);
	if (line && fields)
		json_object_update(line, fields);
	json_decref(fields);
	text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(line);
	if (!text)
		return;
	/* one write per line so lines from worker threads never interleave */
	flockfile(stderr);
	fputs(text, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	funlockfile(stderr);
	free(text);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_emit(level, buf, NULL);
}
