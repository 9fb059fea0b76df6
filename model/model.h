/*
 * The Aviso model (AVISO.md sections 3-6): candidate constraints learned from failure RPBs,
 * failure classes, correct-run pair counts, the rank and weight of each constraint, the choice of
 * what a run loads, outcomes per constraint and baseline, and the chi-square test of each
 * constraint against the baseline. Everything persists in an LMDB store (one directory, keyed
 * by program) and every update is one transaction.
 *
 * Used by aviso-server (over HTTP) and by aviso-trace directly (embedded mode): nothing here
 * knows about HTTP. Thread-safe: one struct model may be used by many threads at once, and
 * several processes may open the same store directory at once.
 *
 * Errors: every fallible call returns 0 (or a count) on success and -errno on failure:
 *   -EINVAL  a malformed argument (bad run id, unknown constraint id for the run's program, ...)
 *   -ENOENT  an unknown run id
 *   -EALREADY the run has already ended
 *   -ENOMEM, -EIO, -ENOSPC (disk full), -EACCES: from the store
 * On failure nothing was written: a report is either fully counted or not at all.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/event.h"

/* How the exploring share of runs draws a constraint (AVISO.md section 5). */
enum model_selector {
	/* The paper: a draw proportional to P = rank * exp(8 (1 - FR) - 0.7) + 0.001 once used,
	 * P = rank before. Starves with hundreds of candidates; kept for comparison. */
	MODEL_SELECT_PAPER,
	/* Thompson sampling: sample each constraint's failure rate from a Beta posterior centred
	 * on the baseline rate, score = (rank * max(0, 1 - sampled rate / baseline rate))^4, draw proportionally to the
	 * score. */
	MODEL_SELECT_THOMPSON,
	/* Thompson sampling, taking the constraint of highest score (the same, not raised to
	 * the 4th power) instead of a proportional draw. The default: it finds the culprit soonest in the
	 * simulation (server/README.md has the figures). */
	MODEL_SELECT_THOMPSON_MAX,
	MODEL_SELECT__COUNT
};

#define MODEL_SELECT_DEFAULT MODEL_SELECT_THOMPSON_MAX

/*
 * When the share of baseline runs (no constraint) falls from 10% to 1% (AVISO.md section 5).
 */
enum model_baseline_rule {
	/* AVISO.md: once the baseline failure rate is known within +/-5 points at 95%. At a
	 * 30% rate that takes ~340 baseline runs, ~3400 runs: a series of 1000 keeps ~100
	 * unprotected runs, so no series can fail less than a tenth as often as no avoidance. */
	MODEL_BASELINE_PAPER,
	/* The same, or as soon as every failure class holding at least 10% of the failures (and
	 * having candidates) has a decisive contender (chi-square > 10.83, at most half the
	 * baseline's rate): the baseline is then known well enough to tell a constraint that
	 * helps. It rises back to 10% when that stops being so. The default (server/README.md
	 * has the simulation's figures). */
	MODEL_BASELINE_CONTENDER,
	MODEL_BASELINE__COUNT
};

#define MODEL_BASELINE_DEFAULT MODEL_BASELINE_CONTENDER

/* "paper", "contender"; "?" out of range. */
const char *model_baseline_name(enum model_baseline_rule rule);
/* Returns 0, or -EINVAL for an unknown name (*ret untouched). */
int model_baseline_parse(const char *name, enum model_baseline_rule *ret);

/* "paper", "thompson", "thompson-max"; "?" out of range. */
const char *model_selector_name(enum model_selector sel);
/* Returns 0, or -EINVAL for an unknown name (*ret_sel untouched). */
int model_selector_parse(const char *name, enum model_selector *ret_sel);

/* Defaults of AVISO.md section 8; set by model_options_init(). */
struct model_options {
	unsigned window;       /* pair window: pairs (e_i, e_j) with j - i in 1..window-1; 10 */
	bool intervening_rule; /* paper's rule: no event of e_i's thread between e_i and e_j */
	unsigned delay_us;     /* delay served with each constraint; 1000 */
	enum model_selector selector;
	enum model_baseline_rule baseline; /* when the baseline share falls to 1% */
	double class_similarity; /* a failure joins a class at or above this similarity; 0.8 */
	size_t map_size;	 /* initial LMDB map size in bytes (it grows on demand); 64 MiB */
	bool no_sync;		 /* skip fsync at commit: survives kill -9, not a power cut */
	uint64_t seed;		 /* master seed: run seeds are drawn from it in start order */
	/* A start may choose on a snapshot of the model up to this old (ms) instead of the
	 * latest: building one reads every constraint. 0 (the default): always the latest, so a
	 * seed replays a choice exactly. */
	unsigned snapshot_ms;
};

void model_options_init(struct model_options *opts);

struct model;

/*
 * Opens (creating it if needed, mkdir included) the store in directory @dir. A process shares
 * one LMDB environment per directory whatever the number of model_open() calls on it (the
 * first open's map_size and no_sync apply to all).
 * *ret_model is valid until model_close().
 */
int model_open(const char *dir, const struct model_options *opts, struct model **ret_model);
/* Closes @m (NULL is fine). No call on @m may be in progress. */
void model_close(struct model *m);
/* The options @m was opened with (seed included). */
const struct model_options *model_get_options(const struct model *m);

/* A program: the main binary's build-id (may be "") and path. Together they are its key. */
struct model_program {
	const char *id;
	const char *path;
};

/* One constraint served to a run: "after B, delay A" (AVISO.md section 3). */
struct model_served {
	char id[24]; /* constraint id, unique within the program, never reused */
	uint32_t class_id;
	char *b, *a;		 /* sites, as reported */
	char *b_where, *a_where; /* symbolized sites, "" when unknown */
	unsigned delay_us;
};

/* What a run uses; from model_run_start(), freed by model_plan_free(). */
struct model_plan {
	char run[48];  /* run id ("<program>-<run>"), for model_run_end() & co. */
	uint64_t seed; /* the seed the choice used; give it back to replay the choice */
	bool baseline; /* no constraint: a baseline run */
	size_t n;
	struct model_served *constraints;
};

/*
 * Starts a run of @prog: chooses what it loads (AVISO.md section 5) and records the run. With
 * @seed NULL the seed is the next draw of the master seed's PRNG; otherwise *@seed is used, so a
 * choice can be replayed on the same model state. *ret_plan is the caller's to free.
 */
int model_run_start(struct model *m, const struct model_program *prog, const uint64_t *seed,
		    struct model_plan **ret_plan);
void model_plan_free(struct model_plan *plan);

/* The end of a run. */
struct model_report {
	const char *run;
	bool failed;
	/* The constraints the run actually loaded (ids). With have_constraints false, those
	 * the run was served. */
	bool have_constraints;
	const char *const *constraints;
	size_t n_constraints;
	/* The failure RPB (any order; sorted by seq here). Ignored for a success. */
	const struct model_event *rpb;
	size_t n_rpb;
};

/*
 * Counts the outcome of a run for its constraints (or the baseline), and for a failure
 * classifies it and adds its candidate constraints. One transaction. A run ends once.
 */
int model_run_end(struct model *m, const struct model_report *report);

/* Counts a correct-run sample of run @run: the pair counts f(x, y) (AVISO.md section 4). */
int model_run_correct(struct model *m, const char *run, const struct model_event *rpb, size_t n);

/* A logical tick of a long-running program: one success for what run @run loaded. */
int model_run_tick(struct model *m, const char *run);

/* Statistics: everything the stats page shows. */
struct model_constraint_stats {
	char id[24];
	const char *b, *a, *b_where, *a_where; /* owned by the stats */
	/* Correct-sample counts of A then B, and of B then A. */
	uint64_t f_ab, f_ba;
	/* F(B,A): failures of the class with (B,A) among their candidates. */
	uint64_t failing_with;
	double oi, ci, fc, rank;
	double weight;		 /* the selector's deterministic weight (paper: P) */
	/* Runs that loaded it, and how many of those failed with a failure of its class's kind
	 * (a residual class's kind is its parent's class): what it is judged on. all_failures
	 * counts every failure of its runs, those of other classes too (another constraint loaded
	 * beside it had them to avoid); in stores older than the class counts, the same. */
	uint64_t runs, failures, all_failures;
	double rate;	/* failures / runs, 0 when unused */
	double chi2;	/* 2x2 against the baseline's failures of its kind (class base_failures) */
	bool effective; /* a contender: chi2 > 3.84 and rate below the baseline's */
};

struct model_class_stats {
	uint32_t id;
	/* 0, or a residual class: the failures of runs that loaded constraint under - 1, a
	 * decisive contender of another class; its constraints are loaded on top of that one and
	 * compared with its outcomes (JSON: "under": that constraint's id, absent for 0). */
	uint32_t under;
	uint64_t failures; /* F */
	/* Its constraints are compared with base_failures in base_runs runs: the baseline's
	 * failures of its kind, or for a residual class its parent constraint's. */
	uint64_t base_runs, base_failures;
	size_t n_sites;	   /* sites of its exemplar failure */
	size_t n;	   /* constraints, sorted by weight, highest first */
	struct model_constraint_stats *c;
};

/* A cumulative-failure curve: after x[i] runs of the group, y[i] of them had failed. */
struct model_curve {
	size_t n;
	uint64_t *x, *y;
};

struct model_program_stats {
	uint32_t num;
	char *id, *path;
	uint64_t runs_started, runs_ended, open_runs;
	uint64_t baseline_runs, baseline_failures;
	uint64_t constrained_runs, constrained_failures;
	uint64_t ticks, correct_samples;
	double baseline_rate; /* failures / runs, 0 without runs */
	bool baseline_known;  /* within +/-5% at 95%: the baseline share falls to 1% */
	double baseline_share; /* of the runs started now: 0.10 or 0.01 (the baseline rule) */
	size_t n_classes;
	struct model_class_stats *classes;
	size_t n_constraints, n_contenders;
	struct model_curve baseline_curve, constrained_curve; /* at most ~256 points each */
};

struct model_stats {
	enum model_selector selector;
	size_t n;
	struct model_program_stats *programs;
};

/*
 * Reads the statistics of every program, or only of the one whose build-id or path is
 * @program (NULL: all), in one read transaction (never waits for writers).
 */
int model_stats_get(struct model *m, const char *program, struct model_stats **ret_stats);
void model_stats_free(struct model_stats *stats);
/* Keeps in each class of @stats its @limit heaviest constraints and every contender (the
 * program's counts, n_constraints and n_contenders included, stay as they were). */
void model_stats_trim(struct model_stats *stats, size_t limit);

/* The store's map size and the bytes its data occupies. */
int model_disk_usage(struct model *m, size_t *ret_map, size_t *ret_used);

/*
 * JSON forms (model/json.c, the json-c boundary). Parse functions return 0, or -EINVAL with
 * *ret_error set to a static message; -ENOMEM. Parsed strings point into the object parsed and
 * stay valid until the matching *_fini().
 */
struct model_json_doc; /* a parsed body: owns every string the parse results point to */
void model_json_doc_free(struct model_json_doc *doc);

struct model_start_request {
	struct model_program prog;
	int64_t pid;	  /* 0 when absent */
	const char *host; /* NULL when absent */
	/* "seed": the run's choice uses it (model_run_start()'s @seed), so a client can replay a
	 * choice, or make the one an embedded model would make. Absent: the server draws one. */
	bool have_seed;
	uint64_t seed;
	/* "offline_run": the client's own id of a run it made while the server was unreachable,
	 * sent when it replays that run (informational); NULL when absent. */
	const char *offline_run;
};
int model_json_parse_start(const char *body, size_t len, struct model_json_doc **ret_doc,
			   struct model_start_request *ret_req, const char **ret_error);
/* Formats a /start body (the client side); *ret_json is malloc'd. */
int model_json_format_start(const struct model_start_request *req, char **ret_json);

/* Which body model_json_parse_report() reads, and so which fields it requires. */
enum model_json_report {
	MODEL_JSON_END,	    /* run, outcome; constraints, failure, rpb optional */
	MODEL_JSON_CORRECT, /* run, rpb */
	MODEL_JSON_TICK,    /* run */
};

/* Parses a /end, /correct or /tick body into *ret_report (its rpb fields for /correct too). */
int model_json_parse_report(const char *body, size_t len, enum model_json_report kind,
			    struct model_json_doc **ret_doc, struct model_report *ret_report,
			    const char **ret_error);

/*
 * Formats a /end, /correct or /tick body (the client side) from @rep: /end writes "outcome",
 * "constraints" (when rep->have_constraints) and, for a failure, "rpb"; /correct its "rpb";
 * /tick only "run". *ret_json is malloc'd.
 */
int model_json_format_report(const struct model_report *rep, enum model_json_report kind,
			     char **ret_json);

/* Formats @n events as a JSON array (model_event_format_json() each); *ret_json is malloc'd. */
int model_json_format_rpb(const struct model_event *ev, size_t n, char **ret_json);

/* Parses an RPB (a JSON array of events); events' strings live in *ret_doc. */
int model_json_parse_rpb(const char *body, size_t len, struct model_json_doc **ret_doc,
			 struct model_event **ret_events, size_t *ret_n, const char **ret_error);

/*
 * Parses a /start answer (the client side: aviso-trace --server, tests). *ret_plan is the
 * caller's, freed by model_plan_free(); it owns its strings.
 */
int model_json_parse_plan(const char *body, size_t len, struct model_plan **ret_plan,
			  const char **ret_error);

/*
 * Parses an /api/stats answer (the client side: aviso-trace's summary) into *ret_stats, freed by
 * model_stats_free(). Reads the programs' counts, their classes and their constraints (every
 * field /api/stats writes for them); not the charts (their curves are left empty).
 */
int model_json_parse_stats(const char *body, size_t len, struct model_stats **ret_stats,
			   const char **ret_error);

/* Formats a plan as the /start answer; *ret_json is malloc'd. */
int model_json_format_plan(const struct model_plan *plan, char **ret_json);
/* Formats statistics as the /api/stats answer; *ret_json is malloc'd. */
int model_json_format_stats(const struct model_stats *stats, char **ret_json);
/* Formats {"error": msg}; *ret_json is malloc'd. */
int model_json_format_error(const char *msg, char **ret_json);
