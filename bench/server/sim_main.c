/*
 * aviso-sim: the selector simulation side by side (server/README.md has its figures).
 * In-process on a fresh store per (selector, seed), or through a running server (--url).
 *
 *   aviso-sim [--runs 400] [--seeds 1-8] [--selector NAME|all] [--baseline-rule NAME|all]
 *             [--world plain|decoy|twin] [--url http://HOST:PORT]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/server/httpc.h"
#include "bench/server/sim.h"

/* @candidates: constraints the model learned, 0 when unknown (through a server). */
static void
print_row(const char *sel, const char *rule, uint64_t seed, const struct sim_result *r,
	  size_t candidates)
{
	printf("%-13s %-9s %4" PRIu64 " %5u %8u %9u %8u %9d %10u %7u %9.3f %10zu\n", sel, rule, seed,
	       r->runs, r->failures, r->baseline_runs, r->culprit_served, r->contender_run, r->contender_failures,
	       r->late_runs, r->late_runs ? (double)r->late_failures / r->late_runs : 0.0,
	       candidates);
}

/* One simulation on a fresh temporary store. */
static int
run_local(enum model_selector sel, enum model_baseline_rule rule, const struct sim_params *p,
	  struct sim_result *res, size_t *ret_candidates)
{
	char dir[] = "/tmp/aviso-sim-XXXXXX";
	struct model_options o;
	struct model *m;
	struct sim_backend b;
	int r;

	if (!mkdtemp(dir))
		return -errno;
	model_options_init(&o);
	o.selector = sel;
	o.baseline = rule;
	o.seed = p->seed;
	o.no_sync = true; /* a throwaway store */
	r = model_open(dir, &o, &m);
	if (r == 0) {
		sim_backend_model(m, &b);
		r = sim_run(p, &b, res);
		struct model_stats *st;
		if (r == 0 && (r = model_stats_get(m, NULL, &st)) == 0) {
			*ret_candidates = st->n ? st->programs[0].n_constraints : 0;
			model_stats_free(st);
		}
		model_close(m);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "aviso-sim: could not remove %s\n", dir);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"runs", required_argument, NULL, 'r'},
	    {"seeds", required_argument, NULL, 's'},
	    {"selector", required_argument, NULL, 'S'},
	    {"url", required_argument, NULL, 'u'},
	    {"baseline-rule", required_argument, NULL, 'b'},
	    {"world", required_argument, NULL, 'w'},
	    {0},
	};
	unsigned runs = 400, first = 1, last = 8;
	const char *selname = "all", *rulename = NULL, *url = NULL;
	void (*world)(struct sim_params *) = NULL; /* the plain world */
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			runs = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			if (sscanf(optarg, "%u-%u", &first, &last) != 2)
				first = last = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'S':
			selname = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'b':
			rulename = optarg;
			break;
		case 'w':
			if (strcmp(optarg, "decoy") == 0)
				world = sim_params_decoy;
			else if (strcmp(optarg, "twin") == 0)
				world = sim_params_twin;
			else if (strcmp(optarg, "plain") == 0)
				world = NULL;
			else {
				fprintf(stderr,
					"aviso-sim: unknown world '%s' (plain, decoy, twin)\n",
					optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: aviso-sim [--runs N] [--seeds A-B] "
					"[--selector NAME|all] [--baseline-rule NAME|all] "
					"[--world plain|decoy|twin] [--url BASE]\n");
			return 2;
		}
	}
	if (!rulename)
		rulename = model_baseline_name(MODEL_BASELINE_DEFAULT);
	enum model_baseline_rule only;
	if (strcmp(rulename, "all") != 0 && model_baseline_parse(rulename, &only) < 0) {
		fprintf(stderr, "aviso-sim: unknown baseline rule '%s'\n", rulename);
		return 2;
	}
	printf("selector      baseline  seed  runs failures baseline  culprit contender  failures-  "
	       "late    late candidates\n"
	       "                                         runs   served  after-run  to-contend  "
	       "runs    rate\n");
	/* Every (selector, baseline rule) pair asked for, selector first. */
	for (int k = 0; k < MODEL_SELECT__COUNT * MODEL_BASELINE__COUNT; k++) {
		int s = k / MODEL_BASELINE__COUNT, rule = k % MODEL_BASELINE__COUNT;
		const char *name = model_selector_name(s);
		const char *rname = model_baseline_name(rule);
		if (strcmp(selname, "all") != 0 && strcmp(selname, name) != 0)
			continue;
		if (strcmp(rulename, "all") != 0 && strcmp(rulename, rname) != 0)
			continue;
		if (url && (s != MODEL_SELECT_DEFAULT || rule != MODEL_BASELINE_DEFAULT))
			continue; /* a server has its own selector and rule */
		for (unsigned seed = first; seed <= last; seed++) {
			struct sim_params p;
			struct sim_result res;
			struct sim_backend b;
			size_t candidates = 0;
			int r;
			sim_params_init(&p, seed);
			p.runs = runs;
			if (world)
				world(&p);
			if (url) {
				sim_backend_http(url, &b);
				r = sim_run(&p, &b, &res);
			} else {
				r = run_local(s, rule, &p, &res, &candidates);
			}
			if (r < 0) {
				fprintf(stderr, "aviso-sim: %s seed %u: %s\n", name, seed,
					strerror(-r));
				return 1;
			}
			print_row(url ? "(server)" : name, url ? "(server)" : rname, seed, &res,
				  candidates);
			fflush(stdout);
		}
	}
	return 0;
}
