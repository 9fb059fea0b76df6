/*
 * The /metrics page: the model's counts per program and the server's request counts, in the
 * Prometheus text exposition format (version 0.0.4).
 */
#include <errno.h>
#include <inttypes.h>

#include "server/buf.h"
#include "server/internal.h"

static const char *const status_classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

/* One sample per program of metric @name (with its HELP and TYPE lines), of value @expr. */
#define PER_PROGRAM(b, st, name, type, help, expr)                                                 \
	do {                                                                                       \
		buf_puts(b, "# HELP " name " " help "\n# TYPE " name " " type "\n");               \
		for (size_t i_ = 0; i_ < (st)->n; i_++) {                                          \
			const struct model_program_stats *ps = &(st)->programs[i_];                \
			buf_puts(b, name "{program=\"");                                           \
			buf_label(b, ps->path);                                                    \
			buf_puts(b, "\",build_id=\"");                                             \
			buf_label(b, ps->id);                                                      \
			buf_printf(b, "\"} %" PRIu64 "\n", (uint64_t)(expr));                      \
		}                                                                                  \
	} while (0)

int
metrics_text(const struct model_stats *st, const struct server_counters *counters, size_t map_size,
	     size_t used_size, char **ret_text, size_t *ret_len)
{
	struct buf b = {0};

	PER_PROGRAM(&b, st, "aviso_runs_started_total", "counter", "Runs started (/start).",
		    ps->runs_started);
	PER_PROGRAM(&b, st, "aviso_open_runs", "gauge", "Runs started and not ended.",
		    ps->open_runs);
	PER_PROGRAM(&b, st, "aviso_baseline_runs_total", "counter",
		    "Outcomes (runs and ticks) without a constraint.", ps->baseline_runs);
	PER_PROGRAM(&b, st, "aviso_baseline_failures_total", "counter",
		    "Failures without a constraint.", ps->baseline_failures);
	PER_PROGRAM(&b, st, "aviso_constrained_runs_total", "counter",
		    "Outcomes (runs and ticks) with constraints.", ps->constrained_runs);
	PER_PROGRAM(&b, st, "aviso_constrained_failures_total", "counter",
		    "Failures with constraints.", ps->constrained_failures);
	PER_PROGRAM(&b, st, "aviso_correct_samples_total", "counter", "Correct-run samples.",
		    ps->correct_samples);
	PER_PROGRAM(&b, st, "aviso_classes", "gauge", "Failure classes.", ps->n_classes);
	PER_PROGRAM(&b, st, "aviso_constraints", "gauge", "Candidate constraints.",
		    ps->n_constraints);
	PER_PROGRAM(&b, st, "aviso_contenders", "gauge", "Effective constraints.",
		    ps->n_contenders);

	buf_puts(&b, "# HELP aviso_http_requests_total Requests answered, by endpoint and "
		     "status class.\n# TYPE aviso_http_requests_total counter\n");
	for (int ep = 0; ep < EP__COUNT; ep++)
		for (int c = 0; c < 5; c++) {
			uint64_t v = __atomic_load_n(&counters->requests[ep][c], __ATOMIC_RELAXED);
			if (v)
				buf_printf(&b,
					   "aviso_http_requests_total{endpoint=\"%s\",code=\"%s\"} "
					   "%" PRIu64 "\n",
					   server_endpoint_name(ep), status_classes[c], v);
		}
	buf_printf(&b,
		   "# HELP aviso_store_map_bytes LMDB map size.\n"
		   "# TYPE aviso_store_map_bytes gauge\naviso_store_map_bytes %zu\n"
		   "# HELP aviso_store_used_bytes LMDB pages in use.\n"
		   "# TYPE aviso_store_used_bytes gauge\naviso_store_used_bytes %zu\n",
		   map_size, used_size);
	*ret_text = buf_take(&b, ret_len);
	return *ret_text ? 0 : -ENOMEM;
}
