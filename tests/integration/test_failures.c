/*
 * Failure detection and reports, sites and sharing points, on real traced programs
 * (tests/failprogs/: programs that fail for certain, in a known way). Each runs the real
 * aviso-trace, checks its exit status, its stderr report and the JSON report it wrote.
 *
 * Environment (set by meson): AVISO_TRACE, FAILPROGS (built programs), FAILPROGS_SRC (their
 * sources, for the lines marked in comments).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ckmain.h"
#include "model/event.h"
#include "model/model.h"

#define RUN_TIMEOUT_S 60
#include "harness.h"

static void
setup(void)
{
	harness_setup("aviso-failures");
}

/* The first line of @dir/@file that contains @text. */
static int
source_line(const char *dir, const char *file, const char *text)
{
	char path[512], buf[512];
	int line = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f)) {
		line++;
		if (strstr(buf, text)) {
			fclose(f);
			return line;
		}
	}
	fclose(f);
	ck_abort_msg("no '%s' in %s", text, path);
	return 0;
}

/* The line of tests/failprogs/@file that ends with the comment "/\* @marker *\/". */
static int
marker_line(const char *file, const char *marker)
{
	char comment[64];

	snprintf(comment, sizeof(comment), "/* %s */", marker);
	return source_line(env("FAILPROGS_SRC"), file, comment);
}

static char *
prog(const char *name)
{
	static char buf[4][512];
	static int k;
	char *b = buf[k++ % 4];
	snprintf(b, 512, "%s/%s", env("FAILPROGS"), name);
	return b;
}

/* The one JSON report in tmpdir/reports (asserts there is exactly one). */
static json_object *
the_report(void)
{
	char dir[300], path[600], name[256] = "";
	struct dirent *d;
	int count = 0;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/reports", tmpdir);
	dp = opendir(dir);
	ck_assert_msg(dp != NULL, "no report directory");
	while ((d = readdir(dp)) != NULL) {
		if (strstr(d->d_name, ".json")) {
			snprintf(name, sizeof(name), "%s", d->d_name);
			count++;
		}
	}
	closedir(dp);
	ck_assert_int_eq(count, 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_object *o = json_object_from_file(path);
	ck_assert_msg(o != NULL, "%s is not JSON", path);
	return o;
}

static json_object *
get(json_object *o, const char *key)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\"", key);
	return v;
}

static const char *
str(json_object *o, const char *key)
{
	return json_object_get_string(get(o, key));
}

static int
num(json_object *o, const char *key)
{
	return json_object_get_int(get(o, key));
}

/* Events of @kind in a report's RPB whose frame 0 is at @line. */
static int
count_at_line(json_object *rpb, const char *kind, int line)
{
	int found = 0;

	for (size_t i = 0; i < json_object_array_length(rpb); i++) {
		json_object *e = json_object_array_get_idx(rpb, i);
		if (strcmp(str(e, "kind"), kind) == 0 &&
		    num(json_object_array_get_idx(get(e, "frames"), 0), "line") == line)
			found++;
	}
	return found;
}

START_TEST(crash_is_reported_with_its_past)
{
	const char *args[] = {"--", prog("crash"), NULL};
	int crash = marker_line("crash.c", "CRASH");
	char expect[128];
	struct run r;

	run_trace(&r, args);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV,
		      "status %#x, stderr:\n%s", r.status, r.err);
	snprintf(expect, sizeof(expect), "SIGSEGV in thread 3 at crash.c:%d in worker2", crash);
	ck_assert_msg(strstr(r.err, expect), "no '%s' in:\n%s", expect, r.err);
	ck_assert_msg(strstr(r.err, "last ") && strstr(r.err, "thread 2"), "%s", r.err);

	json_object *rep = the_report(), *fail = get(rep, "failure"), *rpb = get(rep, "rpb");
	ck_assert_str_eq(str(fail, "kind"), "signal");
	ck_assert_str_eq(str(fail, "signal"), "SIGSEGV");
	ck_assert_int_eq(num(fail, "thread"), 3);
	json_object *bt0 = json_object_array_get_idx(get(fail, "backtrace"), 0);
	ck_assert_int_eq(num(bt0, "line"), crash);
	ck_assert_str_eq(str(bt0, "func"), "worker2");
	ck_assert_msg(strstr(str(get(rep, "program"), "path"), "crash"), "program path");

	/* The RPB: every thread's events, in sequence order, the ping-pong visible in it. */
	size_t n = json_object_array_length(rpb);
	long last_seq = 0;
	int seen[4] = {0}, order[16], norder = 0;
	ck_assert_uint_ge(n, 10);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(rpb, i);
		long seq = json_object_get_int64(get(e, "seq"));
		int th = num(e, "thread");

		ck_assert_int_gt(seq, last_seq);
		last_seq = seq;
		ck_assert(th >= 1 && th <= 3);
		seen[th]++;
		ck_assert_ptr_nonnull(get(e, "frames"));
		if (strcmp(str(e, "kind"), "mutex_lock") == 0 && norder < 16)
			order[norder++] = th;
	}
	ck_assert(seen[1] && seen[2] && seen[3]);
	ck_assert_int_eq(norder, 6);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(order[i], i % 2 ? 3 : 2);
	json_object *lastev = json_object_array_get_idx(rpb, n - 1);
	ck_assert_str_eq(str(lastev, "kind"), "signal");
	ck_assert_int_eq(num(lastev, "thread"), 3);
	json_object_put(rep);
}
END_TEST

/*
 * Events that never stopped their thread (the event ring) are in the failure RPB: every lock
 * and unlock of both bursts, in each thread's order, then the crash. With a ring of 4 slots
 * too, where the bursts wait for drains all the time.
 */
START_TEST(crash_after_a_burst_keeps_every_event)
{
	const char *args[] = {"--", prog("burst"), NULL};
	struct run r;

	if (_i == 1)
		ck_assert_int_eq(setenv("AVISO_RING_SLOTS", "4", 1), 0);
	run_trace(&r, args);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV,
		      "status %#x, stderr:\n%s", r.status, r.err);
	ck_assert_msg(strstr(r.err, "SIGSEGV in thread 3"), "%s", r.err);

	json_object *rep = the_report(), *rpb = get(rep, "rpb");
	size_t n = json_object_array_length(rpb);
	long last_seq = 0, locks[4] = {0}, unlocks[4] = {0}, other[4] = {0};
	const char *want[4] = {NULL, NULL, "mutex_lock", "mutex_lock"};

	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(rpb, i);
		long seq = json_object_get_int64(get(e, "seq"));
		const char *kind = str(e, "kind");
		int th = num(e, "thread");

		ck_assert_int_gt(seq, last_seq);
		last_seq = seq;
		ck_assert(th >= 1 && th <= 3);
		if (th >= 2 && strcmp(kind, "signal") != 0) {
			ck_assert_msg(strcmp(kind, want[th]) == 0, "thread %d: seq %ld is %s, not %s",
				      th, seq, kind, want[th]);
			want[th] = strcmp(kind, "mutex_lock") == 0 ? "mutex_unlock" : "mutex_lock";
		}
		if (strcmp(kind, "mutex_lock") == 0)
			locks[th]++;
		else if (strcmp(kind, "mutex_unlock") == 0)
			unlocks[th]++;
		else
			other[th]++;
	}
	/* main: 2 creates and 2 joins (the second one's entry may come after the crash); each
	 * burst 300 pairs; thread 3 ends on its SIGSEGV */
	ck_assert_msg(other[1] == 3 || other[1] == 4, "main: %ld events", other[1]);
	ck_assert_int_eq(locks[2], 300);
	ck_assert_int_eq(unlocks[2], 300);
	ck_assert_int_eq(other[2], 0);
	ck_assert_int_eq(locks[3], 300);
	ck_assert_int_eq(unlocks[3], 300);
	ck_assert_int_eq(other[3], 1);
	json_object *lastev = json_object_array_get_idx(rpb, n - 1);
	ck_assert_str_eq(str(lastev, "kind"), "signal");
	ck_assert_int_eq(num(lastev, "thread"), 3);
	json_object_put(rep);
}
END_TEST

START_TEST(crash_with_an_unreadable_stack)
{
	const char *args[] = {"--", prog("badstack"), NULL};
	int push = marker_line("badstack.c", "PUSH");
	char expect[64];
	struct run r;

	run_trace(&r, args);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV, "status %#x:\n%s",
		      r.status, r.err);
	snprintf(expect, sizeof(expect), "badstack.c:%d in lost", push);
	ck_assert_msg(strstr(r.err, "SIGSEGV in thread 2") && strstr(r.err, expect), "%s", r.err);
	/* Frame 0 is the push; whatever the unwinder recovers beyond it (rbp is intact) is a bonus. */
	json_object *rep = the_report(), *bt = get(get(rep, "failure"), "backtrace");
	ck_assert_uint_ge(json_object_array_length(bt), 1);
	ck_assert_int_eq(num(json_object_array_get_idx(bt, 0), "line"), push);
	json_object_put(rep);
}
END_TEST

static void
assert_cycle_entry(json_object *c, int thread, int waits_line, int held_by, int taken_line)
{
	ck_assert_int_eq(num(c, "thread"), thread);
	ck_assert_int_eq(num(json_object_array_get_idx(get(c, "waits_at"), 0), "line"), waits_line);
	ck_assert_int_eq(num(c, "held_by"), held_by);
	ck_assert_int_eq(num(json_object_array_get_idx(get(c, "taken_at"), 0), "line"), taken_line);
}

START_TEST(deadlock_is_reported_with_its_cycle)
{
	const char *args[] = {"--", prog("deadlock"), NULL};
	int take_a = marker_line("deadlock.c", "TAKE_A"), wait_b = marker_line("deadlock.c", "WAIT_B");
	int take_b = marker_line("deadlock.c", "TAKE_B"), wait_a = marker_line("deadlock.c", "WAIT_A");
	struct run r;

	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124, "status %#x:\n%s",
		      r.status, r.err);
	ck_assert_msg(strstr(r.err, "deadlock of 2 threads"), "%s", r.err);
	/* Reported within 2 s of forming (it forms at once; the rest is start-up). */
	ck_assert_msg(r.seconds < 4.0, "took %.1f s", r.seconds);

	json_object *rep = the_report(), *fail = get(rep, "failure"), *cycle = get(fail, "cycle");
	ck_assert_str_eq(str(fail, "kind"), "deadlock");
	ck_assert_uint_eq(json_object_array_length(cycle), 2);
	json_object *c0 = json_object_array_get_idx(cycle, 0), *c1 = json_object_array_get_idx(cycle, 1);
	if (num(c0, "thread") == 3) {
		json_object *tmp = c0;
		c0 = c1, c1 = tmp;
	}
	/* Thread 2 (first) holds A and waits for B; thread 3 (second) the other way round. */
	assert_cycle_entry(c0, 2, wait_b, 3, take_b);
	assert_cycle_entry(c1, 3, wait_a, 2, take_a);
	json_object_put(rep);
}
END_TEST

START_TEST(lost_wakeup_is_a_hang)
{
	const char *args[] = {"--hang-timeout", "2", "--", prog("hang"), NULL};
	int lost = marker_line("hang.c", "LOST");
	struct run r;

	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124, "status %#x:\n%s",
		      r.status, r.err);
	ck_assert_msg(r.seconds >= 2.0 && r.seconds < 10.0, "took %.1f s", r.seconds);
	ck_assert_msg(strstr(r.err, "hang"), "%s", r.err);

	json_object *rep = the_report(), *rpb = get(rep, "rpb");
	ck_assert_str_eq(str(get(rep, "failure"), "kind"), "hang");
	/* The waiter's last event is the wait that was never signalled. */
	ck_assert_int_eq(count_at_line(rpb, "cond_wait", lost), 1);
	json_object_put(rep);
}
END_TEST

START_TEST(nonzero_exit_is_a_failure_when_asked)
{
	const char *plain[] = {"--", prog("hang"), "3", NULL};
	const char *asked[] = {"--fail-on-exit", "--", prog("hang"), "3", NULL};
	char reports[300];
	struct run r;

	run_trace(&r, plain);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 3, "%s", r.err);
	snprintf(reports, sizeof(reports), "%s/reports", tmpdir);
	ck_assert_int_ne(access(reports, F_OK), 0); /* no failure, no report */

	run_trace(&r, asked);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 3, "%s", r.err);
	json_object *rep = the_report(), *fail = get(rep, "failure"), *bt = get(fail, "backtrace");
	ck_assert_str_eq(str(fail, "kind"), "exit");
	ck_assert_int_eq(num(fail, "exit_code"), 3);
	int exit_line = marker_line("hang.c", "EXIT"), found = 0;
	for (size_t i = 0; i < json_object_array_length(bt); i++) {
		json_object *f = json_object_array_get_idx(bt, i);
		json_object *func;
		if (json_object_object_get_ex(f, "func", &func) && json_object_get_string(func) &&
		    strcmp(json_object_get_string(func), "main") == 0 && num(f, "line") == exit_line)
			found++;
	}
	ck_assert_msg(found == 1, "main at hang.c:%d not in the backtrace", exit_line);
	json_object_put(rep);
}
END_TEST

/*
 * The next event of @kind in the -o file @f, parsed (the caller puts it), its "where" in
 * *ret_where; NULL at the end of the file. Events without a "where" are skipped.
 */
static json_object *
next_event(FILE *f, const char *kind, const char **ret_where)
{
	char line[8192];

	while (fgets(line, sizeof(line), f)) {
		json_object *e = json_tokener_parse(line), *w;

		ck_assert_ptr_nonnull(e);
		if (strcmp(str(e, "kind"), kind) == 0 && json_object_object_get_ex(e, "where", &w)) {
			*ret_where = json_object_get_string(w);
			return e;
		}
		json_object_put(e);
	}
	return NULL;
}

/* Counts -o events of @kind whose "where" starts with @where_prefix. */
static int
count_events(const char *path, const char *kind, const char *where_prefix)
{
	const char *where;
	json_object *e;
	int n = 0;
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	while ((e = next_event(f, kind, &where))) {
		n += strncmp(where, where_prefix, strlen(where_prefix)) == 0;
		json_object_put(e);
	}
	fclose(f);
	return n;
}

START_TEST(points_fire_at_their_lines)
{
	int wr = marker_line("points.c", "WRITE"), rd = marker_line("points.c", "READ");
	char points[300], events[300], where[64];
	struct run r;
	FILE *f;

	snprintf(points, sizeof(points), "%s/points", tmpdir);
	snprintf(events, sizeof(events), "%s/events", tmpdir);
	f = fopen(points, "w");
	fprintf(f, "points.c %d points.c %d\nnosuch.c 3\tpoints.c 1\n", wr, rd);
	fclose(f);
	const char *args[] = {"--points", points, "-o", events, "--", prog("points"), NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	snprintf(where, sizeof(where), "points.c:%d ", wr);
	ck_assert_int_eq(count_events(events, "point", where), 5);
	snprintf(where, sizeof(where), "points.c:%d ", rd);
	ck_assert_int_eq(count_events(events, "point", where), 5);
	ck_assert_int_eq(count_events(events, "point", ""), 10);
	/* Entries without code are named, not skipped silently. */
	ck_assert_msg(strstr(r.err, "'nosuch.c 3'") && strstr(r.err, "'points.c 1'"), "%s", r.err);

	/* A malformed file is refused with the entry's position, before anything runs. */
	f = fopen(points, "w");
	fprintf(f, "points.c %d\npoints.c\n", wr);
	fclose(f);
	const char *bad[] = {"--points", points, "--", prog("points"), NULL};
	run_trace(&r, bad);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1, "%s", r.err);
	ck_assert_msg(strstr(r.err, ":2:") && strstr(r.err, "aviso-trace: "), "%s", r.err);
}
END_TEST

/*
 * The events of a run of crash as "thread kind occurrence site" lines. Which events happen
 * before the crash kills the process varies a little (main's joins race with it), so runs are
 * compared event by event, by thread, kind and occurrence.
 */
static size_t
events_of_run(const char *frames, char **out, size_t max)
{
	char events[300], line[8192];
	int seen[8][MODEL_EV__COUNT] = {{0}};
	size_t n = 0;
	struct run r;
	FILE *f;

	snprintf(events, sizeof(events), "%s/events", tmpdir);
	const char *args[] = {"--frames", frames, "-o", events, "--", prog("crash"), NULL};
	run_trace(&r, args);
	ck_assert(WIFSIGNALED(r.status));
	f = fopen(events, "r");
	ck_assert_ptr_nonnull(f);
	while (n < max && fgets(line, sizeof(line), f)) {
		json_object *e = json_tokener_parse(line);
		const char *kind = str(e, "kind");
		int th = num(e, "thread");
		enum model_event_kind k;
		char buf[2048];

		ck_assert(th >= 1 && th < 8);
		ck_assert_int_eq(model_event_kind_parse(kind, &k), 0);
		snprintf(buf, sizeof(buf), "%d %s %d %s", th, kind, seen[th][k]++, str(e, "site"));
		out[n++] = strdup(buf);
		json_object_put(e);
	}
	fclose(f);
	return n;
}

/* The entry of @v whose "thread kind occurrence" part is @key's, or NULL. */
static const char *
find_key(char **v, size_t n, const char *key)
{
	size_t klen = (size_t)(strrchr(key, ' ') - key);

	for (size_t i = 0; i < n; i++)
		if (strncmp(v[i], key, klen) == 0 && v[i][klen] == ' ')
			return v[i];
	return NULL;
}

/* Distinct sites of -o point events whose "where" ends with @func. */
static int
point_sites_in(const char *path, const char *func)
{
	char seen[8][256];
	const char *where;
	json_object *e;
	int n = 0;
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	while ((e = next_event(f, "point", &where))) {
		int k;

		if (strlen(where) > strlen(func) &&
		    strcmp(where + strlen(where) - strlen(func), func) == 0) {
			for (k = 0; k < n && strcmp(seen[k], str(e, "site")) != 0; k++)
				;
			if (k == n && n < 8)
				snprintf(seen[n++], sizeof(seen[0]), "%s", str(e, "site"));
		}
		json_object_put(e);
	}
	fclose(f);
	return n;
}

/*
 * One entry of a points file is one point, whatever its addresses, and one stop a pass. Built
 * by gcc 12 -O2, lost_update.c:42 begins a statement at two addresses of the compressor (its
 * load between them), and line 66 at two of the trailer (its load, then its store); the code
 * runs straight from each first address to the second, which then gets no breakpoint. The
 * compressor's points are two sites (lines 42 and 48) and stop it twice an iteration, the
 * trailer's one, once a run. A breakpoint at line 66's second address held the trailer between
 * its load and its store for the length of a stop.
 */
START_TEST(one_line_in_one_function_is_one_point_site)
{
	char events[300], points[300], sample[300];
	struct run r;

	snprintf(events, sizeof(events), "%s/events", tmpdir);
	snprintf(points, sizeof(points), "%s/lost_update.points", env("SAMPLES_SRC"));
	snprintf(sample, sizeof(sample), "%s/lost_update", env("SAMPLES"));
	const char *args[] = {"--no-model", "--points", points, "-o", events, "--", sample, NULL};
	run_trace(&r, args);
	/* The sample's two outcomes: its bug did not show, or its assert caught the lost update. */
	ck_assert_msg((WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) ||
			  (WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT),
		      "status %#x:\n%s", r.status, r.err);
	ck_assert_msg(!strstr(r.err, "no code"), "%s", r.err);
	ck_assert_int_eq(point_sites_in(events, " compressor"), 2);
	ck_assert_int_eq(point_sites_in(events, " trailer"), 1);
	int stores = count_events(events, "point", "lost_update.c:48 ");
	ck_assert_int_ge(stores, 1);
	/*
	 * Line 48 begins where line 47's call to pthread_mutex_unlock returns: the point and the
	 * unlock have one site string, frame 0 exact for one and a return address for the other,
	 * and each its own line. Whichever came first once gave both its line.
	 */
	ck_assert_int_eq(count_events(events, "mutex_unlock", "lost_update.c:47 "), stores);
	ck_assert_int_eq(count_events(events, "point", "lost_update.c:66 "), 1);
	ck_assert_int_eq(count_events(events, "point", "lost_update.c:"), 2 * stores + 1);
}
END_TEST

START_TEST(sites_are_stable_across_runs)
{
	char *a[256], *b[256];
	size_t na = events_of_run("5", a, 256), nb, common = 0;

	/* Another run, another address layout (PIE, ASLR): the same sites for the same events. */
	nb = events_of_run("5", b, 256);
	for (size_t i = 0; i < na; i++) {
		const char *twin = find_key(b, nb, a[i]);
		const char *site = strrchr(a[i], ' ') + 1;

		ck_assert_msg(strncmp(site, "crash+0x", 8) == 0 || strncmp(site, "libc", 4) == 0,
			      "%s", a[i]);
		if (twin) {
			ck_assert_str_eq(a[i], twin);
			common++;
		}
	}
	ck_assert_uint_ge(common, 20);
	for (size_t i = 0; i < na; i++)
		free(a[i]);
	for (size_t i = 0; i < nb; i++)
		free(b[i]);
	/* --frames bounds the context: one frame has no '<'. */
	nb = events_of_run("1", b, 256);
	ck_assert_uint_ge(nb, 20);
	for (size_t i = 0; i < nb; i++) {
		ck_assert_ptr_null(strchr(strrchr(b[i], ' '), '<'));
		free(b[i]);
	}
}
END_TEST

/* ---- The samples: real bugs that fail only now and then ---- */

#define SAMPLE_TRIES 80 /* at a failure rate of 10%, all 80 runs pass once in 4,500 */

/*
 * Runs the sample under aviso-trace with @opts until its failure shows (the run's status is
 * not 0), at most SAMPLE_TRIES times. Returns the number of runs.
 */
static int
run_sample_until_failure(struct run *r, const char *opt, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", env("SAMPLES"), name);
	for (int i = 1; i <= SAMPLE_TRIES; i++) {
		const char *with[] = {opt, "1", "--", path, NULL};
		const char *plain[] = {"--", path, NULL};
		run_trace(r, opt ? with : plain);
		if (!(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0))
			return i;
	}
	ck_abort_msg("%s did not fail in %d runs", name, SAMPLE_TRIES);
	return 0;
}

START_TEST(sample_atomicity_violation_crash)
{
	const char *src = env("SAMPLES_SRC");
	int use = source_line(src, "atom_ptr.c", "BUG: ... then use");
	int closer = source_line(src, "atom_ptr.c", "BUG: closes the log");
	char expect[128];
	struct run r;

	run_sample_until_failure(&r, NULL, "atom_ptr");
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV, "%#x:\n%s", r.status,
		      r.err);
	snprintf(expect, sizeof(expect), "SIGSEGV in thread 2 at atom_ptr.c:%d in logger", use);
	ck_assert_msg(strstr(r.err, expect), "no '%s' in:\n%s", expect, r.err);

	/* The closer's critical section (where it frees the log) is in the RPB before the crash. */
	json_object *rep = the_report(), *rpb = get(rep, "rpb");
	size_t n = json_object_array_length(rpb);
	int closer_unlock = -1;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(rpb, i);
		if (num(e, "thread") == 3 && strcmp(str(e, "kind"), "mutex_unlock") == 0)
			closer_unlock = (int)i;
	}
	ck_assert_int_ge(closer_unlock, 0);
	json_object *last = json_object_array_get_idx(rpb, n - 1);
	ck_assert_str_eq(str(last, "kind"), "signal");
	ck_assert_int_eq(num(last, "thread"), 2);
	ck_assert_int_lt(closer_unlock, (int)n - 1);
	ck_assert_int_gt(closer, 0);
	json_object_put(rep);
}
END_TEST

START_TEST(sample_lock_order_deadlock)
{
	const char *src = env("SAMPLES_SRC");
	int teller_a = source_line(src, "deadlock_abba.c", "BUG: order a, b");
	int auditor_b = source_line(src, "deadlock_abba.c", "BUG: order b, a");
	struct run r;

	run_sample_until_failure(&r, NULL, "deadlock_abba");
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124, "%#x:\n%s", r.status,
		      r.err);
	json_object *rep = the_report(), *fail = get(rep, "failure"), *cycle = get(fail, "cycle");
	ck_assert_str_eq(str(fail, "kind"), "deadlock");
	ck_assert_uint_eq(json_object_array_length(cycle), 2);
	/* The teller took a at its first BUG line and waits for b three lines on; the auditor
	 * took b at its BUG line and waits for a two lines on. */
	int matched = 0;
	for (int i = 0; i < 2; i++) {
		json_object *c = json_object_array_get_idx(cycle, i);
		int waits = num(json_object_array_get_idx(get(c, "waits_at"), 0), "line");
		int taken = num(json_object_array_get_idx(get(c, "taken_at"), 0), "line");
		if (waits == teller_a + 3 && taken == auditor_b)
			matched++;
		if (waits == auditor_b + 2 && taken == teller_a)
			matched++;
	}
	ck_assert_msg(matched == 2, "%s", r.err);
	json_object_put(rep);
}
END_TEST

START_TEST(sample_lost_wakeup_hang)
{
	int wait = source_line(env("SAMPLES_SRC"), "lost_wakeup.c", "BUG: ... but not here");
	struct run r;

	run_sample_until_failure(&r, "--hang-timeout", "lost_wakeup");
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124, "%#x:\n%s", r.status,
		      r.err);
	json_object *rep = the_report(), *rpb = get(rep, "rpb");
	ck_assert_str_eq(str(get(rep, "failure"), "kind"), "hang");
	/* Some thread's last event is the wait without a predicate. */
	ck_assert_int_ge(count_at_line(rpb, "cond_wait", wait), 1);
	json_object_put(rep);
}
END_TEST

/* ---- Schedule constraints: the delay mechanism ---- */

/* The site of the first @kind event at @file:@line in an -o file. */
static void
site_at_line(const char *events, const char *file, const char *kind, int line, char *site,
	     size_t size)
{
	char where[64];
	const char *w;
	json_object *e;
	FILE *f = fopen(events, "r");

	ck_assert_ptr_nonnull(f);
	snprintf(where, sizeof(where), "%s:%d ", file, line);
	site[0] = '\0';
	while (!site[0] && (e = next_event(f, kind, &w))) {
		if (strncmp(w, where, strlen(where)) == 0)
			snprintf(site, size, "%s", str(e, "site"));
		json_object_put(e);
	}
	fclose(f);
	ck_assert_msg(site[0], "no %s event at %s:%d", kind, file, line);
}

/*
 * Writes the constraint (B, A) of constrained.c with @delay_us, B the @b_kind event at the line
 * marked @b, A the mutex_lock at the line marked @a, as a run with @mode (or none) shows them;
 * returns the file's path.
 */
static const char *
write_constraint_of(const char *mode, const char *b_kind, const char *b, const char *a,
		    long delay_us)
{
	static char path[300];
	char events[300], bs[2048], as[2048];
	struct run r;
	FILE *f;

	snprintf(events, sizeof(events), "%s/events", tmpdir);
	const char *args[] = {"--no-model", "-o", events, "--", prog("constrained"), mode, NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	site_at_line(events, "constrained.c", b_kind, marker_line("constrained.c", b), bs,
		     sizeof(bs));
	site_at_line(events, "constrained.c", "mutex_lock", marker_line("constrained.c", a), as,
		     sizeof(as));
	snprintf(path, sizeof(path), "%s/constraints", tmpdir);
	f = fopen(path, "w");
	fprintf(f, "# B A delay-us\n%s %s %ld\n", bs, as, delay_us);
	fclose(f);
	return path;
}

static const char *
write_constraint(long delay_us)
{
	return write_constraint_of(NULL, "mutex_lock", "B", "A", delay_us);
}

/* The program's "B-ns A-ns" line: A's time minus B's, in ms. */
static double
a_minus_b_ms(const struct run *r)
{
	long long tb, ta;

	ck_assert_msg(sscanf(r->out, "%lld %lld", &tb, &ta) == 2, "output: %s", r->out);
	return (double)(ta - tb) / 1e6;
}

START_TEST(constraint_delays_a_after_b)
{
	const char *cons = write_constraint(200000);
	const char *with[] = {"--constraints", cons, "--release-after", "0", "--",
			      prog("constrained"), NULL};
	const char *without[] = {"--", prog("constrained"), NULL};
	struct run r;

	/* Without the constraint A follows B by about 2 ms; with it, never within 200 ms (B's
	 * time is noted as its lock call begins, just before the activation), and the stall ends
	 * at its deadline, not later. */
	run_trace(&r, without);
	ck_assert_msg(a_minus_b_ms(&r) < 100.0, "%.1f ms", a_minus_b_ms(&r));
	for (int i = 0; i < 3; i++) {
		run_trace(&r, with);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
		ck_assert_msg(a_minus_b_ms(&r) >= 190.0, "A ran %.1f ms after B", a_minus_b_ms(&r));
		ck_assert_msg(a_minus_b_ms(&r) < 1000.0, "A held %.1f ms", a_minus_b_ms(&r));
	}
}
END_TEST

START_TEST(constraint_that_would_deadlock_is_cut_short)
{
	/* A 10 s delay, and the activator joins the thread it delays: released at the join. */
	const char *cons = write_constraint(10000000);
	const char *args[] = {"--constraints", cons, "--", prog("constrained"), "join", NULL};
	struct run r;

	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	ck_assert_msg(r.seconds < 5.0, "took %.1f s", r.seconds);
	ck_assert_msg(a_minus_b_ms(&r) < 5000.0, "%.1f ms", a_minus_b_ms(&r));
}
END_TEST

START_TEST(constraint_released_after_the_activators_next_event)
{
	/* After B the activator locks and unlocks m1 once more, then sleeps 300 ms. By default
	 * the delayed thread goes once the activator's next event has run (at the one after):
	 * well before the 200 ms deadline. With --release-after 0, only at the deadline. */
	const char *cons = write_constraint(200000);
	const char *dflt[] = {"--constraints", cons, "--", prog("constrained"), "busy", NULL};
	const char *at_deadline[] = {"--constraints", cons, "--release-after", "0", "--",
				     prog("constrained"), "busy", NULL};
	struct run r;

	run_trace(&r, dflt);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	ck_assert_msg(a_minus_b_ms(&r) < 100.0, "A ran %.1f ms after B", a_minus_b_ms(&r));
	run_trace(&r, at_deadline);
	ck_assert_msg(a_minus_b_ms(&r) >= 190.0, "A ran %.1f ms after B", a_minus_b_ms(&r));
}
END_TEST

/*
 * A window that a point opened ends at the activator's next point: "point" stores at PB (B),
 * locks and unlocks a mutex twice, and 50 ms later stores at PE. Released at its 2nd event after
 * B (the default release), A ran 2-3 ms after B; it now runs once PE has run, about 50 ms after.
 */
START_TEST(constraint_from_a_point_holds_until_the_next_point)
{
	int pb = marker_line("constrained.c", "PB"), pe = marker_line("constrained.c", "PE");
	char points[300], events[300], cons[300], bs[2048], as[2048];
	struct run r;
	FILE *f;

	snprintf(points, sizeof(points), "%s/points", tmpdir);
	snprintf(events, sizeof(events), "%s/events", tmpdir);
	snprintf(cons, sizeof(cons), "%s/constraints", tmpdir);
	f = fopen(points, "w");
	fprintf(f, "constrained.c %d\nconstrained.c %d\n", pb, pe);
	fclose(f);
	const char *rec[] = {"--no-model", "--points", points, "-o", events, "--",
			     prog("constrained"), "point", NULL};
	run_trace(&r, rec);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	site_at_line(events, "constrained.c", "point", pb, bs, sizeof(bs));
	site_at_line(events, "constrained.c", "mutex_lock", marker_line("constrained.c", "A"), as,
		     sizeof(as));
	f = fopen(cons, "w");
	fprintf(f, "%s %s 200000\n", bs, as);
	fclose(f);

	const char *args[] = {"--no-model", "--points",	     points, "--constraints", cons,
			      "--",	    prog("constrained"), "point", NULL};
	for (int i = 0; i < 2; i++) {
		run_trace(&r, args);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
		ck_assert_msg(a_minus_b_ms(&r) >= 49.0, "A ran %.1f ms after B", a_minus_b_ms(&r));
		ck_assert_msg(a_minus_b_ms(&r) < 190.0, "A held %.1f ms: to the deadline",
			      a_minus_b_ms(&r));
	}
}
END_TEST

/* The "N deadlines moved while the activator was runnable" count of a -c summary. */
static long
graces(const struct run *r)
{
	const char *p = strstr(r->err, " deadlines moved while the activator was runnable");
	ck_assert_msg(p, "no grace count in: %s", r->err);
	while (p > r->err && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return strtol(p, NULL, 10);
}

/*
 * An activator runnable at its deadline may be waiting for a CPU, a wait its schedstat shows
 * only once it runs: the delay goes on while it stays runnable, at most 2 ms more
 * (STALL_GRACE_MAX_NS), and then ends although it is still computing. "spin": after B the
 * activator computes for 200 ms without an event; with a 20 ms delay, A runs 22 ms or more
 * after B (the CPU wait it had meanwhile may add to that, never the grace beyond 2 ms), and
 * well before the activator is done. B's time is noted as its call begins: noted after the
 * lock returned, it lagged the activation by the tracer's handling of B's stop, 0.53 ms once
 * under ASan, and A seemed to run 21.47 ms after B. An activator asleep at its deadline gets
 * no grace.
 */
START_TEST(constraint_runnable_activator_gets_a_bounded_grace)
{
	const char *cons = write_constraint(20000);
	const char *spin[] = {
	    "-c", "--constraints", cons, "--release-after", "0", "--", prog("constrained"), "spin",
	    NULL};
	const char *asleep[] = {"-c", "--constraints",	   cons, "--release-after", "0",
				"--", prog("constrained"), NULL};
	struct run r;

	for (int i = 0; i < 2; i++) {
		run_trace(&r, spin);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
		ck_assert_msg(a_minus_b_ms(&r) >= 21.5, "A ran %.2f ms after B", a_minus_b_ms(&r));
		ck_assert_msg(a_minus_b_ms(&r) < 150.0, "A held %.1f ms", a_minus_b_ms(&r));
		/* 250 us from each (late) wake-up at a time, 2 ms at most in all */
		ck_assert_int_ge(graces(&r), 1);
		ck_assert_int_le(graces(&r), 8);
	}
	run_trace(&r, asleep);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	ck_assert_msg(a_minus_b_ms(&r) >= 19.0, "A ran %.2f ms after B", a_minus_b_ms(&r));
	ck_assert_int_eq(graces(&r), 0);
	ck_assert_msg(strstr(r.err, "constraint 1: 1 activations, 1 delays"), "%s", r.err);
}
END_TEST

START_TEST(constraint_holds_a_thread_already_blocked_in_a)
{
	/* second calls lock(m3) (A2) while first holds m3: its event comes before first's unlock
	 * (B2), but it acquires only after it. The constraint (B2, A2) holds it there: it
	 * acquires 200 ms after B2, not at once. */
	const char *cons = write_constraint_of("held", "mutex_unlock", "B2", "A2", 200000);
	const char *with[] = {"--constraints", cons, "--release-after", "0", "--",
			      prog("constrained"), "held", NULL};
	const char *without[] = {"--no-model", "--", prog("constrained"), "held", NULL};
	struct run r;

	run_trace(&r, without);
	ck_assert_msg(a_minus_b_ms(&r) < 100.0, "%.1f ms", a_minus_b_ms(&r));
	for (int i = 0; i < 3; i++) {
		run_trace(&r, with);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
		ck_assert_msg(a_minus_b_ms(&r) >= 190.0, "A2 ran %.1f ms after B2",
			      a_minus_b_ms(&r));
		ck_assert_msg(a_minus_b_ms(&r) < 1000.0, "A2 held %.1f ms", a_minus_b_ms(&r));
	}
}
END_TEST

/* Events that stopped, from a -c summary: "N  total, M of them without a stop". */
static long
stops(const struct run *r)
{
	const char *p = strstr(r->err, " total, ");
	long total, without;

	ck_assert_msg(p, "no totals in: %s", r->err);
	while (p > r->err && p[-1] == ' ')
		p--;
	while (p > r->err && p[-1] >= '0' && p[-1] <= '9')
		p--;
	ck_assert_int_eq(sscanf(p, "%ld total, %ld of them without a stop", &total, &without), 2);
	return total - without;
}

/*
 * An event at an A stops only if something can delay it: an instance active, or a B that came
 * first and is not handled yet. Stopped for a decision that can only be "go", its thread loses
 * the tracer's latency (30-200 us here) and with it races it would have won: rwlock_dup's
 * request, stopped at its read lock, let the reloader's write lock in first, and its culprit
 * failed 54 of 900 runs against 4 of 900 without those stops. In "held" second's lock(m3)
 * (A2) comes 20 ms before B2: only B2 stops, and A2, blocked inside, is still held there.
 */
START_TEST(constraint_a_before_any_b_goes_without_a_stop)
{
	const char *cons = write_constraint_of("held", "mutex_unlock", "B2", "A2", 200000);
	const char *with[] = {"-c", "--constraints", cons, "--release-after", "0", "--",
			      prog("constrained"), "held", NULL};
	struct run r;

	run_trace(&r, with);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	ck_assert_int_eq(stops(&r), 1);
	ck_assert_msg(strstr(r.err, "constraint 1: 1 activations, 1 delays"), "%s", r.err);
	ck_assert_msg(a_minus_b_ms(&r) >= 190.0, "A2 ran %.1f ms after B2", a_minus_b_ms(&r));
}
END_TEST

/*
 * With constraints loaded and no thread stalled, the loop still waits for the program's stops:
 * it wakes every millisecond to drain the ring (tracer.c), and with --no-ring, where there is no
 * ring, it must block. It spun instead, a whole CPU for the run. The program sleeps 300 ms
 * after B; a tracer that waits uses a fraction of that.
 */
START_TEST(constraints_loaded_tracer_does_not_spin)
{
	const char *cons = write_constraint(1000);
	const char *ring[] = {"--constraints", cons, "--", prog("constrained"), NULL};
	const char *no_ring[] = {"--no-ring", "--constraints", cons, "--", prog("constrained"), NULL};
	const char *const *modes[] = {ring, no_ring};
	struct run r;

	for (int i = 0; i < 2; i++) {
		run_trace(&r, modes[i]);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
		ck_assert_msg(r.cpu_seconds < 0.6 * r.seconds, "%s: %.2f s of CPU in %.2f s",
			      i ? "--no-ring" : "ring", r.cpu_seconds, r.seconds);
	}
}
END_TEST

/* The site of the first @kind event in an -o file. */
static void
first_site(const char *events, const char *kind, char *site, size_t size)
{
	char buf[8192];
	FILE *f = fopen(events, "r");

	ck_assert_ptr_nonnull(f);
	site[0] = '\0';
	while (!site[0] && fgets(buf, sizeof(buf), f)) {
		json_object *e = json_tokener_parse(buf);
		if (strcmp(str(e, "kind"), kind) == 0)
			snprintf(site, size, "%s", str(e, "site"));
		json_object_put(e);
	}
	fclose(f);
	ck_assert_msg(site[0], "no %s event in %s", kind, events);
}

START_TEST(only_constraint_sites_stop)
{
	/* ticker: 2000 lock/unlock events in its worker. A constraint on main's create (B) and
	 * join (A) names none of them: they go through the event ring without a stop, but
	 * for the few that come while the instance is active (1 ms after the create). */
	char events[300], path[300], b[2048], a[2048];
	unsigned long long total, free_of_stops;
	struct run r;
	FILE *f;

	snprintf(events, sizeof(events), "%s/events", tmpdir);
	const char *args[] = {"--no-model", "-o", events, "--", prog("ticker"), "1000", "0", NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	first_site(events, "thread_create", b, sizeof(b));
	first_site(events, "thread_join", a, sizeof(a));
	snprintf(path, sizeof(path), "%s/constraints", tmpdir);
	f = fopen(path, "w");
	fprintf(f, "%s %s\n", b, a);
	fclose(f);
	const char *with[] = {"-c", "--constraints", path, "--", prog("ticker"), "1000", "0", NULL};
	run_trace(&r, with);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	const char *line = strstr(r.err, " total, ");
	ck_assert_msg(line, "no -c total in:\n%s", r.err);
	while (line > r.err && line[-1] != '\n')
		line--;
	ck_assert_int_eq(sscanf(line, "%llu total, %llu of them without a stop", &total,
				&free_of_stops), 2);
	ck_assert_uint_eq(total, 2002);
	ck_assert_msg(free_of_stops >= 1900, "%llu of %llu events without a stop", free_of_stops,
		      total);
	ck_assert_msg(free_of_stops < total, "the constraint's own sites stopped nothing");
}
END_TEST

START_TEST(constraints_file_errors)
{
	char path[300];
	struct run r;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bad", tmpdir);
	f = fopen(path, "w");
	fprintf(f, "only-one-site\n");
	fclose(f);
	const char *args[] = {"--constraints", path, "--", prog("constrained"), NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1, "%s", r.err);
	ck_assert_msg(strstr(r.err, "bad:1:") && strstr(r.err, "aviso-trace: "), "%s", r.err);
	ck_assert_str_eq(r.out, ""); /* refused before anything ran */
}
END_TEST

/* ---- Runs under avoidance, the model embedded ---- */

/*
 * A point at an A site is stepped through its statement before the tracer goes on (points_flag's
 * canceller loads the pointer, then stores through it). A statement that faults on the way is
 * the program's failure, reported at its line, and the run ends: stepped again, the faulting
 * instruction would fault forever.
 */
START_TEST(point_statement_that_faults_while_stepped)
{
	int rd = marker_line("points.c", "READ"), ft = marker_line("points.c", "FAULT");
	char points[300], events[300], cons[300], bs[2048], as[2048], expect[128];
	struct run r;
	FILE *f;

	snprintf(points, sizeof(points), "%s/points", tmpdir);
	snprintf(events, sizeof(events), "%s/events", tmpdir);
	snprintf(cons, sizeof(cons), "%s/constraints", tmpdir);
	f = fopen(points, "w");
	fprintf(f, "points.c %d\npoints.c %d\n", rd, ft);
	fclose(f);
	const char *rec[] = {"--no-model", "--points", points, "-o", events, "--", prog("points"),
			     "fault", NULL};
	run_trace(&r, rec);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV, "%s", r.err);
	site_at_line(events, "points.c", "point", rd, bs, sizeof(bs));
	site_at_line(events, "points.c", "point", ft, as, sizeof(as));
	f = fopen(cons, "w");
	fprintf(f, "%s %s\n", bs, as);
	fclose(f);

	const char *args[] = {"--points", points, "--constraints", cons, "--", prog("points"),
			      "fault", NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV,
		      "status %#x, stderr:\n%s", r.status, r.err);
	snprintf(expect, sizeof(expect), "SIGSEGV in thread 1 at points.c:%d in main", ft);
	ck_assert_msg(strstr(r.err, expect), "no '%s' in:\n%s", expect, r.err);
	/* A hang check, not a speed one: stepped again and again, it took 30 s. */
	ck_assert_msg(r.seconds < 10, "%.1f s", r.seconds);
}
END_TEST

/* The numbers of the --runs summary: runs, failed, baseline runs, runs with constraints. */
static void
runs_summary(const struct run *r, unsigned *runs, unsigned *failed, unsigned *base,
	     unsigned *cons)
{
	const char *p = strstr(r->err, "aviso-trace: ");
	const char *b = strstr(r->err, "baseline runs: "), *c = strstr(r->err, "runs with constraints: ");

	while (p && sscanf(p, "aviso-trace: %u runs, %u failed", runs, failed) != 2)
		p = strstr(p + 1, "aviso-trace: ");
	ck_assert_msg(p && b && c, "no summary in:\n%s", r->err);
	ck_assert_int_eq(sscanf(b, "baseline runs: %u", base), 1);
	ck_assert_int_eq(sscanf(c, "runs with constraints: %u", cons), 1);
}

START_TEST(runs_report_every_outcome_to_the_model)
{
	char state[300], state2[300];
	unsigned runs, failed, base, cons, runs2, failed2, base2, cons2;
	struct run r;

	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(state2, sizeof(state2), "%s/state2", tmpdir);
	const char *args[] = {"--runs", "12", "--seed", "5", "--state-dir", state, "--",
			      prog("crash"), NULL};
	run_trace(&r, args);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
	runs_summary(&r, &runs, &failed, &base, &cons);
	/* crash fails every time: 12 outcomes, every one a failure, each run either kind. */
	ck_assert_uint_eq(runs, 12);
	ck_assert_uint_eq(failed, 12);
	ck_assert_uint_eq(base + cons, 12);
	ck_assert_msg(cons > 0, "no run loaded a constraint:\n%s", r.err);

	/* The store keeps them: 12 more runs count 24. */
	run_trace(&r, args);
	runs_summary(&r, &runs, &failed, &base2, &cons2);
	ck_assert_uint_eq(base2 + cons2, 24);

	/* The same seed on a fresh store makes the same choices. */
	const char *again[] = {"--runs", "12", "--seed", "5", "--state-dir", state2, "--",
			       prog("crash"), NULL};
	run_trace(&r, again);
	runs_summary(&r, &runs2, &failed2, &base2, &cons2);
	ck_assert_uint_eq(base2, base);
	ck_assert_uint_eq(cons2, cons);
}
END_TEST

/* ---- Correct-run samples and ticks, counted in the store ---- */

struct counts {
	uint64_t runs, failures, ticks, samples;
};

/* The counts of the one program in the store under @state (--state-dir). */
static struct counts
store_counts(const char *state)
{
	char dir[400];
	struct model_options mo;
	struct model *m;
	struct model_stats *st;
	struct counts c;

	snprintf(dir, sizeof(dir), "%s/model", state);
	model_options_init(&mo);
	ck_assert_int_eq(model_open(dir, &mo, &m), 0);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_uint_eq(st->n, 1);
	c.runs = st->programs[0].runs_ended;
	c.failures = st->programs[0].baseline_failures + st->programs[0].constrained_failures;
	c.ticks = st->programs[0].ticks;
	c.samples = st->programs[0].correct_samples;
	model_stats_free(st);
	model_close(m);
	return c;
}

/* The lines of file @path. */
static unsigned
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned n = 0;
	int c;

	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* A SIGTERM (or SIGHUP) to aviso-trace ends its series with the run in progress, which is not
 * reported: an outside kill says nothing about the program. Between two runs, it ends the series
 * before the next. */
START_TEST(series_ends_at_sigterm)
{
	char state[300], log[300];
	struct run r;

	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(log, sizeof(log), "%s/runs.jsonl", tmpdir);
	/* Each run: 100 units 2 ms apart, about 0.2 s; 50 runs would take 10 s. */
	const char *args[] = {"--runs", "50", "--runs-log", log, "--state-dir", state, "--",
			      prog("ticker"), "100", "2000", NULL};
	run_trace_signalled(&r, args, SIGTERM, 700);
	ck_assert_msg(r.seconds < 5.0, "the series went on for %.1f s:\n%s", r.seconds, r.err);
	const char *at = strstr(r.err, "aviso-trace: run ");
	unsigned stopped = 0;
	if (!at || sscanf(at, "aviso-trace: run %u interrupted: not reported", &stopped) != 1)
		ck_assert_msg((at = strstr(r.err, "aviso-trace: interrupted before run ")) &&
				       sscanf(at, "aviso-trace: interrupted before run %u", &stopped) == 1,
			       "%s", r.err);
	unsigned logged = count_lines(log);
	/* Each run before the one stopped (or not begun), and no other. */
	ck_assert_msg(logged >= 1 && logged + 1 == stopped, "%u runs logged, run %u stopped:\n%s",
		      logged, stopped, r.err);
	/* Every run logged, and no other, reached the model. */
	ck_assert_uint_eq(store_counts(state).runs, logged);
	ck_assert_uint_eq(store_counts(state).failures, 0);
}
END_TEST

/* Runs ticker with @targs after the aviso-trace options @opts, its store in tmpdir/@name. */
static struct counts
ticker_run(const char *name, const char *const *opts, const char *const *targs, int *status)
{
	char state[300];
	const char *argv[32];
	int n = 0;
	struct run r;

	snprintf(state, sizeof(state), "%s/%s", tmpdir, name);
	argv[n++] = "--state-dir";
	argv[n++] = state;
	for (; *opts; opts++)
		argv[n++] = *opts;
	argv[n++] = "--";
	argv[n++] = prog("ticker");
	for (; *targs; targs++)
		argv[n++] = *targs;
	argv[n] = NULL;
	run_trace(&r, argv);
	*status = r.status;
	return store_counts(state);
}

START_TEST(ticks_every_n_events_and_at_a_line)
{
	char at[64];
	int status;

	/* 100 lock/unlock pairs, a create and a join: 202 events, 20 ticks of 10. */
	const char *every[] = {"--tick-every", "10", NULL}, *t100[] = {"100", "0", NULL};
	struct counts c = ticker_run("every", every, t100, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	ck_assert_uint_eq(c.runs, 1);
	ck_assert_uint_eq(c.ticks, 20);

	/* One tick per pass through the marked line: 37 units of work, 37 ticks. */
	snprintf(at, sizeof(at), "ticker.c:%d", marker_line("ticker.c", "TICK"));
	const char *line[] = {"--tick-at", at, NULL}, *t37[] = {"37", "0", NULL};
	c = ticker_run("at", line, t37, &status);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	ck_assert_uint_eq(c.ticks, 37);

	/* A line without code is named. */
	struct run r;
	const char *none[] = {"--tick-at", "ticker.c:1", "--", prog("ticker"), "1", NULL};
	run_trace(&r, none);
	ck_assert_msg(strstr(r.err, "--tick-at: no code for 'ticker.c:1'"), "%s", r.err);
}
END_TEST

START_TEST(samples_are_held_and_dropped_on_failure)
{
	int status;

	/* Taken at 0.2 s, held 0.3 s, the run lasts about 1 s: one sample, sent during the
	 * run; the end adds none. */
	const char *early[] = {"--sample-at", "200", "--sample-hold", "300", NULL};
	const char *long_run[] = {"100", "10000", NULL};
	struct counts c = ticker_run("held", early, long_run, &status);
	ck_assert_uint_eq(c.runs, 1);
	ck_assert_uint_eq(c.failures, 0);
	ck_assert_uint_eq(c.samples, 1);

	/* Held 5 s, the run ends after 0.5 s without failure: sent at the end, once. */
	const char *hold5[] = {"--sample-at", "200", "--sample-hold", "5000", NULL};
	const char *half[] = {"50", "10000", NULL};
	c = ticker_run("cut", hold5, half, &status);
	ck_assert_uint_eq(c.samples, 1);

	/* The same, but the program dies within the hold: no sample. */
	const char *crash[] = {"50", "10000", "crash", NULL};
	c = ticker_run("crash", hold5, crash, &status);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %d", status);
	ck_assert_uint_eq(c.runs, 1);
	ck_assert_uint_eq(c.failures, 1);
	ck_assert_uint_eq(c.samples, 0);

	/* A short run never reaches its sample time: its last events are its sample. */
	const char *dflt[] = {NULL}, *quick[] = {"5", "0", NULL};
	c = ticker_run("short", dflt, quick, &status);
	ck_assert_uint_eq(c.samples, 1);
}
END_TEST

static Suite *
failures_suite(void)
{
	Suite *s = suite_create("failures");
	TCase *tc = tcase_create("failures");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, crash_is_reported_with_its_past);
	tcase_add_test(tc, crash_with_an_unreadable_stack);
	tcase_add_loop_test(tc, crash_after_a_burst_keeps_every_event, 0, 2);
	tcase_add_test(tc, deadlock_is_reported_with_its_cycle);
	tcase_add_test(tc, lost_wakeup_is_a_hang);
	tcase_add_test(tc, nonzero_exit_is_a_failure_when_asked);
	tcase_add_test(tc, points_fire_at_their_lines);
	tcase_add_test(tc, one_line_in_one_function_is_one_point_site);
	tcase_add_test(tc, sites_are_stable_across_runs);
	suite_add_tcase(s, tc);

	TCase *samples = tcase_create("samples");
	tcase_add_checked_fixture(samples, setup, teardown);
	tcase_set_timeout(samples, 600);
	tcase_add_test(samples, sample_atomicity_violation_crash);
	tcase_add_test(samples, sample_lock_order_deadlock);
	tcase_add_test(samples, sample_lost_wakeup_hang);
	suite_add_tcase(s, samples);

	TCase *cons = tcase_create("constraints");
	tcase_add_checked_fixture(cons, setup, teardown);
	tcase_set_timeout(cons, 120);
	tcase_add_test(cons, constraint_delays_a_after_b);
	tcase_add_test(cons, constraint_that_would_deadlock_is_cut_short);
	tcase_add_test(cons, constraint_released_after_the_activators_next_event);
	tcase_add_test(cons, constraint_from_a_point_holds_until_the_next_point);
	tcase_add_test(cons, constraint_holds_a_thread_already_blocked_in_a);
	tcase_add_test(cons, constraint_a_before_any_b_goes_without_a_stop);
	tcase_add_test(cons, constraints_loaded_tracer_does_not_spin);
	tcase_add_test(cons, constraint_runnable_activator_gets_a_bounded_grace);
	tcase_add_test(cons, only_constraint_sites_stop);
	tcase_add_test(cons, constraints_file_errors);
	tcase_add_test(cons, point_statement_that_faults_while_stepped);
	tcase_add_test(cons, ticks_every_n_events_and_at_a_line);
	tcase_add_test(cons, samples_are_held_and_dropped_on_failure);
	tcase_add_test(cons, runs_report_every_outcome_to_the_model);
	tcase_add_test(cons, series_ends_at_sigterm);
	suite_add_tcase(s, cons);
	return s;
}

int
main(void)
{
	return ck_run_main(failures_suite());
}
