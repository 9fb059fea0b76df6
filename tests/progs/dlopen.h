/*
 * dlopen: dlopen_main locks its own mutex DL_MAIN_LOCKS times, dlopens libdlopen_lib.so (from
 * its own directory), calls dlopen_lib_work(), which locks the library's mutex DL_LIB_LOCKS
 * times and starts and joins one thread that locks it DL_LIB_LOCKS times more, then locks its
 * own mutex DL_MAIN_LOCKS times again and dlcloses the library. Prints "dlopen: ok".
 */
#pragma once

#include "kinds.h"

#define DL_MAIN_LOCKS 10
#define DL_LIB_LOCKS 25
#define DL_LIB_NAME "libdlopen_lib.so"

/* Events whose site is in the library. */
static const long dlopen_expected_lib[PK__COUNT] = {
	[PK_MUTEX_LOCK] = 2 * DL_LIB_LOCKS,
	[PK_MUTEX_UNLOCK] = 2 * DL_LIB_LOCKS,
	[PK_THREAD_CREATE] = 1,
	[PK_THREAD_JOIN] = 1,
};

/* Events whose site is in the main program. */
static const long dlopen_expected_main[PK__COUNT] = {
	[PK_MUTEX_LOCK] = 2 * DL_MAIN_LOCKS,
	[PK_MUTEX_UNLOCK] = 2 * DL_MAIN_LOCKS,
};
