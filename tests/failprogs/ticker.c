/*
 * For the sample and tick tests: a worker does N units of work (argv[1]), each a lock/unlock
 * pair and the line marked TICK, sleeping argv[2] microseconds after each; main joins it. With
 * argv[3] "crash", main dies of SIGSEGV after the join.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long done;
static unsigned long units, pause_us;

static void
unit_done(void)
{
	done++; /* TICK */
}

static void *
worker(void *arg)
{
	for (unsigned long i = 0; i < units; i++) {
		pthread_mutex_lock(&m);
		unit_done();
		pthread_mutex_unlock(&m);
		if (pause_us)
			usleep((useconds_t)pause_us);
	}
	return arg;
}

int
main(int argc, char **argv)
{
	pthread_t t;

	units = argc > 1 ? strtoul(argv[1], NULL, 10) : 10;
	pause_us = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	pthread_create(&t, NULL, worker, NULL);
	pthread_join(t, NULL);
	if (argc > 3 && strcmp(argv[3], "crash") == 0)
		raise(SIGSEGV);
	return done == units ? 0 : 1;
}
