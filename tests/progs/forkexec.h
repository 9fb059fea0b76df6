/*
 * forkexec: FE_THREADS threads lock a shared mutex FE_THREAD_LOCKS times each while main forks;
 * the child locks its own mutex FE_CHILD_LOCKS times and execs the same program with the
 * argument "exec-child", which creates one thread locking FE_EXEC_LOCKS times, joins it and
 * exits 0. The parent checks the child's status, joins its threads, locks FE_PARENT_LOCKS times
 * more, prints "forkexec: ok parent=P child=C" and exits 0 (1 if the child failed).
 */
#pragma once

#include "kinds.h"

#define FE_THREADS 4
#define FE_THREAD_LOCKS 50
#define FE_PARENT_LOCKS 10
#define FE_CHILD_LOCKS 20
#define FE_EXEC_LOCKS 30

/* Events of the parent process. */
static const long forkexec_expected_parent[PK__COUNT] = {
	[PK_MUTEX_LOCK] = FE_THREADS * FE_THREAD_LOCKS + FE_PARENT_LOCKS,
	[PK_MUTEX_UNLOCK] = FE_THREADS * FE_THREAD_LOCKS + FE_PARENT_LOCKS,
	[PK_THREAD_CREATE] = FE_THREADS,
	[PK_THREAD_JOIN] = FE_THREADS,
};

/* Events of the child process (before and after its exec), seen with -f only. */
static const long forkexec_expected_child[PK__COUNT] = {
	[PK_MUTEX_LOCK] = FE_CHILD_LOCKS + FE_EXEC_LOCKS,
	[PK_MUTEX_UNLOCK] = FE_CHILD_LOCKS + FE_EXEC_LOCKS,
	[PK_THREAD_CREATE] = 1,
	[PK_THREAD_JOIN] = 1,
};
