/*
 * sigstorm: SS_WORKERS threads each lock/unlock a shared mutex SS_LOCKS times while main sends
 * each of them SS_SIGNALS signals (SIGUSR1 and SIGUSR2 alternately, round robin over the
 * workers), waiting for the handler's acknowledgement before the next one, so none coalesce.
 * Workers that finish their locking spin (no call) until main is done. Exit 0 and
 * "sigstorm: ok" when every handler ran and no update was lost.
 */
#pragma once

#include "kinds.h"

#define SS_WORKERS 4
#define SS_LOCKS 3000
#define SS_SIGNALS 200

static const long sigstorm_expected[PK__COUNT] = {
	[PK_MUTEX_LOCK] = SS_WORKERS * SS_LOCKS,
	[PK_MUTEX_UNLOCK] = SS_WORKERS * SS_LOCKS,
	[PK_THREAD_CREATE] = SS_WORKERS,
	[PK_THREAD_JOIN] = SS_WORKERS,
	[PK_SIGNAL] = SS_WORKERS * SS_SIGNALS,
};
