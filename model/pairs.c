/*
 * From an RPB to pairs of sites (AVISO.md section 3): the RPB in sequence order with its sites
 * numbered, the candidate pairs within the window, and the similarity of two site sets (failure
 * classes). Pure: no store, no I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"

static int
cmp_by_seq(const void *x, const void *y, void *arg)
{
	const struct model_event *ev = arg;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;

	if (ev[i].seq != ev[j].seq)
		return ev[i].seq < ev[j].seq ? -1 : 1;
	return i < j ? -1 : i > j; /* stable */
}

static int
cmp_by_site(const void *x, const void *y, void *arg)
{
	const struct model_event *ev = arg;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int c = strcmp(ev[i].site, ev[j].site);

	if (c)
		return c;
	return i < j ? -1 : i > j;
}

/* The acquisitions the layout moves to where they acquired (trylocks may not acquire at all). */
static bool
is_acquisition(enum model_event_kind k)
{
	return k == MODEL_EV_MUTEX_LOCK || k == MODEL_EV_MUTEX_TIMEDLOCK ||
	       k == MODEL_EV_RWLOCK_RDLOCK || k == MODEL_EV_RWLOCK_WRLOCK;
}

static bool
is_rwlock_hold(enum model_event_kind k)
{
	return k == MODEL_EV_RWLOCK_RDLOCK || k == MODEL_EV_RWLOCK_WRLOCK ||
	       k == MODEL_EV_RWLOCK_TRYRDLOCK || k == MODEL_EV_RWLOCK_TRYWRLOCK;
}

struct placed {
	size_t key; /* 2 * position, or 2 * (the unlock it follows) + 1 */
	size_t pos;
};

static int
cmp_placed(const void *x, const void *y)
{
	const struct placed *p = x, *q = y;

	if (p->key != q->key)
		return p->key < q->key ? -1 : 1;
	return p->pos < q->pos ? -1 : p->pos > q->pos;
}

/*
 * The position in @order (before @k) of the acquisition that the unlock at @k released: the
 * latest read or write lock of the same rwlock by the same thread. SIZE_MAX when it is not in
 * the RPB.
 */
static size_t
rwlock_hold_of(const struct model_event *ev, const size_t *order, size_t k)
{
	const struct model_event *u = &ev[order[k]];

	while (k-- > 0) {
		const struct model_event *g = &ev[order[k]];
		if (g->thread == u->thread && g->object == u->object && is_rwlock_hold(g->kind))
			return k;
	}
	return SIZE_MAX;
}

/*
 * Whether the unlock at position @k of @order ends a hold that the acquisition @e (of another
 * thread, entered before it) had to wait for. A mutex's every hold excludes it; so does a
 * rwlock's for a writer, and a write hold for a reader (readers share).
 */
static bool
excludes(const struct model_event *ev, const size_t *order, size_t k,
	 const struct model_event *e, size_t *ret_hold)
{
	const struct model_event *f = &ev[order[k]];

	*ret_hold = SIZE_MAX;
	if (f->object != e->object)
		return false;
	if (e->kind == MODEL_EV_MUTEX_LOCK || e->kind == MODEL_EV_MUTEX_TIMEDLOCK)
		return f->kind == MODEL_EV_MUTEX_UNLOCK;
	if (f->kind != MODEL_EV_RWLOCK_UNLOCK)
		return false;
	*ret_hold = rwlock_hold_of(ev, order, k);
	if (e->kind == MODEL_EV_RWLOCK_WRLOCK)
		return true;
	return *ret_hold != SIZE_MAX &&
	       (ev[order[*ret_hold]].kind == MODEL_EV_RWLOCK_WRLOCK ||
		ev[order[*ret_hold]].kind == MODEL_EV_RWLOCK_TRYWRLOCK);
}

/*
 * Events are call entries: a thread that calls pthread_mutex_lock enters it first and acquires
 * the mutex later, after whatever critical sections of other threads came in between. The
 * order that matters for an atomicity violation is the acquisition's (AVISO.md's pairs are about
 * what executed first), and under a tracer the gap between the two is long. A lock of mutex m by
 * thread X cannot have acquired before another thread's unlock of m that comes after X's lock
 * and before X's next event: X would have held m until after that next event. So X's lock is
 * moved to just after the last such unlock (several moved after one unlock keep their order).
 * A thread's own order never changes: the unlock is before its next event. Read-write locks
 * the same way, for the holds that exclude the acquisition (excludes()). Trylocks are left
 * where they are (they may not acquire at all). Rewrites @order (n event indices in sequence
 * order).
 *
 * With @waited, each moved rwlock acquisition also gives (the acquisition of the hold it waited
 * for, itself), as event indices: *waited is malloc'd, *n_waited its length. glibc's rwlock
 * unlock hands the lock over to the threads waiting inside pthread_rwlock_rdlock/wrlock, so a
 * constraint (that unlock, the acquisition) cannot hold a waiter that entered before it: the
 * tracer stops it, but it owns the lock already. Only a delay that began before it entered can
 * order it: one activated by the other thread's acquisition. (A mutex unlock wakes a waiter
 * that must still take the mutex, which the tracer can keep it from doing.) rwlock_dup: with
 * its culprit, a request that entered its read lock 40 us before the reloader's write lock
 * read the registry without the entry; (the reloader's write lock, the read lock) loaded on
 * top made it 13 failures in 1800 runs against 97.
 *
 * Returns 0 or -ENOMEM.
 */
int
model_rpb_acquisition_order(const struct model_event *ev, size_t *order, size_t n,
			    struct pair **waited, size_t *n_waited)
{
	struct placed *v = malloc((n ? n : 1) * sizeof(*v));
	struct pair *w = waited ? malloc((n ? n : 1) * sizeof(*w)) : NULL;
	size_t nw = 0;

	if (!v || (waited && !w)) {
		free(v);
		free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct model_event *e = &ev[order[i]];
		size_t after = SIZE_MAX, hold = SIZE_MAX;

		v[i] = (struct placed){.key = 2 * i, .pos = i};
		if (!is_acquisition(e->kind) || !e->object)
			continue;
		for (size_t k = i + 1; k < n; k++) {
			const struct model_event *f = &ev[order[k]];
			size_t h;
			if (f->thread == e->thread)
				break; /* its next event: it had the lock by then */
			if (excludes(ev, order, k, e, &h)) {
				after = k;
				hold = h;
			}
		}
		if (after == SIZE_MAX)
			continue;
		v[i].key = 2 * after + 1;
		if (w && hold != SIZE_MAX)
			w[nw++] = (struct pair){.b = (uint32_t)order[hold], .a = (uint32_t)order[i],
						.count = 1};
	}
	qsort(v, n, sizeof(*v), cmp_placed);
	size_t *out = malloc((n ? n : 1) * sizeof(*out));
	if (!out) {
		free(v);
		free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = order[v[i].pos];
	memcpy(order, out, n * sizeof(*order));
	free(out);
	free(v);
	if (waited) {
		*waited = w;
		*n_waited = nw;
	}
	return 0;
}

void
model_rpb_fini(struct rpb *r)
{
	if (!r)
		return;
	free(r->site);
	free(r->thread);
	free(r->delayable);
	free(r->sites);
	free(r->wheres);
	free(r->waited);
	memset(r, 0, sizeof(*r));
}

int
model_rpb_init(struct rpb *r, const struct model_event *ev, size_t n)
{
	size_t *order = NULL;
	int ret = -ENOMEM;

	memset(r, 0, sizeof(*r));
	r->n = n;
	order = malloc((n ? n : 1) * sizeof(*order));
	r->site = malloc((n ? n : 1) * sizeof(*r->site));
	r->thread = malloc((n ? n : 1) * sizeof(*r->thread));
	r->delayable = malloc((n ? n : 1) * sizeof(*r->delayable));
	r->sites = malloc((n ? n : 1) * sizeof(*r->sites));
	r->wheres = calloc(n ? n : 1, sizeof(*r->wheres));
	if (!order || !r->site || !r->thread || !r->delayable || !r->sites || !r->wheres)
		goto leave;

	/* Number the sites: sort event indices by site string, one number per distinct string. */
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_by_site, (void *)ev);
	uint32_t *local = malloc((n ? n : 1) * sizeof(*local));
	if (!local)
		goto leave;
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		if (k == 0 || strcmp(ev[i].site, r->sites[r->n_sites - 1]) != 0)
			r->sites[r->n_sites++] = ev[i].site;
		local[i] = (uint32_t)(r->n_sites - 1);
		if (!r->wheres[r->n_sites - 1] && ev[i].where && ev[i].where[0])
			r->wheres[r->n_sites - 1] = ev[i].where;
	}

	/* Then lay the events out in sequence order, each contended lock where it acquired. */
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_by_seq, (void *)ev);
	if (model_rpb_acquisition_order(ev, order, n, &r->waited, &r->n_waited) < 0) {
		free(local);
		goto leave;
	}
	for (size_t k = 0; k < r->n_waited; k++) {
		r->waited[k].b = local[r->waited[k].b];
		r->waited[k].a = local[r->waited[k].a];
	}
	for (size_t k = 0; k < n; k++) {
		r->site[k] = local[order[k]];
		r->thread[k] = ev[order[k]].thread;
		r->delayable[k] = ev[order[k]].kind != MODEL_EV_SIGNAL;
	}
	free(local);
	ret = 0;
leave:
	free(order);
	if (ret < 0)
		model_rpb_fini(r);
	return ret;
}

static int
cmp_pair(const void *x, const void *y)
{
	const struct pair *p = x, *q = y;

	if (p->b != q->b)
		return p->b < q->b ? -1 : 1;
	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	return 0;
}

/* Sorts @p (m pairs) by (b, a) and merges equal ones, adding their counts. The new length. */
static size_t
sort_and_merge(struct pair *p, size_t m)
{
	size_t u = 0;

	qsort(p, m, sizeof(*p), cmp_pair);
	for (size_t k = 0; k < m; k++) {
		if (u > 0 && p[u - 1].b == p[k].b && p[u - 1].a == p[k].a)
			p[u - 1].count += p[k].count;
		else
			p[u++] = p[k];
	}
	return u;
}

long
model_pairs_extract(const uint32_t *site, const uint32_t *thread, size_t n, unsigned window,
		    bool intervening_rule, const bool *delayable, struct pair **ret_pairs)
{
	size_t span = window > 1 ? window - 1 : 0, cap = n * span, m = 0;
	struct pair *p = malloc((cap ? cap : 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n && j - i <= span; j++) {
			if (thread[j] == thread[i]) {
				/* e_j is of e_i's thread: it intervenes before every later e_j. */
				if (intervening_rule)
					break;
				continue;
			}
			if (delayable && !delayable[j])
				continue;
			p[m++] = (struct pair){.b = site[i], .a = site[j], .count = 1};
		}
	}
	*ret_pairs = p;
	return (long)sort_and_merge(p, m);
}

long
model_rpb_pairs(const struct rpb *r, unsigned window, bool intervening_rule,
		struct pair **ret_pairs)
{
	struct pair *p;
	long m = model_pairs_extract(r->site, r->thread, r->n, window, intervening_rule,
				     r->delayable, &p);

	if (m < 0 || r->n_waited == 0) {
		*ret_pairs = m < 0 ? NULL : p;
		return m;
	}
	struct pair *q = realloc(p, ((size_t)m + r->n_waited) * sizeof(*q));
	if (!q) {
		free(p);
		return -ENOMEM;
	}
	memcpy(q + m, r->waited, r->n_waited * sizeof(*q));
	*ret_pairs = q;
	return (long)sort_and_merge(q, (size_t)m + r->n_waited);
}

double
model_sites_similarity(const uint32_t *x, size_t nx, const uint32_t *y, size_t ny)
{
	size_t i = 0, j = 0, inter = 0;

	if (nx + ny == 0)
		return 1.0;
	while (i < nx && j < ny) {
		if (x[i] == y[j]) {
			inter++;
			i++;
			j++;
		} else if (x[i] < y[j]) {
			i++;
		} else {
			j++;
		}
	}
	/* 1 - |symmetric difference| / |union| = |intersection| / |union|. */
	return (double)inter / (double)(nx + ny - inter);
}
