/*
 * Calling context through libunwind's remote unwinder. The only file that includes libunwind.
 *
 * libunwind asks its accessors for everything: registers come from the caller's
 * struct user_regs_struct, memory from a copy of the top of the stack (one process_vm_readv per
 * stop) or, outside it, from whole target pages read once per unwind. Finding a function's CFI is
 * delegated to libunwind-ptrace's _UPT_find_proc_info (which reads /proc/PID/maps, maps the
 * module's ELF and binary-searches .eh_frame_hdr), behind a cache of the results per function
 * and of the table pages read, so an unwind through known functions makes no syscall but the
 * stack copy. libunwind's own register-state cache is off (see bp_unwinder_create()).
 *
 * Ownership of unwind_info, the one subtle point: libunwind returns the CIE/FDE summary of an
 * eh_frame FDE (format UNW_INFO_FORMAT_TABLE) in an object from its internal pool, and gives it
 * back to that pool itself after each step (Gparser.c, put_unwind_info()), never through our
 * put_unwind_info accessor. So the cache keeps its own copy, and hands it out marked
 * UNW_INFO_FORMAT_REMOTE_TABLE: libunwind parses that format the same way but does not free it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#include <libunwind-ptrace.h>

#include "breakpoints/unwind.h"

#define PAGE 4096ull
/* Largest single copy: the remote iovec array (one element per page) is on the stack. */
#define MAX_COPY (32 * PAGE)
/* Target pages kept during one unwind: .eh_frame_hdr, .eh_frame, deep stack. */
#define NPAGES 8
/*
 * Target page reads allowed in one unwind. A normal miss costs a dozen; a corrupt stack that
 * sends libunwind wandering through memory stops here instead of costing milliseconds.
 */
#define MAX_PAGE_READS 64
/*
 * A kept copy's unwind reads no target page from its rsp up to this far: the stack there has
 * changed since the copy (a frame deeper than this beyond a 512-byte copy is not expected).
 */
#define STRICT_STACK_WINDOW (8ull << 20)
/* Cached functions. Past this the cache is emptied and refilled (memory stays bounded). */
#define MAX_CACHED 8192
/*
 * Pages of unwind tables (.eh_frame_hdr, .eh_frame) kept across unwinds: at most 512 (2 MiB), in
 * an open-addressed set of twice as many slots. A page is never evicted alone: the CFI of a cached
 * function is read from them at every step, and a kept copy unwound after its thread died has
 * nowhere else to read it. Once full, the set is emptied with the function cache.
 */
#define MAX_TABLE_PAGES 512
#define TABLE_SLOTS 1024

struct page {
	uint64_t addr;
	bool readable;
	uint8_t data[PAGE];
};

struct cached {
	unw_proc_info_t pi; /* format REMOTE_TABLE; unwind_info is ours (malloc) */
};

struct bp_unwinder {
	pid_t pid;
	unw_addr_space_t as;
	void *upt;     /* _UPT context of pid: its one-module ELF image cache */
	void *upt_tid; /* one for a thread, when the leader's /proc entry fails */
	pid_t upt_tid_id;
	int memfd;	    /* /proc/PID/mem, opened when process_vm_readv is refused */
	struct cached *fns; /* sorted by pi.start_ip, disjoint */
	size_t nfns, capfns;
	struct page pages[NPAGES]; /* valid for the current unwind only */
	unsigned npages, next_page, page_reads;
	struct page *tables[TABLE_SLOTS]; /* CFI, read-only data: see target_page() */
	unsigned ntables;
	bool dyn_checked; /* get_dyn_info_list_addr asked once: x86-64 targets have none */
	int dyn_result;
	unw_word_t dyn_addr;
	uint8_t copy[BP_UNWIND_STACK_COPY]; /* the live unwind's stack copy */
};

/* One bp_unwind() in progress. */
struct call {
	struct bp_unwinder *u;
	pid_t tid;
	const struct user_regs_struct *regs;
	const uint8_t *stack; /* copy of [stack_lo, stack_lo + stack_len) */
	uint64_t stack_lo;
	size_t stack_len;
	bool gone;	 /* a read said the thread no longer exists */
	bool strict;	 /* a kept copy: the stack beyond it has changed since, never read it */
	bool in_find_pi; /* inside _UPT_find_proc_info: reads are of unwind tables */
};

/*
 * The unwind in progress on this thread. libunwind hands our accessors either our own argument
 * or, from inside _UPT_find_proc_info, the _UPT context; this is how both reach the call.
 */
static __thread struct call *active;

/* ---- Target memory ---- */

static int
open_mem(struct bp_unwinder *u)
{
	char path[64];

	if (u->memfd >= 0)
		return u->memfd;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)u->pid);
	u->memfd = open(path, O_RDONLY | O_CLOEXEC);
	return u->memfd >= 0 ? u->memfd : -errno;
}

/*
 * One process_vm_readv of [addr, addr + len), split at page boundaries on the remote side so
 * that a range running into unmapped memory yields its readable head (the kernel transfers
 * whole iovec elements only). Falls back to pread of /proc/PID/mem when the syscall is refused.
 */
static ssize_t
read_target(struct bp_unwinder *u, pid_t tid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote[MAX_COPY / PAGE + 1];
	unsigned n = 0;
	uint64_t a = addr, end = addr + len;
	ssize_t r;

	if (len == 0)
		return 0;
	if (end < addr)
		return -EFAULT;
	while (a < end && n < sizeof(remote) / sizeof(remote[0])) {
		uint64_t stop = (a & ~(PAGE - 1)) + PAGE;

		if (stop > end || stop == 0)
			stop = end;
		remote[n].iov_base = (void *)(uintptr_t)a;
		remote[n].iov_len = stop - a;
		n++;
		a = stop;
	}
	local.iov_len = a - addr;
	r = process_vm_readv(tid, &local, 1, remote, n, 0);
	if (r >= 0)
		return r;
	if (errno != ENOSYS && errno != EPERM)
		return -errno;
	/* Without cross-memory attach: /proc/PID/mem, which any thread's memory is. */
	int fd = u ? open_mem(u) : -EBADF;
	char path[64];
	bool own = false;

	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)tid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? -ESRCH : -errno;
		own = true;
	}
	r = pread(fd, buf, local.iov_len, (off_t)addr);
	if (r < 0)
		r = errno == EIO ? -EFAULT : -errno;
	if (own)
		close(fd);
	return r;
}

int
bp_stack_copy(pid_t tid, uint64_t sp, void *buf, size_t len)
{
	ssize_t r;

	if (len > MAX_COPY)
		len = MAX_COPY;
	r = read_target(NULL, tid, sp, buf, len);
	if (r == 0 && len > 0)
		return -EFAULT;
	return (int)r;
}

/* The slot of table page @page, or the empty slot where it would go. */
static struct page **
table_slot(struct bp_unwinder *u, uint64_t page)
{
	size_t i = (size_t)((page / PAGE) * 0x9e3779b97f4a7c15ull >> 32) % TABLE_SLOTS;

	while (u->tables[i] && u->tables[i]->addr != page)
		i = (i + 1) % TABLE_SLOTS;
	return &u->tables[i];
}

static void
tables_clear(struct bp_unwinder *u)
{
	for (size_t i = 0; i < TABLE_SLOTS; i++) {
		free(u->tables[i]);
		u->tables[i] = NULL;
	}
	u->ntables = 0;
}

/*
 * A whole target page. Pages of unwind tables are kept until the next flush: they lie in a
 * module's read-only segment, and the CFI interpreter reads them again, a byte at a time, at
 * every step. A table page is one read from inside _UPT_find_proc_info, or the page right after
 * one: a CIE's or an FDE's instructions may run into the next page, which only the interpreter
 * reads, after the lookup. Other pages (stack beyond the copy, code) are kept for the current
 * unwind only: the target runs between unwinds. NULL when unreadable.
 */
static const uint8_t *
target_page(struct call *c, uint64_t page)
{
	struct bp_unwinder *u = c->u;
	struct page *p, **slot = table_slot(u, page);
	bool table;
	ssize_t r;

	if (*slot)
		return (*slot)->data;
	for (unsigned i = 0; i < u->npages; i++)
		if (u->pages[i].addr == page)
			return u->pages[i].readable ? u->pages[i].data : NULL;
	if (c->gone || u->page_reads >= MAX_PAGE_READS)
		return NULL;
	table = c->in_find_pi || (page >= PAGE && *table_slot(u, page - PAGE));
	/* Unwind tables lie in modules; stack pages are never among them. */
	if (c->strict && !table && page + PAGE > c->stack_lo &&
	    page < c->stack_lo + STRICT_STACK_WINDOW)
		return NULL;
	u->page_reads++;
	if (u->npages < NPAGES)
		p = &u->pages[u->npages++];
	else
		p = &u->pages[u->next_page++ % NPAGES];
	p->addr = page;
	r = read_target(u, c->tid, page, p->data, PAGE);
	p->readable = r == (ssize_t)PAGE;
	if (r == -ESRCH)
		c->gone = true;
	if (!p->readable)
		return NULL;
	/* Full: unwind() empties the set before the next unwind, not under libunwind's feet. */
	if (table && u->ntables < MAX_TABLE_PAGES && (*slot = malloc(sizeof(**slot)))) {
		memcpy(*slot, p, sizeof(**slot));
		u->ntables++;
	}
	return p->data;
}

static int
read_word(struct call *c, uint64_t addr, unw_word_t *valp)
{
	uint8_t bytes[sizeof(*valp)];
	size_t done = 0;

	if (addr >= c->stack_lo && addr - c->stack_lo <= c->stack_len &&
	    c->stack_len - (addr - c->stack_lo) >= sizeof(*valp)) {
		memcpy(valp, c->stack + (addr - c->stack_lo), sizeof(*valp));
		return 0;
	}
	if (addr > UINT64_MAX - sizeof(*valp))
		return -UNW_EINVAL;
	while (done < sizeof(bytes)) { /* at most two pages */
		uint64_t a = addr + done, page = a & ~(PAGE - 1);
		size_t off = a - page, n = sizeof(bytes) - done;
		const uint8_t *p = target_page(c, page);

		if (!p)
			return -UNW_EINVAL;
		if (n > PAGE - off)
			n = PAGE - off;
		memcpy(bytes + done, p + off, n);
		done += n;
	}
	memcpy(valp, bytes, sizeof(bytes));
	return 0;
}

/* ---- Accessors ---- */

static int
access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write, void *arg)
{
	if (!active || write)
		return -UNW_EINVAL; /* the target's memory is never written from here */
	return read_word(active, addr, valp);
}

static int
access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write, void *arg)
{
	const struct user_regs_struct *r;

	if (!active || write)
		return -UNW_EREADONLYREG;
	r = active->regs;
	switch (reg) {
	case UNW_X86_64_RAX:
		*valp = r->rax;
		break;
	case UNW_X86_64_RDX:
		*valp = r->rdx;
		break;
	case UNW_X86_64_RCX:
		*valp = r->rcx;
		break;
	case UNW_X86_64_RBX:
		*valp = r->rbx;
		break;
	case UNW_X86_64_RSI:
		*valp = r->rsi;
		break;
	case UNW_X86_64_RDI:
		*valp = r->rdi;
		break;
	case UNW_X86_64_RBP:
		*valp = r->rbp;
		break;
	case UNW_X86_64_RSP:
		*valp = r->rsp;
		break;
	case UNW_X86_64_R8:
		*valp = r->r8;
		break;
	case UNW_X86_64_R9:
		*valp = r->r9;
		break;
	case UNW_X86_64_R10:
		*valp = r->r10;
		break;
	case UNW_X86_64_R11:
		*valp = r->r11;
		break;
	case UNW_X86_64_R12:
		*valp = r->r12;
		break;
	case UNW_X86_64_R13:
		*valp = r->r13;
		break;
	case UNW_X86_64_R14:
		*valp = r->r14;
		break;
	case UNW_X86_64_R15:
		*valp = r->r15;
		break;
	case UNW_X86_64_RIP:
		*valp = r->rip;
		break;
	default:
		return -UNW_EBADREG;
	}
	return 0;
}

static int
access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write, void *arg)
{
	return -UNW_EBADREG; /* no CFI we follow restores vector registers */
}

static int
resume(unw_addr_space_t as, unw_cursor_t *cursor, void *arg)
{
	return -UNW_EINVAL;
}

static int
get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len, unw_word_t *offp,
	      void *arg)
{
	return -UNW_ENOINFO; /* names come from the symbolizer (dwarf.c) */
}

/*
 * Asked at every step without libunwind's cache: the answer (libunwind-ptrace has no dynamic
 * info list to offer on x86-64) is asked of _UPT once, then remembered until the next flush.
 */
static int
get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	struct bp_unwinder *u;

	if (!active)
		return -UNW_ENOINFO;
	u = active->u;
	if (!u->dyn_checked) {
		u->dyn_result = _UPT_get_dyn_info_list_addr(as, &u->dyn_addr, u->upt);
		u->dyn_checked = true;
	}
	if (u->dyn_result >= 0)
		*dilap = u->dyn_addr;
	return u->dyn_result;
}

static void
put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* Only dynamic info reaches here (Gparser.c frees the TABLE kind itself); ours stays. */
	if (pi->format == UNW_INFO_FORMAT_DYNAMIC && active)
		_UPT_put_unwind_info(as, pi, active->u->upt);
	pi->unwind_info = NULL;
}

/* ---- The per-function cache ---- */

/* Index of the first entry whose start_ip is > @ip. */
static size_t
upper_bound(const struct bp_unwinder *u, uint64_t ip)
{
	size_t lo = 0, hi = u->nfns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->fns[mid].pi.start_ip <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct cached *
cache_find(const struct bp_unwinder *u, uint64_t ip)
{
	size_t i = upper_bound(u, ip);

	if (i == 0 || ip >= u->fns[i - 1].pi.end_ip)
		return NULL;
	return &u->fns[i - 1];
}

static void
cache_clear(struct bp_unwinder *u)
{
	for (size_t i = 0; i < u->nfns; i++)
		free(u->fns[i].pi.unwind_info);
	u->nfns = 0;
}

/* Keeps a copy of a freshly found @pi. Failure only costs a later re-parse. */
static void
cache_add(struct bp_unwinder *u, const unw_proc_info_t *pi)
{
	size_t i = upper_bound(u, pi->start_ip);
	void *info;

	if (pi->start_ip >= pi->end_ip || pi->unwind_info_size <= 0)
		return;
	/* Overlapping a known range: keep the first, the tables do not change under us. */
	if ((i > 0 && u->fns[i - 1].pi.end_ip > pi->start_ip) ||
	    (i < u->nfns && u->fns[i].pi.start_ip < pi->end_ip))
		return;
	if (u->nfns == MAX_CACHED) {
		cache_clear(u);
		i = 0;
	}
	if (u->nfns == u->capfns) {
		size_t cap = u->capfns ? u->capfns * 2 : 64;
		struct cached *fns = realloc(u->fns, cap * sizeof(*fns));

		if (!fns)
			return;
		u->fns = fns;
		u->capfns = cap;
	}
	info = malloc((size_t)pi->unwind_info_size);
	if (!info)
		return;
	memcpy(info, pi->unwind_info, (size_t)pi->unwind_info_size);
	memmove(&u->fns[i + 1], &u->fns[i], (u->nfns - i) * sizeof(*u->fns));
	u->fns[i].pi = *pi;
	u->fns[i].pi.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	u->fns[i].pi.unwind_info = info;
	u->nfns++;
}

/* _UPT context for thread @tid, made on first use (the leader's /proc entry may be a zombie's). */
static void *
upt_for(struct bp_unwinder *u, pid_t tid)
{
	if (u->upt_tid && u->upt_tid_id != tid) {
		_UPT_destroy(u->upt_tid);
		u->upt_tid = NULL;
	}
	if (!u->upt_tid) {
		u->upt_tid = _UPT_create(tid);
		u->upt_tid_id = tid;
	}
	return u->upt_tid;
}

static int
find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need_unwind_info,
	       void *arg)
{
	struct call *c = active;
	const struct cached *hit;
	int r;

	if (!c)
		return -UNW_ENOINFO;
	hit = cache_find(c->u, ip);
	if (hit) {
		*pi = hit->pi;
		return 0;
	}
	c->in_find_pi = true;
	r = _UPT_find_proc_info(as, ip, pi, need_unwind_info, c->u->upt);
	if (r < 0 && c->tid != c->u->pid && !c->gone) {
		void *upt = upt_for(c->u, c->tid);

		if (upt)
			r = _UPT_find_proc_info(as, ip, pi, need_unwind_info, upt);
	}
	c->in_find_pi = false;
	if (r < 0)
		return r;
	/* libunwind returns this one to its pool after the step; the cache keeps a copy. */
	if (need_unwind_info && pi->format == UNW_INFO_FORMAT_TABLE && pi->unwind_info)
		cache_add(c->u, pi);
	return r;
}

static unw_accessors_t accessors = {
    .find_proc_info = find_proc_info,
    .put_unwind_info = put_unwind_info,
    .get_dyn_info_list_addr = get_dyn_info_list_addr,
    .access_mem = access_mem,
    .access_reg = access_reg,
    .access_fpreg = access_fpreg,
    .resume = resume,
    .get_proc_name = get_proc_name,
};

/* ---- The unwinder ---- */

int
bp_unwinder_create(pid_t pid, struct bp_unwinder **ret_unwinder)
{
	struct bp_unwinder *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->pid = pid;
	u->memfd = -1;
	u->as = unw_create_addr_space(&accessors, 0);
	u->upt = _UPT_create(pid);
	if (!u->as || !u->upt) {
		bp_unwinder_destroy(u);
		return -ENOMEM;
	}
	/*
	 * No libunwind cache: Debian's libunwind blocks all signals around each lookup in it (two
	 * sigprocmask calls per step, 2.2 us of a 2.6 us unwind measured here), and has no
	 * thread-local variant. Our caches of functions and table pages make its uncached path
	 * cheaper than that.
	 */
	if (unw_set_caching_policy(u->as, UNW_CACHE_NONE) < 0) {
		bp_unwinder_destroy(u);
		return -EINVAL;
	}
	*ret_unwinder = u;
	return 0;
}

void
bp_unwinder_destroy(struct bp_unwinder *u)
{
	if (!u)
		return;
	if (u->as)
		unw_destroy_addr_space(u->as);
	if (u->upt)
		_UPT_destroy(u->upt);
	if (u->upt_tid)
		_UPT_destroy(u->upt_tid);
	if (u->memfd >= 0)
		close(u->memfd);
	cache_clear(u);
	tables_clear(u);
	free(u->fns);
	free(u);
}

void
bp_unwinder_flush(struct bp_unwinder *u)
{
	void *upt;

	if (!u)
		return;
	cache_clear(u);
	tables_clear(u);
	u->dyn_checked = false;
	unw_flush_cache(u->as, 0, 0);
	/* _UPT keeps the last module's ELF image mapped, by address range: drop it too. */
	upt = _UPT_create(u->pid);
	if (upt) {
		_UPT_destroy(u->upt);
		u->upt = upt;
	}
	if (u->upt_tid) {
		_UPT_destroy(u->upt_tid);
		u->upt_tid = NULL;
	}
}

static int
unwind(struct bp_unwinder *u, pid_t tid, const struct user_regs_struct *regs, const void *stack,
       size_t stack_len, bool strict, uint64_t *pcs, int max)
{
	struct call c = {.u = u, .tid = tid, .regs = regs, .stack_lo = regs ? regs->rsp : 0,
			 .strict = strict};
	unw_cursor_t cursor;
	int n = 0, r;

	if (!u || !regs || !pcs || max < 1 || max > BP_UNWIND_MAX_FRAMES)
		return -EINVAL;
	if (stack) {
		c.stack = stack;
		c.stack_len = stack_len;
	} else {
		r = bp_stack_copy(tid, regs->rsp, u->copy, sizeof(u->copy));
		if (r == -ESRCH)
			return r;
		if (r > 0) { /* an unreadable rsp is the caller's corrupt stack: no copy */
			c.stack = u->copy;
			c.stack_len = (size_t)r;
		}
	}
	u->npages = u->next_page = u->page_reads = 0;
	if (u->ntables == MAX_TABLE_PAGES) { /* no function's CFI may outlive its pages */
		cache_clear(u);
		tables_clear(u);
	}
	pcs[n++] = regs->rip;
	if (n == max)
		return n;

	active = &c;
	r = unw_init_remote(&cursor, u->as, &c);
	while (r >= 0 && n < max) {
		unw_word_t ip;

		r = unw_step(&cursor);
		if (r <= 0)
			break;
		if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		pcs[n++] = ip;
	}
	active = NULL;
	return n;
}

int
bp_unwind(struct bp_unwinder *u, pid_t tid, const struct user_regs_struct *regs, const void *stack,
	  size_t stack_len, uint64_t *pcs, int max)
{
	return unwind(u, tid, regs, stack, stack_len, false, pcs, max);
}

int
bp_unwind_kept(struct bp_unwinder *u, pid_t tid, const struct user_regs_struct *regs,
	       const void *stack, size_t stack_len, uint64_t *pcs, int max)
{
	if (!stack)
		return -EINVAL;
	return unwind(u, tid, regs, stack, stack_len, true, pcs, max);
}
