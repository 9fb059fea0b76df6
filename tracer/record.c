/*
 * Events: each gets the next sequence number, a timestamp and its site; it is written to the
 * -o stream (one JSON line) and counted for the -c table.
 *
 * A site is a calling context made stable across runs and ASLR: for each frame, the module's
 * name and the offset from the module's base (AVISO.md section 1). Sites are interned by their
 * string, so a site seen in several processes (forks, execs) is one row of the table; the
 * context -> site lookup is cached per process image, and symbolization (libdw) happens once
 * per site.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breakpoints/unwind.h"
#include "tracer/internal.h"

static size_t
hash_str(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static size_t
hash_pcs(const uint64_t *pcs, unsigned n)
{
	uint64_t h = n;

	for (unsigned i = 0; i < n; i++)
		h = (h ^ pcs[i]) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 40) & (SITE_BUCKETS - 1);
}

static struct bp_symbolizer *
symbolizer(struct process *p)
{
	if (p->sym && p->sym_stale) {
		bp_symbolizer_destroy(p->sym);
		p->sym = NULL;
	}
	if (!p->sym && bp_symbolizer_create(p->pid, &p->sym) < 0)
		return NULL;
	p->sym_stale = false;
	return p->sym;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Fills @f for code address @pc (one byte back when it is a return address). */
static void
frame_of(struct process *p, uint64_t pc, bool is_return, struct model_frame *f)
{
	const struct bp_module *m = bp_aspace_module_at(p->as, pc);
	struct bp_symbolizer *sym = symbolizer(p);
	struct bp_source src;

	memset(f, 0, sizeof(*f));
	f->offset = m ? pc - m->base : pc;
	if (m) {
		f->module = strdup(m->name);
		f->build_id = dup_or_null(m->build_id);
		f->system = m->wildcard;
	}
	/* A system library's frames are wildcards: their function names will do. */
	if (sym && bp_symbolizer_frame(sym, is_return ? pc - 1 : pc, !f->system, &src) == 0) {
		/* A call inlined into its caller is shown at the caller's line. */
		bool outer = is_return && src.call_file;
		f->file = dup_or_null(outer ? src.call_file : src.file);
		f->line = outer ? src.call_line : src.line;
		f->func = dup_or_null(src.func);
	}
}

static void
free_frames(struct model_frame *frames, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		free((char *)frames[i].module);
		free((char *)frames[i].build_id);
		free((char *)frames[i].file);
		free((char *)frames[i].func);
	}
	free(frames);
}

void
site_free(struct site *s)
{
	free(s->str);
	free(s->where);
	free_frames(s->frames, s->nframes);
	free(s);
}

/*
 * The canonical string: frames joined by '<', each "module+0xoffset"; a frame in a system
 * library is "module+*" (recorded in the frames, a wildcard for matching); code outside any
 * module is its address.
 */
static void
site_string(struct process *p, const uint64_t *pcs, unsigned n, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n && len < size; i++) {
		const struct bp_module *m = bp_aspace_module_at(p->as, pcs[i]);
		const char *sep = i ? "<" : "";
		int r;

		if (!m)
			r = snprintf(buf + len, size - len, "%s0x%" PRIx64, sep, pcs[i]);
		else if (m->wildcard)
			r = snprintf(buf + len, size - len, "%s%s+*", sep, m->name);
		else
			r = snprintf(buf + len, size - len, "%s%s+0x%" PRIx64, sep, m->name,
				     pcs[i] - m->base);
		len += r > 0 ? (size_t)r : 0;
	}
}

/* A deep copy of @n frames, or NULL. */
static struct model_frame *
copy_frames(const struct model_frame *from, unsigned n)
{
	struct model_frame *f = calloc(n ? n : 1, sizeof(*f));

	if (!f)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		f[i] = from[i];
		f[i].module = dup_or_null(from[i].module);
		f[i].build_id = dup_or_null(from[i].build_id);
		f[i].file = dup_or_null(from[i].file);
		f[i].func = dup_or_null(from[i].func);
	}
	return f;
}

/* The site of string @str whose frame 0 is a return address or not (@ret0) in chain @head, or
 * NULL. */
static struct site *
find_site(struct site *head, const char *str, bool ret0)
{
	for (struct site *s = head; s; s = s->next)
		if (s->ret0 == ret0 && strcmp(s->str, str) == 0)
			return s;
	return NULL;
}

/* A new site @str with frames @frames (taken) and their "file:line func" as where. */
static struct site *
new_site(const char *str, struct model_frame *frames, unsigned n, bool ret0)
{
	struct site *s = calloc(1, sizeof(*s));
	char buf[1024];

	if (!s) {
		free_frames(frames, n);
		return NULL;
	}
	s->frames = frames;
	s->nframes = n;
	s->ret0 = ret0;
	s->str = strdup(str);
	if (!s->str) {
		site_free(s);
		return NULL;
	}
	if (frames[0].file && frames[0].func)
		snprintf(buf, sizeof(buf), "%s:%d %s", frames[0].file, frames[0].line,
			 frames[0].func);
	else if (frames[0].file)
		snprintf(buf, sizeof(buf), "%s:%d", frames[0].file, frames[0].line);
	else if (frames[0].func)
		snprintf(buf, sizeof(buf), "%s", frames[0].func);
	else
		buf[0] = '\0';
	s->where = buf[0] ? strdup(buf) : NULL;
	return s;
}

struct site_memo {
	struct site *hash[SITE_BUCKETS];
};

struct site_memo *
site_memo_create(void)
{
	return calloc(1, sizeof(struct site_memo));
}

void
site_table_clear(struct site **hash)
{
	for (size_t i = 0; i < SITE_BUCKETS; i++) {
		while (hash[i]) {
			struct site *s = hash[i];
			hash[i] = s->next;
			site_free(s);
		}
	}
}

void
site_memo_destroy(struct site_memo *memo)
{
	if (!memo)
		return;
	site_table_clear(memo->hash);
	free(memo);
}

/*
 * The site of string @str, made at its first event. Its frames are symbolized from the
 * process's DWARF (milliseconds for a new site: in a short program, a tracer that lags by
 * that much lets a thread's delay expire before the tracer sees its A), or copied from the
 * series' memo, where a site string (module offsets) means the same code in every run.
 */
static struct site *
intern(struct tracer *t, struct process *p, const char *str, const uint64_t *pcs, unsigned n,
       bool ret0)
{
	size_t h = hash_str(str) & (SITE_BUCKETS - 1);
	struct site_memo *memo = t->opt.site_memo;
	struct site *s = find_site(t->site_hash[h], str, ret0), *known;
	struct model_frame *frames;
	bool keep = true;

	if (s)
		return s;
	known = memo ? find_site(memo->hash[h], str, ret0) : NULL;
	if (known) {
		frames = copy_frames(known->frames, known->nframes);
		n = known->nframes;
	} else {
		frames = calloc(n, sizeof(*frames));
		for (unsigned i = 0; frames && i < n; i++) {
			frame_of(p, pcs[i], i > 0 || ret0, &frames[i]);
			keep &= frames[i].module != NULL; /* a bare address: this run's only */
		}
	}
	if (!frames || !(s = new_site(str, frames, n, ret0)))
		return NULL;
	s->next = t->site_hash[h];
	t->site_hash[h] = s;
	if (memo && !known && keep && (frames = copy_frames(s->frames, n))) {
		struct site *m = new_site(str, frames, n, ret0);
		if (m) {
			m->next = memo->hash[h];
			memo->hash[h] = m;
		}
	}
	return s;
}

struct site *
site_of(struct tracer *t, struct process *p, const uint64_t *pcs, unsigned n, bool ret0)
{
	size_t h;
	struct site_ref *ref;
	struct site *s;
	char str[2048];

	if (n > TRACER_MAX_FRAMES)
		n = TRACER_MAX_FRAMES;
	h = hash_pcs(pcs, n);
	for (ref = p->sites[h]; ref; ref = ref->next)
		if (ref->n == n && ref->ret0 == ret0 && memcmp(ref->pcs, pcs, n * sizeof(*pcs)) == 0)
			return ref->site;
	site_string(p, pcs, n, str, sizeof(str));
	s = intern(t, p, str, pcs, n, ret0);
	ref = malloc(sizeof(*ref));
	if (!s || !ref) {
		free(ref);
		return s;
	}
	ref->n = n;
	ref->ret0 = ret0;
	memcpy(ref->pcs, pcs, n * sizeof(*pcs));
	ref->site = s;
	ref->next = p->sites[h];
	p->sites[h] = ref;
	return s;
}

/* The process's unwinder, created at first use and flushed when its modules changed; NULL when
 * it cannot be made (events then have frame 0 only). */
static struct bp_unwinder *
unwinder(struct process *p)
{
	if (!p->unw || p->unw_stale) {
		if (!p->unw && bp_unwinder_create(p->pid, &p->unw) < 0)
			return NULL;
		bp_unwinder_flush(p->unw);
		p->unw_stale = false;
	}
	return p->unw;
}

unsigned
capture_pcs(struct tracer *t, struct thread *th, const struct user_regs_struct *regs,
	    const void *stack, size_t stack_len, uint64_t *pcs, unsigned max)
{
	struct process *p = th->proc;
	int n;

	pcs[0] = regs->rip;
	if (max <= 1 || !unwinder(p))
		return 1;
	n = bp_unwind(p->unw, th->tid, regs, stack, stack_len, pcs, (int)max);
	return n >= 1 ? (unsigned)n : 1;
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned
capture_kept_pcs(struct tracer *t, struct process *p, const struct user_regs_struct *regs,
		 const void *stack, size_t stack_len, uint64_t *pcs, unsigned max)
{
	int n;

	(void)t;
	pcs[0] = regs->rip;
	if (max <= 1 || !unwinder(p))
		return 1;
	/* Tables are read through the process id: the event's thread may be gone. */
	n = bp_unwind_kept(p->unw, p->pid, regs, stack, stack_len, pcs, (int)max);
	return n >= 1 ? (unsigned)n : 1;
}

void
record_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
	     const struct site *s, uint64_t object)
{
	ring_drain(t);
	record_event_at(t, th, kind, s, object, now_ns());
}

void
record_event_at(struct tracer *t, struct thread *th, enum model_event_kind kind,
		const struct site *s, uint64_t object, uint64_t ns)
{
	struct rpb_entry e = {
		.seq = ++t->seq,
		.ns = ns,
		.object = object,
		.site = s,
		.tid = th->tid,
		.pid = th->proc->pid,
		.thread = th->index,
		.kind = kind,
	};

	t->last_event_ns = e.ns;
	rpb_append(t, th, &e);
	sample_count_event(t);
	if (!s)
		return;
	((struct site *)s)->counts[kind]++;
	if (!t->opt.output)
		return;
	struct model_event ev = {
		.seq = e.seq,
		.ns = e.ns,
		.thread = e.thread,
		.tid = e.tid,
		.pid = e.pid,
		.kind = kind,
		.object = object,
		.site = s->str,
		.where = s->where,
	};
	size_t n = model_event_format_json(&ev, t->line, t->line_size);
	if (n >= t->line_size) {
		char *bigger = realloc(t->line, n + 1);
		if (!bigger)
			return;
		t->line = bigger;
		t->line_size = n + 1;
		model_event_format_json(&ev, t->line, t->line_size);
	}
	t->line[n] = '\n';
	fwrite(t->line, 1, n + 1, t->opt.output);
}

struct row {
	uint64_t count;
	enum model_event_kind kind;
	const struct site *site;
};

static int
cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->site->str, y->site->str);
}

void
tracer_print_summary(struct tracer *t, FILE *f)
{
	uint64_t per_kind[MODEL_EV__COUNT] = {0}, total = 0;
	struct row *rows = NULL;
	size_t n = 0, cap = 0;

	for (size_t h = 0; h < SITE_BUCKETS; h++) {
		for (const struct site *s = t->site_hash[h]; s; s = s->next) {
			for (int k = 0; k < MODEL_EV__COUNT; k++) {
				if (!s->counts[k])
					continue;
				if (n == cap) {
					struct row *g = realloc(rows, (cap = cap ? 2 * cap : 64) *
									      sizeof(*rows));
					if (!g) {
						free(rows);
						return;
					}
					rows = g;
				}
				rows[n++] = (struct row){s->counts[k], (enum model_event_kind)k, s};
				per_kind[k] += s->counts[k];
				total += s->counts[k];
			}
		}
	}
	qsort(rows, n, sizeof(*rows), cmp_row);
	fprintf(f, "%10s  %-16s  %-28s  %s\n", "calls", "kind", "site", "where");
	fprintf(f, "%10s  %-16s  %-28s  %s\n", "----------", "----------------",
		"----------------------------", "-----");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%10" PRIu64 "  %-16s  %-28s  %s\n", rows[i].count,
			model_event_kind_name(rows[i].kind), rows[i].site->str,
			rows[i].site->where ? rows[i].site->where : "");
	fprintf(f, "%10s  %-16s\n", "----------", "----------------");
	for (int k = 0; k < MODEL_EV__COUNT; k++)
		if (per_kind[k])
			fprintf(f, "%10" PRIu64 "  %s\n", per_kind[k], model_event_kind_name(k));
	fprintf(f, "%10" PRIu64 "  total, %" PRIu64 " of them without a stop\n", total,
		t->ring_events - t->ring_stops);
	free(rows);
	size_t nc = t->fsm ? fsm_constraint_count(t->fsm) : 0;
	for (size_t i = 0; i < nc; i++) {
		struct fsm_counters c;
		fsm_constraint_counters(t->fsm, i, &c);
		fprintf(f,
			"constraint %zu: %" PRIu64 " activations, %" PRIu64 " delays, %" PRIu64
			" of them cut short\n",
			i + 1, c.activations, c.delays, c.cut_short);
	}
	if (nc)
		fprintf(f,
			"%" PRIu64
			" deadlines moved while the activator was runnable, by %.3f ms in "
			"all\n",
			t->graces, (double)t->grace_ns / 1e6);
}
