/*
 * customers.c — profiles keyed by the storefront's id.
 *
 * PUT replaces the profile.  Consent keeps its own clock: the time a
 * channel's consent was last given or withdrawn changes only when the
 * answer changes (or the storefront says when it happened), because that
 * time is the merchant's proof of consent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/customers.h"

const char *const customer_channel_names[CHANNEL__COUNT] = { "email", "sms", "wechat" };

#define CONSENT_AT(ch, g, at)                                                   \
	" consent_" ch "_at = CASE WHEN " at "::timestamptz IS NOT NULL THEN " at \
	"::timestamptz WHEN c.consent_" ch " <> EXCLUDED.consent_" ch            \
	" THEN now() ELSE c.consent_" ch "_at END,"

const struct db_stmt customers_stmts[] = {
	/* the lock order changes take (customer_facts_refresh) */
	{ "customers_lock",
	  "SELECT seq FROM customers WHERE shop_id = $1 AND id = $2 AND erased_at IS NULL"
	  " FOR NO KEY UPDATE" },
	{ "customers_put",
	  "INSERT INTO customers AS c (shop_id, id, name, email, phone, tags, attributes,"
	  "  consent_email, consent_email_at, consent_sms, consent_sms_at,"
	  "  consent_wechat, consent_wechat_at)"
	  " VALUES ($1, $2, $3, $4, $5, ARRAY(SELECT t FROM jsonb_array_elements_text($6::jsonb)"
	  "   WITH ORDINALITY AS x(t, n) ORDER BY n),"
	  "  coalesce(($7::jsonb)->'attributes', '{}'),"
	  "  $8::boolean, coalesce($9::timestamptz, CASE WHEN $8::boolean THEN now() END),"
	  "  $10::boolean, coalesce($11::timestamptz, CASE WHEN $10::boolean THEN now() END),"
	  "  $12::boolean, coalesce($13::timestamptz, CASE WHEN $12::boolean THEN now() END))"
	  " ON CONFLICT (shop_id, id) DO UPDATE SET name = EXCLUDED.name,"
	  "  email = EXCLUDED.email, phone = EXCLUDED.phone, tags = EXCLUDED.tags,"
	  "  attributes = EXCLUDED.attributes,"
	  "  consent_email = EXCLUDED.consent_email,"
	  CONSENT_AT("email", "$8", "$9")
	  "  consent_sms = EXCLUDED.consent_sms,"
	  CONSENT_AT("sms", "$10", "$11")
	  "  consent_wechat = EXCLUDED.consent_wechat,"
	  CONSENT_AT("wechat", "$12", "$13")
	  "  updated_at = now(), erased_at = NULL"
	  " RETURNING (xmax = 0), customer_json(c)" },
	{ "customers_get",
	  "SELECT customer_json(c) FROM customers c WHERE c.shop_id = $1 AND c.id = $2" },
	{ "customers_erase",
	  "UPDATE customers c SET name = NULL, email = NULL, phone = NULL, tags = '{}',"
	  "  attributes = '{}',"
	  "  consent_email_at = CASE WHEN consent_email THEN now() ELSE consent_email_at END,"
	  "  consent_sms_at = CASE WHEN consent_sms THEN now() ELSE consent_sms_at END,"
	  "  consent_wechat_at = CASE WHEN consent_wechat THEN now() ELSE consent_wechat_at END,"
	  "  consent_email = false, consent_sms = false, consent_wechat = false,"
	  "  erased_at = now(), updated_at = now()"
	  " WHERE c.shop_id = $1 AND c.id = $2 AND c.erased_at IS NULL" },
	{ "customers_exists",
	  "SELECT 1 FROM customers WHERE shop_id = $1 AND id = $2" },
	/* one statement for every filter combination: NULL means "any" */
	{ "customers_list",
	  "SELECT c.seq, customer_json(c) FROM customers c"
	  " WHERE c.shop_id = $1 AND c.seq > $2"
	  "   AND ($3::text IS NULL OR c.tags @> ARRAY[$3::text])"
	  "   AND ($4::text IS NULL"
	  "        OR ($4 = 'email' AND c.consent_email)"
	  "        OR ($4 = 'sms' AND c.consent_sms)"
	  "        OR ($4 = 'wechat' AND c.consent_wechat))"
	  "   AND ($5::timestamptz IS NULL OR c.created_at >= $5::timestamptz)"
	  "   AND ($6::timestamptz IS NULL OR c.created_at < $6::timestamptz)"
	  " ORDER BY c.seq LIMIT $7" },
	{ NULL, NULL },
};

bool
customers_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 128)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._:@-", *p)))
			return false;
	return true;
}

const char *
customers_check_id(const char *id)
{
	return customers_id_valid(id) ? NULL : "must be 1-128 characters of A-Z a-z 0-9 . _ : @ -";
}

enum db_qs
customers_put(struct db_conn *c, const char *shop_id, const char *id,
	      const struct customer_input *in, char **customer, bool *created)
{
	char *tags = json_dumps(in->tags, JSON_COMPACT);
	const char *params[13] = { shop_id, id, in->name, in->email, in->phone, tags,
				   in->attributes_doc };
	PGresult *r = NULL;
	enum db_qs qs = DB_HARD_ERROR;

	if (!tags)
		goto out;
	for (int ch = 0; ch < CHANNEL__COUNT; ch++) {
		params[7 + 2 * ch] = in->consent[ch].granted ? "true" : "false";
		params[8 + 2 * ch] = in->consent[ch].at;
	}
	qs = db_exec(c, "customers_put", 13, params, &r);
	if (qs > 0) {
		*created = PQgetvalue(r, 0, 0)[0] == 't';
		*customer = strdup(PQgetvalue(r, 0, 1));
		if (!*customer)
			qs = DB_HARD_ERROR;
	}
out:
	PQclear(r);
	free(tags);
	return qs;
}

enum db_qs
customers_get(struct db_conn *c, const char *shop_id, const char *id,
	      char **customer)
{
	const char *params[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "customers_get", 2, params, &r);

	if (qs > 0) {
		*customer = strdup(PQgetvalue(r, 0, 0));
		if (!*customer)
			qs = DB_HARD_ERROR;
	}
	PQclear(r);
	return qs;
}

enum db_qs
customers_erase(struct db_conn *c, const char *shop_id, const char *id)
{
	const char *params[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "customers_erase", 2, params, &r);

	PQclear(r);
	if (qs != 0)
		return qs;
	/* nothing updated: already erased (fine) or never existed */
	qs = db_exec(c, "customers_exists", 2, params, &r);
	PQclear(r);
	return qs;
}

enum db_qs
customers_list(struct db_conn *c, const char *shop_id,
	       const struct customer_filter *f, char **items, long long *next)
{
	char after[24], limit[16];
	const char *params[7] = {
		shop_id, after, f->tag,
		f->consent >= 0 ? customer_channel_names[f->consent] : NULL,
		f->created_after, f->created_before, limit,
	};
	PGresult *r;
	enum db_qs qs;
	int rows;
	char *out;

	snprintf(after, sizeof after, "%lld", f->after);
	/* one extra row tells whether another page follows */
	snprintf(limit, sizeof limit, "%d", f->limit + 1);
	*next = 0;
	*items = NULL;
	qs = db_exec(c, "customers_list", 7, params, &r);
	if (qs < 0)
		return qs;
	rows = (int)qs > f->limit ? f->limit : (int)qs;
	out = db_json_array(r, 1, rows);
	if (!out) {
		PQclear(r);
		return DB_HARD_ERROR;
	}
	if ((int)qs > f->limit)
		*next = atoll(PQgetvalue(r, rows - 1, 0));
	PQclear(r);
	*items = out;
	return qs;
}

enum db_qs
customers_lock(struct db_conn *c, const char *shop_id, const char *id, char **seq)
{
	const char *p[2] = { shop_id, id };

	return db_exec_text(c, "customers_lock", 2, p, seq);
}
