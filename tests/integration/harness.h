/*
 * What the integration tests that run aviso-trace share (test_failures.c, test_client.c): a
 * temporary directory per test, the environment meson sets, and running the real aviso-trace
 * with its stdout and stderr captured, its state (XDG_STATE_HOME) in the test's directory and a
 * bounded wait. Included once per test program; the functions are static inline, so a test
 * program need not use all of them.
 */
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#ifndef RUN_TIMEOUT_S
#define RUN_TIMEOUT_S 60
#endif

static char tmpdir[256];

static inline const char *
env(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v != NULL, "%s is not set (run through meson test)", name);
	return v;
}

static inline double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fresh /tmp/@prefix.XXXXXX as tmpdir (a checked fixture's setup). */
static inline void
harness_setup(const char *prefix)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", prefix);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline void
teardown(void)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
}

/* @name in tmpdir; the result stays valid for the next 15 calls. */
static inline const char *
path_in(const char *name)
{
	static char buf[16][512];
	static int k;
	char *b = buf[k++ % 16];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

struct run {
	int status;
	double seconds;
	double cpu_seconds; /* user + system time of aviso-trace and what it reaped: the program */
	char err[65536]; /* aviso-trace's stderr */
	char out[4096];	 /* the program's stdout (its start) */
};

/*
 * Starts aviso-trace with @args (NULL-terminated) after "--report-dir tmpdir/reports", its
 * stdout and stderr to tmpdir/stdout and tmpdir/stderr, its state under tmpdir (the model is on
 * by default: each test keeps its store in its own directory), and AVISO_SERVER set to
 * @server_env (NULL: unset).
 */
static inline pid_t
spawn_trace(const char *server_env, const char *const *args)
{
	const char *argv[40];
	int n = 0;
	pid_t pid;

	argv[n++] = env("AVISO_TRACE");
	argv[n++] = "--report-dir";
	argv[n++] = path_in("reports");
	for (; *args && n < 38; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(path_in("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		fd = open(path_in("stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		setenv("XDG_STATE_HOME", tmpdir, 1);
		if (server_env)
			setenv("AVISO_SERVER", server_env, 1);
		else
			unsetenv("AVISO_SERVER");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Reads the start of tmpdir/@name into @buf (@size bytes, NUL-terminated). */
static inline void
read_capture(const char *name, char *buf, size_t size)
{
	FILE *f = fopen(path_in(name), "r");
	ck_assert_ptr_nonnull(f);
	size_t len = fread(buf, 1, size - 1, f);
	buf[len] = '\0';
	fclose(f);
}

/*
 * Waits for aviso-trace @pid (started at @t0) to end, sending it signal @sig (0: none) @after_ms
 * after the wait began; kills it and fails after RUN_TIMEOUT_S. Then reads what it printed.
 */
static inline void
finish_trace_signalled(struct run *r, pid_t pid, double t0, int sig, int after_ms)
{
	for (int waited = 0;; waited++) {
		struct rusage ru;
		pid_t w = wait4(pid, &r->status, WNOHANG, &ru);
		ck_assert_int_ge(w, 0);
		if (w == pid) {
			r->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
					 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
			break;
		}
		if (sig && waited * 50 >= after_ms) {
			kill(pid, sig);
			sig = 0;
		}
		if (waited > RUN_TIMEOUT_S * 20) {
			kill(pid, SIGKILL);
			waitpid(pid, &r->status, 0);
			ck_abort_msg("aviso-trace did not end within %d s", RUN_TIMEOUT_S);
		}
		usleep(50000);
	}
	r->seconds = now_s() - t0;
	read_capture("stderr", r->err, sizeof(r->err));
	read_capture("stdout", r->out, sizeof(r->out));
}

static inline void
finish_trace(struct run *r, pid_t pid, double t0)
{
	finish_trace_signalled(r, pid, t0, 0, 0);
}

/* Runs aviso-trace with @args to its end (spawn_trace(), finish_trace()). */
static inline void
run_trace_env(struct run *r, const char *server_env, const char *const *args)
{
	double t0 = now_s();

	finish_trace(r, spawn_trace(server_env, args), t0);
}

static inline void
run_trace(struct run *r, const char *const *args)
{
	run_trace_env(r, NULL, args);
}

/* run_trace(), sending aviso-trace signal @sig @after_ms after its start. */
static inline void
run_trace_signalled(struct run *r, const char *const *args, int sig, int after_ms)
{
	double t0 = now_s();

	finish_trace_signalled(r, spawn_trace(NULL, args), t0, sig, after_ms);
}
