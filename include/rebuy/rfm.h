/*
 * rfm.h — RFM scores of a shop's customers (recency, frequency, monetary
 * value, 1-5 each, by quintiles or the shop's thresholds), the map from
 * R x F to named segments, and the summary per segment.  Computed from the
 * customer facts as of the request.
 */
#ifndef REBUY_RFM_H
#define REBUY_RFM_H

#include <jansson.h>
#include "rebuy/db.h"
#include "rebuy/err.h"
#include "rebuy/jv.h"

extern const struct db_stmt rfm_stmts[];

/*
 * SQL common table expressions that score every scored customer, ending
 * in g(customer_seq, …, r, f, m, seg): seg is the 1-based entry of the
 * map.  They read p(today, tz, rfm, lapse_days), $1 (the shop) and $2, $3
 * (the map as rfm_map_params gives it).  For queries composed elsewhere
 * (custom segments that filter on RFM).
 */
extern const char rfm_scored_ctes[];

/*
 * The shop's map as the parameters of rfm_scored_ctes (cells, lapsed:
 * integer[] literals) and the names of its entries in order (*names, a
 * malloc'd JSON array text).
 */
enum db_qs rfm_map_params(struct db_conn *c, const char *shop_id, char cells[128],
			  char lapsed[128], char **names);

/* settings.rfm: {"method": "quintiles"} or thresholds; pointer under /settings/rfm. */
bool rfm_settings_check(const json_t *rfm, struct err *err);

/* PUT /v1/rfm/map body spec and its deeper check (every R x F cell once). */
extern const struct jv_field rfm_map_spec[];

/* The shop's map: {"segments": [...], "default": bool}. */
enum db_qs rfm_map_get(struct db_conn *c, const char *shop_id, json_t **out);

/* Replace the map (body validated against rfm_map_spec); ERR_VALIDATION if it does not tile. */
enum db_qs rfm_map_put(struct db_conn *c, const char *shop_id, const json_t *body, json_t **out,
		       struct err *err);

/* Customers, revenue and averages per map segment. */
enum db_qs rfm_summary(struct db_conn *c, const char *shop_id, json_t **out);

/* {"r","f","m","segment"} of one customer (by id) as JSON text, or "null". */
enum db_qs rfm_customer(struct db_conn *c, const char *shop_id, const char *customer_id,
			char **json);

/* Add "rfm" to a Customer object's JSON text (*customer, malloc'd, replaced). */
enum db_qs rfm_attach(struct db_conn *c, const char *shop_id, const char *customer_id,
		      char **customer);

#endif
