/*
 * Runs of a program under avoidance (AVISO.md sections 5 and 6): each run asks the model which
 * constraints to load, runs the program under the tracer with them, and reports its outcome
 * (with the failure's Recent Past Buffer) back. The model is a backend (backend.h): embedded,
 * over an LMDB store under the state directory that `aviso-server --db` can serve, or an
 * aviso-server. --runs N does it N times in a row (the original Aviso runner's loop), with a
 * progress line on a terminal and a summary at the end.
 *
 * Seeds: a series has one seed (--seed, else drawn from getrandom), and run i's seed is a
 * fixed function of it, handed to the backend with the start; so the same seed on the same
 * model state makes the same choices, embedded or through a server.
 *
 * A server that does not answer never stops the program: the run is a baseline run, and its
 * outcome waits in the state directory's queue/ until the server takes it (client.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"
#include "fsm/fsm.h"
#include "model/model.h"
#include "tracer/backend.h"
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
/* The SIGTERM or SIGHUP that came: the series ends with the run in progress. 0: none. */
static volatile sig_atomic_t stop_series;

void
tracer_runs_forward(int sig)
{
	stop_series = sig;
	if (current_pid > 0)
		kill(current_pid, sig);
}

/* Makes @pid the program a SIGTERM or SIGHUP is passed on to, and passes on one that came before
 * it (while the run was being planned or launched); blocked meanwhile, it is passed on once. */
static void
forward_to(pid_t pid)
{
	sigset_t set, old;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	current_pid = pid;
	if (stop_series)
		kill(pid, stop_series);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Whether the run that ended with @status was stopped from outside: a SIGTERM or SIGHUP sent
 * to us (passed on), or the terminal's SIGINT. Its end says nothing about the program. */
static bool
interrupted(int status)
{
	return stop_series || (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
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

/* Run @i's seed: the (i + 1)th number of the series seed's splitmix64 stream. */
static uint64_t
run_seed(uint64_t series, unsigned i)
{
	uint64_t state = series + (uint64_t)i * 0x9e3779b97f4a7c15ULL;

	return splitmix64(&state);
}

static void
summary(struct backend *be, const char *id, const struct tally *k, uint64_t seed)
{
	struct model_stats *st;
	const struct model_constraint_stats *best = NULL;

	fprintf(stderr, "aviso-trace: %u runs, %u failed (seed %" PRIu64 ")\n", k->runs,
		k->failures, seed);
	if (be->ops->stats(be, id, &st) < 0 || st->n == 0) {
		fprintf(stderr, "aviso-trace: no statistics (%s)\n", be->where);
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
	fprintf(stderr, "  statistics: %s\n", be->where);
	model_stats_free(st);
}

/* The program's contenders (effective constraints) now; -1 when unknown. */
static int
contenders(struct backend *be, const char *id)
{
	struct model_stats *st;
	int n = -1;

	if (be && be->ops->stats(be, id, &st) == 0) {
		n = st->n ? (int)st->programs[0].n_contenders : 0;
		model_stats_free(st);
	}
	return n;
}

/* One line of --runs-log: what run @i loaded, how it ended, and the contenders after it. */
static void
log_run(FILE *f, unsigned i, const struct model_plan *plan, size_t nloaded, bool failed,
	int status, uint64_t ns, int contenders)
{
	if (!f)
		return;
	fprintf(f, "{\"n\":%u,\"run\":\"%s\",\"seed\":%" PRIu64 ",\"baseline\":%s,\"constraints\":[",
		i + 1, plan ? plan->run : "", plan ? plan->seed : 0, nloaded ? "false" : "true");
	for (size_t j = 0; j < nloaded; j++) {
		const struct model_served *c = &plan->constraints[j];
		fprintf(f, "%s{\"id\":\"%s\",\"b\":", j ? "," : "", c->id);
		json_put_string(f, c->b_where[0] ? c->b_where : c->b);
		fputs(",\"a\":", f);
		json_put_string(f, c->a_where[0] ? c->a_where : c->a);
		fputc('}', f);
	}
	fprintf(f, "],\"failed\":%s,\"status\":%d,\"ms\":%.1f,\"contenders\":%d}\n",
		failed ? "true" : "false", status, (double)ns / 1e6, contenders);
	fflush(f);
}

/* What a run in progress hands to the backend. */
struct handover {
	struct backend *be;
	const struct model_plan *plan;
	unsigned ticks;
};

static void
hand_sample(void *ctx, const struct model_event *rpb, size_t n)
{
	struct handover *h = ctx;
	int e = h->be->ops->correct(h->be, h->plan->run, rpb, n);

	if (e < 0)
		log_msg("the model did not take a sample of run %s: %s", h->plan->run,
			strerror(-e));
}

static void
hand_tick(void *ctx)
{
	struct handover *h = ctx;
	int e = h->be->ops->tick(h->be, h->plan->run);

	h->ticks++;
	if (e < 0 && h->ticks == 1) /* once: a tick is small, and there may be many */
		log_msg("the model did not take a tick of run %s: %s", h->plan->run,
			strerror(-e));
}

/* One run: plan, launch, trace, outcome. Returns 0 (status in *ret_status), 1 when the run was
 * interrupted and not reported, or a launch error. */
static int
one_run(struct backend *be, const struct model_program *prog, const struct tracer_options *opt,
	const struct tracer_runs_options *ro, uint64_t seed, unsigned i, const char *path,
	char *const argv[], struct tally *k, int *ret_status)
{
	struct model_plan *plan = NULL;
	struct tracer *t = NULL;
	const char **ids = NULL;
	size_t nids = 0;
	uint64_t t0 = now_ns();
	int r;

	if (be && be->ops->start(be, prog, &seed, &plan) < 0)
		plan = NULL; /* the program runs anyway, as a baseline run */
	struct tracer_options o = *opt;
	struct handover h = {.be = be, .plan = plan};
	const struct tracer_hooks hooks = {.ctx = &h, .sample = hand_sample, .tick = hand_tick};
	if (plan) {
		o.hooks = &hooks;
		o.sample_seed = seed;
	}
	r = tracer_create(&o, &t);
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
			for (size_t j = 0; j < plan->n; j++)
				ids[nids++] = plan->constraints[j].id;
		free(c);
	}
	if (ro->runs > 1 && isatty(STDERR_FILENO))
		progress(k, ro->runs, nids ? plan : NULL);
	r = tracer_launch(t, path, argv);
	if (r < 0)
		goto leave;
	forward_to(tracer_main_pid(t));
	r = tracer_run(t, ret_status);
	current_pid = 0;
	t0 = now_ns() - t0; /* the run's duration, from plan to exit */
	if (r < 0)
		goto leave;
	if (opt->summary)
		tracer_print_summary(t, stderr);
	if (interrupted(*ret_status)) {
		/* Neither a success nor the program's failure: not reported (the model shows it
		 * as an open run), not counted. */
		if (ro->runs > 1)
			log_msg("run %u interrupted: not reported", i + 1);
		r = 1;
		goto leave;
	}

	bool failed = false;
	const struct model_event *rpb = NULL;
	size_t n = 0;
	if (tracer_outcome(t, &failed, &rpb, &n) < 0) /* out of memory: the outcome, no RPB */
		n = 0, rpb = NULL;
	k->runs++;
	k->failures += failed;
	k->baseline_runs += nids == 0;
	k->baseline_failures += nids == 0 && failed;
	/*
	 * AVISO.md samples a correct run 0.1 to 20 s after its start (sample.c); a run that ended
	 * before its sample was taken gives its final RPB instead, or short programs would never
	 * teach the model which orders are normal.
	 */
	if (plan && !failed && n > 0 && opt->samples > 0 && tracer_samples_sent(t) == 0) {
		int e = be->ops->correct(be, plan->run, rpb, n);
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
		int e = be->ops->end(be, &rep);
		if (e < 0)
			log_msg("the model did not take run %s: %s", plan->run, strerror(-e));
	}
	if (ro->runs_log)
		log_run(ro->runs_log, i, plan, nids, failed, *ret_status, t0,
			contenders(be, prog->id));
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
	struct backend *be = NULL;
	struct tally k = {0};
	char store[4096];
	char *id = program_id(path);
	struct model_program prog = {.id = id, .path = path};
	uint64_t seed = ro->seed;
	int r = 0;

	if (!ro->have_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = now_ns() ^ ((uint64_t)getpid() << 32);
	model_options_init(&mo);
	mo.seed = seed;
	mo.baseline = ro->baseline_rule;
	if (ro->delay_us)
		mo.delay_us = ro->delay_us;
	if (!ro->no_model && ro->server) {
		/* Outcomes the server cannot take wait under the state directory; without one, they
		 * are not kept, and the server still gets what it can be sent at once. */
		r = state_dir(ro->state_dir, "queue", store, sizeof(store));
		if (r < 0)
			log_msg("no queue (%s): %s", store, strerror(-r));
		r = backend_open_server(ro->server, r == 0 ? store : NULL, &be);
		if (r < 0)
			log_msg("no model (server %s): %s", ro->server, strerror(-r));
	} else if (!ro->no_model) {
		r = state_dir(ro->state_dir, "model", store, sizeof(store));
		if (r == 0)
			r = backend_open_embedded(store, &mo, &be);
		if (r < 0) /* the program runs all the same, without avoidance */
			log_msg("no model (store %s): %s", store, strerror(-r));
	}
	r = 0;
	struct tracer_options o = *opt;
	o.site_memo = ro->runs > 1 ? site_memo_create() : NULL; /* NULL: each run its own */
	for (unsigned i = 0; i < ro->runs; i++) {
		if (stop_series) { /* it came between runs: the one before is reported */
			if (ro->runs > 1)
				log_msg("interrupted before run %u", i + 1);
			if (i == 0) /* no run's status: as if the program had been killed by it */
				*ret_status = stop_series;
			break;
		}
		r = one_run(be, &prog, &o, ro, run_seed(seed, i), i, path, argv, &k, ret_status);
		if (r != 0) { /* an interrupt ends the series, as it ends the program */
			r = r < 0 ? r : 0;
			break;
		}
	}
	if (ro->runs > 1 && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (ro->runs > 1 && be && r == 0)
		summary(be, id, &k, seed);
	site_memo_destroy(o.site_memo);
	backend_close(be);
	free(id);
	return r;
}
