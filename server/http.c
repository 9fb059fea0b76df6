/*
 * The libmicrohttpd boundary (see http.h): one daemon with an internal polling thread pool,
 * bodies gathered into a bounded buffer per connection, one handler call per request.
 * libmicrohttpd 0.9.75: responses from malloc'd buffers (MHD_RESPMEM_MUST_FREE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/http.h"

/* Why 30 s: a client that stops sending must not keep a pool thread's connection slot. */
#define HTTP_CONNECTION_TIMEOUT_S 30
#define HTTP_CONNECTION_LIMIT 1024

struct http_server {
	struct MHD_Daemon *daemon;
	http_handler handler;
	void *ctx;
	size_t max_body;
	uint16_t port;
};

/* A request's body as it arrives. */
struct upload {
	char *buf;
	size_t len, cap;
	bool too_large;
};

const char *
http_request_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Appends @data to @up within @max bytes; past it the body is dropped and marked. */
static void
upload_add(struct upload *up, const char *data, size_t size, size_t max)
{
	if (up->too_large)
		return;
	if (up->len + size > max) {
		up->too_large = true;
		free(up->buf);
		up->buf = NULL;
		up->len = up->cap = 0;
		return;
	}
	if (up->len + size + 1 > up->cap) {
		size_t cap = up->cap ? up->cap : 4096;
		while (cap < up->len + size + 1)
			cap *= 2;
		char *nb = realloc(up->buf, cap);
		if (!nb) {
			/* Cannot hold it: answer as for a body too large. */
			up->too_large = true;
			return;
		}
		up->buf = nb;
		up->cap = cap;
	}
	memcpy(up->buf + up->len, data, size);
	up->len += size;
	up->buf[up->len] = '\0';
}

static enum MHD_Result
respond(struct http_server *s, struct MHD_Connection *conn, const char *method, const char *url,
	struct upload *up)
{
	struct http_request req = {
	    .method = method,
	    .path = url,
	    .body = up->buf && !up->too_large ? up->buf : "",
	    .body_len = up->too_large ? 0 : up->len,
	    .too_large = up->too_large,
	    .authorization =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
	    .conn = conn,
	};
	struct http_response res = {.status = 500, .content_type = "text/plain"};
	struct MHD_Response *r;
	enum MHD_Result ret;

	s->handler(s->ctx, &req, &res);
	r = MHD_create_response_from_buffer(res.len, res.body ? res.body : (void *)"",
					    res.body ? MHD_RESPMEM_MUST_FREE
						     : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(res.body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res.content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (res.allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res.allow);
	ret = MHD_queue_response(conn, res.status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct upload *up = *con_cls;

	if (!up) {
		/* First call, headers only. A declared length past the limit is refused now,
		 * without reading the body. */
		up = calloc(1, sizeof(*up));
		if (!up)
			return MHD_NO;
		*con_cls = up;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > s->max_body) {
			up->too_large = true;
			return respond(s, conn, method, url, up);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		upload_add(up, upload_data, *upload_data_size, s->max_body);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return respond(s, conn, method, url, up);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;

	if (up) {
		free(up->buf);
		free(up);
		*con_cls = NULL;
	}
}

/* Fills @ss with @bind:@port. */
static int
make_addr(const char *bind, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, bind, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, bind, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 0;
	}
	return -EINVAL;
}

int
http_server_start(const struct http_options *opts, http_handler handler, void *ctx,
		  struct http_server **ret_server)
{
	struct sockaddr_storage ss;
	struct http_server *s;
	int r = make_addr(opts->bind, opts->port, &ss);

	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->handler = handler;
	s->ctx = ctx;
	s->max_body = opts->max_body;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->daemon = MHD_start_daemon(
	    flags, opts->port, NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)opts->threads,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_CONNECTION_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_CONNECTION_LIMIT,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_END);
	if (!s->daemon) {
		r = errno == EADDRINUSE ? -EADDRINUSE : -EIO;
		free(s);
		return r;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : opts->port;
	*ret_server = s;
	return 0;
}

uint16_t
http_server_port(const struct http_server *s)
{
	return s->port;
}

void
http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->daemon);
	free(s);
}
