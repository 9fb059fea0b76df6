/*
 * counts: the shape of the program (constants) and the number of calls of each kind it makes,
 * derived from those constants. counts.c checks its own calls against this table (and exits 1
 * when they differ); the integration test checks aviso-trace's -o output against it. Nothing
 * here is written twice: change a constant and both sides follow.
 *
 * Per round, each worker w runs these sections (see counts.c for the protocols that make every
 * count exact by construction; no call depends on timing):
 *   barrier          pthread_barrier_wait x COUNTS_BARRIERS (all workers)
 *   shared mutex     lock/unlock x COUNTS_MUTEX_PAIRS
 *   trylock          trylock(free)=0, unlock; lock, trylock(held)=EBUSY, unlock
 *   timedlock        timedlock(free, +60 s)=0, unlock; lock, timedlock(held, past)=ETIMEDOUT,
 *                    unlock
 *   rwlock           shared: rdlock/unlock x COUNTS_RD_PAIRS, wrlock/unlock x COUNTS_WR_PAIRS;
 *                    own: tryrdlock=0, unlock; trywrlock=0, unlock; rdlock, trywrlock=EBUSY,
 *                    unlock; wrlock, tryrdlock=EBUSY, unlock
 *   spin             spin_lock/spin_unlock x COUNTS_SPIN_PAIRS
 *   own semaphore    post, wait; post, timedwait(+60 s)=0; timedwait(past)=ETIMEDOUT
 *   semaphore ring   wait on mine, post the next worker's (worker 0: post, then wait)
 *   condvar pairs    workers 2k, 2k+1: 2k cond_waits once, 2k+1 signals; then 2k+1
 *                    cond_timedwaits once (+60 s), 2k signals; 2 locks + 2 unlocks each
 *   timed out wait   lock, cond_timedwait(past)=ETIMEDOUT, unlock
 *   helper thread    create, join; the helper does COUNTS_HELPER_PAIRS lock/unlock
 *   broadcast        lock, cond_wait once, unlock; main: lock, broadcast, unlock (once/round)
 *   signals          main sends COUNTS_SIGS signals (SIGUSR1, SIGUSR2 alternately), each
 *                    acknowledged by the handler before the next is sent
 * Main creates and joins the workers, and initializes the spinlock (see PK_SPIN_UNLOCK).
 */
#pragma once

#include "kinds.h"

#define COUNTS_WORKERS 8 /* even: workers pair up for the condvar hand-offs */
#define COUNTS_ROUNDS 10
#define COUNTS_BARRIERS 2
#define COUNTS_MUTEX_PAIRS 12
#define COUNTS_RD_PAIRS 4
#define COUNTS_WR_PAIRS 4
#define COUNTS_SPIN_PAIRS 6
#define COUNTS_HELPER_PAIRS 3
#define COUNTS_SIGS 4 /* per worker and round; even: half SIGUSR1, half SIGUSR2 */

#define COUNTS_WR_ (COUNTS_WORKERS * COUNTS_ROUNDS)	   /* worker-rounds */
#define COUNTS_PR_ (COUNTS_WORKERS / 2 * COUNTS_ROUNDS) /* pair-rounds */

/* Totals over the whole run, per kind. */
static const long counts_expected[PK__COUNT] = {
	[PK_MUTEX_LOCK] = COUNTS_WR_ * (COUNTS_MUTEX_PAIRS + 1 + 1 + 1 + COUNTS_HELPER_PAIRS + 1) +
			  COUNTS_PR_ * 4 + COUNTS_ROUNDS,
	[PK_MUTEX_TRYLOCK] = COUNTS_WR_ * 2,
	[PK_MUTEX_TIMEDLOCK] = COUNTS_WR_ * 2,
	[PK_MUTEX_UNLOCK] = COUNTS_WR_ * (COUNTS_MUTEX_PAIRS + 2 + 2 + 1 + COUNTS_HELPER_PAIRS + 1) +
			    COUNTS_PR_ * 4 + COUNTS_ROUNDS,
	[PK_COND_WAIT] = COUNTS_WR_ + COUNTS_PR_,
	[PK_COND_TIMEDWAIT] = COUNTS_WR_ + COUNTS_PR_,
	[PK_COND_SIGNAL] = COUNTS_PR_ * 2,
	[PK_COND_BROADCAST] = COUNTS_ROUNDS,
	[PK_RWLOCK_RDLOCK] = COUNTS_WR_ * (COUNTS_RD_PAIRS + 1),
	[PK_RWLOCK_WRLOCK] = COUNTS_WR_ * (COUNTS_WR_PAIRS + 1),
	[PK_RWLOCK_TRYRDLOCK] = COUNTS_WR_ * 2,
	[PK_RWLOCK_TRYWRLOCK] = COUNTS_WR_ * 2,
	[PK_RWLOCK_UNLOCK] = COUNTS_WR_ * (COUNTS_RD_PAIRS + COUNTS_WR_PAIRS + 4),
	[PK_SPIN_LOCK] = COUNTS_WR_ * COUNTS_SPIN_PAIRS,
	/* + 1: main's pthread_spin_init, which glibc (x86_64) makes an alias of
	 * pthread_spin_unlock: the same address, so the same event for any tracer. */
	[PK_SPIN_UNLOCK] = COUNTS_WR_ * COUNTS_SPIN_PAIRS + 1,
	[PK_SEM_WAIT] = COUNTS_WR_ * 2,
	[PK_SEM_TIMEDWAIT] = COUNTS_WR_ * 2,
	[PK_SEM_POST] = COUNTS_WR_ * 3,
	[PK_BARRIER_WAIT] = COUNTS_WR_ * COUNTS_BARRIERS,
	[PK_THREAD_CREATE] = COUNTS_WORKERS + COUNTS_WR_,
	[PK_THREAD_JOIN] = COUNTS_WORKERS + COUNTS_WR_,
	[PK_SIGNAL] = COUNTS_WR_ * COUNTS_SIGS,
};

/* The main thread's own share (thread index 1): it creates, joins and broadcasts. */
static const long counts_expected_main[PK__COUNT] = {
	[PK_MUTEX_LOCK] = COUNTS_ROUNDS,
	[PK_MUTEX_UNLOCK] = COUNTS_ROUNDS,
	[PK_COND_BROADCAST] = COUNTS_ROUNDS,
	[PK_SPIN_UNLOCK] = 1, /* pthread_spin_init, see above */
	[PK_THREAD_CREATE] = COUNTS_WORKERS,
	[PK_THREAD_JOIN] = COUNTS_WORKERS,
};

/* Signals each worker receives (workers are threads 2..COUNTS_WORKERS+1: created first, in order). */
#define COUNTS_SIGNALS_PER_WORKER (COUNTS_ROUNDS * COUNTS_SIGS)
