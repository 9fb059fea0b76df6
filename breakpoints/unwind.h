/*
 * Calling context of a stopped thread (unwind.c, the one libunwind boundary): the return
 * addresses of its callers, found from DWARF CFI (.eh_frame) through libunwind's remote
 * unwinder. Stack memory comes from one bulk copy of the top of the stack (process_vm_readv),
 * never one PTRACE_PEEKDATA per word, so an event's context can be unwound at once, while the
 * thread is stopped, or later from a copy kept with the event (DESIGN.md, "Sites and symbols").
 *
 * Conventions as in breakpoints.h: 0 or a count on success, -errno on failure, ret_* untouched
 * on failure, destructors accept NULL, nothing here logs or waits.
 *
 * To be merged into breakpoints.h by the lead; kept apart while the two are edited in parallel.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct user_regs_struct;

/*
 * Bytes of stack bp_unwind() copies for a live unwind (@stack == NULL). Two pages cover the
 * frames of a handful of ordinary functions; deeper reads go to the target page by page.
 */
#define BP_UNWIND_STACK_COPY 8192
/* Upper bound on @max (and so on the frames of one unwind): a corrupt stack cannot loop. */
#define BP_UNWIND_MAX_FRAMES 256

/*
 * An unwinder for one process (all its threads: they share the address space). It caches the
 * unwind tables it has read (per function, by [start, end) address), so repeated unwinds through
 * the same functions parse no ELF and no .eh_frame. Not thread-safe: one tracer thread at a time.
 */
struct bp_unwinder;

/* Creates the unwinder of process @pid. -ENOMEM, or -EINVAL from libunwind. */
int bp_unwinder_create(pid_t pid, struct bp_unwinder **ret_unwinder);
/* Frees @u and its caches (accepts NULL). Never touches the target. */
void bp_unwinder_destroy(struct bp_unwinder *u);
/*
 * Forgets every cached table and ELF image: call it when modules changed (dlopen, dlclose,
 * exec), before the next unwind.
 */
void bp_unwinder_flush(struct bp_unwinder *u);

/*
 * Copies up to @len bytes of the stack of thread @tid starting at @sp into @buf with one
 * process_vm_readv (one pread of /proc/TID/mem where that syscall is unavailable). The copy is
 * shorter at the end of the mapping, and at most 128 KiB. Returns the bytes copied (> 0),
 * -EFAULT when @sp itself is unreadable, -ESRCH when the thread is gone, or -errno.
 */
int bp_stack_copy(pid_t tid, uint64_t sp, void *buf, size_t len);

/*
 * Unwinds thread @tid of @u's process from registers @regs (a struct user_regs_struct).
 *
 * Live (@stack == NULL): the thread must be in a ptrace stop; the top BP_UNWIND_STACK_COPY
 * bytes of its stack are copied once, the rest (deep frames, .eh_frame) is read from the target
 * a page at a time.
 * Saved (@stack != NULL): @stack holds @stack_len bytes copied from regs->rsp at a stop (by
 * bp_stack_copy()); reads inside it are served from it, others from the target as above, so the
 * thread need not be stopped (nor alive) when the frames lie within the copy and their functions
 * were met before.
 *
 * Fills pcs[0..n): pcs[0] = regs->rip, then the return addresses of the callers, innermost
 * first (after a signal frame: the interrupted pc itself). For a thread stopped by one of our
 * int3s, pass regs->rip = the breakpoint's address (the kernel reports it + 1): at the first
 * byte of a function the return address is at [rsp], one byte later the CFI may already say
 * otherwise (after a 1-byte push %rbp).
 *
 * Returns n, 1 <= n <= @max (a bad stack or unreadable memory just ends the list early),
 * -EINVAL for @max outside 1..BP_UNWIND_MAX_FRAMES, or -ESRCH when a live thread is gone (no
 * stack copy could be made). Running out of memory only loses cache entries. @regs and @stack are
 * only read, and need not outlive the call.
 */
int bp_unwind(struct bp_unwinder *u, pid_t tid, const struct user_regs_struct *regs,
	      const void *stack, size_t stack_len, uint64_t *pcs, int max);

/*
 * As bp_unwind() from a copy kept with an event (@stack required), possibly long after: the
 * thread has run on (or exited), so no stack memory beyond the copy is read (up to 8 MiB above
 * regs->rsp): the frames it would need end the list. Unwind tables are still read from the
 * target through @tid (any live thread of the process, or the process id).
 */
int bp_unwind_kept(struct bp_unwinder *u, pid_t tid, const struct user_regs_struct *regs,
		   const void *stack, size_t stack_len, uint64_t *pcs, int max);
