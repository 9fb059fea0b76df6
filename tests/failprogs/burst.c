/*
 * A crash at the end of a burst of events that need no decision, so none of them stops the
 * thread (the event ring): thread 2 locks and unlocks its own mutex PAIRS times and ends; then
 * thread 3 does the same on another and dereferences NULL at the line marked CRASH. The failure
 * RPB must hold every one of those events, in order (test_failures.c).
 */
#include <pthread.h>
#include <stddef.h>

#define PAIRS 300 /* x 2 events per thread: under the RPB's 1000 per thread */

static pthread_mutex_t m1 = PTHREAD_MUTEX_INITIALIZER, m2 = PTHREAD_MUTEX_INITIALIZER;
static volatile int *volatile nowhere;
static volatile int sum;

static void *
burst(void *arg)
{
	pthread_mutex_t *m = arg;

	for (int i = 0; i < PAIRS; i++) {
		pthread_mutex_lock(m);
		sum++;
		pthread_mutex_unlock(m);
	}
	if (m == &m2)
		*nowhere = sum; /* CRASH */
	return NULL;
}

int
main(void)
{
	pthread_t a, b;

	pthread_create(&a, NULL, burst, &m1);
	pthread_join(a, NULL);
	pthread_create(&b, NULL, burst, &m2);
	pthread_join(b, NULL);
	return 0;
}
