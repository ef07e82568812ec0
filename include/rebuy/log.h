/*
 * log.h — structured logging: one JSON object per line on stderr.
 *
 * Secrets (API keys, Authorization headers) are never passed here.
 */
#ifndef REBUY_LOG_H
#define REBUY_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *s);

/*
 * Emit {"ts","level","msg", ...fields}.  Steals the reference to fields
 * (which may be NULL).
 */
void log_emit(enum log_level level, const char *msg, json_t *fields);

/* printf-style convenience for plain messages. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
