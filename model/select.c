/*
 * The choice at the start of a run (AVISO.md section 5), pure: baseline or not, then for each
 * failure class the best effective constraint (exploit) or a draw (explore) by the selected rule.
 * Deterministic in the PRNG's state, so a run's seed replays its choice.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

static const char *const selector_names[MODEL_SELECT__COUNT] = {
    [MODEL_SELECT_PAPER] = "paper",
    [MODEL_SELECT_THOMPSON] = "thompson",
    [MODEL_SELECT_THOMPSON_MAX] = "thompson-max",
};

static const char *const baseline_names[MODEL_BASELINE__COUNT] = {
    [MODEL_BASELINE_PAPER] = "paper",
    [MODEL_BASELINE_CONTENDER] = "contender",
};

/* The index of @name in @names[0..n-1], or -EINVAL. */
static int
name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *
model_selector_name(enum model_selector sel)
{
	return (unsigned)sel < MODEL_SELECT__COUNT ? selector_names[sel] : "?";
}

int
model_selector_parse(const char *name, enum model_selector *ret_sel)
{
	int i = name_index(selector_names, MODEL_SELECT__COUNT, name);

	if (i < 0)
		return i;
	*ret_sel = (enum model_selector)i;
	return 0;
}

const char *
model_baseline_name(enum model_baseline_rule rule)
{
	return (unsigned)rule < MODEL_BASELINE__COUNT ? baseline_names[rule] : "?";
}

int
model_baseline_parse(const char *name, enum model_baseline_rule *ret)
{
	int i = name_index(baseline_names, MODEL_BASELINE__COUNT, name);

	if (i < 0)
		return i;
	*ret = (enum model_baseline_rule)i;
	return 0;
}

/* What a class's share of the failures counts: its baseline failures, or all of its own. */
static uint64_t
class_share(const struct sel_input *in, const struct sel_class *c)
{
	return in->class_counts ? c->base_failures : c->failures;
}

/*
 * MODEL_BASELINE_CONTENDER's condition: every class with candidates that holds at least
 * SELECT_MAJOR_CLASS of the failures of such classes has a decisive contender (baseline runs
 * do nothing for a class without candidates) (a single odd failure must
 * not keep the share at 10% forever). False when no class has candidates. Residual classes
 * do not count: they are measured against their parent constraint, not the baseline.
 *
 * With the class counts (sel_input.class_counts), a class's share is of the baseline runs'
 * failures, which no constraint changed: of all its failures, a rare class's share grows as
 * the main class's contender avoids the main class's (cxx_map: 3 failures, 1 in 827 runs of its
 * best constraint, none in the baseline's 92 runs, kept the share at 10% for 1000 runs).
 *
 * A contender that ends the 10% baseline share must be decisive (model_stat_decisive()):
 * chi-square above SELECT_DECISIVE_CHI2 (p < 0.001, not 0.05: hundreds of candidates are tested
 * against one baseline) and at most half the baseline's failure rate. A merely effective one can
 * be a baseline measured high by chance (cxx_workq: 12 failures in 40 baseline runs, 30% against
 * 21% over 1000, made a useless constraint at 16.4% effective), and with the share at 1% the
 * baseline would never be measured well enough to undo it.
 */
static bool
major_classes_have_contenders(const struct sel_input *in)
{
	uint64_t total = 0;
	bool any = false;

	for (size_t k = 0; k < in->n_classes; k++)
		total += in->classes[k].n && !in->classes[k].under
			     ? class_share(in, &in->classes[k])
			     : 0;
	for (size_t k = 0; k < in->n_classes; k++) {
		const struct sel_class *c = &in->classes[k];
		if (c->n == 0 || c->under ||
		    (double)class_share(in, c) < SELECT_MAJOR_CLASS * (double)total)
			continue;
		long best = model_select_best_effective(c);
		if (best < 0 || !model_stat_decisive(c->base_runs, c->base_failures,
						     c->c[best].runs, c->c[best].failures))
			return false;
		any = true;
	}
	return any;
}

double
model_select_base_share(const struct sel_input *in)
{
	if (model_stat_baseline_known(in->base_runs, in->base_failures))
		return SELECT_BASE_SHARE_LATE;
	if (in->baseline == MODEL_BASELINE_CONTENDER && major_classes_have_contenders(in))
		return SELECT_BASE_SHARE_LATE;
	return SELECT_BASE_SHARE_EARLY;
}

double
model_select_base_rate(uint64_t base_runs, uint64_t base_failures)
{
	return ((double)base_failures + 1.0) / ((double)base_runs + 2.0);
}

/*
 * What a constraint is worth if its failure rate is @rate: its rank times the share of the
 * baseline's failures it avoids (0 when it fails as often as the baseline or more). Scoring
 * 1 - rate instead would let a well-ranked constraint known to be useless outscore every less
 * well-ranked one forever: rank x (1 - base) can exceed what a lower rank ever reaches.
 *
 * The rank is a prior belief worth SELECT_RANK_RUNS runs: after @runs runs of the constraint
 * it counts as rank^(k / (k + runs)), so evidence overrides it. As a plain factor it kept a
 * culprit of rank 0.007 (its racy order also shows in correct runs) behind a useless
 * constraint of rank 0.2 that looked better than an imprecise baseline, 740 runs at 0.5%
 * failures against 103 at 16.5% (cxx_workq).
 */
static double
worth(double rank, uint64_t runs, double rate, double base_rate)
{
	double gain = base_rate > 0 ? 1.0 - rate / base_rate : 1.0 - rate;
	double prior = runs ? pow(rank, SELECT_RANK_RUNS / (SELECT_RANK_RUNS + (double)runs)) : rank;

	return prior * (gain > 0 ? gain : 0);
}

/* Posterior mean of a constraint's failure rate, the prior centred on @base_rate. */
static double
posterior_mean(const struct sel_con *c, double base_rate)
{
	return (SELECT_PRIOR_RUNS * base_rate + (double)c->failures) /
	       (SELECT_PRIOR_RUNS + (double)c->runs);
}

double
model_select_weight(enum model_selector sel, const struct sel_con *c, double base_rate)
{
	switch (sel) {
	case MODEL_SELECT_PAPER:
		return model_stat_weight_paper(c->rank, c->runs, c->failures);
	case MODEL_SELECT_THOMPSON:
		return pow(worth(c->rank, c->runs, posterior_mean(c, base_rate), base_rate),
			   SELECT_SHARPEN);
	default:
		return worth(c->rank, c->runs, posterior_mean(c, base_rate), base_rate);
	}
}

long
model_select_best_effective(const struct sel_class *c)
{
	long best = -1;

	for (size_t i = 0; i < c->n; i++) {
		const struct sel_con *x = &c->c[i];
		if (!x->effective)
			continue;
		if (best < 0) {
			best = (long)i;
			continue;
		}
		const struct sel_con *y = &c->c[best];
		/* Lower rate first (cross-multiplied), then more runs, then higher chi-square. */
		double lx = (double)x->failures * (double)y->runs;
		double ly = (double)y->failures * (double)x->runs;
		if (lx < ly ||
		    (lx == ly && (x->runs > y->runs || (x->runs == y->runs && x->chi2 > y->chi2))))
			best = (long)i;
	}
	return best;
}

/* Thompson score of one constraint: its worth at one sampled failure rate. */
static double
thompson_score(const struct sel_con *c, double base_rate, struct prng *rng)
{
	double a = SELECT_PRIOR_RUNS * base_rate + (double)c->failures;
	double b = SELECT_PRIOR_RUNS * (1.0 - base_rate) + (double)(c->runs - c->failures);
	return worth(c->rank, c->runs, model_prng_beta(rng, a, b), base_rate);
}

/* A draw proportional to @w[0..n-1]; uniform when they are all 0. */
static long
draw_weighted(const double *w, size_t n, struct prng *rng)
{
	double total = 0;

	for (size_t i = 0; i < n; i++)
		total += w[i];
	if (!(total > 0))
		return (long)(model_prng_unit(rng) * (double)n);
	double u = model_prng_unit(rng) * total;
	for (size_t i = 0; i < n; i++) {
		if (u < w[i])
			return (long)i;
		u -= w[i];
	}
	return (long)n - 1; /* rounding */
}

/*
 * Thompson sampling's argmax: the constraint of highest worth at its sampled rate. An untried
 * constraint's score never exceeds its rank, so in rank order, past the first rank below the
 * best score, only constraints already tried (whose prior has faded) are still sampled.
 */
static long
explore_thompson_max(const struct sel_class *c, double base, struct prng *rng, double *ret_best)
{
	double best = -1;
	long pick = -1;
	bool untried_out = false;

	for (size_t i = 0; i < c->n; i++) {
		if (pick >= 0 && c->c[i].rank <= best)
			untried_out = true;
		if (untried_out && c->c[i].runs == 0)
			continue;
		double w = thompson_score(&c->c[i], base, rng);
		if (pick < 0 || w > best) {
			best = w;
			pick = (long)i;
		}
	}
	*ret_best = best;
	return pick;
}

/* The rate class @c's constraints are weighed against: the baseline's failures of its kind,
 * or its parent constraint's. */
static double
class_base_rate(const struct sel_class *c)
{
	return model_select_base_rate(c->base_runs, c->base_failures);
}

/*
 * Explores class @c: one draw by the selector. A residual class may draw nothing (-1) when no
 * constraint of it is worth anything at its sampled rate: its parent alone is the alternative,
 * which a class of its own has in the baseline. Else a residual class whose candidates are all
 * known useless would still load one on top of its parent in every run (atom_ptr: the
 * failures its culprit leaves are the VM's timing, which no pair of events reorders).
 */
static long
explore(const struct sel_input *in, const struct sel_class *c, struct prng *rng)
{
	double base = class_base_rate(c), best = 0;

	if (in->selector == MODEL_SELECT_THOMPSON_MAX) {
		long pick = explore_thompson_max(c, base, rng, &best);
		return c->under && !(best > 0) ? -1 : pick;
	}
	double *w = malloc(c->n * sizeof(*w));
	if (!w) {
		/* Out of memory: still answer; a uniform draw is a valid exploration. */
		return (long)(model_prng_unit(rng) * (double)c->n);
	}
	for (size_t i = 0; i < c->n; i++) {
		if (in->selector == MODEL_SELECT_PAPER)
			w[i] =
			    model_stat_weight_paper(c->c[i].rank, c->c[i].runs, c->c[i].failures);
		else
			w[i] = pow(thompson_score(&c->c[i], base, rng), SELECT_SHARPEN);
	}
	for (size_t i = 0; i < c->n; i++)
		best += w[i];
	long pick = draw_weighted(w, c->n, rng);
	free(w);
	return c->under && !(best > 0) ? -1 : pick;
}

/* Class @c's constraint for a run that is not a baseline run: exploit or explore. */
static long
choose(const struct sel_input *in, const struct sel_class *c, struct prng *rng)
{
	long best = model_select_best_effective(c);

	if (best >= 0 && model_prng_unit(rng) < SELECT_EXPLOIT_SHARE)
		return best;
	return explore(in, c, rng);
}

/* Whether this run (@choice) loads the parent constraint of residual class @c. */
static bool
loads_parent(const struct sel_input *in, const struct sel_class *c, const long *choice)
{
	if (c->parent >= in->n_classes || in->classes[c->parent].under || choice[c->parent] < 0)
		return false;
	return in->classes[c->parent].c[choice[c->parent]].cid == c->under - 1;
}

bool
model_select_run(const struct sel_input *in, struct prng *rng, long *ret_choice)
{
	bool any = false;

	for (size_t k = 0; k < in->n_classes; k++) {
		ret_choice[k] = -1;
		any |= in->classes[k].n > 0;
	}
	/* Nothing learned yet: every run is a baseline run. */
	if (!any)
		return true;
	if (model_prng_unit(rng) < model_select_base_share(in))
		return true;
	for (size_t k = 0; k < in->n_classes; k++)
		if (in->classes[k].n && !in->classes[k].under)
			ret_choice[k] = choose(in, &in->classes[k], rng);
	/* Then each residual class, on top of its parent constraint when the run loads it. */
	for (size_t k = 0; k < in->n_classes; k++)
		if (in->classes[k].n && in->classes[k].under &&
		    loads_parent(in, &in->classes[k], ret_choice))
			ret_choice[k] = choose(in, &in->classes[k], rng);
	return false;
}
