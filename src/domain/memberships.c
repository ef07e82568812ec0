/*
 * memberships.c — paid memberships; see include/rebuy/memberships.h.
 *
 * The Membership object is rendered by membership_json() (migration
 * 0013), so every call answers from what is stored, after its writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/benefits.h"
#include "rebuy/keys.h"
#include "rebuy/memberships.h"

/* a term of n days is n × 24 hours (the API's days are not calendar days) */
#define DAYS(n) "make_interval(hours => 24 * " n "::integer)"

const struct db_stmt memberships_stmts[] = {
	/* xmax is 0 on a freshly inserted row version: tells created from replaced */
	{ "memberships_plan_put",
	  "INSERT INTO membership_plans AS p (shop_id, code, name, fee, duration_days, discount_bp,"
	  "   active, benefits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	  " ON CONFLICT (shop_id, code) DO UPDATE SET name = excluded.name, fee = excluded.fee,"
	  "   duration_days = excluded.duration_days, discount_bp = excluded.discount_bp,"
	  "   active = excluded.active, benefits = excluded.benefits, updated_at = rebuy_now()"
	  " RETURNING (p.xmax = 0), membership_plan_json(p)::text" },
	{ "memberships_plan_get",
	  "SELECT membership_plan_json(p)::text FROM membership_plans p"
	  " WHERE p.shop_id = $1 AND p.code = $2" },
	{ "memberships_plan_list",
	  "SELECT json_build_object('items', coalesce(json_agg(membership_plan_json(p)"
	  "   ORDER BY p.code COLLATE \"C\"), '[]'))::text"
	  " FROM membership_plans p WHERE p.shop_id = $1" },
	/*
	 * The plan for a sale or renewal, shared-locked so that a change waits
	 * for the sale; and whether $3 (starts_at, may be NULL) is in the future.
	 */
	{ "memberships_plan_for_sale",
	  "SELECT p.fee, p.duration_days, p.discount_bp, p.active,"
	  "   coalesce($3::timestamptz > rebuy_now(), false), p.benefits::text"
	  " FROM membership_plans p WHERE p.shop_id = $1 AND p.code = $2 FOR SHARE" },
	/* for the reads: an erased customer's memberships stay readable */
	{ "memberships_customer", "SELECT seq FROM customers WHERE shop_id = $1 AND id = $2" },
	/* for a sale: share-locked, so an erasure cannot slip in before the sale commits */
	{ "memberships_customer_for_sale",
	  "SELECT seq FROM customers WHERE shop_id = $1 AND id = $2 AND erased_at IS NULL FOR SHARE" },
	/*
	 * A sale and its first term.  $2 customer seq, $3 plan, $4 card number,
	 * $5 starts_at or NULL (now), $6 days, $7 fee, $8 discount, $9 benefits.
	 * No row: the card number is taken.
	 */
	{ "memberships_insert",
	  "WITH m AS (INSERT INTO memberships (shop_id, customer_seq, plan_code, card_number,"
	  "     starts_at, ends_at)"
	  "   VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, rebuy_now()),"
	  "     coalesce($5::timestamptz, rebuy_now()) + " DAYS("$6") ")"
	  "   ON CONFLICT (shop_id, card_number) DO NOTHING RETURNING seq, id, starts_at, ends_at),"
	  " t AS (INSERT INTO membership_terms (membership_seq, term_no, starts_at, ends_at, fee,"
	  "     duration_days, discount_bp, benefits)"
	  "   SELECT m.seq, 1, m.starts_at, m.ends_at, $7, $6, $8, $9 FROM m)"
	  " SELECT m.id::text FROM m" },
	{ "memberships_get",
	  "SELECT membership_json(m)::text FROM memberships m WHERE m.shop_id = $1 AND m.id = $2::uuid" },
	/* $1 customer seq */
	{ "memberships_of_customer",
	  "SELECT json_build_object('items', coalesce(json_agg(membership_json(m)"
	  "   ORDER BY m.starts_at DESC, m.id), '[]'))::text"
	  " FROM memberships m WHERE m.customer_seq = $1" },
	/* what applies now: tier, active memberships, the better discount, benefit counts */
	{ "memberships_current",
	  "SELECT customer_membership_json(c.shop_id, c.seq, c.id, rebuy_now())::text"
	  " FROM customers c WHERE c.seq = $1" },
	/* locked for a renewal or cancellation: seq, plan, cancelled, expired */
	{ "memberships_lock",
	  "SELECT m.seq, m.plan_code, m.cancelled_at IS NOT NULL, m.ends_at <= rebuy_now()"
	  " FROM memberships m WHERE m.shop_id = $1 AND m.id = $2::uuid FOR UPDATE" },
	/*
	 * One more term from the current end (from now once expired): $1 seq,
	 * $2 fee, $3 days, $4 discount, $5 benefits.
	 */
	{ "memberships_renew",
	  "WITH t AS (INSERT INTO membership_terms (membership_seq, term_no, starts_at, ends_at, fee,"
	  "     duration_days, discount_bp, benefits)"
	  "   SELECT m.seq, (SELECT max(x.term_no) + 1 FROM membership_terms x"
	  "       WHERE x.membership_seq = m.seq),"
	  "     greatest(m.ends_at, rebuy_now()), greatest(m.ends_at, rebuy_now()) + " DAYS("$3") ","
	  "     $2, $3, $4, $5"
	  "   FROM memberships m WHERE m.seq = $1 RETURNING ends_at)"
	  " UPDATE memberships m SET ends_at = t.ends_at, updated_at = rebuy_now() FROM t WHERE m.seq = $1" },
	/*
	 * Cancel now.  $2 true: refund pro rata, per term: a term not started
	 * yet in full; the term in progress for its remaining whole days,
	 * fee × days ÷ duration rounded down; a term over, nothing.  Each term
	 * refunds at most its fee, so never more than was paid.
	 */
	{ "memberships_cancel",
	  "UPDATE memberships m SET cancelled_at = rebuy_now(), ends_at = rebuy_now(), updated_at = rebuy_now(),"
	  "   refunded = CASE WHEN $2::boolean THEN (SELECT coalesce(sum(CASE"
	  "       WHEN t.starts_at > rebuy_now() THEN t.fee"
	  "       WHEN t.ends_at > rebuy_now() THEN t.fee"
	  "         * floor(extract(epoch FROM t.ends_at - rebuy_now()) / 86400)::bigint / t.duration_days"
	  "       ELSE 0 END), 0)"
	  "     FROM membership_terms t WHERE t.membership_seq = m.seq) ELSE 0 END"
	  " WHERE m.seq = $1" },
	{ NULL, NULL },
};

const char *
memberships_check_card(const char *s)
{
	size_t n = strlen(s);

	if (n < 4 || n > 32 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return "must be 4-32 of letters, digits and -";
	return NULL;
}

/* 15 random digits and a Luhn check digit (what card readers and people check). */
static bool
generate_card(char out[17])
{
	unsigned char r[15];
	int sum = 0;

	if (!keys_random(r, sizeof r))
		return false;
	for (int i = 0; i < 15; i++)
		out[i] = (char)('0' + r[i] % 10); /* the bias of 256 % 10 does not matter here */
	/* from the right, every second digit doubled, starting with the one left of the check */
	for (int i = 14, k = 0; i >= 0; i--, k++) {
		int d = out[i] - '0';

		if (k % 2 == 0)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	out[15] = (char)('0' + (10 - sum % 10) % 10);
	out[16] = '\0';
	return true;
}

enum db_qs
memberships_plan_put(struct db_conn *c, const char *shop_id, const char *code,
		     const struct plan_input *in, bool *created, char **out, struct err *err)
{
	char fee[24], days[24], bp[24];
	const char *p[8] = { shop_id, code, in->name, fee, days, bp, in->active ? "t" : "f",
			     in->benefits };
	PGresult *r;
	enum db_qs qs = benefits_check_quotas(c, shop_id, in->benefits, "/benefits", err);

	if (qs < 0)
		return qs;

	snprintf(fee, sizeof fee, "%lld", in->fee);
	snprintf(days, sizeof days, "%lld", in->duration_days);
	snprintf(bp, sizeof bp, "%lld", in->discount_bp);
	qs = db_exec(c, "memberships_plan_put", 8, p, &r);
	if (qs <= 0)
		return qs < 0 ? qs : DB_HARD_ERROR;
	*created = PQgetvalue(r, 0, 0)[0] == 't';
	*out = strdup(PQgetvalue(r, 0, 1));
	PQclear(r);
	return *out ? DB_ONE_RESULT : DB_HARD_ERROR;
}

enum db_qs
memberships_plan_get(struct db_conn *c, const char *shop_id, const char *code, char **out)
{
	const char *p[2] = { shop_id, code };

	return code ? db_exec_text(c, "memberships_plan_get", 2, p, out)
		    : db_exec_text(c, "memberships_plan_list", 1, p, out);
}

/* The customer's seq by stmt (one of the two customer lookups); DB_NO_RESULTS if none. */
static enum db_qs
customer_seq(struct db_conn *c, const char *stmt, const char *shop_id, const char *id,
	     char seq[24])
{
	const char *p[2] = { shop_id, id };
	char *s = NULL;
	enum db_qs qs = db_exec_text(c, stmt, 2, p, &s);

	if (qs > 0)
		snprintf(seq, 24, "%s", s);
	free(s);
	return qs;
}

/* The plan's terms for a sale; ERR_VALIDATION /plan when it cannot be sold. */
struct plan_terms {
	char fee[24], days[16], bp[16];
	char *benefits; /* the plan's benefits as sold, malloc'd */
	bool future;    /* starts_at lies in the future */
};

static enum db_qs
plan_for_sale(struct db_conn *c, const char *shop_id, const char *plan, const char *starts_at,
	      struct plan_terms *t, struct err *err)
{
	const char *p[3] = { shop_id, plan, starts_at };
	PGresult *r;
	enum db_qs qs = db_exec(c, "memberships_plan_for_sale", 3, p, &r);

	if (qs < 0)
		return qs;
	if (qs == 0 || PQgetvalue(r, 0, 3)[0] != 't') {
		err_set(err, ERR_VALIDATION, "/plan", "/plan: %s", qs == 0 ? "no such plan"
			: "the plan is not sold any more (inactive)");
		PQclear(r);
		return DB_ABORT;
	}
	snprintf(t->fee, sizeof t->fee, "%s", PQgetvalue(r, 0, 0));
	snprintf(t->days, sizeof t->days, "%s", PQgetvalue(r, 0, 1));
	snprintf(t->bp, sizeof t->bp, "%s", PQgetvalue(r, 0, 2));
	t->future = PQgetvalue(r, 0, 4)[0] == 't';
	t->benefits = strdup(PQgetvalue(r, 0, 5));
	PQclear(r);
	return t->benefits ? DB_ONE_RESULT : DB_HARD_ERROR;
}

enum db_qs
memberships_buy(struct db_conn *c, const char *shop_id, const struct membership_purchase *in,
		char **out, char id[37], struct err *err)
{
	char seq[24], card[17];
	struct plan_terms t = { .benefits = NULL };
	char *made = NULL;
	enum db_qs qs = customer_seq(c, "memberships_customer_for_sale", shop_id, in->customer_id,
				     seq);

	*out = NULL;
	if (qs <= 0)
		return qs;
	qs = plan_for_sale(c, shop_id, in->plan, in->starts_at, &t, err);
	if (qs < 0)
		goto out;
	if (t.future) {
		err_set(err, ERR_VALIDATION, "/starts_at", "/starts_at: must not be in the future");
		qs = DB_ABORT;
		goto out;
	}
	/* a generated number that happens to be taken is drawn again */
	for (int attempt = 0; attempt < 5 && !made; attempt++) {
		const char *p[9] = { shop_id, seq, in->plan, in->card_number, in->starts_at,
				     t.days, t.fee, t.bp, t.benefits };

		if (!in->card_number) {
			if (!generate_card(card)) {
				qs = DB_HARD_ERROR;
				goto out;
			}
			p[3] = card;
		}
		qs = db_exec_text(c, "memberships_insert", 9, p, &made);
		if (qs < 0)
			goto out;
		if (qs == 0 && in->card_number) {
			err_set(err, ERR_CARD_NUMBER_TAKEN, "/card_number",
				"card number %s is already used in this shop", in->card_number);
			qs = DB_ABORT;
			goto out;
		}
	}
	if (!made) {
		qs = DB_HARD_ERROR;
		goto out;
	}
	snprintf(id, 37, "%s", made);
	qs = memberships_get(c, shop_id, id, out);
out:
	free(made);
	free(t.benefits);
	return qs;
}

enum db_qs
memberships_get(struct db_conn *c, const char *shop_id, const char *id, char **out)
{
	const char *p[2] = { shop_id, id };

	return db_exec_text(c, "memberships_get", 2, p, out);
}

enum db_qs
memberships_of_customer(struct db_conn *c, const char *shop_id, const char *customer_id,
			bool active_only, char **out)
{
	char seq[24];
	const char *p[2] = { seq, customer_id };
	enum db_qs qs = customer_seq(c, "memberships_customer", shop_id, customer_id, seq);

	if (qs <= 0)
		return qs;
	return active_only ? db_exec_text(c, "memberships_current", 1, p, out)
			   : db_exec_text(c, "memberships_of_customer", 1, p, out);
}

/* Lock membership id: its seq and plan; ERR_CONFLICT if cancelled (or expired, for cancel). */
static enum db_qs
lock(struct db_conn *c, const char *shop_id, const char *id, bool refuse_expired, char seq[24],
     char plan[65], struct err *err)
{
	const char *p[2] = { shop_id, id };
	PGresult *r;
	enum db_qs qs = db_exec(c, "memberships_lock", 2, p, &r);

	if (qs <= 0) {
		PQclear(r);
		return qs;
	}
	if (PQgetvalue(r, 0, 2)[0] == 't' || (refuse_expired && PQgetvalue(r, 0, 3)[0] == 't')) {
		err_set(err, ERR_CONFLICT, NULL, "membership %s is %s", id,
			PQgetvalue(r, 0, 2)[0] == 't' ? "cancelled" : "expired: nothing to cancel");
		PQclear(r);
		return DB_ABORT;
	}
	snprintf(seq, 24, "%s", PQgetvalue(r, 0, 0));
	snprintf(plan, 65, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	return DB_ONE_RESULT;
}

enum db_qs
memberships_renew(struct db_conn *c, const char *shop_id, const char *id, char **out,
		  struct err *err)
{
	char seq[24], plan[65];
	struct plan_terms t = { .benefits = NULL };
	enum db_qs qs = lock(c, shop_id, id, false, seq, plan, err);

	*out = NULL;
	if (qs <= 0)
		return qs;
	qs = plan_for_sale(c, shop_id, plan, NULL, &t, err);
	if (qs >= 0) {
		const char *p[5] = { seq, t.fee, t.days, t.bp, t.benefits };

		qs = db_exec_none(c, "memberships_renew", 5, p);
	}
	free(t.benefits);
	if (qs < 0)
		return qs;
	return memberships_get(c, shop_id, id, out);
}

enum db_qs
memberships_cancel(struct db_conn *c, const char *shop_id, const char *id, bool pro_rata,
		   char **out, struct err *err)
{
	char seq[24], plan[65];
	const char *p[2] = { seq, pro_rata ? "t" : "f" };
	enum db_qs qs = lock(c, shop_id, id, true, seq, plan, err);

	*out = NULL;
	if (qs <= 0)
		return qs;
	qs = db_exec_none(c, "memberships_cancel", 2, p);
	if (qs < 0)
		return qs;
	return memberships_get(c, shop_id, id, out);
}
