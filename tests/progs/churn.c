/*
 * churn: threads created and exiting all the time (churn.h has the shape and the counts).
 * Prints "churn: ok sum=N" and exits 0 when no update was lost.
 */
#include <pthread.h>

#include "churn.h"
#include "progutil.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long sum;

static void *
short_thread(void *arg)
{
	long v = (long)arg;

	for (int i = 0; i < CHURN_THREAD_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum += v;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	}
	return NULL;
}

int
main(void)
{
	pthread_t ring[CHURN_ALIVE];
	long want = 0;

	for (long i = 0; i < CHURN_THREADS; i++) {
		if (i >= CHURN_ALIVE)
			PROG_EXPECT(pthread_join(ring[i % CHURN_ALIVE], NULL), 0);
		PROG_EXPECT(pthread_create(&ring[i % CHURN_ALIVE], NULL, short_thread, (void *)i), 0);
		for (int k = 0; k < CHURN_MAIN_LOCKS; k++) {
			PROG_EXPECT(pthread_mutex_lock(&m), 0);
			sum += 1000000;
			PROG_EXPECT(pthread_mutex_unlock(&m), 0);
		}
		want += i * CHURN_THREAD_LOCKS + 1000000L * CHURN_MAIN_LOCKS;
	}
	for (int i = 0; i < CHURN_ALIVE && i < CHURN_THREADS; i++)
		PROG_EXPECT(pthread_join(ring[(CHURN_THREADS + i) % CHURN_ALIVE], NULL), 0);
	if (sum != want)
		prog_die("churn: sum %ld, expected %ld", sum, want);
	printf("churn: ok sum=%ld\n", sum);
	return 0;
}
