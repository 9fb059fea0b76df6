/*
 * Stalling threads for schedule constraints (AVISO.md section 3, DESIGN.md "Stalling"). The
 * decisions are fsm/'s; this file applies them: a thread whose event fsm stalls is simply not
 * resumed from its stop, and is resumed when fsm says it is due. The facts fsm needs to cut a
 * stall short (an activator exiting, joining the stalled thread, or waiting for a mutex it
 * holds) are read here from the program: the tid glibc keeps in a struct pthread and in a
 * mutex's __owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm.h"
#include "tracer/internal.h"

/* glibc 2.36, x86_64: offsetof(struct pthread, tid) (the %fs:0x2d0 its own code reads), and
 * offsetof(struct __pthread_mutex_s, __owner). */
#define PTHREAD_TID_OFFSET 0x2d0
#define MUTEX_OWNER_OFFSET 8

int
tracer_load_constraint_set(struct tracer *t, const struct fsm_constraint *c, size_t n,
			   uint64_t delay_ns)
{
	struct fsm_options opt = {
		.delay_ns = delay_ns,
		.release_after_events = t->opt.release_after < 0 ? TRACER_DEFAULT_RELEASE
								 : (unsigned)t->opt.release_after,
	};
	int r;

	stall_fini(t);
	r = n ? fsm_create(c, n, &opt, &t->fsm) : 0;
	stall_refresh_decisions(t);
	return r;
}

int
tracer_load_constraints(struct tracer *t, const char *path, uint64_t delay_ns)
{
	return stall_load(t, path, delay_ns);
}

int
stall_load(struct tracer *t, const char *path, uint64_t delay_ns)
{
	struct fsm_constraint *c = NULL;
	char line[8192];
	size_t n = 0, cap = 0;
	int lineno = 0, r = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char b[4096], a[4096];
		unsigned long long us = 0;
		int got;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		got = sscanf(line, "%4095s %4095s %llu", b, a, &us);
		if (got < 2) {
			log_msg("%s:%d: expected \"B-site A-site [delay-us]\"", path, lineno);
			r = -EINVAL;
			break;
		}
		if (n == cap) {
			struct fsm_constraint *g = realloc(c, (cap = cap ? 2 * cap : 8) * sizeof(*c));
			if (!g) {
				r = -ENOMEM;
				break;
			}
			c = g;
		}
		c[n].before = strdup(b);
		c[n].after = strdup(a);
		c[n].delay_ns = (uint64_t)us * 1000;
		n++;
		if (!c[n - 1].before || !c[n - 1].after) {
			r = -ENOMEM;
			break;
		}
	}
	fclose(f);
	if (r == 0 && n == 0) {
		log_msg("%s: no constraint", path);
		r = -EINVAL;
	}
	if (r == 0)
		r = tracer_load_constraint_set(t, c, n, delay_ns);
	for (size_t i = 0; i < n; i++) {
		free((char *)c[i].before);
		free((char *)c[i].after);
	}
	free(c);
	return r;
}

static struct thread *
thread_of_tid(struct tracer *t, struct process *p, pid_t tid)
{
	struct thread *th = tid > 0 ? thread_find(t, tid) : NULL;

	return th && th->proc == p ? th : NULL;
}

/* What the thread now waits for, told to fsm: the thread it joins, or a mutex's owner. */
static void
note_wait(struct tracer *t, struct thread *th, enum model_event_kind kind, uint64_t object)
{
	struct process *p = th->proc;
	struct thread *on = NULL;
	int32_t tid;

	if (kind == MODEL_EV_THREAD_JOIN) {
		if (bp_mem_read(bp_aspace_memfd(p->as), object + PTHREAD_TID_OFFSET, &tid,
				sizeof(tid)) == 0)
			on = thread_of_tid(t, p, tid);
	} else if (kind == MODEL_EV_MUTEX_LOCK || kind == MODEL_EV_MUTEX_TIMEDLOCK) {
		if (bp_mem_read(bp_aspace_memfd(p->as), object + MUTEX_OWNER_OFFSET, &tid,
				sizeof(tid)) == 0 &&
		    tid != th->tid)
			on = thread_of_tid(t, p, tid);
	}
	if (on && on->index && on != th)
		fsm_thread_blocked_on(t->fsm, th->index, on->index, now_ns());
}

bool
stall_acquires(enum model_event_kind kind)
{
	switch (kind) {
	case MODEL_EV_MUTEX_LOCK:
	case MODEL_EV_MUTEX_TIMEDLOCK:
	case MODEL_EV_RWLOCK_RDLOCK:
	case MODEL_EV_RWLOCK_WRLOCK:
	case MODEL_EV_SPIN_LOCK:
	case MODEL_EV_SEM_WAIT:
	case MODEL_EV_SEM_TIMEDWAIT:
		return true;
	default:
		return false;
	}
}

/*
 * @activator has just executed a B. A thread that entered an acquisition at an A site before
 * it, and has had no event since, may still be waiting inside for the lock the activator is
 * about to release (events are call entries): its A has not happened yet, and letting it
 * acquire now is the very order the constraint forbids. Such a thread is submitted again; if
 * fsm stalls it, it is interrupted (a thread blocked in futex_wait stops at once, and its
 * syscall restarts when it is resumed) and held from its interrupt stop on. One delay per
 * event, as for any A.
 */
static void
hold_threads_in_a(struct tracer *t, struct thread *activator)
{
	for (struct thread *x = t->threads; x; x = x->next) {
		uint64_t until;

		if (x == activator || !x->in_a || !x->index || x->stalled || x->proc != activator->proc)
			continue;
		if (fsm_on_event(t->fsm, x->index, x->in_a->str, now_ns(), &until) != FSM_STALL)
			continue;
		/* Held again after release only if it may block inside (an acquisition). */
		x->stalled_in = !x->a_pending || stall_acquires(x->ring_kind) ? x->in_a : NULL;
		x->in_a = NULL;
		x->stalled = true;
		t->nstalled++;
		if (x->state == TS_HELD || x->a_pending)
			continue; /* stopped, or stopping at its event: simply not resumed */
		if (ptrace(PTRACE_INTERRUPT, x->tid, 0, 0) == 0)
			x->stall_at_stop = true;
		else /* gone: its exit will tell fsm */
			x->stalled = false, t->nstalled--;
	}
}

/*
 * The time thread @tid has spent runnable but waiting for a CPU (the second field of
 * /proc/TID/schedstat, in ns); 0 when it cannot be read.
 */
static uint64_t
run_delay(pid_t tid)
{
	char path[64], buf[128];
	unsigned long long run = 0, wait = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (uint64_t)wait : 0;
}

/*
 * The time each activator waited for a CPU since its B (or the last check) is not its own
 * progress either: it moves its instances' deadlines (fsm_thread_held()). On a loaded machine a
 * 1 ms delay otherwise ends while a preempted activator is still inside its window. Checked
 * when it matters: before an event at some A is decided, and when a stall's deadline comes.
 */
static void
account_run_delay(struct tracer *t, struct thread *x, uint64_t now)
{
	uint64_t d = run_delay(x->tid);

	if (d > x->run_delay) {
		/* A wait the grace already covered moves nothing again. */
		uint64_t w = d - x->run_delay,
			 covered = w < x->grace_unmatched ? w : x->grace_unmatched;
		x->grace_unmatched -= covered;
		if (w > covered)
			fsm_thread_held(t->fsm, x->index, w - covered, now);
	}
	x->run_delay = d;
	x->run_delay_at = now;
}

/* Whether thread @tid is runnable ('R' in /proc/TID/stat: running, or waiting for a CPU). */
static bool
runnable(pid_t tid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')'); /* the name may hold anything */
	return paren && paren[1] == ' ' && paren[2] == 'R';
}

/*
 * An activator whose instances run out while it is runnable may be waiting for a CPU at that
 * very moment, and a wait in progress shows in /proc/TID/schedstat only once the thread runs
 * again: too late for this deadline (atom_ptr, double_free: a 100 us sleep that ended 3 ms
 * later, most of it in the run queue, and the thread held at A let go inside the window).
 * Its instances then end STALL_GRACE_NS later, again while it stays runnable, until it has had
 * STALL_GRACE_MAX_NS since its latest B; the CPU wait read later makes up only what the grace
 * did not cover. 'R' is also a thread running on a CPU: for one that computes past its
 * deadline without an event, the delay lasts up to STALL_GRACE_MAX_NS longer, and still ends.
 */
#define STALL_GRACE_NS 250000ULL
#define STALL_GRACE_MAX_NS 2000000ULL

static void
account_overdue(struct tracer *t, struct thread *x, uint64_t now)
{
	account_run_delay(t, x, now);
	uint64_t deadline = fsm_thread_deadline(t->fsm, x->index);
	if (x->grace_total >= STALL_GRACE_MAX_NS || !deadline || deadline > now ||
	    !runnable(x->tid))
		return;
	/* From its deadline on (the loop may wake late): it then ends STALL_GRACE_NS from now. */
	uint64_t grace = now - deadline + STALL_GRACE_NS;
	if (!fsm_thread_held(t->fsm, x->index, grace, now))
		return;
	x->grace_total += grace;
	x->grace_unmatched += grace;
	t->graces++;
	t->grace_ns += grace;
}

/* account_overdue() for each activator whose instances look over at @now: at a deadline, and
 * before trap-all goes off. */
static void
account_overdue_all(struct tracer *t, uint64_t now)
{
	for (struct thread *x = t->threads; x; x = x->next)
		if (x->timed && x->index && fsm_thread_overdue(t->fsm, x->index, now))
			account_overdue(t, x, now);
}

static void
account_run_delays(struct tracer *t, const struct thread *deciding)
{
	uint64_t now = now_ns();

	for (struct thread *x = t->threads; x; x = x->next) {
		/* Its own instances never delay the deciding thread; a read of 100 us ago will do
		 * (one costs a few microseconds: not at every event of a busy A site). */
		if (!x->timed || !x->index || x == deciding || now - x->run_delay_at < 100000)
			continue;
		account_overdue(t, x, now);
	}
}

/*
 * The time the tracer has held each thread so far at its current stop (one reported, or one
 * whose slot the ring shows it stopped after) moves its instances' deadlines now, before an A
 * is decided: counted only at its resume, it came too late for an A decided while it was still
 * held. order_init: the main thread's B stop took 9 ms (the drain of 49 events, the unwinder's
 * first look at libc), the client's A, 41 us after B, was decided during it, its instance
 * already over, and the client used the configuration before main published it.
 */
static void
credit_tracer_holds(struct tracer *t, const struct thread *deciding, uint64_t now)
{
	for (struct thread *x = t->threads; x; x = x->next) {
		uint64_t from = x->stop_ns ? x->stop_ns : x->trap_ns;

		if (x == deciding || !x->index || x->stalled || !from || from >= now)
			continue;
		fsm_thread_held(t->fsm, x->index, now - from, now);
		if (x->stop_ns)
			x->stop_ns = now;
		if (x->trap_ns)
			x->trap_ns = now;
	}
}

bool
stall_on_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
	       const struct site *site, uint64_t object)
{
	const struct fsm_site *fs = NULL;
	uint64_t until;
	int r;

	if (!t->fsm || !site || !th->index)
		return false;
	if (th->stalled) {
		/* Interrupted to be held, it reached an event first: held here instead (its
		 * interrupt stop, still to come, then finds nothing to do). */
		th->stall_at_stop = false;
		return true;
	}
	th->in_a = NULL;
	if (fsm_site_resolve(t->fsm, site->str, &fs) < 0)
		fs = NULL;
	/* Decided as of the stop's arrival: the time spent on it since (a drain, new sites to
	 * symbolize) is the tracer's, and must not end a delay the event came within. */
	uint64_t at = th->stop_ns ? th->stop_ns : th->ring_ns ? th->ring_ns : now_ns();
	if (fs && fsm_site_delayable(fs)) {
		credit_tracer_holds(t, th, now_ns());
		account_run_delays(t, th);
	}
	/* An activator whose instances look over at its own event: its CPU wait since B, if any,
	 * first moves their deadline (still active, they keep every event stopping). */
	if (th->timed && at > th->run_delay_at && at - th->run_delay_at >= 100000 &&
	    fsm_thread_overdue(t->fsm, th->index, at))
		account_run_delay(t, th, at);
	r = fs ? fsm_on_event_site(t->fsm, th->index, fs, at, &until)
	       : fsm_on_event(t->fsm, th->index, site->str, at, &until);
	if (r == FSM_STALL) {
		th->stalled = true;
		th->stalled_in = stall_acquires(kind) ? site : NULL;
		t->nstalled++;
		stall_update_trap(t);
		return true;
	}
	note_wait(t, th, kind, object);
	if (fs && fsm_site_delayable(fs) && stall_acquires(kind))
		th->in_a = site;
	if (fs && fsm_site_activates(fs)) {
		/* The CPU wait so far, read at most once a millisecond (a read of schedstat costs
		 * a few microseconds, and a B in a tight loop activates every time): the wait of
		 * the last millisecond before B may then count too. */
		uint64_t now = now_ns();
		if (!th->timed || now - th->run_delay_at > 1000000) {
			th->run_delay = run_delay(th->tid);
			th->run_delay_at = now;
		}
		th->timed = true;
		th->grace_total = 0;
		hold_threads_in_a(t, th);
	}
	stall_update_trap(t);
	return false;
}

void
stall_on_ring_event(struct tracer *t, struct thread *th)
{
	const struct fsm_site *fs;

	if (!t->fsm || !th->index || !th->ring_site || !stall_acquires(th->ring_kind) ||
	    fsm_site_resolve(t->fsm, th->ring_site->str, &fs) < 0 || !fs ||
	    !fsm_site_delayable(fs))
		return;
	/* It may still be blocked inside: held there if a B comes first (hold_threads_in_a()). */
	th->in_a = th->ring_site;
}

void
stall_decide_earlier(struct tracer *t, struct thread *th)
{
	if (!t->fsm)
		return;
	for (struct thread *x = t->threads; x; x = x->next) {
		const struct fsm_site *fs;

		if (x == th || !x->ring_fresh || x->ring_seq >= th->ring_seq || x->proc != th->proc ||
		    x->stop_ns || x->stalled || !x->ring_site ||
		    fsm_site_resolve(t->fsm, x->ring_site->str, &fs) < 0 || !fsm_site_relevant(fs))
			continue;
		/* Decided now, as of its slot's time; its stop, when it comes, finds it done. Let
		 * go at an A, it still has not run it: a B that comes first holds it there. */
		x->ring_fresh = false;
		t->ring_stops++;
		if (!stall_on_event(t, x, x->ring_kind, x->ring_site, x->ring_object) &&
		    fsm_site_delayable(fs)) {
			x->a_pending = true;
			x->in_a = x->ring_site;
		}
	}
}

bool
stall_point_must_run(struct tracer *t, struct thread *th, const struct site *site)
{
	const struct fsm_site *fs;

	if (!t->fsm || !th->index)
		return false;
	if (fsm_thread_unfinished(t->fsm, th->index))
		return true;
	return fsm_site_resolve(t->fsm, site->str, &fs) == 0 && fs && fsm_site_delayable(fs);
}

bool
stall_at_interrupt(struct tracer *t, struct thread *th)
{
	if (!th->stall_at_stop)
		return false;
	th->stall_at_stop = false;
	return th->stalled && t->fsm;
}

void
stall_thread_gone(struct tracer *t, struct thread *th)
{
	ring_ack_thread(t, th); /* gone before its stop */
	if (!t->fsm || !th->index)
		return;
	fsm_thread_exited(t->fsm, th->index, now_ns());
	th->in_a = NULL;
	th->stalled_in = NULL;
	th->a_pending = false;
	th->stall_at_stop = false;
	if (th->stalled) {
		th->stalled = false;
		t->nstalled--;
	}
}

bool
stall_due(const struct tracer *t)
{
	uint64_t next = t->fsm && t->nstalled ? fsm_next_deadline(t->fsm) : 0;

	return next && next <= now_ns();
}

void
stall_release_due(struct tracer *t)
{
	uint32_t due[64];
	size_t n;

	if (!t->fsm)
		return;
	if (stall_due(t))
		account_overdue_all(t, now_ns());
	do {
		struct thread *go[64];
		size_t ngo = 0;

		n = fsm_due(t->fsm, now_ns(), due, 64);
		for (size_t i = 0; i < n; i++) {
			for (struct thread *th = t->threads; th; th = th->next) {
				if (th->index != due[i] || !th->stalled)
					continue;
				th->stalled = false;
				t->nstalled--;
				th->stop_ns = 0; /* held for the program's sake, not the tracer's */
				th->trap_ns = 0;
				/* Released into an acquisition at A, it may block there behind the
				 * activator, which may run B again meanwhile: held again then. */
				th->in_a = th->stalled_in;
				th->stalled_in = NULL;
				if (!th->stall_at_stop && ngo < 64) /* else resumed at its interrupt stop */
					go[ngo++] = th;
			}
		}
		/* Trap-all off first, if nothing is active any more: else a released thread's next
		 * event would stop for a decision that can only be "go". */
		stall_update_trap(t);
		for (size_t i = 0; i < ngo; i++)
			thread_resume(t, go[i], 0);
	} while (n == 64);
}

uint64_t
stall_next_deadline(const struct tracer *t)
{
	return t->fsm ? fsm_next_deadline(t->fsm) : 0;
}

/* Frame 0 of a site pattern, "prog+0x12d7<...": its module's name and offset. False for a
 * wildcard frame or a bare address (nothing to name in a table of return addresses). */
static bool
frame0(const char *site, char *mod, size_t size, uint64_t *ret_off)
{
	const char *plus = strstr(site, "+0x"), *lt = strchr(site, '<');
	char *end;

	if (!plus || (lt && lt < plus) || (size_t)(plus - site) >= size)
		return false;
	memcpy(mod, site, (size_t)(plus - site));
	mod[plus - site] = '\0';
	*ret_off = strtoull(plus + 3, &end, 16);
	return end != plus + 3 && (*end == '\0' || *end == '<');
}

/* Adds @addr to @v (n of them, at most BP_RING_MAX_DECIDE); false when full. */
static bool
add_unique(uint64_t *v, size_t *n, uint64_t addr)
{
	for (size_t i = 0; i < *n; i++)
		if (v[i] == addr)
			return true;
	if (*n == BP_RING_MAX_DECIDE)
		return false;
	v[(*n)++] = addr;
	return true;
}

void
stall_refresh_decisions(struct tracer *t)
{
	uint64_t addrs[BP_RING_MAX_DECIDE];
	size_t n = 0;
	bool all = false;

	if (!t->fsm) {
		ring_set_decision_sites(t, NULL, 0);
		t->decide_all = false;
		return;
	}
	/* The return address of each B site's frame 0, in every traced image (an A needs none:
	 * ring_set_decision_sites()). */
	for (size_t i = 0; i < fsm_constraint_count(t->fsm) && !all; i++) {
		const char *site = fsm_constraint_site(t->fsm, i, false);
		char mod[256];
		uint64_t off;

		if (!frame0(site, mod, sizeof(mod), &off)) {
			all = true;
			break;
		}
		for (struct process *p = t->procs; p && !all; p = p->next)
			for (const struct bp_module *m = p->as ? bp_aspace_modules(p->as) : NULL; m;
			     m = m->next)
				if (strcmp(m->name, mod) == 0 && !add_unique(addrs, &n, m->base + off))
					all = true;
	}
	t->decide_all = all || ring_set_decision_sites(t, addrs, n) < 0;
	stall_update_trap(t);
}

/*
 * Every event stops while an instance is active (trap-all), so that its activator's progress is
 * seen at once (release_after) and every A is decided. Before trap-all goes off, the CPU wait of
 * each activator not done yet is read: it may move a deadline that looks passed. Off too soon,
 * the activator's next events would go by in the ring unseen, and a later read of that wait
 * would revive its instance after the activator had in fact left its window: the thread
 * delayed at A would then be let go by a later event, in the activator's next window.
 */
void
stall_update_trap(struct tracer *t)
{
	bool on = t->fsm && (t->decide_all || fsm_active(t->fsm, now_ns()));

	if (!on && t->fsm && t->ring_trap_all) {
		account_overdue_all(t, now_ns());
		on = fsm_active(t->fsm, now_ns());
	}

	if (on != t->ring_trap_all)
		ring_trap_all(t, on);
}

void
stall_fini(struct tracer *t)
{
	fsm_destroy(t->fsm);
	t->fsm = NULL;
}
