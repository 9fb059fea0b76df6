/*
 * Sharing points (breakpoints/points.c): parsing AVISOPOINTS text (pairs, whitespace, errors
 * with their position), file-name matching, and resolution on tests/unit/points_prog.c built
 * at -O0 and -O2 with -g (a static inline function inlined twice at -O2), checked by loading
 * the program stopped at exec and symbolizing base + offset back to file:line function. Also a
 * separate debug file (objcopy --only-keep-debug plus a debuglink) and a build without DWARF.
 *
 * Environment (tests/unit/meson.build): POINTS_O0, POINTS_O2, POINTS_NODEBUG (the helper
 * builds), POINTS_SRC (its source, where the POINT:... markers give the line numbers).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"
#include "breakpoints/points.h"
#include "ckmain.h"

/* ---- Parsing ---- */

START_TEST(parse_pairs_and_whitespace)
{
	const char *text = "atom.c 37 src/b.c\t120\n\n  x/y/z.c\n\t9 \r\nlast.c 1";
	struct bp_point *p;
	size_t n;

	ck_assert_int_eq(bp_points_parse(text, &p, &n, NULL), 4);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(p[0].file, "atom.c");
	ck_assert_int_eq(p[0].line, 37);
	ck_assert_uint_eq(p[0].offset, 0);
	ck_assert_int_eq(p[0].text_line, 1);
	ck_assert_str_eq(p[1].file, "src/b.c");
	ck_assert_int_eq(p[1].line, 120);
	ck_assert_uint_eq(p[1].offset, 10);
	ck_assert_str_eq(p[2].file, "x/y/z.c"); /* its line number on the next text line */
	ck_assert_int_eq(p[2].line, 9);
	ck_assert_int_eq(p[2].text_line, 3);
	ck_assert_str_eq(p[3].file, "last.c"); /* no final newline */
	ck_assert_int_eq(p[3].line, 1);
	ck_assert_int_eq(p[3].text_line, 5);
	bp_points_free(p, n);
	bp_points_free(NULL, 0);
}
END_TEST

START_TEST(parse_empty_and_comments)
{
	struct bp_point *p = (void *)1;
	size_t n = 99;

	ck_assert_int_eq(bp_points_parse("", &p, &n, NULL), 0);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(bp_points_parse(" \n\t\r\n# only a comment 12\n", &p, &n, NULL), 0);
	ck_assert_int_eq(
	    bp_points_parse("# aviso-prof\na.c 3 # 1234 hits\n#b.c 4\nc.c 5", &p, &n, NULL), 2);
	ck_assert_str_eq(p[0].file, "a.c");
	ck_assert_str_eq(p[1].file, "c.c");
	ck_assert_int_eq(p[1].text_line, 4);
	bp_points_free(p, n);
}
END_TEST

static void
parse_fails(const char *text, size_t offset, int line, int column, const char *reason_part)
{
	struct bp_point *p = (void *)1;
	size_t n = 99;
	struct bp_points_error err = {0};

	ck_assert_int_eq(bp_points_parse(text, &p, &n, &err), -EINVAL);
	ck_assert_ptr_eq(p, (void *)1); /* untouched */
	ck_assert_uint_eq(n, 99);
	ck_assert_uint_eq(err.offset, offset);
	ck_assert_int_eq(err.line, line);
	ck_assert_int_eq(err.column, column);
	ck_assert_ptr_nonnull(err.reason);
	ck_assert_msg(strstr(err.reason, reason_part), "%s", err.reason);
	ck_assert_int_eq(bp_points_parse(text, &p, &n, NULL), -EINVAL); /* @ret_err optional */
}

START_TEST(parse_errors_with_position)
{
	parse_fails("a.c 10 b.c", 7, 1, 8, "missing");		 /* a file at the end */
	parse_fails("a.c 10\nb.c # 4\n", 7, 2, 1, "missing");	 /* a comment instead */
	parse_fails("a.c 10\n  b.c x.c 3", 13, 2, 7, "integer"); /* the name in line position */
	parse_fails("a.c 0", 4, 1, 5, "integer");
	parse_fails("a.c -3", 4, 1, 5, "integer");
	parse_fails("a.c +3", 4, 1, 5, "integer");
	parse_fails("a.c 12x", 4, 1, 5, "integer");
	parse_fails("a.c\t2147483648", 4, 1, 5, "integer");
	parse_fails("a.c 99999999999999999999999", 4, 1, 5, "integer");
}
END_TEST

START_TEST(parse_largest_line)
{
	struct bp_point *p;
	size_t n;

	ck_assert_int_eq(bp_points_parse("a.c 2147483647 b.c 007", &p, &n, NULL), 2);
	ck_assert_int_eq(p[0].line, 2147483647);
	ck_assert_int_eq(p[1].line, 7);
	bp_points_free(p, n);
}
END_TEST

START_TEST(file_name_matching)
{
	ck_assert(bp_points_file_matches("atom.c", "/src/x/atom.c"));
	ck_assert(bp_points_file_matches("x/atom.c", "/src/x/atom.c"));
	ck_assert(bp_points_file_matches("./x/atom.c", "/src/x/atom.c"));
	ck_assert(bp_points_file_matches("/src/x/atom.c", "/src/x/atom.c"));
	ck_assert(bp_points_file_matches("atom.c", "atom.c"));
	ck_assert(bp_points_file_matches("src/x/atom.c", "/b/../src/./x//atom.c"));
	ck_assert(bp_points_file_matches("tests/unit/p.c", "/w/build/../tests/unit/p.c"));
	ck_assert(!bp_points_file_matches("om.c", "/src/x/atom.c"));
	ck_assert(!bp_points_file_matches("y/atom.c", "/src/x/atom.c"));
	ck_assert(!bp_points_file_matches("/x/atom.c", "/src/x/atom.c"));
	ck_assert(!bp_points_file_matches("build/atom.c", "/w/build/../atom.c"));
	ck_assert(!bp_points_file_matches("atom.c", "/src/x/atom.cc"));
	ck_assert(!bp_points_file_matches(".", "/src/atom.c"));
}
END_TEST

/* ---- Resolution ---- */

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	ck_assert_msg(v && *v, "%s is not set (run through meson test)", name);
	return v;
}

/* The line of POINTS_SRC holding @marker. */
static int
marker_line(const char *marker)
{
	FILE *f = fopen(env("POINTS_SRC"), "r");
	char buf[512];
	int line = 0, found = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f)) {
		line++;
		if (strstr(buf, marker)) {
			found = line;
			break;
		}
	}
	fclose(f);
	ck_assert_msg(found, "marker %s not found", marker);
	return found;
}

/*
 * Starts @prog stopped at its exec (nothing of it has run) and symbolizes base + offset for
 * each offset into @out (one line each, "file.c:12 func").
 */
static void
symbolize_offsets(const char *prog, const uint64_t *offsets, size_t n, char out[][256],
		  int *call_lines)
{
	struct bp_symbolizer *sym;
	struct bp_aspace *as;
	struct bp_module *m;
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execl(prog, prog, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP);
	ck_assert_int_eq(bp_aspace_create(pid, &as), 0);
	ck_assert_int_gt(bp_aspace_refresh(as, NULL, NULL), 0);
	m = bp_aspace_main_module(as);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(bp_symbolizer_create(pid, &sym), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(m->base + offsets[i], m->end);
		ck_assert_int_gt(bp_symbolizer_lookup(sym, m->base + offsets[i], out[i], 256), 0);
		if (call_lines) {
			struct bp_source src;
			ck_assert_int_eq(bp_symbolizer_frame(sym, m->base + offsets[i], true, &src), 0);
			ck_assert_msg(!src.call_file || strcmp(src.call_file, "points_prog.c") == 0,
				      "%s", src.call_file);
			call_lines[i] = src.call_file ? src.call_line : 0;
		}
	}
	bp_symbolizer_destroy(sym);
	bp_aspace_unref(as);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * Every offset symbolizes to points_prog.c:@line (only its function is checked when
 * @line is 0); returns how many lie in @func.
 */
static size_t
check_lines(const char *prog, const uint64_t *offsets, size_t n, int line, const char *func)
{
	char(*names)[256] = calloc(n, 256);
	char want[64];
	size_t in_func = 0;

	ck_assert_ptr_nonnull(names);
	symbolize_offsets(prog, offsets, n, names, NULL);
	snprintf(want, sizeof(want), "points_prog.c:%d ", line);
	for (size_t i = 0; i < n; i++) {
		const char *f = strchr(names[i], ' ');

		ck_assert_msg(line == 0 || strncmp(names[i], want, strlen(want)) == 0,
			      "offset %#lx is %s, not %s", (unsigned long)offsets[i], names[i],
			      want);
		ck_assert_msg(strncmp(names[i], "points_prog.c:", 14) == 0, "%s", names[i]);
		if (f && strcmp(f + 1, func) == 0)
			in_func++;
	}
	free(names);
	return in_func;
}

static void
check_sorted_distinct(const uint64_t *offsets, size_t n)
{
	for (size_t i = 1; i < n; i++)
		ck_assert_uint_lt(offsets[i - 1], offsets[i]);
}

START_TEST(resolve_o0)
{
	const char *prog = env("POINTS_O0");
	int inl = marker_line("POINT:inline"), plain = marker_line("POINT:plain");
	uint64_t *off;
	size_t n;
	int r;

	r = bp_points_resolve(prog, "points_prog.c", inl, &off, &n);
	ck_assert_int_ge(r, 1);
	ck_assert_uint_eq(n, (size_t)r);
	check_sorted_distinct(off, n);
	ck_assert_uint_eq(check_lines(prog, off, n, inl, "bump"), n); /* not inlined at -O0 */
	free(off);

	ck_assert_int_ge(bp_points_resolve(prog, "points_prog.c", plain, &off, &n), 1);
	ck_assert_uint_eq(check_lines(prog, off, n, plain, "main"), n);
	free(off);
}
END_TEST

START_TEST(resolve_o2_inlined_copies)
{
	const char *prog = env("POINTS_O2");
	int inl = marker_line("POINT:inline"), plain = marker_line("POINT:plain");
	uint64_t *off;
	size_t n;
	int r;

	/* bump() is inlined into first() and second(): one address at least in each. */
	r = bp_points_resolve(prog, "points_prog.c", inl, &off, &n);
	ck_assert_int_ge(r, 2);
	check_sorted_distinct(off, n);
	ck_assert_uint_ge(check_lines(prog, off, n, inl, "first"), 1);
	ck_assert_uint_ge(check_lines(prog, off, n, inl, "second"), 1);
	/* Where each copy is in its caller: the call's line, in first() or in second(). */
	char(*names)[256] = calloc(n, 256);
	int *calls = calloc(n, sizeof(*calls)), in_first = 0, in_second = 0;
	ck_assert(names && calls);
	symbolize_offsets(prog, off, n, names, calls);
	for (size_t i = 0; i < n; i++) {
		in_first += calls[i] == marker_line("CALL:first");
		in_second += calls[i] == marker_line("CALL:second");
	}
	ck_assert_int_ge(in_first, 1);
	ck_assert_int_ge(in_second, 1);
	ck_assert_int_eq(in_first + in_second, (int)n);
	free(names);
	free(calls);
	free(off);

	/*
	 * Here gcc gives the plain line's first address two rows, "plain" (is_stmt) then the
	 * printf line (a view, no code of its own): symbolizing returns the last row at an
	 * address (libdw's rule), so only the function is checked.
	 */
	ck_assert_int_ge(bp_points_resolve(prog, "points_prog.c", plain, &off, &n), 1);
	ck_assert_uint_eq(check_lines(prog, off, n, 0, "main"), n);
	free(off);
}
END_TEST

START_TEST(resolve_file_spellings)
{
	const char *prog = env("POINTS_O2"), *src = env("POINTS_SRC");
	const char *same[] = {"unit/points_prog.c", "tests/unit/points_prog.c", "./points_prog.c",
			      src};
	int inl = marker_line("POINT:inline");
	uint64_t *ref, *off;
	size_t nref, n;

	ck_assert_int_ge(bp_points_resolve(prog, "points_prog.c", inl, &ref, &nref), 2);
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		ck_assert_msg(bp_points_resolve(prog, same[i], inl, &off, &n) == (int)nref, "%s",
			      same[i]);
		ck_assert_mem_eq(off, ref, nref * sizeof(*ref));
		free(off);
	}
	off = (void *)1;
	ck_assert_int_eq(bp_points_resolve(prog, "s_prog.c", inl, &off, &n), -ENOENT);
	ck_assert_int_eq(bp_points_resolve(prog, "other/points_prog.c", inl, &off, &n), -ENOENT);
	ck_assert_ptr_eq(off, (void *)1); /* untouched */
	free(ref);
}
END_TEST

START_TEST(resolve_unknown_and_errors)
{
	const char *prog = env("POINTS_O2");
	int comment = marker_line("POINT:comment");
	uint64_t *off = (void *)1;
	size_t n = 99;

	ck_assert_int_eq(bp_points_resolve(prog, "points_prog.c", comment, &off, &n), -ENOENT);
	ck_assert_int_eq(bp_points_resolve(prog, "points_prog.c", 100000, &off, &n), -ENOENT);
	ck_assert_int_eq(bp_points_resolve(prog, "nosuch.c", 14, &off, &n), -ENOENT);
	ck_assert_int_eq(bp_points_resolve(prog, "points_prog.c", 0, &off, &n), -EINVAL);
	ck_assert_int_eq(bp_points_resolve(env("POINTS_NODEBUG"), "points_prog.c", 14, &off, &n),
			 -ENODATA);
	ck_assert_int_eq(bp_points_resolve("/nonexistent/prog", "points_prog.c", 14, &off, &n),
			 -ENOENT);
	ck_assert_int_eq(bp_points_resolve(env("POINTS_SRC"), "points_prog.c", 14, &off, &n),
			 -ENOEXEC);
	ck_assert_ptr_eq(off, (void *)1);
	ck_assert_uint_eq(n, 99);
}
END_TEST

START_TEST(resolve_all_in_one_pass)
{
	const char *prog = env("POINTS_O2");
	int inl = marker_line("POINT:inline"), plain = marker_line("POINT:plain"),
	    comment = marker_line("POINT:comment");
	struct bp_point *p;
	struct bp_point_addrs *a;
	char text[256];
	size_t n;

	snprintf(text, sizeof(text),
		 "points_prog.c %d tests/unit/points_prog.c %d\n"
		 "points_prog.c %d nosuch.c 3\tpoints_prog.c %d\n",
		 inl, plain, comment, inl);
	ck_assert_int_eq(bp_points_parse(text, &p, &n, NULL), 5);
	ck_assert_int_eq(bp_points_resolve_all(prog, p, n, &a), 3);
	ck_assert_int_ge(a[0].status, 2);
	ck_assert(a[0].file_found);
	ck_assert_int_ge(a[1].status, 1);
	ck_assert_int_eq(a[2].status, -ENOENT); /* a comment: the file is there, the line not */
	ck_assert(a[2].file_found);
	ck_assert_uint_eq(a[2].n, 0);
	ck_assert_ptr_null(a[2].offsets);
	ck_assert_int_eq(a[3].status, -ENOENT); /* not in this module at all */
	ck_assert(!a[3].file_found);
	ck_assert_int_eq(a[4].status, a[0].status); /* a repeated point resolves alike */
	ck_assert_mem_eq(a[4].offsets, a[0].offsets, a[0].n * sizeof(uint64_t));

	/* The same as one point at a time. */
	for (size_t i = 0; i < 2; i++) {
		uint64_t *off;
		size_t m;

		ck_assert_int_eq(bp_points_resolve(prog, p[i].file, p[i].line, &off, &m),
				 a[i].status);
		ck_assert_uint_eq(m, a[i].n);
		ck_assert_mem_eq(off, a[i].offsets, m * sizeof(*off));
		free(off);
	}
	bp_point_addrs_free(a, n);
	bp_point_addrs_free(NULL, 0);
	ck_assert_int_eq(bp_points_resolve_all(prog, NULL, 0, &a), 0);
	bp_point_addrs_free(a, 0);
	bp_points_free(p, n);
}
END_TEST

/* Debug info moved to a separate file found through .gnu_debuglink beside the program. */
START_TEST(resolve_separate_debug_file)
{
	const char *prog = env("POINTS_O2");
	int inl = marker_line("POINT:inline");
	char dir[] = "/tmp/aviso-points-XXXXXX", cmd[2048], stripped[512];
	uint64_t *ref, *off;
	size_t nref, n;
	int r;

	if (system("objcopy --version >/dev/null 2>&1") != 0)
		return; /* no binutils: nothing to test with */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(stripped, sizeof(stripped), "%s/prog", dir);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && objcopy --only-keep-debug '%s' prog.debug && "
		 "objcopy --strip-debug --add-gnu-debuglink=prog.debug '%s' prog",
		 dir, prog, prog);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_ge(bp_points_resolve(prog, "points_prog.c", inl, &ref, &nref), 2);
	r = bp_points_resolve(stripped, "points_prog.c", inl, &off, &n);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(r, (int)nref);
	ck_assert_mem_eq(off, ref, nref * sizeof(*ref));
	free(off);
	free(ref);
}
END_TEST

static Suite *
points_suite(void)
{
	Suite *s = suite_create("points");
	TCase *parse = tcase_create("parse"), *resolve = tcase_create("resolve");

	tcase_add_test(parse, parse_pairs_and_whitespace);
	tcase_add_test(parse, parse_empty_and_comments);
	tcase_add_test(parse, parse_errors_with_position);
	tcase_add_test(parse, parse_largest_line);
	tcase_add_test(parse, file_name_matching);
	tcase_add_test(resolve, resolve_o0);
	tcase_add_test(resolve, resolve_o2_inlined_copies);
	tcase_add_test(resolve, resolve_file_spellings);
	tcase_add_test(resolve, resolve_unknown_and_errors);
	tcase_add_test(resolve, resolve_all_in_one_pass);
	tcase_add_test(resolve, resolve_separate_debug_file);
	suite_add_tcase(s, parse);
	suite_add_tcase(s, resolve);
	return s;
}

int
main(void)
{
	return ck_run_main(points_suite());
}
