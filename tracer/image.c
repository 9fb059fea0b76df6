/*
 * A process image: which functions of which modules get a breakpoint. Every loaded module's
 * symbol tables are searched for the synchronization entry points (AVISO.md section 1), and the
 * dynamic linker's _dl_debug_state is watched so that libraries loaded later are searched too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tracer/internal.h"

/* Entry points and the kind each one's calls are. Sorted by name for bsearch. */
static const struct entry {
	const char *name;
	int tag;
} entries[] = {
	{"_dl_debug_state", TAG_RBRK},
	{"pthread_barrier_wait", MODEL_EV_BARRIER_WAIT},
	{"pthread_clockjoin_np", MODEL_EV_THREAD_JOIN},
	{"pthread_cond_broadcast", MODEL_EV_COND_BROADCAST},
	{"pthread_cond_clockwait", MODEL_EV_COND_TIMEDWAIT},
	{"pthread_cond_signal", MODEL_EV_COND_SIGNAL},
	{"pthread_cond_timedwait", MODEL_EV_COND_TIMEDWAIT},
	{"pthread_cond_wait", MODEL_EV_COND_WAIT},
	{"pthread_create", MODEL_EV_THREAD_CREATE},
	{"pthread_join", MODEL_EV_THREAD_JOIN},
	{"pthread_mutex_clocklock", MODEL_EV_MUTEX_TIMEDLOCK},
	{"pthread_mutex_lock", MODEL_EV_MUTEX_LOCK},
	{"pthread_mutex_timedlock", MODEL_EV_MUTEX_TIMEDLOCK},
	{"pthread_mutex_trylock", MODEL_EV_MUTEX_TRYLOCK},
	{"pthread_mutex_unlock", MODEL_EV_MUTEX_UNLOCK},
	{"pthread_rwlock_clockrdlock", MODEL_EV_RWLOCK_RDLOCK},
	{"pthread_rwlock_clockwrlock", MODEL_EV_RWLOCK_WRLOCK},
	{"pthread_rwlock_rdlock", MODEL_EV_RWLOCK_RDLOCK},
	{"pthread_rwlock_timedrdlock", MODEL_EV_RWLOCK_RDLOCK},
	{"pthread_rwlock_timedwrlock", MODEL_EV_RWLOCK_WRLOCK},
	{"pthread_rwlock_tryrdlock", MODEL_EV_RWLOCK_TRYRDLOCK},
	{"pthread_rwlock_trywrlock", MODEL_EV_RWLOCK_TRYWRLOCK},
	{"pthread_rwlock_unlock", MODEL_EV_RWLOCK_UNLOCK},
	{"pthread_rwlock_wrlock", MODEL_EV_RWLOCK_WRLOCK},
	{"pthread_spin_lock", MODEL_EV_SPIN_LOCK},
	{"pthread_spin_unlock", MODEL_EV_SPIN_UNLOCK},
	{"pthread_timedjoin_np", MODEL_EV_THREAD_JOIN},
	{"pthread_tryjoin_np", MODEL_EV_THREAD_JOIN},
	{"sem_clockwait", MODEL_EV_SEM_TIMEDWAIT},
	{"sem_post", MODEL_EV_SEM_POST},
	{"sem_timedwait", MODEL_EV_SEM_TIMEDWAIT},
	{"sem_wait", MODEL_EV_SEM_WAIT},
};

static int
cmp_entry(const void *key, const void *elem)
{
	return strcmp(key, ((const struct entry *)elem)->name);
}

struct plant_ctx {
	struct tracer *t;
	struct process *p;
	struct bp_module *m;
	pid_t tid;
	uint64_t bias;
	int planted;
	int first_error;
};

/* Functions larger than this are not decoded (jumps back to the entry, straight runs). */
#define MAX_FUNCTION_SCAN (64 * 1024)

/*
 * The code of the function at @entry, @size bytes, as the program has it (our int3s hidden):
 * malloc'd, or NULL when it is larger than MAX_FUNCTION_SCAN or cannot be read.
 */
static uint8_t *
function_code(struct plant_ctx *c, uint64_t entry, uint64_t size)
{
	uint8_t *code;

	if (size > MAX_FUNCTION_SCAN || !(code = malloc(size)))
		return NULL;
	if (bp_aspace_read(c->p->as, entry, code, size) < 0) {
		free(code);
		return NULL;
	}
	return code;
}

/*
 * A jump inside a function back to its own entry (glibc's pthread_spin_lock retries that way)
 * would hit the entry's breakpoint again in the same call. Each such jump gets a breakpoint of
 * its own that resumes the thread past the entry's one, without an event.
 */
static void
plant_reentries(struct plant_ctx *c, uint64_t entry, uint64_t size)
{
	uint64_t jumps[8];
	uint8_t *code;
	size_t n;

	if (size < 2 || !(code = function_code(c, entry, size)))
		return;
	n = bp_insn_find_jumps_to(code, size, entry, entry, jumps, 8);
	for (size_t i = 0; i < n && i < 8; i++) {
		const uint8_t *at = code + (jumps[i] - entry);
		struct bp_insn plan;
		int pending = 0;

		/* Only jumps whose direction the tracer can tell: jmp, and jcc on flags. */
		if (bp_insn_plan(at, size - (jumps[i] - entry), jumps[i], jumps[i], &plan) < 0 ||
		    (plan.kind != BP_RESUME_JMP && plan.cond < 0))
			continue;
		bp_aspace_insert(c->p->as, c->tid, jumps[i], TAG_REENTRY, &pending);
	}
	free(code);
}

static int
plant_symbol(void *ctx, const char *name, uint64_t value, uint64_t size)
{
	struct plant_ctx *c = ctx;
	const struct entry *e;
	int r, pending = 0;

	if (name[0] != 'p' && name[0] != 's' && name[0] != '_')
		return 0;
	e = bsearch(name, entries, sizeof(entries) / sizeof(entries[0]), sizeof(entries[0]),
		    cmp_entry);
	if (!e || (e->tag == TAG_RBRK && !c->m->system))
		return 0;
	/* Event entries get a jump pad where they allow one (the cheapest stop); the rest an int3. */
	if (e->tag >= 0 && c->t->pads)
		r = bp_aspace_insert_entry(c->p->as, c->tid, c->bias + value, size, e->tag, &pending);
	else
		r = bp_aspace_insert(c->p->as, c->tid, c->bias + value, e->tag, &pending);
	if (pending) {
		struct thread *th = thread_find(c->t, c->tid);
		if (th)
			th->pending_sig = pending;
	}
	if (r == 0) {
		c->planted++;
		if (e->tag >= 0)
			plant_reentries(c, c->bias + value, size);
	} else if (r != -EEXIST && !c->first_error) {
		log_msg("cannot plant a breakpoint on %s in %s: %s", name, c->m->name,
			 strerror(-r));
		c->first_error = r;
	}
	return r == -ESRCH ? r : 0; /* the thread lending its hands is gone: stop */
}

/* Function ranges of a module, as offsets from its load base, sorted by start. */
struct funcs {
	struct func_range {
		uint64_t start, end;
	} *v;
	size_t n, cap;
	uint64_t first_vaddr;
};

static int
add_func(void *ctx, const char *name, uint64_t value, uint64_t size)
{
	struct funcs *f = ctx;

	(void)name;
	if (!size || value < f->first_vaddr)
		return 0;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 256;
		struct func_range *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct func_range){value - f->first_vaddr, value - f->first_vaddr + size};
	return 0;
}

static int
cmp_func(const void *a, const void *b)
{
	const struct func_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The function that holds offset @off, or NULL (none, or one over 1 MiB). */
static const struct func_range *
func_of(const struct funcs *f, uint64_t off)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) { /* the first range starting after @off */
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && f->v[i].start + (1u << 20) > off;)
		if (off < f->v[i].end)
			return &f->v[i];
	return NULL;
}

/*
 * Whether the code of @fn (offsets in @m) from @first to @later runs only straight through
 * (bp_insn_straight): then @later executes only right after @first, and a breakpoint there
 * would stop the thread a second time in one pass of the statement.
 */
static bool
straight_between(struct plant_ctx *c, const struct bp_module *m, const struct func_range *fn,
		 uint64_t first, uint64_t later)
{
	uint64_t entry = m->base + fn->start, size = fn->end - fn->start;
	uint8_t *code = function_code(c, entry, size);
	bool straight = code && bp_insn_straight(code, size, entry, m->base + first,
						 m->base + later);

	free(code);
	return straight;
}

/*
 * The --points entries (or the --tick-at ones) found in a program module get a breakpoint
 * tagged @tag at each of their addresses, its group the entry's index (a point's identity: one
 * line may begin a statement at several addresses); @found[i] notes entry i resolved. The
 * later addresses of an entry in one function (@elf's symbols) are aliases of its first: one
 * line's statement, interleaved with another's by the compiler, is one site, named where it
 * begins (lost_update's load of line 42 lies between its two addresses, and a constraint whose
 * B is the second would begin after the access it is about). A later address that the code
 * reaches only straight from the first one gets no breakpoint at all: it would be a second
 * stop in the same pass of the statement, and a stop is time (lost_update's trailer loads at
 * line 66's first address and stores at its second: stopped there, it held its load for the
 * length of a stop while the compressor's store came in between and was lost).
 */
static void
plant_points(struct plant_ctx *c, struct bp_module *m, const struct bp_elf *elf,
	     const struct bp_point *points, size_t n, bool *found, int tag, const char *option)
{
	struct bp_point_addrs *addrs;
	struct funcs funcs = {.first_vaddr = bp_elf_first_vaddr(elf)};
	int r;

	r = bp_points_resolve_all(m->path, points, n, &addrs);
	if (r < 0)
		return; /* no line tables: nothing of the program's sources here */
	if (bp_elf_foreach_func(elf, add_func, &funcs) == 0 && funcs.n)
		qsort(funcs.v, funcs.n, sizeof(*funcs.v), cmp_func);
	else
		funcs.n = 0; /* no aliases */
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < addrs[i].n; k++) {
			int pending = 0;
			uint64_t off = addrs[i].offsets[k], at = m->base + off, first = 0;
			const struct func_range *fn = funcs.n ? func_of(&funcs, off) : NULL;
			struct bp_breakpoint *bp;

			/* The first of the entry's earlier addresses in the function that it
			 * planted (not one another entry took first): the alias's site. */
			for (size_t j = 0; fn && j < k && !first; j++) {
				const struct bp_breakpoint *f =
				    bp_aspace_lookup(c->p->as, m->base + addrs[i].offsets[j]);
				if (f && f->tag == tag && f->group == i &&
				    func_of(&funcs, addrs[i].offsets[j]) == fn)
					first = m->base + addrs[i].offsets[j];
			}
			if (first && straight_between(c, m, fn, first - m->base, off))
				continue;
			r = bp_aspace_insert(c->p->as, c->tid, at, tag, &pending);
			if (r == 0) {
				bp = bp_aspace_lookup(c->p->as, at);
				if (bp && addrs[i].ends[k])
					bp->span_end = m->base + addrs[i].ends[k];
				if (bp) {
					bp->group = (uint32_t)i;
					bp->alias = first;
				}
				c->planted++;
				found[i] = true;
			} else if (r == -EEXIST) {
				/* Two entries that begin a statement at one address (a line listed
				 * twice, or a later address of one line that begins another): the
				 * first one's. */
				bp = bp_aspace_lookup(c->p->as, at);
				found[i] |= bp && bp->tag == tag;
			} else {
				log_msg("%s: cannot plant %s %d at %s+0x%" PRIx64 ": %s", option,
					points[i].file, points[i].line, m->name, off,
					strerror(-r));
			}
		}
	}
	bp_point_addrs_free(addrs, n);
	free(funcs.v);
}

/* Names the entries no module had code for, once the program's libraries are in. */
static void
report_unresolved(struct tracer *t, struct process *p)
{
	const struct tracer_options *o = &t->opt;
	const struct bp_module *main_mod = bp_aspace_main_module(p->as);
	bool libc = false;

	for (const struct bp_module *m = bp_aspace_modules(p->as); m; m = m->next)
		libc |= m->system;
	if (t->points_reported || !(o->npoints || o->ntick_at) ||
	    (!libc && !t->attached && main_mod))
		return;
	t->points_reported = true;
	for (size_t i = 0; i < o->npoints; i++)
		if (!t->point_found[i])
			log_msg("--points: no code for '%s %d' in %s or its libraries",
				o->points[i].file, o->points[i].line,
				main_mod ? main_mod->name : "the program");
	for (size_t i = 0; i < o->ntick_at; i++)
		if (!t->tick_found[i])
			log_msg("--tick-at: no code for '%s:%d' in %s or its libraries",
				o->tick_at[i].file, o->tick_at[i].line,
				main_mod ? main_mod->name : "the program");
}

static void
module_added(void *ctx, struct bp_aspace *as, struct bp_module *m)
{
	struct plant_ctx *c = ctx;
	struct bp_elf *elf;
	int r;

	(void)as;
	r = bp_elf_open(m->path, &elf);
	if (r < 0)
		return; /* [vdso]-like or deleted files: nothing to plant */
	if (bp_elf_build_id(elf) && !m->build_id)
		m->build_id = strdup(bp_elf_build_id(elf));
	c->m = m;
	c->bias = m->base - bp_elf_first_vaddr(elf);
	/* The event ring goes in before the first pad (every module is known by now). */
	if (c->t->ring && c->p->record && !bp_aspace_ring(as) && !c->p->ring_failed) {
		r = ring_map(c->t, c->p, c->tid);
		if (r < 0) {
			c->p->ring_failed = true;
			log_msg("process %d: cannot map the event ring (%s): every event stops",
				c->p->pid, strerror(-r));
		}
	}
	bp_elf_foreach_func(elf, plant_symbol, c);
	if (c->t->opt.npoints && !m->wildcard && c->p->record)
		plant_points(c, m, elf, c->t->opt.points, c->t->opt.npoints, c->t->point_found,
			     TAG_POINT, "--points");
	if (c->t->opt.ntick_at && !m->wildcard && c->p->record)
		plant_points(c, m, elf, c->t->opt.tick_at, c->t->opt.ntick_at, c->t->tick_found,
			     TAG_TICK, "--tick-at");
	bp_elf_close(elf);
	c->p->sym_stale = true;
	c->p->unw_stale = true;
}

int
image_refresh(struct tracer *t, struct process *p, pid_t stopped_tid)
{
	struct plant_ctx c = {.t = t, .p = p, .tid = stopped_tid};
	int r;

	r = bp_aspace_refresh(p->as, module_added, &c);
	if (r < 0)
		return r;
	if (p->record)
		report_unresolved(t, p);
	if (t->fsm) /* the constraints' return addresses in the modules now loaded */
		stall_refresh_decisions(t);
	return c.planted;
}
