/*
 * Aviso's schedule constraints (AVISO.md section 3) as a pure state machine: instances activated
 * by B, threads stalled before A, deadlines, and the facts that cut a stall short. The decisions
 * and their reasons are in fsm.h; this file keeps the bookkeeping:
 *
 *  - a thread table (open addressing on the thread index) holding a record per thread that has
 *    activated an instance, been stalled, or been reported waiting; a record lives until the
 *    thread exits;
 *  - per record, one deadline slot per constraint: the instance of (constraint, thread), active
 *    while now < deadline (so "at most one instance per activator" holds by construction);
 *  - a list of activators that may still have an active instance (pruned lazily), scanned when
 *    an event matches some A;
 *  - a FIFO list of stalled threads, each with its holders (constraint, activator, deadline)
 *    fixed when the stall began.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/internal.h"

/* What keeps a stalled thread stopped: one active instance, as it was when the stall began. */
struct holder {
	uint32_t constraint;
	uint32_t activator;
	uint64_t deadline;
};

struct thread {
	uint32_t id;
	uint32_t blocked_on;   /* the thread this one waits for (join, mutex owner); 0: none */
	uint64_t max_deadline; /* no instance of this thread is active once now >= it */
	unsigned events_since_b; /* its events since its latest activation */
	bool retired;	       /* its instances ended at its release_after-th event after B */
	bool b_fresh;	       /* its latest event activated, and it has no event since */
	bool point_window;     /* its latest B was a point: only another point ends the window */
	uint32_t window_point; /* that point (fsm_thread_point_done()'s @point) */
	bool activator;	       /* on the activators list */
	bool stalled;	       /* on the stalled list */
	struct thread *act_prev, *act_next;
	struct thread *st_prev, *st_next;
	/* While stalled: */
	uint64_t release_at; /* the latest holder's deadline, or when the last holder went */
	struct holder *holders;
	size_t nholders, cap_holders;
	uint64_t *pending_b; /* bitmap over constraints: what the stalled event activates */
	uint64_t deadline[]; /* per constraint: the instance's deadline; 0: never activated */
};

struct list {
	struct thread *head, *tail;
};

struct fsm {
	struct constraint *c;
	size_t n;
	size_t nwords; /* of a pending_b bitmap */
	unsigned release_after; /* fsm_options.release_after_events, 0: never early */
	uint64_t now; /* the latest time seen */
	struct site_cache sites;
	struct thread **tab; /* thread table; NULL slots are empty */
	size_t tab_cap, tab_n;
	struct list act, stalled;
	size_t nact;
};

/* A bound on "waits for" chains: a longer one is a cycle, i.e. a deadlock the tracer reports. */
#define WAIT_CHAIN_MAX 64

/* ---- thread table ---- */

static size_t
tab_home(const struct fsm *f, uint32_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 20) & (f->tab_cap - 1);
}

static struct thread *
thread_find(const struct fsm *f, uint32_t id)
{
	if (!f->tab_cap)
		return NULL;
	for (size_t j = tab_home(f, id); f->tab[j]; j = (j + 1) & (f->tab_cap - 1))
		if (f->tab[j]->id == id)
			return f->tab[j];
	return NULL;
}

static void
tab_insert(struct fsm *f, struct thread *t)
{
	size_t j = tab_home(f, t->id);

	while (f->tab[j])
		j = (j + 1) & (f->tab_cap - 1);
	f->tab[j] = t;
	f->tab_n++;
}

/* Removes @t from the table (backward-shift deletion: no tombstones). */
static void
tab_remove(struct fsm *f, struct thread *t)
{
	size_t mask = f->tab_cap - 1, j;

	for (j = tab_home(f, t->id); f->tab[j] != t; j = (j + 1) & mask)
		;
	f->tab[j] = NULL;
	f->tab_n--;
	for (size_t k = (j + 1) & mask; f->tab[k]; k = (k + 1) & mask) {
		size_t h = tab_home(f, f->tab[k]->id);
		/* Move it back to the hole if its home is not in (j, k] cyclically. */
		if ((k > j && (h <= j || h > k)) || (k < j && h <= j && h > k)) {
			f->tab[j] = f->tab[k];
			f->tab[k] = NULL;
			j = k;
		}
	}
}

/* Finds or adds @id's record. Returns NULL when out of memory (nothing changed). */
static struct thread *
thread_get(struct fsm *f, uint32_t id)
{
	struct thread *t = thread_find(f, id);

	if (t)
		return t;
	if ((f->tab_n + 1) * 2 > f->tab_cap) {
		size_t cap = f->tab_cap ? f->tab_cap * 2 : 32;
		struct thread **tab = calloc(cap, sizeof(*tab)), **old = f->tab;
		size_t oldcap = f->tab_cap;
		if (!tab)
			return NULL;
		f->tab = tab;
		f->tab_cap = cap;
		f->tab_n = 0;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i])
				tab_insert(f, old[i]);
		free(old);
	}
	t = calloc(1, sizeof(*t) + (f->n + f->nwords) * sizeof(uint64_t));
	if (!t)
		return NULL;
	t->id = id;
	t->pending_b = t->deadline + f->n;
	tab_insert(f, t);
	return t;
}

/* ---- lists ---- */

#define LIST_PUSH(l, t, prev, next)                                                                \
	do {                                                                                       \
		(t)->prev = (l)->tail;                                                             \
		(t)->next = NULL;                                                                  \
		if ((l)->tail)                                                                     \
			(l)->tail->next = (t);                                                     \
		else                                                                               \
			(l)->head = (t);                                                           \
		(l)->tail = (t);                                                                   \
	} while (0)

#define LIST_UNLINK(l, t, prev, next)                                                              \
	do {                                                                                       \
		if ((t)->prev)                                                                     \
			(t)->prev->next = (t)->next;                                               \
		else                                                                               \
			(l)->head = (t)->next;                                                     \
		if ((t)->next)                                                                     \
			(t)->next->prev = (t)->prev;                                               \
		else                                                                               \
			(l)->tail = (t)->prev;                                                     \
		(t)->prev = (t)->next = NULL;                                                      \
	} while (0)

static void
act_unlink(struct fsm *f, struct thread *t)
{
	if (!t->activator)
		return;
	LIST_UNLINK(&f->act, t, act_prev, act_next);
	t->activator = false;
	f->nact--;
}

/* Drops activators none of whose instances is active any more. */
static void
act_prune(struct fsm *f)
{
	struct thread *t = f->act.head, *next;

	for (; t; t = next) {
		next = t->act_next;
		if (t->max_deadline <= f->now)
			act_unlink(f, t);
	}
}

static void
stall_end(struct fsm *f, struct thread *t)
{
	LIST_UNLINK(&f->stalled, t, st_prev, st_next);
	t->stalled = false;
	t->nholders = 0;
}

/* ---- the rules ---- */

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t
clamp_now(struct fsm *f, uint64_t now)
{
	if (now > f->now)
		f->now = now;
	return f->now;
}

/* Starts (or restarts) the instance of constraint @i activated by @t at @now. */
static void
activate(struct fsm *f, struct thread *t, uint32_t i, uint64_t now)
{
	uint64_t d = sat_add(now, f->c[i].delay_ns);

	t->deadline[i] = d;
	if (d > t->max_deadline)
		t->max_deadline = d;
	t->events_since_b = 0;
	t->retired = false;
	t->b_fresh = true;
	t->point_window = false;
	f->c[i].counters.activations++;
	if (!t->activator) {
		LIST_PUSH(&f->act, t, act_prev, act_next);
		t->activator = true;
		f->nact++;
	}
}

/* Whether @a waits for @s, directly or through a chain of waiting threads. */
static bool
waits_for(const struct fsm *f, uint32_t a, uint32_t s)
{
	uint32_t x = a;

	for (int k = 0; k < WAIT_CHAIN_MAX; k++) {
		const struct thread *t = thread_find(f, x);
		if (!t || !t->blocked_on)
			return false;
		x = t->blocked_on;
		if (x == s)
			return true;
	}
	return false;
}

enum drop_rule {
	DROP_ACTIVATOR, /* holders whose activator is @arg (it exited, or moved on) */
	DROP_WAITING,	/* holders whose activator waits for the stalled thread */
};

/*
 * Removes the holders of stalled thread @s that @rule names, counting those removed before their
 * deadline as cut short; recomputes when @s is due (at @now if nothing holds it any more).
 */
static void
drop_holders(struct fsm *f, struct thread *s, enum drop_rule rule, uint32_t arg, uint64_t now)
{
	size_t k = 0;
	bool dropped = false;
	uint64_t until = 0;

	for (size_t j = 0; j < s->nholders; j++) {
		struct holder *h = &s->holders[j];
		bool drop = rule == DROP_ACTIVATOR ? h->activator == arg
						   : waits_for(f, h->activator, s->id);
		if (drop) {
			dropped = true;
			if (h->deadline > now)
				f->c[h->constraint].counters.cut_short++;
			continue;
		}
		if (h->deadline > until)
			until = h->deadline;
		s->holders[k++] = *h;
	}
	s->nholders = k;
	if (!dropped)
		return;
	if (k == 0 || until < now)
		until = now;
	if (until < s->release_at)
		s->release_at = until;
}

static void
drop_all(struct fsm *f, enum drop_rule rule, uint32_t arg, uint64_t now)
{
	for (struct thread *s = f->stalled.head; s; s = s->st_next)
		drop_holders(f, s, rule, arg, now);
}

/* The constraints an event's site activates (B) or is delayed by (A): cached, or matched live. */
struct matches {
	const struct fsm *f;
	const struct fsm_site *s; /* NULL: match @str against every constraint */
	const char *str;
};

static bool
next_match(const struct matches *m, bool after, size_t *k, uint32_t *ret_i)
{
	if (m->s) {
		uint32_t cnt = after ? m->s->na : m->s->nb;
		if (*k >= cnt)
			return false;
		*ret_i = (after ? m->s->a : m->s->b)[(*k)++];
		return true;
	}
	while (*k < m->f->n) {
		size_t i = (*k)++;
		if (fsm_site_match(after ? m->f->c[i].after : m->f->c[i].before, m->str)) {
			*ret_i = (uint32_t)i;
			return true;
		}
	}
	return false;
}

static size_t
count_matches(const struct matches *m, bool after)
{
	size_t k = 0, n = 0;
	uint32_t i;

	while (next_match(m, after, &k, &i))
		n++;
	return n;
}

/* @t's instances end at @now, before their deadlines, and so do the stalls they hold. */
static void
retire(struct fsm *f, struct thread *t, uint64_t now)
{
	drop_all(f, DROP_ACTIVATOR, t->id, now);
	for (size_t j = 0; j < f->n; j++)
		if (t->deadline[j] > now)
			t->deadline[j] = now;
	t->max_deadline = now;
	t->retired = true;
	act_unlink(f, t);
}

static int
on_event(struct fsm *f, uint32_t thread, const struct matches *m, uint64_t now, uint64_t *ret_until)
{
	struct thread *t;
	size_t na, nb, k;
	uint32_t i;

	if (thread == 0)
		return -EINVAL;
	now = clamp_now(f, now);
	t = thread_find(f, thread);
	if (t && t->stalled)
		return -EBUSY;
	na = count_matches(m, true);
	nb = count_matches(m, false);

	/* Allocate first, so that a failure leaves everything as it was. */
	if (na) {
		act_prune(f);
		if (!f->nact)
			na = 0; /* nothing can hold it */
	}
	if ((na || nb) && !t) {
		t = thread_get(f, thread);
		if (!t)
			return -ENOMEM;
	}
	if (na) {
		/* At most one holder per (constraint, activator). */
		size_t need = na * f->nact;
		if (need > t->cap_holders) {
			struct holder *h = realloc(t->holders, need * sizeof(*h));
			if (!h)
				return -ENOMEM;
			t->holders = h;
			t->cap_holders = need;
		}
	}

	/*
	 * This is the thread's next event: whatever it waited for is over. It counts toward
	 * release_after also past the deadline: a hold measured later (fsm_thread_held()) may
	 * still move that deadline, and must not revive an instance whose activator is done.
	 * In a window a point opened only a point ends it (fsm_thread_point_done()).
	 */
	if (t) {
		t->blocked_on = 0;
		t->b_fresh = false;
		if (f->release_after && t->max_deadline && !t->retired &&
		    ++t->events_since_b >= f->release_after && !t->point_window)
			retire(f, t, now);
	}

	/* A first: an event that must wait has not executed, so it activates nothing yet. */
	if (na) {
		uint64_t until = 0;
		t->nholders = 0;
		for (k = 0; next_match(m, true, &k, &i);) {
			for (struct thread *a = f->act.head; a; a = a->act_next) {
				if (a == t || a->deadline[i] <= now || waits_for(f, a->id, thread))
					continue;
				t->holders[t->nholders++] = (struct holder){
				    .constraint = i,
				    .activator = a->id,
				    .deadline = a->deadline[i],
				};
				f->c[i].counters.delays++;
				if (a->deadline[i] > until)
					until = a->deadline[i];
			}
		}
		if (t->nholders) {
			memset(t->pending_b, 0, f->nwords * sizeof(uint64_t));
			for (k = 0; next_match(m, false, &k, &i);)
				t->pending_b[i / 64] |= 1ULL << (i % 64);
			t->release_at = until;
			t->stalled = true;
			LIST_PUSH(&f->stalled, t, st_prev, st_next);
			if (ret_until)
				*ret_until = until;
			return FSM_STALL;
		}
	}
	for (k = 0; next_match(m, false, &k, &i);)
		activate(f, t, i, now);
	return FSM_RUN;
}

/* ---- the API ---- */

int
fsm_create(const struct fsm_constraint *c, size_t n, const struct fsm_options *opt,
	   struct fsm **ret_fsm)
{
	struct fsm *f;
	uint64_t delay = opt && opt->delay_ns ? opt->delay_ns : FSM_DEFAULT_DELAY_NS;
	int r = -ENOMEM;

	if (!ret_fsm || (n && !c) || n > UINT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!c[i].before || !c[i].after)
			return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->n = n;
	f->nwords = (n + 63) / 64;
	f->release_after = !opt ? 0
			   : opt->release_after_events ? opt->release_after_events
			   : opt->release_on_next_event ? 1 : 0;
	if (n) {
		f->c = calloc(n, sizeof(*f->c));
		if (!f->c)
			goto leave;
	}
	for (size_t i = 0; i < n; i++) {
		f->c[i].before = strdup(c[i].before);
		f->c[i].after = strdup(c[i].after);
		if (!f->c[i].before || !f->c[i].after)
			goto leave;
		f->c[i].delay_ns = c[i].delay_ns ? c[i].delay_ns : delay;
	}
	*ret_fsm = f;
	f = NULL;
	r = 0;
leave:
	fsm_destroy(f);
	return r;
}

void
fsm_destroy(struct fsm *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->tab_cap; i++) {
		if (f->tab[i]) {
			free(f->tab[i]->holders);
			free(f->tab[i]);
		}
	}
	free(f->tab);
	site_cache_fini(&f->sites);
	for (size_t i = 0; f->c && i < f->n; i++) {
		free(f->c[i].before);
		free(f->c[i].after);
	}
	free(f->c);
	free(f);
}

int
fsm_site_resolve(struct fsm *f, const char *site, const struct fsm_site **ret_site)
{
	if (!site || !ret_site)
		return -EINVAL;
	return site_cache_get(&f->sites, f->c, f->n, site, ret_site);
}

int
fsm_on_event(struct fsm *f, uint32_t thread, const char *site, uint64_t now, uint64_t *ret_until)
{
	/* A site nothing matches (a NULL site: the tracer could not build one). */
	static const struct fsm_site nowhere;
	struct matches m = {.f = f, .s = &nowhere, .str = site};

	/* Without memory for the cache, match live: slower, the same answer. */
	if (site && site_cache_get(&f->sites, f->c, f->n, site, &m.s) < 0)
		m.s = NULL;
	return on_event(f, thread, &m, now, ret_until);
}

int
fsm_on_event_site(struct fsm *f, uint32_t thread, const struct fsm_site *site, uint64_t now,
		  uint64_t *ret_until)
{
	struct matches m = {.f = f, .s = site};

	assert(site);
	return on_event(f, thread, &m, now, ret_until);
}

void
fsm_thread_exited(struct fsm *f, uint32_t thread, uint64_t now)
{
	struct thread *t;

	now = clamp_now(f, now);
	if (thread == 0)
		return;
	drop_all(f, DROP_ACTIVATOR, thread, now);
	/* Whoever waited for it (a join) waits no more. */
	for (size_t i = 0; i < f->tab_cap; i++)
		if (f->tab[i] && f->tab[i]->blocked_on == thread)
			f->tab[i]->blocked_on = 0;
	t = thread_find(f, thread);
	if (!t)
		return;
	if (t->stalled)
		stall_end(f, t);
	act_unlink(f, t);
	tab_remove(f, t);
	free(t->holders);
	free(t);
}

int
fsm_thread_blocked_on(struct fsm *f, uint32_t thread, uint32_t on_thread, uint64_t now)
{
	struct thread *t;

	if (thread == 0 || thread == on_thread)
		return -EINVAL;
	now = clamp_now(f, now);
	if (on_thread == 0) {
		t = thread_find(f, thread);
		if (t)
			t->blocked_on = 0;
		return 0;
	}
	t = thread_get(f, thread);
	if (!t)
		return -ENOMEM;
	t->blocked_on = on_thread;
	drop_all(f, DROP_WAITING, 0, now);
	return 0;
}

bool
fsm_thread_held(struct fsm *f, uint32_t thread, uint64_t held_ns, uint64_t now)
{
	struct thread *t = thread_find(f, thread);
	uint64_t from;

	now = clamp_now(f, now);
	from = held_ns < now ? now - held_ns : 0;
	/* An instance active when the hold began, even one that ran out during it, moves. */
	if (!t || !held_ns || t->retired || t->max_deadline <= from)
		return false;
	for (size_t j = 0; j < f->n; j++)
		if (t->deadline[j] > from)
			t->deadline[j] += held_ns;
	t->max_deadline += held_ns;
	if (!t->activator) { /* pruned from the list when it ran out: active again */
		LIST_PUSH(&f->act, t, act_prev, act_next);
		t->activator = true;
		f->nact++;
	}
	for (struct thread *s = f->stalled.head; s; s = s->st_next) {
		bool moved = false;
		uint64_t until = 0;

		for (size_t k = 0; k < s->nholders; k++) {
			struct holder *h = &s->holders[k];
			if (h->activator == thread && h->deadline > from) {
				h->deadline += held_ns;
				moved = true;
			}
			if (h->deadline > until)
				until = h->deadline;
		}
		if (moved && until > s->release_at)
			s->release_at = until;
	}
	return true;
}

void
fsm_thread_point_done(struct fsm *f, uint32_t thread, uint32_t point, uint64_t now)
{
	struct thread *t = thread_find(f, thread);

	now = clamp_now(f, now);
	if (!t || !f->release_after || t->retired || !t->max_deadline)
		return;
	if (t->b_fresh) { /* B itself: it opens the window */
		t->b_fresh = false;
		t->point_window = true;
		t->window_point = point;
	} else if (t->events_since_b > 0 && !(t->point_window && point == t->window_point)) {
		retire(f, t, now);
	}
}

bool
fsm_thread_unfinished(const struct fsm *f, uint32_t thread)
{
	const struct thread *t = thread_find(f, thread);

	return t && t->max_deadline && !t->retired;
}

bool
fsm_thread_overdue(const struct fsm *f, uint32_t thread, uint64_t now)
{
	const struct thread *t = thread_find(f, thread);

	return t && t->max_deadline && !t->retired && t->max_deadline <= now;
}

uint64_t
fsm_thread_deadline(const struct fsm *f, uint32_t thread)
{
	const struct thread *t = thread_find(f, thread);

	return t && !t->retired ? t->max_deadline : 0;
}

size_t
fsm_due(struct fsm *f, uint64_t now, uint32_t *ret_threads, size_t max)
{
	struct thread *t, *next;
	size_t cnt = 0;

	now = clamp_now(f, now);
	for (t = f->stalled.head; t && cnt < max; t = next) {
		next = t->st_next;
		if (t->release_at > now)
			continue;
		ret_threads[cnt++] = t->id;
		stall_end(f, t);
		/* Its event executes now: apply its B activations. */
		for (size_t w = 0; w < f->nwords; w++)
			for (uint64_t bits = t->pending_b[w]; bits; bits &= bits - 1)
				activate(f, t, (uint32_t)(w * 64 + __builtin_ctzll(bits)), now);
	}
	return cnt;
}

uint64_t
fsm_next_deadline(const struct fsm *f)
{
	uint64_t best = 0;

	for (const struct thread *t = f->stalled.head; t; t = t->st_next)
		if (!best || t->release_at < best)
			best = t->release_at ? t->release_at : 1;
	return best;
}

bool
fsm_active(struct fsm *f, uint64_t now)
{
	clamp_now(f, now);
	act_prune(f);
	return f->nact > 0 || f->stalled.head != NULL;
}

const char *
fsm_constraint_site(const struct fsm *f, size_t i, bool after)
{
	return i < f->n ? (after ? f->c[i].after : f->c[i].before) : NULL;
}

bool
fsm_thread_stalled(const struct fsm *f, uint32_t thread, uint64_t *ret_until)
{
	const struct thread *t = thread_find(f, thread);

	if (!t || !t->stalled)
		return false;
	if (ret_until)
		*ret_until = t->release_at;
	return true;
}

size_t
fsm_constraint_count(const struct fsm *f)
{
	return f->n;
}

void
fsm_constraint_counters(const struct fsm *f, size_t i, struct fsm_counters *ret)
{
	assert(i < f->n);
	*ret = f->c[i].counters;
}
