/*
 * Detaching from an attached program so that it goes on as if never traced: every thread
 * stopped, none left inside a displaced instruction, every original byte back, the scratch
 * regions unmapped, held signals delivered.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

#include "tracer/internal.h"

/*
 * Takes one stop during the detach. A thread stopped at one of our int3s is rewound onto the
 * instruction, which it will run for real once the byte is back.
 */
static void
hold(struct tracer *t, struct thread *th, int status)
{
	int event = status >> 16, sig = WSTOPSIG(status);
	struct user_regs_struct regs;

	th->state = TS_HELD;
	if (event == PTRACE_EVENT_STOP) {
		if (sig != SIGTRAP)
			th->state = TS_LISTENING;
		return;
	}
	if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
	    event == PTRACE_EVENT_VFORK) {
		unsigned long msg;
		/* The kernel attached the new thread: it must be let go as well. */
		if (ptrace(PTRACE_GETEVENTMSG, th->tid, 0, &msg) == 0 && !thread_find(t, (pid_t)msg))
			thread_add(t, (pid_t)msg, event == PTRACE_EVENT_CLONE ? th->proc : NULL);
		return;
	}
	if (event != 0)
		return;
	const struct bp_breakpoint *bp;
	if (sig == SIGTRAP && th->proc && th->proc->as &&
	    ptrace(PTRACE_GETREGS, th->tid, 0, &regs) == 0 &&
	    bp_aspace_ring_trap(th->proc->as, regs.rip) != BP_RING_TRAP_NONE)
		return; /* past the ring routine's int3: it goes on from there (stepped out later) */
	if (sig == SIGTRAP && th->proc && th->proc->as &&
	    ptrace(PTRACE_GETREGS, th->tid, 0, &regs) == 0 &&
	    (bp = bp_aspace_lookup_trap(th->proc->as, regs.rip)) != NULL) {
		if (bp->insn.kind == BP_RESUME_PAD)
			bp_pad_rewind(th->proc->as, bp, &regs);
		else
			regs.rip = bp->addr;
		ptrace(PTRACE_SETREGS, th->tid, 0, &regs);
		return;
	}
	th->pending_sig = sig;
}

static int
stop_everyone(struct tracer *t)
{
	for (struct thread *th = t->threads; th; th = th->next)
		if (th->state == TS_RUNNING)
			ptrace(PTRACE_INTERRUPT, th->tid, 0, 0);
	for (;;) {
		struct thread *th;
		int status;
		pid_t tid;

		for (th = t->threads; th && th->state != TS_RUNNING; th = th->next)
			;
		if (!th)
			return 0;
		tid = waitpid(-1, &status, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		th = thread_find(t, tid);
		if (!th) {
			/* A new thread's first stop before its creator's event. */
			th = thread_add(t, tid, NULL);
			if (!th)
				return -ENOMEM;
		}
		if (!WIFSTOPPED(status)) {
			if (th->proc && tid == th->proc->pid && tid == t->main_pid) {
				t->main_status = status;
				t->main_done = true;
			}
			thread_remove(t, th);
			continue;
		}
		hold(t, th, status);
	}
}

/*
 * Puts back a thread whose rip is inside a scratch slot. A thread waiting for room in the ring
 * behind another one's unfinished slot gets out once that one is stepped out: @last is the
 * second pass, which says what failed.
 */
static void
leave_scratch(struct tracer *t, struct thread *th, bool last)
{
	struct user_regs_struct regs;
	int r;

	if (th->state != TS_HELD || ptrace(PTRACE_GETREGS, th->tid, 0, &regs) < 0)
		return;
	r = thread_leave_scratch(t, th, &regs);
	if (r < 0 && (last || r != -EBUSY))
		log_msg("thread %d: cannot leave the scratch slot at %#llx", th->tid, regs.rip);
}

/* Whether SIGTRAP is pending for thread @tid (its SigPnd mask). */
static bool
sigtrap_pending(pid_t tid)
{
	char path[64], line[256];
	unsigned long long pending = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigPnd: %llx", &pending) == 1)
			break;
	fclose(f);
	return pending & (1ull << (SIGTRAP - 1));
}

/*
 * A thread that ran one of our int3s just as it was interrupted reports the interrupt first,
 * its SIGTRAP still pending: detached like that, it would die of it. Such a thread stands one
 * byte past a breakpoint with SIGTRAP pending.
 */
static bool
has_pending_hit(struct thread *th)
{
	struct user_regs_struct regs;
	const struct bp_breakpoint *bp;

	if (th->state != TS_HELD || !th->proc || !th->proc->as || th->pending_sig ||
	    ptrace(PTRACE_GETREGS, th->tid, 0, &regs) < 0 ||
	    !(bp = bp_aspace_lookup_trap(th->proc->as, regs.rip)) || !sigtrap_pending(th->tid))
		return false;
	th->hit_rewind = bp->addr;
	th->hit_pad = bp->insn.kind == BP_RESUME_PAD;
	return true;
}

/*
 * Once the original bytes are back: lets the thread take its pending SIGTRAP, swallows it, and
 * puts the thread back onto the instruction, which it will now run for real.
 */
static int
swallow_pending_hit(struct thread *th)
{
	for (;;) {
		struct user_regs_struct regs;
		int status, event, sig;

		if (ptrace(PTRACE_CONT, th->tid, 0, 0) < 0 || waitpid(th->tid, &status, __WALL) < 0)
			return -errno;
		if (!WIFSTOPPED(status))
			return -ESRCH;
		event = status >> 16, sig = WSTOPSIG(status);
		if (event != 0)
			continue; /* the interrupt still pending: it comes first */
		if (sig != SIGTRAP) {
			th->pending_sig = sig; /* delivered at the detach */
			continue;
		}
		if (ptrace(PTRACE_GETREGS, th->tid, 0, &regs) < 0)
			return -errno;
		if (th->hit_pad) {
			uint64_t r11;
			int r = bp_mem_read(bp_aspace_memfd(th->proc->as), regs.rsp - 8, &r11, 8);
			if (r < 0)
				return r;
			regs.r11 = r11; /* where the pad saved the caller's */
		}
		regs.rip = th->hit_rewind;
		return ptrace(PTRACE_SETREGS, th->tid, 0, &regs) < 0 ? -errno : 0;
	}
}

static struct thread *
held_thread_of(struct tracer *t, struct process *p)
{
	for (struct thread *th = t->threads; th; th = th->next)
		if (th->proc == p && th->state == TS_HELD)
			return th;
	return NULL;
}

int
detach_all(struct tracer *t)
{
	int first = 0, r;

	r = stop_everyone(t);
	if (r < 0)
		return r;
	for (struct thread *th = t->threads; th; th = th->next) {
		th->hit_pending = has_pending_hit(th);
		if (!th->hit_pending)
			leave_scratch(t, th, false);
	}
	for (struct thread *th = t->threads; th; th = th->next)
		if (!th->hit_pending)
			leave_scratch(t, th, true);
	ring_drain(t); /* the last events, before the ring goes */
	for (struct process *p = t->procs; p; p = p->next) {
		struct thread *hands = held_thread_of(t, p);
		int pending = 0;

		if (!p->as)
			continue;
		r = bp_aspace_remove_all(p->as);
		if (r < 0 && !first)
			first = r;
		for (struct thread *th = t->threads; th; th = th->next) {
			if (th->proc != p || !th->hit_pending)
				continue;
			r = swallow_pending_hit(th);
			if (r < 0 && r != -ESRCH && !first)
				first = r;
		}
		if (!hands)
			continue; /* every thread in a group-stop: the region stays */
		r = ring_unmap(t, p, hands->tid);
		if (r < 0 && r != -ESRCH && !first)
			first = r;
		r = bp_aspace_unmap_scratch(p->as, hands->tid, &pending);
		if (pending)
			hands->pending_sig = pending;
		if (r < 0 && !first)
			first = r;
	}
	while (t->threads) {
		struct thread *th = t->threads;
		if (ptrace(PTRACE_DETACH, th->tid, 0, (long)th->pending_sig) < 0 && errno != ESRCH &&
		    !first)
			first = -errno;
		thread_remove(t, th);
	}
	while (t->procs)
		process_remove(t, t->procs);
	return first;
}
