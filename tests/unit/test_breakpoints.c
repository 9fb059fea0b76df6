/*
 * breakpoints/ unit tests: instruction plans (crafted bytes, and relocated copies executed for
 * real), ELF symbols, source lines, target memory, and an address space on a real traced child:
 * plant, hit, resume out of line, remove, unmap, and the child's code equals the file's again.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"
#include "ckmain.h"

#define ADDR 0x555555554000ull

static struct bp_insn
plan_ok(const uint8_t *code, size_t len, uint64_t slot)
{
	struct bp_insn p;
	uint8_t buf[16] = {0};

	memcpy(buf, code, len);
	ck_assert_int_eq(bp_insn_plan(buf, sizeof(buf), ADDR, slot, &p), 0);
	ck_assert_uint_eq(p.len, len);
	return p;
}

START_TEST(plan_emulated)
{
	static const uint8_t nop[] = {0x90}, endbr[] = {0xf3, 0x0f, 0x1e, 0xfa}, ret[] = {0xc3},
			     ret8[] = {0xc2, 0x08, 0x00}, jmp32[] = {0xe9, 0x10, 0x00, 0x00, 0x00},
			     jmp8[] = {0xeb, 0xfe}, call[] = {0xe8, 0xfb, 0xff, 0xff, 0xff};
	struct bp_insn p;

	ck_assert_int_eq(plan_ok(nop, 1, 0).kind, BP_RESUME_SKIP);
	ck_assert_int_eq(plan_ok(endbr, 4, 0).kind, BP_RESUME_SKIP);
	p = plan_ok(ret, 1, 0);
	ck_assert_int_eq(p.kind, BP_RESUME_RET);
	ck_assert_uint_eq(p.target, 0);
	p = plan_ok(ret8, 3, 0);
	ck_assert_int_eq(p.kind, BP_RESUME_RET);
	ck_assert_uint_eq(p.target, 8);
	p = plan_ok(jmp32, 5, 0);
	ck_assert_int_eq(p.kind, BP_RESUME_JMP);
	ck_assert_uint_eq(p.target, ADDR + 5 + 0x10);
	p = plan_ok(jmp8, 2, 0);
	ck_assert_int_eq(p.kind, BP_RESUME_JMP);
	ck_assert_uint_eq(p.target, ADDR); /* jmp . */
	p = plan_ok(call, 5, 0);
	ck_assert_int_eq(p.kind, BP_RESUME_CALL);
	ck_assert_uint_eq(p.target, ADDR);
}
END_TEST

START_TEST(plan_copy_and_jump_back)
{
	/* mov 0x10(%rdi),%eax: glibc 2.36's pthread_mutex_lock begins with it. */
	static const uint8_t mov[] = {0x8b, 0x47, 0x10};
	const uint64_t slot = ADDR + 0x100000;
	struct bp_insn p = plan_ok(mov, 3, slot);
	uint64_t back;

	ck_assert_int_eq(p.kind, BP_RESUME_OOL);
	ck_assert_uint_eq(p.code_len, 3 + 14);
	ck_assert_mem_eq(p.code, mov, 3);
	ck_assert_uint_eq(p.code[3], 0xff);
	ck_assert_uint_eq(p.code[4], 0x25);
	memcpy(&back, p.code + 9, 8);
	ck_assert_uint_eq(back, ADDR + 3);
	ck_assert_uint_eq(p.nfix, 2);
	ck_assert_uint_eq(p.fix[0].off, 0);
	ck_assert_uint_eq(p.fix[0].orig, ADDR);
	ck_assert_uint_eq(p.fix[1].off, 3);
	ck_assert_uint_eq(p.fix[1].orig, ADDR + 3);
}
END_TEST

START_TEST(plan_rip_relative)
{
	/* mov 0x100(%rip),%rax */
	static const uint8_t mov[] = {0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00};
	struct bp_insn p = plan_ok(mov, 7, ADDR - 0x1000);
	int32_t disp;
	uint8_t buf[16] = {0};

	ck_assert_int_eq(p.kind, BP_RESUME_OOL);
	memcpy(&disp, p.code + 3, 4);
	ck_assert_int_eq(disp, 0x100 + 0x1000); /* the same target, seen from the slot */
	memcpy(buf, mov, sizeof(mov));
	ck_assert_int_eq(bp_insn_plan(buf, sizeof(buf), ADDR, ADDR + (3ull << 31), &p), -ERANGE);
	ck_assert(bp_insn_needs_slot(buf, sizeof(buf), ADDR));
}
END_TEST

START_TEST(plan_conditional_branch)
{
	static const uint8_t je8[] = {0x74, 0x10}, jne32[] = {0x0f, 0x85, 0x00, 0x02, 0x00, 0x00};
	struct bp_insn p = plan_ok(je8, 2, ADDR + 0x4000);
	uint64_t to;

	ck_assert_int_eq(p.kind, BP_RESUME_OOL);
	ck_assert_uint_eq(p.code[0], 0x74);
	ck_assert_uint_eq(p.code[1], 14);
	memcpy(&to, p.code + 2 + 6, 8);
	ck_assert_uint_eq(to, ADDR + 2);
	memcpy(&to, p.code + 16 + 6, 8);
	ck_assert_uint_eq(to, ADDR + 2 + 0x10);
	ck_assert_uint_eq(p.nfix, 3);
	ck_assert_uint_eq(p.fix[2].off, 16);
	ck_assert_uint_eq(p.fix[2].orig, ADDR + 0x12);

	p = plan_ok(jne32, 6, ADDR + 0x4000);
	ck_assert_uint_eq(p.code[0], 0x75); /* the short form of the same condition */
	memcpy(&to, p.code + 16 + 6, 8);
	ck_assert_uint_eq(to, ADDR + 6 + 0x200);
}
END_TEST

START_TEST(plan_refusals)
{
	static const uint8_t call_rax[16] = {0xff, 0xd0}, bad[16] = {0x06};
	struct bp_insn p;

	ck_assert_int_eq(bp_insn_plan(call_rax, 16, ADDR, ADDR, &p), -ENOTSUP);
	ck_assert_int_eq(bp_insn_plan(bad, 16, ADDR, ADDR, &p), -EILSEQ);
	ck_assert(!bp_insn_needs_slot(bad, 16, ADDR));
}
END_TEST

START_TEST(pad_plans)
{
	/* glibc 2.36's pthread_mutex_lock: mov 0x10(%rdi),%eax; mov %eax,%edx; and ... */
	static const uint8_t lock[16] = {0x8b, 0x47, 0x10, 0x89, 0xc2, 0x81, 0xe2, 0x7f, 0x01};
	/* pthread_spin_lock: lock decl (%rdi); jne: a branch among the first 5 bytes */
	static const uint8_t spin[16] = {0xf0, 0xff, 0x0f, 0x75, 0x0b};
	/* mov 0x100(%rip),%rax: re-aimed in the pad's body */
	static const uint8_t riprel[16] = {0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00};
	const uint64_t slot = ADDR + 0x10000;
	uint8_t patch[BP_PAD_MAX];
	struct bp_insn p;
	uint64_t back;
	int32_t rel;

	ck_assert_int_eq(bp_insn_plan_pad(lock, 16, ADDR, slot, 0, &p), 0);
	ck_assert_int_eq(p.kind, BP_RESUME_PAD);
	ck_assert_uint_eq(p.len, 5);
	ck_assert_uint_eq(p.ninsn, 2);
	ck_assert_uint_eq(p.code[BP_PAD_TRAP], 0xcc);
	ck_assert_mem_eq(p.code + BP_PAD_BODY, lock, 5);
	memcpy(&back, p.code + BP_PAD_BODY + 5 + 6, 8);
	ck_assert_uint_eq(back, ADDR + 5);
	bp_insn_pad_patch(&p, ADDR, slot, patch);
	ck_assert_uint_eq(patch[0], 0xe9);
	memcpy(&rel, patch + 1, 4);
	ck_assert_uint_eq(ADDR + 5 + (uint64_t)(int64_t)rel, slot);

	ck_assert_int_eq(bp_insn_plan_pad(spin, 16, ADDR, slot, 0, &p), -ENOTSUP);

	ck_assert_int_eq(bp_insn_plan_pad(riprel, 16, ADDR, slot, 0, &p), 0);
	memcpy(&rel, p.code + BP_PAD_BODY + 3, 4);
	ck_assert_int_eq(rel, 0x100 - 0x10000 - BP_PAD_BODY); /* the same target, from the body */
	ck_assert_uint_eq(slot + BP_PAD_BODY + 7 + (uint64_t)(int64_t)rel, ADDR + 7 + 0x100);
}
END_TEST

START_TEST(conditions_from_flags)
{
	const uint64_t CF = 0x1, ZF = 0x40, SF = 0x80, OF = 0x800;

	ck_assert(bp_insn_cond_taken(0x4, ZF));		/* je */
	ck_assert(!bp_insn_cond_taken(0x5, ZF));	/* jne */
	ck_assert(bp_insn_cond_taken(0x2, CF));		/* jb */
	ck_assert(bp_insn_cond_taken(0x7, 0));		/* ja */
	ck_assert(!bp_insn_cond_taken(0x7, ZF));
	ck_assert(bp_insn_cond_taken(0xc, SF));		/* jl: SF != OF */
	ck_assert(!bp_insn_cond_taken(0xc, SF | OF));
	ck_assert(bp_insn_cond_taken(0xf, 0));		/* jg: !ZF && SF == OF */
	ck_assert(!bp_insn_cond_taken(0xf, ZF));
	ck_assert(bp_insn_cond_taken(0xe, ZF));		/* jle */
	ck_assert(bp_insn_cond_taken(0x0, OF));		/* jo */
	ck_assert(bp_insn_cond_taken(0x9, 0));		/* jns */
}
END_TEST

START_TEST(jumps_back_to_the_entry)
{
	/* glibc 2.36's pthread_spin_lock: lock decl (%rdi); jne +9; xor %eax,%eax; ret;
	 * pause; cmpl $0,(%rdi); jg <entry>; jmp <pause> */
	static const uint8_t spin[] = {0xf0, 0xff, 0x0f, 0x75, 0x03, 0x31, 0xc0, 0xc3, 0xf3,
				       0x90, 0x83, 0x3f, 0x00, 0x7f, 0xf1, 0xeb, 0xf7};
	uint64_t at[4];
	struct bp_insn p;

	ck_assert_uint_eq(bp_insn_find_jumps_to(spin, sizeof(spin), ADDR, ADDR, at, 4), 1);
	ck_assert_uint_eq(at[0], ADDR + 13);
	ck_assert_int_eq(bp_insn_plan(spin + 13, sizeof(spin) - 13, ADDR + 13, ADDR + 13, &p), 0);
	ck_assert_int_eq(p.cond, 0xf);
	ck_assert_uint_eq(p.fix[2].orig, ADDR);
	ck_assert_uint_eq(bp_insn_find_jumps_to(spin, sizeof(spin), ADDR, ADDR + 8, at, 4), 2);
	ck_assert_uint_eq(bp_insn_find_jumps_to(spin, sizeof(spin), ADDR, ADDR + 1, at, 4), 0);
}
END_TEST

START_TEST(straight_runs_of_code)
{
	/* mov x(%rip),%rax; add $7,%rax; xchg %rax,x(%rip); ret; then jmp back to the add */
	static const uint8_t rmw[] = {0x48, 0x8b, 0x05, 0, 0, 0, 0, 0x48, 0x83, 0xc0, 0x07,
				      0x48, 0x87, 0x05, 0, 0, 0, 0, 0xc3, 0xeb, 0xec};
	/* test %rax,%rax; je +2; xor %eax,%eax; ret */
	static const uint8_t cond[] = {0x48, 0x85, 0xc0, 0x74, 0x02, 0x31, 0xc0, 0xc3};
	/* call *%rax; nop; ret; jmp *%rax */
	static const uint8_t ind[] = {0xff, 0xd0, 0x90, 0xc3, 0xff, 0xe0};
	size_t rmw_ret = sizeof(rmw) - 2; /* the function without its jump back */

	ck_assert(bp_insn_straight(rmw, rmw_ret, ADDR, ADDR, ADDR + 11));
	ck_assert(bp_insn_straight(rmw, rmw_ret, ADDR, ADDR, ADDR + 18));
	ck_assert(!bp_insn_straight(rmw, rmw_ret, ADDR, ADDR, ADDR + 12)); /* mid-instruction */
	ck_assert(!bp_insn_straight(rmw, rmw_ret, ADDR, ADDR + 11, ADDR));
	ck_assert(!bp_insn_straight(rmw, rmw_ret, ADDR, ADDR, ADDR + 19)); /* past the end */
	/* The jump back lands inside the run from the mov, not inside the one from the add. */
	ck_assert(!bp_insn_straight(rmw, sizeof(rmw), ADDR, ADDR, ADDR + 11));
	ck_assert(bp_insn_straight(rmw, sizeof(rmw), ADDR, ADDR + 7, ADDR + 11));
	/* A conditional branch in the run leaves it; one that lands at its end enters it. */
	ck_assert(!bp_insn_straight(cond, sizeof(cond), ADDR, ADDR, ADDR + 7));
	ck_assert(!bp_insn_straight(cond, sizeof(cond), ADDR, ADDR + 5, ADDR + 7));
	ck_assert(bp_insn_straight(cond, sizeof(cond), ADDR, ADDR, ADDR + 3));
	/* A call comes back; an indirect jump anywhere in the function may land anywhere. */
	ck_assert(bp_insn_straight(ind, 4, ADDR, ADDR, ADDR + 2));
	ck_assert(!bp_insn_straight(ind, sizeof(ind), ADDR, ADDR, ADDR + 2));
}
END_TEST

/*
 * A relocated copy run for real: "original" code at X loads a RIP-relative quad and returns;
 * its first instruction is planned into a slot elsewhere in the page and called there.
 */
START_TEST(relocated_copy_runs)
{
	uint8_t *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static const uint64_t magic = 0x1122334455667788ull;
	uint8_t *x, *data, *slot;
	struct bp_insn p;
	int32_t disp;

	ck_assert_ptr_ne(page, MAP_FAILED);
	x = page, data = page + 64, slot = page + 4096;
	memcpy(data, &magic, 8);
	x[0] = 0x48, x[1] = 0x8b, x[2] = 0x05; /* mov disp32(%rip),%rax */
	disp = (int32_t)(data - (x + 7));
	memcpy(x + 3, &disp, 4);
	x[7] = 0xc3; /* ret */
	ck_assert_int_eq(bp_insn_plan(x, 16, (uint64_t)x, (uint64_t)slot, &p), 0);
	memcpy(slot, p.code, p.code_len);
	uint64_t (*fn)(void) = (uint64_t(*)(void))(void *)slot;
	ck_assert_uint_eq(fn(), magic);

	/* A conditional branch, both ways: "test %edi,%edi; je" planned at the je. */
	uint8_t *f = page + 256;
	const uint8_t body[] = {0x85, 0xff, 0x74, 0x06, 0xb8, 1, 0, 0, 0, 0xc3,
				0xb8, 2, 0, 0, 0, 0xc3};
	memcpy(f, body, sizeof(body));
	ck_assert_int_eq(bp_insn_plan(f + 2, 16, (uint64_t)(f + 2), (uint64_t)(slot + 64), &p), 0);
	memcpy(slot + 64, p.code, p.code_len);
	/* Enter at the slot after the test: flags set by a tiny prologue in the page. */
	uint8_t *pro = page + 512;
	const uint8_t pro_code[] = {0x85, 0xff, 0xff, 0x25, 0, 0, 0, 0};
	memcpy(pro, pro_code, sizeof(pro_code));
	uint64_t to = (uint64_t)(slot + 64);
	memcpy(pro + 8, &to, 8);
	int (*g)(int) = (int (*)(int))(void *)pro;
	ck_assert_int_eq(g(0), 2);
	ck_assert_int_eq(g(5), 1);
	munmap(page, 8192);
}
END_TEST

static int
find_name(void *ctx, const char *name, uint64_t value, uint64_t size)
{
	const char *want = ctx;
	return strcmp(name, want) == 0 ? 1 : 0;
}

START_TEST(elf_symbols_and_build_id)
{
	struct bp_elf *e;

	ck_assert_int_eq(bp_elf_open("/proc/self/exe", &e), 0);
	ck_assert_ptr_nonnull(bp_elf_build_id(e));
	ck_assert_uint_eq(strlen(bp_elf_build_id(e)), 40);
	ck_assert(!bp_elf_is_static(e));
	ck_assert_int_eq(bp_elf_foreach_func(e, find_name, (void *)"main"), 1);
	ck_assert_int_eq(bp_elf_foreach_func(e, find_name, (void *)"no_such_function"), 0);
	bp_elf_close(e);
	ck_assert_int_eq(bp_elf_open("/nonexistent", &e), -ENOENT);
	ck_assert_int_eq(bp_elf_open("/proc/self/status", &e), -ENOEXEC);
	bp_elf_close(NULL);
}
END_TEST

static int __attribute__((noinline))
marked_function(int x)
{
	return x * 3 + 1; /* symbolized by the test below */
}

START_TEST(symbolize_own_code)
{
	struct bp_symbolizer *s;
	char buf[256];

	ck_assert_int_eq(marked_function(2), 7);
	ck_assert_int_eq(bp_symbolizer_create(getpid(), &s), 0);
	ck_assert_int_gt(bp_symbolizer_lookup(s, (uint64_t)(uintptr_t)marked_function, buf,
					      sizeof(buf)),
			 0);
	ck_assert_msg(strstr(buf, "test_breakpoints.c:") && strstr(buf, "marked_function"), "%s",
		      buf);
	ck_assert_int_eq(bp_symbolizer_lookup(s, 8, buf, sizeof(buf)), -ENOENT);
	bp_symbolizer_destroy(s);
}
END_TEST

/* ---- An address space on a real traced child ---- */

static void __attribute__((noinline))
target_function(volatile long *counter)
{
	__asm__ volatile("" ::: "memory");
	(*counter)++;
}

static void __attribute__((noreturn))
child_loop(void)
{
	static volatile long counter;

	for (;;)
		target_function(&counter);
}

/* Forks a child running @loop, seized and stopped. */
static pid_t
start_child(void (*loop)(void))
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		loop();
	ck_assert_int_eq(ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_EXITKILL), 0);
	ck_assert_int_eq(ptrace(PTRACE_INTERRUPT, pid, 0, 0), 0);
	ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
	ck_assert(WIFSTOPPED(status));
	return pid;
}

/*
 * With the child stopped and out of every slot: every original byte back, the scratch unmapped,
 * the code at @addr equal to @before again, and the child runs on untraced.
 */
static void
restore_and_let_go(struct bp_aspace *as, pid_t pid, uint64_t addr, const uint8_t *before,
		   size_t len)
{
	uint8_t after[64];
	int pending;

	ck_assert_uint_le(len, sizeof(after));
	ck_assert_int_eq(bp_aspace_remove_all(as), 0);
	ck_assert_uint_eq(bp_aspace_breakpoint_count(as), 0);
	ck_assert_int_eq(bp_aspace_unmap_scratch(as, pid, &pending), 0);
	ck_assert_int_eq(bp_mem_read(bp_aspace_memfd(as), addr, after, len), 0);
	ck_assert_mem_eq(after, before, len);
	ck_assert_int_eq(ptrace(PTRACE_DETACH, pid, 0, 0), 0);
	usleep(20000);
	ck_assert_int_eq(kill(pid, 0), 0);
	bp_aspace_unref(as);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A thread stopped at our int3: resume it through the breakpoint's plan. */
static void
resume_hit(struct bp_aspace *as, pid_t pid, int tag)
{
	struct user_regs_struct regs;
	struct bp_breakpoint *bp;

	ck_assert_int_eq(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
	bp = bp_aspace_lookup(as, regs.rip - 1);
	ck_assert_ptr_nonnull(bp);
	ck_assert_int_eq(bp->tag, tag);
	ck_assert_int_eq(bp_breakpoint_resume(as, bp, &regs), 0);
	if (bp->insn.kind == BP_RESUME_OOL)
		ck_assert(bp_aspace_in_scratch(as, regs.rip));
	ck_assert_int_eq(ptrace(PTRACE_SETREGS, pid, 0, &regs), 0);
	ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0);
}

START_TEST(aspace_plant_hit_resume_restore)
{
	const uint64_t addr = (uint64_t)(uintptr_t)target_function;
	struct bp_aspace *as;
	uint8_t before[32], after[32];
	pid_t pid = start_child(child_loop);
	int pending = -1, hits = 0;

	ck_assert_int_eq(bp_aspace_create(pid, &as), 0);
	ck_assert_int_gt(bp_aspace_refresh(as, NULL, NULL), 0);
	ck_assert_ptr_nonnull(bp_aspace_main_module(as));
	ck_assert_ptr_eq(bp_aspace_module_at(as, addr), bp_aspace_main_module(as));
	ck_assert_int_eq(bp_mem_read(bp_aspace_memfd(as), addr, before, sizeof(before)), 0);
	ck_assert_int_eq(bp_aspace_insert(as, pid, addr, 42, &pending), 0);
	ck_assert_int_eq(pending, 0);
	ck_assert_int_eq(bp_aspace_insert(as, pid, addr, 42, &pending), -EEXIST);
	ck_assert_uint_eq(bp_aspace_breakpoint_count(as), 1);

	/* The int3 is there, and hidden from the tool's own reads. */
	ck_assert_int_eq(bp_mem_read(bp_aspace_memfd(as), addr, after, 1), 0);
	ck_assert_uint_eq(after[0], 0xcc);
	ck_assert_int_eq(bp_aspace_read(as, addr, after, sizeof(after)), 0);
	ck_assert_mem_eq(after, before, sizeof(before));

	/* 200 hits, each resumed by its plan, never single-stepped. */
	ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0);
	for (int status; hits < 200; hits++) {
		ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
		ck_assert(WIFSTOPPED(status));
		ck_assert_int_eq(WSTOPSIG(status), SIGTRAP);
		resume_hit(as, pid, 42);
	}

	/* Stop it (hits before the interrupt go on as before), and put it back where it stands
	 * in the real code if it is inside the slot. */
	ck_assert_int_eq(ptrace(PTRACE_INTERRUPT, pid, 0, 0), 0);
	for (;;) {
		int status;

		ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
		if ((status >> 16) == PTRACE_EVENT_STOP)
			break;
		resume_hit(as, pid, 42);
	}
	struct user_regs_struct regs;
	uint64_t rip;
	ck_assert_int_eq(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
	bool trapped;
	if (bp_aspace_in_scratch(as, regs.rip)) {
		ck_assert_int_eq(bp_aspace_scratch_fixup(as, regs.rip, &rip, &trapped), 0);
		ck_assert(rip >= addr && rip < addr + 16);
		regs.rip = rip;
		ck_assert_int_eq(ptrace(PTRACE_SETREGS, pid, 0, &regs), 0);
	}
	restore_and_let_go(as, pid, addr, before, sizeof(before));
}
END_TEST

/* A function whose entry takes a pad: mov $1,%eax (5 bytes), then room to scan. */
__asm__(".text\n.globl pad_target\n.type pad_target,@function\npad_target:\n"
	"\tmov $1,%eax\n\tadd %eax,(%rdi)\n\tret\n\t.fill 24,1,0x90\n"
	".size pad_target,.-pad_target\n");
void pad_target(volatile int *counter);
#define PAD_TARGET_SIZE 32

static void __attribute__((noreturn))
pad_child_loop(void)
{
	static volatile int counter;

	for (;;)
		pad_target(&counter);
}

START_TEST(aspace_pad_hit_and_restore)
{
	const uint64_t addr = (uint64_t)(uintptr_t)pad_target;
	struct user_regs_struct regs;
	struct bp_breakpoint *bp;
	struct bp_aspace *as;
	uint8_t before[PAD_TARGET_SIZE], after[PAD_TARGET_SIZE];
	int pending, status, hits = 0;
	pid_t pid = start_child(pad_child_loop);

	ck_assert_int_eq(bp_aspace_create(pid, &as), 0);
	ck_assert_int_gt(bp_aspace_refresh(as, NULL, NULL), 0);
	ck_assert_int_eq(bp_mem_read(bp_aspace_memfd(as), addr, before, sizeof(before)), 0);
	/* The child may stand inside the bytes the pad displaces: move it into the pad. */
	ck_assert_int_eq(bp_aspace_insert_entry(as, pid, addr, PAD_TARGET_SIZE, 7, &pending), 0);
	bp = bp_aspace_lookup(as, addr);
	ck_assert_ptr_nonnull(bp);
	ck_assert_int_eq(bp->insn.kind, BP_RESUME_PAD);
	ck_assert_int_eq(bp_aspace_read(as, addr, after, sizeof(after)), 0);
	ck_assert_mem_eq(after, before, sizeof(before)); /* hidden from our reads */
	ck_assert_int_eq(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
	uint64_t moved;
	if (bp_aspace_patched_fixup(as, regs.rip, &moved) == 0) {
		regs.rip = moved;
		ck_assert_int_eq(ptrace(PTRACE_SETREGS, pid, 0, &regs), 0);
	}

	/* Each hit: the return address is in r11, and the thread goes on with no register set. */
	ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0);
	for (; hits < 200; hits++) {
		ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
		ck_assert_int_eq(WSTOPSIG(status), SIGTRAP);
		ck_assert_int_eq(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
		ck_assert_ptr_eq(bp_aspace_lookup_trap(as, regs.rip), bp);
		ck_assert_uint_eq(regs.rip, bp->slot + BP_PAD_RESTORE);
		uint64_t ret;
		ck_assert_int_eq(bp_mem_read(bp_aspace_memfd(as), regs.rsp, &ret, 8), 0);
		ck_assert_uint_eq(regs.r11, ret);
		ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0);
	}

	/* Stop it, step it out of the middle of the pad if need be, restore, unmap. */
	ck_assert_int_eq(ptrace(PTRACE_INTERRUPT, pid, 0, 0), 0);
	for (;;) {
		ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
		if ((status >> 16) == PTRACE_EVENT_STOP)
			break;
		ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0); /* a last hit */
	}
	for (int n = 0;; n++) {
		uint64_t rip;
		bool trapped;
		int r;

		ck_assert_int_eq(ptrace(PTRACE_GETREGS, pid, 0, &regs), 0);
		r = bp_aspace_scratch_fixup(as, regs.rip, &rip, &trapped);
		if (r == -ENOENT)
			break;
		if (r == 0) {
			regs.rip = rip;
			ck_assert_int_eq(ptrace(PTRACE_SETREGS, pid, 0, &regs), 0);
			break;
		}
		ck_assert_int_eq(r, -EAGAIN);
		ck_assert_int_lt(n, 8);
		ck_assert_int_eq(ptrace(PTRACE_SINGLESTEP, pid, 0, 0), 0);
		ck_assert_int_eq(waitpid(pid, &status, __WALL), pid);
	}
	restore_and_let_go(as, pid, addr, before, sizeof(before));
}
END_TEST

START_TEST(mem_errors)
{
	int fd;
	uint64_t word;

	ck_assert_int_eq(bp_mem_open(getpid(), &fd), 0);
	ck_assert_int_eq(bp_mem_read(fd, 8, &word, sizeof(word)), -EFAULT);
	word = 0x55;
	static volatile uint64_t target;
	ck_assert_int_eq(bp_mem_write(fd, (uint64_t)(uintptr_t)&target, &word, sizeof(word)), 0);
	ck_assert_uint_eq(target, 0x55);
	close(fd);
	ck_assert_int_eq(bp_mem_open(999999999, &fd), -ENOENT);
}
END_TEST

/* ---- The ring routine (ring.S), run for real in this process ---- */

extern const uint8_t bp_ring_routine[], bp_ring_routine_end[], bp_ring_data[];

/*
 * ring_call(stub, regs): loads rax rbx rcx rdx rsi rdi rbp r8..r15 from regs[0..14] (in that
 * order), sets CF, calls @stub (a ring pad's head followed by ret), and stores the registers
 * and the flags (regs[15]) back. r11 carries the stub's address: it is not compared.
 */
__asm__(".text\n"
	".globl ring_call\n"
	"ring_call:\n"
	"	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"	push %rsi\n"
	"	mov %rdi, %r11\n"
	"	mov 0(%rsi), %rax; mov 8(%rsi), %rbx; mov 16(%rsi), %rcx; mov 24(%rsi), %rdx\n"
	"	mov 48(%rsi), %rbp; mov 56(%rsi), %r8; mov 64(%rsi), %r9; mov 72(%rsi), %r10\n"
	"	mov 88(%rsi), %r12; mov 96(%rsi), %r13; mov 104(%rsi), %r14\n"
	"	mov 112(%rsi), %r15; mov 40(%rsi), %rdi; mov 32(%rsi), %rsi\n"
	"	stc\n"
	"	call *%r11\n"
	"	pushfq\n"
	"	push %rsi\n"
	"	mov 16(%rsp), %rsi\n"
	"	pop 32(%rsi)\n"
	"	pop 120(%rsi)\n"
	"	mov %rax, 0(%rsi); mov %rbx, 8(%rsi); mov %rcx, 16(%rsi); mov %rdx, 24(%rsi)\n"
	"	mov %rdi, 40(%rsi); mov %rbp, 48(%rsi); mov %r8, 56(%rsi); mov %r9, 64(%rsi)\n"
	"	mov %r10, 72(%rsi); mov %r12, 88(%rsi); mov %r13, 96(%rsi); mov %r14, 104(%rsi)\n"
	"	mov %r15, 112(%rsi)\n"
	"	add $8, %rsp\n"
	"	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"	ret\n");
void ring_call(const void *stub, uint64_t *regs);

static struct bp_ring_hdr *trap_hdr;
static int traps;

static void
on_full(int sig)
{
	(void)sig;
	traps++;
	trap_hdr->drained++; /* the tracer's drain, as seen by the waiting pad */
}

/*
 * A pad's head (lea, call, lea) then ret, the routine, and a ring of two slots with 64 bytes of
 * stack copy: every register and CF come back unchanged, the slot holds the event, and a full
 * ring waits at its int3 until "drained" moves (here a SIGTRAP handler moves it).
 */
START_TEST(ring_routine_appends_and_preserves)
{
	const size_t len = (size_t)(bp_ring_routine_end - bp_ring_routine);
	const size_t slot_size = BP_RING_SLOT_HEAD + 64;
	uint8_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ring = calloc(1, BP_RING_HDR_SIZE + 2 * slot_size);
	struct bp_ring_hdr *h = (struct bp_ring_hdr *)ring;
	const uint64_t routine = (uint64_t)(uintptr_t)code + 64, consts[2] = {(uintptr_t)ring, 0};
	uint64_t regs[16], want[16];
	struct bp_ring_slot *sl;
	int32_t rel;

	ck_assert_ptr_ne(code, MAP_FAILED);
	ck_assert_ptr_nonnull(ring);
	/* the pad's head as bp_insn_plan_pad() makes it, then ret instead of the body */
	static const uint8_t head[] = {0x48, 0x8d, 0x64, 0x24, 0x80, 0xe8, 0, 0, 0, 0,
				       0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0, 0xc3};
	memcpy(code, head, sizeof(head));
	rel = (int32_t)(routine - ((uint64_t)(uintptr_t)code + BP_RING_PAD_RET));
	memcpy(code + BP_RING_PAD_CALL + 1, &rel, 4);
	memcpy(code + 64, bp_ring_routine, len);
	memcpy(code + 64 + (bp_ring_data - bp_ring_routine), consts, sizeof(consts));
	h->nslots = 2, h->mask = 1, h->slot_size = slot_size, h->copy = 64;

	for (int i = 0; i < 15; i++)
		regs[i] = 0x1111111111111111ull * (uint64_t)(i + 1);
	regs[9] = 0; /* r11: the stub's address */
	memcpy(want, regs, sizeof(want));
	ring_call(code, regs);
	for (int i = 0; i < 15; i++)
		if (i != 9)
			ck_assert_msg(regs[i] == want[i], "register %d: %#llx, not %#llx", i,
				      (unsigned long long)regs[i], (unsigned long long)want[i]);
	ck_assert(regs[15] & 1); /* CF */
	ck_assert(!(regs[15] & 0x100)); /* no TF */

	sl = (struct bp_ring_slot *)(ring + BP_RING_HDR_SIZE);
	ck_assert_uint_eq(h->next, 1);
	ck_assert_uint_eq(sl->commit, 1);
	ck_assert_uint_eq(sl->seq, 0);
	ck_assert_uint_eq(sl->rdi, want[5]);
	ck_assert_uint_eq(sl->rbx, want[1]);
	ck_assert_uint_eq(sl->rbp, want[6]);
	ck_assert_uint_eq(sl->r15, want[14]);
	ck_assert_uint_eq(sl->pad, (uint64_t)(uintptr_t)code + BP_RING_PAD_RET);
	ck_assert_int_eq((int)sl->tid, (int)gettid());
	ck_assert_uint_eq(sl->stack_len, 64);
	uint64_t first;
	memcpy(&first, sl->stack, 8);
	ck_assert_uint_eq(first, sl->ret); /* [rsp] at the entry is the return address */
	ck_assert_uint_ne(sl->tsc, 0);

	/* Full: seq 2 needs drained >= 1; the int3 stops it until the handler moves it. */
	h->next = 2;
	trap_hdr = h;
	signal(SIGTRAP, on_full);
	ring_call(code, regs);
	signal(SIGTRAP, SIG_DFL);
	ck_assert_int_eq(traps, 1);
	ck_assert_uint_eq(((struct bp_ring_slot *)(ring + BP_RING_HDR_SIZE))->commit, 3);

	/* trap_all: committed, then the decision int3 */
	h->trap_all = 1;
	traps = 0;
	h->drained = 2;
	signal(SIGTRAP, on_full);
	ring_call(code, regs);
	signal(SIGTRAP, SIG_DFL);
	ck_assert_int_eq(traps, 1);
	ck_assert_uint_eq(((struct bp_ring_slot *)(ring + BP_RING_HDR_SIZE + slot_size))->commit, 4);
	munmap(code, 4096);
	free(ring);
}
END_TEST

static Suite *
breakpoints_suite(void)
{
	Suite *s = suite_create("breakpoints");
	TCase *plans = tcase_create("plans"), *files = tcase_create("files"),
	      *live = tcase_create("live");

	tcase_add_test(plans, plan_emulated);
	tcase_add_test(plans, plan_copy_and_jump_back);
	tcase_add_test(plans, plan_rip_relative);
	tcase_add_test(plans, plan_conditional_branch);
	tcase_add_test(plans, plan_refusals);
	tcase_add_test(plans, relocated_copy_runs);
	tcase_add_test(plans, conditions_from_flags);
	tcase_add_test(plans, ring_routine_appends_and_preserves);
	tcase_add_test(plans, pad_plans);
	tcase_add_test(plans, jumps_back_to_the_entry);
	tcase_add_test(plans, straight_runs_of_code);
	tcase_add_test(files, elf_symbols_and_build_id);
	tcase_add_test(files, symbolize_own_code);
	tcase_add_test(files, mem_errors);
	tcase_add_test(live, aspace_plant_hit_resume_restore);
	tcase_add_test(live, aspace_pad_hit_and_restore);
	tcase_set_timeout(live, 60);
	suite_add_tcase(s, plans);
	suite_add_tcase(s, files);
	suite_add_tcase(s, live);
	return s;
}

int
main(void)
{
	return ck_run_main(breakpoints_suite());
}
