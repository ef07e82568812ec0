/*
 * import.c — history import; see include/rebuy/import.h.
 *
 * Orders are parsed and validated here, one at a time (constant memory),
 * and good ones are streamed with COPY into a temporary staging table;
 * set-based statements then add customers, orders and lines, skip orders
 * already present (re-runnable), and recompute the facts of every
 * affected customer, all in the one transaction.  The staging statements
 * name a temporary table, so they cannot be prepared when a connection
 * opens: they run with PQexecParams, still with parameters only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rebuy/csv.h"
#include "rebuy/customers.h"
#include "rebuy/fmt.h"
#include "rebuy/import.h"
#include "rebuy/jv.h"
#include "rebuy/orders.h"

#define COPY_BUFFER (256 * 1024)

static const char *const csv_header[] = {
	"order_id", "customer_id", "placed_at", "channel", "currency", "sku", "name",
	"category", "role", "quantity", "unit_price", "line_discount", "shipping",
	"order_discount", "total",
};
enum { C_ORDER, C_CUSTOMER, C_PLACED, C_CHANNEL, C_CURRENCY, C_SKU, C_NAME, C_CATEGORY,
       C_ROLE, C_QUANTITY, C_PRICE, C_LINE_DISCOUNT, C_SHIPPING, C_ORDER_DISCOUNT, C_TOTAL,
       C__COUNT };

struct importer {
	PGconn *pg;
	const char *shop_id;
	char currency[4];
	FILE *rejects;
	const char *rejects_path;
	char *copy;            /* COPY data waiting to be sent */
	size_t copy_len;
	unsigned long long rows, orders, staged, rejected, bytes, size;
	bool tty, failed;
	struct timespec start;
	double marks[6]; /* when each phase ended (elapsed), for the summary */
};

/* the import's phases, in order: what the summary says each took */
enum { P_READ, P_CUSTOMERS, P_ORDERS, P_LINES, P_FACTS, P_CHECKS, P__COUNT };
static const char *const phase_names[P__COUNT] = { "reading", "customers", "orders", "lines",
						   "facts", "checks" };

static double
elapsed(const struct importer *im)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - im->start.tv_sec) +
	       (double)(now.tv_nsec - im->start.tv_nsec) / 1e9;
}

static void
mark(struct importer *im, int phase)
{
	im->marks[phase] = elapsed(im);
}

static void
progress(struct importer *im, const char *phase, bool force)
{
	static unsigned long long last;
	int width = 30, filled;
	double pct, secs;

	if (!im->tty || (!force && im->rows - last < 20000))
		return;
	last = im->rows;
	pct = im->size ? (double)im->bytes * 100.0 / (double)im->size : 0;
	if (pct > 100)
		pct = 100;
	filled = (int)(pct * width / 100);
	secs = elapsed(im);
	fprintf(stderr, "\r  %-9s [%.*s%*s] %3.0f%%  %llu rows  %.0f rows/s  ", phase, filled,
		"##############################", width - filled, "", pct, im->rows,
		secs > 0 ? (double)im->rows / secs : 0.0);
	fflush(stderr);
}

static void
reject(struct importer *im, size_t row, const char *order_id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
reject(struct importer *im, size_t row, const char *order_id, const char *fmt, ...)
{
	char reason[400];
	json_t *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	err_utf8_clean(reason);
	im->rejected++;
	j = json_pack("{s:I, s:s?, s:s}", "row", (json_int_t)row, "order_id", order_id,
		      "reason", reason);
	if (!j) /* an order id that is not UTF-8: leave it out */
		j = json_pack("{s:I, s:n, s:s}", "row", (json_int_t)row, "order_id", "reason",
			      reason);
	if (j && json_dumpf(j, im->rejects, JSON_COMPACT) == 0)
		fputc('\n', im->rejects);
	json_decref(j);
}

/* COPY text format: \N for NULL; backslash, tab, newline, CR escaped. */
static bool
copy_field(struct importer *im, const char *s, bool last)
{
	size_t need = s ? strlen(s) * 2 + 2 : 3;

	if (im->copy_len + need > COPY_BUFFER) {
		if (PQputCopyData(im->pg, im->copy, (int)im->copy_len) != 1)
			return false;
		im->copy_len = 0;
	}
	if (!s) {
		memcpy(im->copy + im->copy_len, "\\N", 2);
		im->copy_len += 2;
	}
	for (; s && *s; s++) {
		char e = *s == '\\' ? '\\' : *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : 0;

		if (e) {
			im->copy[im->copy_len++] = '\\';
			im->copy[im->copy_len++] = e;
		} else {
			im->copy[im->copy_len++] = *s;
		}
	}
	im->copy[im->copy_len++] = last ? '\n' : '\t';
	return true;
}

static bool
copy_int(struct importer *im, long long v, bool last)
{
	char num[FMT_INT_MAX + 1];

	*fmt_int(num, v) = '\0';
	return copy_field(im, num, last);
}

/*
 * Validate one order (the PUT body plus its id) and stage it or reject it.
 * Staging has one row per line item, the order's own columns on its first
 * line only: the database then builds orders and lines with joins, and
 * never parses JSON.
 */
static void
take_order(struct importer *im, size_t row, const char *id, json_t *body)
{
	struct order_parsed p;
	struct err err;
	json_t *l;
	size_t i;
	bool ok = true;

	im->orders++;
	err_clear(&err);
	if (!id || !customers_id_valid(id)) {
		reject(im, row, id, "/id: %s", customers_check_id(id ? id : ""));
		return;
	}
	if (!jv_validate(body, orders_body_spec, "", &err)) {
		reject(im, row, id, "%s", err.message);
		return;
	}
	if (!orders_parse(body, &p, &err)) {
		reject(im, row, id, "%s", err.message);
		return;
	}
	if (strcmp(p.in.currency, im->currency) != 0) {
		reject(im, row, id, "/currency: the shop trades in %s, not %s", im->currency,
		       p.in.currency);
		orders_parsed_free(&p);
		return;
	}
	json_array_foreach(json_object_get(body, "lines"), i, l) {
		json_t *d = json_object_get(l, "discount");
		bool head = i == 0;

		ok = ok && copy_int(im, (long long)row, false) && copy_int(im, (long long)i + 1, false) &&
		     copy_field(im, id, false) &&
		     copy_field(im, head ? p.in.customer_id : NULL, false) &&
		     copy_field(im, head ? p.in.placed_at : NULL, false) &&
		     copy_field(im, head ? p.in.channel : NULL, false) &&
		     (head ? copy_int(im, p.in.shipping, false) : copy_field(im, NULL, false)) &&
		     (head ? copy_int(im, p.in.discount, false) : copy_field(im, NULL, false)) &&
		     (head ? copy_int(im, p.in.total, false) : copy_field(im, NULL, false)) &&
		     copy_field(im, head ? p.in.fingerprint : NULL, false) &&
		     copy_field(im, json_string_value(json_object_get(l, "sku")), false) &&
		     copy_field(im, json_string_value(json_object_get(l, "name")), false) &&
		     copy_field(im, json_string_value(json_object_get(l, "category")), false) &&
		     copy_field(im, json_string_value(json_object_get(l, "role")), false) &&
		     copy_int(im, json_integer_value(json_object_get(l, "quantity")), false) &&
		     copy_int(im, json_integer_value(json_object_get(l, "unit_price")), false) &&
		     copy_int(im, d ? json_integer_value(d) : 0, true);
	}
	if (ok)
		im->staged++;
	else
		im->failed = true;
	orders_parsed_free(&p);
}

static void
read_ndjson(struct importer *im, FILE *f)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;

	while (!im->failed && (n = getline(&line, &cap, f)) >= 0) {
		json_error_t jerr;
		json_t *body;
		const char *id;
		char *idcopy;

		lineno++;
		im->rows++;
		im->bytes += (unsigned long long)n;
		progress(im, "reading", false);
		if (strspn(line, " \t\r\n") == (size_t)n)
			continue;
		if (jv_depth(line, (size_t)n) > 32) {
			im->orders++;
			reject(im, lineno, NULL, "JSON nesting deeper than 32 levels");
			continue;
		}
		body = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
		if (!body || !json_is_object(body)) {
			im->orders++;
			reject(im, lineno, NULL, body ? "a line must be a JSON object"
						      : "invalid JSON: %s", jerr.text);
			json_decref(body);
			continue;
		}
		id = json_string_value(json_object_get(body, "id"));
		idcopy = id ? strdup(id) : NULL;
		json_object_del(body, "id");
		take_order(im, lineno, idcopy, body);
		free(idcopy);
		json_decref(body);
	}
	free(line);
	if (ferror(f))
		im->failed = true;
}

/* A CSV money or count column: empty means fallback (or absent if < 0). */
static json_t *
csv_int(const char *s, long long fallback, bool *bad)
{
	char *end;
	long long v;

	if (!*s)
		return fallback >= 0 ? json_integer(fallback) : NULL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || (s[0] == '+')) {
		*bad = true;
		return NULL;
	}
	return json_integer(v);
}

struct csv_order {
	json_t *body;
	char *id;
	size_t row;
	char *head[C__COUNT]; /* order-level columns of its first row */
	bool broken;
};

static void
csv_order_reset(struct csv_order *o)
{
	json_decref(o->body);
	free(o->id);
	for (int i = 0; i < C__COUNT; i++)
		free(o->head[i]);
	memset(o, 0, sizeof *o);
}

static void
csv_flush(struct importer *im, struct csv_order *o)
{
	if (o->body && !o->broken)
		take_order(im, o->row, o->id, o->body);
	csv_order_reset(o);
}

static const int order_level[] = { C_CUSTOMER, C_PLACED, C_CHANNEL, C_CURRENCY, C_SHIPPING,
				    C_ORDER_DISCOUNT, C_TOTAL };

/* Add one row to the order being assembled (starting a new one if needed). */
static void
csv_row(struct importer *im, struct csv_order *o, struct csv_record *rec)
{
	char **f = rec->fields;
	bool bad = false;
	json_t *line, *v;

	if (o->id && strcmp(o->id, f[C_ORDER]) != 0)
		csv_flush(im, o);
	if (!o->id) {
		o->id = strdup(f[C_ORDER]);
		o->row = rec->line;
		for (size_t i = 0; i < sizeof order_level / sizeof order_level[0]; i++)
			o->head[order_level[i]] = strdup(f[order_level[i]]);
		o->body = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "customer_id", f[C_CUSTOMER],
				    "placed_at", f[C_PLACED], "channel", f[C_CHANNEL],
				    "currency", f[C_CURRENCY], "lines");
		if (!o->body) {
			im->orders++;
			reject(im, rec->line, o->id, "text is not valid UTF-8");
			o->broken = true;
			return;
		}
		if ((v = csv_int(f[C_SHIPPING], 0, &bad)))
			json_object_set_new(o->body, "shipping", v);
		if ((v = csv_int(f[C_ORDER_DISCOUNT], 0, &bad)))
			json_object_set_new(o->body, "discount", v);
		if ((v = csv_int(f[C_TOTAL], -1, &bad)))
			json_object_set_new(o->body, "total", v);
		if (bad) {
			im->orders++;
			reject(im, rec->line, o->id,
			       "shipping, order_discount and total must be whole numbers of minor units");
			o->broken = true;
		}
	} else {
		for (size_t i = 0; i < sizeof order_level / sizeof order_level[0]; i++) {
			int col = order_level[i];

			if (!o->broken && strcmp(o->head[col], f[col]) != 0) {
				im->orders++;
				reject(im, rec->line, o->id,
				       "%s differs from row %zu of the same order", csv_header[col],
				       o->row);
				o->broken = true;
			}
		}
	}
	if (o->broken)
		return;
	line = json_pack("{s:s, s:s, s:s}", "sku", f[C_SKU], "category", f[C_CATEGORY], "role",
			 f[C_ROLE]);
	/* a name that is not UTF-8 must not drop out silently */
	if (line && *f[C_NAME] && json_object_set_new(line, "name", json_string(f[C_NAME])) != 0) {
		json_decref(line);
		line = NULL;
	}
	if (line && (v = csv_int(f[C_QUANTITY], -1, &bad)))
		json_object_set_new(line, "quantity", v);
	if (line && (v = csv_int(f[C_PRICE], -1, &bad)))
		json_object_set_new(line, "unit_price", v);
	if (line && (v = csv_int(f[C_LINE_DISCOUNT], 0, &bad)))
		json_object_set_new(line, "discount", v);
	if (!line || bad) {
		im->orders++;
		reject(im, rec->line, o->id, !line ? "text is not valid UTF-8"
				: "quantity, unit_price and line_discount must be whole numbers");
		json_decref(line);
		o->broken = true;
		return;
	}
	json_array_append_new(json_object_get(o->body, "lines"), line);
}

static int
read_csv(struct importer *im, FILE *f)
{
	struct csv_reader *r = csv_new(f);
	struct csv_order o = { 0 };
	struct csv_record rec;
	const char *why = NULL;
	int st, rc = 0;

	if (!r)
		return 1;
	st = csv_next(r, &rec, &why);
	if (st != 1 || rec.nfields != C__COUNT) {
		fprintf(stderr, "rebuyd: the first row must be the header:\n  ");
		for (int i = 0; i < C__COUNT; i++)
			fprintf(stderr, "%s%s", i ? "," : "", csv_header[i]);
		fputc('\n', stderr);
		rc = 2;
		goto out;
	}
	for (int i = 0; i < C__COUNT; i++)
		if (strcmp(rec.fields[i], csv_header[i]) != 0) {
			fprintf(stderr, "rebuyd: header column %d is \"%s\", expected \"%s\"\n", i + 1,
				rec.fields[i], csv_header[i]);
			rc = 2;
			goto out;
		}
	while (!im->failed && (st = csv_next(r, &rec, &why)) != 0) {
		im->rows++;
		im->bytes = csv_offset(r);
		progress(im, "reading", false);
		if (st == -2) {
			im->failed = true;
			break;
		}
		if (st == -1) {
			reject(im, rec.line, NULL, "malformed CSV: %s", why);
			continue;
		}
		if (rec.nfields == 1 && !rec.fields[0][0])
			continue; /* blank line */
		if (rec.nfields != C__COUNT) {
			reject(im, rec.line, NULL, "expected %d columns, found %zu", C__COUNT,
			       rec.nfields);
			continue;
		}
		csv_row(im, &o, &rec);
	}
	csv_flush(im, &o);
out:
	csv_order_reset(&o);
	csv_free(r);
	return rc;
}

static bool
exec_ok(struct importer *im, const char *sql, int n, const char *const *params,
	unsigned long long *count)
{
	PGresult *r = PQexecParams(im->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "\nrebuyd: import failed: %s", PQresultErrorMessage(r));
	else if (count)
		*count = strtoull(st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0)
									  : PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return ok;
}

/* The set-based half: customers, orders, lines, facts; counts; conflicts. */
static bool
write_orders(struct importer *im, unsigned long long *imported, unsigned long long *unchanged)
{
	const char *params[2] = { im->shop_id, im->currency };
	PGresult *r;

	mark(im, P_READ);
	progress(im, "writing", true);
	/* temporary tables have no statistics until asked: plans need them */
	if (!exec_ok(im, "ANALYZE import_rows", 0, NULL, NULL))
		return false;
	/*
	 * The heads: one row per order.  The first occurrence of an id in the
	 * file wins; later ones are only compared with what is stored.
	 */
	if (!exec_ok(im, "CREATE TEMP TABLE import_heads ON COMMIT DROP AS"
			 " SELECT order_row, id, customer_id, placed_at, channel, shipping, discount,"
			 "  total, fingerprint, false AS dup"
			 " FROM import_rows WHERE line_no = 1", 0, NULL, NULL) ||
	    !exec_ok(im, "UPDATE import_heads h SET dup = true FROM ("
			 "  SELECT id, min(order_row) AS first FROM import_heads"
			 "  GROUP BY id HAVING count(*) > 1) d"
			 " WHERE h.id = d.id AND h.order_row > d.first", 0, NULL, NULL) ||
	    !exec_ok(im, "ANALYZE import_heads", 0, NULL, NULL))
		return false;
	if (!exec_ok(im, "INSERT INTO customers (shop_id, id)"
			 " SELECT DISTINCT $1::uuid, customer_id FROM import_heads WHERE NOT dup"
			 " ON CONFLICT (shop_id, id) DO NOTHING", 1, params, NULL))
		return false;
	/*
	 * The planner's statistics do not know this transaction's rows: a new
	 * shop looks empty, and a lookup by (shop_id, id) may walk the
	 * (shop_id, seq) index instead, through every row of the shop.
	 * ANALYZE counts our own rows.  Joins are against analysed temporary
	 * tables, or one index lookup per row.
	 */
	if (!exec_ok(im, "ANALYZE customers", 0, NULL, NULL) ||
	    !exec_ok(im, "CREATE TEMP TABLE import_customers ON COMMIT DROP AS"
			 " SELECT (SELECT cu.seq FROM customers cu WHERE cu.shop_id = $1::uuid"
			 "  AND cu.id = h.customer_id) AS seq, h.customer_id AS id"
			 " FROM (SELECT DISTINCT customer_id FROM import_heads WHERE NOT dup) h",
			 1, params, NULL) ||
	    !exec_ok(im, "ANALYZE import_customers", 0, NULL, NULL))
		return false;
	mark(im, P_CUSTOMERS);
	/* file order = seq order */
	if (!exec_ok(im, "WITH ins AS (INSERT INTO orders (shop_id, id, customer_seq, placed_at,"
			 "  channel, currency, shipping, discount, total, fingerprint)"
			 " SELECT $1::uuid, h.id, cu.seq, h.placed_at::timestamptz, h.channel, $2,"
			 "  h.shipping, h.discount, h.total, h.fingerprint"
			 " FROM import_heads h"
			 " JOIN import_customers cu ON cu.id = h.customer_id"
			 " WHERE NOT h.dup ORDER BY h.order_row"
			 " ON CONFLICT (shop_id, id) DO NOTHING RETURNING seq, id, customer_seq)"
			 " INSERT INTO import_new SELECT * FROM ins", 2, params, imported) ||
	    !exec_ok(im, "ANALYZE import_new", 0, NULL, NULL) ||
	    !exec_ok(im, "ANALYZE orders", 0, NULL, NULL))
		return false;
	mark(im, P_ORDERS);
	if (!exec_ok(im, "INSERT INTO order_lines (order_seq, line_no, sku, name, category, role,"
			 "  quantity, unit_price, discount)"
			 " SELECT n.seq, r.line_no, r.sku, r.name, r.category, r.role, r.quantity,"
			 "  r.unit_price, r.line_discount"
			 " FROM import_new n"
			 " JOIN import_heads h ON h.id = n.id AND NOT h.dup"
			 " JOIN import_rows r ON r.order_row = h.order_row", 0, NULL, NULL))
		return false;
	mark(im, P_LINES);
	progress(im, "facts", true);
	if (!exec_ok(im, "SELECT customer_facts_refresh_many(a), tier_evaluate_many(a)"
			 " FROM (SELECT ARRAY(SELECT DISTINCT customer_seq FROM import_new) a) x",
			 0, NULL, NULL))
		return false;
	mark(im, P_FACTS);
	/*
	 * Orders not inserted: the same content already there ("unchanged"),
	 * or a conflict.  A hash anti-join finds them; only they touch the
	 * orders index.
	 */
	if (!exec_ok(im, "CREATE TEMP TABLE import_skipped ON COMMIT DROP AS"
			 " SELECT order_row, id, fingerprint FROM import_heads WHERE dup"
			 " UNION ALL"
			 " SELECT order_row, id, fingerprint FROM import_heads h WHERE NOT dup"
			 " AND NOT EXISTS (SELECT FROM import_new n WHERE n.id = h.id)", 0, NULL, NULL) ||
	    !exec_ok(im, "ALTER TABLE import_skipped ADD COLUMN same boolean", 0, NULL, NULL) ||
	    !exec_ok(im, "UPDATE import_skipped s SET same = (SELECT o.fingerprint FROM orders o"
			 " WHERE o.shop_id = $1::uuid AND o.id = s.id) = s.fingerprint",
			 1, params, NULL) ||
	    !exec_ok(im, "SELECT count(*) FROM import_skipped WHERE same", 0, NULL, unchanged))
		return false;
	/* conflicts are few: only they come back to the client */
	r = PQexecParams(im->pg, "SELECT order_row, id FROM import_skipped WHERE NOT same"
			 " ORDER BY order_row", 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "\nrebuyd: import failed: %s", PQresultErrorMessage(r));
		PQclear(r);
		return false;
	}
	for (int i = 0; i < PQntuples(r); i++)
		reject(im, (size_t)atoll(PQgetvalue(r, i, 0)), PQgetvalue(r, i, 1),
		       "conflicts with an existing order (same id, different content)");
	PQclear(r);
	return true;
}

static const char *
format_of(const struct import_options *opt)
{
	const char *dot = strrchr(opt->path, '.');

	if (opt->format)
		return opt->format;
	if (dot && strcmp(dot, ".csv") == 0)
		return "csv";
	if (dot && (strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".jsonl") == 0))
		return "ndjson";
	return NULL;
}

int
import_orders(struct db_conn *c, const struct import_options *opt)
{
	struct importer im = { .pg = db_pg(c), .shop_id = opt->shop_id };
	const char *format = format_of(opt);
	char *rejects_path = NULL;
	unsigned long long imported = 0, unchanged = 0;
	FILE *f = NULL;
	struct stat sb;
	int rc = 1;

	if (!format || (strcmp(format, "csv") != 0 && strcmp(format, "ndjson") != 0)) {
		fprintf(stderr, "rebuyd: give --format csv|ndjson (or a .csv/.ndjson file)\n");
		return 2;
	}
	{
		const char *p[1] = { opt->shop_id };
		PGresult *r;

		if (strlen(opt->shop_id) != 36) {
			fprintf(stderr, "rebuyd: --shop must be a shop id\n");
			return 2;
		}
		r = PQexecParams(im.pg, "SELECT currency FROM shops WHERE id::text = $1", 1, NULL,
				 p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
			fprintf(stderr, "rebuyd: no shop %s\n", opt->shop_id);
			PQclear(r);
			return 2;
		}
		snprintf(im.currency, sizeof im.currency, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	f = strcmp(opt->path, "-") == 0 ? stdin : fopen(opt->path, "r");
	if (!f) {
		fprintf(stderr, "rebuyd: cannot open %s: %s\n", opt->path, strerror(errno));
		return 1;
	}
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
		im.size = (unsigned long long)sb.st_size;
	if (opt->rejects)
		im.rejects_path = opt->rejects;
	else if (asprintf(&rejects_path, "%s.rejects.ndjson",
			  strcmp(opt->path, "-") == 0 ? "stdin" : opt->path) > 0)
		im.rejects_path = rejects_path;
	im.rejects = im.rejects_path ? fopen(im.rejects_path, "w") : NULL;
	im.copy = malloc(COPY_BUFFER);
	if (!im.rejects || !im.copy) {
		fprintf(stderr, "rebuyd: cannot write %s\n", im.rejects_path ? im.rejects_path : "");
		goto out;
	}
	im.tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &im.start);
	/* an import is one long transaction: the API's timeouts do not apply */
	if (!exec_ok(&im, "BEGIN", 0, NULL, NULL) ||
	    /* staging lives in this backend's local buffers; before any temp table */
	    !exec_ok(&im, "SET LOCAL temp_buffers = '256MB'", 0, NULL, NULL) ||
	    !exec_ok(&im, "SET LOCAL statement_timeout = 0", 0, NULL, NULL) ||
	    !exec_ok(&im, "SET LOCAL lock_timeout = 0", 0, NULL, NULL) ||
	    !exec_ok(&im, "SET LOCAL idle_in_transaction_session_timeout = 0", 0, NULL, NULL) ||
	    /* sorts and hashes over the whole file: memory, not disk */
	    !exec_ok(&im, "SET LOCAL work_mem = '256MB'", 0, NULL, NULL) ||
	    !exec_ok(&im, "CREATE TEMP TABLE import_rows (order_row bigint, line_no integer,"
			  " id text, customer_id text, placed_at text, channel text,"
			  " shipping bigint, discount bigint, total bigint, fingerprint text,"
			  " sku text, name text, category text, role text, quantity bigint,"
			  " unit_price bigint, line_discount bigint) ON COMMIT DROP", 0, NULL, NULL) ||
	    !exec_ok(&im, "CREATE TEMP TABLE import_new (seq bigint, id text, customer_seq bigint)"
			  " ON COMMIT DROP", 0, NULL, NULL))
		goto rollback;
	{
		PGresult *r = PQexec(im.pg, "COPY import_rows FROM STDIN");
		bool ok = PQresultStatus(r) == PGRES_COPY_IN;

		PQclear(r);
		if (!ok)
			goto rollback;
	}
	if (strcmp(format, "csv") == 0)
		rc = read_csv(&im, f);
	else
		read_ndjson(&im, f);
	if (rc == 2 || im.failed) {
		PQputCopyEnd(im.pg, "import stopped");
		PQclear(PQgetResult(im.pg));
		goto rollback;
	}
	if ((im.copy_len && PQputCopyData(im.pg, im.copy, (int)im.copy_len) != 1) ||
	    PQputCopyEnd(im.pg, NULL) != 1)
		goto rollback;
	{
		PGresult *r = PQgetResult(im.pg);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

		if (!ok)
			fprintf(stderr, "\nrebuyd: import failed: %s", PQresultErrorMessage(r));
		PQclear(r);
		while ((r = PQgetResult(im.pg)))
			PQclear(r);
		if (!ok)
			goto rollback;
	}
	if (!write_orders(&im, &imported, &unchanged) || !exec_ok(&im, "COMMIT", 0, NULL, NULL))
		goto rollback;
	mark(&im, P_CHECKS);
	if (im.tty)
		fprintf(stderr, "\r%*s\r", 78, "");
	printf("rows read:      %llu\n"
	       "orders read:    %llu\n"
	       "imported:       %llu\n"
	       "unchanged:      %llu\n"
	       "rejected:       %llu%s%s%s\n"
	       "time:           %.1f s (%.0f rows/s)\n",
	       im.rows, im.orders, imported, unchanged, im.rejected,
	       im.rejected ? "  (see " : "", im.rejected ? im.rejects_path : "",
	       im.rejected ? ")" : "", elapsed(&im),
	       elapsed(&im) > 0 ? (double)im.rows / elapsed(&im) : 0.0);
	/* where the time went: parse and COPY, then each set-based step (commit in checks) */
	printf("phases:        ");
	for (int i = 0; i < P__COUNT; i++)
		printf(" %s %.1f s%s", phase_names[i], im.marks[i] - (i ? im.marks[i - 1] : 0.0),
		       i + 1 < P__COUNT ? "," : "\n");
	rc = 0;
	goto out;
rollback:
	(void)exec_ok(&im, "ROLLBACK", 0, NULL, NULL);
	if (rc != 2) {
		fprintf(stderr, "rebuyd: nothing was imported\n");
		rc = 1;
	}
out:
	if (f && f != stdin)
		fclose(f);
	if (im.rejects)
		fclose(im.rejects);
	free(im.copy);
	free(rejects_path);
	return rc;
}
