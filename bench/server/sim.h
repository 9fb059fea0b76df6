/*
 * The selector simulation (issue 4): a synthetic program with a known culprit pair, whose runs
 * fail with probability p unless the culprit constraint is loaded, reported to a model either
 * in-process (the model API) or through a real aviso-server (HTTP). Its failure RPBs carry the
 * culprit pair among noise pairs; its correct-run samples carry the pair in the safe order.
 * Every random choice comes from the seed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

struct sim_params {
	uint64_t seed;
	unsigned runs;		   /* 400 */
	unsigned threads;	   /* 4 */
	unsigned sites_per_thread; /* 9: 36 sites, 972 cross-thread pairs */
	unsigned rpb_len;	   /* events per RPB: 120 */
	double p_fail;		   /* 0.3 */
	/*
	 * The "decoy" world (0 and 0 in the plain one), after cxx_workq and points_flag: a correct
	 * sample shows the culprit in its racy order with probability @racy (its OI, and rank,
	 * fall), and a second pair of threads 3 and 4 comes in every failure just before it, in
	 * the safe order in correct samples (it ranks above the culprit). Loaded without the
	 * culprit, that decoy lowers the failure probability by @decoy_effect: partly effective.
	 */
	double racy, decoy_effect;
	/*
	 * The "twin" world (0 in the others), after double_free: in every failure thread 2's second
	 * site A' follows the culprit's A (B, A, A'), and correct samples hold neither pair in
	 * order, so the twin pair (B, A') ranks as high as the culprit. Loaded without the
	 * culprit it makes things worse: the failure probability is multiplied by 1 + @twin_harm
	 * (delaying the wrong call of the right thread widened double_free's window: its twin
	 * failed 13 of its 34 runs in four bench series, against a 14% baseline).
	 */
	double twin_harm;
};

void sim_params_init(struct sim_params *p, uint64_t seed);
/* Switches @p to the decoy world (racy 0.5, decoy_effect 0.45). */
void sim_params_decoy(struct sim_params *p);
/* Switches @p to the twin world (twin_harm 0.8: a twin alone fails 54% of its runs). */
void sim_params_twin(struct sim_params *p);

struct sim_result {
	unsigned runs, failures;
	unsigned baseline_runs, baseline_failures;
	unsigned culprit_served;     /* runs that loaded the culprit */
	int contender_run;	     /* first run after which the culprit is a contender; -1 */
	unsigned contender_failures; /* failures up to that run */
	unsigned late_runs, late_failures; /* non-baseline runs after it, and their failures */
};

/* Where the simulated program reports. The functions return 0 or -errno. */
struct sim_backend {
	void *ctx;
	int (*start)(void *ctx, const struct model_program *prog, struct model_plan **ret_plan);
	int (*end)(void *ctx, const char *run, bool failed, const struct model_event *rpb,
		   size_t n);
	int (*correct)(void *ctx, const char *run, const struct model_event *rpb, size_t n);
};

/* In-process: straight onto @m. */
void sim_backend_model(struct model *m, struct sim_backend *ret);

/* Runs the simulation; the program is named after the seed so runs can share a store. */
int sim_run(const struct sim_params *p, const struct sim_backend *b, struct sim_result *ret);

/* Formats events as a JSON array (malloc'd) for the HTTP backend. */
char *sim_rpb_json(const struct model_event *ev, size_t n);
