/*
 * The embedded backend: the model in this process, over an LMDB store that aviso-server --db
 * can open too (model/ allows several processes on one store).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tracer/backend.h"

struct embedded {
	struct backend b; /* first: the backend is the embedded */
	struct model *m;
};

static struct model *
model_of(struct backend *b)
{
	return ((struct embedded *)b)->m;
}

static int
embedded_start(struct backend *b, const struct model_program *prog, const uint64_t *seed,
	       struct model_plan **ret_plan)
{
	return model_run_start(model_of(b), prog, seed, ret_plan);
}

static int
embedded_end(struct backend *b, const struct model_report *rep)
{
	return model_run_end(model_of(b), rep);
}

static int
embedded_correct(struct backend *b, const char *run, const struct model_event *rpb, size_t n)
{
	return model_run_correct(model_of(b), run, rpb, n);
}

static int
embedded_tick(struct backend *b, const char *run)
{
	return model_run_tick(model_of(b), run);
}

static int
embedded_stats(struct backend *b, const char *program, struct model_stats **ret_stats)
{
	return model_stats_get(model_of(b), program, ret_stats);
}

static void
embedded_close(struct backend *b)
{
	model_close(model_of(b));
	free(b);
}

static const struct backend_ops embedded_ops = {
	.start = embedded_start,
	.end = embedded_end,
	.correct = embedded_correct,
	.tick = embedded_tick,
	.stats = embedded_stats,
	.close = embedded_close,
};

int
backend_open_embedded(const char *store, const struct model_options *opts,
		      struct backend **ret_backend)
{
	struct embedded *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	r = model_open(store, opts, &e->m);
	if (r < 0) {
		free(e);
		return r;
	}
	e->b.ops = &embedded_ops;
	snprintf(e->b.where, sizeof(e->b.where),
		 "aviso-server --db %s, then http://127.0.0.1:22221/stats", store);
	*ret_backend = &e->b;
	return 0;
}
