/*
 * Syscall injection: a stopped thread runs one syscall for the tracer (mapping and unmapping
 * scratch regions), as debuggers make a stopped inferior call a function.
 *
 * The thread's registers are saved, replaced (orig_rax = -1 so that a syscall the thread was
 * interrupted in is not restarted onto our gadget), and restored afterwards unchanged, so an
 * interrupted syscall restarts as it would have.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

#include "breakpoints/breakpoints.h"

#define GADGET_LEN 3 /* syscall (0f 05); int3 (cc) */

static int
wait_for_gadget(pid_t tid, uint64_t gadget, struct user_regs_struct *regs, int *pending)
{
	for (;;) {
		int status;

		if (waitpid(tid, &status, __WALL) < 0)
			return -errno;
		if (!WIFSTOPPED(status))
			return -ESRCH; /* exited or killed meanwhile */
		int sig = WSTOPSIG(status);
		if ((status >> 16) == 0 && sig == SIGTRAP) {
			if (ptrace(PTRACE_GETREGS, tid, 0, regs) < 0)
				return -errno;
			if (regs->rip == gadget + GADGET_LEN)
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
	regs.rax = (unsigned long)nr;
	regs.orig_rax = (unsigned long)-1;
	regs.rip = gadget;
	regs.rdi = (unsigned long)args[0];
	regs.rsi = (unsigned long)args[1];
	regs.rdx = (unsigned long)args[2];
	regs.r10 = (unsigned long)args[3];
	regs.r8 = (unsigned long)args[4];
	regs.r9 = (unsigned long)args[5];
	if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0 || ptrace(PTRACE_CONT, tid, 0, 0) < 0)
		return -errno;
	r = wait_for_gadget(tid, gadget, &regs, &pending);
	if (r < 0)
		return r;
	if (ptrace(PTRACE_SETREGS, tid, 0, &saved) < 0)
		return -errno;
	*ret_val = (long)regs.rax;
	*ret_pending_sig = pending;
	return 0;
}
