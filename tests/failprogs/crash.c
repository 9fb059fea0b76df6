/*
 * A deterministic crash for the failure tests: two workers take turns on a mutex in a fixed
 * order (a semaphore ping-pong), then worker 2 dereferences NULL at the line marked CRASH.
 * Events before the crash, in order: see the test (test_failures.c).
 */
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>

#define ROUNDS 3

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sem_t turn1, turn2;
static volatile int *volatile nowhere;
static int shared;

static void *
worker1(void *arg)
{
	for (int i = 0; i < ROUNDS; i++) {
		sem_wait(&turn1);
		pthread_mutex_lock(&mu);
		shared++;
		pthread_mutex_unlock(&mu);
		sem_post(&turn2);
	}
	return arg;
}

static void *
worker2(void *arg)
{
	for (int i = 0; i < ROUNDS; i++) {
		sem_wait(&turn2);
		pthread_mutex_lock(&mu);
		shared++;
		pthread_mutex_unlock(&mu);
		if (i + 1 < ROUNDS)
			sem_post(&turn1);
	}
	*nowhere = shared; /* CRASH */
	return arg;
}

int
main(void)
{
	pthread_t a, b;

	sem_init(&turn1, 0, 1);
	sem_init(&turn2, 0, 0);
	pthread_create(&a, NULL, worker1, NULL);
	pthread_create(&b, NULL, worker2, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return 0;
}
