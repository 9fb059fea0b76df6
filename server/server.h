/*
 * aviso-server as a library: the model behind the protocol's endpoints (server/README.md),
 * on an HTTP server. main.c is a thin command line over it; tests can run it in-process.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define SERVER_DEFAULT_PORT 22221
#define SERVER_DEFAULT_BIND "127.0.0.1"
#define SERVER_DEFAULT_THREADS 4
/* Why 64 MiB: an RPB is 1000 events per thread of about 200 bytes each; 64 MiB holds the
 * rings of some 300 threads and still bounds a hostile client. */
#define SERVER_DEFAULT_MAX_BODY ((size_t)64 << 20)
#define SERVER_DEFAULT_REFRESH_S 10
/* Why 1 s: a program with tens of thousands of candidates takes ~0.1 s to rank; a choice made
 * on a model one second old is as good, and /start stays fast under a stream of reports. */
#define SERVER_DEFAULT_SNAPSHOT_MS 1000

struct server_config {
	const char *bind;  /* numeric address; loopback by default */
	uint16_t port;	   /* 0: ephemeral (server_port() tells) */
	const char *db;	   /* store directory */
	const char *token; /* required as "Authorization: Bearer T" when non-NULL */
	unsigned threads;
	size_t max_body;
	unsigned refresh_s; /* the stats page's refresh period */
	bool verbose;	    /* one log line per request */
	struct model_options model;
};

/* Defaults: the constants above, the model's defaults, db NULL (to be set). */
void server_config_init(struct server_config *cfg);

struct server;

/* Opens the store and starts serving. @cfg's strings must outlive the server. */
int server_create(const struct server_config *cfg, struct server **ret_server);
uint16_t server_port(const struct server *s);
/* Stops serving (waits for requests in progress), closes the store; NULL is fine. */
void server_destroy(struct server *s);
