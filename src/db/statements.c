/*
 * statements.c — every module's prepared statements, prepared on each new
 * connection.  A module adds its table here and keeps the SQL beside its
 * code.
 */
#include <stddef.h>

#include "rebuy/analytics.h"
#include "rebuy/apikeys.h"
#include "rebuy/auth.h"
#include "rebuy/benefits.h"
#include "rebuy/customers.h"
#include "rebuy/db.h"
#include "rebuy/idempotency.h"
#include "rebuy/memberships.h"
#include "rebuy/orders.h"
#include "rebuy/rfm.h"
#include "rebuy/segments.h"
#include "rebuy/shops.h"
#include "rebuy/tiers.h"
#include "rebuy/wallets.h"
#include "rebuy/packages.h"
#include "rebuy/coupons.h"
#include "rebuy/traffic.h"

extern const struct db_stmt migrate_stmts[];

const struct db_stmt *const db_all_stmts[] = {
	migrate_stmts, auth_stmts, idem_stmts, shops_stmts, apikeys_stmts,
	customers_stmts, orders_stmts, analytics_stmts, traffic_stmts,
	segments_stmts, rfm_stmts, memberships_stmts, tiers_stmts, benefits_stmts,
	wallets_stmts, packages_stmts, coupons_stmts, NULL,
};
