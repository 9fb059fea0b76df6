/*
 * cxx_threads: std::thread, std::mutex, std::condition_variable (cxx_threads.cpp).
 *  - CXX_LOCKERS threads: CXX_LOCKS lock_guard scopes on a shared std::mutex, and one
 *    try_lock on their own (free) std::mutex, then unlock;
 *  - a hand-off pair: CXX_HANDOFFS times, the waiter waits once (unique_lock + wait) and the
 *    signaller sets the predicate under a lock_guard and calls notify_one (armed protocol as in
 *    counts.c: the signaller locks only once the waiter is inside wait);
 *  - CXX_BCAST_WAITERS threads wait once per round, CXX_BCAST_ROUNDS rounds; main sets the
 *    generation under a lock_guard and calls notify_all once every waiter is inside wait.
 * std::mutex lock/unlock/try_lock are inline calls of the program itself; wait, notify_one,
 * notify_all, the thread constructor and join call pthread from libstdc++.
 */
#pragma once

#include "kinds.h"

#define CXX_LOCKERS 4
#define CXX_LOCKS 100
#define CXX_HANDOFFS 50
#define CXX_BCAST_WAITERS 3
#define CXX_BCAST_ROUNDS 20
#define CXX_THREADS (CXX_LOCKERS + 2 + CXX_BCAST_WAITERS)

/* Condition waits, also checked by the program itself (the table below is C only). */
#define CXX_COND_WAITS (CXX_HANDOFFS + CXX_BCAST_ROUNDS * CXX_BCAST_WAITERS)

#ifndef __cplusplus
static const long cxx_expected[PK__COUNT] = {
	[PK_MUTEX_LOCK] = CXX_LOCKERS * CXX_LOCKS + CXX_HANDOFFS * 2 +
			  CXX_BCAST_ROUNDS * (CXX_BCAST_WAITERS + 1),
	[PK_MUTEX_TRYLOCK] = CXX_LOCKERS,
	[PK_MUTEX_UNLOCK] = CXX_LOCKERS * (CXX_LOCKS + 1) + CXX_HANDOFFS * 2 +
			    CXX_BCAST_ROUNDS * (CXX_BCAST_WAITERS + 1),
	[PK_COND_WAIT] = CXX_COND_WAITS,
	[PK_COND_SIGNAL] = CXX_HANDOFFS,
	[PK_COND_BROADCAST] = CXX_BCAST_ROUNDS,
	[PK_THREAD_CREATE] = CXX_THREADS,
	[PK_THREAD_JOIN] = CXX_THREADS,
};
#endif
