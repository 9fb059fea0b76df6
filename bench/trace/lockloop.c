/*
 * lockloop: the workload aviso-trace is timed on (bench/trace/run.sh).
 *
 *   lockloop N [THREADS]
 *
 * THREADS threads (1 or more, default 1; all created with pthread_create, the main thread only
 * creates and joins) each make N pthread_mutex_lock/pthread_mutex_unlock pairs on one shared
 * mutex. The program's synchronization events are therefore 2 * N * THREADS lock/unlock calls
 * plus THREADS thread_create and THREADS thread_join. It prints nothing but a final checksum, the
 * same for every run and schedule (a sum, so the order of the critical sections does not matter).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t checksum;
static long pairs;

static void *
worker(void *arg)
{
	uint64_t weight = (uint64_t)(uintptr_t)arg + 1;
	long i;

	for (i = 0; i < pairs; i++) {
		pthread_mutex_lock(&lock);
		checksum += (uint64_t)i * weight + 1;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t tids[MAX_THREADS];
	long threads = 1, i;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: lockloop N [THREADS]\n");
		return 2;
	}
	pairs = strtol(argv[1], NULL, 10);
	if (argc == 3)
		threads = strtol(argv[2], NULL, 10);
	if (pairs < 0 || threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "lockloop: N >= 0 and 1 <= THREADS <= %d\n", MAX_THREADS);
		return 2;
	}
	for (i = 0; i < threads; i++) {
		if (pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
			fprintf(stderr, "lockloop: pthread_create failed\n");
			return 1;
		}
	}
	for (i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	printf("%" PRIu64 "\n", checksum);
	return 0;
}
