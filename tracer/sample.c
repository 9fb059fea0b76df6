/*
 * Correct-run samples and logical ticks (AVISO.md sections 2 and 6.4).
 *
 * A sample: at a time drawn uniformly from [0.1 s, 20 s] after the start, the RPB is snapshot;
 * the snapshot is held 5 s and handed over (tracer_hooks.sample) only if no failure happened
 * meanwhile; a run that ends well within the hold ends it (nothing failed). With --samples N
 * a long-running program gives up to N, the next one drawn the same way after each hold.
 *
 * A tick: every --tick-every N events, or at each hit of a --tick-at code point, one logical
 * unit of work is done: a success for what the run loaded (a server's "run" is a tick). Ticks
 * are counted where they happen and handed over from the loop, never from inside a stop, so a
 * backend's I/O never holds a thread.
 */
#include <errno.h>
#include <stdlib.h>

#include "tracer/internal.h"

#define SAMPLE_MIN_NS 100000000ULL	 /* 0.1 s */
#define SAMPLE_SPAN_NS 19900000000ULL /* up to 20 s */

uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t
sample_draw_delay(uint64_t *state)
{
	return SAMPLE_MIN_NS + splitmix64(state) % (SAMPLE_SPAN_NS + 1);
}

void
sample_start(struct tracer *t)
{
	const struct tracer_hooks *h = t->opt.hooks;

	t->sample_rng = t->opt.sample_seed;
	t->sample_due_ns = 0;
	if (h && h->sample && t->opt.samples)
		t->sample_due_ns = now_ns() + (t->opt.sample_at_ns ? t->opt.sample_at_ns
								 : sample_draw_delay(&t->sample_rng));
}

static void
drop_held(struct tracer *t)
{
	free(t->sample_held);
	t->sample_held = NULL;
	t->sample_held_n = 0;
}

/* Hands the held snapshot over as a sample. */
static void
send_held(struct tracer *t)
{
	struct model_event *ev = calloc(t->sample_held_n ? t->sample_held_n : 1, sizeof(*ev));

	if (ev) {
		for (size_t i = 0; i < t->sample_held_n; i++)
			ev[i] = rpb_event(&t->sample_held[i]);
		t->opt.hooks->sample(t->opt.hooks->ctx, ev, t->sample_held_n);
		t->samples_sent++;
	}
	free(ev);
	drop_held(t);
}

/* Hands over the ticks counted since the last time. */
static void
hand_ticks(struct tracer *t)
{
	const struct tracer_hooks *h = t->opt.hooks;

	if (h && h->tick)
		for (; t->ticks_pending; t->ticks_pending--)
			h->tick(h->ctx);
}

void
sample_check(struct tracer *t)
{
	const struct tracer_hooks *h = t->opt.hooks;
	uint64_t now = now_ns();

	hand_ticks(t);
	if (!h || !h->sample)
		return;
	if (t->failures) { /* a failure happened meanwhile: no sample any more */
		drop_held(t);
		t->sample_due_ns = 0;
		return;
	}
	if (t->sample_held && now >= t->sample_held_ns + t->opt.sample_hold_ns) {
		send_held(t);
		if (t->samples_sent < t->opt.samples)
			t->sample_due_ns = now + sample_draw_delay(&t->sample_rng);
	}
	if (!t->sample_held && t->sample_due_ns && now >= t->sample_due_ns) {
		t->sample_due_ns = 0;
		if (rpb_merge(t, &t->sample_held, &t->sample_held_n) == 0)
			t->sample_held_ns = now;
		else
			t->sample_held = NULL;
	}
}

void
sample_finish(struct tracer *t)
{
	const struct tracer_hooks *h = t->opt.hooks;

	hand_ticks(t);
	/* The run ended within the hold: nothing failed meanwhile if nothing failed at all. */
	if (t->sample_held && !t->failures && h && h->sample)
		send_held(t);
	drop_held(t);
}

void
sample_count_event(struct tracer *t)
{
	if (t->opt.tick_every && ++t->events_since_tick >= t->opt.tick_every) {
		t->events_since_tick = 0;
		t->ticks_pending++;
	}
}

unsigned
tracer_samples_sent(const struct tracer *t)
{
	return t->samples_sent;
}
