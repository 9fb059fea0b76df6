/*
 * The model's records in the store (key layout in internal.h): programs, interned sites, runs,
 * outcomes, failure classes and candidate constraints, read and written inside the caller's
 * transaction. No choice and no statistics here: model.c and snapshot.c use these.
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

/* ---- keys and small records ---- */

void
model_key_prog(struct key *k, uint32_t prog, char tag)
{
	k->n = 0;
	k->b[k->n++] = 'p';
	model_key_u32(k, prog);
	k->b[k->n++] = (uint8_t)tag;
}

void
model_key_u32(struct key *k, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		k->b[k->n++] = (uint8_t)(v >> (8 * i));
}

void
model_key_u64(struct key *k, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		k->b[k->n++] = (uint8_t)(v >> (8 * i));
}

uint32_t
model_key_get_u32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t
model_key_get_u64(const void *p)
{
	return (uint64_t)model_key_get_u32(p) << 32 | model_key_get_u32((const uint8_t *)p + 4);
}

struct key
model_rec_key1(uint32_t prog, char tag, uint32_t x)
{
	struct key k;
	model_key_prog(&k, prog, tag);
	model_key_u32(&k, x);
	return k;
}

struct key
model_rec_key2(uint32_t prog, char tag, uint32_t x, uint32_t y)
{
	struct key k = model_rec_key1(prog, tag, x);
	model_key_u32(&k, y);
	return k;
}

/* Reads a fixed-size record; -ENOENT when absent, -EIO when shorter than @size. */
int
model_rec_get(struct store_txn *t, const struct key *k, void *rec, size_t size)
{
	const void *v;
	size_t len;
	int ret = model_store_get(t, k->b, k->n, &v, &len);

	if (ret < 0)
		return ret;
	if (len < size)
		return -EIO;
	memcpy(rec, v, size);
	return 0;
}

int
model_rec_put(struct store_txn *t, const struct key *k, const void *rec, size_t size)
{
	return model_store_put(t, k->b, k->n, rec, size);
}

/* A u64 counter; 0 when absent. */
int
model_rec_count_get(struct store_txn *t, const struct key *k, uint64_t *ret)
{
	int r = model_rec_get(t, k, ret, sizeof(*ret));

	if (r == -ENOENT) {
		*ret = 0;
		return 0;
	}
	return r;
}

int
model_rec_count_add(struct store_txn *t, const struct key *k, uint64_t delta)
{
	uint64_t v;
	int r = model_rec_count_get(t, k, &v);

	if (r < 0)
		return r;
	v += delta;
	return model_rec_put(t, k, &v, sizeof(v));
}

int
model_rec_meta_get(struct store_txn *t, uint32_t prog, struct prog_meta *meta)
{
	struct key k;

	model_key_prog(&k, prog, 'M');
	return model_rec_get(t, &k, meta, sizeof(*meta));
}

int
model_rec_meta_put(struct store_txn *t, uint32_t prog, const struct prog_meta *meta)
{
	struct key k;

	model_key_prog(&k, prog, 'M');
	return model_rec_put(t, &k, meta, sizeof(*meta));
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
int
model_rec_prog_find(struct store_txn *t, const struct model_program *prog, uint32_t *ret_num)
{
	uint8_t k[PROG_KEY_MAX + 1];
	size_t klen;
	const void *v;
	int r = prog_key(prog, k, &klen);

	if (r < 0)
		return r;
	r = model_store_get(t, k, klen, &v, NULL);
	if (r < 0)
		return r;
	memcpy(ret_num, v, sizeof(*ret_num));
	return 0;
}

/* The number of @prog, creating it (and its meta) when unknown. */
int
model_rec_prog_find_or_create(struct store_txn *t, const struct model_program *prog,
			      uint32_t *ret_num)
{
	uint8_t k[PROG_KEY_MAX + 1];
	size_t klen;
	uint64_t next;
	int r = model_rec_prog_find(t, prog, ret_num);

	if (r != -ENOENT)
		return r;
	prog_key(prog, k, &klen);
	struct key nk = {.n = 1, .b = {'N'}};
	if ((r = model_rec_count_get(t, &nk, &next)) < 0)
		return r;
	uint32_t num = (uint32_t)(next ? next : 1);
	next = num + 1;
	struct prog_meta meta = {
	    .next_site = 1, .next_class = 1, .next_con = 1, .flags = PROG_CLASS_COUNTS};
	struct key ik;
	model_key_prog(&ik, num, 'I');
	if ((r = model_rec_put(t, &nk, &next, sizeof(next))) < 0 ||
	    (r = model_store_put(t, k, klen, &num, sizeof(num))) < 0 ||
	    (r = model_store_put(t, ik.b, ik.n, k + 1, klen - 1)) < 0 ||
	    (r = model_rec_meta_put(t, num, &meta)) < 0)
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
int
model_rec_site_strings(struct store_txn *t, uint32_t prog, uint32_t id, const char **ret_site,
		       const char **ret_where)
{
	struct key k = model_rec_key1(prog, 's', id);
	const void *v;
	size_t len;
	int r = model_store_get(t, k.b, k.n, &v, &len);

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
		model_key_prog(&k, prog, 'S');
		model_key_u64(&k, h + (uint64_t)probe);
		r = model_store_get(t, k.b, k.n, &v, NULL);
		if (r == -ENOENT && !meta)
			return r;
		if (r == -ENOENT) {
			uint32_t id = meta->next_site++;
			char *val = malloc(ls + lw + 2);
			if (!val)
				return -ENOMEM;
			memcpy(val, site, ls + 1);
			memcpy(val + ls + 1, where ? where : "", lw + 1);
			struct key sk = model_rec_key1(prog, 's', id);
			r = model_store_put(t, sk.b, sk.n, val, ls + lw + 2);
			free(val);
			if (r < 0 || (r = model_store_put(t, k.b, k.n, &id, sizeof(id))) < 0)
				return r;
			*ret_id = id;
			return 0;
		}
		if (r < 0)
			return r;
		uint32_t id;
		const char *s, *w;
		memcpy(&id, v, sizeof(id));
		if ((r = model_rec_site_strings(t, prog, id, &s, &w)) < 0)
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
			struct key sk = model_rec_key1(prog, 's', id);
			r = model_store_put(t, sk.b, sk.n, val, ls + lw + 2);
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
int
model_rec_intern_sites(struct store_txn *t, uint32_t prog, const struct rpb *rpb,
		       struct prog_meta *meta, uint32_t *ret_ids)
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
int
model_rec_run_parse(const char *run, uint32_t *ret_prog, uint64_t *ret_run)
{
	unsigned long long p, n;
	int len = 0;

	if (!run || sscanf(run, "%llu-%llu%n", &p, &n, &len) != 2 || run[len] != '\0' ||
	    run[0] < '0' || run[0] > '9' || !strchr(run, '-')[1] || strchr(run, '-')[1] < '0' ||
	    strchr(run, '-')[1] > '9' || p == 0 || p > UINT32_MAX || n == 0)
		return -EINVAL;
	*ret_prog = (uint32_t)p;
	*ret_run = n;
	return 0;
}

/* Loads run @num of @prog into a malloc'd record (*ret_rec); -ENOENT when unknown. */
int
model_rec_run_get(struct store_txn *t, uint32_t prog, uint64_t num, struct run_rec **ret_rec)
{
	struct key k;
	const void *v;
	size_t len;
	int r;

	model_key_prog(&k, prog, 'R');
	model_key_u64(&k, num);
	if ((r = model_store_get(t, k.b, k.n, &v, &len)) < 0)
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

uint32_t *
model_rec_run_cids(struct run_rec *rec)
{
	return (uint32_t *)(rec + 1);
}

int
model_rec_run_put(struct store_txn *t, uint32_t prog, uint64_t num, const struct run_rec *rec)
{
	struct key k;

	model_key_prog(&k, prog, 'R');
	model_key_u64(&k, num);
	return model_store_put(t, k.b, k.n, rec, sizeof(*rec) + rec->n * sizeof(uint32_t));
}

/*
 * Counts one outcome of a run that loaded @cids[0..n-1] (none: a baseline run): per
 * constraint, in the baseline or constrained totals, and in the outcome log.
 */
int
model_rec_count_outcome(struct store_txn *t, uint32_t prog, struct prog_meta *meta,
			const uint32_t *cids, size_t n, bool failed)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		struct key k = model_rec_key1(prog, 'K', cids[i]);
		struct con_rec c;
		if ((r = model_rec_get(t, &k, &c, sizeof(c))) < 0)
			return r;
		c.runs++;
		c.failures += failed;
		if ((r = model_rec_put(t, &k, &c, sizeof(c))) < 0)
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
	model_key_prog(&ok, prog, 'O');
	model_key_u64(&ok, meta->outcomes++);
	uint8_t flags = (failed ? OUTCOME_FAILED : 0) | (n == 0 ? OUTCOME_BASELINE : 0);
	return model_store_put(t, ok.b, ok.n, &flags, 1);
}

/* ---- classes and candidates ---- */

struct classify {
	const uint32_t *sites;
	size_t n;
	uint32_t under; /* 0: the most similar class of its own; else the residual class under it */
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
	if (c->under || rec.under) {
		/* A residual class is found by its constraint, never by likeness. */
		if (rec.under && rec.under == c->under) {
			c->best = 1;
			c->best_id = model_key_get_u32((const uint8_t *)key + 6);
			return 1;
		}
		return 0;
	}
	/* The exemplar's ids, copied: the map need not be aligned for u32. */
	uint32_t *ex = malloc((rec.n_sites ? rec.n_sites : 1) * sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	memcpy(ex, (const uint8_t *)val + sizeof(rec), rec.n_sites * sizeof(*ex));
	double sim = model_sites_similarity(c->sites, c->n, ex, rec.n_sites);
	free(ex);
	if (sim > c->best) {
		c->best = sim;
		c->best_id = model_key_get_u32((const uint8_t *)key + 6);
	}
	return 0;
}

int
model_rec_cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

/* The top-level class whose kind class @class_id's failures are: itself, or for a residual
 * class its parent constraint's class. */
static int
root_class(struct store_txn *t, uint32_t prog, uint32_t class_id, uint32_t *ret)
{
	struct key k = model_rec_key1(prog, 'C', class_id);
	struct class_rec rec;
	struct con_rec parent;
	int r = model_rec_get(t, &k, &rec, sizeof(rec));

	if (r < 0)
		return r;
	*ret = class_id;
	if (!rec.under)
		return 0;
	k = model_rec_key1(prog, 'K', rec.under - 1);
	if ((r = model_rec_get(t, &k, &parent, sizeof(parent))) < 0)
		return r;
	*ret = parent.class_id;
	return 0;
}

int
model_rec_class_base(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
		     uint32_t class_id, uint64_t *ret)
{
	struct key k = model_rec_key1(prog, 'B', class_id);

	if (!(meta->flags & PROG_CLASS_COUNTS)) {
		*ret = meta->base_fail;
		return 0;
	}
	return model_rec_count_get(t, &k, ret);
}

int
model_rec_con_failures(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
		       uint32_t cid, const struct con_rec *c, uint64_t *ret)
{
	struct key k = model_rec_key1(prog, 'F', cid);

	if (!(meta->flags & PROG_CLASS_COUNTS)) {
		*ret = c->failures;
		return 0;
	}
	return model_rec_count_get(t, &k, ret);
}

/*
 * *@ret_under: 1 + the constraint among @cids[0..n-1] that belongs to class @class_id and is
 * decisive against the baseline, its record in *@ret_parent; or 0 when none is. Returns 0 or
 * -errno. @class_id is a top-level class. The failure being classified is of its kind and
 * counts against the constraints, although its class counts ('F') come once it has a class.
 */
static int
decisive_of_class(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
		  uint32_t class_id, const uint32_t *cids, size_t n, uint32_t *ret_under,
		  struct con_rec *ret_parent)
{
	uint64_t pending = meta->flags & PROG_CLASS_COUNTS ? 1 : 0, base_failures;
	int r = model_rec_class_base(t, prog, meta, class_id, &base_failures);

	*ret_under = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct key k = model_rec_key1(prog, 'K', cids[i]);
		struct con_rec c;
		uint64_t failures;
		if ((r = model_rec_get(t, &k, &c, sizeof(c))) < 0)
			return r;
		if (c.class_id != class_id)
			continue;
		if ((r = model_rec_con_failures(t, prog, meta, cids[i], &c, &failures)) < 0)
			return r;
		if (model_stat_decisive(meta->base_runs, base_failures, c.runs,
					failures + pending)) {
			*ret_under = cids[i] + 1;
			*ret_parent = c;
			return 0;
		}
	}
	return r;
}

/*
 * Counts a failure of class @class_id's kind where it is judged: in the baseline's count of
 * that kind ('B'), or for each constraint among @cids[0..n-1] of that kind ('F'). A residual
 * class's kind is its parent's class: @parent is the residual class's parent constraint, or
 * has b == UINT32_MAX.
 */
static int
count_class_failure(struct store_txn *t, uint32_t prog, const struct prog_meta *meta,
		    uint32_t class_id, const struct con_rec *parent, const uint32_t *cids, size_t n)
{
	uint32_t root = parent->b != UINT32_MAX ? parent->class_id : class_id;
	struct key k;
	int r;

	if (!(meta->flags & PROG_CLASS_COUNTS))
		return 0;
	if (n == 0) {
		k = model_rec_key1(prog, 'B', root);
		return model_rec_count_add(t, &k, 1);
	}
	for (size_t i = 0; i < n; i++) {
		struct con_rec c;
		uint32_t croot;
		k = model_rec_key1(prog, 'K', cids[i]);
		if ((r = model_rec_get(t, &k, &c, sizeof(c))) < 0 ||
		    (r = root_class(t, prog, c.class_id, &croot)) < 0)
			return r;
		k = model_rec_key1(prog, 'F', cids[i]);
		if (croot == root && (r = model_rec_count_add(t, &k, 1)) < 0)
			return r;
	}
	return 0;
}

/*
 * Puts a failure whose sites are @ids[0..n-1] (store ids) in its class (AVISO.md section 4),
 * creating the class when none is similar enough; counts the failure in it.
 *
 * A failure of a run that loaded a decisive contender of the class it is like goes instead to
 * that contender's residual class (created with this failure as its exemplar): what the
 * contender did not avoid. A bug that fails in two orders (double_free: either thread may read
 * the pointer first) makes one class, whose contender covers one order; the other order's
 * failures then teach a second constraint, loaded on top of the first (select.c). *@ret_parent
 * is then the contender's record; it is left as it was otherwise.
 */
static int
classify(struct store_txn *t, uint32_t prog, struct prog_meta *meta, double threshold,
	 const uint32_t *ids, size_t n, const uint32_t *cids, size_t n_cids, uint32_t *ret_class,
	 struct con_rec *ret_parent)
{
	uint32_t *set = malloc((n ? n : 1) * sizeof(*set));
	struct key prefix;
	uint32_t under = 0;
	int r;

	if (!set)
		return -ENOMEM;
	memcpy(set, ids, n * sizeof(*set));
	qsort(set, n, sizeof(*set), model_rec_cmp_u32);
	struct classify c = {.sites = set, .n = n, .best = -1};
	model_key_prog(&prefix, prog, 'C');
	if ((r = model_store_scan(t, prefix.b, prefix.n, classify_one, &c)) < 0)
		goto leave;
	if (c.best >= threshold &&
	    (r = decisive_of_class(t, prog, meta, c.best_id, cids, n_cids, &under, ret_parent)) <
		0)
		goto leave;
	if (under) {
		c = (struct classify){.sites = set, .n = n, .under = under, .best = -1};
		if ((r = model_store_scan(t, prefix.b, prefix.n, classify_one, &c)) < 0)
			goto leave;
	}

	struct key k;
	size_t size = sizeof(struct class_rec) + n * sizeof(uint32_t);
	uint8_t *val;
	const void *old;
	if (c.best >= threshold) {
		k = model_rec_key1(prog, 'C', c.best_id);
		size_t len;
		if ((r = model_store_get(t, k.b, k.n, &old, &len)) < 0)
			goto leave;
		size = len;
	} else {
		c.best_id = meta->next_class++;
		k = model_rec_key1(prog, 'C', c.best_id);
		old = NULL;
	}
	val = malloc(size);
	if (!val) {
		r = -ENOMEM;
		goto leave;
	}
	struct class_rec rec = {.failures = 0, .n_sites = (uint32_t)n, .under = under};
	if (old) {
		memcpy(val, old, size);
		memcpy(&rec, val, sizeof(rec));
	} else {
		memcpy(val + sizeof(rec), set, n * sizeof(uint32_t));
	}
	rec.failures++;
	memcpy(val, &rec, sizeof(rec));
	r = model_store_put(t, k.b, k.n, val, size);
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

	model_key_prog(&ik, prog, 'k');
	model_key_u32(&ik, class_id);
	model_key_u32(&ik, b);
	model_key_u32(&ik, a);
	r = model_store_get(t, ik.b, ik.n, &v, NULL);
	if (r == -ENOENT) {
		cid = meta->next_con++;
		c = (struct con_rec){.class_id = class_id, .b = b, .a = a};
		if ((r = model_store_put(t, ik.b, ik.n, &cid, sizeof(cid))) < 0)
			return r;
	} else if (r < 0) {
		return r;
	} else {
		memcpy(&cid, v, sizeof(cid));
		struct key k = model_rec_key1(prog, 'K', cid);
		if ((r = model_rec_get(t, &k, &c, sizeof(c))) < 0)
			return r;
	}
	c.failing_with++;
	struct key k = model_rec_key1(prog, 'K', cid);
	return model_rec_put(t, &k, &c, sizeof(c));
}

/* Learns from a failure RPB: its class, and its candidate constraints. */
int
model_rec_learn_failure(struct store_txn *t, const struct model_options *opt, uint32_t prog,
			struct prog_meta *meta, const struct rpb *rpb, const uint32_t *cids,
			size_t n)
{
	uint32_t *ids = malloc((rpb->n_sites ? rpb->n_sites : 1) * sizeof(*ids));
	struct pair *pairs = NULL;
	/* A residual class's parent: its own pair is no candidate there (loaded on top of
	 * itself, a constraint does nothing more). */
	struct con_rec parent = {.b = UINT32_MAX, .a = UINT32_MAX};
	uint32_t class_id;
	long np;
	int r;

	if (!ids)
		return -ENOMEM;
	if ((r = model_rec_intern_sites(t, prog, rpb, meta, ids)) < 0 ||
	    (r = classify(t, prog, meta, opt->class_similarity, ids, rpb->n_sites, cids, n,
			  &class_id, &parent)) < 0 ||
	    (r = count_class_failure(t, prog, meta, class_id, &parent, cids, n)) < 0)
		goto leave;
	np = model_rpb_pairs(rpb, opt->window, opt->intervening_rule, &pairs);
	if (np < 0) {
		r = (int)np;
		goto leave;
	}
	/* Local numbering is a bijection onto store ids: distinct pairs stay distinct. */
	for (long i = 0; i < np; i++) {
		if (ids[pairs[i].b] == parent.b && ids[pairs[i].a] == parent.a)
			continue;
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
