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

void
model_rpb_fini(struct rpb *r)
{
	if (!r)
		return;
	free(r->site);
	free(r->thread);
	free(r->sites);
	free(r->wheres);
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
	r->sites = malloc((n ? n : 1) * sizeof(*r->sites));
	r->wheres = calloc(n ? n : 1, sizeof(*r->wheres));
	if (!order || !r->site || !r->thread || !r->sites || !r->wheres)
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

	/* Then lay the events out in sequence order. */
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_by_seq, (void *)ev);
	for (size_t k = 0; k < n; k++) {
		r->site[k] = local[order[k]];
		r->thread[k] = ev[order[k]].thread;
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

long
model_pairs_extract(const uint32_t *site, const uint32_t *thread, size_t n, unsigned window,
		    bool intervening_rule, struct pair **ret_pairs)
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
			p[m++] = (struct pair){.b = site[i], .a = site[j], .count = 1};
		}
	}
	qsort(p, m, sizeof(*p), cmp_pair);

	/* Merge equal pairs, counting them. */
	size_t u = 0;
	for (size_t k = 0; k < m; k++) {
		if (u > 0 && p[u - 1].b == p[k].b && p[u - 1].a == p[k].a)
			p[u - 1].count++;
		else
			p[u++] = p[k];
	}
	*ret_pairs = p;
	return (long)u;
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
