/*
 * metrics.c — request counters by route and status, latency histograms,
 * database gauges; rendered in Prometheus text format.
 *
 * Counters are relaxed atomics indexed by route: no lock on the request
 * path.  Index router_route_count is "unmatched".
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebuy/db.h"
#include "rebuy/metrics.h"
#include "rebuy/router.h"

#define ROUTES_MAX 48

static const unsigned statuses[] = { 200, 201, 204, 400, 401, 403, 404, 405,
				     409, 413, 415, 422, 500, 503, 0 /* other */ };
#define NSTATUS (sizeof statuses / sizeof statuses[0])

static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
#define NBUCKET (sizeof buckets / sizeof buckets[0])

struct route_metrics {
	atomic_ulong by_status[NSTATUS];
	atomic_ulong bucket[NBUCKET + 1]; /* last = +Inf */
	atomic_ulong sum_us;
};

static struct route_metrics routes[ROUTES_MAX + 1];

void
metrics_observe(int route_index, unsigned status, double seconds)
{
	struct route_metrics *m;
	size_t s = NSTATUS - 1, b = NBUCKET;

	if (route_index < 0 || route_index >= ROUTES_MAX ||
	    (size_t)route_index >= router_route_count)
		route_index = ROUTES_MAX;
	m = &routes[route_index];
	for (size_t i = 0; i + 1 < NSTATUS; i++)
		if (statuses[i] == status)
			s = i;
	for (size_t i = 0; i < NBUCKET; i++)
		if (seconds <= buckets[i]) {
			b = i;
			break;
		}
	atomic_fetch_add_explicit(&m->by_status[s], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us, (unsigned long)(seconds * 1e6),
				  memory_order_relaxed);
}

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void __attribute__((format(printf, 2, 3)))
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		char *np = realloc(b->p, b->cap * 2 + (size_t)n);

		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = b->cap * 2 + (size_t)n;
	}
}

char *
metrics_render(size_t *len)
{
	struct buf b = { .p = malloc(16384), .cap = 16384 };
	struct db_stats db;

	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	put(&b, "# HELP rebuy_http_requests_total HTTP requests by route, method and status.\n"
		"# TYPE rebuy_http_requests_total counter\n");
	for (size_t r = 0; r <= ROUTES_MAX; r++) {
		bool known = r < router_route_count;

		if (r >= router_route_count && r != ROUTES_MAX)
			continue;
		for (size_t s = 0; s < NSTATUS; s++) {
			unsigned long v = atomic_load(&routes[r].by_status[s]);
			char st[8];

			if (!v)
				continue;
			snprintf(st, sizeof st, "%u", statuses[s]);
			put(&b, "rebuy_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %lu\n",
			    known ? router_routes[r].pattern : "unmatched",
			    known ? router_routes[r].method : "any",
			    statuses[s] ? st : "other", v);
		}
	}
	put(&b, "# HELP rebuy_http_request_duration_seconds Time from first byte to response sent.\n"
		"# TYPE rebuy_http_request_duration_seconds histogram\n");
	for (size_t r = 0; r <= ROUTES_MAX; r++) {
		bool known = r < router_route_count;
		const char *route = known ? router_routes[r].pattern : "unmatched";
		const char *method = known ? router_routes[r].method : "any";
		unsigned long cum = 0;

		if (r >= router_route_count && r != ROUTES_MAX)
			continue;
		for (size_t i = 0; i <= NBUCKET; i++)
			cum += atomic_load(&routes[r].bucket[i]);
		if (!cum)
			continue;
		cum = 0;
		for (size_t i = 0; i <= NBUCKET; i++) {
			cum += atomic_load(&routes[r].bucket[i]);
			if (i < NBUCKET)
				put(&b, "rebuy_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %lu\n",
				    route, method, buckets[i], cum);
			else
				put(&b, "rebuy_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %lu\n",
				    route, method, cum);
		}
		put(&b, "rebuy_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n",
		    route, method, (double)atomic_load(&routes[r].sum_us) / 1e6);
		put(&b, "rebuy_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %lu\n",
		    route, method, cum);
	}
	db_get_stats(&db);
	put(&b, "# HELP rebuy_db_errors_total Database statements that failed (not counting retried conflicts).\n"
		"# TYPE rebuy_db_errors_total counter\nrebuy_db_errors_total %lu\n"
		"# HELP rebuy_db_reconnects_total Database connection attempts by workers.\n"
		"# TYPE rebuy_db_reconnects_total counter\nrebuy_db_reconnects_total %lu\n"
		"# HELP rebuy_db_tx_retries_total Transactions retried after serialization failures or deadlocks.\n"
		"# TYPE rebuy_db_tx_retries_total counter\nrebuy_db_tx_retries_total %lu\n"
		"# HELP rebuy_db_connections_open Open database connections (one per worker).\n"
		"# TYPE rebuy_db_connections_open gauge\nrebuy_db_connections_open %u\n"
		"# HELP rebuy_db_connections_busy Database connections in use by a request.\n"
		"# TYPE rebuy_db_connections_busy gauge\nrebuy_db_connections_busy %u\n",
	    db.errors, db.reconnects, db.retries, db.conns_open, db.conns_busy);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
