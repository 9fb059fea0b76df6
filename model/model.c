/*
 * The model's operations (model.h): open and close, start a run (choose on a snapshot, then
 * record the run), end it, count a correct-run sample, count a tick. Each operation is one
 * transaction over the records of records.c; the math and the choice are the pure functions of
 * stats.c, pairs.c and select.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/internal.h"

/* ---- open and close ---- */

void
model_options_init(struct model_options *opts)
{
	*opts = (struct model_options){
	    .window = 10,
	    .intervening_rule = true,
	    .delay_us = 1000,
	    .selector = MODEL_SELECT_DEFAULT,
	    .baseline = MODEL_BASELINE_DEFAULT,
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
	    (unsigned)m->opt.baseline >= MODEL_BASELINE__COUNT ||
	    !(m->opt.class_similarity >= 0 && m->opt.class_similarity <= 1)) {
		free(m);
		return -EINVAL;
	}
	r = model_store_open(dir, m->opt.map_size, m->opt.no_sync, &m->store);
	if (r < 0) {
		free(m);
		return r;
	}
	pthread_mutex_init(&m->lock, NULL);
	model_prng_seed(&m->rng, m->opt.seed);
	*ret_model = m;
	return 0;
}

void
model_close(struct model *m)
{
	if (!m)
		return;
	for (int i = 0; i < SNAP_CACHE; i++)
		model_snap_put(m, m->cache[i]);
	model_store_close(m->store);
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
	struct snap *snap; /* step 1: the model as the choice sees it; NULL: new program */
	long *choice;	   /* step 2: an index per class, or -1 */
	bool baseline;
	struct model_plan *plan; /* step 3 */
};

static int
start_read(struct store_txn *t, void *arg)
{
	struct start_ctx *c = arg;
	struct prog_meta meta;
	uint32_t num;
	int r = model_rec_prog_find(t, c->prog, &num);

	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = model_rec_meta_get(t, num, &meta)) < 0)
		return r;
	c->snap = model_snap_cache_get(c->m, num, meta.gen);
	if (c->snap)
		return 0;
	struct snap *s = calloc(1, sizeof(*s));
	r = s ? model_snap_load(t, num, s) : -ENOMEM;
	if (r < 0) {
		free(s);
		model_snap_cache_abort(c->m, num);
		return r;
	}
	s->refs = 1;
	c->snap = s;
	model_snap_cache_put(c->m, s);
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
serve(struct store_txn *t, uint32_t prog, uint32_t cid, unsigned delay_us, struct model_served *out)
{
	struct key k = model_rec_key1(prog, 'K', cid);
	struct con_rec c;
	const char *b, *bw, *a, *aw;
	int r;

	if ((r = model_rec_get(t, &k, &c, sizeof(c))) < 0 ||
	    (r = model_rec_site_strings(t, prog, c.b, &b, &bw)) < 0 ||
	    (r = model_rec_site_strings(t, prog, c.a, &a, &aw)) < 0)
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
	if ((r = model_rec_prog_find_or_create(t, c->prog, &num)) < 0 ||
	    (r = model_rec_meta_get(t, num, &meta)) < 0)
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
		model_rec_run_cids(rec)[n] = cid;
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
	if ((r = model_rec_run_put(t, num, run, rec)) < 0 ||
	    (r = model_rec_meta_put(t, num, &meta)) < 0)
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
	struct sel_input in;
	model_snap_sel_input(c->snap, &c->m->opt, classes, &in);
	model_prng_seed(&rng, seed);
	c->baseline = model_select_run(&in, &rng, c->choice);
	free(classes);
	return 0;
}

int
model_run_start(struct model *m, const struct model_program *prog, const uint64_t *seed,
		struct model_plan **ret_plan)
{
	struct start_ctx c = {.m = m, .prog = prog};
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
		c.plan->seed = model_prng_next(&m->rng);
		pthread_mutex_unlock(&m->lock);
	}
	/* Choose on a read snapshot (no writer waits for it), then record the run in one short
	 * write. Constraints are never deleted, so the choice stays valid in between. */
	if ((r = model_store_read(m->store, start_read, &c)) < 0 ||
	    (r = start_choose(&c, c.plan->seed)) < 0)
		goto leave;
	c.plan->constraints =
	    calloc((c.snap ? c.snap->n_classes : 0) + 1, sizeof(*c.plan->constraints));
	if (!c.plan->constraints) {
		r = -ENOMEM;
		goto leave;
	}
	r = model_store_write(m->store, start_write, &c);
leave:
	model_snap_put(m, c.snap);
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
	uint32_t *cids; /* the loaded constraints, parsed from the report */
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
	qsort(c->cids, rep->n_constraints, sizeof(*c->cids), model_rec_cmp_u32);
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
	int r = model_rec_meta_get(t, c->prog, meta);

	if (r < 0)
		return r;
	return model_rec_run_get(t, c->prog, c->run, ret_rec);
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
	cids = rep->have_constraints ? c->cids : model_rec_run_cids(rec);
	n = rep->have_constraints ? c->n_cids : rec->n;
	for (size_t i = 0; i < n && rep->have_constraints; i++) {
		struct key k = model_rec_key1(c->prog, 'K', cids[i]);
		struct con_rec cr;
		if ((r = model_rec_get(t, &k, &cr, sizeof(cr))) < 0) {
			r = r == -ENOENT ? -EINVAL : r;
			goto leave;
		}
	}
	if ((r = model_rec_count_outcome(t, c->prog, &meta, cids, n, rep->failed)) < 0)
		goto leave;
	if (rep->failed && c->rpb.n > 0 &&
	    (r = model_rec_learn_failure(t, &c->m->opt, c->prog, &meta, &c->rpb, cids, n)) < 0)
		goto leave;
	rec->ended = 1;
	rec->failed = rep->failed;
	meta.runs_ended++;
	meta.gen++;
	if ((r = model_rec_run_put(t, c->prog, c->run, rec)) < 0 ||
	    (r = model_rec_meta_put(t, c->prog, &meta)) < 0)
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
	int r = model_rec_run_parse(rep->run, &c->prog, &c->run);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!ev[i].site)
			return -EINVAL;
	if ((r = parse_cids(c)) < 0)
		return r;
	return model_rpb_init(&c->rpb, ev, n);
}

static void
report_fini(struct report_ctx *c)
{
	free(c->cids);
	model_rpb_fini(&c->rpb);
}

int
model_run_end(struct model *m, const struct model_report *report)
{
	struct report_ctx c;
	int r = report_init(&c, m, report, report->rpb, report->failed ? report->n_rpb : 0);

	if (r == 0)
		r = model_store_write(m->store, end_write, &c);
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
	if ((r = model_rec_intern_sites(t, c->prog, &c->rpb, &meta, ids)) < 0)
		goto leave;
	np = model_rpb_pairs(&c->rpb, c->m->opt.window, c->m->opt.intervening_rule, &pairs);
	if (np < 0) {
		r = (int)np;
		goto leave;
	}
	for (long i = 0; i < np; i++) {
		struct key k = model_rec_key2(c->prog, 'f', ids[pairs[i].b], ids[pairs[i].a]);
		if ((r = model_rec_count_add(t, &k, pairs[i].count)) < 0)
			goto leave;
		row[pairs[i].b] += pairs[i].count;
		col[pairs[i].a] += pairs[i].count;
	}
	/* One update per site for the sums, not one per pair. */
	for (size_t s = 0; s < c->rpb.n_sites; s++) {
		struct key rk = model_rec_key1(c->prog, 'r', ids[s]),
			   ck = model_rec_key1(c->prog, 'c', ids[s]);
		if ((row[s] && (r = model_rec_count_add(t, &rk, row[s])) < 0) ||
		    (col[s] && (r = model_rec_count_add(t, &ck, col[s])) < 0))
			goto leave;
	}
	meta.correct++;
	meta.gen++;
	r = model_rec_meta_put(t, c->prog, &meta);
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
	struct model_report rep = {.run = run};
	struct report_ctx c;
	int r = report_init(&c, m, &rep, rpb, n);

	if (r == 0)
		r = model_store_write(m->store, correct_write, &c);
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
	if ((r = model_rec_count_outcome(t, c->prog, &meta, model_rec_run_cids(rec), rec->n,
					 false)) < 0)
		goto leave;
	rec->ticks++;
	meta.ticks++;
	meta.gen++;
	if ((r = model_rec_run_put(t, c->prog, c->run, rec)) < 0 ||
	    (r = model_rec_meta_put(t, c->prog, &meta)) < 0)
		goto leave;
	r = 0;
leave:
	free(rec);
	return r;
}

int
model_run_tick(struct model *m, const char *run)
{
	struct model_report rep = {.run = run};
	struct report_ctx c;
	int r = report_init(&c, m, &rep, NULL, 0);

	if (r == 0)
		r = model_store_write(m->store, tick_write, &c);
	report_fini(&c);
	return r;
}
