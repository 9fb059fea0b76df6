/*
 * Sharing points: parsing the AVISOPOINTS text and resolving its "file line" entries to code
 * addresses. Pure: the line tables come from bp_dwarf_foreach_unit() (dwarf.c, the one libdw
 * boundary) and the load base from bp_elf_first_vaddr() (elf.c), so everything here is string
 * and array work.
 *
 * Which addresses a line gets: line-table rows come sorted by address; a *run* is a maximal
 * stretch of consecutive rows of one sequence for the point's file and line. Each run gives the
 * address of its first row that begins a statement (is_stmt). With -O2 one line has several
 * runs: one per inlined copy, per duplicated loop body, per function instance in each unit, and
 * sometimes several within one copy where the scheduler interleaved it with its neighbours (the
 * price of never missing a copy). Rows at the same address as the next row (no code of their
 * own) are kept: at that address the line is what the program is logically executing, and gcc
 * gives a call-site line nothing else (see "first" in tests/unit/points_prog.c at -O2).
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breakpoints/breakpoints.h"
#include "breakpoints/points.h"

/* ---- Parsing ---- */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

struct scanner {
	const char *text;
	size_t pos;
	int line;	   /* 1-based line of pos */
	size_t line_start; /* offset where that line starts */
};

/* Moves to the next token and returns its length (0 at the end of the text). */
static size_t
scan_token(struct scanner *s, size_t *ret_start, int *ret_line, int *ret_column)
{
	const char *t = s->text;
	size_t start;

	while (t[s->pos] && is_space(t[s->pos])) {
		if (t[s->pos] == '\n') {
			s->line++;
			s->line_start = s->pos + 1;
		}
		s->pos++;
	}
	start = s->pos;
	while (t[s->pos] && !is_space(t[s->pos]))
		s->pos++;
	*ret_start = start;
	*ret_line = s->line;
	*ret_column = (int)(start - s->line_start) + 1;
	return s->pos - start;
}

static void
scan_skip_line(struct scanner *s)
{
	while (s->text[s->pos] && s->text[s->pos] != '\n')
		s->pos++;
}

/* A decimal integer in 1..INT_MAX, nothing else (no sign, no spaces, no suffix). */
static bool
parse_line_number(const char *p, size_t len, int *ret)
{
	long v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
		if (v > INT_MAX)
			return false;
	}
	if (v < 1)
		return false;
	*ret = (int)v;
	return true;
}

void
bp_points_free(struct bp_point *points, size_t n)
{
	if (!points)
		return;
	for (size_t i = 0; i < n; i++)
		free(points[i].file);
	free(points);
}

int
bp_points_parse(const char *text, struct bp_point **ret_points, size_t *ret_n,
		struct bp_points_error *ret_err)
{
	struct scanner s = {.text = text, .line = 1};
	struct bp_point *points = NULL;
	size_t n = 0, cap = 0;
	struct bp_points_error err = {0};
	int r;

	assert(text && ret_points && ret_n);
	for (;;) {
		size_t fstart, flen, lstart, llen;
		int fline, fcol, lline, lcol, number;

		flen = scan_token(&s, &fstart, &fline, &fcol);
		if (flen == 0)
			break;
		if (text[fstart] == '#') {
			scan_skip_line(&s);
			continue;
		}
		llen = scan_token(&s, &lstart, &lline, &lcol);
		if (llen == 0 || text[lstart] == '#') {
			err = (struct bp_points_error){fstart, fline, fcol, "line number missing"};
			r = -EINVAL;
			goto fail;
		}
		if (!parse_line_number(text + lstart, llen, &number)) {
			err = (struct bp_points_error){
			    lstart, lline, lcol, "line number is not an integer in 1..INT_MAX"};
			r = -EINVAL;
			goto fail;
		}
		if (n == (size_t)INT_MAX) {
			r = -EOVERFLOW;
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			void *p = reallocarray(points, ncap, sizeof(*points));

			if (!p) {
				r = -ENOMEM;
				goto fail;
			}
			points = p;
			cap = ncap;
		}
		points[n].file = strndup(text + fstart, flen);
		if (!points[n].file) {
			r = -ENOMEM;
			goto fail;
		}
		points[n].line = number;
		points[n].offset = fstart;
		points[n].text_line = fline;
		n++;
	}
	if (n == 0) {
		free(points);
		points = NULL;
	}
	*ret_points = points;
	*ret_n = n;
	return (int)n;
fail:
	bp_points_free(points, n);
	if (r == -EINVAL && ret_err)
		*ret_err = err;
	return r;
}

/* ---- File names ---- */

/*
 * Lexical normalization: no empty or "." components, "dir/.." folded, "/.." at the root
 * dropped; a leading "/" kept. Returns a malloc'ed string, or NULL on ENOMEM.
 */
static char *
normalize_path(const char *path)
{
	size_t len = strlen(path);
	char *out = malloc(len + 2);
	size_t o = 0, keep = 0; /* keep: length of the prefix ".." cannot fold ("/" or "../..") */
	bool absolute = path[0] == '/';
	const char *p = path;

	if (!out)
		return NULL;
	if (absolute) {
		out[o++] = '/';
		keep = 1;
	}
	while (*p) {
		const char *end;
		size_t clen;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchrnul(p, '/');
		clen = (size_t)(end - p);
		if (clen == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			if (o > keep) {
				/* drop the last component and the '/' before it */
				while (o > keep && out[o - 1] != '/')
					o--;
				if (o > keep)
					o--;
				p = end;
				continue;
			}
			if (absolute) {
				p = end;
				continue;
			}
		}
		if (o > 0 && out[o - 1] != '/')
			out[o++] = '/';
		memcpy(out + o, p, clen);
		o += clen;
		if (clen == 2 && p[0] == '.' && p[1] == '.')
			keep = o; /* a leading ".." of a relative path stays */
		p = end;
	}
	out[o] = '\0';
	return out;
}

/* @dir/@name normalized (@name alone when @dir is NULL or empty), or NULL on ENOMEM. */
static char *
join_normalized(const char *dir, const char *name)
{
	char *joined, *norm;

	if (!dir || !dir[0])
		return normalize_path(name);
	if (asprintf(&joined, "%s/%s", dir, name) < 0)
		return NULL;
	norm = normalize_path(joined);
	free(joined);
	return norm;
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Both normalized. */
static bool
matches_normalized(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);

	if (pattern[0] == '/' || pl == nl)
		return strcmp(pattern, name) == 0;
	return nl > pl && name[nl - pl - 1] == '/' && strcmp(name + nl - pl, pattern) == 0;
}

bool
bp_points_file_matches(const char *pattern, const char *name)
{
	char *p = normalize_path(pattern), *n = normalize_path(name);
	bool m = p && n && p[0] && matches_normalized(p, n);

	free(p);
	free(n);
	return m;
}

/* ---- Resolution ---- */

/* Code of a point from @start, its run of rows ending at @end (0: unknown). */
struct span {
	uint64_t start, end;
};

struct point_state {
	const struct bp_point *point;
	char *pattern;	  /* normalized file */
	const char *base; /* its basename, inside pattern */
	size_t last_row;  /* global index of its last row; 0: none yet */
	bool run_taken;	  /* the current run already gave its address */
	uint64_t run_end; /* the current run's end (run_end()) */
	bool file_found;
	struct span *addrs; /* the first is_stmt row of each run, to the run's end */
	size_t n, cap;
	struct span *loose; /* the first row of each run, is_stmt or not */
	size_t nloose, loose_cap;
};

struct resolver {
	struct point_state *ps;
	size_t np;
	size_t *by_base; /* indices into ps, sorted by basename: a unit's file is looked up there */
	size_t row_index;
	/* Per unit: the points each file index matches, as ranges of match[]. */
	size_t *match_start, start_cap;
	size_t *match, match_n, match_cap;
};

static int
cmp_by_base(const void *a, const void *b, void *ctx)
{
	const struct point_state *ps = ctx;
	return strcmp(ps[*(const size_t *)a].base, ps[*(const size_t *)b].base);
}

static int
push_span(struct span **v, size_t *n, size_t *cap, uint64_t start, uint64_t end)
{
	if (*n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 8;
		void *p = reallocarray(*v, ncap, sizeof(**v));

		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = ncap;
	}
	(*v)[(*n)++] = (struct span){start, end};
	return 0;
}

/*
 * The end of the run of rows of @line that row @i of @u is in: the address of the first later
 * row of another file or line, or of the end of its sequence; 0 when the table ends first.
 */
static uint64_t
run_end(const struct bp_dwarf_unit *u, size_t i, int line)
{
	uint32_t file = u->rows[i].file;

	for (size_t j = i + 1; j < u->nrows; j++) {
		const struct bp_dwarf_row *row = &u->rows[j];
		if (row->barrier || row->file != file || row->line != line)
			return row->addr > u->rows[i].addr ? row->addr : 0;
	}
	return 0;
}

static int
push_match(struct resolver *rs, size_t point)
{
	if (rs->match_n == rs->match_cap) {
		size_t ncap = rs->match_cap ? 2 * rs->match_cap : 64;
		void *p = reallocarray(rs->match, ncap, sizeof(*rs->match));

		if (!p)
			return -ENOMEM;
		rs->match = p;
		rs->match_cap = ncap;
	}
	rs->match[rs->match_n++] = point;
	return 0;
}

/* First index in by_base whose basename is not below @base. */
static size_t
lower_bound(const struct resolver *rs, const char *base)
{
	size_t lo = 0, hi = rs->np;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(rs->ps[rs->by_base[mid]].base, base) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Fills match_start/match: which points each file of @u names. */
static int
match_files(struct resolver *rs, const struct bp_dwarf_unit *u)
{
	if (u->nfiles + 1 > rs->start_cap) {
		void *p = reallocarray(rs->match_start, u->nfiles + 1, sizeof(*rs->match_start));

		if (!p)
			return -ENOMEM;
		rs->match_start = p;
		rs->start_cap = u->nfiles + 1;
	}
	rs->match_n = 0;
	for (size_t f = 0; f < u->nfiles; f++) {
		const char *name = u->files ? u->files[f] : NULL;
		char *norm;
		int r = 0;

		rs->match_start[f] = rs->match_n;
		if (!name)
			continue;
		norm = join_normalized(name[0] == '/' ? NULL : u->comp_dir, name);
		if (!norm)
			return -ENOMEM;
		for (size_t i = lower_bound(rs, base_name(norm)); i < rs->np && r == 0; i++) {
			struct point_state *p = &rs->ps[rs->by_base[i]];

			if (strcmp(p->base, base_name(norm)) != 0)
				break;
			if (!matches_normalized(p->pattern, norm))
				continue;
			p->file_found = true;
			r = push_match(rs, rs->by_base[i]);
		}
		free(norm);
		if (r < 0)
			return r;
	}
	rs->match_start[u->nfiles] = rs->match_n;
	return 0;
}

static int
on_unit(void *ctx, const struct bp_dwarf_unit *u)
{
	struct resolver *rs = ctx;
	int r = match_files(rs, u);

	if (r < 0)
		return r;
	if (rs->match_n == 0) {
		rs->row_index += u->nrows; /* nothing here for us; runs cannot span units anyway */
		return 0;
	}
	for (size_t i = 0; i < u->nrows; i++) {
		const struct bp_dwarf_row *row = &u->rows[i];

		/* A barrier row takes an index that no point records: the run it ends is over. */
		rs->row_index++;
		if (row->barrier || row->file >= u->nfiles)
			continue;
		for (size_t k = rs->match_start[row->file]; k < rs->match_start[row->file + 1];
		     k++) {
			struct point_state *p = &rs->ps[rs->match[k]];

			if (row->line != p->point->line)
				continue;
			if (p->last_row != rs->row_index - 1) {
				/* a new run */
				p->run_taken = false;
				p->run_end = run_end(u, i, row->line);
				r = push_span(&p->loose, &p->nloose, &p->loose_cap, row->addr,
					      p->run_end);
				if (r < 0)
					return r;
			}
			p->last_row = rs->row_index;
			if (p->run_taken || !row->stmt)
				continue;
			r = push_span(&p->addrs, &p->n, &p->cap, row->addr, p->run_end);
			if (r < 0)
				return r;
			p->run_taken = true;
		}
	}
	return 0;
}

static int
cmp_span(const void *a, const void *b)
{
	uint64_t x = ((const struct span *)a)->start, y = ((const struct span *)b)->start;
	return x < y ? -1 : x > y;
}

void
bp_point_addrs_free(struct bp_point_addrs *addrs, size_t n)
{
	if (!addrs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(addrs[i].offsets);
		free(addrs[i].ends);
	}
	free(addrs);
}

int
bp_points_resolve_all(const char *path, const struct bp_point *points, size_t n,
		      struct bp_point_addrs **ret_addrs)
{
	struct resolver rs = {0};
	struct bp_point_addrs *out = NULL;
	struct bp_elf *elf = NULL;
	uint64_t first_vaddr;
	int r, resolved = 0;

	assert(path && (points || n == 0) && ret_addrs);
	if (n > (size_t)INT_MAX)
		return -EOVERFLOW;
	r = bp_elf_open(path, &elf);
	if (r < 0)
		return r;
	first_vaddr = bp_elf_first_vaddr(elf);
	bp_elf_close(elf);

	rs.np = n;
	rs.ps = calloc(n ? n : 1, sizeof(*rs.ps));
	rs.by_base = calloc(n ? n : 1, sizeof(*rs.by_base));
	out = calloc(n ? n : 1, sizeof(*out));
	if (!rs.ps || !rs.by_base || !out) {
		r = -ENOMEM;
		goto leave;
	}
	for (size_t i = 0; i < n; i++) {
		rs.ps[i].point = &points[i];
		rs.ps[i].pattern = normalize_path(points[i].file);
		if (!rs.ps[i].pattern) {
			r = -ENOMEM;
			goto leave;
		}
		rs.ps[i].base = base_name(rs.ps[i].pattern);
		rs.by_base[i] = i;
	}
	if (n > 1)
		qsort_r(rs.by_base, n, sizeof(*rs.by_base), cmp_by_base, rs.ps);

	r = n == 0 ? 0 : bp_dwarf_foreach_unit(path, on_unit, &rs); /* nothing to look for */
	if (r < 0)
		goto leave;

	for (size_t i = 0; i < n; i++) {
		struct point_state *p = &rs.ps[i];
		size_t k = 0;

		/*
		 * A line whose rows never begin a statement (gcc -O2 can leave a line only as
		 * views inside others) still has code: its runs' first rows stand in, so that a
		 * line the profiler saw in an instruction resolves back.
		 */
		if (p->n == 0 && p->nloose > 0) {
			free(p->addrs);
			p->addrs = p->loose;
			p->n = p->nloose;
			p->loose = NULL;
		}
		if (p->n > 1) /* qsort's base may not be NULL, even for 0 elements */
			qsort(p->addrs, p->n, sizeof(*p->addrs), cmp_span);
		for (size_t j = 0; j < p->n; j++) {
			/* Below the base cannot be code of this file (the rows were filtered to
			 * executable sections); kept as a guard for a corrupt table. */
			if (p->addrs[j].start < first_vaddr ||
			    (k > 0 && p->addrs[k - 1].start == p->addrs[j].start))
				continue;
			p->addrs[k++] = p->addrs[j];
		}
		out[i].file_found = p->file_found;
		out[i].n = k;
		if (k == 0) {
			out[i].status = -ENOENT;
			continue;
		}
		out[i].offsets = malloc(k * sizeof(*out[i].offsets));
		out[i].ends = malloc(k * sizeof(*out[i].ends));
		if (!out[i].offsets || !out[i].ends) {
			r = -ENOMEM;
			goto leave;
		}
		for (size_t j = 0; j < k; j++) {
			out[i].offsets[j] = p->addrs[j].start - first_vaddr;
			out[i].ends[j] = p->addrs[j].end ? p->addrs[j].end - first_vaddr : 0;
		}
		out[i].status = (int)(k > (size_t)INT_MAX ? INT_MAX : k);
		resolved++;
	}
	*ret_addrs = out;
	out = NULL;
	r = resolved;
leave:
	for (size_t i = 0; rs.ps && i < n; i++) {
		free(rs.ps[i].pattern);
		free(rs.ps[i].addrs);
		free(rs.ps[i].loose);
	}
	free(rs.ps);
	free(rs.by_base);
	free(rs.match_start);
	free(rs.match);
	bp_point_addrs_free(out, n);
	return r;
}

int
bp_points_resolve(const char *path, const char *file, int line, uint64_t **ret_offsets,
		  size_t *ret_n)
{
	struct bp_point point = {.file = (char *)file, .line = line};
	struct bp_point_addrs *addrs;
	int r;

	assert(file && ret_offsets && ret_n);
	if (line < 1 || !file[0])
		return -EINVAL;
	r = bp_points_resolve_all(path, &point, 1, &addrs);
	if (r < 0)
		return r;
	r = addrs[0].status;
	if (r > 0) {
		*ret_offsets = addrs[0].offsets;
		*ret_n = addrs[0].n;
		addrs[0].offsets = NULL;
	}
	bp_point_addrs_free(addrs, 1);
	return r;
}
