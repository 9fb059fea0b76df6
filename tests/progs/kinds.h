/*
 * The event kinds of aviso-trace's -o format, in the order of issue 2's list, shared by the test
 * programs (which count their own calls per kind) and the integration test (which counts the
 * recorded events per kind). Kept here rather than taken from model/ so that the tests check the
 * wire names independently of the code that writes them.
 */
#pragma once

enum prog_kind {
	PK_MUTEX_LOCK,
	PK_MUTEX_TRYLOCK,
	PK_MUTEX_TIMEDLOCK,
	PK_MUTEX_UNLOCK,
	PK_COND_WAIT,
	PK_COND_TIMEDWAIT,
	PK_COND_SIGNAL,
	PK_COND_BROADCAST,
	PK_RWLOCK_RDLOCK,
	PK_RWLOCK_WRLOCK,
	PK_RWLOCK_TRYRDLOCK,
	PK_RWLOCK_TRYWRLOCK,
	PK_RWLOCK_UNLOCK,
	PK_SPIN_LOCK,
	PK_SPIN_UNLOCK,
	PK_SEM_WAIT,
	PK_SEM_TIMEDWAIT,
	PK_SEM_POST,
	PK_BARRIER_WAIT,
	PK_THREAD_CREATE,
	PK_THREAD_JOIN,
	PK_SIGNAL,
	PK__COUNT
};

static const char *const prog_kind_names[PK__COUNT] = {
	"mutex_lock",	    "mutex_trylock",	"mutex_timedlock",  "mutex_unlock",
	"cond_wait",	    "cond_timedwait",	"cond_signal",	    "cond_broadcast",
	"rwlock_rdlock",    "rwlock_wrlock",	"rwlock_tryrdlock", "rwlock_trywrlock",
	"rwlock_unlock",    "spin_lock",	"spin_unlock",	    "sem_wait",
	"sem_timedwait",    "sem_post",		"barrier_wait",	    "thread_create",
	"thread_join",	    "signal",
};
