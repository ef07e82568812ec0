/*
 * traffic.h — the storefront's daily traffic feed (visitors and sessions
 * per day and channel), the visitors term of the sales decomposition.
 */
#ifndef REBUY_TRAFFIC_H
#define REBUY_TRAFFIC_H

#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/jv.h"

extern const struct db_stmt traffic_stmts[];

/* POST /v1/traffic body: {"days": [{date, channel, visitors, sessions}]} */
extern const struct jv_field traffic_body_spec[];

/*
 * Store each day (replacing what was posted before for that date and
 * channel).  days is validated against traffic_body_spec.  ERR_VALIDATION
 * for a date after today in the shop's zone or a (date, channel) given
 * twice; nothing is stored then.  *out: {"days", "created", "updated"}.
 */
enum db_qs traffic_post(struct db_conn *c, const char *shop_id, json_t *days, json_t **out,
			struct err *err);

#endif
