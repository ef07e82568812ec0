/*
 * router.c — the route table and the checks every request passes before
 * its handler: route, body size, authentication, scope, query parameters,
 * Idempotency-Key.
 *
 * The table is data: adding an endpoint is one line here and one handler.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "rebuy/api.h"
#include "rebuy/auth.h"
#include "rebuy/reply.h"
#include "rebuy/router.h"
#include "rebuy/server.h"

#define ANY_SHOP (SCOPE_ADMIN | SCOPE_STOREFRONT | SCOPE_READONLY)

const struct route router_routes[] = {
	{ "GET", "/healthz", api_health_get, 0, 0 },
	{ "GET", "/readyz", api_ready_get, 0, 0 },
	{ "GET", "/metrics", api_metrics_get, 0, 0 },
	{ "POST", "/v1/shops", api_shops_post, SCOPE_PLATFORM, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/shops/{id}", api_shops_get, SCOPE_PLATFORM | ANY_SHOP, 0 },
	{ "PATCH", "/v1/shops/{id}", api_shops_patch, SCOPE_PLATFORM | SCOPE_ADMIN, ROUTE_BODY },
	{ "POST", "/v1/api-keys", api_keys_post, SCOPE_ADMIN, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/api-keys", api_keys_list, SCOPE_ADMIN, 0 },
	{ "DELETE", "/v1/api-keys/{id}", api_keys_delete, SCOPE_ADMIN, 0 },
	{ "GET", "/v1/customers", api_customers_list, SCOPE_ADMIN | SCOPE_READONLY, 0,
	  "limit cursor tag consent created_after created_before" },
	{ "PUT", "/v1/customers/{id}", api_customers_put, SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY },
	{ "GET", "/v1/customers/{id}", api_customers_get, ANY_SHOP, 0, "include" },
	{ "DELETE", "/v1/customers/{id}", api_customers_delete, SCOPE_ADMIN | SCOPE_STOREFRONT, 0 },
	{ "GET", "/v1/customers/{id}/orders", api_customer_orders_list, ANY_SHOP, 0,
	  "limit cursor" },
	{ "GET", "/v1/orders", api_orders_list, SCOPE_ADMIN | SCOPE_READONLY, 0,
	  "limit cursor customer_id channel status placed_after placed_before" },
	{ "POST", "/v1/orders/bulk", api_orders_bulk, SCOPE_ADMIN | SCOPE_STOREFRONT, 0 },
	{ "PUT", "/v1/orders/{id}", api_orders_put, SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY },
	{ "GET", "/v1/orders/{id}", api_orders_get, ANY_SHOP, 0 },
	{ "POST", "/v1/orders/{id}/cancel", api_orders_cancel, SCOPE_ADMIN | SCOPE_STOREFRONT,
	  ROUTE_IDEMPOTENT },
	{ "POST", "/v1/orders/{id}/refunds", api_orders_refund, SCOPE_ADMIN | SCOPE_STOREFRONT,
	  ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/orders/{id}/events", api_orders_event, SCOPE_ADMIN | SCOPE_STOREFRONT,
	  ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/metrics/repurchase", api_metrics_repurchase, SCOPE_ADMIN | SCOPE_READONLY, 0,
	  "from to as_of channel window_days interval" },
	{ "GET", "/v1/metrics/time-to-second-purchase", api_metrics_second_purchase,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "from to as_of channel category" },
	{ "GET", "/v1/metrics/cohorts", api_metrics_cohorts, SCOPE_ADMIN | SCOPE_READONLY, 0,
	  "from to as_of channel interval periods" },
	{ "GET", "/v1/metrics/revenue-mix", api_metrics_revenue_mix, SCOPE_ADMIN | SCOPE_READONLY,
	  0, "from to as_of channel interval" },
	{ "GET", "/v1/metrics/first-order", api_metrics_first_order, SCOPE_ADMIN | SCOPE_READONLY,
	  0, "from to as_of window_days" },
	{ "GET", "/v1/metrics/membership", api_metrics_membership, SCOPE_ADMIN | SCOPE_READONLY, 0,
	  "from to as_of" },
	{ "GET", "/v1/metrics/wallet-holders", api_metrics_wallet_holders,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "from to as_of" },
	{ "GET", "/v1/metrics/prepaid-liability", api_metrics_prepaid_liability,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "as_of" },
	{ "GET", "/v1/metrics/sales-decomposition", api_metrics_sales_decomposition,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "from to as_of channel interval" },
	{ "POST", "/v1/traffic", api_traffic_post, SCOPE_ADMIN | SCOPE_STOREFRONT,
	  ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/segments", api_segments_list, SCOPE_ADMIN | SCOPE_READONLY, 0 },
	{ "GET", "/v1/segments/{code}", api_segments_get, SCOPE_ADMIN | SCOPE_READONLY, 0 },
	{ "PUT", "/v1/segments/{code}", api_segments_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "DELETE", "/v1/segments/{code}", api_segments_delete, SCOPE_ADMIN, 0 },
	{ "GET", "/v1/rfm/map", api_rfm_map_get, SCOPE_ADMIN | SCOPE_READONLY, 0 },
	{ "PUT", "/v1/rfm/map", api_rfm_map_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/rfm/summary", api_rfm_summary, SCOPE_ADMIN | SCOPE_READONLY, 0 },
	{ "PUT", "/v1/membership-plans/{code}", api_membership_plans_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/membership-plans", api_membership_plans_list, ANY_SHOP, 0 },
	{ "GET", "/v1/membership-plans/{code}", api_membership_plans_get, ANY_SHOP, 0 },
	{ "POST", "/v1/customers/{id}/memberships", api_customer_memberships_post,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/customers/{id}/memberships", api_customer_memberships_list, ANY_SHOP, 0 },
	{ "GET", "/v1/customers/{id}/membership", api_customer_membership_get, ANY_SHOP, 0 },
	{ "GET", "/v1/memberships/{id}", api_memberships_get, ANY_SHOP, 0 },
	{ "POST", "/v1/memberships/{id}/renew", api_memberships_renew, SCOPE_ADMIN | SCOPE_STOREFRONT,
	  ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/memberships/{id}/cancel", api_memberships_cancel,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "PUT", "/v1/tier-programme", api_tier_programme_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/tier-programme", api_tier_programme_get, ANY_SHOP, 0 },
	{ "POST", "/v1/tier-programme/review", api_tier_programme_review, SCOPE_ADMIN,
	  ROUTE_IDEMPOTENT },
	{ "PUT", "/v1/customers/{id}/tier", api_customer_tier_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/customers/{id}/tier", api_customer_tier_get, ANY_SHOP, 0 },
	{ "GET", "/v1/customers/{id}/tier-history", api_customer_tier_history, ANY_SHOP, 0 },
	{ "PUT", "/v1/benefits/{code}", api_benefits_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/benefits", api_benefits_list, ANY_SHOP, 0 },
	{ "GET", "/v1/benefits/{code}", api_benefits_get, ANY_SHOP, 0 },
	{ "POST", "/v1/customers/{id}/benefits/{code}/uses", api_customer_benefit_use,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "PUT", "/v1/topup-offers/{code}", api_topup_offers_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/topup-offers", api_topup_offers_list, ANY_SHOP, 0 },
	{ "GET", "/v1/topup-offers/{code}", api_topup_offers_get, ANY_SHOP, 0, "version" },
	{ "GET", "/v1/customers/{id}/wallet", api_wallet_get, ANY_SHOP, 0 },
	{ "GET", "/v1/customers/{id}/wallet/statement", api_wallet_statement, ANY_SHOP, 0 },
	{ "POST", "/v1/customers/{id}/wallet/topups", api_wallet_topup,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/wallet/spends", api_wallet_spend,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/wallet/spends/{spend_id}/refunds", api_wallet_spend_refund,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/wallet/topups/{topup_id}/refund", api_wallet_topup_refund,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/wallet/adjustments", api_wallet_adjust, SCOPE_ADMIN,
	  ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "PUT", "/v1/package-plans/{code}", api_package_plans_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/package-plans", api_package_plans_list, ANY_SHOP, 0 },
	{ "GET", "/v1/package-plans/{code}", api_package_plans_get, ANY_SHOP, 0, "version" },
	{ "POST", "/v1/customers/{id}/packages", api_customer_packages_post,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/customers/{id}/packages", api_customer_packages_list, ANY_SHOP, 0, "status" },
	{ "GET", "/v1/customers/{id}/packages/{package_id}", api_customer_package_get, ANY_SHOP, 0 },
	{ "POST", "/v1/customers/{id}/packages/{package_id}/redemptions", api_package_redeem,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/packages/{package_id}/redemptions/{redemption_id}/reversal",
	  api_package_reversal, SCOPE_ADMIN, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "POST", "/v1/customers/{id}/packages/{package_id}/refund", api_package_refund,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_IDEMPOTENT },
	{ "PUT", "/v1/coupon-packs/{code}", api_coupon_packs_put, SCOPE_ADMIN, ROUTE_BODY },
	{ "GET", "/v1/coupon-packs", api_coupon_packs_list, ANY_SHOP, 0 },
	{ "GET", "/v1/coupon-packs/{code}", api_coupon_packs_get, ANY_SHOP, 0, "version" },
	{ "POST", "/v1/customers/{id}/coupon-grants", api_coupon_grants_post,
	  SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/customers/{id}/coupon-grants/{grant_id}", api_coupon_grant_get, ANY_SHOP, 0 },
	{ "GET", "/v1/customers/{id}/coupons", api_customer_coupons_list, ANY_SHOP, 0, "status" },
	{ "POST", "/v1/customers/{id}/coupon-grants/{grant_id}/coupons/{number}/redeem",
	  api_coupon_redeem, SCOPE_ADMIN | SCOPE_STOREFRONT, ROUTE_BODY | ROUTE_IDEMPOTENT },
	{ "GET", "/v1/metrics/package-breakage", api_metrics_package_breakage,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "as_of" },
	{ "GET", "/v1/metrics/coupon-redemption", api_metrics_coupon_redemption,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "as_of" },
	{ "GET", "/v1/metrics/package-holders", api_metrics_package_holders,
	  SCOPE_ADMIN | SCOPE_READONLY, 0, "from to as_of" },
	{ "GET", "/v1/segments/{code}/customers", api_segments_members,
	  SCOPE_ADMIN | SCOPE_READONLY, ROUTE_NEGOTIATED, "limit cursor consent fields" },
};
const size_t router_route_count = sizeof router_routes / sizeof router_routes[0];

/*
 * Match one pattern against a path.  Placeholders take one non-empty
 * segment, copied NUL-terminated into buf.
 */
static bool
match_pattern(const char *pattern, const char *path, const char *params[],
	      char *buf, size_t bufsize)
{
	const char *p = pattern, *s = path;
	size_t used = 0;
	int n = 0;

	while (*p && *s) {
		if (*p == '{') {
			size_t len = strcspn(s, "/");

			if (len == 0 || n >= ROUTE_MAX_PARAMS || used + len + 1 > bufsize)
				return false;
			memcpy(buf + used, s, len);
			buf[used + len] = '\0';
			params[n++] = buf + used;
			used += len + 1;
			s += len;
			p = strchr(p, '}');
			if (!p)
				return false;
			p++;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

enum router_result
router_match(const char *method, const char *path, int *index,
	     const char *params[ROUTE_MAX_PARAMS], char *buf, size_t bufsize,
	     char *allow, size_t allowsize)
{
	const char *tmp[ROUTE_MAX_PARAMS];
	bool path_known = false, literal = false;

	/* a literal path (/v1/orders/bulk) wins over a template (/v1/orders/{id}) */
	for (size_t i = 0; i < router_route_count && !literal; i++)
		literal = !strchr(router_routes[i].pattern, '{') &&
			  strcmp(router_routes[i].pattern, path) == 0;
	allow[0] = '\0';
	for (size_t i = 0; i < router_route_count; i++) {
		const struct route *r = &router_routes[i];

		if (literal && strchr(r->pattern, '{'))
			continue;
		if (!match_pattern(r->pattern, path, tmp, buf, bufsize))
			continue;
		if (strcmp(r->method, method) == 0) {
			/* re-match into the caller's params (buf reused) */
			(void)match_pattern(r->pattern, path, params, buf, bufsize);
			*index = (int)i;
			return ROUTER_FOUND;
		}
		if (!strstr(allow, r->method)) {
			size_t n = strlen(allow);

			snprintf(allow + n, allowsize - n, "%s%s", n ? ", " : "", r->method);
		}
		path_known = true;
	}
	return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

/* Authenticate the Bearer key and check the route's scopes.  Replies on failure. */
static bool
authenticate(struct request *req)
{
	const char *h = request_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	struct auth_key key;
	struct db_conn *c;
	struct err err;
	enum db_qs qs;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		reply_error(req, ERR_UNAUTHENTICATED, NULL,
			    "send an API key as Authorization: Bearer rb_...");
		return false;
	}
	h += 7;
	while (*h == ' ')
		h++;
	c = db_thread_conn(&err);
	if (!c) {
		reply_problem(req, &err);
		return false;
	}
	qs = auth_lookup(c, h, &key);
	if (qs < 0) {
		db_fail(c, qs, &err);
		reply_problem(req, &err);
		return false;
	}
	if (qs == 0) {
		reply_error(req, ERR_UNAUTHENTICATED, NULL, "unknown or revoked API key");
		return false;
	}
	req->authed = true;
	req->scope = key.scope;
	snprintf(req->key_id, sizeof req->key_id, "%s", key.key_id);
	snprintf(req->shop_id, sizeof req->shop_id, "%s", key.shop_id);
	if (!(req->route->scopes & key.scope)) {
		reply_error(req, ERR_FORBIDDEN, NULL,
			    "a %s key may not call %s %s", auth_scope_name(key.scope),
			    req->route->method, req->route->pattern);
		return false;
	}
	return true;
}

#define QUERY_MAX 16

struct query_check {
	const char *allowed;
	const char *seen[QUERY_MAX];
	int nseen;
	char bad[64];
	bool repeated;
	bool empty;
};

static bool
query_allowed(const char *allowed, const char *key)
{
	size_t n = strlen(key);

	while (allowed && *allowed) {
		size_t len = strcspn(allowed, " ");

		if (len == n && strncmp(allowed, key, n) == 0)
			return true;
		allowed += len;
		allowed += strspn(allowed, " ");
	}
	return false;
}

static enum MHD_Result
query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query_check *q = cls;

	(void)kind;
	(void)value;
	snprintf(q->bad, sizeof q->bad, "%s", key);
	if (!query_allowed(q->allowed, key))
		return MHD_NO;
	if (!value || !*value) {
		q->empty = true;
		return MHD_NO;
	}
	for (int i = 0; i < q->nseen; i++)
		if (strcmp(q->seen[i], key) == 0) {
			q->repeated = true;
			return MHD_NO;
		}
	if (q->nseen < QUERY_MAX)
		q->seen[q->nseen++] = key;
	q->bad[0] = '\0';
	return MHD_YES;
}

/* Unknown and repeated query parameters are refused, not ignored. */
static bool
query_known(struct request *req)
{
	struct query_check q = { .allowed = req->route->query };
	char ptr[96];

	q.bad[0] = '\0';
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
	if (!q.bad[0])
		return true;
	snprintf(ptr, sizeof ptr, "/query/%s", q.bad);
	reply_error(req, ERR_INVALID_PARAMETER, ptr, "%s query parameter: %s",
		    q.repeated ? "repeated" : q.empty ? "empty" : "unknown", q.bad);
	return false;
}

static bool
idempotency_header(struct request *req)
{
	const char *k = request_header(req, "Idempotency-Key");
	size_t n;

	if (!k || !(req->route->flags & ROUTE_IDEMPOTENT))
		return true;
	n = strlen(k);
	for (const char *p = k; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			n = 0;
	if (n < 1 || n > 255) {
		reply_error(req, ERR_INVALID_PARAMETER, "/header/Idempotency-Key",
			    "Idempotency-Key must be 1-255 printable ASCII characters");
		return false;
	}
	req->idem_key = k;
	return true;
}

/* True if a route of path picks its media type by Accept (its 405 says Vary too). */
static bool
path_negotiated(const char *path)
{
	const char *tmp[ROUTE_MAX_PARAMS];
	char buf[2048];

	for (size_t i = 0; i < router_route_count; i++)
		if ((router_routes[i].flags & ROUTE_NEGOTIATED) &&
		    match_pattern(router_routes[i].pattern, path, tmp, buf, sizeof buf))
			return true;
	return false;
}

/* Rebuy-Test-Now: only with --test-clock (production never backdates), and well-formed. */
static bool
test_clock_header(struct request *req)
{
	const char *v = request_header(req, API_TEST_NOW);

	if (!v)
		return true;
	if (!api_test_clock)
		reply_error(req, ERR_INVALID_PARAMETER, "/header/" API_TEST_NOW,
			    "the test clock is off: rebuyd takes " API_TEST_NOW
			    " only when started with --test-clock");
	else if (!jv_is_timestamp(v))
		reply_error(req, ERR_INVALID_PARAMETER, "/header/" API_TEST_NOW,
			    API_TEST_NOW " must be an RFC 3339 timestamp");
	else
		return true;
	return false;
}

void
router_dispatch(struct request *req)
{
	char allow[64];

	switch (router_match(req->method, req->path, &req->route_index, req->params,
			     req->params_buf, sizeof req->params_buf, allow,
			     sizeof allow)) {
	case ROUTER_NOT_FOUND:
		reply_error(req, ERR_NOT_FOUND, NULL, "no such path: %.100s", req->path);
		return;
	case ROUTER_METHOD_NOT_ALLOWED:
		reply_error(req, ERR_METHOD_NOT_ALLOWED, NULL,
			    "%s is not allowed here; allowed: %s", req->method, allow);
		reply_header(req, MHD_HTTP_HEADER_ALLOW, allow);
		if (path_negotiated(req->path))
			reply_header(req, MHD_HTTP_HEADER_VARY, "Accept");
		return;
	case ROUTER_FOUND:
		break;
	}
	req->route = &router_routes[req->route_index];
	if (req->body_too_large) {
		reply_error(req, ERR_PAYLOAD_TOO_LARGE, NULL,
			    "request body exceeds %zu bytes", server_body_limit());
		return;
	}
	if (req->route->scopes && !authenticate(req))
		return;
	if (!query_known(req) || !idempotency_header(req) || !test_clock_header(req))
		return;
	req->route->handler(req);
}
