/*
 * server/ private declarations: the request counters, and the two text pages built from the
 * model's statistics (page.c: /stats HTML; metrics.c: /metrics Prometheus text).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* The endpoints, for counting requests. */
enum server_endpoint {
	EP_START,
	EP_END,
	EP_CORRECT,
	EP_TICK,
	EP_API_STATS,
	EP_STATS,
	EP_METRICS,
	EP_HEALTHZ,
	EP_OTHER,
	EP__COUNT
};

/* Requests answered, by endpoint and status class (index status / 100 - 1: 2xx .. 5xx). */
struct server_counters {
	uint64_t requests[EP__COUNT][5];
};

/* The endpoint's path ("/start", ...; "other"). */
const char *server_endpoint_name(enum server_endpoint ep);

/* The /stats page: every string escaped, an inline SVG chart, refreshed every @refresh_s. */
int page_stats_html(const struct model_stats *st, unsigned refresh_s, char **ret_html,
		    size_t *ret_len);

/* The /metrics text (Prometheus exposition format 0.0.4). */
int metrics_text(const struct model_stats *st, const struct server_counters *counters,
		 size_t map_size, size_t used_size, char **ret_text, size_t *ret_len);
