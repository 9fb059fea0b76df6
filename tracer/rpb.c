/*
 * The Recent Past Buffer (AVISO.md section 2): one ring per thread of its last events, kept in
 * the tracer, merged by sequence number when a failure or a sample needs it. Rings of exited
 * threads are kept too (their events may be the ones that matter), up to a bound, so memory
 * stays bounded whatever the run length and the number of threads created.
 */
#include <errno.h>
#include <stdlib.h>

#include "tracer/internal.h"

/* Rings of exited threads kept: enough for every thread of a program's working set. */
#define MAX_RETIRED 256

void
rpb_append(struct tracer *t, struct thread *th, const struct rpb_entry *e)
{
	struct rpb_ring *r = th->ring;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return;
		r->e = malloc(t->rpb_size * sizeof(*r->e));
		if (!r->e) {
			free(r);
			return;
		}
		r->cap = t->rpb_size;
		th->ring = r;
	}
	r->e[r->written % r->cap] = *e;
	r->written++;
}

const struct rpb_entry *
rpb_last(const struct thread *th)
{
	const struct rpb_ring *r = th->ring;

	if (!r || !r->written)
		return NULL;
	return &r->e[(r->written - 1) % r->cap];
}

static void
ring_free(struct rpb_ring *r)
{
	free(r->e);
	free(r);
}

void
rpb_retire(struct tracer *t, struct thread *th)
{
	struct rpb_ring *r = th->ring;

	th->ring = NULL;
	if (!r)
		return;
	r->next = t->retired;
	t->retired = r;
	if (++t->nretired <= MAX_RETIRED)
		return;
	/* Drop the oldest: the list is newest first. */
	struct rpb_ring **pp = &t->retired;
	while ((*pp)->next)
		pp = &(*pp)->next;
	ring_free(*pp);
	*pp = NULL;
	t->nretired--;
}

void
rpb_free_all(struct tracer *t)
{
	while (t->retired) {
		struct rpb_ring *r = t->retired;
		t->retired = r->next;
		ring_free(r);
	}
	t->nretired = 0;
	for (struct thread *th = t->threads; th; th = th->next) {
		if (th->ring)
			ring_free(th->ring);
		th->ring = NULL;
	}
}

struct model_event
rpb_event(const struct rpb_entry *e)
{
	return (struct model_event){
		.seq = e->seq,
		.ns = e->ns,
		.thread = e->thread,
		.tid = e->tid,
		.pid = e->pid,
		.kind = e->kind,
		.object = e->object,
		.site = e->site ? e->site->str : "?",
		.where = e->site ? e->site->where : NULL,
		.frames = e->site ? e->site->frames : NULL,
		.nframes = e->site ? e->site->nframes : 0,
	};
}

static size_t
ring_count(const struct rpb_ring *r)
{
	return r->written < r->cap ? (size_t)r->written : r->cap;
}

static size_t
ring_copy(const struct rpb_ring *r, struct rpb_entry *out)
{
	size_t n = ring_count(r);
	uint64_t first = r->written - n;

	for (size_t i = 0; i < n; i++)
		out[i] = r->e[(first + i) % r->cap];
	return n;
}

static int
cmp_seq(const void *a, const void *b)
{
	const struct rpb_entry *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

int
rpb_merge(struct tracer *t, struct rpb_entry **ret_entries, size_t *ret_n)
{
	size_t total = 0, n = 0;
	struct rpb_entry *v;

	for (const struct thread *th = t->threads; th; th = th->next)
		if (th->ring)
			total += ring_count(th->ring);
	for (const struct rpb_ring *r = t->retired; r; r = r->next)
		total += ring_count(r);
	v = malloc((total ? total : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (const struct thread *th = t->threads; th; th = th->next)
		if (th->ring)
			n += ring_copy(th->ring, v + n);
	for (const struct rpb_ring *r = t->retired; r; r = r->next)
		n += ring_copy(r, v + n);
	qsort(v, n, sizeof(*v), cmp_seq);
	*ret_entries = v;
	*ret_n = n;
	return 0;
}
