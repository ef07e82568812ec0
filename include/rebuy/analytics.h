/*
 * analytics.h — repurchase metrics of a shop (the /v1/metrics API),
 * computed from the stored facts (customer_facts, customer_category_facts,
 * purchase_occasions), current with every order write: no batch, no lag.
 *
 * Dates are calendar dates in the shop's time zone.  Every answer carries
 * its definition: the rule, the range, the cut-off and the filters.
 */
#ifndef REBUY_ANALYTICS_H
#define REBUY_ANALYTICS_H

#include <jansson.h>
#include "rebuy/db.h"

extern const struct db_stmt analytics_stmts[];

/* What every metric is asked for; NULL members take their defaults. */
struct analytics_query {
	const char *from, *to, *as_of;  /* YYYY-MM-DD, already checked as dates */
	const char *channel;            /* first order's channel, or NULL */
	const char *category;           /* time to second purchase only */
	int window_days;                /* repurchase, first-order */
	const char *interval;           /* "week", "month" or NULL */
	int periods;                    /* cohorts: most periods per cohort, 0 = all */
};

/* jv / query check: NULL if s is a real calendar date written YYYY-MM-DD, else why not. */
const char *analytics_check_date(const char *s);

/*
 * Repurchase rates (returning customer, in-period repeat, N-day) over the
 * range, and per week or month when asked.  DB_ABORT with
 * ERR_INVALID_PARAMETER when the dates do not fit together.
 */
enum db_qs analytics_repurchase(struct db_conn *c, const char *shop_id,
			      const struct analytics_query *q, json_t **out, struct err *err);

/* Time to second purchase, overall and per category, with Kaplan–Meier. */
enum db_qs analytics_second_purchase(struct db_conn *c, const char *shop_id,
				   const struct analytics_query *q, json_t **out,
				   struct err *err);

/* Cohort retention: cohorts by month (week) of first purchase × periods since. */
enum db_qs analytics_cohorts(struct db_conn *c, const char *shop_id,
			     const struct analytics_query *q, json_t **out, struct err *err);

/* Revenue and orders from first vs repeat purchases, AOV, days between orders. */
enum db_qs analytics_revenue_mix(struct db_conn *c, const char *shop_id,
				 const struct analytics_query *q, json_t **out, struct err *err);

/* Repurchase of a cohort by the product roles and the channel of the first order. */
enum db_qs analytics_first_order(struct db_conn *c, const char *shop_id,
				 const struct analytics_query *q, json_t **out, struct err *err);

/* Sales = visitors × conversion × AOV × (1 + repurchase), visitors from the traffic feed. */
enum db_qs analytics_sales_decomposition(struct db_conn *c, const char *shop_id,
					 const struct analytics_query *q, json_t **out,
					 struct err *err);

/*
 * Repurchase of paid members vs non-members and per tier held at the end
 * of the range: customers, repeat customers, orders, days between orders.
 */
enum db_qs analytics_membership(struct db_conn *c, const char *shop_id,
				const struct analytics_query *q, json_t **out, struct err *err);

/* The same comparison for prepaid wallet holders vs non-holders. */
enum db_qs analytics_wallet_holders(struct db_conn *c, const char *shop_id,
				    const struct analytics_query *q, json_t **out, struct err *err);

/*
 * Prepaid liability at the end of as_of (or now, if sooner): principal
 * outstanding (deferred revenue), bonus available, scheduled and expired
 * (breakage), and the bonus per offer.  Due releases and expiries are
 * posted first.
 */
enum db_qs analytics_prepaid_liability(struct db_conn *c, const char *shop_id,
				       const struct analytics_query *q, json_t **out,
				       struct err *err);

/*
 * Prepaid packages at the end of as_of, per plan and in total: uses sold,
 * redeemed, expired, refunded and outstanding, usage and breakage rates,
 * and the money (cash, recognised, breakage, refunded, deferred).
 */
enum db_qs analytics_package_breakage(struct db_conn *c, const char *shop_id,
				      const struct analytics_query *q, json_t **out,
				      struct err *err);

/* Coupons at the end of as_of per pack: issued, redeemed, expired, by number and by month. */
enum db_qs analytics_coupon_redemption(struct db_conn *c, const char *shop_id,
				       const struct analytics_query *q, json_t **out,
				       struct err *err);

/* Visits per customer and days between visits of package holders vs the others. */
enum db_qs analytics_package_holders(struct db_conn *c, const char *shop_id,
				     const struct analytics_query *q, json_t **out,
				     struct err *err);

#endif
