/*
 * stopcont: prints "stopcont: pid=P ready" once its SC_THREADS threads run, each locking a
 * shared mutex SC_LOCKS times with a 1 ms sleep after each unlock (about 1 s in all). Main then
 * waits for a SIGCONT (its handler sets a flag; the test stops and continues the program from
 * outside), joins the threads and prints "stopcont: ok sum=N conts=1", exit 0.
 */
#pragma once

#include "kinds.h"

#define SC_THREADS 4
#define SC_LOCKS 1000

static const long stopcont_expected[PK__COUNT] = {
	[PK_MUTEX_LOCK] = SC_THREADS * SC_LOCKS,
	[PK_MUTEX_UNLOCK] = SC_THREADS * SC_LOCKS,
	[PK_THREAD_CREATE] = SC_THREADS,
	[PK_THREAD_JOIN] = SC_THREADS,
	/* signal: one SIGCONT; whether the SIGSTOP counts as a delivered signal is the tracer's
	 * choice, so the test checks the SIGCONT events only. */
};
