/*
 * Small helpers shared by the test programs: fatal errors, bounded spin-waits on atomics (the
 * hand-shakes that make call counts exact without any extra pthread call), and absolute
 * deadlines. Header-only so that each program stays one file plus this.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

/* A protocol error inside a test program: not a tracer verdict, so a distinct status (not 77). */
#define PROG_EXIT_BROKEN 2

/* How long any hand-shake may take before the program gives up (the tracer makes it slow). */
#define PROG_SPIN_TIMEOUT_S 60

static inline void
prog_die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write so that lines from several threads never interleave. */
	if (write(2, buf, (size_t)n) < 0)
		_exit(PROG_EXIT_BROKEN);
	_exit(PROG_EXIT_BROKEN);
}

/* Fails the program when a pthread/sem call returned something other than @want. */
#define PROG_EXPECT(call, want)                                                                  \
	do {                                                                                     \
		int rc_ = (call);                                                                \
		if (rc_ != (want))                                                               \
			prog_die("%s:%d: %s returned %d (%s), expected %d", __FILE__, __LINE__,  \
				 #call, rc_, rc_ > 0 ? strerror(rc_) : "", (want));              \
	} while (0)

/* The same for the sem_* calls, which return -1 and set errno. */
#define PROG_EXPECT_SEM(call, want_errno)                                                        \
	do {                                                                                     \
		int rc_ = (call);                                                                \
		int e_ = rc_ == 0 ? 0 : errno;                                                   \
		if (e_ != (want_errno))                                                          \
			prog_die("%s:%d: %s failed with %d (%s), expected %d", __FILE__,         \
				 __LINE__, #call, e_, strerror(e_), (want_errno));               \
	} while (0)

static inline double
prog_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Spins (yielding) until *v >= want; dies after PROG_SPIN_TIMEOUT_S. No pthread call. */
static inline void
prog_spin_until(atomic_int *v, int want, const char *what)
{
	double end = 0;
	unsigned i = 0;

	while (atomic_load(v) < want) {
		sched_yield();
		if ((++i & 1023) == 0) {
			if (end == 0)
				end = prog_now() + PROG_SPIN_TIMEOUT_S;
			else if (prog_now() > end)
				prog_die("timed out waiting for %s (%d < %d)", what, atomic_load(v),
					 want);
		}
	}
}

/* An absolute CLOCK_REALTIME deadline @s seconds from now (negative: in the past). */
static inline struct timespec
prog_deadline(int s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	return ts;
}
