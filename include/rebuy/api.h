/*
 * api.h — HTTP handlers, one file per resource under src/api/, and the
 * helper they share to run a domain call.
 *
 * A handler reads: unpack and validate → one domain call (through
 * api_run) → reply.
 */
#ifndef REBUY_API_H
#define REBUY_API_H

#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/jv.h"
#include "rebuy/request.h"

/* What a domain call produced, turned into the reply by api_run. */
struct api_result {
	unsigned status;
	json_t *body;        /* reply body; NULL for an empty reply */
	char *raw;           /* or: JSON text as PostgreSQL rendered it (malloc'd),
	                        sent as is on reads to skip a parse and a dump */
	json_t *replay_body; /* body stored for replays if it must differ
	                        (secrets removed); NULL = same as body */
	char location[256];  /* Location header or "" */
	struct {             /* or: a streamed 200 (see reply_stream) */
		const char *content_type;
		char disposition[160]; /* Content-Disposition or "" */
		long (*read)(void *cls, char *buf, size_t max);
		void (*done)(void *cls);
		void *cls;
	} stream;
};

/*
 * The test clock (rebuyd serve --test-clock): a request's API_TEST_NOW
 * header sets the "now" that memberships, tiers and benefits run on
 * (rebuy_now() in SQL) for that request.  Off, the router refuses the
 * header.
 */
#define API_TEST_NOW "Rebuy-Test-Now"
extern bool api_test_clock;

/* For handlers that use the connection without api_run (bulk ingest). */
bool api_test_clock_begin(struct request *req, struct db_conn *c, struct err *err);
void api_test_clock_end(struct request *req, struct db_conn *c);

typedef enum db_qs (*api_fn)(struct db_conn *c, void *cls,
			     struct api_result *out, struct err *err);

/*
 * Run fn against the thread's database connection and reply.  Writes run
 * in one transaction with the Idempotency-Key claim and record; GETs run
 * without one.  Errors become problem replies.
 */
void api_run(struct request *req, api_fn fn, void *cls);

/*
 * api_run for a write whose fn issues exactly one statement (a function
 * doing all its work under its own locks): without an Idempotency-Key it
 * runs as its own transaction, without the BEGIN and COMMIT round trips.
 */
void api_run_single(struct request *req, api_fn fn, void *cls);

/*
 * Decode and validate the request body against spec; on failure reply
 * and return NULL.  The caller owns the result.
 */
json_t *api_body(struct request *req, const struct jv_field *spec);

/* String member or NULL (for JSON null or absent). */
const char *api_str(const json_t *obj, const char *name);

/*
 * Read query parameter name into *out (NULL if absent).  A value longer
 * than max, or one check() objects to (check returns why, or NULL), gets
 * a 400 with pointer /query/<name> and false.
 */
bool api_query_param(struct request *req, const char *name, const char *(*check)(const char *),
		     size_t max, const char **out);

/*
 * Read the limit and cursor query parameters of a list (limit 1..200,
 * default 50).  On a bad value replies 400 and returns false.
 */
bool api_page_params(struct request *req, int *limit, long long *after);

/* Set out to {"items": items, "next_cursor": …}; frees items. */
enum db_qs api_page_reply(struct api_result *out, char *items, long long next,
			  enum db_qs qs);

/*
 * Content negotiation: the index in offers (NULL-terminated media types,
 * the first the default) that the Accept header prefers, by q-value and
 * then by the order of offers; an absent Accept takes offers[0].  None
 * acceptable: replies 406 and returns -1.
 */
int api_accept(struct request *req, const char *const *offers);

/* True if s is a UUID in canonical (lowercase) text form. */
bool api_uuid_valid(const char *s);

/* The {id} of a /v1/customers/{id}/… path; a malformed id gets a 400. */
bool api_customer_path(struct request *req, const char **id);

/* jv checks: ids the storefront chooses (printable ASCII without spaces, as
 * Idempotency-Key), and a version number from 1. */
const char *api_check_id(const char *s);
const char *api_check_version(const char *s);

/*
 * A versioned catalogue: top-up offers, package plans, coupon packs.
 * PUT {path}/{code} stores a new version (201 with Location for version
 * 1, 200 after); GET {path}/{code} gives the latest or ?version=; GET
 * {path} lists the latest of each.  Codes are 1-64 of a-z, 0-9 and -.
 */
struct api_catalogue {
	const char *what; /* "package plan", for messages */
	const char *path; /* "/v1/package-plans" */
	const struct jv_field *spec;
	/* rules across members the spec cannot say (reply and false); may be NULL */
	bool (*consistent)(struct request *req, const json_t *body);
	/* store a checked body as a new version; *out the entry */
	enum db_qs (*put)(struct db_conn *c, const char *shop_id, const char *code,
			  const json_t *body, bool *created, char **out, struct err *err);
	/* the entry (version NULL: the latest), or {"items"} when code is NULL */
	enum db_qs (*get)(struct db_conn *c, const char *shop_id, const char *code,
			  const char *version, char **out);
};

void api_catalogue_put(struct request *req, const struct api_catalogue *cat);
void api_catalogue_get(struct request *req, const struct api_catalogue *cat);
void api_catalogue_list(struct request *req, const struct api_catalogue *cat);

/* qs, or for DB_NO_RESULTS a 404 naming the customer (DB_ABORT). */
enum db_qs api_no_customer(enum db_qs qs, struct err *err, const char *customer_id);

/* Reply 404 unless the caller may see shop_id. */
bool api_shop_visible(struct request *req, const char *shop_id);

/* handlers */
void api_membership_plans_put(struct request *req);
void api_membership_plans_list(struct request *req);
void api_membership_plans_get(struct request *req);
void api_customer_memberships_post(struct request *req);
void api_customer_memberships_list(struct request *req);
void api_customer_membership_get(struct request *req);
void api_memberships_get(struct request *req);
void api_memberships_renew(struct request *req);
void api_memberships_cancel(struct request *req);
void api_tier_programme_put(struct request *req);
void api_tier_programme_get(struct request *req);
void api_tier_programme_review(struct request *req);
void api_customer_tier_put(struct request *req);
void api_customer_tier_get(struct request *req);
void api_customer_tier_history(struct request *req);
void api_benefits_put(struct request *req);
void api_benefits_get(struct request *req);
void api_benefits_list(struct request *req);
void api_customer_benefit_use(struct request *req);
void api_metrics_membership(struct request *req);
void api_metrics_wallet_holders(struct request *req);
void api_metrics_prepaid_liability(struct request *req);
void api_topup_offers_put(struct request *req);
void api_topup_offers_get(struct request *req);
void api_topup_offers_list(struct request *req);
void api_wallet_get(struct request *req);
void api_wallet_statement(struct request *req);
void api_wallet_topup(struct request *req);
void api_wallet_spend(struct request *req);
void api_wallet_spend_refund(struct request *req);
void api_wallet_topup_refund(struct request *req);
void api_wallet_adjust(struct request *req);
void api_package_plans_put(struct request *req);
void api_package_plans_get(struct request *req);
void api_package_plans_list(struct request *req);
void api_customer_packages_post(struct request *req);
void api_customer_packages_list(struct request *req);
void api_customer_package_get(struct request *req);
void api_package_redeem(struct request *req);
void api_package_reversal(struct request *req);
void api_package_refund(struct request *req);
void api_coupon_packs_put(struct request *req);
void api_coupon_packs_get(struct request *req);
void api_coupon_packs_list(struct request *req);
void api_coupon_grants_post(struct request *req);
void api_coupon_grant_get(struct request *req);
void api_customer_coupons_list(struct request *req);
void api_coupon_redeem(struct request *req);
void api_metrics_package_breakage(struct request *req);
void api_metrics_coupon_redemption(struct request *req);
void api_metrics_package_holders(struct request *req);
void api_health_get(struct request *req);
void api_ready_get(struct request *req);
void api_metrics_get(struct request *req);
void api_shops_post(struct request *req);
void api_shops_get(struct request *req);
void api_shops_patch(struct request *req);
void api_keys_post(struct request *req);
void api_keys_list(struct request *req);
void api_keys_delete(struct request *req);
void api_customers_put(struct request *req);
void api_customers_get(struct request *req);
void api_customers_delete(struct request *req);
void api_customers_list(struct request *req);
void api_orders_put(struct request *req);
void api_orders_get(struct request *req);
void api_orders_cancel(struct request *req);
void api_orders_refund(struct request *req);
void api_orders_event(struct request *req);
void api_orders_bulk(struct request *req);
void api_orders_list(struct request *req);
void api_customer_orders_list(struct request *req);
void api_metrics_repurchase(struct request *req);
void api_metrics_second_purchase(struct request *req);
void api_metrics_cohorts(struct request *req);
void api_metrics_revenue_mix(struct request *req);
void api_metrics_first_order(struct request *req);
void api_metrics_sales_decomposition(struct request *req);
void api_traffic_post(struct request *req);
void api_segments_list(struct request *req);
void api_segments_get(struct request *req);
void api_segments_members(struct request *req);
void api_segments_put(struct request *req);
void api_segments_delete(struct request *req);
void api_rfm_map_get(struct request *req);
void api_rfm_map_put(struct request *req);
void api_rfm_summary(struct request *req);

#endif
