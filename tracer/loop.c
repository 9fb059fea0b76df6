/*
 * One stop, decoded and acted on. decode() turns a wait status into a small enum (the shape of
 * strace's trace_event.h), loop_handle() dispatches it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/unwind.h"
#include "tracer/internal.h"

/* The stack top copied at each event, for unwinding: a few frames of -O2 code. */
#define STACK_COPY 1024

enum stop {
	STOP_GONE,	  /* exited or killed */
	STOP_TRAP,	  /* SIGTRAP signal-delivery-stop: our int3, or a real SIGTRAP */
	STOP_SIGNAL,	  /* signal-delivery-stop */
	STOP_GROUP,	  /* group-stop (job control) */
	STOP_INTERRUPT,	  /* PTRACE_EVENT_STOP without a stopping signal: new thread, interrupt */
	STOP_CLONE,	  /* PTRACE_EVENT_CLONE / FORK / VFORK */
	STOP_EXEC,
	STOP_EXIT,	  /* PTRACE_EVENT_EXIT */
};

static enum stop
decode(int status)
{
	int sig;

	if (!WIFSTOPPED(status))
		return STOP_GONE;
	sig = WSTOPSIG(status);
	switch (status >> 16) {
	case 0:
		return sig == SIGTRAP ? STOP_TRAP : STOP_SIGNAL;
	case PTRACE_EVENT_STOP:
		if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
			return STOP_GROUP;
		return STOP_INTERRUPT;
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
		return STOP_CLONE;
	case PTRACE_EVENT_EXEC:
		return STOP_EXEC;
	case PTRACE_EVENT_EXIT:
		return STOP_EXIT;
	default:
		return STOP_INTERRUPT; /* VFORK_DONE and the like: nothing to do but go on */
	}
}

/* An unfollowed fork child: restore its copy of our breakpoints, then let it go. */
static void
release_fork_child(struct tracer *t, struct thread *th)
{
	struct process *p = th->proc;
	int r = bp_aspace_remove_all(p->as);

	if (r < 0 && r != -ESRCH)
		log_msg("fork child %d: cannot remove breakpoints: %s", p->pid, strerror(-r));
	ptrace(PTRACE_DETACH, th->tid, 0, (long)th->pending_sig);
	thread_remove(t, th);
	process_remove(t, p);
}

/* Whether @tid is a thread of process @pid, rather than a process of its own. */
static bool
is_thread_of(pid_t pid, pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)pid, (int)tid);
	return access(path, F_OK) == 0;
}

static int
on_clone(struct tracer *t, struct thread *parent, int event)
{
	struct process *pp = parent->proc, *cp;
	struct thread *child;
	unsigned long msg;
	bool thread;

	if (ptrace(PTRACE_GETEVENTMSG, parent->tid, 0, &msg) < 0)
		return errno == ESRCH ? 0 : -errno;
	pid_t tid = (pid_t)msg;
	thread = event == PTRACE_EVENT_CLONE && is_thread_of(pp->pid, tid);
	child = thread_find(t, tid); /* present if its first stop came first */
	if (!child) {
		child = thread_add(t, tid, NULL);
		if (!child)
			return -ENOMEM;
	}
	if (thread) {
		cp = pp;
	} else {
		struct bp_aspace *as;
		int r;

		if (event == PTRACE_EVENT_VFORK)
			as = bp_aspace_ref(pp->as); /* shares our memory until it execs */
		else if ((r = bp_aspace_clone(pp->as, tid, &as)) < 0)
			return r;
		cp = process_add(t, tid, as);
		if (!cp) {
			bp_aspace_unref(as);
			return -ENOMEM;
		}
		cp->record = pp->record && t->opt.follow_forks;
		cp->detach_at_exec = !cp->record && event == PTRACE_EVENT_VFORK;
		cp->detach_at_stop = !cp->record && event != PTRACE_EVENT_VFORK;
	}
	child->proc = cp;
	cp->nthreads++;
	if (cp->record)
		child->index = ++t->next_index;
	if (child->state == TS_HELD) { /* the orphan waited for us */
		if (cp->detach_at_stop)
			release_fork_child(t, child);
		else
			thread_resume(t, child, 0);
	}
	return 0;
}

/*
 * After an exec, the thread to go on with is *thp: a non-leader that execs takes the leader's
 * tid, and the old leader's record goes (the kernel reports no exit for it). Returns 1 when
 * the process was let go (an unfollowed vfork child), 0, or -errno.
 */
static int
on_exec(struct tracer *t, struct thread **thp)
{
	struct thread *th = *thp, *execer;
	struct process *p = th->proc;
	unsigned long former;
	struct bp_aspace *as;
	int r;

	if (ptrace(PTRACE_GETEVENTMSG, th->tid, 0, &former) == 0 && (pid_t)former != th->tid &&
	    (execer = thread_find(t, (pid_t)former)) != NULL) {
		pid_t leader = th->tid;

		thread_remove(t, th);
		thread_rename(t, execer, leader);
		execer->state = TS_HELD;
		*thp = th = execer;
	}
	if (p->detach_at_exec) {
		ptrace(PTRACE_DETACH, th->tid, 0, 0);
		thread_remove(t, th);
		process_remove(t, p);
		return 1;
	}
	process_reset_image(p);
	if (t->procs == p && !p->next)
		ring_forget_unfinished(t); /* threads killed by the exec mid-append */
	r = bp_aspace_create(p->pid, &as);
	if (r < 0)
		return r;
	p->as = as;
	r = image_refresh(t, p, th->tid);
	if (r < 0 && r != -ESRCH)
		log_msg("process %d: cannot read the new image: %s", p->pid, strerror(-r));
	return 0;
}

/* The pid's wait status ends the thread; a leader's ends its process. */
static void
on_gone(struct tracer *t, struct thread *th, int status)
{
	struct process *p = th->proc;

	if (p && th->tid == p->pid) {
		if (p->pid == t->main_pid) {
			t->main_status = status;
			t->main_done = true;
		}
		thread_remove(t, th);
		/* Its other threads, if any are still listed, are gone with it. */
		for (struct thread *o = t->threads, *n; o; o = n) {
			n = o->next;
			if (o->proc == p)
				thread_remove(t, o);
		}
		process_remove(t, p);
		return;
	}
	thread_remove(t, th);
}

/* Whether @sig, met at a step, is the stepped instruction's own fault: stepped again, it would
 * fault again. */
static bool
is_fault(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE;
}

/*
 * Single-steps a thread (stopped) by one instruction; a signal met meanwhile is kept. Returns
 * 0, -errno, or the signal of a fault of that instruction: not stepped then, nor delivered
 * (the caller delivers it); @regs are where it faulted.
 */
static int
step(struct thread *th, struct user_regs_struct *regs)
{
	int status;

	if (ptrace(PTRACE_SINGLESTEP, th->tid, 0, 0) < 0)
		return -errno;
	for (;;) {
		if (waitpid(th->tid, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!WIFSTOPPED(status))
			return -ESRCH;
		if ((status >> 16) == 0 && is_fault(WSTOPSIG(status)))
			return ptrace(PTRACE_GETREGS, th->tid, 0, regs) < 0 ? -errno
									   : WSTOPSIG(status);
		if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP) {
			th->pending_sig = WSTOPSIG(status); /* delivered at the next resume */
			if (ptrace(PTRACE_SINGLESTEP, th->tid, 0, 0) < 0)
				return -errno;
			continue;
		}
		break;
	}
	return ptrace(PTRACE_GETREGS, th->tid, 0, regs) < 0 ? -errno : 0;
}

/* Steps through one statement at most (a loop on one line is cut there). */
#define MAX_STATEMENT_STEPS 64

/*
 * Steps @th, stopped at the point @bp with @regs ready to resume, through the statement the
 * point begins: its displaced instruction, then on while it stays in the run of rows of the
 * point's line (bp->span_end; 0: the one instruction). It stops short at a call or jump out of
 * the run, and before another breakpoint (that one's stop is still to come). Returns 0, -errno,
 * or the signal of a fault met on the way (as step()).
 */
static int
step_statement(struct thread *th, const struct bp_breakpoint *bp, struct user_regs_struct *regs)
{
	for (int i = 0; i < MAX_STATEMENT_STEPS; i++) {
		int r = step(th, regs);
		if (r != 0)
			return r; /* a fault: the failure, maybe */
		uint64_t rip = regs->rip;
		if (bp->slot && rip >= bp->slot && rip < bp->slot + BP_SLOT_SIZE)
			continue; /* its relocated copy, on the way back */
		if (rip < bp->addr || rip >= bp->span_end || bp_aspace_lookup(th->proc->as, rip))
			return 0;
	}
	return 0;
}

/*
 * A trap pad's sequence is a handful of instructions; the ring routine about 80, and one step
 * per word of its stack copy: a bound against surprises.
 */
#define MAX_PAD_STEPS 512

int
thread_leave_scratch(struct tracer *t, struct thread *th, struct user_regs_struct *regs)
{
	struct process *p = th->proc;
	uint64_t rip;
	bool trapped, stepped = false;
	int r = -ENOENT, full = 0;

	if (!p || !p->as)
		return 0;
	for (int n = 0; n <= MAX_PAD_STEPS; n++) {
		r = bp_aspace_scratch_fixup(p->as, regs->rip, &rip, &trapped);
		if (r != -EAGAIN)
			break;
		r = step(th, regs); /* the middle of a pad: no place in the original stands for it */
		if (r > 0) {
			th->pending_sig = r; /* a fault in a relocated instruction: delivered there */
			return -EFAULT;
		}
		if (r < 0)
			return r;
		stepped = true;
		if (bp_aspace_ring_trap(p->as, regs->rip) == BP_RING_TRAP_FULL) {
			/*
			 * It waits for room. A drain makes some, unless the oldest slot is another
			 * thread's that is stopped mid-way itself (its stop not handled yet): then
			 * this one stays where it is, and goes on waiting once resumed.
			 */
			ring_drain(t);
			if (++full > 2) {
				r = -EBUSY;
				break;
			}
		}
		r = -EAGAIN;
	}
	/*
	 * The ring routine's pushf, stepped, saved the trap flag the kernel set for the step, and
	 * its popf put it back: the kernel then takes it for the program's own and leaves it set.
	 */
	if (stepped)
		regs->eflags &= ~0x100ull; /* TF */
	if (r == -EBUSY) {
		/* Stepped over the routine's pushf: its saved flags have the trap flag too. */
		bp_aspace_ring_clear_tf(p->as, regs);
		return ptrace(PTRACE_SETREGS, th->tid, 0, regs) < 0 ? -errno : r;
	}
	if (r == -ENOENT)
		return stepped && ptrace(PTRACE_SETREGS, th->tid, 0, regs) < 0 ? -errno : 0;
	if (r < 0)
		return r;
	if (trapped) {
		th->rehit_addr = rip;
		th->rehit_sp = regs->rsp;
	}
	regs->rip = rip;
	return ptrace(PTRACE_SETREGS, th->tid, 0, regs) < 0 ? -errno : 0;
}

static int
on_signal(struct tracer *t, struct thread *th, int sig)
{
	struct user_regs_struct regs;
	int requeue = 0, r;

	if (th->proc && ptrace(PTRACE_GETREGS, th->tid, 0, &regs) == 0) {
		/* The signal frame must not hold a scratch address: detach would unmap it. */
		struct user_regs_struct entry;
		if (thread_leave_scratch(t, th, &regs) == -EBUSY &&
		    bp_aspace_ring_waiting(th->proc->as, &regs, &entry) == 0)
			regs = entry; /* still waiting in the ring routine: its site is the entry's */
		/* A signal met while it was stepped out was taken from it: it comes again. */
		if (th->pending_sig) {
			requeue = th->pending_sig;
			th->pending_sig = 0;
		}
		if (th->proc->record) {
			uint64_t stack[STACK_COPY / 8], pcs[TRACER_MAX_FRAMES];
			int len = t->frames > 1 ? bp_stack_copy(th->tid, regs.rsp, stack, sizeof(stack))
						: 0;
			unsigned n = capture_pcs(t, th, &regs, len > 0 ? stack : NULL,
						 len > 0 ? (size_t)len : 0, pcs, t->frames);

			record_event(t, th, MODEL_EV_SIGNAL, site_of(t, th->proc, pcs, n, false),
				     (uint64_t)sig);
			if (failure_is_fatal(th, sig))
				failure_on_signal(t, th, sig, &regs);
		}
	}
	r = thread_resume(t, th, sig);
	if (requeue)
		syscall(SYS_tgkill, th->proc ? th->proc->pid : th->tid, th->tid, requeue);
	return r;
}

/*
 * An event at a breakpoint. At a function's entry [rsp] is the return address: the caller's
 * site, and a caller in glibc itself makes it an internal call, not an event. The site's
 * further frames come from unwinding a copy of the stack top (one process_vm_readv).
 */
static const struct site *
record_hit(struct tracer *t, struct thread *th, const struct bp_breakpoint *bp,
	   const struct user_regs_struct *regs, enum model_event_kind *ret_kind)
{
	uint64_t stack[STACK_COPY / 8], pcs[TRACER_MAX_FRAMES + 1];
	struct user_regs_struct at = *regs;
	struct process *p = th->proc;
	const struct bp_module *m;
	const struct site *site;
	int len;
	unsigned n;

	at.rip = bp->addr; /* the int3 moved it on; a pad keeps rsp as it was at the entry */
	if (t->frames > 1)
		len = bp_stack_copy(th->tid, at.rsp, stack, sizeof(stack));
	else if (bp->tag == TAG_POINT)
		len = 0; /* its one frame is the planted address */
	else if (bp->insn.kind == BP_RESUME_PAD)
		stack[0] = regs->r11, len = 8; /* the pad loaded [rsp] there: no read at all */
	else /* one word: pread is the cheapest syscall for it */
		len = bp_mem_read(bp_aspace_memfd(p->as), at.rsp, stack, 8) == 0 ? 8 : -EFAULT;
	if (bp->tag == TAG_POINT) {
		n = capture_pcs(t, th, &at, len > 0 ? stack : NULL, len > 0 ? (size_t)len : 0, pcs,
				t->frames);
		if (bp->alias) /* a later address of its line in the same function: one site */
			pcs[0] = bp->alias;
		site = site_of(t, p, pcs, n, false);
		record_event(t, th, MODEL_EV_POINT, site, 0);
		*ret_kind = MODEL_EV_POINT;
		return site;
	}
	if (len < 8)
		return NULL;
	m = bp_aspace_module_at(p->as, stack[0]);
	if (m && m->system)
		return NULL;
	/* Frame 0 of the site is the return address; unwinding is for the callers beyond it. */
	n = t->frames > 1 ? capture_pcs(t, th, &at, stack, (size_t)len, pcs, t->frames + 1) : 0;
	if (n < 2 || pcs[1] != stack[0]) {
		pcs[1] = stack[0];
		n = 2;
	}
	site = site_of(t, p, pcs + 1, n - 1, true);
	*ret_kind = (enum model_event_kind)bp->tag;
	record_event(t, th, *ret_kind, site, regs->rdi);
	return site;
}

/* Gives a stopped thread @regs, after @r, the result of preparing them: 0, or -errno (-ESRCH:
 * the thread is gone, which its callers take as nothing to do). */
static int
set_regs(struct thread *th, const struct user_regs_struct *regs, int r)
{
	if (r < 0)
		return r;
	return ptrace(PTRACE_SETREGS, th->tid, 0, regs) < 0 ? -errno : 0;
}

/* Resumes a thread with @regs, after @r, the result of preparing them (a gone thread is fine). */
static int
resume_at(struct tracer *t, struct thread *th, const struct user_regs_struct *regs, int r)
{
	r = set_regs(th, regs, r);
	if (r < 0)
		return r == -ESRCH ? 0 : r;
	return thread_resume(t, th, 0);
}

/*
 * A jump back to the entry of the function it is in (a retry): when taken, the thread goes on
 * as the entry's breakpoint would let it, without a second event for the same call.
 */
static int
reenter(struct tracer *t, struct thread *th, const struct bp_breakpoint *bp,
	struct user_regs_struct *regs)
{
	const bool jmp = bp->insn.kind == BP_RESUME_JMP;
	const uint64_t target = jmp ? bp->insn.target : bp->insn.fix[2].orig;
	const struct bp_breakpoint *entry = NULL;
	int r = 0;

	if (jmp || bp_insn_cond_taken(bp->insn.cond, regs->eflags)) {
		entry = bp_aspace_lookup(th->proc->as, target);
		regs->rip = target;
		if (entry)
			r = bp_breakpoint_resume(th->proc->as, entry, regs);
	} else {
		regs->rip = bp->addr + bp->insn.len;
	}
	return resume_at(t, th, regs, r);
}

static int
on_breakpoint(struct tracer *t, struct thread *th, struct bp_breakpoint *bp,
	      struct user_regs_struct *regs)
{
	struct process *p = th->proc;
	bool rehit = bp->addr == th->rehit_addr && regs->rsp == th->rehit_sp;
	const struct site *site = NULL;
	enum model_event_kind kind = MODEL_EV_POINT;
	bool stall = false;
	int r;

	th->rehit_addr = 0;
	if (bp->tag == TAG_REENTRY)
		return reenter(t, th, bp, regs);
	if (bp->tag == TAG_TICK) {
		if (p->record && !rehit)
			t->ticks_pending++;
	} else if (bp->tag == TAG_RBRK) {
		ring_drain(t); /* events of a module about to go */
		r = image_refresh(t, p, th->tid);
		if (r < 0 && r != -ESRCH)
			log_msg("process %d: cannot read its modules: %s", p->pid, strerror(-r));
	} else if (p->record && !rehit) {
		site = record_hit(t, th, bp, regs, &kind);
		stall = site && stall_on_event(t, th, kind, site, regs->rdi);
	}
	if (bp->insn.kind != BP_RESUME_PAD) { /* a pad goes on from the trap: no register to set */
		r = bp_breakpoint_resume(p->as, bp, regs);
		if (stall) /* ready to go on, but held until the constraint lets it */
			return r < 0 || ptrace(PTRACE_SETREGS, th->tid, 0, regs) == 0 ? 0 : -errno;
		if ((r = set_regs(th, regs, r)) < 0)
			return r == -ESRCH ? 0 : r;
	} else if (stall) {
		return 0;
	}
	if (site && kind == MODEL_EV_POINT && stall_point_must_run(t, th, site)) {
		/*
		 * A point begins a statement, but resumed it has not run yet: the thread may wait
		 * for a CPU while the thread it releases (fsm_thread_point_done()), or a thread
		 * whose B comes next, runs first. Stepped through it, it has run (a store's
		 * statement often loads the pointer first) before anything else is done.
		 */
		r = step_statement(th, bp, regs);
		if (r > 0) /* the statement faults: the program's signal, handled as one */
			return on_signal(t, th, r);
		if (r < 0)
			return r == -ESRCH ? 0 : r;
		fsm_thread_point_done(t->fsm, th->index, bp->group, now_ns());
	}
	return thread_resume(t, th, 0);
}

static int
on_trap(struct tracer *t, struct thread *th)
{
	struct user_regs_struct regs;
	struct bp_breakpoint *bp;

	if (ptrace(PTRACE_GETREGS, th->tid, 0, &regs) < 0)
		return errno == ESRCH ? 0 : -errno;
	if (th->proc && th->proc->as) {
		enum bp_ring_trap rt = bp_aspace_ring_trap(th->proc->as, regs.rip);
		if (rt != BP_RING_TRAP_NONE)
			return ring_on_trap(t, th, rt);
	}
	bp = th->proc && th->proc->as ? bp_aspace_lookup_trap(th->proc->as, regs.rip) : NULL;
	if (!bp)
		return on_signal(t, th, SIGTRAP); /* a real SIGTRAP: the program's */
	return on_breakpoint(t, th, bp, &regs);
}

int
loop_handle(struct tracer *t, pid_t tid, int status)
{
	struct thread *th = thread_find(t, tid);
	enum stop stop = decode(status);

	if (!th) {
		/* Its creator's clone event is still to come: hold it until then. */
		if (stop == STOP_GONE)
			return 0;
		th = thread_add(t, tid, NULL);
		if (!th)
			return -ENOMEM;
		th->state = TS_HELD;
		return 0;
	}
	if (stop == STOP_GONE) {
		on_gone(t, th, status);
		return 0;
	}
	th->state = TS_HELD;
	th->stop_ns = now_ns();
	if (!th->proc)
		return 0; /* an orphan's further stops: it stays held */
	/*
	 * Events appended since the last stop come first (this one may be an event, an exit, an
	 * exec, a module change or a failure). A trap drains as it needs (on_trap): a full ring
	 * only a part of it.
	 */
	if (stop != STOP_TRAP)
		ring_drain(t);

	switch (stop) {
	case STOP_TRAP:
		return on_trap(t, th);
	case STOP_SIGNAL:
		return on_signal(t, th, WSTOPSIG(status));
	case STOP_GROUP:
		th->state = TS_LISTENING;
		if (ptrace(PTRACE_LISTEN, th->tid, 0, 0) < 0 && errno != ESRCH)
			return -errno;
		return 0;
	case STOP_INTERRUPT:
		if (th->proc->detach_at_stop) {
			release_fork_child(t, th);
			return 0;
		}
		if (stall_at_interrupt(t, th))
			return 0; /* held by a constraint until fsm says it is due */
		return thread_resume(t, th, 0);
	case STOP_CLONE: {
		int r = on_clone(t, th, status >> 16);
		if (r < 0)
			log_msg("thread %d: clone: %s", th->tid, strerror(-r));
		return thread_resume(t, th, 0);
	}
	case STOP_EXEC: {
		int r = on_exec(t, &th);
		if (r < 0)
			log_msg("process %d: exec: %s", th->tid, strerror(-r));
		return r == 1 ? 0 : thread_resume(t, th, 0);
	}
	case STOP_EXIT: {
		unsigned long msg;
		int st;

		if (th->proc->record && t->opt.fail_on_exit &&
		    ptrace(PTRACE_GETEVENTMSG, th->tid, 0, &msg) == 0 &&
		    (st = (int)msg, WIFEXITED(st)) && WEXITSTATUS(st) != 0)
			failure_on_exit(t, th, WEXITSTATUS(st));
		break;
	}
	case STOP_GONE:
		break;
	}
	return thread_resume(t, th, 0);
}
