/*
 * fsm/: the policies that decide when a thread may run. Pure: no ptrace, no I/O, no clock reads;
 * the caller passes every fact and the time, so a sequence of calls always gives the same answers
 * (DESIGN.md, "Stalling").
 *
 * The first policy: Aviso's schedule constraints (AVISO.md section 3). A constraint (B, A) says
 * "after B, delay A". When a thread T executes an event whose site matches B, an instance of the
 * constraint is activated, T is its activator, and it stays active until its deadline
 * (activation time + delay). While it is active, any OTHER thread about to execute an event whose
 * site matches A is stalled (the tracer keeps it stopped) until that deadline, so that A does not
 * execute within the delay after B. The decisions taken here (the header is the contract):
 *
 *  - Instances: at most one per (constraint, activator thread); a new B by the same thread
 *    restarts it with a new deadline. An activator never delays itself.
 *  - A before B: when an event's site matches both some A and some B, the A check comes first.
 *    A stalled event has not executed, so it activates nothing yet; its B activations happen
 *    when fsm_due() releases it, at that time, because that is when it executes. Activating at
 *    the stall would let an event that has not happened delay other threads, and with B = A (two
 *    threads at one site, allowed by AVISO.md) two threads would hold each other.
 *  - Several instances: a thread stalled by several instances (several constraints, or several
 *    activators) waits for the latest deadline among those still holding it. The holders and
 *    their deadlines are fixed when the stall begins: a restart of a holding instance during the
 *    stall does not extend it. So every stall is bounded by the largest delay (plus the time the
 *    tracer held the activators, fsm_thread_held()), whatever happens later, and a released event
 *    is never stalled again (it is not resubmitted).
 *  - Cut short: a holder stops holding at once when its activator exits, when its activator waits
 *    for the stalled thread (fsm_thread_blocked_on(), followed through chains: the activator
 *    waits for X which waits for the stalled thread), and, with
 *    fsm_options.release_on_next_event, when its activator reaches its next event after B (then
 *    the instance retires; release_after_events counts further; a window that a point opened
 *    ends at another point, fsm_thread_point_done()). A thread left with no holder is due at
 *    once. An instance whose activator waits for a thread never stalls that thread in the
 *    first place.
 *  - Time is a uint64_t in ns given by the caller, expected non-decreasing: an earlier time than
 *    one already seen is taken as the latest seen. An instance is active while now < deadline:
 *    A at exactly B + delay runs.
 *
 * Threads are the tracer's thread indices (main = 1, never reused in a run); 0 means "none".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The delay served when neither the constraint nor the options give one: 1 ms (AVISO.md). */
#define FSM_DEFAULT_DELAY_NS 1000000ULL

/* One constraint: "after B, delay A". Site patterns use the event's site format (README.md). */
struct fsm_constraint {
	const char *before; /* B: the activating site; copied by fsm_create() */
	const char *after;  /* A: the site to delay; copied by fsm_create() */
	uint64_t delay_ns;  /* 0: fsm_options.delay_ns */
};

struct fsm_options {
	uint64_t delay_ns; /* delay of constraints that give none; 0: FSM_DEFAULT_DELAY_NS */
	/*
	 * Release the threads an instance holds, and retire it, as soon as its activator reaches
	 * its next event after B (the reordering has happened). Beyond the original Aviso; off by
	 * default until measured (AVISO.md section 3).
	 */
	bool release_on_next_event;
	/*
	 * The same, counted: the instances of an activator retire at its Nth event after its
	 * latest B (1: release_on_next_event). 2 releases once the activator's next event has
	 * executed: events are call entries, and a thread released at the activator's next
	 * lock would race it for the lock. 0: release_on_next_event decides.
	 */
	unsigned release_after_events;
};

/* What the tracer does with the thread whose event it submitted. */
enum fsm_action {
	FSM_RUN = 0,   /* resume it now */
	FSM_STALL = 1, /* keep it stopped until fsm_due() names it (at the latest at *ret_until) */
};

/* Per constraint, for reports. */
struct fsm_counters {
	uint64_t activations; /* B executed (restarts included) */
	uint64_t delays;      /* times an instance of it held a stalled thread */
	uint64_t cut_short;   /* of those, released before the instance's deadline */
};

struct fsm;
/* A site string resolved against the loaded constraints (what it activates and what delays it). */
struct fsm_site;

/*
 * Loads @n constraints (@c may be NULL when @n is 0: nothing ever stalls) with @opt (NULL: the
 * defaults). Copies everything it needs: @c and its strings may be freed on return.
 * Returns 0 and *ret_fsm, or -EINVAL (NULL site, @c NULL with @n > 0, @ret_fsm NULL),
 * -ENOMEM; *ret_fsm untouched on failure.
 */
int fsm_create(const struct fsm_constraint *c, size_t n, const struct fsm_options *opt,
	       struct fsm **ret_fsm);

/* Frees @f and every handle it gave out. Accepts NULL. */
void fsm_destroy(struct fsm *f);

/*
 * Whether @site matches @pattern: both split on '<' into frames; the same number of frames; each
 * pair of frames equal, or one of them a wildcard frame ("module+*", a system-library frame),
 * which matches any frame. Symmetric. False when either is NULL.
 */
bool fsm_site_match(const char *pattern, const char *site);

/*
 * Resolves @site against the loaded constraints, once per distinct string: the handle is cached
 * inside @f (a hash table keyed by the string's content), so the tracer can keep it beside its
 * own site record and skip even the hash on later events. Valid until fsm_destroy().
 * Returns 0 and *ret_site, -EINVAL (@site NULL), -ENOMEM (*ret_site untouched).
 */
int fsm_site_resolve(struct fsm *f, const char *site, const struct fsm_site **ret_site);

/* Whether an event at @s can activate or be delayed by a loaded constraint. */
bool fsm_site_relevant(const struct fsm_site *s);
/* Whether an event at @s activates a loaded constraint (it is some B). */
bool fsm_site_activates(const struct fsm_site *s);
/* Whether an event at @s can be delayed by a loaded constraint (it is some A). */
bool fsm_site_delayable(const struct fsm_site *s);

/*
 * Thread @thread is stopped about to execute an event at @site, at time @now. Call it for every
 * event of every thread (an irrelevant site costs one hash lookup): besides the constraint checks,
 * a thread's next event ends its fsm_thread_blocked_on() state and, with release_on_next_event,
 * retires its instances.
 * Returns FSM_RUN (the event executes now; its B activations are applied at @now), FSM_STALL
 * (keep the thread stopped; *ret_until is its deadline; it will be named by fsm_due() at that time
 * or earlier; do not submit the event again: release means it executes), or -errno with nothing
 * recorded for the event (run the thread: failing open never deadlocks): -EINVAL (@thread 0),
 * -EBUSY (@thread is stalled: a stalled thread has no next event), -ENOMEM.
 * *ret_until is written only with FSM_STALL; @ret_until may be NULL.
 * fsm_on_event() takes the string (resolved through the cache; if caching fails for memory, the
 * site is matched without it; NULL matches nothing, but still counts as the thread's next event);
 * fsm_on_event_site() takes a handle from fsm_site_resolve().
 */
int fsm_on_event(struct fsm *f, uint32_t thread, const char *site, uint64_t now,
		 uint64_t *ret_until);
int fsm_on_event_site(struct fsm *f, uint32_t thread, const struct fsm_site *site, uint64_t now,
		      uint64_t *ret_until);

/*
 * Thread @thread exited (or vanished) at @now: its instances retire and the threads they held are
 * released (due at @now if nothing else holds them); threads recorded as blocked on it no longer
 * are; if it was stalled itself, its stall is dropped without being reported by fsm_due().
 * Unknown threads are ignored.
 */
void fsm_thread_exited(struct fsm *f, uint32_t thread, uint64_t now);

/*
 * Thread @thread waits for @on_thread from @now: it joins it, or it waits for a mutex (or write
 * lock) @on_thread holds. Any stall held by an instance whose activator waits, directly or through
 * other waiting threads, for the stalled thread is cut short, and such instances stall no new
 * event of the awaited thread. The state lasts until @thread's next event, its exit, the exit of
 * @on_thread, or a call with @on_thread 0 (no longer waiting).
 * Returns 0, -EINVAL (@thread 0, or @on_thread == @thread), -ENOMEM.
 */
int fsm_thread_blocked_on(struct fsm *f, uint32_t thread, uint32_t on_thread, uint64_t now);

/*
 * The tracer held @thread for @held_ns up to @now (it handled one of the thread's stops: time the
 * program did not run). The instances @thread activated that are active at @now end @held_ns
 * later, and so do the stalls they hold: a delay counts the activator's own running time after
 * B, not the tracer's. Under ptrace every event of an activator (and while an instance is active
 * each one stops) costs from microseconds to milliseconds of the tracer's time; counted in wall
 * time, a 1 ms delay would end while the activator is still short of the end of its window.
 * Ignored for an unknown thread, one without an active instance, or @held_ns 0; returns whether
 * it moved anything.
 */
bool fsm_thread_held(struct fsm *f, uint32_t thread, uint64_t held_ns, uint64_t now);

/*
 * The point @thread was stopped at has executed (the tracer steps a point's statement before it
 * resumes the thread). @point is the caller's identity of the code point: one source line may
 * begin a statement at several addresses, and all of them are the same @point. With
 * release_after_events:
 *  - when the event just submitted for @thread activated instances (this point is B), the
 *    point opens a window that only a point ends: the thread's other events (pthread calls)
 *    no longer count toward release_after. A window between two shared accesses holds what
 *    the program does between them (lost_update's compressor locks and unlocks an output
 *    mutex between its load and its store of the counter);
 *  - otherwise, when it is the thread's first or later event after its latest B and not the
 *    point that opened the window, its instances retire and the stalls they hold end at @now,
 *    as at its release_after-th event: the reordering has happened. Waiting for the next
 *    event instead would release the delayed thread when the activator reaches its B again, at
 *    the start of its next window.
 * Ignored otherwise.
 */
void fsm_thread_point_done(struct fsm *f, uint32_t thread, uint32_t point, uint64_t now);

/*
 * Whether @thread activated instances that have not ended by its own progress (its
 * release_after-th event after B, a point that ends its window, its exit): past their deadline, a hold
 * measured now (fsm_thread_held()) can still move them. The tracer reads such a thread's CPU
 * wait before it takes their deadline as passed.
 */
bool fsm_thread_unfinished(const struct fsm *f, uint32_t thread);
/* The same, with every deadline of @thread passed at @now: only then can a hold measured now
 * change what its instances do (the tracer reads its CPU wait then, not at every event). */
bool fsm_thread_overdue(const struct fsm *f, uint32_t thread, uint64_t now);
/* The latest deadline of @thread's unfinished instances (0: none). */
uint64_t fsm_thread_deadline(const struct fsm *f, uint32_t thread);

/*
 * Collects up to @max stalled threads whose stall has ended by @now (deadline passed, or released
 * early), in the order they were stalled, into @ret_threads, and releases them: their pending
 * events execute now, so their B activations are applied at @now. Threads beyond @max stay due
 * for the next call. Returns how many were written.
 */
size_t fsm_due(struct fsm *f, uint64_t now, uint32_t *ret_threads, size_t max);

/*
 * The earliest time a stalled thread becomes due (arm the loop's timer for it); a time not after
 * the last @now given means "call fsm_due() now". 0 when no thread is stalled.
 */
uint64_t fsm_next_deadline(const struct fsm *f);

/*
 * Whether anything is going on at @now: an instance active (so its activator's events count,
 * and A events may stall) or a thread stalled (so a wait of its holder's must be seen). When
 * not, only events at loaded constraints' sites need a decision.
 */
bool fsm_active(struct fsm *f, uint64_t now);

/* The B (@after false) or A site pattern of constraint @i; NULL when @i is out of range. */
const char *fsm_constraint_site(const struct fsm *f, size_t i, bool after);

/* Whether @thread is stalled; if so, and @ret_until is not NULL, *ret_until is when it is due. */
bool fsm_thread_stalled(const struct fsm *f, uint32_t thread, uint64_t *ret_until);

/* The number of loaded constraints; their index is their position in fsm_create()'s array. */
size_t fsm_constraint_count(const struct fsm *f);

/* Copies the counters of constraint @i (< fsm_constraint_count()) into *ret. */
void fsm_constraint_counters(const struct fsm *f, size_t i, struct fsm_counters *ret);
