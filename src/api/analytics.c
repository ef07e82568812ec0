/*
 * analytics.c — GET /v1/metrics/...: the repurchase metrics of the caller's
 * shop.  Parse the query, one domain call, reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/analytics.h"
#include "rebuy/api.h"

struct metrics_call {
	const char *shop_id;
	struct analytics_query q;
	enum db_qs (*fn)(struct db_conn *, const char *, const struct analytics_query *,
			 json_t **, struct err *);
};

static enum db_qs
run(struct db_conn *c, void *cls, struct api_result *out, struct err *err)
{
	struct metrics_call *call = cls;
	enum db_qs qs = call->fn(c, call->shop_id, &call->q, &out->body, err);

	if (qs >= 0)
		out->status = 200;
	return qs;
}

/* digits only (no sign, no blanks) within [lo, hi]; else 0 */
static long
whole_in(const char *s, long lo, long hi)
{
	long v = strspn(s, "0123456789") == strlen(s) ? strtol(s, NULL, 10) : 0;

	return v >= lo && v <= hi ? v : 0;
}

static const char *
check_days(const char *s)
{
	return whole_in(s, 1, 3650) ? NULL : "must be a whole number of days from 1 to 3650";
}

static const char *
check_interval(const char *s)
{
	return strcmp(s, "week") == 0 || strcmp(s, "month") == 0 ? NULL : "must be week or month";
}

/* from, to, as_of, channel: what every metric takes. */
static bool
common_params(struct request *req, struct analytics_query *q)
{
	return api_query_param(req, "from", analytics_check_date, 64, &q->from) &&
	       api_query_param(req, "to", analytics_check_date, 64, &q->to) &&
	       api_query_param(req, "as_of", analytics_check_date, 64, &q->as_of) &&
	       api_query_param(req, "channel", jv_check_token, 64, &q->channel);
}

void
api_metrics_repurchase(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_repurchase };
	const char *w;

	if (!common_params(req, &call.q) ||
	    !api_query_param(req, "window_days", check_days, 64, &w) ||
	    !api_query_param(req, "interval", check_interval, 64, &call.q.interval))
		return;
	call.q.window_days = w ? atoi(w) : 90;
	api_run(req, run, &call);
}

void
api_metrics_second_purchase(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_second_purchase };

	if (!common_params(req, &call.q) ||
	    !api_query_param(req, "category", jv_check_token, 64, &call.q.category))
		return;
	api_run(req, run, &call);
}

static const char *
check_periods(const char *s)
{
	return whole_in(s, 1, 600) ? NULL : "must be a whole number from 1 to 600";
}

void
api_metrics_cohorts(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_cohorts };
	const char *periods;

	if (!common_params(req, &call.q) ||
	    !api_query_param(req, "interval", check_interval, 64, &call.q.interval) ||
	    !api_query_param(req, "periods", check_periods, 64, &periods))
		return;
	call.q.periods = periods ? atoi(periods) : 0;
	api_run(req, run, &call);
}

/* Revenue mix and sales decomposition take the same parameters. */
static void
sales_metric(struct request *req,
	     enum db_qs (*fn)(struct db_conn *, const char *, const struct analytics_query *,
			      json_t **, struct err *))
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = fn };

	if (!common_params(req, &call.q) ||
	    !api_query_param(req, "interval", check_interval, 64, &call.q.interval))
		return;
	api_run(req, run, &call);
}

void
api_metrics_revenue_mix(struct request *req)
{
	sales_metric(req, analytics_revenue_mix);
}

void
api_metrics_sales_decomposition(struct request *req)
{
	sales_metric(req, analytics_sales_decomposition);
}

void
api_metrics_first_order(struct request *req)
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = analytics_first_order };
	const char *w;

	if (!api_query_param(req, "from", analytics_check_date, 64, &call.q.from) ||
	    !api_query_param(req, "to", analytics_check_date, 64, &call.q.to) ||
	    !api_query_param(req, "as_of", analytics_check_date, 64, &call.q.as_of) ||
	    !api_query_param(req, "window_days", check_days, 64, &w))
		return;
	call.q.window_days = w ? atoi(w) : 90;
	api_run(req, run, &call);
}

/* Group comparisons (members, wallet holders) take from, to and as_of only. */
static void
groups_metric(struct request *req,
	      enum db_qs (*fn)(struct db_conn *, const char *, const struct analytics_query *,
			       json_t **, struct err *))
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = fn };

	if (!api_query_param(req, "from", analytics_check_date, 64, &call.q.from) ||
	    !api_query_param(req, "to", analytics_check_date, 64, &call.q.to) ||
	    !api_query_param(req, "as_of", analytics_check_date, 64, &call.q.as_of))
		return;
	api_run(req, run, &call);
}

void
api_metrics_membership(struct request *req)
{
	groups_metric(req, analytics_membership);
}

void
api_metrics_wallet_holders(struct request *req)
{
	groups_metric(req, analytics_wallet_holders);
}

void
api_metrics_package_holders(struct request *req)
{
	groups_metric(req, analytics_package_holders);
}

/* The money reports as of a date: liability, package breakage, coupon redemption. */
static void
as_of_metric(struct request *req, enum db_qs (*fn)(struct db_conn *, const char *,
						   const struct analytics_query *, json_t **,
						   struct err *))
{
	struct metrics_call call = { .shop_id = req->shop_id, .fn = fn };

	if (!api_query_param(req, "as_of", analytics_check_date, 64, &call.q.as_of))
		return;
	api_run(req, run, &call);
}

void
api_metrics_package_breakage(struct request *req)
{
	as_of_metric(req, analytics_package_breakage);
}

void
api_metrics_coupon_redemption(struct request *req)
{
	as_of_metric(req, analytics_coupon_redemption);
}

void
api_metrics_prepaid_liability(struct request *req)
{
	as_of_metric(req, analytics_prepaid_liability);
}
