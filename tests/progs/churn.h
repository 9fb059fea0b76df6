/*
 * churn: CHURN_THREADS short threads, at most CHURN_ALIVE alive at once (main joins the oldest
 * before creating another), each locking a shared mutex CHURN_THREAD_LOCKS times; main locks it
 * CHURN_MAIN_LOCKS times after each creation. Threads exit while others hit breakpoints.
 */
#pragma once

#include "kinds.h"

#define CHURN_THREADS 1000
#define CHURN_ALIVE 16
#define CHURN_THREAD_LOCKS 1
#define CHURN_MAIN_LOCKS 2

static const long churn_expected[PK__COUNT] = {
	[PK_MUTEX_LOCK] = CHURN_THREADS * (CHURN_THREAD_LOCKS + CHURN_MAIN_LOCKS),
	[PK_MUTEX_UNLOCK] = CHURN_THREADS * (CHURN_THREAD_LOCKS + CHURN_MAIN_LOCKS),
	[PK_THREAD_CREATE] = CHURN_THREADS,
	[PK_THREAD_JOIN] = CHURN_THREADS,
};
