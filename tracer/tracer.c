/*
 * The tracer object: thread and process records, and the run loop
 * (while (next stop) dispatch it), in the shape of strace's main loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>

#include "breakpoints/unwind.h"
#include "tracer/internal.h"

#define TICK_US 500000

int
tracer_create(const struct tracer_options *opt, struct tracer **ret_tracer)
{
	struct tracer *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->opt = *opt;
	t->frames = opt->frames ? opt->frames : TRACER_DEFAULT_FRAMES;
	if (t->frames > TRACER_MAX_FRAMES)
		t->frames = TRACER_MAX_FRAMES;
	t->rpb_size = opt->rpb_size ? opt->rpb_size : TRACER_DEFAULT_RPB;
	t->exit_override = -1;
	t->pads = !opt->no_pads;
	t->point_found = calloc(opt->npoints ? opt->npoints : 1, sizeof(*t->point_found));
	t->tick_found = calloc(opt->ntick_at ? opt->ntick_at : 1, sizeof(*t->tick_found));
	t->line_size = 8192;
	t->line = malloc(t->line_size);
	if (!t->line || !t->point_found || !t->tick_found) {
		free(t->line);
		free(t->point_found);
		free(t->tick_found);
		free(t);
		return -ENOMEM;
	}
	if (t->pads && !opt->no_ring) {
		int r = ring_create(t);
		if (r < 0)
			log_msg("cannot create the event ring (%s): every event stops", strerror(-r));
	}
	*ret_tracer = t;
	return 0;
}

void
tracer_destroy(struct tracer *t)
{
	if (!t)
		return;
	while (t->threads)
		thread_remove(t, t->threads);
	while (t->procs)
		process_remove(t, t->procs);
	rpb_free_all(t);
	failure_fini(t);
	stall_fini(t);
	site_table_clear(t->site_hash);
	ring_destroy(t);
	free(t->line);
	free(t->point_found);
	free(t->tick_found);
	free(t->sample_held);
	free(t->failure_rpb);
	free(t->outcome_rpb);
	free(t);
}

/* Fills t->outcome_rpb from @v (n entries) as model events. */
static int
to_model_events(struct tracer *t, const struct rpb_entry *v, size_t n)
{
	free(t->outcome_rpb);
	t->outcome_rpb = calloc(n ? n : 1, sizeof(*t->outcome_rpb));
	t->outcome_rpb_n = 0;
	if (!t->outcome_rpb)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		t->outcome_rpb[i] = rpb_event(&v[i]);
	t->outcome_rpb_n = n;
	return 0;
}

int
tracer_outcome(struct tracer *t, bool *ret_failed, const struct model_event **ret_rpb,
	       size_t *ret_n)
{
	int r = 0;

	if (t->failures) {
		r = to_model_events(t, t->failure_rpb, t->failure_rpb_n);
	} else {
		/* No failure: the RPB as the run ended (every thread's ring, exited ones too). */
		struct rpb_entry *v;
		size_t n;

		r = rpb_merge(t, &v, &n);
		if (r == 0) {
			r = to_model_events(t, v, n);
			free(v);
		}
	}
	*ret_failed = t->failures > 0; /* known even when the RPB is not */
	if (r < 0)
		return r;
	*ret_rpb = t->outcome_rpb;
	*ret_n = t->outcome_rpb_n;
	return 0;
}

static size_t
thash(pid_t tid)
{
	return (size_t)tid & (THREAD_BUCKETS - 1);
}

struct thread *
thread_find(struct tracer *t, pid_t tid)
{
	for (struct thread *th = t->thash[thash(tid)]; th; th = th->hnext)
		if (th->tid == tid)
			return th;
	return NULL;
}

static void
thash_unlink(struct tracer *t, struct thread *th)
{
	for (struct thread **pp = &t->thash[thash(th->tid)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == th) {
			*pp = th->hnext;
			return;
		}
	}
}

static void
thash_link(struct tracer *t, struct thread *th)
{
	th->hnext = t->thash[thash(th->tid)];
	t->thash[thash(th->tid)] = th;
}

struct thread *
thread_add(struct tracer *t, pid_t tid, struct process *proc)
{
	struct thread *th = calloc(1, sizeof(*th));

	if (!th)
		return NULL;
	th->tid = tid;
	th->proc = proc;
	th->state = TS_RUNNING;
	thash_link(t, th);
	th->next = t->threads;
	if (t->threads)
		t->threads->pprev = &th->next;
	th->pprev = &t->threads;
	t->threads = th;
	t->nthreads++;
	if (proc)
		proc->nthreads++;
	return th;
}

void
thread_remove(struct tracer *t, struct thread *th)
{
	stall_thread_gone(t, th);
	rpb_retire(t, th);
	thash_unlink(t, th);
	*th->pprev = th->next;
	if (th->next)
		th->next->pprev = th->pprev;
	if (th->proc)
		th->proc->nthreads--;
	t->nthreads--;
	if (t->wake_tid == th->tid)
		t->wake_tid = t->threads ? t->threads->tid : 0;
	free(th);
}

void
thread_rename(struct tracer *t, struct thread *th, pid_t tid)
{
	thash_unlink(t, th);
	th->tid = tid;
	thash_link(t, th);
}

struct process *
process_add(struct tracer *t, pid_t pid, struct bp_aspace *as)
{
	struct process *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pid = pid;
	p->as = as;
	p->next = t->procs;
	t->procs = p;
	return p;
}

static void
clear_sites(struct process *p)
{
	for (size_t i = 0; i < SITE_BUCKETS; i++) {
		while (p->sites[i]) {
			struct site_ref *r = p->sites[i];
			p->sites[i] = r->next;
			free(r);
		}
	}
}

void
process_reset_image(struct process *p)
{
	clear_sites(p);
	bp_symbolizer_destroy(p->sym);
	p->sym = NULL;
	bp_unwinder_destroy(p->unw);
	p->unw = NULL;
	p->sym_stale = false;
	p->unw_stale = false;
	bp_aspace_unref(p->as);
	p->as = NULL;
}

void
process_remove(struct tracer *t, struct process *p)
{
	for (struct process **pp = &t->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (struct thread *th = t->threads; th; th = th->next)
		if (th->proc == p)
			th->proc = NULL;
	process_reset_image(p);
	free(p);
}

/*
 * Resumes a stopped thread, delivering @sig (or the signal it held). A thread that vanished
 * meanwhile (ESRCH) is not an error: its exit will be reported.
 */
int
thread_resume(struct tracer *t, struct thread *th, int sig)
{
	if (!sig) {
		sig = th->pending_sig;
	}
	th->pending_sig = 0;
	th->state = TS_RUNNING;
	th->trap_ns = 0;
	if (th->stop_ns) {
		/* The tracer's time, not the program's: an activator's delay counts without it. */
		uint64_t now = now_ns();
		if (t->fsm && th->index)
			fsm_thread_held(t->fsm, th->index, now - th->stop_ns, now);
		th->stop_ns = 0;
	}
	if (ptrace(PTRACE_CONT, th->tid, 0, (long)sig) < 0 && errno != ESRCH)
		return -errno;
	return 0;
}

int
state_dir(const char *base, const char *sub, char *buf, size_t size)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (base)
		snprintf(buf, size, "%s%s%s", base, sub ? "/" : "", sub ? sub : "");
	else if (state && *state)
		snprintf(buf, size, "%s/aviso%s%s", state, sub ? "/" : "", sub ? sub : "");
	else
		snprintf(buf, size, "%s/.local/state/aviso%s%s", home && *home ? home : "/tmp",
			 sub ? "/" : "", sub ? sub : "");
	for (char *p = buf + 1; *p; p++) { /* mkdir -p */
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
		*p = '/';
		if (r < 0)
			return r;
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

pid_t
tracer_main_pid(const struct tracer *t)
{
	return t->main_pid;
}

void
tracer_request_detach(struct tracer *t)
{
	int saved = errno;
	pid_t tid = t->wake_tid;

	t->detach_requested = 1;
	/* Ends a waitpid() that would otherwise wait for the program's next event. */
	if (tid > 0)
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
	errno = saved;
}

/* The periodic checks (deadlocks, hangs) run from the loop when this has ticked. */
static struct tracer *ticking;

static void
on_tick(int sig)
{
	int saved = errno;

	(void)sig;
	if (ticking) {
		ticking->tick = 1;
		/* Ends a waitpid() that would wait for the program's next event: a stop. */
		if (ticking->wake_tid > 0)
			ptrace(PTRACE_INTERRUPT, ticking->wake_tid, 0, 0);
	}
	errno = saved;
}

/*
 * A timer that wakes the loop twice a second. SA_RESTART keeps every other syscall (writes to a
 * pipe, waits in syscall injection) from failing with EINTR; the interrupt stop wakes waitpid.
 */
static void
start_ticks(struct tracer *t)
{
	struct sigaction sa = {.sa_handler = on_tick, .sa_flags = SA_RESTART};
	struct itimerval every = {{0, TICK_US}, {0, TICK_US}};

	ticking = t;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
}

static void
stop_ticks(void)
{
	struct itimerval off = {{0, 0}, {0, 0}};

	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_DFL);
	ticking = NULL;
}

/*
 * While constraints are loaded, the ring is drained at least this often, stops or not: each
 * event's site (unwinding its stack copy, a first look at a module's unwind tables) is then
 * worked out while the program runs. Left to the next stop, that work fell on a B's stop, in
 * the middle of its activator's window: order_init's main thread was held 4 to 9 ms at its B
 * while 50 events of the client were drained, the first ones through a cold unwinder.
 */
#define RING_DRAIN_NS 1000000ull

/*
 * While threads are stalled, the loop must also wake at their deadlines: it polls for stops and
 * waits for SIGCHLD (blocked, so none is lost) or the next deadline, whichever comes first;
 * while constraints are loaded, at the next drain (RING_DRAIN_NS) too. Otherwise it blocks in
 * waitpid(), the cheapest wait.
 */
static int
wait_stop_or_deadline(struct tracer *t, int *status)
{
	pid_t tid = waitpid(-1, status, __WALL | WNOHANG);
	uint64_t deadline = stall_next_deadline(t), now = now_ns();
	bool drain = false;
	sigset_t chld;

	if (tid != 0)
		return tid;
	if (t->fsm && t->ring && (!deadline || deadline > now + RING_DRAIN_NS)) {
		deadline = now + RING_DRAIN_NS;
		drain = true;
	}
	if (!deadline)
		return waitpid(-1, status, __WALL); /* nothing to wake for */
	if (deadline <= now)
		return tid;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	struct timespec ts = {(time_t)((deadline - now) / 1000000000u),
			      (long)((deadline - now) % 1000000000u)};
	if (sigtimedwait(&chld, NULL, &ts) < 0 && errno == EAGAIN && drain)
		t->ring_busy = true; /* the loop drains while no thread is stalled */
	return 0;
}

int
tracer_run(struct tracer *t, int *ret_status)
{
	sigset_t chld, old;
	int r = 0;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	sample_start(t);
	start_ticks(t);
	for (;;) {
		int status;
		pid_t tid;

		if (t->detach_requested && t->attached) {
			r = detach_all(t);
			stop_ticks();
			sigprocmask(SIG_SETMASK, &old, NULL);
			*ret_status = -1;
			return r;
		}
		if (t->tick) {
			t->tick = 0;
			ring_drain(t); /* events of threads that have not stopped since */
			failure_tick(t);
			sample_check(t);
		} else if (t->ticks_pending) {
			sample_check(t);
		}
		if (stall_due(t) && t->release_deferred < 64) {
			/*
			 * Stops already reported come first: one of an activator is time it did
			 * not run, which moves deadlines (fsm_thread_held()). Bounded, so that a
			 * stream of stops cannot keep a stall past its deadline for long.
			 */
			tid = waitpid(-1, &status, __WALL | WNOHANG);
			if (tid > 0) {
				t->release_deferred++;
				r = loop_handle(t, tid, status);
				if (r < 0)
					break;
				continue;
			}
		}
		t->release_deferred = 0;
		stall_release_due(t);
		if (!t->threads)
			break;
		if (t->ring_busy && !t->nstalled) {
			/* Events wait in the ring: drain them while the program runs, between stops. */
			tid = waitpid(-1, &status, __WALL | WNOHANG);
			if (tid == 0) {
				t->ring_busy = ring_drain_some(t, 256) > 0;
				continue;
			}
		} else {
			tid = t->nstalled || (t->fsm && t->ring) ? wait_stop_or_deadline(t, &status)
								 : waitpid(-1, &status, __WALL);
		}
		if (tid == 0)
			continue;
		if (tid < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECHILD)
				break;
			r = -errno;
			break;
		}
		r = loop_handle(t, tid, status);
		if (r < 0)
			break;
	}
	ring_drain(t);
	stop_ticks();
	sigprocmask(SIG_SETMASK, &old, NULL);
	sample_finish(t);
	if (r < 0)
		return r;
	if (t->exit_override >= 0)
		*ret_status = t->exit_override << 8; /* as if it had exited with that code */
	else
		*ret_status = t->main_done ? t->main_status : 0;
	return 0;
}
