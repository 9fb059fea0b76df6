/*
 * aviso-trace --server: the real aviso-trace against the real aviso-server on a loopback port,
 * on real programs (tests/failprogs/: crash fails every run; lockstep has the same events at
 * every run, and fails with the argument "crash"). The server's counts against the runs made,
 * the same choices embedded and through a server for the same seed, runs while no server
 * listens (queued, then sent), the back-off against a server that never answers, and bad URLs.
 *
 * Environment (set by meson): AVISO_TRACE, AVISO_SERVER_EXE (not AVISO_SERVER: aviso-trace
 * reads that one as a URL), FAILPROGS.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench/server/httpc.h"
#include "ckmain.h"

#define RUN_TIMEOUT_S 120
#include "harness.h"

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void
setup(void)
{
	harness_setup("aviso-client");
}

static const char *
prog(const char *name)
{
	static char buf[4][512];
	static int k;
	char *b = buf[k++ % 4];
	snprintf(b, 512, "%s/%s", env("FAILPROGS"), name);
	return b;
}

/* ---- a server process ---- */

struct srv {
	pid_t pid;
	unsigned port;
	char url[64]; /* http://127.0.0.1:PORT */
	char log[300];
};

/* A port nothing listens on now: the kernel's pick for a socket bound to port 0. */
static unsigned
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* GET @path of @s: the status, the body in *ret_body (malloc'd). */
static long
get(const struct srv *s, const char *path, char **ret_body)
{
	char url[256];
	long status = 0;

	snprintf(url, sizeof(url), "%s%s", s->url, path);
	*ret_body = NULL;
	if (httpc_request("GET", url, NULL, NULL, 0, &status, ret_body) < 0)
		return -1;
	return status;
}

/*
 * Starts aviso-server on @port (0: its pick, read from its log) with a fresh store @db, ranking
 * on the latest model (--snapshot-ms 0, so a seed makes the choice an embedded model makes);
 * waits, 10 s at most, until /healthz answers.
 */
static void
srv_start(struct srv *s, const char *db, unsigned port)
{
	const char *exe = env("AVISO_SERVER_EXE");
	char portarg[16];

	snprintf(portarg, sizeof(portarg), "%u", port);
	snprintf(s->log, sizeof(s->log), "%s/server-%u.log", tmpdir, port);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(exe, exe, "--port", portarg, "--db", db, "--snapshot-ms", "0", "--no-sync",
		      (char *)NULL);
		_exit(127);
	}
	s->port = port;
	for (int i = 0; i < 1000; i++) {
		int status;
		ck_assert_msg(waitpid(s->pid, &status, WNOHANG) == 0, "aviso-server exited (log %s)",
			      s->log);
		if (!s->port) {
			char line[512];
			FILE *f = fopen(s->log, "r");
			while (f && fgets(line, sizeof(line), f))
				sscanf(line, "aviso-server: listening on http://127.0.0.1:%u", &s->port);
			if (f)
				fclose(f);
		}
		if (s->port) {
			char *body;
			snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", s->port);
			long st = get(s, "/healthz", &body);
			free(body);
			if (st == 200)
				return;
		}
		sleep_ms(10);
	}
	ck_abort_msg("aviso-server did not answer /healthz within 10 s");
}

/* SIGTERM, then at most 10 s for it to exit (SIGKILL after that). */
static void
srv_stop(struct srv *s)
{
	int status;

	kill(s->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid)
			return;
		sleep_ms(10);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
}

/* ---- aviso-trace ---- */

static void
assert_exit0(const struct run *r)
{
	ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
		      "aviso-trace ended with status 0x%x:\n%s", r->status, r->err);
}

/* ---- the runs log ---- */

struct log_line {
	char run[64];
	unsigned long long seed;
	bool baseline, failed;
	char constraints[1024]; /* "b -> a; ..." */
};

/* Reads --runs-log @path into @lines (at most @max); returns the number of lines. */
static int
read_runs_log(const char *path, struct log_line *lines, int max)
{
	char buf[8192];
	int n = 0;
	FILE *f = fopen(path, "r");

	ck_assert_msg(f != NULL, "no runs log %s", path);
	while (fgets(buf, sizeof(buf), f)) {
		json_object *o = json_tokener_parse(buf), *v, *arr;
		ck_assert_msg(o != NULL, "not JSON: %s", buf);
		ck_assert_int_lt(n, max);
		struct log_line *l = &lines[n++];
		memset(l, 0, sizeof(*l));
		ck_assert(json_object_object_get_ex(o, "run", &v));
		snprintf(l->run, sizeof(l->run), "%s", json_object_get_string(v));
		ck_assert(json_object_object_get_ex(o, "seed", &v));
		l->seed = json_object_get_uint64(v);
		ck_assert(json_object_object_get_ex(o, "baseline", &v));
		l->baseline = json_object_get_boolean(v);
		ck_assert(json_object_object_get_ex(o, "failed", &v));
		l->failed = json_object_get_boolean(v);
		ck_assert(json_object_object_get_ex(o, "constraints", &arr));
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *c = json_object_array_get_idx(arr, i), *b, *a;
			ck_assert(json_object_object_get_ex(c, "b", &b));
			ck_assert(json_object_object_get_ex(c, "a", &a));
			size_t len = strlen(l->constraints);
			snprintf(l->constraints + len, sizeof(l->constraints) - len, "%s -> %s; ",
				 json_object_get_string(b), json_object_get_string(a));
		}
		json_object_put(o);
	}
	fclose(f);
	return n;
}

/* ---- the server's counts ---- */

struct counts {
	long long runs_started, runs_ended, base_runs, base_failures, cons_runs, cons_failures,
	    correct_samples, ticks;
};

static long long
count(json_object *o, const char *key)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\"", key);
	return json_object_get_int64(v);
}

/* /api/stats of the program at @path (which must be there). */
static struct counts
server_counts(const struct srv *s, const char *path)
{
	char q[600], *body;
	json_object *o, *progs, *p, *g;
	struct counts c;

	snprintf(q, sizeof(q), "/api/stats?limit=0&program=%s", path);
	ck_assert_int_eq(get(s, q, &body), 200);
	o = json_tokener_parse(body);
	ck_assert_msg(o != NULL, "not JSON: %s", body);
	ck_assert(json_object_object_get_ex(o, "programs", &progs));
	ck_assert_msg(json_object_array_length(progs) == 1, "%s is not in %s", path, body);
	p = json_object_array_get_idx(progs, 0);
	c.runs_started = count(p, "runs_started");
	c.runs_ended = count(p, "runs_ended");
	c.correct_samples = count(p, "correct_samples");
	c.ticks = count(p, "ticks");
	ck_assert(json_object_object_get_ex(p, "baseline", &g));
	c.base_runs = count(g, "runs");
	c.base_failures = count(g, "failures");
	ck_assert(json_object_object_get_ex(p, "constrained", &g));
	c.cons_runs = count(g, "runs");
	c.cons_failures = count(g, "failures");
	json_object_put(o);
	free(body);
	return c;
}

/* Requests queued in @dir (.json files), and the other files (a lock and maps). */
static int
queued(const char *dir, int *ret_other)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0, other = 0;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			n++;
		else
			other++;
	}
	closedir(d);
	if (ret_other)
		*ret_other = other;
	return n;
}

/* ---- tests ---- */

/* The server counts every run a series made, as the runs log tells them. */
static void
check_counts(const struct srv *s, const char *program, const char *arg, unsigned long seed,
	     int runs)
{
	struct log_line lines[64];
	struct run r;
	char seedarg[32], runsarg[16];
	const char *log = path_in("runs.log");

	snprintf(seedarg, sizeof(seedarg), "%lu", seed);
	snprintf(runsarg, sizeof(runsarg), "%d", runs);
	const char *args[] = {"--server", s->url, "--runs", runsarg, "--seed", seedarg,
			      "--runs-log", log, "--", prog(program), arg, NULL};
	run_trace(&r, args);
	assert_exit0(&r);
	int n = read_runs_log(log, lines, 64);
	ck_assert_int_eq(n, runs);
	int failed = 0, baseline = 0, successes = 0;
	for (int i = 0; i < n; i++) {
		ck_assert_msg(strncmp(lines[i].run, "offline-", 8) != 0, "run %d offline:\n%s", i,
			      r.err);
		failed += lines[i].failed;
		baseline += lines[i].baseline;
		successes += !lines[i].failed;
	}
	struct counts c = server_counts(s, prog(program));
	ck_assert_int_eq(c.runs_started, runs);
	ck_assert_int_eq(c.runs_ended, runs);
	ck_assert_int_eq(c.base_runs + c.cons_runs, runs);
	ck_assert_int_eq(c.base_runs, baseline);
	ck_assert_int_eq(c.base_failures + c.cons_failures, failed);
	/* Each run that ended well gave its final RPB as a sample. */
	ck_assert_int_eq(c.correct_samples, successes);
	/* The summary points at the server's page. */
	char where[128];
	snprintf(where, sizeof(where), "statistics: %s/stats\n", s->url);
	ck_assert_msg(strstr(r.err, where), "no '%s' in:\n%s", where, r.err);
}

START_TEST(server_counts_match_the_runs)
{
	struct srv s;

	srv_start(&s, path_in("db"), 0);
	/* crash fails every run: 12 failures, none of them a sample. */
	check_counts(&s, "crash", NULL, 5, 12);
	struct counts c = server_counts(&s, prog("crash"));
	ck_assert_int_eq(c.base_failures + c.cons_failures, 12);
	/* lockstep without "crash" succeeds: 12 runs, 12 samples, no failure. */
	check_counts(&s, "lockstep", NULL, 7, 12);
	c = server_counts(&s, prog("lockstep"));
	ck_assert_int_eq(c.base_failures + c.cons_failures, 0);
	ck_assert_int_eq(c.correct_samples, 12);
	/* Ticks go to the server too: ticker's 202 events at one tick per 10 make 20. */
	struct run r;
	const char *ticks[] = {"--server", s.url, "--tick-every", "10", "--", prog("ticker"), "100",
			       "0", NULL};
	run_trace(&r, ticks);
	assert_exit0(&r);
	c = server_counts(&s, prog("ticker"));
	ck_assert_int_eq(c.runs_ended, 1);
	ck_assert_int_eq(c.ticks, 20);
	srv_stop(&s);
}
END_TEST

START_TEST(same_seed_same_choices_embedded_and_served)
{
	struct log_line emb[32], srv_lines[32];
	struct srv s;
	struct run r;
	const char *elog = path_in("embedded.log"), *slog = path_in("served.log");

	const char *embedded[] = {"--state-dir", path_in("state"), "--runs", "15", "--seed", "5",
				  "--runs-log", elog, "--", prog("lockstep"), "crash", NULL};
	run_trace(&r, embedded);
	assert_exit0(&r);
	int ne = read_runs_log(elog, emb, 32);

	srv_start(&s, path_in("db"), 0);
	const char *served[] = {"--server", s.url, "--runs", "15", "--seed", "5",
				"--runs-log", slog, "--", prog("lockstep"), "crash", NULL};
	run_trace(&r, served);
	assert_exit0(&r);
	int ns = read_runs_log(slog, srv_lines, 32);
	srv_stop(&s);

	ck_assert_int_eq(ne, 15);
	ck_assert_int_eq(ns, 15);
	int loaded = 0, baseline = 0;
	for (int i = 0; i < 15; i++) {
		ck_assert_msg(emb[i].seed == srv_lines[i].seed, "run %d: seed %llu and %llu", i + 1,
			      emb[i].seed, srv_lines[i].seed);
		ck_assert_msg(emb[i].baseline == srv_lines[i].baseline, "run %d: baseline %d and %d",
			      i + 1, emb[i].baseline, srv_lines[i].baseline);
		ck_assert_msg(strcmp(emb[i].constraints, srv_lines[i].constraints) == 0,
			      "run %d: embedded loaded '%s', served '%s'", i + 1, emb[i].constraints,
			      srv_lines[i].constraints);
		ck_assert(emb[i].failed && srv_lines[i].failed);
		loaded += emb[i].constraints[0] != '\0';
		baseline += emb[i].baseline;
	}
	/* Both kinds of choice were made, or the comparison says little. */
	ck_assert_int_gt(loaded, 0);
	ck_assert_int_gt(baseline, 0);
}
END_TEST

START_TEST(offline_runs_are_queued_then_sent)
{
	struct log_line lines[16];
	struct run r;
	struct srv s;
	char url[64], qdir[600];
	unsigned port = free_port();
	const char *log = path_in("offline.log");
	int other;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
	snprintf(qdir, sizeof(qdir), "%s/aviso/queue/127.0.0.1:%u", tmpdir, port);

	/* No server: the runs run, as baseline runs. */
	const char *series[] = {"--server", url, "--runs", "3", "--seed", "5", "--runs-log", log,
				"--", prog("lockstep"), "crash", NULL};
	run_trace(&r, series);
	assert_exit0(&r);
	ck_assert_int_eq(read_runs_log(log, lines, 16), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert(lines[i].baseline);
		ck_assert(lines[i].failed);
		ck_assert_msg(strncmp(lines[i].run, "offline-", 8) == 0, "run %s", lines[i].run);
	}
	ck_assert_msg(strstr(r.err, "no answer from http://127.0.0.1:"), "%s", r.err);
	/* Connection refused costs nothing like a timeout. */
	ck_assert_msg(r.seconds < 30, "3 offline runs took %.1f s", r.seconds);
	/* Each: its /start and its /end (a failure: no sample). */
	ck_assert_int_eq(queued(qdir, NULL), 6);

	/* One run (through AVISO_SERVER this time): its status is the program's. */
	const char *crash[] = {"--", prog("lockstep"), "crash", NULL};
	run_trace_env(&r, url, crash);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV, "status 0x%x:\n%s",
		      r.status, r.err);
	const char *ok[] = {"--server", url, "--", prog("lockstep"), NULL};
	run_trace(&r, ok);
	assert_exit0(&r);
	/* 2 more, and 3 for the success: /start, /correct, /end. */
	ck_assert_int_eq(queued(qdir, NULL), 11);

	/* A request the server will refuse (a run it never started), first in line: dropped, and
	 * the others still go. */
	char bogus[700];
	snprintf(bogus, sizeof(bogus), "%s/00000000000000000001-1-0.end.json", qdir);
	FILE *f = fopen(bogus, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"run\":\"9-9\",\"outcome\":\"success\"}", f);
	fclose(f);

	/* The server is back: the queue goes first, then the run. */
	srv_start(&s, path_in("db"), port);
	run_trace(&r, ok);
	assert_exit0(&r);
	ck_assert_msg(strstr(r.err, "queued /end dropped: the server answered 404"), "%s", r.err);
	ck_assert_msg(strstr(r.err, "sent 11 queued requests"), "%s", r.err);
	ck_assert_int_eq(queued(qdir, &other), 0);
	ck_assert_int_eq(other, 0); /* no run-id map left either */
	struct counts c = server_counts(&s, prog("lockstep"));
	ck_assert_int_eq(c.runs_started, 6);
	ck_assert_int_eq(c.runs_ended, 6);
	ck_assert_int_eq(c.base_runs + c.cons_runs, 6);
	/* The 5 offline runs count as baseline runs; 4 of them failed. */
	ck_assert_int_ge(c.base_runs, 5);
	ck_assert_int_eq(c.base_failures + c.cons_failures, 4);
	ck_assert_int_eq(c.correct_samples, 2);
	srv_stop(&s);
}
END_TEST

/* The server dies while a run it started goes on: the run's /end waits, then is sent as it is. */
START_TEST(outcome_of_a_run_the_server_started_waits_for_it)
{
	struct srv s;
	struct run r;
	char qdir[600], *body;
	const char *db = path_in("db");

	srv_start(&s, db, 0);
	unsigned port = s.port;
	snprintf(qdir, sizeof(qdir), "%s/aviso/queue/127.0.0.1:%u", tmpdir, port);
	/* hang is a hang after 2 s: a failure, reported at the end of the run. */
	const char *args[] = {"--server", s.url, "--hang-timeout", "2", "--", prog("hang"), NULL};
	double t0 = now_s();
	pid_t pid = spawn_trace(NULL, args);
	bool started = false;
	for (int i = 0; i < 500 && !started; i++) {
		ck_assert_int_eq(get(&s, "/api/stats", &body), 200);
		started = strstr(body, "\"runs_started\":1,") != NULL;
		free(body);
		if (!started)
			sleep_ms(10);
	}
	ck_assert_msg(started, "the run did not start within 5 s");
	srv_stop(&s);
	finish_trace(&r, pid, t0);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 124, "status 0x%x:\n%s",
		      r.status, r.err);
	ck_assert_msg(strstr(r.err, "no answer from"), "%s", r.err);
	ck_assert_int_eq(queued(qdir, NULL), 1);

	/* The same server again: the next aviso-trace sends the /end first. */
	srv_start(&s, db, port);
	const char *ok[] = {"--server", s.url, "--", prog("lockstep"), NULL};
	run_trace(&r, ok);
	assert_exit0(&r);
	ck_assert_msg(strstr(r.err, "sent 1 queued request "), "%s", r.err);
	ck_assert_int_eq(queued(qdir, NULL), 0);
	struct counts c = server_counts(&s, prog("hang"));
	ck_assert_int_eq(c.runs_started, 1);
	ck_assert_int_eq(c.runs_ended, 1);
	ck_assert_int_eq(c.base_failures + c.cons_failures, 1);
	srv_stop(&s);
}
END_TEST

/*
 * A server that takes connections and never answers (a listening socket nobody accepts on):
 * each request costs the whole request timeout, so a series must not ask at every run.
 */
START_TEST(a_silent_server_is_not_asked_every_run)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), tries = 0, c;
	char url[64];
	struct run r;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	const char *args[] = {"--server", url, "--runs", "10", "--seed", "5", "--",
			      prog("lockstep"), NULL};
	run_trace(&r, args);
	assert_exit0(&r);
	/* Every connection made is waiting in the backlog. */
	while ((c = accept(fd, NULL, NULL)) >= 0) {
		tries++;
		close(c);
	}
	close(fd);
	ck_assert_msg(tries >= 1 && tries <= 3, "%d connections for 10 runs", tries);
	ck_assert_msg(r.seconds < 60, "10 runs took %.1f s", r.seconds);
}
END_TEST

START_TEST(malformed_urls_are_refused)
{
	static const char *const bad[] = {"ftp://127.0.0.1:22221", "https://127.0.0.1:22221",
					  "http://", "http://127.0.0.1:0", "http://127.0.0.1:70000",
					  "http://a b", "http://h:1?x=1", "127.0.0.1:22221"};
	struct run r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = {"--server", bad[i], "--", prog("lockstep"), NULL};
		run_trace(&r, args);
		ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2,
			      "'%s': status 0x%x", bad[i], r.status);
		ck_assert_msg(strncmp(r.err, "aviso-trace: --server", 21) == 0, "'%s': %s", bad[i],
			      r.err);
		/* One line, and nothing ran. */
		ck_assert_msg(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "'%s': %s", bad[i],
			      r.err);
	}
	const char *args[] = {"--", prog("lockstep"), NULL};
	run_trace_env(&r, "localhost:22221", args);
	ck_assert_int_eq(WEXITSTATUS(r.status), 2);
	ck_assert_msg(strncmp(r.err, "aviso-trace: AVISO_SERVER", 25) == 0, "%s", r.err);
	/* --no-model: the variable is not used, so not checked. */
	const char *pure[] = {"--no-model", "--", prog("lockstep"), NULL};
	run_trace_env(&r, "localhost:22221", pure);
	assert_exit0(&r);
}
END_TEST

static Suite *
client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, server_counts_match_the_runs);
	tcase_add_test(tc, same_seed_same_choices_embedded_and_served);
	tcase_add_test(tc, offline_runs_are_queued_then_sent);
	tcase_add_test(tc, outcome_of_a_run_the_server_started_waits_for_it);
	tcase_add_test(tc, a_silent_server_is_not_asked_every_run);
	tcase_add_test(tc, malformed_urls_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return ck_run_main(client_suite());
}
