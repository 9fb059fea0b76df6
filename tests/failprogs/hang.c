/*
 * A certain lost wake-up for the failure tests: the signal is sent before anyone waits, and the
 * waiter waits without a predicate (the line marked LOST), so it sleeps forever; main joins it.
 * With an argument N, it instead exits with status N after its threads are done (for
 * --fail-on-exit).
 */
#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *
waiter(void *arg)
{
	pthread_mutex_lock(&mu);
	pthread_cond_wait(&cv, &mu); /* LOST */
	pthread_mutex_unlock(&mu);
	return arg;
}

int
main(int argc, char **argv)
{
	pthread_t t;

	if (argc > 1) {
		pthread_mutex_lock(&mu);
		pthread_mutex_unlock(&mu);
		exit(atoi(argv[1])); /* EXIT */
	}
	pthread_mutex_lock(&mu);
	pthread_cond_signal(&cv); /* nobody waits yet */
	pthread_mutex_unlock(&mu);
	pthread_create(&t, NULL, waiter, NULL);
	pthread_join(t, NULL);
	return 0;
}
