/*
 * main.c — rebuyd: configuration, subcommands, signals, start and stop.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rebuy/apikeys.h"
#include "rebuy/config.h"
#include "rebuy/db.h"
#include "rebuy/idempotency.h"
#include "rebuy/import.h"
#include "rebuy/log.h"
#include "rebuy/api.h"
#include "rebuy/migrate.h"
#include "rebuy/tiers.h"
#include "rebuy/wallets.h"
#include "rebuy/orders.h"
#include "rebuy/server.h"
#include "rebuy/segments.h"
#include "rebuy/shops.h"

#ifndef REBUY_VERSION
#define REBUY_VERSION "0.0.0"
#endif

static const char usage[] =
	"usage: rebuyd COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  serve                  serve the HTTP API\n"
	"  migrate                apply pending database migrations\n"
	"  version                print the version and schema version\n"
	"  keys create-platform   create a platform API key (printed once)\n"
	"  keys create            create a shop key: --shop ID --scope admin|storefront|readonly\n"
	"                         (recovery when a shop has lost its admin keys)\n"
	"  import orders FILE     import order history (CSV or NDJSON, see README):\n"
	"                         --shop ID [--format csv|ndjson] [--rejects PATH]\n"
	"  verify [--shop ID]     recompute every customer's repurchase facts, check the\n"
	"                         prepaid ledger, and report\n"
	"                         differences with what is stored (exit 1 if any)\n"
	"  sql [NAME]             print named prepared statements (for EXPLAIN, benchmarks)\n"
	"  shops create           create a shop and print its first admin key\n"
	"                         (--name NAME --currency CUR --timezone TZ)\n"
	"\n"
	"options (each also read from the REBUY_* variable shown):\n"
	"  --listen HOST:PORT     REBUY_LISTEN        default 127.0.0.1:8080\n"
	"  --database-url URL     REBUY_DATABASE_URL  default dbname=rebuy\n"
	"  --workers N            REBUY_WORKERS       default 8 (threads = DB connections)\n"
	"  --body-limit BYTES     REBUY_BODY_LIMIT    default 1048576\n"
	"  --log-level LEVEL      REBUY_LOG_LEVEL     debug|info|warn|error, default info\n"
	"  --drain-timeout SEC    REBUY_DRAIN_TIMEOUT default 30\n"
	"  --connection-timeout SEC REBUY_CONNECTION_TIMEOUT default 30 (idle connections)\n"
	"  --migrate              serve: apply pending migrations before serving\n"
	"  --test-clock           REBUY_TEST_CLOCK=1  serve: honour the Rebuy-Test-Now header\n"
	"                         (tests only: it moves memberships, tiers, benefits, wallets,\n"
	"                         packages and coupons in time)\n";

/* Open a CLI connection, retrying briefly while PostgreSQL starts. */
static struct db_conn *
open_db(const struct config *cfg, int wait_seconds)
{
	struct err err;
	struct db_conn *c;

	for (int i = 0;; i++) {
		err_clear(&err);
		c = db_open(cfg->database_url, false, &err);
		if (c || i >= wait_seconds * 4)
			break;
		usleep(250000);
	}
	if (!c)
		fprintf(stderr, "rebuyd: cannot connect to the database (%s)\n",
			err.message);
	return c;
}

/* Connect, insist on the current schema, prepare statements. */
static struct db_conn *
open_current_db(const struct config *cfg)
{
	struct db_conn *c = open_db(cfg, 0);
	struct err err;
	int v;

	if (!c)
		return NULL;
	v = migrate_current(c, &err);
	if (v != migrate_latest()) {
		fprintf(stderr, "rebuyd: database schema is at version %d, expected %d:"
				" run 'rebuyd migrate'\n", v, migrate_latest());
		goto fail;
	}
	if (!db_prepare(c)) {
		fprintf(stderr, "rebuyd: cannot prepare statements\n");
		goto fail;
	}
	return c;
fail:
	db_close(c);
	return NULL;
}

static int
cmd_migrate(const struct config *cfg)
{
	struct db_conn *c = open_db(cfg, 10);
	struct err err;
	int rc = 1;

	if (!c)
		return 1;
	err_clear(&err);
	if (!migrate_run(c, &err)) {
		fprintf(stderr, "rebuyd: migrate: %s\n", err.message);
		goto out;
	}
	printf("schema at version %d\n", migrate_latest());
	rc = 0;
out:
	db_close(c);
	return rc;
}

static int
cmd_create_key(const struct config *cfg, const char *shop_id, const char *scope,
	       const char *name)
{
	struct db_conn *c;
	json_t *key = NULL;
	struct err err;
	enum db_qs qs;

	if (shop_id && (!scope || strcmp(scope, "platform") == 0 ||
			!(strcmp(scope, "admin") == 0 || strcmp(scope, "storefront") == 0 ||
			  strcmp(scope, "readonly") == 0))) {
		fprintf(stderr, "rebuyd: keys create needs --scope admin|storefront|readonly\n");
		return 2;
	}
	c = open_current_db(cfg);
	if (!c)
		return 1;
	err_clear(&err);
	/* a shop id that is not a shop fails the foreign key: reported below */
	qs = apikeys_create(c, shop_id, name ? name : (shop_id ? "cli key" : "platform key"),
			    shop_id ? scope : "platform", &key, &err);
	if (qs > 0)
		printf("%s\n", json_string_value(json_object_get(key, "key")));
	else
		fprintf(stderr, "rebuyd: cannot create the key\n");
	json_decref(key);
	db_close(c);
	return qs > 0 ? 0 : 1;
}

struct shop_cli {
	struct shop_input in;
	json_t *shop, *key;
};

static enum db_qs
shop_tx(struct db_conn *c, void *cls, struct err *err)
{
	struct shop_cli *s = cls;

	json_decref(s->shop);
	json_decref(s->key);
	return shops_create(c, &s->in, &s->shop, &s->key, err);
}

static int
cmd_create_shop(const struct config *cfg, const struct shop_input *in)
{
	struct db_conn *c;
	struct shop_cli s = { .in = *in };
	struct err err;
	int rc = 1;

	if (!in->name || !in->currency || !in->timezone) {
		fprintf(stderr, "rebuyd: shops create needs --name, --currency and --timezone\n");
		return 2;
	}
	c = open_current_db(cfg);
	if (!c)
		return 1;
	if (!db_run_tx(c, "shops create", shop_tx, &s, &err)) {
		fprintf(stderr, "rebuyd: cannot create the shop: %s\n", err.message);
		goto out;
	}
	printf("{\"shop_id\":\"%s\",\"admin_key\":\"%s\"}\n",
	       json_string_value(json_object_get(s.shop, "id")),
	       json_string_value(json_object_get(s.key, "key")));
	rc = 0;
out:
	json_decref(s.shop);
	json_decref(s.key);
	db_close(c);
	return rc;
}

/*
 * The janitor: once a minute, the tier reviews and grace ends that are due
 * (reviews also run on demand, POST /v1/tier-programme/review) and the
 * wallets' due bonus releases and expiries (every wallet call also does
 * its own first), and the fold of the facts' histograms' deltas (readers
 * add what is not folded yet, so this only keeps them few) and vip's kept
 * spends of shops whose day or zone has changed; hourly, idempotency
 * records past their retention are deleted.
 */
static pthread_mutex_t janitor_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t janitor_cond = PTHREAD_COND_INITIALIZER;
static bool janitor_stop;

static void *
janitor(void *arg)
{
	const struct config *cfg = arg;
	struct timespec until;
	unsigned minute = 0;

	pthread_mutex_lock(&janitor_lock);
	while (!janitor_stop) {
		struct db_conn *c;
		struct err err;

		pthread_mutex_unlock(&janitor_lock);
		c = db_open(cfg->database_url, true, &err);
		if (c) {
			if (minute % 60 == 0) {
				enum db_qs qs = idem_purge(c);

				if (qs > 0)
					log_info("purged %d expired idempotency records", (int)qs);
			}
			/*
			 * With the test clock, requests carry their own "now": a
			 * job on the real clock would jump every test timeline
			 * ahead (the calls catch up and review by themselves).
			 */
			if (!cfg->test_clock) {
				(void)tiers_review_all(c);
				(void)wallets_sweep(c);
			}
			/*
			 * No statement limit for these two: after a big import
			 * the fold, and after midnight a big shop's vip rebuild,
			 * outlast the API's 30 s, and failing every minute would
			 * leave the deltas growing and vip computed live.
			 */
			if (db_exec_simple(c, "SET statement_timeout = 0") >= 0) {
				if (orders_fold_cells(c) < 0)
					log_emit(LOG_WARN, "fold of a histogram family failed"
						 " (the others were folded)", NULL);
				if (segments_refresh_vip(c) < 0)
					log_emit(LOG_WARN, "vip rebuild failed", NULL);
			}
			db_close(c);
		}
		minute++;
		pthread_mutex_lock(&janitor_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 60;
		while (!janitor_stop &&
		       pthread_cond_timedwait(&janitor_cond, &janitor_lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&janitor_lock);
	return NULL;
}

static int
cmd_serve(struct config *cfg)
{
	struct db_conn *c;
	struct err err;
	sigset_t sigs;
	pthread_t janitor_thread;
	int sig = 0, v;

	c = open_db(cfg, 10);
	if (!c)
		return 1;
	err_clear(&err);
	v = migrate_current(c, &err);
	if (v >= 0 && v < migrate_latest() && cfg->migrate) {
		if (!migrate_run(c, &err)) {
			fprintf(stderr, "rebuyd: migrate: %s\n", err.message);
			db_close(c);
			return 1;
		}
		v = migrate_latest();
	}
	db_close(c);
	if (v != migrate_latest()) {
		fprintf(stderr, "rebuyd: database schema is at version %d, this binary needs %d;"
				" run 'rebuyd migrate' or serve with --migrate\n",
			v, migrate_latest());
		return 1;
	}
	/* workers inherit this mask: only the main thread takes signals */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	db_init(cfg->database_url);
	api_test_clock = cfg->test_clock;
	if (api_test_clock)
		log_warn("the test clock is on: requests may set the time (" API_TEST_NOW "); "
			 "never in production");
	if (!server_start(cfg))
		return 1;
	if (pthread_create(&janitor_thread, NULL, janitor, cfg) != 0)
		return 1;
	log_emit(LOG_INFO, "listening",
		 json_pack("{s:s, s:i, s:i, s:s, s:i}", "host", cfg->listen_host, "port",
			   (int)cfg->listen_port, "workers", (int)cfg->workers,
			   "version", REBUY_VERSION, "schema_version", migrate_latest()));
	sigwait(&sigs, &sig);
	log_emit(LOG_INFO, "draining",
		 json_pack("{s:s, s:i}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
			   "timeout_s", (int)cfg->drain_timeout));
	server_drain_and_stop(cfg->drain_timeout);
	pthread_mutex_lock(&janitor_lock);
	janitor_stop = true;
	pthread_cond_signal(&janitor_cond);
	pthread_mutex_unlock(&janitor_lock);
	pthread_join(janitor_thread, NULL);
	db_shutdown();
	log_info("stopped");
	return 0;
}

static void
verify_report(const char *shop, const char *customer, const char *stored,
	      const char *computed)
{
	printf("shop %s customer %s\n  stored:   %s\n  computed: %s\n", shop, customer,
	       stored, computed);
}

static void
check_report(const char *shop, const char *what, const char *detail)
{
	printf("shop %s: %s\n  %s\n", shop, what, detail);
}

static int
cmd_import(const struct config *cfg, struct import_options *imp, const char *shop_id)
{
	struct db_conn *c;
	int rc;

	if (!shop_id) {
		fprintf(stderr, "rebuyd: import orders needs --shop ID\n");
		return 2;
	}
	imp->shop_id = shop_id;
	c = open_current_db(cfg);
	if (!c)
		return 1;
	rc = import_orders(c, imp);
	db_close(c);
	return rc;
}

static int
cmd_verify(const struct config *cfg, const char *shop_id)
{
	struct db_conn *c = open_current_db(cfg);
	enum db_qs qs;

	if (!c)
		return 1;
	/* a full recomputation of a big shop outlasts the API's 30 s limit */
	PQclear(PQexec(db_pg(c), "SET statement_timeout = 0"));
	qs = orders_verify(c, shop_id, verify_report);
	if (qs >= 0) {
		enum db_qs lq = wallets_verify(c, shop_id, check_report);

		qs = lq < 0 ? lq : qs + lq;
	}
	if (qs >= 0) {
		enum db_qs rq = orders_verify_cells(c, shop_id, check_report);

		qs = rq < 0 ? rq : qs + rq;
	}
	db_close(c);
	if (qs < 0) {
		fprintf(stderr, "rebuyd: verify failed\n");
		return 1;
	}
	printf("%d differences\n", (int)qs);
	return qs == 0 ? 0 : 1;
}

static int
cmd_sql(const char *name)
{
	const char *sql;

	if (name) {
		sql = db_stmt_sql(name);
		if (!sql) {
			fprintf(stderr, "rebuyd: no statement named %s\n", name);
			return 1;
		}
		printf("%s\n", sql);
		return 0;
	}
	for (size_t m = 0; db_all_stmts[m]; m++)
		for (const struct db_stmt *s = db_all_stmts[m]; s->name; s++)
			printf("-- %s\n%s;\n\n", s->name, s->sql);
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct shop_input shop = { 0 };
	const char *cmd, *key_name = NULL, *key_shop = NULL, *key_scope = NULL;
	struct import_options imp = { 0 };
	int first = 2, rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	if ((strcmp(cmd, "keys") == 0 || strcmp(cmd, "shops") == 0 ||
	     strcmp(cmd, "sql") == 0) && argc >= 3 && argv[2][0] != '-')
		first = 3;
	if (strcmp(cmd, "import") == 0 && argc >= 4) { /* import orders FILE */
		imp.path = argv[3];
		first = 4;
	}
	if (!config_from_env(&cfg))
		return 2;
	for (int i = first; i < argc;) {
		int used = 1;

		/* options of the CLI subcommands, then the server options */
		if (i + 1 < argc && strcmp(argv[i], "--name") == 0) {
			key_name = shop.name = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--currency") == 0) {
			shop.currency = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--timezone") == 0) {
			shop.timezone = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--shop") == 0) {
			key_shop = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--format") == 0) {
			imp.format = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--rejects") == 0) {
			imp.rejects = argv[i + 1];
			used = 2;
		} else if (i + 1 < argc && strcmp(argv[i], "--scope") == 0) {
			key_scope = argv[i + 1];
			used = 2;
		} else if (strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			config_free(&cfg);
			return 0;
		} else if (!config_apply_flag(&cfg, argc, argv, i, &used)) {
			config_free(&cfg);
			return 2;
		}
		i += used;
	}
	log_set_level((enum log_level)cfg.log_level);
	if (strcmp(cmd, "serve") == 0)
		rc = cmd_serve(&cfg);
	else if (strcmp(cmd, "migrate") == 0)
		rc = cmd_migrate(&cfg);
	else if (strcmp(cmd, "import") == 0 && argc >= 4 && strcmp(argv[2], "orders") == 0)
		rc = cmd_import(&cfg, &imp, key_shop);
	else if (strcmp(cmd, "verify") == 0)
		rc = cmd_verify(&cfg, key_shop);
	else if (strcmp(cmd, "sql") == 0) {
		rc = cmd_sql(argc >= 3 && argv[2][0] != '-' ? argv[2] : NULL);
	} else if (strcmp(cmd, "version") == 0) {
		printf("rebuyd %s (schema %d)\n", REBUY_VERSION, migrate_latest());
		rc = 0;
	} else if (strcmp(cmd, "keys") == 0 && argc >= 3 &&
		   strcmp(argv[2], "create-platform") == 0)
		rc = cmd_create_key(&cfg, NULL, NULL, key_name);
	else if (strcmp(cmd, "keys") == 0 && argc >= 3 && strcmp(argv[2], "create") == 0) {
		if (!key_shop) {
			fprintf(stderr, "rebuyd: keys create needs --shop ID\n");
			rc = 2;
		} else {
			rc = cmd_create_key(&cfg, key_shop, key_scope, key_name);
		}
	}
	else if (strcmp(cmd, "shops") == 0 && argc >= 3 && strcmp(argv[2], "create") == 0)
		rc = cmd_create_shop(&cfg, &shop);
	else {
		fprintf(stderr, "rebuyd: unknown command: %s\n\n%s", cmd, usage);
		rc = 2;
	}
	config_free(&cfg);
	return rc;
}
