/*
 * server.c — libmicrohttpd glue.
 *
 * Per-request state is allocated on the first callback, body chunks are
 * appended until *upload_data_size is 0, the reply is queued on the last
 * call, and the completion callback logs, counts and frees the state on
 * every path (aborted requests too).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "rebuy/keys.h"
#include "rebuy/log.h"
#include "rebuy/metrics.h"
#include "rebuy/reply.h"
#include "rebuy/router.h"
#include "rebuy/server.h"

/* Limits chosen for an API whose bodies are small JSON documents. */
#define CONNECTION_LIMIT 1024     /* below the usual 1024+ fd soft limit */
#define PER_IP_LIMIT 512          /* storefront backends share few IPs */
/* headers + buffers per connection; libmicrohttpd zeroes it per request,
 * so bigger is slower: 16 KiB holds any sane API request's headers */
#define CONNECTION_MEMORY 16384
#define DRAIN_QUIET_NS (300ull * 1000 * 1000)
#define DISCARD_FACTOR 8 /* oversize bodies up to 8x the limit are drained */

static struct MHD_Daemon *daemon_handle;
static size_t body_limit;
static atomic_int in_flight;
static _Atomic uint64_t last_activity_ns;
static atomic_bool draining;

uint64_t
request_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *
request_header(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
request_query(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

size_t
server_body_limit(void)
{
	return body_limit;
}

bool
server_draining(void)
{
	return atomic_load(&draining);
}

/* A request id: 64 random bits, cheap (per-thread generator seeded once). */
static void
new_request_id(char out[17])
{
	static _Thread_local uint64_t state;
	uint64_t z;

	if (!state && !keys_random(&state, sizeof state))
		state = request_now_ns() ^ (uint64_t)pthread_self();
	z = (state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	snprintf(out, 17, "%016llx", (unsigned long long)z);
}

static struct request *
request_new(struct MHD_Connection *conn, const char *url, const char *method)
{
	struct request *req = calloc(1, sizeof *req);

	if (!req)
		return NULL;
	req->path = strdup(url);
	if (!req->path) {
		free(req);
		return NULL;
	}
	req->conn = conn;
	req->start_ns = request_now_ns();
	req->route_index = -1;
	snprintf(req->method, sizeof req->method, "%s", method);
	err_utf8_clean(req->method); /* logged and quoted in 405 messages */
	new_request_id(req->id);
	atomic_fetch_add(&in_flight, 1);
	atomic_store(&last_activity_ns, req->start_ns);
	return req;
}

static void
request_free(struct request *req)
{
	if (req->response)
		MHD_destroy_response(req->response);
	free(req->body);
	free(req->path);
	free(req);
}

static bool
body_append(struct request *req, const char *data, size_t len)
{
	if (req->body_too_large || req->body_len + len > body_limit) {
		req->body_too_large = true; /* keep reading, answer 413 at the end */
		return true;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 1024;
		char *p;

		while (cap < req->body_len + len + 1)
			cap *= 2;
		p = realloc(req->body, cap);
		if (!p)
			return false;
		req->body = p;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
	return true;
}

static enum MHD_Result
queue(struct request *req)
{
	if (!req->response)
		reply_error(req, ERR_INTERNAL, NULL, "internal error");
	reply_header(req, "X-Request-Id", req->id);
	reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* errors too: a cache must not serve one media type's answer for another */
	if (req->route && (req->route->flags & ROUTE_NEGOTIATED))
		reply_header(req, MHD_HTTP_HEADER_VARY, "Accept");
	if (atomic_load(&draining))
		reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
	return MHD_queue_response(req->conn, req->status, req->response);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	struct request *req = *con_cls;
	const char *cl, *te;

	(void)cls;
	(void)version;
	if (!req) {
		req = request_new(conn, url, method);
		if (!req)
			return MHD_NO; /* out of memory: drop the connection */
		*con_cls = req;
		/* libmicrohttpd decodes chunked only; anything else would hang */
		te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_TRANSFER_ENCODING);
		if (te && strcasecmp(te, "chunked") != 0) {
			reply_error(req, ERR_INVALID_PARAMETER, "/header/Transfer-Encoding",
				    "only chunked transfer encoding is supported");
			return queue(req);
		}
		/* refuse an announced oversize body before reading any of it */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > body_limit) {
			/*
			 * A modest excess is read and dropped so the client, still
			 * writing, can read our 413; a huge one is refused at once
			 * and the connection closed.
			 */
			if (strtoull(cl, NULL, 10) <= DISCARD_FACTOR * (unsigned long long)body_limit) {
				req->body_too_large = true;
				return MHD_YES;
			}
			reply_error(req, ERR_PAYLOAD_TOO_LARGE, NULL,
				    "request body exceeds %zu bytes", body_limit);
			return queue(req);
		}
		return MHD_YES;
	}
	if (req->response) /* already answered (413): discard the rest */
	{
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!body_append(req, upload_data, *upload_data_size))
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	router_dispatch(req);
	return queue(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct request *req = *con_cls;
	double seconds;

	(void)cls;
	(void)conn;
	if (!req)
		return;
	seconds = (double)(request_now_ns() - req->start_ns) / 1e9;
	if (!req->status)
		req->status = 499; /* client went away before a reply */
	metrics_observe(req->route_index, req->status, seconds);
	if (log_get_level() <= LOG_INFO)
		log_emit(LOG_INFO, "request",
		 json_pack("{s:s, s:s, s:s, s:i, s:f, s:b}", "request_id", req->id,
			   "method", req->method, "route",
			   req->route ? req->route->pattern : "unmatched", "status",
			   (int)req->status, "duration_ms", seconds * 1000.0,
			   "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
	request_free(req);
	*con_cls = NULL;
	atomic_store(&last_activity_ns, request_now_ns());
	atomic_fetch_sub(&in_flight, 1);
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decode %XX in paths and query values, except %00 and %2F: left encoded,
 * they can neither cut a C string short nor add a path segment, and the
 * handlers' validation rejects the literal '%'.
 */
static size_t
on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	(void)cls;
	(void)conn;
	for (const char *r = s; *r; r++) {
		int hi, lo;

		if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
		    (hi << 4 | lo) != 0 && (hi << 4 | lo) != '/') {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	err_utf8_clean(buf);
	log_emit(LOG_WARN, "http", json_pack("{s:s}", "detail", buf));
}

bool
server_start(const struct config *cfg)
{
	struct sockaddr_in addr4;
	struct sockaddr_in6 addr6;
	const struct sockaddr *addr;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;

	body_limit = cfg->body_limit;
	memset(&addr4, 0, sizeof addr4);
	memset(&addr6, 0, sizeof addr6);
	if (inet_pton(AF_INET, cfg->listen_host, &addr4.sin_addr) == 1) {
		addr4.sin_family = AF_INET;
		addr4.sin_port = htons(cfg->listen_port);
		addr = (const struct sockaddr *)&addr4;
	} else if (inet_pton(AF_INET6, cfg->listen_host, &addr6.sin6_addr) == 1) {
		addr6.sin6_family = AF_INET6;
		addr6.sin6_port = htons(cfg->listen_port);
		addr = (const struct sockaddr *)&addr6;
		flags |= MHD_USE_IPv6;
	} else if (strcmp(cfg->listen_host, "localhost") == 0) {
		addr4.sin_family = AF_INET;
		addr4.sin_port = htons(cfg->listen_port);
		addr4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		addr = (const struct sockaddr *)&addr4;
	} else {
		log_error("listen address must be a numeric IPv4/IPv6 address: %s",
			  cfg->listen_host);
		return false;
	}
	daemon_handle = MHD_start_daemon(
		flags, cfg->listen_port, NULL, NULL, &on_request, NULL,
		/* first, so MHD never logs on its own before it is set */
		MHD_OPTION_EXTERNAL_LOGGER, &on_mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->workers,
		/* idle keep-alive, slow-loris and unparseable clients */
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)PER_IP_LIMIT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, &on_completed, NULL,
		MHD_OPTION_UNESCAPE_CALLBACK, &on_unescape, NULL,
		MHD_OPTION_END);
	if (!daemon_handle) {
		log_error("cannot listen on %s:%u", cfg->listen_host, cfg->listen_port);
		return false;
	}
	return true;
}

void
server_drain_and_stop(unsigned timeout)
{
	uint64_t deadline;

	if (!daemon_handle)
		return;
	atomic_store(&draining, true);
	/* stop accepting; in-flight requests go on */
	/*
	 * Quiesce hands the listening socket back; workers may still touch it
	 * until the daemon stops, so shut it down now and close it after.
	 */
	MHD_socket listener = MHD_quiesce_daemon(daemon_handle);

	if (listener != MHD_INVALID_SOCKET)
		shutdown(listener, SHUT_RDWR);
	deadline = request_now_ns() + (uint64_t)timeout * 1000000000ull;
	/*
	 * Requests already sent on keep-alive connections may still sit in
	 * socket buffers, not yet counted: wait for a quiet spell too.
	 */
	while (request_now_ns() < deadline &&
	       (atomic_load(&in_flight) > 0 ||
		request_now_ns() - atomic_load(&last_activity_ns) < DRAIN_QUIET_NS))
		usleep(10000);
	if (atomic_load(&in_flight) > 0)
		log_warn("drain timeout: %d requests still in flight",
			 atomic_load(&in_flight));
	MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
	if (listener != MHD_INVALID_SOCKET)
		close(listener);
}
