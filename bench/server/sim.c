/*
 * The selector simulation (see sim.h).
 *
 * The program: threads 1..T, each with its own S sites ("sim+0x<t><s>", "sim.c:<line>").
 * An RPB is rpb_len events, each of a uniformly drawn thread at one of its sites. The culprit
 * is B = thread 1's first site followed by A = thread 2's first site: a failing run's RPB has
 * B, A back to back a few events before its end; a correct sample has A, B (the safe order).
 * In the decoy world (sim.h), thread 3's and 4's first sites come just before it in failures;
 * in the twin world, thread 2's second site comes just after A in failures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/server/sim.h"
#include "model/internal.h"

/* Where the culprit pair sits: this many events before the end of the RPB (the failure
 * follows the bad order closely). */
#define SIM_CULPRIT_TAIL 4
#define SIM_SITE_LEN 32

void
sim_params_init(struct sim_params *p, uint64_t seed)
{
	*p = (struct sim_params){
	    .seed = seed,
	    .runs = 400,
	    .threads = 4,
	    .sites_per_thread = 9,
	    .rpb_len = 120,
	    .p_fail = 0.3,
	};
}

void
sim_params_decoy(struct sim_params *p)
{
	p->racy = 0.5;
	p->decoy_effect = 0.45;
}

void
sim_params_twin(struct sim_params *p)
{
	p->twin_harm = 0.8;
}

struct sim {
	const struct sim_params *p;
	struct prng rng;
	char (*sites)[SIM_SITE_LEN]; /* [thread * S + s] */
	char (*wheres)[SIM_SITE_LEN];
	struct model_event *ev;
};

static const char *
site(struct sim *s, unsigned thread, unsigned k)
{
	return s->sites[(thread - 1) * s->p->sites_per_thread + k];
}

static void
event(struct sim *s, size_t i, unsigned thread, unsigned k)
{
	unsigned idx = (thread - 1) * s->p->sites_per_thread + k;

	s->ev[i] = (struct model_event){
	    .seq = i + 1,
	    .ns = (i + 1) * 1000,
	    .thread = thread,
	    .tid = 1000 + (int32_t)thread,
	    .pid = 1000,
	    .kind = MODEL_EV_MUTEX_LOCK,
	    .site = s->sites[idx],
	    .where = s->wheres[idx],
	};
}

/*
 * Fills s->ev with noise and the culprit pair in order @bad (B, A) or not (A, B); in the decoy
 * world a correct sample has it in the racy order too at times, and the decoy pair (threads 3
 * and 4) comes before it: B3, A4 in a failure, A4, B3 in a correct sample. In the twin world
 * a failure has B, A, A' (A' thread 2's second site) and a correct sample none of them in
 * order, as double_free's correct runs had neither its culprit nor its twin within the window.
 */
static void
make_rpb(struct sim *s, bool bad)
{
	size_t n = s->p->rpb_len, at = n - SIM_CULPRIT_TAIL;
	bool racy = bad || (s->p->racy > 0 && model_prng_unit(&s->rng) < s->p->racy);

	for (size_t i = 0; i < n; i++) {
		unsigned t = 1 + (unsigned)(model_prng_unit(&s->rng) * s->p->threads);
		event(s, i, t, (unsigned)(model_prng_unit(&s->rng) * s->p->sites_per_thread));
	}
	if (s->p->twin_harm > 0) {
		/* B, A, A' in a failure; nothing in a correct sample (the pairs' OI is 0.5). */
		if (racy) {
			event(s, at - 1, 1, 0);
			event(s, at, 2, 0);
			event(s, at + 1, 2, 1);
		}
	} else {
		event(s, at, racy ? 1 : 2, 0);
		event(s, at + 1, racy ? 2 : 1, 0);
	}
	if (s->p->decoy_effect > 0) {
		event(s, at - 2, bad ? 3 : 4, 0);
		event(s, at - 1, bad ? 4 : 3, 0);
	}
}

/* Whether @plan loads (site(bt, bk), site(at, ak)). */
static bool
plan_has(struct sim *s, const struct model_plan *plan, unsigned bt, unsigned bk, unsigned at,
	 unsigned ak)
{
	for (size_t i = 0; i < plan->n; i++)
		if (strcmp(plan->constraints[i].b, site(s, bt, bk)) == 0 &&
		    strcmp(plan->constraints[i].a, site(s, at, ak)) == 0)
			return true;
	return false;
}

/* One run: start, outcome, report. */
static int
sim_step(struct sim *s, const struct sim_backend *b, const struct model_program *prog,
	 struct sim_result *res, unsigned *culprit_runs, unsigned *culprit_fail)
{
	struct model_plan *plan;
	int r = b->start(b->ctx, prog, &plan);

	if (r < 0)
		return r;
	bool culprit = plan_has(s, plan, 1, 0, 2, 0);
	double p_fail = s->p->p_fail;
	if (s->p->decoy_effect > 0 && plan_has(s, plan, 3, 0, 4, 0))
		p_fail *= 1 - s->p->decoy_effect;
	if (s->p->twin_harm > 0 && plan_has(s, plan, 1, 0, 2, 1))
		p_fail *= 1 + s->p->twin_harm;
	bool failed = !culprit && model_prng_unit(&s->rng) < p_fail;
	make_rpb(s, failed);
	r = b->end(b->ctx, plan->run, failed, s->ev, s->p->rpb_len);
	if (r == 0 && !failed)
		r = b->correct(b->ctx, plan->run, s->ev, s->p->rpb_len);
	if (r == 0) {
		res->runs++;
		res->failures += failed;
		res->baseline_runs += plan->baseline;
		res->baseline_failures += plan->baseline && failed;
		res->culprit_served += culprit;
		*culprit_runs += culprit;
		*culprit_fail += culprit && failed;
		if (res->contender_run >= 0 && !plan->baseline) {
			res->late_runs++;
			res->late_failures += failed;
		}
	}
	model_plan_free(plan);
	return r;
}

int
sim_run(const struct sim_params *p, const struct sim_backend *b, struct sim_result *res)
{
	struct sim s = {.p = p};
	size_t nsites = (size_t)p->threads * p->sites_per_thread;
	char id[32];
	unsigned culprit_runs = 0, culprit_fail = 0;
	int r = -ENOMEM;

	memset(res, 0, sizeof(*res));
	res->contender_run = -1;
	model_prng_seed(&s.rng, p->seed);
	s.sites = calloc(nsites, sizeof(*s.sites));
	s.wheres = calloc(nsites, sizeof(*s.wheres));
	s.ev = calloc(p->rpb_len, sizeof(*s.ev));
	if (!s.sites || !s.wheres || !s.ev || p->rpb_len < SIM_CULPRIT_TAIL + 2 ||
	    (p->decoy_effect > 0 && p->threads < 4))
		goto leave;
	for (size_t i = 0; i < nsites; i++) {
		snprintf(s.sites[i], SIM_SITE_LEN, "sim+0x%zx", 0x1000 + 0x40 * i);
		snprintf(s.wheres[i], SIM_SITE_LEN, "sim.c:%zu", 100 + i);
	}
	snprintf(id, sizeof(id), "sim-%016" PRIx64, p->seed);
	struct model_program prog = {.id = id, .path = "/sim/program"};
	for (unsigned run = 0; run < p->runs; run++) {
		if ((r = sim_step(&s, b, &prog, res, &culprit_runs, &culprit_fail)) < 0)
			goto leave;
		if (res->contender_run < 0 &&
		    model_stat_effective(res->baseline_runs, res->baseline_failures, culprit_runs,
					 culprit_fail, NULL)) {
			res->contender_run = (int)run + 1;
			res->contender_failures = res->failures;
		}
	}
	r = 0;
leave:
	free(s.sites);
	free(s.wheres);
	free(s.ev);
	return r;
}

/* ---- the in-process backend ---- */

static int
model_start(void *ctx, const struct model_program *prog, struct model_plan **ret_plan)
{
	return model_run_start(ctx, prog, NULL, ret_plan);
}

static int
model_end(void *ctx, const char *run, bool failed, const struct model_event *rpb, size_t n)
{
	struct model_report rep = {.run = run, .failed = failed, .rpb = rpb, .n_rpb = n};
	return model_run_end(ctx, &rep);
}

static int
model_correct(void *ctx, const char *run, const struct model_event *rpb, size_t n)
{
	return model_run_correct(ctx, run, rpb, n);
}

void
sim_backend_model(struct model *m, struct sim_backend *ret)
{
	*ret = (struct sim_backend){
	    .ctx = m,
	    .start = model_start,
	    .end = model_end,
	    .correct = model_correct,
	};
}

char *
sim_rpb_json(const struct model_event *ev, size_t n)
{
	size_t cap = 2, len = 0;
	for (size_t i = 0; i < n; i++)
		cap += model_event_format_json(&ev[i], NULL, 0) + 1;
	char *out = malloc(cap + 1);
	if (!out)
		return NULL;
	out[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[len++] = ',';
		len += model_event_format_json(&ev[i], out + len, cap + 1 - len);
	}
	out[len++] = ']';
	out[len] = '\0';
	return out;
}
