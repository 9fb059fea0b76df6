/*
 * breakpoints/: everything about code in a traced address space. int3 planting and hiding, the
 * plan that resumes a hit without single-stepping (emulate the displaced instruction, or run a
 * relocated copy out of line in a scratch region mapped into the target), module maps, ELF
 * symbols (libelf), source lines (libdw) and syscall injection.
 *
 * Conventions (STYLE.md): functions return 0 (or a count) on success and -errno on failure;
 * results go through ret_* out-parameters, untouched on failure; destructors accept NULL.
 * Nothing here waits for any thread but the one it was handed, and nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct user_regs_struct;

/* ---- Displaced instructions (insn.c, the one Capstone boundary) ---- */

enum bp_resume_kind {
	BP_RESUME_SKIP, /* nop, endbr64: rip = addr + len */
	BP_RESUME_JMP,	/* jmp rel: rip = target */
	BP_RESUME_CALL, /* call rel: push addr + len, rip = target */
	BP_RESUME_RET,	/* ret [imm16]: rip = pop, rsp += imm */
	BP_RESUME_OOL,	/* anything else: rip = slot, where a relocated copy jumps back */
	BP_RESUME_PAD,	/* a jump pad (below): the thread goes on from where it trapped */
};

#define BP_SLOT_SIZE 64 /* bytes per out-of-line slot: a copy (<= 15) and two 14-byte jumps */
#define BP_MAX_FIX 5

/*
 * A jump pad replaces a function entry's first instructions (at least 5 bytes of them) with
 * "jmp pad" and runs, in its slot:
 *
 *	+0   mov %r11,-8(%rsp)	  the caller's r11, in the red zone (free at a function entry)
 *	+5   mov (%rsp),%r11	  the return address, for the tracer to read with the registers
 *	+9   int3		  the stop: GETREGS and PTRACE_CONT, nothing else
 *	+10  mov -8(%rsp),%r11	  r11 as it was
 *	+15  the displaced instructions, relocated
 *	     jmp *0(%rip); .quad entry + k
 */
#define BP_PAD_TRAP 9
#define BP_PAD_RESTORE 10
#define BP_PAD_BODY 15
#define BP_PAD_MIN 5  /* a rel32 jump */
#define BP_PAD_MAX 16 /* bytes of the entry a pad may displace */

struct bp_insn {
	enum bp_resume_kind kind;
	uint8_t len;	 /* length of the original instruction */
	int8_t cond;	 /* a conditional branch's condition code (0-15, as in jcc), or -1 */
	uint64_t target; /* JMP, CALL: absolute target; RET: bytes popped besides the address */
	uint8_t code[BP_SLOT_SIZE]; /* OOL: the slot's code, relocated for the slot's address */
	uint8_t code_len;
	/*
	 * OOL and PAD: where a thread whose rip is at slot + off would be in the original code,
	 * and whether it has already trapped there (the call was seen). A place not listed is
	 * inside a pad's sequence: the thread must be stepped out of it first.
	 */
	uint8_t nfix;
	struct {
		uint8_t off;
		bool trapped;
		uint64_t orig;
	} fix[BP_MAX_FIX];
	/* PAD: the entry's bytes displaced (len is their total), and where each instruction of
	 * them begins in the original and in the pad's body. */
	uint8_t ninsn;
	uint8_t insn_off[4], body_off[4];
	/* PAD: where the displaced instructions begin in the slot (BP_PAD_BODY, or
	 * BP_RING_PAD_BODY), and whether it is a ring pad (no stop: below). */
	uint8_t body;
	bool ring;
};

/*
 * Decodes the instruction in @code (@size bytes available, the original bytes at @addr) and
 * plans its resumption; for an OOL plan, the copy is relocated to run at @slot. Returns 0,
 * -EILSEQ for bytes that do not decode, -ERANGE when a RIP-relative displacement cannot reach
 * from @slot, -ENOTSUP for instructions that cannot be displaced (indirect calls, ...).
 */
int bp_insn_plan(const uint8_t *code, size_t size, uint64_t addr, uint64_t slot,
		 struct bp_insn *ret_insn);

/* True when the plan needs a scratch slot (and so a relocation target). */
bool bp_insn_needs_slot(const uint8_t *code, size_t size, uint64_t addr);

/*
 * A ring pad records its event without a stop: it calls the ring routine (ring.S) of its
 * scratch region, which appends the event to the event ring (below), and goes on:
 *
 *	+0   lea -128(%rsp),%rsp   the red zone stays the caller's
 *	+5   call routine
 *	+10  lea 128(%rsp),%rsp
 *	+18  the displaced instructions, relocated
 *	     jmp *0(%rip); .quad entry + k
 */
#define BP_RING_PAD_CALL 5
#define BP_RING_PAD_RET 10 /* the return address the routine sees: names the pad */
#define BP_RING_PAD_BODY 18

/*
 * Plans a jump pad for the function entry @addr (its original bytes in @code), running in the
 * slot at @slot: whole plain instructions (no branch, call or return) covering BP_PAD_MIN to
 * BP_PAD_MAX bytes. With @routine (the ring routine of the slot's region), a ring pad, else a
 * trapping one. Returns 0, or -ENOTSUP when the entry does not begin that way, -ERANGE when
 * the slot is out of reach. The patch for the entry is bp_insn_pad_patch().
 */
int bp_insn_plan_pad(const uint8_t *code, size_t size, uint64_t addr, uint64_t slot,
		     uint64_t routine, struct bp_insn *ret_insn);
/* The bytes that replace the entry: "jmp slot" and int3s over the rest of the displaced ones. */
void bp_insn_pad_patch(const struct bp_insn *pad, uint64_t addr, uint64_t slot, uint8_t *ret_bytes);

/* Whether a conditional branch with condition code @cond (struct bp_insn.cond) is taken with
 * these flags (the EFLAGS register). */
bool bp_insn_cond_taken(int cond, uint64_t eflags);

/*
 * Finds the relative jumps in the function @code (@size bytes, at @addr) whose target is
 * @target (a function's own entry: a retry loop, as in glibc's pthread_spin_lock). Writes
 * their addresses to @ret_addrs (at most @max) and returns how many there are.
 */
size_t bp_insn_find_jumps_to(const uint8_t *code, size_t size, uint64_t addr, uint64_t target,
			     uint64_t *ret_addrs, size_t max);

/*
 * Whether the code of the function @code (@size bytes, at @addr) from @from to @to runs only
 * straight through: no instruction in [@from, @to) that can send control elsewhere than the
 * next one (a call comes back to it), no jump or call in the function that lands in
 * (@from, @to], and @to the start of an instruction. Then @to executes only right after @from,
 * in the same pass. A function with an indirect jump (a switch's table) is never straight.
 */
bool bp_insn_straight(const uint8_t *code, size_t size, uint64_t addr, uint64_t from,
		      uint64_t to);

/* ---- Target memory (mem.c): /proc/PID/mem, which writes through read-only text ---- */

int bp_mem_open(pid_t pid, int *ret_fd);
int bp_mem_read(int fd, uint64_t addr, void *buf, size_t len);	/* -EFAULT, -EIO, -ESRCH */
int bp_mem_write(int fd, uint64_t addr, const void *buf, size_t len);

/* ---- ELF files (elf.c, the one libelf boundary) ---- */

struct bp_elf;

/* Opens @path. -ENOENT, -ENOEXEC (not ELF), -errno. */
int bp_elf_open(const char *path, struct bp_elf **ret_elf);
void bp_elf_close(struct bp_elf *elf);
/* Hex build-id, or NULL when the file has none. Valid until bp_elf_close(). */
const char *bp_elf_build_id(const struct bp_elf *elf);
/* Lowest PT_LOAD p_vaddr, page-aligned down: the runtime base minus this is the load bias. */
uint64_t bp_elf_first_vaddr(const struct bp_elf *elf);
/* True for an executable without PT_INTERP (statically linked). */
bool bp_elf_is_static(const struct bp_elf *elf);
/* Number of symbols in .symtab and .dynsym together. */
size_t bp_elf_symbol_count(const struct bp_elf *elf);
/*
 * Calls @cb for every defined function symbol of .dynsym and .symtab (names may repeat), with
 * its value and size. Stops and returns what @cb returned when non-zero.
 */
int bp_elf_foreach_func(const struct bp_elf *elf,
			int (*cb)(void *ctx, const char *name, uint64_t value, uint64_t size),
			void *ctx);

/* ---- Source lines (dwarf.c, the one libdw boundary) ---- */

struct bp_symbolizer;

int bp_symbolizer_create(pid_t pid, struct bp_symbolizer **ret_sym);
void bp_symbolizer_destroy(struct bp_symbolizer *sym);
/* Re-reads the module list (after dlopen); lookups made before stay valid. */
int bp_symbolizer_refresh(struct bp_symbolizer *sym);
/* Where an address is in the sources; the strings belong to the symbolizer (valid until it is
 * destroyed or refreshed). */
struct bp_source {
	const char *file; /* basename, or NULL */
	int line;	  /* 0 when file is NULL */
	const char *func; /* or NULL; from DWARF when there is one (unmangled), else the symbol */
	/* When @addr is in code inlined into func: where func itself is there (the call line of
	 * the outermost inlined scope), the place a call's return address should show. Else
	 * NULL and 0. */
	const char *call_file;
	int call_line;
};

/*
 * The source position of @addr: its function from the symbol tables, and with @lines its file
 * and line from DWARF (which loads the module's line tables and debug info: large for a
 * system library with its debug package installed). Returns 0, or -ENOENT when nothing is
 * known of it.
 */
int bp_symbolizer_frame(struct bp_symbolizer *sym, uint64_t addr, bool lines,
			struct bp_source *ret_src);

/*
 * Writes "file.c:12 func" (or "func" without line info, or "file.c:12") for @addr into @buf.
 * Returns the length, or -ENOENT when nothing is known of @addr.
 */
int bp_symbolizer_lookup(struct bp_symbolizer *sym, uint64_t addr, char *buf, size_t size);

/* ---- Address spaces (aspace.c) ---- */

struct bp_module {
	char *path;
	const char *name;  /* basename of path, inside path */
	char *build_id;	   /* hex, or NULL */
	uint64_t base;	   /* start of the mapping at file offset 0 */
	uint64_t end;	   /* end of its last mapping */
	uint64_t text_lo;  /* first executable mapping, for gadgets */
	bool system;	   /* glibc's own (libc, ld.so, libpthread...): calls from it are internal */
	bool wildcard;	   /* a system library (/lib, /usr/lib): its frames match any frame */
	bool seen;	   /* scratch flag of bp_aspace_refresh() */
	struct bp_module *next;
};

struct bp_breakpoint {
	uint64_t addr;
	uint8_t orig[BP_PAD_MAX]; /* the bytes the patch replaced */
	uint8_t patch_len;	  /* 1 for an int3; a pad's displaced bytes */
	uint64_t trap;		  /* the int3 a hit stops at: addr, or in the pad */
	int tag;		  /* the caller's: what the address means */
	uint64_t span_end;	  /* the caller's: where the code the address begins ends, or 0 */
	uint32_t group;		  /* the caller's: which of its entries the address came from */
	uint64_t alias;		  /* the caller's: another address it stands for, or 0 */
	uint64_t slot;		  /* OOL slot or pad address, 0 if none */
	struct bp_insn insn;
	struct bp_module *module;
	struct bp_breakpoint *hnext; /* hash chain, by addr */
	struct bp_breakpoint *tnext; /* hash chain of pads, by trap */
};

struct bp_aspace;

/*
 * Creates the address space of process @pid, opening its /proc/PID/mem. The caller holds one
 * reference; bp_aspace_unref() drops it (the last one frees; it never touches the target).
 */
int bp_aspace_create(pid_t pid, struct bp_aspace **ret_as);
struct bp_aspace *bp_aspace_ref(struct bp_aspace *as);
void bp_aspace_unref(struct bp_aspace *as);
/*
 * A copy for a forked child @pid: the same modules, breakpoints and scratch regions at the
 * same addresses (fork copied them), its own /proc/PID/mem.
 */
int bp_aspace_clone(const struct bp_aspace *as, pid_t pid, struct bp_aspace **ret_as);

/*
 * Re-reads /proc/PID/maps. Calls @added for each module that appeared (in load order) and
 * forgets the modules that went away, with their breakpoints (their code is gone: nothing is
 * written). Returns the number of modules added, or -errno.
 */
int bp_aspace_refresh(struct bp_aspace *as,
		      void (*added)(void *ctx, struct bp_aspace *as, struct bp_module *m), void *ctx);
struct bp_module *bp_aspace_modules(const struct bp_aspace *as);
/* The module containing @addr, or NULL. */
struct bp_module *bp_aspace_module_at(const struct bp_aspace *as, uint64_t addr);
struct bp_module *bp_aspace_main_module(const struct bp_aspace *as);
int bp_aspace_memfd(const struct bp_aspace *as);

/*
 * Plants an int3 at @addr, tagged @tag, and prepares its resumption. When the instruction needs
 * an out-of-line slot and no scratch region within reach has one free, maps a new region near
 * @addr by making thread @tid (stopped, owned by the caller) execute mmap; a signal that thread
 * received meanwhile is stored in *ret_pending_sig (0 if none) for the caller to deliver.
 * -EEXIST if a breakpoint is already there.
 */
int bp_aspace_insert(struct bp_aspace *as, pid_t tid, uint64_t addr, int tag,
		     int *ret_pending_sig);
/*
 * Plants a breakpoint at a function's entry @addr (@size bytes long): a jump pad when the entry
 * allows one and nothing in the function jumps into the bytes it displaces, an int3 otherwise.
 * As bp_aspace_insert() otherwise. Threads must not stand inside the displaced bytes: true at
 * an exec stop and for a library just loaded; after an attach, see bp_aspace_patched_fixup().
 */
int bp_aspace_insert_entry(struct bp_aspace *as, pid_t tid, uint64_t addr, uint64_t size,
			   int tag, int *ret_pending_sig);
/* The breakpoint planted at @addr, or NULL. */
struct bp_breakpoint *bp_aspace_lookup(const struct bp_aspace *as, uint64_t addr);
/* The breakpoint a thread stopped by SIGTRAP with this @rip has hit, or NULL. */
struct bp_breakpoint *bp_aspace_lookup_trap(const struct bp_aspace *as, uint64_t rip);
/*
 * For a thread whose @rip is inside bytes a pad displaced (it stood there when the pad was
 * planted): the same place in the pad's copy. Returns 0 and sets *ret_rip, or -ENOENT.
 */
int bp_aspace_patched_fixup(const struct bp_aspace *as, uint64_t rip, uint64_t *ret_rip);
/* Restores every original byte. The breakpoints are forgotten. */
int bp_aspace_remove_all(struct bp_aspace *as);
/* Reads target memory, showing the original bytes where int3s are planted. */
int bp_aspace_read(const struct bp_aspace *as, uint64_t addr, void *buf, size_t len);
size_t bp_aspace_breakpoint_count(const struct bp_aspace *as);

/* True when @rip lies in one of this space's scratch regions. */
bool bp_aspace_in_scratch(const struct bp_aspace *as, uint64_t rip);
/*
 * For a thread whose @rip is inside a slot: the original address it stands for, and whether it
 * has trapped on the way there (its call was already seen: sent back to the entry, it will hit
 * the breakpoint a second time for the same call). Returns 0, -EAGAIN when the thread is in the
 * middle of a pad's sequence (single-step it until this succeeds), -ENOENT when @rip is not in
 * a slot.
 */
int bp_aspace_scratch_fixup(const struct bp_aspace *as, uint64_t rip, uint64_t *ret_rip,
			    bool *ret_trapped);
/*
 * A thread stopped at a pad's int3 (or about to be), put back at the function's entry as if it
 * had never gone in: @regs's rip, and r11 from where the pad saved it. Returns 0 or -errno.
 */
int bp_pad_rewind(const struct bp_aspace *as, const struct bp_breakpoint *bp,
		  struct user_regs_struct *regs);
/* Unmaps every scratch region through thread @tid (stopped). */
int bp_aspace_unmap_scratch(struct bp_aspace *as, pid_t tid, int *ret_pending_sig);

/*
 * Applies a breakpoint's resumption to a thread stopped at its int3: @regs (a struct
 * user_regs_struct, rip = addr + 1) is changed so that continuing runs the original instruction.
 * May write the thread's stack (CALL). Returns 0 or -errno.
 */
int bp_breakpoint_resume(const struct bp_aspace *as, const struct bp_breakpoint *bp,
			 struct user_regs_struct *regs);

/* ---- The event ring (ring.S; the tracer creates, maps and drains it) ---- */

/*
 * A memfd region mapped shared in the tracer and in the target: this header (one page), then
 * nslots slots of slot_size bytes. Ring pads append to it with no stop (ring.S); the tracer
 * consumes committed slots. The offsets are ring.S's: change both together.
 */
#define BP_RING_HDR_SIZE 4096
#define BP_RING_MAX_DECIDE 64
#define BP_RING_SLOT_HEAD 128 /* a slot's fixed part; its stack copy follows */

struct bp_ring_hdr {
	uint64_t next;	  /* the next sequence number (lock xadd by the pads) */
	uint64_t pad0[7]; /* its own cache line */
	uint64_t drained; /* slots [0, drained) consumed: seq s waits while s - drained >= nslots */
	uint64_t pad1[7];
	uint64_t nslots, mask, slot_size, copy; /* set once; copy: stack bytes per slot (x 8) */
	uint32_t trap_all; /* every event stops after its slot (BP_RING_TRAP_DECIDE) */
	/* decide[0..ndecide): return addresses of activating events (a constraint's B): they
	 * count themselves in acts before taking their sequence number, and stop */
	uint32_t ndecide;
	/* acts != acts_seen: an activation the tracer has not handled yet; every event whose
	 * sequence number comes after it stops too, as under trap_all */
	uint32_t acts, acts_seen;
	uint64_t pad2[2];
	uint64_t decide[BP_RING_MAX_DECIDE];
};

struct bp_ring_slot {
	uint64_t commit;   /* seq + 1, stored last; BP_RING_CONSUMED(seq) once the tracer took it */
	uint64_t seq, tsc; /* rdtsc */
	uint64_t pad;	   /* the return into the ring pad: which breakpoint */
	uint64_t ret;	   /* [rsp] at the function entry: the caller's return address */
	uint64_t rdi;	   /* the first argument (the object) */
	uint64_t rsp, rbp, rbx, r12, r13, r14, r15; /* at the entry: where unwinding starts */
	uint32_t tid;	   /* glibc's struct pthread tid (%fs:0x2d0) */
	uint32_t stack_len; /* bytes of stack copied from rsp */
	uint32_t trap;	    /* enum bp_ring_slot_trap: whether the writer stops after the commit */
	uint32_t reserved0;
	uint64_t reserved;
	uint8_t stack[]; /* hdr->copy bytes */
};

/* What a slot's writer does after its commit (set before the commit). */
enum bp_ring_slot_trap {
	BP_RING_SLOT_GOES,     /* goes on: no decision needed */
	BP_RING_SLOT_DECIDE,   /* stops (BP_RING_TRAP_DECIDE): trap_all, or an unseen activation */
	BP_RING_SLOT_ACTIVATE, /* stops, and counted in acts: its return address is in decide[] */
};

/* The tracer's mark on a slot it took: ~seq, which no seq + 1 of a run can equal. */
#define BP_RING_CONSUMED(seq) (~(uint64_t)(seq))

enum bp_ring_trap {
	BP_RING_TRAP_NONE,
	BP_RING_TRAP_FULL,   /* no free slot: drain and resume (it looks again) */
	BP_RING_TRAP_DECIDE, /* its slot is committed (rcx points to it): decide, then resume */
};

/*
 * Ring pads from now on: pads planted in @as call the ring routine, which a scratch region gets
 * (in existing regions with room, and in every new one) with @ring (the ring's address in the
 * target) and @stack_hi (the end of the main thread's stack: stack copies stop there; 0 if
 * unknown). Returns 0 or -errno.
 */
int bp_aspace_set_ring(struct bp_aspace *as, uint64_t ring, uint64_t stack_hi);
/* The ring's address in this space, or 0. */
uint64_t bp_aspace_ring(const struct bp_aspace *as);
/* For a thread stopped by SIGTRAP at @rip (one past the int3): which ring trap, if any. */
enum bp_ring_trap bp_aspace_ring_trap(const struct bp_aspace *as, uint64_t rip);
/*
 * For a thread in the ring routine waiting for room (nothing of its event written yet; it
 * cannot go on before the tracer drains): its registers as they were at the function's entry
 * (rip = the entry), for a signal's site. Returns 0, or -ENOENT when it is not waiting.
 */
int bp_aspace_ring_waiting(const struct bp_aspace *as, const struct user_regs_struct *regs,
			   struct user_regs_struct *ret_entry);
/*
 * For a thread left waiting there after single-steps: the flags the routine saved (and will
 * restore) lose the trap flag the kernel had set for the steps. 0, -ENOENT (not waiting), -errno.
 */
int bp_aspace_ring_clear_tf(const struct bp_aspace *as, const struct user_regs_struct *regs);
/* The ring pad a slot's pad field (struct bp_ring_slot.pad) names, or NULL. */
struct bp_breakpoint *bp_aspace_lookup_ring_pad(const struct bp_aspace *as, uint64_t pad_ret);
/*
 * Makes stopped thread @tid execute syscall @nr (as bp_inject_syscall(), at a gadget of the
 * space: a scratch region's, or borrowed program text while none exists). Returns 0 or -errno.
 */
int bp_aspace_inject(struct bp_aspace *as, pid_t tid, long nr, const long args[6], long *ret_val,
		     int *ret_pending_sig);

/* ---- Syscall injection (inject.c) ---- */

/* The gadget's bytes: int3; syscall; int3. */
#define BP_GADGET_CODE {0xcc, 0x0f, 0x05, 0xcc}
#define BP_GADGET_SYSCALL 1 /* offset of the syscall instruction */
#define BP_GADGET_LEN 4

/*
 * Makes stopped thread @tid execute syscall @nr with @args at the gadget @gadget
 * (BP_GADGET_CODE), waits for it (only for @tid), and restores its registers. The result (or -errno from
 * the target) goes to *ret_val. A signal that arrived meanwhile is kept for the caller in
 * *ret_pending_sig. -ESRCH when the thread vanished.
 */
int bp_inject_syscall(pid_t tid, uint64_t gadget, long nr, const long args[6], long *ret_val,
		      int *ret_pending_sig);
