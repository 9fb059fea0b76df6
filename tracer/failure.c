/*
 * Failures (DESIGN.md, "Failures"): a fatal signal the program does not catch, a non-zero exit
 * (--fail-on-exit), a hang (--hang-timeout: no event and no CPU time for that long), and
 * deadlocks, always: a cycle of threads each blocked in pthread_mutex_lock on a mutex another
 * holds. glibc keeps the owner's tid in the mutex (struct __pthread_mutex_s: __lock, __count,
 * then __owner at offset 8), readable from outside while the program runs.
 *
 * Signals and exits are seen at their stop, before the program dies; hangs and deadlocks are
 * found by failure_tick(), which the loop runs on a periodic timer.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include "breakpoints/unwind.h"
#include "tracer/internal.h"

#define MUTEX_OWNER_OFFSET 8
/* A thread blocked this long in a lock call takes part in the deadlock search. */
#define BLOCKED_NS (200 * 1000000ull)
#define BACKTRACE_MAX 32
#define BACKTRACE_STACK (16 * 1024)

/* The cycle found at the previous tick: a deadlock is reported when seen twice in a row. */
struct deadlock_watch {
	unsigned n;
	pid_t tids[64];
};

bool
failure_is_fatal(struct thread *th, int sig)
{
	char path[64], line[256];
	unsigned long long caught = 0;
	FILE *f;

	switch (sig) {
	case SIGSEGV:
	case SIGABRT:
	case SIGBUS:
	case SIGFPE:
	case SIGILL:
	case SIGSYS:
	case SIGTRAP:
		break;
	default:
		return false;
	}
	/* A signal the program catches is its own business (a handler may recover). */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)th->tid);
	f = fopen(path, "re");
	if (!f)
		return true;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigCgt: %llx", &caught) == 1)
			break;
	fclose(f);
	return !(caught & (1ull << (sig - 1)));
}

/* All the frames of a stopped thread, as a site (symbolized once). */
static const struct site *
backtrace_of(struct tracer *t, struct thread *th, const struct user_regs_struct *regs)
{
	uint64_t pcs[BACKTRACE_MAX];
	void *stack = malloc(BACKTRACE_STACK);
	int len = stack ? bp_stack_copy(th->tid, regs->rsp, stack, BACKTRACE_STACK) : -ENOMEM;
	unsigned n;

	n = capture_pcs(t, th, regs, len > 0 ? stack : NULL, len > 0 ? (size_t)len : 0, pcs,
			BACKTRACE_MAX);
	free(stack);
	return site_of(t, th->proc, pcs, n, false);
}

void
failure_on_signal(struct tracer *t, struct thread *th, int sig,
		  const struct user_regs_struct *regs)
{
	struct report r = {
		.kind = "signal",
		.signal = sig,
		.th = th,
		.proc = th->proc,
	};

	if (th->proc->failed)
		return;
	th->proc->failed = true;
	r.backtrace = backtrace_of(t, th, regs);
	report_failure(t, &r);
}

void
failure_on_exit(struct tracer *t, struct thread *th, int code)
{
	struct user_regs_struct regs;
	struct report r = {
		.kind = "exit",
		.exit_code = code,
		.th = th,
		.proc = th->proc,
	};

	if (th->proc->failed || !t->opt.fail_on_exit || code == 0)
		return;
	th->proc->failed = true;
	if (ptrace(PTRACE_GETREGS, th->tid, 0, &regs) == 0)
		r.backtrace = backtrace_of(t, th, &regs);
	report_failure(t, &r);
}

static bool
is_lock_kind(enum model_event_kind k)
{
	return k == MODEL_EV_MUTEX_LOCK || k == MODEL_EV_MUTEX_TIMEDLOCK;
}

/* The thread @th is blocked on, through the mutex its last event locks, or NULL. */
static struct thread *
waits_for(struct tracer *t, struct thread *th, uint64_t now)
{
	const struct rpb_entry *e = rpb_last(th);
	int32_t owner;

	if (!e || !is_lock_kind(e->kind) || now - e->ns < BLOCKED_NS || !th->proc->as)
		return NULL;
	if (bp_mem_read(bp_aspace_memfd(th->proc->as), e->object + MUTEX_OWNER_OFFSET, &owner,
			sizeof(owner)) < 0 ||
	    owner <= 0 || owner == th->tid)
		return NULL;
	struct thread *o = thread_find(t, owner);
	return o && o->proc == th->proc ? o : NULL;
}

/* Where @holder took @mutex: its latest lock event on it. */
static const struct site *
taken_at(const struct thread *holder, uint64_t mutex)
{
	const struct rpb_ring *r = holder->ring;

	if (!r)
		return NULL;
	for (uint64_t i = r->written; i > 0 && r->written - i < r->cap; i--) {
		const struct rpb_entry *e = &r->e[(i - 1) % r->cap];
		if (e->object == mutex &&
		    (is_lock_kind(e->kind) || e->kind == MODEL_EV_MUTEX_TRYLOCK))
			return e->site;
	}
	return NULL;
}

static void
report_deadlock(struct tracer *t, struct thread **cycle, unsigned n)
{
	struct report_cycle *c = calloc(n, sizeof(*c));
	struct report r = {
		.kind = "deadlock",
		.th = cycle[0],
		.proc = cycle[0]->proc,
		.ncycle = n,
	};

	if (!c)
		return;
	for (unsigned i = 0; i < n; i++) {
		const struct rpb_entry *e = rpb_last(cycle[i]);

		c[i].th = cycle[i];
		c[i].waits_for = e->object;
		c[i].waits_at = e->site;
		c[i].owner = cycle[(i + 1) % n];
		c[i].taken_at = taken_at(c[i].owner, e->object);
	}
	r.cycle = c;
	r.backtrace = rpb_last(cycle[0])->site;
	cycle[0]->proc->failed = true;
	report_failure(t, &r);
	free(c);
}

/* Finds a wait-for cycle among the threads; fills @cycle (in wait order). */
static unsigned
find_cycle(struct tracer *t, uint64_t now, struct thread **cycle, unsigned max)
{
	for (struct thread *start = t->threads; start; start = start->next) {
		struct thread *th = start;
		unsigned n = 0;

		if (!start->proc || !start->proc->record || start->proc->failed)
			continue;
		while (th && n < max) {
			for (unsigned i = 0; i < n; i++) {
				if (cycle[i] != th)
					continue;
				/* A cycle from i on; a tail leading into it is not part of it. */
				memmove(cycle, cycle + i, (n - i) * sizeof(*cycle));
				return n - i;
			}
			cycle[n++] = th;
			th = waits_for(t, th, now);
		}
	}
	return 0;
}

static bool
same_cycle(const struct deadlock_watch *w, struct thread **cycle, unsigned n)
{
	if (w->n != n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		bool found = false;
		for (unsigned j = 0; j < n && !found; j++)
			found = w->tids[j] == cycle[i]->tid;
		if (!found)
			return false;
	}
	return true;
}

static void
check_deadlock(struct tracer *t, uint64_t now)
{
	struct thread *cycle[64];
	unsigned n = find_cycle(t, now, cycle, 64);

	if (!t->watch && !(t->watch = calloc(1, sizeof(*t->watch))))
		return;
	if (n >= 2 && same_cycle(t->watch, cycle, n)) {
		report_deadlock(t, cycle, n);
		t->exit_override = TRACER_EXIT_HANG;
		kill(cycle[0]->proc->pid, SIGKILL);
		n = 0;
	}
	t->watch->n = n;
	for (unsigned i = 0; i < n; i++)
		t->watch->tids[i] = cycle[i]->tid;
}

/* CPU time (utime + stime, clock ticks) of the program's processes. */
static uint64_t
cpu_ticks(struct tracer *t)
{
	uint64_t sum = 0;

	for (struct process *p = t->procs; p; p = p->next) {
		char path[64], buf[1024];
		unsigned long long ut, st;
		FILE *f;

		if (!p->record)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			const char *q = strrchr(buf, ')');
			if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					&ut, &st) == 2)
				sum += ut + st;
		}
		fclose(f);
	}
	return sum;
}

static void
check_hang(struct tracer *t, uint64_t now)
{
	const uint64_t quiet = now - t->last_event_ns;
	uint64_t cpu;

	if (!t->opt.hang_timeout || !t->last_event_ns)
		return;
	if (quiet < 1000000000ull) {
		t->quiet_cpu = 0;
		return;
	}
	cpu = cpu_ticks(t) + 1; /* +1: 0 means "not sampled" */
	if (!t->quiet_cpu) {
		t->quiet_cpu = cpu;
		return;
	}
	/* Busy (a tenth of a CPU since the quiet began) is progress; events are progress. */
	long hz = sysconf(_SC_CLK_TCK);
	if ((cpu - t->quiet_cpu) * 1000000000ull / (uint64_t)hz > quiet / 10) {
		t->quiet_cpu = cpu;
		t->last_event_ns = now;
		return;
	}
	if (quiet < (uint64_t)t->opt.hang_timeout * 1000000000ull)
		return;

	struct thread *th = NULL;
	for (struct thread *o = t->threads; o; o = o->next)
		if (o->proc && o->proc->record && !o->proc->failed &&
		    (!th || o->index < th->index))
			th = o;
	if (!th)
		return;
	struct report r = {
		.kind = "hang",
		.th = th,
		.proc = th->proc,
		.backtrace = rpb_last(th) ? rpb_last(th)->site : NULL,
	};
	th->proc->failed = true;
	report_failure(t, &r);
	t->exit_override = TRACER_EXIT_HANG;
	kill(th->proc->pid, SIGKILL);
}

void
failure_tick(struct tracer *t)
{
	uint64_t now = now_ns();

	check_deadlock(t, now);
	check_hang(t, now);
}

void
failure_fini(struct tracer *t)
{
	free(t->watch);
	t->watch = NULL;
}
