/*
 * The HTTP layer of aviso-server: a libmicrohttpd daemon with a thread pool that hands each
 * complete request (body bounded) to one handler and sends what it answers. http.c is the only
 * file that includes microhttpd.h; the handler sees plain structs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* without the query */
	const char *body;   /* NUL-terminated copy of the body ("" when none) */
	size_t body_len;
	bool too_large;		   /* the body passed the limit: body is "" */
	const char *authorization; /* the Authorization header, or NULL */
	void *conn;		   /* for http_request_query() */
};

/* The value of query argument @name, or NULL; valid during the handler call. */
const char *http_request_query(const struct http_request *req, const char *name);

struct http_response {
	unsigned status;
	const char *content_type; /* a static string */
	char *body;		  /* malloc'd; the HTTP layer frees it */
	size_t len;
	const char *allow; /* an Allow header for 405, or NULL */
};

/* Fills @res for @req. Runs on the pool's threads, concurrently. */
typedef void (*http_handler)(void *ctx, const struct http_request *req, struct http_response *res);

struct http_options {
	const char *bind; /* numeric IPv4 or IPv6 address */
	uint16_t port;	  /* 0: an ephemeral port (see http_server_port()) */
	unsigned threads; /* pool size */
	size_t max_body;  /* larger bodies get the handler with too_large set */
};

struct http_server;

/* Starts serving. Returns 0, -EINVAL (a bad address), -EADDRINUSE or -EIO. */
int http_server_start(const struct http_options *opts, http_handler handler, void *ctx,
		      struct http_server **ret_server);
/* The port the server listens on (the chosen one when asked for port 0). */
uint16_t http_server_port(const struct http_server *s);
/* Stops serving and waits for the handlers running; NULL is fine. */
void http_server_stop(struct http_server *s);
