/*
 * Events: each gets the next sequence number, a timestamp and its site; it is written to the
 * -o stream (one JSON line) and counted for the -c table.
 *
 * A site is a code address made stable across runs and ASLR: the module's name and the offset
 * from the module's base (AVISO.md section 1). Sites are interned by their string, so a site
 * seen in several processes (forks, execs) is one row of the table; the address -> site lookup
 * is cached per process image, and symbolization (libdw) happens once per site.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
hash_addr(uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 40) & (SITE_BUCKETS - 1);
}

static char *
symbolize(struct process *p, uint64_t addr)
{
	char buf[1024];

	if (p->sym && p->sym_stale) {
		bp_symbolizer_destroy(p->sym);
		p->sym = NULL;
	}
	if (!p->sym) {
		if (bp_symbolizer_create(p->pid, &p->sym) < 0)
			return NULL;
		p->sym_stale = false;
	}
	if (bp_symbolizer_lookup(p->sym, addr, buf, sizeof(buf)) < 0)
		return NULL;
	return strdup(buf);
}

static struct site *
intern(struct tracer *t, const char *str, struct process *p, uint64_t sym_addr)
{
	size_t h = hash_str(str) & (SITE_BUCKETS - 1);
	struct site *s;

	for (s = t->site_hash[h]; s; s = s->next)
		if (strcmp(s->str, str) == 0)
			return s;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->str = strdup(str))) {
		free(s);
		return NULL;
	}
	s->where = symbolize(p, sym_addr);
	s->next = t->site_hash[h];
	t->site_hash[h] = s;
	return s;
}

/*
 * The site of code address @addr in @p. A return address is symbolized one byte back, in the
 * call instruction, so that "where" names the line of the call.
 */
static struct site *
site_of(struct tracer *t, struct process *p, uint64_t addr, bool is_return)
{
	size_t h = hash_addr(addr);
	const struct bp_module *m;
	struct site_ref *ref;
	struct site *s;
	char str[512];

	for (ref = p->sites[h]; ref; ref = ref->next)
		if (ref->addr == addr)
			return ref->site;
	m = bp_aspace_module_at(p->as, addr);
	if (m)
		snprintf(str, sizeof(str), "%s+0x%" PRIx64, m->name, addr - m->base);
	else
		snprintf(str, sizeof(str), "0x%" PRIx64, addr);
	s = intern(t, str, p, is_return ? addr - 1 : addr);
	ref = malloc(sizeof(*ref));
	if (!s || !ref) {
		free(ref);
		return s;
	}
	ref->addr = addr;
	ref->site = s;
	ref->next = p->sites[h];
	p->sites[h] = ref;
	return s;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
record_event(struct tracer *t, struct thread *th, enum model_event_kind kind, uint64_t code_addr,
	     bool is_return, uint64_t object)
{
	struct site *s = site_of(t, th->proc, code_addr, is_return);
	struct model_event ev = {
		.seq = ++t->seq,
		.ns = now_ns(),
		.thread = th->index,
		.tid = th->tid,
		.pid = th->proc->pid,
		.kind = kind,
		.object = object,
		.site = s ? s->str : "?",
		.where = s ? s->where : NULL,
	};

	if (s)
		s->counts[kind]++;
	if (!t->opt.output)
		return;
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
	fprintf(f, "%10" PRIu64 "  total\n", total);
	free(rows);
}
