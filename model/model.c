/*
 * The model over the store (AVISO.md sections 4-6): programs, sites, classes, constraints, runs
 * and outcomes as LMDB records (key layout in internal.h), and the four operations on them:
 * start a run, end it, count a correct-run sample, count a tick; plus the statistics snapshot.
 * Each operation is one transaction. The math and the choice are the pure functions of
 * stats.c, pairs.c and select.c; this file only reads and writes records.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/internal.h"

/* Probing bound of the site hash: a chain this long means a broken hash, not bad luck. */
#define SITE_PROBES 64
/* Program keys (id and path) longer than this are refused: LMDB keys are at most 511 bytes. */
#define PROG_KEY_MAX 480
/* Points per curve of the stats chart. */
#define CURVE_POINTS 256

enum { OUTCOME_FAILED = 1, OUTCOME_BASELINE = 2 };

struct prog_meta {
	uint64_t gen;		/* bumped by every update the choice at start reads */
	uint64_t runs_started, runs_ended;
	uint64_t base_runs, base_fail, con_runs, con_fail;
	uint64_t ticks, correct;
	uint64_t outcomes;	/* next 'O' sequence number */
	uint32_t next_site, next_class, next_con, pad;
};

struct class_rec {
	uint64_t failures;
	uint32_t n_sites, pad;
	/* followed by u32 sites[n_sites], sorted */
};

struct con_rec {
	uint32_t class_id, b, a, pad;
	uint64_t failing_with;	/* F(B,A) */
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
	pthread_mutex_t lock;	/* guards rng, cache and the snapshots' refs */
	struct prng rng;	/* the master seed's stream of run seeds */
	struct snap *cache[SNAP_CACHE];
};

/* ---- keys and small records ---- */

void
key_prog(struct key *k, uint32_t prog, char tag)
{
	k->n = 0;
	k->b[k->n++] = 'p';
	key_u32(k, prog);
	k->b[k->n++] = (uint8_t)tag;
}

void
key_u32(struct key *k, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		k->b[k->n++] = (uint8_t)(v >> (8 * i));
}

void
key_u64(struct key *k, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		k->b[k->n++] = (uint8_t)(v >> (8 * i));
}

uint32_t
key_get_u32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t
key_get_u64(const void *p)
{
	return (uint64_t)key_get_u32(p) << 32 | key_get_u32((const uint8_t *)p + 4);
}

static struct key
key1(uint32_t prog, char tag, uint32_t x)
{
	struct key k;
	key_prog(&k, prog, tag);
	key_u32(&k, x);
	return k;
}

static struct key
key2(uint32_t prog, char tag, uint32_t x, uint32_t y)
{
	struct key k = key1(prog, tag, x);
	key_u32(&k, y);
	return k;
}

/* Reads a fixed-size record; -ENOENT when absent, -EIO when shorter than @size. */
static int
get_rec(struct store_txn *t, const struct key *k, void *rec, size_t size)
{
	const void *v;
	size_t len;
	int ret = store_get(t, k->b, k->n, &v, &len);

	if (ret < 0)
		return ret;
	if (len < size)
		return -EIO;
	memcpy(rec, v, size);
	return 0;
}

static int
put_rec(struct store_txn *t, const struct key *k, const void *rec, size_t size)
{
	return store_put(t, k->b, k->n, rec, size);
}

/* A u64 counter; 0 when absent. */
static int
get_count(struct store_txn *t, const struct key *k, uint64_t *ret)
{
	int r = get_rec(t, k, ret, sizeof(*ret));

	if (r == -ENOENT) {
		*ret = 0;
		return 0;
	}
	return r;
}

static int
add_count(struct store_txn *t, const struct key *k, uint64_t delta)
{
	uint64_t v;
	int r = get_count(t, k, &v);

	if (r < 0)
		return r;
	v += delta;
	return put_rec(t, k, &v, sizeof(v));
}

static int
meta_get(struct store_txn *t, uint32_t prog, struct prog_meta *meta)
{
	struct key k;

	key_prog(&k, prog, 'M');
	return get_rec(t, &k, meta, sizeof(*meta));
}

static int
meta_put(struct store_txn *t, uint32_t prog, const struct prog_meta *meta)
{
	struct key k;

	key_prog(&k, prog, 'M');
	return put_rec(t, &k, meta, sizeof(*meta));
}

/* ---- programs ---- */

/* Builds the global key of a program into @buf (PROG_KEY_MAX + 1 bytes). */
static int
prog_key(const struct model_program *prog, uint8_t *buf, size_t *ret_len)
{
	size_t li = strlen(prog->id), lp = strlen(prog->path);

	if (1 + li + 1 + lp > PROG_KEY_MAX)
		return -ENAMETOOLONG;
	buf[0] = 'P';
	memcpy(buf + 1, prog->id, li);
	buf[1 + li] = '\0';
	memcpy(buf + 2 + li, prog->path, lp);
	*ret_len = 2 + li + lp;
	return 0;
}

/* The number of @prog; -ENOENT when unknown. */
static int
prog_find(struct store_txn *t, const struct model_program *prog, uint32_t *ret_num)
{
	uint8_t k[PROG_KEY_MAX + 1];
	size_t klen;
	const void *v;
	int r = prog_key(prog, k, &klen);

	if (r < 0)
		return r;
	r = store_get(t, k, klen, &v, NULL);
	if (r < 0)
		return r;
	memcpy(ret_num, v, sizeof(*ret_num));
	return 0;
}

/* The number of @prog, creating it (and its meta) when unknown. */
static int
prog_find_or_create(struct store_txn *t, const struct model_program *prog, uint32_t *ret_num)
{
	uint8_t k[PROG_KEY_MAX + 1];
	size_t klen;
	uint64_t next;
	int r = prog_find(t, prog, ret_num);

	if (r != -ENOENT)
		return r;
	prog_key(prog, k, &klen);
	struct key nk = { .n = 1, .b = { 'N' } };
	if ((r = get_count(t, &nk, &next)) < 0)
		return r;
	uint32_t num = (uint32_t)(next ? next : 1);
	next = num + 1;
	struct prog_meta meta = { .next_site = 1, .next_class = 1, .next_con = 1 };
	struct key ik;
	key_prog(&ik, num, 'I');
	if ((r = put_rec(t, &nk, &next, sizeof(next))) < 0 ||
	    (r = store_put(t, k, klen, &num, sizeof(num))) < 0 ||
	    (r = store_put(t, ik.b, ik.n, k + 1, klen - 1)) < 0 || (r = meta_put(t, num, &meta)) < 0)
		return r;
	*ret_num = num;
	return 0;
}

/* ---- sites ---- */

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

/* The site and where strings of site @id; they point into the map (valid in the txn). */
static int
site_strings(struct store_txn *t, uint32_t prog, uint32_t id, const char **ret_site,
	     const char **ret_where)
{
	struct key k = key1(prog, 's', id);
	const void *v;
	size_t len;
	int r = store_get(t, k.b, k.n, &v, &len);

	if (r < 0)
		return r;
	*ret_site = v;
	*ret_where = (const char *)v + strlen(v) + 1;
	return 0;
}

/*
 * The store id of @site in @prog, interning it (and its @where, if it had none) when @meta is
 * given; -ENOENT when absent and @meta is NULL.
 */
static int
site_id(struct store_txn *t, uint32_t prog, const char *site, const char *where,
	struct prog_meta *meta, uint32_t *ret_id)
{
	uint64_t h = fnv1a(site);
	size_t ls = strlen(site), lw = where ? strlen(where) : 0;
	int r;

	for (int probe = 0; probe < SITE_PROBES; probe++) {
		struct key k;
		const void *v;
		key_prog(&k, prog, 'S');
		key_u64(&k, h + (uint64_t)probe);
		r = store_get(t, k.b, k.n, &v, NULL);
		if (r == -ENOENT && !meta)
			return r;
		if (r == -ENOENT) {
			uint32_t id = meta->next_site++;
			char *val = malloc(ls + lw + 2);
			if (!val)
				return -ENOMEM;
			memcpy(val, site, ls + 1);
			memcpy(val + ls + 1, where ? where : "", lw + 1);
			struct key sk = key1(prog, 's', id);
			r = store_put(t, sk.b, sk.n, val, ls + lw + 2);
			free(val);
			if (r < 0 || (r = store_put(t, k.b, k.n, &id, sizeof(id))) < 0)
				return r;
			*ret_id = id;
			return 0;
		}
		if (r < 0)
			return r;
		uint32_t id;
		const char *s, *w;
		memcpy(&id, v, sizeof(id));
		if ((r = site_strings(t, prog, id, &s, &w)) < 0)
			return r;
		if (strcmp(s, site) != 0)
			continue; /* a collision: probe on */
		if (meta && lw && !w[0]) {
			/* Learn the symbolized form the first time a report brings one. */
			char *val = malloc(ls + lw + 2);
			if (!val)
				return -ENOMEM;
			memcpy(val, site, ls + 1);
			memcpy(val + ls + 1, where, lw + 1);
			struct key sk = key1(prog, 's', id);
			r = store_put(t, sk.b, sk.n, val, ls + lw + 2);
			free(val);
			if (r < 0)
				return r;
		}
		*ret_id = id;
		return 0;
	}
	return -EIO;
}

/* Interns every site of @rpb; @ret_ids[local] = store id. */
static int
intern_sites(struct store_txn *t, uint32_t prog, const struct rpb *rpb, struct prog_meta *meta,
	     uint32_t *ret_ids)
{
	for (size_t i = 0; i < rpb->n_sites; i++) {
		int r = site_id(t, prog, rpb->sites[i], rpb->wheres[i], meta, &ret_ids[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- runs ---- */

/* Parses "<program>-<run>" (decimal, no sign, no spaces). */
static int
run_parse(const char *run, uint32_t *ret_prog, uint64_t *ret_run)
{
	unsigned long long p, n;
	int len = 0;

	if (!run || sscanf(run, "%llu-%llu%n", &p, &n, &len) != 2 || run[len] != '\0' ||
	    run[0] < '0' || run[0] > '9' || !strchr(run, '-')[1] ||
	    strchr(run, '-')[1] < '0' || strchr(run, '-')[1] > '9' || p == 0 || p > UINT32_MAX ||
	    n == 0)
		return -EINVAL;
	*ret_prog = (uint32_t)p;
	*ret_run = n;
	return 0;
}

/* Loads run @num of @prog into a malloc'd record (*ret_rec); -ENOENT when unknown. */
static int
run_get(struct store_txn *t, uint32_t prog, uint64_t num, struct run_rec **ret_rec)
{
	struct key k;
	const void *v;
	size_t len;
	int r;

	key_prog(&k, prog, 'R');
	key_u64(&k, num);
	if ((r = store_get(t, k.b, k.n, &v, &len)) < 0)
		return r;
	struct run_rec head;
	if (len < sizeof(head))
		return -EIO;
	memcpy(&head, v, sizeof(head));
	if (len < sizeof(head) + head.n * sizeof(uint32_t))
		return -EIO;
	struct run_rec *rec = malloc(len);
	if (!rec)
		return -ENOMEM;
	memcpy(rec, v, len);
	*ret_rec = rec;
	return 0;
}

static uint32_t *
run_cids(struct run_rec *rec)
{
	return (uint32_t *)(rec + 1);
}

static int
run_put(struct store_txn *t, uint32_t prog, uint64_t num, const struct run_rec *rec)
{
	struct key k;

	key_prog(&k, prog, 'R');
	key_u64(&k, num);
	return store_put(t, k.b, k.n, rec, sizeof(*rec) + rec->n * sizeof(uint32_t));
}

/*
 * Counts one outcome of a run that loaded @cids[0..n-1] (none: a baseline run): per
 * constraint, in the baseline or constrained totals, and in the outcome log.
 */
static int
count_outcome(struct store_txn *t, uint32_t prog, struct prog_meta *meta, const uint32_t *cids,
	      size_t n, bool failed)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		struct key k = key1(prog, 'K', cids[i]);
		struct con_rec c;
		if ((r = get_rec(t, &k, &c, sizeof(c))) < 0)
			return r;
		c.runs++;
		c.failures += failed;
		if ((r = put_rec(t, &k, &c, sizeof(c))) < 0)
			return r;
	}
	if (n == 0) {
		meta->base_runs++;
		meta->base_fail += failed;
	} else {
		meta->con_runs++;
		meta->con_fail += failed;
	}
	struct key ok;
	key_prog(&ok, prog, 'O');
	key_u64(&ok, meta->outcomes++);
	uint8_t flags = (failed ? OUTCOME_FAILED : 0) | (n == 0 ? OUTCOME_BASELINE : 0);
	return store_put(t, ok.b, ok.n, &flags, 1);
}

/* ---- classes and candidates ---- */

struct classify {
	const uint32_t *sites;
	size_t n;
	double best;
	uint32_t best_id;
};

static int
classify_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct classify *c = arg;
	struct class_rec rec;

	if (klen != 1 + 4 + 1 + 4 || vlen < sizeof(rec))
		return -EIO;
	memcpy(&rec, val, sizeof(rec));
	if (vlen < sizeof(rec) + rec.n_sites * sizeof(uint32_t))
		return -EIO;
	/* The exemplar's ids, copied: the map need not be aligned for u32. */
	uint32_t *ex = malloc((rec.n_sites ? rec.n_sites : 1) * sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	memcpy(ex, (const uint8_t *)val + sizeof(rec), rec.n_sites * sizeof(*ex));
	double sim = sites_similarity(c->sites, c->n, ex, rec.n_sites);
	free(ex);
	if (sim > c->best) {
		c->best = sim;
		c->best_id = key_get_u32((const uint8_t *)key + 6);
	}
	return 0;
}

static int
cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

/*
 * Puts a failure whose sites are @ids[0..n-1] (store ids) in its class (AVISO.md section 4),
 * creating the class when none is similar enough; counts the failure in it.
 */
static int
classify(struct store_txn *t, uint32_t prog, struct prog_meta *meta, double threshold,
	 const uint32_t *ids, size_t n, uint32_t *ret_class)
{
	uint32_t *set = malloc((n ? n : 1) * sizeof(*set));
	struct key prefix;
	int r;

	if (!set)
		return -ENOMEM;
	memcpy(set, ids, n * sizeof(*set));
	qsort(set, n, sizeof(*set), cmp_u32);
	struct classify c = { .sites = set, .n = n, .best = -1 };
	key_prog(&prefix, prog, 'C');
	if ((r = store_scan(t, prefix.b, prefix.n, classify_one, &c)) < 0)
		goto leave;

	struct key k;
	size_t size = sizeof(struct class_rec) + n * sizeof(uint32_t);
	uint8_t *val;
	const void *old;
	if (c.best >= threshold) {
		k = key1(prog, 'C', c.best_id);
		size_t len;
		if ((r = store_get(t, k.b, k.n, &old, &len)) < 0)
			goto leave;
		size = len;
	} else {
		c.best_id = meta->next_class++;
		k = key1(prog, 'C', c.best_id);
		old = NULL;
	}
	val = malloc(size);
	if (!val) {
		r = -ENOMEM;
		goto leave;
	}
	struct class_rec rec = { .failures = 0, .n_sites = (uint32_t)n };
	if (old) {
		memcpy(val, old, size);
		memcpy(&rec, val, sizeof(rec));
	} else {
		memcpy(val + sizeof(rec), set, n * sizeof(uint32_t));
	}
	rec.failures++;
	memcpy(val, &rec, sizeof(rec));
	r = store_put(t, k.b, k.n, val, size);
	free(val);
	*ret_class = c.best_id;
leave:
	free(set);
	return r;
}

/* F(B,A)++ for constraint (@class, @b, @a), creating it when new. */
static int
count_candidate(struct store_txn *t, uint32_t prog, struct prog_meta *meta, uint32_t class_id,
		uint32_t b, uint32_t a)
{
	struct key ik;
	const void *v;
	uint32_t cid;
	struct con_rec c;
	int r;

	key_prog(&ik, prog, 'k');
	key_u32(&ik, class_id);
	key_u32(&ik, b);
	key_u32(&ik, a);
	r = store_get(t, ik.b, ik.n, &v, NULL);
	if (r == -ENOENT) {
		cid = meta->next_con++;
		c = (struct con_rec){ .class_id = class_id, .b = b, .a = a };
		if ((r = store_put(t, ik.b, ik.n, &cid, sizeof(cid))) < 0)
			return r;
	} else if (r < 0) {
		return r;
	} else {
		memcpy(&cid, v, sizeof(cid));
		struct key k = key1(prog, 'K', cid);
		if ((r = get_rec(t, &k, &c, sizeof(c))) < 0)
			return r;
	}
	c.failing_with++;
	struct key k = key1(prog, 'K', cid);
	return put_rec(t, &k, &c, sizeof(c));
}

/* Learns from a failure RPB: its class, and its candidate constraints. */
static int
learn_failure(struct store_txn *t, const struct model_options *opt, uint32_t prog,
	      struct prog_meta *meta, const struct rpb *rpb)
{
	uint32_t *ids = malloc((rpb->n_sites ? rpb->n_sites : 1) * sizeof(*ids));
	struct pair *pairs = NULL;
	uint32_t class_id;
	long np;
	int r;

	if (!ids)
		return -ENOMEM;
	if ((r = intern_sites(t, prog, rpb, meta, ids)) < 0 ||
	    (r = classify(t, prog, meta, opt->class_similarity, ids, rpb->n_sites, &class_id)) < 0)
		goto leave;
	np = pairs_extract(rpb->site, rpb->thread, rpb->n, opt->window, opt->intervening_rule,
			   &pairs);
	if (np < 0) {
		r = (int)np;
		goto leave;
	}
	/* Local numbering is a bijection onto store ids: distinct pairs stay distinct. */
	for (long i = 0; i < np; i++) {
		r = count_candidate(t, prog, meta, class_id, ids[pairs[i].b], ids[pairs[i].a]);
		if (r < 0)
			goto leave;
	}
	r = 0;
leave:
	free(pairs);
	free(ids);
	return r;
}

/* ---- snapshots: every constraint of a program with its rank ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct snap_detail {
	struct con_rec rec;
	uint64_t f_ab, f_ba;
	double oi, ci, fc;
};

struct snap_class {
	uint32_t id;
	uint64_t failures;
	uint32_t n_sites;
	size_t n, cap;
	struct sel_con *c;
	struct snap_detail *d;
};

struct snap {
	uint32_t prog;
	struct prog_meta meta;	/* meta.gen: the store's state it was built from */
	uint64_t built_ns;	/* CLOCK_MONOTONIC when built */
	int refs;		/* the cache's and each user's; under model.lock */
	size_t n_classes;
	struct snap_class *classes;
};

static void
snap_fini(struct snap *s)
{
	for (size_t i = 0; i < s->n_classes; i++) {
		free(s->classes[i].c);
		free(s->classes[i].d);
	}
	free(s->classes);
	memset(s, 0, sizeof(*s));
}

struct snap_scan {
	struct store_txn *t;
	struct snap *s;
	/* Row and column sums by site id, read once per site rather than once per constraint
	 * (UINT64_MAX: not read yet). */
	uint64_t *row, *col;
	uint32_t n_sites;
};

static int
snap_add_class(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct snap *s = ((struct snap_scan *)arg)->s;
	struct class_rec rec;

	if (klen != 10 || vlen < sizeof(rec))
		return -EIO;
	memcpy(&rec, val, sizeof(rec));
	struct snap_class *nc = realloc(s->classes, (s->n_classes + 1) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	s->classes = nc;
	nc[s->n_classes++] = (struct snap_class){
		.id = key_get_u32((const uint8_t *)key + 6),
		.failures = rec.failures,
		.n_sites = rec.n_sites,
	};
	return 0;
}

static struct snap_class *
snap_class_of(struct snap *s, uint32_t id)
{
	/* Classes were scanned in id order. */
	size_t lo = 0, hi = s->n_classes;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->classes[mid].id == id)
			return &s->classes[mid];
		if (s->classes[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The row ('r') or column ('c') sum of @site, memoized in @memo. */
static int
snap_sum(struct snap_scan *sc, char tag, uint64_t *memo, uint32_t site, uint64_t *ret)
{
	if (site < sc->n_sites && memo[site] != UINT64_MAX) {
		*ret = memo[site];
		return 0;
	}
	struct key k = key1(sc->s->prog, tag, site);
	int r = get_count(sc->t, &k, ret);
	if (r == 0 && site < sc->n_sites)
		memo[site] = *ret;
	return r;
}

/* Fills the rank inputs and rank of constraint @d (AVISO.md section 4). */
static int
snap_rank(struct snap_scan *sc, uint64_t class_failures, struct snap_detail *d, double *ret_rank)
{
	uint32_t prog = sc->s->prog;
	struct key fab = key2(prog, 'f', d->rec.a, d->rec.b), fba = key2(prog, 'f', d->rec.b, d->rec.a);
	uint64_t rb, ca;
	int r;

	if ((r = get_count(sc->t, &fab, &d->f_ab)) < 0 ||
	    (r = get_count(sc->t, &fba, &d->f_ba)) < 0 ||
	    (r = snap_sum(sc, 'r', sc->row, d->rec.b, &rb)) < 0 ||
	    (r = snap_sum(sc, 'c', sc->col, d->rec.a, &ca)) < 0)
		return r;
	d->oi = stat_oi(d->f_ab, d->f_ba);
	d->ci = stat_ci(d->f_ba, rb, ca);
	d->fc = stat_fc(d->rec.failing_with, class_failures);
	*ret_rank = d->oi * d->ci * d->fc;
	return 0;
}

static int
snap_add_con(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct snap_scan *sc = arg;
	struct snap *s = sc->s;
	struct snap_detail d = { 0 };
	int r;

	if (klen != 10 || vlen < sizeof(d.rec))
		return -EIO;
	memcpy(&d.rec, val, sizeof(d.rec));
	struct snap_class *c = snap_class_of(s, d.rec.class_id);
	if (!c)
		return -EIO;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct sel_con *nc = realloc(c->c, cap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		c->c = nc;
		struct snap_detail *nd = realloc(c->d, cap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		c->d = nd;
		c->cap = cap;
	}
	struct sel_con *x = &c->c[c->n];
	*x = (struct sel_con){
		.cid = key_get_u32((const uint8_t *)key + 6),
		.runs = d.rec.runs,
		.failures = d.rec.failures,
	};
	if ((r = snap_rank(sc, c->failures, &d, &x->rank)) < 0)
		return r;
	x->effective = stat_effective(s->meta.base_runs, s->meta.base_fail, x->runs, x->failures,
				      &x->chi2);
	c->d[c->n++] = d;
	return 0;
}

/* Loads program @prog's classes and constraints with their ranks. */
static int
snap_load(struct store_txn *t, uint32_t prog, struct snap *s)
{
	struct snap_scan sc = { .t = t, .s = s };
	struct key prefix;
	int r;

	memset(s, 0, sizeof(*s));
	s->prog = prog;
	s->built_ns = now_ns();
	if ((r = meta_get(t, prog, &s->meta)) < 0)
		goto leave;
	sc.n_sites = s->meta.next_site;
	sc.row = malloc(sc.n_sites * sizeof(*sc.row));
	sc.col = malloc(sc.n_sites * sizeof(*sc.col));
	if (!sc.row || !sc.col) {
		r = -ENOMEM;
		goto leave;
	}
	memset(sc.row, 0xff, sc.n_sites * sizeof(*sc.row));
	memset(sc.col, 0xff, sc.n_sites * sizeof(*sc.col));
	key_prog(&prefix, prog, 'C');
	if ((r = store_scan(t, prefix.b, prefix.n, snap_add_class, &sc)) < 0)
		goto leave;
	key_prog(&prefix, prog, 'K');
	r = store_scan(t, prefix.b, prefix.n, snap_add_con, &sc);
leave:
	free(sc.row);
	free(sc.col);
	if (r < 0)
		snap_fini(s);
	return r;
}

/* Drops a reference to heap snapshot @s (NULL is fine). */
static void
snap_put(struct model *m, struct snap *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&m->lock);
	bool last = --s->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (last) {
		snap_fini(s);
		free(s);
	}
}

/*
 * A reference to the cached snapshot of @prog if it is of store state @gen, or younger than
 * the options' snapshot_ms; NULL otherwise.
 */
static struct snap *
cache_get(struct model *m, uint32_t prog, uint64_t gen)
{
	uint64_t max_age = (uint64_t)m->opt.snapshot_ms * 1000000ULL, now = now_ns();
	struct snap *found = NULL;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < SNAP_CACHE; i++) {
		struct snap *s = m->cache[i];
		if (s && s->prog == prog && (s->meta.gen == gen || now - s->built_ns < max_age)) {
			found = s;
			found->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

/* Caches @s (the cache takes its own reference), replacing @s's program's older snapshot or
 * the oldest one. */
static void
cache_put(struct model *m, struct snap *s)
{
	struct snap *old = NULL;
	int slot = 0;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < SNAP_CACHE; i++) {
		struct snap *c = m->cache[i];
		if (!c || c->prog == s->prog) {
			slot = i;
			break;
		}
		if (c->built_ns < m->cache[slot]->built_ns)
			slot = i;
	}
	old = m->cache[slot];
	if (old && old->prog == s->prog && old->built_ns > s->built_ns)
		old = NULL; /* a newer one was built meanwhile: keep it */
	else {
		m->cache[slot] = s;
		s->refs++;
	}
	pthread_mutex_unlock(&m->lock);
	snap_put(m, old);
}

/* ---- open and close ---- */

void
model_options_init(struct model_options *opts)
{
	*opts = (struct model_options){
		.window = 10,
		.intervening_rule = true,
		.delay_us = 1000,
		.selector = MODEL_SELECT_DEFAULT,
		.class_similarity = 0.8,
		.map_size = (size_t)64 << 20,
		.no_sync = false,
		.seed = 0,
	};
}

int
model_open(const char *dir, const struct model_options *opts, struct model **ret_model)
{
	struct model *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	if (opts)
		m->opt = *opts;
	else
		model_options_init(&m->opt);
	if (m->opt.window < 2 || (unsigned)m->opt.selector >= MODEL_SELECT__COUNT ||
	    !(m->opt.class_similarity >= 0 && m->opt.class_similarity <= 1)) {
		free(m);
		return -EINVAL;
	}
	r = store_open(dir, m->opt.map_size, m->opt.no_sync, &m->store);
	if (r < 0) {
		free(m);
		return r;
	}
	pthread_mutex_init(&m->lock, NULL);
	prng_seed(&m->rng, m->opt.seed);
	*ret_model = m;
	return 0;
}

void
model_close(struct model *m)
{
	if (!m)
		return;
	for (int i = 0; i < SNAP_CACHE; i++)
		snap_put(m, m->cache[i]);
	store_close(m->store);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const struct model_options *
model_get_options(const struct model *m)
{
	return &m->opt;
}

/* ---- start ---- */

struct start_ctx {
	struct model *m;
	const struct model_program *prog;
	struct snap *snap;	/* step 1: the model as the choice sees it; NULL: new program */
	long *choice;		/* step 2: an index per class, or -1 */
	bool baseline;
	struct model_plan *plan; /* step 3 */
};

static int
start_read(struct store_txn *t, void *arg)
{
	struct start_ctx *c = arg;
	struct prog_meta meta;
	uint32_t num;
	int r = prog_find(t, c->prog, &num);

	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = meta_get(t, num, &meta)) < 0)
		return r;
	c->snap = cache_get(c->m, num, meta.gen);
	if (c->snap)
		return 0;
	struct snap *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if ((r = snap_load(t, num, s)) < 0) {
		free(s);
		return r;
	}
	s->refs = 1;
	c->snap = s;
	cache_put(c->m, s);
	return 0;
}

static void
plan_clear(struct model_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->constraints[i].b);
		free(p->constraints[i].a);
		free(p->constraints[i].b_where);
		free(p->constraints[i].a_where);
	}
	p->n = 0;
}

/* Fills served constraint @out from constraint @cid of @prog. */
static int
serve(struct store_txn *t, uint32_t prog, uint32_t cid, unsigned delay_us,
      struct model_served *out)
{
	struct key k = key1(prog, 'K', cid);
	struct con_rec c;
	const char *b, *bw, *a, *aw;
	int r;

	if ((r = get_rec(t, &k, &c, sizeof(c))) < 0 ||
	    (r = site_strings(t, prog, c.b, &b, &bw)) < 0 ||
	    (r = site_strings(t, prog, c.a, &a, &aw)) < 0)
		return r;
	snprintf(out->id, sizeof(out->id), "%" PRIu32, cid);
	out->class_id = c.class_id;
	out->delay_us = delay_us;
	out->b = strdup(b);
	out->a = strdup(a);
	out->b_where = strdup(bw);
	out->a_where = strdup(aw);
	if (!out->b || !out->a || !out->b_where || !out->a_where)
		return -ENOMEM;
	return 0;
}

static int
start_write(struct store_txn *t, void *arg)
{
	struct start_ctx *c = arg;
	struct model_plan *p = c->plan;
	struct prog_meta meta;
	struct run_rec *rec = NULL;
	uint32_t num;
	int r;

	plan_clear(p); /* a rerun after the map grew starts over */
	if ((r = prog_find_or_create(t, c->prog, &num)) < 0 || (r = meta_get(t, num, &meta)) < 0)
		return r;
	uint64_t run = ++meta.runs_started;
	size_t n = 0;
	size_t n_classes = c->snap ? c->snap->n_classes : 0;
	rec = calloc(1, sizeof(*rec) + (n_classes + 1) * sizeof(uint32_t));
	if (!rec)
		return -ENOMEM;
	for (size_t k = 0; k < n_classes && !c->baseline; k++) {
		if (c->choice[k] < 0)
			continue;
		uint32_t cid = c->snap->classes[k].c[c->choice[k]].cid;
		run_cids(rec)[n] = cid;
		/* Counted before serve() so a half-filled entry is freed by plan_clear(). */
		p->n = ++n;
		if ((r = serve(t, num, cid, c->m->opt.delay_us, &p->constraints[n - 1])) < 0)
			goto leave;
	}
	rec->seed = p->seed;
	rec->n = (uint32_t)n;
	rec->baseline = n == 0;
	p->baseline = n == 0;
	snprintf(p->run, sizeof(p->run), "%" PRIu32 "-%" PRIu64, num, run);
	if ((r = run_put(t, num, run, rec)) < 0 || (r = meta_put(t, num, &meta)) < 0)
		goto leave;
	r = 0;
leave:
	free(rec);
	return r;
}

void
model_plan_free(struct model_plan *plan)
{
	if (!plan)
		return;
	plan_clear(plan);
	free(plan->constraints);
	free(plan);
}

/* Chooses for @c from its snapshot with @seed (select.c). */
static int
start_choose(struct start_ctx *c, uint64_t seed)
{
	size_t n = c->snap ? c->snap->n_classes : 0;
	struct sel_class *classes = calloc(n ? n : 1, sizeof(*classes));
	struct prng rng;

	c->choice = calloc(n ? n : 1, sizeof(*c->choice));
	if (!classes || !c->choice) {
		free(classes);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		classes[k] = (struct sel_class){ .id = c->snap->classes[k].id,
						 .n = c->snap->classes[k].n,
						 .c = c->snap->classes[k].c };
	struct sel_input in = {
		.selector = c->m->opt.selector,
		.base_runs = c->snap ? c->snap->meta.base_runs : 0,
		.base_failures = c->snap ? c->snap->meta.base_fail : 0,
		.n_classes = n,
		.classes = classes,
	};
	prng_seed(&rng, seed);
	c->baseline = select_run(&in, &rng, c->choice);
	free(classes);
	return 0;
}

int
model_run_start(struct model *m, const struct model_program *prog, const uint64_t *seed,
		struct model_plan **ret_plan)
{
	struct start_ctx c = { .m = m, .prog = prog };
	int r;

	if (!prog || !prog->id || !prog->path)
		return -EINVAL;
	c.plan = calloc(1, sizeof(*c.plan));
	if (!c.plan)
		return -ENOMEM;
	if (seed) {
		c.plan->seed = *seed;
	} else {
		pthread_mutex_lock(&m->lock);
		c.plan->seed = prng_next(&m->rng);
		pthread_mutex_unlock(&m->lock);
	}
	/* Choose on a read snapshot (no writer waits for it), then record the run in one short
	 * write. Constraints are never deleted, so the choice stays valid in between. */
	if ((r = store_read(m->store, start_read, &c)) < 0 ||
	    (r = start_choose(&c, c.plan->seed)) < 0)
		goto leave;
	c.plan->constraints = calloc((c.snap ? c.snap->n_classes : 0) + 1,
				     sizeof(*c.plan->constraints));
	if (!c.plan->constraints) {
		r = -ENOMEM;
		goto leave;
	}
	r = store_write(m->store, start_write, &c);
leave:
	snap_put(m, c.snap);
	free(c.choice);
	if (r < 0) {
		model_plan_free(c.plan);
		return r;
	}
	*ret_plan = c.plan;
	return 0;
}

/* ---- end, correct, tick ---- */

struct report_ctx {
	struct model *m;
	const struct model_report *report;
	uint32_t prog;
	uint64_t run;
	uint32_t *cids;	/* the loaded constraints, parsed from the report */
	size_t n_cids;
	struct rpb rpb;
};

static int
parse_cids(struct report_ctx *c)
{
	const struct model_report *rep = c->report;

	c->cids = malloc((rep->n_constraints ? rep->n_constraints : 1) * sizeof(*c->cids));
	if (!c->cids)
		return -ENOMEM;
	for (size_t i = 0; i < rep->n_constraints; i++) {
		const char *s = rep->constraints[i];
		char *end;
		if (!s || *s < '0' || *s > '9')
			return -EINVAL;
		errno = 0;
		unsigned long v = strtoul(s, &end, 10);
		if (errno || *end || v == 0 || v > UINT32_MAX)
			return -EINVAL;
		c->cids[i] = (uint32_t)v;
	}
	qsort(c->cids, rep->n_constraints, sizeof(*c->cids), cmp_u32);
	/* The same constraint listed twice was loaded once. */
	for (size_t i = 0; i < rep->n_constraints; i++)
		if (c->n_cids == 0 || c->cids[c->n_cids - 1] != c->cids[i])
			c->cids[c->n_cids++] = c->cids[i];
	return 0;
}

/* Loads the run's record; -ENOENT for an unknown run or program. */
static int
report_run(struct store_txn *t, struct report_ctx *c, struct prog_meta *meta,
	   struct run_rec **ret_rec)
{
	int r = meta_get(t, c->prog, meta);

	if (r < 0)
		return r;
	return run_get(t, c->prog, c->run, ret_rec);
}

static int
end_write(struct store_txn *t, void *arg)
{
	struct report_ctx *c = arg;
	const struct model_report *rep = c->report;
	struct prog_meta meta;
	struct run_rec *rec = NULL;
	const uint32_t *cids;
	size_t n;
	int r;

	if ((r = report_run(t, c, &meta, &rec)) < 0)
		return r;
	if (rec->ended) {
		r = -EALREADY;
		goto leave;
	}
	cids = rep->have_constraints ? c->cids : run_cids(rec);
	n = rep->have_constraints ? c->n_cids : rec->n;
	for (size_t i = 0; i < n && rep->have_constraints; i++) {
		struct key k = key1(c->prog, 'K', cids[i]);
		struct con_rec cr;
		if ((r = get_rec(t, &k, &cr, sizeof(cr))) < 0) {
			r = r == -ENOENT ? -EINVAL : r;
			goto leave;
		}
	}
	if ((r = count_outcome(t, c->prog, &meta, cids, n, rep->failed)) < 0)
		goto leave;
	if (rep->failed && c->rpb.n > 0 &&
	    (r = learn_failure(t, &c->m->opt, c->prog, &meta, &c->rpb)) < 0)
		goto leave;
	rec->ended = 1;
	rec->failed = rep->failed;
	meta.runs_ended++;
	meta.gen++;
	if ((r = run_put(t, c->prog, c->run, rec)) < 0 || (r = meta_put(t, c->prog, &meta)) < 0)
		goto leave;
	r = 0;
leave:
	free(rec);
	return r;
}

/* Prepares @c for @run: its numbers, and @ev as an RPB. */
static int
report_init(struct report_ctx *c, struct model *m, const struct model_report *rep,
	    const struct model_event *ev, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->m = m;
	c->report = rep;
	int r = run_parse(rep->run, &c->prog, &c->run);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!ev[i].site)
			return -EINVAL;
	if ((r = parse_cids(c)) < 0)
		return r;
	return rpb_init(&c->rpb, ev, n);
}

static void
report_fini(struct report_ctx *c)
{
	free(c->cids);
	rpb_fini(&c->rpb);
}

int
model_run_end(struct model *m, const struct model_report *report)
{
	struct report_ctx c;
	int r = report_init(&c, m, report, report->rpb, report->failed ? report->n_rpb : 0);

	if (r == 0)
		r = store_write(m->store, end_write, &c);
	report_fini(&c);
	return r;
}

static int
correct_write(struct store_txn *t, void *arg)
{
	struct report_ctx *c = arg;
	struct prog_meta meta;
	struct run_rec *rec = NULL;
	struct pair *pairs = NULL;
	uint32_t *ids = NULL;
	uint64_t *row = NULL, *col = NULL;
	size_t ns = c->rpb.n_sites ? c->rpb.n_sites : 1;
	long np;
	int r;

	if ((r = report_run(t, c, &meta, &rec)) < 0)
		return r;
	ids = malloc(ns * sizeof(*ids));
	row = calloc(ns, sizeof(*row));
	col = calloc(ns, sizeof(*col));
	if (!ids || !row || !col) {
		r = -ENOMEM;
		goto leave;
	}
	if ((r = intern_sites(t, c->prog, &c->rpb, &meta, ids)) < 0)
		goto leave;
	np = pairs_extract(c->rpb.site, c->rpb.thread, c->rpb.n, c->m->opt.window,
			   c->m->opt.intervening_rule, &pairs);
	if (np < 0) {
		r = (int)np;
		goto leave;
	}
	for (long i = 0; i < np; i++) {
		struct key k = key2(c->prog, 'f', ids[pairs[i].b], ids[pairs[i].a]);
		if ((r = add_count(t, &k, pairs[i].count)) < 0)
			goto leave;
		row[pairs[i].b] += pairs[i].count;
		col[pairs[i].a] += pairs[i].count;
	}
	/* One update per site for the sums, not one per pair. */
	for (size_t s = 0; s < c->rpb.n_sites; s++) {
		struct key rk = key1(c->prog, 'r', ids[s]), ck = key1(c->prog, 'c', ids[s]);
		if ((row[s] && (r = add_count(t, &rk, row[s])) < 0) ||
		    (col[s] && (r = add_count(t, &ck, col[s])) < 0))
			goto leave;
	}
	meta.correct++;
	meta.gen++;
	r = meta_put(t, c->prog, &meta);
leave:
	free(rec);
	free(pairs);
	free(ids);
	free(row);
	free(col);
	return r;
}

int
model_run_correct(struct model *m, const char *run, const struct model_event *rpb, size_t n)
{
	struct model_report rep = { .run = run };
	struct report_ctx c;
	int r = report_init(&c, m, &rep, rpb, n);

	if (r == 0)
		r = store_write(m->store, correct_write, &c);
	report_fini(&c);
	return r;
}

static int
tick_write(struct store_txn *t, void *arg)
{
	struct report_ctx *c = arg;
	struct prog_meta meta;
	struct run_rec *rec = NULL;
	int r;

	if ((r = report_run(t, c, &meta, &rec)) < 0)
		return r;
	if (rec->ended) {
		r = -EALREADY;
		goto leave;
	}
	if ((r = count_outcome(t, c->prog, &meta, run_cids(rec), rec->n, false)) < 0)
		goto leave;
	rec->ticks++;
	meta.ticks++;
	meta.gen++;
	if ((r = run_put(t, c->prog, c->run, rec)) < 0 || (r = meta_put(t, c->prog, &meta)) < 0)
		goto leave;
	r = 0;
leave:
	free(rec);
	return r;
}

int
model_run_tick(struct model *m, const char *run)
{
	struct model_report rep = { .run = run };
	struct report_ctx c;
	int r = report_init(&c, m, &rep, NULL, 0);

	if (r == 0)
		r = store_write(m->store, tick_write, &c);
	report_fini(&c);
	return r;
}

/* ---- statistics ---- */

struct stats_ctx {
	struct model *m;
	const char *filter;
	struct model_stats *st;
};

struct curve_scan {
	struct model_curve *curve[2];	/* [1] baseline, [0] constrained */
	uint64_t total[2], runs[2], fails[2], step[2];
};

/* Appends a point, the curve having room (CURVE_POINTS + 1). */
static void
curve_push(struct model_curve *c, uint64_t x, uint64_t y)
{
	c->x[c->n] = x;
	c->y[c->n] = y;
	c->n++;
}

static int
curve_add(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct curve_scan *cs = arg;

	if (vlen < 1)
		return -EIO;
	uint8_t flags = *(const uint8_t *)val;
	int g = (flags & OUTCOME_BASELINE) != 0;
	cs->runs[g]++;
	cs->fails[g] += (flags & OUTCOME_FAILED) != 0;
	/* Keep every step-th point and the last one. */
	if (cs->runs[g] % cs->step[g] == 0 || cs->runs[g] == cs->total[g])
		if (cs->curve[g]->n <= CURVE_POINTS)
			curve_push(cs->curve[g], cs->runs[g], cs->fails[g]);
	return 0;
}

static int
curves_load(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
	    struct model_program_stats *ps)
{
	struct curve_scan cs = {
		.curve = { &ps->constrained_curve, &ps->baseline_curve },
		.total = { meta->con_runs, meta->base_runs },
	};
	struct key prefix;

	for (int g = 0; g < 2; g++) {
		cs.step[g] = cs.total[g] / CURVE_POINTS + 1;
		cs.curve[g]->x = calloc(CURVE_POINTS + 1, sizeof(uint64_t));
		cs.curve[g]->y = calloc(CURVE_POINTS + 1, sizeof(uint64_t));
		if (!cs.curve[g]->x || !cs.curve[g]->y)
			return -ENOMEM;
	}
	key_prog(&prefix, prog, 'O');
	return store_scan(t, prefix.b, prefix.n, curve_add, &cs);
}

static int
cmp_weight(const void *x, const void *y)
{
	const struct model_constraint_stats *a = x, *b = y;

	if (a->weight != b->weight)
		return a->weight > b->weight ? -1 : 1;
	return strtoul(a->id, NULL, 10) < strtoul(b->id, NULL, 10) ? -1 : 1;
}

/* Fills constraint @out from snapshot entry @x/@d. */
static int
constraint_stats(struct store_txn *t, enum model_selector sel, const struct snap *s,
		 const struct sel_con *x, const struct snap_detail *d,
		 struct model_constraint_stats *out)
{
	const char *b, *bw, *a, *aw;
	int r;

	if ((r = site_strings(t, s->prog, d->rec.b, &b, &bw)) < 0 ||
	    (r = site_strings(t, s->prog, d->rec.a, &a, &aw)) < 0)
		return r;
	snprintf(out->id, sizeof(out->id), "%" PRIu32, x->cid);
	out->b = strdup(b);
	out->a = strdup(a);
	out->b_where = strdup(bw);
	out->a_where = strdup(aw);
	if (!out->b || !out->a || !out->b_where || !out->a_where)
		return -ENOMEM;
	out->f_ab = d->f_ab;
	out->f_ba = d->f_ba;
	out->failing_with = d->rec.failing_with;
	out->oi = d->oi;
	out->ci = d->ci;
	out->fc = d->fc;
	out->rank = x->rank;
	out->weight = select_weight(sel, x, select_base_rate(s->meta.base_runs, s->meta.base_fail));
	out->runs = x->runs;
	out->failures = x->failures;
	out->rate = x->runs ? (double)x->failures / (double)x->runs : 0;
	out->chi2 = x->chi2;
	out->effective = x->effective;
	return 0;
}

static int
program_stats(struct store_txn *t, struct model *m, uint32_t num, const char *id,
	      const char *path, struct model_program_stats *ps)
{
	struct snap s;
	int r;

	ps->num = num;
	ps->id = strdup(id);
	ps->path = strdup(path);
	if (!ps->id || !ps->path)
		return -ENOMEM;
	if ((r = snap_load(t, num, &s)) < 0)
		return r;
	const struct prog_meta *mt = &s.meta;
	ps->runs_started = mt->runs_started;
	ps->runs_ended = mt->runs_ended;
	ps->open_runs = mt->runs_started - mt->runs_ended;
	ps->baseline_runs = mt->base_runs;
	ps->baseline_failures = mt->base_fail;
	ps->constrained_runs = mt->con_runs;
	ps->constrained_failures = mt->con_fail;
	ps->ticks = mt->ticks;
	ps->correct_samples = mt->correct;
	ps->baseline_rate = mt->base_runs ? (double)mt->base_fail / (double)mt->base_runs : 0;
	ps->baseline_known = stat_baseline_known(mt->base_runs, mt->base_fail);
	ps->classes = calloc(s.n_classes ? s.n_classes : 1, sizeof(*ps->classes));
	if (!ps->classes) {
		r = -ENOMEM;
		goto leave;
	}
	ps->n_classes = s.n_classes;
	for (size_t k = 0; k < s.n_classes; k++) {
		struct snap_class *sc = &s.classes[k];
		struct model_class_stats *cs = &ps->classes[k];
		cs->id = sc->id;
		cs->failures = sc->failures;
		cs->n_sites = sc->n_sites;
		cs->c = calloc(sc->n ? sc->n : 1, sizeof(*cs->c));
		if (!cs->c) {
			r = -ENOMEM;
			goto leave;
		}
		cs->n = sc->n;
		for (size_t i = 0; i < sc->n; i++) {
			r = constraint_stats(t, m->opt.selector, &s, &sc->c[i], &sc->d[i], &cs->c[i]);
			if (r < 0)
				goto leave;
			ps->n_contenders += sc->c[i].effective;
		}
		ps->n_constraints += sc->n;
		qsort(cs->c, cs->n, sizeof(*cs->c), cmp_weight);
	}
	r = curves_load(t, num, mt, ps);
leave:
	snap_fini(&s);
	return r;
}

static int
stats_read(struct store_txn *t, void *arg)
{
	struct stats_ctx *c = arg;
	struct key nk = { .n = 1, .b = { 'N' } };
	uint64_t next;
	int r;

	if ((r = get_count(t, &nk, &next)) < 0)
		return r;
	for (uint32_t num = 1; num < next; num++) {
		struct key ik;
		const void *v;
		size_t len;
		key_prog(&ik, num, 'I');
		if ((r = store_get(t, ik.b, ik.n, &v, &len)) < 0)
			return r;
		/* id '\0' path, the path not terminated in the store. */
		const char *id = v;
		size_t li = strnlen(id, len);
		if (li >= len)
			return -EIO;
		char *path = strndup(id + li + 1, len - li - 1);
		if (!path)
			return -ENOMEM;
		if (c->filter && strcmp(c->filter, id) != 0 && strcmp(c->filter, path) != 0) {
			free(path);
			continue;
		}
		struct model_stats *st = c->st;
		struct model_program_stats *np = realloc(st->programs, (st->n + 1) * sizeof(*np));
		if (!np) {
			free(path);
			return -ENOMEM;
		}
		st->programs = np;
		memset(&np[st->n], 0, sizeof(*np));
		r = program_stats(t, c->m, num, id, path, &np[st->n++]);
		free(path);
		if (r < 0)
			return r;
	}
	return 0;
}

void
model_stats_free(struct model_stats *st)
{
	if (!st)
		return;
	for (size_t p = 0; p < st->n; p++) {
		struct model_program_stats *ps = &st->programs[p];
		for (size_t k = 0; k < ps->n_classes; k++) {
			for (size_t i = 0; i < ps->classes[k].n; i++) {
				struct model_constraint_stats *c = &ps->classes[k].c[i];
				free((char *)c->b);
				free((char *)c->a);
				free((char *)c->b_where);
				free((char *)c->a_where);
			}
			free(ps->classes[k].c);
		}
		free(ps->classes);
		free(ps->id);
		free(ps->path);
		free(ps->baseline_curve.x);
		free(ps->baseline_curve.y);
		free(ps->constrained_curve.x);
		free(ps->constrained_curve.y);
	}
	free(st->programs);
	free(st);
}

int
model_stats_get(struct model *m, const char *program, struct model_stats **ret_stats)
{
	struct stats_ctx c = { .m = m, .filter = program };
	int r;

	c.st = calloc(1, sizeof(*c.st));
	if (!c.st)
		return -ENOMEM;
	c.st->selector = m->opt.selector;
	r = store_read(m->store, stats_read, &c);
	if (r < 0) {
		model_stats_free(c.st);
		return r;
	}
	*ret_stats = c.st;
	return 0;
}

int
model_store_size(struct model *m, size_t *ret_map, size_t *ret_used)
{
	return store_size(m->store, ret_map, ret_used);
}
