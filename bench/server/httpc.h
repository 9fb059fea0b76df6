/*
 * A small blocking HTTP client for tests and benchmarks (httpc.c, the only file that includes
 * curl.h), and the simulation's backend that talks to a real aviso-server with it.
 */
#pragma once

#include <stddef.h>

#include "bench/server/sim.h"

/*
 * Sends @method @url with @body (NULL: none) and "Authorization: Bearer @token" (NULL: none).
 * Returns 0 with the status in *ret_status and the answer in *ret_body (malloc'd, NUL-
 * terminated; may be NULL when the caller does not want it), or -EIO when no answer came.
 */
int httpc_request(const char *method, const char *url, const char *token, const char *body,
		  size_t len, long *ret_status, char **ret_body);

/* The simulation against the server at @base ("http://127.0.0.1:PORT"); @base must outlive
 * the backend. */
void sim_backend_http(const char *base, struct sim_backend *ret);
