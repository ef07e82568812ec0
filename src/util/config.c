/* config.c — see include/rebuy/config.h */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/config.h"
#include "rebuy/log.h"

static bool
parse_uint(const char *s, unsigned long long min, unsigned long long max,
	   unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
set_listen(struct config *cfg, const char *s)
{
	const char *colon = strrchr(s, ':');
	unsigned long long port;
	size_t hostlen;

	if (!colon || !parse_uint(colon + 1, 1, 65535, &port))
		return false;
	hostlen = (size_t)(colon - s);
	if (hostlen == 0 || hostlen >= sizeof cfg->listen_host)
		return false;
	memcpy(cfg->listen_host, s, hostlen);
	cfg->listen_host[hostlen] = '\0';
	cfg->listen_port = (unsigned short)port;
	return true;
}

/* One setting by name, shared by flags and environment variables. */
static bool
set_option(struct config *cfg, const char *name, const char *value)
{
	unsigned long long v;
	int level;

	if (strcmp(name, "listen") == 0)
		return set_listen(cfg, value);
	if (strcmp(name, "database-url") == 0) {
		free(cfg->database_url);
		cfg->database_url = strdup(value);
		return cfg->database_url != NULL;
	}
	if (strcmp(name, "workers") == 0) {
		if (!parse_uint(value, 1, 256, &v))
			return false;
		cfg->workers = (unsigned)v;
		return true;
	}
	if (strcmp(name, "body-limit") == 0) {
		/* 1 KiB .. 64 MiB: below that nothing fits, above it is abuse */
		if (!parse_uint(value, 1024, 64ull << 20, &v))
			return false;
		cfg->body_limit = (size_t)v;
		return true;
	}
	if (strcmp(name, "log-level") == 0) {
		level = log_level_parse(value);
		if (level < 0)
			return false;
		cfg->log_level = level;
		return true;
	}
	if (strcmp(name, "connection-timeout") == 0) {
		if (!parse_uint(value, 1, 3600, &v))
			return false;
		cfg->connection_timeout = (unsigned)v;
		return true;
	}
	if (strcmp(name, "drain-timeout") == 0) {
		if (!parse_uint(value, 0, 3600, &v))
			return false;
		cfg->drain_timeout = (unsigned)v;
		return true;
	}
	return false;
}

static const struct {
	const char *env, *name;
} env_map[] = {
	{ "REBUY_LISTEN", "listen" },
	{ "REBUY_DATABASE_URL", "database-url" },
	{ "REBUY_WORKERS", "workers" },
	{ "REBUY_BODY_LIMIT", "body-limit" },
	{ "REBUY_LOG_LEVEL", "log-level" },
	{ "REBUY_DRAIN_TIMEOUT", "drain-timeout" },
	{ "REBUY_CONNECTION_TIMEOUT", "connection-timeout" },
};

bool
config_from_env(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
	cfg->listen_port = 8080;
	cfg->database_url = strdup("dbname=rebuy");
	cfg->workers = 8;
	cfg->body_limit = 1 << 20;
	cfg->log_level = LOG_INFO;
	cfg->drain_timeout = 30;
	cfg->connection_timeout = 30;
	if (!cfg->database_url)
		return false;
	cfg->test_clock = getenv("REBUY_TEST_CLOCK") && strcmp(getenv("REBUY_TEST_CLOCK"), "1") == 0;
	for (size_t i = 0; i < sizeof env_map / sizeof env_map[0]; i++) {
		const char *v = getenv(env_map[i].env);

		if (v && *v && !set_option(cfg, env_map[i].name, v)) {
			fprintf(stderr, "rebuyd: invalid value for %s\n",
				env_map[i].env);
			return false;
		}
	}
	return true;
}

bool
config_apply_flag(struct config *cfg, int argc, char **argv, int i,
		  int *consumed)
{
	const char *arg = argv[i];

	*consumed = 1;
	if (strcmp(arg, "--migrate") == 0) {
		cfg->migrate = true;
		return true;
	}
	if (strcmp(arg, "--test-clock") == 0) {
		cfg->test_clock = true;
		return true;
	}
	if (strncmp(arg, "--", 2) != 0) {
		fprintf(stderr, "rebuyd: unexpected argument: %s\n", arg);
		return false;
	}
	arg += 2;
	const char *eq = strchr(arg, '=');
	char name[32];
	const char *value;

	if (eq) { /* --name=value */
		size_t n = (size_t)(eq - arg);

		if (n >= sizeof name)
			goto unknown;
		memcpy(name, arg, n);
		name[n] = '\0';
		value = eq + 1;
	} else {
		if (strlen(arg) >= sizeof name)
			goto unknown;
		snprintf(name, sizeof name, "%s", arg);
		if (i + 1 >= argc) {
			fprintf(stderr, "rebuyd: --%s needs a value\n", name);
			return false;
		}
		value = argv[i + 1];
		*consumed = 2;
	}
	for (size_t k = 0; k < sizeof env_map / sizeof env_map[0]; k++) {
		if (strcmp(env_map[k].name, name) != 0)
			continue;
		if (set_option(cfg, name, value))
			return true;
		fprintf(stderr, "rebuyd: invalid value for --%s\n", name);
		return false;
	}
unknown:
	fprintf(stderr, "rebuyd: unknown option: %s\n", argv[i]);
	return false;
}

void
config_free(struct config *cfg)
{
	free(cfg->database_url);
	cfg->database_url = NULL;
}
