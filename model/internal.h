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

void prng_seed(struct prng *r, uint64_t seed);
uint64_t prng_next(struct prng *r);
/* Uniform in [0, 1). */
double prng_unit(struct prng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang). */
double prng_gamma(struct prng *r, double shape);
/* Beta(a, b), a, b > 0. */
double prng_beta(struct prng *r, double a, double b);
/* splitmix64 step: a well-mixed function of @x (seeds derived from seeds). */
uint64_t prng_mix(uint64_t x);

/* ---- the store (store.c): the only file that includes lmdb.h ---- */

struct store;
struct store_txn;

/*
 * Opens the environment of directory @dir (created if missing). One environment per directory
 * per process: a second open of the same directory shares it (reference counted).
 */
int store_open(const char *dir, size_t map_size, bool no_sync, struct store **ret_store);
void store_close(struct store *s);

/* A transaction body: returns >= 0 to commit (a write) and keep going, -errno to abort. */
typedef int (*store_fn)(struct store_txn *t, void *arg);

/* Runs @fn in one read-only transaction; returns what @fn returned. Never waits for writers. */
int store_read(struct store *s, store_fn fn, void *arg);
/*
 * Runs @fn in one write transaction and commits it when @fn returns >= 0. When the map is full,
 * the transaction is aborted, the map grown and @fn run again from scratch: @fn must reset any
 * state it keeps in @arg when it starts.
 */
int store_write(struct store *s, store_fn fn, void *arg);

/* *ret_val points into the map, valid until the transaction ends. -ENOENT when absent. */
int store_get(struct store_txn *t, const void *key, size_t klen, const void **ret_val,
	      size_t *ret_len);
int store_put(struct store_txn *t, const void *key, size_t klen, const void *val, size_t vlen);

/* Calls @fn on every key starting with @prefix, in key order; stops at @fn's first non-zero. */
typedef int (*store_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen,
			     void *arg);
int store_scan(struct store_txn *t, const void *prefix, size_t plen, store_scan_fn fn, void *arg);

/* The store's map size now (bytes), and the bytes its data uses. */
int store_size(struct store *s, size_t *ret_map, size_t *ret_used);

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
 */
#define KEY_MAX 64

struct key {
	uint8_t b[KEY_MAX];
	size_t n;
};

void key_prog(struct key *k, uint32_t prog, char tag);
void key_u32(struct key *k, uint32_t v);
void key_u64(struct key *k, uint64_t v);
uint32_t key_get_u32(const void *p);
uint64_t key_get_u64(const void *p);

/* ---- RPB preparation and pairs (pairs.c) ---- */

/* An RPB in sequence order with its sites numbered locally (0..n_sites-1, sorted by string). */
struct rpb {
	size_t n;
	uint32_t *site;		 /* local site index of each event */
	uint32_t *thread;	 /* thread of each event */
	size_t n_sites;
	const char **sites;	 /* unique site strings, sorted; borrowed from the events */
	const char **wheres;	 /* a where string for each site, or NULL; borrowed */
};

/* Sorts @ev by seq (stable) and numbers its sites. Free with rpb_fini(). */
int rpb_init(struct rpb *r, const struct model_event *ev, size_t n);
void rpb_fini(struct rpb *r);

/* An ordered pair of (local or store) site indices, and how often it was seen. */
struct pair {
	uint32_t b, a;
	uint64_t count;
};

/*
 * The pairs (site(e_i), site(e_j)) of AVISO.md section 3: j - i in 1..window-1, different
 * threads, and with @intervening_rule no event of e_i's thread between them. Distinct pairs,
 * sorted by (b, a), each with its number of occurrences. *ret_pairs is malloc'd; returns the
 * number of pairs or -ENOMEM.
 */
long pairs_extract(const uint32_t *site, const uint32_t *thread, size_t n, unsigned window,
		   bool intervening_rule, struct pair **ret_pairs);

/* Jaccard similarity of two sorted sets of site ids: |A n B| / |A u B|, 1 when both empty. */
double sites_similarity(const uint32_t *x, size_t nx, const uint32_t *y, size_t ny);

/* ---- statistics (stats.c): AVISO.md sections 4 and 5, pure ---- */

/* OI(B,A) = f(A,B) / (f(A,B) + f(B,A)); 0.5 when both are 0. */
double stat_oi(uint64_t f_ab, uint64_t f_ba);
/*
 * CI(B,A) = 1 - f(B,A) / (sum_{y != A} f(B,y) + sum_{x != B} f(x,A)), from f(B,A), the row
 * sum of B and the column sum of A; 0.5 when the denominator is 0; clamped to [0, 1].
 */
double stat_ci(uint64_t f_ba, uint64_t row_b, uint64_t col_a);
/* FC(B,A) = F(B,A) / F; 0 when F is 0. */
double stat_fc(uint64_t failing_with, uint64_t class_failures);
/* The paper's weight: rank before any use, rank * exp(8 (1 - FR) - 0.7) + 0.001 after. */
double stat_weight_paper(double rank, uint64_t runs, uint64_t failures);
/* Pearson chi-square of {{a, b}, {c, d}} without Yates' correction; 0 when a margin is 0. */
double stat_chi2(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* Effective: chi2 of {baseline, constraint} x {failed, succeeded} > 3.84, rate below baseline. */
bool stat_effective(uint64_t base_runs, uint64_t base_fail, uint64_t runs, uint64_t fail,
		    double *ret_chi2);
/*
 * True when the baseline failure rate is known within +/-5% at 95% (z = 2), by the
 * Agresti-Coull interval (adds 2 failures and 2 successes, so 0 of n is not "known" at once).
 */
bool stat_baseline_known(uint64_t runs, uint64_t failures);

/* ---- selection (select.c): AVISO.md section 5, pure ---- */

#define SELECT_BASE_SHARE_EARLY 0.10
#define SELECT_BASE_SHARE_LATE 0.01
#define SELECT_EXPLOIT_SHARE 0.75
/* Strength (in runs) of the Beta prior centred on the baseline rate: weak, so a few runs of a
 * constraint move it. */
#define SELECT_PRIOR_RUNS 2.0
/* The exponent that sharpens the proportional Thompson draw by rank. */
#define SELECT_SHARPEN 4.0

struct sel_con {
	uint32_t cid;
	double rank;
	uint64_t runs, failures;
	double chi2;
	bool effective;
};

struct sel_class {
	uint32_t id;
	size_t n;
	struct sel_con *c;
};

struct sel_input {
	enum model_selector selector;
	uint64_t base_runs, base_failures;
	size_t n_classes;
	const struct sel_class *classes;
};

/*
 * Chooses what a run loads: baseline (all of ret_choice[] set to -1 and true returned), or for
 * each class the index of one constraint in it (-1 for a class without constraints).
 * @ret_choice has n_classes entries. Deterministic in @rng's state.
 */
bool select_run(const struct sel_input *in, struct prng *rng, long *ret_choice);
/* Index of the best effective constraint of @c (lowest rate, then most runs), or -1. */
long select_best_effective(const struct sel_class *c);
/* The selector's deterministic weight of a constraint (what the stats page shows). */
double select_weight(enum model_selector sel, const struct sel_con *c, double base_rate);
/* The baseline rate the selectors centre their priors on: (failures + 1) / (runs + 2). */
double select_base_rate(uint64_t base_runs, uint64_t base_failures);
