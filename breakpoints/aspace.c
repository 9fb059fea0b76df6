/*
 * An address space as the tracer sees it (one per process; vfork children share their
 * parent's): its modules, the breakpoints planted in it, and the scratch regions that hold the
 * out-of-line copies of displaced instructions. Breakpoints belong to the address space, not to
 * a thread, and the tool's own reads of the target's code hide them (as rr's AddressSpace does).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"

#define NBUCKETS 1024
#define SCRATCH_SIZE (64 * 1024)
#define SCRATCH_SLOTS (SCRATCH_SIZE / BP_SLOT_SIZE)
/*
 * A slot must stay within reach of a RIP-relative target of the code it serves: 32-bit
 * displacements, minus room for the module's own size.
 */
#define SCRATCH_REACH (1ull << 30)
#define PAGE 4096ull

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static const uint8_t gadget_code[BP_GADGET_LEN] = BP_GADGET_CODE;

struct scratch {
	uint64_t start;
	unsigned used; /* slots handed out; slot 0 holds the syscall gadget */
	uint64_t routine; /* the ring routine's copy (it takes RING_SLOTS slots), or 0 */
	struct bp_breakpoint *slots[SCRATCH_SLOTS];
};

/* The ring routine (ring.S): its bytes, and its two int3s and its constants within them. */
extern const uint8_t bp_ring_routine[], bp_ring_routine_end[], bp_ring_full_trap[],
	bp_ring_decide_trap[], bp_ring_data[], bp_ring_wait[], bp_ring_wait_end[];
#define RING_LEN ((size_t)(bp_ring_routine_end - bp_ring_routine))
#define RING_SLOTS ((unsigned)((RING_LEN + BP_SLOT_SIZE - 1) / BP_SLOT_SIZE))

_Static_assert(offsetof(struct bp_ring_hdr, drained) == 64, "ring.S H_DRAINED");
_Static_assert(offsetof(struct bp_ring_hdr, nslots) == 128, "ring.S H_NSLOTS");
_Static_assert(offsetof(struct bp_ring_hdr, copy) == 152, "ring.S H_COPY");
_Static_assert(offsetof(struct bp_ring_hdr, trap_all) == 160, "ring.S H_TRAPALL");
_Static_assert(offsetof(struct bp_ring_hdr, ndecide) == 164, "ring.S H_NDECIDE");
_Static_assert(offsetof(struct bp_ring_hdr, acts) == 168, "ring.S H_ACTS");
_Static_assert(offsetof(struct bp_ring_hdr, acts_seen) == 172, "ring.S H_SEEN");
_Static_assert(offsetof(struct bp_ring_hdr, decide) == 192, "ring.S H_DECIDE");
_Static_assert(sizeof(struct bp_ring_hdr) <= BP_RING_HDR_SIZE, "ring header");
_Static_assert(offsetof(struct bp_ring_slot, pad) == 24, "ring.S S_PAD");
_Static_assert(offsetof(struct bp_ring_slot, rsp) == 48, "ring.S S_RSP");
_Static_assert(offsetof(struct bp_ring_slot, r15) == 96, "ring.S S_R15");
_Static_assert(offsetof(struct bp_ring_slot, tid) == 104, "ring.S S_TID");
_Static_assert(offsetof(struct bp_ring_slot, stack_len) == 108, "ring.S S_STKLEN");
_Static_assert(offsetof(struct bp_ring_slot, trap) == 112, "ring.S S_TRAP");
_Static_assert(offsetof(struct bp_ring_slot, stack) == BP_RING_SLOT_HEAD, "ring.S S_STACK");

struct bp_aspace {
	int refs;
	pid_t pid;
	int memfd;
	char *exe; /* readlink of /proc/PID/exe */
	struct bp_module *modules;
	struct bp_breakpoint *table[NBUCKETS];	/* by addr */
	struct bp_breakpoint *traps[NBUCKETS];	/* pads, by trap */
	size_t count;
	struct scratch **scratch;
	size_t nscratch;
	uint64_t ring, stack_hi; /* bp_aspace_set_ring() */
};

static size_t
bucket(uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 54) & (NBUCKETS - 1);
}

static char *
read_exe(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

int
bp_aspace_create(pid_t pid, struct bp_aspace **ret_as)
{
	struct bp_aspace *as = calloc(1, sizeof(*as));
	int r;

	if (!as)
		return -ENOMEM;
	as->refs = 1;
	as->pid = pid;
	r = bp_mem_open(pid, &as->memfd);
	if (r < 0) {
		free(as);
		return r;
	}
	as->exe = read_exe(pid);
	*ret_as = as;
	return 0;
}

struct bp_aspace *
bp_aspace_ref(struct bp_aspace *as)
{
	as->refs++;
	return as;
}

static void
free_module(struct bp_module *m)
{
	free(m->path);
	free(m->build_id);
	free(m);
}

static void
unlink_trap(struct bp_aspace *as, struct bp_breakpoint *bp)
{
	for (struct bp_breakpoint **pp = &as->traps[bucket(bp->trap)]; *pp; pp = &(*pp)->tnext) {
		if (*pp == bp) {
			*pp = bp->tnext;
			return;
		}
	}
}

static void
link_bp(struct bp_aspace *as, struct bp_breakpoint *bp)
{
	bp->hnext = as->table[bucket(bp->addr)];
	as->table[bucket(bp->addr)] = bp;
	if (bp->insn.kind == BP_RESUME_PAD && !bp->insn.ring) {
		bp->tnext = as->traps[bucket(bp->trap)];
		as->traps[bucket(bp->trap)] = bp;
	}
	as->count++;
}

static void
forget_breakpoints(struct bp_aspace *as, bool (*match)(const struct bp_breakpoint *, void *),
		   void *ctx)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct bp_breakpoint **pp = &as->table[i];

		while (*pp) {
			struct bp_breakpoint *bp = *pp;

			if (!match || match(bp, ctx)) {
				*pp = bp->hnext;
				if (bp->insn.kind == BP_RESUME_PAD && !bp->insn.ring)
					unlink_trap(as, bp);
				if (bp->slot)
					for (size_t s = 0; s < as->nscratch; s++)
						for (unsigned k = 0; k < SCRATCH_SLOTS; k++)
							if (as->scratch[s]->slots[k] == bp)
								as->scratch[s]->slots[k] = NULL;
				free(bp);
				as->count--;
			} else {
				pp = &bp->hnext;
			}
		}
	}
}

void
bp_aspace_unref(struct bp_aspace *as)
{
	if (!as || --as->refs > 0)
		return;
	forget_breakpoints(as, NULL, NULL);
	while (as->modules) {
		struct bp_module *m = as->modules;
		as->modules = m->next;
		free_module(m);
	}
	for (size_t i = 0; i < as->nscratch; i++)
		free(as->scratch[i]);
	free(as->scratch);
	free(as->exe);
	close(as->memfd);
	free(as);
}

static struct bp_module *
module_dup(const struct bp_module *m)
{
	struct bp_module *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	*c = *m;
	c->path = strdup(m->path);
	c->name = c->path ? strrchr(c->path, '/') + 1 : NULL;
	c->build_id = m->build_id ? strdup(m->build_id) : NULL;
	c->next = NULL;
	if (!c->path || (m->build_id && !c->build_id)) {
		free_module(c);
		return NULL;
	}
	return c;
}

static struct bp_module *
module_index(const struct bp_aspace *as, const struct bp_module *m, const struct bp_aspace *to)
{
	const struct bp_module *a = as->modules;
	struct bp_module *b = to->modules;

	for (; a && b; a = a->next, b = b->next)
		if (a == m)
			return b;
	return NULL;
}

int
bp_aspace_clone(const struct bp_aspace *as, pid_t pid, struct bp_aspace **ret_as)
{
	struct bp_aspace *c;
	struct bp_module **tail;
	int r;

	r = bp_aspace_create(pid, &c);
	if (r < 0)
		return r;
	tail = &c->modules;
	for (const struct bp_module *m = as->modules; m; m = m->next) {
		*tail = module_dup(m);
		if (!*tail)
			goto nomem;
		tail = &(*tail)->next;
	}
	c->ring = as->ring;
	c->stack_hi = as->stack_hi;
	c->scratch = calloc(as->nscratch ? as->nscratch : 1, sizeof(*c->scratch));
	if (!c->scratch)
		goto nomem;
	for (size_t i = 0; i < as->nscratch; i++) {
		c->scratch[i] = calloc(1, sizeof(struct scratch));
		if (!c->scratch[i])
			goto nomem;
		c->scratch[i]->start = as->scratch[i]->start;
		c->scratch[i]->used = as->scratch[i]->used;
		c->scratch[i]->routine = as->scratch[i]->routine;
		c->nscratch++;
	}
	for (size_t i = 0; i < NBUCKETS; i++) {
		for (const struct bp_breakpoint *bp = as->table[i]; bp; bp = bp->hnext) {
			struct bp_breakpoint *n = malloc(sizeof(*n));

			if (!n)
				goto nomem;
			*n = *bp;
			n->module = module_index(as, bp->module, c);
			link_bp(c, n);
			for (size_t s = 0; s < as->nscratch; s++)
				for (unsigned k = 0; k < SCRATCH_SLOTS; k++)
					if (as->scratch[s]->slots[k] == bp)
						c->scratch[s]->slots[k] = n;
		}
	}
	*ret_as = c;
	return 0;
nomem:
	bp_aspace_unref(c);
	return -ENOMEM;
}

static bool
is_system_library(const char *name)
{
	static const char *const glibc[] = {"libc.so", "ld-linux", "libpthread.so", "librt.so",
					    "libdl.so"};

	for (size_t i = 0; i < sizeof(glibc) / sizeof(glibc[0]); i++)
		if (strncmp(name, glibc[i], strlen(glibc[i])) == 0)
			return true;
	return false;
}

static bool
is_system_path(const char *path)
{
	static const char *const dirs[] = {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (strncmp(path, dirs[i], strlen(dirs[i])) == 0)
			return true;
	return false;
}

struct mapping {
	uint64_t start, end, offset;
	char perms[5];
	char path[4096];
};

/* Parses one /proc/PID/maps line; path is "" for anonymous mappings. */
static bool
parse_mapping(const char *line, struct mapping *m)
{
	unsigned long long start, end, offset, inode;
	int pos = 0;

	if (sscanf(line, "%llx-%llx %4s %llx %*s %llu %n", &start, &end, m->perms, &offset, &inode,
		   &pos) < 5)
		return false;
	m->start = start, m->end = end, m->offset = offset;
	m->path[0] = '\0';
	if (inode != 0 && line[pos] == '/') {
		size_t n = strcspn(line + pos, "\n");
		if (n >= sizeof(m->path))
			n = sizeof(m->path) - 1;
		memcpy(m->path, line + pos, n);
		m->path[n] = '\0';
	}
	return true;
}

static FILE *
open_maps(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	return fopen(path, "re");
}

static struct bp_module *
find_module(struct bp_aspace *as, const char *path, uint64_t base)
{
	for (struct bp_module *m = as->modules; m; m = m->next)
		if (m->base == base && strcmp(m->path, path) == 0)
			return m;
	return NULL;
}

static bool
in_module(const struct bp_breakpoint *bp, void *ctx)
{
	return bp->module == ctx;
}

/*
 * Adds the mapping to the module it belongs to, creating the module at its offset-0 mapping.
 * Returns the module when it is new, NULL otherwise.
 */
static struct bp_module *
note_mapping(struct bp_aspace *as, const struct mapping *mp, struct bp_module **last, int *err)
{
	struct bp_module *m;

	if (!mp->path[0])
		return NULL;
	if (mp->offset == 0) {
		m = find_module(as, mp->path, mp->start);
		if (m) {
			m->seen = true;
			*last = m;
			return NULL;
		}
		m = calloc(1, sizeof(*m));
		if (!m || !(m->path = strdup(mp->path))) {
			free(m);
			*err = -ENOMEM;
			return NULL;
		}
		m->name = strrchr(m->path, '/') + 1;
		m->base = mp->start;
		m->end = mp->end;
		m->system = is_system_library(m->name);
		m->wildcard = is_system_path(m->path);
		m->seen = true;
		*last = m;
		return m;
	}
	/* Later segments of the module just seen. */
	m = *last;
	if (m && strcmp(m->path, mp->path) == 0 && mp->start >= m->end) {
		m->end = mp->end;
		if (!m->text_lo && strchr(mp->perms, 'x'))
			m->text_lo = mp->start;
	}
	return NULL;
}

int
bp_aspace_refresh(struct bp_aspace *as,
		  void (*added)(void *ctx, struct bp_aspace *as, struct bp_module *m), void *ctx)
{
	struct bp_module *fresh = NULL, **fresh_tail = &fresh, *last = NULL;
	char line[4096 + 128];
	int err = 0, n = 0;
	FILE *f;

	f = open_maps(as->pid);
	if (!f)
		return -errno;
	for (struct bp_module *m = as->modules; m; m = m->next)
		m->seen = false;
	while (fgets(line, sizeof(line), f)) {
		struct mapping mp;
		struct bp_module *m;

		if (!parse_mapping(line, &mp))
			continue;
		m = note_mapping(as, &mp, &last, &err);
		if (m) {
			if (strchr(mp.perms, 'x'))
				m->text_lo = mp.start;
			*fresh_tail = m;
			fresh_tail = &m->next;
		}
	}
	fclose(f);

	/* Forget modules that went away, with their breakpoints: their code is gone. */
	for (struct bp_module **pp = &as->modules; *pp;) {
		struct bp_module *m = *pp;
		if (!m->seen) {
			forget_breakpoints(as, in_module, m);
			*pp = m->next;
			free_module(m);
		} else {
			pp = &m->next;
		}
	}
	/* Append the new ones, then announce those with code (data files mapped by the program
	 * are not modules). */
	struct bp_module **tail = &as->modules;
	while (*tail)
		tail = &(*tail)->next;
	*tail = fresh;
	for (struct bp_module **pp = tail; *pp;) {
		struct bp_module *m = *pp;
		if (!m->text_lo) {
			*pp = m->next;
			free_module(m);
			continue;
		}
		pp = &m->next;
	}
	for (struct bp_module *m = *tail; m; m = m->next) {
		n++;
		if (added)
			added(ctx, as, m);
	}
	return err < 0 ? err : n;
}

struct bp_module *
bp_aspace_modules(const struct bp_aspace *as)
{
	return as->modules;
}

struct bp_module *
bp_aspace_module_at(const struct bp_aspace *as, uint64_t addr)
{
	for (struct bp_module *m = as->modules; m; m = m->next)
		if (addr >= m->base && addr < m->end)
			return m;
	return NULL;
}

struct bp_module *
bp_aspace_main_module(const struct bp_aspace *as)
{
	if (!as->exe)
		return NULL;
	for (struct bp_module *m = as->modules; m; m = m->next)
		if (strcmp(m->path, as->exe) == 0)
			return m;
	return NULL;
}

int
bp_aspace_memfd(const struct bp_aspace *as)
{
	return as->memfd;
}

struct bp_breakpoint *
bp_aspace_lookup(const struct bp_aspace *as, uint64_t addr)
{
	for (struct bp_breakpoint *bp = as->table[bucket(addr)]; bp; bp = bp->hnext)
		if (bp->addr == addr)
			return bp;
	return NULL;
}

struct bp_breakpoint *
bp_aspace_lookup_trap(const struct bp_aspace *as, uint64_t rip)
{
	struct bp_breakpoint *bp = bp_aspace_lookup(as, rip - 1);

	if (bp && bp->insn.kind != BP_RESUME_PAD)
		return bp;
	for (bp = as->traps[bucket(rip - 1)]; bp; bp = bp->tnext)
		if (bp->trap == rip - 1)
			return bp;
	return NULL;
}

size_t
bp_aspace_breakpoint_count(const struct bp_aspace *as)
{
	return as->count;
}

int
bp_aspace_read(const struct bp_aspace *as, uint64_t addr, void *buf, size_t len)
{
	uint8_t *b = buf;
	int r;

	r = bp_mem_read(as->memfd, addr, buf, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < NBUCKETS; i++) {
		for (const struct bp_breakpoint *bp = as->table[i]; bp; bp = bp->hnext) {
			for (uint8_t k = 0; k < bp->patch_len; k++) {
				uint64_t at = bp->addr + k;
				if (at >= addr && at - addr < len)
					b[at - addr] = bp->orig[k];
			}
		}
	}
	return 0;
}

/* ---- Scratch regions ---- */

static uint64_t
distance(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* A free, page-aligned place for a region, as near @near as the current mappings allow. */
static int
find_gap(pid_t pid, uint64_t near, uint64_t *ret_addr)
{
	const uint64_t need = SCRATCH_SIZE + 2 * PAGE; /* a guard page on each side */
	uint64_t prev_end = 0x10000, best = 0, best_d = UINT64_MAX;
	char line[4096 + 128];
	FILE *f = open_maps(pid);
	bool done = false;

	if (!f)
		return -errno;
	while (!done) {
		struct mapping mp;
		uint64_t next;

		if (fgets(line, sizeof(line), f)) {
			if (!parse_mapping(line, &mp))
				continue;
			next = mp.start;
		} else {
			next = 0x7ffffffff000ull; /* top of the user half */
			done = true;
		}
		if (next > prev_end && next - prev_end >= need) {
			/* The end of the gap nearer to @near, a guard page inside. */
			uint64_t cand = near < prev_end ? prev_end + PAGE : next - need + PAGE;
			if (distance(cand, near) < best_d)
				best = cand, best_d = distance(cand, near);
		}
		if (!done && mp.end > prev_end)
			prev_end = mp.end;
	}
	fclose(f);
	if (best_d >= SCRATCH_REACH)
		return -ENOMEM;
	*ret_addr = best;
	return 0;
}

/* A stopped thread can run the gadget: the first region's slot 0, or a temporary one. */
static int
inject(struct bp_aspace *as, pid_t tid, long nr, const long args[6], long *ret_val, int *pending,
       const struct scratch *avoid)
{
	uint64_t gadget = 0;
	uint8_t saved[sizeof(gadget_code)];
	const struct bp_module *main_mod;
	int r, w;

	for (size_t i = 0; i < as->nscratch && !gadget; i++)
		if (as->scratch[i] != avoid)
			gadget = as->scratch[i]->start;
	if (gadget)
		return bp_inject_syscall(tid, gadget, nr, args, ret_val, pending);

	/*
	 * No region (yet, or any more): borrow the first bytes of the program's text. Every thread
	 * is stopped whenever this happens (exec stop, attach, detach), so none runs them.
	 */
	main_mod = bp_aspace_main_module(as);
	if (!main_mod)
		main_mod = as->modules;
	if (!main_mod || !main_mod->text_lo)
		return -ENOEXEC;
	gadget = main_mod->text_lo;
	r = bp_mem_read(as->memfd, gadget, saved, sizeof(saved));
	if (r < 0)
		return r;
	r = bp_mem_write(as->memfd, gadget, gadget_code, sizeof(gadget_code));
	if (r < 0)
		return r;
	r = bp_inject_syscall(tid, gadget, nr, args, ret_val, pending);
	w = bp_mem_write(as->memfd, gadget, saved, sizeof(saved));
	return r < 0 ? r : w;
}

/* Copies the ring routine into free slots of region @s, with this space's constants. */
static int
add_routine(struct bp_aspace *as, struct scratch *s)
{
	const uint64_t consts[2] = {as->ring, as->stack_hi};
	uint64_t at;
	int r;

	if (s->routine || s->used + RING_SLOTS > SCRATCH_SLOTS)
		return s->routine ? 0 : -ENOSPC;
	at = s->start + (uint64_t)s->used * BP_SLOT_SIZE;
	r = bp_mem_write(as->memfd, at, bp_ring_routine, RING_LEN);
	if (r == 0)
		r = bp_mem_write(as->memfd, at + (uint64_t)(bp_ring_data - bp_ring_routine), consts,
				 sizeof(consts));
	if (r < 0)
		return r;
	s->routine = at;
	s->used += RING_SLOTS;
	return 0;
}

static int
map_scratch(struct bp_aspace *as, pid_t tid, uint64_t near, struct scratch **ret, int *pending)
{
	struct scratch *s, **grown;
	uint64_t addr;
	long val;
	int r;

	r = find_gap(as->pid, near, &addr);
	if (r < 0)
		return r;
	const long args[6] = {(long)addr, SCRATCH_SIZE, PROT_READ | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0};
	r = inject(as, tid, SYS_mmap, args, &val, pending, NULL);
	if (r < 0)
		return r;
	if (val < 0 && val > -4096)
		return (int)val;
	if ((uint64_t)val != addr)
		return -ENOMEM; /* an old kernel ignoring MAP_FIXED_NOREPLACE: too far maybe */
	s = calloc(1, sizeof(*s));
	grown = realloc(as->scratch, (as->nscratch + 1) * sizeof(*grown));
	if (!s || !grown) {
		free(s);
		if (grown)
			as->scratch = grown;
		return -ENOMEM;
	}
	as->scratch = grown;
	s->start = addr;
	s->used = 1;
	r = bp_mem_write(as->memfd, addr, gadget_code, sizeof(gadget_code));
	if (r < 0) {
		free(s);
		return r;
	}
	as->scratch[as->nscratch++] = s;
	if (as->ring)
		add_routine(as, s); /* without it, the region's pads trap */
	*ret = s;
	return 0;
}

/* A free slot within reach of @addr; with @routine, in a region that has the ring routine. */
static int
take_slot(struct bp_aspace *as, pid_t tid, uint64_t addr, bool routine, struct scratch **ret_s,
	  unsigned *ret_idx, int *pending)
{
	struct scratch *s = NULL;
	int r;

	for (size_t i = 0; i < as->nscratch; i++) {
		struct scratch *c = as->scratch[i];
		if (routine && !c->routine)
			add_routine(as, c);
		if (c->used < SCRATCH_SLOTS && distance(c->start, addr) < SCRATCH_REACH &&
		    (!routine || c->routine)) {
			s = c;
			break;
		}
	}
	if (!s) {
		r = map_scratch(as, tid, addr, &s, pending);
		if (r < 0)
			return r;
	}
	*ret_s = s;
	*ret_idx = s->used;
	return 0;
}

/* Records a planted breakpoint (its patch is written by the caller). */
static struct bp_breakpoint *
add_breakpoint(struct bp_aspace *as, uint64_t addr, const uint8_t *orig, uint8_t len, int tag,
	       const struct bp_insn *insn, struct scratch *s, unsigned idx)
{
	struct bp_breakpoint *bp = calloc(1, sizeof(*bp));

	if (!bp)
		return NULL;
	bp->addr = addr;
	memcpy(bp->orig, orig, len);
	bp->patch_len = len;
	bp->tag = tag;
	bp->insn = *insn;
	bp->slot = s ? s->start + (uint64_t)idx * BP_SLOT_SIZE : 0;
	bp->trap = insn->kind == BP_RESUME_PAD ? bp->slot + BP_PAD_TRAP : addr;
	bp->module = bp_aspace_module_at(as, addr);
	link_bp(as, bp);
	if (s) {
		s->slots[idx] = bp;
		s->used++;
	}
	return bp;
}

int
bp_aspace_insert(struct bp_aspace *as, pid_t tid, uint64_t addr, int tag, int *ret_pending_sig)
{
	static const uint8_t int3 = 0xcc;
	uint8_t code[16];
	struct bp_insn plan;
	struct scratch *s = NULL;
	unsigned idx = 0;
	uint64_t slot = 0;
	int r, pending = 0;

	if (bp_aspace_lookup(as, addr) || bp_aspace_patched_fixup(as, addr, &slot) != -ENOENT)
		return -EEXIST;
	slot = 0;
	r = bp_aspace_read(as, addr, code, sizeof(code));
	if (r < 0)
		return r;
	if (bp_insn_needs_slot(code, sizeof(code), addr)) {
		r = take_slot(as, tid, addr, false, &s, &idx, &pending);
		if (r < 0)
			goto leave;
		slot = s->start + (uint64_t)idx * BP_SLOT_SIZE;
	}
	r = bp_insn_plan(code, sizeof(code), addr, slot, &plan);
	if (r == 0 && slot)
		r = bp_mem_write(as->memfd, slot, plan.code, plan.code_len);
	if (r == 0)
		r = bp_mem_write(as->memfd, addr, &int3, 1);
	if (r == 0 && !add_breakpoint(as, addr, code, 1, tag, &plan, s, idx))
		r = -ENOMEM;
leave:
	*ret_pending_sig = pending;
	return r;
}

/* Whether any relative jump of the function lands strictly inside its first @k bytes. */
static bool
jumps_into_entry(const uint8_t *fn, uint64_t size, uint64_t addr, uint8_t k)
{
	uint64_t at;

	for (uint8_t off = 1; off < k; off++)
		if (bp_insn_find_jumps_to(fn, size, addr, addr + off, &at, 1) > 0)
			return true;
	return false;
}

/* Functions larger than this are not searched for jumps into their entry: no pad. */
#define MAX_PAD_FUNCTION (64 * 1024)

int
bp_aspace_insert_entry(struct bp_aspace *as, pid_t tid, uint64_t addr, uint64_t size, int tag,
		       int *ret_pending_sig)
{
	uint8_t *fn, patch[BP_PAD_MAX];
	struct bp_insn plan;
	struct scratch *s = NULL;
	unsigned idx = 0;
	uint64_t slot;
	int r, pending = 0;
	bool ok;

	*ret_pending_sig = 0;
	if (bp_aspace_lookup(as, addr))
		return -EEXIST;
	/* At least BP_PAD_MAX bytes to decode from, though only the function's own are displaced. */
	const uint64_t have = size > BP_PAD_MAX ? size : BP_PAD_MAX;
	if (size < BP_PAD_MIN || size > MAX_PAD_FUNCTION || !(fn = malloc(have)))
		return bp_aspace_insert(as, tid, addr, tag, ret_pending_sig);
	/* Plan against a slot at the entry itself first: is a pad possible at all? */
	ok = bp_aspace_read(as, addr, fn, have) == 0 &&
	     bp_insn_plan_pad(fn, have, addr, addr, 0, &plan) == 0 && plan.len <= size &&
	     !jumps_into_entry(fn, size, addr, plan.len);
	for (uint8_t k = 1; ok && k < plan.len; k++)
		ok = !bp_aspace_lookup(as, addr + k);
	if (!ok) {
		free(fn);
		return bp_aspace_insert(as, tid, addr, tag, ret_pending_sig);
	}
	r = take_slot(as, tid, addr, as->ring != 0, &s, &idx, &pending);
	if (r < 0)
		goto leave;
	slot = s->start + (uint64_t)idx * BP_SLOT_SIZE;
	r = bp_insn_plan_pad(fn, have, addr, slot, s->routine, &plan);
	if (r == 0)
		r = bp_mem_write(as->memfd, slot, plan.code, plan.code_len);
	if (r == 0) {
		bp_insn_pad_patch(&plan, addr, slot, patch);
		r = bp_mem_write(as->memfd, addr, patch, plan.len);
	}
	if (r == 0 && !add_breakpoint(as, addr, fn, plan.len, tag, &plan, s, idx))
		r = -ENOMEM;
leave:
	free(fn);
	*ret_pending_sig = pending;
	return r;
}

int
bp_aspace_patched_fixup(const struct bp_aspace *as, uint64_t rip, uint64_t *ret_rip)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		for (const struct bp_breakpoint *bp = as->table[i]; bp; bp = bp->hnext) {
			const struct bp_insn *p = &bp->insn;

			if (p->kind != BP_RESUME_PAD || rip <= bp->addr || rip >= bp->addr + p->len)
				continue;
			for (uint8_t k = 0; k < p->ninsn; k++) {
				if (bp->addr + p->insn_off[k] == rip) {
					*ret_rip = bp->slot + p->body + p->body_off[k];
					return 0;
				}
			}
			return -EINVAL; /* inside an instruction: cannot be */
		}
	}
	return -ENOENT;
}

int
bp_aspace_remove_all(struct bp_aspace *as)
{
	int first = 0;

	for (size_t i = 0; i < NBUCKETS; i++) {
		for (struct bp_breakpoint *bp = as->table[i]; bp; bp = bp->hnext) {
			int r = bp_mem_write(as->memfd, bp->addr, bp->orig, bp->patch_len);
			if (r < 0 && !first)
				first = r;
		}
	}
	forget_breakpoints(as, NULL, NULL);
	return first;
}

static const struct scratch *
scratch_at(const struct bp_aspace *as, uint64_t rip)
{
	for (size_t i = 0; i < as->nscratch; i++)
		if (rip >= as->scratch[i]->start && rip - as->scratch[i]->start < SCRATCH_SIZE)
			return as->scratch[i];
	return NULL;
}

int
bp_aspace_set_ring(struct bp_aspace *as, uint64_t ring, uint64_t stack_hi)
{
	as->ring = ring;
	as->stack_hi = stack_hi;
	for (size_t i = 0; i < as->nscratch; i++)
		if (!as->scratch[i]->routine)
			add_routine(as, as->scratch[i]); /* no room: its pads trap */
	return 0;
}

uint64_t
bp_aspace_ring(const struct bp_aspace *as)
{
	return as->ring;
}

enum bp_ring_trap
bp_aspace_ring_trap(const struct bp_aspace *as, uint64_t rip)
{
	const struct scratch *s = scratch_at(as, rip - 1);

	if (!s || !s->routine)
		return BP_RING_TRAP_NONE;
	if (rip - 1 == s->routine + (uint64_t)(bp_ring_full_trap - bp_ring_routine))
		return BP_RING_TRAP_FULL;
	if (rip - 1 == s->routine + (uint64_t)(bp_ring_decide_trap - bp_ring_routine))
		return BP_RING_TRAP_DECIDE;
	return BP_RING_TRAP_NONE;
}

int
bp_aspace_ring_waiting(const struct bp_aspace *as, const struct user_regs_struct *regs,
		       struct user_regs_struct *ret_entry)
{
	const struct scratch *s = scratch_at(as, regs->rip);
	const struct bp_breakpoint *bp;
	struct user_regs_struct e = *regs;
	uint64_t saved[7]; /* rdi, rsi, rdx, rcx, rax, flags, the return into the pad */
	int r;

	if (!s || !s->routine || regs->rip < s->routine + (uint64_t)(bp_ring_wait - bp_ring_routine) ||
	    regs->rip >= s->routine + (uint64_t)(bp_ring_wait_end - bp_ring_routine))
		return -ENOENT;
	r = bp_mem_read(as->memfd, regs->rsp, saved, sizeof(saved));
	if (r < 0)
		return r;
	bp = bp_aspace_lookup_ring_pad(as, saved[6]);
	if (!bp)
		return -ENOENT;
	e.rdi = saved[0], e.rsi = saved[1], e.rdx = saved[2], e.rcx = saved[3], e.rax = saved[4];
	e.eflags = saved[5];
	e.rsp = regs->rsp + 7 * 8 + 128; /* the pushes, the call, the red zone */
	e.rip = bp->addr;
	*ret_entry = e;
	return 0;
}

int
bp_aspace_ring_clear_tf(const struct bp_aspace *as, const struct user_regs_struct *regs)
{
	struct user_regs_struct entry;
	uint64_t flags;
	int r = bp_aspace_ring_waiting(as, regs, &entry);

	if (r < 0)
		return r;
	if (!(entry.eflags & 0x100))
		return 0;
	flags = entry.eflags & ~0x100ull;
	return bp_mem_write(as->memfd, regs->rsp + 40, &flags, sizeof(flags)); /* pushfq's word */
}

struct bp_breakpoint *
bp_aspace_lookup_ring_pad(const struct bp_aspace *as, uint64_t pad_ret)
{
	const struct scratch *s = scratch_at(as, pad_ret);
	struct bp_breakpoint *bp;

	if (!s)
		return NULL;
	bp = s->slots[(pad_ret - s->start) / BP_SLOT_SIZE];
	return bp && bp->insn.ring && bp->slot + BP_RING_PAD_RET == pad_ret ? bp : NULL;
}

int
bp_aspace_inject(struct bp_aspace *as, pid_t tid, long nr, const long args[6], long *ret_val,
		 int *ret_pending_sig)
{
	*ret_pending_sig = 0;
	return inject(as, tid, nr, args, ret_val, ret_pending_sig, NULL);
}

bool
bp_aspace_in_scratch(const struct bp_aspace *as, uint64_t rip)
{
	return scratch_at(as, rip) != NULL;
}

int
bp_aspace_scratch_fixup(const struct bp_aspace *as, uint64_t rip, uint64_t *ret_rip,
			bool *ret_trapped)
{
	const struct scratch *s = scratch_at(as, rip);
	const struct bp_breakpoint *bp;
	uint64_t off;

	if (!s)
		return -ENOENT;
	if (s->routine && rip >= s->routine && rip < s->routine + RING_LEN)
		return -EAGAIN; /* appending an event: step it out through its pad */
	off = rip - s->start;
	bp = s->slots[off / BP_SLOT_SIZE];
	if (!bp)
		return -ENOENT;
	off %= BP_SLOT_SIZE;
	for (uint8_t i = 0; i < bp->insn.nfix; i++) {
		if (bp->insn.fix[i].off == off) {
			*ret_rip = bp->insn.fix[i].orig;
			*ret_trapped = bp->insn.fix[i].trapped;
			return 0;
		}
	}
	return bp->insn.kind == BP_RESUME_PAD ? -EAGAIN : -ENOENT;
}

int
bp_pad_rewind(const struct bp_aspace *as, const struct bp_breakpoint *bp,
	      struct user_regs_struct *regs)
{
	uint64_t r11;
	int r = bp_mem_read(as->memfd, regs->rsp - 8, &r11, sizeof(r11));

	if (r < 0)
		return r;
	regs->r11 = r11;
	regs->rip = bp->addr;
	return 0;
}

int
bp_aspace_unmap_scratch(struct bp_aspace *as, pid_t tid, int *ret_pending_sig)
{
	int first = 0;

	*ret_pending_sig = 0;
	/* The region holding the gadget goes last, through a borrowed gadget. */
	while (as->nscratch > 0) {
		struct scratch *s = as->scratch[as->nscratch - 1];
		const long args[6] = {(long)s->start, SCRATCH_SIZE, 0, 0, 0, 0};
		long val;
		int pending = 0, r;

		r = inject(as, tid, SYS_munmap, args, &val, &pending, s);
		if (pending)
			*ret_pending_sig = pending;
		if (r == 0 && val < 0)
			r = (int)val;
		if (r < 0 && !first)
			first = r;
		if (r == -ESRCH)
			return r;
		free(s);
		as->nscratch--;
	}
	return first;
}

int
bp_breakpoint_resume(const struct bp_aspace *as, const struct bp_breakpoint *bp,
		     struct user_regs_struct *regs)
{
	uint64_t word;
	int r;

	switch (bp->insn.kind) {
	case BP_RESUME_SKIP:
		regs->rip = bp->addr + bp->insn.len;
		return 0;
	case BP_RESUME_JMP:
		regs->rip = bp->insn.target;
		return 0;
	case BP_RESUME_CALL:
		word = bp->addr + bp->insn.len;
		r = bp_mem_write(as->memfd, regs->rsp - 8, &word, 8);
		if (r < 0)
			return r;
		regs->rsp -= 8;
		regs->rip = bp->insn.target;
		return 0;
	case BP_RESUME_RET:
		r = bp_mem_read(as->memfd, regs->rsp, &word, 8);
		if (r < 0)
			return r;
		regs->rip = word;
		regs->rsp += 8 + bp->insn.target;
		return 0;
	case BP_RESUME_OOL:
		regs->rip = bp->slot;
		return 0;
	case BP_RESUME_PAD:
		regs->rip = bp->slot + BP_PAD_BODY; /* r11 untouched: skip its save and load */
		return 0;
	}
	return -EINVAL;
}
