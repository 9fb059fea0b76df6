/*
 * model/ private declarations: the store (the LMDB boundary, store.c), the key layout, the
 * pure pieces (PRNG, pair extraction, statistics, selection) that model.c composes, and that the
 * unit tests check on hand-computed tables.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* ---- PRNG (prng.c): xoshiro256**, seeded through splitmix64 ---- */

struct prng {
	uint64_t s[4];
};

void model_prng_seed(struct prng *r, uint64_t seed);
uint64_t model_prng_next(struct prng *r);
/* Uniform in [0, 1). */
double model_prng_unit(struct prng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang). */
double model_prng_gamma(struct prng *r, double shape);
/* Beta(a, b), a, b > 0. */
double model_prng_beta(struct prng *r, double a, double b);
/* splitmix64 step: a well-mixed function of @x (seeds derived from seeds). */
uint64_t model_prng_mix(uint64_t x);

/* ---- the store (store.c): the only file that includes lmdb.h ---- */

struct store;
struct store_txn;

/*
 * Opens the environment of directory @dir (created if missing). One environment per directory
 * per process: a second open of the same directory shares it (reference counted).
 */
int model_store_open(const char *dir, size_t map_size, bool no_sync, struct store **ret_store);
void model_store_close(struct store *s);

/* A transaction body: returns >= 0 to commit (a write) and keep going, -errno to abort. */
typedef int (*store_fn)(struct store_txn *t, void *arg);

/* Runs @fn in one read-only transaction; returns what @fn returned. Never waits for writers. */
int model_store_read(struct store *s, store_fn fn, void *arg);
/*
 * Runs @fn in one write transaction and commits it when @fn returns >= 0. When the map is full,
 * the transaction is aborted, the map grown and @fn run again from scratch: @fn must reset any
 * state it keeps in @arg when it starts.
 */
int model_store_write(struct store *s, store_fn fn, void *arg);

/* *ret_val points into the map, valid until the transaction ends. -ENOENT when absent. */
int model_store_get(struct store_txn *t, const void *key, size_t klen, const void **ret_val,
		    size_t *ret_len);
int model_store_put(struct store_txn *t, const void *key, size_t klen, const void *val,
		    size_t vlen);

/* Calls @fn on every key starting with @prefix, in key order; stops at @fn's first non-zero. */
typedef int (*store_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen, void *arg);
int model_store_scan(struct store_txn *t, const void *prefix, size_t plen, store_scan_fn fn,
		     void *arg);

/* The store's map size now (bytes), and the bytes its data uses. */
int model_store_size(struct store *s, size_t *ret_map, size_t *ret_used);

/* ---- keys (model.c): big-endian integers so scans run in numeric order ---- */

/*
 * Global keys:   'N' -> u32 next program number
 *                'P' id '\0' path -> u32 program number
 * Program keys:  'p' u32 prog, then a tag:
 *   'M'                 struct prog_meta
 *   'I'                 id '\0' path
 *   'S' u64 hash        u32 site id (open addressing on collisions: hash + 1, ...)
 *   's' u32 site        site '\0' where
 *   'f' u32 x u32 y     u64 f(x, y), correct-sample counts
 *   'r' u32 x           u64 sum over y of f(x, y)
 *   'c' u32 y           u64 sum over x of f(x, y)
 *   'C' u32 class       struct class_rec + u32 sites[] (its exemplar's site set, sorted)
 *   'K' u32 constraint  struct con_rec
 *   'k' u32 class u32 b u32 a -> u32 constraint
 *   'R' u64 run         struct run_rec + u32 constraints[]
 *   'O' u64 seq         u8 outcome flags (OUTCOME_*), in the order outcomes arrived
 *   'F' u32 constraint  u64 failures of its class's kind in runs that loaded it
 *   'B' u32 class       u64 failures of the class's kind in baseline runs
 * ('F' and 'B' only in programs with PROG_CLASS_COUNTS: model_rec_con_failures().)
 */
#define KEY_MAX 64

struct key {
	uint8_t b[KEY_MAX];
	size_t n;
};

void model_key_prog(struct key *k, uint32_t prog, char tag);
void model_key_u32(struct key *k, uint32_t v);
void model_key_u64(struct key *k, uint64_t v);
uint32_t model_key_get_u32(const void *p);
uint64_t model_key_get_u64(const void *p);

/* ---- RPB preparation and pairs (pairs.c) ---- */

/* An ordered pair of (local or store) site indices, and how often it was seen. */
struct pair {
	uint32_t b, a;
	uint64_t count;
};

/* An RPB in sequence order with its sites numbered locally (0..n_sites-1, sorted by string). */
struct rpb {
	size_t n;
	uint32_t *site;	  /* local site index of each event */
	uint32_t *thread; /* thread of each event */
	bool *delayable;  /* whether each event can be an A (a signal's delivery cannot) */
	size_t n_sites;
	const char **sites;  /* unique site strings, sorted; borrowed from the events */
	const char **wheres; /* a where string for each site, or NULL; borrowed */
	struct pair *waited; /* (the hold it waited for, a moved rwlock acquisition), local sites */
	size_t n_waited;
};

/* Moves each mutex or rwlock acquisition in @order (n event indices, sequence order) to where
 * it acquired: after the other threads' unlocks that exclude it before its thread's next event
 * (pairs.c has the rule). With @waited, the (hold, acquisition) event index pairs of the moved
 * rwlock acquisitions, malloc'd. 0 or -ENOMEM. */
int model_rpb_acquisition_order(const struct model_event *ev, size_t *order, size_t n,
				struct pair **waited, size_t *n_waited);
/* Sorts @ev by seq (stable), contended locks where they acquired, and numbers its sites. Free
 * with model_rpb_fini(). */
int model_rpb_init(struct rpb *r, const struct model_event *ev, size_t n);
void model_rpb_fini(struct rpb *r);

/*
 * The pairs (site(e_i), site(e_j)) of AVISO.md section 3: j - i in 1..window-1, different
 * threads, and with @intervening_rule no event of e_i's thread between them; with @delayable
 * (may be NULL: all), only e_j that can be delayed (a signal's delivery cannot: the tracer never
 * holds a thread there, and a fatal one is the failure itself). Distinct pairs, sorted by
 * (b, a), each with its number of occurrences. *ret_pairs is malloc'd; returns the number of
 * pairs or -ENOMEM.
 */
long model_pairs_extract(const uint32_t *site, const uint32_t *thread, size_t n, unsigned window,
			 bool intervening_rule, const bool *delayable, struct pair **ret_pairs);

/* The candidates of @r: model_pairs_extract()'s, and r->waited's (an rwlock acquisition after
 * the acquisition whose hold it waited for, pairs.c), merged the same way. */
long model_rpb_pairs(const struct rpb *r, unsigned window, bool intervening_rule,
		     struct pair **ret_pairs);

/* Jaccard similarity of two sorted sets of site ids: |A n B| / |A u B|, 1 when both empty. */
double model_sites_similarity(const uint32_t *x, size_t nx, const uint32_t *y, size_t ny);

/* ---- statistics (stats.c): AVISO.md sections 4 and 5, pure ---- */

/* OI(B,A) = f(A,B) / (f(A,B) + f(B,A)); 0.5 when both are 0. */
double model_stat_oi(uint64_t f_ab, uint64_t f_ba);
/*
 * The rank: OI * CI * FC (AVISO.md), with OI softened to RANK_OI_FLOOR + (1 - RANK_OI_FLOOR) *
 * OI. OI counts call entries in correct runs, and an entry comes before its effect: a culprit
 * whose entries often come in the racy order without harm (cxx_workq: f(B,A) = 106, f(A,B) =
 * 0, OI 0.009, in every failure) ranked 25 times below useless pairs, and Thompson sampling
 * never gave it the runs that would show it. OI still orders the candidates; it no longer
 * vetoes one that every failure has. 0.5 rather than 0.25 (session 5): aviso-sim's decoy world,
 * where a partly effective pair outranks such a culprit, fails 585 times over seeds 1-40 at 0.5
 * against 710 at 0.25 (worst seed 23 against 47), and the plain world 449 against 426.
 */
#define RANK_OI_FLOOR 0.5
double model_stat_rank(double oi, double ci, double fc);
/*
 * CI(B,A) = 1 - f(B,A) / (sum_{y != A} f(B,y) + sum_{x != B} f(x,A)), from f(B,A), the row
 * sum of B and the column sum of A; 0.5 when the denominator is 0; clamped to [0, 1].
 */
double model_stat_ci(uint64_t f_ba, uint64_t row_b, uint64_t col_a);
/* FC(B,A) = F(B,A) / F; 0 when F is 0. */
double model_stat_fc(uint64_t failing_with, uint64_t class_failures);
/* The paper's weight: rank before any use, rank * exp(8 (1 - FR) - 0.7) + 0.001 after. */
double model_stat_weight_paper(double rank, uint64_t runs, uint64_t failures);
/* Pearson chi-square of {{a, b}, {c, d}} without Yates' correction; 0 when a margin is 0. */
double model_stat_chi2(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* Effective: chi2 of {baseline, constraint} x {failed, succeeded} > 3.84, rate below baseline. */
bool model_stat_effective(uint64_t base_runs, uint64_t base_fail, uint64_t runs, uint64_t fail,
			  double *ret_chi2);
/*
 * Decisive: chi2 of {baseline, constraint} x {failed, succeeded} > SELECT_DECISIVE_CHI2 and a
 * failure rate at most half the baseline's (select.c says why a contender must be decisive to
 * end the 10% baseline share; records.c, for a failure to start a residual class).
 */
bool model_stat_decisive(uint64_t base_runs, uint64_t base_fail, uint64_t runs, uint64_t fail);
/*
 * True when the baseline failure rate is known within +/-5% at 95% (z = 2), by the
 * Agresti-Coull interval (adds 2 failures and 2 successes, so 0 of n is not "known" at once).
 */
bool model_stat_baseline_known(uint64_t runs, uint64_t failures);

/* ---- selection (select.c): AVISO.md section 5, pure ---- */

#define SELECT_BASE_SHARE_EARLY 0.10
#define SELECT_BASE_SHARE_LATE 0.01
/* Under MODEL_BASELINE_CONTENDER, a class needs a contender before the share falls when it
 * holds at least this share of the failures. */
#define SELECT_MAJOR_CLASS 0.10
/* ... and the contender's chi-square must exceed this (p < 0.001, df = 1). */
#define SELECT_DECISIVE_CHI2 10.83
#define SELECT_EXPLOIT_SHARE 0.75
/* Strength (in runs) of the Beta prior centred on the baseline rate: weak, so a few runs of a
 * constraint move it. */
#define SELECT_PRIOR_RUNS 2.0
/* The weight of a constraint's rank as a prior, in runs of the constraint (select.c worth()). */
#define SELECT_RANK_RUNS 30.0
/* The exponent that sharpens the proportional Thompson draw by rank. */
#define SELECT_SHARPEN 4.0

struct sel_con {
	uint32_t cid;
	double rank;
	uint64_t runs, failures; /* failures: of its class's kind (model_rec_con_failures()) */
	double chi2;
	bool effective;
};

struct sel_class {
	uint32_t id;
	uint64_t failures; /* the class's failures */
	size_t n;
	struct sel_con *c; /* sorted by rank, highest first (thompson-max stops early) */
	/*
	 * A residual class (class_rec.under): offered only in runs that load constraint
	 * under - 1, which class parent (an index) offers.
	 */
	uint32_t under;
	size_t parent;
	/* What its constraints are compared with: the baseline runs and their failures of the
	 * class's kind, or a residual class's parent constraint's runs and failures. */
	uint64_t base_runs, base_failures;
};

struct sel_input {
	enum model_selector selector;
	enum model_baseline_rule baseline;
	uint64_t base_runs, base_failures;
	/* The classes' base_failures are their kinds' baseline failures (PROG_CLASS_COUNTS) */
	bool class_counts;
	size_t n_classes;
	const struct sel_class *classes;
};

/*
 * Chooses what a run loads: baseline (all of ret_choice[] set to -1 and true returned), or for
 * each class the index of one constraint in it (-1 for a class without constraints, and for
 * a residual class when the run does not load its parent constraint).
 * @ret_choice has n_classes entries. Deterministic in @rng's state.
 */
bool model_select_run(const struct sel_input *in, struct prng *rng, long *ret_choice);
/* The share of baseline runs @in's rule gives now: SELECT_BASE_SHARE_EARLY or _LATE. */
double model_select_base_share(const struct sel_input *in);
/* Index of the best effective constraint of @c (lowest rate, then most runs), or -1. */
long model_select_best_effective(const struct sel_class *c);
/* The selector's deterministic weight of a constraint (what the stats page shows). */
double model_select_weight(enum model_selector sel, const struct sel_con *c, double base_rate);
/* The baseline rate the selectors centre their priors on: (failures + 1) / (runs + 2). */
double model_select_base_rate(uint64_t base_runs, uint64_t base_failures);

/* ---- records (records.c): programs, sites, runs, classes, candidates in the store ---- */

enum { OUTCOME_FAILED = 1, OUTCOME_BASELINE = 2 };

struct prog_meta {
	uint64_t gen; /* bumped by every update the choice at start reads */
	uint64_t runs_started, runs_ended;
	uint64_t base_runs, base_fail, con_runs, con_fail;
	uint64_t ticks, correct;
	uint64_t outcomes; /* next 'O' sequence number */
	uint32_t next_site, next_class, next_con;
	uint32_t flags; /* PROG_*; 0 in stores older than the flags */
};

/*
 * The program keeps the 'F' and 'B' counts from its first run: each constraint is judged on the
 * failures of its own class's kind. A run loads one constraint per class, and on all of its
 * failures a rare class's constraint rode on another class's contender and looked effective.
 * Without the flag (an older store) every failure of a run counts against what it loaded.
 */
#define PROG_CLASS_COUNTS 1u

struct class_rec {
	uint64_t failures;
	uint32_t n_sites;
	/*
	 * 0: a class of its own. Else a residual class, of the failures of runs that loaded a
	 * decisive contender, constraint under - 1, of its class (its parent): what that
	 * constraint left (records.c classify()). Older stores have 0 here.
	 */
	uint32_t under;
	/* followed by u32 sites[n_sites], sorted */
};

struct con_rec {
	uint32_t class_id, b, a, pad;
	uint64_t failing_with; /* F(B,A) */
	uint64_t runs, failures;
};

struct run_rec {
	uint64_t seed;
	uint64_t ticks;
	uint8_t ended, baseline, failed, pad;
	uint32_t n;
	/* followed by u32 constraints[n] */
};

/* Programs whose snapshot a model keeps for /start; why 8: one server rarely serves more
 * programs at once, and a miss only costs a rebuild. */
#define SNAP_CACHE 8

struct model {
	struct store *store;
	struct model_options opt;
	pthread_mutex_t lock; /* guards rng, cache and the snapshots' refs */
	struct prng rng;      /* the master seed's stream of run seeds */
	struct snap *cache[SNAP_CACHE];
};

struct snap_detail {
	struct con_rec rec;
	uint64_t f_ab, f_ba;
	double oi, ci, fc;
};

struct snap_class {
	uint32_t id;
	uint64_t failures;
	uint32_t n_sites;
	uint32_t under; /* class_rec.under */
	/* Its constraints are compared with these outcomes: the baseline's, or for a residual
	 * class those of its parent constraint, which class parent (an index) holds. */
	size_t parent;
	uint64_t base_runs, base_failures;
	size_t n, cap;
	struct sel_con *c;
	struct snap_detail *d;
};

struct snap {
	uint32_t prog;
	struct prog_meta meta; /* meta.gen: the store's state it was built from */
	uint64_t built_ns;     /* CLOCK_MONOTONIC when built */
	int refs;	       /* the cache's and each user's; under model.lock */
	bool rebuilding;       /* a caller is building its successor; under model.lock */
	size_t n_classes;
	struct snap_class *classes;
};

/* A one- and two-u32 program key ('p' prog tag x [y]). */
struct key model_rec_key1(uint32_t prog, char tag, uint32_t x);
struct key model_rec_key2(uint32_t prog, char tag, uint32_t x, uint32_t y);
/* Reads a fixed-size record; -ENOENT when absent, -EIO when shorter than @size. */
int model_rec_get(struct store_txn *t, const struct key *k, void *rec, size_t size);
int model_rec_put(struct store_txn *t, const struct key *k, const void *rec, size_t size);
/* A u64 counter (0 when absent), and adding to one. */
int model_rec_count_get(struct store_txn *t, const struct key *k, uint64_t *ret);
int model_rec_count_add(struct store_txn *t, const struct key *k, uint64_t delta);
int model_rec_meta_get(struct store_txn *t, uint32_t prog, struct prog_meta *meta);
int model_rec_meta_put(struct store_txn *t, uint32_t prog, const struct prog_meta *meta);
/* The number of @prog: -ENOENT when unknown; or created when unknown. */
int model_rec_prog_find(struct store_txn *t, const struct model_program *prog, uint32_t *ret_num);
int model_rec_prog_find_or_create(struct store_txn *t, const struct model_program *prog,
				  uint32_t *ret_num);
/* Site @id's strings, pointing into the map (valid in the transaction). */
int model_rec_site_strings(struct store_txn *t, uint32_t prog, uint32_t id, const char **ret_site,
			   const char **ret_where);
/* Interns every site of @rpb; @ret_ids[local] = store id. */
int model_rec_intern_sites(struct store_txn *t, uint32_t prog, const struct rpb *rpb,
			   struct prog_meta *meta, uint32_t *ret_ids);
/* Parses a run id "<program>-<run>"; -EINVAL when malformed. */
int model_rec_run_parse(const char *run, uint32_t *ret_prog, uint64_t *ret_run);
/* Run @num of @prog as a malloc'd record; -ENOENT when unknown. */
int model_rec_run_get(struct store_txn *t, uint32_t prog, uint64_t num, struct run_rec **ret_rec);
uint32_t *model_rec_run_cids(struct run_rec *rec);
int model_rec_run_put(struct store_txn *t, uint32_t prog, uint64_t num, const struct run_rec *rec);
/*
 * A constraint is judged on its runs' failures of its class's kind (a residual class's kind is
 * its parent constraint's class), against the baseline's failures of that kind. Constraint
 * @cid's (record @c) count of those, and top-level class @class_id's baseline count; without
 * PROG_CLASS_COUNTS in @meta, every failure: c->failures and meta->base_fail.
 */
int model_rec_con_failures(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
			   uint32_t cid, const struct con_rec *c, uint64_t *ret);
int model_rec_class_base(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
			 uint32_t class_id, uint64_t *ret);
/* Counts one outcome of a run that loaded @cids (none: baseline) everywhere it counts. */
int model_rec_count_outcome(struct store_txn *t, uint32_t prog, struct prog_meta *meta,
			    const uint32_t *cids, size_t n, bool failed);
/*
 * Learns from a failure RPB of a run that loaded @cids[0..n-1]: its class (a residual class when
 * it loaded a decisive contender of the class the failure is like), and its candidates.
 */
int model_rec_learn_failure(struct store_txn *t, const struct model_options *opt, uint32_t prog,
			    struct prog_meta *meta, const struct rpb *rpb, const uint32_t *cids,
			    size_t n);
int model_rec_cmp_u32(const void *x, const void *y);

/* ---- snapshots (snapshot.c): ranked models for the choice, and the statistics ---- */

uint64_t model_now_ns(void);
/* Loads program @prog's classes and constraints with their ranks, by rank in each class. */
int model_snap_load(struct store_txn *t, uint32_t prog, struct snap *s);
void model_snap_fini(struct snap *s);
/*
 * The selector's view of @s (NULL: an empty model) under @o: @in, whose classes point into
 * @classes (s->n_classes entries, at least 1) and into @s.
 */
void model_snap_sel_input(const struct snap *s, const struct model_options *o,
			  struct sel_class *classes, struct sel_input *in);
/* Drops a reference to heap snapshot @s (NULL is fine); frees it with the last one. */
void model_snap_put(struct model *m, struct snap *s);
/*
 * A reference to the cached snapshot of @prog if it is of store state @gen or younger than the
 * options' snapshot_ms, or if it is stale but another caller is rebuilding it; NULL when the
 * caller is to build one (then model_snap_cache_put() it, or model_snap_cache_abort() on
 * failure).
 */
struct snap *model_snap_cache_get(struct model *m, uint32_t prog, uint64_t gen);
void model_snap_cache_abort(struct model *m, uint32_t prog);
/* Caches @s (taking a reference), replacing an older one of its program or the oldest. */
void model_snap_cache_put(struct model *m, struct snap *s);
