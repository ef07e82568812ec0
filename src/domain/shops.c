/*
 * shops.c — create, read and update shops; the first admin key is made in
 * the same transaction as the shop, so a shop is never left without one.
 */
#include <stdlib.h>
#include <string.h>

#include "rebuy/apikeys.h"
#include "rebuy/orders.h"
#include "rebuy/shops.h"

const struct db_stmt shops_stmts[] = {
	{ "shops_insert",
	  "INSERT INTO shops AS s (name, currency, timezone) VALUES ($1, $2, $3)"
	  " RETURNING s.id, shop_json(s)" },
	{ "shops_tz_known", "SELECT 1 FROM pg_timezone_names WHERE name = $1" },
	{ "shops_get", "SELECT shop_json(s) FROM shops s WHERE s.id = $1" },
	/* settings merge member by member: a PATCH of one rule field keeps the rest */
	{ "shops_update",
	  "UPDATE shops s SET name = coalesce($2, s.name),"
	  " timezone = coalesce($3, s.timezone),"
	  " settings = CASE WHEN $4::jsonb IS NULL THEN s.settings"
	  "   ELSE jsonb_set(jsonb_set(s.settings, '{repurchase_rule}',"
	  "     (s.settings -> 'repurchase_rule') || coalesce($4::jsonb -> 'repurchase_rule', '{}')),"
	  "     '{segments}',"
	  "     coalesce(s.settings -> 'segments', '{}') || coalesce($4::jsonb -> 'segments', '{}'))"
	  /* rfm is one choice (a method and its thresholds): replaced whole */
	  "   || CASE WHEN $4::jsonb ? 'rfm' THEN jsonb_build_object('rfm', $4::jsonb -> 'rfm')"
	  "      ELSE '{}' END"
	  "   || CASE WHEN $4::jsonb ? 'balances' THEN jsonb_build_object('balances',"
	  "      coalesce(s.settings -> 'balances', '{}') || ($4::jsonb -> 'balances')) ELSE '{}' END"
	  "   END,"
	  " updated_at = now()"
	  " WHERE s.id = $1 RETURNING shop_json(s)" },
	{ NULL, NULL },
};

/*
 * Active ISO 4217 currencies a shop can trade in (funds, metals and test
 * codes left out).
 */
static const char currencies[] =
	"AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD "
	"BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP "
	"CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
	"GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES "
	"KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA "
	"MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD "
	"OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG "
	"SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP "
	"TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG "
	"XOF XPF YER ZAR ZMW ZWG ZWL";

bool
shops_currency_valid(const char *s)
{
	if (strlen(s) != 3)
		return false;
	/* codes sit at every fourth position; never read past the last */
	for (size_t i = 0; i + 3 <= sizeof currencies - 1; i += 4)
		if (memcmp(currencies + i, s, 3) == 0)
			return true;
	return false;
}

static enum db_qs
json_col(PGresult *r, int col, json_t **out)
{
	*out = json_loads(PQgetvalue(r, 0, col), 0, NULL);
	return *out ? DB_ONE_RESULT : DB_HARD_ERROR;
}

/* Validate the time zone against PostgreSQL's own database of zones. */
static enum db_qs
check_timezone(struct db_conn *c, const char *tz, struct err *err)
{
	const char *params[1] = { tz };
	PGresult *r;
	enum db_qs qs = db_exec(c, "shops_tz_known", 1, params, &r);

	PQclear(r);
	if (qs == 0) {
		err_set(err, ERR_VALIDATION, "/timezone",
			"/timezone: unknown time zone (use an IANA name such as Asia/Shanghai)");
		return DB_ABORT;
	}
	return qs;
}

enum db_qs
shops_create(struct db_conn *c, const struct shop_input *in, json_t **shop,
	     json_t **admin_key, struct err *err)
{
	const char *params[3] = { in->name, in->currency, in->timezone };
	PGresult *r = NULL;
	enum db_qs qs;

	*shop = *admin_key = NULL;
	if (!shops_currency_valid(in->currency)) {
		err_set(err, ERR_VALIDATION, "/currency",
			"/currency: not an active ISO 4217 currency code");
		return DB_ABORT;
	}
	qs = check_timezone(c, in->timezone, err);
	if (qs < 0)
		return qs;
	qs = db_exec(c, "shops_insert", 3, params, &r);
	if (qs <= 0)
		goto out;
	qs = json_col(r, 1, shop);
	if (qs < 0)
		goto out;
	if (in->settings) { /* defaults first, then the given members */
		const struct shop_input patch = { .settings = in->settings,
						  .new_rule = in->new_rule };

		json_decref(*shop);
		*shop = NULL;
		qs = shops_patch(c, PQgetvalue(r, 0, 0), &patch, shop, err);
		if (qs <= 0)
			goto out;
	}
	qs = apikeys_create(c, PQgetvalue(r, 0, 0), "initial admin key", "admin",
			    admin_key, err);
out:
	PQclear(r);
	if (qs < 0) {
		json_decref(*shop);
		*shop = NULL;
	}
	return qs;
}

enum db_qs
shops_get(struct db_conn *c, const char *id, json_t **shop)
{
	const char *params[1] = { id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "shops_get", 1, params, &r);

	if (qs > 0)
		qs = json_col(r, 0, shop);
	PQclear(r);
	return qs;
}

enum db_qs
shops_patch(struct db_conn *c, const char *id, const struct shop_input *in,
	    json_t **shop, struct err *err)
{
	const char *params[4] = { id, in->name, in->timezone, in->settings };
	PGresult *r;
	enum db_qs qs;

	if (in->timezone) {
		qs = check_timezone(c, in->timezone, err);
		if (qs < 0)
			return qs;
		/* a new zone rebuilds the shop's histograms: a minute or more at 10M orders */
		qs = db_untimed(c);
		if (qs < 0)
			return qs;
	}
	qs = db_exec(c, "shops_update", 4, params, &r);
	if (qs > 0)
		qs = json_col(r, 0, shop);
	PQclear(r);
	if (qs > 0 && in->new_rule) {
		/* a new rule changes which orders count: every customer's facts */
		enum db_qs rq = orders_refresh_shop(c, id);

		if (rq < 0) {
			json_decref(*shop);
			*shop = NULL;
			return rq;
		}
	}
	return qs;
}
