/*
 * Syscall injection: a stopped thread runs one syscall for the tracer (mapping and unmapping
 * scratch regions), as debuggers make a stopped inferior call a function.
 *
 * The thread's registers are saved, replaced (orig_rax = -1 so that a syscall the thread was
 * interrupted in is not restarted onto our gadget), and restored afterwards unchanged, so an
 * interrupted syscall restarts as it would have.
 *
 * The gadget is "int3; syscall; int3", run in two steps. A thread may be stopped inside a
 * syscall (an exec stop, an attach interrupt): when it goes on, the kernel still completes that
 * syscall and writes its result to rax. So it first runs to the leading int3, back in user
 * mode, and only then gets the syscall's registers.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

#include "breakpoints/breakpoints.h"

/* Waits until @tid stops at its int3 whose next byte is @at; other stops are passed over. */
static int
run_to(pid_t tid, uint64_t at, struct user_regs_struct *regs, int *pending)
{
	for (;;) {
		int status;

		if (waitpid(tid, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!WIFSTOPPED(status))
			return -ESRCH; /* exited or killed meanwhile */
		int sig = WSTOPSIG(status);
		if ((status >> 16) == 0 && sig == SIGTRAP) {
			if (ptrace(PTRACE_GETREGS, tid, 0, regs) < 0)
				return -errno;
			if (regs->rip == at)
				return 0;
		}
		if ((status >> 16) == 0 && sig != SIGTRAP)
			*pending = sig; /* a real signal: the caller delivers it later */
		if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
			return -errno;
	}
}

int
bp_inject_syscall(pid_t tid, uint64_t gadget, long nr, const long args[6], long *ret_val,
		  int *ret_pending_sig)
{
	struct user_regs_struct saved, regs;
	int pending = 0, r;

	if (ptrace(PTRACE_GETREGS, tid, 0, &saved) < 0)
		return -errno;
	regs = saved;
	regs.orig_rax = (unsigned long)-1;
	regs.rip = gadget;
	if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0 || ptrace(PTRACE_CONT, tid, 0, 0) < 0)
		return -errno;
	r = run_to(tid, gadget + BP_GADGET_SYSCALL, &regs, &pending);
	if (r < 0)
		return r;
	regs.rax = (unsigned long)nr;
	regs.orig_rax = (unsigned long)-1;
	regs.rdi = (unsigned long)args[0];
	regs.rsi = (unsigned long)args[1];
	regs.rdx = (unsigned long)args[2];
	regs.r10 = (unsigned long)args[3];
	regs.r8 = (unsigned long)args[4];
	regs.r9 = (unsigned long)args[5];
	if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0 || ptrace(PTRACE_CONT, tid, 0, 0) < 0)
		return -errno;
	r = run_to(tid, gadget + BP_GADGET_LEN, &regs, &pending);
	if (r < 0)
		return r;
	if (ptrace(PTRACE_SETREGS, tid, 0, &saved) < 0)
		return -errno;
	*ret_val = (long)regs.rax;
	*ret_pending_sig = pending;
	return 0;
}
