/*
 * The displaced instruction: how a thread stopped at one of our int3s goes on without
 * single-stepping (DESIGN.md, "Breakpoints without single-stepping"). The only file that
 * includes Capstone.
 *
 * Control transfers are emulated (they would go wrong out of line: a call would push the
 * slot's address). Everything else runs from a scratch slot: the copy, its RIP-relative
 * displacement re-aimed at the same target, then an absolute jump back (jmp *0(%rip); .quad),
 * which needs no register and reaches anywhere. A conditional branch becomes a short branch over
 * two absolute jumps. The slot's fix-up table maps each place a thread may stand in the slot
 * back to the original code, for detach and signal delivery.
 */
#include <errno.h>
#include <string.h>

#include <capstone/capstone.h>

#include "breakpoints/breakpoints.h"

/* One decoder for the process: cs_open costs; decoding happens only when planting. */
static csh decoder;
static bool decoder_ready;

static int
ensure_decoder(void)
{
	if (decoder_ready)
		return 0;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &decoder) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(decoder, CS_OPT_DETAIL, CS_OPT_ON);
	decoder_ready = true;
	return 0;
}

static int
decode(const uint8_t *code, size_t size, uint64_t addr, cs_insn **ret)
{
	cs_insn *insn;

	if (ensure_decoder() < 0)
		return -ENOMEM;
	if (cs_disasm(decoder, code, size, addr, 1, &insn) != 1)
		return -EILSEQ;
	*ret = insn;
	return 0;
}

static bool
in_group(const cs_insn *insn, uint8_t group)
{
	for (uint8_t i = 0; i < insn->detail->groups_count; i++)
		if (insn->detail->groups[i] == group)
			return true;
	return false;
}

/* Appends "jmp *0(%rip); .quad to": 14 bytes, no register touched. */
static uint8_t
put_abs_jmp(uint8_t *p, uint64_t to)
{
	static const uint8_t op[6] = {0xff, 0x25, 0, 0, 0, 0};

	memcpy(p, op, sizeof(op));
	memcpy(p + 6, &to, 8);
	return 14;
}

static bool
is_rip_relative(const cs_x86 *x)
{
	for (uint8_t i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP)
			return true;
	return false;
}

/* Relative branch target, from the immediate operand Capstone resolved to an address. */
static uint64_t
branch_target(const cs_x86 *x)
{
	return (uint64_t)x->operands[0].imm;
}

static int
plan_conditional(const cs_insn *insn, uint64_t addr, struct bp_insn *p)
{
	const uint8_t *b = insn->bytes;
	uint8_t op;
	uint64_t next = addr + insn->size;

	/* Short forms keep their opcode; jcc rel32 (0f 8x) becomes the short jcc (7x). */
	if (insn->size >= 2 && b[0] == 0x0f && (b[1] & 0xf0) == 0x80)
		op = (uint8_t)(0x70 | (b[1] & 0x0f));
	else if (insn->size == 2 && ((b[0] & 0xf0) == 0x70 || (b[0] >= 0xe0 && b[0] <= 0xe3)))
		op = b[0];
	else
		return -ENOTSUP; /* prefixed or address-size forms: not met at function entries */
	if ((op & 0xf0) == 0x70)
		p->cond = (int8_t)(op & 0x0f);
	p->code[0] = op;
	p->code[1] = 14; /* over the fall-through jump */
	p->code_len = 2;
	p->code_len += put_abs_jmp(p->code + p->code_len, next);
	p->code_len += put_abs_jmp(p->code + p->code_len, branch_target(&insn->detail->x86));
	p->nfix = 3;
	p->fix[0].off = 0, p->fix[0].orig = addr, p->fix[0].trapped = true;
	p->fix[1].off = 2, p->fix[1].orig = next;
	p->fix[2].off = 16, p->fix[2].orig = branch_target(&insn->detail->x86);
	return 0;
}

/* Copies the instruction (from @addr) to @out, to run at @at: its RIP-relative
 * displacement, relative to the next instruction, re-aimed at the same target. */
static int
relocate(const cs_insn *insn, uint64_t addr, uint64_t at, uint8_t *out)
{
	const cs_x86 *x = &insn->detail->x86;

	memcpy(out, insn->bytes, insn->size);
	if (is_rip_relative(x)) {
		int64_t disp;
		int32_t d32;

		if (x->encoding.disp_offset == 0 || x->encoding.disp_size != 4)
			return -ENOTSUP;
		disp = x->disp + (int64_t)(addr - at);
		if (disp < INT32_MIN || disp > INT32_MAX)
			return -ERANGE;
		d32 = (int32_t)disp;
		memcpy(out + x->encoding.disp_offset, &d32, 4);
	}
	return 0;
}

static int
plan_copy(const cs_insn *insn, uint64_t addr, uint64_t slot, struct bp_insn *p)
{
	int r = relocate(insn, addr, slot, p->code);

	if (r < 0)
		return r;
	p->code_len = insn->size;
	p->code_len += put_abs_jmp(p->code + p->code_len, addr + insn->size);
	p->nfix = 2;
	p->fix[0].off = 0, p->fix[0].orig = addr, p->fix[0].trapped = true;
	p->fix[1].off = insn->size, p->fix[1].orig = addr + insn->size;
	return 0;
}

/* Not a transfer of control, an interrupt or a return: safe to run anywhere. */
static bool
is_plain(const cs_insn *insn)
{
	return !in_group(insn, CS_GRP_JUMP) && !in_group(insn, CS_GRP_CALL) &&
	       !in_group(insn, CS_GRP_RET) && !in_group(insn, CS_GRP_IRET) &&
	       !in_group(insn, CS_GRP_INT) && !in_group(insn, CS_GRP_BRANCH_RELATIVE) &&
	       insn->id != X86_INS_SYSCALL;
}

static int
plan(const cs_insn *insn, uint64_t addr, uint64_t slot, struct bp_insn *p)
{
	const cs_x86 *x = &insn->detail->x86;

	memset(p, 0, sizeof(*p));
	p->len = (uint8_t)insn->size;
	p->cond = -1;
	switch (insn->id) {
	case X86_INS_NOP:
	case X86_INS_ENDBR64:
		p->kind = BP_RESUME_SKIP;
		return 0;
	case X86_INS_RET:
		p->kind = BP_RESUME_RET;
		p->target = x->op_count == 1 ? (uint64_t)x->operands[0].imm : 0;
		return 0;
	case X86_INS_JMP:
	case X86_INS_CALL:
		if (!in_group(insn, CS_GRP_BRANCH_RELATIVE))
			return -ENOTSUP; /* indirect: the copy would be fine for jmp, but is never met */
		p->kind = insn->id == X86_INS_JMP ? BP_RESUME_JMP : BP_RESUME_CALL;
		p->target = branch_target(x);
		return 0;
	default:
		break;
	}
	p->kind = BP_RESUME_OOL;
	if (in_group(insn, CS_GRP_BRANCH_RELATIVE))
		return plan_conditional(insn, addr, p);
	if (in_group(insn, CS_GRP_CALL) || in_group(insn, CS_GRP_RET) || in_group(insn, CS_GRP_JUMP) ||
	    in_group(insn, CS_GRP_IRET) || in_group(insn, CS_GRP_INT))
		return -ENOTSUP;
	return plan_copy(insn, addr, slot, p);
}

int
bp_insn_plan(const uint8_t *code, size_t size, uint64_t addr, uint64_t slot,
	     struct bp_insn *ret_insn)
{
	struct bp_insn p;
	cs_insn *insn;
	int r;

	r = decode(code, size, addr, &insn);
	if (r < 0)
		return r;
	r = plan(insn, addr, slot, &p);
	cs_free(insn, 1);
	if (r < 0)
		return r;
	*ret_insn = p;
	return 0;
}

int
bp_insn_plan_pad(const uint8_t *code, size_t size, uint64_t addr, uint64_t slot, uint64_t routine,
		 struct bp_insn *ret_insn)
{
	static const uint8_t head[BP_PAD_BODY] = {
		0x4c, 0x89, 0x5c, 0x24, 0xf8, /* mov %r11,-0x8(%rsp) */
		0x4c, 0x8b, 0x1c, 0x24,	      /* mov (%rsp),%r11 */
		0xcc,			      /* int3 */
		0x4c, 0x8b, 0x5c, 0x24, 0xf8, /* mov -0x8(%rsp),%r11 */
	};
	static const uint8_t ring_head[BP_RING_PAD_BODY] = {
		0x48, 0x8d, 0x64, 0x24, 0x80,		      /* lea -0x80(%rsp),%rsp */
		0xe8, 0, 0, 0, 0,			      /* call routine */
		0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0, /* lea 0x80(%rsp),%rsp */
	};
	struct bp_insn p;
	size_t k = 0;
	int r = 0;

	memset(&p, 0, sizeof(p));
	p.kind = BP_RESUME_PAD;
	p.cond = -1;
	if (routine) {
		int64_t rel = (int64_t)(routine - (slot + BP_RING_PAD_RET));
		int32_t rel32 = (int32_t)rel;

		if (rel != rel32)
			return -ERANGE;
		memcpy(p.code, ring_head, sizeof(ring_head));
		memcpy(p.code + BP_RING_PAD_CALL + 1, &rel32, 4);
		p.body = BP_RING_PAD_BODY;
		p.ring = true;
	} else {
		memcpy(p.code, head, sizeof(head));
		p.body = BP_PAD_BODY;
	}
	p.code_len = p.body;
	while (k < BP_PAD_MIN && r == 0) {
		cs_insn *insn;

		if (p.ninsn == 4 || k >= size)
			return -ENOTSUP;
		r = decode(code + k, size - k, addr + k, &insn);
		if (r < 0)
			return r;
		if (!is_plain(insn) || k + insn->size > BP_PAD_MAX)
			r = -ENOTSUP;
		else
			r = relocate(insn, addr + k, slot + p.code_len, p.code + p.code_len);
		if (r == 0) {
			p.insn_off[p.ninsn] = (uint8_t)k;
			p.body_off[p.ninsn] = (uint8_t)(p.code_len - p.body);
			p.ninsn++;
			p.code_len += insn->size;
			k += insn->size;
		}
		cs_free(insn, 1);
	}
	if (r < 0)
		return r;
	if (p.code_len + 14 > BP_SLOT_SIZE)
		return -ENOTSUP;
	p.len = (uint8_t)k;
	p.code_len += put_abs_jmp(p.code + p.code_len, addr + k);
	/*
	 * Places a signal or a detach may find a thread at, and where they are in the original.
	 * A ring pad has two: its start (nothing done yet) and its jump back. Anywhere else its
	 * thread is stepped on (the event is being or has been appended: going back to the entry
	 * would append it twice).
	 */
	if (p.ring) {
		p.nfix = 2;
		p.fix[0].off = 0, p.fix[0].orig = addr;
		p.fix[1].off = (uint8_t)(p.code_len - 14), p.fix[1].orig = addr + k;
	} else {
		p.nfix = 5;
		p.fix[0].off = 0, p.fix[0].orig = addr;
		p.fix[1].off = 5, p.fix[1].orig = addr;
		p.fix[2].off = BP_PAD_TRAP, p.fix[2].orig = addr;
		p.fix[3].off = BP_PAD_BODY, p.fix[3].orig = addr, p.fix[3].trapped = true;
		p.fix[4].off = (uint8_t)(p.code_len - 14), p.fix[4].orig = addr + k;
	}
	*ret_insn = p;
	return 0;
}

void
bp_insn_pad_patch(const struct bp_insn *pad, uint64_t addr, uint64_t slot, uint8_t *ret_bytes)
{
	int32_t rel = (int32_t)(int64_t)(slot - (addr + 5));

	ret_bytes[0] = 0xe9;
	memcpy(ret_bytes + 1, &rel, 4);
	memset(ret_bytes + 5, 0xcc, pad->len - 5u);
}

bool
bp_insn_needs_slot(const uint8_t *code, size_t size, uint64_t addr)
{
	struct bp_insn p;

	/* Plan against a slot at the same address: the displacement always fits there. */
	return bp_insn_plan(code, size, addr, addr, &p) == 0 && p.kind == BP_RESUME_OOL;
}

bool
bp_insn_cond_taken(int cond, uint64_t eflags)
{
	const bool cf = eflags & 0x1, pf = eflags & 0x4, zf = eflags & 0x40, sf = eflags & 0x80,
		   of = eflags & 0x800;
	bool r;

	switch (cond >> 1) {
	case 0: r = of; break;		      /* jo */
	case 1: r = cf; break;		      /* jb */
	case 2: r = zf; break;		      /* je */
	case 3: r = cf || zf; break;	      /* jbe */
	case 4: r = sf; break;		      /* js */
	case 5: r = pf; break;		      /* jp */
	case 6: r = sf != of; break;	      /* jl */
	default: r = zf || sf != of; break;  /* jle */
	}
	return cond & 1 ? !r : r; /* odd codes are the negations */
}

size_t
bp_insn_find_jumps_to(const uint8_t *code, size_t size, uint64_t addr, uint64_t target,
		      uint64_t *ret_addrs, size_t max)
{
	const uint8_t *p = code;
	uint64_t at = addr;
	size_t left = size, n = 0;
	cs_insn *insn;

	if (ensure_decoder() < 0)
		return 0;
	insn = cs_malloc(decoder);
	if (!insn)
		return 0;
	while (left > 0) {
		if (!cs_disasm_iter(decoder, &p, &left, &at, insn)) {
			p++, at++, left--; /* padding or data: step over a byte */
			continue;
		}
		if (in_group(insn, CS_GRP_BRANCH_RELATIVE) && insn->id != X86_INS_CALL &&
		    insn->detail->x86.op_count == 1 &&
		    (uint64_t)insn->detail->x86.operands[0].imm == target && insn->address != target) {
			if (n < max)
				ret_addrs[n] = insn->address;
			n++;
		}
	}
	cs_free(insn, 1);
	return n;
}

bool
bp_insn_straight(const uint8_t *code, size_t size, uint64_t addr, uint64_t from, uint64_t to)
{
	const uint8_t *p = code;
	uint64_t at = addr;
	size_t left = size;
	bool straight = true, met_to = false;
	cs_insn *insn;

	if (from >= to || from < addr || to >= addr + size || ensure_decoder() < 0)
		return false;
	insn = cs_malloc(decoder);
	if (!insn)
		return false;
	while (left > 0 && straight) {
		uint64_t here = at;

		if (!cs_disasm_iter(decoder, &p, &left, &at, insn)) {
			/* Padding or data: step over a byte; not between @from and @to. */
			straight = here < from || here > to;
			p++, at++, left--;
			continue;
		}
		met_to |= here == to;
		if (here >= from && here < to && here + insn->size > to)
			straight = false; /* @to is not where an instruction begins */
		bool jump = in_group(insn, CS_GRP_JUMP), call = in_group(insn, CS_GRP_CALL);
		if (here >= from && here < to &&
		    (jump || in_group(insn, CS_GRP_RET) || in_group(insn, CS_GRP_INT) ||
		     in_group(insn, CS_GRP_IRET) || insn->id == X86_INS_UD2 ||
		     insn->id == X86_INS_HLT))
			straight = false; /* control may leave the run */
		if (!jump && !call)
			continue;
		const cs_x86 *x = &insn->detail->x86;
		if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM) {
			if (jump)
				straight = false; /* indirect (a switch): its targets are unknown */
			continue;
		}
		uint64_t target = branch_target(x);
		if (target > from && target <= to)
			straight = false; /* a way into the run other than through @from */
	}
	cs_free(insn, 1);
	return straight && met_to;
}
