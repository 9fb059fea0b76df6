/*
 * Where a run's plan comes from and where its outcome goes (AVISO.md sections 5 and 6): the
 * model embedded in aviso-trace (model/ over an LMDB store under the state directory), or an
 * aviso-server over HTTP (client.c). runs.c sees only this interface, so both modes take the
 * same path and, for the same seeds on the same model state, make the same decisions.
 *
 * Every call returns 0 or -errno. A call that fails never stops the program from running: a
 * start that fails makes a baseline run, an outcome that cannot be delivered is the backend's
 * to keep (the server backend queues it on disk and sends it later).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

struct backend;

struct backend_ops {
	/* Chooses what a run of @prog loads. @seed NULL: the backend's next seed. */
	int (*start)(struct backend *b, const struct model_program *prog, const uint64_t *seed,
		     struct model_plan **ret_plan);
	/* The outcome of the run @rep->run (started by start()). */
	int (*end)(struct backend *b, const struct model_report *rep);
	/* A correct-run sample of run @run. */
	int (*correct)(struct backend *b, const char *run, const struct model_event *rpb,
		       size_t n);
	/* A logical tick of run @run: one success for what it loaded. */
	int (*tick)(struct backend *b, const char *run);
	/* Statistics of program @program (build-id or path), for the summary. */
	int (*stats)(struct backend *b, const char *program, struct model_stats **ret_stats);
	/* Frees @b; outcomes not yet delivered stay queued. */
	void (*close)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	/* Where the statistics can be seen, for the summary ("aviso-server --db DIR", a URL). */
	char where[4200];
};

/* The embedded model, its store in directory @store (created if needed). */
int backend_open_embedded(const char *store, const struct model_options *opts,
			  struct backend **ret_backend);

/*
 * An aviso-server at @url ("http://HOST[:PORT][/PATH]"; backend_server_url_check()), with the
 * requests it could not take kept under @queue_root (a directory per server; NULL: not kept).
 * Never fails for a server that does not answer: runs are then baseline runs (client.c).
 * -EINVAL for a malformed @url, -ENOMEM.
 */
int backend_open_server(const char *url, const char *queue_root, struct backend **ret_backend);

/* 0 when @url is one backend_open_server() takes; -EINVAL with *ret_why (a static phrase). */
int backend_server_url_check(const char *url, const char **ret_why);

static inline void
backend_close(struct backend *b)
{
	if (b)
		b->ops->close(b);
}
