/*
 * The library dlopen_main loads at run time (dlopen.h): its pthread calls must be seen, with
 * sites in this library.
 */
#include <pthread.h>

#include "dlopen.h"
#include "progutil.h"

long dlopen_lib_work(void);

static pthread_mutex_t lib_m = PTHREAD_MUTEX_INITIALIZER;
static long lib_sum;

static void *
lib_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < DL_LIB_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&lib_m), 0);
		lib_sum++;
		PROG_EXPECT(pthread_mutex_unlock(&lib_m), 0);
	}
	return NULL;
}

long
dlopen_lib_work(void)
{
	pthread_t t;

	PROG_EXPECT(pthread_create(&t, NULL, lib_thread, NULL), 0);
	for (int i = 0; i < DL_LIB_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&lib_m), 0);
		lib_sum++;
		PROG_EXPECT(pthread_mutex_unlock(&lib_m), 0);
	}
	PROG_EXPECT(pthread_join(t, NULL), 0);
	return lib_sum;
}
