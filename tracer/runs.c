/*
 * Runs of a program under avoidance (AVISO.md sections 5 and 6): each run asks the model which
 * constraints to load, runs the program under the tracer with them, and reports its outcome
 * (with the failure's Recent Past Buffer) back. The model is embedded: model/ over an LMDB store
 * under the state directory, the same store `aviso-server --db` can serve. --runs N does it N
 * times in a row (the original Aviso runner's loop), with a progress line on a terminal and a
 * summary at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"
#include "fsm/fsm.h"
#include "model/model.h"
#include "tracer/internal.h"

/* The model's key for a program: its build-id, else its path. */
static char *
program_id(const char *path)
{
	struct bp_elf *elf;
	char *id = NULL;

	if (bp_elf_open(path, &elf) == 0) {
		if (bp_elf_build_id(elf))
			id = strdup(bp_elf_build_id(elf));
		bp_elf_close(elf);
	}
	return id ? id : strdup(path);
}

/* The served constraints as fsm wants them (the strings stay the plan's). */
static struct fsm_constraint *
plan_constraints(const struct model_plan *plan)
{
	struct fsm_constraint *c = calloc(plan->n ? plan->n : 1, sizeof(*c));

	for (size_t i = 0; c && i < plan->n; i++) {
		c[i].before = plan->constraints[i].b;
		c[i].after = plan->constraints[i].a;
		c[i].delay_ns = (uint64_t)plan->constraints[i].delay_us * 1000;
	}
	return c;
}

/* The program of the run in progress, for tracer_runs_forward(). */
static volatile pid_t current_pid;

void
tracer_runs_forward(int sig)
{
	if (current_pid > 0)
		kill(current_pid, sig);
}

struct tally {
	unsigned runs, failures, baseline_runs, baseline_failures;
};

static void
progress(const struct tally *k, unsigned total, const struct model_plan *plan)
{
	const struct model_served *c = plan && plan->n ? &plan->constraints[0] : NULL;

	fprintf(stderr, "\r\033[Kaviso-trace: run %u/%u, %u failures; baseline %u runs, %u failed; %s%s%s",
		k->runs, total, k->failures, k->baseline_runs, k->baseline_failures,
		c ? "loaded " : "baseline run", c ? (c->b_where[0] ? c->b_where : c->b) : "",
		c ? " -> " : "");
	if (c)
		fputs(c->a_where[0] ? c->a_where : c->a, stderr);
	fflush(stderr);
}

static void
summary(struct model *m, const char *id, const char *store, const struct tally *k)
{
	struct model_stats *st;
	const struct model_constraint_stats *best = NULL;

	fprintf(stderr, "aviso-trace: %u runs, %u failed\n", k->runs, k->failures);
	if (model_stats_get(m, id, &st) < 0 || st->n == 0) {
		fprintf(stderr, "aviso-trace: no statistics in %s\n", store);
		return;
	}
	const struct model_program_stats *p = &st->programs[0];
	fprintf(stderr, "  baseline runs: %" PRIu64 ", failure rate %.1f%% (%" PRIu64 " failures)\n",
		p->baseline_runs, 100.0 * p->baseline_rate, p->baseline_failures);
	fprintf(stderr, "  runs with constraints: %" PRIu64 ", failure rate %.1f%% (%" PRIu64
			" failures)\n",
		p->constrained_runs,
		p->constrained_runs ? 100.0 * (double)p->constrained_failures /
					      (double)p->constrained_runs
				    : 0.0,
		p->constrained_failures);
	for (size_t i = 0; i < p->n_classes; i++)
		for (size_t j = 0; j < p->classes[i].n; j++) {
			const struct model_constraint_stats *c = &p->classes[i].c[j];
			if (c->effective && (!best || c->chi2 > best->chi2))
				best = c;
		}
	if (best)
		fprintf(stderr, "  best constraint: %s -> %s, chi-square %.1f, %" PRIu64
				" runs, failure rate %.1f%%\n",
			best->b_where[0] ? best->b_where : best->b,
			best->a_where[0] ? best->a_where : best->a, best->chi2, best->runs,
			100.0 * best->rate);
	else
		fprintf(stderr, "  no effective constraint yet (%zu candidates in %zu classes)\n",
			p->n_constraints, p->n_classes);
	fprintf(stderr, "  statistics: aviso-server --db %s, then http://127.0.0.1:22221/stats\n",
		store);
	model_stats_free(st);
}

/* One run: plan, launch, trace, outcome. Returns 0 (status in *ret_status) or a launch error. */
static int
one_run(struct model *m, const struct model_program *prog, const struct tracer_options *opt,
	const struct tracer_runs_options *ro, const char *path, char *const argv[],
	struct tally *k, int *ret_status)
{
	struct model_plan *plan = NULL;
	struct tracer *t = NULL;
	const char **ids = NULL;
	size_t nids = 0;
	int r;

	if (m && model_run_start(m, prog, NULL, &plan) < 0)
		plan = NULL; /* the program runs anyway, as a baseline run */
	r = tracer_create(opt, &t);
	if (r < 0)
		goto leave;
	if (ro->constraints) {
		r = tracer_load_constraints(t, ro->constraints, (uint64_t)ro->delay_us * 1000);
		if (r < 0)
			goto leave;
	} else if (plan && !plan->baseline && !ro->no_avoid) {
		struct fsm_constraint *c = plan_constraints(plan);
		ids = calloc(plan->n, sizeof(*ids));
		if (c && ids && tracer_load_constraint_set(t, c, plan->n, 0) == 0)
			for (size_t i = 0; i < plan->n; i++)
				ids[nids++] = plan->constraints[i].id;
		free(c);
	}
	if (ro->runs > 1 && isatty(STDERR_FILENO))
		progress(k, ro->runs, nids ? plan : NULL);
	r = tracer_launch(t, path, argv);
	if (r < 0)
		goto leave;
	current_pid = tracer_main_pid(t);
	r = tracer_run(t, ret_status);
	current_pid = 0;
	if (r < 0)
		goto leave;
	if (opt->summary)
		tracer_print_summary(t, stderr);

	bool failed;
	const struct model_event *rpb;
	size_t n;
	tracer_outcome(t, &failed, &rpb, &n);
	k->runs++;
	k->failures += failed;
	k->baseline_runs += nids == 0;
	k->baseline_failures += nids == 0 && failed;
	/*
	 * AVISO.md samples a correct run 0.1 to 20 s after its start; a run that ended well
	 * before that gives its final RPB as its sample (one per run), or short programs would
	 * never teach the model which orders are normal.
	 */
	if (plan && !failed && n > 0) {
		int e = model_run_correct(m, plan->run, rpb, n);
		if (e < 0)
			log_msg("the model did not take the sample of run %s: %s", plan->run,
				strerror(-e));
	}
	if (plan) {
		struct model_report rep = {
			.run = plan->run,
			.failed = failed,
			.have_constraints = true,
			.constraints = ids,
			.n_constraints = nids,
			.rpb = failed ? rpb : NULL,
			.n_rpb = failed ? n : 0,
		};
		int e = model_run_end(m, &rep);
		if (e < 0)
			log_msg("the model did not take run %s: %s", plan->run, strerror(-e));
	}
leave:
	free(ids);
	tracer_destroy(t);
	model_plan_free(plan);
	return r;
}

int
tracer_runs(const struct tracer_options *opt, const struct tracer_runs_options *ro,
	    const char *path, char *const argv[], int *ret_status)
{
	struct model_options mo;
	struct model *m = NULL;
	struct tally k = {0};
	char store[4096];
	char *id = program_id(path);
	struct model_program prog = {.id = id, .path = path};
	int r = 0;

	model_options_init(&mo);
	if (ro->have_seed) {
		mo.seed = ro->seed;
		mo.snapshot_ms = 0; /* every choice replays exactly */
	}
	if (ro->delay_us)
		mo.delay_us = ro->delay_us;
	if (!ro->no_model) {
		r = state_dir(ro->state_dir, "model", store, sizeof(store));
		if (r == 0)
			r = model_open(store, &mo, &m);
		if (r < 0) /* the program runs all the same, without avoidance */
			log_msg("no model (store %s): %s", store, strerror(-r));
	}
	r = 0;
	for (unsigned i = 0; i < ro->runs; i++) {
		r = one_run(m, &prog, opt, ro, path, argv, &k, ret_status);
		if (r < 0)
			break;
		/* An interrupt from the terminal ends the series, as it ends the program. */
		if (WIFSIGNALED(*ret_status) && WTERMSIG(*ret_status) == SIGINT)
			break;
	}
	if (ro->runs > 1 && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (ro->runs > 1 && m && r == 0)
		summary(m, id, store, &k);
	model_close(m);
	free(id);
	return r;
}
