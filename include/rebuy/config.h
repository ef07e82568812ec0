/*
 * config.h — rebuyd configuration from flags, then REBUY_* environment
 * variables, then defaults.
 */
#ifndef REBUY_CONFIG_H
#define REBUY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config {
	char listen_host[64];
	unsigned short listen_port;
	char *database_url;   /* owned; libpq conninfo string or URI */
	unsigned workers;     /* MHD worker threads == database connections */
	size_t body_limit;    /* bytes */
	int log_level;        /* enum log_level */
	unsigned drain_timeout; /* seconds to finish in-flight requests */
	unsigned connection_timeout; /* seconds a connection may sit idle */
	bool migrate;         /* serve: apply pending migrations first */
	bool test_clock;      /* serve: requests may set "now" (Rebuy-Test-Now); tests only */
};

/* Fill defaults, then environment.  Returns false with a message on stderr. */
bool config_from_env(struct config *cfg) __attribute__((warn_unused_result));

/*
 * Apply one "--name value" option.  *consumed is set to the number of argv
 * entries used.  Returns false on an unknown option or bad value.
 */
bool config_apply_flag(struct config *cfg, int argc, char **argv, int i,
		       int *consumed) __attribute__((warn_unused_result));

void config_free(struct config *cfg);

#endif
