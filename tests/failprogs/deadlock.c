/*
 * A certain AB-BA deadlock for the failure tests: each thread takes its first mutex, both meet
 * at a barrier, then each asks for the other's (the lines marked WAIT_A and WAIT_B).
 */
#include <pthread.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t met;

static void *
first(void *arg)
{
	pthread_mutex_lock(&a); /* TAKE_A */
	pthread_barrier_wait(&met);
	pthread_mutex_lock(&b); /* WAIT_B */
	pthread_mutex_unlock(&b);
	pthread_mutex_unlock(&a);
	return arg;
}

static void *
second(void *arg)
{
	pthread_mutex_lock(&b); /* TAKE_B */
	pthread_barrier_wait(&met);
	pthread_mutex_lock(&a); /* WAIT_A */
	pthread_mutex_unlock(&a);
	pthread_mutex_unlock(&b);
	return arg;
}

int
main(void)
{
	pthread_t t1, t2;

	pthread_barrier_init(&met, NULL, 2);
	pthread_create(&t1, NULL, first, NULL);
	pthread_create(&t2, NULL, second, NULL);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	return 0;
}
