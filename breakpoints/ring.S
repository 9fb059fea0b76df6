/*
 * The ring routine (DESIGN.md, "Where the time goes"): the code a ring pad calls to append its
 * event to the event ring, a memfd region mapped in the target and in the tracer, with no stop.
 * It is not code of the tool: aspace.c copies these bytes into each scratch region of a traced
 * address space (they are position-independent; .Lring and .Lstack_hi, the region's own
 * constants, are written after the copy). The layout constants are struct bp_ring_hdr and
 * struct bp_ring_slot (breakpoints.h); static assertions in aspace.c check that the two agree.
 *
 * The pad (bp_insn_plan_pad() with a routine) is "lea -128(%rsp),%rsp; call routine;
 * lea 128(%rsp),%rsp; the displaced instructions; jmp back": the red zone is skipped, so on
 * entry here the stack is: the return into the pad, 128 bytes of red zone, then the function
 * entry's own stack (its [rsp] is the caller's return address).
 *
 * Every register and the flags are preserved. No call, so alignment does not matter. Any
 * number of threads may run it at once: the slot is claimed with lock xadd on the sequence
 * counter, written, and committed by a last store of seq + 1 (x86 keeps stores in order, and
 * the commit is a separate store after the string copy, as the SDM asks).
 */
#define H_NEXT 0
#define H_DRAINED 64
#define H_NSLOTS 128
#define H_MASK 136
#define H_SLOTSIZE 144
#define H_COPY 152
#define H_TRAPALL 160
#define H_NDECIDE 164
#define H_ACTS 168
#define H_SEEN 172
#define H_DECIDE 192
#define H_SLOTS 4096
#define S_COMMIT 0
#define S_SEQ 8
#define S_TSC 16
#define S_PAD 24
#define S_RET 32
#define S_RDI 40
#define S_RSP 48
#define S_RBP 56
#define S_RBX 64
#define S_R12 72
#define S_R13 80
#define S_R14 88
#define S_R15 96
#define S_TID 104
#define S_STKLEN 108
#define S_TRAP 112
#define S_STACK 128
#define PTHREAD_TID 0x2d0 /* glibc 2.36: offsetof(struct pthread, tid), as tracer/stall.c */
#define E 184		  /* the function entry's rsp, from ours after the six pushes */

	.section .rodata.bp_ring, "a"
	.globl bp_ring_routine, bp_ring_full_trap, bp_ring_decide_trap, bp_ring_data
	.globl bp_ring_routine_end, bp_ring_wait, bp_ring_wait_end
bp_ring_routine:
	pushfq
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	/* rdi 0, rsi 8, rdx 16, rcx 24, rax 32, flags 40, return into the pad 48 */
	mov .Lring(%rip), %rsi
	/*
	 * An activating event (its return address in decide[]: a constraint's B) counts itself in
	 * acts before it takes its sequence number: an event that takes a later one sees it (both
	 * are locked instructions) and stops too, until the tracer has handled this one. edi: what
	 * this one does after its commit (enum bp_ring_slot_trap); the first argument is still in
	 * its saved copy, 0(%rsp).
	 */
	xor %edi, %edi
	mov H_NDECIDE(%rsi), %eax
	test %eax, %eax
	jz 7f
	mov E(%rsp), %rdx
6:	cmp H_DECIDE-8(%rsi,%rax,8), %rdx
	je 9f
	dec %eax
	jnz 6b
	jmp 7f
9:	lock incl H_ACTS(%rsi)
	mov $2, %edi			/* BP_RING_SLOT_ACTIVATE */
7:	mov $1, %eax
	lock xadd %rax, H_NEXT(%rsi)	/* rax = this event's seq */
bp_ring_wait:				/* nothing written yet from here ... */
1:	mov %rax, %rdx
	sub H_DRAINED(%rsi), %rdx
	cmp H_NSLOTS(%rsi), %rdx
	jb 2f
bp_ring_full_trap:			/* full: the tracer drains at this stop; then look again */
	int3
	jmp 1b
bp_ring_wait_end:			/* ... to here */
2:	mov %rax, %rcx
	and H_MASK(%rsi), %rcx
	imul H_SLOTSIZE(%rsi), %rcx
	lea H_SLOTS(%rsi,%rcx), %rcx	/* rcx = the slot */
	mov %rax, S_SEQ(%rcx)
	mov (%rsp), %rdx
	mov %rdx, S_RDI(%rcx)
	/* Any event stops under trap-all (an instance is active) or while an activation is not
	 * handled yet; otherwise it goes on: no decision can delay it. Written before the commit. */
	test %edi, %edi
	jnz 10f
	cmpl $0, H_TRAPALL(%rsi)
	jne 11f
	mov H_ACTS(%rsi), %edx
	cmp H_SEEN(%rsi), %edx
	je 10f
11:	mov $1, %edi			/* BP_RING_SLOT_DECIDE */
10:	mov %edi, S_TRAP(%rcx)
	mov 48(%rsp), %rdx
	mov %rdx, S_PAD(%rcx)
	mov E(%rsp), %rdx
	mov %rdx, S_RET(%rcx)
	lea E(%rsp), %rdx
	mov %rdx, S_RSP(%rcx)
	mov %rbp, S_RBP(%rcx)
	mov %rbx, S_RBX(%rcx)
	mov %r12, S_R12(%rcx)
	mov %r13, S_R13(%rcx)
	mov %r14, S_R14(%rcx)
	mov %r15, S_R15(%rcx)
	mov %fs:PTHREAD_TID, %eax
	mov %eax, S_TID(%rcx)
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, S_TSC(%rcx)
	/* The stack top, for unwinding later: H_COPY bytes, fewer where .Lstack_hi (the end of
	 * the main thread's stack) comes first. */
	mov H_COPY(%rsi), %rax
	test %rax, %rax
	jz 4f
	lea E(%rsp), %rsi
	mov .Lstack_hi(%rip), %rdx
	sub %rsi, %rdx
	cmp %rax, %rdx
	jae 3f
	mov %rdx, %rax
3:	mov %eax, S_STKLEN(%rcx)
	lea S_STACK(%rcx), %rdi
	mov %rcx, %rdx
	mov %rax, %rcx
	shr $3, %rcx
	rep movsq			/* DF is clear at a function entry (the ABI) */
	mov %rdx, %rcx
	mov .Lring(%rip), %rsi
	jmp 5f
4:	movl $0, S_STKLEN(%rcx)
5:	mov S_SEQ(%rcx), %rax
	inc %rax
	mov %rax, S_COMMIT(%rcx)	/* the commit, last */
	cmpl $0, S_TRAP(%rcx)		/* must the thread stop (a decision)? */
	je 8f
bp_ring_decide_trap:			/* rcx = the slot, committed: the tracer decides */
	int3
8:	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	popfq
	ret
	.balign 8
bp_ring_data:
.Lring:	.quad 0				/* the ring's address in this process */
.Lstack_hi:
	.quad 0				/* the end of the main thread's stack, or 0 */
bp_ring_routine_end:

	.section .note.GNU-stack, "", @progbits
