/*
 * Snapshots of a program's model: every constraint with its rank inputs and rank, sorted by
 * rank per class, for the choice at start (cached per program, reference counted, rebuilt when
 * the store changed and the copy is older than snapshot_ms) and for the statistics pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/internal.h"

/* Points per curve of the stats chart. */
#define CURVE_POINTS 256

/* ---- snapshots: every constraint of a program with its rank ---- */

uint64_t
model_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void
model_snap_fini(struct snap *s)
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

/* Adds a class; a top-level one is compared with the baseline's failures of its kind (a
 * residual class's comparison is snap_residuals()'). */
static int
snap_add_class(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct snap_scan *sc = arg;
	struct snap *s = sc->s;
	struct class_rec rec;
	uint32_t id;
	uint64_t base_failures = s->meta.base_fail;
	int r;

	if (klen != 10 || vlen < sizeof(rec))
		return -EIO;
	memcpy(&rec, val, sizeof(rec));
	id = model_key_get_u32((const uint8_t *)key + 6);
	if (!rec.under &&
	    (r = model_rec_class_base(sc->t, s->prog, &s->meta, id, &base_failures)) < 0)
		return r;
	struct snap_class *nc = realloc(s->classes, (s->n_classes + 1) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	s->classes = nc;
	nc[s->n_classes++] = (struct snap_class){
	    .id = id,
	    .failures = rec.failures,
	    .n_sites = rec.n_sites,
	    .under = rec.under,
	    .base_runs = s->meta.base_runs,
	    .base_failures = base_failures,
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
	struct key k = model_rec_key1(sc->s->prog, tag, site);
	int r = model_rec_count_get(sc->t, &k, ret);
	if (r == 0 && site < sc->n_sites)
		memo[site] = *ret;
	return r;
}

/* Fills the rank inputs and rank of constraint @d (AVISO.md section 4). */
static int
snap_rank(struct snap_scan *sc, uint64_t class_failures, struct snap_detail *d, double *ret_rank)
{
	uint32_t prog = sc->s->prog;
	struct key fab = model_rec_key2(prog, 'f', d->rec.a, d->rec.b),
		   fba = model_rec_key2(prog, 'f', d->rec.b, d->rec.a);
	uint64_t rb, ca;
	int r;

	if ((r = model_rec_count_get(sc->t, &fab, &d->f_ab)) < 0 ||
	    (r = model_rec_count_get(sc->t, &fba, &d->f_ba)) < 0 ||
	    (r = snap_sum(sc, 'r', sc->row, d->rec.b, &rb)) < 0 ||
	    (r = snap_sum(sc, 'c', sc->col, d->rec.a, &ca)) < 0)
		return r;
	d->oi = model_stat_oi(d->f_ab, d->f_ba);
	d->ci = model_stat_ci(d->f_ba, rb, ca);
	d->fc = model_stat_fc(d->rec.failing_with, class_failures);
	*ret_rank = model_stat_rank(d->oi, d->ci, d->fc);
	return 0;
}

static int
snap_add_con(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct snap_scan *sc = arg;
	struct snap *s = sc->s;
	struct snap_detail d = {0};
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
	    .cid = model_key_get_u32((const uint8_t *)key + 6),
	    .runs = d.rec.runs,
	};
	if ((r = model_rec_con_failures(sc->t, s->prog, &s->meta, x->cid, &d.rec, &x->failures)) <
		0 ||
	    (r = snap_rank(sc, c->failures, &d, &x->rank)) < 0)
		return r;
	x->effective =
	    model_stat_effective(c->base_runs, c->base_failures, x->runs, x->failures, &x->chi2);
	c->d[c->n++] = d;
	return 0;
}

static int
cmp_rank(const void *x, const void *y, void *arg)
{
	const struct sel_con *c = arg;
	const struct sel_con *a = &c[*(const size_t *)x], *b = &c[*(const size_t *)y];

	if (a->rank != b->rank)
		return a->rank > b->rank ? -1 : 1;
	return a->cid < b->cid ? -1 : a->cid > b->cid;
}

/* Sorts class @c's constraints (and their details) by rank, highest first. */
static int
snap_sort(struct snap_class *c)
{
	size_t *perm = malloc((c->n ? c->n : 1) * sizeof(*perm));
	struct sel_con *sc = malloc((c->n ? c->n : 1) * sizeof(*sc));
	struct snap_detail *sd = malloc((c->n ? c->n : 1) * sizeof(*sd));
	int r = -ENOMEM;

	if (perm && sc && sd) {
		for (size_t i = 0; i < c->n; i++)
			perm[i] = i;
		qsort_r(perm, c->n, sizeof(*perm), cmp_rank, c->c);
		for (size_t i = 0; i < c->n; i++) {
			sc[i] = c->c[perm[i]];
			sd[i] = c->d[perm[i]];
		}
		memcpy(c->c, sc, c->n * sizeof(*sc));
		memcpy(c->d, sd, c->n * sizeof(*sd));
		r = 0;
	}
	free(perm);
	free(sc);
	free(sd);
	return r;
}

/*
 * A residual class's constraints are loaded on top of its parent constraint: they are judged
 * against that constraint's outcomes (effective: fewer failures than it alone), not against the
 * baseline, which the parent alone already beats. A residual class whose parent constraint is
 * not found (a damaged store) keeps the baseline and is never offered (parent = itself).
 */
static void
snap_residuals(struct snap *s)
{
	for (size_t k = 0; k < s->n_classes; k++) {
		struct snap_class *c = &s->classes[k];
		const struct sel_con *p = NULL;

		c->parent = k;
		for (size_t j = 0; c->under && j < s->n_classes && !p; j++)
			for (size_t i = 0; i < s->classes[j].n && !p; i++)
				if (s->classes[j].c[i].cid == c->under - 1 && !s->classes[j].under) {
					p = &s->classes[j].c[i];
					c->parent = j;
				}
		if (!p)
			continue;
		c->base_runs = p->runs;
		c->base_failures = p->failures;
		for (size_t i = 0; i < c->n; i++)
			c->c[i].effective = model_stat_effective(p->runs, p->failures, c->c[i].runs,
								 c->c[i].failures, &c->c[i].chi2);
	}
}

/* Loads program @prog's classes and constraints with their ranks, by rank in each class. */
int
model_snap_load(struct store_txn *t, uint32_t prog, struct snap *s)
{
	struct snap_scan sc = {.t = t, .s = s};
	struct key prefix;
	int r;

	memset(s, 0, sizeof(*s));
	s->prog = prog;
	s->built_ns = model_now_ns();
	if ((r = model_rec_meta_get(t, prog, &s->meta)) < 0)
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
	model_key_prog(&prefix, prog, 'C');
	if ((r = model_store_scan(t, prefix.b, prefix.n, snap_add_class, &sc)) < 0)
		goto leave;
	model_key_prog(&prefix, prog, 'K');
	if ((r = model_store_scan(t, prefix.b, prefix.n, snap_add_con, &sc)) < 0)
		goto leave;
	snap_residuals(s);
	for (size_t k = 0; k < s->n_classes && r == 0; k++)
		r = snap_sort(&s->classes[k]);
leave:
	free(sc.row);
	free(sc.col);
	if (r < 0)
		model_snap_fini(s);
	return r;
}

/* Drops a reference to heap snapshot @s (NULL is fine). */
void
model_snap_put(struct model *m, struct snap *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&m->lock);
	bool last = --s->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (last) {
		model_snap_fini(s);
		free(s);
	}
}

/*
 * A reference to the cached snapshot of @prog if it is of store state @gen, or younger than
 * the options' snapshot_ms; NULL otherwise.
 */
struct snap *
model_snap_cache_get(struct model *m, uint32_t prog, uint64_t gen)
{
	uint64_t max_age = (uint64_t)m->opt.snapshot_ms * 1000000ULL, now = model_now_ns();
	struct snap *found = NULL;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < SNAP_CACHE; i++) {
		struct snap *s = m->cache[i];
		if (!s || s->prog != prog)
			continue;
		if (s->meta.gen == gen || now - s->built_ns < max_age) {
			found = s;
		} else if (max_age > 0) {
			/* Stale: the first caller rebuilds, the others meanwhile take this one
			 * rather than all rebuilding at once. */
			if (s->rebuilding)
				found = s;
			s->rebuilding = true;
		}
		break;
	}
	if (found)
		found->refs++;
	pthread_mutex_unlock(&m->lock);
	return found;
}

void
model_snap_cache_abort(struct model *m, uint32_t prog)
{
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < SNAP_CACHE; i++)
		if (m->cache[i] && m->cache[i]->prog == prog)
			m->cache[i]->rebuilding = false;
	pthread_mutex_unlock(&m->lock);
}

/* Caches @s (the cache takes its own reference), replacing @s's program's older snapshot or
 * the oldest one. */
void
model_snap_cache_put(struct model *m, struct snap *s)
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
	model_snap_put(m, old);
}

/* ---- statistics ---- */

struct stats_ctx {
	struct model *m;
	const char *filter;
	struct model_stats *st;
};

struct curve_scan {
	struct model_curve *curve[2]; /* [1] baseline, [0] constrained */
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
	    .curve = {&ps->constrained_curve, &ps->baseline_curve},
	    .total = {meta->con_runs, meta->base_runs},
	};
	struct key prefix;

	for (int g = 0; g < 2; g++) {
		cs.step[g] = cs.total[g] / CURVE_POINTS + 1;
		cs.curve[g]->x = calloc(CURVE_POINTS + 1, sizeof(uint64_t));
		cs.curve[g]->y = calloc(CURVE_POINTS + 1, sizeof(uint64_t));
		if (!cs.curve[g]->x || !cs.curve[g]->y)
			return -ENOMEM;
	}
	model_key_prog(&prefix, prog, 'O');
	return model_store_scan(t, prefix.b, prefix.n, curve_add, &cs);
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
		 double base_rate, const struct sel_con *x, const struct snap_detail *d,
		 struct model_constraint_stats *out)
{
	const char *b, *bw, *a, *aw;
	int r;

	if ((r = model_rec_site_strings(t, s->prog, d->rec.b, &b, &bw)) < 0 ||
	    (r = model_rec_site_strings(t, s->prog, d->rec.a, &a, &aw)) < 0)
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
	out->weight = model_select_weight(sel, x, base_rate);
	out->runs = x->runs;
	out->failures = x->failures;
	out->all_failures = d->rec.failures;
	out->rate = x->runs ? (double)x->failures / (double)x->runs : 0;
	out->chi2 = x->chi2;
	out->effective = x->effective;
	return 0;
}

void
model_snap_sel_input(const struct snap *s, const struct model_options *o,
		     struct sel_class *classes, struct sel_input *in)
{
	size_t n = s ? s->n_classes : 0;

	for (size_t k = 0; k < n; k++)
		classes[k] = (struct sel_class){.id = s->classes[k].id,
						.failures = s->classes[k].failures,
						.n = s->classes[k].n,
						.c = s->classes[k].c,
						.under = s->classes[k].under,
						.parent = s->classes[k].parent,
						.base_runs = s->classes[k].base_runs,
						.base_failures = s->classes[k].base_failures};
	*in = (struct sel_input){
	    .selector = o->selector,
	    .baseline = o->baseline,
	    .base_runs = s ? s->meta.base_runs : 0,
	    .base_failures = s ? s->meta.base_fail : 0,
	    .class_counts = s && (s->meta.flags & PROG_CLASS_COUNTS),
	    .n_classes = n,
	    .classes = classes,
	};
}

static int
program_stats(struct store_txn *t, struct model *m, uint32_t num, const char *id, const char *path,
	      struct model_program_stats *ps)
{
	struct snap s;
	int r;

	ps->num = num;
	ps->id = strdup(id);
	ps->path = strdup(path);
	if (!ps->id || !ps->path)
		return -ENOMEM;
	if ((r = model_snap_load(t, num, &s)) < 0)
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
	ps->baseline_known = model_stat_baseline_known(mt->base_runs, mt->base_fail);
	struct sel_class *selc = calloc(s.n_classes ? s.n_classes : 1, sizeof(*selc));
	if (!selc) {
		r = -ENOMEM;
		goto leave;
	}
	struct sel_input in;
	model_snap_sel_input(&s, &m->opt, selc, &in);
	ps->baseline_share = model_select_base_share(&in);
	free(selc);
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
		cs->under = sc->under;
		cs->failures = sc->failures;
		cs->base_runs = sc->base_runs;
		cs->base_failures = sc->base_failures;
		cs->n_sites = sc->n_sites;
		cs->c = calloc(sc->n ? sc->n : 1, sizeof(*cs->c));
		if (!cs->c) {
			r = -ENOMEM;
			goto leave;
		}
		cs->n = sc->n;
		for (size_t i = 0; i < sc->n; i++) {
			r = constraint_stats(
			    t, m->opt.selector, &s,
			    model_select_base_rate(sc->base_runs, sc->base_failures), &sc->c[i],
			    &sc->d[i], &cs->c[i]);
			if (r < 0)
				goto leave;
			ps->n_contenders += sc->c[i].effective;
		}
		ps->n_constraints += sc->n;
		qsort(cs->c, cs->n, sizeof(*cs->c), cmp_weight);
	}
	r = curves_load(t, num, mt, ps);
leave:
	model_snap_fini(&s);
	return r;
}

static int
stats_read(struct store_txn *t, void *arg)
{
	struct stats_ctx *c = arg;
	struct key nk = {.n = 1, .b = {'N'}};
	uint64_t next;
	int r;

	if ((r = model_rec_count_get(t, &nk, &next)) < 0)
		return r;
	for (uint32_t num = 1; num < next; num++) {
		struct key ik;
		const void *v;
		size_t len;
		model_key_prog(&ik, num, 'I');
		if ((r = model_store_get(t, ik.b, ik.n, &v, &len)) < 0)
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

static void
constraint_stats_fini(struct model_constraint_stats *c)
{
	free((char *)c->b);
	free((char *)c->a);
	free((char *)c->b_where);
	free((char *)c->a_where);
}

void
model_stats_trim(struct model_stats *st, size_t limit)
{
	for (size_t p = 0; p < st->n; p++) {
		struct model_program_stats *ps = &st->programs[p];
		for (size_t k = 0; k < ps->n_classes; k++) {
			struct model_class_stats *cs = &ps->classes[k];
			size_t kept = 0;
			for (size_t i = 0; i < cs->n; i++) {
				if (i < limit || cs->c[i].effective)
					cs->c[kept++] = cs->c[i];
				else
					constraint_stats_fini(&cs->c[i]);
			}
			cs->n = kept;
		}
	}
}

void
model_stats_free(struct model_stats *st)
{
	if (!st)
		return;
	for (size_t p = 0; p < st->n; p++) {
		struct model_program_stats *ps = &st->programs[p];
		for (size_t k = 0; k < ps->n_classes; k++) {
			for (size_t i = 0; i < ps->classes[k].n; i++)
				constraint_stats_fini(&ps->classes[k].c[i]);
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
	struct stats_ctx c = {.m = m, .filter = program};
	int r;

	c.st = calloc(1, sizeof(*c.st));
	if (!c.st)
		return -ENOMEM;
	c.st->selector = m->opt.selector;
	r = model_store_read(m->store, stats_read, &c);
	if (r < 0) {
		model_stats_free(c.st);
		return r;
	}
	*ret_stats = c.st;
	return 0;
}

int
model_disk_usage(struct model *m, size_t *ret_map, size_t *ret_used)
{
	return model_store_size(m->store, ret_map, ret_used);
}
